/*
 * [profile NAME] and [match PATTERN] sections of the config and of the
 * central document (sections.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sections.h"

void
sections_init(struct sections *s, struct policy_set *set, const char *file)
{
	memset(s, 0, sizeof(*s));
	s->set = set;
	s->file = file;
	policy_set_init(&s->scratch);
}

void
sections_free(struct sections *s)
{
	policy_set_free(&s->scratch);
	seen_clear(&s->seen);
	memset(s, 0, sizeof(*s));
}

static int
first_word(const char *s, const char *word)
{
	size_t n = strlen(word);

	return strncmp(s, word, n) == 0 &&
	    (s[n] == '\0' || isspace((unsigned char)s[n]));
}

/*
 * Check a header by applying one harmless key to a scratch set: an error
 * lands on the header line, once, and the normalized name comes back.
 */
static int
probe(struct sections *s, const char *name, char *why, size_t whylen)
{
	struct policy_set *set = &s->scratch;
	struct policy_origin o = { s->file, s->line };
	const char *key = s->kind == SECTIONS_PROFILE ? "verify" : "profile";
	const char *value = s->kind == SECTIONS_PROFILE ? "strict" :
	    "opportunistic";
	char err[512];
	size_t klen = strlen(key);
	const char *w = err;
	int i, r;

	policy_set_free(set);
	policy_set_init(set);
	r = policy_set_key(set, name, key, value, o, err, sizeof(err));
	if (r > 0) {
		snprintf(why, whylen, "[%s]: unknown section", name);
		return -1;
	}
	if (r < 0) {
		/* "verify: why" is about the header, not about verify. */
		if (strncmp(w, key, klen) == 0 && w[klen] == ':' &&
		    w[klen + 1] == ' ')
			w += klen + 2;
		snprintf(why, whylen, "[%s]: %s", name, w);
		return -1;
	}
	if (s->kind == SECTIONS_MATCH) {
		snprintf(s->norm, sizeof(s->norm), "%s", set->matches[0].pattern);
		return 0;
	}
	for (i = 0; i < set->nprofiles; i++)
		if (set->profiles[i].origin.line == s->line) {
			snprintf(s->norm, sizeof(s->norm), "%s",
			    set->profiles[i].name);
			return 0;
		}
	snprintf(why, whylen, "[%s]: unknown section", name);
	return -1;
}

/* Remember the section id/norm; -1 with why when it came before. */
static int
remember(struct sections *s, int id, const char *norm, const char *name,
    const char *what, char *why, size_t whylen)
{
	char key[POLICY_PATTERN_MAX + 16];
	struct seen *prev;

	snprintf(key, sizeof(key), "%d %s", id, norm);
	if ((prev = seen_find(&s->seen, key)) != NULL) {
		snprintf(why, whylen, "[%s]: duplicate %s (first at line %d)",
		    name, what, prev->line);
		return -1;
	}
	if (seen_add(&s->seen, key, s->line) == -1) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

int
sections_begin(struct sections *s, const char *name, int line, char *why,
    size_t whylen)
{
	s->kind = SECTIONS_OTHER;
	s->norm[0] = '\0';
	s->line = line;
	if (first_word(name, "profile"))
		s->kind = SECTIONS_PROFILE;
	else if (first_word(name, "match"))
		s->kind = SECTIONS_MATCH;
	else
		return SECTIONS_OTHER;
	if (probe(s, name, why, whylen) < 0 ||
	    remember(s, -(int)s->kind, s->norm, name, s->kind ==
	    SECTIONS_MATCH ? "pattern" : "section", why, whylen) < 0) {
		s->kind = SECTIONS_OTHER;
		return -1;
	}
	return (int)s->kind;
}

void
sections_refuse(struct sections *s)
{
	s->kind = SECTIONS_OTHER;
}

int
sections_other(struct sections *s, int id, const char *name, int line,
    char *why, size_t whylen)
{
	s->kind = SECTIONS_OTHER;
	s->line = line;
	return remember(s, id, name, name, "section", why, whylen);
}

int
sections_key(struct sections *s, const char *sect, const char *key,
    const char *value, int line, char *why, size_t whylen)
{
	struct policy_origin o = { s->file, line };
	char err[512];

	/* policy/ says "key: why". */
	if (policy_set_key(s->set, sect, key, value, o, err, sizeof(err)) != 0) {
		snprintf(why, whylen, "[%s] %s", sect, err);
		return -1;
	}
	return 0;
}

/* The index of the profile or match of the current section, or -1. */
static int
current(const struct sections *s)
{
	int i;

	if (s->kind == SECTIONS_PROFILE)
		return policy_profile_find(s->set, s->norm);
	for (i = 0; i < s->set->nmatches; i++)
		if (strcmp(s->set->matches[i].pattern, s->norm) == 0)
			return i;
	return -1;
}

int
sections_end(struct sections *s, const char *sect, int nkeys, char *why,
    size_t whylen)
{
	struct policy_origin o = { s->file, s->line };
	int i = -1;

	if (s->kind != SECTIONS_OTHER && nkeys == 0) {
		snprintf(why, whylen, "[%s]: empty section", sect);
		i = -2;
	} else if (s->kind != SECTIONS_OTHER && (i = current(s)) >= 0) {
		/* The header says where a profile or match was declared. */
		if (s->kind == SECTIONS_MATCH)
			s->set->matches[i].origin = o;
		else if (s->set->profiles[i].origin.line != 0)
			s->set->profiles[i].origin = o;
	}
	s->kind = SECTIONS_OTHER;
	return i;
}
