/*
 * Pure SMTP syntax (RFC 5321).  Every function works on bytes handed in
 * by the caller and returns a result or a static error string: no I/O, no
 * logging, no allocation, so all of it can be unit-tested and fuzzed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "smtp.h"

/* ASCII only: the C library's case functions depend on the locale. */
static int
smtp_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int
smtp_caseeq(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (smtp_lower((unsigned char)a[i]) !=
		    smtp_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

static int
smtp_isdigit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

ssize_t
smtp_line_length(const char *p, size_t len, size_t max, int *bare_lf)
{
	const char *lf;
	size_t n = len < max ? len : max;

	if (bare_lf != NULL)
		*bare_lf = 0;
	if ((lf = memchr(p, '\n', n)) == NULL)
		return len >= max ? -1 : 0;
	if (bare_lf != NULL)
		*bare_lf = lf == p || lf[-1] != '\r';
	return lf - p + 1;
}

/* Indexed by enum smtp_cmd. */
static const char *const smtp_cmd_names[] = {
	[SMTP_CMD_UNKNOWN] = "UNKNOWN",
	[SMTP_CMD_HELO] = "HELO",
	[SMTP_CMD_EHLO] = "EHLO",
	[SMTP_CMD_MAIL] = "MAIL",
	[SMTP_CMD_RCPT] = "RCPT",
	[SMTP_CMD_DATA] = "DATA",
	[SMTP_CMD_RSET] = "RSET",
	[SMTP_CMD_NOOP] = "NOOP",
	[SMTP_CMD_QUIT] = "QUIT",
	[SMTP_CMD_VRFY] = "VRFY",
	[SMTP_CMD_EXPN] = "EXPN",
	[SMTP_CMD_HELP] = "HELP",
	[SMTP_CMD_STARTTLS] = "STARTTLS",
	[SMTP_CMD_AUTH] = "AUTH",
	[SMTP_CMD_BDAT] = "BDAT",
};

#define SMTP_NCMDS (sizeof(smtp_cmd_names) / sizeof(smtp_cmd_names[0]))

const char *
smtp_cmd_name(enum smtp_cmd cmd)
{
	if ((unsigned)cmd >= SMTP_NCMDS)
		return smtp_cmd_names[SMTP_CMD_UNKNOWN];
	return smtp_cmd_names[cmd];
}

void
smtp_parse_command(const char *line, size_t len, struct smtp_command *out)
{
	size_t i, n;

	/* The line ending is not part of the command. */
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;

	for (n = 0; n < len && line[n] != ' '; n++)
		;
	out->verb = line;
	out->verblen = n;
	out->cmd = SMTP_CMD_UNKNOWN;
	for (i = SMTP_CMD_UNKNOWN + 1; i < SMTP_NCMDS; i++) {
		if (strlen(smtp_cmd_names[i]) == n &&
		    smtp_caseeq(line, smtp_cmd_names[i], n)) {
			out->cmd = (enum smtp_cmd)i;
			break;
		}
	}

	/* Exactly one separating space: anything more belongs to arg. */
	if (n < len)
		n++;
	out->arg = line + n;
	while (len > n && line[len - 1] == ' ')
		len--;
	out->arglen = len - n;
}

static const char smtp_err_prefix[] = "Syntax error in parameters";
static const char smtp_err_brackets[] = "Address must be in angle brackets";
static const char smtp_err_syntax[] = "Syntax error in address";
static const char smtp_err_char[] = "Invalid character in address";
static const char smtp_err_long[] = "Address too long";
static const char smtp_err_param[] = "Invalid character in parameters";

int
smtp_parse_path(const char *arg, size_t arglen, const char *prefix,
    char *addr, size_t addrlen, const char **params, size_t *paramslen,
    const char **err)
{
	size_t plen = strlen(prefix), i, open, close, a;
	int quoted = 0;
	unsigned char c;

	*params = "";
	*paramslen = 0;
	if (addrlen > 0)
		addr[0] = '\0';

	if (arglen < plen || !smtp_caseeq(arg, prefix, plen)) {
		*err = smtp_err_prefix;
		return -1;
	}
	/* "MAIL FROM: <a@b>" is not RFC 5321 but common in the wild. */
	for (i = plen; i < arglen && arg[i] == ' '; i++)
		;
	if (i == arglen || arg[i] != '<') {
		*err = smtp_err_brackets;
		return -1;
	}
	open = i++;

	/*
	 * Find the closing '>' outside quotes.  A quoted local part may hold
	 * spaces, '>' and backslash pairs; control characters are refused
	 * everywhere, bytes >= 0x80 are allowed for SMTPUTF8.
	 */
	for (; i < arglen; i++) {
		c = (unsigned char)arg[i];
		if (c < 0x20 || c == 0x7f) {
			*err = smtp_err_char;
			return -1;
		}
		if (quoted) {
			if (c == '\\') {
				if (++i == arglen)
					break;
				c = (unsigned char)arg[i];
				if (c < 0x20 || c == 0x7f) {
					*err = smtp_err_char;
					return -1;
				}
			} else if (c == '"')
				quoted = 0;
			continue;
		}
		if (c == '"')
			quoted = 1;
		else if (c == '>')
			break;
		else if (c == '<' || c == ' ') {
			*err = smtp_err_syntax;
			return -1;
		}
	}
	if (quoted) {
		*err = smtp_err_syntax;
		return -1;
	}
	if (i == arglen) {
		*err = smtp_err_brackets;
		return -1;
	}
	close = i;
	/* RFC 5321 4.5.3.1.3 counts the brackets in the path length. */
	if (close - open + 1 > SMTP_PATH_MAX) {
		*err = smtp_err_long;
		return -1;
	}

	/*
	 * A source route "@a,@b:" is obsolete and must be ignored (RFC 5321
	 * 4.1.1.3 and appendix C); it ends at the first ':' outside an
	 * address literal.
	 */
	a = open + 1;
	if (a < close && arg[a] == '@') {
		int lit = 0;

		for (; a < close; a++) {
			if (arg[a] == '[')
				lit = 1;
			else if (arg[a] == ']')
				lit = 0;
			else if (arg[a] == '"')
				break;
			else if (arg[a] == ':' && !lit)
				break;
		}
		if (a == close || arg[a] != ':' || a + 1 == close) {
			*err = smtp_err_syntax;
			return -1;
		}
		a++;
	}
	if (close - a >= addrlen) {
		*err = smtp_err_long;
		return -1;
	}
	memcpy(addr, arg + a, close - a);
	addr[close - a] = '\0';

	/* Parameters are separated from the path by one or more spaces. */
	i = close + 1;
	if (i < arglen) {
		if (arg[i] != ' ') {
			*err = smtp_err_syntax;
			return -1;
		}
		while (i < arglen && arg[i] == ' ')
			i++;
		while (arglen > i && arg[arglen - 1] == ' ')
			arglen--;
		/* Parameters are forwarded upstream: no CR, LF or other control. */
		for (a = i; a < arglen; a++) {
			c = (unsigned char)arg[a];
			if (c < 0x20 || c == 0x7f) {
				*err = smtp_err_param;
				return -1;
			}
		}
		if (i < arglen) {
			*params = arg + i;
			*paramslen = arglen - i;
		}
	}
	return 0;
}

const char *
smtp_addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

void
smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	p->reply.code = 0;
	p->reply.textlen = 0;
	p->reply.nlines = 0;
	p->err = NULL;
}

static enum smtp_reply_status
smtp_reply_fail(struct smtp_reply_parser *p, const char *err)
{
	p->err = err;
	return SMTP_REPLY_ERROR;
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply_parser *p, const char *data, size_t len,
    size_t *consumed)
{
	struct smtp_reply *r = &p->reply;
	const char *line;
	size_t off = 0, m;
	ssize_t n;
	int bare_lf, code, last;

	*consumed = 0;
	/* An error is final: the connection is not to be trusted any more. */
	if (p->err != NULL)
		return SMTP_REPLY_ERROR;

	for (;;) {
		n = smtp_line_length(data + off, len - off,
		    SMTP_REPLY_LINE_MAX, &bare_lf);
		if (n == 0)
			return SMTP_REPLY_MORE;
		if (n < 0)
			return smtp_reply_fail(p, "Reply line too long");

		/* The line without its ending; a bare LF is tolerated. */
		line = data + off;
		m = (size_t)n - (bare_lf ? 1 : 2);
		if (memchr(line, '\0', m) != NULL)
			return smtp_reply_fail(p, "NUL byte in reply");
		/* A CR that does not end the line could end one downstream. */
		if (memchr(line, '\r', m) != NULL)
			return smtp_reply_fail(p, "Bare CR in reply");
		if (m < 3 || !smtp_isdigit(line[0]) ||
		    !smtp_isdigit(line[1]) || !smtp_isdigit(line[2]) ||
		    (m > 3 && smtp_isdigit(line[3])))
			return smtp_reply_fail(p, "Reply code is not 3 digits");
		if (line[0] < '2' || line[0] > '5')
			return smtp_reply_fail(p, "Reply code out of range");
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (m == 3 || line[3] == ' ')
			last = 1;
		else if (line[3] == '-')
			last = 0;
		else
			return smtp_reply_fail(p, "Bad reply separator");
		if (r->nlines > 0 && code != r->code)
			return smtp_reply_fail(p, "Reply code changed mid-reply");
		if (r->nlines >= SMTP_REPLY_LINES_MAX)
			return smtp_reply_fail(p, "Too many reply lines");
		if (m + 2 > SMTP_REPLY_TEXT_MAX - r->textlen)
			return smtp_reply_fail(p, "Reply too long");

		memcpy(r->text + r->textlen, line, m);
		memcpy(r->text + r->textlen + m, "\r\n", 2);
		r->textlen += m + 2;
		r->code = code;
		r->nlines++;
		off += (size_t)n;
		/* Only whole lines of this reply: later bytes stay unread. */
		*consumed = off;
		if (last)
			return SMTP_REPLY_DONE;
	}
}

/* A reply line with its code and CRLF (RFC 5321 4.5.3.1.5). */
#define SMTP_REPLY_LINE_OCTETS 512

int
smtp_reply_append(struct smtp_reply *r, const char *suffix)
{
	size_t slen = strlen(suffix), start, len, keep;
	char *t = r->text;

	if (r->nlines == 0 || r->textlen < 5 ||
	    3 + 1 + slen + 2 > SMTP_REPLY_LINE_OCTETS)
		return -1;
	/* Every stored line ends in CRLF: the last starts after the one before. */
	for (start = r->textlen - 2; start > 0 && t[start - 1] != '\n';
	    start--)
		;
	len = r->textlen - 2 - start;
	keep = len;
	if (keep > SMTP_REPLY_LINE_OCTETS - 2 - 1 - slen)
		keep = SMTP_REPLY_LINE_OCTETS - 2 - 1 - slen;
	if (start + keep + 1 + slen + 2 > SMTP_REPLY_TEXT_MAX) {
		if (start + 3 + 1 + slen + 2 > SMTP_REPLY_TEXT_MAX)
			return -1;
		keep = SMTP_REPLY_TEXT_MAX - start - 1 - slen - 2;
	}
	/* A cut never splits a UTF-8 sequence (SMTPUTF8 replies). */
	while (keep > 4 && keep < len &&
	    ((unsigned char)t[start + keep] & 0xc0) == 0x80)
		keep--;
	t[start + keep] = ' ';
	memcpy(t + start + keep + 1, suffix, slen);
	memcpy(t + start + keep + 1 + slen, "\r\n", 2);
	r->textlen = start + keep + 1 + slen + 2;
	return 0;
}

int
smtp_reply_line(const struct smtp_reply *r, int i, const char **text,
    size_t *len)
{
	const char *p = r->text, *end = r->text + r->textlen, *eol;
	int k;

	if (i < 0 || i >= r->nlines)
		return -1;
	for (k = 0;; k++) {
		/* Every stored line ends in CRLF and holds no other CR. */
		eol = memchr(p, '\r', (size_t)(end - p));
		if (eol == NULL)
			return -1;
		if (k == i)
			break;
		p = eol + 2;
	}
	if (eol - p <= 4) {
		*text = eol;
		*len = 0;
	} else {
		*text = p + 4;
		*len = (size_t)(eol - p - 4);
	}
	return 0;
}

static const struct {
	const char *kw;
	unsigned flag;
} smtp_ehlo_kws[] = {
	{ "STARTTLS", SMTP_EXT_STARTTLS },
	{ "PIPELINING", SMTP_EXT_PIPELINING },
	{ "SIZE", SMTP_EXT_SIZE },
	{ "8BITMIME", SMTP_EXT_8BITMIME },
	{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
	{ "DSN", SMTP_EXT_DSN },
	{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
	{ "CHUNKING", SMTP_EXT_CHUNKING },
	{ "REQUIRETLS", SMTP_EXT_REQUIRETLS },
};

/* The SIZE value: absent or malformed is 0 (no limit announced). */
static unsigned long
smtp_ehlo_size(const char *p, size_t len)
{
	unsigned long v = 0;
	size_t i = 0;

	while (i < len && p[i] == ' ')
		i++;
	for (; i < len && smtp_isdigit((unsigned char)p[i]); i++) {
		/* Saturate rather than wrap into a small limit. */
		if (v > (ULONG_MAX - 9) / 10)
			return ULONG_MAX;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (i < len && p[i] != ' ')
		return 0;
	return v;
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *out)
{
	const char *text;
	size_t len, w, k;
	int i;

	out->ext = 0;
	out->size = 0;
	/* Line 0 is the greeting: its text is the server's, not keywords. */
	for (i = 1; smtp_reply_line(r, i, &text, &len) == 0; i++) {
		for (w = 0; w < len && text[w] != ' '; w++)
			;
		for (k = 0; k < sizeof(smtp_ehlo_kws) / sizeof(smtp_ehlo_kws[0]);
		    k++) {
			if (strlen(smtp_ehlo_kws[k].kw) != w ||
			    !smtp_caseeq(text, smtp_ehlo_kws[k].kw, w))
				continue;
			out->ext |= smtp_ehlo_kws[k].flag;
			if (smtp_ehlo_kws[k].flag == SMTP_EXT_SIZE)
				out->size = smtp_ehlo_size(text + w, len - w);
			break;
		}
	}
}

/*
 * DATA scanner states.  BOL means "just after CRLF" (or at the start of
 * data): only there does a "." begin a possible end marker.  A bare LF
 * leaves the scanner in TEXT, never BOL, so "\n.\n", "\n.\r\n" and the
 * like never end a message (SMTP smuggling, CVE-2023-51764).
 */
enum {
	SMTP_DS_BOL,   /* after CRLF */
	SMTP_DS_TEXT,  /* inside a line */
	SMTP_DS_CR,    /* CR inside a line, LF not yet seen */
	SMTP_DS_DOT,   /* "." after CRLF */
	SMTP_DS_DOTCR, /* ".\r" after CRLF */
	SMTP_DS_DONE,  /* end marker seen */
};

/* Longest line content: SMTP_TEXT_LINE_MAX counts the CRLF. */
#define SMTP_DS_LINE_MAX (SMTP_TEXT_LINE_MAX - 2)

void
smtp_data_scan_init(struct smtp_data_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->state = SMTP_DS_BOL;
}

/*
 * safe_len stops at the first problem byte and stays 0 in every later
 * call.  For a bare LF that is the LF; for an over-long line the byte that
 * made it too long.  A bare CR is only known to be bare at the byte after
 * it, which may arrive in a later chunk after the CR was already returned
 * as safe, so for consistency the CR itself always counts as safe and
 * safe_len stops at the byte after it.  A caller that normalises rather
 * than rejects must therefore hold back a trailing CR (s->state tells)
 * until the next byte is seen.  Line length restarts after any LF, bare or
 * not, because normalisation turns a bare LF into a line end.
 */
size_t
smtp_data_scan(struct smtp_data_scan *s, const char *p, size_t len,
    int *done, size_t *safe_len)
{
	size_t i, safe = SIZE_MAX;
	unsigned char c;

	*done = 0;
	if (s->state == SMTP_DS_DONE) {
		*done = 1;
		if (safe_len != NULL)
			*safe_len = 0;
		return 0;
	}
	if (s->bare_lf || s->bare_cr || s->long_line || s->nul)
		safe = 0;

#define SMTP_DS_PROBLEM(at)                                                \
	do {                                                               \
		if (safe == SIZE_MAX)                                      \
			safe = (at);                                       \
	} while (0)
#define SMTP_DS_CONTENT(at)                                                \
	do {                                                               \
		if (++s->linelen > SMTP_DS_LINE_MAX) {                     \
			s->long_line = 1;                                  \
			SMTP_DS_PROBLEM(at);                               \
		}                                                          \
	} while (0)

	for (i = 0; i < len; i++) {
		/*
		 * Inside a line most bytes are plain text: skip them in one
		 * run up to the next CR, LF or NUL, or the line limit (past
		 * it, the byte-wise path below marks the long line).
		 */
		if (s->state == SMTP_DS_TEXT && s->linelen < SMTP_DS_LINE_MAX) {
			size_t k = 0, n = len - i;

			if (n > SMTP_DS_LINE_MAX - s->linelen)
				n = SMTP_DS_LINE_MAX - s->linelen;
			while (k < n && p[i + k] != '\r' && p[i + k] != '\n' &&
			    p[i + k] != '\0')
				k++;
			s->linelen += k;
			i += k;
			if (i == len)
				break;
		}
		c = (unsigned char)p[i];

		/* Pending states first; a bare CR falls through to TEXT. */
		switch (s->state) {
		case SMTP_DS_CR:
		case SMTP_DS_DOTCR:
			if (c == '\n') {
				if (s->state == SMTP_DS_DOTCR) {
					s->state = SMTP_DS_DONE;
					*done = 1;
					i++;
					goto out;
				}
				s->state = SMTP_DS_BOL;
				s->linelen = 0;
				continue;
			}
			s->bare_cr = 1;
			SMTP_DS_PROBLEM(i);
			SMTP_DS_CONTENT(i); /* the CR stays in the line */
			s->state = SMTP_DS_TEXT;
			break;
		case SMTP_DS_DOT:
			if (c == '\r') {
				s->state = SMTP_DS_DOTCR;
				continue;
			}
			/* "..x" (dot-stuffed), ".x" or ".\n": ordinary text. */
			s->state = SMTP_DS_TEXT;
			break;
		case SMTP_DS_BOL:
			if (c == '.') {
				SMTP_DS_CONTENT(i);
				s->state = SMTP_DS_DOT;
				continue;
			}
			break;
		default:
			break;
		}

		if (c == '\r') {
			s->state = SMTP_DS_CR;
		} else if (c == '\n') {
			s->bare_lf = 1;
			SMTP_DS_PROBLEM(i);
			s->linelen = 0;
			s->state = SMTP_DS_TEXT;
		} else {
			/* NUL is no text (RFC 5321 2.3.8): never passed on. */
			if (c == '\0') {
				s->nul = 1;
				SMTP_DS_PROBLEM(i);
			}
			SMTP_DS_CONTENT(i);
			s->state = SMTP_DS_TEXT;
		}
	}
#undef SMTP_DS_PROBLEM
#undef SMTP_DS_CONTENT
out:
	s->total += i;
	/* Every byte of the marker ".\r\n" was added, in this or earlier calls. */
	if (*done)
		s->total -= 3;
	if (safe_len != NULL)
		*safe_len = safe < i ? safe : i;
	return i;
}

/*
 * Normaliser states.  BOL is after a real CRLF (or at the start of data),
 * BARE after a bare LF that became CRLF: only there is a leading "."
 * doubled.  DOT is a "." just passed on at BOL; CR and DOTCR hold a CR
 * back (nothing written yet) until the next byte shows whether it is bare.
 */
enum {
	SMTP_NM_BOL,
	SMTP_NM_BARE,
	SMTP_NM_TEXT,
	SMTP_NM_DOT,
	SMTP_NM_CR,
	SMTP_NM_DOTCR,
};

void
smtp_normalise_init(struct smtp_normalise *n)
{
	memset(n, 0, sizeof(*n));
	n->state = SMTP_NM_BOL;
}

static void
smtp_normalise_content(struct smtp_normalise *n, size_t k)
{
	n->linelen += k;
	if (n->linelen > SMTP_DS_LINE_MAX)
		n->long_line = 1;
}

/* One input byte: its output into e (at most 3 bytes), the state moved on. */
static size_t
smtp_normalise_byte(struct smtp_normalise *n, unsigned char c, char *e)
{
	size_t k = 0;

	if (n->state == SMTP_NM_CR || n->state == SMTP_NM_DOTCR) {
		if (c == '\n') {
			/* Only this ends a line as the client sent it. */
			n->state = SMTP_NM_BOL;
			n->linelen = 0;
			e[0] = '\r';
			e[1] = '\n';
			return 2;
		}
		/* The held CR was bare: a space, and c goes on in the line. */
		n->bare_cr++;
		e[k++] = ' ';
		smtp_normalise_content(n, 1);
		n->state = SMTP_NM_TEXT;
	}
	if (c == '\r') {
		n->state = n->state == SMTP_NM_DOT ? SMTP_NM_DOTCR : SMTP_NM_CR;
		return k;
	}
	if (c == '\n') {
		n->bare_lf++;
		/* ".\n" after CRLF would become the end marker: "..\r\n". */
		if (n->state == SMTP_NM_DOT) {
			n->dots++;
			e[k++] = '.';
		}
		e[k++] = '\r';
		e[k++] = '\n';
		n->state = SMTP_NM_BARE;
		n->linelen = 0;
		return k;
	}
	if (c == '.' && n->state == SMTP_NM_BARE) {
		/* A new line the client did not dot-stuff: stuff it. */
		n->dots++;
		e[k++] = '.';
		smtp_normalise_content(n, 1);
	}
	e[k++] = (char)c;
	smtp_normalise_content(n, 1);
	n->state = c == '.' && n->state == SMTP_NM_BOL ? SMTP_NM_DOT :
	    SMTP_NM_TEXT;
	return k;
}

size_t
smtp_normalise(struct smtp_normalise *n, const char *in, size_t len,
    char *out, size_t cap, size_t *produced)
{
	struct smtp_normalise t;
	size_t i, o = 0, k;
	unsigned char c;
	char e[3];

	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		if (cap - o >= sizeof(e)) {
			o += smtp_normalise_byte(n, c, out + o);
			continue;
		}
		/* Near the end of out: commit the byte only if it fits. */
		t = *n;
		k = smtp_normalise_byte(&t, c, e);
		if (k > cap - o)
			break;
		memcpy(out + o, e, k);
		o += k;
		*n = t;
	}
	*produced = o;
	return i;
}

/* ---- TLS-Required (RFC 8689 section 5) ---- */

static int
smtp_trn_value_is_no(const char *v, size_t n)
{
	while (n > 0 && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' ||
	    v[n - 1] == '\r' || v[n - 1] == '\n'))
		n--;
	return n == 2 && (v[0] == 'N' || v[0] == 'n') &&
	    (v[1] == 'O' || v[1] == 'o');
}

enum smtp_trn
smtp_tls_required_no(const char *p, size_t len, int complete)
{
	static const char field[] = "TLS-Required:";
	size_t fl = sizeof(field) - 1, at = 0, end, vend;
	const char *lf;

	for (;;) {
		if ((lf = memchr(p + at, '\n', len - at)) == NULL)
			return complete ? SMTP_TRN_ABSENT : SMTP_TRN_MORE;
		end = (size_t)(lf - p) + 1;
		/* A blank line ends the header; a lone "." the message. */
		if (end - at <= 2 && (p[at] == '\n' || p[at] == '\r'))
			return SMTP_TRN_ABSENT;
		if (end - at <= 3 && p[at] == '.' &&
		    (p[at + 1] == '\n' || p[at + 1] == '\r'))
			return SMTP_TRN_ABSENT;
		if (end - at > fl && strncasecmp(p + at, field, fl) == 0) {
			/* The value runs on over folded lines (SP or HT). */
			vend = end;
			while (vend < len && (p[vend] == ' ' || p[vend] == '\t')) {
				if ((lf = memchr(p + vend, '\n', len - vend)) ==
				    NULL)
					return complete ? SMTP_TRN_ABSENT :
					    SMTP_TRN_MORE;
				vend = (size_t)(lf - p) + 1;
			}
			if (vend == len && !complete)
				return SMTP_TRN_MORE; /* a fold may follow */
			if (smtp_trn_value_is_no(p + at + fl, vend - at - fl))
				return SMTP_TRN_NO;
			end = vend;
		}
		at = end;
	}
}

const char *
smtp_mail_params_check(const char *params, long max_size)
{
	char tmp[SMTP_PARAMS_MAX], *tok, *save = NULL;

	snprintf(tmp, sizeof(tmp), "%s", params);
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(tok, "SIZE=", 5) == 0) {
			char *end;
			unsigned long long n = strtoull(tok + 5, &end, 10);

			if (*end != '\0' || end == tok + 5)
				return "501 5.5.4 Bad SIZE parameter";
			if (n > (unsigned long long)max_size)
				return "552 5.3.4 Message size exceeds fixed "
				       "maximum message size";
		} else if (strcasecmp(tok, "BODY=8BITMIME") == 0 ||
		    strcasecmp(tok, "BODY=7BIT") == 0 ||
		    strcasecmp(tok, "SMTPUTF8") == 0 ||
		    strcasecmp(tok, "REQUIRETLS") == 0 ||
		    strncasecmp(tok, "RET=", 4) == 0 ||
		    strncasecmp(tok, "ENVID=", 6) == 0) {
			continue;
		} else
			return "555 5.5.4 Unsupported MAIL parameter";
	}
	return NULL;
}

int
smtp_has_param(const char *params, const char *word)
{
	char tmp[SMTP_PARAMS_MAX], *tok, *save = NULL;

	snprintf(tmp, sizeof(tmp), "%s", params);
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save))
		if (strcasecmp(tok, word) == 0)
			return 1;
	return 0;
}
