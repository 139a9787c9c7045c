/*
 * proxy/sts.h without DNS, fetches or a journal, for test_session: a
 * lookup waits until the test answers it with a policy (fake_sts_answer),
 * and a refresh is only counted, so a test can see that a failure under
 * an enforce policy asks for the policy again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "fakes.h"

struct sts {
	int refreshes;
	char refreshed[DNS_NAME_MAX];
};

struct sts_query {
	struct sts_query *next;
	char domain[DNS_NAME_MAX];
	sts_cb *cb;
	void *arg;
};

static struct sts the_sts;
static struct sts_query *pending;

struct sts *fake_sts = &the_sts;

struct sts_query *
sts_lookup(struct sts *s, const char *domain, sts_cb *cb, void *arg)
{
	struct sts_query *q;

	(void)s;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	snprintf(q->domain, sizeof(q->domain), "%s", domain);
	q->cb = cb;
	q->arg = arg;
	q->next = pending;
	pending = q;
	return q;
}

static void
fake_unlink(struct sts_query *q)
{
	struct sts_query **pp;

	for (pp = &pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			return;
		}
}

void
sts_cancel(struct sts_query *q)
{
	fake_unlink(q);
	free(q);
}

void
sts_refresh(struct sts *s, const char *domain)
{
	s->refreshes++;
	snprintf(s->refreshed, sizeof(s->refreshed), "%s", domain);
}

/* mxtls explain reads the cache from disk; no session does. */
int
sts_cache_read(const char *cache_dir, const char *domain,
    struct sts_record *out, char *err, size_t errlen)
{
	(void)cache_dir;
	(void)domain;
	(void)out;
	(void)err;
	(void)errlen;
	return 0;
}

/* --- the test's side ------------------------------------------------------ */

int
fake_sts_answer(const char *spec)
{
	char tmp[1024], *w, *save = NULL, *mx[MTASTS_MX_MAX];
	struct mtasts_policy p;
	struct sts_answer a;
	struct sts_query *q;
	const char *domain, *mode;

	snprintf(tmp, sizeof(tmp), "%s", spec);
	if ((domain = strtok_r(tmp, " ", &save)) == NULL ||
	    (mode = strtok_r(NULL, " ", &save)) == NULL)
		return -1;
	for (q = pending; q != NULL; q = q->next)
		if (strcmp(q->domain, domain) == 0)
			break;
	if (q == NULL)
		return -1;
	memset(&p, 0, sizeof(p));
	p.mode = strcmp(mode, "enforce") == 0 ? MTASTS_ENFORCE : MTASTS_TESTING;
	p.max_age = 86400;
	p.mx = mx;
	while ((w = strtok_r(NULL, " ", &save)) != NULL && p.nmx < MTASTS_MX_MAX)
		mx[p.nmx++] = w;
	memset(&a, 0, sizeof(a));
	/* Mode none reaches a session as no policy at all (sts.h). */
	a.policy = strcmp(mode, "enforce") == 0 ||
	    strcmp(mode, "testing") == 0 ? &p : NULL;
	a.source = "fetched";
	fake_unlink(q);
	q->cb(q->arg, &a);
	free(q);
	return 0;
}

int
fake_sts_pending(void)
{
	struct sts_query *q;
	int n = 0;

	for (q = pending; q != NULL; q = q->next)
		n++;
	return n;
}

int
fake_sts_refreshes(void)
{
	return the_sts.refreshes;
}

const char *
fake_sts_refreshed(void)
{
	return the_sts.refreshed;
}

void
fake_sts_reset(void)
{
	memset(&the_sts, 0, sizeof(the_sts));
}
