/* watch.h - memcached's `watch`: connections that asked for it receive a
 * log line per fetch (item_get) or store (item_store) made by any worker,
 * and per item the store evicts (eviction).
 * A line is appended to each matching watcher's output buffer (thread-safe
 * evbuffers) and the watcher's own worker is woken to write it; a watcher
 * that does not keep up loses lines past its watcher_logbuf_size. */
#ifndef BITCACHED_WATCH_H
#define BITCACHED_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/cmd.h"

struct evbuffer;
struct event;
struct watch_sink;

/* Watchers registered now; cmd.c checks it before building an event. */
extern atomic_uint watch_count;

/* Register a watcher: lines go to out (whose locking must be enabled) and
 * wake is made active after each. cap: most bytes queued before lines are
 * dropped. NULL when out of memory. */
struct watch_sink *watch_add(struct evbuffer *out, struct event *wake,
                             unsigned mask, size_t cap);
/* Unregister; after return no thread touches out or wake. NULL-safe. */
void watch_remove(struct watch_sink **w);

/* cmd_env.watch: format ev and hand it to the matching watchers. */
void watch_event(void *arg, const struct cmd_watch_ev *ev);

/* memcached's connevents: a client connection opened (WATCH_CONN_NEW) or
 * closed, and why (memcached's reasons, in its order). */
enum watch_conn_ev {
    WATCH_CLOSE_ERROR = 0,
    WATCH_CLOSE_NORMAL,   /* the client closed, or sent quit */
    WATCH_CLOSE_IDLE,     /* -o idle_timeout */
    WATCH_CLOSE_SHUTDOWN, /* the server is stopping */
    WATCH_CONN_NEW,
};
/* fd is the client's socket, still open. Cheap without watchers. */
void watch_conn(int fd, bool is_unix, enum watch_conn_ev ev);

/* cask_options.evicted (arg: the cmd_env, for size classes): an eviction
 * line per item, as memcached's logger writes it; lost items count as
 * skipped lines of each evictions watcher. */
struct cask_evicted;
void watch_evicted(void *arg, const struct cask_evicted *ev, size_t n,
                   uint64_t lost);
/* cask_options.evicted_wanted: is any evictions watcher registered? */
bool watch_evictions_wanted(void *arg);

/* For stats: lines sent to watchers and lost by slow ones, since start. */
void watch_counts(uint64_t *sent, uint64_t *skipped);

#endif
