/* udp.c - memcached's UDP transport (implements udp.h). Owns the UDP
 * sockets, one read event per socket per worker, each handler's receive
 * buffer, its requests (a spare one, and those parked on a cold read with
 * their datagram and reply buffer) and its held replies (touched only by
 * that worker's thread).
 *
 * Amplification is bounded: one request per datagram (anything after the
 * first request is dropped), a request split over several datagrams is
 * dropped as memcached drops it, and a reply above UDP_REPLY_MAX is
 * replaced by a one-datagram error.
 *
 * --sync=always: a write's reply is held, with its commit ticket, its
 * request id and its peer, until the store's commit covers the write (the
 * worker goes on serving; the store's commit hook wakes it through
 * udp_commit_done, as it wakes parked connections), then sent, or replaced
 * by the error of a failed commit. A handler holding UDP_HELD_MAX replies
 * reads no more datagrams until some are sent.
 *
 * A get whose value is not in the page cache (CMD_PARK) keeps its request,
 * with a copy of its datagram, until its read comes back to the worker
 * (readq or readring, cmd_reader.resume), and is answered then; the worker
 * serves other datagrams and connections meanwhile. A write that would
 * wait for a roll-over or a disk reserve (CASK_EBLOCKED, cmd.h
 * park_writes) is kept the same way on the handler's blocked list, counted
 * in the worker's nblocked so that the store's unblock hook wakes it, and
 * run again by udp_unblock_all. At most UDP_PARKED_MAX of both per
 * handler; past that a request reads or waits on the worker.
 */
#include "server/udp.h"

#include "protocol/proto_bin.h"
#include "server/cmd.h"
#include "server/cmd_bin.h"
#include "server/conn_table.h"
#include "server/listen.h"
#include "server/log.h"
#include "server/portfile.h"
#include "server/server.h"
#include "server/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UDP_READ_MAX      65536u /* largest datagram read, as memcached */
#define UDP_SOCKS_MAX     64u
#define UDP_REPLY_FLOOR   (8u * 1024 * 1024)
#define UDP_DGRAMS_MAX    65535u /* the frame's datagram count is 16 bits */
#define UDP_READS_PER_EVT 16     /* fairness with the worker's TCP clients */
#define UDP_HELD_MAX      1024u  /* replies one handler holds for commits */
#define UDP_PARKED_MAX    256u   /* requests one handler parks on reads */

/* --sync=always: the reply of a write whose commit is not done yet. */
struct udp_held {
    struct cask_ticket t;
    struct cmd_req_tag tag; /* for the error of a failed commit */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    unsigned rid;
    bool bare; /* a silent binary command: a frame header of 0 datagrams */
    size_t len;
    char *bytes; /* the reply as formatted (len bytes; NULL when 0) */
};

struct udp_handler;

/* One request being served. The handler keeps one spare for the common
 * case, a request answered at once; a request whose get waits for a cold
 * read (CMD_PARK) keeps its own, with a copy of its datagram, until its
 * reads come back and it is answered. */
struct udp_req {
    struct udp_handler *h;
    struct cmd_conn cc;
    struct cmd_bin bin;
    bool binary;
    unsigned rid;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct cask_ticket tk; /* --sync=always: what its writes wait for */
    char *in;              /* a parked request's datagram (after the frame
                            * header) */
    size_t in_len;
    char *out; /* the reply being built */
    size_t out_len;
    size_t out_cap;
    bool out_over; /* reply passed reply_max: replaced by an error */
    TAILQ_ENTRY(udp_req) link;
};

/* One socket served by one worker. */
struct udp_handler {
    struct udp *u;
    struct worker *w;
    int fd;               /* the socket, or a dup of it of our own */
    bool own_fd;          /* fd and ci are this handler's (closed here) */
    struct conn_info *ci; /* its `stats conns` entry */
    struct event *ev;
    char *rbuf; /* UDP_READ_MAX bytes */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    /* Replies held for their commit, in arrival order: held[hhead..hn). */
    struct udp_held *held;
    size_t hhead, hn, hcap;
    bool stalled;                  /* ev removed: UDP_HELD_MAX replies held */
    struct udp_req *spare;         /* reused while nothing parks */
    TAILQ_HEAD(, udp_req) parked;  /* waiting for cold reads */
    TAILQ_HEAD(, udp_req) blocked; /* writes waiting for the store */
    unsigned nparked;              /* on either list */
};

struct udp {
    struct server *srv;
    int fds[UDP_SOCKS_MAX];
    struct conn_info *ci[UDP_SOCKS_MAX]; /* their `stats conns` entries */
    unsigned nfds;
    size_t reply_max;
    struct udp_handler *h; /* nfds * nworkers, once enabled */
    unsigned nh;
};

unsigned
udp_frame(const char *reply, size_t len, unsigned rid,
          void (*send)(void *arg, const void *dgram, size_t n), void *arg)
{
    unsigned char d[UDP_PAYLOAD_MAX];
    size_t total = (len + UDP_DATA_MAX - 1) / UDP_DATA_MAX;
    unsigned seq;

    if (total > UDP_DGRAMS_MAX) {
        total = UDP_DGRAMS_MAX;
    }
    for (seq = 0; seq < total; seq++) {
        size_t off = (size_t)seq * UDP_DATA_MAX;
        size_t n = len - off < UDP_DATA_MAX ? len - off : UDP_DATA_MAX;

        proto_bin_put16(d, (uint16_t)rid);
        proto_bin_put16(d + 2, (uint16_t)seq);
        proto_bin_put16(d + 4, (uint16_t)total);
        proto_bin_put16(d + 6, 0);
        memcpy(d + UDP_HDR_LEN, reply + off, n);
        send(arg, d, UDP_HDR_LEN + n);
    }
    return (unsigned)total;
}

static void
out_bytes(void *arg, const void *p, size_t n)
{
    struct udp_req *r = arg;

    if (r->out_over || n == 0) {
        return;
    }
    if (r->out_len + n > r->h->u->reply_max) {
        r->out_over = true;
        return;
    }
    if (r->out_len + n > r->out_cap) {
        size_t ncap = r->out_cap ? r->out_cap : 4096;
        char *np;

        while (ncap < r->out_len + n) {
            ncap *= 2;
        }
        np = realloc(r->out, ncap);
        if (np == NULL) {
            r->out_over = true;
            return;
        }
        r->out = np;
        r->out_cap = ncap;
    }
    memcpy(r->out + r->out_len, p, n);
    r->out_len += n;
}

static void
out_value(void *arg, char *buf, size_t n)
{
    out_bytes(arg, buf, n);
    free(buf);
}

static void
send_dgram(void *arg, const void *d, size_t n)
{
    struct udp_req *r = arg;
    ssize_t rc =
            sendto(r->h->fd, d, n, 0, (struct sockaddr *)&r->peer, r->peer_len);

    /* UDP is lossy by contract: a full socket buffer drops the datagram */
    if (rc > 0) {
        r->h->w->bytes_written += (uint64_t)rc;
    }
}

/* Send the reply in r->out (bare: the frame header of a silent binary
 * command instead) for r's request id to r's peer. */
static void
send_reply(struct udp_req *r, bool bare)
{
    if (r->out_len > 0) {
        udp_frame(r->out, r->out_len, r->rid, send_dgram, r);
    } else if (bare) {
        /* memcached answers a silent binary command (a quiet variant, or a
         * getq miss) with a bare frame header counting 0 datagrams */
        unsigned char d[UDP_HDR_LEN] = {0};

        proto_bin_put16(d, (uint16_t)r->rid);
        send_dgram(r, d, sizeof(d));
    }
}

/* Send the reply of held write x: as formatted, or the error of its failed
 * commit. */
static void
send_held(struct udp_handler *h, struct udp_held *x, int rc)
{
    struct udp_req r;

    memset(&r, 0, sizeof(r));
    r.h = h;
    r.rid = x->rid;
    memcpy(&r.peer, &x->peer, x->peer_len);
    r.peer_len = x->peer_len;
    if (rc == CASK_OK) {
        r.out = x->bytes; /* sent as is, freed below */
        r.out_len = x->len;
    } else {
        struct cmd_sink sink = {.bytes = out_bytes, .arg = &r};

        free(x->bytes);
        cmd_late_error(&x->tag, rc, &sink);
    }
    x->bytes = NULL;
    send_reply(&r, rc == CASK_OK && x->bare);
    free(r.out);
    atomic_fetch_sub(&h->w->nparked, 1);
}

/* Send the held replies whose commit is done, in order. */
static void
release_held(struct udp_handler *h)
{
    struct cask *store = h->u->srv->store;

    while (h->hhead < h->hn) {
        struct udp_held *x = &h->held[h->hhead];
        int rc;

        if (!cask_ticket_done(store, &x->t, &rc)) {
            break;
        }
        send_held(h, x, rc);
        h->hhead++;
    }
    if (h->hhead == h->hn) {
        h->hhead = h->hn = 0;
    }
    if (h->stalled && h->hn - h->hhead < UDP_HELD_MAX) {
        h->stalled = event_add(h->ev, NULL) != 0;
    }
}

/* Hold the reply in r->out until r->tk's commit is done. false when out
 * of memory (the caller then waits for the commit). */
static bool
hold(struct udp_req *r, const struct cmd_req_tag *tag, bool bare)
{
    struct udp_handler *h = r->h;

    if (h->hn == h->hcap) {
        if (h->hhead > 0) {
            memmove(h->held, h->held + h->hhead,
                    (h->hn - h->hhead) * sizeof(*h->held));
            h->hn -= h->hhead;
            h->hhead = 0;
        } else {
            size_t ncap = h->hcap ? 2 * h->hcap : 16;
            struct udp_held *np = realloc(h->held, ncap * sizeof(*np));
            if (np == NULL) {
                return false;
            }
            h->held = np;
            h->hcap = ncap;
        }
    }
    struct udp_held *x = &h->held[h->hn];
    *x = (struct udp_held){
            .t = r->tk, .tag = *tag, .rid = r->rid, .bare = bare};
    if (r->out_len > 0 && (x->bytes = malloc(r->out_len)) == NULL) {
        return false;
    }
    memcpy(&x->peer, &r->peer, r->peer_len);
    x->peer_len = r->peer_len;
    if (x->bytes != NULL) {
        memcpy(x->bytes, r->out, r->out_len);
    }
    x->len = r->out_len;
    h->hn++;
    /* Counted before the check below: a commit that ends from now on
     * wakes the worker (on_store_commit reads nparked). */
    atomic_fetch_add(&h->w->nparked, 1);
    worker_commit_wait(h->w, 1); /* any commit: see on_commit_ev */
    if (h->hn - h->hhead >= UDP_HELD_MAX && !h->stalled) {
        event_del(h->ev);
        h->stalled = true;
    }
    release_held(h);
    return true;
}

static void
req_free(struct udp_req *r)
{
    if (r != NULL) {
        free(r->in);
        free(r->out);
        free(r);
    }
}

/* Run r's request on p[0..n) (again, after a park: the same bytes), its
 * commit waits deferred into r->tk under --sync=always. */
static enum cmd_status
run_req(struct udp_req *r, const char *p, size_t n)
{
    bool defer = r->h->u->srv->settings->sync == CASK_SYNC_ALWAYS;
    enum cmd_status st;
    size_t used = 0;

    if (defer) {
        cask_defer(&r->tk); /* the commit waits come back in tk */
    }
    if (r->binary) {
        st = cmd_bin_execute(&r->cc, &r->bin, p, n, &used);
    } else {
        st = cmd_execute(&r->cc, p, n, &used);
    }
    /* a stats items or slabs walk runs a batch a call: here to its end,
     * as the reply goes out once (the request is not run again) */
    while (st == CMD_DONE && cmd_busy(&r->cc)) {
        st = r->binary ? cmd_bin_execute(&r->cc, &r->bin, p, n, &used)
                       : cmd_execute(&r->cc, p, n, &used);
    }
    if (defer) {
        cask_defer(NULL);
    }
    return st;
}

/* Send r's reply (its request in p[0..n) ran to st; under --sync=always
 * once its writes are committed) and retire r: kept as the handler's
 * spare when it has none, else freed. */
static void
finish(struct udp_req *r, enum cmd_status st, const char *p, size_t n)
{
    struct udp_handler *h = r->h;
    struct server *srv = h->u->srv;
    struct cmd_req_tag tag = r->cc.tag;

    cmd_conn_deinit(&r->cc);
    if (st == CMD_SHUTDOWN) {
        server_request_stop(srv);
    }
    if (r->out_over) {
        /* memcached's words for a reply it cannot hold */
        static const char text[] =
                "SERVER_ERROR out of memory writing get response\r\n";
        unsigned char pkt[PROTO_BIN_HDR_LEN + 13];

        r->out_len = 0;
        r->out_over = false;
        if (r->binary) {
            uint32_t opaque = 0;

            /* a reply means the 24-byte header was parsed */
            if (n >= PROTO_BIN_HDR_LEN) {
                memcpy(&opaque, p + 12, 4);
            }
            proto_bin_fmt_hdr(pkt, (uint8_t)p[1], PROTO_BIN_ENOMEM, 0, 0, 13,
                              opaque, 0);
            memcpy(pkt + PROTO_BIN_HDR_LEN, "Out of memory", 13);
            out_bytes(r, pkt, sizeof(pkt));
        } else {
            out_bytes(r, text, sizeof(text) - 1);
        }
    }
    bool bare = r->binary && st != CMD_NEED_MORE;
    int rc = CASK_OK;
    if (r->tk.epoch != 0 && !cask_ticket_done(srv->store, &r->tk, &rc)) {
        if (hold(r, &tag, bare)) {
            goto out;
        }
        /* No memory to hold it: wait for the commit on this thread. */
        while (!cask_ticket_done(srv->store, &r->tk, &rc)) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    if (rc != CASK_OK) {
        struct cmd_sink esink = {.bytes = out_bytes, .arg = r};

        r->out_len = 0;
        r->out_over = false;
        cmd_late_error(&tag, rc, &esink);
    }
    send_reply(r, rc == CASK_OK && bare);
out:
    free(r->in);
    r->in = NULL;
    if (r->out_cap > 1024 * 1024) {
        /* do not keep a large reply's buffer around */
        free(r->out);
        r->out = NULL;
        r->out_cap = 0;
    }
    if (h->spare == NULL) {
        h->spare = r;
    } else {
        req_free(r);
    }
}

/* Keep r, whose write would wait for the store (its datagram kept in
 * r->in, counted in h->nparked), until udp_unblock_all runs it again. */
static void
block(struct udp_req *r)
{
    TAILQ_INSERT_TAIL(&r->h->blocked, r, link);
    worker_block_one(r->h->w);
}

void
udp_unblock_all(struct udp *u, struct worker *w)
{
    for (unsigned i = 0; i < u->nh; i++) {
        struct udp_handler *h = &u->h[i];
        TAILQ_HEAD(, udp_req) again;
        struct udp_req *r;

        if (h->w != w || TAILQ_EMPTY(&h->blocked)) {
            continue;
        }
        TAILQ_INIT(&again);
        TAILQ_CONCAT(&again, &h->blocked, link);
        while ((r = TAILQ_FIRST(&again)) != NULL) {
            TAILQ_REMOVE(&again, r, link);
            atomic_fetch_sub(&w->nblocked, 1);
            enum cmd_status st = run_req(r, r->in, r->in_len);
            if (st == CMD_PARK) {
                if (r->cc.write_parked) {
                    block(r);
                } else {
                    TAILQ_INSERT_TAIL(&h->parked, r, link);
                }
                continue;
            }
            h->nparked--;
            finish(r, st, r->in, r->in_len);
        }
    }
}

/* cmd_read_complete of a parked request's read (worker thread): run it
 * again from where it stopped; answer it once it is done. */
static void
udp_resume(void *owner)
{
    struct udp_req *r = owner;
    struct udp_handler *h = r->h;
    enum cmd_status st = run_req(r, r->in, r->in_len);

    if (st == CMD_PARK && !r->cc.write_parked) {
        return; /* the next key is cold too */
    }
    TAILQ_REMOVE(&h->parked, r, link);
    if (st == CMD_PARK) {
        block(r); /* a touch of a gat's next key would wait */
        return;
    }
    h->nparked--;
    finish(r, st, r->in, r->in_len);
}

/* Run the one request in p[0..n) and send its reply: now, once its writes
 * are committed (--sync=always), or once the cold read it waits for is
 * back. */
static void
serve(struct udp_handler *h, unsigned rid, const char *p, size_t n)
{
    struct server *srv = h->u->srv;
    struct udp_req *r = h->spare;
    enum cmd_status st;

    if (r == NULL && (r = calloc(1, sizeof(*r))) == NULL) {
        return; /* no memory: dropped, as a lost datagram */
    }
    h->spare = NULL;
    r->h = h;
    r->rid = rid;
    memcpy(&r->peer, &h->peer, h->peer_len);
    r->peer_len = h->peer_len;
    r->binary = (unsigned char)p[0] == PROTO_BIN_REQ;
    r->out_len = 0;
    r->out_over = false;
    memset(&r->tk, 0, sizeof(r->tk));
    struct cmd_sink sink = {out_bytes, out_value, r, NULL};
    cmd_conn_init(&r->cc, &srv->env, &h->w->ctr, &sink);
    if (r->binary) {
        cmd_bin_init(&r->bin, &r->cc, NULL);
    }
    /* a datagram is a whole request: no value waits for more bytes */
    r->cc.parser.budget = NULL;
    r->bin.parser.budget = NULL;
    if (h->w->read_submit != NULL && h->nparked < UDP_PARKED_MAX) {
        r->cc.rd.submit = h->w->read_submit;
        r->cc.rd.submit_arg = h->w->read_arg;
        r->cc.rd.owner = r;
        r->cc.rd.resume = udp_resume;
    }
    /* a write that would wait parks the request, as a connection's */
    r->cc.park_writes = srv->store != NULL && h->nparked < UDP_PARKED_MAX;
    st = run_req(r, p, n);
    if (st != CMD_PARK) {
        finish(r, st, p, n);
        return;
    }
    /* the receive buffer takes the next datagram: keep this one */
    r->in = malloc(n);
    if (r->in == NULL) {
        cmd_conn_deinit(&r->cc); /* its reads are orphaned */
        req_free(r);
        return; /* no memory: no reply, as a lost datagram */
    }
    memcpy(r->in, p, n);
    r->in_len = n;
    h->nparked++;
    if (r->cc.write_parked) {
        block(r);
    } else {
        TAILQ_INSERT_TAIL(&h->parked, r, link);
    }
}

static void
on_datagram(evutil_socket_t fd, short what, void *arg)
{
    struct udp_handler *h = arg;

    (void)what;
    for (int i = 0; i < UDP_READS_PER_EVT; i++) {
        const unsigned char *b = (const unsigned char *)h->rbuf;
        ssize_t n;

        h->peer_len = sizeof(h->peer);
        n = recvfrom(fd, h->rbuf, UDP_READ_MAX, 0, (struct sockaddr *)&h->peer,
                     &h->peer_len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return; /* EAGAIN: another worker took it, or none left */
        }
        h->w->bytes_read += (uint64_t)n;
        /* memcached: a frame header and at least one byte; a request in
         * more than one datagram is dropped */
        if ((size_t)n <= UDP_HDR_LEN || proto_bin_get16(b + 4) != 1) {
            continue;
        }
        conn_table_set(h->ci, CONN_ST_READ, (int64_t)time(NULL));
        serve(h, proto_bin_get16(b), h->rbuf + UDP_HDR_LEN,
              (size_t)n - UDP_HDR_LEN);
    }
}

static int
open_addr(struct udp *u, const char *addr, int port)
{
    struct addrinfo *res = NULL, *ai;
    char host[256];
    size_t len = strlen(addr);
    int rc, bound = 0, err = 0;

    /* an IPv6 literal may come in brackets */
    if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
        addr++;
        len -= 2;
    }
    if (len >= sizeof(host)) {
        len = sizeof(host) - 1;
    }
    memcpy(host, addr, len);
    host[len] = '\0';
    rc = listen_resolve(host, port, SOCK_DGRAM, &res);
    if (rc != 0) {
        fprintf(stderr, "bitcached: cannot resolve UDP address '%s': %s\n",
                host, gai_strerror(rc));
        return EINVAL;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int fd;

        if (u->nfds == UDP_SOCKS_MAX) {
            err = EMFILE;
            break;
        }
        fd = listen_bind(ai, &err);
        if (fd < 0) {
            continue;
        }
        portfile_note(fd, true);
        u->ci[u->nfds] = conn_table_add_udp(fd);
        u->fds[u->nfds++] = fd;
        bound++;
    }
    freeaddrinfo(res);
    if (bound == 0) {
        fprintf(stderr, "bitcached: cannot listen on %s UDP port %d: %s\n",
                host, port, strerror(err ? err : EADDRNOTAVAIL));
        return err ? err : EADDRNOTAVAIL;
    }
    log_msg(LOG_INFO, "listening on %s UDP port %d", host, port);
    return 0;
}

int
udp_open(struct server *srv, struct udp **out)
{
    const struct settings *s = srv->settings;
    struct udp *u = calloc(1, sizeof(*u));
    size_t floor;
    int rc;

    *out = NULL;
    if (u == NULL) {
        return ENOMEM;
    }
    u->srv = srv;
    /* room for the largest value with its header line, and no more than
     * a frame can count */
    floor = (size_t)s->item_size_max + 64 * 1024;
    u->reply_max = floor > UDP_REPLY_FLOOR ? floor : UDP_REPLY_FLOOR;
    if (u->reply_max > (size_t)UDP_DGRAMS_MAX * UDP_DATA_MAX) {
        u->reply_max = (size_t)UDP_DGRAMS_MAX * UDP_DATA_MAX;
    }
    for (unsigned i = 0; i < s->nlisten; i++) {
        if ((rc = open_addr(u, s->listen[i], s->udp_port)) != 0) {
            udp_close(&u);
            return rc;
        }
    }
    *out = u;
    return 0;
}

int
udp_enable(struct udp *u)
{
    struct server *srv = u->srv;

    u->h = calloc((size_t)u->nfds * srv->nworkers, sizeof(*u->h));
    if (u->h == NULL) {
        return ENOMEM;
    }
    for (unsigned i = 0; i < u->nfds; i++) {
        for (unsigned j = 0; j < srv->nworkers; j++) {
            struct udp_handler *h = &u->h[u->nh];

            h->u = u;
            h->w = &srv->workers[j];
            TAILQ_INIT(&h->parked);
            TAILQ_INIT(&h->blocked);
            h->fd = u->fds[i];
            h->ci = u->ci[i];
            if (j > 0) {
                /* memcached gives each worker a descriptor of its own on
                 * the socket, a connection in its counts and a line in
                 * `stats conns`: the same here */
                h->fd = fcntl(u->fds[i], F_DUPFD_CLOEXEC, 0);
                if (h->fd < 0) {
                    return errno;
                }
                h->own_fd = true;
                h->ci = conn_table_add_udp(h->fd);
            }
            u->nh++;
            atomic_fetch_add(&srv->own_conns, 1);
            atomic_fetch_add(&srv->total_conns, 1);
            h->rbuf = malloc(UDP_READ_MAX);
            h->ev = event_new(h->w->base, h->fd, EV_READ | EV_PERSIST,
                              on_datagram, h);
            if (h->rbuf == NULL || h->ev == NULL ||
                event_add(h->ev, NULL) != 0) {
                return ENOMEM;
            }
        }
    }
    return 0;
}

void
udp_commit_done(struct udp *u, struct worker *w)
{
    for (unsigned i = 0; i < u->nh; i++) {
        if (u->h[i].w == w && u->h[i].hn > u->h[i].hhead) {
            release_held(&u->h[i]);
        }
    }
}

void
udp_close(struct udp **up)
{
    struct udp *u = *up;

    if (u == NULL) {
        return;
    }
    for (unsigned i = 0; i < u->nh; i++) {
        struct udp_handler *h = &u->h[i];
        struct udp_req *r;

        if (h->ev != NULL) {
            event_free(h->ev);
        }
        free(h->rbuf);
        req_free(h->spare);
        /* Held, parked or blocked at a stop: dropped, as UDP may drop
         * any datagram; the parked ones' reads, orphaned, are freed when
         * the readqs hand them back. */
        for (size_t k = h->hhead; k < h->hn; k++) {
            free(h->held[k].bytes);
        }
        free(h->held);
        TAILQ_CONCAT(&h->parked, &h->blocked, link);
        while ((r = TAILQ_FIRST(&h->parked)) != NULL) {
            TAILQ_REMOVE(&h->parked, r, link);
            cmd_conn_deinit(&r->cc);
            req_free(r);
        }
        if (h->own_fd) {
            conn_table_remove(&h->ci);
            close(h->fd);
        }
    }
    free(u->h);
    for (unsigned i = 0; i < u->nfds; i++) {
        conn_table_remove(&u->ci[i]);
        close(u->fds[i]);
    }
    free(u);
    *up = NULL;
}
