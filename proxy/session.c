#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "dsn.h"
#include "log.h"
#include "metrics.h"
#include "session.h"
#include "smtp.h"
#include "sockaddr.h"
#include "stsrule.h"
#include "sts.h"
#include "tls.h"
#include "upstream.h"

#define SESSION_BUFSIZE 16384
#define SESSION_MAX_RCPT 1000

/*
 * The MTA-facing side.  States that read the MTA take its commands (or
 * its message); in the others the MTA's pipelined commands wait unread
 * until the reply it is owed has been written.  The MX-facing side has
 * states of its own (upstream.h).
 */
enum sess_state {
	ST_HELO,	 /* greeted; waiting for EHLO/HELO */
	ST_IDLE,	 /* no transaction */
	ST_MAIL,	 /* MAIL accepted locally; waiting for RCPT */
	ST_RCPT,	 /* at least one RCPT relayed; RCPT or DATA next */
	ST_RELAY,	 /* a command is with the upstream */
	ST_STS_WAIT,	 /* the recipient domain's MTA-STS policy is asked */
	ST_DATA,	 /* streaming the message upstream */
	ST_DATA_DISCARD, /* reading the message to its end, to refuse it */
	ST_DATA_HOLD,	 /* message bytes wait unread for their header to
			    say "TLS-Required: No" or not */
	ST_DOT,		 /* waiting for the reply to the final dot */
	ST_CLOSING,	 /* last reply queued; close when written */
};

static const struct {
	const char *name;
	int reads; /* takes the MTA's input */
} sess_states[] = {
	[ST_HELO] = { "helo", 1 },
	[ST_IDLE] = { "idle", 1 },
	[ST_MAIL] = { "mail", 1 },
	[ST_RCPT] = { "rcpt", 1 },
	[ST_RELAY] = { "relay", 0 },
	[ST_STS_WAIT] = { "sts-wait", 0 },
	[ST_DATA] = { "data", 1 },
	[ST_DATA_DISCARD] = { "data-discard", 1 },
	[ST_DATA_HOLD] = { "data-hold", 1 },
	[ST_DOT] = { "dot", 0 },
	[ST_CLOSING] = { "closing", 0 },
};

struct session {
	unsigned long id;
	struct proxy *px;
	struct runtime *rt;	  /* the config this session started with */
	const struct config *cfg; /* &rt->cfg */
	enum sess_state state;
	struct session *next;
	int closed;
	int processing; /* session_process_input is on the stack */

	struct conn down;
	int bad_commands;
	int skip_line; /* discarding the rest of an over-long command line */
	/*
	 * The MTA's deadline runs per line, not per read: a client that
	 * drips a byte a second still times out (slowloris).
	 */
	int down_progress; /* a whole line arrived since the deadline was set */
	int down_timed;	   /* the deadline runs */
	char helo[256];

	/* the transaction, as the MTA sees it, and its route */
	struct up_txn txn;
	struct up_route route;
	int nrcpt_tried;
	int nrcpt_tempfail; /* refused with 4xx: the MTA will try again */
	/*
	 * MAIL ... REQUIRETLS (RFC 8689): route.dec.profile is then
	 * req_profile, a copy of the runtime's profile that demands
	 * verified TLS.
	 */
	struct policy_profile req_profile;
	/*
	 * "TLS-Required: No" (RFC 8689 section 5).  When the route's TLS
	 * policy fails for the transaction's first recipient, that
	 * recipient is held (accepted for now, the only one: PENDING); at
	 * DATA the message's header decides (HOLD); with the header the
	 * route is tried again without the policy (RUN), without it the
	 * message gets tlsno_reply, the answer it would have had at once.
	 */
	enum { TLSNO_NONE, TLSNO_PENDING, TLSNO_HOLD, TLSNO_RUN } tlsno;
	char tlsno_reply[512];
	struct policy_decision dec_base; /* the route's, before MTA-STS */
	struct policy_profile tlsno_profile;
	char txn_fail[512]; /* reply for the rest of the transaction, if set */
	struct smtp_data_scan scan;
	struct smtp_normalise norm; /* bare_line_endings = normalise */
	struct dsn_txn *dsn; /* "relayed" notices owed; NULL: none can be */
	char data_reply[512]; /* why ST_DATA_DISCARD's message is refused */

	struct upstream u; /* the MX-facing client */

	/*
	 * MTA-STS (RFC 8461) of the last recipient domain looked up: an
	 * enforce policy makes the route mandatory + strict to its mx, and
	 * never fails permanently (docs/behaviour.md section 6).
	 */
	struct sts_query *sts_q;
	struct policy_decision sts_pending; /* the RCPT waiting for it */
	struct up_sts sts;
};

static void session_enter(struct session *s, enum sess_state st);
static void session_process_input(struct session *s);
static int session_rcpt_route(struct session *s,
    struct policy_decision *dec);
static void session_on_upstream(void *owner, const struct up_report *rep);
static void session_down_event(struct conn *c, enum conn_event ev,
    void *arg);

/* --- replies and logging ------------------------------------------------ */

static void
session_close(struct session *s)
{
	struct session **pp;

	if (s->closed)
		return;
	s->closed = 1;
	if (s->sts_q != NULL)
		sts_cancel(s->sts_q);
	s->sts_q = NULL;
	conn_close(&s->down);
	upstream_free(&s->u);
	for (pp = &s->px->live; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	/* Free later: our callers may still be on the stack. */
	s->next = s->px->dead;
	s->px->dead = s;
	s->px->nsessions--;
	metrics_add("mxtls_sessions_current", "", -1);
	log_debug(s->id, "session-end", NULL);
	if (s->px->on_session_end != NULL)
		s->px->on_session_end(s->px);
}

static void __attribute__((format(printf, 2, 3)))
session_reply(struct session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	s->u.t_rcpt = 0;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	memcpy(line + n, "\r\n", 3);
	if (s->cfg->log_addresses == CONFIG_ADDR_FULL)
		log_debug(s->id, "reply", "text", line, NULL);
	if (conn_write(&s->down, line, (size_t)n + 2) == -1) {
		/* A client that never reads its replies: nothing to save. */
		log_warn(s->id, "client-not-reading", NULL);
		session_close(s);
	}
}

/* Relay an upstream reply to the MTA verbatim (its code, its text). */
static void
session_relay_reply(struct session *s, const struct smtp_reply *r)
{
	char text[SMTP_REPLY_TEXT_MAX];
	size_t i;

	s->u.t_rcpt = 0;
	metrics_inc("mxtls_bytes_relayed_total", "direction=\"downstream\"",
	    (double)r->textlen);
	/* Control bytes from a peer never reach the MTA (or its bounces). */
	memcpy(text, r->text, r->textlen);
	for (i = 0; i < r->textlen; i++)
		if (((unsigned char)text[i] < 0x20 && text[i] != '\r' &&
		    text[i] != '\n') || text[i] == 0x7f)
			text[i] = '?';
	/*
	 * 421 says the sender's own channel closes; from the upstream it
	 * means that server's, and this session goes on: the MTA gets 451.
	 */
	for (i = 0; r->code == 421 && i + 3 <= r->textlen; i++)
		if ((i == 0 || text[i - 1] == '\n') &&
		    memcmp(text + i, "421", 3) == 0)
			text[i + 1] = '5';
	if (conn_write(&s->down, text, r->textlen) == -1) {
		log_warn(s->id, "client-not-reading", NULL);
		session_close(s);
	}
}

/*
 * The reply to the final dot, relayed with how the message left on its
 * last line ("[mxtls: TLSv1.3 verified mx.example.net]"), so that the
 * MTA's own log records it; the upstream's code and status stay.
 */
static void
session_relay_final(struct session *s, const struct smtp_reply *r)
{
	struct smtp_reply fin = *r;
	char how[DNS_NAME_MAX + 96];

	upstream_how(&s->u, how, sizeof(how));
	/* Should it not fit (it always does), the reply goes as it came. */
	smtp_reply_append(&fin, how);
	session_relay_reply(s, &fin);
}

/* --- the transaction ---------------------------------------------------- */

static void
session_txn_reset(struct session *s)
{
	s->txn.mail_from[0] = '\0';
	s->txn.mail_params[0] = '\0';
	s->txn.requiretls = 0;
	s->route.prof_orig = NULL;
	s->tlsno = TLSNO_NONE;
	s->txn.tls_required_no = 0;
	s->tlsno_reply[0] = '\0';
	s->txn.nrcpt_ok = 0;
	s->nrcpt_tried = 0;
	s->nrcpt_tempfail = 0;
	s->route.have = 0;
	s->route.sts = 0;
	s->route.sts_testing = 0;
	s->route.domain[0] = '\0';
	s->route.key[0] = '\0';
	s->txn_fail[0] = '\0';
	s->u.attempt_logged = 0;
	s->u.verdict = FAILURE_CONTACT;
	s->txn.size = 0;
	s->data_reply[0] = '\0';
	dsn_txn_free(s->dsn);
	s->dsn = NULL;
	memset(&s->route.dec, 0, sizeof(s->route.dec));
	smtp_data_scan_init(&s->scan);
	smtp_normalise_init(&s->norm);
}

/*
 * The upstream could not take the transaction: answer the RCPT being
 * relayed and every later one with `reply`, so the MTA retries them
 * (4xx) or bounces them (5xx) as the reply says.
 */
static void __attribute__((format(printf, 2, 3)))
session_txn_fail(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->txn_fail, sizeof(s->txn_fail), fmt, ap);
	va_end(ap);
	/* One summary line per attempt, also when it ends before a host. */
	if (!s->u.attempt_logged)
		upstream_log_delivery(&s->u, s->txn_fail[0] == '4' ?
		    "deferred" : "failed", s->txn_fail, NULL);
	if (s->tlsno == TLSNO_RUN) {
		/* The MTA is past DATA: the answer waits for the dot. */
		snprintf(s->data_reply, sizeof(s->data_reply), "%s",
		    s->txn_fail);
		upstream_close(&s->u);
		session_enter(s, ST_DATA_DISCARD);
		return;
	}
	session_reply(s, "%s", s->txn_fail);
	if (s->closed)
		return;
	session_enter(s, s->txn.nrcpt_ok > 0 ? ST_RCPT : ST_MAIL);
}

/*
 * The route's TLS policy failed with `reply` for the transaction's first
 * recipient.  A message whose header says "TLS-Required: No" (RFC 8689
 * section 5) may go all the same, without the recipient domain's
 * MTA-STS or DANE policy; local: the failure is the local profile's
 * (the failure table's verdict), the operator's policy, which it lifts
 * only with [policy] honour_tls_required_no.  Only the message says
 * whether it has the
 * header: hold the recipient (accepted for now, and the transaction's
 * only one) and decide at DATA.  1 when held; 0 leaves the failure to
 * the caller.  Never under REQUIRETLS (section 4.1: it prevails).
 */
static int
session_tlsno_wait(struct session *s, int local, const char *reply)
{
	if (s->txn.requiretls || s->tlsno != TLSNO_NONE ||
	    s->txn.nrcpt_ok > 0 || (local && !s->cfg->honour_tls_required_no))
		return 0;
	snprintf(s->tlsno_reply, sizeof(s->tlsno_reply), "%s", reply);
	s->tlsno = TLSNO_PENDING;
	upstream_close(&s->u);
	log_info(s->id, "tls-required-wait", "rcpt_domain", s->route.domain,
	    "reason", reply, NULL);
	s->txn.nrcpt_ok = 1;
	s->u.t_rcpt = 0;
	session_reply(s, "250 2.1.5 Held: the TLS policy for %s failed; "
	    "the message goes only if it says TLS-Required: No",
	    s->route.domain);
	if (!s->closed)
		session_enter(s, ST_RCPT);
	return 1;
}

/*
 * The held message's header is read (ST_DATA_HOLD): without
 * "TLS-Required: No" it gets the reply it was held with; with it, the
 * route is tried again with its TLS policy lifted: no MTA-STS, no DANE,
 * no certificate check, and the clear only where the profile allows it
 * (a mandatory one keeps TLS unless honour_tls_required_no).
 */
static void
session_tlsno_decide(struct session *s, int found)
{
	struct policy_profile *p = &s->tlsno_profile;
	const struct policy_profile *base = s->dec_base.profile;

	if (!found) {
		s->tlsno = TLSNO_NONE;
		log_info(s->id, "tls-required-absent", "rcpt_domain",
		    s->route.domain, "reply", s->tlsno_reply, NULL);
		if (!s->u.attempt_logged)
			upstream_log_delivery(&s->u, s->tlsno_reply[0] == '4' ?
			    "deferred" : "failed", s->tlsno_reply,
			    "no TLS-Required: No header");
		snprintf(s->data_reply, sizeof(s->data_reply), "%s",
		    s->tlsno_reply);
		session_enter(s, ST_DATA_DISCARD);
		return;
	}
	*p = *base;
	snprintf(p->name, sizeof(p->name), "%.*s+tls-required-no",
	    (int)sizeof(p->name) - 18, base->name);
	p->dane = DANE_MODE_OFF;
	p->verify = POLICY_VERIFY_NONE;
	if (p->tls == POLICY_TLS_MANDATORY && s->cfg->honour_tls_required_no)
		p->tls = POLICY_TLS_OPPORTUNISTIC;
	s->route.prof_orig = base;
	s->route.dec = s->dec_base;
	s->route.dec.profile = p;
	s->route.sts = 0;
	s->route.sts_testing = 0;
	if (upstream_route_id(&s->u, &s->route.dec, 0, 0, s->route.key) == -1) {
		s->tlsno = TLSNO_NONE;
		snprintf(s->data_reply, sizeof(s->data_reply),
		    "451 4.3.0 Out of memory, try again later");
		session_enter(s, ST_DATA_DISCARD);
		return;
	}
	s->tlsno = TLSNO_RUN;
	s->txn.tls_required_no = 1;
	s->u.attempt_logged = 0;
	s->txn_fail[0] = '\0';
	log_info(s->id, "tls-required-no", "rcpt_domain", s->route.domain,
	    "profile", p->name, "policy_failure", s->tlsno_reply, NULL);
	session_enter(s, ST_RELAY);
	upstream_open(&s->u);
}

/* Look at the held message's first bytes for its TLS-Required field. */
static void
session_tlsno_look(struct session *s)
{
	struct buf *in = &s->down.in;

	switch (smtp_tls_required_no(buf_head(in), buf_len(in),
	    buf_room(in) == 0)) {
	case SMTP_TRN_MORE:
		return;
	case SMTP_TRN_ABSENT:
		session_tlsno_decide(s, 0);
		return;
	case SMTP_TRN_NO:
		session_tlsno_decide(s, 1);
		return;
	}
}

/* mxtls is stopping: tell the MTA and close, no new transaction. */
static void
session_shutting_down(struct session *s)
{
	session_reply(s, "421 4.3.2 %s Service shutting down, closing",
	    s->cfg->hostname);
	if (!s->closed)
		session_enter(s, ST_CLOSING);
}

/*
 * The final dot is answered: the session is free for the next
 * transaction, unless the drain time ran out while the reply was awaited.
 */
static void
session_message_done(struct session *s)
{
	if (s->closed)
		return;
	session_txn_reset(s);
	if (s->px->drain_over) {
		session_shutting_down(s);
		return;
	}
	session_enter(s, ST_IDLE);
}

/* --- what the upstream reports ---------------------------------------- */

/* A reply the MTA gets as a transaction failure: 421 is the server's
 * channel closing, not ours, so it becomes 451. */
static void
session_fail_with(struct session *s, const struct smtp_reply *r,
    const char *sum)
{
	session_txn_fail(s, "%s%s", r->code == 421 ? "451" : "",
	    r->code == 421 ? sum + 3 : sum);
}

static void
session_up_mail(struct session *s, const struct up_report *rep)
{
	if (s->tlsno == TLSNO_RUN) {
		session_fail_with(s, rep->r, rep->sum);
		return;
	}
	/* The MTA saw 250 for MAIL: the refusal lands on RCPT. */
	snprintf(s->txn_fail, sizeof(s->txn_fail), "%s%s",
	    rep->r->code == 421 ? "451" : "",
	    rep->r->code == 421 ? rep->sum + 3 : rep->sum);
	session_relay_reply(s, rep->r);
	if (!s->closed)
		session_enter(s, s->txn.nrcpt_ok > 0 ? ST_RCPT : ST_MAIL);
}

static void
session_up_rcpt(struct session *s, const struct up_report *rep)
{
	int code = rep->r->code;

	if (s->tlsno == TLSNO_RUN) {
		/* The held recipient: on to the held message. */
		if (code / 100 != 2) {
			session_fail_with(s, rep->r, rep->sum);
			return;
		}
		dsn_txn_accepted(s->dsn, (s->u.ehlo.ext & SMTP_EXT_DSN) != 0);
		upstream_data(&s->u);
		return;
	}
	if (code / 100 == 2) {
		s->txn.nrcpt_ok++;
		dsn_txn_accepted(s->dsn, (s->u.ehlo.ext & SMTP_EXT_DSN) != 0);
	} else if (code / 100 == 4)
		s->nrcpt_tempfail++;
	session_relay_reply(s, rep->r);
	if (!s->closed)
		session_enter(s, s->txn.nrcpt_ok > 0 ? ST_RCPT : ST_MAIL);
}

static void
session_up_data(struct session *s, const struct up_report *rep)
{
	if (rep->r->code != 354 && s->tlsno == TLSNO_RUN) {
		session_fail_with(s, rep->r, rep->sum);
		return;
	}
	if (rep->r->code != 354) {
		session_relay_reply(s, rep->r);
		if (!s->closed)
			session_enter(s, ST_RCPT);
		return;
	}
	/* A held message had its 354 from mxtls already. */
	if (s->tlsno != TLSNO_RUN)
		session_relay_reply(s, rep->r);
	if (!s->closed) {
		smtp_data_scan_init(&s->scan);
		smtp_normalise_init(&s->norm);
		s->txn.size = 0;
		session_enter(s, ST_DATA);
	}
}

static void
session_up_dot(struct session *s, const struct up_report *rep)
{
	if (rep->r == NULL) {
		session_reply(s, "%s", rep->text);
		session_message_done(s);
		return;
	}
	session_relay_final(s, rep->r);
	/* After the MTA's reply: the notice never delays it. */
	if (rep->r->code == 250)
		dsn_txn_relayed(s->dsn, s->px->dsnq, s->cfg,
		    upstream_name(&s->u), s->u.addr, rep->sum, s->id);
	session_message_done(s);
}

/* RSET answered, or its connection lost: the transaction is gone. */
static void
session_up_rset(struct session *s)
{
	session_reply(s, "250 2.0.0 Ok");
	if (!s->closed) {
		session_txn_reset(s);
		session_enter(s, ST_IDLE);
	}
}

static void
session_up_failed(struct session *s, const struct up_report *rep)
{
	if (rep->lift != UP_LIFT_NONE &&
	    session_tlsno_wait(s, rep->lift == UP_LIFT_LOCAL, rep->text))
		return;
	if (rep->reason != NULL)
		upstream_log_delivery(&s->u, "deferred", NULL, rep->reason);
	session_txn_fail(s, "%s", rep->text);
}

/* The upstream's connection failed where only the session knows what
 * that means for the MTA. */
static void
session_up_lost(struct session *s, const struct up_report *rep)
{
	if (s->state == ST_DATA) {
		/* Read the rest of the message; refuse it at its end. */
		snprintf(s->data_reply, sizeof(s->data_reply),
		    "451 4.4.2 Connection to %s lost during DATA: %s",
		    rep->where, rep->reason);
		upstream_log_delivery(&s->u, "deferred", NULL, rep->reason);
		session_enter(s, ST_DATA_DISCARD);
		return;
	}
	if (rep->in == UP_DATA_END) {
		upstream_log_delivery(&s->u, "deferred", NULL, rep->reason);
		session_reply(s, "451 4.4.2 Connection to %s lost before it "
		    "confirmed the message: %s", rep->where, rep->reason);
		session_message_done(s);
		return;
	}
	if (rep->in == UP_RSET) {
		session_up_rset(s);
		return;
	}
	/* Idle upstream went away: only an open transaction cares. */
	if (s->txn.nrcpt_ok > 0 && s->txn_fail[0] == '\0')
		snprintf(s->txn_fail, sizeof(s->txn_fail),
		    "451 4.4.2 Connection to %s lost: %s", rep->where,
		    rep->reason);
	session_process_input(s);
}

static void
session_on_upstream(void *owner, const struct up_report *rep)
{
	struct session *s = owner;

	switch (rep->ev) {
	case UP_EV_MAIL:
		session_up_mail(s, rep);
		break;
	case UP_EV_RCPT:
		session_up_rcpt(s, rep);
		break;
	case UP_EV_DATA:
		session_up_data(s, rep);
		break;
	case UP_EV_DOT:
		session_up_dot(s, rep);
		break;
	case UP_EV_RSET:
		session_up_rset(s);
		break;
	case UP_EV_FAILED:
		session_up_failed(s, rep);
		break;
	case UP_EV_LOST:
		session_up_lost(s, rep);
		break;
	case UP_EV_DRAINED:
		if (s->state == ST_DATA)
			session_process_input(s);
		break;
	}
}

/* --- downstream commands -------------------------------------------------- */

static int
session_bad_command(struct session *s)
{
	if (++s->bad_commands < s->cfg->max_bad_commands)
		return 0;
	session_reply(s, "421 4.7.0 %s Too many errors, closing",
	    s->cfg->hostname);
	if (!s->closed)
		session_enter(s, ST_CLOSING);
	return 1;
}

static void
session_cmd_ehlo(struct session *s, const struct smtp_command *cmd)
{
	const struct config *cfg = s->cfg;

	if (cmd->arglen == 0) {
		session_reply(s, "501 5.5.4 %s needs a domain",
		    smtp_cmd_name(cmd->cmd));
		session_bad_command(s);
		return;
	}
	snprintf(s->helo, sizeof(s->helo), "%.*s", (int)cmd->arglen,
	    cmd->arg);
	/* EHLO resets the transaction (RFC 5321 4.1.4): upstream's too. */
	if (s->u.txn_open)
		upstream_close(&s->u);
	session_txn_reset(s);
	if (cmd->cmd == SMTP_CMD_HELO) {
		session_reply(s, "250 %s", cfg->hostname);
	} else {
		char r[512];

		/* DSN only where mxtls can send the notices it owes. */
		snprintf(r, sizeof(r),
		    "250-%s\r\n250-PIPELINING\r\n250-SIZE %ld\r\n"
		    "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
		    "250-REQUIRETLS\r\n250%sSMTPUTF8%s",
		    cfg->hostname, cfg->max_message_size,
		    cfg->dsn_submit_len > 0 ? "-" : " ",
		    cfg->dsn_submit_len > 0 ? "\r\n250 DSN" : "");
		session_reply(s, "%s", r);
	}
	if (!s->closed)
		session_enter(s, ST_IDLE);
}

/*
 * REQUIRETLS (RFC 8689 section 4.2.1): whatever the profile says, TLS
 * verified by DANE, MTA-STS or the web PKI, never the clear.  The copy
 * is named apart, so that no route, cached connection or retry record
 * made for mail that did not ask for it serves this mail.
 */
static void
session_requiretls_profile(const struct policy_profile *p,
    struct policy_profile *dst)
{
	*dst = *p;
	snprintf(dst->name, sizeof(dst->name), "%.*s+requiretls",
	    (int)sizeof(dst->name) - 12, p->name);
	dst->tls = POLICY_TLS_MANDATORY;
	dst->verify = POLICY_VERIFY_STRICT;
}

/* An envelope address as [proxy] log_addresses wants it in the logs. */
static const char *
session_log_addr(struct session *s, const char *addr, char *dst,
    size_t len)
{
	switch (s->cfg->log_addresses) {
	case CONFIG_ADDR_DOMAIN:
		snprintf(dst, len, "*@%s", smtp_addr_domain(addr));
		return dst;
	case CONFIG_ADDR_HASH:
		tls_sha256_hex(addr, dst, len);
		return dst;
	case CONFIG_ADDR_FULL:
		break;
	}
	return addr;
}

static void
session_cmd_mail(struct session *s, const struct smtp_command *cmd)
{
	char addr[SMTP_PATH_MAX + 1], la[SMTP_PATH_MAX + 1];
	const char *params, *err;
	size_t plen;

	if (s->state == ST_HELO) {
		session_reply(s, "503 5.5.1 Send EHLO or HELO first");
		session_bad_command(s);
		return;
	}
	if (s->state != ST_IDLE) {
		session_reply(s, "503 5.5.1 Nested MAIL command");
		session_bad_command(s);
		return;
	}
	if (s->px->draining) {
		/* Transactions begun go on, no new one. */
		session_shutting_down(s);
		return;
	}
	if (smtp_parse_path(cmd->arg, cmd->arglen, "FROM:", addr, sizeof(addr),
	    &params, &plen, &err) == -1) {
		session_reply(s, "501 5.1.7 %s", err);
		session_bad_command(s);
		return;
	}
	if (plen >= UPSTREAM_PARAMS_MAX) {
		session_reply(s, "501 5.5.4 Too many MAIL parameters");
		session_bad_command(s);
		return;
	}
	session_txn_reset(s);
	snprintf(s->txn.mail_params, sizeof(s->txn.mail_params), "%.*s",
	    (int)plen, params);
	if ((err = smtp_mail_params_check(s->txn.mail_params,
	    s->cfg->max_message_size)) != NULL ||
	    (err = dsn_txn_mail(&s->dsn, s->cfg->dsn_submit_len > 0, addr,
	    s->txn.mail_params, clock_now())) != NULL) {
		s->txn.mail_params[0] = '\0';
		session_reply(s, "%s", err);
		return;
	}
	snprintf(s->txn.mail_from, sizeof(s->txn.mail_from), "%s", addr);
	s->txn.requiretls = smtp_has_param(s->txn.mail_params,
	    "REQUIRETLS");
	log_info(s->id, "mail", "from", session_log_addr(s, addr, la,
	    sizeof(la)), "requiretls", s->txn.requiretls ? "yes" : NULL, NULL);
	session_reply(s, "250 2.1.0 Ok");
	if (!s->closed)
		session_enter(s, ST_MAIL);
}

/* MTA-STS counts for this recipient (policy/stsrule.h has the rule). */
static int
session_sts_wanted(const struct session *s, const struct policy_decision *d)
{
	return policy_sts_applies(d, s->px->sts != NULL && s->cfg->mta_sts);
}

static void
session_sts_answer(void *arg, const struct sts_answer *a)
{
	struct session *s = arg;
	struct policy_decision dec = s->sts_pending;
	int i;

	s->sts_q = NULL;
	if (a->policy != NULL && a->policy->nmx > 0 && (s->sts.mx == NULL ||
	    s->sts.mx->cap < a->policy->nmx)) {
		free(s->sts.mx);
		if ((s->sts.mx = up_names_new(a->policy->nmx)) == NULL) {
			/*
			 * Without its mx list the policy cannot be applied;
			 * the list of the domain before is gone with it.
			 */
			s->sts.nmx = 0;
			s->sts.domain[0] = '\0';
			session_reply(s,
			    "451 4.3.0 Out of memory, try again later");
			if (!s->closed)
				session_enter(s, s->txn.nrcpt_ok > 0 ?
				    ST_RCPT : ST_MAIL);
			return;
		}
	}
	snprintf(s->sts.domain, sizeof(s->sts.domain), "%s", dec.domain);
	s->sts.mode = a->policy != NULL ? a->policy->mode : MTASTS_NONE;
	s->sts.max_age = a->policy != NULL ? a->policy->max_age : -1;
	s->sts.nmx = 0;
	for (i = 0; a->policy != NULL && i < a->policy->nmx; i++) {
		snprintf(s->sts.mx->name[i], DNS_NAME_MAX, "%s",
		    a->policy->mx[i]);
		s->sts.nmx++;
	}
	log_info(s->id, "mta-sts", "domain", dec.domain, "mode",
	    mtasts_mode_name(s->sts.mode), "source", a->source, "error",
	    a->error, NULL);
	/* Answered here: back where the RCPT came in. */
	if (!session_rcpt_route(s, &dec) && !s->closed)
		session_enter(s, s->txn.nrcpt_ok > 0 ? ST_RCPT : ST_MAIL);
}

static void
session_cmd_rcpt(struct session *s, const struct smtp_command *cmd)
{
	char addr[SMTP_PATH_MAX + 1];
	struct policy_decision dec;
	const char *params, *err, *domain;
	size_t plen;

	if (s->state != ST_MAIL && s->state != ST_RCPT) {
		session_reply(s, "503 5.5.1 Need MAIL before RCPT");
		session_bad_command(s);
		return;
	}
	if (smtp_parse_path(cmd->arg, cmd->arglen, "TO:", addr, sizeof(addr),
	    &params, &plen, &err) == -1) {
		session_reply(s, "501 5.1.3 %s", err);
		session_bad_command(s);
		return;
	}
	domain = smtp_addr_domain(addr);
	if (addr[0] == '\0' || domain[0] == '\0') {
		session_reply(s, "501 5.1.3 Recipient address needs a domain");
		session_bad_command(s);
		return;
	}
	if (plen >= UPSTREAM_PARAMS_MAX) {
		session_reply(s, "501 5.5.4 Too many RCPT parameters");
		return;
	}
	if ((err = dsn_txn_rcpt(s->dsn, addr, params, plen)) != NULL) {
		session_reply(s, "%s", err);
		return;
	}
	if (++s->nrcpt_tried > SESSION_MAX_RCPT) {
		session_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (s->tlsno != TLSNO_NONE) {
		/* The held recipient's answer must be its own alone. */
		session_reply(s, "452 4.5.3 One recipient at a time while the "
		    "first one's TLS policy failed: send it in a separate "
		    "transaction");
		return;
	}
	if (policy_lookup(s->rt->policy, addr, &dec) != POLICY_OK) {
		session_reply(s, "553 5.1.3 Bad recipient domain: %s", dec.why);
		return;
	}
	/*
	 * An address literal has no MX to look up and no name to verify a
	 * certificate against: only a nexthop or the original destination
	 * (transparent mode) can route it.
	 */
	if (dec.domain[0] == '[' && dec.nexthop == NULL && !s->u.transparent) {
		session_reply(s, "553 5.1.3 %s: an address literal has no MX "
		    "(mxtls delivers by domain name or nexthop)", addr);
		return;
	}
	snprintf(s->txn.rcpt, sizeof(s->txn.rcpt), "%s", addr);
	snprintf(s->txn.rcpt_params, sizeof(s->txn.rcpt_params), "%.*s",
	    (int)plen, params);
	s->u.t_rcpt = clock_mono();
	if (session_sts_wanted(s, &dec) &&
	    strcmp(s->sts.domain, dec.domain) != 0) {
		s->sts_pending = dec;
		s->sts_q = sts_lookup(s->px->sts, dec.domain,
		    session_sts_answer, s);
		if (s->sts_q != NULL) {
			session_enter(s, ST_STS_WAIT);
			return;
		}
	}
	session_rcpt_route(s, &dec);
}

/*
 * The RCPT's policy is complete: join the transaction's route or not.
 * 1 when the RCPT went to the upstream, 0 when it was answered here.
 */
static int
session_rcpt_route(struct session *s, struct policy_decision *dec)
{
	char key[sizeof(s->route.key)], la[SMTP_PATH_MAX + 1];
	const char *domain = dec->domain;
	const struct policy_profile *orig;
	struct policy_profile req;
	struct policy_decision base = *dec;
	int sts = session_sts_wanted(s, dec);

	if (sts && strcmp(s->sts.domain, dec->domain) == 0)
		policy_sts_enforce(s->rt->policy, s->sts.mode, s->sts.nmx > 0 ?
		    s->sts.mx->p : NULL, s->sts.nmx, dec);
	orig = dec->profile;
	if (s->txn.requiretls) {
		session_requiretls_profile(orig, &req);
		dec->profile = &req;
	}
	if (upstream_route_id(&s->u, dec, sts && s->sts.mode == MTASTS_ENFORCE,
	    sts && s->sts.mode == MTASTS_TESTING, key) == -1) {
		session_reply(s, "451 4.3.0 Out of memory, try again later");
		return 0;
	}
	if (s->route.have && strcmp(key, s->route.key) != 0 &&
	    s->txn.nrcpt_ok == 0) {
		/* Nothing accepted yet: the route is free to change. */
		if (s->u.txn_open)
			upstream_close(&s->u);
		s->route.have = 0;
		s->txn_fail[0] = '\0';
	}
	if (s->route.have && strcmp(key, s->route.key) != 0) {
		/* RFC 5321 4.5.3.1.10: the MTA sends these again later. */
		session_reply(s,
		    "452 4.5.3 %s goes to another next hop: send it in a "
		    "separate transaction", domain);
		return 0;
	}
	if (s->txn_fail[0] != '\0') {
		session_reply(s, "%s", s->txn_fail);
		return 0;
	}
	log_info(s->id, "rcpt", "to", session_log_addr(s, s->txn.rcpt, la,
	    sizeof(la)), "profile", dec->profile->name, "match",
	    dec->match ? dec->match->pattern : "(default)", "mta_sts",
	    session_sts_wanted(s, dec) ? mtasts_mode_name(s->sts.mode) : NULL,
	    NULL);
	if (!s->route.have) {
		s->route.have = 1;
		s->route.dec = *dec;
		s->dec_base = base;
		if (s->txn.requiretls) {
			s->req_profile = req;
			s->route.prof_orig = orig;
			s->route.dec.profile = &s->req_profile;
		}
		s->route.sts = session_sts_wanted(s, dec) &&
		    s->sts.mode == MTASTS_ENFORCE;
		s->route.sts_testing = session_sts_wanted(s, dec) &&
		    s->sts.mode == MTASTS_TESTING;
		snprintf(s->route.key, sizeof(s->route.key), "%s", key);
		snprintf(s->route.domain, sizeof(s->route.domain), "%s",
		    domain);
	}
	session_enter(s, ST_RELAY);
	if (s->u.open && s->u.txn_open)
		upstream_rcpt(&s->u);
	else if (upstream_idle_serves(&s->u))
		upstream_mail(&s->u);
	else
		upstream_open(&s->u);
	return 1;
}

static void
session_cmd_data(struct session *s)
{
	if (s->state != ST_RCPT && s->state != ST_MAIL) {
		session_reply(s, "503 5.5.1 Need MAIL and RCPT before DATA");
		session_bad_command(s);
		return;
	}
	if (s->txn.nrcpt_ok == 0) {
		/* Every recipient refused: that attempt has its line too. */
		if (s->route.have && s->nrcpt_tried > 0 &&
		    !s->u.attempt_logged)
			upstream_log_delivery(&s->u, s->nrcpt_tempfail > 0 ?
			    "deferred" : "failed", NULL,
			    "every recipient was refused");
		session_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (s->tlsno == TLSNO_PENDING) {
		/* The header decides (session_tlsno_look). */
		session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
		if (!s->closed) {
			s->tlsno = TLSNO_HOLD;
			session_enter(s, ST_DATA_HOLD);
		}
		return;
	}
	if (s->txn_fail[0] != '\0' || !s->u.open || !s->u.txn_open) {
		session_reply(s, "%s", s->txn_fail[0] ? s->txn_fail :
		    "451 4.4.2 Connection to the next hop was lost");
		return;
	}
	session_enter(s, ST_RELAY);
	upstream_data(&s->u);
}

static void
session_cmd_rset(struct session *s)
{
	if (s->u.open && s->u.txn_open && s->txn_fail[0] == '\0') {
		session_enter(s, ST_RELAY);
		upstream_rset(&s->u);
		return;
	}
	session_reply(s, "250 2.0.0 Ok");
	if (!s->closed) {
		session_txn_reset(s);
		session_enter(s, s->state == ST_HELO ? ST_HELO : ST_IDLE);
	}
}

static void
session_command(struct session *s, const char *line, size_t len)
{
	struct smtp_command cmd;

	smtp_parse_command(line, len, &cmd);
	if (log_enabled(CONFIG_LOG_DEBUG)) {
		char l[128];

		/* The verb only: arguments may carry addresses. */
		snprintf(l, sizeof(l), "%.*s", (int)cmd.verblen, cmd.verb);
		log_debug(s->id, "command", "verb", l, NULL);
	}
	switch (cmd.cmd) {
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		session_cmd_ehlo(s, &cmd);
		break;
	case SMTP_CMD_MAIL:
		session_cmd_mail(s, &cmd);
		break;
	case SMTP_CMD_RCPT:
		session_cmd_rcpt(s, &cmd);
		break;
	case SMTP_CMD_DATA:
		session_cmd_data(s);
		break;
	case SMTP_CMD_RSET:
		session_cmd_rset(s);
		break;
	case SMTP_CMD_NOOP:
		session_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_CMD_QUIT:
		session_reply(s, "221 2.0.0 %s Bye", s->cfg->hostname);
		if (!s->closed)
			session_enter(s, ST_CLOSING);
		break;
	case SMTP_CMD_VRFY:
		session_reply(s, "252 2.5.2 Cannot VRFY; send mail and see");
		break;
	case SMTP_CMD_HELP:
		session_reply(s, "214 2.0.0 mxtls relays mail over verified "
		    "STARTTLS");
		break;
	case SMTP_CMD_BDAT:
		/*
		 * Its chunk follows on the wire and has no end marker: read
		 * as lines, its bytes would run as commands.  As Postfix
		 * without CHUNKING: refuse and close, unread.
		 */
		session_reply(s, "521 5.5.1 %s BDAT not implemented, closing",
		    s->cfg->hostname);
		if (!s->closed)
			session_enter(s, ST_CLOSING);
		break;
	case SMTP_CMD_EXPN:
	case SMTP_CMD_STARTTLS:
	case SMTP_CMD_AUTH:
		session_reply(s, "502 5.5.1 %s not implemented",
		    smtp_cmd_name(cmd.cmd));
		session_bad_command(s);
		break;
	case SMTP_CMD_UNKNOWN:
		session_reply(s, "500 5.5.2 Command not recognized");
		session_bad_command(s);
		break;
	}
}

/* --- message data ------------------------------------------------------ */

static void
session_data_done(struct session *s)
{
	if (s->state == ST_DATA_DISCARD) {
		const char *why = s->data_reply[0] ? s->data_reply :
		    "451 4.3.0 Message refused";

		/* The message never ended upstream: drop that connection. */
		if (s->u.open && s->u.txn_open)
			upstream_close(&s->u);
		log_info(s->id, "message-refused", "reply", why, NULL);
		session_reply(s, "%s", why);
		if (!s->closed) {
			session_txn_reset(s);
			session_enter(s, ST_IDLE);
		}
		return;
	}
	session_enter(s, ST_DOT);
	upstream_dot(&s->u);
}

/* Input bytes rewritten per step with bare_line_endings = normalise. */
#define SESSION_NORMALISE_IN 4096

/*
 * bare_line_endings = normalise: the n message bytes at p go upstream
 * rewritten.  The caller made room for SMTP_NORMALISE_OUT_MAX(n).  A
 * message the scanner or the normaliser is about to refuse (a NUL, an
 * over-long line) sends nothing more.  -1: the bytes could not be
 * queued (out of memory).
 */
static int
session_data_normalise(struct session *s, const char *p, size_t n)
{
	char out[SMTP_NORMALISE_OUT_MAX(SESSION_NORMALISE_IN)];
	size_t len;

	if (s->scan.nul || s->scan.long_line)
		return 0;
	/* All n fit by construction; anything less would lose bytes. */
	if (smtp_normalise(&s->norm, p, n, out, sizeof(out), &len) != n)
		return -1;
	if (s->norm.long_line || len == 0)
		return 0;
	return upstream_body(&s->u, out, len);
}

/* Once per message, so operators see what was changed. */
static void
session_data_log_normalised(struct session *s)
{
	char lf[24], cr[24], dots[24];

	if (s->norm.bare_lf == 0 && s->norm.bare_cr == 0)
		return;
	snprintf(lf, sizeof(lf), "%lu", s->norm.bare_lf);
	snprintf(cr, sizeof(cr), "%lu", s->norm.bare_cr);
	snprintf(dots, sizeof(dots), "%lu", s->norm.dots);
	log_info(s->id, "normalised", "bare_lf", lf, "bare_cr", cr,
	    "dots_added", dots, NULL);
}

/* Move message bytes from the MTA to the upstream, within its buffer. */
static void
session_data(struct session *s)
{
	struct buf *in = &s->down.in;
	int normalise = s->cfg->bare_line_endings == CONFIG_BARE_NORMALISE;
	size_t room, n, safe, size;
	int done = 0, failed, bare, longl;

	while (buf_len(in) > 0 && !done) {
		if (s->state == ST_DATA) {
			room = upstream_body_room(&s->u);
			/* Rewritten, n bytes may take 2n + 1: all must fit. */
			if (normalise) {
				room = room < 3 ? 0 : (room - 1) / 2;
				if (room > SESSION_NORMALISE_IN)
					room = SESSION_NORMALISE_IN;
			}
			if (room == 0)
				return; /* resumed on the upstream's DRAINED */
		} else
			room = buf_len(in);
		n = smtp_data_scan(&s->scan, buf_head(in),
		    room < buf_len(in) ? room : buf_len(in), &done, &safe);
		s->txn.size = s->scan.total;
		if (s->state == ST_DATA) {
			dsn_txn_data(s->dsn, buf_head(in), n);
			failed = 0;
			if (normalise)
				failed = session_data_normalise(s,
				    buf_head(in), n);
			else if (upstream_body(&s->u, buf_head(in), safe) == -1)
				failed = 1; /* out of memory: never a gap */
			/* What the upstream gets: with normalise, rewritten. */
			size = s->scan.total;
			if (normalise)
				size += s->norm.bare_lf + s->norm.dots;
			bare = !normalise &&
			    (s->scan.bare_lf || s->scan.bare_cr);
			longl = s->scan.long_line || s->norm.long_line;
			if (failed) {
				snprintf(s->data_reply, sizeof(s->data_reply),
				    "451 4.3.0 Out of memory");
				session_enter(s, ST_DATA_DISCARD);
			} else if (longl || s->scan.nul || bare) {
				snprintf(s->data_reply, sizeof(s->data_reply),
				    "%s", longl ?
				    "550 5.6.0 Message has a line longer than "
				    "998 characters" : s->scan.nul ?
				    "550 5.6.0 Message contains a NUL byte" :
				    "550 5.6.0 Message contains a bare CR or "
				    "LF; lines must end in CRLF");
				session_enter(s, ST_DATA_DISCARD);
			} else if (size > (size_t)s->cfg->max_message_size) {
				snprintf(s->data_reply, sizeof(s->data_reply),
				    "552 5.3.4 Message size exceeds fixed "
				    "maximum message size");
				session_enter(s, ST_DATA_DISCARD);
			}
			/* Queued bytes keep the upstream's deadline fresh. */
			upstream_body(&s->u, NULL, 0);
		}
		if (memchr(buf_head(in), '\n', n) != NULL)
			s->down_progress = 1;
		buf_consume(in, n);
	}
	if (done) {
		if (normalise && s->state == ST_DATA)
			session_data_log_normalised(s);
		session_data_done(s);
	}
}

/* --- the state machine's core -------------------------------------------- */

/* Derive what each side should be doing from the state, in one place. */
static void
session_update_io(struct session *s)
{
	int reading;

	if (s->closed)
		return;
	reading = sess_states[s->state].reads &&
	    buf_room(&s->down.out) >= 1024;
	conn_set_reading(&s->down, reading);
	if (reading && (s->down_progress || !s->down_timed)) {
		conn_deadline(&s->down, s->cfg->timeouts.client);
		s->down_timed = 1;
	} else if (!reading && s->state != ST_CLOSING) {
		conn_deadline(&s->down, 0);
		s->down_timed = 0;
	}
	s->down_progress = 0;
	upstream_resume(&s->u);
}

static void
session_enter(struct session *s, enum sess_state st)
{
	if (s->closed)
		return;
	if (s->state != st)
		log_debug(s->id, "state", "from", sess_states[s->state].name,
		    "to", sess_states[st].name, NULL);
	s->state = st;
	if (st == ST_CLOSING) {
		upstream_free(&s->u);
		conn_set_reading(&s->down, 0);
		conn_deadline(&s->down, 5);
		if (buf_len(&s->down.out) == 0)
			session_close(s);
		return;
	}
	/*
	 * Back to the MTA's turn: upstream bytes still unread came before
	 * anything asked for them (a reply ahead of its command, a second
	 * reply to one); no command may take them for its reply (a 354 and
	 * a 250 in one segment must not answer the final dot).  The
	 * upstream checks its own transitions the same way.
	 */
	if (sess_states[st].reads && upstream_check_unread(&s->u))
		return;
	session_update_io(s);
	/* Pipelined commands may already wait in the buffer. */
	if (!s->processing && sess_states[st].reads &&
	    buf_len(&s->down.in) > 0)
		session_process_input(s);
}

/* Work through what the MTA has sent, as far as the state allows. */
static void
session_process_input(struct session *s)
{
	struct buf *in = &s->down.in;
	char line[SMTP_CMD_LINE_MAX + 1];
	ssize_t n;
	int bare;

	if (s->processing)
		return; /* the outer call goes on with the new state */
	s->processing = 1;
	while (!s->closed && sess_states[s->state].reads &&
	    buf_len(in) > 0) {
		if (s->state == ST_DATA_HOLD) {
			session_tlsno_look(s);
			if (s->state == ST_DATA_HOLD)
				break; /* more bytes to come */
			continue;
		}
		if (s->state == ST_DATA || s->state == ST_DATA_DISCARD) {
			size_t before = buf_len(in);

			session_data(s);
			if (buf_len(in) == before)
				break;
			continue;
		}
		if (buf_room(&s->down.out) < 1024)
			break; /* resumed when the MTA reads its replies */
		n = smtp_line_length(buf_head(in), buf_len(in),
		    SMTP_CMD_LINE_MAX, &bare);
		if (n == 0)
			break;
		if (n == -1) {
			const char *lf;

			/* Keep the connection in sync: drop to the next LF. */
			if (!s->skip_line) {
				session_reply(s,
				    "500 5.5.2 Line too long (max %d octets)",
				    SMTP_CMD_LINE_MAX);
				if (session_bad_command(s))
					break;
			}
			lf = memchr(buf_head(in), '\n', buf_len(in));
			s->skip_line = lf == NULL;
			buf_consume(in, lf != NULL ?
			    (size_t)(lf - buf_head(in)) + 1 : buf_len(in));
			continue;
		}
		if (s->skip_line) {
			s->skip_line = 0;
			buf_consume(in, (size_t)n);
			continue;
		}
		if (bare) {
			/*
			 * Only CRLF ends a command (RFC 5321 2.3.8): a bare
			 * LF does not split it in two (SMTP smuggling); the
			 * whole line up to CRLF is refused once.
			 */
			const char *crlf = memmem(buf_head(in), buf_len(in),
			    "\r\n", 2);

			if (crlf == NULL && buf_len(in) < SMTP_CMD_LINE_MAX)
				break; /* its CRLF may still come */
			buf_consume(in, crlf != NULL ?
			    (size_t)(crlf - buf_head(in)) + 2 : buf_len(in));
			s->skip_line = crlf == NULL;
			s->down_progress = 1;
			session_reply(s, "500 5.5.2 Command line must end in "
			    "CRLF, not a bare LF");
			session_bad_command(s);
			continue;
		}
		/* Consumed before it runs: handlers may change the state. */
		memcpy(line, buf_head(in), (size_t)n);
		buf_consume(in, (size_t)n);
		s->down_progress = 1;
		session_command(s, line, (size_t)n);
	}
	s->processing = 0;
	if (!s->closed)
		session_update_io(s);
}

static void
session_down_event(struct conn *c, enum conn_event ev, void *arg)
{
	struct session *s = arg;

	(void)c;
	switch (ev) {
	case CONN_EV_INPUT:
		session_process_input(s);
		break;
	case CONN_EV_DRAINED:
		if (s->state == ST_CLOSING)
			session_close(s);
		else
			session_process_input(s);
		break;
	case CONN_EV_EOF:
		if (s->state == ST_DATA || s->state == ST_DOT)
			log_info(s->id, "client-gone", "state",
			    sess_states[s->state].name, NULL);
		session_close(s);
		break;
	case CONN_EV_ERROR:
		log_info(s->id, "client-error", "reason", s->down.error, NULL);
		session_close(s);
		break;
	case CONN_EV_TIMEOUT:
		if (s->state == ST_CLOSING) {
			session_close(s);
			break;
		}
		log_info(s->id, "client-timeout", "state",
		    sess_states[s->state].name, NULL);
		session_reply(s, "421 4.4.2 %s Timeout, closing",
		    s->cfg->hostname);
		if (!s->closed)
			session_enter(s, ST_CLOSING);
		break;
	case CONN_EV_CONNECTED:
	case CONN_EV_TLS_READY:
		break;
	}
}

/* --- life cycle -------------------------------------------------------- */

static void
proxy_reap(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct proxy *px = w->data;
	struct session *s;

	(void)loop;
	(void)revents;
	while ((s = px->dead) != NULL) {
		px->dead = s->next;
		conn_free(&s->down);
		runtime_release(s->rt);
		upstream_free(&s->u);
		dsn_txn_free(s->dsn);
		free(s->sts.mx);
		free(s);
	}
}

void
proxy_sessions_init(struct proxy *px)
{
	ev_prepare_init(&px->reaper, proxy_reap);
	px->reaper.data = px;
	ev_prepare_start(px->loop, &px->reaper);
	ev_unref(px->loop); /* the reaper alone keeps nothing alive */
	upcache_init(&px->cache, px->loop);
}

/*
 * Transparent mode: read where the MTA meant to go.  A connection made to
 * our own port directly has no other destination and would loop.
 */
static int
session_original_dst(struct session *s)
{
	socklen_t len;

	if (conn_original_dst(&s->down, &s->u.orig, &len) == -1)
		return -1;
	s->u.transparent = 1;
	sockaddr_str((struct sockaddr *)&s->u.orig, s->u.orig_str,
	    sizeof(s->u.orig_str));
	s->u.orig_port = ntohs(((struct sockaddr_in *)&s->u.orig)->sin_port);
	log_info(s->id, "original-destination", "addr", s->u.orig_str, NULL);
	return 0;
}

/* Open sessions from one client address (this one included). */
static int
session_count_client(struct proxy *px, const struct sockaddr_storage *a)
{
	struct session *s;
	int n = 0;

	for (s = px->live; s != NULL; s = s->next)
		n += sockaddr_same(&s->down.peer, a, 0);
	return n;
}

void
session_accept(struct proxy *px, int fd)
{
	struct session *s;
	char peer[INET6_ADDRSTRLEN], sid[24];
	int allowed;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return;
	}
	s->px = px;
	s->rt = px->rt;
	s->rt->refs++;
	s->cfg = s->rt->cfgp;
	s->id = ++px->next_sid;
	s->state = ST_HELO;
	if (conn_init_fd(&s->down, px->loop, fd, SESSION_BUFSIZE,
	    session_down_event, s) == -1) {
		close(fd);
		runtime_release(s->rt);
		free(s);
		return;
	}
	upstream_init(&s->u, px, s->rt, s->id, &s->route, &s->txn, &s->sts,
	    session_on_upstream, s);
	s->txn.client = s->down.peerlen ? (struct sockaddr *)&s->down.peer :
	    NULL;
	s->next = px->live;
	px->live = s;
	px->nsessions++;
	metrics_inc("mxtls_sessions_total", "", 1);
	metrics_add("mxtls_sessions_current", "", 1);
	session_txn_reset(s);
	conn_peer_str(&s->down, peer, sizeof(peer));
	snprintf(sid, sizeof(sid), "%lu", s->id);
	allowed = config_client_allowed(s->cfg,
	    (struct sockaddr *)&s->down.peer);
	log_info(s->id, "connect", "client", peer, "allowed",
	    allowed ? "yes" : "no", NULL);
	if (!allowed) {
		metrics_inc("mxtls_sessions_refused_total",
		    "reason=\"not_allowed\"", 1);
		session_reply(s, "554 5.7.1 %s does not relay for %s",
		    s->cfg->hostname, peer);
		session_enter(s, ST_CLOSING);
		return;
	}
	if (s->cfg->mode == CONFIG_MODE_TRANSPARENT &&
	    session_original_dst(s) == -1) {
		session_reply(s, "554 5.3.5 %s: no original destination: "
		    "this port takes redirected connections only",
		    s->cfg->hostname);
		session_enter(s, ST_CLOSING);
		return;
	}
	if (s->cfg->max_sessions_per_client > 0 &&
	    session_count_client(px, &s->down.peer) >
	    s->cfg->max_sessions_per_client) {
		metrics_inc("mxtls_sessions_refused_total",
		    "reason=\"per_client\"", 1);
		session_reply(s, "421 4.7.0 %s Too many sessions from %s, try "
		    "later", s->cfg->hostname, peer);
		session_enter(s, ST_CLOSING);
		return;
	}
	if (px->nsessions > s->cfg->max_sessions) {
		metrics_inc("mxtls_sessions_refused_total",
		    "reason=\"max_sessions\"", 1);
		session_reply(s, "421 4.3.2 %s Too many sessions, try later",
		    s->cfg->hostname);
		session_enter(s, ST_CLOSING);
		return;
	}
	session_reply(s, "220 %s ESMTP mxtls", s->cfg->hostname);
	session_enter(s, ST_HELO);
}

int
session_drain_over(struct proxy *px, const char *reply)
{
	struct session *s, *next;
	int waiting = 0;

	px->drain_over = 1;
	for (s = px->live; s != NULL; s = next) {
		next = s->next;
		/*
		 * Its final dot went upstream: a 421 now could be followed
		 * by the server's 250, and the MTA would send it again.  The
		 * reply is due within data_done_timeout.
		 */
		if (s->state == ST_DOT) {
			waiting++;
			continue;
		}
		if (s->state != ST_CLOSING)
			session_reply(s, "%s", reply);
		if (!s->closed)
			session_enter(s, ST_CLOSING);
	}
	return waiting;
}

void
session_close_all(struct proxy *px, const char *reply)
{
	struct session *s, *next;

	for (s = px->live; s != NULL; s = next) {
		next = s->next;
		if (s->state != ST_CLOSING)
			session_reply(s, "%s", reply);
		if (!s->closed)
			session_enter(s, ST_CLOSING);
	}
}

