/* listen.h - listening sockets (TCP on each -l address, and the -s unix
 * socket) and the accept path on the main thread's event_base. Accepted
 * sockets go to workers round robin; past -c they get memcached's
 * "ERROR Too many open connections" and are closed. */
#ifndef BITCACHED_LISTEN_H
#define BITCACHED_LISTEN_H

struct addrinfo;
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

/* The addresses of host to bind a socket of socktype (SOCK_STREAM,
 * SOCK_DGRAM) to on port (a negative one: port 0, a port the kernel
 * picks), into *res (freeaddrinfo); getaddrinfo's status. Shared with the
 * UDP sockets (udp.c). */
int listen_resolve(const char *host, int port, int socktype,
                   struct addrinfo **res);
/* A non-blocking, close-on-exec socket bound to ai's address (with
 * SO_REUSEADDR, and IPv6 only for an IPv6 one, so that "0.0.0.0,::" can
 * both be bound): its fd, or -1 with the errno in *err. */
int listen_bind(const struct addrinfo *ai, int *err);

#endif
