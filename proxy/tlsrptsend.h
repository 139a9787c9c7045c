/*
 * Sending the TLS reports (RFC 8460 sections 3 and 5), on the event loop.
 *
 * When: once per UTC day, for the day before, at a random moment in the
 * first TLSRPT_WINDOW seconds after midnight (tlsrpt-scheduled is logged
 * with it): that day's run.  Complete days before yesterday that the
 * journal still keeps (TLSRPT_KEEP_DAYS) and whose reports have not gone
 * to every rua (mxtls was down when they were due, or every send failed)
 * are due at once, at start-up too; days go oldest first, and today,
 * not over, never.  Then, per policy domain with counts that day (a
 * job; tlsrpt-run logs how many a day has): its "_smtp._tls" TXT record
 * is looked up (the DNSSEC standing logged), and the report goes to each
 * of the first TLSRPT_SEND_RUA_MAX usable rua URIs it has not gone to
 * yet: https: as a POST through mxtls-fetch, mailto: as a message over
 * SMTP to [report] submit, or to mxtls's own listener (then it leaves
 * through the proxy like any mail, and that session is not counted:
 * tlsrpt_own_add).  A rua that took the report is recorded in the
 * tlsrpt journal (tlsrpt_mark_sent), so a restart sends it again to none
 * but those that failed.  A domain whose lookup or sends failed is tried
 * again after TLSRPT_RETRY seconds, doubling up to TLSRPT_RETRY_MAX, and
 * at each day's run, until its day leaves the journal; then it is given
 * up.  At most TLSRPT_SEND_JOBS_MAX jobs are held at once (the rest of
 * the days' domains are listed as those are done, tlsrpt-run-bounded
 * warns), TLSRPT_SEND_ACTIVE_MAX of them in flight.
 *
 * Logs, each with the day its report is for: tlsrpt-scheduled (info),
 * tlsrpt-run (info), tlsrpt-rua (the record found, info), tlsrpt-sent
 * (info), tlsrpt-already-sent (info), tlsrpt-send-failed (warn) with
 * domain, rua, attempt, error and the next try, tlsrpt-given-up (warn).
 * Metric: mxtls_tlsrpt_reports_total{scheme,result}.
 *
 * tlsrpt_send_now() (SIGUSR1) makes yesterday's reports due at once and
 * what failed tried again at once (logged tlsrpt-send-now).
 *
 * Tests move the clock (MXTLS_CLOCK_OFFSET) and may shorten the window
 * and the first back-off with MXTLS_TLSRPT_WINDOW and
 * MXTLS_TLSRPT_RETRY (seconds) in the environment, so that none waits
 * for hours, and lower the bound of jobs held with MXTLS_TLSRPT_JOBS.
 */
#ifndef MXTLS_TLSRPTSEND_H
#define MXTLS_TLSRPTSEND_H

/*
 * Four hours: collectors do not get every sender's report in the same
 * minute after midnight, and the rest of the day is left for retries.
 */
#define TLSRPT_WINDOW (4 * 3600)
#define TLSRPT_RETRY 600	    /* the first back-off, doubling */
#define TLSRPT_RETRY_MAX (2 * 3600) /* and its cap */
#define TLSRPT_SEND_RUA_MAX 4	    /* report URIs of a domain used */
#define TLSRPT_SEND_ACTIVE_MAX 4    /* domains being sent at once */
/* Jobs held at once: as many as one full day's entries can name. */
#define TLSRPT_SEND_JOBS_MAX TLSRPT_ENTRIES_MAX
#define TLSRPT_HTTPS_TIMEOUT_MS 60000
#define TLSRPT_HTTPS_REPLY_MAX 65536 /* of the collector's answer */
#define TLSRPT_SMTP_TIMEOUT 300.    /* per reply: mxtls's RCPT may take 240 s */

struct config;
struct dns;
struct fetcher;
struct tlsrpt;
struct tlsrpt_sender;

/*
 * Start sending t's reports: the [report] keys are copied from cfg (read
 * at start, as enabled is), dns resolves, f posts (NULL: https: reports
 * fail).  t ticks the sender and frees it.  -1 with err.
 */
int tlsrpt_send_start(struct tlsrpt *t, const struct config *cfg,
    struct dns *dns, struct fetcher *f, char *err, size_t errlen);

/* Called by t once a second.  NULL is fine. */
void tlsrpt_sender_tick(struct tlsrpt_sender *s);

/*
 * Yesterday's reports are due now (the older days' are already), and
 * what failed is tried again now: an operator who fixed something (or a
 * test) need not wait.  NULL is fine.
 */
void tlsrpt_sender_now(struct tlsrpt_sender *s);

/* Stop, cancelling what is in flight.  NULL is fine. */
void tlsrpt_sender_free(struct tlsrpt_sender *s);

#endif
