/* tls_settings.h - memcached's TLS options (-Z and the -o ssl_* keys) as
 * one struct; the -o parser (settings_ext.c) hands each ssl_* key=value
 * over. No OpenSSL here: tls.c turns these into a context. */
#ifndef BITCACHED_TLS_SETTINGS_H
#define BITCACHED_TLS_SETTINGS_H

#include <stdbool.h>

struct tls_settings {
    bool enabled;          /* -Z */
    char *chain_cert;      /* ssl_chain_cert: PEM chain */
    char *key;             /* ssl_key: private key (else in the chain) */
    int keyformat;         /* ssl_keyformat: 1 PEM, 2 DER (OpenSSL's) */
    int verify_mode;       /* ssl_verify_mode 0-3, as memcached */
    char *ciphers;         /* ssl_ciphers; NULL: OpenSSL's default */
    char *ca_cert;         /* ssl_ca_cert: CAs for client certificates */
    unsigned wbuf_size_kb; /* ssl_wbuf_size: largest record written */
    bool session_cache;    /* ssl_session_cache */
    bool kernel_tls;       /* ssl_kernel_tls */
    int min_version;       /* ssl_min_version 0-3: TLS 1.0 to 1.3 */
};

void tls_settings_defaults(struct tls_settings *t);
void tls_settings_deinit(struct tls_settings *t);

/* Whether name is one of memcached's ssl_* extended options. */
bool tls_settings_is_option(const char *name);

/* Apply one extended option of -o: name (an ssl_* key) and its value (NULL
 * when given without '='). Returns 0, or -1 after printing memcached's
 * one-line refusal to stderr (memcached then exits 1). */
int tls_settings_apply(struct tls_settings *t, const char *name,
                       const char *value);

/* The name stats settings shows for a min_version ("tlsv1.2"). */
const char *tls_settings_version_name(int v);

#endif
