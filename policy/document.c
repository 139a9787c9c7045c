/*
 * The central policy document: parsed from memory into a policy_set,
 * and merged with the local config's set.
 *
 * Why not inih here.  inih's ini_parse_string() copies lines into a
 * 200-byte buffer and feeds the rest of a longer line back as a new line
 * (so "mx = <long list>" could turn its tail into a key or a section);
 * and Debian's inih 55 gives the handler no line numbers and cuts section
 * names at 49 bytes.  proxy/config.c works around all three by shadowing
 * inih's line classification in its reader.  A document from the network
 * gets the same treatment more simply: this file implements inih's
 * grammar itself (the rules of ini_parse_stream() in inih 55, with its
 * default options: multi-line values, ";" and "#" start comments, " ;"
 * inline comments, "=" or ":" separators, a BOM) without a line limit,
 * and then applies the same conventions as config.c: keys are checked
 * before policy_set_key() sees them, a list key's continuation lines are
 * joined with ",", errors are collected for every line and sorted.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "seen.h"

#define SERIAL_MAX 9223372036854775807ULL
#define WHY_MAX 512

enum kind {
	K_NONE, /* before the first section */
	K_DOCUMENT,
	K_PROFILE,
	K_MATCH,
	K_SKIP, /* a section already reported as wrong: keys ignored */
};

struct derr {
	int line;
	int seq; /* to keep errors of one line in order */
	char *msg;
};

struct parser {
	struct policy_document *doc;
	int lineno;
	int have_prev; /* inih's prev_name is set: continuations possible */
	int serial_seen; /* a serial key, valid or not: "missing" would lie */

	enum kind kind; /* the current section */
	char *sect;
	int sect_line;
	int sect_nkeys;
	char norm[POLICY_PATTERN_MAX]; /* normalized profile name / pattern */
	struct seenlist keys;	       /* keys of the current section */
	struct seenlist sects;	       /* every section, for duplicates */
	struct policy_set *scratch;    /* to validate section headers */

	int pending; /* a key waiting for continuation lines */
	char *pkey;
	char *pval;
	int pline;
	int plist;
	int pcont_err;

	struct derr *errs;
	int nerrs, caperrs;
	int oom;
};

static const char *const builtin_profiles[] = { "opportunistic", "mandatory",
	POLICY_MTA_STS_PROFILE };
static const char *const config_sections[] = { "proxy", "dns", "tls",
	"policy" };

static void
perr(struct parser *ps, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
perr(struct parser *ps, int line, const char *fmt, ...)
{
	char why[WHY_MAX];
	va_list ap;
	char *msg;
	int r;

	if (ps->nerrs > DOCUMENT_ERRORS_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (ps->nerrs == DOCUMENT_ERRORS_MAX) {
		snprintf(why, sizeof(why), "too many errors (only the first "
		    "%d are shown)", DOCUMENT_ERRORS_MAX);
		line = 0x7fffffff; /* sorts last */
	}
	if (line > 0 && line != 0x7fffffff)
		r = asprintf(&msg, "%d: %s", line, why);
	else
		r = asprintf(&msg, "%s", why);
	if (r < 0) {
		ps->oom = 1;
		return;
	}
	if (ps->nerrs == ps->caperrs) {
		int cap = ps->caperrs ? ps->caperrs * 2 : 8;
		struct derr *v = realloc(ps->errs, (size_t)cap * sizeof(*v));

		if (v == NULL) {
			free(msg);
			ps->oom = 1;
			return;
		}
		ps->errs = v;
		ps->caperrs = cap;
	}
	ps->errs[ps->nerrs].line = line;
	ps->errs[ps->nerrs].seq = ps->nerrs;
	ps->errs[ps->nerrs].msg = msg;
	ps->nerrs++;
}

static char *
xstrdup(struct parser *ps, const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		ps->oom = 1;
	return p;
}

/* isspace() of the C locale, which inih uses. */
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

static int
first_word(const char *s, const char *word)
{
	size_t n = strlen(word);

	return strncmp(s, word, n) == 0 &&
	    (s[n] == '\0' || is_space((unsigned char)s[n]));
}

/* The keys of each section; 1 for a list key, 0 a single value, -1 none. */
static int
key_def(enum kind kind, const char *key)
{
	static const char *const profile_keys[] = { "tls", "verify",
		"min_version", "max_version", "ciphers", "ca_bundle" };
	static const char *const match_keys[] = { "profile", "nexthop" };
	size_t i;

	switch (kind) {
	case K_DOCUMENT:
		return strcmp(key, "serial") == 0 ? 0 : -1;
	case K_PROFILE:
		for (i = 0; i < sizeof(profile_keys) / sizeof(profile_keys[0]);
		    i++)
			if (strcmp(key, profile_keys[i]) == 0)
				return 0;
		return strcmp(key, "mx") == 0 ? 1 : -1;
	case K_MATCH:
		for (i = 0; i < sizeof(match_keys) / sizeof(match_keys[0]); i++)
			if (strcmp(key, match_keys[i]) == 0)
				return 0;
		return strcmp(key, "mx") == 0 ? 1 : -1;
	default:
		return -1;
	}
}

static struct policy_match *
match_by_pattern(const struct policy_set *set, const char *pattern)
{
	int i;

	for (i = 0; i < set->nmatches; i++)
		if (strcmp(set->matches[i].pattern, pattern) == 0)
			return &set->matches[i];
	return NULL;
}

/* ---- applying keys ---- */

static int
parse_serial(const char *v, unsigned long long *out)
{
	unsigned long long n = 0;
	size_t i, len = strlen(v);

	if (len == 0 || len > 19)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (unsigned)(v[i] - '0');
	}
	if (n > SERIAL_MAX)
		return -1;
	*out = n;
	return 0;
}

/* Apply the pending key, its continuation lines joined. */
static void
flush(struct parser *ps)
{
	struct policy_document *doc = ps->doc;
	struct policy_origin o = { doc->name, ps->pline };
	char why[WHY_MAX];

	if (!ps->pending)
		return;
	ps->pending = 0;
	if (ps->pcont_err)
		goto done; /* reported at the continuation line */
	if (ps->kind == K_DOCUMENT) {
		if (parse_serial(ps->pval, &doc->serial) < 0)
			perr(ps, ps->pline, "[document] serial: \"%s\" is not a "
			    "whole number from 0 to %llu", ps->pval, SERIAL_MAX);
		else
			doc->serial_line = ps->pline;
		goto done;
	}
	if (strcmp(ps->pkey, "ca_bundle") == 0 && ps->pval[0] != '/') {
		/* No directory to resolve it against, unlike in the config. */
		perr(ps, ps->pline, "[%s] ca_bundle: \"%s\": a policy document "
		    "needs an absolute path", ps->sect, ps->pval);
		goto done;
	}
	if (policy_set_key(&doc->set, ps->sect, ps->pkey, ps->pval, o, why,
	    sizeof(why)) != 0)
		perr(ps, ps->pline, "[%s] %s", ps->sect, why);
done:
	free(ps->pkey);
	free(ps->pval);
	ps->pkey = ps->pval = NULL;
}

static void
end_section(struct parser *ps)
{
	struct policy_set *set = &ps->doc->set;
	struct policy_origin o = { ps->doc->name, ps->sect_line };
	struct policy_match *m;
	int i;

	flush(ps);
	if ((ps->kind == K_PROFILE || ps->kind == K_MATCH) &&
	    ps->sect_nkeys == 0)
		perr(ps, ps->sect_line, "[%s]: empty section", ps->sect);
	/* As config.c does: a section's origin is its header line. */
	if (ps->kind == K_PROFILE &&
	    (i = policy_profile_find(set, ps->norm)) >= 0 &&
	    set->profiles[i].origin.line != 0) {
		const struct policy_profile *p = &set->profiles[i];

		set->profiles[i].origin = o;
		if (p->min_version != 0 && p->max_version != 0 &&
		    p->min_version > p->max_version)
			perr(ps, p->origins[POLICY_P_MIN_VERSION].line,
			    "[%s] min_version: %s is above max_version %s",
			    ps->sect, policy_version_name(p->min_version),
			    policy_version_name(p->max_version));
	}
	if (ps->kind == K_MATCH && (m = match_by_pattern(set, ps->norm)) != NULL)
		m->origin = o;
	ps->kind = K_SKIP;
	seen_clear(&ps->keys);
}

/*
 * Validate a "[profile NAME]" or "[match PATTERN]" header by applying one
 * harmless key to a scratch set (as config.c does): the error lands on
 * the header line, once, and the normalized name comes back.
 */
static int
probe_section(struct parser *ps, const char *name, enum kind kind)
{
	struct policy_set *s = ps->scratch;
	struct policy_origin o = { ps->doc->name, ps->lineno };
	const char *key = kind == K_PROFILE ? "verify" : "profile";
	const char *value = kind == K_PROFILE ? "strict" : "opportunistic";
	char why[WHY_MAX];
	size_t klen = strlen(key);
	const char *w = why;
	int i;

	policy_set_free(s);
	policy_set_init(s);
	if (policy_set_key(s, name, key, value, o, why, sizeof(why)) != 0) {
		if (strncmp(w, key, klen) == 0 && w[klen] == ':' &&
		    w[klen + 1] == ' ')
			w += klen + 2;
		perr(ps, ps->lineno, "[%s]: %s", name, w);
		return -1;
	}
	if (kind == K_MATCH) {
		snprintf(ps->norm, sizeof(ps->norm), "%s", s->matches[0].pattern);
		return 0;
	}
	for (i = 0; i < s->nprofiles; i++)
		if (s->profiles[i].origin.line == ps->lineno) {
			snprintf(ps->norm, sizeof(ps->norm), "%s",
			    s->profiles[i].name);
			return 0;
		}
	return -1;
}

static void
begin_section(struct parser *ps, char *name)
{
	char key[POLICY_PATTERN_MAX + 16];
	struct seen *prev;
	enum kind k;
	size_t i;

	end_section(ps);
	name = rstrip(lskip(name));
	free(ps->sect);
	ps->sect = xstrdup(ps, name);
	ps->sect_line = ps->lineno;
	ps->sect_nkeys = 0;
	ps->norm[0] = '\0';
	ps->kind = K_SKIP;
	if (ps->sect == NULL)
		return;

	if (strcmp(name, "document") == 0) {
		k = K_DOCUMENT;
		snprintf(ps->norm, sizeof(ps->norm), "document");
	} else if (first_word(name, "profile") || first_word(name, "match")) {
		k = name[0] == 'p' ? K_PROFILE : K_MATCH;
		if (probe_section(ps, name, k) < 0)
			return;
		for (i = 0; k == K_PROFILE && i < sizeof(builtin_profiles) /
		    sizeof(builtin_profiles[0]); i++)
			if (strcmp(ps->norm, builtin_profiles[i]) == 0) {
				perr(ps, ps->lineno, "[%s]: a policy document "
				    "cannot change the built-in profile \"%s\" "
				    "(local matches rely on it): use another "
				    "name", name, ps->norm);
				return;
			}
	} else {
		for (i = 0; i < sizeof(config_sections) /
		    sizeof(config_sections[0]); i++)
			if (strcmp(name, config_sections[i]) == 0) {
				perr(ps, ps->lineno, "[%s]: only [document], "
				    "[profile NAME] and [match PATTERN] are "
				    "allowed in a policy document", name);
				return;
			}
		perr(ps, ps->lineno, "[%s]: unknown section", name);
		return;
	}
	snprintf(key, sizeof(key), "%d %s", (int)k, ps->norm);
	if ((prev = seen_find(&ps->sects, key)) != NULL) {
		perr(ps, ps->lineno, "[%s]: duplicate %s (first at line %d)",
		    name, k == K_MATCH ? "pattern" : "section", prev->line);
		return;
	}
	if (seen_add(&ps->sects, key, ps->lineno) == -1)
		ps->oom = 1;
	ps->kind = k;
}

/* A "name = value" line (inih's handler call). */
static void
pair(struct parser *ps, const char *name, const char *value)
{
	struct seen *prev;
	int list;

	ps->have_prev = 1;
	if (ps->kind == K_SKIP)
		return;
	if (ps->kind == K_NONE) {
		perr(ps, ps->lineno, "%s: not in a section", name);
		return;
	}
	ps->sect_nkeys++;
	if (*name == '\0') {
		perr(ps, ps->lineno, "[%s]: missing key name", ps->sect);
		return;
	}
	if ((list = key_def(ps->kind, name)) < 0) {
		perr(ps, ps->lineno, "[%s] %s: unknown key", ps->sect, name);
		return;
	}
	if ((prev = seen_find(&ps->keys, name)) != NULL) {
		perr(ps, ps->lineno, "[%s] %s: duplicate key (first at line %d)",
		    ps->sect, name, prev->line);
		return;
	}
	if (seen_add(&ps->keys, name, ps->lineno) == -1)
		ps->oom = 1;
	if (ps->kind == K_DOCUMENT)
		ps->serial_seen = 1;
	ps->pkey = xstrdup(ps, name);
	ps->pval = xstrdup(ps, value);
	if (ps->pkey == NULL || ps->pval == NULL) {
		free(ps->pkey);
		free(ps->pval);
		ps->pkey = ps->pval = NULL;
		return;
	}
	ps->pending = 1;
	ps->pline = ps->lineno;
	ps->plist = list;
	ps->pcont_err = 0;
}

/* An indented line after a key: more of its value. */
static void
continuation(struct parser *ps, char *v)
{
	size_t len;
	char *j;

	if (!ps->pending || *v == '\0')
		return;
	if (!ps->plist) {
		if (!ps->pcont_err)
			perr(ps, ps->lineno, "[%s] %s: duplicate key (an "
			    "indented line continues a single value)", ps->sect,
			    ps->pkey);
		ps->pcont_err = 1;
		return;
	}
	len = strlen(ps->pval);
	if ((j = realloc(ps->pval, len + strlen(v) + 2)) == NULL) {
		ps->oom = 1;
		return;
	}
	j[len] = ',';
	strcpy(j + len + 1, v);
	ps->pval = j;
}

/* A line inih never sees (a NUL in it): keep our state consistent. */
static void
refuse_line(struct parser *ps, const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && is_space((unsigned char)line[i]))
		i++;
	if (i == len || line[i] == ';' || line[i] == '#')
		return;
	if (ps->have_prev && i > 0)
		return; /* a continuation: the key stays pending, in error */
	if (line[i] == '[')
		end_section(ps); /* keys up to the next header are ignored */
	else
		flush(ps);
}

/* One line, NUL-terminated and writable: ini_parse_stream()'s loop body. */
static void
parse_line(struct parser *ps, char *line)
{
	char *start = line, *end, *name, *value;

	if (ps->lineno == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3;
	start = lskip(rstrip(start));
	if (*start == ';' || *start == '#')
		return;
	if (ps->have_prev && *start != '\0' && start > line) {
		end = find_chars_or_comment(start, NULL);
		*end = '\0';
		continuation(ps, rstrip(start));
		return;
	}
	if (*start == '[') {
		end = find_chars_or_comment(start + 1, "]");
		if (*end == ']') {
			*end = '\0';
			begin_section(ps, start + 1);
			ps->have_prev = 0;
		} else {
			end_section(ps);
			perr(ps, ps->lineno, "unterminated section header");
		}
		return;
	}
	if (*start == '\0')
		return;
	flush(ps);
	end = find_chars_or_comment(start, "=:");
	if (*end != '=' && *end != ':') {
		perr(ps, ps->lineno, "expected \"key = value\"");
		return;
	}
	*end = '\0';
	name = rstrip(start);
	value = end + 1;
	end = find_chars_or_comment(value, NULL);
	*end = '\0';
	value = rstrip(lskip(value));
	pair(ps, name, value);
}

static int
derr_cmp(const void *a, const void *b)
{
	const struct derr *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int
document_parse(const char *text, size_t len, const char *name,
    struct policy_document *doc, struct document_errors *errs)
{
	struct parser ps;
	struct policy_origin o;
	char why[WHY_MAX], *buf = NULL;
	size_t pos = 0, cap = 0, l, next;
	const char *nl;
	int i, failed;

	memset(doc, 0, sizeof(*doc));
	memset(errs, 0, sizeof(*errs));
	memset(&ps, 0, sizeof(ps));
	policy_set_init(&doc->set);
	ps.doc = doc;
	ps.kind = K_NONE;
	doc->name = xstrdup(&ps, name != NULL ? name : "policy document");
	ps.scratch = calloc(1, sizeof(*ps.scratch));
	if (ps.scratch == NULL)
		ps.oom = 1;
	else if (len > DOCUMENT_MAX)
		perr(&ps, 0, "document of %zu bytes (max %u)", len, DOCUMENT_MAX);
	else {
		while (pos < len && !ps.oom) {
			nl = memchr(text + pos, '\n', len - pos);
			l = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
			next = pos + l + (nl != NULL);
			ps.lineno++;
			if (memchr(text + pos, '\0', l) != NULL) {
				perr(&ps, ps.lineno, "line contains a NUL byte");
				refuse_line(&ps, text + pos, l);
				pos = next;
				continue;
			}
			if (l + 1 > cap) {
				char *nb = realloc(buf, l + 1);

				if (nb == NULL) {
					ps.oom = 1;
					break;
				}
				buf = nb;
				cap = l + 1;
			}
			memcpy(buf, text + pos, l);
			buf[l] = '\0';
			parse_line(&ps, buf);
			pos = next;
		}
		end_section(&ps);
		if (!ps.serial_seen && !ps.oom)
			perr(&ps, 0, "[document] serial: missing (required)");
		if (ps.nerrs == 0 && !ps.oom &&
		    policy_set_finish(&doc->set, &o, why, sizeof(why)) < 0)
			perr(&ps, o.line, "%s", why);
	}
	if (ps.oom)
		perr(&ps, 0, "out of memory");
	failed = ps.nerrs > 0 || ps.oom;
	if (ps.nerrs > 0) {
		qsort(ps.errs, (size_t)ps.nerrs, sizeof(*ps.errs), derr_cmp);
		errs->msg = calloc((size_t)ps.nerrs, sizeof(*errs->msg));
		if (errs->msg != NULL) {
			for (i = 0; i < ps.nerrs; i++)
				errs->msg[i] = ps.errs[i].msg;
			errs->n = ps.nerrs;
		} else
			for (i = 0; i < ps.nerrs; i++)
				free(ps.errs[i].msg);
	}
	free(ps.errs);
	free(buf);
	free(ps.sect);
	free(ps.pkey);
	free(ps.pval);
	seen_clear(&ps.keys);
	seen_clear(&ps.sects);
	if (ps.scratch != NULL) {
		policy_set_free(ps.scratch);
		free(ps.scratch);
	}
	if (failed) {
		document_free(doc);
		return -1;
	}
	return 0;
}

void
document_free(struct policy_document *doc)
{
	policy_set_free(&doc->set);
	free(doc->name);
	memset(doc, 0, sizeof(*doc));
}

void
document_errors_free(struct document_errors *errs)
{
	int i;

	for (i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	memset(errs, 0, sizeof(*errs));
}

/* ---- merging ---- */

static int
copy_str(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	return (*dst = strdup(src)) != NULL ? 0 : -1;
}

/* Strings of src into dst (whose scalars are already copied). */
static int
copy_mx(char **dst, int *ndst, char *const *src, int n)
{
	int i;

	*ndst = 0;
	for (i = 0; i < n; i++) {
		if ((dst[i] = strdup(src[i])) == NULL)
			return -1;
		*ndst = i + 1;
	}
	return 0;
}

/* Into out->profiles[out->nprofiles]: counted first, so a failure frees. */
static int
add_profile(struct policy_set *out, const struct policy_profile *src)
{
	struct policy_profile *p;

	if (out->nprofiles == POLICY_PROFILES_MAX)
		return -2;
	p = &out->profiles[out->nprofiles++];
	*p = *src;
	p->ciphers = p->ca_bundle = NULL;
	memset(p->mx, 0, sizeof(p->mx));
	p->nmx = 0;
	if (copy_str(&p->ciphers, src->ciphers) < 0 ||
	    copy_str(&p->ca_bundle, src->ca_bundle) < 0 ||
	    copy_mx(p->mx, &p->nmx, src->mx, src->nmx) < 0)
		return -1;
	return 0;
}

static int
add_match(struct policy_set *out, const struct policy_match *src, int profile)
{
	struct policy_match *m;

	if (out->nmatches == POLICY_MATCHES_MAX)
		return -2;
	m = &out->matches[out->nmatches++];
	*m = *src;
	m->profile = profile;
	m->nexthop = NULL;
	memset(m->mx, 0, sizeof(m->mx));
	m->nmx = 0;
	if (copy_str(&m->nexthop, src->nexthop) < 0 ||
	    copy_mx(m->mx, &m->nmx, src->mx, src->nmx) < 0)
		return -1;
	return 0;
}

static int
pattern_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
document_merge(const struct policy_set *local,
    const struct policy_document *doc, struct policy_set *out, char *err,
    size_t errlen)
{
	const struct policy_set *ds = &doc->set;
	const char **local_patterns = NULL;
	struct policy_origin o;
	char why[WHY_MAX];
	int i, r = 0, cap;

	memset(out, 0, sizeof(*out));
	cap = local->nmatches + ds->nmatches;
	if (cap > POLICY_MATCHES_MAX) {
		snprintf(err, errlen, "%d local and %d document matches: more "
		    "than %d", local->nmatches, ds->nmatches, POLICY_MATCHES_MAX);
		return -1;
	}
	if (cap > 0 && (out->matches = calloc((size_t)cap,
	    sizeof(*out->matches))) == NULL)
		goto nomem;
	out->matches_cap = cap;
	if (local->nmatches > 0 && (local_patterns = calloc(
	    (size_t)local->nmatches, sizeof(*local_patterns))) == NULL)
		goto nomem;

	for (i = 0; i < local->nprofiles && r == 0; i++)
		r = add_profile(out, &local->profiles[i]);
	for (i = 0; i < ds->nprofiles && r == 0; i++)
		if (!ds->profiles[i].builtin &&
		    policy_profile_find(local, ds->profiles[i].name) < 0)
			r = add_profile(out, &ds->profiles[i]);
	if (r == -2) {
		snprintf(err, errlen, "more than %d profiles, local and "
		    "document together", POLICY_PROFILES_MAX);
		goto fail;
	}
	if (r < 0)
		goto nomem;

	for (i = 0; i < local->nmatches && r == 0; i++) {
		local_patterns[i] = local->matches[i].pattern;
		r = add_match(out, &local->matches[i], local->matches[i].profile);
	}
	if (r < 0)
		goto nomem;
	if (local->nmatches > 0)
		qsort(local_patterns, (size_t)local->nmatches,
		    sizeof(*local_patterns), pattern_cmp);
	for (i = 0; i < ds->nmatches && r == 0; i++) {
		const struct policy_match *m = &ds->matches[i];
		const char *key = m->pattern;
		int p;

		if (local->nmatches > 0 && bsearch(&key, local_patterns,
		    (size_t)local->nmatches, sizeof(*local_patterns),
		    pattern_cmp) != NULL)
			continue; /* the local [match] wins */
		if (m->profile < 0 || m->profile >= ds->nprofiles ||
		    (p = policy_profile_find(out,
		    ds->profiles[m->profile].name)) < 0) {
			snprintf(err, errlen, "[match %s]: profile not found "
			    "(the document was not finished)", m->pattern);
			goto fail;
		}
		r = add_match(out, m, p);
	}
	if (r < 0)
		goto nomem;
	out->default_profile = local->default_profile;
	out->default_origin = local->default_origin;
	/*
	 * Each set was fine alone; a document match may now use a local
	 * profile of the same name that does not fit it.
	 */
	if (policy_set_finish(out, &o, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "merged with the local config: %s", why);
		goto fail;
	}
	free(local_patterns);
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	free(local_patterns);
	policy_set_free(out);
	return -1;
}
