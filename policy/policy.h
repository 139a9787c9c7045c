/*
 * The policy model: profiles, matches and the lookup that binds a
 * recipient to its effective profile.  Pure data and pure functions: no
 * I/O, no logging, no libev, no BoringSSL (README.md, "Layout").
 */
#ifndef MXTLS_POLICY_H
#define MXTLS_POLICY_H

#include "dane.h"

#include <stddef.h>

#define POLICY_NAME_MAX 64
#define POLICY_PATTERN_MAX 320 /* local-part 64 + '@' + domain 253 */
#define POLICY_MX_MAX 16
#define POLICY_PROFILES_MAX 64
#define POLICY_MATCHES_MAX 4096
#define POLICY_ERR_MAX 256
#define POLICY_MTA_STS_PROFILE "mta-sts" /* built in, not configurable */
#define POLICY_DOMAIN_MAX 253 /* a domain name, A-label form, no trailing dot */

/* TLS protocol versions as on the wire, so policy/ needs no TLS headers. */
#define POLICY_TLS1_0 0x0301
#define POLICY_TLS1_1 0x0302
#define POLICY_TLS1_2 0x0303
#define POLICY_TLS1_3 0x0304

enum policy_tls {
	POLICY_TLS_OFF,		  /* never STARTTLS */
	POLICY_TLS_OPPORTUNISTIC, /* TLS if offered; the clear as last resort */
	POLICY_TLS_MANDATORY,	  /* never in the clear */
};

enum policy_verify {
	POLICY_VERIFY_STRICT, /* chain, dates and name must check out */
	POLICY_VERIFY_NONE,   /* encrypt, accept any certificate, log why */
};

/* Where a value came from, for logs and `mxtls explain`. */
struct policy_origin {
	const char *file; /* not owned; NULL for built-in */
	int line;	  /* 0 for built-in */
};

/* The keys of a [profile NAME] section: indexes of policy_profile.origins. */
enum policy_profile_key {
	POLICY_P_TLS,
	POLICY_P_VERIFY,
	POLICY_P_MIN_VERSION,
	POLICY_P_MAX_VERSION,
	POLICY_P_CIPHERS,
	POLICY_P_CA_BUNDLE,
	POLICY_P_MX,
	POLICY_P_DANE,
	POLICY_P_NKEYS,
};

/* The keys of a [match PATTERN] section: indexes of policy_match.origins. */
enum policy_match_key {
	POLICY_M_PROFILE,
	POLICY_M_NEXTHOP,
	POLICY_M_MX,
	POLICY_M_NKEYS,
};

struct policy_profile {
	char name[POLICY_NAME_MAX];
	enum policy_tls tls;
	enum policy_verify verify;
	int min_version; /* POLICY_TLS1_x; 0 = the [tls] default */
	int max_version; /* POLICY_TLS1_x; 0 = the [tls] default */
	char *ciphers;	 /* NULL = the [tls] default; owned */
	char *ca_bundle; /* NULL = the [tls] default; owned */
	char *mx[POLICY_MX_MAX]; /* permitted MX name patterns; owned */
	int nmx;
	enum dane_mode dane; /* on (the zero value), off or only */
	int builtin;
	/*
	 * Where the profile was declared (config.c: the "[profile NAME]"
	 * line; policy_set_key() alone: the first key applied); line 0 for a
	 * built-in profile that no section changes.
	 */
	struct policy_origin origin;
	/* Where each key was set; line 0: not set in this profile. */
	struct policy_origin origins[POLICY_P_NKEYS];
};

struct policy_match {
	char pattern[POLICY_PATTERN_MAX]; /* lower-cased: "*", "dom", "u@dom" */
	int profile;			  /* index into policy_set.profiles */
	char *nexthop;			  /* "HOST[:PORT]" or NULL; owned */
	char *mx[POLICY_MX_MAX];	  /* overrides the profile's mx; owned */
	int nmx;
	struct policy_origin origin; /* config.c: the "[match ...]" line */
	struct policy_origin origins[POLICY_M_NKEYS]; /* line 0: not set */
};

struct policy_set {
	struct policy_profile profiles[POLICY_PROFILES_MAX];
	int nprofiles;
	struct policy_match *matches; /* owned, grown as needed */
	int nmatches;
	int matches_cap;
	int default_profile; /* index; the [policy] default */
	struct policy_origin default_origin;
};

enum policy_status {
	POLICY_OK,
	/*
	 * The recipient's domain has no A-label form: not ASCII and refused
	 * by IDNA2008 / UTS #46 processing, or longer than 253 bytes.  No
	 * DNS name can be looked up for it: the caller refuses the address
	 * with 553 5.1.3.
	 */
	POLICY_BAD_DOMAIN,
};

/* The effective policy for one recipient. Pointers into the set. */
struct policy_decision {
	const struct policy_profile *profile;
	const struct policy_match *match; /* NULL when the default applied */
	const char *nexthop;		  /* NULL: MX lookup */
	const char *const *mx;		  /* permitted names (match wins) */
	int nmx;
	enum policy_status status;
	const char *why; /* status != POLICY_OK: the reason; static */
	/*
	 * The recipient's domain as matched: A-label form, lower-cased, no
	 * trailing dot ("" when status != POLICY_OK).  The name to look up
	 * in DNS and to show in replies next to the address as given.
	 */
	char domain[POLICY_DOMAIN_MAX + 1];
};

/*
 * Set up an empty set holding the built-in profiles "opportunistic" and
 * "mandatory" (both verify = strict) with "opportunistic" as the default.
 */
void policy_set_init(struct policy_set *set);
void policy_set_free(struct policy_set *set);

/* Index of a profile by name, or -1. */
int policy_profile_find(const struct policy_set *set, const char *name);

/*
 * Apply one INI key of a "[profile NAME]" or "[match PATTERN]" section.
 * Returns 1 when the section is not one of those, 0 when applied, -1 on
 * error with a message in err ("key: why").  A match's profile may be
 * named before the profile section appears; policy_set_finish() checks it.
 */
int policy_set_key(struct policy_set *set, const char *section,
    const char *key, const char *value, struct policy_origin origin,
    char *err, size_t errlen);

/*
 * Resolve names after all keys are in: every match names a profile that
 * exists, the default exists.  Returns 0, or -1 with err and *origin set
 * to the offending line.
 */
int policy_set_finish(struct policy_set *set, struct policy_origin *origin,
    char *err, size_t errlen);

/*
 * A host name of letters, digits and hyphens (RFC 1123): dot-separated
 * labels of 1..63 characters not starting or ending with a hyphen, at
 * most 253 characters, no trailing dot.
 */
int policy_valid_hostname(const char *s, size_t len);

/* Parse "1.0".."1.3" into POLICY_TLS1_x; -1 when invalid. */
int policy_parse_version(const char *s);
const char *policy_version_name(int version);
const char *policy_tls_name(enum policy_tls tls);
const char *policy_verify_name(enum policy_verify verify);

/*
 * Most specific match wins: address > exact domain > longest parent
 * domain > "*" > the default.  `recipient` is the bare address (no angle
 * brackets); without "@" it is looked up as a domain.
 *
 * Domains compare in their A-label form, lower-cased: a non-ASCII domain
 * is converted first (policy_domain_to_ascii()); an ASCII one is only
 * lower-cased (refused only when longer than 253 bytes), not validated.
 * The local part is compared as given, except for ASCII case.  When the
 * domain is refused, out->status is
 * POLICY_BAD_DOMAIN with out->why, and the rest of *out is what a domain
 * that matches no pattern gets ("*", else the default), so that a caller
 * that ignores the status still holds a valid profile.  Returns
 * out->status.
 */
enum policy_status policy_lookup(const struct policy_set *set,
    const char *recipient, struct policy_decision *out);

/*
 * A domain (len bytes, without a trailing dot) in its A-label form,
 * lower-cased, into out (POLICY_DOMAIN_MAX + 1 bytes).  Non-ASCII names
 * are converted by libidn2 with UTS #46 nontransitional processing (as
 * Postfix does with ICU); names that IDNA2008 disallows but UTS #46
 * allows (symbols such as U+2603) are converted with transitional
 * processing, unless they hold one of the four characters the two differ
 * on (U+00DF, U+03C2, U+200C, U+200D).  The result, and an ASCII name,
 * must be a host name (letters, digits, hyphens; labels of 1 to 63
 * characters; at most 253 in all) whose "xn--" labels decode.
 * Returns 0, or -1 with *why (static text).
 */
int policy_domain_to_ascii(const char *name, size_t len,
    char out[POLICY_DOMAIN_MAX + 1], const char **why);

/*
 * RFC 8461 section 4.1 style pattern check: "*.example.com" matches
 * exactly one extra leftmost label; otherwise an exact, case-insensitive
 * comparison.  A trailing dot on either side is ignored.
 */
int policy_mx_pattern_match(const char *pattern, const char *host);

#endif
