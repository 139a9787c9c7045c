/*
 * proxy/submit.c on a real libev loop against a scripted SMTP server on
 * loopback: what is sent, in what order, and how each way of ending is
 * reported (done, a refusal at each kind of step, a closed connection,
 * a time-out, a server that speaks out of turn).  The callers' logs are
 * tested by tests/integration/test_dsn.sh and test_tlsrpt_send.sh.
 */
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "submit.h"
#include "t.h"

static struct ev_loop *loop;

/*
 * The server: one reply per command (NULL: it closes the connection
 * instead, "": it says nothing), everything it read kept.
 */
struct server {
	int lfd, fd;
	struct sockaddr_in addr;
	ev_io accept_w, read_w;
	const char *greeting, *ehlo, *mail, *rcpt, *data, *dot, *quit;
	char got[1 << 18];
	size_t ngot, scanned;
	int in_data;
};

static void
server_say(struct server *sv, const char *reply)
{
	if (reply == NULL) {
		ev_io_stop(loop, &sv->read_w);
		close(sv->fd);
		sv->fd = -1;
		return;
	}
	if (send(sv->fd, reply, strlen(reply), MSG_NOSIGNAL) !=
	    (ssize_t)strlen(reply))
		fprintf(stderr, "server: short send\n");
}

/* Answer each command read whole, and the message at its final dot. */
static void
server_answer(struct server *sv)
{
	const char *eol, *end, *reply;
	char *line;

	while (sv->fd != -1) {
		if (sv->in_data) {
			/* From the CRLF of DATA: a dot on the first line ends it. */
			end = memmem(sv->got + sv->scanned - 2, sv->ngot -
			    sv->scanned + 2, "\r\n.\r\n", 5);
			if (end == NULL)
				return;
			sv->scanned = (size_t)(end - sv->got) + 5;
			sv->in_data = 0;
			server_say(sv, sv->dot);
			continue;
		}
		line = sv->got + sv->scanned;
		if ((eol = memmem(line, sv->ngot - sv->scanned, "\r\n", 2)) ==
		    NULL)
			return;
		sv->scanned = (size_t)(eol - sv->got) + 2;
		if (strncmp(line, "EHLO", 4) == 0)
			reply = sv->ehlo;
		else if (strncmp(line, "MAIL", 4) == 0)
			reply = sv->mail;
		else if (strncmp(line, "RCPT", 4) == 0)
			reply = sv->rcpt;
		else if (strncmp(line, "DATA", 4) == 0) {
			reply = sv->data;
			sv->in_data = reply != NULL &&
			    strncmp(reply, "354", 3) == 0;
		} else if (strncmp(line, "QUIT", 4) == 0)
			reply = sv->quit;
		else
			reply = "500 what\r\n";
		server_say(sv, reply);
	}
}

static void
server_read(struct ev_loop *l, ev_io *w, int revents)
{
	struct server *sv = w->data;
	ssize_t n;

	(void)l;
	(void)revents;
	n = recv(sv->fd, sv->got + sv->ngot, sizeof(sv->got) - sv->ngot, 0);
	if (n <= 0) {
		server_say(sv, NULL);
		return;
	}
	sv->ngot += (size_t)n;
	server_answer(sv);
}

static void
server_accept(struct ev_loop *l, ev_io *w, int revents)
{
	struct server *sv = w->data;

	(void)l;
	(void)revents;
	ev_io_stop(loop, &sv->accept_w);
	if ((sv->fd = accept(sv->lfd, NULL, NULL)) == -1)
		return;
	ev_io_init(&sv->read_w, server_read, sv->fd, EV_READ);
	sv->read_w.data = sv;
	ev_io_start(loop, &sv->read_w);
	server_say(sv, sv->greeting);
}

/* A server that answers every step with success. */
static struct server *
server_new(void)
{
	struct server *sv = calloc(1, sizeof(*sv));
	socklen_t len = sizeof(sv->addr);

	sv->fd = -1;
	sv->greeting = "220 mx.test ESMTP\r\n";
	sv->ehlo = "250-mx.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
	sv->mail = "250 2.1.0 Ok\r\n";
	sv->rcpt = "250 2.1.5 Ok\r\n";
	sv->data = "354 End data with <CR><LF>.<CR><LF>\r\n";
	sv->dot = "250 2.0.0 Ok: queued as 4Xk2\r\n";
	sv->quit = "221 2.0.0 Bye\r\n";
	sv->addr.sin_family = AF_INET;
	sv->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(sv->lfd, (struct sockaddr *)&sv->addr, sizeof(sv->addr)) ==
	    -1 || listen(sv->lfd, 1) == -1 || getsockname(sv->lfd,
	    (struct sockaddr *)&sv->addr, &len) == -1) {
		perror("server");
		exit(2);
	}
	ev_io_init(&sv->accept_w, server_accept, sv->lfd, EV_READ);
	sv->accept_w.data = sv;
	ev_io_start(loop, &sv->accept_w);
	return sv;
}

static void
server_free(struct server *sv)
{
	ev_io_stop(loop, &sv->accept_w);
	if (sv->fd != -1)
		server_say(sv, NULL);
	if (sv->lfd != -1)
		close(sv->lfd);
	free(sv);
}

static int ended;
static enum submit_event ended_ev;

static void
on_end(struct submit *s, enum submit_event ev, void *arg)
{
	(void)s;
	(void)arg;
	ended++;
	ended_ev = ev;
	ev_break(loop, EVBREAK_ALL);
}

static const struct submit_msg plain = {
	.helo = "helo.test",
	.from = "",
	.rcpt = "rcpt@example.org",
	.data = "Subject: hi\r\n\r\nhello\r\n.\r\n",
	.len = sizeof("Subject: hi\r\n\r\nhello\r\n.\r\n") - 1,
};

/* Hand m to sv, to the end. */
static void
run(struct server *sv, struct submit *s, const struct submit_msg *m,
    double timeout)
{
	memset(s, 0, sizeof(*s));
	ended = 0;
	submit_start(s, loop, (struct sockaddr *)&sv->addr, sizeof(sv->addr),
	    m, timeout, on_end, NULL);
	if (!ended)
		ev_run(loop, 0);
	CHECK_INT(ended, 1);
	CHECK_INT(s->open, 0);
}

/* What the server read, as a string. */
static const char *
got(struct server *sv)
{
	sv->got[sv->ngot] = '\0';
	return sv->got;
}

static void
delivered(void)
{
	struct server *sv = server_new();
	struct submit s;
	struct submit_msg m = plain;
	char *data, *want;
	size_t n = 0, cap = 100000;
	int i;

	/* Bigger than the connection's buffer: written as it drains. */
	data = malloc(cap + 64);
	for (i = 0; n < cap; i++)
		n += (size_t)sprintf(data + n, "line %06d of a long message\r\n",
		    i);
	n += (size_t)sprintf(data + n, ".\r\n");
	m.data = data;
	m.len = n;
	run(sv, &s, &m, 5.);
	CHECK_INT(ended_ev, SUBMIT_DONE);
	CHECK_STR(s.reply, "250 2.0.0 Ok: queued as 4Xk2");
	want = malloc(n + 256);
	sprintf(want, "EHLO helo.test\r\nMAIL FROM:<>\r\n"
	    "RCPT TO:<rcpt@example.org>\r\nDATA\r\n%sQUIT\r\n", data);
	CHECK_STR(got(sv), want);
	free(want);
	free(data);
	server_free(sv);
}

/* Each way a try fails: what the server says at one step, and the report. */
static const struct failure {
	const char *what;
	size_t at;	  /* the reply changed: offsetof(struct server, ...) */
	const char *say;  /* NULL: the server closes the connection there */
	int utf8;
	double timeout;
	enum submit_step step;
	const char *reply, *reason;
	int permanent;
	const char *sent; /* what the server read; NULL: not looked at */
} failures[] = {
	{ "a 5xx is final, its first line kept", offsetof(struct server, rcpt),
	    "550-5.1.1 no such user\r\n550 5.1.1 really not\r\n", 0, 5.,
	    SUBMIT_RCPT, "550 5.1.1 no such user", "", 1,
	    "EHLO helo.test\r\nMAIL FROM:<>\r\nRCPT TO:<rcpt@example.org>\r\n" },
	{ "a 4xx is not", offsetof(struct server, mail),
	    "451 4.3.0 try later\r\n", 0, 5., SUBMIT_MAIL,
	    "451 4.3.0 try later", "", 0,
	    "EHLO helo.test\r\nMAIL FROM:<>\r\n" },
	{ "a refusing greeting: nothing is sent",
	    offsetof(struct server, greeting), "554 go away\r\n", 0, 5.,
	    SUBMIT_GREETING, "554 go away", "", 1, "" },
	{ "SMTPUTF8 needed and not offered: final", offsetof(struct server,
	    ehlo), "250-mx.test\r\n250 8BITMIME\r\n", 1, 5., SUBMIT_EHLO,
	    "250 mx.test", "the message names a UTF-8 address and the server "
	    "does not offer SMTPUTF8", 1, "EHLO helo.test\r\n" },
	{ "closed", offsetof(struct server, ehlo), NULL, 0, 5., SUBMIT_EHLO,
	    "", "connection closed by the server", 0, "EHLO helo.test\r\n" },
	{ "a reply before its command was sent passes for none",
	    offsetof(struct server, greeting), "220 mx.test\r\n250 mx.test\r\n",
	    0, 5., SUBMIT_EHLO, "", "the server spoke out of turn", 0, NULL },
	{ "... a 250 in the segment of the 354 too",
	    offsetof(struct server, data), "354 go ahead\r\n250 early\r\n", 0,
	    5., SUBMIT_DOT, "", "the server spoke out of turn", 0, NULL },
	{ "no SMTP at all", offsetof(struct server, greeting), "hello\r\n", 0,
	    5., SUBMIT_GREETING, "", "Reply code is not 3 digits", 0, "" },
	{ "silence: the step's time-out", offsetof(struct server, greeting), "",
	    0, 0.1, SUBMIT_GREETING, "", "timeout waiting for greeting", 0,
	    "" },
};

static void
failed(void)
{
	const struct failure *f;
	struct server *sv;
	struct submit s;
	struct submit_msg m = plain;
	size_t i;
	int failed_before = t_cur;

	for (i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
		f = &failures[i];
		t_cur = 0;
		sv = server_new();
		*(const char **)((char *)sv + f->at) = f->say;
		m.utf8 = f->utf8;
		run(sv, &s, &m, f->timeout);
		CHECK_INT(ended_ev, SUBMIT_FAILED);
		CHECK_STR(submit_step_name(s.step), submit_step_name(f->step));
		CHECK_STR(s.reply, f->reply);
		CHECK_STR(s.reason, f->reason);
		CHECK_INT(s.permanent, f->permanent);
		if (f->sent != NULL)
			CHECK_STR(got(sv), f->sent);
		server_free(sv);
		if (t_cur)
			fprintf(stderr, "  in: %s\n", f->what);
		failed_before |= t_cur;
	}
	t_cur = failed_before;
}

static void
smtputf8(void)
{
	struct server *sv = server_new();
	struct submit s;
	struct submit_msg m = plain;

	m.from = "a@example.org";
	m.utf8 = 1;
	run(sv, &s, &m, 5.);
	CHECK_INT(ended_ev, SUBMIT_DONE);
	CHECK(strstr(got(sv), "\r\nMAIL FROM:<a@example.org> BODY=8BITMIME "
	    "SMTPUTF8\r\n") != NULL);
	server_free(sv);
}

static void
refused_connection(void)
{
	struct server *sv = server_new();
	struct submit s;

	/* The port of a socket that listens no more. */
	ev_io_stop(loop, &sv->accept_w);
	close(sv->lfd);
	sv->lfd = -1;
	run(sv, &s, &plain, 5.);
	CHECK_INT(ended_ev, SUBMIT_FAILED);
	CHECK_STR(submit_step_name(s.step), "connect");
	CHECK(strstr(s.reason, "refused") != NULL);
	CHECK_INT(s.permanent, 0);
	server_free(sv);
}

/* Once the message is taken, nothing the server does undoes it. */
static void
taken(void)
{
	static const char *const quits[] = { NULL, "no SMTP here\r\n" };
	struct server *sv;
	struct submit s;
	size_t i;

	for (i = 0; i < sizeof(quits) / sizeof(quits[0]); i++) {
		sv = server_new();
		sv->quit = quits[i];
		run(sv, &s, &plain, 5.);
		CHECK_INT(ended_ev, SUBMIT_DONE);
		CHECK_STR(s.reply, "250 2.0.0 Ok: queued as 4Xk2");
		server_free(sv);
	}
}

/* Stopped by its owner: closed, and no callback. */
static void
stopped(void)
{
	struct server *sv = server_new();
	struct submit s;

	sv->greeting = "";
	memset(&s, 0, sizeof(s));
	ended = 0;
	submit_start(&s, loop, (struct sockaddr *)&sv->addr,
	    sizeof(sv->addr), &plain, 5., on_end, NULL);
	while (sv->fd == -1)
		ev_run(loop, EVRUN_ONCE);
	submit_free(&s);
	CHECK_INT(s.open, 0);
	while (sv->fd != -1) /* the server sees the end */
		ev_run(loop, EVRUN_ONCE);
	CHECK_INT(ended, 0);
	server_free(sv);

	/* Never started. */
	memset(&s, 0, sizeof(s));
	submit_free(&s);
	CHECK_INT(s.open, 0);
}

int
main(void)
{
	loop = ev_loop_new(EVFLAG_AUTO);

	RUN(delivered);
	RUN(smtputf8);
	RUN(failed);
	RUN(refused_connection);
	RUN(taken);
	RUN(stopped);

	ev_loop_destroy(loop);
	return T_DONE();
}
