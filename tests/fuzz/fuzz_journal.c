/*
 * journal_header_len() and journal_scan() (proxy/journal.c): a journal
 * file as a crash, a disk error or a hand edit may leave it.  Invariants:
 * every record accepted lies inside the input, after the one before;
 * formatted again from its key and value it is the same bytes (so the
 * scanner accepts exactly what the writer writes); a refusal says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "journal.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *why;
	char key[JOURNAL_KEY_MAX + 1], *again;
	struct journal_rec r;
	size_t off, n;
	int rc;

	off = journal_header_len(buf, size, "mta-sts");
	FUZZ_CHECK(off == 0 || (off <= size && buf[off - 1] == '\n'),
	    "header length %zu", off);
	while (1) {
		why = NULL;
		rc = journal_scan(buf, size, off, &r, &why);
		if (rc == 0) {
			FUZZ_CHECK(off == size, "end before the end");
			break;
		}
		if (rc < 0) {
			FUZZ_CHECK(why != NULL && why[0] != '\0',
			    "refusal without why");
			break;
		}
		FUZZ_CHECK(r.end > off && r.end <= size, "record outside");
		FUZZ_CHECK(r.key >= buf + off && r.value + r.len < buf + r.end,
		    "fields outside the record");
		FUZZ_CHECK(r.keylen >= 1 && r.keylen <= JOURNAL_KEY_MAX,
		    "key length %zu", r.keylen);
		FUZZ_CHECK(r.op == 'P' || (r.op == 'D' && r.len == 0), "op");
		memcpy(key, r.key, r.keylen);
		key[r.keylen] = '\0';
		FUZZ_CHECK((again = malloc(r.end - off)) != NULL, "malloc");
		n = journal_format(r.op, key, r.value, r.len, again,
		    r.end - off);
		FUZZ_CHECK(n == r.end - off &&
		    memcmp(again, buf + off, n) == 0,
		    "formatted again, the record differs");
		free(again);
		off = r.end;
	}
	return 0;
}
