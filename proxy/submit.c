/*
 * One message handed to an SMTP server (see submit.h): a command goes
 * once the reply before it came, never ahead of it (no PIPELINING).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"
#include "submit.h"

#define SUBMIT_BUFSIZE 16384

/* What a step waits for, for the logs. */
static const char *const submit_step_names[] = {
	[SUBMIT_CONNECT] = "connect",
	[SUBMIT_GREETING] = "greeting",
	[SUBMIT_EHLO] = "EHLO",
	[SUBMIT_MAIL] = "MAIL",
	[SUBMIT_RCPT] = "RCPT",
	[SUBMIT_DATA] = "DATA",
	[SUBMIT_BODY] = "message",
	[SUBMIT_DOT] = "end of message",
	[SUBMIT_QUIT] = "QUIT",
};

const char *
submit_step_name(enum submit_step step)
{
	return submit_step_names[step];
}

void
submit_free(struct submit *s)
{
	if (s->open)
		conn_free(&s->c);
	s->open = 0;
	free(s->rp);
	s->rp = NULL;
}

/* Closed before the owner hears: it has nothing to stop. */
static void
submit_end(struct submit *s, enum submit_event ev)
{
	submit_free(s);
	s->cb(s, ev, s->arg);
}

static void
submit_fail(struct submit *s, const char *reply, const char *reason,
    int permanent)
{
	snprintf(s->reply, sizeof(s->reply), "%s", reply ? reply : "");
	snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
	s->permanent = permanent;
	submit_end(s, SUBMIT_FAILED);
}

static void __attribute__((format(printf, 3, 4)))
submit_send(struct submit *s, enum submit_step next, const char *fmt, ...)
{
	char line[SMTP_CMD_LINE_MAX + 64];
	va_list ap;
	int n;

	s->step = next;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		submit_fail(s, NULL, "command too long", 1);
		return;
	}
	memcpy(line + n, "\r\n", 2);
	if (conn_write(&s->c, line, (size_t)n + 2) == -1) {
		submit_fail(s, NULL, "out of memory", 0);
		return;
	}
	conn_deadline(&s->c, s->timeout);
}

/* As much of the message as the buffer takes. */
static void
submit_body(struct submit *s)
{
	size_t n = buf_room(&s->c.out);

	if (n > s->m.len - s->off)
		n = s->m.len - s->off;
	if (n > 0 && conn_write(&s->c, s->m.data + s->off, n) == -1) {
		submit_fail(s, NULL, "out of memory", 0);
		return;
	}
	s->off += n;
	conn_deadline(&s->c, s->timeout);
	if (s->off == s->m.len)
		s->step = SUBMIT_DOT;
}

static void
submit_reply(struct submit *s, const struct smtp_reply *r)
{
	char sum[sizeof(s->reply)];
	const char *t;
	size_t n;
	struct smtp_ehlo ehlo;

	if (smtp_reply_line(r, 0, &t, &n) == -1)
		n = 0;
	snprintf(sum, sizeof(sum), "%d %.*s", r->code, (int)n, n ? t : "");
	conn_deadline(&s->c, 0);
	if (r->code / 100 != 2 && !(s->step == SUBMIT_DATA && r->code == 354)) {
		submit_fail(s, sum, NULL, r->code / 100 == 5);
		return;
	}
	switch (s->step) {
	case SUBMIT_GREETING:
		submit_send(s, SUBMIT_EHLO, "EHLO %s", s->m.helo);
		break;
	case SUBMIT_EHLO:
		memset(&ehlo, 0, sizeof(ehlo));
		smtp_ehlo_parse(r, &ehlo);
		if (s->m.utf8 && !(ehlo.ext & SMTP_EXT_SMTPUTF8)) {
			submit_fail(s, sum, "the message names a UTF-8 address "
			    "and the server does not offer SMTPUTF8", 1);
			break;
		}
		submit_send(s, SUBMIT_MAIL, "MAIL FROM:<%s>%s", s->m.from,
		    s->m.utf8 ? " BODY=8BITMIME SMTPUTF8" : "");
		break;
	case SUBMIT_MAIL:
		submit_send(s, SUBMIT_RCPT, "RCPT TO:<%s>", s->m.rcpt);
		break;
	case SUBMIT_RCPT:
		submit_send(s, SUBMIT_DATA, "DATA");
		break;
	case SUBMIT_DATA:
		s->step = SUBMIT_BODY;
		submit_body(s);
		break;
	case SUBMIT_DOT:
		/*
		 * Taken.  QUIT before closing (RFC 5321 4.1.1.10); nothing
		 * after it can undo the delivery.
		 */
		snprintf(s->reply, sizeof(s->reply), "%s", sum);
		s->step = SUBMIT_QUIT;
		if (conn_write(&s->c, "QUIT\r\n", 6) == -1)
			submit_end(s, SUBMIT_DONE);
		else
			conn_deadline(&s->c, s->timeout);
		break;
	case SUBMIT_CONNECT: /* no reply is read in these */
	case SUBMIT_BODY:
	case SUBMIT_QUIT:
		break;
	}
}

/*
 * One reply per read: bytes after it were sent before our next command
 * could be read (a 250 in the segment of the 354 would pass for the
 * message's), so they are out of turn.
 */
static void
submit_input(struct submit *s)
{
	enum smtp_reply_status st;
	size_t used;

	if (s->step == SUBMIT_BODY) {
		submit_fail(s, NULL, "the server spoke out of turn", 0);
		return;
	}
	st = smtp_reply_feed(s->rp, buf_head(&s->c.in), buf_len(&s->c.in),
	    &used);
	buf_consume(&s->c.in, used);
	if (st == SMTP_REPLY_MORE)
		return;
	if (s->step == SUBMIT_QUIT) { /* whatever it says */
		submit_end(s, SUBMIT_DONE);
		return;
	}
	if (st == SMTP_REPLY_ERROR) {
		submit_fail(s, NULL, s->rp->err, 0);
		return;
	}
	submit_reply(s, &s->rp->reply);
	if (!s->open)
		return;
	smtp_reply_parser_init(s->rp);
	if (buf_len(&s->c.in) == 0)
		return;
	if (s->step == SUBMIT_QUIT)
		submit_end(s, SUBMIT_DONE);
	else
		submit_fail(s, NULL, "the server spoke out of turn", 0);
}

static void
submit_event(struct conn *c, enum conn_event ev, void *arg)
{
	struct submit *s = arg;
	char why[64];

	(void)c;
	switch (ev) {
	case CONN_EV_CONNECTED:
		s->step = SUBMIT_GREETING;
		conn_set_reading(&s->c, 1);
		conn_deadline(&s->c, s->timeout);
		break;
	case CONN_EV_INPUT:
		submit_input(s);
		break;
	case CONN_EV_DRAINED:
		if (s->step == SUBMIT_BODY)
			submit_body(s);
		break;
	case CONN_EV_TLS_READY: /* plain SMTP: never */
		break;
	case CONN_EV_EOF:
	case CONN_EV_ERROR:
	case CONN_EV_TIMEOUT:
		if (s->step == SUBMIT_QUIT) /* the message is taken */
			submit_end(s, SUBMIT_DONE);
		else if (ev == CONN_EV_EOF)
			submit_fail(s, NULL, "connection closed by the server",
			    0);
		else if (ev == CONN_EV_ERROR)
			submit_fail(s, NULL, s->c.error, 0);
		else {
			snprintf(why, sizeof(why), "timeout waiting for %s",
			    submit_step_names[s->step]);
			submit_fail(s, NULL, why, 0);
		}
		break;
	}
}

void
submit_start(struct submit *s, struct ev_loop *loop,
    const struct sockaddr *to, socklen_t tolen, const struct submit_msg *m,
    double timeout, submit_cb *cb, void *arg)
{
	s->m = *m;
	s->timeout = timeout;
	s->cb = cb;
	s->arg = arg;
	s->step = SUBMIT_CONNECT;
	s->off = 0;
	if ((s->rp = malloc(sizeof(*s->rp))) == NULL) {
		submit_fail(s, NULL, "out of memory", 0);
		return;
	}
	smtp_reply_parser_init(s->rp);
	if (conn_connect(&s->c, loop, to, tolen, SUBMIT_BUFSIZE, submit_event,
	    s) == -1) {
		submit_fail(s, NULL, s->c.error, 0);
		return;
	}
	s->open = 1;
	conn_deadline(&s->c, timeout);
}
