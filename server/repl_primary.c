/* repl_primary.c - the primary side of replication: a listener thread on
 * --repl-port and one streamer thread per connected replica. A streamer
 * reads each shard's log from the replica's position (cask_stream_read:
 * pread, no shard mutex held for I/O), falls back to a full copy of a
 * shard (cask_snap_*) when the position is gone, and follows new appends by
 * sleeping in cask_stream_wait until one comes (or 50 ms pass, for
 * heartbeats). Workers never wait for it.
 * Owns the listening socket, the replica sockets and the streamers. */
#include <config.h> /* first: feature macros (accept4) */

#include "server/log.h"
#include "server/repl_int.h"
#include "server/repl_wire.h"
#include "server/sasl.h"

#include <arpa/inet.h>
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
#include <unistd.h>

struct streamer {
    struct repl_stream *st;
    struct repl *r;
    struct cask *c;
    unsigned n;
    struct cask_pos *pos;
    struct cask_segment **pin; /* keeps each position's segment open */
    bool *need_full;
    uint64_t *seen;   /* append count when the shard was last found idle */
    uint64_t *sent_n; /* records of the shard sent, UINT64_MAX unknown */
    uint32_t *told_seg;
    char *buf;
    size_t cap;
    char *rbuf;
    size_t rcap;
};

static int
send_counted(struct streamer *s, uint8_t type, uint16_t shard, const void *p1,
             size_t l1, const void *p2, size_t l2)
{
    int rc = repl_send(s->st->fd, type, shard, p1, l1, p2, l2);
    if (rc == 0) {
        uint64_t b = REPL_FRAME_HDR + l1 + l2 + REPL_FRAME_SUM;
        atomic_fetch_add(&s->st->bytes, b);
        atomic_fetch_add(&s->r->bytes_streamed, b);
    }
    return rc;
}

static void
send_error(int fd, const char *msg)
{
    (void)repl_send(fd, REPL_ERROR, 0, msg, strlen(msg), NULL, 0);
}

/* A full copy of shard i: the snapshot's items, then the log from the
 * snapshot's position. */
static int
full_copy(struct streamer *s, unsigned i)
{
    struct cask_snap *snap;
    struct cask_pos p;
    uint64_t n;
    char b[28];
    size_t len;

    int rc = cask_snap_create(&snap, s->c, i, &p, &n);
    if (rc != 0) {
        log_msg(LOG_ERR, "replication: %s: snapshot of shard %u: %s",
                s->st->addr, i, cask_strerror(rc));
        return rc;
    }
    repl_put64(b, cask_snap_count(snap));
    repl_put32(b + 8, p.seg);
    repl_put64(b + 12, p.off);
    repl_put64(b + 20, n);
    rc = send_counted(s, REPL_SNAP_BEGIN, (uint16_t)i, b, sizeof(b), NULL, 0);
    while (rc == 0) {
        rc = cask_snap_next(snap, REPL_CHUNK, &s->buf, &s->cap, &len);
        if (rc != 0) {
            log_msg(LOG_ERR, "replication: %s: reading shard %u: %s",
                    s->st->addr, i, cask_strerror(rc));
            break;
        }
        if (len == 0) {
            break;
        }
        rc = send_counted(s, REPL_SNAP_RECORDS, (uint16_t)i, s->buf, len, NULL,
                          0);
    }
    cask_snap_destroy(&snap);
    if (rc == 0) {
        rc = send_counted(s, REPL_SNAP_END, (uint16_t)i, NULL, 0, NULL, 0);
    }
    if (rc == 0) {
        s->pos[i] = p;
        s->sent_n[i] = n;
        s->need_full[i] = false;
        s->seen[i] = UINT64_MAX;
        s->told_seg[i] = p.seg;
        atomic_fetch_add(&s->r->full_syncs_served, 1);
        log_msg(LOG_INFO, "replication: %s: full copy of shard %u sent",
                s->st->addr, i);
    }
    return rc;
}

/* Send what shard i has past the replica's position. *progress is set when
 * something was sent. */
static int
pump(struct streamer *s, unsigned i, bool *progress)
{
    if (s->need_full[i]) {
        *progress = true;
        return full_copy(s, i);
    }
    uint64_t now_n = cask_stream_appended(s->c, (int)i);
    if (now_n == s->seen[i] && s->told_seg[i] == s->pos[i].seg) {
        return 0;
    }
    struct cask_pos at;
    size_t len, nrec;
    uint64_t end_n;
    int rc = cask_stream_read(s->c, i, &s->pos[i], &s->pin[i], REPL_CHUNK,
                              &s->buf, &s->cap, &len, &nrec, &at, &end_n);
    if (rc == CASK_ENOTFOUND || rc == CASK_ECORRUPT) {
        log_msg(LOG_INFO,
                "replication: %s: shard %u position %" PRIu32 ":%" PRIu64
                " %s; full copy",
                s->st->addr, i, s->pos[i].seg, s->pos[i].off,
                rc == CASK_ENOTFOUND ? "is no longer in the log"
                                     : "is not a valid record");
        s->need_full[i] = true;
        *progress = true;
        return 0;
    }
    if (rc != 0) {
        log_msg(LOG_ERR, "replication: %s: reading shard %u: %s", s->st->addr,
                i, cask_strerror(rc));
        return rc;
    }
    if (len == 0) {
        s->seen[i] = now_n;
        if (end_n != UINT64_MAX) {
            s->sent_n[i] = end_n;
        }
        if (s->told_seg[i] == at.seg) {
            return 0;
        }
    } else if (s->sent_n[i] != UINT64_MAX) {
        s->sent_n[i] += nrec;
    }
    char b[12];
    repl_put32(b, at.seg);
    repl_put64(b + 4, at.off);
    rc = send_counted(s, REPL_RECORDS, (uint16_t)i, b, sizeof(b), s->buf, len);
    if (rc == 0) {
        s->told_seg[i] = at.seg;
        atomic_fetch_add(&s->r->records_streamed, nrec);
        *progress = true;
    }
    return rc;
}

static int
heartbeat(struct streamer *s)
{
    size_t len = 8 + 16 * (size_t)s->n;
    char *b = malloc(len);
    if (b == NULL) {
        return ENOMEM;
    }
    repl_put64(b, repl_wall_ms());
    for (unsigned i = 0; i < s->n; i++) {
        repl_put64(b + 8 + 16 * i, cask_stream_appended(s->c, (int)i));
        repl_put64(b + 16 + 16 * i, s->sent_n[i]);
    }
    int rc = send_counted(s, REPL_HEARTBEAT, 0, b, len, NULL, 0);
    free(b);
    return rc;
}

/* The ack reader: one thread per replica reading its ACK frames (the
 * streamer only writes), so a writer waiting in repl_wait_acks hears of an
 * ack at once. Ends when the socket does. */
static void *
ack_main(void *arg)
{
    struct repl_stream *st = arg;
    struct repl *r = st->r;
    char *buf = NULL;
    size_t cap = 0;
    for (;;) {
        struct repl_frame f;
        int rc = repl_recv(st->fd, &f, &buf, &cap, &r->stopping, 0,
                           REPL_FROM_REPLICA_MAX);
        if (rc != 0) {
            break;
        }
        if (f.type == REPL_ACK && f.len == 8 + 8 * (size_t)r->nshards) {
            atomic_store(&st->acked, repl_get64(f.p));
            pthread_mutex_lock(&r->ack_mu);
            for (unsigned i = 0; i < r->nshards; i++) {
                st->acked_n[i] = repl_get64(f.p + 8 + 8 * i);
            }
            pthread_cond_broadcast(&r->ack_cv);
            pthread_mutex_unlock(&r->ack_mu);
        } else if (f.type == REPL_ERROR) {
            log_msg(LOG_WARN, "replication: %s: replica says: %.*s", st->addr,
                    (int)(f.len > 200 ? 200 : f.len), f.p);
            break;
        }
    }
    free(buf);
    atomic_store(&st->broken, true);
    return NULL;
}

/* Whether the credentials after HELLO's positions (u16 length, user, u16
 * length, password) name a user of the primary's -Y or -S file; true
 * when neither is set. */
static bool
logged_in(const struct repl *r, const char *p, size_t len)
{
    if (r->auth_file == NULL && r->sasl_pwdb == NULL) {
        return true;
    }
    if (len < 2) {
        return false;
    }
    size_t ul = (size_t)(unsigned char)p[0] | (size_t)(unsigned char)p[1] << 8;
    if (len < 4 + ul) {
        return false;
    }
    const char *user = p + 2, *q = p + 2 + ul;
    size_t pl = (size_t)(unsigned char)q[0] | (size_t)(unsigned char)q[1] << 8;
    if (len != 4 + ul + pl || ul == 0) {
        return false;
    }
    const char *pass = q + 2;
    return (r->auth_file != NULL &&
            sasl_authfile_check(r->auth_file, user, ul, pass, pl)) ||
           (r->sasl_pwdb != NULL &&
            sasl_pwdb_check(r->sasl_pwdb, user, ul, pass, pl));
}

static int
handshake(struct streamer *s)
{
    struct repl_frame f;
    int rc = repl_recv(s->st->fd, &f, &s->rbuf, &s->rcap, &s->r->stopping, 5000,
                       REPL_FROM_REPLICA_MAX);
    if (rc != 0) {
        return rc;
    }
    if (f.type != REPL_HELLO || f.len < 16 || repl_get32(f.p) != REPL_VERSION) {
        send_error(s->st->fd, "unsupported replication version");
        return EPROTO;
    }
    unsigned shards = repl_get32(f.p + 4);
    size_t fixed = 16 + 12 * (size_t)shards;
    if (shards != s->n || f.len < fixed) {
        char msg[96];
        snprintf(msg, sizeof(msg),
                 "shard count %u differs from the primary's %u", shards, s->n);
        send_error(s->st->fd, msg);
        return EPROTO;
    }
    if (!logged_in(s->r, f.p + fixed, f.len - fixed)) {
        log_msg(LOG_WARN, "replication: %s: authentication failed",
                s->st->addr);
        send_error(s->st->fd, "authentication failed");
        return EACCES;
    }
    pthread_mutex_lock(&s->r->state_mu);
    uint64_t id = s->r->store_id;
    pthread_mutex_unlock(&s->r->state_mu);
    bool same = repl_get64(f.p + 8) == id;
    for (unsigned i = 0; i < s->n; i++) {
        s->pos[i].seg = same ? repl_get32(f.p + 16 + 12 * i) : 0;
        s->pos[i].off = same ? repl_get64(f.p + 20 + 12 * i) : 0;
        s->need_full[i] = s->pos[i].seg == 0;
        s->seen[i] = UINT64_MAX;
        s->sent_n[i] = UINT64_MAX;
        s->told_seg[i] = s->pos[i].seg;
    }
    char b[32];
    repl_put32(b, REPL_VERSION);
    repl_put32(b + 4, s->n);
    repl_put64(b + 8, id);
    repl_put64(b + 16, cask_stream_flush_cas(s->c));
    repl_put64(b + 24, repl_wall_ms());
    return send_counted(s, REPL_WELCOME, 0, b, sizeof(b), NULL, 0);
}

static void *
stream_main(void *arg)
{
    struct repl_stream *st = arg;
    struct repl *r = st->r;
    struct streamer s = {.st = st, .r = r, .c = r->store, .n = r->nshards};
    s.pos = calloc(s.n, sizeof(*s.pos));
    s.pin = calloc(s.n, sizeof(*s.pin));
    s.need_full = calloc(s.n, sizeof(*s.need_full));
    s.seen = calloc(s.n, sizeof(*s.seen));
    s.sent_n = calloc(s.n, sizeof(*s.sent_n));
    s.told_seg = calloc(s.n, sizeof(*s.told_seg));
    int rc = ENOMEM;
    if (s.pos == NULL || s.pin == NULL || s.need_full == NULL ||
        s.seen == NULL || s.sent_n == NULL || s.told_seg == NULL) {
        goto out;
    }
    repl_sock_timeouts(st->fd, 100, 30000);
    rc = handshake(&s);
    if (rc != 0) {
        goto out;
    }
    st->acked_n = malloc(s.n * sizeof(*st->acked_n));
    if (st->acked_n == NULL) {
        rc = ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < s.n; i++) {
        st->acked_n[i] = UINT64_MAX;
    }
    if (pthread_create(&st->ack_thr, NULL, ack_main, st) != 0) {
        rc = EAGAIN;
        goto out;
    }
    st->ack_on = true;
    pthread_mutex_lock(&r->ack_mu);
    st->counted = true;
    pthread_mutex_unlock(&r->ack_mu);
    atomic_fetch_add(&r->replicas, 1);
    log_msg(LOG_INFO, "replication: replica %s connected", st->addr);
    uint64_t flush_sent = cask_stream_flush_cas(s.c), last_hb = 0;
    while (!atomic_load(&r->stopping)) {
        bool progress = false;
        uint64_t total = cask_stream_appended(s.c, -1);
        for (unsigned i = 0; i < s.n && rc == 0; i++) {
            rc = pump(&s, i, &progress);
        }
        if (rc != 0) {
            break;
        }
        uint64_t fc = cask_stream_flush_cas(s.c);
        if (fc != flush_sent) {
            char b[8];
            repl_put64(b, fc);
            rc = send_counted(&s, REPL_FLUSH, 0, b, sizeof(b), NULL, 0);
            if (rc != 0) {
                break;
            }
            flush_sent = fc;
        }
        uint64_t now = repl_mono_ms();
        if (now - last_hb >= REPL_HEARTBEAT_MS) {
            rc = heartbeat(&s);
            if (rc != 0) {
                break;
            }
            last_hb = now;
        }
        if (atomic_load(&st->broken)) {
            rc = EPIPE;
            break;
        }
        if (!progress) {
            /* Woken by the next append; the timeout keeps heartbeats,
             * flush thresholds and the stop flag going. */
            cask_stream_wait(s.c, total, REPL_HEARTBEAT_MS / 2);
        }
    }
    atomic_fetch_sub(&r->replicas, 1);
out:
    if (rc != 0 && rc != EPIPE && rc != ECANCELED) {
        log_msg(LOG_INFO, "replication: replica %s: %s", st->addr,
                rc > 0 ? strerror(rc) : cask_strerror(rc));
    }
    log_msg(LOG_INFO, "replication: replica %s gone", st->addr);
    pthread_mutex_lock(&r->ack_mu);
    st->counted = false;
    pthread_cond_broadcast(&r->ack_cv);
    pthread_mutex_unlock(&r->ack_mu);
    shutdown(st->fd, SHUT_RDWR); /* closed by reap(), after the join */
    if (st->ack_on) {
        pthread_join(st->ack_thr, NULL);
        st->ack_on = false;
    }
    for (unsigned i = 0; s.pin != NULL && i < s.n; i++) {
        cask_stream_unpin(s.c, i, &s.pin[i]);
    }
    free(s.pin);
    free(s.pos);
    free(s.need_full);
    free(s.seen);
    free(s.sent_n);
    free(s.told_seg);
    free(s.buf);
    free(s.rbuf);
    atomic_store(&st->done, true);
    return NULL;
}

/* Join and free the streamers that have finished (all with everything). */
static void
reap(struct repl *r, bool all)
{
    pthread_mutex_lock(&r->streams_mu);
    if (all) {
        /* Wake streamers blocked sending to a replica that does not read. */
        for (struct repl_stream *s = r->streams; s != NULL; s = s->next) {
            shutdown(s->fd, SHUT_RDWR);
        }
    }
    struct repl_stream **pp = &r->streams;
    while (*pp != NULL) {
        struct repl_stream *s = *pp;
        if (all || atomic_load(&s->done)) {
            *pp = s->next;
            pthread_mutex_unlock(&r->streams_mu);
            pthread_join(s->thr, NULL);
            close(s->fd);
            free(s->acked_n);
            free(s);
            pthread_mutex_lock(&r->streams_mu);
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&r->streams_mu);
}

static void *
accept_main(void *arg)
{
    struct repl *r = arg;
    while (!atomic_load(&r->stopping)) {
        struct pollfd p = {.fd = r->lfd, .events = POLLIN};
        reap(r, false);
        if (poll(&p, 1, 200) <= 0) {
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(r->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct repl_stream *st = calloc(1, sizeof(*st));
        if (st == NULL) {
            close(fd);
            continue;
        }
        st->r = r;
        st->fd = fd;
        char host[INET6_ADDRSTRLEN] = "?", serv[16] = "?";
        (void)getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
                          sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(st->addr, sizeof(st->addr), "%s:%s", host, serv);
        if (pthread_create(&st->thr, NULL, stream_main, st) != 0) {
            close(fd);
            free(st);
            continue;
        }
        pthread_mutex_lock(&r->streams_mu);
        st->next = r->streams;
        r->streams = st;
        pthread_mutex_unlock(&r->streams_mu);
    }
    return NULL;
}

int
repl_primary_start(struct repl *r, const char *addr, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    int rc = getaddrinfo(addr, ps, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "bitcached: --repl-port: %s: %s\n", addr,
                gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, 16) != 0) {
        fprintf(stderr, "bitcached: --repl-port %d on %s: %s\n", port, addr,
                strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    r->lfd = fd;
    if (pthread_create(&r->accept_thr, NULL, accept_main, r) != 0) {
        close(fd);
        r->lfd = -1;
        return -1;
    }
    r->accept_on = true;
    return 0;
}

void
repl_primary_stop(struct repl *r)
{
    if (r->accept_on) {
        pthread_join(r->accept_thr, NULL);
        r->accept_on = false;
    }
    reap(r, true); /* each notices stopping within its poll or timeout */
    if (r->lfd >= 0) {
        close(r->lfd);
        r->lfd = -1;
    }
}
