/* tls_settings.c - parses memcached's ssl_* extended options into struct
 * tls_settings (implements tls_settings.h); settings_ext.c's -o parser hands
 * each one over. Touches nothing else; the checks that need the files
 * (certificate, key) are tls.c's, at start-up. Refusals print memcached's
 * messages. */
#include "server/tls_settings.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
tls_settings_defaults(struct tls_settings *t)
{
    memset(t, 0, sizeof(*t));
    t->keyformat = 1; /* SSL_FILETYPE_PEM */
    t->wbuf_size_kb = 16;
    t->min_version = 2; /* TLS 1.2, as memcached */
}

void
tls_settings_deinit(struct tls_settings *t)
{
    free(t->chain_cert);
    free(t->key);
    free(t->ciphers);
    free(t->ca_cert);
    memset(t, 0, sizeof(*t));
}

static const char *const names[] = {
        "ssl_chain_cert",  "ssl_key",           "ssl_keyformat",
        "ssl_verify_mode", "ssl_ciphers",       "ssl_ca_cert",
        "ssl_wbuf_size",   "ssl_session_cache", "ssl_kernel_tls",
        "ssl_min_version",
};

bool
tls_settings_is_option(const char *name)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int
missing(const char *name)
{
    fprintf(stderr, "Missing %s argument\n", name);
    return -1;
}

/* memcached's two refusals of a bad value: "Invalid ssl_verify_mode. Use
 * help to see valid options." for a number out of range (invalid), "could
 * not parse argument to ssl_wbuf_size" for one that is not a number. */
static int
refused(const char *name, bool invalid)
{
    if (invalid) {
        fprintf(stderr, "Invalid %s. Use help to see valid options.\n", name);
    } else {
        fprintf(stderr, "could not parse argument to %s\n", name);
    }
    return -1;
}

/* A whole decimal number in [min, max]. */
static int
small_int(const char *name, const char *value, long min, long max,
          bool range_is_invalid, int *out)
{
    char *end;
    long v;

    if (value == NULL) {
        return missing(name);
    }
    errno = 0;
    v = strtol(value, &end, 10);
    if (errno != 0 || *end != '\0' || end == value) {
        return refused(name, false);
    }
    if (v < min || v > max) {
        return refused(name, range_is_invalid);
    }
    *out = (int)v;
    return 0;
}

static int
path(const char *name, const char *value, char **dst)
{
    if (value == NULL || *value == '\0') {
        return missing(name);
    }
    free(*dst);
    *dst = strdup(value);
    if (*dst == NULL) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    return 0;
}

int
tls_settings_apply(struct tls_settings *t, const char *name, const char *value)
{
    int v;

    if (strcmp(name, "ssl_chain_cert") == 0) {
        return path(name, value, &t->chain_cert);
    }
    if (strcmp(name, "ssl_key") == 0) {
        return path(name, value, &t->key);
    }
    if (strcmp(name, "ssl_ca_cert") == 0) {
        return path(name, value, &t->ca_cert);
    }
    if (strcmp(name, "ssl_ciphers") == 0) {
        return path(name, value, &t->ciphers);
    }
    if (strcmp(name, "ssl_keyformat") == 0) {
        /* memcached takes OpenSSL's number; the names are accepted too */
        if (value != NULL && strcasecmp(value, "PEM") == 0) {
            t->keyformat = 1;
            return 0;
        }
        if (value != NULL && strcasecmp(value, "DER") == 0) {
            t->keyformat = 2;
            return 0;
        }
        if (small_int(name, value, 1, 2, false, &v) < 0) {
            return -1;
        }
        t->keyformat = v;
        return 0;
    }
    if (strcmp(name, "ssl_verify_mode") == 0) {
        if (small_int(name, value, 0, 3, true, &v) < 0) {
            return -1;
        }
        t->verify_mode = v;
        return 0;
    }
    if (strcmp(name, "ssl_min_version") == 0) {
        if (small_int(name, value, 0, 3, true, &v) < 0) {
            return -1;
        }
        t->min_version = v;
        return 0;
    }
    if (strcmp(name, "ssl_wbuf_size") == 0) {
        if (small_int(name, value, 1, 16 * 1024, false, &v) < 0) {
            return -1;
        }
        t->wbuf_size_kb = (unsigned)v;
        return 0;
    }
    if (strcmp(name, "ssl_session_cache") == 0) {
        t->session_cache = true;
        return 0;
    }
    if (strcmp(name, "ssl_kernel_tls") == 0) {
        t->kernel_tls = true;
        return 0;
    }
    fprintf(stderr, "Illegal suboption \"%s\"\n", name);
    return -1;
}

const char *
tls_settings_version_name(int v)
{
    switch (v) {
    case 0:
        return "tlsv1.0";
    case 1:
        return "tlsv1.1";
    case 3:
        return "tlsv1.3";
    default:
        return "tlsv1.2";
    }
}
