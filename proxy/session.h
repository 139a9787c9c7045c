/*
 * The SMTP relay session: plaintext SMTP from the MTA (downstream),
 * verified STARTTLS to the recipient's MX (upstream).  session.c is the
 * MTA-facing side and the transaction, one state machine with its table
 * and enter function; upstream.c is the MX-facing client it drives.
 */
#ifndef MXTLS_SESSION_H
#define MXTLS_SESSION_H

#include "config.h"
#include "conn.h"
#include "proxy.h"

void proxy_sessions_init(struct proxy *px);
/* Take an accepted client socket; the session owns fd from here on. */
void session_accept(struct proxy *px, int fd);
/* Close every session at once with a 421 to its client (shutdown). */
void session_close_all(struct proxy *px, const char *reply);
/*
 * drain_timeout passed: as session_close_all, but a session waiting for
 * the reply to its final dot gets that reply first.  Returns how many
 * still wait.
 */
int session_drain_over(struct proxy *px, const char *reply);

#endif
