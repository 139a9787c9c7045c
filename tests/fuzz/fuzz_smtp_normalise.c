/*
 * smtp_normalise() (proxy/smtp.c), the DATA rewriter of
 * bare_line_endings = normalise: what it writes goes upstream as the
 * message, so it must never make or hide an end marker.  The input is
 * message bytes as the session feeds them (here also whatever follows
 * the end marker).  Invariants:
 *   - the output and the counters are what a line-by-line reference says
 *     (lines end at any LF; a CR before the LF is part of the ending, any
 *     other CR a space; a line after a bare LF that starts with "." gets
 *     a second one, and so does a lone "." ended by a bare LF; a final CR
 *     is held back, not written);
 *   - the output has only CRLF line endings, and without a bare CR or LF
 *     in the input it is the input;
 *   - its length is the input's + bare_lf + dots (- a held CR), at most
 *     SMTP_NORMALISE_OUT_MAX of the input's;
 *   - the scanner finds the same end markers in the output as in the
 *     input, at the same places, and no bare CR or LF before each;
 *   - fed whole, byte by byte or in random chunks, each with room for all
 *     of the output or with output buffers of 1..16 bytes, it gives the
 *     same output and state; every call keeps to its room, consumes all
 *     with room for SMTP_NORMALISE_OUT_MAX, at least one byte with room
 *     for 3, and stops only at a byte whose output does not fit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp.h"

#define CHUNK_MAX 600 /* fuzz_chunker's largest chunk */

struct result {
	char *out;
	size_t len;
	struct smtp_normalise n;
	int held; /* a final CR is held back (reference only) */
};

/* Output room that ends where this array ends: ASan sees a write past it. */
static char scratch[SMTP_NORMALISE_OUT_MAX(CHUNK_MAX)];

static void
xalloc(struct result *r, size_t n)
{
	r->out = malloc(SMTP_NORMALISE_OUT_MAX(n));
	FUZZ_CHECK(r->out != NULL, "out of memory");
	r->len = 0;
}

/* Counters and state must agree too: later input depends on them. */
static void
check_same(const struct result *a, const struct result *b, const char *what)
{
	FUZZ_CHECK(a->len == b->len && memcmp(a->out, b->out, a->len) == 0,
	    "%s: output differs (%zu bytes, reference %zu)", what, a->len,
	    b->len);
	FUZZ_CHECK(a->n.bare_lf == b->n.bare_lf &&
	    a->n.bare_cr == b->n.bare_cr && a->n.dots == b->n.dots,
	    "%s: bare_lf %lu bare_cr %lu dots %lu, reference %lu %lu %lu", what,
	    a->n.bare_lf, a->n.bare_cr, a->n.dots, b->n.bare_lf, b->n.bare_cr,
	    b->n.dots);
	FUZZ_CHECK(a->n.long_line == b->n.long_line,
	    "%s: long_line %d, reference %d", what, a->n.long_line,
	    b->n.long_line);
}

/*
 * One call into out[0..cap), with the contract's checks.  A call that
 * stops early must stop at a byte whose output (tried on a copy of the
 * state) does not fit in what is left.
 */
static size_t
call(struct smtp_normalise *n, const uint8_t *in, size_t k, char *out,
    size_t cap, size_t *got)
{
	struct smtp_normalise t;
	char probe[SMTP_NORMALISE_OUT_MAX(1)];
	size_t c, p;

	*got = (size_t)-1;
	c = smtp_normalise(n, (const char *)in, k, out, cap, got);
	FUZZ_CHECK(c <= k, "consumed %zu of %zu", c, k);
	FUZZ_CHECK(*got <= cap, "wrote %zu into %zu", *got, cap);
	FUZZ_CHECK(*got <= SMTP_NORMALISE_OUT_MAX(c),
	    "wrote %zu for %zu input bytes", *got, c);
	if (cap >= SMTP_NORMALISE_OUT_MAX(k))
		FUZZ_CHECK(c == k, "consumed %zu of %zu with room %zu", c, k,
		    cap);
	if (cap >= 3 && k > 0)
		FUZZ_CHECK(c > 0, "no progress with room %zu", cap);
	if (c == 0)
		FUZZ_CHECK(*got == 0, "wrote %zu, consumed nothing", *got);
	if (c < k) {
		t = *n;
		FUZZ_CHECK(smtp_normalise(&t, (const char *)in + c, 1, probe,
		    sizeof(probe), &p) == 1, "one byte not consumed");
		FUZZ_CHECK(p > cap - *got,
		    "stopped with %zu of room left, next byte needs %zu",
		    cap - *got, p);
	}
	return c;
}

static void
whole(const uint8_t *d, size_t n, struct result *r)
{
	xalloc(r, n);
	smtp_normalise_init(&r->n);
	/* The documented room for all of it, exactly (ASan checks). */
	call(&r->n, d, n, r->out, SMTP_NORMALISE_OUT_MAX(n), &r->len);
}

/*
 * Input in chunks of fuzz_chunker mode `mode`; small: output room per
 * call 1..16 bytes (a stall below 3 is retried with 3), else room for
 * all of the chunk.  off (optional) gets the output length after each
 * input byte count.
 */
static void
split(const uint8_t *d, size_t n, int mode, int small, struct result *r,
    size_t *off)
{
	struct fuzz_chunker ch, caps;
	size_t pos = 0, k, c, cap, got;
	int stalled = 0;

	xalloc(r, n);
	fuzz_chunker_init(&ch, d, n, mode);
	fuzz_chunker_init(&caps, d, n, 1);
	smtp_normalise_init(&r->n);
	if (off != NULL)
		off[0] = 0;
	while (pos < n) {
		k = fuzz_chunker_next(&ch);
		if (k > n - pos)
			k = n - pos;
		/* A whole chunk, in as many calls as its room needs. */
		while (k > 0) {
			if (!small)
				cap = SMTP_NORMALISE_OUT_MAX(k);
			else if (stalled)
				cap = 3;
			else
				cap = fuzz_chunker_next(&caps);
			c = call(&r->n, d + pos, k, scratch + sizeof(scratch) -
			    cap, cap, &got);
			stalled = c == 0;
			FUZZ_CHECK(r->len + got <= SMTP_NORMALISE_OUT_MAX(n),
			    "%zu bytes written for %zu", r->len + got, n);
			memcpy(r->out + r->len, scratch + sizeof(scratch) - cap,
			    got);
			r->len += got;
			pos += c;
			k -= c;
			if (off != NULL && c > 0)
				off[pos] = r->len; /* byte by byte: c is 1 */
		}
	}
}

/*
 * The reference, line by line.  The data starts as if after a CRLF.  A
 * line without its LF yet is written as far as known: a final CR could
 * still be a line end, so it is held.
 */
static void
reference(const uint8_t *d, size_t n, struct result *r)
{
	size_t i = 0, j, end, len, k;
	int real = 1, crlf, extra;

	xalloc(r, n);
	memset(&r->n, 0, sizeof(r->n));
	r->held = 0;
	while (i < n) {
		for (j = i; j < n && d[j] != '\n'; j++)
			;
		crlf = j < n && j > i && d[j - 1] == '\r';
		end = crlf ? j - 1 : j;
		if (j == n && end > i && d[end - 1] == '\r') {
			r->held = 1;
			end--;
		}
		/* After a bare LF nobody stuffed it; ".\n" is no end either. */
		extra = end > i && d[i] == '.' &&
		    (!real || (end - i == 1 && j < n && !crlf));
		len = end - i + (size_t)extra;
		if (extra) {
			r->out[r->len++] = '.';
			r->n.dots++;
		}
		for (k = i; k < end; k++) {
			r->out[r->len++] = d[k] == '\r' ? ' ' : (char)d[k];
			r->n.bare_cr += d[k] == '\r';
		}
		if (len > SMTP_TEXT_LINE_MAX - 2)
			r->n.long_line = 1;
		if (j == n)
			break;
		r->out[r->len++] = '\r';
		r->out[r->len++] = '\n';
		r->n.bare_lf += !crlf;
		real = crlf;
		i = j + 1;
	}
}

/* Every CR is followed by LF and every LF preceded by CR. */
static void
check_only_crlf(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\r')
			FUZZ_CHECK(i + 1 < len && p[i + 1] == '\n',
			    "bare CR at %zu of the output", i);
		if (p[i] == '\n')
			FUZZ_CHECK(i > 0 && p[i - 1] == '\r',
			    "bare LF at %zu of the output", i);
	}
}

static int
has_bare(const uint8_t *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
			return 1;
		if (d[i] == '\r' && i + 1 < n && d[i + 1] != '\n')
			return 1;
	}
	return 0;
}

/*
 * The scanner over input and output, message after message (after an
 * end a new scan starts, as a new DATA would): each end in the input is
 * an end in the output at the place its bytes went to (off), and the
 * output has no other.
 */
static void
check_ends(const uint8_t *d, size_t n, const struct result *w,
    const size_t *off)
{
	struct smtp_data_scan si, so;
	size_t qi = 0, pi = 0, ci, co;
	int di, dout, msg;

	for (msg = 1;; msg++) {
		FUZZ_CHECK(pi == off[qi], "message %d starts at %zu, not %zu",
		    msg, pi, off[qi]);
		smtp_data_scan_init(&si);
		smtp_data_scan_init(&so);
		ci = smtp_data_scan(&si, (const char *)d + qi, n - qi, &di,
		    NULL);
		co = smtp_data_scan(&so, w->out + pi, w->len - pi, &dout, NULL);
		FUZZ_CHECK(so.bare_lf == 0 && so.bare_cr == 0,
		    "message %d: the scanner finds a bare CR or LF in the output",
		    msg);
		if (!di) {
			FUZZ_CHECK(!dout, "output ends at %zu, the input does not",
			    pi + co);
			return;
		}
		FUZZ_CHECK(dout && pi + co == off[qi + ci],
		    "message %d: input ends at %zu (output %zu), output at %s%zu",
		    msg, qi + ci, off[qi + ci], dout ? "" : "none, ", pi + co);
		qi += ci;
		pi += co;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static const char *const name[2][3] = {
		{ "byte by byte", "small chunks", "large chunks" },
		{ "byte by byte, small room", "small chunks, small room",
		    "large chunks, small room" },
	};
	struct result w, ref, s;
	size_t *off;
	int mode, small;

	reference(d, n, &ref);
	whole(d, n, &w);
	check_same(&w, &ref, "whole");
	FUZZ_CHECK(w.len <= SMTP_NORMALISE_OUT_MAX(n), "%zu bytes for %zu",
	    w.len, n);
	FUZZ_CHECK(w.len + ref.held == n + w.n.bare_lf + w.n.dots,
	    "%zu bytes for %zu, bare_lf %lu, dots %lu, held %d", w.len, n,
	    w.n.bare_lf, w.n.dots, ref.held);
	check_only_crlf(w.out, w.len);
	if (!has_bare(d, n))
		FUZZ_CHECK(w.len + ref.held == n &&
		    memcmp(w.out, d, w.len) == 0,
		    "input without bare CR or LF changed");

	off = malloc((n + 1) * sizeof(*off));
	FUZZ_CHECK(off != NULL, "out of memory");
	for (small = 0; small < 2; small++)
		for (mode = 0; mode < 3; mode++) {
			split(d, n, mode, small, &s,
			    mode == 0 && !small ? off : NULL);
			check_same(&s, &w, name[small][mode]);
			FUZZ_CHECK(s.n.state == w.n.state &&
			    s.n.linelen == w.n.linelen,
			    "%s: state %d linelen %zu, whole %d %zu",
			    name[small][mode], s.n.state, s.n.linelen,
			    w.n.state, w.n.linelen);
			free(s.out);
		}
	check_ends(d, n, &w, off);

	free(off);
	free(ref.out);
	free(w.out);
	return 0;
}
