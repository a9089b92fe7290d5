/* cask_verify.c - large values checked once per load (policy and its
 * limits in cask_verify.h and FORMAT.md, "Checksums on read"): segment
 * change-time stamps, page cache residency, and dropping the checked marks
 * of a segment someone else wrote. Owns no state but a probe result; the
 * stamps live in struct cask_segment, the marks in the keydir, both under
 * the shard mutex.
 */
#include "storage/cask_verify.h"

#include "storage/cask_io.h"
#include "storage/cask_keydir.h"
#include "storage/cask_segment.h"
#include "storage/cask_shard.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct cstat {
    uint64_t nr_cache;
    uint64_t nr_dirty;
    uint64_t nr_writeback;
    uint64_t nr_evicted;
    uint64_t nr_recently_evicted;
};

#define PAGE_BYTES 4096u

/* Through the seam (cask_io.h), so that tests can show evicted pages. */
static long
cachestat(int fd, uint64_t off, uint64_t len, struct cstat *cs)
{
    uint64_t v[5];
    int rc = cask_io_cachestat(fd, off, len, v);
    if (rc == 0) {
        cs->nr_cache = v[0];
        cs->nr_dirty = v[1];
        cs->nr_writeback = v[2];
        cs->nr_evicted = v[3];
        cs->nr_recently_evicted = v[4];
    }
    return rc;
}

/* 0 not probed, 1 works, 2 does not */
static atomic_int avail;

bool
cask_verify_available(void)
{
    int a = atomic_load_explicit(&avail, memory_order_relaxed);
    if (a == 0) {
        struct cstat cs;
        /* no fd: EBADF where the call exists, ENOSYS where it does not */
        long rc = cachestat(-1, 0, PAGE_BYTES, &cs);
        a = (rc == 0 || errno == EBADF) ? 1 : 2;
        atomic_store_explicit(&avail, a, memory_order_relaxed);
    }
    return a == 1;
}

uint64_t
cask_verify_ctime(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return 0;
    }
    return (uint64_t)st.st_ctim.tv_sec * 1000000000u +
           (uint64_t)st.st_ctim.tv_nsec;
}

enum cask_verify_pages
cask_verify_pages_ev(int fd, uint64_t off, uint64_t len, bool *evicted)
{
    return cask_verify_pages_none(fd, off, len, evicted, NULL);
}

enum cask_verify_pages
cask_verify_pages_none(int fd, uint64_t off, uint64_t len, bool *evicted,
                       bool *none)
{
    struct cstat cs;
    if (evicted != NULL) {
        *evicted = false;
    }
    if (none != NULL) {
        *none = false;
    }
    if (len == 0) {
        return CASK_VERIFY_CLEAN;
    }
    uint64_t first = off / PAGE_BYTES;
    uint64_t last = (off + len - 1) / PAGE_BYTES;
    if (cachestat(fd, first * PAGE_BYTES, (last - first + 1) * PAGE_BYTES,
                  &cs) != 0) {
        return CASK_VERIFY_OUT;
    }
    if (cs.nr_cache != last - first + 1) {
        if (evicted != NULL) {
            *evicted = cs.nr_evicted > 0;
        }
        if (none != NULL) {
            *none = cs.nr_cache == 0;
        }
        return CASK_VERIFY_OUT;
    }
    return cs.nr_dirty != 0 || cs.nr_writeback != 0 ? CASK_VERIFY_DIRTY
                                                    : CASK_VERIFY_CLEAN;
}

enum cask_verify_pages
cask_verify_pages(int fd, uint64_t off, uint64_t len)
{
    return cask_verify_pages_ev(fd, off, len, NULL);
}

bool
cask_verify_resident(int fd, uint64_t off, uint64_t len)
{
    return cask_verify_pages(fd, off, len) != CASK_VERIFY_OUT;
}

void
cask_verify_write_begin(struct cask_segment *s)
{
    /* While the roller extends its reserve (mu released), the change time
     * moves under our own fallocate: its end restamps it. */
    if (s->has_checked && !s->changed && !s->extending &&
        cask_verify_ctime(s->fd) != s->ctime_ns) {
        s->changed = true;
    }
}

void
cask_verify_write_end(struct cask_segment *s)
{
    if (s->has_checked) {
        s->ctime_ns = cask_verify_ctime(s->fd);
    }
}

struct forget {
    uint16_t slot;
    size_t n;
};

static void
forget_one(void *arg, struct cask_kd_entry *e)
{
    struct forget *f = arg;
    if (e->seg == f->slot && e->checked) {
        e->checked = 0;
        f->n++;
    }
}

void
cask_verify_forget(struct cask_shard *sh, struct cask_segment *s)
{
    struct forget f = {.slot = s->slot};
    cask_kd_foreach(sh->kd, forget_one, &f);
    if (!s->change_told) {
        s->change_told = true;
        cask_logf(sh->store, CASK_LOG_WARN,
                  "shard %u: segment %08x was written by another process: "
                  "its values are checked again (%zu had been)",
                  sh->idx, s->id, f.n);
    }
    s->has_checked = false;
    s->changed = false;
    s->ctime_ns = cask_verify_ctime(s->fd);
}
