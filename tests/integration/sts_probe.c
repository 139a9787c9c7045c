/*
 * sts_probe: drive proxy/sts.c (with the real dns.c, fetcher.c and
 * mxtls-fetch) from the command line, for test_sts.sh.
 *
 *   sts_probe -d DNS -x FETCH -c CACHE_DIR [-a CA_BUNDLE] [-w WAIT]
 *             [-t LIMIT] STEP...
 *
 * DNS is "ADDR:PORT" for dns_new(); FETCH the mxtls-fetch program;
 * CACHE_DIR the cache directory; CA_BUNDLE the CAs of the policy
 * servers; WAIT mta_sts_wait (default 10); LIMIT the seconds a lookup may
 * take before the probe calls it a broken promise (default 30).
 * STEPS, in order:
 *   DOMAIN           look DOMAIN up, run the loop until the answer
 *   par:D1,D2,...    look all up at once, run until all are answered
 *   +N               move the clock (clock_set_offset) N seconds on
 *   sleep:S          run the loop S seconds (work in flight goes on)
 *   refresh:DOMAIN   sts_refresh(DOMAIN)
 *   cancel:DOMAIN    look up and cancel at once; run the loop a little
 *   disk:DOMAIN      wait for the journal, print DOMAIN's record on disk
 * Output (stdout), one line per answer, in the order they come:
 *   DOMAIN source=SOURCE mode=MODE|- mx=P1,P2|- error=TEXT|- ms=N
 * and per disk: step
 *   DOMAIN disk id=ID mode=MODE max_age=N mx=P1,P2|-   or   DOMAIN disk none
 * and at the end "fetches ok=N failed=N invalid=N" (the metrics) and
 * "FAIL WHY" for every broken promise of sts.h (a callback inside
 * sts_lookup, a second callback, a callback after cancel, no answer in
 * time).  Logs (debug) go to stderr.  Exit 0 when no FAIL was printed.
 */
#include <ev.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "dns.h"
#include "fetcher.h"
#include "log.h"
#include "metrics.h"
#include "sts.h"

#define MAXPAR 32

struct pending {
	char domain[256];
	double t0;
	int answered;
	int cancelled;
	struct sts_query *q;
};

static struct ev_loop *loop;
static int in_lookup, failed, outstanding;
static long offset;

static void
fail(const char *why, const char *domain)
{
	printf("FAIL %s%s%s\n", why, domain ? ": " : "", domain ? domain : "");
	fflush(stdout);
	failed = 1;
}

static void
answer_cb(void *arg, const struct sts_answer *a)
{
	struct pending *p = arg;
	int i;

	if (in_lookup)
		fail("callback inside sts_lookup", p->domain);
	if (p->cancelled)
		fail("callback after sts_cancel", p->domain);
	if (p->answered++)
		fail("second callback", p->domain);
	outstanding--;
	printf("%s source=%s mode=%s mx=", p->domain, a->source,
	    a->policy != NULL ? mtasts_mode_name(a->policy->mode) : "-");
	if (a->policy == NULL || a->policy->nmx == 0)
		printf("-");
	for (i = 0; a->policy != NULL && i < a->policy->nmx; i++)
		printf("%s%s", i ? "," : "", a->policy->mx[i]);
	printf(" error=%s ms=%.0f\n", a->error != NULL ? a->error : "-",
	    (clock_mono() - p->t0) * 1e3);
	fflush(stdout);
}

static void
stop_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ONE);
}

/* Run the loop until nothing is outstanding, or for `secs` at most. */
static void
run_for(double secs, int until_answered)
{
	ev_timer t;

	ev_timer_init(&t, stop_cb, secs, 0.);
	ev_timer_start(loop, &t);
	while (ev_is_active(&t) && (!until_answered || outstanding > 0))
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
}

static void
lookup_all(struct sts *s, char **names, int n, double limit)
{
	struct pending p[MAXPAR];
	int i;

	memset(p, 0, sizeof(p));
	for (i = 0; i < n && i < MAXPAR; i++) {
		snprintf(p[i].domain, sizeof(p[i].domain), "%s", names[i]);
		p[i].t0 = clock_mono();
		in_lookup = 1;
		p[i].q = sts_lookup(s, names[i], answer_cb, &p[i]);
		in_lookup = 0;
		if (p[i].q == NULL)
			fail("sts_lookup returned NULL", names[i]);
		else
			outstanding++;
	}
	run_for(limit, 1);
	for (i = 0; i < n && i < MAXPAR; i++)
		if (p[i].q != NULL && !p[i].answered) {
			fail("no answer in time", p[i].domain);
			sts_cancel(p[i].q);
			outstanding--;
		}
}

static double
metric(const char *outcome)
{
	char labels[64];
	double v;

	snprintf(labels, sizeof(labels), "source=\"mta-sts\",outcome=\"%s\"",
	    outcome);
	v = metrics_value("mxtls_policy_fetches_total", labels);
	return isnan(v) ? 0 : v;
}

static void
usage(void)
{
	fprintf(stderr, "usage: sts_probe -d DNS -x FETCH -c CACHE_DIR "
	    "[-a CA_BUNDLE] [-w WAIT] [-t LIMIT] STEP...\n");
	exit(64);
}

static void
disk(struct sts *s, const char *dir, const char *domain)
{
	struct sts_record r;
	char err[512];
	int i;

	sts_flush(s);
	switch (sts_cache_read(dir, domain, &r, err, sizeof(err))) {
	case 0:
		printf("%s disk none\n", domain);
		return;
	case -1:
		printf("FAIL %s disk: %s\n", domain, err);
		failed = 1;
		return;
	}
	printf("%s disk id=%s mode=%s max_age=%ld mx=", domain, r.id,
	    mtasts_mode_name(r.policy.mode), r.policy.max_age);
	for (i = 0; i < r.policy.nmx; i++)
		printf("%s%s", i ? "," : "", r.policy.mx[i]);
	printf("%s\n", r.policy.nmx ? "" : "-");
	sts_record_free(&r);
}

int
main(int argc, char **argv)
{
	const char *dnsarg = NULL, *fetch = NULL, *dir = NULL, *ca = NULL;
	double wait = 10, limit = 30;
	struct dns *dns;
	struct dns_options dopt;
	struct fetcher *f;
	struct sts *s;
	char err[512];
	int c, i;

	while ((c = getopt(argc, argv, "d:x:c:a:w:t:")) != -1) {
		switch (c) {
		case 'd':
			dnsarg = optarg;
			break;
		case 'x':
			fetch = optarg;
			break;
		case 'c':
			dir = optarg;
			break;
		case 'a':
			ca = optarg;
			break;
		case 'w':
			wait = atof(optarg);
			break;
		case 't':
			limit = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (dnsarg == NULL || fetch == NULL || dir == NULL)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_setup(CONFIG_LOG_LOGFMT, CONFIG_LOG_DEBUG);
	loop = ev_default_loop(0);
	dopt.servers = dnsarg;
	dopt.timeout = 2.0;
	dopt.dnssec = DNS_DNSSEC_OFF;
	dopt.trust_anchor = NULL;
	if ((dns = dns_new(loop, &dopt, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dns_new: %s\n", err);
		return 2;
	}
	if ((f = fetcher_new(loop, fetch, err, sizeof(err))) == NULL) {
		fprintf(stderr, "fetcher_new: %s\n", err);
		dns_free(dns);
		return 2;
	}
	if ((s = sts_new(loop, dns, f, dir, ca, wait, 16 << 20, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "sts_new: %s\n", err);
		fetcher_free(f);
		ev_run(loop, EVRUN_NOWAIT);
		dns_free(dns);
		return 2;
	}
	for (i = optind; i < argc; i++) {
		char *a = argv[i];

		if (a[0] == '+') {
			offset += atol(a + 1);
			clock_set_offset(offset);
		} else if (strncmp(a, "sleep:", 6) == 0) {
			run_for(atof(a + 6), 0);
		} else if (strncmp(a, "refresh:", 8) == 0) {
			sts_refresh(s, a + 8);
		} else if (strncmp(a, "disk:", 5) == 0) {
			disk(s, dir, a + 5);
		} else if (strncmp(a, "cancel:", 7) == 0) {
			struct pending p;

			memset(&p, 0, sizeof(p));
			snprintf(p.domain, sizeof(p.domain), "%s", a + 7);
			in_lookup = 1;
			p.q = sts_lookup(s, a + 7, answer_cb, &p);
			in_lookup = 0;
			p.cancelled = 1;
			sts_cancel(p.q);
			run_for(0.2, 0);
			printf("%s cancelled\n", p.domain);
		} else if (strncmp(a, "par:", 4) == 0) {
			char *names[MAXPAR], *tok, *save = NULL;
			int n = 0;

			for (tok = strtok_r(a + 4, ",", &save);
			     tok != NULL && n < MAXPAR;
			     tok = strtok_r(NULL, ",", &save))
				names[n++] = tok;
			lookup_all(s, names, n, limit);
		} else {
			lookup_all(s, &a, 1, limit);
		}
	}
	printf("fetches ok=%.0f failed=%.0f invalid=%.0f\n", metric("ok"),
	    metric("failed"), metric("invalid"));
	sts_free(s);
	fetcher_free(f);
	ev_run(loop, EVRUN_NOWAIT);
	dns_free(dns);
	ev_loop_destroy(loop);
	return failed ? 1 : 0;
}
