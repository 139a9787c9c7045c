/*
 * The central policy document: parsed from memory into a policy_set,
 * and merged with the local config's set.
 *
 * The lines, sections and keys come from policy/inireader.c and the
 * [profile] and [match] sections go through policy/sections.c, as for
 * the config file; what is the document's own: [document] serial, no
 * built-in profile changed, absolute ca_bundle paths, the config's
 * sections refused, errors "LINE: why" sorted by line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "inireader.h"
#include "sections.h"

#define SERIAL_MAX 9223372036854775807ULL
#define WHY_MAX 512

enum kind {
	K_DOCUMENT = 1, /* a section id for sections_other() */
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
	int serial_seen; /* a serial key, valid or not */

	enum kind kind; /* the current section */
	char *sect;
	int sect_line;
	struct sections secs; /* [profile] and [match], and duplicates */

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

/* The keys of each section; 1 for a list key, 0 a single value, -1 none. */
static int
doc_key_kind(void *user, const char *key)
{
	enum kind kind = ((struct parser *)user)->kind;
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

/* A key with its continuation lines joined (bad: reported already). */
static void
doc_key(void *user, const char *key, const char *value, int line, int bad)
{
	struct parser *ps = user;
	struct policy_document *doc = ps->doc;
	char why[WHY_MAX];

	if (ps->kind == K_DOCUMENT)
		ps->serial_seen = 1; /* valid or not: "missing" would lie */
	if (bad)
		return;
	if (ps->kind == K_DOCUMENT) {
		if (parse_serial(value, &doc->serial) < 0)
			perr(ps, line, "[document] serial: \"%s\" is not a whole "
			    "number from 0 to %llu", value, SERIAL_MAX);
		else
			doc->serial_line = line;
		return;
	}
	if (strcmp(key, "ca_bundle") == 0 && value[0] != '/') {
		/* No directory to resolve it against, unlike in the config. */
		perr(ps, line, "[%s] ca_bundle: \"%s\": a policy document "
		    "needs an absolute path", ps->sect, value);
		return;
	}
	if (sections_key(&ps->secs, ps->sect, key, value, line, why,
	    sizeof(why)) < 0)
		perr(ps, line, "%s", why);
}

/* No [tls] to inherit from: both versions are in the profile. */
static void
check_versions(struct parser *ps, const struct policy_profile *p)
{
	if (p->min_version != 0 && p->max_version != 0 &&
	    p->min_version > p->max_version)
		perr(ps, p->origins[POLICY_P_MIN_VERSION].line,
		    "[%s] min_version: %s is above max_version %s", ps->sect,
		    policy_version_name(p->min_version),
		    policy_version_name(p->max_version));
}

static void
doc_section_end(void *user, int nkeys)
{
	struct parser *ps = user;
	char why[WHY_MAX];
	int i = sections_end(&ps->secs, ps->sect, nkeys, why, sizeof(why));

	if (i == -2)
		perr(ps, ps->sect_line, "%s", why);
	else if (ps->kind == K_PROFILE && i >= 0)
		check_versions(ps, &ps->doc->set.profiles[i]);
	ps->kind = K_SKIP;
}

/* "[document]", or one of the config's sections: what it says. */
static int
other_section(struct parser *ps, const char *name, int line)
{
	char why[WHY_MAX];
	size_t i;

	if (strcmp(name, "document") == 0) {
		if (sections_other(&ps->secs, K_DOCUMENT, name, line, why,
		    sizeof(why)) < 0) {
			perr(ps, line, "%s", why);
			return -1;
		}
		ps->kind = K_DOCUMENT;
		return 0;
	}
	for (i = 0; i < sizeof(config_sections) / sizeof(config_sections[0]);
	    i++)
		if (strcmp(name, config_sections[i]) == 0) {
			perr(ps, line, "[%s]: only [document], [profile NAME] "
			    "and [match PATTERN] are allowed in a policy "
			    "document", name);
			return -1;
		}
	perr(ps, line, "[%s]: unknown section", name);
	return -1;
}

/* "[name]" at line: 0 to read its keys, -1 when refused (reported). */
static int
doc_section(void *user, const char *name, int line)
{
	struct parser *ps = user;
	char why[WHY_MAX];
	size_t i;
	int k;

	free(ps->sect);
	ps->sect = xstrdup(ps, name);
	ps->sect_line = line;
	ps->kind = K_SKIP;
	if (ps->sect == NULL)
		return -1;
	if ((k = sections_begin(&ps->secs, name, line, why, sizeof(why))) < 0) {
		perr(ps, line, "%s", why);
		return -1;
	}
	if (k == SECTIONS_OTHER)
		return other_section(ps, name, line);
	for (i = 0; k == SECTIONS_PROFILE && i < sizeof(builtin_profiles) /
	    sizeof(builtin_profiles[0]); i++)
		if (strcmp(ps->secs.norm, builtin_profiles[i]) == 0) {
			perr(ps, line, "[%s]: a policy document cannot change "
			    "the built-in profile \"%s\" (local matches rely on "
			    "it): use another name", name, ps->secs.norm);
			sections_refuse(&ps->secs);
			return -1;
		}
	ps->kind = k == SECTIONS_PROFILE ? K_PROFILE : K_MATCH;
	return 0;
}

static void
doc_error(void *user, int line, const char *msg)
{
	perr(user, line, "%s", msg);
}

static const struct ini_ops doc_ops = { doc_section, doc_section_end,
	doc_key_kind, doc_key, doc_error };

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
	char why[WHY_MAX];
	int i, failed;

	memset(doc, 0, sizeof(*doc));
	memset(errs, 0, sizeof(*errs));
	memset(&ps, 0, sizeof(ps));
	policy_set_init(&doc->set);
	ps.doc = doc;
	ps.kind = K_SKIP;
	doc->name = xstrdup(&ps, name != NULL ? name : "policy document");
	sections_init(&ps.secs, &doc->set, doc->name);
	if (len > DOCUMENT_MAX)
		perr(&ps, 0, "document of %zu bytes (max %u)", len, DOCUMENT_MAX);
	else {
		if (ini_read(text, len, &doc_ops, &ps) < 0)
			ps.oom = 1;
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
	free(ps.sect);
	sections_free(&ps.secs);
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
