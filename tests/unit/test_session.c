/*
 * proxy/session.c, the whole relay session, driven without sockets: the
 * connections, the resolver, the MTA-STS cache, the clock and what a
 * handshake shows are the fakes of tests/unit/fake_*.c (fakes.h), the
 * rest (config, policy, failure table, retry records, connection cache,
 * SMTP parsing) is the real code.  Each test is a script of steps, each
 * step something the MTA, the upstream server, the DNS or the clock
 * does, with exactly what the MTA and the upstream were sent in answer;
 * the replies' texts are docs/behaviour.md's.  libev is real, for the
 * session reaper (proxy_sessions_init); its loop only ever runs once
 * without waiting, to free closed sessions.  Run from the repository
 * root (tests/run.sh does): the CA bundle is ca-bundles/'s.
 */
#include <fcntl.h>
#include <limits.h>
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
static char tmp[PATH_MAX];
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
};

static const char *const act_names[] = {
	[END] = "end", [ACCEPT] = "accept", [MTA] = "mta", [MX] = "mx",
	[ADDR] = "addr", [TLSA] = "tlsa", [STS] = "sts",
	[CONNECTED] = "connected", [UP] = "up", [TLS] = "tls",
	[UP_EOF] = "up-eof", [UP_ERROR] = "up-error",
};

struct step {
	enum act act;
	const char *arg;
	const char *mta; /* all the MTA was sent in answer (NULL: nothing) */
	const char *up;	 /* all the upstream was sent (NULL: nothing) */
};

/* What the session is called by its scripts, in log lines. */
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
	}
	return -1;
}

/* Run a script; line: where it was played, for the report. */
static void
play(const struct step *st, int line)
{
	const char *got;
	int i;

	for (i = 0; st[i].act != END; i++) {
		if (act(&st[i]) == -1) {
			fprintf(stderr, "%s:%d:%s step %d (%s %s) could not "
			    "happen\n", __FILE__, line, t_ctx, i,
			    act_names[st[i].act], show(st[i].arg ? st[i].arg :
			    ""));
			t_cur = 1;
			return;
		}
		fake_conn_pump();
		got = fake_conn_take(0);
		if (strcmp(got, st[i].mta ? st[i].mta : "") != 0) {
			fprintf(stderr, "%s:%d:%s step %d (%s): the MTA got "
			    "\"%s\", want \"%s\"\n", __FILE__, line, t_ctx, i,
			    act_names[st[i].act], show(got),
			    show(st[i].mta ? st[i].mta : ""));
			t_cur = 1;
		}
		got = fake_conn_take(1);
		if (strcmp(got, st[i].up ? st[i].up : "") != 0) {
			fprintf(stderr, "%s:%d:%s step %d (%s): the upstream "
			    "got \"%s\", want \"%s\"\n", __FILE__, line, t_ctx,
			    i, act_names[st[i].act], show(got),
			    show(st[i].up ? st[i].up : ""));
			t_cur = 1;
		}
	}
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

static const struct step queued_tls[] = {
	{ UP, "250 2.0.0 Ok: queued as 4Xk2\r\n", "250 2.0.0 Ok: queued as "
	    "4Xk2 [mxtls: TLSv1.3 verified mx1.example.net]\r\n", NULL },
	{ END },
};

/* The MTA ends its session; a verified upstream stays in the cache. */
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

/* The first three TLS failures: what the server does, what the MTA gets. */
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
	const struct step *fail;  /* from the greeting to the first 451 */
	const char *first;	  /* that 451, again inside retry_delay */
	/* Both to the MTA's QUIT: */
	const struct step *retry; /* from the greeting, after retry_delay */
	const struct step *broken; /* from the MX answer, within fallback_ttl
				      (NULL: the retry worked) */
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

/* --- set-up ---------------------------------------------------------------- */

/* tmp/NAME holding the config text after the common part. */
static struct runtime *
load(const char *name, const char *extra)
{
	char path[PATH_MAX + 64], bundle[PATH_MAX];
	struct runtime *rt;
	FILE *f;

	if (realpath("ca-bundles/ca-certificates.crt", bundle) == NULL) {
		perror("ca-bundles/ca-certificates.crt");
		exit(2);
	}
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(2);
	}
	fprintf(f, "[proxy]\nhostname = mxtls.test\nstate_dir = %s\n"
	    "[tls]\nca_bundle = %s\n%s", tmp, bundle, extra);
	fclose(f);
	/* No loop: no DNS channel (the fake resolver needs none). */
	if ((rt = runtime_load(NULL, path, stderr)) == NULL)
		exit(2);
	unlink(path);
	return rt;
}

int
main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/mxtls-test-session.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	/* Only errors: the tests read replies, not the log. */
	log_setup(CONFIG_LOG_LOGFMT, CONFIG_LOG_ERROR);
	rt_opp = load("opportunistic.ini", "");
	rt_mand = load("mandatory.ini", "[policy]\ndefault = mandatory\n");
	rmdir(tmp);

	RUN(test_clean_delivery_over_verified_tls);
	RUN(test_no_starttls_opportunistic_goes_in_the_clear);
	RUN(test_failure_table);

	runtime_release(rt_opp);
	runtime_release(rt_mand);
	return T_DONE();
}
