/*
 * The MX-facing client: one transaction's route to the recipient's MX.
 * It chooses the next hops (MX hosts, their addresses, a nexthop, the
 * transparent destination), takes a connection from the cache or opens
 * one, says EHLO and STARTTLS, turns the TLS facts and the DANE standing
 * into a verdict through the failure table, and relays MAIL, RCPT, DATA,
 * the message and the final dot.
 *
 * Its owner (the session) says what to deliver in three structures it
 * keeps and the upstream only reads: the route, the transaction and the
 * MTA-STS policy last looked up.  What happens comes back through one
 * callback, the way conn.c reports to its owner: the replies to MAIL,
 * RCPT, DATA, the dot and RSET, a failure of the route with the reply
 * the MTA should get, a connection lost, room for more message bytes.
 */
#ifndef MXTLS_UPSTREAM_H
#define MXTLS_UPSTREAM_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "conn.h"
#include "dane.h"
#include "dns.h"
#include "failure.h"
#include "mtasts.h"
#include "policy.h"
#include "proxy.h"
#include "smtp.h"
#include "tls.h"
#include "upcache.h"

#define UPSTREAM_ROUTE_KEY_LEN 64 /* hex SHA-256 */
#define UPSTREAM_HOSTS_MAX 8	  /* MX hosts tried per delivery (Postfix: 5) */
#define UPSTREAM_ADDRS_MAX 4	  /* addresses tried per MX host */
#define UPSTREAM_PARAMS_MAX SMTP_PARAMS_MAX

/*
 * Names a certificate may carry, from an MTA-STS policy (all its patterns:
 * a host matching the last one is as permitted as one matching the first)
 * or (transparent mode) the MX hosts that resolve to the original
 * destination.  Needed only sometimes, so allocated then, in one piece.
 */
struct up_names {
	int cap;
	const char **p; /* p[i] is name[i] */
	char (*name)[DNS_NAME_MAX];
};

/* Room for cap names in one allocation; NULL when out of memory. */
struct up_names *up_names_new(int cap);

/* The route of the transaction, as the owner decided it. */
struct up_route {
	int have;		  /* a recipient has chosen it */
	struct policy_decision dec;
	/* The runtime's profile dec.profile copies (its SSL_CTX); NULL
	 * when dec.profile is the runtime's own. */
	const struct policy_profile *prof_orig;
	char key[UPSTREAM_ROUTE_KEY_LEN + 1]; /* upstream_route_id */
	char domain[DNS_NAME_MAX];
	int sts;	 /* the profile comes from MTA-STS enforce */
	int sts_testing; /* MTA-STS testing: report what would fail */
};

/* The transaction, as the MTA sent it. */
struct up_txn {
	/* The MTA's end of the connection (TLS reports skip their own). */
	const struct sockaddr *client;
	char mail_from[SMTP_PATH_MAX + 1];
	char mail_params[UPSTREAM_PARAMS_MAX];
	char rcpt[SMTP_PATH_MAX + 1]; /* the RCPT being relayed */
	char rcpt_params[UPSTREAM_PARAMS_MAX];
	int requiretls;	     /* MAIL ... REQUIRETLS (RFC 8689) */
	int tls_required_no; /* goes on its TLS-Required: No: no policy */
	int nrcpt_ok;
	size_t size; /* message bytes so far, for the delivery line */
};

/* The MTA-STS policy of the last recipient domain looked up. */
struct up_sts {
	char domain[DNS_NAME_MAX];
	enum mtasts_mode mode;
	struct up_names *mx; /* NULL until a policy names mx */
	int nmx;
	long max_age; /* for TLS reports; -1: no policy */
};

enum up_state {
	UP_NONE,	/* no connection, nothing asked */
	UP_RESOLVE,	/* DNS for the next hop */
	UP_CONNECT,	/* TCP connect */
	UP_GREETING,	/* waiting for 220 */
	UP_EHLO,	/* EHLO (or HELO) before TLS */
	UP_STARTTLS,	/* waiting for 220 to STARTTLS */
	UP_TLS,		/* handshake */
	UP_EHLO_TLS,	/* EHLO inside TLS */
	UP_REUSE,	/* RSET on a connection from the cache: alive? */
	UP_MAIL,	/* MAIL FROM sent */
	UP_RCPT,	/* RCPT TO sent */
	UP_TXN,		/* a transaction is open; the owner's turn */
	UP_DATA,	/* DATA sent; waiting for 354 */
	UP_BODY,	/* the message goes up */
	UP_DATA_END,	/* waiting for the reply to the final dot */
	UP_RSET,	/* RSET sent */
	UP_IDLE,	/* connected, no transaction */
};

const char *up_state_name(enum up_state st);

enum up_event {
	UP_EV_MAIL,   /* MAIL refused (a 250 goes on to RCPT by itself) */
	UP_EV_RCPT,   /* the reply to RCPT */
	UP_EV_DATA,   /* the reply to DATA; 354: UP_BODY */
	UP_EV_DOT,    /* the reply to the final dot, or `text` */
	UP_EV_RSET,   /* RSET answered: no transaction */
	UP_EV_FAILED, /* the route cannot take the transaction: `text` */
	UP_EV_LOST,   /* the connection failed in state `in` */
	UP_EV_DRAINED, /* room for message bytes again */
};

/*
 * A failure of the TLS policy that "TLS-Required: No" (RFC 8689) may
 * lift: the recipient domain's (MTA-STS, DANE), or the local profile's.
 */
enum up_lift { UP_LIFT_NONE, UP_LIFT_POLICY, UP_LIFT_LOCAL };

struct up_report {
	enum up_event ev;
	const struct smtp_reply *r; /* MAIL, RCPT, DATA, DOT; else NULL */
	const char *sum;	    /* r's first line, for texts and logs */
	const char *text;	    /* FAILED, DOT without r: the reply */
	const char *reason;	    /* FAILED with lift: for the log */
	enum up_lift lift;
	enum up_state in; /* LOST: where it happened */
	const char *where;	    /* LOST: host[addr]:port */
};

/* One candidate next hop: an MX host, the domain itself, or nexthop. */
struct up_hop {
	char name[DNS_NAME_MAX]; /* empty for a literal address */
	int port;
	/*
	 * Named by the recipient domain's DNS (an MX, or the implicit MX):
	 * its addresses must be public unless allow_private_mx says
	 * otherwise.  A nexthop or the transparent destination is the
	 * operator's choice.
	 */
	int from_dns;
};

typedef void up_cb(void *owner, const struct up_report *rep);

struct upstream {
	unsigned long id; /* the session's, for logs */
	struct proxy *px;
	struct runtime *rt;
	const struct config *cfg;
	const struct up_route *route;
	const struct up_txn *txn;
	const struct up_sts *sts;
	up_cb *cb;
	void *owner;
	enum up_state state;

	/*
	 * Transparent mode: where the MTA meant to connect, and which MX
	 * names of the recipient domain resolve to that address (the names
	 * the certificate may carry).
	 */
	int transparent;
	struct sockaddr_storage orig;
	char orig_str[INET6_ADDRSTRLEN];
	int orig_port;
	struct up_names *tp_names; /* NULL until one is found */
	int ntp_names;
	int tp_i;

	/*
	 * The MTA waits for the reply to its RCPT from t_rcpt (clock_mono;
	 * 0: it waits for nothing) for at most rcpt_timeout; capped: the
	 * deadline running now is that limit, not the phase's own.  The
	 * owner sets and clears t_rcpt.
	 */
	double t_rcpt;
	int capped;
	int attempt_logged; /* the route's attempt has its summary line */

	struct conn conn;
	int open;	/* conn holds a live connection */
	int txn_open;	/* a MAIL transaction is open */
	char key[UPSTREAM_ROUTE_KEY_LEN + 1]; /* route it serves */
	char ckey[UPCACHE_KEY_LEN + 1];	      /* ... as the cache knows it */
	double opened;	/* clock_mono() at connect */
	int reused;	/* taken from the connection cache */
	int late;	/* ... per address, after the DANE verdict */
	int await;	/* a command was sent and its reply is due */
	int body;	/* message bytes went up, the final dot not yet */
	/*
	 * The reply being read; allocated while one is arriving, so an idle
	 * session does not carry its 8 KiB.
	 */
	struct smtp_reply_parser *rp;
	struct dns_query *dq;
	struct up_hop hops[UPSTREAM_HOSTS_MAX];
	int nhops, hop_i;
	struct sockaddr_storage addrs[UPSTREAM_ADDRS_MAX];
	int naddrs, addr_i;
	char host[DNS_NAME_MAX]; /* the name whose address we contacted */
	char addr[INET6_ADDRSTRLEN];
	int port;
	struct smtp_ehlo ehlo;
	int helo; /* EHLO was refused: HELO sent, no extensions */
	int tls;
	struct tls_facts facts;
	/*
	 * "ok", "fail", "none" (not checked), "-"; for a DANE host
	 * "dane-ee", "dane-ta" or "dane-encrypt" (TLS, no authentication)
	 */
	const char *verify;
	char last_error[320];
	double t_phase; /* monotonic start of a connect or handshake */

	/*
	 * The failure table's verdict for the route: from the first host
	 * (in MX order) that could not be used over TLS.  Applied when no
	 * host delivered over TLS.
	 */
	enum failure_action verdict; /* FAILURE_CONTACT: none yet */
	enum failure_event verdict_event;
	char verdict_reason[320];
	char verdict_host[DNS_NAME_MAX];
	struct sockaddr_storage verdict_ss;
	int verdict_port;
	time_t verdict_retry; /* FAILURE_DEFER: the earliest retry */
	int fallback;	      /* this connection is the clear fallback */

	/*
	 * DANE (RFC 7672) for the host being tried: the DNSSEC standing of
	 * its MX and address answers, its TLSA records, and what they make
	 * of it.  A DANE host's failures defer the route (451 4.7.5) unless
	 * an explicit mandatory match hands them to the failure table.
	 */
	enum dnssec_status mx_sec;
	enum dnssec_status addr_sec;
	enum dane_host dane;
	struct dane_tlsa_set tlsa;
	char tlsa_base[DNS_NAME_MAX];  /* where the TLSA records were found */
	char tlsa_retry[DNS_NAME_MAX]; /* the name before CNAMEs, to ask */
	char verified_by[80];	       /* session resumption: "dane:FP" */
	const char *dane_why;
	int dane_tainted; /* an MX host's DNSSEC lookups were bogus or failed */
	int dane_failed;  /* a DANE host could not be used */
	int dane_required; /* no TLSA, dane = only, judged by the table */
	char dane_error[400];
	/*
	 * Transparent mode: the first MX host of the recipient domain whose
	 * secure addresses include the original destination (its TLSA name
	 * after a CNAME in tp_dane_base); "" when there is none.
	 */
	char tp_dane[DNS_NAME_MAX];
	char tp_dane_base[DNS_NAME_MAX];
};

/* Ready an upstream for its owner; nothing is opened yet. */
void upstream_init(struct upstream *u, struct proxy *px, struct runtime *rt,
    unsigned long id, const struct up_route *route, const struct up_txn *txn,
    const struct up_sts *sts, up_cb *cb, void *owner);
/* At the owner's end: DNS cancelled, the connection cached or closed. */
void upstream_free(struct upstream *u);

/*
 * The identity of a route (a SHA-256, dst[UPSTREAM_ROUTE_KEY_LEN + 1]):
 * recipients join the transaction of the same route, an idle upstream
 * serves the same route again, the connection cache hands a connection
 * only to the same route.  -1 out of memory.
 */
int upstream_route_id(const struct upstream *u,
    const struct policy_decision *d, int sts_enforce, int sts_testing,
    char *dst);

/*
 * Deliver the transaction on the route: an idle connection from the
 * cache, or a new one; then MAIL and RCPT (UP_EV_RCPT, UP_EV_MAIL or
 * UP_EV_FAILED).  The previous route's idle connection goes to the cache.
 */
void upstream_open(struct upstream *u);
/*
 * The connection is idle and may serve the route as it is (where DANE
 * may apply, never: its answers are looked up again, upstream_open).
 */
int upstream_idle_serves(const struct upstream *u);
/* On an idle connection that serves the route: MAIL and RCPT. */
void upstream_mail(struct upstream *u);
/* A transaction is open: the next RCPT. */
void upstream_rcpt(struct upstream *u);
void upstream_data(struct upstream *u);
void upstream_rset(struct upstream *u);
/* Room for message bytes in UP_BODY: 0 means wait for UP_EV_DRAINED. */
size_t upstream_body_room(const struct upstream *u);
/*
 * Queue message bytes (n = 0: none) and re-arm data_block_timeout while
 * bytes wait; -1 when out of memory (nothing is lost silently).
 */
int upstream_body(struct upstream *u, const char *p, size_t n);
/* The message's end went up with its bytes: wait for the reply. */
void upstream_dot(struct upstream *u);
/* After the owner ran: reads re-armed (TLS records already decrypted). */
void upstream_resume(struct upstream *u);
/* Close the connection (QUIT where it is clean) and forget the attempt. */
void upstream_close(struct upstream *u);
/*
 * Bytes from the server that no command asked for, seen where the owner
 * changes state: the connection is not to be trusted (UP_EV_LOST).
 * 1 when that happened.
 */
int upstream_check_unread(struct upstream *u);

/* The one summary line per delivery attempt (docs/behaviour.md section 3). */
void upstream_log_delivery(struct upstream *u, const char *outcome,
    const char *reply, const char *reason);
/* The server's name for logs: the host, or the MX name of a destination. */
const char *upstream_name(const struct upstream *u);
/* How the message left, for the final reply: "[mxtls: TLSv1.3 ...]". */
void upstream_how(const struct upstream *u, char *dst, size_t len);


#endif
