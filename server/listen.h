/* listen.h - listening sockets (TCP on each -l address, and the -s unix
 * socket) and the accept path on the main thread's event_base. Accepted
 * sockets go to workers round robin; past -c they get memcached's
 * "ERROR Too many open connections" and are closed. */
#ifndef BITCACHED_LISTEN_H
#define BITCACHED_LISTEN_H

struct server;
struct listeners;

/* Bind every configured address, without listening yet: until
 * listen_enable, a client's connect is refused. On failure prints a line
 * naming the address and returns an errno. */
int listen_open(struct server *srv, struct listeners **out);
/* Listen (the first time) and start accepting. */
int listen_enable(struct listeners *l);
/* Close every listener (and unlink the unix socket); sets *l to NULL. */
void listen_close(struct listeners **l);

#endif
