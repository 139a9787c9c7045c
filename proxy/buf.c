/*
 * Fixed-capacity byte buffer.  It is allocated at its full capacity when
 * first written to, never larger, so a peer can never make a buffer grow:
 * the owner chose its maximum.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int
buf_init(struct buf *b, size_t cap)
{
	b->start = b->end = 0;
	b->data = NULL;
	if (cap == SIZE_MAX) {
		b->cap = 0;
		return -1;
	}
	b->cap = cap;
	return 0;
}

/* One spare byte past cap takes vsnprintf's terminator in buf_printf. */
static int
buf_take(struct buf *b)
{
	if (b->data == NULL && (b->data = malloc(b->cap + 1)) == NULL)
		return -1;
	return 0;
}

void
buf_release(struct buf *b)
{
	if (buf_len(b) == 0) {
		free(b->data);
		b->data = NULL;
		b->start = b->end = 0;
	}
}

const char *
buf_head(const struct buf *b)
{
	static const char none[1];

	return b->data != NULL ? b->data + b->start : none;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->cap = b->start = b->end = 0;
}

/* Move the unread bytes to the front. */
static void
buf_compact(struct buf *b)
{
	size_t len = buf_len(b);

	if (b->start == 0)
		return;
	if (len > 0)
		memmove(b->data, b->data + b->start, len);
	b->start = 0;
	b->end = len;
}

size_t
buf_space(struct buf *b)
{
	/*
	 * All free space is offered, so a reader is never starved by bytes
	 * already consumed.  The copy only happens after a consume, and
	 * consuming everything resets the buffer without one.
	 */
	if (buf_take(b) == -1)
		return 0;
	buf_compact(b);
	return b->cap - b->end;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n > b->cap - buf_len(b))
		return -1;
	if (n == 0)
		return 0;
	if (buf_take(b) == -1)
		return -1;
	if (n > b->cap - b->end)
		buf_compact(b);
	memcpy(b->data + b->end, p, n);
	b->end += n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (buf_take(b) == -1)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > b->cap - buf_len(b))
		return -1;
	if ((size_t)n > b->cap - b->end)
		buf_compact(b);
	/* end + n <= cap, so the terminator lands at most in the spare byte. */
	va_start(ap, fmt);
	vsnprintf(b->data + b->end, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->end += (size_t)n;
	return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n > buf_len(b))
		n = buf_len(b);
	b->start += n;
	/* An empty buffer starts over at the front: no copy needed later. */
	if (b->start == b->end)
		b->start = b->end = 0;
}

void
buf_reset(struct buf *b)
{
	b->start = b->end = 0;
}
