/*
 * The MTA-STS policy cache (see sts.h for the rules callers get).
 *
 * Shape.  One struct sts_dom per known domain, in a hash table: the
 * cached policy (struct sts_record), the last TXT check, the last fetch
 * failure, the force flags of sts_refresh(), the work in flight (one TXT
 * query; one address lookup then one fetch) and the lookups waiting for
 * it.  What to do next is always sts_decide(), a pure function of those
 * facts and the clock; sts_run() carries it out: start the TXT query,
 * start the fetch, or answer the waiting lookups.  sts_run() is called
 * from the loop only: from the zero-delay "kick" timer (after
 * sts_lookup() and sts_refresh(), so no callback ever runs inside them),
 * and from the DNS and fetcher callbacks once their facts are recorded.
 * Each lookup also has its own timer of `wait` seconds: when it fires
 * first, the lookup gets what is known (sts_decide_pending()).
 *
 * Callbacks may do anything, sts_free() included: every libev or
 * dns/fetcher callback of ours counts itself in s->depth, sts_free()
 * during a callback only stops everything (no callback runs after it)
 * and marks s doomed, and the memory goes when the depth is back to
 * zero.  The lookups being answered are first moved to a list on the
 * stack, so that a callback's new lookup of the same domain is not
 * answered in the same pass, and a callback's sts_cancel() of one of
 * them still finds it.  A domain with work in flight, waiting lookups or
 * on the stack is never evicted.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "clock.h"
#include "dns.h"
#include "fetcher.h"
#include "file.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "sts.h"

#define STS_BUCKETS 16384 /* a power of two, above STS_MAX_DOMAINS */

/* ------------------------------------------------------------------ */
/* The cache                                                           */
/* ------------------------------------------------------------------ */

struct sts_dom;

/* A list of lookups: a domain's waiters, or a batch being answered. */
struct sts_qlist {
	struct sts_query *first, *last;
};

struct sts_query {
	struct sts *s;
	struct sts_dom *d; /* NULL: answered with fixed_source */
	struct sts_qlist *list;
	struct sts_query *prev, *next;
	ev_timer timer;
	enum sts_source fixed_source;
	sts_cb *cb;
	void *arg;
};

struct sts_dom {
	struct sts *s;
	struct sts_dom *hnext; /* hash chain */
	struct sts_dom *knext; /* kick list */
	char name[STS_DOMAIN_MAX + 1];
	time_t last_used;
	/* The cached policy (rec.domain is name). */
	int cached;
	struct sts_record rec;
	/* The last TXT check. */
	enum sts_txt_state txt;
	char txt_id[MTASTS_ID_MAX + 1];
	time_t txt_checked;
	char *txt_error; /* STS_TXT_INVALID: why (or NULL) */
	/* The last fetch. */
	int fetch_failed;
	time_t fetch_failed_at;
	char *error; /* the last fetch failed: why (or NULL) */
	int just_fetched; /* the next answer says "fetched" */
	/* sts_refresh(). */
	int force_txt, force_fetch;
	/* Work in flight. */
	struct dns_query *txt_q;
	int fetching; /* from the address lookup to the fetch's answer */
	char fetch_id[MTASTS_ID_MAX + 1];
	double fetch_t0;
	struct dns_query *addr_q;
	struct fetch_call *fetch_c;
	/* Lookups waiting. */
	struct sts_qlist waiters;
	int nwaiters;
	int running; /* sts_run() on the stack */
	int kicked;
	/* What it is charged against max_bytes (sts_account()). */
	size_t rec_len; /* the record text of the cached policy */
	size_t cost;
};

struct sts {
	struct ev_loop *loop;
	struct dns *dns;
	struct fetcher *fetcher;
	char *dir;
	char *ca_bundle;
	double wait;
	struct journal *journal;
	struct sts_dom **buckets;
	int n;	     /* domains */
	int ncached; /* of which with a cached policy */
	size_t bytes, max_bytes; /* sts_cost() of all domains, its bound */
	struct sts_loading *loading; /* during sts_load() */
	ev_timer kick;
	struct sts_dom *kick_first, *kick_last;
	struct sts_qlist fixed; /* lookups answered without a domain */
	int depth;
	int doomed;
};

static void sts_run(struct sts_dom *d);
static void sts_destroy(struct sts *s);

size_t
sts_cost(size_t errors_len, int cached, size_t rec_len, int nmx)
{
	size_t c = sizeof(struct sts_dom) + errors_len;

	if (cached)
		c += rec_len + (size_t)nmx * sizeof(char *);
	return c;
}

/* Charge d's cost anew after a change (policy, error texts). */
static void
sts_account(struct sts_dom *d)
{
	size_t c = sts_cost((d->error ? strlen(d->error) + 1 : 0) +
	    (d->txt_error ? strlen(d->txt_error) + 1 : 0), d->cached,
	    d->rec_len, d->rec.policy.nmx);

	d->s->bytes = d->s->bytes - d->cost + c;
	d->cost = c;
	metrics_set("mxtls_mta_sts_cache_bytes", "", (double)d->s->bytes);
}

/*
 * Error texts are kept on the heap, only while there is one: a domain
 * costs a few hundred bytes, and there may be STS_MAX_DOMAINS of them.
 * Out of memory, the text is lost (NULL), nothing else.
 */
static void
sts_setstr(char **dst, const char *src)
{
	free(*dst);
	*dst = src != NULL && src[0] != '\0' ? strdup(src) : NULL;
}

static void
sts_dom_free(struct sts_dom *d)
{
	if (d->cached)
		sts_record_free(&d->rec);
	free(d->error);
	free(d->txt_error);
	free(d);
}

static uint32_t
sts_hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

static struct sts_dom *
sts_find(struct sts *s, const char *name)
{
	struct sts_dom *d;

	for (d = s->buckets[sts_hash(name) & (STS_BUCKETS - 1)]; d != NULL;
	     d = d->hnext)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

static void
sts_ql_add(struct sts_qlist *l, struct sts_query *q)
{
	q->list = l;
	q->next = NULL;
	q->prev = l->last;
	if (l->last != NULL)
		l->last->next = q;
	else
		l->first = q;
	l->last = q;
}

static void
sts_ql_del(struct sts_query *q)
{
	struct sts_qlist *l = q->list;

	if (l == NULL)
		return;
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		l->first = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	else
		l->last = q->prev;
	q->list = NULL;
	q->prev = q->next = NULL;
}

/* Drop the cached policy of d, in memory and on disk. */
static void
sts_uncache(struct sts_dom *d)
{
	char err[512];

	if (!d->cached)
		return;
	sts_record_free(&d->rec);
	d->cached = 0;
	d->rec_len = 0;
	d->s->ncached--;
	sts_account(d);
	if (journal_del(d->s->journal, d->name, err, sizeof(err)) < 0)
		log_warn(0, "mta-sts", "domain", d->name, "result",
		    "cache-remove-failed", "error", err, NULL);
}

static void
sts_facts(const struct sts_dom *d, struct sts_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->cached = d->cached;
	if (d->cached) {
		f->cached_id = d->rec.id;
		f->fetched_at = d->rec.fetched_at;
		f->expires = d->rec.expires;
		f->max_age = d->rec.policy.max_age;
	}
	f->txt = d->txt;
	f->txt_id = d->txt == STS_TXT_ID ? d->txt_id : NULL;
	f->txt_checked = d->txt_checked;
	f->fetch_failed = d->fetch_failed;
	f->fetch_failed_at = d->fetch_failed_at;
	f->force_txt = d->force_txt;
	f->force_fetch = d->force_fetch;
}

/* Idle: nothing in flight, nobody waiting, not on the stack or kicked. */
static int
sts_idle(const struct sts_dom *d)
{
	return d->txt_q == NULL && !d->fetching && d->waiters.first == NULL &&
	    !d->running && !d->kicked && !d->force_txt && !d->force_fetch;
}

static void
sts_unhash(struct sts_dom *d)
{
	struct sts_dom **pp;

	for (pp = &d->s->buckets[sts_hash(d->name) & (STS_BUCKETS - 1)];
	     *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == d) {
			*pp = d->hnext;
			break;
		}
	d->s->n--;
	d->s->bytes -= d->cost;
	metrics_set("mxtls_mta_sts_cache_bytes", "", (double)d->s->bytes);
}

/*
 * Forget the idle domain, other than keep, that matters least
 * (sts_evict_first()), in memory and on disk.  -1 when every one is busy.
 */
static int
sts_evict(struct sts *s, const struct sts_dom *keep)
{
	struct sts_dom *d, *victim = NULL;
	struct sts_evict_facts fd, fv;
	const char *mode;
	char labels[48];
	size_t i;

	memset(&fv, 0, sizeof(fv));
	for (i = 0; i < STS_BUCKETS; i++)
		for (d = s->buckets[i]; d != NULL; d = d->hnext) {
			if (d == keep || !sts_idle(d))
				continue;
			fd.cached = d->cached;
			fd.mode = d->rec.policy.mode;
			fd.last_used = d->last_used;
			if (victim == NULL || sts_evict_first(&fd, &fv)) {
				victim = d;
				fv = fd;
			}
		}
	if ((d = victim) == NULL)
		return -1;
	mode = d->cached ? mtasts_mode_name(d->rec.policy.mode) : "no-policy";
	snprintf(labels, sizeof(labels), "mode=\"%s\"", mode);
	metrics_inc("mxtls_mta_sts_evictions_total", labels, 1);
	if (d->cached)
		log_info(0, "mta-sts", "domain", d->name, "result", "evicted",
		    "id", d->rec.id, "mode", mode, NULL);
	sts_uncache(d);
	sts_unhash(d);
	sts_dom_free(d);
	return 0;
}

static struct sts_dom *
sts_dom_get(struct sts *s, const char *name, int *full)
{
	struct sts_dom *d;
	size_t b;

	*full = 0;
	if ((d = sts_find(s, name)) != NULL)
		return d;
	while (s->n >= STS_MAX_DOMAINS ||
	    s->bytes + sizeof(*d) > s->max_bytes)
		if (sts_evict(s, NULL) < 0) {
			*full = 1;
			return NULL;
		}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->s = s;
	snprintf(d->name, sizeof(d->name), "%s", name);
	b = sts_hash(name) & (STS_BUCKETS - 1);
	d->hnext = s->buckets[b];
	s->buckets[b] = d;
	s->n++;
	sts_account(d);
	return d;
}

/* Run d from the loop soon (never inside sts_lookup or sts_refresh). */
static void
sts_kick(struct sts_dom *d)
{
	struct sts *s = d->s;

	if (d->kicked)
		return;
	d->kicked = 1;
	d->knext = NULL;
	if (s->kick_last != NULL)
		s->kick_last->knext = d;
	else
		s->kick_first = d;
	s->kick_last = d;
	if (!ev_is_active(&s->kick)) {
		ev_timer_set(&s->kick, 0., 0.);
		ev_timer_start(s->loop, &s->kick);
	}
}

static void
sts_query_free(struct sts_query *q)
{
	ev_timer_stop(q->s->loop, &q->timer);
	sts_ql_del(q);
	if (q->d != NULL)
		q->d->nwaiters--;
	free(q);
}

/*
 * Answer every lookup in batch (already off the waiters list) with a.
 * Returns -1 when a callback freed s: stop at once.
 */
static int
sts_deliver(struct sts *s, struct sts_qlist *batch,
    const struct sts_answer *a)
{
	struct sts_query *q;
	sts_cb *cb;
	void *arg;

	while ((q = batch->first) != NULL) {
		if (s->doomed) {
			sts_query_free(q);
			continue;
		}
		cb = q->cb;
		arg = q->arg;
		sts_query_free(q);
		cb(arg, a);
	}
	return s->doomed ? -1 : 0;
}

static void
sts_make_answer(struct sts_dom *d, const struct sts_decision *dec,
    struct sts_answer *a)
{
	int mode_none = 0;
	enum sts_source src = dec->source;

	memset(a, 0, sizeof(*a));
	if (dec->use_cache && d->cached) {
		if (d->rec.policy.mode == MTASTS_NONE)
			mode_none = 1;
		else
			a->policy = &d->rec.policy;
	}
	if (src == STS_SRC_CACHE && d->just_fetched)
		src = STS_SRC_FETCHED;
	a->source = sts_source_name(src, mode_none);
	if (dec->with_error && d->error != NULL)
		a->error = d->error;
	else if ((src == STS_SRC_TXT_INVALID ||
	    src == STS_SRC_TXT_INVALID_CACHE) && d->txt_error != NULL)
		a->error = d->txt_error;
}

/* Answer all of d's waiters per dec; -1 when s was freed meanwhile. */
static int
sts_answer_waiters(struct sts_dom *d, const struct sts_decision *dec)
{
	struct sts_qlist batch = { NULL, NULL };
	struct sts_answer a;
	struct sts_query *q;
	char n[16];

	if (d->waiters.first == NULL)
		return 0;
	while ((q = d->waiters.first) != NULL) {
		sts_ql_del(q);
		sts_ql_add(&batch, q);
	}
	sts_make_answer(d, dec, &a);
	if (log_enabled(CONFIG_LOG_DEBUG)) {
		snprintf(n, sizeof(n), "%d", d->nwaiters);
		log_debug(0, "mta-sts", "domain", d->name, "result", "answer",
		    "source", a.source, "mode", a.policy != NULL ?
		    mtasts_mode_name(a.policy->mode) : "none", "lookups", n,
		    "error", a.error, NULL);
	}
	return sts_deliver(d->s, &batch, &a);
}

static void
sts_count(enum sts_outcome o)
{
	char labels[64];

	snprintf(labels, sizeof(labels), "source=\"mta-sts\",outcome=\"%s\"",
	    sts_outcome_name(o));
	metrics_inc("mxtls_policy_fetches_total", labels, 1);
}

/* A fetch (address lookup included) ended without a usable policy. */
static void
sts_fetch_failed(struct sts_dom *d, enum sts_outcome o, const char *error,
    const struct fetch_response *rs)
{
	char status[16], bytes[24], ms[24], url[FETCHPROTO_URL_MAX];
	int kept;

	d->fetching = 0;
	d->fetch_failed = 1;
	d->fetch_failed_at = clock_now();
	sts_setstr(&d->error, error);
	snprintf(url, sizeof(url), "https://mta-sts.%s/.well-known/mta-sts.txt",
	    d->name);
	snprintf(ms, sizeof(ms), "%.0f", (clock_mono() - d->fetch_t0) * 1e3);
	snprintf(status, sizeof(status), "%u", rs != NULL ? rs->status : 0);
	snprintf(bytes, sizeof(bytes), "%zu", rs != NULL ? rs->body_len : 0);
	sts_account(d);
	kept = d->cached && clock_now() < sts_valid_until(d->rec.fetched_at,
	    d->rec.expires);
	log_warn(0, "mta-sts", "domain", d->name, "result", "refused",
	    "outcome", sts_outcome_name(o), "url", url, "id", d->fetch_id,
	    "status", status, "bytes", bytes, "duration_ms", ms, "kept",
	    kept ? "cached-policy" : "no-policy", "error", error, NULL);
	sts_count(o);
}

/* Store what a fetch brought, in memory and on disk. */
static void
sts_store(struct sts_dom *d, struct mtasts_policy *p,
    const struct fetch_response *rs)
{
	struct sts *s = d->s;
	char err[512], *text;
	char status[16], bytes[24], ms[24], age[24], nmx[16];
	char url[FETCHPROTO_URL_MAX];
	size_t len;
	time_t now = clock_now();

	d->fetching = 0;
	d->fetch_failed = 0;
	sts_setstr(&d->error, NULL);
	if (d->cached)
		sts_record_free(&d->rec);
	else
		d->s->ncached++;
	d->cached = 1;
	snprintf(d->rec.domain, sizeof(d->rec.domain), "%s", d->name);
	snprintf(d->rec.id, sizeof(d->rec.id), "%s", d->fetch_id);
	d->rec.fetched_at = now;
	d->rec.expires = now + (time_t)p->max_age;
	d->rec.policy = *p;
	memset(p, 0, sizeof(*p));
	d->just_fetched = 1;

	snprintf(url, sizeof(url), "https://mta-sts.%s/.well-known/mta-sts.txt",
	    d->name);
	snprintf(ms, sizeof(ms), "%.0f", (clock_mono() - d->fetch_t0) * 1e3);
	snprintf(status, sizeof(status), "%u", rs->status);
	snprintf(bytes, sizeof(bytes), "%zu", rs->body_len);
	snprintf(age, sizeof(age), "%ld", d->rec.policy.max_age);
	snprintf(nmx, sizeof(nmx), "%d", d->rec.policy.nmx);
	log_info(0, "mta-sts", "domain", d->name, "result", "fetched",
	    "outcome", "ok", "url", url, "id", d->rec.id,
	    "mode", mtasts_mode_name(d->rec.policy.mode), "max_age", age,
	    "max_age_capped", d->rec.policy.max_age_capped ? "yes" : NULL,
	    "mx", nmx, "status", status, "bytes", bytes, "duration_ms", ms,
	    NULL);
	sts_count(STS_OUTCOME_OK);

	/* Queued for the journal's thread: the loop never waits for disk. */
	if (sts_record_format(&d->rec, &text, &len, err, sizeof(err)) < 0 ||
	    journal_put(s->journal, d->name, text, len, err, sizeof(err)) < 0)
		log_warn(0, "mta-sts", "domain", d->name, "result",
		    "cache-write-failed", "error", err, NULL);
	free(text);
	d->rec_len = len;
	sts_account(d);
	/* Room for it: d itself is kept, its lookups are waiting. */
	while (s->bytes > s->max_bytes && sts_evict(s, d) == 0)
		;
}

static void
sts_enter(struct sts *s)
{
	s->depth++;
}

/* -1 when s is gone (or going): touch nothing of it. */
static int
sts_leave(struct sts *s)
{
	if (--s->depth == 0 && s->doomed) {
		sts_destroy(s);
		return -1;
	}
	return s->doomed ? -1 : 0;
}

static void
sts_fetch_cb(void *arg, const struct fetch_response *rs)
{
	struct sts_dom *d = arg;
	struct sts *s = d->s;
	struct mtasts_policy p;
	char err[STS_ERROR_MAX];
	enum sts_outcome o;

	d->fetch_c = NULL;
	sts_enter(s);
	o = sts_fetch_outcome(rs, &p, err, sizeof(err));
	if (o == STS_OUTCOME_OK)
		sts_store(d, &p, rs);
	else
		sts_fetch_failed(d, o, err, rs);
	sts_run(d);
	sts_leave(s);
}

static void
sts_addr_cb(void *arg, const struct dns_addr_result *res)
{
	struct sts_dom *d = arg;
	struct sts *s = d->s;
	struct fetch_request rq;
	char url[FETCHPROTO_URL_MAX], err[STS_ERROR_MAX];
	char addrs[FETCHPROTO_ADDRS_MAX * (INET6_ADDRSTRLEN + 1)];
	size_t used = 0;
	int i;

	d->addr_q = NULL;
	sts_enter(s);
	if (res->status != DNS_OK) {
		snprintf(err, sizeof(err), "sts-policy-fetch-error: %s",
		    res->error != NULL ? res->error : "address lookup failed");
		sts_fetch_failed(d, STS_OUTCOME_FAILED, err, NULL);
		sts_run(d);
		sts_leave(s);
		return;
	}
	memset(&rq, 0, sizeof(rq));
	snprintf(url, sizeof(url), "https://mta-sts.%s/.well-known/mta-sts.txt",
	    d->name);
	rq.url = url;
	for (i = 0; i < res->naddr && rq.naddrs < FETCHPROTO_ADDRS_MAX; i++) {
		const struct sockaddr_storage *ss = &res->addr[i];
		struct fetch_addr *fa = &rq.addrs[rq.naddrs];

		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ss;

			fa->len = 4;
			memcpy(fa->a, &sin->sin_addr, 4);
		} else if (ss->ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)ss;

			fa->len = 16;
			memcpy(fa->a, &sin6->sin6_addr, 16);
		} else
			continue;
		rq.naddrs++;
		used += (size_t)snprintf(addrs + used, sizeof(addrs) - used,
		    "%s", used > 0 ? "," : "");
		if (inet_ntop(fa->len == 4 ? AF_INET : AF_INET6, fa->a,
		    addrs + used, (socklen_t)(sizeof(addrs) - used)) != NULL)
			used += strlen(addrs + used);
	}
	addrs[used] = '\0';
	/*
	 * Where the policy host is, as mxtls resolved it: a name pointing at
	 * a private or loopback address shows here (docs/security.md F-14).
	 */
	log_info(0, "mta-sts", "domain", d->name, "result", "fetching", "id",
	    d->fetch_id, "addrs", used > 0 ? addrs : "(none)", NULL);
	rq.ca_bundle = s->ca_bundle;
	rq.max_bytes = STS_FETCH_MAX_BYTES;
	rq.connect_timeout_ms = STS_FETCH_CONNECT_MS;
	rq.timeout_ms = STS_FETCH_TIMEOUT_MS;
	rq.flags = FETCHPROTO_F_TEXT_PLAIN;
	/* No etag, no If-Modified-Since: RFC 8461 section 3.3. */
	if (rq.naddrs == 0 || s->fetcher == NULL ||
	    (d->fetch_c = fetcher_request(s->fetcher, &rq, sts_fetch_cb, d)) ==
	    NULL) {
		snprintf(err, sizeof(err), "sts-policy-fetch-error: %s",
		    rq.naddrs == 0 ? "no usable address for the policy host" :
		    s->fetcher == NULL ? "no fetcher" :
		    "the fetch could not be started");
		sts_fetch_failed(d, STS_OUTCOME_FAILED, err, NULL);
		sts_run(d);
	}
	sts_leave(s);
}

/* Start the fetch: the address lookup first.  -1 when it failed at once. */
static int
sts_fetch_start(struct sts_dom *d)
{
	struct sts *s = d->s;
	char host[DNS_NAME_MAX], err[STS_ERROR_MAX];

	d->fetching = 1;
	d->force_fetch = 0;
	d->fetch_t0 = clock_mono();
	snprintf(d->fetch_id, sizeof(d->fetch_id), "%s", d->txt_id);
	snprintf(host, sizeof(host), "mta-sts.%s", d->name);
	log_debug(0, "mta-sts", "domain", d->name, "result", "fetch-start",
	    "id", d->fetch_id, NULL);
	if (s->dns == NULL ||
	    (d->addr_q = dns_lookup_addr(s->dns, host, sts_addr_cb, d)) ==
	    NULL) {
		snprintf(err, sizeof(err), "sts-policy-fetch-error: address "
		    "lookup for %s could not be started", host);
		sts_fetch_failed(d, STS_OUTCOME_FAILED, err, NULL);
		return -1;
	}
	return 0;
}

static void
sts_txt_record(struct sts_dom *d, const struct dns_txt_result *res)
{
	const char *recs[DNS_TXT_MAX];
	size_t lens[DNS_TXT_MAX];
	struct mtasts_txt t;
	char err[MTASTS_ERR_MAX], why[STS_ERROR_MAX];
	int i;

	d->txt_checked = clock_now();
	sts_setstr(&d->txt_error, NULL);
	d->txt_id[0] = '\0';
	if (res == NULL || res->status == DNS_TEMPFAIL) {
		d->txt = STS_TXT_TEMPFAIL;
		log_info(0, "mta-sts", "domain", d->name, "result",
		    "txt-tempfail", "error", res != NULL && res->error != NULL ?
		    res->error : "the TXT lookup could not be started", NULL);
		return;
	}
	if (res->status != DNS_OK) {
		d->txt = STS_TXT_NONE;
		log_debug(0, "mta-sts", "domain", d->name, "result", "txt-none",
		    "error", res->error, NULL);
		return;
	}
	for (i = 0; i < res->ntxt; i++) {
		recs[i] = res->txt[i];
		lens[i] = res->len[i];
	}
	switch (mtasts_parse_txt(recs, lens, res->ntxt, &t, err, sizeof(err))) {
	case MTASTS_TXT_OK:
		d->txt = STS_TXT_ID;
		snprintf(d->txt_id, sizeof(d->txt_id), "%s", t.id);
		log_debug(0, "mta-sts", "domain", d->name, "result", "txt",
		    "id", d->txt_id, NULL);
		break;
	case MTASTS_TXT_NONE:
		d->txt = STS_TXT_NONE;
		log_debug(0, "mta-sts", "domain", d->name, "result", "txt-none",
		    "error", err, NULL);
		break;
	case MTASTS_TXT_INVALID:
	default:
		d->txt = STS_TXT_INVALID;
		snprintf(why, sizeof(why), "sts-policy-invalid: _mta-sts.%s "
		    "TXT: %s", d->name, err);
		sts_setstr(&d->txt_error, why);
		log_warn(0, "mta-sts", "domain", d->name, "result",
		    "txt-invalid", "error", err, NULL);
		break;
	}
}

static void
sts_txt_cb(void *arg, const struct dns_txt_result *res)
{
	struct sts_dom *d = arg;
	struct sts *s = d->s;

	d->txt_q = NULL;
	sts_enter(s);
	sts_txt_record(d, res);
	sts_account(d);
	sts_run(d);
	sts_leave(s);
}

/*
 * Carry out sts_decide() for d until it has to wait for work, or has
 * answered.  From the loop only; the caller holds s->depth.
 */
static void
sts_run(struct sts_dom *d)
{
	struct sts *s = d->s;
	struct sts_facts f;
	struct sts_decision dec;
	char name[DNS_NAME_MAX];
	time_t now;
	int loops;

	if (s->doomed)
		return;
	d->running++;
	for (loops = 0; loops < 8; loops++) {
		now = clock_now();
		/* An expired policy is no use to any decision. */
		if (d->cached && now >= sts_valid_until(d->rec.fetched_at,
		    d->rec.expires)) {
			log_info(0, "mta-sts", "domain", d->name, "result",
			    "expired", "id", d->rec.id, NULL);
			sts_uncache(d);
		}
		sts_facts(d, &f);
		sts_decide(&f, now, &dec);
		if (dec.step == STS_STEP_TXT) {
			if (d->txt_q != NULL)
				break; /* in flight: wait for it */
			d->force_txt = 0;
			snprintf(name, sizeof(name), "_mta-sts.%s", d->name);
			if (s->dns != NULL && (d->txt_q = dns_lookup_txt(s->dns,
			    name, sts_txt_cb, d)) != NULL)
				break;
			sts_txt_record(d, NULL);
			sts_account(d);
			continue;
		}
		if (dec.step == STS_STEP_FETCH) {
			if (d->fetching)
				break; /* in flight: wait for it */
			if (sts_fetch_start(d) == 0)
				break;
			continue;
		}
		/* STS_STEP_ANSWER */
		d->force_fetch = 0;
		if (sts_answer_waiters(d, &dec) < 0)
			return; /* s is doomed: d may be gone with it */
		d->just_fetched = 0;
		if (dec.fetch_after && !d->fetching) {
			log_info(0, "mta-sts", "domain", d->name, "result",
			    "background-refresh", "id", d->rec.id, NULL);
			sts_fetch_start(d);
		}
		break;
	}
	d->running--;
}

static void
sts_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sts *s = w->data;
	struct sts_dom *d, *last = s->kick_last;
	int end;

	(void)loop;
	(void)revents;
	sts_enter(s);
	/* Only what was kicked before we started; later kicks re-arm. */
	while ((d = s->kick_first) != NULL && !s->doomed) {
		s->kick_first = d->knext;
		if (s->kick_first == NULL)
			s->kick_last = NULL;
		d->kicked = 0;
		end = d == last;
		sts_run(d);
		if (end)
			break;
	}
	sts_leave(s);
}

/* The wait ran out (or a lookup without a domain is due). */
static void
sts_query_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sts_query *q = w->data;
	struct sts *s = q->s;
	struct sts_dom *d = q->d;
	struct sts_qlist batch = { NULL, NULL };
	struct sts_decision dec;
	struct sts_facts f;
	struct sts_answer a;
	char waited[32];

	(void)loop;
	(void)revents;
	sts_enter(s);
	if (d == NULL) {
		memset(&a, 0, sizeof(a));
		a.source = sts_source_name(q->fixed_source, 0);
		sts_ql_del(q);
		sts_ql_add(&batch, q);
		sts_deliver(s, &batch, &a);
		sts_leave(s);
		return;
	}
	/*
	 * The domain is due to run (a zero wait): let it answer first, and
	 * come back in the next loop iteration if it has not.
	 */
	if (d->kicked) {
		ev_timer_set(&q->timer, 0., 0.);
		ev_timer_start(s->loop, &q->timer);
		sts_leave(s);
		return;
	}
	if (!s->doomed) {
		sts_facts(d, &f);
		sts_decide_pending(&f, clock_now(), d->fetching, &dec);
		sts_make_answer(d, &dec, &a);
		snprintf(waited, sizeof(waited), "%.3g", s->wait);
		log_info(0, "mta-sts", "domain", d->name, "result", a.source,
		    "waited", waited, "mode", a.policy != NULL ?
		    mtasts_mode_name(a.policy->mode) : "none", NULL);
		sts_ql_del(q);
		d->nwaiters--;
		q->d = NULL;
		sts_ql_add(&batch, q);
		d->running++; /* a.policy points into d */
		sts_deliver(s, &batch, &a);
		d->running--; /* s is freed only in sts_leave() */
	}
	sts_leave(s);
}

static struct sts_query *
sts_query_new(struct sts *s, sts_cb *cb, void *arg, double after)
{
	struct sts_query *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->s = s;
	q->cb = cb;
	q->arg = arg;
	ev_timer_init(&q->timer, sts_query_timer_cb, after, 0.);
	q->timer.data = q;
	ev_timer_start(s->loop, &q->timer);
	return q;
}

struct sts_query *
sts_lookup(struct sts *s, const char *domain, sts_cb *cb, void *arg)
{
	char name[STS_DOMAIN_MAX + 2];
	struct sts_query *q;
	struct sts_dom *d = NULL;
	size_t i;
	int full = 0;

	for (i = 0; domain[i] != '\0' && i < sizeof(name) - 1; i++)
		name[i] = (char)tolower((unsigned char)domain[i]);
	name[i] = '\0';
	if (domain[i] != '\0')
		name[0] = '\0'; /* too long: not a domain */
	if (sts_domain_ok(name) && (d = sts_dom_get(s, name, &full)) == NULL &&
	    !full)
		return NULL; /* out of memory */
	if (d == NULL) {
		if ((q = sts_query_new(s, cb, arg, 0.)) == NULL)
			return NULL;
		q->fixed_source = full ? STS_SRC_FULL : STS_SRC_BAD_DOMAIN;
		sts_ql_add(&s->fixed, q);
		if (full)
			log_warn(0, "mta-sts", "domain", name, "result",
			    "cache-full", NULL);
		return q;
	}
	if ((q = sts_query_new(s, cb, arg, s->wait)) == NULL)
		return NULL;
	q->d = d;
	d->last_used = clock_now();
	sts_ql_add(&d->waiters, q);
	d->nwaiters++;
	sts_kick(d);
	return q;
}

void
sts_cancel(struct sts_query *q)
{
	if (q != NULL)
		sts_query_free(q);
}

void
sts_refresh(struct sts *s, const char *domain)
{
	char name[STS_DOMAIN_MAX + 2];
	struct sts_dom *d;
	size_t i;
	int full;

	if (s == NULL || s->doomed)
		return;
	for (i = 0; domain[i] != '\0' && i < sizeof(name) - 1; i++)
		name[i] = (char)tolower((unsigned char)domain[i]);
	name[i] = '\0';
	if (domain[i] != '\0' || !sts_domain_ok(name) ||
	    (d = sts_dom_get(s, name, &full)) == NULL)
		return;
	log_info(0, "mta-sts", "domain", name, "result", "refresh-requested",
	    NULL);
	d->force_txt = 1;
	d->force_fetch = 1;
	d->last_used = clock_now();
	sts_kick(d);
}

/* ------------------------------------------------------------------ */
/* Loading the disk cache                                              */
/* ------------------------------------------------------------------ */

/* A cached policy found at start. */
struct sts_found {
	struct sts_record rec;
	size_t len;	/* of its record text */
	char *file;	/* a cache file of mxtls before the journal, or NULL */
	char *text;	/* that file's text, for the journal */
};

struct sts_loading {
	struct sts *s;
	struct sts_found **v;
	size_t n, cap;
	int expired, removed;
	time_t now;
};

static void
sts_found_free(struct sts_found *f)
{
	sts_record_free(&f->rec);
	free(f->file);
	free(f->text);
	free(f);
}

static void
sts_remove_file(const char *path, const char *result, const char *why)
{
	log_warn(0, "mta-sts", "result", result, "file", path, "error", why,
	    NULL);
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn(0, "mta-sts", "result", "cache-remove-failed", "file",
		    path, "error", strerror(errno), NULL);
}

/*
 * Judge a record of the journal (file NULL) or of a cache file: 1, kept
 * in ld; -1, corrupt or expired (a file then removed); 0, out of memory
 * (left alone, not lost).
 */
static int
sts_found(struct sts_loading *ld, const char *domain, const char *text,
    size_t len, const char *file)
{
	struct sts_found *f, **nv;
	char why[512];

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return 0;
	if (!sts_domain_ok(domain))
		snprintf(why, sizeof(why), "not a domain name");
	else if (sts_record_parse(text, len, &f->rec, why, sizeof(why)) ==
	    0 && strcmp(f->rec.domain, domain) != 0) {
		snprintf(why, sizeof(why), "holds the policy of %s",
		    f->rec.domain);
		sts_record_free(&f->rec);
		f->rec.domain[0] = '\0';
	}
	if (f->rec.domain[0] == '\0') {
		if (file != NULL)
			sts_remove_file(file, "cache-file-removed", why);
		else
			log_warn(0, "mta-sts", "domain", domain, "result",
			    "cache-record-removed", "error", why, NULL);
		ld->removed++;
		free(f);
		return -1;
	}
	if (ld->now >= sts_valid_until(f->rec.fetched_at, f->rec.expires)) {
		ld->expired++;
		sts_found_free(f);
		if (file != NULL && unlink(file) == -1 && errno != ENOENT)
			log_warn(0, "mta-sts", "result", "cache-remove-failed",
			    "file", file, "error", strerror(errno), NULL);
		return -1;
	}
	f->len = len;
	if (ld->n == ld->cap) {
		ld->cap = ld->cap ? ld->cap * 2 : 64;
		if ((nv = realloc(ld->v, ld->cap * sizeof(*nv))) == NULL) {
			ld->cap = ld->n;
			sts_found_free(f);
			return 0;
		}
		ld->v = nv;
	}
	ld->v[ld->n++] = f;
	return 1;
}

static int
sts_load_record(void *arg, const char *key, const char *text, size_t len)
{
	struct sts *s = arg;

	return sts_found(s->loading, key, text, len, NULL) < 0 ? -1 : 0;
}

/*
 * Cache files of mxtls before the journal (one per domain, DOMAIN.sts):
 * read into ld once, removed once the journal has them (sts_load()).
 * Corrupt and expired ones, and temporary files of writes that never
 * completed, are removed at once.
 */
static void
sts_load_files(struct sts_loading *ld)
{
	size_t nl, sl = strlen(STS_CACHE_SUFFIX), len;
	struct sts_found *f;
	char path[PATH_MAX], why[512], name[STS_DOMAIN_MAX + 1], *text;
	struct dirent *de;
	DIR *dir;

	if ((dir = opendir(ld->s->dir)) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		nl = strlen(de->d_name);
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", ld->s->dir, de->d_name);
		if (nl > sl + 4 &&
		    strcmp(de->d_name + nl - 4, ".tmp") == 0 &&
		    strncmp(de->d_name + nl - 4 - sl, STS_CACHE_SUFFIX, sl) ==
		    0) {
			unlink(path);
			continue;
		}
		if (nl <= sl || strcmp(de->d_name + nl - sl,
		    STS_CACHE_SUFFIX) != 0)
			continue; /* not ours */
		snprintf(name, sizeof(name), "%.*s", (int)(nl - sl),
		    de->d_name);
		if ((text = file_read(path, STS_CACHE_FILE_MAX, &len, why,
		    sizeof(why))) == NULL) {
			sts_remove_file(path, "cache-file-removed", why);
			ld->removed++;
			continue;
		}
		if (nl - sl > STS_DOMAIN_MAX)
			name[0] = '\0'; /* cut short: not the domain */
		if (sts_found(ld, name, text, len, path) <= 0) {
			free(text);
			continue;
		}
		f = ld->v[ld->n - 1];
		f->text = text;
		if ((f->file = strdup(path)) == NULL) {
			sts_found_free(f);
			ld->n--;
		}
	}
	closedir(dir);
}

/* The order in which found policies are kept: the reverse of eviction. */
static int
sts_cmp_keep(const void *a, const void *b)
{
	const struct sts_found *x = *(const struct sts_found *const *)a;
	const struct sts_found *y = *(const struct sts_found *const *)b;
	struct sts_evict_facts fx = { 1, x->rec.policy.mode,
		x->rec.fetched_at };
	struct sts_evict_facts fy = { 1, y->rec.policy.mode,
		y->rec.fetched_at };

	if (sts_evict_first(&fy, &fx))
		return -1;
	if (sts_evict_first(&fx, &fy))
		return 1;
	return strcmp(x->rec.domain, y->rec.domain);
}

static void
sts_journal_error(void *arg, const char *error)
{
	(void)arg;
	log_warn(0, "mta-sts", "result", "cache-write-failed", "error", error,
	    NULL);
}

static int
sts_load(struct sts *s, char *err, size_t errlen)
{
	struct sts_loading ld;
	struct journal_loaded info;
	struct sts_found *f;
	struct sts_dom *d;
	char path[PATH_MAX], why[512], n[4][16], torn[24];
	size_t i, cost, queue;
	int full, imported = 0, evicted = 0;

	memset(&ld, 0, sizeof(ld));
	ld.s = s;
	ld.now = clock_now();
	s->loading = &ld;
	snprintf(path, sizeof(path), "%s/" STS_JOURNAL, s->dir);
	/* What may wait for a slow disk: a quarter of the cache. */
	queue = s->max_bytes / 4 > 4 * STS_CACHE_FILE_MAX ? s->max_bytes / 4 :
	    4 * STS_CACHE_FILE_MAX;
	if ((s->journal = journal_open(s->loop, path, STS_JOURNAL_NAME, queue,
	    sts_load_record, sts_journal_error, s, &info, err, errlen)) ==
	    NULL) {
		for (i = 0; i < ld.n; i++)
			sts_found_free(ld.v[i]);
		free(ld.v);
		return -1;
	}
	s->loading = NULL;
	if (info.torn > 0) {
		snprintf(torn, sizeof(torn), "%zu", info.torn);
		log_warn(0, "mta-sts", "result", "cache-journal-torn", "file",
		    path, "ignored_bytes", torn, "error", info.why, NULL);
	}
	sts_load_files(&ld);
	/* Within the bounds, the policies that matter most stay. */
	if (ld.n > 0)
		qsort(ld.v, ld.n, sizeof(*ld.v), sts_cmp_keep);
	for (i = 0; i < ld.n; i++) {
		f = ld.v[i];
		cost = sts_cost(0, 1, f->len, f->rec.policy.nmx);
		if (sts_find(s, f->rec.domain) != NULL) {
			/* A file of a domain the journal has: its older copy. */
			if (f->file != NULL)
				unlink(f->file);
			continue;
		}
		if (s->n >= STS_MAX_DOMAINS || s->bytes + cost > s->max_bytes ||
		    (d = sts_dom_get(s, f->rec.domain, &full)) == NULL) {
			evicted++;
			log_info(0, "mta-sts", "domain", f->rec.domain,
			    "result", "evicted", "id", f->rec.id, "mode",
			    mtasts_mode_name(f->rec.policy.mode), "reason",
			    "more than the cache holds", NULL);
			snprintf(why, sizeof(why), "mode=\"%s\"",
			    mtasts_mode_name(f->rec.policy.mode));
			metrics_inc("mxtls_mta_sts_evictions_total", why, 1);
			if (f->file != NULL)
				unlink(f->file);
			else if (journal_del(s->journal, f->rec.domain, why,
			    sizeof(why)) < 0)
				log_warn(0, "mta-sts", "domain", f->rec.domain,
				    "result", "cache-remove-failed", "error",
				    why, NULL);
			continue;
		}
		d->rec = f->rec;
		memset(&f->rec.policy, 0, sizeof(f->rec.policy));
		d->cached = 1;
		d->rec_len = f->len;
		d->last_used = d->rec.fetched_at;
		s->ncached++;
		sts_account(d);
		if (f->file != NULL) {
			if (journal_put(s->journal, d->name, f->text, f->len, why,
			    sizeof(why)) < 0) {
				log_warn(0, "mta-sts", "domain", d->name,
				    "result", "cache-write-failed", "error",
				    why, NULL);
				free(f->file); /* kept for the next start */
				f->file = NULL;
			}
			imported++;
		}
	}
	/* The files go once the journal has them on disk. */
	if (imported > 0)
		journal_flush(s->journal);
	for (i = 0; i < ld.n; i++) {
		if (imported > 0 && ld.v[i]->file != NULL)
			unlink(ld.v[i]->file);
		sts_found_free(ld.v[i]);
	}
	free(ld.v);
	snprintf(n[0], sizeof(n[0]), "%d", s->ncached);
	snprintf(n[1], sizeof(n[1]), "%d", ld.expired);
	snprintf(n[2], sizeof(n[2]), "%d", ld.removed);
	snprintf(n[3], sizeof(n[3]), "%d", evicted);
	snprintf(torn, sizeof(torn), "%zu", s->bytes);
	log_info(0, "mta-sts", "result", "cache-loaded", "dir", s->dir,
	    "policies", n[0], "expired", n[1], "removed", n[2], "evicted",
	    n[3], "bytes", torn, NULL);
	return 0;
}

struct sts *
sts_new(struct ev_loop *loop, struct dns *dns, struct fetcher *fetcher,
    const char *cache_dir, const char *ca_bundle, double wait,
    size_t max_bytes, char *err, size_t errlen)
{
	struct sts *s;
	struct stat st;
	char cwd[PATH_MAX];

	if (loop == NULL || cache_dir == NULL || cache_dir[0] == '\0' ||
	    !(wait >= 0)) {
		snprintf(err, errlen, "invalid arguments");
		return NULL;
	}
	if (mkdir(cache_dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", cache_dir, strerror(errno));
		return NULL;
	}
	if (stat(cache_dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", cache_dir);
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->buckets = calloc(STS_BUCKETS, sizeof(*s->buckets))) == NULL ||
	    (s->dir = strdup(cache_dir)) == NULL)
		goto nomem;
	if (ca_bundle != NULL) {
		if (ca_bundle[0] == '/')
			s->ca_bundle = strdup(ca_bundle);
		else if (getcwd(cwd, sizeof(cwd)) != NULL &&
		    (s->ca_bundle = malloc(strlen(cwd) + strlen(ca_bundle) +
		    2)) != NULL)
			sprintf(s->ca_bundle, "%s/%s", cwd, ca_bundle);
		if (s->ca_bundle == NULL)
			goto nomem;
	}
	s->loop = loop;
	s->dns = dns;
	s->fetcher = fetcher;
	s->wait = wait;
	s->max_bytes = max_bytes;
	ev_timer_init(&s->kick, sts_kick_cb, 0., 0.);
	s->kick.data = s;
	if (sts_load(s, err, errlen) < 0) {
		sts_destroy(s);
		return NULL;
	}
	return s;
nomem:
	snprintf(err, errlen, "out of memory");
	if (s != NULL) {
		free(s->buckets);
		free(s->dir);
		free(s);
	}
	return NULL;
}

void
sts_flush(struct sts *s)
{
	journal_flush(s->journal);
}

int
sts_cache_read(const char *cache_dir, const char *domain,
    struct sts_record *out, char *err, size_t errlen)
{
	char path[PATH_MAX], *text;
	size_t len;
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/" STS_JOURNAL, cache_dir);
	if ((r = journal_get(path, STS_JOURNAL_NAME, domain, &text, &len, err,
	    errlen)) <= 0)
		return r;
	r = sts_record_parse(text, len, out, err, errlen) < 0 ? -1 : 1;
	free(text);
	return r;
}

/* Stop everything: no callback of ours or of the user runs after this. */
static void
sts_stop_all(struct sts *s)
{
	struct sts_dom *d;
	struct sts_query *q;
	size_t i;

	ev_timer_stop(s->loop, &s->kick);
	for (i = 0; i < STS_BUCKETS; i++)
		for (d = s->buckets[i]; d != NULL; d = d->hnext) {
			if (d->txt_q != NULL)
				dns_cancel(d->txt_q);
			if (d->addr_q != NULL)
				dns_cancel(d->addr_q);
			if (d->fetch_c != NULL)
				fetcher_cancel(d->fetch_c);
			d->txt_q = d->addr_q = NULL;
			d->fetch_c = NULL;
			while ((q = d->waiters.first) != NULL)
				sts_query_free(q);
		}
	while ((q = s->fixed.first) != NULL)
		sts_query_free(q);
	/* What is queued is written first; the lock goes with it. */
	journal_close(s->journal);
	s->journal = NULL;
}

static void
sts_destroy(struct sts *s)
{
	struct sts_dom *d;
	size_t i;

	sts_stop_all(s);
	for (i = 0; i < STS_BUCKETS; i++)
		while ((d = s->buckets[i]) != NULL) {
			s->buckets[i] = d->hnext;
			sts_dom_free(d);
		}
	free(s->buckets);
	free(s->dir);
	free(s->ca_bundle);
	free(s);
}

void
sts_free(struct sts *s)
{
	if (s == NULL || s->doomed)
		return;
	if (s->depth > 0) {
		/* In one of our callbacks: stop now, free on the way out. */
		s->doomed = 1;
		sts_stop_all(s);
		return;
	}
	sts_destroy(s);
}
