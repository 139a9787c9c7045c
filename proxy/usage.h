/*
 * The command line's usage, written once: `mxtls -h` prints every
 * command's part, `mxtls COMMAND --help` (and a usage error) that
 * command's part alone, so the two can never disagree.
 */
#ifndef MXTLS_USAGE_H
#define MXTLS_USAGE_H

#include <stdio.h>

/* The version comes from the Makefile (VERSION); "unknown" elsewhere. */
#ifndef MXTLS_VERSION
#define MXTLS_VERSION "unknown"
#endif

/*
 * Write the usage of command (NULL: the daemon; "explain", "state",
 * "keygen", "sign-policy") or, with all set, of every command and the
 * options, to out.
 */
void usage_write(FILE *out, const char *command, int all);

/* "mxtls VERSION\n" to stdout. */
void usage_version(void);

#endif
