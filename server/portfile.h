/* portfile.h - the ports bound at start-up, written where the environment
 * variable MEMCACHED_PORT_FILENAME says, as memcached does: how a caller
 * learns the port picked for -p -1 or -U -1. */
#ifndef BITCACHED_PORTFILE_H
#define BITCACHED_PORTFILE_H

#include <stdbool.h>

/* After a TCP listener or UDP socket fd is bound: when the variable is set,
 * add a "TCP INET: PORT" (or UDP, INET6) line for it to NAME.lck. */
void portfile_note(int fd, bool udp);

/* Once every socket takes connections: move NAME.lck to NAME (creating
 * an empty file when nothing was bound), so a reader never sees half a
 * list, nor a port that refuses. */
void portfile_commit(void);

#endif
