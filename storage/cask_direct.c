/* cask_direct.c - direct reads of records the page cache cannot keep
 * (cask_direct.h): the policy, each segment's O_DIRECT descriptor and the
 * aligned span of a record. Owns the policy, a count of direct reads and
 * a back-off after a descriptor could not be opened; the descriptors live
 * in their segments (atomics, no lock: a segment is pinned while read).
 */
#include <config.h>

#include "storage/cask_direct.h"

#include "storage/cask_internal.h"
#include "storage/cask_segment.h"
#include "storage/cask_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

/* A descriptor that could not be opened for want of descriptors is not
 * tried again for this long (by any segment). */
#define RETRY_MS 1000u

static atomic_int policy = CASK_DIRECT_AUTO;

/* This thread's last probe (cask_direct_pages), kept for the plan of
 * the read that usually follows it for the same record: one cachestat
 * per cold get rather than two. A stale one (the fd number reused in
 * between) only picks the other kind of read. */
static _Thread_local struct {
    bool valid;
    bool evicted;
    int fd;
    uint64_t off, len;
} last;
static atomic_uint_fast64_t nreads;
static _Atomic uint64_t retry_at_ms;

void
cask_direct_set_policy(enum cask_direct_policy p)
{
    atomic_store_explicit(&policy, (int)p, memory_order_relaxed);
}

uint64_t
cask_direct_reads(void)
{
    return atomic_load_explicit(&nreads, memory_order_relaxed);
}

enum cask_verify_pages
cask_direct_pages(int fd, uint64_t off, uint64_t len)
{
    bool ev;
    enum cask_verify_pages pages = cask_verify_pages_ev(fd, off, len, &ev);
    last.valid = true;
    last.evicted = ev;
    last.fd = fd;
    last.off = off;
    last.len = len;
    return pages;
}

/* Whether the record at [off, off+len) of fd was evicted: this thread's
 * last probe when it was of that record, else a new one. */
static bool
evicted(int fd, uint64_t off, uint64_t len)
{
    bool ev;
    if (last.valid && last.fd == fd && last.off == off && last.len == len) {
        last.valid = false;
        return last.evicted;
    }
    (void)cask_verify_pages_ev(fd, off, len, &ev);
    return ev;
}

/* The file system's offset alignment for direct reads of fd, 0 when it
 * says it has none. 4096 where statx does not tell (before Linux 6.1). */
static uint32_t
dio_alignment(int fd)
{
#ifdef STATX_DIOALIGN
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN) != 0) {
        if (sx.stx_dio_offset_align == 0 ||
            sx.stx_dio_offset_align > CASK_DIRECT_ALIGN ||
            sx.stx_dio_mem_align > CASK_DIRECT_ALIGN) {
            return 0;
        }
        return sx.stx_dio_offset_align;
    }
#else
    (void)fd;
#endif
    return CASK_DIRECT_ALIGN;
}

/* Open s's direct descriptor: its value for s->dio (fd + 1), -1 where
 * there is none to be had for this segment, 0 for not now (short of
 * descriptors). */
static int
dio_open(struct cask_segment *s)
{
    struct statfs sf;
    if (fstatfs(s->fd, &sf) == 0 &&
        (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)) {
        return -1; /* the page cache is the storage */
    }
    int fd = open(s->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
        return errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
                               errno == EINTR
                       ? 0
                       : -1; /* EINVAL: no O_DIRECT here */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)fd + CASK_DIRECT_FD_SPARE >= rl.rlim_cur) {
        close(fd); /* the descriptors left are the connections' */
        return 0;
    }
    struct stat a, b;
    uint32_t align = dio_alignment(fd);
    if (align == 0 || fstat(fd, &a) != 0 || fstat(s->fd, &b) != 0 ||
        a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
        close(fd); /* not the segment's file (gone), or no direct I/O */
        return -1;
    }
    atomic_store_explicit(&s->dio_align, align, memory_order_relaxed);
    return fd + 1;
}

/* s's direct descriptor plus one, opening it on first use; <= 0 none. */
static int
dio_get(struct cask_segment *s)
{
    int v = atomic_load_explicit(&s->dio, memory_order_acquire);
    if (v != 0) {
        return v;
    }
    if (cask_clock_ms() <
        atomic_load_explicit(&retry_at_ms, memory_order_relaxed)) {
        return 0;
    }
    v = dio_open(s);
    if (v == 0) {
        atomic_store_explicit(&retry_at_ms, cask_clock_ms() + RETRY_MS,
                              memory_order_relaxed);
        return 0;
    }
    int seen = 0;
    if (!atomic_compare_exchange_strong_explicit(&s->dio, &seen, v,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        if (v > 0) {
            close(v - 1); /* another thread's came first */
        }
        v = seen;
    }
    return v;
}

bool
cask_direct_plan(struct cask_split *sp, struct cask_direct *d)
{
    int pol = atomic_load_explicit(&policy, memory_order_relaxed);
    struct cask_segment *s = sp->seg;
    uint64_t len = sp->hlen + sp->vlen;

    if (pol == CASK_DIRECT_NEVER ||
        atomic_load_explicit(&s->dio_off, memory_order_relaxed)) {
        return false;
    }
    if (pol == CASK_DIRECT_AUTO && !evicted(sp->fd, sp->off, len)) {
        return false;
    }
    int v = dio_get(s);
    if (v <= 0) {
        return false;
    }
    uint64_t align = atomic_load_explicit(&s->dio_align, memory_order_relaxed);
    uint64_t start = sp->off / align * align;
    uint64_t end = (sp->off + len + align - 1) / align * align;
    d->fd = v - 1;
    d->off = start;
    d->len = (size_t)(end - start);
    d->skip = (size_t)(sp->off - start);
    atomic_fetch_add_explicit(&nreads, 1, memory_order_relaxed);
    return true;
}

int
cask_direct_take(struct cask_split *sp, const struct cask_direct *d,
                 const char *buf, size_t got)
{
    sp->plan_on = false;
    if (got < d->skip + sp->hlen + sp->vlen) {
        return EIO;
    }
    memcpy(sp->head, buf + d->skip, sp->hlen);
    if (sp->vlen > 0) { /* none for a header-only read */
        memcpy(sp->val, buf + d->skip + sp->hlen, sp->vlen);
    }
    return 0;
}

void
cask_direct_refused(struct cask_split *sp)
{
    /* The descriptor stays open until the segment is freed: reads of
     * other threads may be using it now. */
    atomic_store_explicit(&sp->seg->dio_off, true, memory_order_relaxed);
}
