/*
 * The usage texts of mxtls and its commands (usage.h).  Each command has
 * one entry; `mxtls -h` prints them all in this order and the man page
 * (docs/mxtls.8) says the same at length.
 */
#include <stdio.h>
#include <string.h>

#include "usage.h"

static const struct {
	const char *command; /* NULL: the daemon itself */
	const char *text;
} commands[] = {
	{ NULL,
	    "  mxtls [-t] -c FILE\n"
	    "      Run the proxy with the configuration FILE.  With -t, check\n"
	    "      FILE, print each error as FILE:LINE: message and exit\n"
	    "      (0: no error, 1: errors).\n" },
	{ "explain",
	    "  mxtls -c FILE explain RECIPIENT\n"
	    "      Print the effective policy for RECIPIENT and where each part\n"
	    "      of it comes from: the local config merged with the last good\n"
	    "      central policy kept in state_dir.\n" },
	{ "state",
	    "  mxtls -c FILE state\n"
	    "      List the retry records of hosts whose TLS failed (read only;\n"
	    "      the running mxtls alone writes state_dir).\n" },
	{ "report",
	    "  mxtls -c FILE report --dry-run [YYYY-MM-DD]\n"
	    "      Print the TLS reports (RFC 8460) of a day, yesterday (UTC) by\n"
	    "      default: each domain's rua and the JSON, without sending.\n" },
	{ "keygen",
	    "  mxtls keygen -o PRIVATE-KEY-FILE\n"
	    "      Make an Ed25519 key pair: print the public key for [policy]\n"
	    "      signing_key, write the private key to a new file (mode 0600).\n" },
	{ "sign-policy",
	    "  mxtls sign-policy -k PRIVATE-KEY-FILE [-o SIGNATURE-FILE] DOCUMENT\n"
	    "      Sign a central policy document: write DOCUMENT.sig (or\n"
	    "      SIGNATURE-FILE), to be served at the document's URL + \".sig\".\n" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

void
usage_write(FILE *out, const char *command, int all)
{
	size_t i;

	fputs("usage:\n", out);
	for (i = 0; i < NCOMMANDS; i++)
		if (all || (command == NULL ? commands[i].command == NULL :
		    commands[i].command != NULL &&
		    strcmp(commands[i].command, command) == 0))
			fputs(commands[i].text, out);
	if (all)
		fputs("  mxtls -h | --help\n"
		    "      This text; mxtls COMMAND --help: that command's part.\n"
		    "  mxtls -V | --version\n"
		    "      Print the version.\n"
		    "See mxtls(8).\n", out);
}

void
usage_version(void)
{
	printf("mxtls %s\n", MXTLS_VERSION);
}
