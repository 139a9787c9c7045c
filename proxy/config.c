/*
 * The configuration file turned into a validated struct config.
 * Never logs, never exits: every error is collected as
 * "FILE:LINE: [section] key: why" (or "FILE:LINE: why" for a line that is
 * not a key, "FILE: why" for the file as a whole), sorted by line.
 *
 * Lines, sections, keys and their continuation lines come from
 * policy/inireader.c, the reader of the central document too: one
 * grammar and one line limit for both.  Indented continuation lines of
 * list keys (allow_clients, servers, mx) are joined with a comma; a
 * continuation of any other key is a "duplicate key".  The keys are the
 * table keydefs: each names its type, its field of struct config and
 * what its errors say; apply_value() applies it.
 *
 * [profile NAME] and [match PATTERN] sections go through
 * policy/sections.c, as in the central document.
 *
 * Origins, for `mxtls explain`: policy/ records the line of every key of
 * a [profile] or [match] section, and policy/sections.c makes the header
 * line the origin of the section; this file records the lines of the
 * [tls] keys (tls_origins) and of [policy] default
 * (policy.default_origin).
 *
 * Relative paths (ca_bundle, state_dir) resolve against the directory of
 * the config file, made absolute so that a later chdir() does not matter.
 * On failure *cfg is left empty: config_free() on it is harmless.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "dkim.h"
#include "dkimsign.h"
#include "inireader.h"
#include "sections.h"

#define DEFAULT_LISTEN "127.0.0.1:10025"
#define DEFAULT_ADMIN_LISTEN "127.0.0.1:9925"
#define DEFAULT_STATE_DIR "/var/lib/mxtls"
#define DEFAULT_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define SECONDS_MAX 86400.0
#define SECONDS_MAX_TEXT "86400" /* for the messages */
#define TIMING_MAX 2592000L /* retry_delay, fallback_ttl: 30 days at most */
#define WHY_MAX 512

enum kind {
	K_PROXY = 1, /* from 1: the ids of sections_other() */
	K_DNS,
	K_TLS,
	K_POLICY,
	K_REPORT,
	K_PROFILE, /* [profile NAME]: policy_set_key() */
	K_MATCH,   /* [match PATTERN]: policy_set_key() */
	K_SKIP,	   /* a section already reported as wrong: keys ignored */
};

static const char *const kind_names[] = {
	[K_PROXY] = "proxy",
	[K_DNS] = "dns",
	[K_TLS] = "tls",
	[K_POLICY] = "policy",
	[K_REPORT] = "report",
};

/*
 * What a key's value is: which typed parser applies it (apply_value()),
 * into the field at keydef.off of struct config.
 */
enum ktype {
	T_POLICY,   /* [profile]/[match]: policy_set_key() */
	T_BOOL,	    /* yes/on or no/off, into an int */
	T_INT,	    /* a whole number from min to max, into an int */
	T_TIME,	    /* whole seconds from min to max, into a time_t */
	T_SECONDS,  /* seconds > 0 with a fraction, into a double */
	T_SECONDS0, /* as T_SECONDS, 0 allowed */
	T_SIZE,	    /* bytes, k, m or g, at least min, into a long */
	T_ENUM,	    /* one of words: its index, into an enum */
	T_VERSION,  /* a TLS version (POLICY_TLS1_x), into an int */
	T_STR,	    /* any text, copied into a char * */
	T_TEXT,	    /* report text: printable, at most 255 bytes */
	T_PATH,	    /* resolved against the config's directory */
	T_FILE,	    /* T_PATH that must be readable */
	T_PROGRAM,  /* T_PATH that must be executable */
	T_BUNDLE,   /* a CA bundle: a readable, non-empty regular file */
	T_ADDR,	    /* ADDR:PORT into sockaddr, length and text fields */
	T_SPECIAL,  /* keydef.fn does it all */
};

#define F_LIST 1  /* continuation lines are joined with "," */
#define F_EMPTY 2 /* an empty value means something */
#define F_OFF 4	  /* T_ADDR: "off" leaves no address */

struct loader;
struct keydef;
typedef int special_fn(struct loader *ld, const struct keydef *kd,
    const char *v, char *why, size_t whylen);

struct keydef {
	enum kind kind;
	const char *name;
	enum ktype type;
	size_t off; /* the field of struct config */
	/*
	 * How an error names what was expected: T_BOOL, T_ADDR
	 * "\"V\": expected WHAT"; numbers "\"V\" is not WHAT" (T_INT and
	 * T_TIME without it: "a whole number from MIN to MAX").
	 */
	const char *what;
	long min, max;
	const char *const *words; /* T_ENUM, in the order of the enum */
	special_fn *fn;		  /* T_SPECIAL */
	size_t lenoff, stroff;	  /* T_ADDR: socklen_t and char * fields */
	int flags;
	int origin; /* [tls]: 1 + the index into tls_origins */
};

static special_fn set_user, set_hostname, set_allow_clients,
    set_allow_private_mx, set_servers, set_url, set_signing_key, set_default,
    set_submitter, set_dkim_name;

#define CF(field) offsetof(struct config, field)
#define SECS "a number of seconds > 0 (at most " SECONDS_MAX_TEXT ")"
#define SECS0 "a number of seconds >= 0 (at most " SECONDS_MAX_TEXT ")"
#define WORDS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/*
 * Every key of every section, the one list: the parser, the docs test
 * (tests/integration/test_docs.sh reads the "{ K_SECTION, "key"," lines)
 * and `mxtls explain` origins go by it.
 */
static const struct keydef keydefs[] = {
	{ K_PROXY, "listen",
	    .type = T_ADDR, .off = CF(listen),
	    .what = "IPV4:PORT or [IPV6]:PORT", .lenoff = CF(listen_len),
	    .stroff = CF(listen_str) },
	{ K_PROXY, "hostname", .type = T_SPECIAL, .fn = set_hostname },
	{ K_PROXY, "allow_clients",
	    .type = T_SPECIAL, .fn = set_allow_clients, .flags = F_LIST },
	{ K_PROXY, "max_sessions",
	    .type = T_INT, .off = CF(max_sessions),
	    .min = 1, .max = 1000000 },
	{ K_PROXY, "state_dir", .type = T_PATH, .off = CF(state_dir) },
	{ K_PROXY, "log_format",
	    .type = T_ENUM, .off = CF(log_format),
	    .words = WORDS("logfmt", "json") },
	{ K_PROXY, "log_level",
	    .type = T_ENUM, .off = CF(log_level),
	    .words = WORDS("debug", "info", "warn", "error") },
	{ K_PROXY, "max_bad_commands",
	    .type = T_INT, .off = CF(max_bad_commands),
	    .min = 1, .max = 1000 },
	{ K_PROXY, "max_message_size",
	    .type = T_SIZE, .off = CF(max_message_size),
	    .what = "a size in bytes (a number > 0, optionally with k, m or g)",
	    .min = 1 },
	{ K_PROXY, "bare_line_endings",
	    .type = T_ENUM, .off = CF(bare_line_endings),
	    .words = WORDS("reject", "normalise") },
	{ K_PROXY, "connect_timeout", .type = T_SECONDS,
	    .off = CF(timeouts.connect), .what = SECS },
	{ K_PROXY, "greeting_timeout", .type = T_SECONDS,
	    .off = CF(timeouts.greeting), .what = SECS },
	{ K_PROXY, "command_timeout", .type = T_SECONDS,
	    .off = CF(timeouts.command), .what = SECS },
	{ K_PROXY, "tls_timeout", .type = T_SECONDS,
	    .off = CF(timeouts.tls), .what = SECS },
	{ K_PROXY, "data_init_timeout", .type = T_SECONDS,
	    .off = CF(timeouts.data_init), .what = SECS },
	{ K_PROXY, "data_block_timeout", .type = T_SECONDS,
	    .off = CF(timeouts.data_block), .what = SECS },
	{ K_PROXY, "data_done_timeout", .type = T_SECONDS,
	    .off = CF(timeouts.data_done), .what = SECS },
	{ K_PROXY, "client_timeout", .type = T_SECONDS,
	    .off = CF(timeouts.client), .what = SECS },
	{ K_PROXY, "rcpt_timeout", .type = T_SECONDS,
	    .off = CF(timeouts.rcpt), .what = SECS },
	{ K_PROXY, "admin_listen",
	    .type = T_ADDR, .off = CF(admin_listen),
	    .what = "IPV4:PORT, [IPV6]:PORT or off",
	    .lenoff = CF(admin_listen_len), .stroff = CF(admin_listen_str),
	    .flags = F_OFF },
	{ K_PROXY, "drain_timeout",
	    .type = T_SECONDS0, .off = CF(drain_timeout), .what = SECS0 },
	{ K_PROXY, "user", .type = T_SPECIAL, .fn = set_user },
	{ K_PROXY, "max_sessions_per_client",
	    .type = T_INT, .off = CF(max_sessions_per_client),
	    .what = "a whole number from 0 (no limit) to 1000000", .min = 0,
	    .max = 1000000 },
	{ K_PROXY, "log_addresses",
	    .type = T_ENUM, .off = CF(log_addresses),
	    .words = WORDS("full", "domain", "hash") },
	{ K_PROXY, "mode",
	    .type = T_ENUM, .off = CF(mode),
	    .words = WORDS("relay", "transparent") },
	/* 0 would mean "no mark", so it cannot be configured. */
	{ K_PROXY, "upstream_mark",
	    .type = T_INT, .off = CF(upstream_mark),
	    .min = 1, .max = 0x7fffffff },
	{ K_PROXY, "connection_cache_time",
	    .type = T_SECONDS0, .off = CF(cache_time), .what = SECS0 },
	{ K_PROXY, "connection_cache_max",
	    .type = T_INT, .off = CF(cache_max),
	    .what = "a whole number from 0 (no cache) to 100000", .min = 0,
	    .max = 100000 },
	{ K_PROXY, "connection_reuse_time",
	    .type = T_SECONDS0, .off = CF(reuse_time), .what = SECS0 },
	{ K_PROXY, "dsn_submit",
	    .type = T_ADDR, .off = CF(dsn_submit),
	    .what = "IPV4:PORT, [IPV6]:PORT (the MTA's SMTP listener) or off",
	    .lenoff = CF(dsn_submit_len), .stroff = CF(dsn_submit_str),
	    .flags = F_OFF },
	/* "servers =" (empty): the system's resolver. */
	{ K_DNS, "servers",
	    .type = T_SPECIAL, .fn = set_servers, .flags = F_LIST | F_EMPTY },
	{ K_DNS, "timeout",
	    .type = T_SECONDS, .off = CF(dns_timeout), .what = SECS },
	{ K_DNS, "allow_private_mx",
	    .type = T_SPECIAL, .fn = set_allow_private_mx, .flags = F_LIST },
	{ K_DNS, "dnssec",
	    .type = T_ENUM, .off = CF(dnssec),
	    .words = WORDS("validate", "trust-ad", "off") },
	{ K_DNS, "trust_anchor", .type = T_FILE, .off = CF(trust_anchor) },
	{ K_TLS, "ca_bundle",
	    .type = T_BUNDLE, .off = CF(ca_bundle),
	    .origin = 1 + POLICY_P_CA_BUNDLE },
	{ K_TLS, "min_version",
	    .type = T_VERSION, .off = CF(min_version),
	    .origin = 1 + POLICY_P_MIN_VERSION },
	{ K_TLS, "max_version",
	    .type = T_VERSION, .off = CF(max_version),
	    .origin = 1 + POLICY_P_MAX_VERSION },
	{ K_TLS, "ciphers",
	    .type = T_STR, .off = CF(ciphers), .origin = 1 + POLICY_P_CIPHERS },
	{ K_POLICY, "default", .type = T_SPECIAL, .fn = set_default },
	{ K_POLICY, "retry_delay",
	    .type = T_TIME, .off = CF(timing.retry_delay),
	    .min = 1, .max = TIMING_MAX },
	{ K_POLICY, "fallback_ttl",
	    .type = T_TIME, .off = CF(timing.fallback_ttl),
	    .min = 1, .max = TIMING_MAX },
	{ K_POLICY, "url", .type = T_SPECIAL, .fn = set_url },
	{ K_POLICY, "refresh",
	    .type = T_SECONDS, .off = CF(policy_refresh),
	    .what = "a positive number of seconds" },
	{ K_POLICY, "https_ca_bundle",
	    .type = T_BUNDLE, .off = CF(https_ca_bundle) },
	{ K_POLICY, "signing_key", .type = T_SPECIAL, .fn = set_signing_key },
	{ K_POLICY, "max_stale",
	    .type = T_SECONDS, .off = CF(policy_max_stale),
	    .what = "a positive number of seconds" },
	{ K_POLICY, "mta_sts",
	    .type = T_BOOL, .off = CF(mta_sts), .what = "on or off" },
	{ K_POLICY, "honour_tls_required_no",
	    .type = T_BOOL, .off = CF(honour_tls_required_no),
	    .what = "yes or no" },
	{ K_POLICY, "mta_sts_wait",
	    .type = T_SECONDS, .off = CF(mta_sts_wait),
	    .what = "a positive number of seconds" },
	{ K_POLICY, "mta_sts_ca_bundle",
	    .type = T_BUNDLE, .off = CF(mta_sts_ca_bundle) },
	/* At least a few of the largest policies (64 KiB each) fit. */
	{ K_POLICY, "mta_sts_cache_bytes",
	    .type = T_SIZE, .off = CF(mta_sts_cache_bytes),
	    .what = "a size of at least 1m (a number, optionally with k, m or g)",
	    .min = 1L << 20 },
	{ K_POLICY, "fetch_program",
	    .type = T_PROGRAM, .off = CF(fetch_program) },
	{ K_REPORT, "enabled",
	    .type = T_BOOL, .off = CF(report_enabled), .what = "yes or no" },
	{ K_REPORT, "organization_name",
	    .type = T_TEXT, .off = CF(report_org) },
	{ K_REPORT, "contact_info", .type = T_TEXT, .off = CF(report_contact) },
	{ K_REPORT, "submitter", .type = T_SPECIAL, .fn = set_submitter },
	{ K_REPORT, "submit",
	    .type = T_ADDR, .off = CF(report_submit),
	    .what = "IPV4:PORT or [IPV6]:PORT (the MTA's SMTP listener)",
	    .lenoff = CF(report_submit_len), .stroff = CF(report_submit_str) },
	/* The key file itself is read by check_report(), once all is in. */
	{ K_REPORT, "dkim_key", .type = T_FILE, .off = CF(dkim_key_path) },
	{ K_REPORT, "dkim_selector",
	    .type = T_SPECIAL, .off = CF(dkim_selector), .fn = set_dkim_name },
	{ K_REPORT, "dkim_domain",
	    .type = T_SPECIAL, .off = CF(dkim_domain), .fn = set_dkim_name },
	{ K_PROFILE, "tls", .type = T_POLICY },
	{ K_PROFILE, "verify", .type = T_POLICY },
	{ K_PROFILE, "min_version", .type = T_POLICY },
	{ K_PROFILE, "max_version", .type = T_POLICY },
	{ K_PROFILE, "ciphers", .type = T_POLICY },
	{ K_PROFILE, "dane", .type = T_POLICY },
	{ K_PROFILE, "ca_bundle", .type = T_POLICY },
	{ K_PROFILE, "mx", .type = T_POLICY, .flags = F_LIST },
	{ K_MATCH, "profile", .type = T_POLICY },
	{ K_MATCH, "nexthop", .type = T_POLICY },
	{ K_MATCH, "mx", .type = T_POLICY, .flags = F_LIST },
};

#define NKEYDEFS (sizeof(keydefs) / sizeof(keydefs[0]))

static const struct keydef *
find_key(enum kind kind, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYDEFS; i++)
		if (keydefs[i].kind == kind && strcmp(keydefs[i].name, name) == 0)
			return &keydefs[i];
	return NULL;
}

struct lerr {
	int line;
	char *msg;
};

/* What config.c remembers about a profile or match for its messages. */
struct sectinfo {
	char *sect; /* the section as written; NULL: none in this file */
	int header_line;
	int line_a; /* profile: min_version; match: profile */
	int line_b; /* profile: max_version; match: nexthop */
};

struct loader {
	struct config *cfg;
	const char *file;
	char *dir; /* absolute directory of the file, for relative paths */

	enum kind kind; /* the current section */
	char *sect;
	int sect_line;
	int index;	      /* profile or match index, or -1 */
	struct sections secs; /* [profile] and [match], and duplicates */

	struct lerr *errs;
	int nerrs, caperrs;
	int oom;

	struct sectinfo prof[POLICY_PROFILES_MAX];
	struct sectinfo *match;
	int nmatch;
	int lines[NKEYDEFS]; /* where each key was set; 0: not set */
	char *default_name;
};

static void
lerr(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
lerr(struct loader *ld, int line, const char *fmt, ...)
{
	va_list ap;
	char *why = NULL, *msg = NULL;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&why, fmt, ap);
	va_end(ap);
	if (r < 0) {
		ld->oom = 1;
		return;
	}
	if (line > 0)
		r = asprintf(&msg, "%s:%d: %s", ld->file, line, why);
	else
		r = asprintf(&msg, "%s: %s", ld->file, why);
	free(why);
	if (r < 0) {
		ld->oom = 1;
		return;
	}
	if (ld->nerrs == ld->caperrs) {
		int cap = ld->caperrs ? ld->caperrs * 2 : 8;
		struct lerr *v = realloc(ld->errs, (size_t)cap * sizeof(*v));

		if (v == NULL) {
			free(msg);
			ld->oom = 1;
			return;
		}
		ld->errs = v;
		ld->caperrs = cap;
	}
	ld->errs[ld->nerrs].line = line;
	ld->errs[ld->nerrs].msg = msg;
	ld->nerrs++;
}

static char *
xstrdup(struct loader *ld, const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		ld->oom = 1;
	return p;
}

/* ---- value parsers: 0 or -1 with why ---- */

static int
parse_port(const char *s, int *port)
{
	long v;
	char *end;

	if (*s < '0' || *s > '9' || strlen(s) > 5)
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

/*
 * "ADDR:PORT", "[V6ADDR]:PORT", "ADDR" or a bare IPv6 address (with
 * default_port); ADDR may also be a host name.  default_port <= 0 makes
 * the port mandatory.  host receives the address or name without
 * brackets.  Returns 0, or -1 when invalid.
 */
int
config_parse_hostport(const char *s, int default_port, char *host,
    size_t hostlen, int *port)
{
	char buf[256];
	unsigned char addr[16];
	const char *h, *colon, *p = NULL;
	size_t hlen;

	if (s == NULL || *s == '\0')
		return -1;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		if (hlen >= sizeof(buf))
			return -1;
		memcpy(buf, h, hlen);
		buf[hlen] = '\0';
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return -1;
		if (close[1] == ':')
			p = close + 2;
		else if (close[1] != '\0')
			return -1;
	} else if ((colon = strchr(s, ':')) != NULL &&
	    strchr(colon + 1, ':') != NULL) {
		/* More than one colon: only a whole, bare IPv6 address. */
		if ((hlen = strlen(s)) >= sizeof(buf) ||
		    inet_pton(AF_INET6, s, addr) != 1)
			return -1;
		memcpy(buf, s, hlen + 1);
	} else {
		hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (hlen == 0 || hlen >= sizeof(buf))
			return -1;
		memcpy(buf, s, hlen);
		buf[hlen] = '\0';
		if (colon != NULL)
			p = colon + 1;
		if (inet_pton(AF_INET, buf, addr) != 1 &&
		    (!policy_valid_hostname(buf, strlen(buf)) ||
			strspn(buf, "0123456789.") == hlen))
			return -1;
	}
	if (p != NULL) {
		if (parse_port(p, port) < 0)
			return -1;
	} else if (default_port > 0 && default_port <= 65535)
		*port = default_port;
	else
		return -1;
	if (hlen >= hostlen)
		return -1;
	memcpy(host, buf, hlen + 1);
	return 0;
}

/* A literal address with a port into a sockaddr; names are refused. */
static int
parse_sockaddr(const char *s, int default_port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	char host[256];
	int port;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	if (config_parse_hostport(s, default_port, host, sizeof(host),
	    &port) < 0)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
	} else
		return -1;
	return 0;
}

/*
 * One of n words: its index into *out, or -1 with why saying
 * "\"V\": expected A, B or C".
 */
static int
parse_choice(const char *v, const char *const *words, int n, int *out,
    char *why, size_t whylen)
{
	size_t used;
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(v, words[i]) == 0) {
			*out = i;
			return 0;
		}
	used = (size_t)snprintf(why, whylen, "\"%s\": expected", v);
	for (i = 0; i < n && used < whylen; i++)
		used += (size_t)snprintf(why + used, whylen - used, "%s%s",
		    i == 0 ? " " : i == n - 1 ? " or " : ", ", words[i]);
	return -1;
}

static int
parse_long(const char *s, long min, long max, long *out)
{
	long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Bytes, optionally with k, m or g (binary multiples). */
static int
parse_size(const char *s, long *out)
{
	unsigned long long v;
	unsigned long long mult = 1;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1ULL << 10;
		break;
	case 'm':
	case 'M':
		mult = 1ULL << 20;
		break;
	case 'g':
	case 'G':
		mult = 1ULL << 30;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v == 0 || v > (unsigned long long)LONG_MAX / mult)
		return -1;
	*out = (long)(v * mult);
	return 0;
}

/* Seconds: digits with an optional fraction, > 0 and <= SECONDS_MAX. */
static int
parse_seconds(const char *s, double *out)
{
	size_t n = strspn(s, "0123456789");
	double v;

	if (n == 0)
		return -1;
	if (s[n] == '.') {
		size_t f = strspn(s + n + 1, "0123456789");

		if (f == 0 || s[n + 1 + f] != '\0')
			return -1;
	} else if (s[n] != '\0')
		return -1;
	v = strtod(s, NULL);
	if (!(v > 0) || v > SECONDS_MAX)
		return -1;
	*out = v;
	return 0;
}

/* As parse_seconds(), 0 allowed too ("0", "0.0"). */
static int
parse_seconds0(const char *s, double *out)
{
	size_t n = strspn(s, "0");

	if (n > 0 && (s[n] == '\0' || (s[n] == '.' && s[n + 1] != '\0' &&
	    s[n + 1 + strspn(s + n + 1, "0")] == '\0'))) {
		*out = 0;
		return 0;
	}
	return parse_seconds(s, out);
}

/* The next item of a list separated by commas and/or white space. */
static const char *
list_next(const char **sp, size_t *len)
{
	const char *s = *sp, *e;

	while (*s == ',' || isspace((unsigned char)*s))
		s++;
	if (*s == '\0') {
		*sp = s;
		return NULL;
	}
	e = s;
	while (*e != '\0' && *e != ',' && !isspace((unsigned char)*e))
		e++;
	*len = (size_t)(e - s);
	*sp = e;
	return s;
}

static int
parse_cidr(const char *s, size_t len, struct config_cidr *c, char *why,
    size_t whylen)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash;
	long prefix;
	int max, i;

	if (len >= sizeof(buf))
		goto bad;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		goto bad;
	if (slash == NULL)
		prefix = max;
	else if (parse_long(slash + 1, 0, max, &prefix) < 0)
		goto bad;
	c->prefix = (int)prefix;
	for (i = c->prefix; i < max; i++) {
		if (c->addr[i / 8] & (0x80 >> (i % 8))) {
			char net[INET6_ADDRSTRLEN];
			unsigned char a[16];
			int j;

			memcpy(a, c->addr, sizeof(a));
			for (j = c->prefix; j < max; j++)
				a[j / 8] &= (unsigned char)~(0x80 >> (j % 8));
			inet_ntop(c->family, a, net, sizeof(net));
			snprintf(why, whylen, "\"%.*s\" has host bits set (did "
			    "you mean %s/%d?)", (int)len, s, net, c->prefix);
			return -1;
		}
	}
	return 0;
bad:
	snprintf(why, whylen, "invalid network \"%.*s\": expected ADDRESS or "
	    "ADDRESS/PREFIX", (int)len, s);
	return -1;
}

static char *
resolve_path(struct loader *ld, const char *p)
{
	char *r;

	if (p[0] == '/')
		return xstrdup(ld, p);
	if (asprintf(&r, "%s/%s", ld->dir, p) < 0) {
		ld->oom = 1;
		return NULL;
	}
	return r;
}

/* A CA bundle: a readable, non-empty regular file. */
static int
check_bundle(const char *path, char *why, size_t whylen)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s: not a regular file", path);
		return -1;
	}
	if (st.st_size == 0) {
		snprintf(why, whylen, "%s: empty file", path);
		return -1;
	}
	return 0;
}

/* Resolve and check a ca_bundle value into *dst. */
static int
set_bundle(struct loader *ld, char **dst, const char *value, char *why,
    size_t whylen)
{
	char *path;

	if ((path = resolve_path(ld, value)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if (check_bundle(path, why, whylen) < 0) {
		free(path);
		return -1;
	}
	free(*dst);
	*dst = path;
	return 0;
}

static int
set_str(struct loader *ld, char **dst, const char *value)
{
	char *p = xstrdup(ld, value);

	if (p == NULL)
		return -1;
	free(*dst);
	*dst = p;
	return 0;
}

/* ---- the typed parsers of the key table ---- */

static int
apply_number(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	void *dst = (char *)ld->cfg + kd->off;
	long n = 0;
	double d = 0;
	int r;

	switch (kd->type) {
	case T_INT:
	case T_TIME:
		r = parse_long(v, kd->min, kd->max, &n);
		break;
	case T_SIZE:
		r = parse_size(v, &n) < 0 || n < kd->min ? -1 : 0;
		break;
	case T_SECONDS:
		r = parse_seconds(v, &d);
		break;
	default: /* T_SECONDS0 */
		r = parse_seconds0(v, &d);
		break;
	}
	if (r < 0 && kd->what == NULL) /* T_INT, T_TIME: the range says it */
		snprintf(why, whylen, "\"%s\" is not a whole number%s from %ld "
		    "to %ld", v, kd->type == T_TIME ? " of seconds" : "",
		    kd->min, kd->max);
	else if (r < 0)
		snprintf(why, whylen, "\"%s\" is not %s", v, kd->what);
	if (r < 0)
		return -1;
	if (kd->type == T_INT)
		*(int *)dst = (int)n;
	else if (kd->type == T_TIME)
		*(time_t *)dst = (time_t)n;
	else if (kd->type == T_SIZE)
		*(long *)dst = n;
	else
		*(double *)dst = d;
	return 0;
}

/* Text that goes into reports: one line of printable characters. */
static int
check_text(const char *v, char *why, size_t whylen)
{
	size_t i;

	for (i = 0; v[i] != '\0'; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
			snprintf(why, whylen, "a control character");
			return -1;
		}
	if (i > 255) {
		snprintf(why, whylen, "longer than 255 bytes");
		return -1;
	}
	return 0;
}

static int
apply_path(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	char **dst = (char **)((char *)ld->cfg + kd->off);
	char *path;

	if (kd->type == T_BUNDLE)
		return set_bundle(ld, dst, v, why, whylen);
	if ((path = resolve_path(ld, v)) == NULL)
		return -1;
	if (kd->type == T_FILE && access(path, R_OK) < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (kd->type == T_PROGRAM && access(path, X_OK) < 0) {
		snprintf(why, whylen, "%s: not an executable file", path);
		free(path);
		return -1;
	}
	free(*dst);
	*dst = path;
	return 0;
}

/* A listening address: the sockaddr, its length and the text given. */
static int
apply_addr(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	char *base = (char *)ld->cfg;
	struct sockaddr_storage *ss = (void *)(base + kd->off);
	socklen_t *len = (void *)(base + kd->lenoff);

	if ((kd->flags & F_OFF) && strcmp(v, "off") == 0) {
		memset(ss, 0, sizeof(*ss));
		*len = 0;
	} else if (parse_sockaddr(v, 0, ss, len) < 0) {
		snprintf(why, whylen, "invalid address \"%s\": expected %s", v,
		    kd->what);
		return -1;
	}
	return set_str(ld, (char **)(void *)(base + kd->stroff), v);
}

/* T_ENUM stores an int: the enums of struct config must be that size. */
_Static_assert(sizeof(enum config_log_format) == sizeof(int) &&
    sizeof(enum config_log_level) == sizeof(int) &&
    sizeof(enum config_bare) == sizeof(int) &&
    sizeof(enum config_log_addresses) == sizeof(int) &&
    sizeof(enum config_mode) == sizeof(int) &&
    sizeof(enum config_dnssec) == sizeof(int), "T_ENUM fields are ints");

/* A value of a fixed section by its type: 0, or -1 with why. */
static int
apply_value(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	void *dst = (char *)ld->cfg + kd->off;
	int i;

	switch (kd->type) {
	case T_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "on") == 0)
			*(int *)dst = 1;
		else if (strcmp(v, "no") == 0 || strcmp(v, "off") == 0)
			*(int *)dst = 0;
		else {
			snprintf(why, whylen, "\"%s\": expected %s", v, kd->what);
			return -1;
		}
		return 0;
	case T_ENUM:
		for (i = 0; kd->words[i] != NULL; i++)
			;
		if (parse_choice(v, kd->words, i, &i, why, whylen) < 0)
			return -1;
		*(int *)dst = i;
		return 0;
	case T_VERSION:
		if ((i = policy_parse_version(v)) < 0) {
			snprintf(why, whylen, "\"%s\": expected 1.0, 1.1, 1.2 or "
			    "1.3", v);
			return -1;
		}
		*(int *)dst = i;
		return 0;
	case T_TEXT:
		if (check_text(v, why, whylen) < 0)
			return -1;
		/* FALLTHROUGH */
	case T_STR:
		return set_str(ld, dst, v);
	case T_PATH:
	case T_FILE:
	case T_PROGRAM:
	case T_BUNDLE:
		return apply_path(ld, kd, v, why, whylen);
	case T_ADDR:
		return apply_addr(ld, kd, v, why, whylen);
	case T_SPECIAL:
		return kd->fn(ld, kd, v, why, whylen);
	case T_POLICY:
		return 0; /* not a fixed section's: flush() sends it on */
	default:
		return apply_number(ld, kd, v, why, whylen);
	}
}

/* ---- the keys that are more than a value of a type ---- */

static int
set_user(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	struct passwd *pw;

	(void)kd;
	errno = 0;
	if ((pw = getpwnam(v)) == NULL) {
		if (errno != 0 && errno != ENOENT && errno != ESRCH &&
		    errno != EBADF && errno != EPERM)
			snprintf(why, whylen, "looking up \"%s\": %s", v,
			    strerror(errno));
		else
			snprintf(why, whylen, "unknown user \"%s\"", v);
		return -1;
	}
	if (pw->pw_uid == 0) {
		/* Dropping to uid 0 would drop nothing. */
		snprintf(why, whylen, "\"%s\" has uid 0: name an "
		    "unprivileged user", v);
		return -1;
	}
	ld->cfg->user_uid = pw->pw_uid;
	ld->cfg->user_gid = pw->pw_gid;
	return set_str(ld, &ld->cfg->user, v);
}

static int
set_hostname(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	(void)kd;
	if (!policy_valid_hostname(v, strlen(v))) {
		snprintf(why, whylen, "invalid host name \"%s\"", v);
		return -1;
	}
	return set_str(ld, &ld->cfg->hostname, v);
}

/*
 * Networks separated by commas or white space into out: their number, or
 * -1 with why (hint appended when an item is no network).
 */
static int
parse_cidr_list(const char *v, struct config_cidr *out, const char *hint,
    char *why, size_t whylen)
{
	const char *s = v, *item;
	size_t len;
	int n = 0;

	while ((item = list_next(&s, &len)) != NULL) {
		if (n == CONFIG_CIDR_MAX) {
			snprintf(why, whylen, "too many networks (max %d)",
			    CONFIG_CIDR_MAX);
			return -1;
		}
		if (parse_cidr(item, len, &out[n], why, whylen) < 0) {
			snprintf(why + strlen(why), whylen - strlen(why), "%s",
			    hint);
			return -1;
		}
		n++;
	}
	return n;
}

static int
set_allow_clients(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	struct config_cidr tmp[CONFIG_CIDR_MAX];
	int n;

	(void)kd;
	if ((n = parse_cidr_list(v, tmp, "", why, whylen)) < 0)
		return -1;
	if (n == 0) {
		snprintf(why, whylen, "empty list");
		return -1;
	}
	memcpy(ld->cfg->allow_clients, tmp, (size_t)n * sizeof(tmp[0]));
	ld->cfg->nallow_clients = n;
	return 0;
}

/* Networks, or "yes" (all of them: 0.0.0.0/0 and ::/0), or "no". */
static int
set_allow_private_mx(struct loader *ld, const struct keydef *kd,
    const char *v, char *why, size_t whylen)
{
	struct config *cfg = ld->cfg;
	struct config_cidr tmp[CONFIG_CIDR_MAX];
	int n;

	(void)kd;
	if (strcmp(v, "no") == 0) {
		cfg->nallow_private_mx = 0;
		return 0;
	}
	if (strcmp(v, "yes") == 0) {
		memset(cfg->allow_private_mx, 0,
		    2 * sizeof(cfg->allow_private_mx[0]));
		cfg->allow_private_mx[0].family = AF_INET;
		cfg->allow_private_mx[1].family = AF_INET6;
		cfg->nallow_private_mx = 2;
		return 0;
	}
	if ((n = parse_cidr_list(v, tmp, " (or \"yes\", \"no\")", why,
	    whylen)) < 0)
		return -1;
	memcpy(cfg->allow_private_mx, tmp, (size_t)n * sizeof(tmp[0]));
	cfg->nallow_private_mx = n;
	return 0;
}

/*
 * One server of [dns] servers, appended to *csv as ADDR:PORT: 0, -1 when
 * invalid, -2 out of memory.
 */
static int
add_server(struct loader *ld, char **csv, const char *item, size_t len)
{
	char tmp[300], host[256], *next;
	unsigned char addr[16];
	int port, v6;

	if (len >= sizeof(tmp))
		return -1;
	memcpy(tmp, item, len);
	tmp[len] = '\0';
	if (config_parse_hostport(tmp, 53, host, sizeof(host), &port) < 0)
		return -1;
	if (inet_pton(AF_INET, host, addr) == 1)
		v6 = 0;
	else if (inet_pton(AF_INET6, host, addr) == 1)
		v6 = 1;
	else
		return -1;
	if (asprintf(&next, "%s%s%s%s%s:%d", *csv ? *csv : "",
	    *csv ? "," : "", v6 ? "[" : "", host, v6 ? "]" : "", port) < 0) {
		ld->oom = 1;
		return -2;
	}
	free(*csv);
	*csv = next;
	return 0;
}

/* "recursive", addresses (into "ADDR:PORT,..."), or empty: the system's. */
static int
set_servers(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	const char *s = v, *item;
	char *csv = NULL;
	size_t len;
	int r;

	(void)kd;
	if (strcmp(v, "recursive") == 0)
		return set_str(ld, &ld->cfg->dns_servers, v);
	while ((item = list_next(&s, &len)) != NULL)
		if ((r = add_server(ld, &csv, item, len)) < 0) {
			free(csv);
			if (r == -1)
				snprintf(why, whylen, "invalid server \"%.*s\": "
				    "expected ADDRESS[:PORT] or [IPV6]:PORT",
				    (int)len, item);
			return -1;
		}
	free(ld->cfg->dns_servers);
	ld->cfg->dns_servers = csv;
	return 0;
}

static int
set_url(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	(void)kd;
	/* Credentials in the URL would end up in logs. */
	if (strncmp(v, "https://", 8) != 0 || strlen(v) > 2048 ||
	    strchr(v + 8, '@') != NULL || v[8] == '\0' || v[8] == '/') {
		snprintf(why, whylen, "\"%s\": expected an https:// URL "
		    "without credentials", v);
		return -1;
	}
	return set_str(ld, &ld->cfg->policy_url, v);
}

static int
set_signing_key(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	(void)kd;
	/* Base64 of a 32-byte Ed25519 public key: 43 chars and "=". */
	if (strlen(v) != 44 || v[43] != '=' ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
	    "wxyz0123456789+/") != 43) {
		snprintf(why, whylen, "expected the base64 of a 32-byte "
		    "Ed25519 public key (mxtls keygen prints one)");
		return -1;
	}
	return set_str(ld, &ld->cfg->signing_key, v);
}

/* A profile name, looked up once all profiles are in (check_all()). */
static int
set_default(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	(void)kd;
	(void)why;
	(void)whylen;
	return set_str(ld, &ld->default_name, v);
}

static int
set_submitter(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	(void)kd;
	if (check_text(v, why, whylen) < 0)
		return -1;
	if (strchr(v, ' ') != NULL || strchr(v, '@') != NULL) {
		snprintf(why, whylen, "\"%s\": expected a domain name", v);
		return -1;
	}
	return set_str(ld, &ld->cfg->report_submitter, v);
}

/* dkim_selector, dkim_domain: a name that goes into DNS and d=/s=. */
static int
set_dkim_name(struct loader *ld, const struct keydef *kd, const char *v,
    char *why, size_t whylen)
{
	if (!dkim_name_valid(v)) {
		snprintf(why, whylen, "\"%s\": expected a domain name (labels "
		    "of letters, digits, \"-\" and \"_\")", v);
		return -1;
	}
	return set_str(ld, (char **)((char *)ld->cfg + kd->off), v);
}

/* ---- [profile NAME] and [match PATTERN] ---- */

static struct sectinfo *
match_info(struct loader *ld, int i)
{
	if (i >= ld->nmatch) {
		int n = ld->cfg->policy.matches_cap > i ?
		    ld->cfg->policy.matches_cap : i + 1;
		struct sectinfo *v = realloc(ld->match, (size_t)n * sizeof(*v));

		if (v == NULL) {
			ld->oom = 1;
			return NULL;
		}
		memset(v + ld->nmatch, 0, (size_t)(n - ld->nmatch) * sizeof(*v));
		ld->match = v;
		ld->nmatch = n;
	}
	return &ld->match[i];
}

/* After a key of a [profile] or [match] section went to policy_set_key. */
static void
policy_key_done(struct loader *ld, const char *key, int line, int applied)
{
	struct policy_set *set = &ld->cfg->policy;
	struct sectinfo *si;
	char why[WHY_MAX];
	int i;

	if (ld->index < 0) {
		if (ld->kind == K_PROFILE)
			ld->index = policy_profile_find(set, ld->secs.norm);
		else
			for (i = set->nmatches - 1; i >= 0; i--)
				if (strcmp(set->matches[i].pattern,
				    ld->secs.norm) == 0) {
					ld->index = i;
					break;
				}
		if (ld->index < 0)
			return; /* not created: too many, already reported */
	}
	if (ld->kind == K_PROFILE)
		si = &ld->prof[ld->index];
	else if ((si = match_info(ld, ld->index)) == NULL)
		return;
	if (si->sect == NULL) {
		si->sect = xstrdup(ld, ld->sect);
		si->header_line = ld->sect_line;
	}
	if (ld->kind == K_PROFILE) {
		struct policy_profile *p = &set->profiles[ld->index];

		if (strcmp(key, "min_version") == 0)
			si->line_a = line;
		else if (strcmp(key, "max_version") == 0)
			si->line_b = line;
		else if (strcmp(key, "ca_bundle") == 0 && applied &&
		    p->ca_bundle != NULL) {
			/* Stored verbatim by policy/: resolve and check. */
			char *raw = p->ca_bundle;

			p->ca_bundle = NULL;
			if (set_bundle(ld, &p->ca_bundle, raw, why,
			    sizeof(why)) < 0)
				lerr(ld, line, "[%s] ca_bundle: %s", ld->sect, why);
			free(raw);
		}
	} else {
		if (strcmp(key, "profile") == 0)
			si->line_a = line;
		else if (strcmp(key, "nexthop") == 0)
			si->line_b = line;
	}
}

/* The line where a key was set (applied without error), or 0. */
static int
key_line(const struct loader *ld, enum kind kind, const char *name)
{
	const struct keydef *kd = find_key(kind, name);

	return kd != NULL ? ld->lines[kd - keydefs] : 0;
}

/*
 * A key of a fixed section.  Only "servers =" may be empty (the system
 * resolver).  Where it was set is kept for later checks and, for [tls],
 * for `mxtls explain`.
 */
static void
apply_fixed(struct loader *ld, const struct keydef *kd, const char *value,
    int line)
{
	char why[WHY_MAX];

	why[0] = '\0';
	if (*value == '\0' && !(kd->flags & F_EMPTY))
		snprintf(why, sizeof(why), "empty value");
	else if (apply_value(ld, kd, value, why, sizeof(why)) == 0) {
		ld->lines[kd - keydefs] = line;
		if (kd->origin > 0) {
			ld->cfg->tls_origins[kd->origin - 1].file = ld->cfg->file;
			ld->cfg->tls_origins[kd->origin - 1].line = line;
		}
		return;
	}
	if (why[0] != '\0') /* else: out of memory, reported at the end */
		lerr(ld, line, "[%s] %s: %s", ld->sect, kd->name, why);
}

/*
 * A key with its continuation lines joined.  After a refused continuation
 * (bad, reported) the first line's value still applies, as with inih.
 */
static void
cfg_key(void *user, const char *key, const char *value, int line, int bad)
{
	struct loader *ld = user;
	char why[WHY_MAX];
	int r;

	(void)bad;
	if (ld->kind == K_PROFILE || ld->kind == K_MATCH) {
		r = sections_key(&ld->secs, ld->sect, key, value, line, why,
		    sizeof(why));
		if (r < 0)
			lerr(ld, line, "%s", why);
		policy_key_done(ld, key, line, r == 0);
	} else
		apply_fixed(ld, find_key(ld->kind, key), value, line);
}

static void
cfg_section_end(void *user, int nkeys)
{
	struct loader *ld = user;
	char why[WHY_MAX];

	if (sections_end(&ld->secs, ld->sect, nkeys, why, sizeof(why)) == -2)
		lerr(ld, ld->sect_line, "%s", why);
	ld->kind = K_SKIP;
}

static int
cfg_key_kind(void *user, const char *key)
{
	const struct keydef *kd = find_key(((struct loader *)user)->kind, key);

	return kd == NULL ? -1 : (kd->flags & F_LIST) != 0;
}

static void
cfg_error(void *user, int line, const char *msg)
{
	lerr(user, line, "%s", msg);
}

/* "[name]" at line: 0 to read its keys, -1 when refused (reported). */
static int
cfg_section(void *user, const char *name, int line)
{
	struct loader *ld = user;
	char why[WHY_MAX];
	int i;

	free(ld->sect);
	ld->sect = xstrdup(ld, name);
	ld->sect_line = line;
	ld->index = -1;
	ld->kind = K_SKIP;
	if (ld->sect == NULL)
		return -1;
	i = sections_begin(&ld->secs, name, line, why, sizeof(why));
	if (i == SECTIONS_PROFILE || i == SECTIONS_MATCH) {
		ld->kind = i == SECTIONS_PROFILE ? K_PROFILE : K_MATCH;
		return 0;
	}
	if (i == SECTIONS_OTHER) {
		for (i = K_PROXY; i <= K_REPORT; i++)
			if (strcmp(name, kind_names[i]) == 0)
				break;
		if (i > K_REPORT)
			snprintf(why, sizeof(why), "[%s]: unknown section", name);
		else if (sections_other(&ld->secs, i, name, line, why,
		    sizeof(why)) == 0) {
			ld->kind = (enum kind)i;
			return 0;
		}
	}
	lerr(ld, line, "%s", why);
	return -1;
}

static const struct ini_ops cfg_ops = { cfg_section, cfg_section_end,
	cfg_key_kind, cfg_key, cfg_error };

/* ---- after the whole file ---- */

static void
check_versions(struct loader *ld, const char *sect, int min, int max,
    int minline, int maxline, int inherited)
{
	if (min <= max)
		return;
	if (minline > 0)
		lerr(ld, minline, "[%s] min_version: %s is above max_version "
		    "%s%s", sect, policy_version_name(min),
		    policy_version_name(max), maxline > 0 ? "" :
		    inherited ? " (from [tls])" : " (the default)");
	else
		lerr(ld, maxline, "[%s] max_version: %s is below min_version "
		    "%s%s", sect, policy_version_name(max),
		    policy_version_name(min), inherited ? " (from [tls])" :
		    " (the default)");
}

static int
declared(const struct loader *ld, int i)
{
	return ld->cfg->policy.profiles[i].builtin || ld->prof[i].sect != NULL;
}

/*
 * Would binding both fail: the same family and port, and the same
 * address or a wildcard on either side?  (admin_len 0: no admin socket.)
 */
static int
same_socket(const struct sockaddr_storage *a, const struct sockaddr_storage *b,
    socklen_t blen)
{
	if (blen == 0 || a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;

		return x->sin_port == y->sin_port &&
		    (x->sin_addr.s_addr == y->sin_addr.s_addr ||
			x->sin_addr.s_addr == htonl(INADDR_ANY) ||
			y->sin_addr.s_addr == htonl(INADDR_ANY));
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;

		return x->sin6_port == y->sin6_port &&
		    (IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr) ||
			IN6_IS_ADDR_UNSPECIFIED(&x->sin6_addr) ||
			IN6_IS_ADDR_UNSPECIFIED(&y->sin6_addr));
	}
	return 0;
}

/*
 * trust-ad believes the AD bit of the servers: only a resolver on this
 * host (loopback) can vouch for its answers; anyone on the path can set
 * the bit on a forged answer from farther away.
 */
static void
check_dnssec(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	const char *s = cfg->dns_servers;

	if (cfg->dnssec != CONFIG_DNSSEC_TRUST_AD)
		return;
	if (s == NULL || s[0] == '\0' || strcmp(s, "recursive") == 0) {
		lerr(ld, key_line(ld, K_DNS, "dnssec"), "[dns] dnssec: trust-ad needs "
		    "[dns] servers naming a validating resolver on loopback");
		return;
	}
	while (*s != '\0') {
		size_t len = strcspn(s, ",");
		char item[300];

		snprintf(item, sizeof(item), "%.*s", (int)len, s);
		if (strncmp(item, "127.", 4) != 0 &&
		    strncmp(item, "[::1]", 5) != 0 && strcmp(item, "::1") != 0) {
			lerr(ld, key_line(ld, K_DNS, "dnssec"), "[dns] dnssec: trust-ad "
			    "trusts the AD bit only from loopback servers, not "
			    "%s", item);
			return;
		}
		s += len;
		if (*s == ',')
			s++;
	}
}

/*
 * [report] dkim_*: a key needs a selector and the reverse (the domain
 * defaults to the submitter); the key file is read here, so that a bad
 * one is an error of its line at start, at SIGHUP and for mxtls -t.
 */
static void
check_dkim(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	char why[WHY_MAX];

	if (cfg->dkim_key_path == NULL) {
		if (cfg->dkim_selector != NULL)
			lerr(ld, key_line(ld, K_REPORT, "dkim_selector"),
			    "[report] dkim_selector: needs dkim_key (the "
			    "private key that signs mailed reports)");
		if (cfg->dkim_domain != NULL)
			lerr(ld, key_line(ld, K_REPORT, "dkim_domain"),
			    "[report] dkim_domain: needs dkim_key and "
			    "dkim_selector");
		return;
	}
	if (cfg->dkim_selector == NULL) {
		lerr(ld, key_line(ld, K_REPORT, "dkim_key"), "[report] "
		    "dkim_key: needs dkim_selector (the selector of the "
		    "key's DNS record, SELECTOR._domainkey.DOMAIN)");
		return;
	}
	if (cfg->dkim_domain == NULL && cfg->report_submitter != NULL) {
		if (!dkim_name_valid(cfg->report_submitter)) {
			lerr(ld, key_line(ld, K_REPORT, "dkim_key"), "[report] "
			    "dkim_key: the submitter \"%s\" is no domain name "
			    "for d=: set dkim_domain", cfg->report_submitter);
			return;
		}
		cfg->dkim_domain = xstrdup(ld, cfg->report_submitter);
	}
	if ((cfg->dkim_key = dkim_key_load(cfg->dkim_key_path, why,
	    sizeof(why))) == NULL)
		lerr(ld, key_line(ld, K_REPORT, "dkim_key"), "[report] "
		    "dkim_key: %s", why);
}

/*
 * [report]: a report names who sends it, so counting starts only with
 * an organization_name; submitter and contact_info have defaults.
 */
static void
check_report(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	char *c;

	if (cfg->report_enabled && cfg->report_org == NULL)
		lerr(ld, key_line(ld, K_REPORT, "enabled"), "[report] enabled: reports "
		    "need organization_name (the organization-name they "
		    "carry): set it, or enabled = no");
	if (cfg->report_submit_len > 0 && same_socket(&cfg->listen,
	    &cfg->report_submit, cfg->report_submit_len))
		lerr(ld, key_line(ld, K_REPORT, "submit"), "[report] submit: %s is the "
		    "listen address of mxtls itself: name the MTA's SMTP "
		    "listener", cfg->report_submit_str);
	if (cfg->report_submitter == NULL && cfg->hostname != NULL)
		cfg->report_submitter = xstrdup(ld, cfg->hostname);
	if (cfg->report_contact == NULL && cfg->report_submitter != NULL &&
	    asprintf(&c, "postmaster@%s", cfg->report_submitter) != -1)
		cfg->report_contact = c;
	check_dkim(ld);
}

/* The admin and DSN sockets must not take the port of listen. */
static void
check_listeners(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	int admin_line = key_line(ld, K_PROXY, "admin_listen");

	if (same_socket(&cfg->listen, &cfg->admin_listen, cfg->admin_listen_len))
		lerr(ld, admin_line ? admin_line : key_line(ld, K_PROXY,
		    "listen"), "[proxy] admin_listen: %s%s takes the port of "
		    "listen %s", cfg->admin_listen_str, admin_line ? "" :
		    " (the default)", cfg->listen_str);
	/* Notices sent to mxtls itself would go out again, not to the MTA. */
	if (same_socket(&cfg->listen, &cfg->dsn_submit, cfg->dsn_submit_len))
		lerr(ld, key_line(ld, K_PROXY, "dsn_submit"), "[proxy] "
		    "dsn_submit: %s is the listen address of mxtls itself: "
		    "name the MTA's SMTP listener", cfg->dsn_submit_str);
}

/* Profiles with versions: checked with what they inherit from [tls]. */
static void
check_profiles(struct loader *ld)
{
	const struct policy_set *set = &ld->cfg->policy;
	int i;

	for (i = 0; i < set->nprofiles; i++) {
		const struct policy_profile *p = &set->profiles[i];
		const struct sectinfo *si = &ld->prof[i];

		if (si->sect == NULL || (p->min_version == 0 &&
		    p->max_version == 0))
			continue;
		check_versions(ld, si->sect,
		    config_profile_min_version(ld->cfg, p),
		    config_profile_max_version(ld->cfg, p),
		    p->min_version ? si->line_a : 0,
		    p->max_version ? si->line_b : 0, 1);
	}
}

/* [policy] default names a profile declared by now. */
static void
check_default(struct loader *ld)
{
	struct policy_set *set = &ld->cfg->policy;
	int line = key_line(ld, K_POLICY, "default");
	int i;

	if (ld->default_name == NULL)
		return;
	i = policy_profile_find(set, ld->default_name);
	if (i < 0 || !declared(ld, i)) {
		lerr(ld, line, "[policy] default: unknown profile \"%s\"",
		    ld->default_name);
		return;
	}
	set->default_profile = i;
	set->default_origin.file = ld->cfg->file;
	set->default_origin.line = line;
}

/*
 * A match with a strict profile and an address as nexthop, but no mx
 * names: no certificate can name an address, so nothing would verify.
 */
static int
nexthop_unverifiable(const struct policy_match *m,
    const struct policy_profile *p)
{
	char host[256];
	unsigned char addr[16];
	int port;

	return m->nexthop != NULL && m->nmx == 0 && p->nmx == 0 &&
	    p->verify == POLICY_VERIFY_STRICT && p->tls != POLICY_TLS_OFF &&
	    config_parse_hostport(m->nexthop, 25, host, sizeof(host),
		&port) == 0 &&
	    (inet_pton(AF_INET, host, addr) == 1 ||
		inet_pton(AF_INET6, host, addr) == 1);
}

/* Every [match] of this file names a declared profile that can work. */
static void
check_matches(struct loader *ld)
{
	const struct policy_set *set = &ld->cfg->policy;
	int i;

	for (i = 0; i < set->nmatches; i++) {
		const struct policy_match *m = &set->matches[i];
		const struct sectinfo *si = match_info(ld, i);

		if (si == NULL || si->sect == NULL)
			continue;
		if (m->profile < 0) {
			if (si->line_a == 0) /* else: already reported */
				lerr(ld, si->header_line, "[%s] profile: required",
				    si->sect);
		} else if (!declared(ld, m->profile))
			lerr(ld, si->line_a, "[%s] profile: unknown profile \"%s\"",
			    si->sect, set->profiles[m->profile].name);
		else if (nexthop_unverifiable(m, &set->profiles[m->profile]))
			lerr(ld, si->line_b, "[%s] nexthop: nexthop is an address: "
			    "set mx to the names its certificate must match",
			    si->sect);
	}
}

static void
check_all(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	char why[WHY_MAX];

	if (cfg->hostname == NULL) {
		char name[256];

		if (gethostname(name, sizeof(name)) < 0 || name[0] == '\0')
			strcpy(name, "localhost");
		name[sizeof(name) - 1] = '\0';
		cfg->hostname = xstrdup(ld, name);
	}
	if (cfg->ca_bundle == NULL) {
		if (check_bundle(DEFAULT_CA_BUNDLE, why, sizeof(why)) < 0)
			lerr(ld, 0, "[tls] ca_bundle: %s (the default; set "
			    "ca_bundle in [tls])", why);
		cfg->ca_bundle = xstrdup(ld, DEFAULT_CA_BUNDLE);
	}
	check_versions(ld, "tls", cfg->min_version, cfg->max_version,
	    key_line(ld, K_TLS, "min_version"),
	    key_line(ld, K_TLS, "max_version"), 0);
	check_dnssec(ld);
	check_listeners(ld);
	check_report(ld);
	check_profiles(ld);
	check_default(ld);
	check_matches(ld);
	if (ld->nerrs == 0 && !ld->oom) {
		struct policy_origin o = { NULL, 0 };

		if (policy_set_finish(&cfg->policy, &o, why, sizeof(why)) < 0)
			lerr(ld, o.line, "%s", why);
	}
}

static int
lerr_cmp(const void *a, const void *b)
{
	const struct lerr *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return 0;
}

/* Sort by line, keeping the order of errors on the same line. */
static void
sort_errors(struct loader *ld)
{
	int i, j;

	/* Insertion sort: stable, and error lists are short. */
	for (i = 1; i < ld->nerrs; i++) {
		struct lerr e = ld->errs[i];

		for (j = i; j > 0 && lerr_cmp(&ld->errs[j - 1], &e) > 0; j--)
			ld->errs[j] = ld->errs[j - 1];
		ld->errs[j] = e;
	}
}

static int
errs_append(struct config_errors *errs, char *msg)
{
	if (errs->n == errs->cap) {
		int cap = errs->cap ? errs->cap * 2 : 8;
		char **v = realloc(errs->msg, (size_t)cap * sizeof(*v));

		if (v == NULL)
			return -1;
		errs->msg = v;
		errs->cap = cap;
	}
	errs->msg[errs->n++] = msg;
	return 0;
}

static void
set_defaults(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	struct config_cidr *c = cfg->allow_clients;

	parse_sockaddr(DEFAULT_LISTEN, 0, &cfg->listen, &cfg->listen_len);
	cfg->listen_str = xstrdup(ld, DEFAULT_LISTEN);
	parse_sockaddr(DEFAULT_ADMIN_LISTEN, 0, &cfg->admin_listen,
	    &cfg->admin_listen_len);
	cfg->admin_listen_str = xstrdup(ld, DEFAULT_ADMIN_LISTEN);
	cfg->drain_timeout = 30;
	cfg->cache_time = 5;
	cfg->cache_max = 100;
	cfg->reuse_time = 300;
	cfg->policy_refresh = 3600;
	cfg->policy_max_stale = 48 * 3600;
	cfg->mta_sts = 1;
	cfg->mta_sts_wait = 10;
	cfg->mta_sts_cache_bytes = 16L << 20;
	cfg->max_sessions_per_client = 100;
	cfg->log_addresses = CONFIG_ADDR_FULL;
	c[0].family = AF_INET;
	c[0].addr[0] = 127;
	c[0].prefix = 8;
	c[1].family = AF_INET6;
	c[1].addr[15] = 1;
	c[1].prefix = 128;
	cfg->nallow_clients = 2;
	cfg->max_sessions = 1000;
	cfg->state_dir = xstrdup(ld, DEFAULT_STATE_DIR);
	cfg->log_format = CONFIG_LOG_LOGFMT;
	cfg->log_level = CONFIG_LOG_INFO;
	cfg->max_bad_commands = 8;
	cfg->max_message_size = 52428800;
	cfg->bare_line_endings = CONFIG_BARE_REJECT;
	cfg->timeouts.connect = 30;
	cfg->timeouts.greeting = 300;
	cfg->timeouts.command = 300;
	cfg->timeouts.tls = 60;
	cfg->timeouts.data_init = 120;
	cfg->timeouts.data_block = 180;
	cfg->timeouts.data_done = 540;
	cfg->timeouts.client = 300;
	cfg->timeouts.rcpt = 240;
	cfg->dns_timeout = 5;
	cfg->min_version = POLICY_TLS1_2;
	cfg->max_version = POLICY_TLS1_3;
	cfg->timing.retry_delay = 300;
	cfg->timing.fallback_ttl = 3600;
	policy_set_init(&cfg->policy);
}

static char *
config_dir(struct loader *ld, const char *path)
{
	char *copy, *dir, *abs;

	if ((copy = xstrdup(ld, path)) == NULL)
		return NULL;
	dir = dirname(copy);
	if ((abs = realpath(dir, NULL)) == NULL)
		abs = xstrdup(ld, dir);
	free(copy);
	return abs;
}

/* The whole file into *text (malloc'd): 0, or -1 with the error reported. */
static int
read_all(struct loader *ld, const char *path, char **text, size_t *len)
{
	FILE *fp = fopen(path, "re");
	char *buf = NULL, *nb;
	size_t cap = 0, n = 0;

	if (fp == NULL) {
		lerr(ld, 0, "%s", strerror(errno));
		return -1;
	}
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap)) == NULL) {
				ld->oom = 1;
				break;
			}
			buf = nb;
		}
		n += fread(buf + n, 1, cap - n, fp);
		if (n < cap)
			break;
	}
	if (!ld->oom && ferror(fp))
		lerr(ld, 0, "read error: %s", strerror(errno ? errno : EIO));
	fclose(fp);
	if (ld->oom || ld->nerrs > 0) {
		free(buf);
		return -1;
	}
	*text = buf;
	*len = n;
	return 0;
}

int
config_load(const char *path, struct config *cfg, struct config_errors *errs)
{
	struct loader ld;
	char *text;
	size_t len;
	int i, failed;

	memset(cfg, 0, sizeof(*cfg));
	memset(&ld, 0, sizeof(ld));
	ld.cfg = cfg;
	ld.file = path;
	ld.kind = K_SKIP;
	ld.index = -1;
	cfg->file = xstrdup(&ld, path);
	set_defaults(&ld);
	ld.dir = config_dir(&ld, path);
	sections_init(&ld.secs, &cfg->policy, cfg->file);
	if (ld.dir == NULL)
		ld.oom = 1;
	else if (read_all(&ld, path, &text, &len) == 0) {
		if (ini_read(text, len, &cfg_ops, &ld) < 0)
			ld.oom = 1;
		free(text);
		check_all(&ld);
	}
	if (ld.oom)
		lerr(&ld, 0, "out of memory");
	sort_errors(&ld);

	failed = ld.nerrs > 0 || ld.oom;
	for (i = 0; i < ld.nerrs; i++)
		if (errs_append(errs, ld.errs[i].msg) < 0)
			free(ld.errs[i].msg);
	free(ld.errs);

	for (i = 0; i < POLICY_PROFILES_MAX; i++)
		free(ld.prof[i].sect);
	for (i = 0; i < ld.nmatch; i++)
		free(ld.match[i].sect);
	free(ld.match);
	sections_free(&ld.secs);
	free(ld.sect);
	free(ld.default_name);
	free(ld.dir);
	if (failed) {
		config_free(cfg);
		return -1;
	}
	return 0;
}

void
config_free(struct config *cfg)
{
	free(cfg->file);
	free(cfg->policy_url);
	free(cfg->https_ca_bundle);
	free(cfg->signing_key);
	free(cfg->mta_sts_ca_bundle);
	free(cfg->fetch_program);
	free(cfg->listen_str);
	free(cfg->admin_listen_str);
	free(cfg->dsn_submit_str);
	free(cfg->report_org);
	free(cfg->report_contact);
	free(cfg->report_submitter);
	free(cfg->report_submit_str);
	free(cfg->dkim_key_path);
	free(cfg->dkim_selector);
	free(cfg->dkim_domain);
	dkim_key_free(cfg->dkim_key);
	free(cfg->user);
	free(cfg->hostname);
	free(cfg->state_dir);
	free(cfg->dns_servers);
	free(cfg->trust_anchor);
	free(cfg->ca_bundle);
	free(cfg->ciphers);
	policy_set_free(&cfg->policy);
	memset(cfg, 0, sizeof(*cfg));
}

void
config_errors_free(struct config_errors *errs)
{
	int i;

	for (i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	memset(errs, 0, sizeof(*errs));
}

int
config_profile_min_version(const struct config *cfg,
    const struct policy_profile *p)
{
	return p != NULL && p->min_version != 0 ? p->min_version :
	    cfg->min_version;
}

int
config_profile_max_version(const struct config *cfg,
    const struct policy_profile *p)
{
	return p != NULL && p->max_version != 0 ? p->max_version :
	    cfg->max_version;
}

const char *
config_profile_ciphers(const struct config *cfg,
    const struct policy_profile *p)
{
	return p != NULL && p->ciphers != NULL ? p->ciphers : cfg->ciphers;
}

const char *
config_profile_ca_bundle(const struct config *cfg,
    const struct policy_profile *p)
{
	return p != NULL && p->ca_bundle != NULL ? p->ca_bundle :
	    cfg->ca_bundle;
}

static int
cidr_contains(const struct config_cidr *c, const unsigned char *addr)
{
	int full = c->prefix / 8, rest = c->prefix % 8;

	if (memcmp(c->addr, addr, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest)) & 0xff) ==
	    0;
}

/* 1 when sa is inside one of the n networks (an IPv4-mapped IPv6 address
 * counts as IPv4: a v4 peer on a v6 socket). */
static int
cidr_list_has(const struct config_cidr *list, int n,
    const struct sockaddr *sa)
{
	const unsigned char *a4 = NULL, *a6 = NULL;
	int i;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		a4 = (const unsigned char *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr;

		a6 = in6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6))
			a4 = in6->s6_addr + 12;
	} else
		return 0;
	for (i = 0; i < n; i++) {
		const struct config_cidr *c = &list[i];

		if (c->family == AF_INET && a4 != NULL && cidr_contains(c, a4))
			return 1;
		if (c->family == AF_INET6 && a6 != NULL && cidr_contains(c, a6))
			return 1;
	}
	return 0;
}

int
config_client_allowed(const struct config *cfg, const struct sockaddr *sa)
{
	return cidr_list_has(cfg->allow_clients, cfg->nallow_clients, sa);
}

const char *
config_addr_private(const struct sockaddr *sa)
{
	/* Each: family, prefix, address, what it is. */
	static const struct {
		struct config_cidr net;
		const char *what;
	} nets[] = {
		{ { AF_INET, { 127 }, 8 }, "loopback" },
		{ { AF_INET, { 10 }, 8 }, "private" },
		{ { AF_INET, { 172, 16 }, 12 }, "private" },
		{ { AF_INET, { 192, 168 }, 16 }, "private" },
		{ { AF_INET, { 169, 254 }, 16 }, "link-local" },
		{ { AF_INET, { 0 }, 8 }, "unspecified" },
		{ { AF_INET6, { [15] = 1 }, 128 }, "loopback" },
		{ { AF_INET6, { 0xfc }, 7 }, "private" },
		{ { AF_INET6, { 0xfe, 0x80 }, 10 }, "link-local" },
		{ { AF_INET6, { 0 }, 128 }, "unspecified" },
	};
	size_t i;

	for (i = 0; i < sizeof(nets) / sizeof(nets[0]); i++)
		if (cidr_list_has(&nets[i].net, 1, sa))
			return nets[i].what;
	return NULL;
}

int
config_mx_addr_allowed(const struct config *cfg, const struct sockaddr *sa)
{
	return config_addr_private(sa) == NULL ||
	    cidr_list_has(cfg->allow_private_mx, cfg->nallow_private_mx, sa);
}
