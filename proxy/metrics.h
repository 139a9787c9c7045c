/*
 * Process-wide metrics in the Prometheus text exposition format.  A metric
 * is a family (name, type, help; declared once in metrics.c's table) and
 * a label set written as Prometheus text ("outcome=\"tls\",profile=\"x\"",
 * or "" for none).  Updating is cheap and never fails loudly: a label set
 * beyond the per-family limit is folded into label set "overflow=\"1\"",
 * so a hostile peer cannot grow memory through labels; so is label text
 * that is not valid exposition text (build it with metrics_labels()).  An
 * unknown family, or an update of the wrong kind (metrics_inc on a gauge),
 * is ignored.  Use one label order per family: the text is the key.
 */
#ifndef MXTLS_METRICS_H
#define MXTLS_METRICS_H

#include <stdio.h>

/* Counters: only go up. */
void metrics_inc(const char *family, const char *labels, double by);
/* Gauges: set or move. */
void metrics_set(const char *family, const char *labels, double v);
void metrics_add(const char *family, const char *labels, double by);
/* Histograms: buckets fixed per family in metrics.c. */
void metrics_observe(const char *family, const char *labels, double v);

/* Write every family in the exposition format (for GET /metrics). */
void metrics_write(FILE *out);
/* Forget everything (tests). */
void metrics_reset(void);
/*
 * The value of one series (tests): a counter's or gauge's value, a
 * histogram's count; NAN when the family is unknown or the label set was
 * never updated.
 */
double metrics_value(const char *family, const char *labels);

/*
 * Build a label set safely: values are escaped per the exposition format
 * (backslash, double quote, newline).  metrics_labels(buf, len, "outcome",
 * "tls", "profile", name, NULL).  Returns buf, or the overflow label set
 * when the result does not fit in len or a name is not a label name; bytes
 * of a value that are not UTF-8 become '?'.
 */
const char *metrics_labels(char *buf, size_t len, ...)
    __attribute__((sentinel));

#endif
