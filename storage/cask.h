/* cask.h - public API of the storage engine: a store of N bitcask shards.
 *
 * Knows keys, values, flags, absolute expiry times and cas numbers; knows
 * nothing of sockets, libevent or the memcached protocol. Every call is safe
 * from many threads at once. Calls may block on disk I/O (reads hit the page
 * cache in the common case); under CASK_SYNC_ALWAYS a modification blocks until
 * an fdatasync covers it (group commit: one committer thread syncs every
 * shard with pending appends in one pass, shared by all waiting writers),
 * unless the calling thread defers that wait (cask_defer).
 *
 * Time: the store reads the clock through cask_options.clock (unix seconds).
 * An item with exp_abs_s != 0 and exp_abs_s <= now is expired: never returned,
 * treated as absent by every operation, and dropped by compaction. exp_abs_s 0
 * means never. The caller turns memcached's relative/absolute/negative exptime
 * into an absolute time before calling (a negative exptime becomes 1, i.e. an
 * instant long past).
 */
#ifndef BITCACHED_CASK_H
#define BITCACHED_CASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CASK_KEY_MAX           250u
#define CASK_DEFAULT_SHARDS    16u
#define CASK_DEFAULT_SEGMENT   (64u * 1024 * 1024)
#define CASK_DEFAULT_VALUE_MAX (1024u * 1024)
#define CASK_DEFAULT_SYNC_MS   1000u
#define CASK_DEFAULT_COMPACT   0.5

/* Status codes. 0 is success, a positive value is an errno, and the store's
 * own conditions sit in a negative range. */
enum cask_err {
    CASK_OK = 0,
    CASK_ENOTFOUND =
            -1001,    /* no such (live) key, or cas given for a missing key */
    CASK_ENOTSTORED,  /* add: key exists; replace/append/prepend: key missing */
    CASK_EEXISTS,     /* cas mismatch */
    CASK_ETOOBIG,     /* value (or append/prepend result) above value_max */
    CASK_EBADKEY,     /* key length 0 or above CASK_KEY_MAX */
    CASK_ENONNUMERIC, /* incr/decr on a value that is not a decimal u64 */
    CASK_ECORRUPT,    /* a record failed its checksum on read */
    CASK_EFAILED,     /* shard refuses writes after a failed fdatasync:
                       * until its segment is rewritten (cask_resync.h),
                       * or latched until a restart */
    CASK_ELOCKED,     /* data directory locked by another process */
    CASK_EINVAL,      /* bad argument or option */
    CASK_ENOMEM,      /* a new key would take the keydir past mem_limit */
    CASK_EREADONLY,   /* a replica: writes go to its primary */
    CASK_ENOREPLICAS, /* written, but not acknowledged by enough replicas
                       * in time (cask_options.committed) */
    CASK_EUNDONE,     /* not done: a failed journal commit answered it, or
                       * the shard refuses writes while it recovers from
                       * one; the store goes on by itself (CASK_EFAILED
                       * is the refusal after a failed segment sync) */
    CASK_EREPLAY,     /* opened to inspect (cask_options.inspect): the
                       * commit journal holds writes its segments lack,
                       * which only a replay (a writing open) shows */
    CASK_EBLOCKED,    /* not done, nothing changed: the write would have
                       * waited for a roll-over (cask_park); make it again
                       * once the unblock hook was called */
};

/* Text for any status above or errno; never NULL. */
const char *cask_strerror(int err);

enum cask_sync {
    CASK_SYNC_NEVER = 0, /* left to the OS */
    CASK_SYNC_INTERVAL,  /* a background thread syncs every sync_interval_ms */
    CASK_SYNC_ALWAYS,    /* a modification returns only after fdatasync */
};

/* Log levels for cask_options.log. */
enum cask_log_level {
    CASK_LOG_ERROR = 0,
    CASK_LOG_WARN,
    CASK_LOG_INFO,
    CASK_LOG_DEBUG,
};

/* An item an eviction dropped (cask_options.evicted). */
struct cask_evicted {
    const char *key;
    size_t klen;
    uint32_t flags;
    uint32_t vlen;
    int64_t exp_abs_s; /* 0 = never */
    int64_t atime_s;   /* last access (cask_get_fetch) */
    bool fetched;      /* read since it was written */
};

/* Most evicted items one eviction run describes to cask_options.evicted. */
#define CASK_EVICTED_MAX 4096u

/* cask_options.value_cache: sized from mem_limit. */
#define CASK_VALUE_CACHE_AUTO (-1)

struct cask_options {
    unsigned shards; /* number of shards; fixed when the directory
                      * is first created; reopening with another
                      * number is CASK_EINVAL */
    enum cask_sync sync;
    unsigned sync_interval_ms; /* for CASK_SYNC_INTERVAL */
    uint64_t segment_size;     /* active segment rolls over at this size */
    uint32_t value_max;        /* largest value accepted, bytes */
    double compact_ratio;      /* dead fraction that makes a closed segment
                                * a compaction candidate, 0 < r <= 1 */
    bool compact_background;   /* run per-shard background compaction */
    /* Run the background crawler (cask_crawl.h), which drops expired and
     * flushed keys, writing a tombstone for each expired one, about once a
     * second. Default on; a test that moves a fake clock and counts the
     * records appended turns it off so nothing appends behind its back. */
    bool crawl_background;
    /* Which of memcached's threads the crawler's drops stand for in the
     * counters: true (the default) its LRU maintainer, which frees what
     * it meets at the tails (reclaimed; expired_unfetched for flushed
     * items never read too), false its LRU crawler (crawler_reclaimed;
     * expired_unfetched for expired items never read). */
    bool crawl_as_lru;
    /* Budget of the keydirs, bytes (0 = none). Without mem_evict a write
     * of a new key that would need more keydir memory than that fails with
     * CASK_ENOMEM (nothing is evicted), and from then on so does every new
     * key but one that takes the place of a key gone from its shard;
     * overwrites, deletes and reads are unaffected. With mem_evict each
     * shard keeps its keydir within its share, mem_limit / shards, plus
     * 128 KiB, by evicting (cask_evict.h): its oldest segment goes, whole,
     * except items read since they were written (a second chance); a new
     * key waits for an eviction that is behind, and fails with CASK_ENOMEM
     * only when none comes. */
    uint64_t mem_limit;
    bool mem_evict;
    /* Memory for the shards' caches of recently read small values
     * (cask_vcache.h), bytes over all shards: CASK_VALUE_CACHE_AUTO (the
     * default) gives each shard a quarter of its share of mem_limit, at
     * most 4 MiB (4 MiB without mem_limit); 0 turns them off. Under
     * mem_limit they take only memory the keydirs leave free, and give it
     * back when the keydirs need it. */
    int64_t value_cache;
    /* Bound on the data directory's segment and hint files, bytes (0 =
     * none): each shard keeps to its share, disk_limit / shards, by
     * evicting its oldest segments as above (whatever mem_evict says),
     * plus the segment it is writing and a compaction's output. */
    uint64_t disk_limit;
    /* Clock in unix seconds; NULL means time(NULL). Tests set a fake one. */
    int64_t (*clock)(void *arg);
    void *clock_arg;
    /* Log sink; NULL means stderr for WARN and ERROR only. msg has no newline.
     * May be called from any thread, including background threads. */
    void (*log)(void *arg, enum cask_log_level level, const char *msg);
    void *log_arg;
    /* Called after a modification of a key (store, delete, arith, touch)
     * is written (and synced as `sync` asks, unless the thread defers that
     * with cask_defer), before the call returns, with
     * the key's shard and that shard's append count once the record is in
     * (cask_stream_appended). A non-zero return is what the call returns;
     * the modification stays. May block (replication's
     * --min-replicas-ack). May be NULL. */
    int (*committed)(void *arg, unsigned shard, uint64_t appended);
    void *committed_arg;
    /* Told of the items an eviction dropped (memcached's `watch
     * evictions`): once its run has committed, from the maintenance thread
     * with no lock held, ev[0..n) (keys valid during the call only), and
     * lost: the items of that run not described (past CASK_EVICTED_MAX in
     * one run, or out of memory). Must be quick; must not call the store.
     * evicted_wanted (may be NULL: always) is asked as each eviction run
     * starts; when it says no, the run collects nothing. May be NULL. */
    void (*evicted)(void *arg, const struct cask_evicted *ev, size_t n,
                    uint64_t lost);
    bool (*evicted_wanted)(void *arg);
    void *evicted_arg;
    /* Called during cask_open after each shard has recovered (for systemd's
     * STATUS=). May be NULL. */
    void (*progress)(void *arg, unsigned shards_done, unsigned shards_total);
    void *progress_arg;
    /* CASK_SYNC_ALWAYS: bytes of each of the two commit journal files
     * when they are created (0 = 8 MiB; storage/JOURNAL.md). */
    uint64_t journal_size;
    /* Copy small appends into a shared mapping of the active segment
     * (no system call; storage/FORMAT.md, "Appends through a mapping")
     * instead of writing each pass's records with pwrite. Default on; off
     * for file systems where shared writable mappings are slow or absent,
     * and for tests that inject write errors at pwrite. Not used under
     * CASK_SYNC_ALWAYS (the journal takes its frames from the buffer). */
    bool write_map;
    /* Open only to look (bitcached-admin stats and dump): recovery runs in
     * memory and nothing in dir is created, written, cut, renamed or
     * removed (no LOCK file, state file, new segment, hint, manifest or
     * quarantine; a torn tail is left on disk and ignored). The lock is
     * taken shared, so a server holding the store makes the open fail
     * with CASK_ELOCKED; a missing LOCK file is not created. When the
     * commit journal holds frames their segments lack (a crash under
     * --sync=always) the open fails with CASK_EREPLAY: they are not
     * replayed in memory. No background thread runs, and every write
     * fails with CASK_EREADONLY. dir must exist. */
    bool inspect;
    /* memcached's slab class (1..CASK_CLASSES-1) of an item with a key
     * of klen bytes, a value of vlen bytes and these flags: the class
     * that the per-class counters (cask_class_stats) count it in. NULL:
     * everything counts in class 0. Called with a shard mutex held: must
     * be quick and must not call the store. */
    unsigned (*class_of)(void *arg, size_t klen, uint32_t vlen, uint32_t flags);
    void *class_arg;
};

/* Fill *o with the defaults above (interval sync, background compaction and
 * crawler on). */
void cask_options_init(struct cask_options *o);

struct cask; /* opaque */

/* Open (creating if missing) the store in dir, lock it against other
 * processes, and recover every shard: hint files first, then the log tail.
 * A torn or corrupt tail is truncated and logged, never a refusal to open.
 * Returns CASK_OK and *out, or CASK_ELOCKED, CASK_EINVAL, or an errno;
 * EPROTONOSUPPORT (logged) when a file of the store was written by a newer
 * format version, which is left as it is (storage/FORMAT.md). */
int cask_open(struct cask **out, const char *dir, const struct cask_options *o);

/* Stop background threads, sync every shard, write hints for the active
 * segments' successors as needed, release the lock, free everything, and set
 * *c to NULL. Safe on *c == NULL. A segment queued for a rewrite (found cut
 * short by another process, or after a failed sync) is rewritten first.
 * Returns CASK_OK, or an error when something acknowledged could not be
 * made durable (logged, with what was lost): a stop should then not count
 * as clean. */
int cask_close(struct cask **c);

/* Sync every shard now, whatever the policy. Returns CASK_OK or an error
 * (EIO also when a segment was found cut short by another process: what
 * it held past the cut is lost, though the rest is synced). */
int cask_sync(struct cask *c);

/* What the store keeps with a key. */
struct cask_item {
    uint32_t flags;    /* client flags, opaque to the store */
    int64_t exp_abs_s; /* 0 = never */
    uint64_t cas;      /* unique per modification, never reused */
    uint32_t vlen;     /* value length in bytes */
    bool fetched;      /* read since it was written, before this call */
    int64_t atime_s;   /* last access (unix seconds) before this call:
                        * see cask_get_fetch */
    /* Set only when a get/touch returns CASK_ENOTFOUND: why the key is not
     * there (for memcached's get_expired/get_flushed counters). */
    enum { CASK_GONE_ABSENT = 0, CASK_GONE_EXPIRED, CASK_GONE_FLUSHED } gone;
    /* Set only by cask_arith on CASK_OK: how the new number was stored, as
     * memcached tells them apart in its counters. REWRITTEN: in place over
     * the old value (padded); GREW: longer than the old value, a new item
     * replacing it (memcached's total_items); CREATED: the key was missing
     * and arith->vivify made it from arith->initial (total_items, and not
     * an incr/decr hit). */
    enum {
        CASK_ARITH_REWRITTEN = 0,
        CASK_ARITH_GREW,
        CASK_ARITH_CREATED
    } arith_made;
    int64_t arith_exp_was_abs_s; /* cask_arith only: the expiry before */
};

/* Look a key up. With val != NULL the value is read and checked against its
 * record checksum; *val receives a malloc'd buffer of it->vlen bytes (plus a
 * NUL after them, not counted) that the caller frees. With val == NULL only
 * the metadata is returned (no disk read).
 * Returns CASK_OK, CASK_ENOTFOUND, CASK_ECORRUPT, or an errno. */
int cask_get(struct cask *c, const void *key, size_t klen, struct cask_item *it,
             char **val);

/* cask_get, saying whether this counts as the item being read (its fetched
 * bit: memcached's "hit before", and eviction's second chance). cask_get
 * counts a read only when it returns the value; a meta get without a value
 * counts too, unless its client asked not to (mg's u flag).
 *
 * The access time (it->atime_s) follows memcached 1.6.18's it->time: a
 * write sets it; the first read after a write only sets the fetched bit,
 * and each read of an item already fetched (and each touch of one) sets it
 * to now (memcached skips the bump while its LRU keeps the item marked
 * active, which its background thread soon clears). It is kept in memory
 * only, to the second for 4 hours and to 17 minutes after that (see
 * cask_atime.h); after a restart every item's is the time it was
 * recovered. */
int cask_get_fetch(struct cask *c, const void *key, size_t klen,
                   struct cask_item *it, char **val, bool fetch);

/* A hint that a get of key comes soon (the next request pipelined after
 * the current one, the next key of a multi-get): starts loading the index
 * lines its lookup reads first into the CPU cache, so that their misses
 * overlap the work before it. Changes nothing, takes no lock, cannot
 * fail; any thread. */
void cask_prefetch(struct cask *c, const void *key, size_t klen);

/* A value left where it lies in its segment file, for zero-copy sending:
 * len bytes at off of fd (sendfile), and, when ptr is not NULL, the same
 * bytes in a read-only mapping of the file, to be handed to the kernel
 * only (writev, send): never read them in this process, since a file cut
 * short by another process makes a read there raise SIGBUS where the
 * kernel's copy fails with EFAULT. The segment file and mapping stay,
 * whatever compaction or eviction does, until cask_vref_release. The bytes
 * are those of a record checked once since they were loaded
 * (cask_verify.h). */
struct cask_shard;
struct cask_segment;
struct cask_vref {
    int fd;
    uint64_t off;
    uint32_t len;
    const char *ptr;          /* NULL: send from fd */
    struct cask_shard *sh;    /* opaque: the pin */
    struct cask_segment *seg; /* opaque; NULL: no reference */
};

/* cask_get_fetch with val != NULL, which may hand a large, verified,
 * cached value out as *ref (then *val stays NULL and ref->seg is set; the
 * caller sends it and releases it) instead of a copy in *val; ref NULL is
 * cask_get_fetch. Returns as cask_get. */
int cask_get_ref(struct cask *c, const void *key, size_t klen,
                 struct cask_item *it, char **val, struct cask_vref *ref,
                 bool fetch);

/* Unpin a value handed out by cask_get_ref (any thread, before cask_close)
 * and clear *ref. Safe on a cleared one. */
void cask_vref_release(struct cask_vref *ref);

/* cask_get_fetch for a thread that must not wait for the disk (an event
 * loop): when the value is not all in the page cache, nothing is returned
 * and the call says EAGAIN; read it then with cask_get_fetch on a thread
 * that may block (cask_aio.h) or through an io_uring (cask_uring.h). While
 * the thread's tries often miss, a record that cachestat says is not all
 * cached is not even tried (a no-wait read would start its read-ahead
 * here). On EAGAIN *it (if not NULL) holds the item
 * as the try found it, its fetched bit as it was before: the try already
 * set it (when fetch), so the read that follows finds it set. Finding the
 * key itself may still read a candidate record's key from disk in the rare
 * case of many keys sharing hash bits. */
int cask_get_nowait(struct cask *c, const void *key, size_t klen,
                    struct cask_item *it, char **val, bool fetch);

/* cask_get_nowait for a caller that needs the item but not its value (a
 * touch, an mg without v): reads the record's header and key only (a page,
 * whatever the value's size) to check that it is key's, from the page
 * cache only (EAGAIN when not there: then cask_get_fetch with val NULL on
 * a thread that may block, or an io_uring's split read with head_only).
 * *it as cask_get_fetch gives it; fetch counts a read. */
int cask_head_nowait(struct cask *c, const void *key, size_t klen,
                     struct cask_item *it, bool fetch);

/* cask_get_nowait that may hand the value out as *ref, as cask_get_ref. */
int cask_get_nowait_ref(struct cask *c, const void *key, size_t klen,
                        struct cask_item *it, char **val, struct cask_vref *ref,
                        bool fetch);

/* cask_get_nowait_ref (nowait) or cask_get_ref for a caller with a buffer
 * of its own: a value whose whole record (header and key included) fits
 * in buf[0..cap) is read there, so on CASK_OK *val == buf (the value at
 * its start, a NUL after it; the caller's, valid until it reuses buf) and
 * no memory is allocated; a larger one comes malloc'd (or as *ref) as
 * those calls give it. On an error nothing is left to free in buf. */
int cask_get_buf(struct cask *c, const void *key, size_t klen,
                 struct cask_item *it, char **val, struct cask_vref *ref,
                 bool fetch, bool nowait, char *buf, size_t cap);

/* Like cask_get, and atomically set the item's expiry to exp_abs_s (gat, gats,
 * touch, mg with T). The cas does not change, as in memcached. it and val as
 * for cask_get (both may be NULL). */
int cask_touch(struct cask *c, const void *key, size_t klen, int64_t exp_abs_s,
               struct cask_item *it, char **val);

/* cask_touch, saying whether it counts as a read (as for cask_get_fetch):
 * cask_touch's always does; a meta get with T and u does not, as in
 * memcached. */
int cask_touch_fetch(struct cask *c, const void *key, size_t klen,
                     int64_t exp_abs_s, struct cask_item *it, char **val,
                     bool fetch);

/* cask_touch_fetch of the item whose cas is cas_in only (0: any): when the
 * key no longer holds that item (replaced or deleted), nothing is written
 * and the call says CASK_EEXISTS. Lets a caller that read the value first
 * (off its thread, cask_aio.h) apply the touch to that very item, or learn
 * that it must read again. With cas_in the key is found by its cas, never
 * by reading a record's key from disk. */
int cask_touch_cas(struct cask *c, const void *key, size_t klen,
                   int64_t exp_abs_s, uint64_t cas_in, struct cask_item *it,
                   char **val, bool fetch);

enum cask_store_mode {
    CASK_SET = 0, /* store unconditionally */
    CASK_ADD,     /* only if absent, else CASK_ENOTSTORED */
    CASK_REPLACE, /* only if present, else CASK_ENOTSTORED */
    CASK_APPEND,  /* present: value += data (flags, expiry kept) */
    CASK_PREPEND, /* present: value = data + value (flags, expiry kept) */
};

/* Store a value. mode picks the condition; cas_in != 0 additionally requires
 * the current item's cas to equal cas_in (memcached's cas command, or ms/C):
 * absent -> CASK_ENOTFOUND, different -> CASK_EEXISTS. The value is copied
 * before return. On CASK_OK, *cas_out (if not NULL) gets the new cas.
 * Returns CASK_OK, CASK_ENOTSTORED, CASK_ENOTFOUND, CASK_EEXISTS,
 * CASK_ETOOBIG, CASK_EBADKEY, CASK_EFAILED, or an errno. */
int cask_store(struct cask *c, enum cask_store_mode mode, const void *key,
               size_t klen, const void *val, size_t vlen, uint32_t flags,
               int64_t exp_abs_s, uint64_t cas_in, uint64_t *cas_out);

/* Delete a key. cas_in != 0 requires a match (CASK_EEXISTS otherwise).
 * Returns CASK_OK, CASK_ENOTFOUND, CASK_EEXISTS, CASK_EFAILED or an errno. */
int cask_delete(struct cask *c, const void *key, size_t klen, uint64_t cas_in);

/* cask_delete, and on CASK_OK *it (when not NULL) describes the item the
 * delete removed (its size and flags, for per-class counts), read in the
 * same lookup. */
int cask_delete_item(struct cask *c, const void *key, size_t klen,
                     uint64_t cas_in, struct cask_item *it);

/* incr/decr with memcached's semantics: the value must be a decimal u64 as
 * memcached reads it (strtoull: optional leading white space and sign,
 * digits, then white space or the end; "-0" is 0, other negatives are not
 * numbers), else CASK_ENONNUMERIC; incr wraps
 * at 2^64, decr floors at 0. The new value is written as decimal; when it is
 * shorter than the old one it is right-padded with spaces to the old length,
 * as memcached does. Flags and expiry are kept; the cas changes.
 *   arith->vivify: on a miss, create the item with value arith->initial,
 *                  flags 0, expiry arith->vivify_exp_abs_s (meta ma N/J);
 *                  without it a miss is CASK_ENOTFOUND.
 *   arith->cas_in: != 0 requires a match (meta ma C), else CASK_EEXISTS;
 *                  an empty value is CASK_ENONNUMERIC before that compare.
 *   arith->set_exp: a number that fits in the old length takes the expiry
 *                  arith->exp_abs_s in the same record (meta ma T: one
 *                  write, not a change and then a touch); a longer one
 *                  keeps the old expiry, as memcached loses T there.
 * A number that fits in the old length keeps the item's fetched bit
 * (memcached rewrites it in place); a longer one clears it.
 * On CASK_OK: *value_out = the new number, *it (if not NULL) = the new item,
 * it->arith_made saying whether it was created, grew or was rewritten, and
 * it->arith_exp_was_abs_s the expiry it had before (0 when created). */
struct cask_arith {
    bool incr; /* true: incr, false: decr */
    uint64_t delta;
    bool vivify;
    uint64_t initial;
    int64_t vivify_exp_abs_s;
    uint64_t cas_in;
    bool set_exp;
    int64_t exp_abs_s;
};
int cask_arith(struct cask *c, const void *key, size_t klen,
               const struct cask_arith *arith, uint64_t *value_out,
               struct cask_item *it);

/* flush_all: every item stored at or before time at_abs_s becomes invalid;
 * items stored after it stay. at_abs_s <= now flushes now. A later call
 * replaces a pending (future) flush, as in memcached. Durable: the flush
 * point survives a restart. Returns CASK_OK or an error; an error changes
 * nothing. Writes and syncs the state file on the caller's thread. */
int cask_flush(struct cask *c, int64_t at_abs_s);

/* The same for a thread that parks its writes (cask_park): instead of
 * writing the state file itself, it hands the flush to the store's roller
 * thread, sets *wait and returns CASK_EBLOCKED, nothing changed yet (the
 * flush is in effect once persisted). Once the unblock hook was called,
 * make the call again with the same *wait: CASK_EBLOCKED while the write
 * is under way, else its outcome (*wait is then NULL again; at_abs_s is
 * not read). Flushes asked for meanwhile share one write, in the order
 * asked. Without cask_park, or with *wait NULL and a failure found before
 * any write (read-only, a due flush that could not be persisted), it
 * answers as cask_flush. A caller that gives up waiting (its connection
 * closed) releases *wait with cask_flush_drop; the flush still happens. */
struct cask_flush_wait;
int cask_flush_park(struct cask *c, int64_t at_abs_s,
                    struct cask_flush_wait **wait);
void cask_flush_drop(struct cask *c, struct cask_flush_wait **wait);

/* Ask for compaction of shard `shard` (or every shard when shard < 0).
 * wait: block until it has run; otherwise hand it to the background thread.
 * Compaction rewrites the live records of closed segments whose dead fraction
 * passed compact_ratio (every closed segment with any dead bytes when forced
 * through this call) and unlinks the old files. */
int cask_compact(struct cask *c, int shard, bool wait);

/* ---- commit tickets (CASK_SYNC_ALWAYS without blocking) ----------------
 *
 * A server thread that serves many clients must not sleep in a sync. It
 * passes a ticket to cask_defer; until cask_defer(NULL), each modification
 * it makes returns as soon as its record is in the kernel (pwrite), and
 * notes in the ticket which commit covers it, instead of waiting. The
 * thread holds back the reply until cask_ticket_done says the commit is
 * done, and answers the error it returns if the sync failed. The new value
 * is visible to every reader at once, before its sync, as without a ticket
 * (read-uncommitted across connections; a crash of the machine can lose a
 * value that was read but whose write was never acknowledged).
 * Under the other sync modes a ticket stays empty. */
struct cask_ticket {
    uint64_t epoch; /* the commit pass that covers the writes; 0: none */
    uint64_t seq;   /* the shard's append number of the last write */
    int shard;      /* the shard written, or -1 when several were */
    /* A write staged by a batch (cask_batch_flush): the shard and append
     * number that must reach the kernel first; wseq 0: none. */
    uint64_t wseq;
    int wshard;
    uint32_t wgen; /* the shard's failed writes when it was staged */
    /* Set by the caller: it calls cask_batch_flush before it polls again,
     * so writes under this ticket may be staged. */
    bool batch;
};

/* Defer the sync waits of this thread's modifications into *t (zeroed by
 * the caller), or with t NULL stop deferring. Applies to every store the
 * thread calls. The store writes *t until cask_defer(NULL). */
void cask_defer(struct cask_ticket *t);

/* Has t's commit finished? false: not yet. true: *rc is CASK_OK (every
 * write t covers is on disk) or CASK_EFAILED (a sync failed and its shard
 * is latched; for a ticket over several shards, any of them), or the
 * errno of the failed write of a staged record (see cask_batch_flush).
 * Never blocks on I/O. An empty ticket is done. */
bool cask_ticket_done(struct cask *c, const struct cask_ticket *t, int *rc);

/* ---- writes that would wait for a roll-over ----------------------------
 *
 * A write that finds its shard's active segment full rolls over to a new
 * one, and may have to wait first: for a roll-over another thread runs,
 * for the sync thread when a few closed segments already wait for their
 * fdatasync (a disk slower than the writes slows the writes), or
 * under CASK_SYNC_ALWAYS with the journal for the commit of the full
 * segment's appends (so that no segment sync runs on the writer's
 * thread). A server thread that must not sleep there calls cask_park(true):
 * until cask_park(false), such a write of this thread returns
 * CASK_EBLOCKED instead, before it changed anything (a cas number may
 * have been drawn and skipped), so that the same call made again later
 * does what it would have done. Such a write that has nothing to wait for
 * returns CASK_EBLOCKED too, its roll-over (file system calls: creating
 * the next segment) handed to the store's roller thread. So does any
 * write while a delayed flush_all that came due is not yet persisted
 * (the roller thread writes the state file; lookups see the flush
 * meanwhile), and a flush_all made with cask_flush_park. The store calls
 * the unblock hook each time such a wait may have ended (a closed
 * segment's sync taken up, a roll-over ended, the flush point written),
 * and the commit hook after each commit (which may
 * cover the full segment): then make the call again. No one else sees
 * any difference: without cask_park a write waits, as it always did. */

/* Let this thread's writes return CASK_EBLOCKED (on) or wait (off).
 * Returns the previous setting. */
bool cask_park(bool on);

/* A counter of the events that may end such a wait (the unblock hook's
 * and the commit hook's calls). Lock-free. */
uint64_t cask_unblock_gen(const struct cask *c);

/* After CASK_EBLOCKED: cask_unblock_gen as the store read it before it
 * found the obstacle. A caller that published its wait (where the hook
 * looks) and then finds cask_unblock_gen moved on from this must make
 * the call again itself: the hook may have run before it looked. */
uint64_t cask_blocked_gen(void);

/* fn(arg) is called, from whichever thread ended the wait (a worker's
 * roll-over, the sync thread), with a shard's mutex held: it must be
 * quick and must not call the store. fn NULL removes it; returns only
 * once no call of the old hook runs. */
void cask_unblock_hook(struct cask *c, void (*fn)(void *arg), void *arg);

/* Writes that returned CASK_EBLOCKED so far (every shard). */
uint64_t cask_blocked_writes(const struct cask *c);

/* ---- write batching (one write per shard per event-loop pass) ----------
 *
 * A server thread that runs the requests of many connections in one pass of
 * its event loop sets batch in the ticket it defers its waits into
 * (cask_defer). Each modification it makes under that ticket leaves its
 * record in its shard's append buffer instead of writing it, and notes in
 * the ticket (wseq) that the record must still reach the kernel. The
 * record is visible at once: in the keydir, to the same thread's next
 * requests, and to a get of another thread, which writes the buffer out
 * first (a value is only served once the kernel has it). Records too large
 * for the buffer, writes to a second shard under one ticket, and anything
 * of other threads are written through, as without batching.
 *
 * cask_batch_flush writes out every shard this thread staged into, one
 * pwrite per shard, and must run before the thread polls again: only then
 * may the replies of the staged writes go out (cask_ticket_done says when).
 * A failed write drops the records of the buffer (every thread's staged
 * there) and puts the keydir back to what the disk holds: their tickets
 * answer the error, and nothing of them is visible or written later.
 * Returns 0, or the errno of the first failed write. */
int cask_batch_flush(void);

/* Records this thread staged since its last cask_batch_flush (0 when
 * batching is off). */
unsigned cask_batch_pending(void);

/* After cask_batch_flush under CASK_SYNC_ALWAYS: the commit epoch whose
 * completion (cask_commit_done reaching it) lets the tickets of the
 * records it wrote be done; a frame written while the epoch before was
 * being closed rides in that one instead, and its ticket is done a commit
 * earlier. 0 when unknown (no journal, or nothing staged). A thread that
 * waits for one epoch to be done must never wait past this one: it is
 * always committed. */
uint64_t cask_batch_epoch(void);

/* fn(arg) is called from the committer thread after each commit pass (and
 * may find tickets done); it must be quick and must not call the store.
 * fn NULL removes it; returns only once no call of the old hook runs. */
void cask_commit_hook(struct cask *c, void (*fn)(void *arg), void *arg);

/* Every commit epoch up to this one is finished (0: none yet, or not
 * CASK_SYNC_ALWAYS). A ticket whose epoch (or the cask_batch_epoch of the
 * flush that wrote its staged record) is above it is not done. Lock-free:
 * for the commit hook, to skip threads with nothing to release. */
uint64_t cask_commit_done(const struct cask *c);

/* How many times the commit hook was called so far (each finished commit,
 * and the end of a failed commit's undo, which lets its errors out). A
 * thread that decided what to wait for from what it found done reads this
 * before looking and after publishing its wait: if it changed, a call of
 * the hook may have missed the new wait, so it looks again. */
uint64_t cask_commit_announced(const struct cask *c);

/* When the commit hook was last called (CLOCK_MONOTONIC, ns; 0: never):
 * a thread the hook woke measures its wake-up from it (stats). */
uint64_t cask_commit_announced_ns(const struct cask *c);

/* Figures for `stats storage`. */
struct cask_stats {
    uint64_t live_keys;         /* keys in the keydir (expired ones not yet
                                 * reclaimed included) */
    uint64_t live_bytes;        /* on-disk bytes of the records they point to */
    uint64_t dead_bytes;        /* on-disk bytes of superseded records */
    uint64_t segments;          /* segment files */
    uint64_t disk_bytes;        /* bytes of segment and hint files */
    uint64_t keydir_bytes;      /* memory used by the keydir */
    uint64_t buffer_bytes;      /* memory of the active segments' append
                                 * buffers (counted in mem_limit too) */
    uint64_t compactions;       /* compaction runs completed */
    uint64_t bytes_reclaimed;   /* disk bytes freed by compaction */
    uint64_t syncs;             /* fdatasync calls on segments, journal */
    uint64_t synced_writes;     /* records those syncs covered */
    uint64_t commits;           /* commit passes (CASK_SYNC_ALWAYS; store
                                 * total only) */
    uint64_t write_errors;      /* writes that failed (not acknowledged) */
    uint64_t commit_failures;   /* journal commits that failed: their
                                 * writes were answered with errors
                                 * (store total only) */
    uint64_t commit_recoveries; /* ... after which commits resumed */
    /* Where a journal commit's time goes (CASK_SYNC_ALWAYS with the
     * journal; store total only; means in us over the batches since the
     * open, 0 before any): from the first write of a batch joining it to
     * the batch being taken (commit_wait_us), the part of that from a
     * commit thread holding the turn to the take, the spacing delay
     * (commit_delay_us), and the batch's journal write and fdatasync
     * (commit_sync_us). */
    double commit_wait_us;
    double commit_delay_us;
    double commit_sync_us;
    uint64_t writes_undone;     /* keys deleted because their put was
                                 * answered with an error */
    uint64_t batch_records;     /* records staged by write batches */
    uint64_t batch_writes;      /* writes of staged records (one each) */
    uint64_t rolls_handed;      /* roll-overs made for parked writes by
                                 * the roller thread */
    uint64_t reserves_handed;   /* extensions of an active segment's disk
                                 * reserve made by the roller thread */
    uint64_t mapped_writes;     /* records copied into a shared mapping
                                 * of their segment (--write-map) */
    uint64_t records_recovered; /* records (or hint entries) read at open */
    uint64_t bytes_truncated;   /* torn/corrupt tail bytes dropped at open */
    uint64_t bytes_damaged;     /* damaged bytes skipped inside segments (at
                                 * open or by compaction); records after
                                 * them are kept */
    uint64_t segments_missing;  /* at open: closed segments found gone (a
                                 * hint left without its segment) */
    uint64_t records_missing;   /* records those segments held */
    uint64_t quarantined;       /* at open: closed segments with damage
                                 * inside: the records still needed were
                                 * copied, the file moved to quarantine/ */
    uint64_t records_lost;      /* records lost in that damage (at least
                                 * one per damaged stretch), and puts a
                                 * rewrite after a failed sync or a cut
                                 * could not read back */
    uint64_t unchecked_reads;   /* large values served without hashing
                                 * them again (cask_verify.h) */
    uint64_t value_refs;        /* ... of which handed out as references
                                 * for zero-copy sending */
    uint64_t value_cache_bytes; /* memory of the caches of recently read
                                 * small values (counted in mem_limit) */
    uint64_t value_cache_hits;  /* gets answered from them, no read */
    uint64_t value_cache_fills; /* values put in them */
    uint64_t segments_mapped;   /* segment files mapped for those, and */
    uint64_t map_budget;        /* how many may be (cask_vmap.h; both
                                 * process-wide, store total only) */
    double recovery_s;          /* time cask_open spent recovering */
    bool state_lost;            /* at open: the state file was missing or
                                 * damaged, so everything found on disk
                                 * counts as flushed (store total only) */
    uint64_t sync_failures;     /* segment fdatasyncs that failed */
    uint64_t sync_recoveries;   /* ... after which the records still
                                 * needed were rewritten and writes taken
                                 * again (no restart) */
    uint64_t segments_cut;      /* segments found shorter than written
                                 * (truncated by another process): what
                                 * still read back was rewritten */
    bool failed;                /* writes refused after a failed sync:
                                 * until the rewrite, or a restart */
    /* Eviction and reclaiming, as memcached names them. */
    uint64_t evictions;         /* live items evicted (whole segments) */
    uint64_t evicted_unfetched; /* ... never read since written */
    uint64_t evicted_active;    /* ... read, but past the second chance */
    uint64_t expired_unfetched; /* expired items dropped, never read */
    uint64_t reclaimed;         /* expired or flushed items dropped from
                                 * the keydir while storing or by
                                 * compaction */
    uint64_t crawler_reclaimed; /* ... by the crawler */
    uint64_t evict_runs;        /* segments evicted */
    /* The index and the background work, for memcached's hash_* and
     * lru_crawler_* figures. */
    uint64_t keydir_slots;  /* slots of the keydirs' hash tables */
    uint64_t crawls;        /* crawler passes that walked a keydir */
    uint64_t crawl_checked; /* entries they looked at */
    uint64_t maint_passes;  /* maintenance thread passes (store total) */
    bool crawling;          /* a crawler pass is under way (store total) */
};

unsigned cask_shards(const struct cask *c);

/* The caller has acted on a lost state file (cask_stats' state_lost; a
 * replica forgot its primary, saved): forget the mark that makes every
 * later open report the loss again until then. 0, or an errno (logged;
 * the next open reports the loss once more). */
int cask_state_lost_done(struct cask *c);

/* Per-class figures of the items the store dropped, by memcached's slab
 * class (cask_options.class_of), with the meanings of memcached's `stats
 * items`. Counted since open; cask_stats' totals are their sums (evicted
 * there is evictions, crawler_reclaimed is not in reclaimed). */
#define CASK_CLASSES 64
struct cask_class_stats {
    uint64_t evicted;               /* live items evicted */
    uint64_t evicted_nonzero;       /* ... that had an expiry */
    uint64_t evicted_unfetched;     /* ... never read since written */
    uint64_t evicted_active;        /* ... read, but past the second chance */
    uint64_t reclaimed;             /* expired or flushed items dropped while
                                     * storing or by compaction */
    uint64_t expired_unfetched;     /* expired items dropped, never read */
    uint64_t crawler_reclaimed;     /* expired or flushed items the crawler
                                     * dropped */
    uint64_t crawler_items_checked; /* entries the crawler looked at */
    uint64_t evicted_time; /* seconds between the last access of the last
                            * item evicted and its eviction */
    int64_t evicted_at_s;  /* when that eviction was (0: none) */
};

/* Sum the shards' per-class figures into out[0..CASK_CLASSES) (for
 * evicted_time: the latest eviction's). Takes each shard mutex in turn. */
void cask_class_stats(struct cask *c, struct cask_class_stats *out);

/* Figures of one shard (0 <= shard < cask_shards) or, for shard < 0, the
 * total over all shards (recovery_s: the whole open). */
int cask_stats(struct cask *c, int shard, struct cask_stats *st);

/* The shard a key belongs to (for tests and stats). */
unsigned cask_shard_of(const struct cask *c, const void *key, size_t klen);

#endif
