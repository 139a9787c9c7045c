/*
 * mxtls: argv, start-up, privileges, signals and the loop.  Everything
 * else lives in its own module; this file only wires them together.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "admin.h"
#include "central.h"
#include "clock.h"
#include "dkimsign.h"
#include "dns.h"
#include "dsnq.h"
#include "explain.h"
#include "explaindns.h"
#include "fetcher.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "runtime.h"
#include "session.h"
#include "sign.h"
#include "state.h"
#include "sts.h"
#include "tlsrpt.h"
#include "tlsrptsend.h"
#include "usage.h"

static struct {
	const char *file;
	struct proxy px;
	struct runtime *base; /* the config alone; px.rt adds the central
				 document to it when there is one */
	struct dns *policy_dns; /* for fetching policies */
	struct fetcher *fetcher;
	struct central *central;
	struct listener listener;
	struct admin *admin;
	ev_signal sigterm, sigint, sighup, sigusr1;
	ev_timer drain;
	ev_timer expire;
	int draining;
	struct dns_query *dnssec_probe;
} d;

/*
 * `mxtls explain`: the policy in force is the local config merged with the
 * last good central document in state_dir, as the running proxy has it.
 */
static int
main_explain(struct runtime *rt, const char *recipient)
{
	const struct policy_set *ps;
	struct policy_decision d;
	struct runtime *drt = NULL;
	char err[512], *text;
	size_t len;
	int r;

	if (rt->cfg.policy_url != NULL) {
		if ((text = central_copy_read(&rt->cfg, &len, err,
		    sizeof(err))) != NULL) {
			drt = runtime_derive(rt, text, len, rt->cfg.policy_url,
			    stderr);
			free(text);
			if (drt == NULL)
				fprintf(stderr, "mxtls: explain: the central "
				    "policy in %s/central-policy is refused; "
				    "the local config alone applies\n",
				    rt->cfg.state_dir);
		} else if (errno == ENOENT)
			fprintf(stderr, "mxtls: explain: no central policy "
			    "fetched yet; the local config alone applies\n");
		else
			fprintf(stderr, "mxtls: explain: %s; the local config "
			    "alone applies\n", err);
	}
	ps = drt != NULL ? drt->policy : rt->policy;
	r = explain_print(&rt->cfg, ps, recipient, stdout);
	/* What the DNS says now, as the proxy would ask it. */
	if (r == 0 && policy_lookup(ps, recipient, &d) == POLICY_OK)
		r = explain_dns_print(&rt->cfg, &d, stdout);
	if (drt != NULL)
		runtime_release(drt);
	return r;
}

/*
 * Tell systemd (Type=notify) where we are.  sd_notify does nothing
 * without NOTIFY_SOCKET, and a failure to tell is no reason to stop.
 */
static void
main_notify(const char *what)
{
	(void)sd_notify(0, what);
}

/* A usage error: that command's usage (or all of it) and exit 2. */
static void
usage(const char *cmd)
{
	usage_write(stderr, cmd, cmd == NULL);
	exit(2);
}

static int
main_ready(void *arg)
{
	(void)arg;
	return !d.draining && d.listener.fd != -1;
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
	/* The rest end when their reply came (main_session_end). */
	if (session_drain_over(&d.px, "421 4.3.2 Service shutting down") == 0)
		ev_break(loop, EVBREAK_ALL);
}

/*
 * The answer for the root zone tells whether DNSSEC works through the
 * configured resolvers.  One that strips signatures makes every signed
 * domain's answers bogus, and all their mail deferred: say so at start,
 * not in a thousand deferrals.
 */
static void
main_dnssec_checked(void *arg, const struct dns_txt_result *res)
{
	const struct config *cfg = d.base->cfgp;
	const char *anchor = cfg->trust_anchor != NULL ? cfg->trust_anchor :
	    DEFAULT_TRUST_ANCHOR;

	(void)arg;
	d.dnssec_probe = NULL;
	switch (res->sec) {
	case DNSSEC_SECURE:
		log_info(0, "dnssec-check", "result", "secure", NULL);
		break;
	case DNSSEC_BOGUS:
		log_warn(0, "dnssec-check", "result", "bogus", "reason",
		    cfg->dnssec == CONFIG_DNSSEC_VALIDATE ?
		    "the root zone's answer does not validate from "
		    "[dns] trust_anchor: the resolvers may strip DNSSEC "
		    "records, and mail to every signed domain will be "
		    "deferred (451 4.7.5)" : "the resolver calls the root "
		    "zone's answer bogus", "trust_anchor",
		    cfg->dnssec == CONFIG_DNSSEC_VALIDATE ? anchor : NULL,
		    "error", res->error, NULL);
		break;
	case DNSSEC_INSECURE:
		log_warn(0, "dnssec-check", "result", "insecure", "reason",
		    "the root zone's answer is not authenticated (no AD "
		    "bit from the resolver): no domain gets DANE", NULL);
		break;
	case DNSSEC_FAILED:
		log_warn(0, "dnssec-check", "result", "failed", "reason",
		    "no answer for the root zone: DNS lookups may fail",
		    "error", res->error, NULL);
		break;
	}
}

/* SIGTERM/SIGINT: stop accepting, let sessions finish; twice: now. */
static void
main_stop(struct ev_loop *loop, ev_signal *w, int revents)
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
	main_notify("STOPPING=1");
	d.draining = 1;
	d.px.draining = 1;
	upcache_flush(&d.px.cache);
	listener_close(&d.listener);
	if (d.px.nsessions == 0) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	ev_timer_init(&d.drain, main_drain_timeout,
	    d.px.rt->cfgp->drain_timeout, 0.);
	ev_timer_start(loop, &d.drain);
}

/* Put a runtime in force for new sessions; old ones keep theirs. */
static void
main_set_runtime(struct runtime *rt)
{
	if (d.px.rt != d.base)
		runtime_release(d.px.rt);
	d.px.rt = rt;
	/* Connections verified under the old policy are not reused. */
	upcache_flush(&d.px.cache);
}

/* The central document on top of the local config (central.c calls). */
static int
main_apply_document(void *arg, const char *text, size_t len,
    const char *name, char *err, size_t errlen)
{
	struct runtime *rt;
	char *errors = NULL;
	size_t elen = 0;
	FILE *f;

	(void)arg;
	if ((f = open_memstream(&errors, &elen)) == NULL)
		return -1;
	rt = runtime_derive(d.base, text, len, name, f);
	fclose(f);
	snprintf(err, errlen, "%s", errors ? errors : "");
	free(errors);
	if (rt == NULL)
		return -1;
	main_set_runtime(rt);
	return 0;
}

/*
 * RELOADING=1 with the time it began: systemd's Type=notify-reload wants
 * MONOTONIC_USEC, plain Type=notify ignores it.
 */
static void
main_notify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
	main_notify(msg);
}

/* SIGHUP: build the new config completely; keep the old one on error. */
static void
main_reload(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct runtime *rt, *eff;
	const char *doc, *name;
	char *errors = NULL;
	size_t len = 0, dlen;
	FILE *f;

	(void)w;
	(void)revents;
	main_notify_reloading();
	if ((f = open_memstream(&errors, &len)) == NULL) {
		main_notify("READY=1");
		return;
	}
	rt = runtime_load(loop, d.file, f);
	/* The central document must fit the new local config too. */
	eff = rt;
	if (rt != NULL && d.central != NULL &&
	    (doc = central_document(d.central, &dlen, &name)) != NULL &&
	    (eff = runtime_derive(rt, doc, dlen, name, f)) == NULL) {
		runtime_release(rt);
		rt = NULL;
	}
	fclose(f);
	if (rt == NULL) {
		log_error(0, "reload-failed", "config", d.file, "errors",
		    errors, NULL);
		metrics_inc("mxtls_config_reloads_total", "outcome=\"failed\"",
		    1);
		free(errors);
		/* The old config stays in force: ready as before. */
		main_notify("READY=1");
		return;
	}
	free(errors);
	if (strcmp(rt->cfgp->listen_str, d.px.rt->cfgp->listen_str) != 0)
		log_warn(0, "reload-listen-unchanged", "listen",
		    d.px.rt->cfgp->listen_str, "reason",
		    "a new listen address needs a restart", NULL);
	log_setup(rt->cfg.log_format, rt->cfg.log_level);
	/* The key read for this config, or none. */
	dkim_use(rt->cfg.dkim_key, rt->cfg.dkim_domain, rt->cfg.dkim_selector);
	main_set_runtime(eff);
	runtime_release(d.base);
	d.base = rt;
	if (d.central != NULL)
		central_configure(d.central, &rt->cfg);
	metrics_inc("mxtls_config_reloads_total", "outcome=\"ok\"", 1);
	log_info(0, "reloaded", "config", d.file, NULL);
	main_notify("READY=1");
}

/* Expired retry records are dropped so the file stays small. */
static void
main_expire(struct ev_loop *loop, ev_timer *w, int revents)
{
	char err[256];

	(void)loop;
	(void)w;
	(void)revents;
	if (state_expire(d.px.state, clock_now(), &d.px.rt->cfgp->timing, err,
	    sizeof(err)) == -1)
		log_error(0, "state-write-failed", "error", err, NULL);
}

/*
 * Bind first, then give root up for good.  Running as root with nobody
 * to become is refused: a remote peer should never face a root process.
 */
static int
main_drop_privileges(const struct config *cfg)
{
	gid_t gid = cfg->user_gid;

	if (geteuid() != 0)
		return 0;
	if (cfg->user == NULL) {
		fprintf(stderr, "mxtls: refusing to run as root: set [proxy] "
		    "user to an unprivileged user\n");
		return -1;
	}
	if (chown(cfg->state_dir, cfg->user_uid, cfg->user_gid) == -1 ||
	    setgroups(1, &gid) == -1 || setgid(cfg->user_gid) == -1 ||
	    setuid(cfg->user_uid) == -1) {
		fprintf(stderr, "mxtls: cannot become %s: %s\n", cfg->user,
		    strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		fprintf(stderr, "mxtls: could regain root after dropping it\n");
		return -1;
	}
	return 0;
}

/* Each session needs two descriptors; say so at start, not under load. */
static int
main_check_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->max_sessions * 2 + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max >= need) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return 0;
	}
	fprintf(stderr, "mxtls: max_sessions = %d needs %llu file descriptors "
	    "but the limit is %llu (raise it with ulimit -n or LimitNOFILE=)\n",
	    cfg->max_sessions, (unsigned long long)need,
	    (unsigned long long)rl.rlim_max);
	return -1;
}

/* mxtls-fetch: configured, or beside this program. */
static char *
main_fetch_program(const struct config *cfg)
{
	char self[4096], *slash, *p;
	ssize_t n;

	if (cfg->fetch_program != NULL)
		return strdup(cfg->fetch_program);
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
		return NULL;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return NULL;
	*slash = '\0';
	if (asprintf(&p, "%s/mxtls-fetch", self) == -1)
		return NULL;
	return p;
}

/* The fetcher and the central policy, when the config asks for them. */
static int
main_start_fetching(const struct config *cfg)
{
	char err[512], *prog;

	/* TLS reports post to https: URIs through the fetcher too. */
	if (cfg->policy_url == NULL && !cfg->mta_sts && !cfg->report_enabled)
		return 0;
	if ((d.policy_dns = runtime_dns_new(d.px.loop, cfg, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "mxtls: dns: %s\n", err);
		return -1;
	}
	if ((prog = main_fetch_program(cfg)) == NULL ||
	    (d.fetcher = fetcher_new(d.px.loop, prog, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "mxtls: cannot start %s: %s\n",
		    prog ? prog : "mxtls-fetch", prog ? err : "not found");
		free(prog);
		return -1;
	}
	free(prog);
	if (cfg->mta_sts) {
		char dir[4096];

		snprintf(dir, sizeof(dir), "%s/mta-sts", cfg->state_dir);
		if ((d.px.sts = sts_new(d.px.loop, d.policy_dns, d.fetcher, dir,
		    cfg->mta_sts_ca_bundle, cfg->mta_sts_wait,
		    (size_t)cfg->mta_sts_cache_bytes, err, sizeof(err))) ==
		    NULL) {
			fprintf(stderr, "mxtls: mta-sts: %s\n", err);
			return -1;
		}
	}
	if (cfg->policy_url == NULL)
		return 0;
	if ((d.central = central_new(d.px.loop, d.policy_dns, d.fetcher, cfg,
	    main_apply_document, NULL)) == NULL) {
		fprintf(stderr, "mxtls: out of memory\n");
		return -1;
	}
	central_start(d.central);
	return 0;
}

/* SIGUSR1: yesterday's TLS reports now, not at their random moment. */
static void
main_send_reports(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	tlsrpt_send_now(d.px.tlsrpt);
}

static int
main_run(void)
{
	const struct config *cfg;
	char err[512], warn[512] = "";
	d.px.loop = ev_default_loop(EVFLAG_AUTO);
	if ((d.base = runtime_load(d.px.loop, d.file, stderr)) == NULL)
		return 1;
	d.px.rt = d.base;
	cfg = d.base->cfgp;
	log_setup(cfg->log_format, cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	if (main_check_fd_limit(cfg) == -1)
		return 1;
	/* Retry records and policies are ours alone: 0700, also if it existed. */
	if ((mkdir(cfg->state_dir, 0700) == -1 && errno != EEXIST) ||
	    chmod(cfg->state_dir, 0700) == -1) {
		fprintf(stderr, "mxtls: state_dir %s: %s\n", cfg->state_dir,
		    strerror(errno));
		return 1;
	}
	if ((d.px.state = state_open(cfg->state_dir, warn, sizeof(warn))) ==
	    NULL) {
		fprintf(stderr, "mxtls: %s\n", warn);
		return 1;
	}
	if (warn[0] != '\0')
		log_warn(0, "state-file-ignored", "reason", warn, NULL);
	/* At once, not in a minute: a record dated in the future must go. */
	if (state_expire(d.px.state, clock_now(), &cfg->timing, err,
	    sizeof(err)) == -1)
		log_error(0, "state-write-failed", "error", err, NULL);
	if (listener_open(&d.listener, cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxtls: %s\n", err);
		return 1;
	}
	if (cfg->admin_listen_len > 0 && (d.admin = admin_start(d.px.loop,
	    (const struct sockaddr *)&cfg->admin_listen, cfg->admin_listen_len,
	    main_ready, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxtls: admin_listen %s: %s\n",
		    cfg->admin_listen_str, err);
		return 1;
	}
	if (main_drop_privileges(cfg) == -1)
		return 1;
	conn_set_upstream_mark(cfg->upstream_mark);
	/* After the drop: the fetcher never runs with our old privileges. */
	if (main_start_fetching(cfg) == -1)
		return 1;
	dkim_use(cfg->dkim_key, cfg->dkim_domain, cfg->dkim_selector);
	/* Counts for TLS reports, written as the user mxtls now is. */
	if (cfg->report_enabled && ((d.px.tlsrpt = tlsrpt_open(d.px.loop,
	    cfg->state_dir, err, sizeof(err))) == NULL ||
	    tlsrpt_send_start(d.px.tlsrpt, cfg, d.policy_dns, d.fetcher, err,
	    sizeof(err)) == -1)) {
		fprintf(stderr, "mxtls: tlsrpt: %s\n", err);
		return 1;
	}
	metrics_set("mxtls_build_info", "version=\"" MXTLS_VERSION "\"", 1);

	if ((d.px.dsnq = dsnq_new(d.px.loop)) == NULL) {
		fprintf(stderr, "mxtls: out of memory\n");
		return 1;
	}
	d.px.on_session_end = main_session_end;
	proxy_sessions_init(&d.px);
	listener_start(&d.listener, &d.px);
	ev_timer_init(&d.expire, main_expire, 60., 60.);
	ev_timer_start(d.px.loop, &d.expire);
	ev_unref(d.px.loop); /* housekeeping keeps nothing alive */
	ev_signal_init(&d.sigterm, main_stop, SIGTERM);
	ev_signal_start(d.px.loop, &d.sigterm);
	ev_signal_init(&d.sigint, main_stop, SIGINT);
	ev_signal_start(d.px.loop, &d.sigint);
	ev_signal_init(&d.sighup, main_reload, SIGHUP);
	ev_signal_start(d.px.loop, &d.sighup);
	ev_signal_init(&d.sigusr1, main_send_reports, SIGUSR1);
	ev_signal_start(d.px.loop, &d.sigusr1);
	log_info(0, "start", "version", MXTLS_VERSION, "listen",
	    cfg->listen_str, "mode",
	    cfg->mode == CONFIG_MODE_TRANSPARENT ? "transparent" : "relay",
	    "hostname", cfg->hostname, "config", d.file, NULL);
	/* Listening, privileges dropped, signals handled: mail may come. */
	main_notify("READY=1");
	if (cfg->dnssec != CONFIG_DNSSEC_OFF)
		d.dnssec_probe = dns_lookup_txt(d.base->dns, ".",
		    main_dnssec_checked, NULL);

	ev_run(d.px.loop, 0);

	log_info(0, "stop", NULL);
	listener_close(&d.listener);
	d.px.draining = 1;
	session_close_all(&d.px, "421 4.3.2 Service shutting down");
	upcache_flush(&d.px.cache);
	/* One turn of the loop writes the last replies and QUITs. */
	ev_run(d.px.loop, EVRUN_NOWAIT);
	upcache_free(&d.px.cache);
	dsnq_free(d.px.dsnq);
	tlsrpt_close(d.px.tlsrpt);
	dkim_use(NULL, NULL, NULL);
	if (d.admin != NULL)
		admin_stop(d.admin);
	central_free(d.central);
	if (d.px.sts != NULL)
		sts_free(d.px.sts);
	if (d.fetcher != NULL)
		fetcher_free(d.fetcher);
	if (d.policy_dns != NULL)
		dns_free(d.policy_dns);
	if (d.dnssec_probe != NULL)
		dns_cancel(d.dnssec_probe);
	if (state_sync(d.px.state, err, sizeof(err)) == -1)
		log_error(0, "state-write-failed", "error", err, NULL);
	state_free(d.px.state);
	main_set_runtime(d.base);
	runtime_release(d.base);
	ev_loop_destroy(d.px.loop);
	return 0;
}

int
main(int argc, char **argv)
{
	struct runtime *rt;
	struct state *st;
	const char *cmd = NULL, *off;
	char warn[512] = "";
	int ch, check = 0, help = 0, r;
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};

	/* Tests move the clock across restarts through the environment. */
	if ((off = getenv("MXTLS_CLOCK_OFFSET")) != NULL)
		clock_set_offset(strtol(off, NULL, 10));
	if (argc > 1 && (strcmp(argv[1], "keygen") == 0 ||
	    strcmp(argv[1], "sign-policy") == 0))
		return sign_main(argc - 1, argv + 1);

	while ((ch = getopt_long(argc, argv, "+c:thV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			d.file = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'h':
			help = 1;
			break;
		case 'V':
			usage_version();
			return 0;
		default:
			usage(NULL);
		}
	}
	if (optind < argc)
		cmd = argv[optind++];
	/* Options end at the command; its own --help comes after it. */
	if (cmd != NULL && optind < argc && (strcmp(argv[optind], "--help") ==
	    0 || strcmp(argv[optind], "-h") == 0))
		help = 1;
	if (cmd != NULL && strcmp(cmd, "explain") != 0 &&
	    strcmp(cmd, "state") != 0 && strcmp(cmd, "report") != 0)
		usage(NULL);
	/* Asked for: stdout and success, also without -c. */
	if (help) {
		usage_write(stdout, cmd, cmd == NULL);
		return 0;
	}
	if (d.file == NULL || (cmd == NULL && optind != argc) ||
	    (cmd != NULL && strcmp(cmd, "explain") == 0 && optind + 1 != argc) ||
	    (cmd != NULL && strcmp(cmd, "state") == 0 && optind != argc) ||
	    (cmd != NULL && strcmp(cmd, "report") == 0 && (optind == argc ||
	    strcmp(argv[optind], "--dry-run") != 0 || argc - optind > 2)))
		usage(cmd);
	if (cmd == NULL && !check)
		return main_run();

	if ((rt = runtime_load(NULL, d.file, stderr)) == NULL)
		return 1;
	if (check)
		printf("%s: ok\n", d.file);
	else if (strcmp(cmd, "report") == 0) {
		/* What the running mxtls would send for a day; nothing is sent. */
		r = tlsrpt_dry_run(&rt->cfg, optind + 1 < argc ?
		    argv[optind + 1] : NULL, stdout);
		runtime_release(rt);
		return r;
	} else if (strcmp(cmd, "explain") == 0) {
		r = main_explain(rt, argv[optind]);
		runtime_release(rt);
		return r;
	} else {
		/* Read only: the running mxtls alone writes state_dir. */
		if ((st = state_read(rt->cfg.state_dir, warn, sizeof(warn))) ==
		    NULL) {
			runtime_release(rt);
			return 1;
		}
		if (warn[0] != '\0')
			fprintf(stderr, "mxtls: %s\n", warn);
		state_print(st, stdout, clock_now(), &rt->cfg.timing);
		/* An empty listing must not look like a failure to read it. */
		if (state_total(st) == 0)
			printf("no retry records in %s: no TLS failure is on "
			    "record\n", rt->cfg.state_dir);
		state_free(st);
	}
	runtime_release(rt);
	return 0;
}
