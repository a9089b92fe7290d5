/* watch.c - memcached's `watch` log streams (see watch.h). Owns the list of
 * watchers, under one mutex that delivery holds while it appends a line to
 * each; a watcher's buffer and wake event belong to its connection, which
 * unregisters before freeing them. Lines are formatted as memcached 1.6.18's
 * logger formats item_get, item_store and eviction. */
#include "server/watch.h"

#include "protocol/proto.h"
#include "server/cmd_admin.h"
#include "storage/cask.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

atomic_uint watch_count;
static atomic_uint evict_watchers; /* those with CMD_WATCH_EVICTIONS */

struct watch_sink {
    struct evbuffer *out;
    struct event *wake;
    unsigned mask;
    size_t cap;
    unsigned long long skipped; /* lines lost since the last one sent */
    struct watch_sink *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct watch_sink *head;
static atomic_uint_fast64_t gid;
static uint64_t lines_sent, lines_skipped; /* under mu */

struct watch_sink *
watch_add(struct evbuffer *out, struct event *wake, unsigned mask, size_t cap)
{
    struct watch_sink *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        return NULL;
    }
    w->out = out;
    w->wake = wake;
    w->mask = mask;
    w->cap = cap;
    pthread_mutex_lock(&mu);
    w->next = head;
    head = w;
    atomic_fetch_add(&watch_count, 1);
    if (mask & CMD_WATCH_EVICTIONS) {
        atomic_fetch_add(&evict_watchers, 1);
    }
    pthread_mutex_unlock(&mu);
    return w;
}

void
watch_remove(struct watch_sink **wp)
{
    struct watch_sink *w = *wp;

    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&mu);
    for (struct watch_sink **pp = &head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            atomic_fetch_sub(&watch_count, 1);
            if (w->mask & CMD_WATCH_EVICTIONS) {
                atomic_fetch_sub(&evict_watchers, 1);
            }
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    free(w);
    *wp = NULL;
}

/* Append one line to every watcher that asked for want. */
static void
deliver(const char *line, size_t n, unsigned want)
{
    pthread_mutex_lock(&mu);
    for (struct watch_sink *w = head; w != NULL; w = w->next) {
        char skip[48];
        int k = 0;

        if ((w->mask & want) == 0) {
            continue;
        }
        if (w->skipped > 0) {
            k = snprintf(skip, sizeof(skip), "skipped=%llu\n", w->skipped);
        }
        /* memcached reserves room for a skipped= line beside each line */
        if (evbuffer_get_length(w->out) + n + 128 > w->cap) {
            w->skipped++; /* a slow watcher loses lines, as in memcached */
            lines_skipped++;
            continue;
        }
        if (k > 0) {
            /* once there is room again memcached says how many were lost,
             * then goes on */
            evbuffer_add(w->out, skip, (size_t)k);
            w->skipped = 0;
        }
        evbuffer_add(w->out, line, n);
        lines_sent++;
        event_active(w->wake, EV_WRITE, 0);
    }
    pthread_mutex_unlock(&mu);
}

void
watch_event(void *arg, const struct cmd_watch_ev *ev)
{
    static const char *const get_status[] = {"not_found", "found", "flushed",
                                             "expired"};
    static const char *const store_status[] = {"not_stored", "stored",
                                               "exists",     "not_found",
                                               "too_large",  "no_memory"};
    static const char *const cmds[] = {"null",   "add",     "set", "replace",
                                       "append", "prepend", "cas"};
    unsigned want = ev->type == CMD_WATCH_GET ? CMD_WATCH_FETCHERS
                                              : CMD_WATCH_MUTATIONS;
    char key[3 * 250 + 1];
    char line[1024];
    struct timeval tv;
    int n;

    (void)arg;
    proto_uriencode(ev->key, ev->klen < 250 ? ev->klen : 250, key);
    gettimeofday(&tv, NULL);
    if (ev->type == CMD_WATCH_GET) {
        n = snprintf(line, sizeof(line),
                     "ts=%lld.%d gid=%llu type=item_get key=%s status=%s "
                     "clsid=%u cfd=%d size=%u\n",
                     (long long)tv.tv_sec, (int)tv.tv_usec,
                     (unsigned long long)atomic_fetch_add(&gid, 1) + 1, key,
                     get_status[ev->status & 3], ev->clsid, ev->fd, ev->size);
    } else {
        n = snprintf(line, sizeof(line),
                     "ts=%lld.%d gid=%llu type=item_store key=%s status=%s "
                     "cmd=%s ttl=%u clsid=%u cfd=%d size=%u\n",
                     (long long)tv.tv_sec, (int)tv.tv_usec,
                     (unsigned long long)atomic_fetch_add(&gid, 1) + 1, key,
                     store_status[ev->status < 6 ? ev->status : 5],
                     cmds[ev->cmd < 7 ? ev->cmd : 0], (unsigned)ev->ttl_s,
                     ev->clsid, ev->fd, ev->size);
    }
    if (n <= 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    deliver(line, (size_t)n, want);
}

/* Lines every watcher that asked for want lost before they were made. */
static void
lose(uint64_t n, unsigned want)
{
    pthread_mutex_lock(&mu);
    for (struct watch_sink *w = head; w != NULL; w = w->next) {
        if (w->mask & want) {
            w->skipped += n;
            lines_skipped += n;
        }
    }
    pthread_mutex_unlock(&mu);
}

bool
watch_evictions_wanted(void *arg)
{
    (void)arg;
    return atomic_load_explicit(&evict_watchers, memory_order_relaxed) != 0;
}

void
watch_evicted(void *arg, const struct cask_evicted *ev, size_t n, uint64_t lost)
{
    const struct cmd_env *env = arg;
    char key[3 * 250 + 1];
    char line[1024];
    struct timeval tv;

    if (lost > 0) {
        lose(lost, CMD_WATCH_EVICTIONS);
    }
    for (size_t i = 0; i < n; i++) {
        const struct cask_evicted *e = &ev[i];
        int64_t now, la;
        int k;

        gettimeofday(&tv, NULL);
        now = cmd_now_s(env);
        la = now > e->atime_s ? now - e->atime_s : 0;
        proto_uriencode(e->key, e->klen < 250 ? e->klen : 250, key);
        /* memcached's logger: ttl -1 for an item without expiry, la
         * seconds since its last access, size its value's bytes */
        k = snprintf(line, sizeof(line),
                     "ts=%lld.%d gid=%llu type=eviction key=%s fetch=%s "
                     "ttl=%lld la=%d clsid=%u size=%u\n",
                     (long long)tv.tv_sec, (int)tv.tv_usec,
                     (unsigned long long)atomic_fetch_add(&gid, 1) + 1, key,
                     e->fetched ? "yes" : "no",
                     e->exp_abs_s == 0 ? -1LL : (long long)(e->exp_abs_s - now),
                     (int)la, cmd_admin_class(env, e->klen, e->vlen, e->flags),
                     (unsigned)e->vlen);
        if (k > 0 && (size_t)k < sizeof(line)) {
            deliver(line, (size_t)k, CMD_WATCH_EVICTIONS);
        }
    }
}

void
watch_conn(int fd, bool is_unix, enum watch_conn_ev ev)
{
    static const char *const reasons[] = {"error", "normal", "idle_timeout",
                                          "shutdown"};
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char rip[INET6_ADDRSTRLEN] = "unix", line[256];
    unsigned port = 0;
    struct timeval tv;
    int n;

    if (atomic_load_explicit(&watch_count, memory_order_relaxed) == 0) {
        return;
    }
    memset(&ss, 0, sizeof(ss));
    if (!is_unix && getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, rip, sizeof(rip));
            port = ntohs(s4->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, rip, sizeof(rip));
            port = ntohs(s6->sin6_port);
        }
    }
    gettimeofday(&tv, NULL);
    n = snprintf(line, sizeof(line),
                 "ts=%lld.%d gid=%llu type=%s rip=%s "
                 "rport=%u transport=%s",
                 (long long)tv.tv_sec, (int)tv.tv_usec,
                 (unsigned long long)atomic_fetch_add(&gid, 1) + 1,
                 ev == WATCH_CONN_NEW ? "conn_new" : "conn_close", rip, port,
                 is_unix ? "local" : "tcp");
    if (n > 0 && ev != WATCH_CONN_NEW && (size_t)n < sizeof(line)) {
        n += snprintf(line + n, sizeof(line) - (size_t)n, " reason=%s",
                      reasons[ev]);
    }
    if (n > 0 && (size_t)n < sizeof(line)) {
        n += snprintf(line + n, sizeof(line) - (size_t)n, " cfd=%d\n", fd);
    }
    if (n <= 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    deliver(line, (size_t)n, CMD_WATCH_CONNEVENTS);
}

void
watch_counts(uint64_t *sent, uint64_t *skipped)
{
    pthread_mutex_lock(&mu);
    *sent = lines_sent;
    *skipped = lines_skipped;
    pthread_mutex_unlock(&mu);
}
