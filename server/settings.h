/* settings.h - the server's configuration: defaults, command line and config
 * file parsing into one struct. Owns nothing at run time; main() fills one
 * struct settings and everything else reads it. */
#ifndef BITCACHED_SETTINGS_H
#define BITCACHED_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/tls_settings.h"
#include "storage/cask.h"

#define SETTINGS_MAX_LISTEN 16

/* -B: which protocols a connection may speak. */
enum settings_proto {
    SETTINGS_PROTO_AUTO = 0, /* from each connection's first byte */
    SETTINGS_PROTO_ASCII,
    SETTINGS_PROTO_BINARY,
};

/* memcached's flags beyond the common ones, and its -o extended options
 * (settings_ext.c). Those with an effect here say so; the rest are kept only
 * to be shown in `stats settings`, as memcached shows them. */
struct settings_mc {
    bool cas_disabled;       /* -C: gets answers cas 0, cas never matches */
    bool flush_disabled;     /* -F: flush_all refused */
    bool dump_disabled;      /* -X: metadump and cachedump refused */
    bool watch_disabled;     /* -W: watch refused */
    bool detail_enabled;     /* -D given: per-prefix stats from the start */
    char prefix_delimiter;   /* -D, default ':' */
    int backlog;             /* -b: listen(2) backlog */
    double factor;           /* -f: size-class growth factor (stats items) */
    unsigned chunk_size;     /* -n: smallest size class is 48 + this */
    int slab_chunk_max;      /* -o slab_chunk_max: largest size class */
    bool slab_chunk_changed; /* given explicitly */
    bool evictions_off;      /* -M: new keys past -m are refused */
    bool lock_memory;        /* -k (no effect) */
    bool large_pages;        /* -L (no effect) */
    bool coredumps;          /* -r (no effect) */
    char *memory_file;       /* -e (no effect) */
    int napi_ids;            /* -N (no effect) */
    /* -o, without effect unless noted */
    bool maxconns_fast;
    int hashpower_init;
    bool hashexpand;
    bool slab_reassign;
    int slab_automove;
    double slab_automove_ratio;
    unsigned slab_automove_window;
    int tail_repair_time;
    char hash_algorithm[8];
    bool lru_crawler;
    int lru_crawler_sleep;
    unsigned long lru_crawler_tocrawl;
    bool lru_maintainer;
    bool lru_segmented;
    int hot_lru_pct;
    int warm_lru_pct;
    double hot_max_factor;
    double warm_max_factor;
    bool temp_lru;
    unsigned temporary_ttl;
    unsigned watcher_logbuf_size; /* bytes */
    unsigned worker_logbuf_size;  /* bytes */
    unsigned read_buf_mem_limit;  /* bytes */
    bool track_sizes;
    bool drop_privileges;
    bool relaxed_privileges; /* accepted, no effect (memcached-debug) */
};

/* --io-engine: where reads of values not in the page cache run. */
enum settings_io_engine {
    SETTINGS_IO_URING = 0, /* each worker's io_uring; the threads where
                            * io_uring is refused */
    SETTINGS_IO_THREADS,   /* the --io-threads pool */
};

struct settings {
    int port;                          /* -p; 0 = no TCP */
    char *listen[SETTINGS_MAX_LISTEN]; /* -l, split at commas */
    unsigned nlisten;
    unsigned threads;    /* -t */
    unsigned io_threads; /* --io-threads: cold value reads; 0 none */
    /* --io-engine */
    enum settings_io_engine io_engine;
    bool write_map;            /* --write-map */
    unsigned maxconns;         /* -c */
    uint32_t item_size_max;    /* -I */
    int udp_port;              /* -U; 0 = no UDP */
    char *unix_socket;         /* -s */
    unsigned unix_mask;        /* -a */
    char *pidfile;             /* -P */
    bool daemonize;            /* -d */
    char *user;                /* -u */
    int verbose;               /* -v count */
    uint64_t maxbytes;         /* -m, in bytes; enforced with -M only */
    bool enable_shutdown;      /* -A */
    char *data_dir;            /* --data-dir */
    unsigned shards;           /* --shards */
    enum cask_sync sync;       /* --sync */
    unsigned sync_interval_ms; /* --sync-interval-ms */
    uint64_t segment_size;     /* --segment-size */
    uint64_t journal_size;     /* --journal-size; 0 = the store's */
    uint64_t disk_limit;       /* --disk-limit, bytes; 0 = none */
    double compact_ratio;      /* --compact-ratio */
    unsigned idle_timeout_s;   /* --idle-timeout; 0 = never */
    unsigned write_timeout_s;  /* --write-timeout; 0 = never */
    unsigned reqs_per_event;   /* -R */
    uint64_t output_budget;    /* --output-budget, bytes; 0 = none */
    uint64_t input_budget;     /* --input-budget, bytes; 0 = none */
    char *config_file;         /* --config */
    char *log_file;            /* --log-file: the log goes here */
    char *replica_of;          /* --replica-of HOST:PORT, "none" or NULL */
    int repl_port;             /* --repl-port; 0 = no replicas */
    char *replica_auth;        /* --replica-auth FILE (user:password) */
    unsigned min_replicas_ack; /* --min-replicas-ack; 0 = none */
    unsigned replica_ack_timeout_ms; /* --replica-ack-timeout */

    /* Binary protocol and SASL */
    enum settings_proto protocol; /* -B */
    bool sasl;                    /* -S */
    struct settings_mc mc;        /* memcached's remaining flags and -o */

    /* Text-protocol authentication and TLS */
    char *auth_file;         /* -Y: user:password lines */
    struct tls_settings tls; /* -Z and -o ssl_* */
};

/* What settings_parse decided. */
enum settings_action {
    SETTINGS_RUN = 0,
    SETTINGS_EXIT_OK,  /* --help or --version printed */
    SETTINGS_EXIT_ERR, /* error printed to stderr; exit with *exit_code */
};

/* Fill s with defaults, read --config FILE (if given on the command line),
 * then apply the command line on top. Errors are one line on stderr naming
 * the flag; *exit_code is a sysexits.h code. Strings in s are malloc'd. */
enum settings_action settings_parse(struct settings *s, int argc, char **argv,
                                    int *exit_code);
void settings_deinit(struct settings *s);

const char *settings_sync_name(enum cask_sync sync);
/* How memcached's stats settings shows -B: "auto-negotiate", "ascii" or
 * "binary". */
const char *settings_proto_name(enum settings_proto proto);

#endif
