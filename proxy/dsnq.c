#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "dsnq.h"
#include "log.h"
#include "metrics.h"
#include "smtp.h"
#include "sockaddr.h"
#include "submit.h"

#define DSNQ_JOBS_MAX 1000
#define DSNQ_BYTES_MAX (32u << 20)
#define DSNQ_ACTIVE_MAX 8 /* connections to the MTA at once */
/*
 * Seconds per step.  The MTA is local: one that takes longer than this
 * is in trouble, and a later try does better than a longer wait.
 */
#define DSNQ_TIMEOUT 120.

/* Waits before the second, third and fourth try; then it is given up. */
static const double dsnq_backoff[] = { 60., 300., 900. };
#define DSNQ_TRIES (int)(1 + sizeof(dsnq_backoff) / sizeof(dsnq_backoff[0]))

struct dsnq_job {
	struct dsnq *q;
	struct dsnq_job *next;
	struct sockaddr_storage to;
	socklen_t tolen;
	char to_str[64];
	char helo[256];
	char rcpt[SMTP_PATH_MAX + 1];
	int utf8;
	char *data;
	size_t len;
	unsigned long sid;
	int nrcpt;
	int tries;
	int ready;   /* may start a try now */
	int sending; /* a try is under way in sub */
	struct submit sub;
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
	if (j->sending) {
		submit_free(&j->sub);
		j->sending = 0;
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

	if (permanent || j->tries >= DSNQ_TRIES) {
		dsnq_log(j, CONFIG_LOG_ERROR, "dsn-failed", "failed", reply,
		    reason, NULL);
		dsnq_remove(j);
	} else {
		snprintf(in, sizeof(in), "%.0f", dsnq_backoff[j->tries - 1]);
		dsnq_log(j, CONFIG_LOG_WARN, "dsn-retry", "retry", reply,
		    reason, in);
		j->ready = 0;
		ev_timer_set(&j->retry, dsnq_backoff[j->tries - 1], 0.);
		ev_timer_start(q->loop, &j->retry);
	}
	dsnq_kick(q);
}

/* The try is over: the notice taken by the MTA, or not. */
static void
dsnq_ended(struct submit *s, enum submit_event ev, void *arg)
{
	struct dsnq_job *j = arg;
	struct dsnq *q = j->q;

	j->sending = 0;
	q->active--;
	if (ev == SUBMIT_DONE) {
		dsnq_log(j, CONFIG_LOG_INFO, "dsn-submitted", "submitted",
		    s->reply, NULL, NULL);
		dsnq_remove(j);
		dsnq_kick(q);
		return;
	}
	/* A refusal's reply says why: the reason is the step it refused. */
	dsnq_failed(j, s->reply[0] ? s->reply : NULL, s->reason[0] ?
	    s->reason : submit_step_name(s->step), s->permanent);
}

static void
dsnq_start(struct dsnq_job *j)
{
	struct submit_msg m = {
		.helo = j->helo,
		.from = "",
		.rcpt = j->rcpt,
		.utf8 = j->utf8,
		.data = j->data,
		.len = j->len,
	};

	j->tries++;
	j->ready = 0;
	j->sending = 1;
	j->q->active++;
	submit_start(&j->sub, j->q->loop, (const struct sockaddr *)&j->to,
	    j->tolen, &m, DSNQ_TIMEOUT, dsnq_ended, j);
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
		if (!j->sending && j->ready) {
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
	sockaddr_str(to, addr, sizeof(addr));
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
	struct dsnq_job *j;

	if (q == NULL)
		return;
	while ((j = q->jobs) != NULL) {
		/* Taken by the MTA: only the end of the session was left. */
		if (j->sending && j->sub.step == SUBMIT_QUIT)
			dsnq_log(j, CONFIG_LOG_INFO, "dsn-submitted",
			    "submitted", j->sub.reply, NULL, NULL);
		else
			dsnq_log(j, CONFIG_LOG_ERROR, "dsn-lost", "lost", NULL,
			    "mxtls stopped before the notice was submitted",
			    NULL);
		dsnq_remove(j);
	}
	dsnq_reap(q->loop, &q->reaper, 0);
	ev_ref(q->loop);
	ev_prepare_stop(q->loop, &q->reaper);
	free(q);
}
