/* repl_wire.c - replication frames on a blocking socket (repl_wire.h).
 * A frame: u32 payload length, u8 type, u8 0, u16 shard, the payload, and
 * an XXH3-64 of everything after the length. Owns nothing. */
#include "server/repl_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

uint64_t
repl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
repl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
repl_sock_timeouts(int fd, unsigned rcv_ms, unsigned snd_ms)
{
    struct timeval tv;
    tv.tv_sec = rcv_ms / 1000;
    tv.tv_usec = (suseconds_t)(rcv_ms % 1000) * 1000;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    tv.tv_sec = snd_ms / 1000;
    tv.tv_usec = (suseconds_t)(snd_ms % 1000) * 1000;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int
repl_send(int fd, uint8_t type, uint16_t shard, const void *p1, size_t l1,
          const void *p2, size_t l2)
{
    char hdr[REPL_FRAME_HDR], sum[REPL_FRAME_SUM];
    XXH3_state_t st;

    if (l1 + l2 > REPL_FRAME_MAX) {
        return EMSGSIZE;
    }
    repl_put32(hdr, (uint32_t)(l1 + l2));
    hdr[4] = (char)type;
    hdr[5] = 0;
    hdr[6] = (char)(shard & 0xff);
    hdr[7] = (char)(shard >> 8);
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr + 4, 4);
    if (l1 > 0) {
        XXH3_64bits_update(&st, p1, l1);
    }
    if (l2 > 0) {
        XXH3_64bits_update(&st, p2, l2);
    }
    repl_put64(sum, XXH3_64bits_digest(&st));
    struct iovec iov[4] = {
            {hdr, sizeof(hdr)},
            {(void *)p1, l1},
            {(void *)p2, l2},
            {sum, sizeof(sum)},
    };
    struct iovec *v = iov;
    int n = 4;
    while (n > 0) {
        ssize_t w = writev(fd, v, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? ETIMEDOUT : errno;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= v->iov_len) {
            left -= v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + left;
            v->iov_len -= left;
        }
    }
    return 0;
}

/* Read exactly len bytes. */
static int
read_full(int fd, char *p, size_t len, const atomic_bool *stop,
          unsigned idle_ms)
{
    uint64_t last = repl_mono_ms();
    while (len > 0) {
        if (stop != NULL && atomic_load(stop)) {
            return ECANCELED;
        }
        ssize_t r = read(fd, p, len);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
            last = repl_mono_ms();
        } else if (r == 0) {
            return EPIPE;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (idle_ms != 0 && repl_mono_ms() - last >= idle_ms) {
                return ETIMEDOUT;
            }
        } else if (errno != EINTR) {
            return errno;
        }
    }
    return 0;
}

int
repl_recv(int fd, struct repl_frame *f, char **buf, size_t *cap,
          const atomic_bool *stop, unsigned idle_ms, uint32_t max_len)
{
    char hdr[REPL_FRAME_HDR];
    int rc = read_full(fd, hdr, sizeof(hdr), stop, idle_ms);
    if (rc != 0) {
        return rc;
    }
    uint32_t len = repl_get32(hdr);
    if (len > REPL_FRAME_MAX || len > max_len || hdr[5] != 0) {
        return EBADMSG;
    }
    size_t need = (size_t)len + REPL_FRAME_SUM;
    if (need > *cap) {
        char *nb = realloc(*buf, need);
        if (nb == NULL) {
            return ENOMEM;
        }
        *buf = nb;
        *cap = need;
    }
    rc = read_full(fd, *buf, need, stop, idle_ms);
    if (rc != 0) {
        return rc;
    }
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr + 4, 4);
    XXH3_64bits_update(&st, *buf, len);
    if (XXH3_64bits_digest(&st) != repl_get64(*buf + len)) {
        return EBADMSG;
    }
    f->type = (uint8_t)hdr[4];
    f->shard = (uint16_t)((unsigned char)hdr[6] |
                          ((unsigned)(unsigned char)hdr[7] << 8));
    f->len = len;
    f->p = *buf;
    return 0;
}
