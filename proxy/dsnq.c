#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "dsnq.h"
#include "log.h"
#include "metrics.h"
#include "smtp.h"

#define DSNQ_JOBS_MAX 1000
#define DSNQ_BYTES_MAX (32u << 20)
#define DSNQ_ACTIVE_MAX 8 /* connections to the MTA at once */
#define DSNQ_BUFSIZE 16384
/*
 * Seconds per step.  The MTA is local: one that takes longer than this
 * is in trouble, and a later try does better than a longer wait.
 */
#define DSNQ_TIMEOUT 120.

/* Waits before the second, third and fourth try; then it is given up. */
static const double dsnq_backoff[] = { 60., 300., 900. };
#define DSNQ_TRIES (int)(1 + sizeof(dsnq_backoff) / sizeof(dsnq_backoff[0]))

enum dsnq_state {
	DQ_WAITING,  /* queued, or waiting for its next try */
	DQ_CONNECT,
	DQ_GREETING,
	DQ_EHLO,
	DQ_MAIL,
	DQ_RCPT,
	DQ_DATA,     /* waiting for 354 */
	DQ_BODY,     /* writing the notice */
	DQ_DOT,	     /* waiting for the reply to the final dot */
	DQ_QUIT,
};

/* What a step waits for, for the logs. */
static const char *const dsnq_state_names[] = {
	[DQ_WAITING] = "waiting",
	[DQ_CONNECT] = "connect",
	[DQ_GREETING] = "greeting",
	[DQ_EHLO] = "EHLO",
	[DQ_MAIL] = "MAIL",
	[DQ_RCPT] = "RCPT",
	[DQ_DATA] = "DATA",
	[DQ_BODY] = "message",
	[DQ_DOT] = "end of message",
	[DQ_QUIT] = "QUIT",
};

struct dsnq_job {
	struct dsnq *q;
	struct dsnq_job *next;
	enum dsnq_state state;
	struct sockaddr_storage to;
	socklen_t tolen;
	char to_str[64];
	char helo[256];
	char rcpt[SMTP_PATH_MAX + 1];
	int utf8;
	char *data;
	size_t len, off;
	unsigned long sid;
	int nrcpt;
	int tries;
	int ready;   /* may start a try now */
	int open;    /* c is a live connection */
	struct conn c;
	struct smtp_reply_parser *rp;
	ev_timer retry;
};

struct dsnq {
	struct ev_loop *loop;
	struct dsnq_job *jobs; /* queued and being sent */
	struct dsnq_job *dead; /* done: freed from the reaper */
	int n, active;
	size_t bytes;
	int kicking; /* dsnq_kick is on the stack */
	ev_prepare reaper;
};

static void dsnq_kick(struct dsnq *q);
static void dsnq_event(struct conn *c, enum conn_event ev, void *arg);

static void
dsnq_log(struct dsnq_job *j, enum config_log_level level, const char *event,
    const char *outcome, const char *reply, const char *reason,
    const char *retry_in)
{
	char tries[12], nrcpt[12];

	snprintf(tries, sizeof(tries), "%d", j->tries);
	snprintf(nrcpt, sizeof(nrcpt), "%d", j->nrcpt);
	log_kv(level, j->sid, event, "server", j->to_str, "try", tries,
	    "nrcpt", nrcpt, "reply", reply, "reason", reason, "retry_in",
	    retry_in, NULL);
	if (outcome != NULL) {
		char l[64];

		snprintf(l, sizeof(l), "outcome=\"%s\"", outcome);
		metrics_inc("mxtls_dsn_total", l, 1);
	}
}

/* The job is over: out of the queue now, its memory from the reaper. */
static void
dsnq_remove(struct dsnq_job *j)
{
	struct dsnq *q = j->q;
	struct dsnq_job **pp;

	for (pp = &q->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	ev_timer_stop(q->loop, &j->retry);
	if (j->open) {
		conn_free(&j->c);
		j->open = 0;
		q->active--;
	}
	q->n--;
	q->bytes -= j->len;
	metrics_set("mxtls_dsn_queued", "", q->n);
	j->next = q->dead;
	q->dead = j;
}

static void
dsnq_reap(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct dsnq *q = w->data;
	struct dsnq_job *j;

	(void)loop;
	(void)revents;
	while ((j = q->dead) != NULL) {
		q->dead = j->next;
		free(j->rp);
		free(j->data);
		free(j);
	}
}

/* A try failed: again later, or given up. */
static void
dsnq_failed(struct dsnq_job *j, const char *reply, const char *reason,
    int permanent)
{
	struct dsnq *q = j->q;
	char in[16];

	if (j->open) {
		conn_free(&j->c);
		j->open = 0;
		q->active--;
	}
	free(j->rp);
	j->rp = NULL;
	if (permanent || j->tries >= DSNQ_TRIES) {
		dsnq_log(j, CONFIG_LOG_ERROR, "dsn-failed", "failed", reply,
		    reason, NULL);
		dsnq_remove(j);
	} else {
		snprintf(in, sizeof(in), "%.0f", dsnq_backoff[j->tries - 1]);
		dsnq_log(j, CONFIG_LOG_WARN, "dsn-retry", "retry", reply,
		    reason, in);
		j->state = DQ_WAITING;
		j->ready = 0;
		ev_timer_set(&j->retry, dsnq_backoff[j->tries - 1], 0.);
		ev_timer_start(q->loop, &j->retry);
	}
	dsnq_kick(q);
}

static void __attribute__((format(printf, 3, 4)))
dsnq_send(struct dsnq_job *j, enum dsnq_state next, const char *fmt, ...)
{
	char line[SMTP_CMD_LINE_MAX + 64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		dsnq_failed(j, NULL, "command too long", 1);
		return;
	}
	memcpy(line + n, "\r\n", 2);
	if (conn_write(&j->c, line, (size_t)n + 2) == -1) {
		dsnq_failed(j, NULL, "out of memory", 0);
		return;
	}
	j->state = next;
	conn_deadline(&j->c, DSNQ_TIMEOUT);
}

/* Write as much of the notice as the buffer takes. */
static void
dsnq_body(struct dsnq_job *j)
{
	size_t n = buf_room(&j->c.out);

	if (n > j->len - j->off)
		n = j->len - j->off;
	if (n > 0 && conn_write(&j->c, j->data + j->off, n) == -1) {
		dsnq_failed(j, NULL, "out of memory", 0);
		return;
	}
	j->off += n;
	conn_deadline(&j->c, DSNQ_TIMEOUT);
	if (j->off == j->len)
		j->state = DQ_DOT;
}

static void
dsnq_reply(struct dsnq_job *j, const struct smtp_reply *r)
{
	char sum[600];
	const char *t;
	size_t n;
	struct smtp_ehlo ehlo;

	if (smtp_reply_line(r, 0, &t, &n) == -1)
		n = 0;
	snprintf(sum, sizeof(sum), "%d %.*s", r->code, (int)n, n ? t : "");
	conn_deadline(&j->c, 0);
	if (j->state == DQ_QUIT) {
		dsnq_remove(j);
		return;
	}
	if (r->code / 100 != 2 && !(j->state == DQ_DATA && r->code == 354)) {
		dsnq_failed(j, sum, dsnq_state_names[j->state],
		    r->code / 100 == 5);
		return;
	}
	switch (j->state) {
	case DQ_GREETING:
		dsnq_send(j, DQ_EHLO, "EHLO %s", j->helo);
		break;
	case DQ_EHLO:
		memset(&ehlo, 0, sizeof(ehlo));
		smtp_ehlo_parse(r, &ehlo);
		if (j->utf8 && !(ehlo.ext & SMTP_EXT_SMTPUTF8)) {
			dsnq_failed(j, sum, "the notice names a UTF-8 address "
			    "and the server does not offer SMTPUTF8", 1);
			break;
		}
		dsnq_send(j, DQ_MAIL, "MAIL FROM:<>%s", j->utf8 ?
		    " BODY=8BITMIME SMTPUTF8" : "");
		break;
	case DQ_MAIL:
		dsnq_send(j, DQ_RCPT, "RCPT TO:<%s>", j->rcpt);
		break;
	case DQ_RCPT:
		dsnq_send(j, DQ_DATA, "DATA");
		break;
	case DQ_DATA:
		j->state = DQ_BODY;
		dsnq_body(j);
		break;
	case DQ_DOT:
		dsnq_log(j, CONFIG_LOG_INFO, "dsn-submitted", "submitted", sum,
		    NULL, NULL);
		dsnq_send(j, DQ_QUIT, "QUIT");
		break;
	default:
		dsnq_failed(j, sum, "a reply nothing asked for", 0);
		break;
	}
}

static void
dsnq_input(struct dsnq_job *j)
{
	enum smtp_reply_status st;
	size_t used;

	while (j->open && buf_len(&j->c.in) > 0) {
		if (j->state == DQ_BODY || j->state == DQ_CONNECT) {
			dsnq_failed(j, NULL, "the server spoke out of turn", 0);
			return;
		}
		st = smtp_reply_feed(j->rp, buf_head(&j->c.in),
		    buf_len(&j->c.in), &used);
		buf_consume(&j->c.in, used);
		if (st == SMTP_REPLY_MORE)
			return;
		if (st == SMTP_REPLY_ERROR) {
			dsnq_failed(j, NULL, j->rp->err, 0);
			return;
		}
		dsnq_reply(j, &j->rp->reply);
		if (j->rp != NULL)
			smtp_reply_parser_init(j->rp);
	}
}

static void
dsnq_event(struct conn *c, enum conn_event ev, void *arg)
{
	struct dsnq_job *j = arg;
	char reason[320];

	(void)c;
	switch (ev) {
	case CONN_EV_CONNECTED:
		j->state = DQ_GREETING;
		conn_set_reading(&j->c, 1);
		conn_deadline(&j->c, DSNQ_TIMEOUT);
		break;
	case CONN_EV_INPUT:
		dsnq_input(j);
		break;
	case CONN_EV_DRAINED:
		if (j->state == DQ_BODY)
			dsnq_body(j);
		break;
	case CONN_EV_TLS_READY: /* plain SMTP to the MTA: never */
		break;
	case CONN_EV_EOF:
		if (j->state == DQ_QUIT)
			dsnq_remove(j);
		else
			dsnq_failed(j, NULL, "connection closed by the server",
			    0);
		break;
	case CONN_EV_ERROR:
		if (j->state == DQ_QUIT) {
			dsnq_remove(j);
			break;
		}
		snprintf(reason, sizeof(reason), "%s", j->c.error);
		dsnq_failed(j, NULL, reason, 0);
		break;
	case CONN_EV_TIMEOUT:
		if (j->state == DQ_QUIT) {
			dsnq_remove(j);
			break;
		}
		snprintf(reason, sizeof(reason), "timeout waiting for %s",
		    dsnq_state_names[j->state]);
		dsnq_failed(j, NULL, reason, 0);
		break;
	}
}

static void
dsnq_start(struct dsnq_job *j)
{
	struct dsnq *q = j->q;

	j->tries++;
	j->ready = 0;
	j->off = 0;
	j->state = DQ_CONNECT;
	if ((j->rp = malloc(sizeof(*j->rp))) == NULL) {
		dsnq_failed(j, NULL, "out of memory", 0);
		return;
	}
	smtp_reply_parser_init(j->rp);
	q->active++;
	j->open = 1;
	if (conn_connect(&j->c, q->loop, (const struct sockaddr *)&j->to,
	    j->tolen, DSNQ_BUFSIZE, dsnq_event, j) == -1) {
		j->open = 0;
		q->active--;
		dsnq_failed(j, NULL, j->c.error, 0);
		return;
	}
	conn_deadline(&j->c, DSNQ_TIMEOUT);
}

/*
 * Start what may start, oldest first, within DSNQ_ACTIVE_MAX.  A start
 * that fails at once may remove jobs: the walk begins anew after each.
 */
static void
dsnq_kick(struct dsnq *q)
{
	struct dsnq_job *j;

	if (q->kicking)
		return;
	q->kicking = 1;
again:
	for (j = q->jobs; j != NULL && q->active < DSNQ_ACTIVE_MAX;
	    j = j->next)
		if (j->state == DQ_WAITING && j->ready) {
			dsnq_start(j);
			goto again;
		}
	q->kicking = 0;
}

static void
dsnq_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dsnq_job *j = w->data;

	(void)loop;
	(void)revents;
	j->ready = 1;
	dsnq_kick(j->q);
}

struct dsnq *
dsnq_new(struct ev_loop *loop)
{
	struct dsnq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->loop = loop;
	ev_prepare_init(&q->reaper, dsnq_reap);
	q->reaper.data = q;
	ev_prepare_start(loop, &q->reaper);
	ev_unref(loop); /* the reaper alone keeps nothing alive */
	return q;
}

void
dsnq_submit(struct dsnq *q, const struct sockaddr *to, socklen_t tolen,
    const char *helo, const char *rcpt, int utf8, char *data, size_t len,
    unsigned long sid, int nrcpt)
{
	struct dsnq_job *j = NULL, **tail;
	const char *why = NULL;
	char addr[INET6_ADDRSTRLEN];

	if (q->n >= DSNQ_JOBS_MAX || q->bytes + len > DSNQ_BYTES_MAX)
		why = "too many notices queued";
	else if ((j = calloc(1, sizeof(*j))) == NULL)
		why = "out of memory";
	if (why != NULL) {
		char n[12];

		snprintf(n, sizeof(n), "%d", nrcpt);
		metrics_inc("mxtls_dsn_total", "outcome=\"lost\"", 1);
		log_error(sid, "dsn-lost", "nrcpt", n, "reason", why, NULL);
		free(data);
		return;
	}
	j->q = q;
	memcpy(&j->to, to, tolen);
	j->tolen = tolen;
	conn_sockaddr_str(to, addr, sizeof(addr));
	snprintf(j->to_str, sizeof(j->to_str), to->sa_family == AF_INET6 ?
	    "[%s]:%u" : "%s:%u", addr, ntohs(((const struct sockaddr_in *)
	    to)->sin_port));
	snprintf(j->helo, sizeof(j->helo), "%s", helo);
	snprintf(j->rcpt, sizeof(j->rcpt), "%s", rcpt);
	j->utf8 = utf8;
	j->data = data;
	j->len = len;
	j->sid = sid;
	j->nrcpt = nrcpt;
	j->ready = 1;
	ev_timer_init(&j->retry, dsnq_retry, 0., 0.);
	j->retry.data = j;
	for (tail = &q->jobs; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = j;
	q->n++;
	q->bytes += len;
	metrics_set("mxtls_dsn_queued", "", q->n);
	log_debug(sid, "dsn-queued", "server", j->to_str, NULL);
	dsnq_kick(q);
}

void
dsnq_free(struct dsnq *q)
{
	if (q == NULL)
		return;
	while (q->jobs != NULL) {
		dsnq_log(q->jobs, CONFIG_LOG_ERROR, "dsn-lost", "lost", NULL,
		    "mxtls stopped before the notice was submitted", NULL);
		dsnq_remove(q->jobs);
	}
	dsnq_reap(q->loop, &q->reaper, 0);
	ev_ref(q->loop);
	ev_prepare_stop(q->loop, &q->reaper);
	free(q);
}
