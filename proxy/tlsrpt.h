/*
 * TLS reporting (RFC 8460) in mxtls: what the session counts, the counts
 * in memory and on disk, and `mxtls report --dry-run`.
 *
 * The session calls tlsrpt_count() once where an attempt at an MX host
 * ends: a delivery over TLS (success), a TLS failure, a DANE host that
 * could not be used, plaintext because STARTTLS was not offered.  The
 * module decides the rest: the policy type (tlsa where DANE applied to
 * the host, sts under an MTA-STS enforce or testing policy, else
 * no-policy-found), the policy-string, the addresses, the UTC day.
 *
 * On disk: state_dir/tlsrpt/journal (proxy/journal.h), one record per
 * entry (policy/tlsrpt.h has its text) and per day's overflow count.
 * Counting only marks entries dirty; a timer writes the dirty ones
 * every TLSRPT_FLUSH_SECONDS through the journal's writer thread, so a
 * delivery never waits for the disk and a busy entry costs one record a
 * flush, not one per session.  A crash loses at most that last second.
 * Days older than TLSRPT_KEEP_DAYS are dropped, with the records of the
 * reports sent for them (tlsrptsend.h sends them).
 *
 * Logs: event "tlsrpt" at debug level for every count; "tlsrpt-overflow"
 * (warn, once per day) when a day is full.  Metrics:
 * mxtls_tlsrpt_sessions_total{policy,result}, mxtls_tlsrpt_overflow_total.
 */
#ifndef MXTLS_PROXY_TLSRPT_H
#define MXTLS_PROXY_TLSRPT_H

#include <stdio.h>
#include <sys/socket.h>

/* proxy/ and policy/ are both on the include path: "tlsrpt.h" is this one. */
#include "../policy/tlsrpt.h"
#include "tls.h"

#define TLSRPT_FLUSH_SECONDS 1.0
#define TLSRPT_KEEP_DAYS 3 /* today and the three days before it */
#define TLSRPT_DIR "tlsrpt"
#define TLSRPT_JOURNAL "journal"
#define TLSRPT_JOURNAL_NAME "tlsrpt"
#define TLSRPT_QUEUE_MAX (4 << 20)

struct ev_loop;
struct config;
struct tlsrpt;

/* One attempt at one MX host, as the session saw it. */
struct tlsrpt_attempt {
	const char *domain;	/* the recipient domain */
	enum tls_result result; /* TLS_RESULT_OK: a session as required */
	/* The policy that applied: DANE first, then MTA-STS, else none. */
	int dane;
	const struct dane_tlsa_set *tlsa; /* DANE: the host's records */
	int sts;			  /* MTA-STS enforce or testing */
	const char *sts_mode;
	long sts_max_age;		  /* < 0: not known */
	const char *const *sts_mx;
	int sts_nmx;
	const char *mx_host; /* NULL or "" when there is none */
	const char *mx_addr; /* NULL or "" before a connection */
	int fd;		     /* the upstream socket, -1: none */
	/*
	 * The MTA's end of its connection to mxtls (address and port), NULL
	 * when not known: an attempt made for a report that mxtls itself is
	 * handing to its own listener is not counted (tlsrpt_own_add).
	 */
	const struct sockaddr *client;
};

/*
 * Load state_dir/tlsrpt/journal (the directory is made 0700), drop days
 * past keeping, start the flush timer.  NULL with err.
 */
struct tlsrpt *tlsrpt_open(struct ev_loop *loop, const char *state_dir,
    char *err, size_t errlen);

/*
 * Count one attempt; sid for the debug log line.  t NULL: nothing.  Not
 * counted when a->client is a connection of tlsrpt_own_add(): RFC 8460
 * section 3, a report's own SMTP session SHOULD NOT be in the next
 * report.
 */
void tlsrpt_count(struct tlsrpt *t, unsigned long sid,
    const struct tlsrpt_attempt *a);

/*
 * SIGUSR1: send the reports due now, yesterday's too (tlsrptsend.h).
 * NULL is fine.
 */
void tlsrpt_send_now(struct tlsrpt *t);

/* Write what is dirty, wait for the disk (tests, shutdown). */
void tlsrpt_flush(struct tlsrpt *t);

/* tlsrpt_flush(), then close.  NULL is fine. */
void tlsrpt_close(struct tlsrpt *t);

/* ---- for the sender (tlsrptsend.c) ---- */

struct tlsrpt_sender;
struct tlsrpt_store *tlsrpt_store_of(struct tlsrpt *t);
/* t ticks s once a second and frees it on tlsrpt_close(). */
void tlsrpt_set_sender(struct tlsrpt *t, struct tlsrpt_sender *s);
/* 1 when day's report of domain went to rua (before a restart too). */
int tlsrpt_was_sent(struct tlsrpt *t, long day, const char *domain,
    const char *rua);
/*
 * Record that it did, in memory and through the journal's thread (not
 * for a day past keeping: its records are gone, this one would stay).
 */
void tlsrpt_mark_sent(struct tlsrpt *t, long day, const char *domain,
    const char *rua);
/*
 * The local address and port of a connection that delivers a report by
 * SMTP, while it is open: the session that mxtls's own listener runs for
 * it (its client is this address) is then not counted.  The address of
 * an open TCP connection to the listener is unique, so a message from
 * the same sender on another connection still counts.  add: 0, or -1
 * when out of memory (the session is then counted); del: forget it.
 */
int tlsrpt_own_add(struct tlsrpt *t, const struct sockaddr *sa);
void tlsrpt_own_del(struct tlsrpt *t, const struct sockaddr *sa);

/*
 * `mxtls -c FILE report --dry-run [YYYY-MM-DD]` (day NULL: yesterday,
 * UTC): read the journal as the running mxtls has it, and for each
 * domain with counts on that day look up its _smtp._tls TXT record and
 * print what would be sent, without sending:
 *
 *	day 2024-05-01
 *	domain example.com
 *	rua mailto:tlsrpt@example.com https://r.example.com/v1
 *	sent https://r.example.com/v1	(a rua that took the report)
 *	dnssec insecure
 *	json {"organization-name":...}
 *
 * ("rua none: ..." or "rua invalid: ..." when there is no usable
 * record, "overflow N" when sessions were left out).  0, 1 on errors.
 */
int tlsrpt_dry_run(const struct config *cfg, const char *day, FILE *out);

#endif
