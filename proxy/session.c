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
#include "dane.h"
#include "dns.h"
#include "dsn.h"
#include "failure.h"
#include "log.h"
#include "metrics.h"
#include "session.h"
#include "smtp.h"
#include "state.h"
#include "sts.h"
#include "tls.h"
#include "tlsrpt.h"
#include "upcache.h"

#define SESSION_BUFSIZE 16384
#define SESSION_MAX_RCPT 1000
#define SESSION_ROUTE_KEY_LEN 64 /* hex SHA-256 */
#define SESSION_HOSTS_MAX 8	/* MX hosts tried per delivery (Postfix: 5) */
#define SESSION_ADDRS_MAX 4	/* addresses tried per MX host */
#define SESSION_PARAMS_MAX 512
#define SESSION_REUSE_TIMEOUT 10 /* seconds for a cached connection's RSET */

/*
 * Downstream-driven states read commands (or message data) from the MTA;
 * upstream-driven states (ST_UP_*) wait for the remote server and leave
 * the MTA's pipelined commands unread until the reply has been relayed.
 */
enum sess_state {
	ST_HELO,	 /* greeted; waiting for EHLO/HELO */
	ST_IDLE,	 /* no transaction */
	ST_MAIL,	 /* MAIL accepted locally; waiting for RCPT */
	ST_RCPT,	 /* at least one RCPT relayed; RCPT or DATA next */
	ST_UP_RESOLVE,	 /* DNS for the next hop */
	ST_UP_CONNECT,	 /* TCP connect */
	ST_UP_GREETING,	 /* waiting for 220 */
	ST_UP_EHLO,	 /* EHLO (or HELO) before TLS */
	ST_UP_STARTTLS,	 /* waiting for 220 to STARTTLS */
	ST_UP_TLS,	 /* handshake */
	ST_UP_EHLO_TLS,	 /* EHLO inside TLS */
	ST_UP_MAIL,	 /* MAIL FROM relayed */
	ST_UP_RCPT,	 /* RCPT TO relayed */
	ST_UP_DATA,	 /* DATA relayed; waiting for 354 */
	ST_DATA,	 /* streaming the message upstream */
	ST_DATA_DISCARD, /* reading the message to its end; it will be refused */
	ST_DATA_HOLD,	 /* message bytes wait unread for their header to
			    say "TLS-Required: No" or not */
	ST_UP_DATA_END,	 /* waiting for the reply to the final dot */
	ST_UP_RSET,	 /* RSET relayed */
	ST_UP_REUSE,	 /* RSET on a connection from the cache: alive? */
	ST_STS_WAIT,	 /* the recipient domain's MTA-STS policy is looked up */
	ST_CLOSING,	 /* last reply queued; close when written */
};

static const char *const sess_state_names[] = {
	[ST_HELO] = "helo",
	[ST_IDLE] = "idle",
	[ST_MAIL] = "mail",
	[ST_RCPT] = "rcpt",
	[ST_UP_RESOLVE] = "up-resolve",
	[ST_UP_CONNECT] = "up-connect",
	[ST_UP_GREETING] = "up-greeting",
	[ST_UP_EHLO] = "up-ehlo",
	[ST_UP_STARTTLS] = "up-starttls",
	[ST_UP_TLS] = "up-tls",
	[ST_UP_EHLO_TLS] = "up-ehlo-tls",
	[ST_UP_MAIL] = "up-mail",
	[ST_UP_RCPT] = "up-rcpt",
	[ST_UP_DATA] = "up-data",
	[ST_DATA] = "data",
	[ST_DATA_DISCARD] = "data-discard",
	[ST_DATA_HOLD] = "data-hold",
	[ST_UP_DATA_END] = "up-data-end",
	[ST_UP_RSET] = "up-rset",
	[ST_UP_REUSE] = "up-reuse",
	[ST_STS_WAIT] = "sts-wait",
	[ST_CLOSING] = "closing",
};

/*
 * Names a certificate may carry, from an MTA-STS policy (all its patterns:
 * a host matching the last one is as permitted as one matching the first)
 * or (transparent mode) the MX hosts that resolve to the original
 * destination.  A session needs them only sometimes, so they are
 * allocated then, in one piece of the size needed.
 */
struct session_names {
	int cap;
	const char **p;		    /* p[i] is name[i] */
	char (*name)[DNS_NAME_MAX];
};

/* The most names a certificate is checked against: the host's own, the
 * transparent destination's MX names, the policy's mx patterns. */
#define SESSION_NAMES_MAX (1 + POLICY_MX_MAX + MTASTS_MX_MAX)

/* Room for cap names in one allocation; NULL when out of memory. */
static struct session_names *
session_names_new(int cap)
{
	struct session_names *n;
	int i;

	n = calloc(1, sizeof(*n) + (size_t)cap * (sizeof(*n->p) +
	    DNS_NAME_MAX));
	if (n == NULL)
		return NULL;
	n->cap = cap;
	n->p = (const char **)(n + 1);
	n->name = (char (*)[DNS_NAME_MAX])(n->p + cap);
	for (i = 0; i < cap; i++)
		n->p[i] = n->name[i];
	return n;
}

/* One candidate next hop: an MX host, the domain itself, or nexthop. */
struct hop {
	char name[DNS_NAME_MAX]; /* empty for a literal address */
	int port;
	/*
	 * Named by the recipient domain's DNS (an MX, or the implicit MX):
	 * its addresses must be public unless allow_private_mx says
	 * otherwise.  A nexthop or the transparent destination is the
	 * operator's choice.
	 */
	int from_dns;
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

	/* the transaction, as the MTA sees it */
	char mail_from[SMTP_PATH_MAX + 1];
	char mail_params[SESSION_PARAMS_MAX];
	char rcpt[SMTP_PATH_MAX + 1]; /* the RCPT being relayed */
	char rcpt_params[SESSION_PARAMS_MAX];
	int nrcpt_ok;
	int nrcpt_tried;
	int nrcpt_tempfail; /* refused with 4xx: the MTA will try again */
	int have_route;
	char route_domain[DNS_NAME_MAX];
	char route_key[SESSION_ROUTE_KEY_LEN + 1]; /* session_route_id */
	struct policy_decision dec;
	/*
	 * MAIL ... REQUIRETLS (RFC 8689): dec.profile is then req_profile,
	 * a copy of the runtime's profile that demands verified TLS.
	 */
	int requiretls;
	struct policy_profile req_profile;
	/* The runtime's profile dec.profile copies (its SSL_CTX); NULL
	 * when dec.profile is the runtime's own. */
	const struct policy_profile *prof_orig;
	/*
	 * "TLS-Required: No" (RFC 8689 section 5).  When the route's TLS
	 * policy fails for the transaction's first recipient, that
	 * recipient is held (accepted for now, the only one: PENDING); at
	 * DATA the message's header decides (HOLD); with the header the
	 * route is tried again without the policy (RUN), without it the
	 * message gets tlsno_reply, the answer it would have had at once.
	 */
	enum { TLSNO_NONE, TLSNO_PENDING, TLSNO_HOLD, TLSNO_RUN } tlsno;
	int tls_required_no; /* this message goes on its TLS-Required: No */
	char tlsno_reply[512];
	struct policy_decision dec_base; /* the route's, before MTA-STS */
	struct policy_profile tlsno_profile;
	char txn_fail[512]; /* reply for the rest of the transaction, if set */
	int attempt_logged; /* the route's attempt has its summary line */
	struct smtp_data_scan scan;
	struct smtp_normalise norm; /* bare_line_endings = normalise */
	struct dsn_txn *dsn; /* "relayed" notices owed; NULL: none can be */
	char data_reply[512]; /* why the message in ST_DATA_DISCARD is refused */

	/* the upstream */
	struct conn up;
	int up_open;	  /* up holds a live connection */
	int up_txn;	  /* a MAIL transaction is open upstream */
	char up_key[SESSION_ROUTE_KEY_LEN + 1]; /* route it serves */
	char up_ckey[UPCACHE_KEY_LEN + 1]; /* ... as the cache knows it */
	double up_opened; /* clock_mono() at connect */
	int up_reused;	  /* taken from the connection cache */
	int up_late;	  /* ... per address, after the DANE verdict */
	int up_await;	  /* a command was sent and its reply is due */
	int up_body;	  /* message bytes went up, the final dot not yet */
	/*
	 * The MTA waits for the reply to its RCPT from t_rcpt (clock_mono;
	 * 0: it waits for nothing) for at most rcpt_timeout; up_capped: the
	 * upstream deadline running now is that limit, not the phase's own.
	 */
	double t_rcpt;
	int up_capped;
	/*
	 * The reply being read; allocated while one is arriving, so an idle
	 * session does not carry its 8 KiB (issue 7, W3).
	 */
	struct smtp_reply_parser *rp;
	struct dns_query *dq;
	struct hop hops[SESSION_HOSTS_MAX];
	int nhops, hop_i;
	struct sockaddr_storage addrs[SESSION_ADDRS_MAX];
	int naddrs, addr_i;
	char up_host[DNS_NAME_MAX]; /* the name whose address we contacted */
	char up_addr[INET6_ADDRSTRLEN];
	int up_port;
	struct smtp_ehlo up_ehlo;
	int up_helo; /* EHLO was refused: HELO sent, no extensions */
	int up_tls;
	struct tls_facts facts;
	/*
	 * "ok", "fail", "none" (not checked), "-"; for a DANE host
	 * "dane-ee", "dane-ta" or "dane-encrypt" (TLS, no authentication)
	 */
	const char *verify;
	char last_error[320];

	/*
	 * The failure table's verdict for the route: from the first host
	 * (in MX order) that could not be used over TLS.  Applied when no
	 * host delivered over TLS.
	 */
	enum failure_action verdict; /* FAILURE_CONTACT: none yet */
	enum failure_event verdict_event;
	char verdict_reason[320];
	char verdict_host[DNS_NAME_MAX];
	struct sockaddr_storage verdict_ss;
	int verdict_port;
	time_t verdict_retry; /* FAILURE_DEFER: the earliest retry */
	int fallback;	      /* this connection is the clear fallback */

	/*
	 * DANE (RFC 7672) for the host being tried: the DNSSEC standing of
	 * its MX and address answers, its TLSA records, and what they make
	 * of it.  A DANE host's failures defer the route (451 4.7.5) unless
	 * an explicit mandatory match hands them to the failure table.
	 */
	enum dnssec_status mx_sec;
	enum dnssec_status addr_sec;
	enum dane_host up_dane;
	struct dane_tlsa_set up_tlsa;
	char tlsa_base[DNS_NAME_MAX];  /* where the TLSA records were found */
	char tlsa_retry[DNS_NAME_MAX]; /* the name before CNAMEs, still to ask */
	char verified_by[80];	       /* session resumption: "dane:FP" */
	const char *dane_why;
	int dane_tainted; /* an MX host's DNSSEC lookups were bogus or failed */
	int dane_failed;  /* a DANE host could not be used */
	int dane_required; /* no TLSA, dane = only, judged by the table */
	char dane_error[400];
	/*
	 * Transparent mode: the first MX host of the recipient domain whose
	 * secure addresses include the original destination (its TLSA name
	 * after a CNAME in tp_dane_base); "" when there is none.
	 */
	char tp_dane[DNS_NAME_MAX];
	char tp_dane_base[DNS_NAME_MAX];

	/*
	 * Transparent mode: where the MTA meant to connect, and which MX
	 * names of the recipient domain resolve to that address (the names
	 * the certificate may carry).
	 */
	double t_phase; /* monotonic start of a connect or handshake */

	/*
	 * MTA-STS (RFC 8461) of the last recipient domain looked up: an
	 * enforce policy makes the route mandatory + strict to its mx, and
	 * never fails permanently (docs/behaviour.md section 6).
	 */
	struct sts_query *sts_q;
	struct policy_decision sts_pending; /* the RCPT waiting for it */
	char sts_domain[DNS_NAME_MAX];
	enum mtasts_mode sts_mode;
	struct session_names *sts_mx; /* NULL until a policy names mx */
	int sts_nmx;
	long sts_max_age; /* for TLS reports; -1: no policy */
	int route_sts; /* the route's profile comes from MTA-STS enforce */
	int route_sts_testing; /* MTA-STS testing: report what would fail */

	int transparent;
	struct sockaddr_storage orig;
	char orig_str[INET6_ADDRSTRLEN];
	int orig_port;
	struct session_names *tp_names; /* NULL until one is found */
	int ntp_names;
	int tp_i;
};

static void session_enter(struct session *s, enum sess_state st);
static void session_process_input(struct session *s);
static void session_up_next_hop(struct session *s);
static void session_dane_count(enum tls_result r);
static void session_dane_host(struct session *s);
static int session_dane_by_table(const struct session *s);
static int session_dane_host_tls(const struct session *s);
static const char *session_dane_name(const struct session *s);
static void session_tlsrpt(struct session *s, enum tls_result r, int dane);
static void session_dane_note(struct session *s, enum tls_result r,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void session_up_try_addr(struct session *s);
static void session_up_open(struct session *s);
static void session_up_failed(struct session *s, const char *reason);
static void session_up_reuse_failed(struct session *s, const char *reason);
static void session_up_out_of_time(struct session *s);
static void session_up_cache_put(struct session *s);
static void session_up_release(struct session *s);
static void session_up_send(struct session *s, enum sess_state next,
    double timeout, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void session_rcpt_route(struct session *s,
    struct policy_decision *dec);
static int session_reads_downstream(enum sess_state st);
static void session_up_connect(struct session *s,
    const struct sockaddr_storage *ss, socklen_t len);
static void session_up_event(struct conn *c, enum conn_event ev, void *arg);
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
	if (s->dq != NULL)
		dns_cancel(s->dq);
	s->dq = NULL;
	if (s->sts_q != NULL)
		sts_cancel(s->sts_q);
	s->sts_q = NULL;
	conn_close(&s->down);
	session_up_cache_put(s);
	session_up_release(s);
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

	s->t_rcpt = 0;
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

	s->t_rcpt = 0;
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

/* The first line of a reply without CRLF, for logs and reply texts. */
static void
reply_summary(const struct smtp_reply *r, char *dst, size_t len)
{
	const char *t;
	size_t n;

	if (smtp_reply_line(r, 0, &t, &n) == -1)
		n = 0;
	snprintf(dst, len, "%d %.*s", r->code, (int)n, n ? t : "");
}

static const char *
session_up_where(struct session *s, char *dst, size_t len)
{
	if (s->up_host[0] != '\0')
		snprintf(dst, len, "%s[%s]:%d", s->up_host, s->up_addr,
		    s->up_port);
	else
		snprintf(dst, len, "[%s]:%d", s->up_addr, s->up_port);
	return dst;
}

/* The upstream's name for logs: the host, or in transparent mode the MX
 * name that resolves to the original destination. */
static const char *
session_up_name(const struct session *s)
{
	if (s->up_host[0] != '\0')
		return s->up_host;
	if (s->transparent && s->ntp_names > 0)
		return s->tp_names->name[0];
	return NULL;
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
	const char *name = session_up_name(s);
	char how[DNS_NAME_MAX + 96];

	/* A literal next hop: the name its certificate was verified for. */
	if (name == NULL)
		name = s->up_tls && s->facts.name_ok ? s->facts.matched :
		    s->up_addr;
	if (s->up_tls)
		snprintf(how, sizeof(how), "[mxtls: %s %s %s]",
		    s->facts.version, strcmp(s->verify, "ok") == 0 ?
		    "verified" : strcmp(s->verify, "dane-ee") == 0 ||
		    strcmp(s->verify, "dane-ta") == 0 ? "verified by DANE" :
		    "unverified", name);
	else
		snprintf(how, sizeof(how), "[mxtls: plaintext, %s, %s]",
		    s->fallback ? "after a TLS failure" :
		    s->dec.profile->tls == POLICY_TLS_OFF ? "TLS off by policy" :
		    "no STARTTLS", name);
	/* Should it not fit (it always does), the reply goes as it came. */
	smtp_reply_append(&fin, how);
	session_relay_reply(s, &fin);
}

/* The one summary line per delivery attempt (docs/behaviour.md section 3). */
static void
session_log_delivery(struct session *s, const char *outcome,
    const char *reply, const char *reason)
{
	char port[8], nrcpt[12], size[24], labels[160], source[600];

	/* Attempts that lead on to another (a fallback) are not outcomes. */
	if (strcmp(outcome, "tls-failed") != 0)
		metrics_inc("mxtls_deliveries_total",
		    metrics_labels(labels, sizeof(labels), "outcome", outcome,
		    "profile", s->dec.profile ? s->dec.profile->name : "none",
		    NULL), 1);
	if (strcmp(outcome, "tls-failed") != 0 && s->requiretls)
		metrics_inc("mxtls_requiretls_total",
		    metrics_labels(labels, sizeof(labels), "outcome", outcome,
		    NULL), 1);
	if (strcmp(outcome, "tls-failed") != 0 && s->tls_required_no)
		metrics_inc("mxtls_tls_required_no_total",
		    metrics_labels(labels, sizeof(labels), "outcome", outcome,
		    NULL), 1);
	snprintf(port, sizeof(port), "%d", s->up_port);
	snprintf(nrcpt, sizeof(nrcpt), "%d", s->nrcpt_ok);
	/* Where the profile came from: MTA-STS, a match, or the default. */
	if (s->route_sts)
		snprintf(source, sizeof(source), "mta-sts");
	else if (s->dec.match != NULL)
		snprintf(source, sizeof(source), "%s:%d [match %s]",
		    s->dec.match->origin.file ? s->dec.match->origin.file : "",
		    s->dec.match->origin.line, s->dec.match->pattern);
	else
		snprintf(source, sizeof(source), "default");
	snprintf(size, sizeof(size), "%zu", s->scan.total);
	if (strcmp(outcome, "tls-failed") != 0)
		s->attempt_logged = 1;
	log_info(s->id, "delivery", "outcome", outcome, "rcpt_domain",
	    s->route_domain, "mx", session_up_name(s), "addr",
	    s->up_addr[0] ? s->up_addr : NULL, "port",
	    s->up_addr[0] ? port : NULL, "tls",
	    s->up_tls ? s->facts.version : "none", "cipher",
	    s->up_tls ? s->facts.cipher : NULL, "verify", s->verify,
	    "verify_reason",
	    s->up_tls && s->facts.result != TLS_RESULT_OK ? s->facts.reason :
	    NULL, "result",
	    s->up_tls ? tls_result_name(s->facts.result) : NULL, "dnssec",
	    s->have_route && s->dec.nexthop == NULL && !s->transparent ?
	    dnssec_status_name(dnssec_status_worst(s->mx_sec,
	    s->addr_sec)) : NULL, "profile",
	    s->dec.profile != NULL ? s->dec.profile->name : NULL,
	    "policy_source", s->have_route ? source : NULL, "fallback",
	    s->fallback ? "yes" : NULL, "reused", s->up_reused ? "yes" : NULL,
	    "requiretls", s->requiretls ? "yes" : NULL,
	    "tls_required_no", s->tls_required_no ? "yes" : NULL,
	    "nrcpt", nrcpt, "size", size, "reply",
	    reply, "reason",
	    reason == NULL && s->fallback ? s->verdict_reason : reason, NULL);
}

/* --- the transaction ---------------------------------------------------- */

static void
session_txn_reset(struct session *s)
{
	s->mail_from[0] = '\0';
	s->mail_params[0] = '\0';
	s->requiretls = 0;
	s->prof_orig = NULL;
	s->tlsno = TLSNO_NONE;
	s->tls_required_no = 0;
	s->tlsno_reply[0] = '\0';
	s->nrcpt_ok = 0;
	s->nrcpt_tried = 0;
	s->nrcpt_tempfail = 0;
	s->have_route = 0;
	s->route_sts = 0;
	s->route_sts_testing = 0;
	s->route_domain[0] = '\0';
	s->route_key[0] = '\0';
	s->txn_fail[0] = '\0';
	s->attempt_logged = 0;
	s->verdict = FAILURE_CONTACT;
	s->data_reply[0] = '\0';
	dsn_txn_free(s->dsn);
	s->dsn = NULL;
	memset(&s->dec, 0, sizeof(s->dec));
	smtp_data_scan_init(&s->scan);
	smtp_normalise_init(&s->norm);
}

/*
 * Close the upstream connection.  One in a clean state (no reply due,
 * not inside a message, nothing unread, no error) says QUIT first (RFC
 * 5321 4.1.1.10), so the server does not log a lost connection; the
 * cache waits for its 221, briefly, and the session goes on at once.
 */
static void
session_up_release(struct session *s)
{
	if (!s->up_open)
		return;
	if (!s->up_await && !s->up_body && !s->up.eof &&
	    s->up.error[0] == '\0' && buf_len(&s->up.in) == 0 &&
	    (s->up.state == CONN_OPEN || s->up.state == CONN_TLS))
		upcache_quit(&s->px->cache, &s->up);
	else
		conn_free(&s->up);
	s->up_open = 0;
}

static void
session_up_close(struct session *s)
{
	if (s->dq != NULL) {
		dns_cancel(s->dq);
		s->dq = NULL;
	}
	session_up_release(s);
	free(s->rp);
	s->rp = NULL;
	s->up_txn = 0;
	s->up_await = 0;
	s->up_body = 0;
	s->fallback = 0;
	s->up_key[0] = '\0';
	s->up_ckey[0] = '\0';
	s->up_reused = 0;
}

static socklen_t
session_ss_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
}

/*
 * SHA-256 (hex, dst[len]) of head followed by each name and a comma: the
 * fingerprint of a key whose list of names may be long.  -1 when out of
 * memory (dst is then "", which no stored key equals).
 */
static int
session_key_hash(const char *head, const char *const *names, int n,
    char *dst, size_t len)
{
	char *buf = NULL;
	size_t blen = 0;
	FILE *f;
	int i;

	dst[0] = '\0';
	if ((f = open_memstream(&buf, &blen)) == NULL)
		return -1;
	fputs(head, f);
	for (i = 0; i < n; i++) {
		fputs(names[i], f);
		fputc(',', f);
	}
	if (fclose(f) == EOF) {
		free(buf);
		return -1;
	}
	tls_sha256_hex(buf, dst, len);
	free(buf);
	return 0;
}

/*
 * The identity of a route, one for every use: recipients join the
 * transaction of the same route, an idle upstream of the session serves
 * the same route again, and the connection cache hands a connection only
 * to the same route.  It holds every fact the upstream's verification
 * depended on: next hop or domain (lower-cased: DNS names), the profile
 * by its exact name (names are case-sensitive), the permitted mx names,
 * the MTA-STS standing and, in transparent mode, the destination the MTA
 * dialled.  dst[SESSION_ROUTE_KEY_LEN + 1]; -1 out of memory.
 */
static int
session_route_id(const struct session *s, const struct policy_decision *d,
    int sts_enforce, int sts_testing, char *dst)
{
	char *head, *p;
	int r;

	if (asprintf(&head, "%s:%s|%s|%d|%d|%s|%d|", d->nexthop ? "nexthop" :
	    "domain", d->nexthop ? d->nexthop : d->domain, d->profile->name,
	    sts_enforce, sts_testing, s->transparent ? s->orig_str : "",
	    s->transparent ? s->orig_port : 0) == -1) {
		dst[0] = '\0';
		return -1;
	}
	for (p = head; *p != '|'; p++)
		*p = (char)tolower((unsigned char)*p);
	r = session_key_hash(head, d->mx, d->nmx, dst,
	    SESSION_ROUTE_KEY_LEN + 1);
	free(head);
	return r;
}

/*
 * DANE may apply to the route's hosts: a profile that wants it, TLS not
 * switched off, DNSSEC standing known, and hosts the recipient domain's
 * DNS names (MX, implicit MX, the transparent destination's MX): a
 * nexthop is the operator's choice.
 */
static int
session_route_dane(const struct session *s)
{
	const struct policy_profile *p = s->dec.profile;

	return s->cfg->dnssec != CONFIG_DNSSEC_OFF &&
	    p->dane != DANE_MODE_OFF && p->tls != POLICY_TLS_OFF &&
	    (s->dec.nexthop == NULL || s->transparent);
}

/*
 * What a cached connection may carry: one made under the same runtime (a
 * changed policy never reuses one verified under the old) for the same
 * route (session_route_id).  Where DANE may apply, also the host, its
 * address and port, their DNSSEC standing and the DANE verdict with the
 * TLSA records' fingerprint (verified_by): such a connection is taken
 * only after this session's own DNS lookups found the same facts.
 */
static void
session_cache_key(const struct session *s, char *dst, size_t len)
{
	char k[SESSION_ROUTE_KEY_LEN + DNS_NAME_MAX + INET6_ADDRSTRLEN + 160];

	if (session_route_dane(s))
		snprintf(k, sizeof(k), "%lu|%s|%s|%s|%d|%s|%s", s->rt->gen,
		    s->route_key, s->up_host, s->up_addr, s->up_port,
		    dnssec_status_name(dnssec_status_worst(s->mx_sec,
		    s->addr_sec)), s->verified_by);
	else
		snprintf(k, sizeof(k), "%lu|%s", s->rt->gen, s->route_key);
	tls_sha256_hex(k, dst, len);
}

/*
 * At the end of a session an upstream that is idle in a clean state (TLS
 * up and verified as the profile demands, no transaction, no reply due,
 * nothing unread) may serve the next session's transaction.
 */
static void
session_up_cache_put(struct session *s)
{
	struct upcache_info info;

	if (!s->up_open || !s->up_tls || s->fallback || s->up_txn ||
	    s->up_await || s->up_ckey[0] == '\0' || s->rp != NULL ||
	    s->px->draining || s->rt != s->px->rt ||
	    s->up.state != CONN_TLS || buf_len(&s->up.in) > 0 ||
	    buf_len(&s->up.out) > 0 ||
	    clock_mono() - s->up_opened > s->cfg->reuse_time)
		return;
	memset(&info, 0, sizeof(info));
	snprintf(info.host, sizeof(info.host), "%s", s->up_host);
	snprintf(info.addr, sizeof(info.addr), "%s", s->up_addr);
	info.port = s->up_port;
	info.ehlo = s->up_ehlo;
	info.helo = s->up_helo;
	info.facts = s->facts;
	info.verify = s->verify;
	info.opened = s->up_opened;
	upcache_put(&s->px->cache, s->up_ckey, &s->up, &info,
	    s->cfg->cache_time, s->cfg->cache_max);
	s->up_open = 0;
}

/*
 * Take a cached connection under the session's cache key, and ask it
 * with RSET whether it is still there.  0 when there is none.  Routes
 * without DANE ask before the DNS (the route is the whole key); DANE
 * routes ask per address, after the host's DANE verdict (late).
 */
static int
session_up_cache_take(struct session *s, int late)
{
	struct upcache_info info;
	char key[UPCACHE_KEY_LEN + 1];

	if (s->cfg->cache_max == 0 || s->cfg->cache_time <= 0 ||
	    session_route_dane(s) != late)
		return 0;
	session_cache_key(s, key, sizeof(key));
	if (!upcache_take(&s->px->cache, key, s->cfg->reuse_time, &s->up,
	    session_up_event, s, &info))
		return 0;
	s->up_late = late;
	s->up_open = 1;
	s->up_tls = 1;
	s->up_reused = 1;
	s->last_error[0] = '\0';
	s->verdict = FAILURE_CONTACT;
	snprintf(s->up_key, sizeof(s->up_key), "%s", s->route_key);
	snprintf(s->up_ckey, sizeof(s->up_ckey), "%s", key);
	snprintf(s->up_host, sizeof(s->up_host), "%s", info.host);
	snprintf(s->up_addr, sizeof(s->up_addr), "%s", info.addr);
	s->up_port = info.port;
	s->up_ehlo = info.ehlo;
	s->up_helo = info.helo;
	s->facts = info.facts;
	s->facts.resumed = 0;
	s->verify = info.verify;
	s->up_opened = info.opened;
	conn_set_reading(&s->up, 1);
	/* A live cached connection answers at once; a silent one is gone. */
	session_up_send(s, ST_UP_REUSE, s->cfg->timeouts.command <
	    SESSION_REUSE_TIMEOUT ? s->cfg->timeouts.command :
	    SESSION_REUSE_TIMEOUT, "RSET");
	return 1;
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
	if (!s->attempt_logged)
		session_log_delivery(s, s->txn_fail[0] == '4' ? "deferred" :
		    "failed", s->txn_fail, NULL);
	if (s->tlsno == TLSNO_RUN) {
		/* The MTA is past DATA: the answer waits for the dot. */
		snprintf(s->data_reply, sizeof(s->data_reply), "%s",
		    s->txn_fail);
		session_up_close(s);
		session_enter(s, ST_DATA_DISCARD);
		return;
	}
	session_reply(s, "%s", s->txn_fail);
	if (s->closed)
		return;
	session_enter(s, s->nrcpt_ok > 0 ? ST_RCPT : ST_MAIL);
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
	if (s->requiretls || s->tlsno != TLSNO_NONE || s->nrcpt_ok > 0 ||
	    (local && !s->cfg->honour_tls_required_no))
		return 0;
	snprintf(s->tlsno_reply, sizeof(s->tlsno_reply), "%s", reply);
	s->tlsno = TLSNO_PENDING;
	session_up_close(s);
	log_info(s->id, "tls-required-wait", "rcpt_domain", s->route_domain,
	    "reason", reply, NULL);
	s->nrcpt_ok = 1;
	s->t_rcpt = 0;
	session_reply(s, "250 2.1.5 Held: the TLS policy for %s failed; "
	    "the message goes only if it says TLS-Required: No",
	    s->route_domain);
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
		    s->route_domain, "reply", s->tlsno_reply, NULL);
		if (!s->attempt_logged)
			session_log_delivery(s, s->tlsno_reply[0] == '4' ?
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
	s->prof_orig = base;
	s->dec = s->dec_base;
	s->dec.profile = p;
	s->route_sts = 0;
	s->route_sts_testing = 0;
	if (session_route_id(s, &s->dec, 0, 0, s->route_key) == -1) {
		s->tlsno = TLSNO_NONE;
		snprintf(s->data_reply, sizeof(s->data_reply),
		    "451 4.3.0 Out of memory, try again later");
		session_enter(s, ST_DATA_DISCARD);
		return;
	}
	s->tlsno = TLSNO_RUN;
	s->tls_required_no = 1;
	s->attempt_logged = 0;
	s->txn_fail[0] = '\0';
	log_info(s->id, "tls-required-no", "rcpt_domain", s->route_domain,
	    "profile", p->name, "policy_failure", s->tlsno_reply, NULL);
	session_up_open(s);
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

/* --- upstream: sending and failing -------------------------------------- */

/*
 * The deadline of an upstream phase, cut to what is left of rcpt_timeout
 * while the MTA waits for its RCPT, so that one MX host after another
 * never outlasts the MTA's own patience (docs/security.md D-15).
 */
static double
session_up_timeout(struct session *s, double phase)
{
	double left;

	s->up_capped = 0;
	if (s->t_rcpt == 0)
		return phase;
	left = s->t_rcpt + s->cfg->timeouts.rcpt - clock_mono();
	if (left >= phase)
		return phase;
	s->up_capped = 1;
	return left > 0.001 ? left : 0.001;
}

static void
session_up_send(struct session *s, enum sess_state next, double timeout,
    const char *fmt, ...)
{
	char line[SMTP_CMD_LINE_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	memcpy(line + n, "\r\n", 3);
	/* MAIL and RCPT lines carry addresses log_addresses may hide. */
	if (s->cfg->log_addresses == CONFIG_ADDR_FULL)
		log_debug(s->id, "up-send", "line", line, NULL);
	conn_write(&s->up, line, (size_t)n + 2);
	conn_deadline(&s->up, session_up_timeout(s, timeout));
	s->up_await = 1;
	session_enter(s, next);
}

/* Where an upstream failure happened decides what it means. */
static int
session_in_tls_phase(enum sess_state st)
{
	return st == ST_UP_STARTTLS || st == ST_UP_TLS;
}

/* Before MAIL, whatever went wrong is the host's: the next may work. */
static int
session_before_mail(enum sess_state st)
{
	return st == ST_UP_CONNECT || st == ST_UP_GREETING ||
	    st == ST_UP_EHLO || st == ST_UP_EHLO_TLS;
}

/*
 * MTA-STS testing (RFC 8461 section 5): deliver as the lower sources say,
 * but report what enforce would have refused.
 */
static void
session_sts_testing_report(struct session *s, const char *reason)
{
	char where[320];

	if (!s->route_sts_testing)
		return;
	session_up_where(s, where, sizeof(where));
	log_warn(s->id, "mta-sts-testing-failure", "domain", s->route_domain,
	    "host", where, "reason", reason, "effect",
	    "enforce would have refused this delivery", NULL);
	metrics_inc("mxtls_tls_failures_total",
	    "result=\"sts-testing\"", 1);
}

/*
 * The names the certificate of the host just chosen must match.  A literal
 * address (nexthop, or the original destination in transparent mode) has
 * no name of its own: the MX names that resolve to it and the policy's mx
 * stand in.
 */
static int
session_wanted_names(const struct session *s,
    const char *names[SESSION_NAMES_MAX])
{
	int nnames = 0, i;

	if (s->up_host[0] != '\0') {
		names[nnames++] = s->up_host;
		return nnames;
	}
	for (i = 0; s->transparent && i < s->ntp_names &&
	    nnames < SESSION_NAMES_MAX; i++)
		names[nnames++] = s->tp_names->name[i];
	for (i = 0; i < s->dec.nmx && nnames < SESSION_NAMES_MAX; i++)
		names[nnames++] = s->dec.mx[i];
	return nnames;
}

/*
 * The retry record of the host just chosen.  Its key is every fact the
 * verdict depends on (state.h): host name, address and port; the profile
 * by name and by its TLS parameters as in effect (tls and verify mode, CA
 * bundle, versions, ciphers); and the names the certificate must match,
 * so that a name mismatch is held against the name wanted, not against
 * the address.  policy[STATE_POLICY_MAX + 1] receives the fingerprint.
 */
static void
session_verdict_key(const struct session *s, struct state_key *k,
    char *policy)
{
	const struct policy_profile *p = s->dec.profile;
	const char *names[SESSION_NAMES_MAX];
	const char *ciphers = config_profile_ciphers(s->cfg, p);
	char *head;

	/* A DANE host's verdict is also held against its TLSA records. */
	if (asprintf(&head, "%s|%d|%d|%s|%d|%d|%s|%s%s", p->name, (int)p->tls,
	    (int)p->verify, config_profile_ca_bundle(s->cfg, p),
	    config_profile_min_version(s->cfg, p),
	    config_profile_max_version(s->cfg, p), ciphers ? ciphers : "",
	    s->verified_by, s->verified_by[0] ? "|" : "") == -1)
		policy[0] = '\0';
	else {
		session_key_hash(head, names, session_wanted_names(s, names),
		    policy, STATE_POLICY_MAX + 1);
		free(head);
	}
	k->host = s->up_host;
	k->addr = s->up_addr;
	k->port = s->up_port;
	k->profile = p->name;
	k->policy = policy;
}

/* Keep the first host's verdict: it is the most preferred MX. */
static void
session_note_verdict(struct session *s, enum failure_action a,
    enum failure_event ev, const char *reason, time_t retry)
{
	if (s->verdict != FAILURE_CONTACT)
		return;
	s->verdict = a;
	s->verdict_event = ev;
	snprintf(s->verdict_reason, sizeof(s->verdict_reason), "%s", reason);
	snprintf(s->verdict_host, sizeof(s->verdict_host), "%s", s->up_host);
	s->verdict_ss = s->addrs[s->addr_i];
	s->verdict_port = s->up_port;
	s->verdict_retry = retry;
}

/*
 * A TLS failure at the host just contacted (docs/behaviour.md section 7): the table
 * decides from the host's retry record; the record is stored at once so a
 * restart does not forget it.  The next host may still deliver over TLS.
 */
static void
session_tls_failure(struct session *s, enum failure_event ev,
    enum tls_result result, const char *reason)
{
	const struct retry_record *old;
	struct retry_record rec;
	const struct failure_timing *t = &s->cfg->timing;
	enum failure_action a;
	time_t now = clock_now();
	struct state_key k;
	char where[320], err[256], policy[STATE_POLICY_MAX + 1];

	if (session_dane_host_tls(s) && !session_dane_by_table(s)) {
		/* Never in the clear, never bounced: the next host, or 451. */
		session_dane_note(s, result == TLS_RESULT_STARTTLS_NOT_SUPPORTED ?
		    TLS_RESULT_DANE_REQUIRED : result == TLS_RESULT_TLSA_INVALID ?
		    result : TLS_RESULT_VALIDATION_FAILURE,
		    "TLS to %s (%s) failed: %s; its TLSA records (DANE) "
		    "require TLS%s", s->up_host[0] ? s->up_host :
		    session_dane_name(s), s->up_addr, reason,
		    s->up_dane == DANE_HOST_AUTH ? " with a matching "
		    "certificate" : "");
		session_log_delivery(s, "tls-failed", NULL, reason);
		session_up_close(s);
		session_up_try_addr(s);
		return;
	}
	session_tlsrpt(s, result, 0);
	session_verdict_key(s, &k, policy);
	old = state_get(s->px->state, &k);
	if (old != NULL)
		rec = *old;
	else
		memset(&rec, 0, sizeof(rec));
	a = failure_after(s->dec.profile, ev, reason, &rec, now, t);
	if (state_put(s->px->state, &k, &rec, err, sizeof(err)) == -1)
		log_error(s->id, "state-write-failed", "error", err, NULL);
	metrics_set("mxtls_retry_records", "state=\"failed-once\"",
	    state_count(s->px->state, RETRY_FAILED_ONCE));
	metrics_set("mxtls_retry_records", "state=\"broken\"",
	    state_count(s->px->state, RETRY_BROKEN));
	metrics_inc("mxtls_tls_failures_total",
	    metrics_labels(where, sizeof(where), "result",
	    tls_result_name(result), NULL), 1);
	session_up_where(s, where, sizeof(where));
	/* With hosts left to try, this host's failure is no outcome yet. */
	session_log_delivery(s, s->addr_i + 1 < s->naddrs ||
	    s->hop_i + 1 < s->nhops ? "tls-failed" :
	    a == FAILURE_DEFER ? "deferred" :
	    a == FAILURE_FAIL || a == FAILURE_FAIL_NO_TLS ? "failed" :
	    "tls-failed", NULL, reason);
	log_warn(s->id, "tls-failure", "host", where, "result",
	    tls_result_name(result), "event", failure_event_name(ev),
	    "action", failure_action_name(a), "record",
	    retry_state_name(rec.state), "reason", reason, NULL);
	session_up_close(s);
	if (s->route_sts)
		sts_refresh(s->px->sts, s->route_domain);
	session_sts_testing_report(s, reason);
	session_note_verdict(s, a, ev, reason, rec.first_failure +
	    t->retry_delay);
	session_up_try_addr(s);
}

/* No host delivered over TLS: carry out the first host's verdict. */
static void
session_apply_verdict(struct session *s)
{
	const char *prof = s->dec.profile->name;
	char where[320], when[32], reply[512];
	struct tm tm;

	snprintf(s->up_host, sizeof(s->up_host), "%s", s->verdict_host);
	conn_sockaddr_str((struct sockaddr *)&s->verdict_ss, s->up_addr,
	    sizeof(s->up_addr));
	s->up_port = s->verdict_port;
	session_up_where(s, where, sizeof(where));
	switch (s->verdict) {
	case FAILURE_DEFER:
		gmtime_r(&s->verdict_retry, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(reply, sizeof(reply),
		    "451 4.7.5 TLS to %s for domain %s failed: %s; retry "
		    "after %s", where, s->route_domain, s->verdict_reason,
		    when);
		if (!session_tlsno_wait(s, !s->route_sts, reply))
			session_txn_fail(s, "%s", reply);
		return;
	case FAILURE_FAIL_NO_TLS:
	case FAILURE_FAIL:
		if (!s->route_sts)
			break;
		/* RFC 8461 section 5: defer, and fetch the policy again. */
		sts_refresh(s->px->sts, s->route_domain);
		snprintf(reply, sizeof(reply),
		    "451 4.7.5 TLS to %s for domain %s failed: %s; the "
		    "domain's MTA-STS policy requires TLS, will retry",
		    where, s->route_domain, s->verdict_reason);
		if (!session_tlsno_wait(s, 0, reply))
			session_txn_fail(s, "%s", reply);
		return;
	default:
		break;
	}
	switch (s->verdict) {
	case FAILURE_FAIL_NO_TLS:
	case FAILURE_FAIL:
		if (!s->requiretls)
			break;
		session_txn_fail(s, "550 5.7.30 REQUIRETLS: TLS to %s for "
		    "domain %s failed again: %s", where, s->route_domain,
		    s->verdict_reason);
		return;
	default:
		break;
	}
	switch (s->verdict) {
	case FAILURE_FAIL_NO_TLS:
		snprintf(reply, sizeof(reply),
		    "550 5.7.10 %s does not offer STARTTLS and profile %s "
		    "requires TLS for domain %s", where, prof,
		    s->route_domain);
		if (!session_tlsno_wait(s, 1, reply))
			session_txn_fail(s, "%s", reply);
		return;
	case FAILURE_FAIL:
		snprintf(reply, sizeof(reply),
		    "550 5.7.5 TLS to %s for domain %s failed again: %s "
		    "(profile %s)", where, s->route_domain, s->verdict_reason,
		    prof);
		if (!session_tlsno_wait(s, 1, reply))
			session_txn_fail(s, "%s", reply);
		return;
	case FAILURE_FALLBACK_CLEAR:
		/* A fresh connection, never the one whose TLS failed. */
		log_warn(s->id, "fallback-clear", "host", where, "reason",
		    s->verdict_reason, NULL);
		s->fallback = 1;
		session_up_connect(s, &s->verdict_ss,
		    session_ss_len(&s->verdict_ss));
		return;
	default:
		session_txn_fail(s, "451 4.3.0 Internal error: verdict %s",
		    failure_action_name(s->verdict));
		return;
	}
}

static void
session_up_failed(struct session *s, const char *reason)
{
	char where[320];
	enum sess_state st = s->state;

	if (st == ST_UP_REUSE) {
		session_up_reuse_failed(s, reason);
		return;
	}
	snprintf(s->last_error, sizeof(s->last_error), "%s", reason);
	session_up_where(s, where, sizeof(where));
	log_info(s->id, "upstream-error", "host", where, "state",
	    sess_state_names[st], "reason", reason, NULL);
	if (session_before_mail(st) && s->fallback) {
		session_up_close(s);
		session_log_delivery(s, "deferred", NULL, reason);
		session_txn_fail(s,
		    "451 4.4.1 Fallback connection to %s failed: %s", where,
		    reason);
		return;
	}
	if (session_before_mail(st)) {
		/*
		 * No connect, no greeting, a closed connection or a 421 at
		 * EHLO: the next address or MX host may work (rcpt_timeout
		 * permitting), as Postfix goes on to the next MX.
		 */
		session_up_close(s);
		session_up_try_addr(s);
		return;
	}
	if (session_in_tls_phase(st)) {
		session_tls_failure(s, FAILURE_HANDSHAKE,
		    TLS_RESULT_VALIDATION_FAILURE, reason);
		return;
	}
	session_up_close(s);
	switch (st) {
	case ST_DATA:
		/* Read the rest of the message; refuse it at its end. */
		snprintf(s->data_reply, sizeof(s->data_reply),
		    "451 4.4.2 Connection to %s lost during DATA: %s", where,
		    reason);
		session_log_delivery(s, "deferred", NULL, reason);
		session_enter(s, ST_DATA_DISCARD);
		return;
	case ST_UP_DATA_END:
		session_log_delivery(s, "deferred", NULL, reason);
		session_reply(s,
		    "451 4.4.2 Connection to %s lost before it confirmed the "
		    "message: %s", where, reason);
		session_message_done(s);
		return;
	case ST_UP_RSET:
		session_reply(s, "250 2.0.0 Ok");
		if (!s->closed) {
			session_txn_reset(s);
			session_enter(s, ST_IDLE);
		}
		return;
	case ST_UP_MAIL:
	case ST_UP_RCPT:
	case ST_UP_DATA:
		session_log_delivery(s, "deferred", NULL, reason);
		session_txn_fail(s, "451 4.4.2 Connection to %s failed: %s",
		    where, reason);
		return;
	default:
		/* Idle upstream went away: only an open transaction cares. */
		if (s->nrcpt_ok > 0 && s->txn_fail[0] == '\0')
			snprintf(s->txn_fail, sizeof(s->txn_fail),
			    "451 4.4.2 Connection to %s lost: %s", where,
			    reason);
		session_process_input(s);
		return;
	}
}

/*
 * rcpt_timeout is over: answer the MTA before it gives up on mxtls, always
 * with 4xx (hosts left untried might have worked).  While hosts were
 * still being tried, an earlier host's TLS verdict is the reason given; a
 * fallback in the clear waits for the MTA's next attempt (the host's
 * record leads straight to it).  No record is made against a host that
 * was only cut short.
 */
static void
session_up_out_of_time(struct session *s)
{
	char where[320], secs[16];
	int trying = !(s->up_open && s->up_tls) && s->state <= ST_UP_TLS &&
	    s->verdict != FAILURE_CONTACT &&
	    s->verdict != FAILURE_FALLBACK_CLEAR;

	session_up_where(s, where, sizeof(where));
	snprintf(secs, sizeof(secs), "%.0f", s->cfg->timeouts.rcpt);
	log_info(s->id, "rcpt-timeout", "host", where, "state",
	    sess_state_names[s->state], "rcpt_timeout", secs, NULL);
	session_up_close(s);
	if (trying && s->verdict == FAILURE_DEFER) {
		session_apply_verdict(s);
		return;
	}
	if (trying) {
		session_txn_fail(s, "451 4.7.5 TLS to %s for domain %s failed: "
		    "%s; no other next hop answered within rcpt_timeout (%s s)",
		    s->verdict_host, s->route_domain, s->verdict_reason, secs);
		return;
	}
	session_txn_fail(s, "451 4.4.2 No next hop for %s answered within "
	    "rcpt_timeout (%s s)%s%s", s->route_domain, secs,
	    s->last_error[0] ? ": " : "", s->last_error);
}

/* --- upstream: next hops ------------------------------------------------- */

/* An MX host (or the implicit MX) the policy's mx names permit. */
static int
session_mx_permitted(struct session *s, const char *host)
{
	int j;

	if (s->dec.nmx == 0 || s->dec.profile->tls == POLICY_TLS_OFF)
		return 1;
	for (j = 0; j < s->dec.nmx; j++)
		if (policy_mx_pattern_match(s->dec.mx[j], host))
			return 1;
	log_info(s->id, "mx-not-permitted", "mx", host, NULL);
	return 0;
}

static void
session_mx_result(void *arg, const struct dns_mx_result *res)
{
	struct session *s = arg;
	const char *dom = s->route_domain;
	int i;

	s->dq = NULL;
	s->mx_sec = res->sec;
	if (res->sec == DNSSEC_BOGUS) {
		/* A forged or broken signed answer: never acted on. */
		log_warn(s->id, "dns", "domain", dom, "result", "bogus",
		    "reason", res->error, NULL);
		session_dane_count(TLS_RESULT_DNSSEC_INVALID);
		session_log_delivery(s, "deferred", NULL, res->error);
		session_txn_fail(s, "451 4.7.5 %s", res->error);
		return;
	}
	switch (res->status) {
	case DNS_NULLMX:
		log_info(s->id, "dns", "domain", dom, "result", "null-mx",
		    NULL);
		session_txn_fail(s,
		    "556 5.1.10 Domain %s accepts no mail (null MX, RFC 7505)",
		    dom);
		return;
	case DNS_NXDOMAIN:
		log_info(s->id, "dns", "domain", dom, "result", "nxdomain",
		    NULL);
		session_txn_fail(s, "550 5.1.2 Domain %s does not exist", dom);
		return;
	case DNS_TEMPFAIL:
		log_warn(s->id, "dns", "domain", dom, "result", "tempfail",
		    "reason", res->error, NULL);
		session_txn_fail(s, "451 4.4.3 DNS lookup for %s failed: %s",
		    dom, res->error ? res->error : "temporary failure");
		return;
	case DNS_NODATA:
		/*
		 * RFC 5321 5.1: no MX means the domain itself (implicit MX).
		 * The mx pins hold for it as for any MX host (RFC 8461 4.1):
		 * a forged NODATA must not lead to the domain's web server.
		 */
		s->nhops = 0;
		if (session_mx_permitted(s, dom)) {
			snprintf(s->hops[0].name, sizeof(s->hops[0].name),
			    "%s", dom);
			s->hops[0].port = 25;
			s->hops[0].from_dns = 1;
			s->nhops = 1;
		}
		break;
	case DNS_OK:
		s->nhops = 0;
		for (i = 0; i < res->nmx && s->nhops < SESSION_HOSTS_MAX; i++) {
			if (!session_mx_permitted(s, res->mx[i].host))
				continue;
			snprintf(s->hops[s->nhops].name, DNS_NAME_MAX, "%s",
			    res->mx[i].host);
			s->hops[s->nhops].port = 25;
			s->hops[s->nhops].from_dns = 1;
			s->nhops++;
		}
		break;
	}
	if (s->nhops == 0) {
		session_log_delivery(s, "deferred", NULL,
		    "no MX host matches the policy's mx names");
		session_txn_fail(s,
		    "451 4.7.5 No MX host of %s matches the mx names of "
		    "profile %s", dom, s->dec.profile->name);
		return;
	}
	s->hop_i = -1;
	session_up_next_hop(s);
}

static void
session_addr_result(void *arg, const struct dns_addr_result *res)
{
	struct session *s = arg;
	int i;

	s->dq = NULL;
	if (res->status != DNS_OK) {
		snprintf(s->last_error, sizeof(s->last_error),
		    "address lookup for %s: %s", s->hops[s->hop_i].name,
		    res->error ? res->error : "no address");
		session_up_next_hop(s);
		return;
	}
	s->naddrs = 0;
	for (i = 0; i < res->naddr && s->naddrs < SESSION_ADDRS_MAX; i++)
		s->addrs[s->naddrs++] = res->addr[i];
	s->addr_sec = res->sec;
	/*
	 * RFC 7672 2.2.2: a secure CNAME chain moves the TLSA records to
	 * its target first; the name before it is asked when the target
	 * has none.
	 */
	if (res->canon[0] != '\0' && res->sec == DNSSEC_SECURE) {
		snprintf(s->tlsa_base, sizeof(s->tlsa_base), "%s", res->canon);
		snprintf(s->tlsa_retry, sizeof(s->tlsa_retry), "%s",
		    s->hops[s->hop_i].name);
	} else {
		snprintf(s->tlsa_base, sizeof(s->tlsa_base), "%s",
		    s->hops[s->hop_i].name);
		s->tlsa_retry[0] = '\0';
	}
	session_dane_host(s);
}

/* Count a DANE outcome by its RFC 8460 result type ("ok" for success). */
static void
session_dane_count(enum tls_result r)
{
	char l[64];

	metrics_inc("mxtls_dane_total", metrics_labels(l, sizeof(l),
	    "result", tls_result_name(r), NULL), 1);
}

/*
 * DANE for this route: a profile that wants it, TLS not switched off,
 * DNSSEC standing known.  Only hosts the recipient domain's DNS named
 * (MX, implicit MX) can have it: a nexthop is the operator's choice.
 */
static int
session_dane_wanted(const struct session *s)
{
	return session_route_dane(s) &&
	    (s->hops[s->hop_i].from_dns || s->transparent);
}

/* The MX host name DANE is about (in transparent mode, not the hop's). */
static const char *
session_dane_name(const struct session *s)
{
	return s->transparent ? s->tp_dane[0] ? s->tp_dane : s->orig_str :
	    s->hops[s->hop_i].name;
}

/*
 * An explicit match with a mandatory profile hands a DANE host's failure
 * to the failure table (retry, then 550); otherwise DANE failures are
 * deferred, as for MTA-STS enforce: never bounced, never in the clear.
 */
static int
session_dane_by_table(const struct session *s)
{
	return s->dec.match != NULL && strcmp(s->dec.match->pattern, "*") &&
	    s->dec.profile->tls == POLICY_TLS_MANDATORY;
}

static int
session_dane_host_tls(const struct session *s)
{
	return s->up_dane == DANE_HOST_AUTH || s->up_dane == DANE_HOST_ENCRYPT;
}

/*
 * Count the attempt at the host just tried for TLS reports (RFC 8460):
 * r is TLS_RESULT_OK for a session as required, else the failure; dane
 * says a DANE host failed (also before any connection).  Only the
 * recipient domain's own hosts with TLS wanted count: a nexthop is the
 * operator's choice, not the domain's, and TLS off tried nothing.
 */
static void
session_tlsrpt(struct session *s, enum tls_result r, int dane)
{
	struct tlsrpt_attempt a;
	int same = strcmp(s->sts_domain, s->route_domain) == 0;

	/* A message sent on its TLS-Required: No applied no policy. */
	if (s->px->tlsrpt == NULL || !s->have_route || s->dec.nexthop != NULL ||
	    s->tlsno == TLSNO_RUN ||
	    s->dec.profile->tls == POLICY_TLS_OFF || s->route_domain[0] == '[')
		return;
	memset(&a, 0, sizeof(a));
	a.domain = s->route_domain;
	a.result = r;
	a.dane = dane || session_dane_host_tls(s);
	a.tlsa = &s->up_tlsa;
	a.sts = s->route_sts || s->route_sts_testing;
	a.sts_mode = s->route_sts ? "enforce" : "testing";
	/* A later RCPT's lookup may have replaced the policy's details. */
	a.sts_max_age = same ? s->sts_max_age : -1;
	a.sts_mx = same && s->sts_nmx > 0 ? s->sts_mx->p : NULL;
	a.sts_nmx = same ? s->sts_nmx : 0;
	a.mx_host = a.dane ? session_dane_name(s) : session_up_name(s);
	a.mx_addr = s->up_open ? s->up_addr : NULL;
	a.fd = s->up_open ? s->up.fd : -1;
	tlsrpt_count(s->px->tlsrpt, s->id, &a);
}

/* A DANE host cannot be used: remember why for the route's 451 4.7.5. */
static void __attribute__((format(printf, 3, 4)))
session_dane_note(struct session *s, enum tls_result r, const char *fmt, ...)
{
	char why[sizeof(s->dane_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn(s->id, "dane-failure", "mx", session_dane_name(s),
	    "addr", s->up_addr[0] ? s->up_addr : NULL, "result",
	    tls_result_name(r), "reason", why, NULL);
	session_dane_count(r);
	session_tlsrpt(s, r, 1);
	if (!s->dane_failed)
		snprintf(s->dane_error, sizeof(s->dane_error), "%s", why);
	s->dane_failed = 1;
}

/* The host's DANE standing is known: use it, or go on to the next. */
static void
session_dane_decided(struct session *s)
{
	const char *host = session_dane_name(s);
	char fp[65];

	s->verified_by[0] = '\0';
	switch (s->up_dane) {
	case DANE_HOST_UNUSABLE:
		/* RFC 7672 2.2: as if unreachable; others only with DANE. */
		s->dane_tainted = 1;
		session_dane_note(s, TLS_RESULT_DNSSEC_INVALID,
		    "DNSSEC lookups for MX host %s failed: %s", host,
		    s->dane_why ? s->dane_why : "bogus or no answer");
		session_up_next_hop(s);
		return;
	case DANE_HOST_NONE:
		if (s->dec.profile->dane == DANE_MODE_ONLY &&
		    session_dane_by_table(s)) {
			s->dane_required = 1;
			break;
		}
		if (s->dec.profile->dane == DANE_MODE_ONLY) {
			session_dane_note(s, TLS_RESULT_DANE_REQUIRED,
			    "MX host %s has no usable DNSSEC-signed TLSA "
			    "records and profile %s requires DANE", host,
			    s->dec.profile->name);
			session_up_next_hop(s);
			return;
		}
		if (s->dane_tainted) {
			session_dane_note(s, TLS_RESULT_DNSSEC_INVALID,
			    "MX host %s is not DANE-authenticated and the "
			    "DNSSEC lookups of another MX host of %s failed",
			    host, s->route_domain);
			session_up_next_hop(s);
			return;
		}
		break;
	case DANE_HOST_AUTH:
		dane_set_fingerprint(&s->up_tlsa, fp, sizeof(fp));
		snprintf(s->verified_by, sizeof(s->verified_by), "dane:%s",
		    fp);
		break;
	case DANE_HOST_ENCRYPT:
		snprintf(s->verified_by, sizeof(s->verified_by),
		    "dane-encrypt");
		break;
	}
	if (session_dane_wanted(s))
		log_info(s->id, "dane", "mx", host, "dnssec",
		    dnssec_status_name(dnssec_status_worst(s->mx_sec,
		    s->addr_sec)), "tlsa_base", s->up_dane != DANE_HOST_NONE ?
		    s->tlsa_base : NULL, "state", dane_host_name(s->up_dane),
		    "reason", s->dane_why, NULL);
	s->addr_i = -1;
	session_up_try_addr(s);
}

static void
session_tlsa_result(void *arg, const struct dns_tlsa_result *res)
{
	struct session *s = arg;
	enum dane_lookup lookup;
	int i;

	s->dq = NULL;
	lookup = res->status == DNS_OK ? DANE_LOOKUP_RECORDS :
	    res->status == DNS_NODATA ? DANE_LOOKUP_NODATA :
	    res->status == DNS_NXDOMAIN ? DANE_LOOKUP_NXDOMAIN :
	    DANE_LOOKUP_FAILED;
	if ((lookup == DANE_LOOKUP_NODATA || lookup == DANE_LOOKUP_NXDOMAIN) &&
	    s->tlsa_retry[0] != '\0') {
		snprintf(s->tlsa_base, sizeof(s->tlsa_base), "%s",
		    s->tlsa_retry);
		s->tlsa_retry[0] = '\0';
		s->dq = dns_lookup_tlsa(s->rt->dns, s->tlsa_base,
		    s->hops[s->hop_i].port, session_tlsa_result, s);
		if (s->dq == NULL)
			session_txn_fail(s,
			    "451 4.3.0 Out of memory, try again later");
		return;
	}
	for (i = 0; lookup == DANE_LOOKUP_RECORDS && i < res->nrr; i++)
		if (dane_tlsa_set_add(&s->up_tlsa, res->rr[i].data,
		    res->rr[i].len) < 0 && errno == ENOMEM)
			lookup = DANE_LOOKUP_FAILED;
	s->up_dane = dane_host_decide(s->mx_sec, s->addr_sec, lookup,
	    res->sec, &s->up_tlsa, &s->dane_why);
	if (s->up_dane == DANE_HOST_UNUSABLE && res->error != NULL) {
		snprintf(s->last_error, sizeof(s->last_error), "%s",
		    res->error);
		s->dane_why = s->last_error;
	}
	session_dane_decided(s);
}

/* Find the host's DANE standing (RFC 7672 2.2), then try its addresses. */
static void
session_dane_host(struct session *s)
{
	struct hop *h = &s->hops[s->hop_i];

	dane_tlsa_set_clear(&s->up_tlsa);
	memset(&s->up_tlsa, 0, sizeof(s->up_tlsa));
	s->up_dane = DANE_HOST_NONE;
	s->dane_required = 0;
	s->dane_why = NULL;
	if (!session_dane_wanted(s)) {
		session_dane_decided(s);
		return;
	}
	if (s->mx_sec != DNSSEC_SECURE || s->addr_sec != DNSSEC_SECURE) {
		s->up_dane = dane_host_decide(s->mx_sec, s->addr_sec,
		    DANE_LOOKUP_NODATA, DNSSEC_INSECURE, NULL, &s->dane_why);
		session_dane_decided(s);
		return;
	}
	s->dq = dns_lookup_tlsa(s->rt->dns, s->tlsa_base, h->port,
	    session_tlsa_result, s);
	if (s->dq == NULL)
		session_txn_fail(s, "451 4.3.0 Out of memory, try again later");
}

/* Move to the next next-hop host, or give up with a 4.4.x deferral. */
static void
session_up_next_hop(struct session *s)
{
	struct hop *h;
	struct in6_addr a6;
	struct in_addr a4;

	s->up_dane = DANE_HOST_NONE;
	s->dane_required = 0;
	s->verified_by[0] = '\0';
	if (++s->hop_i >= s->nhops) {
		if (s->verdict != FAILURE_CONTACT) {
			session_apply_verdict(s);
			return;
		}
		if (s->dane_failed) {
			char reply[sizeof(s->dane_error) + 16];

			snprintf(reply, sizeof(reply), "451 4.7.5 %s",
			    s->dane_error);
			if (session_tlsno_wait(s, 0, reply))
				return;
			session_log_delivery(s, "deferred", NULL, s->dane_error);
			session_txn_fail(s, "%s", reply);
			return;
		}
		session_log_delivery(s, "deferred", NULL, s->last_error);
		session_txn_fail(s,
		    "451 4.4.1 No next hop for %s could be reached: %s",
		    s->route_domain, s->last_error);
		return;
	}
	h = &s->hops[s->hop_i];
	s->addr_i = -1;
	s->naddrs = 0;
	if (inet_pton(AF_INET, h->name, &a4) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&s->addrs[0];

		memset(sin, 0, sizeof(*sin));
		sin->sin_family = AF_INET;
		sin->sin_addr = a4;
		s->naddrs = 1;
	} else if (inet_pton(AF_INET6, h->name, &a6) == 1) {
		struct sockaddr_in6 *sin6 =
		    (struct sockaddr_in6 *)&s->addrs[0];

		memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = a6;
		s->naddrs = 1;
	}
	if (s->naddrs == 1 && s->transparent) {
		/* The destination's DANE standing is its MX host's. */
		s->addr_sec = s->tp_dane[0] ? DNSSEC_SECURE : DNSSEC_INSECURE;
		snprintf(s->tlsa_base, sizeof(s->tlsa_base), "%s",
		    s->tp_dane_base[0] ? s->tp_dane_base : s->tp_dane);
		snprintf(s->tlsa_retry, sizeof(s->tlsa_retry), "%s",
		    s->tp_dane_base[0] ? s->tp_dane : "");
		session_enter(s, ST_UP_RESOLVE);
		session_dane_host(s);
		return;
	}
	if (s->naddrs == 1) {
		session_up_try_addr(s);
		return;
	}
	session_enter(s, ST_UP_RESOLVE);
	s->dq = dns_lookup_addr(s->rt->dns, h->name, session_addr_result, s);
}

/* Connect to up_host/up_port at ss; failures come back as events. */
static void
session_up_connect(struct session *s, const struct sockaddr_storage *ss,
    socklen_t len)
{
	s->up_tls = 0;
	s->up_helo = 0;
	s->verify = "-";
	memset(&s->up_ehlo, 0, sizeof(s->up_ehlo));
	snprintf(s->up_key, sizeof(s->up_key), "%s", s->route_key);
	session_cache_key(s, s->up_ckey, sizeof(s->up_ckey));
	s->up_reused = 0;
	s->up_late = 0;
	s->t_phase = clock_mono();
	s->up_opened = s->t_phase;
	session_enter(s, ST_UP_CONNECT);
	if (conn_connect(&s->up, s->px->loop, (const struct sockaddr *)ss, len,
	    SESSION_BUFSIZE, session_up_event, s) == -1) {
		/* No socket at all: treated like a refused connection. */
		snprintf(s->last_error, sizeof(s->last_error), "%s",
		    s->up.error);
		session_up_failed(s, s->last_error);
		return;
	}
	s->up_open = 1;
	conn_set_reading(&s->up, 1);
	conn_deadline(&s->up, session_up_timeout(s, s->cfg->timeouts.connect));
}

/* The next address of the current hop, unless its record says skip it. */
static void
session_up_try_addr(struct session *s)
{
	struct hop *h = &s->hops[s->hop_i];
	const struct retry_record *rec;
	struct sockaddr_storage *ss;
	enum failure_action a;
	socklen_t len;
	struct in6_addr a6;
	struct in_addr a4;
	struct state_key k;
	char policy[STATE_POLICY_MAX + 1];

	if (s->t_rcpt != 0 &&
	    clock_mono() - s->t_rcpt >= s->cfg->timeouts.rcpt) {
		session_up_out_of_time(s);
		return;
	}
	if (++s->addr_i >= s->naddrs) {
		session_up_next_hop(s);
		return;
	}
	ss = &s->addrs[s->addr_i];
	if (ss->ss_family == AF_INET) {
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)h->port);
		len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)ss)->sin6_port =
		    htons((uint16_t)h->port);
		len = sizeof(struct sockaddr_in6);
	}
	/* A literal next hop has no name to verify: the mx names stand in. */
	if (inet_pton(AF_INET, h->name, &a4) == 1 ||
	    inet_pton(AF_INET6, h->name, &a6) == 1)
		s->up_host[0] = '\0';
	else
		snprintf(s->up_host, sizeof(s->up_host), "%s", h->name);
	conn_sockaddr_str((struct sockaddr *)ss, s->up_addr,
	    sizeof(s->up_addr));
	s->up_port = h->port;
	if (h->from_dns &&
	    !config_mx_addr_allowed(s->cfg, (struct sockaddr *)ss)) {
		/* A hostile domain must not aim us at the local MTA. */
		snprintf(s->last_error, sizeof(s->last_error),
		    "MX host %s resolves to %s, a %s address (not contacted; "
		    "[dns] allow_private_mx)", h->name, s->up_addr,
		    config_addr_private((struct sockaddr *)ss));
		log_warn(s->id, "mx-private", "mx", h->name, "addr",
		    s->up_addr, "reason", s->last_error, NULL);
		session_up_try_addr(s);
		return;
	}

	session_verdict_key(s, &k, policy);
	rec = state_get(s->px->state, &k);
	a = failure_before(s->dec.profile, rec, clock_now(),
	    &s->cfg->timing);
	if (a != FAILURE_CONTACT) {
		char where[320];

		/* Inside the retry delay or marked broken: not contacted. */
		log_info(s->id, "tls-skip", "host",
		    session_up_where(s, where, sizeof(where)), "record",
		    retry_state_name(rec->state), "action",
		    failure_action_name(a), "reason", rec->error, NULL);
		session_note_verdict(s, a, rec->event, rec->error,
		    rec->first_failure + s->cfg->timing.retry_delay);
		session_up_try_addr(s);
		return;
	}
	if (s->dane_required) {
		char why[DNS_NAME_MAX + POLICY_NAME_MAX + 80];

		/* No TLSA under dane = only: a failure the table judges. */
		snprintf(why, sizeof(why), "MX host %s has no usable "
		    "DNSSEC-signed TLSA records and profile %s requires DANE",
		    session_dane_name(s), s->dec.profile->name);
		session_tls_failure(s, FAILURE_CERTIFICATE,
		    TLS_RESULT_DANE_REQUIRED, why);
		return;
	}
	if (session_up_cache_take(s, 1))
		return;
	session_up_connect(s, ss, len);
}

/* --- transparent mode ------------------------------------------------------ */

static int
session_same_addr(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		    &((const struct sockaddr_in *)b)->sin_addr,
		    sizeof(struct in_addr)) == 0;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	    &((const struct sockaddr_in6 *)b)->sin6_addr,
	    sizeof(struct in6_addr)) == 0;
}

/* Names known: connect to the original destination itself. */
static void
session_tp_connect(struct session *s)
{
	log_info(s->id, "transparent", "orig", s->orig_str, "names",
	    s->ntp_names > 0 ? s->tp_names->name[0] : "(none)", NULL);
	snprintf(s->hops[0].name, sizeof(s->hops[0].name), "%s",
	    s->orig_str);
	s->hops[0].port = s->orig_port;
	s->hops[0].from_dns = 0;
	s->nhops = 1;
	s->hop_i = -1;
	session_up_next_hop(s);
}

static void session_tp_next(struct session *s);

static void
session_tp_addr_result(void *arg, const struct dns_addr_result *res)
{
	struct session *s = arg;
	const char *name = s->hops[s->tp_i].name;
	int i, j, ok;

	s->dq = NULL;
	for (i = 0; res->status == DNS_OK && i < res->naddr; i++) {
		if (!session_same_addr(&res->addr[i], &s->orig))
			continue;
		/* Where the policy names MX patterns, only those count. */
		ok = s->dec.nmx == 0;
		for (j = 0; j < s->dec.nmx && !ok; j++)
			ok = policy_mx_pattern_match(s->dec.mx[j], name);
		/*
		 * Both buffers are DNS_NAME_MAX: the name always fits.  Out
		 * of memory, the name is not permitted: stricter, not laxer.
		 */
		if (ok && s->tp_names == NULL)
			s->tp_names = session_names_new(SESSION_HOSTS_MAX);
		if (ok && s->tp_names != NULL &&
		    s->ntp_names < s->tp_names->cap)
			memcpy(s->tp_names->name[s->ntp_names++], name,
			    strlen(name) + 1);
		if (ok && s->tp_dane[0] == '\0' &&
		    s->mx_sec == DNSSEC_SECURE && res->sec == DNSSEC_SECURE) {
			snprintf(s->tp_dane, sizeof(s->tp_dane), "%s", name);
			snprintf(s->tp_dane_base, sizeof(s->tp_dane_base), "%s",
			    res->canon);
		}
		break;
	}
	session_tp_next(s);
}

static void
session_tp_next(struct session *s)
{
	if (++s->tp_i < s->nhops) {
		s->dq = dns_lookup_addr(s->rt->dns, s->hops[s->tp_i].name,
		    session_tp_addr_result, s);
		return;
	}
	session_tp_connect(s);
}

static void
session_tp_mx_result(void *arg, const struct dns_mx_result *res)
{
	struct session *s = arg;
	int i;

	s->dq = NULL;
	s->nhops = 0;
	s->mx_sec = res->sec;
	s->tp_dane[0] = '\0';
	s->tp_dane_base[0] = '\0';
	if (res->sec == DNSSEC_BOGUS) {
		/* Its names cannot be trusted, nor its absence of DANE. */
		log_warn(s->id, "dns", "domain", s->route_domain, "result",
		    "bogus", "reason", res->error, NULL);
		session_dane_count(TLS_RESULT_DNSSEC_INVALID);
		session_log_delivery(s, "deferred", NULL, res->error);
		session_txn_fail(s, "451 4.7.5 %s", res->error);
		return;
	}
	if (res->status == DNS_OK)
		for (i = 0; i < res->nmx && i < SESSION_HOSTS_MAX; i++) {
			snprintf(s->hops[i].name, DNS_NAME_MAX, "%s",
			    res->mx[i].host);
			s->nhops++;
		}
	else if (res->status == DNS_NODATA) {
		snprintf(s->hops[0].name, DNS_NAME_MAX, "%s", s->route_domain);
		s->nhops = 1;
	}
	s->tp_i = -1;
	session_tp_next(s);
}

/* Open a new upstream connection for the route of the transaction. */
static void
session_up_open_new(struct session *s)
{
	char host[DNS_NAME_MAX];
	int port;

	/* up_tls and verify outlive a close for the delivery line only. */
	s->up_tls = 0;
	s->verify = "-";
	s->last_error[0] = '\0';
	s->verdict = FAILURE_CONTACT;
	s->mx_sec = DNSSEC_INSECURE;
	s->dane_tainted = 0;
	s->dane_failed = 0;
	s->dane_error[0] = '\0';
	if (s->dec.nexthop != NULL) {
		if (config_parse_hostport(s->dec.nexthop, 25, host,
		    sizeof(host), &port) == -1) {
			session_txn_fail(s, "451 4.3.5 Bad nexthop %s",
			    s->dec.nexthop);
			return;
		}
		snprintf(s->hops[0].name, sizeof(s->hops[0].name), "%s", host);
		s->hops[0].port = port;
		s->hops[0].from_dns = 0;
		s->nhops = 1;
		s->hop_i = -1;
		session_up_next_hop(s);
		return;
	}
	session_enter(s, ST_UP_RESOLVE);
	if (s->transparent) {
		s->ntp_names = 0;
		s->dq = dns_lookup_mx(s->rt->dns, s->route_domain,
		    session_tp_mx_result, s);
		return;
	}
	s->dq = dns_lookup_mx(s->rt->dns, s->route_domain, session_mx_result,
	    s);
}

/* The upstream for the route: an idle one from the cache, or a new one. */
static void
session_up_open(struct session *s)
{
	/* The previous route's idle connection may serve another session. */
	session_up_cache_put(s);
	session_up_close(s);
	s->attempt_logged = 0;
	if (!session_up_cache_take(s, 0))
		session_up_open_new(s);
}

/*
 * A cached connection did not answer RSET with 250 (the server had
 * closed it, or times out idle ones): not the server's TLS failing and
 * not the MTA's business, so open a new connection as if there had been
 * none in the cache.
 */
static void
session_up_reuse_failed(struct session *s, const char *reason)
{
	metrics_inc("mxtls_upstream_reuses_total", "outcome=\"stale\"", 1);
	log_info(s->id, "upstream-reuse-failed", "mx", session_up_name(s),
	    "addr", s->up_addr, "reason", reason, NULL);
	session_up_close(s);
	if (s->up_late)
		session_up_connect(s, &s->addrs[s->addr_i],
		    session_ss_len(&s->addrs[s->addr_i]));
	else
		session_up_open_new(s);
}

/* --- upstream: the protocol --------------------------------------------- */

/* Parameters of MAIL/RCPT the upstream did not announce are dropped. */
static void
session_filter_params(struct session *s, char *params, size_t len);

/*
 * What a MAIL/RCPT parameter needs of the upstream: the EHLO keyword, and
 * whether without it the parameter is dropped (a default or a courtesy:
 * SIZE, BODY=7BIT, DSN) or the mail must be refused (its meaning cannot be
 * kept without altering the message: 8-bit, SMTPUTF8).
 */
static unsigned
session_param_needs(const char *tok, int *refuse)
{
	*refuse = strcasecmp(tok, "BODY=8BITMIME") == 0 ||
	    strcasecmp(tok, "SMTPUTF8") == 0;
	if (strcasecmp(tok, "REQUIRETLS") == 0) {
		*refuse = 1;
		return SMTP_EXT_REQUIRETLS;
	}
	if (strncasecmp(tok, "SIZE=", 5) == 0)
		return SMTP_EXT_SIZE;
	if (strncasecmp(tok, "BODY=", 5) == 0)
		return SMTP_EXT_8BITMIME;
	if (strcasecmp(tok, "SMTPUTF8") == 0)
		return SMTP_EXT_SMTPUTF8;
	if (strncasecmp(tok, "RET=", 4) == 0 ||
	    strncasecmp(tok, "ENVID=", 6) == 0 ||
	    strncasecmp(tok, "NOTIFY=", 7) == 0 ||
	    strncasecmp(tok, "ORCPT=", 6) == 0)
		return SMTP_EXT_DSN;
	return 0;
}

/*
 * A parameter whose meaning cannot be kept: refuse, never downgrade.  0,
 * or -1 with the reply (naming the server) in dst.
 */
static int
session_mail_unrelayable(struct session *s, char *dst, size_t len)
{
	char tmp[SESSION_PARAMS_MAX], where[320], *tok, *save = NULL;
	unsigned need;
	int refuse;

	snprintf(tmp, sizeof(tmp), "%s", s->mail_params);
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		need = session_param_needs(tok, &refuse);
		if (!refuse || (s->up_ehlo.ext & need))
			continue;
		session_up_where(s, where, sizeof(where));
		if (need == SMTP_EXT_REQUIRETLS)
			snprintf(dst, len, "550 5.7.30 REQUIRETLS support "
			    "required: %s does not offer REQUIRETLS", where);
		else if (need == SMTP_EXT_8BITMIME)
			snprintf(dst, len, "554 5.6.3 %s does not accept 8-bit "
			    "messages (no 8BITMIME) and mxtls never alters a "
			    "message", where);
		else
			snprintf(dst, len, "553 5.6.7 %s does not support "
			    "SMTPUTF8", where);
		return -1;
	}
	return 0;
}

static void
session_send_mail(struct session *s)
{
	char refuse[512];

	if (session_mail_unrelayable(s, refuse, sizeof(refuse)) == -1) {
		session_log_delivery(s, "failed", NULL, refuse);
		session_txn_fail(s, "%s", refuse);
		return;
	}
	session_filter_params(s, s->mail_params, sizeof(s->mail_params));
	session_up_send(s, ST_UP_MAIL, s->cfg->timeouts.command,
	    "MAIL FROM:<%s>%s%s", s->mail_from, s->mail_params[0] ? " " : "",
	    s->mail_params);
}

static void
session_send_rcpt(struct session *s)
{
	session_filter_params(s, s->rcpt_params, sizeof(s->rcpt_params));
	session_up_send(s, ST_UP_RCPT, s->cfg->timeouts.command,
	    "RCPT TO:<%s>%s%s", s->rcpt, s->rcpt_params[0] ? " " : "",
	    s->rcpt_params);
}

/* After EHLO: STARTTLS, or plaintext where the profile allows it. */
static void
session_after_ehlo(struct session *s)
{
	const struct policy_profile *p = s->dec.profile;

	if (p->tls == POLICY_TLS_OFF || s->fallback) {
		session_send_mail(s);
		return;
	}
	if (s->up_ehlo.ext & SMTP_EXT_STARTTLS) {
		session_up_send(s, ST_UP_STARTTLS, s->cfg->timeouts.command,
		    "STARTTLS");
		return;
	}
	if (p->tls == POLICY_TLS_MANDATORY || session_dane_host_tls(s)) {
		session_tls_failure(s, FAILURE_NO_STARTTLS,
		    TLS_RESULT_STARTTLS_NOT_SUPPORTED,
		    "server does not offer STARTTLS");
		return;
	}
	/*
	 * mta_sts=none on a first contact is what a network attacker who
	 * drops the TXT record and strips STARTTLS leaves behind (RFC 8461
	 * section 10): a line operators can count (docs/security.md F-16).
	 */
	log_info(s->id, "plaintext", "reason", "starttls-not-supported",
	    "mx", s->up_host, "addr", s->up_addr, "mta_sts",
	    strcmp(s->sts_domain, s->route_domain) == 0 ?
	    mtasts_mode_name(s->sts_mode) : "not-looked-up", NULL);
	session_tlsrpt(s, TLS_RESULT_STARTTLS_NOT_SUPPORTED, 0);
	session_sts_testing_report(s, "server does not offer STARTTLS");
	session_send_mail(s);
}

/* TLS worked: a record for this host is history. */
static void
session_tls_ok(struct session *s)
{
	struct retry_record rec;
	struct state_key k;
	char err[256], policy[STATE_POLICY_MAX + 1];

	session_verdict_key(s, &k, policy);
	if (state_get(s->px->state, &k) == NULL)
		return;
	memset(&rec, 0, sizeof(rec));
	rec.state = RETRY_NONE;
	if (state_put(s->px->state, &k, &rec, err, sizeof(err)) == -1)
		log_error(s->id, "state-write-failed", "error", err, NULL);
	log_info(s->id, "tls-recovered", "mx", s->up_host, "addr", s->up_addr,
	    NULL);
}

static void session_tls_up(struct session *s);
static void session_dane_verify(struct session *s);

static void
session_tls_ready(struct session *s)
{
	const char *names[SESSION_NAMES_MAX];
	int nnames = session_wanted_names(s, names);

	/* RFC 8461 section 4.2: under MTA-STS only a DNS-ID counts. */
	tls_facts_collect(s->up.ssl, names, nnames, s->route_sts ? 0 :
	    TLS_NAME_CN_FALLBACK, &s->facts);
	if (s->facts.result == TLS_RESULT_OK && s->facts.name_by_cn)
		session_sts_testing_report(s, "no DNS name in the "
		    "certificate's subjectAltName (RFC 8461 section 4.2)");
	{
		char l[160];

		metrics_inc("mxtls_tls_handshakes_total",
		    metrics_labels(l, sizeof(l), "version", s->facts.version,
		    "cipher", s->facts.cipher, NULL), 1);
		metrics_observe("mxtls_tls_handshake_seconds", "",
		    clock_mono() - s->t_phase);
	}
	if (nnames == 0 && s->facts.result == TLS_RESULT_CERTIFICATE_HOST_MISMATCH)
		snprintf(s->facts.reason, sizeof(s->facts.reason),
		    "no MX host of %s resolves to %s and the policy names no "
		    "mx: the certificate's name cannot be checked",
		    s->route_domain, s->up_addr);
	s->up_tls = 1;
	if (session_dane_host_tls(s)) {
		session_dane_verify(s);
		return;
	}
	log_info(s->id, "tls", "mx", session_up_name(s), "addr", s->up_addr,
	    "version",
	    s->facts.version, "cipher", s->facts.cipher, "verify",
	    s->facts.result == TLS_RESULT_OK ? "ok" : "fail", "reason",
	    s->facts.result == TLS_RESULT_OK ? NULL : s->facts.reason,
	    "resumed", s->facts.resumed ? "yes" : "no", NULL);
	if (s->facts.result != TLS_RESULT_OK) {
		if (s->dec.profile->verify == POLICY_VERIFY_STRICT) {
			s->verify = "fail";
			session_tls_failure(s, FAILURE_CERTIFICATE,
			    s->facts.result, s->facts.reason);
			return;
		}
		s->verify = "none";
	} else
		s->verify = "ok";
	session_tls_up(s);
}

/* TLS is up and verified as required: EHLO again, over TLS. */
static void
session_tls_up(struct session *s)
{
	session_tls_ok(s);
	/* Forget everything learnt before TLS (docs/behaviour.md section 3). */
	memset(&s->up_ehlo, 0, sizeof(s->up_ehlo));
	session_up_send(s, ST_UP_EHLO_TLS, s->cfg->timeouts.command,
	    "EHLO %s", s->cfg->hostname);
}

/*
 * A DANE host (RFC 7672 3): with usable TLSA records the certificate must
 * match one of them, and nothing else is asked of it (DANE-EE: no names,
 * no dates; DANE-TA: the chain to the matched anchor and the MX host
 * name or the TLSA base domain); with only unusable ones, TLS is enough.
 */
static void
session_dane_verify(struct session *s)
{
	struct dane_result dr;
	const char *names[2];
	int nnames = 0;

	memset(&dr, 0, sizeof(dr));
	if (s->up_dane == DANE_HOST_AUTH) {
		names[nnames++] = session_dane_name(s);
		if (strcasecmp(s->tlsa_base, names[0]) != 0)
			names[nnames++] = s->tlsa_base;
		if (!dane_verify(s->up.ssl, &s->up_tlsa, names, nnames, &dr)) {
			s->facts.result = TLS_RESULT_TLSA_INVALID;
			snprintf(s->facts.reason, sizeof(s->facts.reason), "%s",
			    dr.reason);
			s->verify = "fail";
			log_info(s->id, "tls", "mx", session_up_name(s), "addr",
			    s->up_addr, "version", s->facts.version, "cipher",
			    s->facts.cipher, "verify", "fail", "dane", "auth",
			    "reason", dr.reason, "resumed",
			    s->facts.resumed ? "yes" : "no", NULL);
			session_tls_failure(s, FAILURE_CERTIFICATE,
			    TLS_RESULT_TLSA_INVALID, dr.reason);
			return;
		}
		s->verify = dr.usage == 2 ? "dane-ta" : "dane-ee";
	} else if (s->requiretls) {
		s->verify = "fail";
		session_tls_failure(s, FAILURE_CERTIFICATE,
		    TLS_RESULT_VALIDATION_FAILURE, "REQUIRETLS needs an "
		    "authenticated server; its TLSA records are unusable for "
		    "that (usages 0 and 1)");
		return;
	} else
		s->verify = "dane-encrypt";
	s->facts.result = TLS_RESULT_OK;
	s->facts.reason[0] = '\0';
	session_dane_count(TLS_RESULT_OK);
	log_info(s->id, "tls", "mx", session_up_name(s), "addr", s->up_addr,
	    "version", s->facts.version, "cipher", s->facts.cipher, "verify",
	    s->verify, "dane", dane_host_name(s->up_dane), "tlsa",
	    dr.matched ? dr.matched_name[0] ? dr.matched_name :
	    session_dane_name(s) : NULL, "resumed",
	    s->facts.resumed ? "yes" : "no", NULL);
	session_tls_up(s);
}

static void
session_filter_params(struct session *s, char *out, size_t outlen)
{
	char tmp[SESSION_PARAMS_MAX], *tok, *save = NULL;
	size_t used = 0;
	int refuse;

	snprintf(tmp, sizeof(tmp), "%s", out);
	out[0] = '\0';
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		unsigned need = session_param_needs(tok, &refuse);

		if (need != 0 && !(s->up_ehlo.ext & need))
			continue;
		used += (size_t)snprintf(out + used, outlen - used, "%s%s",
		    used ? " " : "", tok);
		if (used >= outlen)
			break;
	}
}

/*
 * A reply the protocol does not allow there (a 250 to DATA, a 220 to
 * RCPT): the upstream cannot be trusted with this transaction.
 */
static void
session_up_protocol_error(struct session *s, const char *sum,
    const char *cmd)
{
	char where[320];

	session_up_where(s, where, sizeof(where));
	log_warn(s->id, "upstream-protocol-error", "host", where, "command",
	    cmd, "reply", sum, NULL);
	session_up_close(s);
	session_log_delivery(s, "deferred", sum, "protocol error");
	session_txn_fail(s, "451 4.5.0 Protocol error: %s answered \"%s\" "
	    "to %s", where, sum, cmd);
}

/* Our own greeting, as session_accept sends it. */
static int
session_is_own_banner(const struct session *s, const char *sum)
{
	char own[320];

	snprintf(own, sizeof(own), "220 %s ESMTP mxtls", s->cfg->hostname);
	return strcmp(sum, own) == 0;
}

static void
session_on_up_reply(struct session *s, const struct smtp_reply *r)
{
	char sum[600], where[320];

	reply_summary(r, sum, sizeof(sum));
	if (s->cfg->log_addresses == CONFIG_ADDR_FULL)
		log_debug(s->id, "up-reply", "state",
		    sess_state_names[s->state], "reply", sum, NULL);
	conn_deadline(&s->up, 0);
	s->up_await = 0;
	session_up_where(s, where, sizeof(where));

	switch (s->state) {
	case ST_UP_GREETING:
		if (r->code != 220) {
			snprintf(s->last_error, sizeof(s->last_error),
			    "%s greeted with %s", where, sum);
			session_up_failed(s, s->last_error);
			return;
		}
		if (session_is_own_banner(s, sum)) {
			/*
			 * Our own banner: the redirect sent our upstream
			 * connection back to us.  A routing loop, not the
			 * MX's fault: no retry record against it.
			 */
			log_error(s->id, "mail-loop", "host", where, "reason",
			    "the upstream connection came back to mxtls: "
			    "check the redirect's --uid / --mark exclusion",
			    NULL);
			session_up_close(s);
			session_log_delivery(s, "failed", NULL, "mail loop");
			session_txn_fail(s, "554 5.4.6 %s: mail loops back to "
			    "myself", where);
			return;
		}
		session_up_send(s, ST_UP_EHLO, s->cfg->timeouts.command,
		    "EHLO %s", s->cfg->hostname);
		return;
	case ST_UP_EHLO:
		if (r->code != 250) {
			/* An old server without ESMTP: HELO, and no STARTTLS. */
			if (!s->up_helo && r->code / 100 == 5) {
				s->up_helo = 1;
				session_up_send(s, ST_UP_EHLO,
				    s->cfg->timeouts.command, "HELO %s",
				    s->cfg->hostname);
				return;
			}
			session_up_failed(s, sum);
			return;
		}
		memset(&s->up_ehlo, 0, sizeof(s->up_ehlo));
		if (!s->up_helo)
			smtp_ehlo_parse(r, &s->up_ehlo);
		session_after_ehlo(s);
		return;
	case ST_UP_STARTTLS:
		if (r->code != 220) {
			session_tls_failure(s, FAILURE_HANDSHAKE,
			    TLS_RESULT_STARTTLS_NOT_SUPPORTED, sum);
			return;
		}
		/* Bytes after the 220 came in plaintext: an injection. */
		if (buf_len(&s->up.in) > 0 ||
		    conn_start_tls(&s->up, s->rt->ctx[(s->prof_orig != NULL ?
		    s->prof_orig : s->dec.profile) - s->rt->policy->profiles],
		    s->up_host[0] ? s->up_host :
		    s->transparent && s->ntp_names > 0 ? s->tp_names->name[0] :
		    NULL, s->verified_by) == -1) {
			session_tls_failure(s, FAILURE_HANDSHAKE,
			    TLS_RESULT_VALIDATION_FAILURE,
			    buf_len(&s->up.in) > 0 ?
			    "plaintext injected after STARTTLS 220" :
			    "cannot start TLS");
			return;
		}
		conn_deadline(&s->up, session_up_timeout(s, s->cfg->timeouts.tls));
		s->t_phase = clock_mono();
		session_enter(s, ST_UP_TLS);
		return;
	case ST_UP_EHLO_TLS:
		if (r->code != 250) {
			session_up_failed(s, sum);
			return;
		}
		smtp_ehlo_parse(r, &s->up_ehlo);
		session_send_mail(s);
		return;
	case ST_UP_MAIL:
		if (r->code != 250) {
			/* The MTA saw 250 for MAIL: the refusal lands on RCPT. */
			session_log_delivery(s,
			    r->code / 100 == 5 ? "failed" : "deferred", sum,
			    NULL);
			if (s->tlsno == TLSNO_RUN &&
			    (r->code / 100 == 4 || r->code / 100 == 5)) {
				session_txn_fail(s, "%s%s", r->code == 421 ?
				    "451" : "", r->code == 421 ? sum + 3 : sum);
				return;
			}
			if (r->code / 100 == 4 || r->code / 100 == 5) {
				/* 421 closes the server's channel, not ours. */
				snprintf(s->txn_fail, sizeof(s->txn_fail),
				    "%s%s", r->code == 421 ? "451" : "",
				    r->code == 421 ? sum + 3 : sum);
				session_relay_reply(s, r);
				if (!s->closed)
					session_enter(s, s->nrcpt_ok > 0 ?
					    ST_RCPT : ST_MAIL);
			} else
				session_up_protocol_error(s, sum, "MAIL");
			return;
		}
		s->up_txn = 1;
		session_send_rcpt(s);
		return;
	case ST_UP_RCPT:
		if (r->code != 250 && r->code != 251 && r->code / 100 != 4 &&
		    r->code / 100 != 5) {
			session_up_protocol_error(s, sum, "RCPT");
			return;
		}
		if (s->tlsno == TLSNO_RUN) {
			/* The held recipient: on to the held message. */
			if (r->code / 100 != 2) {
				session_txn_fail(s, "%s%s", r->code == 421 ?
				    "451" : "", r->code == 421 ? sum + 3 : sum);
				return;
			}
			dsn_txn_accepted(s->dsn,
			    (s->up_ehlo.ext & SMTP_EXT_DSN) != 0);
			session_up_send(s, ST_UP_DATA,
			    s->cfg->timeouts.data_init, "DATA");
			return;
		}
		if (r->code / 100 == 2) {
			s->nrcpt_ok++;
			dsn_txn_accepted(s->dsn,
			    (s->up_ehlo.ext & SMTP_EXT_DSN) != 0);
		} else if (r->code / 100 == 4)
			s->nrcpt_tempfail++;
		session_relay_reply(s, r);
		if (!s->closed)
			session_enter(s, s->nrcpt_ok > 0 ? ST_RCPT : ST_MAIL);
		return;
	case ST_UP_DATA:
		if (r->code / 100 != 4 && r->code / 100 != 5 && r->code != 354) {
			session_up_protocol_error(s, sum, "DATA");
			return;
		}
		if (r->code != 354 && s->tlsno == TLSNO_RUN) {
			session_txn_fail(s, "%s%s", r->code == 421 ? "451" :
			    "", r->code == 421 ? sum + 3 : sum);
			return;
		}
		if (r->code != 354) {
			session_relay_reply(s, r);
			if (!s->closed)
				session_enter(s, ST_RCPT);
			return;
		}
		/* A held message had its 354 from mxtls already. */
		if (s->tlsno != TLSNO_RUN)
			session_relay_reply(s, r);
		if (!s->closed) {
			smtp_data_scan_init(&s->scan);
			smtp_normalise_init(&s->norm);
			s->up_body = 1;
			session_enter(s, ST_DATA);
		}
		return;
	case ST_UP_DATA_END:
		/* Only the upstream's own 250 may become ours (never a 2xx
		 * or 3xx the protocol does not know here). */
		if (r->code != 250 && r->code / 100 != 4 &&
		    r->code / 100 != 5) {
			session_up_close(s);
			session_log_delivery(s, "deferred", sum,
			    "protocol error");
			session_reply(s, "451 4.5.0 Protocol error: %s answered "
			    "\"%s\" to the end of the message", where, sum);
			session_message_done(s);
			return;
		}
		if (r->code == 250 && s->up_tls)
			session_tlsrpt(s, TLS_RESULT_OK, 0);
		session_log_delivery(s,
		    r->code == 250 ? (s->up_tls ? "tls" : s->fallback ?
		    "fallback" : "plaintext") :
		    r->code / 100 == 5 ? "failed" : "deferred", sum, NULL);
		session_relay_final(s, r);
		/* After the MTA's reply: the notice never delays it. */
		if (r->code == 250)
			dsn_txn_relayed(s->dsn, s->px->dsnq, s->cfg,
			    session_up_name(s), s->up_addr, sum, s->id);
		s->up_txn = 0;
		session_message_done(s);
		return;
	case ST_UP_REUSE:
		if (r->code != 250) {
			session_up_reuse_failed(s, sum);
			return;
		}
		metrics_inc("mxtls_upstream_reuses_total",
		    "outcome=\"reused\"", 1);
		log_info(s->id, "upstream-reused", "mx", session_up_name(s),
		    "addr", s->up_addr, NULL);
		session_send_mail(s);
		return;
	case ST_UP_RSET:
		s->up_txn = 0;
		session_reply(s, "250 2.0.0 Ok");
		if (!s->closed) {
			session_txn_reset(s);
			session_enter(s, ST_IDLE);
		}
		return;
	default:
		/* Not waiting for anything: the server spoke out of turn. */
		log_warn(s->id, "upstream-unsolicited", "reply", sum, NULL);
		session_up_failed(s, "server sent an unsolicited reply");
		return;
	}
}

static void
session_up_input(struct session *s)
{
	size_t used;
	enum smtp_reply_status st;

	while (!s->closed && s->up_open && buf_len(&s->up.in) > 0) {
		if (!s->up_await) {
			session_up_failed(s,
			    "server sent data while no command was pending");
			return;
		}
		if (s->rp == NULL) {
			if ((s->rp = malloc(sizeof(*s->rp))) == NULL) {
				session_up_failed(s, "out of memory");
				return;
			}
			smtp_reply_parser_init(s->rp);
		}
		st = smtp_reply_feed(s->rp, buf_head(&s->up.in),
		    buf_len(&s->up.in), &used);
		buf_consume(&s->up.in, used);
		if (st == SMTP_REPLY_MORE)
			return;
		if (st == SMTP_REPLY_ERROR) {
			session_up_failed(s, s->rp->err);
			return;
		}
		session_on_up_reply(s, &s->rp->reply);
		/* Each reply starts from a fresh parser. */
		free(s->rp);
		s->rp = NULL;
	}
}

/* What the upstream was expected to do, in words for the MTA's bounce. */
static const char *
session_waiting_for(enum sess_state st)
{
	switch (st) {
	case ST_UP_CONNECT:
		return "connecting";
	case ST_UP_GREETING:
		return "waiting for the greeting";
	case ST_UP_STARTTLS:
		return "waiting for the reply to STARTTLS";
	case ST_UP_TLS:
		return "in the TLS handshake";
	case ST_UP_DATA:
		return "waiting for the reply to DATA";
	case ST_DATA:
		return "sending the message";
	case ST_UP_DATA_END:
		return "waiting for the reply to the end of the message";
	default:
		return "waiting for a reply";
	}
}

static void
session_up_event(struct conn *c, enum conn_event ev, void *arg)
{
	struct session *s = arg;
	char reason[300];

	(void)c;
	switch (ev) {
	case CONN_EV_CONNECTED:
		metrics_observe("mxtls_upstream_connect_seconds", "",
		    clock_mono() - s->t_phase);
		conn_deadline(&s->up,
		    session_up_timeout(s, s->cfg->timeouts.greeting));
		s->up_await = 1;
		session_enter(s, ST_UP_GREETING);
		break;
	case CONN_EV_INPUT:
		session_up_input(s);
		break;
	case CONN_EV_DRAINED:
		if (s->state == ST_DATA) {
			conn_deadline(&s->up, 0);
			session_process_input(s);
		}
		break;
	case CONN_EV_TLS_READY:
		conn_deadline(&s->up, 0);
		session_tls_ready(s);
		break;
	case CONN_EV_EOF:
		session_up_failed(s, "connection closed by server");
		break;
	case CONN_EV_ERROR:
		snprintf(reason, sizeof(reason), "%s", s->up.error);
		session_up_failed(s, reason);
		break;
	case CONN_EV_TIMEOUT:
		if (s->up_capped && s->state != ST_UP_REUSE) {
			session_up_out_of_time(s);
			break;
		}
		snprintf(reason, sizeof(reason), "timeout %s",
		    session_waiting_for(s->state));
		session_up_failed(s, reason);
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
	if (s->up_txn)
		session_up_close(s);
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

/* Check MAIL parameters; returns NULL or the reply refusing them. */
static const char *
session_check_mail_params(struct session *s, const char *params)
{
	char tmp[SESSION_PARAMS_MAX], *tok, *save = NULL;

	snprintf(tmp, sizeof(tmp), "%s", params);
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(tok, "SIZE=", 5) == 0) {
			char *end;
			unsigned long long n = strtoull(tok + 5, &end, 10);

			if (*end != '\0' || end == tok + 5)
				return "501 5.5.4 Bad SIZE parameter";
			if (n > (unsigned long long)s->cfg->max_message_size)
				return "552 5.3.4 Message size exceeds fixed "
				       "maximum message size";
		} else if (strcasecmp(tok, "BODY=8BITMIME") == 0 ||
		    strcasecmp(tok, "BODY=7BIT") == 0 ||
		    strcasecmp(tok, "SMTPUTF8") == 0 ||
		    strcasecmp(tok, "REQUIRETLS") == 0 ||
		    strncasecmp(tok, "RET=", 4) == 0 ||
		    strncasecmp(tok, "ENVID=", 6) == 0) {
			continue;
		} else
			return "555 5.5.4 Unsupported MAIL parameter";
	}
	return NULL;
}

/* The parameter word (no value) is among params. */
static int
session_has_param(const char *params, const char *word)
{
	char tmp[SESSION_PARAMS_MAX], *tok, *save = NULL;

	snprintf(tmp, sizeof(tmp), "%s", params);
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save))
		if (strcasecmp(tok, word) == 0)
			return 1;
	return 0;
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
	if (plen >= SESSION_PARAMS_MAX) {
		session_reply(s, "501 5.5.4 Too many MAIL parameters");
		session_bad_command(s);
		return;
	}
	session_txn_reset(s);
	snprintf(s->mail_params, sizeof(s->mail_params), "%.*s", (int)plen,
	    params);
	if ((err = session_check_mail_params(s, s->mail_params)) != NULL ||
	    (err = dsn_txn_mail(&s->dsn, s->cfg->dsn_submit_len > 0, addr,
	    s->mail_params, clock_now())) != NULL) {
		s->mail_params[0] = '\0';
		session_reply(s, "%s", err);
		return;
	}
	snprintf(s->mail_from, sizeof(s->mail_from), "%s", addr);
	s->requiretls = session_has_param(s->mail_params, "REQUIRETLS");
	log_info(s->id, "mail", "from", session_log_addr(s, addr, la,
	    sizeof(la)), "requiretls", s->requiretls ? "yes" : NULL, NULL);
	session_reply(s, "250 2.1.0 Ok");
	if (!s->closed)
		session_enter(s, ST_MAIL);
}

/*
 * MTA-STS counts where no explicit local or central match names the
 * domain (docs/behaviour.md section 6): the default or "*" decided, no nexthop.
 */
static int
session_sts_wanted(const struct session *s, const struct policy_decision *d)
{
	return s->px->sts != NULL && s->cfg->mta_sts && d->nexthop == NULL &&
	    (d->match == NULL || strcmp(d->match->pattern, "*") == 0);
}

/* enforce: mandatory + strict, to the MX names the policy permits. */
static void
session_sts_apply(struct session *s, struct policy_decision *d)
{
	int i = policy_profile_find(s->rt->policy, POLICY_MTA_STS_PROFILE);

	if (s->sts_mode != MTASTS_ENFORCE || i < 0)
		return;
	d->profile = &s->rt->policy->profiles[i];
	d->mx = s->sts_nmx > 0 ? s->sts_mx->p : NULL;
	d->nmx = s->sts_nmx;
}

static void
session_sts_answer(void *arg, const struct sts_answer *a)
{
	struct session *s = arg;
	struct policy_decision dec = s->sts_pending;
	int i;

	s->sts_q = NULL;
	if (a->policy != NULL && a->policy->nmx > 0 && (s->sts_mx == NULL ||
	    s->sts_mx->cap < a->policy->nmx)) {
		free(s->sts_mx);
		if ((s->sts_mx = session_names_new(a->policy->nmx)) == NULL) {
			/*
			 * Without its mx list the policy cannot be applied;
			 * the list of the domain before is gone with it.
			 */
			s->sts_nmx = 0;
			s->sts_domain[0] = '\0';
			s->state = s->nrcpt_ok > 0 ? ST_RCPT : ST_MAIL;
			session_reply(s,
			    "451 4.3.0 Out of memory, try again later");
			if (!s->closed)
				session_enter(s, s->state);
			return;
		}
	}
	snprintf(s->sts_domain, sizeof(s->sts_domain), "%s", dec.domain);
	s->sts_mode = a->policy != NULL ? a->policy->mode : MTASTS_NONE;
	s->sts_max_age = a->policy != NULL ? a->policy->max_age : -1;
	s->sts_nmx = 0;
	for (i = 0; a->policy != NULL && i < a->policy->nmx; i++) {
		snprintf(s->sts_mx->name[i], DNS_NAME_MAX, "%s",
		    a->policy->mx[i]);
		s->sts_nmx++;
	}
	log_info(s->id, "mta-sts", "domain", dec.domain, "mode",
	    mtasts_mode_name(s->sts_mode), "source", a->source, "error",
	    a->error, NULL);
	/* Back where the RCPT came in; the reply comes from the route. */
	s->state = s->nrcpt_ok > 0 ? ST_RCPT : ST_MAIL;
	session_rcpt_route(s, &dec);
	if (!s->closed && session_reads_downstream(s->state))
		session_enter(s, s->state);
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
	if (plen >= SESSION_PARAMS_MAX) {
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
	if (dec.domain[0] == '[' && dec.nexthop == NULL && !s->transparent) {
		session_reply(s, "553 5.1.3 %s: an address literal has no MX "
		    "(mxtls delivers by domain name or nexthop)", addr);
		return;
	}
	snprintf(s->rcpt, sizeof(s->rcpt), "%s", addr);
	snprintf(s->rcpt_params, sizeof(s->rcpt_params), "%.*s", (int)plen,
	    params);
	s->t_rcpt = clock_mono();
	if (session_sts_wanted(s, &dec) &&
	    strcmp(s->sts_domain, dec.domain) != 0) {
		s->sts_pending = dec;
		s->sts_q = sts_lookup(s->px->sts, dec.domain, session_sts_answer,
		    s);
		if (s->sts_q != NULL) {
			session_enter(s, ST_STS_WAIT);
			return;
		}
	}
	session_rcpt_route(s, &dec);
}

/* The RCPT's policy is complete: join the transaction's route or not. */
static void
session_rcpt_route(struct session *s, struct policy_decision *dec)
{
	char key[sizeof(s->route_key)], la[SMTP_PATH_MAX + 1];
	const char *domain = dec->domain;
	const struct policy_profile *orig;
	struct policy_profile req;
	struct policy_decision base = *dec;
	int sts = session_sts_wanted(s, dec);

	if (sts && strcmp(s->sts_domain, dec->domain) == 0)
		session_sts_apply(s, dec);
	orig = dec->profile;
	if (s->requiretls) {
		session_requiretls_profile(orig, &req);
		dec->profile = &req;
	}
	if (session_route_id(s, dec, sts && s->sts_mode == MTASTS_ENFORCE,
	    sts && s->sts_mode == MTASTS_TESTING, key) == -1) {
		session_reply(s, "451 4.3.0 Out of memory, try again later");
		return;
	}
	if (s->have_route && strcmp(key, s->route_key) != 0 &&
	    s->nrcpt_ok == 0) {
		/* Nothing accepted yet: the route is free to change. */
		if (s->up_txn)
			session_up_close(s);
		s->have_route = 0;
		s->txn_fail[0] = '\0';
	}
	if (s->have_route && strcmp(key, s->route_key) != 0) {
		/* RFC 5321 4.5.3.1.10: the MTA sends these again later. */
		session_reply(s,
		    "452 4.5.3 %s goes to another next hop: send it in a "
		    "separate transaction", domain);
		return;
	}
	if (s->txn_fail[0] != '\0') {
		session_reply(s, "%s", s->txn_fail);
		return;
	}
	log_info(s->id, "rcpt", "to", session_log_addr(s, s->rcpt, la,
	    sizeof(la)), "profile", dec->profile->name, "match",
	    dec->match ? dec->match->pattern : "(default)", "mta_sts",
	    session_sts_wanted(s, dec) ? mtasts_mode_name(s->sts_mode) : NULL,
	    NULL);
	if (!s->have_route) {
		s->have_route = 1;
		s->dec = *dec;
		s->dec_base = base;
		if (s->requiretls) {
			s->req_profile = req;
			s->prof_orig = orig;
			s->dec.profile = &s->req_profile;
		}
		s->route_sts = session_sts_wanted(s, dec) &&
		    s->sts_mode == MTASTS_ENFORCE;
		s->route_sts_testing = session_sts_wanted(s, dec) &&
		    s->sts_mode == MTASTS_TESTING;
		snprintf(s->route_key, sizeof(s->route_key), "%s", key);
		snprintf(s->route_domain, sizeof(s->route_domain), "%s",
		    domain);
	}
	if (s->up_open && s->up_txn) {
		session_send_rcpt(s);
		return;
	}
	if (s->up_open && strcmp(s->up_key, s->route_key) == 0) {
		/* An idle upstream for the same route: reuse it. */
		session_send_mail(s);
		return;
	}
	session_up_open(s);
}

static void
session_cmd_data(struct session *s)
{
	if (s->state != ST_RCPT && s->state != ST_MAIL) {
		session_reply(s, "503 5.5.1 Need MAIL and RCPT before DATA");
		session_bad_command(s);
		return;
	}
	if (s->nrcpt_ok == 0) {
		/* Every recipient refused: that attempt gets its summary too. */
		if (s->have_route && s->nrcpt_tried > 0 &&
		    !s->attempt_logged)
			session_log_delivery(s, s->nrcpt_tempfail > 0 ?
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
	if (s->txn_fail[0] != '\0' || !s->up_open || !s->up_txn) {
		session_reply(s, "%s", s->txn_fail[0] ? s->txn_fail :
		    "451 4.4.2 Connection to the next hop was lost");
		return;
	}
	session_up_send(s, ST_UP_DATA, s->cfg->timeouts.data_init, "DATA");
}

static void
session_cmd_rset(struct session *s)
{
	if (s->up_open && s->up_txn && s->txn_fail[0] == '\0') {
		session_up_send(s, ST_UP_RSET, s->cfg->timeouts.command,
		    "RSET");
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

/* --- message data ----------------------------------------------------------- */

static void
session_data_done(struct session *s)
{
	if (s->state == ST_DATA_DISCARD) {
		const char *why = s->data_reply[0] ? s->data_reply :
		    "451 4.3.0 Message refused";

		/* The message never ended upstream: drop that connection. */
		if (s->up_open && s->up_txn)
			session_up_close(s);
		log_info(s->id, "message-refused", "reply", why, NULL);
		session_reply(s, "%s", why);
		if (!s->closed) {
			session_txn_reset(s);
			session_enter(s, ST_IDLE);
		}
		return;
	}
	conn_deadline(&s->up, s->cfg->timeouts.data_done);
	s->up_body = 0;
	s->up_await = 1;
	session_enter(s, ST_UP_DATA_END);
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
	if (conn_write(&s->up, out, len) == -1)
		return -1;
	metrics_inc("mxtls_bytes_relayed_total", "direction=\"upstream\"",
	    (double)len);
	return 0;
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
			room = buf_room(&s->up.out);
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
		if (s->state == ST_DATA) {
			dsn_txn_data(s->dsn, buf_head(in), n);
			failed = 0;
			if (normalise)
				failed = session_data_normalise(s,
				    buf_head(in), n);
			else if (safe > 0 &&
			    conn_write(&s->up, buf_head(in), safe) == -1)
				failed = 1; /* out of memory: never a gap */
			else if (safe > 0)
				metrics_inc("mxtls_bytes_relayed_total",
				    "direction=\"upstream\"", (double)safe);
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
			if (buf_len(&s->up.out) > 0)
				conn_deadline(&s->up,
				    s->cfg->timeouts.data_block);
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

static int
session_reads_downstream(enum sess_state st)
{
	return st <= ST_RCPT || st == ST_DATA || st == ST_DATA_DISCARD ||
	    st == ST_DATA_HOLD;
}

/* Derive what each side should be doing from the state, in one place. */
static void
session_update_io(struct session *s)
{
	int reading;

	if (s->closed)
		return;
	reading = session_reads_downstream(s->state) &&
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
	if (s->up_open)
		conn_set_reading(&s->up, 1);
}

static void
session_enter(struct session *s, enum sess_state st)
{
	if (s->closed)
		return;
	if (s->state != st)
		log_debug(s->id, "state", "from", sess_state_names[s->state],
		    "to", sess_state_names[st], NULL);
	s->state = st;
	if (st == ST_CLOSING) {
		session_up_cache_put(s);
		session_up_close(s);
		conn_set_reading(&s->down, 0);
		conn_deadline(&s->down, 5);
		if (buf_len(&s->down.out) == 0)
			session_close(s);
		return;
	}
	/*
	 * We send one command at a time and a reply is taken off the input
	 * whole: upstream bytes still there at a transition came before
	 * anything asked for them (a reply ahead of its command, a second
	 * reply to one).  Checked here, whatever the transition, so that no
	 * state ever takes them for its own reply (a 354 and a 250 in one
	 * segment must not answer the final dot).
	 */
	if (s->up_open && buf_len(&s->up.in) > 0) {
		session_up_failed(s, "server replied before the command");
		return;
	}
	session_update_io(s);
	/* Pipelined commands may already wait in the buffer. */
	if (!s->processing && session_reads_downstream(st) &&
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
	while (!s->closed && session_reads_downstream(s->state) &&
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
		if (s->state == ST_DATA || s->state == ST_UP_DATA_END)
			log_info(s->id, "client-gone", "state",
			    sess_state_names[s->state], NULL);
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
		    sess_state_names[s->state], NULL);
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

/* --- life cycle ------------------------------------------------------------- */

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
		free(s->rp);
		dsn_txn_free(s->dsn);
		free(s->sts_mx);
		free(s->tp_names);
		dane_tlsa_set_clear(&s->up_tlsa);
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

	if (conn_original_dst(&s->down, &s->orig, &len) == -1)
		return -1;
	s->transparent = 1;
	conn_sockaddr_str((struct sockaddr *)&s->orig, s->orig_str,
	    sizeof(s->orig_str));
	s->orig_port = ntohs(((struct sockaddr_in *)&s->orig)->sin_port);
	log_info(s->id, "original-destination", "addr", s->orig_str, NULL);
	return 0;
}

/* Open sessions from one client address (this one included). */
static int
session_count_client(struct proxy *px, const struct sockaddr_storage *a)
{
	struct session *s;
	int n = 0;

	for (s = px->live; s != NULL; s = s->next)
		n += session_same_addr(&s->down.peer, a);
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
	s->verify = "-";
	if (conn_init_fd(&s->down, px->loop, fd, SESSION_BUFSIZE,
	    session_down_event, s) == -1) {
		close(fd);
		runtime_release(s->rt);
		free(s);
		return;
	}
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
		if (s->state == ST_UP_DATA_END) {
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
