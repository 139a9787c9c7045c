/*
 * proxy/config.c: config files written to a temporary directory, loaded,
 * and checked value by value and error by error ("FILE:LINE: ..." text,
 * exact).  Run from the repository root (tests/run.sh does).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "inireader.h"
#include "t.h"

static char tmp[PATH_MAX];    /* the temporary directory, absolute */
static char bundle[PATH_MAX + 16]; /* tmp/ca.crt, a non-empty file */
static char *created[64];
static int ncreated;

static void
remember(const char *path)
{
	if (ncreated < (int)(sizeof(created) / sizeof(created[0])))
		created[ncreated++] = strdup(path);
}

static void
write_raw(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	fwrite(data, 1, len, f);
	fclose(f);
}

/* tmp/NAME with text; returns the path (static buffer). */
static const char *
write_file(const char *name, const char *text)
{
	static char path[PATH_MAX + 64];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	if (stat(path, &st) != 0)
		remember(path);
	write_raw(path, text, strlen(text));
	return path;
}

/* "F:..." in want stands for the file's path; "T/" for the temp dir. */
static char *
expand(const char *want, const char *path)
{
	static char out[4096];
	size_t o = 0;

	if (strncmp(want, "F:", 2) == 0) {
		o = (size_t)snprintf(out, sizeof(out), "%s:", path);
		want += 2;
	}
	for (; *want != '\0' && o < sizeof(out) - PATH_MAX - 1; want++) {
		if (want[0] == 'T' && want[1] == '/') {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s/", tmp);
			want++;
		} else
			out[o++] = *want;
	}
	out[o] = '\0';
	return out;
}

static void
show_errors(const struct config_errors *errs)
{
	int i;

	for (i = 0; i < errs->n; i++)
		fprintf(stderr, "    got: %s\n", errs->msg[i]);
}

/*
 * Load text as tmp/NAME and compare the errors with want (NULL-ended);
 * returns config_load()'s result with cfg filled on success.
 */
static int
load_check(const char *name, const char *text, struct config *cfg,
    const char *const *want, int line)
{
	struct config_errors errs = { 0 };
	char path[PATH_MAX + 64];
	int r, n = 0, i, bad = 0;

	snprintf(path, sizeof(path), "%s", write_file(name, text));
	r = config_load(path, cfg, &errs);
	/* Without a system bundle, files that set none get one error more. */
	if (errs.n > 0 && access("/etc/ssl/certs/ca-certificates.crt", R_OK) &&
	    strstr(errs.msg[0], ": [tls] ca_bundle: /etc/ssl/certs/") != NULL) {
		free(errs.msg[0]);
		memmove(errs.msg, errs.msg + 1, (size_t)--errs.n * sizeof(char *));
	}
	while (want[n] != NULL)
		n++;
	if (errs.n != n)
		bad = 1;
	for (i = 0; i < n && i < errs.n; i++)
		if (strcmp(errs.msg[i], expand(want[i], path)) != 0)
			bad = 1;
	if (bad) {
		fprintf(stderr, "%s:%d: errors of %s differ\n", __FILE__, line,
		    name);
		for (i = 0; i < n; i++)
			fprintf(stderr, "   want: %s\n", expand(want[i], path));
		show_errors(&errs);
		t_cur = 1;
	}
	if (r != (n ? -1 : 0)) {
		fprintf(stderr, "%s:%d: config_load returned %d\n", __FILE__,
		    line, r);
		t_cur = 1;
	}
	config_errors_free(&errs);
	return r;
}

#define ERRS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define LOAD_OK(name, text, cfg)                                           \
	load_check(name, text, cfg, (const char *const[]){ NULL }, __LINE__)
#define LOAD_ERR(name, text, ...)                                          \
	do {                                                               \
		struct config c_;                                          \
		load_check(name, text, &c_, ERRS(__VA_ARGS__), __LINE__);  \
		config_free(&c_);                                          \
	} while (0)

static int
port_of(const struct config *cfg)
{
	if (cfg->listen.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&cfg->listen)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&cfg->listen)->sin6_port);
}

static int
allowed(const struct config *cfg, const char *addr)
{
	struct sockaddr_in sin = { 0 };
	struct sockaddr_in6 sin6 = { 0 };

	if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		return config_client_allowed(cfg, (struct sockaddr *)&sin);
	}
	if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		return config_client_allowed(cfg, (struct sockaddr *)&sin6);
	}
	return -1;
}

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* The shipped example, in a copy of its directory layout. */
static void
test_example(void)
{
	struct config cfg;
	char *text, *p, want[PATH_MAX + 64];
	char dir[PATH_MAX + 16];

	text = read_all("deploy/mxtls.example.ini");
	CHECK(text != NULL);
	if (text == NULL)
		return;
	snprintf(dir, sizeof(dir), "%s/deploy", tmp);
	mkdir(dir, 0700);
	remember(dir);
	snprintf(dir, sizeof(dir), "%s/ca-bundles", tmp);
	mkdir(dir, 0700);
	remember(dir);
	write_file("ca-bundles/ca-certificates.crt", "not really PEM\n");

	CHECK_INT(LOAD_OK("deploy/mxtls.example.ini", text, &cfg), 0);
	CHECK_STR(cfg.listen_str, "127.0.0.1:10025");
	CHECK_INT(cfg.listen.ss_family, AF_INET);
	CHECK_INT(port_of(&cfg), 10025);
	CHECK_INT(cfg.nallow_clients, 2);
	CHECK_INT(cfg.max_sessions, 1000);
	snprintf(want, sizeof(want), "%s/deploy/../build/state", tmp);
	CHECK_STR(cfg.state_dir, want);
	snprintf(want, sizeof(want),
	    "%s/deploy/../ca-bundles/ca-certificates.crt", tmp);
	CHECK_STR(cfg.ca_bundle, want);
	CHECK_INT(cfg.min_version, POLICY_TLS1_2);
	CHECK_INT(cfg.max_version, POLICY_TLS1_3);
	CHECK(cfg.dns_servers == NULL);
	CHECK_INT(cfg.log_level, CONFIG_LOG_INFO);
	CHECK_INT(cfg.log_format, CONFIG_LOG_LOGFMT);
	CHECK_STR(cfg.policy.profiles[cfg.policy.default_profile].name,
	    "opportunistic");
	CHECK_INT(cfg.timing.retry_delay, 300);
	CHECK_INT(cfg.timing.fallback_ttl, 3600);
	config_free(&cfg);

	/*
	 * Its commented-out sample profile and match are valid too, once the
	 * "; " in front of each of their lines is gone (not just the ";": an
	 * indented line would continue the value above it).
	 */
	if ((p = strstr(text, "; [profile")) != NULL) {
		char *q = p;

		while (*p == ';') {
			p += p[1] == ' ' ? 2 : 1;
			while (*p != '\0' && *p != '\n')
				*q++ = *p++;
			if (*p == '\n')
				*q++ = *p++;
		}
		memmove(q, p, strlen(p) + 1);
	}
	CHECK(strstr(text, "\n[match partner.example]\nprofile = partners")
	    != NULL);
	if (LOAD_OK("deploy/uncommented.ini", text, &cfg) == 0) {
		int i = policy_profile_find(&cfg.policy, "partners");

		CHECK(i >= 0);
		CHECK_INT(cfg.policy.nmatches, 1);
		if (i >= 0) {
			CHECK_INT(cfg.policy.profiles[i].tls, POLICY_TLS_MANDATORY);
			CHECK_INT(config_profile_min_version(&cfg,
			    &cfg.policy.profiles[i]), POLICY_TLS1_3);
		}
	}
	config_free(&cfg);
	free(text);

	/* The real file, once the CA bundle it names exists. */
	if (access("ca-bundles/ca-certificates.crt", R_OK) == 0) {
		struct config_errors errs = { 0 };

		CHECK_INT(config_load("deploy/mxtls.example.ini", &cfg, &errs), 0);
		show_errors(&errs);
		config_errors_free(&errs);
		config_free(&cfg);
	} else
		fprintf(stderr, "    (ca-bundles/ca-certificates.crt missing: "
		    "the shipped example was checked in a copy only)\n");
}

static void
test_defaults(void)
{
	struct config cfg;
	char host[256] = "";

	if (LOAD_OK("defaults.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) != 0)
		return;
	CHECK_STR(cfg.file, write_file("defaults.ini", "[tls]\nca_bundle = "
	    "ca.crt\n"));
	CHECK_STR(cfg.listen_str, "127.0.0.1:10025");
	CHECK_INT(cfg.listen.ss_family, AF_INET);
	CHECK_INT(cfg.listen_len, sizeof(struct sockaddr_in));
	CHECK_INT(port_of(&cfg), 10025);
	gethostname(host, sizeof(host) - 1);
	CHECK_STR(cfg.hostname, host);
	CHECK_INT(cfg.nallow_clients, 2);
	CHECK_INT(allowed(&cfg, "127.0.0.1"), 1);
	CHECK_INT(allowed(&cfg, "127.255.0.9"), 1);
	CHECK_INT(allowed(&cfg, "::1"), 1);
	CHECK_INT(allowed(&cfg, "::ffff:127.0.0.1"), 1);
	CHECK_INT(allowed(&cfg, "128.0.0.1"), 0);
	CHECK_INT(allowed(&cfg, "::2"), 0);
	CHECK_INT(allowed(&cfg, "192.0.2.1"), 0);
	CHECK_INT(cfg.max_sessions, 1000);
	CHECK_STR(cfg.state_dir, "/var/lib/mxtls");
	CHECK_INT(cfg.log_format, CONFIG_LOG_LOGFMT);
	CHECK_INT(cfg.log_level, CONFIG_LOG_INFO);
	CHECK_INT(cfg.max_bad_commands, 8);
	CHECK_INT(cfg.max_message_size, 52428800);
	CHECK(cfg.timeouts.connect == 30);
	CHECK(cfg.timeouts.greeting == 300);
	CHECK(cfg.timeouts.command == 300);
	CHECK(cfg.timeouts.tls == 60);
	CHECK(cfg.timeouts.data_init == 120);
	CHECK(cfg.timeouts.data_block == 180);
	CHECK(cfg.timeouts.data_done == 540);
	CHECK(cfg.timeouts.client == 300);
	CHECK(cfg.timeouts.rcpt == 240);
	CHECK(cfg.dns_servers == NULL);
	CHECK(cfg.dns_timeout == 5);
	CHECK_STR(cfg.ca_bundle, bundle);
	CHECK_INT(cfg.min_version, POLICY_TLS1_2);
	CHECK_INT(cfg.max_version, POLICY_TLS1_3);
	CHECK(cfg.ciphers == NULL);
	CHECK_INT(cfg.policy.nprofiles, 3); /* the built-ins */
	CHECK_INT(cfg.policy.nmatches, 0);
	CHECK_INT(cfg.policy.default_profile, 0);
	CHECK_INT(cfg.policy.default_origin.line, 0);
	CHECK_INT(cfg.timing.retry_delay, 300);
	CHECK_INT(cfg.timing.fallback_ttl, 3600);
	CHECK_INT(cfg.tls_origins[POLICY_P_CA_BUNDLE].line, 2);
	CHECK_INT(cfg.tls_origins[POLICY_P_MIN_VERSION].line, 0);
	CHECK_INT(cfg.tls_origins[POLICY_P_MAX_VERSION].line, 0);
	CHECK_INT(cfg.tls_origins[POLICY_P_CIPHERS].line, 0);
	CHECK_STR(cfg.admin_listen_str, "127.0.0.1:9925");
	CHECK_INT(cfg.admin_listen.ss_family, AF_INET);
	CHECK_INT(cfg.admin_listen_len, sizeof(struct sockaddr_in));
	CHECK_INT(ntohs(((const struct sockaddr_in *)&cfg.admin_listen)->
	    sin_port), 9925);
	CHECK_INT(((const struct sockaddr_in *)&cfg.admin_listen)->
	    sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	CHECK(cfg.drain_timeout == 30);
	CHECK(cfg.cache_time == 5);
	CHECK_INT(cfg.cache_max, 100);
	CHECK(cfg.reuse_time == 300);
	CHECK(cfg.user == NULL);
	CHECK_INT(cfg.max_sessions_per_client, 100);
	CHECK_INT(cfg.log_addresses, CONFIG_ADDR_FULL);
	CHECK_INT(cfg.bare_line_endings, CONFIG_BARE_REJECT);
	config_free(&cfg);
	config_free(&cfg); /* harmless twice */
}

static const char full_config[] =
    "; every key, with a value other than its default\n"	/* 1 */
    "[proxy]\n"							/* 2 */
    "listen = [::1]:2525\n"					/* 3 */
    "hostname = relay.example.org\n"				/* 4 */
    "allow_clients = 10.0.0.0/8 192.168.1.7,\n"			/* 5 */
    "    2001:db8::/32 ; the office\n"				/* 6 */
    "    ; a comment inside the list\n"				/* 7 */
    "\n"							/* 8 */
    "    172.16.0.0/12,\n"					/* 9 */
    "max_sessions = 50\n"					/* 10 */
    "state_dir = state\n"					/* 11 */
    "log_format = json\n"					/* 12 */
    "log_level = debug\n"					/* 13 */
    "max_bad_commands = 3\n"					/* 14 */
    "max_message_size = 10m\n"					/* 15 */
    "connect_timeout = 1.5\n"					/* 16 */
    "greeting_timeout = 2\n"					/* 17 */
    "command_timeout = 3\n"					/* 18 */
    "tls_timeout = 4\n"						/* 19 */
    "data_init_timeout = 5\n"					/* 20 */
    "data_block_timeout = 6\n"					/* 21 */
    "data_done_timeout = 7\n"					/* 22 */
    "client_timeout = 8\n"					/* 23 */
    "\n"							/* 24 */
    "[dns]\n"							/* 25 */
    "servers = 192.0.2.53, [2001:db8::53]:5353\n"		/* 26 */
    "  2001:db8::54 198.51.100.53:5300\n"			/* 27 */
    "timeout = 2.5\n"						/* 28 */
    "\n"							/* 29 */
    "[tls]\n"							/* 30 */
    "ca_bundle = ca.crt\n"					/* 31 */
    "min_version = 1.1\n"					/* 32 */
    "max_version = 1.2\n"					/* 33 */
    "ciphers = ECDHE+AESGCM:ECDHE+CHACHA20\n"			/* 34 */
    "\n"							/* 35 */
    "[policy]\n"						/* 36 */
    "default = partners\n"					/* 37 */
    "retry_delay = 60\n"					/* 38 */
    "fallback_ttl = 7200\n"					/* 39 */
    "\n"							/* 40 */
    "[match partner.example]\n"					/* 41 */
    "profile = partners\n"					/* 42 */
    "nexthop = [2001:db8::25]:2525\n"				/* 43 */
    "mx = mx1.partner.example,\n"				/* 44 */
    "     *.mx.partner.example\n"				/* 45 */
    "\n"							/* 46 */
    "[profile partners]\n"					/* 47 */
    "tls = mandatory\n"						/* 48 */
    "verify = strict\n"						/* 49 */
    "min_version = 1.2\n"					/* 50 */
    "ciphers = ECDHE+AESGCM\n"					/* 51 */
    "ca_bundle = sub/../ca.crt\n"				/* 52 */
    "\n"							/* 53 */
    "[profile opportunistic]\n"					/* 54 */
    "verify = none\n"						/* 55 */
    "\n"							/* 56 */
    "[match Someone@Example.COM]\n"				/* 57 */
    "profile = mandatory\n";					/* 58 */

static void
test_values(void)
{
	struct config cfg;
	const struct policy_profile *p;
	struct policy_decision d;
	char want[PATH_MAX + 64];
	int i;

	mkdir(strcat(strcpy(want, tmp), "/sub"), 0700);
	remember(want);
	if (LOAD_OK("full.ini", full_config, &cfg) != 0)
		return;
	CHECK_STR(cfg.listen_str, "[::1]:2525");
	CHECK_INT(cfg.listen.ss_family, AF_INET6);
	CHECK_INT(cfg.listen_len, sizeof(struct sockaddr_in6));
	CHECK_INT(port_of(&cfg), 2525);
	CHECK_STR(cfg.hostname, "relay.example.org");
	CHECK_INT(cfg.nallow_clients, 4);
	CHECK_INT(allowed(&cfg, "10.200.3.4"), 1);
	CHECK_INT(allowed(&cfg, "192.168.1.7"), 1);
	CHECK_INT(allowed(&cfg, "192.168.1.8"), 0);
	CHECK_INT(allowed(&cfg, "2001:db8:ffff::1"), 1);
	CHECK_INT(allowed(&cfg, "2001:db9::1"), 0);
	CHECK_INT(allowed(&cfg, "172.31.255.255"), 1);
	CHECK_INT(allowed(&cfg, "172.32.0.0"), 0);
	CHECK_INT(allowed(&cfg, "::ffff:10.1.1.1"), 1);
	CHECK_INT(allowed(&cfg, "127.0.0.1"), 0);
	CHECK_INT(allowed(&cfg, "::1"), 0);
	CHECK_INT(cfg.max_sessions, 50);
	snprintf(want, sizeof(want), "%s/state", tmp);
	CHECK_STR(cfg.state_dir, want);
	CHECK_INT(cfg.log_format, CONFIG_LOG_JSON);
	CHECK_INT(cfg.log_level, CONFIG_LOG_DEBUG);
	CHECK_INT(cfg.max_bad_commands, 3);
	CHECK_INT(cfg.max_message_size, 10L * 1024 * 1024);
	CHECK(cfg.timeouts.connect == 1.5);
	CHECK(cfg.timeouts.greeting == 2);
	CHECK(cfg.timeouts.command == 3);
	CHECK(cfg.timeouts.tls == 4);
	CHECK(cfg.timeouts.data_init == 5);
	CHECK(cfg.timeouts.data_block == 6);
	CHECK(cfg.timeouts.data_done == 7);
	CHECK(cfg.timeouts.client == 8);
	CHECK_STR(cfg.dns_servers, "192.0.2.53:53,[2001:db8::53]:5353,"
	    "[2001:db8::54]:53,198.51.100.53:5300");
	CHECK(cfg.dns_timeout == 2.5);
	CHECK_STR(cfg.ca_bundle, bundle);
	CHECK_INT(cfg.min_version, POLICY_TLS1_1);
	CHECK_INT(cfg.max_version, POLICY_TLS1_2);
	CHECK_STR(cfg.ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20");
	CHECK_INT(cfg.timing.retry_delay, 60);
	CHECK_INT(cfg.timing.fallback_ttl, 7200);
	CHECK_INT(cfg.tls_origins[POLICY_P_CA_BUNDLE].line, 31);
	CHECK_INT(cfg.tls_origins[POLICY_P_MIN_VERSION].line, 32);
	CHECK_INT(cfg.tls_origins[POLICY_P_MAX_VERSION].line, 33);
	CHECK_INT(cfg.tls_origins[POLICY_P_CIPHERS].line, 34);
	CHECK_STR(cfg.tls_origins[POLICY_P_CIPHERS].file, cfg.file);
	CHECK_INT(cfg.tls_origins[POLICY_P_TLS].line, 0);
	CHECK_INT(cfg.tls_origins[POLICY_P_MX].line, 0);

	i = policy_profile_find(&cfg.policy, "partners");
	CHECK(i >= 2);
	if (i < 0)
		goto out;
	p = &cfg.policy.profiles[i];
	CHECK_INT(cfg.policy.default_profile, i);
	CHECK_INT(cfg.policy.default_origin.line, 37);
	CHECK_STR(cfg.policy.default_origin.file, cfg.file);
	CHECK_INT(p->origin.line, 47); /* the section header */
	CHECK_INT(p->tls, POLICY_TLS_MANDATORY);
	CHECK_INT(config_profile_min_version(&cfg, p), POLICY_TLS1_2);
	CHECK_INT(config_profile_max_version(&cfg, p), POLICY_TLS1_2);
	CHECK_STR(config_profile_ciphers(&cfg, p), "ECDHE+AESGCM");
	snprintf(want, sizeof(want), "%s/sub/../ca.crt", tmp);
	CHECK_STR(config_profile_ca_bundle(&cfg, p), want);
	CHECK_STR(p->origin.file, cfg.file);
	CHECK_INT(p->origins[POLICY_P_TLS].line, 48);
	CHECK_INT(p->origins[POLICY_P_VERIFY].line, 49);
	CHECK_INT(p->origins[POLICY_P_MIN_VERSION].line, 50);
	CHECK_INT(p->origins[POLICY_P_MAX_VERSION].line, 0);
	CHECK_INT(p->origins[POLICY_P_CIPHERS].line, 51);
	CHECK_INT(p->origins[POLICY_P_CA_BUNDLE].line, 52);
	CHECK_STR(p->origins[POLICY_P_CA_BUNDLE].file, cfg.file);
	CHECK_INT(p->origins[POLICY_P_MX].line, 0);

	p = &cfg.policy.profiles[0];
	CHECK_INT(p->verify, POLICY_VERIFY_NONE);
	CHECK_INT(p->builtin, 1);
	CHECK_INT(p->origin.line, 54); /* a built-in, changed */
	CHECK_INT(p->origins[POLICY_P_VERIFY].line, 55);
	CHECK_INT(p->origins[POLICY_P_TLS].line, 0);
	CHECK_INT(cfg.policy.profiles[1].origin.line, 0);
	CHECK_INT(config_profile_min_version(&cfg, p), POLICY_TLS1_1);
	CHECK_STR(config_profile_ciphers(&cfg, p), cfg.ciphers);
	CHECK_STR(config_profile_ca_bundle(&cfg, p), bundle);
	CHECK_INT(config_profile_max_version(&cfg, NULL), POLICY_TLS1_2);

	policy_lookup(&cfg.policy, "a@partner.example", &d);
	CHECK_STR(d.profile->name, "partners");
	CHECK_STR(d.nexthop, "[2001:db8::25]:2525");
	CHECK_INT(d.nmx, 2);
	if (d.nmx == 2) {
		CHECK_STR(d.mx[0], "mx1.partner.example");
		CHECK_STR(d.mx[1], "*.mx.partner.example");
	}
	CHECK_INT(d.match->origin.line, 41);
	CHECK_INT(d.match->origins[POLICY_M_PROFILE].line, 42);
	CHECK_INT(d.match->origins[POLICY_M_NEXTHOP].line, 43);
	CHECK_INT(d.match->origins[POLICY_M_MX].line, 44);
	CHECK_STR(d.match->origins[POLICY_M_MX].file, cfg.file);
	policy_lookup(&cfg.policy, "someone@example.com", &d);
	CHECK_STR(d.profile->name, "mandatory");
	CHECK_INT(d.match->origin.line, 57);
	CHECK_INT(d.match->origins[POLICY_M_PROFILE].line, 58);
	CHECK_INT(d.match->origins[POLICY_M_NEXTHOP].line, 0);
	policy_lookup(&cfg.policy, "other@example.com", &d);
	CHECK_STR(d.profile->name, "partners");
	CHECK(d.match == NULL);
out:
	config_free(&cfg);
}

static void
test_hostport(void)
{
	static const struct {
		const char *in;
		int def, rc;
		const char *host;
		int port;
	} cases[] = {
		{ "127.0.0.1:25", 0, 0, "127.0.0.1", 25 },
		{ "127.0.0.1", 25, 0, "127.0.0.1", 25 },
		{ "127.0.0.1", 0, -1, "", 0 },
		{ "[::1]:2525", 0, 0, "::1", 2525 },
		{ "[::1]", 53, 0, "::1", 53 },
		{ "2001:db8::1", 53, 0, "2001:db8::1", 53 },
		{ "mx.example.com:587", 25, 0, "mx.example.com", 587 },
		{ "mx.example.com", 25, 0, "mx.example.com", 25 },
		{ "mx.example.com:", 25, -1, "", 0 },
		{ "mx.example.com:0", 25, -1, "", 0 },
		{ "mx.example.com:65536", 25, -1, "", 0 },
		{ "mx.example.com:+25", 25, -1, "", 0 },
		{ "[::1]x", 25, -1, "", 0 },
		{ "[::1", 25, -1, "", 0 },
		{ "[mx.example.com]:25", 25, -1, "", 0 },
		{ ":25", 25, -1, "", 0 },
		{ "1.2.3:25", 25, -1, "", 0 },
		{ "bad_name:25", 25, -1, "", 0 },
		{ "", 25, -1, "", 0 },
	};
	char host[64];
	size_t i;
	int port, r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		port = -1;
		r = config_parse_hostport(cases[i].in, cases[i].def, host,
		    sizeof(host), &port);
		if (r != cases[i].rc)
			fprintf(stderr, "  \"%s\"\n", cases[i].in);
		CHECK_INT(r, cases[i].rc);
		if (r == 0 && cases[i].rc == 0) {
			CHECK_STR(host, cases[i].host);
			CHECK_INT(port, cases[i].port);
		}
	}
	CHECK_INT(config_parse_hostport("[2001:db8::1]:25", 25, host, 4, &port),
	    -1);
}

/* One error per small file: the exact text and line of each. */
static void
test_value_errors(void)
{
	LOAD_ERR("e.ini", "[proxy]\nlisten = localhost:10025\n",
	    "F:2: [proxy] listen: invalid address \"localhost:10025\": "
	    "expected IPV4:PORT or [IPV6]:PORT");
	LOAD_ERR("e.ini", "[proxy]\n\nlisten = 127.0.0.1\n",
	    "F:3: [proxy] listen: invalid address \"127.0.0.1\": expected "
	    "IPV4:PORT or [IPV6]:PORT");
	LOAD_ERR("e.ini", "[proxy]\nhostname = bad_host.example\n",
	    "F:2: [proxy] hostname: invalid host name \"bad_host.example\"");
	LOAD_ERR("e.ini", "[proxy]\nallow_clients = 10.1.2.3/8\n",
	    "F:2: [proxy] allow_clients: \"10.1.2.3/8\" has host bits set "
	    "(did you mean 10.0.0.0/8?)");
	LOAD_ERR("e.ini", "[proxy]\nallow_clients = ::1/128 10.0.0.0/33\n",
	    "F:2: [proxy] allow_clients: invalid network \"10.0.0.0/33\": "
	    "expected ADDRESS or ADDRESS/PREFIX");
	LOAD_ERR("e.ini", "[proxy]\nallow_clients = ,\n",
	    "F:2: [proxy] allow_clients: empty list");
	LOAD_ERR("e.ini", "[proxy]\nmax_sessions = 0\n",
	    "F:2: [proxy] max_sessions: \"0\" is not a whole number from 1 to "
	    "1000000");
	LOAD_ERR("e.ini", "[proxy]\nmax_sessions = 1000001\n",
	    "F:2: [proxy] max_sessions: \"1000001\" is not a whole number from "
	    "1 to 1000000");
	LOAD_ERR("e.ini", "[proxy]\nmax_sessions = ten\n",
	    "F:2: [proxy] max_sessions: \"ten\" is not a whole number from 1 "
	    "to 1000000");
	LOAD_ERR("e.ini", "[proxy]\nmax_bad_commands = -1\n",
	    "F:2: [proxy] max_bad_commands: \"-1\" is not a whole number from "
	    "1 to 1000");
	LOAD_ERR("e.ini", "[proxy]\nlog_format = xml\n",
	    "F:2: [proxy] log_format: \"xml\": expected logfmt or json");
	LOAD_ERR("e.ini", "[proxy]\nmode = bridge\n",
	    "F:2: [proxy] mode: \"bridge\": expected relay or transparent");
	LOAD_ERR("e.ini", "[proxy]\nlog_level = trace\n",
	    "F:2: [proxy] log_level: \"trace\": expected debug, info, warn or "
	    "error");
	LOAD_ERR("e.ini", "[proxy]\nmax_message_size = 10mb\n",
	    "F:2: [proxy] max_message_size: \"10mb\" is not a size in bytes (a "
	    "number > 0, optionally with k, m or g)");
	LOAD_ERR("e.ini", "[proxy]\nmax_message_size = 0\n",
	    "F:2: [proxy] max_message_size: \"0\" is not a size in bytes (a "
	    "number > 0, optionally with k, m or g)");
	LOAD_ERR("e.ini", "[proxy]\nmax_message_size = 99999999999999g\n",
	    "F:2: [proxy] max_message_size: \"99999999999999g\" is not a size "
	    "in bytes (a number > 0, optionally with k, m or g)");
	LOAD_ERR("e.ini", "[proxy]\nconnect_timeout = 0\n",
	    "F:2: [proxy] connect_timeout: \"0\" is not a number of seconds > 0 "
	    "(at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\ndata_done_timeout = -5\n",
	    "F:2: [proxy] data_done_timeout: \"-5\" is not a number of seconds "
	    "> 0 (at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\nrcpt_timeout = 0\n",
	    "F:2: [proxy] rcpt_timeout: \"0\" is not a number of seconds > 0 "
	    "(at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\nclient_timeout = 1e3\n",
	    "F:2: [proxy] client_timeout: \"1e3\" is not a number of seconds > "
	    "0 (at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\ntls_timeout = 86401\n",
	    "F:2: [proxy] tls_timeout: \"86401\" is not a number of seconds > 0 "
	    "(at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\ncommand_timeout =\n",
	    "F:2: [proxy] command_timeout: empty value");
	LOAD_ERR("e.ini", "[proxy]\nallow_clients =\n\n[profile p]\nmx =\n",
	    "F:2: [proxy] allow_clients: empty value",
	    "F:5: [profile p] mx: empty value");
	LOAD_ERR("e.ini", "[dns]\nservers = dns.example:53\n",
	    "F:2: [dns] servers: invalid server \"dns.example:53\": expected "
	    "ADDRESS[:PORT] or [IPV6]:PORT");
	LOAD_ERR("e.ini", "[dns]\nservers = 192.0.2.1:99999\n",
	    "F:2: [dns] servers: invalid server \"192.0.2.1:99999\": expected "
	    "ADDRESS[:PORT] or [IPV6]:PORT");
	LOAD_ERR("e.ini", "[dns]\ntimeout = never\n",
	    "F:2: [dns] timeout: \"never\" is not a number of seconds > 0 (at "
	    "most 86400)");
	LOAD_ERR("e.ini", "[tls]\nmin_version = 1.4\n",
	    "F:2: [tls] min_version: \"1.4\": expected 1.0, 1.1, 1.2 or 1.3");
	LOAD_ERR("e.ini", "[tls]\nmin_version = 1.3\nmax_version = 1.2\n",
	    "F:2: [tls] min_version: 1.3 is above max_version 1.2");
	LOAD_ERR("e.ini", "[tls]\nmax_version = 1.1\n",
	    "F:2: [tls] max_version: 1.1 is below min_version 1.2 (the "
	    "default)");
	LOAD_ERR("e.ini", "[tls]\nca_bundle = missing.crt\n",
	    "F:2: [tls] ca_bundle: T/missing.crt: No such file or directory");
	LOAD_ERR("e.ini", "[tls]\nca_bundle = /nonexistent/ca.crt\n",
	    "F:2: [tls] ca_bundle: /nonexistent/ca.crt: No such file or "
	    "directory");
	LOAD_ERR("e.ini", "[tls]\nca_bundle = .\n",
	    "F:2: [tls] ca_bundle: T/.: not a regular file");
	write_file("empty.crt", "");
	LOAD_ERR("e.ini", "[tls]\nca_bundle = empty.crt\n",
	    "F:2: [tls] ca_bundle: T/empty.crt: empty file");
	LOAD_ERR("e.ini", "[tls]\nciphers =\n", "F:2: [tls] ciphers: empty value");
	LOAD_ERR("e.ini", "[policy]\ndefault = nope\n",
	    "F:2: [policy] default: unknown profile \"nope\"");
	LOAD_ERR("e.ini", "[policy]\nretry_delay = 0\n",
	    "F:2: [policy] retry_delay: \"0\" is not a whole number of seconds "
	    "from 1 to 2592000");
	LOAD_ERR("e.ini", "[policy]\n\nretry_delay = -300\n",
	    "F:3: [policy] retry_delay: \"-300\" is not a whole number of "
	    "seconds from 1 to 2592000");
	LOAD_ERR("e.ini", "[policy]\nretry_delay = 5m\n",
	    "F:2: [policy] retry_delay: \"5m\" is not a whole number of seconds "
	    "from 1 to 2592000");
	LOAD_ERR("e.ini", "[policy]\nretry_delay = 1.5\n",
	    "F:2: [policy] retry_delay: \"1.5\" is not a whole number of "
	    "seconds from 1 to 2592000");
	LOAD_ERR("e.ini", "[policy]\nretry_delay =\n",
	    "F:2: [policy] retry_delay: empty value");
	LOAD_ERR("e.ini", "[policy]\nfallback_ttl = 0\n",
	    "F:2: [policy] fallback_ttl: \"0\" is not a whole number of seconds "
	    "from 1 to 2592000");
	LOAD_ERR("e.ini", "[policy]\nfallback_ttl = 2592001\n",
	    "F:2: [policy] fallback_ttl: \"2592001\" is not a whole number of "
	    "seconds from 1 to 2592000");
	LOAD_ERR("e.ini", "[policy]\nfallback_ttl = 99999999999999999999\n",
	    "F:2: [policy] fallback_ttl: \"99999999999999999999\" is not a "
	    "whole number of seconds from 1 to 2592000");
	LOAD_ERR("e.ini", "[policy]\nfallback_ttl = 60\nfallback_ttl = 61\n",
	    "F:3: [policy] fallback_ttl: duplicate key (first at line 2)");
}

static void
test_policy_errors(void)
{
	LOAD_ERR("e.ini", "[profile strict]\ntls = maybe\n",
	    "F:2: [profile strict] tls: \"maybe\": expected opportunistic, "
	    "mandatory or off");
	LOAD_ERR("e.ini", "[profile strict]\nverify = sometimes\n",
	    "F:2: [profile strict] verify: \"sometimes\": expected strict or "
	    "none");
	LOAD_ERR("e.ini", "[profile p]\nca_bundle = nope.pem\n",
	    "F:2: [profile p] ca_bundle: T/nope.pem: No such file or "
	    "directory");
	LOAD_ERR("e.ini", "[profile p]\nmin_version = 1.3\n[tls]\n"
	    "max_version = 1.2\n",
	    "F:2: [profile p] min_version: 1.3 is above max_version 1.2 (from "
	    "[tls])");
	LOAD_ERR("e.ini", "[profile p]\nmin_version = 1.3\nmax_version = 1.1\n",
	    "F:2: [profile p] min_version: 1.3 is above max_version 1.1");
	LOAD_ERR("e.ini", "[profile p]\nmx = a..example\n",
	    "F:2: [profile p] mx: invalid name \"a..example\" (a host name, or "
	    "\"*.\" and a domain)");
	LOAD_ERR("e.ini", "[profile p]\nlevel = high\n",
	    "F:2: [profile p] level: unknown key");
	LOAD_ERR("e.ini", "[profile b@d]\ntls = off\n",
	    "F:1: [profile b@d]: invalid profile name \"b@d\" (letters, digits, "
	    "\"_\", \".\" and \"-\" only)");
	LOAD_ERR("e.ini", "\n[profile]\ntls = off\n",
	    "F:2: [profile]: missing profile name");
	LOAD_ERR("e.ini", "[profile p]\n\n[match example.com]\n",
	    "F:1: [profile p]: empty section",
	    "F:3: [match example.com]: empty section");
	LOAD_ERR("e.ini", "[match .example.com]\nprofile = mandatory\n",
	    "F:1: [match .example.com]: \".example.com\": a leading \".\" is "
	    "not allowed (\"example.com\" covers its subdomains)");
	LOAD_ERR("e.ini", "[match bücher-.example]\nprofile = mandatory\n",
	    "F:1: [match bücher-.example]: invalid domain in "
	    "\"bücher-.example\": string start/ends with forbidden hyphen");
	LOAD_ERR("e.ini", "\n[match user@xn--zz.example]\nprofile = mandatory\n",
	    "F:2: [match user@xn--zz.example]: invalid domain in "
	    "\"user@xn--zz.example\": an \"xn--\" label is not a valid "
	    "A-label");
	LOAD_ERR("e.ini", "[match bücher.example]\nprofile = mandatory\n"
	    "[match XN--BCHER-KVA.example]\nprofile = mandatory\n",
	    "F:3: [match XN--BCHER-KVA.example]: duplicate pattern (first at "
	    "line 1)");
	LOAD_ERR("e.ini", "[profile p]\nmx = mx.bücher.example,\n"
	    "  *.-x\xc3\xbc.example\n",
	    "F:2: [profile p] mx: invalid name \"*.-x\xc3\xbc.example\": "
	    "string start/ends with forbidden hyphen");
	LOAD_ERR("e.ini", "[match *.example.com]\nprofile = mandatory\n",
	    "F:1: [match *.example.com]: \"*.example.com\": write \"example.com\" "
	    "(it covers the domain and its subdomains)");
	LOAD_ERR("e.ini", "[match example.com]\nprofile = mandatory\n"
	    "[match EXAMPLE.com.]\nprofile = mandatory\n",
	    "F:3: [match EXAMPLE.com.]: duplicate pattern (first at line 1)");
	LOAD_ERR("e.ini", "[match example.com]\nmx = mx.example.com\n",
	    "F:1: [match example.com] profile: required");
	LOAD_ERR("e.ini", "[match example.com]\nmx = mx.example.com\n"
	    "profile = ghost\n",
	    "F:3: [match example.com] profile: unknown profile \"ghost\"");
	LOAD_ERR("e.ini", "[match example.com]\nprofile = b@d\n",
	    "F:2: [match example.com] profile: invalid profile name \"b@d\" "
	    "(letters, digits, \"_\", \".\" and \"-\" only)");
	LOAD_ERR("e.ini", "[match example.com]\nprofile = mandatory\n"
	    "nexthop = mx.example.com:0\n",
	    "F:3: [match example.com] nexthop: invalid \"mx.example.com:0\": "
	    "expected HOST[:PORT] (HOST a name, an IPv4 address or [IPv6 "
	    "address]; PORT 1-65535)");
	/* A literal next hop must come with names to check its certificate. */
	LOAD_ERR("e.ini", "[match example.com]\nprofile = strict\n"
	    "nexthop = 192.0.2.25:25\n\n[profile strict]\ntls = mandatory\n",
	    "F:3: [match example.com] nexthop: nexthop is an address: set mx "
	    "to the names its certificate must match");
	LOAD_ERR("e.ini", "[match example.com]\nnexthop = [2001:db8::25]\n"
	    "profile = opportunistic\n",
	    "F:2: [match example.com] nexthop: nexthop is an address: set mx "
	    "to the names its certificate must match");
	{
		struct config cfg;

		/* ... names in the match or its profile, or nothing checked. */
		if (LOAD_OK("ok.ini", "[tls]\nca_bundle = ca.crt\n"
		    "[match a.example]\nprofile = mandatory\n"
		    "nexthop = 192.0.2.25\nmx = mx.a.example\n"
		    "[match b.example]\nprofile = named\n"
		    "nexthop = [2001:db8::25]:2525\n"
		    "[profile named]\nmx = *.b.example\n"
		    "[match c.example]\nprofile = relaxed\n"
		    "nexthop = 192.0.2.26\n"
		    "[profile relaxed]\nverify = none\n"
		    "[match d.example]\nprofile = clear\n"
		    "nexthop = 192.0.2.27\n"
		    "[profile clear]\ntls = off\n"
		    "[match e.example]\nprofile = mandatory\n"
		    "nexthop = smtp.e.example:587\n"
		    "[policy]\ndefault = relaxed\n", &cfg) == 0) {
			CHECK_INT(cfg.policy.nmatches, 5);
			CHECK_INT(cfg.policy.default_profile,
			    policy_profile_find(&cfg.policy, "relaxed"));
		}
		config_free(&cfg);
	}
}

/* Internationalized patterns: kept, and matched, in A-label form. */
static void
test_idna(void)
{
	struct config cfg;
	struct policy_decision d;
	const struct policy_profile *p;

	if (LOAD_OK("idna.ini", "[tls]\nca_bundle = ca.crt\n"
	    "[profile strict]\ntls = mandatory\n"
	    "mx = mx.bücher.example *.Müller.example\n"
	    "[match Bücher.Example]\nprofile = strict\n"
	    "[match xn--mller-kva.example]\nprofile = strict\n"
	    "[match Jörg@München.example]\nprofile = mandatory\n", &cfg) != 0)
		return;
	CHECK_INT(cfg.policy.nmatches, 3);
	CHECK_STR(cfg.policy.matches[0].pattern, "xn--bcher-kva.example");
	CHECK_STR(cfg.policy.matches[2].pattern,
	    "jörg@xn--mnchen-3ya.example");
	p = &cfg.policy.profiles[policy_profile_find(&cfg.policy, "strict")];
	CHECK_INT(p->nmx, 2);
	CHECK_STR(p->mx[0], "mx.xn--bcher-kva.example");
	CHECK_STR(p->mx[1], "*.xn--mller-kva.example");

	CHECK_INT(policy_lookup(&cfg.policy, "a@xn--bcher-kva.example", &d),
	    POLICY_OK);
	CHECK_STR(d.profile->name, "strict");
	CHECK_INT(policy_lookup(&cfg.policy, "a@Müller.EXAMPLE", &d),
	    POLICY_OK);
	CHECK_STR(d.profile->name, "strict");
	CHECK_STR(d.domain, "xn--mller-kva.example");
	CHECK_INT(policy_lookup(&cfg.policy, "Jörg@xn--MNCHEN-3ya.example",
	    &d), POLICY_OK);
	CHECK_STR(d.profile->name, "mandatory");
	CHECK_INT(policy_lookup(&cfg.policy, "a@münchen.example", &d),
	    POLICY_OK);
	CHECK_STR(d.profile->name, "opportunistic");
	CHECK_INT(policy_lookup(&cfg.policy, "a@xn--zz.münchen.example", &d),
	    POLICY_BAD_DOMAIN);
	config_free(&cfg);
}

/*
 * The key table: one key of each type, applied and refused by the typed
 * parser its entry names, with the entry's message; unknown keys and
 * sections; empty values.
 */
static void
test_key_types(void)
{
	struct config cfg;
	char big[300], text[600];

	if (LOAD_OK("t.ini", "[tls]\nca_bundle = ca.crt\nmin_version = 1.3\n"
	    "ciphers = ECDHE+AESGCM\n[proxy]\nmax_sessions = 1000000\n"
	    "max_message_size = 2k\nconnection_cache_time = 0\n"
	    "log_level = debug\nadmin_listen = off\nstate_dir = st\n"
	    "[dns]\nservers =\ntimeout = 0.5\ntrust_anchor = ca.crt\n"
	    "[policy]\nmta_sts = no\nretry_delay = 2592000\n"
	    "mta_sts_cache_bytes = 1g\nfetch_program = /bin/sh\n"
	    "https_ca_bundle = ca.crt\n[report]\nenabled = on\n"
	    "organization_name = Example Org\nsubmit = 127.0.0.1:25\n",
	    &cfg) == 0) {
		CHECK_INT(cfg.min_version, POLICY_TLS1_3);	 /* T_VERSION */
		CHECK_STR(cfg.ciphers, "ECDHE+AESGCM");	 /* T_STR */
		CHECK_INT(cfg.tls_origins[POLICY_P_CIPHERS].line, 4);
		CHECK_INT(cfg.max_sessions, 1000000);	 /* T_INT */
		CHECK(cfg.max_message_size == 2048);	 /* T_SIZE */
		CHECK(cfg.cache_time == 0);		 /* T_SECONDS0 */
		CHECK_INT(cfg.log_level, CONFIG_LOG_DEBUG); /* T_ENUM */
		CHECK_INT((int)cfg.admin_listen_len, 0);	 /* T_ADDR off */
		CHECK_STR(cfg.admin_listen_str, "off");
		CHECK(strstr(cfg.state_dir, "/st") != NULL); /* T_PATH */
		CHECK(cfg.state_dir[0] == '/');
		CHECK(cfg.dns_servers == NULL); /* F_EMPTY: the system's */
		CHECK(cfg.dns_timeout == 0.5);		 /* T_SECONDS */
		CHECK_STR(cfg.trust_anchor, bundle);	 /* T_FILE */
		CHECK_INT(cfg.mta_sts, 0);		 /* T_BOOL */
		CHECK(cfg.timing.retry_delay == 2592000); /* T_TIME */
		CHECK(cfg.mta_sts_cache_bytes == 1L << 30);
		CHECK_STR(cfg.fetch_program, "/bin/sh"); /* T_PROGRAM */
		CHECK_STR(cfg.https_ca_bundle, bundle);	 /* T_BUNDLE */
		CHECK_INT(cfg.report_enabled, 1);
		CHECK_STR(cfg.report_org, "Example Org"); /* T_TEXT */
		CHECK_STR(cfg.report_submit_str, "127.0.0.1:25"); /* T_ADDR */
	}
	config_free(&cfg);

	/* Ranges, both ends, and what is no number at all. */
	LOAD_ERR("e.ini", "[proxy]\nmax_sessions = 0\nmax_bad_commands = 1001\n"
	    "upstream_mark = -1\nconnection_cache_max = 1e3\n",
	    "F:2: [proxy] max_sessions: \"0\" is not a whole number from 1 to "
	    "1000000",
	    "F:3: [proxy] max_bad_commands: \"1001\" is not a whole number from "
	    "1 to 1000",
	    "F:4: [proxy] upstream_mark: \"-1\" is not a whole number from 1 "
	    "to 2147483647",
	    "F:5: [proxy] connection_cache_max: \"1e3\" is not a whole number "
	    "from 0 (no cache) to 100000");
	LOAD_ERR("e.ini", "[proxy]\nconnect_timeout = 0\nclient_timeout = "
	    "86401\ndrain_timeout = -1\n[policy]\nrefresh = 1.\n"
	    "fallback_ttl = 2592001\n",
	    "F:2: [proxy] connect_timeout: \"0\" is not a number of seconds > 0 "
	    "(at most 86400)",
	    "F:3: [proxy] client_timeout: \"86401\" is not a number of seconds "
	    "> 0 (at most 86400)",
	    "F:4: [proxy] drain_timeout: \"-1\" is not a number of seconds >= 0 "
	    "(at most 86400)",
	    "F:6: [policy] refresh: \"1.\" is not a positive number of seconds",
	    "F:7: [policy] fallback_ttl: \"2592001\" is not a whole number of "
	    "seconds from 1 to 2592000");
	LOAD_ERR("e.ini", "[proxy]\nmax_message_size = 0\n[policy]\n"
	    "mta_sts_cache_bytes = 1023k\n",
	    "F:2: [proxy] max_message_size: \"0\" is not a size in bytes (a "
	    "number > 0, optionally with k, m or g)",
	    "F:4: [policy] mta_sts_cache_bytes: \"1023k\" is not a size of at "
	    "least 1m (a number, optionally with k, m or g)");
	/* Words: bool, enum, version, address. */
	LOAD_ERR("e.ini", "[proxy]\nlog_format = xml\nlisten = off\n[tls]\n"
	    "max_version = 1.4\n[policy]\nmta_sts = true\n[report]\n"
	    "enabled = 1\n",
	    "F:2: [proxy] log_format: \"xml\": expected logfmt or json",
	    "F:3: [proxy] listen: invalid address \"off\": expected IPV4:PORT "
	    "or [IPV6]:PORT",
	    "F:5: [tls] max_version: \"1.4\": expected 1.0, 1.1, 1.2 or 1.3",
	    "F:7: [policy] mta_sts: \"true\": expected on or off",
	    "F:9: [report] enabled: \"1\": expected yes or no");
	/* Files: missing, not executable. */
	LOAD_ERR("e.ini", "[tls]\nca_bundle = ca.crt\n[dns]\ntrust_anchor = "
	    "none.key\n[policy]\nfetch_program = ca.crt\nmta_sts_ca_bundle = "
	    "none.crt\n",
	    "F:4: [dns] trust_anchor: T/none.key: No such file or directory",
	    "F:6: [policy] fetch_program: T/ca.crt: not an executable file",
	    "F:7: [policy] mta_sts_ca_bundle: T/none.crt: No such file or "
	    "directory");
	/* Text: one line of printable characters, at most 255 bytes. */
	memset(big, 'o', 256);
	big[256] = '\0';
	snprintf(text, sizeof(text), "[report]\norganization_name = %s\n"
	    "contact_info = a\tb\n", big);
	LOAD_ERR("e.ini", text,
	    "F:2: [report] organization_name: longer than 255 bytes",
	    "F:3: [report] contact_info: a control character");
	/* Empty values, unknown keys in each fixed section, sections. */
	LOAD_ERR("e.ini", "[proxy]\nhostname =\nlisten_on = x\n[dns]\n"
	    "server = 1.1.1.1\n[tls]\nverify = none\n[policy]\nmx = a\n"
	    "[report]\nurl = x\n[Report]\n[profile]\n",
	    "F:2: [proxy] hostname: empty value",
	    "F:3: [proxy] listen_on: unknown key",
	    "F:5: [dns] server: unknown key",
	    "F:7: [tls] verify: unknown key",
	    "F:9: [policy] mx: unknown key",
	    "F:11: [report] url: unknown key",
	    "F:12: [Report]: unknown section",
	    "F:13: [profile]: missing profile name");
}

/*
 * A 306-byte allow_clients line, refused by inih's 199-byte buffer, is
 * read whole (the central document always took such lines).
 */
static void
test_long_line(void)
{
	char line[400], text[512];
	struct config cfg;
	int i;

	strcpy(line, "allow_clients =");
	for (i = 1; strlen(line) < 290; i++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
		    " 192.0.2.%d/32,", i);
	while (strlen(line) < 306 - strlen(" ::1"))
		strcat(line, " ");
	strcat(line, " ::1");
	CHECK_INT((int)strlen(line), 306);
	snprintf(text, sizeof(text), "[tls]\nca_bundle = ca.crt\n[proxy]\n%s\n",
	    line);
	if (LOAD_OK("long.ini", text, &cfg) == 0)
		CHECK_INT(cfg.nallow_clients, i);
	config_free(&cfg);
}

static void
test_syntax_errors(void)
{
	char line[INI_LINE_MAX + 512];

	LOAD_ERR("e.ini", "[proxyy]\nlisten = nonsense\n",
	    "F:1: [proxyy]: unknown section");
	LOAD_ERR("e.ini", "[Proxy]\n", "F:1: [Proxy]: unknown section");
	LOAD_ERR("e.ini", "[proxy]\nlisen = 127.0.0.1:25\n",
	    "F:2: [proxy] lisen: unknown key");
	LOAD_ERR("e.ini", "[proxy]\nlisten = 127.0.0.1:25\n"
	    "listen = 127.0.0.1:26\n",
	    "F:3: [proxy] listen: duplicate key (first at line 2)");
	LOAD_ERR("e.ini", "[proxy]\nlisten = 127.0.0.1:25\n  127.0.0.2:25\n"
	    "  127.0.0.3:25\n",
	    "F:3: [proxy] listen: duplicate key (an indented line continues a "
	    "single value)");
	LOAD_ERR("e.ini", "[proxy]\nmax_sessions = 5\n[proxy]\nlisten = x\n",
	    "F:3: [proxy]: duplicate section (first at line 1)");
	LOAD_ERR("e.ini", "listen = 127.0.0.1:25\n[proxy]\n",
	    "F:1: listen: not in a section");
	LOAD_ERR("e.ini", "[proxy]\njust some words\n",
	    "F:2: expected \"key = value\"");
	LOAD_ERR("e.ini", "[proxy]\n= 5\n", "F:2: [proxy]: missing key name");
	LOAD_ERR("e.ini", "[proxy\nlisten = nonsense\n[dns]\ntimeout = x\n",
	    "F:1: unterminated section header",
	    "F:4: [dns] timeout: \"x\" is not a number of seconds > 0 (at most "
	    "86400)");

	/*
	 * INI_LINE_MAX (4096) bytes fit, one more does not, with the same
	 * limit and message as the central document (inih's was 199 bytes).
	 */
	memset(line, 0, sizeof(line));
	strcpy(line, "[tls]\nca_bundle = ca.crt\n;");
	memset(line + strlen(line), 'x', INI_LINE_MAX - 1);
	strcat(line, "\n");
	{
		struct config cfg;

		LOAD_OK("long.ini", line, &cfg);
		config_free(&cfg);
	}
	memset(line, 0, sizeof(line));
	strcpy(line, "[proxy]\nhostname = ");
	memset(line + strlen(line), 'a', INI_LINE_MAX + 1 -
	    strlen("hostname = "));
	strcat(line, "\nmax_sessions = 0\n");
	LOAD_ERR("e.ini", line, "F:2: line too long (max 4096 bytes)",
	    "F:3: [proxy] max_sessions: \"0\" is not a whole number from 1 to "
	    "1000000");

	/* A too-long section header: its keys are not given to another. */
	memset(line, 0, sizeof(line));
	strcpy(line, "[proxy]\n[match ");
	memset(line + strlen(line), 'a', INI_LINE_MAX);
	strcat(line, ".example]\nprofile = mandatory\nmax_sessions = 0\n");
	LOAD_ERR("e.ini", line, "F:2: line too long (max 4096 bytes)");

	/* A too-long continuation line. */
	memset(line, 0, sizeof(line));
	strcpy(line, "[proxy]\nallow_clients = 127.0.0.1\n    ");
	memset(line + strlen(line), ' ', INI_LINE_MAX);
	strcat(line, "10.0.0.1\nmax_sessions = 0\n");
	LOAD_ERR("e.ini", line, "F:3: line too long (max 4096 bytes)",
	    "F:4: [proxy] max_sessions: \"0\" is not a whole number from 1 to "
	    "1000000");

	{
		static const char nul[] = "[proxy]\nhostname = a\0b\n"
					  "max_sessions = 0\n";
		const char *path = write_file("nul.ini", "");
		struct config cfg;
		struct config_errors errs = { 0 };
		char want[PATH_MAX + 128];

		write_raw(path, nul, sizeof(nul) - 1);
		CHECK_INT(config_load(path, &cfg, &errs), -1);
		CHECK_INT(errs.n, 2);
		snprintf(want, sizeof(want), "%s:2: line contains a NUL byte",
		    path);
		if (errs.n > 0)
			CHECK_STR(errs.msg[0], want);
		config_errors_free(&errs);
		config_free(&cfg);
	}
	{
		struct config cfg;
		struct config_errors errs = { 0 };
		char path[PATH_MAX + 64], want[PATH_MAX + 128];

		snprintf(path, sizeof(path), "%s/does-not-exist.ini", tmp);
		CHECK_INT(config_load(path, &cfg, &errs), -1);
		snprintf(want, sizeof(want), "%s: No such file or directory",
		    path);
		CHECK_INT(errs.n, 1);
		if (errs.n == 1)
			CHECK_STR(errs.msg[0], want);
		CHECK(cfg.file == NULL && cfg.hostname == NULL);
		config_errors_free(&errs);
		config_free(&cfg);
	}
}

/* Line numbers stay right after multi-line values, comments and CRLF. */
static void
test_multiline(void)
{
	struct config cfg;

	LOAD_ERR("e.ini",
	    "[proxy]\n"			      /* 1 */
	    "allow_clients = 127.0.0.1,\n"    /* 2 */
	    "    10.0.0.0/8\n"		      /* 3 */
	    "    ; a comment\n"		      /* 4 */
	    "\n"			      /* 5 */
	    "    192.168.0.0/16 ; inline\n"   /* 6 */
	    "max_sessions = 0\n"	      /* 7 */
	    "[dns]\n"			      /* 8 */
	    "servers = 192.0.2.1\n"	      /* 9 */
	    "   192.0.2.2, 192.0.2.3\n"       /* 10 */
	    "   bogus\n"		      /* 11 */
	    "timeout = 0\n",		      /* 12 */
	    "F:7: [proxy] max_sessions: \"0\" is not a whole number from 1 to "
	    "1000000",
	    "F:9: [dns] servers: invalid server \"bogus\": expected "
	    "ADDRESS[:PORT] or [IPV6]:PORT",
	    "F:12: [dns] timeout: \"0\" is not a number of seconds > 0 (at most "
	    "86400)");

	if (LOAD_OK("ml.ini",
	    "\xEF\xBB\xBF[proxy]\r\n"
	    "allow_clients =\r\n"
	    "    127.0.0.1,\r\n"
	    "    ::1\r\n"
	    "[tls]\r\n"
	    "ca_bundle = ca.crt ; inline comment\r\n"
	    "[profile p]\r\n"
	    "mx = a.example\r\n"
	    "     b.example,c.example\r\n"
	    "[match example.com]\r\n"
	    "  profile = p\r\n", &cfg) == 0) {
		int i = policy_profile_find(&cfg.policy, "p");

		CHECK_INT(cfg.nallow_clients, 2);
		CHECK_STR(cfg.ca_bundle, bundle);
		CHECK(i >= 0);
		if (i >= 0) {
			CHECK_INT(cfg.policy.profiles[i].nmx, 3);
			CHECK_STR(cfg.policy.profiles[i].mx[2], "c.example");
		}
		CHECK_INT(cfg.policy.nmatches, 1);
	}
	config_free(&cfg);
}

/* Every error of a file, in line order, not just the first. */
static void
test_many_errors(void)
{
	LOAD_ERR("many.ini",
	    "[proxy]\n"				    /* 1 */
	    "listen = nowhere\n"		    /* 2 */
	    "allow_clients = 10.0.0.0/8,\n"	    /* 3 */
	    "    192.168.0.0/16\n"		    /* 4 */
	    "colour = blue\n"			    /* 5 */
	    "max_sessions = 10\n"		    /* 6 */
	    "max_sessions = 11\n"		    /* 7 */
	    "[dns]\n"				    /* 8 */
	    "timeout = soon\n"			    /* 9 */
	    "[tls]\n"				    /* 10 */
	    "ca_bundle = gone.crt\n"		    /* 11 */
	    "min_version = 1.3\n"		    /* 12 */
	    "max_version = 1.2\n"		    /* 13 */
	    "[weird]\n"				    /* 14 */
	    "x = y\n"				    /* 15 */
	    "[policy]\n"			    /* 16 */
	    "default = missing\n"		    /* 17 */
	    "[match .bad.example]\n"		    /* 18 */
	    "profile = mandatory\n"		    /* 19 */
	    "[match ok.example]\n"		    /* 20 */
	    "profile = undeclared\n"		    /* 21 */
	    "[profile p]\n"			    /* 22 */
	    "tls = sometimes\n"			    /* 23 */
	    "verify = none\n"			    /* 24 */
	    "   strict\n"			    /* 25 */
	    "oops\n",				    /* 26 */
	    "F:2: [proxy] listen: invalid address \"nowhere\": expected "
	    "IPV4:PORT or [IPV6]:PORT",
	    "F:5: [proxy] colour: unknown key",
	    "F:7: [proxy] max_sessions: duplicate key (first at line 6)",
	    "F:9: [dns] timeout: \"soon\" is not a number of seconds > 0 (at "
	    "most 86400)",
	    "F:11: [tls] ca_bundle: T/gone.crt: No such file or directory",
	    "F:12: [tls] min_version: 1.3 is above max_version 1.2",
	    "F:14: [weird]: unknown section",
	    "F:17: [policy] default: unknown profile \"missing\"",
	    "F:18: [match .bad.example]: \".bad.example\": a leading \".\" is "
	    "not allowed (\"bad.example\" covers its subdomains)",
	    "F:21: [match ok.example] profile: unknown profile \"undeclared\"",
	    "F:23: [profile p] tls: \"sometimes\": expected opportunistic, "
	    "mandatory or off",
	    "F:25: [profile p] verify: duplicate key (an indented line "
	    "continues a single value)",
	    "F:26: expected \"key = value\"");
}

/* The operations keys: admin endpoint, drain, user, per-client limit,
 * address logging. */
static void
test_operations(void)
{
	struct config cfg;
	const struct sockaddr_in6 *sin6;
	struct passwd *pw;
	uid_t uid = 0;
	gid_t gid = 0;

	if ((pw = getpwnam("nobody")) != NULL) {
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	CHECK(pw != NULL);
	if (LOAD_OK("ops.ini", "[tls]\nca_bundle = ca.crt\n"
	    "[proxy]\n"
	    "admin_listen = [::1]:9926\n"
	    "drain_timeout = 2.5\n"
	    "user = nobody\n"
	    "max_sessions_per_client = 0\n"
	    "log_addresses = hash\n"
	    "bare_line_endings = normalise\n", &cfg) == 0) {
		CHECK_STR(cfg.admin_listen_str, "[::1]:9926");
		CHECK_INT(cfg.admin_listen.ss_family, AF_INET6);
		CHECK_INT(cfg.admin_listen_len, sizeof(struct sockaddr_in6));
		sin6 = (const struct sockaddr_in6 *)&cfg.admin_listen;
		CHECK_INT(ntohs(sin6->sin6_port), 9926);
		CHECK(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
		CHECK(cfg.drain_timeout == 2.5);
		CHECK_STR(cfg.user, "nobody");
		CHECK_INT(cfg.user_uid, uid);
		CHECK_INT(cfg.user_gid, gid);
		CHECK_INT(cfg.max_sessions_per_client, 0);
		CHECK_INT(cfg.log_addresses, CONFIG_ADDR_HASH);
		CHECK_INT(cfg.bare_line_endings, CONFIG_BARE_NORMALISE);
	}
	config_free(&cfg);

	if (LOAD_OK("ops.ini", "[tls]\nca_bundle = ca.crt\n[proxy]\n"
	    "admin_listen = off\ndrain_timeout = 0\n"
	    "max_sessions_per_client = 1000000\nlog_addresses = domain\n",
	    &cfg) == 0) {
		CHECK_STR(cfg.admin_listen_str, "off");
		CHECK_INT(cfg.admin_listen_len, 0);
		CHECK(cfg.drain_timeout == 0);
		CHECK_INT(cfg.max_sessions_per_client, 1000000);
		CHECK_INT(cfg.log_addresses, CONFIG_ADDR_DOMAIN);
	}
	config_free(&cfg);
	if (LOAD_OK("ops.ini", "[tls]\nca_bundle = ca.crt\n[proxy]\n"
	    "admin_listen = 0.0.0.0:9925\ndrain_timeout = 0.00\n"
	    "log_addresses = full\nbare_line_endings = reject\n",
	    &cfg) == 0) {
		CHECK_INT(cfg.admin_listen.ss_family, AF_INET);
		CHECK(cfg.drain_timeout == 0);
		CHECK_INT(cfg.log_addresses, CONFIG_ADDR_FULL);
		CHECK_INT(cfg.bare_line_endings, CONFIG_BARE_REJECT);
	}
	config_free(&cfg);
	/* The listener moved elsewhere: the admin port is free again. */
	if (LOAD_OK("ops.ini", "[tls]\nca_bundle = ca.crt\n[proxy]\n"
	    "listen = 127.0.0.2:9925\n", &cfg) == 0)
		CHECK_STR(cfg.admin_listen_str, "127.0.0.1:9925");
	config_free(&cfg);

	LOAD_ERR("e.ini", "[proxy]\nadmin_listen = localhost:9925\n",
	    "F:2: [proxy] admin_listen: invalid address \"localhost:9925\": "
	    "expected IPV4:PORT, [IPV6]:PORT or off");
	LOAD_ERR("e.ini", "[proxy]\nadmin_listen = 127.0.0.1\n",
	    "F:2: [proxy] admin_listen: invalid address \"127.0.0.1\": "
	    "expected IPV4:PORT, [IPV6]:PORT or off");
	LOAD_ERR("e.ini", "[proxy]\nadmin_listen = OFF\n",
	    "F:2: [proxy] admin_listen: invalid address \"OFF\": expected "
	    "IPV4:PORT, [IPV6]:PORT or off");
	LOAD_ERR("e.ini", "[proxy]\nadmin_listen =\n",
	    "F:2: [proxy] admin_listen: empty value");
	LOAD_ERR("e.ini", "[proxy]\nadmin_listen = 127.0.0.1:10025\n",
	    "F:2: [proxy] admin_listen: 127.0.0.1:10025 takes the port of "
	    "listen 127.0.0.1:10025");
	LOAD_ERR("e.ini", "[proxy]\nlisten = 0.0.0.0:9925\n",
	    "F:2: [proxy] admin_listen: 127.0.0.1:9925 (the default) takes the "
	    "port of listen 0.0.0.0:9925");
	LOAD_ERR("e.ini", "[proxy]\nlisten = [::]:25\nadmin_listen = "
	    "[::1]:25\n",
	    "F:3: [proxy] admin_listen: [::1]:25 takes the port of listen "
	    "[::]:25");
	LOAD_ERR("e.ini", "[proxy]\ndrain_timeout = -1\n",
	    "F:2: [proxy] drain_timeout: \"-1\" is not a number of seconds >= 0 "
	    "(at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\ndrain_timeout = 86401\n",
	    "F:2: [proxy] drain_timeout: \"86401\" is not a number of seconds "
	    ">= 0 (at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\ndrain_timeout = 0.\n",
	    "F:2: [proxy] drain_timeout: \"0.\" is not a number of seconds >= 0 "
	    "(at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\ndrain_timeout = 30s\n",
	    "F:2: [proxy] drain_timeout: \"30s\" is not a number of seconds >= "
	    "0 (at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\nuser = mxtls-no-such-user\n",
	    "F:2: [proxy] user: unknown user \"mxtls-no-such-user\"");
	LOAD_ERR("e.ini", "[proxy]\nuser = root\n",
	    "F:2: [proxy] user: \"root\" has uid 0: name an unprivileged user");
	LOAD_ERR("e.ini", "[proxy]\nuser =\n", "F:2: [proxy] user: empty value");
	LOAD_ERR("e.ini", "[proxy]\nmax_sessions_per_client = -1\n",
	    "F:2: [proxy] max_sessions_per_client: \"-1\" is not a whole number "
	    "from 0 (no limit) to 1000000");
	LOAD_ERR("e.ini", "[proxy]\nmax_sessions_per_client = 1000001\n",
	    "F:2: [proxy] max_sessions_per_client: \"1000001\" is not a whole "
	    "number from 0 (no limit) to 1000000");
	LOAD_ERR("e.ini", "[proxy]\nlog_addresses = partial\n",
	    "F:2: [proxy] log_addresses: \"partial\": expected full, domain or "
	    "hash");
	LOAD_ERR("e.ini", "[proxy]\nlog_addresses = Full\n",
	    "F:2: [proxy] log_addresses: \"Full\": expected full, domain or "
	    "hash");
	LOAD_ERR("e.ini", "[proxy]\nbare_line_endings = normalize\n",
	    "F:2: [proxy] bare_line_endings: \"normalize\": expected reject or "
	    "normalise");
	LOAD_ERR("e.ini", "[proxy]\nbare_line_endings = Reject\n",
	    "F:2: [proxy] bare_line_endings: \"Reject\": expected reject or "
	    "normalise");
	LOAD_ERR("e.ini", "[proxy]\nbare_line_endings =\n",
	    "F:2: [proxy] bare_line_endings: empty value");
	LOAD_ERR("e.ini", "[tls]\nbare_line_endings = reject\n",
	    "F:2: [tls] bare_line_endings: unknown key");
	LOAD_ERR("e.ini", "[proxy]\nuser = nobody\nuser = nobody\n",
	    "F:3: [proxy] user: duplicate key (first at line 2)");
	LOAD_ERR("e.ini", "[tls]\nadmin_listen = off\n",
	    "F:2: [tls] admin_listen: unknown key");
}

static void
cleanup(void)
{
	int i;

	for (i = ncreated - 1; i >= 0; i--) {
		if (remove(created[i]) != 0 && errno != ENOENT)
			perror(created[i]);
		free(created[i]);
	}
	if (rmdir(tmp) != 0)
		perror(tmp);
}

/* The upstream connection cache: [proxy] connection_* keys. */
static void
test_connection_cache(void)
{
	struct config cfg;

	if (LOAD_OK("cc.ini", "[tls]\nca_bundle = ca.crt\n[proxy]\n"
	    "connection_cache_time = 2.5\nconnection_cache_max = 0\n"
	    "connection_reuse_time = 60\n", &cfg) == 0) {
		CHECK(cfg.cache_time == 2.5);
		CHECK_INT(cfg.cache_max, 0);
		CHECK(cfg.reuse_time == 60);
	}
	config_free(&cfg);
	LOAD_ERR("e.ini", "[proxy]\nconnection_cache_time = -1\n",
	    "F:2: [proxy] connection_cache_time: \"-1\" is not a number of "
	    "seconds >= 0 (at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\nconnection_reuse_time = forever\n",
	    "F:2: [proxy] connection_reuse_time: \"forever\" is not a number "
	    "of seconds >= 0 (at most 86400)");
	LOAD_ERR("e.ini", "[proxy]\nconnection_cache_max = 100001\n",
	    "F:2: [proxy] connection_cache_max: \"100001\" is not a whole "
	    "number from 0 (no cache) to 100000");
}

/* An address given as text: what config_addr_private / allow_private_mx
 * say of it.  kind: the class name or "public". */
static const char *
addr_kind(const struct config *cfg, const char *addr, int *allowed_mx)
{
	struct sockaddr_in sin = { 0 };
	struct sockaddr_in6 sin6 = { 0 };
	struct sockaddr *sa;
	const char *k;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sa = (struct sockaddr *)&sin;
	} else if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sa = (struct sockaddr *)&sin6;
	} else
		return "bad test address";
	*allowed_mx = config_mx_addr_allowed(cfg, sa);
	k = config_addr_private(sa);
	return k != NULL ? k : "public";
}

/* MX hosts on loopback, private, link-local or unspecified addresses are
 * refused unless [dns] allow_private_mx lists them. */
static void
test_private_mx(void)
{
	static const struct {
		const char *addr, *kind;
	} t[] = {
		{ "127.0.0.1", "loopback" }, { "127.255.0.9", "loopback" },
		{ "10.1.2.3", "private" }, { "172.16.0.1", "private" },
		{ "172.31.255.255", "private" }, { "172.32.0.1", "public" },
		{ "192.168.1.1", "private" }, { "169.254.1.1", "link-local" },
		{ "0.0.0.0", "unspecified" }, { "192.0.2.1", "public" },
		{ "::1", "loopback" }, { "fd00::1", "private" },
		{ "fe80::1", "link-local" }, { "::", "unspecified" },
		{ "::ffff:127.0.0.1", "loopback" }, { "2001:db8::1", "public" },
	};
	struct config cfg;
	size_t i;
	int ok;

	if (LOAD_OK("pm.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) == 0)
		for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			CHECK_STR(addr_kind(&cfg, t[i].addr, &ok), t[i].kind);
			CHECK_INT(ok, strcmp(t[i].kind, "public") == 0);
		}
	config_free(&cfg);
	if (LOAD_OK("pm.ini", "[tls]\nca_bundle = ca.crt\n[dns]\n"
	    "allow_private_mx = 127.0.0.0/8, fd00::/8\n", &cfg) == 0) {
		addr_kind(&cfg, "127.0.0.9", &ok);
		CHECK_INT(ok, 1);
		addr_kind(&cfg, "fd00::5", &ok);
		CHECK_INT(ok, 1);
		addr_kind(&cfg, "10.0.0.1", &ok);
		CHECK_INT(ok, 0);
	}
	config_free(&cfg);
	if (LOAD_OK("pm.ini", "[tls]\nca_bundle = ca.crt\n[dns]\n"
	    "allow_private_mx = yes\n", &cfg) == 0) {
		addr_kind(&cfg, "10.0.0.1", &ok);
		CHECK_INT(ok, 1);
		addr_kind(&cfg, "::1", &ok);
		CHECK_INT(ok, 1);
	}
	config_free(&cfg);
	LOAD_ERR("e.ini", "[dns]\nallow_private_mx = maybe\n",
	    "F:2: [dns] allow_private_mx: invalid network \"maybe\": expected "
	    "ADDRESS or ADDRESS/PREFIX (or \"yes\", \"no\")");
}

/*
 * [dns] dnssec: validate unless set; trust-ad only with loopback servers
 * (anyone on the path could set the AD bit of a farther one); a trust
 * anchor that cannot be read is an error of its line.
 */
static void
test_dnssec(void)
{
	struct config cfg;

	if (LOAD_OK("d.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) == 0) {
		CHECK_INT(cfg.dnssec, CONFIG_DNSSEC_VALIDATE);
		CHECK(cfg.trust_anchor == NULL);
	}
	config_free(&cfg);
	if (LOAD_OK("d.ini", "[tls]\nca_bundle = ca.crt\n[dns]\n"
	    "servers = 127.0.0.1:53, [::1]:5353\ndnssec = trust-ad\n",
	    &cfg) == 0)
		CHECK_INT(cfg.dnssec, CONFIG_DNSSEC_TRUST_AD);
	config_free(&cfg);
	if (LOAD_OK("d.ini", "[tls]\nca_bundle = ca.crt\n[dns]\n"
	    "servers = recursive\ndnssec = off\n", &cfg) == 0) {
		CHECK_INT(cfg.dnssec, CONFIG_DNSSEC_OFF);
		CHECK_STR(cfg.dns_servers, "recursive");
	}
	config_free(&cfg);
	LOAD_ERR("e.ini", "[dns]\ndnssec = maybe\n",
	    "F:2: [dns] dnssec: \"maybe\": expected validate, trust-ad or off");
	LOAD_ERR("e.ini", "[tls]\nca_bundle = ca.crt\n[dns]\n"
	    "servers = 192.0.2.53\ndnssec = trust-ad\n",
	    "F:5: [dns] dnssec: trust-ad trusts the AD bit only from "
	    "loopback servers, not 192.0.2.53:53");
	LOAD_ERR("e.ini", "[tls]\nca_bundle = ca.crt\n[dns]\n"
	    "dnssec = trust-ad\n",
	    "F:4: [dns] dnssec: trust-ad needs [dns] servers naming a "
	    "validating resolver on loopback");
	LOAD_ERR("e.ini", "[dns]\ntrust_anchor = /nonexistent/root.key\n",
	    "F:2: [dns] trust_anchor: /nonexistent/root.key: No such file or "
	    "directory");
	LOAD_ERR("e.ini", "[profile p]\ndane = sometimes\n",
	    "F:2: [profile p] dane: \"sometimes\": expected on, off or only");
}

/* [policy] mta_sts_cache_bytes: 16 MiB unless set, at least 1 MiB. */
static void
test_mta_sts_cache_bytes(void)
{
	struct config cfg;

	if (LOAD_OK("m.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) == 0)
		CHECK_INT(cfg.mta_sts_cache_bytes, 16L << 20);
	config_free(&cfg);
	if (LOAD_OK("m.ini", "[tls]\nca_bundle = ca.crt\n[policy]\n"
	    "mta_sts_cache_bytes = 64m\n", &cfg) == 0)
		CHECK_INT(cfg.mta_sts_cache_bytes, 64L << 20);
	config_free(&cfg);
	LOAD_ERR("e.ini", "[policy]\nmta_sts_cache_bytes = 512k\n",
	    "F:2: [policy] mta_sts_cache_bytes: \"512k\" is not a size of at "
	    "least 1m (a number, optionally with k, m or g)");
	LOAD_ERR("e.ini", "[policy]\nmta_sts_cache_bytes = lots\n",
	    "F:2: [policy] mta_sts_cache_bytes: \"lots\" is not a size of at "
	    "least 1m (a number, optionally with k, m or g)");
}

/* [proxy] dsn_submit: where "relayed" notices go; off by default. */
static void
test_dsn_submit(void)
{
	struct config cfg;

	if (LOAD_OK("d.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) == 0)
		CHECK_INT(cfg.dsn_submit_len, 0);
	config_free(&cfg);
	if (LOAD_OK("d.ini", "[tls]\nca_bundle = ca.crt\n[proxy]\n"
	    "dsn_submit = 127.0.0.1:25\n", &cfg) == 0) {
		CHECK(cfg.dsn_submit_len > 0);
		CHECK_STR(cfg.dsn_submit_str, "127.0.0.1:25");
	}
	config_free(&cfg);
	LOAD_ERR("e.ini", "[proxy]\ndsn_submit = mta.example:25\n",
	    "F:2: [proxy] dsn_submit: invalid address \"mta.example:25\": "
	    "expected IPV4:PORT, [IPV6]:PORT (the MTA's SMTP listener) or "
	    "off");
	LOAD_ERR("e.ini", "[proxy]\nlisten = 0.0.0.0:2525\n"
	    "dsn_submit = 127.0.0.1:2525\n",
	    "F:3: [proxy] dsn_submit: 127.0.0.1:2525 is the listen address "
	    "of mxtls itself: name the MTA's SMTP listener");
}

/*
 * [report] (TLS reporting): off by default; on only with an
 * organization_name; submitter and contact_info default from hostname.
 */
static void
test_report(void)
{
	struct config cfg;

	if (LOAD_OK("r.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) == 0) {
		CHECK_INT(cfg.report_enabled, 0);
		CHECK(cfg.report_org == NULL);
		CHECK_INT(cfg.report_submit_len, 0);
	}
	config_free(&cfg);
	if (LOAD_OK("r.ini", "[tls]\nca_bundle = ca.crt\n[proxy]\n"
	    "hostname = mta.sender.example\n[report]\nenabled = yes\n"
	    "organization_name = Sender \"X\" AG\n", &cfg) == 0) {
		CHECK_INT(cfg.report_enabled, 1);
		CHECK_STR(cfg.report_org, "Sender \"X\" AG");
		CHECK_STR(cfg.report_submitter, "mta.sender.example");
		CHECK_STR(cfg.report_contact,
		    "postmaster@mta.sender.example");
	}
	config_free(&cfg);
	if (LOAD_OK("r.ini", "[tls]\nca_bundle = ca.crt\n[report]\n"
	    "enabled = on\norganization_name = Sender\n"
	    "contact_info = tls@sender.example\nsubmitter = sender.example\n"
	    "submit = 127.0.0.1:25\n", &cfg) == 0) {
		CHECK_STR(cfg.report_contact, "tls@sender.example");
		CHECK_STR(cfg.report_submitter, "sender.example");
		CHECK_STR(cfg.report_submit_str, "127.0.0.1:25");
		CHECK(cfg.report_submit_len > 0);
	}
	config_free(&cfg);
	LOAD_ERR("e.ini", "[report]\nenabled = yes\n",
	    "F:2: [report] enabled: reports need organization_name (the "
	    "organization-name they carry): set it, or enabled = no");
	LOAD_ERR("e.ini", "[report]\nenabled = sometimes\n",
	    "F:2: [report] enabled: \"sometimes\": expected yes or no");
	LOAD_ERR("e.ini", "[report]\nsubmit = mta.example:25\n",
	    "F:2: [report] submit: invalid address \"mta.example:25\": "
	    "expected IPV4:PORT or [IPV6]:PORT (the MTA's SMTP listener)");
	LOAD_ERR("e.ini", "[proxy]\nlisten = 127.0.0.1:2525\n[report]\n"
	    "submit = 127.0.0.1:2525\n",
	    "F:4: [report] submit: 127.0.0.1:2525 is the listen address of "
	    "mxtls itself: name the MTA's SMTP listener");
	LOAD_ERR("e.ini", "[report]\nsubmitter = a@b.example\n",
	    "F:2: [report] submitter: \"a@b.example\": expected a domain "
	    "name");
	LOAD_ERR("e.ini", "[report]\nreport_to = x\n",
	    "F:2: [report] report_to: unknown key");
}

/*
 * [report] dkim_key, dkim_selector, dkim_domain: all or none (the domain
 * defaults to the submitter); the key file is read by config_load, and
 * a bad one is an error of its line.
 */
static void
test_report_dkim(void)
{
	struct config cfg;

	write_file("ed.pem", "-----BEGIN PRIVATE KEY-----\n"
	    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
	    "-----END PRIVATE KEY-----\n");
	write_file("junk.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n"
	    "-----END PRIVATE KEY-----\n");
	if (LOAD_OK("d.ini", "[tls]\nca_bundle = ca.crt\n[report]\n"
	    "submitter = mta.sender.example\ndkim_key = ed.pem\n"
	    "dkim_selector = tlsrpt\n", &cfg) == 0) {
		CHECK(cfg.dkim_key != NULL);
		CHECK_STR(cfg.dkim_selector, "tlsrpt");
		CHECK_STR(cfg.dkim_domain, "mta.sender.example");
		CHECK(cfg.dkim_key_path != NULL &&
		    strstr(cfg.dkim_key_path, "/ed.pem") != NULL);
	}
	config_free(&cfg);
	if (LOAD_OK("d.ini", "[tls]\nca_bundle = ca.crt\n[report]\n"
	    "dkim_key = ed.pem\ndkim_selector = s2024\n"
	    "dkim_domain = sender.example\n", &cfg) == 0) {
		CHECK(cfg.dkim_key != NULL);
		CHECK_STR(cfg.dkim_domain, "sender.example");
	}
	config_free(&cfg);
	if (LOAD_OK("d.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) == 0)
		CHECK(cfg.dkim_key == NULL);
	config_free(&cfg);
	LOAD_ERR("e.ini", "[report]\ndkim_key = ed.pem\n",
	    "F:2: [report] dkim_key: needs dkim_selector (the selector of the "
	    "key's DNS record, SELECTOR._domainkey.DOMAIN)");
	LOAD_ERR("e.ini", "[report]\n\ndkim_selector = tlsrpt\n",
	    "F:3: [report] dkim_selector: needs dkim_key (the private key "
	    "that signs mailed reports)");
	LOAD_ERR("e.ini", "[report]\ndkim_domain = sender.example\n",
	    "F:2: [report] dkim_domain: needs dkim_key and dkim_selector");
	LOAD_ERR("e.ini", "[report]\ndkim_key = junk.pem\n"
	    "dkim_selector = tlsrpt\n",
	    "F:2: [report] dkim_key: T/junk.pem: not a PEM private key "
	    "(unencrypted RSA or Ed25519)");
	LOAD_ERR("e.ini", "[report]\ndkim_key = ed.pem\n"
	    "dkim_selector = a;b\n",
	    "F:2: [report] dkim_key: needs dkim_selector (the selector of the "
	    "key's DNS record, SELECTOR._domainkey.DOMAIN)",
	    "F:3: [report] dkim_selector: \"a;b\": expected a domain name "
	    "(labels of letters, digits, \"-\" and \"_\")");
}

/*
 * R17-07: the MTA waits 600 s for the reply to its final dot (Postfix's
 * smtp_data_done_timeout, Exim's final_timeout).  mxtls must give up on
 * the upstream first, so that the MTA gets a 4xx from mxtls instead of
 * timing out at the same moment, and as rcpt_timeout already is for RCPT.
 */
static void
R17_07_data_done_timeout_below_the_MTAs_600_s(void)
{
	struct config cfg;

	if (LOAD_OK("dd.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) != 0)
		return;
	CHECK(cfg.timeouts.data_done < 600);
	CHECK(cfg.timeouts.data_done == 540);
	CHECK(cfg.timeouts.rcpt < 300);
	config_free(&cfg);
}

int
main(void)
{
	char templ[] = "/tmp/mxtls-test-config-XXXXXX";

	if (mkdtemp(templ) == NULL || realpath(templ, tmp) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(bundle, sizeof(bundle), "%s/ca.crt", tmp);
	write_file("ca.crt", "-----BEGIN CERTIFICATE-----\n");

	RUN(test_example);
	RUN(test_defaults);
	RUN(test_values);
	RUN(test_hostport);
	RUN(test_value_errors);
	RUN(test_policy_errors);
	RUN(test_idna);
	RUN(test_syntax_errors);
	RUN(test_long_line);
	RUN(test_key_types);
	RUN(test_multiline);
	RUN(test_many_errors);
	RUN(test_operations);
	RUN(test_connection_cache);
	RUN(test_private_mx);
	RUN(test_dnssec);
	RUN(test_mta_sts_cache_bytes);
	RUN(test_dsn_submit);
	RUN(test_report);
	RUN(test_report_dkim);
	RUN(R17_07_data_done_timeout_below_the_MTAs_600_s);
	cleanup();
	return T_DONE();
}
