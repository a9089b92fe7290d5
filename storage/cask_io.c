/* cask_io.c - the syscall seam: reads, write paths and syncs go through a table
 * of function pointers that tests may replace. Owns that table only; depends on
 * no other storage module.
 */
#define _GNU_SOURCE /* fallocate, FALLOC_FL_KEEP_SIZE, preadv2 */
#include "storage/cask_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static ssize_t
sys_pread(int fd, void *buf, size_t n, off_t off)
{
    return pread(fd, buf, n, off);
}

static ssize_t
sys_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

static int
sys_fdatasync(int fd)
{
    return fdatasync(fd);
}

static int
sys_unlink(const char *path)
{
    return unlink(path);
}

static int
sys_ftruncate(int fd, off_t len)
{
    return ftruncate(fd, len);
}

static int
sys_fallocate(int fd, off_t off, off_t len)
{
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, off, len);
}

static int
sys_ring_setup(void)
{
    return 0;
}

static ssize_t
sys_ring_done(int fd, size_t n, off_t off, ssize_t res)
{
    (void)fd;
    (void)n;
    (void)off;
    return res;
}

/* cachestat(2), Linux 6.5; one number on every architecture but alpha.
 * glibc before 2.39 has no wrapper. */
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

static int
sys_cachestat(int fd, uint64_t off, uint64_t len, uint64_t cs[5])
{
    struct {
        uint64_t off, len;
    } r = {off, len};
    return (int)syscall(SYS_cachestat, fd, &r, cs, 0u);
}

/* The system's table: what cask_io_default hands out, and what the
 * operations in use start as (and go back to on cask_io_set(NULL)). */
#define SYS_OPS                                                                \
    {                                                                          \
        .pwrite = sys_pwrite, .fdatasync = sys_fdatasync,                      \
        .ftruncate = sys_ftruncate, .fallocate = sys_fallocate,                \
        .pread = sys_pread, .unlink = sys_unlink,                              \
        .ring_setup = sys_ring_setup, .ring_done = sys_ring_done,              \
        .cachestat = sys_cachestat,                                            \
    }

static const struct cask_io_ops sys_ops = SYS_OPS;
static struct cask_io_ops cur_ops = SYS_OPS;

/* The status of a call that returns 0 or -1 with errno set. */
static int
status_of(int r)
{
    return r == 0 ? 0 : errno != 0 ? errno : EIO;
}

/* This thread's reads must not wait for the disk (cask_io_nowait). */
static _Thread_local bool nowait;

void
cask_io_nowait(bool on)
{
    nowait = on;
}

bool
cask_io_nowait_on(void)
{
    return nowait;
}

/* A read that takes only what the page cache holds: all of it, or EAGAIN.
 * Replaced operations (tests) cannot say what is cached: EAGAIN, so that
 * the caller reads through them on a thread that may wait. So does a
 * kernel without RWF_NOWAIT for this file, and a read that fails: the
 * blocking read that follows reports it. */
static int
pread_nowait(int fd, struct iovec *iov, int cnt, off_t off)
{
    size_t want = 0;
    for (int i = 0; i < cnt; i++) {
        want += iov[i].iov_len;
    }
    if (cur_ops.pread != sys_pread) {
        return EAGAIN;
    }
    ssize_t r;
    do {
        r = preadv2(fd, iov, cnt, off, RWF_NOWAIT);
    } while (r < 0 && errno == EINTR);
    return r >= 0 && (size_t)r == want ? 0 : EAGAIN;
}

void
cask_io_set(const struct cask_io_ops *ops)
{
    cur_ops = ops != NULL ? *ops : sys_ops;
}

const struct cask_io_ops *
cask_io_default(void)
{
    return &sys_ops;
}

bool
cask_io_reads_replaced(void)
{
    return cur_ops.pread != sys_pread;
}

bool
cask_io_map_writes_ok(void)
{
    return cur_ops.pwrite == sys_pwrite || cur_ops.map_write != NULL;
}

int
cask_io_map_write(int fd, size_t n, off_t off)
{
    return cur_ops.map_write != NULL ? cur_ops.map_write(fd, n, off) : 0;
}

/* After a vectored read or write moved `done` bytes: step *v / *n past the
 * parts it took whole and into the one it took in part. */
static void
iov_advance(struct iovec **v, int *n, size_t done)
{
    while (*n > 0 && done >= (*v)->iov_len) {
        done -= (*v)->iov_len;
        (*v)++;
        (*n)--;
    }
    if (*n > 0) {
        (*v)->iov_base = (char *)(*v)->iov_base + done;
        (*v)->iov_len -= done;
    }
}

/* One call of a transfer over v[0..n) at off: bytes moved, or -1 with
 * errno. The seam's scalar calls move (part of) the first part only. */
typedef ssize_t (*xfer_fn)(int fd, struct iovec *v, int n, off_t off);

static ssize_t
seam_pread(int fd, struct iovec *v, int n, off_t off)
{
    (void)n;
    return cur_ops.pread(fd, v->iov_base, v->iov_len, off);
}

static ssize_t
seam_pwrite(int fd, struct iovec *v, int n, off_t off)
{
    (void)n;
    return cur_ops.pwrite(fd, v->iov_base, v->iov_len, off);
}

static ssize_t
call_preadv(int fd, struct iovec *v, int n, off_t off)
{
    return preadv(fd, v, n, off);
}

static ssize_t
call_pwritev(int fd, struct iovec *v, int n, off_t off)
{
    return pwritev(fd, v, n, off);
}

/* Move every byte of v[0..n) (the array is consumed) from off on through
 * fn: EINTR is retried and a short transfer goes on after what it moved;
 * a call that moves nothing ends it with at_end (a read: the file ended,
 * EIO; a write: ENOSPC). 0 or an errno. */
static int
xfer_all(xfer_fn fn, int fd, struct iovec *v, int n, off_t off, int at_end)
{
    while (n > 0) {
        if (v->iov_len == 0) {
            v++;
            n--;
            continue;
        }
        ssize_t r = fn(fd, v, n, off);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno != 0 ? errno : EIO;
        }
        if (r == 0) {
            return at_end;
        }
        off += r;
        iov_advance(&v, &n, (size_t)r);
    }
    return 0;
}

int
cask_io_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    struct iovec iov = {(void *)buf, n};
    return xfer_all(seam_pwrite, fd, &iov, 1, off, ENOSPC);
}

int
cask_io_pwritev_all(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (cnt == 1) {
        return cask_io_pwrite_all(fd, iov[0].iov_base, iov[0].iov_len, off);
    }
    size_t n = 0;
    for (int i = 0; i < cnt; i++) {
        n += iov[i].iov_len;
    }
    if (cur_ops.pwrite != sys_pwrite) {
        char *buf = malloc(n ? n : 1);
        if (buf == NULL) {
            return ENOMEM;
        }
        size_t at = 0;
        for (int i = 0; i < cnt; i++) {
            memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        int rc = cask_io_pwrite_all(fd, buf, n, off);
        free(buf);
        return rc;
    }
    struct iovec v[8];
    if (cnt > 8) {
        return EINVAL;
    }
    for (int i = 0; i < cnt; i++) {
        v[i] = iov[i];
    }
    return xfer_all(call_pwritev, fd, v, cnt, off, ENOSPC);
}

/* Read all of v[0..n): without waiting for the disk on a thread that
 * asked so (cask_io_nowait), through the seam's pread where it is
 * replaced, else with preadv. */
static int
readv_all(int fd, struct iovec *v, int n, off_t off)
{
    if (nowait) {
        return pread_nowait(fd, v, n, off);
    }
    return xfer_all(cur_ops.pread != sys_pread ? seam_pread : call_preadv, fd,
                    v, n, off, EIO);
}

int
cask_io_pread_all(int fd, void *buf, size_t n, off_t off)
{
    struct iovec iov = {buf, n};
    return readv_all(fd, &iov, 1, off);
}

int
cask_io_pread2_all(int fd, void *a, size_t alen, void *b, size_t blen,
                   off_t off)
{
    struct iovec iov[2] = {{a, alen}, {b, blen}};
    return readv_all(fd, iov, 2, off);
}

int
cask_io_fdatasync(int fd)
{
    return status_of(cur_ops.fdatasync(fd));
}

int
cask_io_ftruncate(int fd, off_t len)
{
    return status_of(cur_ops.ftruncate(fd, len));
}

int
cask_io_ring_setup(void)
{
    return cur_ops.ring_setup != NULL ? cur_ops.ring_setup() : 0;
}

ssize_t
cask_io_ring_done(int fd, size_t n, off_t off, ssize_t res)
{
    return cur_ops.ring_done != NULL ? cur_ops.ring_done(fd, n, off, res) : res;
}

int
cask_io_cachestat(int fd, uint64_t off, uint64_t len, uint64_t cs[5])
{
    return cur_ops.cachestat != NULL ? cur_ops.cachestat(fd, off, len, cs)
                                     : sys_cachestat(fd, off, len, cs);
}

int
cask_io_unlink(const char *path)
{
    return status_of(cur_ops.unlink(path));
}

int
cask_io_fallocate(int fd, off_t off, off_t len)
{
    return status_of(cur_ops.fallocate(fd, off, len));
}
