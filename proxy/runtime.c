/*
 * A runtime: the config with everything built from it (TLS contexts, the
 * DNS channel).  Built completely before it is used, so a broken config
 * on SIGHUP leaves the running one untouched.
 */
#include <stdio.h>
#include <stdlib.h>

#include "dns.h"
#include "runtime.h"
#include "tls.h"

static void
runtime_free(struct runtime *rt)
{
	int i;

	if (rt->dns != NULL)
		dns_free(rt->dns);
	for (i = 0; rt->ctx != NULL && i < rt->cfg.policy.nprofiles; i++)
		if (rt->ctx[i] != NULL)
			tls_ctx_free(rt->ctx[i]);
	free(rt->ctx);
	config_free(&rt->cfg);
	free(rt);
}

void
runtime_release(struct runtime *rt)
{
	if (rt != NULL && --rt->refs == 0)
		runtime_free(rt);
}

/* One SSL_CTX per profile; a bad cipher list is a config error. */
static int
runtime_tls(struct runtime *rt, FILE *errors)
{
	const struct policy_set *ps = &rt->cfg.policy;
	char err[512];
	int i, bad = 0;

	if ((rt->ctx = calloc((size_t)ps->nprofiles, sizeof(*rt->ctx))) ==
	    NULL)
		return -1;
	for (i = 0; i < ps->nprofiles; i++) {
		const struct policy_profile *p = &ps->profiles[i];

		if ((rt->ctx[i] = tls_ctx_new(&rt->cfg, p, err,
		    sizeof(err))) != NULL)
			continue;
		if (p->origin.file != NULL)
			fprintf(errors, "%s:%d: %s\n", p->origin.file,
			    p->origin.line, err);
		else
			fprintf(errors, "%s: %s\n", rt->cfg.file, err);
		bad = 1;
	}
	return bad ? -1 : 0;
}

struct runtime *
runtime_load(struct ev_loop *loop, const char *path, FILE *errors)
{
	struct config_errors errs = { 0 };
	struct runtime *rt;
	char err[512];
	int i;

	if ((rt = calloc(1, sizeof(*rt))) == NULL) {
		fprintf(errors, "%s: out of memory\n", path);
		return NULL;
	}
	rt->refs = 1;
	if (config_load(path, &rt->cfg, &errs) == -1) {
		for (i = 0; i < errs.n; i++)
			fprintf(errors, "%s\n", errs.msg[i]);
		config_errors_free(&errs);
		free(rt);
		return NULL;
	}
	config_errors_free(&errs);
	if (runtime_tls(rt, errors) == -1)
		goto fail;
	if (loop != NULL && (rt->dns = dns_new(loop, rt->cfg.dns_servers,
	    rt->cfg.dns_timeout, err, sizeof(err))) == NULL) {
		fprintf(errors, "%s: [dns]: %s\n", path, err);
		goto fail;
	}
	return rt;
fail:
	runtime_free(rt);
	return NULL;
}
