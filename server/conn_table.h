/* conn_table.h - who is connected, for memcached's `stats conns`: one entry
 * per listener and per client connection, with its addresses, a coarse
 * state and the time of its last command. Entries are added and removed by
 * the thread that owns the socket and read by whichever worker answers
 * `stats conns`; a mutex covers the list, the state and time are atomics. */
#ifndef BITCACHED_CONN_TABLE_H
#define BITCACHED_CONN_TABLE_H

#include <stdint.h>

/* memcached's state names, as `stats conns` shows them. */
enum conn_table_state {
    CONN_ST_LISTENING = 0,
    CONN_ST_NEW_CMD,   /* accepted, no command received yet */
    CONN_ST_READ,      /* waiting for (the rest of) a command line */
    CONN_ST_NREAD,     /* waiting for the rest of a data block */
    CONN_ST_SWALLOW,   /* dropping a refused data block as it comes */
    CONN_ST_PARSE_CMD, /* running commands */
    CONN_ST_MWRITE,    /* paused until the client reads its replies */
    CONN_ST_WATCH,     /* writing a key dump */
};

struct conn_info;

/* Register socket fd (a listener or an accepted client; is_unix for a
 * unix stream socket). Reads its addresses now. NULL when out of memory:
 * the connection then just does not show. */
struct conn_info *conn_table_add(int fd, int is_listener, int is_unix);
/* Register a bound UDP socket (memcached lists each as "fd:UDP UDP", its
 * address and conn_read). NULL when out of memory. */
struct conn_info *conn_table_add_udp(int fd);
/* Unregister and free; sets *ci to NULL. NULL-safe. */
void conn_table_remove(struct conn_info **ci);
/* Publish the state, and with now_s != 0 the time of the last command.
 * NULL-safe; lock-free. */
void conn_table_set(struct conn_info *ci, enum conn_table_state st,
                    int64_t now_s);

/* The most entries registered at once (listeners, UDP handlers and client
 * connections): memcached's connection_structures, which counts the
 * structures it made and keeps for reuse. */
unsigned conn_table_count(void);

/* Call line(arg, name, value) for every STAT line of `stats conns`, in fd
 * order ("22:addr", "tcp:127.0.0.1:11211", ...). */
void conn_table_stats(int64_t now_s,
                      void (*line)(void *arg, const char *name,
                                   const char *value),
                      void *arg);

#endif
