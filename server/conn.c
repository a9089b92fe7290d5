/* conn.c - the connection state machine: read -> parse/execute (cmd.c) ->
 * queue replies -> write. Owns the connection's socket, read buffer, output
 * evbuffer and events; runs only on the owning worker's thread.
 *
 * Backpressure: once the queued output passes OUT_HIGH the connection stops
 * executing requests and stops reading; it resumes when the client has read
 * the queue down to OUT_LOW. A single request whose replies push the queue
 * past the hard cap closes the connection, so memory per connection is
 * bounded even for a client that never reads.
 */
#include "server/conn.h"

#include "server/cmd.h"
#include "server/log.h"
#include "server/server.h"
#include "server/worker.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_INITIAL     (16u * 1024)
#define OUT_HIGH         (4u * 1024 * 1024)
#define OUT_LOW          (1u * 1024 * 1024)
#define OUT_CAP_MIN      (64u * 1024 * 1024)
#define RBUF_LIMIT_SLACK (64u * 1024)
#define READS_PER_EVENT  4 /* fairness between connections of a worker */

struct conn {
    int fd;
    struct worker *w;
    struct event *rev;
    struct event *wev;
    char *rbuf;
    size_t rsize;  /* allocated */
    size_t rstart; /* first unconsumed byte */
    size_t rend;   /* end of data read */
    struct evbuffer *out;
    size_t out_cap;
    struct cmd_conn cc;
    bool reading; /* rev is added */
    bool paused;  /* stopped reading for backpressure */
    bool closing; /* close once out is written */
    TAILQ_ENTRY(conn) link;
};

static void conn_close(struct conn *c);
static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

static void
sink_bytes(void *arg, const void *p, size_t n)
{
    struct conn *c = arg;
    evbuffer_add(c->out, p, n);
}

static void
free_value(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

static void
sink_value(void *arg, char *buf, size_t n)
{
    struct conn *c = arg;

    /* Small values are cheaper to copy than to track as references. */
    if (n <= 512) {
        evbuffer_add(c->out, buf, n);
        free(buf);
        return;
    }
    if (evbuffer_add_reference(c->out, buf, n, free_value, NULL) != 0) {
        free(buf);
    }
}

static void
set_reading(struct conn *c, bool on)
{
    if (on == c->reading) {
        return;
    }
    if (on) {
        const struct settings *s = c->w->srv->settings;
        struct timeval tv = {.tv_sec = (time_t)s->idle_timeout_s};
        event_add(c->rev, s->idle_timeout_s ? &tv : NULL);
    } else {
        event_del(c->rev);
    }
    c->reading = on;
}

void
conn_new(struct worker *w, int fd, bool is_unix)
{
    struct server *srv = w->srv;
    struct conn *c = calloc(1, sizeof(*c));
    struct cmd_sink sink;

    if (c == NULL) {
        goto fail;
    }
    c->fd = fd;
    c->w = w;
    c->rsize = RBUF_INITIAL;
    c->rbuf = malloc(c->rsize);
    c->out = evbuffer_new();
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (c->rbuf == NULL || c->out == NULL || c->rev == NULL || c->wev == NULL) {
        goto fail;
    }
    c->out_cap = OUT_CAP_MIN;
    if (c->out_cap < 4ull * srv->settings->item_size_max) {
        c->out_cap = 4ull * srv->settings->item_size_max;
    }
    if (!is_unix) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    sink.bytes = sink_bytes;
    sink.value = sink_value;
    sink.arg = c;
    cmd_conn_init(&c->cc, &srv->env, &w->ctr, &sink);
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    set_reading(c, true);
    log_msg(LOG_DEBUG, "<%d new %s client connection", fd,
            is_unix ? "unix" : "tcp");
    return;

fail:
    log_msg(LOG_WARN, "out of memory for a new connection; closing it");
    if (c != NULL) {
        if (c->rev) {
            event_free(c->rev);
        }
        if (c->wev) {
            event_free(c->wev);
        }
        if (c->out) {
            evbuffer_free(c->out);
        }
        free(c->rbuf);
        free(c);
    }
    close(fd);
    atomic_fetch_sub(&srv->curr_conns, 1);
}

static void
conn_close(struct conn *c)
{
    struct worker *w = c->w;

    log_msg(LOG_DEBUG, "<%d connection closed", c->fd);
    TAILQ_REMOVE(&w->conns, c, link);
    event_free(c->rev);
    event_free(c->wev);
    cmd_conn_deinit(&c->cc);
    evbuffer_free(c->out);
    free(c->rbuf);
    close(c->fd);
    atomic_fetch_sub(&w->srv->curr_conns, 1);
    free(c);
    if (w->stopping && TAILQ_EMPTY(&w->conns)) {
        event_base_loopbreak(w->base);
    }
}

/* Write what is queued. Returns -1 if the connection was closed. */
static int
flush_out(struct conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n > 0) {
            c->w->bytes_written += (uint64_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        conn_close(c);
        return -1;
    }
    if (evbuffer_get_length(c->out) > 0) {
        event_add(c->wev, NULL);
        return 0;
    }
    event_del(c->wev);
    if (c->closing) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Make room to read at least `want` more bytes (or grow toward a request of
 * `total` bytes). Returns -1 when no memory. */
static int
make_room(struct conn *c, size_t total)
{
    size_t have = c->rend - c->rstart;
    size_t need = total > have + 1 ? total : have + RBUF_INITIAL;

    if (c->rstart > 0 && (c->rsize - c->rend < RBUF_INITIAL / 4 ||
                          need > c->rsize - c->rstart)) {
        memmove(c->rbuf, c->rbuf + c->rstart, have);
        c->rend = have;
        c->rstart = 0;
    }
    if (need > c->rsize) {
        size_t nsize = c->rsize;
        while (nsize < need) {
            nsize *= 2;
        }
        char *nb = realloc(c->rbuf, nsize);
        if (nb == NULL) {
            return -1;
        }
        c->rbuf = nb;
        c->rsize = nsize;
    }
    return 0;
}

/* -vv: the first line of what a request consumed, as memcached logs it,
 * shortened and with unprintable bytes shown as '.'. */
static void
log_request(int fd, const char *p, size_t n)
{
    char line[96];
    size_t i;

    for (i = 0; i < n && i < sizeof(line) - 1; i++) {
        if (p[i] == '\r' || p[i] == '\n') {
            break;
        }
        line[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '.';
    }
    line[i] = '\0';
    log_msg(LOG_DEBUG, "<%d %s", fd, line);
}

/* Execute every complete request in the read buffer, as long as output
 * backpressure allows. Returns -1 if the connection was closed. */
static int
process(struct conn *c)
{
    while (!c->closing && c->rstart < c->rend) {
        size_t used = 0;
        enum cmd_status st;

        if (evbuffer_get_length(c->out) >= OUT_HIGH) {
            c->paused = true;
            set_reading(c, false);
            break;
        }
        st = cmd_execute(&c->cc, c->rbuf + c->rstart, c->rend - c->rstart,
                         &used);
        if (st != CMD_NEED_MORE) {
            /* A request that is still incomplete consumes nothing. */
            if (used > 0 && log_enabled(LOG_DEBUG)) {
                log_request(c->fd, c->rbuf + c->rstart, used);
            }
            c->rstart += used;
        }
        if (evbuffer_get_length(c->out) > c->out_cap) {
            log_msg(LOG_INFO, "<%d output queue above %zu bytes; closing",
                    c->fd, c->out_cap);
            conn_close(c);
            return -1;
        }
        if (st == CMD_DONE) {
            continue;
        }
        if (st == CMD_NEED_MORE) {
            size_t want = cmd_bytes_wanted(&c->cc);
            size_t limit = (size_t)c->w->srv->settings->item_size_max +
                           CMD_LINE_MAX + RBUF_LIMIT_SLACK;
            if (want > limit || c->rend - c->rstart > limit) {
                /* The parser bounds requests; this is a last line of
                 * defence against a buffer that would only grow. */
                log_msg(LOG_INFO, "<%d request above %zu bytes; closing", c->fd,
                        limit);
                conn_close(c);
                return -1;
            }
            if (want > c->rsize - c->rstart || c->rend == c->rsize) {
                if (make_room(c, want) < 0) {
                    log_msg(LOG_WARN,
                            "<%d no memory for a %zu byte request;"
                            " closing",
                            c->fd, want);
                    conn_close(c);
                    return -1;
                }
            }
            break;
        }
        if (st == CMD_SHUTDOWN) {
            server_request_stop(c->w->srv);
        }
        c->closing = true;
        set_reading(c, false);
    }
    if (c->rstart == c->rend) {
        c->rstart = c->rend = 0;
    }
    return flush_out(c);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (what & EV_TIMEOUT) {
        log_msg(LOG_INFO, "<%d idle for %u s; closing", (int)fd,
                c->w->srv->settings->idle_timeout_s);
        conn_close(c);
        return;
    }
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n;
        size_t room;

        if (c->rsize - c->rend < 1024) {
            if (make_room(c, 0) < 0) {
                conn_close(c);
                return;
            }
        }
        room = c->rsize - c->rend;
        n = read(fd, c->rbuf + c->rend, room);
        if (n == 0) {
            conn_close(c);
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            log_msg(LOG_DEBUG, "<%d read: %s", (int)fd, strerror(errno));
            conn_close(c);
            return;
        }
        c->rend += (size_t)n;
        c->w->bytes_read += (uint64_t)n;
        if (process(c) < 0) {
            return;
        }
        if (!c->reading || (size_t)n < room) {
            return;
        }
    }
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    if (flush_out(c) < 0) {
        return;
    }
    if (c->paused && evbuffer_get_length(c->out) <= OUT_LOW) {
        c->paused = false;
        if (!c->closing && !c->w->stopping) {
            set_reading(c, true);
            process(c);
        }
    }
}

void
conn_drain_all(struct worker *w)
{
    struct conn *c, *next;

    /* flush_out may free c: walk with a saved next. */
    for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        set_reading(c, false);
        c->closing = true;
        flush_out(c);
    }
}

void
conn_close_all(struct worker *w)
{
    while (!TAILQ_EMPTY(&w->conns)) {
        conn_close(TAILQ_FIRST(&w->conns));
    }
}
