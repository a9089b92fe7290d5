/* cask_segment.h - one append-only segment file of a shard.
 *
 * A segment owns its fd and, while compaction writes it
 * as an output, a user-space buffer holding the unflushed tail (the active
 * segment has none: appends that get acknowledged are written through). Records
 * never straddle the buffer and the file: a record is either wholly flushed or
 * wholly buffered. Not thread-safe: the shard mutex covers a segment. Depends
 * on cask_io and cask_record only.
 */
#ifndef BITCACHED_CASK_SEGMENT_H
#define BITCACHED_CASK_SEGMENT_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "storage/cask_newer.h"
#include "storage/cask_record.h"

#define CASK_SEG_HDR     32u
#define CASK_SEG_VERSION 2u /* 2: may hold touch records; 1 still read */
#define CASK_PATH_MAX    4096

/* A write of at most this many bytes is copied into the active segment's
 * mapping (cask_seg_wmap_open); a larger one goes out with pwrite. A copy
 * saves the system call but pays a page fault for every page it is the
 * first to write since that page was last written back (several µs on
 * ext4 each, measured: more than the pwrite of a page), so it pays for a
 * pass's few small records (which share pages), not for a value of a
 * page or more. */
#define CASK_SEG_MAP_COPY_MAX 1024u

struct cask_segment {
    uint32_t id;   /* file name; larger = created later */
    uint16_t slot; /* index in the shard's segment table */
    int fd;
    uint64_t size;    /* logical end: flushed + buffered */
    uint64_t flushed; /* bytes written to the file */
    char *buf;        /* unflushed tail, starts at `flushed` */
    size_t buf_len;
    size_t buf_cap;
    uint64_t live_bytes;   /* bytes of records the keydir points at */
    uint64_t kept_bytes;   /* tombstones compaction had to carry over */
    uint64_t min_cas;      /* smallest cas of any record in it */
    uint64_t max_cas;      /* largest cas of any record in it */
    uint64_t hint_bytes;   /* size of the hint file, 0 none */
    uint64_t hint_len;     /* bytes covered by the hint file on disk, 0 none */
    uint64_t prealloc_end; /* disk blocks are reserved up to here (beyond
                            * size: fallocate, keeping the file size) */
    uint32_t cuts;         /* truncates of ours so far, each of which may
                            * have given back blocks reserved past it */
    bool extending;        /* the roller thread extends its reserve with
                            * the shard mutex released (cask_log.c) */
    unsigned readers;      /* gets reading it without the shard mutex */
    bool retired;          /* compacted away: the last reader frees it */
    bool compacting;       /* input of a running compaction */
    bool is_output;        /* being written by a running compaction */
    bool damaged;          /* compaction could not read it: not picked again */
    bool hint_tried;       /* a hint write was attempted: not retried (a
                            * scan that stops early or a failing disk would
                            * otherwise rewrite it every second) */
    bool sync_pending;     /* closed by a roll-over that left its fdatasync
                            * to the sync thread (cask_log.c): no hint yet,
                            * not an input of compaction or eviction */
    uint32_t succ_id;      /* then: the segment created to replace it,
                            * whose directory entry that sync makes
                            * durable too */
    char path[CASK_PATH_MAX];

    /* Large values checked once (cask_verify.h); readers above also counts
     * values handed out as references into the file. */
    uint64_t ctime_ns; /* the file's change time after our last write */
    bool has_checked;  /* keydir entries of its records may be checked */
    bool changed;      /* written by someone else since ctime_ns */
    bool change_told;  /* that was logged (once per segment) */

    /* Read-only mapping for handing verified values out (cask_vmap.h):
     * set once under the shard mutex, unmapped when the segment is freed. */
    const char *map;
    uint64_t map_len;
    bool map_tried; /* a failed mmap is not retried */

    /* Writable shared mapping the appends of the active segment are
     * copied into (cask_seg_wmap_open): wmap_len bytes of address space
     * from offset 0; the file is extended to ext_end (never past
     * prealloc_end, so that every page written has its blocks) ahead of
     * the appends and cut back to the records' end when the segment stops
     * taking them (cask_seg_cut_ahead). Mu held. */
    char *wmap;
    uint64_t wmap_len;
    uint64_t ext_end; /* the file's size as we set it: >= flushed */
    bool wmap_tried;  /* opened once; a failure or a fault is final */
    bool wmap_fault;  /* a copy faulted (the file was cut under it) */
    /* Copies into the mapping that succeeded (the log counts records). */
    uint64_t wmap_copies;

    /* O_DIRECT descriptor for reads the page cache cannot keep
     * (cask_direct.c): fd + 1, 0 not opened yet, -1 none to be had; the
     * offset alignment of its reads; set when the file system refused a
     * direct read. Any thread, s pinned; closed when s is freed. */
    _Atomic int dio;
    _Atomic uint32_t dio_align;
    _Atomic bool dio_off;
    /* Pages found evicted and read around the page cache since
     * (cask_direct.c): a bitmap, word 0 its page count; NULL none yet.
     * Any thread, s pinned; freed with s. */
    _Atomic(_Atomic uint64_t *) cold;
};

/* Build "dir/NNNNNNNN.ext". */
void cask_seg_path(char *out, size_t cap, const char *dir, uint32_t id,
                   const char *ext);

/* Whether h[0..CASK_SEG_HDR) is a valid header for segment id. */
bool cask_seg_header_ok(const char *h, uint32_t id);

/* The format version of h when it is a whole, valid header for segment id
 * written by a newer build (a version above CASK_SEG_VERSION), else 0.
 * Such a segment is neither damage to repair nor records to read: its
 * records may follow rules this build does not know. */
uint32_t cask_seg_header_newer(const char *h, uint32_t id);

/* cask_seg_open's answer for a segment of a newer format (nothing is
 * changed in it): the one every file kind gives (cask_newer.h). */
#define CASK_SEG_ENEWER CASK_ENEWER

/* Create a new segment file (header written, directory synced) that will take
 * appends through a buffer of buf_cap bytes (0: written through). Returns 0
 * or an errno. */
int cask_seg_create(struct cask_segment **out, const char *dir, uint32_t id,
                    size_t buf_cap);

/* The same without a buffer, and with neither the header nor the
 * directory entry synced: the caller syncs both before it counts on any
 * record in it (a roll-over under interval or never: the sync thread,
 * cask_log.c). A power loss before may leave it missing or with a torn
 * header (recovery resets it to an empty segment). */
int cask_seg_create_unsynced(struct cask_segment **out, const char *dir,
                             uint32_t id);

/* Open an existing segment. A file too short for its header is reset to an
 * empty segment (bytes dropped in *dropped); a damaged header is rewritten
 * in place (*bad_header set) and the records after it are left to the scan.
 * Returns 0 or an errno (a read error changes nothing); CASK_SEG_ENEWER,
 * changing nothing, for a segment of a newer format. */
int cask_seg_open(struct cask_segment **out, const char *dir, uint32_t id,
                  uint64_t *dropped, bool *bad_header);

/* cask_seg_open opened read only, writing nothing: a torn header reads as
 * an empty segment, a damaged one is only reported. */
int cask_seg_open_look(struct cask_segment **out, const char *dir, uint32_t id,
                       uint64_t *dropped, bool *bad_header);

/* Give an opened segment an append buffer of buf_cap bytes (0: none).
 * Returns 0 or an errno. */
int cask_seg_make_active(struct cask_segment *s, size_t buf_cap);

/* Drop the append buffer (after a final flush). */
void cask_seg_make_closed(struct cask_segment *s);

/* Room for len bytes at the end of the buffer, or NULL when they do not fit
 * (flush first, or write the record directly). */
char *cask_seg_reserve(struct cask_segment *s, size_t len);

/* Write the buffered tail to the file. On failure the file is truncated back
 * to what was flushed before, the buffer is kept, and an errno returned. */
int cask_seg_flush(struct cask_segment *s);

/* Flush, then write buf[0..len) at the end of the file, bypassing the buffer.
 * Leaves no partial record on failure. Returns 0 or an errno. */
int cask_seg_write_direct(struct cask_segment *s, const char *buf, size_t len);

/* The same for a record in parts (at most 8), written with one pwritev. */
int cask_seg_writev_direct(struct cask_segment *s, const struct iovec *iov,
                           int cnt);

/* Forget the buffered tail back to logical size `size` (>= flushed). */
void cask_seg_unbuffer(struct cask_segment *s, uint64_t size);

/* Pointer to bytes [off, off+len) when they sit in the append buffer, else
 * NULL (use cask_seg_pread). */
const char *cask_seg_view(const struct cask_segment *s, uint64_t off,
                          size_t len);

/* Read [off, off+len) into dst. Returns 0 or an errno (EIO on short read). */
int cask_seg_pread(const struct cask_segment *s, uint64_t off, size_t len,
                   char *dst);

/* Read [off, off+alen+blen) into a[0..alen) and b[0..blen). Returns 0 or
 * an errno (EIO on short read). */
int cask_seg_pread2(const struct cask_segment *s, uint64_t off, char *a,
                    size_t alen, char *b, size_t blen);
/* Truncate the file to len (recovery of a torn tail). Returns 0 or errno. */
int cask_seg_truncate(struct cask_segment *s, uint64_t len);

/* Iterate the valid records in [start, flushed). For each: fn(arg, rec, key,
 * off). Stops at the first record that is torn, impossible or fails its
 * checksum and returns the offset where valid data ends. *err is 0, or the
 * errno of a read that failed (the returned offset is then where). */
typedef void (*cask_seg_scan_fn)(void *arg, const struct cask_rec *r,
                                 const char *key, uint64_t off);
uint64_t cask_seg_scan(struct cask_segment *s, uint64_t start, uint32_t vmax,
                       cask_seg_scan_fn fn, void *arg, int *err);

/* Sequential reading of a closed segment through a read-ahead window of
 * large preads (never a mapping: a media error or a file shortened
 * underneath is an error, not a SIGBUS). Zero-initialise; deinit frees. */
struct cask_seg_reader {
    const struct cask_segment *seg; /* the window's segment */
    char *buf;
    size_t cap;
    uint64_t start; /* file offset of buf[0] */
    size_t len;     /* valid bytes in buf */
};

/* Returned by cask_seg_read_record for invalid data (not an errno). */
#define CASK_SEG_EINVALID (-1)

/* The verified record at off: *r, *len and *rec (valid until the next call
 * on rd). Returns 0, CASK_SEG_EINVALID when the bytes there are not a
 * whole valid record, or the errno of a failed read or allocation. */
int cask_seg_read_record(struct cask_segment *s, struct cask_seg_reader *rd,
                         uint64_t off, uint32_t vmax, struct cask_rec *r,
                         size_t *len, const char **rec);
void cask_seg_reader_deinit(struct cask_seg_reader *rd);

/* Load the window at off unless it already holds the record there,
 * so that the records read next come from memory (compaction calls it
 * before it takes the shard mutex). Returns 0 or an errno. */
int cask_seg_reader_prefetch(struct cask_segment *s, struct cask_seg_reader *rd,
                             uint64_t off);

/* Whether the window holds the whole record at off of s (as far as its
 * header says; an invalid header counts as held). */
bool cask_seg_reader_covers(const struct cask_seg_reader *rd,
                            const struct cask_segment *s, uint64_t off);

/* After invalid data at off: the offset of the next valid record (one whose
 * header decodes and whose checksum matches), or flushed when none follows.
 * *err as for cask_seg_scan. */
uint64_t cask_seg_resync(struct cask_segment *s, uint64_t off, uint32_t vmax,
                         int *err);

/* Mu held, s the active segment: copy its later appends into a writable
 * shared mapping of len bytes (records that do not fit in it, or past the
 * blocks reserved, are written with pwrite as before). Only where disk
 * blocks are reserved ahead (prealloc_end): a page written through the
 * mapping must never need a block the disk does not have, which would be
 * a SIGBUS at the copy instead of an ENOSPC. Returns 0 or an errno (then
 * s keeps writing with pwrite). Tried once per segment. */
int cask_seg_wmap_open(struct cask_segment *s, uint64_t len);

/* Whether appends to s go through its mapping. */
bool cask_seg_wmapped(const struct cask_segment *s);

/* Mu held: s takes no more appends through its mapping. Unmap it and cut
 * the file back to the records' end (flushed) when it was extended past
 * it, keeping the disk blocks reserved past the end when keep_reserve
 * (a clean close: see recovery), else giving them back. Call
 * cask_seg_map_cut first: a file another process cut is not grown back
 * over the cut. Returns 0 or the errno of the cut. */
int cask_seg_cut_ahead(struct cask_segment *s, bool keep_reserve);

/* Mu held: s takes no more appends; unmap it for appends, leaving the file
 * as long as it is. Whoever then syncs s cuts it back to its records first
 * (cask_seg_trim, cask_seg_trimmed): a roll-over leaves that to the sync
 * thread. */
void cask_seg_wmap_close(struct cask_segment *s);

/* Mu released, s closed and pinned: cut its file back to end, its records'
 * end (s->size, read with mu held), giving back what lies past it: the
 * extension ahead of its appends and the disk blocks reserved past its
 * end. Touches no field of s: cask_seg_trimmed does, mu held again (with
 * cask_verify_write_begin and _end around the pair). Returns 0 or the
 * errno of the ftruncate. Can block (ext4 makes it wait for a sync of the
 * file system in progress). */
int cask_seg_trim(const struct cask_segment *s, uint64_t end);

/* Mu held: cask_seg_trim(s, end) succeeded. */
void cask_seg_trimmed(struct cask_segment *s, uint64_t end);

/* Mu held, s mapped for appends: is its file shorter than the store
 * extended it to (cut by another process)? A cut inside the last page
 * of the file raises no SIGBUS at the next copy: the records copied
 * there are lost with the page at writeback, so the size is looked at
 * (one fstat) before a sync, a roll-over or a close relies on them.
 * When cut: the mapping is dropped (appends use pwrite from then on),
 * wmap_fault is set as after a faulting copy (the log queues the
 * segment's rewrite), the file is cut back to flushed if it is longer,
 * and true is returned. */
bool cask_seg_map_cut(struct cask_segment *s);

/* Whether bytes [off, flushed) of s are all zero (what an extension
 * ahead of the appends leaves past the last record when the process
 * stopped without cutting it). Returns 0 with *zero set, or the errno of a
 * failed read. */
int cask_seg_zero_tail(struct cask_segment *s, uint64_t off, bool *zero);

/* Cut s to len (a zero tail found by recovery), keeping the disk blocks
 * reserved past it when keep_reserve, as a segment that takes appends
 * keeps them. Returns 0 or an errno. */
int cask_seg_cut_tail(struct cask_segment *s, uint64_t len, bool keep_reserve);

/* Close fd, free. Safe on NULL. */
void cask_seg_close(struct cask_segment **s);

/* fsync a directory. Returns 0 or an errno. */
int cask_fsync_dir(const char *dir);

/* Replace the file at path (in directory dir) by buf[0..len) so that a crash
 * leaves either the old or the new file: write tmp, fdatasync, rename over
 * path, fsync dir. Returns 0 once the rename is done: the new file is what
 * a restart reads from then on; *dir_rc then gets the directory fsync's
 * result, non-zero when the rename may not survive a power loss (the old
 * file may then be back: the caller logs it). Otherwise an errno, with
 * the old file untouched and tmp removed. */
int cask_replace_file(const char *dir, const char *tmp, const char *path,
                      const void *buf, size_t len, int *dir_rc);

/* Read the small file DIR/NAME whole into *buf (malloc'd; the caller frees
 * it), its size in *len. A size outside [min, max] is EINVAL. Returns 0 or
 * an errno (ENOENT when the file is absent); on error *buf is NULL. */
int cask_read_small_file(const char *dir, const char *name, size_t min,
                         size_t max, char **buf, size_t *len);

/* Decode cnt segment ids stored as little-endian u32 at p (the manifest's
 * and the retired file's lists) into a malloc'd array *ids of *n. Returns 0
 * or ENOMEM. */
int cask_ids_decode(const char *p, size_t cnt, uint32_t **ids, size_t *n);

#endif
