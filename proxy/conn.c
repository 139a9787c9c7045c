#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conn.h"
#include "sockaddr.h"
#include "tls.h"

/* Linux netfilter's getsockopt names, without its conflicting headers. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/* SO_MARK for upstream sockets, so a REDIRECT rule can skip them. */
static int conn_upstream_mark;

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static int
conn_setup(struct conn *c, struct ev_loop *loop, int fd, size_t bufsize,
    conn_cb *cb, void *arg)
{
	int one = 1;

	c->loop = loop;
	c->fd = fd;
	c->cb = cb;
	c->arg = arg;
	c->ssl = NULL;
	c->reading = 0;
	c->ssl_want = 0;
	c->rd_want = 0;
	c->wr_want = 0;
	c->eof = 0;
	c->error[0] = '\0';
	if (buf_init(&c->in, bufsize) == -1)
		return -1;
	if (buf_init(&c->out, bufsize) == -1) {
		buf_free(&c->in);
		return -1;
	}
	/* SMTP is request/reply: Nagle would only add latency. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_init(&c->io, conn_io_cb, fd, 0);
	c->io.data = c;
	ev_timer_init(&c->timer, conn_timer_cb, 0., 0.);
	c->timer.data = c;
	return 0;
}

int
conn_init_fd(struct conn *c, struct ev_loop *loop, int fd, size_t bufsize,
    conn_cb *cb, void *arg)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	if (conn_setup(c, loop, fd, bufsize, cb, arg) == -1)
		return -1;
	c->peerlen = sizeof(c->peer);
	if (getpeername(fd, (struct sockaddr *)&c->peer, &c->peerlen) == -1)
		c->peerlen = 0;
	c->state = CONN_OPEN;
	conn_update(c);
	return 0;
}

int
conn_connect(struct conn *c, struct ev_loop *loop, const struct sockaddr *sa,
    socklen_t salen, size_t bufsize, conn_cb *cb, void *arg)
{
	int fd;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		snprintf(c->error, sizeof(c->error), "socket: %s",
		    strerror(errno));
		c->state = CONN_CLOSED;
		c->fd = -1;
		return -1;
	}
	if (conn_setup(c, loop, fd, bufsize, cb, arg) == -1) {
		close(fd);
		snprintf(c->error, sizeof(c->error), "out of memory");
		c->state = CONN_CLOSED;
		c->fd = -1;
		return -1;
	}
	memcpy(&c->peer, sa, salen);
	c->peerlen = salen;
	c->state = CONN_CONNECTING;
	if (conn_upstream_mark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK,
	    &conn_upstream_mark, sizeof(conn_upstream_mark)) == -1)
		snprintf(c->error, sizeof(c->error), "SO_MARK %d: %s",
		    conn_upstream_mark, strerror(errno));
	else if (connect(fd, sa, salen) == -1 && errno != EINPROGRESS) {
		/* Reported from the loop like any other connect failure. */
		snprintf(c->error, sizeof(c->error), "connect: %s",
		    strerror(errno));
	}
	if (c->error[0] != '\0')
		ev_feed_event(loop, &c->io, EV_WRITE);
	conn_update(c);
	return 0;
}

int
conn_start_tls(struct conn *c, SSL_CTX *ctx, const char *sni,
    const char *verified_by)
{
	char key[TLS_KEY_MAX], addr[INET6_ADDRSTRLEN];

	if (c->state != CONN_OPEN || buf_len(&c->in) != 0)
		return -1;
	if ((c->ssl = SSL_new(ctx)) == NULL)
		return -1;
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_connect_state(c->ssl);
	if (sni != NULL)
		SSL_set_tlsext_host_name(c->ssl, sni);
	/*
	 * Sessions are resumed per name and address the handshake is for,
	 * and per way of verifying it: a session verified by the web PKI
	 * never serves a DANE host, nor one of other TLSA records.
	 */
	conn_peer_str(c, addr, sizeof(addr));
	snprintf(key, sizeof(key), "%s|%s:%u|%s", sni ? sni : "", addr,
	    ntohs(((struct sockaddr_in *)&c->peer)->sin_port),
	    verified_by ? verified_by : "");
	if (tls_prepare(c->ssl, key) == -1) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		return -1;
	}
	c->state = CONN_HANDSHAKE;
	c->ssl_want = SSL_ERROR_WANT_WRITE;
	conn_update(c);
	return 0;
}

int
conn_write(struct conn *c, const void *p, size_t n)
{
	if (buf_append(&c->out, p, n) == -1)
		return -1;
	conn_update(c);
	return 0;
}

void
conn_set_reading(struct conn *c, int on)
{
	/* Always re-derive: the owner may have made room in c->in. */
	c->reading = on;
	conn_update(c);
	/*
	 * Records already decrypted inside BoringSSL raise no fd event:
	 * feed one so they are not stranded (SSL_pending).
	 */
	if (on && c->ssl != NULL && c->state == CONN_TLS &&
	    SSL_pending(c->ssl) > 0)
		ev_feed_event(c->loop, &c->io, EV_READ);
}

void
conn_deadline(struct conn *c, double seconds)
{
	if (c->state == CONN_CLOSED)
		return;
	ev_timer_stop(c->loop, &c->timer);
	if (seconds > 0) {
		ev_timer_set(&c->timer, seconds, 0.);
		ev_timer_start(c->loop, &c->timer);
	}
}

void
conn_update(struct conn *c)
{
	int mask = 0;
	int want_in;

	if (c->state == CONN_CLOSED)
		return;
	want_in = c->reading && !c->eof && buf_room(&c->in) > 0;
	switch (c->state) {
	case CONN_CONNECTING:
		mask = EV_WRITE;
		break;
	case CONN_HANDSHAKE:
		mask = c->ssl_want == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
		break;
	case CONN_OPEN:
		if (want_in)
			mask |= EV_READ;
		if (buf_len(&c->out) > 0)
			mask |= EV_WRITE;
		break;
	case CONN_TLS:
		/* A TLS read may need the socket writable and the reverse. */
		if (want_in)
			mask |= c->rd_want == SSL_ERROR_WANT_WRITE ? EV_WRITE :
			    EV_READ;
		if (buf_len(&c->out) > 0)
			mask |= c->wr_want == SSL_ERROR_WANT_READ ? EV_READ :
			    EV_WRITE;
		break;
	case CONN_CLOSED:
		break;
	}
	/* An idle connection holds no buffer memory (docs/bench.md, W3). */
	buf_release(&c->in);
	buf_release(&c->out);
	if (mask == (c->io.events & (EV_READ | EV_WRITE)) &&
	    ev_is_active(&c->io))
		return;
	ev_io_stop(c->loop, &c->io);
	if (mask != 0) {
		ev_io_set(&c->io, c->fd, mask);
		ev_io_start(c->loop, &c->io);
	}
}

static void
conn_emit(struct conn *c, enum conn_event ev)
{
	c->cb(c, ev, c->arg);
}

static void
conn_fail(struct conn *c, const char *what, int err)
{
	if (err != 0)
		snprintf(c->error, sizeof(c->error), "%s: %s", what,
		    strerror(err));
	else
		snprintf(c->error, sizeof(c->error), "%s", what);
	conn_emit(c, CONN_EV_ERROR);
}

/* Returns -1 after an error was reported, 0 otherwise. */
static int
conn_flush(struct conn *c)
{
	ssize_t n;
	int r;

	while (buf_len(&c->out) > 0) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			r = SSL_write(c->ssl, buf_head(&c->out),
			    buf_len(&c->out) > 1 << 30 ? 1 << 30 :
			    (int)buf_len(&c->out));
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE) {
					c->wr_want = e;
					return 0;
				}
				tls_handshake_error(c->ssl, r, c->error,
				    sizeof(c->error));
				conn_emit(c, CONN_EV_ERROR);
				return -1;
			}
			c->wr_want = 0;
			n = r;
		} else {
			n = send(c->fd, buf_head(&c->out), buf_len(&c->out),
			    MSG_NOSIGNAL);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					return 0;
				conn_fail(c, "write", errno);
				return -1;
			}
		}
		buf_consume(&c->out, (size_t)n);
	}
	conn_emit(c, CONN_EV_DRAINED);
	return c->state == CONN_CLOSED ? -1 : 0;
}

/* Returns -1 after an error was reported, 0 otherwise. */
static int
conn_fill(struct conn *c)
{
	size_t space, got = 0;
	ssize_t n;
	int r;

	while (!c->eof && (space = buf_space(&c->in)) > 0) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			errno = 0;
			r = SSL_read(c->ssl, buf_tail(&c->in),
			    space > 1 << 30 ? 1 << 30 : (int)space);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE) {
					c->rd_want = e;
					break;
				}
				if (e == SSL_ERROR_ZERO_RETURN ||
				    (e == SSL_ERROR_SYSCALL &&
				    ERR_peek_error() == 0 && errno == 0)) {
					c->eof = 1;
					break;
				}
				tls_handshake_error(c->ssl, r, c->error,
				    sizeof(c->error));
				conn_emit(c, CONN_EV_ERROR);
				return -1;
			}
			c->rd_want = 0;
			n = r;
		} else {
			n = recv(c->fd, buf_tail(&c->in), space, 0);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				conn_fail(c, "read", errno);
				return -1;
			}
			if (n == 0) {
				c->eof = 1;
				break;
			}
		}
		buf_commit(&c->in, (size_t)n);
		got += (size_t)n;
		/* Hand over a full plaintext read at once; TLS keeps going
		 * only while BoringSSL holds decrypted bytes. */
		if (c->ssl == NULL && (size_t)n < space)
			break;
	}
	if (got > 0) {
		conn_emit(c, CONN_EV_INPUT);
		if (c->state == CONN_CLOSED)
			return -1;
	}
	if (c->eof) {
		conn_emit(c, CONN_EV_EOF);
		return -1;
	}
	return 0;
}

/*
 * Acknowledge at once during and right after the handshake: the peer's
 * Nagle otherwise holds its reply until our delayed ACK, 40 ms later,
 * since we have nothing more to send that could carry it.  The kernel
 * turns this off again by itself, so it is set at each step.
 */
static void
conn_quickack(struct conn *c)
{
	int one = 1;

	setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static void
conn_handshake(struct conn *c)
{
	int r, e;

	conn_quickack(c);
	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->state = CONN_TLS;
		c->ssl_want = 0;
		conn_quickack(c);
		conn_emit(c, CONN_EV_TLS_READY);
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->ssl_want = e;
		return;
	}
	tls_handshake_error(c->ssl, r, c->error, sizeof(c->error));
	conn_emit(c, CONN_EV_ERROR);
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	socklen_t len = sizeof(int);
	int err = 0;

	(void)loop;
	(void)revents;
	switch (c->state) {
	case CONN_CONNECTING:
		if (c->error[0] != '\0') {
			conn_emit(c, CONN_EV_ERROR);
			return;
		}
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err == EINPROGRESS)
			return;
		if (err != 0) {
			conn_fail(c, "connect", err);
			return;
		}
		c->state = CONN_OPEN;
		conn_emit(c, CONN_EV_CONNECTED);
		break;
	case CONN_HANDSHAKE:
		conn_handshake(c);
		break;
	case CONN_OPEN:
	case CONN_TLS:
		/*
		 * Try both directions on any event: an operation that is not
		 * ready only says so, and TLS may cross them over.
		 */
		if (buf_len(&c->out) > 0 && conn_flush(c) == -1)
			return;
		if (c->state == CONN_CLOSED)
			return;
		if (c->reading && conn_fill(c) == -1)
			return;
		break;
	case CONN_CLOSED:
		return;
	}
	conn_update(c);
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;

	(void)loop;
	(void)revents;
	conn_emit(c, CONN_EV_TIMEOUT);
}

void
conn_move(struct conn *dst, struct conn *src, conn_cb *cb, void *arg)
{
	/* The watchers are registered by address: stop, copy, start anew. */
	ev_io_stop(src->loop, &src->io);
	ev_timer_stop(src->loop, &src->timer);
	*dst = *src;
	dst->cb = cb;
	dst->arg = arg;
	ev_io_init(&dst->io, conn_io_cb, dst->fd, 0);
	dst->io.data = dst;
	ev_timer_init(&dst->timer, conn_timer_cb, 0., 0.);
	dst->timer.data = dst;
	memset(&src->in, 0, sizeof(src->in));
	memset(&src->out, 0, sizeof(src->out));
	src->ssl = NULL;
	src->fd = -1;
	src->state = CONN_CLOSED;
	conn_update(dst);
}

void
conn_close(struct conn *c)
{
	if (c->state == CONN_CLOSED)
		return;
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	if (c->ssl != NULL) {
		/* Best effort close_notify; the socket is non-blocking. */
		if (c->state == CONN_TLS)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->state = CONN_CLOSED;
}

void
conn_free(struct conn *c)
{
	conn_close(c);
	buf_free(&c->in);
	buf_free(&c->out);
}

const char *
conn_peer_str(const struct conn *c, char *dst, size_t len)
{
	if (c->peerlen == 0)
		snprintf(dst, len, "unknown");
	else
		sockaddr_str((const struct sockaddr *)&c->peer, dst, len);
	return dst;
}

void
conn_set_upstream_mark(int mark)
{
	conn_upstream_mark = mark;
}

int
conn_original_dst(const struct conn *c, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_storage self;
	socklen_t selflen = sizeof(self);
	int r;

	*len = sizeof(*ss);
	if (c->peer.ss_family == AF_INET6)
		r = getsockopt(c->fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, ss, len);
	else
		r = getsockopt(c->fd, SOL_IP, SO_ORIGINAL_DST, ss, len);
	if (r == -1)
		return -1;
	/* Not redirected: the "original" is our own socket, a loop. */
	if (getsockname(c->fd, (struct sockaddr *)&self, &selflen) == 0 &&
	    selflen == *len && memcmp(&self, ss, selflen) == 0) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}
