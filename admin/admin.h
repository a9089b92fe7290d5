/* admin.h - shared pieces of bitcached-admin: exit codes, messages, the
 * lock check and progress lines. The subcommands live in their own files
 * (admin_check.c, admin_dump.c). Uses the storage library only, never the
 * server. */
#ifndef BITCACHED_ADMIN_H
#define BITCACHED_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/cask.h"

#define ADMIN_OK     0  /* done; for check: no damage */
#define ADMIN_DAMAGE 1  /* check found damage */
#define ADMIN_FAIL   2  /* could not run: locked, I/O error, bad input */
#define ADMIN_USAGE  64 /* bad command line (EX_USAGE) */

extern bool admin_quiet;

/* "bitcached-admin: " + message + newline on stderr. */
void admin_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fail with a message naming the holder's PID when a process holds dir's
 * LOCK. Returns 0 when free (with *fd a held shared lock, or -1 when the
 * LOCK file does not exist; close it to release), else ADMIN_FAIL. */
int admin_lock(const char *dir, int *fd);

/* admin_lock for a directory that must exist already (check, repair):
 * ADMIN_FAIL with a message when it does not. */
int admin_lock_existing(const char *dir, int *fd);

/* Open dir as a store (recovery as at a server start) with its recorded
 * shard count, or `shards` when non-zero (for a new directory). The store
 * runs no background compaction. Returns 0 or ADMIN_FAIL (message said). */
int admin_open(const char *dir, unsigned shards, struct cask **out);

/* Open dir, which must exist, only to read it (stats, dump): recovery runs
 * in memory and nothing in dir is created, changed or removed (cask_options
 * inspect). Fails while a server holds it. Returns 0 or ADMIN_FAIL. */
int admin_open_look(const char *dir, struct cask **out);

/* Close a store admin_open or admin_open_look opened: when dir's commit
 * journal had writes its segments lacked, admin_open_look read a private
 * copy of dir with them replayed (dir is never written), removed here. */
void admin_close(struct cask **c);

/* Progress of a long operation: a bar on a terminal, a plain line every few
 * seconds otherwise, nothing with --quiet. what names the unit counted
 * ("bytes" or "keys"). done() ends the line. */
struct admin_progress {
    const char *what;
    double t0, last;
    bool tty, shown;
};
void admin_progress_init(struct admin_progress *p, const char *what);
void admin_progress(struct admin_progress *p, uint64_t done, uint64_t total);
void admin_progress_done(struct admin_progress *p);

int admin_check(int argc, char **argv);
int admin_dump(int argc, char **argv);
int admin_load(int argc, char **argv);
int admin_stats(int argc, char **argv);
int admin_compact(int argc, char **argv);
int admin_repair(int argc, char **argv);

#endif
