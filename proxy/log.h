/*
 * One line per event to stderr: logfmt ("ts=... level=info sid=7
 * event=delivery key=value ...") or JSON lines.  Callers pass key/value
 * pairs; quoting and escaping happen here only.
 */
#ifndef MXTLS_LOG_H
#define MXTLS_LOG_H

#include "config.h"

void log_setup(enum config_log_format format, enum config_log_level level);
int log_enabled(enum config_log_level level);

/*
 * log_kv(level, sid, event, "key1", "value1", "key2", "value2", ..., NULL).
 * sid 0 means no session.  NULL values are skipped.
 */
void log_kv(enum config_log_level level, unsigned long sid, const char *event,
    ...) __attribute__((sentinel));

#define log_info(sid, event, ...) log_kv(CONFIG_LOG_INFO, sid, event, __VA_ARGS__)
#define log_warn(sid, event, ...) log_kv(CONFIG_LOG_WARN, sid, event, __VA_ARGS__)
#define log_error(sid, event, ...) log_kv(CONFIG_LOG_ERROR, sid, event, __VA_ARGS__)
#define log_debug(sid, event, ...) log_kv(CONFIG_LOG_DEBUG, sid, event, __VA_ARGS__)

#endif
