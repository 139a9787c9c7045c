/*
 * Asynchronous DNS through c-ares, driven by the libev loop: MX lookups
 * (with null MX and implicit MX) and A/AAAA lookups.  Callbacks run from
 * the loop, never from inside dns_* calls.
 */
#ifndef MXTLS_DNS_H
#define MXTLS_DNS_H

#include <netinet/in.h>
#include <sys/socket.h>

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
	const char *error; /* human text for logs and replies */
	struct dns_mx mx[DNS_MX_MAX]; /* by preference, lowest first */
	int nmx; /* for DNS_NODATA the caller uses the domain (implicit MX) */
};

struct dns_addr_result {
	enum dns_status status;
	const char *error;
	struct sockaddr_storage addr[DNS_ADDR_MAX]; /* port left 0 */
	int naddr;
};

#define DNS_TXT_MAX 8	   /* TXT records kept */
#define DNS_TXT_LEN 1024   /* bytes of one record (its strings joined) */

struct dns_txt_result {
	enum dns_status status;
	const char *error;
	char txt[DNS_TXT_MAX][DNS_TXT_LEN]; /* longer records are cut */
	size_t len[DNS_TXT_MAX];
	int ntxt;
};

typedef void dns_mx_cb(void *arg, const struct dns_mx_result *res);
typedef void dns_txt_cb(void *arg, const struct dns_txt_result *res);
typedef void dns_addr_cb(void *arg, const struct dns_addr_result *res);

/* servers: NULL for the system resolver, or "ADDR[:PORT],..." */
struct dns *dns_new(struct ev_loop *loop, const char *servers, double timeout,
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
void dns_cancel(struct dns_query *q);

#endif
