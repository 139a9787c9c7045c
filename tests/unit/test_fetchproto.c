/*
 * policy/fetchproto.c: round trips, and frames that are truncated,
 * oversized, repeated, out of order or plain garbage.  Every decode runs
 * under ASan: "no crash" is half of each test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetchproto.h"
#include "t.h"

static char err[256];

/* ---- hand-built frames, to say what the encoder never would ---- */

struct hb {
	unsigned char b[8192];
	size_t len;
};

static void
hb_start(struct hb *h, int version, int type)
{
	h->len = 4;
	h->b[h->len++] = (unsigned char)version;
	h->b[h->len++] = (unsigned char)type;
}

static void
hb_field(struct hb *h, int tag, const void *v, size_t len)
{
	h->b[h->len] = (unsigned char)tag;
	h->b[h->len + 1] = (unsigned char)(len >> 24);
	h->b[h->len + 2] = (unsigned char)(len >> 16);
	h->b[h->len + 3] = (unsigned char)(len >> 8);
	h->b[h->len + 4] = (unsigned char)len;
	memcpy(h->b + h->len + 5, v, len);
	h->len += 5 + len;
}

static void
hb_u32(struct hb *h, int tag, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
		(unsigned char)(v >> 8), (unsigned char)v };

	hb_field(h, tag, b, 4);
}

static void
hb_str(struct hb *h, int tag, const char *s)
{
	hb_field(h, tag, s, strlen(s));
}

static void
hb_end(struct hb *h)
{
	size_t n = h->len - 4;

	h->b[0] = (unsigned char)(n >> 24);
	h->b[1] = (unsigned char)(n >> 16);
	h->b[2] = (unsigned char)(n >> 8);
	h->b[3] = (unsigned char)n;
}

/* The request tags, as fetch-protocol.md numbers them. */
enum { T_ID = 1, T_URL, T_ADDR, T_CA, T_MAX, T_CTO, T_TO, T_ETAG, T_IMS,
	T_FLAGS, T_BODY, T_CTYPE };

/* A minimal valid request, fields in the given order. */
static void
hb_min_request(struct hb *h)
{
	static const unsigned char a4[4] = { 127, 0, 0, 1 };

	hb_start(h, 1, 1);
	hb_u32(h, T_ID, 7);
	hb_str(h, T_URL, "https://mta-sts.example.com/.well-known/mta-sts.txt");
	hb_field(h, T_ADDR, a4, 4);
	hb_u32(h, T_MAX, 65536);
	hb_u32(h, T_CTO, 5000);
	hb_u32(h, T_TO, 60000);
}

static int
dec_req(struct hb *h, struct fetch_request *rq)
{
	hb_end(h);
	return fetchproto_decode_request(h->b, h->len, rq, err, sizeof(err));
}

/* ---- fixtures ---- */

static void
full_request(struct fetch_request *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->id = 0xdeadbeef;
	rq->url = "https://policy.example.net:8443/mxtls/policy.ini?x=1";
	rq->addrs[0].len = 4;
	memcpy(rq->addrs[0].a, "\xc0\x00\x02\x01", 4);
	rq->addrs[1].len = 16;
	memcpy(rq->addrs[1].a, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	rq->naddrs = 2;
	rq->ca_bundle = "/etc/mxtls/policy-ca.pem";
	rq->max_bytes = 1024 * 1024;
	rq->connect_timeout_ms = 10000;
	rq->timeout_ms = 60000;
	rq->etag = "W/\"5f3a-2b\"";
	rq->if_modified_since = "Tue, 15 Nov 1994 08:12:31 GMT";
	rq->flags = FETCHPROTO_F_TEXT_PLAIN;
}

static void
full_response(struct fetch_response *rs, unsigned char *body, size_t len)
{
	memset(rs, 0, sizeof(*rs));
	rs->id = 42;
	rs->result = FETCH_OK;
	rs->status = 200;
	rs->content_type = "text/plain; charset=utf-8";
	rs->etag = "\"abc\"";
	rs->last_modified = "Tue, 15 Nov 1994 08:12:31 GMT";
	rs->body = body;
	rs->body_len = len;
	rs->duration_ms = 123;
}

/* ---- tests ---- */

static void
request_round_trip(void)
{
	struct fetch_request in, out;
	unsigned char *f;
	size_t flen, n;

	full_request(&in);
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), 0);
	CHECK_INT(fetchproto_frame(f, flen, &n), 1);
	CHECK_INT(n, flen);
	CHECK_INT(fetchproto_decode_request(f, flen, &out, err, sizeof(err)), 0);
	CHECK_INT(out.id, 0xdeadbeef);
	CHECK_STR(out.url, in.url);
	CHECK_INT(out.naddrs, 2);
	CHECK_INT(out.addrs[0].len, 4);
	CHECK(memcmp(out.addrs[0].a, in.addrs[0].a, 4) == 0);
	CHECK_INT(out.addrs[1].len, 16);
	CHECK(memcmp(out.addrs[1].a, in.addrs[1].a, 16) == 0);
	CHECK_STR(out.ca_bundle, in.ca_bundle);
	CHECK_INT(out.max_bytes, in.max_bytes);
	CHECK_INT(out.connect_timeout_ms, 10000);
	CHECK_INT(out.timeout_ms, 60000);
	CHECK_STR(out.etag, in.etag);
	CHECK_STR(out.if_modified_since, in.if_modified_since);
	CHECK_INT(out.flags, FETCHPROTO_F_TEXT_PLAIN);
	fetchproto_request_free(&out);
	free(f);
}

static void
request_minimal(void)
{
	struct fetch_request in, out;
	unsigned char *f;
	size_t flen;

	full_request(&in);
	in.ca_bundle = in.etag = in.if_modified_since = NULL;
	in.flags = 0;
	in.naddrs = 1;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), 0);
	CHECK_INT(fetchproto_decode_request(f, flen, &out, err, sizeof(err)), 0);
	CHECK(out.ca_bundle == NULL);
	CHECK(out.etag == NULL);
	CHECK(out.if_modified_since == NULL);
	CHECK_INT(out.flags, 0);
	CHECK_INT(out.naddrs, 1);
	fetchproto_request_free(&out);
	free(f);

	/* Field order is free. */
	{
		static const unsigned char a4[4] = { 10, 0, 0, 1 };
		struct hb h;

		hb_start(&h, 1, 1);
		hb_u32(&h, T_TO, 1);
		hb_field(&h, T_ADDR, a4, 4);
		hb_u32(&h, T_CTO, 1);
		hb_str(&h, T_URL, "https://x");
		hb_u32(&h, T_MAX, 1);
		hb_u32(&h, T_ID, 0);
		CHECK_INT(dec_req(&h, &out), 0);
		fetchproto_request_free(&out);
	}
}

static void
response_round_trip(void)
{
	struct fetch_response in, out;
	unsigned char body[] = "version: STSv1\r\nmode: enforce\r\n\0binary\xff";
	unsigned char *f;
	size_t flen;

	full_response(&in, body, sizeof(body));
	CHECK_INT(fetchproto_encode_response(&in, &f, &flen, err, sizeof(err)),
	    0);
	CHECK_INT(fetchproto_decode_response(f, flen, &out, err, sizeof(err)), 0);
	CHECK_INT(out.id, 42);
	CHECK_INT(out.result, FETCH_OK);
	CHECK_INT(out.status, 200);
	CHECK_STR(out.content_type, in.content_type);
	CHECK_STR(out.etag, in.etag);
	CHECK_STR(out.last_modified, in.last_modified);
	CHECK(out.error == NULL);
	CHECK_INT(out.body_len, sizeof(body));
	CHECK(out.body != NULL && memcmp(out.body, body, sizeof(body)) == 0);
	CHECK_INT(out.duration_ms, 123);
	fetchproto_response_free(&out);
	free(f);
}

static void
response_errors_round_trip(void)
{
	static const struct {
		enum fetch_result r;
		uint32_t status;
	} cases[] = {
		{ FETCH_NOT_MODIFIED, 304 },
		{ FETCH_HTTP_STATUS, 404 },
		{ FETCH_HTTP_STATUS, 500 },
		{ FETCH_REDIRECT, 301 },
		{ FETCH_CONTENT_TYPE, 200 },
		{ FETCH_TOO_LARGE, 200 },
		{ FETCH_TIMEOUT, 0 },
		{ FETCH_CONNECT_ERROR, 0 },
		{ FETCH_TLS_ERROR, 0 },
		{ FETCH_TRANSFER_ERROR, 0 },
		{ FETCH_BAD_REQUEST, 0 },
		{ FETCH_BUSY, 0 },
		{ FETCH_INTERNAL, 0 },
	};
	struct fetch_response in, out;
	unsigned char *f;
	size_t i, flen;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&in, 0, sizeof(in));
		in.id = (uint32_t)i;
		in.result = cases[i].r;
		in.status = cases[i].status;
		in.error = "why it failed";
		CHECK_INT(fetchproto_encode_response(&in, &f, &flen, err,
		    sizeof(err)), 0);
		CHECK_INT(fetchproto_decode_response(f, flen, &out, err,
		    sizeof(err)), 0);
		CHECK_INT(out.result, cases[i].r);
		CHECK_INT(out.status, cases[i].status);
		CHECK_INT(out.id, i);
		CHECK_STR(out.error, "why it failed");
		CHECK(out.body == NULL && out.body_len == 0);
		fetchproto_response_free(&out);
		free(f);
	}
	/* An ok with an empty body. */
	full_response(&in, NULL, 0);
	CHECK_INT(fetchproto_encode_response(&in, &f, &flen, err, sizeof(err)),
	    0);
	CHECK_INT(fetchproto_decode_response(f, flen, &out, err, sizeof(err)), 0);
	CHECK(out.body == NULL && out.body_len == 0);
	fetchproto_response_free(&out);
	free(f);
}

static void
largest_body(void)
{
	struct fetch_response in, out;
	unsigned char *body, *f;
	size_t flen, n;

	body = malloc(FETCHPROTO_BODY_MAX + 1);
	CHECK(body != NULL);
	if (body == NULL)
		return;
	memset(body, 'x', FETCHPROTO_BODY_MAX + 1);
	full_response(&in, body, FETCHPROTO_BODY_MAX);
	in.error = malloc(FETCHPROTO_ERROR_MAX + 1);
	memset(in.error, 'e', FETCHPROTO_ERROR_MAX);
	in.error[FETCHPROTO_ERROR_MAX] = '\0';
	CHECK_INT(fetchproto_encode_response(&in, &f, &flen, err, sizeof(err)),
	    0);
	CHECK_INT(fetchproto_frame(f, flen, &n), 1);
	CHECK_INT(fetchproto_decode_response(f, flen, &out, err, sizeof(err)), 0);
	CHECK_INT(out.body_len, FETCHPROTO_BODY_MAX);
	fetchproto_response_free(&out);
	free(f);

	/* One byte more is refused by the encoder. */
	in.body_len = FETCHPROTO_BODY_MAX + 1;
	CHECK_INT(fetchproto_encode_response(&in, &f, &flen, err, sizeof(err)),
	    -1);
	CHECK(f == NULL);
	free(in.error);
	free(body);
}

static void
framing(void)
{
	unsigned char b[8] = { 0, 0, 0, 2, 1, 1, 0xaa, 0xbb };
	size_t n = 0, i;

	for (i = 0; i < 6; i++)
		CHECK_INT(fetchproto_frame(b, i, &n), 0);
	CHECK_INT(fetchproto_frame(b, 6, &n), 1);
	CHECK_INT(n, 6);
	CHECK_INT(fetchproto_frame(b, 8, &n), 1); /* the next frame follows */
	CHECK_INT(n, 6);

	/* Lengths that cannot be a frame: the stream is lost. */
	memcpy(b, "\0\0\0\0", 4);
	CHECK_INT(fetchproto_frame(b, 8, &n), -1);
	memcpy(b, "\0\0\0\1", 4);
	CHECK_INT(fetchproto_frame(b, 8, &n), -1);
	memcpy(b, "\xff\xff\xff\xff", 4);
	CHECK_INT(fetchproto_frame(b, 4, &n), -1);
	b[0] = (unsigned char)((FETCHPROTO_FRAME_MAX + 1) >> 24);
	b[1] = (unsigned char)((FETCHPROTO_FRAME_MAX + 1) >> 16);
	b[2] = (unsigned char)((FETCHPROTO_FRAME_MAX + 1) >> 8);
	b[3] = (unsigned char)(FETCHPROTO_FRAME_MAX + 1);
	CHECK_INT(fetchproto_frame(b, 4, &n), -1);
	b[3] = (unsigned char)FETCHPROTO_FRAME_MAX;
	CHECK_INT(fetchproto_frame(b, 8, &n), 0); /* the largest: wait */
}

/* Offsets where a field of the frame ends (valid places to cut). */
static int
is_boundary(const unsigned char *f, size_t flen, size_t at)
{
	size_t p = 6;

	while (p < flen) {
		if (p == at)
			return 1;
		p += 5 + ((size_t)f[p + 1] << 24 | (size_t)f[p + 2] << 16 |
		    (size_t)f[p + 3] << 8 | f[p + 4]);
	}
	return p == at;
}

static void
truncated(void)
{
	struct fetch_request in, rq;
	struct fetch_response rs_in, rs;
	unsigned char body[100], *f, *g;
	size_t flen, cut, n;
	int bad = 0;

	full_request(&in);
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), 0);
	g = malloc(flen);
	for (cut = 0; cut < flen; cut++) {
		/* As a stream: never a whole frame. */
		if (fetchproto_frame(f, cut, &n) != 0)
			bad++;
		/* With a length prefix that admits the cut. */
		if (cut < 6)
			continue;
		memcpy(g, f, cut);
		g[0] = (unsigned char)((cut - 4) >> 24);
		g[1] = (unsigned char)((cut - 4) >> 16);
		g[2] = (unsigned char)((cut - 4) >> 8);
		g[3] = (unsigned char)(cut - 4);
		if (fetchproto_decode_request(g, cut, &rq, err, sizeof(err)) == 0) {
			/* Only a cut between fields, after the required ones. */
			if (!is_boundary(f, flen, cut))
				bad++;
			fetchproto_request_free(&rq);
		} else if (cut > 6 + 5 + 4 && rq.id != 0xdeadbeef)
			bad++; /* the id comes first: always recovered */
		/* The given length disagrees with the prefix. */
		if (fetchproto_decode_request(f, cut, &rq, err, sizeof(err)) == 0)
			bad++;
	}
	CHECK_INT(bad, 0);
	free(g);
	free(f);

	memset(body, 'b', sizeof(body));
	full_response(&rs_in, body, sizeof(body));
	CHECK_INT(fetchproto_encode_response(&rs_in, &f, &flen, err,
	    sizeof(err)), 0);
	bad = 0;
	for (cut = 6; cut < flen; cut++) {
		g = malloc(cut);
		memcpy(g, f, cut);
		g[0] = (unsigned char)((cut - 4) >> 24);
		g[1] = (unsigned char)((cut - 4) >> 16);
		g[2] = (unsigned char)((cut - 4) >> 8);
		g[3] = (unsigned char)(cut - 4);
		if (fetchproto_decode_response(g, cut, &rs, err, sizeof(err)) == 0) {
			if (!is_boundary(f, flen, cut))
				bad++;
			fetchproto_response_free(&rs);
		}
		free(g);
	}
	CHECK_INT(bad, 0);
	free(f);
}

static void
structure_errors(void)
{
	struct fetch_request rq;
	struct fetch_response rs;
	struct hb h;

	/* Version, type. */
	hb_min_request(&h);
	h.b[4] = 2;
	CHECK_INT(dec_req(&h, &rq), -1);
	CHECK(strstr(err, "version") != NULL);
	hb_min_request(&h);
	h.b[5] = 2;
	CHECK_INT(dec_req(&h, &rq), -1);
	CHECK(strstr(err, "type") != NULL);
	/* A request is no response, and the reverse. */
	hb_min_request(&h);
	hb_end(&h);
	CHECK_INT(fetchproto_decode_response(h.b, h.len, &rs, err, sizeof(err)),
	    -1);

	/* Unknown tags, tag 0. */
	hb_min_request(&h);
	hb_str(&h, 99, "x");
	CHECK_INT(dec_req(&h, &rq), -1);
	CHECK(strstr(err, "unknown field") != NULL);
	CHECK_INT(rq.id, 7); /* kept for the error answer */
	hb_min_request(&h);
	hb_str(&h, 0, "x");
	CHECK_INT(dec_req(&h, &rq), -1);

	/* Repeated fields (ADDR alone may repeat). */
	hb_min_request(&h);
	hb_str(&h, T_URL, "https://evil.example/");
	CHECK_INT(dec_req(&h, &rq), -1);
	CHECK(strstr(err, "url: repeated") != NULL);
	hb_min_request(&h);
	hb_u32(&h, T_ID, 8);
	CHECK_INT(dec_req(&h, &rq), -1);

	/* Missing required fields. */
	hb_start(&h, 1, 1);
	hb_u32(&h, T_ID, 9);
	hb_str(&h, T_URL, "https://x/");
	CHECK_INT(dec_req(&h, &rq), -1);
	CHECK_INT(rq.id, 9);
	hb_start(&h, 1, 1);
	CHECK_INT(dec_req(&h, &rq), -1);
	CHECK_INT(rq.id, 0);

	/* Numbers of the wrong width. */
	hb_start(&h, 1, 1);
	hb_field(&h, T_ID, "\0\0\0\0\1", 5);
	CHECK_INT(dec_req(&h, &rq), -1);
	CHECK_INT(rq.id, 0);

	/* A field length that runs past the frame. */
	hb_min_request(&h);
	h.b[h.len++] = T_ETAG;
	memcpy(h.b + h.len, "\x7f\xff\xff\xff", 4);
	h.len += 4;
	CHECK_INT(dec_req(&h, &rq), -1);
	CHECK(strstr(err, "truncated") != NULL);
	/* Half a field header. */
	hb_min_request(&h);
	h.b[h.len++] = T_ETAG;
	h.b[h.len++] = 0;
	CHECK_INT(dec_req(&h, &rq), -1);

	/* A NUL inside a string. */
	hb_min_request(&h);
	hb_field(&h, T_ETAG, "\"a\0b\"", 5);
	CHECK_INT(dec_req(&h, &rq), -1);

	/* Response: result code out of range, missing result. */
	hb_start(&h, 1, 2);
	hb_u32(&h, 1, 5);
	hb_u32(&h, 2, FETCH_NRESULTS);
	hb_end(&h);
	CHECK_INT(fetchproto_decode_response(h.b, h.len, &rs, err, sizeof(err)),
	    -1);
	CHECK_INT(rs.id, 5);
	hb_start(&h, 1, 2);
	hb_u32(&h, 1, 5);
	hb_end(&h);
	CHECK_INT(fetchproto_decode_response(h.b, h.len, &rs, err, sizeof(err)),
	    -1);
}

static void
value_rules(void)
{
	struct fetch_request in, rq;
	struct fetch_response rs;
	unsigned char *f;
	size_t flen;
	char *big;
	struct hb h;
	int i;

	/* What the encoder refuses. */
	static const char *const bad_urls[] = {
		"http://mta-sts.example.com/",
		"file:///etc/passwd",
		"https://",
		"https://a b/",
		"https://a\r\nHost: evil/",
		"https://\x80/",
		"ftp://x/",
		"",
	};
	for (i = 0; i < (int)(sizeof(bad_urls) / sizeof(bad_urls[0])); i++) {
		full_request(&in);
		in.url = (char *)bad_urls[i];
		CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err,
		    sizeof(err)), -1);
		/* ... and the decoder refuses it as well. */
		hb_start(&h, 1, 1);
		hb_u32(&h, T_ID, 1);
		if (bad_urls[i][0] != '\0')
			hb_str(&h, T_URL, bad_urls[i]);
		hb_field(&h, T_ADDR, "\1\2\3\4", 4);
		hb_u32(&h, T_MAX, 1);
		hb_u32(&h, T_CTO, 1);
		hb_u32(&h, T_TO, 1);
		CHECK_INT(dec_req(&h, &rq), -1);
	}
	full_request(&in);
	in.url = "HTTPS://Example.COM/"; /* the scheme is case-insensitive */
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), 0);
	free(f);

	big = malloc(FETCHPROTO_URL_MAX + 2);
	memcpy(big, "https://", 8);
	memset(big + 8, 'a', FETCHPROTO_URL_MAX - 8);
	big[FETCHPROTO_URL_MAX] = '\0';
	in.url = big;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), 0);
	free(f);
	big[FETCHPROTO_URL_MAX] = 'a';
	big[FETCHPROTO_URL_MAX + 1] = '\0';
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	free(big);

	/* Header injection through the conditional values. */
	full_request(&in);
	in.etag = "\"x\"\r\nX-Evil: 1";
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	CHECK(strstr(err, "etag") != NULL);
	full_request(&in);
	in.if_modified_since = "Tue\n";
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	full_request(&in);
	in.etag = "";
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	hb_min_request(&h);
	hb_str(&h, T_ETAG, "\"a\"\r\nCookie: x");
	CHECK_INT(dec_req(&h, &rq), -1);
	hb_min_request(&h);
	hb_str(&h, T_IMS, "Tue,\t15 Nov");
	CHECK_INT(dec_req(&h, &rq), -1);

	/* Limits on numbers. */
	full_request(&in);
	in.max_bytes = 0;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	in.max_bytes = FETCHPROTO_BODY_MAX + 1;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	full_request(&in);
	in.timeout_ms = 0;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	in.timeout_ms = FETCHPROTO_TIMEOUT_MAX + 1;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	full_request(&in);
	in.connect_timeout_ms = 0;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	full_request(&in);
	in.flags = 0x80;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	hb_min_request(&h);
	hb_u32(&h, T_FLAGS, 0x3);
	CHECK_INT(dec_req(&h, &rq), -1);
	hb_min_request(&h);
	hb_u32(&h, T_FLAGS, FETCHPROTO_F_TEXT_PLAIN);
	CHECK_INT(dec_req(&h, &rq), 0);
	fetchproto_request_free(&rq);

	/* Addresses: none, too many, wrong size. */
	full_request(&in);
	in.naddrs = 0;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	in.naddrs = FETCHPROTO_ADDRS_MAX + 1;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	full_request(&in);
	in.addrs[0].len = 5;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	hb_start(&h, 1, 1);
	hb_u32(&h, T_ID, 1);
	hb_str(&h, T_URL, "https://x/");
	hb_u32(&h, T_MAX, 1);
	hb_u32(&h, T_CTO, 1);
	hb_u32(&h, T_TO, 1);
	CHECK_INT(dec_req(&h, &rq), -1); /* no address */
	for (i = 0; i <= FETCHPROTO_ADDRS_MAX; i++)
		hb_field(&h, T_ADDR, "\1\2\3\4", 4);
	CHECK_INT(dec_req(&h, &rq), -1);
	CHECK(strstr(err, "addr: more than") != NULL);
	hb_min_request(&h);
	hb_field(&h, T_ADDR, "\1\2\3", 3);
	CHECK_INT(dec_req(&h, &rq), -1);
	hb_min_request(&h);
	hb_field(&h, T_ADDR, "\1\2\3\4\1\2\3\4\1\2\3\4\1\2\3\4", 16);
	CHECK_INT(dec_req(&h, &rq), 0);
	CHECK_INT(rq.naddrs, 2);
	fetchproto_request_free(&rq);

	/* The CA bundle: an absolute path. */
	full_request(&in);
	in.ca_bundle = "relative/ca.pem";
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	in.ca_bundle = "/a\nb";
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);

	/* Responses: result and status must agree; body only with ok. */
	memset(&rs, 0, sizeof(rs));
	rs.result = FETCH_OK;
	rs.status = 404;
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)),
	    -1);
	rs.result = FETCH_REDIRECT;
	rs.status = 200;
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)),
	    -1);
	rs.result = FETCH_NOT_MODIFIED;
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)),
	    -1);
	rs.result = FETCH_HTTP_STATUS;
	rs.status = 1000;
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)),
	    -1);
	rs.status = 404;
	rs.body = (unsigned char *)"not found";
	rs.body_len = 9;
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)),
	    -1);
	CHECK(strstr(err, "body") != NULL);
	rs.body = NULL;
	rs.body_len = 0;
	rs.content_type = "text/html\r\n";
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)),
	    -1);
	rs.content_type = NULL;
	rs.error = "line one\nline two";
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)),
	    -1);
	rs.error = NULL;
	rs.result = (enum fetch_result)FETCH_NRESULTS;
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)),
	    -1);

	/* A decoded body on a non-ok result is refused too. */
	hb_start(&h, 1, 2);
	hb_u32(&h, 1, 3);
	hb_u32(&h, 2, FETCH_HTTP_STATUS);
	hb_u32(&h, 3, 404);
	hb_str(&h, 7, "<html>");
	hb_end(&h);
	CHECK_INT(fetchproto_decode_response(h.b, h.len, &rs, err, sizeof(err)),
	    -1);
	CHECK_INT(rs.id, 3);
}

/* A small deterministic PRNG: the same garbage on every run. */
static uint32_t rng = 12345;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void
garbage(void)
{
	struct fetch_request in, rq;
	struct fetch_response rs_in, rs;
	unsigned char buf[512], body[64], *f, *f2, *g;
	size_t flen, f2len, n, len;
	int i, j, ok = 0, reenc_bad = 0;

	/* Random bytes behind a matching prefix. */
	for (i = 0; i < 20000; i++) {
		len = 6 + rnd() % (sizeof(buf) - 6);
		for (n = 0; n < len; n++)
			buf[n] = (unsigned char)rnd();
		buf[0] = buf[1] = 0;
		buf[2] = (unsigned char)((len - 4) >> 8);
		buf[3] = (unsigned char)(len - 4);
		if (i % 2) {
			buf[4] = 1; /* a plausible version and type */
			buf[5] = (unsigned char)(1 + rnd() % 2);
		}
		if (fetchproto_decode_request(buf, len, &rq, err, sizeof(err)) == 0)
			fetchproto_request_free(&rq), ok++;
		if (fetchproto_decode_response(buf, len, &rs, err, sizeof(err)) == 0)
			fetchproto_response_free(&rs), ok++;
		(void)fetchproto_frame(buf, len, &n);
	}
	CHECK_INT(ok, 0);

	/* Mutations of valid frames: whatever decodes re-encodes. */
	full_request(&in);
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), 0);
	memset(body, 'x', sizeof(body));
	full_response(&rs_in, body, sizeof(body));
	CHECK_INT(fetchproto_encode_response(&rs_in, &f2, &f2len, err,
	    sizeof(err)), 0);
	g = malloc(flen > f2len ? flen : f2len);
	for (i = 0; i < 20000; i++) {
		int resp = i % 2;
		const unsigned char *src = resp ? f2 : f;
		size_t slen = resp ? f2len : flen;

		memcpy(g, src, slen);
		for (j = 0, n = 1 + rnd() % 4; j < (int)n; j++) {
			size_t at = 4 + rnd() % (slen - 4);

			g[at] = (unsigned char)(rnd() % 3 == 0 ? g[at] ^ 0x80 :
			    rnd());
		}
		if (resp) {
			if (fetchproto_decode_response(g, slen, &rs, err,
			    sizeof(err)) == 0) {
				unsigned char *o;
				size_t olen;

				if (fetchproto_encode_response(&rs, &o, &olen,
				    err, sizeof(err)) != 0)
					reenc_bad++;
				else
					free(o);
				fetchproto_response_free(&rs);
			}
		} else if (fetchproto_decode_request(g, slen, &rq, err,
		    sizeof(err)) == 0) {
			unsigned char *o;
			size_t olen;

			if (fetchproto_encode_request(&rq, &o, &olen, err,
			    sizeof(err)) != 0)
				reenc_bad++;
			else
				free(o);
			fetchproto_request_free(&rq);
		}
	}
	CHECK_INT(reenc_bad, 0);
	free(g);
	free(f);
	free(f2);
}

/* A POST (TLS reports): body and type travel together, unconditionally. */
static void
post_request(void)
{
	static unsigned char gz[] = { 0x1f, 0x8b, 0x08, 0x00, 0x00, 0x0a };
	struct fetch_request in, out;
	struct fetch_response rs, rs2;
	unsigned char *f;
	size_t flen;
	struct hb h;

	full_request(&in);
	in.etag = in.if_modified_since = NULL;
	in.flags = 0;
	in.body = gz;
	in.body_len = sizeof(gz);
	in.content_type = "application/tlsrpt+gzip";
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), 0);
	CHECK_INT(fetchproto_decode_request(f, flen, &out, err, sizeof(err)), 0);
	CHECK_INT(out.body_len, sizeof(gz));
	CHECK(memcmp(out.body, gz, sizeof(gz)) == 0); /* NUL bytes too */
	CHECK_STR(out.content_type, "application/tlsrpt+gzip");
	fetchproto_request_free(&out);
	free(f);

	/* Refused by the encoder: the rules of fetch-protocol.md. */
	in.content_type = NULL;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	CHECK(strstr(err, "content_type") != NULL);
	in.content_type = "application/tlsrpt+gzip\r\nX-Evil: 1";
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	in.content_type = "application/tlsrpt+gzip";
	in.etag = "\"x\"";
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	CHECK(strstr(err, "never conditional") != NULL);
	in.etag = NULL;
	in.body = NULL;
	in.body_len = 0;
	CHECK_INT(fetchproto_encode_request(&in, &f, &flen, err, sizeof(err)), -1);
	CHECK(strstr(err, "only a POST") != NULL);

	/* And by the decoder: a type without a body, an empty body. */
	hb_min_request(&h);
	hb_str(&h, T_CTYPE, "application/tlsrpt+gzip");
	CHECK_INT(dec_req(&h, &out), -1);
	CHECK_INT(out.id, 7);
	hb_min_request(&h);
	hb_field(&h, T_BODY, "", 0);
	hb_str(&h, T_CTYPE, "application/tlsrpt+gzip");
	CHECK_INT(dec_req(&h, &out), -1);
	hb_min_request(&h);
	hb_field(&h, T_BODY, gz, sizeof(gz));
	CHECK_INT(dec_req(&h, &out), -1);
	CHECK(out.body == NULL);
	hb_min_request(&h);
	hb_field(&h, T_BODY, gz, sizeof(gz));
	hb_field(&h, T_BODY, gz, sizeof(gz));
	hb_str(&h, T_CTYPE, "application/tlsrpt+gzip");
	CHECK_INT(dec_req(&h, &out), -1);
	CHECK(strstr(err, "repeated") != NULL);
	hb_min_request(&h);
	hb_field(&h, T_BODY, gz, sizeof(gz));
	hb_str(&h, T_CTYPE, "application/tlsrpt+gzip");
	CHECK_INT(dec_req(&h, &out), 0);
	fetchproto_request_free(&out);

	/* A collector's 202 is ok; a 300 never is. */
	full_response(&rs, NULL, 0);
	rs.status = 202;
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)), 0);
	CHECK_INT(fetchproto_decode_response(f, flen, &rs2, err, sizeof(err)), 0);
	CHECK_INT(rs2.status, 202);
	fetchproto_response_free(&rs2);
	free(f);
	rs.status = 300;
	CHECK_INT(fetchproto_encode_response(&rs, &f, &flen, err, sizeof(err)), -1);
}

static void
result_names(void)
{
	CHECK_STR(fetchproto_result_name(FETCH_OK), "ok");
	CHECK_STR(fetchproto_result_name(FETCH_NOT_MODIFIED), "not-modified");
	CHECK_STR(fetchproto_result_name(FETCH_REDIRECT), "redirect-refused");
	CHECK_STR(fetchproto_result_name(FETCH_TOO_LARGE), "too-large");
	CHECK_STR(fetchproto_result_name(FETCH_INTERNAL), "internal");
	CHECK_STR(fetchproto_result_name(FETCH_NRESULTS), "unknown");
	CHECK_STR(fetchproto_result_name((enum fetch_result)-1), "unknown");
}

int
main(void)
{
	RUN(request_round_trip);
	RUN(request_minimal);
	RUN(response_round_trip);
	RUN(response_errors_round_trip);
	RUN(largest_body);
	RUN(framing);
	RUN(truncated);
	RUN(structure_errors);
	RUN(value_rules);
	RUN(garbage);
	RUN(post_request);
	RUN(result_names);
	return T_DONE();
}
