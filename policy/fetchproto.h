/*
 * The messages between mxtls and mxtls-fetch (policy/fetch-protocol.md):
 * length-prefixed frames of tagged fields.  Encode and decode only: no
 * I/O, no curl, no logging, so both programs share it and it can be
 * tested and fuzzed alone.
 *
 * Every decoded message is validated by the same rules the encoder
 * applies, so neither side can hand the other a value it would refuse to
 * send (a header value with CR or LF, a URL that is not https, a body
 * larger than the cap...).
 */
#ifndef MXTLS_FETCHPROTO_H
#define MXTLS_FETCHPROTO_H

#include <stddef.h>
#include <stdint.h>

#define FETCHPROTO_VERSION 1
#define FETCHPROTO_LEN_SIZE 4 /* the big-endian length before each frame */

/* Limits: what decodes must also encode, and the reverse. */
#define FETCHPROTO_BODY_MAX (4u * 1024 * 1024) /* a body, bytes */
/* A frame's length (after the prefix): the body plus room for the rest. */
#define FETCHPROTO_FRAME_MAX (FETCHPROTO_BODY_MAX + 64u * 1024)
#define FETCHPROTO_URL_MAX 2048
#define FETCHPROTO_PATH_MAX 4095
#define FETCHPROTO_ETAG_MAX 1024
#define FETCHPROTO_DATE_MAX 128
#define FETCHPROTO_CTYPE_MAX 256
#define FETCHPROTO_ERROR_MAX 512
#define FETCHPROTO_ADDRS_MAX 16
#define FETCHPROTO_TIMEOUT_MAX 600000 /* milliseconds */
#define FETCHPROTO_STATUS_MAX 999

/* Request flags. */
#define FETCHPROTO_F_TEXT_PLAIN 0x1u /* only a text/plain body is ok */
#define FETCHPROTO_F_ALL 0x1u

/* The outcome of one request; names are fetchproto_result_name(). */
enum fetch_result {
	FETCH_OK,	      /* 200 (a POST: any 2xx) and the whole body */
	FETCH_NOT_MODIFIED,   /* 304 to a conditional request */
	FETCH_HTTP_STATUS,    /* any other status: see status */
	FETCH_REDIRECT,	      /* a 3xx other than 304: never followed */
	FETCH_CONTENT_TYPE,   /* 200 but not text/plain, when required */
	FETCH_TOO_LARGE,      /* the body passed max_bytes: aborted */
	FETCH_TIMEOUT,	      /* connect or total timeout */
	FETCH_CONNECT_ERROR,  /* no TCP connection to any address */
	FETCH_TLS_ERROR,      /* handshake or certificate verification */
	FETCH_TRANSFER_ERROR, /* HTTP-level failure: reset, bad reply... */
	FETCH_BAD_REQUEST,    /* the request was malformed or refused */
	FETCH_BUSY,	      /* too many requests in flight: try later */
	FETCH_INTERNAL,	      /* out of memory, curl failed to start... */
	FETCH_NRESULTS,
};

/* An address of the URL's host, as mxtls resolved it. */
struct fetch_addr {
	unsigned char len; /* 4 (IPv4) or 16 (IPv6) */
	unsigned char a[16];
};

struct sockaddr_storage;
/* The address (AF_INET or AF_INET6) of ss, as the protocol carries it. */
void fetch_addr_set(struct fetch_addr *a, const struct sockaddr_storage *ss);

struct fetch_request {
	uint32_t id; /* chosen by mxtls; echoed in the response */
	char *url;   /* "https://..." */
	struct fetch_addr addrs[FETCHPROTO_ADDRS_MAX]; /* at least one */
	int naddrs;
	char *ca_bundle; /* absolute path; NULL: the system store */
	uint32_t max_bytes;	     /* 1..FETCHPROTO_BODY_MAX */
	uint32_t connect_timeout_ms; /* 1..FETCHPROTO_TIMEOUT_MAX */
	uint32_t timeout_ms;	     /* the whole transfer, same range */
	char *etag;	     /* NULL or sent as If-None-Match */
	char *if_modified_since; /* NULL or sent as If-Modified-Since */
	uint32_t flags;		 /* FETCHPROTO_F_* */
	/*
	 * A body makes the request a POST (TLS reports, RFC 8460 section
	 * 5.3): 1..FETCHPROTO_BODY_MAX bytes, with content_type (header-safe)
	 * and without etag or if_modified_since.  NULL: a GET.
	 */
	unsigned char *body;
	size_t body_len;
	char *content_type;
};

struct fetch_response {
	uint32_t id;
	enum fetch_result result;
	uint32_t status;     /* the HTTP status; 0 when none was received */
	char *content_type;  /* NULL when absent */
	char *etag;	     /* NULL when absent */
	char *last_modified; /* NULL when absent */
	char *error;	     /* NULL, or why, for the logs */
	unsigned char *body; /* only with FETCH_OK; may be NULL when empty */
	size_t body_len;
	uint32_t duration_ms;
};

/*
 * Framing a byte stream: with len bytes at buf, returns 1 when a whole
 * frame is there (*framelen bytes, prefix included), 0 when more bytes
 * are needed, -1 when the length prefix is out of range: the stream can
 * not be resynchronised and must be closed.
 */
int fetchproto_frame(const void *buf, size_t len, size_t *framelen);

/*
 * Encode into a new buffer (*out, free()) holding one whole frame.
 * Returns 0, or -1 with err when a value breaks the rules (or memory ran
 * out).
 */
int fetchproto_encode_request(const struct fetch_request *rq,
    unsigned char **out, size_t *outlen, char *err, size_t errlen);
int fetchproto_encode_response(const struct fetch_response *rs,
    unsigned char **out, size_t *outlen, char *err, size_t errlen);

/*
 * Decode one whole frame (as fetchproto_frame() delimits it) into *rq or
 * *rs, whose strings and body are then owned by it.  Returns 0, or -1
 * with err; on error the struct holds nothing to free except that its id
 * is kept when it could be read, so that the answer can name it.
 */
int fetchproto_decode_request(const void *frame, size_t len,
    struct fetch_request *rq, char *err, size_t errlen);
int fetchproto_decode_response(const void *frame, size_t len,
    struct fetch_response *rs, char *err, size_t errlen);

void fetchproto_request_free(struct fetch_request *rq);
void fetchproto_response_free(struct fetch_response *rs);

/* "ok", "not-modified", "http-status", ...; "unknown" out of range. */
const char *fetchproto_result_name(enum fetch_result r);

#endif
