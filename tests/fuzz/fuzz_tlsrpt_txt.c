/*
 * tlsrpt_parse_txt() (policy/tlsrpt.c): the "_smtp._tls" TXT records, as
 * DNS (an attacker without DNSSEC) hands them over; the URIs it keeps are
 * where reports about our deliveries would go.  The input is split at LF
 * into up to 64 records.  Invariants: OK exactly when one record starts
 * "v=TLSRPTv1" (then the end, ";" or white space) and it is valid, and
 * then 1..TLSRPT_RUA_MAX URIs, each a mailto: with an "@" or an https://
 * URI, of printable ASCII without "," or ";"; NONE exactly when no
 * record starts so; an error message on NONE and INVALID, and no URI.
 * Each mailto: URI kept then goes through tlsrpt_mailto_addr()
 * (policy/tlsrptmsg.c), which mxtls puts into RCPT TO and To:: what it
 * accepts is one local@domain of printable ASCII without white space or
 * any of <>()[],;:\", whatever the %XX escapes said.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "tlsrpt.h"
#include "tlsrptmsg.h"

#define MAXRECS 64

static void
check_mailto(const char *uri)
{
	char a[TLSRPT_MAIL_ADDR_MAX + 1];
	const char *at;
	size_t i;

	if (tlsrpt_mailto_addr(uri, a, sizeof(a)) < 0)
		return;
	at = strchr(a, '@');
	FUZZ_CHECK(at != NULL && at != a && at[1] != '\0' &&
	    strchr(at + 1, '@') == NULL, "address \"%s\"", a);
	for (i = 0; a[i] != '\0'; i++)
		FUZZ_CHECK(a[i] > 0x20 && a[i] < 0x7f &&
		    strchr("<>()[],;:\\\"", a[i]) == NULL,
		    "address byte 0x%02x", (unsigned char)a[i]);
}

static int
starts_tlsrpt(const char *r, size_t n)
{
	return n >= 10 && memcmp(r, "v=TLSRPTv1", 10) == 0 &&
	    (n == 10 || r[10] == ';' || r[10] == ' ' || r[10] == '\t');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *recs[MAXRECS], *p = (const char *)data, *end = p + size;
	size_t lens[MAXRECS], i;
	struct tlsrpt_txt out;
	enum tlsrpt_txt_status st;
	char err[256];
	int n = 0, nrec = 0, u;

	while (n < MAXRECS) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));

		recs[n] = p;
		lens[n] = lf != NULL ? (size_t)(lf - p) : (size_t)(end - p);
		nrec += starts_tlsrpt(recs[n], lens[n]);
		n++;
		if (lf == NULL)
			break;
		p = lf + 1;
	}
	err[0] = '\0';
	st = tlsrpt_parse_txt(recs, lens, n, &out, err, sizeof(err));
	switch (st) {
	case TLSRPT_TXT_OK:
		FUZZ_CHECK(nrec == 1, "OK with %d v=TLSRPTv1 records", nrec);
		FUZZ_CHECK(out.nrua >= 1 && out.nrua <= TLSRPT_RUA_MAX,
		    "%d URIs", out.nrua);
		for (u = 0; u < out.nrua; u++) {
			const char *r = out.rua[u];

			FUZZ_CHECK(memchr(r, '\0', sizeof(out.rua[u])) != NULL,
			    "URI %d not terminated", u);
			FUZZ_CHECK((strncasecmp(r, "mailto:", 7) == 0 &&
			    strchr(r + 7, '@') != NULL) ||
			    (strncasecmp(r, "https://", 8) == 0 && r[8] != '\0'),
			    "URI \"%s\"", r);
			for (i = 0; r[i] != '\0'; i++)
				FUZZ_CHECK(r[i] > 0x20 && r[i] < 0x7f &&
				    r[i] != ',' && r[i] != ';',
				    "URI byte 0x%02x", (unsigned char)r[i]);
			if (strncasecmp(r, "mailto:", 7) == 0)
				check_mailto(r);
		}
		break;
	case TLSRPT_TXT_NONE:
		FUZZ_CHECK(nrec == 0, "NONE with %d v=TLSRPTv1 records", nrec);
		FUZZ_CHECK(err[0] != '\0' && out.nrua == 0, "NONE");
		break;
	case TLSRPT_TXT_INVALID:
		FUZZ_CHECK(nrec >= 1, "INVALID without a v=TLSRPTv1 record");
		FUZZ_CHECK(err[0] != '\0' && out.nrua == 0, "INVALID");
		break;
	default:
		FUZZ_CHECK(0, "status %d", st);
	}
	return 0;
}
