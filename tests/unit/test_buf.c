/*
 * Unit tests for proxy/buf.c: a fixed-capacity buffer that never grows,
 * appends all or nothing, and compacts to offer all its free space.
 */
#include "buf.h"
#include "t.h"

static void
test_buf_init_free(void)
{
	struct buf b;

	CHECK_INT(buf_init(&b, 16), 0);
	CHECK(b.data == NULL); /* no memory until bytes go in */
	CHECK_INT(b.cap, 16);
	CHECK_INT(buf_len(&b), 0);
	CHECK_INT(buf_room(&b), 16);
	CHECK(b.data == NULL);
	CHECK_STR(buf_head(&b), "");
	CHECK_INT(buf_space(&b), 16);
	CHECK(b.data != NULL);
	buf_free(&b);
	CHECK(b.data == NULL);
	CHECK_INT(b.cap, 0);
	buf_free(&b); /* twice is harmless */

	/* A zero capacity is a valid, useless buffer. */
	CHECK_INT(buf_init(&b, 0), 0);
	CHECK_INT(buf_space(&b), 0);
	CHECK_INT(buf_append(&b, "", 0), 0);
	CHECK_INT(buf_append(&b, "x", 1), -1);
	CHECK_INT(buf_printf(&b, "%s", ""), 0);
	CHECK_INT(buf_printf(&b, "x"), -1);
	buf_free(&b);

	CHECK_INT(buf_init(&b, (size_t)-1), -1);
	CHECK(b.data == NULL);
}

/* An empty buffer gives its memory back; a full one keeps it. */
static void
test_buf_release(void)
{
	struct buf b;

	CHECK_INT(buf_init(&b, 8), 0);
	CHECK_INT(buf_append(&b, "abc", 3), 0);
	CHECK(b.data != NULL);
	buf_release(&b);
	CHECK(b.data != NULL); /* not empty: kept */
	CHECK_INT(buf_len(&b), 3);
	buf_consume(&b, 3);
	buf_release(&b);
	CHECK(b.data == NULL);
	CHECK_INT(buf_room(&b), 8);
	CHECK_INT(buf_append(&b, "defghijk", 8), 0); /* taken again, whole */
	CHECK_INT(buf_append(&b, "x", 1), -1);
	CHECK(memcmp(buf_head(&b), "defghijk", 8) == 0);
	buf_free(&b);
}

static void
test_buf_append_consume(void)
{
	struct buf b;

	CHECK_INT(buf_init(&b, 8), 0);
	CHECK_INT(buf_append(&b, "abc", 3), 0);
	CHECK_INT(buf_append(&b, "defgh", 5), 0);
	CHECK_INT(buf_len(&b), 8);
	CHECK(memcmp(buf_head(&b), "abcdefgh", 8) == 0);
	buf_consume(&b, 2);
	CHECK_INT(buf_len(&b), 6);
	CHECK(memcmp(buf_head(&b), "cdefgh", 6) == 0);
	/* Consuming everything starts over at the front. */
	buf_consume(&b, 6);
	CHECK_INT(buf_len(&b), 0);
	CHECK_INT(b.start, 0);
	CHECK_INT(b.end, 0);
	/* Consuming more than there is only empties it. */
	CHECK_INT(buf_append(&b, "xy", 2), 0);
	buf_consume(&b, 100);
	CHECK_INT(buf_len(&b), 0);
	buf_free(&b);
}

static void
test_buf_append_all_or_nothing(void)
{
	struct buf b;

	CHECK_INT(buf_init(&b, 8), 0);
	CHECK_INT(buf_append(&b, "abcdef", 6), 0);
	CHECK_INT(buf_append(&b, "xyz", 3), -1);
	CHECK_INT(buf_len(&b), 6);
	CHECK(memcmp(buf_head(&b), "abcdef", 6) == 0);
	/* Room at the head is used by compacting. */
	buf_consume(&b, 4);
	CHECK_INT(buf_append(&b, "123456", 6), 0);
	CHECK_INT(buf_len(&b), 8);
	CHECK_INT(b.start, 0);
	CHECK(memcmp(buf_head(&b), "ef123456", 8) == 0);
	CHECK_INT(buf_append(&b, "!", 1), -1);
	CHECK(memcmp(buf_head(&b), "ef123456", 8) == 0);
	buf_free(&b);
}

static void
test_buf_space_compacts(void)
{
	struct buf b;

	CHECK_INT(buf_init(&b, 10), 0);
	CHECK_INT(buf_append(&b, "0123456789", 10), 0);
	/* Full tail, free head: compaction is the only way to get room. */
	buf_consume(&b, 3);
	CHECK_INT(buf_space(&b), 3);
	CHECK_INT(b.start, 0);
	CHECK(memcmp(buf_head(&b), "3456789", 7) == 0);
	buf_consume(&b, 1);
	CHECK_INT(buf_space(&b), 4);
	CHECK_INT(b.start, 0);
	CHECK(memcmp(buf_head(&b), "456789", 6) == 0);
	/* Nothing consumed since: no copy, same answer. */
	CHECK_INT(buf_space(&b), 4);

	/* Writing through the tail. */
	memcpy(buf_tail(&b), "ab", 2);
	buf_commit(&b, 2);
	CHECK_INT(buf_len(&b), 8);
	CHECK(memcmp(buf_head(&b), "456789ab", 8) == 0);
	CHECK_INT(buf_space(&b), 2);
	CHECK_INT(b.start, 0);
	buf_free(&b);
}

static void
test_buf_printf(void)
{
	struct buf b;

	CHECK_INT(buf_init(&b, 16), 0);
	CHECK_INT(buf_printf(&b, "%d %s\r\n", 250, "OK"), 0);
	CHECK_INT(buf_len(&b), 8);
	CHECK(memcmp(buf_head(&b), "250 OK\r\n", 8) == 0);
	/* Exactly filling the buffer works: no room is lost to the NUL. */
	CHECK_INT(buf_printf(&b, "%s", "12345678"), 0);
	CHECK_INT(buf_len(&b), 16);
	CHECK_INT(buf_printf(&b, "x"), -1);
	CHECK_INT(buf_len(&b), 16);
	/* Too long: nothing is written. */
	buf_consume(&b, 8);
	CHECK_INT(buf_printf(&b, "%s", "123456789"), -1);
	CHECK_INT(buf_len(&b), 8);
	CHECK(memcmp(buf_head(&b), "12345678", 8) == 0);
	/* Fits after compaction. */
	CHECK_INT(buf_printf(&b, "%08d", 42), 0);
	CHECK(memcmp(buf_head(&b), "1234567800000042", 16) == 0);
	buf_free(&b);
}

static void
test_buf_reset(void)
{
	struct buf b;

	CHECK_INT(buf_init(&b, 4), 0);
	CHECK_INT(buf_append(&b, "abcd", 4), 0);
	buf_consume(&b, 1);
	buf_reset(&b);
	CHECK_INT(buf_len(&b), 0);
	CHECK_INT(buf_space(&b), 4);
	CHECK_INT(buf_append(&b, "wxyz", 4), 0);
	CHECK(memcmp(buf_head(&b), "wxyz", 4) == 0);
	buf_free(&b);
}

int
main(void)
{
	RUN(test_buf_init_free);
	RUN(test_buf_release);
	RUN(test_buf_append_consume);
	RUN(test_buf_append_all_or_nothing);
	RUN(test_buf_space_compacts);
	RUN(test_buf_printf);
	RUN(test_buf_reset);
	return T_DONE();
}
