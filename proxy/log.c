#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

static enum config_log_format log_format = CONFIG_LOG_LOGFMT;
static enum config_log_level log_level = CONFIG_LOG_INFO;

static const char *const log_level_names[] = { "debug", "info", "warn",
	"error" };

void
log_setup(enum config_log_format format, enum config_log_level level)
{
	log_format = format;
	log_level = level;
}

int
log_enabled(enum config_log_level level)
{
	return level >= log_level;
}

/* Length of a valid UTF-8 sequence at p (RFC 3629), or 0. */
static size_t
log_utf8_len(const unsigned char *p)
{
	size_t n, i;
	unsigned cp;

	if (*p < 0x80)
		return 1;
	if (*p >= 0xc2 && *p <= 0xdf)
		n = 2, cp = *p & 0x1f;
	else if (*p >= 0xe0 && *p <= 0xef)
		n = 3, cp = *p & 0x0f;
	else if (*p >= 0xf0 && *p <= 0xf4)
		n = 4, cp = *p & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* No overlong forms, surrogates or code points past U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/*
 * Values from peers may hold anything: escape so one event stays one
 * line and the output stays valid UTF-8 (JSON parsers insist).
 */
static void
log_put_value(FILE *f, const char *v, int json)
{
	int quote = json || *v == '\0';
	const unsigned char *p;

	for (p = (const unsigned char *)v; !quote && *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    *p >= 0x7f)
			quote = 1;
	if (!quote) {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (p = (const unsigned char *)v; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				fprintf(f, json ? "\\u%04x" : "\\x%02x", *p);
			} else if (*p >= 0x80) {
				size_t n = log_utf8_len(p);

				if (n == 0) {
					/* A byte, not a character: say so. */
					fprintf(f, json ? "\\u%04x" : "\\x%02x",
					    *p);
				} else {
					fwrite(p, 1, n, f);
					p += n - 1;
				}
			} else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void
log_put(FILE *f, int *first, const char *k, const char *v)
{
	int json = log_format == CONFIG_LOG_JSON;

	if (json) {
		fputs(*first ? "{" : ",", f);
		log_put_value(f, k, 1);
		fputc(':', f);
	} else {
		if (!*first)
			fputc(' ', f);
		fputs(k, f);
		fputc('=', f);
	}
	log_put_value(f, v, json);
	*first = 0;
}

void
log_kv(enum config_log_level level, unsigned long sid, const char *event, ...)
{
	char ts[96], sidbuf[24];
	struct timeval tv;
	struct tm tm;
	const char *k, *v;
	va_list ap;
	int first = 1;
	char *line = NULL;
	size_t linelen = 0;
	FILE *f;

	if (!log_enabled(level))
		return;
	/* Build the line in memory so concurrent writers never interleave. */
	if ((f = open_memstream(&line, &linelen)) == NULL)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
	log_put(f, &first, "ts", ts);
	log_put(f, &first, "level", log_level_names[level]);
	if (sid != 0) {
		snprintf(sidbuf, sizeof(sidbuf), "%lu", sid);
		log_put(f, &first, "sid", sidbuf);
	}
	log_put(f, &first, "event", event);
	va_start(ap, event);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		if (v != NULL)
			log_put(f, &first, k, v);
	}
	va_end(ap);
	fputs(log_format == CONFIG_LOG_JSON ? "}\n" : "\n", f);
	fclose(f);
	fwrite(line, 1, linelen, stderr);
	free(line);
}
