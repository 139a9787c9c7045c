/*
 * mxtls-fetch: fetches policy documents over HTTPS for mxtls, which
 * starts it with one end of a socketpair as fd 3 and speaks the protocol
 * of policy/fetch-protocol.md (framing: policy/fetchproto.c).
 *
 * Why a separate program: libcurl drags OpenSSL's libcrypto into the
 * process, and BoringSSL in mxtls would then serve OpenSSL's symbols
 * (docs/behaviour.md section 1).  So this program links libcurl and never
 * BoringSSL, and mxtls links BoringSSL and never libcurl.
 *
 * It transports bytes and nothing else: mxtls parses and validates what
 * comes back.  What it does enforce, because only it can, is how the
 * bytes travel: HTTPS only, TLS 1.2 or later, peer and host verification,
 * no redirect followed, a size cap counted while receiving, timeouts, no
 * proxy from the environment, no cookies, no content decoding, and no
 * DNS: names are resolved by mxtls and handed over as addresses
 * (CURLOPT_RESOLVE); a lookup curl would start itself is refused.
 *
 * Many requests run at once on one curl multi handle.  Input and output
 * are non-blocking; a malformed request is answered with bad-request; a
 * byte stream that cannot be framed ends the program with status 2
 * (mxtls restarts it); the end of input ends it with status 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fetchproto.h"

#define DEFAULT_FD 3
#define INFLIGHT_MAX 64		   /* requests accepted and not yet answered */
#define OUTQ_SOFT_MAX (8u << 20)   /* stop reading requests past this */
#define READ_CHUNK 65536
#define POLL_MS 1000
#define DEADLINE_GRACE_MS 500 /* our backstop, after curl's own timeout */
#define BODY_INITIAL 16384
#define USER_AGENT "mxtls-fetch/1"

/* The write callback's reason to stop a transfer early. */
enum early {
	EARLY_NONE,
	EARLY_STATUS,	    /* not a 200: its body is not wanted */
	EARLY_CONTENT_TYPE, /* not text/plain when that was required */
	EARLY_TOO_LARGE,    /* past max_bytes */
	EARLY_NOMEM,
};

struct xfer {
	struct xfer *prev, *next;
	CURL *easy;
	uint32_t id;
	uint32_t flags;
	uint32_t max_bytes;
	int conditional; /* If-None-Match or If-Modified-Since was sent */
	int post;	 /* a POST: any 2xx is ok */
	int literal;	 /* the URL's host is an address: nothing to resolve */
	int checked;	 /* status and Content-Type looked at */
	int64_t deadline; /* now_ms() past which it is aborted as a timeout */
	enum early early;
	unsigned char *body;
	size_t len, cap;
	struct curl_slist *resolve, *headers;
	char errbuf[CURL_ERROR_SIZE];
};

struct outbuf {
	struct outbuf *next;
	unsigned char *p;
	size_t len, off;
};

static int io_fd = DEFAULT_FD;
static CURLM *multi;
static struct xfer *xfers; /* transfers running */
static int nxfers;
static struct outbuf *outq, **outq_tail = &outq;
static size_t outq_bytes;
static int noutq; /* responses queued, not yet written */
static unsigned char *inbuf;
static size_t inlen, incap;

static void
logmsg(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One logfmt line on stderr; mxtls collects it. */
static void
logmsg(const char *level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (i = 0; msg[i] != '\0'; i++)
		if (msg[i] == '"' || msg[i] == '\\' ||
		    (unsigned char)msg[i] < 0x20)
			msg[i] = '\'';
	fprintf(stderr, "prog=mxtls-fetch level=%s msg=\"%s\"\n", level, msg);
}

static void
cleanup(void)
{
	struct outbuf *o;

	while (xfers != NULL) {
		struct xfer *x = xfers;

		xfers = x->next;
		curl_multi_remove_handle(multi, x->easy);
		curl_easy_cleanup(x->easy);
		curl_slist_free_all(x->resolve);
		curl_slist_free_all(x->headers);
		free(x->body);
		free(x);
	}
	while ((o = outq) != NULL) {
		outq = o->next;
		free(o->p);
		free(o);
	}
	free(inbuf);
	if (multi != NULL)
		curl_multi_cleanup(multi);
	curl_global_cleanup();
}

static void __attribute__((noreturn))
die(int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	logmsg("error", "%s", msg);
	cleanup();
	exit(status);
}

/* ---- output ---- */

static void
enqueue(unsigned char *p, size_t len)
{
	struct outbuf *o;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		die(1, "out of memory queueing a response");
	o->p = p;
	o->len = len;
	*outq_tail = o;
	outq_tail = &o->next;
	outq_bytes += len;
	noutq++;
}

/*
 * Queue a response.  An encoding failure (a value the rules refuse) is
 * our bug; it is still answered, as internal, so that mxtls never waits
 * for an id in vain.
 */
static void
respond(struct fetch_response *rs)
{
	unsigned char *p;
	size_t len;
	char err[256];

	if (fetchproto_encode_response(rs, &p, &len, err, sizeof(err)) == 0) {
		enqueue(p, len);
		return;
	}
	logmsg("error", "id=%lu: cannot encode the response: %s",
	    (unsigned long)rs->id, err);
	{
		struct fetch_response r;

		memset(&r, 0, sizeof(r));
		r.id = rs->id;
		r.result = FETCH_INTERNAL;
		r.error = "response could not be encoded";
		if (fetchproto_encode_response(&r, &p, &len, err,
		    sizeof(err)) < 0)
			die(1, "cannot encode an error response: %s", err);
		enqueue(p, len);
	}
}

static void
respond_error(uint32_t id, enum fetch_result result, const char *why)
{
	struct fetch_response rs;

	memset(&rs, 0, sizeof(rs));
	rs.id = id;
	rs.result = result;
	rs.error = (char *)why;
	respond(&rs);
}

/* Write what the socket takes.  The peer gone: exit. */
static void
flush_output(void)
{
	struct outbuf *o;
	ssize_t n;

	while ((o = outq) != NULL) {
		n = write(io_fd, o->p + o->off, o->len - o->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			die(1, "write: %s", strerror(errno));
		}
		o->off += (size_t)n;
		outq_bytes -= (size_t)n;
		if (o->off < o->len)
			continue;
		outq = o->next;
		if (outq == NULL)
			outq_tail = &outq;
		free(o->p);
		free(o);
		noutq--;
	}
}

/* ---- transfers ---- */

/* A copy of a header value fit for the protocol, or NULL to leave it out. */
static char *
header_copy(const char *s, size_t max)
{
	size_t i, len;
	char *c;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	if (len == 0 || len > max)
		return NULL;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return NULL;
	c = strdup(s);
	return c;
}

/* Log-safe text: control characters become spaces, cut to fit. */
static void
text_clean(char *s, size_t max)
{
	size_t i, len = strlen(s);

	if (len > max)
		s[len = max] = '\0';
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = ' ';
	while (len > 0 && s[len - 1] == ' ')
		s[--len] = '\0';
}

/* "text/plain", any case, with or without parameters (RFC 8461 3.2). */
static int
is_text_plain(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, "text/plain", 10) != 0)
		return 0;
	n = strspn(ct + 10, " \t");
	return ct[10 + n] == '\0' || ct[10 + n] == ';';
}

/* 200 for a GET; a POST's collector may answer 200, 201, 202, 204... */
static int
status_ok(const struct xfer *x, long code)
{
	return x->post ? code >= 200 && code <= 299 : code == 200;
}

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * nmemb;

	if (!x->checked) {
		long code = 0;
		char *ct = NULL;

		x->checked = 1;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
		if (!status_ok(x, code)) {
			x->early = EARLY_STATUS;
			return 0;
		}
		curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
		if ((x->flags & FETCHPROTO_F_TEXT_PLAIN) && !is_text_plain(ct)) {
			x->early = EARLY_CONTENT_TYPE;
			return 0;
		}
	}
	/* Counted as it arrives: a chunked body has no length to check. */
	if (len > x->max_bytes - x->len) {
		x->early = EARLY_TOO_LARGE;
		return 0;
	}
	if (x->len + len > x->cap) {
		size_t cap = x->cap ? x->cap : BODY_INITIAL;
		unsigned char *nb;

		while (cap < x->len + len)
			cap *= 2;
		if (cap > x->max_bytes)
			cap = x->max_bytes;
		if ((nb = realloc(x->body, cap)) == NULL) {
			x->early = EARLY_NOMEM;
			return 0;
		}
		x->body = nb;
		x->cap = cap;
	}
	memcpy(x->body + x->len, p, len);
	x->len += len;
	return len;
}

/*
 * Called by curl when it would start a DNS lookup, i.e. when no address
 * from mxtls covers the host: refused, so that the fetcher never resolves
 * on its own (tests and production resolve alike, through mxtls).
 * An address literal needs no lookup; curl asks anyway.
 */
static int
on_resolver_start(void *resolver_state, void *reserved, void *arg)
{
	struct xfer *x = arg;

	(void)resolver_state;
	(void)reserved;
	return x->literal ? 0 : 1;
}

static void
xfer_free(struct xfer *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else if (xfers == x)
		xfers = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	if (x->easy != NULL) {
		curl_multi_remove_handle(multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->resolve);
	curl_slist_free_all(x->headers);
	free(x->body);
	free(x);
}

/*
 * The URL as curl will read it: https, a host, no credentials, no
 * trailing dot (mxtls resolved the name without it).  Fills host (an
 * address literal without brackets) and port.  NULL, or why not.
 */
static const char *
check_url(const char *url, char *host, size_t hostlen, long *port,
    int *literal)
{
	CURLU *u;
	char *scheme = NULL, *h = NULL, *user = NULL, *pw = NULL, *ps = NULL;
	const char *why = NULL;
	unsigned char a[16];
	size_t len;

	if ((u = curl_url()) == NULL)
		return "out of memory";
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		why = "malformed URL";
		goto done;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcasecmp(scheme, "https") != 0) {
		why = "not an https URL";
		goto done;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &pw, 0) == CURLUE_OK) {
		why = "credentials in the URL";
		goto done;
	}
	if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    (len = strlen(h)) == 0 || len >= hostlen) {
		why = "no host, or too long";
		goto done;
	}
	if (h[len - 1] == '.') {
		why = "host name ends with a dot";
		goto done;
	}
	if (h[0] == '[' && h[len - 1] == ']') {
		memcpy(host, h + 1, len - 2);
		host[len - 2] = '\0';
	} else
		memcpy(host, h, len + 1);
	*literal = inet_pton(AF_INET, host, a) == 1 ||
	    inet_pton(AF_INET6, host, a) == 1;
	if (curl_url_get(u, CURLUPART_PORT, &ps, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK || (*port = strtol(ps, NULL, 10)) < 1 || *port > 65535)
		why = "bad port";
done:
	curl_free(scheme);
	curl_free(h);
	curl_free(user);
	curl_free(pw);
	curl_free(ps);
	curl_url_cleanup(u);
	return why;
}

/* "host:port:addr,addr,..." for CURLOPT_RESOLVE (IPv6 in brackets). */
static struct curl_slist *
resolve_entry(const char *host, long port, const struct fetch_request *rq)
{
	char entry[FETCHPROTO_URL_MAX + FETCHPROTO_ADDRS_MAX * 50];
	char a[INET6_ADDRSTRLEN];
	size_t off;
	int i;

	off = (size_t)snprintf(entry, sizeof(entry), "%s:%ld:", host, port);
	for (i = 0; i < rq->naddrs && off < sizeof(entry); i++) {
		int v6 = rq->addrs[i].len == 16;

		if (inet_ntop(v6 ? AF_INET6 : AF_INET, rq->addrs[i].a, a,
		    sizeof(a)) == NULL)
			return NULL;
		off += (size_t)snprintf(entry + off, sizeof(entry) - off,
		    "%s%s%s%s", i ? "," : "", v6 ? "[" : "", a, v6 ? "]" : "");
	}
	if (off >= sizeof(entry))
		return NULL;
	return curl_slist_append(NULL, entry);
}

#define SETOPT(x, opt, val)                                            \
	do {                                                           \
		if (curl_easy_setopt((x)->easy, opt, val) != CURLE_OK) \
			return #opt;                                   \
	} while (0)

/* Every option of a transfer; NULL, or the option curl refused. */
static const char *
configure(struct xfer *x, const struct fetch_request *rq)
{
	SETOPT(x, CURLOPT_PRIVATE, x);
	SETOPT(x, CURLOPT_URL, rq->url);
	SETOPT(x, CURLOPT_PROTOCOLS_STR, "https");
	SETOPT(x, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SETOPT(x, CURLOPT_FOLLOWLOCATION, 0L);
	/*
	 * A new connection each time: a kept-alive one would outlive the
	 * addresses mxtls resolved, and skip the certificate check.
	 */
	SETOPT(x, CURLOPT_FORBID_REUSE, 1L);
	SETOPT(x, CURLOPT_FRESH_CONNECT, 1L);
	/* "" overrides http(s)_proxy and ALL_PROXY from the environment. */
	SETOPT(x, CURLOPT_PROXY, "");
	SETOPT(x, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SETOPT(x, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(x, CURLOPT_SSL_VERIFYHOST, 2L);
	if (rq->ca_bundle != NULL) {
		/* Only that bundle: not the system's CA directory as well. */
		SETOPT(x, CURLOPT_CAINFO, rq->ca_bundle);
		SETOPT(x, CURLOPT_CAPATH, (char *)NULL);
	}
	SETOPT(x, CURLOPT_NOSIGNAL, 1L);
	SETOPT(x, CURLOPT_CONNECTTIMEOUT_MS, (long)rq->connect_timeout_ms);
	SETOPT(x, CURLOPT_TIMEOUT_MS, (long)rq->timeout_ms);
	/* Refuses a declared length early; on_body counts the rest. */
	SETOPT(x, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)rq->max_bytes);
	/* No Accept-Encoding is sent and nothing is decompressed. */
	SETOPT(x, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	SETOPT(x, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
	SETOPT(x, CURLOPT_USERAGENT, USER_AGENT);
	SETOPT(x, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(x, CURLOPT_WRITEDATA, x);
	SETOPT(x, CURLOPT_RESOLVER_START_FUNCTION, on_resolver_start);
	SETOPT(x, CURLOPT_RESOLVER_START_DATA, x);
	SETOPT(x, CURLOPT_ERRORBUFFER, x->errbuf);
	if (x->resolve != NULL)
		SETOPT(x, CURLOPT_RESOLVE, x->resolve);
	if (x->headers != NULL)
		SETOPT(x, CURLOPT_HTTPHEADER, x->headers);
	if (rq->body != NULL) {
		/* The size first: COPYPOSTFIELDS copies that many bytes. */
		SETOPT(x, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)rq->body_len);
		SETOPT(x, CURLOPT_COPYPOSTFIELDS, (char *)rq->body);
	}
	return NULL;
}

static int
add_header(struct xfer *x, const char *name, const char *value)
{
	char line[FETCHPROTO_ETAG_MAX + 64];
	struct curl_slist *l;

	/* "Name:" with nothing after it removes a header curl would add. */
	snprintf(line, sizeof(line), "%s:%s%s", name, value[0] ? " " : "",
	    value);
	if ((l = curl_slist_append(x->headers, line)) == NULL)
		return -1;
	x->headers = l;
	return 0;
}

static void
start(const struct fetch_request *rq)
{
	char host[FETCHPROTO_URL_MAX + 1], why[FETCHPROTO_ERROR_MAX];
	const char *bad;
	struct xfer *x;
	long port = 0;
	int literal = 0;
	CURLMcode mc;

	if ((bad = check_url(rq->url, host, sizeof(host), &port,
	    &literal)) != NULL) {
		respond_error(rq->id, FETCH_BAD_REQUEST, bad);
		return;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		respond_error(rq->id, FETCH_INTERNAL, "out of memory");
		return;
	}
	x->id = rq->id;
	x->flags = rq->flags;
	x->max_bytes = rq->max_bytes;
	x->literal = literal;
	x->conditional = rq->etag != NULL || rq->if_modified_since != NULL;
	x->deadline = now_ms() + rq->timeout_ms + DEADLINE_GRACE_MS;
	/*
	 * An address literal is its own resolution (and curl's RESOLVE
	 * syntax has no room for an IPv6 host); a name gets the addresses.
	 */
	if (!literal && (x->resolve = resolve_entry(host, port, rq)) == NULL)
		goto nomem;
	if (rq->etag != NULL && add_header(x, "If-None-Match", rq->etag) < 0)
		goto nomem;
	if (rq->if_modified_since != NULL &&
	    add_header(x, "If-Modified-Since", rq->if_modified_since) < 0)
		goto nomem;
	/*
	 * A POST carries its type, and no "Expect: 100-continue": the body
	 * goes at once instead of waiting a second for a server that does
	 * not answer 100.
	 */
	x->post = rq->body != NULL;
	if (x->post && (add_header(x, "Content-Type", rq->content_type) < 0 ||
	    add_header(x, "Expect", "") < 0))
		goto nomem;
	if ((x->easy = curl_easy_init()) == NULL)
		goto nomem;
	if ((bad = configure(x, rq)) != NULL) {
		snprintf(why, sizeof(why), "curl refused %s", bad);
		respond_error(rq->id, FETCH_INTERNAL, why);
		xfer_free(x);
		return;
	}
	if ((mc = curl_multi_add_handle(multi, x->easy)) != CURLM_OK) {
		respond_error(rq->id, FETCH_INTERNAL, curl_multi_strerror(mc));
		xfer_free(x);
		return;
	}
	x->next = xfers;
	if (xfers != NULL)
		xfers->prev = x;
	xfers = x;
	nxfers++;
	return;
nomem:
	respond_error(rq->id, FETCH_INTERNAL, "out of memory");
	xfer_free(x);
}

static enum fetch_result
curl_result(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return FETCH_TIMEOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return FETCH_CONNECT_ERROR;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_USE_SSL_FAILED:
		return FETCH_TLS_ERROR;
	case CURLE_FILESIZE_EXCEEDED:
		return FETCH_TOO_LARGE;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return FETCH_BAD_REQUEST;
	case CURLE_OUT_OF_MEMORY:
	case CURLE_FAILED_INIT:
		return FETCH_INTERNAL;
	default:
		return FETCH_TRANSFER_ERROR;
	}
}

/*
 * Why the certificate failed, appended to why.  curl's GnuTLS backend
 * says only "verification failed"; CURLINFO_SSL_VERIFYRESULT holds
 * GnuTLS's gnutls_certificate_status_t bits (stable ABI, gnutls.h).
 * Other backends: nothing added, their messages say it already.
 */
static void
verify_detail(struct xfer *x, char *why, size_t whylen)
{
	static const struct {
		unsigned long bit;
		const char *what;
	} bits[] = {
		{ 1ul << 5, "revoked" },
		{ 1ul << 6, "issuer not trusted" },
		{ 1ul << 7, "issuer is not a CA" },
		{ 1ul << 8, "insecure algorithm" },
		{ 1ul << 9, "not yet valid" },
		{ 1ul << 10, "expired" },
		{ 1ul << 11, "bad signature" },
		{ 1ul << 14, "name mismatch" },
		{ 1ul << 16, "issuer constraints" },
		{ 1ul << 18, "not for TLS servers" },
		{ 1ul << 21, "unknown critical extension" },
	};
	curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	long res = 0;
	size_t i, off;
	const char *sep = ": ";

	if (v == NULL || v->ssl_version == NULL ||
	    strncmp(v->ssl_version, "GnuTLS", 6) != 0 ||
	    curl_easy_getinfo(x->easy, CURLINFO_SSL_VERIFYRESULT, &res) !=
	    CURLE_OK || res == 0)
		return;
	/* Drop curl's " CAfile: ... CRLfile: ..." tail: the bundle is known. */
	if ((off = strcspn(why, ".")) < strlen(why))
		why[off] = '\0';
	for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if ((unsigned long)res & bits[i].bit) {
			off = strlen(why);
			snprintf(why + off, whylen - off, "%s%s", sep,
			    bits[i].what);
			sep = ", ";
		}
}

/*
 * A finished transfer (rc from curl, or CURLE_OPERATION_TIMEDOUT from
 * expire()): answer it and free it.
 */
static void
finish(struct xfer *x, CURLcode rc)
{
	struct fetch_response rs;
	struct curl_header *h;
	char why[FETCHPROTO_ERROR_MAX + 1];
	char *ct = NULL, *loc = NULL;
	curl_off_t us = 0;
	long code = 0;

	memset(&rs, 0, sizeof(rs));
	why[0] = '\0';
	rs.id = x->id;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	rs.status = code > 0 && code <= FETCHPROTO_STATUS_MAX ?
	    (uint32_t)code : 0;
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
	rs.content_type = header_copy(ct, FETCHPROTO_CTYPE_MAX);
	/* One ETag (Last-Modified) or none: two are no validator. */
	if (curl_easy_header(x->easy, "ETag", 0, CURLH_HEADER, -1, &h) ==
	    CURLHE_OK && h->amount == 1)
		rs.etag = header_copy(h->value, FETCHPROTO_ETAG_MAX);
	if (curl_easy_header(x->easy, "Last-Modified", 0, CURLH_HEADER, -1,
	    &h) == CURLHE_OK && h->amount == 1)
		rs.last_modified = header_copy(h->value, FETCHPROTO_DATE_MAX);
	if (curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK &&
	    us >= 0)
		rs.duration_ms = us / 1000 > UINT32_MAX ? UINT32_MAX :
		    (uint32_t)(us / 1000);

	/*
	 * Most telling reason first: a status other than 200 (its body,
	 * however large or slow, is not wanted), then a wrong type, then the
	 * size, then what curl says.
	 */
	if (x->early == EARLY_NOMEM) {
		rs.result = FETCH_INTERNAL;
		snprintf(why, sizeof(why), "out of memory for the body");
	} else if (code == 304 && x->conditional) {
		rs.result = FETCH_NOT_MODIFIED;
	} else if (code >= 300 && code <= 399 && code != 304) {
		rs.result = FETCH_REDIRECT;
		/* The header: curl computes REDIRECT_URL only after a body. */
		if (curl_easy_header(x->easy, "Location", 0, CURLH_HEADER, -1,
		    &h) == CURLHE_OK)
			loc = h->value;
		snprintf(why, sizeof(why), "HTTP %ld redirect%s%s not followed",
		    code, loc != NULL ? " to " : "", loc != NULL ? loc : "");
	} else if (code >= 100 && !status_ok(x, code)) {
		rs.result = FETCH_HTTP_STATUS;
		snprintf(why, sizeof(why), "HTTP status %ld", code);
	} else if (code == 200 && (x->flags & FETCHPROTO_F_TEXT_PLAIN) &&
	    !is_text_plain(ct)) {
		rs.result = FETCH_CONTENT_TYPE;
		snprintf(why, sizeof(why), "Content-Type %s is not text/plain",
		    ct != NULL ? ct : "(none)");
	} else if (x->early == EARLY_TOO_LARGE ||
	    rc == CURLE_FILESIZE_EXCEEDED) {
		rs.result = FETCH_TOO_LARGE;
		snprintf(why, sizeof(why), "body larger than %lu bytes",
		    (unsigned long)x->max_bytes);
	} else if (rc != CURLE_OK) {
		rs.result = curl_result(rc);
		snprintf(why, sizeof(why), "%s", x->errbuf[0] != '\0' ?
		    x->errbuf : curl_easy_strerror(rc));
		if (rc == CURLE_PEER_FAILED_VERIFICATION)
			verify_detail(x, why, sizeof(why));
	} else if (status_ok(x, code)) {
		rs.result = FETCH_OK;
		rs.body = x->body;
		rs.body_len = x->len;
	} else {
		rs.result = FETCH_TRANSFER_ERROR;
		snprintf(why, sizeof(why), "no HTTP status");
	}
	text_clean(why, FETCHPROTO_ERROR_MAX);
	if (why[0] != '\0')
		rs.error = why;
	respond(&rs);
	free(rs.content_type);
	free(rs.etag);
	free(rs.last_modified);
	nxfers--;
	xfer_free(x);
}

/*
 * Abort transfers past their deadline.  curl enforces CURLOPT_TIMEOUT_MS
 * itself; this backstop holds the promise "every request is answered
 * within its timeout" whatever state curl keeps a transfer in.  Returns
 * the milliseconds until the next deadline (at most POLL_MS).
 */
static long
expire(void)
{
	int64_t now = now_ms(), next = now + POLL_MS;
	struct xfer *x, *nx;

	for (x = xfers; x != NULL; x = nx) {
		nx = x->next;
		if (x->deadline <= now) {
			snprintf(x->errbuf, sizeof(x->errbuf), "no answer "
			    "within the timeout");
			finish(x, CURLE_OPERATION_TIMEDOUT);
		} else if (x->deadline < next)
			next = x->deadline;
	}
	return (long)(next - now);
}

/* ---- input ---- */

static void
handle_frame(const unsigned char *frame, size_t len)
{
	struct fetch_request rq;
	char err[256];

	if (fetchproto_decode_request(frame, len, &rq, err, sizeof(err)) < 0) {
		text_clean(err, FETCHPROTO_ERROR_MAX);
		respond_error(rq.id, FETCH_BAD_REQUEST, err);
		return;
	}
	if (nxfers + noutq >= INFLIGHT_MAX)
		respond_error(rq.id, FETCH_BUSY, "too many requests in flight");
	else
		start(&rq);
	fetchproto_request_free(&rq);
}

/* Read what there is; answer whole frames.  0 at the end of input. */
static int
read_input(void)
{
	size_t off, flen;
	ssize_t n;
	int r;

	for (;;) {
		if (incap - inlen < READ_CHUNK) {
			unsigned char *nb;

			if ((nb = realloc(inbuf, inlen + READ_CHUNK)) == NULL)
				die(1, "out of memory reading requests");
			inbuf = nb;
			incap = inlen + READ_CHUNK;
		}
		n = read(io_fd, inbuf + inlen, incap - inlen);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			die(1, "read: %s", strerror(errno));
		}
		inlen += (size_t)n;
		/* Frames as they complete, so that a burst is not buffered. */
		off = 0;
		while ((r = fetchproto_frame(inbuf + off, inlen - off,
		    &flen)) == 1) {
			handle_frame(inbuf + off, flen);
			off += flen;
		}
		if (r < 0)
			die(2, "input cannot be framed (length prefix out of "
			    "range): giving up");
		memmove(inbuf, inbuf + off, inlen - off);
		inlen -= off;
		if (outq_bytes > OUTQ_SOFT_MAX)
			break; /* let mxtls read first */
	}
	/* Do not keep a large buffer for one large frame. */
	if (inlen == 0 && incap > 4 * READ_CHUNK) {
		free(inbuf);
		inbuf = NULL;
		incap = 0;
	}
	return 1;
}

/* The version comes from the Makefile (VERSION), as mxtls's. */
#ifndef MXTLS_VERSION
#define MXTLS_VERSION "unknown"
#endif

static void
usage(FILE *out)
{
	fprintf(out, "usage:\n"
	    "  mxtls-fetch [-f FD]\n"
	    "      Fetch policy documents over HTTPS for mxtls, which starts\n"
	    "      it: speaks policy/fetch-protocol.md on FD (default %d), a\n"
	    "      socket or bidirectional pipe set up by mxtls.\n"
	    "  mxtls-fetch -h | --help\n"
	    "      This text.\n"
	    "  mxtls-fetch -V | --version\n"
	    "      Print the version.\n"
	    "See mxtls(8).\n", DEFAULT_FD);
	if (out == stderr)
		exit(64);
}

int
main(int argc, char **argv)
{
	curl_version_info_data *v;
	long wait_ms = POLL_MS;
	int c, fl, running;
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, "f:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mxtls-fetch %s\n", MXTLS_VERSION);
			return 0;
		case 'f': {
			char *end;
			long fd = strtol(optarg, &end, 10);

			if (*optarg == '\0' || *end != '\0' || fd < 0 ||
			    fd > INT_MAX)
				usage(stderr);
			io_fd = (int)fd;
			break;
		}
		default:
			usage(stderr);
		}
	}
	if (optind != argc)
		usage(stderr);
	if ((fl = fcntl(io_fd, F_GETFL)) < 0) {
		logmsg("error", "fd %d: %s (mxtls passes the socket as fd %d)",
		    io_fd, strerror(errno), DEFAULT_FD);
		return 64;
	}
	if (fcntl(io_fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(io_fd, F_SETFD, FD_CLOEXEC) < 0) {
		logmsg("error", "fd %d: %s", io_fd, strerror(errno));
		return 1;
	}
	/* A write to a closed peer is an error to handle, not a death. */
	signal(SIGPIPE, SIG_IGN);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		logmsg("error", "curl_global_init failed");
		return 1;
	}
	v = curl_version_info(CURLVERSION_NOW);
	if (v == NULL || !(v->features & CURL_VERSION_SSL) ||
	    v->version_num < 0x075500) {
		logmsg("error", "libcurl %s: need 7.85.0 or later with TLS",
		    v != NULL ? v->version : "?");
		curl_global_cleanup();
		return 1;
	}
	/*
	 * No CURLMOPT_MAX_*_CONNECTIONS: INFLIGHT_MAX bounds the sockets,
	 * and a transfer queued for a connection would wait unseen.
	 */
	if ((multi = curl_multi_init()) == NULL)
		die(1, "curl_multi_init failed");

	for (;;) {
		struct curl_waitfd wfd;
		struct CURLMsg *m;
		CURLMcode mc;
		int left;

		/*
		 * curl's revents is documented as unsupported: after each
		 * wake-up simply try both directions (the fd is non-blocking).
		 */
		memset(&wfd, 0, sizeof(wfd));
		wfd.fd = io_fd;
		if (outq_bytes <= OUTQ_SOFT_MAX)
			wfd.events |= CURL_WAIT_POLLIN;
		if (outq != NULL)
			wfd.events |= CURL_WAIT_POLLOUT;
		mc = curl_multi_poll(multi, &wfd, 1, (int)wait_ms, NULL);
		if (mc != CURLM_OK)
			die(1, "curl_multi_poll: %s", curl_multi_strerror(mc));
		if (outq_bytes <= OUTQ_SOFT_MAX && read_input() == 0) {
			/* mxtls is gone or wants us gone: nobody to answer. */
			cleanup();
			return 0;
		}
		mc = curl_multi_perform(multi, &running);
		if (mc != CURLM_OK)
			die(1, "curl_multi_perform: %s",
			    curl_multi_strerror(mc));
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			struct xfer *x = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
			    (char **)&x);
			if (x != NULL)
				finish(x, m->data.result);
		}
		wait_ms = expire();
		flush_output();
	}
}
