/*
 * The policy model: profiles, matches, the lookup and the RFC 8461 name
 * pattern check.  Pure: no I/O, no logging, no event loop, no TLS library.
 *
 * Conventions this file keeps (the header is the contract; these are the
 * details it leaves open):
 *
 * - A match may name a profile before the profile's section appears.  The
 *   name is then kept in a placeholder profile: not built in and with an
 *   origin line of 0 ("named, not declared").  The first key applied to a
 *   "[profile NAME]" section declares it (its origin becomes that key's),
 *   so callers pass origin.line >= 1.  policy_set_finish() rejects a set in
 *   which a placeholder is still referenced, so a finished set holds none
 *   that matter.
 * - A profile declared without a tls or verify key is opportunistic and
 *   strict, like the built-in "opportunistic".  Versions, ciphers and CA
 *   bundle default to the [tls] values (0 / NULL here).
 * - Every value must be non-empty.  Lists (mx) are separated by commas
 *   and/or white space.  Host names and patterns are stored lower-cased
 *   without a trailing dot.
 * - policy_lookup() compares the local part of an address match
 *   case-insensitively too (RFC 5321 lets the receiving domain decide; for
 *   a TLS policy, treating "User@" and "user@" alike is the safe reading).
 *   A recipient without "@" is looked up as a bare domain (handy for
 *   `mxtls explain example.com`).
 * - Internationalized names.  Domains of patterns, mx lists and recipients
 *   are kept and compared in their A-label form, so "bücher.example" and
 *   "xn--bcher-kva.example" are one domain.  Patterns and mx names that
 *   cannot be converted are errors, and so are "xn--" labels that do not
 *   decode (or not to their canonical form): such a pattern could never
 *   match.  A recipient domain that cannot be converted is no error here:
 *   the decision says POLICY_BAD_DOMAIN and the caller refuses the
 *   address.  An ASCII recipient domain is only lower-cased (libidn2 would
 *   refuse names such as "ab--c.example" that DNS and MTAs accept), and
 *   refused only when longer than a DNS name can be.
 *   libidn2 is pure computation (no I/O, no global state we depend on), so
 *   policy/ may call it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <idn2.h>

#include "policy.h"

#define DOMAIN_MAX POLICY_DOMAIN_MAX
#define LABEL_MAX 63
#define LOCAL_MAX 64
#define IDNA_INPUT_MAX 1024 /* UTF-8 bytes handed to libidn2, at most */

enum section_kind { SECTION_OTHER, SECTION_PROFILE, SECTION_MATCH };

static const char *const tls_names[] = {
	[POLICY_TLS_OFF] = "off",
	[POLICY_TLS_OPPORTUNISTIC] = "opportunistic",
	[POLICY_TLS_MANDATORY] = "mandatory",
};

static const char *const verify_names[] = {
	[POLICY_VERIFY_STRICT] = "strict",
	[POLICY_VERIFY_NONE] = "none",
};

static int
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	    c == '\v';
}

static int
has_non_ascii(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/*
 * A host name of letters, digits and hyphens (RFC 1123), dot-separated
 * labels of 1..63 characters not starting or ending with a hyphen, at most
 * 253 characters.  No trailing dot here: callers strip it.
 */
int
policy_valid_hostname(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > DOMAIN_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-')
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > LABEL_MAX)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

/* Copy len bytes lower-cased into out (size outlen); 0 when too long. */
static int
copy_lower(char *out, size_t outlen, const char *s, size_t len)
{
	size_t i;

	if (len >= outlen)
		return 0;
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[len] = '\0';
	return 1;
}

/*
 * UTS #46 transitional and nontransitional processing differ on four
 * characters only: U+00DF, U+03C2, U+200C and U+200D.
 */
static int
has_deviation(const char *s)
{
	return strstr(s, "\xc3\x9f") != NULL ||
	    strstr(s, "\xcf\x82") != NULL ||
	    strstr(s, "\xe2\x80\x8c") != NULL ||
	    strstr(s, "\xe2\x80\x8d") != NULL;
}

/*
 * libidn2, nontransitional.  Its IDNA2008 checks refuse symbols that UTS
 * #46 (and so ICU, which Postfix uses) accepts, such as U+2603 in the
 * registered "xn--n3h.com"; for those, transitional processing gives the
 * same result as long as no deviation character is involved.  *out is
 * the library's (idn2_free()).
 */
static int
idna_to_ascii(const char *in, char **out, const char **why)
{
	int r;

	*out = NULL;
	r = idn2_to_ascii_8z(in, out, IDN2_NONTRANSITIONAL);
	if (r == IDN2_DISALLOWED && !has_deviation(in)) {
		idn2_free(*out);
		*out = NULL;
		r = idn2_to_ascii_8z(in, out, IDN2_TRANSITIONAL);
	}
	if (r != IDN2_OK || *out == NULL) {
		idn2_free(*out);
		*out = NULL;
		*why = r != IDN2_OK ? idn2_strerror(r) : "conversion failed";
		return -1;
	}
	return 0;
}

/* Every "xn--" label of an ASCII name decodes, and is in canonical form. */
static int
alabels_ok(const char *s, size_t len)
{
	char label[LABEL_MAX + 1], *conv;
	const char *e, *why;
	size_t l;
	int ok;

	while (len > 0) {
		e = memchr(s, '.', len);
		l = e != NULL ? (size_t)(e - s) : len;
		if (l > 4 && strncasecmp(s, "xn--", 4) == 0) {
			if (l > LABEL_MAX)
				return 0;
			copy_lower(label, sizeof(label), s, l);
			if (idna_to_ascii(label, &conv, &why) < 0)
				return 0;
			ok = strcmp(conv, label) == 0;
			idn2_free(conv);
			if (!ok)
				return 0;
		}
		if (e == NULL)
			break;
		len -= l + 1;
		s = e + 1;
	}
	return 1;
}

int
policy_domain_to_ascii(const char *name, size_t len,
    char out[POLICY_DOMAIN_MAX + 1], const char **why)
{
	char in[IDNA_INPUT_MAX + 1], *conv;
	size_t clen;

	out[0] = '\0';
	if (len == 0) {
		*why = "empty domain";
		return -1;
	}
	if (memchr(name, '\0', len) != NULL) {
		*why = "NUL byte in domain";
		return -1;
	}
	if (!has_non_ascii(name, len)) {
		if (len > DOMAIN_MAX) {
			*why = "domain name too long";
			return -1;
		}
		copy_lower(out, DOMAIN_MAX + 1, name, len);
		if (!policy_valid_hostname(out, len)) {
			*why = "not a valid host name";
			goto fail;
		}
		if (!alabels_ok(out, len)) {
			*why = "an \"xn--\" label is not a valid A-label";
			goto fail;
		}
		return 0;
	}
	if (len > IDNA_INPUT_MAX) {
		*why = "domain name too long";
		return -1;
	}
	memcpy(in, name, len);
	in[len] = '\0';
	if (idna_to_ascii(in, &conv, why) < 0)
		return -1;
	clen = strlen(conv);
	if (clen > DOMAIN_MAX) {
		idn2_free(conv);
		*why = "domain name too long";
		return -1;
	}
	copy_lower(out, DOMAIN_MAX + 1, conv, clen);
	idn2_free(conv);
	if (!policy_valid_hostname(out, clen)) {
		*why = "its A-label form is not a valid host name";
		goto fail;
	}
	/* As for an ASCII name: the transitional fallback skips checks. */
	if (!alabels_ok(out, clen)) {
		*why = "an \"xn--\" label is not a valid A-label";
		goto fail;
	}
	return 0;
fail:
	out[0] = '\0';
	return -1;
}

/* "profile NAME" / "match PATTERN": the kind, and the argument trimmed. */
static enum section_kind
section_parse(const char *section, const char **arg, size_t *arglen)
{
	enum section_kind kind;
	const char *s = section, *e;
	size_t wlen;

	while (is_space((unsigned char)*s))
		s++;
	if (strncmp(s, "profile", 7) == 0) {
		kind = SECTION_PROFILE;
		wlen = 7;
	} else if (strncmp(s, "match", 5) == 0) {
		kind = SECTION_MATCH;
		wlen = 5;
	} else
		return SECTION_OTHER;
	if (s[wlen] != '\0' && !is_space((unsigned char)s[wlen]))
		return SECTION_OTHER;
	s += wlen;
	while (is_space((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_space((unsigned char)e[-1]))
		e--;
	*arg = s;
	*arglen = (size_t)(e - s);
	return kind;
}

static int
valid_profile_name(const char *s, size_t len, const char *key, char *err,
    size_t errlen)
{
	size_t i;

	if (len == 0) {
		snprintf(err, errlen, "%s: missing profile name", key);
		return 0;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '_' && c != '.' && c != '-') {
			snprintf(err, errlen, "%s: invalid profile name \"%.*s\" "
			    "(letters, digits, \"_\", \".\" and \"-\" only)", key,
			    (int)len, s);
			return 0;
		}
	}
	if (len >= POLICY_NAME_MAX) {
		snprintf(err, errlen, "%s: profile name too long (max %d)", key,
		    POLICY_NAME_MAX - 1);
		return 0;
	}
	return 1;
}

/*
 * Normalize a match pattern: "*", "domain" or "local@domain", lower-cased,
 * trailing dot dropped.  0 with err on error.
 */
static int
normalize_pattern(const char *s, size_t len, char out[POLICY_PATTERN_MAX],
    const char *key, char *err, size_t errlen)
{
	const char *at = NULL, *dom = s, *why;
	char adom[DOMAIN_MAX + 1];
	size_t i, dlen = len, llen = 0;

	if (len == 0) {
		snprintf(err, errlen, "%s: missing pattern in [match]", key);
		return 0;
	}
	if (len == 1 && s[0] == '*') {
		strcpy(out, "*");
		return 1;
	}
	for (i = 0; i < len; i++) {
		if (s[i] == '@')
			at = s + i;
		if (is_space((unsigned char)s[i]) ||
		    (unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(err, errlen, "%s: invalid pattern \"%.*s\"", key,
			    (int)len, s);
			return 0;
		}
	}
	if (at != NULL) {
		llen = (size_t)(at - s);
		dom = at + 1;
		dlen = len - llen - 1;
		if (llen == 0 || llen > LOCAL_MAX) {
			snprintf(err, errlen, "%s: invalid local part in \"%.*s\"",
			    key, (int)len, s);
			return 0;
		}
	}
	if (dlen > 1 && dom[dlen - 1] == '.')
		dlen--;
	if (dlen > 0 && dom[0] == '.') {
		snprintf(err, errlen, "%s: \"%.*s\": a leading \".\" is not allowed "
		    "(\"%.*s\" covers its subdomains)", key, (int)len, s,
		    (int)(dlen - 1), dom + 1);
		return 0;
	}
	if (dlen > 2 && dom[0] == '*' && dom[1] == '.') {
		snprintf(err, errlen, "%s: \"%.*s\": write \"%.*s\" (it covers the "
		    "domain and its subdomains)", key, (int)len, s,
		    (int)(dlen - 2), dom + 2);
		return 0;
	}
	if (!has_non_ascii(dom, dlen) && !policy_valid_hostname(dom, dlen)) {
		snprintf(err, errlen, "%s: invalid domain in \"%.*s\"", key,
		    (int)len, s);
		return 0;
	}
	if (policy_domain_to_ascii(dom, dlen, adom, &why) < 0) {
		snprintf(err, errlen, "%s: invalid domain in \"%.*s\": %s", key,
		    (int)len, s, why);
		return 0;
	}
	/* llen <= 64 and the domain <= 253: always fits POLICY_PATTERN_MAX. */
	copy_lower(out, POLICY_PATTERN_MAX, s, llen + (at != NULL));
	strcpy(out + llen + (at != NULL), adom);
	return 1;
}

/*
 * "HOST[:PORT]": HOST a name, an IPv4 literal or a bracketed IPv6 literal;
 * PORT 1..65535.  Returns 1 (a name) or 2 (an address literal), 0 when
 * invalid.  With out, writes the normalized form: a name lower-cased and
 * without a trailing dot, the port as given.
 */
static int
parse_nexthop(const char *s, char *out, size_t outlen)
{
	const char *port = NULL, *colon;
	char buf[DOMAIN_MAX + 2];
	unsigned char addr[16];
	size_t hlen;
	long p;
	char *end;
	int literal = 0, n;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return 0;
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof(buf))
			return 0;
		memcpy(buf, s + 1, hlen);
		buf[hlen] = '\0';
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return 0;
		literal = 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return 0;
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return 0; /* IPv6 must be bracketed */
		hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (colon != NULL)
			port = colon + 1;
		if (hlen == 0 || hlen >= sizeof(buf))
			return 0;
		copy_lower(buf, sizeof(buf), s, hlen);
		if (inet_pton(AF_INET, buf, addr) == 1)
			literal = 1;
		else {
			if (hlen > 1 && buf[hlen - 1] == '.')
				buf[--hlen] = '\0';
			if (!policy_valid_hostname(buf, hlen) ||
			    strspn(buf, "0123456789.") == hlen)
				return 0;
		}
	}
	if (port != NULL) {
		if (*port < '0' || *port > '9' || strlen(port) > 5)
			return 0;
		p = strtol(port, &end, 10);
		if (*end != '\0' || p < 1 || p > 65535)
			return 0;
	}
	if (out != NULL) {
		n = snprintf(out, outlen, "%s%s%s%s%s", s[0] == '[' ? "[" : "",
		    buf, s[0] == '[' ? "]" : "", port != NULL ? ":" : "",
		    port != NULL ? port : "");
		if (n < 0 || (size_t)n >= outlen)
			return 0;
	}
	return literal ? 2 : 1;
}

/*
 * One mx pattern: a host name or "*.domain", normalized into out (the
 * domain in A-label form).  1, 0 when invalid (*why), -1 out of memory.
 */
static int
normalize_mx(const char *s, size_t len, char **out, const char **why)
{
	char dom[DOMAIN_MAX + 1];
	size_t off = 0;
	char *p;

	*why = NULL;
	if (len > 1 && s[len - 1] == '.')
		len--;
	if (len > 2 && s[0] == '*' && s[1] == '.')
		off = 2;
	if (!has_non_ascii(s + off, len - off) &&
	    !policy_valid_hostname(s + off, len - off))
		return 0;
	if (policy_domain_to_ascii(s + off, len - off, dom, why) < 0)
		return 0;
	if ((p = malloc(off + strlen(dom) + 1)) == NULL)
		return -1;
	memcpy(p, s, off);
	strcpy(p + off, dom);
	*out = p;
	return 1;
}

static void
free_list(char **list, int *n)
{
	int i;

	for (i = 0; i < *n; i++) {
		free(list[i]);
		list[i] = NULL;
	}
	*n = 0;
}

/* Parse an mx list into list/n (replacing what was there). */
static int
set_mx_list(char **list, int *n, const char *value, const char *key,
    char *err, size_t errlen)
{
	char *tmp[POLICY_MX_MAX];
	int ntmp = 0, i, r;
	const char *s = value, *e, *why;
	size_t len;

	while (*s != '\0') {
		while (*s == ',' || is_space((unsigned char)*s))
			s++;
		if (*s == '\0')
			break;
		e = s;
		while (*e != '\0' && *e != ',' && !is_space((unsigned char)*e))
			e++;
		len = (size_t)(e - s);
		if (ntmp == POLICY_MX_MAX) {
			snprintf(err, errlen, "%s: too many names (max %d)", key,
			    POLICY_MX_MAX);
			goto fail;
		}
		r = normalize_mx(s, len, &tmp[ntmp], &why);
		if (r < 0) {
			snprintf(err, errlen, "%s: out of memory", key);
			goto fail;
		}
		if (r == 0 && why != NULL) {
			snprintf(err, errlen, "%s: invalid name \"%.*s\": %s", key,
			    (int)len, s, why);
			goto fail;
		}
		if (r == 0) {
			snprintf(err, errlen, "%s: invalid name \"%.*s\" (a host "
			    "name, or \"*.\" and a domain)", key, (int)len, s);
			goto fail;
		}
		ntmp++;
		s = e;
	}
	if (ntmp == 0) {
		snprintf(err, errlen, "%s: empty list", key);
		return -1;
	}
	free_list(list, n);
	for (i = 0; i < ntmp; i++)
		list[i] = tmp[i];
	*n = ntmp;
	return 0;
fail:
	for (i = 0; i < ntmp; i++)
		free(tmp[i]);
	return -1;
}

static int
set_string(char **dst, const char *value, const char *key, char *err,
    size_t errlen)
{
	char *p;

	if ((p = strdup(value)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", key);
		return -1;
	}
	free(*dst);
	*dst = p;
	return 0;
}

static int
profile_index(const struct policy_set *set, const char *name, size_t len)
{
	int i;

	for (i = 0; i < set->nprofiles; i++)
		if (strlen(set->profiles[i].name) == len &&
		    memcmp(set->profiles[i].name, name, len) == 0)
			return i;
	return -1;
}

/* The profile of that name, created as an undeclared placeholder. */
static int
profile_get(struct policy_set *set, const char *name, size_t len,
    const char *key, char *err, size_t errlen)
{
	struct policy_profile *p;
	int i;

	if ((i = profile_index(set, name, len)) >= 0)
		return i;
	if (set->nprofiles == POLICY_PROFILES_MAX) {
		snprintf(err, errlen, "%s: too many profiles (max %d)", key,
		    POLICY_PROFILES_MAX);
		return -1;
	}
	p = &set->profiles[set->nprofiles];
	memset(p, 0, sizeof(*p));
	memcpy(p->name, name, len);
	p->name[len] = '\0';
	p->tls = POLICY_TLS_OPPORTUNISTIC;
	p->verify = POLICY_VERIFY_STRICT;
	return set->nprofiles++;
}

static const char *const profile_keys[POLICY_P_NKEYS] = {
	[POLICY_P_TLS] = "tls",
	[POLICY_P_VERIFY] = "verify",
	[POLICY_P_MIN_VERSION] = "min_version",
	[POLICY_P_MAX_VERSION] = "max_version",
	[POLICY_P_CIPHERS] = "ciphers",
	[POLICY_P_CA_BUNDLE] = "ca_bundle",
	[POLICY_P_MX] = "mx",
	[POLICY_P_DANE] = "dane",
};

static const char *const match_keys[POLICY_M_NKEYS] = {
	[POLICY_M_PROFILE] = "profile",
	[POLICY_M_NEXTHOP] = "nexthop",
	[POLICY_M_MX] = "mx",
};

/* Index of key in names (n of them), or -1. */
static int
key_index(const char *const *names, int n, const char *key)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], key) == 0)
			return i;
	return -1;
}

static int
profile_key(struct policy_set *set, const char *name, size_t namelen,
    const char *key, const char *value, struct policy_origin origin,
    char *err, size_t errlen)
{
	struct policy_profile *p;
	int i, v, r = 0;

	if (!valid_profile_name(name, namelen, key, err, errlen))
		return -1;
	if (namelen == strlen(POLICY_MTA_STS_PROFILE) &&
	    memcmp(name, POLICY_MTA_STS_PROFILE, namelen) == 0) {
		snprintf(err, errlen, "%s: profile %s is reserved for MTA-STS "
		    "enforce and cannot be changed", key,
		    POLICY_MTA_STS_PROFILE);
		return -1;
	}
	if ((i = profile_get(set, name, namelen, key, err, errlen)) < 0)
		return -1;
	p = &set->profiles[i];
	if (p->origin.line == 0)
		p->origin = origin; /* declared (or a built-in overridden) */

	switch (key_index(profile_keys, POLICY_P_NKEYS, key)) {
	case POLICY_P_TLS:
		for (v = 0; v < 3; v++)
			if (strcmp(value, tls_names[v]) == 0)
				break;
		if (v == 3) {
			snprintf(err, errlen, "tls: \"%s\": expected opportunistic, "
			    "mandatory or off", value);
			return -1;
		}
		p->tls = (enum policy_tls)v;
		p->origins[POLICY_P_TLS] = origin;
		return 0;
	case POLICY_P_VERIFY:
		for (v = 0; v < 2; v++)
			if (strcmp(value, verify_names[v]) == 0)
				break;
		if (v == 2) {
			snprintf(err, errlen, "verify: \"%s\": expected strict or "
			    "none", value);
			return -1;
		}
		p->verify = (enum policy_verify)v;
		p->origins[POLICY_P_VERIFY] = origin;
		return 0;
	case POLICY_P_MIN_VERSION:
	case POLICY_P_MAX_VERSION:
		if ((v = policy_parse_version(value)) < 0) {
			snprintf(err, errlen, "%s: \"%s\": expected 1.0, 1.1, 1.2 "
			    "or 1.3", key, value);
			return -1;
		}
		if (key[1] == 'i') {
			p->min_version = v;
			p->origins[POLICY_P_MIN_VERSION] = origin;
		} else {
			p->max_version = v;
			p->origins[POLICY_P_MAX_VERSION] = origin;
		}
		return 0;
	case POLICY_P_CIPHERS:
		r = set_string(&p->ciphers, value, key, err, errlen);
		if (r == 0)
			p->origins[POLICY_P_CIPHERS] = origin;
		return r;
	case POLICY_P_CA_BUNDLE:
		/* Resolved and checked by the caller, which may do I/O. */
		r = set_string(&p->ca_bundle, value, key, err, errlen);
		if (r == 0)
			p->origins[POLICY_P_CA_BUNDLE] = origin;
		return r;
	case POLICY_P_DANE:
		if (dane_mode_parse(value, &p->dane) < 0) {
			snprintf(err, errlen, "dane: \"%s\": expected on, off or "
			    "only", value);
			return -1;
		}
		p->origins[POLICY_P_DANE] = origin;
		return 0;
	case POLICY_P_MX:
		r = set_mx_list(p->mx, &p->nmx, value, key, err, errlen);
		if (r == 0)
			p->origins[POLICY_P_MX] = origin;
		return r;
	}
	snprintf(err, errlen, "%s: unknown key", key);
	return -1;
}

/*
 * The one place that finds a match by its exact (lower-cased) pattern: a
 * linear scan, to be replaced by a hash table when sets grow large.
 */
static struct policy_match *
match_find(const struct policy_set *set, const char *key, size_t len)
{
	int i;

	for (i = 0; i < set->nmatches; i++) {
		struct policy_match *m = &set->matches[i];

		if (strncasecmp(m->pattern, key, len) == 0 &&
		    m->pattern[len] == '\0')
			return m;
	}
	return NULL;
}

static int
match_key(struct policy_set *set, const char *arg, size_t arglen,
    const char *key, const char *value, struct policy_origin origin,
    char *err, size_t errlen)
{
	char pattern[POLICY_PATTERN_MAX];
	struct policy_match *m;
	int i, k;

	if (!normalize_pattern(arg, arglen, pattern, key, err, errlen))
		return -1;
	if ((m = match_find(set, pattern, strlen(pattern))) == NULL) {
		if (set->nmatches == POLICY_MATCHES_MAX) {
			snprintf(err, errlen, "%s: too many matches (max %d)", key,
			    POLICY_MATCHES_MAX);
			return -1;
		}
		if (set->nmatches == set->matches_cap) {
			int cap = set->matches_cap ? set->matches_cap * 2 : 16;
			struct policy_match *nm;

			nm = realloc(set->matches, (size_t)cap * sizeof(*nm));
			if (nm == NULL) {
				snprintf(err, errlen, "%s: out of memory", key);
				return -1;
			}
			set->matches = nm;
			set->matches_cap = cap;
		}
		m = &set->matches[set->nmatches++];
		memset(m, 0, sizeof(*m));
		strcpy(m->pattern, pattern);
		m->profile = -1;
		m->origin = origin;
	}

	switch ((k = key_index(match_keys, POLICY_M_NKEYS, key))) {
	case POLICY_M_PROFILE:
		if (!valid_profile_name(value, strlen(value), key, err, errlen))
			return -1;
		i = profile_get(set, value, strlen(value), key, err, errlen);
		if (i < 0)
			return -1;
		m->profile = i;
		break;
	case POLICY_M_NEXTHOP: {
		char hop[DOMAIN_MAX + 16];

		if (parse_nexthop(value, hop, sizeof(hop)) == 0) {
			snprintf(err, errlen, "nexthop: invalid \"%s\": expected "
			    "HOST[:PORT] (HOST a name, an IPv4 address or "
			    "[IPv6 address]; PORT 1-65535)", value);
			return -1;
		}
		if (set_string(&m->nexthop, hop, key, err, errlen) < 0)
			return -1;
		break;
	}
	case POLICY_M_MX:
		if (set_mx_list(m->mx, &m->nmx, value, key, err, errlen) < 0)
			return -1;
		break;
	default:
		snprintf(err, errlen, "%s: unknown key", key);
		return -1;
	}
	m->origins[k] = origin;
	return 0;
}

void
policy_set_init(struct policy_set *set)
{
	memset(set, 0, sizeof(*set));
	strcpy(set->profiles[0].name, "opportunistic");
	set->profiles[0].tls = POLICY_TLS_OPPORTUNISTIC;
	set->profiles[0].verify = POLICY_VERIFY_STRICT;
	set->profiles[0].builtin = 1;
	strcpy(set->profiles[1].name, "mandatory");
	set->profiles[1].tls = POLICY_TLS_MANDATORY;
	set->profiles[1].verify = POLICY_VERIFY_STRICT;
	set->profiles[1].builtin = 1;
	/*
	 * What an MTA-STS enforce policy asks for (RFC 8461): a profile of
	 * its own, so an operator's edits to "mandatory" never weaken it.
	 */
	strcpy(set->profiles[2].name, POLICY_MTA_STS_PROFILE);
	set->profiles[2].tls = POLICY_TLS_MANDATORY;
	set->profiles[2].verify = POLICY_VERIFY_STRICT;
	set->profiles[2].builtin = 1;
	set->nprofiles = 3;
	set->default_profile = 0;
}

void
policy_set_free(struct policy_set *set)
{
	int i;

	for (i = 0; i < set->nprofiles; i++) {
		free(set->profiles[i].ciphers);
		free(set->profiles[i].ca_bundle);
		free_list(set->profiles[i].mx, &set->profiles[i].nmx);
	}
	for (i = 0; i < set->nmatches; i++) {
		free(set->matches[i].nexthop);
		free_list(set->matches[i].mx, &set->matches[i].nmx);
	}
	free(set->matches);
	memset(set, 0, sizeof(*set));
}

int
policy_profile_find(const struct policy_set *set, const char *name)
{
	return profile_index(set, name, strlen(name));
}

int
policy_set_key(struct policy_set *set, const char *section, const char *key,
    const char *value, struct policy_origin origin, char *err, size_t errlen)
{
	enum section_kind kind;
	const char *arg;
	size_t arglen;

	kind = section_parse(section, &arg, &arglen);
	if (kind == SECTION_OTHER)
		return 1;
	if (value == NULL || *value == '\0') {
		snprintf(err, errlen, "%s: empty value", key);
		return -1;
	}
	if (kind == SECTION_PROFILE)
		return profile_key(set, arg, arglen, key, value, origin, err,
		    errlen);
	return match_key(set, arg, arglen, key, value, origin, err, errlen);
}

static int
declared(const struct policy_profile *p)
{
	return p->builtin || p->origin.line != 0;
}

int
policy_set_finish(struct policy_set *set, struct policy_origin *origin,
    char *err, size_t errlen)
{
	const struct policy_profile *p;
	int i;

	for (i = 0; i < set->nmatches; i++) {
		const struct policy_match *m = &set->matches[i];

		*origin = m->origin;
		if (m->profile < 0 || m->profile >= set->nprofiles) {
			snprintf(err, errlen, "[match %s] profile: required",
			    m->pattern);
			return -1;
		}
		p = &set->profiles[m->profile];
		if (!declared(p)) {
			snprintf(err, errlen, "[match %s] profile: unknown profile "
			    "\"%s\"", m->pattern, p->name);
			return -1;
		}
		if (m->nexthop != NULL && parse_nexthop(m->nexthop, NULL, 0) == 2 &&
		    m->nmx == 0 && p->nmx == 0 &&
		    p->verify == POLICY_VERIFY_STRICT && p->tls != POLICY_TLS_OFF) {
			snprintf(err, errlen, "[match %s] nexthop: nexthop is an "
			    "address: set mx to the names its certificate must "
			    "match", m->pattern);
			return -1;
		}
	}
	*origin = set->default_origin;
	if (set->default_profile < 0 || set->default_profile >= set->nprofiles ||
	    !declared(&set->profiles[set->default_profile])) {
		snprintf(err, errlen, "[policy] default: unknown profile \"%s\"",
		    set->default_profile >= 0 &&
			    set->default_profile < set->nprofiles ?
			set->profiles[set->default_profile].name : "?");
		return -1;
	}
	return 0;
}

int
policy_parse_version(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "1.0") == 0)
		return POLICY_TLS1_0;
	if (strcmp(s, "1.1") == 0)
		return POLICY_TLS1_1;
	if (strcmp(s, "1.2") == 0)
		return POLICY_TLS1_2;
	if (strcmp(s, "1.3") == 0)
		return POLICY_TLS1_3;
	return -1;
}

const char *
policy_version_name(int version)
{
	switch (version) {
	case POLICY_TLS1_0:
		return "1.0";
	case POLICY_TLS1_1:
		return "1.1";
	case POLICY_TLS1_2:
		return "1.2";
	case POLICY_TLS1_3:
		return "1.3";
	case 0:
		return "default";
	}
	return "unknown";
}

const char *
policy_tls_name(enum policy_tls tls)
{
	if ((unsigned)tls < sizeof(tls_names) / sizeof(tls_names[0]))
		return tls_names[tls];
	return "unknown";
}

const char *
policy_verify_name(enum policy_verify verify)
{
	if ((unsigned)verify < sizeof(verify_names) / sizeof(verify_names[0]))
		return verify_names[verify];
	return "unknown";
}

enum policy_status
policy_lookup(const struct policy_set *set, const char *recipient,
    struct policy_decision *out)
{
	const struct policy_match *m = NULL;
	const char *at, *dom, *d;
	char key[LOCAL_MAX + 1 + DOMAIN_MAX + 1];
	size_t len, llen, dlen;

	memset(out, 0, sizeof(*out));
	len = strlen(recipient);
	if (len > 0 && recipient[len - 1] == '.')
		len--; /* a trailing dot on the domain */
	at = memrchr(recipient, '@', len);
	dom = at != NULL ? at + 1 : recipient;
	dlen = len - (size_t)(dom - recipient);
	llen = at != NULL ? (size_t)(at - recipient) : 0;

	/* The domain in A-label form, lower-cased, into out->domain. */
	if (has_non_ascii(dom, dlen) || dlen > DOMAIN_MAX) {
		if (policy_domain_to_ascii(dom, dlen, out->domain,
		    &out->why) < 0) {
			out->status = POLICY_BAD_DOMAIN;
			out->domain[0] = '\0';
		}
	} else
		copy_lower(out->domain, sizeof(out->domain), dom, dlen);
	dlen = strlen(out->domain);

	if (at != NULL && llen > 0 && llen <= LOCAL_MAX && dlen > 0) {
		memcpy(key, recipient, llen);
		key[llen] = '@';
		memcpy(key + llen + 1, out->domain, dlen + 1);
		m = match_find(set, key, llen + 1 + dlen);
	}
	/* The domain, then each parent at a label boundary. */
	for (d = out->domain; m == NULL && dlen > 0;) {
		const char *dot;

		m = match_find(set, d, dlen);
		if (m != NULL || (dot = memchr(d, '.', dlen)) == NULL)
			break;
		dlen -= (size_t)(dot + 1 - d);
		d = dot + 1;
	}
	if (m == NULL)
		m = match_find(set, "*", 1);
	if (m != NULL && (m->profile < 0 || m->profile >= set->nprofiles))
		m = NULL; /* unfinished set: never an out-of-range index */

	out->match = m;
	out->profile = &set->profiles[m != NULL ? m->profile :
	    set->default_profile];
	out->nexthop = m != NULL ? m->nexthop : NULL;
	if (m != NULL && m->nmx > 0) {
		out->mx = (const char *const *)m->mx;
		out->nmx = m->nmx;
	} else {
		out->mx = (const char *const *)out->profile->mx;
		out->nmx = out->profile->nmx;
	}
	return out->status;
}

int
policy_mx_pattern_match(const char *pattern, const char *host)
{
	size_t plen, hlen;

	if (pattern == NULL || host == NULL)
		return 0;
	plen = strlen(pattern);
	hlen = strlen(host);
	if (plen > 0 && pattern[plen - 1] == '.')
		plen--;
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	if (plen == 0 || hlen == 0)
		return 0;
	if (plen > 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* "*.example.com": exactly one non-empty label before it. */
		size_t slen = plen - 1; /* ".example.com" */
		size_t llen;

		if (hlen <= slen)
			return 0;
		llen = hlen - slen;
		if (memchr(host, '.', llen) != NULL)
			return 0;
		return strncasecmp(host + llen, pattern + 1, slen) == 0;
	}
	return plen == hlen && strncasecmp(pattern, host, plen) == 0;
}
