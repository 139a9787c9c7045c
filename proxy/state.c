/*
 * Retry records: a chained hash table keyed by (host, address, port,
 * policy fingerprint; state.h says why), a heap by first failure for
 * eviction, and a writer thread that keeps the files of state.h.
 *
 * The event loop never waits for the disk, and the cost of a change does
 * not grow with the number of records.  The loop owns the table; each
 * change to it (a put, a delete, an eviction, an expiry) becomes one
 * journal line, formatted on the loop and handed to the writer through a
 * queue whose lock is held only to link an item or to take the whole list.
 * The writer:
 *
 *  - appends the lines it took (through a STATE_WBUF buffer: one write()
 *    for hundreds of lines) and fdatasync()s them once; it takes the
 *    queue again STATE_SYNC_MS after its last sync at the earliest, so a
 *    burst of failures costs at most ten syncs a second however large it
 *    is, and a crash loses at most the changes of the last STATE_SYNC_MS
 *    and one sync;
 *  - keeps a mirror of the records (key -> line: the put lines it wrote),
 *    so that it can write a snapshot without the loop's table.  When the
 *    journal has more than twice as many lines as there are records plus
 *    STATE_COMPACT_SLACK, it compacts: the mirror goes to retry-state.tmp,
 *    fsync, rename over retry-state, fsync of the directory; then a new
 *    journal the same way (its header in retry-state.journal.tmp, renamed
 *    over the old one).  A crash between the two renames leaves the new
 *    snapshot with the old journal, which changes nothing applied again;
 *  - after a write error appends nothing more (the journal may lack a
 *    line) and only keeps the mirror up to date; a compaction, which
 *    writes everything, is tried every STATE_RETRY_MS and at state_sync().
 *    Its errors reach the loop through the return of state_put() and
 *    state_expire(), at most once per failed attempt.
 *
 * The queue holds at most STATE_QUEUE_MAX bytes of lines.  The writer
 * takes all of it at every batch, so only a disk that hangs fills it.  A
 * change that does not fit is kept in memory only (state_put() says so
 * once), the loop stops queueing, and once the writer has taken the queue
 * the loop hands it the whole table, a line per record, which the writer
 * takes as its new mirror and writes as a snapshot.  That pass over the
 * table is the only loop cost that grows with the number of records, and
 * it happens only after the disk hung.
 *
 * Reading (state_open, state_read): the journal is opened before the
 * snapshot, so that a reader racing a compaction gets the old journal with
 * the old or the new snapshot, or the new journal with the new snapshot:
 * the same records each time.  A journal line that cannot be read is
 * skipped, and the lines after it still count: each line stands alone,
 * and the only thing lost is that one change (a record that should be
 * gone, or one that is missing: at most one extra retry cycle of one
 * host).  The journal is applied without eviction (a line applied again
 * over a snapshot that already holds its effect must not push another
 * record out); the store is cut to STATE_MAX_RECORDS afterwards.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"

#define STATE_MAGIC "mxtls-retry-state"
#define STATE_VERSION "2"
#define JOURNAL_MAGIC "mxtls-retry-journal"
#define JOURNAL_VERSION "1"
#define STATE_LINE_MAX 2048 /* the longest valid line: 1244 bytes */
#define STATE_KEY_MAX (STATE_HOST_MAX + STATE_ADDR_MAX + STATE_POLICY_MAX + 8)
#define STATE_TIME_MAX ((time_t)253402300799) /* 9999-12-31T23:59:59Z */
#define STATE_BUCKETS_MIN 64
#define STATE_SYNC_MS 100
#define STATE_RETRY_MS 10000
#define STATE_COMPACT_SLACK 10000
#define STATE_QUEUE_MAX ((size_t)64 << 20)
#define STATE_WBUF (64 * 1024)

struct entry {
	struct entry *next; /* hash chain */
	size_t id;	    /* st->pos[id]: where in st->heap */
	char host[STATE_HOST_MAX + 1];
	char addr[STATE_ADDR_MAX + 1];
	int port;
	char profile[POLICY_NAME_MAX];
	char policy[STATE_POLICY_MAX + 1];
	struct retry_record rec;
};

/* A key in the form the table holds it: lower-cased, checked. */
struct nkey {
	char host[STATE_HOST_MAX + 1];
	char addr[STATE_ADDR_MAX + 1];
	int port;
	char profile[POLICY_NAME_MAX];
	char policy[STATE_POLICY_MAX + 1];
};

enum jop {
	JOP_PUT,
	JOP_DEL,
	JOP_RESET, /* the whole table follows (after the queue overflowed) */
	JOP_END,   /* ... up to here */
};

/*
 * A change on its way to the writer.  buf holds the key ("HOST ADDR PORT
 * POLICY"), a NUL, then the journal line with its '\n'.  A put stays on as
 * the writer's mirror of its record.
 */
struct jitem {
	struct jitem *next; /* the queue, then a mirror chain */
	enum jop op;
	uint64_t hash; /* of the key */
	size_t keylen, linelen;
	char buf[];
};

struct writer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* the writer waits for work */
	pthread_cond_t done; /* state_sync() waits for the writer */

	/* Under mu. */
	struct jitem *head, **tail;
	size_t qbytes, qmax;
	uint64_t sync_asked, sync_done;
	int hold, stop;
	int failed;	  /* the disk copy is behind */
	unsigned err_seq; /* errors so far; err: the last one */
	char err[512];

	/* The writer thread's alone once it runs. */
	const char *dir, *path, *jpath; /* the store's */
	int fd;				/* the journal; -1: none open */
	off_t jlen;
	size_t jlines;
	int broken;	/* a write failed: compact before appending */
	int compact;	/* the snapshot is to be rewritten */
	int rebuilding; /* between JOP_RESET and JOP_END */
	struct timespec last_sync, retry_at;
	struct jitem **mb; /* the mirror */
	size_t mnb, mn;
	size_t wlen;
	char wbuf[STATE_WBUF];
};

/*
 * The heap holds the key it is ordered by, and where each entry is lies in
 * st->pos: a sift reads and writes these arrays, not the entries on the
 * way (scattered over the memory; after a fork, such as the fetcher's,
 * the first write to each page costs a fault).
 */
struct slot {
	time_t first_failure;
	struct entry *e;
};

struct state {
	char *dir;   /* NULL: memory only */
	char *path;  /* dir/retry-state */
	char *jpath; /* dir/retry-state.journal */
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	int n;
	int count[RETRY_BROKEN + 1];
	struct slot *heap; /* by first failure, the oldest first */
	size_t *pos;	   /* entry id -> index in heap */
	size_t *free_ids;  /* ids of deleted entries, to use again */
	size_t heapcap, nfree, next_id;
	struct writer *w; /* NULL: nothing is written */
	int lost;	  /* changes were not queued: hand the table over */
	int lost_told;
	unsigned err_seen; /* of w->err_seq */
};

static const char state_nomem[] = "out of memory";

/* Host names and addresses: printable ASCII, no spaces, bounded. */
static int
state_name_ok(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= max || s[i] <= ' ' || s[i] > '~')
			return 0;
	return 1;
}

/* Lower-case copy of a key part; -1 when it is not a valid one. */
static int
state_key(char *dst, const char *src, size_t max, int empty_ok)
{
	size_t i;

	if (src == NULL || (!empty_ok && src[0] == '\0') ||
	    !state_name_ok(src, max))
		return -1;
	for (i = 0; src[i] != '\0'; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
	return 0;
}

/* A policy fingerprint: lower-case hex, or "*" for a version 1 record. */
static int
state_policy_ok(const char *s)
{
	size_t i;

	if (strcmp(s, STATE_POLICY_ANY) == 0)
		return 1;
	for (i = 0; s[i] != '\0'; i++)
		if (i >= STATE_POLICY_MAX || !isxdigit((unsigned char)s[i]) ||
		    isupper((unsigned char)s[i]))
			return 0;
	return i > 0;
}

/* Check and normalise a key: NULL, or what is wrong with it. */
static const char *
state_nkey(struct nkey *n, const char *host, const char *addr, int port,
    const char *profile, const char *policy)
{
	if (state_key(n->host, host, STATE_HOST_MAX, 1) == -1 ||
	    strcmp(n->host, "-") == 0)
		return "bad host name";
	if (state_key(n->addr, addr, STATE_ADDR_MAX, 0) == -1)
		return "bad address";
	if (port < 1 || port > 65535)
		return "bad port";
	n->port = port;
	if (profile == NULL || !state_name_ok(profile, POLICY_NAME_MAX - 1))
		return "bad profile name";
	snprintf(n->profile, sizeof(n->profile), "%s", profile);
	if (policy == NULL || !state_policy_ok(policy))
		return "bad policy fingerprint";
	snprintf(n->policy, sizeof(n->policy), "%s", policy);
	return NULL;
}

/* What the files can hold; shared by state_put() and the loader. */
static int
state_record_ok(const struct retry_record *r)
{
	if (r->state != RETRY_FAILED_ONCE && r->state != RETRY_BROKEN)
		return 0;
	if (r->event != FAILURE_NO_STARTTLS && r->event != FAILURE_CERTIFICATE &&
	    r->event != FAILURE_HANDSHAKE)
		return 0;
	if (r->first_failure < 0 || r->first_failure > STATE_TIME_MAX ||
	    r->broken_until < 0 || r->broken_until > STATE_TIME_MAX)
		return 0;
	return memchr(r->error, '\0', sizeof(r->error)) != NULL;
}

static int
state_record_same(const struct retry_record *a, const struct retry_record *b)
{
	return a->state == b->state && a->first_failure == b->first_failure &&
	    a->broken_until == b->broken_until && a->event == b->event &&
	    strcmp(a->error, b->error) == 0;
}

static uint64_t
state_fnv(uint64_t h, const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h * 1099511628211ULL; /* for the NUL between parts */
}

/* FNV-1a over host, addr, port and policy (the profile's name is in the
 * policy fingerprint). */
static size_t
state_hash(const char *host, const char *addr, int port, const char *policy)
{
	uint64_t h = 14695981039346656037ULL;

	h = state_fnv(h, host);
	h = state_fnv(h, addr);
	h = (h ^ (uint64_t)port) * 1099511628211ULL;
	h = state_fnv(h, policy);
	return (size_t)(h ^ (h >> 32));
}

/* The link pointing at the entry for a (normalised) key, or at the NULL
 * ending its chain. */
static struct entry **
state_find(struct state *st, const char *host, const char *addr, int port,
    const char *policy)
{
	struct entry **pp;

	pp = &st->buckets[state_hash(host, addr, port, policy) &
	    (st->nbuckets - 1)];
	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->port == port && strcmp((*pp)->host, host) == 0 &&
		    strcmp((*pp)->addr, addr) == 0 &&
		    strcmp((*pp)->policy, policy) == 0)
			break;
	return pp;
}

static struct entry **
state_find_key(struct state *st, const struct nkey *k)
{
	return state_find(st, k->host, k->addr, k->port, k->policy);
}

/* Double the table when it gets full; without memory keep the chains. */
static void
state_grow(struct state *st)
{
	struct entry **nb, *e, *next;
	size_t i, n = st->nbuckets * 2;

	if ((size_t)st->n < st->nbuckets)
		return;
	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < st->nbuckets; i++)
		for (e = st->buckets[i]; e != NULL; e = next) {
			size_t b = state_hash(e->host, e->addr, e->port,
			    e->policy) & (n - 1);

			next = e->next;
			e->next = nb[b];
			nb[b] = e;
		}
	free(st->buckets);
	st->buckets = nb;
	st->nbuckets = n;
}

/* ---- the heap: the record to evict in O(log n), not a scan ---- */

static void
state_heap_set(struct state *st, size_t i, struct slot sl)
{
	st->heap[i] = sl;
	st->pos[sl.e->id] = i;
}

/* Move the entry at i to where its first_failure belongs (after it
 * changed, or after i was filled with another entry). */
static void
state_heap_fix(struct state *st, size_t i)
{
	struct slot sl = { st->heap[i].e->rec.first_failure, st->heap[i].e };
	size_t n = (size_t)st->n, c;

	while (i > 0 && sl.first_failure <
	    st->heap[(i - 1) / 2].first_failure) {
		state_heap_set(st, i, st->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	while ((c = 2 * i + 1) < n) {
		if (c + 1 < n && st->heap[c + 1].first_failure <
		    st->heap[c].first_failure)
			c++;
		if (st->heap[c].first_failure >= sl.first_failure)
			break;
		state_heap_set(st, i, st->heap[c]);
		i = c;
	}
	state_heap_set(st, i, sl);
}

/* ---- lines ---- */

/* ERROR percent-encoded (state.h) at p; the end. */
static char *
state_escape(char *p, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *c = (const unsigned char *)s;

	if (*c == '\0') {
		*p++ = '-';
		return p;
	}
	if (strcmp(s, "-") == 0) {
		memcpy(p, "%2D", 3);
		return p + 3;
	}
	for (; *c != '\0'; c++)
		if (*c <= ' ' || *c >= 0x7f || *c == '%') {
			*p++ = '%';
			*p++ = hex[*c >> 4];
			*p++ = hex[*c & 15];
		} else
			*p++ = (char)*c;
	return p;
}

/* The key fields of a line ("HOST ADDR PORT PROFILE POLICY") at p. */
static char *
state_key_fields(char *p, size_t size, const struct entry *e)
{
	return p + snprintf(p, size, "%s %s %d %s %s",
	    e->host[0] != '\0' ? e->host : "-", e->addr, e->port, e->profile,
	    e->policy);
}

/* e's line of the snapshot, without its '\n', at p[STATE_LINE_MAX]; the
 * end. */
static char *
state_record_line(char *p, const struct entry *e)
{
	char *q = state_key_fields(p, STATE_LINE_MAX, e);

	q += snprintf(q, STATE_LINE_MAX - (size_t)(q - p), " %s %lld %lld %s ",
	    retry_state_name(e->rec.state), (long long)e->rec.first_failure,
	    (long long)e->rec.broken_until, failure_event_name(e->rec.event));
	return state_escape(q, e->rec.error);
}

static uint64_t
state_key_hash(const char *key, size_t len)
{
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
	return h;
}

/* The journal item of a change to e (NULL for JOP_RESET and JOP_END), or
 * NULL without memory. */
static struct jitem *
state_item(enum jop op, const struct entry *e)
{
	char key[STATE_KEY_MAX], line[STATE_LINE_MAX + 8], *p = line;
	size_t klen = 0;
	struct jitem *it;

	if (e != NULL) {
		klen = (size_t)snprintf(key, sizeof(key), "%s %s %d %s",
		    e->host[0] != '\0' ? e->host : "-", e->addr, e->port,
		    e->policy);
		memcpy(p, op == JOP_PUT ? "put " : "del ", 4);
		p += 4;
		p = op == JOP_PUT ? state_record_line(p, e) :
		    state_key_fields(p, STATE_LINE_MAX, e);
		*p++ = '\n';
	}
	if ((it = malloc(sizeof(*it) + klen + 1 + (size_t)(p - line))) ==
	    NULL)
		return NULL;
	it->next = NULL;
	it->op = op;
	it->keylen = klen;
	it->linelen = (size_t)(p - line);
	memcpy(it->buf, key, klen);
	it->buf[klen] = '\0';
	memcpy(it->buf + klen + 1, line, it->linelen);
	it->hash = state_key_hash(it->buf, klen);
	return it;
}

static const char *
state_item_line(const struct jitem *it)
{
	return it->buf + it->keylen + 1;
}

/* ---- the loop's side of the queue ---- */

/* Link the items first..*last (bytes of lines) to the queue.  Unless
 * forced, a queue that is full refuses them: they are freed and the store
 * is marked lost. */
static void
state_queue(struct state *st, struct jitem *first, struct jitem **last,
    size_t bytes, int force)
{
	struct writer *w = st->w;
	struct jitem *it;
	int fits;

	pthread_mutex_lock(&w->mu);
	if ((fits = force || w->qbytes + bytes <= w->qmax)) {
		/* Only an empty queue can have the writer waiting for it. */
		if (w->head == NULL)
			pthread_cond_signal(&w->wake);
		*w->tail = first;
		w->tail = last;
		w->qbytes += bytes;
	}
	pthread_mutex_unlock(&w->mu);
	if (fits)
		return;
	while ((it = first) != NULL) {
		first = it->next;
		free(it);
	}
	st->lost = 1;
}

/* Hand a change to e to the writer. */
static void
state_log(struct state *st, enum jop op, const struct entry *e)
{
	struct jitem *it;

	if (st->w == NULL || st->lost)
		return;
	if ((it = state_item(op, e)) == NULL) {
		st->lost = 1;
		return;
	}
	state_queue(st, it, &it->next, it->linelen, 0);
}

/*
 * After changes were lost: once the writer has taken the queue, hand it
 * the whole table (see the top of this file).  Without memory, later.
 */
static void
state_resync(struct state *st)
{
	struct jitem *head = NULL, **tail = &head, *it;
	struct entry *e;
	size_t i, bytes = 0;
	int empty;

	pthread_mutex_lock(&st->w->mu);
	empty = st->w->head == NULL;
	pthread_mutex_unlock(&st->w->mu);
	if (!empty)
		return;
	if ((*tail = state_item(JOP_RESET, NULL)) == NULL)
		return;
	tail = &(*tail)->next;
	for (i = 0; i < st->nbuckets; i++)
		for (e = st->buckets[i]; e != NULL; e = e->next) {
			if ((it = state_item(JOP_PUT, e)) == NULL)
				goto nomem;
			bytes += it->linelen;
			*tail = it;
			tail = &it->next;
		}
	if ((*tail = state_item(JOP_END, NULL)) == NULL)
		goto nomem;
	state_queue(st, head, &(*tail)->next, bytes, 1);
	st->lost = 0;
	st->lost_told = 0;
	return;
nomem:
	while ((it = head) != NULL) {
		head = it->next;
		free(it);
	}
}

/* The end of state_put() and state_expire(): 0, or -1 with err set when
 * the disk copy fell behind since the last report. */
static int
state_report(struct state *st, char *err, size_t errlen)
{
	struct writer *w = st->w;
	int r = 0;

	if (w == NULL)
		return 0;
	if (st->lost)
		state_resync(st);
	if (st->lost && !st->lost_told) {
		st->lost_told = 1;
		snprintf(err, errlen, "%s: the queue of changes for the "
		    "writer is full (%zu bytes: is the disk hanging?): changes "
		    "are kept in memory only until it catches up", st->jpath,
		    w->qmax);
		return -1;
	}
	pthread_mutex_lock(&w->mu);
	if (w->err_seq != st->err_seen) {
		st->err_seen = w->err_seq;
		snprintf(err, errlen, "%s", w->err);
		r = -1;
	}
	pthread_mutex_unlock(&w->mu);
	return r;
}

/* ---- changes to the table ---- */

static void
state_unlink(struct state *st, struct entry **pp)
{
	struct entry *e = *pp;
	size_t i = st->pos[e->id];

	*pp = e->next;
	st->free_ids[st->nfree++] = e->id;
	st->count[e->rec.state]--;
	st->n--;
	if (i < (size_t)st->n) {
		state_heap_set(st, i, st->heap[st->n]);
		state_heap_fix(st, i);
	}
	free(e);
}

/* Delete the entry at *pp and say so to the writer. */
static void
state_delete(struct state *st, struct entry **pp)
{
	state_log(st, JOP_DEL, *pp);
	state_unlink(st, pp);
}

/* Make room: drop the record with the oldest first failure. */
static void
state_evict(struct state *st)
{
	struct entry *e = st->heap[0].e;

	state_delete(st, state_find(st, e->host, e->addr, e->port,
	    e->policy));
}

/*
 * Store r under k: replace the record of k, or insert one (evicting the
 * oldest record first when full and `evict`).  Links into the table are
 * stale afterwards.  -1: no memory (nothing changed).
 */
static int
state_store(struct state *st, const struct nkey *k,
    const struct retry_record *r, int evict)
{
	struct entry **pp = state_find_key(st, k), *e;
	struct slot *heap;
	size_t b, cap, *ids;

	if ((e = *pp) != NULL) {
		st->count[e->rec.state]--;
		st->count[r->state]++;
		e->rec = *r;
		state_heap_fix(st, st->pos[e->id]);
		state_log(st, JOP_PUT, e);
		return 0;
	}
	if ((size_t)st->n == st->heapcap) {
		cap = st->heapcap * 2;
		if ((heap = realloc(st->heap, cap * sizeof(*heap))) == NULL)
			return -1;
		st->heap = heap;
		if ((ids = realloc(st->pos, cap * sizeof(*ids))) == NULL)
			return -1;
		st->pos = ids;
		if ((ids = realloc(st->free_ids, cap * sizeof(*ids))) == NULL)
			return -1;
		st->free_ids = ids;
		st->heapcap = cap;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	snprintf(e->host, sizeof(e->host), "%s", k->host);
	snprintf(e->addr, sizeof(e->addr), "%s", k->addr);
	e->port = k->port;
	snprintf(e->profile, sizeof(e->profile), "%s", k->profile);
	snprintf(e->policy, sizeof(e->policy), "%s", k->policy);
	e->rec = *r;
	e->id = st->nfree > 0 ? st->free_ids[--st->nfree] : st->next_id++;
	if (evict && st->n >= STATE_MAX_RECORDS)
		state_evict(st);
	state_grow(st);
	b = state_hash(k->host, k->addr, k->port, k->policy) &
	    (st->nbuckets - 1);
	e->next = st->buckets[b];
	st->buckets[b] = e;
	st->count[r->state]++;
	state_heap_set(st, (size_t)st->n, (struct slot){ r->first_failure,
	    e });
	st->n++;
	state_heap_fix(st, st->pos[e->id]);
	state_log(st, JOP_PUT, e);
	return 0;
}

/* Empty the table (no heap upkeep on the way). */
static void
state_clear(struct state *st)
{
	struct entry *e;
	size_t i;

	for (i = 0; i < st->nbuckets; i++)
		while ((e = st->buckets[i]) != NULL) {
			st->buckets[i] = e->next;
			free(e);
		}
	st->n = 0;
	st->nfree = 0;
	st->next_id = 0;
	memset(st->count, 0, sizeof(st->count));
}

/* ---- the writer thread ---- */

static void
writer_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

static void
writer_add_ms(struct timespec *ts, long ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int
writer_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	    (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void
writer_seterr(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "%s%s: %s", what, path, strerror(errno));
}

/* The mirror link of the key of it, or the NULL ending its chain. */
static struct jitem **
writer_find(struct writer *w, const struct jitem *it)
{
	struct jitem **pp = &w->mb[it->hash & (w->mnb - 1)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->hash == it->hash && (*pp)->keylen == it->keylen &&
		    memcmp((*pp)->buf, it->buf, it->keylen) == 0)
			break;
	return pp;
}

/* Double the mirror's buckets when full; without memory keep the chains. */
static void
writer_grow(struct writer *w)
{
	struct jitem **nb, *it, *next;
	size_t i, n = w->mnb * 2;

	if (w->mn < w->mnb || (nb = calloc(n, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < w->mnb; i++)
		for (it = w->mb[i]; it != NULL; it = next) {
			next = it->next;
			it->next = nb[it->hash & (n - 1)];
			nb[it->hash & (n - 1)] = it;
		}
	free(w->mb);
	w->mb = nb;
	w->mnb = n;
}

/* A put or delete into the mirror; it is kept (a put) or freed. */
static void
writer_apply(struct writer *w, struct jitem *it)
{
	struct jitem **pp = writer_find(w, it), *old = *pp;

	if (old != NULL) {
		*pp = old->next;
		free(old);
		w->mn--;
	}
	if (it->op != JOP_PUT) {
		free(it);
		return;
	}
	writer_grow(w);
	pp = &w->mb[it->hash & (w->mnb - 1)];
	it->next = *pp;
	*pp = it;
	w->mn++;
}

static void
writer_clear(struct writer *w)
{
	struct jitem *it;
	size_t i;

	for (i = 0; i < w->mnb; i++)
		while ((it = w->mb[i]) != NULL) {
			w->mb[i] = it->next;
			free(it);
		}
	w->mn = 0;
}

/* Write out what wbuf holds to fd. */
static int
writer_drain(struct writer *w, int fd)
{
	const char *p = w->wbuf;
	ssize_t n;

	while (w->wlen > 0) {
		if ((n = write(fd, p, w->wlen)) == -1) {
			if (errno == EINTR)
				continue;
			w->wlen = 0;
			return -1;
		}
		p += n;
		w->wlen -= (size_t)n;
	}
	return 0;
}

static int
writer_out(struct writer *w, int fd, const char *s, size_t len)
{
	if (w->wlen + len > sizeof(w->wbuf) && writer_drain(w, fd) == -1)
		return -1;
	memcpy(w->wbuf + w->wlen, s, len);
	w->wlen += len;
	return 0;
}

/* A new file to be renamed to path (a stale one, or anything planted in
 * its place, is removed first; no link is followed). */
static int
writer_create(const char *tmp, int append)
{
	unlink(tmp);
	return open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
	    (append ? O_APPEND : 0), 0600);
}

/* fsync the directory, so that a rename reaches the disk too. */
static void
writer_sync_dir(struct writer *w)
{
	int fd;

	if ((fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(fd);
		close(fd);
	}
}

/* Write header + (the mirror's lines) to tmp, sync it, rename it to path.
 * The new file's descriptor (for more lines), or -1 with err set. */
static int
writer_replace(struct writer *w, const char *path, const char *header,
    int mirror, char *err, size_t errlen)
{
	char tmp[4096];
	struct jitem *it;
	size_t i;
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >=
	    sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if ((fd = writer_create(tmp, !mirror)) == -1) {
		writer_seterr(err, errlen, "", tmp);
		return -1;
	}
	w->wlen = 0;
	if (writer_out(w, fd, header, strlen(header)) == -1)
		goto fail;
	for (i = 0; mirror && i < w->mnb; i++)
		for (it = w->mb[i]; it != NULL; it = it->next)
			/* the line after "put " */
			if (writer_out(w, fd, state_item_line(it) + 4,
			    it->linelen - 4) == -1)
				goto fail;
	if (writer_drain(w, fd) == -1 || fsync(fd) == -1)
		goto fail;
	if (rename(tmp, path) == -1) {
		writer_seterr(err, errlen, "rename to ", path);
		close(fd);
		unlink(tmp);
		return -1;
	}
	writer_sync_dir(w);
	return fd;
fail:
	writer_seterr(err, errlen, "", tmp);
	close(fd);
	unlink(tmp);
	return -1;
}

/* Start a new, empty journal. */
static int
writer_new_journal(struct writer *w, char *err, size_t errlen)
{
	static const char header[] = JOURNAL_MAGIC " " JOURNAL_VERSION "\n";
	int fd;

	if ((fd = writer_replace(w, w->jpath, header, 0, err, errlen)) == -1)
		return -1;
	if (w->fd != -1)
		close(w->fd);
	w->fd = fd;
	w->jlen = (off_t)sizeof(header) - 1;
	w->jlines = 0;
	return 0;
}

/* The mirror as the snapshot, then a new journal (see the top of this
 * file). */
static int
writer_compact(struct writer *w, char *err, size_t errlen)
{
	int fd;

	if ((fd = writer_replace(w, w->path, STATE_MAGIC " " STATE_VERSION
	    "\n", 1, err, errlen)) == -1)
		return -1;
	close(fd);
	return writer_new_journal(w, err, errlen);
}

static void
writer_fail(struct writer *w)
{
	w->broken = 1;
	writer_now(&w->retry_at);
	writer_add_ms(&w->retry_at, STATE_RETRY_MS);
}

/*
 * One batch: the items taken from the queue into the mirror and the
 * journal (one fdatasync for all); then a compaction if one is due.  urgent: state_sync() or the end is waiting, a failed writer
 * tries again now.  -1 with err set when something failed.
 */
static int
writer_batch(struct writer *w, struct jitem *list, int urgent, char *err,
    size_t errlen)
{
	struct jitem *it, *next;
	struct timespec now;
	int r = 0, append, werr;

	if (w->fd == -1 && !w->broken && !w->compact &&
	    writer_new_journal(w, err, errlen) == -1) {
		writer_fail(w);
		r = -1;
	}
	w->wlen = 0;
	append = 0;
	werr = 0;
	for (it = list; it != NULL; it = next) {
		next = it->next;
		if (it->op == JOP_RESET || it->op == JOP_END) {
			if (it->op == JOP_RESET)
				writer_clear(w);
			w->rebuilding = it->op == JOP_RESET;
			w->compact |= it->op == JOP_END;
			free(it);
			continue;
		}
		if (w->fd != -1 && !w->broken && !w->rebuilding) {
			if (writer_out(w, w->fd, state_item_line(it),
			    it->linelen) == -1) {
				werr = errno;
				writer_fail(w);
			}
			append = 1;
			w->jlines++;
		}
		writer_apply(w, it);
	}
	if (append) {
		if (werr == 0 && (writer_drain(w, w->fd) == -1 ||
		    fdatasync(w->fd) == -1))
			werr = errno;
		if (werr != 0) {
			errno = werr;
			writer_seterr(err, errlen, "write ", w->jpath);
			/* No half line for the next one to be glued to. */
			if (ftruncate(w->fd, w->jlen) == 0)
				w->jlen = lseek(w->fd, 0, SEEK_END);
			writer_fail(w);
			r = -1;
		} else
			w->jlen = lseek(w->fd, 0, SEEK_END);
		writer_now(&w->last_sync);
	}
	if (w->rebuilding)
		return r;
	if (!w->broken && w->jlines > 2 * w->mn + STATE_COMPACT_SLACK)
		w->compact = 1;
	writer_now(&now);
	if (w->broken && (urgent || !writer_before(&now, &w->retry_at)))
		w->compact = 1;
	else if (w->broken)
		return r;
	if (w->compact) {
		if (writer_compact(w, err, errlen) == -1) {
			writer_fail(w);
			return -1;
		}
		w->broken = 0;
		w->compact = 0;
	}
	return r;
}

/* Something for the writer to do (under mu). */
static int
writer_work(struct writer *w)
{
	struct timespec now;

	if (w->stop)
		return 1;
	if (w->hold)
		return 0;
	if (w->head != NULL || w->sync_asked != w->sync_done)
		return 1;
	writer_now(&now);
	return w->broken && !writer_before(&now, &w->retry_at);
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct jitem *list;
	struct timespec now, until;
	uint64_t asked;
	char err[sizeof(w->err)];
	int r, stop, urgent;

	/* At start: a compaction when the files asked for one, else a new
	 * journal. */
	r = writer_batch(w, NULL, 0, err, sizeof(err));
	pthread_mutex_lock(&w->mu);
	for (;;) {
		if (r == -1) {
			memcpy(w->err, err, sizeof(w->err));
			w->err_seq++;
		}
		w->failed = w->broken;
		pthread_cond_broadcast(&w->done);
		while (!writer_work(w))
			if (w->broken && !w->hold)
				pthread_cond_timedwait(&w->wake, &w->mu,
				    &w->retry_at);
			else
				pthread_cond_wait(&w->wake, &w->mu);
		/* More lines may come until STATE_SYNC_MS after the last
		 * sync: one sync for them all. */
		until = w->last_sync;
		writer_add_ms(&until, STATE_SYNC_MS);
		for (;;) {
			writer_now(&now);
			if (w->stop || w->hold ||
			    w->sync_asked != w->sync_done ||
			    !writer_before(&now, &until))
				break;
			pthread_cond_timedwait(&w->wake, &w->mu, &until);
		}
		if (w->hold && !w->stop) {
			r = 0;
			continue;
		}
		list = w->head;
		w->head = NULL;
		w->tail = &w->head;
		w->qbytes = 0;
		asked = w->sync_asked;
		stop = w->stop;
		urgent = stop || asked != w->sync_done;
		pthread_mutex_unlock(&w->mu);

		r = writer_batch(w, list, urgent, err, sizeof(err));

		pthread_mutex_lock(&w->mu);
		w->sync_done = asked;
		if (stop && w->head == NULL)
			break;
	}
	if (r == -1) {
		memcpy(w->err, err, sizeof(w->err));
		w->err_seq++;
	}
	w->failed = w->broken;
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- reading the files ---- */

static int
state_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode an ERROR field into dst[RETRY_ERROR_MAX]; NULL or why not. */
static const char *
state_get_error(char *dst, const char *s)
{
	size_t n = 0;
	int hi, lo;

	if (strcmp(s, "-") == 0) {
		dst[0] = '\0';
		return NULL;
	}
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (n >= RETRY_ERROR_MAX - 1)
			return "error too long";
		if (c == '%') {
			if ((hi = state_hexval(s[1])) < 0 ||
			    (lo = state_hexval(s[2])) < 0)
				return "bad escape in error";
			c = (unsigned char)(hi << 4 | lo);
			if (c == '\0')
				return "bad escape in error";
			s += 2;
		} else if (c <= ' ' || c >= 0x7f)
			return "bad byte in error";
		dst[n++] = (char)c;
	}
	dst[n] = '\0';
	return NULL;
}

/* Seconds since the epoch: digits only, within STATE_TIME_MAX. */
static int
state_get_time(const char *s, time_t *out)
{
	long long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > (long long)STATE_TIME_MAX)
			return -1;
	}
	*out = (time_t)v;
	return 0;
}

/* A port field: 1-65535, digits only. */
static int
state_get_port(const char *s, int *out)
{
	int v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) > 65535)
			return -1;
	}
	*out = v;
	return v > 0 ? 0 : -1;
}

/* Split p (modified in place) into exactly n fields; NULL or why not. */
static const char *
state_fields(char *p, char **f, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		f[i] = p;
		if (i < n - 1) {
			if ((p = strchr(p, ' ')) == NULL)
				return "too few fields";
			*p++ = '\0';
		} else if (strchr(p, ' ') != NULL)
			return "too many fields";
		if (*f[i] == '\0')
			return "empty field";
	}
	return NULL;
}

/* The key of the fields HOST ADDR PORT PROFILE POLICY. */
static const char *
state_parse_key(char **f, struct nkey *k)
{
	int port;

	if (state_get_port(f[2], &port) == -1)
		return "bad port";
	return state_nkey(k, strcmp(f[0], "-") == 0 ? "" : f[0], f[1], port,
	    f[3], f[4]);
}

/*
 * Parse one record line (modified in place) of a snapshot of `version` (1
 * or 2), or of a journal's put.  NULL or why not.
 */
static const char *
state_parse(char *line, int version, struct nkey *k, struct retry_record *r)
{
	char *f[10];
	const char *why;
	int v;

	if ((why = state_fields(line, f, version == 1 ? 7 : 10)) != NULL)
		return why;
	if (version == 1) {
		why = state_nkey(k, strcmp(f[0], "-") == 0 ? "" : f[0], f[1],
		    25, "-", STATE_POLICY_ANY);
	} else {
		why = state_parse_key(f, k);
		memmove(f + 2, f + 5, 5 * sizeof(*f));
	}
	if (why != NULL)
		return why;
	memset(r, 0, sizeof(*r));
	if (strcmp(f[2], retry_state_name(RETRY_FAILED_ONCE)) == 0)
		r->state = RETRY_FAILED_ONCE;
	else if (strcmp(f[2], retry_state_name(RETRY_BROKEN)) == 0)
		r->state = RETRY_BROKEN;
	else
		return "bad state";
	if (state_get_time(f[3], &r->first_failure) == -1)
		return "bad first_failure";
	if (state_get_time(f[4], &r->broken_until) == -1)
		return "bad broken_until";
	for (v = FAILURE_NO_STARTTLS; v <= FAILURE_HANDSHAKE; v++)
		if (strcmp(f[5], failure_event_name(v)) == 0)
			break;
	if (v > FAILURE_HANDSHAKE)
		return "bad event";
	r->event = v;
	if ((why = state_get_error(r->error, f[6])) != NULL)
		return why;
	return state_record_ok(r) ? NULL : "bad record";
}

/*
 * One line without its '\n' into buf, read through its end whatever it
 * holds.  1: a line; 0: end of file; -1 with *why set: a bad line (NULL: a
 * read error, see errno).
 */
static int
state_read_line(FILE *f, char *buf, size_t size, const char **why)
{
	size_t len = 0;
	int c;

	*why = NULL;
	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (*why != NULL)
			continue;
		if (c == '\0')
			*why = "NUL byte";
		else if (len + 1 >= size)
			*why = "line too long";
		else
			buf[len++] = (char)c;
	}
	if (c == EOF && ferror(f)) {
		*why = NULL;
		return -1;
	}
	if (c == EOF && len == 0 && *why == NULL)
		return 0;
	if (c == EOF && *why == NULL)
		*why = "truncated line";
	buf[len] = '\0';
	return *why == NULL ? 1 : -1;
}

/* Append a problem to the warning ("; " between two). */
static void
state_warn(char *warning, size_t warnlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
state_warn(char *warning, size_t warnlen, const char *fmt, ...)
{
	size_t len = strnlen(warning, warnlen);
	va_list ap;

	if (len > 0 && len + 2 < warnlen) {
		memcpy(warning + len, "; ", 3);
		len += 2;
	}
	if (len + 1 >= warnlen)
		return;
	va_start(ap, fmt);
	vsnprintf(warning + len, warnlen - len, fmt, ap);
	va_end(ap);
}

/* One snapshot line into the store: NULL, or why not (state_nomem). */
static const char *
state_load_line(struct state *st, char *line, int version)
{
	struct nkey k;
	struct retry_record r;
	const char *why;

	if ((why = state_parse(line, version, &k, &r)) != NULL)
		return why;
	if (*state_find_key(st, &k) != NULL)
		return "duplicate record";
	if (st->n >= STATE_MAX_RECORDS)
		return "too many records";
	return state_store(st, &k, &r, 0) == -1 ? state_nomem : NULL;
}

/*
 * The snapshot into the (empty) store, all of it or nothing.  0; 1 with a
 * warning (the store is left empty) or for a version 1 file: it is to be
 * rewritten; -1 out of memory.
 */
static int
state_load_snapshot(struct state *st, FILE *f, char *line, char *warning,
    size_t warnlen)
{
	const char *why = NULL;
	int lineno = 1, rc, version = 0;

	rc = state_read_line(f, line, STATE_LINE_MAX, &why);
	if (rc == 0)
		why = "empty file";
	else if (rc == 1 && strcmp(line, STATE_MAGIC " " STATE_VERSION) == 0)
		version = 2;
	else if (rc == 1 && strcmp(line, STATE_MAGIC " 1") == 0)
		version = 1;
	else if (rc == 1)
		why = strncmp(line, STATE_MAGIC " ", strlen(STATE_MAGIC) + 1) ==
		    0 ? "unsupported version" : "not a retry-state file";
	while (rc == 1 && why == NULL) {
		lineno++;
		if ((rc = state_read_line(f, line, STATE_LINE_MAX, &why)) == 1)
			why = state_load_line(st, line, version);
	}
	if (why == state_nomem)
		return -1;
	if (rc == 0 && why == NULL)
		return version != 2;
	if (why == NULL)
		state_warn(warning, warnlen, "%s: read: %s", st->path,
		    strerror(errno));
	else
		state_warn(warning, warnlen, "%s line %d: %s", st->path, lineno,
		    why);
	state_clear(st);
	return 1;
}

/* One journal line applied to the store: NULL, or why not. */
static const char *
state_replay_line(struct state *st, char *line)
{
	struct nkey k;
	struct retry_record r;
	struct entry **pp;
	char *f[5];
	const char *why;

	if (strncmp(line, "put ", 4) == 0) {
		if ((why = state_parse(line + 4, 2, &k, &r)) != NULL)
			return why;
		return state_store(st, &k, &r, 0) == -1 ? state_nomem : NULL;
	}
	if (strncmp(line, "del ", 4) != 0)
		return "neither put nor del";
	if ((why = state_fields(line + 4, f, 5)) != NULL ||
	    (why = state_parse_key(f, &k)) != NULL)
		return why;
	if (*(pp = state_find_key(st, &k)) != NULL)
		state_unlink(st, pp);
	return NULL;
}

/*
 * Apply the journal.  Lines that cannot be read are skipped (see the top
 * of this file); the warning names the first.  0, or 1 when the files are
 * to be rewritten (it had lines, or problems); -1 out of memory.
 */
static int
state_replay(struct state *st, FILE *f, char *line, char *warning,
    size_t warnlen)
{
	const char *why, *first = NULL;
	int lineno = 1, rc, nbad = 0, badline = 0;

	rc = state_read_line(f, line, STATE_LINE_MAX, &why);
	if (rc == 0)
		return 1; /* the crash came before its header */
	if (rc == 1 && strcmp(line, JOURNAL_MAGIC " " JOURNAL_VERSION) != 0)
		why = strncmp(line, JOURNAL_MAGIC " ",
		    strlen(JOURNAL_MAGIC) + 1) == 0 ? "unsupported version" :
		    "not a retry-state journal";
	if (rc == -1 && why == NULL)
		goto read_error;
	if (why != NULL) {
		state_warn(warning, warnlen, "%s line 1: %s (not applied)",
		    st->jpath, why);
		return 1;
	}
	for (;;) {
		lineno++;
		if ((rc = state_read_line(f, line, STATE_LINE_MAX, &why)) == 0)
			break;
		if (rc == -1 && why == NULL)
			break;
		if (rc == 1 && (why = state_replay_line(st, line)) ==
		    state_nomem)
			return -1;
		if (why != NULL && nbad++ == 0) {
			first = why;
			badline = lineno;
		}
	}
	if (nbad > 0)
		state_warn(warning, warnlen, "%s line %d: %s (skipped%s)",
		    st->jpath, badline, first, nbad > 1 ? ", and more bad "
		    "lines after it" : "");
	if (rc == 0)
		return lineno > 2 || nbad > 0;
read_error:
	state_warn(warning, warnlen, "%s: read: %s", st->jpath,
	    strerror(errno));
	return 1;
}

/*
 * Read dir's files into the (empty) store, the journal opened first (see
 * the top of this file).  0, 1 when they are to be rewritten, -1 out of
 * memory.
 */
static int
state_load(struct state *st, char *warning, size_t warnlen)
{
	FILE *jf, *sf;
	char *line;
	int r = 0, rs = 0;

	if ((line = malloc(STATE_LINE_MAX)) == NULL)
		return -1;
	if ((jf = fopen(st->jpath, "re")) == NULL && errno != ENOENT) {
		state_warn(warning, warnlen, "%s: %s", st->jpath,
		    strerror(errno));
		r = 1;
	}
	if ((sf = fopen(st->path, "re")) != NULL) {
		rs = state_load_snapshot(st, sf, line, warning, warnlen);
		fclose(sf);
	} else if (errno != ENOENT) {
		state_warn(warning, warnlen, "%s: %s", st->path,
		    strerror(errno));
		rs = 1;
	}
	if (rs != -1 && jf != NULL)
		r |= state_replay(st, jf, line, warning, warnlen);
	if (jf != NULL)
		fclose(jf);
	free(line);
	if (rs == -1 || r == -1)
		return -1;
	/* Applied without eviction: now to size, the oldest first. */
	for (; st->n > STATE_MAX_RECORDS; r = 1)
		state_unlink(st, state_find(st, st->heap[0].e->host,
		    st->heap[0].e->addr, st->heap[0].e->port,
		    st->heap[0].e->policy));
	return r | rs;
}

/* ---- the interface ---- */

/* An empty store; dir NULL: memory only. */
static struct state *
state_new(const char *dir)
{
	struct state *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->nbuckets = STATE_BUCKETS_MIN;
	st->heapcap = STATE_BUCKETS_MIN;
	if ((st->buckets = calloc(st->nbuckets, sizeof(*st->buckets))) ==
	    NULL || (st->heap = calloc(st->heapcap, sizeof(*st->heap))) ==
	    NULL || (st->pos = calloc(st->heapcap, sizeof(*st->pos))) == NULL ||
	    (st->free_ids = calloc(st->heapcap, sizeof(*st->free_ids))) ==
	    NULL)
		goto nomem;
	if (dir == NULL)
		return st;
	if ((st->dir = strdup(dir)) == NULL)
		goto nomem;
	if (asprintf(&st->path, "%s/%s", dir, STATE_FILE) == -1) {
		st->path = NULL; /* undefined after a failure */
		goto nomem;
	}
	if (asprintf(&st->jpath, "%s/%s", dir, STATE_JOURNAL) == -1) {
		st->jpath = NULL;
		goto nomem;
	}
	return st;
nomem:
	state_free(st);
	return NULL;
}

struct state *
state_read(const char *dir, char *warning, size_t warnlen)
{
	struct state *st;

	if (warnlen > 0)
		warning[0] = '\0';
	if ((st = state_new(dir)) == NULL)
		return NULL;
	if (dir != NULL && state_load(st, warning, warnlen) == -1) {
		state_free(st);
		return NULL;
	}
	return st;
}

/* The writer, its mirror made from the table; the thread not started. */
static struct writer *
state_writer_new(struct state *st)
{
	struct writer *w;
	struct entry *e;
	size_t i;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->tail = &w->head;
	w->qmax = STATE_QUEUE_MAX;
	w->dir = st->dir;
	w->path = st->path;
	w->jpath = st->jpath;
	w->fd = -1;
	for (w->mnb = STATE_BUCKETS_MIN; w->mnb < (size_t)st->n;)
		w->mnb *= 2;
	if ((w->mb = calloc(w->mnb, sizeof(*w->mb))) == NULL) {
		free(w);
		return NULL;
	}
	for (i = 0; i < st->nbuckets; i++)
		for (e = st->buckets[i]; e != NULL; e = e->next) {
			struct jitem *it = state_item(JOP_PUT, e);

			if (it == NULL) {
				writer_clear(w);
				free(w->mb);
				free(w);
				return NULL;
			}
			writer_apply(w, it);
		}
	return w;
}

/* Start the writer's thread with every signal blocked: they are the
 * loop's. */
static int
state_writer_start(struct writer *w)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	int r;

	if ((r = pthread_mutex_init(&w->mu, NULL)) != 0)
		return r;
	if ((r = pthread_condattr_init(&ca)) != 0)
		goto fail_mu;
	if ((r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) != 0 ||
	    (r = pthread_cond_init(&w->wake, &ca)) != 0) {
		pthread_condattr_destroy(&ca);
		goto fail_mu;
	}
	pthread_condattr_destroy(&ca);
	if ((r = pthread_cond_init(&w->done, NULL)) != 0)
		goto fail_wake;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&w->thread, NULL, writer_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		return 0;
	pthread_cond_destroy(&w->done);
fail_wake:
	pthread_cond_destroy(&w->wake);
fail_mu:
	pthread_mutex_destroy(&w->mu);
	return r;
}

struct state *
state_open(const char *dir, char *warning, size_t warnlen)
{
	struct state *st;
	int dirty, r;

	if (warnlen > 0)
		warning[0] = '\0';
	if ((st = state_new(dir)) == NULL)
		return NULL;
	if (dir == NULL)
		return st;
	if ((dirty = state_load(st, warning, warnlen)) == -1 ||
	    (st->w = state_writer_new(st)) == NULL) {
		snprintf(warning, warnlen, "%s", state_nomem);
		goto fail;
	}
	st->w->compact = dirty;
	if ((r = state_writer_start(st->w)) != 0) {
		state_warn(warning, warnlen, "%s: cannot start its writer: %s",
		    st->jpath, strerror(r));
		writer_clear(st->w);
		free(st->w->mb);
		free(st->w);
		st->w = NULL;
		goto fail;
	}
	return st;
fail:
	state_free(st);
	return NULL;
}

int
state_sync(struct state *st, char *err, size_t errlen)
{
	struct writer *w = st->w;
	uint64_t ticket;
	int pass, r = 0;

	if (w == NULL)
		return 0;
	/* Twice when changes were lost: the table goes over once the
	 * first pass has emptied the queue. */
	for (pass = 0; pass < 2; pass++) {
		if (st->lost)
			state_resync(st);
		pthread_mutex_lock(&w->mu);
		ticket = ++w->sync_asked;
		pthread_cond_signal(&w->wake);
		while (w->sync_done < ticket)
			pthread_cond_wait(&w->done, &w->mu);
		r = w->failed ? -1 : 0;
		if (r == -1)
			snprintf(err, errlen, "%s", w->err);
		st->err_seen = w->err_seq;
		pthread_mutex_unlock(&w->mu);
		if (!st->lost)
			break;
	}
	if (r == 0 && st->lost) {
		snprintf(err, errlen, "%s: changes kept in memory only: the "
		    "writer is behind", st->jpath);
		r = -1;
	}
	return r;
}

void
state_free(struct state *st)
{
	struct writer *w;

	if (st == NULL)
		return;
	if ((w = st->w) != NULL) {
		pthread_mutex_lock(&w->mu);
		w->stop = 1;
		pthread_cond_signal(&w->wake);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		if (w->fd != -1)
			close(w->fd);
		writer_clear(w);
		free(w->mb);
		pthread_cond_destroy(&w->done);
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->mu);
		free(w);
	}
	if (st->buckets != NULL)
		state_clear(st);
	free(st->buckets);
	free(st->heap);
	free(st->pos);
	free(st->free_ids);
	free(st->dir);
	free(st->path);
	free(st->jpath);
	free(st);
}

/* The version 1 record of k's host, address and port. */
static struct entry **
state_find_any(struct state *st, const struct nkey *k)
{
	return state_find(st, k->host, k->addr, k->port, STATE_POLICY_ANY);
}

const struct retry_record *
state_get(struct state *st, const struct state_key *k)
{
	struct nkey n;
	struct entry *e;

	if (state_nkey(&n, k->host, k->addr, k->port, k->profile,
	    k->policy) != NULL)
		return NULL;
	if ((e = *state_find_key(st, &n)) == NULL)
		e = *state_find_any(st, &n);
	return e != NULL ? &e->rec : NULL;
}

int
state_put(struct state *st, const struct state_key *k,
    const struct retry_record *r, char *err, size_t errlen)
{
	struct nkey n;
	struct entry **pp;
	const char *why;
	int changed = 0;

	if ((why = state_nkey(&n, k->host, k->addr, k->port, k->profile,
	    k->policy)) != NULL) {
		snprintf(err, errlen, "retry record: %s", why);
		return -1;
	}
	if (r->state != RETRY_NONE && !state_record_ok(r)) {
		snprintf(err, errlen, "retry record for %s %s port %d: invalid",
		    n.host, n.addr, n.port);
		return -1;
	}
	/* A verdict under a known policy replaces one whose policy was not. */
	if (strcmp(n.policy, STATE_POLICY_ANY) != 0 &&
	    *(pp = state_find_any(st, &n)) != NULL) {
		state_delete(st, pp);
		changed = 1;
	}
	pp = state_find_key(st, &n);
	if (r->state == RETRY_NONE) {
		if (*pp != NULL)
			state_delete(st, pp);
	} else if (*pp == NULL || !state_record_same(&(*pp)->rec, r) ||
	    changed) {
		if (state_store(st, &n, r, 1) == -1) {
			snprintf(err, errlen,
			    "retry record for %s %s port %d: out of memory",
			    n.host, n.addr, n.port);
			return -1;
		}
	}
	return state_report(st, err, errlen);
}

int
state_expire(struct state *st, time_t now, const struct failure_timing *t,
    char *err, size_t errlen)
{
	struct entry **pp;
	size_t i;

	for (i = 0; i < st->nbuckets; i++)
		for (pp = &st->buckets[i]; *pp != NULL;)
			if (failure_expired(&(*pp)->rec, now, t))
				state_delete(st, pp);
			else
				pp = &(*pp)->next;
	return state_report(st, err, errlen);
}

static int
state_cmp(const void *a, const void *b)
{
	const struct entry *x = *(const struct entry *const *)a;
	const struct entry *y = *(const struct entry *const *)b;
	int c = strcmp(x->host, y->host);

	if (c == 0)
		c = strcmp(x->addr, y->addr);
	if (c == 0)
		c = x->port - y->port;
	if (c == 0)
		c = strcmp(x->profile, y->profile);
	return c != 0 ? c : strcmp(x->policy, y->policy);
}

static void
state_print_time(FILE *out, const char *key, time_t t)
{
	struct tm tm;
	char buf[32];

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, sizeof(buf), "@%lld", (long long)t);
	fprintf(out, " %s=%s", key, buf);
}

static void
state_print_quoted(FILE *out, const char *s)
{
	const unsigned char *p;

	fputc('"', out);
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < ' ' || *p >= 0x7f)
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
	fputc('"', out);
}

static void
state_print_one(FILE *out, const struct entry *e, time_t now,
    const struct failure_timing *t)
{
	const struct retry_record *r = &e->rec;

	fprintf(out, "%s %s %s port=%d profile=%s policy=%.8s",
	    e->host[0] != '\0' ? e->host : "-", e->addr,
	    retry_state_name(r->state), e->port, e->profile, e->policy);
	state_print_time(out, "since", r->first_failure);
	if (r->state == RETRY_BROKEN)
		state_print_time(out, "until", r->broken_until);
	else
		state_print_time(out, "retry_after",
		    r->first_failure + t->retry_delay);
	fprintf(out, " event=%s error=", failure_event_name(r->event));
	state_print_quoted(out, r->error);
	fputs(failure_expired(r, now, t) ? " expired\n" : "\n", out);
}

void
state_print(struct state *st, FILE *out, time_t now,
    const struct failure_timing *t)
{
	struct entry **v, *e;
	size_t i, n = 0;

	if ((v = malloc(((size_t)st->n + 1) * sizeof(*v))) == NULL) {
		/* Without memory to sort: in table order. */
		for (i = 0; i < st->nbuckets; i++)
			for (e = st->buckets[i]; e != NULL; e = e->next)
				state_print_one(out, e, now, t);
		return;
	}
	for (i = 0; i < st->nbuckets; i++)
		for (e = st->buckets[i]; e != NULL; e = e->next)
			v[n++] = e;
	qsort(v, n, sizeof(*v), state_cmp);
	for (i = 0; i < n; i++)
		state_print_one(out, v[i], now, t);
	free(v);
}

int
state_count(struct state *st, enum retry_state s)
{
	if (s != RETRY_FAILED_ONCE && s != RETRY_BROKEN)
		return 0;
	return st->count[s];
}

int
state_total(struct state *st)
{
	return st->n;
}

void
state_hold_writer(struct state *st, int hold)
{
	if (st->w == NULL)
		return;
	pthread_mutex_lock(&st->w->mu);
	st->w->hold = hold;
	pthread_cond_signal(&st->w->wake);
	pthread_mutex_unlock(&st->w->mu);
}

void
state_set_queue_limit(struct state *st, size_t bytes)
{
	if (st->w == NULL)
		return;
	pthread_mutex_lock(&st->w->mu);
	st->w->qmax = bytes > 0 ? bytes : STATE_QUEUE_MAX;
	pthread_mutex_unlock(&st->w->mu);
}
