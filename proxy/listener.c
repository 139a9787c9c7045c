#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"

int
listener_open(struct listener *l, const struct config *cfg, char *err,
    size_t errlen)
{
	int one = 1;

	l->fd = socket(cfg->listen.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->fd, (const struct sockaddr *)&cfg->listen,
	    cfg->listen_len) == -1 || listen(l->fd, 1024) == -1) {
		snprintf(err, errlen, "listen on %s: %s", cfg->listen_str,
		    strerror(errno));
		close(l->fd);
		l->fd = -1;
		return -1;
	}
	return 0;
}

static void
listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;
	int fd, i;

	(void)loop;
	(void)revents;
	/* Bounded per wake-up so a flood cannot starve the sessions. */
	for (i = 0; i < 64; i++) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn(0, "accept-failed", "error",
				    strerror(errno), NULL);
			return;
		}
		session_accept(l->px, fd);
	}
}

void
listener_start(struct listener *l, struct proxy *px)
{
	l->px = px;
	ev_io_init(&l->io, listener_accept_cb, l->fd, EV_READ);
	l->io.data = l;
	ev_io_start(px->loop, &l->io);
}

void
listener_close(struct listener *l)
{
	if (l->fd == -1)
		return;
	ev_io_stop(l->px->loop, &l->io);
	close(l->fd);
	l->fd = -1;
}
