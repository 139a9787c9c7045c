/*
 * Sending the TLS reports (see tlsrptsend.h): the daily run, rua
 * discovery, the https: POST through the fetcher and the mailto:
 * message over SMTP, all on the event loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "config.h"
#include "conn.h"
#include "dkimsign.h"
#include "dns.h"
#include "fetcher.h"
#include "log.h"
#include "metrics.h"
#include "sockaddr.h"
#include "submit.h"
#include "tlsrpt.h"
#include "tlsrptmsg.h"
#include "tlsrptsend.h"

struct job;

/* One attempt at one rua. */
struct rsend {
	struct rsend *next; /* in the job, then on the dead list */
	struct job *j;
	char rua[TLSRPT_URI_MAX + 1];
	int done;
	/* https: */
	struct dns_query *dq;
	struct fetch_call *call;
	char host[DNS_NAME_MAX];
	/* mailto: */
	struct submit sub;
	char to[TLSRPT_MAIL_ADDR_MAX + 1];
	char *data;
	size_t len;
	/* Its local end, while open (tlsrpt_own_add): not counted. */
	struct sockaddr_storage local;
	int own;
};

/* A policy domain's report of one complete day. */
struct job {
	struct job *next;
	struct tlsrpt_sender *s;
	long day;
	char domain[TLSRPT_FIELD_MAX + 1];
	int attempt;
	time_t next_try;
	int busy, done;
	struct dns_query *txtq;
	unsigned char *gz; /* the gzipped JSON, made at the first attempt */
	size_t gzlen;
	char report_id[2 * TLSRPT_FIELD_MAX + 32];
	struct rsend *sends;
	int pending, failed;
};

struct tlsrpt_sender {
	struct ev_loop *loop;
	struct tlsrpt *t;
	struct dns *dns;
	struct fetcher *fetcher;
	char *org, *contact, *submitter, *ca_bundle;
	/*
	 * [dns] allow_private_mx and nothing else, for config_mx_addr_allowed:
	 * a hostile record must not aim reports at loopback or internal
	 * hosts any more than an MX may.
	 */
	struct config *addr_rules;
	char from[TLSRPT_MAIL_ADDR_MAX + 1];
	struct sockaddr_storage smtp; /* submit, or our own listener */
	socklen_t smtplen;
	char smtp_str[80];
	const char *smtp_why; /* NULL, or why mailto: reports cannot go */
	long window, retry;
	long today;  /* the UTC day of the last tick; -1 before the first */
	time_t due;  /* when yesterday's reports start to go */
	int ran;     /* the day's run (at due) has begun */
	long jobs_max; /* reports held at once: the bound of a run */
	struct job *jobs; /* oldest day first */
	long njobs;
	int active;
	/*
	 * Per complete day kept: how many of its domains (sorted) have been
	 * made jobs.  A complete day's domains do not change, so each is
	 * listed once per process and a report done is never tried again.
	 */
	struct sender_day {
		long day;
		int next, all, warned;
	} days[TLSRPT_DAYS_MAX];
	int ndays;
	struct rsend *dead; /* finished attempts, freed at the next tick */
};

static void job_end(struct job *j, const char *error);

/* ---- set-up ---- */

static long
env_seconds(const char *name, long def)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return def;
	n = strtol(v, &end, 10);
	return *end == '\0' && n >= 0 ? n : def;
}

/*
 * Where mailto: reports go: [report] submit, else our own listener
 * (a wildcard address as loopback), from where they leave as any mail.
 */
static void
sender_smtp_target(struct tlsrpt_sender *s, const struct config *cfg)
{
	if (cfg->report_submit_len > 0) {
		memcpy(&s->smtp, &cfg->report_submit, cfg->report_submit_len);
		s->smtplen = cfg->report_submit_len;
	} else if (cfg->mode == CONFIG_MODE_TRANSPARENT) {
		/* A direct connection has no original destination. */
		s->smtp_why = "in transparent mode, mailto: reports need "
		    "[report] submit";
		return;
	} else {
		memcpy(&s->smtp, &cfg->listen, cfg->listen_len);
		s->smtplen = cfg->listen_len;
		if (s->smtp.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&s->smtp;

			if (in->sin_addr.s_addr == htonl(INADDR_ANY))
				in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		} else if (s->smtp.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 =
			    (struct sockaddr_in6 *)&s->smtp;

			if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
				in6->sin6_addr = in6addr_loopback;
		}
	}
	if (sockaddr_str((struct sockaddr *)&s->smtp, s->smtp_str,
	    sizeof(s->smtp_str)) == -1)
		snprintf(s->smtp_str, sizeof(s->smtp_str), "?");
}

int
tlsrpt_send_start(struct tlsrpt *t, const struct config *cfg,
    struct dns *dns, struct fetcher *f, char *err, size_t errlen)
{
	struct tlsrpt_sender *s;
	char uri[TLSRPT_MAIL_ADDR_MAX + 16];

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->org = strdup(cfg->report_org)) == NULL ||
	    (s->contact = strdup(cfg->report_contact)) == NULL ||
	    (s->submitter = strdup(cfg->report_submitter)) == NULL ||
	    (s->addr_rules = calloc(1, sizeof(*s->addr_rules))) == NULL ||
	    (cfg->mta_sts_ca_bundle != NULL && (s->ca_bundle =
	    strdup(cfg->mta_sts_ca_bundle)) == NULL)) {
		tlsrpt_sender_free(s);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(s->addr_rules->allow_private_mx, cfg->allow_private_mx,
	    sizeof(cfg->allow_private_mx));
	s->addr_rules->nallow_private_mx = cfg->nallow_private_mx;
	s->loop = ev_default_loop(0); /* the fetcher's and main's loop */
	s->t = t;
	s->dns = dns;
	s->fetcher = f;
	s->today = -1;
	s->jobs_max = env_seconds("MXTLS_TLSRPT_JOBS", TLSRPT_SEND_JOBS_MAX);
	if (s->jobs_max < 1)
		s->jobs_max = 1;
	s->window = env_seconds("MXTLS_TLSRPT_WINDOW", TLSRPT_WINDOW);
	s->retry = env_seconds("MXTLS_TLSRPT_RETRY", TLSRPT_RETRY);
	if (s->retry < 1)
		s->retry = 1;
	/* contact_info when it is an address, else a no-reply one. */
	snprintf(uri, sizeof(uri), "mailto:%s", s->contact);
	if (tlsrpt_mailto_addr(uri, s->from, sizeof(s->from)) < 0)
		snprintf(s->from, sizeof(s->from), "tlsrpt-noreply@%s",
		    s->submitter);
	sender_smtp_target(s, cfg);
	if (cfg->report_submit_len == 0 && cfg->dkim_key == NULL)
		log_warn(0, "tlsrpt-mailto-unsigned", "reason", "neither "
		    "[report] dkim_key nor submit is set: mailto: reports "
		    "leave through mxtls without the DKIM signature RFC 8460 "
		    "asks for, and collectors may ignore them", NULL);
	tlsrpt_set_sender(t, s);
	return 0;
}

/* ---- attempts at one rua ---- */

static void
rsend_cancel(struct rsend *r)
{
	if (r->own)
		tlsrpt_own_del(r->j->s->t, (struct sockaddr *)&r->local);
	r->own = 0;
	if (r->dq != NULL)
		dns_cancel(r->dq);
	if (r->call != NULL)
		fetcher_cancel(r->call);
	r->dq = NULL;
	r->call = NULL;
	submit_free(&r->sub);
}

static void
rsend_free(struct rsend *r)
{
	rsend_cancel(r);
	free(r->data);
	free(r);
}

static long
job_backoff(const struct job *j)
{
	long b = j->s->retry;
	int i;

	for (i = 1; i < j->attempt && b < TLSRPT_RETRY_MAX; i++)
		b *= 2;
	return b < TLSRPT_RETRY_MAX ? b : TLSRPT_RETRY_MAX;
}

/* The attempt at r->rua is over: log, count, record; the job may end. */
static void
rsend_done(struct rsend *r, const char *error)
{
	struct job *j = r->j;
	struct tlsrpt_sender *s = j->s;
	struct rsend **pp;
	char attempt[16], retry[24], day[16], labels[96];

	if (r->done)
		return;
	r->done = 1;
	rsend_cancel(r);
	snprintf(attempt, sizeof(attempt), "%d", j->attempt);
	snprintf(retry, sizeof(retry), "%ld", job_backoff(j));
	tlsrpt_day_text(j->day, day, sizeof(day));
	metrics_inc("mxtls_tlsrpt_reports_total", metrics_labels(labels,
	    sizeof(labels), "scheme", strncasecmp(r->rua, "https:", 6) == 0 ?
	    "https" : "mailto", "result", error ? "failed" : "sent", NULL), 1);
	if (error == NULL) {
		log_info(0, "tlsrpt-sent", "day", day, "domain", j->domain,
		    "rua", r->rua, "attempt", attempt, "via", r->to[0] ?
		    s->smtp_str : NULL, NULL);
		tlsrpt_mark_sent(s->t, j->day, j->domain, r->rua);
	} else {
		log_warn(0, "tlsrpt-send-failed", "day", day, "domain",
		    j->domain, "rua", r->rua, "attempt", attempt, "error",
		    error, "retry_in", retry, NULL);
		j->failed++;
	}
	/* Off the job; freed at the next tick, not under its caller. */
	for (pp = &j->sends; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	r->next = s->dead;
	s->dead = r;
	if (--j->pending == 0)
		job_end(j, NULL);
}

/* ---- https: ---- */

static void
https_answered(void *arg, const struct fetch_response *rs)
{
	struct rsend *r = arg;
	char why[FETCHPROTO_ERROR_MAX + 64];

	r->call = NULL;
	if (rs->result == FETCH_OK) {
		rsend_done(r, NULL);
		return;
	}
	/* A redirect too: reports go where the record says, nowhere else. */
	snprintf(why, sizeof(why), "%s: %s", fetchproto_result_name(rs->result),
	    rs->error ? rs->error : "no detail");
	rsend_done(r, why);
}

static void
https_resolved(void *arg, const struct dns_addr_result *res)
{
	struct rsend *r = arg;
	struct job *j = r->j;
	struct fetch_request rq;
	const char *refused = "private";
	char why[300];
	int i;

	r->dq = NULL;
	if (res->status != DNS_OK || res->naddr == 0) {
		snprintf(why, sizeof(why), "%s: %s", r->host, res->error ?
		    res->error : "no address");
		rsend_done(r, why);
		return;
	}
	memset(&rq, 0, sizeof(rq));
	rq.url = r->rua;
	for (i = 0; i < res->naddr && rq.naddrs < FETCHPROTO_ADDRS_MAX; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&res->addr[i];
		struct fetch_addr *a;

		if (!config_mx_addr_allowed(j->s->addr_rules, sa)) {
			refused = config_addr_private(sa);
			continue;
		}
		a = &rq.addrs[rq.naddrs++];

		fetch_addr_set(a, &res->addr[i]);
	}
	if (rq.naddrs == 0) {
		snprintf(why, sizeof(why), "%s: a %s address, not allowed by "
		    "[dns] allow_private_mx", r->host, refused);
		rsend_done(r, why);
		return;
	}
	rq.ca_bundle = j->s->ca_bundle;
	rq.max_bytes = TLSRPT_HTTPS_REPLY_MAX;
	rq.connect_timeout_ms = TLSRPT_HTTPS_TIMEOUT_MS;
	rq.timeout_ms = TLSRPT_HTTPS_TIMEOUT_MS;
	rq.body = j->gz;
	rq.body_len = j->gzlen;
	rq.content_type = "application/tlsrpt+gzip";
	if ((r->call = fetcher_request(j->s->fetcher, &rq, https_answered,
	    r)) == NULL)
		rsend_done(r, "the request could not be made (logged)");
}

/* The host of "https://host[:port][/...]", IPv6 without brackets. */
static int
https_host(const char *url, char *dst, size_t len)
{
	const char *p = url + 8, *end;
	size_t n;

	if (*p == '[') {
		if ((end = strchr(++p, ']')) == NULL)
			return -1;
	} else
		end = p + strcspn(p, ":/?#");
	n = (size_t)(end - p);
	if (n == 0 || n >= len)
		return -1;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

static void
https_start(struct rsend *r)
{
	struct tlsrpt_sender *s = r->j->s;

	if (s->fetcher == NULL) {
		rsend_done(r, "mxtls-fetch is not running");
		return;
	}
	if (https_host(r->rua, r->host, sizeof(r->host)) < 0) {
		rsend_done(r, "no host in the URI");
		return;
	}
	if ((r->dq = dns_lookup_addr(s->dns, r->host, https_resolved, r)) ==
	    NULL)
		rsend_done(r, "out of memory");
}

/* ---- mailto: over SMTP ---- */

/* The report as a message (RFC 8460 section 5.3), dot-stuffed. */
static int
mailto_message(struct rsend *r)
{
	struct job *j = r->j;
	struct tlsrpt_sender *s = j->s;
	struct tlsrpt_mail m;
	char uniq[40], *msg;
	size_t len;

	snprintf(uniq, sizeof(uniq), "%08x%08x", arc4random(), arc4random());
	memset(&m, 0, sizeof(m));
	m.from = s->from;
	m.to = r->to;
	m.domain = j->domain;
	m.submitter = s->submitter;
	m.report_id = j->report_id;
	m.uniq = uniq;
	m.date = clock_now();
	m.begin = (time_t)j->day * 86400;
	m.end = m.begin + 86399;
	m.gz = j->gz;
	m.gzlen = j->gzlen;
	/* DKIM-signed with [report] dkim_key, if set (RFC 8460 section 3). */
	if ((msg = tlsrpt_mail_build(&m, &len)) == NULL ||
	    dkim_sign_report(&msg, &len, m.date) < 0) {
		free(msg);
		return -1;
	}
	r->data = tlsrpt_mail_data(msg, len, &r->len);
	free(msg);
	return r->data != NULL ? 0 : -1;
}

/* The SMTP server took the report, or not. */
static void
mailto_ended(struct submit *sub, enum submit_event ev, void *arg)
{
	struct rsend *r = arg;
	char why[sizeof(sub->reply) + sizeof(r->j->s->smtp_str) + 32];

	if (ev == SUBMIT_DONE) {
		rsend_done(r, NULL);
		return;
	}
	snprintf(why, sizeof(why), "%s %s: %s", r->j->s->smtp_str,
	    submit_step_name(sub->step), sub->reason[0] ? sub->reason :
	    sub->reply);
	rsend_done(r, why);
}

static void
mailto_start(struct rsend *r)
{
	struct tlsrpt_sender *s = r->j->s;
	struct submit_msg m = { 0 };
	socklen_t sl;

	if (s->smtp_why != NULL) {
		rsend_done(r, s->smtp_why);
		return;
	}
	if (tlsrpt_mailto_addr(r->rua, r->to, sizeof(r->to)) < 0) {
		r->to[0] = '\0';
		rsend_done(r, "not a plain mail address");
		return;
	}
	if (mailto_message(r) < 0) {
		rsend_done(r, "out of memory");
		return;
	}
	m.helo = s->submitter;
	m.from = s->from;
	m.rcpt = r->to;
	m.data = r->data;
	m.len = r->len;
	submit_start(&r->sub, s->loop, (struct sockaddr *)&s->smtp,
	    s->smtplen, &m, TLSRPT_SMTP_TIMEOUT, mailto_ended, r);
	/*
	 * Our end of the connection, bound once it is started: when the
	 * listener is mxtls's own, the session it runs for this report is
	 * not counted.
	 */
	sl = sizeof(r->local);
	if (r->sub.open && getsockname(r->sub.c.fd,
	    (struct sockaddr *)&r->local, &sl) == 0 &&
	    tlsrpt_own_add(s->t, (struct sockaddr *)&r->local) == 0)
		r->own = 1;
}

/* ---- a domain's report ---- */

static void
job_end(struct job *j, const char *error)
{
	struct tlsrpt_sender *s = j->s;
	char attempt[16], retry[24], day[16];

	j->busy = 0;
	s->active--;
	if (error == NULL && j->failed == 0) {
		j->done = 1;
		free(j->gz);
		j->gz = NULL;
		return;
	}
	j->next_try = clock_now() + job_backoff(j);
	if (error != NULL) {
		snprintf(attempt, sizeof(attempt), "%d", j->attempt);
		snprintf(retry, sizeof(retry), "%ld", job_backoff(j));
		tlsrpt_day_text(j->day, day, sizeof(day));
		log_warn(0, "tlsrpt-send-failed", "day", day, "domain",
		    j->domain, "attempt", attempt, "error", error, "retry_in",
		    retry, NULL);
	}
}

static void
job_rua(struct job *j, const char *rua)
{
	struct rsend *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		j->failed++;
		return;
	}
	r->j = j;
	snprintf(r->rua, sizeof(r->rua), "%s", rua);
	r->next = j->sends;
	j->sends = r;
	j->pending++;
	if (strncasecmp(rua, "https:", 6) == 0)
		https_start(r);
	else
		mailto_start(r);
}

/* Discovery (RFC 8460 section 3), then a send to each rua not yet done. */
static void
job_txt(void *arg, const struct dns_txt_result *res)
{
	struct job *j = arg;
	const char *recs[DNS_TXT_MAX];
	struct tlsrpt_txt txt;
	char err[320], name[DNS_NAME_MAX + 16], list[4 * (TLSRPT_URI_MAX + 1)];
	char unused[16], day[16];
	const char *sec = dnssec_status_name(res->sec);
	size_t used = 0;
	int i, n = 0;

	j->txtq = NULL;
	snprintf(name, sizeof(name), "_smtp._tls.%s", j->domain);
	tlsrpt_day_text(j->day, day, sizeof(day));
	if (res->status != DNS_OK && res->status != DNS_NODATA &&
	    res->status != DNS_NXDOMAIN) {
		snprintf(err, sizeof(err), "%s: %s", name, res->error ?
		    res->error : "DNS lookup failed");
		job_end(j, err);
		return;
	}
	for (i = 0; i < res->ntxt; i++)
		recs[i] = res->txt[i];
	switch (tlsrpt_parse_txt(recs, res->len, res->status == DNS_OK ?
	    res->ntxt : 0, &txt, err, sizeof(err))) {
	case TLSRPT_TXT_OK:
		break;
	case TLSRPT_TXT_NONE:
		log_info(0, "tlsrpt-rua", "day", day, "domain", j->domain,
		    "rua", "none", "dnssec", sec, "reason", err, NULL);
		job_end(j, NULL);
		return;
	case TLSRPT_TXT_INVALID:
		log_warn(0, "tlsrpt-rua", "day", day, "domain", j->domain,
		    "rua", "invalid", "dnssec", sec, "reason", err, NULL);
		job_end(j, NULL);
		return;
	}
	/* The first few: a hostile record cannot make us send widely. */
	list[0] = '\0';
	for (i = 0; i < txt.nrua && i < TLSRPT_SEND_RUA_MAX; i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used,
		    "%s%s", i ? " " : "", txt.rua[i]);
	snprintf(unused, sizeof(unused), "%d", txt.nskipped + (txt.nrua >
	    TLSRPT_SEND_RUA_MAX ? txt.nrua - TLSRPT_SEND_RUA_MAX : 0));
	log_info(0, "tlsrpt-rua", "day", day, "domain", j->domain, "rua", list,
	    "dnssec", sec, "ignored", unused, NULL);
	j->pending = 1; /* held while starting: a send may end at once */
	for (i = 0; i < txt.nrua && i < TLSRPT_SEND_RUA_MAX; i++)
		if (!tlsrpt_was_sent(j->s->t, j->day, j->domain,
		    txt.rua[i])) {
			job_rua(j, txt.rua[i]);
			n++;
		}
	if (n == 0)
		log_info(0, "tlsrpt-already-sent", "day", day, "domain",
		    j->domain, NULL);
	if (--j->pending == 0)
		job_end(j, NULL);
}

static void
job_start(struct job *j)
{
	struct tlsrpt_sender *s = j->s;
	struct tlsrpt_report_info ri;
	char name[DNS_NAME_MAX + 16], day[16];
	char *json;
	size_t len;

	j->busy = 1;
	j->failed = 0;
	j->attempt++;
	s->active++;
	if (j->gz == NULL) {
		ri.organization = s->org;
		ri.contact = s->contact;
		ri.submitter = s->submitter;
		json = tlsrpt_report_json(tlsrpt_store_of(s->t), j->day,
		    j->domain, &ri, &len);
		if (json == NULL || tlsrpt_gzip(json, len, &j->gz,
		    &j->gzlen) < 0) {
			free(json);
			job_end(j, "out of memory for the report");
			return;
		}
		free(json);
		tlsrpt_day_text(j->day, day, sizeof(day));
		snprintf(j->report_id, sizeof(j->report_id),
		    "%sT00:00:00Z+%s@%s", day, j->domain, s->submitter);
	}
	snprintf(name, sizeof(name), "_smtp._tls.%s", j->domain);
	if ((j->txtq = dns_lookup_txt(s->dns, name, job_txt, j)) == NULL)
		job_end(j, "out of memory");
}

static void
job_free(struct job *j)
{
	struct rsend *r;

	if (j->txtq != NULL)
		dns_cancel(j->txtq);
	while ((r = j->sends) != NULL) {
		j->sends = r->next;
		rsend_free(r);
	}
	free(j->gz);
	free(j);
}

/* ---- the runs ---- */

/*
 * Each UTC day has a run: at a random moment in the window after
 * midnight, yesterday's reports are listed, and what still failed of the
 * days before is tried again with them.  Complete days before yesterday
 * (missed while mxtls was down, or all of whose sends failed) are due at
 * once.  Every day the journal keeps is covered, oldest first, until
 * each of its reports went to each rua (tlsrpt_was_sent: exactly once,
 * across restarts) or the day leaves the journal.
 */

static void
sender_reap(struct tlsrpt_sender *s)
{
	struct job **pp, *j;
	struct rsend *r;

	while ((r = s->dead) != NULL) {
		s->dead = r->next;
		rsend_free(r);
	}
	/* A report done leaves room for the next (see sender_list). */
	for (pp = &s->jobs; (j = *pp) != NULL;) {
		if (!j->done || j->busy) {
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		s->njobs--;
		job_free(j);
	}
}

/* Drop the jobs of days outside [from, to], giving up those not done. */
static void
sender_drop_jobs(struct tlsrpt_sender *s, long from, long to, int log)
{
	struct job **pp, *j;
	char day[16], attempt[16];
	int i;

	for (pp = &s->jobs; (j = *pp) != NULL;) {
		if (j->day >= from && j->day <= to) {
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		s->njobs--;
		if (j->busy)
			s->active--;
		if (log && !j->done) {
			tlsrpt_day_text(j->day, day, sizeof(day));
			snprintf(attempt, sizeof(attempt), "%d", j->attempt);
			log_warn(0, "tlsrpt-given-up", "day", day, "domain",
			    j->domain, "attempts", attempt, "reason",
			    "the day has left the journal", NULL);
		}
		job_free(j);
	}
	for (i = 0; i < s->ndays;)
		if (s->days[i].day < from || s->days[i].day > to)
			s->days[i] = s->days[--s->ndays];
		else
			i++;
}

static void
sender_new_day(struct tlsrpt_sender *s, long today)
{
	char d[16], due[32];
	struct tm tm;

	/* The days still kept and complete (the clock may have gone back). */
	sender_drop_jobs(s, today - TLSRPT_KEEP_DAYS, today - 1, 1);
	s->today = today;
	s->ran = 0;
	/* Yesterday's moment in the window after the midnight that ended it. */
	s->due = (time_t)today * 86400 + (s->window > 0 ?
	    (time_t)arc4random_uniform((uint32_t)s->window) : 0);
	tlsrpt_day_text(today - 1, d, sizeof(d));
	gmtime_r(&s->due, &tm);
	strftime(due, sizeof(due), "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_info(0, "tlsrpt-scheduled", "day", d, "due", due, NULL);
}

static struct sender_day *
sender_day(struct tlsrpt_sender *s, long day)
{
	int i;

	for (i = 0; i < s->ndays; i++)
		if (s->days[i].day == day)
			return &s->days[i];
	if (s->ndays == TLSRPT_DAYS_MAX)
		return NULL;
	memset(&s->days[s->ndays], 0, sizeof(s->days[0]));
	s->days[s->ndays].day = day;
	return &s->days[s->ndays++];
}

/*
 * Make jobs of the due days' domains not listed yet, oldest day first,
 * while fewer than jobs_max are held: a run's memory is bounded, and
 * the rest follow as reports are done.
 */
static void
sender_list(struct tlsrpt_sender *s, int yesterday)
{
	long days[TLSRPT_DAYS_MAX];
	struct job *j, **tail;
	struct sender_day *sd;
	const char **doms;
	char d[16], nrep[24], nwait[24], nmax[24];
	int i, k, nd, n;

	n = tlsrpt_store_report_days(tlsrpt_store_of(s->t), s->today,
	    TLSRPT_KEEP_DAYS, yesterday, days, TLSRPT_DAYS_MAX);
	for (i = 0; i < n; i++) {
		if ((sd = sender_day(s, days[i])) == NULL || sd->all)
			continue;
		/* Refilled in batches: listing sorts the day's domains. */
		if (s->njobs >= s->jobs_max || (sd->next > 0 &&
		    s->njobs > s->jobs_max / 2))
			return;
		if ((nd = tlsrpt_store_domains(tlsrpt_store_of(s->t), days[i],
		    &doms)) < 0) {
			log_error(0, "tlsrpt-send-failed", "error",
			    "out of memory listing the day's domains", NULL);
			return;
		}
		for (tail = &s->jobs; *tail != NULL; tail = &(*tail)->next)
			;
		for (k = sd->next; k < nd && s->njobs < s->jobs_max; k++) {
			if ((j = calloc(1, sizeof(*j))) == NULL)
				break;
			j->s = s;
			j->day = days[i];
			snprintf(j->domain, sizeof(j->domain), "%s", doms[k]);
			*tail = j;
			tail = &j->next;
			s->njobs++;
		}
		free(doms);
		tlsrpt_day_text(days[i], d, sizeof(d));
		snprintf(nrep, sizeof(nrep), "%d", k - sd->next);
		snprintf(nwait, sizeof(nwait), "%d", nd - k);
		log_info(0, "tlsrpt-run", "day", d, "reports", nrep, "waiting",
		    nwait, NULL);
		sd->next = k;
		sd->all = k >= nd;
		if (!sd->all && !sd->warned) {
			sd->warned = 1;
			snprintf(nmax, sizeof(nmax), "%ld", s->jobs_max);
			log_warn(0, "tlsrpt-run-bounded", "day", d, "waiting",
			    nwait, "held", nmax, "reason", "no more reports are "
			    "held at once; the rest follow as these are done",
			    NULL);
		}
	}
}

void
tlsrpt_sender_tick(struct tlsrpt_sender *s)
{
	struct job *j;
	time_t now;

	if (s == NULL)
		return;
	sender_reap(s);
	now = clock_now();
	if (s->today != tlsrpt_day_of(now))
		sender_new_day(s, tlsrpt_day_of(now));
	if (now >= s->due && !s->ran) {
		/* The day's run: what failed before is tried again now too. */
		s->ran = 1;
		for (j = s->jobs; j != NULL; j = j->next)
			j->next_try = 0;
	}
	sender_list(s, now >= s->due);
	for (j = s->jobs; j != NULL && s->active < TLSRPT_SEND_ACTIVE_MAX;
	    j = j->next)
		if (!j->busy && !j->done && j->next_try <= now)
			job_start(j);
}

void
tlsrpt_sender_now(struct tlsrpt_sender *s)
{
	struct job *j;

	if (s == NULL)
		return;
	log_info(0, "tlsrpt-send-now", NULL);
	tlsrpt_sender_tick(s); /* the day is known */
	if (s->due > clock_now())
		s->due = clock_now();
	for (j = s->jobs; j != NULL; j = j->next)
		j->next_try = 0;
	tlsrpt_sender_tick(s);
}

void
tlsrpt_sender_free(struct tlsrpt_sender *s)
{
	if (s == NULL)
		return;
	sender_drop_jobs(s, 1, 0, 0); /* all of them */
	sender_reap(s);
	free(s->org);
	free(s->contact);
	free(s->submitter);
	free(s->ca_bundle);
	free(s->addr_rules);
	free(s);
}
