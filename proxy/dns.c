/*
 * libunbound on libev.  The context resolves in its own thread
 * (ub_ctx_async); finished lookups wake its file descriptor, which one
 * ev_io watches, and ub_process() then runs our callbacks on the loop's
 * thread.  libunbound keeps the bounded caches (messages, RRsets, keys)
 * and validates DNSSEC from the trust anchor.
 *
 * A query object lives until every libunbound lookup it started has
 * answered or been cancelled, whatever the user does.  Results wait on a
 * ready list and are delivered from a zero-delay ev_timer, so that the
 * user is never called from inside dns_lookup_* or from inside
 * ub_process() (where ub_ctx_delete must not run).  A zero timer rather
 * than an ev_idle: idle watchers starve while the loop stays busy with
 * connections.  Our own deadline per query bounds libunbound's retries.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unbound.h>
#include <unistd.h>

#include "dns.h"

enum dns_kind {
	DNS_KIND_MX,
	DNS_KIND_ADDR,
	DNS_KIND_TXT,
	DNS_KIND_TLSA,
};

/* RR types and RCODEs we ask about and read. */
enum {
	RR_A = 1,
	RR_MX = 15,
	RR_TXT = 16,
	RR_AAAA = 28,
	RR_TLSA = 52,
	RCODE_SERVFAIL = 2,
	RCODE_NXDOMAIN = 3,
	RCODE_REFUSED = 5,
};

/* A and AAAA of one address lookup run side by side: two parts. */
/* dns_part.err of a lookup our deadline cancelled (not a libunbound code) */
#define DNS_ERR_TIMEOUT 1000

#define DNS_PARTS 2

struct dns_part {
	struct dns_query *q;
	int id;		 /* libunbound's async id */
	int pending;	 /* started, not yet answered or cancelled */
	struct ub_result *res; /* kept until the user has seen it */
	int err;	 /* libunbound error, when res is NULL */
	/*
	 * trust-ad: the AD bit comes from a query of our own to the
	 * resolver (libunbound does not pass the bit on): its ID, whether
	 * its answer is due, and what the bit said.
	 */
	unsigned short ad_id;
	int ad_pending;
	int ad;
	unsigned char ad_q[DNS_NAME_MAX + 32]; /* the query, to match echoes */
	size_t ad_qlen;
};

struct dns_query {
	struct dns *d;
	enum dns_kind kind;
	int cancelled;
	int ready;   /* on the ready list */
	int started; /* parts started */
	struct dns_part part[DNS_PARTS];
	ev_timer deadline;
	dns_mx_cb *mx_cb;
	dns_addr_cb *addr_cb;
	dns_txt_cb *txt_cb;
	dns_tlsa_cb *tlsa_cb;
	void *arg;
	char name[DNS_NAME_MAX];
	char errbuf[DNS_NAME_MAX + 320]; /* res.*.error points here */
	union {
		struct dns_mx_result mx;
		struct dns_addr_result addr;
		struct dns_txt_result txt;
		struct dns_tlsa_result tlsa;
	} res;
	struct dns_query *next, *prev; /* live list; then the ready list */
};

struct dns {
	struct ev_loop *loop;
	struct ub_ctx *ub;
	enum dns_dnssec dnssec;
	double timeout;
	ev_io io;	  /* libunbound's results pipe */
	int ad_fd;	  /* trust-ad: UDP socket connected to the resolver */
	ev_io ad_io;
	unsigned short ad_next; /* IDs of our own AD queries */
	ev_timer deliver; /* zero-delay: runs the ready list */
	struct dns_query *live;	/* waiting for libunbound */
	struct dns_query *ready, *ready_tail;
	int delivering; /* a user callback may be on the stack */
	int doomed;	/* dns_free was called during delivery */
};

static void dns_destroy(struct dns *d);
static void dns_answered(void *arg, int err, struct ub_result *res);
static void dns_maybe_finish(struct dns_query *q);
static void dns_ad_io_cb(struct ev_loop *loop, ev_io *w, int revents);

/*
 * The results pipe is watched only while lookups are out: an idle
 * resolver must not keep a loop alive.
 */
static void
dns_watch(struct dns *d)
{
	if (d->live != NULL && !ev_is_active(&d->io)) {
		ev_io_start(d->loop, &d->io);
		if (d->ad_fd >= 0)
			ev_io_start(d->loop, &d->ad_io);
	} else if (d->live == NULL && ev_is_active(&d->io)) {
		ev_io_stop(d->loop, &d->io);
		if (d->ad_fd >= 0)
			ev_io_stop(d->loop, &d->ad_io);
	}
}

static void
dns_live_unlink(struct dns_query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		q->d->live = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->next = q->prev = NULL;
	dns_watch(q->d);
}

static void
dns_query_free(struct dns_query *q)
{
	int i;

	for (i = 0; i < DNS_PARTS; i++)
		if (q->part[i].res != NULL)
			ub_resolve_free(q->part[i].res);
	free(q);
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
			switch (q->kind) {
			case DNS_KIND_MX:
				q->mx_cb(q->arg, &q->res.mx);
				break;
			case DNS_KIND_TXT:
				q->txt_cb(q->arg, &q->res.txt);
				break;
			case DNS_KIND_TLSA:
				q->tlsa_cb(q->arg, &q->res.tlsa);
				break;
			case DNS_KIND_ADDR:
				q->addr_cb(q->arg, &q->res.addr);
				break;
			}
		}
		end = q == last;
		dns_query_free(q);
		if (end)
			break;
	}
	d->delivering = 0;
	if (d->doomed)
		dns_destroy(d);
}

/* Off the live list (if on it) and onto the ready list. */
static void
dns_ready(struct dns_query *q)
{
	struct dns *d = q->d;

	ev_timer_stop(d->loop, &q->deadline);
	if (q->started > 0)
		dns_live_unlink(q);
	q->ready = 1;
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

static const char *
dns_kind_name(enum dns_kind k)
{
	switch (k) {
	case DNS_KIND_MX:
		return "MX";
	case DNS_KIND_TXT:
		return "TXT";
	case DNS_KIND_TLSA:
		return "TLSA";
	case DNS_KIND_ADDR:
		break;
	}
	return "address";
}

static void
dns_fail(struct dns_query *q, enum dns_status st, enum dnssec_status sec,
    const char *why)
{
	snprintf(q->errbuf, sizeof(q->errbuf), "%s lookup for %s %s",
	    dns_kind_name(q->kind), q->name, why);
	switch (q->kind) {
	case DNS_KIND_MX:
		q->res.mx.status = st;
		q->res.mx.sec = sec;
		q->res.mx.error = q->errbuf;
		q->res.mx.nmx = 0;
		break;
	case DNS_KIND_TXT:
		q->res.txt.status = st;
		q->res.txt.sec = sec;
		q->res.txt.error = q->errbuf;
		q->res.txt.ntxt = 0;
		break;
	case DNS_KIND_TLSA:
		q->res.tlsa.status = st;
		q->res.tlsa.sec = sec;
		q->res.tlsa.error = q->errbuf;
		q->res.tlsa.nrr = 0;
		break;
	case DNS_KIND_ADDR:
		q->res.addr.status = st;
		q->res.addr.sec = sec;
		q->res.addr.error = q->errbuf;
		q->res.addr.naddr = 0;
		break;
	}
}


/*
 * What one answer says: its status and DNSSEC standing.  Returns 1 when
 * it has data of the type asked for.  *why is set for every other case.
 */
static int
dns_judge(struct dns *d, const struct dns_part *p, enum dns_status *st,
    enum dnssec_status *sec, const char **why, char *buf, size_t buflen)
{
	const struct ub_result *r = p->res;

	*why = NULL;
	if (r == NULL) {
		*st = DNS_TEMPFAIL;
		*sec = DNSSEC_FAILED;
		if (p->err == DNS_ERR_TIMEOUT)
			*why = "timed out";
		else if (p->err == UB_SYNTAX) {
			/* Not a DNS name: asking again will not change that. */
			*st = DNS_NXDOMAIN;
			*why = "is not a valid domain name";
		}
		else {
			snprintf(buf, buflen, "failed: %s", ub_strerror(p->err));
			*why = buf;
		}
		return 0;
	}
	if (r->bogus) {
		/* Never acted on: a forged or broken signed answer. */
		*st = DNS_TEMPFAIL;
		*sec = DNSSEC_BOGUS;
		snprintf(buf, buflen, "failed DNSSEC validation (bogus)%s%s",
		    r->why_bogus != NULL ? ": " : "",
		    r->why_bogus != NULL ? r->why_bogus : "");
		*why = buf;
		return 0;
	}
	if (d->dnssec == DNS_DNSSEC_VALIDATE)
		*sec = r->secure ? DNSSEC_SECURE : DNSSEC_INSECURE;
	else if (d->dnssec == DNS_DNSSEC_TRUST_AD)
		*sec = p->ad ? DNSSEC_SECURE : DNSSEC_INSECURE;
	else
		*sec = DNSSEC_INSECURE;
	if (r->havedata) {
		*st = DNS_OK;
		return 1;
	}
	switch (r->rcode) {
	case 0:
		*st = DNS_NODATA;
		*why = "has no records of that type";
		return 0;
	case RCODE_NXDOMAIN:
		*st = DNS_NXDOMAIN;
		*why = "does not exist";
		return 0;
	case RCODE_SERVFAIL:
		/* libunbound reports REFUSED and lame servers this way too. */
		*why = "failed: no usable answer from the DNS servers "
		       "(SERVFAIL)";
		break;
	case RCODE_REFUSED:
		*why = "failed: refused by the server";
		break;
	default:
		snprintf(buf, buflen, "failed: DNS error code %d", r->rcode);
		*why = buf;
		break;
	}
	*st = DNS_TEMPFAIL;
	*sec = DNSSEC_FAILED;
	return 0;
}

/*
 * A wire-format name (uncompressed, as libunbound gives RDATA) as text
 * without the final dot.  Returns the bytes it used, 0 when malformed.
 * Bytes that are not letters, digits, '-' or '_' become \DDD, so a label
 * holding a dot cannot pass as two labels.
 */
static size_t
dns_wire_name(const unsigned char *p, size_t len, char *dst, size_t dstlen)
{
	size_t at = 0, out = 0;

	for (;;) {
		size_t l, i;

		if (at >= len)
			return 0;
		l = p[at++];
		if (l == 0)
			break;
		if (l > 63 || at + l > len)
			return 0;
		if (out > 0 && out + 1 < dstlen)
			dst[out++] = '.';
		for (i = 0; i < l; i++) {
			unsigned char c = p[at + i];

			if (isalnum(c) || c == '-' || c == '_') {
				if (out + 1 >= dstlen)
					return 0;
				dst[out++] = (char)c;
			} else {
				if (out + 5 >= dstlen)
					return 0;
				out += (size_t)snprintf(dst + out, dstlen - out,
				    "\\%03u", c);
			}
		}
		at += l;
	}
	if (out >= dstlen)
		return 0;
	dst[out] = '\0';
	return at;
}

static void
dns_mx_answer(struct dns_query *q)
{
	struct dns_mx_result *r = &q->res.mx;
	const struct ub_result *u = q->part[0].res;
	struct dns_mx *all, tmp;
	enum dns_status st;
	enum dnssec_status sec;
	const char *why;
	char buf[DNS_NAME_MAX + 64];
	int i, j, n = 0, nroot = 0;

	if (!dns_judge(q->d, &q->part[0], &st, &sec, &why, buf,
	    sizeof(buf))) {
		if (st == DNS_NODATA)
			why = "has no MX records";
		dns_fail(q, st, sec, why);
		return;
	}
	for (i = 0; u->data[i] != NULL; i++)
		;
	/* All of them: the best DNS_MX_MAX are kept after sorting. */
	if ((all = calloc((size_t)i, sizeof(*all))) == NULL) {
		dns_fail(q, DNS_TEMPFAIL, DNSSEC_FAILED,
		    "failed: out of memory");
		return;
	}
	for (i = 0; u->data[i] != NULL; i++) {
		const unsigned char *rd = (const unsigned char *)u->data[i];
		size_t len = (size_t)u->len[i];

		if (len < 3)
			continue;
		if (len == 3 && rd[2] == 0) {
			/* RFC 7505's null MX: the root as the exchange. */
			nroot++;
			continue;
		}
		if (dns_wire_name(rd + 2, len - 2, all[n].host,
		    sizeof(all[n].host)) == 0)
			continue;
		all[n].pref = rd[0] << 8 | rd[1];
		n++;
	}
	r->sec = sec;
	if (n == 0) {
		free(all);
		/*
		 * The RFC 7505 record is a lone "0 ."; a set made only of
		 * root exchanges means no mail either, and falling back to
		 * the implicit MX would contradict the publisher.
		 */
		if (nroot > 0)
			dns_fail(q, DNS_NULLMX, sec,
			    "is a null MX: the domain accepts no mail");
		else
			dns_fail(q, DNS_NODATA, sec, "has no usable MX records");
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
	r->nmx = n < DNS_MX_MAX ? n : DNS_MX_MAX;
	memcpy(r->mx, all, (size_t)r->nmx * sizeof(all[0]));
	free(all);
}

/* One TXT record may come as several strings: they are joined. */
static void
dns_txt_answer(struct dns_query *q)
{
	struct dns_txt_result *r = &q->res.txt;
	const struct ub_result *u = q->part[0].res;
	enum dns_status st;
	enum dnssec_status sec;
	const char *why;
	char buf[DNS_NAME_MAX + 64];
	int i;

	if (!dns_judge(q->d, &q->part[0], &st, &sec, &why, buf,
	    sizeof(buf))) {
		if (st == DNS_NODATA)
			why = "has no TXT records";
		dns_fail(q, st, sec, why);
		return;
	}
	r->ntxt = 0;
	for (i = 0; u->data[i] != NULL && r->ntxt < DNS_TXT_MAX; i++) {
		const unsigned char *rd = (const unsigned char *)u->data[i];
		size_t len = (size_t)u->len[i], at = 0, *tl;
		char *t = r->txt[r->ntxt];

		tl = &r->len[r->ntxt];
		*tl = 0;
		while (at < len) {
			size_t sl = rd[at++], room = DNS_TXT_LEN - 1 - *tl;

			if (sl > len - at)
				sl = len - at;
			memcpy(t + *tl, rd + at, sl < room ? sl : room);
			*tl += sl < room ? sl : room;
			at += sl;
		}
		t[*tl] = '\0';
		r->ntxt++;
	}
	r->sec = sec;
	if (r->ntxt == 0) {
		dns_fail(q, DNS_NODATA, sec, "has no TXT records");
		return;
	}
	r->status = DNS_OK;
	r->error = NULL;
}

static void
dns_tlsa_answer(struct dns_query *q)
{
	struct dns_tlsa_result *r = &q->res.tlsa;
	const struct ub_result *u = q->part[0].res;
	enum dns_status st;
	enum dnssec_status sec;
	const char *why;
	char buf[DNS_NAME_MAX + 64];
	int i;

	if (!dns_judge(q->d, &q->part[0], &st, &sec, &why, buf,
	    sizeof(buf))) {
		if (st == DNS_NODATA)
			why = "has no TLSA records";
		dns_fail(q, st, sec, why);
		return;
	}
	r->nrr = 0;
	for (i = 0; u->data[i] != NULL && r->nrr < DNS_TLSA_MAX; i++) {
		r->rr[r->nrr].data = (const unsigned char *)u->data[i];
		r->rr[r->nrr].len = (size_t)u->len[i];
		r->nrr++;
	}
	r->status = DNS_OK;
	r->sec = sec;
	r->error = NULL;
}

static void
dns_addr_add(struct dns_addr_result *r, int family, const char *rd, int len)
{
	struct sockaddr_storage *ss;

	if (r->naddr >= DNS_ADDR_MAX)
		return;
	ss = &r->addr[r->naddr];
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET && len == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, rd, 4);
	} else if (family == AF_INET6 && len == 16) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, rd, 16);
	} else
		return;
	r->naddr++;
}

/*
 * IPv4 first, then IPv6.  The DNSSEC standing is the weaker of the two
 * answers: a forged AAAA must not hide behind a signed A.  One family
 * failing while the other answers still gives the addresses we have.
 */
static void
dns_addr_answer(struct dns_query *q)
{
	struct dns_addr_result *r = &q->res.addr;
	enum dns_status st[DNS_PARTS];
	enum dnssec_status sec[DNS_PARTS];
	const char *why[DNS_PARTS];
	char buf[DNS_PARTS][DNS_NAME_MAX + 64];
	int i, j, has[DNS_PARTS];

	r->naddr = 0;
	r->canon[0] = '\0';
	for (i = 0; i < DNS_PARTS; i++) {
		const struct ub_result *u = q->part[i].res;

		has[i] = dns_judge(q->d, &q->part[i], &st[i], &sec[i],
		    &why[i], buf[i], sizeof(buf[i]));
		if (!has[i])
			continue;
		for (j = 0; u->data[j] != NULL; j++)
			dns_addr_add(r, i == 0 ? AF_INET : AF_INET6,
			    u->data[j], u->len[j]);
		if (r->canon[0] == '\0' && u->canonname != NULL &&
		    strcasecmp(u->canonname, q->name) != 0) {
			size_t l = strlen(u->canonname);

			if (l > 1 && l < sizeof(r->canon)) {
				memcpy(r->canon, u->canonname, l + 1);
				if (r->canon[l - 1] == '.')
					r->canon[l - 1] = '\0';
				if (strcasecmp(r->canon, q->name) == 0)
					r->canon[0] = '\0';
			}
		}
	}
	r->sec = dnssec_status_worst(sec[0], sec[1]);
	if (r->naddr > 0) {
		r->status = DNS_OK;
		r->error = NULL;
		return;
	}
	/* Nothing: report the more telling of the two failures. */
	for (i = 0; i < DNS_PARTS; i++)
		if (st[i] == DNS_TEMPFAIL) {
			dns_fail(q, DNS_TEMPFAIL, r->sec, why[i]);
			return;
		}
	if (st[0] == DNS_NXDOMAIN && st[1] == DNS_NXDOMAIN)
		dns_fail(q, DNS_NXDOMAIN, r->sec, "does not exist");
	else
		dns_fail(q, DNS_NODATA, r->sec, "has no A or AAAA records");
}

static void
dns_finish(struct dns_query *q)
{
	switch (q->kind) {
	case DNS_KIND_MX:
		dns_mx_answer(q);
		break;
	case DNS_KIND_TXT:
		dns_txt_answer(q);
		break;
	case DNS_KIND_TLSA:
		dns_tlsa_answer(q);
		break;
	case DNS_KIND_ADDR:
		dns_addr_answer(q);
		break;
	}
	dns_ready(q);
}

/* libunbound's callback, from ub_process() on the loop's thread. */
static void
dns_answered(void *arg, int err, struct ub_result *res)
{
	struct dns_part *p = arg;
	struct dns_query *q = p->q;
	int i;

	p->pending = 0;
	p->res = res;
	p->err = err;
	if (q->cancelled) {
		for (i = 0; i < q->started; i++)
			if (q->part[i].pending)
				return;
		dns_live_unlink(q);
		dns_query_free(q);
		return;
	}
	dns_maybe_finish(q);
}

/* Every part answered (and its AD query, under trust-ad): deliver. */
static void
dns_maybe_finish(struct dns_query *q)
{
	int i;

	for (i = 0; i < q->started; i++)
		if (q->part[i].pending || q->part[i].ad_pending)
			return;
	dns_finish(q);
}

/*
 * trust-ad: a query of our own for the same name and type, RD and AD set
 * (RFC 6840 5.7: a validating resolver then says in the AD bit whether
 * the answer was validated).  Only the header of the answer is read.
 */
static void
dns_ad_send(struct dns *d, struct dns_part *p, const char *name, int type)
{
	unsigned char *b = p->ad_q;
	size_t at = 12;
	const char *l = strcmp(name, ".") == 0 ? "" : name; /* the root */

	p->ad_id = d->ad_next++;
	memset(b, 0, 12);
	b[0] = (unsigned char)(p->ad_id >> 8);
	b[1] = (unsigned char)p->ad_id;
	b[2] = 0x01; /* RD */
	b[3] = 0x20; /* AD */
	b[5] = 1;    /* one question */
	while (*l != '\0') {
		size_t n = strcspn(l, ".");

		if (n == 0 || n > 63 || at + n + 6 > sizeof(p->ad_q))
			return; /* not sent: no AD, the answer counts insecure */
		b[at++] = (unsigned char)n;
		memcpy(b + at, l, n);
		at += n;
		l += n;
		if (*l == '.')
			l++;
	}
	b[at++] = 0;
	b[at++] = (unsigned char)(type >> 8);
	b[at++] = (unsigned char)type;
	b[at++] = 0;
	b[at++] = 1; /* IN */
	p->ad_qlen = at;
	if (send(d->ad_fd, b, at, 0) == (ssize_t)at)
		p->ad_pending = 1;
}

/* An answer to one of our AD queries: its ID and question must match. */
static void
dns_ad_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dns *d = w->data;
	unsigned char b[4096];
	struct dns_query *q;
	ssize_t n;
	int i;

	(void)loop;
	(void)revents;
	while ((n = recv(d->ad_fd, b, sizeof(b), MSG_DONTWAIT)) >= 12) {
		unsigned short id = (unsigned short)(b[0] << 8 | b[1]);

		if (!(b[2] & 0x80))
			continue; /* not a response */
		for (q = d->live; q != NULL; q = q->next)
			for (i = 0; i < q->started; i++) {
				struct dns_part *p = &q->part[i];

				if (!p->ad_pending || p->ad_id != id ||
				    (size_t)n < p->ad_qlen ||
				    memcmp(b + 4, p->ad_q + 4, 2) != 0 ||
				    strncasecmp((char *)b + 12,
				    (char *)p->ad_q + 12, p->ad_qlen - 12) != 0)
					continue;
				p->ad = (b[3] & 0x20) != 0 && (b[3] & 0x0f) == 0;
				p->ad_pending = 0;
				if (!q->cancelled)
					dns_maybe_finish(q);
				return;
			}
	}
}

static void
dns_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dns *d = w->data;

	(void)loop;
	(void)revents;
	/* An error here is a broken pipe to the resolver thread: the
	 * queries' deadlines report it. */
	(void)ub_process(d->ub);
}

/* Our bound on libunbound's own retries: the query fails as timed out. */
static void
dns_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dns_query *q = w->data;
	int i;

	(void)loop;
	(void)revents;
	for (i = 0; i < q->started; i++)
		if (q->part[i].pending && ub_cancel(q->d->ub, q->part[i].id) == 0) {
			q->part[i].pending = 0;
			q->part[i].err = DNS_ERR_TIMEOUT;
		}
	for (i = 0; i < q->started; i++) {
		q->part[i].ad_pending = 0; /* no answer: no AD */
		if (q->part[i].pending)
			return; /* its answer is on the way: take that */
	}
	dns_finish(q);
}

static struct dns_query *
dns_query_new(struct dns *d, enum dns_kind kind, const char *name)
{
	struct dns_query *q;
	int i;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->d = d;
	q->kind = kind;
	for (i = 0; i < DNS_PARTS; i++)
		q->part[i].q = q;
	ev_init(&q->deadline, dns_deadline_cb);
	q->deadline.data = q;
	/* Truncated only when the name is rejected below anyway. */
	snprintf(q->name, sizeof(q->name), "%s", name);
	return q;
}

/* Names libunbound must not see: "" would ask about the root zone. */
static int
dns_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len < DNS_NAME_MAX - 16;
}

/*
 * Start the lookups of q (one type, or A and AAAA).  A lookup that cannot
 * even start fails the query through the ready list, never synchronously.
 */
static struct dns_query *
dns_start(struct dns_query *q, const int *types, int ntypes, const char *name)
{
	struct dns *d = q->d;
	int i, rc;

	if (!dns_name_ok(name)) {
		dns_fail(q, DNS_NXDOMAIN, DNSSEC_FAILED,
		    "is not a valid domain name");
		dns_ready(q);
		return q;
	}
	q->next = d->live;
	if (d->live != NULL)
		d->live->prev = q;
	d->live = q;
	dns_watch(d);
	for (i = 0; i < ntypes; i++) {
		q->part[i].pending = 1;
		q->started = i + 1;
		if (d->ad_fd >= 0)
			dns_ad_send(d, &q->part[i], name, types[i]);
		rc = ub_resolve_async(d->ub, name, types[i], 1, &q->part[i],
		    dns_answered, &q->part[i].id);
		if (rc != 0) {
			q->part[i].pending = 0;
			q->part[i].err = rc;
		}
	}
	for (i = 0; i < q->started; i++)
		if (q->part[i].pending || q->part[i].ad_pending) {
			/*
			 * Two tries' worth, the second twice as long, as a
			 * stub resolver would wait.
			 */
			/* From now, not from when the loop last woke. */
			ev_now_update(d->loop);
			ev_timer_set(&q->deadline, 3 * d->timeout, 0.);
			ev_timer_start(d->loop, &q->deadline);
			return q;
		}
	dns_finish(q);
	return q;
}

/* Every lookup returns NULL only when out of memory: no callback then. */
struct dns_query *
dns_lookup_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg)
{
	static const int types[] = { RR_MX };
	struct dns_query *q;

	if ((q = dns_query_new(d, DNS_KIND_MX, domain)) == NULL)
		return NULL;
	q->mx_cb = cb;
	q->arg = arg;
	return dns_start(q, types, 1, domain);
}

struct dns_query *
dns_lookup_txt(struct dns *d, const char *name, dns_txt_cb *cb, void *arg)
{
	static const int types[] = { RR_TXT };
	struct dns_query *q;

	if ((q = dns_query_new(d, DNS_KIND_TXT, name)) == NULL)
		return NULL;
	q->txt_cb = cb;
	q->arg = arg;
	return dns_start(q, types, 1, name);
}

struct dns_query *
dns_lookup_addr(struct dns *d, const char *host, dns_addr_cb *cb, void *arg)
{
	static const int types[] = { RR_A, RR_AAAA };
	struct dns_query *q;
	unsigned char a[16];

	if ((q = dns_query_new(d, DNS_KIND_ADDR, host)) == NULL)
		return NULL;
	q->addr_cb = cb;
	q->arg = arg;
	/* An address literal is its own answer (no DNS, so not secure). */
	if (inet_pton(AF_INET, host, a) == 1 ||
	    inet_pton(AF_INET6, host, a) == 1) {
		struct dns_addr_result *r = &q->res.addr;
		int v4 = strchr(host, ':') == NULL;

		dns_addr_add(r, v4 ? AF_INET : AF_INET6, (const char *)a,
		    v4 ? 4 : 16);
		r->status = DNS_OK;
		r->sec = DNSSEC_INSECURE;
		dns_ready(q);
		return q;
	}
	return dns_start(q, types, 2, host);
}

struct dns_query *
dns_lookup_tlsa(struct dns *d, const char *host, int port, dns_tlsa_cb *cb,
    void *arg)
{
	static const int types[] = { RR_TLSA };
	struct dns_query *q;
	char name[DNS_NAME_MAX + 16];

	snprintf(name, sizeof(name), "_%d._tcp.%s", port, host);
	if ((q = dns_query_new(d, DNS_KIND_TLSA, name)) == NULL)
		return NULL;
	q->tlsa_cb = cb;
	q->arg = arg;
	return dns_start(q, types, 1, name);
}

void
dns_cancel(struct dns_query *q)
{
	int i, waiting = 0;

	if (q == NULL || q->cancelled)
		return;
	q->cancelled = 1;
	/* On the ready list: the delivery loop frees it. */
	if (q->ready)
		return;
	ev_timer_stop(q->d->loop, &q->deadline);
	for (i = 0; i < q->started; i++)
		if (q->part[i].pending) {
			if (ub_cancel(q->d->ub, q->part[i].id) == 0)
				q->part[i].pending = 0;
			else
				waiting = 1; /* dns_answered frees it */
		}
	if (!waiting) {
		dns_live_unlink(q);
		dns_query_free(q);
	}
}

/*
 * The trust anchor's DS or DNSKEY lines, read now (before privileges are
 * dropped, and so that `mxtls -t` reports a bad file).
 */
static int
dns_load_anchor(struct dns *d, const char *file, char *err, size_t errlen)
{
	FILE *f;
	char line[4096];
	int n = 0, lineno = 0;

	if ((f = fopen(file, "r")) == NULL) {
		snprintf(err, errlen, "dns: trust_anchor %s: %s", file,
		    strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s = line + strspn(line, " \t");

		lineno++;
		s[strcspn(s, "\r\n")] = '\0';
		if (*s == '\0' || *s == ';' || *s == '#')
			continue;
		if (strstr(s, " DS ") == NULL && strstr(s, "\tDS\t") == NULL &&
		    strstr(s, " DNSKEY ") == NULL &&
		    strstr(s, "\tDNSKEY\t") == NULL)
			continue;
		if (ub_ctx_add_ta(d->ub, s) != 0) {
			snprintf(err, errlen, "dns: trust_anchor %s line %d: "
			    "not a DS or DNSKEY record", file, lineno);
			fclose(f);
			return -1;
		}
		n++;
	}
	fclose(f);
	if (n == 0) {
		snprintf(err, errlen, "dns: trust_anchor %s: no DS or DNSKEY "
		    "record in it", file);
		return -1;
	}
	return 0;
}

/*
 * trust-ad: the socket for our AD queries, to the first server (the
 * config allows only loopback ones for trust-ad).
 */
static int
dns_ad_open(struct dns *d, const char *host, int port, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) ==
	    1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in6);
	} else {
		snprintf(err, errlen, "dns: server \"%s\" is not an address",
		    host);
		return -1;
	}
	if ((d->ad_fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0 ||
	    connect(d->ad_fd, (struct sockaddr *)&ss, len) < 0) {
		snprintf(err, errlen, "dns: trust-ad socket to %s: %s", host,
		    strerror(errno));
		return -1;
	}
	ev_io_init(&d->ad_io, dns_ad_io_cb, d->ad_fd, EV_READ);
	d->ad_io.data = d;
	return 0;
}

/* "ADDR:PORT,[V6]:PORT" (the config's form) to libunbound's forwarders. */
static int
dns_set_servers(struct dns *d, const char *servers, char *err, size_t errlen)
{
	const char *p = servers;

	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		char item[128], addr[160];
		char *port = NULL, *host = item;
		int rc;

		if (len == 0 || len >= sizeof(item)) {
			snprintf(err, errlen, "dns: servers \"%s\": bad entry",
			    servers);
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if (item[0] == '[') {
			char *end = strchr(item, ']');

			if (end == NULL) {
				snprintf(err, errlen, "dns: servers \"%s\": "
				    "bad entry", servers);
				return -1;
			}
			*end = '\0';
			host = item + 1;
			if (end[1] == ':')
				port = end + 2;
		} else if ((port = strchr(item, ':')) != NULL &&
		    strchr(port + 1, ':') == NULL)
			*port++ = '\0';
		else
			port = NULL;
		snprintf(addr, sizeof(addr), "%s%s%s", host,
		    port != NULL ? "@" : "", port != NULL ? port : "");
		if (d->dnssec == DNS_DNSSEC_TRUST_AD && d->ad_fd < 0 &&
		    dns_ad_open(d, host, port != NULL ? atoi(port) : 53, err,
		    errlen) < 0)
			return -1;
		if ((rc = ub_ctx_set_fwd(d->ub, addr)) != 0) {
			snprintf(err, errlen, "dns: servers \"%s\": \"%s\" is "
			    "not ADDRESS[:PORT] (%s)", servers, item,
			    ub_strerror(rc));
			return -1;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static void
dns_warm_done(void *arg, int err, struct ub_result *res)
{
	(void)arg;
	(void)err;
	if (res != NULL)
		ub_resolve_free(res);
}

static int
dns_opt(struct dns *d, const char *opt, const char *val, char *err,
    size_t errlen)
{
	int rc;

	if ((rc = ub_ctx_set_option(d->ub, opt, val)) != 0) {
		snprintf(err, errlen, "dns: libunbound option %s %s: %s", opt,
		    val, ub_strerror(rc));
		return -1;
	}
	return 0;
}

struct dns *
dns_new(struct ev_loop *loop, const struct dns_options *o, char *err,
    size_t errlen)
{
	struct dns *d;
	const char *servers = o->servers;
	int rc, fd;

	/* Written so that NaN fails too; no libm in the link line. */
	if (!(o->timeout > 0 && o->timeout <= 3600)) {
		snprintf(err, errlen, "dns: timeout %g: must be in (0, 3600]",
		    o->timeout);
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "dns: out of memory");
		return NULL;
	}
	d->loop = loop;
	d->ad_fd = -1;
	d->dnssec = o->dnssec;
	d->timeout = o->timeout;
	ev_init(&d->deliver, dns_deliver_cb);
	d->deliver.data = d;
	if ((d->ub = ub_ctx_create()) == NULL) {
		snprintf(err, errlen, "dns: cannot create the resolver");
		free(d);
		return NULL;
	}
	/*
	 * The test world and local resolvers live on loopback; bounded
	 * caches; a server marked down is probed again rather than avoided
	 * for minutes; records keep the server's order (equal MX
	 * preferences are tried in DNS order); val-log-level 2 fills in
	 * why an answer is bogus.
	 */
	if (dns_opt(d, "do-not-query-localhost:", "no", err, errlen) < 0 ||
	    dns_opt(d, "msg-cache-size:", "4m", err, errlen) < 0 ||
	    dns_opt(d, "rrset-cache-size:", "8m", err, errlen) < 0 ||
	    dns_opt(d, "key-cache-size:", "4m", err, errlen) < 0 ||
	    dns_opt(d, "neg-cache-size:", "1m", err, errlen) < 0 ||
	    dns_opt(d, "infra-keep-probing:", "yes", err, errlen) < 0 ||
	    dns_opt(d, "rrset-roundrobin:", "no", err, errlen) < 0 ||
	    dns_opt(d, "val-log-level:", "2", err, errlen) < 0 ||
	    dns_opt(d, "verbosity:", "0", err, errlen) < 0)
		goto fail;

	if (o->dnssec != DNS_DNSSEC_VALIDATE &&
	    dns_opt(d, "module-config:", "iterator", err, errlen) < 0)
		goto fail;
	if (o->dnssec == DNS_DNSSEC_VALIDATE &&
	    dns_load_anchor(d, o->trust_anchor != NULL ? o->trust_anchor :
	    "/usr/share/dns/root.key", err, errlen) < 0)
		goto fail;
	if (servers != NULL && strcmp(servers, "recursive") == 0)
		; /* from the root hints compiled into libunbound */
	else if (servers != NULL && servers[0] != '\0') {
		if (dns_set_servers(d, servers, err, errlen) < 0)
			goto fail;
	} else {
		/* No servers named: the system's, and /etc/hosts first. */
		if ((rc = ub_ctx_resolvconf(d->ub, NULL)) != 0) {
			snprintf(err, errlen, "dns: /etc/resolv.conf: %s",
			    ub_strerror(rc));
			goto fail;
		}
		(void)ub_ctx_hosts(d->ub, NULL);
	}
	if ((rc = ub_ctx_async(d->ub, 1)) != 0) {
		snprintf(err, errlen, "dns: %s", ub_strerror(rc));
		goto fail;
	}
	/*
	 * libunbound answers test. (RFC 6761) itself with NXDOMAIN; a lab
	 * or staging resolver may serve it, so mxtls asks the servers.
	 * Last: adding a zone fixes the configuration.
	 */
	if ((rc = ub_ctx_zone_add(d->ub, "test.", "transparent")) != 0) {
		snprintf(err, errlen, "dns: %s", ub_strerror(rc));
		goto fail;
	}
	if ((fd = ub_fd(d->ub)) < 0) {
		snprintf(err, errlen, "dns: no result descriptor");
		goto fail;
	}
	ev_io_init(&d->io, dns_io_cb, fd, EV_READ);
	d->io.data = d;
	/*
	 * Start the resolver thread now with a name libunbound answers
	 * itself: its descriptors exist from the start, not from the first
	 * message (a steady count is how leaks are told apart).
	 */
	(void)ub_resolve_async(d->ub, "localhost.", RR_A, 1, NULL,
	    dns_warm_done, NULL);
	return d;
fail:
	ub_ctx_delete(d->ub);
	if (d->ad_fd >= 0)
		close(d->ad_fd);
	free(d);
	return NULL;
}

/* The real free; no user callback may be on the stack. */
static void
dns_destroy(struct dns *d)
{
	struct dns_query *q;

	ev_io_stop(d->loop, &d->io);
	ev_timer_stop(d->loop, &d->deliver);
	if (d->ad_fd >= 0) {
		ev_io_stop(d->loop, &d->ad_io);
		close(d->ad_fd);
	}
	/* Cancels what is in flight: no callback of ours runs after this. */
	ub_ctx_delete(d->ub);
	while ((q = d->live) != NULL) {
		d->live = q->next;
		ev_timer_stop(d->loop, &q->deadline);
		dns_query_free(q);
	}
	while ((q = d->ready) != NULL) {
		d->ready = q->next;
		dns_query_free(q);
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
