/* cask_repair.h - offline repair of a closed data directory (for
 * bitcached-admin repair).
 *
 * Fixes what the server would otherwise skip, cut or refuse, and keeps a
 * copy of every byte it takes out of a segment in DIR/quarantine/shard-NNN/:
 * torn tails are truncated (the tail saved first), a segment with damaged
 * bytes inside is rewritten with its valid records only (the original
 * saved first), a damaged segment header is rewritten, a segment that cannot
 * be read is moved to the quarantine with its hint, a damaged retired file
 * is moved there, and hint files that are damaged, disagree with their
 * segment or are missing on a closed segment are rebuilt. The state file is
 * never changed. A directory holding a file of a newer format version
 * (cask_newer.h) is not repaired at all: each such file is reported and
 * nothing changed (CASK_ENEWER). The caller makes sure no server has the
 * directory open.
 * Knows nothing of the server or the protocol.
 */
#ifndef BITCACHED_CASK_REPAIR_H
#define BITCACHED_CASK_REPAIR_H

#include <stdbool.h>
#include <stdint.h>

struct cask_repair_report {
    uint64_t tails_truncated; /* segments whose torn tail was cut */
    uint64_t bytes_truncated;
    uint64_t segments_rewritten; /* damaged bytes inside removed */
    uint64_t bytes_removed;
    uint64_t headers_rewritten;
    uint64_t segments_quarantined; /* unreadable: moved away whole */
    uint64_t hints_rebuilt;
    uint64_t retired_quarantined;
    uint64_t journal_replayed; /* records of a commit journal written back
                                * into their segments (--sync=always) */
    uint64_t actions;          /* everything above that changed the directory */
};

/* Called for each action taken (done true) or problem left alone. msg has
 * no newline. */
typedef void (*cask_repair_note_fn)(void *arg, bool done, const char *msg);

/* Repair dir. Returns 0 with *rep filled, or an errno when a step failed
 * (what was done before it is in *rep and was reported). */
int cask_repair(const char *dir, cask_repair_note_fn note, void *arg,
                struct cask_repair_report *rep);

#endif
