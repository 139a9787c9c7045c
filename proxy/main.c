/*
 * mxtls: argv, start-up, signals and the loop.  Everything else lives in
 * its own module; this file only wires them together.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "dns.h"
#include "explain.h"
#include "listener.h"
#include "log.h"
#include "session.h"
#include "state.h"
#include "tls.h"

#define DRAIN_TIMEOUT 30.

static struct {
	struct proxy px;
	struct listener listener;
	ev_signal sigterm, sigint;
	ev_timer drain;
	ev_timer expire;
	int draining;
} d;

static void
usage(void)
{
	fprintf(stderr, "usage: mxtls [-t] -c FILE\n"
	    "       mxtls -c FILE explain RECIPIENT\n"
	    "       mxtls -c FILE state\n"
	    "  -c FILE  the configuration file\n"
	    "  -t       check the configuration and exit (1 on errors)\n"
	    "  explain  print the effective policy for RECIPIENT and where\n"
	    "           each part of it comes from\n"
	    "  state    list the retry records of hosts whose TLS failed\n");
	exit(2);
}

static void
main_session_end(struct proxy *px)
{
	if (d.draining && px->nsessions == 0)
		ev_break(px->loop, EVBREAK_ALL);
}

static void
main_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	log_warn(0, "drain-timeout", NULL);
	session_close_all(&d.px, "421 4.3.2 Service shutting down");
	ev_break(loop, EVBREAK_ALL);
}

static void
main_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	char n[16];

	(void)revents;
	snprintf(n, sizeof(n), "%d", w->signum);
	if (d.draining) {
		log_info(0, "shutdown-now", "signal", n, NULL);
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	log_info(0, "shutdown", "signal", n, NULL);
	d.draining = 1;
	listener_close(&d.listener);
	if (d.px.nsessions == 0) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	ev_timer_init(&d.drain, main_drain_timeout, DRAIN_TIMEOUT, 0.);
	ev_timer_start(loop, &d.drain);
}

/* Expired retry records are dropped so the file stays small. */
static void
main_expire(struct ev_loop *loop, ev_timer *w, int revents)
{
	char err[256];

	(void)loop;
	(void)w;
	(void)revents;
	if (state_expire(d.px.state, clock_now(), &d.px.cfg->timing, err,
	    sizeof(err)) == -1)
		log_error(0, "state-write-failed", "error", err, NULL);
}

/* One SSL_CTX per profile; a bad cipher list is a config error. */
static int
main_tls_contexts(const struct config *cfg, SSL_CTX ***out)
{
	const struct policy_set *ps = &cfg->policy;
	char err[512];
	int i, bad = 0;

	*out = calloc((size_t)ps->nprofiles, sizeof(**out));
	if (*out == NULL)
		return -1;
	for (i = 0; i < ps->nprofiles; i++) {
		const struct policy_profile *p = &ps->profiles[i];

		if (((*out)[i] = tls_ctx_new(cfg, p, err, sizeof(err))) ==
		    NULL) {
			if (p->origin.file != NULL)
				fprintf(stderr, "%s:%d: %s\n", p->origin.file,
				    p->origin.line, err);
			else
				fprintf(stderr, "%s: %s\n", cfg->file, err);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct config_errors errs = { 0 };
	const char *file = NULL, *off, *cmd = NULL;
	char err[512], warn[512] = "";
	int ch, check = 0, i;

	while ((ch = getopt(argc, argv, "c:th")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 't':
			check = 1;
			break;
		default:
			usage();
		}
	}
	if (optind < argc)
		cmd = argv[optind++];
	if (file == NULL || (cmd == NULL && optind != argc) ||
	    (cmd != NULL && strcmp(cmd, "explain") == 0 && optind + 1 != argc) ||
	    (cmd != NULL && strcmp(cmd, "state") == 0 && optind != argc) ||
	    (cmd != NULL && strcmp(cmd, "explain") != 0 &&
	    strcmp(cmd, "state") != 0))
		usage();

	if (config_load(file, &cfg, &errs) == -1) {
		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		config_errors_free(&errs);
		return 1;
	}
	config_errors_free(&errs);
	if (main_tls_contexts(&cfg, &d.px.ctx) == -1) {
		config_free(&cfg);
		return 1;
	}
	if (check) {
		printf("%s: ok\n", file);
		return 0;
	}
	if (cmd != NULL && strcmp(cmd, "explain") == 0) {
		i = explain_print(&cfg, argv[optind], stdout);
		config_free(&cfg);
		return i;
	}
	/* Tests move the clock across restarts through the environment. */
	if ((off = getenv("MXTLS_CLOCK_OFFSET")) != NULL)
		clock_set_offset(strtol(off, NULL, 10));
	if ((d.px.state = state_open(cfg.state_dir, warn, sizeof(warn))) ==
	    NULL) {
		fprintf(stderr, "mxtls: out of memory\n");
		return 1;
	}
	if (cmd != NULL) {
		if (warn[0] != '\0')
			fprintf(stderr, "mxtls: %s\n", warn);
		state_print(d.px.state, stdout, clock_now(), &cfg.timing);
		state_free(d.px.state);
		config_free(&cfg);
		return 0;
	}

	log_setup(cfg.log_format, cfg.log_level);
	if (warn[0] != '\0')
		log_warn(0, "state-file-ignored", "reason", warn, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (mkdir(cfg.state_dir, 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "mxtls: state_dir %s: %s\n", cfg.state_dir,
		    strerror(errno));
		return 1;
	}

	d.px.loop = ev_default_loop(EVFLAG_AUTO);
	d.px.cfg = &cfg;
	d.px.on_session_end = main_session_end;
	if ((d.px.dns = dns_new(d.px.loop, cfg.dns_servers, cfg.dns_timeout,
	    err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxtls: dns: %s\n", err);
		return 1;
	}
	if (listener_open(&d.listener, &cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxtls: %s\n", err);
		return 1;
	}
	proxy_sessions_init(&d.px);
	listener_start(&d.listener, &d.px);
	ev_timer_init(&d.expire, main_expire, 60., 60.);
	ev_timer_start(d.px.loop, &d.expire);
	ev_unref(d.px.loop); /* housekeeping keeps nothing alive */
	ev_signal_init(&d.sigterm, main_signal, SIGTERM);
	ev_signal_start(d.px.loop, &d.sigterm);
	ev_signal_init(&d.sigint, main_signal, SIGINT);
	ev_signal_start(d.px.loop, &d.sigint);
	log_info(0, "start", "listen", cfg.listen_str, "hostname",
	    cfg.hostname, "config", file, NULL);

	ev_run(d.px.loop, 0);

	log_info(0, "stop", NULL);
	listener_close(&d.listener);
	session_close_all(&d.px, "421 4.3.2 Service shutting down");
	ev_run(d.px.loop, EVRUN_NOWAIT);
	dns_free(d.px.dns);
	state_free(d.px.state);
	for (i = 0; i < cfg.policy.nprofiles; i++)
		tls_ctx_free(d.px.ctx[i]);
	free(d.px.ctx);
	config_free(&cfg);
	return 0;
}
