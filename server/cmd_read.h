/* cmd_read.h - where a get's value read runs: on the connection's thread
 * when the value is in the page cache, else on the store's I/O threads
 * (storage/cask_aio.h) while the request waits, parked, and the thread
 * serves other connections.
 *
 * A connection's reader holds the reads its current request started: the
 * key it waits for and up to CMD_READ_AHEAD more keys of the same
 * multi-get, read ahead so that several cold keys are read at once. The
 * results belong to that request only: they are dropped when it ends, so a
 * connection holds at most CMD_READ_SLOTS values read ahead of its replies
 * (each up to -I; the output cap does not count them). Knows
 * nothing of libevent or sockets: the server supplies the submit function
 * and tells the reader when a read is done (cmd_read_complete) on the
 * connection's thread.
 */
#ifndef BITCACHED_CMD_READ_H
#define BITCACHED_CMD_READ_H

#include <stdbool.h>
#include <stddef.h>

#include "storage/cask_aio.h"

/* Returned by cmd_read_get instead of a store code: the value is being read
 * off the thread; stop the request here and run it again once
 * cmd_read_complete names this connection. */
#define CMD_READ_PARK (-3001)

/* Reads of one request at once: the one it waits for and read-ahead. */
#define CMD_READ_SLOTS 16
#define CMD_READ_AHEAD (CMD_READ_SLOTS - 1)

struct cmd_read_ent;

struct cmd_reader {
    /* Queue r for an I/O thread, whose done call must bring it back to
     * the connection's thread (cmd_read_complete). NULL: every read runs
     * on the connection's thread (tests, UDP). */
    void (*submit)(void *arg, struct cask_aio_req *r);
    void *submit_arg;
    void *owner; /* what cmd_read_complete returns to resume */
    struct cmd_read_ent *ents[CMD_READ_SLOTS];
    unsigned n;
    struct cmd_read_ent *waiting; /* the read the request is parked on */
    unsigned long long parked;    /* requests parked on a read, ever */
};

struct cmd_conn;

/* cask_get_fetch for a request of cc: returns what it returns (the value in
 * *val, the caller's to free), or CMD_READ_PARK with nothing counted or
 * returned yet. Connection's thread. */
int cmd_read_get(struct cmd_conn *cc, const char *key, size_t klen,
                 struct cask_item *it, char **val, bool fetch);

/* cmd_read_get that may hand a value read on this thread out as *ref
 * (cask_get_ref: a large, checked, cached value, for the sink's
 * value_ref); a value read off the thread is always a copy. ref NULL is
 * cmd_read_get. */
int cmd_read_get_ref(struct cmd_conn *cc, const char *key, size_t klen,
                     struct cask_item *it, char **val, struct cask_vref *ref,
                     bool fetch);

/* Start reading key for a later part of the current request (a multi-get
 * parked before it), unless it is already read or the slots are full. */
void cmd_read_ahead(struct cmd_conn *cc, const char *key, size_t klen,
                    bool fetch);

/* Drop what the current request read and did not use (its request is
 * over, or the connection goes). Reads still running are orphaned and
 * freed when they finish. */
void cmd_read_reset(struct cmd_reader *rd);

/* Whether the request waits for a read. */
bool cmd_read_waiting(const struct cmd_reader *rd);

/* A read submitted by a reader finished (its done call came back to the
 * connection's thread). Returns the reader's owner when its request was
 * waiting for this read (run it again now), else NULL; an orphan's read is
 * freed here. */
void *cmd_read_complete(struct cask_aio_req *r);

#endif
