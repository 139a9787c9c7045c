/* The listening socket: bind, accept, hand each client to a session. */
#ifndef MXTLS_LISTENER_H
#define MXTLS_LISTENER_H

#include "session.h"

struct listener {
	int fd;
	ev_io io;
	struct proxy *px;
};

/* Bind and listen on cfg->listen; -1 with err set on failure. */
int listener_open(struct listener *l, const struct config *cfg, char *err,
    size_t errlen);
void listener_start(struct listener *l, struct proxy *px);
/* Stop accepting and close the socket: new connection attempts fail. */
void listener_close(struct listener *l);

#endif
