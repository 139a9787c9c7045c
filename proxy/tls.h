/*
 * TLS contexts per profile and verification *facts*.  This module records
 * what is true of a handshake (version, cipher, chain trusted or why not,
 * which name matched or why not); the session and policy decide what to do.
 */
#ifndef MXTLS_TLS_H
#define MXTLS_TLS_H

#include "config.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct x509_st X509;

/* RFC 8460 section 4.3 result types, used in logs and replies. */
enum tls_result {
	TLS_RESULT_OK,
	TLS_RESULT_STARTTLS_NOT_SUPPORTED,
	TLS_RESULT_CERTIFICATE_HOST_MISMATCH,
	TLS_RESULT_CERTIFICATE_EXPIRED,
	TLS_RESULT_CERTIFICATE_NOT_TRUSTED,
	TLS_RESULT_VALIDATION_FAILURE,
	/* DANE (RFC 7672) */
	TLS_RESULT_TLSA_INVALID,   /* no usable TLSA record matched */
	TLS_RESULT_DNSSEC_INVALID, /* a lookup DANE needed was bogus or failed */
	TLS_RESULT_DANE_REQUIRED,  /* dane = only, and the host has no TLSA */
};
const char *tls_result_name(enum tls_result r);

struct tls_facts {
	char version[16]; /* "TLSv1.3" */
	char cipher[64];
	int chain_ok;	 /* chain to the bundle, dates valid */
	int name_ok;	 /* the leaf matched a permitted name */
	int name_by_cn;	 /* ... through its CN: it has no DNS subjectAltName */
	char matched[256];
	enum tls_result result; /* first reason verification failed */
	char reason[320];	/* human text: "certificate has expired" */
	int resumed;
};

/*
 * Build an SSL_CTX for a profile: version range, ciphers, CA bundle.
 * Returns NULL with err set.
 */
SSL_CTX *tls_ctx_new(const struct config *cfg, const struct policy_profile *p,
    char *err, size_t errlen);
void tls_ctx_free(SSL_CTX *ctx);

#define TLS_KEY_MAX 448

/*
 * Prepare an SSL object made by conn_start_tls: it records chain facts,
 * and resumes the cached session of `key` (the upstream host and address)
 * when there is one.  0, or -1 when out of memory.
 */
int tls_prepare(SSL *ssl, const char *key);

/*
 * tls_facts_collect() flag: a leaf without any DNS subjectAltName may
 * match by its subject CN (RFC 6125 6.4.4; what Postfix does).  The
 * caller decides: MTA-STS (RFC 8461 section 4.2) wants a DNS-ID.
 */
#define TLS_NAME_CN_FALLBACK 0x1

/*
 * After a finished handshake: fill facts.  `names` are the names the leaf
 * may match: the MX host, or the policy's mx names for a literal next hop
 * ("*.example.com" patterns match one extra leftmost label, and only
 * subjectAltNames).  The CN is never checked when the leaf has a DNS
 * subjectAltName, and without one only under TLS_NAME_CN_FALLBACK.
 */
void tls_facts_collect(SSL *ssl, const char *const *names, int nnames,
    unsigned flags, struct tls_facts *facts);

/*
 * "a, b, c" of the leaf's DNS names (or its CN, marked, when it has
 * none), bytes other than printable ASCII as \xHH: for reasons in logs
 * and replies.
 */
void tls_leaf_names(X509 *leaf, char *dst, size_t len);

/* A human reason for a failed handshake (alert name, library error). */
void tls_handshake_error(SSL *ssl, int ret, char *dst, size_t len);

/*
 * SHA-256 of s as hex (cut to len - 1), for logging envelope addresses
 * without writing them down (log_addresses = hash) and for keys.
 */
void tls_sha256_hex(const char *s, char *dst, size_t len);

#endif
