/* cask_io.h - the syscall seam of the storage engine.
 *
 * Every pread, pwrite, fdatasync, ftruncate, fallocate and unlink on
 * segment, hint, state and journal files goes through the function pointers
 * below, so tests can inject ENOSPC, EIO or short writes and read errors.
 * Reads through io_uring (cask_uring.c) are made by the kernel, not
 * through pread: the seam sees them as they complete (ring_done), and can
 * refuse the ring itself (ring_setup). The page cache probes of the read
 * path (cachestat, cask_verify.h) go through it too.
 * Owns nothing but the table of pointers; must not depend on any other
 * storage module.
 */
#ifndef BITCACHED_CASK_IO_H
#define BITCACHED_CASK_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef ssize_t (*cask_io_pread_fn)(int fd, void *buf, size_t n, off_t off);
typedef ssize_t (*cask_io_pwrite_fn)(int fd, const void *buf, size_t n,
                                     off_t off);
typedef int (*cask_io_fdatasync_fn)(int fd);
typedef int (*cask_io_ftruncate_fn)(int fd, off_t len);
typedef int (*cask_io_fallocate_fn)(int fd, off_t off, off_t len);
typedef int (*cask_io_unlink_fn)(const char *path);
/* Before an io_uring is set up: 0, or the errno to fail the setup with. */
typedef int (*cask_io_ring_setup_fn)(void);
/* A ring read of n bytes at off of fd completed with res (bytes read, or
 * -errno): returns the result to act on (a fault: another one; a slow
 * disk: sleep first). */
typedef ssize_t (*cask_io_ring_done_fn)(int fd, size_t n, off_t off,
                                        ssize_t res);

/* Before a copy of n bytes into a writable shared mapping of fd at off
 * (appends through the active segment's mapping, cask_segment.h): 0 lets
 * the copy go ahead, an errno makes it fail as a fault would (SIGBUS:
 * the file cut under the mapping). */
typedef int (*cask_io_map_write_fn)(int fd, size_t n, off_t off);

/* cachestat(2) of the len bytes at off of fd (page-aligned): fills cs
 * with the pages of the range in the page cache, dirty, under writeback,
 * evicted (a shadow entry left) and recently evicted, in that order;
 * returns 0, or -1 with errno set. A test can make pages look evicted. */
typedef int (*cask_io_cachestat_fn)(int fd, uint64_t off, uint64_t len,
                                    uint64_t cs[5]);

struct cask_io_ops {
    cask_io_pwrite_fn pwrite;
    cask_io_fdatasync_fn fdatasync;
    cask_io_ftruncate_fn ftruncate;
    cask_io_fallocate_fn fallocate;
    cask_io_pread_fn pread;
    cask_io_unlink_fn unlink;
    cask_io_ring_setup_fn ring_setup; /* NULL: as the system's */
    cask_io_ring_done_fn ring_done;   /* NULL: as the system's */
    cask_io_map_write_fn map_write;   /* NULL: as the system's */
    cask_io_cachestat_fn cachestat;   /* NULL: as the system's */
};

/* Replace the operations (NULL restores the system calls). Tests only: not
 * safe while a store is doing I/O on another thread. */
void cask_io_set(const struct cask_io_ops *ops);

/* The system calls, for tests that wrap them. */
const struct cask_io_ops *cask_io_default(void);

/* Whether reads go through replaced operations: then nothing is read
 * around them (from a mapping, cask_vmap.h), so tests see every read. */
bool cask_io_reads_replaced(void);

/* Whether appends may be copied into a mapping of the file instead of
 * written with pwrite: with the system calls, or when replaced operations
 * say so (map_write set). A test that replaced pwrite alone watches every
 * write: they all go through it then. */
bool cask_io_map_writes_ok(void);

/* cachestat(2) through the seam (cask_io_cachestat_fn): 0, or -1 with
 * errno set (ENOSYS before Linux 6.5). */
int cask_io_cachestat(int fd, uint64_t off, uint64_t len, uint64_t cs[5]);

/* Ask map_write whether a copy of n bytes into fd's mapping at off may go
 * ahead: 0 or the errno to fail it with. */
int cask_io_map_write(int fd, size_t n, off_t off);

/* Write all n bytes at off, looping over short writes. Returns 0 or an errno;
 * on error some prefix may have been written (the caller truncates back). */
int cask_io_pwrite_all(int fd, const void *buf, size_t n, off_t off);

/* Write the cnt buffers of iov back to back from off on, as
 * cask_io_pwrite_all would write them joined: one pwritev (more for short
 * writes) with the system calls; through replaced operations they are
 * joined in a buffer and written with one pwrite, so tests see one write
 * as before. Returns 0 or an errno (a prefix may have been written). */
struct iovec;
int cask_io_pwritev_all(int fd, const struct iovec *iov, int cnt, off_t off);

/* Read all n bytes at off, looping over short reads. Returns 0, EIO when
 * the file ends first, or the errno of the failed read. */
int cask_io_pread_all(int fd, void *buf, size_t n, off_t off);

/* Read a[0..alen) then b[0..blen) from off on, as cask_io_pread_all would
 * read one buffer: one preadv (and more for short reads) with the system
 * calls, two preads through replaced operations (so tests see every read).
 * Returns 0, EIO when the file ends first, or the errno of a failed read. */
int cask_io_pread2_all(int fd, void *a, size_t alen, void *b, size_t blen,
                       off_t off);

/* While on, cask_io_pread_all and cask_io_pread2_all on this thread read
 * only what the page cache already holds (preadv2 with RWF_NOWAIT): all of
 * it, or nothing useful and EAGAIN. Through replaced operations they always
 * say EAGAIN. For a worker thread's first try at a value (cask_get_nowait);
 * switched off again right after that one read. */
void cask_io_nowait(bool on);

/* Is cask_io_nowait on for this thread? A reader that could take bytes
 * from a mapping instead (which may wait for the disk) reads them through
 * cask_io_pread_all then. */
bool cask_io_nowait_on(void);

/* fdatasync; returns 0 or an errno. Never retried by callers. */
int cask_io_fdatasync(int fd);

/* Reserve disk blocks for [off, off+len) without changing the file size
 * (fallocate with FALLOC_FL_KEEP_SIZE). Returns 0 or an errno (EOPNOTSUPP
 * where the file system cannot). */
int cask_io_fallocate(int fd, off_t off, off_t len);

/* Whether an io_uring may be set up: 0 or an errno (ring_setup). */
int cask_io_ring_setup(void);

/* The result a ring read is to be taken as (ring_done). */
ssize_t cask_io_ring_done(int fd, size_t n, off_t off, ssize_t res);

/* unlink; returns 0 or an errno. */
int cask_io_unlink(const char *path);

/* ftruncate; returns 0 or an errno. */
int cask_io_ftruncate(int fd, off_t len);

#endif
