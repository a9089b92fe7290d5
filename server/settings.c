/* settings.c - defaults, memcached-compatible command line, and the config
 * file (read through config.c) into struct settings. Prints usage and the
 * one-line errors for bad flags; touches no other server state. */
#include "server/settings.h"

#include "server/config.h"
#include "server/settings_ext.h"
#include <config.h> /* autoconf's, not server/config.h */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

enum {
    OPT_DATA_DIR = 1000,
    OPT_SHARDS,
    OPT_SYNC,
    OPT_SYNC_INTERVAL,
    OPT_SEGMENT_SIZE,
    OPT_JOURNAL_SIZE,
    OPT_DISK_LIMIT,
    OPT_COMPACT_RATIO,
    OPT_IDLE_TIMEOUT,
    OPT_CONFIG,
    OPT_LOG_FILE,
    OPT_WRITE_TIMEOUT,
    OPT_OUTPUT_BUDGET,
    OPT_INPUT_BUDGET,
    OPT_REPLICA_OF,
    OPT_REPL_PORT,
    OPT_REPLICA_AUTH,
    OPT_MIN_REPLICAS_ACK,
    OPT_REPLICA_ACK_TIMEOUT,
    OPT_IO_THREADS,
    OPT_IO_ENGINE,
    OPT_WRITE_MAP,
};

static const char short_opts[] =
        "p:l:t:c:I:U:s:a:P:du:vm:AhVR:B:SY:Z" SETTINGS_EXT_SHORT;

/* Exit code for the option error being reported (memcached exits 1 for
 * most bad values, 64 for others). */
static int fail_code = EX_USAGE;

static const struct option long_opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"conn-limit", required_argument, NULL, 'c'},
        {"max-item-size", required_argument, NULL, 'I'},
        {"udp-port", required_argument, NULL, 'U'},
        {"protocol", required_argument, NULL, 'B'},
        {"enable-sasl", no_argument, NULL, 'S'},
        {"auth-file", required_argument, NULL, 'Y'},
        {"enable-ssl", no_argument, NULL, 'Z'},
        {"unix-socket", required_argument, NULL, 's'},
        {"unix-mask", required_argument, NULL, 'a'},
        {"pidfile", required_argument, NULL, 'P'},
        {"daemon", no_argument, NULL, 'd'},
        {"user", required_argument, NULL, 'u'},
        {"verbose", no_argument, NULL, 'v'},
        {"memory-limit", required_argument, NULL, 'm'},
        {"enable-shutdown", no_argument, NULL, 'A'},
        {"disable-evictions", no_argument, NULL, 'M'},
        {"lock-memory", no_argument, NULL, 'k'},
        {"enable-coredumps", no_argument, NULL, 'r'},
        {"license", no_argument, NULL, 'i'},
        {"slab-growth-factor", required_argument, NULL, 'f'},
        {"slab-min-size", required_argument, NULL, 'n'},
        {"enable-largepages", no_argument, NULL, 'L'},
        {"disable-cas", no_argument, NULL, 'C'},
        {"listen-backlog", required_argument, NULL, 'b'},
        {"disable-flush-all", no_argument, NULL, 'F'},
        {"disable-dumping", no_argument, NULL, 'X'},
        {"disable-watch", no_argument, NULL, 'W'},
        {"memory-file", required_argument, NULL, 'e'},
        {"extended", required_argument, NULL, 'o'},
        {"napi-ids", required_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"shards", required_argument, NULL, OPT_SHARDS},
        {"sync", required_argument, NULL, OPT_SYNC},
        {"sync-interval-ms", required_argument, NULL, OPT_SYNC_INTERVAL},
        {"segment-size", required_argument, NULL, OPT_SEGMENT_SIZE},
        {"journal-size", required_argument, NULL, OPT_JOURNAL_SIZE},
        {"disk-limit", required_argument, NULL, OPT_DISK_LIMIT},
        {"compact-ratio", required_argument, NULL, OPT_COMPACT_RATIO},
        {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"log-file", required_argument, NULL, OPT_LOG_FILE},
        {"max-reqs-per-event", required_argument, NULL, 'R'},
        {"write-timeout", required_argument, NULL, OPT_WRITE_TIMEOUT},
        {"output-budget", required_argument, NULL, OPT_OUTPUT_BUDGET},
        {"input-budget", required_argument, NULL, OPT_INPUT_BUDGET},
        {"replica-of", required_argument, NULL, OPT_REPLICA_OF},
        {"repl-port", required_argument, NULL, OPT_REPL_PORT},
        {"io-threads", required_argument, NULL, OPT_IO_THREADS},
        {"io-engine", required_argument, NULL, OPT_IO_ENGINE},
        {"write-map", required_argument, NULL, OPT_WRITE_MAP},
        {"replica-auth", required_argument, NULL, OPT_REPLICA_AUTH},
        {"min-replicas-ack", required_argument, NULL, OPT_MIN_REPLICAS_ACK},
        {"replica-ack-timeout", required_argument, NULL,
         OPT_REPLICA_ACK_TIMEOUT},
        {NULL, 0, NULL, 0},
};

static void
usage(FILE *f)
{
    /* One line of help per line of source. */
    /* clang-format off */
    fprintf(f,
"Usage: bitcached [OPTION]...\n"
"A memcached-compatible caching server that keeps its data on disk.\n"
"\n"
"memcached's options:\n"
"  -p, --port=NUM            TCP port to listen on (default 11211; 0 = off)\n"
"  -l, --listen=ADDR[,ADDR]  interfaces to listen on (default 127.0.0.1)\n"
"  -t, --threads=NUM         worker threads (default 4)\n"
"  -c, --conn-limit=NUM      max simultaneous connections (default 1024)\n"
"  -I, --max-item-size=SIZE  largest value, k/m/g suffix (default 1m)\n"
"  -U, --udp-port=NUM        UDP port to listen on (default 0, off)\n"
"  -B, --protocol=PROTO      auto | ascii | binary (default auto)\n"
"  -S, --enable-sasl         require SASL PLAIN (binary protocol; users in\n"
"                            the file named by MEMCACHED_SASL_PWDB)\n"
"  -Y, --auth-file=FILE      text protocol clients must authenticate first\n"
"                            (user:password lines; see bitcached(1))\n"
"  -Z, --enable-ssl          TLS on every TCP listener (not notls:ADDR ones);\n"
"                            -o ssl_chain_cert=FILE,ssl_key=FILE,... (see\n"
"                            bitcached(1))\n"
"  -s, --unix-socket=PATH    listen on a unix socket instead of TCP\n"
"  -a, --unix-mask=MASK      unix socket permissions, octal (default 0700)\n"
"  -P, --pidfile=FILE        write the process id to FILE\n"
"  -d, --daemon              run in the background\n"
"  -u, --user=USER           drop privileges to USER when started as root\n"
"  -v, --verbose             more logging (-vv per connection, -vvv more)\n"
"  -m, --memory-limit=MB     memory for the index of keys (default 64); past\n"
"                            it the oldest segments are evicted\n"
"  -M, --disable-evictions   refuse new keys once -m is used up (SERVER_ERROR\n"
"                            out of memory storing object)\n"
"  -A, --enable-shutdown     allow the shutdown command\n"
"  -R, --max-reqs-per-event=NUM  requests served from one connection before\n"
"                            the next gets a turn (default 20)\n"
"  -C, --disable-cas         gets and mg answer cas 0; cas never matches\n"
"  -F, --disable-flush-all   refuse flush_all\n"
"  -X, --disable-dumping     refuse lru_crawler metadump, stats cachedump\n"
"  -W, --disable-watch       refuse watch\n"
"  -b, --listen-backlog=NUM  listen queue length (default 1024)\n"
"  -f, -n, -o slab_chunk_max size classes shown by stats items/slabs\n"
"  -D CHAR                   per-prefix stats (stats detail) on, keys split\n"
"                            at CHAR\n"
"  -o, --extended=OPT[,OPT]  memcached's extended options: idle_timeout,\n"
"                            ssl_*, slab_chunk_max and lru_crawler act,\n"
"                            the others are accepted and shown\n"
"  -k, -r, -L, -e, -N        accepted for memcached.conf compatibility; no\n"
"                            effect (see bitcached(1))\n"
"  -h, --help                this text\n"
"  -V, --version             print the version\n"
"\n"
"Storage options:\n"
"  --data-dir=DIR            data directory (default ./bitcached-data)\n"
"  --shards=NUM              shards (default 16; fixed at creation)\n"
"  --sync=MODE               always | interval | never (default interval)\n"
"  --sync-interval-ms=MS     sync period for --sync=interval (default 1000)\n"
"  --segment-size=SIZE       segment roll-over size (default 64m)\n"
"  --journal-size=SIZE       each of the two --sync=always commit journal\n"
"                            files, when created (default 8m)\n"
"  --disk-limit=SIZE         bound on the data directory, kept by\n"
"                            evicting (default 0 = none)\n"
"  --compact-ratio=R         dead fraction that triggers compaction\n"
"                            (default 0.5)\n"
"  --idle-timeout=SECONDS    close idle clients (default 0 = never)\n"
"  --write-timeout=SECONDS   close a client that reads none of its pending\n"
"                            replies for this long (default 60; 0 = never)\n"
"  --output-budget=SIZE      replies queued on all connections together;\n"
"                            past it the largest queue is closed (default\n"
"                            256m; 0 = no budget)\n"
"  --input-budget=SIZE       values announced and still arriving, on all\n"
"                            connections together; past it a value is\n"
"                            refused (SERVER_ERROR out of memory storing\n"
"                            object) and dropped (default 64m; 0 = none)\n"
"  --io-threads=NUM          threads that read values not in the page\n"
"                            cache, so workers never wait for the disk\n"
"                            (default 16; 0 = workers read themselves)\n"
"  --io-engine=uring|threads how workers read values not in the page cache:\n"
"                            each through its own io_uring (default; the\n"
"                            threads when io_uring is refused), or on the\n"
"                            --io-threads\n"
"  --write-map=yes|no        copy small records into a shared mapping of\n"
"                            the segment being written instead of one\n"
"                            pwrite per pass (default yes; not under\n"
"                            --sync=always)\n"
"  --config=FILE             read options from FILE first, one per line\n"
"  --log-file=FILE           append the log to FILE instead of stderr\n"
"\n"
"Replication (storage/REPLICATION.md):\n"
"  --repl-port=PORT          accept replicas on PORT (first -l address)\n"
"  --replica-of=HOST:PORT    be a read-only replica of the primary whose\n"
"                            --repl-port that is; none = a primary\n"
"  --replica-auth=FILE       a replica logs in with FILE's first line,\n"
"                            user:password (a primary with -Y or -S\n"
"                            requires it)\n"
"  --min-replicas-ack=N      acknowledge a write only once N replicas have\n"
"                            it (default 0)\n"
"  --replica-ack-timeout=MS  else fail it with SERVER_ERROR after MS\n"
"                            (default 1000)\n");
    /* clang-format on */
}

static void
set_defaults(struct settings *s)
{
    memset(s, 0, sizeof(*s));
    s->port = 11211;
    s->threads = 4;
    s->io_threads = 16;
    s->io_engine = SETTINGS_IO_URING;
    s->write_map = true;
    s->maxconns = 1024;
    s->item_size_max = CASK_DEFAULT_VALUE_MAX;
    s->unix_mask = 0700;
    s->maxbytes = 64ull * 1024 * 1024;
    s->shards = CASK_DEFAULT_SHARDS;
    s->sync = CASK_SYNC_INTERVAL;
    s->sync_interval_ms = CASK_DEFAULT_SYNC_MS;
    s->segment_size = CASK_DEFAULT_SEGMENT;
    s->compact_ratio = CASK_DEFAULT_COMPACT;
    s->write_timeout_s = 60;
    s->replica_ack_timeout_ms = 1000;
    s->reqs_per_event = 20;
    s->output_budget = 256ull * 1024 * 1024;
    s->input_budget = 64ull * 1024 * 1024;
    settings_ext_defaults(&s->mc);
    tls_settings_defaults(&s->tls);
}

static int
bad_value(const char *flag, const char *arg, const char *why)
{
    fprintf(stderr, "bitcached: invalid value '%s' for %s: %s\n", arg, flag,
            why);
    return -1;
}

/* Unsigned decimal within [min, max]. */
static int
parse_uint(const char *flag, const char *arg, unsigned long long min,
           unsigned long long max, unsigned long long *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (arg[0] == '-' || arg[0] == '\0') {
        return bad_value(flag, arg, "expected a non-negative number");
    }
    v = strtoull(arg, &end, 10);
    if (errno != 0 || *end != '\0') {
        return bad_value(flag, arg, "expected a number");
    }
    if (v < min || v > max) {
        char why[96];
        snprintf(why, sizeof(why), "must be between %llu and %llu", min, max);
        return bad_value(flag, arg, why);
    }
    *out = v;
    return 0;
}

/* A size with an optional k/m/g suffix (binary units). unit multiplies a
 * bare number (1 for bytes, 1 MiB for -m). */
static int
parse_size(const char *flag, const char *arg, unsigned long long unit,
           unsigned long long min, unsigned long long max,
           unsigned long long *out)
{
    char *end;
    unsigned long long v, mul = unit;

    errno = 0;
    if (arg[0] == '-' || arg[0] == '\0') {
        return bad_value(flag, arg, "expected a size");
    }
    v = strtoull(arg, &end, 10);
    if (errno != 0 || end == arg) {
        return bad_value(flag, arg, "expected a size");
    }
    if (*end != '\0') {
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1024ull;
            break;
        case 'm':
        case 'M':
            mul = 1024ull * 1024;
            break;
        case 'g':
        case 'G':
            mul = 1024ull * 1024 * 1024;
            break;
        default:
            return bad_value(flag, arg, "unknown size suffix");
        }
        if (end[1] != '\0' &&
            !((end[1] == 'b' || end[1] == 'B') && end[2] == '\0')) {
            return bad_value(flag, arg, "unknown size suffix");
        }
    }
    if (v > ULLONG_MAX / mul) {
        return bad_value(flag, arg, "too large");
    }
    v *= mul;
    if (v < min || v > max) {
        char why[96];
        snprintf(why, sizeof(why), "must be between %llu and %llu bytes", min,
                 max);
        return bad_value(flag, arg, why);
    }
    *out = v;
    return 0;
}

static int
add_listen(struct settings *s, const char *arg)
{
    const char *p = arg;

    while (*p != '\0') {
        /* memcached splits at ',' and ';' */
        size_t n = strcspn(p, ",;");
        if (n == 0) {
            return bad_value("-l", arg, "empty address");
        }
        if (s->nlisten == SETTINGS_MAX_LISTEN) {
            return bad_value("-l", arg, "too many addresses");
        }
        s->listen[s->nlisten++] = strndup(p, n);
        p += n;
        if (*p == ',' || *p == ';') {
            p++;
        }
    }
    return 0;
}

/* -I as memcached reads it: a number with an optional k or m (either case)
 * as its last character; anything else after the digits is ignored. The
 * limits are checked once every option is read (settings_ext_check). */
static uint32_t
item_size_arg(const char *arg)
{
    size_t n = strlen(arg);
    long long v = atoll(arg);
    char unit = n > 0 ? arg[n - 1] : '\0';

    if (unit == 'k' || unit == 'K') {
        v *= 1024;
    } else if (unit == 'm' || unit == 'M') {
        v *= 1024 * 1024;
    }
    if (v < 0) {
        return 0;
    }
    return v > (long long)UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void
replace_str(char **dst, const char *src)
{
    free(*dst);
    *dst = strdup(src);
}

/* -B given (on the command line or in the config file): -S then insists on
 * binary instead of choosing it. */
static bool protocol_given;
/* -p given: without it, memcached's -U PORT moves TCP to PORT too. */
static bool port_given;

/* Apply one option. Returns 0, 1 for "exit 0 now", or -1 on error. */
static int
apply(struct settings *s, int opt, const char *arg, const char *flagname)
{
    unsigned long long v;
    char *end;

    switch (opt) {
    case 'p':
        if (strcmp(arg, "-1") == 0) {
            /* memcached's "any free port" (MEMCACHED_PORT_FILENAME says) */
            s->port = -1;
            port_given = true;
            return 0;
        }
        if (parse_uint("-p", arg, 0, UINT32_MAX, &v) < 0) {
            return -1;
        }
        if (v > 65535) {
            fprintf(stderr, "ERROR: Invalid port number %llu.\n", v);
            return -1;
        }
        s->port = (int)v;
        port_given = true;
        return 0;
    case 'l':
        return add_listen(s, arg);
    case 't':
        if (atoi(arg) <= 0) {
            fail_code = 1;
            fprintf(stderr, "Number of threads must be greater than 0\n");
            return -1;
        }
        if (parse_uint("-t", arg, 1, 256, &v) < 0) {
            return -1;
        }
        s->threads = (unsigned)v;
        return 0;
    case 'c':
        if (atoi(arg) <= 0) {
            fail_code = 1;
            fprintf(stderr, "Maximum connections must be greater than 0\n");
            return -1;
        }
        if (parse_uint("-c", arg, 1, 1000000, &v) < 0) {
            return -1;
        }
        s->maxconns = (unsigned)v;
        return 0;
    case 'I':
        s->item_size_max = item_size_arg(arg);
        return 0;
    case 'U':
        if (strcmp(arg, "-1") == 0) {
            s->udp_port = -1; /* any free port, as -p -1 */
            return 0;
        }
        if (parse_uint("-U", arg, 0, 65535, &v) < 0) {
            return -1;
        }
        s->udp_port = (int)v;
        return 0;
    case 'B':
        if (strcmp(arg, "auto") == 0) {
            s->protocol = SETTINGS_PROTO_AUTO;
        } else if (strcmp(arg, "ascii") == 0) {
            s->protocol = SETTINGS_PROTO_ASCII;
        } else if (strcmp(arg, "binary") == 0) {
            s->protocol = SETTINGS_PROTO_BINARY;
        } else {
            return bad_value("-B", arg, "expected auto, ascii or binary");
        }
        protocol_given = true;
        return 0;
    case 'S':
        s->sasl = true;
        return 0;
    case 'Y':
        replace_str(&s->auth_file, arg);
        return 0;
    case 'Z':
        s->tls.enabled = true;
        return 0;
    case 's':
        replace_str(&s->unix_socket, arg);
        return 0;
    case 'a':
        errno = 0;
        v = strtoull(arg, &end, 8);
        if (errno != 0 || *end != '\0' || arg[0] == '\0' || v > 0777) {
            return bad_value("-a", arg, "expected an octal mask like 0700");
        }
        s->unix_mask = (unsigned)v;
        return 0;
    case 'P':
        replace_str(&s->pidfile, arg);
        return 0;
    case 'd':
        s->daemonize = true;
        return 0;
    case 'u':
        replace_str(&s->user, arg);
        return 0;
    case 'v':
        s->verbose++;
        return 0;
    case 'm':
        if (parse_size("-m", arg, 1024ull * 1024, 0, 1ull << 50, &v) < 0) {
            return -1;
        }
        s->maxbytes = v;
        return 0;
    case 'A':
        s->enable_shutdown = true;
        return 0;
    case 'o':
        if (settings_ext_extended(s, arg, &fail_code) < 0) {
            return -1;
        }
        return 0;
    case 'h':
        usage(stdout);
        return 1;
    case 'V':
        printf("bitcached %s\n", PACKAGE_VERSION);
        return 1;
    case OPT_DATA_DIR:
        if (arg[0] == '\0') {
            return bad_value("--data-dir", arg, "empty path");
        }
        replace_str(&s->data_dir, arg);
        return 0;
    case OPT_SHARDS:
        if (parse_uint("--shards", arg, 1, 1024, &v) < 0) {
            return -1;
        }
        s->shards = (unsigned)v;
        return 0;
    case OPT_SYNC:
        if (strcmp(arg, "always") == 0) {
            s->sync = CASK_SYNC_ALWAYS;
        } else if (strcmp(arg, "interval") == 0) {
            s->sync = CASK_SYNC_INTERVAL;
        } else if (strcmp(arg, "never") == 0) {
            s->sync = CASK_SYNC_NEVER;
        } else {
            return bad_value("--sync", arg,
                             "expected always, interval or never");
        }
        return 0;
    case OPT_SYNC_INTERVAL:
        if (parse_uint("--sync-interval-ms", arg, 1, 3600000, &v) < 0) {
            return -1;
        }
        s->sync_interval_ms = (unsigned)v;
        return 0;
    case OPT_SEGMENT_SIZE:
        if (parse_size("--segment-size", arg, 1, 64 * 1024,
                       4ull * 1024 * 1024 * 1024 - 1, &v) < 0) {
            return -1;
        }
        s->segment_size = v;
        return 0;
    case OPT_JOURNAL_SIZE:
        if (parse_size("--journal-size", arg, 1, 64 * 1024, 1ull << 32, &v) <
            0) {
            return -1;
        }
        s->journal_size = v;
        return 0;
    case OPT_DISK_LIMIT:
        if (parse_size("--disk-limit", arg, 1, 0, 1ull << 60, &v) < 0) {
            return -1;
        }
        s->disk_limit = v;
        return 0;
    case OPT_COMPACT_RATIO: {
        double r;
        errno = 0;
        r = strtod(arg, &end);
        if (errno != 0 || *end != '\0' || arg[0] == '\0' || !(r > 0.0) ||
            r > 1.0) {
            return bad_value("--compact-ratio", arg,
                             "expected a number in (0, 1]");
        }
        s->compact_ratio = r;
        return 0;
    }
    case OPT_IDLE_TIMEOUT:
        if (parse_uint("--idle-timeout", arg, 0, 86400 * 365, &v) < 0) {
            return -1;
        }
        s->idle_timeout_s = (unsigned)v;
        return 0;
    case 'R':
        if (atoi(arg) == 0) {
            fail_code = 1; /* memcached's message and exit code */
            fprintf(stderr,
                    "Number of requests per event must be greater than 0\n");
            return -1;
        }
        if (parse_uint("-R", arg, 1, 1000000, &v) < 0) {
            return -1;
        }
        s->reqs_per_event = (unsigned)v;
        return 0;
    case OPT_WRITE_TIMEOUT:
        if (parse_uint("--write-timeout", arg, 0, 86400 * 365, &v) < 0) {
            return -1;
        }
        s->write_timeout_s = (unsigned)v;
        return 0;
    case OPT_OUTPUT_BUDGET:
        if (parse_size("--output-budget", arg, 1, 0, 1ull << 50, &v) < 0) {
            return -1;
        }
        s->output_budget = v;
        return 0;
    case OPT_INPUT_BUDGET:
        if (parse_size("--input-budget", arg, 1, 0, 1ull << 50, &v) < 0) {
            return -1;
        }
        s->input_budget = v;
        return 0;
    case OPT_CONFIG:
        replace_str(&s->config_file, arg);
        return 0;
    case OPT_LOG_FILE:
        if (arg[0] == '\0') {
            return bad_value("--log-file", arg, "empty path");
        }
        replace_str(&s->log_file, arg);
        return 0;
    case OPT_REPLICA_OF:
        if (strcmp(arg, "none") != 0 &&
            (strchr(arg, ':') == NULL || arg[0] == ':')) {
            return bad_value("--replica-of", arg, "want HOST:PORT or none");
        }
        replace_str(&s->replica_of, arg);
        return 0;
    case OPT_REPLICA_AUTH:
        if (arg[0] == '\0') {
            return bad_value("--replica-auth", arg, "empty path");
        }
        replace_str(&s->replica_auth, arg);
        return 0;
    case OPT_MIN_REPLICAS_ACK:
        if (parse_uint("--min-replicas-ack", arg, 0, 64, &v) < 0) {
            return -1;
        }
        s->min_replicas_ack = (unsigned)v;
        return 0;
    case OPT_REPLICA_ACK_TIMEOUT:
        if (parse_uint("--replica-ack-timeout", arg, 1, 3600000, &v) < 0) {
            return -1;
        }
        s->replica_ack_timeout_ms = (unsigned)v;
        return 0;
    case OPT_IO_THREADS:
        if (parse_uint("--io-threads", arg, 0, 1024, &v) < 0) {
            return -1;
        }
        s->io_threads = (unsigned)v;
        return 0;
    case OPT_IO_ENGINE:
        if (strcmp(arg, "uring") == 0) {
            s->io_engine = SETTINGS_IO_URING;
        } else if (strcmp(arg, "threads") == 0) {
            s->io_engine = SETTINGS_IO_THREADS;
        } else {
            return bad_value("--io-engine", arg, "expected uring or threads");
        }
        return 0;
    case OPT_WRITE_MAP:
        if (strcmp(arg, "yes") == 0) {
            s->write_map = true;
        } else if (strcmp(arg, "no") == 0) {
            s->write_map = false;
        } else {
            return bad_value("--write-map", arg, "expected yes or no");
        }
        return 0;
    case OPT_REPL_PORT:
        if (parse_uint("--repl-port", arg, 1, 65535, &v) < 0) {
            return -1;
        }
        s->repl_port = (int)v;
        return 0;
    default:
        switch (settings_ext_apply(s, opt, arg, &fail_code)) {
        case 0:
            return 0;
        case 2:
            return 1;
        case -1:
            return -1;
        default:
            break;
        }
        fprintf(stderr,
                "bitcached: unknown or incomplete option '%s' "
                "(try --help)\n",
                flagname);
        return -1;
    }
}

/* Run getopt over one argument vector. from_config: reject --config (no
 * nesting) and name the file in errors. */
static int
parse_vector(struct settings *s, int argc, char **argv, bool from_config)
{
    int opt, idx;

    optind = 0; /* glibc: full re-initialisation between vectors */
    opterr = 0;
    for (;;) {
        int prev = optind ? optind : 1;
        idx = -1;
        opt = getopt_long(argc, argv, short_opts, long_opts, &idx);
        if (opt == -1) {
            break;
        }
        if (opt == '?' || opt == ':') {
            const char *name = prev < argc ? argv[prev] : "?";
            if (optopt != 0 && strchr(short_opts, optopt) != NULL) {
                fprintf(stderr, "bitcached: option -%c needs a value\n",
                        optopt);
            } else {
                fprintf(stderr,
                        "bitcached: unknown option '%s'%s (try --help)\n", name,
                        from_config ? " in the config file" : "");
            }
            return -1;
        }
        if (opt == OPT_CONFIG && from_config) {
            fprintf(stderr, "bitcached: --config is not allowed inside a "
                            "config file\n");
            return -1;
        }
        int rc = apply(s, opt, optarg, prev < argc ? argv[prev] : "?");
        if (rc != 0) {
            return rc;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bitcached: unexpected argument '%s' (try --help)\n",
                argv[optind]);
        return -1;
    }
    return 0;
}

/* Find --config on the command line before anything else is applied, so that
 * the file's options come first and the command line wins. */
static const char *
find_config(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strncmp(argv[i], "--config=", 9) == 0) {
            return argv[i] + 9;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            return argv[i + 1];
        }
    }
    return NULL;
}

/* memcached's -S rules: binary only (chosen when -B is not given), no UDP. */
static int
check_sasl(struct settings *s)
{
    if (!protocol_given) {
        s->protocol = SETTINGS_PROTO_BINARY;
    } else if (s->protocol != SETTINGS_PROTO_BINARY) {
        fprintf(stderr, "ERROR: You cannot allow the ASCII protocol while "
                        "using SASL.\n");
        return -1;
    }
    if (s->udp_port != 0) {
        fprintf(stderr, "ERROR: Cannot enable UDP while using binary SASL "
                        "authentication.\n");
        return -1;
    }
    return 0;
}

/* memcached's -Y rules: text only (chosen when -B is not given), no UDP.
 * With -S too, each protocol keeps its own check: text clients -Y, binary
 * clients SASL (memcached has no such combination). */
static int
check_auth_file(struct settings *s)
{
    if (s->sasl) {
        if (!protocol_given) {
            s->protocol = SETTINGS_PROTO_AUTO;
        }
    } else if (!protocol_given) {
        s->protocol = SETTINGS_PROTO_ASCII;
    } else if (s->protocol != SETTINGS_PROTO_ASCII) {
        fprintf(stderr, "ERROR: You cannot allow the BINARY protocol while "
                        "using ascii authentication tokens.\n");
        return -1;
    }
    if (s->udp_port != 0) {
        fprintf(stderr, "Cannot use UDP with ascii authentication enabled "
                        "(-U 0 to disable)\n");
        return -1;
    }
    return 0;
}

enum settings_action
settings_parse(struct settings *s, int argc, char **argv, int *exit_code)
{
    const char *cfg;
    int rc;

    set_defaults(s);
    protocol_given = false;
    port_given = false;
    *exit_code = 0;
    fail_code = EX_USAGE;
    cfg = find_config(argc, argv);
    if (cfg != NULL) {
        int cargc = 0;
        char **cargv = NULL;
        char err[512];
        int e = config_read(cfg, &cargc, &cargv, err, sizeof(err));
        if (e != 0) {
            fprintf(stderr, "bitcached: %s\n", err);
            *exit_code = e == ENOENT ? EX_NOINPUT : EX_USAGE;
            return SETTINGS_EXIT_ERR;
        }
        rc = parse_vector(s, cargc, cargv, true);
        config_free(&cargv);
        if (rc < 0) {
            *exit_code = fail_code;
            return SETTINGS_EXIT_ERR;
        }
        /* Addresses on the command line replace the file's, as any other
         * option does. */
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "-l") == 0 ||
                strncmp(argv[i], "--listen", 8) == 0 ||
                (strncmp(argv[i], "-l", 2) == 0 && argv[i][2] != '\0')) {
                for (unsigned j = 0; j < s->nlisten; j++) {
                    free(s->listen[j]);
                    s->listen[j] = NULL;
                }
                s->nlisten = 0;
                break;
            }
        }
    }
    rc = parse_vector(s, argc, argv, false);
    if (rc < 0) {
        *exit_code = fail_code;
        return SETTINGS_EXIT_ERR;
    }
    if (rc > 0) {
        return SETTINGS_EXIT_OK;
    }
    if (settings_ext_check(s, exit_code) < 0) {
        return SETTINGS_EXIT_ERR;
    }
    if (s->nlisten == 0) {
        s->listen[s->nlisten++] = strdup("127.0.0.1");
    }
    if (s->data_dir == NULL) {
        s->data_dir = strdup("./bitcached-data");
    }
    if (s->udp_port != 0 && !port_given) {
        s->port = s->udp_port;
    }
    if (s->sasl && check_sasl(s) < 0) {
        *exit_code = EX_USAGE;
        return SETTINGS_EXIT_ERR;
    }
    if (s->auth_file != NULL && check_auth_file(s) < 0) {
        *exit_code = EX_USAGE;
        return SETTINGS_EXIT_ERR;
    }
    if (s->port == 0 && s->unix_socket == NULL && s->udp_port == 0) {
        /* memcached starts all the same (its tests do this); say so */
        fprintf(stderr,
                "bitcached: nothing to listen on: -p 0, no -U, no -s\n");
    }
    return SETTINGS_RUN;
}

void
settings_deinit(struct settings *s)
{
    for (unsigned i = 0; i < s->nlisten; i++) {
        free(s->listen[i]);
    }
    free(s->unix_socket);
    free(s->pidfile);
    free(s->user);
    free(s->data_dir);
    free(s->config_file);
    free(s->log_file);
    free(s->replica_of);
    free(s->replica_auth);
    settings_ext_deinit(&s->mc);
    free(s->auth_file);
    tls_settings_deinit(&s->tls);
    memset(s, 0, sizeof(*s));
}

const char *
settings_sync_name(enum cask_sync sync)
{
    switch (sync) {
    case CASK_SYNC_ALWAYS:
        return "always";
    case CASK_SYNC_NEVER:
        return "never";
    default:
        return "interval";
    }
}

const char *
settings_proto_name(enum settings_proto proto)
{
    switch (proto) {
    case SETTINGS_PROTO_ASCII:
        return "ascii";
    case SETTINGS_PROTO_BINARY:
        return "binary";
    default:
        return "auto-negotiate";
    }
}
