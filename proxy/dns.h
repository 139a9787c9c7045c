/*
 * Asynchronous DNS through libunbound, driven by the libev loop: MX
 * lookups (with null MX and implicit MX), A/AAAA, TXT and TLSA lookups.
 * Every answer carries its DNSSEC standing, validated inside mxtls from a
 * trust anchor (or taken from the AD bit of a trusted loopback resolver).
 * Callbacks run from the loop, never from inside dns_* calls.
 */
#ifndef MXTLS_DNS_H
#define MXTLS_DNS_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "dnssec.h"

struct ev_loop;
struct dns;

#define DNS_MX_MAX 16
#define DNS_ADDR_MAX 16
#define DNS_NAME_MAX 256

enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN, /* the name does not exist */
	DNS_NODATA,   /* the name exists, no records of that type */
	DNS_TEMPFAIL, /* timeout, SERVFAIL, refused: try later */
	DNS_NULLMX,   /* RFC 7505: the domain accepts no mail */
};

struct dns_mx {
	int pref;
	char host[DNS_NAME_MAX];
};

struct dns_mx_result {
	enum dns_status status;
	enum dnssec_status sec; /* of the MX RRset, or of its denial */
	const char *error; /* human text for logs and replies */
	struct dns_mx mx[DNS_MX_MAX]; /* by preference, lowest first */
	int nmx; /* for DNS_NODATA the caller uses the domain (implicit MX) */
};

struct dns_addr_result {
	enum dns_status status;
	enum dnssec_status sec; /* the weaker of the A and AAAA answers */
	const char *error;
	/* The name the answers are for, when a CNAME chain led there. */
	char canon[DNS_NAME_MAX];
	struct sockaddr_storage addr[DNS_ADDR_MAX]; /* port left 0 */
	int naddr;
};

#define DNS_TXT_MAX 8	   /* TXT records kept */
#define DNS_TXT_LEN 1024   /* bytes of one record (its strings joined) */

struct dns_txt_result {
	enum dns_status status;
	enum dnssec_status sec;
	const char *error;
	char txt[DNS_TXT_MAX][DNS_TXT_LEN]; /* longer records are cut */
	size_t len[DNS_TXT_MAX];
	int ntxt;
};

#define DNS_TLSA_MAX 16

struct dns_tlsa_rr {
	const unsigned char *data; /* RDATA: usage, selector, type, data */
	size_t len;
};

struct dns_tlsa_result {
	enum dns_status status;
	enum dnssec_status sec;
	const char *error;
	struct dns_tlsa_rr rr[DNS_TLSA_MAX]; /* valid during the callback */
	int nrr;
};

typedef void dns_mx_cb(void *arg, const struct dns_mx_result *res);
typedef void dns_txt_cb(void *arg, const struct dns_txt_result *res);
typedef void dns_addr_cb(void *arg, const struct dns_addr_result *res);
typedef void dns_tlsa_cb(void *arg, const struct dns_tlsa_result *res);

enum dns_dnssec {
	DNS_DNSSEC_VALIDATE, /* validate inside mxtls from the trust anchor */
	DNS_DNSSEC_TRUST_AD, /* trust the AD bit of (loopback) servers */
	DNS_DNSSEC_OFF,	     /* every answer insecure: no DANE */
};

struct dns_options {
	/*
	 * NULL or "" for the system's resolvers (/etc/resolv.conf),
	 * "recursive" to resolve from the root, or "ADDR[:PORT],..."
	 */
	const char *servers;
	double timeout;		  /* seconds per query try */
	enum dns_dnssec dnssec;
	const char *trust_anchor; /* file of DS/DNSKEY lines (validate) */
};

/* Reads the trust anchor now: a bad file is a config error. */
struct dns *dns_new(struct ev_loop *loop, const struct dns_options *o,
    char *err, size_t errlen);
void dns_free(struct dns *d);

/*
 * Start a lookup.  The returned handle cancels it (the callback is then
 * never called); it is invalid once the callback has run.
 */
struct dns_query;
struct dns_query *dns_lookup_mx(struct dns *d, const char *domain,
    dns_mx_cb *cb, void *arg);
struct dns_query *dns_lookup_addr(struct dns *d, const char *host,
    dns_addr_cb *cb, void *arg);
/* TXT records (MTA-STS: "_mta-sts.DOMAIN"), each record's strings joined. */
struct dns_query *dns_lookup_txt(struct dns *d, const char *name,
    dns_txt_cb *cb, void *arg);
/* TLSA records of "_PORT._tcp.HOST" (DANE). */
struct dns_query *dns_lookup_tlsa(struct dns *d, const char *host, int port,
    dns_tlsa_cb *cb, void *arg);
void dns_cancel(struct dns_query *q);

#endif
