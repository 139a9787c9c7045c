/*
 * fetchproto_decode_request() (policy/fetchproto.c): what mxtls-fetch
 * decodes from mxtls.  Invariants: a decoded request re-encodes (the
 * decoder applies the encoder's rules), decoding that encoding gives the
 * same request, and encoding is stable; the limits hold (url https and
 * at most FETCHPROTO_URL_MAX, 1..16 addresses of 4 or 16 bytes,
 * max_bytes and timeouts in range, known flags, strings without CR or
 * LF); on failure nothing is left to free and an error is set.
 */
#include <strings.h>

#include "fuzz_fetchproto.h"

static void
check_request(const struct fetch_request *rq)
{
	int i;

	FUZZ_CHECK(rq->url != NULL && strncasecmp(rq->url, "https://", 8) == 0,
	    "url not https");
	fuzz_check_str(rq->url, FETCHPROTO_URL_MAX, "url");
	fuzz_check_str(rq->ca_bundle, FETCHPROTO_PATH_MAX, "ca_bundle");
	fuzz_check_str(rq->etag, FETCHPROTO_ETAG_MAX, "etag");
	fuzz_check_str(rq->if_modified_since, FETCHPROTO_DATE_MAX, "ims");
	FUZZ_CHECK(rq->ca_bundle == NULL || rq->ca_bundle[0] == '/',
	    "ca_bundle not absolute");
	FUZZ_CHECK(rq->naddrs >= 1 && rq->naddrs <= FETCHPROTO_ADDRS_MAX,
	    "naddrs %d", rq->naddrs);
	for (i = 0; i < rq->naddrs; i++)
		FUZZ_CHECK(rq->addrs[i].len == 4 || rq->addrs[i].len == 16,
		    "addr %d of %d bytes", i, rq->addrs[i].len);
	FUZZ_CHECK(rq->max_bytes >= 1 && rq->max_bytes <= FETCHPROTO_BODY_MAX,
	    "max_bytes %u", rq->max_bytes);
	FUZZ_CHECK(rq->connect_timeout_ms >= 1 &&
	    rq->connect_timeout_ms <= FETCHPROTO_TIMEOUT_MAX &&
	    rq->timeout_ms >= 1 && rq->timeout_ms <= FETCHPROTO_TIMEOUT_MAX,
	    "timeouts %u %u", rq->connect_timeout_ms, rq->timeout_ms);
	FUZZ_CHECK((rq->flags & ~FETCHPROTO_F_ALL) == 0, "flags %#x",
	    rq->flags);
	/* A POST: a body of 1..BODY_MAX bytes with its type, unconditional. */
	fuzz_check_str(rq->content_type, FETCHPROTO_CTYPE_MAX, "content_type");
	FUZZ_CHECK((rq->body != NULL) == (rq->content_type != NULL),
	    "body and content_type not together");
	FUZZ_CHECK(rq->body == NULL || (rq->body_len >= 1 &&
	    rq->body_len <= FETCHPROTO_BODY_MAX && rq->etag == NULL &&
	    rq->if_modified_since == NULL), "bad POST");
	FUZZ_CHECK(strpbrk(rq->url, "\r\n ") == NULL, "url with CR/LF/SP");
	FUZZ_CHECK(rq->etag == NULL || strpbrk(rq->etag, "\r\n") == NULL,
	    "etag with CR/LF");
	FUZZ_CHECK(rq->if_modified_since == NULL ||
	    strpbrk(rq->if_modified_since, "\r\n") == NULL, "ims with CR/LF");
}

static int
same(const struct fetch_request *a, const struct fetch_request *b)
{
	int i;

	if (a->id != b->id || !fuzz_streq(a->url, b->url) ||
	    a->naddrs != b->naddrs || !fuzz_streq(a->ca_bundle, b->ca_bundle) ||
	    a->max_bytes != b->max_bytes ||
	    a->connect_timeout_ms != b->connect_timeout_ms ||
	    a->timeout_ms != b->timeout_ms || !fuzz_streq(a->etag, b->etag) ||
	    !fuzz_streq(a->if_modified_since, b->if_modified_since) ||
	    a->flags != b->flags || a->body_len != b->body_len ||
	    !fuzz_streq(a->content_type, b->content_type) ||
	    (a->body_len > 0 && memcmp(a->body, b->body, a->body_len) != 0))
		return 0;
	for (i = 0; i < a->naddrs; i++)
		if (a->addrs[i].len != b->addrs[i].len ||
		    memcmp(a->addrs[i].a, b->addrs[i].a, a->addrs[i].len) != 0)
			return 0;
	return 1;
}

static void
one(const unsigned char *frame, size_t len)
{
	struct fetch_request rq, rq2;
	unsigned char *enc = NULL, *enc2 = NULL;
	size_t elen = 0, elen2 = 0, flen = 0;
	char err[256];

	err[0] = '\0';
	if (fetchproto_decode_request(frame, len, &rq, err, sizeof(err)) < 0) {
		FUZZ_CHECK(err[0] != '\0', "failure without why");
		FUZZ_CHECK(rq.url == NULL && rq.ca_bundle == NULL &&
		    rq.etag == NULL && rq.if_modified_since == NULL &&
		    rq.body == NULL && rq.content_type == NULL,
		    "failure left strings");
		return;
	}
	check_request(&rq);
	FUZZ_CHECK(fetchproto_encode_request(&rq, &enc, &elen, err,
	    sizeof(err)) == 0, "decoded request does not encode: %s", err);
	FUZZ_CHECK(fetchproto_frame(enc, elen, &flen) == 1 && flen == elen,
	    "encoding is not one frame");
	FUZZ_CHECK(fetchproto_decode_request(enc, elen, &rq2, err,
	    sizeof(err)) == 0, "encoding does not decode: %s", err);
	FUZZ_CHECK(same(&rq, &rq2), "round trip changed the request");
	FUZZ_CHECK(fetchproto_encode_request(&rq2, &enc2, &elen2, err,
	    sizeof(err)) == 0 && elen2 == elen && memcmp(enc, enc2, elen) == 0,
	    "encoding not stable");
	free(enc);
	free(enc2);
	fetchproto_request_free(&rq2);
	fetchproto_request_free(&rq);
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
