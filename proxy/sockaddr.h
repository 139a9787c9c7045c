/*
 * Socket addresses: as text, and compared.  Pure; conn.c, the session,
 * the upstream and the TLS reports share it (and the unit tests' fake
 * connections, which replace conn.c but not this).
 */
#ifndef MXTLS_SOCKADDR_H
#define MXTLS_SOCKADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* The address as text ("127.0.0.1", "::1"); 0, or -1 with "unknown". */
int sockaddr_str(const struct sockaddr *sa, char *dst, size_t len);

/*
 * a and b are the same IPv4 or IPv6 address (no mapping between the
 * two), and with ports the same port too.  1 or 0.
 */
int sockaddr_same(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b, int ports);

#endif
