/* cmd_meta.h - the per-item meta state memcached keeps in memory: "a win
 * token was sent" (later mg get Z) and "stale" (set by md I and ms I; mg
 * gets X). The store has no room for these bits and its format is fixed, so
 * they live here, in memory only: a restart forgets them, as memcached's
 * restart forgets its items.
 *
 * One table is shared by every connection; all calls are thread safe
 * (striped mutexes, never held across a store call). Each entry records the
 * cas of the item it describes, and is trusted only while the item still
 * has that cas: a store, delete or incr from any path makes it stale data.
 * The table is bounded; when a stripe is full its oldest entry is dropped
 * (a later client may then win too, as after an eviction in memcached).
 * Must not depend on storage/, protocol/ or the server's event loop.
 */
#ifndef BITCACHED_CMD_META_H
#define BITCACHED_CMD_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Item state bits. */
#define CMD_META_TOKEN 0x1u /* a win token (W) was sent for this item */
#define CMD_META_STALE 0x2u /* invalidated by md I, or stored by ms I */

/* Return flags cmd_meta_fetch asks for (emitted in the order Z, X, W). */
#define CMD_META_Z 0x1u
#define CMD_META_X 0x2u
#define CMD_META_W 0x4u

/* Default number of entries kept. */
#define CMD_META_CAP 65536u

struct cmd_meta; /* opaque */

/* Allocate a table of at most cap entries (rounded up to fill its
 * stripes). Returns 0, or ENOMEM. */
int cmd_meta_create(struct cmd_meta **out, size_t cap);
/* Free the table; *m is set to NULL. No call may be running. */
void cmd_meta_destroy(struct cmd_meta **m);

/* mg's decision for a hit on key whose item has cas: Z if a token was
 * already sent, X if stale, and W (recording the token) if none was sent
 * and either win is true (N created the item, or R found its TTL low) or
 * the item is stale. Returns CMD_META_Z/X/W bits. m may be NULL (no
 * state: W only if win). */
unsigned cmd_meta_fetch(struct cmd_meta *m, const void *key, size_t klen,
                        uint64_t cas, bool win);

/* The state bits recorded for key while its item has cas (0 if none). */
unsigned cmd_meta_bits(struct cmd_meta *m, const void *key, size_t klen,
                       uint64_t cas);

/* Record bits for key's item with cas, replacing any entry; bits 0 removes
 * it. */
void cmd_meta_put(struct cmd_meta *m, const void *key, size_t klen,
                  uint64_t cas, unsigned bits);

/* Drop key's entry unless it describes the item with keep_cas (0: drop in
 * any case). Called after a store or delete, so the table does not fill up
 * with entries nothing will read. */
void cmd_meta_forget(struct cmd_meta *m, const void *key, size_t klen,
                     uint64_t keep_cas);

/* Whether any entry (valid or not) exists for key: a cheap test before
 * work that only matters when there is state. */
bool cmd_meta_has(struct cmd_meta *m, const void *key, size_t klen);

/* Entries held (for tests and stats). */
size_t cmd_meta_count(struct cmd_meta *m);

#endif
