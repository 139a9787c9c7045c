/*
 * [profile NAME] and [match PATTERN] sections, read the same way from
 * the config file (proxy/config.c) and from the central document
 * (policy/document.c): the header checked and normalized, duplicates
 * refused, keys handed to policy_set_key(), an empty section refused,
 * and the section's header line made the origin of its profile or match.
 * Messages come back in why, ready to report at the line given.
 */
#ifndef MXTLS_SECTIONS_H
#define MXTLS_SECTIONS_H

#include <stddef.h>

#include "policy.h"
#include "seen.h"

enum sections_kind { SECTIONS_OTHER, SECTIONS_PROFILE, SECTIONS_MATCH };

struct sections {
	struct policy_set *set; /* where the keys go */
	const char *file;	/* origin.file of what is set (not owned) */
	struct policy_set scratch; /* to check headers */
	struct seenlist seen;	   /* every section, for duplicates */
	enum sections_kind kind;   /* of the current section */
	char norm[POLICY_PATTERN_MAX]; /* its normalized name or pattern */
	int line;		       /* its header line */
};

void sections_init(struct sections *s, struct policy_set *set,
    const char *file);
void sections_free(struct sections *s);

/*
 * The header "[name]" at line.  SECTIONS_PROFILE or SECTIONS_MATCH when
 * it is one of those (s->norm: the profile name or the pattern as
 * policy/ writes it), SECTIONS_OTHER when it is neither (the caller
 * knows its own sections, and passes them to sections_other()), -1 with
 * why when it is invalid or a duplicate.
 */
int sections_begin(struct sections *s, const char *name, int line,
    char *why, size_t whylen);

/* The caller refuses the section begun last: its end says nothing. */
void sections_refuse(struct sections *s);

/* Any other section: -1 with why when it came before (else 0). */
int sections_other(struct sections *s, int id, const char *name, int line,
    char *why, size_t whylen);

/* A key of the current section "[sect]": 0, or -1 with why. */
int sections_key(struct sections *s, const char *sect, const char *key,
    const char *value, int line, char *why, size_t whylen);

/*
 * The end of the current section "[sect]", which had nkeys key lines.
 * Returns the index of its profile (into set->profiles) or match (into
 * set->matches), -1 when there is none, or -2 with why when the section
 * is empty.
 */
int sections_end(struct sections *s, const char *sect, int nkeys, char *why,
    size_t whylen);

#endif
