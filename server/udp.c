/* udp.c - memcached's UDP transport (implements udp.h). Owns the UDP
 * sockets, one read event per socket per worker, and each handler's
 * receive and reply buffers (touched only by that worker's thread).
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
 */
#include "server/udp.h"

#include "protocol/proto_bin.h"
#include "server/cmd.h"
#include "server/cmd_bin.h"
#include "server/conn_table.h"
#include "server/log.h"
#include "server/portfile.h"
#include "server/server.h"
#include "server/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UDP_READ_MAX      65536u /* largest datagram read, as memcached */
#define UDP_SOCKS_MAX     64u
#define UDP_REPLY_FLOOR   (8u * 1024 * 1024)
#define UDP_DGRAMS_MAX    65535u /* the frame's datagram count is 16 bits */
#define UDP_READS_PER_EVT 16     /* fairness with the worker's TCP clients */
#define UDP_HELD_MAX      1024u  /* replies one handler holds for commits */

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

/* One socket served by one worker. */
struct udp_handler {
    struct udp *u;
    struct worker *w;
    int fd;
    struct conn_info *ci; /* the socket's `stats conns` entry */
    struct event *ev;
    char *rbuf; /* UDP_READ_MAX bytes */
    char *out;  /* the reply being built */
    size_t out_len;
    size_t out_cap;
    bool out_over; /* reply passed reply_max: replaced by an error */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    /* Replies held for their commit, in arrival order: held[hhead..hn). */
    struct udp_held *held;
    size_t hhead, hn, hcap;
    bool stalled; /* ev removed: UDP_HELD_MAX replies held */
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
    struct udp_handler *h = arg;

    if (h->out_over || n == 0) {
        return;
    }
    if (h->out_len + n > h->u->reply_max) {
        h->out_over = true;
        return;
    }
    if (h->out_len + n > h->out_cap) {
        size_t ncap = h->out_cap ? h->out_cap : 4096;
        char *np;

        while (ncap < h->out_len + n) {
            ncap *= 2;
        }
        np = realloc(h->out, ncap);
        if (np == NULL) {
            h->out_over = true;
            return;
        }
        h->out = np;
        h->out_cap = ncap;
    }
    memcpy(h->out + h->out_len, p, n);
    h->out_len += n;
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
    struct udp_handler *h = arg;
    ssize_t rc =
            sendto(h->fd, d, n, 0, (struct sockaddr *)&h->peer, h->peer_len);

    /* UDP is lossy by contract: a full socket buffer drops the datagram */
    if (rc > 0) {
        h->w->bytes_written += (uint64_t)rc;
    }
}

/* Send the reply in h->out (bare: the frame header of a silent binary
 * command instead) for request rid to h->peer. */
static void
send_reply(struct udp_handler *h, unsigned rid, bool bare)
{
    if (h->out_len > 0) {
        udp_frame(h->out, h->out_len, rid, send_dgram, h);
    } else if (bare) {
        /* memcached answers a silent binary command (a quiet variant, or a
         * getq miss) with a bare frame header counting 0 datagrams */
        unsigned char d[UDP_HDR_LEN] = {0};

        proto_bin_put16(d, (uint16_t)rid);
        send_dgram(h, d, sizeof(d));
    }
}

/* Send the reply of held write x: as formatted, or the error of its failed
 * commit. */
static void
send_held(struct udp_handler *h, struct udp_held *x, int rc)
{
    memcpy(&h->peer, &x->peer, x->peer_len);
    h->peer_len = x->peer_len;
    h->out_len = 0;
    h->out_over = false;
    if (rc == CASK_OK) {
        out_bytes(h, x->bytes, x->len);
    } else {
        struct cmd_sink sink = {.bytes = out_bytes, .arg = h};

        cmd_late_error(&x->tag, rc, &sink);
    }
    send_reply(h, x->rid, rc == CASK_OK && x->bare);
    free(x->bytes);
    x->bytes = NULL;
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

/* Hold the reply in h->out for request rid until t's commit is done.
 * false when out of memory (the caller then waits for the commit). */
static bool
hold(struct udp_handler *h, const struct cask_ticket *t,
     const struct cmd_req_tag *tag, unsigned rid, bool bare)
{
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
    *x = (struct udp_held){.t = *t, .tag = *tag, .rid = rid, .bare = bare};
    if (h->out_len > 0 && (x->bytes = malloc(h->out_len)) == NULL) {
        return false;
    }
    memcpy(&x->peer, &h->peer, h->peer_len);
    x->peer_len = h->peer_len;
    if (x->bytes != NULL) {
        memcpy(x->bytes, h->out, h->out_len);
    }
    x->len = h->out_len;
    h->hn++;
    /* Counted before the check below: a commit that ends from now on
     * wakes the worker (on_store_commit reads nparked). */
    atomic_fetch_add(&h->w->nparked, 1);
    if (h->hn - h->hhead >= UDP_HELD_MAX && !h->stalled) {
        event_del(h->ev);
        h->stalled = true;
    }
    release_held(h);
    return true;
}

/* Run the one request in p[0..n) and send its reply (under --sync=always
 * once its writes are committed). */
static void
serve(struct udp_handler *h, unsigned rid, const char *p, size_t n)
{
    struct server *srv = h->u->srv;
    struct cmd_sink sink = {out_bytes, out_value, h, NULL};
    struct cmd_conn cc;
    struct cmd_bin bin;
    enum cmd_status st;
    size_t used = 0;
    bool binary = (unsigned char)p[0] == PROTO_BIN_REQ;
    bool defer = srv->settings->sync == CASK_SYNC_ALWAYS;
    struct cask_ticket tk = {0};
    struct cmd_req_tag tag;

    h->out_len = 0;
    h->out_over = false;
    cmd_conn_init(&cc, &srv->env, &h->w->ctr, &sink);
    if (defer) {
        cask_defer(&tk); /* the commit waits come back in tk */
    }
    if (binary) {
        cmd_bin_init(&bin, &cc, NULL);
        st = cmd_bin_execute(&cc, &bin, p, n, &used);
    } else {
        st = cmd_execute(&cc, p, n, &used);
    }
    if (defer) {
        cask_defer(NULL);
    }
    tag = cc.tag;
    cmd_conn_deinit(&cc);
    if (st == CMD_SHUTDOWN) {
        server_request_stop(srv);
    }
    if (h->out_over) {
        /* memcached's words for a reply it cannot hold */
        static const char text[] =
                "SERVER_ERROR out of memory writing get response\r\n";
        unsigned char pkt[PROTO_BIN_HDR_LEN + 13];

        if (binary) {
            uint32_t opaque = 0;

            /* a reply means the 24-byte header was parsed */
            if (n >= PROTO_BIN_HDR_LEN) {
                memcpy(&opaque, p + 12, 4);
            }
            proto_bin_fmt_hdr(pkt, (uint8_t)p[1], PROTO_BIN_ENOMEM, 0, 0, 13,
                              opaque, 0);
            memcpy(pkt + PROTO_BIN_HDR_LEN, "Out of memory", 13);
            h->out_len = 0;
            h->out_over = false;
            out_bytes(h, pkt, sizeof(pkt));
        } else {
            h->out_len = 0;
            h->out_over = false;
            out_bytes(h, text, sizeof(text) - 1);
        }
    }
    bool bare = binary && st != CMD_NEED_MORE;
    int rc = CASK_OK;
    if (tk.epoch != 0 && !cask_ticket_done(srv->store, &tk, &rc)) {
        if (hold(h, &tk, &tag, rid, bare)) {
            goto out;
        }
        /* No memory to hold it: wait for the commit on this thread. */
        while (!cask_ticket_done(srv->store, &tk, &rc)) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    if (rc != CASK_OK) {
        struct cmd_sink esink = {.bytes = out_bytes, .arg = h};

        h->out_len = 0;
        h->out_over = false;
        cmd_late_error(&tag, rc, &esink);
    }
    send_reply(h, rid, rc == CASK_OK && bare);
out:
    if (h->out_cap > 1024 * 1024) {
        /* do not keep a large reply's buffer around */
        free(h->out);
        h->out = NULL;
        h->out_cap = 0;
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
    struct addrinfo hints, *res = NULL, *ai;
    char host[256], serv[16];
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
    /* -U -1: a port the kernel picks (see MEMCACHED_PORT_FILENAME) */
    snprintf(serv, sizeof(serv), "%d", port < 0 ? 0 : port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, serv, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "bitcached: cannot resolve UDP address '%s': %s\n",
                host, gai_strerror(rc));
        return EINVAL;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;
        int fd;

        if (u->nfds == UDP_SOCKS_MAX) {
            err = EMFILE;
            break;
        }
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            close(fd);
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
            h->fd = u->fds[i];
            h->ci = u->ci[i];
            h->rbuf = malloc(UDP_READ_MAX);
            h->ev = event_new(h->w->base, h->fd, EV_READ | EV_PERSIST,
                              on_datagram, h);
            u->nh++;
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
        if (u->h[i].ev != NULL) {
            event_free(u->h[i].ev);
        }
        free(u->h[i].rbuf);
        free(u->h[i].out);
        /* Held at a stop: dropped, as UDP may drop any datagram. */
        for (size_t k = u->h[i].hhead; k < u->h[i].hn; k++) {
            free(u->h[i].held[k].bytes);
        }
        free(u->h[i].held);
    }
    free(u->h);
    for (unsigned i = 0; i < u->nfds; i++) {
        conn_table_remove(&u->ci[i]);
        close(u->fds[i]);
    }
    free(u);
    *up = NULL;
}
