/* listen.c - binds the listeners and accepts on the main thread. Owns the
 * listening sockets, the unix socket path and the accept back-off; hands
 * each accepted socket to a worker through worker_dispatch and keeps no
 * per-connection state.
 *
 * Past -c, or when a new socket would leave fewer than FDLIMIT_HEADROOM
 * descriptors for the store, the client gets memcached's "ERROR Too many
 * open connections" and is closed (memcached's maxconns_fast). -c counts
 * as memcached 1.6.18 counts it: that refuses a socket whose descriptor
 * number reaches -c - 1, so its own descriptors (mc_own_fds) come off the
 * clients it serves: 1000 under -c 1024 with 4 threads and one address. If
 * accept
 * itself fails for want of descriptors, the spare one kept by fdlimit.c is
 * given up to accept and answer one client the same way, and accepting
 * stops for a back-off that doubles from ACCEPT_BACKOFF_MIN_MS while the
 * condition lasts (memcached's listen_disabled_num counts these pauses).
 * Either episode is logged once when it starts and once when it ends.
 *
 * With -Z every TCP listener hands its connections over as TLS ones, except
 * an address written notls:ADDR (memcached's opt-out); a TCP listener that
 * reaches beyond loopback with neither TLS nor -Y/-S is logged as a
 * warning.
 *
 * TCP sockets are bound at start (a port clash fails at once) but listen()
 * is called only by listen_enable, once the store is open, and the unix
 * socket is created only then: while the store is being recovered a
 * client's connect is refused, rather than accepted by the kernel and left
 * without an answer until recovery ends. */
#include <config.h> /* first: feature macros (accept4) */

#include "server/listen.h"

#include "server/conn_table.h"
#include "server/fdlimit.h"
#include "server/log.h"
#include "server/portfile.h"
#include "server/server.h"
#include "server/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTENERS         64
#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000

struct listeners;

struct listener {
    struct evconnlistener *ev;
    struct server *srv;
    struct listeners *ls;
    bool is_unix;
    struct conn_info *info; /* for stats conns */
    bool tls;               /* -Z, and the address had no notls: prefix */
};

struct listeners {
    struct listener l[MAX_LISTENERS];
    unsigned n;
    char *unix_path;
    char *unix_want;    /* -s, bound by listen_enable (see open_unix) */
    unsigned unix_mask; /* -a */
    struct server *srv;
    struct event *backoff; /* re-enables accepting */
    unsigned backoff_ms;   /* next pause; doubles while out of fds */
    bool paused;           /* listeners disabled until backoff fires */
    bool listening;        /* listen() done (listen_enable) */
    int backlog;           /* -b */
    bool refusing;         /* an episode of refusals is going on */
    uint64_t refused_in_episode;
    struct timespec paused_at; /* CLOCK_MONOTONIC, while paused */
};

static const char too_many[] = "ERROR Too many open connections\r\n";

/* The descriptors memcached 1.6.18 has open before its first client, in a
 * process started with only 0-2 open: 0-2, its main event base and a
 * pipe (6), per worker thread an event base, an eventfd and a notify pipe
 * (4), and a socket per TCP or unix listener and per UDP address. */
static unsigned
mc_own_fds(const struct listeners *ls)
{
    const struct settings *s = ls->srv->settings;
    unsigned udp = 0;

    if (s->udp_port != 0 && s->unix_socket == NULL) {
        udp = s->nlisten;
    }
    return 6 + 4 * s->threads + ls->n + udp;
}

/* The clients -c lets in at once, as memcached's count leaves them (at
 * least one: a -c that memcached would refuse to start with still
 * serves one client here). */
static unsigned
client_cap(const struct listeners *ls)
{
    unsigned maxconns = ls->srv->settings->maxconns;
    unsigned own = mc_own_fds(ls);

    return maxconns > own + 2 ? maxconns - 1 - own : 1;
}

/* Answer a client we will not serve, and count it. */
static void
refuse(struct server *srv, int fd)
{
    if (write(fd, too_many, sizeof(too_many) - 1) < 0) {
        /* The client goes either way. */
    }
    close(fd);
    atomic_fetch_add(&srv->rejected_conns, 1);
}

static void
episode_start(struct listeners *ls, const char *why)
{
    ls->refused_in_episode++;
    if (!ls->refusing) {
        ls->refusing = true;
        log_msg(LOG_WARN, "%s: refusing new connections", why);
    }
}

static void
episode_end(struct listeners *ls)
{
    if (ls->refusing) {
        log_msg(LOG_WARN, "accepting connections again; %llu refused",
                (unsigned long long)ls->refused_in_episode);
        ls->refusing = false;
        ls->refused_in_episode = 0;
    }
    ls->backoff_ms = ACCEPT_BACKOFF_MIN_MS;
}

static void
on_backoff(evutil_socket_t fd, short what, void *arg)
{
    struct listeners *ls = arg;
    struct server *srv = ls->l[0].srv;

    (void)fd;
    (void)what;
    if (ls->paused) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        atomic_fetch_add(
                &srv->listen_disabled_us,
                (uint64_t)((now.tv_sec - ls->paused_at.tv_sec) * 1000000 +
                           (now.tv_nsec - ls->paused_at.tv_nsec) / 1000));
    }
    ls->paused = false;
    if (atomic_load(&srv->stopping)) {
        return;
    }
    for (unsigned i = 0; i < ls->n; i++) {
        evconnlistener_enable(ls->l[i].ev);
    }
    atomic_store(&srv->accepting, true);
}

/* Out of descriptors: stop accepting for a while instead of spinning on a
 * listener that stays readable. */
static void
pause_accepting(struct listeners *ls)
{
    struct server *srv = ls->l[0].srv;
    struct timeval tv;

    if (ls->paused) {
        return;
    }
    for (unsigned i = 0; i < ls->n; i++) {
        evconnlistener_disable(ls->l[i].ev);
    }
    ls->paused = true;
    clock_gettime(CLOCK_MONOTONIC, &ls->paused_at);
    atomic_store(&srv->accepting, false);
    atomic_fetch_add(&srv->listen_disabled_num, 1);
    tv.tv_sec = ls->backoff_ms / 1000;
    tv.tv_usec = (suseconds_t)(ls->backoff_ms % 1000) * 1000;
    evtimer_add(ls->backoff, &tv);
    if (ls->backoff_ms < ACCEPT_BACKOFF_MAX_MS) {
        ls->backoff_ms *= 2;
    }
}

static void
on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
    struct listener *l = arg;
    struct server *srv = l->srv;
    unsigned now;

    (void)ev;
    (void)sa;
    (void)salen;
    if (atomic_load(&srv->stopping)) {
        close(fd);
        return;
    }
    atomic_fetch_add(&srv->total_conns, 1);
    if (fdlimit_near(fd)) {
        refuse(srv, fd);
        episode_start(l->ls, "open file limit nearly reached");
        return;
    }
    now = atomic_fetch_add(&srv->curr_conns, 1) + 1;
    if (now > client_cap(l->ls)) {
        atomic_fetch_sub(&srv->curr_conns, 1);
        refuse(srv, fd);
        episode_start(l->ls, "too many open connections (-c)");
        return;
    }
    episode_end(l->ls);
    worker_dispatch(srv, fd, l->is_unix, l->tls);
}

static void
on_accept_error(struct evconnlistener *ev, void *arg)
{
    struct listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();

    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        log_msg(LOG_WARN, "accept on fd %d: %s", (int)evconnlistener_get_fd(ev),
                strerror(err));
        return;
    }
    /* Give up the spare descriptor for a moment so that one waiting client
     * hears why, rather than hanging in the backlog. */
    fdlimit_release();
    {
        int fd = accept4(evconnlistener_get_fd(ev), NULL, NULL,
                         SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            atomic_fetch_add(&l->srv->total_conns, 1);
            refuse(l->srv, fd);
        }
    }
    fdlimit_reserve();
    episode_start(l->ls, strerror(err));
    pause_accepting(l->ls);
}

static int
add_listener(struct server *srv, struct listeners *ls, int fd, bool is_unix)
{
    struct listener *l;

    if (ls->n == MAX_LISTENERS) {
        close(fd);
        return EMFILE;
    }
    l = &ls->l[ls->n];
    l->srv = srv;
    l->ls = ls;
    l->is_unix = is_unix;
    /* backlog 0: libevent leaves listen() to listen_enable */
    l->ev = evconnlistener_new(srv->main_base, on_accept, l,
                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED |
                                       LEV_OPT_CLOSE_ON_EXEC,
                               0, fd);
    if (l->ev == NULL) {
        close(fd);
        return ENOMEM;
    }
    evconnlistener_set_error_cb(l->ev, on_accept_error);
    l->info = conn_table_add(fd, 1, is_unix);
    ls->n++;
    atomic_fetch_add(&srv->own_conns, 1);
    atomic_fetch_add(&srv->total_conns, 1);
    return 0;
}

/* Split an -l entry as memcached does: "[v6]", "[v6]:port", "host:port",
 * a bare IPv6 literal (more than one ':') or a bare host. *port keeps the -p
 * value unless the entry names one. Returns 0, or -1 for a bad port or an
 * unclosed '['. */
static int
split_addr(const char *addr, char *host, size_t cap, int *port)
{
    const char *h = addr, *colon;
    size_t n;

    if (addr[0] == '[') {
        const char *e = strchr(addr, ']');
        if (e == NULL) {
            fprintf(stderr, "Invalid IPV6 address: \"%s\"\n", addr);
            return -1;
        }
        h = addr + 1;
        n = (size_t)(e - h);
        colon = e[1] == ':' ? e + 1 : NULL;
    } else {
        colon = strchr(addr, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            colon = NULL; /* an IPv6 literal without a port */
        }
        n = colon != NULL ? (size_t)(colon - addr) : strlen(addr);
    }
    if (colon != NULL) {
        char *end;
        long v;
        errno = 0;
        v = strtol(colon + 1, &end, 10);
        if (errno != 0 || end == colon + 1 || *end != '\0' || v < 0 ||
            v > 65535) {
            fprintf(stderr, "Invalid port number: \"%s\"\n", colon + 1);
            return -1;
        }
        *port = (int)v;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

/* Whether a bound address is reachable only from this host. */
static bool
is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

int
listen_resolve(const char *host, int port, int socktype, struct addrinfo **res)
{
    struct addrinfo hints;
    char serv[16];

    /* -p -1, -U -1: a port the kernel picks (MEMCACHED_PORT_FILENAME) */
    snprintf(serv, sizeof(serv), "%d", port < 0 ? 0 : port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    return getaddrinfo(host, serv, &hints, res);
}

int
listen_bind(const struct addrinfo *ai, int *err)
{
    int one = 1;
    int fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);

    if (fd < 0) {
        *err = errno;
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

static int
open_tcp(struct server *srv, struct listeners *ls, const char *addr, int port)
{
    const struct settings *s = srv->settings;
    struct addrinfo *res = NULL, *ai;
    char host[256];
    int rc, bound = 0, err = 0;
    bool tls = s->tls.enabled, exposed = false;

    /* memcached's per-listener opt-out of -Z */
    if (strncmp(addr, "notls:", 6) == 0) {
        addr += 6;
        tls = false;
    }
    if (split_addr(addr, host, sizeof(host), &port) != 0) {
        return EINVAL;
    }
    rc = listen_resolve(host, port, SOCK_STREAM, &res);
    if (rc != 0) {
        fprintf(stderr, "bitcached: cannot resolve listen address '%s': %s\n",
                addr, gai_strerror(rc));
        return EINVAL;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = listen_bind(ai, &err);
        if (fd < 0) {
            continue;
        }
        portfile_note(fd, false);
        if ((rc = add_listener(srv, ls, fd, false)) != 0) {
            err = rc;
            continue;
        }
        ls->l[ls->n - 1].tls = tls;
        exposed = exposed || !is_loopback(ai->ai_addr);
        bound++;
    }
    freeaddrinfo(res);
    if (bound == 0) {
        fprintf(stderr, "bitcached: cannot listen on %s port %d: %s\n", addr,
                port, strerror(err ? err : EADDRNOTAVAIL));
        return err ? err : EADDRNOTAVAIL;
    }
    log_msg(LOG_INFO, "listening on %s port %d%s", addr, port,
            tls ? " (TLS)" : "");
    if (exposed && !tls && s->auth_file == NULL && !s->sasl) {
        log_msg(LOG_WARN,
                "listening on %s port %d, beyond this host, without TLS or "
                "authentication: anyone who reaches it can read, change and "
                "flush the cache (see -Z, -Y and -S)",
                addr, port);
    }
    return 0;
}

static int
open_unix(struct server *srv, struct listeners *ls, const char *path,
          unsigned mask)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd, err;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "bitcached: unix socket path too long: %s\n", path);
        return ENAMETOOLONG;
    }
    /* A socket left by an earlier run would make bind fail; anything that
     * is not a socket is left alone. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = errno;
        fprintf(stderr, "bitcached: socket: %s\n", strerror(err));
        return err;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
        chmod(path, mask) != 0 || listen(fd, ls->backlog) != 0) {
        err = errno;
        fprintf(stderr, "bitcached: cannot listen on unix socket %s: %s\n",
                path, strerror(err));
        close(fd);
        return err;
    }
    ls->unix_path = strdup(path);
    log_msg(LOG_INFO, "listening on unix socket %s", path);
    return add_listener(srv, ls, fd, true);
}

int
listen_open(struct server *srv, struct listeners **out)
{
    const struct settings *s = srv->settings;
    struct listeners *ls = calloc(1, sizeof(*ls));
    int rc = 0;

    if (ls == NULL) {
        return ENOMEM;
    }
    ls->backoff_ms = ACCEPT_BACKOFF_MIN_MS;
    ls->backlog = s->mc.backlog;
    ls->backoff = evtimer_new(srv->main_base, on_backoff, ls);
    if (ls->backoff == NULL) {
        free(ls);
        return ENOMEM;
    }
    fdlimit_raise(s->maxconns, s->shards, s->threads);
    if ((rc = fdlimit_reserve()) != 0) {
        log_msg(LOG_WARN, "cannot keep a spare descriptor: %s", strerror(rc));
        rc = 0;
    }
    /* As memcached: a unix socket replaces TCP (-s disables -p and -l). */
    if (s->port != 0 && s->unix_socket == NULL) {
        for (unsigned i = 0; i < s->nlisten && rc == 0; i++) {
            rc = open_tcp(srv, ls, s->listen[i], s->port);
        }
    }
    ls->srv = srv;
    if (rc == 0 && s->unix_socket != NULL) {
        /* Created by listen_enable: the file appears when it accepts (a
         * stale one is replaced anyway, so binding early would guard
         * against nothing). */
        if (strlen(s->unix_socket) >=
            sizeof(((struct sockaddr_un *)0)->sun_path)) {
            fprintf(stderr, "bitcached: unix socket path too long: %s\n",
                    s->unix_socket);
            rc = ENAMETOOLONG;
        } else if ((ls->unix_want = strdup(s->unix_socket)) == NULL) {
            rc = ENOMEM;
        }
        ls->unix_mask = s->unix_mask;
    }
    if (rc != 0) {
        listen_close(&ls);
        return rc;
    }
    *out = ls;
    return 0;
}

int
listen_enable(struct listeners *ls)
{
    if (ls->unix_want != NULL) {
        int rc = open_unix(ls->srv, ls, ls->unix_want, ls->unix_mask);
        free(ls->unix_want);
        ls->unix_want = NULL;
        if (rc != 0) {
            return rc;
        }
    }
    for (unsigned i = 0; i < ls->n && !ls->listening; i++) {
        int fd = (int)evconnlistener_get_fd(ls->l[i].ev);
        if (listen(fd, ls->backlog) != 0) {
            int err = errno;
            log_msg(LOG_ERR, "listen: %s", strerror(err));
            return err;
        }
    }
    ls->listening = true;
    for (unsigned i = 0; i < ls->n; i++) {
        if (evconnlistener_enable(ls->l[i].ev) != 0) {
            return EIO;
        }
    }
    return 0;
}

void
listen_close(struct listeners **lp)
{
    struct listeners *ls = *lp;

    if (ls == NULL) {
        return;
    }
    for (unsigned i = 0; i < ls->n; i++) {
        evconnlistener_free(ls->l[i].ev);
        conn_table_remove(&ls->l[i].info);
    }
    if (ls->backoff != NULL) {
        event_free(ls->backoff);
    }
    fdlimit_release();
    free(ls->unix_want);
    if (ls->unix_path != NULL) {
        unlink(ls->unix_path);
        free(ls->unix_path);
    }
    free(ls);
    *lp = NULL;
}
