/*
 * policy/tlsrptmsg.c: the gzip round trip, mailto: addresses (hostile
 * ones refused), the RFC 8460 file name, and the report message's
 * headers, MIME structure and attachment.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "t.h"
#include "tlsrptmsg.h"

static void
gzip_round_trip(void)
{
	static const char json[] = "{\"organization-name\":\"x\",\"policies\":[]}";
	unsigned char *gz, back[256];
	size_t gzlen;
	z_stream z;

	CHECK_INT(tlsrpt_gzip(json, strlen(json), &gz, &gzlen), 0);
	CHECK(gzlen > 18 && gz[0] == 0x1f && gz[1] == 0x8b); /* gzip magic */
	memset(&z, 0, sizeof(z));
	CHECK_INT(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = back;
	z.avail_out = sizeof(back);
	CHECK_INT(inflate(&z, Z_FINISH), Z_STREAM_END);
	CHECK_INT(z.total_out, strlen(json));
	CHECK(memcmp(back, json, strlen(json)) == 0);
	inflateEnd(&z);
	free(gz);
}

static void
mailto(void)
{
	char a[TLSRPT_MAIL_ADDR_MAX + 1];
	char big[600];

	CHECK_INT(tlsrpt_mailto_addr("mailto:tlsrpt@example.com", a, sizeof(a)), 0);
	CHECK_STR(a, "tlsrpt@example.com");
	CHECK_INT(tlsrpt_mailto_addr("MAILTO:r%2Bx@example.com?subject=x", a,
	    sizeof(a)), 0);
	CHECK_STR(a, "r+x@example.com");
	/* Nothing that could end an SMTP command or start a header. */
	CHECK_INT(tlsrpt_mailto_addr("mailto:a@b%0D%0ARCPT", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:a@b>", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:a@b,c@d", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:a b@c", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:a@b@c", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:@b", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:a@", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:a@b%zz", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:a@b%4", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("https://a@b", a, sizeof(a)), -1);
	CHECK_INT(tlsrpt_mailto_addr("mailto:\xc3\xa9@b", a, sizeof(a)), -1);
	memset(big, 'a', sizeof(big));
	memcpy(big, "mailto:x@", 9);
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(tlsrpt_mailto_addr(big, a, sizeof(a)), -1);
}

static void
names(void)
{
	char f[512], d[64];

	tlsrpt_filename(f, sizeof(f), "mta.sender.test", "example.com",
	    1480550400, 1480636799, "abc");
	/* RFC 8460 section 5.1's example form. */
	CHECK_STR(f, "mta.sender.test!example.com!1480550400!1480636799!abc.json.gz");
	tlsrpt_mail_date(1480550400, d, sizeof(d));
	CHECK_STR(d, "Thu, 01 Dec 2016 00:00:00 +0000");
}

static void
message(void)
{
	static const unsigned char gz[] = { 0x1f, 0x8b, 0x08, 0x00, 0xff, 0x00,
		0x2e, 0x0d, 0x0a };
	struct tlsrpt_mail m;
	char *msg, *p;
	size_t len;

	memset(&m, 0, sizeof(m));
	m.from = "tls-reports@sender.test";
	m.to = "tlsrpt@example.com";
	m.domain = "example.com";
	m.submitter = "mta.sender.test";
	m.report_id = "2016-12-01T00:00:00Z+example.com@mta.sender.test";
	m.uniq = "u1";
	m.date = 1480636800 + 3600;
	m.begin = 1480550400;
	m.end = 1480636799;
	m.gz = gz;
	m.gzlen = sizeof(gz);
	CHECK((msg = tlsrpt_mail_build(&m, &len)) != NULL);
	CHECK_INT(strlen(msg), len);
	CHECK(strncmp(msg, "From: <tls-reports@sender.test>\r\n"
	    "To: <tlsrpt@example.com>\r\n"
	    "Date: Fri, 02 Dec 2016 01:00:00 +0000\r\n"
	    "Message-ID: <tlsrpt.u1@mta.sender.test>\r\n"
	    "Subject: Report Domain: example.com\r\n"
	    " Submitter: mta.sender.test\r\n"
	    " Report-ID: <2016-12-01T00:00:00Z+example.com@mta.sender.test>\r\n"
	    "TLS-Report-Domain: example.com\r\n"
	    "TLS-Report-Submitter: mta.sender.test\r\n"
	    "TLS-Required: No\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	    " boundary=\"tlsrpt-u1\"\r\n\r\n", 300) == 0);
	CHECK((p = strstr(msg, "\r\n--tlsrpt-u1\r\nContent-Type: text/plain;")) != NULL);
	CHECK((p = strstr(msg, "\r\n--tlsrpt-u1\r\n"
	    "Content-Type: application/tlsrpt+gzip;\r\n"
	    " name=\"mta.sender.test!example.com!1480550400!1480636799!u1.json.gz\"\r\n"
	    "Content-Disposition: attachment;\r\n"
	    " filename=\"mta.sender.test!example.com!1480550400!1480636799!u1.json.gz\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "H4sIAP8ALg0K\r\n\r\n--tlsrpt-u1--\r\n")) != NULL);
	CHECK(p != NULL && p[strlen(p) - 1] == '\n' &&
	    strcmp(p + strlen(p) - 17, "\r\n--tlsrpt-u1--\r\n") == 0);
	/* Every line ends in CRLF: no bare LF. */
	for (p = msg; (p = strchr(p, '\n')) != NULL; p++)
		CHECK(p > msg && p[-1] == '\r');
	free(msg);
}

static void
data(void)
{
	static const char m[] = ".a\r\nb.\r\n..c\r\n";
	char *d;
	size_t n;

	CHECK((d = tlsrpt_mail_data(m, strlen(m), &n)) != NULL);
	CHECK_STR(d, "..a\r\nb.\r\n...c\r\n.\r\n");
	CHECK_INT(n, strlen(d));
	free(d);
}

int
main(void)
{
	RUN(gzip_round_trip);
	RUN(mailto);
	RUN(names);
	RUN(message);
	RUN(data);
	return T_DONE();
}
