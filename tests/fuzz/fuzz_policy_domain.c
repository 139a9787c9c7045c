/*
 * policy_domain_to_ascii(), policy_lookup() and policy_mx_pattern_match()
 * (policy/policy.c): recipient domains as the MTA hands them over (any
 * bytes after the '@', UTF-8 under SMTPUTF8), through libidn2.
 * Invariants: a converted name is a valid lower-case host name of at
 * most POLICY_DOMAIN_MAX bytes, and converting it again gives it back
 * (one domain, one A-label form: what is accepted in UTF-8 is accepted
 * in ASCII); policy_lookup() on "x@NAME" always yields a profile and,
 * for a non-ASCII NAME, agrees with the conversion; a name matches itself as an mx pattern.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "policy.h"

static struct policy_set set;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[POLICY_ERR_MAX];
	struct policy_origin o = { "fuzz", 1 };

	(void)argc;
	(void)argv;
	policy_set_init(&set);
	if (policy_set_key(&set, "match example.com", "profile", "mandatory",
	    o, err, sizeof(err)) != 0 ||
	    policy_set_key(&set, "match xn--bcher-kva.example", "profile",
	    "mandatory", o, err, sizeof(err)) != 0 ||
	    policy_set_finish(&set, &o, err, sizeof(err)) != 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[POLICY_DOMAIN_MAX + 1], again[POLICY_DOMAIN_MAX + 1];
	char *rcpt;
	const char *why = NULL, *why2 = NULL;
	struct policy_decision d;
	size_t i, n;
	int rc;

	rc = policy_domain_to_ascii((const char *)data, size, out, &why);
	if (rc == 0) {
		n = strlen(out);
		FUZZ_CHECK(n >= 1 && n <= POLICY_DOMAIN_MAX, "length %zu", n);
		FUZZ_CHECK(policy_valid_hostname(out, n), "\"%s\" invalid",
		    out);
		for (i = 0; i < n; i++)
			FUZZ_CHECK(!(out[i] >= 'A' && out[i] <= 'Z'),
			    "\"%s\" not lower-case", out);
		FUZZ_CHECK(policy_domain_to_ascii(out, n, again, &why2) == 0,
		    "\"%s\" accepted in UTF-8, its A-label form refused: %s",
		    out, why2);
		FUZZ_CHECK(strcmp(out, again) == 0, "\"%s\" becomes \"%s\"",
		    out, again);
		FUZZ_CHECK(policy_mx_pattern_match(out, out),
		    "\"%s\" does not match itself", out);
	} else
		FUZZ_CHECK(rc == -1 && why != NULL && out[0] == '\0',
		    "failure: rc %d", rc);

	/* As a recipient: "x@" + the bytes (a C string: up to a NUL). */
	if ((rcpt = malloc(size + 3)) == NULL)
		abort();
	memcpy(rcpt, "x@", 2);
	memcpy(rcpt + 2, data, size);
	rcpt[size + 2] = '\0';
	policy_lookup(&set, rcpt, &d);
	FUZZ_CHECK(d.profile != NULL, "no profile");
	/*
	 * A non-ASCII domain (no NUL, no '@', no trailing dot) is converted
	 * the same way; an ASCII one is only lower-cased (documented).
	 */
	for (i = 0; i < size && data[i] < 0x80; i++)
		;
	if (i < size && memchr(data, '\0', size) == NULL &&
	    memchr(data, '@', size) == NULL && data[size - 1] != '.') {
		FUZZ_CHECK((d.status == POLICY_OK) == (rc == 0),
		    "lookup status %d, conversion %d", d.status, rc);
		if (rc == 0)
			FUZZ_CHECK(strcmp(d.domain, out) == 0,
			    "lookup domain \"%s\", conversion \"%s\"",
			    d.domain, out);
	}
	free(rcpt);
	return 0;
}
