/*
 * Helpers shared by the MTA-STS unit tests (test_sts.c, the cache on a
 * loop; test_stsdecide.c, its pure rules): records made in a line.
 * Static inline, so a test that includes this and uses only some of
 * them still builds without unused-function warnings; not a test_*.c
 * file, so the Makefile makes no binary of it.
 */
#ifndef MXTLS_STSREC_H
#define MXTLS_STSREC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsdecide.h"

/* strdup, or exit 2 (the harness's "could not run") when memory is out. */
static inline char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		exit(2);
	return p;
}

/*
 * A record for domain with policy id, mode and max_age, fetched at
 * fetched (expires fetched + max_age), with its own copies of the mx
 * patterns mx1 and mx2 (either NULL for none).  Free with
 * sts_record_free.
 */
static inline void
mkrec(struct sts_record *r, const char *domain, const char *id,
    enum mtasts_mode mode, long max_age, time_t fetched, const char *mx1,
    const char *mx2)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->fetched_at = fetched;
	r->expires = fetched + max_age;
	r->policy.mode = mode;
	r->policy.max_age = max_age;
	r->policy.mx = calloc(2, sizeof(char *));
	if (r->policy.mx == NULL)
		exit(2);
	if (mx1 != NULL)
		r->policy.mx[r->policy.nmx++] = xstrdup(mx1);
	if (mx2 != NULL)
		r->policy.mx[r->policy.nmx++] = xstrdup(mx2);
}

#endif
