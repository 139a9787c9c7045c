/*
 * Unit tests for proxy/dsn.c: the DSN parameters of MAIL and RCPT
 * (RFC 3461), the header section kept from a streamed message (over
 * every split of the input), the "relayed" report (RFC 3464) and its
 * SMTP form, and one transaction's record from MAIL to the final dot.
 */
#include <stdlib.h>

#include "dsn.h"
#include "t.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
test_xtext(void)
{
	static const struct {
		const char *in;
		const char *want; /* NULL: malformed */
	} t[] = {
		{ "abc", "abc" },
		{ "a+2Bb", "a+b" },
		{ "a+3db", "a=b" },	/* lower-case hex tolerated */
		{ "+20", " " },
		{ "a+2", NULL },	/* cut short */
		{ "a+", NULL },
		{ "a+G0", NULL },
		{ "a b", NULL },	/* a space is never xtext */
		{ "a\x01" "b", NULL },
		{ "\xc3\xa9", NULL },	/* 8-bit is never xtext */
		{ "", "" },
	};
	char out[16];
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		int r = dsn_xtext_decode(t[i].in, strlen(t[i].in), out,
		    sizeof(out));

		if (t[i].want == NULL)
			CHECK_INT(r, -1);
		else {
			CHECK_INT(r, 0);
			CHECK_STR(out, t[i].want);
		}
	}
	/* Exactly what fits. */
	CHECK_INT(dsn_xtext_decode("abc", 3, out, 4), 0);
	CHECK_INT(dsn_xtext_decode("abcd", 4, out, 4), -1);
}

static void
test_parse_mail(void)
{
	static const struct {
		const char *params;
		const char *err; /* prefix of the refusal, or NULL */
		enum dsn_ret ret;
		const char *envid;
	} t[] = {
		{ "", NULL, DSN_RET_NONE, "" },
		{ "SIZE=100 BODY=8BITMIME", NULL, DSN_RET_NONE, "" },
		{ "RET=FULL", NULL, DSN_RET_FULL, "" },
		{ "ret=hdrs", NULL, DSN_RET_HDRS, "" },
		{ "RET=ALL", "501 5.5.4 Bad RET", DSN_RET_NONE, "" },
		{ "RET=FULL RET=HDRS", "501 5.5.4 Duplicate RET",
		    DSN_RET_NONE, "" },
		{ "ENVID=QQ314159", NULL, DSN_RET_NONE, "QQ314159" },
		{ "ENVID=a+2Bb+20c RET=HDRS", NULL, DSN_RET_HDRS, "a+b c" },
		/* A CR LF would end a field of the report: refused. */
		{ "ENVID=x+0D+0ABcc:+20y", "501 5.5.4 Bad ENVID",
		    DSN_RET_NONE, "" },
		{ "ENVID=", "501 5.5.4 Bad ENVID", DSN_RET_NONE, "" },
		{ "ENVID=a ENVID=b", "501 5.5.4 Duplicate ENVID",
		    DSN_RET_NONE, "" },
		{ "ENVID=a+", "501 5.5.4 Bad ENVID", DSN_RET_NONE, "" },
		{ "ENVID=+C3+A9", "501 5.5.4 Bad ENVID", DSN_RET_NONE, "" },
	};
	struct dsn_mail m;
	char big[200];
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		const char *err = dsn_parse_mail(t[i].params, &m);

		if (t[i].err != NULL) {
			CHECK(err != NULL &&
			    strncmp(err, t[i].err, strlen(t[i].err)) == 0);
			if (err == NULL)
				fprintf(stderr, "  accepted: %s\n",
				    t[i].params);
			continue;
		}
		CHECK(err == NULL);
		if (err != NULL) {
			fprintf(stderr, "  %s: %s\n", t[i].params, err);
			continue;
		}
		CHECK_INT(m.ret, t[i].ret);
		CHECK_STR(m.envid, t[i].envid);
	}
	/* 100 characters encoded is the limit (RFC 3461 section 4.4). */
	memcpy(big, "ENVID=", 6);
	memset(big + 6, 'e', 100);
	big[106] = '\0';
	CHECK(dsn_parse_mail(big, &m) == NULL);
	memcpy(big + 106, "e", 2);
	CHECK(dsn_parse_mail(big, &m) != NULL);
}

static void
test_parse_rcpt(void)
{
	static const struct {
		const char *params;
		const char *err;
		unsigned notify;
		const char *orcpt;
	} t[] = {
		{ "", NULL, 0, "" },
		{ "NOTIFY=SUCCESS", NULL, DSN_NOTIFY_SUCCESS, "" },
		{ "notify=success,failure,delay", NULL, DSN_NOTIFY_SUCCESS |
		    DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, "" },
		{ "NOTIFY=NEVER", NULL, DSN_NOTIFY_NEVER, "" },
		{ "NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad NOTIFY", 0, "" },
		{ "NOTIFY=SUCCESS,SUCCESS", "501 5.5.4 Bad NOTIFY", 0, "" },
		{ "NOTIFY=SUCCESS,", "501 5.5.4 Bad NOTIFY", 0, "" },
		{ "NOTIFY=", "501 5.5.4 Bad NOTIFY", 0, "" },
		{ "NOTIFY=ALWAYS", "501 5.5.4 Bad NOTIFY", 0, "" },
		{ "NOTIFY=SUCCESS NOTIFY=FAILURE", "501 5.5.4 Duplicate NOTIFY",
		    0, "" },
		{ "ORCPT=rfc822;a@example.test NOTIFY=SUCCESS", NULL,
		    DSN_NOTIFY_SUCCESS, "rfc822;a@example.test" },
		{ "ORCPT=rfc822;a+2Bb@example.test", NULL, 0,
		    "rfc822;a+b@example.test" },
		/* Not ASCII once decoded: kept as xtext, still one field. */
		{ "ORCPT=utf-8;+C3+A9@example.test", NULL, 0,
		    "utf-8;+C3+A9@example.test" },
		{ "ORCPT=rfc822;a+0D+0AX:y@example.test",
		    "501 5.5.4 Bad ORCPT", 0, "" },
		{ "ORCPT=a@example.test", "501 5.5.4 Bad ORCPT", 0, "" },
		{ "ORCPT=;a@example.test", "501 5.5.4 Bad ORCPT", 0, "" },
		{ "ORCPT=rfc822;", "501 5.5.4 Bad ORCPT", 0, "" },
		{ "ORCPT=rfc/822;a@b", "501 5.5.4 Bad ORCPT", 0, "" },
		{ "ORCPT=rfc822;a@b ORCPT=rfc822;a@b",
		    "501 5.5.4 Duplicate ORCPT", 0, "" },
		{ "FOO=bar", NULL, 0, "" },
	};
	struct dsn_rcpt_params r;
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		const char *err = dsn_parse_rcpt(t[i].params,
		    strlen(t[i].params), &r);

		if (t[i].err != NULL) {
			CHECK(err != NULL &&
			    strncmp(err, t[i].err, strlen(t[i].err)) == 0);
			if (err == NULL || strncmp(err, t[i].err,
			    strlen(t[i].err)) != 0)
				fprintf(stderr, "  %s: %s\n", t[i].params,
				    err ? err : "accepted");
			continue;
		}
		CHECK(err == NULL);
		if (err != NULL) {
			fprintf(stderr, "  %s: %s\n", t[i].params, err);
			continue;
		}
		CHECK_INT(r.notify, t[i].notify);
		CHECK_STR(r.orcpt, t[i].orcpt);
	}
	/* Only params[0..len) counts: the rest of the line is not read. */
	CHECK(dsn_parse_rcpt("NOTIFY=SUCCESS NOTIFY=X", 14, &r) == NULL);
	CHECK_INT(r.notify, DSN_NOTIFY_SUCCESS);
}

/* The header section of in, fed in pieces of the given sizes. */
static void
headers_of(const char *in, size_t len, size_t step, struct dsn_headers *h)
{
	size_t i;

	memset(h, 0, sizeof(*h));
	for (i = 0; i < len; i += step)
		dsn_headers_feed(h, in + i, len - i < step ? len - i : step);
}

static void
test_headers(void)
{
	static const struct {
		const char *in;
		const char *want;
		int done;
	} t[] = {
		{ "A: 1\r\nB: 2\r\n\r\nbody\r\n.\r\n", "A: 1\r\nB: 2\r\n", 1 },
		/* continuation lines belong to the section */
		{ "A: 1\r\n\tmore\r\n\r\nbody\r\n", "A: 1\r\n\tmore\r\n", 1 },
		/* the MTA's dot-stuffing is undone */
		{ "..A: 1\r\nB: .2\r\n\r\n", ".A: 1\r\nB: .2\r\n", 1 },
		/* a message with no body ends at the final dot */
		{ "A: 1\r\n.\r\n", "A: 1\r\n", 1 },
		/* bare LF ends a line, bare CR is a space */
		{ "A: 1\nB: 2\rx\r\n\n", "A: 1\r\nB: 2 x\r\n", 1 },
		{ "A: 1\r\nB: 2", "A: 1\r\nB: 2", 0 },
		{ "\r\nbody\r\n", "", 1 },
		{ "A: \xc3\xa9\r\n\r\n", "A: \xc3\xa9\r\n", 1 },
	};
	struct dsn_headers h;
	size_t i, step;

	for (i = 0; i < NELEM(t); i++)
		for (step = 1; step <= strlen(t[i].in) + 1; step++) {
			headers_of(t[i].in, strlen(t[i].in), step, &h);
			CHECK_INT(h.len, strlen(t[i].want));
			CHECK(h.len == 0 || memcmp(h.buf, t[i].want, h.len) == 0);
			CHECK_INT(h.done, t[i].done);
			CHECK_INT(h.truncated, 0);
			dsn_headers_free(&h);
		}
	headers_of("A: \xc3\xa9\r\n\r\n", 9, 3, &h);
	CHECK_INT(h.eightbit, 1);
	dsn_headers_free(&h);
}

/* Too long a section keeps whole lines only, and says so. */
static void
test_headers_truncated(void)
{
	size_t line = 100, n = DSN_HEADERS_MAX / line + 10, i;
	char *in = malloc(n * line), *p;
	struct dsn_headers h;

	for (i = 0, p = in; i < n; i++, p += line) {
		memset(p, 'x', line - 2);
		memcpy(p, "X-H: ", 5);
		memcpy(p + line - 2, "\r\n", 2);
	}
	headers_of(in, n * line, 4096, &h);
	CHECK_INT(h.truncated, 1);
	CHECK_INT(h.done, 1);
	CHECK_INT(h.len, (DSN_HEADERS_MAX / line) * line);
	CHECK(h.len >= 2 && memcmp(h.buf + h.len - 2, "\r\n", 2) == 0);
	dsn_headers_free(&h);
	free(in);
}

static struct dsn_recipient rcpts[] = {
	{ "a@example.test", "rfc822;A@example.test" },
	{ "b@example.test", NULL },
};

static void
report_init(struct dsn_report *r, struct dsn_mail *m, struct dsn_headers *h)
{
	memset(m, 0, sizeof(*m));
	memset(r, 0, sizeof(*r));
	r->reporting_mta = "mxtls.test";
	r->sender = "s@sender.test";
	r->mail = m;
	r->arrival = 1704067200; /* 2024-01-01 00:00:00 UTC */
	r->now = 1704067261;
	r->remote_mta = "mx.example.test";
	r->reply = "250 2.0.0 Ok: queued as 4711";
	r->rcpt = rcpts;
	r->nrcpt = 2;
	r->headers = h;
	r->token = "t1";
}

static int
has(const char *msg, const char *s)
{
	if (strstr(msg, s) != NULL)
		return 1;
	fprintf(stderr, "  report has no \"%s\"\n", s);
	return 0;
}

/* Every line ends in CRLF and is at most 998 characters. */
static int
lines_ok(const char *msg, size_t len)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
			return 0;
		if (msg[i] == '\r' && (i + 1 == len || msg[i + 1] != '\n'))
			return 0;
		col = msg[i] == '\n' ? 0 : col + 1;
		if (col > 999)
			return 0;
	}
	return len >= 2 && msg[len - 1] == '\n';
}

static void
test_build(void)
{
	struct dsn_report r;
	struct dsn_mail m;
	struct dsn_headers h;
	const char *hdr = "From: s@sender.test\r\nSubject: hi\r\n\r\n";
	char *msg;
	size_t len;
	int utf8 = -1;

	headers_of(hdr, strlen(hdr), 7, &h);
	report_init(&r, &m, &h);
	snprintf(m.envid, sizeof(m.envid), "QQ314159");
	m.ret = DSN_RET_HDRS;
	msg = dsn_build(&r, &len, &utf8);
	CHECK(msg != NULL);
	if (msg == NULL)
		return;
	CHECK_INT(strlen(msg), len);
	CHECK_INT(utf8, 0);
	CHECK(lines_ok(msg, len));
	CHECK(has(msg, "To: <s@sender.test>\r\n"));
	CHECK(has(msg, "Auto-Submitted: auto-replied\r\n"));
	CHECK(has(msg, "Message-ID: <t1@mxtls.test>\r\n"));
	CHECK(has(msg, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"t1/0/mxtls.test\""));
	CHECK(has(msg, "--t1/0/mxtls.test\r\nContent-Type: "
	    "message/delivery-status\r\n\r\n"
	    "Original-Envelope-Id: QQ314159\r\n"
	    "Reporting-MTA: dns; mxtls.test\r\n"
	    "Arrival-Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n"
	    "Original-Recipient: rfc822;A@example.test\r\n"
	    "Final-Recipient: rfc822; a@example.test\r\n"
	    "Action: relayed\r\nStatus: 2.0.0\r\n"
	    "Remote-MTA: dns; mx.example.test\r\n"
	    "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 4711\r\n"
	    "Last-Attempt-Date: Mon, 01 Jan 2024 00:01:01 +0000\r\n\r\n"
	    "Final-Recipient: rfc822; b@example.test\r\n"));
	CHECK(has(msg, "--t1/0/mxtls.test\r\nContent-Type: "
	    "text/rfc822-headers\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
	    "From: s@sender.test\r\nSubject: hi\r\n\r\n--t1/0/mxtls.test--\r\n"));
	CHECK(has(msg, "  <a@example.test>\r\n  <b@example.test>\r\n"));
	CHECK(strstr(msg, "RET=FULL") == NULL);
	/* b has no ORCPT: no Original-Recipient for it. */
	CHECK(strstr(strstr(msg, "Final-Recipient: rfc822; a@"),
	    "Original-Recipient") == NULL);
	free(msg);

	/* RET=FULL: the report says the body is not there. */
	m.ret = DSN_RET_FULL;
	m.envid[0] = '\0';
	msg = dsn_build(&r, &len, &utf8);
	CHECK(msg != NULL && has(msg, "(RET=FULL)"));
	CHECK(msg != NULL && strstr(msg, "Original-Envelope-Id") == NULL);
	free(msg);
	dsn_headers_free(&h);
}

/* The boundary never occurs in the attached headers. */
static void
test_build_boundary(void)
{
	struct dsn_report r;
	struct dsn_mail m;
	struct dsn_headers h;
	const char *hdr = "X: --t1/0/mxtls.test\r\n\r\n";
	char *msg;
	size_t len;
	int utf8;

	headers_of(hdr, strlen(hdr), 64, &h);
	report_init(&r, &m, &h);
	msg = dsn_build(&r, &len, &utf8);
	CHECK(msg != NULL && has(msg, "boundary=\"t1/1/mxtls.test\""));
	CHECK(msg != NULL && strstr(msg, "\r\n--t1/0/mxtls.test\r\n") == NULL);
	free(msg);
	dsn_headers_free(&h);
}

/* 8-bit headers: quoted-printable; UTF-8 addresses: RFC 6533 types. */
static void
test_build_8bit(void)
{
	static struct dsn_recipient u[] = {
		{ "j\xc3\xb6rg@example.test", NULL },
	};
	struct dsn_report r;
	struct dsn_mail m;
	struct dsn_headers h;
	const char *hdr = "Subject: gr\xc3\xbc\xc3\x9f" "e = x \r\n\r\n";
	char *msg;
	size_t len;
	int utf8;

	headers_of(hdr, strlen(hdr), 5, &h);
	report_init(&r, &m, &h);
	msg = dsn_build(&r, &len, &utf8);
	CHECK_INT(utf8, 0);
	CHECK(msg != NULL && has(msg, "Content-Type: text/rfc822-headers\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "Subject: gr=C3=BC=C3=9Fe =3D x=20\r\n"));
	CHECK(msg != NULL && lines_ok(msg, len));
	free(msg);

	r.rcpt = u;
	r.nrcpt = 1;
	msg = dsn_build(&r, &len, &utf8);
	CHECK_INT(utf8, 1);
	CHECK(msg != NULL && has(msg, "Content-Type: "
	    "message/global-delivery-status\r\n"));
	CHECK(msg != NULL && has(msg, "Final-Recipient: utf-8; "
	    "j\xc3\xb6rg@example.test\r\n"));
	CHECK(msg != NULL && has(msg, "Content-Type: message/global-headers"
	    "\r\nContent-Transfer-Encoding: 8bit\r\n"));
	CHECK(msg != NULL && has(msg, "charset=utf-8"));
	free(msg);
	dsn_headers_free(&h);
}

/* Long header lines are folded by quoted-printable's soft breaks. */
static void
test_build_qp_long(void)
{
	struct dsn_report r;
	struct dsn_mail m;
	struct dsn_headers h;
	char hdr[1200], *msg;
	size_t len, i;
	int utf8;

	memcpy(hdr, "X: ", 3);
	for (i = 3; i < 990; i++)
		hdr[i] = i % 7 ? 'a' : '\xe9';
	memcpy(hdr + 990, "\r\n\r\n", 5);
	headers_of(hdr, strlen(hdr), 100, &h);
	report_init(&r, &m, &h);
	msg = dsn_build(&r, &len, &utf8);
	CHECK(msg != NULL);
	if (msg != NULL) {
		const char *p = strstr(msg, "quoted-printable\r\n\r\n");
		size_t col = 0;

		CHECK(p != NULL);
		for (; p != NULL && *p != '\0'; p++) {
			col = *p == '\n' ? 0 : col + 1;
			CHECK(col <= 77);
			if (col > 77)
				break;
		}
	}
	free(msg);
	dsn_headers_free(&h);
}

static void
test_smtp_data(void)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		{ "", ".\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ ".a\r\n.\r\nb.c\r\n", "..a\r\n..\r\nb.c\r\n.\r\n" },
	};
	size_t i, len;
	char *out;

	for (i = 0; i < NELEM(t); i++) {
		out = dsn_smtp_data(t[i].in, strlen(t[i].in), &len);
		CHECK(out != NULL);
		if (out == NULL)
			continue;
		CHECK_INT(len, strlen(t[i].want));
		CHECK(memcmp(out, t[i].want, len) == 0);
		free(out);
	}
}

static void
test_date(void)
{
	char d[64];

	dsn_date(0, d, sizeof(d));
	CHECK_STR(d, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* MAIL to the final dot, without sending (no queue: nothing owed). */
static void
test_txn(void)
{
	struct dsn_txn *t = (struct dsn_txn *)1;

	/* Without dsn_submit, or for a null sender, nothing is recorded. */
	CHECK(dsn_txn_mail(&t, 0, "s@sender.test", "RET=HDRS", 0) == NULL);
	CHECK(t == NULL);
	CHECK(dsn_txn_mail(&t, 1, "", "RET=HDRS", 0) == NULL);
	CHECK(t == NULL);
	/* ... but the parameters are checked all the same. */
	CHECK(dsn_txn_mail(&t, 0, "s@sender.test", "RET=X", 0) != NULL);
	CHECK(dsn_txn_rcpt(NULL, "a@x.test", "NOTIFY=X", 8) != NULL);
	CHECK(dsn_txn_rcpt(NULL, "a@x.test", "NOTIFY=SUCCESS", 14) == NULL);

	CHECK(dsn_txn_mail(&t, 1, "s@sender.test", "ENVID=e1", 0) == NULL);
	CHECK(t != NULL);
	/* the upstream offers DSN: the notice is its to give */
	CHECK(dsn_txn_rcpt(t, "a@x.test", "NOTIFY=SUCCESS", 14) == NULL);
	dsn_txn_accepted(t, 1);
	/* no SUCCESS asked for */
	CHECK(dsn_txn_rcpt(t, "b@x.test", "NOTIFY=FAILURE", 14) == NULL);
	dsn_txn_accepted(t, 0);
	/* refused by the upstream: never accepted, then overwritten */
	CHECK(dsn_txn_rcpt(t, "c@x.test", "NOTIFY=SUCCESS", 14) == NULL);
	CHECK(dsn_txn_rcpt(t, "d@x.test", "NOTIFY=SUCCESS ORCPT=rfc822;D@x",
	    31) == NULL);
	dsn_txn_accepted(t, 0);
	dsn_txn_data(t, "S: x\r\n\r\nbody\r\n", 14);
	dsn_txn_free(t);
}

int
main(void)
{
	RUN(test_xtext);
	RUN(test_parse_mail);
	RUN(test_parse_rcpt);
	RUN(test_headers);
	RUN(test_headers_truncated);
	RUN(test_build);
	RUN(test_build_boundary);
	RUN(test_build_8bit);
	RUN(test_build_qp_long);
	RUN(test_smtp_data);
	RUN(test_date);
	RUN(test_txn);
	return T_DONE();
}
