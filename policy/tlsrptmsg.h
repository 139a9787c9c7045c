/*
 * What a TLS report (RFC 8460) looks like on the wire, pure: the gzip of
 * the JSON (section 5.3), the file name of section 5.1, the address of a
 * "mailto:" rua, and the multipart/report message of section 5.3 for a
 * mailto: rua.  No I/O, no clock, no logging: proxy/tlsrpt.c sends.
 */
#ifndef MXTLS_TLSRPTMSG_H
#define MXTLS_TLSRPTMSG_H

#include <stddef.h>
#include <time.h>

#define TLSRPT_MAIL_ADDR_MAX 254 /* an address (RFC 5321 path limit) */

/*
 * The gzip (RFC 1952) of len bytes at in, into a new buffer (*out,
 * free()).  0, or -1 when out of memory.
 */
int tlsrpt_gzip(const void *in, size_t len, unsigned char **out,
    size_t *outlen);

/*
 * The address of a "mailto:" URI (RFC 6068): its part before any "?",
 * %XX decoded.  0, or -1 when that is no plain local@domain address
 * (empty parts, several addresses, spaces, controls, <>(),;:\" or bytes
 * outside printable ASCII, longer than TLSRPT_MAIL_ADDR_MAX): nothing
 * that could break an SMTP command or a header line gets through.
 */
int tlsrpt_mailto_addr(const char *uri, char *dst, size_t len);

/*
 * The report's file name (RFC 8460 section 5.1):
 * "SUBMITTER!DOMAIN!BEGIN!END!UNIQ.json.gz", BEGIN and END in seconds
 * since the epoch.
 */
void tlsrpt_filename(char *dst, size_t len, const char *submitter,
    const char *domain, time_t begin, time_t end, const char *uniq);

/* An RFC 5322 date in UTC: "Sat, 05 Dec 2026 16:27:36 +0000". */
void tlsrpt_mail_date(time_t t, char *dst, size_t len);

struct tlsrpt_mail {
	const char *from, *to;	     /* plain addresses */
	const char *domain;	     /* the policy domain */
	const char *submitter;
	const char *report_id;
	const char *uniq;	     /* makes Message-ID and file name unique */
	time_t date;		     /* Date: */
	time_t begin, end;	     /* the report's range */
	const unsigned char *gz;     /* the gzipped JSON */
	size_t gzlen;
};

/*
 * The message (CRLF line ends, lines of at most 998 bytes, not yet
 * dot-stuffed for SMTP DATA) in a new buffer, *len bytes,
 * NUL-terminated; NULL when out of memory.
 * multipart/report; report-type=tlsrpt, with "TLS-Report-Domain",
 * "TLS-Report-Submitter" and "TLS-Required: No" (section 5.3: a report
 * about failing TLS must be deliverable without it), a short text/plain
 * part and the application/tlsrpt+gzip attachment in base64.
 */
char *tlsrpt_mail_build(const struct tlsrpt_mail *m, size_t *len);

/*
 * msg as SMTP DATA (RFC 5321 section 4.5.2): a "." doubled at the start
 * of a line, ".\r\n" at the end (msg ends in CRLF).  A new buffer, NULL
 * when out of memory.
 */
char *tlsrpt_mail_data(const char *msg, size_t len, size_t *outlen);

#endif
