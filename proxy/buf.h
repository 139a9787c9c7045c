/*
 * A byte buffer with a fixed capacity: the owner decides the maximum and
 * the buffer never grows past it.  The memory is taken when bytes first
 * go in and can be given back whenever the buffer is empty, so an idle
 * connection holds none.  Pure memory, no I/O.
 */
#ifndef MXTLS_BUF_H
#define MXTLS_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t cap;   /* allocated and maximum size */
	size_t start; /* first unread byte */
	size_t end;   /* one past the last byte */
};

int buf_init(struct buf *b, size_t cap); /* 0, or -1 for an absurd cap */
void buf_free(struct buf *b);
/* Give the memory back if the buffer is empty (it comes back on use). */
void buf_release(struct buf *b);

static inline size_t buf_len(const struct buf *b) { return b->end - b->start; }
/* The unread bytes (a valid pointer even while no memory is held). */
const char *buf_head(const struct buf *b);
/* How many more bytes fit; allocates nothing. */
static inline size_t buf_room(const struct buf *b) { return b->cap - buf_len(b); }

/*
 * Contiguous free space at the tail for writing into (buf_tail), taking
 * the memory and compacting first when needed; 0 when out of memory.
 */
size_t buf_space(struct buf *b);
static inline char *buf_tail(struct buf *b) { return b->data + b->end; }
static inline void buf_commit(struct buf *b, size_t n) { b->end += n; }

/* Append all of p or nothing: 0, or -1 when it does not fit. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Append a printf-formatted string, all or nothing. */
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);

#endif
