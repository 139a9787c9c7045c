/*
 * Ed25519 signatures of the central policy document (docs/behaviour.md section 6,
 * [policy] signing_key): the document at url must come with a detached
 * signature at url + ".sig", checked here before the document is parsed.
 *
 * Keys and signatures travel as standard base64 (RFC 4648, with padding):
 *   public key   32 bytes, 44 characters: the config's signing_key
 *   private key  64 bytes (BoringSSL's form: the RFC 8032 seed followed by
 *                the public key), 88 characters: the file mxtls keygen
 *                writes and mxtls sign-policy reads
 *   signature    64 bytes, 88 characters: the whole .sig file, optionally
 *                followed by whitespace (a newline)
 * The signature covers the document's bytes exactly as served.
 */
#ifndef MXTLS_SIGN_H
#define MXTLS_SIGN_H

#include <stddef.h>

#define SIGN_PUB_B64_LEN 44  /* characters, without the NUL */
#define SIGN_PRIV_B64_LEN 88
#define SIGN_SIG_B64_LEN 88

/*
 * A new key pair, as NUL-terminated base64 into pub (publen > 44) and
 * priv (privlen > 88).  0, or -1 when a buffer is too small.
 */
int sign_keygen(char *pub, size_t publen, char *priv, size_t privlen);

/*
 * Sign len bytes at msg with priv_b64 into sig_b64 (siglen > 88, NUL
 * terminated).  0, or -1 when the private key is not one (not base64 of
 * 64 bytes, or its public half does not belong to its seed) or the buffer
 * is too small.
 */
int sign_make(const char *priv_b64, const void *msg, size_t len,
    char *sig_b64, size_t siglen);

/*
 * 1 when sig_text (sig_len bytes: the .sig file as fetched) is a valid
 * signature of msg by pub_b64, else 0 with *why (when why is not NULL):
 * "signing key is not base64 of 32 bytes", "signature is not base64 of
 * 64 bytes", "bad signature".  *why is NULL on success.
 */
int sign_check(const char *pub_b64, const void *msg, size_t len,
    const char *sig_text, size_t sig_len, const char **why);

/* 1 when pub_b64 is exactly a base64 public key (for config checks). */
int sign_key_valid(const char *pub_b64);

/*
 * The subcommands, argv[0] being the subcommand's name:
 *   keygen -o PRIVATE-KEY-FILE
 *	prints "public-key = BASE64" (for [policy] signing_key) and writes
 *	the private key to a new file, mode 0600; an existing file is never
 *	overwritten
 *   sign-policy -k PRIVATE-KEY-FILE [-o SIGNATURE-FILE] DOCUMENT
 *	writes the signature to DOCUMENT.sig (or SIGNATURE-FILE), replacing
 *	it atomically
 * Returns the exit status: 0, 1 on errors, 2 on usage errors.
 */
int sign_main(int argc, char **argv);

#endif
