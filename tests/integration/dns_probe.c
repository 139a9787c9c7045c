/*
 * dns_probe: drive proxy/dns.c from the command line for test_dns.sh.
 *
 *   dns_probe [-t SECONDS] SERVERS MODE NAME
 *
 * DNS_PROBE_DNSSEC=validate|trust-ad|off (default off) and
 * DNS_PROBE_ANCHOR=FILE in the environment set the DNSSEC options.
 * SERVERS is passed to dns_new(), except "system" (NULL: resolv.conf),
 * "blackhole" (a UDP socket of ours that never answers) and "rcode:N" (a
 * UDP server of ours answering every query with RCODE N, e.g. 2 SERVFAIL,
 * 5 REFUSED: dnsmasq cannot be made to answer those).
 * MODE:
 *   mx, addr, tlsa  one lookup; print the result (tlsa: of _25._tcp.NAME)
 *   cancel-mx       start an MX lookup, cancel it at once, run the loop
 *   cancel-addr     the same for an address lookup
 *   free-pending    start an MX lookup, dns_free() at once, run the loop
 *   free-in-cb      two MX lookups; the first callback calls dns_free()
 *   cancel-in-cb    two MX lookups; the first callback cancels the other
 * Output (stdout), one item a line:
 *   status OK|NXDOMAIN|NODATA|TEMPFAIL|NULLMX
 *   error TEXT             when the result carries one
 *   mx PREF HOST           in result order
 *   addr ADDRESS           in result order
 *   dnssec STATUS          secure, insecure, bogus or failed
 *   canon NAME             the CNAME target an address lookup ended at
 *   tlsa HEX               each TLSA RDATA
 *   callbacks N            for the cancel and free modes
 *   FAIL WHY               a broken promise of dns.h
 * The elapsed time goes to stderr as "elapsed_ms N".  Exit 0 when no
 * FAIL line was printed.
 */
#include <arpa/inet.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"

static struct ev_loop *loop;
static struct dns *dns;
static int in_lookup; /* set around dns_lookup_* calls */
static int callbacks;
static int show_dnssec; /* DNS_PROBE_DNSSEC was given */
static int failed;
static int free_in_cb, cancel_in_cb;
static struct dns_query *qa, *qb; /* for cancel-in-cb */

static void
fail(const char *why)
{
	printf("FAIL %s\n", why);
	failed = 1;
}

static const char *
status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "OK";
	case DNS_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_NODATA:
		return "NODATA";
	case DNS_TEMPFAIL:
		return "TEMPFAIL";
	case DNS_NULLMX:
		return "NULLMX";
	}
	return "?";
}

/* Shared by both callbacks: the promises every callback must keep. */
static void
on_callback(void *self)
{
	callbacks++;
	if (in_lookup)
		fail("callback ran inside dns_lookup_*");
	if (free_in_cb && callbacks == 1) {
		dns_free(dns);
		dns = NULL;
	}
	if (cancel_in_cb && callbacks == 1) {
		/* Cancel whichever of the two has not been delivered yet. */
		dns_cancel(self == &qa ? qb : qa);
	}
}

static void
mx_cb(void *arg, const struct dns_mx_result *r)
{
	int i;

	on_callback(arg);
	printf("status %s\n", status_name(r->status));
	if (show_dnssec)
		printf("dnssec %s\n", dnssec_status_name(r->sec));
	if (r->error != NULL)
		printf("error %s\n", r->error);
	if (r->status != DNS_OK && r->nmx != 0)
		fail("records with a failed status");
	if (r->status == DNS_OK && r->nmx == 0)
		fail("OK without records");
	for (i = 0; i < r->nmx; i++) {
		printf("mx %d %s\n", r->mx[i].pref, r->mx[i].host);
		if (i > 0 && r->mx[i].pref < r->mx[i - 1].pref)
			fail("MX not sorted by preference");
	}
}

static void
tlsa_cb(void *arg, const struct dns_tlsa_result *r)
{
	int i;
	size_t j;

	on_callback(arg);
	printf("status %s\n", status_name(r->status));
	if (show_dnssec)
		printf("dnssec %s\n", dnssec_status_name(r->sec));
	if (r->error != NULL)
		printf("error %s\n", r->error);
	for (i = 0; i < r->nrr; i++) {
		printf("tlsa ");
		for (j = 0; j < r->rr[i].len; j++)
			printf("%02x", r->rr[i].data[j]);
		printf("\n");
	}
}

static void
addr_cb(void *arg, const struct dns_addr_result *r)
{
	char buf[INET6_ADDRSTRLEN];
	int i;

	on_callback(arg);
	printf("status %s\n", status_name(r->status));
	if (show_dnssec)
		printf("dnssec %s\n", dnssec_status_name(r->sec));
	if (show_dnssec && r->canon[0] != '\0')
		printf("canon %s\n", r->canon);
	if (r->error != NULL)
		printf("error %s\n", r->error);
	if (r->status == DNS_OK && r->naddr == 0)
		fail("OK without addresses");
	for (i = 0; i < r->naddr; i++) {
		const struct sockaddr_storage *ss = &r->addr[i];

		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ss;

			inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
			if (sin->sin_port != 0)
				fail("port not 0");
		} else if (ss->ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)ss;

			inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
			if (sin6->sin6_port != 0)
				fail("port not 0");
		} else {
			fail("unknown address family");
			continue;
		}
		printf("addr %s\n", buf);
	}
}

static struct dns_query *
start(int mx, const char *name, void *arg)
{
	struct dns_query *q;

	in_lookup = 1;
	q = mx ? dns_lookup_mx(dns, name, mx_cb, arg) :
		 dns_lookup_addr(dns, name, addr_cb, arg);
	in_lookup = 0;
	if (q == NULL)
		fail("dns_lookup_* returned NULL");
	return q;
}

static void
watchdog_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	fail("loop still running after 30 s");
	ev_break(l, EVBREAK_ALL);
}

static int rcode;

/* The fake server: echo the query back as a response with our RCODE. */
static void
rcode_cb(struct ev_loop *l, ev_io *w, int revents)
{
	unsigned char buf[512];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	ssize_t n;

	(void)l;
	(void)revents;
	n = recvfrom(w->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
	    &flen);
	if (n < 12)
		return;
	buf[2] |= 0x80; /* QR */
	buf[3] = (unsigned char)((buf[3] & 0xf0) | (rcode & 0x0f));
	memset(buf + 6, 0, 6); /* no answer, authority or additional RRs */
	(void)sendto(w->fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
}

/* A bound UDP socket: queries to it time out unless rcode_cb answers. */
static int
udp_server(char *servers, size_t len)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int fd;

	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) < 0) {
		close(fd);
		return -1;
	}
	snprintf(servers, len, "127.0.0.1:%u", ntohs(sin.sin_port));
	return fd;
}

static void
usage(void)
{
	fprintf(stderr, "usage: dns_probe [-t SECONDS] SERVERS "
	    "mx|addr|cancel-mx|cancel-addr|free-pending|free-in-cb|"
	    "cancel-in-cb NAME\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *servers, *mode, *name;
	char sbuf[64], err[256];
	double timeout = 5;
	struct timespec t0, t1;
	ev_timer watchdog;
	ev_io fake;
	int counting = 1, hole = -1;
	struct dns_options o;
	const char *sec;

	if (argc > 2 && strcmp(argv[1], "-t") == 0) {
		timeout = atof(argv[2]);
		argc -= 2;
		argv += 2;
	}
	if (argc != 4)
		usage();
	servers = argv[1];
	mode = argv[2];
	name = argv[3];
	setvbuf(stdout, NULL, _IOLBF, 0);
	loop = EV_DEFAULT;
	if (strcmp(servers, "system") == 0) {
		servers = NULL;
	} else if (strcmp(servers, "blackhole") == 0 ||
	    strncmp(servers, "rcode:", 6) == 0) {
		if ((hole = udp_server(sbuf, sizeof(sbuf))) < 0) {
			perror("udp server");
			return 1;
		}
		if (servers[0] == 'r') {
			rcode = atoi(servers + 6);
			ev_io_init(&fake, rcode_cb, hole, EV_READ);
			ev_io_start(loop, &fake);
			ev_unref(loop); /* alive only while dns.c is */
		}
		servers = sbuf;
	}

	ev_timer_init(&watchdog, watchdog_cb, 30., 0.);
	ev_timer_start(loop, &watchdog);
	ev_unref(loop); /* the watchdog alone must not keep the loop alive */
	o.servers = servers;
	o.timeout = timeout;
	o.trust_anchor = getenv("DNS_PROBE_ANCHOR");
	sec = getenv("DNS_PROBE_DNSSEC");
	show_dnssec = sec != NULL;
	o.dnssec = sec == NULL || strcmp(sec, "off") == 0 ? DNS_DNSSEC_OFF :
	    strcmp(sec, "trust-ad") == 0 ? DNS_DNSSEC_TRUST_AD :
	    DNS_DNSSEC_VALIDATE;
	if ((dns = dns_new(loop, &o, err, sizeof(err))) == NULL) {
		printf("dns_new: %s\n", err);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);

	if (strcmp(mode, "mx") == 0) {
		start(1, name, NULL);
		counting = 0;
	} else if (strcmp(mode, "tlsa") == 0) {
		in_lookup = 1;
		if (dns_lookup_tlsa(dns, name, 25, tlsa_cb, NULL) == NULL)
			fail("dns_lookup_tlsa returned NULL");
		in_lookup = 0;
		counting = 0;
	} else if (strcmp(mode, "addr") == 0) {
		start(0, name, NULL);
		counting = 0;
	} else if (strcmp(mode, "cancel-mx") == 0) {
		dns_cancel(start(1, name, NULL));
	} else if (strcmp(mode, "cancel-addr") == 0) {
		dns_cancel(start(0, name, NULL));
	} else if (strcmp(mode, "free-pending") == 0) {
		start(1, name, NULL);
		start(0, name, NULL);
		dns_free(dns);
		dns = NULL;
	} else if (strcmp(mode, "free-in-cb") == 0) {
		free_in_cb = 1;
		start(1, name, NULL);
		start(1, name, NULL);
	} else if (strcmp(mode, "cancel-in-cb") == 0) {
		cancel_in_cb = 1;
		qa = start(1, name, &qa);
		qb = start(1, name, &qb);
	} else {
		usage();
	}

	/* Returns once dns.c has no socket or timer left active. */
	ev_run(loop, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (counting)
		printf("callbacks %d\n", callbacks);
	else if (callbacks != 1)
		fail("callback count not 1");
	fprintf(stderr, "elapsed_ms %ld\n",
	    (long)((t1.tv_sec - t0.tv_sec) * 1000 +
		(t1.tv_nsec - t0.tv_nsec) / 1000000));
	dns_free(dns);
	if (hole >= 0) {
		if (rcode != 0) {
			ev_ref(loop);
			ev_io_stop(loop, &fake);
		}
		close(hole);
	}
	ev_ref(loop);
	ev_timer_stop(loop, &watchdog);
	return failed;
}
