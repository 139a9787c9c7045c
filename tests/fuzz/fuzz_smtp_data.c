/*
 * smtp_data_scan() (proxy/smtp.c), the DATA end-of-message scanner that
 * decides which downstream bytes are message and which are the next
 * (pipelined) commands.  Invariants:
 *   - the end is found exactly where a reference search finds the first
 *     CRLF "." CRLF (data start counting as after a CRLF): the bytes
 *     reported as message never hold an end marker before the real one,
 *     and none is missed;
 *   - nothing after the marker is consumed; total = consumed - 3 when
 *     done, else consumed;
 *   - the safe prefix (bytes forwarded verbatim) has no bare LF, no CR
 *     that is followed by anything but LF, no line over
 *     SMTP_TEXT_LINE_MAX with its CRLF, and it is the longest such prefix
 *     (it stops at the first problem);
 *   - the safe prefix has no NUL either;
 *   - the flags bare_lf, bare_cr, long_line and nul are what a reference scan
 *     of the message bytes says;
 *   - feeding one byte at a time or in random chunks gives the same
 *     consumed count, end, total, flags and safe prefix as one call.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp.h"

struct outcome {
	size_t consumed;
	int done;
	size_t safe; /* length of the safe prefix */
	struct smtp_data_scan s;
};

/* Where the message ends (just after ".\r\n"), or SIZE_MAX. */
static size_t
ref_end(const uint8_t *d, size_t n)
{
	size_t i;

	if (n >= 3 && memcmp(d, ".\r\n", 3) == 0)
		return 3;
	for (i = 0; i + 5 <= n; i++)
		if (memcmp(d + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return SIZE_MAX;
}

/*
 * The reference flags for msg[0..n) and the first problem offset, with
 * the scanner's documented conventions: a bare CR is known at the byte
 * after it (safe stops there), a bare LF at the LF, an over-long line at
 * the byte that makes it too long; a leading "." counts as content; line
 * length restarts after any LF; a CR that is the last byte is still
 * pending, not yet bare; a NUL is known at the NUL (it is never passed on).
 */
static void
ref_flags(const uint8_t *m, size_t n, int *bare_lf, int *bare_cr, int *lng,
    int *nul, size_t *problem)
{
	size_t i, linelen = 0;

	*bare_lf = *bare_cr = *lng = *nul = 0;
	*problem = SIZE_MAX;
	for (i = 0; i < n; i++) {
		if (m[i] == '\r') {
			if (i + 1 < n && m[i + 1] == '\n') {
				i++;
				linelen = 0;
				continue;
			}
			if (i + 1 < n) {
				*bare_cr = 1;
				if (*problem == SIZE_MAX)
					*problem = i + 1;
				/* the CR stays in the line as content */
				if (++linelen > SMTP_TEXT_LINE_MAX - 2) {
					*lng = 1;
					if (*problem == SIZE_MAX)
						*problem = i + 1;
				}
			}
			continue;
		}
		if (m[i] == '\n') {
			*bare_lf = 1;
			if (*problem == SIZE_MAX)
				*problem = i;
			linelen = 0;
			continue;
		}
		if (m[i] == '\0') {
			*nul = 1;
			if (*problem == SIZE_MAX)
				*problem = i;
		}
		if (++linelen > SMTP_TEXT_LINE_MAX - 2) {
			*lng = 1;
			if (*problem == SIZE_MAX)
				*problem = i;
		}
	}
}

static void
check_safe_prefix(const uint8_t *d, size_t safe)
{
	size_t i, linelen = 0;

	for (i = 0; i < safe; i++) {
		FUZZ_CHECK(d[i] != '\0', "NUL at %zu inside the safe prefix", i);
		if (d[i] == '\n')
			FUZZ_CHECK(i > 0 && d[i - 1] == '\r',
			    "bare LF at %zu inside the safe prefix", i);
		if (d[i] == '\r' && i + 1 < safe)
			FUZZ_CHECK(d[i + 1] == '\n',
			    "bare CR at %zu inside the safe prefix", i);
		if (d[i] == '\r' || d[i] == '\n') {
			if (d[i] == '\n')
				linelen = 0;
			continue;
		}
		linelen++;
		FUZZ_CHECK(linelen <= SMTP_TEXT_LINE_MAX - 2,
		    "line over %d bytes inside the safe prefix",
		    SMTP_TEXT_LINE_MAX);
	}
}

static void
whole(const uint8_t *d, size_t n, struct outcome *o)
{
	size_t safe = 0, c;
	int done = 0;

	smtp_data_scan_init(&o->s);
	c = smtp_data_scan(&o->s, (const char *)d, n, &done, &safe);
	FUZZ_CHECK(c <= n, "consumed %zu of %zu", c, n);
	FUZZ_CHECK(safe <= c, "safe %zu > consumed %zu", safe, c);
	o->consumed = c;
	o->done = done;
	o->safe = safe;
	/* Once done, nothing more is consumed. */
	if (done) {
		c = smtp_data_scan(&o->s, (const char *)d + c, n - c, &done,
		    &safe);
		FUZZ_CHECK(c == 0 && done == 1 && safe == 0,
		    "scanner went on after the end");
	}
}

static void
split(const uint8_t *d, size_t n, int mode, struct outcome *o)
{
	struct fuzz_chunker ch;
	size_t pos = 0, k, c, safe;
	int done = 0, safe_open = 1;

	fuzz_chunker_init(&ch, d, n, mode);
	smtp_data_scan_init(&o->s);
	o->safe = 0;
	while (pos < n && !done) {
		k = fuzz_chunker_next(&ch);
		if (k > n - pos)
			k = n - pos;
		safe = (size_t)-1;
		c = smtp_data_scan(&o->s, (const char *)d + pos, k, &done,
		    &safe);
		FUZZ_CHECK(c <= k, "split: consumed %zu of %zu", c, k);
		FUZZ_CHECK(safe <= c, "split: safe %zu > consumed %zu", safe,
		    c);
		FUZZ_CHECK(done || c == k,
		    "split: bytes left over without an end");
		if (safe_open) {
			o->safe += safe;
			if (safe < c)
				safe_open = 0;
		} else
			FUZZ_CHECK(safe == 0, "safe again after a problem");
		pos += c;
	}
	o->consumed = pos;
	o->done = done;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct outcome w, s;
	size_t end, problem, msg;
	int blf, bcr, lng, nul, mode;

	whole(d, n, &w);

	/* The end marker, against the reference. */
	end = ref_end(d, n);
	if (end == SIZE_MAX) {
		FUZZ_CHECK(!w.done, "end reported, none in the input");
		FUZZ_CHECK(w.consumed == n, "consumed %zu of %zu without end",
		    w.consumed, n);
	} else {
		FUZZ_CHECK(w.done, "end marker at %zu missed", end);
		FUZZ_CHECK(w.consumed == end, "ended at %zu, marker ends at %zu",
		    w.consumed, end);
	}
	FUZZ_CHECK(w.s.total == w.consumed - (w.done ? 3 : 0),
	    "total %zu, consumed %zu", w.s.total, w.consumed);

	/* Flags and safe prefix, against the reference. */
	msg = w.consumed - (w.done ? 3 : 0);
	ref_flags(d, msg, &blf, &bcr, &lng, &nul, &problem);
	FUZZ_CHECK(w.s.bare_lf == blf, "bare_lf %d, reference %d",
	    w.s.bare_lf, blf);
	FUZZ_CHECK(w.s.bare_cr == bcr, "bare_cr %d, reference %d",
	    w.s.bare_cr, bcr);
	FUZZ_CHECK(w.s.long_line == lng, "long_line %d, reference %d",
	    w.s.long_line, lng);
	FUZZ_CHECK(w.s.nul == nul, "nul %d, reference %d", w.s.nul, nul);
	FUZZ_CHECK(w.safe == (problem == SIZE_MAX ? w.consumed : problem),
	    "safe %zu, reference %zu (consumed %zu)", w.safe, problem,
	    w.consumed);
	check_safe_prefix(d, w.safe);

	for (mode = 0; mode < 3; mode++) {
		memset(&s, 0, sizeof(s));
		split(d, n, mode, &s);
		FUZZ_CHECK(s.consumed == w.consumed && s.done == w.done,
		    "mode %d: consumed %zu done %d, whole %zu %d", mode,
		    s.consumed, s.done, w.consumed, w.done);
		FUZZ_CHECK(s.s.total == w.s.total && s.s.bare_lf == w.s.bare_lf &&
		    s.s.bare_cr == w.s.bare_cr &&
		    s.s.long_line == w.s.long_line && s.s.nul == w.s.nul,
		    "mode %d: totals or flags differ", mode);
		FUZZ_CHECK(s.safe == w.safe, "mode %d: safe %zu, whole %zu",
		    mode, s.safe, w.safe);
	}
	return 0;
}
