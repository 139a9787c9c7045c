/*
 * The failure table of docs/behaviour.md section 7 as pure functions of
 * (profile, what happened, the retry record, now).  No clock, no I/O: the
 * caller passes the time and stores the record.
 */
#ifndef MXTLS_FAILURE_H
#define MXTLS_FAILURE_H

#include <time.h>

#include "policy.h"

/* What an attempt at a host found out about TLS. */
enum failure_event {
	FAILURE_TLS_OK,	      /* handshake done, verification as required */
	FAILURE_NO_STARTTLS,  /* the server does not offer STARTTLS */
	FAILURE_CERTIFICATE,  /* verify = strict and the certificate failed */
	FAILURE_HANDSHAKE,    /* STARTTLS refused or unanswered, handshake
				 error, alert, timeout, injected plaintext */
};

enum retry_state {
	RETRY_NONE,
	RETRY_FAILED_ONCE, /* first TLS failure at first_failure */
	RETRY_BROKEN,	   /* the retry failed too: final outcome until */
};

#define RETRY_ERROR_MAX 256

/* Per upstream host (name and address). */
struct retry_record {
	enum retry_state state;
	time_t first_failure;	   /* t0 */
	time_t broken_until;	   /* RETRY_BROKEN only */
	enum failure_event event;  /* the last failure's kind */
	char error[RETRY_ERROR_MAX]; /* the last failure's reason */
};

enum failure_action {
	FAILURE_CONTACT,	/* before: go ahead, try TLS */
	FAILURE_DELIVER_TLS,	/* deliver over this TLS connection */
	FAILURE_DELIVER_CLEAR,	/* no STARTTLS offered: deliver on this
				   connection in the clear */
	FAILURE_FALLBACK_CLEAR, /* deliver in the clear on a fresh connection
				   without STARTTLS */
	FAILURE_DEFER,		/* 451 4.7.5 */
	FAILURE_FAIL,		/* 550 5.7.5 */
	FAILURE_FAIL_NO_TLS,	/* 550 5.7.10: STARTTLS never offered */
};

struct failure_timing {
	time_t retry_delay;  /* [policy] retry_delay, default 300 */
	time_t fallback_ttl; /* [policy] fallback_ttl, default 3600 */
};

/*
 * Before contacting a host: FAILURE_CONTACT, FAILURE_DEFER (inside the
 * retry delay: the host is not contacted), or while the host is marked
 * broken the final outcome at once (FAILURE_FAIL, FAILURE_FAIL_NO_TLS or
 * FAILURE_FALLBACK_CLEAR).  A record that has expired counts as none.
 */
enum failure_action failure_before(const struct policy_profile *p,
    const struct retry_record *r, time_t now, const struct failure_timing *t);

/*
 * After an attempt: the action, with *r updated (RETRY_NONE when the
 * record should be deleted).  `error` is the reason kept in the record.
 */
enum failure_action failure_after(const struct policy_profile *p,
    enum failure_event ev, const char *error, struct retry_record *r,
    time_t now, const struct failure_timing *t);

/*
 * How far in the future a record's times may lie and still count.  A record
 * made while the clock ran ahead (and corrected since) would otherwise keep
 * a host uncontacted, or a domain bounced, until that future time.
 */
#define FAILURE_CLOCK_SKEW 60

/*
 * True when a record no longer matters at `now` and can be dropped: it has
 * run its course, or it is dated after now + FAILURE_CLOCK_SKEW.
 */
int failure_expired(const struct retry_record *r, time_t now,
    const struct failure_timing *t);

const char *failure_action_name(enum failure_action a);
const char *failure_event_name(enum failure_event e);
const char *retry_state_name(enum retry_state s);

#endif
