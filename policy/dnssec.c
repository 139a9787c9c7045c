#include "dnssec.h"

const char *
dnssec_status_name(enum dnssec_status s)
{
	switch (s) {
	case DNSSEC_SECURE:
		return "secure";
	case DNSSEC_BOGUS:
		return "bogus";
	case DNSSEC_FAILED:
		return "failed";
	case DNSSEC_INSECURE:
		break;
	}
	return "insecure";
}

static int
dnssec_rank(enum dnssec_status s)
{
	switch (s) {
	case DNSSEC_SECURE:
		return 0;
	case DNSSEC_INSECURE:
		return 1;
	case DNSSEC_FAILED:
		return 2;
	case DNSSEC_BOGUS:
		break;
	}
	return 3;
}

enum dnssec_status
dnssec_status_worst(enum dnssec_status a, enum dnssec_status b)
{
	return dnssec_rank(a) >= dnssec_rank(b) ? a : b;
}
