/*
 * Ed25519 for the central policy (see sign.h), on BoringSSL's
 * <openssl/curve25519.h>, and the two small tools that make keys and
 * signatures: mxtls keygen and mxtls sign-policy.
 *
 * Why this file includes BoringSSL when otherwise only conn.c and tls.c
 * do: signing is a few pure calls with no I/O or TLS state, and no other
 * module needs to see a key.  tests/check-deps.sh lists it.
 *
 * Base64 is decoded with EVP_DecodeBase64, which is strict (no
 * whitespace, no line breaks, padding required): a key or signature that
 * is not exactly the expected form is refused, not repaired.  Only
 * trailing whitespace is allowed in a .sig file or a key file, because
 * editors and `echo` add a newline.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/base64.h>
#include <openssl/curve25519.h>
#include <openssl/mem.h>

#include "document.h"
#include "usage.h"
#include "sign.h"

#define B64_IN_MAX 128 /* longer than any key or signature we accept */
#define KEYFILE_MAX 4096

/*
 * Decode exactly want bytes from the n characters at s.  0, or -1 when s
 * is not base64 or decodes to another length.
 */
static int
b64_exact(const char *s, size_t n, uint8_t *out, size_t want)
{
	uint8_t buf[B64_IN_MAX];
	size_t len;

	if (s == NULL || n == 0 || n > B64_IN_MAX ||
	    !EVP_DecodeBase64(buf, &len, sizeof(buf), (const uint8_t *)s, n) ||
	    len != want) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	memcpy(out, buf, want);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* Base64 of n bytes into out (outlen includes the NUL): 0 or -1. */
static int
b64_put(char *out, size_t outlen, const uint8_t *in, size_t n)
{
	size_t need;

	if (!EVP_EncodedLength(&need, n) || need > outlen)
		return -1;
	EVP_EncodeBlock((uint8_t *)out, in, n);
	return 0;
}

static size_t
trim_right(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	return n;
}

/*
 * A private key: base64 of 64 bytes whose second half is the public key
 * of the first (the seed).  A key damaged in its public half would sign
 * with a wrong key and produce signatures nobody can verify: refuse it.
 */
static int
priv_decode(const char *b64, size_t n, uint8_t priv[64])
{
	uint8_t pub[32], again[64];
	int ok;

	if (b64_exact(b64, n, priv, 64) == -1)
		return -1;
	ED25519_keypair_from_seed(pub, again, priv);
	ok = CRYPTO_memcmp(again, priv, 64) == 0;
	OPENSSL_cleanse(again, sizeof(again));
	if (!ok) {
		OPENSSL_cleanse(priv, 64);
		return -1;
	}
	return 0;
}

int
sign_keygen(char *pub, size_t publen, char *priv, size_t privlen)
{
	uint8_t pk[32], sk[64];
	int r = 0;

	ED25519_keypair(pk, sk);
	if (b64_put(pub, publen, pk, sizeof(pk)) == -1 ||
	    b64_put(priv, privlen, sk, sizeof(sk)) == -1)
		r = -1;
	OPENSSL_cleanse(sk, sizeof(sk));
	return r;
}

int
sign_make(const char *priv_b64, const void *msg, size_t len, char *sig_b64,
    size_t siglen)
{
	uint8_t sk[64], sig[64];
	int r = -1;

	if (priv_b64 == NULL ||
	    priv_decode(priv_b64, strlen(priv_b64), sk) == -1)
		return -1;
	if (ED25519_sign(sig, msg, len, sk) &&
	    b64_put(sig_b64, siglen, sig, sizeof(sig)) == 0)
		r = 0;
	OPENSSL_cleanse(sk, sizeof(sk));
	return r;
}

int
sign_check(const char *pub_b64, const void *msg, size_t len,
    const char *sig_text, size_t sig_len, const char **why)
{
	uint8_t pk[32], sig[64];
	const char *w = NULL;

	if (pub_b64 == NULL ||
	    b64_exact(pub_b64, strlen(pub_b64), pk, sizeof(pk)) == -1)
		w = "signing key is not base64 of 32 bytes";
	else if (sig_text == NULL || b64_exact(sig_text, trim_right(sig_text,
	    sig_len), sig, sizeof(sig)) == -1)
		w = "signature is not base64 of 64 bytes";
	else if (!ED25519_verify(msg, len, sig, pk))
		w = "bad signature";
	if (why != NULL)
		*why = w;
	return w == NULL;
}

int
sign_key_valid(const char *pub_b64)
{
	uint8_t pk[32];

	return pub_b64 != NULL &&
	    b64_exact(pub_b64, strlen(pub_b64), pk, sizeof(pk)) == 0;
}

/* ---- the tools ---- */

/* The usage of cmd (keygen, sign-policy), the same text as in mxtls -h. */
static void
sign_usage(const char *cmd)
{
	usage_write(stderr, cmd, 0);
}

static const struct option sign_longopts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* getopt said '?' (opterr is off): say which option, then the usage. */
static int
sign_bad_option(const char *cmd, const char *withargs)
{
	if (optopt != 0 && strchr(withargs, optopt) != NULL)
		fprintf(stderr, "mxtls %s: -%c needs an argument\n", cmd,
		    optopt);
	else if (optopt != 0)
		fprintf(stderr, "mxtls %s: unknown option -%c\n", cmd, optopt);
	else
		fprintf(stderr, "mxtls %s: unknown option\n", cmd);
	sign_usage(cmd);
	return 2;
}

/* Write all of buf to fd: 0 or -1 (errno). */
static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read a whole file of at most max bytes into a new NUL-terminated
 * buffer.  NULL with a message on stderr.
 */
static char *
read_file(const char *cmd, const char *path, size_t max, size_t *lenp)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "mxtls %s: %s: %s\n", cmd, path,
		    strerror(errno));
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			/* One byte past max tells "too large" apart. */
			cap = cap == 0 ? 65536 : cap * 2;
			if (cap > max + 1)
				cap = max + 1;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				fprintf(stderr, "mxtls %s: out of memory\n",
				    cmd);
				goto fail;
			}
			buf = nb;
		}
		if ((n = read(fd, buf + len, cap - len)) == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "mxtls %s: %s: %s\n", cmd, path,
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			fprintf(stderr, "mxtls %s: %s: larger than %zu bytes\n",
			    cmd, path, max);
			goto fail;
		}
	}
	close(fd);
	buf[len] = '\0';
	*lenp = len;
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

static int
sign_keygen_main(int argc, char **argv)
{
	char pub[SIGN_PUB_B64_LEN + 1], priv[SIGN_PRIV_B64_LEN + 2];
	const char *out = NULL;
	size_t len;
	int c, fd;

	while ((c = getopt_long(argc, argv, "ho:", sign_longopts, NULL)) != -1) {
		if (c == 'h') {
			usage_write(stdout, "keygen", 0);
			return 0;
		}
		if (c != 'o')
			return sign_bad_option("keygen", "o");
		out = optarg;
	}
	if (out == NULL || optind != argc) {
		fprintf(stderr, "mxtls keygen: %s\n", out == NULL ?
		    "-o PRIVATE-KEY-FILE is required: the private key is never "
		    "printed" : "unexpected arguments");
		sign_usage("keygen");
		return 2;
	}
	if (sign_keygen(pub, sizeof(pub), priv, sizeof(priv)) == -1) {
		fprintf(stderr, "mxtls keygen: cannot encode the key\n");
		return 1;
	}
	/* O_EXCL: a key that signed policies must never be lost by a typo. */
	if ((fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		fprintf(stderr, "mxtls keygen: %s: %s\n", out, errno == EEXIST ?
		    "exists; refusing to overwrite a key" : strerror(errno));
		OPENSSL_cleanse(priv, sizeof(priv));
		return 1;
	}
	len = strlen(priv);
	priv[len++] = '\n';
	if (fchmod(fd, 0600) == -1 || write_all(fd, priv, len) == -1 ||
	    fsync(fd) == -1) {
		fprintf(stderr, "mxtls keygen: %s: %s\n", out, strerror(errno));
		OPENSSL_cleanse(priv, sizeof(priv));
		close(fd);
		unlink(out);
		return 1;
	}
	OPENSSL_cleanse(priv, sizeof(priv));
	if (close(fd) == -1) {
		fprintf(stderr, "mxtls keygen: %s: %s\n", out, strerror(errno));
		unlink(out);
		return 1;
	}
	printf("public-key = %s\n", pub);
	if (fflush(stdout) == EOF) {
		fprintf(stderr, "mxtls keygen: stdout: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "mxtls keygen: private key written to %s (keep it "
	    "secret); the public key goes into [policy] signing_key\n", out);
	return 0;
}

/* Write text to path through a temporary file and rename: 0 or -1. */
static int
write_atomic(const char *path, const char *text, size_t len)
{
	char *tmp, *dup, *dir;
	int fd, e;

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) == -1) {
		errno = ENOMEM;
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		e = errno;
		free(tmp);
		errno = e;
		return -1;
	}
	/* A signature is public: the web server must be able to read it. */
	if (fchmod(fd, 0644) == -1 || write_all(fd, text, len) == -1 ||
	    fsync(fd) == -1) {
		e = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1) {
		e = errno;
		goto fail;
	}
	free(tmp);
	/* The rename survives a crash only once its directory is synced. */
	if ((dup = strdup(path)) != NULL) {
		dir = dirname(dup);
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd != -1) {
			(void)fsync(fd);
			close(fd);
		}
		free(dup);
	}
	return 0;
fail:
	unlink(tmp);
	free(tmp);
	errno = e;
	return -1;
}

static int
sign_policy_main(int argc, char **argv)
{
	char sig[SIGN_SIG_B64_LEN + 2], pub[SIGN_PUB_B64_LEN + 1];
	const char *keyfile = NULL, *out = NULL, *doc, *why;
	char *key = NULL, *text = NULL, *sigpath = NULL;
	uint8_t sk[64];
	size_t keylen, len;
	struct stat st;
	int c, r = 1;

	while ((c = getopt_long(argc, argv, "hk:o:", sign_longopts, NULL)) !=
	    -1) {
		if (c == 'h') {
			usage_write(stdout, "sign-policy", 0);
			return 0;
		}
		if (c == 'k')
			keyfile = optarg;
		else if (c == 'o')
			out = optarg;
		else
			return sign_bad_option("sign-policy", "ko");
	}
	if (keyfile == NULL || optind != argc - 1) {
		fprintf(stderr, "mxtls sign-policy: %s\n", keyfile == NULL ?
		    "-k PRIVATE-KEY-FILE is required" :
		    "exactly one DOCUMENT is required");
		sign_usage("sign-policy");
		return 2;
	}
	doc = argv[optind];

	if ((key = read_file("sign-policy", keyfile, KEYFILE_MAX,
	    &keylen)) == NULL)
		goto done;
	keylen = trim_right(key, keylen);
	key[keylen] = '\0';
	if (priv_decode(key, keylen, sk) == -1) {
		fprintf(stderr, "mxtls sign-policy: %s: not a private key from "
		    "mxtls keygen (base64 of 64 bytes, the seed and its public "
		    "key)\n", keyfile);
		goto done;
	}
	if (stat(keyfile, &st) == 0 && (st.st_mode & 077) != 0)
		fprintf(stderr, "mxtls sign-policy: warning: %s is readable by "
		    "others (chmod 600 it)\n", keyfile);
	if (b64_put(pub, sizeof(pub), sk + 32, 32) == -1)
		goto done;

	/* What mxtls-fetch cannot carry could never be verified. */
	if ((text = read_file("sign-policy", doc, DOCUMENT_MAX, &len)) == NULL)
		goto done;
	if (sign_make(key, text, len, sig, sizeof(sig)) == -1) {
		fprintf(stderr, "mxtls sign-policy: signing failed\n");
		goto done;
	}
	/* Check our work with the public half before anyone relies on it. */
	if (sign_check(pub, text, len, sig, strlen(sig), &why) != 1) {
		fprintf(stderr, "mxtls sign-policy: the new signature does not "
		    "verify (%s)\n", why);
		goto done;
	}
	if (out == NULL) {
		if (asprintf(&sigpath, "%s.sig", doc) == -1) {
			sigpath = NULL;
			fprintf(stderr, "mxtls sign-policy: out of memory\n");
			goto done;
		}
		out = sigpath;
	}
	len = strlen(sig);
	sig[len++] = '\n';
	if (write_atomic(out, sig, len) == -1) {
		fprintf(stderr, "mxtls sign-policy: %s: %s\n", out,
		    strerror(errno));
		goto done;
	}
	printf("signature of %s written to %s (public key %s)\n", doc, out,
	    pub);
	r = fflush(stdout) == EOF ? 1 : 0;
done:
	OPENSSL_cleanse(sk, sizeof(sk));
	if (key != NULL) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	free(text);
	free(sigpath);
	return r;
}

int
sign_main(int argc, char **argv)
{
	if (argc < 1) {
		usage_write(stderr, NULL, 1);
		return 2;
	}
	/*
	 * main() may have used getopt already: 0 makes glibc start afresh
	 * (1 would keep its internal state).  Our messages are our own.
	 */
	optind = 0;
	opterr = 0;
	if (strcmp(argv[0], "keygen") == 0)
		return sign_keygen_main(argc, argv);
	if (strcmp(argv[0], "sign-policy") == 0)
		return sign_policy_main(argc, argv);
	usage_write(stderr, NULL, 1);
	return 2;
}
