/*
 * c-ares on libev.  c-ares tells us which sockets it wants watched
 * (ARES_OPT_SOCK_STATE_CB): we keep one ev_io per socket and one ev_timer
 * armed from ares_timeout(), and hand readiness back through
 * ares_process_fd().
 *
 * A query object lives until c-ares is done with it, whatever the user
 * does: c-ares calls its completion callback exactly once (with
 * ARES_EDESTRUCTION from ares_destroy at the latest), so that callback is
 * the one place that may free a query still known to c-ares.  Completed
 * results wait on a ready list and are delivered from a zero-delay
 * ev_timer, because c-ares may complete a query synchronously inside
 * ares_query()/ares_getaddrinfo() and the user must never be called from
 * inside dns_lookup_*.  A zero timer rather than an ev_idle: idle
 * watchers starve while the loop stays busy with connections.
 */
#include <ares.h>
#include <arpa/nameser.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

enum dns_kind {
	DNS_KIND_MX,
	DNS_KIND_ADDR,
	DNS_KIND_TXT,
};

struct dns_query {
	struct dns *d;
	enum dns_kind kind;
	/*
	 * Owned by c-ares's callback until that runs, then by the ready
	 * list; either owner frees it and skips a cancelled one.
	 */
	int cancelled;
	dns_mx_cb *mx_cb;
	dns_addr_cb *addr_cb;
	dns_txt_cb *txt_cb;
	void *arg;
	char name[DNS_NAME_MAX];
	char errbuf[DNS_NAME_MAX + 256]; /* res.*.error points here */
	union {
		struct dns_mx_result mx;
		struct dns_addr_result addr;
		struct dns_txt_result txt;
	} res;
	struct dns_query *next; /* ready list */
};

struct dns_sock {
	ev_io io;
	struct dns *d;
	ares_socket_t fd;
	struct dns_sock *next;
};

struct dns {
	struct ev_loop *loop;
	ares_channel ch;
	int ch_ok;
	ev_timer timer;   /* c-ares's own timeouts */
	ev_timer deliver; /* zero-delay: runs the ready list */
	struct dns_sock *socks;
	struct dns_query *ready, *ready_tail;
	int delivering; /* a user callback may be on the stack */
	int doomed;     /* dns_free was called during delivery */
};

static void dns_arm_timer(struct dns *d);
static void dns_destroy(struct dns *d);

static struct dns_sock *
dns_sock_find(struct dns *d, ares_socket_t fd, struct dns_sock ***prevp)
{
	struct dns_sock **pp, *s;

	for (pp = &d->socks; (s = *pp) != NULL; pp = &s->next)
		if (s->fd == fd)
			break;
	if (prevp != NULL)
		*prevp = pp;
	return s;
}

static void
dns_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dns_sock *s = w->data;
	struct dns *d = s->d;
	ares_socket_t fd = s->fd;

	(void)loop;
	/* c-ares may close this socket, which frees s: touch only d after. */
	ares_process_fd(d->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_arm_timer(d);
}

static void
dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp, *s;
	int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	s = dns_sock_find(d, fd, &pp);
	if (events == 0) {
		/* c-ares calls this before it closes the fd. */
		if (s != NULL) {
			ev_io_stop(d->loop, &s->io);
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			/*
			 * Nothing to report this through: the query on this
			 * socket will time out through the timer instead.
			 */
			return;
		}
		s->d = d;
		s->fd = fd;
		ev_io_init(&s->io, dns_io_cb, fd, events);
		s->io.data = s;
		s->next = d->socks;
		d->socks = s;
	} else {
		ev_io_stop(d->loop, &s->io);
		ev_io_set(&s->io, fd, events);
	}
	ev_io_start(d->loop, &s->io);
}

static void
dns_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dns *d = w->data;

	(void)loop;
	(void)revents;
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_arm_timer(d);
}

/* Follow c-ares's next deadline; no pending query, no timer. */
static void
dns_arm_timer(struct dns *d)
{
	struct timeval tv, *tvp;

	ev_timer_stop(d->loop, &d->timer);
	if ((tvp = ares_timeout(d->ch, NULL, &tv)) == NULL)
		return;
	ev_timer_set(&d->timer, tvp->tv_sec + tvp->tv_usec / 1e6, 0.);
	ev_timer_start(d->loop, &d->timer);
}

static void
dns_deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dns *d = w->data;
	struct dns_query *q, *last = d->ready_tail;
	int end;

	(void)loop;
	(void)revents;
	/*
	 * Only what was ready when we started: results completed by lookups
	 * made from these callbacks wait for the next loop iteration (the
	 * timer is restarted when they are queued).
	 */
	d->delivering = 1;
	while ((q = d->ready) != NULL) {
		d->ready = q->next;
		if (d->ready == NULL)
			d->ready_tail = NULL;
		if (!q->cancelled && !d->doomed) {
			if (q->kind == DNS_KIND_MX)
				q->mx_cb(q->arg, &q->res.mx);
			else if (q->kind == DNS_KIND_TXT)
				q->txt_cb(q->arg, &q->res.txt);
			else
				q->addr_cb(q->arg, &q->res.addr);
		}
		end = q == last;
		free(q);
		if (end)
			break;
	}
	d->delivering = 0;
	if (d->doomed)
		dns_destroy(d);
}

static void
dns_ready(struct dns_query *q)
{
	struct dns *d = q->d;

	q->next = NULL;
	if (d->ready_tail != NULL)
		d->ready_tail->next = q;
	else
		d->ready = q;
	d->ready_tail = q;
	if (!ev_is_active(&d->deliver)) {
		ev_timer_set(&d->deliver, 0., 0.);
		ev_timer_start(d->loop, &d->deliver);
	}
}

/* Map a c-ares error status to ours, with the words for the log. */
static enum dns_status
dns_status_of(int status, const char **why)
{
	switch (status) {
	case ARES_ENOTFOUND:
		*why = "does not exist";
		return DNS_NXDOMAIN;
	case ARES_EBADNAME:
		/* Not a DNS name: asking again will not change that. */
		*why = "is not a valid domain name";
		return DNS_NXDOMAIN;
	case ARES_ETIMEOUT:
		*why = "timed out";
		return DNS_TEMPFAIL;
	case ARES_ESERVFAIL:
		*why = "failed: server failure (SERVFAIL)";
		return DNS_TEMPFAIL;
	case ARES_EREFUSED:
		*why = "failed: refused by the server";
		return DNS_TEMPFAIL;
	case ARES_ECONNREFUSED:
		/*
		 * c-ares 1.18 also reports SERVFAIL, REFUSED and NOTIMP
		 * answers this way once every server has been tried.
		 */
		*why = "failed: no server gave a usable answer "
		       "(unreachable, refused or SERVFAIL)";
		return DNS_TEMPFAIL;
	case ARES_ENOMEM:
		*why = "failed: out of memory";
		return DNS_TEMPFAIL;
	default:
		*why = NULL; /* the caller quotes ares_strerror() */
		return DNS_TEMPFAIL;
	}
}

static void
dns_fail(struct dns_query *q, enum dns_status st, const char *why)
{
	const char *what = q->kind == DNS_KIND_MX ? "MX" :
	    q->kind == DNS_KIND_TXT ? "TXT" : "address";

	snprintf(q->errbuf, sizeof(q->errbuf), "%s lookup for %s %s", what,
	    q->name, why);
	if (q->kind == DNS_KIND_MX) {
		q->res.mx.status = st;
		q->res.mx.error = q->errbuf;
		q->res.mx.nmx = 0;
	} else if (q->kind == DNS_KIND_TXT) {
		q->res.txt.status = st;
		q->res.txt.error = q->errbuf;
		q->res.txt.ntxt = 0;
	} else {
		q->res.addr.status = st;
		q->res.addr.error = q->errbuf;
		q->res.addr.naddr = 0;
	}
}

static void
dns_fail_ares(struct dns_query *q, int status)
{
	const char *why = NULL;
	char buf[128];
	enum dns_status st;

	if (status == ARES_ENODATA) {
		dns_fail(q, DNS_NODATA, q->kind == DNS_KIND_MX ?
		    "has no MX records" : q->kind == DNS_KIND_TXT ?
		    "has no TXT records" : "has no A or AAAA records");
		return;
	}
	st = dns_status_of(status, &why);
	if (why == NULL) {
		snprintf(buf, sizeof(buf), "failed: %s", ares_strerror(status));
		why = buf;
	}
	dns_fail(q, st, why);
}

/* RFC 7505's null MX is the root name as the exchange. */
static int
dns_is_root(const char *host)
{
	return host[0] == '\0' || strcmp(host, ".") == 0;
}

static void
dns_mx_parse(struct dns_query *q, const unsigned char *abuf, int alen)
{
	struct dns_mx_result *r = &q->res.mx;
	struct ares_mx_reply *list = NULL, *m;
	struct dns_mx *all = NULL, tmp;
	size_t n = 0, nroot = 0, i, j;
	int status;

	/* ENODATA here: an answer without MX records (a CNAME alone, say). */
	if ((status = ares_parse_mx_reply(abuf, alen, &list)) != ARES_SUCCESS) {
		dns_fail_ares(q, status);
		return;
	}
	for (m = list; m != NULL; m = m->next)
		n++;
	if (n == 0) {
		ares_free_data(list);
		dns_fail(q, DNS_NODATA, "has no MX records");
		return;
	}
	if ((all = calloc(n, sizeof(*all))) == NULL) {
		ares_free_data(list);
		dns_fail(q, DNS_TEMPFAIL, "failed: out of memory");
		return;
	}
	/* Keep the root entries out: there is nothing to connect to. */
	n = 0;
	for (m = list; m != NULL; m = m->next) {
		if (dns_is_root(m->host)) {
			nroot++;
			continue;
		}
		if (strlen(m->host) >= sizeof(all[n].host))
			continue; /* cannot happen for a valid DNS name */
		all[n].pref = m->priority;
		strcpy(all[n].host, m->host);
		n++;
	}
	ares_free_data(list);
	if (n == 0 && nroot > 0) {
		/*
		 * The RFC 7505 record is a lone "0 ."; a set made only of
		 * root exchanges means no mail either, and falling back to
		 * the implicit MX would contradict the publisher.
		 */
		free(all);
		dns_fail(q, DNS_NULLMX, "is a null MX: the domain accepts no mail");
		return;
	}
	if (n == 0) {
		free(all);
		dns_fail(q, DNS_NODATA, "has no usable MX records");
		return;
	}
	/* Insertion sort: stable, so equal preferences keep DNS order. */
	for (i = 1; i < n; i++) {
		tmp = all[i];
		for (j = i; j > 0 && all[j - 1].pref > tmp.pref; j--)
			all[j] = all[j - 1];
		all[j] = tmp;
	}
	r->status = DNS_OK;
	r->error = NULL;
	r->nmx = n < DNS_MX_MAX ? (int)n : DNS_MX_MAX;
	memcpy(r->mx, all, (size_t)r->nmx * sizeof(all[0]));
	free(all);
}

/* c-ares's callback: runs exactly once per query, maybe synchronously. */
static void
dns_mx_done(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_query *q = arg;

	(void)timeouts;
	if (q->cancelled || status == ARES_EDESTRUCTION) {
		free(q);
		return;
	}
	if (status == ARES_SUCCESS)
		dns_mx_parse(q, abuf, alen);
	else
		dns_fail_ares(q, status);
	dns_ready(q);
}

/* One TXT record may come as several strings: they are joined. */
static void
dns_txt_done(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_query *q = arg;
	struct dns_txt_result *r = &q->res.txt;
	struct ares_txt_ext *txt = NULL, *t;
	int i = -1;

	(void)timeouts;
	if (q->cancelled || status == ARES_EDESTRUCTION) {
		free(q);
		return;
	}
	if (status == ARES_SUCCESS)
		status = ares_parse_txt_reply_ext(abuf, alen, &txt);
	if (status != ARES_SUCCESS) {
		dns_fail_ares(q, status);
		dns_ready(q);
		return;
	}
	r->ntxt = 0;
	for (t = txt; t != NULL; t = t->next) {
		size_t room;

		if (t->record_start) {
			if (r->ntxt == DNS_TXT_MAX)
				break;
			i = r->ntxt++;
			r->len[i] = 0;
		}
		if (i < 0)
			continue;
		room = DNS_TXT_LEN - 1 - r->len[i];
		if (t->length < room)
			room = t->length;
		memcpy(r->txt[i] + r->len[i], t->txt, room);
		r->len[i] += room;
		r->txt[i][r->len[i]] = '\0';
	}
	ares_free_data(txt);
	if (r->ntxt == 0)
		dns_fail(q, DNS_NODATA, "has no TXT records");
	else {
		r->status = DNS_OK;
		r->error = NULL;
	}
	dns_ready(q);
}

static void
dns_addr_add(struct dns_addr_result *r, const struct sockaddr *sa)
{
	size_t len;

	if (r->naddr >= DNS_ADDR_MAX)
		return;
	len = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
					 sizeof(struct sockaddr_in6);
	memset(&r->addr[r->naddr], 0, sizeof(r->addr[r->naddr]));
	memcpy(&r->addr[r->naddr], sa, len);
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&r->addr[r->naddr])->sin_port = 0;
	else
		((struct sockaddr_in6 *)&r->addr[r->naddr])->sin6_port = 0;
	r->naddr++;
}

static void
dns_addr_done(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct dns_query *q = arg;
	struct dns_addr_result *r = &q->res.addr;
	struct ares_addrinfo_node *n;
	int pass;

	(void)timeouts;
	if (q->cancelled || status == ARES_EDESTRUCTION) {
		if (ai != NULL)
			ares_freeaddrinfo(ai);
		free(q);
		return;
	}
	if (status != ARES_SUCCESS) {
		dns_fail_ares(q, status);
	} else {
		/* IPv4 first, then IPv6, each in the order of the answer. */
		r->naddr = 0;
		for (pass = 0; pass < 2; pass++) {
			for (n = ai != NULL ? ai->nodes : NULL; n != NULL;
			     n = n->ai_next) {
				if (n->ai_addr == NULL ||
				    n->ai_family != (pass == 0 ? AF_INET : AF_INET6))
					continue;
				dns_addr_add(r, n->ai_addr);
			}
		}
		if (r->naddr == 0) {
			dns_fail(q, DNS_NODATA, "has no A or AAAA records");
		} else {
			r->status = DNS_OK;
			r->error = NULL;
		}
	}
	if (ai != NULL)
		ares_freeaddrinfo(ai);
	dns_ready(q);
}

static struct dns_query *
dns_query_new(struct dns *d, enum dns_kind kind, const char *name)
{
	struct dns_query *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->d = d;
	q->kind = kind;
	/* Truncated only when the name is rejected below anyway. */
	snprintf(q->name, sizeof(q->name), "%s", name);
	return q;
}

/* Names c-ares must not see: "" would ask about the root zone. */
static int
dns_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len < DNS_NAME_MAX;
}

/* Both lookups return NULL only when out of memory: no callback then. */
struct dns_query *
dns_lookup_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_query *q;

	if ((q = dns_query_new(d, DNS_KIND_MX, domain)) == NULL)
		return NULL;
	q->mx_cb = cb;
	q->arg = arg;
	if (!dns_name_ok(domain)) {
		dns_fail(q, DNS_NXDOMAIN, "is not a valid domain name");
		dns_ready(q);
		return q;
	}
	/* Plain query, no search list: a mail domain is always absolute. */
	ares_query(d->ch, domain, ns_c_in, ns_t_mx, dns_mx_done, q);
	dns_arm_timer(d);
	return q;
}

struct dns_query *
dns_lookup_txt(struct dns *d, const char *name, dns_txt_cb *cb, void *arg)
{
	struct dns_query *q;

	if ((q = dns_query_new(d, DNS_KIND_TXT, name)) == NULL)
		return NULL;
	q->txt_cb = cb;
	q->arg = arg;
	if (!dns_name_ok(name)) {
		dns_fail(q, DNS_NXDOMAIN, "is not a valid domain name");
		dns_ready(q);
		return q;
	}
	ares_query(d->ch, name, ns_c_in, ns_t_txt, dns_txt_done, q);
	dns_arm_timer(d);
	return q;
}

struct dns_query *
dns_lookup_addr(struct dns *d, const char *host, dns_addr_cb *cb, void *arg)
{
	struct dns_query *q;
	struct ares_addrinfo_hints hints;

	if ((q = dns_query_new(d, DNS_KIND_ADDR, host)) == NULL)
		return NULL;
	q->addr_cb = cb;
	q->arg = arg;
	if (!dns_name_ok(host)) {
		dns_fail(q, DNS_NXDOMAIN, "is not a valid domain name");
		dns_ready(q);
		return q;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	/*
	 * NOSORT: RFC 6724 sorting connect()s a probe socket per address;
	 * we order IPv4 first ourselves.
	 */
	hints.ai_flags = ARES_AI_NOSORT;
	ares_getaddrinfo(d->ch, host, NULL, &hints, dns_addr_done, q);
	dns_arm_timer(d);
	return q;
}

void
dns_cancel(struct dns_query *q)
{
	/*
	 * Whoever owns the query (c-ares's callback or the ready list)
	 * frees it and skips the user's callback.
	 */
	if (q != NULL)
		q->cancelled = 1;
}

struct dns *
dns_new(struct ev_loop *loop, const char *servers, double timeout, char *err,
    size_t errlen)
{
	struct dns *d;
	struct ares_options o;
	int optmask, rc;
	char *lookups = NULL;

	/* Written so that NaN fails too; no libm in the link line. */
	if (!(timeout > 0 && timeout <= 3600)) {
		snprintf(err, errlen, "dns: timeout %g: must be in (0, 3600]",
		    timeout);
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "dns: out of memory");
		return NULL;
	}
	d->loop = loop;
	ev_init(&d->timer, dns_timer_cb);
	d->timer.data = d;
	ev_init(&d->deliver, dns_deliver_cb);
	d->deliver.data = d;

	/* Reference counted, so every dns_new/dns_free pair may call it. */
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares: %s", ares_strerror(rc));
		free(d);
		return NULL;
	}
	memset(&o, 0, sizeof(o));
	optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_DOMAINS;
	o.sock_state_cb = dns_sock_state_cb;
	o.sock_state_cb_data = d;
	/* Per try; c-ares doubles it per round over the servers. */
	o.timeout = (int)(timeout * 1000 + 0.5);
	if (o.timeout < 1)
		o.timeout = 1;
	o.tries = 2;
	/*
	 * No search list (like Postfix without res_dnsrch): an MX host or a
	 * mail domain is absolute, and a wildcard under a local search
	 * domain must not answer for it.
	 */
	o.domains = NULL;
	o.ndomains = 0;
	if (servers != NULL && servers[0] != '\0') {
		/* Named servers mean DNS only: /etc/hosts must not answer. */
		lookups = strdup("b");
		if (lookups == NULL) {
			snprintf(err, errlen, "dns: out of memory");
			ares_library_cleanup();
			free(d);
			return NULL;
		}
		o.lookups = lookups;
		optmask |= ARES_OPT_LOOKUPS;
	}
	rc = ares_init_options(&d->ch, &o, optmask);
	free(lookups);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares init: %s", ares_strerror(rc));
		ares_library_cleanup();
		free(d);
		return NULL;
	}
	d->ch_ok = 1;
	if (servers != NULL && servers[0] != '\0' &&
	    (rc = ares_set_servers_ports_csv(d->ch, servers)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: servers \"%s\": %s", servers,
		    ares_strerror(rc));
		dns_destroy(d);
		return NULL;
	}
	return d;
}

/* The real free; no user callback may be on the stack. */
static void
dns_destroy(struct dns *d)
{
	struct dns_query *q;
	struct dns_sock *s;

	if (d->ch_ok) {
		/*
		 * Calls dns_*_done with ARES_EDESTRUCTION for each pending
		 * query (they free themselves) and the socket callback for
		 * each open socket.
		 */
		ares_destroy(d->ch);
		ares_library_cleanup();
	}
	ev_timer_stop(d->loop, &d->timer);
	ev_timer_stop(d->loop, &d->deliver);
	while ((s = d->socks) != NULL) {
		ev_io_stop(d->loop, &s->io);
		d->socks = s->next;
		free(s);
	}
	while ((q = d->ready) != NULL) {
		d->ready = q->next;
		free(q);
	}
	free(d);
}

void
dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	if (d->delivering) {
		/* Called from a user callback: dns_deliver_cb finishes. */
		d->doomed = 1;
		return;
	}
	dns_destroy(d);
}
