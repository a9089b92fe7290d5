/* repl_replica.c - the replica side of replication: one thread that
 * connects to the primary's --repl-port (reconnecting with a doubling
 * back-off, 100 ms to 5 s), sends its per-shard positions, applies the
 * records it receives with cask_stream_apply (verbatim: same seq, cas and
 * expiry), wipes and refills a shard for a full copy, and saves its
 * positions in the state file (after syncing the store) once a second, and
 * whenever one moves on to another segment.
 * Owns its socket; the store is read-only to clients meanwhile. */
#include "server/log.h"
#include "server/repl_int.h"
#include "server/repl_wire.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define SAVE_MS        1000u
#define ACK_MS         250u
#define ACK_MIN_MS     5u
#define IDLE_MS        10000u /* no frame for this long: reconnect */

struct session {
    struct repl *r;
    int fd;
    char *buf;
    size_t cap;
    struct cask_pos *snap_pos; /* where each shard's copy continues */
    uint64_t *snap_n;
    bool dirty;
    /* a position moved to another segment since the last save: saved at
     * once, since the segment left behind may be compacted away */
    bool seg_moved;
    /* saves failed in a row: after the first, tried again at the next
     * frame (a heartbeat comes every REPL_HEARTBEAT_MS), not SAVE_MS after
     * the last good one; after more, every SAVE_MS (last_try) */
    unsigned save_fails;
    uint64_t last_save, last_ack, last_try;
};

static void
sleep_ms(struct repl *r, unsigned ms)
{
    while (ms > 0 && !atomic_load(&r->rstop)) {
        unsigned step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static int
dial(struct repl *r)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV},
                    *ai, *a;
    if (getaddrinfo(r->host, r->port, &hints, &ai) != 0) {
        return -1;
    }
    int fd = -1;
    for (a = ai; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* Apply the records in p[0..len) to shard; *count gets how many. */
static int
apply_run(struct session *s, unsigned shard, const char *p, size_t len,
          uint64_t *count)
{
    *count = 0;
    while (len > 0) {
        if (len < 44) {
            return EBADMSG;
        }
        /* the record's length from its header (storage/FORMAT.md) */
        size_t rl = 44 + (size_t)(unsigned char)p[40] + repl_get32(p + 32);
        if (rl > len) {
            return EBADMSG;
        }
        int rc = cask_stream_apply(s->r->store, shard, p, rl);
        if (rc != 0) {
            log_msg(LOG_ERR, "replication: applying a record of shard %u: %s",
                    shard, cask_strerror(rc));
            return rc;
        }
        p += rl;
        len -= rl;
        (*count)++;
    }
    atomic_fetch_add(&s->r->records_applied, *count);
    return 0;
}

/* Save the positions (repl_state_save: the store synced first). A failed
 * save leaves one owed (save_due): the store's sync reports a segment
 * found cut short once (EIO) and syncs the rest, so the next one
 * succeeds; a shard whose sync failed keeps refusing until its rewrite. */
static int
save(struct session *s)
{
    int rc = repl_state_save(s->r);
    if (rc == 0) {
        s->dirty = false;
        s->save_fails = 0;
        s->last_save = repl_mono_ms();
    } else {
        s->dirty = true;
        s->save_fails++;
        s->last_try = repl_mono_ms();
    }
    return rc;
}

/* Whether a save is due at this frame. */
static bool
save_due(const struct session *s, uint64_t now)
{
    if (!s->dirty) {
        return false;
    }
    if (s->seg_moved || s->save_fails == 1) {
        return true;
    }
    return now - (s->save_fails > 0 ? s->last_try : s->last_save) >= SAVE_MS;
}

/* A save the next step depends on (a new primary's positions forgotten, a
 * shard's position dropped before it is emptied): tried again at once when
 * it fails, since a failure that only reported a cut found by the store's
 * sync is not one the next sync repeats; a second failure ends the session
 * (the replica connects again). */
static int
save_now(struct session *s)
{
    int rc = save(s);
    return rc != 0 ? save(s) : 0;
}

static int
send_hello(struct session *s)
{
    struct repl *r = s->r;
    size_t ul = r->auth_user ? strlen(r->auth_user) : 0;
    size_t pl = r->auth_pass ? strlen(r->auth_pass) : 0;
    size_t fixed = 16 + 12 * (size_t)r->nshards;
    size_t len = fixed + (r->auth_user ? 4 + ul + pl : 0);
    char *b = malloc(len);
    if (b == NULL) {
        return ENOMEM;
    }
    repl_put32(b, REPL_VERSION);
    repl_put32(b + 4, r->nshards);
    pthread_mutex_lock(&r->state_mu);
    repl_put64(b + 8, r->primary_id);
    for (unsigned i = 0; i < r->nshards; i++) {
        repl_put32(b + 16 + 12 * i, r->pos[i].seg);
        repl_put64(b + 20 + 12 * i, r->pos[i].off);
    }
    pthread_mutex_unlock(&r->state_mu);
    if (r->auth_user != NULL) {
        char *p = b + fixed;
        p[0] = (char)(ul & 0xff);
        p[1] = (char)(ul >> 8);
        memcpy(p + 2, r->auth_user, ul);
        p += 2 + ul;
        p[0] = (char)(pl & 0xff);
        p[1] = (char)(pl >> 8);
        memcpy(p + 2, r->auth_pass, pl);
    }
    int rc = repl_send(s->fd, REPL_HELLO, 0, b, len, NULL, 0);
    explicit_bzero(b, len);
    free(b);
    return rc;
}

static int
welcome(struct session *s)
{
    struct repl *r = s->r;
    struct repl_frame f;
    int rc = repl_recv(s->fd, &f, &s->buf, &s->cap, &r->rstop, IDLE_MS,
                       REPL_FRAME_MAX);
    if (rc != 0) {
        return rc;
    }
    if (f.type == REPL_ERROR) {
        log_msg(LOG_ERR, "replication: primary %s:%s refuses: %.*s", r->host,
                r->port, (int)(f.len > 200 ? 200 : f.len), f.p);
        return EPROTO;
    }
    if (f.type != REPL_WELCOME || f.len < 32 ||
        repl_get32(f.p) != REPL_VERSION || repl_get32(f.p + 4) != r->nshards) {
        log_msg(LOG_ERR, "replication: primary %s:%s: bad handshake", r->host,
                r->port);
        return EPROTO;
    }
    uint64_t id = repl_get64(f.p + 8), flush_cas = repl_get64(f.p + 16);
    pthread_mutex_lock(&r->state_mu);
    bool other = id != r->primary_id;
    if (other) {
        /* Another primary (or the first): every shard is copied whole.
         * Forget the old positions on disk before anything is wiped. */
        r->primary_id = id;
        memset(r->pos, 0, r->nshards * sizeof(*r->pos));
        memset(r->n_known, 0, r->nshards * sizeof(*r->n_known));
    }
    pthread_mutex_unlock(&r->state_mu);
    if (other) {
        log_msg(LOG_WARN,
                "replication: primary %s:%s is store %016" PRIx64
                "; copying it whole",
                r->host, r->port, id);
        rc = save_now(s);
        if (rc != 0) {
            return rc;
        }
    }
    rc = cask_stream_set_flush(r->store, flush_cas, other);
    return rc;
}

static int
on_frame(struct session *s, const struct repl_frame *f)
{
    struct repl *r = s->r;
    unsigned sh = f->shard;
    uint64_t count;
    int rc;

    if ((f->type == REPL_RECORDS || f->type == REPL_SNAP_BEGIN ||
         f->type == REPL_SNAP_RECORDS || f->type == REPL_SNAP_END) &&
        sh >= r->nshards) {
        return EBADMSG;
    }
    switch (f->type) {
    case REPL_RECORDS:
        if (f->len < 12) {
            return EBADMSG;
        }
        rc = apply_run(s, sh, f->p + 12, f->len - 12, &count);
        if (rc != 0) {
            return rc;
        }
        pthread_mutex_lock(&r->state_mu);
        if (r->pos[sh].seg != repl_get32(f->p)) {
            s->seg_moved = true;
        }
        r->pos[sh].seg = repl_get32(f->p);
        r->pos[sh].off = repl_get64(f->p + 4) + (f->len - 12);
        r->applied_n[sh] += count;
        pthread_mutex_unlock(&r->state_mu);
        s->dirty = true;
        return 0;
    case REPL_SNAP_BEGIN:
        if (f->len < 28) {
            return EBADMSG;
        }
        s->snap_pos[sh].seg = repl_get32(f->p + 8);
        s->snap_pos[sh].off = repl_get64(f->p + 12);
        s->snap_n[sh] = repl_get64(f->p + 20);
        pthread_mutex_lock(&r->state_mu);
        r->pos[sh].seg = 0;
        r->pos[sh].off = 0;
        r->n_known[sh] = false;
        pthread_mutex_unlock(&r->state_mu);
        /* The shard has no position on disk before it is emptied. */
        rc = save_now(s);
        if (rc == 0) {
            rc = cask_stream_wipe(r->store, sh);
        }
        if (rc != 0) {
            log_msg(LOG_ERR, "replication: emptying shard %u: %s", sh,
                    cask_strerror(rc));
        }
        log_msg(LOG_INFO,
                "replication: full copy of shard %u (%" PRIu64 " items)", sh,
                repl_get64(f->p));
        return rc;
    case REPL_SNAP_RECORDS:
        return apply_run(s, sh, f->p, f->len, &count);
    case REPL_SNAP_END:
        pthread_mutex_lock(&r->state_mu);
        r->pos[sh] = s->snap_pos[sh];
        r->applied_n[sh] = s->snap_n[sh];
        r->n_known[sh] = true;
        pthread_mutex_unlock(&r->state_mu);
        atomic_fetch_add(&r->full_syncs, 1);
        /* A failure leaves the save owed (the next frame's): until then
         * the shard's position on disk is none, so a restart would copy
         * it whole again, which is safe; the stream goes on. */
        (void)save(s);
        return 0;
    case REPL_FLUSH:
        if (f->len < 8) {
            return EBADMSG;
        }
        return cask_stream_set_flush(r->store, repl_get64(f->p), false);
    case REPL_HEARTBEAT:
        if (f->len != 8 + 16 * (size_t)r->nshards) {
            return EBADMSG;
        }
        pthread_mutex_lock(&r->state_mu);
        r->hb_wall_ms = repl_get64(f->p);
        for (unsigned i = 0; i < r->nshards; i++) {
            uint64_t sent = repl_get64(f->p + 16 + 16 * i);
            r->primary_n[i] = repl_get64(f->p + 8 + 16 * i);
            if (sent != UINT64_MAX) {
                /* Everything sent before the heartbeat is applied. */
                r->applied_n[i] = sent;
                r->n_known[i] = true;
            }
        }
        pthread_mutex_unlock(&r->state_mu);
        return 0;
    case REPL_ERROR:
        log_msg(LOG_ERR, "replication: primary says: %.*s",
                (int)(f->len > 200 ? 200 : f->len), f->p);
        return EPROTO;
    default:
        return 0; /* unknown frames of a later minor change are skipped */
    }
}

/* ACK: the records applied, in total and per shard (UINT64_MAX for a
 * shard whose count is not known yet). */
static int
send_ack(struct session *s)
{
    struct repl *r = s->r;
    size_t len = 8 + 8 * (size_t)r->nshards;
    char *b = malloc(len);
    uint64_t n = 0;
    if (b == NULL) {
        return ENOMEM;
    }
    pthread_mutex_lock(&r->state_mu);
    for (unsigned i = 0; i < r->nshards; i++) {
        if (r->n_known[i]) {
            n += r->applied_n[i];
        }
        repl_put64(b + 8 + 8 * i, r->n_known[i] ? r->applied_n[i] : UINT64_MAX);
    }
    pthread_mutex_unlock(&r->state_mu);
    repl_put64(b, n);
    s->last_ack = repl_mono_ms();
    int rc = repl_send(s->fd, REPL_ACK, 0, b, len, NULL, 0);
    free(b);
    return rc;
}

/* Whether more of the stream is waiting in the socket. */
static bool
pending(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* One connection: handshake, then frames until it ends. *streamed is set
 * once the handshake passed (the back-off starts over). */
static int
session(struct session *s, bool *streamed)
{
    struct repl *r = s->r;
    int rc = send_hello(s);
    if (rc == 0) {
        rc = welcome(s);
    }
    if (rc != 0) {
        return rc;
    }
    *streamed = true;
    atomic_store(&r->connected, true);
    log_msg(LOG_INFO, "replication: streaming from %s:%s", r->host, r->port);
    while (!atomic_load(&r->rstop)) {
        struct repl_frame f;
        rc = repl_recv(s->fd, &f, &s->buf, &s->cap, &r->rstop, IDLE_MS,
                       REPL_FRAME_MAX);
        if (rc != 0) {
            break;
        }
        atomic_fetch_add(&r->bytes_received,
                         REPL_FRAME_HDR + f.len + REPL_FRAME_SUM);
        rc = on_frame(s, &f);
        if (rc != 0) {
            break;
        }
        uint64_t now = repl_mono_ms();
        if (save_due(s, now)) {
            s->seg_moved = false;
            (void)save(s);
        }
        /* Ack as soon as the stream pauses (a primary with
         * --min-replicas-ack waits for it), and at least every ACK_MS
         * (ACK_MIN_MS while records keep coming). */
        bool applied = f.type == REPL_RECORDS || f.type == REPL_SNAP_END ||
                       f.type == REPL_HEARTBEAT;
        if (now - s->last_ack >= ACK_MS ||
            (applied && (now - s->last_ack >= ACK_MIN_MS || !pending(s->fd)))) {
            rc = send_ack(s);
            if (rc != 0) {
                break;
            }
        }
    }
    atomic_store(&r->connected, false);
    return rc;
}

static void *
replica_main(void *arg)
{
    struct repl *r = arg;
    struct session s = {.r = r, .fd = -1};
    unsigned backoff = BACKOFF_MIN_MS;
    bool logged = false;

    s.snap_pos = calloc(r->nshards, sizeof(*s.snap_pos));
    s.snap_n = calloc(r->nshards, sizeof(*s.snap_n));
    if (s.snap_pos == NULL || s.snap_n == NULL) {
        log_msg(LOG_ERR, "replication: out of memory");
        goto out;
    }
    while (!atomic_load(&r->rstop)) {
        s.fd = dial(r);
        if (s.fd < 0) {
            if (!logged) {
                log_msg(LOG_WARN,
                        "replication: cannot reach primary %s:%s: %s; "
                        "retrying",
                        r->host, r->port, strerror(errno));
                logged = true;
            }
        } else {
            bool streamed = false;
            repl_sock_timeouts(s.fd, 200, 10000);
            int rc = session(&s, &streamed);
            close(s.fd);
            s.fd = -1;
            if (s.dirty) {
                (void)save(&s);
            }
            if (streamed) {
                backoff = BACKOFF_MIN_MS;
                logged = false;
            }
            if (atomic_load(&r->rstop)) {
                break;
            }
            log_msg(LOG_WARN, "replication: lost primary %s:%s (%s)", r->host,
                    r->port, rc > 0 ? strerror(rc) : cask_strerror(rc));
        }
        atomic_fetch_add(&r->reconnects, 1);
        sleep_ms(r, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
out:
    free(s.snap_pos);
    free(s.snap_n);
    free(s.buf);
    return NULL;
}

int
repl_replica_start(struct repl *r)
{
    atomic_store(&r->rstop, false);
    if (pthread_create(&r->replica_thr, NULL, replica_main, r) != 0) {
        return -1;
    }
    r->replica_on = true;
    return 0;
}

void
repl_replica_stop(struct repl *r)
{
    atomic_store(&r->rstop, true);
    if (r->replica_on) {
        pthread_join(r->replica_thr, NULL);
        r->replica_on = false;
    }
}
