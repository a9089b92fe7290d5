/* stats.c - formats the `stats` groups. Reads the workers' counters (owned
 * and written by each worker; read here without locks, so a figure may be a
 * moment stale), the server's atomics and cask_stats. Owns only the baseline
 * that `stats reset` subtracts, and gives stats items/slabs their per-class
 * counters (stats_class_figures). */
#include "server/stats.h"

#include "server/conn_table.h"
#include "server/fdlimit.h"
#include "server/log.h"
#include "server/outbudget.h"
#include "server/prefix_stats.h"
#include "server/readring.h"
#include "server/repl.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/watch.h"
#include "server/worker.h"
#include <config.h> /* autoconf's, not server/config.h */

#include <event2/event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define NCOUNTERS (sizeof(struct cmd_counters) / sizeof(uint64_t))

/* Counters as of the last `stats reset`; reported = sum - baseline. */
static pthread_mutex_t base_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cmd_counters base_ctr;
static uint64_t base_bytes_read, base_bytes_written, base_total_conns,
        base_rejected;
/* the same for the connection-guarding counters (stats_conn_guard) */
static uint64_t base_yields, base_wtimeouts, base_rbuf_oom,
        base_listen_disabled, base_disabled_us, base_budget_closes,
        base_idle_kicks, base_wsent, base_wskipped, base_malloc_fails;
/* the store's per-class counters at the last reset, and their sums (what
 * the totals of `stats` subtract) */
static struct cask_class_stats base_cls[CMD_CLASSES];
static struct cask_class_stats base_cls_sum;

/* Sum the workers' connection-guarding counters. */
static void
sum_guard(struct server *srv, uint64_t *yields, uint64_t *wtimeouts,
          uint64_t *rbuf_oom)
{
    *yields = *wtimeouts = *rbuf_oom = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        const struct worker *w = &srv->workers[i];
        *yields += w->conn_yields;
        *wtimeouts += w->write_timeouts;
        *rbuf_oom += w->rbuf_oom;
    }
}

/* Connections closed by the idle timeout, over all workers. */
static uint64_t
sum_idle_kicks(struct server *srv)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < srv->nworkers; i++) {
        n += srv->workers[i].idle_kicks;
    }
    return n;
}

/* Writes parked because they would have waited for a roll-over, ever
 * (*total) and now (the return value), over all workers. */
static unsigned
write_parks(struct server *srv, uint64_t *total)
{
    unsigned now = 0;

    *total = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        *total += srv->workers[i].write_parks;
        now += atomic_load_explicit(&srv->workers[i].nblocked,
                                    memory_order_relaxed);
    }
    return now;
}

/* --sync=always: the mean time from a commit's hook call to the release
 * walk of a worker it woke, over all workers (us; 0 before any). */
static double
commit_release_us(struct server *srv)
{
    uint64_t n = 0, ns = 0;

    for (unsigned i = 0; i < srv->nworkers; i++) {
        n += srv->workers[i].commit_wakes;
        ns += srv->workers[i].commit_wake_ns;
    }
    return n > 0 ? (double)ns / (double)n / 1e3 : 0.0;
}

struct out_buf {
    char buf[16384];
    size_t len;
    const struct cmd_sink *out;
};

static void
flush_buf(struct out_buf *b)
{
    if (b->len > 0) {
        b->out->bytes(b->out->arg, b->buf, b->len);
        b->len = 0;
    }
}

static void stat_line(struct out_buf *b, const char *name, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
stat_line(struct out_buf *b, const char *name, const char *fmt, ...)
{
    char val[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    if (b->len + 300 + strlen(name) > sizeof(b->buf)) {
        flush_buf(b);
    }
    n = snprintf(b->buf + b->len, sizeof(b->buf) - b->len, "STAT %s %s\r\n",
                 name, val);
    if (n > 0) {
        b->len += (size_t)n;
    }
}

static void
end_reply(struct out_buf *b)
{
    if (b->len + 5 > sizeof(b->buf)) {
        flush_buf(b);
    }
    memcpy(b->buf + b->len, "END\r\n", 5);
    b->len += 5;
    flush_buf(b);
}

/* Sum the workers' counters. */
static void
sum_workers(struct server *srv, struct cmd_counters *ctr, uint64_t *rd,
            uint64_t *wr)
{
    uint64_t *dst = (uint64_t *)ctr;

    memset(ctr, 0, sizeof(*ctr));
    *rd = *wr = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        const struct worker *w = &srv->workers[i];
        const uint64_t *src = (const uint64_t *)&w->ctr;
        for (size_t k = 0; k < NCOUNTERS; k++) {
            dst[k] += src[k];
        }
        *rd += w->bytes_read;
        *wr += w->bytes_written;
    }
}

/* The connection-guarding figures, counted from the last `stats reset`
 * as memcached's counters are (gauges are as of now). */
struct guard {
    uint64_t yields, wtimeouts, rbuf_oom, disabled, disabled_us, closes;
    uint64_t malloc_fails;
    uint64_t rcount, rbytes, rheld;
};

static void
sum_guard_all(struct server *srv, struct guard *g)
{
    memset(g, 0, sizeof(*g));
    sum_guard(srv, &g->yields, &g->wtimeouts, &g->rbuf_oom);
    g->disabled = atomic_load(&srv->listen_disabled_num);
    g->disabled_us = atomic_load(&srv->listen_disabled_us);
    g->closes = outbudget_closes();
    for (unsigned i = 0; i < srv->nworkers; i++) {
        const struct worker *w = &srv->workers[i];
        g->rcount += w->rbuf_count;
        g->rbytes += w->rbuf_bytes;
        g->rheld += w->rbuf_held;
        g->malloc_fails += w->malloc_fails;
    }
    pthread_mutex_lock(&base_mu);
    g->yields -= base_yields;
    g->wtimeouts -= base_wtimeouts;
    g->rbuf_oom -= base_rbuf_oom;
    g->disabled -= base_listen_disabled;
    g->disabled_us -= base_disabled_us;
    g->closes -= base_budget_closes;
    g->malloc_fails -= base_malloc_fails;
    pthread_mutex_unlock(&base_mu);
}

#define U(x) ((unsigned long long)(x))

/* `stats`: memcached 1.6.18's fields, in its order, shown under the same
 * settings as it shows them (rejected_connections with maxconns_fast, the
 * slab mover's with slab_reassign, the crawler's while it is enabled, the
 * LRU maintainer's with lru_maintainer). Where memcached reports a part
 * bitcached does not have, the figure is what is true here (README,
 * "Compatibility with memcached"): no slab page is ever moved, no item is
 * ever moved between LRUs. bitcached's own figures are in `stats
 * bitcached`. */
static void
stats_general(struct server *srv, struct out_buf *b)
{
    const struct settings_mc *mc = &srv->settings->mc;
    struct cmd_counters c;
    struct cask_stats cs;
    struct guard g;
    struct rusage ru;
    uint64_t rd, wr, total, rejected, kicks, wsent, wskipped, clients, curr;
    time_t now = time(NULL);
    /* switched at run time by lru_crawler enable|disable */
    bool crawler = srv->env.admin != NULL
                           ? atomic_load(&srv->env.admin->lru_crawler)
                           : mc->lru_crawler;

    sum_workers(srv, &c, &rd, &wr);
    sum_guard_all(srv, &g);
    kicks = sum_idle_kicks(srv);
    watch_counts(&wsent, &wskipped);
    total = atomic_load(&srv->total_conns);
    rejected = atomic_load(&srv->rejected_conns);
    pthread_mutex_lock(&base_mu);
    {
        uint64_t *cur = (uint64_t *)&c;
        const uint64_t *base = (const uint64_t *)&base_ctr;
        for (size_t k = 0; k < NCOUNTERS; k++) {
            cur[k] -= base[k];
        }
        rd -= base_bytes_read;
        wr -= base_bytes_written;
        total -= base_total_conns;
        rejected -= base_rejected;
        kicks -= base_idle_kicks;
        wsent -= base_wsent;
        wskipped -= base_wskipped;
    }
    pthread_mutex_unlock(&base_mu);
    memset(&cs, 0, sizeof(cs));
    cask_stats(srv->store, -1, &cs);
    pthread_mutex_lock(&base_mu);
    cs.evictions -= base_cls_sum.evicted;
    cs.evicted_unfetched -= base_cls_sum.evicted_unfetched;
    cs.evicted_active -= base_cls_sum.evicted_active;
    cs.expired_unfetched -= base_cls_sum.expired_unfetched;
    cs.reclaimed -= base_cls_sum.reclaimed;
    cs.crawler_reclaimed -= base_cls_sum.crawler_reclaimed;
    cs.crawl_checked -= base_cls_sum.crawler_items_checked;
    pthread_mutex_unlock(&base_mu);
    getrusage(RUSAGE_SELF, &ru);
    clients = atomic_load(&srv->curr_conns);
    /* memcached's count: clients, listening sockets and UDP handlers,
     * less one */
    curr = clients + atomic_load(&srv->own_conns);
    curr = curr > 0 ? curr - 1 : 0;

    stat_line(b, "pid", "%ld", (long)getpid());
    stat_line(b, "uptime", "%ld", (long)(now - srv->started));
    stat_line(b, "time", "%ld", (long)now);
    stat_line(b, "version", "%s", SERVER_PROTOCOL_VERSION);
    stat_line(b, "libevent", "%s", event_get_version());
    stat_line(b, "pointer_size", "%zu", 8 * sizeof(void *));
    stat_line(b, "rusage_user", "%ld.%06ld", (long)ru.ru_utime.tv_sec,
              (long)ru.ru_utime.tv_usec);
    stat_line(b, "rusage_system", "%ld.%06ld", (long)ru.ru_stime.tv_sec,
              (long)ru.ru_stime.tv_usec);
    stat_line(b, "max_connections", "%u", srv->settings->maxconns);
    stat_line(b, "curr_connections", "%llu", U(curr));
    stat_line(b, "total_connections", "%llu", U(total));
    if (mc->maxconns_fast) {
        stat_line(b, "rejected_connections", "%llu", U(rejected));
    }
    /* listeners and clients, each with its connection structure */
    stat_line(b, "connection_structures", "%u", conn_table_count());
    /* Replies wait in one queue per client connection; one that cannot
     * be held within the output budget closes the connection, as a
     * response memcached cannot allocate does. */
    stat_line(b, "response_obj_oom", "%llu", U(g.closes));
    stat_line(b, "response_obj_count", "%llu", U(clients));
    stat_line(b, "response_obj_bytes", "%llu", U(outbudget_used()));
    stat_line(b, "read_buf_count", "%llu", U(g.rcount));
    stat_line(b, "read_buf_bytes", "%llu", U(g.rbytes));
    stat_line(b, "read_buf_bytes_free", "%llu",
              U(g.rbytes > g.rheld ? g.rbytes - g.rheld : 0));
    stat_line(b, "read_buf_oom", "%llu", U(g.rbuf_oom));
    /* kept from clients: the store's and workers' headroom, and the spare
     * that answers "Too many open connections" */
    stat_line(b, "reserved_fds", "%d", FDLIMIT_HEADROOM + 1);
    stat_line(b, "cmd_get", "%llu", U(c.cmd_get));
    stat_line(b, "cmd_set", "%llu", U(c.cmd_set));
    stat_line(b, "cmd_flush", "%llu", U(c.cmd_flush));
    stat_line(b, "cmd_touch", "%llu", U(c.cmd_touch));
    stat_line(b, "cmd_meta", "%llu", U(c.meta_cmds));
    stat_line(b, "get_hits", "%llu", U(c.get_hits));
    stat_line(b, "get_misses", "%llu", U(c.get_misses));
    stat_line(b, "get_expired", "%llu", U(c.get_expired));
    stat_line(b, "get_flushed", "%llu", U(c.get_flushed));
    stat_line(b, "delete_misses", "%llu", U(c.delete_misses));
    stat_line(b, "delete_hits", "%llu", U(c.delete_hits));
    stat_line(b, "incr_misses", "%llu", U(c.incr_misses));
    stat_line(b, "incr_hits", "%llu", U(c.incr_hits));
    stat_line(b, "decr_misses", "%llu", U(c.decr_misses));
    stat_line(b, "decr_hits", "%llu", U(c.decr_hits));
    stat_line(b, "cas_misses", "%llu", U(c.cas_misses));
    stat_line(b, "cas_hits", "%llu", U(c.cas_hits));
    stat_line(b, "cas_badval", "%llu", U(c.cas_badval));
    stat_line(b, "touch_hits", "%llu", U(c.touch_hits));
    stat_line(b, "touch_misses", "%llu", U(c.touch_misses));
    stat_line(b, "store_too_large", "%llu", U(c.store_too_large));
    stat_line(b, "store_no_memory", "%llu", U(c.store_no_memory));
    stat_line(b, "auth_cmds", "%llu", U(c.auth_cmds));
    stat_line(b, "auth_errors", "%llu", U(c.auth_errors));
    if (srv->settings->idle_timeout_s != 0) {
        /* memcached lists it only when an idle timeout is set */
        stat_line(b, "idle_kicks", "%llu", U(kicks));
    }
    if (tls_enabled()) {
        struct tls_stats ts;
        tls_get_stats(&ts);
        stat_line(b, "ssl_handshake_errors", "%llu", U(ts.handshake_errors));
        stat_line(b, "ssl_proto_errors", "%llu", U(ts.proto_errors));
        stat_line(b, "time_since_server_cert_refresh", "%lld",
                  (long long)(time(NULL) - ts.refreshed_s));
        if (srv->settings->tls.session_cache) {
            stat_line(b, "ssl_new_sessions", "%llu", U(ts.new_sessions));
        }
    }
    stat_line(b, "bytes_read", "%llu", U(rd));
    stat_line(b, "bytes_written", "%llu", U(wr));
    stat_line(b, "limit_maxbytes", "%llu", U(srv->settings->maxbytes));
    stat_line(b, "accepting_conns", "%d", atomic_load(&srv->accepting) ? 1 : 0);
    stat_line(b, "listen_disabled_num", "%llu", U(g.disabled));
    stat_line(b, "time_in_listen_disabled_us", "%llu", U(g.disabled_us));
    stat_line(b, "threads", "%u", srv->settings->threads);
    stat_line(b, "conn_yields", "%llu", U(g.yields));
    {
        /* The keydirs' hash tables: 6-byte slots, grown a stripe at a
         * time within one insert, so never caught expanding. The level
         * is the power of two at or below the slot count (16 shards
         * start with 65536 slots: memcached's default 16). */
        unsigned level = 0;
        while (level < 63 && (cs.keydir_slots >> (level + 1)) != 0) {
            level++;
        }
        stat_line(b, "hash_power_level", "%u", level);
        stat_line(b, "hash_bytes", "%llu", U(cs.keydir_slots * 6));
        stat_line(b, "hash_is_expanding", "0");
    }
    if (mc->slab_reassign) {
        /* no slab pages, so none is ever moved */
        static const char *const mover[] = {
                "slab_reassign_rescues",         "slab_reassign_chunk_rescues",
                "slab_reassign_evictions_nomem", "slab_reassign_inline_reclaim",
                "slab_reassign_busy_items",      "slab_reassign_busy_deletes",
                "slab_reassign_running",         "slabs_moved"};
        for (size_t i = 0; i < sizeof(mover) / sizeof(mover[0]); i++) {
            stat_line(b, mover[i], "0");
        }
    }
    if (crawler) {
        /* the background crawler that drops expired and flushed keys */
        stat_line(b, "lru_crawler_running", "%d", cs.crawling ? 1 : 0);
        stat_line(b, "lru_crawler_starts", "%llu", U(cs.crawls));
    }
    if (mc->lru_maintainer) {
        /* the maintenance thread's passes (evictions, crawls, hints) */
        stat_line(b, "lru_maintainer_juggles", "%llu", U(cs.maint_passes));
    }
    stat_line(b, "malloc_fails", "%llu", U(g.malloc_fails));
    /* watch lines are formatted straight into each watcher's buffer: a
     * line a slow watcher cannot take is skipped, none is dropped before */
    stat_line(b, "log_worker_dropped", "0");
    stat_line(b, "log_worker_written", "%llu", U(wsent + wskipped));
    stat_line(b, "log_watcher_skipped", "%llu", U(wskipped));
    stat_line(b, "log_watcher_sent", "%llu", U(wsent));
    stat_line(b, "log_watchers", "%u", atomic_load(&watch_count));
    /* -N is accepted without effect: connections are handed out round
     * robin, never by NAPI id */
    stat_line(b, "unexpected_napi_ids", "0");
    stat_line(b, "round_robin_fallback", "0");
    stat_line(b, "bytes", "%llu", U(cs.live_bytes));
    stat_line(b, "curr_items", "%llu", U(cs.live_keys));
    stat_line(b, "total_items", "%llu", U(c.total_items));
    stat_line(b, "slab_global_page_pool", "0");
    stat_line(b, "expired_unfetched", "%llu", U(cs.expired_unfetched));
    stat_line(b, "evicted_unfetched", "%llu", U(cs.evicted_unfetched));
    if (mc->lru_maintainer) {
        stat_line(b, "evicted_active", "%llu", U(cs.evicted_active));
    }
    stat_line(b, "evictions", "%llu", U(cs.evictions));
    stat_line(b, "reclaimed", "%llu", U(cs.reclaimed));
    /* the background crawler's drops, as memcached's LRU crawler's */
    stat_line(b, "crawler_reclaimed", "%llu", U(cs.crawler_reclaimed));
    stat_line(b, "crawler_items_checked", "%llu", U(cs.crawl_checked));
    /* no item references are held across requests, and there is one LRU
     * order (segment age): nothing is locked at the tail or moved
     * between LRUs; writers wait for the maintenance thread to evict */
    stat_line(b, "lrutail_reflocked", "0");
    if (mc->lru_maintainer) {
        stat_line(b, "moves_to_cold", "0");
        stat_line(b, "moves_to_warm", "0");
        stat_line(b, "moves_within_lru", "0");
        stat_line(b, "direct_reclaims", "0");
        stat_line(b, "lru_bumps_dropped", "0");
    }
    end_reply(b);
}

/* `stats bitcached`: bitcached's own figures beside memcached's. */
static void
stats_own(struct server *srv, struct out_buf *b)
{
    struct cmd_counters c;
    struct guard g;
    uint64_t rd, wr;

    sum_workers(srv, &c, &rd, &wr);
    sum_guard_all(srv, &g);
    pthread_mutex_lock(&base_mu);
    c.get_corrupt -= base_ctr.get_corrupt;
    pthread_mutex_unlock(&base_mu);
    stat_line(b, "server", "bitcached-%s", PACKAGE_VERSION);
    stat_line(b, "get_corrupt", "%llu", U(c.get_corrupt));
    stat_line(b, "output_bytes", "%llu", U(outbudget_used()));
    stat_line(b, "output_budget", "%llu", U(outbudget_limit()));
    stat_line(b, "output_budget_closes", "%llu", U(g.closes));
    stat_line(b, "write_timeouts", "%llu", U(g.wtimeouts));
    if (srv->env.in_budget != NULL) {
        const struct proto_budget *ib = srv->env.in_budget;

        stat_line(b, "input_bytes", "%llu", U(atomic_load(&ib->used)));
        stat_line(b, "input_budget", "%llu", U(ib->limit));
        stat_line(b, "input_budget_refusals", "%llu",
                  U(atomic_load(&ib->refused)));
    }
    end_reply(b);
}

static void
stats_settings(struct server *srv, struct out_buf *b)
{
    const struct settings *s = srv->settings;
    char inter[512];
    size_t n = 0;

    inter[0] = '\0';
    for (unsigned i = 0; i < s->nlisten && n < sizeof(inter) - 1; i++) {
        int k = snprintf(inter + n, sizeof(inter) - n, "%s%s", i ? "," : "",
                         s->listen[i]);
        if (k < 0) {
            break;
        }
        n += (size_t)k;
    }
    const struct settings_mc *mc = &s->mc;
    /* switched at run time by lru_crawler enable|disable */
    bool crawler = srv->env.admin != NULL
                           ? atomic_load(&srv->env.admin->lru_crawler)
                           : mc->lru_crawler;

    stat_line(b, "maxbytes", "%llu", (unsigned long long)s->maxbytes);
    stat_line(b, "maxconns", "%u", s->maxconns);
    stat_line(b, "tcpport", "%d", s->port);
    stat_line(b, "udpport", "%d", s->udp_port);
    stat_line(b, "inter", "%s", inter);
    stat_line(b, "verbosity", "%d", log_get_level());
    stat_line(b, "oldest", "0");
    stat_line(b, "evictions", "%s", s->mc.evictions_off ? "off" : "on");
    stat_line(b, "domain_socket", "%s",
              s->unix_socket ? s->unix_socket : "NULL");
    stat_line(b, "umask", "%o", s->unix_mask);
    stat_line(b, "shutdown_command", "%s", s->enable_shutdown ? "yes" : "no");
    stat_line(b, "growth_factor", "%.2f", mc->factor);
    stat_line(b, "chunk_size", "%u", mc->chunk_size);
    stat_line(b, "num_threads", "%u", s->threads);
    stat_line(b, "num_threads_per_udp", "%u", s->threads);
    stat_line(b, "stat_key_prefix", "%c", mc->prefix_delimiter);
    stat_line(b, "detail_enabled", "%s", prefix_stats_enabled() ? "yes" : "no");
    stat_line(b, "reqs_per_event", "%u", s->reqs_per_event);
    stat_line(b, "cas_enabled", "%s", mc->cas_disabled ? "no" : "yes");
    stat_line(b, "tcp_backlog", "%d", mc->backlog);
    stat_line(b, "binding_protocol", "%s", settings_proto_name(s->protocol));
    stat_line(b, "auth_enabled_sasl", "%s", s->sasl ? "yes" : "no");
    stat_line(b, "auth_enabled_ascii", "%s",
              s->auth_file != NULL ? s->auth_file : "no");
    stat_line(b, "item_size_max", "%u", s->item_size_max);
    stat_line(b, "maxconns_fast", "%s", mc->maxconns_fast ? "yes" : "no");
    stat_line(b, "hashpower_init", "%d", mc->hashpower_init);
    stat_line(b, "slab_reassign", "%s", mc->slab_reassign ? "yes" : "no");
    if (srv->env.admin != NULL) { /* slabs automove changes them */
        stat_line(b, "slab_automove", "%u",
                  atomic_load(&srv->env.admin->slab_automove));
        stat_line(b, "slab_automove_ratio", "%.2f",
                  atomic_load(&srv->env.admin->slab_automove_ratio));
    } else {
        stat_line(b, "slab_automove", "%d", mc->slab_automove);
        stat_line(b, "slab_automove_ratio", "%.2f", mc->slab_automove_ratio);
    }
    stat_line(b, "slab_automove_window", "%u", mc->slab_automove_window);
    stat_line(b, "slab_chunk_max", "%d", mc->slab_chunk_max);
    stat_line(b, "lru_crawler", "%s", crawler ? "yes" : "no");
    if (srv->env.admin != NULL) {
        stat_line(b, "lru_crawler_sleep", "%u",
                  atomic_load(&srv->env.admin->lru_crawler_sleep));
        stat_line(b, "lru_crawler_tocrawl", "%lu",
                  atomic_load(&srv->env.admin->lru_crawler_tocrawl));
    } else {
        stat_line(b, "lru_crawler_sleep", "%d", mc->lru_crawler_sleep);
        stat_line(b, "lru_crawler_tocrawl", "%lu", mc->lru_crawler_tocrawl);
    }
    stat_line(b, "tail_repair_time", "%d", mc->tail_repair_time);
    stat_line(b, "flush_enabled", "%s", mc->flush_disabled ? "no" : "yes");
    stat_line(b, "dump_enabled", "%s", mc->dump_disabled ? "no" : "yes");
    stat_line(b, "hash_algorithm", "%s", mc->hash_algorithm);
    stat_line(b, "lru_maintainer_thread", "%s",
              mc->lru_maintainer ? "yes" : "no");
    if (srv->env.admin != NULL) { /* lru mode, tune and temp_ttl set them */
        const struct cmd_admin_state *a = srv->env.admin;

        stat_line(b, "lru_segmented", "%s",
                  atomic_load(&a->lru_segmented) ? "yes" : "no");
        stat_line(b, "hot_lru_pct", "%u", atomic_load(&a->hot_lru_pct));
        stat_line(b, "warm_lru_pct", "%u", atomic_load(&a->warm_lru_pct));
        stat_line(b, "hot_max_factor", "%.2f", atomic_load(&a->hot_max_factor));
        stat_line(b, "warm_max_factor", "%.2f",
                  atomic_load(&a->warm_max_factor));
        stat_line(b, "temp_lru", "%s",
                  atomic_load(&a->temp_lru) ? "yes" : "no");
        stat_line(b, "temporary_ttl", "%u", atomic_load(&a->temporary_ttl));
    } else {
        stat_line(b, "lru_segmented", "%s", mc->lru_segmented ? "yes" : "no");
        stat_line(b, "hot_lru_pct", "%d", mc->hot_lru_pct);
        stat_line(b, "warm_lru_pct", "%d", mc->warm_lru_pct);
        stat_line(b, "hot_max_factor", "%.2f", mc->hot_max_factor);
        stat_line(b, "warm_max_factor", "%.2f", mc->warm_max_factor);
        stat_line(b, "temp_lru", "%s", mc->temp_lru ? "yes" : "no");
        stat_line(b, "temporary_ttl", "%u", mc->temporary_ttl);
    }
    stat_line(b, "idle_timeout", "%u", s->idle_timeout_s);
    stat_line(b, "watcher_logbuf_size", "%u", mc->watcher_logbuf_size);
    stat_line(b, "worker_logbuf_size", "%u", mc->worker_logbuf_size);
    stat_line(b, "read_buf_mem_limit", "%u", mc->read_buf_mem_limit);
    stat_line(b, "track_sizes", "%s", mc->track_sizes ? "yes" : "no");
    stat_line(b, "inline_ascii_response", "no");
    stat_line(b, "ssl_enabled", "%s", s->tls.enabled ? "yes" : "no");
    stat_line(b, "ssl_chain_cert", "%s",
              s->tls.chain_cert ? s->tls.chain_cert : "(null)");
    stat_line(b, "ssl_key", "%s", s->tls.key ? s->tls.key : "(null)");
    stat_line(b, "ssl_verify_mode", "%d", s->tls.verify_mode);
    stat_line(b, "ssl_keyformat", "%d", s->tls.keyformat);
    stat_line(b, "ssl_ciphers", "%s", s->tls.ciphers ? s->tls.ciphers : "NULL");
    stat_line(b, "ssl_ca_cert", "%s", s->tls.ca_cert ? s->tls.ca_cert : "NULL");
    stat_line(b, "ssl_wbuf_size", "%u", s->tls.wbuf_size_kb * 1024);
    stat_line(b, "ssl_session_cache", "%s",
              s->tls.session_cache ? "yes" : "no");
    stat_line(b, "ssl_kernel_tls", "%s", s->tls.kernel_tls ? "yes" : "no");
    stat_line(b, "ssl_min_version", "%s",
              tls_settings_version_name(s->tls.min_version));
    if (mc->napi_ids > 0) {
        stat_line(b, "num_napi_ids", "%d", mc->napi_ids);
    } else {
        stat_line(b, "num_napi_ids", "(null)");
    }
    stat_line(b, "memory_file", "%s",
              mc->memory_file ? mc->memory_file : "(null)");
    /* Ours from here on; memcached's own fields above, in its order. */
    stat_line(b, "write_timeout", "%u", s->write_timeout_s);
    stat_line(b, "output_budget", "%llu", (unsigned long long)s->output_budget);
    stat_line(b, "input_budget", "%llu", (unsigned long long)s->input_budget);
    stat_line(b, "drop_privileges", "%s", mc->drop_privileges ? "yes" : "no");
    if (mc->relaxed_privileges) {
        stat_line(b, "relaxed_privileges", "yes");
    }
    stat_line(b, "watch_enabled", "%s", mc->watch_disabled ? "no" : "yes");
    stat_line(b, "lock_memory", "%s", mc->lock_memory ? "yes" : "no");
    stat_line(b, "large_pages", "%s", mc->large_pages ? "yes" : "no");
    stat_line(b, "data_dir", "%s", s->data_dir);
    stat_line(b, "shards", "%u", s->shards);
    stat_line(b, "sync", "%s", settings_sync_name(s->sync));
    stat_line(b, "sync_interval_ms", "%u", s->sync_interval_ms);
    stat_line(b, "segment_size", "%llu", (unsigned long long)s->segment_size);
    stat_line(b, "disk_limit", "%llu", (unsigned long long)s->disk_limit);
    stat_line(b, "compact_ratio", "%.2f", s->compact_ratio);
    stat_line(b, "write_map", "%s", s->write_map ? "yes" : "no");
    end_reply(b);
}

static void
storage_lines(struct out_buf *b, const char *prefix,
              const struct cask_stats *st)
{
    char name[64];
#define STORAGE_STAT(field)                                                    \
    do {                                                                       \
        snprintf(name, sizeof(name), "%s%s", prefix, #field);                  \
        stat_line(b, name, "%llu", (unsigned long long)st->field);             \
    } while (0)
    STORAGE_STAT(live_keys);
    STORAGE_STAT(live_bytes);
    STORAGE_STAT(dead_bytes);
    STORAGE_STAT(segments);
    STORAGE_STAT(disk_bytes);
    STORAGE_STAT(keydir_bytes);
    STORAGE_STAT(buffer_bytes);
    STORAGE_STAT(compactions);
    STORAGE_STAT(bytes_reclaimed);
    STORAGE_STAT(syncs);
    STORAGE_STAT(synced_writes);
    STORAGE_STAT(write_errors);
    STORAGE_STAT(writes_undone);
    STORAGE_STAT(batch_records);
    STORAGE_STAT(batch_writes);
    STORAGE_STAT(rolls_handed);
    STORAGE_STAT(reserves_handed);
    STORAGE_STAT(mapped_writes);
    STORAGE_STAT(records_recovered);
    STORAGE_STAT(bytes_truncated);
    STORAGE_STAT(bytes_damaged);
    STORAGE_STAT(segments_missing);
    STORAGE_STAT(records_missing);
    STORAGE_STAT(quarantined);
    STORAGE_STAT(records_lost);
    STORAGE_STAT(sync_failures);
    STORAGE_STAT(sync_recoveries);
    STORAGE_STAT(segments_cut);
    STORAGE_STAT(evictions);
    STORAGE_STAT(evict_runs);
    STORAGE_STAT(unchecked_reads);
    STORAGE_STAT(value_refs);
    STORAGE_STAT(value_cache_bytes);
    STORAGE_STAT(value_cache_hits);
    STORAGE_STAT(value_cache_fills);
#undef STORAGE_STAT
    snprintf(name, sizeof(name), "%srecovery_s", prefix);
    stat_line(b, name, "%.6f", st->recovery_s);
    snprintf(name, sizeof(name), "%sfailed", prefix);
    stat_line(b, name, "%d", st->failed ? 1 : 0);
}

static void
stats_storage(struct server *srv, struct out_buf *b)
{
    struct cask_stats st;
    unsigned n = cask_shards(srv->store);

    memset(&st, 0, sizeof(st));
    cask_stats(srv->store, -1, &st);
    stat_line(b, "shards", "%u", n);
    stat_line(b, "sync", "%s", settings_sync_name(srv->settings->sync));
    storage_lines(b, "", &st);
    /* group commit: records per fdatasync, and the committer's passes */
    stat_line(b, "writes_per_sync", "%.2f",
              st.syncs ? (double)st.synced_writes / (double)st.syncs : 0.0);
    stat_line(b, "commits", "%llu", (unsigned long long)st.commits);
    stat_line(b, "commit_failures", "%llu",
              (unsigned long long)st.commit_failures);
    stat_line(b, "commit_recoveries", "%llu",
              (unsigned long long)st.commit_recoveries);
    /* a journal commit's cycle, means in us: its first write's wait for
     * the batch to be taken (the spacing delay part of it), the write
     * and sync, and the wake-up of the workers it releases replies of */
    stat_line(b, "commit_wait_us", "%.1f", st.commit_wait_us);
    stat_line(b, "commit_delay_us", "%.1f", st.commit_delay_us);
    stat_line(b, "commit_sync_us", "%.1f", st.commit_sync_us);
    stat_line(b, "commit_release_us", "%.1f", commit_release_us(srv));
    /* writes that would have waited for a roll-over (a busy sync thread,
     * another roll-over, a commit): parked, the worker serving others */
    uint64_t parks;
    unsigned parked = write_parks(srv, &parks);
    stat_line(b, "write_parks", "%llu", (unsigned long long)parks);
    stat_line(b, "writes_parked", "%u", parked);
    stat_line(b, "segments_mapped", "%llu",
              (unsigned long long)st.segments_mapped);
    stat_line(b, "segments_map_budget", "%llu",
              (unsigned long long)st.map_budget);
    /* the -m budget against the keydirs it bounds: kept by eviction, or
     * with -M by refusing new keys */
    stat_line(b, "memory_limit", "%llu",
              (unsigned long long)srv->settings->maxbytes);
    stat_line(b, "memory_limit_enforced", "1");
    stat_line(b, "memory_limit_evicts", "%d",
              srv->settings->mc.evictions_off ? 0 : 1);
    stat_line(b, "keydir_bytes_per_item", "%.1f",
              st.live_keys ? (double)st.keydir_bytes / (double)st.live_keys
                           : 0.0);
    {
        /* values not in the page cache, read through the workers'
         * io_uring or on the I/O threads while their requests waited */
        uint64_t active = 0, done = 0;
        const char *engine = "none";
        if (srv->aio != NULL) {
            cask_aio_stats(srv->aio, &active, &done);
            engine = "threads";
        }
        for (unsigned i = 0; i < srv->nworkers; i++) {
            if (srv->workers[i].ring != NULL) {
                uint64_t a, d;
                readring_stats(srv->workers[i].ring, &a, &d);
                active += a;
                done += d;
                engine = "uring";
            }
        }
        stat_line(b, "io_engine", "%s", engine);
        stat_line(b, "io_threads", "%u",
                  srv->aio != NULL ? srv->settings->io_threads : 0);
        stat_line(b, "cold_reads", "%llu", (unsigned long long)done);
        stat_line(b, "cold_reads_active", "%llu", (unsigned long long)active);
        stat_line(b, "cold_reads_direct", "%llu",
                  (unsigned long long)readring_direct_reads());
    }
    for (unsigned i = 0; i < n; i++) {
        char prefix[24];
        memset(&st, 0, sizeof(st));
        cask_stats(srv->store, (int)i, &st);
        snprintf(prefix, sizeof(prefix), "shard%u:", i);
        storage_lines(b, prefix, &st);
    }
    end_reply(b);
}

/* repl_stats' line callback. */
static void
repl_line(void *arg, const char *name, const char *value)
{
    stat_line(arg, name, "%s", value);
}

/* Whether a class's figures show it has held an item. */
static bool
class_held(const struct cmd_class_counters *k,
           const struct cask_class_stats *st)
{
    return k->cmd_set != 0 || k->get_hits != 0 || k->touch_hits != 0 ||
           k->delete_hits != 0 || st->evicted != 0 || st->reclaimed != 0 ||
           st->crawler_items_checked != 0;
}

void
stats_class_figures(void *arg, struct cmd_class_figures *out)
{
    struct server *srv = arg;
    struct cmd_counters *c = malloc(sizeof(*c));
    uint64_t rd, wr;

    memset(out, 0, sizeof(*out));
    if (c == NULL) {
        return;
    }
    sum_workers(srv, c, &rd, &wr);
    cask_class_stats(srv->store, out->store);
    pthread_mutex_lock(&base_mu);
    for (unsigned i = 0; i < CMD_CLASSES; i++) {
        struct cmd_class_counters *k = &out->srv[i];
        struct cask_class_stats *st = &out->store[i];
        const struct cask_class_stats *bs = &base_cls[i];
        uint64_t *dst = (uint64_t *)k;
        const uint64_t *cur = (const uint64_t *)&c->cls[i];
        const uint64_t *base = (const uint64_t *)&base_ctr.cls[i];

        /* held goes by the counts since start */
        out->held[i] = class_held(&c->cls[i], st);
        for (size_t n = 0; n < sizeof(*k) / sizeof(uint64_t); n++) {
            dst[n] = cur[n] - base[n];
        }
        st->evicted -= bs->evicted;
        st->evicted_nonzero -= bs->evicted_nonzero;
        st->evicted_unfetched -= bs->evicted_unfetched;
        st->evicted_active -= bs->evicted_active;
        st->reclaimed -= bs->reclaimed;
        st->expired_unfetched -= bs->expired_unfetched;
        st->crawler_reclaimed -= bs->crawler_reclaimed;
        st->crawler_items_checked -= bs->crawler_items_checked;
        if (st->evicted_at_s <= bs->evicted_at_s) {
            st->evicted_time = 0; /* no eviction since the reset */
        }
    }
    pthread_mutex_unlock(&base_mu);
    free(c);
}

static void
stats_reset(struct server *srv)
{
    struct cmd_counters *c = malloc(sizeof(*c));
    struct cask_class_stats cls[CMD_CLASSES], sum;
    uint64_t rd, wr;

    if (c == NULL) {
        return; /* nothing reset; the reply says RESET all the same */
    }
    sum_workers(srv, c, &rd, &wr);
    cask_class_stats(srv->store, cls);
    memset(&sum, 0, sizeof(sum));
    for (unsigned i = 0; i < CMD_CLASSES; i++) {
        sum.evicted += cls[i].evicted;
        sum.evicted_unfetched += cls[i].evicted_unfetched;
        sum.evicted_active += cls[i].evicted_active;
        sum.expired_unfetched += cls[i].expired_unfetched;
        sum.reclaimed += cls[i].reclaimed;
        sum.crawler_reclaimed += cls[i].crawler_reclaimed;
        sum.crawler_items_checked += cls[i].crawler_items_checked;
    }
    pthread_mutex_lock(&base_mu);
    memcpy(base_cls, cls, sizeof(cls));
    base_cls_sum = sum;
    base_ctr = *c;
    free(c);
    base_bytes_read = rd;
    base_bytes_written = wr;
    base_total_conns = atomic_load(&srv->total_conns);
    base_rejected = atomic_load(&srv->rejected_conns);
    sum_guard(srv, &base_yields, &base_wtimeouts, &base_rbuf_oom);
    base_listen_disabled = atomic_load(&srv->listen_disabled_num);
    base_disabled_us = atomic_load(&srv->listen_disabled_us);
    base_budget_closes = outbudget_closes();
    base_malloc_fails = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        base_malloc_fails += srv->workers[i].malloc_fails;
    }
    base_idle_kicks = sum_idle_kicks(srv);
    watch_counts(&base_wsent, &base_wskipped);
    pthread_mutex_unlock(&base_mu);
    prefix_stats_clear(); /* as memcached's stats reset */
}

static void
conn_line(void *arg, const char *name, const char *value)
{
    stat_line(arg, name, "%s", value);
}

static bool
is(const char *args, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(args, word, len) == 0;
}

static void
send_str(const struct cmd_sink *out, const char *s)
{
    out->bytes(out->arg, s, strlen(s));
}

void
stats_reply(void *arg, const char *args, size_t len, const struct cmd_sink *out)
{
    struct server *srv = arg;
    struct out_buf b;

    const char *arg2;
    size_t len2;

    b.len = 0;
    b.out = out;
    /* memcached reads the group from the first word and ignores the
     * words after it (detail reads the second) */
    while (len > 0 && args[0] == ' ') {
        args++;
        len--;
    }
    arg2 = memchr(args, ' ', len);
    if (arg2 != NULL) {
        const char *end = args + len;

        len = (size_t)(arg2 - args);
        while (arg2 < end && *arg2 == ' ') {
            arg2++;
        }
        len2 = 0;
        while (arg2 + len2 < end && arg2[len2] != ' ') {
            len2++;
        }
    } else {
        arg2 = "";
        len2 = 0;
    }
    if (len == 0) {
        stats_general(srv, &b);
    } else if (is(args, len, "settings")) {
        stats_settings(srv, &b);
    } else if (is(args, len, "bitcached")) {
        stats_own(srv, &b);
    } else if (is(args, len, "storage")) {
        stats_storage(srv, &b);
    } else if (is(args, len, "replication")) {
        repl_stats(srv->repl, repl_line, &b);
        end_reply(&b);
    } else if (is(args, len, "items") || is(args, len, "slabs")) {
        /* No slab allocator: nothing per class to report. */
        end_reply(&b);
    } else if (is(args, len, "conns")) {
        conn_table_stats((int64_t)time(NULL), conn_line, &b);
        end_reply(&b);
    } else if (is(args, len, "sizes")) {
        stat_line(&b, "sizes_status", "disabled");
        end_reply(&b);
    } else if (is(args, len, "reset")) {
        stats_reset(srv);
        send_str(out, "RESET\r\n");
    } else if (is(args, len, "sizes_disable")) {
        /* there is no size histogram to turn off; as memcached, no END */
        send_str(out, "STAT sizes_status disabled\r\n");
    } else if (is(args, len, "detail") &&
               (is(arg2, len2, "on") || is(arg2, len2, "off"))) {
        prefix_stats_enable(is(arg2, len2, "on"));
        send_str(out, "OK\r\n");
    } else if (is(args, len, "detail") && is(arg2, len2, "dump")) {
        size_t n;
        char *dump = prefix_stats_dump(&n);
        if (dump == NULL) {
            send_str(out, "SERVER_ERROR out of memory writing stats\r\n");
        } else {
            out->bytes(out->arg, dump, n);
            free(dump);
        }
    } else if (is(args, len, "detail")) {
        send_str(out, "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
    } else {
        send_str(out, "ERROR\r\n");
    }
}
