/*
 * DKIM canonicalization and the DKIM-Signature field (see dkim.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim.h"

#define FOLD_COL 78 /* RFC 5322 section 2.1.1: lines SHOULD stay within */
#define B64_LINE 72 /* signature characters per folded line */

struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	char *np;
	size_t cap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* The buffer, NUL-terminated (also when empty), or NULL when out of memory. */
static char *
sb_done(struct sbuf *b, size_t *outlen)
{
	sb_add(b, "", 0);
	if (b->oom) {
		free(b->p);
		return NULL;
	}
	*outlen = b->len;
	return b->p;
}

static int
wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* Relaxed header canonicalization (RFC 6376 section 3.4.2) into b. */
static int
canon_header(struct sbuf *b, const char *f, size_t len, int crlf)
{
	const char *colon = memchr(f, ':', len);
	size_t i, n;
	int space = 0, any = 0;
	char c;

	if (colon == NULL)
		return -1;
	/* Its CRLF is not part of the value. */
	if (len >= 2 && f[len - 2] == '\r' && f[len - 1] == '\n')
		len -= 2;
	/* The name: lower case, no WSP before the colon. */
	n = (size_t)(colon - f);
	while (n > 0 && wsp(f[n - 1]))
		n--;
	for (i = 0; i < n; i++) {
		c = (char)tolower((unsigned char)f[i]);
		sb_add(b, &c, 1);
	}
	sb_add(b, ":", 1);
	/*
	 * The value: unfolded (every CR and LF dropped), each run of WSP
	 * one SP, none at its start (after the colon) or end.
	 */
	for (i = (size_t)(colon - f) + 1; i < len; i++) {
		c = f[i];
		if (c == '\r' || c == '\n')
			continue;
		if (wsp(c)) {
			space = 1;
			continue;
		}
		if (space && any)
			sb_add(b, " ", 1);
		sb_add(b, &c, 1);
		space = 0;
		any = 1;
	}
	if (crlf)
		sb_add(b, "\r\n", 2);
	return 0;
}

char *
dkim_canon_header(const char *field, size_t len, size_t *outlen)
{
	struct sbuf b = { 0 };

	if (canon_header(&b, field, len, 1) < 0) {
		free(b.p);
		return NULL;
	}
	return sb_done(&b, outlen);
}

char *
dkim_canon_body(const char *body, size_t len, size_t *outlen)
{
	struct sbuf b = { 0 };
	size_t i = 0, end, k, empty = 0;
	int space, any;

	while (i < len) {
		/* One line, without its CRLF (the last may have none). */
		for (end = i; end < len; end++)
			if (body[end] == '\r' && end + 1 < len &&
			    body[end + 1] == '\n')
				break;
		space = any = 0;
		for (k = i; k < end; k++) {
			if (wsp(body[k])) {
				space = 1;
				continue;
			}
			/* Empty lines held back go before a line with text. */
			if (!any)
				for (; empty > 0; empty--)
					sb_add(&b, "\r\n", 2);
			if (space)
				sb_add(&b, " ", 1);
			sb_add(&b, &body[k], 1);
			space = 0;
			any = 1;
		}
		/* WSP at the end of a line is dropped; an empty line waits. */
		if (any)
			sb_add(&b, "\r\n", 2);
		else
			empty++;
		i = end + 2;
	}
	return sb_done(&b, outlen);
}

size_t
dkim_body_offset(const char *msg, size_t len)
{
	size_t i;

	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 2; /* no header at all */
	for (i = 0; i + 3 < len; i++)
		if (msg[i] == '\r' && msg[i + 1] == '\n' && msg[i + 2] == '\r' &&
		    msg[i + 3] == '\n')
			return i + 4;
	return len;
}

/*
 * Append one token to a folded field: "; " (or sep) before it on the
 * same line when it fits within FOLD_COL, else CRLF TAB and the token.
 */
static void
fold_add(struct sbuf *b, size_t *col, const char *sep, const char *tok)
{
	size_t n = strlen(tok), s = strlen(sep);

	/* + 1: the ";" that may end the line */
	if (*col + s + n + 1 > FOLD_COL && *col > 1) {
		/* The separator's text without its trailing space. */
		size_t k = s;

		while (k > 0 && sep[k - 1] == ' ')
			k--;
		sb_add(b, sep, k);
		sb_add(b, "\r\n\t", 3);
		*col = 8; /* a tab counts as one column stop */
	} else {
		sb_add(b, sep, s);
		*col += s;
	}
	sb_add(b, tok, n);
	*col += n;
}

char *
dkim_template(const struct dkim_tags *tg, size_t *outlen)
{
	struct sbuf b = { 0 };
	char tok[DKIM_NAME_MAX + 64];
	size_t col;
	int i;

	sb_str(&b, "DKIM-Signature: v=1");
	col = strlen("DKIM-Signature: v=1");
	snprintf(tok, sizeof(tok), "a=%s", tg->a);
	fold_add(&b, &col, "; ", tok);
	fold_add(&b, &col, "; ", "c=relaxed/relaxed");
	snprintf(tok, sizeof(tok), "d=%s", tg->d);
	fold_add(&b, &col, "; ", tok);
	snprintf(tok, sizeof(tok), "s=%s", tg->s);
	fold_add(&b, &col, "; ", tok);
	snprintf(tok, sizeof(tok), "t=%lld", (long long)tg->t);
	fold_add(&b, &col, "; ", tok);
	/* h= on lines of its own, folded at its colons (FWS is allowed). */
	sb_add(&b, ";\r\n\th=", 6);
	col = 8 + 2;
	for (i = 0; i < tg->nh; i++) {
		if (i == 0) {
			sb_str(&b, tg->h[0]);
			col += strlen(tg->h[0]);
		} else
			fold_add(&b, &col, ":", tg->h[i]);
	}
	snprintf(tok, sizeof(tok), "bh=%s", tg->bh);
	sb_str(&b, ";\r\n\t");
	sb_str(&b, tok);
	sb_str(&b, ";\r\n\tb=");
	return sb_done(&b, outlen);
}

/* The fields of a header section: start and length (with CRLF) of each. */
struct field {
	const char *p;
	size_t len;
	int used;
};

static int
split_fields(const char *hdr, size_t len, struct field **out)
{
	struct field *f = NULL, *nf;
	size_t i = 0, end;
	int n = 0, cap = 0;

	while (i < len) {
		/* A field runs to a CRLF not followed by WSP. */
		for (end = i; end < len; end++)
			if (hdr[end] == '\r' && end + 1 < len &&
			    hdr[end + 1] == '\n' && (end + 2 >= len ||
			    !wsp(hdr[end + 2])))
				break;
		end = end < len ? end + 2 : len;
		if (end - i <= 2 && (end - i == 0 || hdr[i] == '\r'))
			break; /* the empty line: the header ends */
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nf = realloc(f, (size_t)cap * sizeof(*f))) == NULL) {
				free(f);
				return -1;
			}
			f = nf;
		}
		f[n].p = hdr + i;
		f[n].len = end - i;
		f[n].used = 0;
		n++;
		i = end;
	}
	*out = f;
	return n;
}

/* 1 when field f is named name (case-insensitive, WSP before ':' ignored). */
static int
field_named(const struct field *f, const char *name)
{
	size_t n = strlen(name), k;

	if (f->len <= n || strncasecmp(f->p, name, n) != 0)
		return 0;
	for (k = n; k < f->len && wsp(f->p[k]); k++)
		;
	return k < f->len && f->p[k] == ':';
}

char *
dkim_signed_data(const char *hdr, size_t hdrlen, const char *const *h,
    int nh, const char *sig, size_t siglen, size_t *outlen)
{
	struct sbuf b = { 0 };
	struct field *f;
	int n, i, j;

	if ((n = split_fields(hdr, hdrlen, &f)) < 0)
		return NULL;
	for (i = 0; i < nh; i++)
		for (j = n - 1; j >= 0; j--)
			if (!f[j].used && field_named(&f[j], h[i])) {
				f[j].used = 1;
				canon_header(&b, f[j].p, f[j].len, 1);
				break;
			}
	free(f);
	if (canon_header(&b, sig, siglen, 0) < 0) {
		free(b.p);
		return NULL;
	}
	return sb_done(&b, outlen);
}

char *
dkim_field(const char *tmpl, size_t tmpllen, const char *b64, size_t *outlen)
{
	struct sbuf b = { 0 };
	size_t n = strlen(b64), i, k;

	sb_add(&b, tmpl, tmpllen);
	for (i = 0; i < n; i += k) {
		k = n - i < B64_LINE ? n - i : B64_LINE;
		if (i > 0)
			sb_add(&b, "\r\n\t", 3);
		sb_add(&b, b64 + i, k);
	}
	sb_add(&b, "\r\n", 2);
	return sb_done(&b, outlen);
}

int
dkim_name_valid(const char *s)
{
	size_t n = strlen(s), i, label = 0;

	if (n == 0 || n > DKIM_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return 0;
		} else
			return 0;
	}
	return label > 0;
}
