/*
 * policy/dane.c (TLSA sets, the per-host decision of RFC 7672 2.2) and
 * proxy/dane.c (matching certificates).  The certificates and the TLSA
 * data they should match come from tests/unit/files/dane/make.sh: the
 * digests are openssl(1)'s, not the code's under test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dane.h"
#include "t.h"

#include "files/dane/digests.h"

#define DIR "tests/unit/files/dane/"

static const char *const mx[] = { "mx.example.net" };

/* --- helpers */

static size_t
unhex(const char *h, unsigned char *out, size_t cap)
{
	size_t n = strlen(h) / 2, i;
	unsigned v;

	if (n > cap) {
		fprintf(stderr, "unhex: %zu bytes do not fit\n", n);
		exit(1);
	}
	for (i = 0; i < n; i++) {
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (unsigned char)v;
	}
	return n;
}

/* Add "u s m" with the association data in hex; flip: XOR into byte 0. */
static int
add_flip(struct dane_tlsa_set *set, int u, int s, int m, const char *hex,
    int flip)
{
	unsigned char rd[3 + 2048];
	size_t n = unhex(hex, rd + 3, sizeof(rd) - 3);

	rd[0] = (unsigned char)u;
	rd[1] = (unsigned char)s;
	rd[2] = (unsigned char)m;
	if (n > 0)
		rd[3] ^= (unsigned char)flip;
	return dane_tlsa_set_add(set, rd, 3 + n);
}

static int
add(struct dane_tlsa_set *set, int u, int s, int m, const char *hex)
{
	return add_flip(set, u, s, m, hex, 0);
}

static X509 *c_ee_self, *c_ca, *c_int, *c_leaf, *c_other, *c_wild, *c_cnonly,
    *c_old_int, *c_old_leaf;

static X509 *
load(const char *name)
{
	char path[256];
	FILE *f;
	X509 *x;

	snprintf(path, sizeof(path), DIR "%s.pem", name);
	if ((f = fopen(path, "r")) == NULL) {
		perror(path);
		exit(1);
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		fprintf(stderr, "%s: no certificate\n", path);
		exit(1);
	}
	return x;
}

/* A chain as sent: the certificates are borrowed, free with sk_X509_free. */
static STACK_OF(X509) *
chain(X509 *a, X509 *b, X509 *c)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	if (sk == NULL)
		exit(1);
	if (a != NULL)
		sk_X509_push(sk, a);
	if (b != NULL)
		sk_X509_push(sk, b);
	if (c != NULL)
		sk_X509_push(sk, c);
	return sk;
}

/* One record against leaf + sent; the result, set cleared. */
static int
verify1(X509 *leaf, STACK_OF(X509) *sent, int u, int s, int m,
    const char *hex, const char *const *names, int nnames,
    struct dane_result *r)
{
	struct dane_tlsa_set set = { 0 };
	int ret;

	CHECK_INT(add(&set, u, s, m, hex), 0);
	ret = dane_verify_chain(leaf, sent, &set, names, nnames, r);
	dane_tlsa_set_clear(&set);
	return ret;
}

/* --- policy/dane.c: names, modes */

static void
test_names(void)
{
	enum dane_mode m = DANE_MODE_OFF;

	CHECK_STR(dnssec_status_name(DNSSEC_INSECURE), "insecure");
	CHECK_STR(dnssec_status_name(DNSSEC_SECURE), "secure");
	CHECK_STR(dnssec_status_name(DNSSEC_BOGUS), "bogus");
	CHECK_STR(dnssec_status_name(DNSSEC_FAILED), "failed");
	CHECK_STR(dane_host_name(DANE_HOST_NONE), "none");
	CHECK_STR(dane_host_name(DANE_HOST_AUTH), "auth");
	CHECK_STR(dane_host_name(DANE_HOST_ENCRYPT), "encrypt");
	CHECK_STR(dane_host_name(DANE_HOST_UNUSABLE), "unusable");

	CHECK_INT(dane_mode_parse("on", &m), 0);
	CHECK_INT(m, DANE_MODE_ON);
	CHECK_INT(dane_mode_parse("only", &m), 0);
	CHECK_INT(m, DANE_MODE_ONLY);
	CHECK_INT(dane_mode_parse("off", &m), 0);
	CHECK_INT(m, DANE_MODE_OFF);
	CHECK_INT(dane_mode_parse("ON", &m), -1);
	CHECK_INT(dane_mode_parse("yes", &m), -1);
	CHECK_INT(dane_mode_parse("", &m), -1);
	CHECK_INT(dane_mode_parse("on ", &m), -1);
	CHECK_INT(m, DANE_MODE_OFF); /* untouched by a failure */
	CHECK_STR(dane_mode_name(DANE_MODE_ON), "on");
	CHECK_STR(dane_mode_name(DANE_MODE_OFF), "off");
	CHECK_STR(dane_mode_name(DANE_MODE_ONLY), "only");
}

/* --- policy/dane.c: the decision per host, every row */

static void
test_decide(void)
{
	struct dane_tlsa_set usable = { 0 }, unusable = { 0 }, bad = { 0 },
			     empty = { 0 };
	const unsigned char shortrd[2] = { 3, 1 };
	const struct {
		enum dnssec_status mx, addr;
		enum dane_lookup tlsa;
		enum dnssec_status sec;
		const struct dane_tlsa_set *set;
		enum dane_host want;
		const char *why;
	} rows[] = {
		/* MX RRset insecure: no DANE, whatever follows. */
		{ DNSSEC_INSECURE, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, &usable, DANE_HOST_NONE, "MX RRset insecure" },
		{ DNSSEC_INSECURE, DNSSEC_BOGUS, DANE_LOOKUP_FAILED,
		    DNSSEC_BOGUS, NULL, DANE_HOST_NONE, "MX RRset insecure" },
		/* MX bogus or failed: not this host. */
		{ DNSSEC_BOGUS, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, &usable, DANE_HOST_UNUSABLE,
		    "MX RRset bogus" },
		{ DNSSEC_FAILED, DNSSEC_SECURE, DANE_LOOKUP_NODATA,
		    DNSSEC_SECURE, NULL, DANE_HOST_UNUSABLE,
		    "MX lookup failed" },
		/* Address records insecure: no DANE. */
		{ DNSSEC_SECURE, DNSSEC_INSECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, &usable, DANE_HOST_NONE,
		    "address records insecure" },
		/* ... bogus or failed: unusable. */
		{ DNSSEC_SECURE, DNSSEC_BOGUS, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, &usable, DANE_HOST_UNUSABLE,
		    "address records bogus" },
		{ DNSSEC_SECURE, DNSSEC_FAILED, DANE_LOOKUP_NODATA,
		    DNSSEC_SECURE, NULL, DANE_HOST_UNUSABLE,
		    "address lookup failed" },
		/* Secure TLSA records: usable → authenticate. */
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, &usable, DANE_HOST_AUTH,
		    "usable TLSA records" },
		/* ... none usable, or malformed: encrypt only. */
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, &unusable, DANE_HOST_ENCRYPT,
		    "only unusable TLSA records" },
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, &bad, DANE_HOST_ENCRYPT,
		    "only unusable TLSA records" },
		/* ... an answer without a record is a NODATA. */
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, &empty, DANE_HOST_NONE, "empty TLSA RRset" },
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, NULL, DANE_HOST_NONE, "empty TLSA RRset" },
		/* Secure denial: no DANE. */
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_NODATA,
		    DNSSEC_SECURE, NULL, DANE_HOST_NONE,
		    "no TLSA records (secure denial)" },
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_NXDOMAIN,
		    DNSSEC_SECURE, NULL, DANE_HOST_NONE,
		    "no TLSA name (secure denial)" },
		/* TLSA insecure: no DANE, even with usable records. */
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_INSECURE, &usable, DANE_HOST_NONE,
		    "TLSA RRset insecure" },
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_NXDOMAIN,
		    DNSSEC_INSECURE, NULL, DANE_HOST_NONE,
		    "TLSA RRset insecure" },
		/* TLSA bogus or failed: unusable. */
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_BOGUS, &usable, DANE_HOST_UNUSABLE,
		    "TLSA RRset bogus" },
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_NODATA,
		    DNSSEC_BOGUS, NULL, DANE_HOST_UNUSABLE,
		    "TLSA RRset bogus" },
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_FAILED, &usable, DANE_HOST_UNUSABLE,
		    "TLSA lookup failed" },
		/* A failed lookup is never "insecure": blocking it must not
		 * switch DANE off. */
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_FAILED,
		    DNSSEC_SECURE, NULL, DANE_HOST_UNUSABLE,
		    "TLSA lookup failed" },
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_FAILED,
		    DNSSEC_INSECURE, NULL, DANE_HOST_UNUSABLE,
		    "TLSA lookup failed" },
		{ DNSSEC_SECURE, DNSSEC_SECURE, DANE_LOOKUP_FAILED,
		    DNSSEC_FAILED, NULL, DANE_HOST_UNUSABLE,
		    "TLSA lookup failed" },
		/* Out-of-range values fail closed. */
		{ (enum dnssec_status)7, DNSSEC_SECURE, DANE_LOOKUP_RECORDS,
		    DNSSEC_SECURE, &usable, DANE_HOST_UNUSABLE,
		    "MX lookup failed" },
		{ DNSSEC_SECURE, DNSSEC_SECURE, (enum dane_lookup)9,
		    DNSSEC_SECURE, &usable, DANE_HOST_UNUSABLE,
		    "invalid TLSA lookup result" },
	};
	unsigned i;

	CHECK_INT(add(&usable, 3, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&usable, 1, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&unusable, 1, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&unusable, 3, 1, 1, "abcd"), 0);
	CHECK_INT(dane_tlsa_set_add(&bad, shortrd, sizeof(shortrd)), 0);
	CHECK_INT(usable.nusable, 1);
	CHECK_INT(unusable.n, 2);
	CHECK_INT(unusable.nusable, 0);
	CHECK_INT(bad.n, 0);
	CHECK_INT(bad.nmalformed, 1);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *why = NULL;
		enum dane_host h = dane_host_decide(rows[i].mx, rows[i].addr,
		    rows[i].tlsa, rows[i].sec, rows[i].set, &why);

		if (h != rows[i].want || why == NULL ||
		    strcmp(why, rows[i].why) != 0) {
			fprintf(stderr, "row %u: %s (%s), want %s (%s)\n", i,
			    dane_host_name(h), why ? why : "(null)",
			    dane_host_name(rows[i].want), rows[i].why);
			t_cur = 1;
		}
	}
	/* why may be NULL. */
	CHECK_INT(dane_host_decide(DNSSEC_SECURE, DNSSEC_SECURE,
	    DANE_LOOKUP_RECORDS, DNSSEC_SECURE, &usable, NULL), DANE_HOST_AUTH);
	dane_tlsa_set_clear(&usable);
	dane_tlsa_set_clear(&unusable);
	dane_tlsa_set_clear(&bad);
}

/* --- policy/dane.c: parsing records */

static void
test_set_parse(void)
{
	struct dane_tlsa_set set = { 0 };
	unsigned char rd[3 + 64] = { 3, 1, 1 };
	char text[64], tiny[8];
	const char *h64 = LEAF_SPKI_SHA512;
	const struct {
		int u, s, m;
		const char *hex;
		int usable;
	} cases[] = {
		{ 3, 1, 1, LEAF_SPKI_SHA256, 1 },
		{ 3, 0, 1, LEAF_CERT_SHA256, 1 },
		{ 2, 1, 1, INT_SPKI_SHA256, 1 },
		{ 2, 0, 2, INT_CERT_SHA512, 1 },
		{ 3, 1, 2, LEAF_SPKI_SHA512, 1 },
		{ 3, 0, 0, "3082", 1 },	 /* Full: any length but 0 */
		{ 3, 0, 0, "", 0 },	 /* no data */
		{ 3, 1, 1, "", 0 },
		{ 0, 1, 1, LEAF_SPKI_SHA256, 0 }, /* PKIX-TA: not for SMTP */
		{ 1, 1, 1, LEAF_SPKI_SHA256, 0 }, /* PKIX-EE: not for SMTP */
		{ 4, 1, 1, LEAF_SPKI_SHA256, 0 },
		{ 255, 1, 1, LEAF_SPKI_SHA256, 0 },
		{ 3, 2, 1, LEAF_SPKI_SHA256, 0 }, /* selector 2 */
		{ 3, 255, 1, LEAF_SPKI_SHA256, 0 },
		{ 3, 1, 3, LEAF_SPKI_SHA256, 0 }, /* matching type 3 */
		{ 3, 1, 255, LEAF_SPKI_SHA256, 0 },
		{ 3, 1, 1, LEAF_SPKI_SHA512, 0 }, /* SHA-256 of 64 bytes */
		{ 3, 1, 2, LEAF_SPKI_SHA256, 0 }, /* SHA-512 of 32 bytes */
	};
	unsigned i;

	/* Too short to be TLSA: counted, not kept. */
	CHECK_INT(dane_tlsa_set_add(&set, rd, 0), 0);
	CHECK_INT(dane_tlsa_set_add(&set, rd, 1), 0);
	CHECK_INT(dane_tlsa_set_add(&set, rd, 2), 0);
	CHECK_INT(set.nmalformed, 3);
	CHECK_INT(set.n, 0);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dane_tlsa_set one = { 0 };

		CHECK_INT(add(&one, cases[i].u, cases[i].s, cases[i].m,
		    cases[i].hex), 0);
		CHECK_INT(one.n, 1);
		CHECK_INT(one.nusable, cases[i].usable);
		CHECK_INT(one.rec[0].usable, cases[i].usable);
		CHECK_INT(one.rec[0].usage, cases[i].u);
		CHECK_INT(one.rec[0].selector, cases[i].s);
		CHECK_INT(one.rec[0].mtype, cases[i].m);
		CHECK_INT(one.rec[0].len, strlen(cases[i].hex) / 2);
		if (one.rec[0].usable != cases[i].usable)
			fprintf(stderr, "case %u: %d %d %d\n", i, cases[i].u,
			    cases[i].s, cases[i].m);
		dane_tlsa_set_clear(&one);
	}
	dane_tlsa_set_clear(&set);
	CHECK_INT(set.n, 0);
	CHECK_INT(set.nmalformed, 0);

	/* One byte off either way. */
	rd[0] = 3, rd[1] = 1, rd[2] = 1;
	unhex(h64, rd + 3, 64);
	CHECK_INT(dane_tlsa_set_add(&set, rd, 3 + 31), 0);
	CHECK_INT(dane_tlsa_set_add(&set, rd, 3 + 33), 0);
	CHECK_INT(dane_tlsa_set_add(&set, rd, 3 + 32), 0);
	rd[2] = 2;
	CHECK_INT(dane_tlsa_set_add(&set, rd, 3 + 63), 0);
	CHECK_INT(dane_tlsa_set_add(&set, rd, 3 + 64), 0);
	CHECK_INT(set.n, 5);
	CHECK_INT(set.nusable, 2);
	CHECK(!set.rec[0].usable && !set.rec[1].usable && set.rec[2].usable);
	CHECK(!set.rec[3].usable && set.rec[4].usable);

	/* The data is a copy. */
	memset(rd, 0, sizeof(rd));
	unhex(h64, rd, 64);
	CHECK(memcmp(set.rec[2].data, rd, 32) == 0);
	CHECK(memcmp(set.rec[4].data, rd, 64) == 0);

	/* Text: three fields and the first four bytes. */
	dane_tlsa_text(&set.rec[2], text, sizeof(text));
	CHECK(strncmp(text, "3 1 1 ", 6) == 0);
	CHECK(strncmp(text + 6, h64, 8) == 0);
	CHECK_STR(text + 14, "...");
	dane_tlsa_text(&set.rec[2], tiny, sizeof(tiny));
	CHECK_INT(strlen(tiny), sizeof(tiny) - 1);
	CHECK(strncmp(tiny, text, sizeof(tiny) - 1) == 0);
	dane_tlsa_set_clear(&set);
	CHECK_INT(add(&set, 3, 0, 0, "0102"), 0);
	CHECK_INT(add(&set, 3, 0, 0, ""), 0);
	CHECK_INT(add(&set, 2, 1, 0, "01020304"), 0);
	dane_tlsa_text(&set.rec[0], text, sizeof(text));
	CHECK_STR(text, "3 0 0 0102");
	dane_tlsa_text(&set.rec[1], text, sizeof(text));
	CHECK_STR(text, "3 0 0 (no data)");
	dane_tlsa_text(&set.rec[2], text, sizeof(text));
	CHECK_STR(text, "2 1 0 01020304");
	dane_tlsa_set_clear(&set);
	dane_tlsa_set_clear(&set); /* twice: harmless */
}

/* --- policy/dane.c: more records than fit */

static void
test_set_full(void)
{
	struct dane_tlsa_set set = { 0 };
	int i;

	/* 16 unusable records, then a usable one: it takes a place. */
	for (i = 0; i < DANE_TLSA_MAX; i++)
		CHECK_INT(add(&set, 1, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(set.n, DANE_TLSA_MAX);
	errno = 0;
	CHECK_INT(add(&set, 1, 1, 1, LEAF_SPKI_SHA256), -1);
	CHECK_INT(errno, ENOSPC);
	CHECK_INT(set.ndropped, 1);
	CHECK_INT(dane_host_decide(DNSSEC_SECURE, DNSSEC_SECURE,
	    DANE_LOOKUP_RECORDS, DNSSEC_SECURE, &set, NULL), DANE_HOST_ENCRYPT);
	CHECK_INT(add(&set, 3, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(set.n, DANE_TLSA_MAX);
	CHECK_INT(set.nusable, 1);
	CHECK_INT(set.ndropped, 2);
	CHECK_INT(dane_host_decide(DNSSEC_SECURE, DNSSEC_SECURE,
	    DANE_LOOKUP_RECORDS, DNSSEC_SECURE, &set, NULL), DANE_HOST_AUTH);
	/* ... and is matched. */
	{
		struct dane_result r;

		CHECK_INT(dane_verify_chain(c_leaf, NULL, &set, mx, 1, &r), 1);
	}
	dane_tlsa_set_clear(&set);

	/* 16 usable ones: the 17th is dropped, and said so. */
	for (i = 0; i < DANE_TLSA_MAX; i++)
		CHECK_INT(add_flip(&set, 3, 1, 1, LEAF_SPKI_SHA256, i + 1), 0);
	errno = 0;
	CHECK_INT(add(&set, 3, 1, 1, LEAF_SPKI_SHA256), -1);
	CHECK_INT(errno, ENOSPC);
	CHECK_INT(set.n, DANE_TLSA_MAX);
	CHECK_INT(set.nusable, DANE_TLSA_MAX);
	CHECK_INT(set.ndropped, 1);
	CHECK_INT(dane_host_decide(DNSSEC_SECURE, DNSSEC_SECURE,
	    DANE_LOOKUP_RECORDS, DNSSEC_SECURE, &set, NULL), DANE_HOST_AUTH);
	dane_tlsa_set_clear(&set);
}

/* --- proxy/dane.c: DANE-EE */

static void
test_ee(void)
{
	struct dane_result r;
	STACK_OF(X509) *sk = chain(c_ee_self, NULL, NULL);
	const struct {
		int s, m;
		const char *hex;
	} ok[] = {
		{ 1, 1, EE_SELF_SPKI_SHA256 },
		{ 0, 1, EE_SELF_CERT_SHA256 },
		{ 1, 2, EE_SELF_SPKI_SHA512 },
		{ 0, 2, EE_SELF_CERT_SHA512 },
		{ 0, 0, EE_SELF_CERT },
		{ 1, 0, EE_SELF_SPKI },
	};
	unsigned i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		/* As sent (the leaf in the chain), and without a chain. */
		CHECK_INT(verify1(c_ee_self, sk, 3, ok[i].s, ok[i].m,
		    ok[i].hex, mx, 1, &r), 1);
		CHECK_INT(r.usage, 3);
		CHECK_INT(r.selector, ok[i].s);
		CHECK_INT(r.mtype, ok[i].m);
		CHECK_INT(r.depth, 0);
		CHECK_STR(r.matched_name, "");
		CHECK_STR(r.reason, "");
		CHECK_INT(verify1(c_ee_self, NULL, 3, ok[i].s, ok[i].m,
		    ok[i].hex, mx, 1, &r), 1);
		/* One byte off: no match. */
		{
			struct dane_tlsa_set set = { 0 };

			CHECK_INT(add_flip(&set, 3, ok[i].s, ok[i].m,
			    ok[i].hex, 0x01), 0);
			CHECK_INT(dane_verify_chain(c_ee_self, sk, &set, mx, 1,
			    &r), 0);
			CHECK_INT(r.usage, -1);
			CHECK_INT(r.depth, -1);
			dane_tlsa_set_clear(&set);
		}
		/* The other selector's data: no match. */
		CHECK_INT(verify1(c_ee_self, sk, 3, !ok[i].s, ok[i].m,
		    ok[i].hex, mx, 1, &r), 0);
	}
	/* The last byte of a digest counts too. */
	{
		char h[65];

		snprintf(h, sizeof(h), "%s", EE_SELF_SPKI_SHA256);
		h[63] = h[63] == '0' ? '1' : '0';
		CHECK_INT(verify1(c_ee_self, sk, 3, 1, 1, h, mx, 1, &r), 0);
	}
	/* The reason names the record and the host. */
	CHECK_INT(verify1(c_ee_self, sk, 3, 1, 1, LEAF_SPKI_SHA256, mx, 1, &r),
	    0);
	{
		char want[128];

		snprintf(want, sizeof(want), "TLSA 3 1 1 %.8s... for "
		    "mx.example.net did not match the certificate",
		    LEAF_SPKI_SHA256);
		CHECK_STR(r.reason, want);
	}
	sk_X509_free(sk);

	/* No name and no date checks (RFC 7672 3.1.1). */
	sk = chain(c_other, c_int, c_ca);
	CHECK_INT(verify1(c_other, sk, 3, 1, 1, OTHER_SPKI_SHA256, mx, 1, &r),
	    1);
	CHECK_INT(verify1(c_other, sk, 3, 1, 1, OTHER_SPKI_SHA256, NULL, 0,
	    &r), 1);
	sk_X509_free(sk);
	sk = chain(c_old_leaf, c_old_int, c_ca);
	CHECK_INT(verify1(c_old_leaf, sk, 3, 0, 1, OLD_LEAF_CERT_SHA256, mx,
	    1, &r), 1);
	/* DANE-EE is about the leaf only: an issuer's key does not count. */
	CHECK_INT(verify1(c_old_leaf, sk, 3, 1, 1, OLD_INT_SPKI_SHA256, mx, 1,
	    &r), 0);
	CHECK_INT(verify1(c_old_leaf, sk, 3, 1, 1, CA_SPKI_SHA256, mx, 1, &r),
	    0);
	sk_X509_free(sk);
}

/* Key rollover: any usable record is enough. */
static void
test_rollover(void)
{
	struct dane_tlsa_set set = { 0 };
	struct dane_result r;
	STACK_OF(X509) *sk = chain(c_leaf, c_int, c_ca);

	CHECK_INT(add(&set, 3, 1, 1, EE_SELF_SPKI_SHA256), 0); /* the next key */
	CHECK_INT(add(&set, 3, 1, 2, LEAF_SPKI_SHA512), 0);   /* the current */
	CHECK_INT(dane_verify_chain(c_leaf, sk, &set, mx, 1, &r), 1);
	CHECK_INT(r.usage, 3);
	CHECK_INT(r.mtype, 2);
	CHECK_INT(r.depth, 0);
	dane_tlsa_set_clear(&set);

	/* Neither: the reason lists both. */
	CHECK_INT(add(&set, 3, 1, 1, EE_SELF_SPKI_SHA256), 0);
	CHECK_INT(add(&set, 3, 1, 2, WILD_SPKI_SHA512), 0);
	CHECK_INT(dane_verify_chain(c_leaf, sk, &set, mx, 1, &r), 0);
	CHECK(strstr(r.reason, "no TLSA record for mx.example.net matched "
	    "the certificate (3 1 1 ") != NULL);
	CHECK(strstr(r.reason, ", 3 1 2 ") != NULL);
	dane_tlsa_set_clear(&set);

	/* A wrong DANE-TA record, then the right DANE-EE one. */
	CHECK_INT(add(&set, 2, 1, 1, OLD_INT_SPKI_SHA256), 0);
	CHECK_INT(add(&set, 3, 0, 1, LEAF_CERT_SHA256), 0);
	CHECK_INT(dane_verify_chain(c_leaf, sk, &set, mx, 1, &r), 1);
	CHECK_INT(r.usage, 3);
	CHECK_INT(r.selector, 0);
	dane_tlsa_set_clear(&set);

	/* A DANE-EE record for another key, then the right DANE-TA one. */
	CHECK_INT(add(&set, 3, 1, 1, EE_SELF_SPKI_SHA256), 0);
	CHECK_INT(add(&set, 2, 1, 1, CA_SPKI_SHA256), 0);
	CHECK_INT(dane_verify_chain(c_leaf, sk, &set, mx, 1, &r), 1);
	CHECK_INT(r.usage, 2);
	CHECK_INT(r.depth, 2);
	dane_tlsa_set_clear(&set);

	/* Unusable records are never matched, even when they would. */
	CHECK_INT(add(&set, 1, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&set, 0, 1, 1, CA_SPKI_SHA256), 0);
	CHECK_INT(add(&set, 3, 1, 4, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&set, 3, 2, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&set, 3, 255, 0, LEAF_SPKI), 0);
	CHECK_INT(add(&set, 2, 7, 0, INT_SPKI), 0);
	CHECK_INT(dane_verify_chain(c_leaf, sk, &set, mx, 1, &r), 0);
	CHECK_STR(r.reason, "no usable TLSA records for mx.example.net");
	CHECK_INT(dane_verify_chain(c_leaf, sk, NULL, mx, 1, &r), 0);
	/* ... nor with a usable one beside them. */
	CHECK_INT(add(&set, 3, 1, 1, EE_SELF_SPKI_SHA256), 0);
	CHECK_INT(dane_verify_chain(c_leaf, sk, &set, mx, 1, &r), 0);
	CHECK(strncmp(r.reason, "TLSA 3 1 1 ", 11) == 0);
	CHECK_INT(add(&set, 2, 1, 1, EE_SELF_SPKI_SHA256), 0);
	CHECK_INT(dane_verify_chain(c_leaf, sk, &set, mx, 1, &r), 0);
	dane_tlsa_set_clear(&set);
	sk_X509_free(sk);
}

/* --- proxy/dane.c: DANE-TA */

static void
test_ta(void)
{
	struct dane_result r;
	STACK_OF(X509) *sk = chain(c_leaf, c_int, c_ca);
	STACK_OF(X509) *noleaf = chain(c_int, c_ca, NULL);
	const struct {
		int s, m;
		const char *hex;
		int depth;
	} ok[] = {
		{ 1, 1, INT_SPKI_SHA256, 1 },
		{ 0, 1, INT_CERT_SHA256, 1 },
		{ 1, 2, INT_SPKI_SHA512, 1 },
		{ 0, 0, INT_CERT, 1 },
		{ 1, 0, INT_SPKI, 1 },
		{ 1, 1, CA_SPKI_SHA256, 2 },
		{ 0, 1, CA_CERT_SHA256, 2 },
		{ 0, 2, CA_CERT_SHA512, 2 },
	};
	unsigned i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK_INT(verify1(c_leaf, sk, 2, ok[i].s, ok[i].m, ok[i].hex,
		    mx, 1, &r), 1);
		CHECK_INT(r.usage, 2);
		CHECK_INT(r.selector, ok[i].s);
		CHECK_INT(r.mtype, ok[i].m);
		CHECK_INT(r.depth, ok[i].depth);
		CHECK_STR(r.matched_name, "mx.example.net");
		CHECK_STR(r.reason, "");
		/* A chain sent without the leaf: the same. */
		CHECK_INT(verify1(c_leaf, noleaf, 2, ok[i].s, ok[i].m,
		    ok[i].hex, mx, 1, &r), 1);
		CHECK_INT(r.depth, ok[i].depth);
		/* One byte off. */
		{
			struct dane_tlsa_set set = { 0 };

			CHECK_INT(add_flip(&set, 2, ok[i].s, ok[i].m,
			    ok[i].hex, 0x80), 0);
			CHECK_INT(dane_verify_chain(c_leaf, sk, &set, mx, 1,
			    &r), 0);
			dane_tlsa_set_clear(&set);
		}
	}

	/* Not at depth 0: the leaf's own key is DANE-EE's. */
	CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, LEAF_SPKI_SHA256, mx, 1, &r),
	    0);
	CHECK_INT(verify1(c_ee_self, NULL, 2, 0, 1, EE_SELF_CERT_SHA256, mx, 1,
	    &r), 0);

	/* The name: a second reference identifier (the TLSA base domain). */
	{
		const char *const two[] = { "mx.example.net", "example.net" };
		const char *const base[] = { "smtp.example.org",
			"mx.example.net" };
		const char *const dot[] = { "mx.example.net." };
		const char *const upper[] = { "MX.Example.NET" };

		CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, INT_SPKI_SHA256, two, 2,
		    &r), 1);
		CHECK_STR(r.matched_name, "mx.example.net");
		CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, INT_SPKI_SHA256, base,
		    2, &r), 1);
		CHECK_STR(r.matched_name, "mx.example.net");
		CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, INT_SPKI_SHA256, dot, 1,
		    &r), 1);
		CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, INT_SPKI_SHA256, upper,
		    1, &r), 1);
		/* No names at all: DANE-TA cannot match. */
		CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, INT_SPKI_SHA256, NULL,
		    0, &r), 0);
	}
	sk_X509_free(sk);
	sk_X509_free(noleaf);
}

static void
test_ta_names(void)
{
	struct dane_result r;
	STACK_OF(X509) *sk;
	char want[320];

	/* A leaf for another name, whose CN (not a DNS-ID) is ours. */
	sk = chain(c_other, c_int, c_ca);
	CHECK_INT(verify1(c_other, sk, 2, 1, 1, INT_SPKI_SHA256, mx, 1, &r),
	    0);
	snprintf(want, sizeof(want), "DANE-TA 2 1 1 %.8s... matched depth 1 "
	    "but the certificate is for other.example (wanted "
	    "mx.example.net)", INT_SPKI_SHA256);
	CHECK_STR(r.reason, want);
	CHECK_INT(r.usage, -1);
	{
		const char *const both[] = { "mx.example.net", "other.example" };

		CHECK_INT(verify1(c_other, sk, 2, 1, 1, INT_SPKI_SHA256, both,
		    2, &r), 1);
		CHECK_STR(r.matched_name, "other.example");
		CHECK_INT(verify1(c_other, sk, 2, 1, 1, CA_SPKI_SHA256, both,
		    2, &r), 1);
		CHECK_INT(r.depth, 2);
	}
	sk_X509_free(sk);

	/* A wildcard for the leftmost label only. */
	sk = chain(c_wild, c_int, c_ca);
	{
		const char *const deep[] = { "a.mx.example.net" };
		const char *const apex[] = { "example.net" };

		CHECK_INT(verify1(c_wild, sk, 2, 1, 1, INT_SPKI_SHA256, mx, 1,
		    &r), 1);
		CHECK_STR(r.matched_name, "mx.example.net");
		CHECK_INT(verify1(c_wild, sk, 2, 1, 1, INT_SPKI_SHA256, deep,
		    1, &r), 0);
		CHECK(strstr(r.reason, "certificate is for *.example.net "
		    "(wanted a.mx.example.net)") != NULL);
		CHECK_INT(verify1(c_wild, sk, 2, 1, 1, INT_SPKI_SHA256, apex,
		    1, &r), 0);
	}
	sk_X509_free(sk);

	/* No DNS-ID at all: the CN counts (RFC 7672 3.2.3). */
	sk = chain(c_cnonly, c_int, c_ca);
	CHECK_INT(verify1(c_cnonly, sk, 2, 1, 1, INT_SPKI_SHA256, mx, 1, &r),
	    1);
	{
		const char *const other[] = { "other.example" };

		CHECK_INT(verify1(c_cnonly, sk, 2, 1, 1, INT_SPKI_SHA256,
		    other, 1, &r), 0);
		CHECK(strstr(r.reason, "certificate is for mx.example.net "
		    "(CN)") != NULL);
	}
	sk_X509_free(sk);
}

static void
test_ta_chain(void)
{
	struct dane_result r;
	STACK_OF(X509) *sk;

	/* Expired leaf and intermediate: DANE-TA checks dates. */
	sk = chain(c_old_leaf, c_old_int, c_ca);
	CHECK_INT(verify1(c_old_leaf, sk, 2, 1, 1, CA_SPKI_SHA256, mx, 1, &r),
	    0);
	CHECK(strstr(r.reason, "matched depth 2 but the chain to it did not "
	    "verify: certificate has expired") != NULL);
	CHECK_INT(verify1(c_old_leaf, sk, 2, 1, 1, OLD_INT_SPKI_SHA256, mx, 1,
	    &r), 0);
	CHECK(strstr(r.reason, "expired") != NULL);
	sk_X509_free(sk);

	/* The trust anchor not sent: 2 1 1 cannot be used, and it says so. */
	sk = chain(c_leaf, c_int, NULL);
	CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, CA_SPKI_SHA256, mx, 1, &r), 0);
	{
		char want[320];

		snprintf(want, sizeof(want), "DANE-TA 2 1 1 %.8s... for "
		    "mx.example.net matched no certificate the server sent: the "
		    "server did not send the trust anchor", CA_SPKI_SHA256);
		CHECK_STR(r.reason, want);
	}
	CHECK_INT(verify1(c_leaf, sk, 2, 0, 1, CA_CERT_SHA256, mx, 1, &r), 0);
	CHECK(strstr(r.reason, "did not send the trust anchor") != NULL);
	/* ... but 2 0 0 carries the certificate itself. */
	CHECK_INT(verify1(c_leaf, sk, 2, 0, 0, CA_CERT, mx, 1, &r), 1);
	CHECK_INT(r.depth, 2);
	/* ... which must be one whole certificate. */
	{
		char h[sizeof(CA_CERT) + 2];

		snprintf(h, sizeof(h), "%s00", CA_CERT);
		CHECK_INT(verify1(c_leaf, sk, 2, 0, 0, h, mx, 1, &r), 0);
		snprintf(h, sizeof(h), "%s", CA_CERT);
		h[sizeof(CA_CERT) - 3] = '\0';
		CHECK_INT(verify1(c_leaf, sk, 2, 0, 0, h, mx, 1, &r), 0);
		CHECK_INT(verify1(c_leaf, sk, 2, 0, 0, "3082", mx, 1, &r), 0);
	}
	/* A mix of records, none fits. */
	{
		struct dane_tlsa_set set = { 0 };

		CHECK_INT(add(&set, 2, 1, 1, CA_SPKI_SHA256), 0);
		CHECK_INT(add(&set, 3, 1, 1, EE_SELF_SPKI_SHA256), 0);
		CHECK_INT(dane_verify_chain(c_leaf, sk, &set, mx, 1, &r), 0);
		CHECK(strstr(r.reason, "not the certificate, and the server "
		    "did not send the trust anchor") != NULL);
		dane_tlsa_set_clear(&set);
	}
	sk_X509_free(sk);

	/* Sent, but not the leaf's issuer: the chain cannot reach it. */
	sk = chain(c_leaf, c_int, c_old_int);
	CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, OLD_INT_SPKI_SHA256, mx, 1, &r),
	    0);
	CHECK(strstr(r.reason, "matched depth 2 but the chain to it did not "
	    "verify") != NULL);
	/* The intermediate missing: the leaf cannot reach the root. */
	sk_X509_free(sk);
	sk = chain(c_leaf, c_ca, NULL);
	CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, CA_SPKI_SHA256, mx, 1, &r), 0);
	CHECK(strstr(r.reason, "did not verify") != NULL);
	sk_X509_free(sk);

	/* A 2 0 0 record holding the leaf itself is no trust anchor either. */
	CHECK_INT(verify1(c_ee_self, NULL, 2, 0, 0, EE_SELF_CERT, mx, 1, &r),
	    0);
	CHECK(strstr(r.reason, "the chain does not end at the trust anchor") !=
	    NULL);
	sk = chain(c_leaf, c_int, c_ca);
	CHECK_INT(verify1(c_leaf, sk, 2, 0, 0, LEAF_CERT, mx, 1, &r), 0);
	sk_X509_free(sk);

	/* A self-signed leaf sent with a DANE-TA record for it: no. */
	sk = chain(c_ee_self, c_ee_self, NULL);
	CHECK_INT(verify1(c_ee_self, sk, 2, 1, 1, EE_SELF_SPKI_SHA256, mx, 1,
	    &r), 0);
	sk_X509_free(sk);

	/* No certificate. */
	CHECK_INT(verify1(NULL, NULL, 3, 1, 1, LEAF_SPKI_SHA256, mx, 1, &r), 0);
	CHECK_STR(r.reason, "the server sent no certificate");
}

/* A long chain, junk and repeats included: bounded work, still right. */
static void
test_long_chain(void)
{
	struct dane_result r;
	STACK_OF(X509) *sk = sk_X509_new_null();
	int i;

	sk_X509_push(sk, c_leaf);
	sk_X509_push(sk, c_int);
	for (i = 0; i < 40; i++)
		sk_X509_push(sk, i % 3 == 0 ? c_ca : i % 3 == 1 ? c_old_int :
		    c_wild);
	CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, CA_SPKI_SHA256, mx, 1, &r), 1);
	CHECK_INT(r.depth, 2);
	CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, INT_SPKI_SHA256, mx, 1, &r), 1);
	CHECK_INT(r.depth, 1);
	CHECK_INT(verify1(c_leaf, sk, 3, 1, 1, LEAF_SPKI_SHA256, mx, 1, &r), 1);
	CHECK_INT(verify1(c_leaf, sk, 2, 1, 1, OLD_INT_SPKI_SHA256, mx, 1, &r),
	    0);
	sk_X509_free(sk);
}

/* dane_verify before any handshake: no peer certificate. */
static void
test_ssl(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	struct dane_tlsa_set set = { 0 };
	struct dane_result r;

	CHECK(ssl != NULL);
	CHECK_INT(add(&set, 3, 1, 1, LEAF_SPKI_SHA256), 0);
	if (ssl != NULL) {
		CHECK_INT(dane_verify(ssl, &set, mx, 1, &r), 0);
		CHECK_STR(r.reason, "the server sent no certificate");
	}
	dane_tlsa_set_clear(&set);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

/* --- the fingerprint */

static void
test_fingerprint(void)
{
	struct dane_tlsa_set a = { 0 }, b = { 0 }, c = { 0 }, e = { 0 };
	char fa[65], fb[65], fc[65], fe[65], small[9];

	CHECK_INT(add(&a, 3, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&a, 2, 0, 1, CA_CERT_SHA256), 0);
	CHECK_INT(add(&a, 3, 1, 2, LEAF_SPKI_SHA512), 0);
	CHECK_INT(add(&a, 2, 1, 1, INT_SPKI_SHA256), 0);
	/* The same RRset in another order, with unusable records between. */
	CHECK_INT(add(&b, 2, 1, 1, INT_SPKI_SHA256), 0);
	CHECK_INT(add(&b, 1, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&b, 3, 1, 2, LEAF_SPKI_SHA512), 0);
	CHECK_INT(add(&b, 3, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&b, 3, 9, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&b, 2, 0, 1, CA_CERT_SHA256), 0);
	dane_set_fingerprint(&a, fa, sizeof(fa));
	dane_set_fingerprint(&b, fb, sizeof(fb));
	CHECK_INT(strlen(fa), 64);
	CHECK_STR(fa, fb);
	/* One byte, or one field, differs: another value. */
	CHECK_INT(add(&c, 3, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&c, 2, 0, 1, CA_CERT_SHA256), 0);
	CHECK_INT(add(&c, 3, 1, 2, LEAF_SPKI_SHA512), 0);
	CHECK_INT(add_flip(&c, 2, 1, 1, INT_SPKI_SHA256, 1), 0);
	dane_set_fingerprint(&c, fc, sizeof(fc));
	CHECK(strcmp(fa, fc) != 0);
	dane_tlsa_set_clear(&c);
	CHECK_INT(add(&c, 3, 1, 1, LEAF_SPKI_SHA256), 0);
	CHECK_INT(add(&c, 2, 0, 1, CA_CERT_SHA256), 0);
	CHECK_INT(add(&c, 3, 1, 2, LEAF_SPKI_SHA512), 0);
	CHECK_INT(add(&c, 3, 1, 1, INT_SPKI_SHA256), 0);
	dane_set_fingerprint(&c, fc, sizeof(fc));
	CHECK(strcmp(fa, fc) != 0);
	/* A subset differs too; no usable record is a value of its own. */
	dane_tlsa_set_clear(&c);
	CHECK_INT(add(&c, 3, 1, 1, LEAF_SPKI_SHA256), 0);
	dane_set_fingerprint(&c, fc, sizeof(fc));
	CHECK(strcmp(fa, fc) != 0);
	dane_set_fingerprint(&e, fe, sizeof(fe));
	CHECK_INT(strlen(fe), 64);
	CHECK(strcmp(fe, fc) != 0);
	/* Cut to the buffer. */
	dane_set_fingerprint(&a, small, sizeof(small));
	CHECK_INT(strlen(small), 8);
	CHECK(strncmp(small, fa, 8) == 0);
	dane_tlsa_set_clear(&a);
	dane_tlsa_set_clear(&b);
	dane_tlsa_set_clear(&c);
}

int
main(void)
{
	c_ee_self = load("ee-self");
	c_ca = load("ca");
	c_int = load("int");
	c_leaf = load("leaf");
	c_other = load("other");
	c_wild = load("wild");
	c_cnonly = load("cnonly");
	c_old_int = load("old-int");
	c_old_leaf = load("old-leaf");

	RUN(test_names);
	RUN(test_decide);
	RUN(test_set_parse);
	RUN(test_set_full);
	RUN(test_ee);
	RUN(test_rollover);
	RUN(test_ta);
	RUN(test_ta_names);
	RUN(test_ta_chain);
	RUN(test_long_chain);
	RUN(test_ssl);
	RUN(test_fingerprint);

	X509_free(c_ee_self);
	X509_free(c_ca);
	X509_free(c_int);
	X509_free(c_leaf);
	X509_free(c_other);
	X509_free(c_wild);
	X509_free(c_cnonly);
	X509_free(c_old_int);
	X509_free(c_old_leaf);
	return T_DONE();
}
