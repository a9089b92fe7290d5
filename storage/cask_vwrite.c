/* cask_vwrite.c - a record with a large value appended with one pwritev
 * from the caller's buffers (cask_vwrite.h). Owns no state; depends on
 * cask_segment and cask_record.
 */
#include "storage/cask_vwrite.h"

#include <sys/uio.h>

int
cask_vwrite_append(struct cask_segment *s, const struct cask_rec *r,
                   const void *key, const void *v1, size_t l1, const void *v2,
                   size_t l2)
{
    char head[CASK_REC_HDR + 255];
    size_t hlen = CASK_REC_HDR + r->klen;
    cask_rec_encode_head(head, r, key, v1, l1, v2, l2);
    struct iovec iov[3] = {{head, hlen}};
    int cnt = 1;
    if (l1 > 0) {
        iov[cnt++] = (struct iovec){(void *)v1, l1};
    }
    if (l2 > 0) {
        iov[cnt++] = (struct iovec){(void *)v2, l2};
    }
    return cask_seg_writev_direct(s, iov, cnt);
}
