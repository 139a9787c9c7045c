/*
 * The MTA-STS policy cache of mxtls (RFC 8461 sections 3.3, 4, 5;
 * docs/behaviour.md section 6): per recipient domain, the "_mta-sts" TXT id, the policy
 * fetched from https://mta-sts.DOMAIN/.well-known/mta-sts.txt through
 * mxtls-fetch, and a cache of those policies in memory and on disk.
 *
 * What a lookup gets (sts_decide() in policy/stsdecide.h is the whole
 * rule book, a pure function):
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
 * key is the domain and whose value is the record text of
 * sts_record_format() (policy/stsdecide.h); written by
 * the journal's own thread, never on the event loop: an fsync there
 * would stall every session for as long as the disk takes, and a burst
 * of fetches (a queue flushed after an outage) would add those up.  Read
 * at sts_new(); corrupt or expired records are dropped then, and a torn
 * end (a crash while writing) is ignored, older records kept.  Cache
 * files of mxtls before the journal (DOMAIN.sts) are read into it once
 * and removed.
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
#include "stsdecide.h"

struct ev_loop;
struct dns;
struct fetcher;
struct sts;
struct sts_query;

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

/*
 * The limits of the cache and its fetches (the decisions, the record and
 * their limits: policy/stsdecide.h).
 */
#define STS_MAX_DOMAINS 10000 /* domains known, in memory and on disk */
#define STS_CACHE_SUFFIX ".sts" /* the files before the journal */
#define STS_JOURNAL "journal"
#define STS_JOURNAL_NAME "mta-sts"
/* The fetch (RFC 8461 section 3.3 suggests a minute at most). */
#define STS_FETCH_MAX_BYTES 65536
#define STS_FETCH_CONNECT_MS 10000
#define STS_FETCH_TIMEOUT_MS 30000

/*
 * What a domain costs against max_bytes: its struct, its error texts and
 * (with a cached policy of nmx patterns whose record text is rec_len
 * bytes) that text and a pointer per pattern.  That covers the memory
 * the policy takes (each pattern's copy is shorter than its "mx " line)
 * and its record in the journal (whose header is shorter than the
 * struct).
 */
size_t sts_cost(size_t errors_len, int cached, size_t rec_len, int nmx);

#endif
