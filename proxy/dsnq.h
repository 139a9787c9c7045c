/*
 * The notices mxtls sends itself ("relayed" DSNs, dsn.c): each is one
 * SMTP transaction with a null reverse-path to the MTA's own listener
 * ([proxy] dsn_submit), run on the event loop after the MTA has had its
 * reply to the message, never before.  A temporary failure (no
 * connection, 4xx, timeout) is tried again after 1, 5 and 15 minutes,
 * then given up; a 5xx is final.  Every outcome is logged and counted
 * (mxtls_dsn_total).  Notices are kept in memory only, bounded in number
 * and bytes: those refused by the bounds or still queued when mxtls
 * stops are logged as lost.
 */
#ifndef MXTLS_DSNQ_H
#define MXTLS_DSNQ_H

#include <ev.h>
#include <stddef.h>
#include <sys/socket.h>

struct dsnq;

struct dsnq *dsnq_new(struct ev_loop *loop);
/* Stop: what is still queued is logged and counted as lost. */
void dsnq_free(struct dsnq *q);
/*
 * Queue a notice for rcpt (the sender of the message it is about) to the
 * server at to; helo is our EHLO name; utf8: it needs SMTPUTF8.  data is
 * what goes after DATA (dot-stuffed, ending ".\r\n"), malloc'd: the queue
 * takes it.  sid and nrcpt are for the logs.
 */
void dsnq_submit(struct dsnq *q, const struct sockaddr *to, socklen_t tolen,
    const char *helo, const char *rcpt, int utf8, char *data, size_t len,
    unsigned long sid, int nrcpt);

#endif
