/* cask_check.h - offline, read-only verification of a closed data directory
 * (for bitcached-admin check).
 *
 * Reads the state file, every shard's retired file, segments and hints through
 * the segment, record and hint code of the library, and changes nothing on
 * disk: no truncation, no header rewrite, no retired-file or journal replay
 * (records a journal replay would restore are reported as damage). The caller
 * makes sure no server has the directory open (see cask_check_lock). Owns no
 * state between calls. Knows nothing of the server or the protocol.
 */
#ifndef BITCACHED_CASK_CHECK_H
#define BITCACHED_CASK_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Figures of a whole directory or one shard. */
struct cask_check_counts {
    uint64_t segments;
    uint64_t segment_bytes; /* sizes of the segment files */
    uint64_t records;       /* valid records of every type */
    uint64_t record_bytes;  /* their bytes */
    uint64_t puts;
    uint64_t tombstones;
    uint64_t touches;
    uint64_t keys;       /* keys whose newest record is a put, neither
                          * flushed nor expired */
    uint64_t live_bytes; /* record bytes of those puts */
    uint64_t dead_bytes; /* every other record byte */
    uint64_t hints_ok;   /* hint files that match their segment */
    uint64_t hints_missing;
    uint64_t hints_bad;     /* damaged, or disagreeing with the segment */
    uint64_t torn_bytes;    /* torn tails (the server truncates them) */
    uint64_t damaged_bytes; /* bad bytes followed by valid records */
    uint64_t bad_headers;   /* segment headers that fail their checks */
};

struct cask_check_report {
    unsigned shards; /* from the state file, else shard directories */
    bool state_present;
    bool state_ok; /* at least one valid slot */
    unsigned state_bad_slots;
    uint64_t state_generation;
    uint64_t flush_cas;
    uint64_t retired_bad;      /* retired files that fail their checksum */
    uint64_t retired_pending;  /* listed segments still present (a
                                * compaction cut short; finished at open) */
    uint64_t manifest_bad;     /* manifests that fail their checks */
    uint64_t segments_missing; /* listed by a manifest, not there, or
                                * only their hint left */
    uint64_t journal_pending;  /* records the commit journal holds that
                                * their segments lack (replayed at open) */
    uint64_t newer_files;      /* files (state slots) of a newer format
                                * version: the server refuses the store */
    uint64_t problems;         /* findings that count as damage */
    struct cask_check_counts total;
};

/* Called per finding: damage is true for findings that count as damage (the
 * server would skip, truncate or refuse something), false for notes. msg has
 * no newline. */
typedef void (*cask_check_note_fn)(void *arg, bool damage, const char *msg);

/* Called after each shard with its figures. May be NULL. */
typedef void (*cask_check_shard_fn)(void *arg, unsigned shard,
                                    const struct cask_check_counts *c);

/* Called with segment bytes verified so far and the total. May be NULL. */
typedef void (*cask_check_progress_fn)(void *arg, uint64_t done,
                                       uint64_t total);

struct cask_check_hooks {
    cask_check_note_fn note;
    cask_check_shard_fn shard;
    cask_check_progress_fn progress;
    void *arg;
};

/* Verify dir. now_s is the clock used for expiry in the key counts.
 * Returns 0 with *rep filled (rep->problems says whether damage was found),
 * or an errno when something could not be read (a read error is never taken
 * for damage). */
int cask_check(const char *dir, int64_t now_s, const struct cask_check_hooks *h,
               struct cask_check_report *rep);

struct cask_segment;

/* Returned by cask_check_hint for a hint that loads but disagrees with the
 * segment (not an errno). */
#define CASK_CHECK_HINT_DIFFERS (-2)

/* Verify the hint of segment s (in shard directory sdir) entry by entry
 * against the records it names. Returns 0 when it matches, ENOENT when
 * there is none, EINVAL when it is damaged or does not fit the segment,
 * CASK_CHECK_HINT_DIFFERS (*bad_off: the first entry that differs), or the
 * errno of a failed read. */
int cask_check_hint(const char *sdir, struct cask_segment *s,
                    uint64_t *bad_off);

/* The shard count recorded in the state file: 0 and *shards, ENOENT when there
 * is no state file, EINVAL when no slot is valid (for both, *shards is the
 * number of shard directories found), CASK_ENEWER when a slot is of a newer
 * format version, or an errno. */
int cask_check_shards(const char *dir, unsigned *shards);

/* Take a shared lock on dir/LOCK so that no server opens the directory while
 * it is read (a missing LOCK file is not created: *fd is then -1). Returns
 * 0, or EWOULDBLOCK when a process holds it, with *holder its PID when it
 * can be found (else 0), or an errno. Close *fd to release. */
int cask_check_lock(const char *dir, int *fd, pid_t *holder);

/* The PID holding a lock on dir/LOCK, from /proc/locks, or 0. */
pid_t cask_check_lock_holder(const char *dir);

#endif
