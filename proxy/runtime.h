/* The config and what is built from it, shared by the sessions using it. */
#ifndef MXTLS_RUNTIME_H
#define MXTLS_RUNTIME_H

#include <stdio.h>

#include "config.h"
#include "document.h"

struct ev_loop;
typedef struct ssl_ctx_st SSL_CTX;

/*
 * Everything built from one reading of the config, and optionally from a
 * central policy document on top of it.  SIGHUP and a new central
 * document build a new one; sessions keep the one they started with
 * until they end.
 */
struct runtime {
	struct config cfg;	       /* a base runtime's own config */
	const struct config *cfgp;     /* &cfg, or the base's */
	struct runtime *base;	       /* derived: the base (a reference) */
	struct policy_document doc;    /* derived: the central document */
	struct policy_set merged;      /* derived: local + central */
	const struct policy_set *policy; /* what sessions look up */
	SSL_CTX **ctx;		       /* one per profile of *policy */
	struct dns *dns;	       /* the base's channel */
	int refs;
	unsigned long gen; /* unique per runtime made (never reused) */
};

/*
 * Read the config and build everything from it, or print every error
 * ("FILE:LINE: message") to `errors` and return NULL.  Without a loop
 * (mxtls -t, explain) no DNS channel is made.
 */
struct runtime *runtime_load(struct ev_loop *loop, const char *path,
    FILE *errors);
/*
 * A runtime whose policy is base's local policy merged with a central
 * document (local [match] sections win; docs/behaviour.md section 6).  On error
 * (the document does not parse or does not fit the local config) NULL
 * with every reason printed to `errors`.
 */
struct runtime *runtime_derive(struct runtime *base, const char *text,
    size_t len, const char *name, FILE *errors);
/* Drop a reference; the last one frees the runtime. */
void runtime_release(struct runtime *rt);

/* The resolver as [dns] configures it. */
struct dns *runtime_dns_new(struct ev_loop *loop, const struct config *cfg,
    char *err, size_t errlen);

#endif
