/*
 * DANE for SMTP (RFC 7672): matching a server's certificate chain against
 * the usable TLSA records of policy/dane.h.  A fact, like tls.h's: the
 * session decides what a mismatch means.
 */
#ifndef MXTLS_PROXY_DANE_H
#define MXTLS_PROXY_DANE_H

/* proxy/ and policy/ are both on the include path: "dane.h" is this one. */
#include "../policy/dane.h"

typedef struct ssl_st SSL;
typedef struct x509_st X509;
struct stack_st_X509;

struct dane_result {
	int matched;		    /* 1: a usable record matched and (for DANE-TA) the chain and name checks passed */
	int usage, selector, mtype; /* the record that matched (-1 when none) */
	int depth;		    /* depth of the matched certificate in the peer chain (0 = leaf; -1 when none) */
	char matched_name[256];	    /* DANE-TA: the name that matched; DANE-EE: "" */
	char reason[320];	    /* when not matched, why, for logs and replies */
};

/*
 * Match leaf and the chain as the server sent it (which may hold the leaf
 * too; NULL for none) against the usable records of set.  names: the
 * reference identifiers for DANE-TA (RFC 7672 3.2.3: the MX host name and
 * the TLSA base domain after CNAMEs, names[0] the one to show first).
 * DANE-EE(3) checks the leaf alone, no names, no dates (3.1.1); DANE-TA(2)
 * a certificate the server sent at depth 1 or more (or the full
 * certificate of a 2 0 0 record), then the chain from the leaf to it,
 * signatures and dates, and the leaf's names.  Any usable record is
 * enough.  Returns out->matched.
 */
int dane_verify_chain(X509 *leaf, struct stack_st_X509 *sent,
    const struct dane_tlsa_set *set, const char *const *names, int nnames,
    struct dane_result *out);

/* After a handshake: the same with the peer's chain of the SSL object. */
int dane_verify(SSL *ssl, const struct dane_tlsa_set *set,
    const char *const *names, int nnames, struct dane_result *out);

/*
 * SHA-256 over the usable records in a canonical order (the same RRset
 * in another order gives the same value), as hex cut to len - 1 (65 for
 * all of it): for the keys of stored verdicts and caches.
 */
void dane_set_fingerprint(const struct dane_tlsa_set *set, char *hex,
    size_t len);

#endif
