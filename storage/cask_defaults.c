/* cask_defaults.c - the storage API's pure helpers: status texts and default
 * options. No state, no I/O; shared by the engine and by test stores that
 * implement storage/cask.h without the engine. */
#include "storage/cask.h"

#include <errno.h>
#include <string.h>

const char *
cask_strerror(int err)
{
    switch (err) {
    case CASK_OK:
        return "ok";
    case CASK_ENOTFOUND:
        return "not found";
    case CASK_ENOTSTORED:
        return "not stored";
    case CASK_EEXISTS:
        return "cas mismatch";
    case CASK_ETOOBIG:
        return "value too large";
    case CASK_EBADKEY:
        return "bad key length";
    case CASK_ENONNUMERIC:
        return "value is not a number";
    case CASK_ECORRUPT:
        return "record failed its checksum";
    case CASK_EFAILED:
        return "shard failed after an I/O error (read-only)";
    case CASK_EUNDONE:
        return "write failed, not stored; the store is recovering";
    case CASK_ELOCKED:
        return "data directory locked by another process";
    case CASK_EINVAL:
        return "invalid argument";
    case CASK_ENOMEM:
        return "out of memory storing object";
    case CASK_EREADONLY:
        return "read-only replica: writes go to the primary";
    case CASK_ENOREPLICAS:
        return "stored, but not acknowledged by enough replicas in time";
    case CASK_EREPLAY:
        return "the commit journal holds writes its segments lack (a "
               "writing open replays them)";
    case CASK_EBLOCKED:
        return "write would wait for a roll-over; not done";
    default:
        break;
    }
    if (err == EPROTONOSUPPORT) {
        /* CASK_ENEWER (cask_newer.h): the storage opens no sockets, so
         * this errno means only that. */
        return "a file in the data directory was written by a newer "
               "bitcached (a newer format version)";
    }
    if (err > 0) {
        return strerror(err);
    }
    return "unknown error";
}

void
cask_options_init(struct cask_options *o)
{
    memset(o, 0, sizeof(*o));
    o->shards = CASK_DEFAULT_SHARDS;
    o->sync = CASK_SYNC_INTERVAL;
    o->sync_interval_ms = CASK_DEFAULT_SYNC_MS;
    o->segment_size = CASK_DEFAULT_SEGMENT;
    o->value_max = CASK_DEFAULT_VALUE_MAX;
    o->compact_ratio = CASK_DEFAULT_COMPACT;
    o->compact_background = true;
    o->crawl_background = true;
    o->crawl_as_lru = true;
    o->write_map = true;
    o->value_cache = CASK_VALUE_CACHE_AUTO;
}
