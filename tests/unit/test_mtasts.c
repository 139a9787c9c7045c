/*
 * policy/mtasts.c: the _mta-sts TXT record, the policy file and the mx
 * patterns.  Bad inputs follow docs/security.md F-01 and F-05 (after
 * postfix-mta-sts-resolver's bad-record and bad-policy cases) plus the
 * RFC 8461 rules on repeated fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mtasts.h"
#include "t.h"

static char err[MTASTS_ERR_MAX];

/* ---- TXT ---- */

static enum mtasts_txt_status
txt1(const char *rec, struct mtasts_txt *out)
{
	const char *recs[1] = { rec };
	size_t lens[1] = { strlen(rec) };

	return mtasts_parse_txt(recs, lens, 1, out, err, sizeof(err));
}

static void
txt_valid(void)
{
	static const struct {
		const char *rec, *id;
	} cases[] = {
		{ "v=STSv1; id=20180907T090909;", "20180907T090909" },
		{ "v=STSv1;id=abc", "abc" },
		{ "v=STSv1; id=abc", "abc" },
		{ "v=STSv1 ; id=abc ; ", "abc" },
		{ "v=STSv1;\tid=abc;\t", "abc" },
		{ "v=STSv1; id=abc; foo=bar;", "abc" },
		{ "v=STSv1; foo=bar; id=abc", "abc" },
		{ "v=STSv1; id=A1; x.y_z-1=~!@#$%^&*()[]{}<>?/|:", "A1" },
		{ "v=STSv1; id=12345678901234567890123456789012",
		    "12345678901234567890123456789012" },
		/* "ID" is an extension, not the id. */
		{ "v=STSv1; ID=x; id=y", "y" },
	};
	struct mtasts_txt t;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (txt1(cases[i].rec, &t) != MTASTS_TXT_OK) {
			fprintf(stderr, "  rejected \"%s\": %s\n", cases[i].rec,
			    err);
			CHECK(0);
			continue;
		}
		CHECK_STR(t.id, cases[i].id);
	}
}

static void
txt_no_policy(void)
{
	/* Not "v=STSv1": discarded, so there is no record at all. */
	static const char *const cases[] = {
		"v=STSv12;id=abc",
		"id=abc; v=STSv1;",
		"azazaza;asdasdasdasd",
		"V=STSv1; id=abc",
		"v=stsv1; id=abc",
		" v=STSv1; id=abc",
		"v=STSv1x; id=abc",
		"v=spf1 -all",
		"",
	};
	struct mtasts_txt t;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (txt1(cases[i], &t) != MTASTS_TXT_NONE) {
			fprintf(stderr, "  not NONE: \"%s\"\n", cases[i]);
			CHECK(0);
		}
	CHECK_INT(mtasts_parse_txt(NULL, NULL, 0, &t, err, sizeof(err)),
	    MTASTS_TXT_NONE);
	CHECK(strstr(err, "no TXT record") != NULL);
}

static void
txt_invalid(void)
{
	static const char *const cases[] = {
		"v=STSv1",
		"v=STSv1;",
		"v=STSv1; ",
		"v=STSv1; id=",
		"v=STSv1; id=123456789012345678901234567890123", /* 33 */
		"v=STSv1; id=abc-def",
		"v=STSv1; id=abc.def",
		"v=STSv1; id=ab c",
		"v=STSv1; id=abc; id=def",
		"v=STSv1; id=abc;; ",
		"v=STSv1;; id=abc",
		"v=STSv1; id=abc x",
		"v=STSv1 id=abc",
		"v=STSv1; id=abc; foo=",
		"v=STSv1; id=abc; fo o=bar",
		"v=STSv1; id=abc; foo=b=ar",
		"v=STSv1; id=abc; _foo=bar",
		"v=STSv1; id=abc; foo",
		"v=STSv1; id=abc; =bar",
		"v=STSv1; id=abc; 123456789012345678901234567890123=x",
		"v=STSv1; id=\xc3\xa9t\xc3\xa9",
		"v=STSv1; id=abc; foo=\xc3\xa9",
		"v=STSv1; ID=abc",
		"v=STSv1; garbage",
	};
	struct mtasts_txt t;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&t, 'x', sizeof(t));
		if (txt1(cases[i], &t) != MTASTS_TXT_INVALID) {
			fprintf(stderr, "  not INVALID: \"%s\"\n", cases[i]);
			CHECK(0);
		}
		CHECK_STR(t.id, ""); /* never half an answer */
		CHECK(err[0] != '\0');
	}

	/* A NUL inside the record. */
	{
		const char rec[] = "v=STSv1; id=a\0c";
		const char *recs[1] = { rec };
		size_t lens[1] = { sizeof(rec) - 1 };

		CHECK_INT(mtasts_parse_txt(recs, lens, 1, &t, err, sizeof(err)),
		    MTASTS_TXT_INVALID);
	}
}

static void
txt_several(void)
{
	const char *recs[3];
	size_t lens[3];
	struct mtasts_txt t;
	int i;

	/*
	 * Two policies announced: no policy (RFC 8461 section 3.1: "If the
	 * number of resulting records is not one", no MTA-STS).
	 */
	recs[0] = "v=STSv1; id=one;";
	recs[1] = "v=STSv1; id=two;";
	for (i = 0; i < 2; i++)
		lens[i] = strlen(recs[i]);
	CHECK_INT(mtasts_parse_txt(recs, lens, 2, &t, err, sizeof(err)),
	    MTASTS_TXT_INVALID);
	CHECK(strstr(err, "2 TXT records") != NULL);

	/* The same record twice is still two. */
	recs[1] = recs[0];
	lens[1] = lens[0];
	CHECK_INT(mtasts_parse_txt(recs, lens, 2, &t, err, sizeof(err)),
	    MTASTS_TXT_INVALID);

	/* A broken second STSv1 record spoils the good one. */
	recs[1] = "v=STSv1; garbage";
	lens[1] = strlen(recs[1]);
	CHECK_INT(mtasts_parse_txt(recs, lens, 2, &t, err, sizeof(err)),
	    MTASTS_TXT_INVALID);

	/* Other records beside it are discarded. */
	recs[0] = "v=spf1 -all";
	recs[1] = "google-site-verification=abc";
	recs[2] = "v=STSv1; id=20240101;";
	for (i = 0; i < 3; i++)
		lens[i] = strlen(recs[i]);
	CHECK_INT(mtasts_parse_txt(recs, lens, 3, &t, err, sizeof(err)),
	    MTASTS_TXT_OK);
	CHECK_STR(t.id, "20240101");

	/* NULL entries are skipped. */
	recs[0] = NULL;
	lens[0] = 0;
	CHECK_INT(mtasts_parse_txt(recs, lens, 3, &t, err, sizeof(err)),
	    MTASTS_TXT_OK);
}

static void
txt_split_strings(void)
{
	/* One record of two strings, joined without a separator. */
	const char *parts[2] = { "v=STSv1; id=2018", "0907T090909;" };
	char joined[64];
	struct mtasts_txt t;

	snprintf(joined, sizeof(joined), "%s%s", parts[0], parts[1]);
	CHECK_INT(txt1(joined, &t), MTASTS_TXT_OK);
	CHECK_STR(t.id, "20180907T090909");
	/* Joined with a space (a common mistake) the id breaks. */
	snprintf(joined, sizeof(joined), "%s %s", parts[0], parts[1]);
	CHECK_INT(txt1(joined, &t), MTASTS_TXT_INVALID);
}

/* ---- policy ---- */

static int
pol(const char *text, struct mtasts_policy *p)
{
	return mtasts_parse_policy(text, strlen(text), p, err, sizeof(err));
}

static void
policy_valid(void)
{
	struct mtasts_policy p;

	CHECK_INT(pol("version: STSv1\nmode: enforce\nmx: mail.example.com\n"
	    "mx: *.example.net\nmax_age: 86400\n", &p), 0);
	CHECK_INT(p.mode, MTASTS_ENFORCE);
	CHECK_INT(p.max_age, 86400);
	CHECK_INT(p.max_age_capped, 0);
	CHECK_INT(p.nmx, 2);
	if (p.nmx == 2) {
		CHECK_STR(p.mx[0], "mail.example.com");
		CHECK_STR(p.mx[1], "*.example.net");
	}
	mtasts_policy_free(&p);
	CHECK(p.mx == NULL && p.nmx == 0);

	/* CRLF, no final newline, mixed, blank lines, odd spacing. */
	CHECK_INT(pol("version: STSv1\r\nmode: testing\r\nmx: mx1.example.com"
	    "\r\nmax_age: 604800\r\n", &p), 0);
	CHECK_INT(p.mode, MTASTS_TESTING);
	CHECK_INT(p.max_age, 604800);
	mtasts_policy_free(&p);
	CHECK_INT(pol("version: STSv1\nmode: enforce\r\nmx: a.example\n"
	    "max_age: 1", &p), 0);
	mtasts_policy_free(&p);
	CHECK_INT(pol("\n\r\n  version:STSv1  \n\tmode :\tenforce\n\n"
	    "mx:   a.example   \r\nmax_age: 0\r\n\r\n\n", &p), 0);
	CHECK_INT(p.max_age, 0);
	CHECK_STR(p.nmx == 1 ? p.mx[0] : "", "a.example");
	mtasts_policy_free(&p);

	/* Unknown keys are ignored, whatever their value. */
	CHECK_INT(pol("version: STSv1\nfoo: bar\nmode: enforce\nx-y.z_1: "
	    "gr\xc3\xbc\xc3\x9f \xe6\x97\xa5 : ; = \nmx: a.example\n"
	    "max_age: 10\nmaxage: x\nnmx: b.example\n", &p), 0);
	CHECK_INT(p.nmx, 1);
	mtasts_policy_free(&p);

	/* mode none needs no mx; testing is valid. */
	CHECK_INT(pol("version: STSv1\nmode: none\nmax_age: 86400\n", &p), 0);
	CHECK_INT(p.mode, MTASTS_NONE);
	CHECK_INT(p.nmx, 0);
	mtasts_policy_free(&p);
}

static void
policy_repeated(void)
{
	struct mtasts_policy p;

	/* The first of a repeated field counts; later ones are ignored. */
	CHECK_INT(pol("version: STSv1\nmode: enforce\nmode: none\nmx: a.example"
	    "\nmax_age: 1\nmax_age: 2\n", &p), 0);
	CHECK_INT(p.mode, MTASTS_ENFORCE);
	CHECK_INT(p.max_age, 1);
	mtasts_policy_free(&p);
	CHECK_INT(pol("version: STSv1\nversion: bogus\nmode: testing\n"
	    "mode: doubt\nmx: a.example\nmax_age: 1\nmax_age: xxx\n", &p), 0);
	CHECK_INT(p.mode, MTASTS_TESTING);
	mtasts_policy_free(&p);
	/* ... so a bad first one is not saved by a good second one. */
	CHECK_INT(pol("version: STSv1\nmode: doubt\nmode: enforce\n"
	    "mx: a.example\nmax_age: 1\n", &p), -1);
	CHECK(strstr(err, "line 2: mode") != NULL);

	/* mx repeats and accumulates; duplicates are folded. */
	CHECK_INT(pol("version: STSv1\nmode: enforce\nmx: a.example\n"
	    "mx: B.Example.\nmx: A.EXAMPLE\nmx: *.c.example\nmax_age: 1\n",
	    &p), 0);
	CHECK_INT(p.nmx, 3);
	if (p.nmx == 3) {
		CHECK_STR(p.mx[0], "a.example");
		CHECK_STR(p.mx[1], "b.example");
		CHECK_STR(p.mx[2], "*.c.example");
	}
	mtasts_policy_free(&p);
}

static void
policy_invalid(void)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
		/* postfix-mta-sts-resolver bad-policy1..8 */
		{ "garbage", "line 1: expected" },
		{ "version: STSv1\nmode: enforce\nmax_age: 86400\n", "mx: missing" },
		{ "version: STSv1\nmode: testing\nmax_age: 86400\n", "mx: missing" },
		{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: xxx\n",
		    "line 4: max_age" },
		{ "version: STSv1\nmx: a.example\nmax_age: 86400\n", "mode: missing" },
		{ "version: STSv1\nmode: doubt\nmx: a.example\nmax_age: 1\n",
		    "mode" },
		/* version */
		{ "mode: enforce\nmx: a.example\nmax_age: 1\n", "version: missing" },
		{ "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
		    "version" },
		{ "version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 1\n",
		    "version" },
		{ "Version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n",
		    "version: missing" },
		/* mode words are case-sensitive */
		{ "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
		    "mode" },
		{ "version: STSv1\nmode: enforce \x01\nmx: a.example\nmax_age: 1\n",
		    "control" },
		/* a typo leaves enforce without mx */
		{ "version: STSv1\nmode: enforce\nnmx: a.example\nmax_age: 1\n",
		    "mx: missing" },
		/* max_age */
		{ "version: STSv1\nmode: enforce\nmx: a.example\n", "max_age: missing" },
		{ "version: STSv1\nmode: none\nmax_age: -1\n", "max_age" },
		{ "version: STSv1\nmode: none\nmax_age: +1\n", "max_age" },
		{ "version: STSv1\nmode: none\nmax_age: 1 2\n", "max_age" },
		{ "version: STSv1\nmode: none\nmax_age: 0x10\n", "max_age" },
		{ "version: STSv1\nmode: none\nmax_age: 1.5\n", "max_age" },
		{ "version: STSv1\nmode: none\nmax_age: 12345678901\n", "max_age" },
		/* empty values, keys */
		{ "version: STSv1\nmode:\nmx: a.example\nmax_age: 1\n", "empty" },
		{ "version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "empty" },
		{ "version: STSv1\n: enforce\nmx: a.example\nmax_age: 1\n", "key" },
		{ "version: STSv1\nmo de: enforce\nmx: a.example\nmax_age: 1\n",
		    "key" },
		{ "version: STSv1\n-mode: enforce\nmx: a.example\nmax_age: 1\n",
		    "key" },
		/* line endings: CR alone is no terminator */
		{ "version: STSv1\rmode: enforce\rmx: a.example\rmax_age: 1\r",
		    "control" },
		{ "version: STSv1\r\r\nmode: none\nmax_age: 1\n", "control" },
		/* mx patterns */
		{ "version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n",
		    "leftmost" },
		{ "version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: *example.com\nmax_age: 1\n",
		    "leftmost" },
		{ "version: STSv1\nmode: enforce\nmx: **.example.com\nmax_age: 1\n",
		    "leftmost" },
		{ "version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 1\n",
		    "leftmost" },
		{ "version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 1\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: .example\nmax_age: 1\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: a.example b.example\n"
		    "max_age: 1\n", "one pattern" },
		{ "version: STSv1\nmode: enforce\nmx: a.example,b.example\n"
		    "max_age: 1\n", "mx" },
		{ "version: STSv1\nmode: enforce\nmx: [192.0.2.1]\nmax_age: 1\n",
		    "mx" },
		{ "version: STSv1\nmode: enforce\nmx: xn--zz.example\nmax_age: 1\n",
		    "mx" },
		/* a bad mx spoils a mode none policy too */
		{ "version: STSv1\nmode: none\nmx: a b\nmax_age: 1\n", "mx" },
		/* nothing */
		{ "", "empty" },
		{ "\n\n", "version: missing" },
	};
	struct mtasts_policy p;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (pol(cases[i].text, &p) != -1) {
			fprintf(stderr, "  accepted case %zu\n", i);
			CHECK(0);
			mtasts_policy_free(&p);
			continue;
		}
		CHECK(p.mx == NULL && p.nmx == 0 && p.max_age == 0);
		if (strstr(err, cases[i].why) == NULL) {
			fprintf(stderr, "  case %zu: \"%s\" lacks \"%s\"\n", i,
			    err, cases[i].why);
			CHECK(0);
		}
	}
}

static void
policy_bytes(void)
{
	struct mtasts_policy p;
	static const char nul[] = "version: STSv1\nmode: none\0\nmax_age: 1\n";

	CHECK_INT(mtasts_parse_policy(nul, sizeof(nul) - 1, &p, err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "line 2: control") != NULL);
	/* Only len bytes count: the text need not be NUL-terminated. */
	CHECK_INT(mtasts_parse_policy("version: STSv1\nmode: none\nmax_age: 1"
	    "\nmode: bogus\n", 36, &p, err, sizeof(err)), 0);
	mtasts_policy_free(&p);
	CHECK_INT(mtasts_parse_policy(NULL, 0, &p, err, sizeof(err)), -1);
}

static void
policy_max_age(void)
{
	static const struct {
		const char *v;
		long want;
		int capped;
	} cases[] = {
		{ "0", 0, 0 },
		{ "86400", 86400, 0 },
		{ "31557600", 31557600, 0 },
		{ "31557601", 31557600, 1 },
		{ "9999999999", 31557600, 1 },
		{ "0000000001", 1, 0 },
	};
	struct mtasts_policy p;
	char text[128];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "version: STSv1\nmode: enforce\n"
		    "mx: a.example\nmax_age: %s\n", cases[i].v);
		CHECK_INT(pol(text, &p), 0);
		CHECK_INT(p.max_age, cases[i].want);
		CHECK_INT(p.max_age_capped, cases[i].capped);
		mtasts_policy_free(&p);
	}
}

static void
policy_limits(void)
{
	struct mtasts_policy p;
	char *big;
	size_t n, i;
	int k;

	/* Exactly 64 KiB is fine: padding with an unknown key. */
	big = malloc(MTASTS_POLICY_MAX + 2);
	n = (size_t)snprintf(big, MTASTS_POLICY_MAX, "version: STSv1\n"
	    "mode: enforce\nmx: a.example\nmax_age: 1\npad: ");
	for (i = n; i < MTASTS_POLICY_MAX - 1; i++)
		big[i] = 'p';
	big[MTASTS_POLICY_MAX - 1] = '\n';
	CHECK_INT(mtasts_parse_policy(big, MTASTS_POLICY_MAX, &p, err,
	    sizeof(err)), 0);
	mtasts_policy_free(&p);
	/* One byte more is refused whole. */
	big[MTASTS_POLICY_MAX] = '\n';
	CHECK_INT(mtasts_parse_policy(big, MTASTS_POLICY_MAX + 1, &p, err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "65537 bytes") != NULL);
	free(big);

	/* MTASTS_MX_MAX patterns, and one more. */
	big = malloc(MTASTS_POLICY_MAX);
	n = (size_t)sprintf(big, "version: STSv1\nmode: enforce\nmax_age: 1\n");
	for (k = 0; k < MTASTS_MX_MAX; k++)
		n += (size_t)sprintf(big + n, "mx: mx%d.example\n", k);
	CHECK_INT(mtasts_parse_policy(big, n, &p, err, sizeof(err)), 0);
	CHECK_INT(p.nmx, MTASTS_MX_MAX);
	mtasts_policy_free(&p);
	n += (size_t)sprintf(big + n, "mx: one-more.example\n");
	CHECK_INT(mtasts_parse_policy(big, n, &p, err, sizeof(err)), -1);
	CHECK(strstr(err, "more than") != NULL);
	free(big);

	/* A very long line in a known key does not overflow anything. */
	big = malloc(MTASTS_POLICY_MAX);
	n = (size_t)sprintf(big, "version: STSv1\nmode: enforce\nmax_age: 1\nmx: ");
	while (n < MTASTS_POLICY_MAX - 20)
		big[n++] = 'a';
	CHECK_INT(mtasts_parse_policy(big, n, &p, err, sizeof(err)), -1);
	CHECK(strlen(err) < sizeof(err));
	free(big);
}

static void
policy_idn(void)
{
	struct mtasts_policy p;

	CHECK_INT(pol("version: STSv1\nmode: enforce\nmx: mx.b\xc3\xbc"
	    "cher.example\nmx: *.B\xc3\x9c" "CHER.example\nmax_age: 1\n", &p),
	    0);
	CHECK_INT(p.nmx, 2);
	if (p.nmx == 2) {
		CHECK_STR(p.mx[0], "mx.xn--bcher-kva.example");
		CHECK_STR(p.mx[1], "*.xn--bcher-kva.example");
	}
	CHECK(mtasts_mx_match(&p, "mx.xn--bcher-kva.example"));
	CHECK(mtasts_mx_match(&p, "mx2.XN--BCHER-KVA.example."));
	mtasts_policy_free(&p);
}

static void
mx_match(void)
{
	static const struct {
		const char *host;
		int want;
	} cases[] = {
		{ "mail.example.com", 1 },
		{ "MAIL.EXAMPLE.COM", 1 },
		{ "mail.example.com.", 1 },
		{ "other.example.com", 0 },
		{ "mx1.example.net", 1 },
		{ "MX1.Example.Net.", 1 },
		{ "example.net", 0 },
		{ ".example.net", 0 },
		{ "a.b.example.net", 0 },
		{ "mx1.example.net.evil", 0 },
		{ "xexample.net", 0 },
		{ "mail.example.com.evil", 0 },
		{ "", 0 },
	};
	struct mtasts_policy p;
	size_t i;

	CHECK_INT(pol("version: STSv1\nmode: enforce\nmx: mail.example.com\n"
	    "mx: *.example.net\nmax_age: 1\n", &p), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (mtasts_mx_match(&p, cases[i].host) != cases[i].want) {
			fprintf(stderr, "  %s: want %d\n", cases[i].host,
			    cases[i].want);
			CHECK(0);
		}
	mtasts_policy_free(&p);
	/* No patterns, no match. */
	CHECK_INT(pol("version: STSv1\nmode: none\nmax_age: 1\n", &p), 0);
	CHECK_INT(mtasts_mx_match(&p, "mail.example.com"), 0);
	mtasts_policy_free(&p);
	CHECK_STR(mtasts_mode_name(MTASTS_ENFORCE), "enforce");
	CHECK_STR(mtasts_mode_name(MTASTS_TESTING), "testing");
	CHECK_STR(mtasts_mode_name(MTASTS_NONE), "none");
	CHECK_STR(mtasts_mode_name((enum mtasts_mode)9), "unknown");
}

static uint32_t rng = 2463534242u;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void
garbage(void)
{
	static const char valid[] = "version: STSv1\r\nmode: enforce\r\n"
	    "mx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n";
	static const char alphabet[] = "v=STSv1;id: \r\n\t*.-_exampl0\x80\xff\0mx";
	char buf[sizeof(valid)], g[512];
	const char *recs[1];
	size_t lens[1], n, k;
	struct mtasts_policy p;
	struct mtasts_txt t;
	int i, bad = 0;

	for (i = 0; i < 50000; i++) {
		/* A valid policy with a few bytes changed. */
		memcpy(buf, valid, sizeof(valid));
		for (k = 0, n = 1 + rnd() % 3; k < n; k++)
			buf[rnd() % (sizeof(valid) - 1)] = (char)rnd();
		if (mtasts_parse_policy(buf, sizeof(valid) - 1, &p, err,
		    sizeof(err)) == 0) {
			if (p.mode != MTASTS_NONE && p.nmx == 0)
				bad++;
			mtasts_policy_free(&p);
		}
		/* Random strings from a nasty alphabet. */
		n = rnd() % sizeof(g);
		for (k = 0; k < n; k++)
			g[k] = alphabet[rnd() % (sizeof(alphabet) - 1)];
		if (mtasts_parse_policy(g, n, &p, err, sizeof(err)) == 0)
			mtasts_policy_free(&p);
		recs[0] = g;
		lens[0] = n;
		if (mtasts_parse_txt(recs, lens, 1, &t, err, sizeof(err)) ==
		    MTASTS_TXT_OK && (strlen(t.id) == 0 ||
		    strlen(t.id) > MTASTS_ID_MAX))
			bad++;
	}
	CHECK_INT(bad, 0);
}

int
main(void)
{
	RUN(txt_valid);
	RUN(txt_no_policy);
	RUN(txt_invalid);
	RUN(txt_several);
	RUN(txt_split_strings);
	RUN(policy_valid);
	RUN(policy_repeated);
	RUN(policy_invalid);
	RUN(policy_bytes);
	RUN(policy_max_age);
	RUN(policy_limits);
	RUN(policy_idn);
	RUN(mx_match);
	RUN(garbage);
	return T_DONE();
}
