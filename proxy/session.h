/*
 * The SMTP relay session: plaintext SMTP from the MTA (downstream),
 * verified STARTTLS to the recipient's MX (upstream).  The whole state
 * machine is in session.c: an enum, a table of state names, and the
 * functions that enter states and handle replies and transport events.
 */
#ifndef MXTLS_SESSION_H
#define MXTLS_SESSION_H

#include "config.h"
#include "conn.h"
#include "runtime.h"
#include "upcache.h"

struct dns;
struct dsnq;
struct tlsrpt;
struct session;

/* What all sessions share: the loop, the runtime, the retry records. */
struct proxy {
	struct ev_loop *loop;
	struct runtime *rt; /* the current config: new sessions take it */
	struct state *state; /* retry records */
	struct sts *sts;     /* MTA-STS policies; NULL when off */
	struct dsnq *dsnq;   /* "relayed" notices on their way to the MTA */
	struct tlsrpt *tlsrpt; /* counts for TLS reports; NULL when off */
	unsigned long next_sid;
	int nsessions;
	struct session *live;  /* all open sessions */
	struct session *dead;  /* closed, freed from the reaper */
	ev_prepare reaper;
	struct upcache cache; /* idle upstream connections */
	int draining;	      /* shutting down: no new transaction, no cache */
	int drain_over;	      /* drain_timeout passed: close when answered */
	void (*on_session_end)(struct proxy *px); /* optional (drain) */
};

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
