/* cask_vwrite.c - a record with a large value appended with one pwritev
 * from the caller's buffers (cask_vwrite.h). Owns no state; depends on
 * cask_segment, cask_record, cask_verify and cask_io.
 */
#include "storage/cask_vwrite.h"

#include "storage/cask_io.h"
#include "storage/cask_verify.h"

#include <sys/uio.h>

int
cask_vwrite_append(struct cask_segment *s, const struct cask_rec *r,
                   const void *key, const void *v1, size_t l1, const void *v2,
                   size_t l2)
{
    char head[CASK_REC_HDR + 255];
    size_t hlen = CASK_REC_HDR + r->klen;
    int rc = cask_seg_flush(s);
    if (rc != 0) {
        return rc;
    }
    cask_rec_encode_head(head, r, key, v1, l1, v2, l2);
    struct iovec iov[3] = {{head, hlen}};
    int cnt = 1;
    if (l1 > 0) {
        iov[cnt++] = (struct iovec){(void *)v1, l1};
    }
    if (l2 > 0) {
        iov[cnt++] = (struct iovec){(void *)v2, l2};
    }
    cask_verify_write_begin(s);
    rc = cask_io_pwritev_all(s->fd, iov, cnt, (off_t)s->flushed);
    if (rc != 0) {
        (void)cask_io_ftruncate(s->fd, (off_t)s->flushed);
        cask_verify_write_end(s);
        return rc;
    }
    cask_verify_write_end(s);
    s->flushed += hlen + l1 + l2;
    s->size = s->flushed;
    return 0;
}
