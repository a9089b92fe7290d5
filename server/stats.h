/* stats.h - the `stats` command: memcached's general stats from the workers'
 * counters and the server's, `stats settings`, and `stats storage` with the
 * engine's figures per shard and in total. */
#ifndef BITCACHED_STATS_H
#define BITCACHED_STATS_H

#include <stddef.h>

#include "server/cmd.h"

/* cmd_env.stats callback; arg is the struct server. Any worker thread. */
void stats_reply(void *arg, const char *args, size_t len,
                 const struct cmd_sink *out);

/* cmd_env.class_figures; arg is the struct server. The per-class counters
 * since the last `stats reset`. Any worker thread. */
void stats_class_figures(void *arg, struct cmd_class_figures *out);

#endif
