/*
 * DKIM (RFC 6376) without cryptography, pure: relaxed/relaxed
 * canonicalization of header fields (section 3.4.2) and of the body
 * (section 3.4.4), the DKIM-Signature header field with an empty b=,
 * the data its signature covers (section 3.7), and the final field with
 * the signature folded in.  proxy/dkimsign.c hashes and signs (BoringSSL
 * is not seen here).  No I/O, no clock, no logging.
 *
 * Messages are as tlsrpt_mail_build() makes them: CRLF line ends, a
 * header section ended by an empty line.
 */
#ifndef MXTLS_DKIM_H
#define MXTLS_DKIM_H

#include <stddef.h>
#include <time.h>

#define DKIM_NAME_MAX 253 /* d= and s=: a domain name's length at most */

/*
 * One header field (its name, ":", its value with any folding, with or
 * without the CRLF that ends it) in relaxed canonical form (RFC 6376
 * section 3.4.2): the name in lower case, the value unfolded, each run of
 * WSP one SP, no WSP at its end nor around the colon, then CRLF.  A new
 * NUL-terminated buffer of *outlen bytes, NULL when out of memory or
 * when the field has no colon.
 */
char *dkim_canon_header(const char *field, size_t len, size_t *outlen);

/*
 * The body in relaxed canonical form (RFC 6376 section 3.4.4): WSP at
 * the end of each line removed, each other run of WSP one SP, the empty
 * lines at the end removed, a CRLF added to a last line without one.  A
 * new buffer (NUL-terminated), NULL when out of memory.
 */
char *dkim_canon_body(const char *body, size_t len, size_t *outlen);

/*
 * Where msg's body starts: just after the CRLF CRLF that ends its header
 * section (len when there is none: all header).
 */
size_t dkim_body_offset(const char *msg, size_t len);

struct dkim_tags {
	const char *a;	      /* "rsa-sha256" or "ed25519-sha256" */
	const char *d, *s;    /* signing domain and selector */
	time_t t;	      /* signature time */
	const char *const *h; /* names of the fields signed, in order */
	int nh;
	const char *bh;	      /* base64 body hash */
};

/*
 * The DKIM-Signature field with tags v=1, a=, c=relaxed/relaxed, d=,
 * s=, t=, h=, bh= in that order and b= last and empty, folded into lines
 * of at most 78 characters where the values allow, without a CRLF after
 * "b=".  A new buffer of *outlen bytes, NULL when out of memory.
 */
char *dkim_template(const struct dkim_tags *tg, size_t *outlen);

/*
 * What the signature covers (RFC 6376 sections 3.7 and 5.4.2): for each
 * name of h (case-insensitive), the next field of that name in hdr
 * (hdrlen bytes: the header section) from the bottom up, relaxed
 * canonical (a name with no field left, as an oversigned one, adds
 * nothing); then the signature field sig (with b= empty) relaxed
 * canonical, without its CRLF.  A new buffer of *outlen bytes, NULL
 * when out of memory or sig has no colon.
 */
char *dkim_signed_data(const char *hdr, size_t hdrlen, const char *const *h,
    int nh, const char *sig, size_t siglen, size_t *outlen);

/*
 * The final field: tmpl (dkim_template's, ending in "b=") with b64 (the
 * signature in base64) after it, folded every 72 characters, and CRLF.
 * A new buffer, NULL when out of memory.
 */
char *dkim_field(const char *tmpl, size_t tmpllen, const char *b64,
    size_t *outlen);

/*
 * 1 when s is a usable d= or s= value: dot-separated labels of letters,
 * digits, "-" and "_", none empty, at most DKIM_NAME_MAX characters.
 */
int dkim_name_valid(const char *s);

#endif
