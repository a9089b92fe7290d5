/* cask_hintscan.c - a segment scan for the hint writer that reads the header
 * and key of a large value's record, not the value (cask_hintscan.h).
 *
 * Reads go through one window buffer: a header not in the window reads a
 * small probe there (a large record's value then stays on disk); a small
 * record not wholly in it reads a larger window, so that a run of small
 * records costs one pread per window, as cask_seg_scan does.
 * Owns no state; depends on cask_segment and cask_record.
 */
#include "storage/cask_hintscan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#define PROBE_BYTES 4096u         /* header and key of one record, at least */
#define WIN_BYTES   (256u * 1024) /* a run of small records */

struct win {
    char *buf;
    size_t cap;
    uint64_t start;
    size_t len;
};

/* Bytes [off, off+n) of s through w, reading at least `want` bytes (to the
 * flushed end) when they are not there; NULL past the flushed end (*err 0)
 * or on a failed read (*err set). */
static const char *
win_at(struct cask_segment *s, struct win *w, uint64_t off, size_t n,
       size_t want, int *err)
{
    *err = 0;
    if (off + n > s->flushed) {
        return NULL;
    }
    if (off >= w->start && off + n <= w->start + w->len) {
        return w->buf + (off - w->start);
    }
    if (want < n) {
        want = n;
    }
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
    w->len = 0;
    int rc = cask_seg_pread(s, off, want, w->buf);
    if (rc != 0) {
        *err = rc;
        return NULL;
    }
    w->start = off;
    w->len = want;
    return w->buf;
}

uint64_t
cask_hintscan(struct cask_segment *s, uint64_t start, uint32_t vmax,
              uint32_t big, cask_seg_scan_fn fn, void *arg, int *err)
{
    struct win w = {0};
    uint64_t off = start;

    *err = 0;
    while (off + CASK_REC_HDR <= s->flushed) {
        struct cask_rec r;
        const char *p = win_at(s, &w, off, CASK_REC_HDR, PROBE_BYTES, err);
        if (p == NULL || !cask_rec_decode(p, vmax, &r)) {
            break;
        }
        size_t len = cask_rec_len(r.klen, r.vlen);
        if (off + len > s->flushed) {
            break; /* torn: cask_seg_scan stops here too */
        }
        if (r.type == CASK_REC_PUT && r.vlen >= big) {
            p = win_at(s, &w, off, CASK_REC_HDR + r.klen, PROBE_BYTES, err);
        } else {
            p = win_at(s, &w, off, len, WIN_BYTES, err);
            if (p != NULL && !cask_rec_verify(p, len)) {
                break;
            }
        }
        if (p == NULL) {
            break;
        }
        fn(arg, &r, p + CASK_REC_HDR, off);
        off += len;
    }
    free(w.buf);
    return off;
}
