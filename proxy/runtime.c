/*
 * A runtime: the config with everything built from it (TLS contexts, the
 * DNS channel).  Built completely before it is used, so a broken config
 * on SIGHUP, or a broken central document, leaves the running one as it
 * was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns.h"
#include "runtime.h"
#include "tls.h"

/* Runtimes are numbered so nothing built for one is taken for another. */
static unsigned long runtime_gen;

static void
runtime_free(struct runtime *rt)
{
	int i;

	for (i = 0; rt->ctx != NULL && i < rt->policy->nprofiles; i++)
		if (rt->ctx[i] != NULL)
			tls_ctx_free(rt->ctx[i]);
	free(rt->ctx);
	if (rt->base != NULL) {
		policy_set_free(&rt->merged);
		document_free(&rt->doc);
		runtime_release(rt->base);
	} else {
		if (rt->dns != NULL)
			dns_free(rt->dns);
		config_free(&rt->cfg);
	}
	free(rt);
}

void
runtime_release(struct runtime *rt)
{
	if (rt != NULL && --rt->refs == 0)
		runtime_free(rt);
}

/* One SSL_CTX per profile; a bad cipher list or bundle is an error. */
static int
runtime_tls(struct runtime *rt, FILE *errors)
{
	const struct policy_set *ps = rt->policy;
	char err[512];
	int i, bad = 0;

	if ((rt->ctx = calloc((size_t)ps->nprofiles, sizeof(*rt->ctx))) ==
	    NULL)
		return -1;
	for (i = 0; i < ps->nprofiles; i++) {
		const struct policy_profile *p = &ps->profiles[i];

		if ((rt->ctx[i] = tls_ctx_new(rt->cfgp, p, err,
		    sizeof(err))) != NULL)
			continue;
		if (p->origin.file != NULL)
			fprintf(errors, "%s:%d: %s\n", p->origin.file,
			    p->origin.line, err);
		else
			fprintf(errors, "%s: %s\n", rt->cfgp->file, err);
		bad = 1;
	}
	return bad ? -1 : 0;
}


struct dns *
runtime_dns_new(struct ev_loop *loop, const struct config *cfg, char *err,
    size_t errlen)
{
	struct dns_options o;

	o.servers = cfg->dns_servers;
	o.timeout = cfg->dns_timeout;
	o.dnssec = cfg->dnssec == CONFIG_DNSSEC_OFF ? DNS_DNSSEC_OFF :
	    cfg->dnssec == CONFIG_DNSSEC_TRUST_AD ? DNS_DNSSEC_TRUST_AD :
	    DNS_DNSSEC_VALIDATE;
	o.trust_anchor = cfg->trust_anchor != NULL ? cfg->trust_anchor :
	    DEFAULT_TRUST_ANCHOR;
	return dns_new(loop, &o, err, errlen);
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
	rt->gen = ++runtime_gen;
	rt->cfgp = &rt->cfg;
	rt->policy = &rt->cfg.policy;
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
	if (loop != NULL && (rt->dns = runtime_dns_new(loop, &rt->cfg, err,
	    sizeof(err))) == NULL) {
		fprintf(errors, "%s: [dns]: %s\n", path, err);
		goto fail;
	}
	return rt;
fail:
	runtime_free(rt);
	return NULL;
}

/* A document names CA bundles by absolute path: they must exist here. */
static int
runtime_check_bundles(const struct policy_document *doc, FILE *errors)
{
	int i, bad = 0;

	for (i = 0; i < doc->set.nprofiles; i++) {
		const struct policy_profile *p = &doc->set.profiles[i];

		if (p->ca_bundle != NULL && access(p->ca_bundle, R_OK) != 0) {
			fprintf(errors, "%s:%d: profile %s: ca_bundle %s is "
			    "not readable here\n", doc->name, p->origin.line,
			    p->name, p->ca_bundle);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

struct runtime *
runtime_derive(struct runtime *base, const char *text, size_t len,
    const char *name, FILE *errors)
{
	struct document_errors errs = { 0 };
	struct runtime *rt;
	char err[512];
	int i;

	if ((rt = calloc(1, sizeof(*rt))) == NULL) {
		fprintf(errors, "%s: out of memory\n", name);
		return NULL;
	}
	if (document_parse(text, len, name, &rt->doc, &errs) == -1) {
		for (i = 0; i < errs.n; i++)
			fprintf(errors, "%s:%s\n", name, errs.msg[i]);
		document_errors_free(&errs);
		free(rt);
		return NULL;
	}
	document_errors_free(&errs);
	if (runtime_check_bundles(&rt->doc, errors) == -1 ||
	    document_merge(base->policy, &rt->doc, &rt->merged, err,
	    sizeof(err)) == -1) {
		if (err[0] != '\0')
			fprintf(errors, "%s: %s\n", name, err);
		document_free(&rt->doc);
		free(rt);
		return NULL;
	}
	rt->refs = 1;
	rt->gen = ++runtime_gen;
	rt->base = base;
	base->refs++;
	rt->cfgp = base->cfgp;
	rt->dns = base->dns;
	rt->policy = &rt->merged;
	if (runtime_tls(rt, errors) == -1) {
		runtime_free(rt);
		return NULL;
	}
	return rt;
}
