/*
 * `mxtls explain`: policy_lookup() for one recipient, printed with the
 * origin of every part.  For example:
 *
 *   recipient    Jörg@Mx.Bücher.example
 *   domain       mx.xn--bcher-kva.example
 *   match        [match xn--bcher-kva.example]  /etc/mxtls.ini:16
 *   profile      partners                       /etc/mxtls.ini:8
 *   tls          mandatory                      /etc/mxtls.ini:9
 *   verify       strict                         built-in default
 *   min_version  1.3                            /etc/mxtls.ini:10
 *   max_version  1.3                            built-in default
 *   ciphers      (BoringSSL default)            built-in default
 *   ca_bundle    /etc/mxtls/ca.crt              [tls] at /etc/mxtls.ini:2
 *   mx           mx.xn--bcher-kva.example       /etc/mxtls.ini:18
 *   nexthop      relay.example.net:587          /etc/mxtls.ini:19
 *
 * "built-in" is a value of a built-in profile; "built-in default" one
 * that nothing in the file sets (for min_version, max_version, ciphers
 * and ca_bundle: neither the profile nor [tls]).  A built-in profile that
 * a [profile NAME] section changes is "built-in, changed at FILE:LINE".
 * "(none)" for nexthop: the MX records (relay mode) or the original
 * destination (transparent mode).
 *
 * The origin column starts two spaces after the longest value, but no
 * further than VALUE_WIDTH_MAX: a longer value is followed by two spaces.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "explain.h"
#include "sts.h"
#include "stsrule.h"

#define LABEL_WIDTH 13 /* "min_version" and two spaces */
#define VALUE_WIDTH_MAX 56
#define ORIGIN_MAX 4200 /* "[tls] at " FILE ":" LINE, FILE up to PATH_MAX */

enum row {
	ROW_MATCH,
	ROW_PROFILE,
	ROW_TLS,
	ROW_VERIFY,
	ROW_MIN_VERSION,
	ROW_MAX_VERSION,
	ROW_CIPHERS,
	ROW_CA_BUNDLE,
	ROW_MX,
	ROW_NEXTHOP,
	ROW_DANE,
	ROW_N,
};

static const char *const row_names[ROW_N] = {
	[ROW_MATCH] = "match",
	[ROW_PROFILE] = "profile",
	[ROW_TLS] = "tls",
	[ROW_VERIFY] = "verify",
	[ROW_MIN_VERSION] = "min_version",
	[ROW_MAX_VERSION] = "max_version",
	[ROW_CIPHERS] = "ciphers",
	[ROW_CA_BUNDLE] = "ca_bundle",
	[ROW_MX] = "mx",
	[ROW_NEXTHOP] = "nexthop",
	[ROW_DANE] = "dane",
};

struct rows {
	char *value[ROW_N];  /* owned */
	char *origin[ROW_N]; /* owned */
	int oom;
};

static void
row_set(struct rows *r, enum row i, const char *value, const char *origin)
{
	free(r->value[i]);
	free(r->origin[i]);
	r->value[i] = strdup(value);
	r->origin[i] = strdup(origin);
	if (r->value[i] == NULL || r->origin[i] == NULL)
		r->oom = 1;
}

static void
rows_free(struct rows *r)
{
	int i;

	for (i = 0; i < ROW_N; i++) {
		free(r->value[i]);
		free(r->origin[i]);
	}
}

/* "PREFIXFILE:LINE" when the origin has a line, else `otherwise`. */
static const char *
where(char buf[ORIGIN_MAX], const struct policy_origin *o,
    const char *prefix, const char *otherwise)
{
	if (o->line <= 0)
		return otherwise;
	snprintf(buf, ORIGIN_MAX, "%s%s:%d", prefix,
	    o->file != NULL ? o->file : "?", o->line);
	return buf;
}

/* A key of the profile itself: set there, or the profile's own default. */
static const char *
profile_where(char buf[ORIGIN_MAX], const struct policy_profile *p,
    enum policy_profile_key k)
{
	return where(buf, &p->origins[k], "",
	    p->builtin ? "built-in" : "built-in default");
}

/* A key a profile inherits from [tls] when it does not set it. */
static const char *
inherited_where(char buf[ORIGIN_MAX], const struct config *cfg,
    const struct policy_profile *p, enum policy_profile_key k)
{
	if (p->origins[k].line > 0)
		return where(buf, &p->origins[k], "", "");
	return where(buf, &cfg->tls_origins[k], "[tls] at ",
	    "built-in default");
}

/* "a, b, c"; NULL when out of memory. */
static char *
join(const char *const *list, int n)
{
	size_t len = 1;
	char *s;
	int i;

	for (i = 0; i < n; i++)
		len += strlen(list[i]) + 2;
	if ((s = malloc(len)) == NULL)
		return NULL;
	s[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strcat(s, ", ");
		strcat(s, list[i]);
	}
	return s;
}

/* Columns a UTF-8 string takes (one per character; no wide ones). */
static size_t
width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static void
fill(struct rows *r, const struct config *cfg, const struct policy_set *ps,
    const struct policy_decision *d)
{
	const struct policy_profile *p = d->profile;
	const struct policy_match *m = d->match;
	char buf[ORIGIN_MAX], *s;
	const char *v;

	if (m != NULL) {
		if (asprintf(&s, "[match %s]", m->pattern) < 0) {
			r->oom = 1;
			return;
		}
		row_set(r, ROW_MATCH, s,
		    where(buf, &m->origin, "", "built-in"));
		free(s);
	} else
		row_set(r, ROW_MATCH, "[policy] default",
		    where(buf, &ps->default_origin, "", "built-in"));

	if (p->builtin && p->origin.line > 0) {
		char at[ORIGIN_MAX];

		snprintf(buf, sizeof(buf), "built-in, changed at %s",
		    where(at, &p->origin, "", ""));
		row_set(r, ROW_PROFILE, p->name, buf);
	} else
		row_set(r, ROW_PROFILE, p->name, where(buf, &p->origin, "",
		    p->builtin ? "built-in" : "built-in default"));

	row_set(r, ROW_TLS, policy_tls_name(p->tls),
	    profile_where(buf, p, POLICY_P_TLS));
	row_set(r, ROW_VERIFY, policy_verify_name(p->verify),
	    profile_where(buf, p, POLICY_P_VERIFY));
	row_set(r, ROW_MIN_VERSION,
	    policy_version_name(config_profile_min_version(cfg, p)),
	    inherited_where(buf, cfg, p, POLICY_P_MIN_VERSION));
	row_set(r, ROW_MAX_VERSION,
	    policy_version_name(config_profile_max_version(cfg, p)),
	    inherited_where(buf, cfg, p, POLICY_P_MAX_VERSION));
	v = config_profile_ciphers(cfg, p);
	row_set(r, ROW_CIPHERS, v != NULL ? v : "(BoringSSL default)",
	    inherited_where(buf, cfg, p, POLICY_P_CIPHERS));
	v = config_profile_ca_bundle(cfg, p);
	row_set(r, ROW_CA_BUNDLE, v != NULL ? v : "(none)",
	    inherited_where(buf, cfg, p, POLICY_P_CA_BUNDLE));

	if (d->nmx > 0) {
		if ((s = join(d->mx, d->nmx)) == NULL) {
			r->oom = 1;
			return;
		}
		/* The match's list, when it has one, replaces the profile's. */
		row_set(r, ROW_MX, s, m != NULL && m->nmx > 0 ?
		    where(buf, &m->origins[POLICY_M_MX], "", "") :
		    profile_where(buf, p, POLICY_P_MX));
		free(s);
	} else
		row_set(r, ROW_MX, "(none: the MX host name)",
		    profile_where(buf, p, POLICY_P_MX));

	if (d->nexthop != NULL && m != NULL)
		row_set(r, ROW_NEXTHOP, d->nexthop,
		    where(buf, &m->origins[POLICY_M_NEXTHOP], "", ""));
	else
		row_set(r, ROW_NEXTHOP, "(none)", "built-in default");
	row_set(r, ROW_DANE, dane_mode_name(p->dane),
	    profile_where(buf, p, POLICY_P_DANE));
}

static int
invalid(const char *recipient, const char *why)
{
	fprintf(stderr, "mxtls: explain: \"%s\": %s\n", recipient, why);
	return 1;
}

/*
 * MTA-STS: where no explicit match names the domain, the cached policy of
 * the recipient domain (state_dir/mta-sts) decides over the rows above.
 */
static void
explain_sts(const struct config *cfg, const struct policy_set *ps,
    const struct policy_decision *d, FILE *out)
{
	struct policy_decision sd = *d;
	struct sts_record rec;
	char dir[4096], err[256], when[32];
	struct tm tm;
	int i;

	if (!policy_sts_applies(d, cfg->mta_sts)) {
		fprintf(out, "%-*s%s\n", LABEL_WIDTH, "mta-sts",
		    cfg->mta_sts ?
		    "not consulted: an explicit match names this domain" :
		    "off ([policy] mta_sts)");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/mta-sts", cfg->state_dir);
	if (sts_cache_read(dir, d->domain, &rec, err, sizeof(err)) != 1) {
		fprintf(out, "%-*s%s\n", LABEL_WIDTH, "mta-sts",
		    "no policy cached (looked up at the first message)");
		return;
	}
	gmtime_r(&rec.expires, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(out, "%-*s%s (id %s, cached until %s)", LABEL_WIDTH, "mta-sts",
	    mtasts_mode_name(rec.policy.mode), rec.id, when);
	if (policy_sts_enforce(ps, rec.policy.mode,
	    (const char *const *)rec.policy.mx, rec.policy.nmx, &sd))
		fprintf(out, ": profile %s (%s, %s) replaces the rows above",
		    sd.profile->name, policy_tls_name(sd.profile->tls),
		    policy_verify_name(sd.profile->verify));
	fputc('\n', out);
	for (i = 0; i < rec.policy.nmx; i++)
		fprintf(out, "%-*s%s\n", LABEL_WIDTH, i == 0 ? "mta-sts mx" : "",
		    rec.policy.mx[i]);
	sts_record_free(&rec);
}

int
explain_print(const struct config *cfg, const struct policy_set *ps,
    const char *recipient, FILE *out)
{
	struct policy_decision d;
	struct rows r;
	const char *at, *dom, *s;
	size_t dlen, w, vw = 0;
	int i;

	if (recipient == NULL || *recipient == '\0')
		return invalid("", "empty recipient");
	for (s = recipient; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return invalid(recipient,
			    "control character in recipient");
	at = strrchr(recipient, '@');
	if (at == recipient)
		return invalid(recipient, "empty local part before \"@\"");
	dom = at != NULL ? at + 1 : recipient;
	dlen = strlen(dom);
	if (dlen > 0 && dom[dlen - 1] == '.')
		dlen--;
	if (dlen == 0)
		return invalid(recipient, "no domain");
	if (policy_lookup(ps, recipient, &d) != POLICY_OK) {
		char why[256];

		snprintf(why, sizeof(why), "invalid domain: %s (the proxy "
		    "refuses the address: 553 5.1.3)", d.why);
		return invalid(recipient, why);
	}

	memset(&r, 0, sizeof(r));
	fill(&r, cfg, ps, &d);
	if (r.oom) {
		rows_free(&r);
		fprintf(stderr, "mxtls: explain: out of memory\n");
		return 1;
	}
	for (i = 0; i < ROW_N; i++)
		if ((w = width(r.value[i])) > vw && w <= VALUE_WIDTH_MAX)
			vw = w;

	fprintf(out, "%-*s%s\n", LABEL_WIDTH, "recipient", recipient);
	if (strlen(d.domain) != dlen || strncasecmp(d.domain, dom, dlen) != 0)
		fprintf(out, "%-*s%s\n", LABEL_WIDTH, "domain", d.domain);
	for (i = 0; i < ROW_N; i++) {
		w = width(r.value[i]);
		fprintf(out, "%-*s%s%*s%s\n", LABEL_WIDTH, row_names[i],
		    r.value[i], (int)(w < vw ? vw - w + 2 : 2), "",
		    r.origin[i]);
	}
	rows_free(&r);
	explain_sts(cfg, ps, &d, out);
	return 0;
}
