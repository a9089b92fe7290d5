/* settings_ext.h - memcached's less common flags (-C -F -X -W -D -b -f -n -M
 * -k -L -r -e -N -i) and its -o extended options, with memcached 1.6's
 * checks, messages and exit codes. Used by settings.c, and by stats for the
 * size classes. */
#ifndef BITCACHED_SETTINGS_EXT_H
#define BITCACHED_SETTINGS_EXT_H

#include "server/settings.h"

/* memcached 1.6's defaults. */
void settings_ext_defaults(struct settings_mc *mc);
void settings_ext_deinit(struct settings_mc *mc);

/* The short options this file handles, for getopt's option string. */
#define SETTINGS_EXT_SHORT "CFXWD:b:f:n:MkLre:N:o:i"

/* Apply one of the flags above but -o (opt is the getopt character, arg its
 * value). Returns 0 when applied, 1 when opt is not one of them, 2 when it
 * printed something and the process should exit 0 (-i), or -1 after
 * printing memcached's message, with *exit_code set to memcached's code. */
int settings_ext_apply(struct settings *s, int opt, const char *arg,
                       int *exit_code);

/* -o: a comma-separated list of memcached's extended options. Returns 0, or
 * -1 after printing memcached's message with *exit_code set. */
int settings_ext_extended(struct settings *s, const char *arg, int *exit_code);

/* After every option is read: memcached's cross checks (-I against -m and
 * slab_chunk_max, LRU percentages, temporary_ttl, -N against -t). Returns 0,
 * or -1 after printing memcached's message with *exit_code set. */
int settings_ext_check(struct settings *s, int *exit_code);

/* The chunk sizes of memcached's size classes for -f, -n and
 * slab_chunk_max: sizes[1..n], growing; returns n. */
#define SETTINGS_MAX_CLASSES 64
unsigned settings_ext_classes(const struct settings_mc *mc,
                              uint32_t sizes[SETTINGS_MAX_CLASSES + 1]);

#endif
