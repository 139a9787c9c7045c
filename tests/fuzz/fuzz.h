/*
 * Shared by the libFuzzer harnesses of tests/fuzz/: an invariant check
 * that reports what broke and aborts (libFuzzer then saves the input as a
 * crash reproducer), and a deterministic chunking of an input for the
 * "split feeding agrees with whole feeding" checks.
 */
#ifndef MXTLS_FUZZ_H
#define MXTLS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                              \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: invariant broken: %s: ",   \
			    __FILE__, __LINE__, #cond);                    \
			fprintf(stderr, __VA_ARGS__);                      \
			fprintf(stderr, "\n");                             \
			abort();                                           \
		}                                                          \
	} while (0)

/*
 * Chunk sizes derived from the data itself (FNV-1a of the input and a
 * xorshift generator), so a seed keeps its meaning and still gets
 * varied splits; mode 0: one byte at a time; mode 1: small random chunks
 * (1..16); mode 2: larger random chunks (1..600).
 */
struct fuzz_chunker {
	uint64_t x;
	int mode;
};

static inline void
fuzz_chunker_init(struct fuzz_chunker *c, const uint8_t *data, size_t len,
    int mode)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ data[i]) * 0x100000001b3ull;
	c->x = h ^ (uint64_t)mode * 0x9e3779b97f4a7c15ull;
	if (c->x == 0)
		c->x = 1;
	c->mode = mode;
}

static inline size_t
fuzz_chunker_next(struct fuzz_chunker *c)
{
	if (c->mode == 0)
		return 1;
	c->x ^= c->x << 13;
	c->x ^= c->x >> 7;
	c->x ^= c->x << 17;
	return 1 + (size_t)(c->x % (c->mode == 1 ? 16 : 600));
}

#endif
