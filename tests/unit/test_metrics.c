/*
 * proxy/metrics.c: counters, gauges, histogram bucket arithmetic, label
 * escaping and validation, overflow folding, and the exposition text,
 * compared exactly.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "t.h"

#define LB(...) metrics_labels(lbuf, sizeof(lbuf), __VA_ARGS__, NULL)

static char lbuf[512];
static char *text; /* the last exposition() */

/* The whole exposition text (freed on the next call). */
static const char *
exposition(void)
{
	size_t len;
	FILE *f;

	free(text);
	text = NULL;
	if ((f = open_memstream(&text, &len)) == NULL)
		return "";
	metrics_write(f);
	fclose(f);
	return text;
}

/* The lines of one family, from its "# HELP" to the next family's. */
static const char *
family_text(const char *name)
{
	static char out[65536];
	char head[128];
	const char *all = exposition(), *s, *e;

	snprintf(head, sizeof(head), "# HELP %s ", name);
	out[0] = '\0';
	if ((s = strstr(all, head)) == NULL)
		return out;
	if ((e = strstr(s + 1, "# HELP ")) == NULL)
		e = s + strlen(s);
	snprintf(out, sizeof(out), "%.*s", (int)(e - s), s);
	return out;
}

/* The sample lines of one family (without HELP and TYPE). */
static const char *
samples(const char *name)
{
	const char *t = family_text(name), *p;

	if ((p = strstr(t, "\n# TYPE ")) == NULL)
		return "";
	if ((p = strchr(p + 1, '\n')) == NULL)
		return "";
	return p + 1;
}

/* The shortest %g that reads back exactly (what metrics.c promises). */
static const char *
shortest(double v)
{
	static char buf[64];
	int prec;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

#define VALUE_IS(fam, labels, want) CHECK(metrics_value(fam, labels) == (want))

static void
test_counter(void)
{
	metrics_reset();
	CHECK(isnan(metrics_value("mxtls_sessions_total", "")));
	metrics_inc("mxtls_sessions_total", "", 1);
	metrics_inc("mxtls_sessions_total", NULL, 2.5);
	VALUE_IS("mxtls_sessions_total", "", 3.5);
	VALUE_IS("mxtls_sessions_total", NULL, 3.5);
	/* Counters only go up; NaN is no step. */
	metrics_inc("mxtls_sessions_total", "", -1);
	metrics_inc("mxtls_sessions_total", "", NAN);
	VALUE_IS("mxtls_sessions_total", "", 3.5);
	/* The wrong kind of update, an unknown family: ignored. */
	metrics_set("mxtls_sessions_total", "", 100);
	metrics_add("mxtls_sessions_total", "", 100);
	metrics_observe("mxtls_sessions_total", "", 100);
	metrics_inc("mxtls_no_such_family", "", 1);
	metrics_inc(NULL, "", 1);
	VALUE_IS("mxtls_sessions_total", "", 3.5);
	CHECK(isnan(metrics_value("mxtls_no_such_family", "")));
	CHECK_STR(samples("mxtls_sessions_total"), "mxtls_sessions_total 3.5\n");

	metrics_inc("mxtls_deliveries_total",
	    LB("outcome", "tls", "profile", "opportunistic"), 1);
	metrics_inc("mxtls_deliveries_total",
	    LB("outcome", "fallback", "profile", "opportunistic"), 1);
	metrics_inc("mxtls_deliveries_total",
	    LB("outcome", "tls", "profile", "opportunistic"), 1);
	VALUE_IS("mxtls_deliveries_total",
	    "outcome=\"tls\",profile=\"opportunistic\"", 2);
	/* Sorted by label text, whatever the order of first use. */
	CHECK_STR(samples("mxtls_deliveries_total"),
	    "mxtls_deliveries_total{outcome=\"fallback\",profile="
	    "\"opportunistic\"} 1\n"
	    "mxtls_deliveries_total{outcome=\"tls\",profile=\"opportunistic\"}"
	    " 2\n");
	metrics_reset();
	CHECK(isnan(metrics_value("mxtls_sessions_total", "")));
	CHECK_STR(samples("mxtls_deliveries_total"), "");
}

static void
test_gauge(void)
{
	metrics_reset();
	metrics_add("mxtls_sessions_current", "", 1);
	metrics_add("mxtls_sessions_current", "", 1);
	metrics_add("mxtls_sessions_current", "", -1);
	VALUE_IS("mxtls_sessions_current", "", 1);
	metrics_add("mxtls_sessions_current", "", -1);
	CHECK_STR(samples("mxtls_sessions_current"),
	    "mxtls_sessions_current 0\n");
	metrics_inc("mxtls_sessions_current", "", 5); /* not a counter */
	VALUE_IS("mxtls_sessions_current", "", 0);

	metrics_set("mxtls_retry_records", LB("state", "failed-once"), 3);
	metrics_set("mxtls_retry_records", LB("state", "broken"), 7);
	metrics_set("mxtls_retry_records", LB("state", "broken"), 2);
	metrics_set("mxtls_policy_age_seconds", LB("source", "central"),
	    1e21);
	metrics_set("mxtls_policy_age_seconds", LB("source", "mta-sts"),
	    0.1);
	metrics_set("mxtls_policy_age_seconds", LB("source", "never"),
	    INFINITY);
	metrics_set("mxtls_policy_age_seconds", LB("source", "x"), -1.0 / 3);
	CHECK_STR(samples("mxtls_retry_records"),
	    "mxtls_retry_records{state=\"broken\"} 2\n"
	    "mxtls_retry_records{state=\"failed-once\"} 3\n");
	CHECK_STR(samples("mxtls_policy_age_seconds"),
	    "mxtls_policy_age_seconds{source=\"central\"} 1e+21\n"
	    "mxtls_policy_age_seconds{source=\"mta-sts\"} 0.1\n"
	    "mxtls_policy_age_seconds{source=\"never\"} +Inf\n"
	    "mxtls_policy_age_seconds{source=\"x\"} -0.3333333333333333\n");
	metrics_set("mxtls_policy_age_seconds", LB("source", "never"), NAN);
	CHECK(strstr(samples("mxtls_policy_age_seconds"),
	    "{source=\"never\"} NaN\n") != NULL);
	metrics_reset();
}

static void
test_histogram(void)
{
	/* Bounds of mxtls_upstream_connect_seconds. */
	static const char *const le[] = { "0.001", "0.005", "0.01", "0.025",
		"0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
		"+Inf" };
	/* Observations, and how many land at or below each bound. */
	static const double obs[] = { 0.001, 0.0011, -2, 0.3, 1, 1.0000001,
		30, 30.5, 1e9 };
	static const int cum[] = { 2, 3, 3, 3, 3, 3, 3, 4, 5, 6, 6, 6, 7, 9 };
	char want[4096], *w = want;
	double sum = 0;
	size_t i;

	metrics_reset();
	for (i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
		metrics_observe("mxtls_upstream_connect_seconds", "", obs[i]);
		sum += obs[i];
	}
	metrics_observe("mxtls_upstream_connect_seconds", "", NAN);
	metrics_inc("mxtls_upstream_connect_seconds", "", 1); /* wrong kind */
	VALUE_IS("mxtls_upstream_connect_seconds", "", 9);
	for (i = 0; i < sizeof(le) / sizeof(le[0]); i++)
		w += sprintf(w, "mxtls_upstream_connect_seconds_bucket"
		    "{le=\"%s\"} %d\n", le[i], cum[i]);
	w += sprintf(w, "mxtls_upstream_connect_seconds_sum %s\n",
	    shortest(sum));
	sprintf(w, "mxtls_upstream_connect_seconds_count 9\n");
	CHECK_STR(samples("mxtls_upstream_connect_seconds"), want);

	/* With labels: le goes last; an empty series has all zeros. */
	metrics_observe("mxtls_tls_handshake_seconds", "", 0.2);
	metrics_observe("mxtls_tls_handshake_seconds", "", 0.25);
	CHECK_STR(family_text("mxtls_tls_handshake_seconds"),
	    "# HELP mxtls_tls_handshake_seconds Duration of upstream TLS "
	    "handshakes.\n"
	    "# TYPE mxtls_tls_handshake_seconds histogram\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"0.005\"} 0\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"0.01\"} 0\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"0.025\"} 0\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"0.05\"} 0\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"0.1\"} 0\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"0.25\"} 2\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"0.5\"} 2\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"1\"} 2\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"2.5\"} 2\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"5\"} 2\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"10\"} 2\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"30\"} 2\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"60\"} 2\n"
	    "mxtls_tls_handshake_seconds_bucket{le=\"+Inf\"} 2\n"
	    "mxtls_tls_handshake_seconds_sum 0.45\n"
	    "mxtls_tls_handshake_seconds_count 2\n");
	metrics_reset();
	metrics_observe("mxtls_tls_handshake_seconds", LB("profile", "p"),
	    61);
	CHECK(strstr(samples("mxtls_tls_handshake_seconds"),
	    "mxtls_tls_handshake_seconds_bucket{profile=\"p\",le=\"60\"} 0\n"
	    "mxtls_tls_handshake_seconds_bucket{profile=\"p\",le=\"+Inf\"} 1\n"
	    "mxtls_tls_handshake_seconds_sum{profile=\"p\"} 61\n"
	    "mxtls_tls_handshake_seconds_count{profile=\"p\"} 1\n") != NULL);
	metrics_reset();
}

static void
test_labels(void)
{
	char small[16];

	CHECK_STR(metrics_labels(lbuf, sizeof(lbuf), NULL), "");
	CHECK_STR(LB("a", "b"), "a=\"b\"");
	CHECK_STR(LB("outcome", "tls", "profile", "x"),
	    "outcome=\"tls\",profile=\"x\"");
	/* Backslash, double quote and newline escaped; nothing else. */
	CHECK_STR(LB("v", "a\\b\"c\nd'e\tf"), "v=\"a\\\\b\\\"c\\nd'e\tf\"");
	CHECK_STR(LB("v", ""), "v=\"\"");
	/* UTF-8 kept, other bytes marked. */
	CHECK_STR(LB("v", "caf\xc3\xa9"), "v=\"caf\xc3\xa9\"");
	CHECK_STR(LB("v", "a\xff" "b\xc3"), "v=\"a?b?\"");
	CHECK_STR(LB("v", "\xed\xa0\x80"), "v=\"???\""); /* a surrogate */
	CHECK_STR(LB("v", "\xc0\xaf"), "v=\"??\""); /* overlong */
	/* A NULL value ends the list. */
	CHECK_STR(metrics_labels(lbuf, sizeof(lbuf), "a", "1", "b", NULL),
	    "a=\"1\"");
	/* Not a label name, or too long: the overflow set, never cut text. */
	CHECK_STR(LB("1a", "x"), "overflow=\"1\"");
	CHECK_STR(LB("a-b", "x"), "overflow=\"1\"");
	CHECK_STR(LB("", "x"), "overflow=\"1\"");
	CHECK_STR(metrics_labels(small, sizeof(small), "name", "012345678",
	    NULL), "overflow=\"1\"");
	CHECK_STR(metrics_labels(small, sizeof(small), "name", "01234567",
	    NULL), "name=\"01234567\"");
	CHECK_STR(metrics_labels(small, sizeof(small), "n", "\"\"\"\"\"\"",
	    NULL), "overflow=\"1\"");
	CHECK_STR(metrics_labels(small, 0, NULL), "overflow=\"1\"");

	/* Escaped values come out as given. */
	metrics_reset();
	metrics_inc("mxtls_tls_handshakes_total",
	    LB("version", "TLSv1.3", "cipher", "a\"b\\c\nd"), 1);
	CHECK_STR(samples("mxtls_tls_handshakes_total"),
	    "mxtls_tls_handshakes_total{version=\"TLSv1.3\",cipher="
	    "\"a\\\"b\\\\c\\nd\"} 1\n");
	metrics_reset();
}

/* Label text that would break the scrape is folded, not written. */
static void
test_invalid_labels(void)
{
	static const char *const bad[] = {
		"a=\"unterminated",
		"a=\"x\"\"",
		"a=\"x\",",
		"a=x",
		"a=\"raw\nnewline\"",
		"a=\"bad\\escape\"",
		"a=\"\xff\"",
		"le=\"1\"",
		"__name__=\"x\"",
		"a=\"1\",a=\"2\"",
		"a=\"1\" ,b=\"2\"",
		"1a=\"x\"",
		",",
		"{a=\"x\"}",
	};
	static const char *const good[] = {
		"a=\"1\",b=\"2\"",
		"_a=\"\"",
		"a=\"\\\\\\\"\\n\"",
		"lex=\"1\",l=\"2\"",
		"a=\"caf\xc3\xa9\"",
	};
	char big[600];
	size_t i;

	metrics_reset();
	/* Longer than 512 bytes: folded; 512: kept. */
	memset(big, 'x', sizeof(big));
	memcpy(big, "a=\"", 3);
	memcpy(big + 511, "\"", 2);
	metrics_inc("mxtls_config_reloads_total", big, 1);
	VALUE_IS("mxtls_config_reloads_total", big, 1);
	memcpy(big + 511, "x\"", 3);
	metrics_inc("mxtls_config_reloads_total", big, 1);
	CHECK(isnan(metrics_value("mxtls_config_reloads_total", big)));
	VALUE_IS("mxtls_config_reloads_total", "overflow=\"1\"", 1);
	metrics_reset();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		metrics_inc("mxtls_config_reloads_total", bad[i], 1);
		if (!isnan(metrics_value("mxtls_config_reloads_total", bad[i])))
			fprintf(stderr, "    stored: %s\n", bad[i]);
		CHECK(isnan(metrics_value("mxtls_config_reloads_total",
		    bad[i])));
	}
	VALUE_IS("mxtls_config_reloads_total", "overflow=\"1\"",
	    (double)(sizeof(bad) / sizeof(bad[0])));
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		metrics_inc("mxtls_config_reloads_total", good[i], 1);
		VALUE_IS("mxtls_config_reloads_total", good[i], 1);
	}
	metrics_reset();
}

static void
test_overflow(void)
{
	char l[64];
	const char *t;
	int i, lines = 0;

	metrics_reset();
	for (i = 0; i < 300; i++) {
		snprintf(l, sizeof(l), "cipher=\"c%03d\"", i);
		metrics_inc("mxtls_tls_handshakes_total", l, 1);
	}
	/* The first 256 are kept, the others fold into one more. */
	VALUE_IS("mxtls_tls_handshakes_total", "cipher=\"c255\"", 1);
	CHECK(isnan(metrics_value("mxtls_tls_handshakes_total",
	    "cipher=\"c256\"")));
	VALUE_IS("mxtls_tls_handshakes_total", "overflow=\"1\"", 44);
	/* Known label sets still count on their own. */
	metrics_inc("mxtls_tls_handshakes_total", "cipher=\"c000\"", 1);
	VALUE_IS("mxtls_tls_handshakes_total", "cipher=\"c000\"", 2);
	metrics_inc("mxtls_tls_handshakes_total", "cipher=\"new\"", 1);
	VALUE_IS("mxtls_tls_handshakes_total", "overflow=\"1\"", 45);
	for (t = samples("mxtls_tls_handshakes_total"); *t != '\0'; t++)
		lines += *t == '\n';
	CHECK_INT(lines, 257);
	/* Each family has its own limit. */
	metrics_inc("mxtls_deliveries_total", "outcome=\"tls\"", 1);
	VALUE_IS("mxtls_deliveries_total", "outcome=\"tls\"", 1);
	/* Histograms fold too. */
	for (i = 0; i < 260; i++) {
		snprintf(l, sizeof(l), "p=\"%d\"", i);
		metrics_observe("mxtls_tls_handshake_seconds", l, 1);
	}
	VALUE_IS("mxtls_tls_handshake_seconds", "overflow=\"1\"", 4);
	CHECK(strstr(samples("mxtls_tls_handshake_seconds"),
	    "mxtls_tls_handshake_seconds_count{overflow=\"1\"} 4\n") != NULL);
	metrics_reset();
}

/*
 * Nothing recorded yet: HELP and TYPE of every family, once, in order; a
 * family used without labels has its zero sample from the first scrape
 * (a counter that appears only at its first increment hides that first
 * increment from rate()); then the process_* families.
 */
static void
test_empty(void)
{
	static const char *const fams[][3] = {
		{ "mxtls_sessions_current", "gauge", "0" },
		{ "mxtls_sessions_total", "counter", "0" },
		{ "mxtls_sessions_refused_total", "counter", NULL },
		{ "mxtls_deliveries_total", "counter", NULL },
		{ "mxtls_tls_handshakes_total", "counter", NULL },
		{ "mxtls_tls_failures_total", "counter", NULL },
		{ "mxtls_retry_records", "gauge", NULL },
		{ "mxtls_tls_handshake_seconds", "histogram", "h" },
		{ "mxtls_upstream_connect_seconds", "histogram", "h" },
		{ "mxtls_bytes_relayed_total", "counter", NULL },
		{ "mxtls_policy_fetches_total", "counter", NULL },
		{ "mxtls_policy_age_seconds", "gauge", NULL },
		{ "mxtls_config_reloads_total", "counter", NULL },
		{ "mxtls_upstream_cached", "gauge", "0" },
		{ "mxtls_upstream_reuses_total", "counter", NULL },
		{ "mxtls_mta_sts_evictions_total", "counter", NULL },
		{ "mxtls_mta_sts_cache_bytes", "gauge", "0" },
		{ "mxtls_dsn_total", "counter", NULL },
		{ "mxtls_dsn_queued", "gauge", "0" },
		{ "mxtls_tlsrpt_sessions_total", "counter", NULL },
		{ "mxtls_tlsrpt_overflow_total", "counter", "0" },
		{ "mxtls_tlsrpt_reports_total", "counter", NULL },
		{ "mxtls_dane_total", "counter", NULL },
		{ "mxtls_requiretls_total", "counter", NULL },
		{ "mxtls_tls_required_no_total", "counter", NULL },
		{ "mxtls_build_info", "gauge", NULL },
		{ "process_cpu_seconds_total", "counter", "p" },
		{ "process_start_time_seconds", "gauge", "p" },
		{ "process_open_fds", "gauge", "p" },
		{ "process_max_fds", "gauge", "p" },
		{ "process_resident_memory_bytes", "gauge", "p" },
	};
	const char *t, *p;
	char want[256];
	size_t i, n = sizeof(fams) / sizeof(fams[0]);
	int j;

	metrics_reset();
	t = exposition();
	p = t;
	for (i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "# HELP %s ", fams[i][0]);
		CHECK(strncmp(p, want, strlen(want)) == 0);
		if (strncmp(p, want, strlen(want)) != 0) {
			fprintf(stderr, "  at: %.80s\n", p);
			return;
		}
		p = strchr(p, '\n') + 1;
		snprintf(want, sizeof(want), "# TYPE %s %s\n", fams[i][0],
		    fams[i][1]);
		CHECK(strncmp(p, want, strlen(want)) == 0);
		p = strchr(p, '\n') + 1;
		if (fams[i][2] == NULL)
			continue;
		if (fams[i][2][0] == 'h') {
			/* 13 bounds, +Inf, _sum and _count: all zero. */
			for (j = 0; j < 16; j++) {
				CHECK(strncmp(p, fams[i][0], strlen(fams[i][0])) ==
				    0);
				CHECK(strstr(p, " 0\n") == strchr(p, '\n') - 2);
				p = strchr(p, '\n') + 1;
			}
			continue;
		}
		if (fams[i][2][0] == 'p') {
			/* Read from /proc: a value, checked in test_process. */
			snprintf(want, sizeof(want), "%s ", fams[i][0]);
			CHECK(strncmp(p, want, strlen(want)) == 0);
			p = strchr(p, '\n') + 1;
			continue;
		}
		snprintf(want, sizeof(want), "%s %s\n", fams[i][0],
		    fams[i][2]);
		CHECK(strncmp(p, want, strlen(want)) == 0);
		p = strchr(p, '\n') + 1;
	}
	CHECK_STR(p, "");
	CHECK_STR(family_text("mxtls_build_info"),
	    "# HELP mxtls_build_info Always 1; the version of mxtls as a "
	    "label.\n"
	    "# TYPE mxtls_build_info gauge\n");
	/* Scraping stores nothing: still no value recorded. */
	CHECK(isnan(metrics_value("mxtls_sessions_total", "")));
	/* Once counted, the stored series alone is written. */
	metrics_inc("mxtls_sessions_total", "", 2);
	CHECK_STR(samples("mxtls_sessions_total"), "mxtls_sessions_total 2\n");
	metrics_reset();
}

/* The value of the sample "name VALUE" in the exposition, or NAN. */
static double
sample_value(const char *name)
{
	char want[128];
	const char *p;

	snprintf(want, sizeof(want), "\n%s ", name);
	if ((p = strstr(exposition(), want)) == NULL)
		return NAN;
	return strtod(p + strlen(want), NULL);
}

/* process_*: what this very process has, read at the scrape. */
static void
test_process(void)
{
	double start = sample_value("process_start_time_seconds");
	double now = (double)time(NULL);
	struct rlimit rl;
	int fd, before;

	/* This test started less than an hour ago, and not in the future. */
	CHECK(start <= now + 1 && start > now - 3600);
	CHECK(sample_value("process_cpu_seconds_total") >= 0);
	CHECK(sample_value("process_resident_memory_bytes") > 1024 * 1024);
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	CHECK(sample_value("process_max_fds") == (double)rl.rlim_cur);
	/* Open fds: stdin, stdout, stderr and the memstream at least; one
	 * more file makes one more. */
	before = (int)sample_value("process_open_fds");
	CHECK(before >= 3);
	fd = open("/dev/null", O_RDONLY);
	CHECK(fd >= 0);
	CHECK_INT(sample_value("process_open_fds"), before + 1);
	close(fd);
	CHECK_INT(sample_value("process_open_fds"), before);
}

/* A small set, the whole text of each family written, exactly. */
static void
test_exposition(void)
{
	metrics_reset();
	metrics_set("mxtls_build_info", LB("version", "0.1.0"), 1);
	metrics_inc("mxtls_sessions_refused_total", LB("reason", "per_client"),
	    1);
	metrics_inc("mxtls_sessions_refused_total",
	    LB("reason", "max_sessions"), 2);
	metrics_inc("mxtls_tls_failures_total",
	    LB("result", "certificate-host-mismatch"), 1);
	metrics_inc("mxtls_bytes_relayed_total", LB("direction", "upstream"),
	    123456789012);
	CHECK_STR(family_text("mxtls_build_info"),
	    "# HELP mxtls_build_info Always 1; the version of mxtls as a "
	    "label.\n"
	    "# TYPE mxtls_build_info gauge\n"
	    "mxtls_build_info{version=\"0.1.0\"} 1\n");
	CHECK_STR(family_text("mxtls_sessions_refused_total"),
	    "# HELP mxtls_sessions_refused_total Client connections refused, "
	    "by reason.\n"
	    "# TYPE mxtls_sessions_refused_total counter\n"
	    "mxtls_sessions_refused_total{reason=\"max_sessions\"} 2\n"
	    "mxtls_sessions_refused_total{reason=\"per_client\"} 1\n");
	CHECK_STR(family_text("mxtls_tls_failures_total"),
	    "# HELP mxtls_tls_failures_total Upstream TLS failures by RFC 8460 "
	    "result type.\n"
	    "# TYPE mxtls_tls_failures_total counter\n"
	    "mxtls_tls_failures_total{result=\"certificate-host-mismatch\"} "
	    "1\n");
	CHECK_STR(samples("mxtls_bytes_relayed_total"),
	    "mxtls_bytes_relayed_total{direction=\"upstream\"} 123456789012\n");
	metrics_reset();
}

int
main(void)
{
	RUN(test_counter);
	RUN(test_gauge);
	RUN(test_histogram);
	RUN(test_labels);
	RUN(test_invalid_labels);
	RUN(test_overflow);
	RUN(test_empty);
	RUN(test_process);
	RUN(test_exposition);
	metrics_reset();
	free(text);
	return T_DONE();
}
