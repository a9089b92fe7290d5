/* cask_segment.c - one append-only segment file: header, buffered appends,
 * reads through a mapping or pread, and the scan used by recovery and hints.
 *
 * Owns the segment's fd, mapping and buffer. Not thread-safe: the shard mutex
 * covers it. Depends on cask_io and cask_record only. Writes go through the
 * cask_io seam so tests can inject faults.
 */
#include "storage/cask_segment.h"

#include "storage/cask_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static const char seg_magic[8] = {'B', 'C', 'S', 'K', 'S', 'E', 'G', '\n'};

void
cask_seg_path(char *out, size_t cap, const char *dir, uint32_t id,
              const char *ext)
{
    snprintf(out, cap, "%s/%08x.%s", dir, id, ext);
}

int
cask_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    int rc = cask_io_fdatasync(fd);
    close(fd);
    return rc;
}

int
cask_replace_file(const char *dir, const char *tmp, const char *path,
                  const void *buf, size_t len)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return errno;
    }
    int rc = cask_io_pwrite_all(fd, buf, len, 0);
    if (rc == 0) {
        rc = cask_io_fdatasync(fd);
    }
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = errno;
    }
    if (rc == 0) {
        rc = cask_fsync_dir(dir);
    }
    if (rc != 0) {
        unlink(tmp);
    }
    return rc;
}

static void
encode_header(char *h, uint32_t id)
{
    memcpy(h, seg_magic, 8);
    cask_put32(h + 8, CASK_SEG_VERSION);
    cask_put32(h + 12, id);
    cask_put64(h + 16, 0);
    cask_put64(h + 24, XXH3_64bits(h, 24));
}

static bool
header_ok(const char *h, uint32_t id)
{
    return memcmp(h, seg_magic, 8) == 0 &&
           cask_get32(h + 8) == CASK_SEG_VERSION && cask_get32(h + 12) == id &&
           cask_get64(h + 24) == XXH3_64bits(h, 24);
}

static size_t
page_round(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

static void
remap(struct cask_segment *s, size_t len)
{
    if (s->map != NULL) {
        munmap(s->map, s->map_len);
        s->map = NULL;
        s->map_len = 0;
    }
    len = page_round(len);
    if (len == 0) {
        return;
    }
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, s->fd, 0);
    if (m != MAP_FAILED) {
        s->map = m;
        s->map_len = len;
    }
}

static struct cask_segment *
seg_alloc(const char *dir, uint32_t id)
{
    struct cask_segment *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->id = id;
    s->fd = -1;
    s->min_cas = UINT64_MAX;
    cask_seg_path(s->path, sizeof(s->path), dir, id, "seg");
    return s;
}

int
cask_seg_create(struct cask_segment **out, const char *dir, uint32_t id,
                size_t buf_cap, size_t map_len)
{
    int rc;
    struct cask_segment *s = seg_alloc(dir, id);
    if (s == NULL) {
        return ENOMEM;
    }
    s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        rc = errno;
        goto fail;
    }
    char h[CASK_SEG_HDR];
    encode_header(h, id);
    rc = cask_io_pwrite_all(s->fd, h, sizeof(h), 0);
    if (rc != 0) {
        unlink(s->path);
        goto fail;
    }
    s->size = s->flushed = CASK_SEG_HDR;
    rc = cask_fsync_dir(dir);
    if (rc != 0) {
        unlink(s->path);
        goto fail;
    }
    rc = cask_seg_make_active(s, buf_cap, map_len);
    if (rc != 0) {
        unlink(s->path);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    cask_seg_close(&s);
    return rc;
}

int
cask_seg_open(struct cask_segment **out, const char *dir, uint32_t id,
              uint64_t *dropped, bool *bad_header)
{
    int rc;
    struct stat st;
    struct cask_segment *s = seg_alloc(dir, id);
    *dropped = 0;
    *bad_header = false;
    if (s == NULL) {
        return ENOMEM;
    }
    s->fd = open(s->path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) != 0) {
        rc = errno;
        goto fail;
    }
    char h[CASK_SEG_HDR];
    ssize_t n = pread(s->fd, h, sizeof(h), 0);
    if (n != (ssize_t)sizeof(h)) {
        /* Created just before a crash, header torn: nothing to keep. */
        *dropped = (uint64_t)st.st_size;
        encode_header(h, id);
        rc = cask_io_ftruncate(s->fd, 0);
        if (rc == 0) {
            rc = cask_io_pwrite_all(s->fd, h, sizeof(h), 0);
        }
        if (rc != 0) {
            goto fail;
        }
        st.st_size = CASK_SEG_HDR;
    } else if (!header_ok(h, id)) {
        /* A damaged header says nothing about the records after it (they
         * carry their own checksums): rewrite it and let the scan decide. */
        *bad_header = true;
        encode_header(h, id);
        rc = cask_io_pwrite_all(s->fd, h, sizeof(h), 0);
        if (rc != 0) {
            goto fail;
        }
    }
    s->size = s->flushed = (uint64_t)st.st_size;
    remap(s, s->size);
    *out = s;
    return 0;
fail:
    cask_seg_close(&s);
    return rc;
}

int
cask_seg_make_active(struct cask_segment *s, size_t buf_cap, size_t map_len)
{
    if (s->buf == NULL && buf_cap > 0) {
        s->buf = malloc(buf_cap);
        if (s->buf == NULL) {
            return ENOMEM;
        }
        s->buf_cap = buf_cap;
        s->buf_len = 0;
    }
    if (map_len < s->size) {
        map_len = s->size;
    }
    remap(s, map_len);
    return 0;
}

void
cask_seg_make_closed(struct cask_segment *s)
{
    if (s->buf_len == 0) {
        free(s->buf);
        s->buf = NULL;
        s->buf_cap = 0;
    }
    remap(s, s->flushed);
}

char *
cask_seg_reserve(struct cask_segment *s, size_t len)
{
    if (s->buf == NULL || s->buf_len + len > s->buf_cap) {
        return NULL;
    }
    char *p = s->buf + s->buf_len;
    s->buf_len += len;
    s->size += len;
    return p;
}

void
cask_seg_unbuffer(struct cask_segment *s, uint64_t size)
{
    if (size < s->flushed) {
        size = s->flushed;
    }
    s->buf_len = (size_t)(size - s->flushed);
    s->size = size;
}

int
cask_seg_flush(struct cask_segment *s)
{
    if (s->buf_len == 0) {
        return 0;
    }
    int rc = cask_io_pwrite_all(s->fd, s->buf, s->buf_len, (off_t)s->flushed);
    if (rc != 0) {
        /* Leave no partial record behind; keep the buffer for a retry. */
        (void)cask_io_ftruncate(s->fd, (off_t)s->flushed);
        return rc;
    }
    s->flushed += s->buf_len;
    s->buf_len = 0;
    return 0;
}

int
cask_seg_write_direct(struct cask_segment *s, const char *buf, size_t len)
{
    int rc = cask_seg_flush(s);
    if (rc != 0) {
        return rc;
    }
    rc = cask_io_pwrite_all(s->fd, buf, len, (off_t)s->flushed);
    if (rc != 0) {
        (void)cask_io_ftruncate(s->fd, (off_t)s->flushed);
        return rc;
    }
    s->flushed += len;
    s->size = s->flushed;
    return 0;
}

const char *
cask_seg_view(const struct cask_segment *s, uint64_t off, size_t len)
{
    if (off >= s->flushed) {
        if (off + len <= s->size && s->buf != NULL) {
            return s->buf + (off - s->flushed);
        }
        return NULL;
    }
    if (s->map != NULL && off + len <= s->map_len && off + len <= s->flushed) {
        return s->map + off;
    }
    return NULL;
}

int
cask_seg_pread(const struct cask_segment *s, uint64_t off, size_t len,
               char *dst)
{
    const char *v = cask_seg_view(s, off, len);
    if (v != NULL) {
        memcpy(dst, v, len);
        return 0;
    }
    while (len > 0) {
        ssize_t n = pread(s->fd, dst, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            return EIO;
        }
        dst += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int
cask_seg_truncate(struct cask_segment *s, uint64_t len)
{
    int rc = cask_io_ftruncate(s->fd, (off_t)len);
    if (rc != 0) {
        return rc;
    }
    s->size = s->flushed = len;
    s->buf_len = 0;
    if (s->map_len > len) {
        remap(s, len);
    }
    return 0;
}

uint64_t
cask_seg_scan(struct cask_segment *s, uint64_t start, uint32_t vmax,
              cask_seg_scan_fn fn, void *arg)
{
    char *tmp = NULL;
    size_t tmp_cap = 0;
    uint64_t off = start;
    char hb[CASK_REC_HDR];

    while (off + CASK_REC_HDR <= s->flushed) {
        struct cask_rec r;
        if (cask_seg_pread(s, off, CASK_REC_HDR, hb) != 0 ||
            !cask_rec_decode(hb, vmax, &r)) {
            break;
        }
        size_t len = cask_rec_len(r.klen, r.vlen);
        if (off + len > s->flushed) {
            break;
        }
        const char *rec = cask_seg_view(s, off, len);
        if (rec == NULL) {
            if (tmp_cap < len) {
                char *n = realloc(tmp, len);
                if (n == NULL) {
                    break;
                }
                tmp = n;
                tmp_cap = len;
            }
            if (cask_seg_pread(s, off, len, tmp) != 0) {
                break;
            }
            rec = tmp;
        }
        if (!cask_rec_verify(rec, len)) {
            break;
        }
        fn(arg, &r, rec + CASK_REC_HDR, off);
        off += len;
    }
    free(tmp);
    return off;
}

void
cask_seg_close(struct cask_segment **sp)
{
    struct cask_segment *s = *sp;
    if (s == NULL) {
        return;
    }
    if (s->map != NULL) {
        munmap(s->map, s->map_len);
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    free(s->buf);
    free(s);
    *sp = NULL;
}
