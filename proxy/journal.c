/*
 * The journal (see journal.h for the file and its promises).
 *
 * Threads.  The loop thread owns everything until the writer thread
 * starts, at the end of journal_open().  From then on the loop only
 * touches the queue, the sequence numbers and the error text, all under
 * j->mu; the writer thread alone touches the file, its size and the
 * index.  The index maps each key to the place of its record in force,
 * so that the thread knows how many bytes still count (for compaction)
 * and where to copy them from.  Errors reach the loop through an
 * ev_async (the thread never logs: the log is not thread-safe).
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "journal.h"

#define JOURNAL_MAGIC "mxtls-journal 1 "
#define JOURNAL_NAME_MAX 32
/* "P " KEY " " LEN " " HASH LF */
#define JOURNAL_HEAD_MAX (2 + JOURNAL_KEY_MAX + 1 + 7 + 1 + 16 + 1)

/* ------------------------------------------------------------------ */
/* Pure parts                                                          */
/* ------------------------------------------------------------------ */

static uint64_t
journal_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n-- > 0)
		h = (h ^ *s++) * 1099511628211ULL;
	return h;
}

#define JOURNAL_FNV_INIT 14695981039346656037ULL

static int
journal_key_ok(const char *key, size_t n)
{
	size_t i;

	if (n == 0 || n > JOURNAL_KEY_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (key[i] <= ' ' || key[i] > '~')
			return 0;
	return 1;
}

static int
journal_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= JOURNAL_NAME_MAX && journal_key_ok(name, n);
}

size_t
journal_header_len(const char *buf, size_t len, const char *name)
{
	size_t m = strlen(JOURNAL_MAGIC), n = strlen(name);

	if (len < m + n + 1 || memcmp(buf, JOURNAL_MAGIC, m) != 0 ||
	    memcmp(buf + m, name, n) != 0 || buf[m + n] != '\n')
		return 0;
	return m + n + 1;
}

size_t
journal_format(char op, const char *key, const void *value, size_t len,
    char *dst, size_t dstlen)
{
	size_t klen = strlen(key), head;
	uint64_t h;
	int n;

	if ((op != 'P' && op != 'D') || (op == 'D' && len != 0) ||
	    !journal_key_ok(key, klen) || len > JOURNAL_VALUE_MAX)
		return 0;
	n = snprintf(dst, dstlen, "%c %s %zu", op, key, len);
	if (n < 0 || (size_t)n + 18 + len + 1 > dstlen)
		return 0;
	h = journal_fnv(journal_fnv(JOURNAL_FNV_INIT, dst, (size_t)n), value,
	    len);
	head = (size_t)n;
	head += (size_t)snprintf(dst + head, dstlen - head, " %016llx\n",
	    (unsigned long long)h);
	if (len > 0)
		memcpy(dst + head, value, len);
	dst[head + len] = '\n';
	return head + len + 1;
}

static int
journal_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
journal_scan(const char *buf, size_t len, size_t off, struct journal_rec *r,
    const char **why)
{
	const char *p = buf + off, *nl, *sp;
	size_t rem = len - off, i, head, vlen = 0;
	uint64_t want = 0, h;
	int d;

	if (off >= len)
		return 0;
	if ((nl = memchr(p, '\n', rem < JOURNAL_HEAD_MAX ? rem :
	    JOURNAL_HEAD_MAX)) == NULL) {
		*why = rem < JOURNAL_HEAD_MAX ? "record cut short" :
		    "record header too long";
		return -1;
	}
	head = (size_t)(nl - p) + 1;
	/* "P KEY LEN HASH": the op, then fields split at single spaces. */
	if (head < 2 + 1 + 2 + 17 || (p[0] != 'P' && p[0] != 'D') ||
	    p[1] != ' ') {
		*why = "not a record header";
		return -1;
	}
	r->op = p[0];
	r->key = p + 2;
	if ((sp = memchr(r->key, ' ', (size_t)(nl - r->key))) == NULL) {
		*why = "not a record header";
		return -1;
	}
	r->keylen = (size_t)(sp - r->key);
	if (!journal_key_ok(r->key, r->keylen)) {
		*why = "invalid key";
		return -1;
	}
	for (i = 1; sp + i < nl && sp[i] != ' '; i++) {
		if (sp[i] < '0' || sp[i] > '9' || (i == 2 && sp[1] == '0') ||
		    i > 7) {
			*why = "invalid length";
			return -1;
		}
		vlen = vlen * 10 + (size_t)(sp[i] - '0');
	}
	if (i == 1 || vlen > JOURNAL_VALUE_MAX || (r->op == 'D' && vlen)) {
		*why = "invalid length";
		return -1;
	}
	sp += i;
	if (nl - sp != 17 || sp[0] != ' ') {
		*why = "invalid checksum field";
		return -1;
	}
	for (i = 1; i < 17; i++) {
		if ((d = journal_hexval(sp[i])) < 0) {
			*why = "invalid checksum field";
			return -1;
		}
		want = want << 4 | (uint64_t)d;
	}
	if (rem - head < vlen + 1) {
		*why = "record cut short";
		return -1;
	}
	if (p[head + vlen] != '\n') {
		*why = "no line end after the value";
		return -1;
	}
	h = journal_fnv(journal_fnv(JOURNAL_FNV_INIT, p, (size_t)(sp - p)),
	    p + head, vlen);
	if (h != want) {
		*why = "checksum mismatch";
		return -1;
	}
	r->value = p + head;
	r->len = vlen;
	r->end = off + head + vlen + 1;
	return 1;
}

/* ------------------------------------------------------------------ */
/* The index: key -> its record in force                               */
/* ------------------------------------------------------------------ */

struct jent {
	struct jent *next;
	uint64_t off;	/* where its record starts */
	size_t size;	/* the record's bytes, header to final LF */
	size_t keylen;
	char key[];
};

struct jindex {
	struct jent **b;
	size_t nb, n;
	uint64_t live; /* bytes of the records in force */
};

static struct jent **
jindex_slot(struct jindex *x, const char *key, size_t keylen)
{
	struct jent **pp;

	pp = &x->b[journal_fnv(JOURNAL_FNV_INIT, key, keylen) & (x->nb - 1)];
	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->keylen == keylen &&
		    memcmp((*pp)->key, key, keylen) == 0)
			break;
	return pp;
}

static int
jindex_grow(struct jindex *x)
{
	struct jent **nb, *e, *next;
	size_t n = x->nb ? x->nb * 2 : 64, i, k;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return -1;
	for (i = 0; i < x->nb; i++)
		for (e = x->b[i]; e != NULL; e = next) {
			next = e->next;
			k = journal_fnv(JOURNAL_FNV_INIT, e->key, e->keylen) &
			    (n - 1);
			e->next = nb[k];
			nb[k] = e;
		}
	free(x->b);
	x->b = nb;
	x->nb = n;
	return 0;
}

/* KEY's record in force is now at off: -1 when out of memory. */
static int
jindex_set(struct jindex *x, const char *key, size_t keylen, uint64_t off,
    size_t size)
{
	struct jent **pp, *e;

	if (x->n >= x->nb && jindex_grow(x) < 0 && x->nb == 0)
		return -1;
	pp = jindex_slot(x, key, keylen);
	if ((e = *pp) == NULL) {
		if ((e = malloc(sizeof(*e) + keylen)) == NULL)
			return -1;
		e->next = NULL;
		e->keylen = keylen;
		memcpy(e->key, key, keylen);
		*pp = e;
		x->n++;
	} else
		x->live -= e->size;
	e->off = off;
	e->size = size;
	x->live += size;
	return 0;
}

static void
jindex_del(struct jindex *x, const char *key, size_t keylen)
{
	struct jent **pp, *e;

	if (x->nb == 0 || (e = *(pp = jindex_slot(x, key, keylen))) == NULL)
		return;
	*pp = e->next;
	x->live -= e->size;
	x->n--;
	free(e);
}

static struct jent *
jindex_get(struct jindex *x, const char *key, size_t keylen)
{
	return x->nb == 0 ? NULL : *jindex_slot(x, key, keylen);
}

static void
jindex_free(struct jindex *x)
{
	struct jent *e, *next;
	size_t i;

	for (i = 0; i < x->nb; i++)
		for (e = x->b[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(x->b);
	memset(x, 0, sizeof(*x));
}

/* ------------------------------------------------------------------ */
/* The journal                                                         */
/* ------------------------------------------------------------------ */

/* A queued record, formatted as the file will have it. */
struct jop {
	struct jop *next;
	size_t cost;	 /* against queue_max */
	size_t keylen;	 /* the key is at rec + 2 */
	size_t size;
	char rec[];
};

struct journal {
	char *path, *tmp, *dir;
	char name[JOURNAL_NAME_MAX + 1];
	char header[sizeof(JOURNAL_MAGIC) + JOURNAL_NAME_MAX + 1];
	size_t hlen;
	int fd, lockfd;
	/* The writer thread's, once it runs. */
	uint64_t size;
	struct jindex idx;
	char *buf;
	size_t bufcap;
	int must_compact;
	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t wake, done;
	struct jop *first, *last;
	size_t queued, queue_max;
	uint64_t seq_queued, seq_done;
	int closing;
	char error[512];
	int nerrors;
	/* The loop's. */
	pthread_t thread;
	int started;
	struct ev_loop *loop;
	ev_async async;
	journal_error_cb *error_cb;
	void *arg;
};

/* The thread's errors, for the loop. */
static void
journal_fail(struct journal *j, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&j->mu);
	if (j->nerrors++ == 0) {
		va_start(ap, fmt);
		vsnprintf(j->error, sizeof(j->error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&j->mu);
	ev_async_send(j->loop, &j->async);
}

static void
journal_report(struct journal *j)
{
	char msg[sizeof(j->error) + 48];
	int n;

	pthread_mutex_lock(&j->mu);
	n = j->nerrors;
	if (n > 1)
		snprintf(msg, sizeof(msg), "%s (and %d more errors)", j->error,
		    n - 1);
	else
		snprintf(msg, sizeof(msg), "%s", j->error);
	j->nerrors = 0;
	j->error[0] = '\0';
	pthread_mutex_unlock(&j->mu);
	if (n > 0 && j->error_cb != NULL)
		j->error_cb(j->arg, msg);
}

static void
journal_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	journal_report(w->data);
}

static int
journal_pwrite_all(int fd, const char *p, size_t n, uint64_t off)
{
	ssize_t w;

	while (n > 0) {
		if ((w = pwrite(fd, p, n, (off_t)off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int
journal_pread_all(int fd, char *p, size_t n, uint64_t off)
{
	ssize_t r;

	while (n > 0) {
		if ((r = pread(fd, p, n, (off_t)off)) <= 0) {
			if (r == -1 && errno == EINTR)
				continue;
			if (r == 0)
				errno = EIO; /* the file shrank under us */
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int
journal_sync_dir(const struct journal *j)
{
	int fd, r;

	if ((fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

static int
journal_cmp_off(const void *a, const void *b)
{
	const struct jent *x = *(const struct jent *const *)a;
	const struct jent *y = *(const struct jent *const *)b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * Write the records in force to PATH.tmp, sync, rename over PATH, sync
 * the directory; then append to the new file.  -1 with err: the old file
 * is still the journal.
 */
static int
journal_compact(struct journal *j, char *err, size_t errlen)
{
	struct jent **v = NULL, *e;
	uint64_t pos;
	size_t i, k = 0;
	int fd;

	if (j->idx.n > 0 && (v = malloc(j->idx.n * sizeof(*v))) == NULL) {
		snprintf(err, errlen, "%s: compaction: out of memory",
		    j->path);
		return -1;
	}
	for (i = 0; i < j->idx.nb; i++)
		for (e = j->idx.b[i]; e != NULL; e = e->next)
			v[k++] = e;
	if (k > 0)
		qsort(v, k, sizeof(*v), journal_cmp_off);
	unlink(j->tmp);
	fd = open(j->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1 || journal_pwrite_all(fd, j->header, j->hlen, 0) < 0)
		goto fail;
	pos = j->hlen;
	for (i = 0; i < k; i++) {
		if (v[i]->size > j->bufcap) {
			char *nb = realloc(j->buf, v[i]->size);

			if (nb == NULL)
				goto fail;
			j->buf = nb;
			j->bufcap = v[i]->size;
		}
		if (journal_pread_all(j->fd, j->buf, v[i]->size,
		    v[i]->off) < 0 ||
		    journal_pwrite_all(fd, j->buf, v[i]->size, pos) < 0)
			goto fail;
		pos += v[i]->size;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (rename(j->tmp, j->path) == -1)
		goto fail;
	/* The rename must reach the disk too, or a crash may undo it. */
	journal_sync_dir(j);
	close(j->fd);
	j->fd = fd;
	j->size = pos;
	for (pos = j->hlen, i = 0; i < k; i++) {
		v[i]->off = pos;
		pos += v[i]->size;
	}
	j->must_compact = 0;
	free(v);
	return 0;
fail:
	snprintf(err, errlen, "%s: compaction: %s", j->tmp, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(j->tmp);
	free(v);
	return -1;
}

static int
journal_compact_due(const struct journal *j)
{
	uint64_t used = j->hlen + j->idx.live;

	return j->must_compact ||
	    (j->size - used >= JOURNAL_COMPACT_MIN && j->size > 2 * used);
}

/* Append one record; the index follows.  -1 when it failed (reported). */
static int
journal_append(struct journal *j, const struct jop *op)
{
	const char *key = op->rec + 2;

	/* A delete of a key without a record changes nothing. */
	if (op->rec[0] == 'D' && jindex_get(&j->idx, key, op->keylen) == NULL)
		return 1;
	if (journal_pwrite_all(j->fd, op->rec, op->size, j->size) < 0) {
		journal_fail(j, "%s: write: %s", j->path, strerror(errno));
		/* Cut what part of it was written, or later ones are lost. */
		if (ftruncate(j->fd, (off_t)j->size) == -1)
			j->must_compact = 1;
		return -1;
	}
	if (op->rec[0] == 'D')
		jindex_del(&j->idx, key, op->keylen);
	else if (jindex_set(&j->idx, key, op->keylen, j->size, op->size) < 0) {
		/*
		 * Written but not indexed: the next compaction drops the key,
		 * rather than bring back its older record.
		 */
		jindex_del(&j->idx, key, op->keylen);
		journal_fail(j, "%s: out of memory: the record of %.*s is "
		    "lost at the next compaction", j->path, (int)op->keylen,
		    key);
	}
	j->size += op->size;
	return 0;
}

static void *
journal_main(void *arg)
{
	struct journal *j = arg;
	struct jop *batch, *op;
	char err[512];
	uint64_t seq;
	size_t cost;
	int wrote;

	pthread_mutex_lock(&j->mu);
	for (;;) {
		while (j->first == NULL && !j->closing)
			pthread_cond_wait(&j->wake, &j->mu);
		if (j->first == NULL)
			break; /* closing, and everything written */
		batch = j->first;
		j->first = j->last = NULL;
		seq = j->seq_queued;
		pthread_mutex_unlock(&j->mu);

		cost = 0;
		wrote = 0;
		while ((op = batch) != NULL) {
			batch = op->next;
			cost += op->cost;
			if (journal_append(j, op) == 0)
				wrote = 1;
			free(op);
		}
		/* One sync for the whole batch: a burst costs one. */
		if (wrote && fdatasync(j->fd) == -1) {
			journal_fail(j, "%s: fdatasync: %s", j->path,
			    strerror(errno));
			/* What the kernel failed to write: write it anew. */
			j->must_compact = 1;
		}
		if (journal_compact_due(j) &&
		    journal_compact(j, err, sizeof(err)) < 0)
			journal_fail(j, "%s", err);

		pthread_mutex_lock(&j->mu);
		j->queued -= cost;
		j->seq_done = seq;
		pthread_cond_broadcast(&j->done);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

static int
journal_enqueue(struct journal *j, char op, const char *key,
    const void *value, size_t len, char *err, size_t errlen)
{
	size_t klen = strlen(key), cap;
	struct jop *o;

	if (!journal_key_ok(key, klen)) {
		snprintf(err, errlen, "%s: invalid key", j->path);
		return -1;
	}
	if (len > JOURNAL_VALUE_MAX) {
		snprintf(err, errlen, "%s: a value of %zu bytes (max %d)",
		    j->path, len, JOURNAL_VALUE_MAX);
		return -1;
	}
	cap = JOURNAL_HEAD_MAX + len + 1;
	pthread_mutex_lock(&j->mu);
	/* One record always fits in an empty queue. */
	if (j->queued > 0 && j->queued + sizeof(*o) + cap > j->queue_max) {
		snprintf(err, errlen, "%s: %zu bytes still wait for the disk "
		    "(queue full)", j->path, j->queued);
		pthread_mutex_unlock(&j->mu);
		return -1;
	}
	pthread_mutex_unlock(&j->mu);
	if ((o = malloc(sizeof(*o) + cap)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", j->path);
		return -1;
	}
	o->next = NULL;
	o->keylen = klen;
	o->size = journal_format(op, key, value, len, o->rec, cap);
	o->cost = sizeof(*o) + cap;
	pthread_mutex_lock(&j->mu);
	if (j->last != NULL)
		j->last->next = o;
	else
		j->first = o;
	j->last = o;
	j->queued += o->cost;
	j->seq_queued++;
	pthread_cond_signal(&j->wake);
	pthread_mutex_unlock(&j->mu);
	return 0;
}

int
journal_put(struct journal *j, const char *key, const void *value,
    size_t len, char *err, size_t errlen)
{
	return journal_enqueue(j, 'P', key, value, len, err, errlen);
}

int
journal_del(struct journal *j, const char *key, char *err, size_t errlen)
{
	return journal_enqueue(j, 'D', key, "", 0, err, errlen);
}

void
journal_flush(struct journal *j)
{
	uint64_t want;

	pthread_mutex_lock(&j->mu);
	want = j->seq_queued;
	while (j->seq_done < want)
		pthread_cond_wait(&j->done, &j->mu);
	pthread_mutex_unlock(&j->mu);
}

static void
journal_free(struct journal *j)
{
	struct jop *op;

	while ((op = j->first) != NULL) {
		j->first = op->next;
		free(op);
	}
	jindex_free(&j->idx);
	if (j->fd != -1)
		close(j->fd);
	if (j->lockfd != -1)
		close(j->lockfd); /* and with it the lock */
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->wake);
	pthread_cond_destroy(&j->done);
	free(j->buf);
	free(j->path);
	free(j->tmp);
	free(j->dir);
	free(j);
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	if (j->started) {
		pthread_mutex_lock(&j->mu);
		j->closing = 1;
		pthread_cond_signal(&j->wake);
		pthread_mutex_unlock(&j->mu);
		pthread_join(j->thread, NULL);
		ev_ref(j->loop);
		ev_async_stop(j->loop, &j->async);
		journal_report(j);
	}
	journal_free(j);
}

/* Map the file read-only: *map NULL when it is empty.  -1 with errno. */
static int
journal_map(int fd, const char **map, size_t *len)
{
	struct stat st;
	void *m;

	*map = NULL;
	*len = 0;
	if (fstat(fd, &st) == -1)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	if (st.st_size == 0)
		return 0;
	if ((m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd,
	    0)) == MAP_FAILED)
		return -1;
	*map = m;
	*len = (size_t)st.st_size;
	return 0;
}

/*
 * Read the file: the index of the records in force, the load callback
 * for each, what is torn.  Returns the offset where the intact records
 * end (0 for an empty file, or one that is not a journal of ours), or -1
 * when out of memory.
 */
static long long
journal_load(struct journal *j, const char *map, size_t len,
    journal_load_cb *load, void *arg, struct journal_loaded *info)
{
	char key[JOURNAL_KEY_MAX + 1], *val;
	struct journal_rec r;
	const char *why = "";
	size_t off, end;
	struct jent *e;
	int rc;

	if (len == 0)
		return 0;
	if (journal_header_len(map, len, j->name) == 0) {
		info->torn = len;
		info->why = "not a journal of these records";
		return 0;
	}
	off = j->hlen;
	while ((rc = journal_scan(map, len, off, &r, &why)) == 1) {
		if (r.op == 'D')
			jindex_del(&j->idx, r.key, r.keylen);
		else if (jindex_set(&j->idx, r.key, r.keylen, off,
		    r.end - off) < 0)
			return -1;
		off = r.end;
	}
	end = off;
	if (rc < 0) {
		info->torn = len - end;
		info->why = why;
	}
	/* The records in force, in file order. */
	for (off = j->hlen; off < end; off = r.end) {
		journal_scan(map, len, off, &r, &why);
		if (r.op != 'P' || (e = jindex_get(&j->idx, r.key,
		    r.keylen)) == NULL || e->off != off)
			continue;
		memcpy(key, r.key, r.keylen);
		key[r.keylen] = '\0';
		if ((val = malloc(r.len + 1)) == NULL)
			return -1;
		memcpy(val, r.value, r.len);
		val[r.len] = '\0';
		if (load(arg, key, val, r.len) < 0)
			jindex_del(&j->idx, r.key, r.keylen);
		else
			info->records++;
		free(val);
	}
	return (long long)end;
}

/* PATH.lock, held while j is open: one writer per journal. */
static int
journal_lock(struct journal *j, char *err, size_t errlen)
{
	char lock[4096];

	snprintf(lock, sizeof(lock), "%s.lock", j->path);
	if ((j->lockfd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) == -1) {
		snprintf(err, errlen, "%s: %s", lock, strerror(errno));
		return -1;
	}
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, errlen, "%s: %s", lock, errno == EWOULDBLOCK ?
		    "the journal is open in another process" :
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* The writer thread, with every signal blocked: they are the loop's. */
static int
journal_start(struct journal *j, char *err, size_t errlen)
{
	sigset_t all, old;
	int e;

	/* Before the thread: its first error may come at once. */
	ev_async_init(&j->async, journal_async_cb);
	j->async.data = j;
	ev_async_start(j->loop, &j->async);
	ev_unref(j->loop); /* it alone must not keep the loop running */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&j->thread, NULL, journal_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		ev_ref(j->loop);
		ev_async_stop(j->loop, &j->async);
		snprintf(err, errlen, "%s: writer thread: %s", j->path,
		    strerror(e));
		return -1;
	}
	j->started = 1;
	return 0;
}

struct journal *
journal_open(struct ev_loop *loop, const char *path, const char *name,
    size_t queue_max, journal_load_cb *load, journal_error_cb *error,
    void *arg, struct journal_loaded *info, char *err, size_t errlen)
{
	struct journal *j;
	const char *map = NULL;
	size_t len = 0;
	long long end;
	char *slash;

	memset(info, 0, sizeof(*info));
	info->why = "";
	if (!journal_name_ok(name)) {
		snprintf(err, errlen, "%s: invalid journal name", path);
		return NULL;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	j->fd = j->lockfd = -1;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->wake, NULL);
	pthread_cond_init(&j->done, NULL);
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->hlen = (size_t)snprintf(j->header, sizeof(j->header), "%s%s\n",
	    JOURNAL_MAGIC, name);
	j->loop = loop;
	j->queue_max = queue_max;
	j->error_cb = error;
	j->arg = arg;
	if ((j->path = strdup(path)) == NULL ||
	    asprintf(&j->tmp, "%s.tmp", path) == -1 ||
	    (j->dir = strdup(path)) == NULL) {
		j->tmp = NULL;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* The directory, to sync a rename ("/" stays "/"). */
	if ((slash = strrchr(j->dir, '/')) == NULL)
		snprintf(j->dir, strlen(j->dir) + 1, ".");
	else
		slash[slash == j->dir] = '\0';
	if (journal_lock(j, err, errlen) < 0)
		goto fail;
	/* A compaction that never completed. */
	unlink(j->tmp);
	if ((j->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) == -1 || journal_map(j->fd, &map, &len) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	end = journal_load(j, map, len, load, arg, info);
	if (map != NULL)
		munmap((void *)map, len);
	if (end < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	j->size = (uint64_t)end;
	/* Anything that no longer counts goes now: a torn end above all. */
	if ((end == 0 || info->torn > 0 ||
	    (uint64_t)end != j->hlen + j->idx.live) &&
	    journal_compact(j, err, errlen) < 0)
		goto fail;
	if (journal_start(j, err, errlen) < 0)
		goto fail;
	return j;
fail:
	journal_free(j);
	return NULL;
}

int
journal_get(const char *path, const char *name, const char *key,
    char **value, size_t *len, char *err, size_t errlen)
{
	const char *map, *why;
	struct journal_rec r, last;
	size_t mlen, off, klen = strlen(key);
	int fd, rc, found = 0;

	*value = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (journal_map(fd, &map, &mlen) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (mlen == 0)
		return 0;
	if ((off = journal_header_len(map, mlen, name)) == 0) {
		snprintf(err, errlen, "%s: not a journal of %s", path, name);
		munmap((void *)map, mlen);
		return -1;
	}
	/* A torn end is where the records end, as journal_open() has it. */
	while ((rc = journal_scan(map, mlen, off, &r, &why)) == 1) {
		if (r.keylen == klen && memcmp(r.key, key, klen) == 0) {
			last = r;
			found = r.op == 'P';
		}
		off = r.end;
	}
	if (found && (*value = malloc(last.len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		found = -1;
	} else if (found) {
		memcpy(*value, last.value, last.len);
		(*value)[last.len] = '\0';
		*len = last.len;
	}
	munmap((void *)map, mlen);
	return found;
}

int
journal_read(const char *path, const char *name, journal_load_cb *load,
    void *arg, struct journal_loaded *info, char *err, size_t errlen)
{
	struct journal *j;
	const char *map = NULL;
	size_t len = 0;
	long long end;
	int fd;

	memset(info, 0, sizeof(*info));
	info->why = "";
	if (!journal_name_ok(name)) {
		snprintf(err, errlen, "%s: invalid journal name", path);
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (journal_map(fd, &map, &len) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	/* The loader of journal_open(), without the file, lock or thread. */
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		if (map != NULL)
			munmap((void *)map, len);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	j->fd = j->lockfd = -1;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->wake, NULL);
	pthread_cond_init(&j->done, NULL);
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->hlen = (size_t)snprintf(j->header, sizeof(j->header), "%s%s\n",
	    JOURNAL_MAGIC, name);
	end = journal_load(j, map, len, load, arg, info);
	if (map != NULL)
		munmap((void *)map, len);
	journal_free(j);
	if (end < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	return 0;
}
