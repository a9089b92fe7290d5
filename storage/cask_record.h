/* cask_record.h - the on-disk record codec (format in storage/FORMAT.md).
 *
 * Pure: no fds, no locks, no allocation. Bump CASK_REC_VERSION on any change
 * to the layout below.
 */
#ifndef BITCACHED_CASK_RECORD_H
#define BITCACHED_CASK_RECORD_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CASK_REC_VERSION 2u
#define CASK_REC_HDR     44u /* fixed header bytes before key and value */
/* Largest value the format admits (value_max may not exceed it). Decoding
 * uses this, not value_max, so a store reopened with a smaller value_max
 * still reads its larger records. */
#define CASK_REC_VMAX (1u << 30)

enum cask_rec_type {
    CASK_REC_PUT = 1,
    CASK_REC_TOMB = 2,
    /* Version 2: a new expiry (exp_abs_s) for the put of this key with this
     * cas, ordered by seq; no value. */
    CASK_REC_TOUCH = 3,
};

/* A decoded record header. */
struct cask_rec {
    uint64_t seq; /* store-wide order of writes; recovery keeps the max */
    uint64_t cas;
    int64_t exp_abs_s;
    uint32_t vlen;
    uint32_t flags;
    uint8_t klen;
    uint8_t type; /* enum cask_rec_type */
};

static inline size_t
cask_rec_len(size_t klen, size_t vlen)
{
    return CASK_REC_HDR + klen + vlen;
}

/* Encode a record into out (cask_rec_len bytes): header, key, then the value
 * as the concatenation v1 || v2 (either may be empty), and the checksum. */
void cask_rec_encode(char *out, const struct cask_rec *r, const void *key,
                     const void *v1, size_t l1, const void *v2, size_t l2);

/* Encode only the header and key of that record into out (CASK_REC_HDR +
 * klen bytes), its checksum taken over the value where it lies: the record
 * is then out[0..CASK_REC_HDR + klen) || v1 || v2, for a vectored write
 * that copies no value in the process. */
void cask_rec_encode_head(char *out, const struct cask_rec *r, const void *key,
                          const void *v1, size_t l1, const void *v2, size_t l2);

/* Decode the header in buf[0..CASK_REC_HDR). Returns false when the fields
 * are impossible (klen 0, unknown type, vlen above vmax). Does not check the
 * checksum. */
bool cask_rec_decode(const char *buf, uint32_t vmax, struct cask_rec *r);

/* True when the checksum of the whole record buf[0..len) is right. */
bool cask_rec_verify(const char *buf, size_t len);

/* The same for a record read in two parts: head[0..hlen) (at least the
 * header) followed by tail[0..tlen). */
bool cask_rec_verify2(const char *head, size_t hlen, const char *tail,
                      size_t tlen);

/* Re-stamp seq and expiry of an encoded record and fix its checksum (touch). */
void cask_rec_restamp(char *buf, size_t len, uint64_t seq, int64_t exp_abs_s);

/* Little-endian helpers shared with segment and hint headers. One load or
 * store each: GCC at -O2 leaves a byte loop of 8 unrolled in place, and
 * every record written or scanned goes through these several times. */
static inline void
cask_put64(char *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}

static inline void
cask_put32(char *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static inline uint64_t
cask_get64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

static inline uint32_t
cask_get32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

#endif
