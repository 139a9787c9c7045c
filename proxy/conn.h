/*
 * A connection: the only code that touches sockets, libev watchers and
 * BoringSSL's I/O.  It owns one ev_io and one ev_timer, an input and an
 * output buffer, and reports semantic events to its owner.  The event mask
 * is derived from the connection's state in one place after every change
 * (conn_update), never started and stopped by hand.
 */
#ifndef MXTLS_CONN_H
#define MXTLS_CONN_H

#include <ev.h>
#include <sys/socket.h>

#include "buf.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

enum conn_event {
	CONN_EV_CONNECTED, /* outbound TCP connect finished */
	CONN_EV_INPUT,	   /* new bytes in c->in */
	CONN_EV_DRAINED,   /* c->out became empty */
	CONN_EV_TLS_READY, /* handshake finished (verification is the owner's) */
	CONN_EV_EOF,	   /* peer closed (or sent close_notify) */
	CONN_EV_ERROR,	   /* c->error says what */
	CONN_EV_TIMEOUT,   /* the deadline set with conn_deadline passed */
};

struct conn;
typedef void conn_cb(struct conn *c, enum conn_event ev, void *arg);

enum conn_state {
	CONN_CONNECTING,
	CONN_OPEN,
	CONN_HANDSHAKE,
	CONN_TLS,
	CONN_CLOSED,
};

struct conn {
	struct ev_loop *loop;
	int fd;
	enum conn_state state;
	ev_io io;
	ev_timer timer;
	struct buf in;
	struct buf out;
	SSL *ssl;
	int reading;	 /* the owner wants input */
	int ssl_want;	 /* SSL_ERROR_WANT_READ/WRITE of the handshake */
	int rd_want;	 /* ... of the last SSL_read */
	int wr_want;	 /* ... of the last SSL_write */
	int eof;	 /* peer closed; reported once */
	char error[256];
	conn_cb *cb;
	void *arg;
	struct sockaddr_storage peer;
	socklen_t peerlen;
};

/* Take an accepted fd.  Returns 0, or -1 when out of memory. */
int conn_init_fd(struct conn *c, struct ev_loop *loop, int fd,
    size_t bufsize, conn_cb *cb, void *arg);
/* Start a non-blocking connect; CONN_EV_CONNECTED or CONN_EV_ERROR follow. */
int conn_connect(struct conn *c, struct ev_loop *loop,
    const struct sockaddr *sa, socklen_t salen, size_t bufsize, conn_cb *cb,
    void *arg);
/*
 * Start a client handshake on an open plaintext connection.  Fails if
 * c->in holds bytes: they arrived before TLS and must not be read as if
 * they came through it (the caller treats that as an injection).
 */
int conn_start_tls(struct conn *c, SSL_CTX *ctx, const char *sni,
    const char *verified_by);
/* Append to c->out (all or nothing); 0, or -1 when it does not fit. */
int conn_write(struct conn *c, const void *p, size_t n);
void conn_set_reading(struct conn *c, int on);
/* Deadline in seconds from now for the current phase; 0 stops it. */
void conn_deadline(struct conn *c, double seconds);
/*
 * Hand an open connection to another owner: *dst takes the fd, TLS
 * state and buffers of *src and reports to cb/arg, with no deadline set;
 * *src is left closed and empty.
 */
void conn_move(struct conn *dst, struct conn *src, conn_cb *cb, void *arg);
/* Stop watchers and close the fd now; buffers stay until conn_free. */
void conn_close(struct conn *c);
void conn_free(struct conn *c);
/* Re-derive the watcher mask from the state; called after every change. */
void conn_update(struct conn *c);
/*
 * Transparent mode: the destination the client dialled before the
 * REDIRECT rule rewrote it (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).
 * 0, or -1 with errno (e.g. ENOENT when the connection was not redirected).
 */
int conn_original_dst(const struct conn *c, struct sockaddr_storage *ss,
    socklen_t *len);
/* Every upstream socket made from now on carries this SO_MARK (0: none). */
void conn_set_upstream_mark(int mark);
/* The peer address as text ("127.0.0.1", "::1"). */
const char *conn_peer_str(const struct conn *c, char *dst, size_t len);

#endif
