/*
 * TLS reporting (RFC 8460): the counts of the running mxtls and the dry
 * run of its reports (see tlsrpt.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "clock.h"
#include "config.h"
#include "conn.h"
#include "dns.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "runtime.h"
#include "sockaddr.h"
#include "tlsrpt.h"
#include "tlsrptsend.h"

/* The reports sent, (day, tlsrpt_sent_hash) in a chained hash table. */
#define TLSRPT_SENT_BUCKETS 1024

struct tlsrpt_sent {
	struct tlsrpt_sent *next;
	long day;
	uint64_t hash;
};

struct tlsrpt_sentset {
	struct tlsrpt_sent *b[TLSRPT_SENT_BUCKETS];
};

struct tlsrpt_loading {
	struct tlsrpt_store *store;
	struct tlsrpt_sentset *sent;
	const char *path;
	FILE *out; /* NULL: the log (the daemon); else a report's stderr */
	size_t bad;
};

struct tlsrpt {
	struct tlsrpt_loading ld; /* the journal's argument */
	struct ev_loop *loop;
	struct journal *j;
	struct tlsrpt_store *store;
	ev_timer flush;
	struct tlsrpt_sentset sent;
	struct tlsrpt_sender *sender; /* NULL until tlsrpt_send_start() */
	long today;	    /* the day of the last count or expiry */
	long warned_day;    /* a full day is logged once */
	size_t ndirty;	    /* counts since the last flush */
	/* tlsrpt_own_add(): the report deliveries by SMTP now open */
	struct sockaddr_storage *own;
	size_t nown, own_cap;
	char path[PATH_MAX];
};

/* ---- the reports sent ---- */

static struct tlsrpt_sent **
tlsrpt_sent_bucket(struct tlsrpt_sentset *ss, long day, uint64_t hash)
{
	return &ss->b[(hash ^ (uint64_t)day) % TLSRPT_SENT_BUCKETS];
}

static int
tlsrpt_sent_add(struct tlsrpt_sentset *ss, long day, uint64_t hash)
{
	struct tlsrpt_sent **b = tlsrpt_sent_bucket(ss, day, hash), *x;

	if ((x = malloc(sizeof(*x))) == NULL)
		return -1;
	x->day = day;
	x->hash = hash;
	x->next = *b;
	*b = x;
	return 0;
}

static int
tlsrpt_sent_has(struct tlsrpt_sentset *ss, long day, const char *domain,
    const char *rua)
{
	uint64_t h = tlsrpt_sent_hash(day, domain, rua);
	struct tlsrpt_sent *x;

	for (x = *tlsrpt_sent_bucket(ss, day, h); x != NULL; x = x->next)
		if (x->day == day && x->hash == h)
			return 1;
	return 0;
}

int
tlsrpt_was_sent(struct tlsrpt *t, long day, const char *domain,
    const char *rua)
{
	return tlsrpt_sent_has(&t->sent, day, domain, rua);
}

void
tlsrpt_mark_sent(struct tlsrpt *t, long day, const char *domain,
    const char *rua)
{
	char key[TLSRPT_KEY_LEN], err[256], *v;
	size_t len;

	if (tlsrpt_was_sent(t, day, domain, rua) ||
	    day < t->today - TLSRPT_KEEP_DAYS)
		return;
	tlsrpt_sent_key(day, domain, rua, key, sizeof(key));
	/* Through the writer thread: the loop never waits for the disk. */
	if (tlsrpt_sent_add(&t->sent, day, tlsrpt_sent_hash(day, domain,
	    rua)) < 0 ||
	    (v = tlsrpt_sent_format(day, domain, rua, &len)) == NULL) {
		log_warn(0, "tlsrpt", "result", "write-failed", "key", key,
		    "error", "out of memory", NULL);
		return;
	}
	if (journal_put(t->j, key, v, len, err, sizeof(err)) < 0)
		log_warn(0, "tlsrpt", "result", "write-failed", "key", key,
		    "error", err, NULL);
	free(v);
}

/* Forget the reports sent of a day, in memory and in the journal. */
static void
tlsrpt_sent_drop(struct tlsrpt *t, long day)
{
	struct tlsrpt_sent **pp, *x;
	char key[TLSRPT_KEY_LEN], d[16], err[256];
	size_t i;

	tlsrpt_day_text(day, d, sizeof(d));
	for (i = 0; i < TLSRPT_SENT_BUCKETS; i++)
		for (pp = &t->sent.b[i]; (x = *pp) != NULL;) {
			if (x->day != day) {
				pp = &x->next;
				continue;
			}
			/* tlsrpt_sent_key(), from the hash it keeps */
			snprintf(key, sizeof(key), "s-%s-%016llx", d,
			    (unsigned long long)x->hash);
			if (journal_del(t->j, key, err, sizeof(err)) < 0)
				log_warn(0, "tlsrpt", "result", "write-failed",
				    "key", key, "error", err, NULL);
			*pp = x->next;
			free(x);
		}
}

static void
tlsrpt_sent_free(struct tlsrpt_sentset *ss)
{
	struct tlsrpt_sent *x;
	size_t i;

	for (i = 0; i < TLSRPT_SENT_BUCKETS; i++)
		while ((x = ss->b[i]) != NULL) {
			ss->b[i] = x->next;
			free(x);
		}
}

struct tlsrpt_store *
tlsrpt_store_of(struct tlsrpt *t)
{
	return t->store;
}

void
tlsrpt_send_now(struct tlsrpt *t)
{
	if (t == NULL) {
		log_warn(0, "tlsrpt-send-now", "reason", "[report] enabled is "
		    "not yes: there are no reports to send", NULL);
		return;
	}
	tlsrpt_sender_now(t->sender);
}

void
tlsrpt_set_sender(struct tlsrpt *t, struct tlsrpt_sender *s)
{
	t->sender = s;
}

/* ---- the reports' own deliveries ---- */

/* An IPv4-mapped IPv6 address as the IPv4 one; else a copy. */
static void
tlsrpt_own_norm(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
	struct sockaddr_in *in = (struct sockaddr_in *)out;

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		in->sin_family = AF_INET;
		in->sin_port = in6->sin6_port;
		memcpy(&in->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
	} else if (sa->sa_family == AF_INET)
		memcpy(out, sa, sizeof(struct sockaddr_in));
	else if (sa->sa_family == AF_INET6)
		memcpy(out, sa, sizeof(struct sockaddr_in6));
	else
		out->ss_family = AF_UNSPEC;
}

static int
tlsrpt_own_has(struct tlsrpt *t, const struct sockaddr *sa)
{
	struct sockaddr_storage n;
	size_t i;

	tlsrpt_own_norm(sa, &n);
	if (n.ss_family == AF_UNSPEC)
		return 0;
	for (i = 0; i < t->nown; i++)
		if (sockaddr_same(&t->own[i], &n, 1))
			return 1;
	return 0;
}

int
tlsrpt_own_add(struct tlsrpt *t, const struct sockaddr *sa)
{
	struct sockaddr_storage *v;
	size_t cap;

	if (t->nown == t->own_cap) {
		cap = t->own_cap ? 2 * t->own_cap : 16;
		if ((v = realloc(t->own, cap * sizeof(*v))) == NULL)
			return -1;
		t->own = v;
		t->own_cap = cap;
	}
	tlsrpt_own_norm(sa, &t->own[t->nown]);
	if (t->own[t->nown].ss_family == AF_UNSPEC)
		return -1;
	t->nown++;
	return 0;
}

void
tlsrpt_own_del(struct tlsrpt *t, const struct sockaddr *sa)
{
	struct sockaddr_storage n;
	size_t i;

	tlsrpt_own_norm(sa, &n);
	for (i = 0; i < t->nown; i++)
		if (sockaddr_same(&t->own[i], &n, 1)) {
			t->own[i] = t->own[--t->nown];
			return;
		}
}

/* ---- the journal ---- */

static int
tlsrpt_load_record(void *arg, const char *key, const char *value,
    size_t len)
{
	struct tlsrpt_loading *ld = arg;
	char err[320];
	uint64_t hash;
	long day;

	if (strncmp(key, "s-", 2) == 0) {
		if (tlsrpt_sent_load(key, value, len, &day, &hash, err,
		    sizeof(err)) == 0) {
			if (tlsrpt_sent_add(ld->sent, day, hash) == 0)
				return 0;
			snprintf(err, sizeof(err), "%s: out of memory", key);
		}
	} else if (tlsrpt_record_load(ld->store, key, value, len, err,
	    sizeof(err)) == 0)
		return 0;
	/* A record that cannot be read is forgotten, not fatal. */
	ld->bad++;
	if (ld->out != NULL)
		fprintf(ld->out, "mxtls: %s: record ignored: %s\n", ld->path,
		    err);
	else
		log_warn(0, "tlsrpt", "result", "record-ignored", "file",
		    ld->path, "error", err, NULL);
	return -1;
}

static void
tlsrpt_journal_error(void *arg, const char *error)
{
	(void)arg;
	log_warn(0, "tlsrpt", "result", "write-failed", "error", error, NULL);
}

/* Queue the dirty entries and overflow counts for the writer thread. */
static void
tlsrpt_write_dirty(struct tlsrpt *t)
{
	struct tlsrpt_entry *e;
	struct tlsrpt_day *d;
	char key[TLSRPT_KEY_LEN], err[256], *v;
	size_t len;
	int i;

	if (t->ndirty == 0)
		return;
	t->ndirty = 0;
	for (i = 0; i < t->store->ndays; i++) {
		d = &t->store->days[i];
		for (e = d->first; e != NULL; e = e->dnext) {
			if (!e->dirty)
				continue;
			tlsrpt_entry_key(e, key, sizeof(key));
			if ((v = tlsrpt_entry_format(e, &len)) == NULL ||
			    journal_put(t->j, key, v, len, err,
			    sizeof(err)) < 0) {
				/* Kept dirty: the next flush tries again. */
				log_warn(0, "tlsrpt", "result", "write-failed",
				    "key", key, "error", v ? err :
				    "out of memory", NULL);
				free(v);
				t->ndirty++;
				continue;
			}
			free(v);
			e->dirty = 0;
		}
		if (d->overflow_dirty) {
			tlsrpt_overflow_key(d->day, key, sizeof(key));
			if ((v = tlsrpt_overflow_format(d, &len)) != NULL &&
			    journal_put(t->j, key, v, len, err,
			    sizeof(err)) == 0)
				d->overflow_dirty = 0;
			else
				t->ndirty++;
			free(v);
		}
	}
}

/* Forget days past keeping, in memory and in the journal. */
static void
tlsrpt_expire(struct tlsrpt *t, long today)
{
	struct tlsrpt_entry *e;
	struct tlsrpt_day *d;
	char key[TLSRPT_KEY_LEN], err[256], day[16];
	int i;

	t->today = today;
	for (i = 0; i < t->store->ndays;) {
		d = &t->store->days[i];
		if (d->day >= today - TLSRPT_KEEP_DAYS) {
			i++;
			continue;
		}
		for (e = d->first; e != NULL; e = e->dnext) {
			tlsrpt_entry_key(e, key, sizeof(key));
			if (journal_del(t->j, key, err, sizeof(err)) < 0)
				log_warn(0, "tlsrpt", "result", "write-failed",
				    "key", key, "error", err, NULL);
		}
		tlsrpt_overflow_key(d->day, key, sizeof(key));
		if (d->overflow > 0 && journal_del(t->j, key, err,
		    sizeof(err)) < 0)
			log_warn(0, "tlsrpt", "result", "write-failed", "key",
			    key, "error", err, NULL);
		tlsrpt_sent_drop(t, d->day);
		tlsrpt_day_text(d->day, day, sizeof(day));
		log_info(0, "tlsrpt", "result", "day-dropped", "day", day,
		    NULL);
		tlsrpt_store_drop(t->store, d->day); /* moves the last here */
	}
}

static void
tlsrpt_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tlsrpt *t = w->data;
	long today = tlsrpt_day_of(clock_now());

	(void)loop;
	(void)revents;
	if (today != t->today)
		tlsrpt_expire(t, today);
	tlsrpt_write_dirty(t);
	/* Once a second is soon enough for reports, and follows a moved clock. */
	tlsrpt_sender_tick(t->sender);
}

struct tlsrpt *
tlsrpt_open(struct ev_loop *loop, const char *state_dir, char *err,
    size_t errlen)
{
	struct journal_loaded info;
	struct tlsrpt *t;
	char dir[PATH_MAX], torn[24];

	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->store = tlsrpt_store_new(TLSRPT_ENTRIES_MAX,
	    TLSRPT_DAY_BYTES_MAX)) == NULL) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->loop = loop;
	t->warned_day = -1;
	snprintf(dir, sizeof(dir), "%s/" TLSRPT_DIR, state_dir);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	snprintf(t->path, sizeof(t->path), "%s/" TLSRPT_JOURNAL, dir);
	t->ld.store = t->store;
	t->ld.sent = &t->sent;
	t->ld.path = t->path;
	if ((t->j = journal_open(loop, t->path, TLSRPT_JOURNAL_NAME,
	    TLSRPT_QUEUE_MAX, tlsrpt_load_record, tlsrpt_journal_error,
	    &t->ld, &info, err, errlen)) == NULL)
		goto fail;
	if (info.torn > 0) {
		snprintf(torn, sizeof(torn), "%zu", info.torn);
		log_warn(0, "tlsrpt", "result", "journal-torn", "file", t->path,
		    "ignored_bytes", torn, "error", info.why, NULL);
	}
	tlsrpt_expire(t, tlsrpt_day_of(clock_now()));
	ev_timer_init(&t->flush, tlsrpt_timer, TLSRPT_FLUSH_SECONDS,
	    TLSRPT_FLUSH_SECONDS);
	t->flush.data = t;
	ev_timer_start(loop, &t->flush);
	ev_unref(loop); /* housekeeping keeps nothing alive */
	return t;
fail:
	tlsrpt_store_free(t->store);
	free(t);
	return NULL;
}

void
tlsrpt_flush(struct tlsrpt *t)
{
	if (t == NULL)
		return;
	tlsrpt_write_dirty(t);
	journal_flush(t->j);
}

void
tlsrpt_close(struct tlsrpt *t)
{
	if (t == NULL)
		return;
	tlsrpt_sender_free(t->sender); /* what it marks sent is written */
	tlsrpt_write_dirty(t);
	ev_ref(t->loop);
	ev_timer_stop(t->loop, &t->flush);
	journal_close(t->j);
	tlsrpt_sent_free(&t->sent);
	tlsrpt_store_free(t->store);
	free(t->own);
	free(t);
}

/* ---- counting ---- */

/* The local address of the upstream socket: RFC 8460's sending-mta-ip. */
static void
tlsrpt_sending_ip(int fd, char *dst, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	dst[0] = '\0';
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) == -1 ||
	    sockaddr_str((struct sockaddr *)&ss, dst, len) == -1)
		dst[0] = '\0';
}

void
tlsrpt_count(struct tlsrpt *t, unsigned long sid,
    const struct tlsrpt_attempt *a)
{
	static char policy[TLSRPT_POLICY_MAX + 1], mx[TLSRPT_POLICY_MAX + 1];
	char sip[INET6_ADDRSTRLEN], labels[160], day[16];
	struct tlsrpt_key k;
	struct tlsrpt_day *d;
	long today;
	size_t used = 0;
	int i, r, n;

	if (t == NULL || a->domain == NULL || a->domain[0] == '\0')
		return;
	/*
	 * RFC 8460 section 3: a sending MTA "SHOULD NOT include this SMTP
	 * session in the next report" (the session delivering a report).
	 */
	if (a->client != NULL && tlsrpt_own_has(t, a->client)) {
		log_debug(sid, "tlsrpt", "domain", a->domain, "result",
		    tls_result_name(a->result), "counted", "no", "reason",
		    "the delivery of a TLS report of mxtls's own", NULL);
		return;
	}
	memset(&k, 0, sizeof(k));
	policy[0] = mx[0] = '\0';
	k.domain = a->domain;
	if (a->dane) {
		k.type = TLSRPT_POLICY_TLSA;
		tlsrpt_policy_tlsa(policy, sizeof(policy), a->tlsa);
		if (a->mx_host != NULL && a->mx_host[0] != '\0')
			snprintf(mx, sizeof(mx), "%s\n", a->mx_host);
	} else if (a->sts) {
		k.type = TLSRPT_POLICY_STS;
		tlsrpt_policy_sts(policy, sizeof(policy), a->sts_mode,
		    a->sts_max_age, a->sts_mx, a->sts_nmx);
		for (i = 0; i < a->sts_nmx; i++) {
			n = snprintf(mx + used, sizeof(mx) - used, "%s\n",
			    a->sts_mx[i]);
			if (n < 0 || (size_t)n >= sizeof(mx) - used) {
				mx[used] = '\0';
				break;
			}
			used += (size_t)n;
		}
	} else
		k.type = TLSRPT_POLICY_NONE;
	k.policy = policy;
	k.mx = mx;
	k.result = a->result == TLS_RESULT_OK ? NULL :
	    tls_result_name(a->result);
	tlsrpt_sending_ip(a->fd, sip, sizeof(sip));
	k.sending_ip = sip;
	k.mx_host = a->mx_host ? a->mx_host : "";
	k.receiving_ip = a->mx_addr ? a->mx_addr : "";
	today = tlsrpt_day_of(clock_now());
	if (today != t->today)
		tlsrpt_expire(t, today);
	r = tlsrpt_store_add(t->store, today, &k, 1, NULL);
	log_debug(sid, "tlsrpt", "domain", k.domain, "policy",
	    tlsrpt_policy_type_name(k.type), "result",
	    tls_result_name(a->result), "mx", k.mx_host[0] ? k.mx_host : NULL,
	    "addr", k.receiving_ip[0] ? k.receiving_ip : NULL, "from",
	    sip[0] ? sip : NULL, "counted", r == 0 ? "yes" : r == 1 ?
	    "overflow" : "invalid", NULL);
	if (r < 0)
		return;
	t->ndirty++;
	if (r == 1) {
		metrics_inc("mxtls_tlsrpt_overflow_total", "", 1);
		d = tlsrpt_store_day(t->store, today);
		if (t->warned_day != today) {
			t->warned_day = today;
			tlsrpt_day_text(today, day, sizeof(day));
			log_warn(sid, "tlsrpt-overflow", "day", day, "reason",
			    "the day's report entries are at their bound: "
			    "sessions with new policies or failures are only "
			    "counted as overflow", "overflow", d ? "yes" : "no",
			    NULL);
		}
		return;
	}
	metrics_inc("mxtls_tlsrpt_sessions_total", metrics_labels(labels,
	    sizeof(labels), "policy", tlsrpt_policy_type_name(k.type),
	    "result", tls_result_name(a->result), NULL), 1);
}

/* ---- mxtls report --dry-run ---- */

struct tlsrpt_dry {
	struct ev_loop *loop;
	FILE *out;
	const char *name;
	struct tlsrpt_sentset *sent; /* as the journal has it */
	long day;
	const char *domain;
	int done;
};

static void
tlsrpt_dry_txt(void *arg, const struct dns_txt_result *res)
{
	struct tlsrpt_dry *x = arg;
	const char *recs[DNS_TXT_MAX];
	struct tlsrpt_txt txt;
	char err[320];
	int i;

	x->done = 1;
	if (res->status != DNS_OK && res->status != DNS_NODATA &&
	    res->status != DNS_NXDOMAIN) {
		fprintf(x->out, "rua unknown: %s: %s\n", x->name,
		    res->error ? res->error : "DNS lookup failed");
		fprintf(x->out, "dnssec %s\n", dnssec_status_name(res->sec));
		return;
	}
	for (i = 0; i < res->ntxt; i++)
		recs[i] = res->txt[i];
	switch (tlsrpt_parse_txt(recs, res->len, res->status == DNS_OK ?
	    res->ntxt : 0, &txt, err, sizeof(err))) {
	case TLSRPT_TXT_OK:
		fprintf(x->out, "rua");
		for (i = 0; i < txt.nrua; i++)
			fprintf(x->out, " %s", txt.rua[i]);
		fprintf(x->out, "\n");
		/* Which of them already took the report. */
		for (i = 0; i < txt.nrua; i++)
			if (tlsrpt_sent_has(x->sent, x->day, x->domain,
			    txt.rua[i]))
				fprintf(x->out, "sent %s\n", txt.rua[i]);
		break;
	case TLSRPT_TXT_NONE:
		fprintf(x->out, "rua none: %s: %s (no report would be sent)\n",
		    x->name, err);
		break;
	case TLSRPT_TXT_INVALID:
		fprintf(x->out, "rua invalid: %s: %s (no report would be "
		    "sent)\n", x->name, err);
		break;
	}
	fprintf(x->out, "dnssec %s\n", dnssec_status_name(res->sec));
}

int
tlsrpt_dry_run(const struct config *cfg, const char *daytext, FILE *out)
{
	struct tlsrpt_report_info ri;
	struct tlsrpt_loading ld;
	struct tlsrpt_sentset sent;
	struct journal_loaded info;
	struct tlsrpt_store *store;
	struct tlsrpt_dry x;
	struct tlsrpt_day *d;
	struct dns *dns = NULL;
	const char **doms = NULL;
	char path[PATH_MAX], err[512], name[DNS_NAME_MAX + 16], dtext[16];
	char *json;
	size_t len;
	long day;
	int i, n, rc = 1;

	memset(&x, 0, sizeof(x));
	x.out = out;
	if (daytext == NULL)
		day = tlsrpt_day_of(clock_now()) - 1;
	else if (tlsrpt_day_parse(daytext, &day) < 0) {
		fprintf(stderr, "mxtls: report: \"%s\" is not a day "
		    "(YYYY-MM-DD)\n", daytext);
		return 1;
	}
	if (!cfg->report_enabled)
		fprintf(stderr, "mxtls: report: [report] enabled is not yes: "
		    "mxtls counts nothing for reports\n");
	if ((store = tlsrpt_store_new(TLSRPT_ENTRIES_MAX,
	    TLSRPT_DAY_BYTES_MAX)) == NULL) {
		fprintf(stderr, "mxtls: out of memory\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/" TLSRPT_DIR "/" TLSRPT_JOURNAL,
	    cfg->state_dir);
	memset(&ld, 0, sizeof(ld));
	memset(&sent, 0, sizeof(sent));
	ld.store = store;
	ld.sent = &sent;
	ld.path = path;
	ld.out = stderr;
	x.sent = &sent;
	x.day = day;
	/* Read only: the running mxtls alone writes the journal. */
	if (journal_read(path, TLSRPT_JOURNAL_NAME, tlsrpt_load_record, &ld,
	    &info, err, sizeof(err)) < 0) {
		fprintf(stderr, "mxtls: report: %s\n", err);
		goto out;
	}
	tlsrpt_day_text(day, dtext, sizeof(dtext));
	fprintf(out, "day %s\n", dtext);
	if ((n = tlsrpt_store_domains(store, day, &doms)) < 0) {
		fprintf(stderr, "mxtls: out of memory\n");
		goto out;
	}
	if ((d = tlsrpt_store_day(store, day)) != NULL && d->overflow > 0)
		fprintf(out, "overflow %lu\n", d->overflow);
	if (n == 0) {
		fprintf(out, "no sessions counted on %s\n", dtext);
		rc = 0;
		goto out;
	}
	if ((x.loop = ev_loop_new(EVFLAG_AUTO)) == NULL) {
		fprintf(stderr, "mxtls: report: no event loop\n");
		goto out;
	}
	if ((dns = runtime_dns_new(x.loop, cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxtls: report: %s\n", err);
		goto out;
	}
	ri.organization = cfg->report_org;
	ri.contact = cfg->report_contact;
	ri.submitter = cfg->report_submitter;
	for (i = 0; i < n; i++) {
		fprintf(out, "domain %s\n", doms[i]);
		/* Discovery (RFC 8460 section 3): when the report is due. */
		snprintf(name, sizeof(name), "_smtp._tls.%s", doms[i]);
		x.name = name;
		x.domain = doms[i];
		x.done = 0;
		if (dns_lookup_txt(dns, name, tlsrpt_dry_txt, &x) == NULL) {
			fprintf(stderr, "mxtls: out of memory\n");
			goto out;
		}
		while (!x.done)
			ev_run(x.loop, EVRUN_ONCE);
		if ((json = tlsrpt_report_json(store, day, doms[i], &ri,
		    &len)) == NULL) {
			fprintf(stderr, "mxtls: out of memory\n");
			goto out;
		}
		fprintf(out, "json %s\n", json);
		free(json);
	}
	rc = 0;
out:
	free(doms);
	if (dns != NULL)
		dns_free(dns);
	if (x.loop != NULL)
		ev_loop_destroy(x.loop);
	tlsrpt_store_free(store);
	tlsrpt_sent_free(&sent);
	return rc;
}
