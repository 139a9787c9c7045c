/*
 * proxy/dns.h without libunbound, for test_session: a lookup is recorded
 * and waits until the test answers it (fake_dns_answer), as a real one
 * waits for the network; its callback runs then, never from inside
 * dns_lookup_*.  A handle is freed when answered or cancelled, so a
 * session that cancels a finished query trips AddressSanitizer.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "fakes.h"

struct dns {
	int unused; /* the fake has one resolver, this file */
};

struct dns_query {
	struct dns_query *next;
	enum fake_dns_type type;
	char name[DNS_NAME_MAX];
	union {
		dns_mx_cb *mx;
		dns_addr_cb *addr;
		dns_txt_cb *txt;
		dns_tlsa_cb *tlsa;
	} cb;
	void *arg;
};

static struct dns_query *pending;

struct dns *
dns_new(struct ev_loop *loop, const struct dns_options *o, char *err,
    size_t errlen)
{
	struct dns *d;

	(void)loop;
	(void)o;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		snprintf(err, errlen, "out of memory");
	return d;
}

void
dns_free(struct dns *d)
{
	free(d);
}

static struct dns_query *
fake_ask(enum fake_dns_type type, const char *name, void *arg)
{
	struct dns_query *q, **pp;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->type = type;
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->arg = arg;
	/* Answered in the order asked when the test does not say. */
	for (pp = &pending; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = q;
	return q;
}

struct dns_query *
dns_lookup_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_query *q;

	(void)d;
	if ((q = fake_ask(FAKE_DNS_MX, domain, arg)) != NULL)
		q->cb.mx = cb;
	return q;
}

struct dns_query *
dns_lookup_addr(struct dns *d, const char *host, dns_addr_cb *cb, void *arg)
{
	struct dns_query *q;

	(void)d;
	if ((q = fake_ask(FAKE_DNS_ADDR, host, arg)) != NULL)
		q->cb.addr = cb;
	return q;
}

struct dns_query *
dns_lookup_txt(struct dns *d, const char *name, dns_txt_cb *cb, void *arg)
{
	struct dns_query *q;

	(void)d;
	if ((q = fake_ask(FAKE_DNS_TXT, name, arg)) != NULL)
		q->cb.txt = cb;
	return q;
}

/* Recorded by host name: the port is always 25 here. */
struct dns_query *
dns_lookup_tlsa(struct dns *d, const char *host, int port, dns_tlsa_cb *cb,
    void *arg)
{
	struct dns_query *q;

	(void)d;
	(void)port;
	if ((q = fake_ask(FAKE_DNS_TLSA, host, arg)) != NULL)
		q->cb.tlsa = cb;
	return q;
}

static void
fake_unlink(struct dns_query *q)
{
	struct dns_query **pp;

	for (pp = &pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			return;
		}
}

void
dns_cancel(struct dns_query *q)
{
	fake_unlink(q);
	free(q);
}

/* --- the test's side ------------------------------------------------------ */

struct fake_answer {
	enum dns_status status;
	enum dnssec_status sec;
	char words[DNS_MX_MAX][DNS_NAME_MAX]; /* hosts, addresses, records */
	int nwords;
};

static void
fake_parse(const char *spec, char *name, struct fake_answer *a)
{
	static const struct {
		const char *word;
		enum dns_status status;
	} st[] = {
		{ "NXDOMAIN", DNS_NXDOMAIN },
		{ "NODATA", DNS_NODATA },
		{ "TEMPFAIL", DNS_TEMPFAIL },
		{ "NULLMX", DNS_NULLMX },
	};
	char tmp[1024], *w, *save = NULL;
	size_t i;

	memset(a, 0, sizeof(*a));
	a->status = DNS_OK;
	a->sec = DNSSEC_INSECURE;
	snprintf(tmp, sizeof(tmp), "%s", spec);
	w = strtok_r(tmp, " ", &save);
	snprintf(name, DNS_NAME_MAX, "%s", w != NULL ? w : "");
	while ((w = strtok_r(NULL, " ", &save)) != NULL) {
		if (strcmp(w, "secure") == 0) {
			a->sec = DNSSEC_SECURE;
			continue;
		}
		if (strcmp(w, "bogus") == 0) {
			a->sec = DNSSEC_BOGUS;
			continue;
		}
		for (i = 0; i < sizeof(st) / sizeof(st[0]) &&
		    strcmp(w, st[i].word) != 0; i++)
			;
		if (i < sizeof(st) / sizeof(st[0]))
			a->status = st[i].status;
		else if (a->nwords < DNS_MX_MAX)
			snprintf(a->words[a->nwords++], DNS_NAME_MAX, "%s", w);
	}
}

static void
fake_mx(struct dns_query *q, const struct fake_answer *a)
{
	struct dns_mx_result r;
	int i;

	memset(&r, 0, sizeof(r));
	r.status = a->status;
	r.sec = a->sec;
	r.error = a->status == DNS_TEMPFAIL ? "SERVFAIL" :
	    a->sec == DNSSEC_BOGUS ? "DNSSEC validation failed" : NULL;
	for (i = 0; i < a->nwords; i++) {
		r.mx[i].pref = 10 * (i + 1);
		snprintf(r.mx[i].host, sizeof(r.mx[i].host), "%s", a->words[i]);
	}
	r.nmx = a->nwords;
	q->cb.mx(q->arg, &r);
}

static void
fake_addr(struct dns_query *q, const struct fake_answer *a)
{
	struct dns_addr_result r;
	int i;

	memset(&r, 0, sizeof(r));
	r.status = a->status;
	r.sec = a->sec;
	r.error = a->status == DNS_TEMPFAIL ? "SERVFAIL" : NULL;
	for (i = 0; i < a->nwords && i < DNS_ADDR_MAX; i++) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&r.addr[i];
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r.addr[i];

		if (inet_pton(AF_INET, a->words[i], &sin->sin_addr) == 1)
			sin->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, a->words[i],
		    &sin6->sin6_addr) == 1)
			sin6->sin6_family = AF_INET6;
		else
			continue;
		r.naddr++;
	}
	q->cb.addr(q->arg, &r);
}

/* "3-1-1": usage 3, selector 1, matching type 1 over 32 bytes of 0xab. */
static void
fake_tlsa(struct dns_query *q, const struct fake_answer *a)
{
	unsigned char rdata[DNS_TLSA_MAX][3 + 32];
	struct dns_tlsa_result r;
	unsigned u, s, m;
	int i;

	memset(&r, 0, sizeof(r));
	r.status = a->status;
	r.sec = a->sec;
	r.error = a->status == DNS_TEMPFAIL ? "SERVFAIL" : NULL;
	for (i = 0; i < a->nwords && i < DNS_TLSA_MAX; i++) {
		if (sscanf(a->words[i], "%u-%u-%u", &u, &s, &m) != 3)
			continue;
		rdata[r.nrr][0] = (unsigned char)u;
		rdata[r.nrr][1] = (unsigned char)s;
		rdata[r.nrr][2] = (unsigned char)m;
		memset(rdata[r.nrr] + 3, 0xab, 32);
		r.rr[r.nrr].data = rdata[r.nrr];
		r.rr[r.nrr].len = sizeof(rdata[r.nrr]);
		r.nrr++;
	}
	q->cb.tlsa(q->arg, &r);
}

int
fake_dns_answer(enum fake_dns_type type, const char *spec)
{
	struct fake_answer a;
	struct dns_query *q;
	char name[DNS_NAME_MAX];

	/* No TXT answers: a session asks for none (its MTA-STS is faked). */
	if (type == FAKE_DNS_TXT)
		return -1;
	fake_parse(spec, name, &a);
	for (q = pending; q != NULL; q = q->next)
		if (q->type == type && strcmp(q->name, name) == 0)
			break;
	if (q == NULL)
		return -1;
	fake_unlink(q);
	if (type == FAKE_DNS_MX)
		fake_mx(q, &a);
	else if (type == FAKE_DNS_ADDR)
		fake_addr(q, &a);
	else
		fake_tlsa(q, &a);
	free(q);
	return 0;
}

int
fake_dns_pending(void)
{
	struct dns_query *q;
	int n = 0;

	for (q = pending; q != NULL; q = q->next)
		n++;
	return n;
}
