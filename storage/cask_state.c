/* cask_state.c - format and parse one slot of the store's state file (see
 * cask_state.h), and recognise a slot of a newer version. Pure: no I/O. */
#include "storage/cask_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#define CASK_STATE_TAG "bitcached-meta"

void
cask_state_format(char *buf, const struct cask_state *st, uint64_t gen)
{
    memset(buf, 0, CASK_STATE_SLOT);
    int n = snprintf(buf, CASK_STATE_SLOT,
                     "%s %d\ngeneration %" PRIu64 "\nshards %u\ncas_reserved "
                     "%" PRIu64 "\nflush_cas %" PRIu64
                     "\nflush_pending_at %" PRId64 "\n",
                     CASK_STATE_TAG, CASK_STATE_VERSION, gen, st->shards,
                     st->cas_reserved, st->flush_cas, st->flush_pending_at);
    snprintf(buf + n, CASK_STATE_SLOT - (size_t)n, "checksum %016" PRIx64 "\n",
             (uint64_t)XXH3_64bits(buf, (size_t)n));
}

/* Whether the text before buf's first "checksum" line hashes to it. */
static bool
sum_ok(const char *buf)
{
    const char *ck = strstr(buf, "\nchecksum ");
    uint64_t want;
    return ck != NULL && sscanf(ck + 10, "%" SCNx64, &want) == 1 &&
           want == (uint64_t)XXH3_64bits(buf, (size_t)(ck + 1 - buf));
}

unsigned
cask_state_newer(const char *buf)
{
    char tag[32];
    unsigned version;
    if (sscanf(buf, "%31s %u", tag, &version) != 2 ||
        strcmp(tag, CASK_STATE_TAG) != 0 || version <= CASK_STATE_VERSION ||
        !sum_ok(buf)) {
        return 0;
    }
    return version;
}

int
cask_state_parse(const char *buf, struct cask_state *st, uint64_t *gen)
{
    char tag[32];
    int version, n;
    *gen = 0;
    if (cask_state_newer(buf) != 0) {
        return CASK_ENEWER;
    }
    if (sscanf(buf, "%31s %d", tag, &version) != 2 ||
        strcmp(tag, CASK_STATE_TAG) != 0 || version < 1 ||
        version > CASK_STATE_VERSION) {
        return EINVAL;
    }
    if (version >= 3) {
        n = sscanf(buf,
                   "%*s %*d generation %" SCNu64 " shards %u cas_reserved "
                   "%" SCNu64 " flush_cas %" SCNu64
                   " flush_pending_at %" SCNd64,
                   gen, &st->shards, &st->cas_reserved, &st->flush_cas,
                   &st->flush_pending_at);
    } else {
        n = 1 + sscanf(buf,
                       "%*s %*d shards %u cas_reserved %" SCNu64
                       " flush_cas %" SCNu64 " flush_pending_at %" SCNd64,
                       &st->shards, &st->cas_reserved, &st->flush_cas,
                       &st->flush_pending_at);
    }
    if (n != 5) {
        return EINVAL;
    }
    if (version >= 2 && !sum_ok(buf)) {
        return EINVAL;
    }
    return 0;
}
