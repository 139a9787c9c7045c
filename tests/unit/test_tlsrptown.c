/*
 * proxy/tlsrpt.c on a real libev loop and journal: the session that
 * delivers one of mxtls's own reports through its listener is not
 * counted (RFC 8460 section 3), told apart by the connection's address
 * and port, so other mail from the same sender still counts; and a
 * report is recorded as sent only for a day the journal still keeps.
 */
#include <arpa/inet.h>
#include <ev.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "t.h"
#include "tlsrpt.h"

static char tmp[PATH_MAX];
static struct ev_loop *loop;

static struct sockaddr_in
in4(const char *addr, int port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &a.sin_addr);
	return a;
}

static struct sockaddr_in6
in6(const char *addr, int port)
{
	struct sockaddr_in6 a;

	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_port = htons((uint16_t)port);
	inet_pton(AF_INET6, addr, &a.sin6_addr);
	return a;
}

/* Today's successes of example.com, as counted. */
static unsigned long
successes(struct tlsrpt *t)
{
	struct tlsrpt_day *d = tlsrpt_store_day(tlsrpt_store_of(t),
	    tlsrpt_day_of(clock_now()));
	struct tlsrpt_entry *e;
	unsigned long n = 0;

	for (e = d ? d->first : NULL; e != NULL; e = e->dnext)
		if (e->result == NULL && strcmp(e->domain, "example.com") == 0)
			n += e->count;
	return n;
}

/* One delivery over TLS to example.com, by the MTA at client. */
static void
count(struct tlsrpt *t, const void *client)
{
	struct tlsrpt_attempt a;

	memset(&a, 0, sizeof(a));
	a.domain = "example.com";
	a.result = TLS_RESULT_OK;
	a.mx_host = "mx1.example.com";
	a.mx_addr = "192.0.2.25";
	a.fd = -1;
	a.client = client;
	tlsrpt_count(t, 1, &a);
}

static struct tlsrpt *
open_in(const char *name)
{
	char dir[PATH_MAX + 32], err[512];
	struct tlsrpt *t;

	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	if (mkdir(dir, 0700) == -1 && access(dir, F_OK) != 0) {
		perror(dir);
		exit(2);
	}
	if ((t = tlsrpt_open(loop, dir, err, sizeof(err))) == NULL)
		fprintf(stderr, "tlsrpt_open: %s\n", err);
	return t;
}

static void
own_not_counted(void)
{
	struct sockaddr_in rpt = in4("127.0.0.1", 40000);
	struct sockaddr_in other_port = in4("127.0.0.1", 40001);
	struct sockaddr_in other_addr = in4("127.0.0.2", 40000);
	struct sockaddr_in6 mapped = in6("::ffff:127.0.0.1", 40000);
	struct sockaddr_in6 rpt6 = in6("::1", 40002);
	struct sockaddr_in6 other6 = in6("::1", 40003);
	struct sockaddr_storage unspec;
	struct tlsrpt *t = open_in("own");

	CHECK(t != NULL);
	if (t == NULL)
		return;
	count(t, NULL);
	CHECK_INT(successes(t), 1);
	CHECK_INT(tlsrpt_own_add(t, (struct sockaddr *)&rpt), 0);
	CHECK_INT(tlsrpt_own_add(t, (struct sockaddr *)&rpt6), 0);
	/* The report's own session, also as an IPv4-mapped address. */
	count(t, &rpt);
	count(t, &mapped);
	count(t, &rpt6);
	CHECK_INT(successes(t), 1);
	/* Mail from other connections counts, whoever the sender. */
	count(t, &other_port);
	count(t, &other_addr);
	count(t, &other6);
	count(t, NULL);
	CHECK_INT(successes(t), 5);
	/* An address of no family matches nothing. */
	memset(&unspec, 0, sizeof(unspec));
	CHECK_INT(tlsrpt_own_add(t, (struct sockaddr *)&unspec), -1);
	count(t, &unspec);
	CHECK_INT(successes(t), 6);
	/* The report's connection closed: its address may be anyone's. */
	tlsrpt_own_del(t, (struct sockaddr *)&rpt);
	count(t, &rpt);
	count(t, &rpt6);
	CHECK_INT(successes(t), 7);
	tlsrpt_own_del(t, (struct sockaddr *)&rpt6);
	count(t, &rpt6);
	CHECK_INT(successes(t), 8);
	/* Many at once (the list grows). */
	{
		struct sockaddr_in a;
		int i;

		for (i = 0; i < 40; i++) {
			a = in4("127.0.0.1", 41000 + i);
			CHECK_INT(tlsrpt_own_add(t, (struct sockaddr *)&a), 0);
		}
		a = in4("127.0.0.1", 41039);
		count(t, &a);
		a = in4("127.0.0.1", 41040);
		count(t, &a);
		CHECK_INT(successes(t), 9);
	}
	tlsrpt_close(t);
}

/* The reports sent are kept, across a restart, for the days kept only. */
static void
sent_days_kept(void)
{
	long today = tlsrpt_day_of(clock_now());
	long gone = today - TLSRPT_KEEP_DAYS - 1;
	struct tlsrpt *t = open_in("sent");
	const char *rua = "https://r.example.com/v1";

	CHECK(t != NULL);
	if (t == NULL)
		return;
	tlsrpt_mark_sent(t, today - 1, "example.com", rua);
	tlsrpt_mark_sent(t, today - TLSRPT_KEEP_DAYS, "example.com", rua);
	tlsrpt_mark_sent(t, gone, "example.com", rua);
	CHECK(tlsrpt_was_sent(t, today - 1, "example.com", rua));
	CHECK(tlsrpt_was_sent(t, today - TLSRPT_KEEP_DAYS, "example.com",
	    rua));
	CHECK(!tlsrpt_was_sent(t, gone, "example.com", rua));
	CHECK(!tlsrpt_was_sent(t, today - 1, "example.com",
	    "mailto:r@example.com"));
	tlsrpt_close(t);
	if ((t = open_in("sent")) == NULL)
		return;
	CHECK(tlsrpt_was_sent(t, today - 1, "example.com", rua));
	CHECK(tlsrpt_was_sent(t, today - TLSRPT_KEEP_DAYS, "example.com",
	    rua));
	CHECK(!tlsrpt_was_sent(t, gone, "example.com", rua));
	tlsrpt_close(t);
}

static void
rm_rf(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

int
main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/test_tlsrptown.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	log_setup(CONFIG_LOG_LOGFMT, CONFIG_LOG_ERROR);
	loop = ev_loop_new(EVFLAG_AUTO);

	RUN(own_not_counted);
	RUN(sent_days_kept);

	ev_loop_destroy(loop);
	rm_rf(tmp);
	return T_DONE();
}
