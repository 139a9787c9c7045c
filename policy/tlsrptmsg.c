/*
 * TLS reports on the wire (see tlsrptmsg.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "tlsrptmsg.h"

int
tlsrpt_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen)
{
	z_stream z;
	uLong cap;
	int r;

	memset(&z, 0, sizeof(z));
	/*
	 * windowBits 15 + 16: a gzip header and trailer, not zlib's.  The
	 * default level, not the best: it runs on mxtls's event loop, and a
	 * large report costs several times as long at level 9 for a few
	 * percent.
	 */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	cap = deflateBound(&z, (uLong)len);
	if ((*out = malloc(cap)) == NULL) {
		deflateEnd(&z);
		return -1;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = *out;
	z.avail_out = (uInt)cap;
	/* deflateBound() is room enough for one Z_FINISH call. */
	r = deflate(&z, Z_FINISH);
	*outlen = z.total_out;
	deflateEnd(&z);
	if (r != Z_STREAM_END) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A byte allowed in an address we put into MAIL/RCPT and To:. */
static int
addr_byte_ok(int c)
{
	return c > 0x20 && c < 0x7f && strchr("<>()[],;:\\\"", c) == NULL;
}

int
tlsrpt_mailto_addr(const char *uri, char *dst, size_t len)
{
	const char *p;
	size_t n = 0;
	int c, hi, lo, at = 0;

	if (strncasecmp(uri, "mailto:", 7) != 0 || len == 0)
		return -1;
	for (p = uri + 7; *p != '\0' && *p != '?'; p++) {
		c = (unsigned char)*p;
		if (c == '%') {
			if ((hi = hexval(p[1])) < 0 || (lo = hexval(p[2])) < 0)
				return -1;
			c = hi << 4 | lo;
			p += 2;
		}
		if (!addr_byte_ok(c) || n + 1 >= len ||
		    n >= TLSRPT_MAIL_ADDR_MAX)
			return -1;
		if (c == '@')
			at++;
		dst[n++] = (char)c;
	}
	dst[n] = '\0';
	/* One "@", with something on either side. */
	if (at != 1 || dst[0] == '@' || dst[n - 1] == '@')
		return -1;
	return 0;
}

void
tlsrpt_filename(char *dst, size_t len, const char *submitter,
    const char *domain, time_t begin, time_t end, const char *uniq)
{
	snprintf(dst, len, "%s!%s!%lld!%lld!%s.json.gz", submitter, domain,
	    (long long)begin, (long long)end, uniq);
}

void
tlsrpt_mail_date(time_t t, char *dst, size_t len)
{
	static const char *const wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
		"Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	/* By hand: strftime's names follow the locale. */
	gmtime_r(&t, &tm);
	snprintf(dst, len, "%s, %02d %s %d %02d:%02d:%02d +0000",
	    wd[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Base64 (RFC 2045), 76 characters a line, each line ending in CRLF. */
static void
base64_lines(FILE *f, const unsigned char *p, size_t len)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, col = 0;
	unsigned long v;

	for (i = 0; i < len; i += 3) {
		v = (unsigned long)p[i] << 16;
		if (i + 1 < len)
			v |= (unsigned long)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		fputc(b64[v >> 18 & 63], f);
		fputc(b64[v >> 12 & 63], f);
		fputc(i + 1 < len ? b64[v >> 6 & 63] : '=', f);
		fputc(i + 2 < len ? b64[v & 63] : '=', f);
		if ((col += 4) == 76) {
			fputs("\r\n", f);
			col = 0;
		}
	}
	if (col > 0)
		fputs("\r\n", f);
}

char *
tlsrpt_mail_build(const struct tlsrpt_mail *m, size_t *len)
{
	char date[64], fname[1024], *buf = NULL;
	size_t blen = 0;
	FILE *f;

	if ((f = open_memstream(&buf, &blen)) == NULL)
		return NULL;
	tlsrpt_mail_date(m->date, date, sizeof(date));
	tlsrpt_filename(fname, sizeof(fname), m->submitter, m->domain,
	    m->begin, m->end, m->uniq);
	fprintf(f, "From: <%s>\r\n", m->from);
	fprintf(f, "To: <%s>\r\n", m->to);
	fprintf(f, "Date: %s\r\n", date);
	fprintf(f, "Message-ID: <tlsrpt.%s@%s>\r\n", m->uniq, m->submitter);
	/* RFC 8460 section 5.3's subject, its report-id in brackets. */
	fprintf(f, "Subject: Report Domain: %s\r\n"
	    " Submitter: %s\r\n"
	    " Report-ID: <%s>\r\n", m->domain, m->submitter, m->report_id);
	fprintf(f, "TLS-Report-Domain: %s\r\n", m->domain);
	fprintf(f, "TLS-Report-Submitter: %s\r\n", m->submitter);
	/* A report of TLS failures must reach a domain whose TLS fails. */
	fprintf(f, "TLS-Required: No\r\n");
	fprintf(f, "MIME-Version: 1.0\r\n");
	fprintf(f, "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	    " boundary=\"tlsrpt-%s\"\r\n", m->uniq);
	fprintf(f, "\r\n"
	    "This is a MIME-formatted message.\r\n"
	    "\r\n"
	    "--tlsrpt-%s\r\n"
	    "Content-Type: text/plain; charset=\"us-ascii\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "This is an aggregate TLS report (RFC 8460) from %s\r\n"
	    "for the policy domain %s.  The report is attached.\r\n"
	    "\r\n", m->uniq, m->submitter, m->domain);
	fprintf(f, "--tlsrpt-%s\r\n"
	    "Content-Type: application/tlsrpt+gzip;\r\n"
	    " name=\"%s\"\r\n"
	    "Content-Disposition: attachment;\r\n"
	    " filename=\"%s\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n", m->uniq, fname, fname);
	base64_lines(f, m->gz, m->gzlen);
	fprintf(f, "\r\n--tlsrpt-%s--\r\n", m->uniq);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = blen;
	return buf;
}

char *
tlsrpt_mail_data(const char *msg, size_t len, size_t *outlen)
{
	size_t i, n = 0, dots = 0;
	char *out;

	for (i = 0; i < len; i++)
		if (msg[i] == '.' && (i == 0 || msg[i - 1] == '\n'))
			dots++;
	if ((out = malloc(len + dots + 4)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (msg[i] == '.' && (i == 0 || msg[i - 1] == '\n'))
			out[n++] = '.';
		out[n++] = msg[i];
	}
	memcpy(out + n, ".\r\n", 4); /* its NUL too */
	*outlen = n + 3;
	return out;
}
