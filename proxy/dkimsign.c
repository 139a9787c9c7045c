/*
 * DKIM signing on BoringSSL (see dkimsign.h): the key, SHA-256, RSA
 * PKCS#1 v1.5 (rsa-sha256, RFC 6376 section 3.3.1) and Ed25519
 * (ed25519-sha256, RFC 8463 section 3: PureEdDSA over the SHA-256 of
 * the signed data).
 *
 * Why this file includes BoringSSL when otherwise only conn.c, tls.c,
 * sign.c and dane.c do: it is a few pure calls on a key, no I/O but the
 * key file and no TLS state, and no other module needs to see a key.
 * tests/check-deps.sh lists it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "dkim.h"
#include "dkimsign.h"

#define KEYFILE_MAX 65536
#define RSA_BITS_MIN 1024 /* RFC 8301 section 3.2: signers MUST use >= 1024 */
#define RSA_BITS_MAX 8192 /* a signature per report is cheap below this */
#define SIG_B64_MAX 1400  /* base64 of an 8192-bit RSA signature, and more */

struct dkim_key {
	EVP_PKEY *pkey;
	int ed25519;
	int refs;
};

/* No passphrase prompt: an encrypted key is refused, never asked for. */
static int
no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

struct dkim_key *
dkim_key_load(const char *path, char *why, size_t whylen)
{
	struct dkim_key *k;
	EVP_PKEY *pkey;
	char *text;
	size_t n;
	BIO *bio;
	FILE *f;
	int bits;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((text = malloc(KEYFILE_MAX)) == NULL) {
		fclose(f);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	n = fread(text, 1, KEYFILE_MAX, f);
	if (ferror(f) || n == KEYFILE_MAX) {
		snprintf(why, whylen, "%s: %s", path, ferror(f) ?
		    strerror(errno) : "larger than a private key");
		fclose(f);
		free(text);
		return NULL;
	}
	fclose(f);
	pkey = NULL;
	if ((bio = BIO_new_mem_buf(text, (int)n)) != NULL) {
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
		BIO_free(bio);
	}
	OPENSSL_cleanse(text, n);
	free(text);
	ERR_clear_error();
	if (pkey == NULL) {
		snprintf(why, whylen, "%s: not a PEM private key (unencrypted "
		    "RSA or Ed25519)", path);
		return NULL;
	}
	bits = EVP_PKEY_bits(pkey);
	if (EVP_PKEY_id(pkey) == EVP_PKEY_RSA && (bits < RSA_BITS_MIN ||
	    bits > RSA_BITS_MAX)) {
		snprintf(why, whylen, "%s: an RSA key of %d bits: DKIM needs "
		    "%d to %d (2048 recommended)", path, bits, RSA_BITS_MIN,
		    RSA_BITS_MAX);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if (EVP_PKEY_id(pkey) != EVP_PKEY_RSA &&
	    EVP_PKEY_id(pkey) != EVP_PKEY_ED25519) {
		snprintf(why, whylen, "%s: neither an RSA nor an Ed25519 key "
		    "(DKIM signs with rsa-sha256 or ed25519-sha256)", path);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(why, whylen, "out of memory");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k->pkey = pkey;
	k->ed25519 = EVP_PKEY_id(pkey) == EVP_PKEY_ED25519;
	k->refs = 1;
	return k;
}

struct dkim_key *
dkim_key_ref(struct dkim_key *k)
{
	if (k != NULL)
		k->refs++;
	return k;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL || --k->refs > 0)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *
dkim_key_alg(const struct dkim_key *k)
{
	return k->ed25519 ? "ed25519-sha256" : "rsa-sha256";
}

int
dkim_sign_data(const struct dkim_key *k, const void *data, size_t len,
    char *b64, size_t b64len)
{
	uint8_t digest[SHA256_DIGEST_LENGTH], *sig;
	size_t siglen = 0, need;
	EVP_MD_CTX *ctx;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (k->ed25519) {
		/* RFC 8463 section 3: Ed25519 signs the SHA-256 hash. */
		SHA256(data, len, digest);
		ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) &&
		    EVP_DigestSign(ctx, NULL, &siglen, digest, sizeof(digest));
		data = digest;
		len = sizeof(digest);
	} else
		ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL,
		    k->pkey) &&
		    EVP_DigestSign(ctx, NULL, &siglen, data, len);
	sig = ok ? malloc(siglen) : NULL;
	ok = sig != NULL && EVP_DigestSign(ctx, sig, &siglen, data, len) &&
	    EVP_EncodedLength(&need, siglen) && need <= b64len;
	if (ok)
		EVP_EncodeBlock((uint8_t *)b64, sig, siglen);
	free(sig);
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok ? 0 : -1;
}

int
dkim_body_hash(const char *body, size_t len, char b64[45])
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	char *canon;
	size_t clen;

	if ((canon = dkim_canon_body(body, len, &clen)) == NULL)
		return -1;
	SHA256((const uint8_t *)canon, clen, digest);
	free(canon);
	EVP_EncodeBlock((uint8_t *)b64, digest, sizeof(digest));
	return 0;
}

char *
dkim_sign(const struct dkim_key *k, const char *d, const char *s, time_t t,
    const char *const *h, int nh, const char *msg, size_t len,
    size_t *outlen)
{
	struct dkim_tags tg;
	char bh[45], sig[SIG_B64_MAX], *tmpl = NULL, *data = NULL;
	char *field = NULL, *out = NULL;
	size_t body, tlen, dlen, flen;

	body = dkim_body_offset(msg, len);
	if (dkim_body_hash(msg + body, len - body, bh) < 0)
		return NULL;
	memset(&tg, 0, sizeof(tg));
	tg.a = dkim_key_alg(k);
	tg.d = d;
	tg.s = s;
	tg.t = t;
	tg.h = h;
	tg.nh = nh;
	tg.bh = bh;
	if ((tmpl = dkim_template(&tg, &tlen)) == NULL ||
	    (data = dkim_signed_data(msg, body, h, nh, tmpl, tlen,
	    &dlen)) == NULL ||
	    dkim_sign_data(k, data, dlen, sig, sizeof(sig)) < 0 ||
	    (field = dkim_field(tmpl, tlen, sig, &flen)) == NULL ||
	    (out = malloc(flen + len + 1)) == NULL)
		goto done;
	memcpy(out, field, flen);
	memcpy(out + flen, msg, len);
	out[flen + len] = '\0';
	*outlen = flen + len;
done:
	free(tmpl);
	free(data);
	free(field);
	return out;
}

/* ---- the key in use, for the report sender ---- */

static struct {
	struct dkim_key *key;
	char d[DKIM_NAME_MAX + 1], s[DKIM_NAME_MAX + 1];
} in_use;

void
dkim_use(struct dkim_key *k, const char *d, const char *s)
{
	struct dkim_key *old = in_use.key;

	in_use.key = NULL;
	if (k != NULL && d != NULL && s != NULL) {
		in_use.key = dkim_key_ref(k);
		snprintf(in_use.d, sizeof(in_use.d), "%s", d);
		snprintf(in_use.s, sizeof(in_use.s), "%s", s);
	}
	dkim_key_free(old);
}

/*
 * What a report's signature covers: the fields RFC 6376 section 5.4.1
 * recommends that the report has, and the two of RFC 8460 section 5.3
 * that name the domains; From twice, so that a second From added on the
 * way breaks the signature (RFC 6376 section 8.15).  Not TLS-Required,
 * which tells the relays how to deliver, not the collector anything.
 */
static const char *const report_fields[] = {
	"from", "to", "subject", "date", "message-id", "mime-version",
	"content-type", "tls-report-domain", "tls-report-submitter", "from",
};

int
dkim_sign_report(char **msg, size_t *len, time_t now)
{
	char *signed_msg;
	size_t n;

	if (in_use.key == NULL)
		return 0;
	if ((signed_msg = dkim_sign(in_use.key, in_use.d, in_use.s,
	    now, report_fields, (int)(sizeof(report_fields) /
	    sizeof(report_fields[0])), *msg, *len, &n)) == NULL)
		return -1;
	free(*msg);
	*msg = signed_msg;
	*len = n;
	return 0;
}
