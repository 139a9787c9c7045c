/*
 * Retry records: a chained hash table keyed by (host, address, port,
 * policy fingerprint; state.h says why), persisted
 * as a whole by atomic replace after every change.
 *
 * The writes are synchronous, on the event loop.  SPEC.md section 8 asks
 * that disk writes of state be bounded: they are.  A record is written
 * only when a host's TLS state changes (a first failure, a failed retry, a
 * recovery, an expiry), never for a delivery that changes nothing; the
 * file holds only hosts that currently fail (typically a handful of lines,
 * at most STATE_MAX_RECORDS lines of at most 1135 bytes); and the cost is one
 * small write plus two fsyncs.  Should it ever show up in latency, the
 * place to batch is state_write(): mark the store dirty and flush from a
 * timer, at the price of losing the last few seconds on a crash.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "state.h"

#define STATE_MAGIC "mxtls-retry-state"
#define STATE_VERSION "2"
#define STATE_LINE_MAX 2048 /* the longest valid line: 1240 bytes */
#define STATE_TIME_MAX ((time_t)253402300799) /* 9999-12-31T23:59:59Z */
#define STATE_BUCKETS_MIN 64

struct entry {
	struct entry *next; /* hash chain */
	char host[STATE_HOST_MAX + 1];
	char addr[STATE_ADDR_MAX + 1];
	int port;
	char profile[POLICY_NAME_MAX];
	char policy[STATE_POLICY_MAX + 1];
	struct retry_record rec;
};

/* A key in the form the table holds it: lower-cased, checked. */
struct nkey {
	char host[STATE_HOST_MAX + 1];
	char addr[STATE_ADDR_MAX + 1];
	int port;
	char profile[POLICY_NAME_MAX];
	char policy[STATE_POLICY_MAX + 1];
};

struct state {
	char *dir;  /* NULL: memory only */
	char *path; /* dir/retry-state */
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	int n;
	int count[RETRY_BROKEN + 1];
};

/* Host names and addresses: printable ASCII, no spaces, bounded. */
static int
state_name_ok(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= max || s[i] <= ' ' || s[i] > '~')
			return 0;
	return 1;
}

/* Lower-case copy of a key part; -1 when it is not a valid one. */
static int
state_key(char *dst, const char *src, size_t max, int empty_ok)
{
	size_t i;

	if (src == NULL || (!empty_ok && src[0] == '\0') ||
	    !state_name_ok(src, max))
		return -1;
	for (i = 0; src[i] != '\0'; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
	return 0;
}

/* A policy fingerprint: lower-case hex, or "*" for a version 1 record. */
static int
state_policy_ok(const char *s)
{
	size_t i;

	if (strcmp(s, STATE_POLICY_ANY) == 0)
		return 1;
	for (i = 0; s[i] != '\0'; i++)
		if (i >= STATE_POLICY_MAX || !isxdigit((unsigned char)s[i]) ||
		    isupper((unsigned char)s[i]))
			return 0;
	return i > 0;
}

/* Check and normalise a key: NULL, or what is wrong with it. */
static const char *
state_nkey(struct nkey *n, const char *host, const char *addr, int port,
    const char *profile, const char *policy)
{
	if (state_key(n->host, host, STATE_HOST_MAX, 1) == -1 ||
	    strcmp(n->host, "-") == 0)
		return "bad host name";
	if (state_key(n->addr, addr, STATE_ADDR_MAX, 0) == -1)
		return "bad address";
	if (port < 1 || port > 65535)
		return "bad port";
	n->port = port;
	if (profile == NULL || !state_name_ok(profile, POLICY_NAME_MAX - 1))
		return "bad profile name";
	snprintf(n->profile, sizeof(n->profile), "%s", profile);
	if (policy == NULL || !state_policy_ok(policy))
		return "bad policy fingerprint";
	snprintf(n->policy, sizeof(n->policy), "%s", policy);
	return NULL;
}

/* What the file can hold; shared by state_put() and the loader. */
static int
state_record_ok(const struct retry_record *r)
{
	if (r->state != RETRY_FAILED_ONCE && r->state != RETRY_BROKEN)
		return 0;
	if (r->event != FAILURE_NO_STARTTLS && r->event != FAILURE_CERTIFICATE &&
	    r->event != FAILURE_HANDSHAKE)
		return 0;
	if (r->first_failure < 0 || r->first_failure > STATE_TIME_MAX ||
	    r->broken_until < 0 || r->broken_until > STATE_TIME_MAX)
		return 0;
	return memchr(r->error, '\0', sizeof(r->error)) != NULL;
}

static int
state_record_same(const struct retry_record *a, const struct retry_record *b)
{
	return a->state == b->state && a->first_failure == b->first_failure &&
	    a->broken_until == b->broken_until && a->event == b->event &&
	    strcmp(a->error, b->error) == 0;
}

static uint64_t
state_fnv(uint64_t h, const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h * 1099511628211ULL; /* for the NUL between parts */
}

/* FNV-1a over host, addr, port and policy (the profile's name is in the
 * policy fingerprint). */
static size_t
state_hash(const char *host, const char *addr, int port, const char *policy)
{
	uint64_t h = 14695981039346656037ULL;

	h = state_fnv(h, host);
	h = state_fnv(h, addr);
	h = (h ^ (uint64_t)port) * 1099511628211ULL;
	h = state_fnv(h, policy);
	return (size_t)(h ^ (h >> 32));
}

/* The link pointing at the entry for a (normalised) key, or at the NULL
 * ending its chain. */
static struct entry **
state_find(struct state *st, const struct nkey *k)
{
	struct entry **pp;

	pp = &st->buckets[state_hash(k->host, k->addr, k->port, k->policy) &
	    (st->nbuckets - 1)];
	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->port == k->port && strcmp((*pp)->host, k->host) ==
		    0 && strcmp((*pp)->addr, k->addr) == 0 &&
		    strcmp((*pp)->policy, k->policy) == 0)
			break;
	return pp;
}

/* Double the table when it gets full; without memory keep the chains. */
static void
state_grow(struct state *st)
{
	struct entry **nb, *e, *next;
	size_t i, n = st->nbuckets * 2;

	if ((size_t)st->n < st->nbuckets)
		return;
	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < st->nbuckets; i++)
		for (e = st->buckets[i]; e != NULL; e = next) {
			size_t b = state_hash(e->host, e->addr, e->port,
			    e->policy) & (n - 1);

			next = e->next;
			e->next = nb[b];
			nb[b] = e;
		}
	free(st->buckets);
	st->buckets = nb;
	st->nbuckets = n;
}

static void
state_unlink(struct state *st, struct entry **pp)
{
	struct entry *e = *pp;

	*pp = e->next;
	st->count[e->rec.state]--;
	st->n--;
	free(e);
}

/* Make room: drop the record with the oldest first failure. */
static void
state_evict(struct state *st)
{
	struct entry **oldest = NULL, **pp;
	size_t i;

	for (i = 0; i < st->nbuckets; i++)
		for (pp = &st->buckets[i]; *pp != NULL; pp = &(*pp)->next)
			if (oldest == NULL || (*pp)->rec.first_failure <
			    (*oldest)->rec.first_failure)
				oldest = pp;
	if (oldest != NULL)
		state_unlink(st, oldest);
}

/* Insert a key that is not there yet, evicting the oldest record when
 * full.  Links into the table are stale afterwards.  -1: no memory. */
static int
state_insert(struct state *st, const struct nkey *k,
    const struct retry_record *r)
{
	struct entry *e;
	size_t b;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	snprintf(e->host, sizeof(e->host), "%s", k->host);
	snprintf(e->addr, sizeof(e->addr), "%s", k->addr);
	e->port = k->port;
	snprintf(e->profile, sizeof(e->profile), "%s", k->profile);
	snprintf(e->policy, sizeof(e->policy), "%s", k->policy);
	e->rec = *r;
	if (st->n >= STATE_MAX_RECORDS)
		state_evict(st);
	state_grow(st);
	b = state_hash(k->host, k->addr, k->port, k->policy) &
	    (st->nbuckets - 1);
	e->next = st->buckets[b];
	st->buckets[b] = e;
	st->count[r->state]++;
	st->n++;
	return 0;
}

static void
state_clear(struct state *st)
{
	size_t i;

	for (i = 0; i < st->nbuckets; i++)
		while (st->buckets[i] != NULL)
			state_unlink(st, &st->buckets[i]);
}

/* ---- the file ---- */

static int
state_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void
state_put_error(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (*p == '\0') {
		fputc('-', f);
		return;
	}
	if (strcmp(s, "-") == 0) {
		fputs("%2D", f);
		return;
	}
	for (; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '%')
			fprintf(f, "%%%02X", *p);
		else
			fputc(*p, f);
}

/* Decode an ERROR field into dst[RETRY_ERROR_MAX]; NULL or why not. */
static const char *
state_get_error(char *dst, const char *s)
{
	size_t n = 0;
	int hi, lo;

	if (strcmp(s, "-") == 0) {
		dst[0] = '\0';
		return NULL;
	}
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (n >= RETRY_ERROR_MAX - 1)
			return "error too long";
		if (c == '%') {
			if ((hi = state_hexval(s[1])) < 0 ||
			    (lo = state_hexval(s[2])) < 0)
				return "bad escape in error";
			c = (unsigned char)(hi << 4 | lo);
			if (c == '\0')
				return "bad escape in error";
			s += 2;
		} else if (c <= ' ' || c >= 0x7f)
			return "bad byte in error";
		dst[n++] = (char)c;
	}
	dst[n] = '\0';
	return NULL;
}

/* Seconds since the epoch: digits only, within STATE_TIME_MAX. */
static int
state_get_time(const char *s, time_t *out)
{
	long long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > (long long)STATE_TIME_MAX)
			return -1;
	}
	*out = (time_t)v;
	return 0;
}

/* A port field: 1-65535, digits only. */
static int
state_get_port(const char *s, int *out)
{
	int v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) > 65535)
			return -1;
	}
	*out = v;
	return v > 0 ? 0 : -1;
}

/*
 * Parse one record line (modified in place) of a file of `version` (1 or
 * 2).  NULL or why not.
 */
static const char *
state_parse(char *line, int version, struct nkey *k, struct retry_record *r)
{
	char *f[10], *p = line;
	const char *why;
	int i, v, n = version == 1 ? 7 : 10, port = 25;

	for (i = 0; i < n; i++) {
		f[i] = p;
		if (i < n - 1) {
			if ((p = strchr(p, ' ')) == NULL)
				return "too few fields";
			*p++ = '\0';
		} else if (strchr(p, ' ') != NULL)
			return "too many fields";
		if (*f[i] == '\0')
			return "empty field";
	}
	if (version == 1) {
		why = state_nkey(k, strcmp(f[0], "-") == 0 ? "" : f[0], f[1],
		    25, "-", STATE_POLICY_ANY);
	} else {
		if (state_get_port(f[2], &port) == -1)
			return "bad port";
		why = state_nkey(k, strcmp(f[0], "-") == 0 ? "" : f[0], f[1],
		    port, f[3], f[4]);
		memmove(f + 2, f + 5, 5 * sizeof(*f));
	}
	if (why != NULL)
		return why;
	memset(r, 0, sizeof(*r));
	if (strcmp(f[2], retry_state_name(RETRY_FAILED_ONCE)) == 0)
		r->state = RETRY_FAILED_ONCE;
	else if (strcmp(f[2], retry_state_name(RETRY_BROKEN)) == 0)
		r->state = RETRY_BROKEN;
	else
		return "bad state";
	if (state_get_time(f[3], &r->first_failure) == -1)
		return "bad first_failure";
	if (state_get_time(f[4], &r->broken_until) == -1)
		return "bad broken_until";
	for (v = FAILURE_NO_STARTTLS; v <= FAILURE_HANDSHAKE; v++)
		if (strcmp(f[5], failure_event_name(v)) == 0)
			break;
	if (v > FAILURE_HANDSHAKE)
		return "bad event";
	r->event = v;
	return state_get_error(r->error, f[6]);
}

/* One line without its '\n' into buf.  1: a line; 0: end of file;
 * -1: *why set (NULL: a read error, see errno). */
static int
state_read_line(FILE *f, char *buf, size_t size, const char **why)
{
	size_t len = 0;
	int c;

	while ((c = getc(f)) != EOF) {
		if (c == '\n') {
			buf[len] = '\0';
			return 1;
		}
		if (c == '\0') {
			*why = "NUL byte";
			return -1;
		}
		if (len + 1 >= size) {
			*why = "line too long";
			return -1;
		}
		buf[len++] = (char)c;
	}
	if (ferror(f)) {
		*why = NULL;
		return -1;
	}
	if (len > 0) {
		*why = "truncated line";
		return -1;
	}
	return 0;
}

static const char state_nomem[] = "out of memory";

/* One record line into the store: NULL, or why not (state_nomem). */
static const char *
state_load_line(struct state *st, char *line, int version)
{
	struct nkey k;
	struct retry_record r;
	const char *why;

	if ((why = state_parse(line, version, &k, &r)) != NULL)
		return why;
	if (!state_record_ok(&r))
		return "bad record";
	if (*state_find(st, &k) != NULL)
		return "duplicate record";
	if (st->n >= STATE_MAX_RECORDS)
		return "too many records";
	if (state_insert(st, &k, &r) == -1)
		return state_nomem;
	return NULL;
}

/* Read the file into the (empty) store.  0; 1 with warning set (the store
 * is left empty); -1 out of memory. */
static int
state_load(struct state *st, FILE *f, char *warning, size_t warnlen)
{
	const char *why = NULL;
	char *line;
	int lineno = 1, rc, saved, version = 0;

	if ((line = malloc(STATE_LINE_MAX)) == NULL)
		return -1;
	rc = state_read_line(f, line, STATE_LINE_MAX, &why);
	if (rc == 0)
		why = "empty file";
	else if (rc == 1 && strcmp(line, STATE_MAGIC " " STATE_VERSION) == 0)
		version = 2;
	else if (rc == 1 && strcmp(line, STATE_MAGIC " 1") == 0)
		version = 1;
	else if (rc == 1)
		why = strncmp(line, STATE_MAGIC " ", strlen(STATE_MAGIC) + 1) ==
		    0 ? "unsupported version" : "not a retry-state file";
	while (rc == 1 && why == NULL) {
		lineno++;
		if ((rc = state_read_line(f, line, STATE_LINE_MAX, &why)) == 1)
			why = state_load_line(st, line, version);
	}
	saved = errno;
	free(line);
	if (why == state_nomem)
		return -1;
	if (rc == 0 && why == NULL)
		return 0;
	state_clear(st);
	if (why == NULL)
		snprintf(warning, warnlen, "%s: read: %s", st->path,
		    strerror(saved));
	else
		snprintf(warning, warnlen, "%s line %d: %s", st->path, lineno,
		    why);
	return 1;
}

static void
state_seterr(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
}

/* Replace the file with the store, atomically (file_replace). */
static int
state_write(struct state *st, char *err, size_t errlen)
{
	struct entry *e;
	char *text = NULL;
	size_t len = 0, i;
	FILE *f;
	int r;

	if (st->dir == NULL)
		return 0;
	if ((f = open_memstream(&text, &len)) == NULL) {
		state_seterr(err, errlen, "write", st->path);
		return -1;
	}
	fputs(STATE_MAGIC " " STATE_VERSION "\n", f);
	for (i = 0; i < st->nbuckets; i++)
		for (e = st->buckets[i]; e != NULL; e = e->next) {
			fprintf(f, "%s %s %d %s %s %s %lld %lld %s ",
			    e->host[0] != '\0' ? e->host : "-", e->addr,
			    e->port, e->profile, e->policy,
			    retry_state_name(e->rec.state),
			    (long long)e->rec.first_failure,
			    (long long)e->rec.broken_until,
			    failure_event_name(e->rec.event));
			state_put_error(f, e->rec.error);
			fputc('\n', f);
		}
	if (fclose(f) == EOF) {
		state_seterr(err, errlen, "write", st->path);
		free(text);
		return -1;
	}
	r = file_replace(st->path, text, len, err, errlen);
	free(text);
	return r;
}

/* ---- the interface ---- */

struct state *
state_open(const char *dir, char *warning, size_t warnlen)
{
	struct state *st;
	FILE *f;
	int rc;

	if (warnlen > 0)
		warning[0] = '\0';
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->nbuckets = STATE_BUCKETS_MIN;
	if ((st->buckets = calloc(st->nbuckets, sizeof(*st->buckets))) == NULL)
		goto nomem;
	if (dir == NULL)
		return st;
	if ((st->dir = strdup(dir)) == NULL)
		goto nomem;
	if (asprintf(&st->path, "%s/%s", dir, STATE_FILE) == -1) {
		st->path = NULL; /* undefined after a failure */
		goto nomem;
	}
	if ((f = fopen(st->path, "re")) == NULL) {
		if (errno != ENOENT)
			snprintf(warning, warnlen, "%s: %s", st->path,
			    strerror(errno));
		return st;
	}
	rc = state_load(st, f, warning, warnlen);
	fclose(f);
	if (rc == -1)
		goto nomem;
	return st;
nomem:
	state_free(st);
	return NULL;
}

void
state_free(struct state *st)
{
	if (st == NULL)
		return;
	if (st->buckets != NULL)
		state_clear(st);
	free(st->buckets);
	free(st->dir);
	free(st->path);
	free(st);
}

/* The version 1 record of k's host, address and port. */
static struct entry **
state_find_any(struct state *st, const struct nkey *k)
{
	struct nkey any = *k;

	snprintf(any.policy, sizeof(any.policy), "%s", STATE_POLICY_ANY);
	return state_find(st, &any);
}

const struct retry_record *
state_get(struct state *st, const struct state_key *k)
{
	struct nkey n;
	struct entry *e;

	if (state_nkey(&n, k->host, k->addr, k->port, k->profile,
	    k->policy) != NULL)
		return NULL;
	if ((e = *state_find(st, &n)) == NULL)
		e = *state_find_any(st, &n);
	return e != NULL ? &e->rec : NULL;
}

int
state_put(struct state *st, const struct state_key *k,
    const struct retry_record *r, char *err, size_t errlen)
{
	struct nkey n;
	struct entry **pp;
	const char *why;
	int changed = 0;

	if ((why = state_nkey(&n, k->host, k->addr, k->port, k->profile,
	    k->policy)) != NULL) {
		snprintf(err, errlen, "retry record: %s", why);
		return -1;
	}
	/* A verdict under a known policy replaces one whose policy was not. */
	if (strcmp(n.policy, STATE_POLICY_ANY) != 0 &&
	    *(pp = state_find_any(st, &n)) != NULL) {
		state_unlink(st, pp);
		changed = 1;
	}
	pp = state_find(st, &n);
	if (r->state == RETRY_NONE) {
		if (*pp != NULL) {
			state_unlink(st, pp);
			changed = 1;
		}
		return changed ? state_write(st, err, errlen) : 0;
	}
	if (!state_record_ok(r)) {
		snprintf(err, errlen, "retry record for %s %s port %d: invalid",
		    n.host, n.addr, n.port);
		return -1;
	}
	if (*pp != NULL) {
		if (state_record_same(&(*pp)->rec, r) && !changed)
			return 0;
		st->count[(*pp)->rec.state]--;
		st->count[r->state]++;
		(*pp)->rec = *r;
	} else if (state_insert(st, &n, r) == -1) {
		snprintf(err, errlen,
		    "retry record for %s %s port %d: out of memory", n.host,
		    n.addr, n.port);
		return -1;
	}
	return state_write(st, err, errlen);
}

int
state_expire(struct state *st, time_t now, const struct failure_timing *t,
    char *err, size_t errlen)
{
	struct entry **pp;
	size_t i;
	int changed = 0;

	for (i = 0; i < st->nbuckets; i++)
		for (pp = &st->buckets[i]; *pp != NULL;)
			if (failure_expired(&(*pp)->rec, now, t)) {
				state_unlink(st, pp);
				changed = 1;
			} else
				pp = &(*pp)->next;
	return changed ? state_write(st, err, errlen) : 0;
}

static int
state_cmp(const void *a, const void *b)
{
	const struct entry *x = *(const struct entry *const *)a;
	const struct entry *y = *(const struct entry *const *)b;
	int c = strcmp(x->host, y->host);

	if (c == 0)
		c = strcmp(x->addr, y->addr);
	if (c == 0)
		c = x->port - y->port;
	if (c == 0)
		c = strcmp(x->profile, y->profile);
	return c != 0 ? c : strcmp(x->policy, y->policy);
}

static void
state_print_time(FILE *out, const char *key, time_t t)
{
	struct tm tm;
	char buf[32];

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, sizeof(buf), "@%lld", (long long)t);
	fprintf(out, " %s=%s", key, buf);
}

static void
state_print_quoted(FILE *out, const char *s)
{
	const unsigned char *p;

	fputc('"', out);
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < ' ' || *p >= 0x7f)
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
	fputc('"', out);
}

static void
state_print_one(FILE *out, const struct entry *e, time_t now,
    const struct failure_timing *t)
{
	const struct retry_record *r = &e->rec;

	fprintf(out, "%s %s %s port=%d profile=%s policy=%.8s",
	    e->host[0] != '\0' ? e->host : "-", e->addr,
	    retry_state_name(r->state), e->port, e->profile, e->policy);
	state_print_time(out, "since", r->first_failure);
	if (r->state == RETRY_BROKEN)
		state_print_time(out, "until", r->broken_until);
	else
		state_print_time(out, "retry_after",
		    r->first_failure + t->retry_delay);
	fprintf(out, " event=%s error=", failure_event_name(r->event));
	state_print_quoted(out, r->error);
	fputs(failure_expired(r, now, t) ? " expired\n" : "\n", out);
}

void
state_print(struct state *st, FILE *out, time_t now,
    const struct failure_timing *t)
{
	struct entry **v, *e;
	size_t i, n = 0;

	if ((v = malloc(((size_t)st->n + 1) * sizeof(*v))) == NULL) {
		/* Without memory to sort: in table order. */
		for (i = 0; i < st->nbuckets; i++)
			for (e = st->buckets[i]; e != NULL; e = e->next)
				state_print_one(out, e, now, t);
		return;
	}
	for (i = 0; i < st->nbuckets; i++)
		for (e = st->buckets[i]; e != NULL; e = e->next)
			v[n++] = e;
	qsort(v, n, sizeof(*v), state_cmp);
	for (i = 0; i < n; i++)
		state_print_one(out, v[i], now, t);
	free(v);
}

int
state_count(struct state *st, enum retry_state s)
{
	if (s != RETRY_FAILED_ONCE && s != RETRY_BROKEN)
		return 0;
	return st->count[s];
}

int
state_total(struct state *st)
{
	return st->n;
}
