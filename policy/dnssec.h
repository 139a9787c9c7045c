/*
 * The DNSSEC standing of a DNS answer, as the validating resolver found
 * it.  Every answer mxtls acts on carries one: DANE needs secure MX,
 * address and TLSA answers, and a bogus answer is never acted on.
 */
#ifndef MXTLS_DNSSEC_H
#define MXTLS_DNSSEC_H

enum dnssec_status {
	DNSSEC_INSECURE, /* no validation, or a provably unsigned zone */
	DNSSEC_SECURE,	 /* validated, data or its denial */
	DNSSEC_BOGUS,	 /* signed zone, validation failed: forged or broken */
	DNSSEC_FAILED,	 /* no answer to judge (time-out, SERVFAIL) */
};

/* "insecure", "secure", "bogus", "failed" */
const char *dnssec_status_name(enum dnssec_status s);

/* The weaker of two: bogus > failed > insecure > secure. */
enum dnssec_status dnssec_status_worst(enum dnssec_status a,
    enum dnssec_status b);

#endif
