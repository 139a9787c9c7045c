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

/*
 * Texts are built on memory streams (open_memstream): the buffer when
 * the stream closes cleanly, NULL when a write ran out of memory.
 */
static char *
mem_close(FILE *f, char **buf, size_t *len, size_t *outlen)
{
	int bad = ferror(f);

	if (fclose(f) == EOF || bad) {
		free(*buf);
		return NULL;
	}
	*outlen = *len;
	return *buf;
}

static int
wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* Relaxed header canonicalization (RFC 6376 section 3.4.2) into b. */
static int
canon_header(FILE *b, const char *f, size_t len, int crlf)
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
	for (i = 0; i < n; i++)
		putc(tolower((unsigned char)f[i]), b);
	putc(':', b);
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
			putc(' ', b);
		putc(c, b);
		space = 0;
		any = 1;
	}
	if (crlf)
		fputs("\r\n", b);
	return 0;
}

char *
dkim_canon_header(const char *field, size_t len, size_t *outlen)
{
	char *buf = NULL;
	size_t blen = 0;
	FILE *b;

	if ((b = open_memstream(&buf, &blen)) == NULL)
		return NULL;
	if (canon_header(b, field, len, 1) < 0) {
		fclose(b);
		free(buf);
		return NULL;
	}
	return mem_close(b, &buf, &blen, outlen);
}

char *
dkim_canon_body(const char *body, size_t len, size_t *outlen)
{
	char *buf = NULL;
	size_t blen = 0, i = 0, end, k, empty = 0;
	int space, any;
	FILE *b;

	if ((b = open_memstream(&buf, &blen)) == NULL)
		return NULL;
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
					fputs("\r\n", b);
			if (space)
				putc(' ', b);
			putc(body[k], b);
			space = 0;
			any = 1;
		}
		/* WSP at the end of a line is dropped; an empty line waits. */
		if (any)
			fputs("\r\n", b);
		else
			empty++;
		i = end + 2;
	}
	return mem_close(b, &buf, &blen, outlen);
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
fold_add(FILE *b, size_t *col, const char *sep, const char *tok)
{
	size_t n = strlen(tok), s = strlen(sep);

	/* + 1: the ";" that may end the line */
	if (*col + s + n + 1 > FOLD_COL && *col > 1) {
		/* The separator's text without its trailing space. */
		size_t k = s;

		while (k > 0 && sep[k - 1] == ' ')
			k--;
		fwrite(sep, 1, k, b);
		fputs("\r\n\t", b);
		*col = 8; /* a tab counts as one column stop */
	} else {
		fputs(sep, b);
		*col += s;
	}
	fputs(tok, b);
	*col += n;
}

char *
dkim_template(const struct dkim_tags *tg, size_t *outlen)
{
	char tok[DKIM_NAME_MAX + 64], *buf = NULL;
	size_t col, blen = 0;
	FILE *b;
	int i;

	if ((b = open_memstream(&buf, &blen)) == NULL)
		return NULL;
	fputs("DKIM-Signature: v=1", b);
	col = strlen("DKIM-Signature: v=1");
	snprintf(tok, sizeof(tok), "a=%s", tg->a);
	fold_add(b, &col, "; ", tok);
	fold_add(b, &col, "; ", "c=relaxed/relaxed");
	snprintf(tok, sizeof(tok), "d=%s", tg->d);
	fold_add(b, &col, "; ", tok);
	snprintf(tok, sizeof(tok), "s=%s", tg->s);
	fold_add(b, &col, "; ", tok);
	snprintf(tok, sizeof(tok), "t=%lld", (long long)tg->t);
	fold_add(b, &col, "; ", tok);
	/* h= on lines of its own, folded at its colons (FWS is allowed). */
	fputs(";\r\n\th=", b);
	col = 8 + 2;
	for (i = 0; i < tg->nh; i++) {
		if (i == 0) {
			fputs(tg->h[0], b);
			col += strlen(tg->h[0]);
		} else
			fold_add(b, &col, ":", tg->h[i]);
	}
	snprintf(tok, sizeof(tok), "bh=%s", tg->bh);
	fputs(";\r\n\t", b);
	fputs(tok, b);
	fputs(";\r\n\tb=", b);
	return mem_close(b, &buf, &blen, outlen);
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
	struct field *f;
	char *buf = NULL;
	size_t blen = 0;
	int n, i, j;
	FILE *b;

	if ((n = split_fields(hdr, hdrlen, &f)) < 0)
		return NULL;
	if ((b = open_memstream(&buf, &blen)) == NULL) {
		free(f);
		return NULL;
	}
	for (i = 0; i < nh; i++)
		for (j = n - 1; j >= 0; j--)
			if (!f[j].used && field_named(&f[j], h[i])) {
				f[j].used = 1;
				canon_header(b, f[j].p, f[j].len, 1);
				break;
			}
	free(f);
	if (canon_header(b, sig, siglen, 0) < 0) {
		fclose(b);
		free(buf);
		return NULL;
	}
	return mem_close(b, &buf, &blen, outlen);
}

char *
dkim_field(const char *tmpl, size_t tmpllen, const char *b64, size_t *outlen)
{
	size_t n = strlen(b64), i, k, blen = 0;
	char *buf = NULL;
	FILE *b;

	if ((b = open_memstream(&buf, &blen)) == NULL)
		return NULL;
	fwrite(tmpl, 1, tmpllen, b);
	for (i = 0; i < n; i += k) {
		k = n - i < B64_LINE ? n - i : B64_LINE;
		if (i > 0)
			fputs("\r\n\t", b);
		fwrite(b64 + i, 1, k, b);
	}
	fputs("\r\n", b);
	return mem_close(b, &buf, &blen, outlen);
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
