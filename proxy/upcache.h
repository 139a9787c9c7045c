/*
 * The upstream connection cache: a verified TLS connection left idle at
 * the end of a session waits a few seconds for the next transaction to
 * the same route, from any session, so that the TCP and TLS handshakes
 * and the EHLO are paid once per burst of mail rather than per message
 * (Postfix's connection cache).  The key says what the connection may
 * carry; a connection never serves another key.  One that leaves it in
 * a clean state says QUIT first, as do those a session is done with
 * (upcache_quit).
 */
#ifndef MXTLS_UPCACHE_H
#define MXTLS_UPCACHE_H

#include <netinet/in.h>

#include "conn.h"
#include "dns.h"
#include "smtp.h"
#include "tls.h"

#define UPCACHE_KEY_LEN 64 /* hex SHA-256 */
#define UPCACHE_QUIT_WAIT 2 /* seconds a server has to answer QUIT */

/* What the session learnt about the server; it travels with the conn. */
struct upcache_info {
	char host[DNS_NAME_MAX];
	char addr[INET6_ADDRSTRLEN];
	int port;
	struct smtp_ehlo ehlo;
	int helo;
	struct tls_facts facts;
	const char *verify; /* a static string: "ok", "none" */
	double opened;	    /* clock_mono() when the TCP connect started */
};

struct upcache_entry;

struct upcache {
	struct ev_loop *loop;
	struct upcache_entry *head; /* most recently cached first */
	struct upcache_entry *quitting; /* left the cache, QUIT sent */
	struct upcache_entry *dead; /* closed, to be freed */
	int n;
};

void upcache_init(struct upcache *uc, struct ev_loop *loop);
/*
 * Keep *c (moved out; the caller's struct conn is left closed) under
 * key for `idle` seconds.  When max are cached the oldest goes.
 */
void upcache_put(struct upcache *uc, const char *key, struct conn *c,
    const struct upcache_info *info, double idle, int max);
/*
 * Move the most recently cached connection for key into *dst, owned by
 * cb/arg from now on; 1, or 0 when there is none.  A connection opened
 * more than reuse_time seconds ago is closed instead of returned.
 */
int upcache_take(struct upcache *uc, const char *key, double reuse_time,
    struct conn *dst, conn_cb *cb, void *arg, struct upcache_info *info);
/*
 * Take *c (moved out, as upcache_put), an idle connection in a clean
 * state, send QUIT and close it at the 221 or UPCACHE_QUIT_WAIT seconds
 * later; its owner goes on at once.
 */
void upcache_quit(struct upcache *uc, struct conn *c);
/* Every cached connection leaves with QUIT (policy changed, draining). */
void upcache_flush(struct upcache *uc);
/* At exit: flush, and close what still waits for a 221 at once. */
void upcache_free(struct upcache *uc);

#endif
