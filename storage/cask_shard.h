/* cask_shard.h - one bitcask: a directory of segments, a keydir, a mutex.
 *
 * The shard owns its directory, segments, keydir and locks; only the
 * modules below the store in storage/LAYOUT.md (shard, recovery,
 * compaction, log, segment table, replication tail) dereference it. Lock
 * order: maint_mu, then mu, then the store's state_mu.
 */
#ifndef BITCACHED_CASK_SHARD_H
#define BITCACHED_CASK_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/cask.h"
#include "storage/cask_internal.h"
#include "storage/cask_keydir.h"
#include "storage/cask_segment.h"
#include "storage/cask_stream.h"
#include "storage/cask_vcache.h"

#define CASK_WFAIL_RING 16

/* A record a write batch staged in the active segment's buffer, and what
 * its operation changed in the keydir: a failed write of the buffer puts
 * the key's entry back as it was (cask_log.c), so that memory never shows
 * what the disk will not. */
struct cask_staged {
    uint64_t h;      /* the key's keydir hash */
    uint64_t seq;    /* its append number */
    uint32_t off;    /* where it is in the active segment */
    uint32_t len;    /* record bytes */
    uint32_t old_id; /* id of the segment the old entry pointed into */
    uint8_t klen;
    bool noted; /* the operation said what it changed */
    bool had;   /* the key had an entry (old) before */
    unsigned char old[CASK_KD_ENTRY_FIXED]; /* that entry's fields */
};

/* Slots a shard's segment table may have: cask_kd_entry.seg has 15 bits. */
#define CASK_MAX_SLOTS 32767u

/* Ranges of append numbers a failed commit answered with errors that a
 * shard remembers (cask_lost.c): the newest ones. */
#define CASK_LOST_RING 8u

/* Under CASK_SYNC_ALWAYS, where the last this many appends of a shard
 * went in its active segment (cask_lost.c). */
#define CASK_APPEND_OFFS 4096u

struct cask_rec;
struct cask_manifest;

struct cask_shard {
    struct cask *store;
    unsigned idx;
    char dir[CASK_PATH_MAX];

    pthread_mutex_t mu;       /* covers everything below but maint state */
    pthread_cond_t sync_cv;   /* group commit: a sync finished */
    pthread_mutex_t maint_mu; /* one compaction or hint writer at a time */

    struct cask_keydir *kd;
    struct cask_segment **segs; /* slot table, NULL = free slot */
    uint32_t nslots;
    struct cask_segment *active; /* the only segment that takes appends */
    uint32_t next_id;
    struct cask_manifest *manifest; /* the segments in service, on disk
                                     * (cask_manifest.c; own mutex) */

    uint64_t app_seq;     /* appends so far */
    uint64_t synced_seq;  /* appends covered by a finished sync; only
                           * raised, by __atomic ops (cask_log.c) */
    uint64_t written_seq; /* appends in the kernel (the rest wait in the
                           * active segment's buffer: cask_batch.c); read
                           * and raised by __atomic ops */
    /* Failed writes of that buffer: the n-th (from 0) dropped the appends
     * wfail[n % CASK_WFAIL_RING] covers (their numbers are taken again by
     * the appends that follow; a ticket staged before the failure is
     * failed, one staged after it is not). wfail_n is read and raised by
     * __atomic ops, after its ring entry is filled. */
    struct cask_wfail {
        uint64_t lo, hi; /* append numbers dropped */
        int rc;          /* the write's errno */
    } wfail[CASK_WFAIL_RING];
    uint32_t wfail_n;
    struct cask_staged *staged; /* the records in the active segment's
                                 * buffer, in order (cask_log.c) */
    size_t nstaged, staged_cap;
    /* mu: the commit epoch the last write of staged records joined (under
     * always with the journal; 0: none yet). Its records' frames ride in
     * that epoch's batch or, rarely, in the one before. */
    uint64_t wjoin_epoch;
    /* Which keys those records are for: bit (h >> 54) of each one's
     * keydir hash h, set when its operation notes it (cask_log_undo_note);
     * those not noted (yet) are counted instead. Both cleared when the
     * buffer is written or dropped. */
    uint64_t staged_keys[16];
    size_t staged_unnoted;
    uint64_t seg_seq;   /* appends synced in their segment itself
                         * (under always the journal covers more) */
    bool syncing;       /* a thread is in fdatasync for the shard */
    bool failed;        /* writes refused after an fdatasync failure:
                         * until the rewrite below is done, or for good
                         * (latched) */
    bool latched;       /* failed until a restart (cask_log_latch, or a
                         * failed segment sync under the journal) */
    bool no_prealloc;   /* the file system has no fallocate */
    bool write_failing; /* the last write failed (logged once) */
    bool rolling;       /* a roll-over runs with mu released: appends
                         * wait on sync_cv */
    /* A parked write found the active segment full and asked the roller
     * thread to roll it over (cask_log.c): writes that park wait for it;
     * roll_err is that roll-over's error, for the next write to return. */
    bool roll_asked;
    int roll_err;
    /* The roller thread also extends the active segment's disk reserve
     * ahead of the appends (cask_log.c): asked by extend_asked, with
     * extend_need the reserve end a parked write needs (0: none, only
     * ahead). extend_err is its last failure: writes then extend it on
     * their own thread, as before, until one succeeds. */
    bool extend_asked;
    int extend_err;
    uint64_t extend_need;
    bool compact_req; /* forced compaction asked for */
    /* Closed segments whose roll-over left their fdatasync to the sync
     * thread (interval and never), oldest first, each pinned (readers)
     * until a sync takes it (cask_log.c). */
    struct cask_segment **unsynced;
    size_t nunsynced, unsynced_cap;

    uint64_t max_cas;   /* largest cas seen at recovery */
    size_t kd_counted;  /* mu: keydir bytes added to the store's kd_bytes */
    size_t buf_counted; /* mu: append buffer bytes added to buf_bytes */

    /* mu: recently read small values (cask_vcache.h), and the bytes of
     * it added to the store's vc_bytes */
    struct cask_vcache vc;
    size_t vc_counted;

    uint64_t compactions;
    uint64_t bytes_reclaimed;
    uint64_t syncs;
    uint64_t synced_writes;   /* appends covered by those syncs */
    uint64_t write_errors;    /* appends that failed to reach the kernel */
    uint64_t batch_records;   /* appends staged by write batches */
    uint64_t batch_writes;    /* writes of staged records (each one pwrite) */
    uint64_t rolls_handed;    /* roll-overs made by the roller thread */
    uint64_t reserves_handed; /* its reserve extensions */
    uint64_t mapped_writes;   /* records copied into the active segment's
                               * mapping instead of written (cask_log.c) */
    char *scratch;            /* encoding buffer for appends (mu) */
    size_t scratch_cap;
    uint64_t records_recovered;
    /* Large values read without the hash, and of those handed out as
     * references (cask_verify.h); counted without mu. */
    _Atomic uint64_t unchecked_reads;
    _Atomic uint64_t value_refs;
    uint64_t bytes_truncated;
    uint64_t bytes_damaged; /* invalid bytes skipped inside segments */
    double recovery_s;      /* time spent recovering this shard */

    /* What recovery found lost (see cask_recover.c) */
    uint64_t segments_missing; /* listed or hinted, but not there */
    uint64_t records_missing;  /* records those hints listed */
    uint64_t quarantined;      /* damaged segments moved aside */
    uint64_t records_lost;     /* in them: at least one per damage */

    /* Segments whose fdatasync failed (cask_resync.c), under mu: their
     * records still needed are rewritten into new segments by the
     * maintenance thread, then they are retired; writes are refused
     * (failed) until that is done. */
    uint32_t *resync_ids;
    size_t nresync, resync_cap;
    unsigned resync_tries;    /* attempts that failed in a row */
    uint64_t resync_after_ms; /* no attempt before (CLOCK_MONOTONIC ms) */
    uint64_t sync_failures;   /* segment fdatasyncs that failed */
    uint64_t sync_recoveries; /* rewrites that cleared failed again */
    uint64_t segments_cut;    /* found shorter than written (truncated by
                               * another process) and rewritten too */
    uint64_t cut_all_ms;      /* maint_mu: last check of every segment
                               * for a cut (CLOCK_MONOTONIC ms) */

    /* mu (appended also read without it): the log, for replication */
    struct cask_stream_tail tail;

    /* Eviction (cask_evict.c, cask_compact.c), under mu. */
    bool evict_on;       /* its keydir needed a chunk past its share */
    bool evict_req;      /* the maintenance thread was kicked for it */
    uint64_t evict_cap;  /* keys the shard held then: eviction keeps it
                          * between 31/32 of that and that */
    uint64_t evict_unit; /* cask_evict_unit as of the last pass or new
                          * keydir memory (cask_evict.c) */
    uint64_t kd_peak;    /* most keys seen held (cask_evict_admit, -M) */
    uint64_t evictions;  /* stats, as cask_stats names them */
    uint64_t evicted_unfetched;
    uint64_t evicted_active;
    uint64_t expired_unfetched;
    uint64_t reclaimed;
    uint64_t crawler_reclaimed;
    uint64_t evict_runs;
    /* The same figures by memcached's slab class (cask_class_stats), mu
     * held: counted where the totals above are (cask_shard_cls). */
    struct cask_class_stats cls[CASK_CLASSES];
    uint64_t crawls;         /* crawler passes that walked the keydir */
    uint64_t crawl_checked;  /* entries those passes looked at */
    uint64_t crawl_after_ms; /* maintenance thread: no crawl before (CLOCK_
                              * MONOTONIC ms; cask_crawl.c) */
    /* An entry may have an expiry: set (mu held) wherever one gets one,
     * cleared by a crawl pass that starts and set again if it saw one.
     * With it clear and the flush point as at the last pass, a pass would
     * drop nothing, so the crawler only ages stamps, every CRAWL_AGE_S. */
    bool crawl_exp;
    uint64_t crawl_flush_cas; /* flush point at the last pass (mu) */
    int64_t crawl_full_s;     /* store clock at the start of the last pass,
                               * 0 none (mu) */

    /* A failed journal commit (cask_lost.c): writes are held (refused)
     * until the store has recovered; the appends it answered with errors
     * are remembered as ranges (lo, hi] so that their tickets read
     * failed even once a checkpoint has made them durable, and the puts
     * among them are undone. */
    bool held;         /* mu: writes refused until the commit recovers */
    bool undo_pending; /* mu: the newest range is not undone yet */
    /* __atomic: a failed segment sync's range is published and its puts
     * are being hidden (tombstones written and synced, mu held): the
     * range's tickets wait (cask_lost_hiding) */
    bool lost_hiding;
    uint64_t lost_lo[CASK_LOST_RING]; /* __atomic; slot i % RING */
    uint64_t lost_hi[CASK_LOST_RING];
    unsigned lost_n;      /* __atomic: ranges recorded so far */
    uint64_t lost_writes; /* mu: appends answered with errors by them */
    uint64_t lost_undone; /* mu: keys deleted to undo failed puts */
    /* mu: failed puts removed from the keydir without a tombstone (the
     * shard could not append one: a segment sync had failed); the next
     * rewrite (cask_compact.c) writes the tombstones that keep older
     * records of those keys hidden after a restart. */
    uint64_t dropped_untombed;
    /* mu, under always: the offset in the active segment of append
     * number n at app_off[n % CASK_APPEND_OFFS], for n from app_off_from
     * on (NULL: none kept, no memory). */
    uint32_t *app_off;
    uint64_t app_off_from;
};

/* Open (create) shard idx under the store's directory and recover it. */
int cask_shard_open(struct cask_shard **out, struct cask *c, unsigned idx);

/* Flush, run the rewrites still queued, sync, write the hints still
 * missing, free. Safe on NULL. Returns 0, or the error of a rewrite or
 * sync that failed (logged with what it cost). */
int cask_shard_close(struct cask_shard **sh);

int cask_shard_get(struct cask_shard *sh, uint64_t h, const void *key,
                   size_t klen, struct cask_item *it, char **val, bool fetch);
/* Start loading the keydir slot and value cache bucket a get of the key
 * with keydir hash h looks at first (cask_prefetch). Without mu. */
void cask_shard_prefetch(struct cask_shard *sh, uint64_t h);
/* cask_shard_get whose value read takes only what the page cache holds,
 * else returns EAGAIN (cask_get_nowait). */
int cask_shard_get_nowait(struct cask_shard *sh, uint64_t h, const void *key,
                          size_t klen, struct cask_item *it, char **val,
                          bool fetch);
/* cask_shard_get that may hand a value out as *ref (cask_get_ref). */
int cask_shard_get_ref(struct cask_shard *sh, uint64_t h, const void *key,
                       size_t klen, struct cask_item *it, char **val,
                       struct cask_vref *ref, bool fetch);
int cask_shard_get_nowait_ref(struct cask_shard *sh, uint64_t h,
                              const void *key, size_t klen,
                              struct cask_item *it, char **val,
                              struct cask_vref *ref, bool fetch);
/* cask_shard_get_nowait with no value: the record's header and key only
 * (cask_head_nowait). */
int cask_shard_head_nowait(struct cask_shard *sh, uint64_t h, const void *key,
                           size_t klen, struct cask_item *it, bool fetch);
/* The two halves of a split get (cask_split.h). */
struct cask_split;
int cask_shard_get_begin(struct cask_shard *sh, uint64_t h,
                         struct cask_split *sp, char **val);
int cask_shard_get_end(struct cask_split *sp, int io_rc, char **val);
void cask_shard_vref_release(struct cask_vref *ref);
/* Until called again with NULL, this thread's value reads whose whole
 * record fits in buf[0..cap) go there instead of a malloc'd buffer
 * (cask_get_buf). */
void cask_shard_scratch(char *buf, size_t cap);
/* cas_in != 0: touch only the item with that cas (else CASK_EEXISTS),
 * found by its cas without a disk read. */
int cask_shard_touch(struct cask_shard *sh, uint64_t h, const void *key,
                     size_t klen, int64_t exp_abs_s, uint64_t cas_in,
                     struct cask_item *it, char **val, bool fetch);
int cask_shard_store(struct cask_shard *sh, uint64_t h,
                     enum cask_store_mode mode, const void *key, size_t klen,
                     const void *val, size_t vlen, uint32_t flags,
                     int64_t exp_abs_s, uint64_t cas_in, uint64_t *cas_out);
int cask_shard_delete(struct cask_shard *sh, uint64_t h, const void *key,
                      size_t klen, uint64_t cas_in, struct cask_item *it);
int cask_shard_arith(struct cask_shard *sh, uint64_t h, const void *key,
                     size_t klen, const struct cask_arith *a,
                     uint64_t *value_out, struct cask_item *it);

/* Write hint files for closed segments that lack an up-to-date one. */
void cask_shard_write_hints(struct cask_shard *sh);

/* Compact the shard (cask_compact.c): force = every closed segment with any
 * dead bytes, else those past compact_ratio. Blocks; returns 0 or an error. */
int cask_shard_compact(struct cask_shard *sh, bool force);

/* Evict the shard's oldest closed segment (cask_compact.c), rolling the
 * active one first when there is no closed one: its items read since they
 * were written are copied forward (a second chance) unless dropping only
 * the unread ones would free fewer than need keys (then the oldest read
 * ones go too), the others leave the keydir once the eviction is committed
 * like a compaction (the retired file), with a tombstone where an older
 * record of the key could otherwise come back. Further oldest segments go
 * in the same run while those taken hold less than disk_bytes or, by an
 * estimate from their live bytes, fewer than need keys. *evicted
 * gets the number of keys evicted. Blocks; returns 0, CASK_ENOTFOUND when
 * there was nothing to evict, or an error. */
int cask_shard_evict_oldest(struct cask_shard *sh, uint64_t need,
                            uint64_t disk_bytes, uint64_t *evicted);

void cask_shard_stats(struct cask_shard *sh, struct cask_stats *st);

/* The per-class figures of sh (mu held) for an item of this key length,
 * value length and flags (cask_options.class_of). */
static inline struct cask_class_stats *
cask_shard_cls(struct cask_shard *sh, size_t klen, uint32_t vlen,
               uint32_t flags)
{
    const struct cask_options *o = &sh->store->opt;
    unsigned cls = o->class_of != NULL
                           ? o->class_of(o->class_arg, klen, vlen, flags)
                           : 0;
    return &sh->cls[cls < CASK_CLASSES ? cls : 0];
}

/* The keydir of sh needs cost more bytes (mu held, cask_evict_admit): its
 * value cache (cask_vcache.h) gives back its memory when that cost would
 * take the store past mem_limit or the shard past its share, counting the
 * caches; keys come first. */
void cask_shard_vc_yield(struct cask_shard *sh, size_t cost);

/* Replication (cask_stream.c): apply a primary's record verbatim, and drop
 * every segment and key of the shard before a full copy. */
int cask_shard_apply(struct cask_shard *sh, uint64_t h,
                     const struct cask_rec *r, const char *key,
                     const char *val);
int cask_shard_wipe(struct cask_shard *sh);

/* For the crawler (cask_crawl.c), mu held: remove e, the entry of key (h
 * its hash), from the keydir; with tomb, first append a tombstone with its
 * cas and a fresh seq. Returns 0, EAGAIN when the append had to release mu
 * (nothing removed; other entries the caller holds may be stale), or an
 * error (nothing removed). */
int cask_shard_forget(struct cask_shard *sh, uint64_t h,
                      struct cask_kd_entry *e, const char *key, bool tomb);

/* Rewrite the records still needed of the segments whose fdatasync
 * failed into new segments, sync them and retire the failed ones like a
 * compaction (cask_compact.c); then writes are taken again. Records that
 * no longer read back whole are lost: their keys read as misses, never
 * as an older value. Blocks; 0 or an error (tried again later). */
int cask_shard_resync(struct cask_shard *sh);

/* Recover the shard from its directory (cask_recover.c): called once by
 * cask_shard_open before the shard is shared, so without locks. */
int cask_shard_recover(struct cask_shard *sh);

#endif
