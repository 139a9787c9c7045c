/*
 * The pure half of the MTA-STS policy cache (see stsdecide.h): the
 * decisions, the cache record, the eviction order, the fetch outcome.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsdecide.h"

int
sts_domain_ok(const char *domain)
{
	size_t i, label = 0;

	if (domain == NULL || domain[0] == '\0')
		return 0;
	for (i = 0; domain[i] != '\0'; i++) {
		char c = domain[i];

		if (i >= STS_DOMAIN_MAX)
			return 0;
		if (c == '.') {
			if (label == 0 || domain[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-'))
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && domain[i - 1] != '-';
}

static int
sts_id_ok(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++)
		if (i >= MTASTS_ID_MAX || !isalnum((unsigned char)id[i]))
			return 0;
	return i > 0;
}

static int
sts_time_ok(time_t t)
{
	return t > 0 && t <= STS_TIME_MAX;
}

/* An mx pattern as the policy parser leaves it: no space, no control. */
static int
sts_mx_ok(const char *mx)
{
	size_t i;

	for (i = 0; mx[i] != '\0'; i++)
		if (mx[i] <= ' ' || mx[i] > '~')
			return 0;
	return i > 0 && i <= 253;
}

static const char *
sts_mode_word(enum mtasts_mode m)
{
	switch (m) {
	case MTASTS_NONE:
		return "none";
	case MTASTS_TESTING:
		return "testing";
	case MTASTS_ENFORCE:
		return "enforce";
	}
	return NULL;
}

int
sts_record_format(const struct sts_record *r, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	const char *mode = sts_mode_word(r->policy.mode);
	size_t cap, len;
	char *buf;
	int i, n;

	*out = NULL;
	*outlen = 0;
	if (!sts_domain_ok(r->domain)) {
		snprintf(err, errlen, "invalid domain");
		return -1;
	}
	if (!sts_id_ok(r->id)) {
		snprintf(err, errlen, "invalid id");
		return -1;
	}
	if (mode == NULL || r->policy.max_age < 0 ||
	    r->policy.max_age > MTASTS_MAX_AGE_MAX ||
	    (r->policy.nmx == 0 && r->policy.mode != MTASTS_NONE) ||
	    r->policy.nmx < 0 || r->policy.nmx > MTASTS_MX_MAX) {
		snprintf(err, errlen, "invalid policy");
		return -1;
	}
	if (!sts_time_ok(r->fetched_at) || !sts_time_ok(r->expires) ||
	    r->expires != r->fetched_at + (time_t)r->policy.max_age) {
		snprintf(err, errlen, "invalid times");
		return -1;
	}
	cap = 512;
	for (i = 0; i < r->policy.nmx; i++) {
		if (r->policy.mx[i] == NULL || !sts_mx_ok(r->policy.mx[i])) {
			snprintf(err, errlen, "invalid mx pattern");
			return -1;
		}
		cap += strlen(r->policy.mx[i]) + 4;
	}
	if ((buf = malloc(cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	n = snprintf(buf, cap,
	    STS_CACHE_MAGIC "\n"
	    "domain %s\n"
	    "id %s\n"
	    "fetched-at %lld\n"
	    "expires %lld\n"
	    "mode %s\n"
	    "max_age %ld\n",
	    r->domain, r->id, (long long)r->fetched_at,
	    (long long)r->expires, mode, r->policy.max_age);
	len = (size_t)n;
	for (i = 0; i < r->policy.nmx; i++) {
		n = snprintf(buf + len, cap - len, "mx %s\n", r->policy.mx[i]);
		len += (size_t)n;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

/* Decimal digits only, no sign, no leading zero (but "0"), in range. */
static int
sts_parse_num(const char *v, long long max, long long *out)
{
	long long n = 0;
	size_t i;

	if (v[0] == '\0' || (v[0] == '0' && v[1] != '\0'))
		return -1;
	for (i = 0; v[i] != '\0'; i++) {
		if (v[i] < '0' || v[i] > '9' || i >= 19)
			return -1;
		n = n * 10 + (v[i] - '0');
		if (n > max)
			return -1;
	}
	*out = n;
	return 0;
}

int
sts_record_parse(const char *text, size_t len, struct sts_record *out,
    char *err, size_t errlen)
{
	static const char *const keys[] = { "domain", "id", "fetched-at",
		"expires", "mode", "max_age" };
	char line[512], *pol = NULL, *val;
	size_t pos = 0, end, pl = 0, pcap = 0, llen;
	long long num, fetched = 0, expires = 0, max_age = 0;
	char perr[MTASTS_ERR_MAX];
	int lineno = 0, k = 0, nmx = 0;
	const char *nl;

	memset(out, 0, sizeof(*out));
	if (len > STS_CACHE_FILE_MAX) {
		snprintf(err, errlen, "file of %zu bytes (max %d)", len,
		    STS_CACHE_FILE_MAX);
		return -1;
	}
	if (len == 0 || text[len - 1] != '\n') {
		snprintf(err, errlen, "empty or without a final line end");
		return -1;
	}
	/*
	 * Room for the policy text rebuilt from the fields, for its parser:
	 * each line grows by a ':' at most.
	 */
	pcap = 2 * len + 64;
	if ((pol = malloc(pcap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pl = (size_t)snprintf(pol, pcap, "version: STSv1\n");
	while (pos < len) {
		size_t i;

		lineno++;
		nl = memchr(text + pos, '\n', len - pos);
		end = (size_t)(nl - text);
		llen = end - pos;
		if (llen >= sizeof(line)) {
			snprintf(err, errlen, "line %d: too long", lineno);
			goto fail;
		}
		memcpy(line, text + pos, llen);
		line[llen] = '\0';
		pos = end + 1;
		for (i = 0; i < llen; i++)
			if (line[i] < ' ' || line[i] > '~') {
				snprintf(err, errlen, "line %d: a control or "
				    "non-ASCII byte", lineno);
				goto fail;
			}
		if (lineno == 1) {
			if (strcmp(line, STS_CACHE_MAGIC) != 0) {
				snprintf(err, errlen, "line 1: not \"%s\"",
				    STS_CACHE_MAGIC);
				goto fail;
			}
			continue;
		}
		if ((val = strchr(line, ' ')) == NULL || val[1] == '\0' ||
		    strchr(val + 1, ' ') != NULL) {
			snprintf(err, errlen, "line %d: not \"key value\"",
			    lineno);
			goto fail;
		}
		*val++ = '\0';
		if (k < 6) {
			if (strcmp(line, keys[k]) != 0) {
				snprintf(err, errlen, "line %d: \"%s\" where "
				    "\"%s\" belongs", lineno, line, keys[k]);
				goto fail;
			}
		} else if (strcmp(line, "mx") != 0) {
			snprintf(err, errlen, "line %d: \"%s\" where only mx "
			    "lines belong", lineno, line);
			goto fail;
		}
		switch (k < 6 ? k : 6) {
		case 0:
			if (!sts_domain_ok(val)) {
				snprintf(err, errlen, "line %d: invalid "
				    "domain", lineno);
				goto fail;
			}
			snprintf(out->domain, sizeof(out->domain), "%s", val);
			break;
		case 1:
			if (!sts_id_ok(val)) {
				snprintf(err, errlen, "line %d: invalid id",
				    lineno);
				goto fail;
			}
			snprintf(out->id, sizeof(out->id), "%s", val);
			break;
		case 2:
		case 3:
			if (sts_parse_num(val, (long long)STS_TIME_MAX,
			    &num) < 0 || num == 0) {
				snprintf(err, errlen, "line %d: invalid time",
				    lineno);
				goto fail;
			}
			if (k == 2)
				fetched = num;
			else
				expires = num;
			break;
		case 4:
			if (strcmp(val, "none") != 0 &&
			    strcmp(val, "testing") != 0 &&
			    strcmp(val, "enforce") != 0) {
				snprintf(err, errlen, "line %d: invalid mode",
				    lineno);
				goto fail;
			}
			pl += (size_t)snprintf(pol + pl, pcap - pl,
			    "mode: %s\n", val);
			break;
		case 5:
			if (sts_parse_num(val, MTASTS_MAX_AGE_MAX, &num) < 0) {
				snprintf(err, errlen, "line %d: invalid "
				    "max_age", lineno);
				goto fail;
			}
			max_age = num;
			pl += (size_t)snprintf(pol + pl, pcap - pl,
			    "max_age: %lld\n", num);
			break;
		default:
			if (pl + strlen(val) + 6 > pcap) {
				snprintf(err, errlen, "line %d: too much",
				    lineno);
				goto fail;
			}
			pl += (size_t)snprintf(pol + pl, pcap - pl, "mx: %s\n",
			    val);
			nmx++;
			break;
		}
		k++;
	}
	if (k < 6) {
		snprintf(err, errlen, "\"%s\" missing", keys[k]);
		goto fail;
	}
	if (expires != fetched + max_age) {
		snprintf(err, errlen, "expires is not fetched-at + max_age");
		goto fail;
	}
	if (mtasts_parse_policy(pol, pl, &out->policy, perr,
	    sizeof(perr)) < 0) {
		snprintf(err, errlen, "policy: %s", perr);
		goto fail;
	}
	if (out->policy.nmx != nmx) {
		snprintf(err, errlen, "repeated mx patterns");
		mtasts_policy_free(&out->policy);
		goto fail;
	}
	free(pol);
	out->fetched_at = (time_t)fetched;
	out->expires = (time_t)expires;
	return 0;
fail:
	free(pol);
	memset(out, 0, sizeof(*out));
	return -1;
}

void
sts_record_free(struct sts_record *r)
{
	mtasts_policy_free(&r->policy);
	memset(&r->policy, 0, sizeof(r->policy));
}

/* 0: no policy; then mode none, testing, enforce. */
static int
sts_evict_rank(const struct sts_evict_facts *f)
{
	if (!f->cached)
		return 0;
	switch (f->mode) {
	case MTASTS_NONE:
		return 1;
	case MTASTS_TESTING:
		return 2;
	case MTASTS_ENFORCE:
		break;
	}
	return 3;
}

int
sts_evict_first(const struct sts_evict_facts *a,
    const struct sts_evict_facts *b)
{
	int ra = sts_evict_rank(a), rb = sts_evict_rank(b);

	if (ra != rb)
		return ra < rb;
	return a->last_used < b->last_used;
}

time_t
sts_valid_until(time_t fetched_at, time_t expires)
{
	time_t floor = fetched_at + STS_MIN_LIFETIME;

	return expires > floor ? expires : floor;
}

int
sts_cache_valid(const struct sts_facts *f, time_t now)
{
	return f->cached && now < sts_valid_until(f->fetched_at, f->expires);
}

/* How old a cached copy may grow before it is re-fetched in the background. */
static long
sts_refresh_age(long max_age)
{
	long age = max_age / 2;

	if (age > STS_REFRESH_AGE)
		age = STS_REFRESH_AGE;
	if (age < STS_REFRESH_MIN)
		age = STS_REFRESH_MIN;
	return age;
}

/* Within limit seconds after t (a clock set back counts as outside). */
static int
sts_within(time_t now, time_t t, long limit)
{
	return now >= t && now - t < limit;
}

void
sts_decide(const struct sts_facts *f, time_t now, struct sts_decision *d)
{
	int valid = sts_cache_valid(f, now), same, failed_recently;

	memset(d, 0, sizeof(*d));
	if (f->force_txt || f->txt == STS_TXT_UNKNOWN ||
	    !sts_within(now, f->txt_checked, STS_TXT_INTERVAL)) {
		d->step = STS_STEP_TXT;
		return;
	}
	d->step = STS_STEP_ANSWER;
	d->use_cache = valid;
	switch (f->txt) {
	case STS_TXT_ID:
		break;
	case STS_TXT_INVALID:
		d->source = valid ? STS_SRC_TXT_INVALID_CACHE :
		    STS_SRC_TXT_INVALID;
		return;
	case STS_TXT_TEMPFAIL:
		d->source = valid ? STS_SRC_TXT_TEMPFAIL_CACHE :
		    STS_SRC_TXT_TEMPFAIL;
		return;
	case STS_TXT_NONE:
	default:
		d->source = valid ? STS_SRC_TXT_MISSING_CACHE : STS_SRC_NONE;
		return;
	}
	same = f->cached && f->cached_id != NULL && f->txt_id != NULL &&
	    strcmp(f->cached_id, f->txt_id) == 0;
	failed_recently = f->fetch_failed &&
	    sts_within(now, f->fetch_failed_at, STS_FETCH_RETRY);
	if (valid && same && (!f->force_fetch ||
	    sts_within(now, f->fetched_at, STS_REFRESH_MIN))) {
		d->source = STS_SRC_CACHE;
		/* (A copy from the future, the clock set back, is not due.) */
		d->fetch_after = !failed_recently && now >= f->fetched_at &&
		    now - f->fetched_at >= sts_refresh_age(f->max_age);
		return;
	}
	if (failed_recently) {
		d->source = valid ? STS_SRC_FAILED_CACHE : STS_SRC_FAILED;
		d->with_error = 1;
		return;
	}
	d->step = STS_STEP_FETCH;
	d->use_cache = 0;
}

void
sts_decide_pending(const struct sts_facts *f, time_t now, int fetching,
    struct sts_decision *d)
{
	memset(d, 0, sizeof(*d));
	d->step = STS_STEP_ANSWER;
	d->use_cache = sts_cache_valid(f, now);
	d->source = fetching ? STS_SRC_FETCH_PENDING : STS_SRC_TXT_PENDING;
}

static const char *const source_names[STS_NSOURCES] = {
	[STS_SRC_CACHE] = "cache",
	[STS_SRC_FETCHED] = "fetched",
	[STS_SRC_NONE] = "none",
	[STS_SRC_TXT_INVALID] = "txt-invalid",
	[STS_SRC_TXT_TEMPFAIL] = "txt-tempfail",
	[STS_SRC_TXT_MISSING_CACHE] = "txt-missing-cache-valid",
	[STS_SRC_TXT_INVALID_CACHE] = "txt-invalid-cache-valid",
	[STS_SRC_TXT_TEMPFAIL_CACHE] = "txt-tempfail-cache-valid",
	[STS_SRC_FAILED] = "fetch-failed",
	[STS_SRC_FAILED_CACHE] = "fetch-failed-cache-valid",
	[STS_SRC_TXT_PENDING] = "txt-pending",
	[STS_SRC_FETCH_PENDING] = "fetch-pending",
	[STS_SRC_BAD_DOMAIN] = "not-a-domain",
	[STS_SRC_FULL] = "cache-full",
};

const char *
sts_source_name(enum sts_source src, int mode_none)
{
	if ((unsigned)src >= STS_NSOURCES)
		return "unknown";
	if (mode_none && src == STS_SRC_CACHE)
		return "cache-mode-none";
	if (mode_none && src == STS_SRC_FETCHED)
		return "fetched-mode-none";
	return source_names[src];
}

const char *
sts_outcome_name(enum sts_outcome o)
{
	switch (o) {
	case STS_OUTCOME_OK:
		return "ok";
	case STS_OUTCOME_INVALID:
		return "invalid";
	case STS_OUTCOME_FAILED:
		break;
	}
	return "failed";
}

enum sts_outcome
sts_fetch_outcome(const struct fetch_response *rs, struct mtasts_policy *out,
    char *err, size_t errlen)
{
	const char *why = rs->error != NULL ? rs->error : "no detail";
	char perr[MTASTS_ERR_MAX];

	memset(out, 0, sizeof(*out));
	switch (rs->result) {
	case FETCH_OK:
		if (rs->status != 200) {
			snprintf(err, errlen, "sts-policy-fetch-error: HTTP "
			    "status %u", rs->status);
			return STS_OUTCOME_FAILED;
		}
		if (mtasts_parse_policy((const char *)rs->body, rs->body_len,
		    out, perr, sizeof(perr)) < 0) {
			snprintf(err, errlen, "sts-policy-invalid: %s", perr);
			return STS_OUTCOME_INVALID;
		}
		return STS_OUTCOME_OK;
	case FETCH_TLS_ERROR:
		snprintf(err, errlen, "sts-webpki-invalid: %s", why);
		break;
	case FETCH_HTTP_STATUS:
		snprintf(err, errlen, "sts-policy-fetch-error: HTTP status %u",
		    rs->status);
		break;
	case FETCH_NOT_MODIFIED:
		snprintf(err, errlen, "sts-policy-fetch-error: HTTP status "
		    "304 to a request that was not conditional");
		break;
	case FETCH_REDIRECT:
		snprintf(err, errlen, "sts-policy-fetch-error: redirect (HTTP "
		    "%u) not followed: %s", rs->status, why);
		break;
	case FETCH_CONTENT_TYPE:
		snprintf(err, errlen, "sts-policy-fetch-error: Content-Type "
		    "\"%s\" is not text/plain", rs->content_type != NULL ?
		    rs->content_type : "(none)");
		break;
	default:
		snprintf(err, errlen, "sts-policy-fetch-error: %s: %s",
		    fetchproto_result_name(rs->result), why);
		break;
	}
	return STS_OUTCOME_FAILED;
}
