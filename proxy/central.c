#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "central.h"
#include "clock.h"
#include "dns.h"
#include "document.h"
#include "fetcher.h"
#include "file.h"
#include "log.h"
#include "metrics.h"
#include "sign.h"

#define CENTRAL_SIG_MAX 1024
#define CENTRAL_FETCH_TIMEOUT_MS 60000
#define CENTRAL_CONNECT_TIMEOUT_MS 10000

struct central {
	struct ev_loop *loop;
	struct dns *dns;
	struct fetcher *fetcher;
	central_apply_fn *apply;
	void *arg;

	/* from the config */
	char *url;
	char *host; /* of url, for the address lookup */
	char *ca_bundle;
	char *signing_key;
	double refresh;
	double max_stale;
	char *path;	 /* state_dir/central-policy: the last good copy */
	char *meta_path; /* ... .meta: serial, validators, fetched-at */
	char *sig_path;	 /* ... .sig: its signature, with signing_key */

	/* the document in force */
	char *text;
	size_t len;
	unsigned long long serial;
	int have_serial;
	char *etag;
	char *last_modified;
	time_t fetched_at; /* last time the server confirmed it */

	/* a refresh in progress */
	struct dns_query *dq;
	struct fetch_call *call;
	struct fetch_addr addrs[FETCHPROTO_ADDRS_MAX];
	int naddrs;
	char *pending; /* a fetched document waiting for its signature */
	size_t pending_len;
	unsigned long long pending_serial;
	char *pending_etag;
	char *pending_lm;

	ev_timer timer;
};

static void central_refresh(struct central *c);

static void
central_count(const char *outcome)
{
	char l[96];

	snprintf(l, sizeof(l), "source=\"central\",outcome=\"%s\"", outcome);
	metrics_inc("mxtls_policy_fetches_total", l, 1);
}

static char *
central_strdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* "https://host[:port]/..." → host (IPv6 literals keep no brackets). */
static char *
central_url_host(const char *url)
{
	const char *h = url + 8, *end;

	if (*h == '[') {
		h++;
		end = strchr(h, ']');
	} else
		end = h + strcspn(h, ":/?#");
	if (end == NULL || end == h)
		return NULL;
	return strndup(h, (size_t)(end - h));
}

/* What central_configure() took from the config. */
static void
central_drop_config(struct central *c)
{
	free(c->url);
	free(c->host);
	free(c->ca_bundle);
	free(c->signing_key);
	free(c->path);
	free(c->meta_path);
	free(c->sig_path);
}

int
central_configure(struct central *c, const struct config *cfg)
{
	char *host = cfg->policy_url ? central_url_host(cfg->policy_url) :
	    NULL;

	if (cfg->policy_url != NULL && host == NULL)
		return -1;
	central_drop_config(c);
	c->url = central_strdup(cfg->policy_url);
	c->host = host;
	c->ca_bundle = central_strdup(cfg->https_ca_bundle);
	c->signing_key = central_strdup(cfg->signing_key);
	c->refresh = cfg->policy_refresh;
	c->max_stale = cfg->policy_max_stale;
	if (asprintf(&c->path, "%s/central-policy", cfg->state_dir) == -1)
		c->path = NULL;
	if (asprintf(&c->meta_path, "%s/central-policy.meta",
	    cfg->state_dir) == -1)
		c->meta_path = NULL;
	if (asprintf(&c->sig_path, "%s/central-policy.sig",
	    cfg->state_dir) == -1)
		c->sig_path = NULL;
	return c->path != NULL && c->meta_path != NULL && c->sig_path != NULL ?
	    0 : -1;
}

static void
central_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	central_refresh(w->data);
}

struct central *
central_new(struct ev_loop *loop, struct dns *dns, struct fetcher *fetcher,
    const struct config *cfg, central_apply_fn *apply, void *arg)
{
	struct central *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->loop = loop;
	c->dns = dns;
	c->fetcher = fetcher;
	c->apply = apply;
	c->arg = arg;
	if (central_configure(c, cfg) == -1) {
		central_free(c);
		return NULL;
	}
	ev_timer_init(&c->timer, central_timer_cb, 0., 0.);
	c->timer.data = c;
	return c;
}

static void
central_clear_pending(struct central *c)
{
	free(c->pending);
	free(c->pending_etag);
	free(c->pending_lm);
	c->pending = c->pending_etag = c->pending_lm = NULL;
	c->pending_len = 0;
}

void
central_free(struct central *c)
{
	if (c == NULL)
		return;
	ev_timer_stop(c->loop, &c->timer);
	if (c->dq != NULL)
		dns_cancel(c->dq);
	if (c->call != NULL)
		fetcher_cancel(c->call);
	central_clear_pending(c);
	central_drop_config(c);
	free(c->text);
	free(c->etag);
	free(c->last_modified);
	free(c);
}

const char *
central_document(const struct central *c, size_t *len, const char **name)
{
	*len = c->len;
	*name = c->url != NULL ? c->url : "central-policy";
	return c->text;
}

/* The serial of a document, without building anything from it. */
static int
central_serial(const char *text, size_t len, const char *name,
    unsigned long long *serial)
{
	struct policy_document doc;
	struct document_errors errs = { 0 };

	if (document_parse(text, len, name, &doc, &errs) == -1) {
		document_errors_free(&errs);
		return -1;
	}
	*serial = doc.serial;
	document_free(&doc);
	document_errors_free(&errs);
	return 0;
}

static void
central_save(struct central *c)
{
	char meta[2600], err[512];
	int n;

	n = snprintf(meta, sizeof(meta),
	    "serial %llu\netag %s\nlast-modified %s\nfetched-at %lld\n",
	    c->serial, c->etag ? c->etag : "-",
	    c->last_modified ? c->last_modified : "-",
	    (long long)c->fetched_at);
	if (file_replace(c->path, c->text, c->len, err, sizeof(err)) == -1 ||
	    file_replace(c->meta_path, meta, (size_t)n, err, sizeof(err)) == -1)
		log_error(0, "central-policy-save-failed", "error", err, NULL);
}

/* A validator from the meta file: "-" stands for none. */
static char *
central_meta_value(const char *meta, const char *key)
{
	const char *p = meta;
	size_t klen = strlen(key);

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
			const char *v = p + klen + 1;
			size_t n = strcspn(v, "\n");

			if (n == 1 && v[0] == '-')
				return NULL;
			return strndup(v, n);
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

/*
 * Take a document (whose serial the caller read) into force: the owner
 * builds on it, then we keep it.
 */
static int
central_take(struct central *c, char *text, size_t len,
    unsigned long long serial, const char *how)
{
	char err[2048], sbuf[24];

	/* apply() parses the document and says why when it cannot. */
	if (c->apply(c->arg, text, len, c->url, err, sizeof(err)) == -1) {
		log_error(0, "central-policy-refused", "url", c->url, "how",
		    how, "errors", err, NULL);
		central_count("invalid");
		return -1;
	}
	free(c->text);
	c->text = text;
	c->len = len;
	c->serial = serial;
	c->have_serial = 1;
	snprintf(sbuf, sizeof(sbuf), "%llu", serial);
	log_info(0, "central-policy", "url", c->url, "how", how, "serial",
	    sbuf, NULL);
	return 0;
}

/* Whether text has a valid signature for key in sig_path (no key: yes). */
static int
central_signed(const char *key, const char *sig_path, const char *text,
    size_t len)
{
	const char *why;
	char err[256], *sig;
	size_t slen;
	int ok;

	if (key == NULL)
		return 1;
	if ((sig = file_read(sig_path, CENTRAL_SIG_MAX, &slen, err,
	    sizeof(err))) == NULL)
		return 0;
	ok = sign_check(key, text, len, sig, slen, &why) == 1;
	free(sig);
	return ok;
}

char *
central_copy_read(const struct config *cfg, size_t *len, char *err,
    size_t errlen)
{
	char *path = NULL, *sig_path = NULL, *text = NULL;
	int e;

	if (asprintf(&path, "%s/central-policy", cfg->state_dir) == -1 ||
	    asprintf(&sig_path, "%s/central-policy.sig", cfg->state_dir) ==
	    -1) {
		snprintf(err, errlen, "out of memory");
		e = ENOMEM;
	} else if ((text = file_read(path, DOCUMENT_MAX, len, err, errlen)) ==
	    NULL)
		e = errno;
	else if (!central_signed(cfg->signing_key, sig_path, text, *len)) {
		snprintf(err, errlen, "%s has no valid signature for "
		    "signing_key", path);
		free(text);
		text = NULL;
		e = EBADMSG;
	} else
		e = 0;
	free(path);
	free(sig_path);
	errno = e;
	return text;
}

void
central_start(struct central *c)
{
	unsigned long long serial;
	char err[512], *text, *meta, *v;
	size_t len, mlen;

	if (c->url == NULL)
		return;
	/* The last good copy: the policy in force before any fetch. */
	if ((text = file_read(c->path, DOCUMENT_MAX, &len, err,
	    sizeof(err))) != NULL && !central_signed(c->signing_key, c->sig_path,
	    text, len)) {
		log_error(0, "central-policy-refused", "how", "last-good-copy",
		    "reason", "the copy in state_dir has no valid signature "
		    "for signing_key", NULL);
		free(text);
	} else if (text != NULL) {
		meta = file_read(c->meta_path, 8192, &mlen, err, sizeof(err));
		/* One that does not parse is refused by apply(), with why. */
		serial = 0;
		central_serial(text, len, c->url, &serial);
		if (central_take(c, text, len, serial, "last-good-copy") == -1)
			free(text);
		else if (meta != NULL) {
			c->etag = central_meta_value(meta, "etag");
			c->last_modified = central_meta_value(meta,
			    "last-modified");
			if ((v = central_meta_value(meta, "fetched-at")) !=
			    NULL)
				c->fetched_at = (time_t)strtoll(v, NULL, 10);
			free(v);
		}
		free(meta);
	} else if (errno != ENOENT)
		log_warn(0, "central-policy-copy-unreadable", "error", err,
		    NULL);
	ev_timer_set(&c->timer, 0., 0.);
	ev_timer_start(c->loop, &c->timer);
}

static void
central_next(struct central *c)
{
	char age[32];
	time_t now = clock_now();

	if (c->fetched_at != 0) {
		snprintf(age, sizeof(age), "%lld",
		    (long long)(now - c->fetched_at));
		metrics_set("mxtls_policy_age_seconds", "source=\"central\"",
		    (double)(now - c->fetched_at));
		/* Stale is a reason to alert, never to stop the mail. */
		if (now - c->fetched_at > c->max_stale)
			log_warn(0, "central-policy-stale", "url", c->url,
			    "age", age, NULL);
	}
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_set(&c->timer, c->refresh, 0.);
	ev_timer_start(c->loop, &c->timer);
}

static void central_fetched(void *arg, const struct fetch_response *rs);
static int central_type_ok(const char *ctype);
static const char *central_document_arrived(struct central *c,
    const struct fetch_response *rs, char *text);

/* One line per fetch: what came back, how big, how long. */
static void
central_log_fetch(const struct central *c, const struct fetch_response *rs,
    const char *what, const char *outcome)
{
	char st[16], bytes[24], ms[16];

	snprintf(st, sizeof(st), "%u", rs->status);
	snprintf(bytes, sizeof(bytes), "%zu", rs->body_len);
	snprintf(ms, sizeof(ms), "%u", rs->duration_ms);
	log_info(0, "central-policy-fetch", "url", c->url, "what", what,
	    "result", fetchproto_result_name(rs->result), "status", st,
	    "bytes", bytes, "duration_ms", ms, "outcome", outcome, "error",
	    rs->error, "content_type", rs->content_type, NULL);
}

static int
central_fetch(struct central *c, const char *url, int conditional)
{
	struct fetch_request rq;

	memset(&rq, 0, sizeof(rq));
	rq.url = (char *)url;
	memcpy(rq.addrs, c->addrs, sizeof(rq.addrs));
	rq.naddrs = c->naddrs;
	rq.ca_bundle = c->ca_bundle;
	rq.max_bytes = c->pending != NULL ? CENTRAL_SIG_MAX : DOCUMENT_MAX;
	rq.connect_timeout_ms = CENTRAL_CONNECT_TIMEOUT_MS;
	rq.timeout_ms = CENTRAL_FETCH_TIMEOUT_MS;
	if (conditional) {
		rq.etag = c->etag;
		rq.if_modified_since = c->last_modified;
	}
	c->call = fetcher_request(c->fetcher, &rq, central_fetched, c);
	return c->call != NULL ? 0 : -1;
}

/* The signature arrived: check it against the document it signs. */
static const char *
central_signature(struct central *c, const struct fetch_response *rs)
{
	const char *why = "no signature", *outcome = "refused";
	char *text;

	if (rs->result == FETCH_OK && sign_check(c->signing_key, c->pending,
	    c->pending_len, (const char *)rs->body, rs->body_len, &why) == 1) {
		text = c->pending;
		c->pending = NULL;
		if (central_take(c, text, c->pending_len, c->pending_serial,
		    "fetched") == 0) {
			char err[512];

			/* Kept beside the copy: a restart checks it again. */
			if (file_replace(c->sig_path, rs->body, rs->body_len,
			    err, sizeof(err)) == -1)
				log_error(0, "central-policy-save-failed",
				    "error", err, NULL);
			free(c->etag);
			free(c->last_modified);
			c->etag = c->pending_etag;
			c->last_modified = c->pending_lm;
			c->pending_etag = c->pending_lm = NULL;
			c->fetched_at = clock_now();
			central_save(c);
			central_count("ok");
			outcome = "updated";
		} else
			free(text);
	} else {
		log_error(0, "central-policy-refused", "url", c->url, "reason",
		    rs->result == FETCH_OK ? why : "signature fetch failed",
		    "error", rs->error, NULL);
		central_count("invalid");
	}
	central_clear_pending(c);
	return outcome;
}

static void
central_fetched(void *arg, const struct fetch_response *rs)
{
	struct central *c = arg;
	const char *outcome;
	char *sigurl = NULL, *text, st[16];

	c->call = NULL;
	if (c->pending != NULL) {
		central_log_fetch(c, rs, "signature", central_signature(c, rs));
		central_next(c);
		return;
	}
	if (rs->result == FETCH_NOT_MODIFIED) {
		/* The server confirms the copy in force: it is fresh again. */
		c->fetched_at = clock_now();
		central_save(c);
		central_count("not-modified");
		outcome = "not-modified";
	} else if (rs->result != FETCH_OK) {
		snprintf(st, sizeof(st), "%u", rs->status);
		log_warn(0, "central-policy-fetch-failed", "url", c->url,
		    "result", fetchproto_result_name(rs->result), "status", st,
		    "error", rs->error, NULL);
		central_count("failed");
		outcome = "kept-last-good";
	} else if (!central_type_ok(rs->content_type)) {
		/* A login page or an error page is not our document. */
		log_error(0, "central-policy-refused", "url", c->url, "reason",
		    "Content-Type is not text/plain", "content_type",
		    rs->content_type, NULL);
		central_count("invalid");
		outcome = "refused";
	} else if ((text = malloc(rs->body_len + 1)) == NULL) {
		outcome = "kept-last-good";
	} else {
		memcpy(text, rs->body, rs->body_len);
		text[rs->body_len] = '\0';
		outcome = central_document_arrived(c, rs, text);
		if (outcome == NULL) {
			/* Signed: the document waits for its signature. */
			if (asprintf(&sigurl, "%s.sig", c->url) == -1)
				sigurl = NULL;
			if (sigurl != NULL && central_fetch(c, sigurl, 0) == 0) {
				central_log_fetch(c, rs, "document",
				    "awaiting-signature");
				free(sigurl);
				return;
			}
			free(sigurl);
			central_clear_pending(c);
			outcome = "kept-last-good";
		}
	}
	central_log_fetch(c, rs, "document", outcome);
	central_next(c);
}

/*
 * text/plain, or what servers send for an unknown file type (nginx: .ini
 * is application/octet-stream), or nothing; never HTML and the like.
 */
static int
central_type_ok(const char *ctype)
{
	size_t n;

	if (ctype == NULL || *ctype == '\0')
		return 1;
	n = strcspn(ctype, "; \t");
	return (n == 10 && strncasecmp(ctype, "text/plain", n) == 0) ||
	    (n == 24 && strncasecmp(ctype, "application/octet-stream", n) ==
	    0);
}

/* The server's validators of the document in force, fresh as of now. */
static void
central_fresh(struct central *c, const struct fetch_response *rs)
{
	free(c->etag);
	free(c->last_modified);
	c->etag = central_strdup(rs->etag);
	c->last_modified = central_strdup(rs->last_modified);
	c->fetched_at = clock_now();
	central_save(c);
}

/*
 * A fetched document: refused as a rollback, taken (without signing_key),
 * or parked for its signature (NULL).  Returns the outcome for the log.
 */
static const char *
central_document_arrived(struct central *c, const struct fetch_response *rs,
    char *text)
{
	unsigned long long serial = 0;
	const char *why = NULL;

	/*
	 * The document in force, byte for byte (a server without ETag or
	 * Last-Modified): fresh again, but not rebuilt, so the connection
	 * cache and TLS sessions built on it stay.
	 */
	if (c->text != NULL && rs->body_len == c->len &&
	    memcmp(text, c->text, c->len) == 0) {
		free(text);
		central_fresh(c, rs);
		central_count("not-modified");
		return "not-modified";
	}

	/*
	 * An older serial than the one in force is a rollback; the same
	 * serial with other content (identical content returned above) is
	 * one too: a document captured with its signature must not replace
	 * its successor of equal serial.
	 */
	if (central_serial(text, rs->body_len, c->url, &serial) == 0 &&
	    c->have_serial) {
		if (serial < c->serial)
			why = "serial lower than the document in force "
			    "(rollback)";
		else if (serial == c->serial)
			why = "same serial as the document in force but other "
			    "content (a changed document needs a higher serial)";
	}
	if (why != NULL) {
		char have[24], got[24];

		snprintf(have, sizeof(have), "%llu", c->serial);
		snprintf(got, sizeof(got), "%llu", serial);
		log_error(0, "central-policy-refused", "url", c->url, "reason",
		    why, "serial", got, "in_force", have, NULL);
		central_count("invalid");
		free(text);
		return "refused";
	}
	if (c->signing_key == NULL) {
		if (central_take(c, text, rs->body_len, serial, "fetched") ==
		    -1) {
			free(text);
			return "refused";
		}
		central_fresh(c, rs);
		central_count("ok");
		return "updated";
	}
	c->pending = text;
	c->pending_len = rs->body_len;
	c->pending_serial = serial;
	c->pending_etag = central_strdup(rs->etag);
	c->pending_lm = central_strdup(rs->last_modified);
	return NULL;
}

static void
central_resolved(void *arg, const struct dns_addr_result *res)
{
	struct central *c = arg;
	int i;

	c->dq = NULL;
	if (res->status != DNS_OK) {
		log_warn(0, "central-policy-fetch-failed", "url", c->url,
		    "error", res->error, NULL);
		central_count("failed");
		central_next(c);
		return;
	}
	c->naddrs = 0;
	for (i = 0; i < res->naddr && c->naddrs < FETCHPROTO_ADDRS_MAX; i++) {
		struct fetch_addr *a = &c->addrs[c->naddrs++];

		fetch_addr_set(a, &res->addr[i]);
	}
	if (central_fetch(c, c->url, c->text != NULL) == -1) {
		central_count("failed");
		central_next(c);
	}
}

/* Names are resolved here (libunbound) and handed to the fetcher. */
static void
central_refresh(struct central *c)
{
	if (c->url == NULL || c->dq != NULL || c->call != NULL)
		return;
	c->dq = dns_lookup_addr(c->dns, c->host, central_resolved, c);
	if (c->dq == NULL)
		central_next(c);
}
