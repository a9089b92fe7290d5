/* main.c - bitcached's entry point: settings, daemon/pidfile/user, open the
 * store, bind listeners, start workers, tell systemd we are ready, and on
 * SIGTERM/SIGINT/SIGUSR1 (or `shutdown`) stop in order: stop accepting,
 * drain connections, close the store, remove the pidfile. SIGHUP is
 * ignored, as memcached ignores it. Owns struct server. */
#include "server/cmd.h"
#include "server/cmd_admin.h"
#include "server/cmd_meta.h"
#include "server/listen.h"
#include "server/log.h"
#include "server/notify.h"
#include "server/portfile.h"
#include "server/prefix_stats.h"
#include "server/repl.h"
#include "server/sasl.h"
#include "server/server.h"
#include "server/settings.h"
#include "server/settings_ext.h"
#include "server/stats.h"
#include "server/tls.h"
#include "server/udp.h"
#include "server/watch.h"
#include "server/worker.h"
#include <config.h> /* autoconf's, not server/config.h */

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

void
server_request_stop(struct server *srv)
{
    (void)srv;
    /* Any thread: libevent's signal handling delivers SIGTERM to the main
     * loop whichever thread receives it. */
    kill(getpid(), SIGTERM);
}

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;

    (void)what;
    if (atomic_exchange(&srv->stopping, true)) {
        return;
    }
    log_msg(LOG_INFO, "signal %d: stopping", (int)sig);
    notify_stopping();
    event_base_loopbreak(srv->main_base);
}

static void
cask_log(void *arg, enum cask_log_level level, const char *msg)
{
    (void)arg;
    log_msg(level <= CASK_LOG_WARN
                    ? LOG_WARN
                    : (level == CASK_LOG_INFO ? LOG_INFO : LOG_DEBUG),
            "storage: %s", msg);
}

static void
cask_progress(void *arg, unsigned done, unsigned total)
{
    (void)arg;
    notify_status("Recovering: %u of %u shards done", done, total);
}

static void
set_verbosity(void *arg, unsigned level)
{
    (void)arg;
    log_set_level((int)level);
}

/* cache_memlimit: -m at run time. Only `stats` reads it (a racy read of a
 * 64-bit word, as for the other figures stats shows). */
/* cask_options.committed: --min-replicas-ack (srv->repl is set before the
 * first client write can arrive). */
static int
committed(void *arg, unsigned shard, uint64_t appended)
{
    struct server *srv = arg;
    return repl_wait_acks(srv->repl, shard, appended);
}

/* cmd_env.replica_of: `replica_of none` promotes a replica. */
static int
replica_of(void *arg, const char *target, char *err, size_t cap)
{
    struct server *srv = arg;
    (void)target; /* only "none" reaches here */
    return repl_promote(srv->repl, err, cap);
}

/* refresh_certs: reload the TLS certificate and key (tls.c), logging a
 * failure. */
static int
refresh_certs(char *err, size_t cap)
{
    int rc = tls_refresh(err, cap);

    if (rc != 0) {
        log_msg(LOG_WARN, "refresh_certs: %s", err);
    }
    return rc;
}

static void
set_memlimit(void *arg, uint64_t bytes)
{
    struct settings *s = arg;

    s->maxbytes = bytes;
}

static int
write_pidfile(const char *path)
{
    char buf[32];
    int fd, n;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return errno;
    }
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (write(fd, buf, (size_t)n) != n) {
        int e = errno;
        close(fd);
        return e ? e : EIO;
    }
    return close(fd) == 0 ? 0 : errno;
}

/* Drop root for -u USER. The data directory is created first and given to
 * USER, so that memcached.conf-style "-u memcache" works from a root-owned
 * working directory; an existing directory is left as it is. */
static int
drop_privileges(const char *user, const char *data_dir)
{
    struct passwd *pw;

    if (getuid() != 0 && geteuid() != 0) {
        if (user != NULL) {
            log_msg(LOG_INFO, "not root: -u %s ignored", user);
        }
        return 0;
    }
    if (user == NULL) {
        log_msg(LOG_WARN, "running as root; consider -u USER");
        return 0;
    }
    pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "bitcached: unknown user '%s' for -u\n", user);
        return EX_NOUSER;
    }
    if (mkdir(data_dir, 0750) == 0) {
        if (chown(data_dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "bitcached: cannot give %s to user '%s': %s\n",
                    data_dir, user, strerror(errno));
            return EX_CANTCREAT;
        }
    } else if (errno != EEXIST) {
        fprintf(stderr, "bitcached: cannot create data directory %s: %s\n",
                data_dir, strerror(errno));
        return EX_CANTCREAT;
    }
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "bitcached: cannot switch to user '%s': %s\n", user,
                strerror(errno));
        return EX_OSERR;
    }
    return 0;
}

/* The data directory as an absolute path, so that -d's chdir("/") and
 * relative defaults agree. */
static char *
absolute_dir(const char *dir)
{
    char cwd[PATH_MAX];
    char *out;

    if (dir[0] == '/') {
        return strdup(dir);
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        return strdup(dir);
    }
    while (dir[0] == '.' && dir[1] == '/') {
        dir += 2;
    }
    if (asprintf(&out, "%s/%s", cwd, dir) < 0) {
        return NULL;
    }
    return out;
}

static int
daemonize(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0) {
        return errno;
    }
    if (pid > 0) {
        _exit(0);
    }
    if (setsid() < 0) {
        return errno;
    }
    if (chdir("/") != 0) {
        return errno;
    }
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        /* stderr stays: with -v the operator redirects it themselves. */
        if (fd > STDERR_FILENO) {
            close(fd);
        }
    }
    return 0;
}

static int
open_store(struct server *srv)
{
    const struct settings *s = srv->settings;
    struct cask_options o;
    int rc;

    cask_options_init(&o);
    o.shards = s->shards;
    o.sync = s->sync;
    o.sync_interval_ms = s->sync_interval_ms;
    o.segment_size = s->segment_size;
    o.journal_size = s->journal_size;
    o.write_map = s->write_map;
    o.disk_limit = s->disk_limit;
    if (s->disk_limit != 0) {
        /* Segments of at most 1/16 of a shard's share of the disk: an
         * eviction takes a whole one, and the one being written is the
         * slack past the limit. Under always the journal's two files
         * come off the limit first (about: files already there keep
         * their size; the store checks). */
        uint64_t data = s->disk_limit;
        uint64_t jb = 2 * (s->journal_size ? s->journal_size : 8u << 20);
        if (s->sync == CASK_SYNC_ALWAYS && jb < data) {
            data -= jb;
        }
        uint64_t seg = data / s->shards / 16;
        seg = seg < 64 * 1024 ? 64 * 1024 : seg;
        if (seg < o.segment_size) {
            o.segment_size = seg;
        }
    }
    o.value_max = s->item_size_max;
    o.compact_ratio = s->compact_ratio;
    o.mem_limit = s->maxbytes;
    o.mem_evict = !s->mc.evictions_off; /* -M: refuse new keys instead */
    o.log = cask_log;
    o.progress = cask_progress;
    o.committed = committed;
    o.committed_arg = srv;
    /* srv->env is filled in before the first watcher can register */
    o.evicted = watch_evicted;
    o.evicted_wanted = watch_evictions_wanted;
    o.evicted_arg = &srv->env;
    /* the store counts its drops by memcached's class: srv->env's
     * classes are set before the store opens */
    o.class_of = cmd_admin_class_of;
    /* with memcached's LRU maintainer on (its default) the expired items
     * the crawler drops count as that thread's (reclaimed), without it
     * as its LRU crawler's (crawler_reclaimed) */
    o.crawl_as_lru = s->mc.lru_maintainer;
    o.class_arg = &srv->env;
    notify_status("Recovering data in %s", s->data_dir);
    rc = cask_open(&srv->store, s->data_dir, &o);
    if (rc == CASK_OK) {
        return 0; /* the store logs what it recovered */
    }
    fprintf(stderr, "bitcached: cannot open data directory %s: %s\n",
            s->data_dir, cask_strerror(rc));
    if (rc == CASK_ELOCKED) {
        return EX_CANTCREAT;
    }
    if (rc == CASK_EINVAL) {
        return EX_CONFIG;
    }
    return EX_CANTCREAT;
}

/* Values announced and still arriving (--input-budget): shared by every
 * connection's parser. */
static struct proto_budget in_budget;

int
main(int argc, char **argv)
{
    static struct settings settings;
    static struct server srv;
    static struct cmd_admin_state admin_state;
    struct listeners *listeners = NULL;
    struct udp *udp = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sigusr1 = NULL;
    int exit_code = 0, rc;
    char *dir;

    switch (settings_parse(&settings, argc, argv, &exit_code)) {
    case SETTINGS_EXIT_OK:
        return 0;
    case SETTINGS_EXIT_ERR:
        return exit_code;
    case SETTINGS_RUN:
        break;
    }
    if (settings.sasl) {
        /* memcached's variable; read once, the file on every auth */
        srv.sasl_pwdb = getenv("MEMCACHED_SASL_PWDB");
        if (!sasl_pwdb_readable(srv.sasl_pwdb)) {
            fprintf(stderr, "bitcached: -S needs MEMCACHED_SASL_PWDB to name "
                            "a readable password file (user:password lines)\n");
            return EX_CONFIG;
        }
    }
    if (settings.auth_file != NULL && !sasl_pwdb_readable(settings.auth_file)) {
        fprintf(stderr, "Could not open authfile [%s] for reading, error %s\n",
                settings.auth_file, strerror(errno));
        return EX_CONFIG;
    }
    if (settings.tls.enabled) {
        char err[512];
        if (tls_open(&settings.tls, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s\n", err);
            return EX_USAGE; /* memcached's code for it */
        }
    }
    log_set_level(settings.verbose);
    dir = absolute_dir(settings.data_dir);
    if (dir == NULL) {
        return EX_OSERR;
    }
    free(settings.data_dir);
    settings.data_dir = dir;

    if (settings.log_file != NULL) {
        int fd = open(settings.log_file,
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            fprintf(stderr, "bitcached: cannot open log file %s: %s\n",
                    settings.log_file, strerror(errno));
            return EX_CANTCREAT;
        }
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    signal(SIGPIPE, SIG_IGN);
    /* memcached takes SIGHUP as a cue to reload what it has to reload
     * (nothing but a proxy's configuration) and goes on serving; closing
     * the terminal of a server in the foreground must not stop it. */
    signal(SIGHUP, SIG_IGN);
    if (settings.daemonize && (rc = daemonize()) != 0) {
        fprintf(stderr, "bitcached: cannot daemonize: %s\n", strerror(rc));
        return EX_OSERR;
    }
    if (settings.pidfile != NULL &&
        (rc = write_pidfile(settings.pidfile)) != 0) {
        /* As memcached: a pidfile that cannot be written is reported, not
         * fatal (Debian's memcached.conf names a directory that may not
         * exist). */
        log_msg(LOG_WARN, "cannot write pidfile %s: %s", settings.pidfile,
                strerror(rc));
        free(settings.pidfile);
        settings.pidfile = NULL;
    }
    if ((rc = drop_privileges(settings.user, settings.data_dir)) != 0) {
        exit_code = rc;
        goto out;
    }

    srv.settings = &settings;
    srv.started = time(NULL);
    if (evthread_use_pthreads() != 0) {
        exit_code = EX_OSERR;
        goto out;
    }
    srv.main_base = event_base_new();
    if (srv.main_base == NULL) {
        exit_code = EX_OSERR;
        goto out;
    }
    /* Bind before the (possibly long) recovery so that a port clash with
     * a running server fails at once; listen() waits for the store to be
     * open (listen_enable), so meanwhile clients are refused, not left
     * hanging. */
    if ((rc = listen_open(&srv, &listeners)) != 0) {
        exit_code = EX_CANTCREAT;
        goto out;
    }
    srv.env.cas_disabled = settings.mc.cas_disabled;
    srv.env.nclasses = settings_ext_classes(&settings.mc, srv.env.class_size);
    if ((exit_code = open_store(&srv)) != 0) {
        goto out;
    }
    /* UDP has no listen(): a socket bound during recovery would queue
     * the datagrams sent meanwhile and answer them long after. Bound only
     * now, a request sent during recovery is refused (port unreachable),
     * as a TCP connect is; a clash on the UDP port shows after recovery. */
    if (settings.udp_port != 0 && (rc = udp_open(&srv, &udp)) != 0) {
        exit_code = EX_CANTCREAT;
        goto out;
    }
    srv.udp = udp; /* its held replies are sent on commits (worker.c) */
    srv.env.store = srv.store;
    srv.env.started_s = (int64_t)srv.started;
    srv.env.item_max = settings.item_size_max;
    if (settings.input_budget != 0) {
        in_budget.limit = settings.input_budget;
        srv.env.in_budget = &in_budget;
    }
    srv.env.enable_shutdown = settings.enable_shutdown;
    srv.env.flush_disabled = settings.mc.flush_disabled;
    srv.env.dump_disabled = settings.mc.dump_disabled;
    srv.env.watch_disabled = settings.mc.watch_disabled;
    srv.env.set_memlimit = set_memlimit;
    srv.env.set_memlimit_arg = &settings;
    srv.env.refresh_certs = refresh_certs;
    atomic_store(&admin_state.lru_crawler, settings.mc.lru_crawler);
    atomic_store(&admin_state.lru_crawler_sleep,
                 (unsigned)settings.mc.lru_crawler_sleep);
    atomic_store(&admin_state.lru_crawler_tocrawl,
                 settings.mc.lru_crawler_tocrawl);
    atomic_store(&admin_state.slab_automove,
                 (unsigned)settings.mc.slab_automove);
    atomic_store(&admin_state.slab_automove_ratio,
                 settings.mc.slab_automove_ratio);
    admin_state.slab_reassign = settings.mc.slab_reassign;
    admin_state.lru_maintainer = settings.mc.lru_maintainer;
    atomic_store(&admin_state.lru_segmented, settings.mc.lru_segmented);
    atomic_store(&admin_state.temp_lru, settings.mc.temp_lru);
    atomic_store(&admin_state.temporary_ttl,
                 (unsigned)settings.mc.temporary_ttl);
    atomic_store(&admin_state.hot_lru_pct, (unsigned)settings.mc.hot_lru_pct);
    atomic_store(&admin_state.warm_lru_pct, (unsigned)settings.mc.warm_lru_pct);
    atomic_store(&admin_state.hot_max_factor, settings.mc.hot_max_factor);
    atomic_store(&admin_state.warm_max_factor, settings.mc.warm_max_factor);
    prefix_stats_configure(settings.mc.prefix_delimiter,
                           settings.mc.detail_enabled);
    srv.env.admin = &admin_state;
    srv.env.watch = watch_event;
    srv.env.watchers = &watch_count;
    srv.env.version = SERVER_PROTOCOL_VERSION;
    srv.env.stats = stats_reply;
    srv.env.stats_arg = &srv;
    srv.env.class_figures = stats_class_figures;
    srv.env.class_figures_arg = &srv;
    srv.env.verbosity = set_verbosity;
    if (cmd_meta_create(&srv.env.meta, CMD_META_CAP) != 0) {
        exit_code = EX_OSERR;
        goto out;
    }
    /* listen() now that the store is open, but before any thread starts:
     * a port another process bound too and listened on first (two servers
     * started at once on the same port), or a unix socket that cannot be
     * made, fails here, before a replica connects to its primary (a retry
     * would cost the primary a second full copy) or a worker runs. The
     * connections that arrive meanwhile wait in the backlog until the main
     * loop runs, after the workers started. */
    if (listen_enable(listeners) != 0) {
        exit_code = EX_CANTCREAT; /* as a bind failure at start */
        goto out;
    }
    /* Replication before the workers: a replica is read-only from the
     * first request on. */
    struct repl_config rcfg = {
            .listen_addr =
                    settings.nlisten > 0 ? settings.listen[0] : "127.0.0.1",
            .repl_port = settings.repl_port,
            .replica_of = settings.replica_of,
            .auth_file = settings.auth_file,
            .sasl_pwdb = settings.sasl ? srv.sasl_pwdb : NULL,
            .replica_auth = settings.replica_auth,
            .min_acks = settings.min_replicas_ack,
            .ack_timeout_ms = settings.replica_ack_timeout_ms,
    };
    rc = repl_start(&srv.repl, srv.store, &rcfg);
    if (rc != 0) {
        /* a newer build's file: as a newer file of the store */
        exit_code = rc == REPL_START_NEWER ? EX_CANTCREAT : EX_CONFIG;
        goto out;
    }
    /* what a lost state file asked of replication is done (saved) */
    (void)cask_state_lost_done(srv.store);
    srv.env.replica_of = replica_of;
    srv.env.replica_of_arg = &srv;

    if (worker_create_all(&srv, settings.threads) != 0 ||
        (udp != NULL && udp_enable(udp) != 0) || worker_start_all(&srv) != 0) {
        fprintf(stderr, "bitcached: cannot start worker threads\n");
        exit_code = EX_OSERR;
        goto out;
    }
    sigterm = evsignal_new(srv.main_base, SIGTERM, on_stop_signal, &srv);
    sigint = evsignal_new(srv.main_base, SIGINT, on_stop_signal, &srv);
    /* memcached's graceful stop (its restartable cache is stopped so) */
    sigusr1 = evsignal_new(srv.main_base, SIGUSR1, on_stop_signal, &srv);
    if (sigterm == NULL || sigint == NULL || sigusr1 == NULL ||
        event_add(sigterm, NULL) != 0 || event_add(sigint, NULL) != 0 ||
        event_add(sigusr1, NULL) != 0) {
        exit_code = EX_OSERR;
        goto out;
    }
    if (settings.unix_socket == NULL) {
        /* once the listed ports take connections; as memcached, not with
         * -s */
        portfile_commit();
    }
    atomic_store(&srv.accepting, true);
    notify_ready();
    log_msg(LOG_INFO, "bitcached %s ready: %u threads, sync=%s",
            PACKAGE_VERSION, settings.threads,
            settings_sync_name(settings.sync));

    event_base_dispatch(srv.main_base);

    /* Stop accepting, let the workers finish and drain, then close the
     * store so that everything acknowledged is on disk. */
    atomic_store(&srv.accepting, false);
    atomic_store(&srv.stopping, true);
    listen_close(&listeners);
    worker_stop_all(&srv);

out:
    /* A start-up failure after worker_start_all (a partial start, the
     * signal events) comes here with workers' loops running: stop them
     * before anything of theirs is freed (a no-op after the stop above). */
    if (srv.workers != NULL) {
        worker_stop_all(&srv);
    }
    /* UDP events live on the workers' bases: free them first */
    srv.udp = NULL;
    udp_close(&udp);
    if (srv.workers != NULL) {
        worker_destroy_all(&srv);
    }
    listen_close(&listeners);
    repl_stop(&srv.repl);
    if (srv.store != NULL) {
        int src = cask_sync(srv.store);
        if (src != CASK_OK) {
            /* Under interval and never, acknowledged writes are in the
             * kernel but not known to be on disk: a power loss now could
             * lose them. Under always each was synced or journaled before
             * its reply; the disk failed all the same. Say so, and do not
             * let the service manager take this for a clean stop. */
            log_msg(LOG_ERR, "final sync failed: %s; %s", cask_strerror(src),
                    settings.sync == CASK_SYNC_ALWAYS
                            ? "every acknowledged write was synced or is in "
                              "the commit journal, which the next start "
                              "replays (the storage's lines say what else)"
                            : "writes since the last good sync may not be on "
                              "disk");
            if (exit_code == 0) {
                exit_code = EX_IOERR;
            }
        }
        if (cask_close(&srv.store) != CASK_OK && exit_code == 0) {
            /* logged: what the close could not make durable */
            exit_code = EX_IOERR;
        }
    }
    cmd_meta_destroy(&srv.env.meta);
    if (sigterm != NULL) {
        event_free(sigterm);
    }
    if (sigint != NULL) {
        event_free(sigint);
    }
    if (sigusr1 != NULL) {
        event_free(sigusr1);
    }
    if (srv.main_base != NULL) {
        event_base_free(srv.main_base);
    }
    if (settings.pidfile != NULL && unlink(settings.pidfile) != 0 &&
        errno != ENOENT) {
        log_msg(LOG_WARN, "cannot remove pidfile %s: %s", settings.pidfile,
                strerror(errno));
    }
    if (exit_code == 0) {
        log_msg(LOG_INFO, "stopped");
    }
    tls_close();
    settings_deinit(&settings);
    return exit_code;
}
