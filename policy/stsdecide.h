/*
 * The pure half of the MTA-STS policy cache (RFC 8461; docs/behaviour.md
 * section 6).  proxy/sts.h is the cache itself (DNS, fetches through
 * mxtls-fetch, the journal, timers); here is what it decides with: the
 * next step for a domain from what is known about it and the time
 * (sts_decide(), the whole rule book), the answer when a wait runs out,
 * which idle domain is forgotten first, what a fetcher response means,
 * and the text a cached policy is kept as.  No I/O and no clock: times
 * come in as arguments.
 *
 * The cache record (sts_record_format(); proxy/sts.c keeps one per domain
 * in its journal), one "key value" a line, LF line ends, in this order:
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
 */
#ifndef MXTLS_STSDECIDE_H
#define MXTLS_STSDECIDE_H

#include <stddef.h>
#include <time.h>

#include "fetchproto.h"
#include "mtasts.h"

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
#define STS_DOMAIN_MAX 244    /* "_mta-sts." + domain fits in 253 */
#define STS_ERROR_MAX 512
#define STS_CACHE_FILE_MAX (128 * 1024)
#define STS_CACHE_MAGIC "mxtls-mta-sts-cache 1"
#define STS_TIME_MAX ((time_t)253402300799) /* 9999-12-31T23:59:59Z */

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
