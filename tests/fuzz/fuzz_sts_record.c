/*
 * sts_record_parse() (policy/stsdecide.c): an MTA-STS cache record in
 * state_dir/mta-sts (written by mxtls, but read back after crashes, disk
 * errors or hand edits).  Invariants: on success the record is valid
 * (sts_domain_ok, id, expires = fetched_at + max_age, the policy's
 * rules), it formats, and the formatted text parses to the same record;
 * on failure the record is empty and err says
 * "line N: ..." or why; no leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stsdecide.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sts_record r, r2;
	char err[STS_ERROR_MAX], *text = NULL;
	size_t len = 0;
	int i;

	err[0] = '\0';
	if (sts_record_parse((const char *)data, size, &r, err,
	    sizeof(err)) != 0) {
		FUZZ_CHECK(err[0] != '\0', "failure without why");
		FUZZ_CHECK(r.domain[0] == '\0' && r.policy.mx == NULL &&
		    r.policy.nmx == 0, "failure left a record");
		return 0;
	}
	FUZZ_CHECK(sts_domain_ok(r.domain), "domain \"%s\"", r.domain);
	FUZZ_CHECK(r.id[0] != '\0', "empty id");
	FUZZ_CHECK(r.expires == r.fetched_at + (time_t)r.policy.max_age,
	    "expires");
	FUZZ_CHECK(r.fetched_at > 0 && r.expires <= STS_TIME_MAX, "times");
	FUZZ_CHECK(r.policy.nmx >= (r.policy.mode == MTASTS_NONE ? 0 : 1),
	    "no mx in mode %s", mtasts_mode_name(r.policy.mode));

	FUZZ_CHECK(sts_record_format(&r, &text, &len, err, sizeof(err)) == 0,
	    "parsed record does not format: %s", err);
	FUZZ_CHECK(text[len] == '\0' && strlen(text) == len, "not terminated");
	FUZZ_CHECK(sts_record_parse(text, len, &r2, err, sizeof(err)) == 0,
	    "formatted record does not parse: %s", err);
	FUZZ_CHECK(strcmp(r.domain, r2.domain) == 0 &&
	    strcmp(r.id, r2.id) == 0 && r.fetched_at == r2.fetched_at &&
	    r.expires == r2.expires && r.policy.mode == r2.policy.mode &&
	    r.policy.max_age == r2.policy.max_age &&
	    r.policy.nmx == r2.policy.nmx, "round trip differs");
	for (i = 0; i < r.policy.nmx; i++)
		FUZZ_CHECK(strcmp(r.policy.mx[i], r2.policy.mx[i]) == 0,
		    "mx %d: %s vs %s", i, r.policy.mx[i], r2.policy.mx[i]);
	free(text);
	sts_record_free(&r2);
	sts_record_free(&r);
	return 0;
}
