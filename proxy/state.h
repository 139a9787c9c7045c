/*
 * The retry records of the failure table (README.md), kept in memory and
 * persisted in state_dir so that a restart does not forget them, without
 * the event loop ever waiting for the disk: a thread of the store's own
 * writes them (state.c says how).  No logging, no exit: errors and
 * warnings come back as strings for the caller to log.
 *
 * A record is a verdict about TLS, and it is keyed by every fact that
 * produced it (struct state_key): the host name contacted, its address
 * and port, and a fingerprint of the profile (its name, tls mode, verify
 * mode, CA bundle, versions, ciphers) and of the names the certificate
 * had to match.  Leaving any of them out lets a verdict reached under one
 * policy decide for another: a name mismatch for mx.evil.test would defer
 * mail for mx.good.test at the same address, a failure under a strict
 * profile would push a lax one into the clear, one port's broken server
 * would stop the healthy one on another port.
 *
 * Two files hold the records: a snapshot, dir/retry-state, replaced
 * atomically now and then, and a journal of the changes since,
 * dir/retry-state.journal, appended to.  The records are the snapshot
 * with the journal applied to it in order.  Both are text.  The snapshot:
 *
 *	mxtls-retry-state 2
 *	HOST ADDR PORT PROFILE POLICY STATE FIRST_FAILURE BROKEN_UNTIL EVENT
 *	    ERROR
 *
 * one record a line (one line, wrapped here), fields separated by one
 * space.  HOST is "-" for a literal next hop (no name); PROFILE is the
 * profile's name; POLICY the fingerprint (hex); STATE is failed-once or
 * broken; the times are
 * seconds since the epoch (BROKEN_UNTIL 0 when not broken); EVENT is
 * no-starttls, certificate or handshake; ERROR is percent-encoded (space,
 * '%', control bytes and non-ASCII as %XX; the empty string as "-").  Host
 * names and addresses are kept in lower case.
 *
 * The journal, one change a line:
 *
 *	mxtls-retry-journal 1
 *	put HOST ADDR PORT PROFILE POLICY STATE FIRST_FAILURE ... ERROR
 *	del HOST ADDR PORT PROFILE POLICY
 *
 * "put" is followed by a record line of the snapshot and stores it (new or
 * replacing the record of the same key), "del" deletes the record of the
 * key if there is one.  Each line says all there is to say about its
 * record, so applying a journal twice, or over a snapshot that already
 * holds it, changes nothing.
 *
 * A version 1 snapshot (HOST ADDR STATE ... without port and policy,
 * written before the key held them) is read as port 25 with PROFILE "-"
 * and POLICY "*": such a record applies to every policy of its host,
 * address and port until it expires (at most retry_delay + fallback_ttl)
 * or a record of the same host, address and port replaces it, because the
 * policy that produced it is unknown.
 *
 * At most STATE_MAX_RECORDS records: storing one more evicts the record
 * with the oldest first_failure.  A snapshot with more lines than that is
 * treated as corrupt.
 */
#ifndef MXTLS_STATE_H
#define MXTLS_STATE_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "failure.h" /* struct retry_record */

#define STATE_MAX_RECORDS 100000
#define STATE_HOST_MAX 255 /* a DNS name in text form */
#define STATE_ADDR_MAX 63  /* an IPv6 address with a zone index */
#define STATE_FILE "retry-state"
#define STATE_JOURNAL "retry-state.journal"

#define STATE_POLICY_MAX 64 /* a SHA-256 in hex */
#define STATE_POLICY_ANY "*" /* a version 1 record: any policy */

struct state; /* opaque */

/* What a record is about; see above for why each part is there. */
struct state_key {
	const char *host;    /* the name contacted; "" a literal next hop */
	const char *addr;    /* its address, as text */
	int port;
	const char *profile; /* the profile's name, for people to read */
	const char *policy;  /* fingerprint of profile and wanted names */
};

/*
 * Load the records of dir and start the writer.  Missing files are an
 * empty store.  Damaged files are never fatal; *warning then names the
 * file and line ("/var/lib/mxtls/retry-state line 3: bad state"), several
 * problems separated by "; ", otherwise it is "".  A snapshot that cannot
 * be read as a whole is left out (the store starts from the journal
 * alone); a journal line that cannot be read (the last one cut short by a
 * crash, or one damaged in the middle) is skipped and the others count.
 * Damaged files, a journal with lines and a version 1 snapshot are
 * rewritten at once by the writer (compaction).  dir NULL: a store in
 * memory only.  NULL only when out of memory or no thread can be started
 * (*warning says which).
 */
struct state *state_open(const char *dir, char *warning, size_t warnlen);

/*
 * The records of dir, read as state_open() does, in a store that never
 * writes (for `mxtls state` beside a running mxtls, which alone writes).
 */
struct state *state_read(const char *dir, char *warning, size_t warnlen);

/*
 * Wait until the writer has every change made so far on the disk (for
 * tests, and at shutdown: never on the loop).  0, or -1 with err set: the
 * disk copy is behind (the error that keeps it so).
 */
int state_sync(struct state *st, char *err, size_t errlen);

/* Stop the writer after it wrote what is queued, and free the store. */
void state_free(struct state *st);

/*
 * The record for k (a version 1 record of the same host, address and port
 * when there is none for k's policy), or NULL.  Names compare
 * case-insensitively.  The pointer is valid until the next state_put(),
 * state_expire() or state_free().
 */
const struct retry_record *state_get(struct state *st,
    const struct state_key *k);

/*
 * Store (or, for RETRY_NONE, delete) a record; the change is handed to the
 * writer, never written here.  Nothing is handed on when nothing changed
 * (deleting a record that does not exist, storing the same record again).
 * Returns 0, or -1 with err set: an invalid host name, address or record
 * (which the files could not hold) is not stored; otherwise the store is
 * updated anyway, and err says why the disk is behind: a write error of
 * the writer since the last report, or a queue full of changes the writer
 * has not taken yet (a disk that hangs; state.c says what follows).
 */
int state_put(struct state *st, const struct state_key *k,
    const struct retry_record *r, char *err, size_t errlen);

/* Drop expired records (failure_expired); -1 and err as state_put(). */
int state_expire(struct state *st, time_t now, const struct failure_timing *t,
    char *err, size_t errlen);

/*
 * For `mxtls state`: one line per record, sorted by host and address,
 * times in UTC ISO 8601, " expired" at the end of a record that no
 * longer counts at `now`:
 *
 *	mx1.example.com 192.0.2.1 failed-once port=25 profile=mandatory
 *	    policy=3f2a9c1e since=2026-11-23T10:00:00Z
 *	    retry_after=2026-11-23T10:05:00Z event=handshake error="..."
 *	mx2.example.com 192.0.2.2 broken port=587 profile=opportunistic
 *	    policy=77b01d2c since=2026-11-23T10:00:00Z
 *	    until=2026-11-23T11:05:00Z event=certificate error="..."
 *
 * (each on one line; policy= the first 8 hex digits of the fingerprint,
 * "*" for a version 1 record).  A literal next hop's host prints as "-"; the error
 * is quoted with \" \\ and \xNN escapes.
 */
void state_print(struct state *st, FILE *out, time_t now,
    const struct failure_timing *t);

/* Records in state s (0 for RETRY_NONE); state_total(): all of them. */
int state_count(struct state *st, enum retry_state s);
int state_total(struct state *st);

/*
 * For tests: a writer on hold takes nothing from its queue until released
 * (a disk that hangs), and the queue's limit in bytes (0: the default).
 */
void state_hold_writer(struct state *st, int hold);
void state_set_queue_limit(struct state *st, size_t bytes);

#endif
