#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "sockaddr.h"
#include "t.h"

static struct sockaddr_storage
addr(const char *text, int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
	}
	return ss;
}

static void
test_str(void)
{
	struct sockaddr_storage a = addr("192.0.2.1", 25), b = addr("::1", 25);
	struct sockaddr_storage none;
	char dst[64];

	CHECK_INT(sockaddr_str((struct sockaddr *)&a, dst, sizeof(dst)), 0);
	CHECK_STR(dst, "192.0.2.1");
	CHECK_INT(sockaddr_str((struct sockaddr *)&b, dst, sizeof(dst)), 0);
	CHECK_STR(dst, "::1");
	memset(&none, 0, sizeof(none));
	CHECK_INT(sockaddr_str((struct sockaddr *)&none, dst, sizeof(dst)), -1);
	CHECK_STR(dst, "unknown");
}

static void
test_same(void)
{
	static const struct {
		const char *a;
		int pa;
		const char *b;
		int pb, ports, same;
	} rows[] = {
		{ "192.0.2.1", 25, "192.0.2.1", 25, 1, 1 },
		{ "192.0.2.1", 25, "192.0.2.1", 587, 0, 1 },
		{ "192.0.2.1", 25, "192.0.2.1", 587, 1, 0 },
		{ "192.0.2.1", 25, "192.0.2.2", 25, 0, 0 },
		{ "2001:db8::1", 25, "2001:db8::1", 25, 1, 1 },
		{ "2001:db8::1", 25, "2001:db8::2", 25, 0, 0 },
		{ "2001:db8::1", 25, "2001:db8::1", 26, 1, 0 },
		/* No mapping: the callers normalise where they need it. */
		{ "::ffff:192.0.2.1", 25, "192.0.2.1", 25, 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sockaddr_storage a = addr(rows[i].a, rows[i].pa);
		struct sockaddr_storage b = addr(rows[i].b, rows[i].pb);

		CHECK_INT(sockaddr_same(&a, &b, rows[i].ports), rows[i].same);
		CHECK_INT(sockaddr_same(&b, &a, rows[i].ports), rows[i].same);
	}
}

int
main(void)
{
	RUN(test_str);
	RUN(test_same);
	return T_DONE();
}
