/* cask_atime.h - the last-access time a keydir entry keeps in 16 bits
 * (struct cask_kd_entry.at): memcached's it->time, which meta get's l flag,
 * me's la= and metadump's la= show. In memory only: nothing on disk holds
 * it, so after a restart every item's access time is the time it was
 * recovered. Pure arithmetic on the store's clock (unix seconds); no state.
 *
 * Two forms, told apart by the top bit:
 *  - fine (0): the access time in seconds, modulo 2^15 (a 9.1 h cycle).
 *    Every access writes this form; exact to the second.
 *  - coarse (1): the access time in units of CASK_AT_UNIT_S seconds
 *    (17 min), modulo 2^15 (a 388-day cycle); read back as the middle of
 *    its unit, so within CASK_AT_UNIT_S / 2 seconds of the truth.
 * Neither form says which cycle it is in, so the shard's crawler, which
 * visits every entry at least once a minute, keeps ages inside them: a fine
 * stamp older than CASK_AT_FINE_S (4 h) becomes coarse, and a coarse one
 * older than CASK_AT_CAP_S + CASK_AT_SLACK_S (about 200 days) is set back
 * to CASK_AT_CAP_S (194 days), so an item untouched longer than that reads
 * as untouched for 194 to 200 days. Only a crawler stalled for more than 5
 * hours (the fine cycle less CASK_AT_FINE_S) could let a fine stamp wrap;
 * the age read is then short by a multiple of 9.1 h.
 */
#ifndef BITCACHED_CASK_ATIME_H
#define BITCACHED_CASK_ATIME_H

#include <stdint.h>

#define CASK_AT_COARSE  0x8000u
#define CASK_AT_MASK    0x7fffu
#define CASK_AT_UNIT_S  1024
#define CASK_AT_FINE_S  (4 * 3600)
#define CASK_AT_CAP_U   16384u /* units: 194 days */
#define CASK_AT_SLACK_U 512u   /* units: 6 days */
#define CASK_AT_CAP_S   ((int64_t)CASK_AT_CAP_U * CASK_AT_UNIT_S)
#define CASK_AT_SLACK_S ((int64_t)CASK_AT_SLACK_U * CASK_AT_UNIT_S)

/* The stamp of an access at now. */
static inline uint16_t
cask_at_stamp(int64_t now)
{
    return (uint16_t)((uint64_t)now & CASK_AT_MASK);
}

/* Units of a coarse stamp since its access, at now (mod the cycle). */
static inline uint32_t
cask_at_units(uint16_t at, int64_t now)
{
    return (uint32_t)((uint64_t)(now / CASK_AT_UNIT_S) - (at & CASK_AT_MASK)) &
           CASK_AT_MASK;
}

/* Seconds of a fine stamp since its access, at now (mod the cycle). */
static inline uint32_t
cask_at_secs(uint16_t at, int64_t now)
{
    return (uint32_t)((uint64_t)now - at) & CASK_AT_MASK;
}

/* The access time (unix seconds, never after now) that stamp at says. */
static inline int64_t
cask_at_time(uint16_t at, int64_t now)
{
    if ((at & CASK_AT_COARSE) == 0) {
        return now - cask_at_secs(at, now);
    }
    int64_t t =
            (now / CASK_AT_UNIT_S - cask_at_units(at, now)) * CASK_AT_UNIT_S +
            CASK_AT_UNIT_S / 2;
    return t < now ? t : now;
}

/* The stamp the crawler keeps instead of at, at now (at itself when it
 * needs no change): fine stamps past CASK_AT_FINE_S become coarse, coarse
 * ones past the cap and its slack go back to the cap. */
static inline uint16_t
cask_at_age(uint16_t at, int64_t now)
{
    if ((at & CASK_AT_COARSE) == 0) {
        uint32_t s = cask_at_secs(at, now);
        if (s < CASK_AT_FINE_S) {
            return at;
        }
        return (uint16_t)(CASK_AT_COARSE |
                          ((uint64_t)((now - s) / CASK_AT_UNIT_S) &
                           CASK_AT_MASK));
    }
    if (cask_at_units(at, now) <= CASK_AT_CAP_U + CASK_AT_SLACK_U) {
        return at;
    }
    return (uint16_t)(CASK_AT_COARSE |
                      ((uint64_t)(now / CASK_AT_UNIT_S - CASK_AT_CAP_U) &
                       CASK_AT_MASK));
}

#endif
