/*
 * smtp_reply_feed() (proxy/smtp.c), the parser of upstream replies.
 *
 * The input is a byte stream from the upstream server.  It is parsed
 * three ways: whole (the whole input handed over at once, replies taken
 * one after the other), one byte at a time, and in pseudo-random chunks
 * (as a caller with a buffer does: unconsumed bytes are fed again with
 * the next chunk).  Invariants:
 *   - consumed never exceeds the bytes given, and a DONE ends exactly at
 *     the LF of the reply's last line (bytes after a reply stay unread:
 *     the STARTTLS injection guard depends on it);
 *   - all three ways yield the same replies (code, lines, text, where
 *     each ends), the same final status and error, the same bytes left;
 *   - each reply is well formed: code 200..599, 1..SMTP_REPLY_LINES_MAX
 *     lines, text = the input lines with CRLF endings, no NUL, no CR or
 *     LF inside a line, every line carrying the code; smtp_reply_line()
 *     agrees; smtp_ehlo_parse() does not crash;
 *   - after ERROR, the parser stays in ERROR and consumes nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp.h"

#define MAXREPLIES 4096

struct outcome {
	int nreplies;
	int code[MAXREPLIES];
	int nlines[MAXREPLIES];
	size_t end[MAXREPLIES];	 /* input offset just after the reply */
	uint64_t hash[MAXREPLIES]; /* of the reply text */
	enum smtp_reply_status final;
	const char *err;
	size_t left; /* input offset up to which bytes were consumed */
};

static uint64_t
hash(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (n-- > 0)
		h = (h ^ (unsigned char)*p++) * 0x100000001b3ull;
	return h;
}

/* The reply just completed, which came from data[start..end). */
static void
check_reply(const struct smtp_reply *r, const uint8_t *data, size_t start,
    size_t end)
{
	const char *in = (const char *)data + start, *inend = (const char *)data + end;
	const char *t = r->text, *lt;
	size_t m, lenl, ln;
	int i, last;
	struct smtp_ehlo e;

	FUZZ_CHECK(r->code >= 200 && r->code <= 599, "code %d", r->code);
	FUZZ_CHECK(r->nlines >= 1 && r->nlines <= SMTP_REPLY_LINES_MAX,
	    "nlines %d", r->nlines);
	FUZZ_CHECK(r->textlen <= SMTP_REPLY_TEXT_MAX, "textlen %zu",
	    r->textlen);
	FUZZ_CHECK(end > start && data[end - 1] == '\n',
	    "reply does not end at a LF");
	/* Input lines, one by one, against the stored text. */
	for (i = 0; i < r->nlines; i++) {
		const char *lf = memchr(in, '\n', (size_t)(inend - in));

		FUZZ_CHECK(lf != NULL, "line %d: input has fewer lines", i);
		m = (size_t)(lf - in);
		if (m > 0 && in[m - 1] == '\r')
			m--;
		FUZZ_CHECK(m >= 3, "line %d shorter than 3", i);
		FUZZ_CHECK(memchr(in, '\0', m) == NULL, "NUL kept, line %d", i);
		FUZZ_CHECK(memchr(in, '\r', m) == NULL, "CR kept, line %d", i);
		FUZZ_CHECK((size_t)(t - r->text) + m + 2 <= r->textlen,
		    "text shorter than the input lines");
		FUZZ_CHECK(memcmp(t, in, m) == 0 && t[m] == '\r' &&
		    t[m + 1] == '\n', "line %d not stored verbatim", i);
		FUZZ_CHECK((t[0] - '0') * 100 + (t[1] - '0') * 10 +
		    (t[2] - '0') == r->code, "line %d has another code", i);
		last = m == 3 || t[3] == ' ';
		FUZZ_CHECK(last == (i == r->nlines - 1),
		    "line %d: last-line marker disagrees", i);
		FUZZ_CHECK(last || t[3] == '-', "bad separator kept");
		FUZZ_CHECK(smtp_reply_line(r, i, &lt, &lenl) == 0,
		    "smtp_reply_line(%d) failed", i);
		ln = m > 4 ? m - 4 : 0;
		FUZZ_CHECK(lenl == ln && (ln == 0 || lt == t + 4),
		    "smtp_reply_line(%d) text", i);
		t += m + 2;
		in = lf + 1;
	}
	FUZZ_CHECK(in == inend, "reply consumed bytes past its last line");
	FUZZ_CHECK((size_t)(t - r->text) == r->textlen, "text longer");
	FUZZ_CHECK(smtp_reply_line(r, r->nlines, &lt, &lenl) == -1 &&
	    smtp_reply_line(r, -1, &lt, &lenl) == -1, "line out of range");
	smtp_ehlo_parse(r, &e);
}

static void
record(struct outcome *o, const struct smtp_reply *r, const uint8_t *data,
    size_t start, size_t end)
{
	check_reply(r, data, start, end);
	if (o->nreplies >= MAXREPLIES)
		return;
	o->code[o->nreplies] = r->code;
	o->nlines[o->nreplies] = r->nlines;
	o->end[o->nreplies] = end;
	o->hash[o->nreplies] = hash(r->text, r->textlen);
	o->nreplies++;
}

static void
whole(const uint8_t *data, size_t size, struct outcome *o)
{
	struct smtp_reply_parser p;
	enum smtp_reply_status st;
	size_t off = 0, start = 0, c;

	smtp_reply_parser_init(&p);
	for (;;) {
		st = smtp_reply_feed(&p, (const char *)data + off, size - off,
		    &c);
		FUZZ_CHECK(c <= size - off, "consumed %zu of %zu", c,
		    size - off);
		if (st == SMTP_REPLY_DONE) {
			off += c;
			record(o, &p.reply, data, start, off);
			start = off;
			smtp_reply_parser_init(&p);
			continue;
		}
		off += c;
		o->final = st;
		o->err = p.err;
		o->left = off;
		if (st == SMTP_REPLY_ERROR) {
			FUZZ_CHECK(p.err != NULL, "ERROR without err");
			st = smtp_reply_feed(&p, (const char *)data + off,
			    size - off, &c);
			FUZZ_CHECK(st == SMTP_REPLY_ERROR && c == 0,
			    "parser recovered after an error");
		} else {
			FUZZ_CHECK(st == SMTP_REPLY_MORE, "status %d", st);
			FUZZ_CHECK(p.err == NULL, "MORE with err");
			/* What is left is one incomplete line, short enough. */
			FUZZ_CHECK(memchr(data + off, '\n', size - off) ==
			    NULL, "MORE with a whole line unread");
			FUZZ_CHECK(size - off < SMTP_REPLY_LINE_MAX,
			    "MORE with %zu bytes unread", size - off);
		}
		return;
	}
}

static void
split(const uint8_t *data, size_t size, int mode, struct outcome *o)
{
	struct smtp_reply_parser p;
	struct fuzz_chunker ch;
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	char *pend = malloc(size + 1);
	size_t plen = 0, pos = 0, base = 0, start = 0, n, c;

	fuzz_chunker_init(&ch, data, size, mode);
	smtp_reply_parser_init(&p);
	while (pos < size) {
		n = fuzz_chunker_next(&ch);
		if (n > size - pos)
			n = size - pos;
		memcpy(pend + plen, data + pos, n);
		plen += n;
		pos += n;
		for (;;) {
			st = smtp_reply_feed(&p, pend, plen, &c);
			FUZZ_CHECK(c <= plen, "split: consumed %zu of %zu", c,
			    plen);
			memmove(pend, pend + c, plen - c);
			plen -= c;
			base += c;
			if (st != SMTP_REPLY_DONE)
				break;
			record(o, &p.reply, data, start, base);
			start = base;
			smtp_reply_parser_init(&p);
		}
		if (st == SMTP_REPLY_ERROR)
			break;
	}
	if (size == 0)
		st = smtp_reply_feed(&p, pend, 0, &c);
	o->final = st;
	o->err = p.err;
	o->left = base;
	free(pend);
}

static void
compare(const struct outcome *a, const struct outcome *b, const char *how)
{
	int i;

	FUZZ_CHECK(a->nreplies == b->nreplies, "%s: %d replies, whole %d",
	    how, b->nreplies, a->nreplies);
	for (i = 0; i < a->nreplies; i++) {
		FUZZ_CHECK(a->code[i] == b->code[i] &&
		    a->nlines[i] == b->nlines[i] && a->end[i] == b->end[i] &&
		    a->hash[i] == b->hash[i], "%s: reply %d differs", how, i);
	}
	FUZZ_CHECK(a->final == b->final, "%s: final status %d, whole %d", how,
	    b->final, a->final);
	FUZZ_CHECK((a->err == NULL) == (b->err == NULL) &&
	    (a->err == NULL || strcmp(a->err, b->err) == 0),
	    "%s: error \"%s\", whole \"%s\"", how, b->err ? b->err : "-",
	    a->err ? a->err : "-");
	FUZZ_CHECK(a->left == b->left, "%s: consumed up to %zu, whole %zu",
	    how, b->left, a->left);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outcome w, s;
	int mode;

	memset(&w, 0, sizeof(w));
	whole(data, size, &w);
	for (mode = 0; mode < 3; mode++) {
		/* One byte at a time is quadratic: keep it for small inputs. */
		if (mode == 0 && size > 16384)
			continue;
		memset(&s, 0, sizeof(s));
		split(data, size, mode, &s);
		compare(&w, &s, mode == 0 ? "bytewise" : "chunked");
	}
	return 0;
}
