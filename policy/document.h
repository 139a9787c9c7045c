/*
 * The central policy document (docs/behaviour.md section 6): the config file's
 * INI format, restricted to [profile NAME] and [match PATTERN] sections
 * plus one [document] section carrying "serial = N".  Parsed from memory
 * (it arrives from mxtls-fetch or from the copy in state_dir), never
 * from a file; no I/O, no logging.  Any error refuses the whole document.
 */
#ifndef MXTLS_DOCUMENT_H
#define MXTLS_DOCUMENT_H

#include <stddef.h>

#include "policy.h"

#define DOCUMENT_MAX (4u * 1024 * 1024) /* bytes, as mxtls-fetch's cap */
#define DOCUMENT_ERRORS_MAX 100		/* then "too many errors" */

struct policy_document {
	struct policy_set set; /* finished: every match names a profile */
	unsigned long long serial;
	int serial_line;
	/*
	 * origin.file of every profile and match of set: the name given to
	 * document_parse() (the URL, say), copied.  Owned: a set built by
	 * document_merge() points into it, so free the document last.
	 */
	char *name;
};

/* "LINE: why" (or "why" for the document as a whole), sorted by line. */
struct document_errors {
	char **msg;
	int n;
};

/*
 * Parse len bytes at text.  Returns 0 with *doc filled, or -1 with
 * errs->n >= 1 and *doc empty (document_free() on it is harmless).
 *
 * The syntax is the config file's (policy/inireader.h): "key = value"
 * or "key: value", ";" and "#" comments at the start of a line, " ;"
 * comments after a value, indented lines continuing the previous key's
 * value (joined with "," for mx, an error for other keys), CRLF or LF,
 * an optional UTF-8 BOM, lines of at most INI_LINE_MAX bytes (a longer
 * one is an error, never cut).  Rules: unknown sections and keys,
 * repeated keys, repeated sections or patterns, empty [profile]/[match] sections, keys
 * outside a section, NUL bytes are errors; [document] serial (digits,
 * at most 2^63 - 1) is required; a profile named like a built-in one
 * ("opportunistic", "mandatory") is refused, since local matches rely on
 * those; ca_bundle must be an absolute path (the caller checks that it
 * exists).  Values are checked by policy_set_key(), the set by
 * policy_set_finish().
 */
int document_parse(const char *text, size_t len, const char *name,
    struct policy_document *doc, struct document_errors *errs);

void document_free(struct policy_document *doc);
void document_errors_free(struct document_errors *errs);

/*
 * The effective set from the local config's (finished) set and a parsed
 * document, into *out (policy_set_free() it; it points into doc's name
 * and local's origins, so they must outlive it):
 *   - profiles: all local ones (built-ins as the local config left them),
 *     then the document's whose names the local set lacks.  On a name
 *     clash the local profile wins, for the document's matches too: an
 *     operator may override a central profile locally;
 *   - matches: all local ones, then the document's whose pattern the
 *     local set lacks (local [match] wins for the same pattern); each
 *     document match refers to the profile of its name in *out;
 *   - the default profile: the local one.
 * Returns 0, or -1 with err (too many profiles or matches, out of memory,
 * or a merged match that policy_set_finish() refuses) and *out empty.
 */
int document_merge(const struct policy_set *local,
    const struct policy_document *doc, struct policy_set *out, char *err,
    size_t errlen);

#endif
