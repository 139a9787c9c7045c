/*
 * The INI reader of the config file (proxy/config.c) and of the central
 * policy document (policy/document.c): lines, sections, keys and their
 * continuation lines, with the same limits and the same errors for both.
 * Pure: it reads a buffer, never a file, and reports through callbacks.
 *
 * The grammar is inih's (ini_parse_stream() of inih 55 with its default
 * options), which the config used to be read with:
 *   - lines end with LF or CRLF; a UTF-8 BOM before the first is skipped;
 *   - white space around lines, names and values is trimmed;
 *   - a line starting with ";" or "#" is a comment, and so is the rest of
 *     a value from a ";" that follows white space ("a = b ; why");
 *   - "[name]" starts a section (what follows "]" is ignored);
 *   - "key = value" or "key: value" sets a key; no quoting;
 *   - an indented line after a key continues its value: joined with ","
 *     for a list key, an error ("duplicate key") for a single value; an
 *     indented "[...]" line continues too, as in inih.
 * Errors, each reported with its line and the reading going on: a line
 * longer than INI_LINE_MAX bytes or with a NUL byte (dropped, but what
 * it would have been still ends the pending key, or the section for a
 * header; an indented one leaves the key pending), a header without
 * "]", a line without "=" or ":", a key before any section, an empty
 * key name, an unknown key, a key given twice in a section.
 */
#ifndef MXTLS_INIREADER_H
#define MXTLS_INIREADER_H

#include <stddef.h>

/* The longest line, without its end: 4 KiB (inih's was 199 bytes). */
#define INI_LINE_MAX 4096

struct ini_ops {
	/*
	 * "[name]" at line, name trimmed: 0 to read the section's keys, -1
	 * to skip them (the callback has reported why).
	 */
	int (*section)(void *user, const char *name, int line);
	/*
	 * The end of the section begun last (read or skipped), after its
	 * last key; nkeys: how many key lines it had, known or not.
	 */
	void (*section_end)(void *user, int nkeys);
	/* A key of the current section: 1 a list, 0 a single value, -1 unknown. */
	int (*key_kind)(void *user, const char *key);
	/*
	 * A key and its whole value (continuation lines joined), at line.
	 * bad: an indented line tried to continue a single value (reported).
	 */
	void (*key)(void *user, const char *key, const char *value, int line,
	    int bad);
	/* An error at line; the message names the section and key if any. */
	void (*error)(void *user, int line, const char *msg);
};

/*
 * Read len bytes at text (NUL bytes included: they are errors).  Returns
 * 0, or -1 when out of memory (the reading stopped).
 */
int ini_read(const char *text, size_t len, const struct ini_ops *ops,
    void *user);

#endif
