/* cmd_read.h - where a get's value read runs: on the connection's thread
 * when the value is in the page cache, else on the store's I/O threads
 * (storage/cask_aio.h) while the request waits, parked, and the thread
 * serves other connections. A get-and-touch (gat, gats, mg with T and v,
 * binary gat) reads its value the same way first and then touches the
 * item it read, on the connection's thread (cmd_read_touch).
 *
 * A connection's reader holds the reads its parked request started: the
 * key it waits for, more keys of the same multi-get, and the keys of the
 * gets and mg pipelined after it (read ahead so that several cold keys are
 * read at once), at most CMD_READ_SLOTS in all. Each read is tagged with
 * the request it is for, by that request's offset in the connection's
 * input, and belongs to it only: it is dropped when that request ends or
 * is passed, so a connection holds at most CMD_READ_SLOTS values read
 * ahead of its replies (each up to -I; the output cap does not count
 * them). Knows nothing of libevent or sockets: the server supplies the
 * submit function and tells the reader when a read is done
 * (cmd_read_complete) on the connection's thread.
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

/* Reads of one connection at once: the one it waits for and read-ahead. */
#define CMD_READ_SLOTS 16
#define CMD_READ_AHEAD (CMD_READ_SLOTS - 1)
/* A get-and-touch whose item was replaced between its value read and its
 * touch reads again this many times, then reads and touches on the
 * connection's thread. */
#define CMD_READ_RETRIES 3

struct cmd_read_ent;

struct cmd_reader {
    /* Queue r for an I/O thread, whose done call must bring it back to
     * the connection's thread (cmd_read_complete). NULL: every read runs
     * on the connection's thread (tests, UDP). */
    void (*submit)(void *arg, struct cask_aio_req *r);
    void *submit_arg;
    void *owner; /* what cmd_read_complete returns to resume */
    /* Set: cmd_read_complete calls resume(owner) itself and returns NULL
     * (a UDP request; it must not submit again while the worker stops). */
    void (*resume)(void *owner);
    struct cmd_read_ent *ents[CMD_READ_SLOTS];
    unsigned n;
    struct cmd_read_ent *waiting; /* the read the request is parked on */
    unsigned long long parked;    /* requests parked on a read, ever */
    unsigned retries;             /* cmd_read_touch's, this request */
    size_t ahead_end; /* input looked ahead up to here (from the current
                       * request's start) */
};

struct cmd_conn;

/* A value of up to this many bytes read on the connection's thread may be
 * handed out in the thread's own buffer instead of a malloc'd one
 * (borrowed): the caller copies it into its reply before the next read
 * and lets cmd_read_free drop it. Larger values are never borrowed. */
#define CMD_READ_BORROW_MAX 512

/* Whether val is borrowed (see CMD_READ_BORROW_MAX). */
bool cmd_read_borrowed(const char *val);

/* Free a value a read handed out (nothing for a borrowed one). */
void cmd_read_free(char *val);

/* cask_get_fetch for a request of cc: returns what it returns (the value in
 * *val, the caller's to free with cmd_read_free, maybe borrowed), or
 * CMD_READ_PARK with nothing counted or returned yet. Connection's
 * thread. */
int cmd_read_get(struct cmd_conn *cc, const char *key, size_t klen,
                 struct cask_item *it, char **val, bool fetch);

/* cmd_read_get that may hand a value read on this thread out as *ref
 * (cask_get_ref: a large, checked, cached value, for the sink's
 * value_ref); a value read off the thread is always a copy. ref NULL is
 * cmd_read_get. */
int cmd_read_get_ref(struct cmd_conn *cc, const char *key, size_t klen,
                     struct cask_item *it, char **val, struct cask_vref *ref,
                     bool fetch);

/* cask_get_fetch with val NULL for a request of cc that needs the item
 * but not its value (mg without v): only the record's header and key are
 * read, to check it is key's, off the thread when they are cold
 * (CMD_READ_PARK, nothing counted or returned yet). Connection's thread. */
int cmd_read_head(struct cmd_conn *cc, const char *key, size_t klen,
                  struct cask_item *it, bool fetch);

/* cask_touch_fetch for a request of cc: the value is read first, off the
 * thread when it is cold (CMD_READ_PARK, nothing touched, counted or
 * returned yet), without counting as a read; then the item with the cas
 * read is touched (cask_touch_cas: exactly once, the cas kept, the fetched
 * bit and access time as a touch sets them, *it as the touch returns it).
 * With val, a miss, a damaged record or an error of the read touches
 * nothing (as cask_touch with a value); without (touch, mg T without v),
 * only the record's header and key are read (cmd_read_head), and a
 * record that cannot be read is touched by cask_touch_fetch on this
 * thread. The value always comes as a copy in *val, never as a reference
 * into the store's files: the touch is a write, so its reply waits behind
 * it in the connection's staging buffer, which would have to read a
 * reference's bytes on the connection's thread, too late to answer a read
 * error with SERVER_ERROR. Connection's thread. */
int cmd_read_touch(struct cmd_conn *cc, const char *key, size_t klen,
                   int64_t exp_abs_s, struct cask_item *it, char **val,
                   bool fetch);

/* Start reading key for a later part of the current request (a multi-get
 * parked before it), unless it is already read or the slots are full. */
void cmd_read_ahead(struct cmd_conn *cc, const char *key, size_t klen,
                    bool fetch);

/* The same for the request that starts at offset at from the current
 * one's start in the connection's input (a get pipelined after a parked
 * request: only requests that change nothing may come between). Returns
 * false when no more reads can start (slots full, or no pool). */
bool cmd_read_ahead_at(struct cmd_conn *cc, size_t at, const char *key,
                       size_t klen, bool fetch);

/* cmd_read_ahead_at for a request that needs the item only
 * (cmd_read_head). */
bool cmd_read_ahead_head_at(struct cmd_conn *cc, size_t at, const char *key,
                            size_t klen, bool fetch);

/* Drop every read (the connection goes, or its input is not what was
 * looked ahead at). Reads still running are orphaned and freed when they
 * finish. */
void cmd_read_reset(struct cmd_reader *rd);

/* The current request ended and consumed used bytes of the input: drop
 * its reads and those of requests it passed, and keep the ones read ahead
 * for the requests after it. */
void cmd_read_consumed(struct cmd_reader *rd, size_t used);

/* Whether the request waits for a read. */
bool cmd_read_waiting(const struct cmd_reader *rd);

/* A read submitted by a reader finished (its done call came back to the
 * connection's thread). Returns the reader's owner when its request was
 * waiting for this read (run it again now), else NULL; an orphan's read is
 * freed here. */
void *cmd_read_complete(struct cask_aio_req *r);

#endif
