/*
 * DKIM: policy/dkim.c (relaxed canonicalization, the DKIM-Signature
 * field) and proxy/dkimsign.c (keys, rsa-sha256, ed25519-sha256).
 *
 * The published examples: RFC 6376 section 3.4.5 (the canonicalization
 * example; section 3.4.6 in RFC 4871), and RFC 8463 Appendix A (the
 * Ed25519 key of RFC 8032 section 7.1 TEST 1, the message of RFC 6376
 * Appendix A, its relaxed body hash and, Ed25519 being deterministic,
 * its exact b= value).  Our own signatures are checked with BoringSSL's
 * verify; python3-dkim verifies mailed reports in
 * tests/integration/test_tlsrpt_dkim.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "dkim.h"
#include "dkimsign.h"
#include "t.h"

static char tmpdir[] = "/tmp/test_dkim.XXXXXX";

/* tmpdir/name with text; the path (static buffer). */
static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	return path;
}

static char *
canon_h(const char *field)
{
	size_t n;

	return dkim_canon_header(field, strlen(field), &n);
}

static char *
canon_b(const char *body)
{
	size_t n;

	return dkim_canon_body(body, strlen(body), &n);
}

#define CHECK_CANON(fn, in, want)                                          \
	do {                                                               \
		char *c_ = fn(in);                                         \
		CHECK_STR(c_, want);                                       \
		free(c_);                                                  \
	} while (0)

/*
 * RFC 6376 section 3.4.5: the header fields
 *	A: <SP> X <CRLF>
 *	B <SP> : <SP> Y <HTAB><CRLF>
 *		<HTAB> Z <SP><SP><CRLF>
 * and the body
 *	<SP> C <SP><CRLF>
 *	D <SP><HTAB><SP> E <CRLF>
 *	<CRLF>
 *	<CRLF>
 * relaxed: "a:X<CRLF>", "b:Y<SP>Z<CRLF>"; "<SP>C<CRLF>D<SP>E<CRLF>".
 */
static void
test_rfc6376_example(void)
{
	CHECK_CANON(canon_h, "A: X\r\n", "a:X\r\n");
	CHECK_CANON(canon_h, "B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n");
	CHECK_CANON(canon_b, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
}

/* The rules of sections 3.4.2 and 3.4.4 one by one. */
static void
test_canon_rules(void)
{
	/* Header: case, WSP around the colon, inside, at the end, folds. */
	CHECK_CANON(canon_h, "SUBJECT:x", "subject:x\r\n");
	CHECK_CANON(canon_h, "Subject \t:\t  a  \t b\r\n", "subject:a b\r\n");
	CHECK_CANON(canon_h, "To: <a@b>,\r\n <c@d>\r\n", "to:<a@b>, <c@d>\r\n");
	CHECK_CANON(canon_h, "X-Empty:\r\n", "x-empty:\r\n");
	CHECK_CANON(canon_h, "X-Empty:  \r\n \r\n", "x-empty:\r\n");
	CHECK(canon_h("no colon here\r\n") == NULL);
	/* Body: empty, only empty lines, no final CRLF, inner empty lines. */
	CHECK_CANON(canon_b, "", "");
	CHECK_CANON(canon_b, "\r\n\r\n", "");
	CHECK_CANON(canon_b, " \t\r\n\t\r\n", "");
	CHECK_CANON(canon_b, "abc", "abc\r\n");
	CHECK_CANON(canon_b, "abc  ", "abc\r\n");
	CHECK_CANON(canon_b, "a\r\n\r\n \r\nb\r\n\r\n", "a\r\n\r\n\r\nb\r\n");
	CHECK_CANON(canon_b, "\t\ta\t b \r\n", " a b\r\n");
}

static void
test_body_offset(void)
{
	const char m[] = "A: 1\r\nB: 2\r\n\r\nbody\r\n";

	CHECK_INT(dkim_body_offset(m, strlen(m)), 14);
	CHECK_INT(dkim_body_offset("\r\nbody", 6), 2);
	CHECK_INT(dkim_body_offset("A: 1\r\n", 6), 6);
}

/*
 * Fields are taken from the bottom up, each once; a name with none
 * left (oversigned) adds nothing; names match in any case; the
 * signature field comes last, without its CRLF.
 */
static void
test_signed_data(void)
{
	const char hdr[] = "Received: r1\r\nFrom: a@x\r\nsubject: one\r\n"
			   "Received: r2\r\n\tfolded\r\nSubject: two\r\n\r\n";
	const char *h[] = { "subject", "from", "received", "SUBJECT",
		"received", "from", "date" };
	const char sig[] = "DKIM-Signature: v=1;\r\n\tb=";
	size_t n;
	char *d;

	d = dkim_signed_data(hdr, sizeof(hdr) - 1, h, 7, sig, strlen(sig), &n);
	CHECK_STR(d, "subject:two\r\nfrom:a@x\r\nreceived:r2 folded\r\n"
		     "subject:one\r\nreceived:r1\r\ndkim-signature:v=1; b=");
	CHECK_INT(n, d ? strlen(d) : 0);
	free(d);
}

/* The template: the tags in order, lines within 78, b= empty at its end. */
static void
test_template(void)
{
	const char *h[] = { "from", "to", "subject", "date", "message-id",
		"mime-version", "content-type", "tls-report-domain",
		"tls-report-submitter", "from" };
	struct dkim_tags tg = { "rsa-sha256", "sender.example", "tlsrpt",
		1700000000, h, 10, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" };
	char *t, *c, *f, *line, *save;
	size_t n, cn, fn;

	t = dkim_template(&tg, &n);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK(n > 2 && strcmp(t + n - 2, "b=") == 0);
	c = dkim_canon_header(t, n, &cn);
	CHECK_STR(c, "dkim-signature:v=1; a=rsa-sha256; c=relaxed/relaxed; "
		     "d=sender.example; s=tlsrpt; t=1700000000; h=from:to:"
		     "subject:date:message-id:mime-version:content-type: "
		     "tls-report-domain:tls-report-submitter:from; "
		     "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=\r\n");
	free(c);
	f = dkim_field(t, n, "QUJD" "REVG" "R0hJ" "SktM" "TU5P" "UFFS" "U1RV"
	    "VldY" "WVph" "YmNk" "ZWZn" "aGlq" "a2xt" "bm9w" "cXJz" "dHV2"
	    "d3h5" "ejAx" "MjM0", &fn);
	CHECK(f != NULL && fn > 2 && strcmp(f + fn - 2, "\r\n") == 0);
	for (line = strtok_r(f, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		CHECK(strlen(line) <= 79); /* 78 and the CR */
		CHECK(line[strlen(line) - 1] == '\r');
	}
	free(f);
	free(t);
	CHECK_INT(dkim_name_valid("tlsrpt"), 1);
	CHECK_INT(dkim_name_valid("2024._x.sender-1.example"), 1);
	CHECK_INT(dkim_name_valid(""), 0);
	CHECK_INT(dkim_name_valid("a..b"), 0);
	CHECK_INT(dkim_name_valid("a.b."), 0);
	CHECK_INT(dkim_name_valid("a b"), 0);
	CHECK_INT(dkim_name_valid("a;b=c"), 0);
}

/* RFC 8032 section 7.1, TEST 1: the seed in PKCS#8 PEM. */
static const char rfc8032_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";

/* RFC 6376 Appendix A's message, as RFC 8463 Appendix A signs it. */
static const char rfc_msg[] =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n";

/*
 * RFC 8463 Appendix A.3: the ed25519-sha256 signature of that message,
 * relaxed/relaxed, with its b= emptied (relaxed canonicalization makes
 * its folding irrelevant), and the values it has.
 */
static const char rfc_sig_field[] =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    " subject : date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=";
static const char rfc_bh[] = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=";
static const char rfc_b[] = "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSw"
			    "hEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==";

static void
test_rfc8463_example(void)
{
	const char *h[] = { "from", "to", "subject", "date", "message-id",
		"from", "subject", "date" };
	size_t body = dkim_body_offset(rfc_msg, strlen(rfc_msg)), n;
	char bh[45], b[200], why[300], *data;
	struct dkim_key *k;

	CHECK_INT(dkim_body_hash(rfc_msg + body, strlen(rfc_msg) - body, bh),
	    0);
	CHECK_STR(bh, rfc_bh);
	k = dkim_key_load(write_file("rfc8032.pem", rfc8032_pem), why,
	    sizeof(why));
	CHECK(k != NULL);
	if (k == NULL) {
		fprintf(stderr, "    %s\n", why);
		return;
	}
	CHECK_STR(dkim_key_alg(k), "ed25519-sha256");
	data = dkim_signed_data(rfc_msg, body, h, 8, rfc_sig_field,
	    strlen(rfc_sig_field), &n);
	CHECK(data != NULL);
	CHECK_INT(dkim_sign_data(k, data, n, b, sizeof(b)), 0);
	CHECK_STR(b, rfc_b);
	CHECK_INT(dkim_sign_data(k, data, n, b, 80), -1); /* too small */
	free(data);
	dkim_key_free(k);
}

/* Where tag name starts in field: after WSP or ";", before "=". */
static const char *
tag_at(const char *field, const char *name)
{
	size_t n = strlen(name);
	const char *p;

	for (p = strstr(field, name); p != NULL; p = strstr(p + 1, name))
		if (p > field && strchr(" \t;", p[-1]) != NULL && p[n] == '=')
			return p;
	return NULL;
}

/* The value of tag name in a DKIM-Signature field, whitespace removed. */
static void
tag_value(const char *field, const char *name, char *out, size_t len)
{
	const char *p = tag_at(field, name);
	size_t o = 0;

	out[0] = '\0';
	if (p == NULL)
		return;
	for (p += strlen(name) + 1; *p != '\0' && *p != ';' && o + 1 < len;
	    p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			out[o++] = *p;
	out[o] = '\0';
}

/*
 * Verify the first field of signed (a DKIM-Signature) with BoringSSL,
 * the way a verifier does (RFC 6376 section 6.1.3): the body hash, then
 * the signature over the fields of h= and the field with b= emptied.
 * 1 when both hold.
 */
static int
verify(const char *signed_msg, EVP_PKEY *pub, int ed25519)
{
	const char *end, *bpos;
	char h[512], bh[64], b[1400], mybh[45], *names[32], *tmpl, *data, *s;
	char *field;
	uint8_t sig[1024], digest[SHA256_DIGEST_LENGTH];
	size_t len = strlen(signed_msg), flen, body, dlen, siglen;
	int nh = 0, ok;
	EVP_MD_CTX *ctx;

	/* The field: up to the CRLF not followed by WSP. */
	for (end = signed_msg; (end = strstr(end, "\r\n")) != NULL; end += 2)
		if (end[2] != ' ' && end[2] != '\t')
			break;
	if (end == NULL)
		return 0;
	flen = (size_t)(end - signed_msg) + 2;
	if ((field = strndup(signed_msg, flen)) == NULL)
		return 0;
	tag_value(field, "h", h, sizeof(h));
	tag_value(field, "bh", bh, sizeof(bh));
	tag_value(field, "b", b, sizeof(b));
	free(field);
	for (s = strtok(h, ":"); s != NULL && nh < 32; s = strtok(NULL, ":"))
		names[nh++] = s;
	body = dkim_body_offset(signed_msg, len);
	if (dkim_body_hash(signed_msg + body, len - body, mybh) < 0 ||
	    strcmp(mybh, bh) != 0)
		return 0;
	/* The field with its b= value deleted (b= is its last tag). */
	if ((bpos = tag_at(signed_msg, "b")) == NULL || bpos > end)
		return 0;
	tmpl = strndup(signed_msg, (size_t)(bpos - signed_msg) + 2);
	data = dkim_signed_data(signed_msg + flen, body - flen,
	    (const char *const *)names, nh, tmpl, strlen(tmpl), &dlen);
	free(tmpl);
	if (data == NULL || !EVP_DecodeBase64(sig, &siglen, sizeof(sig),
	    (const uint8_t *)b, strlen(b))) {
		free(data);
		return 0;
	}
	ctx = EVP_MD_CTX_new();
	if (ed25519) {
		SHA256((const uint8_t *)data, dlen, digest);
		ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) &&
		    EVP_DigestVerify(ctx, sig, siglen, digest, sizeof(digest));
	} else
		ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) &&
		    EVP_DigestVerify(ctx, sig, siglen, (const uint8_t *)data,
		    dlen);
	EVP_MD_CTX_free(ctx);
	free(data);
	return ok;
}

/* A new key of the type as a PEM file; *pub for verify. */
static char *
new_key(const char *name, int ed25519, int bits, EVP_PKEY **pub)
{
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *kc;
	char path[256];
	FILE *f;

	kc = EVP_PKEY_CTX_new_id(ed25519 ? EVP_PKEY_ED25519 : EVP_PKEY_RSA,
	    NULL);
	if (kc == NULL || !EVP_PKEY_keygen_init(kc) || (!ed25519 &&
	    !EVP_PKEY_CTX_set_rsa_keygen_bits(kc, bits)) ||
	    !EVP_PKEY_keygen(kc, &pk)) {
		fprintf(stderr, "keygen failed\n");
		exit(2);
	}
	EVP_PKEY_CTX_free(kc);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((f = fopen(path, "w")) == NULL ||
	    !PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL)) {
		perror(path);
		exit(2);
	}
	fclose(f);
	if (pub != NULL)
		*pub = pk;
	else
		EVP_PKEY_free(pk);
	return strdup(path);
}

static const char report[] =
    "From: <tls-reports@sender.test>\r\n"
    "To: <tlsrpt@good.test>\r\n"
    "Date: Sat, 05 Dec 2026 16:27:36 +0000\r\n"
    "Message-ID: <tlsrpt.1@mta.sender.test>\r\n"
    "Subject: Report Domain: good.test\r\n"
    " Submitter: mta.sender.test\r\n"
    " Report-ID: <2026-12-04T00:00:00Z+good.test@mta.sender.test>\r\n"
    "TLS-Report-Domain: good.test\r\n"
    "TLS-Report-Submitter: mta.sender.test\r\n"
    "TLS-Required: No\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
    " boundary=\"b\"\r\n"
    "\r\n"
    "--b\r\n"
    "\r\n"
    "text  with   spaces \r\n"
    "--b--\r\n";

/* Replace the first from in s with to (same length). */
static void
tamper(char *s, const char *from, const char *to)
{
	char *p = strstr(s, from);

	if (p != NULL)
		memcpy(p, to, strlen(to));
}

/* Sign with a new key of each kind; verify; tampering breaks it. */
static void
sign_and_verify(int ed25519, int bits)
{
	const char *h[] = { "from", "to", "subject", "date", "message-id",
		"mime-version", "content-type", "tls-report-domain",
		"tls-report-submitter", "from" };
	char why[300], v[300], *m, *path;
	struct dkim_key *k;
	EVP_PKEY *pub;
	size_t n;

	path = new_key(ed25519 ? "ed.pem" : "rsa.pem", ed25519, bits,
	    &pub);
	k = dkim_key_load(path, why, sizeof(why));
	free(path);
	CHECK(k != NULL);
	if (k == NULL) {
		fprintf(stderr, "    %s\n", why);
		EVP_PKEY_free(pub);
		return;
	}
	CHECK_STR(dkim_key_alg(k), ed25519 ? "ed25519-sha256" : "rsa-sha256");
	m = dkim_sign(k, "sender.test", "tlsrpt", 1765000000, h, 10, report,
	    strlen(report), &n);
	CHECK(m != NULL && n == strlen(m) && n > strlen(report));
	if (m == NULL)
		goto out;
	CHECK(strncmp(m, "DKIM-Signature: v=1; a=", 23) == 0);
	tag_value(m, "c", v, sizeof(v));
	CHECK_STR(v, "relaxed/relaxed");
	tag_value(m, "d", v, sizeof(v));
	CHECK_STR(v, "sender.test");
	tag_value(m, "s", v, sizeof(v));
	CHECK_STR(v, "tlsrpt");
	tag_value(m, "t", v, sizeof(v));
	CHECK_STR(v, "1765000000");
	tag_value(m, "h", v, sizeof(v));
	CHECK_STR(v, "from:to:subject:date:message-id:mime-version:"
	    "content-type:tls-report-domain:tls-report-submitter:from");
	CHECK(tag_at(m, "l") == NULL); /* RFC 8460 section 3: no l= */
	CHECK(strcmp(m + n - strlen(report), report) == 0);
	CHECK_INT(verify(m, pub, ed25519), 1);
	/* Whitespace changes within a line do not matter (relaxed)... */
	tamper(m, "text  with", "text with ");
	CHECK_INT(verify(m, pub, ed25519), 1);
	/* ...a changed body does, and so does a changed signed field. */
	tamper(m, "text with ", "text wiTh ");
	CHECK_INT(verify(m, pub, ed25519), 0);
	tamper(m, "text wiTh ", "text with ");
	CHECK_INT(verify(m, pub, ed25519), 1);
	tamper(m, "Domain: good.test", "Domain: evil.tst");
	CHECK_INT(verify(m, pub, ed25519), 0);
	free(m);
out:
	dkim_key_free(k);
	EVP_PKEY_free(pub);
}

static void
test_sign_rsa(void)
{
	sign_and_verify(0, 2048);
}

static void
test_sign_ed25519(void)
{
	sign_and_verify(1, 0);
}

/* Keys refused: too small, not RSA or Ed25519, not a key, missing. */
static void
test_key_errors(void)
{
	char why[300], want[400], *p;
	struct dkim_key *k;

	p = new_key("small.pem", 0, 768, NULL);
	CHECK(dkim_key_load(p, why, sizeof(why)) == NULL);
	snprintf(want, sizeof(want), "%s: an RSA key of 768 bits: DKIM needs "
	    "1024 to 8192 (2048 recommended)", p);
	CHECK_STR(why, want);
	free(p);
	p = new_key("ok1024.pem", 0, 1024, NULL);
	k = dkim_key_load(p, why, sizeof(why));
	CHECK(k != NULL);
	dkim_key_free(k);
	free(p);
	p = strdup(write_file("junk.pem", "-----BEGIN PRIVATE KEY-----\n"
	    "AAAA\n-----END PRIVATE KEY-----\n"));
	CHECK(dkim_key_load(p, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "not a PEM private key") != NULL);
	free(p);
	p = strdup(write_file("public.pem", "-----BEGIN PUBLIC KEY-----\n"
	    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
	    "-----END PUBLIC KEY-----\n"));
	CHECK(dkim_key_load(p, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "not a PEM private key") != NULL);
	free(p);
	snprintf(want, sizeof(want), "%s/none.pem", tmpdir);
	CHECK(dkim_key_load(want, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "No such file or directory") != NULL);
	/* References: the key lives until the last is dropped. */
	k = dkim_key_load(write_file("r.pem", rfc8032_pem), why, sizeof(why));
	CHECK(k != NULL && dkim_key_ref(k) == k);
	dkim_key_free(k);
	CHECK_STR(dkim_key_alg(k), "ed25519-sha256");
	dkim_key_free(k);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	RUN(test_rfc6376_example);
	RUN(test_canon_rules);
	RUN(test_body_offset);
	RUN(test_signed_data);
	RUN(test_template);
	RUN(test_rfc8463_example);
	RUN(test_sign_rsa);
	RUN(test_sign_ed25519);
	RUN(test_key_errors);
	if (fork() == 0) {
		execlp("rm", "rm", "-rf", tmpdir, (char *)NULL);
		_exit(127);
	}
	wait(NULL);
	return T_DONE();
}
