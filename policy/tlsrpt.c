/*
 * SMTP TLS Reporting (RFC 8460): the TXT parser, the bounded counts, their
 * journal records and the report JSON (see tlsrpt.h).
 *
 * The parser is strict as mtasts.c is: the version word is
 * case-sensitive, a record that breaks the grammar is no record, and a
 * second rua is an error rather than a guess which one counts.  Report
 * URIs of schemes mxtls cannot send to are skipped, not fatal: the
 * domain may list them beside one it can use.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlsrpt.h"

#define EXT_NAME_MAX 32
#define NBUCKETS 4096
#define RECORD_MAGIC "mxtls-tlsrpt 1"
#define OVERFLOW_MAGIC "mxtls-tlsrpt-overflow 1"

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

/* ---- the TXT record (RFC 8460 section 3) ---- */

static int
is_tlsrpt_record(const char *r, size_t len)
{
	if (r == NULL || len < 10 || memcmp(r, "v=TLSRPTv1", 10) != 0)
		return 0;
	return len == 10 || r[10] == ';' || is_wsp((unsigned char)r[10]);
}

/* tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
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

/* tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
static int
ext_value_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
			return 0;
	}
	return 1;
}

/*
 * One URI of the rua list: printable ASCII without ",", ";" (RFC 8460
 * section 3 asks for them percent-encoded).  1 when kept, 0 when of
 * another scheme (skipped), -1 when malformed.
 */
static int
rua_uri(const char *s, size_t len, struct tlsrpt_txt *out, char *err,
    size_t errlen)
{
	size_t i;
	const char *at;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
			seterr(err, errlen, "rua: a URI with white space or a "
			    "control character");
			return -1;
		}
	if (len > 7 && strncasecmp(s, "mailto:", 7) == 0) {
		at = memchr(s + 7, '@', len - 7);
		if (at == NULL || at == s + 7 || at == s + len - 1) {
			seterr(err, errlen, "rua: \"%.*s\" is not a mailto: "
			    "URI with an address", (int)len, s);
			return -1;
		}
	} else if (len > 8 && strncasecmp(s, "https://", 8) == 0) {
		if (s[8] == '/') {
			seterr(err, errlen, "rua: \"%.*s\" has no host",
			    (int)len, s);
			return -1;
		}
	} else
		return 0;
	if (len > TLSRPT_URI_MAX || out->nrua == TLSRPT_RUA_MAX)
		return 0;
	memcpy(out->rua[out->nrua], s, len);
	out->rua[out->nrua][len] = '\0';
	out->nrua++;
	return 1;
}

/* rua = "rua=" uri *(*WSP "," *WSP uri), in s[0..len). */
static int
parse_rua(const char *s, size_t len, struct tlsrpt_txt *out, char *err,
    size_t errlen)
{
	size_t pos = 0, start, end;
	int r;

	for (;;) {
		start = pos;
		while (pos < len && s[pos] != ',' && !is_wsp((unsigned char)s[pos]))
			pos++;
		end = pos;
		if (end == start) {
			seterr(err, errlen, "rua: an empty URI");
			return -1;
		}
		if ((r = rua_uri(s + start, end - start, out, err, errlen)) < 0)
			return -1;
		if (r == 0)
			out->nskipped++;
		while (pos < len && is_wsp((unsigned char)s[pos]))
			pos++;
		if (pos == len)
			return 0;
		if (s[pos] != ',') {
			seterr(err, errlen, "rua: white space inside a URI");
			return -1;
		}
		pos++;
		while (pos < len && is_wsp((unsigned char)s[pos]))
			pos++;
	}
}

static enum tlsrpt_txt_status
parse_record(const char *s, size_t len, struct tlsrpt_txt *out, char *err,
    size_t errlen)
{
	size_t pos = 10, name, nlen, val, vlen;
	int nfields = 0, have_rua = 0;

	for (;;) {
		while (pos < len && is_wsp((unsigned char)s[pos]))
			pos++;
		if (pos == len)
			break;
		if (s[pos] != ';') {
			seterr(err, errlen, "expected \";\" at offset %zu", pos);
			return TLSRPT_TXT_INVALID;
		}
		pos++;
		while (pos < len && is_wsp((unsigned char)s[pos]))
			pos++;
		if (pos == len)
			break; /* the optional final delimiter */
		name = pos;
		while (pos < len && s[pos] != '=' && s[pos] != ';' &&
		    !is_wsp((unsigned char)s[pos]))
			pos++;
		nlen = pos - name;
		if (pos == len || s[pos] != '=') {
			seterr(err, errlen, "field \"%.*s\" without \"=\"",
			    (int)nlen, s + name);
			return TLSRPT_TXT_INVALID;
		}
		pos++;
		val = pos;
		/* A rua list has its own white space; others end at it. */
		if (nlen == 3 && memcmp(s + name, "rua", 3) == 0) {
			while (pos < len && s[pos] != ';')
				pos++;
			vlen = pos - val;
			while (vlen > 0 && is_wsp((unsigned char)s[val + vlen - 1]))
				vlen--;
			if (have_rua) {
				seterr(err, errlen, "rua more than once");
				return TLSRPT_TXT_INVALID;
			}
			have_rua = 1;
			if (parse_rua(s + val, vlen, out, err, errlen) < 0)
				return TLSRPT_TXT_INVALID;
		} else {
			while (pos < len && s[pos] != ';' &&
			    !is_wsp((unsigned char)s[pos]))
				pos++;
			vlen = pos - val;
			if (!ext_name_ok(s + name, nlen) ||
			    !ext_value_ok(s + val, vlen)) {
				seterr(err, errlen, "malformed field \"%.*s\"",
				    (int)(pos - name), s + name);
				return TLSRPT_TXT_INVALID;
			}
		}
		nfields++;
	}
	if (!have_rua) {
		seterr(err, errlen, "no rua field");
		return TLSRPT_TXT_INVALID;
	}
	if (out->nrua == 0) {
		seterr(err, errlen, "rua names no mailto: or https: URI");
		return TLSRPT_TXT_INVALID;
	}
	return nfields > 0 ? TLSRPT_TXT_OK : TLSRPT_TXT_INVALID;
}

enum tlsrpt_txt_status
tlsrpt_parse_txt(const char *const *recs, const size_t *lens, int n,
    struct tlsrpt_txt *out, char *err, size_t errlen)
{
	enum tlsrpt_txt_status st;
	int i, found = -1;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++) {
		if (!is_tlsrpt_record(recs[i], lens[i]))
			continue;
		if (found >= 0) {
			seterr(err, errlen, "several v=TLSRPTv1 records");
			return TLSRPT_TXT_INVALID;
		}
		found = i;
	}
	if (found < 0) {
		seterr(err, errlen, "no v=TLSRPTv1 record");
		return TLSRPT_TXT_NONE;
	}
	st = parse_record(recs[found], lens[found], out, err, errlen);
	if (st != TLSRPT_TXT_OK)
		memset(out, 0, sizeof(*out));
	return st;
}

/* ---- policies ---- */

static const char *const type_names[] = {
	[TLSRPT_POLICY_STS] = "sts",
	[TLSRPT_POLICY_TLSA] = "tlsa",
	[TLSRPT_POLICY_NONE] = "no-policy-found",
};

const char *
tlsrpt_policy_type_name(enum tlsrpt_policy_type t)
{
	if ((unsigned)t < sizeof(type_names) / sizeof(type_names[0]))
		return type_names[t];
	return "unknown";
}

static int
type_parse(const char *s, enum tlsrpt_policy_type *t)
{
	size_t i;

	for (i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (strcmp(s, type_names[i]) == 0) {
			*t = (enum tlsrpt_policy_type)i;
			return 0;
		}
	return -1;
}

/* Append a whole line to dst (used bytes *used) if it fits. */
static void
add_line(char *dst, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
add_line(char *dst, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(dst + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *used)
		dst[*used] = '\0'; /* it did not fit: leave it out */
	else
		*used += (size_t)n;
}

void
tlsrpt_policy_sts(char *dst, size_t len, const char *mode, long max_age,
    const char *const *mx, int nmx)
{
	size_t used = 0;
	int i;

	if (len == 0)
		return;
	dst[0] = '\0';
	add_line(dst, len, &used, "version: STSv1\n");
	add_line(dst, len, &used, "mode: %s\n", mode);
	for (i = 0; i < nmx; i++)
		add_line(dst, len, &used, "mx: %s\n", mx[i]);
	if (max_age >= 0)
		add_line(dst, len, &used, "max_age: %ld\n", max_age);
}

void
tlsrpt_policy_tlsa(char *dst, size_t len, const struct dane_tlsa_set *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t used = 0, need, i;
	int r;

	if (len == 0)
		return;
	dst[0] = '\0';
	for (r = 0; s != NULL && r < s->n; r++) {
		const struct dane_tlsa *t = &s->rec[r];

		/* "U S M " (at most 12 bytes), the hex, LF, NUL. */
		need = 12 + 2 * t->len + 2;
		if (need > len - used)
			continue;
		used += (size_t)snprintf(dst + used, len - used, "%u %u %u ",
		    t->usage, t->selector, t->mtype);
		for (i = 0; i < t->len; i++) {
			dst[used++] = hex[t->data[i] >> 4];
			dst[used++] = hex[t->data[i] & 15];
		}
		dst[used++] = '\n';
		dst[used] = '\0';
	}
}

/* ---- the store ---- */

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n-- > 0) {
		h ^= *c++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
key_hash(long day, const struct tlsrpt_key *k)
{
	const char *f[7];
	uint64_t h = 0xcbf29ce484222325ULL;
	int i;

	h = fnv(h, &day, sizeof(day));
	h = fnv(h, &k->type, sizeof(k->type));
	f[0] = k->domain;
	f[1] = k->policy;
	f[2] = k->mx;
	f[3] = k->result ? k->result : "";
	f[4] = k->result ? k->sending_ip : "";
	f[5] = k->result ? k->mx_host : "";
	f[6] = k->result ? k->receiving_ip : "";
	for (i = 0; i < 7; i++)
		h = fnv(h, f[i], strlen(f[i]) + 1); /* the NUL separates */
	return h;
}

/* Printable ASCII only (lines of LF-ended text: also LF), at most max. */
static int
field_ok(const char *s, size_t max, int lines)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; *s != '\0'; s++, n++)
		if (n >= max || (!(*s >= 0x20 && *s < 0x7f) &&
		    !(lines && *s == '\n')))
			return 0;
	return 1;
}

static int
lines_ok(const char *s)
{
	size_t n = strlen(s);

	/* Each line ends in LF and none is empty. */
	return field_ok(s, TLSRPT_POLICY_MAX, 1) && (n == 0 ||
	    (s[n - 1] == '\n' && s[0] != '\n' && strstr(s, "\n\n") == NULL));
}

static int
key_ok(const struct tlsrpt_key *k)
{
	if (k->domain == NULL || k->domain[0] == '\0' ||
	    !field_ok(k->domain, TLSRPT_FIELD_MAX, 0) ||
	    (unsigned)k->type > TLSRPT_POLICY_NONE ||
	    k->policy == NULL || !lines_ok(k->policy) ||
	    k->mx == NULL || !lines_ok(k->mx))
		return 0;
	if (k->result == NULL)
		return 1;
	return k->result[0] != '\0' &&
	    field_ok(k->result, TLSRPT_FIELD_MAX, 0) &&
	    strcmp(k->result, "success") != 0 &&
	    field_ok(k->sending_ip, TLSRPT_FIELD_MAX, 0) &&
	    field_ok(k->mx_host, TLSRPT_FIELD_MAX, 0) &&
	    field_ok(k->receiving_ip, TLSRPT_FIELD_MAX, 0);
}

static int
same(const struct tlsrpt_entry *e, long day, const struct tlsrpt_key *k)
{
	return e->day == day && e->type == k->type &&
	    strcmp(e->domain, k->domain) == 0 &&
	    strcmp(e->policy, k->policy) == 0 && strcmp(e->mx, k->mx) == 0 &&
	    (e->result == NULL) == (k->result == NULL) &&
	    (k->result == NULL || (strcmp(e->result, k->result) == 0 &&
	    strcmp(e->sending_ip, k->sending_ip) == 0 &&
	    strcmp(e->mx_host, k->mx_host) == 0 &&
	    strcmp(e->receiving_ip, k->receiving_ip) == 0));
}

struct tlsrpt_store *
tlsrpt_store_new(size_t max_entries, size_t max_bytes)
{
	struct tlsrpt_store *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if ((s->b = calloc(NBUCKETS, sizeof(*s->b))) == NULL) {
		free(s);
		return NULL;
	}
	s->nb = NBUCKETS;
	s->max_entries = max_entries;
	s->max_bytes = max_bytes;
	return s;
}

static void
entry_free(struct tlsrpt_entry *e)
{
	free(e->domain);
	free(e->policy);
	free(e->mx);
	free(e->result);
	free(e->sending_ip);
	free(e->mx_host);
	free(e->receiving_ip);
	free(e);
}

void
tlsrpt_store_drop(struct tlsrpt_store *s, long day)
{
	struct tlsrpt_entry **pp, *e;
	struct tlsrpt_day *d;
	size_t i;

	if ((d = tlsrpt_store_day(s, day)) == NULL)
		return;
	for (i = 0; i < s->nb; i++)
		for (pp = &s->b[i]; (e = *pp) != NULL;) {
			if (e->day != day) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			entry_free(e);
		}
	*d = s->days[--s->ndays];
}

void
tlsrpt_store_free(struct tlsrpt_store *s)
{
	if (s == NULL)
		return;
	while (s->ndays > 0)
		tlsrpt_store_drop(s, s->days[0].day);
	free(s->b);
	free(s);
}

struct tlsrpt_day *
tlsrpt_store_day(struct tlsrpt_store *s, long day)
{
	int i;

	for (i = 0; i < s->ndays; i++)
		if (s->days[i].day == day)
			return &s->days[i];
	return NULL;
}

static char *
dup_or(const char *s, int *oom)
{
	char *p = strdup(s ? s : "");

	if (p == NULL)
		*oom = 1;
	return p;
}

int
tlsrpt_store_add(struct tlsrpt_store *s, long day, const struct tlsrpt_key *k,
    unsigned long n, struct tlsrpt_entry **out)
{
	struct tlsrpt_day *d;
	struct tlsrpt_entry *e;
	uint64_t h;
	size_t cost;
	int oom = 0;

	if (out != NULL)
		*out = NULL;
	if (!key_ok(k))
		return -1;
	h = key_hash(day, k);
	for (e = s->b[h % s->nb]; e != NULL; e = e->next)
		if (e->hash == h && same(e, day, k)) {
			e->count += n;
			e->dirty = 1;
			if (out != NULL)
				*out = e;
			return 0;
		}
	if ((d = tlsrpt_store_day(s, day)) == NULL) {
		if (s->ndays == TLSRPT_DAYS_MAX)
			return 1;
		d = &s->days[s->ndays++];
		memset(d, 0, sizeof(*d));
		d->day = day;
	}
	cost = sizeof(*e) + strlen(k->domain) + strlen(k->policy) +
	    strlen(k->mx) + 7 + (k->result == NULL ? 0 : strlen(k->result) +
	    strlen(k->sending_ip) + strlen(k->mx_host) +
	    strlen(k->receiving_ip));
	if (d->nentries >= s->max_entries || d->bytes + cost > s->max_bytes) {
		d->overflow += n;
		d->overflow_dirty = 1;
		return 1;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	e->day = day;
	e->hash = h;
	e->count = n;
	e->dirty = 1;
	e->cost = cost;
	e->type = k->type;
	e->domain = dup_or(k->domain, &oom);
	e->policy = dup_or(k->policy, &oom);
	e->mx = dup_or(k->mx, &oom);
	if (k->result != NULL) {
		e->result = dup_or(k->result, &oom);
		e->sending_ip = dup_or(k->sending_ip, &oom);
		e->mx_host = dup_or(k->mx_host, &oom);
		e->receiving_ip = dup_or(k->receiving_ip, &oom);
	} else {
		e->sending_ip = dup_or("", &oom);
		e->mx_host = dup_or("", &oom);
		e->receiving_ip = dup_or("", &oom);
	}
	if (oom) {
		entry_free(e);
		return -1;
	}
	e->next = s->b[h % s->nb];
	s->b[h % s->nb] = e;
	e->dnext = d->first;
	d->first = e;
	d->nentries++;
	d->bytes += cost;
	if (out != NULL)
		*out = e;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
tlsrpt_store_domains(struct tlsrpt_store *s, long day, const char ***out)
{
	struct tlsrpt_day *d = tlsrpt_store_day(s, day);
	struct tlsrpt_entry *e;
	const char **v;
	size_t n = 0, i, u = 0;

	*out = NULL;
	if (d == NULL || d->nentries == 0)
		return 0;
	if ((v = calloc(d->nentries, sizeof(*v))) == NULL)
		return -1;
	for (e = d->first; e != NULL; e = e->dnext)
		v[n++] = e->domain;
	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 0; i < n; i++)
		if (u == 0 || strcmp(v[u - 1], v[i]) != 0)
			v[u++] = v[i];
	*out = v;
	return (int)u;
}

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

int
tlsrpt_store_report_days(const struct tlsrpt_store *s, long today,
    long keep, int with_yesterday, long *days, int max)
{
	int i, n = 0;
	long d;

	for (i = 0; i < s->ndays && n < max; i++) {
		d = s->days[i].day;
		/* Today is not over; a day past keeping has left the journal. */
		if (d >= today || d < today - keep || s->days[i].nentries == 0)
			continue;
		if (d == today - 1 && !with_yesterday)
			continue;
		days[n++] = d;
	}
	qsort(days, (size_t)n, sizeof(*days), cmp_long);
	return n;
}

/* ---- days ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's). */
static long
days_from_civil(long y, unsigned m, unsigned d)
{
	long era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long)doe - 719468;
}

long
tlsrpt_day_of(time_t t)
{
	return (long)(t >= 0 ? t / 86400 : (t - 86399) / 86400);
}

void
tlsrpt_day_text(long day, char *dst, size_t len)
{
	time_t t = (time_t)day * 86400;
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(dst, len, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday);
}

int
tlsrpt_day_parse(const char *s, long *day)
{
	unsigned y, m, d;
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
		31, 30, 31 };
	int i;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	y = (unsigned)atoi(s);
	m = (unsigned)atoi(s + 5);
	d = (unsigned)atoi(s + 8);
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
	    (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 ||
	    y % 400 == 0))))
		return -1;
	*day = days_from_civil((long)y, m, d);
	return 0;
}

/* ---- the journal's records ---- */

void
tlsrpt_entry_key(const struct tlsrpt_entry *e, char *dst, size_t len)
{
	char day[16];

	tlsrpt_day_text(e->day, day, sizeof(day));
	snprintf(dst, len, "e-%s-%016llx", day, (unsigned long long)e->hash);
}

void
tlsrpt_overflow_key(long day, char *dst, size_t len)
{
	char d[16];

	tlsrpt_day_text(day, d, sizeof(d));
	snprintf(dst, len, "o-%s", d);
}

/* Each line of text (LF-ended) as "PREFIX line". */
static void
put_lines(FILE *f, const char *prefix, const char *text)
{
	const char *nl;

	for (; *text != '\0'; text = nl + 1) {
		nl = strchr(text, '\n');
		fprintf(f, "%s %.*s\n", prefix, (int)(nl - text), text);
	}
}

char *
tlsrpt_entry_format(const struct tlsrpt_entry *e, size_t *len)
{
	char *buf = NULL, day[16];
	FILE *f;

	if ((f = open_memstream(&buf, len)) == NULL)
		return NULL;
	tlsrpt_day_text(e->day, day, sizeof(day));
	fprintf(f, "%s\nday %s\ndomain %s\ntype %s\nresult %s\n"
	    "sending-ip %s\nmx-host %s\nreceiving-ip %s\ncount %lu\n",
	    RECORD_MAGIC, day, e->domain, tlsrpt_policy_type_name(e->type),
	    e->result ? e->result : "success", e->sending_ip, e->mx_host,
	    e->receiving_ip, e->count);
	put_lines(f, "policy", e->policy);
	put_lines(f, "mx", e->mx);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *
tlsrpt_overflow_format(const struct tlsrpt_day *d, size_t *len)
{
	char *buf = NULL, day[16];
	FILE *f;

	if ((f = open_memstream(&buf, len)) == NULL)
		return NULL;
	tlsrpt_day_text(d->day, day, sizeof(day));
	fprintf(f, "%s\nday %s\ncount %lu\n", OVERFLOW_MAGIC, day, d->overflow);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The next line of [*p, end) into line (without LF); -1 without an LF. */
static int
next_line(const char **p, const char *end, char *line, size_t linelen)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n;

	if (nl == NULL)
		return -1;
	n = (size_t)(nl - *p);
	if (n >= linelen || memchr(*p, '\0', n) != NULL)
		return -1;
	memcpy(line, *p, n);
	line[n] = '\0';
	*p = nl + 1;
	return 0;
}

/* "NAME value": value, or NULL when the line is not that. */
static const char *
field(const char *line, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(line, name, n) != 0 || line[n] != ' ')
		return NULL;
	return line + n + 1;
}

static int
parse_count(const char *s, unsigned long *n)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 19)
		return -1;
	*n = strtoul(s, &end, 10);
	return *end == '\0' ? 0 : -1;
}

static int
load_overflow(struct tlsrpt_store *s, const char *key, const char *p,
    const char *end, char *err, size_t errlen)
{
	char line[64], want[TLSRPT_KEY_LEN];
	struct tlsrpt_day *d;
	unsigned long n;
	long day;
	const char *v;

	if (next_line(&p, end, line, sizeof(line)) < 0 ||
	    (v = field(line, "day")) == NULL || tlsrpt_day_parse(v, &day) < 0 ||
	    next_line(&p, end, line, sizeof(line)) < 0 ||
	    parse_count(field(line, "count"), &n) < 0 || p != end) {
		seterr(err, errlen, "%s: malformed overflow record", key);
		return -1;
	}
	tlsrpt_overflow_key(day, want, sizeof(want));
	if (strcmp(key, want) != 0) {
		seterr(err, errlen, "%s: the record is of %s", key, want);
		return -1;
	}
	if ((d = tlsrpt_store_day(s, day)) == NULL) {
		if (s->ndays == TLSRPT_DAYS_MAX)
			return 1;
		d = &s->days[s->ndays++];
		memset(d, 0, sizeof(*d));
		d->day = day;
	}
	d->overflow = n;
	d->overflow_dirty = 0;
	return 0;
}

int
tlsrpt_record_load(struct tlsrpt_store *s, const char *key, const char *value,
    size_t len, char *err, size_t errlen)
{
	static const char *const names[] = { "day", "domain", "type", "result",
		"sending-ip", "mx-host", "receiving-ip", "count" };
	const char *p = value, *end = value + len, *v[8];
	char lines[8][TLSRPT_FIELD_MAX + 16], line[TLSRPT_POLICY_MAX + 16];
	char *policy = NULL, *mx = NULL, want[TLSRPT_KEY_LEN];
	size_t plen = 0, mlen = 0;
	struct tlsrpt_key k;
	struct tlsrpt_entry *e;
	unsigned long count;
	long day;
	FILE *pf = NULL, *mf = NULL;
	int i, r = -1;

	if (next_line(&p, end, line, sizeof(line)) < 0) {
		seterr(err, errlen, "%s: no header line", key);
		return -1;
	}
	if (strcmp(line, OVERFLOW_MAGIC) == 0)
		return load_overflow(s, key, p, end, err, errlen);
	if (strcmp(line, RECORD_MAGIC) != 0) {
		seterr(err, errlen, "%s: not a record of %s", key, RECORD_MAGIC);
		return -1;
	}
	for (i = 0; i < 8; i++)
		if (next_line(&p, end, lines[i], sizeof(lines[i])) < 0 ||
		    (v[i] = field(lines[i], names[i])) == NULL) {
			seterr(err, errlen, "%s: line %d: expected \"%s\"", key,
			    i + 2, names[i]);
			return -1;
		}
	memset(&k, 0, sizeof(k));
	if (tlsrpt_day_parse(v[0], &day) < 0 || type_parse(v[2], &k.type) < 0 ||
	    parse_count(v[7], &count) < 0 || count == 0) {
		seterr(err, errlen, "%s: a bad day, type or count", key);
		return -1;
	}
	if ((pf = open_memstream(&policy, &plen)) == NULL ||
	    (mf = open_memstream(&mx, &mlen)) == NULL)
		goto out;
	/* policy lines, then mx lines: no policy line after an mx line. */
	while (p < end) {
		const char *x;

		if (next_line(&p, end, line, sizeof(line)) < 0) {
			seterr(err, errlen, "%s: a line without LF", key);
			goto out;
		}
		if ((x = field(line, "policy")) != NULL && mlen == 0 &&
		    x[0] != '\0')
			fprintf(pf, "%s\n", x);
		else if ((x = field(line, "mx")) != NULL && x[0] != '\0')
			fprintf(mf, "%s\n", x);
		else {
			seterr(err, errlen, "%s: unexpected line \"%.40s\"", key,
			    line);
			goto out;
		}
		fflush(mf);
	}
	if (fclose(pf) != 0 || fclose(mf) != 0) {
		pf = mf = NULL;
		goto out;
	}
	pf = mf = NULL;
	k.domain = v[1];
	k.policy = policy;
	k.mx = mx;
	k.result = strcmp(v[3], "success") == 0 ? NULL : v[3];
	k.sending_ip = v[4];
	k.mx_host = v[5];
	k.receiving_ip = v[6];
	if (k.result == NULL && (v[4][0] || v[5][0] || v[6][0])) {
		seterr(err, errlen, "%s: a success with addresses", key);
		goto out;
	}
	if (!key_ok(&k)) {
		seterr(err, errlen, "%s: a field is empty, too long or not "
		    "printable", key);
		goto out;
	}
	{
		struct tlsrpt_entry probe;

		memset(&probe, 0, sizeof(probe));
		probe.day = day;
		probe.hash = key_hash(day, &k);
		tlsrpt_entry_key(&probe, want, sizeof(want));
	}
	if (strcmp(key, want) != 0) {
		seterr(err, errlen, "%s: the record's content is of %s", key,
		    want);
		goto out;
	}
	r = tlsrpt_store_add(s, day, &k, count, &e);
	if (r == 0) {
		e->count = count;
		e->dirty = 0;
	} else if (r < 0)
		seterr(err, errlen, "%s: out of memory", key);
out:
	if (pf != NULL)
		fclose(pf);
	if (mf != NULL)
		fclose(mf);
	free(policy);
	free(mx);
	return r;
}

/* ---- the report ---- */

/* Bytes of a UTF-8 sequence starting at s, or 0 when it is not one. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned c = s[0], min;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		min = 0x10000;
	} else
		return 0;
	c &= 0x3f >> (n - 1);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

void
tlsrpt_json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	fputc('"', f);
	while (*p != '\0') {
		if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p++, f);
		} else if (*p < 0x20) {
			fprintf(f, "\\u%04x", *p++);
		} else if ((n = utf8_len(p)) == 0) {
			fputs("\\ufffd", f);
			p++;
		} else {
			fwrite(p, 1, n, f);
			p += n;
		}
	}
	fputc('"', f);
}

/* A JSON array of the LF-ended lines of text. */
static void
json_lines(FILE *f, const char *text)
{
	const char *nl;
	char line[TLSRPT_POLICY_MAX + 1];
	int first = 1;

	fputc('[', f);
	for (; *text != '\0'; text = nl + 1) {
		nl = strchr(text, '\n');
		snprintf(line, sizeof(line), "%.*s", (int)(nl - text), text);
		if (!first)
			fputc(',', f);
		first = 0;
		tlsrpt_json_string(f, line);
	}
	fputc(']', f);
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct tlsrpt_entry *x = *(const struct tlsrpt_entry *const *)a;
	const struct tlsrpt_entry *y = *(const struct tlsrpt_entry *const *)b;
	int c;

	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	if ((c = strcmp(x->policy, y->policy)) != 0 ||
	    (c = strcmp(x->mx, y->mx)) != 0)
		return c;
	if ((x->result == NULL) != (y->result == NULL))
		return x->result == NULL ? -1 : 1;
	if (x->result == NULL)
		return 0;
	if ((c = strcmp(x->result, y->result)) != 0 ||
	    (c = strcmp(x->mx_host, y->mx_host)) != 0 ||
	    (c = strcmp(x->receiving_ip, y->receiving_ip)) != 0)
		return c;
	return strcmp(x->sending_ip, y->sending_ip);
}

static int
same_policy(const struct tlsrpt_entry *x, const struct tlsrpt_entry *y)
{
	return x->type == y->type && strcmp(x->policy, y->policy) == 0 &&
	    strcmp(x->mx, y->mx) == 0;
}

/* One element of "policies": entries v[0..n) share their policy. */
static void
json_policy(FILE *f, struct tlsrpt_entry **v, size_t n)
{
	unsigned long ok = 0, failed = 0;
	size_t i;
	int first = 1;

	for (i = 0; i < n; i++) {
		if (v[i]->result == NULL)
			ok += v[i]->count;
		else
			failed += v[i]->count;
	}
	fputs("{\"policy\":{\"policy-type\":", f);
	tlsrpt_json_string(f, tlsrpt_policy_type_name(v[0]->type));
	if (v[0]->policy[0] != '\0') {
		fputs(",\"policy-string\":", f);
		json_lines(f, v[0]->policy);
	}
	fputs(",\"policy-domain\":", f);
	tlsrpt_json_string(f, v[0]->domain);
	if (v[0]->mx[0] != '\0') {
		fputs(",\"mx-host\":", f);
		json_lines(f, v[0]->mx);
	}
	fprintf(f, "},\"summary\":{\"total-successful-session-count\":%lu,"
	    "\"total-failure-session-count\":%lu}", ok, failed);
	for (i = 0; i < n; i++) {
		if (v[i]->result == NULL)
			continue;
		fputs(first ? ",\"failure-details\":[{" : ",{", f);
		first = 0;
		fputs("\"result-type\":", f);
		tlsrpt_json_string(f, v[i]->result);
		if (v[i]->sending_ip[0] != '\0') {
			fputs(",\"sending-mta-ip\":", f);
			tlsrpt_json_string(f, v[i]->sending_ip);
		}
		if (v[i]->mx_host[0] != '\0') {
			fputs(",\"receiving-mx-hostname\":", f);
			tlsrpt_json_string(f, v[i]->mx_host);
		}
		if (v[i]->receiving_ip[0] != '\0') {
			fputs(",\"receiving-ip\":", f);
			tlsrpt_json_string(f, v[i]->receiving_ip);
		}
		fprintf(f, ",\"failed-session-count\":%lu}", v[i]->count);
	}
	if (!first)
		fputc(']', f);
	fputc('}', f);
}

char *
tlsrpt_report_json(struct tlsrpt_store *s, long day, const char *domain,
    const struct tlsrpt_report_info *ri, size_t *len)
{
	struct tlsrpt_day *d = tlsrpt_store_day(s, day);
	struct tlsrpt_entry *e, **v;
	char *buf = NULL, date[16], id[TLSRPT_FIELD_MAX * 2 + 64];
	size_t n = 0, i, j;
	FILE *f;

	if (d == NULL || (v = calloc(d->nentries + 1, sizeof(*v))) == NULL)
		return NULL;
	for (e = d->first; e != NULL; e = e->dnext)
		if (strcmp(e->domain, domain) == 0)
			v[n++] = e;
	if (n == 0 || (f = open_memstream(&buf, len)) == NULL) {
		free(v);
		return NULL;
	}
	qsort(v, n, sizeof(*v), cmp_entry);
	tlsrpt_day_text(day, date, sizeof(date));
	fputs("{\"organization-name\":", f);
	tlsrpt_json_string(f, ri->organization ? ri->organization : "");
	fprintf(f, ",\"date-range\":{\"start-datetime\":\"%sT00:00:00Z\","
	    "\"end-datetime\":\"%sT23:59:59Z\"},\"contact-info\":", date, date);
	tlsrpt_json_string(f, ri->contact ? ri->contact : "");
	snprintf(id, sizeof(id), "%sT00:00:00Z+%s@%s", date, domain,
	    ri->submitter ? ri->submitter : "");
	fputs(",\"report-id\":", f);
	tlsrpt_json_string(f, id);
	fputs(",\"policies\":[", f);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && same_policy(v[i], v[j]); j++)
			;
		if (i > 0)
			fputc(',', f);
		json_policy(f, v + i, j - i);
	}
	fputs("]}", f);
	free(v);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- the reports sent ---- */

#define SENT_MAGIC "mxtls-tlsrpt-sent 1"

uint64_t
tlsrpt_sent_hash(long day, const char *domain, const char *rua)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	h = fnv(h, &day, sizeof(day));
	h = fnv(h, domain, strlen(domain) + 1); /* the NUL separates */
	return fnv(h, rua, strlen(rua) + 1);
}

void
tlsrpt_sent_key(long day, const char *domain, const char *rua, char *dst,
    size_t len)
{
	char d[16];

	tlsrpt_day_text(day, d, sizeof(d));
	snprintf(dst, len, "s-%s-%016llx", d,
	    (unsigned long long)tlsrpt_sent_hash(day, domain, rua));
}

char *
tlsrpt_sent_format(long day, const char *domain, const char *rua,
    size_t *len)
{
	char *buf = NULL, d[16];
	FILE *f;

	if ((f = open_memstream(&buf, len)) == NULL)
		return NULL;
	tlsrpt_day_text(day, d, sizeof(d));
	fprintf(f, SENT_MAGIC "\nday %s\ndomain %s\nrua %s\n", d, domain, rua);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int
tlsrpt_sent_load(const char *key, const char *value, size_t len, long *day,
    uint64_t *hash, char *err, size_t errlen)
{
	const char *p = value, *end = value + len, *v[3];
	static const char *const names[] = { "day", "domain", "rua" };
	char lines[3][TLSRPT_URI_MAX + 16], want[TLSRPT_KEY_LEN];
	int i;

	if (next_line(&p, end, lines[0], sizeof(lines[0])) < 0 ||
	    strcmp(lines[0], SENT_MAGIC) != 0) {
		seterr(err, errlen, "%s: not a record of %s", key, SENT_MAGIC);
		return -1;
	}
	for (i = 0; i < 3; i++)
		if (next_line(&p, end, lines[i], sizeof(lines[i])) < 0 ||
		    (v[i] = field(lines[i], names[i])) == NULL ||
		    !field_ok(v[i], TLSRPT_URI_MAX, 0)) {
			seterr(err, errlen, "%s: line %d: expected \"%s\"", key,
			    i + 2, names[i]);
			return -1;
		}
	if (p != end || tlsrpt_day_parse(v[0], day) < 0) {
		seterr(err, errlen, "%s: trailing bytes or a bad day", key);
		return -1;
	}
	tlsrpt_sent_key(*day, v[1], v[2], want, sizeof(want));
	if (strcmp(key, want) != 0) {
		seterr(err, errlen, "%s: the record is of %s", key, want);
		return -1;
	}
	*hash = tlsrpt_sent_hash(*day, v[1], v[2]);
	return 0;
}
