/*
 * The admin endpoint ([proxy] admin_listen): a tiny HTTP/1.x server on
 * the proxy's own event loop.
 *
 *   GET /metrics   200, the Prometheus text format (metrics_write)
 *   GET /healthz   200 "ok\n": the loop answers, so it is alive
 *   GET /readyz    200 "ready\n" when ready(arg), else 503 "not ready\n"
 *   HEAD           the same without the body
 *   other paths 404, other methods 405, malformed 400, a head over
 *   ADMIN_HEAD_MAX bytes 431.
 *
 * One request per connection (Connection: close), at most ADMIN_CONNS_MAX
 * connections at a time (more are closed at once), ADMIN_DEADLINE seconds
 * per connection from accept to close.  Everything is non-blocking: the
 * endpoint never holds up the mail path.
 */
#ifndef MXTLS_ADMIN_H
#define MXTLS_ADMIN_H

#include <stddef.h>
#include <sys/socket.h>

#include <ev.h>

#define ADMIN_HEAD_MAX 8192
#define ADMIN_CONNS_MAX 64
#define ADMIN_DEADLINE 5.0

struct admin;

/*
 * Listen on sa and serve on loop.  ready (NULL: always ready) answers
 * /readyz; it is called on the loop, with arg.  Returns NULL with a
 * message in err ("admin_listen 127.0.0.1:9925: Address already in use")
 * when the socket cannot be set up.
 */
struct admin *admin_start(struct ev_loop *loop, const struct sockaddr *sa,
    socklen_t salen, int (*ready)(void *), void *arg, char *err,
    size_t errlen);
/* Close the listener and every admin connection; frees a.  NULL is fine. */
void admin_stop(struct admin *a);

/* ---- the request parser, pure (for the tests) ---- */

enum admin_method { ADMIN_GET, ADMIN_HEAD, ADMIN_OTHER };

struct admin_request {
	enum admin_method method;
	const char *path; /* into the buffer parsed; query string cut off */
	size_t pathlen;
	size_t headlen; /* bytes of the head, blank line included */
};

/*
 * Parse a request head from buf[0..len).  Returns 0 while the head is
 * incomplete (read more), 200 with *req filled when it is complete and
 * well-formed, or the status to answer with: 400 malformed, 405 a method
 * other than GET and HEAD, 431 longer than ADMIN_HEAD_MAX, 505 an HTTP
 * version other than 1.x.  A malformed request line is reported as soon
 * as it is complete.  Lines end in CRLF or LF.
 */
int admin_parse_request(const char *buf, size_t len,
    struct admin_request *req);

#endif
