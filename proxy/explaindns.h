/*
 * `mxtls explain`, the part that asks the DNS: per MX host of the
 * recipient domain the DNSSEC standing of its answers and the TLSA
 * records DANE would use (explaindns.c).
 */
#ifndef MXTLS_EXPLAINDNS_H
#define MXTLS_EXPLAINDNS_H

#include <stdio.h>

#include "config.h"
#include "policy.h"

/* Prints to out; 1 with a message on stderr when no lookup could start. */
int explain_dns_print(const struct config *cfg,
    const struct policy_decision *d, FILE *out);

#endif
