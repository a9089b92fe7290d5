/* notify.c - sd_notify(3) wrappers for readiness and status (see notify.h).
 * No state of its own: sd_notify reads NOTIFY_SOCKET on every call. Without
 * libsystemd the functions compile to nothing.
 */
#include <config.h> /* autoconf's; <> so that server/config.h is not taken */

#include "server/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* STATUS= plus up to 255 bytes of text: one line on `systemctl status`. */
#define NOTIFY_STATUS_MAX 256

void
notify_ready(void)
{
#ifdef HAVE_LIBSYSTEMD
    (void)sd_notify(0, "READY=1");
#endif
}

void
notify_status(const char *fmt, ...)
{
#ifdef HAVE_LIBSYSTEMD
    char msg[sizeof("STATUS=") - 1 + NOTIFY_STATUS_MAX];
    const size_t off = sizeof("STATUS=") - 1;
    va_list ap;
    char *p;

    if (getenv("NOTIFY_SOCKET") == NULL) {
        return; /* not under systemd: skip the formatting too */
    }
    memcpy(msg, "STATUS=", off);
    va_start(ap, fmt);
    vsnprintf(msg + off, sizeof(msg) - off, fmt, ap);
    va_end(ap);
    /* A newline would start a new VAR=value assignment in the message. */
    for (p = msg + off; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    (void)sd_notify(0, msg);
#else
    (void)fmt;
#endif
}

void
notify_stopping(void)
{
#ifdef HAVE_LIBSYSTEMD
    (void)sd_notify(0, "STOPPING=1");
#endif
}
