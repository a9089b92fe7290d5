/* conn_table.c - the list behind `stats conns` (see conn_table.h). Owns the
 * entries; a connection holds a pointer to its own entry until it removes
 * it. Depends on nothing else in the server. */
#include "server/conn_table.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#define ADDR_MAX 128

struct conn_info {
    int fd;
    int is_listener;
    int is_udp;
    char addr[ADDR_MAX];        /* the peer (a listener: its own address) */
    char listen_addr[ADDR_MAX]; /* a client: the address it connected to */
    _Atomic int state;
    _Atomic int64_t last_cmd_s;
    struct conn_info *prev, *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn_info *head;
static unsigned nentries; /* under mu */
static unsigned npeak;    /* the most at once, under mu */

/* memcached's spelling: tcp:1.2.3.4:port, tcp6:[::1]:port, unix:path
 * (udp and udp6 for a UDP socket). */
static void
format_addr_proto(const struct sockaddr_storage *ss, socklen_t len, int is_unix,
                  const char *proto, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN];

    if (is_unix || ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                           ? len - offsetof(struct sockaddr_un, sun_path)
                           : 0;
        snprintf(out, cap, "unix:%.*s", (int)strnlen(su->sun_path, n),
                 su->sun_path);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "%s6:[%s]:%u", proto, host, ntohs(s6->sin6_port));
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%s:%u", proto, host, ntohs(s4->sin_port));
    } else {
        snprintf(out, cap, "unknown");
    }
}

static void
format_addr(const struct sockaddr_storage *ss, socklen_t len, int is_unix,
            char *out, size_t cap)
{
    format_addr_proto(ss, len, is_unix, "tcp", out, cap);
}

static void
link_entry(struct conn_info *ci)
{
    pthread_mutex_lock(&mu);
    ci->next = head;
    if (head != NULL) {
        head->prev = ci;
    }
    head = ci;
    nentries++;
    if (nentries > npeak) {
        npeak = nentries;
    }
    pthread_mutex_unlock(&mu);
}

unsigned
conn_table_count(void)
{
    pthread_mutex_lock(&mu);
    unsigned n = npeak;
    pthread_mutex_unlock(&mu);
    return n;
}

struct conn_info *
conn_table_add_udp(int fd)
{
    struct conn_info *ci = calloc(1, sizeof(*ci));
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (ci == NULL) {
        return NULL;
    }
    ci->fd = fd;
    ci->is_listener = 1; /* no listen_addr line */
    ci->is_udp = 1;
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        format_addr_proto(&ss, len, 0, "udp", ci->addr, ADDR_MAX);
    }
    atomic_store(&ci->state, CONN_ST_READ);
    atomic_store(&ci->last_cmd_s, (int64_t)time(NULL));
    link_entry(ci);
    return ci;
}

struct conn_info *
conn_table_add(int fd, int is_listener, int is_unix)
{
    struct conn_info *ci = calloc(1, sizeof(*ci));
    struct sockaddr_storage ss;
    socklen_t len;

    if (ci == NULL) {
        return NULL;
    }
    ci->fd = fd;
    ci->is_listener = is_listener;
    len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        format_addr(&ss, len, is_unix, is_listener ? ci->addr : ci->listen_addr,
                    ADDR_MAX);
    }
    if (!is_listener) {
        len = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
            format_addr(&ss, len, is_unix, ci->addr, ADDR_MAX);
        }
        if (is_unix) {
            /* a unix client has no name: memcached shows the socket's */
            memcpy(ci->addr, ci->listen_addr, ADDR_MAX);
        }
    }
    atomic_store(&ci->state, is_listener ? CONN_ST_LISTENING : CONN_ST_NEW_CMD);
    atomic_store(&ci->last_cmd_s, (int64_t)time(NULL));
    link_entry(ci);
    return ci;
}

void
conn_table_remove(struct conn_info **cip)
{
    struct conn_info *ci = *cip;

    if (ci == NULL) {
        return;
    }
    pthread_mutex_lock(&mu);
    if (ci->prev != NULL) {
        ci->prev->next = ci->next;
    } else {
        head = ci->next;
    }
    if (ci->next != NULL) {
        ci->next->prev = ci->prev;
    }
    nentries--;
    pthread_mutex_unlock(&mu);
    free(ci);
    *cip = NULL;
}

void
conn_table_set(struct conn_info *ci, enum conn_table_state st, int64_t now_s)
{
    if (ci == NULL) {
        return;
    }
    atomic_store_explicit(&ci->state, (int)st, memory_order_relaxed);
    if (now_s != 0) {
        atomic_store_explicit(&ci->last_cmd_s, now_s, memory_order_relaxed);
    }
}

static const char *
state_name(int st)
{
    static const char *const names[] = {
            [CONN_ST_LISTENING] = "conn_listening",
            [CONN_ST_NEW_CMD] = "conn_new_cmd",
            [CONN_ST_READ] = "conn_read",
            [CONN_ST_NREAD] = "conn_nread",
            [CONN_ST_SWALLOW] = "conn_swallow",
            [CONN_ST_PARSE_CMD] = "conn_parse_cmd",
            [CONN_ST_MWRITE] = "conn_mwrite",
            [CONN_ST_WATCH] = "conn_watch",
    };
    if (st < 0 || (size_t)st >= sizeof(names) / sizeof(names[0])) {
        return "conn_waiting";
    }
    return names[st];
}

struct snap {
    int fd;
    int is_listener;
    int is_udp;
    int state;
    int64_t last_cmd_s;
    char addr[ADDR_MAX];
    char listen_addr[ADDR_MAX];
};

static int
by_fd(const void *a, const void *b)
{
    const struct snap *x = a, *y = b;
    return (x->fd > y->fd) - (x->fd < y->fd);
}

void
conn_table_stats(int64_t now_s,
                 void (*line)(void *arg, const char *name, const char *value),
                 void *arg)
{
    struct snap *v = NULL;
    size_t n = 0, cap = 0;
    char name[48], val[32];

    /* Copy under the lock, format after it. */
    pthread_mutex_lock(&mu);
    for (struct conn_info *ci = head; ci != NULL; ci = ci->next) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct snap *nv = realloc(v, ncap * sizeof(*v));
            if (nv == NULL) {
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[n].fd = ci->fd;
        v[n].is_listener = ci->is_listener;
        v[n].is_udp = ci->is_udp;
        v[n].state = atomic_load(&ci->state);
        v[n].last_cmd_s = atomic_load(&ci->last_cmd_s);
        memcpy(v[n].addr, ci->addr, ADDR_MAX);
        memcpy(v[n].listen_addr, ci->listen_addr, ADDR_MAX);
        n++;
    }
    pthread_mutex_unlock(&mu);
    if (n > 0) {
        qsort(v, n, sizeof(*v), by_fd);
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].is_udp) {
            snprintf(name, sizeof(name), "%d:UDP", v[i].fd);
            line(arg, name, "UDP");
        }
        snprintf(name, sizeof(name), "%d:addr", v[i].fd);
        line(arg, name, v[i].addr);
        if (!v[i].is_listener) {
            snprintf(name, sizeof(name), "%d:listen_addr", v[i].fd);
            line(arg, name, v[i].listen_addr);
        }
        snprintf(name, sizeof(name), "%d:state", v[i].fd);
        line(arg, name, state_name(v[i].state));
        snprintf(name, sizeof(name), "%d:secs_since_last_cmd", v[i].fd);
        snprintf(val, sizeof(val), "%lld",
                 (long long)(now_s > v[i].last_cmd_s ? now_s - v[i].last_cmd_s
                                                     : 0));
        line(arg, name, val);
    }
    free(v);
}
