#include <stdlib.h>
#include <string.h>

#include "seen.h"

struct seen *
seen_find(const struct seenlist *l, const char *name)
{
	int i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return &l->v[i];
	return NULL;
}

int
seen_add(struct seenlist *l, const char *name, int line)
{
	char *p;

	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 16;
		struct seen *v = realloc(l->v, (size_t)cap * sizeof(*v));

		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if ((p = strdup(name)) == NULL)
		return -1;
	l->v[l->n].name = p;
	l->v[l->n].line = line;
	l->n++;
	return 0;
}

void
seen_clear(struct seenlist *l)
{
	int i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof(*l));
}
