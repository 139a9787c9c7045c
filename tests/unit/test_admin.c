/*
 * proxy/admin.c's request parser, admin_parse_request(), by table: the
 * request line, targets and query strings, methods, versions, header
 * lines, CRLF and LF, incomplete and overlong heads.  The server itself
 * is tested over sockets by tests/integration/test_admin.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "t.h"

struct pcase {
	const char *in;
	int status;
	enum admin_method method; /* when 200 */
	const char *path;	  /* when 200, 405 (NULL: not checked) */
};

static void
run_cases(const struct pcase *cases, size_t n)
{
	struct admin_request req;
	size_t i;
	int st;

	for (i = 0; i < n; i++) {
		const struct pcase *c = &cases[i];
		size_t len = strlen(c->in);
		char got[256];

		st = admin_parse_request(c->in, len, &req);
		if (st != c->status)
			fprintf(stderr, "  case %zu: \"%s\"\n", i, c->in);
		CHECK_INT(st, c->status);
		if (st != c->status || c->path == NULL)
			continue;
		snprintf(got, sizeof(got), "%.*s", (int)req.pathlen, req.path);
		if (strcmp(got, c->path) != 0)
			fprintf(stderr, "  case %zu: \"%s\"\n", i, c->in);
		CHECK_STR(got, c->path);
		if (st == 200) {
			CHECK_INT(req.method, c->method);
			CHECK_INT(req.headlen, len);
		}
	}
}

#define RUN_CASES(c) run_cases(c, sizeof(c) / sizeof(c[0]))

static void
test_request_line(void)
{
	static const struct pcase cases[] = {
		{ "GET /metrics HTTP/1.1\r\n\r\n", 200, ADMIN_GET, "/metrics" },
		{ "GET /metrics HTTP/1.0\r\n\r\n", 200, ADMIN_GET, "/metrics" },
		{ "HEAD /healthz HTTP/1.1\r\n\r\n", 200, ADMIN_HEAD,
		    "/healthz" },
		{ "GET / HTTP/1.1\r\n\r\n", 200, ADMIN_GET, "/" },
		{ "GET /readyz HTTP/1.9\r\n\r\n", 200, ADMIN_GET, "/readyz" },
		/* Leading empty lines are ignored (RFC 9112 2.2). */
		{ "\r\n\nGET /healthz HTTP/1.1\r\n\r\n", 200, ADMIN_GET,
		    "/healthz" },
		/* One space exactly, three parts exactly. */
		{ "GET  /metrics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics  HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ " GET /metrics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/1.1 \r\n\r\n", 400, 0, NULL },
		{ "GET\t/metrics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics\r\n\r\n", 400, 0, NULL },
		{ "GET\r\n\r\n", 400, 0, NULL },
		{ "/metrics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		/* Versions. */
		{ "GET /metrics HTTP/1.10\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/1\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics http/1.1\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/x.1\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/2.0\r\n\r\n", 505, 0, NULL },
		{ "GET /metrics HTTP/0.9\r\n\r\n", 505, 0, NULL },
		/* Bytes a target cannot hold. */
		{ "GET /met\x01rics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ "GET /met\x7frics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ "GET /m\xc3\xa9trics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics\rHTTP/1.1\r\n\r\n", 400, 0, NULL },
	};

	RUN_CASES(cases);
}

static void
test_targets(void)
{
	static const struct pcase cases[] = {
		{ "GET /metrics?x=1 HTTP/1.1\r\n\r\n", 200, ADMIN_GET,
		    "/metrics" },
		{ "GET /metrics? HTTP/1.1\r\n\r\n", 200, ADMIN_GET, "/metrics" },
		{ "GET /metrics?a=/b?c HTTP/1.1\r\n\r\n", 200, ADMIN_GET,
		    "/metrics" },
		{ "GET /healthz#frag HTTP/1.1\r\n\r\n", 200, ADMIN_GET,
		    "/healthz" },
		{ "GET /?x HTTP/1.1\r\n\r\n", 200, ADMIN_GET, "/" },
		{ "GET /metrics/ HTTP/1.1\r\n\r\n", 200, ADMIN_GET,
		    "/metrics/" },
		{ "GET /%6Detrics HTTP/1.1\r\n\r\n", 200, ADMIN_GET,
		    "/%6Detrics" },
		/* absolute-form: the authority is ignored. */
		{ "GET http://127.0.0.1:9925/metrics?x HTTP/1.1\r\n\r\n", 200,
		    ADMIN_GET, "/metrics" },
		{ "GET HTTPS://h/readyz HTTP/1.1\r\n\r\n", 200, ADMIN_GET,
		    "/readyz" },
		{ "GET http://h HTTP/1.1\r\n\r\n", 200, ADMIN_GET, "/" },
		{ "GET http://h?x=/metrics HTTP/1.1\r\n\r\n", 200, ADMIN_GET,
		    "/" },
		{ "GET * HTTP/1.1\r\n\r\n", 200, ADMIN_GET, "*" },
		{ "GET metrics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ "GET ftp://h/metrics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ "GET ** HTTP/1.1\r\n\r\n", 400, 0, NULL },
	};

	RUN_CASES(cases);
}

static void
test_methods(void)
{
	static const struct pcase cases[] = {
		{ "POST /metrics HTTP/1.1\r\n\r\n", 405, 0, "/metrics" },
		{ "PUT /metrics HTTP/1.1\r\n\r\n", 405, 0, NULL },
		{ "DELETE /healthz HTTP/1.1\r\n\r\n", 405, 0, NULL },
		{ "OPTIONS * HTTP/1.1\r\n\r\n", 405, 0, "*" },
		{ "BREW /pot HTTP/1.1\r\n\r\n", 405, 0, NULL },
		/* Methods are case-sensitive (RFC 9110 9.1). */
		{ "get /metrics HTTP/1.1\r\n\r\n", 405, 0, NULL },
		{ "GETS /metrics HTTP/1.1\r\n\r\n", 405, 0, NULL },
		{ "GE /metrics HTTP/1.1\r\n\r\n", 405, 0, NULL },
		/* Not a token at all. */
		{ "G(T /metrics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		{ "G\"T /metrics HTTP/1.1\r\n\r\n", 400, 0, NULL },
		/* Reported once the request line is complete, head or not. */
		{ "POST /metrics HTTP/1.1\r\n", 405, 0, NULL },
		{ "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n", 405, 0,
		    NULL },
		{ "GET /metrics HTTP/2.0\r\nHost", 505, 0, NULL },
		{ "GET metrics HTTP/1.1\n", 400, 0, NULL },
	};

	RUN_CASES(cases);
}

static void
test_headers(void)
{
	static const struct pcase cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: localhost:9925\r\n"
		  "User-Agent: Prometheus/2.42.0\r\nAccept: text/plain;"
		  "version=0.0.4;q=1,*/*;q=0.1\r\n"
		  "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n", 200,
		    ADMIN_GET, "/metrics" },
		{ "GET /metrics HTTP/1.1\r\nX-Empty:\r\n\r\n", 200, ADMIN_GET,
		    "/metrics" },
		{ "GET /metrics HTTP/1.1\r\nX:\tv\xc3\xa9 \r\n\r\n", 200,
		    ADMIN_GET, "/metrics" },
		/* Folding is obsolete: refused. */
		{ "GET /metrics HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400, 0,
		    NULL },
		{ "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/1.1\r\n: value\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/1.1\r\nX: a\x01\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400, 0, NULL },
		{ "GET /metrics HTTP/1.1\r\n\r\r\n", 400, 0, NULL },
	};
	static const char nul[] = "GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n";
	struct admin_request req;

	RUN_CASES(cases);
	CHECK_INT(admin_parse_request(nul, sizeof(nul) - 1, &req), 400);
}

/* LF alone ends lines as well as CRLF, mixed too. */
static void
test_line_ends(void)
{
	static const struct pcase cases[] = {
		{ "GET /metrics HTTP/1.1\n\n", 200, ADMIN_GET, "/metrics" },
		{ "GET /metrics HTTP/1.1\nHost: x\n\n", 200, ADMIN_GET,
		    "/metrics" },
		{ "GET /metrics HTTP/1.1\r\nHost: x\n\r\n", 200, ADMIN_GET,
		    "/metrics" },
		{ "GET /metrics HTTP/1.1\nHost: x\r\n\n", 200, ADMIN_GET,
		    "/metrics" },
		{ "\nGET /healthz HTTP/1.0\n\n", 200, ADMIN_GET, "/healthz" },
		/* A CR must be followed by LF. */
		{ "GET /metrics HTTP/1.1\r\r\n\r\n", 400, 0, NULL },
		{ "\rGET /metrics HTTP/1.1\r\n\r\n", 400, 0, NULL },
	};

	RUN_CASES(cases);
}

/* Bytes after the head (a body, a pipelined request) are not the head. */
static void
test_headlen(void)
{
	static const char in[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /other HTTP/1.1\r\n\r\n";
	struct admin_request req;

	CHECK_INT(admin_parse_request(in, sizeof(in) - 1, &req), 200);
	CHECK_INT(req.headlen, strlen("GET /metrics HTTP/1.1\r\nHost: x\r\n"
	    "\r\n"));
	CHECK_INT(req.pathlen, 8);
	CHECK(strncmp(req.path, "/metrics", 8) == 0);
}

static void
test_incomplete(void)
{
	static const char *const partial[] = {
		"",
		"\r",
		"\r\n",
		"G",
		"GET /metrics",
		"GET /metrics HTTP/1.1",
		"GET /metrics HTTP/1.1\r",
		"GET /metrics HTTP/1.1\r\n",
		"GET /metrics HTTP/1.1\r\nHost: x",
		"GET /metrics HTTP/1.1\r\nHost: x\r\n",
		"GET /metrics HTTP/1.1\r\nHost: x\r\n\r",
		"GET /metrics HTTP/1.1\n",
	};
	struct admin_request req;
	size_t i;

	for (i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
		int st = admin_parse_request(partial[i], strlen(partial[i]),
		    &req);

		if (st != 0)
			fprintf(stderr, "  \"%s\"\n", partial[i]);
		CHECK_INT(st, 0);
	}
	/* Every prefix of a good request is incomplete, the whole is not. */
	{
		static const char good[] = "GET /readyz HTTP/1.1\r\nHost: a\r\n"
		    "Accept: */*\r\n\r\n";

		for (i = 0; i < sizeof(good) - 1; i++)
			CHECK_INT(admin_parse_request(good, i, &req), 0);
		CHECK_INT(admin_parse_request(good, i, &req), 200);
	}
}

/* A head over ADMIN_HEAD_MAX bytes: 431, complete or not. */
static void
test_overlong(void)
{
	static const char start[] = "GET /metrics HTTP/1.1\r\n";
	char *buf = malloc(2 * ADMIN_HEAD_MAX);
	struct admin_request req;
	size_t n, fill;

	if (buf == NULL)
		return;
	/* Exactly ADMIN_HEAD_MAX bytes, blank line included: fine. */
	n = strlen(start);
	memcpy(buf, start, n);
	fill = ADMIN_HEAD_MAX - n - strlen("X: \r\n\r\n");
	memcpy(buf + n, "X: ", 3);
	memset(buf + n + 3, 'a', fill);
	memcpy(buf + n + 3 + fill, "\r\n\r\n", 4);
	CHECK_INT(n + 3 + fill + 4, ADMIN_HEAD_MAX);
	CHECK_INT(admin_parse_request(buf, ADMIN_HEAD_MAX, &req), 200);
	CHECK_INT(req.headlen, ADMIN_HEAD_MAX);
	/* One byte more: 431. */
	memcpy(buf + n + 3, "a", 1);
	memset(buf + n + 3, 'a', fill + 1);
	memcpy(buf + n + 3 + fill + 1, "\r\n\r\n", 4);
	CHECK_INT(admin_parse_request(buf, ADMIN_HEAD_MAX + 1, &req), 431);
	/* A full buffer with no end in sight: 431, not "read more". */
	CHECK_INT(admin_parse_request(buf, ADMIN_HEAD_MAX, &req), 431);
	CHECK_INT(admin_parse_request(buf, ADMIN_HEAD_MAX - 1, &req), 0);
	/* A request line alone too long (a huge path). */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'p', ADMIN_HEAD_MAX);
	CHECK_INT(admin_parse_request(buf, ADMIN_HEAD_MAX, &req), 431);
	memcpy(buf + ADMIN_HEAD_MAX, " HTTP/1.1\r\n\r\n", 13);
	CHECK_INT(admin_parse_request(buf, ADMIN_HEAD_MAX + 13, &req), 431);
	/* Many small header lines. */
	n = strlen(start);
	memcpy(buf, start, n);
	while (n + 5 <= ADMIN_HEAD_MAX) {
		memcpy(buf + n, "X: y\n", 5);
		n += 5;
	}
	CHECK_INT(admin_parse_request(buf, n, &req), 0);
	memcpy(buf + n, "X: y\n\n", 6);
	CHECK_INT(admin_parse_request(buf, n + 6, &req), 431);
	free(buf);
}

int
main(void)
{
	RUN(test_request_line);
	RUN(test_targets);
	RUN(test_methods);
	RUN(test_headers);
	RUN(test_line_ends);
	RUN(test_headlen);
	RUN(test_incomplete);
	RUN(test_overlong);
	return T_DONE();
}
