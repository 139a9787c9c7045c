/*
 * `mxtls explain` asks the DNS as the proxy would: the recipient domain's
 * MX hosts, the DNSSEC standing of each answer, and the TLSA records DANE
 * would use.  Lookups run one after another on a private loop; the
 * output is for people, one host a block:
 *
 *   dnssec       MX of example.net: secure
 *   mx 10        mx1.example.net  addresses secure: 192.0.2.1
 *     dane       auth (usable TLSA records) at _25._tcp.mx1.example.net
 *     tlsa       3 1 1 ab12cd34... usable
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "explaindns.h"
#include "runtime.h"

#define LABEL_WIDTH 13

struct xd {
	struct ev_loop *loop;
	struct dns *dns;
	FILE *out;
	const struct config *cfg;
	const struct policy_profile *profile;
	struct dns_mx hosts[DNS_MX_MAX];
	int nhosts, i;
	enum dnssec_status mx_sec, addr_sec;
	char base[DNS_NAME_MAX];  /* TLSA owner base name being asked */
	char retry[DNS_NAME_MAX]; /* the name before CNAMEs, if still to ask */
	int done;
};

static void xd_next_host(struct xd *x);

static int
xd_dane_wanted(const struct xd *x)
{
	return x->cfg->dnssec != CONFIG_DNSSEC_OFF &&
	    x->profile->dane != DANE_MODE_OFF &&
	    x->profile->tls != POLICY_TLS_OFF;
}

static void
xd_tlsa(void *arg, const struct dns_tlsa_result *res)
{
	struct xd *x = arg;
	struct dane_tlsa_set set;
	enum dane_lookup lookup;
	enum dane_host h;
	const char *why = NULL;
	char text[128];
	int i;

	lookup = res->status == DNS_OK ? DANE_LOOKUP_RECORDS :
	    res->status == DNS_NODATA ? DANE_LOOKUP_NODATA :
	    res->status == DNS_NXDOMAIN ? DANE_LOOKUP_NXDOMAIN :
	    DANE_LOOKUP_FAILED;
	if ((lookup == DANE_LOOKUP_NODATA || lookup == DANE_LOOKUP_NXDOMAIN) &&
	    x->retry[0] != '\0') {
		fprintf(x->out, "%-*s_25._tcp.%s: none (%s); asking the name "
		    "before the CNAME\n", LABEL_WIDTH, "  tlsa", x->base,
		    dnssec_status_name(res->sec));
		snprintf(x->base, sizeof(x->base), "%s", x->retry);
		x->retry[0] = '\0';
		if (dns_lookup_tlsa(x->dns, x->base, 25, xd_tlsa, x) == NULL)
			xd_next_host(x);
		return;
	}
	memset(&set, 0, sizeof(set));
	for (i = 0; lookup == DANE_LOOKUP_RECORDS && i < res->nrr; i++)
		if (dane_tlsa_set_add(&set, res->rr[i].data, res->rr[i].len) <
		    0 && errno == ENOMEM)
			lookup = DANE_LOOKUP_FAILED;
	h = dane_host_decide(x->mx_sec, x->addr_sec, lookup, res->sec, &set,
	    &why);
	fprintf(x->out, "%-*s%s (%s) at _25._tcp.%s, TLSA answer %s%s%s\n",
	    LABEL_WIDTH, "  dane", dane_host_name(h), why ? why : "",
	    x->base, dnssec_status_name(res->sec),
	    res->error != NULL ? ": " : "", res->error ? res->error : "");
	for (i = 0; i < set.n; i++) {
		dane_tlsa_text(&set.rec[i], text, sizeof(text));
		fprintf(x->out, "%-*s%s %s\n", LABEL_WIDTH, "  tlsa", text,
		    set.rec[i].usable ? "usable" : "unusable for SMTP");
	}
	dane_tlsa_set_clear(&set);
	xd_next_host(x);
}

static void
xd_addr(void *arg, const struct dns_addr_result *res)
{
	struct xd *x = arg;
	const char *name = x->hosts[x->i].host;
	enum dane_host h;
	const char *why = NULL;
	char buf[INET6_ADDRSTRLEN], list[512];
	size_t used = 0;
	int i;

	list[0] = '\0';
	for (i = 0; i < res->naddr; i++) {
		const struct sockaddr_storage *ss = &res->addr[i];
		const void *a = ss->ss_family == AF_INET ?
		    (const void *)&((const struct sockaddr_in *)ss)->sin_addr :
		    (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

		inet_ntop(ss->ss_family, a, buf, sizeof(buf));
		used += (size_t)snprintf(list + used, sizeof(list) - used,
		    "%s%s", i ? ", " : "", buf);
		if (used >= sizeof(list))
			break;
	}
	x->addr_sec = res->sec;
	fprintf(x->out, "%-*s%s  addresses %s: %s%s%s\n", LABEL_WIDTH, "",
	    name, dnssec_status_name(res->sec), list,
	    res->canon[0] ? " via CNAME " : "", res->canon);
	if (res->status != DNS_OK)
		fprintf(x->out, "%-*s%s\n", LABEL_WIDTH, "", res->error);
	if (!xd_dane_wanted(x)) {
		xd_next_host(x);
		return;
	}
	if (x->mx_sec != DNSSEC_SECURE || res->sec != DNSSEC_SECURE) {
		h = dane_host_decide(x->mx_sec, res->sec, DANE_LOOKUP_NODATA,
		    DNSSEC_INSECURE, NULL, &why);
		fprintf(x->out, "%-*s%s (%s): no TLSA lookup\n", LABEL_WIDTH,
		    "  dane", dane_host_name(h), why ? why : "");
		xd_next_host(x);
		return;
	}
	if (res->canon[0] != '\0') {
		snprintf(x->base, sizeof(x->base), "%s", res->canon);
		snprintf(x->retry, sizeof(x->retry), "%s", name);
	} else {
		snprintf(x->base, sizeof(x->base), "%s", name);
		x->retry[0] = '\0';
	}
	if (dns_lookup_tlsa(x->dns, x->base, 25, xd_tlsa, x) == NULL)
		xd_next_host(x);
}

static void
xd_next_host(struct xd *x)
{
	char label[32];

	if (++x->i >= x->nhosts) {
		x->done = 1;
		ev_break(x->loop, EVBREAK_ONE);
		return;
	}
	snprintf(label, sizeof(label), "mx %d", x->hosts[x->i].pref);
	fprintf(x->out, "%-*s%s\n", LABEL_WIDTH, label, x->hosts[x->i].host);
	if (dns_lookup_addr(x->dns, x->hosts[x->i].host, xd_addr, x) == NULL)
		xd_next_host(x);
}

static void
xd_mx(void *arg, const struct dns_mx_result *res)
{
	struct xd *x = arg;
	const char *dom = x->hosts[0].host;

	x->mx_sec = res->sec;
	fprintf(x->out, "%-*sMX of %s: %s\n", LABEL_WIDTH, "dnssec", dom,
	    dnssec_status_name(res->sec));
	switch (res->status) {
	case DNS_OK:
		memcpy(x->hosts, res->mx, (size_t)res->nmx * sizeof(res->mx[0]));
		x->nhosts = res->nmx;
		break;
	case DNS_NODATA:
		/* The implicit MX: the domain itself, as the proxy does. */
		fprintf(x->out, "%-*sno MX records: the domain itself "
		    "(implicit MX)\n", LABEL_WIDTH, "");
		x->hosts[0].pref = 0;
		x->nhosts = 1;
		break;
	default:
		fprintf(x->out, "%-*s%s\n", LABEL_WIDTH, "", res->error);
		x->done = 1;
		ev_break(x->loop, EVBREAK_ONE);
		return;
	}
	x->i = -1;
	xd_next_host(x);
}

int
explain_dns_print(const struct config *cfg, const struct policy_decision *d,
    FILE *out)
{
	struct xd x;
	char err[512];

	if (d->nexthop != NULL) {
		fprintf(out, "%-*s%s\n", LABEL_WIDTH, "dane",
		    "not used: the route has a nexthop, not the domain's MX");
		return 0;
	}
	memset(&x, 0, sizeof(x));
	x.out = out;
	x.cfg = cfg;
	x.profile = d->profile;
	if (cfg->dnssec == CONFIG_DNSSEC_OFF)
		fprintf(out, "%-*s%s\n", LABEL_WIDTH, "dane",
		    "off ([dns] dnssec = off)");
	else if (!xd_dane_wanted(&x))
		fprintf(out, "%-*soff (profile %s)\n", LABEL_WIDTH, "dane",
		    d->profile->name);
	if ((x.loop = ev_loop_new(EVFLAG_AUTO)) == NULL) {
		fprintf(stderr, "mxtls: explain: no event loop\n");
		return 1;
	}
	if ((x.dns = runtime_dns_new(x.loop, cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxtls: explain: %s\n", err);
		ev_loop_destroy(x.loop);
		return 1;
	}
	snprintf(x.hosts[0].host, sizeof(x.hosts[0].host), "%s", d->domain);
	if (dns_lookup_mx(x.dns, d->domain, xd_mx, &x) == NULL) {
		fprintf(stderr, "mxtls: explain: out of memory\n");
		dns_free(x.dns);
		ev_loop_destroy(x.loop);
		return 1;
	}
	while (!x.done)
		ev_run(x.loop, 0);
	dns_free(x.dns);
	ev_loop_destroy(x.loop);
	return 0;
}
