/*
 * policy/inireader.c: buffers in, callbacks out, written down as one
 * line of events and compared whole:
 *   "S3 name"   section header at line 3 ("[skip...]" is refused)
 *   "E2"        end of the section, with 2 key lines
 *   "K4 k=v"    key k at line 4 with its whole value ("K4! k=v": bad)
 *   "!5 why"    error at line 5
 * Keys named "list..." are lists, "unknown..." unknown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inireader.h"
#include "t.h"

static char events[3 * INI_LINE_MAX];

static void
event(const char *fmt, const char *a, int n, const char *b)
{
	size_t used = strlen(events);

	snprintf(events + used, sizeof(events) - used, fmt, n, a, b);
	strncat(events, "|", sizeof(events) - strlen(events) - 1);
}

static int
on_section(void *user, const char *name, int line)
{
	(void)user;
	event("S%d %s%s", name, line, "");
	return strncmp(name, "skip", 4) == 0 ? -1 : 0;
}

static void
on_section_end(void *user, int nkeys)
{
	(void)user;
	event("E%d%s%s", "", nkeys, "");
}

static int
on_key_kind(void *user, const char *key)
{
	(void)user;
	if (strncmp(key, "unknown", 7) == 0)
		return -1;
	return strncmp(key, "list", 4) == 0;
}

static void
on_key(void *user, const char *key, const char *value, int line, int bad)
{
	(void)user;
	event(bad ? "K%d! %s=%s" : "K%d %s=%s", key, line, value);
}

static void
on_error(void *user, int line, const char *msg)
{
	(void)user;
	event("!%d %s%s", msg, line, "");
}

static const struct ini_ops ops = { on_section, on_section_end,
	on_key_kind, on_key, on_error };

/* The events of reading len bytes of text (static). */
static const char *
read_n(const char *text, size_t len)
{
	events[0] = '\0';
	CHECK_INT(ini_read(text, len, &ops, NULL), 0);
	return events;
}

static const char *
read_text(const char *text)
{
	return read_n(text, strlen(text));
}

static void
lines_and_comments(void)
{
	CHECK_STR(read_text(""), "");
	CHECK_STR(read_text("[a]\nk = v\n"), "S1 a|K2 k=v|E1|");
	/* BOM, CRLF, ":" separator, comments whole and inline, no final LF. */
	CHECK_STR(read_text("\xEF\xBB\xBF[a]\r\n; c\r\n# c\r\n\r\nk: v ; why"
	    "\r\nj=x;y\r\n[  b c  ] ; d\r\nl=\t w \t"),
	    "S1 a|K5 k=v|K6 j=x;y|E2|S7 b c|K8 l=w|E1|");
	/* Only the first "=" or ":" separates. */
	CHECK_STR(read_text("[a]\nk = a=b:c\nj: d=e\n"),
	    "S1 a|K2 k=a=b:c|K3 j=d=e|E2|");
}

static void
continuations(void)
{
	/* A list key: its indented lines joined with ",", comments out. */
	CHECK_STR(read_text("[a]\nlist = 1\n  2 ; two\n\n\t3\nk = v\n"),
	    "S1 a|K2 list=1,2,3|K6 k=v|E2|");
	/* A single value: one error, the first line's value still given. */
	CHECK_STR(read_text("[a]\nk = 1\n  2\n  3\n"),
	    "S1 a|!3 [a] k: duplicate key (an indented line continues a "
	    "single value)|K2! k=1|E1|");
	/* inih's rule: an indented header after a key continues it. */
	CHECK_STR(read_text("[a]\nlist = x\n  [b]\n"), "S1 a|K2 list=x,[b]|E1|");
	/* After a header, an indented key is a key. */
	CHECK_STR(read_text("[a]\n  k = v\n"), "S1 a|K2 k=v|E1|");
}

static void
key_errors(void)
{
	CHECK_STR(read_text("k = v\n[a]\n"), "!1 k: not in a section|S2 a|E0|");
	CHECK_STR(read_text("[a]\nunknown = 1\nk = 1\nk = 2\n= 3\nwords\n"),
	    "S1 a|!2 [a] unknown: unknown key|K3 k=1|!4 [a] k: duplicate key "
	    "(first at line 3)|!5 [a]: missing key name|!6 expected \"key = "
	    "value\"|E4|");
	/* A key may come back in another section. */
	CHECK_STR(read_text("[a]\nk = 1\n[b]\nk = 2\n"),
	    "S1 a|K2 k=1|E1|S3 b|K4 k=2|E1|");
}

static void
section_errors(void)
{
	/* A refused section's keys are ignored, without errors. */
	CHECK_STR(read_text("[skip]\nunknown = v\n[a]\n"),
	    "S1 skip|E0|S3 a|E0|");
	/* So are those after a broken header. */
	CHECK_STR(read_text("[a]\nk = v\n[b\nj = w\n[c]\n"),
	    "S1 a|K2 k=v|E1|!3 unterminated section header|S5 c|E0|");
}

static void
limits(void)
{
	static const char nul[] = "[a]\nk = a\0b\nj = c\n";
	char *t = malloc(3 * INI_LINE_MAX), *p;
	const char *ev, *want;

	CHECK_STR(read_n(nul, sizeof(nul) - 1),
	    "S1 a|!2 line contains a NUL byte|K3 j=c|E1|");
	/* INI_LINE_MAX bytes (CR not counted) are read, one more is not. */
	strcpy(t, "[a]\nlist = ");
	p = t + strlen(t);
	memset(p, 'x', INI_LINE_MAX - strlen("list = "));
	p += INI_LINE_MAX - strlen("list = ");
	strcpy(p, "\r\n  ");
	p += 4;
	memset(p, 'y', INI_LINE_MAX - 1);
	strcpy(p + INI_LINE_MAX - 1, "\nk = v\n");
	/* The refused continuation leaves the key pending, whole. */
	ev = read_text(t);
	want = "S1 a|!3 line too long (max 4096 bytes)|K2 list=xxx";
	CHECK(strncmp(ev, want, strlen(want)) == 0);
	CHECK(strlen(ev) == strlen(want) - 3 + INI_LINE_MAX - strlen("list = ") +
	    strlen("|K4 k=v|E2|"));
	CHECK(strstr(ev, "x|K4 k=v|E2|") != NULL);
	free(t);
}

int
main(void)
{
	RUN(lines_and_comments);
	RUN(continuations);
	RUN(key_errors);
	RUN(section_errors);
	RUN(limits);
	return T_DONE();
}
