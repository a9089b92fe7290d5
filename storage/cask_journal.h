/* cask_journal.h - the shared commit journal of CASK_SYNC_ALWAYS
 * (cask_journal.c; format in storage/JOURNAL.md). Private to storage/.
 *
 * Every record the log appends to a segment is also queued here as a frame;
 * the committer writes the queued frames to one journal file and makes them
 * durable with one fdatasync, however many shards they came from. Segments
 * are synced lazily: at roll-over, and at a checkpoint before a journal
 * file is reused. Recovery replays the frames of the current generation
 * into their segments before any shard is read.
 *
 * The journal knows segment ids and offsets, not shards' structures: the
 * committer (cask_commit.c) drives checkpoints through the log.
 */
#ifndef BITCACHED_CASK_JOURNAL_H
#define BITCACHED_CASK_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask_internal.h"

/* Returned by cask_journal_take when the taken batch does not fit in the
 * current file before its reserve: the caller checkpoints (syncs every
 * segment), then calls cask_journal_switch, which also makes the batch
 * durable; or, while a checkpoint cannot run, places it in the reserve
 * (cask_journal_place). */
#define CASK_JOURNAL_FULL (-2100)

/* Bytes at the start of a journal file that hold its header. */
#define CASK_JOURNAL_HDR 4096u

/* Frame header bytes before the record. */
#define CASK_JOURNAL_FRAME_HDR 40u

/* Default size of each of the two journal files. */
#define CASK_JOURNAL_DEFAULT_SIZE (8u * 1024 * 1024)

struct cask_journal;

/* What a replay did (cask_journal_replay). */
struct cask_journal_replay_stats {
    uint64_t generation;     /* replayed generation, 0 = none */
    uint64_t frames;         /* valid frames read */
    uint64_t frames_written; /* frames whose bytes a segment lacked */
    uint64_t frames_missing; /* frames of segments no longer present */
    uint64_t bytes_written;
};

/* Before any shard is opened: replay the frames of the newest valid
 * generation in dir (c->dir) into their segments, in order, stopping at the
 * first invalid frame; a frame whose segment is gone (retired by a
 * compaction or eviction: created segments are durable) is skipped. The
 * segments written are fdatasynced. Returns 0 (also when there is no
 * journal) or an errno (a read or write error: nothing must be opened on
 * top of an incomplete replay); CASK_ENEWER (cask_newer.h, logged) when
 * a journal file is of a newer format version (nothing replayed, the
 * files must be left as they are). st may be NULL. Blocks. */
int cask_journal_replay(struct cask *c, struct cask_journal_replay_stats *st);

/* What cask_journal_replay would do, reading only (segments opened read
 * only, nothing written or synced): st->frames_written counts the frames
 * whose bytes their segment lacks. For offline tools that must not work on
 * segments a restart would change. 0, CASK_ENEWER, or an errno. Blocks. */
int cask_journal_pending(struct cask *c, struct cask_journal_replay_stats *st);

/* Under another sync mode, after a replay: remove the journal files (and
 * fsync dir), so that a later start cannot replay frames over segments
 * this run changes. 0 or an errno. */
int cask_journal_remove(struct cask *c);

/* Bytes the two journal files of dir take once cask_journal_open(size)
 * has run: the size of each file already there, size (0: the default)
 * for each it creates. For --disk-limit. */
uint64_t cask_journal_disk_bytes(const char *dir, uint64_t size);

/* After replay and shard recovery: create the two files when missing
 * (written with zeros, so later writes change no metadata), then start a
 * new generation, durable before this returns. size is the size of each
 * file for new files (0 = default). Returns 0 or an errno. */
int cask_journal_open(struct cask *c, uint64_t size, struct cask_journal **out);

/* Free. Safe on NULL. The caller checkpoints first if it wants the next
 * open to have nothing to replay (cask_journal_switch). */
void cask_journal_close(struct cask_journal **j);

/* Queue a frame for rec[0..len), just written to segment seg_id of shard at
 * off, the shard's append number seq. Called with that shard's mutex
 * held; takes the journal's own mutex briefly. When memory runs out the
 * record is not queued but the next pass checkpoints instead, which covers
 * it all the same. */
void cask_journal_add(struct cask_journal *j, unsigned shard, uint32_t seg_id,
                      uint32_t off, const void *rec, size_t len, uint64_t seq);

/* A batch of frames a commit thread took; it owns buf. */
struct cask_journal_batch {
    char *buf;
    size_t len, cap;
    uint64_t frames;
    bool lost;    /* a frame could not be queued: checkpoint instead */
    uint64_t off; /* where it goes in the current file */
};

/* Commit threads, one at a time (the committer's take lock): take the
 * queued frames into b and reserve their place in the current file;
 * seqs (nshards entries) gets, per shard, the highest append number in
 * b (0: none). Returns 0 (b may be empty), CASK_JOURNAL_FULL (taken, but
 * it does not fit before the file's reserve, its last quarter: checkpoint
 * once every earlier batch is done, then cask_journal_switch), or EIO
 * once the journal failed. */
int cask_journal_take(struct cask_journal *j, struct cask_journal_batch *b,
                      uint64_t *seqs);

/* For a batch cask_journal_take found past the reserve's start, while a
 * checkpoint cannot run (a segment whose sync failed is being rewritten):
 * reserve its place in the rest of the current file, reserve included,
 * so that commits go on meanwhile. 0 (write it as any batch),
 * CASK_JOURNAL_FULL (no room even there, or a frame of it could not be
 * queued: only a checkpoint covers it), or EIO once the journal failed. */
int cask_journal_place(struct cask_journal *j, struct cask_journal_batch *b);

/* Fail the journal as a failed write would (every later take fails; the
 * committer recovers it, cask_journal_resume): for a batch that can be
 * neither written nor checkpointed in time. The caller logs why. */
void cask_journal_fail(struct cask_journal *j);

/* Write batch b at its reserved place and fdatasync the file. Batches
 * taken one after the other may be written concurrently: each is durable
 * once its call returns 0. An error (the write's or the sync's errno)
 * fails the journal: every later take fails too. */
int cask_journal_write(struct cask_journal *j, struct cask_journal_batch *b);

/* With no batch in flight, after a checkpoint synced every segment
 * appended to so far: start the next generation in the other file
 * (header written and synced). 0 or an errno (the journal is then
 * failed). */
int cask_journal_switch(struct cask_journal *j);

/* While shard's segment seg_id is rewritten after its fdatasync failed
 * (cask_resync.c; no generation switch can happen meanwhile): write back
 * into that segment, through fd, the bytes of every frame of the current
 * generation that names it and that the segment no longer holds (its
 * pages dropped by the kernel read back as other bytes), so that the
 * rewrite reads every journaled record whole. Reads the file up to the
 * first invalid frame (a batch still being written ends it: its records
 * were not acknowledged). *restored counts the frames written back. 0 or
 * an errno. Blocks. */
int cask_journal_restore(struct cask_journal *j, unsigned shard,
                         uint32_t seg_id, int fd, uint64_t *restored);

/* Has a write, sync or switch failed since the last resume? */
bool cask_journal_failed(struct cask_journal *j);

/* After a failure, with no batch in flight and once a checkpoint synced
 * every segment appended to so far: drop the queued frames (that
 * checkpoint covers them) and start the next generation in the other
 * file, so that nothing of the failed file is needed; the journal then
 * takes batches again. 0, or an errno (still failed: try again later).
 * Also what a close does to leave nothing to replay. */
int cask_journal_resume(struct cask_journal *j);

/* True once per generation, the first time it is called after the
 * current file got more than half full: time to start writing segments
 * back early. */
bool cask_journal_half(struct cask_journal *j);

/* Free a batch's buffer. */
void cask_journal_batch_free(struct cask_journal_batch *b);

/* Stats: fdatasyncs of journal files, and frames they made durable. */
void cask_journal_counts(struct cask_journal *j, uint64_t *syncs,
                         uint64_t *frames, uint64_t *checkpoints);

#endif
