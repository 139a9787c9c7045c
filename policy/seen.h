/*
 * Names already seen while reading an INI file, with the line of their
 * first appearance: the config and the central document both report a
 * duplicate section or key with where it first stood.
 */
#ifndef MXTLS_SEEN_H
#define MXTLS_SEEN_H

struct seen {
	char *name;
	int line;
};

struct seenlist {
	struct seen *v;
	int n, cap;
};

/* The entry for name, or NULL. */
struct seen *seen_find(const struct seenlist *l, const char *name);
/* Remember name at line (a copy); -1 when out of memory. */
int seen_add(struct seenlist *l, const char *name, int line);
/* Forget every name and free the list. */
void seen_clear(struct seenlist *l);

#endif
