/*
 * Where MTA-STS applies, and what enforce makes of a decision (see
 * stsrule.h).
 */
#include <string.h>

#include "stsrule.h"

int
policy_sts_applies(const struct policy_decision *d, int mta_sts)
{
	return mta_sts && d->nexthop == NULL &&
	    (d->match == NULL || strcmp(d->match->pattern, "*") == 0);
}

int
policy_sts_enforce(const struct policy_set *ps, enum mtasts_mode mode,
    const char *const *mx, int nmx, struct policy_decision *d)
{
	int i = policy_profile_find(ps, POLICY_MTA_STS_PROFILE);

	if (mode != MTASTS_ENFORCE || i < 0)
		return 0;
	d->profile = &ps->profiles[i];
	d->mx = nmx > 0 ? mx : NULL;
	d->nmx = nmx > 0 ? nmx : 0;
	return 1;
}
