/* conn.h - one client connection: read buffer, parse/execute through cmd.c,
 * output queue with backpressure. A connection belongs to one worker and is
 * touched only by that worker's thread. */
#ifndef BITCACHED_CONN_H
#define BITCACHED_CONN_H

#include <stdbool.h>
#include <stdint.h>

struct worker;

/* Take over an accepted, non-blocking socket; tls: speak TLS on it
 * (tls.c). On failure the socket is closed. Worker thread. */
void conn_new(struct worker *w, int fd, bool is_unix, bool tls);

/* While all connections' queued replies are over the output budget, close
 * w's largest queue (at most one per call). The worker calls this on a
 * timer, so that the budget is restored even when no request arrives.
 * Worker thread. */
void conn_budget_tick(struct worker *w);

/* A commit of the store finished: send the replies of w's connections
 * whose writes it made durable (or their errors, if it failed) and let
 * those connections go on. Returns the lowest commit epoch whose end may
 * release a reply of the connections still parked (UINT64_MAX: none; 1:
 * one waits for something else than an epoch, any commit may release it;
 * a write staged in this pass is left to conn_pass_end), and in *n how
 * many are parked. Worker thread. */
uint64_t conn_commit_done(struct worker *w, unsigned *n);

/* The worker's loop ran its ready events: write the records its requests
 * staged (one write per shard, cask_batch_flush) and send the replies
 * that waited for them. Called before the loop polls again. Worker
 * thread. */
void conn_pass_end(struct worker *w);

/* The value read that conn's parked request waited for is done (readq.c):
 * run it again and go on. owner is the struct conn. Worker thread. */
void conn_read_resume(void *owner);

/* The store's unblock or commit hook woke w: run again the request of
 * every connection whose write would have waited for a roll-over
 * (CASK_EBLOCKED); one that is still blocked waits again. Worker
 * thread. */
void conn_unblock_all(struct worker *w);

/* Every connection of w: stop reading; close now if nothing is queued, else
 * once the queue has been written. For graceful shutdown. Worker thread. */
void conn_drain_all(struct worker *w);

/* Close and free every connection of w now. Worker thread, or any thread
 * once the worker's loop has ended. */
void conn_close_all(struct worker *w);

#endif
