/*
 * The central policy document (docs/behaviour.md section 6): fetched from
 * [policy] url every `refresh` seconds through mxtls-fetch, checked
 * (signature, serial, parse, fit with the local config) and handed to the
 * owner; the last good copy is kept in state_dir so a restart without
 * network still has it.
 */
#ifndef MXTLS_CENTRAL_H
#define MXTLS_CENTRAL_H

#include <stddef.h>

#include "config.h"

struct ev_loop;
struct dns;
struct fetcher;
struct central;

/*
 * Try a document on the running config: 0 when it is now in force, -1
 * with the reasons in err when it was refused (the old one stays).
 */
typedef int central_apply_fn(void *arg, const char *text, size_t len,
    const char *name, char *err, size_t errlen);

struct central *central_new(struct ev_loop *loop, struct dns *dns,
    struct fetcher *fetcher, const struct config *cfg,
    central_apply_fn *apply, void *arg);
void central_free(struct central *c);

/* Load the last good copy from state_dir and start the refresh timer. */
void central_start(struct central *c);

/* The document in force (NULL when none), for a rebuild on SIGHUP. */
const char *central_document(const struct central *c, size_t *len,
    const char **name);

/* A reloaded config may change url, refresh, keys: take them over. */
int central_configure(struct central *c, const struct config *cfg);
/*
 * The last good copy of the central document in cfg's state_dir, checked
 * against signing_key as at start-up (for `mxtls explain`).  NULL with
 * errno ENOENT when there is none; with err set when it is unreadable or
 * not validly signed.
 */
char *central_copy_read(const struct config *cfg, size_t *len, char *err,
    size_t errlen);

#endif
