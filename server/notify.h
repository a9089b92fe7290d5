/* notify.h - tells the service manager (systemd, Type=notify) how start-up
 * and shutdown are going: STATUS= lines, READY=1, STOPPING=1.
 * Owns no state. Uses libsystemd's sd_notify when the build has it
 * (HAVE_LIBSYSTEMD); otherwise every call is a no-op. Silent, and cheap, when
 * NOTIFY_SOCKET is unset (not started by systemd). Must not depend on any
 * other server module; safe to call from any thread.
 */
#ifndef BITCACHED_SERVER_NOTIFY_H
#define BITCACHED_SERVER_NOTIFY_H

/* Send READY=1. Call once, after the store is open and every listener is
 * bound, so that a unit ordered After=bitcached.service finds the port
 * accepting connections. Does not block (one datagram). */
void notify_ready(void);

/* Send STATUS=<text>, text formatted as by printf (newlines become blanks,
 * at most 255 bytes are sent). Shown by `systemctl status`. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Send STOPPING=1: the server has begun an orderly shutdown. */
void notify_stopping(void);

#endif /* BITCACHED_SERVER_NOTIFY_H */
