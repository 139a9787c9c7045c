/*
 * policy/tlsrpt.c: the "_smtp._tls" TXT parser, the bounded counts and
 * their journal records, and the report JSON, compared byte for byte with
 * the text RFC 8460 section 4.4 describes.
 */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "tlsrpt.h"

static enum tlsrpt_txt_status
txt1(const char *rec, struct tlsrpt_txt *out, char *err, size_t errlen)
{
	const char *recs[1] = { rec };
	size_t lens[1] = { strlen(rec) };

	return tlsrpt_parse_txt(recs, lens, 1, out, err, errlen);
}

static void
test_txt_valid(void)
{
	struct tlsrpt_txt t;
	char err[256];

	CHECK_INT(txt1("v=TLSRPTv1; rua=mailto:tlsrpt@example.com", &t, err,
	    sizeof(err)), TLSRPT_TXT_OK);
	CHECK_INT(t.nrua, 1);
	CHECK_STR(t.rua[0], "mailto:tlsrpt@example.com");
	CHECK_INT(txt1("v=TLSRPTv1;rua=mailto:a@example.com,"
	    "https://reports.example.com/v1/tlsrpt;", &t, err, sizeof(err)),
	    TLSRPT_TXT_OK);
	CHECK_INT(t.nrua, 2);
	CHECK_STR(t.rua[1], "https://reports.example.com/v1/tlsrpt");
	/* White space around ";" and ","; extensions ignored. */
	CHECK_INT(txt1("v=TLSRPTv1 ;\trua=mailto:a@example.com , "
	    "https://r.example.com/ ; ext.x-1=val ;", &t, err, sizeof(err)),
	    TLSRPT_TXT_OK);
	CHECK_INT(t.nrua, 2);
	CHECK_STR(t.rua[0], "mailto:a@example.com");
	/* Another scheme is skipped beside a usable one. */
	CHECK_INT(txt1("v=TLSRPTv1; rua=ftp://x.example.com/r,"
	    "MAILTO:b@example.com", &t, err, sizeof(err)), TLSRPT_TXT_OK);
	CHECK_INT(t.nrua, 1);
	CHECK_INT(t.nskipped, 1);
	CHECK_STR(t.rua[0], "MAILTO:b@example.com");
}

static void
test_txt_invalid(void)
{
	struct tlsrpt_txt t;
	char err[256];
	const char *two[2] = { "v=TLSRPTv1; rua=mailto:a@example.com",
		"v=TLSRPTv1; rua=mailto:b@example.com" };
	size_t lens[2] = { strlen(two[0]), strlen(two[1]) };
	const char *mixed[2] = { "v=spf1 -all",
		"v=TLSRPTv1; rua=mailto:a@example.com" };
	size_t mlens[2] = { strlen(mixed[0]), strlen(mixed[1]) };

	CHECK_INT(tlsrpt_parse_txt(two, lens, 2, &t, err, sizeof(err)),
	    TLSRPT_TXT_INVALID);
	CHECK_STR(err, "several v=TLSRPTv1 records");
	CHECK_INT(tlsrpt_parse_txt(mixed, mlens, 2, &t, err, sizeof(err)),
	    TLSRPT_TXT_OK);
	CHECK_INT(tlsrpt_parse_txt(mixed, mlens, 1, &t, err, sizeof(err)),
	    TLSRPT_TXT_NONE);
	CHECK_INT(tlsrpt_parse_txt(NULL, NULL, 0, &t, err, sizeof(err)),
	    TLSRPT_TXT_NONE);
	/* The version word is case-sensitive and whole. */
	CHECK_INT(txt1("v=tlsrptv1; rua=mailto:a@example.com", &t, err,
	    sizeof(err)), TLSRPT_TXT_NONE);
	CHECK_INT(txt1("v=TLSRPTv10; rua=mailto:a@example.com", &t, err,
	    sizeof(err)), TLSRPT_TXT_NONE);
	CHECK_INT(txt1("v=TLSRPTv1", &t, err, sizeof(err)),
	    TLSRPT_TXT_INVALID);
	CHECK_STR(err, "no rua field");
	CHECK_INT(txt1("v=TLSRPTv1;", &t, err, sizeof(err)),
	    TLSRPT_TXT_INVALID);
	CHECK_INT(txt1("v=TLSRPTv1; rua=mailto:a@example.com; "
	    "rua=mailto:b@example.com", &t, err, sizeof(err)),
	    TLSRPT_TXT_INVALID);
	CHECK_STR(err, "rua more than once");
	CHECK_INT(txt1("v=TLSRPTv1; rua=ftp://x.example.com/", &t, err,
	    sizeof(err)), TLSRPT_TXT_INVALID);
	CHECK_STR(err, "rua names no mailto: or https: URI");
	CHECK_INT(txt1("v=TLSRPTv1; rua=mailto:nobody", &t, err, sizeof(err)),
	    TLSRPT_TXT_INVALID);
	CHECK_INT(txt1("v=TLSRPTv1; rua=https:///path", &t, err, sizeof(err)),
	    TLSRPT_TXT_INVALID);
	CHECK_INT(txt1("v=TLSRPTv1; rua=mailto:a@example.com,", &t, err,
	    sizeof(err)), TLSRPT_TXT_INVALID);
	CHECK_STR(err, "rua: an empty URI");
	CHECK_INT(txt1("v=TLSRPTv1; rua=mailto:a@example.com mailto:b@x.com",
	    &t, err, sizeof(err)), TLSRPT_TXT_INVALID);
	CHECK_INT(txt1("v=TLSRPTv1 rua=mailto:a@example.com", &t, err,
	    sizeof(err)), TLSRPT_TXT_INVALID);
	CHECK_INT(txt1("v=TLSRPTv1; rua=mailto:a@example.com; x=", &t, err,
	    sizeof(err)), TLSRPT_TXT_INVALID);
	CHECK_INT(txt1("v=TLSRPTv1; rua=mailto:a@example.com; _x=1", &t, err,
	    sizeof(err)), TLSRPT_TXT_INVALID);
	CHECK_INT(txt1("v=TLSRPTv1; rua=mailto:a@example.com; novalue", &t,
	    err, sizeof(err)), TLSRPT_TXT_INVALID);
	CHECK_INT(t.nrua, 0);
}

static void
test_policy_strings(void)
{
	const char *mx[2] = { "mx1.example.com", "*.example.net" };
	unsigned char rd[3 + 4] = { 3, 1, 1, 0xab, 0x12, 0xcd, 0x34 };
	unsigned char rd2[3 + 2] = { 2, 0, 1, 0x00, 0xff };
	struct dane_tlsa_set set;
	char buf[TLSRPT_POLICY_MAX + 1];

	tlsrpt_policy_sts(buf, sizeof(buf), "enforce", 86400, mx, 2);
	CHECK_STR(buf, "version: STSv1\nmode: enforce\nmx: mx1.example.com\n"
	    "mx: *.example.net\nmax_age: 86400\n");
	/* Lines that do not fit are left out whole. */
	tlsrpt_policy_sts(buf, 40, "testing", 60, mx, 2);
	CHECK_STR(buf, "version: STSv1\nmode: testing\n");
	memset(&set, 0, sizeof(set));
	CHECK_INT(dane_tlsa_set_add(&set, rd, sizeof(rd)), 0);
	CHECK_INT(dane_tlsa_set_add(&set, rd2, sizeof(rd2)), 0);
	tlsrpt_policy_tlsa(buf, sizeof(buf), &set);
	CHECK_STR(buf, "3 1 1 ab12cd34\n2 0 1 00ff\n");
	dane_tlsa_set_clear(&set);
	tlsrpt_policy_tlsa(buf, sizeof(buf), NULL);
	CHECK_STR(buf, "");
}

static void
test_days(void)
{
	char d[16];
	long day;

	CHECK_INT(tlsrpt_day_of(0), 0);
	CHECK_INT(tlsrpt_day_of(86399), 0);
	CHECK_INT(tlsrpt_day_of(86400), 1);
	CHECK_INT(tlsrpt_day_parse("2024-02-29", &day), 0);
	tlsrpt_day_text(day, d, sizeof(d));
	CHECK_STR(d, "2024-02-29");
	CHECK_INT(day, tlsrpt_day_of(1709164800)); /* 2024-02-29T00:00:00Z */
	CHECK_INT(tlsrpt_day_parse("2023-02-29", &day), -1);
	CHECK_INT(tlsrpt_day_parse("2023-13-01", &day), -1);
	CHECK_INT(tlsrpt_day_parse("2023-1-01", &day), -1);
	CHECK_INT(tlsrpt_day_parse("2023-01-01x", &day), -1);
	CHECK_INT(tlsrpt_day_parse("1970-01-01", &day), 0);
	CHECK_INT(day, 0);
}

#define STS_POLICY "version: STSv1\nmode: enforce\nmx: *.example.com\n" \
	"max_age: 86400\n"

static struct tlsrpt_key
sts_key(const char *result, const char *mxh, const char *rip)
{
	struct tlsrpt_key k = { "example.com", TLSRPT_POLICY_STS, STS_POLICY,
		"*.example.com\n", result, "192.0.2.1", mxh, rip };

	return k;
}

static void
test_counting(void)
{
	struct tlsrpt_store *s = tlsrpt_store_new(3, 1 << 20);
	struct tlsrpt_key k = sts_key(NULL, "mx1.example.com", "198.51.100.1");
	struct tlsrpt_entry *e, *e2;
	struct tlsrpt_day *d;
	const char **doms;
	long day = 19844;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK_INT(tlsrpt_store_add(s, day, &k, 1, &e), 0);
	CHECK(e != NULL && e->count == 1 && e->dirty);
	/* A success's addresses do not split it: one entry per policy. */
	k.mx_host = "mx2.example.com";
	CHECK_INT(tlsrpt_store_add(s, day, &k, 2, &e2), 0);
	CHECK(e2 == e);
	CHECK_INT(e->count, 3);
	k = sts_key("certificate-expired", "mx1.example.com", "198.51.100.1");
	CHECK_INT(tlsrpt_store_add(s, day, &k, 1, &e), 0);
	CHECK(e != e2);
	k.receiving_ip = "198.51.100.2";
	CHECK_INT(tlsrpt_store_add(s, day, &k, 1, &e), 0);
	/* Three entries: a fourth distinct one overflows, old ones count. */
	k.receiving_ip = "198.51.100.3";
	CHECK_INT(tlsrpt_store_add(s, day, &k, 5, &e), 1);
	CHECK(e == NULL);
	k.receiving_ip = "198.51.100.2";
	CHECK_INT(tlsrpt_store_add(s, day, &k, 1, &e), 0);
	CHECK(e != NULL && e->count == 2);
	d = tlsrpt_store_day(s, day);
	CHECK(d != NULL && d->nentries == 3 && d->overflow == 5 &&
	    d->overflow_dirty);
	/* Another day has room of its own. */
	CHECK_INT(tlsrpt_store_add(s, day + 1, &k, 1, &e), 0);
	/* Invalid keys: control bytes, an empty domain, "success". */
	k.mx_host = "mx1.example.com\r\n";
	CHECK_INT(tlsrpt_store_add(s, day, &k, 1, &e), -1);
	k.mx_host = "mx1.example.com";
	k.domain = "";
	CHECK_INT(tlsrpt_store_add(s, day, &k, 1, &e), -1);
	k.domain = "example.com";
	k.result = "success";
	CHECK_INT(tlsrpt_store_add(s, day, &k, 1, &e), -1);
	k.result = "validation-failure";
	k.policy = "version: STSv1\n\nmode: enforce\n";
	CHECK_INT(tlsrpt_store_add(s, day, &k, 1, &e), -1);
	k.policy = "version: STSv1";
	CHECK_INT(tlsrpt_store_add(s, day, &k, 1, &e), -1);
	k = sts_key(NULL, "", "");
	k.domain = "b.example";
	CHECK_INT(tlsrpt_store_add(s, day + 1, &k, 1, &e), 0);
	CHECK_INT(tlsrpt_store_domains(s, day + 1, &doms), 2);
	if (doms != NULL) {
		CHECK_STR(doms[0], "b.example");
		CHECK_STR(doms[1], "example.com");
	}
	free(doms);
	tlsrpt_store_drop(s, day);
	CHECK(tlsrpt_store_day(s, day) == NULL);
	CHECK(tlsrpt_store_day(s, day + 1) != NULL);
	tlsrpt_store_free(s);
}

/*
 * The days a report run covers: complete (never today, nor a day after
 * it), kept, with entries, oldest first; yesterday only when its moment
 * has come.
 */
static void
test_report_days(void)
{
	struct tlsrpt_store *s = tlsrpt_store_new(10, 1 << 20);
	struct tlsrpt_key k = sts_key(NULL, "mx1.example.com", "198.51.100.1");
	struct tlsrpt_day *d, od;
	char key[TLSRPT_KEY_LEN], err[256], *v;
	long today = 19844, days[TLSRPT_DAYS_MAX];
	size_t len;
	long held[] = { today - 2, today, today - 4, today - 1, today - 3,
		today + 1 };
	size_t i;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK_INT(tlsrpt_store_report_days(s, today, 3, 1, days,
	    TLSRPT_DAYS_MAX), 0);
	/* Held in no order, as the journal loads them. */
	for (i = 0; i < sizeof(held) / sizeof(held[0]); i++)
		CHECK_INT(tlsrpt_store_add(s, held[i], &k, 1, NULL), 0);
	CHECK_INT(tlsrpt_store_report_days(s, today, 3, 1, days,
	    TLSRPT_DAYS_MAX), 3);
	CHECK_INT(days[0], today - 3);
	CHECK_INT(days[1], today - 2);
	CHECK_INT(days[2], today - 1);
	/* Before yesterday's moment: the days before it only. */
	CHECK_INT(tlsrpt_store_report_days(s, today, 3, 0, days,
	    TLSRPT_DAYS_MAX), 2);
	CHECK_INT(days[0], today - 3);
	CHECK_INT(days[1], today - 2);
	/* Bounded by max, and by keep. */
	CHECK_INT(tlsrpt_store_report_days(s, today, 3, 1, days, 1), 1);
	CHECK_INT(tlsrpt_store_report_days(s, today, 1, 1, days,
	    TLSRPT_DAYS_MAX), 1);
	CHECK_INT(days[0], today - 1);
	/* A day with nothing but overflow names no domain: not due. */
	tlsrpt_store_drop(s, today - 2);
	memset(&od, 0, sizeof(od));
	od.day = today - 2;
	od.overflow = 5;
	tlsrpt_overflow_key(od.day, key, sizeof(key));
	CHECK((v = tlsrpt_overflow_format(&od, &len)) != NULL);
	CHECK_INT(tlsrpt_record_load(s, key, v, len, err, sizeof(err)), 0);
	free(v);
	d = tlsrpt_store_day(s, today - 2);
	CHECK(d != NULL && d->nentries == 0 && d->overflow == 5);
	CHECK_INT(tlsrpt_store_report_days(s, today, 3, 1, days,
	    TLSRPT_DAYS_MAX), 2);
	CHECK_INT(days[0], today - 3);
	CHECK_INT(days[1], today - 1);
	tlsrpt_store_free(s);
}

/* The byte budget bounds a day as the entry count does. */
static void
test_byte_bound(void)
{
	struct tlsrpt_store *s = tlsrpt_store_new(1000, 1000);
	struct tlsrpt_key k = sts_key("validation-failure", "mx.example.com",
	    "");
	char ip[32];
	int i, ok = 0, over = 0, r;

	for (i = 0; i < 100 && s != NULL; i++) {
		snprintf(ip, sizeof(ip), "192.0.2.%d", i);
		k.receiving_ip = ip;
		r = tlsrpt_store_add(s, 7, &k, 1, NULL);
		ok += r == 0;
		over += r == 1;
	}
	CHECK(ok > 0 && ok < 10);
	CHECK_INT(ok + over, 100);
	if (s != NULL)
		CHECK(tlsrpt_store_day(s, 7)->bytes <= 1000);
	tlsrpt_store_free(s);
}

static const struct tlsrpt_report_info info = { "Company \"X\"",
	"tls-reports@sender.example", "mta.sender.example" };

/* 2016-04-01 as the RFC's example, days since the epoch. */
#define DAY 16892

static struct tlsrpt_store *
example_store(void)
{
	struct tlsrpt_store *s = tlsrpt_store_new(100, 1 << 20);
	struct tlsrpt_key k = sts_key(NULL, "", "");
	struct tlsrpt_key none = { "example.com", TLSRPT_POLICY_NONE, "", "",
		"starttls-not-supported", "192.0.2.1", "mx9.example.com",
		"198.51.100.9" };
	struct tlsrpt_key other = sts_key(NULL, "", "");

	if (s == NULL)
		return NULL;
	other.domain = "other.example";
	tlsrpt_store_add(s, DAY, &k, 5, NULL);
	k = sts_key("certificate-expired", "mx2.example.com", "198.51.100.2");
	tlsrpt_store_add(s, DAY, &k, 2, NULL);
	k = sts_key("certificate-expired", "mx1.example.com", "198.51.100.1");
	tlsrpt_store_add(s, DAY, &k, 1, NULL);
	tlsrpt_store_add(s, DAY, &none, 3, NULL);
	tlsrpt_store_add(s, DAY, &other, 1, NULL);
	tlsrpt_store_add(s, DAY + 1, &k, 1, NULL);
	return s;
}

static const char example_json[] =
    "{\"organization-name\":\"Company \\\"X\\\"\","
    "\"date-range\":{\"start-datetime\":\"2016-04-01T00:00:00Z\","
    "\"end-datetime\":\"2016-04-01T23:59:59Z\"},"
    "\"contact-info\":\"tls-reports@sender.example\","
    "\"report-id\":\"2016-04-01T00:00:00Z+example.com@mta.sender.example\","
    "\"policies\":["
    "{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":"
    "[\"version: STSv1\",\"mode: enforce\",\"mx: *.example.com\","
    "\"max_age: 86400\"],\"policy-domain\":\"example.com\","
    "\"mx-host\":[\"*.example.com\"]},"
    "\"summary\":{\"total-successful-session-count\":5,"
    "\"total-failure-session-count\":3},"
    "\"failure-details\":["
    "{\"result-type\":\"certificate-expired\",\"sending-mta-ip\":"
    "\"192.0.2.1\",\"receiving-mx-hostname\":\"mx1.example.com\","
    "\"receiving-ip\":\"198.51.100.1\",\"failed-session-count\":1},"
    "{\"result-type\":\"certificate-expired\",\"sending-mta-ip\":"
    "\"192.0.2.1\",\"receiving-mx-hostname\":\"mx2.example.com\","
    "\"receiving-ip\":\"198.51.100.2\",\"failed-session-count\":2}]},"
    "{\"policy\":{\"policy-type\":\"no-policy-found\","
    "\"policy-domain\":\"example.com\"},"
    "\"summary\":{\"total-successful-session-count\":0,"
    "\"total-failure-session-count\":3},"
    "\"failure-details\":["
    "{\"result-type\":\"starttls-not-supported\",\"sending-mta-ip\":"
    "\"192.0.2.1\",\"receiving-mx-hostname\":\"mx9.example.com\","
    "\"receiving-ip\":\"198.51.100.9\",\"failed-session-count\":3}]}]}";

static void
test_json(void)
{
	struct tlsrpt_store *s = example_store();
	char *j;
	size_t len;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	j = tlsrpt_report_json(s, DAY, "example.com", &info, &len);
	CHECK_STR(j, example_json);
	CHECK_INT(j ? strlen(j) : 0, len);
	free(j);
	j = tlsrpt_report_json(s, DAY, "other.example", &info, &len);
	CHECK(j != NULL && strstr(j, "\"failure-details\"") == NULL &&
	    strstr(j, "\"total-successful-session-count\":1,") != NULL);
	free(j);
	CHECK(tlsrpt_report_json(s, DAY, "absent.example", &info, &len) ==
	    NULL);
	CHECK(tlsrpt_report_json(s, DAY + 5, "example.com", &info, &len) ==
	    NULL);
	tlsrpt_store_free(s);
}

static void
test_json_escapes(void)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return;
	tlsrpt_json_string(f, "a\"b\\c\nd\x01\x7f" "\xc3\xa9" "\xff"
	    "\xed\xa0\x80" "\xf0\x9f\x98\x80");
	fclose(f);
	CHECK_STR(buf, "\"a\\\"b\\\\c\\u000ad\\u0001\x7f\xc3\xa9\\ufffd"
	    "\\ufffd\\ufffd\\ufffd\xf0\x9f\x98\x80\"");
	free(buf);
}

struct collected {
	char key[8][TLSRPT_KEY_LEN];
	char *val[8];
	size_t len[8];
	int n;
};

/* Every dirty entry and overflow count as the journal would get it. */
static void
collect(struct tlsrpt_store *s, long day, struct collected *c)
{
	struct tlsrpt_day *d = tlsrpt_store_day(s, day);
	struct tlsrpt_entry *e;

	for (e = d ? d->first : NULL; e != NULL && c->n < 7; e = e->dnext) {
		tlsrpt_entry_key(e, c->key[c->n], TLSRPT_KEY_LEN);
		c->val[c->n] = tlsrpt_entry_format(e, &c->len[c->n]);
		c->n++;
	}
	if (d != NULL && d->overflow > 0) {
		tlsrpt_overflow_key(day, c->key[c->n], TLSRPT_KEY_LEN);
		c->val[c->n] = tlsrpt_overflow_format(d, &c->len[c->n]);
		c->n++;
	}
}

static void
test_records(void)
{
	struct tlsrpt_store *s = example_store(), *t;
	struct collected c;
	char err[256], *j, *bad;
	size_t len, i;
	int r;

	memset(&c, 0, sizeof(c));
	if (s == NULL || (t = tlsrpt_store_new(100, 1 << 20)) == NULL)
		return;
	tlsrpt_store_day(s, DAY)->overflow = 4;
	collect(s, DAY, &c);
	CHECK_INT(c.n, 6);
	for (r = 0; r < c.n; r++)
		CHECK_INT(tlsrpt_record_load(t, c.key[r], c.val[r], c.len[r],
		    err, sizeof(err)), 0);
	j = tlsrpt_report_json(t, DAY, "example.com", &info, &len);
	CHECK_STR(j, example_json);
	free(j);
	CHECK_INT(tlsrpt_store_day(t, DAY)->overflow, 4);
	CHECK(tlsrpt_store_day(t, DAY)->first->dirty == 0);
	/* Loading again replaces the counts, it does not add them up. */
	CHECK_INT(tlsrpt_record_load(t, c.key[0], c.val[0], c.len[0], err,
	    sizeof(err)), 0);
	j = tlsrpt_report_json(t, DAY, "example.com", &info, &len);
	CHECK_STR(j, example_json);
	free(j);
	/* The text of one record. */
	for (r = 0; r < c.n; r++)
		if (strstr(c.val[r], "mx1.example.com") != NULL)
			CHECK_STR(c.val[r], "mxtls-tlsrpt 1\nday 2016-04-01\n"
			    "domain example.com\ntype sts\n"
			    "result certificate-expired\n"
			    "sending-ip 192.0.2.1\nmx-host mx1.example.com\n"
			    "receiving-ip 198.51.100.1\ncount 1\n"
			    "policy version: STSv1\npolicy mode: enforce\n"
			    "policy mx: *.example.com\npolicy max_age: 86400\n"
			    "mx *.example.com\n");
	/* Damaged records are refused: a wrong key, a cut or changed text. */
	CHECK_INT(tlsrpt_record_load(t, "e-2016-04-01-0000000000000000",
	    c.val[0], c.len[0], err, sizeof(err)), -1);
	CHECK_INT(tlsrpt_record_load(t, c.key[0], c.val[0], c.len[0] - 1, err,
	    sizeof(err)), -1);
	bad = strdup(c.val[0]);
	if (bad != NULL && (j = strstr(bad, "count ")) != NULL) {
		j[6] = 'x';
		CHECK_INT(tlsrpt_record_load(t, c.key[0], bad, c.len[0], err,
		    sizeof(err)), -1);
	}
	free(bad);
	CHECK_INT(tlsrpt_record_load(t, "e-x", "mxtls-tlsrpt 1\nday 2016-04-01\n",
	    30, err, sizeof(err)), -1);
	bad = "mxtls-tlsrpt-overflow 1\nday 2016-04-01\ncount 3\n";
	CHECK_INT(tlsrpt_record_load(t, "o-2016-04-01", bad, strlen(bad), err,
	    sizeof(err)), 0);
	CHECK_INT(tlsrpt_record_load(t, "o-2016-04-02", bad, strlen(bad), err,
	    sizeof(err)), -1);
	for (i = 0; i < (size_t)c.n; i++)
		free(c.val[i]);
	tlsrpt_store_free(s);
	tlsrpt_store_free(t);
}

/* The record of a report sent: round trip, strictness. */
static void
sent_records(void)
{
	char key[TLSRPT_KEY_LEN], err[320], *v;
	uint64_t h;
	size_t len;
	long day, d2;

	CHECK_INT(tlsrpt_day_parse("2024-05-01", &day), 0);
	tlsrpt_sent_key(day, "example.com", "https://r.example.com/v1", key,
	    sizeof(key));
	CHECK(strncmp(key, "s-2024-05-01-", 13) == 0 && strlen(key) == 29);
	CHECK((v = tlsrpt_sent_format(day, "example.com",
	    "https://r.example.com/v1", &len)) != NULL);
	CHECK_STR(v, "mxtls-tlsrpt-sent 1\nday 2024-05-01\n"
	    "domain example.com\nrua https://r.example.com/v1\n");
	CHECK_INT(tlsrpt_sent_load(key, v, len, &d2, &h, err, sizeof(err)), 0);
	CHECK_INT(d2, day);
	CHECK(h == tlsrpt_sent_hash(day, "example.com",
	    "https://r.example.com/v1"));
	/* Another rua, day or domain is another key. */
	CHECK(h != tlsrpt_sent_hash(day, "example.com", "mailto:a@b"));
	CHECK(h != tlsrpt_sent_hash(day + 1, "example.com",
	    "https://r.example.com/v1"));
	key[strlen(key) - 1] ^= 1;
	CHECK_INT(tlsrpt_sent_load(key, v, len, &d2, &h, err, sizeof(err)), -1);
	key[strlen(key) - 1] ^= 1;
	CHECK_INT(tlsrpt_sent_load(key, v, len - 1, &d2, &h, err,
	    sizeof(err)), -1);
	v[len - 2] = '\r';
	CHECK_INT(tlsrpt_sent_load(key, v, len, &d2, &h, err, sizeof(err)), -1);
	free(v);
}

int
main(void)
{
	RUN(test_txt_valid);
	RUN(test_txt_invalid);
	RUN(test_policy_strings);
	RUN(test_days);
	RUN(test_counting);
	RUN(test_byte_bound);
	RUN(test_report_days);
	RUN(test_json);
	RUN(test_json_escapes);
	RUN(test_records);
	RUN(sent_records);
	return T_DONE();
}
