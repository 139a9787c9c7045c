/*
 * A test driver for proxy/fetcher.c: runs the supervisor on a libev
 * default loop, as mxtls does, and performs the steps of its command line
 * in order, printing what happens.
 *
 *	fetcher_probe [-x FETCHER] [-a ADDR] [-c CA] [-o DIR] [-t SECONDS]
 *	    STEP...
 *
 * Steps:
 *	get:URL		request URL (address -a, CA bundle -c); its
 *			number K counts from 1 over get, bad and flood
 *	bad		a request the encoder refuses (http://): NULL
 *	flood:N		N requests of about 5 KiB each (the queue limit)
 *	timeout:MS	the total timeout of the requests that follow
 *	wait:N		run the loop until N callbacks came in all
 *	sleep:MS	run the loop that long
 *	kill		SIGKILL the fetcher
 *	down		run the loop until the fetcher is not alive
 *	up		run the loop until a fetcher is alive
 *	cancel:K	cancel request K
 *	free		fetcher_free()
 *
 * Output:
 *	start pid=P / get K id=I / get K refused / killed pid=P / down /
 *	up pid=P starts=N / cancel K / freed / timeout in STEP
 *	cb K result=NAME status=N bytes=N [error=TEXT]
 *	BAD ...		a broken promise: a callback inside
 *			fetcher_request, twice, or after cancel; at the
 *			end, none for a call
 *	summary calls=N callbacks=N bad=N
 * With -o DIR, the body of an ok response K goes to DIR/K.body.
 * Exit status: 0, 1 when something was BAD or timed out, 64 on usage.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "fetcher.h"
#include "log.h"

#define CALLS_MAX 4096

struct call {
	struct fetch_call *c;
	int calls;
	int cancelled;
	int refused;
};

static struct call calls[CALLS_MAX + 1];
static int ncalls, ncallbacks, nbad, in_request;
static const char *outdir;
static struct fetcher *fetcher;
static struct ev_loop *loop;

static void
on_response(void *arg, const struct fetch_response *rs)
{
	int k = (int)(long)arg;
	struct call *cl = &calls[k];

	ncallbacks++;
	if (in_request) {
		printf("BAD callback of %d inside fetcher_request\n", k);
		nbad++;
	}
	if (cl->cancelled) {
		printf("BAD callback of cancelled %d\n", k);
		nbad++;
	}
	if (++cl->calls > 1) {
		printf("BAD second callback of %d\n", k);
		nbad++;
	}
	if (rs->id != fetcher_call_id(cl->c)) {
		printf("BAD callback of %d with id %lu\n", k,
		    (unsigned long)rs->id);
		nbad++;
	}
	printf("cb %d result=%s status=%lu bytes=%zu", k,
	    fetchproto_result_name(rs->result), (unsigned long)rs->status,
	    rs->body_len);
	if (rs->error != NULL)
		printf(" error=%s", rs->error);
	printf("\n");
	if (outdir != NULL && rs->result == FETCH_OK) {
		char path[4096];
		FILE *fp;

		snprintf(path, sizeof(path), "%s/%d.body", outdir, k);
		if ((fp = fopen(path, "wb")) != NULL) {
			if (rs->body_len > 0)
				fwrite(rs->body, 1, rs->body_len, fp);
			fclose(fp);
		}
	}
	fflush(stdout);
}

static int
request(const struct fetch_request *rq)
{
	int k;

	if (ncalls == CALLS_MAX) {
		fprintf(stderr, "fetcher_probe: too many requests\n");
		exit(64);
	}
	k = ++ncalls;
	in_request = 1;
	calls[k].c = fetcher_request(fetcher, rq, on_response, (void *)(long)k);
	in_request = 0;
	if (calls[k].c == NULL) {
		calls[k].refused = 1;
		printf("get %d refused\n", k);
	} else
		printf("get %d id=%lu\n", k,
		    (unsigned long)fetcher_call_id(calls[k].c));
	fflush(stdout);
	return k;
}

/* ---- running the loop until something holds ---- */

static void
tick(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
}

static int
cond_callbacks(long n)
{
	return ncallbacks >= n;
}

static int
cond_alive(long want)
{
	return fetcher_alive(fetcher) == want;
}

static int
cond_never(long n)
{
	(void)n;
	return 0;
}

/* Run until cond(arg) or secs pass: 0 when cond held. */
static int
run_until(int (*cond)(long), long arg, double secs)
{
	ev_timer t;
	ev_tstamp end;

	ev_now_update(loop);
	end = ev_now(loop) + secs;
	ev_timer_init(&t, tick, 0.02, 0.02);
	ev_timer_start(loop, &t);
	while (!cond(arg) && ev_now(loop) < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	return cond(arg) ? 0 : -1;
}

int
main(int argc, char **argv)
{
	const char *program = "build/mxtls-fetch", *ca = NULL;
	char err[256], *big = NULL;
	struct fetch_request rq;
	uint32_t timeout_ms = 10000;
	double secs = 20;
	int c, i, k, failed = 0;
	long pid;

	memset(&rq, 0, sizeof(rq));
	rq.naddrs = 1;
	rq.addrs[0].len = 4;
	inet_pton(AF_INET, "127.0.0.1", rq.addrs[0].a);
	while ((c = getopt(argc, argv, "+x:a:c:o:t:")) != -1) {
		switch (c) {
		case 'x':
			program = optarg;
			break;
		case 'a':
			if (inet_pton(AF_INET, optarg, rq.addrs[0].a) == 1)
				rq.addrs[0].len = 4;
			else if (inet_pton(AF_INET6, optarg, rq.addrs[0].a) ==
			    1)
				rq.addrs[0].len = 16;
			else
				return 64;
			break;
		case 'c':
			ca = optarg;
			break;
		case 'o':
			outdir = optarg;
			break;
		case 't':
			secs = atof(optarg);
			break;
		default:
			return 64;
		}
	}
	/* No SIGPIPE handling here: fetcher.c must not depend on it. */
	log_setup(CONFIG_LOG_LOGFMT, CONFIG_LOG_DEBUG);
	loop = ev_default_loop(EVFLAG_AUTO);
	if ((fetcher = fetcher_new(loop, program, err, sizeof(err))) == NULL) {
		printf("fetcher_new: %s\n", err);
		return 1;
	}
	printf("start pid=%ld\n", fetcher_pid(fetcher));
	fflush(stdout);

	for (i = optind; i < argc; i++) {
		char *s = argv[i], *v = strchr(s, ':');

		if (v != NULL)
			v++;
		if (strncmp(s, "get:", 4) == 0) {
			rq.url = v;
			rq.ca_bundle = (char *)(uintptr_t)ca;
			rq.max_bytes = 65536;
			rq.connect_timeout_ms = 5000;
			rq.timeout_ms = timeout_ms;
			rq.etag = rq.if_modified_since = NULL;
			request(&rq);
		} else if (strcmp(s, "bad") == 0) {
			struct fetch_request b = rq;

			b.url = "http://example.test/";
			request(&b);
		} else if (strncmp(s, "flood:", 6) == 0) {
			struct fetch_request b = rq;
			int n = atoi(v);

			/* About 5 KiB each: the queue limit is 8 MiB. */
			if (big == NULL && (big = malloc(4096)) == NULL)
				return 1;
			memset(big, 'a', 4000);
			big[0] = '/';
			big[4000] = '\0';
			b.ca_bundle = big;
			b.url = "https://mx.example.test/flood";
			b.etag = big + 3000;
			b.if_modified_since = big + 3900;
			b.max_bytes = 65536;
			b.connect_timeout_ms = b.timeout_ms = timeout_ms;
			while (n-- > 0)
				request(&b);
		} else if (strncmp(s, "timeout:", 8) == 0)
			timeout_ms = (uint32_t)atol(v);
		else if (strncmp(s, "wait:", 5) == 0) {
			if (run_until(cond_callbacks, atol(v), secs) == -1) {
				printf("timeout in %s (%d callbacks)\n", s,
				    ncallbacks);
				failed = 1;
			}
		} else if (strncmp(s, "sleep:", 6) == 0)
			run_until(cond_never, 0, atol(v) / 1000.);
		else if (strcmp(s, "kill") == 0) {
			if ((pid = fetcher_pid(fetcher)) > 0) {
				kill((pid_t)pid, SIGKILL);
				printf("killed pid=%ld\n", pid);
			} else
				printf("kill: no fetcher running\n");
		} else if (strcmp(s, "down") == 0) {
			if (run_until(cond_alive, 0, secs) == -1) {
				printf("timeout in %s\n", s);
				failed = 1;
			} else
				printf("down\n");
		} else if (strcmp(s, "up") == 0) {
			if (run_until(cond_alive, 1, secs) == -1) {
				printf("timeout in %s\n", s);
				failed = 1;
			} else
				printf("up pid=%ld starts=%lu\n",
				    fetcher_pid(fetcher),
				    fetcher_starts(fetcher));
		} else if (strncmp(s, "cancel:", 7) == 0) {
			k = atoi(v);
			if (k < 1 || k > ncalls || calls[k].c == NULL)
				return 64;
			fetcher_cancel(calls[k].c);
			calls[k].cancelled = 1;
			printf("cancel %d\n", k);
		} else if (strcmp(s, "free") == 0) {
			fetcher_free(fetcher);
			fetcher = NULL;
			printf("freed\n");
		} else {
			fprintf(stderr, "fetcher_probe: unknown step %s\n", s);
			return 64;
		}
		fflush(stdout);
	}

	/*
	 * The end, as mxtls ends: stop the fetcher, and run the loop once
	 * more to deliver "fetcher stopped" and release it.
	 */
	fetcher_free(fetcher);
	for (i = 0; i < 3; i++)
		ev_run(loop, EVRUN_NOWAIT);
	for (k = 1; k <= ncalls; k++) {
		if (calls[k].refused || calls[k].cancelled)
			continue;
		if (calls[k].calls != 1) {
			printf("BAD %d got %d callbacks\n", k, calls[k].calls);
			nbad++;
		}
	}
	free(big);
	printf("summary calls=%d callbacks=%d bad=%d\n", ncalls, ncallbacks,
	    nbad);
	return nbad > 0 || failed;
}
