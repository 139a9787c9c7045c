/*
 * The INI reader shared by the config file and the central document
 * (inireader.h).  Why not inih: Debian's libinih is built with a 200-byte
 * line buffer (INI_MAX_LINE), gives its handler no line numbers and cuts
 * section names at 49 bytes; config.c used to shadow its classification
 * of every line to make up for that, and document.c had a copy of its
 * grammar.  This is that grammar, once, with one line limit.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inireader.h"
#include "seen.h"

enum state {
	S_NONE,	 /* before the first section */
	S_READ,	 /* in a section whose keys are read */
	S_SKIP,	 /* in a section refused (or a broken header): keys ignored */
};

struct reader {
	const struct ini_ops *ops;
	void *user;
	int lineno;
	int have_prev; /* a key was seen since the header: continuations */
	enum state state;
	int open; /* ops->section() called, ops->section_end() not yet */
	char *sect;
	int nkeys;
	struct seenlist keys; /* of the current section */

	char *pkey; /* the pending key, waiting for continuation lines */
	char *pval;
	int pline;
	int plist;
	int pbad;
	int oom;
};

static void
rerr(struct reader *r, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
rerr(struct reader *r, int line, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0) {
		r->oom = 1;
		return;
	}
	r->ops->error(r->user, line, msg);
	free(msg);
}

/* isspace() of the C locale, as inih's. */
static int
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v';
}

static char *
rstrip(char *s)
{
	char *e = s + strlen(s);

	while (e > s && is_space((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static char *
lskip(char *s)
{
	while (*s != '\0' && is_space((unsigned char)*s))
		s++;
	return s;
}

/*
 * inih's find_chars_or_comment(): the first of chars, or a ";" after
 * white space (an inline comment), or the end.
 */
static char *
find_chars_or_comment(char *s, const char *chars)
{
	int was_space = 0;

	while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
	    !(was_space && *s == ';')) {
		was_space = is_space((unsigned char)*s);
		s++;
	}
	return s;
}

/* Hand the pending key over, its continuation lines joined. */
static void
flush(struct reader *r)
{
	if (r->pkey == NULL)
		return;
	r->ops->key(r->user, r->pkey, r->pval, r->pline, r->pbad);
	free(r->pkey);
	free(r->pval);
	r->pkey = r->pval = NULL;
}

static void
end_section(struct reader *r)
{
	flush(r);
	if (r->open)
		r->ops->section_end(r->user, r->nkeys);
	r->open = 0;
	r->state = S_SKIP;
	seen_clear(&r->keys);
}

static void
begin_section(struct reader *r, char *name)
{
	end_section(r);
	name = rstrip(lskip(name));
	free(r->sect);
	if ((r->sect = strdup(name)) == NULL) {
		r->oom = 1;
		return;
	}
	r->nkeys = 0;
	r->have_prev = 0;
	r->open = 1;
	if (r->ops->section(r->user, name, r->lineno) == 0)
		r->state = S_READ;
}

/* A "name = value" line (inih's handler call). */
static void
pair(struct reader *r, const char *name, const char *value)
{
	struct seen *prev;
	int kind;

	r->have_prev = 1;
	if (r->state == S_SKIP)
		return;
	if (r->state == S_NONE) {
		rerr(r, r->lineno, "%s: not in a section", name);
		return;
	}
	r->nkeys++;
	if (*name == '\0') {
		rerr(r, r->lineno, "[%s]: missing key name", r->sect);
		return;
	}
	if ((kind = r->ops->key_kind(r->user, name)) < 0) {
		rerr(r, r->lineno, "[%s] %s: unknown key", r->sect, name);
		return;
	}
	if ((prev = seen_find(&r->keys, name)) != NULL) {
		rerr(r, r->lineno, "[%s] %s: duplicate key (first at line %d)",
		    r->sect, name, prev->line);
		return;
	}
	r->pkey = strdup(name);
	r->pval = strdup(value);
	if (seen_add(&r->keys, name, r->lineno) == -1 || r->pkey == NULL ||
	    r->pval == NULL) {
		free(r->pkey);
		free(r->pval);
		r->pkey = r->pval = NULL;
		r->oom = 1;
		return;
	}
	r->pline = r->lineno;
	r->plist = kind;
	r->pbad = 0;
}

/* An indented line after a key: more of its value. */
static void
continuation(struct reader *r, char *v)
{
	size_t len;
	char *j;

	if (r->pkey == NULL || *v == '\0')
		return;
	if (!r->plist) {
		if (!r->pbad)
			rerr(r, r->lineno, "[%s] %s: duplicate key (an indented "
			    "line continues a single value)", r->sect, r->pkey);
		r->pbad = 1;
		return;
	}
	len = strlen(r->pval);
	if ((j = realloc(r->pval, len + strlen(v) + 2)) == NULL) {
		r->oom = 1;
		return;
	}
	j[len] = ',';
	strcpy(j + len + 1, v);
	r->pval = j;
}

/*
 * A line refused whole (too long, a NUL byte): what it would have been
 * still ends the pending key or the section, so that nothing after it
 * goes where it does not belong.
 */
static void
refuse_line(struct reader *r, const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && is_space((unsigned char)line[i]))
		i++;
	if (i == len || line[i] == ';' || line[i] == '#')
		return;
	if (r->have_prev && i > 0)
		return; /* a continuation: the key stays pending */
	if (line[i] == '[')
		end_section(r); /* keys up to the next header are ignored */
	else
		flush(r);
}

/* One line, NUL-terminated and writable: ini_parse_stream()'s loop body. */
static void
parse_line(struct reader *r, char *line)
{
	char *start = lskip(rstrip(line)), *end, *name, *value;

	if (*start == ';' || *start == '#')
		return;
	if (r->have_prev && *start != '\0' && start > line) {
		end = find_chars_or_comment(start, NULL);
		*end = '\0';
		continuation(r, rstrip(start));
		return;
	}
	if (*start == '[') {
		end = find_chars_or_comment(start + 1, "]");
		if (*end == ']') {
			*end = '\0';
			begin_section(r, start + 1);
		} else {
			end_section(r);
			rerr(r, r->lineno, "unterminated section header");
		}
		return;
	}
	if (*start == '\0')
		return;
	flush(r);
	end = find_chars_or_comment(start, "=:");
	if (*end != '=' && *end != ':') {
		rerr(r, r->lineno, "expected \"key = value\"");
		return;
	}
	*end = '\0';
	name = rstrip(start);
	value = end + 1;
	end = find_chars_or_comment(value, NULL);
	*end = '\0';
	pair(r, name, rstrip(lskip(value)));
}

/* The line at text of len bytes (without its LF), number r->lineno. */
static void
read_line(struct reader *r, const char *text, size_t len, char *buf)
{
	if (len > 0 && text[len - 1] == '\r')
		len--;
	if (r->lineno == 1 && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		text += 3;
		len -= 3;
	}
	if (memchr(text, '\0', len) != NULL) {
		rerr(r, r->lineno, "line contains a NUL byte");
		refuse_line(r, text, len);
	} else if (len > INI_LINE_MAX) {
		rerr(r, r->lineno, "line too long (max %d bytes)", INI_LINE_MAX);
		refuse_line(r, text, len);
	} else {
		memcpy(buf, text, len);
		buf[len] = '\0';
		parse_line(r, buf);
	}
}

int
ini_read(const char *text, size_t len, const struct ini_ops *ops, void *user)
{
	struct reader r;
	char *buf = malloc(INI_LINE_MAX + 1);
	size_t pos = 0, l;
	const char *nl;

	memset(&r, 0, sizeof(r));
	r.ops = ops;
	r.user = user;
	r.state = S_NONE;
	if (buf == NULL)
		return -1;
	while (pos < len && !r.oom) {
		nl = memchr(text + pos, '\n', len - pos);
		l = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		r.lineno++;
		read_line(&r, text + pos, l, buf);
		pos += l + (nl != NULL);
	}
	if (!r.oom)
		end_section(&r);
	free(buf);
	free(r.sect);
	free(r.pkey);
	free(r.pval);
	seen_clear(&r.keys);
	return r.oom ? -1 : 0;
}
