/* prefix_stats.h - memcached's per-prefix statistics (`stats detail
 * on|off|dump`, `-D`): gets, hits, sets and deletes counted by the part of
 * the key before the delimiter. Process-wide; every call is thread-safe. */
#ifndef BITCACHED_PREFIX_STATS_H
#define BITCACHED_PREFIX_STATS_H

#include <stdbool.h>
#include <stddef.h>

/* The delimiter (-D, default ':') and whether counting starts on. */
void prefix_stats_configure(char delimiter, bool on);
/* stats detail on|off. Counts kept so far stay. */
void prefix_stats_enable(bool on);
bool prefix_stats_enabled(void);

/* Count one request for key (only when on, and only for a key that holds
 * the delimiter). Cheap when off: one atomic load. */
void prefix_stats_get(const char *key, size_t klen, bool hit);
void prefix_stats_set(const char *key, size_t klen);
void prefix_stats_delete(const char *key, size_t klen);

/* stats reset: forget every prefix. */
void prefix_stats_clear(void);

/* The reply to `stats detail dump`, "PREFIX p get g hit h set s del d"
 * lines and END, in memcached's order. malloc'd (caller frees); NULL when
 * out of memory. */
char *prefix_stats_dump(size_t *len);

#endif
