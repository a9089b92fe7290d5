/* config.c - configuration file to argv (see config.h for the format).
 * Pure: no globals, no logging; the caller decides what an error means.
 * Must not depend on settings.c: it knows which strings look like options,
 * not which options exist.
 */
#include <config.h> /* autoconf's; <> so that server/config.h is not taken */

#include "server/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARGV0 "bitcached"

/* A growing NULL-terminated argv. */
struct arglist {
    char **v;
    int n;
    int cap;
};

static void errf(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Append s (taking ownership) to l. Returns 0 or ENOMEM; on ENOMEM s is
 * freed. */
static int
arglist_push(struct arglist *l, char *s)
{
    if (l->n + 2 > l->cap) {
        int cap = l->cap == 0 ? 8 : l->cap * 2;
        char **v = realloc(l->v, (size_t)cap * sizeof(*v));

        if (v == NULL) {
            free(s);
            return ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    l->v[l->n] = NULL;
    return 0;
}

/* True if the long option name (without "--", up to '=' or end) could be
 * taken by getopt_long as --config: the full name or an abbreviation of it
 * that no other option shares ("--conf", "--confi"). */
static bool
names_config(const char *name, size_t len)
{
    return len >= 4 && len <= 6 && strncmp(name, "config", len) == 0;
}

/* Turn one line (comment already cut, NUL-terminated, blanks trimmed at
 * both ends, not empty) into one argv element stored in *out (malloc'd).
 * Returns 0, EINVAL with a message in why, or ENOMEM. */
static int
line_to_arg(const char *line, char **out, const char **why)
{
    size_t flen = 0;
    const char *val;
    size_t vlen;
    char *arg;

    /* Debian's memcached.conf names its log file with a bare "logfile PATH"
     * line (its init script reads it); take it as --log-file so that such a
     * file can be used unchanged. */
    if (strncmp(line, "logfile", 7) == 0 && is_blank(line[7])) {
        val = line + 7;
        while (is_blank(*val)) {
            val++;
        }
        if (asprintf(&arg, "--log-file=%s", val) < 0) {
            return ENOMEM;
        }
        *out = arg;
        return 0;
    }
    if (line[0] != '-' || line[1] == '\0' || is_blank(line[1])) {
        *why = "expected an option starting with '-' (or 'logfile PATH')";
        return EINVAL;
    }
    while (line[flen] != '\0' && !is_blank(line[flen])) {
        flen++;
    }
    if (flen == 2 && line[1] == '-') {
        *why = "'--' is not an option";
        return EINVAL;
    }
    if (line[1] == '-') {
        size_t nlen = strcspn(line + 2, "= \t\r\v\f");

        if (names_config(line + 2, nlen)) {
            *why = "--config cannot be used inside a configuration file";
            return EINVAL;
        }
    }
    val = line + flen;
    while (is_blank(*val)) {
        val++;
    }
    vlen = strlen(val);

    /* No value, or the flag already carries one after '=': the whole line is
     * one argument, so a value after '=' may contain blanks. */
    if (vlen == 0 || memchr(line, '=', flen) != NULL) {
        arg = strdup(line);
    } else {
        bool is_long = line[1] == '-';
        size_t len = flen + (is_long ? 1 : 0) + vlen;

        arg = malloc(len + 1);
        if (arg != NULL) {
            char *p = arg;

            memcpy(p, line, flen);
            p += flen;
            if (is_long) {
                *p++ = '=';
            }
            memcpy(p, val, vlen);
            p[vlen] = '\0';
        }
    }
    if (arg == NULL) {
        return ENOMEM;
    }
    *out = arg;
    return 0;
}

/* Cut a '#' comment and trailing blanks, skip leading blanks. Returns the
 * start of what is left (possibly an empty string). */
static char *
trim_line(char *line, size_t len)
{
    char *hash = memchr(line, '#', len);
    char *end;

    if (hash != NULL) {
        *hash = '\0';
        len = (size_t)(hash - line);
    }
    end = line + len;
    while (end > line && (is_blank(end[-1]) || end[-1] == '\n')) {
        end--;
    }
    *end = '\0';
    while (is_blank(*line)) {
        line++;
    }
    return line;
}

int
config_read(const char *path, int *argc, char ***argv, char *err, size_t errlen)
{
    struct arglist l = {NULL, 0, 0};
    FILE *f = NULL;
    char *buf = NULL;
    size_t bufcap = 0;
    unsigned long lineno = 0;
    ssize_t got;
    int rc = 0;

    f = fopen(path, "re");
    if (f == NULL) {
        rc = errno;
        errf(err, errlen, "config file %s: %s", path, strerror(rc));
        return rc;
    }
    rc = arglist_push(&l, strdup(ARGV0));
    if (rc == 0 && l.v[0] == NULL) {
        rc = ENOMEM;
    }
    if (rc != 0) {
        errf(err, errlen, "config file %s: %s", path, strerror(rc));
        goto out;
    }

    for (;;) {
        const char *why = NULL;
        char *line;
        char *arg = NULL;

        /* getline returns -1 both at end of file and on error (ENOMEM does
         * not set the stream's error flag), so errno tells them apart. */
        errno = 0;
        got = getline(&buf, &bufcap, f);
        if (got == -1) {
            break;
        }
        lineno++;
        if (memchr(buf, '\0', (size_t)got) != NULL) {
            rc = EINVAL;
            errf(err, errlen, "config file %s, line %lu: NUL byte in line",
                 path, lineno);
            goto out;
        }
        line = trim_line(buf, (size_t)got);
        if (*line == '\0') {
            continue;
        }
        rc = line_to_arg(line, &arg, &why);
        if (rc == 0) {
            rc = arglist_push(&l, arg);
        }
        if (rc != 0) {
            errf(err, errlen, "config file %s, line %lu: %s%s%s", path, lineno,
                 why != NULL ? why : strerror(rc), why != NULL ? ": " : "",
                 why != NULL ? line : "");
            goto out;
        }
    }
    if (ferror(f) || errno != 0) {
        rc = errno != 0 ? errno : EIO;
        errf(err, errlen, "config file %s, after line %lu: %s", path, lineno,
             strerror(rc));
        goto out;
    }

out:
    free(buf);
    fclose(f);
    if (rc != 0) {
        config_free(&l.v);
        return rc;
    }
    *argc = l.n;
    *argv = l.v;
    return 0;
}

void
config_free(char ***argv)
{
    char **v;

    if (argv == NULL || *argv == NULL) {
        return;
    }
    for (v = *argv; *v != NULL; v++) {
        free(*v);
    }
    free(*argv);
    *argv = NULL;
}
