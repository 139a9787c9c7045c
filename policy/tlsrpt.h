/*
 * SMTP TLS Reporting (RFC 8460), the pure half: the "_smtp._tls" TXT
 * record (section 3), the counts of each UTC day per recipient domain,
 * policy and failure (bounded), the journal text of one count, and the
 * report JSON (section 4).  No I/O, no logging, no clock: proxy/tlsrpt.c
 * does those.
 *
 * What is counted.  One entry is (day, policy domain, policy type,
 * policy-string, mx-host patterns, result) and, for a failure, the
 * sending and receiving addresses and the receiving MX host name; its
 * count is the number of sessions.  Successes of one policy share one
 * entry (the report has only their total).  A day takes at most
 * max_entries distinct entries and max_bytes of their text; an attempt
 * that would need one more is counted in the day's overflow instead,
 * so a hostile peer (many names, many addresses) cannot grow memory.
 */
#ifndef MXTLS_TLSRPT_H
#define MXTLS_TLSRPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "dane.h"

#define TLSRPT_RUA_MAX 8	   /* report URIs kept from a record */
#define TLSRPT_URI_MAX 512	   /* bytes of one */
#define TLSRPT_FIELD_MAX 255	   /* a domain, host name, address, result */
#define TLSRPT_POLICY_MAX 16384	   /* bytes of a policy's lines */
#define TLSRPT_ENTRIES_MAX 10000   /* distinct entries per day */
#define TLSRPT_DAY_BYTES_MAX (16L << 20)
#define TLSRPT_DAYS_MAX 8	   /* days held at once */

/* ---- the TXT record ---- */

enum tlsrpt_txt_status {
	TLSRPT_TXT_OK,	    /* one valid record with a usable rua */
	TLSRPT_TXT_NONE,    /* no record starting "v=TLSRPTv1": no reports */
	TLSRPT_TXT_INVALID, /* several such records, or a malformed one */
};

struct tlsrpt_txt {
	/* "mailto:..." and "https://..." URIs, in the record's order. */
	char rua[TLSRPT_RUA_MAX][TLSRPT_URI_MAX + 1];
	int nrua;
	int nskipped; /* URIs of other schemes, or beyond TLSRPT_RUA_MAX */
};

/*
 * The TXT records at "_smtp._tls.DOMAIN" (n records, each record's
 * strings joined).  Records not starting with "v=TLSRPTv1" are
 * discarded; exactly one must remain (RFC 8460 section 3).  It is
 * "v=TLSRPTv1", then ";"-separated fields (white space around the ";"
 * allowed, a final ";" too): exactly one "rua=" with a ","-separated list
 * of URIs, and extensions "name=value" that are ignored.  Only mailto:
 * (with an "@") and https:// (with a host) URIs are kept; a rua with
 * none of them is invalid.  err says why on NONE and INVALID.
 */
enum tlsrpt_txt_status tlsrpt_parse_txt(const char *const *recs,
    const size_t *lens, int n, struct tlsrpt_txt *out, char *err,
    size_t errlen);

/* ---- policies ---- */

enum tlsrpt_policy_type {
	TLSRPT_POLICY_STS,  /* "sts" */
	TLSRPT_POLICY_TLSA, /* "tlsa" */
	TLSRPT_POLICY_NONE, /* "no-policy-found" */
};
const char *tlsrpt_policy_type_name(enum tlsrpt_policy_type t);

/*
 * The policy-string of an MTA-STS policy (RFC 8460 section 4.3: the
 * policy's lines): "version: STSv1", "mode: MODE", one "mx: PATTERN" a
 * pattern, "max_age: N" (unless max_age < 0: not known), each line
 * ending in LF, into dst.  Lines that
 * do not fit (dst shorter than TLSRPT_POLICY_MAX + 1) are left out.
 */
void tlsrpt_policy_sts(char *dst, size_t len, const char *mode,
    long max_age, const char *const *mx, int nmx);

/* The TLSA records in presentation form ("3 1 1 ab12..."), a line each. */
void tlsrpt_policy_tlsa(char *dst, size_t len, const struct dane_tlsa_set *s);

/* ---- counting ---- */

/* What one attempt is counted under. */
struct tlsrpt_key {
	const char *domain;	  /* the policy (recipient) domain */
	enum tlsrpt_policy_type type;
	const char *policy;	  /* policy-string lines, each ending in LF */
	const char *mx;		  /* mx-host patterns, each ending in LF */
	const char *result;	  /* NULL: success; else the result type */
	/* Failures only ("" when unknown); ignored for a success. */
	const char *sending_ip;
	const char *mx_host;
	const char *receiving_ip;
};

struct tlsrpt_entry {
	struct tlsrpt_entry *next;  /* in its hash bucket */
	struct tlsrpt_entry *dnext; /* in its day, newest first */
	long day;		    /* days since 1970-01-01 (UTC) */
	uint64_t hash;
	unsigned long count;
	int dirty;		    /* not written to the journal yet */
	size_t cost;
	enum tlsrpt_policy_type type;
	char *domain, *policy, *mx, *result; /* result NULL: success */
	char *sending_ip, *mx_host, *receiving_ip;
};

struct tlsrpt_day {
	long day;
	size_t nentries, bytes;
	unsigned long overflow; /* attempts that found no room */
	int overflow_dirty;
	struct tlsrpt_entry *first;
};

struct tlsrpt_store {
	struct tlsrpt_day days[TLSRPT_DAYS_MAX];
	int ndays;
	struct tlsrpt_entry **b;
	size_t nb;
	size_t max_entries, max_bytes; /* per day */
};

/* NULL when out of memory. */
struct tlsrpt_store *tlsrpt_store_new(size_t max_entries, size_t max_bytes);
void tlsrpt_store_free(struct tlsrpt_store *s);

/*
 * Count n attempts of day under k.  0: counted, *e (may be NULL) the
 * entry, now dirty; 1: no room (the day is full, or TLSRPT_DAYS_MAX
 * other days are held): counted in the day's overflow when the day is
 * held; -1: k is not valid (a field empty where it must not be, too
 * long, or with bytes outside printable ASCII) or out of memory.
 */
int tlsrpt_store_add(struct tlsrpt_store *s, long day,
    const struct tlsrpt_key *k, unsigned long n, struct tlsrpt_entry **e);

/* The day, or NULL when nothing of it is held. */
struct tlsrpt_day *tlsrpt_store_day(struct tlsrpt_store *s, long day);

/* Forget a day and its entries. */
void tlsrpt_store_drop(struct tlsrpt_store *s, long day);

/*
 * The policy domains with entries on day, sorted, in a new array of
 * pointers into the store (free() the array only): their count, or -1
 * when out of memory.
 */
int tlsrpt_store_domains(struct tlsrpt_store *s, long day,
    const char ***out);

/*
 * The complete days whose reports are due, oldest first, into days (at
 * most max): held with entries, before today (a day is reported only
 * once it is over), not older than today - keep, and yesterday only with
 * with_yesterday (its moment may not have come).  Their number.
 */
int tlsrpt_store_report_days(const struct tlsrpt_store *s, long today,
    long keep, int with_yesterday, long *days, int max);

/* ---- the journal's records ---- */

#define TLSRPT_KEY_LEN 40

/*
 * The journal key of an entry, "e-YYYY-MM-DD-HASH" (16 hex digits), or
 * of a day's overflow count, "o-YYYY-MM-DD".
 */
void tlsrpt_entry_key(const struct tlsrpt_entry *e, char *dst, size_t len);
void tlsrpt_overflow_key(long day, char *dst, size_t len);

/*
 * The record text of an entry (malloc'd, *len bytes, NUL-terminated), or
 * NULL when out of memory:
 *
 *	mxtls-tlsrpt 1
 *	day 2024-05-01
 *	domain example.com
 *	type sts
 *	result success			(or the result type)
 *	sending-ip 192.0.2.1		(empty for a success or when unknown)
 *	mx-host mx1.example.com
 *	receiving-ip 192.0.2.25
 *	count 17
 *	policy version: STSv1		(a line each; none, or several)
 *	mx *.example.com		(a line each; none, or several)
 *
 * The overflow record is "mxtls-tlsrpt-overflow 1", "day ...", "count N".
 */
char *tlsrpt_entry_format(const struct tlsrpt_entry *e, size_t *len);
char *tlsrpt_overflow_format(const struct tlsrpt_day *d, size_t *len);

/*
 * Put a record read from the journal into the store (its count replaces
 * any the store has for it; the entry is not dirty).  Strict: the lines
 * above in that order, LF line ends, the key matching the content.
 * 0, or -1 with err (then it is not used); 1: no room (overflowed).
 */
int tlsrpt_record_load(struct tlsrpt_store *s, const char *key,
    const char *value, size_t len, char *err, size_t errlen);

/*
 * The record of a report sent (or delivered to an MTA): key
 * "s-YYYY-MM-DD-HASH", HASH of day, domain and rua, text
 *
 *	mxtls-tlsrpt-sent 1
 *	day 2024-05-01
 *	domain example.com
 *	rua https://r.example.com/v1
 *
 * so that a restart does not send it again.  tlsrpt_sent_load checks it
 * strictly (the key matching the content): 0 with *day and *hash, or -1
 * with err.
 */
uint64_t tlsrpt_sent_hash(long day, const char *domain, const char *rua);
void tlsrpt_sent_key(long day, const char *domain, const char *rua,
    char *dst, size_t len);
char *tlsrpt_sent_format(long day, const char *domain, const char *rua,
    size_t *len);
int tlsrpt_sent_load(const char *key, const char *value, size_t len,
    long *day, uint64_t *hash, char *err, size_t errlen);

/* ---- days ---- */

long tlsrpt_day_of(time_t t);
/* "YYYY-MM-DD": 0 and *day, or -1. */
int tlsrpt_day_parse(const char *s, long *day);
/* "YYYY-MM-DD" into dst (11 bytes at least). */
void tlsrpt_day_text(long day, char *dst, size_t len);

/* ---- the report ---- */

struct tlsrpt_report_info {
	const char *organization; /* organization-name */
	const char *contact;	  /* contact-info */
	const char *submitter;	  /* the report-id ends in "@SUBMITTER" */
};

/*
 * The report of domain's entries on day (RFC 8460 section 4.4), as one
 * line of JSON without white space, in a new buffer (*len bytes,
 * NUL-terminated).  Policies in a fixed order (type, policy-string, mx
 * patterns), failure details too (result, host, addresses), so the same
 * counts make the same text.  report-id is
 * "YYYY-MM-DDT00:00:00Z+DOMAIN@SUBMITTER": one report per domain and
 * day.  NULL when out of memory or when the day has no entry of domain.
 */
char *tlsrpt_report_json(struct tlsrpt_store *s, long day,
    const char *domain, const struct tlsrpt_report_info *ri, size_t *len);

/* Write s as a JSON string (quotes, escapes; bytes not UTF-8 as U+FFFD). */
void tlsrpt_json_string(FILE *f, const char *s);

#endif
