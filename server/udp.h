/* udp.h - memcached's UDP transport (-U PORT): each datagram carries an
 * 8-byte frame header (request id, sequence number, datagram count,
 * reserved) and one request, text or binary; the reply goes back split
 * over datagrams of at most 1400 bytes with the same request id. Datagrams
 * are read and answered on the worker threads, with the workers' counters;
 * there is no per-client state. Under --sync=always a write's reply waits
 * for its commit without blocking the worker (udp_commit_done). A request
 * whose value is not in the page cache waits for an I/O thread
 * (cmd_read.h) with a copy of its datagram, and is answered when the read
 * is back. */
#ifndef BITCACHED_UDP_H
#define BITCACHED_UDP_H

#include <stddef.h>

struct server;
struct udp; /* opaque */
struct worker;

#define UDP_HDR_LEN     8u
#define UDP_PAYLOAD_MAX 1400u /* a reply datagram, frame header included */
#define UDP_DATA_MAX    (UDP_PAYLOAD_MAX - UDP_HDR_LEN)

/* Bind a UDP socket on every -l address at settings->udp_port (not yet
 * served). On failure prints a line naming the address and returns an
 * errno. Main thread, before the workers start. */
int udp_open(struct server *srv, struct udp **out);

/* Serve the sockets on every worker's event base (workers created). */
int udp_enable(struct udp *u);

/* --sync=always, on worker w's thread after a commit of the store: send
 * the replies w's handlers held for writes now committed (or the error of
 * a failed commit), in the order the requests came. */
void udp_commit_done(struct udp *u, struct worker *w);

/* On worker w's thread after the store's unblock hook: run again the
 * requests of w's handlers whose writes would have waited for a
 * roll-over or a disk reserve; answer those that now run. */
void udp_unblock_all(struct udp *u, struct worker *w);

/* Close the sockets and free u; sets *u to NULL. After the workers have
 * stopped. Safe on *u == NULL. */
void udp_close(struct udp **u);

/* Split reply[0..len) into datagrams for request id rid, each with its
 * frame header, calling send(arg, datagram, n) for each. Returns the
 * number of datagrams (0 when len is 0). Exposed for tests. */
unsigned udp_frame(const char *reply, size_t len, unsigned rid,
                   void (*send)(void *arg, const void *dgram, size_t n),
                   void *arg);

#endif
