/* cask_vmap.c - read-only shared mappings of segment files for sending
 * verified values without a copy in this process (cask_vmap.h). Owns the
 * count of mappings made and their budget (process-wide); each mapping
 * lives in its struct cask_segment.
 */
#include "storage/cask_vmap.h"

#include "storage/cask_segment.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The copy running on this thread, for the SIGBUS handler; NULL none. */
static __thread sigjmp_buf *volatile copy_jb;
/* What SIGBUS did before on_bus (never on_bus itself); bus_mu covers the
 * installing. */
static struct sigaction prev_bus;
static pthread_mutex_t bus_mu = PTHREAD_MUTEX_INITIALIZER;

static void
on_bus(int sig, siginfo_t *si, void *uc)
{
    sigjmp_buf *jb = copy_jb;
    if (jb != NULL) {
        siglongjmp(*jb, 1);
    }
    if ((prev_bus.sa_flags & SA_SIGINFO) && prev_bus.sa_sigaction != NULL) {
        prev_bus.sa_sigaction(sig, si, uc);
        return;
    }
    if (prev_bus.sa_handler != SIG_DFL && prev_bus.sa_handler != SIG_IGN) {
        prev_bus.sa_handler(sig);
        return;
    }
    /* not a guarded copy: the default action, as the fault repeats */
    signal(SIGBUS, SIG_DFL);
}

/* Make on_bus SIGBUS's handler unless it is (whoever set another since
 * keeps it as the one on_bus hands other faults to). */
static void
install_bus(void)
{
    struct sigaction cur, sa;
    pthread_mutex_lock(&bus_mu);
    if (sigaction(SIGBUS, NULL, &cur) == 0 &&
        !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_bus)) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_bus;
        /* SA_NODEFER: the jump out of the handler leaves SIGBUS unblocked
         * without saving and restoring the mask (a system call a copy) */
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        prev_bus = cur;
        (void)sigaction(SIGBUS, &sa, NULL);
    }
    pthread_mutex_unlock(&bus_mu);
}

/* Mappings made here and not yet unmapped, over all stores, and how many
 * there may be (0: not yet worked out; cask_vmap_budget). */
static atomic_uint nmaps;
static atomic_uint map_cap;

/* The kernel's limit on a process's mappings (vm.max_map_count), or its
 * default where it cannot be read. */
static unsigned
max_map_count(void)
{
    unsigned n = CASK_VMAP_MAX_MAP_COUNT_DEFAULT;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f != NULL) {
        unsigned v;
        if (fscanf(f, "%u", &v) == 1 && v > 0) {
            n = v;
        }
        fclose(f);
    }
    return n;
}

unsigned
cask_vmap_budget(void)
{
    unsigned cap = atomic_load_explicit(&map_cap, memory_order_relaxed);
    if (cap == 0) {
        cap = max_map_count() / CASK_VMAP_SHARE;
        if (cap == 0) {
            cap = 1;
        }
        atomic_store_explicit(&map_cap, cap, memory_order_relaxed);
    }
    return cap;
}

void
cask_vmap_set_budget(unsigned cap)
{
    atomic_store_explicit(&map_cap, cap, memory_order_relaxed);
}

unsigned
cask_vmap_count(void)
{
    return atomic_load_explicit(&nmaps, memory_order_relaxed);
}

void
cask_vmap_open(struct cask_segment *s, uint64_t len)
{
    if (s->map != NULL || s->map_tried || s->fd < 0) {
        return;
    }
    /* Over the budget: not mapped now (its values go out by sendfile),
     * and not marked tried, so that it is mapped once others are gone. */
    if (atomic_fetch_add_explicit(&nmaps, 1, memory_order_relaxed) >=
        cask_vmap_budget()) {
        atomic_fetch_sub_explicit(&nmaps, 1, memory_order_relaxed);
        return;
    }
    s->map_tried = true;
    install_bus(); /* before any copy from the mapping */
    if (len < s->size) {
        len = s->size;
    }
    long page = sysconf(_SC_PAGESIZE);
    void *p = MAP_FAILED;
    if (page > 0) {
        len = (len + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
        if (len != 0 && len <= SIZE_MAX) {
            p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, s->fd, 0);
        }
    }
    if (p == MAP_FAILED) {
        /* address space or a file system without mmap: sendfile */
        atomic_fetch_sub_explicit(&nmaps, 1, memory_order_relaxed);
        return;
    }
    /* a page that left the page cache is read alone, not with its
     * neighbours (the gets that use this check residency first anyway) */
    (void)madvise(p, (size_t)len, MADV_RANDOM);
    s->map = p;
    s->map_len = len;
}

const char *
cask_vmap_at(const struct cask_segment *s, uint64_t off, uint64_t len)
{
    if (s->map == NULL || off > s->map_len || len > s->map_len - off) {
        return NULL;
    }
    return s->map + off;
}

void
cask_vmap_guard(void)
{
    install_bus();
}

bool
cask_vmap_copy(void *dst, const char *src, size_t n)
{
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0) != 0) {
        copy_jb = NULL;
        return false;
    }
    copy_jb = &jb;
    memcpy(dst, src, n);
    copy_jb = NULL;
    return true;
}

void
cask_vmap_close(struct cask_segment *s)
{
    if (s->map != NULL) {
        munmap((void *)s->map, (size_t)s->map_len);
        s->map = NULL;
        s->map_len = 0;
        atomic_fetch_sub_explicit(&nmaps, 1, memory_order_relaxed);
    }
}
