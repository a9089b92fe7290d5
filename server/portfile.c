/* portfile.c - memcached's MEMCACHED_PORT_FILENAME (implements portfile.h).
 * Owns the NAME.lck stream while the listeners are being bound, on the
 * main thread at start-up only. Lines are memcached's: "TCP INET: 11211". */
#include "server/portfile.h"

#include "server/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static FILE *lck;
static char lck_path[4096];

/* The .lck stream, opened on first use; NULL when the variable is unset or
 * the file cannot be opened (memcached then carries on without it). */
static FILE *
stream(void)
{
    const char *name = getenv("MEMCACHED_PORT_FILENAME");

    if (lck != NULL || name == NULL || name[0] == '\0') {
        return lck;
    }
    if ((size_t)snprintf(lck_path, sizeof(lck_path), "%s.lck", name) >=
        sizeof(lck_path)) {
        return NULL;
    }
    lck = fopen(lck_path, "a");
    if (lck == NULL) {
        fprintf(stderr, "Failed to open \"%s\": %s\n", lck_path,
                strerror(errno));
    }
    return lck;
}

void
portfile_note(int fd, bool udp)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    FILE *f = stream();

    if (f == NULL || getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        fprintf(f, "%s INET: %u\n", udp ? "UDP" : "TCP",
                ntohs(((struct sockaddr_in *)&ss)->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        fprintf(f, "%s INET6: %u\n", udp ? "UDP" : "TCP",
                ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    }
}

void
portfile_commit(void)
{
    const char *name = getenv("MEMCACHED_PORT_FILENAME");
    FILE *f = stream();

    if (f == NULL) {
        return;
    }
    lck = NULL;
    if (fclose(f) != 0 || rename(lck_path, name) != 0) {
        log_msg(LOG_WARN, "cannot write the port file %s: %s", name,
                strerror(errno));
    }
}
