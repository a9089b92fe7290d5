/* server.h - state shared by the server's threads: settings, the store, the
 * command environment, the workers and the connection counters. main.c owns
 * the one instance; workers and stats read it, and write only the atomics. */
#ifndef BITCACHED_SERVER_H
#define BITCACHED_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "server/cmd.h"
#include "server/settings.h"

/* What `version` and `stats version` report: the memcached release whose
 * protocol we follow, alone, since client libraries parse it (libmemcached
 * rejects a major version of 0, node's memcached takes the last x.y.z it
 * finds, memcached's conformance tool expects 1.6 behaviour only from 1.6 or
 * later). `stats` says what the server is in its "server" line. */
#define SERVER_PROTOCOL_VERSION "1.6.18"

struct worker;
struct event_base;

struct server {
    struct settings *settings;
    struct cask *store;
    struct repl *repl; /* replication (server/repl.h) */
    struct udp *udp;   /* -U: the UDP sockets (server/udp.h), or NULL */
    struct cmd_env env;
    struct event_base *main_base;
    struct worker *workers;
    unsigned nworkers;
    struct cask_aio *aio;   /* --io-threads: reads of values not cached */
    time_t started;         /* wall clock at start, for uptime */
    atomic_uint curr_conns; /* client connections open now */
    /* Listening sockets and UDP handlers: memcached counts them as
     * connections in curr_connections and total_connections. */
    atomic_uint own_conns;
    atomic_uint_fast64_t total_conns;
    atomic_uint_fast64_t rejected_conns;
    atomic_uint_fast64_t listen_disabled_num; /* accept paused, out of fds */
    atomic_uint_fast64_t listen_disabled_us;  /* their length, once over */
    /* -S: the MEMCACHED_SASL_PWDB password file; NULL without -S. */
    const char *sasl_pwdb;
    atomic_bool stopping;
    atomic_bool accepting;
};

/* Start a graceful stop from any thread (shutdown command, signals). */
void server_request_stop(struct server *srv);

#endif
