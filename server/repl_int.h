/* repl_int.h - what repl.c (setup, state file, stats, promotion) shares with
 * repl_primary.c (the listener and one streamer thread per replica) and
 * repl_replica.c (the replica's stream thread). Private to those files. */
#ifndef BITCACHED_REPL_INT_H
#define BITCACHED_REPL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/repl.h"
#include "storage/cask_stream.h"

/* Appends sent at a time, and heartbeat period. */
#define REPL_CHUNK        (256u * 1024)
#define REPL_HEARTBEAT_MS 100u

/* One connected replica, as its streamer thread sees it. */
struct repl_stream {
    struct repl *r;
    int fd;
    pthread_t thr;
    atomic_bool done; /* the thread has finished: join and free */
    char addr[64];
    _Atomic uint64_t bytes;
    _Atomic uint64_t acked; /* records the replica reported applied */
    pthread_t ack_thr;      /* reads the replica's acks */
    bool ack_on;
    atomic_bool broken; /* the ack reader saw the connection end */
    /* r->ack_mu: per shard, records the replica has applied (UINT64_MAX
     * while it does not know); valid once counted is set */
    uint64_t *acked_n;
    bool counted;
    struct repl_stream *next;
};

struct repl {
    struct cask *store;
    unsigned nshards;
    atomic_bool stopping;

    /* state file (DIR/replication); state_mu covers these and the
     * replica's positions below */
    pthread_mutex_t state_mu;
    uint64_t store_id;   /* this store's id as a primary */
    uint64_t primary_id; /* the primary we copy (0: none) */
    struct cask_pos *pos;

    /* primary */
    int lfd; /* -1: no --repl-port */
    pthread_t accept_thr;
    bool accept_on;
    pthread_mutex_t streams_mu; /* covers streams */
    struct repl_stream *streams;
    atomic_uint replicas;
    _Atomic uint64_t bytes_streamed;
    _Atomic uint64_t records_streamed;
    _Atomic uint64_t full_syncs_served;
    unsigned min_acks;
    unsigned ack_timeout_ms;
    pthread_mutex_t ack_mu; /* covers every stream's acked_n and counted */
    pthread_cond_t ack_cv;  /* an ack arrived, or a replica went */
    _Atomic uint64_t ack_timeouts;

    /* primary: where replicas' credentials are checked (NULL: none) */
    char *auth_file;
    char *sasl_pwdb;

    /* replica */
    char *auth_user; /* --replica-auth credentials, or NULL */
    char *auth_pass;
    atomic_bool is_replica;
    atomic_bool rstop;
    char *host;
    char *port;
    pthread_t replica_thr;
    bool replica_on;
    atomic_bool connected;
    _Atomic uint64_t bytes_received;
    _Atomic uint64_t records_applied;
    _Atomic uint64_t full_syncs;
    _Atomic uint64_t reconnects;
    /* state_mu: from the last heartbeat */
    uint64_t *applied_n; /* records of each shard applied (when known) */
    uint64_t *primary_n; /* records the primary had appended */
    bool *n_known;
    uint64_t hb_wall_ms; /* primary's clock in the last heartbeat */
};

/* Write DIR/replication from r's fields (taking state_mu to read them),
 * after a cask_sync so no position runs ahead of durable data: called only
 * by whoever moves the positions (the replica thread, or with it stopped).
 * Blocks on fsyncs. 0 or an errno. */
int repl_state_save(struct repl *r);

/* Primary: bind --repl-port and start accepting. -1 after logging. */
int repl_primary_start(struct repl *r, const char *addr, int port);
void repl_primary_stop(struct repl *r);

/* Replica: start / stop the stream thread. */
int repl_replica_start(struct repl *r);
void repl_replica_stop(struct repl *r);

#endif
