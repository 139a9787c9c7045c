#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "dane.h"
#include "dns.h"
#include "failure.h"
#include "log.h"
#include "metrics.h"
#include "smtp.h"
#include "sockaddr.h"
#include "state.h"
#include "sts.h"
#include "tls.h"
#include "tlsrpt.h"
#include "upcache.h"
#include "upstream.h"

#define UPSTREAM_BUFSIZE 16384
#define UPSTREAM_REUSE_TIMEOUT 10 /* seconds for a cached connection's RSET */

/* The most names a certificate is checked against: the host's own, the
 * transparent destination's MX names, the policy's mx patterns. */
#define UP_NAMES_MAX (1 + POLICY_MX_MAX + MTASTS_MX_MAX)

typedef void up_reply_fn(struct upstream *u, const struct smtp_reply *r,
    const char *sum);

static up_reply_fn up_on_greeting, up_on_ehlo, up_on_starttls, up_on_ehlo_tls,
    up_on_reuse, up_on_mail, up_on_rcpt, up_on_data, up_on_data_end,
    up_on_rset;

/*
 * Each state: its name (logs, tests), the handler of the reply it waits
 * for (NULL: none is due), whether a failure there is the host's before
 * MAIL (the next host may work) or the TLS phase's (the failure table),
 * what a timeout there was waiting for (in words for the MTA's bounce),
 * and whether the owner is told at once on entering it (the owner then
 * checks for unread bytes, after its reply to the MTA).
 */
static const struct {
	const char *name;
	up_reply_fn *on_reply;
	int before_mail;
	int tls_phase;
	const char *waiting;
	int owner_turn;
} up_states[] = {
	[UP_NONE] = { "up-none", NULL, 0, 0, "waiting for a reply", 1 },
	[UP_RESOLVE] = { "up-resolve", NULL, 0, 0, "waiting for a reply", 0 },
	[UP_CONNECT] = { "up-connect", NULL, 1, 0, "connecting", 0 },
	[UP_GREETING] = { "up-greeting", up_on_greeting, 1, 0,
	    "waiting for the greeting", 0 },
	[UP_EHLO] = { "up-ehlo", up_on_ehlo, 1, 0, "waiting for a reply", 0 },
	[UP_STARTTLS] = { "up-starttls", up_on_starttls, 0, 1,
	    "waiting for the reply to STARTTLS", 0 },
	[UP_TLS] = { "up-tls", NULL, 0, 1, "in the TLS handshake", 0 },
	[UP_EHLO_TLS] = { "up-ehlo-tls", up_on_ehlo_tls, 1, 0,
	    "waiting for a reply", 0 },
	[UP_REUSE] = { "up-reuse", up_on_reuse, 0, 0, "waiting for a reply",
	    0 },
	[UP_MAIL] = { "up-mail", up_on_mail, 0, 0, "waiting for a reply", 0 },
	[UP_RCPT] = { "up-rcpt", up_on_rcpt, 0, 0, "waiting for a reply", 0 },
	[UP_TXN] = { "up-txn", NULL, 0, 0, "waiting for a reply", 1 },
	[UP_DATA] = { "up-data", up_on_data, 0, 0,
	    "waiting for the reply to DATA", 0 },
	[UP_BODY] = { "up-body", NULL, 0, 0, "sending the message", 1 },
	[UP_DATA_END] = { "up-data-end", up_on_data_end, 0, 0,
	    "waiting for the reply to the end of the message", 0 },
	[UP_RSET] = { "up-rset", up_on_rset, 0, 0, "waiting for a reply", 0 },
	[UP_IDLE] = { "up-idle", NULL, 0, 0, "waiting for a reply", 1 },
};

static void up_failed(struct upstream *u, const char *reason);
static void up_cache_put(struct upstream *u);
static void up_next_hop(struct upstream *u);
static void up_dane_count(enum tls_result r);
static void up_dane_host(struct upstream *u);
static int up_dane_by_table(const struct upstream *u);
static int up_dane_host_tls(const struct upstream *u);
static const char *up_dane_name(const struct upstream *u);
static void up_tlsrpt(struct upstream *u, enum tls_result r, int dane);
static void up_dane_note(struct upstream *u, enum tls_result r,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void up_try_addr(struct upstream *u);
static void up_reuse_failed(struct upstream *u, const char *reason);
static void up_out_of_time(struct upstream *u);
static void up_send(struct upstream *u, enum up_state next, double timeout,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void up_send_mail(struct upstream *u);
static void up_filter_params(const struct upstream *u, const char *in,
    char *out, size_t outlen);
static void up_connect(struct upstream *u, const struct sockaddr_storage *ss,
    socklen_t len);
static void up_event(struct conn *c, enum conn_event ev, void *arg);

const char *
up_state_name(enum up_state st)
{
	return up_states[st].name;
}

/*
 * Every state change goes through here.  One command at a time is sent
 * and a reply is taken off the input whole: bytes still there at a
 * transition came before anything asked for them (a reply ahead of its
 * command, a second reply to one), and no state may take them for its
 * own reply.  Where the owner is told next, the owner checks, after its
 * own reply to the MTA (upstream_check_unread).
 */
static void
up_enter(struct upstream *u, enum up_state st)
{
	if (u->state != st)
		log_debug(u->id, "state", "from", up_states[u->state].name,
		    "to", up_states[st].name, NULL);
	u->state = st;
	if (!up_states[st].owner_turn && u->open &&
	    buf_len(&u->conn.in) > 0)
		up_failed(u, "server replied before the command");
}

/* Tell the owner about a reply (or room for the message). */
static void
up_report(struct upstream *u, enum up_event ev, const struct smtp_reply *r,
    const char *sum)
{
	struct up_report rep;

	memset(&rep, 0, sizeof(rep));
	rep.ev = ev;
	rep.r = r;
	rep.sum = sum;
	u->cb(u->owner, &rep);
}

/*
 * The route cannot take the transaction: the owner answers the RCPT
 * being relayed (and every later one) with `text`.  lift: the TLS
 * policy's failure, which the message's "TLS-Required: No" may lift;
 * reason is then the delivery line's, written unless it is lifted.
 */
static void
up_fail_lift(struct upstream *u, enum up_lift lift, const char *reason,
    const char *text)
{
	struct up_report rep;

	memset(&rep, 0, sizeof(rep));
	rep.ev = UP_EV_FAILED;
	rep.text = text;
	rep.reason = reason;
	rep.lift = lift;
	u->cb(u->owner, &rep);
}

static void __attribute__((format(printf, 2, 3)))
up_fail(struct upstream *u, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	up_fail_lift(u, UP_LIFT_NONE, NULL, text);
}


/* The most names a certificate is checked against: the host's own, the
 * transparent destination's MX names, the policy's mx patterns. */
#define UP_NAMES_MAX (1 + POLICY_MX_MAX + MTASTS_MX_MAX)

struct up_names *
up_names_new(int cap)
{
	struct up_names *n;
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
up_where(const struct upstream *u, char *dst, size_t len)
{
	if (u->host[0] != '\0')
		snprintf(dst, len, "%s[%s]:%d", u->host, u->addr,
		    u->port);
	else
		snprintf(dst, len, "[%s]:%d", u->addr, u->port);
	return dst;
}

/* The upstream's name for logs: the host, or in transparent mode the MX
 * name that resolves to the original destination. */
const char *
upstream_name(const struct upstream *u)
{
	if (u->host[0] != '\0')
		return u->host;
	if (u->transparent && u->ntp_names > 0)
		return u->tp_names->name[0];
	return NULL;
}

/* The one summary line per delivery attempt (docs/behaviour.md section 3). */
void
upstream_log_delivery(struct upstream *u, const char *outcome,
    const char *reply, const char *reason)
{
	const struct policy_decision *d = &u->route->dec;
	char port[8], nrcpt[12], size[24], labels[160], source[600];

	/* Attempts that lead on to another (a fallback) are not outcomes. */
	if (strcmp(outcome, "tls-failed") != 0)
		metrics_inc("mxtls_deliveries_total",
		    metrics_labels(labels, sizeof(labels), "outcome", outcome,
		    "profile", d->profile ? d->profile->name : "none",
		    NULL), 1);
	if (strcmp(outcome, "tls-failed") != 0 && u->txn->requiretls)
		metrics_inc("mxtls_requiretls_total",
		    metrics_labels(labels, sizeof(labels), "outcome", outcome,
		    NULL), 1);
	if (strcmp(outcome, "tls-failed") != 0 && u->txn->tls_required_no)
		metrics_inc("mxtls_tls_required_no_total",
		    metrics_labels(labels, sizeof(labels), "outcome", outcome,
		    NULL), 1);
	snprintf(port, sizeof(port), "%d", u->port);
	snprintf(nrcpt, sizeof(nrcpt), "%d", u->txn->nrcpt_ok);
	/* Where the profile came from: MTA-STS, a match, or the default. */
	if (u->route->sts)
		snprintf(source, sizeof(source), "mta-sts");
	else if (d->match != NULL)
		snprintf(source, sizeof(source), "%s:%d [match %s]",
		    d->match->origin.file ? d->match->origin.file : "",
		    d->match->origin.line, d->match->pattern);
	else
		snprintf(source, sizeof(source), "default");
	snprintf(size, sizeof(size), "%zu", u->txn->size);
	if (strcmp(outcome, "tls-failed") != 0)
		u->attempt_logged = 1;
	log_info(u->id, "delivery", "outcome", outcome, "rcpt_domain",
	    u->route->domain, "mx", upstream_name(u), "addr",
	    u->addr[0] ? u->addr : NULL, "port",
	    u->addr[0] ? port : NULL, "tls",
	    u->tls ? u->facts.version : "none", "cipher",
	    u->tls ? u->facts.cipher : NULL, "verify", u->verify,
	    "verify_reason",
	    u->tls && u->facts.result != TLS_RESULT_OK ? u->facts.reason :
	    NULL, "result",
	    u->tls ? tls_result_name(u->facts.result) : NULL, "dnssec",
	    u->route->have && u->route->dec.nexthop == NULL && !u->transparent ?
	    dnssec_status_name(dnssec_status_worst(u->mx_sec,
	    u->addr_sec)) : NULL, "profile",
	    u->route->dec.profile != NULL ? u->route->dec.profile->name : NULL,
	    "policy_source", u->route->have ? source : NULL, "fallback",
	    u->fallback ? "yes" : NULL, "reused", u->reused ? "yes" : NULL,
	    "requiretls", u->txn->requiretls ? "yes" : NULL,
	    "tls_required_no", u->txn->tls_required_no ? "yes" : NULL,
	    "nrcpt", nrcpt, "size", size, "reply",
	    reply, "reason",
	    reason == NULL && u->fallback ? u->verdict_reason : reason, NULL);
}

/*
 * Close the upstream connection.  One in a clean state (no reply due,
 * not inside a message, nothing unread, no error) says QUIT first (RFC
 * 5321 4.1.1.10), so the server does not log a lost connection; the
 * cache waits for its 221, briefly, and the session goes on at once.
 */
static void
up_release(struct upstream *u)
{
	if (!u->open)
		return;
	if (!u->await && !u->body && !u->conn.eof &&
	    u->conn.error[0] == '\0' && buf_len(&u->conn.in) == 0 &&
	    (u->conn.state == CONN_OPEN || u->conn.state == CONN_TLS))
		upcache_quit(&u->px->cache, &u->conn);
	else
		conn_free(&u->conn);
	u->open = 0;
}

void
upstream_close(struct upstream *u)
{
	if (u->dq != NULL) {
		dns_cancel(u->dq);
		u->dq = NULL;
	}
	up_release(u);
	free(u->rp);
	u->rp = NULL;
	u->txn_open = 0;
	u->await = 0;
	u->body = 0;
	u->fallback = 0;
	u->key[0] = '\0';
	u->ckey[0] = '\0';
	u->reused = 0;
	up_enter(u, UP_NONE);
}

static socklen_t
up_ss_len(const struct sockaddr_storage *ss)
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
up_key_hash(const char *head, const char *const *names, int n,
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
 * dialled.  dst[UPSTREAM_ROUTE_KEY_LEN + 1]; -1 out of memory.
 */
int
upstream_route_id(const struct upstream *u, const struct policy_decision *d,
    int sts_enforce, int sts_testing, char *dst)
{
	char *head, *p;
	int r;

	if (asprintf(&head, "%s:%s|%s|%d|%d|%s|%d|", d->nexthop ? "nexthop" :
	    "domain", d->nexthop ? d->nexthop : d->domain, d->profile->name,
	    sts_enforce, sts_testing, u->transparent ? u->orig_str : "",
	    u->transparent ? u->orig_port : 0) == -1) {
		dst[0] = '\0';
		return -1;
	}
	for (p = head; *p != '|'; p++)
		*p = (char)tolower((unsigned char)*p);
	r = up_key_hash(head, d->mx, d->nmx, dst,
	    UPSTREAM_ROUTE_KEY_LEN + 1);
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
up_route_dane(const struct upstream *u)
{
	const struct policy_profile *p = u->route->dec.profile;

	return u->cfg->dnssec != CONFIG_DNSSEC_OFF &&
	    p->dane != DANE_MODE_OFF && p->tls != POLICY_TLS_OFF &&
	    (u->route->dec.nexthop == NULL || u->transparent);
}

/*
 * What a cached connection may carry: one made under the same runtime (a
 * changed policy never reuses one verified under the old) for the same
 * route (upstream_route_id).  Where DANE may apply, also the host, its
 * address and port, their DNSSEC standing and the DANE verdict with the
 * TLSA records' fingerprint (verified_by): such a connection is taken
 * only after this session's own DNS lookups found the same facts.
 */
static void
up_cache_key(const struct upstream *u, char *dst, size_t len)
{
	char k[UPSTREAM_ROUTE_KEY_LEN + DNS_NAME_MAX + INET6_ADDRSTRLEN + 160];

	if (up_route_dane(u))
		snprintf(k, sizeof(k), "%lu|%s|%s|%s|%d|%s|%s", u->rt->gen,
		    u->route->key, u->host, u->addr, u->port,
		    dnssec_status_name(dnssec_status_worst(u->mx_sec,
		    u->addr_sec)), u->verified_by);
	else
		snprintf(k, sizeof(k), "%lu|%s", u->rt->gen, u->route->key);
	tls_sha256_hex(k, dst, len);
}

/*
 * At the end of a session an upstream that is idle in a clean state (TLS
 * up and verified as the profile demands, no transaction, no reply due,
 * nothing unread) may serve the next session's transaction.
 */
static void
up_cache_put(struct upstream *u)
{
	struct upcache_info info;

	if (!u->open || !u->tls || u->fallback || u->txn_open ||
	    u->await || u->ckey[0] == '\0' || u->rp != NULL ||
	    u->px->draining || u->rt != u->px->rt ||
	    u->conn.state != CONN_TLS || buf_len(&u->conn.in) > 0 ||
	    buf_len(&u->conn.out) > 0 ||
	    clock_mono() - u->opened > u->cfg->reuse_time)
		return;
	memset(&info, 0, sizeof(info));
	snprintf(info.host, sizeof(info.host), "%s", u->host);
	snprintf(info.addr, sizeof(info.addr), "%s", u->addr);
	info.port = u->port;
	info.ehlo = u->ehlo;
	info.helo = u->helo;
	info.facts = u->facts;
	info.verify = u->verify;
	info.opened = u->opened;
	upcache_put(&u->px->cache, u->ckey, &u->conn, &info,
	    u->cfg->cache_time, u->cfg->cache_max);
	u->open = 0;
}

/*
 * Take a cached connection under the session's cache key, and ask it
 * with RSET whether it is still there.  0 when there is none.  Routes
 * without DANE ask before the DNS (the route is the whole key); DANE
 * routes ask per address, after the host's DANE verdict (late).
 */
static int
up_cache_take(struct upstream *u, int late)
{
	struct upcache_info info;
	char key[UPCACHE_KEY_LEN + 1];

	if (u->cfg->cache_max == 0 || u->cfg->cache_time <= 0 ||
	    up_route_dane(u) != late)
		return 0;
	up_cache_key(u, key, sizeof(key));
	if (!upcache_take(&u->px->cache, key, u->cfg->reuse_time, &u->conn,
	    up_event, u, &info))
		return 0;
	u->late = late;
	u->open = 1;
	u->tls = 1;
	u->reused = 1;
	u->last_error[0] = '\0';
	u->verdict = FAILURE_CONTACT;
	snprintf(u->key, sizeof(u->key), "%s", u->route->key);
	snprintf(u->ckey, sizeof(u->ckey), "%s", key);
	snprintf(u->host, sizeof(u->host), "%s", info.host);
	snprintf(u->addr, sizeof(u->addr), "%s", info.addr);
	u->port = info.port;
	u->ehlo = info.ehlo;
	u->helo = info.helo;
	u->facts = info.facts;
	u->facts.resumed = 0;
	u->verify = info.verify;
	u->opened = info.opened;
	conn_set_reading(&u->conn, 1);
	/* A live cached connection answers at once; a silent one is gone. */
	up_send(u, UP_REUSE, u->cfg->timeouts.command <
	    UPSTREAM_REUSE_TIMEOUT ? u->cfg->timeouts.command :
	    UPSTREAM_REUSE_TIMEOUT, "RSET");
	return 1;
}

/* --- upstream: sending and failing -------------------------------------- */

/*
 * The deadline of an upstream phase, cut to what is left of rcpt_timeout
 * while the MTA waits for its RCPT, so that one MX host after another
 * never outlasts the MTA's own patience (docs/security.md D-15).
 */
static double
up_timeout(struct upstream *u, double phase)
{
	double left;

	u->capped = 0;
	if (u->t_rcpt == 0)
		return phase;
	left = u->t_rcpt + u->cfg->timeouts.rcpt - clock_mono();
	if (left >= phase)
		return phase;
	u->capped = 1;
	return left > 0.001 ? left : 0.001;
}

static void
up_send(struct upstream *u, enum up_state next, double timeout,
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
	if (u->cfg->log_addresses == CONFIG_ADDR_FULL)
		log_debug(u->id, "up-send", "line", line, NULL);
	conn_write(&u->conn, line, (size_t)n + 2);
	conn_deadline(&u->conn, up_timeout(u, timeout));
	u->await = 1;
	up_enter(u, next);
}



/*
 * MTA-STS testing (RFC 8461 section 5): deliver as the lower sources say,
 * but report what enforce would have refused.
 */
static void
up_sts_testing_report(struct upstream *u, const char *reason)
{
	char where[320];

	if (!u->route->sts_testing)
		return;
	up_where(u, where, sizeof(where));
	log_warn(u->id, "mta-sts-testing-failure", "domain", u->route->domain,
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
up_wanted_names(const struct upstream *u,
    const char *names[UP_NAMES_MAX])
{
	int nnames = 0, i;

	if (u->host[0] != '\0') {
		names[nnames++] = u->host;
		return nnames;
	}
	for (i = 0; u->transparent && i < u->ntp_names &&
	    nnames < UP_NAMES_MAX; i++)
		names[nnames++] = u->tp_names->name[i];
	for (i = 0; i < u->route->dec.nmx && nnames < UP_NAMES_MAX; i++)
		names[nnames++] = u->route->dec.mx[i];
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
up_verdict_key(const struct upstream *u, struct state_key *k,
    char *policy)
{
	const struct policy_profile *p = u->route->dec.profile;
	const char *names[UP_NAMES_MAX];
	const char *ciphers = config_profile_ciphers(u->cfg, p);
	char *head;

	/* A DANE host's verdict is also held against its TLSA records. */
	if (asprintf(&head, "%s|%d|%d|%s|%d|%d|%s|%s%s", p->name, (int)p->tls,
	    (int)p->verify, config_profile_ca_bundle(u->cfg, p),
	    config_profile_min_version(u->cfg, p),
	    config_profile_max_version(u->cfg, p), ciphers ? ciphers : "",
	    u->verified_by, u->verified_by[0] ? "|" : "") == -1)
		policy[0] = '\0';
	else {
		up_key_hash(head, names, up_wanted_names(u, names),
		    policy, STATE_POLICY_MAX + 1);
		free(head);
	}
	k->host = u->host;
	k->addr = u->addr;
	k->port = u->port;
	k->profile = p->name;
	k->policy = policy;
}

/* Keep the first host's verdict: it is the most preferred MX. */
static void
up_note_verdict(struct upstream *u, enum failure_action a,
    enum failure_event ev, const char *reason, time_t retry)
{
	if (u->verdict != FAILURE_CONTACT)
		return;
	u->verdict = a;
	u->verdict_event = ev;
	snprintf(u->verdict_reason, sizeof(u->verdict_reason), "%s", reason);
	snprintf(u->verdict_host, sizeof(u->verdict_host), "%s", u->host);
	u->verdict_ss = u->addrs[u->addr_i];
	u->verdict_port = u->port;
	u->verdict_retry = retry;
}

/*
 * A TLS failure at the host just contacted (docs/behaviour.md section
 * 7): the table decides from the host's retry record; the record is
 * stored at once so a restart does not forget it.  The next host may
 * still deliver over TLS.
 */
static void
up_tls_failure(struct upstream *u, enum failure_event ev,
    enum tls_result result, const char *reason)
{
	const struct retry_record *old;
	struct retry_record rec;
	const struct failure_timing *t = &u->cfg->timing;
	enum failure_action a;
	time_t now = clock_now();
	struct state_key k;
	char where[320], err[256], policy[STATE_POLICY_MAX + 1];

	if (up_dane_host_tls(u) && !up_dane_by_table(u)) {
		/* Never in the clear, never bounced: the next host, or 451. */
		up_dane_note(u,
		    result == TLS_RESULT_STARTTLS_NOT_SUPPORTED ?
		    TLS_RESULT_DANE_REQUIRED :
		    result == TLS_RESULT_TLSA_INVALID ? result :
		    TLS_RESULT_VALIDATION_FAILURE,
		    "TLS to %s (%s) failed: %s; its TLSA records (DANE) "
		    "require TLS%s", u->host[0] ? u->host :
		    up_dane_name(u), u->addr, reason,
		    u->dane == DANE_HOST_AUTH ? " with a matching "
		    "certificate" : "");
		upstream_log_delivery(u, "tls-failed", NULL, reason);
		upstream_close(u);
		up_try_addr(u);
		return;
	}
	up_tlsrpt(u, result, 0);
	up_verdict_key(u, &k, policy);
	old = state_get(u->px->state, &k);
	if (old != NULL)
		rec = *old;
	else
		memset(&rec, 0, sizeof(rec));
	a = failure_after(u->route->dec.profile, ev, reason, &rec, now, t);
	if (state_put(u->px->state, &k, &rec, err, sizeof(err)) == -1)
		log_error(u->id, "state-write-failed", "error", err, NULL);
	metrics_set("mxtls_retry_records", "state=\"failed-once\"",
	    state_count(u->px->state, RETRY_FAILED_ONCE));
	metrics_set("mxtls_retry_records", "state=\"broken\"",
	    state_count(u->px->state, RETRY_BROKEN));
	metrics_inc("mxtls_tls_failures_total",
	    metrics_labels(where, sizeof(where), "result",
	    tls_result_name(result), NULL), 1);
	up_where(u, where, sizeof(where));
	/* With hosts left to try, this host's failure is no outcome yet. */
	upstream_log_delivery(u, u->addr_i + 1 < u->naddrs ||
	    u->hop_i + 1 < u->nhops ? "tls-failed" :
	    a == FAILURE_DEFER ? "deferred" :
	    a == FAILURE_FAIL || a == FAILURE_FAIL_NO_TLS ? "failed" :
	    "tls-failed", NULL, reason);
	log_warn(u->id, "tls-failure", "host", where, "result",
	    tls_result_name(result), "event", failure_event_name(ev),
	    "action", failure_action_name(a), "record",
	    retry_state_name(rec.state), "reason", reason, NULL);
	upstream_close(u);
	if (u->route->sts)
		sts_refresh(u->px->sts, u->route->domain);
	up_sts_testing_report(u, reason);
	up_note_verdict(u, a, ev, reason, rec.first_failure +
	    t->retry_delay);
	up_try_addr(u);
}

/* No host delivered over TLS: carry out the first host's verdict. */
static void
up_apply_verdict(struct upstream *u)
{
	const char *prof = u->route->dec.profile->name;
	char where[320], when[32], reply[512];
	struct tm tm;

	snprintf(u->host, sizeof(u->host), "%s", u->verdict_host);
	sockaddr_str((struct sockaddr *)&u->verdict_ss, u->addr,
	    sizeof(u->addr));
	u->port = u->verdict_port;
	up_where(u, where, sizeof(where));
	switch (u->verdict) {
	case FAILURE_DEFER:
		gmtime_r(&u->verdict_retry, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(reply, sizeof(reply),
		    "451 4.7.5 TLS to %s for domain %s failed: %s; retry "
		    "after %s", where, u->route->domain, u->verdict_reason,
		    when);
		up_fail_lift(u, u->route->sts ? UP_LIFT_POLICY :
		    UP_LIFT_LOCAL, NULL, reply);
		return;
	case FAILURE_FAIL_NO_TLS:
	case FAILURE_FAIL:
		if (!u->route->sts)
			break;
		/* RFC 8461 section 5: defer, and fetch the policy again. */
		sts_refresh(u->px->sts, u->route->domain);
		snprintf(reply, sizeof(reply),
		    "451 4.7.5 TLS to %s for domain %s failed: %s; the "
		    "domain's MTA-STS policy requires TLS, will retry",
		    where, u->route->domain, u->verdict_reason);
		up_fail_lift(u, UP_LIFT_POLICY, NULL, reply);
		return;
	default:
		break;
	}
	switch (u->verdict) {
	case FAILURE_FAIL_NO_TLS:
	case FAILURE_FAIL:
		if (!u->txn->requiretls)
			break;
		up_fail(u, "550 5.7.30 REQUIRETLS: TLS to %s for "
		    "domain %s failed again: %s", where, u->route->domain,
		    u->verdict_reason);
		return;
	default:
		break;
	}
	switch (u->verdict) {
	case FAILURE_FAIL_NO_TLS:
		snprintf(reply, sizeof(reply),
		    "550 5.7.10 %s does not offer STARTTLS and profile %s "
		    "requires TLS for domain %s", where, prof,
		    u->route->domain);
		up_fail_lift(u, UP_LIFT_LOCAL, NULL, reply);
		return;
	case FAILURE_FAIL:
		snprintf(reply, sizeof(reply),
		    "550 5.7.5 TLS to %s for domain %s failed again: %s "
		    "(profile %s)", where, u->route->domain, u->verdict_reason,
		    prof);
		up_fail_lift(u, UP_LIFT_LOCAL, NULL, reply);
		return;
	case FAILURE_FALLBACK_CLEAR:
		/* A fresh connection, never the one whose TLS failed. */
		log_warn(u->id, "fallback-clear", "host", where, "reason",
		    u->verdict_reason, NULL);
		u->fallback = 1;
		up_connect(u, &u->verdict_ss,
		    up_ss_len(&u->verdict_ss));
		return;
	default:
		up_fail(u, "451 4.3.0 Internal error: verdict %s",
		    failure_action_name(u->verdict));
		return;
	}
}

static void
up_failed(struct upstream *u, const char *reason)
{
	struct up_report rep;
	char where[320];
	enum up_state st = u->state;

	if (st == UP_REUSE) {
		up_reuse_failed(u, reason);
		return;
	}
	snprintf(u->last_error, sizeof(u->last_error), "%s", reason);
	up_where(u, where, sizeof(where));
	log_info(u->id, "upstream-error", "host", where, "state",
	    up_state_name(st), "reason", reason, NULL);
	if (up_states[st].before_mail && u->fallback) {
		upstream_close(u);
		upstream_log_delivery(u, "deferred", NULL, reason);
		up_fail(u,
		    "451 4.4.1 Fallback connection to %s failed: %s", where,
		    reason);
		return;
	}
	if (up_states[st].before_mail) {
		/*
		 * No connect, no greeting, a closed connection or a 421 at
		 * EHLO: the next address or MX host may work (rcpt_timeout
		 * permitting), as Postfix goes on to the next MX.
		 */
		upstream_close(u);
		up_try_addr(u);
		return;
	}
	if (up_states[st].tls_phase) {
		up_tls_failure(u, FAILURE_HANDSHAKE,
		    TLS_RESULT_VALIDATION_FAILURE, reason);
		return;
	}
	upstream_close(u);
	if (st == UP_MAIL || st == UP_RCPT || st == UP_DATA) {
		upstream_log_delivery(u, "deferred", NULL, reason);
		up_fail(u, "451 4.4.2 Connection to %s failed: %s", where,
		    reason);
		return;
	}
	/* In the message, at its end, at RSET or idle: the owner's call. */
	memset(&rep, 0, sizeof(rep));
	rep.ev = UP_EV_LOST;
	rep.in = st;
	rep.where = where;
	rep.reason = reason;
	u->cb(u->owner, &rep);
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
up_out_of_time(struct upstream *u)
{
	char where[320], secs[16];
	int trying = !(u->open && u->tls) && u->state <= UP_TLS &&
	    u->verdict != FAILURE_CONTACT &&
	    u->verdict != FAILURE_FALLBACK_CLEAR;

	up_where(u, where, sizeof(where));
	snprintf(secs, sizeof(secs), "%.0f", u->cfg->timeouts.rcpt);
	log_info(u->id, "rcpt-timeout", "host", where, "state",
	    up_state_name(u->state), "rcpt_timeout", secs, NULL);
	upstream_close(u);
	if (trying && u->verdict == FAILURE_DEFER) {
		up_apply_verdict(u);
		return;
	}
	if (trying) {
		up_fail(u, "451 4.7.5 TLS to %s for domain %s failed: "
		    "%s; no other next hop answered within rcpt_timeout (%s s)",
		    u->verdict_host, u->route->domain, u->verdict_reason, secs);
		return;
	}
	up_fail(u, "451 4.4.2 No next hop for %s answered within "
	    "rcpt_timeout (%s s)%s%s", u->route->domain, secs,
	    u->last_error[0] ? ": " : "", u->last_error);
}

/* --- upstream: next hops ------------------------------------------------- */

/* An MX host (or the implicit MX) the policy's mx names permit. */
static int
up_mx_permitted(struct upstream *u, const char *host)
{
	const struct policy_decision *d = &u->route->dec;
	int j;

	if (d->nmx == 0 || d->profile->tls == POLICY_TLS_OFF)
		return 1;
	for (j = 0; j < d->nmx; j++)
		if (policy_mx_pattern_match(d->mx[j], host))
			return 1;
	log_info(u->id, "mx-not-permitted", "mx", host, NULL);
	return 0;
}

static void
up_mx_result(void *arg, const struct dns_mx_result *res)
{
	struct upstream *u = arg;
	const char *dom = u->route->domain;
	int i;

	u->dq = NULL;
	u->mx_sec = res->sec;
	if (res->sec == DNSSEC_BOGUS) {
		/* A forged or broken signed answer: never acted on. */
		log_warn(u->id, "dns", "domain", dom, "result", "bogus",
		    "reason", res->error, NULL);
		up_dane_count(TLS_RESULT_DNSSEC_INVALID);
		upstream_log_delivery(u, "deferred", NULL, res->error);
		up_fail(u, "451 4.7.5 %s", res->error);
		return;
	}
	switch (res->status) {
	case DNS_NULLMX:
		log_info(u->id, "dns", "domain", dom, "result", "null-mx",
		    NULL);
		up_fail(u,
		    "556 5.1.10 Domain %s accepts no mail (null MX, RFC 7505)",
		    dom);
		return;
	case DNS_NXDOMAIN:
		log_info(u->id, "dns", "domain", dom, "result", "nxdomain",
		    NULL);
		up_fail(u, "550 5.1.2 Domain %s does not exist", dom);
		return;
	case DNS_TEMPFAIL:
		log_warn(u->id, "dns", "domain", dom, "result", "tempfail",
		    "reason", res->error, NULL);
		up_fail(u, "451 4.4.3 DNS lookup for %s failed: %s",
		    dom, res->error ? res->error : "temporary failure");
		return;
	case DNS_NODATA:
		/*
		 * RFC 5321 5.1: no MX means the domain itself (implicit MX).
		 * The mx pins hold for it as for any MX host (RFC 8461 4.1):
		 * a forged NODATA must not lead to the domain's web server.
		 */
		u->nhops = 0;
		if (up_mx_permitted(u, dom)) {
			snprintf(u->hops[0].name, sizeof(u->hops[0].name),
			    "%s", dom);
			u->hops[0].port = 25;
			u->hops[0].from_dns = 1;
			u->nhops = 1;
		}
		break;
	case DNS_OK:
		u->nhops = 0;
		for (i = 0; i < res->nmx && u->nhops < UPSTREAM_HOSTS_MAX;
		    i++) {
			if (!up_mx_permitted(u, res->mx[i].host))
				continue;
			snprintf(u->hops[u->nhops].name, DNS_NAME_MAX, "%s",
			    res->mx[i].host);
			u->hops[u->nhops].port = 25;
			u->hops[u->nhops].from_dns = 1;
			u->nhops++;
		}
		break;
	}
	if (u->nhops == 0) {
		upstream_log_delivery(u, "deferred", NULL,
		    "no MX host matches the policy's mx names");
		up_fail(u,
		    "451 4.7.5 No MX host of %s matches the mx names of "
		    "profile %s", dom, u->route->dec.profile->name);
		return;
	}
	u->hop_i = -1;
	up_next_hop(u);
}

static void
up_addr_result(void *arg, const struct dns_addr_result *res)
{
	struct upstream *u = arg;
	int i;

	u->dq = NULL;
	if (res->status != DNS_OK) {
		snprintf(u->last_error, sizeof(u->last_error),
		    "address lookup for %s: %s", u->hops[u->hop_i].name,
		    res->error ? res->error : "no address");
		up_next_hop(u);
		return;
	}
	u->naddrs = 0;
	for (i = 0; i < res->naddr && u->naddrs < UPSTREAM_ADDRS_MAX; i++)
		u->addrs[u->naddrs++] = res->addr[i];
	u->addr_sec = res->sec;
	/*
	 * RFC 7672 2.2.2: a secure CNAME chain moves the TLSA records to
	 * its target first; the name before it is asked when the target
	 * has none.
	 */
	if (res->canon[0] != '\0' && res->sec == DNSSEC_SECURE) {
		snprintf(u->tlsa_base, sizeof(u->tlsa_base), "%s", res->canon);
		snprintf(u->tlsa_retry, sizeof(u->tlsa_retry), "%s",
		    u->hops[u->hop_i].name);
	} else {
		snprintf(u->tlsa_base, sizeof(u->tlsa_base), "%s",
		    u->hops[u->hop_i].name);
		u->tlsa_retry[0] = '\0';
	}
	up_dane_host(u);
}

/* Count a DANE outcome by its RFC 8460 result type ("ok" for success). */
static void
up_dane_count(enum tls_result r)
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
up_dane_wanted(const struct upstream *u)
{
	return up_route_dane(u) &&
	    (u->hops[u->hop_i].from_dns || u->transparent);
}

/* The MX host name DANE is about (in transparent mode, not the hop's). */
static const char *
up_dane_name(const struct upstream *u)
{
	return u->transparent ? u->tp_dane[0] ? u->tp_dane : u->orig_str :
	    u->hops[u->hop_i].name;
}

/*
 * An explicit match with a mandatory profile hands a DANE host's failure
 * to the failure table (retry, then 550); otherwise DANE failures are
 * deferred, as for MTA-STS enforce: never bounced, never in the clear.
 */
static int
up_dane_by_table(const struct upstream *u)
{
	const struct policy_decision *d = &u->route->dec;

	return d->match != NULL && strcmp(d->match->pattern, "*") &&
	    d->profile->tls == POLICY_TLS_MANDATORY;
}

static int
up_dane_host_tls(const struct upstream *u)
{
	return u->dane == DANE_HOST_AUTH || u->dane == DANE_HOST_ENCRYPT;
}

/*
 * Count the attempt at the host just tried for TLS reports (RFC 8460):
 * r is TLS_RESULT_OK for a session as required, else the failure; dane
 * says a DANE host failed (also before any connection).  Only the
 * recipient domain's own hosts with TLS wanted count: a nexthop is the
 * operator's choice, not the domain's, and TLS off tried nothing.
 */
static void
up_tlsrpt(struct upstream *u, enum tls_result r, int dane)
{
	struct tlsrpt_attempt a;
	int same = strcmp(u->sts->domain, u->route->domain) == 0;

	/* A message sent on its TLS-Required: No applied no policy. */
	if (u->px->tlsrpt == NULL || !u->route->have ||
	    u->route->dec.nexthop != NULL || u->txn->tls_required_no ||
	    u->route->dec.profile->tls == POLICY_TLS_OFF ||
	    u->route->domain[0] == '[')
		return;
	memset(&a, 0, sizeof(a));
	a.domain = u->route->domain;
	a.result = r;
	a.dane = dane || up_dane_host_tls(u);
	a.tlsa = &u->tlsa;
	a.sts = u->route->sts || u->route->sts_testing;
	a.sts_mode = u->route->sts ? "enforce" : "testing";
	/* A later RCPT's lookup may have replaced the policy's details. */
	a.sts_max_age = same ? u->sts->max_age : -1;
	a.sts_mx = same && u->sts->nmx > 0 ? u->sts->mx->p : NULL;
	a.sts_nmx = same ? u->sts->nmx : 0;
	a.mx_host = a.dane ? up_dane_name(u) : upstream_name(u);
	a.mx_addr = u->open ? u->addr : NULL;
	a.fd = u->open ? u->conn.fd : -1;
	a.client = u->txn->client;
	tlsrpt_count(u->px->tlsrpt, u->id, &a);
}

/* A DANE host cannot be used: remember why for the route's 451 4.7.5. */
static void __attribute__((format(printf, 3, 4)))
up_dane_note(struct upstream *u, enum tls_result r, const char *fmt, ...)
{
	char why[sizeof(u->dane_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn(u->id, "dane-failure", "mx", up_dane_name(u),
	    "addr", u->addr[0] ? u->addr : NULL, "result",
	    tls_result_name(r), "reason", why, NULL);
	up_dane_count(r);
	up_tlsrpt(u, r, 1);
	if (!u->dane_failed)
		snprintf(u->dane_error, sizeof(u->dane_error), "%s", why);
	u->dane_failed = 1;
}

/* The host's DANE standing is known: use it, or go on to the next. */
static void
up_dane_decided(struct upstream *u)
{
	const char *host = up_dane_name(u);
	char fp[65];

	u->verified_by[0] = '\0';
	switch (u->dane) {
	case DANE_HOST_UNUSABLE:
		/* RFC 7672 2.2: as if unreachable; others only with DANE. */
		u->dane_tainted = 1;
		up_dane_note(u, TLS_RESULT_DNSSEC_INVALID,
		    "DNSSEC lookups for MX host %s failed: %s", host,
		    u->dane_why ? u->dane_why : "bogus or no answer");
		up_next_hop(u);
		return;
	case DANE_HOST_NONE:
		if (u->route->dec.profile->dane == DANE_MODE_ONLY &&
		    up_dane_by_table(u)) {
			u->dane_required = 1;
			break;
		}
		if (u->route->dec.profile->dane == DANE_MODE_ONLY) {
			up_dane_note(u, TLS_RESULT_DANE_REQUIRED,
			    "MX host %s has no usable DNSSEC-signed TLSA "
			    "records and profile %s requires DANE", host,
			    u->route->dec.profile->name);
			up_next_hop(u);
			return;
		}
		if (u->dane_tainted) {
			up_dane_note(u, TLS_RESULT_DNSSEC_INVALID,
			    "MX host %s is not DANE-authenticated and the "
			    "DNSSEC lookups of another MX host of %s failed",
			    host, u->route->domain);
			up_next_hop(u);
			return;
		}
		break;
	case DANE_HOST_AUTH:
		dane_set_fingerprint(&u->tlsa, fp, sizeof(fp));
		snprintf(u->verified_by, sizeof(u->verified_by), "dane:%s",
		    fp);
		break;
	case DANE_HOST_ENCRYPT:
		snprintf(u->verified_by, sizeof(u->verified_by),
		    "dane-encrypt");
		break;
	}
	if (up_dane_wanted(u))
		log_info(u->id, "dane", "mx", host, "dnssec",
		    dnssec_status_name(dnssec_status_worst(u->mx_sec,
		    u->addr_sec)), "tlsa_base", u->dane != DANE_HOST_NONE ?
		    u->tlsa_base : NULL, "state", dane_host_name(u->dane),
		    "reason", u->dane_why, NULL);
	u->addr_i = -1;
	up_try_addr(u);
}

static void
up_tlsa_result(void *arg, const struct dns_tlsa_result *res)
{
	struct upstream *u = arg;
	enum dane_lookup lookup;
	int i;

	u->dq = NULL;
	lookup = res->status == DNS_OK ? DANE_LOOKUP_RECORDS :
	    res->status == DNS_NODATA ? DANE_LOOKUP_NODATA :
	    res->status == DNS_NXDOMAIN ? DANE_LOOKUP_NXDOMAIN :
	    DANE_LOOKUP_FAILED;
	if ((lookup == DANE_LOOKUP_NODATA || lookup == DANE_LOOKUP_NXDOMAIN) &&
	    u->tlsa_retry[0] != '\0') {
		snprintf(u->tlsa_base, sizeof(u->tlsa_base), "%s",
		    u->tlsa_retry);
		u->tlsa_retry[0] = '\0';
		u->dq = dns_lookup_tlsa(u->rt->dns, u->tlsa_base,
		    u->hops[u->hop_i].port, up_tlsa_result, u);
		if (u->dq == NULL)
			up_fail(u,
			    "451 4.3.0 Out of memory, try again later");
		return;
	}
	for (i = 0; lookup == DANE_LOOKUP_RECORDS && i < res->nrr; i++)
		if (dane_tlsa_set_add(&u->tlsa, res->rr[i].data,
		    res->rr[i].len) < 0 && errno == ENOMEM)
			lookup = DANE_LOOKUP_FAILED;
	u->dane = dane_host_decide(u->mx_sec, u->addr_sec, lookup,
	    res->sec, &u->tlsa, &u->dane_why);
	if (u->dane == DANE_HOST_UNUSABLE && res->error != NULL) {
		snprintf(u->last_error, sizeof(u->last_error), "%s",
		    res->error);
		u->dane_why = u->last_error;
	}
	up_dane_decided(u);
}

/* Find the host's DANE standing (RFC 7672 2.2), then try its addresses. */
static void
up_dane_host(struct upstream *u)
{
	struct up_hop *h = &u->hops[u->hop_i];

	dane_tlsa_set_clear(&u->tlsa);
	memset(&u->tlsa, 0, sizeof(u->tlsa));
	u->dane = DANE_HOST_NONE;
	u->dane_required = 0;
	u->dane_why = NULL;
	if (!up_dane_wanted(u)) {
		up_dane_decided(u);
		return;
	}
	if (u->mx_sec != DNSSEC_SECURE || u->addr_sec != DNSSEC_SECURE) {
		u->dane = dane_host_decide(u->mx_sec, u->addr_sec,
		    DANE_LOOKUP_NODATA, DNSSEC_INSECURE, NULL, &u->dane_why);
		up_dane_decided(u);
		return;
	}
	u->dq = dns_lookup_tlsa(u->rt->dns, u->tlsa_base, h->port,
	    up_tlsa_result, u);
	if (u->dq == NULL)
		up_fail(u, "451 4.3.0 Out of memory, try again later");
}

/* Move to the next next-hop host, or give up with a 4.4.x deferral. */
static void
up_next_hop(struct upstream *u)
{
	struct up_hop *h;
	struct in6_addr a6;
	struct in_addr a4;

	u->dane = DANE_HOST_NONE;
	u->dane_required = 0;
	u->verified_by[0] = '\0';
	if (++u->hop_i >= u->nhops) {
		if (u->verdict != FAILURE_CONTACT) {
			up_apply_verdict(u);
			return;
		}
		if (u->dane_failed) {
			char reply[sizeof(u->dane_error) + 16];

			snprintf(reply, sizeof(reply), "451 4.7.5 %s",
			    u->dane_error);
			up_fail_lift(u, UP_LIFT_POLICY, u->dane_error, reply);
			return;
		}
		upstream_log_delivery(u, "deferred", NULL, u->last_error);
		up_fail(u,
		    "451 4.4.1 No next hop for %s could be reached: %s",
		    u->route->domain, u->last_error);
		return;
	}
	h = &u->hops[u->hop_i];
	u->addr_i = -1;
	u->naddrs = 0;
	if (inet_pton(AF_INET, h->name, &a4) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&u->addrs[0];

		memset(sin, 0, sizeof(*sin));
		sin->sin_family = AF_INET;
		sin->sin_addr = a4;
		u->naddrs = 1;
	} else if (inet_pton(AF_INET6, h->name, &a6) == 1) {
		struct sockaddr_in6 *sin6 =
		    (struct sockaddr_in6 *)&u->addrs[0];

		memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = a6;
		u->naddrs = 1;
	}
	if (u->naddrs == 1 && u->transparent) {
		/* The destination's DANE standing is its MX host's. */
		u->addr_sec = u->tp_dane[0] ? DNSSEC_SECURE : DNSSEC_INSECURE;
		snprintf(u->tlsa_base, sizeof(u->tlsa_base), "%s",
		    u->tp_dane_base[0] ? u->tp_dane_base : u->tp_dane);
		snprintf(u->tlsa_retry, sizeof(u->tlsa_retry), "%s",
		    u->tp_dane_base[0] ? u->tp_dane : "");
		up_enter(u, UP_RESOLVE);
		up_dane_host(u);
		return;
	}
	if (u->naddrs == 1) {
		up_try_addr(u);
		return;
	}
	up_enter(u, UP_RESOLVE);
	u->dq = dns_lookup_addr(u->rt->dns, h->name, up_addr_result, u);
}

/* Connect to up_host/up_port at ss; failures come back as events. */
static void
up_connect(struct upstream *u, const struct sockaddr_storage *ss,
    socklen_t len)
{
	u->tls = 0;
	u->helo = 0;
	u->verify = "-";
	memset(&u->ehlo, 0, sizeof(u->ehlo));
	snprintf(u->key, sizeof(u->key), "%s", u->route->key);
	up_cache_key(u, u->ckey, sizeof(u->ckey));
	u->reused = 0;
	u->late = 0;
	u->t_phase = clock_mono();
	u->opened = u->t_phase;
	up_enter(u, UP_CONNECT);
	if (conn_connect(&u->conn, u->px->loop, (const struct sockaddr *)ss,
	    len,
	    UPSTREAM_BUFSIZE, up_event, u) == -1) {
		/* No socket at all: treated like a refused connection. */
		snprintf(u->last_error, sizeof(u->last_error), "%s",
		    u->conn.error);
		up_failed(u, u->last_error);
		return;
	}
	u->open = 1;
	conn_set_reading(&u->conn, 1);
	conn_deadline(&u->conn, up_timeout(u, u->cfg->timeouts.connect));
}

/* The next address of the current hop, unless its record says skip it. */
static void
up_try_addr(struct upstream *u)
{
	struct up_hop *h = &u->hops[u->hop_i];
	const struct retry_record *rec;
	struct sockaddr_storage *ss;
	enum failure_action a;
	socklen_t len;
	struct in6_addr a6;
	struct in_addr a4;
	struct state_key k;
	char policy[STATE_POLICY_MAX + 1];

	if (u->t_rcpt != 0 &&
	    clock_mono() - u->t_rcpt >= u->cfg->timeouts.rcpt) {
		up_out_of_time(u);
		return;
	}
	if (++u->addr_i >= u->naddrs) {
		up_next_hop(u);
		return;
	}
	ss = &u->addrs[u->addr_i];
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
		u->host[0] = '\0';
	else
		snprintf(u->host, sizeof(u->host), "%s", h->name);
	sockaddr_str((struct sockaddr *)ss, u->addr,
	    sizeof(u->addr));
	u->port = h->port;
	if (h->from_dns &&
	    !config_mx_addr_allowed(u->cfg, (struct sockaddr *)ss)) {
		/* A hostile domain must not aim us at the local MTA. */
		snprintf(u->last_error, sizeof(u->last_error),
		    "MX host %s resolves to %s, a %s address (not contacted; "
		    "[dns] allow_private_mx)", h->name, u->addr,
		    config_addr_private((struct sockaddr *)ss));
		log_warn(u->id, "mx-private", "mx", h->name, "addr",
		    u->addr, "reason", u->last_error, NULL);
		up_try_addr(u);
		return;
	}

	up_verdict_key(u, &k, policy);
	rec = state_get(u->px->state, &k);
	a = failure_before(u->route->dec.profile, rec, clock_now(),
	    &u->cfg->timing);
	if (a != FAILURE_CONTACT) {
		char where[320];

		/* Inside the retry delay or marked broken: not contacted. */
		log_info(u->id, "tls-skip", "host",
		    up_where(u, where, sizeof(where)), "record",
		    retry_state_name(rec->state), "action",
		    failure_action_name(a), "reason", rec->error, NULL);
		up_note_verdict(u, a, rec->event, rec->error,
		    rec->first_failure + u->cfg->timing.retry_delay);
		up_try_addr(u);
		return;
	}
	if (u->dane_required) {
		char why[DNS_NAME_MAX + POLICY_NAME_MAX + 80];

		/* No TLSA under dane = only: a failure the table judges. */
		snprintf(why, sizeof(why), "MX host %s has no usable "
		    "DNSSEC-signed TLSA records and profile %s requires DANE",
		    up_dane_name(u), u->route->dec.profile->name);
		up_tls_failure(u, FAILURE_CERTIFICATE,
		    TLS_RESULT_DANE_REQUIRED, why);
		return;
	}
	if (up_cache_take(u, 1))
		return;
	up_connect(u, ss, len);
}

/* --- transparent mode --------------------------------------------------- */

/* Names known: connect to the original destination itself. */
static void
up_tp_connect(struct upstream *u)
{
	log_info(u->id, "transparent", "orig", u->orig_str, "names",
	    u->ntp_names > 0 ? u->tp_names->name[0] : "(none)", NULL);
	snprintf(u->hops[0].name, sizeof(u->hops[0].name), "%s",
	    u->orig_str);
	u->hops[0].port = u->orig_port;
	u->hops[0].from_dns = 0;
	u->nhops = 1;
	u->hop_i = -1;
	up_next_hop(u);
}

static void up_tp_next(struct upstream *u);

static void
up_tp_addr_result(void *arg, const struct dns_addr_result *res)
{
	struct upstream *u = arg;
	const char *name = u->hops[u->tp_i].name;
	int i, j, ok;

	u->dq = NULL;
	for (i = 0; res->status == DNS_OK && i < res->naddr; i++) {
		if (!sockaddr_same(&res->addr[i], &u->orig, 0))
			continue;
		/* Where the policy names MX patterns, only those count. */
		ok = u->route->dec.nmx == 0;
		for (j = 0; j < u->route->dec.nmx && !ok; j++)
			ok = policy_mx_pattern_match(u->route->dec.mx[j], name);
		/*
		 * Both buffers are DNS_NAME_MAX: the name always fits.  Out
		 * of memory, the name is not permitted: stricter, not laxer.
		 */
		if (ok && u->tp_names == NULL)
			u->tp_names = up_names_new(UPSTREAM_HOSTS_MAX);
		if (ok && u->tp_names != NULL &&
		    u->ntp_names < u->tp_names->cap)
			memcpy(u->tp_names->name[u->ntp_names++], name,
			    strlen(name) + 1);
		if (ok && u->tp_dane[0] == '\0' &&
		    u->mx_sec == DNSSEC_SECURE && res->sec == DNSSEC_SECURE) {
			snprintf(u->tp_dane, sizeof(u->tp_dane), "%s", name);
			snprintf(u->tp_dane_base, sizeof(u->tp_dane_base), "%s",
			    res->canon);
		}
		break;
	}
	up_tp_next(u);
}

static void
up_tp_next(struct upstream *u)
{
	if (++u->tp_i < u->nhops) {
		u->dq = dns_lookup_addr(u->rt->dns, u->hops[u->tp_i].name,
		    up_tp_addr_result, u);
		return;
	}
	up_tp_connect(u);
}

static void
up_tp_mx_result(void *arg, const struct dns_mx_result *res)
{
	struct upstream *u = arg;
	int i;

	u->dq = NULL;
	u->nhops = 0;
	u->mx_sec = res->sec;
	u->tp_dane[0] = '\0';
	u->tp_dane_base[0] = '\0';
	if (res->sec == DNSSEC_BOGUS) {
		/* Its names cannot be trusted, nor its absence of DANE. */
		log_warn(u->id, "dns", "domain", u->route->domain, "result",
		    "bogus", "reason", res->error, NULL);
		up_dane_count(TLS_RESULT_DNSSEC_INVALID);
		upstream_log_delivery(u, "deferred", NULL, res->error);
		up_fail(u, "451 4.7.5 %s", res->error);
		return;
	}
	if (res->status == DNS_OK)
		for (i = 0; i < res->nmx && i < UPSTREAM_HOSTS_MAX; i++) {
			snprintf(u->hops[i].name, DNS_NAME_MAX, "%s",
			    res->mx[i].host);
			u->nhops++;
		}
	else if (res->status == DNS_NODATA) {
		snprintf(u->hops[0].name, DNS_NAME_MAX, "%s", u->route->domain);
		u->nhops = 1;
	}
	u->tp_i = -1;
	up_tp_next(u);
}

/* Open a new upstream connection for the route of the transaction. */
static void
up_open_new(struct upstream *u)
{
	char host[DNS_NAME_MAX];
	int port;

	/* up_tls and verify outlive a close for the delivery line only. */
	u->tls = 0;
	u->verify = "-";
	u->last_error[0] = '\0';
	u->verdict = FAILURE_CONTACT;
	u->mx_sec = DNSSEC_INSECURE;
	u->dane_tainted = 0;
	u->dane_failed = 0;
	u->dane_error[0] = '\0';
	if (u->route->dec.nexthop != NULL) {
		if (config_parse_hostport(u->route->dec.nexthop, 25, host,
		    sizeof(host), &port) == -1) {
			up_fail(u, "451 4.3.5 Bad nexthop %s",
			    u->route->dec.nexthop);
			return;
		}
		snprintf(u->hops[0].name, sizeof(u->hops[0].name), "%s", host);
		u->hops[0].port = port;
		u->hops[0].from_dns = 0;
		u->nhops = 1;
		u->hop_i = -1;
		up_next_hop(u);
		return;
	}
	up_enter(u, UP_RESOLVE);
	if (u->transparent) {
		u->ntp_names = 0;
		u->dq = dns_lookup_mx(u->rt->dns, u->route->domain,
		    up_tp_mx_result, u);
		return;
	}
	u->dq = dns_lookup_mx(u->rt->dns, u->route->domain, up_mx_result,
	    u);
}

/* The upstream for the route: an idle one from the cache, or a new one. */
void
upstream_open(struct upstream *u)
{
	/* The previous route's idle connection may serve another session. */
	up_cache_put(u);
	upstream_close(u);
	u->attempt_logged = 0;
	if (!up_cache_take(u, 0))
		up_open_new(u);
}

/*
 * A cached connection did not answer RSET with 250 (the server had
 * closed it, or times out idle ones): not the server's TLS failing and
 * not the MTA's business, so open a new connection as if there had been
 * none in the cache.
 */
static void
up_reuse_failed(struct upstream *u, const char *reason)
{
	metrics_inc("mxtls_upstream_reuses_total", "outcome=\"stale\"", 1);
	log_info(u->id, "upstream-reuse-failed", "mx", upstream_name(u),
	    "addr", u->addr, "reason", reason, NULL);
	upstream_close(u);
	if (u->late)
		up_connect(u, &u->addrs[u->addr_i],
		    up_ss_len(&u->addrs[u->addr_i]));
	else
		up_open_new(u);
}

/* --- upstream: the protocol --------------------------------------------- */


/*
 * What a MAIL/RCPT parameter needs of the upstream: the EHLO keyword, and
 * whether without it the parameter is dropped (a default or a courtesy:
 * SIZE, BODY=7BIT, DSN) or the mail must be refused (its meaning cannot be
 * kept without altering the message: 8-bit, SMTPUTF8).
 */
static unsigned
up_param_needs(const char *tok, int *refuse)
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
up_mail_unrelayable(struct upstream *u, char *dst, size_t len)
{
	char tmp[UPSTREAM_PARAMS_MAX], where[320], *tok, *save = NULL;
	unsigned need;
	int refuse;

	snprintf(tmp, sizeof(tmp), "%s", u->txn->mail_params);
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		need = up_param_needs(tok, &refuse);
		if (!refuse || (u->ehlo.ext & need))
			continue;
		up_where(u, where, sizeof(where));
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
up_send_mail(struct upstream *u)
{
	char refuse[512], params[UPSTREAM_PARAMS_MAX];

	if (up_mail_unrelayable(u, refuse, sizeof(refuse)) == -1) {
		upstream_log_delivery(u, "failed", NULL, refuse);
		up_fail(u, "%s", refuse);
		return;
	}
	up_filter_params(u, u->txn->mail_params, params, sizeof(params));
	up_send(u, UP_MAIL, u->cfg->timeouts.command, "MAIL FROM:<%s>%s%s",
	    u->txn->mail_from, params[0] ? " " : "", params);
}

static void
up_send_rcpt(struct upstream *u)
{
	char params[UPSTREAM_PARAMS_MAX];

	up_filter_params(u, u->txn->rcpt_params, params, sizeof(params));
	up_send(u, UP_RCPT, u->cfg->timeouts.command, "RCPT TO:<%s>%s%s",
	    u->txn->rcpt, params[0] ? " " : "", params);
}

/* After EHLO: STARTTLS, or plaintext where the profile allows it. */
static void
up_after_ehlo(struct upstream *u)
{
	const struct policy_profile *p = u->route->dec.profile;

	if (p->tls == POLICY_TLS_OFF || u->fallback) {
		up_send_mail(u);
		return;
	}
	if (u->ehlo.ext & SMTP_EXT_STARTTLS) {
		up_send(u, UP_STARTTLS, u->cfg->timeouts.command,
		    "STARTTLS");
		return;
	}
	if (p->tls == POLICY_TLS_MANDATORY || up_dane_host_tls(u)) {
		up_tls_failure(u, FAILURE_NO_STARTTLS,
		    TLS_RESULT_STARTTLS_NOT_SUPPORTED,
		    "server does not offer STARTTLS");
		return;
	}
	/*
	 * mta_sts=none on a first contact is what a network attacker who
	 * drops the TXT record and strips STARTTLS leaves behind (RFC 8461
	 * section 10): a line operators can count (docs/security.md F-16).
	 */
	log_info(u->id, "plaintext", "reason", "starttls-not-supported",
	    "mx", u->host, "addr", u->addr, "mta_sts",
	    strcmp(u->sts->domain, u->route->domain) == 0 ?
	    mtasts_mode_name(u->sts->mode) : "not-looked-up", NULL);
	up_tlsrpt(u, TLS_RESULT_STARTTLS_NOT_SUPPORTED, 0);
	up_sts_testing_report(u, "server does not offer STARTTLS");
	up_send_mail(u);
}

/* TLS worked: a record for this host is history. */
static void
up_tls_ok(struct upstream *u)
{
	struct retry_record rec;
	struct state_key k;
	char err[256], policy[STATE_POLICY_MAX + 1];

	up_verdict_key(u, &k, policy);
	if (state_get(u->px->state, &k) == NULL)
		return;
	memset(&rec, 0, sizeof(rec));
	rec.state = RETRY_NONE;
	if (state_put(u->px->state, &k, &rec, err, sizeof(err)) == -1)
		log_error(u->id, "state-write-failed", "error", err, NULL);
	log_info(u->id, "tls-recovered", "mx", u->host, "addr", u->addr,
	    NULL);
}

static void up_tls_up(struct upstream *u);
static void up_dane_verify(struct upstream *u);

static void
up_tls_ready(struct upstream *u)
{
	const char *names[UP_NAMES_MAX];
	int nnames = up_wanted_names(u, names);

	/* RFC 8461 section 4.2: under MTA-STS only a DNS-ID counts. */
	tls_facts_collect(u->conn.ssl, names, nnames, u->route->sts ? 0 :
	    TLS_NAME_CN_FALLBACK, &u->facts);
	if (u->facts.result == TLS_RESULT_OK && u->facts.name_by_cn)
		up_sts_testing_report(u, "no DNS name in the "
		    "certificate's subjectAltName (RFC 8461 section 4.2)");
	{
		char l[160];

		metrics_inc("mxtls_tls_handshakes_total",
		    metrics_labels(l, sizeof(l), "version", u->facts.version,
		    "cipher", u->facts.cipher, NULL), 1);
		metrics_observe("mxtls_tls_handshake_seconds", "",
		    clock_mono() - u->t_phase);
	}
	if (nnames == 0 &&
	    u->facts.result == TLS_RESULT_CERTIFICATE_HOST_MISMATCH)
		snprintf(u->facts.reason, sizeof(u->facts.reason),
		    "no MX host of %s resolves to %s and the policy names no "
		    "mx: the certificate's name cannot be checked",
		    u->route->domain, u->addr);
	u->tls = 1;
	if (up_dane_host_tls(u)) {
		up_dane_verify(u);
		return;
	}
	log_info(u->id, "tls", "mx", upstream_name(u), "addr", u->addr,
	    "version",
	    u->facts.version, "cipher", u->facts.cipher, "verify",
	    u->facts.result == TLS_RESULT_OK ? "ok" : "fail", "reason",
	    u->facts.result == TLS_RESULT_OK ? NULL : u->facts.reason,
	    "resumed", u->facts.resumed ? "yes" : "no", NULL);
	if (u->facts.result != TLS_RESULT_OK) {
		if (u->route->dec.profile->verify == POLICY_VERIFY_STRICT) {
			u->verify = "fail";
			up_tls_failure(u, FAILURE_CERTIFICATE,
			    u->facts.result, u->facts.reason);
			return;
		}
		u->verify = "none";
	} else
		u->verify = "ok";
	up_tls_up(u);
}

/* TLS is up and verified as required: EHLO again, over TLS. */
static void
up_tls_up(struct upstream *u)
{
	up_tls_ok(u);
	/* Forget everything learnt before TLS (docs/behaviour.md section 3). */
	memset(&u->ehlo, 0, sizeof(u->ehlo));
	up_send(u, UP_EHLO_TLS, u->cfg->timeouts.command,
	    "EHLO %s", u->cfg->hostname);
}

/*
 * A DANE host (RFC 7672 3): with usable TLSA records the certificate must
 * match one of them, and nothing else is asked of it (DANE-EE: no names,
 * no dates; DANE-TA: the chain to the matched anchor and the MX host
 * name or the TLSA base domain); with only unusable ones, TLS is enough.
 */
static void
up_dane_verify(struct upstream *u)
{
	struct dane_result dr;
	const char *names[2];
	int nnames = 0;

	memset(&dr, 0, sizeof(dr));
	if (u->dane == DANE_HOST_AUTH) {
		names[nnames++] = up_dane_name(u);
		if (strcasecmp(u->tlsa_base, names[0]) != 0)
			names[nnames++] = u->tlsa_base;
		if (!dane_verify(u->conn.ssl, &u->tlsa, names, nnames, &dr)) {
			u->facts.result = TLS_RESULT_TLSA_INVALID;
			snprintf(u->facts.reason, sizeof(u->facts.reason), "%s",
			    dr.reason);
			u->verify = "fail";
			log_info(u->id, "tls", "mx", upstream_name(u), "addr",
			    u->addr, "version", u->facts.version, "cipher",
			    u->facts.cipher, "verify", "fail", "dane", "auth",
			    "reason", dr.reason, "resumed",
			    u->facts.resumed ? "yes" : "no", NULL);
			up_tls_failure(u, FAILURE_CERTIFICATE,
			    TLS_RESULT_TLSA_INVALID, dr.reason);
			return;
		}
		u->verify = dr.usage == 2 ? "dane-ta" : "dane-ee";
	} else if (u->txn->requiretls) {
		u->verify = "fail";
		up_tls_failure(u, FAILURE_CERTIFICATE,
		    TLS_RESULT_VALIDATION_FAILURE, "REQUIRETLS needs an "
		    "authenticated server; its TLSA records are unusable for "
		    "that (usages 0 and 1)");
		return;
	} else
		u->verify = "dane-encrypt";
	u->facts.result = TLS_RESULT_OK;
	u->facts.reason[0] = '\0';
	up_dane_count(TLS_RESULT_OK);
	log_info(u->id, "tls", "mx", upstream_name(u), "addr", u->addr,
	    "version", u->facts.version, "cipher", u->facts.cipher, "verify",
	    u->verify, "dane", dane_host_name(u->dane), "tlsa",
	    dr.matched ? dr.matched_name[0] ? dr.matched_name :
	    up_dane_name(u) : NULL, "resumed",
	    u->facts.resumed ? "yes" : "no", NULL);
	up_tls_up(u);
}

/* Parameters of MAIL/RCPT the upstream did not announce are dropped. */
static void
up_filter_params(const struct upstream *u, const char *in, char *out,
    size_t outlen)
{
	char tmp[UPSTREAM_PARAMS_MAX], *tok, *save = NULL;
	size_t used = 0;
	int refuse;

	snprintf(tmp, sizeof(tmp), "%s", in);
	out[0] = '\0';
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		unsigned need = up_param_needs(tok, &refuse);

		if (need != 0 && !(u->ehlo.ext & need))
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
up_protocol_error(struct upstream *u, const char *sum,
    const char *cmd)
{
	char where[320];

	up_where(u, where, sizeof(where));
	log_warn(u->id, "upstream-protocol-error", "host", where, "command",
	    cmd, "reply", sum, NULL);
	upstream_close(u);
	upstream_log_delivery(u, "deferred", sum, "protocol error");
	up_fail(u, "451 4.5.0 Protocol error: %s answered \"%s\" "
	    "to %s", where, sum, cmd);
}

/* Our own greeting, as session_accept sends it. */
static int
up_is_own_banner(const struct upstream *u, const char *sum)
{
	char own[320];

	snprintf(own, sizeof(own), "220 %s ESMTP mxtls", u->cfg->hostname);
	return strcmp(sum, own) == 0;
}

static void
up_on_greeting(struct upstream *u, const struct smtp_reply *r,
    const char *sum)
{
	char where[320];

	up_where(u, where, sizeof(where));
	if (r->code != 220) {
		snprintf(u->last_error, sizeof(u->last_error),
		    "%s greeted with %s", where, sum);
		up_failed(u, u->last_error);
		return;
	}
	if (up_is_own_banner(u, sum)) {
		/*
		 * Our own banner: the redirect sent our upstream connection
		 * back to us.  A routing loop, not the MX's fault: no retry
		 * record against it.
		 */
		log_error(u->id, "mail-loop", "host", where, "reason",
		    "the upstream connection came back to mxtls: check the "
		    "redirect's --uid / --mark exclusion", NULL);
		upstream_close(u);
		upstream_log_delivery(u, "failed", NULL, "mail loop");
		up_fail(u, "554 5.4.6 %s: mail loops back to myself", where);
		return;
	}
	up_send(u, UP_EHLO, u->cfg->timeouts.command, "EHLO %s",
	    u->cfg->hostname);
}

static void
up_on_ehlo(struct upstream *u, const struct smtp_reply *r, const char *sum)
{
	if (r->code != 250) {
		/* An old server without ESMTP: HELO, and no STARTTLS. */
		if (!u->helo && r->code / 100 == 5) {
			u->helo = 1;
			up_send(u, UP_EHLO, u->cfg->timeouts.command,
			    "HELO %s", u->cfg->hostname);
			return;
		}
		up_failed(u, sum);
		return;
	}
	memset(&u->ehlo, 0, sizeof(u->ehlo));
	if (!u->helo)
		smtp_ehlo_parse(r, &u->ehlo);
	up_after_ehlo(u);
}

static void
up_on_starttls(struct upstream *u, const struct smtp_reply *r,
    const char *sum)
{
	const struct policy_profile *p = u->route->prof_orig != NULL ?
	    u->route->prof_orig : u->route->dec.profile;

	if (r->code != 220) {
		up_tls_failure(u, FAILURE_HANDSHAKE,
		    TLS_RESULT_STARTTLS_NOT_SUPPORTED, sum);
		return;
	}
	/* Bytes after the 220 came in plaintext: an injection. */
	if (buf_len(&u->conn.in) > 0 ||
	    conn_start_tls(&u->conn, u->rt->ctx[p - u->rt->policy->profiles],
	    u->host[0] ? u->host : u->transparent && u->ntp_names > 0 ?
	    u->tp_names->name[0] : NULL, u->verified_by) == -1) {
		up_tls_failure(u, FAILURE_HANDSHAKE,
		    TLS_RESULT_VALIDATION_FAILURE, buf_len(&u->conn.in) > 0 ?
		    "plaintext injected after STARTTLS 220" :
		    "cannot start TLS");
		return;
	}
	conn_deadline(&u->conn, up_timeout(u, u->cfg->timeouts.tls));
	u->t_phase = clock_mono();
	up_enter(u, UP_TLS);
}

static void
up_on_ehlo_tls(struct upstream *u, const struct smtp_reply *r,
    const char *sum)
{
	if (r->code != 250) {
		up_failed(u, sum);
		return;
	}
	smtp_ehlo_parse(r, &u->ehlo);
	up_send_mail(u);
}

static void
up_on_reuse(struct upstream *u, const struct smtp_reply *r, const char *sum)
{
	if (r->code != 250) {
		up_reuse_failed(u, sum);
		return;
	}
	metrics_inc("mxtls_upstream_reuses_total", "outcome=\"reused\"", 1);
	log_info(u->id, "upstream-reused", "mx", upstream_name(u), "addr",
	    u->addr, NULL);
	up_send_mail(u);
}

static void
up_on_mail(struct upstream *u, const struct smtp_reply *r, const char *sum)
{
	if (r->code == 250) {
		u->txn_open = 1;
		up_send_rcpt(u);
		return;
	}
	/* The MTA saw 250 for MAIL: the refusal lands on RCPT. */
	upstream_log_delivery(u, r->code / 100 == 5 ? "failed" : "deferred",
	    sum, NULL);
	if (r->code / 100 != 4 && r->code / 100 != 5) {
		up_protocol_error(u, sum, "MAIL");
		return;
	}
	up_enter(u, UP_IDLE);
	up_report(u, UP_EV_MAIL, r, sum);
}

static void
up_on_rcpt(struct upstream *u, const struct smtp_reply *r, const char *sum)
{
	if (r->code != 250 && r->code != 251 && r->code / 100 != 4 &&
	    r->code / 100 != 5) {
		up_protocol_error(u, sum, "RCPT");
		return;
	}
	up_enter(u, UP_TXN);
	up_report(u, UP_EV_RCPT, r, sum);
}

static void
up_on_data(struct upstream *u, const struct smtp_reply *r, const char *sum)
{
	if (r->code / 100 != 4 && r->code / 100 != 5 && r->code != 354) {
		up_protocol_error(u, sum, "DATA");
		return;
	}
	if (r->code == 354) {
		u->body = 1;
		up_enter(u, UP_BODY);
	} else
		up_enter(u, UP_TXN);
	up_report(u, UP_EV_DATA, r, sum);
}

static void
up_on_data_end(struct upstream *u, const struct smtp_reply *r,
    const char *sum)
{
	struct up_report rep;
	char where[320], text[1024];

	/* Only the upstream's own 250 may become ours (never a 2xx or 3xx
	 * the protocol does not know here). */
	if (r->code != 250 && r->code / 100 != 4 && r->code / 100 != 5) {
		up_where(u, where, sizeof(where));
		upstream_close(u);
		upstream_log_delivery(u, "deferred", sum, "protocol error");
		snprintf(text, sizeof(text), "451 4.5.0 Protocol error: %s "
		    "answered \"%s\" to the end of the message", where, sum);
		memset(&rep, 0, sizeof(rep));
		rep.ev = UP_EV_DOT;
		rep.sum = sum;
		rep.text = text;
		u->cb(u->owner, &rep);
		return;
	}
	if (r->code == 250 && u->tls)
		up_tlsrpt(u, TLS_RESULT_OK, 0);
	upstream_log_delivery(u, r->code == 250 ? (u->tls ? "tls" :
	    u->fallback ? "fallback" : "plaintext") : r->code / 100 == 5 ?
	    "failed" : "deferred", sum, NULL);
	u->txn_open = 0;
	up_enter(u, UP_IDLE);
	up_report(u, UP_EV_DOT, r, sum);
}

static void
up_on_rset(struct upstream *u, const struct smtp_reply *r, const char *sum)
{
	u->txn_open = 0;
	up_enter(u, UP_IDLE);
	up_report(u, UP_EV_RSET, r, sum);
}

static void
up_on_reply(struct upstream *u, const struct smtp_reply *r)
{
	char sum[600];

	reply_summary(r, sum, sizeof(sum));
	if (u->cfg->log_addresses == CONFIG_ADDR_FULL)
		log_debug(u->id, "up-reply", "state", up_state_name(u->state),
		    "reply", sum, NULL);
	conn_deadline(&u->conn, 0);
	u->await = 0;
	if (up_states[u->state].on_reply == NULL) {
		/* Not waiting for anything: the server spoke out of turn. */
		log_warn(u->id, "upstream-unsolicited", "reply", sum, NULL);
		up_failed(u, "server sent an unsolicited reply");
		return;
	}
	up_states[u->state].on_reply(u, r, sum);
}

static void
up_input(struct upstream *u)
{
	size_t used;
	enum smtp_reply_status st;

	while (u->open && buf_len(&u->conn.in) > 0) {
		if (!u->await) {
			up_failed(u,
			    "server sent data while no command was pending");
			return;
		}
		if (u->rp == NULL) {
			if ((u->rp = malloc(sizeof(*u->rp))) == NULL) {
				up_failed(u, "out of memory");
				return;
			}
			smtp_reply_parser_init(u->rp);
		}
		st = smtp_reply_feed(u->rp, buf_head(&u->conn.in),
		    buf_len(&u->conn.in), &used);
		buf_consume(&u->conn.in, used);
		if (st == SMTP_REPLY_MORE)
			return;
		if (st == SMTP_REPLY_ERROR) {
			up_failed(u, u->rp->err);
			return;
		}
		up_on_reply(u, &u->rp->reply);
		/* Each reply starts from a fresh parser. */
		free(u->rp);
		u->rp = NULL;
	}
}


static void
up_event(struct conn *c, enum conn_event ev, void *arg)
{
	struct upstream *u = arg;
	char reason[300];

	(void)c;
	switch (ev) {
	case CONN_EV_CONNECTED:
		metrics_observe("mxtls_upstream_connect_seconds", "",
		    clock_mono() - u->t_phase);
		conn_deadline(&u->conn,
		    up_timeout(u, u->cfg->timeouts.greeting));
		u->await = 1;
		up_enter(u, UP_GREETING);
		break;
	case CONN_EV_INPUT:
		up_input(u);
		break;
	case CONN_EV_DRAINED:
		if (u->state == UP_BODY) {
			conn_deadline(&u->conn, 0);
			up_report(u, UP_EV_DRAINED, NULL, NULL);
		}
		break;
	case CONN_EV_TLS_READY:
		conn_deadline(&u->conn, 0);
		up_tls_ready(u);
		break;
	case CONN_EV_EOF:
		up_failed(u, "connection closed by server");
		break;
	case CONN_EV_ERROR:
		snprintf(reason, sizeof(reason), "%s", u->conn.error);
		up_failed(u, reason);
		break;
	case CONN_EV_TIMEOUT:
		if (u->capped && u->state != UP_REUSE) {
			/* The reason given is this host's, not the last one's. */
			snprintf(u->last_error, sizeof(u->last_error),
			    "timeout %s", up_states[u->state].waiting);
			up_out_of_time(u);
			break;
		}
		snprintf(reason, sizeof(reason), "timeout %s",
		    up_states[u->state].waiting);
		up_failed(u, reason);
		break;
	}
}

/* --- the owner's side ------------------------------------------------- */

void
upstream_init(struct upstream *u, struct proxy *px, struct runtime *rt,
    unsigned long id, const struct up_route *route, const struct up_txn *txn,
    const struct up_sts *sts, up_cb *cb, void *owner)
{
	u->px = px;
	u->rt = rt;
	u->cfg = rt->cfgp;
	u->id = id;
	u->route = route;
	u->txn = txn;
	u->sts = sts;
	u->cb = cb;
	u->owner = owner;
	u->state = UP_NONE;
	u->verify = "-";
	u->verdict = FAILURE_CONTACT;
}

void
upstream_free(struct upstream *u)
{
	up_cache_put(u);
	upstream_close(u);
	free(u->tp_names);
	u->tp_names = NULL;
	dane_tlsa_set_clear(&u->tlsa);
}

/*
 * The idle connection may carry the route's next transaction as it is,
 * without new lookups: not where DANE may apply, whose verdict holds
 * only for the DNS answers it was made with.  Such a route goes through
 * upstream_open: the connection waits in the cache under those answers,
 * and the new lookups take it back only if nothing changed.
 */
int
upstream_idle_serves(const struct upstream *u)
{
	return u->open && !u->txn_open &&
	    strcmp(u->key, u->route->key) == 0 && !up_route_dane(u);
}

void
upstream_mail(struct upstream *u)
{
	up_send_mail(u);
}

void
upstream_rcpt(struct upstream *u)
{
	up_send_rcpt(u);
}

void
upstream_data(struct upstream *u)
{
	up_send(u, UP_DATA, u->cfg->timeouts.data_init, "DATA");
}

void
upstream_rset(struct upstream *u)
{
	up_send(u, UP_RSET, u->cfg->timeouts.command, "RSET");
}

size_t
upstream_body_room(const struct upstream *u)
{
	return buf_room(&u->conn.out);
}

int
upstream_body(struct upstream *u, const char *p, size_t n)
{
	int r = 0;

	if (n > 0 && (r = conn_write(&u->conn, p, n)) == 0)
		metrics_inc("mxtls_bytes_relayed_total",
		    "direction=\"upstream\"", (double)n);
	if (buf_len(&u->conn.out) > 0)
		conn_deadline(&u->conn, u->cfg->timeouts.data_block);
	return r == -1 ? -1 : 0;
}

void
upstream_dot(struct upstream *u)
{
	conn_deadline(&u->conn, u->cfg->timeouts.data_done);
	u->body = 0;
	u->await = 1;
	up_enter(u, UP_DATA_END);
}

void
upstream_resume(struct upstream *u)
{
	if (u->open)
		conn_set_reading(&u->conn, 1);
}

int
upstream_check_unread(struct upstream *u)
{
	if (!u->open || buf_len(&u->conn.in) == 0)
		return 0;
	up_failed(u, "server replied before the command");
	return 1;
}

/*
 * How the message left, for the last line of the reply to the final dot
 * ("[mxtls: TLSv1.3 verified mx.example.net]"), so that the MTA's own log
 * records it.
 */
void
upstream_how(const struct upstream *u, char *dst, size_t len)
{
	const char *name = upstream_name(u);

	/* A literal next hop: the name its certificate was verified for. */
	if (name == NULL)
		name = u->tls && u->facts.name_ok ? u->facts.matched : u->addr;
	if (u->tls)
		snprintf(dst, len, "[mxtls: %s %s %s]", u->facts.version,
		    strcmp(u->verify, "ok") == 0 ? "verified" :
		    strcmp(u->verify, "dane-ee") == 0 ||
		    strcmp(u->verify, "dane-ta") == 0 ? "verified by DANE" :
		    "unverified", name);
	else
		snprintf(dst, len, "[mxtls: plaintext, %s, %s]", u->fallback ?
		    "after a TLS failure" :
		    u->route->dec.profile->tls == POLICY_TLS_OFF ?
		    "TLS off by policy" : "no STARTTLS", name);
}
