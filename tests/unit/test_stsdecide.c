/*
 * policy/stsdecide.c: the MTA-STS cache record (round trip, records
 * refused, corrupt text), policy domain names, the decision rules of RFC
 * 8461 sections 3.3 and 5 (id comparison, expiry, rate limits,
 * sts_refresh), the eviction order and the judging of fetcher responses.
 * Pure functions: no loop, no files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsdecide.h"
#include "stsrec.h"
#include "t.h"

static char err[512];

#define T0 ((time_t)1700000000)

/* ---- domain names ---- */

static void
domains(void)
{
	static const struct {
		const char *d;
		int ok;
	} cases[] = {
		{ "example.com", 1 },
		{ "a.test", 1 },
		{ "localhost", 1 },
		{ "xn--bcher-kva.example", 1 },
		{ "a-b.c0.d", 1 },
		{ "", 0 },
		{ ".", 0 },
		{ "example.com.", 0 },
		{ ".example.com", 0 },
		{ "a..b", 0 },
		{ "Example.com", 0 },
		{ "-a.com", 0 },
		{ "a-.com", 0 },
		{ "a_b.com", 0 },
		{ "a b.com", 0 },
		{ "a/b.com", 0 },
		{ "[192.0.2.1]", 0 },
		{ "../etc", 0 },
	};
	char longlabel[80], longname[300];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (sts_domain_ok(cases[i].d) != cases[i].ok) {
			fprintf(stderr, "  sts_domain_ok(\"%s\") != %d\n",
			    cases[i].d, cases[i].ok);
			CHECK(0);
		}
	memset(longlabel, 'a', 63);
	longlabel[63] = '\0';
	snprintf(longname, sizeof(longname), "%s.com", longlabel);
	CHECK(sts_domain_ok(longname));
	memset(longlabel, 'a', 64);
	longlabel[64] = '\0';
	snprintf(longname, sizeof(longname), "%s.com", longlabel);
	CHECK(!sts_domain_ok(longname));
	/* 244 bytes is the most: "_mta-sts." + 244 = 253. */
	memset(longname, 'a', sizeof(longname));
	for (i = 60; i < 243; i += 61)
		longname[i] = '.';
	longname[244] = '\0';
	CHECK(sts_domain_ok(longname));
	longname[244] = 'a';
	longname[245] = '\0';
	CHECK(!sts_domain_ok(longname));
}

/* ---- the cache file ---- */

static const char good_file[] =
    "mxtls-mta-sts-cache 1\n"
    "domain example.com\n"
    "id 20180907T090909\n"
    "fetched-at 1700000000\n"
    "expires 1700086400\n"
    "mode enforce\n"
    "max_age 86400\n"
    "mx mail.example.com\n"
    "mx *.example.net\n";

static void
file_round_trip(void)
{
	struct sts_record r, back;
	char *text, *text2;
	size_t len, len2;
	int i;

	mkrec(&r, "example.com", "20180907T090909", MTASTS_ENFORCE, 86400, T0,
	    "mail.example.com", "*.example.net");
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), 0);
	CHECK_STR(text, good_file);
	CHECK_INT(len, strlen(good_file));
	CHECK_INT(sts_record_parse(text, len, &back, err, sizeof(err)), 0);
	CHECK_STR(back.domain, "example.com");
	CHECK_STR(back.id, "20180907T090909");
	CHECK_INT(back.fetched_at, T0);
	CHECK_INT(back.expires, T0 + 86400);
	CHECK_INT(back.policy.mode, MTASTS_ENFORCE);
	CHECK_INT(back.policy.max_age, 86400);
	CHECK_INT(back.policy.nmx, 2);
	if (back.policy.nmx == 2) {
		CHECK_STR(back.policy.mx[0], "mail.example.com");
		CHECK_STR(back.policy.mx[1], "*.example.net");
	}
	CHECK(mtasts_mx_match(&back.policy, "mx1.example.net"));
	CHECK(!mtasts_mx_match(&back.policy, "a.b.example.net"));
	/* Formatting what was parsed gives the same bytes. */
	CHECK_INT(sts_record_format(&back, &text2, &len2, err, sizeof(err)), 0);
	CHECK(len2 == len && memcmp(text, text2, len) == 0);
	free(text);
	free(text2);
	sts_record_free(&back);
	sts_record_free(&r);

	/* mode none without mx, testing, the largest max_age, max_age 0. */
	{
		static const struct {
			enum mtasts_mode mode;
			long max_age;
			const char *mx;
		} c[] = {
			{ MTASTS_NONE, 600, NULL },
			{ MTASTS_NONE, 600, "mx.a.test" },
			{ MTASTS_TESTING, 31557600, "*.a.test" },
			{ MTASTS_ENFORCE, 0, "mx.a.test" },
		};

		for (i = 0; i < (int)(sizeof(c) / sizeof(c[0])); i++) {
			mkrec(&r, "a.test", "x1", c[i].mode, c[i].max_age, T0,
			    c[i].mx, NULL);
			CHECK_INT(sts_record_format(&r, &text, &len, err,
			    sizeof(err)), 0);
			if (sts_record_parse(text, len, &back, err,
			    sizeof(err)) < 0) {
				fprintf(stderr, "  case %d: %s\n", i, err);
				CHECK(0);
			} else {
				CHECK_INT(back.policy.mode, c[i].mode);
				CHECK_INT(back.policy.max_age, c[i].max_age);
				CHECK_INT(back.expires, T0 + c[i].max_age);
				CHECK_INT(back.policy.nmx, c[i].mx ? 1 : 0);
				sts_record_free(&back);
			}
			free(text);
			sts_record_free(&r);
		}
	}
}

static void
file_round_trip_many_mx(void)
{
	struct sts_record r, back;
	char *text, buf[300];
	size_t len;
	int i;

	/* MTASTS_MX_MAX long patterns: the largest file there can be. */
	mkrec(&r, "a.test", "big", MTASTS_ENFORCE, 3600, T0, NULL, NULL);
	free(r.policy.mx);
	r.policy.mx = calloc(MTASTS_MX_MAX, sizeof(char *));
	for (i = 0; i < MTASTS_MX_MAX; i++) {
		/* Four labels of 59 bytes: 240 bytes, then "NNN.test". */
		memset(buf, 'm', 240);
		buf[59] = buf[119] = buf[179] = buf[239] = '.';
		snprintf(buf + 240, sizeof(buf) - 240, "%03d.test", i);
		r.policy.mx[r.policy.nmx++] = xstrdup(buf);
	}
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), 0);
	CHECK(len <= STS_CACHE_FILE_MAX);
	if (sts_record_parse(text, len, &back, err, sizeof(err)) < 0) {
		fprintf(stderr, "  %s\n", err);
		CHECK(0);
	} else {
		CHECK_INT(back.policy.nmx, MTASTS_MX_MAX);
		sts_record_free(&back);
	}
	free(text);
	sts_record_free(&r);
}

static void
file_refused_by_format(void)
{
	struct sts_record r;
	char *text;
	size_t len;

	mkrec(&r, "Example.com", "1", MTASTS_ENFORCE, 60, T0, "mx.a", NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "a-b", MTASTS_ENFORCE, 60, T0, "mx.a", NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "1", MTASTS_ENFORCE, 60, T0, "mx a", NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "1", MTASTS_ENFORCE, 60, T0, NULL, NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "1", MTASTS_ENFORCE, 60, T0, "mx.a", NULL);
	r.expires++;
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "1", MTASTS_ENFORCE, 60, 0, "mx.a", NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
}

/* Replace the first occurrence of from by to in good_file. */
static const char *
edit(const char *from, const char *to)
{
	static char buf[2048];
	const char *p = strstr(good_file, from);

	if (p == NULL) {
		fprintf(stderr, "edit: \"%s\" not in the file\n", from);
		exit(2);
	}
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - good_file), good_file,
	    to, p + strlen(from));
	return buf;
}

static void
file_corrupt(void)
{
	const char *cases[] = {
		edit("mxtls-mta-sts-cache 1", "mxtls-mta-sts-cache 2"),
		edit("mxtls-mta-sts-cache 1\n", ""),
		edit("domain example.com\n", ""),
		edit("domain example.com", "domain Example.com"),
		edit("domain example.com", "domain ../x"),
		edit("domain", "domian"),
		edit("id 20180907T090909", "id 2018-09-07"),
		edit("id 20180907T090909", "id 123456789012345678901234567890123"),
		edit("id 20180907T090909", "id"),
		edit("id 20180907T090909", "id  x"),
		edit("id 20180907T090909", "id x y"),
		edit("fetched-at 1700000000", "fetched-at -1700000000"),
		edit("fetched-at 1700000000", "fetched-at 01700000000"),
		edit("fetched-at 1700000000", "fetched-at 0"),
		edit("fetched-at 1700000000", "fetched-at 99999999999999999999"),
		edit("expires 1700086400", "expires 1700086401"),
		edit("expires 1700086400", "expires 17000864OO"),
		edit("mode enforce", "mode Enforce"),
		edit("mode enforce", "mode doubt"),
		edit("max_age 86400", "max_age 31557601"),
		edit("max_age 86400", "max_age -1"),
		edit("max_age 86400", "max_age 8.64e4"),
		edit("mx mail.example.com", "mx mail..example.com"),
		edit("mx mail.example.com", "mx *.*.example.com"),
		edit("mx mail.example.com", "mx *.example.net"), /* repeated */
		edit("mx mail.example.com", "nmx mail.example.com"),
		edit("mx mail.example.com\n", "mx mail.example.com\r\n"),
		edit("mx mail.example.com\n", "mx mail.example.com\nfoo bar\n"),
		edit("mode enforce\nmax_age 86400\n", "max_age 86400\nmode enforce\n"),
		edit("mx *.example.net\n", "mx *.example.net"), /* no final LF */
		edit("mx *.example.net\n", "mx *.example.net\n\n"),
		edit("id 20180907T090909\n", "id 20180907T090909\nid 1\n"),
		edit("mode enforce", "mode \xc3\xa9"),
	};
	const char *none_mx = "mxtls-mta-sts-cache 1\ndomain a.test\nid 1\n"
			      "fetched-at 1700000000\nexpires 1700000600\n"
			      "mode enforce\nmax_age 600\n";
	struct sts_record r;
	char withnul[sizeof(good_file)];
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (sts_record_parse(cases[i], strlen(cases[i]), &r, err,
		    sizeof(err)) == 0) {
			fprintf(stderr, "  case %zu accepted:\n%s", i, cases[i]);
			sts_record_free(&r);
			CHECK(0);
		} else if (err[0] == '\0') {
			fprintf(stderr, "  case %zu: no error text\n", i);
			CHECK(0);
		}
	}
	/* enforce without mx lines. */
	CHECK_INT(sts_record_parse(none_mx, strlen(none_mx), &r, err,
	    sizeof(err)), -1);
	/* Every truncation of a good file is refused. */
	for (n = 0; n < strlen(good_file); n++)
		if (sts_record_parse(good_file, n, &r, err, sizeof(err)) == 0) {
			/* Cutting after a whole mx line leaves a valid file. */
			if (good_file[n - 1] != '\n' ||
			    strncmp(good_file + n, "mx ", 3) != 0) {
				fprintf(stderr, "  truncation at %zu accepted\n",
				    n);
				CHECK(0);
			}
			sts_record_free(&r);
		}
	/* A NUL byte inside. */
	memcpy(withnul, good_file, sizeof(good_file));
	withnul[30] = '\0';
	CHECK_INT(sts_record_parse(withnul, sizeof(good_file) - 1, &r, err,
	    sizeof(err)), -1);
	/* Too big. */
	CHECK_INT(sts_record_parse(good_file, STS_CACHE_FILE_MAX + 1, &r, err,
	    sizeof(err)), -1);
	/* And the good one parses (the edits above were the only faults). */
	CHECK_INT(sts_record_parse(good_file, strlen(good_file), &r, err,
	    sizeof(err)), 0);
	sts_record_free(&r);
}

/* ---- decisions ---- */

static struct sts_facts
facts(const char *cached_id, time_t fetched, long max_age,
    enum sts_txt_state txt, const char *txt_id, time_t checked)
{
	struct sts_facts f;

	memset(&f, 0, sizeof(f));
	if (cached_id != NULL) {
		f.cached = 1;
		f.cached_id = cached_id;
		f.fetched_at = fetched;
		f.expires = fetched + max_age;
		f.max_age = max_age;
	}
	f.txt = txt;
	f.txt_id = txt_id;
	f.txt_checked = checked;
	return f;
}

#define DECIDE(f, now, step_, src_, cache_, after_, err_)                  \
	do {                                                               \
		struct sts_decision d_;                                    \
		sts_decide(&(f), (now), &d_);                              \
		CHECK_INT(d_.step, step_);                                 \
		if (d_.step == STS_STEP_ANSWER) {                          \
			CHECK_STR(sts_source_name(d_.source, 0),           \
			    sts_source_name(src_, 0));                     \
			CHECK_INT(d_.use_cache, cache_);                   \
			CHECK_INT(d_.fetch_after, after_);                 \
			CHECK_INT(d_.with_error, err_);                    \
		}                                                          \
	} while (0)

static void
decide_txt_needed(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000;

	/* Never checked: TXT first, with or without a cache. */
	f = facts(NULL, 0, 0, STS_TXT_UNKNOWN, NULL, 0);
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	f = facts("1", T0, 86400, STS_TXT_UNKNOWN, NULL, 0);
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	/* Checked 59 s ago: not again; 60 s ago: again. */
	f = facts("1", T0, 86400, STS_TXT_ID, "1", now - 59);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", T0, 86400, STS_TXT_ID, "1", now - 60);
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	/* The clock went back: check again. */
	f = facts("1", T0, 86400, STS_TXT_ID, "1", now + 5);
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	/* sts_refresh: check now, even just after a check. */
	f = facts("1", T0, 86400, STS_TXT_ID, "1", now);
	f.force_txt = 1;
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	/* No record seen 10 s ago, no cache: none, no query. */
	f = facts(NULL, 0, 0, STS_TXT_NONE, NULL, now - 10);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_NONE, 0, 0, 0);
}

static void
decide_ids(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000;

	/* Same id, valid cache: the cache, no fetch. */
	f = facts("abc", T0, 86400, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	/* A changed id: fetch. */
	f = facts("abc", T0, 86400, STS_TXT_ID, "abd", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* Ids compare case-sensitively (they are opaque). */
	f = facts("abc", T0, 86400, STS_TXT_ID, "ABC", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* A prefix is another id. */
	f = facts("abc", T0, 86400, STS_TXT_ID, "abcd", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* No cache: fetch. */
	f = facts(NULL, 0, 0, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* max_age 0 or 1: still used for STS_MIN_LIFETIME after the fetch. */
	f = facts("abc", now, 0, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("abc", now - 59, 1, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("abc", now - 60, 1, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	f = facts("abc", now - 60, 1, STS_TXT_NONE, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_NONE, 0, 0, 0);
	CHECK_INT(sts_valid_until(T0, T0), T0 + STS_MIN_LIFETIME);
	CHECK_INT(sts_valid_until(T0, T0 + 61), T0 + 61);
	/* Same id but expired: fetch. */
	f = facts("abc", T0, 1000, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* (Past half its max_age: answered, and re-fetched behind.) */
	f = facts("abc", T0, 1001, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 1, 0);
}

static void
decide_no_record(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000;

	/* F-09 (c): no TXT record, valid cache: keep it. */
	f = facts("1", T0, 86400, STS_TXT_NONE, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_MISSING_CACHE, 1, 0, 0);
	f = facts("1", T0, 86400, STS_TXT_INVALID, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_INVALID_CACHE, 1, 0, 0);
	f = facts("1", T0, 86400, STS_TXT_TEMPFAIL, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_TEMPFAIL_CACHE, 1, 0, 0);
	/* ... until it expires. */
	f = facts("1", T0, 1000, STS_TXT_NONE, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_NONE, 0, 0, 0);
	f = facts("1", T0, 1000, STS_TXT_INVALID, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_INVALID, 0, 0, 0);
	f = facts(NULL, 0, 0, STS_TXT_TEMPFAIL, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_TEMPFAIL, 0, 0, 0);
	/* No record: never a fetch, even when sts_refresh asked. */
	f = facts("1", T0, 86400, STS_TXT_NONE, NULL, now);
	f.force_fetch = 1;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_MISSING_CACHE, 1, 0, 0);
}

static void
decide_failures(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000;

	/* A fetch failed 30 s ago: no new fetch; the cache if valid. */
	f = facts("1", T0, 86400, STS_TXT_ID, "2", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 30;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_FAILED_CACHE, 1, 0, 1);
	f = facts(NULL, 0, 0, STS_TXT_ID, "2", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 59;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_FAILED, 0, 0, 1);
	/* F-09 (e): expired cache and a failed fetch: no policy. */
	f = facts("1", T0, 1000, STS_TXT_ID, "1", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_FAILED, 0, 0, 1);
	/* 60 s later: fetch again. */
	f = facts("1", T0, 86400, STS_TXT_ID, "2", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 60;
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* A failure in the future (clock set back): fetch. */
	f.fetch_failed_at = now + 100;
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* A failure does not hide a valid policy with the current id. */
	f = facts("2", T0, 86400, STS_TXT_ID, "2", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 1;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
}

static void
decide_refresh(void)
{
	struct sts_facts f;
	time_t now = T0 + 100000;

	/* sts_refresh after the TXT check: fetch even with the same id. */
	f = facts("1", now - 3600, 86400, STS_TXT_ID, "1", now);
	f.force_fetch = 1;
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* ... unless the copy is younger than STS_REFRESH_MIN. */
	f = facts("1", now - 59, 86400, STS_TXT_ID, "1", now);
	f.force_fetch = 1;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", now - 60, 86400, STS_TXT_ID, "1", now);
	f.force_fetch = 1;
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* ... or a fetch failed less than a minute ago. */
	f = facts("1", now - 3600, 86400, STS_TXT_ID, "1", now);
	f.force_fetch = 1;
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 10;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_FAILED_CACHE, 1, 0, 1);
}

static void
decide_background(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000000;

	/* Half of max_age passed: answer from the cache, fetch behind. */
	f = facts("1", now - 43199, 86400, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", now - 43200, 86400, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 1, 0);
	/* A day at the most, for long max_age. */
	f = facts("1", now - 86399, 31557600, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", now - 86400, 31557600, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 1, 0);
	/* A minute at the least, for short max_age. */
	f = facts("1", now - 59, 100, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", now - 60, 100, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 1, 0);
	/* Not after a recent failure. */
	f = facts("1", now - 86400, 31557600, STS_TXT_ID, "1", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 5;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	/* Not for a copy fetched "in the future" (the clock was set back). */
	f = facts("1", now + 3600, 86400, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	/* Not without the TXT record. */
	f = facts("1", now - 86400, 31557600, STS_TXT_NONE, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_MISSING_CACHE, 1, 0, 0);
}

static void
decide_pending(void)
{
	struct sts_facts f;
	struct sts_decision d;
	time_t now = T0 + 1000;

	f = facts("1", T0, 86400, STS_TXT_ID, "2", now);
	sts_decide_pending(&f, now, 1, &d);
	CHECK_INT(d.step, STS_STEP_ANSWER);
	CHECK_STR(sts_source_name(d.source, 0), "fetch-pending");
	CHECK_INT(d.use_cache, 1);
	sts_decide_pending(&f, T0 + 86400, 0, &d);
	CHECK_STR(sts_source_name(d.source, 0), "txt-pending");
	CHECK_INT(d.use_cache, 0);
	f = facts(NULL, 0, 0, STS_TXT_UNKNOWN, NULL, 0);
	sts_decide_pending(&f, now, 0, &d);
	CHECK_INT(d.use_cache, 0);
}

static void
source_names(void)
{
	int i;

	CHECK_STR(sts_source_name(STS_SRC_CACHE, 0), "cache");
	CHECK_STR(sts_source_name(STS_SRC_CACHE, 1), "cache-mode-none");
	CHECK_STR(sts_source_name(STS_SRC_FETCHED, 1), "fetched-mode-none");
	CHECK_STR(sts_source_name(STS_SRC_TXT_MISSING_CACHE, 0),
	    "txt-missing-cache-valid");
	CHECK_STR(sts_source_name(STS_SRC_FETCH_PENDING, 0), "fetch-pending");
	CHECK_STR(sts_source_name(STS_NSOURCES, 0), "unknown");
	for (i = 0; i < STS_NSOURCES; i++) {
		const char *n = sts_source_name((enum sts_source)i, 0);

		CHECK(n != NULL && n[0] != '\0' && strchr(n, ' ') == NULL);
	}
}

/* ---- fetch outcomes ---- */

static enum sts_outcome
outcome(enum fetch_result res, unsigned status, const char *body,
    const char *error, const char *ctype, struct mtasts_policy *p)
{
	struct fetch_response rs;

	memset(&rs, 0, sizeof(rs));
	rs.result = res;
	rs.status = status;
	rs.body = (unsigned char *)(body != NULL ? xstrdup(body) : NULL);
	rs.body_len = body != NULL ? strlen(body) : 0;
	rs.error = error != NULL ? xstrdup(error) : NULL;
	rs.content_type = ctype != NULL ? xstrdup(ctype) : NULL;
	err[0] = '\0';
	{
		enum sts_outcome o = sts_fetch_outcome(&rs, p, err,
		    sizeof(err));

		fetchproto_response_free(&rs);
		return o;
	}
}

static void
fetch_outcomes(void)
{
	struct mtasts_policy p;

	CHECK_INT(outcome(FETCH_OK, 200, "version: STSv1\r\nmode: enforce\r\n"
	    "mx: mx.a.test\r\nmax_age: 86400\r\n", NULL, "text/plain", &p),
	    STS_OUTCOME_OK);
	CHECK_INT(p.mode, MTASTS_ENFORCE);
	CHECK_INT(p.nmx, 1);
	mtasts_policy_free(&p);
	CHECK_INT(outcome(FETCH_OK, 200, "version: STSv1\nmode: none\n"
	    "max_age: 9999999999\n", NULL, "text/plain", &p), STS_OUTCOME_OK);
	CHECK_INT(p.max_age, MTASTS_MAX_AGE_MAX);
	mtasts_policy_free(&p);

	CHECK_INT(outcome(FETCH_OK, 200, "version: STSv2\nmode: enforce\n"
	    "mx: a\nmax_age: 1\n", NULL, "text/plain", &p), STS_OUTCOME_INVALID);
	CHECK(strncmp(err, "sts-policy-invalid: ", 20) == 0);
	CHECK_INT(p.nmx, 0);
	/* F-05: an enforce policy without mx is invalid, not "enforce nothing". */
	CHECK_INT(outcome(FETCH_OK, 200, "version: STSv1\nmode: enforce\n"
	    "max_age: 1\n", NULL, "text/plain", &p), STS_OUTCOME_INVALID);
	CHECK_INT(outcome(FETCH_OK, 200, NULL, NULL, "text/plain", &p),
	    STS_OUTCOME_INVALID);

	CHECK_INT(outcome(FETCH_TLS_ERROR, 0, NULL, "certificate has expired",
	    NULL, &p), STS_OUTCOME_FAILED);
	CHECK_STR(err, "sts-webpki-invalid: certificate has expired");
	CHECK_INT(outcome(FETCH_HTTP_STATUS, 404, NULL, NULL, NULL, &p),
	    STS_OUTCOME_FAILED);
	CHECK_STR(err, "sts-policy-fetch-error: HTTP status 404");
	CHECK_INT(outcome(FETCH_CONTENT_TYPE, 200, NULL, "x", "text/html", &p),
	    STS_OUTCOME_FAILED);
	CHECK_STR(err, "sts-policy-fetch-error: Content-Type \"text/html\" is "
	    "not text/plain");
	CHECK_INT(outcome(FETCH_REDIRECT, 301, NULL, "to https://evil/", NULL,
	    &p), STS_OUTCOME_FAILED);
	CHECK(strstr(err, "sts-policy-fetch-error: redirect") == err);
	/* F-12: a 304 is an error (we never ask conditionally). */
	CHECK_INT(outcome(FETCH_NOT_MODIFIED, 304, NULL, NULL, NULL, &p),
	    STS_OUTCOME_FAILED);
	CHECK(strncmp(err, "sts-policy-fetch-error: ", 24) == 0);
	CHECK_INT(outcome(FETCH_TIMEOUT, 0, NULL, "Operation timed out", NULL,
	    &p), STS_OUTCOME_FAILED);
	CHECK_STR(err, "sts-policy-fetch-error: timeout: Operation timed out");
	CHECK_INT(outcome(FETCH_TOO_LARGE, 200, NULL, NULL, NULL, &p),
	    STS_OUTCOME_FAILED);
	CHECK(strstr(err, "too-large") != NULL);
	CHECK_STR(sts_outcome_name(STS_OUTCOME_OK), "ok");
	CHECK_STR(sts_outcome_name(STS_OUTCOME_FAILED), "failed");
	CHECK_STR(sts_outcome_name(STS_OUTCOME_INVALID), "invalid");
}

/* The eviction order, as a table. */
static void
evict_order(void)
{
	static const struct {
		struct sts_evict_facts a, b;
		int first;
	} t[] = {
		/* Rank first: no policy, none, testing, enforce. */
		{ { 0, MTASTS_NONE, 100 }, { 1, MTASTS_NONE, 1 }, 1 },
		{ { 1, MTASTS_NONE, 100 }, { 1, MTASTS_TESTING, 1 }, 1 },
		{ { 1, MTASTS_TESTING, 100 }, { 1, MTASTS_ENFORCE, 1 }, 1 },
		{ { 1, MTASTS_ENFORCE, 1 }, { 0, MTASTS_NONE, 100 }, 0 },
		{ { 1, MTASTS_ENFORCE, 1 }, { 1, MTASTS_TESTING, 100 }, 0 },
		{ { 0, MTASTS_ENFORCE, 100 }, { 1, MTASTS_NONE, 1 }, 1 },
		/* Within a rank, the least recently used. */
		{ { 1, MTASTS_ENFORCE, 1 }, { 1, MTASTS_ENFORCE, 2 }, 1 },
		{ { 1, MTASTS_ENFORCE, 2 }, { 1, MTASTS_ENFORCE, 1 }, 0 },
		{ { 0, MTASTS_NONE, 5 }, { 0, MTASTS_NONE, 5 }, 0 },
		{ { 1, MTASTS_TESTING, 5 }, { 1, MTASTS_TESTING, 6 }, 1 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (sts_evict_first(&t[i].a, &t[i].b) != t[i].first) {
			fprintf(stderr, "row %zu\n", i);
			CHECK(!"sts_evict_first");
		}
}

int
main(void)
{
	RUN(domains);
	RUN(file_round_trip);
	RUN(file_round_trip_many_mx);
	RUN(file_refused_by_format);
	RUN(file_corrupt);
	RUN(decide_txt_needed);
	RUN(decide_ids);
	RUN(decide_no_record);
	RUN(decide_failures);
	RUN(decide_refresh);
	RUN(decide_background);
	RUN(decide_pending);
	RUN(source_names);
	RUN(fetch_outcomes);
	RUN(evict_order);
	return T_DONE();
}
