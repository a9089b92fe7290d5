/* tls.c - OpenSSL for client connections (implements tls.h). Owns the
 * server-wide SSL_CTX (swapped whole by refresh_certs under ctx_mu, so a
 * failed reload leaves the served certificate alone), each connection's
 * SSL object, and the TLS counters. conn.c calls it with plain buffers and
 * an evbuffer; nothing else in the server includes OpenSSL.
 *
 * Reads and writes go straight through SSL_read/SSL_write on the
 * connection's own non-blocking socket, so the connection code (buffers,
 * backpressure, timeouts) is the same with and without TLS. Writes are
 * partial and may move (SSL_MODE_ENABLE_PARTIAL_WRITE and
 * ACCEPT_MOVING_WRITE_BUFFER): a retry after EAGAIN offers the same front
 * of the output queue, pulled up again.
 */
#include "server/tls.h"

#include "server/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tls_conn {
    SSL *ssl;
    bool failed; /* a fatal error: no close_notify */
};

static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *cur_ctx; /* covered by ctx_mu; each SSL holds a reference */
static const struct tls_settings *cfg;
static size_t wbuf_bytes;
static atomic_uint_fast64_t handshake_errors, proto_errors, new_sessions;
static _Atomic int64_t refreshed_s;

/* The first queued OpenSSL error, for a log line. */
static const char *
ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    return r != NULL ? r : "unknown error";
}

static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    (void)sess;
    atomic_fetch_add(&new_sessions, 1);
    return 0; /* OpenSSL keeps its own reference */
}

static int
version_of(int v)
{
    switch (v) {
    case 0:
        return TLS1_VERSION;
    case 1:
        return TLS1_1_VERSION;
    case 3:
        return TLS1_3_VERSION;
    default:
        return TLS1_2_VERSION;
    }
}

static int
verify_flags(int mode)
{
    switch (mode) {
    case 1:
        return SSL_VERIFY_PEER;
    case 2:
        return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    case 3:
        return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT |
               SSL_VERIFY_CLIENT_ONCE;
    default:
        return SSL_VERIFY_NONE;
    }
}

/* err gets what, then " : " and OpenSSL's earliest queued error, as
 * memcached words a failed load. */
static void
load_error(char *err, size_t errlen, const char *what)
{
    char reason[256];
    unsigned long e = ERR_get_error();

    if (e == 0) {
        snprintf(reason, sizeof(reason), "error:00000000:unknown");
    } else {
        ERR_error_string_n(e, reason, sizeof(reason));
    }
    snprintf(err, errlen, "%s : %s", what, reason);
    ERR_clear_error();
}

/* A new context from the settings' files. The error strings are
 * memcached's, so that refresh_certs answers as memcached does. */
static SSL_CTX *
build_ctx(const struct tls_settings *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const char *key = t->key != NULL ? t->key : t->chain_cert;
    char what[1200];

    ERR_clear_error();
    if (ctx == NULL) {
        snprintf(err, errlen, "Error creating the TLS context: %s",
                 ssl_reason());
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, version_of(t->min_version))) {
        snprintf(err, errlen, "Error setting the minimum TLS version");
        goto fail;
    }
    /* a client that closes without close_notify is a plain close */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_IGNORE_UNEXPECTED_EOF
#ifdef SSL_OP_ENABLE_KTLS
                                     | (t->kernel_tls ? SSL_OP_ENABLE_KTLS : 0)
#endif
    );
    /* one read(2) per batch of records rather than two per record; what
     * OpenSSL holds ahead is seen by SSL_has_pending */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (t->ciphers != NULL && !SSL_CTX_set_cipher_list(ctx, t->ciphers) &&
        !SSL_CTX_set_ciphersuites(ctx, t->ciphers)) {
        snprintf(err, errlen, "Error setting the cipher list: %s", t->ciphers);
        goto fail;
    }
    if (t->chain_cert == NULL) {
        snprintf(err, errlen,
                 "Error loading the certificate chain: "
                 "no ssl_chain_cert given");
        goto fail;
    }
    if (!SSL_CTX_use_certificate_chain_file(ctx, t->chain_cert)) {
        snprintf(what, sizeof(what), "Error loading the certificate chain: %s",
                 t->chain_cert);
        load_error(err, errlen, what);
        goto fail;
    }
    if (!SSL_CTX_use_PrivateKey_file(ctx, key, t->keyformat)) {
        snprintf(what, sizeof(what), "Error loading the key: %s", key);
        load_error(err, errlen, what);
        goto fail;
    }
    if (!SSL_CTX_check_private_key(ctx)) {
        load_error(err, errlen, "Error validating the certificate");
        goto fail;
    }
    if (t->ca_cert != NULL) {
        STACK_OF(X509_NAME) * names;
        if (!SSL_CTX_load_verify_locations(ctx, t->ca_cert, NULL)) {
            snprintf(what, sizeof(what), "Error loading the CA certificate: %s",
                     t->ca_cert);
            load_error(err, errlen, what);
            goto fail;
        }
        names = SSL_load_client_CA_file(t->ca_cert);
        if (names != NULL) {
            SSL_CTX_set_client_CA_list(ctx, names);
        }
    }
    SSL_CTX_set_verify(ctx, verify_flags(t->verify_mode), NULL);
    if (t->session_cache) {
        static const unsigned char sid_ctx[] = "bitcached";
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
        SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(ctx, 0);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int
tls_open(const struct tls_settings *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = build_ctx(t, err, errlen);

    if (ctx == NULL) {
        return -1;
    }
    cfg = t;
    wbuf_bytes = (size_t)t->wbuf_size_kb * 1024;
    pthread_mutex_lock(&ctx_mu);
    cur_ctx = ctx;
    pthread_mutex_unlock(&ctx_mu);
    atomic_store(&refreshed_s, (int64_t)time(NULL));
    return 0;
}

void
tls_close(void)
{
    pthread_mutex_lock(&ctx_mu);
    SSL_CTX_free(cur_ctx);
    cur_ctx = NULL;
    pthread_mutex_unlock(&ctx_mu);
    cfg = NULL;
}

bool
tls_enabled(void)
{
    return cfg != NULL;
}

int
tls_refresh(char *err, size_t errlen)
{
    SSL_CTX *ctx, *old;

    if (cfg == NULL) {
        snprintf(err, errlen, "Error TLS not enabled");
        return -1;
    }
    ctx = build_ctx(cfg, err, errlen);
    if (ctx == NULL) {
        return -1;
    }
    pthread_mutex_lock(&ctx_mu);
    old = cur_ctx;
    cur_ctx = ctx;
    pthread_mutex_unlock(&ctx_mu);
    SSL_CTX_free(old); /* connections using it hold their own reference */
    atomic_store(&refreshed_s, (int64_t)time(NULL));
    log_msg(LOG_INFO, "refresh_certs: certificate and key reloaded");
    return 0;
}

struct tls_conn *
tls_conn_create(int fd)
{
    struct tls_conn *tc = calloc(1, sizeof(*tc));

    if (tc == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&ctx_mu);
    tc->ssl = cur_ctx != NULL ? SSL_new(cur_ctx) : NULL;
    pthread_mutex_unlock(&ctx_mu);
    if (tc->ssl == NULL || !SSL_set_fd(tc->ssl, fd)) {
        log_msg(LOG_WARN, "<%d cannot set up TLS: %s", fd, ssl_reason());
        if (tc->ssl != NULL) {
            SSL_free(tc->ssl);
        }
        free(tc);
        return NULL;
    }
    SSL_set_accept_state(tc->ssl);
    return tc;
}

void
tls_conn_destroy(struct tls_conn **tcp)
{
    struct tls_conn *tc = *tcp;

    if (tc == NULL) {
        return;
    }
    if (!tc->failed && SSL_is_init_finished(tc->ssl)) {
        /* one non-blocking try: the socket closes right after */
        SSL_shutdown(tc->ssl);
    }
    SSL_free(tc->ssl);
    free(tc);
    *tcp = NULL;
    ERR_clear_error();
}

/* Map an SSL_get_error result: EAGAIN for the wants, a count and a log
 * line for the failures. */
static int
io_error(struct tls_conn *tc, int ret, bool was_up, const char *what,
         bool *want_write)
{
    int e = SSL_get_error(tc->ssl, ret);
    int saved = errno;

    switch (e) {
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        if (want_write != NULL) {
            *want_write = true;
        }
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        break;
    }
    tc->failed = true;
    if (!was_up) {
        atomic_fetch_add(&handshake_errors, 1);
        log_msg(LOG_INFO, "<%d TLS handshake failed: %s", SSL_get_fd(tc->ssl),
                e == SSL_ERROR_SYSCALL ? "connection closed" : ssl_reason());
    } else if (e != SSL_ERROR_SYSCALL || ERR_peek_error() != 0) {
        atomic_fetch_add(&proto_errors, 1);
        log_msg(LOG_INFO, "<%d TLS %s failed: %s", SSL_get_fd(tc->ssl), what,
                ssl_reason());
    }
    ERR_clear_error();
    errno = (e == SSL_ERROR_SYSCALL && saved != 0) ? saved : ECONNRESET;
    return -1;
}

ssize_t
tls_conn_read(struct tls_conn *tc, void *buf, size_t n, bool *want_write)
{
    int cap = n > INT32_MAX ? INT32_MAX : (int)n;
    bool was_up = SSL_is_init_finished(tc->ssl);
    int r;

    *want_write = false;
    ERR_clear_error();
    errno = 0;
    r = SSL_read(tc->ssl, buf, cap);
    if (r > 0) {
        return r;
    }
    return io_error(tc, r, was_up, "read", want_write);
}

int
tls_conn_write(struct tls_conn *tc, struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out);
    unsigned char *p;
    int r;

    if (len == 0) {
        return 0;
    }
    if (len > wbuf_bytes) {
        len = wbuf_bytes;
    }
    p = evbuffer_pullup(out, (ssize_t)len);
    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    ERR_clear_error();
    errno = 0;
    r = SSL_write(tc->ssl, p, (int)len);
    if (r > 0) {
        evbuffer_drain(out, (size_t)r);
        return r;
    }
    r = io_error(tc, r, SSL_is_init_finished(tc->ssl), "write", NULL);
    if (r == 0) {
        errno = ECONNRESET;
        r = -1;
    }
    return r;
}

bool
tls_conn_pending(const struct tls_conn *tc)
{
    return SSL_has_pending(tc->ssl) == 1;
}

void
tls_get_stats(struct tls_stats *out)
{
    out->handshake_errors = atomic_load(&handshake_errors);
    out->proto_errors = atomic_load(&proto_errors);
    out->new_sessions = atomic_load(&new_sessions);
    out->refreshed_s = atomic_load(&refreshed_s);
}
