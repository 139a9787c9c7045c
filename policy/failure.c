#include <stdio.h>

#include "failure.h"

static const char *const failure_action_names[] = {
	[FAILURE_CONTACT] = "contact",
	[FAILURE_DELIVER_TLS] = "deliver-tls",
	[FAILURE_DELIVER_CLEAR] = "deliver-clear",
	[FAILURE_FALLBACK_CLEAR] = "fallback-clear",
	[FAILURE_DEFER] = "defer",
	[FAILURE_FAIL] = "fail",
	[FAILURE_FAIL_NO_TLS] = "fail-no-tls",
};

static const char *const failure_event_names[] = {
	[FAILURE_TLS_OK] = "tls-ok",
	[FAILURE_NO_STARTTLS] = "no-starttls",
	[FAILURE_CERTIFICATE] = "certificate",
	[FAILURE_HANDSHAKE] = "handshake",
};

static const char *const retry_state_names[] = {
	[RETRY_NONE] = "none",
	[RETRY_FAILED_ONCE] = "failed-once",
	[RETRY_BROKEN] = "broken",
};

const char *
failure_action_name(enum failure_action a)
{
	return failure_action_names[a];
}

const char *
failure_event_name(enum failure_event e)
{
	return failure_event_names[e];
}

const char *
retry_state_name(enum retry_state s)
{
	return retry_state_names[s];
}

/*
 * A first failure whose retry never came within fallback_ttl is stale:
 * the next failure starts the cycle again instead of being final.
 */
int
failure_expired(const struct retry_record *r, time_t now,
    const struct failure_timing *t)
{
	if (r->state != RETRY_NONE && (r->first_failure > now +
	    FAILURE_CLOCK_SKEW || (r->state == RETRY_BROKEN &&
	    r->broken_until > now + t->fallback_ttl + FAILURE_CLOCK_SKEW)))
		return 1;
	switch (r->state) {
	case RETRY_NONE:
		return 1;
	case RETRY_FAILED_ONCE:
		return now >= r->first_failure + t->retry_delay +
		    t->fallback_ttl;
	case RETRY_BROKEN:
		return now >= r->broken_until;
	}
	return 1;
}

/* The last row of the table: what a failed retry leads to. */
static enum failure_action
failure_final(const struct policy_profile *p, enum failure_event ev)
{
	if (p->tls == POLICY_TLS_MANDATORY)
		return ev == FAILURE_NO_STARTTLS ? FAILURE_FAIL_NO_TLS :
		    FAILURE_FAIL;
	/* Opportunistic: never past a certificate strict verification refused. */
	if (p->verify == POLICY_VERIFY_STRICT && ev == FAILURE_CERTIFICATE)
		return FAILURE_FAIL;
	return FAILURE_FALLBACK_CLEAR;
}

enum failure_action
failure_before(const struct policy_profile *p, const struct retry_record *r,
    time_t now, const struct failure_timing *t)
{
	if (p->tls == POLICY_TLS_OFF || r == NULL || failure_expired(r, now, t))
		return FAILURE_CONTACT;
	if (r->state == RETRY_FAILED_ONCE)
		return now < r->first_failure + t->retry_delay ? FAILURE_DEFER :
		    FAILURE_CONTACT;
	return failure_final(p, r->event);
}

static void
failure_note(struct retry_record *r, enum failure_event ev, const char *error)
{
	r->event = ev;
	snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
}

enum failure_action
failure_after(const struct policy_profile *p, enum failure_event ev,
    const char *error, struct retry_record *r, time_t now,
    const struct failure_timing *t)
{
	if (ev == FAILURE_TLS_OK) {
		r->state = RETRY_NONE;
		return FAILURE_DELIVER_TLS;
	}
	if (p->tls == POLICY_TLS_OFF ||
	    (ev == FAILURE_NO_STARTTLS && p->tls == POLICY_TLS_OPPORTUNISTIC))
		return FAILURE_DELIVER_CLEAR;

	/* A TLS failure (under mandatory, a missing STARTTLS is one too). */
	if (failure_expired(r, now, t)) {
		r->state = RETRY_FAILED_ONCE;
		r->first_failure = now;
		r->broken_until = 0;
		failure_note(r, ev, error);
		return FAILURE_DEFER;
	}
	failure_note(r, ev, error);
	if (r->state == RETRY_FAILED_ONCE) {
		/* Contacted early (another session raced us): still waiting. */
		if (now < r->first_failure + t->retry_delay)
			return FAILURE_DEFER;
		r->state = RETRY_BROKEN;
		r->broken_until = now + t->fallback_ttl;
	}
	return failure_final(p, ev);
}
