/*
 * The test side of the fakes test_session links in place of the modules
 * that touch the world: proxy/conn.c (sockets, libev, BoringSSL's I/O),
 * proxy/dns.c (libunbound), proxy/sts.c (the MTA-STS cache, its journal
 * and fetches), proxy/clock.c, and, through the linker's --wrap, the two
 * functions that read a finished handshake (tls_facts_collect,
 * dane_verify).  Nothing happens by itself: the test says when a peer
 * speaks, a connect or handshake finishes, a query is answered or time
 * passes, and reads what the session wrote.
 */
#ifndef MXTLS_FAKES_H
#define MXTLS_FAKES_H

#include <stddef.h>

#include "conn.h"
#include "dane.h"
#include "dns.h"
#include "runtime.h"
#include "sts.h"
#include "tls.h"

/* --- fake_conn.c: connections in memory ---------------------------------- */

/*
 * One connection, followed wherever conn_move takes it (the session's
 * upstream into the connection cache and out to another session).
 */
struct fake_conn;

/* The last connection accepted (upstream 0) or dialled (upstream 1). */
struct fake_conn *fake_conn_last(int upstream);
/* conn_connect calls since fake_conn_reset. */
int fake_conn_connects(void);
/* Where a dialled connection goes, "ADDR:PORT" ("[ADDR]:PORT" for IPv6). */
const char *fake_conn_dst(const struct fake_conn *f);
/* The SNI of conn_start_tls; NULL before it ("" for none). */
const char *fake_conn_sni(const struct fake_conn *f);
int fake_conn_reading(const struct fake_conn *f);
/* Seconds of the deadline set last (0: none runs). */
double fake_conn_deadline(const struct fake_conn *f);
int fake_conn_closed(const struct fake_conn *f);
/* Bytes the peer sent that the owner has not consumed yet. */
size_t fake_conn_unread(const struct fake_conn *f);
/*
 * The peer sends bytes.  They wait, as in the socket, until the owner
 * reads, and are delivered (CONN_EV_INPUT) by fake_conn_pump.
 */
void fake_conn_send(struct fake_conn *f, const char *bytes, size_t n);
/*
 * Deliver waiting bytes to every connection that reads, as the event
 * loop would, until none is left that can be delivered.
 */
void fake_conn_pump(void);
/*
 * Report ev to the connection's owner: CONN_EV_CONNECTED and
 * CONN_EV_TLS_READY move the connection on first; CONN_EV_TIMEOUT needs
 * a deadline set.  -1 (and nothing reported) when the connection could
 * not have that event now.
 */
int fake_conn_event(struct fake_conn *f, enum conn_event ev);
/*
 * Everything written to upstream connections (1) or to the MTA (0)
 * since the last call, as one string; valid until the next call.
 */
const char *fake_conn_take(int upstream);
/* Forget every connection (after their owners are gone). */
void fake_conn_reset(void);

/* --- fake_dns.c: scripted answers ---------------------------------------- */

enum fake_dns_type { FAKE_DNS_MX, FAKE_DNS_ADDR, FAKE_DNS_TXT, FAKE_DNS_TLSA };

/*
 * Answer the pending query of that type for name.  spec: words after
 * the name, each an MX host, an address or a TLSA record "U-S-M" (its
 * data 32 bytes of 0xab), or one of NXDOMAIN, NODATA, TEMPFAIL, NULLMX,
 * secure, bogus (default: DNS_OK, insecure).  -1 when no such query is
 * pending (nothing is answered then).
 */
int fake_dns_answer(enum fake_dns_type type, const char *spec);
/* Queries asked and neither answered nor cancelled. */
int fake_dns_pending(void);

/* --- fake_sts.c: MTA-STS answers ----------------------------------------- */

/* What session.c gets as its struct sts: the fake cache. */
extern struct sts *fake_sts;

/*
 * Answer the pending lookup of a domain.  spec: "DOMAIN MODE MX..."
 * (MODE enforce or testing) or "DOMAIN none" for no policy.  -1 when no
 * lookup of that domain is pending.
 */
int fake_sts_answer(const char *spec);
int fake_sts_pending(void);
/* sts_refresh calls since fake_sts_reset, and the last domain. */
int fake_sts_refreshes(void);
const char *fake_sts_refreshed(void);
void fake_sts_reset(void);

/* --- fake_clock.c ---------------------------------------------------------- */

/*
 * Both clocks stand at 2026-01-01T00:00:00Z (the monotonic one at 1000)
 * and move only here.
 */
void fake_clock_advance(long seconds);
/* Back to the start, for the next test's fresh retry records. */
void fake_clock_reset(void);

/* --- fake_tls.c: what a finished handshake shows ------------------------- */

/*
 * The certificate the next handshakes present: "ok" (verifies, and
 * matches the TLSA records), "expired", "mismatch" (another name; nor
 * does it match TLSA records).  -1 for another word.
 */
int fake_tls_cert(const char *what);
/* The names and flags of the last tls_facts_collect. */
const char *fake_tls_names(void);
unsigned fake_tls_flags(void);

/* The linker's --wrap sends session.c's calls here. */
void __wrap_tls_facts_collect(SSL *ssl, const char *const *names, int nnames,
    unsigned flags, struct tls_facts *facts);
int __wrap_dane_verify(SSL *ssl, const struct dane_tlsa_set *set,
    const char *const *names, int nnames, struct dane_result *out);

/* --- fake_runtime.c -------------------------------------------------------- */

/*
 * The runtime of a config: "hostname = mxtls.test", state_dir dir, the
 * repository's CA bundle, then the text extra (written to dir/name for
 * runtime_load, and removed).  Exits on an error.
 */
struct runtime *fake_runtime(const char *dir, const char *name,
    const char *extra);

/*
 * The two runtimes the tests with fakes drive: *opp of the default
 * config (opportunistic), *mand of "[policy] default = mandatory", their
 * state_dir a new /tmp/mxtls-TEST.XXXXXX, removed again once both are
 * loaded.  Exits 2 on an error.
 */
void fake_runtimes(const char *test, struct runtime **opp,
    struct runtime **mand);

#endif
