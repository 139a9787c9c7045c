/*
 * The MTA-STS policy cache of mxtls (RFC 8461 sections 3.3, 4, 5;
 * docs/behaviour.md section 6): per recipient domain, the "_mta-sts" TXT id, the policy
 * fetched from https://mta-sts.DOMAIN/.well-known/mta-sts.txt through
 * mxtls-fetch, and a cache of those policies in memory and on disk.
 *
 * What a lookup gets (sts_decide() below is the whole rule book, a pure
 * function):
 *   - TXT record with the id of the cached, unexpired policy: that policy,
 *     no fetch ("cache");
 *   - TXT record with a new or changed id, or no usable cached policy:
 *     resolve mta-sts.DOMAIN and fetch ("fetched"); a fetch failure or an
 *     invalid policy keeps a still-valid cached policy
 *     ("fetch-failed-cache-valid"), else no policy ("fetch-failed"), and
 *     the answer carries the TLS-RPT style error;
 *   - no TXT record (or an invalid one, or a DNS failure): a valid cached
 *     policy still applies ("txt-missing-cache-valid", ...), else none;
 *   - mode none: no policy (but remembered in the cache);
 *   - the first lookup of a domain waits for the TXT query and the fetch
 *     at most `wait` seconds, then gets what is known ("txt-pending",
 *     "fetch-pending": a valid cached policy or none); the work goes on
 *     and fills the cache for later lookups.
 * Rate limits: the TXT record of a domain is checked at most once per
 * STS_TXT_INTERVAL seconds (unless sts_refresh() asks); after a failed
 * fetch the domain is not fetched again for STS_FETCH_RETRY seconds.
 * Several lookups of one domain share one TXT query and one fetch.  A
 * cached policy older than half its max_age (at most a day, at least
 * STS_REFRESH_MIN) is re-fetched in the background on its next use.
 * A policy counts as expired max_age seconds after its fetch, but never
 * before STS_MIN_LIFETIME (60 s): the answers to the lookups that waited
 * for a fetch always carry its policy, and a max_age of 0 or 1 cannot
 * turn every lookup into a fetch.
 *
 * Times (expiry, rate limits) come from clock_now(), the test clock;
 * only the waits are libev timers.
 *
 * The disk cache: one journal, CACHE_DIR/journal (proxy/journal.h), whose
 * key is the domain and whose value is the record text below; written by
 * the journal's own thread, never on the event loop: an fsync there
 * would stall every session for as long as the disk takes, and a burst
 * of fetches (a queue flushed after an outage) would add those up.  Read
 * at sts_new(); corrupt or expired records are dropped then, and a torn
 * end (a crash while writing) is ignored, older records kept.  Cache
 * files of mxtls before the journal (DOMAIN.sts) are read into it once
 * and removed.  The record (sts_record_format()), one "key value" a
 * line, LF line ends, in this order:
 *
 *	mxtls-mta-sts-cache 1
 *	domain example.com
 *	id 20180907T090909
 *	fetched-at 1700000000
 *	expires 1700086400
 *	mode enforce
 *	max_age 86400
 *	mx mail.example.com
 *	mx *.example.net
 *
 * times in seconds since the epoch, expires = fetched-at + max_age, mx
 * lines (zero or more; at least one unless mode is none) as the policy
 * parser normalised them.
 *
 * Bounds: at most STS_MAX_DOMAINS domains and max_bytes bytes
 * (sts_cost(): a domain's memory, which covers its record on disk; the
 * journal stays below twice what it holds).  Room for a new domain or a
 * new policy is made by forgetting idle domains in the order of
 * sts_evict_first(): those without a policy, then policies of mode
 * none, testing and last enforce, each the least recently used first.
 * A domain with work in flight or lookups waiting is never forgotten.
 *
 * Logs: event "mta-sts" (domain, result, ...); every fetch logs url,
 * status, bytes, duration and outcome.  Metrics:
 * mxtls_policy_fetches_total{source="mta-sts",outcome=ok|failed|invalid},
 * mxtls_mta_sts_evictions_total{mode=no-policy|none|testing|enforce},
 * mxtls_mta_sts_cache_bytes.
 */
#ifndef MXTLS_STS_H
#define MXTLS_STS_H

#include <stddef.h>
#include <time.h>

#include "fetchproto.h"
#include "mtasts.h"

struct ev_loop;
struct dns;
struct fetcher;
struct sts;
struct sts_query;
struct sts_record;

/* What the session gets: the policy to apply (NULL: none known), and why. */
struct sts_answer {
	/*
	 * Valid only during the callback; NULL when the domain has no
	 * (usable) policy, including a policy of mode none.
	 */
	const struct mtasts_policy *policy;
	/*
	 * For logs: "cache", "fetched", "cache-mode-none",
	 * "fetched-mode-none", "none", "txt-invalid", "txt-tempfail",
	 * "txt-missing-cache-valid", "txt-invalid-cache-valid",
	 * "txt-tempfail-cache-valid", "fetch-failed",
	 * "fetch-failed-cache-valid", "txt-pending", "fetch-pending",
	 * "not-a-domain", "cache-full".
	 */
	const char *source;
	/*
	 * NULL, or the TLS-RPT style reason of the last failure:
	 * "sts-policy-fetch-error: ...", "sts-policy-invalid: ...",
	 * "sts-webpki-invalid: ...".
	 */
	const char *error;
};

typedef void sts_cb(void *arg, const struct sts_answer *a);

/*
 * cache_dir (state_dir/mta-sts) is created 0700 when missing (its parent
 * must exist) and its journal is loaded.  ca_bundle: the CAs for
 * mta-sts.DOMAIN servers, NULL for the system store (a relative path is
 * made absolute).  wait: [policy] mta_sts_wait, seconds.  max_bytes:
 * [policy] mta_sts_cache_bytes.  dns or fetcher NULL: TXT lookups fail
 * (DNS_TEMPFAIL) or fetches fail; the cache still answers (tests).  NULL
 * with err on failure.
 */
struct sts *sts_new(struct ev_loop *loop, struct dns *dns,
    struct fetcher *fetcher, const char *cache_dir, const char *ca_bundle,
    double wait, size_t max_bytes, char *err, size_t errlen);

/*
 * No callback runs after this; queries in flight are dropped, DNS
 * queries and fetches cancelled.  May be called from an sts callback.
 * Call it before dns_free() and fetcher_free() of the dns and fetcher it
 * was given.  NULL is fine.
 */
void sts_free(struct sts *s);

/*
 * The policy for domain (a lower-case A-label; other case is folded).  The
 * callback runs exactly once, from the loop, never inside sts_lookup: as
 * soon as the cache can answer, or when the TXT query and the fetch
 * finish, or after `wait` seconds with what is known (the fetch goes on
 * and fills the cache for later).  Returns NULL only when out of memory
 * (no callback then).  The handle is invalid once the callback has run.
 */
struct sts_query *sts_lookup(struct sts *s, const char *domain, sts_cb *cb,
    void *arg);

/* The callback will not run.  Not from inside that query's own callback. */
void sts_cancel(struct sts_query *q);

/*
 * After a delivery failed under an enforce policy (RFC 8461 section 5,
 * docs/behaviour.md section 6): check the TXT record now (ignoring the
 * STS_TXT_INTERVAL limit) and fetch the policy again, even with an
 * unchanged id, unless the cached copy is younger than STS_REFRESH_MIN
 * or a fetch failed less than STS_FETCH_RETRY seconds ago.  Lookups made
 * meanwhile wait for it (at most `wait`).  In the background: no
 * callback.
 */
void sts_refresh(struct sts *s, const char *domain);

/* Wait until the journal has everything written so far (tests). */
void sts_flush(struct sts *s);

/*
 * The cached record of domain in the journal of cache_dir, as another
 * process (mxtls explain) sees it: 1 and *out (sts_record_free()), 0
 * when there is none, -1 with err.
 */
int sts_cache_read(const char *cache_dir, const char *domain,
    struct sts_record *out, char *err, size_t errlen);

/* ---------------------------------------------------------------------
 * The pure parts, exposed for the unit tests (tests/unit/test_sts.c).
 */

#define STS_TXT_INTERVAL 60   /* s: a domain's TXT record, at most once */
#define STS_FETCH_RETRY 60    /* s: no new fetch after a failed one */
#define STS_REFRESH_MIN 60    /* s: a copy this young is not re-fetched */
#define STS_REFRESH_AGE 86400 /* s: background refresh, at the latest */
/*
 * s: a fetched policy is used this long at least, whatever its max_age
 * (0 included), so that a tiny max_age cannot make mxtls fetch the same
 * policy more than once per TXT check interval.
 */
#define STS_MIN_LIFETIME STS_TXT_INTERVAL
#define STS_MAX_DOMAINS 10000 /* domains known, in memory and on disk */
#define STS_DOMAIN_MAX 244    /* "_mta-sts." + domain fits in 253 */
#define STS_ERROR_MAX 512
#define STS_CACHE_FILE_MAX (128 * 1024)
#define STS_CACHE_SUFFIX ".sts" /* the files before the journal */
#define STS_JOURNAL "journal"
#define STS_JOURNAL_NAME "mta-sts"
#define STS_CACHE_MAGIC "mxtls-mta-sts-cache 1"
#define STS_TIME_MAX ((time_t)253402300799) /* 9999-12-31T23:59:59Z */
/* The fetch (RFC 8461 section 3.3 suggests a minute at most). */
#define STS_FETCH_MAX_BYTES 65536
#define STS_FETCH_CONNECT_MS 10000
#define STS_FETCH_TIMEOUT_MS 30000

/*
 * A policy domain mxtls accepts: 1 to STS_DOMAIN_MAX bytes of lower-case
 * LDH labels (1..63 bytes, no leading or trailing '-'), no empty label,
 * no trailing dot.
 */
int sts_domain_ok(const char *domain);

/* One cached policy: what a cache file holds. */
struct sts_record {
	char domain[STS_DOMAIN_MAX + 1];
	char id[MTASTS_ID_MAX + 1];
	time_t fetched_at;
	time_t expires; /* fetched_at + policy.max_age */
	struct mtasts_policy policy; /* owned: sts_record_free() */
};

/*
 * The file text of r in a new buffer (*out, free(); *outlen bytes, also
 * NUL-terminated).  0, or -1 with err when r holds something the file
 * could not (an invalid domain, id or time, an mx with white space).
 */
int sts_record_format(const struct sts_record *r, char **out,
    size_t *outlen, char *err, size_t errlen);

/*
 * Parse a cache file (len bytes, at most STS_CACHE_FILE_MAX).  Strict:
 * the magic line first, then exactly the keys above in that order, each
 * "key value" with one space, LF line ends, a final LF; the mx patterns
 * are checked by the policy parser.  0, or -1 with err ("line N: why")
 * and *out empty.
 */
int sts_record_parse(const char *text, size_t len, struct sts_record *out,
    char *err, size_t errlen);

void sts_record_free(struct sts_record *r);

/* What eviction weighs of an idle domain. */
struct sts_evict_facts {
	int cached;	       /* a policy is cached */
	enum mtasts_mode mode; /* its mode */
	time_t last_used;      /* the last lookup (loaded: its fetch) */
};

/*
 * Is a to be forgotten before b?  A domain without a cached policy
 * first, then policies of mode none, testing, enforce: an enforce policy
 * forgotten is the protection RFC 8461 section 10 gives up (the next
 * lookup believes whatever DNS and the policy host say then), a testing
 * or none policy only costs a fetch.  Within each, the one used longest
 * ago.
 */
int sts_evict_first(const struct sts_evict_facts *a,
    const struct sts_evict_facts *b);

/*
 * What a domain costs against max_bytes: its struct, its error texts and
 * (with a cached policy of nmx patterns whose record text is rec_len
 * bytes) that text and a pointer per pattern.  That covers the memory
 * the policy takes (each pattern's copy is shorter than its "mx " line)
 * and its record in the journal (whose header is shorter than the
 * struct).
 */
size_t sts_cost(size_t errors_len, int cached, size_t rec_len, int nmx);

/* The last TXT check of a domain. */
enum sts_txt_state {
	STS_TXT_UNKNOWN,  /* never checked */
	STS_TXT_ID,	  /* one valid record: txt_id */
	STS_TXT_NONE,	  /* no record (NXDOMAIN, NODATA, none v=STSv1) */
	STS_TXT_INVALID,  /* several records, or a malformed one */
	STS_TXT_TEMPFAIL, /* the DNS query failed */
};

/* What is known about a domain, for sts_decide(). */
struct sts_facts {
	int cached; /* a policy is cached (expired or not) */
	const char *cached_id;
	time_t fetched_at, expires;
	long max_age;
	enum sts_txt_state txt;
	const char *txt_id; /* STS_TXT_ID */
	time_t txt_checked;
	int fetch_failed; /* the last fetch failed, at fetch_failed_at */
	time_t fetch_failed_at;
	int force_txt;	 /* sts_refresh: check the TXT record now */
	int force_fetch; /* sts_refresh: fetch even with the same id */
};

enum sts_step {
	STS_STEP_ANSWER, /* answer the waiting lookups now */
	STS_STEP_TXT,	 /* look up the TXT record first */
	STS_STEP_FETCH,	 /* fetch the policy first */
};

enum sts_source {
	STS_SRC_CACHE,
	STS_SRC_FETCHED,
	STS_SRC_NONE,
	STS_SRC_TXT_INVALID,
	STS_SRC_TXT_TEMPFAIL,
	STS_SRC_TXT_MISSING_CACHE,
	STS_SRC_TXT_INVALID_CACHE,
	STS_SRC_TXT_TEMPFAIL_CACHE,
	STS_SRC_FAILED,
	STS_SRC_FAILED_CACHE,
	STS_SRC_TXT_PENDING,
	STS_SRC_FETCH_PENDING,
	STS_SRC_BAD_DOMAIN,
	STS_SRC_FULL,
	STS_NSOURCES,
};

struct sts_decision {
	enum sts_step step;
	/* STS_STEP_ANSWER: */
	enum sts_source source;
	int use_cache;	  /* with the cached policy; else with none */
	int fetch_after;  /* then re-fetch in the background */
	int with_error;	  /* the last fetch error goes with the answer */
};

/* Until when a policy is usable: its expiry, or STS_MIN_LIFETIME after
 * it was fetched if that is later. */
time_t sts_valid_until(time_t fetched_at, time_t expires);

/* Is the cached policy usable at now (before sts_valid_until())? */
int sts_cache_valid(const struct sts_facts *f, time_t now);

/* The next step for a domain, from what is known about it at now. */
void sts_decide(const struct sts_facts *f, time_t now,
    struct sts_decision *d);

/*
 * The answer when the wait ran out, work (TXT query when fetching is 0,
 * else the address lookup or fetch) still running.
 */
void sts_decide_pending(const struct sts_facts *f, time_t now, int fetching,
    struct sts_decision *d);

/*
 * The answer's source text; mode_none: the policy that applies has mode
 * none ("cache" becomes "cache-mode-none", "fetched" "fetched-mode-none").
 */
const char *sts_source_name(enum sts_source src, int mode_none);

enum sts_outcome {
	STS_OUTCOME_OK,	     /* *out holds the policy */
	STS_OUTCOME_FAILED,  /* no policy fetched: err */
	STS_OUTCOME_INVALID, /* fetched, but not a valid policy: err */
};

/*
 * Judge a fetcher response: parse the body of a FETCH_OK into *out, else
 * say why in err, TLS-RPT style ("sts-webpki-invalid: ..." for TLS and
 * certificate errors, "sts-policy-invalid: ..." for a bad body,
 * "sts-policy-fetch-error: ..." for the rest, a 304 included: no
 * conditional request is ever made).
 */
enum sts_outcome sts_fetch_outcome(const struct fetch_response *rs,
    struct mtasts_policy *out, char *err, size_t errlen);

/* "ok", "failed", "invalid" (the metric's outcome label). */
const char *sts_outcome_name(enum sts_outcome o);

#endif
