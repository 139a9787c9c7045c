/*
 * DKIM signatures (RFC 6376, rsa-sha256; RFC 8463, ed25519-sha256) of
 * the TLS reports mxtls mails (RFC 8460 section 3: "Reports sent via
 * SMTP MUST contain a valid DomainKeys Identified Mail (DKIM) [RFC6376]
 * signature by the reporting domain").  policy/dkim.c canonicalizes and
 * builds the field; this file reads the key, hashes and signs.
 *
 * [report] dkim_key, dkim_selector and dkim_domain are read by config.c
 * (the key file through dkim_key_load, at start and at each SIGHUP);
 * main.c names the key of the config in force with dkim_use(), and the
 * report sender signs each mailto: message with dkim_sign_report().
 */
#ifndef MXTLS_DKIMSIGN_H
#define MXTLS_DKIMSIGN_H

#include <stddef.h>
#include <time.h>

struct dkim_key;

/*
 * The private key in the PEM file at path: RSA of at least 1024 bits,
 * or Ed25519 (PKCS#8, as `openssl genpkey -algorithm ed25519` writes).
 * NULL with why when it cannot be read or is neither.  Reference
 * counted: dkim_key_free drops one reference.
 */
struct dkim_key *dkim_key_load(const char *path, char *why, size_t whylen);
struct dkim_key *dkim_key_ref(struct dkim_key *k);
void dkim_key_free(struct dkim_key *k);

/* "rsa-sha256" or "ed25519-sha256". */
const char *dkim_key_alg(const struct dkim_key *k);

/*
 * The base64 of the signature of data (len bytes: dkim_signed_data's)
 * into b64 (NUL-terminated).  0, or -1 when b64 is too small or signing
 * fails.
 */
int dkim_sign_data(const struct dkim_key *k, const void *data, size_t len,
    char *b64, size_t b64len);

/* The base64 SHA-256 of the relaxed canonical body (45 bytes with NUL). */
int dkim_body_hash(const char *body, size_t len, char b64[45]);

/*
 * msg (len bytes, CRLF line ends) with a DKIM-Signature field of key k
 * for domain d and selector s at time t before it, signing the fields
 * named in h (nh names; repeat a name to oversign it).  A new buffer of
 * *outlen bytes, NUL-terminated; NULL when out of memory.
 */
char *dkim_sign(const struct dkim_key *k, const char *d, const char *s,
    time_t t, const char *const *h, int nh, const char *msg, size_t len,
    size_t *outlen);

/*
 * The key, domain (d=) and selector (s=) that sign reports from now on:
 * the config's [report] dkim_*, NULL for none.  The key is referenced,
 * the names copied: the config may be freed after.
 */
void dkim_use(struct dkim_key *k, const char *d, const char *s);

/*
 * *msg (*len bytes, from tlsrpt_mail_build) replaced by itself signed
 * at time now (t=) with the key in use, over the fields of a TLS report
 * (From oversigned); unchanged when no key is configured.  0, or -1
 * when out of memory (*msg is then unchanged).
 */
int dkim_sign_report(char **msg, size_t *len, time_t now);

#endif
