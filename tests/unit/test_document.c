/*
 * policy/document.c: the central policy document (inih syntax, config
 * conventions, "LINE: why" errors, refused whole) and its merge with the
 * local config's set.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "inireader.h"
#include "t.h"

static struct policy_document doc;
static struct document_errors errs;

static int
parse(const char *text)
{
	document_errors_free(&errs);
	document_free(&doc);
	return document_parse(text, strlen(text), "https://p.example/doc",
	    &doc, &errs);
}

/* The document is refused with exactly these errors, in this order. */
static int
errors_are(const char *text, ...)
{
	va_list ap;
	const char *want;
	int i = 0, ok = 1;

	if (parse(text) != -1) {
		fprintf(stderr, "  accepted:\n%s\n", text);
		return 0;
	}
	/* Refused whole: nothing of it is left. */
	if (doc.set.nmatches != 0 || doc.set.nprofiles != 0 || doc.name != NULL)
		ok = 0;
	va_start(ap, text);
	while ((want = va_arg(ap, const char *)) != NULL) {
		if (i >= errs.n || strcmp(errs.msg[i], want) != 0) {
			fprintf(stderr, "  error %d: \"%s\", want \"%s\"\n", i,
			    i < errs.n ? errs.msg[i] : "(none)", want);
			ok = 0;
		}
		i++;
	}
	va_end(ap);
	if (i != errs.n) {
		fprintf(stderr, "  %d errors, want %d:\n", errs.n, i);
		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "    %s\n", errs.msg[i]);
		ok = 0;
	}
	return ok;
}

static const struct policy_match *
find_match(const struct policy_set *s, const char *pattern)
{
	int i;

	for (i = 0; i < s->nmatches; i++)
		if (strcmp(s->matches[i].pattern, pattern) == 0)
			return &s->matches[i];
	return NULL;
}

static void
valid_document(void)
{
	const struct policy_profile *p;
	const struct policy_match *m;
	struct policy_decision d;
	int i;

	CHECK_INT(parse(
	    "; the central policy\n"			   /* 1 */
	    "[document]\n"				   /* 2 */
	    "serial = 2024061501\n"			   /* 3 */
	    "\n"					   /* 4 */
	    "[profile bank]\n"				   /* 5 */
	    "tls = mandatory\n"				   /* 6 */
	    "min_version = 1.3\n"			   /* 7 */
	    "mx = mx1.bank.example,\n"			   /* 8 */
	    "     mx2.bank.example ; inline comment\n"	   /* 9 */
	    "\t*.mx.bank.example\n"			   /* 10 */
	    "# a comment between sections\n"		   /* 11 */
	    "[match bank.example]\n"			   /* 12 */
	    "profile = bank\n"				   /* 13 */
	    "[match User@Example.COM.]\n"		   /* 14 */
	    "profile: mandatory\n"			   /* 15 */
	    "nexthop = relay.example:2525\n"), 0);	   /* 16 */
	CHECK_INT(errs.n, 0);
	CHECK(doc.serial == 2024061501ULL);
	CHECK_INT(doc.serial_line, 3);
	CHECK_STR(doc.name, "https://p.example/doc");

	i = policy_profile_find(&doc.set, "bank");
	CHECK(i >= 0);
	if (i < 0)
		return;
	p = &doc.set.profiles[i];
	CHECK_INT(p->tls, POLICY_TLS_MANDATORY);
	CHECK_INT(p->min_version, POLICY_TLS1_3);
	CHECK_INT(p->nmx, 3);
	if (p->nmx == 3) {
		CHECK_STR(p->mx[0], "mx1.bank.example");
		CHECK_STR(p->mx[1], "mx2.bank.example");
		CHECK_STR(p->mx[2], "*.mx.bank.example");
	}
	/* Origins: the document's name, the header line, each key's line. */
	CHECK_STR(p->origin.file, "https://p.example/doc");
	CHECK_INT(p->origin.line, 5);
	CHECK_INT(p->origins[POLICY_P_MIN_VERSION].line, 7);
	CHECK_INT(p->origins[POLICY_P_MX].line, 8);

	m = find_match(&doc.set, "user@example.com");
	CHECK(m != NULL);
	if (m != NULL) {
		CHECK_STR(doc.set.profiles[m->profile].name, "mandatory");
		CHECK_STR(m->nexthop, "relay.example:2525");
		CHECK_INT(m->origin.line, 14);
		CHECK_INT(m->origins[POLICY_M_NEXTHOP].line, 16);
	}
	policy_lookup(&doc.set, "someone@sub.bank.example", &d);
	CHECK_STR(d.profile->name, "bank");
	CHECK_INT(d.nmx, 3);
}

static void
syntax_variants(void)
{
	/* BOM, CRLF, ":" separators, spaces in the header, no final LF. */
	CHECK_INT(parse("\xEF\xBB\xBF[document]\r\nserial: 7\r\n\r\n"
	    "[ profile  p ]\r\nverify=none\r\n[match *]\r\nprofile = p"), 0);
	CHECK(doc.serial == 7);
	CHECK(find_match(&doc.set, "*") != NULL);
	CHECK(policy_profile_find(&doc.set, "p") >= 0);

	/*
	 * The config's line limit (INI_LINE_MAX): a 4096-byte line is kept
	 * whole, a longer one refused with its line number.
	 */
	{
		size_t n = INI_LINE_MAX - strlen("ciphers = ");
		char *t = malloc(n + 200), *v;
		int i;

		strcpy(t, "[document]\nserial = 1\n[profile long]\nciphers = ");
		v = t + strlen(t);
		memset(v, 'C', n);
		strcpy(v + n, "\n[match long.example]\nprofile = long\n");
		CHECK_INT(parse(t), 0);
		i = policy_profile_find(&doc.set, "long");
		CHECK(i >= 0 && doc.set.profiles[i].ciphers != NULL &&
		    strlen(doc.set.profiles[i].ciphers) == n);
		memset(v, 'C', n + 1);
		strcpy(v + n + 1, "\n[match long.example]\nprofile = long\n");
		CHECK(errors_are(t, "3: [profile long]: empty section",
		    "4: line too long (max 4096 bytes)", NULL));
		free(t);
	}

	/* serial limits */
	CHECK_INT(parse("[document]\nserial = 0\n"), 0);
	CHECK_INT(parse("[document]\nserial = 9223372036854775807\n"), 0);
	CHECK(doc.serial == 9223372036854775807ULL);
	CHECK_INT(parse("[document]\nserial = 0000000000000000042\n"), 0);
	CHECK(doc.serial == 42);
}

static void
document_section_errors(void)
{
	CHECK(errors_are("", "[document] serial: missing (required)", NULL));
	CHECK(errors_are("[profile p]\ntls = off\n",
	    "[document] serial: missing (required)", NULL));
	CHECK(errors_are("[document]\n", "[document] serial: missing (required)",
	    NULL));
	CHECK(errors_are("[document]\nserial = abc\n",
	    "2: [document] serial: \"abc\" is not a whole number from 0 to "
	    "9223372036854775807", NULL));
	CHECK(errors_are("[document]\nserial = 9223372036854775808\n",
	    "2: [document] serial: \"9223372036854775808\" is not a whole "
	    "number from 0 to 9223372036854775807", NULL));
	CHECK(errors_are("[document]\nserial = 1\nserial = 2\n",
	    "3: [document] serial: duplicate key (first at line 2)", NULL));
	CHECK(errors_are("[document]\nserial = 1\n  2\n",
	    "3: [document] serial: duplicate key (an indented line continues "
	    "a single value)", NULL));
	CHECK(errors_are("[document]\nserial = 1\nexpires = 2030\n",
	    "3: [document] expires: unknown key", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[document]\nserial = 2\n",
	    "3: [document]: duplicate section (first at line 1)", NULL));
	CHECK(errors_are("[document]\nserial = -1\n",
	    "2: [document] serial: \"-1\" is not a whole number from 0 to "
	    "9223372036854775807", NULL));
}

static void
section_errors(void)
{
	CHECK(errors_are("x = 1\n[document]\nserial = 1\n",
	    "1: x: not in a section", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[proxy]\nlisten = 1.2.3.4:25\n",
	    "3: [proxy]: only [document], [profile NAME] and [match PATTERN] "
	    "are allowed in a policy document", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[policy]\ndefault = x\n",
	    "3: [policy]: only [document], [profile NAME] and [match PATTERN] "
	    "are allowed in a policy document", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[frobnicate]\na = b\n",
	    "3: [frobnicate]: unknown section", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\n[match x.example]\n"
	    "profile = p\n", "3: [profile p]: empty section", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[match x.example]\n",
	    "3: [match x.example]: empty section", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile mandatory]\n"
	    "min_version = 1.3\n", "3: [profile mandatory]: a policy document "
	    "cannot change the built-in profile \"mandatory\" (local matches "
	    "rely on it): use another name", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile opportunistic]\n"
	    "verify = none\n", "3: [profile opportunistic]: a policy document "
	    "cannot change the built-in profile \"opportunistic\" (local "
	    "matches rely on it): use another name", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[match Example.COM.]\n"
	    "profile = mandatory\n[match example.com]\nprofile = opportunistic\n",
	    "5: [match example.com]: duplicate pattern (first at line 3)", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\ntls = off\n"
	    "[profile p]\ntls = mandatory\n",
	    "5: [profile p]: duplicate section (first at line 3)", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile a/b]\ntls = off\n",
	    "3: [profile a/b]: invalid profile name \"a/b\" (letters, digits, "
	    "\"_\", \".\" and \"-\" only)", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[match *.example.com]\n"
	    "profile = mandatory\n",
	    "3: [match *.example.com]: \"*.example.com\": write \"example.com\" "
	    "(it covers the domain and its subdomains)", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile p\ntls = off\n",
	    "3: unterminated section header", NULL));
}

static void
key_errors(void)
{
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\ntls = maybe\n",
	    "4: [profile p] tls: \"maybe\": expected opportunistic, mandatory or "
	    "off", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\nfoo = bar\n",
	    "4: [profile p] foo: unknown key", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\ntls = off\n"
	    "tls = mandatory\n",
	    "5: [profile p] tls: duplicate key (first at line 4)", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\ntls = off\n"
	    "  mandatory\n", "5: [profile p] tls: duplicate key (an indented "
	    "line continues a single value)", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\n= off\n",
	    "4: [profile p]: missing key name", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\nca_bundle = "
	    "certs/ca.pem\n", "4: [profile p] ca_bundle: \"certs/ca.pem\": a "
	    "policy document needs an absolute path", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\nmin_version = 1.3"
	    "\nmax_version = 1.2\n", "4: [profile p] min_version: 1.3 is above "
	    "max_version 1.2", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[match x.example]\n"
	    "profile = nope\n", "3: [match x.example] profile: unknown profile "
	    "\"nope\"", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[match x.example]\n"
	    "nexthop = relay.example\n", "3: [match x.example] profile: "
	    "required", NULL));
	CHECK(errors_are("[document]\nserial = 1\n[match x.example]\n"
	    "profile = mandatory\nmx = bad..name\n",
	    "5: [match x.example] mx: invalid name \"bad..name\" (a host name, "
	    "or \"*.\" and a domain)", NULL));
	/* inih's quirk: an indented header after a key continues the key. */
	CHECK(errors_are("[document]\nserial = 1\n[profile p]\nmx = a.example\n"
	    "  [match x.example]\n",
	    "4: [profile p] mx: invalid name \"[match\" (a host name, or \"*.\" "
	    "and a domain)", NULL));
}

static void
plain_line_error(void)
{
	/* A line without "=": the section still counts the key it lacks. */
	CHECK_INT(parse("[document]\nserial = 1\n[profile p]\njust words\n"), -1);
	CHECK(errs.n == 2);
	if (errs.n == 2) {
		CHECK_STR(errs.msg[0], "3: [profile p]: empty section");
		CHECK_STR(errs.msg[1], "4: expected \"key = value\"");
	}
}

static void
bytes_and_limits(void)
{
	static const char nul[] = "[document]\nserial = 1\n[profile p]\n"
	    "tls = off\0 junk\n";
	char *big;
	int i, n;

	document_errors_free(&errs);
	document_free(&doc);
	CHECK_INT(document_parse(nul, sizeof(nul) - 1, "d", &doc, &errs), -1);
	CHECK(errs.n >= 1 && strcmp(errs.msg[0],
	    "3: [profile p]: empty section") == 0);
	CHECK(errs.n >= 2 && strcmp(errs.msg[1],
	    "4: line contains a NUL byte") == 0);

	document_errors_free(&errs);
	CHECK_INT(document_parse("x", DOCUMENT_MAX + 1, "d", &doc, &errs), -1);
	CHECK(errs.n == 1 && strstr(errs.msg[0], "bytes (max") != NULL);

	/* Errors are capped, the cap said last. */
	big = malloc(200 * 32);
	n = sprintf(big, "[document]\nserial = 1\n[profile p]\n");
	for (i = 0; i < 150; i++)
		n += sprintf(big + n, "bad%d = x\n", i);
	CHECK_INT(parse(big), -1);
	CHECK_INT(errs.n, DOCUMENT_ERRORS_MAX + 1);
	CHECK(strstr(errs.msg[errs.n - 1], "too many errors") != NULL);
	CHECK_STR(errs.msg[0], "4: [profile p] bad0: unknown key");
	free(big);

	/* Errors come sorted by line, whatever found them. */
	CHECK(errors_are("[profile p]\ntls = x\n[match a.example]\n"
	    "profile = nope\n[bogus]\n",
	    "[document] serial: missing (required)",
	    "2: [profile p] tls: \"x\": expected opportunistic, mandatory or "
	    "off", "5: [bogus]: unknown section", NULL));
}

/* ---- merge ---- */

static void
local_key(struct policy_set *s, const char *sect, const char *key,
    const char *value, int line)
{
	struct policy_origin o = { "local.ini", line };
	char err[256];

	if (policy_set_key(s, sect, key, value, o, err, sizeof(err)) != 0) {
		fprintf(stderr, "  local: %s\n", err);
		CHECK(0);
	}
}

static void
local_set(struct policy_set *s)
{
	struct policy_origin o;
	char err[256];

	policy_set_init(s);
	local_key(s, "profile corp", "tls", "mandatory", 1);
	local_key(s, "profile corp", "min_version", "1.3", 2);
	local_key(s, "match a.example", "profile", "mandatory", 3);
	local_key(s, "match local.example", "profile", "corp", 4);
	CHECK_INT(policy_set_finish(s, &o, err, sizeof(err)), 0);
}

static void
merge(void)
{
	struct policy_set local, out;
	struct policy_decision d;
	char err[256];
	int i;

	local_set(&local);
	CHECK_INT(parse("[document]\nserial = 5\n"
	    "[profile corp]\ntls = off\n"	       /* 3: clashes: local wins */
	    "[profile central]\ntls = mandatory\nmx = mx.c.example\n" /* 5 */
	    "[match a.example]\nprofile = central\n"   /* 8: local wins */
	    "[match b.example]\nprofile = corp\n"      /* 10: local corp */
	    "[match c.example]\nprofile = central\nnexthop = relay.c.example\n"
	    "[match *]\nprofile = opportunistic\n"),   /* 15 */
	    0);
	CHECK_INT(document_merge(&local, &doc, &out, err, sizeof(err)), 0);

	/* Profiles: the local ones, then the document's new ones. */
	CHECK_INT(out.nprofiles, 5);
	CHECK_STR(out.profiles[0].name, "opportunistic");
	CHECK_STR(out.profiles[1].name, "mandatory");
	CHECK_STR(out.profiles[2].name, POLICY_MTA_STS_PROFILE);
	CHECK_STR(out.profiles[3].name, "corp");
	CHECK_STR(out.profiles[4].name, "central");
	CHECK_INT(out.profiles[3].tls, POLICY_TLS_MANDATORY);
	CHECK_STR(out.profiles[3].origin.file, "local.ini");
	CHECK_STR(out.profiles[4].origin.file, "https://p.example/doc");
	CHECK_INT(out.nmatches, 5); /* 2 local + b, c, * */

	policy_lookup(&out, "x@a.example", &d);
	CHECK_STR(d.profile->name, "mandatory");
	CHECK_STR(d.match->origin.file, "local.ini");
	policy_lookup(&out, "x@b.example", &d);
	CHECK_STR(d.profile->name, "corp");
	CHECK_INT(d.profile->tls, POLICY_TLS_MANDATORY); /* the local corp */
	CHECK_STR(d.match->origin.file, "https://p.example/doc");
	CHECK_INT(d.match->origin.line, 10);
	policy_lookup(&out, "x@c.example", &d);
	CHECK_STR(d.profile->name, "central");
	CHECK_STR(d.nexthop, "relay.c.example");
	CHECK_INT(d.nmx, 1);
	policy_lookup(&out, "x@local.example", &d);
	CHECK_STR(d.profile->name, "corp");
	policy_lookup(&out, "x@elsewhere.example", &d);
	CHECK(d.match != NULL && strcmp(d.match->pattern, "*") == 0);
	CHECK_INT(out.default_profile, local.default_profile);

	/* out owns its strings: freeing the others first is fine. */
	policy_set_free(&local);
	document_errors_free(&errs);
	CHECK_STR(out.matches[3].nexthop, "relay.c.example");
	CHECK_STR(out.profiles[4].mx[0], "mx.c.example");
	policy_set_free(&out);
	document_free(&doc);

	/* A document with no sections but [document]: the local set. */
	local_set(&local);
	CHECK_INT(parse("[document]\nserial = 1\n"), 0);
	CHECK_INT(document_merge(&local, &doc, &out, err, sizeof(err)), 0);
	CHECK_INT(out.nprofiles, local.nprofiles);
	CHECK_INT(out.nmatches, local.nmatches);
	for (i = 0; i < out.nmatches; i++)
		CHECK_STR(out.matches[i].pattern, local.matches[i].pattern);
	policy_set_free(&out);
	policy_set_free(&local);
}

static void
merge_refused(void)
{
	struct policy_set local, out;
	struct policy_origin o;
	char err[256], name[32];
	char *text;
	int i, n;

	/*
	 * Fine alone, not together: the document's match has an address as
	 * nexthop and relies on its profile's mx; the local profile of that
	 * name has none.
	 */
	policy_set_init(&local);
	local_key(&local, "profile p", "tls", "opportunistic", 1);
	CHECK_INT(policy_set_finish(&local, &o, err, sizeof(err)), 0);
	CHECK_INT(parse("[document]\nserial = 1\n[profile p]\nmx = mx.x.example\n"
	    "[match x.example]\nprofile = p\nnexthop = 192.0.2.1\n"), 0);
	memset(&out, 'x', sizeof(out));
	CHECK_INT(document_merge(&local, &doc, &out, err, sizeof(err)), -1);
	CHECK(strstr(err, "merged with the local config: [match x.example] "
	    "nexthop") != NULL);
	CHECK(out.matches == NULL && out.nprofiles == 0);
	policy_set_free(&out);
	policy_set_free(&local);

	/* Too many profiles together (the 3 built-ins count). */
	policy_set_init(&local);
	for (i = 0; i < POLICY_PROFILES_MAX - 3; i++) {
		snprintf(name, sizeof(name), "profile l%d", i);
		local_key(&local, name, "tls", "off", i + 1);
	}
	CHECK_INT(policy_set_finish(&local, &o, err, sizeof(err)), 0);
	CHECK_INT(parse("[document]\nserial = 1\n[profile extra]\ntls = off\n"),
	    0);
	CHECK_INT(document_merge(&local, &doc, &out, err, sizeof(err)), -1);
	CHECK(strstr(err, "more than 64 profiles") != NULL);
	policy_set_free(&local);

	/* A document profile named like a local one is no new profile. */
	policy_set_init(&local);
	for (i = 0; i < POLICY_PROFILES_MAX - 3; i++) {
		snprintf(name, sizeof(name), "profile l%d", i);
		local_key(&local, name, "tls", "off", i + 1);
	}
	CHECK_INT(policy_set_finish(&local, &o, err, sizeof(err)), 0);
	CHECK_INT(parse("[document]\nserial = 1\n[profile l3]\ntls = mandatory\n"
	    "[match m.example]\nprofile = l3\n"), 0);
	CHECK_INT(document_merge(&local, &doc, &out, err, sizeof(err)), 0);
	CHECK_INT(out.nprofiles, POLICY_PROFILES_MAX);
	policy_set_free(&out);
	policy_set_free(&local);

	/* Too many matches together. */
	policy_set_init(&local);
	text = malloc(POLICY_MATCHES_MAX * 48 + 64);
	for (i = 0; i < POLICY_MATCHES_MAX; i++) {
		snprintf(name, sizeof(name), "match l%d.example", i);
		local_key(&local, name, "profile", "mandatory", i + 1);
	}
	CHECK_INT(policy_set_finish(&local, &o, err, sizeof(err)), 0);
	n = sprintf(text, "[document]\nserial = 1\n[match d.example]\n"
	    "profile = mandatory\n");
	(void)n;
	CHECK_INT(parse(text), 0);
	CHECK_INT(document_merge(&local, &doc, &out, err, sizeof(err)), -1);
	CHECK(strstr(err, "more than 4096") != NULL);
	policy_set_free(&local);
	free(text);
}

static void
large_document(void)
{
	/* 4096 matches parse (the duplicate checks stay affordable). */
	char *text = malloc(POLICY_MATCHES_MAX * 48 + 64);
	int i, n;

	n = sprintf(text, "[document]\nserial = 1\n");
	for (i = 0; i < POLICY_MATCHES_MAX; i++)
		n += sprintf(text + n, "[match d%d.example]\nprofile = mandatory"
		    "\n", i);
	CHECK_INT(parse(text), 0);
	CHECK_INT(doc.set.nmatches, POLICY_MATCHES_MAX);
	n += sprintf(text + n, "[match one-more.example]\nprofile = mandatory\n");
	CHECK_INT(parse(text), -1);
	CHECK(errs.n >= 1 && strstr(errs.msg[0], "too many matches") != NULL);
	free(text);
}

static unsigned rng = 88172645u;

static unsigned
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void
garbage(void)
{
	static const char base[] = "[document]\nserial = 3\n[profile p]\n"
	    "tls = mandatory\nmx = a.example,\n  b.example\n[match x.example]\n"
	    "profile = p\nnexthop = [2001:db8::1]:25\nmx = c.example\n";
	static const char alphabet[] = "[]=:;# \t\r\n\0profile match document"
	    "serial mx tls x.example*@1";
	char buf[sizeof(base)], g[300];
	size_t n, k;
	int i;

	for (i = 0; i < 20000; i++) {
		memcpy(buf, base, sizeof(base));
		for (k = 0, n = 1 + rnd() % 4; k < n; k++)
			buf[rnd() % (sizeof(base) - 1)] = (char)rnd();
		document_errors_free(&errs);
		document_free(&doc);
		if (document_parse(buf, sizeof(base) - 1, "g", &doc, &errs) < 0)
			CHECK(errs.n >= 1);
		n = rnd() % sizeof(g);
		for (k = 0; k < n; k++)
			g[k] = alphabet[rnd() % (sizeof(alphabet) - 1)];
		document_errors_free(&errs);
		document_free(&doc);
		if (document_parse(g, n, "g", &doc, &errs) < 0)
			CHECK(errs.n >= 1);
	}
}

int
main(void)
{
	RUN(valid_document);
	RUN(syntax_variants);
	RUN(document_section_errors);
	RUN(section_errors);
	RUN(key_errors);
	RUN(plain_line_error);
	RUN(bytes_and_limits);
	RUN(merge);
	RUN(merge_refused);
	RUN(large_document);
	RUN(garbage);
	document_errors_free(&errs);
	document_free(&doc);
	return T_DONE();
}
