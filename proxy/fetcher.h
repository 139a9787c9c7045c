/*
 * mxtls's side of the fetcher: starts and supervises the separate
 * mxtls-fetch program (docs/behaviour.md section 1; it links libcurl, which must
 * never share a process with BoringSSL), sends it requests over a
 * socketpair and hands each response back to whoever asked.  The framing
 * is policy/fetch-protocol.md (encoded and decoded by policy/fetchproto.c).
 *
 * Promises to callers:
 *   - every call's callback runs exactly once, always from the event loop
 *     (never inside fetcher_request), unless the call was cancelled;
 *   - a request is never sent twice: when the fetcher dies before
 *     answering, the call fails with FETCH_INTERNAL "fetcher died" and the
 *     caller decides whether to ask again;
 *   - while the fetcher is down (restarting with back-off, 1 s doubling to
 *     60 s), new requests fail with FETCH_INTERNAL "fetcher not running";
 *   - nothing the fetcher sends can crash the proxy: a malformed frame is
 *     logged, the fetcher is killed and restarted.
 *
 * libev's child watchers only work on the default loop, so loop must be
 * ev_default_loop().
 */
#ifndef MXTLS_FETCHER_H
#define MXTLS_FETCHER_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "fetchproto.h"

/* Requests sent and not yet answered: the fetcher's own limit. */
#define FETCHER_INFLIGHT_MAX 64
/* Encoded requests waiting to be written: beyond it, FETCH_BUSY. */
#define FETCHER_QUEUE_MAX (8u << 20)
/* A call's deadline is its timeout plus this: the fetcher hangs. */
#define FETCHER_DEADLINE_MARGIN 5.0
#define FETCHER_BACKOFF_MIN 1.0
#define FETCHER_BACKOFF_MAX 60.0
/* Up this long, the fetcher is healthy again: back-off starts over. */
#define FETCHER_HEALTHY_AFTER 60.0

struct fetcher;
struct fetch_call;

/* rs is valid only during the call. */
typedef void fetcher_cb(void *arg, const struct fetch_response *rs);

/*
 * program: the path of mxtls-fetch.  Starts it at once (fork+exec, the
 * socketpair end as fd 3, stdin /dev/null, stdout and stderr inherited,
 * every other fd closed, PATH its only environment variable).  Returns
 * NULL with err when it cannot be started (loop not the default loop,
 * socketpair/fork failing, program not executable).
 */
struct fetcher *fetcher_new(struct ev_loop *loop, const char *program,
    char *err, size_t errlen);

/*
 * Stop the fetcher (closing our end: it exits at once; and SIGTERM, in
 * case it hangs).  Pending calls
 * get a FETCH_INTERNAL "fetcher stopped" response from the loop; cancelled
 * ones are dropped.  The memory is released once those callbacks ran, so
 * run the loop once more (EVRUN_NOWAIT) after it at shut-down.  May be
 * called from a fetcher callback.  NULL is fine.
 */
void fetcher_free(struct fetcher *f);

/*
 * Send rq (its id is ignored: the fetcher picks one, see
 * fetcher_call_id()).  The callback runs exactly once, from the loop:
 * with the response, or with a synthesized FETCH_INTERNAL ("fetcher
 * died", "fetcher not running", "fetcher did not answer in time") or
 * FETCH_BUSY ("fetcher queue full") response.  Returns NULL only when out
 * of memory or when rq cannot be encoded (logged with the reason).
 */
struct fetch_call *fetcher_request(struct fetcher *f,
    const struct fetch_request *rq, fetcher_cb *cb, void *arg);

/* The callback will not run.  c must not be used afterwards. */
void fetcher_cancel(struct fetch_call *c);

/* The id sent with the request (and echoed in its response). */
uint32_t fetcher_call_id(const struct fetch_call *c);

/* 1 when the fetcher runs and can take requests. */
int fetcher_alive(const struct fetcher *f);

/* The fetcher's process id, 0 when none runs (tests, logs). */
long fetcher_pid(const struct fetcher *f);

/* How many times the fetcher was started (tests, metrics). */
unsigned long fetcher_starts(const struct fetcher *f);

#endif
