/* fdlimit.h - the process's descriptor budget, for the accept path: raises
 * the soft RLIMIT_NOFILE to fit -c at start, keeps one spare descriptor so
 * that a client can still be told "ERROR Too many open connections" when the
 * table is full (memcached keeps reserved fds for the same reason), and says
 * when an accepted socket leaves too few descriptors for the store. Main
 * thread only. */
#ifndef BITCACHED_FDLIMIT_H
#define BITCACHED_FDLIMIT_H

#include <stdbool.h>

/* Descriptors kept free for the store (segments, hint files, compaction)
 * and the workers: a connection that would eat into them is refused. */
#define FDLIMIT_HEADROOM 64

/* Raise the soft RLIMIT_NOFILE to fit maxconns connections plus the
 * server's own files (shards, threads), up to the hard limit. Logs what it
 * did, and a warning naming -c when the hard limit is too low. */
void fdlimit_raise(unsigned maxconns, unsigned shards, unsigned threads);

/* Open the spare descriptor (idempotent). 0 or an errno. */
int fdlimit_reserve(void);
/* Close the spare so that one more descriptor can be opened; call
 * fdlimit_reserve() right after. */
void fdlimit_release(void);

/* Does descriptor fd leave fewer than FDLIMIT_HEADROOM free under the
 * current soft limit? The limit is re-read at most every 100 ms: an
 * operator may lower it with prlimit while the server runs. */
bool fdlimit_near(int fd);

#endif
