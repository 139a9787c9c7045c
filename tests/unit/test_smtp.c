/*
 * Unit tests for proxy/smtp.c: command lines, envelope paths, the reply
 * parser (including every chunk split), EHLO keywords, the DATA
 * end-of-message scanner (including the SMTP smuggling sequences) and the
 * bare CR/LF normaliser (exhaustively over short inputs and every split).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"
#include "t.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- smtp_line_length ---- */

static void
test_line_length(void)
{
	static const struct {
		const char *in;
		size_t max;
		ssize_t want;
		int bare_lf;
	} t[] = {
		{ "", 10, 0, 0 },
		{ "abc", 10, 0, 0 },
		{ "abc\r", 10, 0, 0 },
		{ "abc\r\n", 10, 5, 0 },
		{ "abc\r\nrest", 10, 5, 0 },
		{ "abc\n", 10, 4, 1 },
		{ "\n", 10, 1, 1 },
		{ "\r\n", 10, 2, 0 },
		{ "a\rb\n", 10, 4, 1 },
		{ "abcd", 4, -1, 0 },      /* max seen, no LF */
		{ "abcdef", 4, -1, 0 },
		{ "abc\n", 4, 4, 1 },      /* LF is the max-th byte */
		{ "ab\r\n", 4, 4, 0 },
		{ "abcd\n", 4, -1, 0 },    /* LF just past max */
	};
	size_t i;
	int bare;

	for (i = 0; i < NELEM(t); i++) {
		bare = -1;
		CHECK_INT(smtp_line_length(t[i].in, strlen(t[i].in), t[i].max,
		    &bare), t[i].want);
		if (t[i].want > 0)
			CHECK_INT(bare, t[i].bare_lf);
	}
}

/* ---- smtp_parse_command ---- */

static void
test_cmd_every_verb_every_case(void)
{
	static const struct {
		const char *upper, *lower, *mixed;
		enum smtp_cmd cmd;
	} t[] = {
		{ "HELO", "helo", "HeLo", SMTP_CMD_HELO },
		{ "EHLO", "ehlo", "eHlO", SMTP_CMD_EHLO },
		{ "MAIL", "mail", "Mail", SMTP_CMD_MAIL },
		{ "RCPT", "rcpt", "rCpT", SMTP_CMD_RCPT },
		{ "DATA", "data", "DaTa", SMTP_CMD_DATA },
		{ "RSET", "rset", "RsEt", SMTP_CMD_RSET },
		{ "NOOP", "noop", "nOoP", SMTP_CMD_NOOP },
		{ "QUIT", "quit", "Quit", SMTP_CMD_QUIT },
		{ "VRFY", "vrfy", "VrFy", SMTP_CMD_VRFY },
		{ "EXPN", "expn", "eXpN", SMTP_CMD_EXPN },
		{ "HELP", "help", "HeLP", SMTP_CMD_HELP },
		{ "STARTTLS", "starttls", "StartTls", SMTP_CMD_STARTTLS },
		{ "AUTH", "auth", "AuTh", SMTP_CMD_AUTH },
		{ "BDAT", "bdat", "bDaT", SMTP_CMD_BDAT },
	};
	struct smtp_command c;
	const char *forms[3];
	char line[64];
	size_t i, f;

	for (i = 0; i < NELEM(t); i++) {
		forms[0] = t[i].upper;
		forms[1] = t[i].lower;
		forms[2] = t[i].mixed;
		for (f = 0; f < 3; f++) {
			/* Bare verb, with CRLF, and with an argument. */
			smtp_parse_command(forms[f], strlen(forms[f]), &c);
			CHECK_INT(c.cmd, t[i].cmd);
			CHECK_INT(c.verblen, strlen(forms[f]));
			CHECK_INT(c.arglen, 0);
			snprintf(line, sizeof(line), "%s\r\n", forms[f]);
			smtp_parse_command(line, strlen(line), &c);
			CHECK_INT(c.cmd, t[i].cmd);
			CHECK_INT(c.arglen, 0);
			snprintf(line, sizeof(line), "%s x y\r\n", forms[f]);
			smtp_parse_command(line, strlen(line), &c);
			CHECK_INT(c.cmd, t[i].cmd);
			CHECK(c.verb == line);
			CHECK_INT(c.arglen, 3);
			CHECK(memcmp(c.arg, "x y", 3) == 0);
		}
		CHECK_STR(smtp_cmd_name(t[i].cmd), t[i].upper);
	}
	CHECK_STR(smtp_cmd_name(SMTP_CMD_UNKNOWN), "UNKNOWN");
	CHECK_STR(smtp_cmd_name((enum smtp_cmd)999), "UNKNOWN");
}

static void
test_cmd_arguments(void)
{
	static const struct {
		const char *line;
		enum smtp_cmd cmd;
		const char *verb, *arg;
	} t[] = {
		{ "MAIL FROM:<a@b>\r\n", SMTP_CMD_MAIL, "MAIL", "FROM:<a@b>" },
		{ "MAIL FROM:<a@b>", SMTP_CMD_MAIL, "MAIL", "FROM:<a@b>" },
		{ "MAIL FROM:<a@b>   \r\n", SMTP_CMD_MAIL, "MAIL",
		    "FROM:<a@b>" },
		{ "RCPT TO:<x@y> NOTIFY=NEVER\r\n", SMTP_CMD_RCPT, "RCPT",
		    "TO:<x@y> NOTIFY=NEVER" },
		/* Only one separating space is eaten. */
		{ "MAIL  FROM:<a@b>\r\n", SMTP_CMD_MAIL, "MAIL", " FROM:<a@b>" },
		{ "EHLO client.example\n", SMTP_CMD_EHLO, "EHLO",
		    "client.example" },
		{ "QUIT \r\n", SMTP_CMD_QUIT, "QUIT", "" },
		{ "BDAT 100 LAST\r\n", SMTP_CMD_BDAT, "BDAT", "100 LAST" },
		{ "AUTH PLAIN AGFAAGI=\r\n", SMTP_CMD_AUTH, "AUTH",
		    "PLAIN AGFAAGI=" },
		{ "\r\n", SMTP_CMD_UNKNOWN, "", "" },
		{ "", SMTP_CMD_UNKNOWN, "", "" },
		{ " NOOP\r\n", SMTP_CMD_UNKNOWN, "", "NOOP" },
	};
	struct smtp_command c;
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		smtp_parse_command(t[i].line, strlen(t[i].line), &c);
		CHECK_INT(c.cmd, t[i].cmd);
		CHECK_INT(c.verblen, strlen(t[i].verb));
		CHECK(memcmp(c.verb, t[i].verb, c.verblen) == 0);
		CHECK_INT(c.arglen, strlen(t[i].arg));
		CHECK(memcmp(c.arg, t[i].arg, c.arglen) == 0);
	}
}

static void
test_cmd_unknown_verbs(void)
{
	static const char *t[] = {
		"XCLIENT ADDR=1.2.3.4\r\n", "HELOX\r\n", "HEL\r\n",
		"STARTTLSX\r\n", "MAIL:FROM:<a@b>\r\n", "DATA\tx\r\n",
		"GET / HTTP/1.0\r\n",
	};
	struct smtp_command c;
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		smtp_parse_command(t[i], strlen(t[i]), &c);
		CHECK_INT(c.cmd, SMTP_CMD_UNKNOWN);
	}
}

/* ---- smtp_parse_path ---- */

static void
test_path_valid(void)
{
	static const struct {
		const char *arg, *prefix, *addr, *params;
	} t[] = {
		{ "FROM:<a@b>", "FROM:", "a@b", "" },
		{ "from:<a@b>", "FROM:", "a@b", "" },
		{ "From:<A@B.example>", "FROM:", "A@B.example", "" },
		{ "TO:<x@y>", "TO:", "x@y", "" },
		{ "to:<x@y>", "TO:", "x@y", "" },
		/* Null sender. */
		{ "FROM:<>", "FROM:", "", "" },
		{ "FROM:<> SIZE=10", "FROM:", "", "SIZE=10" },
		/* Spaces between the colon and '<'. */
		{ "FROM: <a@b>", "FROM:", "a@b", "" },
		{ "TO:   <x@y>", "TO:", "x@y", "" },
		/* Parameters. */
		{ "FROM:<a@b> SIZE=1000 BODY=8BITMIME", "FROM:", "a@b",
		    "SIZE=1000 BODY=8BITMIME" },
		{ "FROM:<a@b>   SMTPUTF8   ", "FROM:", "a@b", "SMTPUTF8" },
		{ "FROM:<a@b>   ", "FROM:", "a@b", "" },
		{ "TO:<x@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y", "TO:",
		    "x@y", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y" },
		/* Quoted local parts keep their quotes, spaces and '>'. */
		{ "TO:<\"a b\"@x>", "TO:", "\"a b\"@x", "" },
		{ "TO:<\"a>b\"@x> P=1", "TO:", "\"a>b\"@x", "P=1" },
		{ "TO:<\"a\\\"b\"@x>", "TO:", "\"a\\\"b\"@x", "" },
		{ "TO:<\"a@b\"@x>", "TO:", "\"a@b\"@x", "" },
		/* Source routes are dropped. */
		{ "TO:<@a,@b:user@dom>", "TO:", "user@dom", "" },
		{ "TO:<@relay.example:user@dom> X=1", "TO:", "user@dom",
		    "X=1" },
		{ "TO:<@[192.0.2.1]:user@dom>", "TO:", "user@dom", "" },
		{ "TO:<@[IPv6:2001:db8::1]:user@dom>", "TO:", "user@dom", "" },
		/* Address literals and UTF-8 (SMTPUTF8). */
		{ "TO:<user@[192.0.2.1]>", "TO:", "user@[192.0.2.1]", "" },
		{ "TO:<j\xc3\xb6rg@b\xc3\xbc\x63her.example>", "TO:",
		    "j\xc3\xb6rg@b\xc3\xbc\x63her.example", "" },
		/* No domain: postmaster is the RFC's own example. */
		{ "TO:<postmaster>", "TO:", "postmaster", "" },
	};
	char addr[SMTP_PATH_MAX + 1];
	const char *params, *err;
	size_t i, plen;
	int rc;

	for (i = 0; i < NELEM(t); i++) {
		err = NULL;
		params = NULL;
		rc = smtp_parse_path(t[i].arg, strlen(t[i].arg), t[i].prefix,
		    addr, sizeof(addr), &params, &plen, &err);
		CHECK_INT(rc, 0);
		if (rc != 0) {
			fprintf(stderr, "  case %zu: %s: %s\n", i, t[i].arg,
			    err);
			continue;
		}
		CHECK_STR(addr, t[i].addr);
		CHECK_INT(plen, strlen(t[i].params));
		CHECK(params != NULL &&
		    memcmp(params, t[i].params, plen) == 0);
	}
}

static void
test_path_invalid(void)
{
	static const struct {
		const char *arg, *prefix;
	} t[] = {
		{ "", "FROM:" },
		{ "FROM", "FROM:" },
		{ "FROM:", "FROM:" },
		{ "TO:<x@y>", "FROM:" },      /* wrong prefix */
		{ "FROM:<a@b>", "TO:" },
		{ "FRO:<a@b>", "FROM:" },
		{ "FROM:a@b", "FROM:" },      /* no brackets */
		{ "FROM: a@b", "FROM:" },
		{ "FROM:<a@b", "FROM:" },     /* no closing bracket */
		{ "FROM:a@b>", "FROM:" },
		{ "FROM:<a@b>SIZE=1", "FROM:" }, /* no space before params */
		{ "FROM:<a b@c>", "FROM:" },  /* unquoted space */
		{ "FROM:<a<b@c>", "FROM:" },
		{ "FROM:<\"a b@c>", "FROM:" }, /* unterminated quote */
		{ "FROM:<\"a\\\">", "FROM:" },
		{ "FROM:<a\x01@b>", "FROM:" }, /* control characters */
		{ "FROM:<a\t@b>", "FROM:" },
		{ "FROM:<a\r@b>", "FROM:" },
		{ "FROM:<a\n@b>", "FROM:" },
		{ "FROM:<a\x7f@b>", "FROM:" },
		{ "FROM:<\"a\x01\"@b>", "FROM:" },
		{ "FROM:<\"a\\\x01\"@b>", "FROM:" },
		{ "TO:<@a,@b>", "TO:" },      /* route without mailbox */
		{ "TO:<@a:>", "TO:" },
		{ "TO:<@a\"x\":u@d>", "TO:" },
	};
	char addr[SMTP_PATH_MAX + 1];
	const char *params, *err;
	size_t i, plen;

	for (i = 0; i < NELEM(t); i++) {
		err = NULL;
		if (smtp_parse_path(t[i].arg, strlen(t[i].arg), t[i].prefix,
		    addr, sizeof(addr), &params, &plen, &err) != -1) {
			fprintf(stderr, "  case %zu accepted: %s\n", i,
			    t[i].arg);
			CHECK(0);
			continue;
		}
		CHECK(err != NULL && strlen(err) > 0 && strlen(err) < 60);
	}
}

/* The arg length is what counts, not a terminating NUL. */
static void
test_path_uses_arglen(void)
{
	char addr[SMTP_PATH_MAX + 1];
	const char *params, *err;
	size_t plen;

	CHECK_INT(smtp_parse_path("FROM:<a@b> X=1 junk", 14, "FROM:", addr,
	    sizeof(addr), &params, &plen, &err), 0);
	CHECK_STR(addr, "a@b");
	CHECK_INT(plen, 3);
	CHECK(memcmp(params, "X=1", 3) == 0);
	CHECK_INT(smtp_parse_path("FROM:<a@b>", 9, "FROM:", addr,
	    sizeof(addr), &params, &plen, &err), -1);
}

static void
test_path_length_limit(void)
{
	char arg[600], addr[SMTP_PATH_MAX + 1], small[4];
	const char *params, *err;
	size_t plen, n;

	/* 254 bytes of address plus the brackets is the 256 maximum. */
	memcpy(arg, "TO:<", 4);
	memset(arg + 4, 'x', 200);
	arg[204] = '@';
	memset(arg + 205, 'd', 53);
	arg[258] = '>';
	n = 259;
	CHECK_INT(smtp_parse_path(arg, n, "TO:", addr, sizeof(addr), &params,
	    &plen, &err), 0);
	CHECK_INT(strlen(addr), 254);

	memset(arg, 'x', sizeof(arg));
	memcpy(arg, "TO:<", 4);
	arg[3 + 257 - 1] = '>';
	err = NULL;
	CHECK_INT(smtp_parse_path(arg, 3 + 257, "TO:", addr, sizeof(addr),
	    &params, &plen, &err), -1);
	CHECK(err != NULL);
	/* A long line without any '>' fails too. */
	CHECK_INT(smtp_parse_path(arg, sizeof(arg), "TO:", addr, sizeof(addr),
	    &params, &plen, &err), -1);

	/* The caller's buffer is respected. */
	CHECK_INT(smtp_parse_path("TO:<abc>", 8, "TO:", small, sizeof(small),
	    &params, &plen, &err), 0);
	CHECK_STR(small, "abc");
	CHECK_INT(smtp_parse_path("TO:<abcd>", 9, "TO:", small, sizeof(small),
	    &params, &plen, &err), -1);
}

static void
test_addr_domain(void)
{
	CHECK_STR(smtp_addr_domain("a@b.example"), "b.example");
	CHECK_STR(smtp_addr_domain("\"a@b\"@c.example"), "c.example");
	CHECK_STR(smtp_addr_domain("postmaster"), "");
	CHECK_STR(smtp_addr_domain(""), "");
	CHECK_STR(smtp_addr_domain("a@"), "");
}

/* ---- smtp_reply_feed ---- */

/*
 * Feed s[0..len) as a caller would: it keeps unconsumed bytes and offers
 * them again with the next chunk.  cuts[] are the chunk ends.
 */
static enum smtp_reply_status
feed_cuts(struct smtp_reply_parser *p, const char *s, size_t len,
    const size_t *cuts, size_t ncuts, size_t *used)
{
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	size_t k, c, e;

	smtp_reply_parser_init(p);
	*used = 0;
	for (k = 0; k <= ncuts; k++) {
		e = k < ncuts ? cuts[k] : len;
		c = (size_t)-1;
		st = smtp_reply_feed(p, s + *used, e - *used, &c);
		if (c > e - *used) {
			fprintf(stderr, "  consumed %zu of %zu\n", c,
			    e - *used);
			CHECK(0);
			return SMTP_REPLY_ERROR;
		}
		*used += c;
		if (st != SMTP_REPLY_MORE)
			break;
	}
	return st;
}

static enum smtp_reply_status
feed_all(struct smtp_reply_parser *p, const char *s, size_t *used)
{
	return feed_cuts(p, s, strlen(s), NULL, 0, used);
}

/* Line i of r has text want (NULL: no such line). */
static void
check_line(const struct smtp_reply *r, int i, const char *want)
{
	const char *text = NULL;
	size_t tl = 0;
	int rc = smtp_reply_line(r, i, &text, &tl);

	if (want == NULL) {
		CHECK_INT(rc, -1);
		return;
	}
	CHECK_INT(rc, 0);
	if (rc != 0)
		return;
	CHECK_INT(tl, strlen(want));
	CHECK(text != NULL && tl == strlen(want) &&
	    memcmp(text, want, tl) == 0);
}

static void
test_reply_single_line(void)
{
	struct smtp_reply_parser p;
	const char *s = "250 OK\r\n";
	size_t used;

	CHECK_INT(feed_all(&p, s, &used), SMTP_REPLY_DONE);
	CHECK_INT(used, 8);
	CHECK_INT(p.reply.code, 250);
	CHECK_INT(p.reply.nlines, 1);
	CHECK_INT(p.reply.textlen, 8);
	CHECK(memcmp(p.reply.text, s, 8) == 0);
	CHECK(p.err == NULL);
	check_line(&p.reply, 0, "OK");
	check_line(&p.reply, 1, NULL);
	check_line(&p.reply, -1, NULL);
}

static void
test_reply_code_only(void)
{
	struct smtp_reply_parser p;
	size_t used;

	CHECK_INT(feed_all(&p, "354\r\n", &used), SMTP_REPLY_DONE);
	CHECK_INT(used, 5);
	CHECK_INT(p.reply.code, 354);
	check_line(&p.reply, 0, "");
	CHECK_INT(feed_all(&p, "250-\r\n250 \r\n", &used), SMTP_REPLY_DONE);
	CHECK_INT(p.reply.nlines, 2);
	check_line(&p.reply, 0, "");
	check_line(&p.reply, 1, "");
	CHECK_INT(feed_all(&p, "250-x\r\n250 \r\n", &used), SMTP_REPLY_DONE);
	check_line(&p.reply, 0, "x");
	check_line(&p.reply, 1, "");
}

static const char ehlo_reply[] =
    "250-mx.example Hello STARTTLS\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 52428800\r\n"
    "250-8BITMIME\r\n"
    "250-STARTTLS\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250 SMTPUTF8\r\n";

static void
test_reply_multi_line(void)
{
	static const char *lines[] = {
		"mx.example Hello STARTTLS", "PIPELINING", "SIZE 52428800",
		"8BITMIME", "STARTTLS", "ENHANCEDSTATUSCODES", "SMTPUTF8",
	};
	struct smtp_reply_parser p;
	size_t used, i;

	CHECK_INT(feed_all(&p, ehlo_reply, &used), SMTP_REPLY_DONE);
	CHECK_INT(used, strlen(ehlo_reply));
	CHECK_INT(p.reply.code, 250);
	CHECK_INT(p.reply.nlines, 7);
	CHECK_INT(p.reply.textlen, strlen(ehlo_reply));
	CHECK(memcmp(p.reply.text, ehlo_reply, p.reply.textlen) == 0);
	for (i = 0; i < NELEM(lines); i++)
		check_line(&p.reply, (int)i, lines[i]);
	check_line(&p.reply, 7, NULL);
}

static void
test_reply_bare_lf_normalised(void)
{
	static const char in[] = "250-a\n250-b\r\n250 c\n";
	static const char want[] = "250-a\r\n250-b\r\n250 c\r\n";
	struct smtp_reply_parser p;
	size_t used;

	CHECK_INT(feed_all(&p, in, &used), SMTP_REPLY_DONE);
	CHECK_INT(used, strlen(in));
	CHECK_INT(p.reply.nlines, 3);
	CHECK_INT(p.reply.textlen, strlen(want));
	CHECK(memcmp(p.reply.text, want, strlen(want)) == 0);
}

/* Compare a reply against the one parsed from a single chunk. */
static void
check_same_reply(const struct smtp_reply_parser *a,
    const struct smtp_reply_parser *b)
{
	CHECK_INT(a->reply.code, b->reply.code);
	CHECK_INT(a->reply.nlines, b->reply.nlines);
	CHECK_INT(a->reply.textlen, b->reply.textlen);
	CHECK(memcmp(a->reply.text, b->reply.text, a->reply.textlen) == 0);
}

static void
test_reply_split_everywhere(void)
{
	static const char *inputs[] = {
		ehlo_reply,
		"220 mx.example ESMTP\r\nEXTRA\r\n",
		"250-a\n250 b\nafter",
		"354\r\n",
	};
	struct smtp_reply_parser whole, p;
	size_t in, k, len, used0, used, cuts[4096];
	enum smtp_reply_status st0, st;

	for (in = 0; in < NELEM(inputs); in++) {
		len = strlen(inputs[in]);
		st0 = feed_all(&whole, inputs[in], &used0);
		CHECK_INT(st0, SMTP_REPLY_DONE);

		/* One byte at a time. */
		for (k = 0; k < len; k++)
			cuts[k] = k + 1;
		st = feed_cuts(&p, inputs[in], len, cuts, len, &used);
		CHECK_INT(st, st0);
		CHECK_INT(used, used0);
		check_same_reply(&p, &whole);

		/* Two chunks, split at every point. */
		for (k = 0; k <= len; k++) {
			cuts[0] = k;
			st = feed_cuts(&p, inputs[in], len, cuts, 1, &used);
			CHECK_INT(st, st0);
			CHECK_INT(used, used0);
			check_same_reply(&p, &whole);
		}
	}
}

static void
test_reply_incomplete_left_unconsumed(void)
{
	struct smtp_reply_parser p;
	size_t c;

	smtp_reply_parser_init(&p);
	CHECK_INT(smtp_reply_feed(&p, "250-a\r\n250 b", 12, &c),
	    SMTP_REPLY_MORE);
	CHECK_INT(c, 7);
	CHECK_INT(smtp_reply_feed(&p, "250 b\r", 6, &c), SMTP_REPLY_MORE);
	CHECK_INT(c, 0);
	CHECK_INT(smtp_reply_feed(&p, "", 0, &c), SMTP_REPLY_MORE);
	CHECK_INT(c, 0);
	CHECK_INT(smtp_reply_feed(&p, "250 b\r\n", 7, &c), SMTP_REPLY_DONE);
	CHECK_INT(c, 7);
	CHECK_INT(p.reply.nlines, 2);
}

/* "220 go ahead\r\nEVIL\r\n": plaintext after the 220 must stay unread. */
static void
test_reply_starttls_injection_left_over(void)
{
	static const char s[] = "220 go ahead\r\nEVIL\r\n";
	struct smtp_reply_parser p;
	size_t c, k;

	smtp_reply_parser_init(&p);
	CHECK_INT(smtp_reply_feed(&p, s, strlen(s), &c), SMTP_REPLY_DONE);
	CHECK_INT(c, 14);
	CHECK_INT(p.reply.code, 220);
	CHECK_INT(p.reply.textlen, 14);

	/* Also when the reply ends on a bare LF, and in every split. */
	smtp_reply_parser_init(&p);
	CHECK_INT(smtp_reply_feed(&p, "220 go\n250 x\r\n", 14, &c),
	    SMTP_REPLY_DONE);
	CHECK_INT(c, 7);
	for (k = 0; k <= strlen(s); k++) {
		size_t used;

		CHECK_INT(feed_cuts(&p, s, strlen(s), &k, 1, &used),
		    SMTP_REPLY_DONE);
		CHECK_INT(used, 14);
	}
}

#define S(x) { x, sizeof(x) - 1 }

static void
test_reply_errors(void)
{
	static const struct {
		const char *s;
		size_t len;
	} t[] = {
		S("25 OK\r\n"),            /* two digits */
		S("2500 OK\r\n"),          /* four digits */
		S("25x OK\r\n"),
		S("abc OK\r\n"),
		S("\r\n"),                 /* empty line */
		S("\n"),
		S("OK\r\n"),
		S("150 OK\r\n"),           /* first digit outside 2..5 */
		S("650 OK\r\n"),
		S("050 OK\r\n"),
		S("250-a\r\n251 b\r\n"),   /* continuation code changes */
		S("250-a\r\n550-b\r\n250 c\r\n"),
		S("250_OK\r\n"),           /* bad separator */
		S("250\tOK\r\n"),
		S("250-a\r\n250+b\r\n"),
		S("250 a\0b\r\n"),         /* NUL */
		S("\0\r\n"),
		S("250\0\r\n"),
		S("250 a\rb\r\n"),         /* bare CR is not a line end */
		S("250 a\r\r\n"),
		S("250 ok\r250 ok\r\n"),
	};
	struct smtp_reply_parser p;
	size_t i, used, k;

	for (i = 0; i < NELEM(t); i++) {
		CHECK_INT(feed_cuts(&p, t[i].s, t[i].len, NULL, 0, &used),
		    SMTP_REPLY_ERROR);
		CHECK(p.err != NULL);
		/* The same error whatever the chunking. */
		for (k = 0; k <= t[i].len; k++) {
			CHECK_INT(feed_cuts(&p, t[i].s, t[i].len, &k, 1,
			    &used), SMTP_REPLY_ERROR);
		}
	}
}

static void
test_reply_error_is_sticky(void)
{
	struct smtp_reply_parser p;
	size_t c;

	smtp_reply_parser_init(&p);
	CHECK_INT(smtp_reply_feed(&p, "XYZ\r\n", 5, &c), SMTP_REPLY_ERROR);
	CHECK_INT(smtp_reply_feed(&p, "250 OK\r\n", 8, &c), SMTP_REPLY_ERROR);
	CHECK_INT(c, 0);
	smtp_reply_parser_init(&p);
	CHECK_INT(smtp_reply_feed(&p, "250 OK\r\n", 8, &c), SMTP_REPLY_DONE);
}

static void
test_reply_too_many_lines(void)
{
	struct smtp_reply_parser p;
	size_t n = 5000, i, used;
	char *s = malloc(n * 8 + 1);

	CHECK(s != NULL);
	if (s == NULL)
		return;
	for (i = 0; i < n; i++)
		memcpy(s + i * 8, i + 1 < n ? "250-ab\r\n" : "250 ab\r\n", 8);
	CHECK_INT(feed_cuts(&p, s, n * 8, NULL, 0, &used), SMTP_REPLY_ERROR);
	CHECK(p.err != NULL);
	CHECK_INT(used, SMTP_REPLY_LINES_MAX * 8);

	/* Exactly the maximum is fine. */
	memcpy(s + (SMTP_REPLY_LINES_MAX - 1) * 8, "250 ab\r\n", 8);
	CHECK_INT(feed_cuts(&p, s, n * 8, NULL, 0, &used), SMTP_REPLY_DONE);
	CHECK_INT(used, SMTP_REPLY_LINES_MAX * 8);
	CHECK_INT(p.reply.nlines, SMTP_REPLY_LINES_MAX);
	free(s);
}

static void
test_reply_line_too_long(void)
{
	struct smtp_reply_parser p;
	size_t n = 100 * 1024, used, c;
	char *s = malloc(n);

	CHECK(s != NULL);
	if (s == NULL)
		return;
	memset(s, 'a', n);
	memcpy(s, "250 ", 4);
	/* Without a LF at all, and with one far too late. */
	CHECK_INT(feed_cuts(&p, s, n, NULL, 0, &used), SMTP_REPLY_ERROR);
	CHECK(p.err != NULL);
	s[n - 2] = '\r';
	s[n - 1] = '\n';
	CHECK_INT(feed_cuts(&p, s, n, NULL, 0, &used), SMTP_REPLY_ERROR);

	/* The limit itself: SMTP_REPLY_LINE_MAX bytes with the CRLF. */
	s[SMTP_REPLY_LINE_MAX - 2] = '\r';
	s[SMTP_REPLY_LINE_MAX - 1] = '\n';
	CHECK_INT(feed_cuts(&p, s, n, NULL, 0, &used), SMTP_REPLY_DONE);
	CHECK_INT(used, SMTP_REPLY_LINE_MAX);
	s[SMTP_REPLY_LINE_MAX - 2] = 'a';
	s[SMTP_REPLY_LINE_MAX - 1] = '\r';
	s[SMTP_REPLY_LINE_MAX] = '\n';
	CHECK_INT(feed_cuts(&p, s, n, NULL, 0, &used), SMTP_REPLY_ERROR);
	/* Just short of the limit without a LF: wait for more. */
	smtp_reply_parser_init(&p);
	CHECK_INT(smtp_reply_feed(&p, s, SMTP_REPLY_LINE_MAX - 1, &c),
	    SMTP_REPLY_MORE);
	CHECK_INT(c, 0);
	free(s);
}

static void
test_reply_text_too_long(void)
{
	struct smtp_reply_parser p;
	char line[1001], s[16 * 1000];
	size_t i, used;

	/* 8 lines of 1000 bytes fit in 8192; 9 do not (under 64 lines). */
	memset(line, 'x', sizeof(line));
	memcpy(line, "250-", 4);
	memcpy(line + 998, "\r\n", 2);
	for (i = 0; i < 16; i++)
		memcpy(s + i * 1000, line, 1000);
	s[7 * 1000 + 3] = ' ';
	CHECK_INT(feed_cuts(&p, s, sizeof(s), NULL, 0, &used),
	    SMTP_REPLY_DONE);
	CHECK_INT(p.reply.textlen, 8000);
	s[7 * 1000 + 3] = '-';
	s[8 * 1000 + 3] = ' ';
	CHECK_INT(feed_cuts(&p, s, sizeof(s), NULL, 0, &used),
	    SMTP_REPLY_ERROR);
	CHECK(p.err != NULL);
	CHECK_INT(used, 8000);
}

/* ---- smtp_ehlo_parse ---- */

static void
parse_ehlo(const char *s, struct smtp_ehlo *e)
{
	struct smtp_reply_parser p;
	size_t used;

	CHECK_INT(feed_all(&p, s, &used), SMTP_REPLY_DONE);
	smtp_ehlo_parse(&p.reply, e);
}

static void
test_ehlo_keywords(void)
{
	static const struct {
		const char *line;
		unsigned ext;
	} t[] = {
		{ "STARTTLS", SMTP_EXT_STARTTLS },
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "SIZE", SMTP_EXT_SIZE },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "DSN", SMTP_EXT_DSN },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
		{ "CHUNKING", SMTP_EXT_CHUNKING },
		{ "REQUIRETLS", SMTP_EXT_REQUIRETLS },
		{ "starttls", SMTP_EXT_STARTTLS },
		{ "Pipelining", SMTP_EXT_PIPELINING },
		{ "8bitmime", SMTP_EXT_8BITMIME },
		{ "AUTH PLAIN LOGIN", 0 },
		{ "STARTTLSX", 0 },
		{ "START TLS", 0 },
		{ "XSTARTTLS", 0 },
		{ "", 0 },
	};
	struct smtp_ehlo e;
	char s[128];
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		snprintf(s, sizeof(s), "250-mx.example\r\n250 %s\r\n",
		    t[i].line);
		parse_ehlo(s, &e);
		CHECK_INT(e.ext, t[i].ext);
	}
	parse_ehlo(ehlo_reply, &e);
	CHECK_INT(e.ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE |
	    SMTP_EXT_8BITMIME | SMTP_EXT_STARTTLS |
	    SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_SMTPUTF8);
	CHECK_INT(e.size, 52428800);
}

static void
test_ehlo_size(void)
{
	static const struct {
		const char *line;
		unsigned long size;
	} t[] = {
		{ "SIZE 1000", 1000 },
		{ "size 35882577", 35882577 },
		{ "SIZE", 0 },
		{ "SIZE ", 0 },
		{ "SIZE 0", 0 },
		{ "SIZE abc", 0 },
		{ "SIZE 12x", 0 },
		{ "SIZE 99999999999999999999999999", (unsigned long)-1 },
	};
	struct smtp_ehlo e;
	char s[128];
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		snprintf(s, sizeof(s), "250-mx.example\r\n250 %s\r\n",
		    t[i].line);
		parse_ehlo(s, &e);
		CHECK_INT(e.ext, SMTP_EXT_SIZE);
		CHECK(e.size == t[i].size);
	}
}

static void
test_ehlo_ignores_greeting_line(void)
{
	struct smtp_ehlo e;

	parse_ehlo("250 STARTTLS\r\n", &e);
	CHECK_INT(e.ext, 0);
	parse_ehlo("250-STARTTLS SIZE 10\r\n250 8BITMIME\r\n", &e);
	CHECK_INT(e.ext, SMTP_EXT_8BITMIME);
	CHECK_INT(e.size, 0);
}

/* ---- smtp_data_scan ---- */

struct scan_result {
	size_t used, safe, total;
	int done, bare_lf, bare_cr, long_line;
};

/* Scan s[0..len) in chunks ending at cuts[] and then at len. */
static void
scan_cuts(const char *s, size_t len, const size_t *cuts, size_t ncuts,
    struct scan_result *r)
{
	struct smtp_data_scan sc;
	size_t k, e, n, safe;
	int done = 0, clean = 1;

	smtp_data_scan_init(&sc);
	memset(r, 0, sizeof(*r));
	for (k = 0; k <= ncuts && !done; k++) {
		e = k < ncuts ? cuts[k] : len;
		n = smtp_data_scan(&sc, s + r->used, e - r->used, &done, &safe);
		CHECK(n <= e - r->used);
		CHECK(safe <= n);
		/* Safe bytes are a prefix of the stream. */
		if (clean)
			r->safe += safe;
		else
			CHECK_INT(safe, 0);
		if (safe < n)
			clean = 0;
		r->used += n;
		/* Without the end, every byte belongs to the message. */
		if (!done)
			CHECK_INT(r->used, e);
	}
	r->done = done;
	r->total = sc.total;
	r->bare_lf = sc.bare_lf;
	r->bare_cr = sc.bare_cr;
	r->long_line = sc.long_line;
}

static void
scan_all(const char *s, size_t len, struct scan_result *r)
{
	scan_cuts(s, len, NULL, 0, r);
}

static void
check_scan_every_split(const char *s, size_t len)
{
	struct scan_result whole, r;
	size_t k, cuts[8192];

	scan_all(s, len, &whole);
	for (k = 0; k <= len; k++) {
		scan_cuts(s, len, &k, 1, &r);
		CHECK(memcmp(&r, &whole, sizeof(r)) == 0);
	}
	for (k = 0; k < len && k < NELEM(cuts); k++)
		cuts[k] = k + 1;
	scan_cuts(s, len, cuts, k, &r);
	CHECK(memcmp(&r, &whole, sizeof(r)) == 0);
}

static void
test_data_empty_message(void)
{
	struct scan_result r;

	scan_all(".\r\n", 3, &r);
	CHECK_INT(r.done, 1);
	CHECK_INT(r.used, 3);
	CHECK_INT(r.safe, 3);
	CHECK_INT(r.total, 0);
	scan_all("\r\n.\r\n", 5, &r);
	CHECK_INT(r.done, 1);
	CHECK_INT(r.used, 5);
	CHECK_INT(r.total, 2);
	/* Nothing at all yet. */
	scan_all("", 0, &r);
	CHECK_INT(r.done, 0);
	CHECK_INT(r.used, 0);
}

static void
test_data_simple_message(void)
{
	static const char s[] = "Subject: x\r\n\r\nbody\r\n.\r\n";
	struct scan_result r;
	size_t n = strlen(s);

	scan_all(s, n, &r);
	CHECK_INT(r.done, 1);
	CHECK_INT(r.used, n);
	CHECK_INT(r.safe, n);
	CHECK_INT(r.total, n - 3);
	CHECK_INT(r.bare_lf + r.bare_cr + r.long_line, 0);
}

static void
test_data_marker_split_every_boundary(void)
{
	static const char *t[] = {
		"Subject: x\r\n\r\nbody\r\n.\r\n",
		".\r\n",
		"a\r\n.\r\n",
		"\r\n\r\n.\r\n",
	};
	struct scan_result r;
	size_t i, k, n;

	for (i = 0; i < NELEM(t); i++) {
		n = strlen(t[i]);
		for (k = 0; k <= n; k++) {
			scan_cuts(t[i], n, &k, 1, &r);
			CHECK_INT(r.done, 1);
			CHECK_INT(r.used, n);
			CHECK_INT(r.safe, n);
			CHECK_INT(r.total, n - 3);
		}
		check_scan_every_split(t[i], n);
	}
}

static void
test_data_pipelined_bytes_not_consumed(void)
{
	static const char s[] = "hello\r\n.\r\nMAIL FROM:<a@b>\r\nQUIT\r\n";
	struct smtp_data_scan sc;
	struct scan_result r;
	size_t n, safe;
	int done;

	scan_all(s, strlen(s), &r);
	CHECK_INT(r.done, 1);
	CHECK_INT(r.used, 10);
	CHECK_INT(r.safe, 10);
	CHECK_INT(r.total, 7);
	check_scan_every_split(s, strlen(s));

	/* After the end the scanner takes nothing more. */
	smtp_data_scan_init(&sc);
	n = smtp_data_scan(&sc, s, strlen(s), &done, &safe);
	CHECK_INT(n, 10);
	n = smtp_data_scan(&sc, s + 10, strlen(s) - 10, &done, NULL);
	CHECK_INT(n, 0);
	CHECK_INT(done, 1);
}

static void
test_data_dot_stuffed_lines(void)
{
	static const char s[] =
	    "..\r\n..foo\r\n.foo\r\n. \r\n.\t\r\n...\r\nx.\r\n.\r\n";
	struct scan_result r;
	size_t n = strlen(s);

	scan_all(s, n, &r);
	CHECK_INT(r.done, 1);
	CHECK_INT(r.used, n);
	CHECK_INT(r.safe, n);
	CHECK_INT(r.total, n - 3);
	check_scan_every_split(s, n);
	/* A dot-stuffed line at the very start is not the end either. */
	scan_all("..\r\n", 4, &r);
	CHECK_INT(r.done, 0);
	CHECK_INT(r.used, 4);
}

/*
 * SMTP smuggling (CVE-2023-51764 and friends): none of these end the
 * message; the real end follows, and the problem is flagged.
 */
static void
test_data_smuggling_not_an_end(void)
{
	static const struct {
		const char *s;
		int bare_lf, bare_cr;
		size_t safe;
	} t[] = {
		{ "a\n.\nMAIL FROM:<x@y>\r\n.\r\n", 1, 0, 1 },
		{ "a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", 1, 0, 4 },
		{ "a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", 1, 0, 1 },
		{ "a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", 0, 1, 2 },
		{ "a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n", 0, 1, 5 },
		{ "a\r.\rMAIL FROM:<x@y>\r\n.\r\n", 0, 1, 2 },
		{ "a\n.\rMAIL FROM:<x@y>\r\n.\r\n", 1, 1, 1 },
		/* The same at the very start of data. */
		{ "\n.\nMAIL FROM:<x@y>\r\n.\r\n", 1, 0, 0 },
		{ ".\nMAIL FROM:<x@y>\r\n.\r\n", 1, 0, 1 },
		{ "\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", 1, 0, 0 },
		{ "\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", 0, 1, 1 },
		{ ".\r.\r\n.\r\n", 0, 1, 2 },
		/* Plain bare CR / LF inside text. */
		{ "a\rb\r\n.\r\n", 0, 1, 2 },
		{ "a\r\r\n.\r\n", 0, 1, 2 },
		{ "ab\ncd\r\n.\r\n", 1, 0, 2 },
	};
	struct scan_result r;
	size_t i, n;

	for (i = 0; i < NELEM(t); i++) {
		n = strlen(t[i].s);
		scan_all(t[i].s, n, &r);
		if (r.used != n)
			fprintf(stderr, "  case %zu\n", i);
		CHECK_INT(r.done, 1);
		CHECK_INT(r.used, n);
		CHECK_INT(r.total, n - 3);
		CHECK_INT(r.bare_lf, t[i].bare_lf);
		CHECK_INT(r.bare_cr, t[i].bare_cr);
		CHECK_INT(r.long_line, 0);
		CHECK_INT(r.safe, t[i].safe);
		check_scan_every_split(t[i].s, n);
	}
}

/* A bare CR is only seen as bare at the next byte, maybe in a later chunk. */
static void
test_data_bare_cr_across_chunks(void)
{
	struct smtp_data_scan sc;
	size_t n, safe;
	int done;

	smtp_data_scan_init(&sc);
	n = smtp_data_scan(&sc, "ab\r", 3, &done, &safe);
	CHECK_INT(n, 3);
	CHECK_INT(safe, 3);
	CHECK_INT(sc.bare_cr, 0);
	n = smtp_data_scan(&sc, "x\r\n", 3, &done, &safe);
	CHECK_INT(n, 3);
	CHECK_INT(safe, 0);
	CHECK_INT(sc.bare_cr, 1);
	CHECK_INT(done, 0);
	/* Once flagged nothing later is safe, even clean text. */
	n = smtp_data_scan(&sc, "clean\r\n", 7, &done, &safe);
	CHECK_INT(n, 7);
	CHECK_INT(safe, 0);
	n = smtp_data_scan(&sc, ".\r\nNOOP\r\n", 9, &done, &safe);
	CHECK_INT(n, 3);
	CHECK_INT(done, 1);
	CHECK_INT(safe, 0);
	CHECK_INT(sc.total, 13);
}

static void
test_data_long_lines(void)
{
	static char s[3000];
	struct scan_result r;
	size_t n;

	/* 998 bytes plus CRLF is the longest line allowed. */
	memset(s, 'a', 998);
	memcpy(s + 998, "\r\n.\r\n", 5);
	n = 998 + 5;
	scan_all(s, n, &r);
	CHECK_INT(r.done, 1);
	CHECK_INT(r.long_line, 0);
	CHECK_INT(r.safe, n);

	/* 999: flagged, safe stops at the byte that made it too long. */
	memset(s, 'a', 999);
	memcpy(s + 999, "\r\nok\r\n.\r\n", 9);
	n = 999 + 9;
	scan_all(s, n, &r);
	CHECK_INT(r.done, 1);
	CHECK_INT(r.used, n);
	CHECK_INT(r.long_line, 1);
	CHECK_INT(r.bare_lf + r.bare_cr, 0);
	CHECK_INT(r.safe, 998);
	CHECK_INT(r.total, n - 3);
	check_scan_every_split(s, n);

	/* A dot-started line counts its dot. */
	s[0] = '.';
	scan_all(s, n, &r);
	CHECK_INT(r.long_line, 1);
	CHECK_INT(r.safe, 998);

	/* Line length restarts at every CRLF. */
	memset(s, 'a', sizeof(s));
	memcpy(s + 900, "\r\n", 2);
	memcpy(s + 1800, "\r\n", 2);
	memcpy(s + 2700, "\r\n.\r\n", 5);
	scan_all(s, 2705, &r);
	CHECK_INT(r.done, 1);
	CHECK_INT(r.long_line, 0);
}

/* ---- smtp_normalise ---- */

struct norm_result {
	char out[256];
	size_t len;
	unsigned long bare_lf, bare_cr, dots;
	int long_line;
};

/*
 * Normalise in[0..len) in chunks ending at cuts[] and then at len, with
 * at most cap output bytes per call (0: SMTP_NORMALISE_OUT_MAX).  Every
 * call must keep to that bound and, with cap >= 3, make progress.
 */
static void
norm_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts,
    size_t cap, struct norm_result *r)
{
	struct smtp_normalise n;
	size_t k, e, used = 0, c, got, room;

	smtp_normalise_init(&n);
	memset(r, 0, sizeof(*r));
	for (k = 0; k <= ncuts; k++) {
		e = k < ncuts ? cuts[k] : len;
		while (used < e) {
			room = cap ? cap : SMTP_NORMALISE_OUT_MAX(e - used);
			if (room > sizeof(r->out) - r->len)
				room = sizeof(r->out) - r->len;
			c = smtp_normalise(&n, in + used, e - used,
			    r->out + r->len, room, &got);
			CHECK(got <= room);
			CHECK(got <= SMTP_NORMALISE_OUT_MAX(c));
			if (c == 0) {
				CHECK(cap != 0 && cap < 3);
				break;
			}
			used += c;
			r->len += got;
		}
		if (used < e)
			break; /* a cap < 3 may stall: the caller sees it */
	}
	r->bare_lf = n.bare_lf;
	r->bare_cr = n.bare_cr;
	r->dots = n.dots;
	r->long_line = n.long_line;
}

static int
norm_equal(const struct norm_result *a, const struct norm_result *b)
{
	return a->len == b->len && memcmp(a->out, b->out, a->len) == 0 &&
	    a->bare_lf == b->bare_lf && a->bare_cr == b->bare_cr &&
	    a->dots == b->dots && a->long_line == b->long_line;
}

/* Every CR is followed by LF and every LF preceded by CR. */
static int
only_crlf(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n'))
			return 0;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return 0;
	}
	return 1;
}

/* What a conforming receiver keeps of CRLF lines: one leading dot goes. */
static size_t
unstuff(const char *p, size_t len, char *out)
{
	size_t i = 0, o = 0;
	int bol = 1;

	for (i = 0; i < len; i++) {
		if (!(bol && p[i] == '.'))
			out[o++] = p[i];
		bol = p[i] == '\n';
	}
	return o;
}

/*
 * The content the input means, worked out line by line (not byte by byte
 * as the normaliser does): lines end at any LF, a CR before that LF is
 * part of the ending, other CRs are spaces.  A line after a CRLF (or at
 * the start) was dot-stuffed by the client, so its leading dot goes,
 * except for a lone "." ended by a bare LF: no stuffing makes that, and
 * it is kept so a smuggling attempt stays visible.  A line after a bare
 * LF was not stuffed.  in must end in LF.
 */
static size_t
intended(const char *in, size_t len, char *out)
{
	size_t i = 0, j, end, k, o = 0;
	int real = 1, crlf;

	while (i < len) {
		for (j = i; in[j] != '\n'; j++)
			;
		crlf = j > i && in[j - 1] == '\r';
		end = crlf ? j - 1 : j;
		k = i;
		if (real && end > i && in[i] == '.' &&
		    !(end - i == 1 && !crlf))
			k++;
		for (; k < end; k++)
			out[o++] = in[k] == '\r' ? ' ' : in[k];
		out[o++] = '\r';
		out[o++] = '\n';
		real = crlf;
		i = j + 1;
	}
	return o;
}

static void
test_normalise_examples(void)
{
	static const struct {
		const char *in, *out;
		unsigned long lf, cr, dots;
	} t[] = {
		{ "a\r\nb\r\n", "a\r\nb\r\n", 0, 0, 0 },
		{ "a\nb\r\n", "a\r\nb\r\n", 1, 0, 0 },
		{ "a\rb\r\n", "a b\r\n", 0, 1, 0 },
		{ "a\n\n", "a\r\n\r\n", 2, 0, 0 },
		{ "a\r\r\n", "a \r\n", 0, 1, 0 },
		{ "a\r\r\rb", "a   b", 0, 3, 0 },
		{ "a\n\r\n", "a\r\n\r\n", 1, 0, 0 },
		/* Smuggling: none of these may become "\r\n.\r\n". */
		{ "a\n.\nMAIL", "a\r\n..\r\nMAIL", 2, 0, 1 },
		{ "a\n.\r\nMAIL", "a\r\n..\r\nMAIL", 1, 0, 1 },
		{ "a\r\n.\nMAIL", "a\r\n..\r\nMAIL", 1, 0, 1 },
		{ "a\r.\r\nMAIL", "a .\r\nMAIL", 0, 1, 0 },
		{ "a\r.\rMAIL", "a . MAIL", 0, 2, 0 },
		{ "a\r\n.\rMAIL", "a\r\n. MAIL", 0, 1, 0 },
		{ "a\n.\rMAIL", "a\r\n.. MAIL", 1, 1, 1 },
		{ "a\n..\n", "a\r\n...\r\n", 2, 0, 1 },
		{ "a\r\n..\n", "a\r\n..\r\n", 1, 0, 0 },
		{ "a\n.x\n", "a\r\n..x\r\n", 2, 0, 1 },
		{ "\n.\n", "\r\n..\r\n", 2, 0, 1 },
		{ ".\n", "..\r\n", 1, 0, 1 },
		{ "\r.\r\n", " .\r\n", 0, 1, 0 },
		{ ".\r.\r\n", ". .\r\n", 0, 1, 0 },
		/* Dot-stuffed by the client and the end marker: as they are. */
		{ "..\r\n.x\r\n.\r\n", "..\r\n.x\r\n.\r\n", 0, 0, 0 },
		{ "a\r\n.\r\n", "a\r\n.\r\n", 0, 0, 0 },
		/* Bytes that are no line ending pass. */
		{ "a.b\t\x7f\xff", "a.b\t\x7f\xff", 0, 0, 0 },
	};
	struct norm_result r;
	size_t i, n;

	for (i = 0; i < NELEM(t); i++) {
		n = strlen(t[i].in);
		norm_cuts(t[i].in, n, NULL, 0, 0, &r);
		if (r.len != strlen(t[i].out) ||
		    memcmp(r.out, t[i].out, r.len) != 0)
			fprintf(stderr, "  case %zu: got \"%.*s\"\n", i,
			    (int)r.len, r.out);
		CHECK_INT(r.len, strlen(t[i].out));
		CHECK(memcmp(r.out, t[i].out, r.len) == 0);
		CHECK_INT(r.bare_lf, t[i].lf);
		CHECK_INT(r.bare_cr, t[i].cr);
		CHECK_INT(r.dots, t[i].dots);
		CHECK_INT(r.len, n + r.bare_lf + r.dots);
	}
}

/* A CR held back at the end of one call is bare or not by the next byte. */
static void
test_normalise_cr_across_calls(void)
{
	struct smtp_normalise n;
	char out[16];
	size_t c, got;

	smtp_normalise_init(&n);
	c = smtp_normalise(&n, "ab\r", 3, out, sizeof(out), &got);
	CHECK_INT(c, 3);
	CHECK_INT(got, 2); /* the CR waits */
	c = smtp_normalise(&n, "\n", 1, out, sizeof(out), &got);
	CHECK_INT(c, 1);
	CHECK_INT(got, 2);
	CHECK(memcmp(out, "\r\n", 2) == 0);
	CHECK_INT(n.bare_cr, 0);
	c = smtp_normalise(&n, "x\r", 2, out, sizeof(out), &got);
	CHECK_INT(got, 1);
	c = smtp_normalise(&n, "y", 1, out, sizeof(out), &got);
	CHECK_INT(got, 2);
	CHECK(memcmp(out, " y", 2) == 0);
	CHECK_INT(n.bare_cr, 1);
	/* A "." at BOL then a bare LF in the next call: 3 bytes for 1. */
	c = smtp_normalise(&n, "\r\n.", 3, out, sizeof(out), &got);
	CHECK_INT(got, 3);
	c = smtp_normalise(&n, "\n", 1, out, 2, &got);
	CHECK_INT(c, 0); /* does not fit: nothing consumed or written */
	CHECK_INT(got, 0);
	c = smtp_normalise(&n, "\n", 1, out, 3, &got);
	CHECK_INT(c, 1);
	CHECK_INT(got, SMTP_NORMALISE_OUT_MAX(1));
	CHECK(memcmp(out, ".\r\n", 3) == 0);
	c = smtp_normalise(&n, "x", 1, out, 0, &got);
	CHECK_INT(c, 0);
	CHECK_INT(got, 0);
}

/*
 * Every input of up to 8 bytes over CR, LF, "." and "a", followed by
 * CRLF "." CRLF, unless it ends the message earlier: the output has only
 * CRLF line endings, ends upstream exactly where the scanner ended the
 * input, means what the input meant, is the same for every split and
 * every output capacity down to 3, and is never more than 2n + 1.
 */
static void
test_normalise_exhaustive(void)
{
	static const char sym[] = { '\r', '\n', '.', 'a' };
	static const size_t caps[] = { 3, 4, 5 };
	struct norm_result whole, r;
	struct smtp_data_scan sc;
	char in[16], want[64], got[64];
	size_t len, i, k, cuts[16], wl, gl, n, tried = 0, skipped = 0;
	unsigned long code, max, lf, cr;
	int done, bad = 0;

	for (len = 0; len <= 8 && bad < 5; len++) {
		for (max = 1, i = 0; i < len; i++)
			max *= NELEM(sym);
		for (code = 0; code < max && bad < 5; code++) {
			unsigned long c = code;

			for (i = 0; i < len; i++, c /= NELEM(sym))
				in[i] = sym[c % NELEM(sym)];
			memcpy(in + len, "\r\n.\r\n", 5);
			n = len + 5;

			/* Inputs the client already ended are not messages. */
			smtp_data_scan_init(&sc);
			if (smtp_data_scan(&sc, in, n, &done, NULL) != n) {
				skipped++;
				continue;
			}
			tried++;
			t_cur = 0;
			norm_cuts(in, n, NULL, 0, 0, &whole);
			CHECK(whole.len <= SMTP_NORMALISE_OUT_MAX(n));
			CHECK_INT(whole.len, n + whole.bare_lf + whole.dots);
			CHECK(only_crlf(whole.out, whole.len));
			CHECK_INT(whole.long_line, 0);
			for (lf = cr = 0, i = 0; i < n; i++) {
				lf += in[i] == '\n' &&
				    (i == 0 || in[i - 1] != '\r');
				cr += in[i] == '\r' && in[i + 1] != '\n';
			}
			CHECK_INT(whole.bare_lf, lf);
			CHECK_INT(whole.bare_cr, cr);

			/* Upstream the message ends at its last byte only. */
			smtp_data_scan_init(&sc);
			CHECK_INT(smtp_data_scan(&sc, whole.out, whole.len,
			    &done, NULL), whole.len);
			CHECK_INT(done, 1);
			CHECK_INT(sc.bare_lf + sc.bare_cr + sc.nul, 0);

			wl = intended(in, len + 2, want);
			CHECK(whole.len >= 3);
			gl = unstuff(whole.out, whole.len - 3, got);
			CHECK(gl == wl && memcmp(got, want, wl) == 0);

			for (k = 0; k <= n; k++) {
				norm_cuts(in, n, &k, 1, 0, &r);
				CHECK(norm_equal(&r, &whole));
			}
			for (k = 0; k < n; k++)
				cuts[k] = k + 1;
			norm_cuts(in, n, cuts, n, 0, &r);
			CHECK(norm_equal(&r, &whole));
			for (k = 0; k < NELEM(caps); k++) {
				norm_cuts(in, n, NULL, 0, caps[k], &r);
				CHECK(norm_equal(&r, &whole));
			}
			if (t_cur) {
				fprintf(stderr, "  input \"");
				for (i = 0; i < len; i++)
					fprintf(stderr, "%s", in[i] == '\r' ?
					    "\\r" : in[i] == '\n' ? "\\n" :
					    (char[]){ in[i], 0 });
				fprintf(stderr, "\" gave \"%.*s\"\n",
				    (int)whole.len, whole.out);
				bad++;
			}
		}
	}
	t_cur = bad != 0;
	/* Sanity: most inputs are messages, and some are not. */
	CHECK(tried > 70000);
	CHECK(skipped > 0);
}

/* The smuggled commands stay message text; the one end is the client's. */
static void
test_normalise_smuggled_commands(void)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "\n.\n", "\r\n..\r\n" },
		{ "\n.\r\n", "\r\n..\r\n" },
		{ "\r.\r", " . " },
		{ "\r\n.\n", "\r\n..\r\n" },
		{ "\r.\r\n", " .\r\n" },
		{ "\n..\n", "\r\n...\r\n" },
		{ "\r\n.\r", "\r\n. " },
		{ "\n.\r", "\r\n.. " },
		{ "\r.\n", " .\r\n" },
		{ "\n.", "\r\n.." },
		{ "\n", "\r\n" },
		{ "\r", " " },
	};
	static const char cmds[] = "MAIL FROM:<x@y>\r\nRCPT TO:<v@w>\r\n"
	    "DATA\r\nsmuggled\r\n";
	struct smtp_data_scan sc;
	struct norm_result r;
	char in[256], want[256];
	size_t i, n, w;
	int done;

	for (i = 0; i < NELEM(t); i++) {
		n = (size_t)snprintf(in, sizeof(in), "Subject: t\r\n\r\nbody%s%s"
		    ".\r\nQUIT\r\n", t[i].in, cmds);
		w = (size_t)snprintf(want, sizeof(want), "Subject: t\r\n\r\n"
		    "body%s%s.\r\n", t[i].out, cmds);
		/* The client's input ends once, before QUIT. */
		smtp_data_scan_init(&sc);
		n = smtp_data_scan(&sc, in, n, &done, NULL);
		CHECK_INT(done, 1);
		CHECK_INT(n, strlen(in) - 6);
		norm_cuts(in, n, NULL, 0, 0, &r);
		if (r.len != w || memcmp(r.out, want, w) != 0)
			fprintf(stderr, "  case %zu: got \"%.*s\"\n", i,
			    (int)r.len, r.out);
		CHECK_INT(r.len, w);
		CHECK(memcmp(r.out, want, w) == 0);
		/* And so does the output: one message, the commands in it. */
		smtp_data_scan_init(&sc);
		CHECK_INT(smtp_data_scan(&sc, r.out, r.len, &done, NULL), r.len);
		CHECK_INT(done, 1);
		CHECK_INT(sc.bare_lf + sc.bare_cr, 0);
	}
}

static void
test_normalise_long_lines(void)
{
	static char s[1100], out[2300];
	struct smtp_normalise n;
	size_t got;

	/* After CRLF the client's stuffing counts as sent: 998 is the most. */
	memcpy(s, "x\r\n.", 4);
	memset(s + 4, 'a', 997);
	memcpy(s + 1001, "\r\n", 2);
	smtp_normalise_init(&n);
	CHECK_INT(smtp_normalise(&n, s, 1003, out, sizeof(out), &got), 1003);
	CHECK_INT(got, 1003);
	CHECK_INT(n.long_line, 0);
	/* After a bare LF the added dot makes the same line 999. */
	memcpy(s, "xx\n", 3);
	smtp_normalise_init(&n);
	CHECK_INT(smtp_normalise(&n, s, 1003, out, sizeof(out), &got), 1003);
	CHECK_INT(got, 1005);
	CHECK_INT(n.dots, 1);
	CHECK_INT(n.long_line, 1);
	/* A bare CR becomes a space, still one byte of the line. */
	memcpy(s, "x\r\n", 3);
	s[3] = 'a';
	s[500] = '\r';
	smtp_normalise_init(&n);
	smtp_normalise(&n, s, 1003, out, sizeof(out), &got);
	CHECK_INT(n.bare_cr, 1);
	CHECK_INT(n.long_line, 0);
	/* One more byte is one too many. */
	memset(s + 1001, 'a', 1);
	memcpy(s + 1002, "\r\n", 2);
	smtp_normalise_init(&n);
	smtp_normalise(&n, s, 1004, out, sizeof(out), &got);
	CHECK_INT(n.long_line, 1);
}

/* ---- smtp_reply_append: how the message left, in the final reply ---- */

/* Parse s, append suf; the result must be want (NULL: refused). */
static void
append_is(const char *s, const char *suf, const char *want)
{
	struct smtp_reply_parser p;
	size_t used;

	CHECK_INT(feed_all(&p, s, &used), SMTP_REPLY_DONE);
	if (want == NULL) {
		CHECK_INT(smtp_reply_append(&p.reply, suf), -1);
		CHECK_INT(p.reply.textlen, strlen(s));
		return;
	}
	CHECK_INT(smtp_reply_append(&p.reply, suf), 0);
	CHECK_INT(p.reply.textlen, strlen(want));
	CHECK(p.reply.textlen == strlen(want) &&
	    memcmp(p.reply.text, want, p.reply.textlen) == 0);
}

static void
R17_17_summary_appended_to_the_last_line(void)
{
	append_is("250 2.0.0 Ok: queued as X\r\n", "[mxtls: TLSv1.3]",
	    "250 2.0.0 Ok: queued as X [mxtls: TLSv1.3]\r\n");
	append_is("250\r\n", "[s]", "250 [s]\r\n");
	append_is("250-first\r\n250-second\r\n250 2.0.0 last\r\n", "[s]",
	    "250-first\r\n250-second\r\n250 2.0.0 last [s]\r\n");
	append_is("554 5.7.1 rejected\r\n", "[s]", "554 5.7.1 rejected [s]\r\n");
	/* A bare LF the parser tolerated became CRLF: still the last line. */
	append_is("250-a\n250 b\n", "[s]", "250-a\r\n250 b [s]\r\n");
}

static void
R17_17_summary_line_within_512_octets(void)
{
	char s[2200], want[1400], suf[300];
	size_t n;

	memset(suf, 'y', 250);
	suf[250] = '\0';
	/* Exactly fits: 4 + 255 + 1 + 250 + 2 = 512. */
	memcpy(s, "250 ", 4);
	memset(s + 4, 'x', 255);
	memcpy(s + 259, "\r\n", 3);
	snprintf(want, sizeof(want), "250 %.255s %s\r\n", s + 4, suf);
	CHECK_INT(strlen(want), 512);
	append_is(s, suf, want);
	/* One more octet of text: the text is cut, the summary kept. */
	memset(s + 4, 'x', 256);
	memcpy(s + 260, "\r\n", 3);
	append_is(s, suf, want);
	/* A line already over 512 (2000 octets) comes out at 512. */
	n = 2000;
	memset(s + 4, 'x', n);
	memcpy(s + 4 + n, "\r\n", 3);
	append_is(s, suf, want);
	/* Only the last line counts; an earlier long one stays as it is. */
	snprintf(s, sizeof(s), "250-%0600d\r\n250 short\r\n", 0);
	snprintf(want, sizeof(want), "250-%0600d\r\n250 short %s\r\n", 0,
	    suf);
	append_is(s, suf, want);
}

static void
R17_17_summary_cut_keeps_utf8_whole(void)
{
	char s[600], want[600];
	const char *suf = "[mxtls: TLSv1.3 verified mx.example.net]";
	size_t room = 512 - 2 - 1 - strlen(suf), i;

	/* "250 " then 2-octet characters, so the cut would fall inside one. */
	memcpy(s, "250 ", 4);
	for (i = 4; i < 500; i += 2)
		memcpy(s + i, "\xc3\xa9", 2);
	memcpy(s + 500, "\r\n", 3);
	/* room is odd: the last whole character ends one octet earlier. */
	CHECK_INT(room % 2, 1);
	memcpy(want, s, room - 1);
	snprintf(want + room - 1, sizeof(want) - (room - 1), " %s\r\n", suf);
	append_is(s, suf, want);
}

static void
R17_17_summary_that_cannot_fit_is_refused(void)
{
	char suf[600], want[600];

	memset(suf, 'z', 507);
	suf[507] = '\0';
	append_is("250 ok\r\n", suf, NULL);
	/* "250 " + 506 + CRLF = 512: the code and the suffix alone. */
	suf[506] = '\0';
	snprintf(want, sizeof(want), "250 %s\r\n", suf);
	append_is("250 ok\r\n", suf, want);
}

/* ---- smtp_tls_required_no ---- */

static void
test_tls_required_no(void)
{
	static const struct {
		const char *in;
		int complete;
		enum smtp_trn want;
	} c[] = {
		{ "Subject: x\r\nTLS-Required: No\r\n\r\nbody\r\n", 0,
		    SMTP_TRN_NO },
		{ "tls-required:no\r\n\r\n", 0, SMTP_TRN_NO },
		{ "TLS-Required:   nO  \r\n\r\n", 0, SMTP_TRN_NO },
		{ "TLS-Required:\r\n No\r\n\r\n", 0, SMTP_TRN_NO },
		{ "TLS-Required: Yes\r\n\r\n", 0, SMTP_TRN_ABSENT },
		{ "TLS-Required: Nope\r\n\r\n", 0, SMTP_TRN_ABSENT },
		{ "TLS-Required: No thanks\r\n\r\n", 0, SMTP_TRN_ABSENT },
		{ "X-TLS-Required: No\r\n\r\n", 0, SMTP_TRN_ABSENT },
		/* In the body, not the header. */
		{ "Subject: x\r\n\r\nTLS-Required: No\r\n", 0,
		    SMTP_TRN_ABSENT },
		/* The message ends before any such field. */
		{ "Subject: x\r\n.\r\n", 0, SMTP_TRN_ABSENT },
		/* Undecided until the line, and a possible fold, are seen. */
		{ "Subject: x\r\nTLS-Requ", 0, SMTP_TRN_MORE },
		{ "TLS-Required: No\r\n", 0, SMTP_TRN_MORE },
		{ "TLS-Required: No\r\n", 1, SMTP_TRN_NO },
		{ "Subject: x\r\nTLS-Requ", 1, SMTP_TRN_ABSENT },
		{ "TLS-Required: No\r\n\tagain\r\n\r\n", 0,
		    SMTP_TRN_ABSENT },
		{ "", 0, SMTP_TRN_MORE },
		{ "", 1, SMTP_TRN_ABSENT },
		/* Bare LF line ends are read the same way. */
		{ "Subject: x\nTLS-Required: No\n\n", 0, SMTP_TRN_NO },
	};
	size_t i;

	for (i = 0; i < NELEM(c); i++) {
		enum smtp_trn got = smtp_tls_required_no(c[i].in,
		    strlen(c[i].in), c[i].complete);

		if (got != c[i].want)
			printf("    case %zu\n", i);
		CHECK_INT((int)got, (int)c[i].want);
	}
}

static void
test_mail_params(void)
{
	static const struct {
		const char *params;
		const char *reply; /* NULL: taken */
	} cases[] = {
		{ "", NULL },
		{ "SIZE=1000 BODY=8BITMIME SMTPUTF8", NULL },
		{ "body=7bit requiretls RET=HDRS ENVID=x", NULL },
		{ "SIZE=1001", "552 5.3.4 Message size exceeds fixed maximum "
		    "message size" },
		{ "SIZE=", "501 5.5.4 Bad SIZE parameter" },
		{ "SIZE=12x", "501 5.5.4 Bad SIZE parameter" },
		{ "AUTH=<>", "555 5.5.4 Unsupported MAIL parameter" },
		{ "BODY=BINARYMIME", "555 5.5.4 Unsupported MAIL parameter" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *r = smtp_mail_params_check(cases[i].params, 1000);

		if (cases[i].reply == NULL)
			CHECK(r == NULL);
		else
			CHECK_STR(r, cases[i].reply);
	}
	CHECK(smtp_has_param("SIZE=10 requiretls", "REQUIRETLS"));
	CHECK(!smtp_has_param("REQUIRETLS=1 SIZE=10", "REQUIRETLS"));
	CHECK(!smtp_has_param("", "REQUIRETLS"));
}

int
main(void)
{
	RUN(test_line_length);
	RUN(test_cmd_every_verb_every_case);
	RUN(test_cmd_arguments);
	RUN(test_cmd_unknown_verbs);
	RUN(test_path_valid);
	RUN(test_path_invalid);
	RUN(test_path_uses_arglen);
	RUN(test_path_length_limit);
	RUN(test_addr_domain);
	RUN(test_reply_single_line);
	RUN(test_reply_code_only);
	RUN(test_reply_multi_line);
	RUN(test_reply_bare_lf_normalised);
	RUN(test_reply_split_everywhere);
	RUN(test_reply_incomplete_left_unconsumed);
	RUN(test_reply_starttls_injection_left_over);
	RUN(test_reply_errors);
	RUN(test_reply_error_is_sticky);
	RUN(test_reply_too_many_lines);
	RUN(test_reply_line_too_long);
	RUN(test_reply_text_too_long);
	RUN(test_ehlo_keywords);
	RUN(test_ehlo_size);
	RUN(test_ehlo_ignores_greeting_line);
	RUN(test_data_empty_message);
	RUN(test_data_simple_message);
	RUN(test_data_marker_split_every_boundary);
	RUN(test_data_pipelined_bytes_not_consumed);
	RUN(test_data_dot_stuffed_lines);
	RUN(test_data_smuggling_not_an_end);
	RUN(test_data_bare_cr_across_chunks);
	RUN(test_data_long_lines);
	RUN(test_normalise_examples);
	RUN(test_normalise_cr_across_calls);
	RUN(test_normalise_exhaustive);
	RUN(test_normalise_smuggled_commands);
	RUN(test_normalise_long_lines);
	RUN(R17_17_summary_appended_to_the_last_line);
	RUN(R17_17_summary_line_within_512_octets);
	RUN(R17_17_summary_cut_keeps_utf8_whole);
	RUN(R17_17_summary_that_cannot_fit_is_refused);
	RUN(test_tls_required_no);
	RUN(test_mail_params);
	return T_DONE();
}
