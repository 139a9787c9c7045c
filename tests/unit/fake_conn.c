/*
 * proxy/conn.h without sockets, watchers or TLS, for test_session: a
 * connection is a struct conn whose output goes to a log the test reads
 * and whose input is what the test says the peer sent.  Events reach the
 * owner only when the test reports them (fake_conn_event) or delivers
 * input (fake_conn_pump), never from inside a conn_* call: the real
 * module reports everything from the loop too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "fakes.h"
#include "sockaddr.h"

#define FAKE_CONN_MAX 64

struct fake_conn {
	struct conn *c;	 /* where its owner keeps it; NULL once freed */
	int upstream;	 /* made by conn_connect */
	char dst[INET6_ADDRSTRLEN + 8];
	char *sni;	 /* conn_start_tls's, NULL before */
	double deadline; /* the last conn_deadline, 0: none */
	char *pend;	 /* sent by the peer, not read yet */
	size_t npend;
};

/* What went out, all connections of one side together. */
struct fake_log {
	char *p;
	size_t len, cap;
};

static struct fake_conn *conns[FAKE_CONN_MAX];
static int nconns, nconnects;
static struct fake_log sent[2], taken[2];

static void
fake_log_add(struct fake_log *l, const void *p, size_t n)
{
	if (l->len + n + 1 > l->cap) {
		l->cap = (l->len + n + 1) * 2;
		if ((l->p = realloc(l->p, l->cap)) == NULL) {
			perror("fake_conn");
			exit(2);
		}
	}
	memcpy(l->p + l->len, p, n);
	l->len += n;
	l->p[l->len] = '\0';
}

static struct fake_conn *
fake_find(const struct conn *c)
{
	int i;

	for (i = nconns - 1; i >= 0; i--)
		if (conns[i]->c == c)
			return conns[i];
	return NULL;
}

static struct fake_conn *
fake_new(struct conn *c, int upstream)
{
	struct fake_conn *f;

	if (nconns == FAKE_CONN_MAX || (f = calloc(1, sizeof(*f))) == NULL) {
		fprintf(stderr, "fake_conn: too many connections\n");
		exit(2);
	}
	f->c = c;
	f->upstream = upstream;
	conns[nconns++] = f;
	return f;
}

static int
fake_setup(struct conn *c, struct ev_loop *loop, int fd, size_t bufsize,
    conn_cb *cb, void *arg)
{
	memset(c, 0, sizeof(*c));
	c->loop = loop;
	c->fd = fd;
	c->cb = cb;
	c->arg = arg;
	if (buf_init(&c->in, bufsize) == -1)
		return -1;
	if (buf_init(&c->out, bufsize) == -1) {
		buf_free(&c->in);
		return -1;
	}
	return 0;
}

/* Every MTA is 127.0.0.1: allow_clients lets loopback in by default. */
int
conn_init_fd(struct conn *c, struct ev_loop *loop, int fd, size_t bufsize,
    conn_cb *cb, void *arg)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&c->peer;

	if (fake_setup(c, loop, fd, bufsize, cb, arg) == -1)
		return -1;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(40000);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->peerlen = sizeof(*sin);
	c->state = CONN_OPEN;
	fake_new(c, 0);
	return 0;
}

int
conn_connect(struct conn *c, struct ev_loop *loop, const struct sockaddr *sa,
    socklen_t salen, size_t bufsize, conn_cb *cb, void *arg)
{
	struct fake_conn *f;
	char addr[INET6_ADDRSTRLEN];
	int port;

	if (fake_setup(c, loop, -1, bufsize, cb, arg) == -1) {
		snprintf(c->error, sizeof(c->error), "out of memory");
		c->state = CONN_CLOSED;
		return -1;
	}
	memcpy(&c->peer, sa, salen);
	c->peerlen = salen;
	c->state = CONN_CONNECTING;
	f = fake_new(c, 1);
	nconnects++;
	sockaddr_str(sa, addr, sizeof(addr));
	port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	snprintf(f->dst, sizeof(f->dst), sa->sa_family == AF_INET6 ?
	    "[%s]:%d" : "%s:%d", addr, port);
	return 0;
}

/* The same refusals as the real one: not open, or plaintext waiting. */
int
conn_start_tls(struct conn *c, SSL_CTX *ctx, const char *sni,
    const char *verified_by)
{
	struct fake_conn *f = fake_find(c);

	(void)verified_by;
	if (f == NULL || ctx == NULL || c->state != CONN_OPEN ||
	    buf_len(&c->in) != 0)
		return -1;
	free(f->sni);
	if ((f->sni = strdup(sni != NULL ? sni : "")) == NULL)
		return -1;
	c->state = CONN_HANDSHAKE;
	return 0;
}

/* All of it or nothing, as the real one; the peer gets it at once. */
int
conn_write(struct conn *c, const void *p, size_t n)
{
	struct fake_conn *f = fake_find(c);

	if (n > buf_room(&c->out))
		return -1;
	if (f != NULL && c->state != CONN_CLOSED)
		fake_log_add(&sent[f->upstream], p, n);
	return 0;
}

void
conn_set_reading(struct conn *c, int on)
{
	c->reading = on;
}

void
conn_deadline(struct conn *c, double seconds)
{
	struct fake_conn *f = fake_find(c);

	if (f != NULL && c->state != CONN_CLOSED)
		f->deadline = seconds > 0 ? seconds : 0;
}

void
conn_move(struct conn *dst, struct conn *src, conn_cb *cb, void *arg)
{
	struct fake_conn *f = fake_find(src);

	*dst = *src;
	dst->cb = cb;
	dst->arg = arg;
	memset(&src->in, 0, sizeof(src->in));
	memset(&src->out, 0, sizeof(src->out));
	src->fd = -1;
	src->state = CONN_CLOSED;
	if (f != NULL) {
		f->c = dst;
		f->deadline = 0;
	}
}

void
conn_close(struct conn *c)
{
	struct fake_conn *f;

	if (c->state == CONN_CLOSED)
		return;
	if ((f = fake_find(c)) != NULL)
		f->deadline = 0;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->state = CONN_CLOSED;
}

void
conn_free(struct conn *c)
{
	struct fake_conn *f = fake_find(c);

	conn_close(c);
	buf_free(&c->in);
	buf_free(&c->out);
	if (f != NULL)
		f->c = NULL;
}

/* Nothing is ever redirected here: transparent mode is not faked. */
int
conn_original_dst(const struct conn *c, struct sockaddr_storage *ss,
    socklen_t *len)
{
	(void)c;
	(void)ss;
	(void)len;
	errno = ENOENT;
	return -1;
}

const char *
conn_peer_str(const struct conn *c, char *dst, size_t len)
{
	sockaddr_str((const struct sockaddr *)&c->peer, dst, len);
	return dst;
}

/* --- the test's side ------------------------------------------------------ */

struct fake_conn *
fake_conn_last(int upstream)
{
	int i;

	for (i = nconns - 1; i >= 0; i--)
		if (conns[i]->upstream == upstream)
			return conns[i];
	return NULL;
}

int
fake_conn_connects(void)
{
	return nconnects;
}

const char *
fake_conn_dst(const struct fake_conn *f)
{
	return f->dst;
}

const char *
fake_conn_sni(const struct fake_conn *f)
{
	return f->sni;
}

int
fake_conn_reading(const struct fake_conn *f)
{
	return f->c != NULL && f->c->reading;
}

double
fake_conn_deadline(const struct fake_conn *f)
{
	return f->deadline;
}

int
fake_conn_closed(const struct fake_conn *f)
{
	return f->c == NULL || f->c->state == CONN_CLOSED;
}

size_t
fake_conn_unread(const struct fake_conn *f)
{
	return f->npend + (f->c != NULL ? buf_len(&f->c->in) : 0);
}

void
fake_conn_send(struct fake_conn *f, const char *bytes, size_t n)
{
	if ((f->pend = realloc(f->pend, f->npend + n)) == NULL) {
		perror("fake_conn");
		exit(2);
	}
	memcpy(f->pend + f->npend, bytes, n);
	f->npend += n;
}

/* What conn.c's read does: as much as fits, then CONN_EV_INPUT. */
static int
fake_deliver(struct fake_conn *f)
{
	struct conn *c = f->c;
	size_t n;

	if (f->npend == 0 || c == NULL || !c->reading ||
	    (c->state != CONN_OPEN && c->state != CONN_TLS))
		return 0;
	n = buf_space(&c->in);
	if (n > f->npend)
		n = f->npend;
	if (n == 0)
		return 0;
	memcpy(buf_tail(&c->in), f->pend, n);
	buf_commit(&c->in, n);
	memmove(f->pend, f->pend + n, f->npend - n);
	f->npend -= n;
	c->cb(c, CONN_EV_INPUT, c->arg);
	return 1;
}

void
fake_conn_pump(void)
{
	int i, moved;

	do {
		moved = 0;
		for (i = 0; i < nconns; i++)
			moved |= fake_deliver(conns[i]);
	} while (moved);
}

int
fake_conn_event(struct fake_conn *f, enum conn_event ev)
{
	struct conn *c = f->c;

	if (c == NULL || c->state == CONN_CLOSED)
		return -1;
	switch (ev) {
	case CONN_EV_CONNECTED:
		if (c->state != CONN_CONNECTING)
			return -1;
		c->state = CONN_OPEN;
		break;
	case CONN_EV_TLS_READY:
		if (c->state != CONN_HANDSHAKE)
			return -1;
		c->state = CONN_TLS;
		break;
	case CONN_EV_TIMEOUT:
		if (f->deadline == 0)
			return -1;
		f->deadline = 0;
		break;
	case CONN_EV_EOF:
		c->eof = 1;
		break;
	case CONN_EV_ERROR:
		/* What conn.c would say at that stage. */
		snprintf(c->error, sizeof(c->error), "%s",
		    c->state == CONN_CONNECTING ? "connect: Connection refused" :
		    c->state == CONN_HANDSHAKE ? "handshake failure (alert 40)" :
		    "read: Connection reset by peer");
		break;
	case CONN_EV_INPUT:
	case CONN_EV_DRAINED:
		return -1; /* fake_conn_pump's; output never waits here */
	}
	c->cb(c, ev, c->arg);
	return 0;
}

const char *
fake_conn_take(int upstream)
{
	struct fake_log t = taken[upstream];

	/* Two buffers: the string returned stays until the next call. */
	taken[upstream] = sent[upstream];
	sent[upstream] = t;
	sent[upstream].len = 0;
	return taken[upstream].len > 0 ? taken[upstream].p : "";
}

void
fake_conn_reset(void)
{
	int i;

	for (i = 0; i < nconns; i++) {
		free(conns[i]->sni);
		free(conns[i]->pend);
		free(conns[i]);
	}
	nconns = 0;
	nconnects = 0;
	sent[0].len = sent[1].len = 0;
}
