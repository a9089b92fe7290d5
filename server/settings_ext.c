/* settings_ext.c - memcached's less common flags and its -o extended options.
 *
 * Owns the parsing of those flags into struct settings_mc, memcached 1.6.18's
 * checks on them, and the messages and exit codes it gives when it refuses
 * one (most print a line and exit 1; the -I and port checks exit 64). Which
 * flags have an effect here is documented in README.md and bitcached(1);
 * this file only records values. Depends on settings.h alone. */
#include "server/settings_ext.h"

#include <config.h> /* autoconf's, not server/config.h */

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define SLAB_PAGE_SIZE (1024 * 1024)
#define ITEM_HEADER    48u /* memcached's sizeof(item) on 64-bit */

void
settings_ext_defaults(struct settings_mc *mc)
{
    memset(mc, 0, sizeof(*mc));
    mc->prefix_delimiter = ':';
    mc->backlog = 1024;
    mc->factor = 1.25;
    mc->chunk_size = 48;
    mc->slab_chunk_max = SLAB_PAGE_SIZE / 2;
    mc->maxconns_fast = true;
    mc->hashexpand = true;
    mc->slab_reassign = true;
    mc->slab_automove = 1;
    mc->slab_automove_ratio = 0.8;
    mc->slab_automove_window = 30;
    snprintf(mc->hash_algorithm, sizeof(mc->hash_algorithm), "murmur3");
    mc->lru_crawler = true;
    mc->lru_crawler_sleep = 100;
    mc->lru_maintainer = true;
    mc->lru_segmented = true;
    mc->hot_lru_pct = 20;
    mc->warm_lru_pct = 40;
    mc->hot_max_factor = 0.2;
    mc->warm_max_factor = 2.0;
    mc->temporary_ttl = 61;
    mc->watcher_logbuf_size = 256 * 1024;
    mc->worker_logbuf_size = 64 * 1024;
    mc->drop_privileges = true;
}

void
settings_ext_deinit(struct settings_mc *mc)
{
    free(mc->memory_file);
    mc->memory_file = NULL;
}

static int refuse(int *exit_code, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int
refuse(int *exit_code, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    *exit_code = code;
    return -1;
}

/* memcached's safe_strtoul/safe_strtol: a whole number, nothing after but
 * white space. */
static bool
whole_ul(const char *p, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(p, &end, 10);
    if (errno != 0 || end == p || (*end != '\0' && *end != ' ')) {
        return false;
    }
    if ((long)v < 0 && strchr(p, '-') != NULL) {
        return false;
    }
    *out = v;
    return true;
}

static bool
whole_l(const char *p, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(p, &end, 10);
    if (errno != 0 || end == p || (*end != '\0' && *end != ' ')) {
        return false;
    }
    *out = v;
    return true;
}

int
settings_ext_apply(struct settings *s, int opt, const char *arg, int *exit_code)
{
    struct settings_mc *mc = &s->mc;

    switch (opt) {
    case 'C':
        mc->cas_disabled = true;
        return 0;
    case 'F':
        mc->flush_disabled = true;
        return 0;
    case 'X':
        mc->dump_disabled = true;
        return 0;
    case 'W':
        mc->watch_disabled = true;
        return 0;
    case 'D':
        if (arg == NULL || arg[0] == '\0') {
            return refuse(exit_code, 1, "No delimiter specified");
        }
        mc->prefix_delimiter = arg[0];
        mc->detail_enabled = true;
        return 0;
    case 'b':
        mc->backlog = atoi(arg);
        return 0;
    case 'f':
        mc->factor = atof(arg);
        if (!(mc->factor > 1.0)) {
            return refuse(exit_code, 1, "Factor must be greater than 1");
        }
        return 0;
    case 'n': {
        int v = atoi(arg);
        if (v == 0) {
            return refuse(exit_code, 1, "Chunk size must be greater than 0");
        }
        mc->chunk_size = (unsigned)v;
        return 0;
    }
    case 'M':
        mc->evictions_off = true;
        return 0;
    case 'k':
        mc->lock_memory = true;
        return 0;
    case 'L':
        mc->large_pages = true;
        return 0;
    case 'r':
        mc->coredumps = true;
        return 0;
    case 'e':
        free(mc->memory_file);
        mc->memory_file = strdup(arg);
        return 0;
    case 'N':
        mc->napi_ids = atoi(arg);
        if (mc->napi_ids <= 0) {
            return refuse(exit_code, 1,
                          "Maximum number of NAPI IDs must be greater than 0");
        }
        return 0;
    case 'i':
        printf("bitcached %s is distributed under the terms given in its "
               "source distribution.\nlibevent is distributed under the "
               "3-clause BSD license.\n",
               PACKAGE_VERSION);
        return 2;
    default:
        return 1;
    }
}

/* An ext_* option (memcached's extstore): checked as memcached checks it,
 * then ignored. */
static int
extstore_option(const char *name, const char *val, int *exit_code)
{
    static const char *const numeric[] = {
            "ext_page_size",  "ext_wbuf_size",    "ext_threads",
            "ext_io_depth",   "ext_item_size",    "ext_item_age",
            "ext_low_ttl",    "ext_recache_rate", "ext_compact_under",
            "ext_drop_under", "ext_max_sleep",
    };
    unsigned long ul;

    if (strcmp(name, "ext_path") == 0) {
        if (val == NULL) {
            return refuse(exit_code, 1,
                          "missing argument to ext_path, ie: "
                          "ext_path=/d/file:5G");
        }
        if (strchr(val, ':') == NULL) {
            return refuse(exit_code, 1,
                          "must supply size to ext_path, ie: "
                          "ext_path=/f/e:64m (M|G|T|P supported)");
        }
        return 0;
    }
    if (strcmp(name, "ext_drop_unread") == 0) {
        return 0;
    }
    if (strcmp(name, "ext_max_frag") == 0 ||
        strcmp(name, "slab_automove_freeratio") == 0) {
        char *end;
        if (val == NULL) {
            return refuse(exit_code, 1, "Missing %s argument", name);
        }
        errno = 0;
        (void)strtod(val, &end);
        if (errno != 0 || end == val || *end != '\0') {
            return refuse(exit_code, 1, "could not parse argument to %s", name);
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++) {
        if (strcmp(name, numeric[i]) == 0) {
            if (val == NULL) {
                return refuse(exit_code, 1, "Missing %s argument", name);
            }
            if (!whole_ul(val, &ul)) {
                return refuse(exit_code, 1, "could not parse argument to %s",
                              name);
            }
            return 0;
        }
    }
    return 1;
}

#define NEED_VALUE(msg)                                                        \
    do {                                                                       \
        if (val == NULL) {                                                     \
            return refuse(exit_code, 1, msg);                                  \
        }                                                                      \
    } while (0)

/* One name[=value] of -o. */
static int
extended_one(struct settings *s, char *tok, int *exit_code)
{
    struct settings_mc *mc = &s->mc;
    char *val = strchr(tok, '=');
    const char *name = tok;
    unsigned long ul;
    long l;

    if (val != NULL) {
        *val++ = '\0';
    }
    if (strcmp(name, "maxconns_fast") == 0) {
        mc->maxconns_fast = true;
    } else if (strcmp(name, "no_maxconns_fast") == 0) {
        mc->maxconns_fast = false;
    } else if (strcmp(name, "hashpower") == 0) {
        NEED_VALUE("Missing numeric argument for hashpower");
        mc->hashpower_init = atoi(val);
        if (mc->hashpower_init < 12) {
            return refuse(exit_code, 1,
                          "Initial hashtable multiplier of %d is too low",
                          mc->hashpower_init);
        }
        if (mc->hashpower_init > 32) {
            return refuse(exit_code, 1,
                          "Initial hashtable multiplier of %d is too high\n"
                          "Choose a value based on \"STAT hash_power_level\" "
                          "from a running instance",
                          mc->hashpower_init);
        }
    } else if (strcmp(name, "no_hashexpand") == 0) {
        mc->hashexpand = false;
    } else if (strcmp(name, "slab_reassign") == 0) {
        mc->slab_reassign = true;
    } else if (strcmp(name, "no_slab_reassign") == 0) {
        mc->slab_reassign = false;
    } else if (strcmp(name, "slab_automove") == 0) {
        mc->slab_automove = val == NULL ? 1 : atoi(val);
        if (mc->slab_automove < 0 || mc->slab_automove > 2) {
            return refuse(exit_code, 1,
                          "slab_automove must be between 0 and 2");
        }
    } else if (strcmp(name, "no_slab_automove") == 0) {
        mc->slab_automove = 0;
    } else if (strcmp(name, "slab_automove_ratio") == 0) {
        NEED_VALUE("Missing slab_automove_ratio argument");
        mc->slab_automove_ratio = atof(val);
        if (mc->slab_automove_ratio <= 0 || mc->slab_automove_ratio > 1) {
            return refuse(exit_code, 1,
                          "slab_automove_ratio must be > 0 and < 1");
        }
    } else if (strcmp(name, "slab_automove_window") == 0) {
        NEED_VALUE("Missing slab_automove_window argument");
        if (atoi(val) < 3) {
            return refuse(exit_code, 1, "slab_automove_window must be > 2");
        }
        mc->slab_automove_window = (unsigned)atoi(val);
    } else if (strcmp(name, "tail_repair_time") == 0) {
        NEED_VALUE("Missing numeric argument for tail_repair_time");
        mc->tail_repair_time = atoi(val);
        if (mc->tail_repair_time < 10) {
            return refuse(exit_code, 1,
                          "Cannot set tail_repair_time to less than 10 "
                          "seconds");
        }
    } else if (strcmp(name, "hash_algorithm") == 0) {
        NEED_VALUE("Missing hash_algorithm argument");
        if (strcmp(val, "jenkins") != 0 && strcmp(val, "murmur3") != 0 &&
            strcmp(val, "xxh3") != 0) {
            return refuse(exit_code, 1,
                          "Unknown hash_algorithm option (jenkins, murmur3, "
                          "xxh3)");
        }
        snprintf(mc->hash_algorithm, sizeof(mc->hash_algorithm), "%s", val);
    } else if (strcmp(name, "lru_crawler") == 0) {
        mc->lru_crawler = true;
    } else if (strcmp(name, "no_lru_crawler") == 0) {
        mc->lru_crawler = false;
    } else if (strcmp(name, "lru_crawler_sleep") == 0) {
        NEED_VALUE("Missing lru_crawler_sleep value");
        mc->lru_crawler_sleep = atoi(val);
        if (mc->lru_crawler_sleep > 1000000 || mc->lru_crawler_sleep < 0) {
            return refuse(exit_code, 1,
                          "LRU crawler sleep must be between 0 and 1 second");
        }
    } else if (strcmp(name, "lru_crawler_tocrawl") == 0) {
        NEED_VALUE("Missing lru_crawler_tocrawl value");
        if (!whole_ul(val, &ul) || ul > UINT32_MAX) {
            return refuse(exit_code, 1,
                          "lru_crawler_tocrawl takes a numeric 32bit value");
        }
        mc->lru_crawler_tocrawl = ul;
    } else if (strcmp(name, "lru_maintainer") == 0) {
        mc->lru_maintainer = mc->lru_segmented = true;
    } else if (strcmp(name, "no_lru_maintainer") == 0) {
        mc->lru_maintainer = mc->lru_segmented = false;
    } else if (strcmp(name, "hot_lru_pct") == 0 ||
               strcmp(name, "warm_lru_pct") == 0) {
        int *pct = name[0] == 'h' ? &mc->hot_lru_pct : &mc->warm_lru_pct;
        if (val == NULL) {
            return refuse(exit_code, 1, "Missing %s argument", name);
        }
        *pct = atoi(val);
        if (*pct < 1 || *pct >= 80) {
            return refuse(exit_code, 1, "%s must be > 1 and < 80", name);
        }
    } else if (strcmp(name, "hot_max_factor") == 0 ||
               strcmp(name, "warm_max_factor") == 0) {
        double *f = name[0] == 'h' ? &mc->hot_max_factor : &mc->warm_max_factor;
        if (val == NULL) {
            return refuse(exit_code, 1, "Missing %s argument", name);
        }
        *f = atof(val);
        if (*f <= 0) {
            return refuse(exit_code, 1, "%s must be > 0", name);
        }
    } else if (strcmp(name, "temporary_ttl") == 0) {
        NEED_VALUE("Missing temporary_ttl argument");
        mc->temp_lru = true;
        mc->temporary_ttl = (unsigned)atoi(val);
    } else if (strcmp(name, "idle_timeout") == 0) {
        /* Has its effect: the same as --idle-timeout. */
        NEED_VALUE("Missing numeric argument for idle_timeout");
        l = atoi(val);
        s->idle_timeout_s = l > 0 ? (unsigned)l : 0;
    } else if (strcmp(name, "watcher_logbuf_size") == 0 ||
               strcmp(name, "worker_logbuf_size") == 0) {
        unsigned *kb = name[1] == 'a' ? &mc->watcher_logbuf_size
                                      : &mc->worker_logbuf_size;
        if (val == NULL) {
            return refuse(exit_code, 1, "Missing %s argument", name);
        }
        if (!whole_ul(val, &ul) || ul > UINT_MAX / 1024) {
            return refuse(exit_code, 1, "could not parse argument to %s", name);
        }
        *kb = (unsigned)ul * 1024;
    } else if (strcmp(name, "slab_sizes") == 0) {
        NEED_VALUE("Missing slab_sizes argument");
    } else if (strcmp(name, "slab_chunk_max") == 0) {
        NEED_VALUE("Missing slab_chunk_max argument");
        if (!whole_l(val, &l) || l <= 0 || l > INT_MAX) {
            return refuse(exit_code, 1,
                          "could not parse argument to slab_chunk_max");
        }
        mc->slab_chunk_max = (int)l;
        mc->slab_chunk_changed = true;
    } else if (strcmp(name, "track_sizes") == 0) {
        mc->track_sizes = true;
    } else if (strcmp(name, "no_inline_ascii_resp") == 0 ||
               strcmp(name, "inline_ascii_resp") == 0 ||
               strcmp(name, "modern") == 0) {
        /* memcached: no effect either */
    } else if (strcmp(name, "no_chunked_items") == 0) {
        mc->slab_chunk_max = SLAB_PAGE_SIZE;
    } else if (strcmp(name, "no_modern") == 0) {
        if (!mc->slab_chunk_changed) {
            mc->slab_chunk_max = SLAB_PAGE_SIZE;
        }
        mc->slab_reassign = false;
        mc->slab_automove = 0;
        mc->maxconns_fast = false;
        mc->lru_segmented = false;
        mc->lru_crawler = false;
        mc->lru_maintainer = false;
        snprintf(mc->hash_algorithm, sizeof(mc->hash_algorithm), "jenkins");
    } else if (strcmp(name, "no_drop_privileges") == 0) {
        mc->drop_privileges = false;
    } else if (strcmp(name, "drop_privileges") == 0) {
        mc->drop_privileges = true;
    } else if (strcmp(name, "relaxed_privileges") == 0) {
        /* memcached-debug's switch for its test suite (no seccomp filter
         * here to relax); accepted so that suite can start bitcached. */
        mc->relaxed_privileges = true;
    } else if (strcmp(name, "resp_obj_mem_limit") == 0) {
        fprintf(stderr, "DEPRECATED: resp_obj_mem_limit no longer used. See "
                        "read_buf_mem_limit,\n");
    } else if (strcmp(name, "read_buf_mem_limit") == 0) {
        NEED_VALUE("Missing read_buf_mem_limit argument");
        if (!whole_ul(val, &ul) || ul > UINT_MAX / (1024 * 1024)) {
            return refuse(exit_code, 1,
                          "could not parse argument to read_buf_mem_limit");
        }
        mc->read_buf_mem_limit = (unsigned)ul * 1024 * 1024;
    } else if (tls_settings_is_option(name)) {
        /* TLS (-Z): checked and kept by tls_settings.c */
        if (tls_settings_apply(&s->tls, name, val) < 0) {
            *exit_code = 1;
            return -1;
        }
    } else {
        int rc = extstore_option(name, val, exit_code);
        if (rc <= 0) {
            return rc;
        }
        if (val != NULL) {
            val[-1] = '=';
        }
        return refuse(exit_code, 1, "Illegal suboption \"%s\"", tok);
    }
    return 0;
}

int
settings_ext_extended(struct settings *s, const char *arg, int *exit_code)
{
    char *copy = strdup(arg);
    char *p = copy, *comma;
    int rc = 0;

    if (copy == NULL) {
        return refuse(exit_code, EX_OSERR, "out of memory");
    }
    /* getsubopt's walk: every comma ends a token, an empty one included. */
    while (rc == 0 && *p != '\0') {
        comma = strchr(p, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        rc = extended_one(s, p, exit_code);
        p = comma != NULL ? comma + 1 : p + strlen(p);
    }
    free(copy);
    return rc;
}

int
settings_ext_check(struct settings *s, int *exit_code)
{
    struct settings_mc *mc = &s->mc;
    uint64_t item = s->item_size_max;

    if (mc->napi_ids > (int)s->threads) {
        return refuse(exit_code, EX_USAGE,
                      "Number of napi_ids(%d) cannot be greater than number "
                      "of threads(%u)",
                      mc->napi_ids, s->threads);
    }
    if (item < 1024) {
        return refuse(exit_code, EX_USAGE,
                      "Item max size cannot be less than 1024 bytes.");
    }
    if (item > s->maxbytes / 2) {
        return refuse(exit_code, EX_USAGE,
                      "Cannot set item size limit higher than 1/2 of memory "
                      "max.");
    }
    if (item > 1024ull * 1024 * 1024) {
        return refuse(exit_code, EX_USAGE,
                      "Cannot set item size limit higher than a gigabyte.");
    }
    if (item > 1024 * 1024 && !mc->slab_chunk_changed) {
        mc->slab_chunk_max = SLAB_PAGE_SIZE / 2;
    }
    if ((uint64_t)mc->slab_chunk_max > item) {
        return refuse(exit_code, EX_USAGE,
                      "slab_chunk_max (bytes: %d) cannot be larger than -I "
                      "(item_size_max %u)",
                      mc->slab_chunk_max, s->item_size_max);
    }
    if (item % (uint64_t)mc->slab_chunk_max != 0) {
        return refuse(exit_code, EX_USAGE,
                      "-I (item_size_max: %u) must be evenly divisible by "
                      "slab_chunk_max (bytes: %d)",
                      s->item_size_max, mc->slab_chunk_max);
    }
    if (SLAB_PAGE_SIZE % mc->slab_chunk_max != 0) {
        return refuse(exit_code, EX_USAGE,
                      "slab_chunk_max (bytes: %d) must divide evenly into %d "
                      "(slab_page_size)",
                      mc->slab_chunk_max, SLAB_PAGE_SIZE);
    }
    if (mc->hot_lru_pct + mc->warm_lru_pct > 80) {
        return refuse(exit_code, EX_USAGE,
                      "hot_lru_pct + warm_lru_pct cannot be more than 80%% "
                      "combined");
    }
    if (mc->temp_lru && !mc->lru_maintainer) {
        return refuse(exit_code, EX_USAGE,
                      "temporary_ttl requires lru_maintainer to be enabled");
    }
    return 0;
}

unsigned
settings_ext_classes(const struct settings_mc *mc,
                     uint32_t sizes[SETTINGS_MAX_CLASSES + 1])
{
    unsigned size = ITEM_HEADER + mc->chunk_size;
    unsigned i = 0;

    while (++i < SETTINGS_MAX_CLASSES - 1) {
        if (size >= mc->slab_chunk_max / mc->factor) {
            break;
        }
        if (size % 8) {
            size += 8 - size % 8;
        }
        sizes[i] = size;
        size = (unsigned)(size * mc->factor);
    }
    sizes[i] = (uint32_t)mc->slab_chunk_max;
    return i;
}
