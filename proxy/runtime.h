/* The config and what is built from it, shared by the sessions using it. */
#ifndef MXTLS_RUNTIME_H
#define MXTLS_RUNTIME_H

#include <stdio.h>

#include "config.h"

struct ev_loop;
typedef struct ssl_ctx_st SSL_CTX;

/*
 * Everything built from one reading of the config.  SIGHUP builds a new
 * one; sessions keep the one they started with until they end.
 */
struct runtime {
	struct config cfg;
	SSL_CTX **ctx; /* one per profile, indexed like cfg.policy.profiles */
	struct dns *dns;
	int refs;
};

/*
 * Read the config and build everything from it, or print every error
 * ("FILE:LINE: message") to `errors` and return NULL.  Without a loop
 * (mxtls -t, explain) no DNS channel is made.
 */
struct runtime *runtime_load(struct ev_loop *loop, const char *path,
    FILE *errors);
/* Drop a reference; the last one frees the runtime. */
void runtime_release(struct runtime *rt);

#endif
