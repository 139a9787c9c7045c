/*
 * mtasts_parse_txt() (policy/mtasts.c): the "_mta-sts" TXT records, as
 * DNS (an attacker without DNSSEC) hands them over.  The input is split
 * at LF into up to 64 records.  Invariants: OK exactly when one record
 * starts "v=STSv1" (followed by the end, ";" or white space) and it is
 * valid, and then the id is 1..32 letters and digits; NONE exactly when
 * no record starts so; an error message on NONE and INVALID; the id is
 * empty unless OK.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "mtasts.h"

#define MAXRECS 64

static int
starts_sts(const char *r, size_t n)
{
	return n >= 7 && memcmp(r, "v=STSv1", 7) == 0 &&
	    (n == 7 || r[7] == ';' || r[7] == ' ' || r[7] == '\t');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *recs[MAXRECS], *p = (const char *)data, *end = p + size;
	size_t lens[MAXRECS], i;
	struct mtasts_txt out;
	enum mtasts_txt_status st;
	char err[MTASTS_ERR_MAX];
	int n = 0, nsts = 0;

	while (n < MAXRECS) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));

		recs[n] = p;
		lens[n] = lf != NULL ? (size_t)(lf - p) : (size_t)(end - p);
		nsts += starts_sts(recs[n], lens[n]);
		n++;
		if (lf == NULL)
			break;
		p = lf + 1;
	}
	err[0] = '\0';
	st = mtasts_parse_txt(recs, lens, n, &out, err, sizeof(err));
	FUZZ_CHECK(memchr(out.id, '\0', sizeof(out.id)) != NULL,
	    "id not terminated");
	switch (st) {
	case MTASTS_TXT_OK:
		FUZZ_CHECK(nsts == 1, "OK with %d v=STSv1 records", nsts);
		FUZZ_CHECK(strlen(out.id) >= 1 &&
		    strlen(out.id) <= MTASTS_ID_MAX, "id length %zu",
		    strlen(out.id));
		for (i = 0; out.id[i] != '\0'; i++)
			FUZZ_CHECK((out.id[i] >= 'a' && out.id[i] <= 'z') ||
			    (out.id[i] >= 'A' && out.id[i] <= 'Z') ||
			    (out.id[i] >= '0' && out.id[i] <= '9'),
			    "id byte 0x%02x", (unsigned char)out.id[i]);
		break;
	case MTASTS_TXT_NONE:
		FUZZ_CHECK(nsts == 0, "NONE with %d v=STSv1 records", nsts);
		FUZZ_CHECK(err[0] != '\0' && out.id[0] == '\0', "NONE");
		break;
	case MTASTS_TXT_INVALID:
		FUZZ_CHECK(nsts >= 1, "INVALID without a v=STSv1 record");
		FUZZ_CHECK(err[0] != '\0' && out.id[0] == '\0', "INVALID");
		break;
	default:
		FUZZ_CHECK(0, "status %d", st);
	}
	return 0;
}
