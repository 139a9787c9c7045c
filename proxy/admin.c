/*
 * The admin endpoint: /metrics, /healthz, /readyz over a minimal HTTP/1.x
 * server on the proxy's event loop (see admin.h for what it answers).
 *
 * Why admin.c touches sockets and libev itself, when conn.c is otherwise
 * the only module that does: conn.c is built for SMTP (line buffers of
 * the session's size, TLS, upstream connects, semantic events for the
 * session machine), none of which an admin request needs, and the admin
 * side must stay small and unable to disturb the mail path.  So this file
 * is its own edge module: one listening socket, and per connection one
 * fd, one ev_io and one ev_timer, as conn.c does; the io watcher's mask
 * is derived from the state in one function, admin_update().
 *
 * Limits, so that a scraper, a port scanner or a hostile local user
 * cannot hurt the proxy: ADMIN_CONNS_MAX connections (the next ones are
 * accepted and closed at once, so the backlog does not fill), a head of
 * at most ADMIN_HEAD_MAX bytes in a fixed buffer, a response of at most
 * ADMIN_BODY_MAX bytes, and ADMIN_DEADLINE seconds from accept to close
 * whatever the peer does (slowloris).  Every read and write is
 * non-blocking; no request does more than format the metrics.
 *
 * A connection: READ until a head is complete (or bad), then WRITE the
 * whole response, then shut our side down and LINGER, reading and
 * dropping what the peer still sends until it closes: closing with
 * unread input would send an RST that can destroy the response before
 * the peer reads it (a 405 or 431 answered before the request ended).
 *
 * Freeing: admin_close() stops both watchers (libev then forgets any
 * pending event of theirs) and frees the connection.  It is called only
 * as the last thing a callback does, so nothing of ours still uses the
 * memory; admin_stop() is called from outside these callbacks.
 */
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin.h"
#include "metrics.h"

/*
 * The metrics text is at most about 6 MiB (families x 257 label sets x
 * 512-byte labels, histograms 16 lines a set), a few KiB in practice.
 * Responses waiting to be sent, all connections together, stay below
 * ADMIN_OUT_TOTAL: beyond it a request gets 503.
 */
#define ADMIN_BODY_MAX (8 << 20)
#define ADMIN_OUT_TOTAL (32 << 20)
#define ADMIN_LINGER_MAX 65536
#define ADMIN_ACCEPTS_PER_EVENT 16
#define ADMIN_ACCEPT_PAUSE 1.0 /* after EMFILE and the like */

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

enum admin_state { AS_READ, AS_WRITE, AS_LINGER };

struct admin_conn {
	struct admin *a;
	struct admin_conn *prev, *next;
	int fd;
	ev_io io;
	ev_timer timer;
	enum admin_state state;
	char *out; /* the whole response */
	size_t outlen, outoff;
	size_t lingered;
	size_t inlen;
	char in[ADMIN_HEAD_MAX];
};

struct admin {
	struct ev_loop *loop;
	int fd;
	ev_io accept_io;
	ev_timer pause; /* accepting again after running out of fds */
	int (*ready)(void *);
	void *arg;
	struct admin_conn *conns;
	int nconns;
	size_t outbytes; /* of every connection's response */
};

/* ---- the request parser ---- */

/* RFC 9110 5.6.2 tchar. */
static int
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' &&
		strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The end of the line starting at p (its '\n'), or NULL if incomplete. */
static const char *
line_end(const char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

/* The line [p, nl) without its CR; -1 when a CR is anywhere else. */
static int
line_len(const char *p, const char *nl, size_t *len)
{
	size_t n = (size_t)(nl - p);

	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (memchr(p, '\r', n) != NULL)
		return -1;
	*len = n;
	return 0;
}

/* method SP request-target SP HTTP-version: a status, 200 when fine. */
static int
parse_request_line(const char *s, size_t n, struct admin_request *req)
{
	const char *end = s + n, *m = s, *t, *te, *v, *q;
	size_t mlen, i;

	while (s < end && tchar((unsigned char)*s))
		s++;
	if ((mlen = (size_t)(s - m)) == 0 || s == end || *s++ != ' ')
		return 400;
	t = s;
	while (s < end && (unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f)
		s++;
	te = s;
	if (t == te || s == end || *s++ != ' ')
		return 400;
	v = s;
	if (end - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
	    v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
		return 400;

	/*
	 * The target: origin-form, absolute-form (RFC 9112 3.2.2: servers
	 * must accept it; the authority is ignored) or "*".  The query
	 * string is cut off: /metrics?x=1 is /metrics.
	 */
	if (*t == '/')
		q = t;
	else if ((te - t >= 7 && strncasecmp(t, "http://", 7) == 0) ||
	    (te - t >= 8 && strncasecmp(t, "https://", 8) == 0)) {
		q = t + (t[4] == ':' ? 7 : 8);
		while (q < te && *q != '/' && *q != '?' && *q != '#')
			q++;
	} else if (te - t == 1 && *t == '*')
		q = t;
	else
		return 400;
	if (q < te && (*q == '/' || *q == '*')) {
		req->path = q;
		while (q < te && *q != '?' && *q != '#')
			q++;
		req->pathlen = (size_t)(q - req->path);
	} else {
		req->path = "/"; /* "http://host" or "http://host?x" */
		req->pathlen = 1;
	}

	if (v[5] != '1')
		return 505;
	req->method = ADMIN_OTHER;
	for (i = 0; i < 2; i++) {
		static const char *const names[] = { "GET", "HEAD" };

		if (mlen == strlen(names[i]) && memcmp(m, names[i], mlen) == 0)
			req->method = (enum admin_method)i;
	}
	return req->method == ADMIN_OTHER ? 405 : 200;
}

/* A header field line: name ":" value, no folding, no control bytes. */
static int
field_ok(const char *s, size_t n)
{
	const char *end = s + n, *p = s;

	while (p < end && tchar((unsigned char)*p))
		p++;
	if (p == s || p == end || *p != ':')
		return 0;
	for (p++; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

int
admin_parse_request(const char *buf, size_t len, struct admin_request *req)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t n;
	int st;

	memset(req, 0, sizeof(*req));
	/* RFC 9112 2.2: empty lines before the request line are ignored. */
	for (;;) {
		if (p < end && *p == '\n')
			p++;
		else if (p + 1 < end && p[0] == '\r' && p[1] == '\n')
			p += 2;
		else
			break;
	}
	if ((nl = line_end(p, end)) == NULL)
		goto incomplete;
	if ((size_t)(nl + 1 - buf) > ADMIN_HEAD_MAX)
		return 431;
	if (line_len(p, nl, &n) < 0)
		return 400;
	if ((st = parse_request_line(p, n, req)) != 200)
		return st;
	for (p = nl + 1; (nl = line_end(p, end)) != NULL; p = nl + 1) {
		if ((size_t)(nl + 1 - buf) > ADMIN_HEAD_MAX)
			return 431;
		if (line_len(p, nl, &n) < 0)
			return 400;
		if (n == 0) {
			req->headlen = (size_t)(nl + 1 - buf);
			return 200;
		}
		/* A line starting with white space would fold (obsolete):
		 * refused, as RFC 9112 5.2 allows; tchar() refuses it. */
		if (!field_ok(p, n))
			return 400;
	}
incomplete:
	return len >= ADMIN_HEAD_MAX ? 431 : 0;
}

/* ---- connections ---- */

static void admin_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void admin_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* The io watcher's mask follows from the state, in this one place. */
static void
admin_update(struct admin_conn *c)
{
	int want = c->state == AS_WRITE ? EV_WRITE : EV_READ;

	if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) ==
	    want)
		return;
	ev_io_stop(c->a->loop, &c->io);
	ev_io_set(&c->io, c->fd, want);
	ev_io_start(c->a->loop, &c->io);
}

static void
admin_out_free(struct admin_conn *c)
{
	c->a->outbytes -= c->outlen;
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
}

static void
admin_close(struct admin_conn *c)
{
	struct admin *a = c->a;

	ev_io_stop(a->loop, &c->io);
	ev_timer_stop(a->loop, &c->timer);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	a->nconns--;
	admin_out_free(c);
	free(c);
}

static const char *
reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Internal Server Error";
	}
}

/* The body of /metrics in malloc'd memory, or NULL. */
static char *
metrics_body(size_t *len)
{
	char *body = NULL;
	FILE *f;

	if ((f = open_memstream(&body, len)) == NULL)
		return NULL;
	metrics_write(f);
	if (ferror(f) || fclose(f) != 0 || *len > ADMIN_BODY_MAX) {
		free(body);
		return NULL;
	}
	return body;
}

static int
path_is(const struct admin_request *req, const char *path)
{
	return req->pathlen == strlen(path) &&
	    memcmp(req->path, path, req->pathlen) == 0;
}

/* Build the response to a parse status (200: route req) into c->out. */
static int
admin_respond(struct admin_conn *c, int status, const struct admin_request *req)
{
	const char *type = CT_TEXT, *text = NULL;
	char *body = NULL, *head = NULL;
	size_t blen = 0;
	int hlen, head_only = status == 200 && req->method == ADMIN_HEAD;

	if (status == 200) {
		if (path_is(req, "/metrics")) {
			if (c->a->outbytes > ADMIN_OUT_TOTAL - ADMIN_BODY_MAX) {
				status = 503;
				text = "busy\n";
			} else if ((body = metrics_body(&blen)) != NULL)
				type = CT_METRICS;
			else {
				status = 500;
				text = "metrics unavailable\n";
			}
		} else if (path_is(req, "/healthz"))
			text = "ok\n";
		else if (path_is(req, "/readyz")) {
			if (c->a->ready == NULL || c->a->ready(c->a->arg))
				text = "ready\n";
			else {
				status = 503;
				text = "not ready\n";
			}
		} else {
			status = 404;
			text = "not found\n";
		}
	} else if (status == 405)
		text = "method not allowed\n";
	else if (status == 431)
		text = "request header fields too large\n";
	else if (status == 505)
		text = "HTTP version not supported\n";
	else
		text = "bad request\n";
	if (text != NULL)
		blen = strlen(text);

	hlen = asprintf(&head, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    "Connection: close\r\n"
	    "\r\n", status, reason(status), type, blen,
	    status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (hlen < 0) {
		free(body);
		return -1;
	}
	if (head_only)
		blen = 0;
	if ((c->out = malloc((size_t)hlen + blen)) == NULL) {
		free(head);
		free(body);
		return -1;
	}
	memcpy(c->out, head, (size_t)hlen);
	if (blen > 0)
		memcpy(c->out + hlen, body != NULL ? body : text, blen);
	c->outlen = (size_t)hlen + blen;
	c->outoff = 0;
	c->a->outbytes += c->outlen;
	free(head);
	free(body);
	return 0;
}

/* Returns -1 when the connection is to be closed. */
static int
admin_read(struct admin_conn *c)
{
	struct admin_request req;
	ssize_t n;
	int st;

	memset(&req, 0, sizeof(req));
	if (c->inlen == sizeof(c->in)) {
		/* Cannot happen: a full buffer parses as 431 or better. */
		st = 431;
		goto respond;
	}
	n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR ? 0 : -1;
	if (n == 0) {
		if (c->inlen == 0)
			return -1; /* connected, said nothing: a probe */
		st = 400; /* the peer ended in the middle of a head */
	} else {
		c->inlen += (size_t)n;
		/*
		 * Parsed again from the start after each read: at most
		 * ADMIN_HEAD_MAX bytes, once per read system call.
		 */
		if ((st = admin_parse_request(c->in, c->inlen, &req)) == 0)
			return 0;
	}
respond:
	if (admin_respond(c, st, &req) < 0)
		return -1;
	c->state = AS_WRITE;
	return 1;
}

static int
admin_write(struct admin_conn *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		    MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR ? 0 : -1;
		c->outoff += (size_t)n;
	}
	admin_out_free(c);
	shutdown(c->fd, SHUT_WR);
	c->state = AS_LINGER;
	return 0;
}

static int
admin_linger(struct admin_conn *c)
{
	char junk[4096];
	ssize_t n;

	for (;;) {
		n = read(c->fd, junk, sizeof(junk));
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR ? 0 : -1;
		if (n == 0 || (c->lingered += (size_t)n) > ADMIN_LINGER_MAX)
			return -1;
	}
}

static void
admin_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct admin_conn *c = w->data;
	int r = 0;

	(void)loop;
	(void)revents;
	if (c->state == AS_READ && (r = admin_read(c)) > 0)
		r = 0; /* a response: try to send it right away */
	if (r == 0 && c->state == AS_WRITE)
		r = admin_write(c);
	if (r == 0 && c->state == AS_LINGER)
		r = admin_linger(c);
	if (r < 0) {
		admin_close(c);
		return;
	}
	admin_update(c);
}

static void
admin_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	admin_close(w->data); /* the deadline: whatever state it was in */
}

static void
admin_conn_new(struct admin *a, int fd)
{
	struct admin_conn *c;

	if ((c = malloc(sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	memset(c, 0, offsetof(struct admin_conn, in));
	c->a = a;
	c->fd = fd;
	c->state = AS_READ;
	ev_io_init(&c->io, admin_io_cb, fd, EV_READ);
	c->io.data = c;
	ev_timer_init(&c->timer, admin_timer_cb, ADMIN_DEADLINE, 0.);
	c->timer.data = c;
	ev_timer_start(a->loop, &c->timer);
	if ((c->next = a->conns) != NULL)
		c->next->prev = c;
	a->conns = c;
	a->nconns++;
	admin_update(c);
}

static void
admin_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct admin *a = w->data;
	int i, fd;

	(void)revents;
	/* A few per event: a flood of connects must not starve the loop. */
	for (i = 0; i < ADMIN_ACCEPTS_PER_EVENT; i++) {
		fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Still readable: pause, or we would spin. */
				ev_io_stop(loop, &a->accept_io);
				ev_timer_set(&a->pause, ADMIN_ACCEPT_PAUSE, 0.);
				ev_timer_start(loop, &a->pause);
			}
			return;
		}
		if (a->nconns >= ADMIN_CONNS_MAX)
			close(fd); /* over the limit: at once, unanswered */
		else
			admin_conn_new(a, fd);
	}
}

static void
admin_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct admin *a = w->data;

	(void)revents;
	ev_io_start(loop, &a->accept_io);
}

static void
sa_string(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(buf, len, "(address)");
	else if (sa->sa_family == AF_INET6)
		snprintf(buf, len, "[%s]:%s", host, serv);
	else
		snprintf(buf, len, "%s:%s", host, serv);
}

struct admin *
admin_start(struct ev_loop *loop, const struct sockaddr *sa, socklen_t salen,
    int (*ready)(void *), void *arg, char *err, size_t errlen)
{
	struct admin *a;
	char where[NI_MAXHOST + NI_MAXSERV + 4];
	const char *what;
	int one = 1, e;

	sa_string(sa, salen, where, sizeof(where));
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "admin_listen %s: out of memory", where);
		return NULL;
	}
	a->loop = loop;
	a->ready = ready;
	a->arg = arg;
	what = "socket";
	if ((a->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	/* A restart must not wait for TIME_WAIT connections of scrapes. */
	setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	what = "bind";
	if (bind(a->fd, sa, salen) < 0)
		goto fail;
	what = "listen";
	if (listen(a->fd, ADMIN_CONNS_MAX) < 0)
		goto fail;
	ev_io_init(&a->accept_io, admin_accept_cb, a->fd, EV_READ);
	a->accept_io.data = a;
	ev_timer_init(&a->pause, admin_pause_cb, ADMIN_ACCEPT_PAUSE, 0.);
	a->pause.data = a;
	ev_io_start(loop, &a->accept_io);
	return a;
fail:
	e = errno;
	snprintf(err, errlen, "admin_listen %s: %s: %s", where, what,
	    strerror(e));
	if (a->fd >= 0)
		close(a->fd);
	free(a);
	return NULL;
}

void
admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	while (a->conns != NULL)
		admin_close(a->conns);
	ev_io_stop(a->loop, &a->accept_io);
	ev_timer_stop(a->loop, &a->pause);
	close(a->fd);
	free(a);
}
