/* repl_wire.h - framing of the replication stream (storage/REPLICATION.md):
 * frame types, little-endian helpers, and blocking send/receive of whole
 * checked frames. Shared by repl_primary.c and repl_replica.c. */
#ifndef BITCACHED_REPL_WIRE_H
#define BITCACHED_REPL_WIRE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REPL_VERSION   1u
#define REPL_FRAME_HDR 8u
#define REPL_FRAME_SUM 8u
/* Largest payload accepted: a record of the largest value the format
 * admits, plus the frame's own fields. */
#define REPL_FRAME_MAX ((1u << 30) + (1u << 20))

enum repl_frame_type {
    REPL_HELLO = 1,        /* replica -> primary */
    REPL_WELCOME = 2,      /* primary -> replica */
    REPL_ERROR = 3,        /* either way: text, then the sender closes */
    REPL_RECORDS = 4,      /* a run of log records of one shard */
    REPL_SNAP_BEGIN = 5,   /* a full copy of one shard starts */
    REPL_SNAP_RECORDS = 6, /* items of that copy */
    REPL_SNAP_END = 7,     /* the copy is complete */
    REPL_FLUSH = 8,        /* the primary's flush threshold */
    REPL_HEARTBEAT = 9,    /* primary's clock and append counts */
    REPL_ACK = 10,         /* replica -> primary: applied positions */
};

struct repl_frame {
    uint8_t type;
    uint16_t shard;
    uint32_t len; /* payload bytes */
    char *p;      /* payload (points into the receive buffer) */
};

static inline void
repl_put32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (char)(v >> (8 * i));
    }
}

static inline void
repl_put64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (char)(v >> (8 * i));
    }
}

static inline uint32_t
repl_get32(const char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)(unsigned char)p[i] << (8 * i);
    }
    return v;
}

static inline uint64_t
repl_get64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)(unsigned char)p[i] << (8 * i);
    }
    return v;
}

/* Send one frame whose payload is p1[0..l1) followed by p2[0..l2). Blocks
 * (the socket's send timeout applies). Returns 0 or an errno. */
int repl_send(int fd, uint8_t type, uint16_t shard, const void *p1, size_t l1,
              const void *p2, size_t l2);

/* Receive one whole frame of at most max_len payload bytes into *buf
 * (grown as needed). The socket has a receive timeout: each time it expires
 * *stop is checked (stop: ECANCELED) and idle_ms counted (no byte for that
 * long: ETIMEDOUT). Returns 0, EPIPE at end of stream, EBADMSG for a
 * damaged or oversized frame, or an errno. */
int repl_recv(int fd, struct repl_frame *f, char **buf, size_t *cap,
              const atomic_bool *stop, unsigned idle_ms, uint32_t max_len);

/* What a primary accepts from a replica (HELLO, ACK): small frames. */
#define REPL_FROM_REPLICA_MAX (1u << 20)

/* Milliseconds of CLOCK_REALTIME (heartbeats) and CLOCK_MONOTONIC. */
uint64_t repl_wall_ms(void);
uint64_t repl_mono_ms(void);

/* Receive and send timeouts of a stream socket. */
void repl_sock_timeouts(int fd, unsigned rcv_ms, unsigned snd_ms);

#endif
