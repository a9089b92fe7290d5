/* cask_hint.c - write and load hint files (format in storage/FORMAT.md).
 *
 * Layout: header "BCSKHNT\n", u32 version, u32 segment id, u64 covered_len;
 * then per record (in file order, offsets implied) a flag byte, klen, varint
 * seq, [varint cas], [varint exp], varint vlen, [varint flags], key; then
 * u64 XXH3-64 of everything before it.
 * Owns no state; depends on cask_segment, cask_record, cask_io, and
 * cask_hintscan with cask_verify for the hint of a freshly closed segment.
 */
#include "storage/cask_hint.h"

#include "storage/cask_hintscan.h"
#include "storage/cask_io.h"
#include "storage/cask_newer.h"
#include "storage/cask_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define HINT_HDR  24u
#define HINT_MAXE (2 + 5 * 10 + 255) /* largest encoded entry */

/* Entry flag bits (byte 0). */
#define HF_TYPE    0x03u /* enum cask_rec_type */
#define HF_CAS_SEQ 0x04u /* cas == seq, cas omitted */
#define HF_EXP     0x08u /* exp present (else 0) */
#define HF_FLAGS   0x10u /* flags present (else 0) */

static const char hint_magic[8] = {'B', 'C', 'S', 'K', 'H', 'N', 'T', '\n'};

struct hbuf {
    char *p;
    size_t len;
    size_t cap;
    uint64_t next_off; /* where the next record must start */
    bool oom;
    bool gap; /* records were not back to back (cannot happen) */
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

static size_t
put_varint(char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (char)v;
    return n;
}

/* Decode a varint from p[0..end); 0 on overrun or overlong. */
static size_t
get_varint(const char *p, const char *end, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t n = 0; n < 10 && p + n < end; n++) {
        unsigned char c = (unsigned char)p[n];
        r |= (uint64_t)(c & 0x7f) << (7 * n);
        if ((c & 0x80) == 0) {
            *v = r;
            return n + 1;
        }
    }
    return 0;
}

static void
add_entry(void *arg, const struct cask_rec *r, const char *key, uint64_t off)
{
    struct hbuf *b = arg;
    char e[HINT_MAXE];
    size_t n = 2;
    unsigned fl = r->type & HF_TYPE;

    if (off != b->next_off) {
        b->gap = true;
    }
    b->next_off = off + cask_rec_len(r->klen, r->vlen);
    n += put_varint(e + n, r->seq);
    if (r->cas == r->seq) {
        fl |= HF_CAS_SEQ;
    } else {
        n += put_varint(e + n, r->cas);
    }
    if (r->exp_abs_s != 0) {
        fl |= HF_EXP;
        n += put_varint(e + n, (uint64_t)r->exp_abs_s);
    }
    n += put_varint(e + n, r->vlen);
    if (r->flags != 0) {
        fl |= HF_FLAGS;
        n += put_varint(e + n, r->flags);
    }
    e[0] = (char)fl;
    e[1] = (char)r->klen;
    memcpy(e + n, key, r->klen);
    n += r->klen;
    char *d = hbuf_grow(b, n);
    if (d != NULL) {
        memcpy(d, e, n);
    }
}

/* Decode one entry at p; returns its length or 0 when it is malformed. */
static size_t
decode_entry(const char *p, const char *end, struct cask_rec *r,
             const char **key)
{
    const char *q = p + 2;
    uint64_t v;
    size_t n;
    if (end - p < 2) {
        return 0;
    }
    unsigned fl = (unsigned char)p[0];
    r->type = (uint8_t)(fl & HF_TYPE);
    r->klen = (uint8_t)p[1];
    if ((fl & ~0x1fu) != 0 || r->klen == 0 ||
        (r->type != CASK_REC_PUT && r->type != CASK_REC_TOMB &&
         r->type != CASK_REC_TOUCH)) {
        return 0;
    }
    if ((n = get_varint(q, end, &r->seq)) == 0) {
        return 0;
    }
    q += n;
    r->cas = r->seq;
    if (!(fl & HF_CAS_SEQ)) {
        if ((n = get_varint(q, end, &r->cas)) == 0) {
            return 0;
        }
        q += n;
    }
    r->exp_abs_s = 0;
    if (fl & HF_EXP) {
        if ((n = get_varint(q, end, &v)) == 0) {
            return 0;
        }
        r->exp_abs_s = (int64_t)v;
        q += n;
    }
    if ((n = get_varint(q, end, &v)) == 0 || v > CASK_REC_VMAX) {
        return 0;
    }
    r->vlen = (uint32_t)v;
    q += n;
    r->flags = 0;
    if (fl & HF_FLAGS) {
        if ((n = get_varint(q, end, &v)) == 0 || v > UINT32_MAX) {
            return 0;
        }
        r->flags = (uint32_t)v;
        q += n;
    }
    if (end - q < r->klen) {
        return 0;
    }
    *key = q;
    return (size_t)(q + r->klen - p);
}

/* Encode the header and the entries of s's records into b: by a full scan,
 * or (heads) by cask_hintscan. Returns 0 with *end, or an errno. */
static int
hint_build(struct hbuf *b, const struct cask_segment *s, uint32_t vmax,
           bool heads, uint64_t *end)
{
    int err;
    *b = (struct hbuf){.next_off = CASK_SEG_HDR};
    char *h = hbuf_grow(b, HINT_HDR);
    if (h == NULL) {
        return ENOMEM;
    }
    memcpy(h, hint_magic, 8);
    cask_put32(h + 8, CASK_HINT_VERSION);
    cask_put32(h + 12, s->id);
    struct cask_segment *sw = (struct cask_segment *)s;
    if (heads) {
        *end = cask_hintscan(sw, CASK_SEG_HDR, vmax, CASK_VERIFY_MIN, add_entry,
                             b, &err);
    } else {
        *end = cask_seg_scan(sw, CASK_SEG_HDR, vmax, add_entry, b, &err);
    }
    if (err != 0) {
        return err;
    }
    char *t = hbuf_grow(b, 8);
    if (b->oom || t == NULL) {
        return ENOMEM;
    }
    if (b->gap) {
        return EINVAL;
    }
    cask_put64(b->p + 16, *end);
    cask_put64(t, XXH3_64bits(b->p, b->len - 8));
    return 0;
}

/* Whether s's large values are still in the state in which a get sends
 * them unhashed: the file changed by no one since our last write (stamp)
 * and every page of it cached. */
static bool
values_trusted(const struct cask_segment *s, uint64_t stamp)
{
    return stamp != 0 && cask_verify_ctime(s->fd) == stamp &&
           cask_verify_resident(s->fd, 0, s->flushed);
}

int
cask_hint_write_fresh(const char *dir, const struct cask_segment *s,
                      uint32_t vmax, uint64_t stamp, uint64_t *covered,
                      uint64_t *bytes, bool *heads)
{
    char path[CASK_PATH_MAX], tmp[CASK_PATH_MAX + 8];
    struct hbuf b = {0};
    uint64_t end = 0;
    int rc = EINVAL;

    *heads = false;
    if (values_trusted(s, stamp)) {
        rc = hint_build(&b, s, vmax, true, &end);
        /* Checked again after: a write by anyone else, or a page that
         * left the cache, during the scan sends it the full way. A scan
         * that stopped short met damage the full scan reports as usual. */
        *heads = rc == 0 && end == s->flushed && values_trusted(s, stamp);
    }
    if (!*heads) {
        free(b.p);
        rc = hint_build(&b, s, vmax, false, &end);
    }
    if (rc != 0) {
        goto out;
    }
    cask_seg_path(path, sizeof(path), dir, s->id, "hint");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    /* A hint a power loss takes back after a failed directory sync
     * costs a scan of its segment at the next start, nothing more: its
     * dir_rc is not an error of the hint's. */
    int dir_rc;
    rc = cask_replace_file(dir, tmp, path, b.p, b.len, &dir_rc);
    if (rc != 0) {
        goto out;
    }
    *covered = end;
    *bytes = b.len;
out:
    free(b.p);
    return rc;
}

int
cask_hint_write(const char *dir, const struct cask_segment *s, uint32_t vmax,
                uint64_t *covered, uint64_t *bytes)
{
    bool heads;
    return cask_hint_write_fresh(dir, s, vmax, 0, covered, bytes, &heads);
}

int
cask_hint_load(const char *dir, const struct cask_segment *s, uint32_t vmax,
               cask_seg_scan_fn fn, void *arg, uint64_t *covered,
               uint64_t *bytes)
{
    char path[CASK_PATH_MAX];
    struct stat st;
    int rc = 0;
    char *p = NULL;

    cask_seg_path(path, sizeof(path), dir, s->id, "hint");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno; /* ENOENT: none; anything else could not be read */
    }
    if (fstat(fd, &st) != 0) {
        rc = errno;
        goto out;
    }
    if (st.st_size < 12 + 8 || (uint64_t)st.st_size > CASK_NEWER_READ_MAX) {
        rc = EINVAL;
        goto out;
    }
    size_t len = (size_t)st.st_size;
    p = malloc(len);
    if (p == NULL) {
        rc = ENOMEM;
        goto out;
    }
    rc = cask_io_pread_all(fd, p, len, 0); /* an I/O error is not damage */
    if (rc != 0) {
        goto out;
    }
    if (cask_newer_tail_sum(p, len, hint_magic, CASK_HINT_VERSION) != 0) {
        /* Not damage: a newer build's hint, whose entries may describe
         * the segment by rules this build does not know. */
        rc = CASK_ENEWER;
        goto out;
    }
    if (len < HINT_HDR + 8 || memcmp(p, hint_magic, 8) != 0 ||
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
     * falls back to a scan with nothing half-applied. Offsets are implied:
     * records are back to back from the segment header, and must end
     * exactly at covered_len. */
    const char *end = p + len - 8;
    uint64_t off = CASK_SEG_HDR;
    for (const char *q = p + HINT_HDR; q < end;) {
        struct cask_rec r;
        const char *key;
        size_t n = decode_entry(q, end, &r, &key);
        if (n == 0) {
            rc = EINVAL;
            goto out;
        }
        off += cask_rec_len(r.klen, r.vlen);
        if (off > cov || r.vlen > vmax) {
            rc = EINVAL;
            goto out;
        }
        q += n;
    }
    if (off != cov) {
        rc = EINVAL;
        goto out;
    }
    off = CASK_SEG_HDR;
    for (const char *q = p + HINT_HDR; q < end;) {
        struct cask_rec r;
        const char *key;
        q += decode_entry(q, end, &r, &key);
        fn(arg, &r, key, off);
        off += cask_rec_len(r.klen, r.vlen);
    }
    *covered = cov;
    if (bytes != NULL) {
        *bytes = (uint64_t)len;
    }
out:
    close(fd);
    free(p);
    return rc;
}

uint32_t
cask_hint_newer(const char *dir, uint32_t id)
{
    char path[CASK_PATH_MAX];
    uint32_t v;
    cask_seg_path(path, sizeof(path), dir, id, "hint");
    return cask_newer_path(path, hint_magic, CASK_HINT_VERSION, &v) == 0 ? v
                                                                         : 0;
}

void
cask_hint_remove(const char *dir, uint32_t id)
{
    char path[CASK_PATH_MAX];
    cask_seg_path(path, sizeof(path), dir, id, "hint");
    (void)cask_io_unlink(path);
}

/* Bytes of a hint read to learn what an entry costs. */
#define SAMPLE_BYTES (64u * 1024)

/* Entries in the first SAMPLE_BYTES of the hint at path: their count in
 * *ents, the hint bytes they took in *hbytes and the segment bytes they
 * describe in *sbytes. False when there is no usable sample. */
static bool
sample_hint(const char *path, uint64_t *ents, uint64_t *hbytes,
            uint64_t *sbytes)
{
    char *p = malloc(SAMPLE_BYTES);
    if (p == NULL) {
        return false;
    }
    bool ok = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got = pread(fd, p, SAMPLE_BYTES, 0);
        close(fd);
        if (got > (ssize_t)(HINT_HDR + 8) && memcmp(p, hint_magic, 8) == 0) {
            const char *end = p + got;
            const char *q = p + HINT_HDR;
            *ents = *hbytes = *sbytes = 0;
            while (q < end) {
                struct cask_rec r;
                const char *key;
                size_t n = decode_entry(q, end, &r, &key);
                if (n == 0) {
                    break; /* cut by the sample's end, or the checksum */
                }
                (*ents)++;
                *hbytes += n;
                *sbytes += cask_rec_len(r.klen, r.vlen);
                q += n;
            }
            ok = *ents > 0;
        }
    }
    free(p);
    return ok;
}

uint64_t
cask_hint_estimate(const char *dir, const uint32_t *ids, size_t n)
{
    char path[CASK_PATH_MAX];
    struct stat st;
    uint64_t ents = 0, hbytes = 0, sbytes = 0;
    uint64_t hint_total = 0, seg_total = 0;
    size_t newest = 0; /* 1 + the index of the newest hint found */

    for (size_t i = 0; i < n; i++) {
        cask_seg_path(path, sizeof(path), dir, ids[i], "hint");
        if (stat(path, &st) == 0 && st.st_size > HINT_HDR + 8) {
            hint_total += (uint64_t)st.st_size - HINT_HDR - 8;
            newest = i + 1;
            continue;
        }
        cask_seg_path(path, sizeof(path), dir, ids[i], "seg");
        if (stat(path, &st) == 0 && st.st_size > CASK_SEG_HDR) {
            seg_total += (uint64_t)st.st_size - CASK_SEG_HDR;
        }
    }
    /* The newest hint that can be read sets the rate. An entry's seq (and
     * cas) is a varint that grows with the store's history, so the first
     * records of the oldest hint are the smallest entries: sampled there,
     * a freshly loaded store of 5M keys was taken for 5.84M (17 % over),
     * and the index reserved for that was rehashed down again once loaded
     * (4 % of the recovery's CPU). Sampled in the newest hint it errs low
     * by the varints' growth (3 % there), which the reserve's margin
     * (cask_kd_reserve) takes; a stripe that fills anyway grows by a bulk
     * load's half step. */
    bool sampled = false;
    for (size_t i = newest; i-- > 0 && !sampled;) {
        cask_seg_path(path, sizeof(path), dir, ids[i], "hint");
        /* the newest one was just seen; an older one only if it fails */
        if (i + 1 == newest ||
            (stat(path, &st) == 0 && st.st_size > HINT_HDR + 8)) {
            sampled = sample_hint(path, &ents, &hbytes, &sbytes);
        }
    }
    if (!sampled) {
        return 0;
    }
    return hint_total / hbytes * ents + hint_total % hbytes * ents / hbytes +
           seg_total / sbytes * ents + seg_total % sbytes * ents / sbytes;
}
