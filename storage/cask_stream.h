/* cask_stream.h - reading a shard's log for replication (primary side) and
 * applying streamed records to a store (replica side). Stream format in
 * storage/REPLICATION.md.
 *
 * Primary: a shard's "log" is the chain of segments that took client
 * appends, in the order they became active (compaction outputs are not part
 * of it: their records are copies of records already in the log). A stream
 * position is (segment id, offset) in that chain. The append path tells
 * this module about every record (cask_stream_note, one call under the
 * shard mutex: the chain, a per-shard append counter, and a wake-up of
 * readers waiting in cask_stream_wait); readers read the records with
 * pread, the segment pinned, never holding a shard mutex for I/O. The chain is
 * known for the segments that took appends since the store was opened (and the
 * one active at open): a position outside it, or in a segment since compacted
 * or removed, is lost, and the reader must fall back to a snapshot (a
 * consistent copy of the shard's live items at one log position, read while
 * writes continue).
 *
 * Replica: records are applied verbatim (same seq, cas and expiry), so the
 * replica's own recovery and compaction see what the primary's would.
 * Part of the storage library; knows nothing of sockets.
 */
#ifndef BITCACHED_CASK_STREAM_H
#define BITCACHED_CASK_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask.h"

/* Segments of a shard's log remembered (a ring): a stream position in an
 * older one is lost. */
#define CASK_STREAM_CHAIN 1024u
/* Readers per shard whose position holds compaction back. */
#define CASK_STREAM_HOLDS 16u

/* Per-shard log state, embedded in struct cask_shard. chain and nchain are
 * covered by the shard mutex; appended is also read without it. */
struct cask_stream_tail {
    uint32_t chain[CASK_STREAM_CHAIN]; /* log segment ids, oldest first */
    uint32_t first;                    /* index of the oldest in the ring */
    uint32_t nchain;
    _Atomic uint64_t appended; /* records appended since open */
    /* The segment each pinned reader is in (0: free slot): compaction
     * leaves that one and the log segments after it alone. */
    uint32_t hold[CASK_STREAM_HOLDS];
};

struct cask_shard;

/* The append hook: one more record went into segment seg_id. Called by the
 * shard with its mutex held, after the record is written. */
void cask_stream_note(struct cask_shard *sh, uint32_t seg_id);

/* The same for n records written together (a write batch's). */
void cask_stream_note_n(struct cask_shard *sh, uint32_t seg_id, uint64_t n);

/* Whether compaction must leave segment s alone: a connected reader has
 * not yet passed it (mu held). One call in compaction's choice of inputs. */
struct cask_segment;
bool cask_stream_held(struct cask_shard *sh, const struct cask_segment *s);

/* A position in a shard's log. seg 0 means none. */
struct cask_pos {
    uint32_t seg;
    uint64_t off;
};

/* Records appended to shard (< 0: all shards) since the store was opened;
 * lock-free, for polling. */
uint64_t cask_stream_appended(struct cask *c, int shard);

/* Sleep until the store's append count (cask_stream_appended(c, -1)) is
 * no longer seen, or timeout_ms passed. */
void cask_stream_wait(struct cask *c, uint64_t seen, unsigned timeout_ms);

/* The shard's current log end and its append count at that point. */
void cask_stream_tail_pos(struct cask *c, unsigned shard, struct cask_pos *pos,
                          uint64_t *appended);

struct cask_segment;

/* Read whole records from *pos on, about max bytes (at least one record when
 * any follows), into *buf (malloc'd, grown as needed; *cap its size).
 * *pin (start with NULL) keeps the segment of *pos open between calls and
 * holds compaction off it and the log after it (cask_stream_held), so a
 * connected reader never loses its position to compaction (a stalled one
 * keeps that part of the log on disk); release it with cask_stream_unpin.
 * *len gets the byte count (0: nothing new yet), *nrec the number of
 * records, *end_n the shard's append count when the read found the end of
 * the log (every record counted in it is at or before *pos), else
 * UINT64_MAX, and *at where they start:
 * the reader moves to the next log segment by itself, so at->seg may be
 * newer than pos->seg. *pos advances past them. Each record's checksum is
 * verified. Blocks on pread only, without the shard mutex.
 * Returns 0, CASK_ENOTFOUND when the position is not (or no longer) in the
 * shard's log, CASK_ECORRUPT when the bytes there are not a valid record,
 * or an errno. */
int cask_stream_read(struct cask *c, unsigned shard, struct cask_pos *pos,
                     struct cask_segment **pin, size_t max, char **buf,
                     size_t *cap, size_t *len, size_t *nrec,
                     struct cask_pos *at, uint64_t *end_n);

/* Drop the pin of a reader (the segment may then be freed); *pin = NULL.
 * Safe on *pin == NULL. */
void cask_stream_unpin(struct cask *c, unsigned shard,
                       struct cask_segment **pin);

/* A consistent copy of one shard: the live items at log position pos. */
struct cask_snap;

/* Take the snapshot of shard (its keydir's live entries, their segments
 * pinned) under the shard mutex, and its position: the stream goes on
 * from *pos (append count *appended) once the snapshot is sent. Waits for
 * a running compaction of the shard to finish. Returns 0 or an errno. */
int cask_snap_create(struct cask_snap **out, struct cask *c, unsigned shard,
                     struct cask_pos *pos, uint64_t *appended);

/* Number of items in the snapshot. */
size_t cask_snap_count(const struct cask_snap *s);

/* Fill buf with whole put records of the snapshot (each carrying the expiry
 * in effect), about max bytes; *len 0 when it is done. Records whose items
 * were since removed by compaction are still read (segments pinned).
 * Returns 0 or an errno (CASK_ECORRUPT for a record failing its check). */
int cask_snap_next(struct cask_snap *s, size_t max, char **buf, size_t *cap,
                   size_t *len);

/* Unpin and free; *s = NULL. Safe on NULL. */
void cask_snap_destroy(struct cask_snap **s);

/* Replica: apply one streamed record rec[0..len) of shard verbatim (put,
 * tombstone or touch, with its own seq and cas): written to the active
 * segment and indexed as the newest state of its key. The store's cas
 * counter is raised past it. Returns 0, CASK_ECORRUPT (bad record, or a key
 * of another shard), CASK_ETOOBIG (value above value_max), or an error of
 * the append. */
int cask_stream_apply(struct cask *c, unsigned shard, const char *rec,
                      size_t len);

/* Replica: drop every segment and key of shard (before a snapshot), with
 * compaction's commit (the retired file), so a crash leaves the shard
 * either whole or empty. Blocks on fsyncs. Returns 0 or an errno. */
int cask_stream_wipe(struct cask *c, unsigned shard);

/* The flush threshold in effect (items with cas <= it are flushed),
 * resolving a delayed flush_all that came due. */
uint64_t cask_stream_flush_cas(struct cask *c);

/* Replica: raise (or with exact, set) the flush threshold to flush_cas,
 * persisted in the state file first. Returns 0 or an errno. */
int cask_stream_set_flush(struct cask *c, uint64_t flush_cas, bool exact);

/* Refuse (or accept again) client writes: with read_only on, cask_store,
 * cask_delete, cask_arith, cask_touch and cask_flush return
 * CASK_EREADONLY; the cask_stream_ calls still write. */
void cask_set_read_only(struct cask *c, bool read_only);
bool cask_read_only(const struct cask *c);

/* The data directory (replication keeps its state file there). */
const char *cask_dir(const struct cask *c);

#endif
