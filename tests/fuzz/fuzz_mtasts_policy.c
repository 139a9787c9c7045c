/*
 * mtasts_parse_policy() (policy/mtasts.c): the policy file served by
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt (hostile if that server
 * is).  Invariants: on success the mode is known, 0 <= max_age <=
 * MTASTS_MAX_AGE_MAX, at least one mx unless mode none, at most
 * MTASTS_MX_MAX, each pattern lower-case A-label host name with at most a
 * leading "*.", no trailing dot, no duplicates; the policy written back
 * as text parses to the same policy; every pattern matches itself (a
 * wildcard: one label in its place) and mtasts_mx_match() agrees; on
 * failure the error is set and the policy empty; no leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mtasts.h"
#include "policy.h"

static void
check_pattern(const struct mtasts_policy *p, int i)
{
	const char *m = p->mx[i], *host = m;
	char buf[POLICY_DOMAIN_MAX + 16];
	size_t j;
	int k;

	FUZZ_CHECK(m != NULL && m[0] != '\0', "mx %d empty", i);
	if (m[0] == '*' && m[1] == '.')
		host = m + 2;
	FUZZ_CHECK(policy_valid_hostname(host, strlen(host)),
	    "mx %d \"%s\" is not a host name", i, m);
	for (j = 0; m[j] != '\0'; j++)
		FUZZ_CHECK(!(m[j] >= 'A' && m[j] <= 'Z'),
		    "mx %d \"%s\" not lower-case", i, m);
	for (k = 0; k < i; k++)
		FUZZ_CHECK(strcmp(p->mx[k], m) != 0, "mx \"%s\" twice", m);
	if (host == m) {
		FUZZ_CHECK(policy_mx_pattern_match(m, m), "%s !~ itself", m);
		snprintf(buf, sizeof(buf), "%s.", m);
		FUZZ_CHECK(policy_mx_pattern_match(m, buf),
		    "%s !~ itself with a dot", m);
		FUZZ_CHECK(mtasts_mx_match(p, m), "mtasts_mx_match(%s)", m);
	} else {
		snprintf(buf, sizeof(buf), "mx.%s", host);
		FUZZ_CHECK(policy_mx_pattern_match(m, buf), "%s !~ %s", m,
		    buf);
		FUZZ_CHECK(mtasts_mx_match(p, buf), "mtasts_mx_match(%s)", buf);
		FUZZ_CHECK(!policy_mx_pattern_match(m, host),
		    "%s matches its own parent %s", m, host);
		snprintf(buf, sizeof(buf), "a.b.%s", host);
		FUZZ_CHECK(!policy_mx_pattern_match(m, buf),
		    "%s matches two labels: %s", m, buf);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mtasts_policy p, q;
	char err[MTASTS_ERR_MAX], *text;
	size_t cap, len;
	int i, rc;

	err[0] = '\0';
	rc = mtasts_parse_policy((const char *)data, size, &p, err,
	    sizeof(err));
	if (rc != 0) {
		FUZZ_CHECK(rc == -1 && err[0] != '\0', "failure without why");
		FUZZ_CHECK(p.mx == NULL && p.nmx == 0, "failure left mx");
		return 0;
	}
	FUZZ_CHECK(p.mode == MTASTS_NONE || p.mode == MTASTS_TESTING ||
	    p.mode == MTASTS_ENFORCE, "mode %d", p.mode);
	FUZZ_CHECK(p.max_age >= 0 && p.max_age <= MTASTS_MAX_AGE_MAX,
	    "max_age %ld", p.max_age);
	FUZZ_CHECK(!p.max_age_capped || p.max_age == MTASTS_MAX_AGE_MAX,
	    "capped to %ld", p.max_age);
	FUZZ_CHECK(p.nmx >= (p.mode == MTASTS_NONE ? 0 : 1) &&
	    p.nmx <= MTASTS_MX_MAX, "nmx %d in mode %s", p.nmx,
	    mtasts_mode_name(p.mode));
	for (i = 0; i < p.nmx; i++)
		check_pattern(&p, i);

	/* Written back, it reads the same. */
	cap = 128 + (size_t)p.nmx * (POLICY_DOMAIN_MAX + 8);
	if ((text = malloc(cap)) == NULL)
		abort();
	len = (size_t)snprintf(text, cap, "version: STSv1\nmode: %s\n"
	    "max_age: %ld\n", mtasts_mode_name(p.mode), p.max_age);
	for (i = 0; i < p.nmx; i++)
		len += (size_t)snprintf(text + len, cap - len, "mx: %s\n",
		    p.mx[i]);
	rc = mtasts_parse_policy(text, len, &q, err, sizeof(err));
	FUZZ_CHECK(rc == 0, "re-parse failed: %s\n%s", err, text);
	FUZZ_CHECK(q.mode == p.mode && q.max_age == p.max_age &&
	    q.nmx == p.nmx, "re-parse differs");
	for (i = 0; i < p.nmx; i++)
		FUZZ_CHECK(strcmp(p.mx[i], q.mx[i]) == 0, "mx %d: %s vs %s",
		    i, p.mx[i], q.mx[i]);
	free(text);
	mtasts_policy_free(&q);
	mtasts_policy_free(&p);
	FUZZ_CHECK(p.mx == NULL && p.nmx == 0, "free left mx");
	return 0;
}
