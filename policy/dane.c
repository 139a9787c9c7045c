#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dane.h"

/*
 * RFC 7672 3.1: SMTP uses DANE-TA(2) and DANE-EE(3) only (PKIX-TA(0) and
 * PKIX-EE(1) would need a CA store the client and the server share, which
 * SMTP has not: 3.1.3).  A digest of the wrong length can never match, so
 * it is as good as an unknown matching type; Full(0) must carry data.
 */
static int
dane_usable(unsigned usage, unsigned selector, unsigned mtype, size_t len)
{
	if (usage != 2 && usage != 3)
		return 0;
	if (selector != 0 && selector != 1)
		return 0;
	switch (mtype) {
	case 0:
		return len > 0;
	case 1:
		return len == 32;
	case 2:
		return len == 64;
	}
	return 0;
}

int
dane_tlsa_set_add(struct dane_tlsa_set *set, const unsigned char *rdata,
    size_t len)
{
	struct dane_tlsa *t;
	unsigned char *data;
	int i, usable;

	if (len < 3) {
		set->nmalformed++;
		return 0;
	}
	usable = dane_usable(rdata[0], rdata[1], rdata[2], len - 3);
	if (set->n < DANE_TLSA_MAX)
		t = &set->rec[set->n];
	else {
		/*
		 * Full: a usable record takes the place of an unusable one, or
		 * "only unusable records" (encrypt without authenticating)
		 * could come of a large RRset whose usable records came last.
		 */
		t = NULL;
		for (i = 0; usable && i < set->n && t == NULL; i++)
			if (!set->rec[i].usable)
				t = &set->rec[i];
		if (t == NULL) {
			set->ndropped++;
			errno = ENOSPC;
			return -1;
		}
	}
	/* One byte more: malloc(0) may return NULL. */
	if ((data = malloc(len - 3 + 1)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	memcpy(data, rdata + 3, len - 3);
	if (set->n == DANE_TLSA_MAX) {
		free(t->data);
		set->ndropped++;
	} else
		set->n++;
	t->usage = rdata[0];
	t->selector = rdata[1];
	t->mtype = rdata[2];
	t->usable = usable;
	t->len = len - 3;
	t->data = data;
	set->nusable += usable;
	return 0;
}

void
dane_tlsa_set_clear(struct dane_tlsa_set *set)
{
	int i;

	for (i = 0; i < set->n; i++)
		free(set->rec[i].data);
	memset(set, 0, sizeof(*set));
}

void
dane_tlsa_text(const struct dane_tlsa *t, char *dst, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char data[16];
	size_t i, n = t->len < 4 ? t->len : 4;

	for (i = 0; i < n; i++) {
		data[2 * i] = hex[t->data[i] >> 4];
		data[2 * i + 1] = hex[t->data[i] & 15];
	}
	data[2 * n] = '\0';
	/* Plain dots, not an ellipsis: the text goes into SMTP replies. */
	if (len > 0)
		snprintf(dst, len, "%u %u %u %s%s", t->usage, t->selector,
		    t->mtype, t->len > 0 ? data : "(no data)",
		    t->len > 4 ? "..." : "");
}

/*
 * RFC 7672 section 2.2: DANE applies to a host only when everything that
 * led to it was validated: a secure MX RRset (2.2.1: an insecure one could
 * have been forged to name a host without TLSA records), secure address
 * records of the host (2.2.2), then the TLSA RRset (2.2.3).  A lookup that
 * failed or came back bogus where security was expected may hide TLSA
 * records an attacker removed: the host is not used (RFC 7672 2.1.1,
 * 2.2), never downgraded to "no DANE".
 */
enum dane_host
dane_host_decide(enum dnssec_status mx, enum dnssec_status addr,
    enum dane_lookup tlsa, enum dnssec_status tlsa_sec,
    const struct dane_tlsa_set *set, const char **why)
{
	const char *dummy;

	if (why == NULL)
		why = &dummy;
	switch (mx) {
	case DNSSEC_INSECURE:
		*why = "MX RRset insecure";
		return DANE_HOST_NONE;
	case DNSSEC_SECURE:
		break;
	case DNSSEC_BOGUS:
		*why = "MX RRset bogus";
		return DANE_HOST_UNUSABLE;
	default:
		*why = "MX lookup failed";
		return DANE_HOST_UNUSABLE;
	}
	switch (addr) {
	case DNSSEC_INSECURE:
		*why = "address records insecure";
		return DANE_HOST_NONE;
	case DNSSEC_SECURE:
		break;
	case DNSSEC_BOGUS:
		*why = "address records bogus";
		return DANE_HOST_UNUSABLE;
	default:
		*why = "address lookup failed";
		return DANE_HOST_UNUSABLE;
	}
	/*
	 * The host's own name is signed: a TLSA lookup that failed says
	 * nothing, not even that the zone is insecure (a proved insecure
	 * denial is a NODATA or NXDOMAIN answer), so it cannot mean "no
	 * DANE": blocking the query must not switch authentication off.
	 */
	if (tlsa == DANE_LOOKUP_FAILED) {
		*why = "TLSA lookup failed";
		return DANE_HOST_UNUSABLE;
	}
	switch (tlsa_sec) {
	case DNSSEC_INSECURE:
		/* E.g. an unsigned _tcp subzone, or a CNAME into one. */
		*why = "TLSA RRset insecure";
		return DANE_HOST_NONE;
	case DNSSEC_SECURE:
		break;
	case DNSSEC_BOGUS:
		*why = "TLSA RRset bogus";
		return DANE_HOST_UNUSABLE;
	default:
		*why = "TLSA lookup failed";
		return DANE_HOST_UNUSABLE;
	}
	switch (tlsa) {
	case DANE_LOOKUP_NODATA:
		*why = "no TLSA records (secure denial)";
		return DANE_HOST_NONE;
	case DANE_LOOKUP_NXDOMAIN:
		*why = "no TLSA name (secure denial)";
		return DANE_HOST_NONE;
	case DANE_LOOKUP_RECORDS:
		break;
	default:
		*why = "invalid TLSA lookup result";
		return DANE_HOST_UNUSABLE;
	}
	if (set != NULL && set->nusable > 0) {
		*why = "usable TLSA records";
		return DANE_HOST_AUTH;
	}
	/*
	 * RFC 7672 2.2 and 3.1.3: records that exist but none of which can be
	 * used still say the server does TLS; malformed ones as much as
	 * those of an unknown usage or matching type.
	 */
	if (set != NULL && (set->n > 0 || set->nmalformed > 0 ||
	    set->ndropped > 0)) {
		*why = "only unusable TLSA records";
		return DANE_HOST_ENCRYPT;
	}
	/* An answer without a single record is a NODATA. */
	*why = "empty TLSA RRset";
	return DANE_HOST_NONE;
}

static const char *const dane_host_names[] = {
	[DANE_HOST_NONE] = "none",
	[DANE_HOST_AUTH] = "auth",
	[DANE_HOST_ENCRYPT] = "encrypt",
	[DANE_HOST_UNUSABLE] = "unusable",
};

const char *
dane_host_name(enum dane_host h)
{
	return (unsigned)h < sizeof(dane_host_names) /
	    sizeof(dane_host_names[0]) ? dane_host_names[h] : "invalid";
}

static const char *const dane_mode_names[] = {
	[DANE_MODE_ON] = "on",
	[DANE_MODE_OFF] = "off",
	[DANE_MODE_ONLY] = "only",
};

int
dane_mode_parse(const char *s, enum dane_mode *out)
{
	unsigned i;

	for (i = 0; i < sizeof(dane_mode_names) / sizeof(dane_mode_names[0]);
	    i++)
		if (strcmp(s, dane_mode_names[i]) == 0) {
			*out = (enum dane_mode)i;
			return 0;
		}
	return -1;
}

const char *
dane_mode_name(enum dane_mode m)
{
	return (unsigned)m < sizeof(dane_mode_names) /
	    sizeof(dane_mode_names[0]) ? dane_mode_names[m] : "invalid";
}
