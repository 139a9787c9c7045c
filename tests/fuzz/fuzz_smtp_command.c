/*
 * The downstream command parsers of proxy/smtp.c: smtp_line_length(),
 * smtp_parse_command() and smtp_parse_path() (MAIL FROM / RCPT TO).
 * The input is one command line as the MTA (or anyone allowed to
 * connect) sends it.  Invariants:
 *   - smtp_line_length() finds exactly the first LF within the limit;
 *   - the verb and argument lie inside the line, the verb holds no space,
 *     a known command's verb is its name in any case, the argument has no
 *     trailing CR, LF or space;
 *   - a parsed path fits the buffer, is NUL-terminated, holds no control
 *     character, no unquoted space or angle bracket, at most
 *     SMTP_PATH_MAX - 2 bytes; parameters lie inside the argument, with
 *     no leading or trailing space and, for a real line, no control
 *     byte (they are forwarded upstream); a failure always says why.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "smtp.h"

static void
check_path(const char *arg, size_t arglen, const char *prefix, int line)
{
	char addr[SMTP_PATH_MAX + 1];
	const char *params = NULL, *err = NULL, *dom;
	size_t plen = 99, alen, i;
	int quoted = 0, rc;

	memset(addr, 'Z', sizeof(addr));
	rc = smtp_parse_path(arg, arglen, prefix, addr, sizeof(addr), &params,
	    &plen, &err);
	FUZZ_CHECK(params != NULL, "params left NULL");
	if (rc != 0) {
		FUZZ_CHECK(rc == -1 && err != NULL && err[0] != '\0',
		    "failure without a reason");
		FUZZ_CHECK(plen == 0, "params set on failure");
		return;
	}
	alen = strnlen(addr, sizeof(addr));
	FUZZ_CHECK(alen < sizeof(addr), "address not terminated");
	FUZZ_CHECK(alen <= SMTP_PATH_MAX - 2, "address of %zu bytes", alen);
	for (i = 0; i < alen; i++) {
		unsigned char c = (unsigned char)addr[i];

		FUZZ_CHECK(c >= 0x20 && c != 0x7f,
		    "control byte 0x%02x in the address", c);
		if (quoted) {
			if (c == '\\')
				i++;
			else if (c == '"')
				quoted = 0;
			continue;
		}
		if (c == '"')
			quoted = 1;
		FUZZ_CHECK(c != '<' && c != '>' && c != ' ',
		    "unquoted '%c' in the address", c);
	}
	FUZZ_CHECK(!quoted, "unterminated quote in the address");
	dom = smtp_addr_domain(addr);
	if (strchr(addr, '@') == NULL)
		FUZZ_CHECK(dom[0] == '\0', "a domain without an '@'");
	else
		FUZZ_CHECK(dom == strrchr(addr, '@') + 1, "domain not after "
		    "the last '@'");
	if (plen > 0) {
		FUZZ_CHECK(params > arg && params + plen <= arg + arglen,
		    "params outside the argument");
		FUZZ_CHECK(params[0] != ' ' && params[plen - 1] != ' ',
		    "params not trimmed");
		FUZZ_CHECK(params[-1] == ' ', "params not after a space");
		/*
		 * The session forwards MAIL and RCPT parameters upstream as
		 * they are: a CR (or any control byte) in them would reach
		 * the upstream server inside a command line, where a server
		 * that ends lines at a bare CR reads a second command.
		 */
		for (i = 0; line && i < plen; i++) {
			unsigned char c = (unsigned char)params[i];

			FUZZ_CHECK(c >= 0x20 && c != 0x7f, "control byte "
			    "0x%02x at offset %zu of the %s parameters (the "
			    "session forwards them upstream, up to a NUL)", c,
			    i, prefix);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct smtp_command c;
	ssize_t n;
	int bare = -1;
	const char *lf, *name;

	/* The line splitter, as the session uses it. */
	n = smtp_line_length(line, size, SMTP_CMD_LINE_MAX, &bare);
	lf = memchr(line, '\n', size < SMTP_CMD_LINE_MAX ? size :
	    SMTP_CMD_LINE_MAX);
	if (lf != NULL) {
		FUZZ_CHECK(n == lf - line + 1, "line length %zd, LF at %zd",
		    n, lf - line);
		FUZZ_CHECK(bare == (lf == line || lf[-1] != '\r'),
		    "bare_lf %d", bare);
	} else
		FUZZ_CHECK(n == (size >= SMTP_CMD_LINE_MAX ? -1 : 0),
		    "line length %zd without a LF in %zu", n, size);

	/*
	 * The command: pass 0 on the whole input (the parser must stay in
	 * bounds whatever it gets), pass 1 on the first line as the session
	 * hands it over (up to and including the LF), with the stricter
	 * checks a real line allows.
	 */
	for (int pass = 0; pass < 2; pass++) {
		size_t len = pass == 0 ? size : (size_t)n;

		if (pass == 1 && n <= 0)
			break;
		smtp_parse_command(line, len, &c);
		FUZZ_CHECK(c.verb == line && c.verblen <= len, "verb outside");
		FUZZ_CHECK(memchr(c.verb, ' ', c.verblen) == NULL,
		    "space in the verb");
		FUZZ_CHECK(c.arg >= c.verb + c.verblen &&
		    c.arg + c.arglen <= line + len, "arg outside");
		if (c.arglen > 0)
			FUZZ_CHECK(c.arg[c.arglen - 1] != ' ', "arg not trimmed");
		if (pass == 1)
			FUZZ_CHECK(memchr(c.verb, '\n', c.verblen) == NULL &&
			    memchr(c.arg, '\n', c.arglen) == NULL,
			    "the line's LF left in the command");
		name = smtp_cmd_name(c.cmd);
		FUZZ_CHECK(name != NULL, "no name for %d", c.cmd);
		if (c.cmd != SMTP_CMD_UNKNOWN)
			FUZZ_CHECK(strlen(name) == c.verblen &&
			    strncasecmp(name, c.verb, c.verblen) == 0,
			    "verb is not %s", name);
		check_path(c.arg, c.arglen, "FROM:", pass == 1);
		check_path(c.arg, c.arglen, "TO:", pass == 1);
	}
	return 0;
}
