/*
 * config_load() (proxy/config.c): the configuration file, through a
 * temporary file (config_load reads a path).  The file lives in a private
 * directory that also holds a small CA bundle "ca.pem", so that inputs
 * naming it get past the file checks into the validation that follows.
 * Invariants: success and failure are exclusive (success: no errors;
 * failure: at least one, each "FILE:LINE: message" with FILE the path
 * given), a loaded config is self-consistent (the default profile and
 * every match's profile exist, versions ordered), and the lookups and
 * accessors of a loaded config work on it; no leaks (ASan).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static char dir[64];
static char path[128];

static void
setup(void)
{
	const char *t = getenv("TMPDIR");
	char ca[160];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/mxtls-fuzz-config.XXXXXX",
	    t != NULL && t[0] == '/' && strlen(t) < 32 ? t : "/tmp");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/mxtls.ini", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	if ((f = fopen(ca, "w")) == NULL)
		abort();
	fputs("-----BEGIN CERTIFICATE-----\nnot really\n"
	    "-----END CERTIFICATE-----\n", f);
	fclose(f);
}

static void
cleanup(void)
{
	char ca[160];

	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	unlink(path);
	unlink(ca);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setup();
	atexit(cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct config_errors errs;
	struct policy_decision d;
	FILE *f;
	int rc, i;
	size_t plen = strlen(path);
	static const char *const rcpts[] = { "a@example.com", "example.com",
		"user@Sub.Example.Org", "x@bücher.example", "@", "" };

	if ((f = fopen(path, "w")) == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);

	memset(&errs, 0, sizeof(errs));
	rc = config_load(path, &cfg, &errs);
	if (rc != 0) {
		FUZZ_CHECK(rc == -1, "rc %d", rc);
		FUZZ_CHECK(errs.n >= 1, "failure without an error");
		for (i = 0; i < errs.n; i++)
			FUZZ_CHECK(strncmp(errs.msg[i], path, plen) == 0 &&
			    errs.msg[i][plen] == ':',
			    "error not \"FILE:LINE: ...\": %s", errs.msg[i]);
		config_errors_free(&errs);
		return 0;
	}
	FUZZ_CHECK(errs.n == 0, "success with %d errors", errs.n);
	FUZZ_CHECK(cfg.policy.nprofiles >= 2 &&
	    cfg.policy.nprofiles <= POLICY_PROFILES_MAX, "nprofiles %d",
	    cfg.policy.nprofiles);
	FUZZ_CHECK(cfg.policy.default_profile >= 0 &&
	    cfg.policy.default_profile < cfg.policy.nprofiles,
	    "default profile %d", cfg.policy.default_profile);
	for (i = 0; i < cfg.policy.nmatches; i++)
		FUZZ_CHECK(cfg.policy.matches[i].profile >= 0 &&
		    cfg.policy.matches[i].profile < cfg.policy.nprofiles,
		    "match %d names profile %d", i,
		    cfg.policy.matches[i].profile);
	for (i = 0; i < cfg.policy.nprofiles; i++) {
		const struct policy_profile *p = &cfg.policy.profiles[i];

		FUZZ_CHECK(config_profile_min_version(&cfg, p) <=
		    config_profile_max_version(&cfg, p),
		    "profile %s: min_version above max_version", p->name);
		(void)config_profile_ciphers(&cfg, p);
		(void)config_profile_ca_bundle(&cfg, p);
	}
	FUZZ_CHECK(cfg.nallow_clients >= 0 &&
	    cfg.nallow_clients <= CONFIG_CIDR_MAX, "nallow_clients %d",
	    cfg.nallow_clients);
	for (i = 0; i < cfg.nallow_clients; i++)
		FUZZ_CHECK(cfg.allow_clients[i].prefix >= 0 &&
		    cfg.allow_clients[i].prefix <=
		    (cfg.allow_clients[i].family == AF_INET ? 32 : 128),
		    "allow_clients prefix %d", cfg.allow_clients[i].prefix);
	for (i = 0; i < (int)(sizeof(rcpts) / sizeof(rcpts[0])); i++) {
		policy_lookup(&cfg.policy, rcpts[i], &d);
		FUZZ_CHECK(d.profile != NULL, "no profile for %s", rcpts[i]);
	}
	config_free(&cfg);
	config_errors_free(&errs);
	return 0;
}
