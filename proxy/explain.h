/*
 * `mxtls explain RECIPIENT`: the effective policy for one recipient, and
 * where each part of it came from (docs/behaviour.md section 6).
 */
#ifndef MXTLS_EXPLAIN_H
#define MXTLS_EXPLAIN_H

#include <stdio.h>

#include "config.h"

/*
 * Print to `out` the recipient (and its domain in A-label form when that
 * differs), the match that applied (or "[policy] default"), the profile,
 * then one line per effective setting: tls, verify, min_version,
 * max_version, ciphers, ca_bundle, mx, nexthop, each with its value and
 * its origin ("FILE:LINE", "[tls] at FILE:LINE", "built-in" for a value
 * of a built-in profile, "built-in default" otherwise).  Columns are
 * aligned.  `recipient` is an address or a bare domain.
 *
 * Returns 0, or 1 with a message on stderr (nothing on out) when the
 * recipient is invalid: empty, with control characters, without a local
 * part before "@" or a domain after it, or with a domain that has no
 * A-label form (the proxy refuses such an address with 553 5.1.3).
 */
int explain_print(const struct config *cfg, const struct policy_set *ps,
    const char *recipient, FILE *out);

#endif
