/*
 * MTA-STS parsers (RFC 8461 sections 3.1, 3.2) and the mx check (4.1).
 *
 * Strict where the RFC is precise and the stakes are real: the version
 * and mode words are case-sensitive (RFC 7405 %s), max_age is at most ten
 * digits, an mx pattern is a host name with at most a "*." in front, and
 * a record or policy that breaks a rule is no policy at all.  Tolerant
 * where real-world files are sloppy and nothing depends on it: blank
 * lines, white space around keys and values, a trailing dot on an mx
 * pattern, white space at the end of the TXT record.
 *
 * A max_age above the RFC's maximum (31557600 s) is cut to it rather
 * than refused: the publisher asked for a long-lived policy, and refusing
 * it would turn an enforce policy into no policy (the caller learns of
 * it through max_age_capped, to log it).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtasts.h"
#include "policy.h"

/* (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
#define EXT_NAME_MAX 32
#define MAX_AGE_DIGITS 10

static const char *const mode_names[] = {
	[MTASTS_NONE] = "none",
	[MTASTS_TESTING] = "testing",
	[MTASTS_ENFORCE] = "enforce",
};

const char *
mtasts_mode_name(enum mtasts_mode mode)
{
	if ((unsigned)mode < sizeof(mode_names) / sizeof(mode_names[0]))
		return mode_names[mode];
	return "unknown";
}

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* sts-ext-name / sts-policy-ext-name. */
static int
ext_name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > EXT_NAME_MAX || !is_alnum((unsigned char)s[0]))
		return 0;
	for (i = 1; i < len; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

static int
equals(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

/* ---- the TXT record (section 3.1) ---- */

static int
is_sts_record(const char *r, size_t len)
{
	if (r == NULL || len < 7 || memcmp(r, "v=STSv1", 7) != 0)
		return 0;
	return len == 7 || r[7] == ';' || is_wsp((unsigned char)r[7]);
}

/*
 * sts-text-record = sts-version 1*(sts-field-delim sts-field)
 *                   [sts-field-delim]
 * sts-field-delim = *WSP ";" *WSP
 */
static enum mtasts_txt_status
parse_record(const char *s, size_t len, struct mtasts_txt *out, char *err,
    size_t errlen)
{
	size_t pos = 7, name, nlen, val, vlen, i;
	int have_id = 0;

	for (;;) {
		while (pos < len && is_wsp((unsigned char)s[pos]))
			pos++;
		if (pos == len)
			break;
		if (s[pos] != ';') {
			seterr(err, errlen, "TXT record: expected \";\" at "
			    "offset %zu", pos);
			return MTASTS_TXT_INVALID;
		}
		pos++;
		while (pos < len && is_wsp((unsigned char)s[pos]))
			pos++;
		if (pos == len)
			break; /* a final delimiter */
		name = pos;
		while (pos < len && s[pos] != '=' && s[pos] != ';' &&
		    !is_wsp((unsigned char)s[pos]))
			pos++;
		nlen = pos - name;
		if (pos == len || s[pos] != '=') {
			seterr(err, errlen, "TXT record: field at offset %zu "
			    "is not \"name=value\"", name);
			return MTASTS_TXT_INVALID;
		}
		val = ++pos;
		while (pos < len && s[pos] != ';' && !is_wsp((unsigned char)s[pos]))
			pos++;
		vlen = pos - val;
		if (equals(s + name, nlen, "id")) {
			if (have_id) {
				seterr(err, errlen, "TXT record: two ids");
				return MTASTS_TXT_INVALID;
			}
			if (vlen == 0 || vlen > MTASTS_ID_MAX) {
				seterr(err, errlen, "TXT record: id of %zu "
				    "characters (1 to %d)", vlen, MTASTS_ID_MAX);
				return MTASTS_TXT_INVALID;
			}
			for (i = 0; i < vlen; i++)
				if (!is_alnum((unsigned char)s[val + i])) {
					seterr(err, errlen, "TXT record: id has "
					    "a character other than letters "
					    "and digits");
					return MTASTS_TXT_INVALID;
				}
			memcpy(out->id, s + val, vlen);
			out->id[vlen] = '\0';
			have_id = 1;
			continue;
		}
		/* An extension: ignored, but it must be well-formed. */
		if (!ext_name_ok(s + name, nlen)) {
			seterr(err, errlen, "TXT record: invalid field name at "
			    "offset %zu", name);
			return MTASTS_TXT_INVALID;
		}
		if (vlen == 0) {
			seterr(err, errlen, "TXT record: empty value at offset "
			    "%zu", val);
			return MTASTS_TXT_INVALID;
		}
		for (i = 0; i < vlen; i++) {
			unsigned char c = (unsigned char)s[val + i];

			/* %x21-3A / %x3C / %x3E-7E: VCHAR but ";" and "=" */
			if (c < 0x21 || c > 0x7e || c == '=') {
				seterr(err, errlen, "TXT record: invalid "
				    "character in the value at offset %zu",
				    val + i);
				return MTASTS_TXT_INVALID;
			}
		}
	}
	if (!have_id) {
		out->id[0] = '\0';
		seterr(err, errlen, "TXT record: no id");
		return MTASTS_TXT_INVALID;
	}
	return MTASTS_TXT_OK;
}

enum mtasts_txt_status
mtasts_parse_txt(const char *const *recs, const size_t *lens, int n,
    struct mtasts_txt *out, char *err, size_t errlen)
{
	enum mtasts_txt_status st;
	int i, found = -1, count = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++)
		if (is_sts_record(recs[i], lens[i])) {
			count++;
			found = i;
		}
	if (count == 0) {
		seterr(err, errlen, "no TXT record starting \"v=STSv1\"");
		return MTASTS_TXT_NONE;
	}
	if (count > 1) {
		seterr(err, errlen, "%d TXT records starting \"v=STSv1\" (one "
		    "is allowed)", count);
		return MTASTS_TXT_INVALID;
	}
	st = parse_record(recs[found], lens[found], out, err, errlen);
	if (st != MTASTS_TXT_OK)
		memset(out, 0, sizeof(*out));
	return st;
}

/* ---- the policy file (section 3.2) ---- */

enum { K_VERSION, K_MODE, K_MAX_AGE, K_NKEYS };

struct pstate {
	struct mtasts_policy *p;
	int seen[K_NKEYS];
	int mx_cap;
};

/* ["*."] Domain, normalized into a new string; NULL with *why. */
static char *
mx_pattern(const char *v, size_t len, const char **why)
{
	char dom[POLICY_DOMAIN_MAX + 1], *out;
	size_t off = 0;

	if (len > 1 && v[len - 1] == '.')
		len--;
	if (len >= 2 && v[0] == '*' && v[1] == '.')
		off = 2;
	if (memchr(v + off, '*', len - off) != NULL) {
		*why = "\"*\" is allowed only as the whole leftmost label";
		return NULL;
	}
	if (memchr(v, ' ', len) != NULL || memchr(v, '\t', len) != NULL) {
		*why = "one pattern per mx line";
		return NULL;
	}
	if (policy_domain_to_ascii(v + off, len - off, dom, why) < 0)
		return NULL;
	if ((out = malloc(off + strlen(dom) + 1)) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	memcpy(out, v, off);
	strcpy(out + off, dom);
	return out;
}

static int
add_mx(struct pstate *st, const char *v, size_t len, int line, char *err,
    size_t errlen)
{
	struct mtasts_policy *p = st->p;
	const char *why = NULL;
	char *pat;
	int i;

	if ((pat = mx_pattern(v, len, &why)) == NULL) {
		seterr(err, errlen, "line %d: mx: \"%.*s\": %s", line,
		    len > 80 ? 80 : (int)len, v, why);
		return -1;
	}
	for (i = 0; i < p->nmx; i++)
		if (strcmp(p->mx[i], pat) == 0) {
			free(pat); /* listed twice: once is enough */
			return 0;
		}
	if (p->nmx == MTASTS_MX_MAX) {
		free(pat);
		seterr(err, errlen, "line %d: mx: more than %d patterns", line,
		    MTASTS_MX_MAX);
		return -1;
	}
	if (p->nmx == st->mx_cap) {
		int cap = st->mx_cap ? st->mx_cap * 2 : 8;
		char **nm = realloc(p->mx, (size_t)cap * sizeof(*nm));

		if (nm == NULL) {
			free(pat);
			seterr(err, errlen, "out of memory");
			return -1;
		}
		p->mx = nm;
		st->mx_cap = cap;
	}
	p->mx[p->nmx++] = pat;
	return 0;
}

static int
max_age_value(const char *v, size_t len, long *out, int *capped)
{
	long long n = 0;
	size_t i;

	if (len == 0 || len > MAX_AGE_DIGITS)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	*capped = n > MTASTS_MAX_AGE_MAX;
	*out = *capped ? MTASTS_MAX_AGE_MAX : (long)n;
	return 0;
}

/* One line, without its terminator. */
static int
policy_line(struct pstate *st, const char *s, size_t len, int line, char *err,
    size_t errlen)
{
	struct mtasts_policy *p = st->p;
	const char *colon, *key, *val;
	size_t klen, vlen, i;
	int k;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			seterr(err, errlen, "line %d: control character 0x%02x",
			    line, c);
			return -1;
		}
	}
	while (len > 0 && is_wsp((unsigned char)*s))
		s++, len--;
	while (len > 0 && is_wsp((unsigned char)s[len - 1]))
		len--;
	if (len == 0)
		return 0;
	if ((colon = memchr(s, ':', len)) == NULL) {
		seterr(err, errlen, "line %d: expected \"key: value\"", line);
		return -1;
	}
	key = s;
	klen = (size_t)(colon - s);
	while (klen > 0 && is_wsp((unsigned char)key[klen - 1]))
		klen--;
	val = colon + 1;
	vlen = (size_t)(s + len - val);
	while (vlen > 0 && is_wsp((unsigned char)*val))
		val++, vlen--;
	if (!ext_name_ok(key, klen)) {
		seterr(err, errlen, "line %d: invalid key \"%.*s\"", line,
		    klen > 40 ? 40 : (int)klen, key);
		return -1;
	}
	if (vlen == 0) {
		seterr(err, errlen, "line %d: %.*s: empty value", line,
		    (int)klen, key);
		return -1;
	}
	if (equals(key, klen, "mx"))
		return add_mx(st, val, vlen, line, err, errlen);
	if (equals(key, klen, "version"))
		k = K_VERSION;
	else if (equals(key, klen, "mode"))
		k = K_MODE;
	else if (equals(key, klen, "max_age"))
		k = K_MAX_AGE;
	else
		return 0; /* unknown keys are ignored (section 3.2) */
	if (st->seen[k])
		return 0; /* repeated: the first counts, the rest is ignored */
	st->seen[k] = line;

	switch (k) {
	case K_VERSION:
		if (!equals(val, vlen, "STSv1")) {
			seterr(err, errlen, "line %d: version: \"%.*s\": only "
			    "STSv1 is known", line, vlen > 40 ? 40 : (int)vlen,
			    val);
			return -1;
		}
		return 0;
	case K_MODE:
		if (equals(val, vlen, "enforce"))
			p->mode = MTASTS_ENFORCE;
		else if (equals(val, vlen, "testing"))
			p->mode = MTASTS_TESTING;
		else if (equals(val, vlen, "none"))
			p->mode = MTASTS_NONE;
		else {
			seterr(err, errlen, "line %d: mode: \"%.*s\": expected "
			    "enforce, testing or none", line,
			    vlen > 40 ? 40 : (int)vlen, val);
			return -1;
		}
		return 0;
	default:
		if (max_age_value(val, vlen, &p->max_age,
		    &p->max_age_capped) < 0) {
			seterr(err, errlen, "line %d: max_age: \"%.*s\": expected "
			    "1 to %d digits", line, vlen > 40 ? 40 : (int)vlen,
			    val, MAX_AGE_DIGITS);
			return -1;
		}
		return 0;
	}
}

int
mtasts_parse_policy(const char *text, size_t len, struct mtasts_policy *out,
    char *err, size_t errlen)
{
	struct pstate st;
	size_t pos = 0, end, next;
	int line = 1;
	const char *nl;

	memset(out, 0, sizeof(*out));
	memset(&st, 0, sizeof(st));
	st.p = out;
	if (len > MTASTS_POLICY_MAX) {
		seterr(err, errlen, "policy of %zu bytes (max %d)", len,
		    MTASTS_POLICY_MAX);
		return -1;
	}
	if (len == 0 || text == NULL) {
		seterr(err, errlen, "empty policy");
		return -1;
	}
	while (pos < len) {
		nl = memchr(text + pos, '\n', len - pos);
		end = nl != NULL ? (size_t)(nl - text) : len;
		next = nl != NULL ? end + 1 : len;
		if (end > pos && text[end - 1] == '\r')
			end--; /* CRLF; a CR elsewhere is a control character */
		if (policy_line(&st, text + pos, end - pos, line, err,
		    errlen) < 0)
			goto fail;
		pos = next;
		line++;
	}
	if (!st.seen[K_VERSION]) {
		seterr(err, errlen, "version: missing");
		goto fail;
	}
	if (!st.seen[K_MODE]) {
		seterr(err, errlen, "mode: missing");
		goto fail;
	}
	if (!st.seen[K_MAX_AGE]) {
		seterr(err, errlen, "max_age: missing");
		goto fail;
	}
	if (out->mode != MTASTS_NONE && out->nmx == 0) {
		/* Never an enforce policy with no MX allowed: it is invalid. */
		seterr(err, errlen, "mx: missing (required unless mode is "
		    "none)");
		goto fail;
	}
	return 0;
fail:
	mtasts_policy_free(out);
	return -1;
}

void
mtasts_policy_free(struct mtasts_policy *p)
{
	int i;

	for (i = 0; i < p->nmx; i++)
		free(p->mx[i]);
	free(p->mx);
	memset(p, 0, sizeof(*p));
}

int
mtasts_mx_match(const struct mtasts_policy *p, const char *host)
{
	int i;

	for (i = 0; i < p->nmx; i++)
		if (policy_mx_pattern_match(p->mx[i], host))
			return 1;
	return 0;
}
