/*
 * Not a fake but what the tests with fakes share: a runtime (the config
 * and what is built from it) from a config text, as the daemon loads
 * one from its file.  Run from the repository root: the CA bundle is
 * ca-bundles/'s.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fakes.h"

struct runtime *
fake_runtime(const char *dir, const char *name, const char *extra)
{
	char path[PATH_MAX + 64], bundle[PATH_MAX];
	struct runtime *rt;
	FILE *f;

	if (realpath("ca-bundles/ca-certificates.crt", bundle) == NULL) {
		perror("ca-bundles/ca-certificates.crt");
		exit(2);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(2);
	}
	fprintf(f, "[proxy]\nhostname = mxtls.test\nstate_dir = %s\n"
	    "[tls]\nca_bundle = %s\n%s", dir, bundle, extra);
	fclose(f);
	/* No loop: no DNS channel (the fake resolver needs none). */
	if ((rt = runtime_load(NULL, path, stderr)) == NULL)
		exit(2);
	unlink(path);
	return rt;
}

void
fake_runtimes(const char *test, struct runtime **opp, struct runtime **mand)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "/tmp/mxtls-%s.XXXXXX", test);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	*opp = fake_runtime(dir, "opportunistic.ini", "");
	*mand = fake_runtime(dir, "mandatory.ini",
	    "[policy]\ndefault = mandatory\n");
	rmdir(dir);
}
