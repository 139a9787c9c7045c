#include <ctype.h>
#include <stdlib.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* What we keep per connection, in the SSL's ex_data. */
struct tls_conn {
	uintptr_t chain_err; /* 1 + first chain error + depth << 16, or 0 */
	char key[TLS_KEY_MAX]; /* session cache key: "host|addr:port" */
	int verified;	     /* the facts came out ok: sessions may be kept */
	SSL_SESSION *pending; /* a session that arrived before the facts */
	char weak[128];	      /* a weak key or signature in the chain, or "" */
};

static int tls_ex_index = -1;

/*
 * Client sessions for resumption, per profile context and upstream host:
 * a direct-mapped table, so its size is fixed.  Only sessions of
 * handshakes whose verification passed go in: a resumed handshake runs no
 * chain verification, so an unverified session must never come back.
 */
#define TLS_CACHE_SLOTS 1024

static struct tls_cached {
	const SSL_CTX *ctx;
	char key[TLS_KEY_MAX];
	SSL_SESSION *sess;
} tls_cache[TLS_CACHE_SLOTS];

static struct tls_cached *
tls_cache_slot(const SSL_CTX *ctx, const char *key)
{
	uint64_t h = 1469598103934665603ULL ^ (uintptr_t)ctx;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return &tls_cache[h % TLS_CACHE_SLOTS];
}

static void
tls_cache_put(const SSL_CTX *ctx, const char *key, SSL_SESSION *sess)
{
	struct tls_cached *c = tls_cache_slot(ctx, key);

	if (c->sess != NULL)
		SSL_SESSION_free(c->sess);
	c->ctx = ctx;
	snprintf(c->key, sizeof(c->key), "%s", key);
	c->sess = sess;
}

static void
tls_conn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index,
    long argl, void *argp)
{
	struct tls_conn *tc = ptr;

	(void)parent;
	(void)ad;
	(void)index;
	(void)argl;
	(void)argp;
	if (tc == NULL)
		return;
	if (tc->pending != NULL)
		SSL_SESSION_free(tc->pending);
	free(tc);
}

/* A session (TLS 1.3: a ticket, maybe after the facts) we may resume. */
static int
tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *tc = SSL_get_ex_data(ssl, tls_ex_index);

	if (tc == NULL || tc->key[0] == '\0')
		return 0;
	if (tc->verified) {
		tls_cache_put(SSL_get_SSL_CTX(ssl), tc->key, sess);
		return 1;
	}
	if (tc->pending != NULL)
		SSL_SESSION_free(tc->pending);
	tc->pending = sess;
	return 1;
}

static const char *const tls_result_names[] = {
	[TLS_RESULT_OK] = "ok",
	[TLS_RESULT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
	[TLS_RESULT_CERTIFICATE_HOST_MISMATCH] = "certificate-host-mismatch",
	[TLS_RESULT_CERTIFICATE_EXPIRED] = "certificate-expired",
	[TLS_RESULT_CERTIFICATE_NOT_TRUSTED] = "certificate-not-trusted",
	[TLS_RESULT_VALIDATION_FAILURE] = "validation-failure",
	[TLS_RESULT_TLSA_INVALID] = "tlsa-invalid",
	[TLS_RESULT_DNSSEC_INVALID] = "dnssec-invalid",
	[TLS_RESULT_DANE_REQUIRED] = "dane-required",
};

const char *
tls_result_name(enum tls_result r)
{
	return tls_result_names[r];
}

/*
 * Record, never decide: the handshake completes whatever the chain looks
 * like and the session enforces the profile afterwards (Postfix's split of
 * facts and policy).  Only the first error is kept: it is the root cause.
 */
/*
 * What BoringSSL's verifier lets through and the web PKI refuses (CA/B
 * Baseline Requirements 6.1.5, 7.1.3): RSA keys under 2048 bits anywhere
 * in the chain, signatures other than SHA-2 (RSA, RSA-PSS, ECDSA) or
 * Ed25519 on any certificate but the trust anchor.  NULL or why.
 */
static const char *
tls_weak_cert(X509 *cert, int anchor, char *buf, size_t len)
{
	EVP_PKEY *k = X509_get_pubkey(cert);
	int bits = k != NULL ? EVP_PKEY_bits(k) : 0;
	int rsa = k != NULL && EVP_PKEY_id(k) == EVP_PKEY_RSA;

	EVP_PKEY_free(k);
	if (rsa && bits < 2048) {
		snprintf(buf, len, "certificate key too weak (RSA %d bits)",
		    bits);
		return buf;
	}
	if (anchor)
		return NULL;
	switch (X509_get_signature_nid(cert)) {
	case NID_sha256WithRSAEncryption:
	case NID_sha384WithRSAEncryption:
	case NID_sha512WithRSAEncryption:
	case NID_rsassaPss:
	case NID_ecdsa_with_SHA256:
	case NID_ecdsa_with_SHA384:
	case NID_ecdsa_with_SHA512:
	case NID_ED25519:
		return NULL;
	}
	snprintf(buf, len, "certificate signature algorithm too weak (%s)",
	    OBJ_nid2sn(X509_get_signature_nid(cert)));
	return buf;
}

static int
tls_verify_cb(int ok, X509_STORE_CTX *store)
{
	struct tls_conn *tc;
	SSL *ssl;

	ssl = X509_STORE_CTX_get_ex_data(store,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	if (ok) {
		STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(store);
		int depth = X509_STORE_CTX_get_error_depth(store);
		char why[96];
		const char *w;

		if (ssl != NULL &&
		    (tc = SSL_get_ex_data(ssl, tls_ex_index)) != NULL &&
		    tc->weak[0] == '\0' &&
		    (w = tls_weak_cert(X509_STORE_CTX_get_current_cert(store),
		    chain != NULL && depth == (int)sk_X509_num(chain) - 1, why,
		    sizeof(why))) != NULL)
			snprintf(tc->weak, sizeof(tc->weak), "%s (depth %d)", w,
			    depth);
		return 1;
	}
	if (ssl != NULL && (tc = SSL_get_ex_data(ssl, tls_ex_index)) != NULL &&
	    tc->chain_err == 0)
		tc->chain_err = 1 + (uintptr_t)X509_STORE_CTX_get_error(store) +
		    ((uintptr_t)X509_STORE_CTX_get_error_depth(store) << 16);
	return 1;
}

SSL_CTX *
tls_ctx_new(const struct config *cfg, const struct policy_profile *p,
    char *err, size_t errlen)
{
	SSL_CTX *ctx;
	const char *ciphers = config_profile_ciphers(cfg, p);
	const char *bundle = config_profile_ca_bundle(cfg, p);

	if (tls_ex_index == -1)
		tls_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    tls_conn_free);
	if ((ctx = SSL_CTX_new(TLS_method())) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new failed");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx,
	    (uint16_t)config_profile_min_version(cfg, p)) ||
	    !SSL_CTX_set_max_proto_version(ctx,
	    (uint16_t)config_profile_max_version(cfg, p))) {
		snprintf(err, errlen, "profile %s: unsupported TLS version",
		    p->name);
		goto fail;
	}
	if (ciphers != NULL && !SSL_CTX_set_strict_cipher_list(ctx, ciphers)) {
		snprintf(err, errlen, "profile %s: invalid cipher list \"%s\"",
		    p->name, ciphers);
		goto fail;
	}
	/* Loaded for verify = none too, so the log can say what was wrong. */
	if (!SSL_CTX_load_verify_locations(ctx, bundle, NULL)) {
		snprintf(err, errlen, "profile %s: cannot load CA bundle %s",
		    p->name, bundle);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_cb);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(ctx, tls_new_session);
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_ctx_free(SSL_CTX *ctx)
{
	int i;

	/* A later context may get the same address: drop its sessions. */
	for (i = 0; i < TLS_CACHE_SLOTS; i++)
		if (tls_cache[i].ctx == ctx && tls_cache[i].sess != NULL) {
			SSL_SESSION_free(tls_cache[i].sess);
			tls_cache[i].sess = NULL;
			tls_cache[i].ctx = NULL;
		}
	SSL_CTX_free(ctx);
}

int
tls_prepare(SSL *ssl, const char *key)
{
	struct tls_conn *tc;
	struct tls_cached *c;

	if ((tc = calloc(1, sizeof(*tc))) == NULL)
		return -1;
	snprintf(tc->key, sizeof(tc->key), "%s", key);
	if (!SSL_set_ex_data(ssl, tls_ex_index, tc)) {
		free(tc);
		return -1;
	}
	c = tls_cache_slot(SSL_get_SSL_CTX(ssl), key);
	if (c->sess != NULL && c->ctx == SSL_get_SSL_CTX(ssl) &&
	    strcmp(c->key, key) == 0)
		SSL_set_session(ssl, c->sess);
	return 0;
}

static enum tls_result
tls_classify(long code)
{
	switch (code) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return TLS_RESULT_CERTIFICATE_EXPIRED;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		return TLS_RESULT_CERTIFICATE_NOT_TRUSTED;
	default:
		return TLS_RESULT_VALIDATION_FAILURE;
	}
}

/*
 * A name from a certificate as text, bytes other than printable ASCII as
 * \xHH: a NUL in "mx.example.com\0.evil.test" must not cut the name
 * short in a reply or log.  Returns the length written (< len).
 */
static size_t
tls_name_text(char *dst, size_t len, const ASN1_STRING *name)
{
	const unsigned char *s = ASN1_STRING_get0_data(name);
	int i, slen = ASN1_STRING_length(name);
	size_t used = 0;

	for (i = 0; i < slen && used + 5 < len; i++)
		used += (size_t)(s[i] > 0x20 && s[i] < 0x7f ?
		    snprintf(dst + used, len - used, "%c", s[i]) :
		    snprintf(dst + used, len - used, "\\x%02x", s[i]));
	if (len > 0)
		dst[used] = '\0';
	return used;
}

void
tls_leaf_names(X509 *leaf, char *dst, size_t len)
{
	GENERAL_NAMES *sans;
	size_t used = 0;
	int i, n, shown = 0;

	dst[0] = '\0';
	sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	n = sans != NULL ? (int)sk_GENERAL_NAME_num(sans) : 0;
	for (i = 0; i < n && shown < 4 && used + 8 < len; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);

		if (gn->type != GEN_DNS)
			continue;
		if (shown)
			used += (size_t)snprintf(dst + used, len - used, ", ");
		used += tls_name_text(dst + used, len - used,
		    gn->d.dNSName);
		shown++;
	}
	if (sans != NULL)
		GENERAL_NAMES_free(sans);
	if (shown == 0) {
		X509_NAME *subj = X509_get_subject_name(leaf);
		int at = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);

		if (at >= 0) {
			used = tls_name_text(dst, len, X509_NAME_ENTRY_get_data(
			    X509_NAME_get_entry(subj, at)));
			snprintf(dst + used, len - used, " (CN)");
		} else
			snprintf(dst, len, "no names");
	}
}

/* Does the leaf carry a DNS subjectAltName (a DNS-ID, RFC 6125)? */
static int
tls_leaf_has_dns_san(X509 *leaf)
{
	GENERAL_NAMES *sans;
	int i, n, found = 0;

	sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	n = sans != NULL ? (int)sk_GENERAL_NAME_num(sans) : 0;
	for (i = 0; i < n && !found; i++)
		found = sk_GENERAL_NAME_value(sans, i)->type == GEN_DNS;
	if (sans != NULL)
		GENERAL_NAMES_free(sans);
	return found;
}

/*
 * A policy pattern "*.example.com" names a set of hosts; the leaf matches
 * when one of its DNS names lies in that set (or is the same wildcard).
 */
static int
tls_leaf_matches_pattern(X509 *leaf, const char *pattern)
{
	GENERAL_NAMES *sans;
	int i, n, ok = 0;

	sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	n = sans != NULL ? (int)sk_GENERAL_NAME_num(sans) : 0;
	for (i = 0; i < n && !ok; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		char name[256];
		int slen;

		if (gn->type != GEN_DNS)
			continue;
		slen = ASN1_STRING_length(gn->d.dNSName);
		if (slen <= 0 || slen >= (int)sizeof(name))
			continue;
		memcpy(name, ASN1_STRING_get0_data(gn->d.dNSName),
		    (size_t)slen);
		name[slen] = '\0';
		if (memchr(name, '\0', (size_t)slen) != NULL)
			continue;
		ok = strcasecmp(name, pattern) == 0 ||
		    (name[0] != '*' && policy_mx_pattern_match(pattern, name));
	}
	if (sans != NULL)
		GENERAL_NAMES_free(sans);
	return ok;
}

void
tls_facts_collect(SSL *ssl, const char *const *names, int nnames,
    unsigned flags, struct tls_facts *f)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
	struct tls_conn *tc = SSL_get_ex_data(ssl, tls_ex_index);
	uintptr_t rec = tc != NULL ? tc->chain_err : 0;
	X509 *leaf;
	char have[256];
	unsigned check;
	int i, dns_san;

	memset(f, 0, sizeof(*f));
	snprintf(f->version, sizeof(f->version), "%s", SSL_get_version(ssl));
	snprintf(f->cipher, sizeof(f->cipher), "%s",
	    cipher != NULL ? SSL_CIPHER_standard_name(cipher) : "none");
	f->resumed = SSL_session_reused(ssl);
	f->result = TLS_RESULT_OK;

	if ((leaf = SSL_get_peer_certificate(ssl)) == NULL) {
		f->result = TLS_RESULT_VALIDATION_FAILURE;
		snprintf(f->reason, sizeof(f->reason),
		    "server sent no certificate");
		return;
	}
	if (rec != 0) {
		long code = (long)((rec - 1) & 0xffff);
		int depth = (int)((rec - 1) >> 16);

		f->result = tls_classify(code);
		snprintf(f->reason, sizeof(f->reason), "%s (depth %d)",
		    X509_verify_cert_error_string(code), depth);
	} else if (tc != NULL && tc->weak[0] != '\0') {
		f->result = TLS_RESULT_VALIDATION_FAILURE;
		snprintf(f->reason, sizeof(f->reason), "%s", tc->weak);
	} else
		f->chain_ok = 1;

	dns_san = tls_leaf_has_dns_san(leaf);
	check = dns_san || (flags & TLS_NAME_CN_FALLBACK) ? 0 :
	    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
	for (i = 0; i < nnames && !f->name_ok; i++) {
		const char *n = names[i];

		if (n[0] == '*' && n[1] == '.')
			f->name_ok = tls_leaf_matches_pattern(leaf, n);
		else
			f->name_ok = X509_check_host(leaf, n, strlen(n), check,
			    NULL) == 1;
		if (f->name_ok)
			snprintf(f->matched, sizeof(f->matched), "%s", n);
	}
	f->name_by_cn = f->name_ok && !dns_san;
	if (!f->name_ok && f->result == TLS_RESULT_OK) {
		f->result = TLS_RESULT_CERTIFICATE_HOST_MISMATCH;
		tls_leaf_names(leaf, have, sizeof(have));
		if (check != 0)
			snprintf(f->reason, sizeof(f->reason),
			    "no DNS name in the certificate's subjectAltName "
			    "(its CN is not accepted instead): wanted %s, "
			    "certificate is for %s", nnames > 0 ? names[0] :
			    "(no permitted name)", have);
		else
			snprintf(f->reason, sizeof(f->reason),
			    "hostname mismatch: wanted %s%s, certificate is "
			    "for %s", nnames > 0 ? names[0] :
			    "(no permitted name)",
			    nnames > 1 ? " or another permitted name" : "",
			    have);
	}
	X509_free(leaf);
	/* Verified: this handshake's sessions may be resumed later. */
	if (tc != NULL && f->result == TLS_RESULT_OK) {
		tc->verified = 1;
		if (tc->pending != NULL) {
			tls_cache_put(SSL_get_SSL_CTX(ssl), tc->key,
			    tc->pending);
			tc->pending = NULL;
		}
	}
}

/* "TLSV1_ALERT_PROTOCOL_VERSION" → "alert protocol_version". */
static void
tls_reason_text(uint32_t e, char *dst, size_t len)
{
	const char *r = ERR_reason_error_string(e);
	const char *alert;
	size_t i;

	if (r == NULL) {
		snprintf(dst, len, "TLS error %u", (unsigned)e);
		return;
	}
	/* Plaintext where a TLS record should be: injected or not TLS. */
	if (strcmp(r, "WRONG_VERSION_NUMBER") == 0) {
		snprintf(dst, len, "not a TLS record during the handshake "
		    "(plaintext injected after STARTTLS?)");
		return;
	}
	if ((alert = strstr(r, "ALERT_")) != NULL) {
		snprintf(dst, len, "alert %s", alert + 6);
		for (i = 6; dst[i] != '\0'; i++)
			dst[i] = (char)tolower((unsigned char)dst[i]);
		return;
	}
	snprintf(dst, len, "%s", r);
	for (i = 0; dst[i] != '\0'; i++)
		dst[i] = dst[i] == '_' ? ' ' :
		    (char)tolower((unsigned char)dst[i]);
}

void
tls_handshake_error(SSL *ssl, int ret, char *dst, size_t len)
{
	int e = SSL_get_error(ssl, ret);
	uint32_t code;

	switch (e) {
	case SSL_ERROR_SSL:
		code = ERR_peek_error();
		tls_reason_text(code, dst, len);
		break;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() != 0)
			tls_reason_text(ERR_peek_error(), dst, len);
		else if (errno != 0)
			snprintf(dst, len, "TLS I/O: %s", strerror(errno));
		else
			snprintf(dst, len, "connection closed during TLS");
		break;
	case SSL_ERROR_ZERO_RETURN:
		snprintf(dst, len, "peer sent close_notify");
		break;
	default:
		snprintf(dst, len, "TLS error %d", e);
	}
	ERR_clear_error();
}

void
tls_sha256_hex(const char *s, char *dst, size_t len)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t i;

	static const char hex[] = "0123456789abcdef";

	if (len == 0)
		return;
	SHA256((const unsigned char *)s, strlen(s), md);
	/* By hand: snprintf per byte cost more than the hash itself. */
	for (i = 0; i < sizeof(md) && 2 * i + 2 < len; i++) {
		dst[2 * i] = hex[md[i] >> 4];
		dst[2 * i + 1] = hex[md[i] & 15];
	}
	dst[2 * i] = '\0';
}
