/*
 * Process-wide metrics, written in the Prometheus text exposition format
 * (version 0.0.4).
 *
 * Every family is declared once in the table below: name, type, help and,
 * for histograms, the bucket bounds.  Updates name the family by string
 * (a linear search over a short table: cheaper than the syscalls around
 * any event that counts) and a label set as ready-made exposition text.
 * An update to an unknown family, or of the wrong kind (metrics_inc on a
 * gauge...), is ignored: metrics must never take the mail path down.  The
 * unit tests of the callers see such mistakes through metrics_value().
 *
 * Storage per family: an open-addressing hash table of label sets, each
 * label string copied once when first seen.  At most METRICS_SERIES_MAX
 * label sets per family; a new one beyond that, and a label string that
 * is not valid exposition text or is longer than METRICS_LABELS_MAX
 * bytes, is folded into the label set
 * overflow="1", so neither a hostile peer (cipher names, profile names)
 * nor a caller's bug can grow memory or break the scrape.
 *
 * Single-threaded by design: only the event loop updates or writes.
 */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

#define METRICS_SERIES_MAX 256
/* Longer label text folds too: it bounds memory and the scrape's size. */
#define METRICS_LABELS_MAX 512
/* Slots per table: a power of two, at least twice the entries. */
#define METRICS_SLOTS 1024
#define OVERFLOW_LABELS "overflow=\"1\""

enum mtype { M_COUNTER, M_GAUGE, M_HISTOGRAM };

static const char *const mtype_names[] = {
	[M_COUNTER] = "counter",
	[M_GAUGE] = "gauge",
	[M_HISTOGRAM] = "histogram",
};

/* A TLS handshake: fast on a LAN, seconds for a far or loaded MX; 60 s is
 * the default tls_timeout. */
static const double handshake_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
/* A TCP connect: a millisecond nearby, up to connect_timeout (30 s). */
static const double connect_bounds[] = { 0.001, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

#define NB(a) (int)(sizeof(a) / sizeof((a)[0]))

struct family_def {
	const char *name;
	enum mtype type;
	const char *help;
	const double *bounds; /* histograms: ascending, +Inf implied */
	int nbounds;
	/* Used without labels: its one series is written as 0 until the
	 * first update, so a fresh start scrapes "mxtls_sessions_total 0"
	 * rather than nothing (rate() and alerts need the zero). */
	int unlabelled;
};

/*
 * Labels each family is used with (by convention of the callers, in this
 * order, so that one series has one spelling):
 *   sessions_refused_total     reason: not_allowed, max_sessions, per_client
 *   deliveries_total           outcome (tls, plaintext, fallback, deferred,
 *                              failed), profile
 *   tls_handshakes_total       version, cipher
 *   tls_failures_total         result: RFC 8460 result types
 *   dane_total                 result: ok or an RFC 8460 result type
 *   retry_records              state: failed-once, broken
 *   bytes_relayed_total        direction: upstream, downstream
 *   policy_fetches_total       source, outcome
 *   policy_age_seconds         source
 *   config_reloads_total       outcome
 *   upstream_cached            -
 *   upstream_reuses_total      outcome: reused, stale
 *   mta_sts_evictions_total    mode: no-policy, none, testing, enforce
 *   mta_sts_cache_bytes        -
 *   dsn_total                  outcome: submitted, retry, failed, lost
 *   dsn_queued                 -
 *   build_info                 version
 */
static const struct family_def defs[] = {
	{ "mxtls_sessions_current", M_GAUGE,
	    "Client sessions open now.", NULL, 0, 1 },
	{ "mxtls_sessions_total", M_COUNTER,
	    "Client sessions accepted.", NULL, 0, 1 },
	{ "mxtls_sessions_refused_total", M_COUNTER,
	    "Client connections refused, by reason.", NULL, 0, 0 },
	{ "mxtls_deliveries_total", M_COUNTER,
	    "Delivery attempts by outcome and policy profile.", NULL, 0, 0 },
	{ "mxtls_tls_handshakes_total", M_COUNTER,
	    "Completed upstream TLS handshakes by version and cipher.",
	    NULL, 0, 0 },
	{ "mxtls_tls_failures_total", M_COUNTER,
	    "Upstream TLS failures by RFC 8460 result type.", NULL, 0, 0 },
	{ "mxtls_retry_records", M_GAUGE,
	    "Retry records of hosts whose TLS failed, by state.", NULL, 0, 0 },
	{ "mxtls_tls_handshake_seconds", M_HISTOGRAM,
	    "Duration of upstream TLS handshakes.", handshake_bounds,
	    NB(handshake_bounds), 1 },
	{ "mxtls_upstream_connect_seconds", M_HISTOGRAM,
	    "Duration of upstream TCP connects.", connect_bounds,
	    NB(connect_bounds), 1 },
	{ "mxtls_bytes_relayed_total", M_COUNTER,
	    "Bytes relayed, by direction.", NULL, 0, 0 },
	{ "mxtls_policy_fetches_total", M_COUNTER,
	    "Policy fetches by source and outcome.", NULL, 0, 0 },
	{ "mxtls_policy_age_seconds", M_GAUGE,
	    "Age of the policy in use, by source.", NULL, 0, 0 },
	{ "mxtls_config_reloads_total", M_COUNTER,
	    "Configuration reloads by outcome.", NULL, 0, 0 },
	{ "mxtls_upstream_cached", M_GAUGE,
	    "Idle upstream TLS connections waiting for reuse.", NULL, 0, 1 },
	{ "mxtls_upstream_reuses_total", M_COUNTER,
	    "Cached upstream connections taken for a transaction, by "
	    "outcome (reused, or stale: the server had gone).", NULL, 0, 0 },
	{ "mxtls_mta_sts_evictions_total", M_COUNTER,
	    "MTA-STS cache entries forgotten to stay within its bounds, by "
	    "the mode of the policy (no-policy: only the TXT state).", NULL,
	    0, 0 },
	{ "mxtls_mta_sts_cache_bytes", M_GAUGE,
	    "What the MTA-STS cache holds, in bytes of memory (its journal "
	    "on disk holds less).", NULL, 0, 1 },
	{ "mxtls_dsn_total", M_COUNTER,
	    "Relayed-DSN notices by outcome: submitted to the MTA, a try "
	    "that failed and will be repeated, failed (given up) or lost.",
	    NULL, 0, 0 },
	{ "mxtls_dsn_queued", M_GAUGE,
	    "Relayed-DSN notices waiting to be submitted to the MTA.", NULL,
	    0, 1 },
	{ "mxtls_tlsrpt_sessions_total", M_COUNTER,
	    "TLS sessions counted for TLS reports (RFC 8460), by policy "
	    "type (sts, tlsa, no-policy-found) and result (ok or the RFC "
	    "8460 result type).", NULL, 0, 0 },
	{ "mxtls_tlsrpt_overflow_total", M_COUNTER,
	    "Sessions left out of TLS reports: the day's distinct entries "
	    "were at their bound.", NULL, 0, 1 },
	{ "mxtls_tlsrpt_reports_total", M_COUNTER,
	    "TLS reports (RFC 8460) handed to a report URI, by scheme "
	    "(https, mailto) and result: sent, or failed (an attempt, "
	    "retried later).", NULL, 0, 0 },
	{ "mxtls_dane_total", M_COUNTER,
	    "DANE outcomes (RFC 7672) by RFC 8460 result type: ok, "
	    "tlsa-invalid, dnssec-invalid, dane-required, "
	    "validation-failure.", NULL, 0, 0 },
	{ "mxtls_requiretls_total", M_COUNTER,
	    "Attempts at messages with REQUIRETLS (RFC 8689) by outcome: "
	    "tls (delivered), deferred, failed.", NULL, 0, 0 },
	{ "mxtls_tls_required_no_total", M_COUNTER,
	    "Attempts at messages sent on their TLS-Required: No header "
	    "(RFC 8689) after the TLS policy failed, by outcome: tls, "
	    "plaintext, deferred, failed.", NULL, 0, 0 },
	{ "mxtls_build_info", M_GAUGE,
	    "Always 1; the version of mxtls as a label.", NULL, 0, 0 },
};

#define NFAMILIES NB(defs)

struct series {
	char *labels;
	double value; /* counters, gauges; histograms: the sum */
	uint64_t count; /* histograms */
	uint64_t buckets[]; /* histograms: per bucket, not cumulative */
};

struct family {
	struct series **slots; /* METRICS_SLOTS, allocated on first use */
	int n; /* label sets stored, overflow included */
};

static struct family fams[NFAMILIES];

static int
family_index(const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < NFAMILIES; i++)
		if (strcmp(defs[i].name, name) == 0)
			return i;
	return -1;
}

/* FNV-1a: short strings, no adversary who sees the table. */
static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static int
name_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int
name_char(int c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/* Length of the UTF-8 sequence at s, or 0 if it is not valid UTF-8. */
static size_t
utf8_len(const unsigned char *s)
{
	unsigned c = s[0], need, min, cp, i;

	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		need = 1;
		min = 0x80;
		cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		need = 2;
		min = 0x800;
		cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		need = 3;
		min = 0x10000;
		cp = c & 0x07;
	} else
		return 0;
	for (i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

/*
 * Is s a label set as the exposition format writes it inside braces:
 * name="value" pairs separated by commas, names [a-zA-Z_][a-zA-Z0-9_]*
 * not starting with "__" (reserved) nor "le" (histograms own it), values
 * escaped (\\, \", \n) and valid UTF-8, no name twice?
 */
static int
labels_valid(const char *s)
{
	const char *names[16];
	size_t lens[16];
	int n = 0, i;

	if (*s == '\0')
		return 1;
	if (strlen(s) > METRICS_LABELS_MAX)
		return 0;
	for (;;) {
		const char *name = s;
		size_t len;

		if (!name_start((unsigned char)*s))
			return 0;
		while (name_char((unsigned char)*s))
			s++;
		len = (size_t)(s - name);
		if ((len >= 2 && name[0] == '_' && name[1] == '_') ||
		    (len == 2 && memcmp(name, "le", 2) == 0))
			return 0;
		for (i = 0; i < n; i++)
			if (lens[i] == len && memcmp(names[i], name, len) == 0)
				return 0;
		if (n == (int)(sizeof(names) / sizeof(names[0])))
			return 0;
		names[n] = name;
		lens[n++] = len;
		if (*s++ != '=' || *s++ != '"')
			return 0;
		while (*s != '"') {
			size_t u;

			if (*s == '\0' || *s == '\n')
				return 0;
			if (*s == '\\') {
				if (s[1] != '\\' && s[1] != '"' && s[1] != 'n')
					return 0;
				s += 2;
				continue;
			}
			if ((u = utf8_len((const unsigned char *)s)) == 0)
				return 0;
			s += u;
		}
		s++;
		if (*s == '\0')
			return 1;
		if (*s++ != ',')
			return 0;
	}
}

static struct series *
series_new(const struct family_def *d, const char *labels)
{
	size_t nb = d->type == M_HISTOGRAM ? (size_t)d->nbounds : 0;
	struct series *s = calloc(1, sizeof(*s) + nb * sizeof(s->buckets[0]));

	if (s == NULL)
		return NULL;
	if ((s->labels = strdup(labels)) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

/* The slot of labels in f: its series, or the empty slot to put it in. */
static struct series **
slot_of(struct family *f, const char *labels)
{
	uint32_t i = hash(labels) & (METRICS_SLOTS - 1);

	while (f->slots[i] != NULL && strcmp(f->slots[i]->labels, labels) != 0)
		i = (i + 1) & (METRICS_SLOTS - 1);
	return &f->slots[i];
}

/*
 * The series of (family, labels) of the given type, created when new;
 * NULL when the family is unknown or of another type, or when memory
 * is short.
 */
static struct series *
lookup(const char *family, const char *labels, enum mtype type,
    const struct family_def **dp)
{
	int fi = family_index(family);
	struct family *f;
	struct series **slot;

	if (fi < 0 || defs[fi].type != type)
		return NULL;
	if (dp != NULL)
		*dp = &defs[fi];
	f = &fams[fi];
	if (labels == NULL)
		labels = "";
	if (f->slots == NULL &&
	    (f->slots = calloc(METRICS_SLOTS, sizeof(*f->slots))) == NULL)
		return NULL;
	slot = slot_of(f, labels);
	if (*slot != NULL)
		return *slot;
	if (f->n >= METRICS_SERIES_MAX || !labels_valid(labels)) {
		labels = OVERFLOW_LABELS;
		slot = slot_of(f, labels);
		if (*slot != NULL)
			return *slot;
	}
	/* The overflow set may always be added: the table has room. */
	if ((*slot = series_new(&defs[fi], labels)) == NULL)
		return NULL;
	f->n++;
	return *slot;
}

void
metrics_inc(const char *family, const char *labels, double by)
{
	struct series *s;

	/* Counters only go up: a negative or NaN step is a caller's bug. */
	if (!(by >= 0))
		return;
	if ((s = lookup(family, labels, M_COUNTER, NULL)) != NULL)
		s->value += by;
}

void
metrics_set(const char *family, const char *labels, double v)
{
	struct series *s;

	if ((s = lookup(family, labels, M_GAUGE, NULL)) != NULL)
		s->value = v;
}

void
metrics_add(const char *family, const char *labels, double by)
{
	struct series *s;

	if ((s = lookup(family, labels, M_GAUGE, NULL)) != NULL)
		s->value += by;
}

void
metrics_observe(const char *family, const char *labels, double v)
{
	const struct family_def *d;
	struct series *s;
	int i;

	if (isnan(v) || (s = lookup(family, labels, M_HISTOGRAM, &d)) == NULL)
		return;
	/* Bucket i counts bound[i-1] < v <= bound[i] (le: less or equal). */
	for (i = 0; i < d->nbounds; i++)
		if (v <= d->bounds[i]) {
			s->buckets[i]++;
			break;
		}
	s->count++;
	s->value += v;
}

double
metrics_value(const char *family, const char *labels)
{
	int fi = family_index(family);
	struct series **slot;

	if (fi < 0 || fams[fi].slots == NULL)
		return NAN;
	slot = slot_of(&fams[fi], labels != NULL ? labels : "");
	if (*slot == NULL)
		return NAN;
	if (defs[fi].type == M_HISTOGRAM)
		return (double)(*slot)->count;
	return (*slot)->value;
}

/* ---- writing ---- */

/*
 * A float as Go's strconv.ParseFloat (promtool, Prometheus) reads it and
 * as client libraries write it: the shortest of %.15g..%.17g that reads
 * back exactly, so 1 is "1", 0.1 is "0.1"; +Inf, -Inf, NaN by name.
 */
static const char *
fmt_double(char *buf, size_t len, double v)
{
	int prec;

	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	for (prec = 15; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return buf;
	}
	snprintf(buf, len, "%.17g", v);
	return buf;
}

/* HELP text escapes backslash and newline (not the double quote). */
static void
write_help(FILE *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			putc(*s, out);
	}
}

/* name{labels} or name{labels,extra} or name, then the value. */
static void
write_sample(FILE *out, const char *name, const char *suffix,
    const char *labels, const char *extra, const char *value)
{
	int sep = *labels != '\0' && extra != NULL;

	fputs(name, out);
	fputs(suffix, out);
	if (*labels != '\0' || extra != NULL)
		fprintf(out, "{%s%s%s}", labels, sep ? "," : "",
		    extra != NULL ? extra : "");
	fprintf(out, " %s\n", value);
}

static int
series_cmp(const void *a, const void *b)
{
	const struct series *x = *(const struct series *const *)a;
	const struct series *y = *(const struct series *const *)b;

	return strcmp(x->labels, y->labels);
}

static void
write_series(FILE *out, const struct family_def *d, const struct series *s)
{
	char num[64], le[80];
	uint64_t cum = 0;
	int j;

	if (d->type != M_HISTOGRAM) {
		write_sample(out, d->name, "", s->labels, NULL,
		    fmt_double(num, sizeof(num), s->value));
		return;
	}
	for (j = 0; j < d->nbounds; j++) {
		cum += s->buckets[j];
		snprintf(le, sizeof(le), "le=\"%s\"",
		    fmt_double(num, sizeof(num), d->bounds[j]));
		snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
		write_sample(out, d->name, "_bucket", s->labels, le, num);
	}
	snprintf(num, sizeof(num), "%llu", (unsigned long long)s->count);
	write_sample(out, d->name, "_bucket", s->labels, "le=\"+Inf\"", num);
	write_sample(out, d->name, "_sum", s->labels, NULL,
	    fmt_double(num, sizeof(num), s->value));
	snprintf(num, sizeof(num), "%llu", (unsigned long long)s->count);
	write_sample(out, d->name, "_count", s->labels, NULL, num);
}

static void
write_family(FILE *out, const struct family_def *d, struct family *f)
{
	struct series *v[METRICS_SERIES_MAX + 1], *zero;
	int n = 0, i;

	fprintf(out, "# HELP %s ", d->name);
	write_help(out, d->help);
	fprintf(out, "\n# TYPE %s %s\n", d->name, mtype_names[d->type]);
	if (d->unlabelled && (f->slots == NULL || *slot_of(f, "") == NULL)) {
		/* Not stored: a scrape must not change what metrics_value
		 * says (nothing recorded yet). */
		if ((zero = series_new(d, "")) != NULL) {
			write_series(out, d, zero);
			free(zero->labels);
			free(zero);
		}
	}
	if (f->slots == NULL)
		return;
	for (i = 0; i < METRICS_SLOTS && n < (int)(sizeof(v) / sizeof(v[0]));
	    i++)
		if (f->slots[i] != NULL)
			v[n++] = f->slots[i];
	/* Sorted by label text: a scrape reads the same whatever the order
	 * of events. */
	qsort(v, (size_t)n, sizeof(v[0]), series_cmp);
	for (i = 0; i < n; i++)
		write_series(out, d, v[i]);
}

/* ---- the process, read from /proc/self at each scrape ---- */

/*
 * Fields 14, 15 (utime, stime) and 22 (starttime) of /proc/self/stat, in
 * clock ticks.  The second field, the command, may hold spaces and
 * parentheses: the rest starts after its last ')'.
 */
static int
proc_stat(unsigned long long *utime, unsigned long long *stime,
    unsigned long long *start)
{
	char buf[1024], *p;
	size_t n;
	FILE *f;
	int field;

	if ((f = fopen("/proc/self/stat", "re")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* p + 2 is field 3 (state). */
	for (field = 3, p += 2; *p != '\0' && field < 22; field++) {
		if (field == 14)
			*utime = strtoull(p, NULL, 10);
		else if (field == 15)
			*stime = strtoull(p, NULL, 10);
		if ((p = strchr(p, ' ')) == NULL)
			return -1;
		p++;
	}
	if (field != 22)
		return -1;
	*start = strtoull(p, NULL, 10);
	return 0;
}

static int
proc_open_fds(void)
{
	struct dirent *e;
	DIR *dir;
	int n = 0;

	if ((dir = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1; /* not the one opendir holds */
}

static void
write_process(FILE *out, const char *name, const char *type,
    const char *help, double v)
{
	char num[64];

	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help,
	    name, type, name, fmt_double(num, sizeof(num), v));
}

/*
 * The standard process_* metrics of Prometheus client libraries.  The
 * start time is the boot time plus the start in ticks since boot; the
 * boot time comes from CLOCK_BOOTTIME, not /proc/stat, which the systemd
 * unit's ProcSubset=pid hides.  A value that cannot be read is left out.
 */
static void
write_process_metrics(FILE *out)
{
	unsigned long long ut, st, start;
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long long size, rss;
	struct timespec now, boot;
	struct rlimit rl;
	FILE *f;
	int fds;

	if (tck > 0 && proc_stat(&ut, &st, &start) == 0) {
		write_process(out, "process_cpu_seconds_total", "counter",
		    "Total user and system CPU time spent in seconds.",
		    (double)(ut + st) / (double)tck);
		if (clock_gettime(CLOCK_REALTIME, &now) == 0 &&
		    clock_gettime(CLOCK_BOOTTIME, &boot) == 0)
			write_process(out, "process_start_time_seconds", "gauge",
			    "Start time of the process since unix epoch in "
			    "seconds.",
			    floor((double)now.tv_sec - (double)boot.tv_sec +
			    ((double)now.tv_nsec - (double)boot.tv_nsec) / 1e9 +
			    (double)start / (double)tck + 0.5));
	}
	if ((fds = proc_open_fds()) >= 0)
		write_process(out, "process_open_fds", "gauge",
		    "Number of open file descriptors.", fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		write_process(out, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.",
		    rl.rlim_cur == RLIM_INFINITY ? INFINITY :
		    (double)rl.rlim_cur);
	if (page > 0 && (f = fopen("/proc/self/statm", "re")) != NULL) {
		if (fscanf(f, "%llu %llu", &size, &rss) == 2)
			write_process(out, "process_resident_memory_bytes",
			    "gauge", "Resident memory size in bytes.",
			    (double)rss * (double)page);
		fclose(f);
	}
}

void
metrics_write(FILE *out)
{
	int i;

	for (i = 0; i < NFAMILIES; i++)
		write_family(out, &defs[i], &fams[i]);
	write_process_metrics(out);
}

void
metrics_reset(void)
{
	int i, j;

	for (i = 0; i < NFAMILIES; i++) {
		if (fams[i].slots != NULL)
			for (j = 0; j < METRICS_SLOTS; j++)
				if (fams[i].slots[j] != NULL) {
					free(fams[i].slots[j]->labels);
					free(fams[i].slots[j]);
				}
		free(fams[i].slots);
		fams[i].slots = NULL;
		fams[i].n = 0;
	}
}

/* ---- building label sets ---- */

/* Append to buf at *o; -1 when it does not fit (with the NUL). */
static int
put(char *buf, size_t len, size_t *o, const char *s, size_t n)
{
	if (n >= len - *o)
		return -1;
	memcpy(buf + *o, s, n);
	*o += n;
	buf[*o] = '\0';
	return 0;
}

const char *
metrics_labels(char *buf, size_t len, ...)
{
	va_list ap;
	const char *name, *value;
	size_t o = 0;
	int first = 1, bad = 0;

	if (buf == NULL || len == 0)
		return OVERFLOW_LABELS;
	buf[0] = '\0';
	va_start(ap, len);
	while (!bad && (name = va_arg(ap, const char *)) != NULL) {
		const unsigned char *p;
		const char *n;

		/* A NULL value ends the list like the sentinel would. */
		if ((value = va_arg(ap, const char *)) == NULL)
			break;
		if (!name_start((unsigned char)*name))
			bad = 1;
		for (n = name; *n != '\0' && !bad; n++)
			if (!name_char((unsigned char)*n))
				bad = 1;
		if (bad || (!first && put(buf, len, &o, ",", 1) < 0) ||
		    put(buf, len, &o, name, strlen(name)) < 0 ||
		    put(buf, len, &o, "=\"", 2) < 0) {
			bad = 1;
			break;
		}
		first = 0;
		for (p = (const unsigned char *)value; *p != '\0' && !bad;) {
			size_t u = utf8_len(p);

			if (*p == '\\')
				bad = put(buf, len, &o, "\\\\", 2) < 0;
			else if (*p == '"')
				bad = put(buf, len, &o, "\\\"", 2) < 0;
			else if (*p == '\n')
				bad = put(buf, len, &o, "\\n", 2) < 0;
			else if (u == 0) {
				/* Not UTF-8 (a peer's bytes): keep the text
				 * valid, mark the spot. */
				bad = put(buf, len, &o, "?", 1) < 0;
				u = 1;
			} else
				bad = put(buf, len, &o, (const char *)p, u) < 0;
			p += u ? u : 1;
		}
		if (!bad && put(buf, len, &o, "\"", 1) < 0)
			bad = 1;
	}
	va_end(ap);
	/*
	 * Cut text would not parse, and a shorter label set would merge
	 * with another: fold into the overflow set instead.
	 */
	return bad ? OVERFLOW_LABELS : buf;
}
