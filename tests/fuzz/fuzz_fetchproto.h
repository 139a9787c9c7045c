/*
 * Shared by fuzz_fetchproto_request.c and fuzz_fetchproto_response.c:
 * the input is a frame's payload (version, type, fields); the harness
 * adds the length prefix, so every input is well framed, and also decodes
 * the raw input as a frame of its own (prefix checks).
 */
#ifndef MXTLS_FUZZ_FETCHPROTO_H
#define MXTLS_FUZZ_FETCHPROTO_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetchproto.h"
#include "fuzz.h"

/* A new buffer: the 4-byte big-endian length, then the payload. */
static inline unsigned char *
fuzz_frame(const uint8_t *data, size_t size, size_t *len)
{
	unsigned char *f = malloc(size + FETCHPROTO_LEN_SIZE);

	if (f == NULL)
		abort();
	f[0] = (unsigned char)(size >> 24);
	f[1] = (unsigned char)(size >> 16);
	f[2] = (unsigned char)(size >> 8);
	f[3] = (unsigned char)size;
	if (size > 0)
		memcpy(f + FETCHPROTO_LEN_SIZE, data, size);
	*len = size + FETCHPROTO_LEN_SIZE;
	return f;
}

/* fetchproto_frame() on the raw input agrees with its prefix. */
static inline void
fuzz_check_framing(const uint8_t *data, size_t size)
{
	size_t flen = 0;
	uint32_t n;
	int r = fetchproto_frame(data, size, &flen);

	if (size < FETCHPROTO_LEN_SIZE) {
		FUZZ_CHECK(r == 0, "frame of %zu bytes: %d", size, r);
		return;
	}
	n = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
	    (uint32_t)data[2] << 8 | data[3];
	if (n < 2 || n > FETCHPROTO_FRAME_MAX)
		FUZZ_CHECK(r == -1, "prefix %u accepted", n);
	else if (size - FETCHPROTO_LEN_SIZE < n)
		FUZZ_CHECK(r == 0, "short frame: %d", r);
	else
		FUZZ_CHECK(r == 1 && flen == FETCHPROTO_LEN_SIZE + n,
		    "frame %d len %zu, prefix %u", r, flen, n);
}

static inline int
fuzz_streq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* A decoded string: non-empty, no NUL inside (by construction). */
static inline void
fuzz_check_str(const char *s, size_t max, const char *what)
{
	if (s == NULL)
		return;
	FUZZ_CHECK(s[0] != '\0' && strlen(s) <= max, "%s of %zu bytes", what,
	    strlen(s));
}

#endif
