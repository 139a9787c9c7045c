/*
 * One message handed to an SMTP server: greeting, EHLO, MAIL, RCPT,
 * DATA, the message, QUIT, over plain TCP (conn.c), one command at a
 * time, each step within its owner's time-out.  The owner hears once,
 * through one callback: done (the server took the message) or failed,
 * with the step, the server's reply and why.  The "relayed" notices
 * (dsnq.c) and the mailto: TLS reports (tlsrptsend.c) go this way.
 */
#ifndef MXTLS_SUBMIT_H
#define MXTLS_SUBMIT_H

#include <ev.h>
#include <stddef.h>
#include <sys/socket.h>

#include "conn.h"

enum submit_step {
	SUBMIT_CONNECT,
	SUBMIT_GREETING,
	SUBMIT_EHLO,
	SUBMIT_MAIL,
	SUBMIT_RCPT,
	SUBMIT_DATA, /* waiting for 354 */
	SUBMIT_BODY, /* writing the message */
	SUBMIT_DOT,  /* waiting for the reply to the final dot */
	SUBMIT_QUIT, /* the message is taken; the end of the session awaited */
};

enum submit_event {
	SUBMIT_DONE,   /* the server took the message */
	SUBMIT_FAILED, /* it did not: step, reply, reason and permanent say why */
};

struct submit;
typedef void submit_cb(struct submit *s, enum submit_event ev, void *arg);

/* What is sent.  The strings are the owner's, kept until the callback. */
struct submit_msg {
	const char *helo; /* our EHLO name */
	const char *from; /* the reverse-path; "" for the null one */
	const char *rcpt;
	int utf8;	  /* an address is UTF-8: the server must offer SMTPUTF8 */
	const char *data; /* what follows DATA: dot-stuffed, ending ".\r\n" */
	size_t len;
};

struct smtp_reply_parser;

struct submit {
	struct submit_msg m;
	double timeout; /* seconds per step */
	submit_cb *cb;
	void *arg;
	enum submit_step step; /* the step under way, or the one that failed */
	int open;	       /* c is live */
	struct conn c;
	struct smtp_reply_parser *rp; /* while under way */
	size_t off;		      /* of m.data, written */
	/*
	 * For the callback: the reply it ended on (code and first line:
	 * the one that took the message or refused it) or "", why it
	 * failed ("" when a reply refused), and whether another try cannot
	 * do better (a 5xx, no SMTPUTF8).
	 */
	char reply[600];
	char reason[320];
	int permanent;
};

/*
 * Hand m to the server at to.  cb follows once, the connection closed
 * by then (at once when none could be started), and s must outlive that
 * call: conn.c looks at s->c after it, so the owner frees s later.
 */
void submit_start(struct submit *s, struct ev_loop *loop,
    const struct sockaddr *to, socklen_t tolen, const struct submit_msg *m,
    double timeout, submit_cb *cb, void *arg);
/* Stop what is under way, with no callback.  A zeroed s is fine. */
void submit_free(struct submit *s);
/* The step's name, for the logs: "connect", "EHLO", "end of message"... */
const char *submit_step_name(enum submit_step step);

#endif
