/* repl.c - replication setup, the state file, promotion and `stats
 * replication` (see repl.h). The state file DIR/replication holds this
 * store's id as a primary, the id of the primary it copies and, per shard,
 * the position in that primary's log up to which it has applied records;
 * it is replaced atomically (temp, fdatasync, rename, fsync dir) after the
 * store is synced, so a position never runs ahead of durable data. Format
 * in storage/REPLICATION.md. */
#define _GNU_SOURCE /* pthread_cond_clockwait */
#include "server/repl.h"

#include "server/log.h"
#include "server/repl_int.h"
#include "server/repl_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define STATE_NAME    "replication"
#define STATE_TAG     "bitcached-replication"
#define STATE_VERSION 1u
#define STATE_MAGIC   "bitcached-replication 1\n"

static uint64_t
new_id(void)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
            id = repl_wall_ms() ^ ((uint64_t)getpid() << 40);
        }
    }
    return id;
}

static int
sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

int
repl_state_save(struct repl *r)
{
    const char *dir = cask_dir(r->store);
    char path[4096], tmp[4200];
    size_t cap = 256 + (size_t)r->nshards * 48, len = 0;
    char *b = malloc(cap);
    if (b == NULL) {
        return ENOMEM;
    }
    int rc = cask_sync(r->store);
    if (rc != 0) {
        /* Positions never run ahead of durable data: not written. (EIO
         * also reports a segment found cut short, once: the rest was
         * synced, and the caller's next save gets through.) */
        log_msg(LOG_ERR,
                "replication: sync the store before writing %s/%s: %s; "
                "positions not saved",
                dir, STATE_NAME, cask_strerror(rc));
        free(b);
        return rc > 0 ? rc : EIO;
    }
    pthread_mutex_lock(&r->state_mu);
    len += (size_t)snprintf(b + len, cap - len,
                            STATE_MAGIC "store_id %016" PRIx64
                                        "\nprimary_id %016" PRIx64 "\n",
                            r->store_id, r->primary_id);
    for (unsigned i = 0; i < r->nshards; i++) {
        if (r->pos[i].seg != 0) {
            len += (size_t)snprintf(b + len, cap - len,
                                    "pos %u %" PRIu32 " %" PRIu64 "\n", i,
                                    r->pos[i].seg, r->pos[i].off);
        }
    }
    pthread_mutex_unlock(&r->state_mu);
    len += (size_t)snprintf(b + len, cap - len, "checksum %016" PRIx64 "\n",
                            (uint64_t)XXH3_64bits(b, len));
    snprintf(path, sizeof(path), "%s/%s", dir, STATE_NAME);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = errno;
        goto out;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, b + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            rc = errno;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fdatasync(fd) != 0) {
        rc = errno;
    }
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = errno;
    }
    if (rc == 0) {
        rc = sync_dir(dir);
    } else {
        (void)unlink(tmp);
    }
out:
    if (rc != 0) {
        log_msg(LOG_ERR, "replication: write %s/%s: %s", dir, STATE_NAME,
                strerror(rc));
    }
    free(b);
    return rc;
}

/* Read DIR/replication into r. A missing or damaged file leaves r empty
 * (a damaged one is logged: the replica then copies everything again).
 * Returns 0, or -1 (printed) for a file a newer bitcached wrote: its first
 * line names a version above STATE_VERSION and its checksum line (which
 * every later version keeps, REPLICATION.md) is good. That is not damage
 * to write over. */
static int
state_load(struct repl *r)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", cask_dir(r->store), STATE_NAME);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }
    char *b = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&b, &cap, '\0', f);
    fclose(f);
    if (n <= 0) {
        free(b);
        return 0;
    }
    const char *cs = strstr(b, "checksum ");
    uint64_t want;
    unsigned version = 0;
    bool sum = cs != NULL && sscanf(cs, "checksum %" SCNx64, &want) == 1 &&
               want == XXH3_64bits(b, (size_t)(cs - b));
    if (sum && sscanf(b, STATE_TAG " %u\n", &version) == 1 &&
        version > STATE_VERSION) {
        fprintf(stderr,
                "bitcached: %s was written by a newer bitcached (replication "
                "state format %u; this build reads up to %u); not starting, "
                "the file is left as it is\n",
                path, version, STATE_VERSION);
        free(b);
        return -1;
    }
    bool ok = sum && strncmp(b, STATE_MAGIC, strlen(STATE_MAGIC)) == 0;
    if (!ok) {
        log_msg(LOG_WARN,
                "replication: %s is damaged; ignored (a replica copies "
                "everything again)",
                path);
        free(b);
        return 0;
    }
    for (char *line = b; line < cs;) {
        char *nl = strchr(line, '\n');
        unsigned sh;
        uint32_t seg;
        uint64_t off, id;
        if (sscanf(line, "store_id %" SCNx64, &id) == 1) {
            r->store_id = id;
        } else if (sscanf(line, "primary_id %" SCNx64, &id) == 1) {
            r->primary_id = id;
        } else if (sscanf(line, "pos %u %" SCNu32 " %" SCNu64, &sh, &seg,
                          &off) == 3 &&
                   sh < r->nshards) {
            r->pos[sh].seg = seg;
            r->pos[sh].off = off;
        }
        if (nl == NULL) {
            break;
        }
        line = nl + 1;
    }
    free(b);
    return 0;
}

/* The first line of path, "user:password", into r->auth_user/pass. */
static int
read_credentials(struct repl *r, const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "bitcached: --replica-auth: cannot read %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    char *colon = n > 0 ? strchr(line, ':') : NULL;
    if (colon == NULL || colon == line || strlen(line) > 512) {
        fprintf(stderr,
                "bitcached: --replica-auth: %s must start with a "
                "user:password line\n",
                path);
        free(line);
        return -1;
    }
    *colon = '\0';
    r->auth_user = strdup(line);
    r->auth_pass = strdup(colon + 1);
    explicit_bzero(line, cap);
    free(line);
    return r->auth_user != NULL && r->auth_pass != NULL ? 0 : -1;
}

/* Split "HOST:PORT" (or "[V6]:PORT"). */
static int
split_hostport(const char *s, char **host, char **port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0') {
        return -1;
    }
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    *host = strndup(h, hl);
    *port = strdup(colon + 1);
    return *host != NULL && *port != NULL ? 0 : -1;
}

int
repl_start(struct repl **out, struct cask *store, const struct repl_config *cfg)
{
    struct repl *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -1;
    }
    r->store = store;
    r->nshards = cask_shards(store);
    r->lfd = -1;
    pthread_mutex_init(&r->state_mu, NULL);
    pthread_mutex_init(&r->streams_mu, NULL);
    pthread_mutex_init(&r->ack_mu, NULL);
    pthread_cond_init(&r->ack_cv, NULL);
    r->min_acks = cfg->min_acks;
    r->ack_timeout_ms = cfg->ack_timeout_ms;
    r->pos = calloc(r->nshards, sizeof(*r->pos));
    r->applied_n = calloc(r->nshards, sizeof(*r->applied_n));
    r->primary_n = calloc(r->nshards, sizeof(*r->primary_n));
    r->n_known = calloc(r->nshards, sizeof(*r->n_known));
    *out = r;
    if (r->pos == NULL || r->applied_n == NULL || r->primary_n == NULL ||
        r->n_known == NULL) {
        return -1;
    }
    bool replica = cfg->replica_of != NULL && strcmp(cfg->replica_of, "none");
    if (state_load(r) != 0) {
        return REPL_START_NEWER;
    }
    if (!replica && cfg->repl_port == 0 && r->primary_id == 0) {
        return 0; /* no replication, and nothing to forget */
    }
    bool dirty = false;
    struct cask_stats st;
    bool have_st = cask_stats(store, -1, &st) == CASK_OK;
    if (cfg->repl_port != 0 && r->store_id != 0 && have_st &&
        st.bytes_truncated > 0) {
        /* Recovery cut a torn tail: the log may now go on differently
         * from what replicas received before (at an offset that happens to
         * start a record), so their positions must not be trusted. */
        log_msg(LOG_WARN, "replication: the log was cut at start-up; "
                          "replicas will be copied whole");
        r->store_id = 0;
    }
    if (replica && r->primary_id != 0 && have_st && st.state_lost) {
        /* The store lost its state file: its flush point went with it, so
         * everything copied so far now counts as flushed here. The
         * primary's threshold is the true one: forget the primary (on disk
         * before anything else) so that the handshake takes its threshold
         * as it is and copies every shard again. */
        log_msg(LOG_WARN, "replication: the store's state file was lost; "
                          "the primary will copy it whole");
        r->primary_id = 0;
        memset(r->pos, 0, r->nshards * sizeof(*r->pos));
        dirty = true;
    }
    if (!replica && r->primary_id != 0) {
        /* A former replica now taking writes: its history leaves the old
         * primary's here, so it is a new store to its own replicas. */
        r->primary_id = 0;
        memset(r->pos, 0, r->nshards * sizeof(*r->pos));
        r->store_id = 0;
    }
    if (r->store_id == 0) {
        r->store_id = new_id();
        dirty = true;
    }
    if (dirty && repl_state_save(r) != 0) {
        fprintf(stderr, "bitcached: cannot write the replication state in "
                        "the data directory\n");
        return -1;
    }
    if (cfg->auth_file != NULL) {
        r->auth_file = strdup(cfg->auth_file);
    }
    if (cfg->sasl_pwdb != NULL) {
        r->sasl_pwdb = strdup(cfg->sasl_pwdb);
    }
    if (replica && cfg->replica_auth != NULL &&
        read_credentials(r, cfg->replica_auth) != 0) {
        return -1;
    }
    if (replica) {
        if (split_hostport(cfg->replica_of, &r->host, &r->port) != 0) {
            fprintf(stderr,
                    "bitcached: --replica-of wants HOST:PORT or none, not "
                    "'%s'\n",
                    cfg->replica_of);
            return -1;
        }
        cask_set_read_only(store, true);
        atomic_store(&r->is_replica, true);
        if (repl_replica_start(r) != 0) {
            return -1;
        }
    }
    if (cfg->repl_port != 0 &&
        repl_primary_start(r, cfg->listen_addr, cfg->repl_port) != 0) {
        return -1;
    }
    return 0;
}

void
repl_stop(struct repl **rp)
{
    struct repl *r = *rp;
    if (r == NULL) {
        return;
    }
    atomic_store(&r->stopping, true);
    repl_replica_stop(r);
    repl_primary_stop(r);
    free(r->pos);
    free(r->applied_n);
    free(r->primary_n);
    free(r->n_known);
    free(r->host);
    free(r->port);
    free(r->auth_file);
    free(r->sasl_pwdb);
    if (r->auth_pass != NULL) {
        explicit_bzero(r->auth_pass, strlen(r->auth_pass));
    }
    free(r->auth_user);
    free(r->auth_pass);
    pthread_mutex_destroy(&r->state_mu);
    pthread_mutex_destroy(&r->streams_mu);
    pthread_mutex_destroy(&r->ack_mu);
    pthread_cond_destroy(&r->ack_cv);
    free(r);
    *rp = NULL;
}

int
repl_wait_acks(struct repl *r, unsigned shard, uint64_t appended)
{
    if (r == NULL || r->min_acks == 0 || atomic_load(&r->is_replica)) {
        return 0;
    }
    /* A monotonic deadline: a wall clock stepped back would stretch the
     * wait by the step. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += r->ack_timeout_ms / 1000;
    ts.tv_nsec += (long)(r->ack_timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&r->ack_mu);
    for (;;) {
        unsigned have = 0;
        pthread_mutex_lock(&r->streams_mu);
        for (struct repl_stream *s = r->streams; s != NULL; s = s->next) {
            if (s->counted && s->acked_n[shard] != UINT64_MAX &&
                s->acked_n[shard] >= appended) {
                have++;
            }
        }
        pthread_mutex_unlock(&r->streams_mu);
        if (have >= r->min_acks) {
            break;
        }
        if (pthread_cond_clockwait(&r->ack_cv, &r->ack_mu, CLOCK_MONOTONIC,
                                   &ts) != 0) {
            rc = CASK_ENOREPLICAS;
            atomic_fetch_add(&r->ack_timeouts, 1);
            break;
        }
    }
    pthread_mutex_unlock(&r->ack_mu);
    return rc;
}

int
repl_promote(struct repl *r, char *err, size_t cap)
{
    if (!atomic_load(&r->is_replica)) {
        return 0; /* already a primary: nothing to do */
    }
    repl_replica_stop(r);
    pthread_mutex_lock(&r->state_mu);
    r->primary_id = 0;
    memset(r->pos, 0, r->nshards * sizeof(*r->pos));
    r->store_id = new_id();
    pthread_mutex_unlock(&r->state_mu);
    int rc = repl_state_save(r);
    if (rc != 0) {
        /* Taking writes with the old primary's id on disk would let a
         * restart resume copying over them: stay read-only. */
        snprintf(err, cap, "cannot write the replication state: %s",
                 strerror(rc));
        return -1;
    }
    atomic_store(&r->is_replica, false);
    cask_set_read_only(r->store, false);
    log_msg(LOG_WARN,
            "replication: promoted to primary (store id %016" PRIx64 ")",
            r->store_id);
    return 0;
}

static void linef(void (*line)(void *, const char *, const char *), void *arg,
                  const char *name, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void
linef(void (*line)(void *, const char *, const char *), void *arg,
      const char *name, const char *fmt, ...)
{
    char v[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    line(arg, name, v);
}

void
repl_stats(struct repl *r,
           void (*line)(void *arg, const char *name, const char *value),
           void *arg)
{
    bool replica = atomic_load(&r->is_replica);
    line(arg, "role", replica ? "replica" : "primary");
    if (replica) {
        linef(line, arg, "primary", "%s:%s", r->host, r->port);
        linef(line, arg, "primary_connected", "%d",
              atomic_load(&r->connected) ? 1 : 0);
    }
    pthread_mutex_lock(&r->state_mu);
    linef(line, arg, "store_id", "%016" PRIx64, r->store_id);
    if (replica) {
        uint64_t lag = 0, applied = 0, known = 0;
        for (unsigned i = 0; i < r->nshards; i++) {
            if (r->n_known[i]) {
                known++;
                applied += r->applied_n[i];
                if (r->primary_n[i] > r->applied_n[i]) {
                    lag += r->primary_n[i] - r->applied_n[i];
                }
            }
        }
        uint64_t now = repl_wall_ms();
        linef(line, arg, "primary_store_id", "%016" PRIx64, r->primary_id);
        linef(line, arg, "shards_in_step", "%" PRIu64, known);
        linef(line, arg, "lag_records", "%" PRIu64, lag);
        if (r->hb_wall_ms == 0) {
            line(arg, "lag_seconds", "-1");
        } else {
            linef(line, arg, "lag_seconds", "%.3f",
                  now > r->hb_wall_ms ? (double)(now - r->hb_wall_ms) / 1e3
                                      : 0.0);
        }
        for (unsigned i = 0; i < r->nshards; i++) {
            char name[32];
            snprintf(name, sizeof(name), "shard%u:position", i);
            linef(line, arg, name, "%" PRIu32 ":%" PRIu64, r->pos[i].seg,
                  r->pos[i].off);
        }
        (void)applied;
    }
    pthread_mutex_unlock(&r->state_mu);
    if (replica) {
        linef(line, arg, "bytes_received", "%" PRIu64,
              atomic_load(&r->bytes_received));
        linef(line, arg, "records_applied", "%" PRIu64,
              atomic_load(&r->records_applied));
        linef(line, arg, "full_syncs", "%" PRIu64, atomic_load(&r->full_syncs));
        linef(line, arg, "reconnects", "%" PRIu64, atomic_load(&r->reconnects));
    }
    linef(line, arg, "connected_replicas", "%u", atomic_load(&r->replicas));
    linef(line, arg, "bytes_streamed", "%" PRIu64,
          atomic_load(&r->bytes_streamed));
    linef(line, arg, "records_streamed", "%" PRIu64,
          atomic_load(&r->records_streamed));
    linef(line, arg, "full_syncs_served", "%" PRIu64,
          atomic_load(&r->full_syncs_served));
    linef(line, arg, "records_appended", "%" PRIu64,
          cask_stream_appended(r->store, -1));
    linef(line, arg, "min_replicas_ack", "%u", r->min_acks);
    linef(line, arg, "replica_ack_timeouts", "%" PRIu64,
          atomic_load(&r->ack_timeouts));
    pthread_mutex_lock(&r->streams_mu);
    unsigned k = 0;
    for (struct repl_stream *s = r->streams; s != NULL; s = s->next) {
        char name[48];
        if (atomic_load(&s->done)) {
            continue;
        }
        snprintf(name, sizeof(name), "replica%u:addr", k);
        line(arg, name, s->addr);
        snprintf(name, sizeof(name), "replica%u:bytes", k);
        linef(line, arg, name, "%" PRIu64, atomic_load(&s->bytes));
        snprintf(name, sizeof(name), "replica%u:acked_records", k);
        linef(line, arg, name, "%" PRIu64, atomic_load(&s->acked));
        k++;
    }
    pthread_mutex_unlock(&r->streams_mu);
}
