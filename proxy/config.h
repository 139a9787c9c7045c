/*
 * The configuration file (INI, policy/inireader.h) turned into a validated
 * struct config.
 * Parsing never logs and never exits: errors are collected as
 * "FILE:LINE: message" strings for `mxtls -t` and for start-up.
 */
#ifndef MXTLS_CONFIG_H
#define MXTLS_CONFIG_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "failure.h"
#include "policy.h"

#define CONFIG_CIDR_MAX 64

struct config_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};

enum config_log_format { CONFIG_LOG_LOGFMT, CONFIG_LOG_JSON };
enum config_log_level { CONFIG_LOG_DEBUG, CONFIG_LOG_INFO, CONFIG_LOG_WARN,
	CONFIG_LOG_ERROR };
/* How envelope addresses appear in logs: as they are, the domain only,
 * or a hash. */
/* relay: the MTA's relayhost; transparent: behind a REDIRECT rule. */
enum config_mode { CONFIG_MODE_RELAY, CONFIG_MODE_TRANSPARENT };
enum config_log_addresses { CONFIG_ADDR_FULL, CONFIG_ADDR_DOMAIN,
	CONFIG_ADDR_HASH };
/* A message with a bare CR or LF: refused, or rewritten to CRLF lines. */
enum config_bare { CONFIG_BARE_REJECT, CONFIG_BARE_NORMALISE };

struct config_timeouts {
	/*
	 * Seconds.  RFC 5321 4.5.3.2 minimums are the defaults, except
	 * where the MTA waits on mxtls (data_done, rcpt).
	 */
	double connect;	   /* TCP connect to the upstream: 30 */
	double greeting;   /* upstream 220: 300 */
	double command;	   /* upstream reply to EHLO/MAIL/RCPT/RSET...: 300 */
	double tls;	   /* upstream STARTTLS handshake: 60 */
	double data_init;  /* upstream 354: 120 */
	double data_block; /* each upstream write of message data: 180 */
	/*
	 * The upstream's reply to the final dot: 540, a minute below the
	 * MTA's own wait for it (Postfix's smtp_data_done_timeout, Exim's
	 * final_timeout: 600), so the MTA gets mxtls's 451 rather than
	 * timing out itself at the same moment.
	 */
	double data_done;
	double client;	   /* downstream: next command or data: 300 */
	/*
	 * The MTA's wait for the reply to its RCPT while mxtls finds an
	 * upstream (DNS, every MX host and address, TLS, EHLO, MAIL, RCPT
	 * together): 240, below Postfix's smtp_rcpt_timeout of 300.
	 */
	double rcpt;
};

/* [dns] dnssec: where the DNSSEC standing of answers comes from. */
enum config_dnssec {
	CONFIG_DNSSEC_VALIDATE, /* validated inside mxtls */
	CONFIG_DNSSEC_TRUST_AD, /* the AD bit of loopback servers */
	CONFIG_DNSSEC_OFF,	/* all answers insecure: no DANE */
};
#define DEFAULT_TRUST_ANCHOR "/usr/share/dns/root.key"

struct config {
	char *file; /* the path it was read from */

	/* [proxy] */
	struct sockaddr_storage listen;
	socklen_t listen_len;
	char *listen_str;
	char *hostname; /* banner and EHLO name, both directions */
	struct config_cidr allow_clients[CONFIG_CIDR_MAX];
	int nallow_clients;
	int max_sessions;
	char *state_dir;
	enum config_log_format log_format;
	enum config_log_level log_level;
	int max_bad_commands; /* then disconnect: 8 */
	long max_message_size; /* advertised SIZE and enforced: 50 MiB */
	enum config_bare bare_line_endings; /* reject (DKIM stays intact) */
	struct config_timeouts timeouts;
	/* The admin endpoint: 127.0.0.1:9925; admin_listen_len 0: "off". */
	struct sockaddr_storage admin_listen;
	socklen_t admin_listen_len;
	char *admin_listen_str;
	double drain_timeout; /* seconds after SIGTERM: 30; 0: at once */
	/*
	 * The MTA's SMTP listener, where "relayed" notices go (dsn.c);
	 * dsn_submit_len 0 ("off", the default): DSN is not advertised.
	 */
	struct sockaddr_storage dsn_submit;
	socklen_t dsn_submit_len;
	char *dsn_submit_str;
	/*
	 * The user to run as after binding (NULL: not set), checked with
	 * getpwnam() at load time: its uid (never 0) and primary group.
	 */
	char *user;
	uid_t user_uid;
	gid_t user_gid;
	int max_sessions_per_client; /* per client address: 100; 0: no limit */
	enum config_log_addresses log_addresses;
	enum config_mode mode;
	int upstream_mark; /* SO_MARK on upstream sockets; 0: none */
	/*
	 * The upstream connection cache (Postfix's, by another name): an
	 * idle verified TLS connection waits cache_time seconds (5; 0: no
	 * cache) for the next transaction to the same route; at most
	 * cache_max (100) wait; none is reused once reuse_time (300) has
	 * passed since it was opened.
	 */
	double cache_time;
	int cache_max;
	double reuse_time;

	/* [dns] */
	/* "ADDR[:PORT],..." (CSV), "recursive", or NULL = the system's */
	char *dns_servers;
	double dns_timeout; /* seconds per query try: 5 */
	enum config_dnssec dnssec; /* validate */
	char *trust_anchor; /* DS/DNSKEY file; default DEFAULT_TRUST_ANCHOR */
	/*
	 * Networks an MX host may resolve into although they are loopback,
	 * private, link-local or unspecified (config_addr_private); none by
	 * default: a hostile domain must not aim mxtls at the local MTA or
	 * internal relays.  "yes" is 0.0.0.0/0 and ::/0.
	 */
	struct config_cidr allow_private_mx[CONFIG_CIDR_MAX];
	int nallow_private_mx;

	/* [tls]: the defaults every profile inherits */
	char *ca_bundle;
	int min_version;
	int max_version;
	char *ciphers; /* NULL = BoringSSL's default list */
	/*
	 * Where each [tls] key was set, indexed like policy_profile.origins
	 * (POLICY_P_MIN_VERSION, _MAX_VERSION, _CIPHERS, _CA_BUNDLE; the
	 * others stay unset); line 0: the built-in default.
	 */
	struct policy_origin tls_origins[POLICY_P_NKEYS];

	/* [policy]: the central policy and MTA-STS (docs/behaviour.md section 6) */
	char *policy_url;	  /* https://...; NULL: no central policy */
	double policy_refresh;	  /* seconds between fetches: 3600 */
	char *https_ca_bundle;	  /* CAs of the policy server; NULL: system */
	char *signing_key;	  /* base64 Ed25519 public key, or NULL */
	double policy_max_stale;  /* warn past this age: 48 h */
	int mta_sts;		  /* honour recipients' MTA-STS: on */
	/* "TLS-Required: No" may lift a local mandatory profile: no */
	int honour_tls_required_no;
	double mta_sts_wait;	  /* first message to a domain waits: 10 s */
	char *mta_sts_ca_bundle;  /* CAs for mta-sts.DOMAIN; NULL: system */
	long mta_sts_cache_bytes; /* the cache, memory and disk: 16 MiB */
	char *fetch_program;	  /* mxtls-fetch; NULL: beside mxtls */

	/*
	 * [report]: TLS reporting (RFC 8460).  Counting runs only when
	 * enabled (off by default; read at start), which needs org.
	 * submitter defaults to hostname, contact to postmaster@submitter;
	 * submit (for mailto reports) is the MTA's SMTP listener,
	 * report_submit_len 0 when not set.
	 */
	int report_enabled;
	char *report_org;
	char *report_contact;
	char *report_submitter;
	struct sockaddr_storage report_submit;
	socklen_t report_submit_len;
	char *report_submit_str;
	/*
	 * dkim_key (a PEM file, read at start and at SIGHUP into dkim_key),
	 * dkim_selector and dkim_domain (default: the submitter): all or
	 * none.  dkim_key NULL: mailto reports go unsigned.
	 */
	char *dkim_key_path;
	char *dkim_selector;
	char *dkim_domain;
	struct dkim_key *dkim_key;

	/* [policy] retry_delay and fallback_ttl (whole seconds, > 0) */
	struct failure_timing timing;

	/*
	 * [policy] default, [profile NAME], [match PATTERN].  The origin of
	 * a profile or a match is the line of its section header;
	 * policy.default_origin the line of [policy] default (0: not set).
	 */
	struct policy_set policy;
};

struct config_errors {
	char **msg; /* "FILE:LINE: message" */
	int n;
	int cap;
};

/*
 * Read and validate `path`.  Returns 0 with *cfg filled, or -1 with every
 * error found appended to errs.  Resolves nothing over the network; checks
 * that CA bundle files exist and are readable.
 */
int config_load(const char *path, struct config *cfg, struct config_errors *errs);
void config_free(struct config *cfg);
void config_errors_free(struct config_errors *errs);

/* Effective values of a profile after the [tls] defaults are applied. */
int config_profile_min_version(const struct config *cfg,
    const struct policy_profile *p);
int config_profile_max_version(const struct config *cfg,
    const struct policy_profile *p);
const char *config_profile_ciphers(const struct config *cfg,
    const struct policy_profile *p);
const char *config_profile_ca_bundle(const struct config *cfg,
    const struct policy_profile *p);

/*
 * What kind of address sa is when it is not a public one: "loopback",
 * "private", "link-local" or "unspecified"; NULL otherwise (IPv4-mapped
 * IPv6 addresses are judged as IPv4).  Pure.
 */
const char *config_addr_private(const struct sockaddr *sa);

/* 1 when an MX host may be contacted at sa (public, or allow_private_mx). */
int config_mx_addr_allowed(const struct config *cfg,
    const struct sockaddr *sa);

/* 1 when the address is inside one of allow_clients. */
int config_client_allowed(const struct config *cfg, const struct sockaddr *sa);

/* Parse "ADDR:PORT", "[V6ADDR]:PORT" or "ADDR" with default_port. */
int config_parse_hostport(const char *s, int default_port, char *host,
    size_t hostlen, int *port);

#endif
