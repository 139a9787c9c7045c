#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "dsn.h"
#include "dsnq.h"
#include "log.h"
#include "metrics.h"
#include "smtp.h"

/* ---- parameters ---- */

static int
dsn_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	/* Lower case is not xtext, but some clients write it. */
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
dsn_xtext_decode(const char *in, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (o + 1 >= outlen || c <= ' ' || c >= 0x7f)
			return -1;
		if (c == '+') {
			if (i + 2 >= len)
				return -1;
			if ((hi = dsn_hex((unsigned char)in[i + 1])) < 0 ||
			    (lo = dsn_hex((unsigned char)in[i + 2])) < 0)
				return -1;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			out[o++] = (char)c;
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

/* Printable ASCII (space included): safe inside a report's field. */
static int
dsn_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

const char *
dsn_parse_mail(const char *params, struct dsn_mail *m)
{
	char tmp[1024], *tok, *save = NULL;
	int have_envid = 0;

	memset(m, 0, sizeof(*m));
	if (snprintf(tmp, sizeof(tmp), "%s", params) >= (int)sizeof(tmp))
		return "501 5.5.4 Too many MAIL parameters";
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(tok, "RET=", 4) == 0) {
			if (m->ret != DSN_RET_NONE)
				return "501 5.5.4 Duplicate RET parameter";
			if (strcasecmp(tok + 4, "FULL") == 0)
				m->ret = DSN_RET_FULL;
			else if (strcasecmp(tok + 4, "HDRS") == 0)
				m->ret = DSN_RET_HDRS;
			else
				return "501 5.5.4 Bad RET parameter: FULL or "
				       "HDRS";
		} else if (strncasecmp(tok, "ENVID=", 6) == 0) {
			if (have_envid)
				return "501 5.5.4 Duplicate ENVID parameter";
			have_envid = 1;
			if (strlen(tok + 6) > DSN_ENVID_MAX ||
			    dsn_xtext_decode(tok + 6, strlen(tok + 6),
			    m->envid, sizeof(m->envid)) == -1 ||
			    m->envid[0] == '\0' || !dsn_printable(m->envid))
				return "501 5.5.4 Bad ENVID parameter";
		}
	}
	return NULL;
}

static const char *
dsn_parse_notify(const char *v, unsigned *out)
{
	static const struct {
		const char *word;
		unsigned bit;
	} words[] = {
		{ "NEVER", DSN_NOTIFY_NEVER },
		{ "SUCCESS", DSN_NOTIFY_SUCCESS },
		{ "FAILURE", DSN_NOTIFY_FAILURE },
		{ "DELAY", DSN_NOTIFY_DELAY },
	};
	const char *p = v, *e;
	size_t i, n;

	*out = 0;
	while (*p != '\0') {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i].word) == n &&
			    strncasecmp(p, words[i].word, n) == 0)
				break;
		if (i == sizeof(words) / sizeof(words[0]) ||
		    (*out & words[i].bit))
			return "501 5.5.4 Bad NOTIFY parameter";
		*out |= words[i].bit;
		if (e == NULL)
			break;
		p = e + 1;
		if (*p == '\0')
			return "501 5.5.4 Bad NOTIFY parameter";
	}
	/* NEVER stands alone (RFC 3461 section 4.1). */
	if (*out == 0 || ((*out & DSN_NOTIFY_NEVER) && *out != DSN_NOTIFY_NEVER))
		return "501 5.5.4 Bad NOTIFY parameter";
	return NULL;
}

/* ORCPT=addr-type;xtext (RFC 3461 section 4.2). */
static const char *
dsn_parse_orcpt(const char *v, char *out, size_t outlen)
{
	const char *semi = strchr(v, ';'), *p;
	char dec[DSN_ORCPT_MAX + 1];
	size_t tlen;

	if (strlen(v) > DSN_ORCPT_MAX || semi == NULL || semi == v ||
	    semi[1] == '\0')
		return "501 5.5.4 Bad ORCPT parameter";
	tlen = (size_t)(semi - v);
	for (p = v; p < semi; p++)
		if (!(((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-'))
			return "501 5.5.4 Bad ORCPT parameter";
	if (dsn_xtext_decode(semi + 1, strlen(semi + 1), dec, sizeof(dec)) ==
	    -1)
		return "501 5.5.4 Bad ORCPT parameter";
	/* A decoded control byte would end the report's field early. */
	if (dsn_printable(dec))
		snprintf(out, outlen, "%.*s;%s", (int)tlen, v, dec);
	else {
		for (p = dec; *p != '\0'; p++)
			if ((unsigned char)*p < ' ' || *p == 0x7f)
				return "501 5.5.4 Bad ORCPT parameter";
		snprintf(out, outlen, "%s", v);
	}
	return NULL;
}

const char *
dsn_parse_rcpt(const char *params, size_t len, struct dsn_rcpt_params *r)
{
	char tmp[1024], *tok, *save = NULL;
	const char *err;
	int have_orcpt = 0;

	memset(r, 0, sizeof(*r));
	if (len >= sizeof(tmp))
		return "501 5.5.4 Too many RCPT parameters";
	memcpy(tmp, params, len);
	tmp[len] = '\0';
	for (tok = strtok_r(tmp, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(tok, "NOTIFY=", 7) == 0) {
			if (r->notify != 0)
				return "501 5.5.4 Duplicate NOTIFY parameter";
			if ((err = dsn_parse_notify(tok + 7, &r->notify)) !=
			    NULL)
				return err;
		} else if (strncasecmp(tok, "ORCPT=", 6) == 0) {
			if (have_orcpt)
				return "501 5.5.4 Duplicate ORCPT parameter";
			have_orcpt = 1;
			if ((err = dsn_parse_orcpt(tok + 6, r->orcpt,
			    sizeof(r->orcpt))) != NULL)
				return err;
		}
	}
	return NULL;
}

/* ---- the header section ---- */

/* Append one byte to the line being kept; 0, or -1 when no more fits. */
static int
dsn_headers_put(struct dsn_headers *h, char c)
{
	if (h->len + 1 > DSN_HEADERS_MAX)
		return -1;
	if (h->len == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 2048;
		char *p;

		if (cap > DSN_HEADERS_MAX)
			cap = DSN_HEADERS_MAX;
		if ((p = realloc(h->buf, cap)) == NULL)
			return -1;
		h->buf = p;
		h->cap = cap;
	}
	if ((unsigned char)c >= 0x80)
		h->eightbit = 1;
	h->buf[h->len++] = c;
	return 0;
}

/* No more is kept: the last whole line is where the section ends. */
static void
dsn_headers_cut(struct dsn_headers *h)
{
	h->len = h->line;
	h->truncated = 1;
	h->done = 1;
}

void
dsn_headers_feed(struct dsn_headers *h, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && !h->done; i++) {
		char c = p[i];

		if (c == '\n') {
			if (h->len == h->line) {
				/* The empty line (or the final dot). */
				h->done = 1;
				return;
			}
			if (dsn_headers_put(h, '\r') == -1 ||
			    dsn_headers_put(h, '\n') == -1) {
				dsn_headers_cut(h);
				return;
			}
			h->line = h->len;
			h->started = 0;
			h->cr = 0;
			continue;
		}
		/* A CR not followed by LF is a bare CR: a space. */
		if (h->cr && dsn_headers_put(h, ' ') == -1) {
			dsn_headers_cut(h);
			return;
		}
		h->cr = c == '\r';
		if (h->cr)
			continue;
		/* The dot the MTA added before a line starting with one. */
		if (!h->started) {
			h->started = 1;
			if (c == '.')
				continue;
		}
		if (dsn_headers_put(h, c) == -1) {
			dsn_headers_cut(h);
			return;
		}
	}
}

void
dsn_headers_free(struct dsn_headers *h)
{
	free(h->buf);
	memset(h, 0, sizeof(*h));
}

/* ---- the report ---- */

/* A growing string; oom set once anything failed to fit. */
struct dsn_sb {
	char *p;
	size_t len, cap;
	int oom;
};

static void
dsn_sb_add(struct dsn_sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
dsn_sb_printf(struct dsn_sb *b, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		/* Every line is bounded by its inputs: this is a bug. */
		b->oom = 1;
		return;
	}
	dsn_sb_add(b, line, (size_t)n);
}

void
dsn_date(time_t t, char *dst, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(dst, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static int
dsn_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* Quoted-printable (RFC 2045 section 6.7) of CRLF lines. */
static void
dsn_sb_qp(struct dsn_sb *b, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, col = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		int eol = i + 1 >= n || p[i + 1] == '\r';
		char enc[3];
		size_t w;

		if (c == '\r' && i + 1 < n && p[i + 1] == '\n') {
			dsn_sb_add(b, "\r\n", 2);
			col = 0;
			i++;
			continue;
		}
		/* Blanks at the end of a line are encoded (they may go). */
		if ((c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && !eol)) {
			enc[0] = (char)c;
			w = 1;
		} else {
			enc[0] = '=';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			w = 3;
		}
		if (col + w > 75) {
			dsn_sb_add(b, "=\r\n", 3);
			col = 0;
		}
		dsn_sb_add(b, enc, w);
		col += w;
	}
}

/* A reply line as a field value: printable ASCII, bounded. */
static void
dsn_clean(const char *in, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < outlen; i++)
		out[i] = (unsigned char)in[i] < ' ' ||
		    (unsigned char)in[i] >= 0x7f ? '?' : in[i];
	out[i] = '\0';
}

char *
dsn_build(const struct dsn_report *r, size_t *len, int *utf8)
{
	struct dsn_sb b = { NULL, 0, 0, 0 };
	const struct dsn_headers *h = r->headers;
	char boundary[160], date[64], arrival[64], reply[400], sep[170];
	int i, n, qp;

	*utf8 = !dsn_is_ascii(r->sender);
	for (i = 0; i < r->nrcpt; i++)
		if (!dsn_is_ascii(r->rcpt[i].addr))
			*utf8 = 1;
	/* Only RFC 6533 types may carry 8-bit headers as they are. */
	qp = !*utf8 && h->eightbit;
	dsn_clean(r->reply, reply, sizeof(reply));
	dsn_date(r->now, date, sizeof(date));
	dsn_date(r->arrival, arrival, sizeof(arrival));
	/* A boundary that occurs nowhere in the attached headers. */
	for (n = 0;; n++) {
		snprintf(boundary, sizeof(boundary), "%s/%d/%s", r->token, n,
		    r->reporting_mta);
		snprintf(sep, sizeof(sep), "--%s", boundary);
		if (h->len == 0 || memmem(h->buf, h->len, sep, strlen(sep)) ==
		    NULL)
			break;
	}

	dsn_sb_printf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    r->reporting_mta);
	dsn_sb_printf(&b, "To: <%s>\r\n", r->sender);
	dsn_sb_printf(&b, "Subject: Delivery Status Notification (relayed)"
	    "\r\n");
	dsn_sb_printf(&b, "Date: %s\r\n", date);
	dsn_sb_printf(&b, "Message-ID: <%s@%s>\r\n", r->token,
	    r->reporting_mta);
	dsn_sb_printf(&b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0"
	    "\r\n");
	dsn_sb_printf(&b, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n",
	    boundary);
	dsn_sb_printf(&b, "This is a MIME-encapsulated message.\r\n\r\n");

	/* The human-readable part. */
	dsn_sb_printf(&b, "%s\r\nContent-Type: text/plain; charset=%s\r\n"
	    "Content-Transfer-Encoding: %s\r\n\r\n", sep,
	    *utf8 ? "utf-8" : "us-ascii", *utf8 ? "8bit" : "7bit");
	dsn_sb_printf(&b, "This is the mail relay mxtls at %s.\r\n\r\n",
	    r->reporting_mta);
	dsn_sb_printf(&b, "Your message was relayed to %s, a server that "
	    "does not\r\noffer delivery status notifications (DSN), for these "
	    "recipients:\r\n\r\n", r->remote_mta);
	for (i = 0; i < r->nrcpt; i++)
		dsn_sb_printf(&b, "  <%s>\r\n", r->rcpt[i].addr);
	dsn_sb_printf(&b, "\r\nYou asked to be told of their successful "
	    "delivery (NOTIFY=SUCCESS).\r\nThis is as far as delivery can be "
	    "confirmed: no further notice of\r\nsuccess will come. %s "
	    "answered:\r\n\r\n  %s\r\n\r\n", r->remote_mta, reply);
	dsn_sb_printf(&b, "mxtls passes messages on without keeping a copy, "
	    "so only the header\r\nsection of your message is attached%s%s"
	    ".\r\n\r\n", h->truncated ? " (cut short: it was too long)" : "",
	    r->mail->ret == DSN_RET_FULL ? ", not the whole message you "
	    "asked for\r\n(RET=FULL)" : "");

	/* The machine-readable part (RFC 3464 section 2). */
	dsn_sb_printf(&b, "%s\r\nContent-Type: message/%sdelivery-status\r\n"
	    "\r\n", sep, *utf8 ? "global-" : "");
	if (r->mail->envid[0] != '\0')
		dsn_sb_printf(&b, "Original-Envelope-Id: %s\r\n",
		    r->mail->envid);
	dsn_sb_printf(&b, "Reporting-MTA: dns; %s\r\n", r->reporting_mta);
	dsn_sb_printf(&b, "Arrival-Date: %s\r\n", arrival);
	for (i = 0; i < r->nrcpt; i++) {
		dsn_sb_printf(&b, "\r\n");
		if (r->rcpt[i].orcpt != NULL)
			dsn_sb_printf(&b, "Original-Recipient: %s\r\n",
			    r->rcpt[i].orcpt);
		dsn_sb_printf(&b, "Final-Recipient: %s; %s\r\n",
		    dsn_is_ascii(r->rcpt[i].addr) ? "rfc822" : "utf-8",
		    r->rcpt[i].addr);
		dsn_sb_printf(&b, "Action: relayed\r\nStatus: 2.0.0\r\n");
		dsn_sb_printf(&b, "Remote-MTA: dns; %s\r\n", r->remote_mta);
		dsn_sb_printf(&b, "Diagnostic-Code: smtp; %s\r\n", reply);
		dsn_sb_printf(&b, "Last-Attempt-Date: %s\r\n", date);
	}
	dsn_sb_printf(&b, "\r\n");

	/* The header section (RFC 3461 section 4.3: headers only here). */
	dsn_sb_printf(&b, "%s\r\nContent-Type: %s\r\n"
	    "Content-Transfer-Encoding: %s\r\n\r\n", sep,
	    *utf8 ? "message/global-headers" : "text/rfc822-headers",
	    qp ? "quoted-printable" : h->eightbit ? "8bit" : "7bit");
	if (qp)
		dsn_sb_qp(&b, h->buf, h->len);
	else if (h->len > 0)
		dsn_sb_add(&b, h->buf, h->len);
	dsn_sb_printf(&b, "\r\n%s--\r\n", sep);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

char *
dsn_smtp_data(const char *msg, size_t len, size_t *outlen)
{
	size_t i, o = 0, dots = 0;
	char *out;

	for (i = 0; i < len; i++)
		if (msg[i] == '.' && (i == 0 || msg[i - 1] == '\n'))
			dots++;
	if ((out = malloc(len + dots + 3)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (msg[i] == '.' && (i == 0 || msg[i - 1] == '\n'))
			out[o++] = '.';
		out[o++] = msg[i];
	}
	memcpy(out + o, ".\r\n", 3);
	*outlen = o + 3;
	return out;
}

/* ---- one transaction ---- */

struct dsn_txn {
	char sender[SMTP_PATH_MAX + 1];
	struct dsn_mail mail;
	time_t arrival;
	char next_addr[SMTP_PATH_MAX + 1]; /* the RCPT waiting for its reply */
	struct dsn_rcpt_params next;
	struct dsn_recipient *rcpt; /* accepted, with NOTIFY=SUCCESS */
	int nrcpt, cap;
	int oom; /* a recipient could not be recorded */
	struct dsn_headers headers;
};

const char *
dsn_txn_mail(struct dsn_txn **t, int want, const char *sender,
    const char *params, time_t now)
{
	struct dsn_mail m;
	const char *err;

	*t = NULL;
	if ((err = dsn_parse_mail(params, &m)) != NULL)
		return err;
	/* A null reverse-path never gets a notice (RFC 5321 section 4.5.5). */
	if (!want || sender[0] == '\0')
		return NULL;
	if ((*t = calloc(1, sizeof(**t))) == NULL)
		return "451 4.3.0 Out of memory, try again later";
	snprintf((*t)->sender, sizeof((*t)->sender), "%s", sender);
	(*t)->mail = m;
	(*t)->arrival = now;
	return NULL;
}

const char *
dsn_txn_rcpt(struct dsn_txn *t, const char *addr, const char *params,
    size_t len)
{
	struct dsn_rcpt_params r;
	const char *err;

	if ((err = dsn_parse_rcpt(params, len, &r)) != NULL)
		return err;
	if (t != NULL) {
		snprintf(t->next_addr, sizeof(t->next_addr), "%s", addr);
		t->next = r;
	}
	return NULL;
}

void
dsn_txn_accepted(struct dsn_txn *t, int upstream_dsn)
{
	struct dsn_recipient *v, *d;

	if (t == NULL || upstream_dsn || !(t->next.notify & DSN_NOTIFY_SUCCESS))
		return;
	if (t->nrcpt == t->cap) {
		int cap = t->cap ? t->cap * 2 : 4;

		if ((v = realloc(t->rcpt, (size_t)cap * sizeof(*v))) == NULL) {
			t->oom = 1;
			return;
		}
		t->rcpt = v;
		t->cap = cap;
	}
	d = &t->rcpt[t->nrcpt];
	d->addr = strdup(t->next_addr);
	d->orcpt = t->next.orcpt[0] != '\0' ? strdup(t->next.orcpt) : NULL;
	if (d->addr == NULL || (t->next.orcpt[0] != '\0' && d->orcpt == NULL)) {
		free(d->addr);
		free(d->orcpt);
		t->oom = 1;
		return;
	}
	t->nrcpt++;
}

void
dsn_txn_data(struct dsn_txn *t, const char *p, size_t n)
{
	if (t != NULL && t->nrcpt > 0 && !t->headers.done)
		dsn_headers_feed(&t->headers, p, n);
}

void
dsn_txn_relayed(struct dsn_txn *t, struct dsnq *q, const struct config *cfg,
    const char *host, const char *addr, const char *reply, unsigned long sid)
{
	static unsigned long serial;
	struct dsn_report r;
	char token[96], n[16], remote[300], *msg, *data = NULL;
	size_t len, dlen = 0;
	int utf8 = 0;

	if (t == NULL || (t->nrcpt == 0 && !t->oom))
		return;
	snprintf(n, sizeof(n), "%d", t->nrcpt);
	if (t->oom) {
		metrics_inc("mxtls_dsn_total", "outcome=\"lost\"", 1);
		log_error(sid, "dsn-lost", "reason", "out of memory recording "
		    "a recipient that asked for NOTIFY=SUCCESS", NULL);
		if (t->nrcpt == 0)
			return;
	}
	snprintf(token, sizeof(token), "%lx.%lu.%lu", (unsigned long)
	    clock_now(), sid, ++serial);
	memset(&r, 0, sizeof(r));
	r.reporting_mta = cfg->hostname;
	r.sender = t->sender;
	r.mail = &t->mail;
	r.arrival = t->arrival;
	r.now = clock_now();
	if (host != NULL)
		snprintf(remote, sizeof(remote), "%s", host);
	else
		snprintf(remote, sizeof(remote), "[%s]", addr);
	r.remote_mta = remote;
	r.reply = reply;
	r.rcpt = t->rcpt;
	r.nrcpt = t->nrcpt;
	r.headers = &t->headers;
	r.token = token;
	if ((msg = dsn_build(&r, &len, &utf8)) != NULL)
		data = dsn_smtp_data(msg, len, &dlen);
	free(msg);
	if (data == NULL) {
		metrics_inc("mxtls_dsn_total", "outcome=\"lost\"", 1);
		log_error(sid, "dsn-lost", "nrcpt", n, "reason",
		    "out of memory building the relayed notice", NULL);
		return;
	}
	dsnq_submit(q, (const struct sockaddr *)&cfg->dsn_submit,
	    cfg->dsn_submit_len, cfg->hostname, t->sender, utf8, data, dlen,
	    sid, t->nrcpt);
}

void
dsn_txn_free(struct dsn_txn *t)
{
	int i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrcpt; i++) {
		free(t->rcpt[i].addr);
		free(t->rcpt[i].orcpt);
	}
	free(t->rcpt);
	dsn_headers_free(&t->headers);
	free(t);
}
