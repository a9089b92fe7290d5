/* cmd_admin.h - memcached's admin commands and key dumps for cmd.c:
 * lru_crawler (metadump and the crawler switches), stats cachedump, stats
 * items and stats slabs (by memcached's size classes), lru, slabs,
 * cache_memlimit, watch and shutdown's modes. A dump or a per-class count
 * walks the store in batches (cask_walk) as a job of its connection: each
 * cmd_execute call runs one batch, so the worker serves its other
 * connections between batches. */
#ifndef BITCACHED_CMD_ADMIN_H
#define BITCACHED_CMD_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "server/cmd.h"

/* PROTO_CMD_ADMIN. Returns CMD_WATCH after an accepted `watch`, else
 * CMD_DONE. */
enum cmd_status cmd_admin_run(struct cmd_conn *cc, const struct proto_req *req);

/* memcached's slab class of an item (0 when none fits). */
unsigned cmd_admin_class(const struct cmd_env *env, size_t klen, uint32_t vlen,
                         uint32_t flags);

/* The per-class counters of cc's worker for such an item (cmd_admin_class):
 * where cmd.c and cmd_bin.c count a hit, a set, a delete, ... */
static inline struct cmd_class_counters *
cmd_admin_cls(struct cmd_conn *cc, size_t klen, uint32_t vlen, uint32_t flags)
{
    unsigned c = cmd_admin_class(cc->env, klen, vlen, flags);
    return &cc->ctr->cls[c < CMD_CLASSES ? c : 0];
}

/* A lookup found it (of a key klen long): a get hit, or a touch hit for a
 * touching lookup (memcached 1.6.18), in the totals and its class. */
static inline void
cmd_admin_count_hit(struct cmd_conn *cc, size_t klen,
                    const struct cask_item *it, bool touch)
{
    struct cmd_class_counters *k = cmd_admin_cls(cc, klen, it->vlen, it->flags);

    if (touch) {
        cc->ctr->touch_hits++;
        k->touch_hits++;
    } else {
        cc->ctr->get_hits++;
        k->get_hits++;
    }
}

/* The class of key's item as it is now (metadata only, no access
 * recorded), 0 when missing: a delete's class, looked up before it. */
unsigned cmd_admin_key_class(const struct cmd_env *env, const void *key,
                             size_t klen);

/* cask_options.class_of over env (a const struct cmd_env *): the store
 * counts its drops by memcached's class. */
unsigned cmd_admin_class_of(void *env, size_t klen, uint32_t vlen,
                            uint32_t flags);

/* memcached's ITEM_ntotal for such an item (me's size=, metadump's size=). */
uint64_t cmd_admin_item_size(const struct cmd_env *env, size_t klen,
                             uint32_t vlen, uint32_t flags);

/* Whether memcached would hold key's item in chunks (its total past
 * slab_chunk_max); false when the key is missing. memcached's incr and
 * decr refuse such an item as non-numeric before comparing a cas. Reads
 * the item's metadata only (no disk read, no access recorded). */
bool cmd_admin_chunked(const struct cmd_env *env, const void *key, size_t klen);

/* stats subcommands served here (cachedump, items, slabs, conns,
 * extstore); returns false for the others (left to env->stats). */
bool cmd_admin_stats(struct cmd_conn *cc, const char *args, size_t len);

/* Where a whole finished reply goes instead of the connection's sink:
 * text is the text protocol's reply (STAT lines, then END). */
typedef void (*cmd_admin_done_fn)(struct cmd_conn *cc, void *arg,
                                  const char *text, size_t len);

/* The binary protocol's stat items and stat slabs: the same walk as the
 * text commands' (a job of the connection, a batch per call), whose whole
 * reply goes to done(cc, arg, ...) once the walk is over, instead of to the
 * connection's sink (text NULL: out of memory). Returns false for another
 * group (nothing started). */
bool cmd_admin_stats_whole(struct cmd_conn *cc, const char *group, size_t len,
                           cmd_admin_done_fn done, void *arg);

/* Run the next batch of the connection's job and, when it is done, write
 * its end and free it. */
void cmd_admin_continue(struct cmd_conn *cc);

/* Drop an unfinished job (connection closing). */
void cmd_admin_cancel(struct cmd_conn *cc);

#endif
