/* cask_segment.c - one append-only segment file: header, appends (buffered
 * only for compaction output; the active segment's small ones copied into
 * a writable shared mapping, its file extended ahead of them into the
 * disk reserve and cut back when it closes), reads with pread (not a
 * mapping: a media error or a shortened file is an error, not a SIGBUS;
 * cask_vmap.c maps segments only to hand verified values to the kernel),
 * and the scan and resynchronisation used by recovery, hints and
 * compaction.
 *
 * Owns the segment's fd, buffer and writable mapping. Not thread-safe:
 * the shard mutex covers it. Depends on cask_io and cask_record only (and
 * notes its own writes for cask_verify.c, and guards its copies into the
 * mapping with cask_vmap's SIGBUS guard). Writes go through the cask_io
 * seam so tests can inject faults.
 */
#include "storage/cask_segment.h"

#include "storage/cask_io.h"
#include "storage/cask_verify.h"
#include "storage/cask_vmap.h"

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
                  const void *buf, size_t len, int *dir_rc)
{
    *dir_rc = 0;
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
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    /* Renamed: the new file is what every later open reads (but after a
     * power loss), so it is done, whatever the directory's sync says; an
     * error there would leave memory and disk disagreeing if reported as
     * a failure to replace. */
    *dir_rc = cask_fsync_dir(dir);
    return 0;
}

int
cask_read_small_file(const char *dir, const char *name, size_t min, size_t max,
                     char **buf, size_t *len)
{
    char path[CASK_PATH_MAX + 32];
    struct stat st;

    *buf = NULL;
    *len = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    int rc = 0;
    char *b = NULL;
    if (fstat(fd, &st) != 0) {
        rc = errno;
    } else if ((uint64_t)st.st_size < min || (uint64_t)st.st_size > max) {
        rc = EINVAL;
    } else if ((b = malloc(st.st_size ? (size_t)st.st_size : 1)) == NULL) {
        rc = ENOMEM;
    } else {
        rc = cask_io_pread_all(fd, b, (size_t)st.st_size, 0);
    }
    close(fd);
    if (rc != 0) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = (size_t)st.st_size;
    return 0;
}

int
cask_ids_decode(const char *p, size_t cnt, uint32_t **ids, size_t *n)
{
    *ids = malloc(cnt ? cnt * sizeof(uint32_t) : 1);
    if (*ids == NULL) {
        *n = 0;
        return ENOMEM;
    }
    for (size_t i = 0; i < cnt; i++) {
        (*ids)[i] = cask_get32(p + 4 * i);
    }
    *n = cnt;
    return 0;
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

bool
cask_seg_header_ok(const char *h, uint32_t id)
{
    return memcmp(h, seg_magic, 8) == 0 && cask_get32(h + 8) >= 1 &&
           cask_get32(h + 8) <= CASK_SEG_VERSION && cask_get32(h + 12) == id &&
           cask_get64(h + 24) == XXH3_64bits(h, 24);
}

uint32_t
cask_seg_header_newer(const char *h, uint32_t id)
{
    uint32_t v = cask_get32(h + 8);
    bool whole = memcmp(h, seg_magic, 8) == 0 && cask_get32(h + 12) == id &&
                 cask_get64(h + 24) == XXH3_64bits(h, 24);
    return whole && v > CASK_SEG_VERSION ? v : 0;
}

/* A get reads one record at a random place: tell the kernel not to read
 * around it (read-ahead would fill the page cache with neighbours nobody
 * asked for and cost disk bandwidth per get). The sequential readers of a
 * segment (recovery, hints, compaction, replication) read large windows
 * and ask for the next one ahead themselves (win_get). Advice only: a file
 * system that ignores it changes nothing but speed. */
static void
advise_random(struct cask_segment *s)
{
    (void)posix_fadvise(s->fd, 0, 0, POSIX_FADV_RANDOM);
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

static int
create(struct cask_segment **out, const char *dir, uint32_t id, size_t buf_cap,
       bool durable)
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
    s->size = s->flushed = s->prealloc_end = CASK_SEG_HDR;
    /* The header durable before the name: a segment that exists after a
     * crash is whole, so a journal replay can write records into it. */
    rc = durable ? cask_io_fdatasync(s->fd) : 0;
    if (rc == 0 && durable) {
        rc = cask_fsync_dir(dir);
    }
    if (rc != 0) {
        unlink(s->path);
        goto fail;
    }
    rc = cask_seg_make_active(s, buf_cap);
    if (rc != 0) {
        unlink(s->path);
        goto fail;
    }
    advise_random(s);
    *out = s;
    return 0;
fail:
    cask_seg_close(&s);
    return rc;
}

int
cask_seg_create(struct cask_segment **out, const char *dir, uint32_t id,
                size_t buf_cap)
{
    return create(out, dir, id, buf_cap, true);
}

int
cask_seg_create_unsynced(struct cask_segment **out, const char *dir,
                         uint32_t id)
{
    return create(out, dir, id, 0, false);
}

/* cask_seg_open; look: read only, nothing written (cask_seg_open_look). */
static int
seg_open(struct cask_segment **out, const char *dir, uint32_t id,
         uint64_t *dropped, bool *bad_header, bool look)
{
    int rc;
    struct stat st;
    struct cask_segment *s = seg_alloc(dir, id);
    *dropped = 0;
    *bad_header = false;
    if (s == NULL) {
        return ENOMEM;
    }
    s->fd = open(s->path, (look ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) != 0) {
        rc = errno;
        goto fail;
    }
    char h[CASK_SEG_HDR];
    if (st.st_size >= (off_t)sizeof(h)) {
        /* A read error is not a torn header: report it, change nothing. */
        rc = cask_io_pread_all(s->fd, h, sizeof(h), 0);
        if (rc != 0) {
            goto fail;
        }
    }
    if (st.st_size < (off_t)sizeof(h) && look) {
        /* Torn header: read as an empty segment, left as it is. */
        *dropped = (uint64_t)st.st_size;
        st.st_size = CASK_SEG_HDR;
    } else if (st.st_size < (off_t)sizeof(h)) {
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
    } else if (cask_seg_header_newer(h, id) != 0) {
        /* Written by a newer build: rewriting its header and scanning its
         * records by this build's rules could destroy them. */
        rc = CASK_SEG_ENEWER;
        goto fail;
    } else if (!cask_seg_header_ok(h, id)) {
        /* A damaged header says nothing about the records after it (they
         * carry their own checksums): rewrite it and let the scan decide. */
        *bad_header = true;
        encode_header(h, id);
        rc = look ? 0 : cask_io_pwrite_all(s->fd, h, sizeof(h), 0);
        if (rc != 0) {
            goto fail;
        }
    }
    s->size = s->flushed = (uint64_t)st.st_size;
    advise_random(s);
    /* Blocks a previous run reserved past the end are still there. */
    s->prealloc_end = (uint64_t)st.st_blocks * 512;
    if (s->prealloc_end < s->size) {
        s->prealloc_end = s->size;
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
    return seg_open(out, dir, id, dropped, bad_header, false);
}

int
cask_seg_open_look(struct cask_segment **out, const char *dir, uint32_t id,
                   uint64_t *dropped, bool *bad_header)
{
    return seg_open(out, dir, id, dropped, bad_header, true);
}

int
cask_seg_make_active(struct cask_segment *s, size_t buf_cap)
{
    if (s->buf == NULL && buf_cap > 0) {
        s->buf = malloc(buf_cap);
        if (s->buf == NULL) {
            return ENOMEM;
        }
        s->buf_cap = buf_cap;
        s->buf_len = 0;
    }
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
cask_seg_wmap_open(struct cask_segment *s, uint64_t len)
{
    struct stat st;
    if (s->wmap_tried) {
        return s->wmap != NULL ? 0 : EALREADY;
    }
    s->wmap_tried = true;
    if (!cask_io_map_writes_ok()) {
        return EPERM;
    }
    /* The file ends where the records do (a segment just made, or one
     * whose tail recovery cut): the extension starts from there. */
    if (fstat(s->fd, &st) != 0) {
        return errno;
    }
    if ((uint64_t)st.st_size != s->flushed) {
        return EINVAL;
    }
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) {
        return EINVAL;
    }
    len = (len + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    if (len == 0 || len > SIZE_MAX) {
        return EINVAL;
    }
    cask_vmap_guard(); /* before the first copy into it */
    void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd,
                   0);
    if (p == MAP_FAILED) {
        return errno;
    }
    /* An append lands on a page of the extension, or on the tail page,
     * which may have left the page cache since: read that page alone.
     * Without the advice the fault reads around it, the device's whole
     * read-ahead window of the records before (megabytes where
     * read_ahead_kb is large), for one small record. Advice only. */
    (void)madvise(p, (size_t)len, MADV_RANDOM);
    s->wmap = p;
    s->wmap_len = len;
    s->ext_end = s->flushed;
    return 0;
}

bool
cask_seg_wmapped(const struct cask_segment *s)
{
    return s->wmap != NULL;
}

static void
wmap_close(struct cask_segment *s)
{
    if (s->wmap != NULL) {
        munmap(s->wmap, (size_t)s->wmap_len);
        s->wmap = NULL;
        s->wmap_len = 0;
    }
}

/* After a truncate of s to end (ours): blocks reserved past it may be
 * gone, and the file ends there. */
static void
cut_to(struct cask_segment *s, uint64_t end)
{
    s->cuts++;
    if (s->prealloc_end > end) {
        s->prealloc_end = end;
    }
    if (s->ext_end > end) {
        s->ext_end = end;
    }
}

/* Whether [flushed, end) may be copied into the mapping: inside it, inside
 * the disk blocks reserved, and inside the file, which is extended to the
 * end of the reservation when it must be (one ftruncate per reservation
 * chunk). A file whose size is not the one we set was cut (or grown) by
 * another process: it is not extended over the cut, which would hide it
 * from the cut check (cask_resync.c); the write goes through pwrite. */
static bool
map_room(struct cask_segment *s, uint64_t end)
{
    if (s->wmap == NULL || end > s->wmap_len || end > s->prealloc_end) {
        return false;
    }
    if (end <= s->ext_end) {
        return true;
    }
    struct stat st;
    if (fstat(s->fd, &st) != 0 || (uint64_t)st.st_size != s->ext_end) {
        return false;
    }
    uint64_t to = s->prealloc_end < s->wmap_len ? s->prealloc_end : s->wmap_len;
    cask_verify_write_begin(s);
    int rc = cask_io_ftruncate(s->fd, (off_t)to);
    cask_verify_write_end(s);
    if (rc != 0) {
        return false;
    }
    s->ext_end = to;
    return true;
}

/* Copy the cnt parts of iov (len bytes) into the mapping at flushed, as a
 * pwrite would write them: all, or an errno. A fault (the file cut under
 * the mapping, or a page that could not be read in) fails it like a
 * failed pwrite: the file is cut back to flushed if it is longer, the
 * mapping is dropped (the segment writes with pwrite from then on) and
 * wmap_fault tells the log to queue the segment's rewrite. */
static int
map_copy(struct cask_segment *s, const struct iovec *iov, int cnt, size_t len)
{
    int rc = cask_io_map_write(s->fd, len, (off_t)s->flushed);
    char *dst = s->wmap + s->flushed;
    for (int i = 0; rc == 0 && i < cnt; i++) {
        if (!cask_vmap_copy(dst, iov[i].iov_base, iov[i].iov_len)) {
            rc = EIO;
        }
        dst += iov[i].iov_len;
    }
    if (rc == 0) {
        s->wmap_copies++;
    } else {
        struct stat st;
        s->wmap_fault = true;
        wmap_close(s);
        if (fstat(s->fd, &st) == 0 && (uint64_t)st.st_size > s->flushed) {
            (void)cask_io_ftruncate(s->fd, (off_t)s->flushed);
            cut_to(s, s->flushed);
        }
        s->ext_end = s->flushed;
    }
    return rc;
}

bool
cask_seg_map_cut(struct cask_segment *s)
{
    struct stat st;
    if (s->wmap == NULL || fstat(s->fd, &st) != 0 ||
        (uint64_t)st.st_size >= s->ext_end) {
        return false;
    }
    s->wmap_fault = true;
    wmap_close(s);
    if ((uint64_t)st.st_size > s->flushed) {
        /* only the extension was cut: no record lost, none to hide */
        cask_verify_write_begin(s);
        (void)cask_io_ftruncate(s->fd, (off_t)s->flushed);
        cask_verify_write_end(s);
    }
    cut_to(s, s->flushed); /* the cut freed the blocks past it */
    return true;
}

int
cask_seg_cut_ahead(struct cask_segment *s, bool keep_reserve)
{
    int rc = 0;
    wmap_close(s);
    if (s->ext_end > s->flushed) {
        cask_verify_write_begin(s);
        rc = cask_io_ftruncate(s->fd, (off_t)s->flushed);
        if (rc == 0) {
            /* The cut gave back the blocks past it: reserve them again
             * where asked, else say they are gone. */
            uint64_t reserved = s->prealloc_end;
            cut_to(s, s->flushed);
            if (keep_reserve && reserved > s->flushed &&
                cask_io_fallocate(s->fd, (off_t)s->flushed,
                                  (off_t)(reserved - s->flushed)) == 0) {
                s->prealloc_end = reserved;
            }
        }
        cask_verify_write_end(s);
    }
    return rc;
}

void
cask_seg_wmap_close(struct cask_segment *s)
{
    wmap_close(s);
}

int
cask_seg_trim(const struct cask_segment *s, uint64_t end)
{
    return cask_io_ftruncate(s->fd, (off_t)end);
}

void
cask_seg_trimmed(struct cask_segment *s, uint64_t end)
{
    cut_to(s, end);
}

int
cask_seg_flush(struct cask_segment *s)
{
    if (s->buf_len == 0) {
        return 0;
    }
    if (s->buf_len <= CASK_SEG_MAP_COPY_MAX &&
        map_room(s, s->flushed + s->buf_len)) {
        struct iovec iov = {s->buf, s->buf_len};
        cask_verify_write_begin(s);
        int rc = map_copy(s, &iov, 1, s->buf_len);
        cask_verify_write_end(s);
        if (rc != 0) {
            return rc;
        }
        s->flushed += s->buf_len;
        s->buf_len = 0;
        return 0;
    }
    cask_verify_write_begin(s);
    int rc = cask_io_pwrite_all(s->fd, s->buf, s->buf_len, (off_t)s->flushed);
    if (rc != 0) {
        /* Leave no partial record behind; keep the buffer for a retry. */
        (void)cask_io_ftruncate(s->fd, (off_t)s->flushed);
        cask_verify_write_end(s);
        cut_to(s, s->flushed);
        return rc;
    }
    cask_verify_write_end(s);
    s->flushed += s->buf_len;
    s->buf_len = 0;
    if (s->ext_end < s->flushed && s->wmap != NULL) {
        s->ext_end = s->flushed;
    }
    return 0;
}

int
cask_seg_writev_direct(struct cask_segment *s, const struct iovec *iov, int cnt)
{
    int rc = cask_seg_flush(s);
    if (rc != 0) {
        return rc;
    }
    size_t len = 0;
    for (int i = 0; i < cnt; i++) {
        len += iov[i].iov_len;
    }
    if (len <= CASK_SEG_MAP_COPY_MAX && map_room(s, s->flushed + len)) {
        cask_verify_write_begin(s);
        rc = map_copy(s, iov, cnt, len);
        cask_verify_write_end(s);
        if (rc != 0) {
            return rc;
        }
        s->flushed += len;
        s->size = s->flushed;
        return 0;
    }
    cask_verify_write_begin(s);
    rc = cask_io_pwritev_all(s->fd, iov, cnt, (off_t)s->flushed);
    if (rc != 0) {
        (void)cask_io_ftruncate(s->fd, (off_t)s->flushed);
        cask_verify_write_end(s);
        cut_to(s, s->flushed);
        return rc;
    }
    cask_verify_write_end(s);
    s->flushed += len;
    s->size = s->flushed;
    if (s->ext_end < s->flushed && s->wmap != NULL) {
        s->ext_end = s->flushed;
    }
    return 0;
}

int
cask_seg_write_direct(struct cask_segment *s, const char *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return cask_seg_writev_direct(s, &iov, 1);
}

const char *
cask_seg_view(const struct cask_segment *s, uint64_t off, size_t len)
{
    if (off >= s->flushed && off + len <= s->size && s->buf != NULL) {
        return s->buf + (off - s->flushed);
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
    return cask_io_pread_all(s->fd, dst, len, (off_t)off);
}

int
cask_seg_pread2(const struct cask_segment *s, uint64_t off, char *a,
                size_t alen, char *b, size_t blen)
{
    const char *v = cask_seg_view(s, off, alen + blen);
    if (v != NULL) {
        memcpy(a, v, alen);
        memcpy(b, v + alen, blen);
        return 0;
    }
    return cask_io_pread2_all(s->fd, a, alen, b, blen, (off_t)off);
}

int
cask_seg_truncate(struct cask_segment *s, uint64_t len)
{
    cask_verify_write_begin(s);
    int rc = cask_io_ftruncate(s->fd, (off_t)len);
    cask_verify_write_end(s);
    if (rc != 0) {
        return rc;
    }
    s->size = s->flushed = len;
    s->buf_len = 0;
    cut_to(s, len);
    return 0;
}

int
cask_seg_zero_tail(struct cask_segment *s, uint64_t off, bool *zero)
{
    char buf[16384];
    *zero = true;
    while (off < s->flushed && *zero) {
        size_t n = s->flushed - off < sizeof(buf) ? (size_t)(s->flushed - off)
                                                  : sizeof(buf);
        int rc = cask_seg_pread(s, off, n, buf);
        if (rc != 0) {
            return rc;
        }
        for (size_t i = 0; i < n; i++) {
            if (buf[i] != 0) {
                *zero = false;
                break;
            }
        }
        off += n;
    }
    return 0;
}

int
cask_seg_cut_tail(struct cask_segment *s, uint64_t len, bool keep_reserve)
{
    uint64_t reserved = s->prealloc_end;
    int rc = cask_seg_truncate(s, len);
    if (rc != 0) {
        return rc;
    }
    if (keep_reserve && reserved > len) {
        cask_verify_write_begin(s);
        if (cask_io_fallocate(s->fd, (off_t)len, (off_t)(reserved - len)) ==
            0) {
            s->prealloc_end = reserved;
        }
        cask_verify_write_end(s);
    }
    return 0;
}

#define WIN_CAP (1024u * 1024)

/* Bytes [off, off+n) of s, or NULL when they pass the flushed end (then
 * *err is 0) or a read failed (*err set). */
static const char *
win_get(struct cask_segment *s, struct cask_seg_reader *w, uint64_t off,
        size_t n, int *err)
{
    *err = 0;
    if (off + n > s->flushed) {
        return NULL;
    }
    if (w->seg == s && off >= w->start && off + n <= w->start + w->len) {
        return w->buf + (off - w->start);
    }
    size_t want = n > WIN_CAP ? n : WIN_CAP;
    if (want > s->flushed - off) {
        want = (size_t)(s->flushed - off);
    }
    if (w->cap < want) {
        char *nb = realloc(w->buf, want);
        if (nb == NULL) {
            *err = ENOMEM;
            return NULL;
        }
        w->buf = nb;
        w->cap = want;
    }
    w->seg = NULL;
    int rc = cask_seg_pread(s, off, want, w->buf);
    if (rc != 0) {
        *err = rc;
        return NULL;
    }
    w->seg = s;
    w->start = off;
    w->len = want;
    if (off + want < s->flushed && s->buf == NULL) {
        /* Sequential reader on a fd advised random: start reading the next
         * window in the background, as the kernel's read-ahead would. */
        uint64_t next = s->flushed - (off + want);
        (void)posix_fadvise(s->fd, (off_t)(off + want),
                            (off_t)(next < WIN_CAP ? next : WIN_CAP),
                            POSIX_FADV_WILLNEED);
    }
    return w->buf;
}

/* The verified record at off, or NULL (invalid data, or *err on a failed
 * read). */
static const char *
valid_at(struct cask_segment *s, struct cask_seg_reader *w, uint64_t off,
         uint32_t vmax, struct cask_rec *r, size_t *len, int *err)
{
    const char *hb = win_get(s, w, off, CASK_REC_HDR, err);
    if (hb == NULL || !cask_rec_decode(hb, vmax, r)) {
        return NULL;
    }
    *len = cask_rec_len(r->klen, r->vlen);
    const char *rec = win_get(s, w, off, *len, err);
    if (rec == NULL || !cask_rec_verify(rec, *len)) {
        return NULL;
    }
    return rec;
}

int
cask_seg_read_record(struct cask_segment *s, struct cask_seg_reader *rd,
                     uint64_t off, uint32_t vmax, struct cask_rec *r,
                     size_t *len, const char **rec)
{
    int err;
    *rec = valid_at(s, rd, off, vmax, r, len, &err);
    if (*rec != NULL) {
        return 0;
    }
    return err != 0 ? err : CASK_SEG_EINVALID;
}

int
cask_seg_reader_prefetch(struct cask_segment *s, struct cask_seg_reader *rd,
                         uint64_t off)
{
    int err = 0;
    if (off + CASK_REC_HDR <= s->flushed &&
        !cask_seg_reader_covers(rd, s, off)) {
        const char *hb = win_get(s, rd, off, CASK_REC_HDR, &err);
        struct cask_rec r;
        if (hb != NULL && cask_rec_decode(hb, CASK_REC_VMAX, &r)) {
            /* A record larger than the window: load all of it. */
            (void)win_get(s, rd, off, cask_rec_len(r.klen, r.vlen), &err);
        }
    }
    return err;
}

bool
cask_seg_reader_covers(const struct cask_seg_reader *rd,
                       const struct cask_segment *s, uint64_t off)
{
    if (rd->seg != s || off < rd->start ||
        off + CASK_REC_HDR > rd->start + rd->len) {
        return false;
    }
    struct cask_rec r;
    const char *hb = rd->buf + (off - rd->start);
    if (!cask_rec_decode(hb, CASK_REC_VMAX, &r)) {
        return true;
    }
    return off + cask_rec_len(r.klen, r.vlen) <= rd->start + rd->len;
}

void
cask_seg_reader_deinit(struct cask_seg_reader *rd)
{
    free(rd->buf);
    memset(rd, 0, sizeof(*rd));
}

uint64_t
cask_seg_scan(struct cask_segment *s, uint64_t start, uint32_t vmax,
              cask_seg_scan_fn fn, void *arg, int *err)
{
    struct cask_seg_reader w = {0};
    uint64_t off = start;

    *err = 0;
    while (off + CASK_REC_HDR <= s->flushed) {
        struct cask_rec r;
        size_t len;
        const char *rec = valid_at(s, &w, off, vmax, &r, &len, err);
        if (rec == NULL) {
            break;
        }
        fn(arg, &r, rec + CASK_REC_HDR, off);
        off += len;
    }
    free(w.buf);
    return off;
}

uint64_t
cask_seg_resync(struct cask_segment *s, uint64_t off, uint32_t vmax, int *err)
{
    struct cask_seg_reader w = {0};
    uint64_t at = off + 1;

    *err = 0;
    for (; at + CASK_REC_HDR <= s->flushed; at++) {
        struct cask_rec r;
        size_t len;
        if (valid_at(s, &w, at, vmax, &r, &len, err) != NULL || *err != 0) {
            break;
        }
    }
    free(w.buf);
    return at + CASK_REC_HDR <= s->flushed ? at : s->flushed;
}

void
cask_seg_close(struct cask_segment **sp)
{
    struct cask_segment *s = *sp;
    if (s == NULL) {
        return;
    }
    cask_vmap_close(s);
    wmap_close(s);
    if (s->fd >= 0) {
        close(s->fd);
    }
    int dio = atomic_load(&s->dio);
    if (dio > 0) {
        close(dio - 1);
    }
    free((void *)atomic_load(&s->cold));
    free(s->buf);
    free(s);
    *sp = NULL;
}
