/*
 * DANE for SMTP (RFC 7672, with RFC 7671 and RFC 6698): the pure half.
 * TLSA records as the DNS layer hands them over, which of them SMTP may
 * use, and what the DNSSEC status of each lookup means for one MX host.
 * No DNS, no TLS here: proxy/dane.c matches certificates against a set.
 */
#ifndef MXTLS_DANE_H
#define MXTLS_DANE_H

#include <stddef.h>

#include "dnssec.h"

#define DANE_TLSA_MAX 16

struct dane_tlsa {
	unsigned char usage, selector, mtype;
	int usable;	     /* RFC 7672 3.1: may be used to authenticate */
	size_t len;	     /* of data */
	unsigned char *data; /* the association data, on the heap */
};

struct dane_tlsa_set {
	int n;		/* records kept in rec[] */
	int nusable;	/* of them usable */
	int nmalformed; /* RDATA too short to be TLSA: not kept */
	int ndropped;	/* well-formed records not kept: the set was full */
	struct dane_tlsa rec[DANE_TLSA_MAX];
};

/*
 * Add one TLSA RDATA (DNS wire form: usage, selector, matching type, then
 * the association data, copied to the heap).  Usable for SMTP (RFC 7672
 * 3.1): usage DANE-TA(2) or DANE-EE(3), selector 0 or 1, matching type 0
 * with data, 1 with 32 bytes, 2 with 64.  Unusable records are kept too
 * (usable = 0): "only unusable records" means TLS without authentication.
 * RDATA under 3 bytes counts in nmalformed and returns 0.
 *
 * A full set still takes a usable record in the place of an unusable
 * one, so that nusable and "only unusable" stay exact whatever the order
 * of the RRset; what does not fit counts in ndropped.
 *
 * Returns 0; or -1 with errno ENOSPC (the set was full, the record
 * dropped: the set is still right for dane_host_decide) or ENOMEM (out of
 * memory: the set lacks a record, treat the lookup as failed).
 */
int dane_tlsa_set_add(struct dane_tlsa_set *set, const unsigned char *rdata,
    size_t len);
/* Free the data and empty the set (a zeroed set is empty too). */
void dane_tlsa_set_clear(struct dane_tlsa_set *set);
/* "3 1 1 ab12cd34..." (the first 4 bytes of the data) for logs and replies. */
void dane_tlsa_text(const struct dane_tlsa *t, char *dst, size_t len);

/* What a TLSA lookup found, as the DNS layer reports it. */
enum dane_lookup {
	DANE_LOOKUP_RECORDS,
	DANE_LOOKUP_NODATA,
	DANE_LOOKUP_NXDOMAIN,
	DANE_LOOKUP_FAILED, /* SERVFAIL, timeout: nothing is known */
};

/* Per MX host (RFC 7672 section 2.2): */
enum dane_host {
	DANE_HOST_NONE,	    /* no DANE for this host: the profile decides as before */
	DANE_HOST_AUTH,	    /* usable TLSA records: TLS mandatory, the certificate must match one */
	DANE_HOST_ENCRYPT,  /* only unusable TLSA records: TLS mandatory, no authentication */
	DANE_HOST_UNUSABLE, /* bogus or failed lookup in a secure zone: do not deliver to this host */
};

/*
 * mx: the status of the MX RRset (or, for an implicit MX, of the domain's
 * address records); addr: of the host's A/AAAA answers; tlsa, tlsa_sec:
 * what the TLSA lookup found and its status (not looked at unless mx and
 * addr are secure; set may then be NULL for anything but RECORDS).
 * *why (may be NULL) gets a short static reason: "TLSA RRset bogus".
 */
enum dane_host dane_host_decide(enum dnssec_status mx, enum dnssec_status addr,
    enum dane_lookup tlsa, enum dnssec_status tlsa_sec,
    const struct dane_tlsa_set *set, const char **why);
/* "none", "auth", "encrypt", "unusable" */
const char *dane_host_name(enum dane_host h);

/* Profile key `dane = on | off | only` */
enum dane_mode { DANE_MODE_ON, DANE_MODE_OFF, DANE_MODE_ONLY };
/* 0, or -1 for anything but the three words. */
int dane_mode_parse(const char *s, enum dane_mode *out);
const char *dane_mode_name(enum dane_mode m);

#endif
