/* cask_direct.c - direct reads of records the page cache cannot keep
 * (cask_direct.h): the policy, each segment's O_DIRECT descriptor, its
 * marks of cold pages and the aligned span of a record. Owns the policy,
 * a count of direct reads and a back-off after a descriptor could not be
 * opened; the descriptors and marks live in their segments (atomics, no
 * lock: a segment is pinned while read).
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
#include <stdlib.h>
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
    bool none; /* no page of it cached */
    bool out;  /* not every page of it cached */
    int fd;
    uint64_t off, len;
} last;
static atomic_uint_fast64_t nreads;
static _Atomic uint64_t retry_at_ms;
/* When a window of probes last found enough pages evicted (note_probe;
 * cask_clock_ms, 0 never): the page cache has been too small for the
 * data since. */
static _Atomic uint64_t evicted_at_ms;

void
cask_direct_set_policy(enum cask_direct_policy p)
{
    atomic_store_explicit(&policy, (int)p, memory_order_relaxed);
}

/* This thread's probes of records not wholly cached, and of them those
 * that found a page evicted, over its current window. */
static _Thread_local struct {
    unsigned out, evicted;
} window;

/* A probe found the record not wholly cached (out), with some page of it
 * evicted or not. Once a window of CASK_DIRECT_WINDOW such probes has
 * seen enough evictions, pressure is (still) on from now: one in
 * CASK_DIRECT_ENTER to turn it on, one in CASK_DIRECT_KEEP to keep it
 * on. A lone eviction (another process's load reclaiming a few pages of
 * a store that fits) does not turn it on. */
static void
note_probe(bool out, bool ev)
{
    if (!out) {
        return;
    }
    window.out++;
    window.evicted += ev;
    if (window.out < CASK_DIRECT_WINDOW) {
        return;
    }
    unsigned need = cask_direct_pressure()
                            ? CASK_DIRECT_WINDOW / CASK_DIRECT_KEEP
                            : CASK_DIRECT_WINDOW / CASK_DIRECT_ENTER;
    if (window.evicted >= need) {
        uint64_t now = cask_clock_ms();
        atomic_store_explicit(&evicted_at_ms, now != 0 ? now : 1,
                              memory_order_relaxed);
    }
    window.out = 0;
    window.evicted = 0;
}

bool
cask_direct_pressure(void)
{
    uint64_t at = atomic_load_explicit(&evicted_at_ms, memory_order_relaxed);
    return at != 0 && cask_clock_ms() - at < CASK_DIRECT_PRESSURE_MS;
}

void
cask_direct_pressure_reset(void)
{
    atomic_store_explicit(&evicted_at_ms, 0, memory_order_relaxed);
    window.out = 0;
    window.evicted = 0;
}

uint64_t
cask_direct_reads(void)
{
    return atomic_load_explicit(&nreads, memory_order_relaxed);
}

/* Cold marks: one bit per page of the segment's file, in words after
 * word 0 (the page count). A hint only: a wrong mark costs a direct read
 * of cached bytes or a probe, never a wrong byte (direct reads are
 * coherent with the page cache). */
#define COLD_PAGE 4096u

static _Thread_local unsigned recheck;

/* Whether bits p0..p1 of map are all set. */
static bool
all_set(_Atomic uint64_t *map, uint64_t p0, uint64_t p1)
{
    for (uint64_t p = p0; p <= p1; p++) {
        uint64_t w =
                atomic_load_explicit(&map[1 + p / 64], memory_order_relaxed);
        if ((w & (UINT64_C(1) << (p % 64))) == 0) {
            return false;
        }
    }
    return true;
}

/* s's marks covering [off, off+len), pages in *p0..*p1; NULL when there
 * are none (no map yet, or the range is past what the map covers). */
static _Atomic uint64_t *
cold_map(const struct cask_segment *s, uint64_t off, uint64_t len, uint64_t *p0,
         uint64_t *p1)
{
    _Atomic uint64_t *map = atomic_load_explicit(
            &((struct cask_segment *)s)->cold, memory_order_acquire);
    if (map == NULL || len == 0) {
        return NULL;
    }
    *p0 = off / COLD_PAGE;
    *p1 = (off + len - 1) / COLD_PAGE;
    return *p1 < atomic_load_explicit(&map[0], memory_order_relaxed) ? map
                                                                     : NULL;
}

/* Mark (on) or unmark the pages of [off, off+len) of s. A map is made
 * for marking only, sized for the file as it is now. */
static void
set_cold(struct cask_segment *s, uint64_t off, uint64_t len, bool on)
{
    uint64_t p0, p1;
    _Atomic uint64_t *map = cold_map(s, off, len, &p0, &p1);
    if (map == NULL && on && len > 0 &&
        atomic_load_explicit(&s->cold, memory_order_acquire) == NULL) {
        struct stat st;
        if (fstat(s->fd, &st) != 0 || st.st_size <= 0) {
            return;
        }
        uint64_t pages = ((uint64_t)st.st_size + COLD_PAGE - 1) / COLD_PAGE;
        _Atomic uint64_t *fresh =
                calloc(1 + (pages + 63) / 64, sizeof(_Atomic uint64_t));
        if (fresh == NULL) {
            return;
        }
        atomic_init(&fresh[0], pages); /* the rest: calloc's zeros */
        _Atomic uint64_t *seen = NULL;
        if (!atomic_compare_exchange_strong_explicit(&s->cold, &seen, fresh,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire)) {
            free((void *)fresh); /* another thread's came first */
        }
        map = cold_map(s, off, len, &p0, &p1);
    }
    if (map == NULL) {
        return;
    }
    for (uint64_t p = p0; p <= p1; p++) {
        _Atomic uint64_t *w = &map[1 + p / 64];
        uint64_t bit = UINT64_C(1) << (p % 64);
        if (on) {
            atomic_fetch_or_explicit(w, bit, memory_order_relaxed);
        } else if (atomic_load_explicit(w, memory_order_relaxed) & bit) {
            atomic_fetch_and_explicit(w, ~bit, memory_order_relaxed);
        }
    }
}

void
cask_direct_mark_cold(struct cask_segment *s, uint64_t off, uint64_t len)
{
    set_cold(s, off, len, true);
}

bool
cask_direct_cold(const struct cask_segment *s, uint64_t off, uint64_t len)
{
    uint64_t p0, p1;
    _Atomic uint64_t *map = cold_map(s, off, len, &p0, &p1);
    if (map == NULL || !all_set(map, p0, p1)) {
        return false;
    }
    return ++recheck % CASK_DIRECT_RECHECK != 0;
}

enum cask_verify_pages
cask_direct_pages(struct cask_segment *s, uint64_t off, uint64_t len)
{
    bool ev, none;
    enum cask_verify_pages pages =
            cask_verify_pages_none(s->fd, off, len, &ev, &none);
    last.valid = true;
    last.evicted = ev;
    last.none = none;
    last.out = pages == CASK_VERIFY_OUT;
    last.fd = s->fd;
    last.off = off;
    last.len = len;
    note_probe(last.out, ev);
    if (!none) {
        set_cold(s, off, len, false);
    }
    return pages;
}

/* Whether the record at [off, off+len) of s should be read around the
 * page cache: some page of it was evicted, or some page of it is not
 * cached while the page cache is under pressure (cask_direct_pressure:
 * a buffered read would allocate, charge and reclaim for that page; a
 * record of two pages, one cached by a neighbour's read, is the common
 * case). Asks this thread's last probe when it was of that record, else
 * its cold marks (*mark false: nothing to mark), else a new probe.
 * *mark: no page of it is cached, so its pages may be marked cold once
 * it is read direct. A record some page of which a probe found cached
 * is unmarked. */
static bool
bypass(struct cask_segment *s, uint64_t off, uint64_t len, bool *mark)
{
    bool ev, none, out;
    uint64_t p0, p1;
    *mark = false;
    if (last.valid && last.fd == s->fd && last.off == off && last.len == len) {
        last.valid = false;
        ev = last.evicted;
        none = last.none;
        out = last.out;
    } else {
        _Atomic uint64_t *map = cold_map(s, off, len, &p0, &p1);
        if (map != NULL && all_set(map, p0, p1)) {
            return true;
        }
        out = cask_verify_pages_none(s->fd, off, len, &ev, &none) ==
              CASK_VERIFY_OUT;
        note_probe(out, ev);
    }
    if (!none) {
        set_cold(s, off, len, false);
    }
    bool direct = ev || (out && cask_direct_pressure());
    *mark = direct && none;
    return direct;
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
    bool mark = false;

    if (pol == CASK_DIRECT_NEVER ||
        atomic_load_explicit(&s->dio_off, memory_order_relaxed)) {
        return false;
    }
    if (pol == CASK_DIRECT_AUTO && !bypass(s, sp->off, len, &mark)) {
        return false;
    }
    int v = dio_get(s);
    if (v <= 0) {
        return false;
    }
    if (mark) {
        cask_direct_mark_cold(s, sp->off, len); /* read around the cache */
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
