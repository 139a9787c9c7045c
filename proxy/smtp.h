/*
 * Pure SMTP syntax (RFC 5321): command lines, reply parsing, EHLO
 * keywords, envelope paths, the DATA end-of-message scanner and the
 * bare CR/LF normaliser.
 * No I/O, no logging: functions take bytes and return results or an error
 * string, so all of it is unit-testable and fuzzable.
 */
#ifndef MXTLS_SMTP_H
#define MXTLS_SMTP_H

#include <stddef.h>
#include <sys/types.h>

#define SMTP_CMD_LINE_MAX 1000	 /* incl. CRLF, RFC 5321 4.5.3.1.4 */
#define SMTP_TEXT_LINE_MAX 1000	 /* incl. CRLF, RFC 5321 4.5.3.1.6 */
#define SMTP_PATH_MAX 256	 /* RFC 5321 4.5.3.1.3 */
#define SMTP_REPLY_LINE_MAX 2048 /* RFC says 512; real servers exceed it */
#define SMTP_REPLY_LINES_MAX 64
#define SMTP_REPLY_TEXT_MAX 8192 /* all lines of one reply, CRLFs included */

enum smtp_cmd {
	SMTP_CMD_UNKNOWN,
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
	SMTP_CMD_BDAT,
};

/*
 * Find the end of one line in p[0..len).  Returns the length of the line
 * including its LF when a LF is found within max bytes; 0 when more bytes
 * are needed; -1 when max bytes have been seen without a LF (too long).
 * *bare_lf is set when the line ends in LF without CR.
 */
ssize_t smtp_line_length(const char *p, size_t len, size_t max, int *bare_lf);

struct smtp_command {
	enum smtp_cmd cmd;
	const char *verb; /* points into the line */
	size_t verblen;
	const char *arg; /* after the verb and one space; not terminated */
	size_t arglen;	 /* trailing CRLF and spaces stripped */
};

/* Split a command line (with or without its CRLF). Never fails. */
void smtp_parse_command(const char *line, size_t len, struct smtp_command *out);
const char *smtp_cmd_name(enum smtp_cmd cmd);

/*
 * Parse the argument of MAIL ("FROM:<path> params") or RCPT
 * ("TO:<path> params").  `prefix` is "FROM:" or "TO:" (case-insensitive,
 * spaces before '<' tolerated).  The address inside <> is copied to addr
 * (empty for the null sender <>; a source route "@a,@b:" dropped), params
 * points at the parameters (after the spaces that follow '>') or at an
 * empty string.  Returns 0, or -1 with *err set to a static message
 * suitable for a 501 reply.
 */
int smtp_parse_path(const char *arg, size_t arglen, const char *prefix,
    char *addr, size_t addrlen, const char **params, size_t *paramslen,
    const char **err);

/* The domain part of an address (after the last '@'), or "" if none. */
const char *smtp_addr_domain(const char *addr);

/* Reply parsing, incremental over arbitrary chunks. */
struct smtp_reply {
	int code;     /* 200..599 */
	char text[SMTP_REPLY_TEXT_MAX]; /* all lines verbatim, each ending CRLF */
	size_t textlen;
	int nlines;
};

enum smtp_reply_status {
	SMTP_REPLY_MORE = 0,  /* need more bytes */
	SMTP_REPLY_DONE = 1,  /* out is complete */
	SMTP_REPLY_ERROR = -1 /* protocol violation; err says which */
};

struct smtp_reply_parser {
	struct smtp_reply reply;
	const char *err;
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);
/*
 * Feed bytes; *consumed says how many were used (never past the end of the
 * reply, so bytes after it stay with the caller: the STARTTLS injection
 * guard depends on it).  A line is only consumed once complete: on MORE,
 * consumed < len when the last line is incomplete, and those bytes must be
 * fed again together with what arrives next.  On DONE the reply is in
 * p->reply and the parser must be re-initialised before the next one.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply_parser *p,
    const char *data, size_t len, size_t *consumed);

/*
 * Append " suffix" to the last line of r, its code kept.  That line stays
 * within 512 octets with its CRLF (RFC 5321 4.5.3.1.5): its own text is
 * cut where both do not fit.  0, or -1 (r unchanged) when even the code
 * and the suffix do not fit.
 */
int smtp_reply_append(struct smtp_reply *r, const char *suffix);

/* The text of line i of a reply (after "NNN-" / "NNN "), not terminated. */
int smtp_reply_line(const struct smtp_reply *r, int i, const char **text,
    size_t *len);

/* EHLO keywords that matter to the relay. */
#define SMTP_EXT_STARTTLS 0x001
#define SMTP_EXT_PIPELINING 0x002
#define SMTP_EXT_SIZE 0x004
#define SMTP_EXT_8BITMIME 0x008
#define SMTP_EXT_SMTPUTF8 0x010
#define SMTP_EXT_DSN 0x020
#define SMTP_EXT_ENHANCEDSTATUSCODES 0x040
#define SMTP_EXT_CHUNKING 0x080
#define SMTP_EXT_REQUIRETLS 0x100

struct smtp_ehlo {
	unsigned ext;
	unsigned long size; /* SIZE limit; 0 = none announced */
};

/* Keywords from the lines after the first of a 250 EHLO reply. */
void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *out);

/*
 * DATA scanner.  Feeds message bytes as they arrive from the client and
 * says how many belong to the message, so bytes after the end marker
 * (pipelined commands) are left alone.  The end of data is only
 * CRLF "." CRLF (the start of data counts as after a CRLF).  Bare CR, bare
 * LF and over-long lines are flagged, never treated as line ends.
 */
struct smtp_data_scan {
	int state;
	size_t linelen;
	int bare_lf;   /* a LF without CR was seen */
	int bare_cr;   /* a CR not followed by LF was seen */
	int long_line; /* a line longer than SMTP_TEXT_LINE_MAX incl. CRLF */
	int nul;       /* a NUL byte was seen */
	size_t total;  /* message bytes seen, end marker excluded */
};

void smtp_data_scan_init(struct smtp_data_scan *s);
/*
 * Returns how many bytes of p[0..len) belong to the message, including the
 * end marker when it completes here (then *done = 1).  Bytes after the
 * marker are not consumed.  safe_len (optional) receives how many of the
 * returned bytes are safe to forward verbatim: all of them unless a bare CR,
 * a bare LF or an over-long line was found, then only those before it (for
 * a bare CR: up to and including the CR, which an earlier call may already
 * have returned as safe), and 0 in every later call.
 */
size_t smtp_data_scan(struct smtp_data_scan *s, const char *p, size_t len,
    int *done, size_t *safe_len);

/*
 * DATA normaliser ([proxy] bare_line_endings = normalise): rewrites the
 * bytes the scanner says belong to the message so that every line ends in
 * CRLF.  A bare LF becomes CRLF, a bare CR a space.  A line that is a line
 * only through that rewriting (it follows a bare LF) and starts with "."
 * gets a second "." (dot-stuffing re-applied); so does a lone "." ended by
 * a bare LF, which would otherwise become the end marker.  Lines after a
 * real CRLF are passed as they are: the client dot-stuffed them.  So
 * upstream the message ends exactly where the scanner says, at the
 * client's own CRLF "." CRLF (SMTP smuggling, CVE-2023-51764).  A CR is
 * held back until the next byte shows whether it is bare, so any split of
 * the input gives the same output.  Fed the end marker, it passes it on.
 */
struct smtp_normalise {
	int state;
	size_t linelen;	       /* content bytes of the output line so far */
	int long_line;	       /* an output line over SMTP_TEXT_LINE_MAX */
	unsigned long bare_lf; /* LFs that became CRLF */
	unsigned long bare_cr; /* CRs that became a space */
	unsigned long dots;    /* dots added; output = input + bare_lf + dots */
};

/* Output for len input bytes, whatever came before: at most this much. */
#define SMTP_NORMALISE_OUT_MAX(len) (2 * (len) + 1)

void smtp_normalise_init(struct smtp_normalise *n);
/*
 * Rewrite in[0..len) into out[0..cap).  Returns how many input bytes were
 * consumed and sets *produced to how many output bytes were written.  A
 * byte is consumed only when all of its output (at most 3 bytes) fits, so
 * with cap >= SMTP_NORMALISE_OUT_MAX(len) every byte is consumed, and
 * with cap >= 3 at least one.
 */
size_t smtp_normalise(struct smtp_normalise *n, const char *in, size_t len,
    char *out, size_t cap, size_t *produced);

/*
 * Whether a message's header says "TLS-Required: No" (RFC 8689 section
 * 5), from the DATA bytes at p (dot-stuffed, as the client sends them):
 * SMTP_TRN_NO, SMTP_TRN_ABSENT (the header ended, or the message, without
 * it), or SMTP_TRN_MORE (undecided: more bytes needed).  complete: no
 * more bytes will be looked at, so what is undecided counts as absent.
 */
enum smtp_trn {
	SMTP_TRN_MORE,
	SMTP_TRN_ABSENT,
	SMTP_TRN_NO,
};
enum smtp_trn smtp_tls_required_no(const char *p, size_t len, int complete);

/* Room for a MAIL or RCPT command's parameters. */
#define SMTP_PARAMS_MAX 512

/*
 * The MAIL parameters mxtls takes (SIZE up to max_size, BODY, SMTPUTF8,
 * REQUIRETLS, RET, ENVID): NULL, or the reply refusing them.
 */
const char *smtp_mail_params_check(const char *params, long max_size);
/* The parameter word (no value) is among the parameters. */
int smtp_has_param(const char *params, const char *word);

#endif
