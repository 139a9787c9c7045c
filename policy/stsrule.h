/*
 * Where MTA-STS applies, and what an enforce policy makes of a recipient's
 * policy decision (RFC 8461 section 5; docs/behaviour.md section 6): the
 * one rule the proxy routes by and `mxtls explain` shows.  Pure: the
 * policy itself comes from the MTA-STS cache (proxy/sts.h).
 */
#ifndef MXTLS_STSRULE_H
#define MXTLS_STSRULE_H

#include "mtasts.h"
#include "policy.h"

/*
 * Does the recipient domain's MTA-STS policy count for decision d?  Only
 * where no explicit local or central match names the domain: the default
 * or "*" decided, and no nexthop.  mta_sts: MTA-STS is on ([policy]
 * mta_sts, and the proxy has its cache); 0 makes the answer 0.
 */
int policy_sts_applies(const struct policy_decision *d, int mta_sts);

/*
 * Apply a policy of mode `mode` to d: enforce makes it the built-in
 * profile POLICY_MTA_STS_PROFILE of ps (mandatory + strict), to the nmx MX
 * names mx the policy permits (none when nmx is 0); 1 then.  Other modes,
 * or a set without that profile, leave d as it is: 0.
 */
int policy_sts_enforce(const struct policy_set *ps, enum mtasts_mode mode,
    const char *const *mx, int nmx, struct policy_decision *d);

#endif
