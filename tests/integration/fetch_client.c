/*
 * A test driver for mxtls-fetch: starts it with one end of a socketpair
 * as fd 3 (as mxtls does), sends the requests of the command line at
 * once, prints each response as it arrives, then closes its end and
 * reports how the fetcher exited.
 *
 *	fetch_client [-x FETCHER] [-t SECONDS] REQUEST [-- REQUEST]...
 *
 * A REQUEST is words:
 *	url=URL addr=IP (repeatable) ca=PATH max=BYTES cto=MS to=MS
 *	etag=VALUE ims=VALUE text (require text/plain) id=N (default: its
 *	position, from 1) out=FILE (write the body there) repeat=N (send it
 *	N times, ids id..id+N-1)
 *	raw=junk	a well-framed request of garbage fields (id 77)
 *	raw=http	an http:// URL, which the encoder refuses (id 78)
 *	raw=unframeable	a length prefix out of range (no answer expected)
 *
 * Output, one block per response in arrival order:
 *	id=N result=NAME status=N bytes=N ms=N
 *	id=N ctype=VALUE / etag=VALUE / lastmod=VALUE / error=VALUE (if any)
 * then "eof" if the fetcher closed before answering everything, and
 * "exit=N" or "signal=N".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fetchproto.h"

static pid_t child;

static void
on_alarm(int sig)
{
	(void)sig;
	(void)write(1, "timeout\n", 8);
	if (child > 0)
		kill(child, SIGKILL);
	_exit(3);
}

static void
writeall(int fd, const unsigned char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			perror("write");
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

struct req {
	struct fetch_request rq;
	const char *out;
	const char *raw;
	int repeat;
};

#define NREQ_MAX 256
static struct req reqs[NREQ_MAX];
static int nreqs;

static void
parse_word(struct req *r, char *w)
{
	char *v = strchr(w, '=');

	if (strcmp(w, "text") == 0) {
		r->rq.flags |= FETCHPROTO_F_TEXT_PLAIN;
		return;
	}
	if (v == NULL) {
		fprintf(stderr, "fetch_client: bad word %s\n", w);
		exit(64);
	}
	*v++ = '\0';
	if (strcmp(w, "url") == 0)
		r->rq.url = v;
	else if (strcmp(w, "addr") == 0) {
		struct fetch_addr *a = &r->rq.addrs[r->rq.naddrs];

		if (r->rq.naddrs == FETCHPROTO_ADDRS_MAX)
			exit(64);
		if (inet_pton(AF_INET, v, a->a) == 1)
			a->len = 4;
		else if (inet_pton(AF_INET6, v, a->a) == 1)
			a->len = 16;
		else {
			fprintf(stderr, "fetch_client: bad address %s\n", v);
			exit(64);
		}
		r->rq.naddrs++;
	} else if (strcmp(w, "ca") == 0)
		r->rq.ca_bundle = v;
	else if (strcmp(w, "max") == 0)
		r->rq.max_bytes = (uint32_t)strtoul(v, NULL, 10);
	else if (strcmp(w, "cto") == 0)
		r->rq.connect_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
	else if (strcmp(w, "to") == 0)
		r->rq.timeout_ms = (uint32_t)strtoul(v, NULL, 10);
	else if (strcmp(w, "etag") == 0)
		r->rq.etag = v;
	else if (strcmp(w, "ims") == 0)
		r->rq.if_modified_since = v;
	else if (strcmp(w, "id") == 0)
		r->rq.id = (uint32_t)strtoul(v, NULL, 10);
	else if (strcmp(w, "out") == 0)
		r->out = v;
	else if (strcmp(w, "raw") == 0)
		r->raw = v;
	else if (strcmp(w, "repeat") == 0)
		r->repeat = atoi(v);
	else {
		fprintf(stderr, "fetch_client: unknown key %s\n", w);
		exit(64);
	}
}

/* A frame by hand: what mxtls could never encode. */
static size_t
raw_frame(const char *kind, unsigned char *b)
{
	static const unsigned char junk[] = {
		0, 0, 0, 14, 1, 1,
		1, 0, 0, 0, 4, 0, 0, 0, 77, /* id 77 */
		99, 0, 0, 0, 0,		     /* an unknown tag */
	};
	static const char url[] = "http://example.test/";
	size_t n = 0, ul = sizeof(url) - 1;

	if (strcmp(kind, "junk") == 0) {
		memcpy(b, junk, sizeof(junk));
		b[3] = (unsigned char)(sizeof(junk) - 4);
		return sizeof(junk);
	}
	if (strcmp(kind, "unframeable") == 0) {
		memcpy(b, "\xff\xff\xff\xff\x01\x01", 6);
		return 6;
	}
	if (strcmp(kind, "http") == 0) {
		n = 4;
		b[n++] = 1;
		b[n++] = 1;
#define F(tag, len) (b[n++] = (tag), b[n++] = 0, b[n++] = 0, b[n++] = 0, \
	b[n++] = (unsigned char)(len))
		F(1, 4);
		memcpy(b + n, "\0\0\0\x4e", 4); /* id 78 */
		n += 4;
		F(2, ul);
		memcpy(b + n, url, ul);
		n += ul;
		F(3, 4);
		memcpy(b + n, "\x7f\0\0\1", 4);
		n += 4;
		F(5, 4);
		memcpy(b + n, "\0\0\x10\0", 4);
		n += 4;
		F(6, 4);
		memcpy(b + n, "\0\0\x10\0", 4);
		n += 4;
		F(7, 4);
		memcpy(b + n, "\0\0\x10\0", 4);
		n += 4;
#undef F
		b[0] = b[1] = 0;
		b[2] = (unsigned char)((n - 4) >> 8);
		b[3] = (unsigned char)(n - 4);
		return n;
	}
	fprintf(stderr, "fetch_client: unknown raw kind %s\n", kind);
	exit(64);
}

static void
print_str(uint32_t id, const char *key, const char *v)
{
	if (v != NULL)
		printf("id=%lu %s=%s\n", (unsigned long)id, key, v);
}

static const char *
out_file(uint32_t id)
{
	int i;

	for (i = 0; i < nreqs; i++) {
		uint32_t first = reqs[i].rq.id;
		int n = reqs[i].repeat > 0 ? reqs[i].repeat : 1;

		if (reqs[i].raw == NULL && id >= first && id < first + (uint32_t)n)
			return reqs[i].out;
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *fetcher = "build/mxtls-fetch";
	unsigned char *in = NULL, raw[512];
	size_t inlen = 0, incap = 0, flen;
	int sv[2], c, i, expect = 0, got = 0, status, timeout = 60;
	struct req *r;

	while ((c = getopt(argc, argv, "+x:t:")) != -1) {
		if (c == 'x')
			fetcher = optarg;
		else if (c == 't')
			timeout = atoi(optarg);
		else
			return 64;
	}
	r = &reqs[nreqs++];
	for (i = optind; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			if (nreqs == NREQ_MAX)
				return 64;
			r = &reqs[nreqs++];
			continue;
		}
		parse_word(r, argv[i]);
	}
	for (i = 0; i < nreqs; i++) {
		struct fetch_request *q = &reqs[i].rq;

		if (q->id == 0)
			q->id = (uint32_t)i + 1;
		if (q->max_bytes == 0)
			q->max_bytes = 65536;
		if (q->connect_timeout_ms == 0)
			q->connect_timeout_ms = 5000;
		if (q->timeout_ms == 0)
			q->timeout_ms = 10000;
	}

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)timeout);
	if ((child = fork()) < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		if (dup2(sv[1], 3) < 0)
			_exit(127);
		if (sv[0] != 3)
			close(sv[0]);
		if (sv[1] != 3)
			close(sv[1]);
		execl(fetcher, fetcher, (char *)NULL);
		perror(fetcher);
		_exit(127);
	}
	close(sv[1]);

	for (i = 0; i < nreqs; i++) {
		struct req *q = &reqs[i];
		unsigned char *f;
		char err[256];
		int k, n = q->repeat > 0 ? q->repeat : 1;

		if (q->raw != NULL) {
			flen = raw_frame(q->raw, raw);
			writeall(sv[0], raw, flen);
			if (strcmp(q->raw, "unframeable") != 0)
				expect++;
			continue;
		}
		for (k = 0; k < n; k++) {
			struct fetch_request rq = q->rq;

			rq.id += (uint32_t)k;
			if (fetchproto_encode_request(&rq, &f, &flen, err,
			    sizeof(err)) < 0) {
				fprintf(stderr, "fetch_client: request %d: %s\n",
				    i + 1, err);
				return 64;
			}
			writeall(sv[0], f, flen);
			free(f);
			expect++;
		}
	}

	while (got < expect) {
		ssize_t n;
		int fr;

		while ((fr = fetchproto_frame(in, inlen, &flen)) == 1) {
			struct fetch_response rs;
			char err[256];
			const char *of;

			if (fetchproto_decode_response(in, flen, &rs, err,
			    sizeof(err)) < 0) {
				printf("undecodable response: %s\n", err);
			} else {
				printf("id=%lu result=%s status=%lu bytes=%zu "
				    "ms=%lu\n", (unsigned long)rs.id,
				    fetchproto_result_name(rs.result),
				    (unsigned long)rs.status, rs.body_len,
				    (unsigned long)rs.duration_ms);
				print_str(rs.id, "ctype", rs.content_type);
				print_str(rs.id, "etag", rs.etag);
				print_str(rs.id, "lastmod", rs.last_modified);
				print_str(rs.id, "error", rs.error);
				if ((of = out_file(rs.id)) != NULL) {
					FILE *fp = fopen(of, "wb");

					if (fp != NULL) {
						if (rs.body_len > 0)
							fwrite(rs.body, 1,
							    rs.body_len, fp);
						fclose(fp);
					}
				}
				fetchproto_response_free(&rs);
			}
			fflush(stdout);
			memmove(in, in + flen, inlen - flen);
			inlen -= flen;
			got++;
		}
		if (fr < 0) {
			printf("unframeable response\n");
			break;
		}
		if (got >= expect)
			break;
		if (incap - inlen < 65536) {
			incap = inlen + 65536;
			if ((in = realloc(in, incap)) == NULL)
				return 1;
		}
		n = read(sv[0], in + inlen, incap - inlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			printf("eof\n");
			break;
		}
		inlen += (size_t)n;
	}
	free(in);
	close(sv[0]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status))
		printf("exit=%d\n", WEXITSTATUS(status));
	else
		printf("signal=%d\n", WTERMSIG(status));
	return 0;
}
