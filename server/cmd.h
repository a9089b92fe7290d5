/* cmd.h - executes memcached requests against the store: the one place where
 * protocol/ (parse, format) meets storage/ (cask). Knows nothing of sockets,
 * libevent or threads: a connection hands it bytes and an output sink, and it
 * parses one request, runs it and writes the reply into the sink. The server's
 * conn.c drives it; tests drive it directly with an in-memory sink.
 */
#ifndef BITCACHED_CMD_H
#define BITCACHED_CMD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/proto.h"
#include "server/cmd_meta.h"
#include "server/cmd_read.h"
#include "storage/cask.h"

/* Where replies go. Implemented by conn.c over its output queue, and by tests
 * over a growable buffer. */
struct cmd_sink {
    /* Append n bytes (copied before return). */
    void (*bytes)(void *arg, const void *p, size_t n);
    /* Append n bytes of buf and take ownership of it: buf was malloc'd and is
     * freed with free() once written (or when the connection goes). Lets a
     * value read by cask_get reach the socket without another copy. */
    void (*value)(void *arg, char *buf, size_t n);
    void *arg;
    /* Append the value ref names (a place in a segment file, cask_get_ref)
     * and take over releasing it (cask_vref_release) once it is sent or
     * the connection goes. NULL: the sink takes copies only, and gets ask
     * the store for none (TLS, UDP, --sync=always staging, tests). */
    void (*value_ref)(void *arg, struct cask_vref *ref);
};

/* memcached's slab class ids are 1..CMD_CLASSES-1 (cmd_admin_class). */
#define CMD_CLASSES 64

/* The counters of cmd_counters that memcached's `stats slabs` gives per
 * class, counted in the class of the item answered (cmd_admin_cls). */
struct cmd_class_counters {
    uint64_t get_hits;
    uint64_t cmd_set;
    uint64_t delete_hits;
    uint64_t incr_hits;
    uint64_t decr_hits;
    uint64_t cas_hits;
    uint64_t cas_badval;
    uint64_t touch_hits;
    uint64_t outofmemory; /* stores refused for memory (-M) */
};

/* Per-thread counters behind memcached's `stats`. Each worker owns one and
 * only its thread writes it; stats.c sums them (reads may be slightly stale).
 * Only uint64_t fields: stats.c sums them as an array.
 */
struct cmd_counters {
    uint64_t cmd_get; /* keys looked up by get/gets/gat/gats/mg */
    uint64_t cmd_set; /* storage commands, including failed ones */
    uint64_t cmd_touch;
    uint64_t cmd_flush;
    uint64_t get_hits;
    uint64_t get_misses;
    uint64_t get_expired;
    uint64_t get_flushed;
    uint64_t delete_hits;
    uint64_t delete_misses;
    uint64_t incr_hits;
    uint64_t incr_misses;
    uint64_t decr_hits;
    uint64_t decr_misses;
    uint64_t cas_hits;
    uint64_t cas_misses;
    uint64_t cas_badval;
    uint64_t touch_hits;
    uint64_t touch_misses;
    uint64_t store_too_large;
    uint64_t store_no_memory; /* stores refused with CASK_ENOMEM (-M) */
    uint64_t total_items;     /* items successfully stored */
    uint64_t meta_cmds;
    uint64_t get_corrupt; /* keys of a get answered as a miss because their
                           * record failed its checksum (or could not be
                           * read) */
    uint64_t auth_cmds;   /* SASL auth/step requests (binary, -S) */
    uint64_t auth_errors; /* those that failed */
    /* get_hits, cmd_set, ... again by class: each total above is the sum
     * of its column */
    struct cmd_class_counters cls[CMD_CLASSES];
};

/* memcached's watch masks (cmd_conn.watch_mask) and the events cmd.c
 * reports to watchers through cmd_env.watch. */
#define CMD_WATCH_FETCHERS   1u
#define CMD_WATCH_MUTATIONS  2u
#define CMD_WATCH_OTHER      4u  /* sysevents, ...: never logged */
#define CMD_WATCH_CONNEVENTS 8u  /* conn_new, conn_close (watch.c) */
#define CMD_WATCH_EVICTIONS  16u /* items evicted (watch.c) */

struct cmd_watch_ev {
    enum { CMD_WATCH_GET, CMD_WATCH_STORE } type;
    const char *key;
    size_t klen;
    /* item_get: not_found, found, flushed, expired; item_store:
     * not_stored, stored, exists, not_found, too_large, no_memory (as
     * memcached's maps) */
    unsigned status;
    unsigned cmd; /* item_store: null add set replace append prepend cas */
    int64_t ttl_s;
    unsigned clsid;
    uint32_t size;
    int fd;
};

/* What admin commands switch at run time (lru_crawler enable/disable,
 * sleep, tocrawl: shown by stats settings); shared by every connection. */
struct cmd_admin_state {
    atomic_bool lru_crawler;
    atomic_uint lru_crawler_sleep;
    /* bit c: stats items/slabs found class c holding items (memcached
     * keeps a class's pages: it stays listed) */
    _Atomic uint64_t classes_seen;
    atomic_ulong lru_crawler_tocrawl;
    atomic_uint slab_automove;          /* slabs automove N */
    _Atomic double slab_automove_ratio; /* slabs automove ratio R */
    bool slab_reassign;  /* -o slab_reassign; fixed at start-up */
    bool lru_maintainer; /* -o lru_maintainer (not no_modern); fixed too */
    /* what lru mode, lru temp_ttl and lru tune set (stats settings shows
     * them; memcached's LRU has no counterpart here) */
    atomic_bool lru_segmented;
    atomic_bool temp_lru;
    atomic_uint temporary_ttl;
    atomic_uint hot_lru_pct;
    atomic_uint warm_lru_pct;
    _Atomic double hot_max_factor;
    _Atomic double warm_max_factor;
};

/* What stats items/slabs report per class beyond what a walk of the store
 * counts (cmd_env.class_figures). */
struct cmd_class_figures {
    struct cmd_class_counters srv[CMD_CLASSES]; /* the workers' */
    struct cask_class_stats store[CMD_CLASSES]; /* the store's drops */
    bool held[CMD_CLASSES]; /* the class has held an item since start
                             * (whatever stats reset did) */
};

/* Shared by every connection; set up once before the workers start and
 * read-only afterwards. */
struct cmd_env {
    struct cask *store;
    uint32_t item_max; /* -I: largest value accepted */
    /* values announced and still arriving, on all connections together
     * (--input-budget; NULL: no bound) */
    struct proto_budget *in_budget;
    bool enable_shutdown; /* --enable-shutdown (memcached's -A) */
    bool cas_disabled;    /* -C: cas shown as 0, the cas command fails */
    bool flush_disabled;  /* -F: flush_all refused */
    bool dump_disabled;   /* -X: metadump and cachedump refused */
    bool watch_disabled;  /* -W: watch refused */
    /* memcached's size classes (its -f, -n, slab_chunk_max), which key
     * dumps and stats items/slabs report: chunk sizes class_size[1..
     * nclasses], growing. */
    uint32_t class_size[65];
    unsigned nclasses;
    /* cache_memlimit N (megabytes): change -m; NULL refuses the command. */
    void (*set_memlimit)(void *arg, uint64_t bytes);
    void *set_memlimit_arg;
    /* refresh_certs: reload the TLS certificate and key; 0, or -1 with
     * memcached's error text in err. NULL: "Error TLS not enabled". */
    int (*refresh_certs)(char *err, size_t cap);
    /* replica_of none: promote a replica; 0, or -1 with the reason in
     * err. NULL refuses the command. */
    int (*replica_of)(void *arg, const char *target, char *err, size_t cap);
    void *replica_of_arg;
    struct cmd_admin_state *admin; /* NULL: crawler always on */
    /* watch: called for each event while *watchers != 0; may be NULL. */
    void (*watch)(void *arg, const struct cmd_watch_ev *ev);
    void *watch_arg;
    const atomic_uint *watchers;
    const char *version; /* for `version` */
    /* Unix time in seconds, used to turn exptimes into absolute times; must
     * be the same clock the store was opened with. NULL means time(NULL). */
    int64_t (*clock)(void *arg);
    void *clock_arg;
    /* Unix time the server started (0: unknown): memcached's TTLs of an
     * item expired at once count from its own start. */
    int64_t started_s;
    /* `stats [args]`: write the whole reply (STAT lines and END, or an error
     * line) to out. args/len is the text after "stats " (may be empty). */
    void (*stats)(void *arg, const char *args, size_t len,
                  const struct cmd_sink *out);
    void *stats_arg;
    /* `verbosity N`: set the server's log level. May be NULL. */
    void (*verbosity)(void *arg, unsigned level);
    void *verbosity_arg;
    /* Win/stale item state of the meta commands (cmd_meta.h), shared by
     * every connection and locked inside. NULL: none is kept (mg N still
     * answers W, nothing ever answers Z or X). */
    struct cmd_meta *meta;
    /* stats items/slabs: the per-class figures (cmd_admin.h) counted
     * since the last `stats reset`. NULL: the workers' counters are not
     * reachable, the store's are taken as they are. */
    void (*class_figures)(void *arg, struct cmd_class_figures *out);
    void *class_figures_arg;
};

/* What it takes to answer a request's error after its reply was already
 * written (a write whose deferred commit then failed: cmd_late_error).
 * cmd_execute and cmd_bin_execute set it for each request they run. */
struct cmd_req_tag {
    bool bin;        /* binary: an error packet echoing opcode and opaque */
    bool silent;     /* text with noreply: its errors are not sent */
    uint8_t cmd;     /* text: the command (enum proto_cmd), for the text
                      * of its errors (cmd_error_text) */
    uint8_t opcode;  /* binary */
    uint32_t opaque; /* binary, as sent */
};

/* Per connection. Owned by the connection; touched only by its thread. */
struct cmd_conn {
    const struct cmd_env *env;
    struct cmd_counters *ctr; /* the owning worker's counters */
    struct cmd_sink out;
    struct proto_parser parser; /* incremental parser state */
    /* Asked before each key of a multi-get after the first one of a call:
     * true stops the reply there (CMD_PAUSE). NULL: never full. */
    bool (*out_full)(void *arg);
    void *out_full_arg;
    /* A multi-get paused before the key at this offset of its key list. */
    bool get_paused;
    size_t get_pos;
    struct cmd_admin_job *job; /* a dump in progress (cmd_admin.c) */
    int fd;                    /* the client's socket, for watch lines */
    unsigned watch_mask;       /* CMD_WATCH: what the client asked for */
    struct cmd_req_tag tag;    /* of the request run last */
    struct cmd_reader rd;      /* value reads off the thread (cmd_read.h) */
    bool quit;                 /* CMD_CLOSE came from quit: a normal close */
    /* Requests run since memcached would have written its replies out (a
     * new read, a get's END, mn): metadump refuses to follow them in one
     * read, as memcached's does. fresh: the next request starts a read. */
    unsigned since_flush;
    bool fresh;
    /* Set by the server: a write of this connection that would wait for
     * a roll-over returns CMD_PARK instead (cask_park), with
     * write_parked set, nothing written, counted or answered; the server
     * runs it again when the store says the wait may be over. Text, meta
     * and binary writes, flush_all (its state file write), touch, mg with T or
     * N, binary touch and gat, and text gat and gats (at the key whose touch
     * would wait, resumed there through get_pos, the keys before it answered
     * once); watched or not (a store's watch lines are logged once it ran). */
    bool park_writes;
    bool write_parked; /* the last CMD_PARK was such a write's */
    /* A flush_all (text or binary) parked until the store persisted it
     * (cask_flush_park): run again, it answers once that is done. */
    struct cask_flush_wait *flush_wait;
};

enum cmd_status {
    CMD_DONE = 0,  /* consumed *used bytes (a request ran, or bytes of a
                    * swallowed data block were dropped, or, with *used 0,
                    * a batch of a dump was written); call again */
    CMD_NEED_MORE, /* no complete request in buf: read more, then call again
                    * with the same unconsumed bytes first */
    CMD_CLOSE,     /* write out what is queued, then close (quit, or the
                    * framing is lost: memcached closes too) */
    CMD_SHUTDOWN,  /* `shutdown` accepted: the server should stop */
    CMD_PAUSE,     /* a multi-get stopped because out_full said so; *used is
                    * 0: call again with the same bytes once the output has
                    * drained, and the reply goes on from the next key */
    CMD_WATCH,     /* `watch` accepted ("OK" written): the connection now
                    * only receives log lines (cc->watch_mask says which)
                    * and reads no more commands */
    CMD_PARK,      /* a get waits for a value read off the thread (cc->rd);
                    * *used is 0 and the replies of the keys before it are
                    * written: call again with the same bytes once
                    * cmd_read_complete names the connection. With
                    * cc->write_parked: a write would wait for a roll-over
                    * (park_writes); call again with the same bytes once
                    * the store's unblock or commit hook ran */
};

/* Set up a connection's state. */
void cmd_conn_init(struct cmd_conn *cc, const struct cmd_env *env,
                   struct cmd_counters *ctr, const struct cmd_sink *out);
/* Bound a connection's output: full(arg) is asked between the keys of a
 * multi-get, so that one request cannot queue more than the cap plus one
 * value (see CMD_PAUSE). */
void cmd_conn_set_throttle(struct cmd_conn *cc, bool (*full)(void *arg),
                           void *arg);
/* Around a write request of cc: let its store writes return
 * CASK_EBLOCKED when cc->park_writes (cmd_park_end(was) puts back what
 * cmd_park_begin returned). cmd_parked: true, and the request marked
 * parked, when rc is CASK_EBLOCKED. */
bool cmd_park_begin(struct cmd_conn *cc);
void cmd_park_end(bool was);
bool cmd_parked(struct cmd_conn *cc, int rc);

/* flush_all at time at (its state file written by the store's roller
 * thread, cask_flush_park): true when the request parked until it is
 * durable (it runs again and answers then), false with the outcome in
 * *rc. */
bool cmd_flush_parks(struct cmd_conn *cc, int64_t at, int *rc);

/* A set refused as too large drops the key's old value, as memcached's
 * does: true when that delete would wait (the request is marked parked
 * and must run again whole), false once it is done. */
bool cmd_unlink_parks(struct cmd_conn *cc, const char *key, size_t klen);

/* The lines memcached's `watch fetchers` and `watch mutations` show, for
 * the binary protocol's commands as for the text ones; each does nothing
 * while no one watches. cmd_watch_get: an item_get line for a lookup of
 * key that returned rc (it filled on a hit, it->gone on a miss).
 * cmd_watch_take: looks key up (metadata only, not counted as a read)
 * before a write, for memcached's own lookup before a delete, an incr, a
 * store; cmd_watch_log logs it once the write ran, so that a write that
 * parks and runs again logs it once. cmd_watch_store: an item_store line for a
 * store of nbytes under mode (is_cas: a cas command) that returned rc; after an
 * append or prepend, of the item made. cmd_watch_created: the lines of an item
 * of nbytes that an incr or ma created from its initial value (memcached stores
 * it as an add: a lookup and a store). */
void cmd_watch_get(struct cmd_conn *cc, const char *key, size_t klen, int rc,
                   const struct cask_item *it);
struct cmd_watch_pre {
    bool taken;
    int rc;
    struct cask_item it;
};
void cmd_watch_take(struct cmd_conn *cc, const char *key, size_t klen,
                    struct cmd_watch_pre *pre);
void cmd_watch_log(struct cmd_conn *cc, const char *key, size_t klen,
                   const struct cmd_watch_pre *pre);
void cmd_watch_store(struct cmd_conn *cc, const char *key, size_t klen,
                     size_t nbytes, uint32_t flags, enum cask_store_mode mode,
                     bool is_cas, int rc, int64_t exp_abs_s);
void cmd_watch_created(struct cmd_conn *cc, const char *key, size_t klen,
                       size_t nbytes, int64_t exp_abs_s);

/* Release whatever cmd_conn_init set up. */
void cmd_conn_deinit(struct cmd_conn *cc);

/* Run at most one request from buf[0..len). *used is set to the bytes
 * consumed (0 on CMD_NEED_MORE). The buffer is only read during the call.
 * Blocks while the store does (see cask.h). Never aborts on any input. */
enum cmd_status cmd_execute(struct cmd_conn *cc, const char *buf, size_t len,
                            size_t *used);

/* The text after "SERVER_ERROR " of the store error err for a request
 * tagged tag: a write a failed commit undid while the store goes on
 * (CASK_EUNDONE) reads as memcached words a store it could not make
 * ("out of memory storing object" for a set, add, replace, append,
 * prepend, cas or ms; "out of memory" otherwise), every other error as
 * cask_strerror names it (a latched shard says "(read-only)").
 * Implemented in cmd_late.c. */
const char *cmd_error_text(const struct cmd_req_tag *tag, int err);

/* Write to out what a request tagged tag answers for the store error err
 * (memcached's SERVER_ERROR line, or a binary error packet; nothing for a
 * silent one), in place of the reply it was given before its commit
 * failed. Implemented in cmd_late.c. */
void cmd_late_error(const struct cmd_req_tag *tag, int err,
                    const struct cmd_sink *out);

/* The env's clock (unix seconds), and an exptime as sent turned into the
 * store's absolute expiry by memcached's rules; for the binary protocol
 * (cmd_bin.c), which shares them with the text commands. */
int64_t cmd_now_s(const struct cmd_env *env);
int64_t cmd_exp_abs(const struct cmd_env *env, int64_t exptime);

/* True while a dump (lru_crawler metadump, stats cachedump/items/slabs) is
 * being written: call cmd_execute again, even with no new input, once the
 * output has drained; it writes the next batch and consumes nothing. */
bool cmd_busy(const struct cmd_conn *cc);

/* Hint for the read buffer: total bytes the request at the start of buf needs
 * (line and data block), or 0 when that is not yet known. Lets the
 * connection grow its buffer once for a large value. */
size_t cmd_bytes_wanted(const struct cmd_conn *cc);

/* True while the rest of a refused data block (too large, or over the
 * input budget) is still to be read and dropped: memcached writes no reply
 * until it has read all of it (conn_swallow). */
bool cmd_swallowing(const struct cmd_conn *cc);

/* The longest request line the parser waits for: a get/gets line may grow up
 * to this before the connection is closed (other lines: 2048 bytes, as in
 * memcached). cmd_bytes_wanted() is 0 while such a line is incomplete, so a
 * read buffer must be able to grow to this size by itself. */
#define CMD_LINE_MAX PROTO_MULTIGET_MAX

#endif
