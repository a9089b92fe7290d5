/* listen.c - binds the listeners and accepts on the main thread. Owns the
 * listening sockets and the unix socket path; hands each accepted socket to
 * a worker through worker_dispatch and keeps no per-connection state. */
#include "server/listen.h"

#include "server/log.h"
#include "server/server.h"
#include "server/worker.h"

#include <errno.h>
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
#include <unistd.h>

#define LISTEN_BACKLOG 1024
#define MAX_LISTENERS  64

struct listener {
    struct evconnlistener *ev;
    struct server *srv;
    bool is_unix;
};

struct listeners {
    struct listener l[MAX_LISTENERS];
    unsigned n;
    char *unix_path;
};

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
    now = atomic_fetch_add(&srv->curr_conns, 1) + 1;
    atomic_fetch_add(&srv->total_conns, 1);
    if (now > srv->settings->maxconns) {
        static const char msg[] = "ERROR Too many open connections\r\n";
        if (write(fd, msg, sizeof(msg) - 1) < 0) {
            /* The client goes either way. */
        }
        close(fd);
        atomic_fetch_sub(&srv->curr_conns, 1);
        atomic_fetch_add(&srv->rejected_conns, 1);
        log_msg(LOG_INFO, "too many open connections (-c %u); rejected one",
                srv->settings->maxconns);
        return;
    }
    worker_dispatch(srv, fd, l->is_unix);
}

static void
on_accept_error(struct evconnlistener *ev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();

    (void)arg;
    /* EMFILE and friends: keep the listener, the condition passes as
     * clients leave; libevent retries on the next readiness. */
    log_msg(LOG_WARN, "accept on fd %d: %s", (int)evconnlistener_get_fd(ev),
            strerror(err));
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
    l->is_unix = is_unix;
    l->ev = evconnlistener_new(srv->main_base, on_accept, l,
                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED |
                                       LEV_OPT_CLOSE_ON_EXEC,
                               LISTEN_BACKLOG, fd);
    if (l->ev == NULL) {
        close(fd);
        return ENOMEM;
    }
    evconnlistener_set_error_cb(l->ev, on_accept_error);
    ls->n++;
    return 0;
}

/* Strip [] from an IPv6 literal. */
static void
host_of(const char *addr, char *host, size_t cap)
{
    size_t n = strlen(addr);

    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
        addr++;
        n -= 2;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(host, addr, n);
    host[n] = '\0';
}

static int
open_tcp(struct server *srv, struct listeners *ls, const char *addr, int port)
{
    struct addrinfo hints, *res = NULL, *ai;
    char host[256], serv[16];
    int rc, bound = 0, err = 0;

    host_of(addr, host, sizeof(host));
    snprintf(serv, sizeof(serv), "%d", port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, serv, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "bitcached: cannot resolve listen address '%s': %s\n",
                addr, gai_strerror(rc));
        return EINVAL;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6) {
            /* So that "0.0.0.0,::" can both be bound. */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            listen(fd, LISTEN_BACKLOG) != 0) {
            err = errno;
            close(fd);
            continue;
        }
        if ((rc = add_listener(srv, ls, fd, false)) != 0) {
            err = rc;
            continue;
        }
        bound++;
    }
    freeaddrinfo(res);
    if (bound == 0) {
        fprintf(stderr, "bitcached: cannot listen on %s port %d: %s\n", addr,
                port, strerror(err ? err : EADDRNOTAVAIL));
        return err ? err : EADDRNOTAVAIL;
    }
    log_msg(LOG_INFO, "listening on %s port %d", addr, port);
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
        chmod(path, mask) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
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
    if (s->port != 0) {
        for (unsigned i = 0; i < s->nlisten && rc == 0; i++) {
            rc = open_tcp(srv, ls, s->listen[i], s->port);
        }
    }
    if (rc == 0 && s->unix_socket != NULL) {
        rc = open_unix(srv, ls, s->unix_socket, s->unix_mask);
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
    }
    if (ls->unix_path != NULL) {
        unlink(ls->unix_path);
        free(ls->unix_path);
    }
    free(ls);
    *lp = NULL;
}
