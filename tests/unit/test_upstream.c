/*
 * proxy/upstream.c, the MX-facing client, driven alone: a recording
 * owner stands in for the session, the fakes of tests/unit/fake_*.c
 * (fakes.h) for the connections, the resolver, the clock and what a
 * handshake shows.  Each test checks the states the client goes
 * through, what the server was sent, and what the owner was told: the
 * contract session.c relies on.  Run from the repository root (the CA
 * bundle is ca-bundles/'s).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakes.h"
#include "log.h"
#include "metrics.h"
#include "runtime.h"
#include "state.h"
#include "t.h"
#include "upstream.h"

static struct runtime *rt_opp, *rt_mand;

static struct proxy px;
static struct up_route route;
static struct up_txn txn;
static struct up_sts sts;
static struct upstream u;

/* What the owner was told, in order. */
static struct {
	int n;
	enum up_event ev[8];
	int code[8];	      /* the reply's, 0 for none */
	char text[8][600];    /* the reply's first line, or the text */
	enum up_lift lift[8];
	enum up_state in[8];
} told;

/* The owner checks for unread bytes when it is told a reply, as the
 * session does when it goes back to the MTA's turn. */
static int check_unread;

static void
owner(void *arg, const struct up_report *rep)
{
	int i = told.n;

	(void)arg;
	if (i == 8)
		return;
	told.n++;
	told.ev[i] = rep->ev;
	told.code[i] = rep->r != NULL ? rep->r->code : 0;
	snprintf(told.text[i], sizeof(told.text[i]), "%s",
	    rep->sum != NULL && rep->r != NULL ? rep->sum :
	    rep->text != NULL ? rep->text : rep->reason != NULL ?
	    rep->reason : "");
	told.lift[i] = rep->lift;
	told.in[i] = rep->in;
	if (check_unread && rep->r != NULL)
		upstream_check_unread(&u);
}

/* The route to example.net under rt, with a transaction for bob. */
static void
begin(struct runtime *rt)
{
	char warning[256];

	memset(&px, 0, sizeof(px));
	memset(&route, 0, sizeof(route));
	memset(&txn, 0, sizeof(txn));
	memset(&sts, 0, sizeof(sts));
	memset(&u, 0, sizeof(u));
	memset(&told, 0, sizeof(told));
	check_unread = 0;
	px.loop = ev_loop_new(EVFLAG_AUTO);
	px.rt = rt;
	if ((px.state = state_open(NULL, warning, sizeof(warning))) == NULL) {
		fprintf(stderr, "state_open: %s\n", warning);
		exit(2);
	}
	px.sts = fake_sts;
	upcache_init(&px.cache, px.loop);
	fake_clock_reset();
	fake_sts_reset();
	metrics_reset();
	upstream_init(&u, &px, rt, 1, &route, &txn, &sts, owner, NULL);
	if (policy_lookup(rt->policy, "bob@example.net", &route.dec) !=
	    POLICY_OK)
		exit(2);
	route.have = 1;
	snprintf(route.domain, sizeof(route.domain), "example.net");
	CHECK_INT(upstream_route_id(&u, &route.dec, 0, 0, route.key), 0);
	snprintf(txn.mail_from, sizeof(txn.mail_from), "alice@example.org");
	snprintf(txn.rcpt, sizeof(txn.rcpt), "bob@example.net");
	sts.max_age = -1;
}

static void
end(void)
{
	upstream_free(&u);
	CHECK_INT(fake_dns_pending(), 0);
	upcache_free(&px.cache);
	state_free(px.state);
	ev_loop_destroy(px.loop);
	fake_conn_reset();
}

/* The server says `reply`; the client's answer is `sent` (or nothing). */
static void
server(const char *reply, const char *sent, enum up_state then)
{
	fake_conn_send(fake_conn_last(1), reply, strlen(reply));
	fake_conn_pump();
	CHECK_STR(fake_conn_take(1), sent != NULL ? sent : "");
	CHECK_STR(up_state_name(u.state), up_state_name(then));
}

/* From the route to the server's EHLO reply inside TLS, and MAIL/RCPT. */
static void
reach_rcpt(const char *cert)
{
	upstream_open(&u);
	CHECK_STR(up_state_name(u.state), "up-resolve");
	CHECK_INT(fake_dns_answer(FAKE_DNS_MX, "example.net mx1.example.net"),
	    0);
	CHECK_INT(fake_dns_answer(FAKE_DNS_ADDR, "mx1.example.net 192.0.2.10"),
	    0);
	CHECK_STR(up_state_name(u.state), "up-connect");
	CHECK_INT(fake_conn_event(fake_conn_last(1), CONN_EV_CONNECTED), 0);
	CHECK_STR(up_state_name(u.state), "up-greeting");
	server("220 mx1.example.net ESMTP\r\n", "EHLO mxtls.test\r\n",
	    UP_EHLO);
	server("250-mx1.example.net\r\n250 STARTTLS\r\n", "STARTTLS\r\n",
	    UP_STARTTLS);
	server("220 2.0.0 Go ahead\r\n", NULL, UP_TLS);
	CHECK_INT(fake_tls_cert(cert), 0);
	CHECK_INT(fake_conn_event(fake_conn_last(1), CONN_EV_TLS_READY), 0);
	fake_conn_pump();
}

/* On to the message: MAIL, RCPT and DATA accepted. */
static void
reach_body(void)
{
	reach_rcpt("ok");
	fake_conn_take(1);
	server("250 mx1.example.net\r\n", "MAIL FROM:<alice@example.org>\r\n",
	    UP_MAIL);
	server("250 2.1.0 Ok\r\n", "RCPT TO:<bob@example.net>\r\n", UP_RCPT);
	server("250 2.1.5 Ok\r\n", NULL, UP_TXN);
	upstream_data(&u);
	fake_conn_take(1);
	server("354 Go on\r\n", NULL, UP_BODY);
}

/* Every state has a name of its own, as logs and tests know it. */
static void
test_state_names(void)
{
	int a, b;

	for (a = UP_NONE; a <= UP_IDLE; a++) {
		CHECK(strncmp(up_state_name((enum up_state)a), "up-", 3) == 0);
		for (b = UP_NONE; b < a; b++)
			CHECK(strcmp(up_state_name((enum up_state)a),
			    up_state_name((enum up_state)b)) != 0);
	}
}

/* The whole delivery, and what the owner hears of it: RCPT, DATA, dot. */
static void
test_delivery_reports_each_reply(void)
{
	static const char msg[] = "Subject: hi\r\n\r\nbody\r\n.\r\n";

	begin(rt_opp);
	reach_rcpt("ok");
	CHECK_STR(fake_conn_take(1), "EHLO mxtls.test\r\n");
	CHECK_STR(up_state_name(u.state), "up-ehlo-tls");
	server("250 mx1.example.net\r\n", "MAIL FROM:<alice@example.org>\r\n",
	    UP_MAIL);
	/* MAIL's 250 is the client's own business: RCPT follows. */
	server("250 2.1.0 Ok\r\n", "RCPT TO:<bob@example.net>\r\n", UP_RCPT);
	CHECK_INT(told.n, 0);
	server("250 2.1.5 Ok\r\n", NULL, UP_TXN);
	CHECK_INT(told.n, 1);
	CHECK_INT(told.ev[0], UP_EV_RCPT);
	CHECK_INT(told.code[0], 250);
	upstream_data(&u);
	CHECK_STR(fake_conn_take(1), "DATA\r\n");
	server("354 Go on\r\n", NULL, UP_BODY);
	CHECK_INT(told.ev[1], UP_EV_DATA);
	CHECK_INT(told.code[1], 354);
	CHECK_INT(upstream_body(&u, msg, sizeof(msg) - 1), 0);
	upstream_dot(&u);
	CHECK_STR(fake_conn_take(1), msg);
	CHECK_STR(up_state_name(u.state), "up-data-end");
	server("250 2.0.0 queued\r\n", NULL, UP_IDLE);
	CHECK_INT(told.n, 3);
	CHECK_INT(told.ev[2], UP_EV_DOT);
	CHECK_STR(told.text[2], "250 2.0.0 queued");
	CHECK(!u.txn_open);
	end();
}

/* A refused MAIL is the owner's to answer; the connection stays. */
static void
test_mail_refused_is_reported(void)
{
	begin(rt_opp);
	reach_rcpt("ok");
	fake_conn_take(1);
	server("250 mx1.example.net\r\n", "MAIL FROM:<alice@example.org>\r\n",
	    UP_MAIL);
	server("421 4.3.2 busy\r\n", NULL, UP_IDLE);
	CHECK_INT(told.n, 1);
	CHECK_INT(told.ev[0], UP_EV_MAIL);
	CHECK_INT(told.code[0], 421);
	CHECK(u.open);
	end();
}

/*
 * A TLS failure is the failure table's, and its reply says which policy
 * failed: the local profile's (lifted only where the operator allows)
 * or the recipient domain's (MTA-STS).
 */
static void
test_tls_failure_names_its_policy(void)
{
	static const struct {
		const char *name;
		int mandatory, sts;
		enum up_lift lift;
		const char *reply;
	} rows[] = {
		{ "mandatory, expired", 1, 0, UP_LIFT_LOCAL,
		    "451 4.7.5 TLS to mx1.example.net[192.0.2.10]:25 for "
		    "domain example.net failed: " },
		{ "MTA-STS enforce, expired", 1, 1, UP_LIFT_POLICY,
		    "451 4.7.5 TLS to mx1.example.net[192.0.2.10]:25 for "
		    "domain example.net failed: " },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		begin(rows[i].mandatory ? rt_mand : rt_opp);
		route.sts = rows[i].sts;
		reach_rcpt("expired");
		CHECK_INT(told.n, 1);
		CHECK_INT(told.ev[0], UP_EV_FAILED);
		CHECK_INT(told.lift[0], rows[i].lift);
		if (strncmp(told.text[0], rows[i].reply,
		    strlen(rows[i].reply)) != 0) {
			fprintf(stderr, "%s: told \"%s\"\n", rows[i].name,
			    told.text[0]);
			t_cur = 1;
		}
		CHECK_INT(state_total(px.state), 1);
		CHECK(!u.open);
		end();
	}
}

/*
 * Bytes after a reply that no command asked for: the owner's check
 * finds them before it sends anything else, and the connection is lost
 * where the transaction stood.
 */
static void
test_reply_ahead_is_lost(void)
{
	begin(rt_opp);
	check_unread = 1;
	reach_rcpt("ok");
	fake_conn_take(1);
	server("250 mx1.example.net\r\n", "MAIL FROM:<alice@example.org>\r\n",
	    UP_MAIL);
	server("250 2.1.0 Ok\r\n", "RCPT TO:<bob@example.net>\r\n", UP_RCPT);
	server("250 2.1.5 Ok\r\n354 early\r\n", NULL, UP_NONE);
	CHECK_INT(told.n, 2);
	CHECK_INT(told.ev[0], UP_EV_RCPT);
	CHECK_INT(told.ev[1], UP_EV_LOST);
	CHECK_INT(told.in[1], UP_TXN);
	CHECK_STR(told.text[1], "server replied before the command");
	CHECK(!u.open);
	end();
}

/* A reply the protocol does not allow after the dot is never a 250. */
static void
test_protocol_error_at_the_dot(void)
{
	begin(rt_opp);
	reach_body();
	upstream_dot(&u);
	/* Cleanly answered, so it is told goodbye (through the cache). */
	server("354 again\r\n", "QUIT\r\n", UP_NONE);
	CHECK_INT(told.n, 3);
	CHECK_INT(told.ev[2], UP_EV_DOT);
	CHECK_INT(told.code[2], 0);
	CHECK_STR(told.text[2], "451 4.5.0 Protocol error: "
	    "mx1.example.net[192.0.2.10]:25 answered \"354 again\" to the end "
	    "of the message");
	end();
}

/* The connection lost while the message goes up: the owner decides. */
static void
test_lost_in_the_body(void)
{
	begin(rt_opp);
	reach_body();
	CHECK_INT(fake_conn_event(fake_conn_last(1), CONN_EV_EOF), 0);
	CHECK_INT(told.n, 3);
	CHECK_INT(told.ev[2], UP_EV_LOST);
	CHECK_INT(told.in[2], UP_BODY);
	CHECK_STR(told.text[2], "connection closed by server");
	end();
}

/* No MX host at all: a failure of the route, nothing to lift. */
static void
test_nxdomain_fails_the_route(void)
{
	begin(rt_opp);
	upstream_open(&u);
	CHECK_INT(fake_dns_answer(FAKE_DNS_MX, "example.net NXDOMAIN"), 0);
	CHECK_INT(told.n, 1);
	CHECK_INT(told.ev[0], UP_EV_FAILED);
	CHECK_INT(told.lift[0], UP_LIFT_NONE);
	CHECK_STR(told.text[0], "550 5.1.2 Domain example.net does not exist");
	end();
}

int
main(void)
{
	log_setup(CONFIG_LOG_LOGFMT, CONFIG_LOG_ERROR);
	fake_runtimes("test-upstream", &rt_opp, &rt_mand);

	RUN(test_state_names);
	RUN(test_delivery_reports_each_reply);
	RUN(test_mail_refused_is_reported);
	RUN(test_tls_failure_names_its_policy);
	RUN(test_reply_ahead_is_lost);
	RUN(test_protocol_error_at_the_dot);
	RUN(test_lost_in_the_body);
	RUN(test_nxdomain_fails_the_route);

	runtime_release(rt_opp);
	runtime_release(rt_mand);
	return T_DONE();
}
