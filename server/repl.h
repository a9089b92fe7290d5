/* repl.h - replication: a primary streams each shard's log to replicas
 * connected to its --repl-port; a replica (--replica-of HOST:PORT) applies
 * the records to its own store, serves reads and refuses writes until it is
 * promoted. Stream format in storage/REPLICATION.md. Each side runs on
 * threads of its own (never a worker's), reads segments through the
 * storage library's stream calls, and talks blocking sockets. */
#ifndef BITCACHED_REPL_H
#define BITCACHED_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask.h"

struct repl;

struct repl_config {
    const char *listen_addr; /* --repl-port's address (the first -l) */
    int repl_port;           /* 0: accept no replicas */
    const char *replica_of;  /* "HOST:PORT", or NULL: not a replica */
    /* Primary: replicas must log in as a user of one of these files
     * (-Y's auth file, -S's MEMCACHED_SASL_PWDB) when set. */
    const char *auth_file;
    const char *sasl_pwdb;
    /* Replica: a file whose first line is "user:password", sent to the
     * primary (--replica-auth); NULL sends none. */
    const char *replica_auth;
    /* Primary: a write is acknowledged only once min_acks connected
     * replicas have applied it, or fails with CASK_ENOREPLICAS after
     * ack_timeout_ms (--min-replicas-ack, --replica-ack-timeout). */
    unsigned min_acks;
    unsigned ack_timeout_ms;
};

/* Start what cfg asks for: the replica's stream thread (the store is made
 * read-only first) and the primary's listener. Nothing is started when
 * neither is set, but *out is still made (for stats and promotion).
 * Returns 0, or -1 after printing why (bad address, port in use), or
 * REPL_START_NEWER (printed) when DIR/replication was written by a newer
 * format version (left as it is). */
int repl_start(struct repl **out, struct cask *store,
               const struct repl_config *cfg);
#define REPL_START_NEWER (-2)

/* cask_options.committed for a primary: with --min-replicas-ack, block
 * until enough replicas have applied shard's records up to append count
 * `appended`. Returns 0 or CASK_ENOREPLICAS. Any thread. */
int repl_wait_acks(struct repl *r, unsigned shard, uint64_t appended);

/* Stop every replication thread and free; safe on NULL. */
void repl_stop(struct repl **r);

/* `replica_of none`: stop following the primary (its position is kept on
 * disk for nothing: a primary gets a new store id) and take writes.
 * Returns 0, or -1 with a message in err. */
int repl_promote(struct repl *r, char *err, size_t cap);

/* `stats replication`: one line(name, value) per figure. */
void repl_stats(struct repl *r,
                void (*line)(void *arg, const char *name, const char *value),
                void *arg);

#endif
