/*
 * proxy/session.c, the whole relay session, driven without sockets: the
 * connections, the resolver, the MTA-STS cache, the clock and what a
 * handshake shows are the fakes of tests/unit/fake_*.c (fakes.h), the
 * rest (config, policy, failure table, retry records, connection cache,
 * SMTP parsing) is the real code.  Each test plays scripts of steps,
 * each step something the MTA, the upstream server or the DNS does, with
 * exactly what the MTA and the upstream were sent in answer (the codes
 * are docs/behaviour.md's); time moves between scripts.  libev is real,
 * for the session reaper (proxy_sessions_init): its loop runs once at
 * the end of a test, without waiting, to free the closed sessions.  Run
 * from the repository root (tests/run.sh does): the CA bundle is
 * ca-bundles/'s.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakes.h"
#include "log.h"
#include "metrics.h"
#include "runtime.h"
#include "session.h"
#include "state.h"
#include "t.h"

/* Config files: default opportunistic, default mandatory. */
static struct runtime *rt_opp, *rt_mand;

/* The proxy of the running test. */
static struct proxy px;

enum act {
	END,	   /* of a script */
	ACCEPT,	   /* the MTA connects */
	MTA,	   /* the MTA sends arg */
	MX,	   /* an MX query is answered: fake_dns_answer's spec */
	ADDR,	   /* an address query is answered */
	TLSA,	   /* a TLSA query is answered */
	STS,	   /* the MTA-STS lookup is answered: fake_sts_answer's */
	CONNECTED, /* the connect to arg ("ADDR:PORT") finished */
	UP,	   /* the upstream sends arg */
	TLS,	   /* the handshake finished; arg: the certificate */
	UP_EOF,	   /* the upstream closed the connection */
	UP_ERROR,  /* the upstream connection failed */
	UP_TIMEOUT, /* the upstream connection's deadline passed */
	MTA_TIMEOUT, /* the MTA connection's deadline passed */
};

static const char *const act_names[] = {
	[END] = "end", [ACCEPT] = "accept", [MTA] = "mta", [MX] = "mx",
	[ADDR] = "addr", [TLSA] = "tlsa", [STS] = "sts",
	[CONNECTED] = "connected", [UP] = "up", [TLS] = "tls",
	[UP_EOF] = "up-eof", [UP_ERROR] = "up-error",
	[UP_TIMEOUT] = "up-timeout", [MTA_TIMEOUT] = "mta-timeout",
};

struct step {
	enum act act;
	const char *arg;
	const char *mta; /* all the MTA was sent in answer (NULL: nothing) */
	const char *up;	 /* all the upstream was sent (NULL: nothing) */
};

/* The name of the table row being played, for the reports. */
static const char *t_ctx = "";

/* CR and LF shown, for texts that differ. */
static const char *
show(const char *s)
{
	static char buf[2][2048];
	static int which;
	char *o = buf[which ^= 1];
	size_t n = 0;

	for (; *s != '\0' && n < sizeof(buf[0]) - 3; s++) {
		if (*s == '\r' || *s == '\n') {
			o[n++] = '\\';
			o[n++] = *s == '\r' ? 'r' : 'n';
		} else
			o[n++] = *s;
	}
	o[n] = '\0';
	return o;
}

static int
act(const struct step *st)
{
	struct fake_conn *mta = fake_conn_last(0), *up = fake_conn_last(1);
	int fd;

	switch (st->act) {
	case END:
		break;
	case ACCEPT:
		/* The session owns the fd: a real one, so closing it is too. */
		if ((fd = open("/dev/null", O_RDWR)) == -1)
			return -1;
		session_accept(&px, fd);
		return 0;
	case MTA:
		if (mta == NULL || fake_conn_closed(mta))
			return -1;
		fake_conn_send(mta, st->arg, strlen(st->arg));
		return 0;
	case MX:
		return fake_dns_answer(FAKE_DNS_MX, st->arg);
	case ADDR:
		return fake_dns_answer(FAKE_DNS_ADDR, st->arg);
	case TLSA:
		return fake_dns_answer(FAKE_DNS_TLSA, st->arg);
	case STS:
		return fake_sts_answer(st->arg);
	case CONNECTED:
		if (up == NULL || strcmp(fake_conn_dst(up), st->arg) != 0)
			return -1;
		return fake_conn_event(up, CONN_EV_CONNECTED);
	case UP:
		if (up == NULL || fake_conn_closed(up))
			return -1;
		fake_conn_send(up, st->arg, strlen(st->arg));
		return 0;
	case TLS:
		if (up == NULL || fake_tls_cert(st->arg) == -1)
			return -1;
		return fake_conn_event(up, CONN_EV_TLS_READY);
	case UP_EOF:
		return up != NULL ? fake_conn_event(up, CONN_EV_EOF) : -1;
	case UP_ERROR:
		return up != NULL ? fake_conn_event(up, CONN_EV_ERROR) : -1;
	case UP_TIMEOUT:
		return up != NULL ? fake_conn_event(up, CONN_EV_TIMEOUT) : -1;
	case MTA_TIMEOUT:
		return mta != NULL ? fake_conn_event(mta, CONN_EV_TIMEOUT) : -1;
	}
	return -1;
}

/*
 * Run a script up to its first step that goes wrong (those after it
 * would only tell the same story); line: where it was played.
 */
static void
play(const struct step *st, int line)
{
	const char *got, *want;
	int i, bad = 0;

	for (i = 0; st[i].act != END && !bad; i++) {
		if (act(&st[i]) == -1) {
			fprintf(stderr, "%s:%d:%s step %d (%s %s) could not "
			    "happen\n", __FILE__, line, t_ctx, i,
			    act_names[st[i].act], show(st[i].arg ? st[i].arg :
			    ""));
			bad = 1;
			break;
		}
		fake_conn_pump();
		got = fake_conn_take(0);
		want = st[i].mta ? st[i].mta : "";
		if (strcmp(got, want) != 0) {
			fprintf(stderr, "%s:%d:%s step %d (%s): the MTA got "
			    "\"%s\", want \"%s\"\n", __FILE__, line, t_ctx, i,
			    act_names[st[i].act], show(got), show(want));
			bad = 1;
		}
		got = fake_conn_take(1);
		want = st[i].up ? st[i].up : "";
		if (strcmp(got, want) != 0) {
			fprintf(stderr, "%s:%d:%s step %d (%s): the upstream "
			    "got \"%s\", want \"%s\"\n", __FILE__, line, t_ctx,
			    i, act_names[st[i].act], show(got), show(want));
			bad = 1;
		}
	}
	if (bad)
		t_cur = 1;
}

#define PLAY(script) play((script), __LINE__)

/* A fresh proxy (its own retry records and cache) on rt. */
static void
begin(struct runtime *rt, int with_sts)
{
	char warning[256];

	memset(&px, 0, sizeof(px));
	px.loop = ev_loop_new(EVFLAG_AUTO);
	px.rt = rt;
	if ((px.state = state_open(NULL, warning, sizeof(warning))) == NULL) {
		fprintf(stderr, "state_open: %s\n", warning);
		exit(2);
	}
	px.sts = with_sts ? fake_sts : NULL;
	proxy_sessions_init(&px);
	fake_clock_reset();
	fake_sts_reset();
	metrics_reset();
	t_ctx = "";
}

/*
 * Close what is left as shutdown does; closing must have cancelled every
 * query still out.
 */
static void
end(void)
{
	session_close_all(&px, "421 4.3.2 mxtls.test Service shutting down");
	ev_run(px.loop, EVRUN_NOWAIT); /* the reaper frees the sessions */
	upcache_free(&px.cache);
	CHECK_INT(fake_dns_pending(), 0);
	CHECK_INT(fake_sts_pending(), 0);
	state_free(px.state);
	ev_loop_destroy(px.loop);
	fake_conn_reset();
}

/* --- scripts -------------------------------------------------------------- */

#define GREETING "220 mxtls.test ESMTP mxtls\r\n"
#define EHLO_REPLY "250-mxtls.test\r\n250-PIPELINING\r\n" \
	"250-SIZE 52428800\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n" \
	"250-REQUIRETLS\r\n250 SMTPUTF8\r\n"
#define WHERE "mx1.example.net[192.0.2.10]:25"
/* Dot-stuffed, CRLF only: it must arrive upstream as it is. */
#define MESSAGE "From: alice@example.org\r\nSubject: hello\r\n\r\n" \
	"..a line that starts with a dot\r\nbye\r\n.\r\n"
#define RETRY_AT "2026-01-01T00:05:00Z" /* the start + retry_delay */

/* An MTA session up to its RCPT for bob@example.net. */
static const struct step open_txn[] = {
	{ ACCEPT, NULL, GREETING, NULL },
	{ MTA, "EHLO mta.test\r\n", EHLO_REPLY, NULL },
	{ MTA, "MAIL FROM:<alice@example.org>\r\n", "250 2.1.0 Ok\r\n", NULL },
	{ MTA, "RCPT TO:<bob@example.net>\r\n", NULL, NULL },
	{ END },
};

/* The MX of example.net is found, dialled, and greets. */
static const struct step reach_mx1[] = {
	{ MX, "example.net mx1.example.net", NULL, NULL },
	{ ADDR, "mx1.example.net 192.0.2.10", NULL, NULL },
	{ CONNECTED, "192.0.2.10:25", NULL, NULL },
	{ UP, "220 mx1.example.net ESMTP\r\n", NULL, "EHLO mxtls.test\r\n" },
	{ END },
};

/* It offers STARTTLS and says go ahead. */
static const struct step starttls[] = {
	{ UP, "250-mx1.example.net\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
	    NULL, "STARTTLS\r\n" },
	{ UP, "220 2.0.0 Ready to start TLS\r\n", NULL, NULL },
	{ END },
};

/* A good certificate, and the RCPT is accepted. */
static const struct step tls_to_rcpt[] = {
	{ TLS, "ok", NULL, "EHLO mxtls.test\r\n" },
	{ UP, "250-mx1.example.net\r\n250 PIPELINING\r\n", NULL,
	    "MAIL FROM:<alice@example.org>\r\n" },
	{ UP, "250 2.1.0 Ok\r\n", NULL, "RCPT TO:<bob@example.net>\r\n" },
	{ UP, "250 2.1.5 Ok\r\n", "250 2.1.5 Ok\r\n", NULL },
	{ END },
};

/* DATA up to the message's end, sent upstream. */
static const struct step message[] = {
	{ MTA, "DATA\r\n", NULL, "DATA\r\n" },
	{ UP, "354 End data with <CR><LF>.<CR><LF>\r\n",
	    "354 End data with <CR><LF>.<CR><LF>\r\n", NULL },
	{ MTA, MESSAGE, NULL, MESSAGE },
	{ END },
};

/* The dot's 250, with how the message left on its last line. */
static const struct step queued_tls[] = {
	{ UP, "250 2.0.0 Ok: queued as 4Xk2\r\n", "250 2.0.0 Ok: queued as "
	    "4Xk2 [mxtls: TLSv1.3 verified mx1.example.net]\r\n", NULL },
	{ END },
};

/*
 * The MTA ends its session.  Nothing goes upstream: a verified idle
 * connection stays in the cache, a failed one had its QUIT already.
 */
static const struct step quit[] = {
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", NULL },
	{ END },
};

/* --- a delivery ----------------------------------------------------------- */

static void
test_clean_delivery_over_verified_tls(void)
{
	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(reach_mx1);
	PLAY(starttls);
	/* Named by the MX host it dialled, checked against that name. */
	CHECK_STR(fake_conn_sni(fake_conn_last(1)), "mx1.example.net");
	PLAY(tls_to_rcpt);
	CHECK_STR(fake_tls_names(), "mx1.example.net");
	CHECK_INT(fake_tls_flags(), TLS_NAME_CN_FALLBACK);
	PLAY(message);
	PLAY(queued_tls);
	PLAY(quit);
	CHECK_INT(fake_conn_connects(), 1);
	CHECK_INT(state_total(px.state), 0);
	CHECK_INT(metrics_value("mxtls_deliveries_total",
	    "outcome=\"tls\",profile=\"opportunistic\""), 1);
	end();
}

/* Without STARTTLS, opportunistic mail goes in the clear at once. */
static void
test_no_starttls_opportunistic_goes_in_the_clear(void)
{
	static const struct step clear[] = {
		{ UP, "250-mx1.example.net\r\n250 PIPELINING\r\n", NULL,
		    "MAIL FROM:<alice@example.org>\r\n" },
		{ UP, "250 2.1.0 Ok\r\n", NULL,
		    "RCPT TO:<bob@example.net>\r\n" },
		{ UP, "250 2.1.5 Ok\r\n", "250 2.1.5 Ok\r\n", NULL },
		{ END },
	};
	static const struct step queued[] = {
		{ UP, "250 2.0.0 Ok: queued as 4Xk2\r\n", "250 2.0.0 Ok: "
		    "queued as 4Xk2 [mxtls: plaintext, no STARTTLS, "
		    "mx1.example.net]\r\n", NULL },
		/* Never cached: the clear is no route's verified upstream. */
		{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", "QUIT\r\n" },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(reach_mx1);
	PLAY(clear);
	PLAY(message);
	PLAY(queued);
	CHECK_INT(state_total(px.state), 0);
	end();
}

/* --- the failure table (docs/behaviour.md section 7) --------------------- */

/* How TLS fails at the first attempt, and what the MTA is told. */
static const struct step starttls_refused[] = {
	{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL, "STARTTLS\r\n" },
	{ UP, "454 4.7.0 TLS not available\r\n", "451 4.7.5 TLS to " WHERE
	    " for domain example.net failed: 454 4.7.0 TLS not available; "
	    "retry after " RETRY_AT "\r\n", "QUIT\r\n" },
	{ END },
};

static const struct step cert_expired[] = {
	{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL, "STARTTLS\r\n" },
	{ UP, "220 2.0.0 Go ahead\r\n", NULL, NULL },
	{ TLS, "expired", "451 4.7.5 TLS to " WHERE " for domain example.net "
	    "failed: certificate has expired; retry after " RETRY_AT "\r\n",
	    "QUIT\r\n" },
	{ END },
};

/* A failed handshake leaves nothing to say QUIT on. */
static const struct step handshake_failed[] = {
	{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL, "STARTTLS\r\n" },
	{ UP, "220 2.0.0 Go ahead\r\n", NULL, NULL },
	{ UP_ERROR, NULL, "451 4.7.5 TLS to " WHERE " for domain example.net "
	    "failed: handshake failure (alert 40); retry after " RETRY_AT
	    "\r\n", NULL },
	{ END },
};

static const struct step no_starttls_mandatory[] = {
	{ UP, "250 mx1.example.net\r\n", "451 4.7.5 TLS to " WHERE " for "
	    "domain example.net failed: server does not offer STARTTLS; "
	    "retry after " RETRY_AT "\r\n", "QUIT\r\n" },
	{ END },
};

/* The retry: the fallback in the clear, on a fresh connection. */
static const struct step fallback[] = {
	{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL, "STARTTLS\r\n" },
	{ UP, "454 4.7.0 TLS not available\r\n", NULL, "QUIT\r\n" },
	{ CONNECTED, "192.0.2.10:25", NULL, NULL },
	{ UP, "220 mx1.example.net ESMTP\r\n", NULL, "EHLO mxtls.test\r\n" },
	/* STARTTLS offered, and not used: that is the fallback. */
	{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL,
	    "MAIL FROM:<alice@example.org>\r\n" },
	{ UP, "250 2.1.0 Ok\r\n", NULL, "RCPT TO:<bob@example.net>\r\n" },
	{ UP, "250 2.1.5 Ok\r\n", "250 2.1.5 Ok\r\n", NULL },
	{ MTA, "DATA\r\n", NULL, "DATA\r\n" },
	{ UP, "354 Go ahead\r\n", "354 Go ahead\r\n", NULL },
	{ MTA, MESSAGE, NULL, MESSAGE },
	{ UP, "250 2.0.0 Ok\r\n", "250 2.0.0 Ok [mxtls: plaintext, after a "
	    "TLS failure, mx1.example.net]\r\n", NULL },
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", "QUIT\r\n" },
	{ END },
};

/* While the host is marked broken: the clear at once, no STARTTLS. */
static const struct step fallback_at_once[] = {
	{ ADDR, "mx1.example.net 192.0.2.10", NULL, NULL },
	{ CONNECTED, "192.0.2.10:25", NULL, NULL },
	{ UP, "220 mx1.example.net ESMTP\r\n", NULL, "EHLO mxtls.test\r\n" },
	{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL,
	    "MAIL FROM:<alice@example.org>\r\n" },
	{ UP, "250 2.1.0 Ok\r\n", NULL, "RCPT TO:<bob@example.net>\r\n" },
	{ UP, "250 2.1.5 Ok\r\n", "250 2.1.5 Ok\r\n", NULL },
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", "QUIT\r\n" },
	{ END },
};

static const struct step cert_expired_final[] = {
	{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL, "STARTTLS\r\n" },
	{ UP, "220 2.0.0 Go ahead\r\n", NULL, NULL },
	{ TLS, "expired", "550 5.7.5 TLS to " WHERE " for domain example.net "
	    "failed again: certificate has expired (profile opportunistic)"
	    "\r\n", "QUIT\r\n" },
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", NULL },
	{ END },
};

static const struct step cert_expired_broken[] = {
	{ ADDR, "mx1.example.net 192.0.2.10", "550 5.7.5 TLS to " WHERE " for "
	    "domain example.net failed again: certificate has expired "
	    "(profile opportunistic)\r\n", NULL },
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", NULL },
	{ END },
};

static const struct step handshake_final[] = {
	{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL, "STARTTLS\r\n" },
	{ UP, "220 2.0.0 Go ahead\r\n", NULL, NULL },
	{ UP_ERROR, NULL, "550 5.7.5 TLS to " WHERE " for domain example.net "
	    "failed again: handshake failure (alert 40) (profile mandatory)"
	    "\r\n", NULL },
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", NULL },
	{ END },
};

static const struct step handshake_broken[] = {
	{ ADDR, "mx1.example.net 192.0.2.10", "550 5.7.5 TLS to " WHERE " for "
	    "domain example.net failed again: handshake failure (alert 40) "
	    "(profile mandatory)\r\n", NULL },
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", NULL },
	{ END },
};

static const struct step no_starttls_final[] = {
	{ UP, "250 mx1.example.net\r\n", "550 5.7.10 " WHERE " does not offer "
	    "STARTTLS and profile mandatory requires TLS for domain "
	    "example.net\r\n", "QUIT\r\n" },
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", NULL },
	{ END },
};

static const struct step no_starttls_broken[] = {
	{ ADDR, "mx1.example.net 192.0.2.10", "550 5.7.10 " WHERE " does not "
	    "offer STARTTLS and profile mandatory requires TLS for domain "
	    "example.net\r\n", NULL },
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", NULL },
	{ END },
};

/* The retry works: delivered over TLS, the record gone. */
static const struct step retry_works[] = {
	{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL, "STARTTLS\r\n" },
	{ UP, "220 2.0.0 Go ahead\r\n", NULL, NULL },
	{ TLS, "ok", NULL, "EHLO mxtls.test\r\n" },
	{ UP, "250 mx1.example.net\r\n", NULL,
	    "MAIL FROM:<alice@example.org>\r\n" },
	{ UP, "250 2.1.0 Ok\r\n", NULL, "RCPT TO:<bob@example.net>\r\n" },
	{ UP, "250 2.1.5 Ok\r\n", "250 2.1.5 Ok\r\n", NULL },
	{ MTA, "QUIT\r\n", "221 2.0.0 mxtls.test Bye\r\n", "QUIT\r\n" },
	{ END },
};

static const struct {
	const char *name;
	struct runtime **rt;
	/* From the reply to EHLO to the first 451: */
	const struct step *fail;
	const char *first;	  /* that 451, again inside retry_delay */
	/* After retry_delay, from the reply to EHLO to the MTA's QUIT: */
	const struct step *retry;
	/* Within fallback_ttl, from the address answer to the MTA's QUIT
	 * (NULL: the retry worked): */
	const struct step *broken;
} table[] = {
	{ "opportunistic, STARTTLS refused", &rt_opp, starttls_refused,
	    "451 4.7.5 TLS to " WHERE " for domain example.net failed: 454 "
	    "4.7.0 TLS not available; retry after " RETRY_AT "\r\n",
	    fallback, fallback_at_once },
	{ "opportunistic, certificate expired", &rt_opp, cert_expired,
	    "451 4.7.5 TLS to " WHERE " for domain example.net failed: "
	    "certificate has expired; retry after " RETRY_AT "\r\n",
	    cert_expired_final, cert_expired_broken },
	{ "mandatory, handshake failed", &rt_mand, handshake_failed,
	    "451 4.7.5 TLS to " WHERE " for domain example.net failed: "
	    "handshake failure (alert 40); retry after " RETRY_AT "\r\n",
	    handshake_final, handshake_broken },
	{ "mandatory, no STARTTLS", &rt_mand, no_starttls_mandatory,
	    "451 4.7.5 TLS to " WHERE " for domain example.net failed: "
	    "server does not offer STARTTLS; retry after " RETRY_AT "\r\n",
	    no_starttls_final, no_starttls_broken },
	{ "mandatory, the retry works", &rt_mand, handshake_failed,
	    "451 4.7.5 TLS to " WHERE " for domain example.net failed: "
	    "handshake failure (alert 40); retry after " RETRY_AT "\r\n",
	    retry_works, NULL },
};

/*
 * Each row, one MTA session per attempt: the first failure (451, a
 * record), an attempt inside retry_delay (the same 451 with no
 * connection), the one retry after it, an attempt within fallback_ttl
 * (the retry's outcome without TLS being tried again), and one after
 * fallback_ttl (the cycle again: STARTTLS is tried).
 */
static void
test_failure_table(void)
{
	struct step inside[] = {
		{ ADDR, "mx1.example.net 192.0.2.10", NULL, NULL },
		{ END },
	};
	static const struct step mx[] = {
		{ MX, "example.net mx1.example.net", NULL, NULL },
		{ END },
	};
	static const struct step again[] = {
		{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL,
		    "STARTTLS\r\n" },
		{ END },
	};
	size_t i;
	int n;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		begin(*table[i].rt, 0);
		t_ctx = table[i].name;
		PLAY(open_txn);
		PLAY(reach_mx1);
		PLAY(table[i].fail);
		PLAY(quit);
		CHECK_INT(state_count(px.state, RETRY_FAILED_ONCE), 1);

		fake_clock_advance(299);
		n = fake_conn_connects();
		PLAY(open_txn);
		PLAY(mx);
		inside[0].mta = table[i].first;
		PLAY(inside);
		CHECK_INT(fake_conn_connects(), n);
		PLAY(quit);

		fake_clock_advance(1);
		PLAY(open_txn);
		PLAY(reach_mx1);
		PLAY(table[i].retry);
		if (table[i].broken == NULL) {
			CHECK_INT(state_total(px.state), 0);
			end();
			continue;
		}
		CHECK_INT(state_count(px.state, RETRY_BROKEN), 1);

		fake_clock_advance(3599);
		n = fake_conn_connects();
		PLAY(open_txn);
		PLAY(mx);
		PLAY(table[i].broken);
		/* The fallback dials once more; a bounce dials nothing. */
		CHECK_INT(fake_conn_connects(), n +
		    (table[i].broken == fallback_at_once));

		fake_clock_advance(1);
		PLAY(open_txn);
		PLAY(reach_mx1);
		PLAY(again);
		end();
	}
}

/* --- what the MTA is told about the DNS ----------------------------------- */

/* The MX answer alone decides: no host is contacted. */
static void
test_dns_outcomes(void)
{
	static const struct {
		const char *mx;
		const char *reply;
	} t[] = {
		{ "example.net NXDOMAIN",
		    "550 5.1.2 Domain example.net does not exist\r\n" },
		{ "example.net NULLMX", "556 5.1.10 Domain example.net accepts "
		    "no mail (null MX, RFC 7505)\r\n" },
		{ "example.net TEMPFAIL", "451 4.4.3 DNS lookup for example.net "
		    "failed: SERVFAIL\r\n" },
		{ "example.net mx1.example.net bogus",
		    "451 4.7.5 DNSSEC validation failed\r\n" },
	};
	struct step answer[] = {
		{ MX, NULL, NULL, NULL },
		{ END },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		begin(rt_opp, 0);
		t_ctx = t[i].mx;
		PLAY(open_txn);
		answer[0].arg = t[i].mx;
		answer[0].mta = t[i].reply;
		PLAY(answer);
		CHECK_INT(fake_conn_connects(), 0);
		end();
	}
}

/* An MX host that cannot be reached: the next one, as Postfix does. */
static void
test_next_mx_when_one_is_unreachable(void)
{
	static const struct step script[] = {
		{ MX, "example.net mx0.example.net mx1.example.net", NULL, NULL },
		{ ADDR, "mx0.example.net 192.0.2.9", NULL, NULL },
		{ UP_ERROR, NULL, NULL, NULL },
		{ ADDR, "mx1.example.net 192.0.2.10", NULL, NULL },
		{ CONNECTED, "192.0.2.10:25", NULL, NULL },
		{ UP, "220 mx1.example.net ESMTP\r\n", NULL,
		    "EHLO mxtls.test\r\n" },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(script);
	PLAY(starttls);
	PLAY(tls_to_rcpt);
	CHECK_INT(fake_conn_connects(), 2);
	/* Unreachable is no TLS verdict: no record against mx0. */
	CHECK_INT(state_total(px.state), 0);
	end();
}

/* --- deadlines ---------------------------------------------------------------- */

/*
 * One MX host after another never outlasts rcpt_timeout (240 s), the
 * MTA's own patience: a greeting may take 300 s, but not past it.
 */
static void
test_rcpt_timeout_caps_the_upstream(void)
{
	static const struct step mx0[] = {
		{ MX, "example.net mx0.example.net mx1.example.net", NULL, NULL },
		{ ADDR, "mx0.example.net 192.0.2.9", NULL, NULL },
		{ END },
	};
	static const struct step mx1[] = {
		{ UP_TIMEOUT, NULL, NULL, NULL },
		{ ADDR, "mx1.example.net 192.0.2.10", NULL, NULL },
		{ CONNECTED, "192.0.2.10:25", NULL, NULL },
		{ END },
	};
	static const struct step out_of_time[] = {
		{ UP_TIMEOUT, NULL, "451 4.4.2 No next hop for example.net "
		    "answered within rcpt_timeout (240 s): timeout waiting for "
		    "the greeting\r\n", NULL },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(mx0);
	CHECK(fake_conn_deadline(fake_conn_last(1)) == 30);
	fake_clock_advance(30);
	PLAY(mx1);
	CHECK(fake_conn_deadline(fake_conn_last(1)) == 210);
	fake_clock_advance(210);
	PLAY(out_of_time);
	end();
}

/* The reply to the dot never comes: 451, the message is not confirmed. */
static void
test_no_reply_to_the_dot(void)
{
	static const struct step script[] = {
		{ UP_TIMEOUT, NULL, "451 4.4.2 Connection to " WHERE " lost before "
		    "it confirmed the message: timeout waiting for the reply to "
		    "the end of the message\r\n", NULL },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(reach_mx1);
	PLAY(starttls);
	PLAY(tls_to_rcpt);
	PLAY(message);
	CHECK(fake_conn_deadline(fake_conn_last(1)) == 540);
	fake_clock_advance(540);
	PLAY(script);
	CHECK(fake_conn_closed(fake_conn_last(1)));
	end();
}

/* An MTA that says nothing for client_timeout is told so, and left. */
static void
test_silent_mta_times_out(void)
{
	static const struct step script[] = {
		{ ACCEPT, NULL, GREETING, NULL },
		{ MTA_TIMEOUT, NULL, "421 4.4.2 mxtls.test Timeout, closing\r\n",
		    NULL },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(script);
	CHECK(fake_conn_closed(fake_conn_last(0)));
	end();
}

/* --- one command at a time -------------------------------------------------- */

/*
 * MAIL, two RCPTs and DATA in one read: each is answered in order, and
 * what follows a command relayed upstream stays unread (and the MTA
 * unread from) until the upstream's reply has been relayed.
 */
static void
test_pipelined_commands_wait_for_the_upstream(void)
{
	static const char rest[] = "RCPT TO:<carol@example.net>\r\nDATA\r\n";
	static const struct step start[] = {
		{ ACCEPT, NULL, GREETING, NULL },
		{ MTA, "EHLO mta.test\r\n", EHLO_REPLY, NULL },
		{ MTA, "MAIL FROM:<alice@example.org>\r\n"
		    "RCPT TO:<bob@example.net>\r\n"
		    "RCPT TO:<carol@example.net>\r\nDATA\r\n",
		    "250 2.1.0 Ok\r\n", NULL },
		{ END },
	};
	static const struct step bob[] = {
		{ TLS, "ok", NULL, "EHLO mxtls.test\r\n" },
		{ UP, "250 mx1.example.net\r\n", NULL,
		    "MAIL FROM:<alice@example.org>\r\n" },
		{ UP, "250 2.1.0 Ok\r\n", NULL, "RCPT TO:<bob@example.net>\r\n" },
		{ UP, "250 2.1.5 bob\r\n", "250 2.1.5 bob\r\n",
		    "RCPT TO:<carol@example.net>\r\n" },
		{ END },
	};
	static const struct step carol[] = {
		{ UP, "250 2.1.5 carol\r\n", "250 2.1.5 carol\r\n", "DATA\r\n" },
		{ END },
	};
	static const struct step data[] = {
		{ UP, "354 Go ahead\r\n", "354 Go ahead\r\n", NULL },
		{ MTA, MESSAGE, NULL, MESSAGE },
		{ END },
	};
	struct fake_conn *mta;

	begin(rt_opp, 0);
	PLAY(start);
	mta = fake_conn_last(0);
	CHECK(!fake_conn_reading(mta));
	CHECK_INT(fake_conn_unread(mta), strlen(rest));
	PLAY(reach_mx1);
	PLAY(starttls);
	CHECK(!fake_conn_reading(mta));
	CHECK_INT(fake_conn_unread(mta), strlen(rest));
	PLAY(bob);
	CHECK(!fake_conn_reading(mta));
	CHECK_INT(fake_conn_unread(mta), strlen("DATA\r\n"));
	PLAY(carol);
	CHECK(!fake_conn_reading(mta));
	CHECK_INT(fake_conn_unread(mta), 0);
	PLAY(data);
	PLAY(queued_tls);
	CHECK(fake_conn_reading(mta));
	end();
}

/* A recipient of another domain: 452, for a transaction of its own. */
static void
test_other_route_gets_452(void)
{
	static const struct step other[] = {
		{ MTA, "RCPT TO:<dave@example.com>\r\n", "452 4.5.3 example.com "
		    "goes to another next hop: send it in a separate "
		    "transaction\r\n", NULL },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(reach_mx1);
	PLAY(starttls);
	PLAY(tls_to_rcpt);
	PLAY(other);
	CHECK_INT(fake_dns_pending(), 0);
	/* bob's message goes on as if nothing happened. */
	PLAY(message);
	PLAY(queued_tls);
	end();
}

/* --- the upstream's replies ---------------------------------------------- */

static const struct step to_mail[] = {
	{ TLS, "ok", NULL, "EHLO mxtls.test\r\n" },
	{ UP, "250 mx1.example.net\r\n", NULL,
	    "MAIL FROM:<alice@example.org>\r\n" },
	{ END },
};

static const struct step mail_421[] = {
	{ UP, "421 4.3.2 Shutting down\r\n", "451 4.3.2 Shutting down\r\n",
	    NULL },
	/* The rest of the transaction gets the same, nothing goes up. */
	{ MTA, "RCPT TO:<carol@example.net>\r\n",
	    "451 4.3.2 Shutting down\r\n", NULL },
	{ MTA, "DATA\r\n", "554 5.5.1 No valid recipients\r\n", NULL },
	{ END },
};

static const struct step rcpt_421[] = {
	{ UP, "250 2.1.0 Ok\r\n", NULL, "RCPT TO:<bob@example.net>\r\n" },
	{ UP, "421-4.3.2 Going\r\n421 4.3.2 down\r\n",
	    "451-4.3.2 Going\r\n451 4.3.2 down\r\n", NULL },
	{ END },
};

static const struct step data_421[] = {
	{ MTA, "DATA\r\n", NULL, "DATA\r\n" },
	{ UP, "421 4.3.2 down\r\n", "451 4.3.2 down\r\n", NULL },
	{ END },
};

static const struct step dot_421[] = {
	{ UP, "421 4.3.2 down\r\n", "451 4.3.2 down [mxtls: TLSv1.3 verified "
	    "mx1.example.net]\r\n", NULL },
	{ END },
};

static const struct step dot_554[] = {
	{ UP, "554 5.7.1 Spam\r\n", "554 5.7.1 Spam [mxtls: TLSv1.3 verified "
	    "mx1.example.net]\r\n", NULL },
	{ END },
};

static const struct step dot_452[] = {
	{ UP, "452 4.3.1 Insufficient system storage\r\n", "452 4.3.1 "
	    "Insufficient system storage [mxtls: TLSv1.3 verified "
	    "mx1.example.net]\r\n", NULL },
	{ END },
};

/* How the message left goes on the last line of a multi-line reply. */
static const struct step dot_250_lines[] = {
	{ UP, "250-2.0.0 Ok\r\n250 2.0.0 queued as 4Xk2\r\n", "250-2.0.0 Ok\r\n"
	    "250 2.0.0 queued as 4Xk2 [mxtls: TLSv1.3 verified "
	    "mx1.example.net]\r\n", NULL },
	{ END },
};

/*
 * The upstream's own replies reach the MTA, but a 421 (which closes the
 * sender's channel) becomes 451: it is the server's channel that closes,
 * not the MTA's with mxtls.  Each row after STARTTLS's 220.
 */
static void
test_upstream_replies_relayed(void)
{
	static const struct {
		const char *name;
		const struct step *s[4];
	} t[] = {
		{ "421 to MAIL", { to_mail, mail_421 } },
		{ "421 to RCPT", { to_mail, rcpt_421 } },
		{ "421 to DATA", { tls_to_rcpt, data_421 } },
		{ "421 to the dot", { tls_to_rcpt, message, dot_421 } },
		{ "554 to the dot", { tls_to_rcpt, message, dot_554 } },
		{ "452 to the dot", { tls_to_rcpt, message, dot_452 } },
		{ "250 in two lines", { tls_to_rcpt, message, dot_250_lines } },
	};
	size_t i, j;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		begin(rt_opp, 0);
		t_ctx = t[i].name;
		PLAY(open_txn);
		PLAY(reach_mx1);
		PLAY(starttls);
		for (j = 0; t[i].s[j] != NULL; j++)
			PLAY(t[i].s[j]);
		end();
	}
}

/* The upstream goes away mid-message: the MTA's 451 comes at its dot. */
static void
test_connection_lost_during_data(void)
{
	static const struct step script[] = {
		{ MTA, "DATA\r\n", NULL, "DATA\r\n" },
		{ UP, "354 Go ahead\r\n", "354 Go ahead\r\n", NULL },
		{ MTA, "Subject: hello\r\n\r\nfirst part\r\n", NULL,
		    "Subject: hello\r\n\r\nfirst part\r\n" },
		{ UP_EOF, NULL, NULL, NULL },
		/* The rest is read, and goes nowhere. */
		{ MTA, "second part\r\n", NULL, NULL },
		{ MTA, ".\r\n", "451 4.4.2 Connection to " WHERE " lost during "
		    "DATA: connection closed by server\r\n", NULL },
		/* The session is ready for the next transaction. */
		{ MTA, "MAIL FROM:<alice@example.org>\r\n", "250 2.1.0 Ok\r\n",
		    NULL },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(reach_mx1);
	PLAY(starttls);
	PLAY(tls_to_rcpt);
	PLAY(script);
	CHECK(fake_conn_closed(fake_conn_last(1)));
	end();
}

/*
 * mxtls sends one command at a time: a reply that arrives before its
 * command was sent (or with none pending) is a protocol error, and the
 * MTA gets 451, never that reply.
 */
static void
test_reply_ahead_of_its_command(void)
{
	/* MAIL's 250 with the EHLO reply, before MAIL went out. */
	static const struct step early_mail[] = {
		{ TLS, "ok", NULL, "EHLO mxtls.test\r\n" },
		{ UP, "250 mx1.example.net\r\n250 2.1.0 Ok\r\n", "451 4.4.2 "
		    "Connection to " WHERE " failed: server replied before the "
		    "command\r\n", "MAIL FROM:<alice@example.org>\r\n" },
		{ END },
	};
	/* The dot's 250 with the 354, before the message. */
	static const struct step early_dot[] = {
		{ MTA, "DATA\r\n", NULL, "DATA\r\n" },
		{ UP, "354 Go ahead\r\n250 2.0.0 Ok\r\n", "354 Go ahead\r\n",
		    NULL },
		{ MTA, MESSAGE, "451 4.4.2 Connection to " WHERE " lost during "
		    "DATA: server replied before the command\r\n", NULL },
		{ END },
	};
	/* A reply while nothing is pending. */
	static const struct step unsolicited[] = {
		{ UP, "250 2.0.0 Ok\r\n", NULL, NULL },
		{ MTA, "DATA\r\n", "451 4.4.2 Connection to " WHERE " lost: "
		    "server sent data while no command was pending\r\n", NULL },
		{ END },
	};
	static const struct {
		const char *name;
		const struct step *s[3];
	} t[] = {
		{ "250 ahead of MAIL", { early_mail } },
		{ "250 with the 354", { tls_to_rcpt, early_dot } },
		{ "250 with nothing pending", { tls_to_rcpt, unsolicited } },
	};
	size_t i, j;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		begin(rt_opp, 0);
		t_ctx = t[i].name;
		PLAY(open_txn);
		PLAY(reach_mx1);
		PLAY(starttls);
		for (j = 0; t[i].s[j] != NULL; j++)
			PLAY(t[i].s[j]);
		/* That server gets nothing more from this session. */
		CHECK(fake_conn_closed(fake_conn_last(1)));
		end();
	}
}

/* --- the connection cache --------------------------------------------------- */

/*
 * A verified connection left idle at the end of a session serves the
 * next session's transaction to the same route: RSET instead of a
 * connect, a handshake and EHLO.  DANE may apply to the route (dnssec
 * is on by default), so the cache is asked after the address lookup.
 */
static void
test_cached_connection_serves_the_next_session(void)
{
	static const struct step reuse[] = {
		{ MX, "example.net mx1.example.net", NULL, NULL },
		{ ADDR, "mx1.example.net 192.0.2.10", NULL, "RSET\r\n" },
		{ UP, "250 2.0.0 Ok\r\n", NULL,
		    "MAIL FROM:<alice@example.org>\r\n" },
		{ UP, "250 2.1.0 Ok\r\n", NULL, "RCPT TO:<bob@example.net>\r\n" },
		{ UP, "250 2.1.5 Ok\r\n", "250 2.1.5 Ok\r\n", NULL },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(reach_mx1);
	PLAY(starttls);
	PLAY(tls_to_rcpt);
	PLAY(message);
	PLAY(queued_tls);
	PLAY(quit);
	CHECK(!fake_conn_closed(fake_conn_last(1)));
	PLAY(open_txn);
	PLAY(reuse);
	PLAY(message);
	PLAY(queued_tls);
	CHECK_INT(fake_conn_connects(), 1);
	CHECK_INT(metrics_value("mxtls_upstream_reuses_total",
	    "outcome=\"reused\""), 1);
	end();
}

/* A cached connection that does not answer RSET with 250: a new one. */
static void
test_stale_cached_connection_is_replaced(void)
{
	static const struct step stale[] = {
		{ MX, "example.net mx1.example.net", NULL, NULL },
		{ ADDR, "mx1.example.net 192.0.2.10", NULL, "RSET\r\n" },
		/* Not the MTA's business, nor a TLS failure. */
		{ UP, "421 4.4.2 Idle too long\r\n", NULL, "QUIT\r\n" },
		{ CONNECTED, "192.0.2.10:25", NULL, NULL },
		{ UP, "220 mx1.example.net ESMTP\r\n", NULL,
		    "EHLO mxtls.test\r\n" },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(reach_mx1);
	PLAY(starttls);
	PLAY(tls_to_rcpt);
	PLAY(message);
	PLAY(queued_tls);
	PLAY(quit);
	PLAY(open_txn);
	PLAY(stale);
	PLAY(starttls);
	PLAY(tls_to_rcpt);
	CHECK_INT(fake_conn_connects(), 2);
	CHECK_INT(metrics_value("mxtls_upstream_reuses_total",
	    "outcome=\"stale\""), 1);
	CHECK_INT(state_total(px.state), 0);
	end();
}

/* --- MTA-STS (docs/behaviour.md sections 6, 7) ------------------------------ */

/* bob@example.net under an enforce policy naming mx1.example.net. */
static const struct step sts_enforce[] = {
	{ STS, "example.net enforce mx1.example.net", NULL, NULL },
	{ END },
};

/* The first recipient is held while the header is read. */
static const struct step held[] = {
	{ TLS, "expired", "250 2.1.5 Held: the TLS policy for example.net "
	    "failed; the message goes only if it says TLS-Required: No\r\n",
	    "QUIT\r\n" },
	{ MTA, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n", NULL },
	{ END },
};

/* Without "TLS-Required: No" the held message gets the first 451. */
static const struct step held_451[] = {
	{ MTA, MESSAGE, "451 4.7.5 TLS to " WHERE " for domain example.net"
	    " failed: certificate has expired; retry after " RETRY_AT "\r\n",
	    NULL },
	{ END },
};

/*
 * A certificate failure under enforce is deferred, at the end of the
 * message (the recipient was held for its header).
 */
static void
test_sts_enforce_certificate_failure_451_at_the_dot(void)
{
	begin(rt_opp, 1);
	PLAY(open_txn);
	PLAY(sts_enforce);
	PLAY(reach_mx1);
	PLAY(starttls);
	PLAY(held);
	/* RFC 8461 section 4.2: a DNS-ID only; the policy is fetched again. */
	CHECK_INT(fake_tls_flags(), 0);
	CHECK_INT(fake_sts_refreshes(), 1);
	CHECK_STR(fake_sts_refreshed(), "example.net");
	PLAY(held_451);
	CHECK_INT(fake_conn_connects(), 1);
	end();
}

/* The retry fails too: still 451 under enforce, never a bounce. */
static void
test_sts_enforce_never_bounces(void)
{
	static const struct step dot[] = {
		{ MTA, MESSAGE, "451 4.7.5 TLS to " WHERE " for domain example.net"
		    " failed: certificate has expired; the domain's MTA-STS "
		    "policy requires TLS, will retry\r\n", NULL },
		{ END },
	};

	begin(rt_opp, 1);
	PLAY(open_txn);
	PLAY(sts_enforce);
	PLAY(reach_mx1);
	PLAY(starttls);
	PLAY(held);
	PLAY(held_451);
	PLAY(quit);
	fake_clock_advance(300);
	PLAY(open_txn);
	PLAY(sts_enforce);
	PLAY(reach_mx1);
	PLAY(starttls);
	PLAY(held);
	PLAY(dot);
	CHECK_INT(state_count(px.state, RETRY_BROKEN), 1);
	end();
}

/*
 * With "TLS-Required: No" (RFC 8689) the held message goes without the
 * policy: the route again, TLS still, the certificate unchecked.
 */
static void
test_sts_enforce_tls_required_no_delivers(void)
{
	static const struct step script[] = {
		{ MTA, "TLS-Required: No\r\n" MESSAGE, NULL, NULL },
		{ MX, "example.net mx1.example.net", NULL, NULL },
		{ ADDR, "mx1.example.net 192.0.2.10", NULL, NULL },
		{ CONNECTED, "192.0.2.10:25", NULL, NULL },
		{ UP, "220 mx1.example.net ESMTP\r\n", NULL,
		    "EHLO mxtls.test\r\n" },
		{ UP, "250-mx1.example.net\r\n250 STARTTLS\r\n", NULL,
		    "STARTTLS\r\n" },
		{ UP, "220 2.0.0 Go ahead\r\n", NULL, NULL },
		{ TLS, "expired", NULL, "EHLO mxtls.test\r\n" },
		{ UP, "250 mx1.example.net\r\n", NULL,
		    "MAIL FROM:<alice@example.org>\r\n" },
		{ UP, "250 2.1.0 Ok\r\n", NULL, "RCPT TO:<bob@example.net>\r\n" },
		{ UP, "250 2.1.5 Ok\r\n", NULL, "DATA\r\n" },
		/* The MTA had its 354 from mxtls. */
		{ UP, "354 Go ahead\r\n", NULL, "TLS-Required: No\r\n" MESSAGE },
		{ UP, "250 2.0.0 Ok\r\n", "250 2.0.0 Ok [mxtls: TLSv1.3 "
		    "unverified mx1.example.net]\r\n", NULL },
		{ END },
	};

	begin(rt_opp, 1);
	PLAY(open_txn);
	PLAY(sts_enforce);
	PLAY(reach_mx1);
	PLAY(starttls);
	PLAY(held);
	PLAY(script);
	CHECK_INT(fake_conn_connects(), 2);
	end();
}

/* --- DANE (RFC 7672) ------------------------------------------------------- */

/* A signed MX and address, and a DANE-EE record for mx1.example.net. */
static const struct step dane_host[] = {
	{ MX, "example.net mx1.example.net secure", NULL, NULL },
	{ ADDR, "mx1.example.net 192.0.2.10 secure", NULL, NULL },
	{ TLSA, "mx1.example.net 3-1-1 secure", NULL, NULL },
	{ CONNECTED, "192.0.2.10:25", NULL, NULL },
	{ UP, "220 mx1.example.net ESMTP\r\n", NULL, "EHLO mxtls.test\r\n" },
	{ END },
};

static void
test_dane_match_delivers(void)
{
	static const struct step dot[] = {
		{ UP, "250 2.0.0 Ok\r\n", "250 2.0.0 Ok [mxtls: TLSv1.3 verified "
		    "by DANE mx1.example.net]\r\n", NULL },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(dane_host);
	PLAY(starttls);
	PLAY(tls_to_rcpt);
	PLAY(message);
	PLAY(dot);
	CHECK_INT(metrics_value("mxtls_dane_total", "result=\"ok\""), 1);
	end();
}

/*
 * No TLSA record matches: never the clear, never a bounce, no retry
 * record; the recipient is held and the message gets 451 4.7.5.
 */
static void
test_dane_mismatch_defers(void)
{
	static const struct step script[] = {
		{ TLS, "mismatch", "250 2.1.5 Held: the TLS policy for "
		    "example.net failed; the message goes only if it says "
		    "TLS-Required: No\r\n", "QUIT\r\n" },
		{ MTA, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n",
		    NULL },
		{ MTA, MESSAGE, "451 4.7.5 TLS to mx1.example.net (192.0.2.10) "
		    "failed: TLSA 3 1 1 abababab for mx1.example.net did not "
		    "match the certificate; its TLSA records (DANE) require TLS "
		    "with a matching certificate\r\n", NULL },
		{ END },
	};

	begin(rt_opp, 0);
	PLAY(open_txn);
	PLAY(dane_host);
	PLAY(starttls);
	PLAY(script);
	CHECK_INT(state_total(px.state), 0);
	end();
}

int
main(void)
{
	/* Only errors: the tests read replies, not the log. */
	log_setup(CONFIG_LOG_LOGFMT, CONFIG_LOG_ERROR);
	fake_runtimes("test-session", &rt_opp, &rt_mand);

	RUN(test_clean_delivery_over_verified_tls);
	RUN(test_no_starttls_opportunistic_goes_in_the_clear);
	RUN(test_failure_table);
	RUN(test_dns_outcomes);
	RUN(test_next_mx_when_one_is_unreachable);
	RUN(test_rcpt_timeout_caps_the_upstream);
	RUN(test_no_reply_to_the_dot);
	RUN(test_silent_mta_times_out);
	RUN(test_pipelined_commands_wait_for_the_upstream);
	RUN(test_other_route_gets_452);
	RUN(test_upstream_replies_relayed);
	RUN(test_connection_lost_during_data);
	RUN(test_reply_ahead_of_its_command);
	RUN(test_cached_connection_serves_the_next_session);
	RUN(test_stale_cached_connection_is_replaced);
	RUN(test_sts_enforce_certificate_failure_451_at_the_dot);
	RUN(test_sts_enforce_never_bounces);
	RUN(test_sts_enforce_tls_required_no_delivers);
	RUN(test_dane_match_delivers);
	RUN(test_dane_mismatch_defers);

	runtime_release(rt_opp);
	runtime_release(rt_mand);
	return T_DONE();
}
