/*
 * Encode and decode the mxtls <-> mxtls-fetch messages.  The layout is
 * documented in policy/fetch-protocol.md; in short:
 *
 *	frame   = length:u32 payload		(length = bytes of payload)
 *	payload = version:u8 type:u8 field*
 *	field   = tag:u8 len:u32 value[len]
 *
 * all integers big-endian.  Decoding is strict (unknown tags, repeated
 * tags, short fields, trailing bytes are all errors) because both ends
 * are built from this one file: anything unexpected is a bug or an
 * attack, never a newer peer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "fetchproto.h"

void
fetch_addr_set(struct fetch_addr *a, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		a->len = 4;
		memcpy(a->a, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else {
		a->len = 16;
		memcpy(a->a, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	}
}

#define TYPE_REQUEST 1
#define TYPE_RESPONSE 2
#define FIELD_HDR 5 /* tag:u8 len:u32 */

enum req_tag {
	RQ_ID = 1,
	RQ_URL,
	RQ_ADDR, /* repeated: one per address */
	RQ_CA_BUNDLE,
	RQ_MAX_BYTES,
	RQ_CONNECT_TIMEOUT,
	RQ_TIMEOUT,
	RQ_ETAG,
	RQ_IF_MODIFIED_SINCE,
	RQ_FLAGS,
	RQ_BODY,	 /* a POST's body */
	RQ_CONTENT_TYPE, /* its Content-Type */
	RQ_NTAGS,
};

enum rsp_tag {
	RS_ID = 1,
	RS_RESULT,
	RS_STATUS,
	RS_CONTENT_TYPE,
	RS_ETAG,
	RS_LAST_MODIFIED,
	RS_BODY,
	RS_ERROR,
	RS_DURATION,
	RS_NTAGS,
};

static const char *const result_names[FETCH_NRESULTS] = {
	[FETCH_OK] = "ok",
	[FETCH_NOT_MODIFIED] = "not-modified",
	[FETCH_HTTP_STATUS] = "http-status",
	[FETCH_REDIRECT] = "redirect-refused",
	[FETCH_CONTENT_TYPE] = "content-type",
	[FETCH_TOO_LARGE] = "too-large",
	[FETCH_TIMEOUT] = "timeout",
	[FETCH_CONNECT_ERROR] = "connect-error",
	[FETCH_TLS_ERROR] = "tls-error",
	[FETCH_TRANSFER_ERROR] = "transfer-error",
	[FETCH_BAD_REQUEST] = "bad-request",
	[FETCH_BUSY] = "busy",
	[FETCH_INTERNAL] = "internal",
};

const char *
fetchproto_result_name(enum fetch_result r)
{
	if ((unsigned)r < FETCH_NRESULTS)
		return result_names[r];
	return "unknown";
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

int
fetchproto_frame(const void *buf, size_t len, size_t *framelen)
{
	uint32_t n;

	if (len < FETCHPROTO_LEN_SIZE)
		return 0;
	n = get32(buf);
	/* version and type at least; never more than the largest frame */
	if (n < 2 || n > FETCHPROTO_FRAME_MAX)
		return -1;
	if (len - FETCHPROTO_LEN_SIZE < n)
		return 0;
	*framelen = FETCHPROTO_LEN_SIZE + (size_t)n;
	return 1;
}

/* ---- the rules both directions share ---- */

/*
 * A value that goes into or comes from an HTTP header line: printable
 * ASCII, space and obs-text; no control character, so no CR or LF can
 * smuggle a header in, nor a line into a log.
 */
static int
header_value_ok(const char *s, size_t max)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > max)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static int
url_ok(const char *s)
{
	size_t i, len = strlen(s);

	if (len <= 8 || len > FETCHPROTO_URL_MAX ||
	    strncasecmp(s, "https://", 8) != 0)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* A POST: a body with its type, never conditional. */
static int
validate_post(const struct fetch_request *rq, char *err, size_t errlen)
{
	if (rq->body == NULL) {
		if (rq->body_len != 0 || rq->content_type != NULL) {
			snprintf(err, errlen, "content_type: only a POST (a "
			    "request with a body) has one");
			return -1;
		}
		return 0;
	}
	if (rq->body_len < 1 || rq->body_len > FETCHPROTO_BODY_MAX) {
		snprintf(err, errlen, "body: %zu bytes (1 to %u)",
		    rq->body_len, FETCHPROTO_BODY_MAX);
		return -1;
	}
	if (rq->content_type == NULL ||
	    !header_value_ok(rq->content_type, FETCHPROTO_CTYPE_MAX)) {
		snprintf(err, errlen, "content_type: missing, too long or not "
		    "printable (a body needs one, max %d bytes)",
		    FETCHPROTO_CTYPE_MAX);
		return -1;
	}
	if (rq->etag != NULL || rq->if_modified_since != NULL) {
		snprintf(err, errlen, "etag, if_modified_since: not with a "
		    "body (a POST is never conditional)");
		return -1;
	}
	return 0;
}

static int
validate_request(const struct fetch_request *rq, char *err, size_t errlen)
{
	int i;

	if (rq->url == NULL || !url_ok(rq->url)) {
		snprintf(err, errlen, "url: missing, not https:// or not "
		    "printable ASCII (max %d bytes)", FETCHPROTO_URL_MAX);
		return -1;
	}
	if (rq->naddrs < 1 || rq->naddrs > FETCHPROTO_ADDRS_MAX) {
		snprintf(err, errlen, "addr: %d addresses (1 to %d needed)",
		    rq->naddrs, FETCHPROTO_ADDRS_MAX);
		return -1;
	}
	for (i = 0; i < rq->naddrs; i++)
		if (rq->addrs[i].len != 4 && rq->addrs[i].len != 16) {
			snprintf(err, errlen, "addr: length %d (4 or 16)",
			    rq->addrs[i].len);
			return -1;
		}
	if (rq->ca_bundle != NULL && (rq->ca_bundle[0] != '/' ||
	    !header_value_ok(rq->ca_bundle, FETCHPROTO_PATH_MAX))) {
		snprintf(err, errlen, "ca_bundle: not an absolute path of "
		    "printable characters (max %d bytes)", FETCHPROTO_PATH_MAX);
		return -1;
	}
	if (rq->max_bytes < 1 || rq->max_bytes > FETCHPROTO_BODY_MAX) {
		snprintf(err, errlen, "max_bytes: %lu (1 to %u)",
		    (unsigned long)rq->max_bytes, FETCHPROTO_BODY_MAX);
		return -1;
	}
	if (rq->connect_timeout_ms < 1 ||
	    rq->connect_timeout_ms > FETCHPROTO_TIMEOUT_MAX ||
	    rq->timeout_ms < 1 || rq->timeout_ms > FETCHPROTO_TIMEOUT_MAX) {
		snprintf(err, errlen, "timeouts: %lu / %lu ms (1 to %d)",
		    (unsigned long)rq->connect_timeout_ms,
		    (unsigned long)rq->timeout_ms, FETCHPROTO_TIMEOUT_MAX);
		return -1;
	}
	if (rq->etag != NULL && !header_value_ok(rq->etag, FETCHPROTO_ETAG_MAX)) {
		snprintf(err, errlen, "etag: empty, too long or not printable");
		return -1;
	}
	if (rq->if_modified_since != NULL &&
	    !header_value_ok(rq->if_modified_since, FETCHPROTO_DATE_MAX)) {
		snprintf(err, errlen, "if_modified_since: empty, too long or "
		    "not printable");
		return -1;
	}
	if ((rq->flags & ~FETCHPROTO_F_ALL) != 0) {
		snprintf(err, errlen, "flags: unknown bits 0x%lx",
		    (unsigned long)(rq->flags & ~FETCHPROTO_F_ALL));
		return -1;
	}
	return validate_post(rq, err, errlen);
}

static int
validate_response(const struct fetch_response *rs, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t max;
		size_t off;
	} strs[] = {
		{ "content_type", FETCHPROTO_CTYPE_MAX,
		    offsetof(struct fetch_response, content_type) },
		{ "etag", FETCHPROTO_ETAG_MAX,
		    offsetof(struct fetch_response, etag) },
		{ "last_modified", FETCHPROTO_DATE_MAX,
		    offsetof(struct fetch_response, last_modified) },
		{ "error", FETCHPROTO_ERROR_MAX,
		    offsetof(struct fetch_response, error) },
	};
	size_t i;

	if ((unsigned)rs->result >= FETCH_NRESULTS) {
		snprintf(err, errlen, "result: unknown code %u",
		    (unsigned)rs->result);
		return -1;
	}
	if (rs->status > FETCHPROTO_STATUS_MAX ||
	    (rs->result == FETCH_OK && (rs->status < 200 ||
	    rs->status > 299)) ||
	    (rs->result == FETCH_NOT_MODIFIED && rs->status != 304) ||
	    (rs->result == FETCH_REDIRECT &&
	    (rs->status < 300 || rs->status > 399)) ||
	    (rs->result == FETCH_HTTP_STATUS && rs->status < 100)) {
		snprintf(err, errlen, "status: %lu does not go with result %s",
		    (unsigned long)rs->status,
		    fetchproto_result_name(rs->result));
		return -1;
	}
	if (rs->body_len > 0 && rs->result != FETCH_OK) {
		snprintf(err, errlen, "body: only an ok result has one");
		return -1;
	}
	if (rs->body_len > FETCHPROTO_BODY_MAX ||
	    (rs->body_len > 0 && rs->body == NULL)) {
		snprintf(err, errlen, "body: %zu bytes (max %u)", rs->body_len,
		    FETCHPROTO_BODY_MAX);
		return -1;
	}
	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		const char *s = *(char *const *)((const char *)rs + strs[i].off);

		if (s != NULL && !header_value_ok(s, strs[i].max)) {
			snprintf(err, errlen, "%s: empty, too long (max %zu) or "
			    "not printable", strs[i].name, strs[i].max);
			return -1;
		}
	}
	return 0;
}

/* ---- encoding ---- */

struct enc {
	unsigned char *p;
	size_t len, cap;
	int oom;
};

static void
enc_reserve(struct enc *e, size_t n)
{
	unsigned char *np;
	size_t cap;

	if (e->oom || e->cap - e->len >= n)
		return;
	cap = e->cap ? e->cap : 256;
	while (cap - e->len < n)
		cap *= 2;
	if ((np = realloc(e->p, cap)) == NULL) {
		e->oom = 1;
		return;
	}
	e->p = np;
	e->cap = cap;
}

static void
enc_field(struct enc *e, int tag, const void *v, size_t len)
{
	enc_reserve(e, FIELD_HDR + len);
	if (e->oom)
		return;
	e->p[e->len] = (unsigned char)tag;
	put32(e->p + e->len + 1, (uint32_t)len);
	if (len > 0)
		memcpy(e->p + e->len + FIELD_HDR, v, len);
	e->len += FIELD_HDR + len;
}

static void
enc_u32(struct enc *e, int tag, uint32_t v)
{
	unsigned char b[4];

	put32(b, v);
	enc_field(e, tag, b, sizeof(b));
}

static void
enc_str(struct enc *e, int tag, const char *s)
{
	if (s != NULL)
		enc_field(e, tag, s, strlen(s));
}

static void
enc_start(struct enc *e, int type)
{
	memset(e, 0, sizeof(*e));
	enc_reserve(e, FETCHPROTO_LEN_SIZE + 2);
	if (e->oom)
		return;
	e->p[FETCHPROTO_LEN_SIZE] = FETCHPROTO_VERSION;
	e->p[FETCHPROTO_LEN_SIZE + 1] = (unsigned char)type;
	e->len = FETCHPROTO_LEN_SIZE + 2;
}

static int
enc_finish(struct enc *e, unsigned char **out, size_t *outlen, char *err,
    size_t errlen)
{
	if (e->oom) {
		free(e->p);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (e->len - FETCHPROTO_LEN_SIZE > FETCHPROTO_FRAME_MAX) {
		free(e->p);
		snprintf(err, errlen, "frame too large");
		return -1;
	}
	put32(e->p, (uint32_t)(e->len - FETCHPROTO_LEN_SIZE));
	*out = e->p;
	*outlen = e->len;
	return 0;
}

int
fetchproto_encode_request(const struct fetch_request *rq, unsigned char **out,
    size_t *outlen, char *err, size_t errlen)
{
	struct enc e;
	int i;

	*out = NULL;
	*outlen = 0;
	if (validate_request(rq, err, errlen) < 0)
		return -1;
	enc_start(&e, TYPE_REQUEST);
	enc_u32(&e, RQ_ID, rq->id); /* first: found even in a broken frame */
	enc_str(&e, RQ_URL, rq->url);
	for (i = 0; i < rq->naddrs; i++)
		enc_field(&e, RQ_ADDR, rq->addrs[i].a, rq->addrs[i].len);
	enc_str(&e, RQ_CA_BUNDLE, rq->ca_bundle);
	enc_u32(&e, RQ_MAX_BYTES, rq->max_bytes);
	enc_u32(&e, RQ_CONNECT_TIMEOUT, rq->connect_timeout_ms);
	enc_u32(&e, RQ_TIMEOUT, rq->timeout_ms);
	enc_str(&e, RQ_ETAG, rq->etag);
	enc_str(&e, RQ_IF_MODIFIED_SINCE, rq->if_modified_since);
	if (rq->flags != 0)
		enc_u32(&e, RQ_FLAGS, rq->flags);
	if (rq->body != NULL)
		enc_field(&e, RQ_BODY, rq->body, rq->body_len);
	enc_str(&e, RQ_CONTENT_TYPE, rq->content_type);
	return enc_finish(&e, out, outlen, err, errlen);
}

int
fetchproto_encode_response(const struct fetch_response *rs,
    unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
	struct enc e;

	*out = NULL;
	*outlen = 0;
	if (validate_response(rs, err, errlen) < 0)
		return -1;
	enc_start(&e, TYPE_RESPONSE);
	enc_u32(&e, RS_ID, rs->id);
	enc_u32(&e, RS_RESULT, (uint32_t)rs->result);
	enc_u32(&e, RS_STATUS, rs->status);
	enc_str(&e, RS_CONTENT_TYPE, rs->content_type);
	enc_str(&e, RS_ETAG, rs->etag);
	enc_str(&e, RS_LAST_MODIFIED, rs->last_modified);
	enc_str(&e, RS_ERROR, rs->error);
	enc_u32(&e, RS_DURATION, rs->duration_ms);
	if (rs->body_len > 0)
		enc_field(&e, RS_BODY, rs->body, rs->body_len);
	return enc_finish(&e, out, outlen, err, errlen);
}

/* ---- decoding ---- */

struct field {
	int tag;
	const unsigned char *v;
	uint32_t len;
};

struct dec {
	const unsigned char *p, *end;
};

/* 1: a field; 0: the end; -1: a truncated field. */
static int
dec_next(struct dec *d, struct field *f)
{
	size_t left = (size_t)(d->end - d->p);

	if (left == 0)
		return 0;
	if (left < FIELD_HDR)
		return -1;
	f->tag = d->p[0];
	f->len = get32(d->p + 1);
	if (left - FIELD_HDR < f->len)
		return -1;
	f->v = d->p + FIELD_HDR;
	d->p += FIELD_HDR + f->len;
	return 1;
}

/* Check the prefix, version and type; position d at the first field. */
static int
dec_start(struct dec *d, const void *frame, size_t len, int type, char *err,
    size_t errlen)
{
	const unsigned char *p = frame;
	size_t n;

	if (fetchproto_frame(frame, len, &n) != 1 || n != len) {
		snprintf(err, errlen, "frame: length prefix does not match "
		    "the %zu bytes given", len);
		return -1;
	}
	if (p[FETCHPROTO_LEN_SIZE] != FETCHPROTO_VERSION) {
		snprintf(err, errlen, "frame: version %d (want %d)",
		    p[FETCHPROTO_LEN_SIZE], FETCHPROTO_VERSION);
		return -1;
	}
	if (p[FETCHPROTO_LEN_SIZE + 1] != type) {
		snprintf(err, errlen, "frame: type %d (want %d)",
		    p[FETCHPROTO_LEN_SIZE + 1], type);
		return -1;
	}
	d->p = p + FETCHPROTO_LEN_SIZE + 2;
	d->end = p + len;
	return 0;
}

/* The id of a broken frame, when a well-formed id field precedes the damage. */
static void
dec_find_id(const void *frame, size_t len, int type, uint32_t *id)
{
	struct dec d;
	struct field f;
	char err[8];

	if (dec_start(&d, frame, len, type, err, sizeof(err)) < 0)
		return;
	while (dec_next(&d, &f) == 1)
		if (f.tag == 1 && f.len == 4) { /* RQ_ID == RS_ID */
			*id = get32(f.v);
			return;
		}
}

static int
dec_u32(const struct field *f, uint32_t *v, const char *name, char *err,
    size_t errlen)
{
	if (f->len != 4) {
		snprintf(err, errlen, "%s: %lu bytes (want 4)", name,
		    (unsigned long)f->len);
		return -1;
	}
	*v = get32(f->v);
	return 0;
}

/* A string field as a new NUL-terminated copy; no NUL inside. */
static int
dec_str(const struct field *f, char **dst, size_t max, const char *name,
    char *err, size_t errlen)
{
	if (f->len == 0 || f->len > max || memchr(f->v, '\0', f->len) != NULL) {
		snprintf(err, errlen, "%s: %lu bytes, empty, over %zu or with "
		    "a NUL", name, (unsigned long)f->len, max);
		return -1;
	}
	if ((*dst = malloc((size_t)f->len + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	memcpy(*dst, f->v, f->len);
	(*dst)[f->len] = '\0';
	return 0;
}

static const char *const req_names[RQ_NTAGS] = {
	[RQ_ID] = "id",
	[RQ_URL] = "url",
	[RQ_ADDR] = "addr",
	[RQ_CA_BUNDLE] = "ca_bundle",
	[RQ_MAX_BYTES] = "max_bytes",
	[RQ_CONNECT_TIMEOUT] = "connect_timeout",
	[RQ_TIMEOUT] = "timeout",
	[RQ_ETAG] = "etag",
	[RQ_IF_MODIFIED_SINCE] = "if_modified_since",
	[RQ_FLAGS] = "flags",
	[RQ_BODY] = "body",
	[RQ_CONTENT_TYPE] = "content_type",
};

static const char *const rsp_names[RS_NTAGS] = {
	[RS_ID] = "id",
	[RS_RESULT] = "result",
	[RS_STATUS] = "status",
	[RS_CONTENT_TYPE] = "content_type",
	[RS_ETAG] = "etag",
	[RS_LAST_MODIFIED] = "last_modified",
	[RS_BODY] = "body",
	[RS_ERROR] = "error",
	[RS_DURATION] = "duration",
};

static int
req_field(struct fetch_request *rq, const struct field *f, char *err,
    size_t errlen)
{
	const char *name = f->tag < RQ_NTAGS ? req_names[f->tag] : NULL;

	switch (f->tag) {
	case RQ_ID:
		return dec_u32(f, &rq->id, name, err, errlen);
	case RQ_URL:
		return dec_str(f, &rq->url, FETCHPROTO_URL_MAX, name, err,
		    errlen);
	case RQ_ADDR:
		if (rq->naddrs == FETCHPROTO_ADDRS_MAX) {
			snprintf(err, errlen, "addr: more than %d",
			    FETCHPROTO_ADDRS_MAX);
			return -1;
		}
		if (f->len != 4 && f->len != 16) {
			snprintf(err, errlen, "addr: %lu bytes (4 or 16)",
			    (unsigned long)f->len);
			return -1;
		}
		rq->addrs[rq->naddrs].len = (unsigned char)f->len;
		memcpy(rq->addrs[rq->naddrs].a, f->v, f->len);
		rq->naddrs++;
		return 0;
	case RQ_CA_BUNDLE:
		return dec_str(f, &rq->ca_bundle, FETCHPROTO_PATH_MAX, name,
		    err, errlen);
	case RQ_MAX_BYTES:
		return dec_u32(f, &rq->max_bytes, name, err, errlen);
	case RQ_CONNECT_TIMEOUT:
		return dec_u32(f, &rq->connect_timeout_ms, name, err, errlen);
	case RQ_TIMEOUT:
		return dec_u32(f, &rq->timeout_ms, name, err, errlen);
	case RQ_ETAG:
		return dec_str(f, &rq->etag, FETCHPROTO_ETAG_MAX, name, err,
		    errlen);
	case RQ_IF_MODIFIED_SINCE:
		return dec_str(f, &rq->if_modified_since, FETCHPROTO_DATE_MAX,
		    name, err, errlen);
	case RQ_FLAGS:
		return dec_u32(f, &rq->flags, name, err, errlen);
	case RQ_BODY:
		/* Empty is refused: a POST without content is no report. */
		if (f->len < 1 || f->len > FETCHPROTO_BODY_MAX) {
			snprintf(err, errlen, "body: %lu bytes (1 to %u)",
			    (unsigned long)f->len, FETCHPROTO_BODY_MAX);
			return -1;
		}
		if ((rq->body = malloc(f->len)) == NULL) {
			snprintf(err, errlen, "body: out of memory");
			return -1;
		}
		memcpy(rq->body, f->v, f->len);
		rq->body_len = f->len;
		return 0;
	case RQ_CONTENT_TYPE:
		return dec_str(f, &rq->content_type, FETCHPROTO_CTYPE_MAX,
		    name, err, errlen);
	}
	snprintf(err, errlen, "unknown field tag %d", f->tag);
	return -1;
}

int
fetchproto_decode_request(const void *frame, size_t len,
    struct fetch_request *rq, char *err, size_t errlen)
{
	unsigned seen = 0;
	struct dec d;
	struct field f;
	int r;

	memset(rq, 0, sizeof(*rq));
	if (dec_start(&d, frame, len, TYPE_REQUEST, err, errlen) < 0)
		goto fail;
	while ((r = dec_next(&d, &f)) == 1) {
		if (f.tag > 0 && f.tag < RQ_NTAGS && f.tag != RQ_ADDR &&
		    (seen & 1u << f.tag)) {
			snprintf(err, errlen, "%s: repeated", req_names[f.tag]);
			goto fail;
		}
		if (f.tag > 0 && f.tag < RQ_NTAGS)
			seen |= 1u << f.tag;
		if (req_field(rq, &f, err, errlen) < 0)
			goto fail;
	}
	if (r < 0) {
		snprintf(err, errlen, "truncated field");
		goto fail;
	}
	if (!(seen & 1u << RQ_ID) || !(seen & 1u << RQ_MAX_BYTES) ||
	    !(seen & 1u << RQ_CONNECT_TIMEOUT) || !(seen & 1u << RQ_TIMEOUT)) {
		snprintf(err, errlen, "id, max_bytes, connect_timeout and "
		    "timeout are required");
		goto fail;
	}
	if (validate_request(rq, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	fetchproto_request_free(rq);
	dec_find_id(frame, len, TYPE_REQUEST, &rq->id);
	return -1;
}

static int
rsp_field(struct fetch_response *rs, const struct field *f, char *err,
    size_t errlen)
{
	const char *name = f->tag < RS_NTAGS ? rsp_names[f->tag] : NULL;
	uint32_t v;

	switch (f->tag) {
	case RS_ID:
		return dec_u32(f, &rs->id, name, err, errlen);
	case RS_RESULT:
		if (dec_u32(f, &v, name, err, errlen) < 0)
			return -1;
		if (v >= FETCH_NRESULTS) {
			snprintf(err, errlen, "result: unknown code %lu",
			    (unsigned long)v);
			return -1;
		}
		rs->result = (enum fetch_result)v;
		return 0;
	case RS_STATUS:
		return dec_u32(f, &rs->status, name, err, errlen);
	case RS_CONTENT_TYPE:
		return dec_str(f, &rs->content_type, FETCHPROTO_CTYPE_MAX, name,
		    err, errlen);
	case RS_ETAG:
		return dec_str(f, &rs->etag, FETCHPROTO_ETAG_MAX, name, err,
		    errlen);
	case RS_LAST_MODIFIED:
		return dec_str(f, &rs->last_modified, FETCHPROTO_DATE_MAX, name,
		    err, errlen);
	case RS_ERROR:
		return dec_str(f, &rs->error, FETCHPROTO_ERROR_MAX, name, err,
		    errlen);
	case RS_DURATION:
		return dec_u32(f, &rs->duration_ms, name, err, errlen);
	case RS_BODY:
		if (f->len > FETCHPROTO_BODY_MAX) {
			snprintf(err, errlen, "body: %lu bytes (max %u)",
			    (unsigned long)f->len, FETCHPROTO_BODY_MAX);
			return -1;
		}
		if (f->len == 0)
			return 0;
		if ((rs->body = malloc(f->len)) == NULL) {
			snprintf(err, errlen, "body: out of memory");
			return -1;
		}
		memcpy(rs->body, f->v, f->len);
		rs->body_len = f->len;
		return 0;
	}
	snprintf(err, errlen, "unknown field tag %d", f->tag);
	return -1;
}

int
fetchproto_decode_response(const void *frame, size_t len,
    struct fetch_response *rs, char *err, size_t errlen)
{
	unsigned seen = 0;
	struct dec d;
	struct field f;
	int r;

	memset(rs, 0, sizeof(*rs));
	if (dec_start(&d, frame, len, TYPE_RESPONSE, err, errlen) < 0)
		goto fail;
	while ((r = dec_next(&d, &f)) == 1) {
		if (f.tag > 0 && f.tag < RS_NTAGS && (seen & 1u << f.tag)) {
			snprintf(err, errlen, "%s: repeated", rsp_names[f.tag]);
			goto fail;
		}
		if (f.tag > 0 && f.tag < RS_NTAGS)
			seen |= 1u << f.tag;
		if (rsp_field(rs, &f, err, errlen) < 0)
			goto fail;
	}
	if (r < 0) {
		snprintf(err, errlen, "truncated field");
		goto fail;
	}
	if (!(seen & 1u << RS_ID) || !(seen & 1u << RS_RESULT)) {
		snprintf(err, errlen, "id and result are required");
		goto fail;
	}
	if (validate_response(rs, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	fetchproto_response_free(rs);
	dec_find_id(frame, len, TYPE_RESPONSE, &rs->id);
	return -1;
}

void
fetchproto_request_free(struct fetch_request *rq)
{
	free(rq->url);
	free(rq->ca_bundle);
	free(rq->etag);
	free(rq->if_modified_since);
	free(rq->body);
	free(rq->content_type);
	memset(rq, 0, sizeof(*rq));
}

void
fetchproto_response_free(struct fetch_response *rs)
{
	free(rs->content_type);
	free(rs->etag);
	free(rs->last_modified);
	free(rs->error);
	free(rs->body);
	memset(rs, 0, sizeof(*rs));
}
