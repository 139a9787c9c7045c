/*
 * An append-only journal of keyed records, written by a thread of its own.
 *
 * Why.  State that changes while mail flows (the MTA-STS policy cache)
 * must survive a crash, yet writing it must never stall the event loop:
 * an fsync takes from microseconds to seconds, and rewriting a whole file
 * per change costs as much as the file.  Here a change is one record
 * appended to one file.  The loop only copies the record into a bounded
 * queue; a writer thread appends what is queued and makes each batch
 * durable with one fdatasync(), so a burst of changes costs one sync.
 *
 * The file, text so that a person can read it:
 *
 *	mxtls-journal 1 NAME		NAME: whose records these are
 *	P KEY LEN HASH			a put: KEY's value is the LEN bytes
 *	VALUE LF			that follow, then a LF
 *	D KEY 0 HASH			a delete: KEY has no value any more
 *	LF
 *
 * KEY: 1 to JOURNAL_KEY_MAX bytes of printable ASCII, no space; LEN in
 * decimal (at most JOURNAL_VALUE_MAX); HASH: 16 lower-case hex digits,
 * FNV-1a 64 over "P KEY LEN" and the value.  The last record of a key
 * decides.
 *
 * Crash safety.  Records are only appended, and each batch is synced
 * before the next is written, so a crash can damage only the last batch:
 * records cut short, or zeros or stale bytes where they were to be.
 * Reading stops at the first record that is not whole and intact;
 * everything before it counts, the rest is ignored, and journal_open()
 * cuts it off (saying how many bytes that was).
 *
 * Compaction.  When the file has grown to twice the size of the records
 * that count, and by JOURNAL_COMPACT_MIN at least, the writer thread
 * copies those records to PATH.tmp, syncs it, renames it over PATH and
 * syncs the directory: a crash in between leaves one whole file or the
 * other.  So the file stays below twice what counts (plus the minimum).
 * journal_open() compacts at once when the file holds anything that no
 * longer counts, a torn end included.
 *
 * One process at a time: journal_open() takes an exclusive flock() on
 * PATH.lock and fails when another holder has it.
 */
#ifndef MXTLS_JOURNAL_H
#define MXTLS_JOURNAL_H

#include <stddef.h>

#define JOURNAL_KEY_MAX 255
#define JOURNAL_VALUE_MAX (1024 * 1024)
#define JOURNAL_COMPACT_MIN (64 * 1024)

struct ev_loop;
struct journal;

/*
 * journal_open() calls it for every key's record in force, in file order
 * (key NUL-terminated; value len bytes, also NUL-terminated).  0 keeps
 * the record; -1 forgets it (it is not written again).
 */
typedef int journal_load_cb(void *arg, const char *key, const char *value,
    size_t len);

/*
 * A write, sync or compaction of the writer thread failed: called on the
 * loop, with what failed and where ("PATH: fdatasync: ...").  The records
 * that could not be written are lost from disk, not from the caller's
 * memory.
 */
typedef void journal_error_cb(void *arg, const char *error);

/* What journal_open() found. */
struct journal_loaded {
	size_t records;	   /* handed to the load callback */
	size_t torn;	   /* bytes ignored after the last intact record */
	const char *why;   /* why they were ignored ("" when torn is 0) */
};

/*
 * Open (or create, 0600) the journal PATH of records NAME (one word),
 * load it, compact it when it holds anything that no longer counts, and
 * start its writer thread.  queue_max: bytes that may wait for the disk.
 * error may be NULL.  NULL with err (what, and where) on failure.
 */
struct journal *journal_open(struct ev_loop *loop, const char *path,
    const char *name, size_t queue_max, journal_load_cb *load,
    journal_error_cb *error, void *arg, struct journal_loaded *info,
    char *err, size_t errlen);

/*
 * Queue a put of key (see KEY above) with value (at most
 * JOURNAL_VALUE_MAX bytes), or a delete of key.  Never waits for the
 * disk.  0, or -1 with err: an invalid key or value, the queue full
 * (the disk is behind by queue_max bytes), out of memory.
 */
int journal_put(struct journal *j, const char *key, const void *value,
    size_t len, char *err, size_t errlen);
int journal_del(struct journal *j, const char *key, char *err,
    size_t errlen);

/* Wait until everything queued so far is written and synced. */
void journal_flush(struct journal *j);

/*
 * Write what is queued, stop the thread, free j.  An error of those last
 * writes is reported before it returns.  NULL is fine.
 */
void journal_close(struct journal *j);

/*
 * Read the value of key as the journal at PATH has it now, without
 * opening it for writing (another process may hold it).  1 and *value
 * (malloc'd, NUL-terminated, *len bytes); 0 when key has no value; -1
 * with err.
 */
int journal_get(const char *path, const char *name, const char *key,
    char **value, size_t *len, char *err, size_t errlen);

/*
 * Call load for every record in force in the journal at PATH, as
 * journal_open() would, without opening it for writing (the running
 * mxtls may hold it): what another process (a report) reads.  A torn
 * end is ignored and said in *info.  0 (also when there is no file),
 * or -1 with err.
 */
int journal_read(const char *path, const char *name, journal_load_cb *load,
    void *arg, struct journal_loaded *info, char *err, size_t errlen);

/* ---------------------------------------------------------------------
 * The pure parts, for the unit tests and the fuzzer.
 */

/* The length of the header line of a NAME journal at buf, or 0. */
size_t journal_header_len(const char *buf, size_t len, const char *name);

struct journal_rec {
	char op;	   /* 'P' or 'D' */
	const char *key;   /* keylen bytes in buf, not NUL-terminated */
	size_t keylen;
	const char *value; /* len bytes in buf */
	size_t len;
	size_t end;	   /* the offset of the record after it */
};

/*
 * The record at buf + off (buf holds len bytes): 1 and *r; 0 when off is
 * the end of buf; -1 when the record is cut short or damaged, *why says
 * how.
 */
int journal_scan(const char *buf, size_t len, size_t off,
    struct journal_rec *r, const char **why);

/*
 * The record of a put (op 'P') or delete ('D', len 0) as the file has it,
 * into dst: its length, or 0 when it does not fit in dstlen or key or len
 * is invalid.
 */
size_t journal_format(char op, const char *key, const void *value,
    size_t len, char *dst, size_t dstlen);

#endif
