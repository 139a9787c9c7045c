/*
 * policy/failure.c: the failure table of docs/behaviour.md section 7 as data.
 *
 * One row per cell: the profile column, the record before the attempt,
 * the time, what is called (failure_before, or failure_after with what the
 * attempt found out), the action wanted and the record wanted afterwards.
 * A group of rows is one RUN line; every row prints its name, and a
 * mismatch names the row.
 *
 * Columns: opportunistic + verify none, opportunistic + verify strict,
 * mandatory + strict, mandatory + none, and tls = off.
 */
#include <stdio.h>
#include <string.h>

#include "failure.h"
#include "policy.h"
#include "t.h"

#define T0 ((time_t)1795428000) /* 2026-11-23T10:00:00Z */
#define RD 300			/* retry_delay, the default */
#define TTL 3600		/* fallback_ttl, the default */
#define RT (T0 + RD)		/* the retry is due */
#define BU (RT + TTL)		/* broken_until after a failed retry at RT */

enum col { ON, OS, MS, MN, OFF, NCOL };

static const char *const col_names[NCOL] = {
	[ON] = "opportunistic+none",
	[OS] = "opportunistic+strict",
	[MS] = "mandatory+strict",
	[MN] = "mandatory+none",
	[OFF] = "off",
};

static const struct policy_profile profiles[NCOL] = {
	[ON] = { .name = "opp-none", .tls = POLICY_TLS_OPPORTUNISTIC,
	    .verify = POLICY_VERIFY_NONE },
	[OS] = { .name = "opp-strict", .tls = POLICY_TLS_OPPORTUNISTIC,
	    .verify = POLICY_VERIFY_STRICT },
	[MS] = { .name = "mand-strict", .tls = POLICY_TLS_MANDATORY,
	    .verify = POLICY_VERIFY_STRICT },
	[MN] = { .name = "mand-none", .tls = POLICY_TLS_MANDATORY,
	    .verify = POLICY_VERIFY_NONE },
	[OFF] = { .name = "off", .tls = POLICY_TLS_OFF,
	    .verify = POLICY_VERIFY_STRICT },
};

static const struct failure_timing dflt = { RD, TTL };

enum call { BEFORE, AFTER };

struct row {
	const char *name;
	enum col col;
	int has_rec;		  /* 0: no record (NULL / zeroed) */
	struct retry_record in;	  /* the record before the call */
	time_t now;
	enum call call;
	enum failure_event ev;	  /* AFTER: what the attempt found */
	const char *error;	  /* AFTER: its reason */
	enum failure_action want;
	struct retry_record out;  /* AFTER: the record wanted */
};

/* Records.  A RETRY_NONE result means "delete": its other fields are not
 * looked at. */
#define ONCE(t0, e, s)                                                     \
	{ .state = RETRY_FAILED_ONCE, .first_failure = (t0),               \
		.broken_until = 0, .event = (e), .error = s }
#define BROKEN(t0, u, e, s)                                                \
	{ .state = RETRY_BROKEN, .first_failure = (t0),                    \
		.broken_until = (u), .event = (e), .error = s }
#define CLEARED { .state = RETRY_NONE }

/* failure_before without / with a record (which it must not change). */
#define B0(n, c, now_, w) { n, c, 0, { 0 }, now_, BEFORE, 0, NULL, w, { 0 } }
#define B(n, c, in_, now_, w) { n, c, 1, in_, now_, BEFORE, 0, NULL, w, in_ }
/* failure_after without / with a record. */
#define A0(n, c, now_, e, er, w, out_)                                     \
	{ n, c, 0, { 0 }, now_, AFTER, e, er, w, out_ }
#define A(n, c, in_, now_, e, er, w, out_)                                 \
	{ n, c, 1, in_, now_, AFTER, e, er, w, out_ }

#define E_HS "tlsv1 alert protocol version"
#define E_CERT "certificate has expired"
#define E_NOTLS "STARTTLS not offered"
#define HS FAILURE_HANDSHAKE
#define CERT FAILURE_CERTIFICATE
#define NOTLS FAILURE_NO_STARTTLS
#define TLSOK FAILURE_TLS_OK

#define NROWS(a) (sizeof(a) / sizeof((a)[0]))

static int nrows;

static void
row_fail(const struct row *r, const char *what, const char *got,
    const char *want)
{
	fprintf(stderr, "row [%s] %s: %s is %s, want %s\n", col_names[r->col],
	    r->name, what, got, want);
	t_cur = 1;
}

static void
row_fail_int(const struct row *r, const char *what, long long got,
    long long want)
{
	char g[32], w[32];

	snprintf(g, sizeof(g), "%lld", got);
	snprintf(w, sizeof(w), "%lld", want);
	row_fail(r, what, g, w);
}

static void
check_record(const struct row *r, const struct retry_record *got,
    const struct retry_record *want)
{
	if (got->state != want->state) {
		row_fail(r, "record state", retry_state_name(got->state),
		    retry_state_name(want->state));
		return;
	}
	if (want->state == RETRY_NONE)
		return; /* deleted: the rest does not matter */
	if (got->first_failure != want->first_failure)
		row_fail_int(r, "first_failure", got->first_failure - T0,
		    want->first_failure - T0);
	if (got->broken_until != want->broken_until)
		row_fail_int(r, "broken_until (from T0)",
		    got->broken_until - T0, want->broken_until - T0);
	if (got->event != want->event)
		row_fail(r, "event", failure_event_name(got->event),
		    failure_event_name(want->event));
	if (strcmp(got->error, want->error) != 0)
		row_fail(r, "error", got->error, want->error);
}

static void
run_rows(const struct row *rows, size_t n, const struct failure_timing *t)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		const struct policy_profile *p = &profiles[r->col];
		struct retry_record rec;
		enum failure_action a;

		if (r->has_rec)
			rec = r->in;
		else
			memset(&rec, 0, sizeof(rec));
		if (r->call == BEFORE)
			a = failure_before(p, r->has_rec ? &rec : NULL, r->now,
			    t);
		else
			a = failure_after(p, r->ev, r->error, &rec, r->now, t);
		printf("     [%s] %s -> %s, record %s\n", col_names[r->col],
		    r->name, failure_action_name(a),
		    retry_state_name(rec.state));
		nrows++;
		if (a != r->want)
			row_fail(r, "action", failure_action_name(a),
			    failure_action_name(r->want));
		check_record(r, &rec, r->call == BEFORE ? &r->in : &r->out);
	}
}

/* Row 1: the server does not offer STARTTLS (no record yet). */
static void
test_no_starttls(void)
{
	static const struct row rows[] = {
		B0("no record: contact", ON, T0, FAILURE_CONTACT),
		B0("no record: contact", OS, T0, FAILURE_CONTACT),
		B0("no record: contact", MS, T0, FAILURE_CONTACT),
		B0("no record: contact", MN, T0, FAILURE_CONTACT),
		A0("no STARTTLS: deliver in the clear, no record", ON, T0,
		    NOTLS, E_NOTLS, FAILURE_DELIVER_CLEAR, CLEARED),
		A0("no STARTTLS: deliver in the clear, no record", OS, T0,
		    NOTLS, E_NOTLS, FAILURE_DELIVER_CLEAR, CLEARED),
		A0("no STARTTLS: like a TLS failure, 451, record t0", MS, T0,
		    NOTLS, E_NOTLS, FAILURE_DEFER,
		    ONCE(T0, NOTLS, E_NOTLS)),
		A0("no STARTTLS: like a TLS failure, 451, record t0", MN, T0,
		    NOTLS, E_NOTLS, FAILURE_DEFER,
		    ONCE(T0, NOTLS, E_NOTLS)),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* Row 2: the first TLS failure for this host: 451 4.7.5, record t0. */
static void
test_first_failure(void)
{
	static const struct row rows[] = {
		A0("first handshake failure: 451, record t0", ON, T0, HS,
		    E_HS, FAILURE_DEFER, ONCE(T0, HS, E_HS)),
		A0("first handshake failure: 451, record t0", OS, T0, HS,
		    E_HS, FAILURE_DEFER, ONCE(T0, HS, E_HS)),
		A0("first certificate failure: 451, record t0", OS, T0, CERT,
		    E_CERT, FAILURE_DEFER, ONCE(T0, CERT, E_CERT)),
		A0("first handshake failure: 451, record t0", MS, T0, HS,
		    E_HS, FAILURE_DEFER, ONCE(T0, HS, E_HS)),
		A0("first certificate failure: 451, record t0", MS, T0, CERT,
		    E_CERT, FAILURE_DEFER, ONCE(T0, CERT, E_CERT)),
		A0("first handshake failure: 451, record t0", MN, T0, HS,
		    E_HS, FAILURE_DEFER, ONCE(T0, HS, E_HS)),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* Row 3: another attempt before t0 + retry_delay: 451 at once, host not
 * contacted. */
static void
test_inside_retry_delay(void)
{
	static const struct row rows[] = {
		B("same second as t0: 451, not contacted", ON,
		    ONCE(T0, HS, E_HS), T0, FAILURE_DEFER),
		B("t0+1: 451, not contacted", ON, ONCE(T0, HS, E_HS), T0 + 1,
		    FAILURE_DEFER),
		B("one second before t0+retry_delay: 451", ON,
		    ONCE(T0, HS, E_HS), RT - 1, FAILURE_DEFER),
		B("same second as t0: 451, not contacted", OS,
		    ONCE(T0, CERT, E_CERT), T0, FAILURE_DEFER),
		B("t0+1: 451, not contacted", OS, ONCE(T0, CERT, E_CERT),
		    T0 + 1, FAILURE_DEFER),
		B("one second before t0+retry_delay: 451", OS,
		    ONCE(T0, CERT, E_CERT), RT - 1, FAILURE_DEFER),
		B("same second as t0: 451, not contacted", MS,
		    ONCE(T0, NOTLS, E_NOTLS), T0, FAILURE_DEFER),
		B("t0+1: 451, not contacted", MS, ONCE(T0, NOTLS, E_NOTLS),
		    T0 + 1, FAILURE_DEFER),
		B("one second before t0+retry_delay: 451", MS,
		    ONCE(T0, CERT, E_CERT), RT - 1, FAILURE_DEFER),
		B("same second as t0: 451, not contacted", MN,
		    ONCE(T0, HS, E_HS), T0, FAILURE_DEFER),
		B("t0+1: 451, not contacted", MN, ONCE(T0, HS, E_HS), T0 + 1,
		    FAILURE_DEFER),
		B("one second before t0+retry_delay: 451", MN,
		    ONCE(T0, NOTLS, E_NOTLS), RT - 1, FAILURE_DEFER),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* Row 4: the first attempt at or after t0 + retry_delay, TLS works:
 * deliver over TLS, clear the record. */
static void
test_retry_tls_works(void)
{
	static const struct row rows[] = {
		B("exactly at t0+retry_delay: contact (the retry)", ON,
		    ONCE(T0, HS, E_HS), RT, FAILURE_CONTACT),
		B("exactly at t0+retry_delay: contact (the retry)", OS,
		    ONCE(T0, CERT, E_CERT), RT, FAILURE_CONTACT),
		B("exactly at t0+retry_delay: contact (the retry)", MS,
		    ONCE(T0, HS, E_HS), RT, FAILURE_CONTACT),
		B("exactly at t0+retry_delay: contact (the retry)", MN,
		    ONCE(T0, NOTLS, E_NOTLS), RT, FAILURE_CONTACT),
		B("t0+retry_delay+1: contact", ON, ONCE(T0, HS, E_HS), RT + 1,
		    FAILURE_CONTACT),
		B("t0+retry_delay+1: contact", MS, ONCE(T0, CERT, E_CERT),
		    RT + 1, FAILURE_CONTACT),
		A("retry, TLS works: deliver over TLS, record cleared", ON,
		    ONCE(T0, HS, E_HS), RT, TLSOK, NULL, FAILURE_DELIVER_TLS,
		    CLEARED),
		A("retry, TLS works: deliver over TLS, record cleared", OS,
		    ONCE(T0, CERT, E_CERT), RT, TLSOK, NULL,
		    FAILURE_DELIVER_TLS, CLEARED),
		A("retry, TLS works: deliver over TLS, record cleared", MS,
		    ONCE(T0, HS, E_HS), RT, TLSOK, NULL, FAILURE_DELIVER_TLS,
		    CLEARED),
		A("retry, TLS works: deliver over TLS, record cleared", MN,
		    ONCE(T0, NOTLS, E_NOTLS), RT, TLSOK, "", FAILURE_DELIVER_TLS,
		    CLEARED),
		A("retry later (t0+retry_delay+1000), TLS works: cleared", MS,
		    ONCE(T0, HS, E_HS), RT + 1000, TLSOK, NULL,
		    FAILURE_DELIVER_TLS, CLEARED),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* Row 5: that attempt fails too.  The host is then marked broken for
 * fallback_ttl counted from the failed retry. */
static void
test_retry_fails(void)
{
	static const struct row rows[] = {
		A("retry fails (handshake): in the clear on a fresh connection",
		    ON, ONCE(T0, HS, "first"), RT, HS, E_HS,
		    FAILURE_FALLBACK_CLEAR, BROKEN(T0, BU, HS, E_HS)),
		A("retry finds no STARTTLS: in the clear on this connection",
		    ON, ONCE(T0, HS, "first"), RT, NOTLS, E_NOTLS,
		    FAILURE_DELIVER_CLEAR, ONCE(T0, HS, "first")),
		A("retry fails (certificate): 550 5.7.5", OS,
		    ONCE(T0, CERT, "first"), RT, CERT, E_CERT, FAILURE_FAIL,
		    BROKEN(T0, BU, CERT, E_CERT)),
		A("retry fails (handshake): in the clear on a fresh connection",
		    OS, ONCE(T0, CERT, "first"), RT, HS, E_HS,
		    FAILURE_FALLBACK_CLEAR, BROKEN(T0, BU, HS, E_HS)),
		A("retry finds no STARTTLS: in the clear on this connection",
		    OS, ONCE(T0, CERT, "first"), RT, NOTLS, E_NOTLS,
		    FAILURE_DELIVER_CLEAR, ONCE(T0, CERT, "first")),
		A("retry fails (certificate): 550 5.7.5", MS,
		    ONCE(T0, HS, "first"), RT, CERT, E_CERT, FAILURE_FAIL,
		    BROKEN(T0, BU, CERT, E_CERT)),
		A("retry fails (handshake): 550 5.7.5", MS,
		    ONCE(T0, CERT, "first"), RT, HS, E_HS, FAILURE_FAIL,
		    BROKEN(T0, BU, HS, E_HS)),
		A("retry finds no STARTTLS: 550 5.7.10", MS,
		    ONCE(T0, HS, "first"), RT, NOTLS, E_NOTLS,
		    FAILURE_FAIL_NO_TLS, BROKEN(T0, BU, NOTLS, E_NOTLS)),
		A("retry fails (handshake): 550 5.7.5", MN,
		    ONCE(T0, HS, "first"), RT, HS, E_HS, FAILURE_FAIL,
		    BROKEN(T0, BU, HS, E_HS)),
		A("retry finds no STARTTLS: 550 5.7.10", MN,
		    ONCE(T0, NOTLS, "first"), RT, NOTLS, E_NOTLS,
		    FAILURE_FAIL_NO_TLS, BROKEN(T0, BU, NOTLS, E_NOTLS)),
		/* fallback_ttl runs from the failed retry, not from t0 */
		A("retry 1000 s late fails: broken for fallback_ttl from then",
		    ON, ONCE(T0, HS, "first"), RT + 1000, HS, E_HS,
		    FAILURE_FALLBACK_CLEAR,
		    BROKEN(T0, BU + 1000, HS, E_HS)),
		A("retry 1000 s late fails: broken for fallback_ttl from then",
		    MS, ONCE(T0, HS, "first"), RT + 1000, CERT, E_CERT,
		    FAILURE_FAIL, BROKEN(T0, BU + 1000, CERT, E_CERT)),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* After a failed retry, inside fallback_ttl: the final outcome at once,
 * without contact; decided by the last failure's kind. */
static void
test_broken(void)
{
	static const struct row rows[] = {
		B("broken, first second: fallback in the clear, no contact",
		    ON, BROKEN(T0, BU, HS, E_HS), RT, FAILURE_FALLBACK_CLEAR),
		B("broken, one second before broken_until: fallback", ON,
		    BROKEN(T0, BU, HS, E_HS), BU - 1, FAILURE_FALLBACK_CLEAR),
		B("broken by a certificate: 550 5.7.5, no contact", OS,
		    BROKEN(T0, BU, CERT, E_CERT), RT + 1, FAILURE_FAIL),
		B("broken by a certificate, last second: 550 5.7.5", OS,
		    BROKEN(T0, BU, CERT, E_CERT), BU - 1, FAILURE_FAIL),
		B("broken by a handshake: fallback in the clear", OS,
		    BROKEN(T0, BU, HS, E_HS), RT + 1, FAILURE_FALLBACK_CLEAR),
		B("broken by a certificate: 550 5.7.5", MS,
		    BROKEN(T0, BU, CERT, E_CERT), RT + 1, FAILURE_FAIL),
		B("broken by a handshake: 550 5.7.5", MS,
		    BROKEN(T0, BU, HS, E_HS), RT + 1, FAILURE_FAIL),
		B("broken by no STARTTLS: 550 5.7.10", MS,
		    BROKEN(T0, BU, NOTLS, E_NOTLS), BU - 1,
		    FAILURE_FAIL_NO_TLS),
		B("broken by a handshake: 550 5.7.5", MN,
		    BROKEN(T0, BU, HS, E_HS), BU - 1, FAILURE_FAIL),
		B("broken by no STARTTLS: 550 5.7.10", MN,
		    BROKEN(T0, BU, NOTLS, E_NOTLS), RT + 1,
		    FAILURE_FAIL_NO_TLS),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* After fallback_ttl the cycle starts again: contact; a failure is a
 * first failure again (451, new t0). */
static void
test_after_fallback_ttl(void)
{
	static const struct row rows[] = {
		B("exactly at broken_until: contact", ON,
		    BROKEN(T0, BU, HS, E_HS), BU, FAILURE_CONTACT),
		B("exactly at broken_until: contact", OS,
		    BROKEN(T0, BU, CERT, E_CERT), BU, FAILURE_CONTACT),
		B("exactly at broken_until: contact", MS,
		    BROKEN(T0, BU, CERT, E_CERT), BU, FAILURE_CONTACT),
		B("exactly at broken_until: contact", MN,
		    BROKEN(T0, BU, NOTLS, E_NOTLS), BU, FAILURE_CONTACT),
		B("broken_until+1: contact", MS, BROKEN(T0, BU, HS, E_HS),
		    BU + 1, FAILURE_CONTACT),
		A("fails again: 451, new t0", ON, BROKEN(T0, BU, HS, "old"),
		    BU, HS, E_HS, FAILURE_DEFER, ONCE(BU, HS, E_HS)),
		A("fails again: 451, new t0", OS, BROKEN(T0, BU, CERT, "old"),
		    BU, CERT, E_CERT, FAILURE_DEFER, ONCE(BU, CERT, E_CERT)),
		A("fails again: 451, new t0", MS, BROKEN(T0, BU, CERT, "old"),
		    BU + 1, HS, E_HS, FAILURE_DEFER, ONCE(BU + 1, HS, E_HS)),
		A("no STARTTLS again: 451, new t0", MN,
		    BROKEN(T0, BU, NOTLS, "old"), BU, NOTLS, E_NOTLS,
		    FAILURE_DEFER, ONCE(BU, NOTLS, E_NOTLS)),
		A("TLS works now: deliver over TLS, cleared", OS,
		    BROKEN(T0, BU, CERT, "old"), BU, TLSOK, NULL,
		    FAILURE_DELIVER_TLS, CLEARED),
		/* opportunistic, STARTTLS gone: in the clear, the stale
		 * record is left for state_expire() */
		A("no STARTTLS now: in the clear, stale record untouched", ON,
		    BROKEN(T0, BU, HS, "old"), BU, NOTLS, E_NOTLS,
		    FAILURE_DELIVER_CLEAR, BROKEN(T0, BU, HS, "old")),
		/* the new cycle waits retry_delay again */
		B("new cycle: one second before the retry: 451", MS,
		    ONCE(BU, HS, E_HS), BU + RD - 1, FAILURE_DEFER),
		B("new cycle: at the retry: contact", MS, ONCE(BU, HS, E_HS),
		    BU + RD, FAILURE_CONTACT),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* A first failure whose retry never came within retry_delay +
 * fallback_ttl counts as no record. */
static void
test_stale_failed_once(void)
{
	static const struct row rows[] = {
		B("failed-once, last second before stale: contact", MS,
		    ONCE(T0, HS, E_HS), RT + TTL - 1, FAILURE_CONTACT),
		B("failed-once, stale: contact", MS, ONCE(T0, HS, E_HS),
		    RT + TTL, FAILURE_CONTACT),
		A("failed-once, last second before stale: this is the retry",
		    MS, ONCE(T0, HS, "first"), RT + TTL - 1, HS, E_HS,
		    FAILURE_FAIL, BROKEN(T0, RT + TTL - 1 + TTL, HS, E_HS)),
		A("stale failed-once + failure: a first failure, new t0", MS,
		    ONCE(T0, HS, "first"), RT + TTL, HS, E_HS, FAILURE_DEFER,
		    ONCE(RT + TTL, HS, E_HS)),
		A("stale failed-once + failure: a first failure, new t0", ON,
		    ONCE(T0, HS, "first"), RT + TTL, HS, E_HS, FAILURE_DEFER,
		    ONCE(RT + TTL, HS, E_HS)),
		A("ten days stale + certificate: a first failure, new t0", OS,
		    ONCE(T0, HS, "first"), T0 + 864000, CERT, E_CERT,
		    FAILURE_DEFER, ONCE(T0 + 864000, CERT, E_CERT)),
		A("stale failed-once + TLS works: cleared", MN,
		    ONCE(T0, HS, "first"), RT + TTL, TLSOK, NULL,
		    FAILURE_DELIVER_TLS, CLEARED),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* tls = off: always contact, always in the clear, never a record. */
static void
test_tls_off(void)
{
	static const struct row rows[] = {
		B0("no record: contact", OFF, T0, FAILURE_CONTACT),
		B("failed-once record ignored: contact", OFF,
		    ONCE(T0, HS, E_HS), T0 + 1, FAILURE_CONTACT),
		B("broken record ignored: contact", OFF,
		    BROKEN(T0, BU, CERT, E_CERT), RT + 1, FAILURE_CONTACT),
		A0("no STARTTLS: in the clear, no record", OFF, T0, NOTLS,
		    E_NOTLS, FAILURE_DELIVER_CLEAR, CLEARED),
		A0("a handshake failure reported anyway: in the clear, no record",
		    OFF, T0, HS, E_HS, FAILURE_DELIVER_CLEAR, CLEARED),
		A0("a certificate failure reported anyway: in the clear",
		    OFF, T0, CERT, E_CERT, FAILURE_DELIVER_CLEAR, CLEARED),
		A("an old record is left alone", OFF, ONCE(T0, HS, E_HS),
		    RT, HS, "new", FAILURE_DELIVER_CLEAR, ONCE(T0, HS, E_HS)),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* A TLS success clears any record, also one that is not due. */
static void
test_tls_ok_clears(void)
{
	static const struct row rows[] = {
		A0("no record, TLS works: deliver over TLS, no record", ON, T0,
		    TLSOK, NULL, FAILURE_DELIVER_TLS, CLEARED),
		A0("no record, TLS works: deliver over TLS, no record", MS, T0,
		    TLSOK, NULL, FAILURE_DELIVER_TLS, CLEARED),
		A("broken record, TLS works: cleared", ON,
		    BROKEN(T0, BU, HS, E_HS), RT + 10, TLSOK, NULL,
		    FAILURE_DELIVER_TLS, CLEARED),
		A("broken record, TLS works: cleared", OS,
		    BROKEN(T0, BU, CERT, E_CERT), RT + 10, TLSOK, NULL,
		    FAILURE_DELIVER_TLS, CLEARED),
		A("broken record, TLS works: cleared", MS,
		    BROKEN(T0, BU, CERT, E_CERT), BU - 1, TLSOK, NULL,
		    FAILURE_DELIVER_TLS, CLEARED),
		A("broken record, TLS works: cleared", MN,
		    BROKEN(T0, BU, NOTLS, E_NOTLS), RT + 10, TLSOK, NULL,
		    FAILURE_DELIVER_TLS, CLEARED),
		A("failed-once, contacted early, TLS works: cleared", MS,
		    ONCE(T0, HS, E_HS), T0 + 10, TLSOK, NULL,
		    FAILURE_DELIVER_TLS, CLEARED),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* Another session contacted the host although the record said not to
 * (it read the record before it was written): no early escalation. */
static void
test_races(void)
{
	static const struct row rows[] = {
		A("failed-once, contacted early, fails: 451, t0 kept", ON,
		    ONCE(T0, HS, "first"), T0 + 10, HS, "second",
		    FAILURE_DEFER, ONCE(T0, HS, "second")),
		A("failed-once, contacted early, fails: 451, t0 kept", OS,
		    ONCE(T0, HS, "first"), RT - 1, CERT, E_CERT, FAILURE_DEFER,
		    ONCE(T0, CERT, E_CERT)),
		A("failed-once, contacted early, fails: 451, t0 kept", MS,
		    ONCE(T0, CERT, "first"), T0, NOTLS, E_NOTLS,
		    FAILURE_DEFER, ONCE(T0, NOTLS, E_NOTLS)),
		A("failed-once, contacted early, fails: 451, t0 kept", MN,
		    ONCE(T0, HS, "first"), RT - 1, HS, "second",
		    FAILURE_DEFER, ONCE(T0, HS, "second")),
		A("broken, contacted, fails: final, broken_until kept", OS,
		    BROKEN(T0, BU, CERT, E_CERT), RT + 10, HS, E_HS,
		    FAILURE_FALLBACK_CLEAR, BROKEN(T0, BU, HS, E_HS)),
		A("broken, contacted, fails: final, broken_until kept", MS,
		    BROKEN(T0, BU, HS, E_HS), RT + 10, NOTLS, E_NOTLS,
		    FAILURE_FAIL_NO_TLS, BROKEN(T0, BU, NOTLS, E_NOTLS)),
	};

	run_rows(rows, NROWS(rows), &dflt);
}

/* The timing comes from the caller (the config), not from constants. */
static void
test_timing_parameters(void)
{
	static const struct failure_timing t = { 5, 20 };
	static const struct failure_timing zero = { 0, 20 };
	static const struct row rows[] = {
		A0("retry_delay 5: first failure, 451", MS, T0, HS, E_HS,
		    FAILURE_DEFER, ONCE(T0, HS, E_HS)),
		B("retry_delay 5: t0+4: 451", MS, ONCE(T0, HS, E_HS), T0 + 4,
		    FAILURE_DEFER),
		B("retry_delay 5: t0+5: contact", MS, ONCE(T0, HS, E_HS),
		    T0 + 5, FAILURE_CONTACT),
		A("retry_delay 5: retry fails: broken for 20 s", MS,
		    ONCE(T0, HS, "first"), T0 + 5, HS, E_HS, FAILURE_FAIL,
		    BROKEN(T0, T0 + 25, HS, E_HS)),
		B("fallback_ttl 20: last second: 550", MS,
		    BROKEN(T0, T0 + 25, HS, E_HS), T0 + 24, FAILURE_FAIL),
		B("fallback_ttl 20: at broken_until: contact", MS,
		    BROKEN(T0, T0 + 25, HS, E_HS), T0 + 25, FAILURE_CONTACT),
		A("failed-once stale at t0+25: new t0", MS,
		    ONCE(T0, HS, "first"), T0 + 25, HS, E_HS, FAILURE_DEFER,
		    ONCE(T0 + 25, HS, E_HS)),
	};
	static const struct row zero_rows[] = {
		A0("retry_delay 0: first failure still defers", MS, T0, HS,
		    E_HS, FAILURE_DEFER, ONCE(T0, HS, E_HS)),
		B("retry_delay 0: the same second is the retry", MS,
		    ONCE(T0, HS, E_HS), T0, FAILURE_CONTACT),
		A("retry_delay 0: the same second fails: final", MS,
		    ONCE(T0, HS, E_HS), T0, HS, E_HS, FAILURE_FAIL,
		    BROKEN(T0, T0 + 20, HS, E_HS)),
	};

	run_rows(rows, NROWS(rows), &t);
	run_rows(zero_rows, NROWS(zero_rows), &zero);
}

static void
test_expired(void)
{
	struct retry_record none = CLEARED;
	struct retry_record once = ONCE(T0, HS, E_HS);
	struct retry_record broken = BROKEN(T0, BU, HS, E_HS);

	CHECK_INT(failure_expired(&none, T0, &dflt), 1);
	CHECK_INT(failure_expired(&once, T0, &dflt), 0);
	CHECK_INT(failure_expired(&once, RT, &dflt), 0);
	CHECK_INT(failure_expired(&once, RT + TTL - 1, &dflt), 0);
	CHECK_INT(failure_expired(&once, RT + TTL, &dflt), 1);
	CHECK_INT(failure_expired(&broken, RT, &dflt), 0);
	CHECK_INT(failure_expired(&broken, BU - 1, &dflt), 0);
	CHECK_INT(failure_expired(&broken, BU, &dflt), 1);
	CHECK_INT(failure_expired(&broken, BU + 86400, &dflt), 1);
}

/*
 * A record dated after now (beyond FAILURE_CLOCK_SKEW) was made while the
 * clock ran ahead: it counts as none, so a fixed server is contacted and a
 * mandatory domain is not bounced until a date in the future.
 */
static void
test_future_dated(void)
{
	static const struct row rows[] = {
		B("failed-once a year ahead: contact", MS,
		    ONCE(T0 + 31536000, HS, E_HS), T0, FAILURE_CONTACT),
		B("broken a year ahead: contact, not 550", MS,
		    BROKEN(T0 + 31536000, T0 + 31536000 + TTL, CERT, E_CERT),
		    T0, FAILURE_CONTACT),
		B("broken, until too far ahead: contact, not 550", MS,
		    BROKEN(T0, T0 + 31536000, CERT, E_CERT), T0,
		    FAILURE_CONTACT),
		B("failed-once within the skew: 451", MS,
		    ONCE(T0 + FAILURE_CLOCK_SKEW, HS, E_HS), T0,
		    FAILURE_DEFER),
		A("failed-once a year ahead + failure: a first failure", MS,
		    ONCE(T0 + 31536000, HS, "future"), T0, HS, E_HS,
		    FAILURE_DEFER, ONCE(T0, HS, E_HS)),
	};
	struct retry_record future = ONCE(T0 + FAILURE_CLOCK_SKEW + 1, HS,
	    E_HS);

	run_rows(rows, NROWS(rows), &dflt);
	CHECK_INT(failure_expired(&future, T0, &dflt), 1);
}

/* The reason is kept, cut to the record's size; NULL is "". */
static void
test_error_text(void)
{
	struct retry_record r;
	char long_err[1000];
	const char *odd = "a \"quoted\" reason\twith\ttabs, 100% and \xc3\xa9";

	memset(long_err, 'x', sizeof(long_err) - 1);
	long_err[sizeof(long_err) - 1] = '\0';
	memset(&r, 0, sizeof(r));
	CHECK_INT(failure_after(&profiles[MS], HS, long_err, &r, T0, &dflt),
	    FAILURE_DEFER);
	CHECK_INT(strlen(r.error), RETRY_ERROR_MAX - 1);
	CHECK(strncmp(r.error, long_err, RETRY_ERROR_MAX - 1) == 0);

	memset(&r, 0, sizeof(r));
	CHECK_INT(failure_after(&profiles[MS], HS, NULL, &r, T0, &dflt),
	    FAILURE_DEFER);
	CHECK_STR(r.error, "");

	CHECK_INT(failure_after(&profiles[MS], CERT, odd, &r, RT, &dflt),
	    FAILURE_FAIL);
	CHECK_STR(r.error, odd);
	CHECK_INT(r.state, RETRY_BROKEN);
}

static void
test_names(void)
{
	CHECK_STR(failure_action_name(FAILURE_CONTACT), "contact");
	CHECK_STR(failure_action_name(FAILURE_DELIVER_TLS), "deliver-tls");
	CHECK_STR(failure_action_name(FAILURE_DELIVER_CLEAR), "deliver-clear");
	CHECK_STR(failure_action_name(FAILURE_FALLBACK_CLEAR),
	    "fallback-clear");
	CHECK_STR(failure_action_name(FAILURE_DEFER), "defer");
	CHECK_STR(failure_action_name(FAILURE_FAIL), "fail");
	CHECK_STR(failure_action_name(FAILURE_FAIL_NO_TLS), "fail-no-tls");
	CHECK_STR(failure_event_name(FAILURE_TLS_OK), "tls-ok");
	CHECK_STR(failure_event_name(FAILURE_NO_STARTTLS), "no-starttls");
	CHECK_STR(failure_event_name(FAILURE_CERTIFICATE), "certificate");
	CHECK_STR(failure_event_name(FAILURE_HANDSHAKE), "handshake");
	CHECK_STR(retry_state_name(RETRY_NONE), "none");
	CHECK_STR(retry_state_name(RETRY_FAILED_ONCE), "failed-once");
	CHECK_STR(retry_state_name(RETRY_BROKEN), "broken");
}

/*
 * The whole cycle as an MTA sees it: it retries every 60 s, the host's
 * TLS is broken until T0 + 7200 and works after.  The host is contacted
 * at T0 (451), T0+300 (the retry fails: final outcome), T0+3900 (broken
 * for 3600 s is over: 451, new t0), T0+4200 (final again, broken until
 * T0+7800), T0+7800 (TLS works: cleared), and at every attempt after.
 */
static void
walk(enum col c, enum failure_event ev, enum failure_action final)
{
	static const time_t contacts[] = { T0, T0 + 300, T0 + 3900,
		T0 + 4200, T0 + 7800 };
	const struct policy_profile *p = &profiles[c];
	struct retry_record rec;
	int have = 0, ncontact = 0, bad = 0;
	time_t now;

	memset(&rec, 0, sizeof(rec));
	for (now = T0; now <= T0 + 9000; now += 60) {
		enum failure_action a, want;
		int due = ncontact < 5 && now == contacts[ncontact];

		a = failure_before(p, have ? &rec : NULL, now, &dflt);
		if (a == FAILURE_CONTACT) {
			if (!due && now < T0 + 7800) {
				fprintf(stderr, "walk [%s] t0+%lld: contacted\n",
				    col_names[c], (long long)(now - T0));
				bad = 1;
			}
			ncontact++;
			a = failure_after(p, now < T0 + 7200 ? ev : TLSOK,
			    "walk", &rec, now, &dflt);
			have = rec.state != RETRY_NONE;
		} else if (due) {
			fprintf(stderr, "walk [%s] t0+%lld: not contacted\n",
			    col_names[c], (long long)(now - T0));
			bad = 1;
		}
		if (now == T0 || now == T0 + 3900 ||
		    (now > T0 && now < T0 + 300) ||
		    (now > T0 + 3900 && now < T0 + 4200))
			want = FAILURE_DEFER;
		else if (now < T0 + 7800)
			want = final;
		else
			want = FAILURE_DELIVER_TLS;
		if (a != want) {
			fprintf(stderr, "walk [%s] t0+%lld: %s, want %s\n",
			    col_names[c], (long long)(now - T0),
			    failure_action_name(a), failure_action_name(want));
			bad = 1;
		}
	}
	printf("     [%s] walk: %d contacts in 151 attempts\n", col_names[c],
	    ncontact);
	CHECK_INT(ncontact, 5 + (T0 + 9000 - (T0 + 7800)) / 60);
	CHECK_INT(have, 0);
	if (bad)
		t_cur = 1;
}

static void
test_walk(void)
{
	walk(ON, HS, FAILURE_FALLBACK_CLEAR);
	walk(OS, CERT, FAILURE_FAIL);
	walk(OS, HS, FAILURE_FALLBACK_CLEAR);
	walk(MS, HS, FAILURE_FAIL);
	walk(MS, NOTLS, FAILURE_FAIL_NO_TLS);
	walk(MN, HS, FAILURE_FAIL);
}

int
main(void)
{
	RUN(test_no_starttls);
	RUN(test_future_dated);
	RUN(test_first_failure);
	RUN(test_inside_retry_delay);
	RUN(test_retry_tls_works);
	RUN(test_retry_fails);
	RUN(test_broken);
	RUN(test_after_fallback_ttl);
	RUN(test_stale_failed_once);
	RUN(test_tls_off);
	RUN(test_tls_ok_clears);
	RUN(test_races);
	RUN(test_timing_parameters);
	RUN(test_expired);
	RUN(test_error_text);
	RUN(test_names);
	RUN(test_walk);
	printf("     %d table rows\n", nrows);
	return T_DONE();
}
