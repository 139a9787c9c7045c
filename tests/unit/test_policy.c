/*
 * policy/: profiles, matches, the lookup precedence, RFC 8461 name
 * patterns and the errors of policy_set_key() / policy_set_finish().
 */
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "t.h"

static int t_line;

/* Apply one key; the origin line counts up like a file would. */
static int
key(struct policy_set *set, const char *section, const char *k,
    const char *v, char *err, size_t errlen)
{
	struct policy_origin o = { "t.ini", ++t_line };

	err[0] = '\0';
	return policy_set_key(set, section, k, v, o, err, errlen);
}

#define KEY_OK(set, section, k, v)                                         \
	do {                                                               \
		char e_[POLICY_ERR_MAX];                                   \
		int r_ = key(set, section, k, v, e_, sizeof(e_));          \
		if (r_ != 0)                                               \
			fprintf(stderr, "%s:%d: [%s] %s = %s: %s\n",       \
			    __FILE__, __LINE__, section, k, v, e_);        \
		CHECK_INT(r_, 0);                                          \
	} while (0)

static void
test_init(void)
{
	struct policy_set set;

	policy_set_init(&set);
	CHECK_INT(set.nprofiles, 3);
	CHECK_INT(policy_profile_find(&set, "opportunistic"), 0);
	CHECK_INT(policy_profile_find(&set, "mandatory"), 1);
	CHECK_INT(policy_profile_find(&set, POLICY_MTA_STS_PROFILE), 2);
	CHECK_INT(set.profiles[2].tls, POLICY_TLS_MANDATORY);
	CHECK_INT(set.profiles[2].verify, POLICY_VERIFY_STRICT);
	CHECK_INT(policy_profile_find(&set, "nope"), -1);
	CHECK_INT(set.default_profile, 0);
	CHECK_INT(set.profiles[0].tls, POLICY_TLS_OPPORTUNISTIC);
	CHECK_INT(set.profiles[1].tls, POLICY_TLS_MANDATORY);
	CHECK_INT(set.profiles[0].verify, POLICY_VERIFY_STRICT);
	CHECK_INT(set.profiles[1].verify, POLICY_VERIFY_STRICT);
	CHECK(set.profiles[0].builtin && set.profiles[1].builtin);
	CHECK_INT(set.nmatches, 0);
	policy_set_free(&set);
	policy_set_free(&set); /* harmless twice */
}

static void
test_names(void)
{
	CHECK_INT(policy_parse_version("1.0"), POLICY_TLS1_0);
	CHECK_INT(policy_parse_version("1.1"), POLICY_TLS1_1);
	CHECK_INT(policy_parse_version("1.2"), POLICY_TLS1_2);
	CHECK_INT(policy_parse_version("1.3"), POLICY_TLS1_3);
	CHECK_INT(policy_parse_version("1.4"), -1);
	CHECK_INT(policy_parse_version("TLSv1.2"), -1);
	CHECK_INT(policy_parse_version(""), -1);
	CHECK_INT(policy_parse_version(NULL), -1);
	CHECK_STR(policy_version_name(POLICY_TLS1_0), "1.0");
	CHECK_STR(policy_version_name(POLICY_TLS1_3), "1.3");
	CHECK_STR(policy_version_name(0x9999), "unknown");
	CHECK_STR(policy_tls_name(POLICY_TLS_OFF), "off");
	CHECK_STR(policy_tls_name(POLICY_TLS_OPPORTUNISTIC), "opportunistic");
	CHECK_STR(policy_tls_name(POLICY_TLS_MANDATORY), "mandatory");
	CHECK_STR(policy_verify_name(POLICY_VERIFY_STRICT), "strict");
	CHECK_STR(policy_verify_name(POLICY_VERIFY_NONE), "none");
}

/* A set with every kind of match, and one profile per match. */
static void
build_lookup_set(struct policy_set *set, int with_star)
{
	policy_set_init(set);
	KEY_OK(set, "profile p_addr", "tls", "off");
	KEY_OK(set, "profile p_exam", "tls", "mandatory");
	KEY_OK(set, "profile p_sub", "verify", "none");
	KEY_OK(set, "profile p_other", "tls", "mandatory");
	KEY_OK(set, "profile p_star", "tls", "opportunistic");
	KEY_OK(set, "profile p_dflt", "tls", "mandatory");
	KEY_OK(set, "match user@example.com", "profile", "p_addr");
	KEY_OK(set, "match Example.COM", "profile", "p_exam");
	KEY_OK(set, "match sub.example.com.", "profile", "p_sub");
	KEY_OK(set, "match other.org", "profile", "p_other");
	KEY_OK(set, "match com", "profile", "mandatory");
	if (with_star)
		KEY_OK(set, "match *", "profile", "p_star");
	set->default_profile = policy_profile_find(set, "p_dflt");
}

static void
test_lookup_precedence(void)
{
	static const struct {
		const char *rcpt, *profile, *pattern;
	} cases[] = {
		/* address > exact domain > parent > "*" */
		{ "user@example.com", "p_addr", "user@example.com" },
		{ "User@Example.COM", "p_addr", "user@example.com" },
		{ "USER@example.com.", "p_addr", "user@example.com" },
		{ "other@example.com", "p_exam", "example.com" },
		{ "x@EXAMPLE.com.", "p_exam", "example.com" },
		{ "x@a.example.com", "p_exam", "example.com" },
		{ "x@a.b.c.example.com", "p_exam", "example.com" },
		{ "x@sub.example.com", "p_sub", "sub.example.com" },
		{ "x@deep.er.sub.example.com", "p_sub", "sub.example.com" },
		{ "user@sub.example.com", "p_sub", "sub.example.com" },
		{ "x@other.org", "p_other", "other.org" },
		{ "x@mx.other.org", "p_other", "other.org" },
		/* the longest parent, down to a TLD match */
		{ "x@unrelated.com", "mandatory", "com" },
		{ "x@badexample.com", "mandatory", "com" },
		/* label boundaries only */
		{ "x@badexample.net", "p_star", "*" },
		{ "x@example.com.evil", "p_star", "*" },
		{ "x@example.comx", "p_star", "*" },
		{ "x@xother.org", "p_star", "*" },
		{ "x@nowhere.net", "p_star", "*" },
		{ "x@", "p_star", "*" },
		{ "", "p_star", "*" },
		/* a bare domain, and an empty local part */
		{ "example.com", "p_exam", "example.com" },
		{ "@example.com", "p_exam", "example.com" },
		/* the last "@" splits (quoted local parts) */
		{ "\"a@b\"@other.org", "p_other", "other.org" },
	};
	struct policy_set set;
	struct policy_decision d;
	size_t i;

	build_lookup_set(&set, 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		policy_lookup(&set, cases[i].rcpt, &d);
		CHECK(d.profile != NULL && d.match != NULL);
		if (d.profile == NULL || d.match == NULL) {
			fprintf(stderr, "  recipient \"%s\"\n", cases[i].rcpt);
			continue;
		}
		if (strcmp(d.profile->name, cases[i].profile) != 0 ||
		    strcmp(d.match->pattern, cases[i].pattern) != 0)
			fprintf(stderr, "  recipient \"%s\": %s via %s\n",
			    cases[i].rcpt, d.profile->name, d.match->pattern);
		CHECK_STR(d.profile->name, cases[i].profile);
		CHECK_STR(d.match->pattern, cases[i].pattern);
	}
	policy_set_free(&set);
}

static void
test_lookup_default(void)
{
	static const char *const rcpts[] = { "x@nowhere.net", "x@",
		"x@badexample.org", "" };
	struct policy_set set;
	struct policy_decision d;
	size_t i;

	build_lookup_set(&set, 0);
	for (i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++) {
		policy_lookup(&set, rcpts[i], &d);
		CHECK(d.match == NULL);
		CHECK(d.nexthop == NULL);
		CHECK_STR(d.profile->name, "p_dflt");
	}
	policy_lookup(&set, "a@example.com", &d);
	CHECK_STR(d.profile->name, "p_exam");
	policy_set_free(&set);
}

static void
test_lookup_mx_nexthop(void)
{
	struct policy_set set;
	struct policy_decision d;
	struct policy_origin o;
	char err[POLICY_ERR_MAX];

	policy_set_init(&set);
	KEY_OK(&set, "profile strict", "mx", "mx1.example.com, *.mail.example.com");
	KEY_OK(&set, "match example.com", "profile", "strict");
	KEY_OK(&set, "match own.example.com", "profile", "strict");
	KEY_OK(&set, "match own.example.com", "mx", "MX.Own.Example.COM.");
	KEY_OK(&set, "match own.example.com", "nexthop", "[2001:db8::25]:2525");
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), 0);

	policy_lookup(&set, "a@example.com", &d);
	CHECK_INT(d.nmx, 2);
	CHECK_STR(d.mx[0], "mx1.example.com");
	CHECK_STR(d.mx[1], "*.mail.example.com");
	CHECK(d.nexthop == NULL);

	policy_lookup(&set, "a@own.example.com", &d);
	CHECK_INT(d.nmx, 1);
	CHECK_STR(d.mx[0], "mx.own.example.com");
	CHECK_STR(d.nexthop, "[2001:db8::25]:2525");
	CHECK_STR(d.profile->name, "strict");

	/* A nexthop is stored as the session will parse it. */
	KEY_OK(&set, "match dot.example", "profile", "mandatory");
	KEY_OK(&set, "match dot.example", "nexthop", "Relay.Example.NET.:587");
	policy_lookup(&set, "a@dot.example", &d);
	CHECK_STR(d.nexthop, "relay.example.net:587");

	policy_lookup(&set, "a@elsewhere.org", &d);
	CHECK_INT(d.nmx, 0);
	CHECK_STR(d.profile->name, "opportunistic");
	policy_set_free(&set);
}

static void
test_mx_pattern(void)
{
	static const struct {
		const char *pattern, *host;
		int want;
	} cases[] = {
		{ "*.example.com", "mx.example.com", 1 },
		{ "*.example.com", "MX.Example.COM", 1 },
		{ "*.example.com", "mx.example.com.", 1 },
		{ "*.example.com.", "mx.example.com", 1 },
		{ "*.example.com", "a.b.example.com", 0 },
		{ "*.example.com", "example.com", 0 },
		{ "*.example.com", ".example.com", 0 },
		{ "*.example.com", "mxexample.com", 0 },
		{ "*.example.com", "mx.example.org", 0 },
		{ "*.example.com", "mx.example.com.evil", 0 },
		{ "mx.example.com", "mx.example.com", 1 },
		{ "mx.example.com", "MX.EXAMPLE.COM.", 1 },
		{ "mx.example.com.", "mx.example.com", 1 },
		{ "mx.example.com", "mx.example.co", 0 },
		{ "mx.example.com", "a.mx.example.com", 0 },
		{ "mx.example.com", "example.com", 0 },
		{ "*", "mx.example.com", 0 },
		{ "", "mx.example.com", 0 },
		{ "mx.example.com", "", 0 },
		{ ".", ".", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = policy_mx_pattern_match(cases[i].pattern,
		    cases[i].host);

		if (got != cases[i].want)
			fprintf(stderr, "  \"%s\" vs \"%s\"\n", cases[i].pattern,
			    cases[i].host);
		CHECK_INT(got, cases[i].want);
	}
	CHECK_INT(policy_mx_pattern_match(NULL, "a"), 0);
	CHECK_INT(policy_mx_pattern_match("a", NULL), 0);
}

static void
test_set_key_errors(void)
{
	static const struct {
		const char *section, *key, *value;
		int rc;
		const char *err;
	} cases[] = {
		{ "proxy", "listen", "x", 1, "" },
		{ "profiles x", "tls", "off", 1, "" },
		{ "matches x", "tls", "off", 1, "" },
		{ "profile x", "tls", "bogus", -1,
		    "tls: \"bogus\": expected opportunistic, mandatory or off" },
		{ "profile x", "verify", "maybe", -1,
		    "verify: \"maybe\": expected strict or none" },
		{ "profile x", "min_version", "1.4", -1,
		    "min_version: \"1.4\": expected 1.0, 1.1, 1.2 or 1.3" },
		{ "profile x", "max_version", "3", -1,
		    "max_version: \"3\": expected 1.0, 1.1, 1.2 or 1.3" },
		{ "profile x", "colour", "red", -1, "colour: unknown key" },
		{ "profile x", "tls", "", -1, "tls: empty value" },
		{ "profile b@d", "tls", "off", -1,
		    "tls: invalid profile name \"b@d\" (letters, digits, \"_\", "
		    "\".\" and \"-\" only)" },
		{ "profile", "tls", "off", -1, "tls: missing profile name" },
		{ "profile x", "mx", "a..b", -1,
		    "mx: invalid name \"a..b\" (a host name, or \"*.\" and a "
		    "domain)" },
		{ "profile x", "mx", "mx.*.example.com", -1,
		    "mx: invalid name \"mx.*.example.com\" (a host name, or "
		    "\"*.\" and a domain)" },
		{ "profile x", "mx", "mx.-bücher.example", -1,
		    "mx: invalid name \"mx.-bücher.example\": string start/ends "
		    "with forbidden hyphen" },
		{ "profile x", "mx", "*.xn--zz.example", -1,
		    "mx: invalid name \"*.xn--zz.example\": an \"xn--\" label "
		    "is not a valid A-label" },
		{ "profile x", "mx", " , ", -1, "mx: empty list" },
		{ "profile x", "mx",
		    "a.example,b.example,c.example,d.example,e.example,f.example,"
		    "g.example,h.example,i.example,j.example,k.example,l.example,"
		    "m.example,n.example,o.example,p.example,q.example", -1,
		    "mx: too many names (max 16)" },
		{ "match .example.com", "profile", "x", -1,
		    "profile: \".example.com\": a leading \".\" is not allowed "
		    "(\"example.com\" covers its subdomains)" },
		{ "match *.example.com", "profile", "x", -1,
		    "profile: \"*.example.com\": write \"example.com\" (it covers "
		    "the domain and its subdomains)" },
		{ "match bücher-.example", "profile", "x", -1,
		    "profile: invalid domain in \"bücher-.example\": string "
		    "start/ends with forbidden hyphen" },
		{ "match user@a\xe2\x80\x8d\xc3\xbc.example", "profile", "x", -1,
		    "profile: invalid domain in \"user@a\xe2\x80\x8d\xc3\xbc"
		    ".example\": string contains a forbidden context-j "
		    "character" },
		{ "match \xff.example", "profile", "x", -1,
		    "profile: invalid domain in \"\xff.example\": string "
		    "encoding error" },
		{ "match bücher.example/x", "profile", "x", -1,
		    "profile: invalid domain in \"bücher.example/x\": its "
		    "A-label form is not a valid host name" },
		{ "match xn--zz.example", "profile", "x", -1,
		    "profile: invalid domain in \"xn--zz.example\": an "
		    "\"xn--\" label is not a valid A-label" },
		{ "match xn--x-jfa.example", "profile", "x", -1,
		    "profile: invalid domain in \"xn--x-jfa.example\": an "
		    "\"xn--\" label is not a valid A-label" },
		{ "match exa mple.com", "profile", "x", -1,
		    "profile: invalid pattern \"exa mple.com\"" },
		{ "match ex_ample.com", "profile", "x", -1,
		    "profile: invalid domain in \"ex_ample.com\"" },
		{ "match -example.com", "profile", "x", -1,
		    "profile: invalid domain in \"-example.com\"" },
		{ "match @example.com", "profile", "x", -1,
		    "profile: invalid local part in \"@example.com\"" },
		{ "match user@", "profile", "x", -1,
		    "profile: invalid domain in \"user@\"" },
		{ "match", "profile", "x", -1,
		    "profile: missing pattern in [match]" },
		{ "match example.com", "profile", "b@d", -1,
		    "profile: invalid profile name \"b@d\" (letters, digits, "
		    "\"_\", \".\" and \"-\" only)" },
		{ "match example.com", "tls", "off", -1, "tls: unknown key" },
		{ "match example.com", "nexthop", "[::1]:99999", -1,
		    "nexthop: invalid \"[::1]:99999\": expected HOST[:PORT] "
		    "(HOST a name, an IPv4 address or [IPv6 address]; PORT "
		    "1-65535)" },
		{ "match example.com", "nexthop", "2001:db8::1", -1,
		    "nexthop: invalid \"2001:db8::1\": expected HOST[:PORT] "
		    "(HOST a name, an IPv4 address or [IPv6 address]; PORT "
		    "1-65535)" },
		{ "match example.com", "nexthop", "mx.example.com:0", -1,
		    "nexthop: invalid \"mx.example.com:0\": expected HOST[:PORT] "
		    "(HOST a name, an IPv4 address or [IPv6 address]; PORT "
		    "1-65535)" },
		{ "match example.com", "nexthop", "1.2.3:25", -1,
		    "nexthop: invalid \"1.2.3:25\": expected HOST[:PORT] "
		    "(HOST a name, an IPv4 address or [IPv6 address]; PORT "
		    "1-65535)" },
		/* valid ones, for contrast */
		{ "profile ok-1.x_y", "tls", "off", 0, "" },
		{ "  profile   spaced  ", "verify", "none", 0, "" },
		{ "match example.com", "nexthop", "mx.example.com", 0, "" },
		{ "match example.com", "nexthop", "192.0.2.1:2525", 0, "" },
		{ "match example.com", "nexthop", "[2001:db8::1]", 0, "" },
		{ "match example.com", "mx", "*.example.com mx.example.net.", 0,
		    "" },
		{ "match xn--bcher-kva.example", "profile", "x", 0, "" },
		{ "match Postmaster@Example.COM.", "profile", "x", 0, "" },
	};
	struct policy_set set;
	char err[POLICY_ERR_MAX];
	size_t i;
	int r;

	policy_set_init(&set);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = key(&set, cases[i].section, cases[i].key, cases[i].value, err,
		    sizeof(err));
		if (r != cases[i].rc || (r < 0 && strcmp(err, cases[i].err) != 0))
			fprintf(stderr, "  case %zu: [%s] %s = %s\n", i,
			    cases[i].section, cases[i].key, cases[i].value);
		CHECK_INT(r, cases[i].rc);
		if (cases[i].rc < 0)
			CHECK_STR(err, cases[i].err);
	}
	CHECK(policy_profile_find(&set, "spaced") >= 0);
	CHECK(policy_profile_find(&set, "ok-1.x_y") >= 0);
	r = 0;
	for (i = 0; i < (size_t)set.nmatches; i++)
		if (strcmp(set.matches[i].pattern, "postmaster@example.com") == 0)
			r = 1;
	CHECK(r);
	policy_set_free(&set);
}

static void
test_profile_values(void)
{
	struct policy_set set;
	const struct policy_profile *p;
	char err[POLICY_ERR_MAX];
	struct policy_origin o;
	int i;

	policy_set_init(&set);
	KEY_OK(&set, "profile partners", "tls", "mandatory");
	KEY_OK(&set, "profile partners", "verify", "none");
	KEY_OK(&set, "profile partners", "min_version", "1.3");
	KEY_OK(&set, "profile partners", "max_version", "1.3");
	KEY_OK(&set, "profile partners", "ciphers", "ECDHE+AESGCM");
	KEY_OK(&set, "profile partners", "ca_bundle", "bundles/p.pem");
	KEY_OK(&set, "profile partners", "ciphers", "ECDHE+CHACHA20");
	i = policy_profile_find(&set, "partners");
	CHECK_INT(i, 3);
	p = &set.profiles[i];
	CHECK_INT(p->tls, POLICY_TLS_MANDATORY);
	CHECK_INT(p->verify, POLICY_VERIFY_NONE);
	CHECK_INT(p->min_version, POLICY_TLS1_3);
	CHECK_INT(p->max_version, POLICY_TLS1_3);
	CHECK_STR(p->ciphers, "ECDHE+CHACHA20");
	CHECK_STR(p->ca_bundle, "bundles/p.pem");
	CHECK_INT(p->builtin, 0);
	CHECK_STR(p->origin.file, "t.ini");
	CHECK(p->origin.line > 0);

	/* A new profile starts like the built-in opportunistic one. */
	KEY_OK(&set, "profile fresh", "min_version", "1.2");
	p = &set.profiles[policy_profile_find(&set, "fresh")];
	CHECK_INT(p->tls, POLICY_TLS_OPPORTUNISTIC);
	CHECK_INT(p->verify, POLICY_VERIFY_STRICT);
	CHECK_INT(p->max_version, 0);

	/* Declaring a built-in overrides it in place. */
	KEY_OK(&set, "profile mandatory", "verify", "none");
	CHECK_INT(policy_profile_find(&set, "mandatory"), 1);
	CHECK_INT(set.profiles[1].verify, POLICY_VERIFY_NONE);
	CHECK_INT(set.profiles[1].tls, POLICY_TLS_MANDATORY);
	CHECK_INT(set.profiles[1].builtin, 1);
	CHECK(set.profiles[1].origin.line > 0);
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), 0);
	policy_set_free(&set);
}

/* Where each key came from: the line of the key, 0 when not set. */
static void
test_origins(void)
{
	struct policy_set set;
	const struct policy_profile *p;
	const struct policy_match *m;
	char err[POLICY_ERR_MAX];
	int first, k;

	policy_set_init(&set);
	for (k = 0; k < POLICY_P_NKEYS; k++) {
		CHECK_INT(set.profiles[0].origins[k].line, 0);
		CHECK_INT(set.profiles[1].origins[k].line, 0);
	}
	first = t_line + 1;
	KEY_OK(&set, "profile p", "tls", "mandatory");		/* first */
	KEY_OK(&set, "profile p", "verify", "none");		/* +1 */
	KEY_OK(&set, "profile p", "min_version", "1.3");	/* +2 */
	KEY_OK(&set, "profile p", "max_version", "1.3");	/* +3 */
	KEY_OK(&set, "profile p", "ciphers", "ECDHE+AESGCM");	/* +4 */
	KEY_OK(&set, "profile p", "ca_bundle", "p.pem");	/* +5 */
	KEY_OK(&set, "profile p", "mx", "mx.example.com");	/* +6 */
	/* a failed key leaves the origin alone */
	CHECK_INT(key(&set, "profile p", "tls", "nope", err, sizeof(err)), -1);
	CHECK_INT(key(&set, "profile p", "mx", "a..b", err, sizeof(err)), -1);
	KEY_OK(&set, "profile q", "ciphers", "ECDHE+CHACHA20");
	KEY_OK(&set, "match example.com", "nexthop", "relay.example.net");
	KEY_OK(&set, "match example.com", "profile", "p");
	KEY_OK(&set, "match example.com", "mx", "*.example.com");

	p = &set.profiles[policy_profile_find(&set, "p")];
	CHECK_INT(p->origin.line, first);
	CHECK_INT(p->origins[POLICY_P_TLS].line, first);
	CHECK_INT(p->origins[POLICY_P_VERIFY].line, first + 1);
	CHECK_INT(p->origins[POLICY_P_MIN_VERSION].line, first + 2);
	CHECK_INT(p->origins[POLICY_P_MAX_VERSION].line, first + 3);
	CHECK_INT(p->origins[POLICY_P_CIPHERS].line, first + 4);
	CHECK_INT(p->origins[POLICY_P_CA_BUNDLE].line, first + 5);
	CHECK_INT(p->origins[POLICY_P_MX].line, first + 6);
	CHECK_STR(p->origins[POLICY_P_MX].file, "t.ini");
	p = &set.profiles[policy_profile_find(&set, "q")];
	CHECK_INT(p->origins[POLICY_P_CIPHERS].line, first + 9);
	CHECK_INT(p->origins[POLICY_P_TLS].line, 0);
	CHECK_INT(p->origins[POLICY_P_MX].line, 0);
	CHECK_INT(set.nmatches, 1);
	m = &set.matches[0];
	CHECK_INT(m->origin.line, first + 10);
	CHECK_INT(m->origins[POLICY_M_NEXTHOP].line, first + 10);
	CHECK_INT(m->origins[POLICY_M_PROFILE].line, first + 11);
	CHECK_INT(m->origins[POLICY_M_MX].line, first + 12);
	policy_set_free(&set);
}

/* IDNA: patterns and recipients meet in the A-label form. */
static void
test_idna_lookup(void)
{
	static const struct {
		const char *rcpt, *pattern, *domain;
	} cases[] = {
		/* patterns are kept in A-label form, whatever was written */
		/* a UTF-8 recipient matches an xn-- pattern */
		{ "user@bücher.example", "xn--bcher-kva.example",
		    "xn--bcher-kva.example" },
		{ "user@mx.bücher.example.", "xn--bcher-kva.example",
		    "mx.xn--bcher-kva.example" },
		/* and an xn-- recipient a UTF-8 pattern */
		{ "user@xn--mller-kva.example", "xn--mller-kva.example",
		    "xn--mller-kva.example" },
		{ "user@a.xn--mller-kva.example", "xn--mller-kva.example",
		    "a.xn--mller-kva.example" },
		/* mixed case, both forms */
		{ "user@BÜCHER.Example", "xn--bcher-kva.example",
		    "xn--bcher-kva.example" },
		{ "user@XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example",
		    "xn--bcher-kva.example" },
		{ "user@XN--MLLER-KVA.Example", "xn--mller-kva.example",
		    "xn--mller-kva.example" },
		{ "user@MÜLLER.EXAMPLE", "xn--mller-kva.example",
		    "xn--mller-kva.example" },
		/* NFD input is normalized: e + U+0301 is é */
		{ "x@cafe\xcc\x81.example", "xn--caf-dma.example",
		    "xn--caf-dma.example" },
		/* an ideographic full stop separates labels too */
		{ "x@bücher\xe3\x80\x82" "example", "xn--bcher-kva.example",
		    "xn--bcher-kva.example" },
		/* nontransitional: faß is not fass */
		{ "x@faß.example", "xn--fa-hia.example", "xn--fa-hia.example" },
		{ "x@fass.example", "fass.example", "fass.example" },
		/* a symbol IDNA2008 disallows but UTS #46 allows */
		{ "x@☃.example", "xn--n3h.example", "xn--n3h.example" },
		/* the address match: the local part as given, any case */
		{ "Jörg@Bücher.example", "jörg@xn--bcher-kva.example",
		    "xn--bcher-kva.example" },
		{ "jörg@xn--bcher-kva.example", "jörg@xn--bcher-kva.example",
		    "xn--bcher-kva.example" },
		{ "JÖRG@bücher.example", "xn--bcher-kva.example",
		    "xn--bcher-kva.example" },
		/* a bare domain */
		{ "bücher.example", "xn--bcher-kva.example",
		    "xn--bcher-kva.example" },
		/* ASCII is only lower-cased: "ab--c" is no IDNA name */
		{ "x@ab--c.example", "*", "ab--c.example" },
		{ "x@ex_ample.COM", "*", "ex_ample.com" },
	};
	struct policy_set set;
	struct policy_decision d;
	char err[POLICY_ERR_MAX];
	size_t i;

	policy_set_init(&set);
	KEY_OK(&set, "match xn--bcher-kva.example", "profile", "mandatory");
	KEY_OK(&set, "match müller.example", "profile", "mandatory");
	KEY_OK(&set, "match café.example", "profile", "mandatory");
	KEY_OK(&set, "match xn--fa-hia.example", "profile", "mandatory");
	KEY_OK(&set, "match fass.example", "profile", "mandatory");
	KEY_OK(&set, "match xn--n3h.example", "profile", "mandatory");
	KEY_OK(&set, "match Jörg@Bücher.Example", "profile", "mandatory");
	KEY_OK(&set, "match *", "profile", "opportunistic");
	/* one pattern, whichever form it is written in */
	CHECK_INT(key(&set, "match XN--MLLER-KVA.example", "mx", "mx.example",
	    err, sizeof(err)), 0);
	CHECK_INT(set.nmatches, 8);
	CHECK_STR(set.matches[1].pattern, "xn--mller-kva.example");
	CHECK_INT(set.matches[1].nmx, 1);
	CHECK_STR(set.matches[6].pattern, "jörg@xn--bcher-kva.example");

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int bad = 0;

		CHECK_INT(policy_lookup(&set, cases[i].rcpt, &d), POLICY_OK);
		CHECK_INT(d.status, POLICY_OK);
		if (d.match == NULL ||
		    strcmp(d.match->pattern, cases[i].pattern) != 0 ||
		    strcmp(d.domain, cases[i].domain) != 0)
			bad = 1;
		if (bad)
			fprintf(stderr, "  %s: got [match %s] domain %s, want "
			    "[match %s] domain %s\n", cases[i].rcpt,
			    d.match ? d.match->pattern : "(none)", d.domain,
			    cases[i].pattern, cases[i].domain);
		CHECK(!bad);
	}
	policy_set_free(&set);
}

/* A recipient domain that has no A-label form: a status, and "*". */
static void
test_idna_bad_recipient(void)
{
	static const struct {
		const char *rcpt, *why;
	} cases[] = {
		{ "x@-bücher.example", "string start/ends with forbidden hyphen" },
		{ "x@bücher..example", "its A-label form is not a valid host "
		    "name" },
		{ "x@b\xfc" "cher.example", "string encoding error" },
		{ "x@a\xe2\x80\x8d\xc3\xbc.example",
		    "string contains a forbidden context-j character" },
		{ "x@\xcc\x81" "a.example",
		    "string contains a forbidden leading combining character" },
		{ "x@faß☃.example", "string contains a disallowed character" },
		{ "x@ü.example/", "its A-label form is not a valid host name" },
	};
	struct policy_set set;
	struct policy_decision d;
	char longname[400];
	size_t i;

	policy_set_init(&set);
	KEY_OK(&set, "profile p_dflt", "tls", "mandatory");
	set.default_profile = policy_profile_find(&set, "p_dflt");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(policy_lookup(&set, cases[i].rcpt, &d),
		    POLICY_BAD_DOMAIN);
		CHECK_INT(d.status, POLICY_BAD_DOMAIN);
		CHECK_STR(d.why, cases[i].why);
		CHECK_STR(d.domain, "");
		CHECK(d.match == NULL);
		CHECK_STR(d.profile->name, "p_dflt");
	}
	/* too long for DNS, even in ASCII */
	memset(longname, 'a', sizeof(longname));
	memcpy(longname, "x@", 2);
	memcpy(longname + sizeof(longname) - 9, ".example", 9);
	CHECK_INT(policy_lookup(&set, longname, &d), POLICY_BAD_DOMAIN);
	CHECK_STR(d.why, "domain name too long");
	/* "*" still applies: it means everyone */
	KEY_OK(&set, "match *", "profile", "opportunistic");
	CHECK_INT(policy_lookup(&set, "x@-bücher.example", &d),
	    POLICY_BAD_DOMAIN);
	CHECK(d.match != NULL && strcmp(d.match->pattern, "*") == 0);
	CHECK_STR(d.profile->name, "opportunistic");
	/* no domain at all is no IDNA error (nothing to convert) */
	CHECK_INT(policy_lookup(&set, "x@", &d), POLICY_OK);
	CHECK_STR(d.domain, "");
	policy_set_free(&set);
}

static void
test_domain_to_ascii(void)
{
	static const struct {
		const char *in, *out; /* out NULL: error */
	} cases[] = {
		{ "example.com", "example.com" },
		{ "Example.COM", "example.com" },
		{ "bücher.example", "xn--bcher-kva.example" },
		{ "Bücher.Example", "xn--bcher-kva.example" },
		{ "XN--BCHER-KVA.example", "xn--bcher-kva.example" },
		{ "xn--n3h.example", "xn--n3h.example" },
		{ "☃.example", "xn--n3h.example" },
		{ "faß.de", "xn--fa-hia.de" },
		{ "ΣΑΣ.gr", "xn--mxa9ab.gr" },
		{ "xn--zz.example", NULL },
		{ "xn--x-jfa.example", NULL },
		{ "ex ample.com", NULL },
		{ "ab--c.example", "ab--c.example" },
		{ "example.com.", NULL }, /* callers strip the dot */
		{ "", NULL },
		{ "-ü.example", NULL },
	};
	char out[POLICY_DOMAIN_MAX + 1];
	const char *why;
	size_t i;
	int r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why = NULL;
		r = policy_domain_to_ascii(cases[i].in, strlen(cases[i].in), out,
		    &why);
		if (cases[i].out == NULL) {
			if (r != -1 || why == NULL || out[0] != '\0')
				fprintf(stderr, "  \"%s\": want an error, got %s\n",
				    cases[i].in, out);
			CHECK_INT(r, -1);
			CHECK(why != NULL);
			CHECK_STR(out, "");
		} else {
			if (r != 0)
				fprintf(stderr, "  \"%s\": %s\n", cases[i].in, why);
			CHECK_INT(r, 0);
			CHECK_STR(out, cases[i].out);
		}
	}
	/* a length, not a C string */
	CHECK_INT(policy_domain_to_ascii("bücher.example.org", 15, out, &why),
	    0);
	CHECK_STR(out, "xn--bcher-kva.example");
}

static void
test_finish(void)
{
	struct policy_set set;
	struct policy_origin o;
	char err[POLICY_ERR_MAX];
	int line;

	/* A match may name a profile declared later. */
	policy_set_init(&set);
	KEY_OK(&set, "match example.com", "profile", "later");
	KEY_OK(&set, "profile later", "tls", "mandatory");
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), 0);
	policy_set_free(&set);

	/* ... but it must be declared somewhere. */
	policy_set_init(&set);
	KEY_OK(&set, "match example.com", "mx", "mx.example.com");
	line = t_line;
	KEY_OK(&set, "match example.com", "profile", "never");
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), -1);
	CHECK_STR(err, "[match example.com] profile: unknown profile \"never\"");
	CHECK_INT(o.line, line);
	CHECK_STR(o.file, "t.ini");
	policy_set_free(&set);

	policy_set_init(&set);
	KEY_OK(&set, "match example.com", "mx", "mx.example.com");
	line = t_line;
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), -1);
	CHECK_STR(err, "[match example.com] profile: required");
	CHECK_INT(o.line, line);
	policy_set_free(&set);

	/* A literal nexthop needs names to check, unless nothing is checked. */
	policy_set_init(&set);
	KEY_OK(&set, "match example.com", "profile", "mandatory");
	KEY_OK(&set, "match example.com", "nexthop", "192.0.2.25");
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), -1);
	CHECK_STR(err, "[match example.com] nexthop: nexthop is an address: "
			"set mx to the names its certificate must match");
	KEY_OK(&set, "match example.com", "mx", "mx.example.com");
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), 0);
	KEY_OK(&set, "match example.org", "profile", "relaxed");
	KEY_OK(&set, "match example.org", "nexthop", "[2001:db8::1]:25");
	KEY_OK(&set, "profile relaxed", "verify", "none");
	KEY_OK(&set, "match example.net", "profile", "clear");
	KEY_OK(&set, "match example.net", "nexthop", "198.51.100.1");
	KEY_OK(&set, "profile clear", "tls", "off");
	KEY_OK(&set, "match example.info", "profile", "named");
	KEY_OK(&set, "match example.info", "nexthop", "[2001:db8::2]");
	KEY_OK(&set, "profile named", "mx", "*.example.info");
	KEY_OK(&set, "match example.biz", "profile", "mandatory");
	KEY_OK(&set, "match example.biz", "nexthop", "smtp.example.biz:587");
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), 0);

	/* The default must be a declared profile. */
	set.default_profile = policy_profile_find(&set, "relaxed");
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), 0);
	KEY_OK(&set, "match example.edu", "profile", "ghost");
	set.matches[set.nmatches - 1].profile = 0;
	set.default_profile = policy_profile_find(&set, "ghost");
	set.default_origin.file = "t.ini";
	set.default_origin.line = 99;
	CHECK_INT(policy_set_finish(&set, &o, err, sizeof(err)), -1);
	CHECK_STR(err, "[policy] default: unknown profile \"ghost\"");
	CHECK_INT(o.line, 99);
	policy_set_free(&set);
}

static void
test_limits(void)
{
	struct policy_set set;
	char section[64], err[POLICY_ERR_MAX];
	int i, r = 0;

	policy_set_init(&set);
	for (i = 0; i < POLICY_PROFILES_MAX - 3 && r == 0; i++) {
		snprintf(section, sizeof(section), "profile p%d", i);
		r = key(&set, section, "tls", "off", err, sizeof(err));
	}
	CHECK_INT(r, 0);
	CHECK_INT(set.nprofiles, POLICY_PROFILES_MAX);
	CHECK_INT(key(&set, "profile one-too-many", "tls", "off", err,
	    sizeof(err)), -1);
	CHECK_STR(err, "tls: too many profiles (max 64)");
	CHECK_INT(key(&set, "match example.com", "profile", "one-too-many", err,
	    sizeof(err)), -1);
	CHECK_STR(err, "profile: too many profiles (max 64)");
	policy_set_free(&set);

	policy_set_init(&set);
	for (i = 0; i < POLICY_MATCHES_MAX && r == 0; i++) {
		snprintf(section, sizeof(section), "match d%d.example", i);
		r = key(&set, section, "profile", "mandatory", err, sizeof(err));
	}
	CHECK_INT(r, 0);
	CHECK_INT(set.nmatches, POLICY_MATCHES_MAX);
	CHECK_INT(key(&set, "match one.too.many", "profile", "mandatory", err,
	    sizeof(err)), -1);
	CHECK_STR(err, "profile: too many matches (max 4096)");
	/* The last one still resolves. */
	{
		struct policy_decision d;

		policy_lookup(&set, "x@d4095.example", &d);
		CHECK(d.match != NULL);
		CHECK_STR(d.profile->name, "mandatory");
	}
	policy_set_free(&set);
}

int
main(void)
{
	RUN(test_init);
	RUN(test_names);
	RUN(test_lookup_precedence);
	RUN(test_lookup_default);
	RUN(test_lookup_mx_nexthop);
	RUN(test_mx_pattern);
	RUN(test_set_key_errors);
	RUN(test_profile_values);
	RUN(test_finish);
	RUN(test_limits);
	RUN(test_origins);
	RUN(test_idna_lookup);
	RUN(test_idna_bad_recipient);
	RUN(test_domain_to_ascii);
	return T_DONE();
}
