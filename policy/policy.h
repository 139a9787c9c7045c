/*
 * The policy model: profiles, matches and the lookup that binds a
 * recipient to its effective profile.  Pure data and pure functions: no
 * I/O, no logging, no libev, no BoringSSL (STYLE.md, "Layers").
 */
#ifndef MXTLS_POLICY_H
#define MXTLS_POLICY_H

#include <stddef.h>

#define POLICY_NAME_MAX 64
#define POLICY_PATTERN_MAX 320 /* local-part 64 + '@' + domain 253 */
#define POLICY_MX_MAX 16
#define POLICY_PROFILES_MAX 64
#define POLICY_MATCHES_MAX 4096
#define POLICY_ERR_MAX 256

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
	int builtin;
	struct policy_origin origin;
};

struct policy_match {
	char pattern[POLICY_PATTERN_MAX]; /* lower-cased: "*", "dom", "u@dom" */
	int profile;			  /* index into policy_set.profiles */
	char *nexthop;			  /* "HOST[:PORT]" or NULL; owned */
	char *mx[POLICY_MX_MAX];	  /* overrides the profile's mx; owned */
	int nmx;
	struct policy_origin origin;
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

/* The effective policy for one recipient. Pointers into the set. */
struct policy_decision {
	const struct policy_profile *profile;
	const struct policy_match *match; /* NULL when the default applied */
	const char *nexthop;		  /* NULL: MX lookup */
	const char *const *mx;		  /* permitted names (match wins) */
	int nmx;
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

/* Parse "1.0".."1.3" into POLICY_TLS1_x; -1 when invalid. */
int policy_parse_version(const char *s);
const char *policy_version_name(int version);
const char *policy_tls_name(enum policy_tls tls);
const char *policy_verify_name(enum policy_verify verify);

/*
 * Most specific match wins: address > exact domain > longest parent
 * domain > "*" > the default.  Domains compare case-insensitively.
 * `recipient` is the bare address (no angle brackets).
 */
void policy_lookup(const struct policy_set *set, const char *recipient,
    struct policy_decision *out);

/*
 * RFC 8461 section 4.1 style pattern check: "*.example.com" matches
 * exactly one extra leftmost label; otherwise an exact, case-insensitive
 * comparison.  A trailing dot on either side is ignored.
 */
int policy_mx_pattern_match(const char *pattern, const char *host);

#endif
