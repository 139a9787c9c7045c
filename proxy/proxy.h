/*
 * What all sessions share: the loop, the runtime, the retry records, the
 * connection cache.  Its own header so that the MX-facing client
 * (upstream.c) reaches them without seeing the session.
 */
#ifndef MXTLS_PROXY_H
#define MXTLS_PROXY_H

#include "runtime.h"
#include "upcache.h"

struct dsnq;
struct session;
struct sts;
struct state;
struct tlsrpt;

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

#endif
