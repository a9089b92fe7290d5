/* cask_vmap.c - read-only shared mappings of segment files for sending
 * verified values without a copy in this process (cask_vmap.h). Owns no
 * state: the mapping lives in struct cask_segment.
 */
#include "storage/cask_vmap.h"

#include "storage/cask_segment.h"

#include <sys/mman.h>
#include <unistd.h>

void
cask_vmap_open(struct cask_segment *s, uint64_t len)
{
    if (s->map != NULL || s->map_tried || s->fd < 0) {
        return;
    }
    s->map_tried = true;
    if (len < s->size) {
        len = s->size;
    }
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) {
        return;
    }
    len = (len + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    if (len == 0 || len > SIZE_MAX) {
        return;
    }
    void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, s->fd, 0);
    if (p == MAP_FAILED) {
        return; /* address space or a file system without mmap: sendfile */
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
cask_vmap_close(struct cask_segment *s)
{
    if (s->map != NULL) {
        munmap((void *)s->map, (size_t)s->map_len);
        s->map = NULL;
        s->map_len = 0;
    }
}
