/* cask_record.c - on-disk record codec and checksum. Pure: no fds, no locks,
 * no allocation. Layout documented in storage/FORMAT.md; bump
 * CASK_REC_VERSION on any change.
 *
 * Header (little-endian):
 *   0  u64 checksum  XXH3-64 of bytes [8, end of value)
 *   8  u64 seq
 *  16  u64 cas
 *  24  i64 exp_abs_s
 *  32  u32 vlen
 *  36  u32 flags
 *  40  u8  klen
 *  41  u8  type
 *  42  u16 reserved, 0
 */
#include "storage/cask_record.h"

#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

static void
encode_fields(char *out, const struct cask_rec *r, const void *key, size_t vlen)
{
    cask_put64(out + 8, r->seq);
    cask_put64(out + 16, r->cas);
    cask_put64(out + 24, (uint64_t)r->exp_abs_s);
    cask_put32(out + 32, (uint32_t)vlen);
    cask_put32(out + 36, r->flags);
    out[40] = (char)r->klen;
    out[41] = (char)r->type;
    out[42] = 0;
    out[43] = 0;
    memcpy(out + CASK_REC_HDR, key, r->klen);
}

void
cask_rec_encode_head(char *out, const struct cask_rec *r, const void *key,
                     const void *v1, size_t l1, const void *v2, size_t l2)
{
    XXH3_state_t st;
    encode_fields(out, r, key, l1 + l2);
    (void)XXH3_64bits_reset(&st);
    (void)XXH3_64bits_update(&st, out + 8, CASK_REC_HDR - 8 + r->klen);
    if (l1 > 0) {
        (void)XXH3_64bits_update(&st, v1, l1);
    }
    if (l2 > 0) {
        (void)XXH3_64bits_update(&st, v2, l2);
    }
    cask_put64(out, XXH3_64bits_digest(&st));
}

void
cask_rec_encode(char *out, const struct cask_rec *r, const void *key,
                const void *v1, size_t l1, const void *v2, size_t l2)
{
    encode_fields(out, r, key, l1 + l2);
    if (l1 > 0) {
        memcpy(out + CASK_REC_HDR + r->klen, v1, l1);
    }
    if (l2 > 0) {
        memcpy(out + CASK_REC_HDR + r->klen + l1, v2, l2);
    }
    size_t len = cask_rec_len(r->klen, l1 + l2);
    cask_put64(out, XXH3_64bits(out + 8, len - 8));
}

bool
cask_rec_decode(const char *buf, uint32_t vmax, struct cask_rec *r)
{
    r->seq = cask_get64(buf + 8);
    r->cas = cask_get64(buf + 16);
    r->exp_abs_s = (int64_t)cask_get64(buf + 24);
    r->vlen = cask_get32(buf + 32);
    r->flags = cask_get32(buf + 36);
    r->klen = (uint8_t)buf[40];
    r->type = (uint8_t)buf[41];
    if (r->klen == 0 || r->klen > 250) {
        return false;
    }
    if (r->type != CASK_REC_PUT && r->type != CASK_REC_TOMB &&
        r->type != CASK_REC_TOUCH) {
        return false;
    }
    if (buf[42] != 0 || buf[43] != 0) {
        return false;
    }
    if (r->vlen > vmax || (r->type != CASK_REC_PUT && r->vlen != 0)) {
        return false;
    }
    return true;
}

bool
cask_rec_verify(const char *buf, size_t len)
{
    if (len < CASK_REC_HDR) {
        return false;
    }
    return cask_get64(buf) == XXH3_64bits(buf + 8, len - 8);
}

bool
cask_rec_verify2(const char *head, size_t hlen, const char *tail, size_t tlen)
{
    XXH3_state_t st;
    if (hlen < CASK_REC_HDR || XXH3_64bits_reset(&st) != XXH_OK ||
        XXH3_64bits_update(&st, head + 8, hlen - 8) != XXH_OK ||
        XXH3_64bits_update(&st, tail, tlen) != XXH_OK) {
        return false;
    }
    return cask_get64(head) == XXH3_64bits_digest(&st);
}

void
cask_rec_restamp(char *buf, size_t len, uint64_t seq, int64_t exp_abs_s)
{
    cask_put64(buf + 8, seq);
    cask_put64(buf + 24, (uint64_t)exp_abs_s);
    cask_put64(buf, XXH3_64bits(buf + 8, len - 8));
}
