/*
 * fetchproto_decode_response() (policy/fetchproto.c): what mxtls decodes
 * from mxtls-fetch (which handles a hostile policy server's bytes).
 * Invariants: a decoded response re-encodes, decodes back to the same
 * response, and encodes the same again; result known, body only with
 * FETCH_OK and within FETCHPROTO_BODY_MAX, strings within limits and
 * without CR or LF; on failure nothing is left to free.
 */
#include "fuzz_fetchproto.h"

static void
check_response(const struct fetch_response *rs)
{
	FUZZ_CHECK((unsigned)rs->result < FETCH_NRESULTS, "result %d",
	    rs->result);
	FUZZ_CHECK(rs->status <= FETCHPROTO_STATUS_MAX, "status %u",
	    rs->status);
	FUZZ_CHECK(rs->body_len <= FETCHPROTO_BODY_MAX, "body of %zu",
	    rs->body_len);
	FUZZ_CHECK((rs->body == NULL) == (rs->body_len == 0), "body pointer");
	FUZZ_CHECK(rs->body_len == 0 || rs->result == FETCH_OK,
	    "body with result %s", fetchproto_result_name(rs->result));
	fuzz_check_str(rs->content_type, FETCHPROTO_CTYPE_MAX, "ctype");
	fuzz_check_str(rs->etag, FETCHPROTO_ETAG_MAX, "etag");
	fuzz_check_str(rs->last_modified, FETCHPROTO_DATE_MAX, "lastmod");
	fuzz_check_str(rs->error, FETCHPROTO_ERROR_MAX, "error");
	FUZZ_CHECK(rs->content_type == NULL ||
	    strpbrk(rs->content_type, "\r\n") == NULL, "ctype with CR/LF");
	FUZZ_CHECK(rs->error == NULL || strpbrk(rs->error, "\r\n") == NULL,
	    "error with CR/LF");
	FUZZ_CHECK(strcmp(fetchproto_result_name(rs->result), "unknown") != 0,
	    "result without a name");
}

static int
same(const struct fetch_response *a, const struct fetch_response *b)
{
	return a->id == b->id && a->result == b->result &&
	    a->status == b->status &&
	    fuzz_streq(a->content_type, b->content_type) &&
	    fuzz_streq(a->etag, b->etag) &&
	    fuzz_streq(a->last_modified, b->last_modified) &&
	    fuzz_streq(a->error, b->error) && a->body_len == b->body_len &&
	    (a->body_len == 0 || memcmp(a->body, b->body, a->body_len) == 0) &&
	    a->duration_ms == b->duration_ms;
}

static void
one(const unsigned char *frame, size_t len)
{
	struct fetch_response rs, rs2;
	unsigned char *enc = NULL, *enc2 = NULL;
	size_t elen = 0, elen2 = 0, flen = 0;
	char err[256];

	err[0] = '\0';
	if (fetchproto_decode_response(frame, len, &rs, err, sizeof(err)) < 0) {
		FUZZ_CHECK(err[0] != '\0', "failure without why");
		FUZZ_CHECK(rs.content_type == NULL && rs.etag == NULL &&
		    rs.last_modified == NULL && rs.error == NULL &&
		    rs.body == NULL, "failure left strings");
		return;
	}
	check_response(&rs);
	FUZZ_CHECK(fetchproto_encode_response(&rs, &enc, &elen, err,
	    sizeof(err)) == 0, "decoded response does not encode: %s", err);
	FUZZ_CHECK(fetchproto_frame(enc, elen, &flen) == 1 && flen == elen,
	    "encoding is not one frame");
	FUZZ_CHECK(fetchproto_decode_response(enc, elen, &rs2, err,
	    sizeof(err)) == 0, "encoding does not decode: %s", err);
	FUZZ_CHECK(same(&rs, &rs2), "round trip changed the response");
	FUZZ_CHECK(fetchproto_encode_response(&rs2, &enc2, &elen2, err,
	    sizeof(err)) == 0 && elen2 == elen && memcmp(enc, enc2, elen) == 0,
	    "encoding not stable");
	free(enc);
	free(enc2);
	fetchproto_response_free(&rs2);
	fetchproto_response_free(&rs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *f;
	size_t len;

	fuzz_check_framing(data, size);
	one(data, size);
	f = fuzz_frame(data, size, &len);
	one(f, len);
	free(f);
	return 0;
}
