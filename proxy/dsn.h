/*
 * Delivery status notifications (RFC 3461, RFC 3464) for the one case in
 * which mxtls owes one: it advertised DSN to the MTA, a recipient asked
 * for NOTIFY=SUCCESS, and the recipient's server does not offer DSN.  The
 * promise then ends at mxtls, which must say so with a "relayed" notice
 * (RFC 3461 section 5.2.2).  When the server offers DSN the parameters
 * go on to it and it keeps the promise.
 *
 * Parsing the parameters, keeping the header section of the message as
 * it streams past (mxtls keeps no copy of the body) and building the
 * report are pure; dsn_txn_relayed hands the report to the submission
 * queue (dsnq.c), which delivers it to the MTA's own SMTP listener
 * ([proxy] dsn_submit) with a null reverse-path.
 */
#ifndef MXTLS_DSN_H
#define MXTLS_DSN_H

#include <stddef.h>
#include <time.h>

#include "config.h"

#define DSN_ENVID_MAX 100   /* RFC 3461 section 4.4, encoded */
#define DSN_ORCPT_MAX 500   /* RFC 3461 section 4.2, the whole parameter */
#define DSN_HEADERS_MAX 65536 /* header section kept for the report */

#define DSN_NOTIFY_NEVER 0x1
#define DSN_NOTIFY_SUCCESS 0x2
#define DSN_NOTIFY_FAILURE 0x4
#define DSN_NOTIFY_DELAY 0x8

enum dsn_ret { DSN_RET_NONE, DSN_RET_FULL, DSN_RET_HDRS };

/*
 * xtext (RFC 3461 section 4): "+HH" stands for one byte, every other
 * byte must be a visible ASCII character.  Decodes in[0..len) into out
 * (NUL-terminated).  0, or -1 when malformed or it does not fit.
 */
int dsn_xtext_decode(const char *in, size_t len, char *out, size_t outlen);

/* The DSN parameters of MAIL. */
struct dsn_mail {
	enum dsn_ret ret;
	/* ENVID decoded; "" when absent.  Printable ASCII only. */
	char envid[DSN_ENVID_MAX + 1];
};

/*
 * RET and ENVID among the MAIL parameters (space-separated, others are
 * skipped).  NULL, or the reply refusing the command (501).
 */
const char *dsn_parse_mail(const char *params, struct dsn_mail *m);

/* The DSN parameters of one RCPT. */
struct dsn_rcpt_params {
	unsigned notify; /* DSN_NOTIFY_*; 0: not given */
	/*
	 * ORCPT as "addr-type;address", the address decoded when that gives
	 * printable ASCII, else left in its xtext form (a UTF-8 address);
	 * "" when absent.
	 */
	char orcpt[DSN_ORCPT_MAX + 1];
};

/*
 * NOTIFY and ORCPT among the RCPT parameters params[0..len).  NULL, or
 * the reply refusing the command (501).
 */
const char *dsn_parse_rcpt(const char *params, size_t len,
    struct dsn_rcpt_params *r);

/*
 * The header section of a message as it streams past in SMTP form
 * (dot-stuffed, CRLF): kept up to the first empty line, un-stuffed,
 * every line ending in CRLF (a bare LF ends a line, a bare CR becomes a
 * space), at most DSN_HEADERS_MAX bytes of whole lines.
 */
struct dsn_headers {
	char *buf;
	size_t len, cap;
	size_t line;	/* where the line being read starts in buf */
	int started;	/* a byte of that line was read (a stuffed dot too) */
	int cr;		/* the last byte was a CR */
	int done;	/* the section ended, or no more is kept */
	int truncated;	/* lines were left out (size, memory) */
	int eightbit;	/* a byte >= 0x80 was kept */
};

void dsn_headers_feed(struct dsn_headers *h, const char *p, size_t n);
void dsn_headers_free(struct dsn_headers *h);

struct dsn_recipient {
	char *addr;  /* the RCPT address (Final-Recipient) */
	char *orcpt; /* dsn_rcpt_params.orcpt, or NULL */
};

/* Everything a "relayed" report says. */
struct dsn_report {
	const char *reporting_mta; /* our host name */
	const char *sender;	   /* the reverse-path: the report goes there */
	const struct dsn_mail *mail;
	time_t arrival;		   /* when MAIL arrived */
	time_t now;
	const char *remote_mta;	   /* the server's name, or "[address]" */
	const char *reply;	   /* its reply to the final dot, one line */
	const struct dsn_recipient *rcpt;
	int nrcpt;
	const struct dsn_headers *headers;
	const char *token; /* unique: the Message-ID's left part */
};

/*
 * The report as an RFC 5322 message (multipart/report, CRLF lines, not
 * dot-stuffed), malloc'd, its length in *len; *utf8 set when an address
 * is not ASCII (RFC 6533 types; it must be submitted with SMTPUTF8).
 * NULL when out of memory.
 */
char *dsn_build(const struct dsn_report *r, size_t *len, int *utf8);

/*
 * msg as the DATA of an SMTP transaction: dot-stuffed and followed by
 * ".\r\n".  malloc'd; NULL when out of memory.
 */
char *dsn_smtp_data(const char *msg, size_t len, size_t *outlen);

/* RFC 5322 date-time in UTC, e.g. "Mon, 1 Jan 2024 00:00:00 +0000". */
void dsn_date(time_t t, char *dst, size_t len);

/* ---- one transaction of a session ---- */

struct dsnq;
struct dsn_txn;

/*
 * MAIL: check its DSN parameters; when notices can be sent (want) and
 * the sender is not null, start a record of the transaction in *t.
 * NULL, or the reply refusing the command.
 */
const char *dsn_txn_mail(struct dsn_txn **t, int want, const char *sender,
    const char *params, time_t now);
/*
 * RCPT: check its DSN parameters and hold them until the upstream
 * answers (t may be NULL: checked only).  NULL, or the refusal.
 */
const char *dsn_txn_rcpt(struct dsn_txn *t, const char *addr,
    const char *params, size_t len);
/*
 * The upstream accepted that RCPT.  upstream_dsn: it offers DSN, so the
 * parameters went on to it and the notice is its to give.
 */
void dsn_txn_accepted(struct dsn_txn *t, int upstream_dsn);
/* Message bytes as the MTA sent them, while a notice may be due. */
void dsn_txn_data(struct dsn_txn *t, const char *p, size_t n);
/*
 * The upstream (host, NULL for a literal address; addr) answered 250 to
 * the final dot: queue the "relayed" notice for the recipients that
 * asked for it, if any, to [proxy] dsn_submit.
 */
void dsn_txn_relayed(struct dsn_txn *t, struct dsnq *q,
    const struct config *cfg, const char *host, const char *addr,
    const char *reply, unsigned long sid);
void dsn_txn_free(struct dsn_txn *t);

#endif
