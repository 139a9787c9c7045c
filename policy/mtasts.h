/*
 * MTA-STS (RFC 8461): the "_mta-sts" TXT record (section 3.1), the policy
 * file (section 3.2) and its mx patterns (section 4.1).  Pure parsers: no
 * I/O, no logging; errors are strings for the caller to log.
 */
#ifndef MXTLS_MTASTS_H
#define MXTLS_MTASTS_H

#include <stddef.h>

#define MTASTS_ID_MAX 32		/* 1*32(ALPHA / DIGIT) */
#define MTASTS_POLICY_MAX 65536		/* bytes of a policy file */
#define MTASTS_MAX_AGE_MAX 31557600L	/* about a year, in seconds */
#define MTASTS_MX_MAX 256		/* mx patterns kept, at most */
#define MTASTS_ERR_MAX 256

enum mtasts_mode {
	MTASTS_NONE,	/* as if the domain had no policy */
	MTASTS_TESTING, /* deliver as lower sources say; report failures */
	MTASTS_ENFORCE, /* mandatory + strict, to the permitted MX only */
};

enum mtasts_txt_status {
	MTASTS_TXT_OK,	    /* one valid record; out->id is set */
	MTASTS_TXT_NONE,    /* no record starting "v=STSv1": no policy */
	MTASTS_TXT_INVALID, /* several such records, or a malformed one */
};

struct mtasts_txt {
	char id[MTASTS_ID_MAX + 1];
};

struct mtasts_policy {
	enum mtasts_mode mode;
	long max_age;	    /* seconds, 0 .. MTASTS_MAX_AGE_MAX */
	int max_age_capped; /* the policy asked for more: cut to the maximum */
	/*
	 * Permitted MX patterns: "host.example" or "*.example", lower-cased,
	 * A-label form, no trailing dot, without duplicates.  At least one
	 * unless mode is none.  Owned; mtasts_policy_free().
	 */
	char **mx;
	int nmx;
};

/*
 * The TXT records at "_mta-sts.DOMAIN": n records, record i being lens[i]
 * bytes at recs[i] (the character-strings of one record already joined
 * without separators, as RFC 8461 section 3.1 asks).  Records that do not
 * start with "v=STSv1" are discarded; exactly one must remain, and it
 * must be valid: "v=STSv1", then ";"-separated fields, among them one
 * "id=" of 1 to 32 letters and digits; other fields are extensions
 * ("name=value") and ignored.  On MTASTS_TXT_NONE and
 * MTASTS_TXT_INVALID, err says why.
 */
enum mtasts_txt_status mtasts_parse_txt(const char *const *recs,
    const size_t *lens, int n, struct mtasts_txt *out, char *err,
    size_t errlen);

/*
 * A policy file of len bytes (not NUL-terminated; at most
 * MTASTS_POLICY_MAX).  Lines end in LF or CRLF; "key: value" each.
 * version (STSv1), mode and max_age are required; of a repeated one the
 * first counts and the rest are ignored (RFC 8461 section 3.2); mx may
 * repeat and is required unless mode is none; unknown keys are ignored.
 * Blank lines and white space around keys and values are tolerated.
 * Returns 0, or -1 with err ("line N: why", or "why" for the whole) and
 * *out left empty.
 */
int mtasts_parse_policy(const char *text, size_t len, struct mtasts_policy *out,
    char *err, size_t errlen);

void mtasts_policy_free(struct mtasts_policy *p);

/*
 * Does host (an MX name, trailing dot allowed) match one of the policy's
 * patterns?  "*.example.com" matches exactly one more leftmost label
 * (policy_mx_pattern_match() of policy/policy.h).
 */
int mtasts_mx_match(const struct mtasts_policy *p, const char *host);

const char *mtasts_mode_name(enum mtasts_mode mode);

#endif
