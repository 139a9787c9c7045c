/*
 * admin_probe: proxy/admin.c on a libev loop, for test_admin.sh.
 *
 *   admin_probe PORT
 *
 * Serves the admin endpoint on 127.0.0.1:PORT with a few metrics set
 * (every type, labels that need escaping), ready at first.  SIGUSR1
 * toggles readiness; SIGTERM stops the endpoint and exits 0.  A loop
 * timer fires every 10 ms and counts in mxtls_sessions_total how often
 * it ran, so the test sees the loop was never held up.  Prints
 * "listening" once the socket is bound; errors go to stderr, exit 1.
 */
#include <arpa/inet.h>
#include <ev.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "metrics.h"

static int ready = 1;
static struct admin *admin;
static double last_tick, max_gap;

static int
is_ready(void *arg)
{
	(void)arg;
	return ready;
}

static void
usr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	ready = !ready;
}

static void
term_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	admin_stop(admin);
	admin = NULL;
	ev_break(loop, EVBREAK_ALL);
}

/* The longest time between two ticks: how long the loop was blocked. */
static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	double now = ev_now(loop);

	(void)w;
	(void)revents;
	if (last_tick > 0 && now - last_tick > max_gap) {
		max_gap = now - last_tick;
		metrics_set("mxtls_policy_age_seconds", "source=\"max_tick_gap\"",
		    max_gap);
	}
	last_tick = now;
	metrics_inc("mxtls_sessions_total", "", 1);
}

static void
seed(void)
{
	char l[256];

	metrics_set("mxtls_build_info", metrics_labels(l, sizeof(l),
	    "version", "test", NULL), 1);
	metrics_add("mxtls_sessions_current", "", 3);
	metrics_inc("mxtls_sessions_refused_total", metrics_labels(l,
	    sizeof(l), "reason", "max_sessions", NULL), 2);
	metrics_inc("mxtls_deliveries_total", metrics_labels(l, sizeof(l),
	    "outcome", "tls", "profile", "opportunistic", NULL), 5);
	metrics_inc("mxtls_deliveries_total", metrics_labels(l, sizeof(l),
	    "outcome", "fallback", "profile", "we\"ird\\name\nx\xff", NULL), 1);
	metrics_inc("mxtls_tls_handshakes_total", metrics_labels(l, sizeof(l),
	    "version", "TLSv1.3", "cipher", "TLS_AES_128_GCM_SHA256", NULL),
	    5);
	metrics_inc("mxtls_tls_failures_total", metrics_labels(l, sizeof(l),
	    "result", "certificate-expired", NULL), 1);
	metrics_set("mxtls_retry_records", metrics_labels(l, sizeof(l),
	    "state", "broken", NULL), 1);
	metrics_observe("mxtls_tls_handshake_seconds", "", 0.012);
	metrics_observe("mxtls_tls_handshake_seconds", "", 0.3);
	metrics_observe("mxtls_upstream_connect_seconds", "", 0.0004);
	metrics_inc("mxtls_bytes_relayed_total", metrics_labels(l, sizeof(l),
	    "direction", "upstream", NULL), 12345);
	metrics_set("mxtls_policy_age_seconds", metrics_labels(l, sizeof(l),
	    "source", "never", NULL), INFINITY);
	metrics_inc("mxtls_config_reloads_total", metrics_labels(l, sizeof(l),
	    "outcome", "ok", NULL), 1);
}

int
main(int argc, char **argv)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct sockaddr_in sin = { 0 };
	ev_signal usr1, term, intr;
	ev_timer tick;
	char err[256];

	if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
		fprintf(stderr, "usage: admin_probe PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	seed();
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	admin = admin_start(loop, (struct sockaddr *)&sin, sizeof(sin),
	    is_ready, NULL, err, sizeof(err));
	if (admin == NULL) {
		fprintf(stderr, "%s\n", err);
		metrics_reset();
		return 1;
	}
	ev_signal_init(&usr1, usr1_cb, SIGUSR1);
	ev_signal_start(loop, &usr1);
	ev_signal_init(&term, term_cb, SIGTERM);
	ev_signal_start(loop, &term);
	ev_signal_init(&intr, term_cb, SIGINT);
	ev_signal_start(loop, &intr);
	ev_timer_init(&tick, tick_cb, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	printf("listening\n");
	fflush(stdout);
	ev_run(loop, 0);
	admin_stop(admin);
	metrics_reset();
	ev_loop_destroy(loop);
	return 0;
}
