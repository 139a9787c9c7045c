/*
 * document_parse() (policy/document.c): the central policy document,
 * fetched from the policy server.  The input is the document's bytes.
 * Invariants: success and failure are exclusive (success: no errors and
 * a finished set; failure: 1..DOCUMENT_ERRORS_MAX+1 errors and an empty
 * document); errors come sorted by line; a parsed document merges with
 * a default local set, and lookups in the merged set yield a profile;
 * no leaks (ASan).  Inputs over DOCUMENT_MAX are cut (libFuzzer never
 * makes them anyway).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "fuzz.h"

static const char *const rcpts[] = { "a@example.com", "example.com",
	"b@sub.example.org", "x@bücher.example", "c@XN--BCHER-KVA.example",
	"postmaster@[192.0.2.1]", "@", "" };

static void
lookups(const struct policy_set *set)
{
	struct policy_decision d;
	size_t i;

	for (i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++) {
		policy_lookup(set, rcpts[i], &d);
		FUZZ_CHECK(d.profile != NULL, "no profile for %s", rcpts[i]);
		FUZZ_CHECK(d.nmx >= 0 && d.nmx <= POLICY_MX_MAX, "nmx %d",
		    d.nmx);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_document doc;
	struct document_errors errs;
	struct policy_set local, merged;
	char err[256];
	int rc, i;

	if (size > DOCUMENT_MAX)
		size = DOCUMENT_MAX;
	memset(&doc, 0, sizeof(doc));
	memset(&errs, 0, sizeof(errs));
	rc = document_parse((const char *)data, size, "https://p.example/doc",
	    &doc, &errs);
	if (rc != 0) {
		FUZZ_CHECK(rc == -1, "rc %d", rc);
		FUZZ_CHECK(errs.n >= 1 && errs.n <= DOCUMENT_ERRORS_MAX + 1,
		    "%d errors", errs.n);
		for (i = 0; i < errs.n; i++)
			FUZZ_CHECK(errs.msg[i] != NULL && errs.msg[i][0] != '\0',
			    "empty error %d", i);
		FUZZ_CHECK(doc.set.nprofiles == 0 && doc.set.nmatches == 0 &&
		    doc.name == NULL, "refused document left content");
		document_free(&doc);
		document_errors_free(&errs);
		return 0;
	}
	FUZZ_CHECK(errs.n == 0, "accepted with %d errors", errs.n);
	FUZZ_CHECK(doc.serial <= 0x7fffffffffffffffull, "serial %llu",
	    doc.serial);
	FUZZ_CHECK(doc.name != NULL &&
	    strcmp(doc.name, "https://p.example/doc") == 0, "name");
	for (i = 0; i < doc.set.nmatches; i++)
		FUZZ_CHECK(doc.set.matches[i].profile >= 0 &&
		    doc.set.matches[i].profile < doc.set.nprofiles,
		    "match %d names profile %d", i,
		    doc.set.matches[i].profile);
	for (i = 0; i < doc.set.nprofiles; i++)
		FUZZ_CHECK(strcmp(doc.set.profiles[i].name, "opportunistic") !=
		    0 || doc.set.profiles[i].builtin,
		    "a document redefined a built-in profile");
	lookups(&doc.set);

	policy_set_init(&local);
	FUZZ_CHECK(policy_set_finish(&local, &(struct policy_origin){ 0 },
	    err, sizeof(err)) == 0, "empty local set: %s", err);
	memset(&merged, 0, sizeof(merged));
	if (document_merge(&local, &doc, &merged, err, sizeof(err)) == 0) {
		FUZZ_CHECK(merged.nprofiles >= local.nprofiles,
		    "merge lost local profiles");
		lookups(&merged);
		policy_set_free(&merged);
	}
	policy_set_free(&local);
	document_free(&doc);
	document_errors_free(&errs);
	return 0;
}
