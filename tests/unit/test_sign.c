/*
 * proxy/sign.c: Ed25519 signatures of the central policy, and the keygen
 * and sign-policy tools.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sign.h"
#include "t.h"

static const char doc[] = "[document]\nserial = 7\n\n[match example.test]\n"
			  "profile = mandatory\n";

/* RFC 8032 section 7.1, TEST 1: the private key is seed || public key. */
static const char rfc_priv[] =
    "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy"
    "89qmIyWvAhpo9wdRGg==";
static const char rfc_pub[] = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char rfc_sig[] =
    "5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv1"
    "8FlbviRlUUFDjnoQCw==";

static char pub[SIGN_PUB_B64_LEN + 1], priv[SIGN_PRIV_B64_LEN + 1];
static char tmpdir[] = "/tmp/test_sign.XXXXXX";

static void
keys(void)
{
	if (pub[0] == '\0' && sign_keygen(pub, sizeof(pub), priv,
	    sizeof(priv)) != 0) {
		fprintf(stderr, "sign_keygen failed\n");
		exit(1);
	}
}

static int
check(const char *k, const void *m, size_t len, const char *s,
    const char **why)
{
	return sign_check(k, m, len, s, strlen(s), why);
}

static void
test_keygen(void)
{
	char p2[SIGN_PUB_B64_LEN + 1], s2[SIGN_PRIV_B64_LEN + 1];
	char small[SIGN_PUB_B64_LEN];

	keys();
	CHECK_INT(strlen(pub), SIGN_PUB_B64_LEN);
	CHECK_INT(strlen(priv), SIGN_PRIV_B64_LEN);
	CHECK_INT(sign_key_valid(pub), 1);
	CHECK_INT(sign_keygen(p2, sizeof(p2), s2, sizeof(s2)), 0);
	CHECK(strcmp(p2, pub) != 0);
	CHECK(strcmp(s2, priv) != 0);
	/* No room for the NUL: refused, not truncated. */
	CHECK_INT(sign_keygen(small, sizeof(small), s2, sizeof(s2)), -1);
	CHECK_INT(sign_keygen(p2, sizeof(p2), s2, SIGN_PRIV_B64_LEN), -1);
}

static void
test_round_trip(void)
{
	char sig[SIGN_SIG_B64_LEN + 1];
	const char *why = "unset";

	keys();
	CHECK_INT(sign_make(priv, doc, strlen(doc), sig, sizeof(sig)), 0);
	CHECK_INT(strlen(sig), SIGN_SIG_B64_LEN);
	CHECK_INT(check(pub, doc, strlen(doc), sig, &why), 1);
	CHECK(why == NULL);
	CHECK_INT(check(pub, doc, strlen(doc), sig, NULL), 1);
	/* An empty document can be signed too. */
	CHECK_INT(sign_make(priv, "", 0, sig, sizeof(sig)), 0);
	CHECK_INT(check(pub, "", 0, sig, &why), 1);
	/* Too small a buffer for the signature. */
	CHECK_INT(sign_make(priv, doc, strlen(doc), sig, SIGN_SIG_B64_LEN),
	    -1);
}

/* The known answer: interoperable with every other Ed25519. */
static void
test_rfc8032(void)
{
	char sig[SIGN_SIG_B64_LEN + 1];
	const char *why;

	CHECK_INT(sign_key_valid(rfc_pub), 1);
	CHECK_INT(sign_make(rfc_priv, "", 0, sig, sizeof(sig)), 0);
	CHECK_STR(sig, rfc_sig);
	CHECK_INT(check(rfc_pub, "", 0, rfc_sig, &why), 1);
	CHECK_INT(check(rfc_pub, "x", 1, rfc_sig, &why), 0);
}

static void
test_flipped_message(void)
{
	char sig[SIGN_SIG_B64_LEN + 1], m[sizeof(doc)];
	const char *why = NULL;
	size_t i;

	keys();
	CHECK_INT(sign_make(priv, doc, strlen(doc), sig, sizeof(sig)), 0);
	for (i = 0; i < strlen(doc); i += 7) {
		memcpy(m, doc, sizeof(doc));
		m[i] ^= 0x01;
		CHECK_INT(check(pub, m, strlen(doc), sig, &why), 0);
		CHECK_STR(why, "bad signature");
	}
	/* One byte more or less. */
	CHECK_INT(check(pub, doc, strlen(doc) - 1, sig, &why), 0);
	CHECK_INT(check(pub, doc, strlen(doc) + 1, sig, &why), 0);
}

static void
test_flipped_signature(void)
{
	char sig[SIGN_SIG_B64_LEN + 1], s2[SIGN_SIG_B64_LEN + 1];
	const char *why = NULL;
	size_t i;

	keys();
	CHECK_INT(sign_make(priv, doc, strlen(doc), sig, sizeof(sig)), 0);
	/*
	 * A changed character changes a decoded byte (except in the low
	 * bits of the last one, which base64 leaves over: see below).
	 */
	for (i = 0; i < SIGN_SIG_B64_LEN - 3; i++) {
		memcpy(s2, sig, sizeof(sig));
		s2[i] = s2[i] == 'A' ? 'B' : 'A';
		CHECK_INT(check(pub, doc, strlen(doc), s2, &why), 0);
		CHECK_STR(why, "bad signature");
	}
}

static void
test_wrong_key(void)
{
	char sig[SIGN_SIG_B64_LEN + 1], p2[SIGN_PUB_B64_LEN + 1];
	char s2[SIGN_PRIV_B64_LEN + 1];
	const char *why = NULL;

	keys();
	CHECK_INT(sign_keygen(p2, sizeof(p2), s2, sizeof(s2)), 0);
	CHECK_INT(sign_make(s2, doc, strlen(doc), sig, sizeof(sig)), 0);
	CHECK_INT(check(pub, doc, strlen(doc), sig, &why), 0);
	CHECK_STR(why, "bad signature");
	CHECK_INT(check(p2, doc, strlen(doc), sig, &why), 1);
}

static void
test_malformed_signature(void)
{
	char sig[SIGN_SIG_B64_LEN + 1], s2[SIGN_SIG_B64_LEN + 8];
	static const char *const bad[] = {
		"",
		"\n",
		"!!!!",
		"AAAA",
		"not base64 at all, with spaces",
		/* 64 bytes would be 88 characters: base64 of 63 and 66 */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		"AAAAAAAAAAAAAAAAAAAAAAAA",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	};
	const char *why = NULL;
	size_t i;

	keys();
	CHECK_INT(sign_make(priv, doc, strlen(doc), sig, sizeof(sig)), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		CHECK_INT(check(pub, doc, strlen(doc), bad[i], &why), 0);
		CHECK_STR(why, "signature is not base64 of 64 bytes");
	}
	/* Truncated: every shorter prefix fails. */
	for (i = 0; i < SIGN_SIG_B64_LEN; i++) {
		CHECK_INT(sign_check(pub, doc, strlen(doc), sig, i, &why), 0);
		CHECK_STR(why, "signature is not base64 of 64 bytes");
	}
	/* A character that is not base64, and whitespace inside or before. */
	memcpy(s2, sig, sizeof(sig));
	s2[40] = '*';
	CHECK_INT(check(pub, doc, strlen(doc), s2, &why), 0);
	snprintf(s2, sizeof(s2), "%.44s\n%s", sig, sig + 44);
	CHECK_INT(check(pub, doc, strlen(doc), s2, &why), 0);
	snprintf(s2, sizeof(s2), " %s", sig);
	CHECK_INT(check(pub, doc, strlen(doc), s2, &why), 0);
	/* Padding missing, or a NUL inside. */
	memcpy(s2, sig, sizeof(sig));
	s2[SIGN_SIG_B64_LEN - 2] = '\0';
	CHECK_INT(check(pub, doc, strlen(doc), s2, &why), 0);
	memcpy(s2, sig, sizeof(sig));
	s2[10] = '\0';
	CHECK_INT(sign_check(pub, doc, strlen(doc), s2, SIGN_SIG_B64_LEN,
	    &why), 0);
	CHECK_INT(sign_check(pub, doc, strlen(doc), NULL, 0, &why), 0);
}

static void
test_trailing_whitespace(void)
{
	char sig[SIGN_SIG_B64_LEN + 1], s2[SIGN_SIG_B64_LEN + 16];
	static const char *const tails[] = { "\n", "\r\n", " \t\n\n", " " };
	const char *why = NULL;
	size_t i;

	keys();
	CHECK_INT(sign_make(priv, doc, strlen(doc), sig, sizeof(sig)), 0);
	for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		snprintf(s2, sizeof(s2), "%s%s", sig, tails[i]);
		CHECK_INT(check(pub, doc, strlen(doc), s2, &why), 1);
	}
	/* But nothing else after it. */
	snprintf(s2, sizeof(s2), "%s\nx", sig);
	CHECK_INT(check(pub, doc, strlen(doc), s2, &why), 0);
}

static void
test_key_valid(void)
{
	static const char *const bad[] = {
		"",
		"AAAA",
		/* base64 of 31 and 33 bytes */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		/* 32 bytes without the padding */
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo",
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= ",
		" 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR*=",
	};
	const char *why = NULL;
	size_t i;

	keys();
	CHECK_INT(sign_key_valid(pub), 1);
	CHECK_INT(sign_key_valid(rfc_pub), 1);
	CHECK_INT(sign_key_valid(NULL), 0);
	CHECK_INT(sign_key_valid(priv), 0); /* a private key is not one */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(sign_key_valid(bad[i]), 0);
		CHECK_INT(check(bad[i], doc, strlen(doc), rfc_sig, &why), 0);
		CHECK_STR(why, "signing key is not base64 of 32 bytes");
	}
}

static void
test_bad_private_key(void)
{
	char sig[SIGN_SIG_B64_LEN + 1], p2[SIGN_PRIV_B64_LEN + 1];

	keys();
	CHECK_INT(sign_make(NULL, doc, 1, sig, sizeof(sig)), -1);
	CHECK_INT(sign_make("", doc, 1, sig, sizeof(sig)), -1);
	CHECK_INT(sign_make(pub, doc, 1, sig, sizeof(sig)), -1);
	CHECK_INT(sign_make("!!!!", doc, 1, sig, sizeof(sig)), -1);
	/* A damaged public half (the last 32 bytes) is noticed. */
	memcpy(p2, priv, sizeof(priv));
	p2[60] = p2[60] == 'A' ? 'B' : 'A';
	CHECK_INT(sign_make(p2, doc, 1, sig, sizeof(sig)), -1);
	/* And a damaged seed too: it no longer matches its public half. */
	memcpy(p2, priv, sizeof(priv));
	p2[5] = p2[5] == 'A' ? 'B' : 'A';
	CHECK_INT(sign_make(p2, doc, 1, sig, sizeof(sig)), -1);
}

/* ---- the tools ---- */

/* Run sign_main with stdout into a file; its output into out. */
static int
run(char *out, size_t outlen, int argc, char **argv)
{
	char path[512];
	int fd, saved, r;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/stdout", tmpdir);
	fflush(stdout);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (saved = dup(1)) == -1 || dup2(fd, 1) == -1)
		return -100;
	close(fd);
	r = sign_main(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	out[0] = '\0';
	if ((fp = fopen(path, "r")) != NULL) {
		n = fread(out, 1, outlen - 1, fp);
		out[n] = '\0';
		fclose(fp);
	}
	return r;
}

static char *
slurp(const char *path, size_t *len)
{
	static char buf[8192];
	FILE *fp = fopen(path, "r");

	*len = 0;
	if (fp == NULL)
		return NULL;
	*len = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[*len] = '\0';
	fclose(fp);
	return buf;
}

static void
put(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp != NULL) {
		fputs(text, fp);
		fclose(fp);
	}
}

static void
test_tools(void)
{
	char out[4096], key[512], docp[512], sigp[512], other[512];
	char tpub[SIGN_PUB_B64_LEN + 1], *t;
	char *kg[] = { "keygen", "-o", key, NULL };
	char *sp[] = { "sign-policy", "-k", key, docp, NULL };
	char *spo[] = { "sign-policy", docp, "-k", key, "-o", other, NULL };
	struct stat st;
	const char *why;
	size_t len;

	snprintf(key, sizeof(key), "%s/policy.key", tmpdir);
	snprintf(docp, sizeof(docp), "%s/policy.ini", tmpdir);
	snprintf(sigp, sizeof(sigp), "%s/policy.ini.sig", tmpdir);
	snprintf(other, sizeof(other), "%s/other.sig", tmpdir);
	put(docp, doc);

	CHECK_INT(run(out, sizeof(out), 3, kg), 0);
	CHECK(strncmp(out, "public-key = ", 13) == 0);
	CHECK_INT(strlen(out), 13 + SIGN_PUB_B64_LEN + 1);
	snprintf(tpub, sizeof(tpub), "%s", out + 13);
	CHECK_INT(sign_key_valid(tpub), 1);
	CHECK(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600);
	t = slurp(key, &len);
	CHECK(t != NULL && len == SIGN_PRIV_B64_LEN + 1 && t[len - 1] == '\n');

	/* Never overwritten. */
	CHECK_INT(run(out, sizeof(out), 3, kg), 1);
	CHECK_STR(out, "");
	t = slurp(key, &len);
	CHECK(t != NULL && len == SIGN_PRIV_B64_LEN + 1);

	CHECK_INT(run(out, sizeof(out), 4, sp), 0);
	CHECK(strstr(out, tpub) != NULL);
	t = slurp(sigp, &len);
	CHECK(t != NULL && len == SIGN_SIG_B64_LEN + 1);
	CHECK_INT(sign_check(tpub, doc, strlen(doc), t, len, &why), 1);
	CHECK(stat(sigp, &st) == 0 && (st.st_mode & 0777) == 0644);
	/* Signing again replaces it (same key, same bytes: same signature). */
	CHECK_INT(run(out, sizeof(out), 4, sp), 0);
	CHECK_INT(run(out, sizeof(out), 6, spo), 0);
	t = slurp(other, &len);
	CHECK(t != NULL && len == SIGN_SIG_B64_LEN + 1);
	CHECK_INT(sign_check(tpub, doc, strlen(doc), t, len, &why), 1);

	/* Errors. */
	{
		char *a1[] = { "keygen", NULL };
		char *a2[] = { "sign-policy", docp, NULL };
		char *a3[] = { "sign-policy", "-k", key, NULL };
		char *a4[] = { "sign-policy", "-k", "/nonexistent/key", docp,
			NULL };
		char *a5[] = { "sign-policy", "-k", docp, docp, NULL };
		char *a6[] = { "sign-policy", "-k", key, "/nonexistent/doc",
			NULL };
		char *a7[] = { "keygen", "-x", NULL };
		char *a8[] = { "frobnicate", NULL };
		char *a9[] = { "keygen", "-o", "/nonexistent/dir/key", NULL };

		CHECK_INT(run(out, sizeof(out), 1, a1), 2);
		CHECK_INT(run(out, sizeof(out), 2, a2), 2);
		CHECK_INT(run(out, sizeof(out), 3, a3), 2);
		CHECK_INT(run(out, sizeof(out), 4, a4), 1);
		CHECK_INT(run(out, sizeof(out), 4, a5), 1); /* not a key */
		CHECK_INT(run(out, sizeof(out), 4, a6), 1);
		CHECK_INT(run(out, sizeof(out), 2, a7), 2);
		CHECK_INT(run(out, sizeof(out), 1, a8), 2);
		CHECK_INT(run(out, sizeof(out), 3, a9), 1);
		CHECK_INT(sign_main(0, a8), 2);
	}
	unlink(key);
	unlink(docp);
	unlink(sigp);
	unlink(other);
}

int
main(void)
{
	char path[512];

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_keygen);
	RUN(test_round_trip);
	RUN(test_rfc8032);
	RUN(test_flipped_message);
	RUN(test_flipped_signature);
	RUN(test_wrong_key);
	RUN(test_malformed_signature);
	RUN(test_trailing_whitespace);
	RUN(test_key_valid);
	RUN(test_bad_private_key);
	RUN(test_tools);
	snprintf(path, sizeof(path), "%s/stdout", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return T_DONE();
}
