#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "dane.h"
#include "tls.h"

/*
 * Certificates of the sent chain looked at, the leaf included.  Real
 * chains have 2 to 4; what a server sends beyond this is ignored, so a
 * hostile one cannot make us hash and verify without end.
 */
#define DANE_CHAIN_MAX 16

/* One certificate and the two encodings a TLSA selector may name. */
struct dane_cert {
	X509 *x;
	unsigned char *der[2]; /* [0] the certificate, [1] its SPKI */
	size_t len[2];
};

static int
dane_encode(struct dane_cert *c)
{
	uint8_t *p = NULL;
	int n;

	if ((n = i2d_X509(c->x, &p)) <= 0)
		return -1;
	c->der[0] = p;
	c->len[0] = (size_t)n;
	p = NULL;
	if ((n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c->x), &p)) <= 0)
		return -1;
	c->der[1] = p;
	c->len[1] = (size_t)n;
	return 0;
}

static void
dane_cert_free(struct dane_cert *c)
{
	OPENSSL_free(c->der[0]);
	OPENSSL_free(c->der[1]);
	memset(c, 0, sizeof(*c));
}

/* Does the usable record t name this certificate? */
static int
dane_match_cert(const struct dane_tlsa *t, const struct dane_cert *c)
{
	unsigned char md[SHA512_DIGEST_LENGTH];
	const unsigned char *d;
	size_t len;

	/* Only usable records come here; an index is checked all the same. */
	if (t->selector > 1)
		return 0;
	d = c->der[t->selector];
	len = c->len[t->selector];
	switch (t->mtype) {
	case 0:
		return t->len == len && memcmp(t->data, d, len) == 0;
	case 1:
		SHA256(d, len, md);
		return t->len == SHA256_DIGEST_LENGTH &&
		    memcmp(t->data, md, SHA256_DIGEST_LENGTH) == 0;
	case 2:
		SHA512(d, len, md);
		return t->len == SHA512_DIGEST_LENGTH &&
		    memcmp(t->data, md, SHA512_DIGEST_LENGTH) == 0;
	}
	return 0;
}

/* A name from a certificate, other bytes than printable ASCII as \xHH. */
/*
 * RFC 7672 3.2.3: DNS-IDs of the subjectAltName, the CN only when there
 * is none; a wildcard only as the whole leftmost label, matching one
 * label.  BoringSSL's X509_check_host does just that.  The first name
 * that matches, or NULL.
 */
static const char *
dane_check_names(X509 *leaf, const char *const *names, int nnames)
{
	char name[256];
	size_t n;
	int i;

	for (i = 0; i < nnames; i++) {
		if (names[i] == NULL || (n = strlen(names[i])) == 0 ||
		    n >= sizeof(name))
			continue;
		/* The MX host may come as an absolute name. */
		memcpy(name, names[i], n + 1);
		if (n > 1 && name[n - 1] == '.')
			name[--n] = '\0';
		if (X509_check_host(leaf, name, n,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1)
			return names[i];
	}
	return NULL;
}

/* "mx.example.net or example.net" */
static void
dane_wanted(const char *const *names, int nnames, char *dst, size_t len)
{
	size_t used = 0;
	int i;

	dst[0] = '\0';
	for (i = 0; i < nnames && used + 1 < len; i++)
		used += (size_t)snprintf(dst + used, len - used, "%s%s",
		    i > 0 ? " or " : "", names[i]);
	if (nnames == 0)
		snprintf(dst, len, "(no name)");
}

/*
 * The chain from the leaf up to anchor must verify with anchor as the
 * only trust anchor (PARTIAL_CHAIN: it need not be self-signed): the
 * signatures, the CA flags and the dates.  The sent certificates are
 * only candidates for the path.  0 with *depth the anchor's depth in the
 * verified chain, or -1 with why.
 */
static int
dane_chain_to(X509 *leaf, STACK_OF(X509) *untrusted, X509 *anchor,
    int *depth, char *why, size_t whylen)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *chain;
	int i, ret = -1;

	if ((store = X509_STORE_new()) == NULL ||
	    !X509_STORE_add_cert(store, anchor) ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(ctx, store, leaf, untrusted)) {
		snprintf(why, whylen, "out of memory");
		goto done;
	}
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
	if (X509_verify_cert(ctx) != 1) {
		int e = X509_STORE_CTX_get_error(ctx);

		snprintf(why, whylen, "%s (depth %d)",
		    X509_verify_cert_error_string(e),
		    X509_STORE_CTX_get_error_depth(ctx));
		goto done;
	}
	chain = X509_STORE_CTX_get0_chain(ctx);
	*depth = -1;
	for (i = 0; chain != NULL && i < (int)sk_X509_num(chain); i++)
		if (X509_cmp(sk_X509_value(chain, i), anchor) == 0)
			*depth = i;
	/* The store holds nothing else: the chain cannot end elsewhere. */
	if (*depth < 1) {
		snprintf(why, whylen, "the chain does not end at the trust anchor");
		goto done;
	}
	ret = 0;
done:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ret;
}

/* A 2 0 0 record carries the whole trust anchor: it need not be sent. */
static X509 *
dane_full_ta(const struct dane_tlsa *t)
{
	const uint8_t *p = t->data;
	X509 *x;

	if (t->usage != 2 || t->selector != 0 || t->mtype != 0 ||
	    t->len > LONG_MAX)
		return NULL;
	x = d2i_X509(NULL, &p, (long)t->len);
	/* Trailing bytes: not the DER of one certificate. */
	if (x != NULL && p != t->data + t->len) {
		X509_free(x);
		x = NULL;
	}
	ERR_clear_error();
	return x;
}

/* "3 1 1 ab12cd34..., 2 1 1 ..." of the usable records, as many as fit. */
static void
dane_records_text(const struct dane_tlsa_set *set, char *dst, size_t len)
{
	char one[48];
	size_t used = 0;
	int i, shown = 0;

	dst[0] = '\0';
	for (i = 0; i < set->n; i++) {
		if (!set->rec[i].usable)
			continue;
		dane_tlsa_text(&set->rec[i], one, sizeof(one));
		if (used + strlen(one) + 8 >= len) {
			snprintf(dst + used, len - used, ", ...");
			return;
		}
		used += (size_t)snprintf(dst + used, len - used, "%s%s",
		    shown++ ? ", " : "", one);
	}
}

static void
dane_set_match(struct dane_result *out, const struct dane_tlsa *t, int depth)
{
	out->matched = 1;
	out->usage = t->usage;
	out->selector = t->selector;
	out->mtype = t->mtype;
	out->depth = depth;
	out->reason[0] = '\0';
}

int
dane_verify_chain(X509 *leaf, STACK_OF(X509) *sent,
    const struct dane_tlsa_set *set, const char *const *names, int nnames,
    struct dane_result *out)
{
	struct dane_cert certs[DANE_CHAIN_MAX];
	STACK_OF(X509) *untrusted = NULL;
	char text[128], why[160], have[160], wanted[160];
	const char *host = nnames > 0 && names[0] != NULL ? names[0] :
	    "the host";
	int ncerts = 0, i, j, nta = 0, specific = 0;

	memset(out, 0, sizeof(*out));
	out->usage = out->selector = out->mtype = out->depth = -1;
	memset(certs, 0, sizeof(certs));
	if (leaf == NULL) {
		snprintf(out->reason, sizeof(out->reason),
		    "the server sent no certificate");
		return 0;
	}
	if (set == NULL || set->nusable == 0) {
		snprintf(out->reason, sizeof(out->reason),
		    "no usable TLSA records for %s", host);
		return 0;
	}
	/* The leaf at depth 0, then what was sent, without the leaf again. */
	certs[ncerts++].x = leaf;
	for (i = 0; sent != NULL && i < (int)sk_X509_num(sent) &&
	    ncerts < DANE_CHAIN_MAX; i++) {
		X509 *x = sk_X509_value(sent, i);

		if (x != NULL && X509_cmp(x, leaf) != 0)
			certs[ncerts++].x = x;
	}
	if ((untrusted = sk_X509_new_null()) == NULL)
		goto oom;
	for (i = 0; i < ncerts; i++)
		if (dane_encode(&certs[i]) != 0 ||
		    (i > 0 && !sk_X509_push(untrusted, certs[i].x)))
			goto oom;

	/* DANE-EE(3): the leaf's certificate or key; nothing else counts. */
	for (i = 0; i < set->n; i++) {
		const struct dane_tlsa *t = &set->rec[i];

		if (t->usable && t->usage == 3 &&
		    dane_match_cert(t, &certs[0])) {
			dane_set_match(out, t, 0);
			goto done;
		}
	}

	/*
	 * DANE-TA(2), at depth 1 and up only: RFC 7672 3.1.2 has the trust
	 * anchor issue the server's chain, and sent with it "even when it is
	 * a self-signed root".  A record naming the leaf itself is DANE-EE's
	 * business (OpenSSL's DANE verifier tries only the EE usages at depth
	 * 0 too); taking the leaf as its own anchor would also skip the
	 * chain that DANE-TA promises to check.
	 */
	for (i = 0; i < set->n; i++) {
		const struct dane_tlsa *t = &set->rec[i];
		X509 *anchor = NULL, *full = NULL;
		int depth, found = 0;

		if (!t->usable || t->usage != 2)
			continue;
		nta++;
		dane_tlsa_text(t, text, sizeof(text));
		/*
		 * The first certificate that fits is enough: another with the
		 * same key (a cross-signed copy) has the same subject too, and
		 * the verifier finds issuers in the store by subject and key.
		 */
		for (j = 1; j < ncerts && !found; j++)
			if (dane_match_cert(t, &certs[j])) {
				found = j;
				anchor = certs[j].x;
			}
		if (anchor == NULL && (full = dane_full_ta(t)) != NULL)
			anchor = full;
		if (anchor == NULL)
			continue;
		if (dane_chain_to(leaf, untrusted, anchor, &depth, why,
		    sizeof(why)) == 0) {
			const char *name = dane_check_names(leaf, names, nnames);

			if (name != NULL) {
				X509_free(full);
				dane_set_match(out, t, depth);
				snprintf(out->matched_name,
				    sizeof(out->matched_name), "%s", name);
				goto done;
			}
			if (!specific) {
				tls_leaf_names(leaf, have, sizeof(have));
				dane_wanted(names, nnames, wanted,
				    sizeof(wanted));
				snprintf(out->reason, sizeof(out->reason),
				    "DANE-TA %s matched depth %d but the "
				    "certificate is for %s (wanted %s)", text,
				    depth, have, wanted);
			}
		} else if (!specific) {
			if (found)
				snprintf(out->reason, sizeof(out->reason),
				    "DANE-TA %s matched depth %d but the chain "
				    "to it did not verify: %s", text, found,
				    why);
			else
				snprintf(out->reason, sizeof(out->reason),
				    "DANE-TA %s (the certificate in the "
				    "record): the chain to it did not verify: "
				    "%s", text, why);
		}
		specific = 1;
		X509_free(full);
	}

	/* No record fit: say why as precisely as the records allow. */
	if (specific)
		goto done;
	dane_records_text(set, text, sizeof(text));
	if (nta == 0)
		snprintf(out->reason, sizeof(out->reason), set->nusable == 1 ?
		    "TLSA %s for %s did not match the certificate" :
		    "no TLSA record for %s matched the certificate (%s)",
		    set->nusable == 1 ? text : host,
		    set->nusable == 1 ? host : text);
	else if (nta == set->nusable)
		snprintf(out->reason, sizeof(out->reason),
		    "DANE-TA %s for %s matched no certificate the server "
		    "sent: the server did not send the trust anchor", text,
		    host);
	else
		snprintf(out->reason, sizeof(out->reason),
		    "no TLSA record for %s matched (%s): not the certificate, "
		    "and the server did not send the trust anchor of the "
		    "DANE-TA records", host, text);
	goto done;
oom:
	snprintf(out->reason, sizeof(out->reason),
	    "out of memory checking TLSA records for %s", host);
done:
	sk_X509_free(untrusted);
	for (i = 0; i < ncerts; i++)
		dane_cert_free(&certs[i]);
	ERR_clear_error();
	return out->matched;
}

int
dane_verify(SSL *ssl, const struct dane_tlsa_set *set,
    const char *const *names, int nnames, struct dane_result *out)
{
	X509 *leaf = SSL_get_peer_certificate(ssl);
	int ret;

	/* A client's peer chain holds the leaf too: dane_verify_chain skips it. */
	ret = dane_verify_chain(leaf, SSL_get_peer_cert_chain(ssl), set, names,
	    nnames, out);
	X509_free(leaf);
	return ret;
}

static int
dane_tlsa_cmp(const void *a, const void *b)
{
	const struct dane_tlsa *x = *(const struct dane_tlsa *const *)a;
	const struct dane_tlsa *y = *(const struct dane_tlsa *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c;

	if (x->usage != y->usage)
		return x->usage - y->usage;
	if (x->selector != y->selector)
		return x->selector - y->selector;
	if (x->mtype != y->mtype)
		return x->mtype - y->mtype;
	if ((c = n > 0 ? memcmp(x->data, y->data, n) : 0) != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

void
dane_set_fingerprint(const struct dane_tlsa_set *set, char *hex, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const struct dane_tlsa *sorted[DANE_TLSA_MAX];
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256_CTX sha;
	int i, n = 0;
	size_t k;

	if (len == 0)
		return;
	for (i = 0; set != NULL && i < set->n; i++)
		if (set->rec[i].usable)
			sorted[n++] = &set->rec[i];
	qsort(sorted, (size_t)n, sizeof(sorted[0]), dane_tlsa_cmp);
	SHA256_Init(&sha);
	SHA256_Update(&sha, "mxtls-dane-1", 12);
	for (i = 0; i < n; i++) {
		/* Fields and a length: no two sets hash the same input. */
		unsigned char head[7] = { sorted[i]->usage, sorted[i]->selector,
			sorted[i]->mtype, (unsigned char)(sorted[i]->len >> 24),
			(unsigned char)(sorted[i]->len >> 16),
			(unsigned char)(sorted[i]->len >> 8),
			(unsigned char)sorted[i]->len };

		SHA256_Update(&sha, head, sizeof(head));
		SHA256_Update(&sha, sorted[i]->data, sorted[i]->len);
	}
	SHA256_Final(md, &sha);
	for (k = 0; k < sizeof(md) && 2 * k + 2 < len; k++) {
		hex[2 * k] = digits[md[k] >> 4];
		hex[2 * k + 1] = digits[md[k] & 15];
	}
	hex[2 * k] = '\0';
}
