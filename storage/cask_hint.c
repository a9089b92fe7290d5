/* cask_hint.c - write and load hint files (format in storage/FORMAT.md).
 *
 * Layout: header "BCSKHNT\n", u32 version, u32 segment id, u64 covered_len;
 * then per record u64 seq, u64 cas, i64 exp, u32 off, u32 vlen, u32 flags,
 * u8 klen, u8 type, key; then u64 XXH3-64 of everything before it.
 * Owns no state; depends on cask_segment, cask_record and cask_io.
 */
#include "storage/cask_hint.h"

#include "storage/cask_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define HINT_HDR   24u
#define HINT_ENTRY 38u

static const char hint_magic[8] = {'B', 'C', 'S', 'K', 'H', 'N', 'T', '\n'};

struct hbuf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
};

static char *
hbuf_grow(struct hbuf *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 65536;
        while (nc < b->len + n) {
            nc *= 2;
        }
        char *np = realloc(b->p, nc);
        if (np == NULL) {
            b->oom = true;
            return NULL;
        }
        b->p = np;
        b->cap = nc;
    }
    char *r = b->p + b->len;
    b->len += n;
    return r;
}

static void
add_entry(void *arg, const struct cask_rec *r, const char *key, uint64_t off)
{
    struct hbuf *b = arg;
    char *e = hbuf_grow(b, HINT_ENTRY + r->klen);
    if (e == NULL) {
        return;
    }
    cask_put64(e, r->seq);
    cask_put64(e + 8, r->cas);
    cask_put64(e + 16, (uint64_t)r->exp_abs_s);
    cask_put32(e + 24, (uint32_t)off);
    cask_put32(e + 28, r->vlen);
    cask_put32(e + 32, r->flags);
    e[36] = (char)r->klen;
    e[37] = (char)r->type;
    memcpy(e + HINT_ENTRY, key, r->klen);
}

int
cask_hint_write(const char *dir, struct cask_segment *s, uint32_t vmax)
{
    char path[CASK_PATH_MAX], tmp[CASK_PATH_MAX + 8];
    struct hbuf b = {0};
    int rc = 0, fd = -1;

    cask_seg_path(path, sizeof(path), dir, s->id, "hint");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    char *h = hbuf_grow(&b, HINT_HDR);
    if (h == NULL) {
        return ENOMEM;
    }
    memcpy(h, hint_magic, 8);
    cask_put32(h + 8, CASK_HINT_VERSION);
    cask_put32(h + 12, s->id);
    uint64_t end = cask_seg_scan(s, CASK_SEG_HDR, vmax, add_entry, &b);
    char *t = hbuf_grow(&b, 8);
    if (b.oom || t == NULL) {
        rc = ENOMEM;
        goto out;
    }
    cask_put64(b.p + 16, end);
    cask_put64(t, XXH3_64bits(b.p, b.len - 8));
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = errno;
        goto out;
    }
    rc = cask_io_pwrite_all(fd, b.p, b.len, 0);
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
        goto out;
    }
    s->hint_len = end;
    s->hint_bytes = b.len;
out:
    free(b.p);
    return rc;
}

int
cask_hint_load(const char *dir, const struct cask_segment *s, uint32_t vmax,
               cask_seg_scan_fn fn, void *arg, uint64_t *covered)
{
    char path[CASK_PATH_MAX];
    struct stat st;
    int rc = 0;
    char *p = NULL;

    cask_seg_path(path, sizeof(path), dir, s->id, "hint");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? ENOENT : EINVAL;
    }
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)(HINT_HDR + 8)) {
        rc = EINVAL;
        goto out;
    }
    size_t len = (size_t)st.st_size;
    p = malloc(len);
    if (p == NULL) {
        rc = ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            rc = EINVAL;
            goto out;
        }
        got += (size_t)n;
    }
    if (memcmp(p, hint_magic, 8) != 0 ||
        cask_get32(p + 8) != CASK_HINT_VERSION || cask_get32(p + 12) != s->id ||
        cask_get64(p + len - 8) != XXH3_64bits(p, len - 8)) {
        rc = EINVAL;
        goto out;
    }
    uint64_t cov = cask_get64(p + 16);
    if (cov < CASK_SEG_HDR || cov > s->flushed) {
        rc = EINVAL;
        goto out;
    }
    /* Validate every entry before handing any out, so that a damaged hint
     * falls back to a scan with nothing half-applied. */
    size_t end = len - 8;
    for (size_t o = HINT_HDR; o < end;) {
        if (o + HINT_ENTRY > end) {
            rc = EINVAL;
            goto out;
        }
        unsigned klen = (unsigned char)p[o + 36];
        uint64_t roff = cask_get32(p + o + 24);
        uint32_t vlen = cask_get32(p + o + 28);
        if (klen == 0 || o + HINT_ENTRY + klen > end || vlen > vmax ||
            roff + cask_rec_len(klen, vlen) > cov) {
            rc = EINVAL;
            goto out;
        }
        o += HINT_ENTRY + klen;
    }
    for (size_t o = HINT_HDR; o < end;) {
        struct cask_rec r;
        r.seq = cask_get64(p + o);
        r.cas = cask_get64(p + o + 8);
        r.exp_abs_s = (int64_t)cask_get64(p + o + 16);
        uint64_t roff = cask_get32(p + o + 24);
        r.vlen = cask_get32(p + o + 28);
        r.flags = cask_get32(p + o + 32);
        r.klen = (uint8_t)p[o + 36];
        r.type = (uint8_t)p[o + 37];
        fn(arg, &r, p + o + HINT_ENTRY, roff);
        o += HINT_ENTRY + r.klen;
    }
    *covered = cov;
out:
    close(fd);
    free(p);
    return rc;
}

void
cask_hint_remove(const char *dir, uint32_t id)
{
    char path[CASK_PATH_MAX];
    cask_seg_path(path, sizeof(path), dir, id, "hint");
    unlink(path);
}
