#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "upcache.h"

struct upcache_entry {
	struct upcache_entry *next;
	struct upcache *uc;
	char key[UPCACHE_KEY_LEN + 1];
	struct conn c;
	struct upcache_info info;
	int quitting; /* on uc->quitting: QUIT sent, the 221 awaited */
};

void
upcache_init(struct upcache *uc, struct ev_loop *loop)
{
	uc->loop = loop;
	uc->head = NULL;
	uc->quitting = NULL;
	uc->dead = NULL;
	uc->n = 0;
}

/* Entries closed from their own connection's callback are freed later. */
static void
upcache_reap(struct upcache *uc)
{
	struct upcache_entry *e;

	while ((e = uc->dead) != NULL) {
		uc->dead = e->next;
		free(e);
	}
}

static void
upcache_unlink(struct upcache_entry **head, struct upcache_entry *e)
{
	struct upcache_entry **pp;

	for (pp = head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
}

/* Close e's connection now and free e when conn.c no longer needs it. */
static void
upcache_free_entry(struct upcache *uc, struct upcache_entry *e,
    int in_callback)
{
	conn_free(&e->c);
	if (in_callback) {
		/* conn.c still looks at e->c when the callback returns. */
		e->next = uc->dead;
		uc->dead = e;
	} else
		free(e);
}

/*
 * QUIT on a connection in a clean state (RFC 5321 4.1.1.10), so that the
 * server ends the session in order rather than logging a lost
 * connection; the 221 is awaited UPCACHE_QUIT_WAIT seconds at most.
 */
static void
upcache_start_quit(struct upcache *uc, struct upcache_entry *e)
{
	e->quitting = 1;
	e->next = uc->quitting;
	uc->quitting = e;
	conn_write(&e->c, "QUIT\r\n", 6);
	conn_set_reading(&e->c, 1);
	conn_deadline(&e->c, UPCACHE_QUIT_WAIT);
}

/* quit: the connection is idle in a clean state and may say QUIT. */
static void
upcache_drop(struct upcache *uc, struct upcache_entry *e, const char *why,
    int in_callback, int quit)
{
	upcache_unlink(&uc->head, e);
	uc->n--;
	metrics_add("mxtls_upstream_cached", "", -1);
	log_debug(0, "upstream-uncached", "mx", e->info.host, "addr",
	    e->info.addr, "reason", why, NULL);
	if (quit)
		upcache_start_quit(uc, e);
	else
		upcache_free_entry(uc, e, in_callback);
}

/*
 * While idle nothing may arrive: input is a server talking out of turn
 * (a 421 before it hangs up), EOF or an error is a server that left, and
 * the deadline is the end of the idle time (QUIT then).  Each ends the
 * entry.  After QUIT, anything but our own bytes leaving ends it.
 */
static void
upcache_event(struct conn *c, enum conn_event ev, void *arg)
{
	struct upcache_entry *e = arg;

	(void)c;
	if (e->quitting) {
		if (ev == CONN_EV_DRAINED)
			return;
		upcache_unlink(&e->uc->quitting, e);
		upcache_free_entry(e->uc, e, 1);
		return;
	}
	upcache_drop(e->uc, e, ev == CONN_EV_TIMEOUT ? "idle" :
	    ev == CONN_EV_INPUT ? "server spoke while idle" :
	    ev == CONN_EV_EOF ? "server closed" : "error", 1,
	    ev == CONN_EV_TIMEOUT);
}

void
upcache_quit(struct upcache *uc, struct conn *c)
{
	struct upcache_entry *e;

	upcache_reap(uc);
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		conn_free(c);
		return;
	}
	e->uc = uc;
	conn_move(&e->c, c, upcache_event, e);
	upcache_start_quit(uc, e);
}

void
upcache_put(struct upcache *uc, const char *key, struct conn *c,
    const struct upcache_info *info, double idle, int max)
{
	struct upcache_entry *e, **pp;

	upcache_reap(uc);
	if (max <= 0 || idle <= 0 || (e = calloc(1, sizeof(*e))) == NULL) {
		conn_free(c);
		return;
	}
	while (uc->n >= max) {
		for (pp = &uc->head; (*pp)->next != NULL; pp = &(*pp)->next)
			;
		upcache_drop(uc, *pp, "cache full", 0, 1);
	}
	e->uc = uc;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->info = *info;
	conn_move(&e->c, c, upcache_event, e);
	conn_set_reading(&e->c, 1);
	conn_deadline(&e->c, idle);
	e->next = uc->head;
	uc->head = e;
	uc->n++;
	metrics_add("mxtls_upstream_cached", "", 1);
	log_debug(0, "upstream-cached", "mx", info->host, "addr", info->addr,
	    NULL);
}

int
upcache_take(struct upcache *uc, const char *key, double reuse_time,
    struct conn *dst, conn_cb *cb, void *arg, struct upcache_info *info)
{
	struct upcache_entry *e, *next;

	upcache_reap(uc);
	for (e = uc->head; e != NULL; e = next) {
		next = e->next;
		if (strcmp(e->key, key) != 0)
			continue;
		if (clock_mono() - e->info.opened > reuse_time) {
			upcache_drop(uc, e, "reuse time over", 0, 1);
			continue;
		}
		*info = e->info;
		conn_move(dst, &e->c, cb, arg);
		upcache_drop(uc, e, "taken", 0, 0);
		return 1;
	}
	return 0;
}

void
upcache_flush(struct upcache *uc)
{
	while (uc->head != NULL)
		upcache_drop(uc, uc->head, "flushed", 0, 1);
	upcache_reap(uc);
}

void
upcache_free(struct upcache *uc)
{
	struct upcache_entry *e;

	upcache_flush(uc);
	while ((e = uc->quitting) != NULL) {
		uc->quitting = e->next;
		upcache_free_entry(uc, e, 0);
	}
}
