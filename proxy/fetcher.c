/*
 * The supervisor of mxtls-fetch (see fetcher.h for what callers get).
 *
 * Why this file touches fds, processes and libev itself, when conn.c is
 * otherwise the only such module: the fetcher is a child process speaking
 * a framed protocol over a socketpair, nothing like an SMTP connection;
 * like admin.c it is its own small edge module.
 *
 * The child: RUNNING (fd open, io watcher on), DYING (we saw it go wrong
 * and closed our end; waiting for its exit status), DOWN (reaped; the
 * restart timer runs).  Only the ev_child callback moves a child from
 * DYING or RUNNING to DOWN, so a pid we signal has never been reaped yet
 * and cannot have been reused.
 *
 * A call: QUEUED (encoded, waiting for a window slot: at most
 * FETCHER_INFLIGHT_MAX are sent and unanswered, the fetcher's own limit,
 * so it never has to answer "busy"), SENT (its frame went to the write
 * buffer; answered by id), DONE (a synthesized answer waiting to be
 * delivered from the loop by the zero-delay "defer" timer), DELIVERING
 * (its callback runs).  A call cancelled while SENT stays on the sent
 * list without a callback until its answer comes, because it still holds
 * one of the fetcher's slots.
 *
 * Callbacks may do anything, fetcher_free() included.  So: every libev
 * callback here counts itself in f->depth, f is destroyed only when the
 * depth is back to zero and nothing is left to deliver, and code that
 * runs a callback re-checks f->gen (bumped whenever the child is lost)
 * before it touches the child's buffers again.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fetcher.h"
#include "log.h"

#define FETCHER_FD 3 /* where mxtls-fetch expects its socket */
#define RBUF_INITIAL 65536
#define RBUF_MAX (FETCHPROTO_FRAME_MAX + FETCHPROTO_LEN_SIZE)
#define READS_PER_EVENT 16 /* then let the rest of the loop run */
#define WBUF_KEEP 262144   /* free a larger drained write buffer */
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* An intrusive circular list: removal needs no head. */
struct link {
	struct link *prev, *next;
};

enum call_state { CALL_QUEUED, CALL_SENT, CALL_DONE, CALL_DELIVERING };

struct fetch_call {
	struct link link; /* first: a link is its call */
	struct fetcher *f;
	enum call_state state;
	uint32_t id;
	fetcher_cb *cb; /* NULL: cancelled while SENT */
	void *arg;
	unsigned char *frame; /* QUEUED: the encoded request */
	size_t framelen;
	ev_tstamp timeout;  /* the request's own, seconds */
	ev_tstamp deadline; /* SENT: the answer is due by then */
	enum fetch_result result; /* DONE: the synthesized answer */
	const char *error;
};

enum fetcher_state { FS_RUNNING, FS_DYING, FS_DOWN };

struct fetcher {
	struct ev_loop *loop;
	char *program;
	char *path_env; /* "PATH=...": the child's whole environment */
	enum fetcher_state state;
	pid_t pid; /* 0 once reaped */
	int fd;
	unsigned gen;
	ev_io io;
	ev_child child;
	ev_timer restart;
	ev_timer deadline;
	ev_timer defer;
	ev_tstamp started;
	ev_tstamp backoff;
	unsigned long starts;
	struct link queued, sent, done;
	int nsent;
	size_t queued_bytes; /* QUEUED frames + unwritten wbuf bytes */
	unsigned char *wbuf;
	size_t wlen, woff, wcap;
	unsigned char *rbuf;
	size_t rlen, rcap;
	uint32_t next_id;
	int depth;
	int freed;
};

/* ---- lists ---- */

static void
list_init(struct link *h)
{
	h->prev = h->next = h;
}

static int
list_empty(const struct link *h)
{
	return h->next == h;
}

static void
list_append(struct link *h, struct link *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}

static void
list_unlink(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l;
}

/* Move everything of from to the empty list to. */
static void
list_move(struct link *from, struct link *to)
{
	list_init(to);
	if (list_empty(from))
		return;
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	list_init(from);
}

#define CALL_OF(l) ((struct fetch_call *)(void *)(l))

/* ---- small helpers ---- */

static void fetcher_lost(struct fetcher *f, const char *event,
    const char *why);
static void fetcher_flush(struct fetcher *f);

static const char *
fmt_ulong(char *buf, size_t len, unsigned long v)
{
	snprintf(buf, len, "%lu", v);
	return buf;
}

/*
 * A call ends without an answer from the fetcher: queue the synthesized
 * answer for the loop (callbacks never run from inside our API calls).
 */
static void
call_finish(struct fetch_call *c, enum fetch_result result, const char *why)
{
	struct fetcher *f = c->f;

	list_unlink(&c->link);
	if (c->state == CALL_QUEUED) {
		f->queued_bytes -= c->framelen;
		free(c->frame);
		c->frame = NULL;
	} else if (c->state == CALL_SENT)
		f->nsent--;
	if (c->cb == NULL) {
		free(c);
		return;
	}
	c->state = CALL_DONE;
	c->result = result;
	c->error = why;
	list_append(&f->done, &c->link);
	if (!ev_is_active(&f->defer)) {
		ev_timer_set(&f->defer, 0., 0.);
		ev_timer_start(f->loop, &f->defer);
	}
}

static void
fail_all(struct fetcher *f, const char *why)
{
	while (!list_empty(&f->queued))
		call_finish(CALL_OF(f->queued.next), FETCH_INTERNAL, why);
	while (!list_empty(&f->sent))
		call_finish(CALL_OF(f->sent.next), FETCH_INTERNAL, why);
}

static void
fetcher_destroy(struct fetcher *f)
{
	ev_timer_stop(f->loop, &f->defer);
	free(f->program);
	free(f->path_env);
	free(f);
}

/* The end of every libev callback of ours: f may be gone afterwards. */
static void
fetcher_leave(struct fetcher *f)
{
	if (--f->depth == 0 && f->freed && list_empty(&f->done))
		fetcher_destroy(f);
}

/* ---- starting the child ---- */

/*
 * In the child, between fork and exec: async-signal-safe calls only (no
 * malloc, no stdio: their locks may be held by a thread of the parent
 * that does not exist here).  Errors go back through errfd as an errno.
 */
static void __attribute__((noreturn))
child_exec(int sock, int devnull, int errfd, int maxfd, char *const argv[],
    char *const envp[])
{
	struct sigaction sa;
	sigset_t none;
	int s, n, e, i, report = errfd;

	/* Above every target fd first, so no dup2 below clobbers a source. */
	if ((s = fcntl(sock, F_DUPFD, 10)) == -1 ||
	    (n = fcntl(devnull, F_DUPFD, 10)) == -1 ||
	    (e = fcntl(errfd, F_DUPFD_CLOEXEC, 10)) == -1)
		goto fail;
	report = e;
	if (dup2(n, 0) == -1 || dup2(s, FETCHER_FD) == -1 ||
	    dup3(e, FETCHER_FD + 1, O_CLOEXEC) == -1)
		goto fail;
	report = FETCHER_FD + 1;
	/* Nothing of the proxy leaks in: no listener, no client, no key. */
	if (close_range(FETCHER_FD + 2, ~0U, 0) == -1)
		for (i = FETCHER_FD + 2; i <= maxfd; i++)
			(void)close(i);
	/*
	 * The signal mask and ignored signals survive exec (mxtls ignores
	 * SIGPIPE; libev blocks the signals it reads through a signalfd):
	 * give the fetcher a clean slate, so that SIGTERM works on it.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (i = 1; i < NSIG; i++)
		(void)sigaction(i, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	execve(argv[0], argv, envp);
fail:
	i = errno;
	(void)!write(report, &i, sizeof(i));
	_exit(127);
}

static void fetcher_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void fetcher_child_cb(struct ev_loop *loop, ev_child *w, int revents);

/* Start the child.  -1 with err when it could not be started. */
static int
fetcher_spawn(struct fetcher *f, char *err, size_t errlen)
{
	char *argv[2], *envp[2];
	char b[32];
	int sv[2], ep[2], devnull, e, maxfd;
	long om;
	ssize_t n;
	pid_t pid;

	argv[0] = f->program;
	argv[1] = NULL;
	envp[0] = f->path_env;
	envp[1] = NULL;
	om = sysconf(_SC_OPEN_MAX);
	maxfd = om <= 0 || om > (1L << 20) ? (1 << 20) : (int)om;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	/* Our end only: the two ends are separate open file descriptions. */
	if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) == -1 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "socket or /dev/null: %s",
		    strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pipe2(ep, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		close(devnull);
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(ep[0]);
		close(ep[1]);
		close(devnull);
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0)
		child_exec(sv[1], devnull, ep[1], maxfd, argv, envp);
	close(sv[1]);
	close(devnull);
	close(ep[1]);
	/* The pipe closes at exec (CLOEXEC) or carries exec's errno. */
	while ((n = read(ep[0], &e, sizeof(e))) == -1 && errno == EINTR)
		;
	close(ep[0]);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		snprintf(err, errlen, "%s: %s", f->program, strerror(e));
		close(sv[0]);
		return -1;
	}
	f->pid = pid;
	f->fd = sv[0];
	f->state = FS_RUNNING;
	f->started = ev_now(f->loop);
	f->starts++;
	f->gen++;
	ev_io_init(&f->io, fetcher_io_cb, f->fd, EV_READ);
	f->io.data = f;
	ev_io_start(f->loop, &f->io);
	ev_child_init(&f->child, fetcher_child_cb, pid, 0);
	f->child.data = f;
	ev_child_start(f->loop, &f->child);
	log_info(0, "fetcher-started", "pid", fmt_ulong(b, sizeof(b),
	    (unsigned long)pid), "program", f->program, NULL);
	return 0;
}

static void
fetcher_restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fetcher *f = w->data;
	char err[256], b[32];

	(void)loop;
	(void)revents;
	f->depth++;
	if (fetcher_spawn(f, err, sizeof(err)) == -1) {
		snprintf(b, sizeof(b), "%gs", f->backoff);
		log_error(0, "fetcher-start-failed", "error", err,
		    "restart_in", b, NULL);
		ev_timer_set(&f->restart, f->backoff, 0.);
		ev_timer_start(f->loop, &f->restart);
		f->backoff = f->backoff * 2 > FETCHER_BACKOFF_MAX ?
		    FETCHER_BACKOFF_MAX : f->backoff * 2;
	}
	fetcher_leave(f);
}

/* ---- losing the child ---- */

/* Close our end and forget what was in flight.  The child stays DYING. */
static void
fetcher_close(struct fetcher *f)
{
	if (f->fd == -1)
		return;
	ev_io_stop(f->loop, &f->io);
	close(f->fd);
	f->fd = -1;
	f->gen++;
	free(f->rbuf);
	f->rbuf = NULL;
	f->rlen = f->rcap = 0;
	f->queued_bytes -= f->wlen - f->woff;
	free(f->wbuf);
	f->wbuf = NULL;
	f->wlen = f->woff = f->wcap = 0;
	ev_timer_stop(f->loop, &f->deadline);
}

/*
 * The child is of no more use (it closed its end, sent garbage, hangs):
 * make sure it is gone, fail what it owed us.  Its exit status comes to
 * fetcher_child_cb, which schedules the restart.
 */
static void
fetcher_lost(struct fetcher *f, const char *event, const char *why)
{
	char b[32];

	if (event != NULL)
		log_warn(0, event, "pid", f->pid > 0 ? fmt_ulong(b, sizeof(b),
		    (unsigned long)f->pid) : NULL, "error", why, NULL);
	if (f->pid > 0) {
		/*
		 * Not reaped yet (only fetcher_child_cb reaps): still ours.
		 * Killed before our end closes, so that it cannot see the
		 * end of its input and exit as if all were well.
		 */
		kill(f->pid, SIGKILL);
		f->state = FS_DYING;
	}
	fetcher_close(f);
	fail_all(f, "fetcher died");
}

/* ---- reading answers ---- */

/* Deliver one decoded answer.  The callback may do anything. */
static void
fetcher_answer(struct fetcher *f, const struct fetch_response *rs)
{
	struct link *l;
	struct fetch_call *c = NULL;
	char b[32];

	for (l = f->sent.next; l != &f->sent; l = l->next)
		if (CALL_OF(l)->id == rs->id) {
			c = CALL_OF(l);
			break;
		}
	if (c == NULL) {
		/* Every id it sends back is ours: a bug, but harmless. */
		log_warn(0, "fetcher-unknown-id", "id", fmt_ulong(b, sizeof(b),
		    rs->id), NULL);
		return;
	}
	list_unlink(&c->link);
	f->nsent--;
	if (c->cb != NULL) {
		c->state = CALL_DELIVERING;
		c->cb(c->arg, rs);
	}
	free(c);
}

static void fetcher_pump(struct fetcher *f);

/*
 * Take the whole frames out of rbuf.  Returns -1 when the child was lost
 * or f stopped meanwhile (a callback may have called fetcher_free()):
 * then rbuf is gone and must not be touched.
 */
static int
fetcher_frames(struct fetcher *f)
{
	struct fetch_response rs;
	char err[256];
	unsigned gen = f->gen;
	size_t off = 0, flen;
	int r;

	while ((r = fetchproto_frame(f->rbuf + off, f->rlen - off, &flen)) ==
	    1) {
		if (fetchproto_decode_response(f->rbuf + off, flen, &rs, err,
		    sizeof(err)) == -1) {
			fetcher_lost(f, "fetcher-protocol-error", err);
			return -1;
		}
		off += flen;
		fetcher_answer(f, &rs);
		fetchproto_response_free(&rs);
		if (f->freed || f->gen != gen)
			return -1;
	}
	if (r == -1) {
		fetcher_lost(f, "fetcher-protocol-error",
		    "a frame length out of range: the stream cannot be framed");
		return -1;
	}
	if (off > 0) {
		memmove(f->rbuf, f->rbuf + off, f->rlen - off);
		f->rlen -= off;
	}
	/* Answers free window slots. */
	fetcher_pump(f);
	return f->freed || f->gen != gen ? -1 : 0;
}

/* Room for more input: enough for the frame begun, up to RBUF_MAX. */
static int
fetcher_rbuf_room(struct fetcher *f)
{
	const unsigned char *p = f->rbuf;
	size_t need = f->rcap * 2, cap;
	unsigned char *nb;

	if (f->rbuf == NULL)
		need = RBUF_INITIAL;
	else if (f->rlen >= FETCHPROTO_LEN_SIZE) {
		/* fetchproto_frame() vetted the length: at most FRAME_MAX. */
		size_t want = FETCHPROTO_LEN_SIZE + ((size_t)p[0] << 24 |
		    (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]);

		if (want > need)
			need = want;
	}
	cap = need > RBUF_MAX ? RBUF_MAX : need;
	if (cap <= f->rcap)
		return -1;
	if ((nb = realloc(f->rbuf, cap)) == NULL)
		return -1;
	f->rbuf = nb;
	f->rcap = cap;
	return 0;
}

/* Read what the child sent.  -1 when the child was lost or f stopped. */
static int
fetcher_read(struct fetcher *f)
{
	ssize_t n;
	int i;

	for (i = 0; i < READS_PER_EVENT; i++) {
		if (f->rlen == f->rcap && fetcher_rbuf_room(f) == -1) {
			/* A frame cannot outgrow RBUF_MAX: out of memory. */
			fetcher_lost(f, "fetcher-read-error", "out of memory");
			return -1;
		}
		n = read(f->fd, f->rbuf + f->rlen, f->rcap - f->rlen);
		if (n > 0) {
			f->rlen += (size_t)n;
			if (fetcher_frames(f) == -1)
				return -1;
		} else if (n == 0) {
			fetcher_lost(f, f->rlen > 0 ? "fetcher-protocol-error" :
			    NULL, "the stream ended inside a frame");
			return -1;
		} else if (errno == EINTR)
			continue;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		else {
			fetcher_lost(f, "fetcher-read-error", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* ---- writing requests ---- */

static void
fetcher_update_io(struct fetcher *f)
{
	int want = EV_READ | (f->woff < f->wlen ? EV_WRITE : 0);

	if ((f->io.events & (EV_READ | EV_WRITE)) == want)
		return;
	ev_io_stop(f->loop, &f->io);
	ev_io_set(&f->io, f->fd, want);
	ev_io_start(f->loop, &f->io);
}

static void
fetcher_flush(struct fetcher *f)
{
	ssize_t n;

	while (f->woff < f->wlen) {
		n = send(f->fd, f->wbuf + f->woff, f->wlen - f->woff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			f->woff += (size_t)n;
			f->queued_bytes -= (size_t)n;
		} else if (n == -1 && errno == EINTR)
			continue;
		else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else {
			fetcher_lost(f, "fetcher-write-error",
			    n == 0 ? "short write" : strerror(errno));
			return;
		}
	}
	if (f->woff == f->wlen) {
		f->woff = f->wlen = 0;
		if (f->wcap > WBUF_KEEP) {
			free(f->wbuf);
			f->wbuf = NULL;
			f->wcap = 0;
		}
	}
	fetcher_update_io(f);
}

static void
fetcher_arm_deadline(struct fetcher *f)
{
	struct link *l;
	ev_tstamp first = 0;

	if (ev_is_active(&f->deadline))
		return;
	for (l = f->sent.next; l != &f->sent; l = l->next)
		if (first == 0 || CALL_OF(l)->deadline < first)
			first = CALL_OF(l)->deadline;
	if (first == 0)
		return;
	first -= ev_now(f->loop);
	ev_timer_set(&f->deadline, first > 0 ? first : 0., 0.);
	ev_timer_start(f->loop, &f->deadline);
}

/* Move queued requests into free window slots, and write. */
static void
fetcher_pump(struct fetcher *f)
{
	struct fetch_call *c;
	unsigned char *nb;
	size_t need;

	if (f->state != FS_RUNNING || f->fd == -1)
		return;
	while (f->nsent < FETCHER_INFLIGHT_MAX && !list_empty(&f->queued)) {
		c = CALL_OF(f->queued.next);
		if (f->woff > 0) {
			memmove(f->wbuf, f->wbuf + f->woff, f->wlen - f->woff);
			f->wlen -= f->woff;
			f->woff = 0;
		}
		if ((need = f->wlen + c->framelen) > f->wcap) {
			if ((nb = realloc(f->wbuf, need)) == NULL) {
				call_finish(c, FETCH_INTERNAL, "out of memory");
				continue;
			}
			f->wbuf = nb;
			f->wcap = need;
		}
		memcpy(f->wbuf + f->wlen, c->frame, c->framelen);
		f->wlen += c->framelen;
		free(c->frame);
		c->frame = NULL;
		list_unlink(&c->link);
		c->state = CALL_SENT;
		c->deadline = ev_now(f->loop) + c->timeout +
		    FETCHER_DEADLINE_MARGIN;
		list_append(&f->sent, &c->link);
		f->nsent++;
	}
	fetcher_flush(f);
	if (f->fd != -1)
		fetcher_arm_deadline(f);
}

/* ---- libev callbacks ---- */

static void
fetcher_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fetcher *f = w->data;

	(void)loop;
	f->depth++;
	/* After a loss (or a stop) the io watcher and buffers are gone. */
	if (!((revents & EV_READ) && fetcher_read(f) == -1) &&
	    (revents & EV_WRITE))
		fetcher_flush(f);
	fetcher_leave(f);
}

static void
fetcher_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct fetcher *f = w->data;
	int st = w->rstatus;
	char b[32], code[32], r[32];
	ev_tstamp delay;

	(void)revents;
	f->depth++;
	ev_child_stop(loop, w);
	f->pid = 0;
	/* Answers it wrote before it went still count. */
	if (f->fd != -1 && fetcher_read(f) == 0)
		fetcher_lost(f, NULL, NULL);
	fail_all(f, "fetcher died");
	if (f->freed) {
		fetcher_leave(f);
		return;
	}
	if (ev_now(loop) - f->started >= FETCHER_HEALTHY_AFTER)
		f->backoff = FETCHER_BACKOFF_MIN;
	delay = f->backoff;
	f->backoff = delay * 2 > FETCHER_BACKOFF_MAX ? FETCHER_BACKOFF_MAX :
	    delay * 2;
	f->state = FS_DOWN;
	snprintf(r, sizeof(r), "%gs", delay);
	log_warn(0, "fetcher-exited", "pid", fmt_ulong(b, sizeof(b),
	    (unsigned long)w->rpid), WIFSIGNALED(st) ? "signal" : "exit",
	    fmt_ulong(code, sizeof(code), (unsigned long)(WIFSIGNALED(st) ?
	    WTERMSIG(st) : WEXITSTATUS(st))), "restart_in", r, NULL);
	ev_timer_set(&f->restart, delay, 0.);
	ev_timer_start(loop, &f->restart);
	fetcher_leave(f);
}

/* A call is overdue: the fetcher promised an answer by then, so it hangs. */
static void
fetcher_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fetcher *f = w->data;
	struct link *l, *next;
	int late = 0;
	char b[32];

	(void)revents;
	f->depth++;
	for (l = f->sent.next; l != &f->sent; l = next) {
		next = l->next;
		if (CALL_OF(l)->deadline <= ev_now(loop)) {
			log_warn(0, "fetcher-call-overdue", "id", fmt_ulong(b,
			    sizeof(b), CALL_OF(l)->id), NULL);
			call_finish(CALL_OF(l), FETCH_INTERNAL,
			    "fetcher did not answer in time");
			late = 1;
		}
	}
	if (late)
		fetcher_lost(f, "fetcher-hung", "a request was not answered "
		    "within its timeout");
	else
		fetcher_arm_deadline(f);
	fetcher_leave(f);
}

/* Deliver the synthesized answers (those present now: no busy loop). */
static void
fetcher_defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fetcher *f = w->data;
	struct fetch_response rs;
	struct link batch;
	struct fetch_call *c;

	(void)loop;
	(void)revents;
	f->depth++;
	list_move(&f->done, &batch);
	while (!list_empty(&batch)) {
		c = CALL_OF(batch.next);
		list_unlink(&c->link);
		memset(&rs, 0, sizeof(rs));
		rs.id = c->id;
		rs.result = c->result;
		rs.error = (char *)(uintptr_t)c->error;
		c->state = CALL_DELIVERING;
		c->cb(c->arg, &rs);
		free(c);
	}
	if (!list_empty(&f->done) && !ev_is_active(&f->defer)) {
		ev_timer_set(&f->defer, 0., 0.);
		ev_timer_start(f->loop, &f->defer);
	}
	fetcher_leave(f);
}

/* ---- the API ---- */

struct fetcher *
fetcher_new(struct ev_loop *loop, const char *program, char *err,
    size_t errlen)
{
	struct fetcher *f;
	const char *path = getenv("PATH");

	if (!ev_is_default_loop(loop)) {
		/* libev delivers child exits to the default loop only. */
		snprintf(err, errlen, "the fetcher needs the default loop");
		return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->program = strdup(program)) == NULL ||
	    asprintf(&f->path_env, "PATH=%s", path != NULL && *path != '\0' ?
	    path : DEFAULT_PATH) == -1) {
		if (f != NULL) {
			free(f->program);
			free(f);
		}
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->loop = loop;
	f->fd = -1;
	f->state = FS_DOWN;
	f->backoff = FETCHER_BACKOFF_MIN;
	list_init(&f->queued);
	list_init(&f->sent);
	list_init(&f->done);
	ev_timer_init(&f->restart, fetcher_restart_cb, 0., 0.);
	f->restart.data = f;
	ev_timer_init(&f->deadline, fetcher_deadline_cb, 0., 0.);
	f->deadline.data = f;
	ev_timer_init(&f->defer, fetcher_defer_cb, 0., 0.);
	f->defer.data = f;
	if (fetcher_spawn(f, err, errlen) == -1) {
		free(f->program);
		free(f->path_env);
		free(f);
		return NULL;
	}
	return f;
}

void
fetcher_free(struct fetcher *f)
{
	char b[32];

	if (f == NULL || f->freed)
		return;
	f->freed = 1;
	log_info(0, "fetcher-stopped", "pid", f->pid > 0 ? fmt_ulong(b,
	    sizeof(b), (unsigned long)f->pid) : NULL, NULL);
	/*
	 * Our end closed, a sound fetcher exits at once; SIGTERM is for one
	 * that hangs, which nobody would watch any more.  Not reaped yet, so
	 * the pid is still its own; libev reaps it as any child later.
	 */
	fetcher_close(f);
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		ev_child_stop(f->loop, &f->child);
	}
	ev_timer_stop(f->loop, &f->restart);
	f->state = FS_DOWN;
	fail_all(f, "fetcher stopped");
	if (f->depth == 0 && list_empty(&f->done))
		fetcher_destroy(f);
}

struct fetch_call *
fetcher_request(struct fetcher *f, const struct fetch_request *rq,
    fetcher_cb *cb, void *arg)
{
	struct fetch_request copy = *rq;
	struct fetch_call *c;
	char err[256];

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_error(0, "fetcher-request-failed", "url", rq->url,
		    "error", "out of memory", NULL);
		return NULL;
	}
	if (++f->next_id == 0)
		f->next_id = 1;
	copy.id = f->next_id;
	if (fetchproto_encode_request(&copy, &c->frame, &c->framelen, err,
	    sizeof(err)) == -1) {
		log_warn(0, "fetcher-request-refused", "url", rq->url,
		    "error", err, NULL);
		free(c);
		return NULL;
	}
	c->f = f;
	c->id = copy.id;
	c->cb = cb;
	c->arg = arg;
	c->timeout = rq->timeout_ms / 1000.;
	c->state = CALL_QUEUED;
	list_init(&c->link);
	list_append(&f->queued, &c->link);
	f->queued_bytes += c->framelen;
	if (f->freed)
		call_finish(c, FETCH_INTERNAL, "fetcher stopped");
	else if (f->state != FS_RUNNING)
		call_finish(c, FETCH_INTERNAL, "fetcher not running");
	else if (f->queued_bytes > FETCHER_QUEUE_MAX)
		call_finish(c, FETCH_BUSY, "fetcher queue full");
	else
		fetcher_pump(f);
	return c;
}

void
fetcher_cancel(struct fetch_call *c)
{
	if (c == NULL)
		return;
	switch (c->state) {
	case CALL_QUEUED:
		c->cb = NULL;
		call_finish(c, FETCH_INTERNAL, NULL); /* frees c */
		break;
	case CALL_SENT:
		/* Still holds a slot of the fetcher: dropped when answered. */
		c->cb = NULL;
		break;
	case CALL_DONE:
		list_unlink(&c->link);
		free(c);
		break;
	case CALL_DELIVERING:
		break; /* inside its own callback: it is freed after it */
	}
}

uint32_t
fetcher_call_id(const struct fetch_call *c)
{
	return c->id;
}

int
fetcher_alive(const struct fetcher *f)
{
	return f != NULL && !f->freed && f->state == FS_RUNNING;
}

long
fetcher_pid(const struct fetcher *f)
{
	return f != NULL && f->state == FS_RUNNING ? (long)f->pid : 0;
}

unsigned long
fetcher_starts(const struct fetcher *f)
{
	return f->starts;
}
