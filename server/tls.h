/* tls.h - TLS for client connections with OpenSSL (memcached's -Z): the
 * server-wide context built from struct tls_settings, its reload by
 * refresh_certs, the per-connection TLS state that conn.c reads and writes
 * through, and the TLS counters behind stats. conn.c stays free of OpenSSL.
 */
#ifndef BITCACHED_TLS_H
#define BITCACHED_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "server/tls_settings.h"

struct evbuffer;
struct tls_conn;

/* Build the context (certificate, key, CAs, verify mode, ciphers, minimum
 * version). Main thread, before the workers start. t must outlive the
 * server (refresh_certs reads the paths again). Returns 0, or -1 with a
 * message in err. */
int tls_open(const struct tls_settings *t, char *err, size_t errlen);
/* Free the context (connections still open keep theirs). */
void tls_close(void);
/* Whether tls_open succeeded. */
bool tls_enabled(void);

/* refresh_certs: build a new context from the same files and swap it in;
 * new connections use it, open ones keep theirs. Any thread. Returns 0, or
 * -1 with the reason in err (the old context stays). */
int tls_refresh(char *err, size_t errlen);

/* A TLS connection over the accepted socket fd (server side). NULL on
 * failure (logged). Worker thread; the object belongs to that thread. */
struct tls_conn *tls_conn_create(int fd);
/* Send close_notify if the session is healthy, then free. */
void tls_conn_destroy(struct tls_conn **tc);

/* Read up to n decrypted bytes, as read(2) would: >0 bytes, 0 at the
 * peer's close, -1 with errno EAGAIN (then *want_write says the handshake
 * waits to write, not to read) or another errno (connection broken;
 * counted as a handshake or protocol error). */
ssize_t tls_conn_read(struct tls_conn *tc, void *buf, size_t n,
                      bool *want_write);
/* Encrypt and send from the front of out (one record of at most
 * ssl_wbuf_size per call), draining what was sent. Returns bytes taken
 * from out, or -1 with errno EAGAIN or another errno. */
int tls_conn_write(struct tls_conn *tc, struct evbuffer *out);
/* Decrypted bytes OpenSSL holds that no socket event will announce. */
bool tls_conn_pending(const struct tls_conn *tc);

/* Counters, as memcached names them. */
struct tls_stats {
    uint64_t handshake_errors;
    uint64_t proto_errors;
    uint64_t new_sessions;
    int64_t refreshed_s; /* wall clock of the last (re)load */
};
void tls_get_stats(struct tls_stats *out);

#endif
