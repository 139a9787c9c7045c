/*
 * A minimal table-friendly unit test harness: one line per test, and a
 * closing "N passed, N failed" line that tests/run.sh adds up.
 */
#ifndef MXTLS_T_H
#define MXTLS_T_H

#include <stdio.h>
#include <string.h>

static int t_passed, t_failed, t_cur;

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n",       \
			    __FILE__, __LINE__, #cond);                    \
			t_cur = 1;                                         \
		}                                                          \
	} while (0)

#define CHECK_INT(a, b)                                                    \
	do {                                                               \
		long long t_a = (long long)(a), t_b = (long long)(b);      \
		if (t_a != t_b) {                                          \
			fprintf(stderr, "%s:%d: %s == %lld, want %lld\n",  \
			    __FILE__, __LINE__, #a, t_a, t_b);             \
			t_cur = 1;                                         \
		}                                                          \
	} while (0)

#define CHECK_STR(a, b)                                                    \
	do {                                                               \
		const char *t_a = (a), *t_b = (b);                         \
		if (t_a == NULL || strcmp(t_a, t_b) != 0) {                \
			fprintf(stderr, "%s:%d: %s == \"%s\", want \"%s\"\n", \
			    __FILE__, __LINE__, #a, t_a ? t_a : "(null)", t_b); \
			t_cur = 1;                                         \
		}                                                          \
	} while (0)

#define RUN(fn)                                                            \
	do {                                                               \
		t_cur = 0;                                                 \
		fn();                                                      \
		printf("%s %s\n", t_cur ? "FAIL" : "ok  ", #fn);           \
		if (t_cur)                                                 \
			t_failed++;                                        \
		else                                                       \
			t_passed++;                                        \
	} while (0)

#define T_DONE()                                                           \
	(printf("%d passed, %d failed\n", t_passed, t_failed), t_failed != 0)

#endif
