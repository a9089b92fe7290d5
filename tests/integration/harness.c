/* harness.c - start, stop, kill and restart the server binary under test.
 * Owns the child processes it forks and their temp directories; every server
 * it started is stopped by PID at exit or on failure. Depends on libc and
 * libmemcached only, never on the server's own code. */
#include <config.h>

#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVERS 16

static const char *binary;
static struct harness_server *servers[MAX_SERVERS];

static void
cleanup_all(void)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (servers[i] != NULL) {
            harness_destroy(&servers[i]);
        }
    }
}

void
harness_fail(void)
{
    cleanup_all();
    exit(1);
}

void
harness_init(void)
{
    binary = getenv("BITCACHED");
    if (binary == NULL || binary[0] == '\0' || access(binary, X_OK) != 0) {
        fprintf(stderr, "SKIP: BITCACHED (%s) is not an executable\n",
                binary != NULL ? binary : "unset");
        exit(77);
    }
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup_all);
}

const char *
harness_binary(void)
{
    return binary;
}

static long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int
harness_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

struct harness_server *
harness_create(const char *const *argv, int use_unix)
{
    struct harness_server *srv = calloc(1, sizeof(*srv));
    const char *tmp = getenv("TMPDIR");
    int slot;

    HARNESS_CHECK(srv != NULL);
    for (slot = 0; slot < MAX_SERVERS && servers[slot] != NULL; slot++) {
    }
    HARNESS_CHECK(slot < MAX_SERVERS);
    if (tmp == NULL || tmp[0] == '\0') {
        tmp = "/tmp";
    }
    snprintf(srv->tmp_dir, sizeof(srv->tmp_dir), "%s/bc-itest.XXXXXX", tmp);
    HARNESS_CHECK(mkdtemp(srv->tmp_dir) != NULL);
    snprintf(srv->data_dir, sizeof(srv->data_dir), "%s/data", srv->tmp_dir);
    snprintf(srv->sock_path, sizeof(srv->sock_path), "%s/sock", srv->tmp_dir);
    srv->use_unix = use_unix;
    for (int i = 0; argv != NULL && argv[i] != NULL; i++) {
        HARNESS_CHECK(srv->nargs < HARNESS_MAX_ARGS);
        srv->args[srv->nargs++] = strdup(argv[i]);
    }
    servers[slot] = srv;
    return srv;
}

static pid_t
spawn(struct harness_server *srv)
{
    char *argv[HARNESS_MAX_ARGS + 12];
    char data_arg[160];
    char port_arg[16];
    int n = 0;
    pid_t pid;

    snprintf(data_arg, sizeof(data_arg), "--data-dir=%s", srv->data_dir);
    snprintf(port_arg, sizeof(port_arg), "%d", srv->port);
    argv[n++] = (char *)binary;
    argv[n++] = data_arg;
    if (srv->use_unix) {
        argv[n++] = "-s";
        argv[n++] = srv->sock_path;
        argv[n++] = "-p";
        argv[n++] = "0";
    } else {
        argv[n++] = "-l";
        argv[n++] = "127.0.0.1";
        argv[n++] = "-p";
        argv[n++] = port_arg;
    }
    for (int i = 0; i < srv->nargs; i++) {
        argv[n++] = srv->args[i];
    }
    argv[n] = NULL;
    pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        execv(binary, argv);
        fprintf(stderr, "exec %s: %s\n", binary, strerror(errno));
        _exit(127);
    }
    return pid;
}

static int
try_connect(const struct harness_server *srv)
{
    int fd;

    if (srv->use_unix) {
        struct sockaddr_un su;

        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0) {
            return -1;
        }
        memset(&su, 0, sizeof(su));
        su.sun_family = AF_UNIX;
        snprintf(su.sun_path, sizeof(su.sun_path), "%s", srv->sock_path);
        if (connect(fd, (struct sockaddr *)&su, sizeof(su)) != 0) {
            close(fd);
            return -1;
        }
    } else {
        struct sockaddr_in sa;
        int one = 1;

        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            return -1;
        }
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons((uint16_t)srv->port);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(fd);
            return -1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* Whether process pid holds the socket listening on TCP port: its socket
 * inodes against the LISTEN rows (state 0A) of /proc/net/tcp and tcp6.
 * A connect alone can reach another process that took the port first. */
static bool
listens_on(pid_t pid, int port)
{
    char path[64], link[64], line[512];
    unsigned long inodes[256];
    size_t n = 0;
    bool found = false;
    DIR *d;
    struct dirent *de;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (d == NULL) {
        return false;
    }
    while ((de = readdir(d)) != NULL && n < 256) {
        char fdpath[320];
        ssize_t len;

        snprintf(fdpath, sizeof(fdpath), "%s/%s", path, de->d_name);
        len = readlink(fdpath, link, sizeof(link) - 1);
        if (len > 0) {
            link[len] = '\0';
            if (sscanf(link, "socket:[%lu]", &inodes[n]) == 1) {
                n++;
            }
        }
    }
    closedir(d);
    for (int t = 0; t < 2 && !found; t++) {
        FILE *f = fopen(t == 0 ? "/proc/net/tcp" : "/proc/net/tcp6", "r");

        while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
            char local[64];
            unsigned state, lport;
            unsigned long inode;
            const char *colon;

            if (sscanf(line, "%*s %63s %*s %x %*s %*s %*s %*s %*s %lu", local,
                       &state, &inode) != 3 ||
                state != 0x0A || (colon = strrchr(local, ':')) == NULL ||
                sscanf(colon + 1, "%x", &lport) != 1 || (int)lport != port) {
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                found = found || inodes[i] == inode;
            }
        }
        if (f != NULL) {
            fclose(f);
        }
    }
    return found;
}

/* 1 ready, 0 exited early (status in *status), -1 timed out. Ready: a
 * connect succeeds and, over TCP, the listener is this server's. */
static int
wait_ready(struct harness_server *srv, int timeout_ms, int *status)
{
    long deadline = now_ms() + timeout_ms;

    while (now_ms() < deadline) {
        int fd = try_connect(srv);

        if (fd >= 0) {
            close(fd);
            if (srv->use_unix || listens_on(srv->pid, srv->port)) {
                return 1;
            }
        }
        if (waitpid(srv->pid, status, WNOHANG) == srv->pid) {
            srv->pid = 0;
            return 0;
        }
        usleep(10000);
    }
    return -1;
}

int
harness_start(struct harness_server *srv, int timeout_ms)
{
    /* A port picked by harness_free_port can be taken before the server binds
     * it; then the server exits at once and we try another. On a restart the
     * old port is tried first so that existing client configs stay valid. */
    for (int attempt = 0; attempt < 5; attempt++) {
        int status = 0;
        int r;

        if (!srv->use_unix && (srv->port == 0 || attempt > 0)) {
            srv->port = harness_free_port();
            if (srv->port <= 0) {
                return -1;
            }
        }
        srv->pid = spawn(srv);
        if (srv->pid < 0) {
            srv->pid = 0;
            return -1;
        }
        r = wait_ready(srv, timeout_ms, &status);
        if (r == 1) {
            return 0;
        }
        if (r < 0) {
            fprintf(stderr, "server pid %d not ready after %d ms\n",
                    (int)srv->pid, timeout_ms);
            harness_kill(srv);
            return -1;
        }
        fprintf(stderr, "server exited at start-up (status 0x%x)%s\n", status,
                srv->use_unix ? "" : ", retrying on another port");
        if (srv->use_unix) {
            return -1;
        }
    }
    return -1;
}

int
harness_alive(struct harness_server *srv)
{
    int status;

    if (srv->pid <= 0) {
        return 0;
    }
    if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
        srv->pid = 0;
        return 0;
    }
    return 1;
}

int
harness_stop(struct harness_server *srv)
{
    long deadline;
    int status;

    if (srv->pid <= 0) {
        return -1;
    }
    kill(srv->pid, SIGTERM);
    deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        pid_t r = waitpid(srv->pid, &status, WNOHANG);

        if (r == srv->pid || (r < 0 && errno != EINTR)) {
            srv->pid = 0;
            return r < 0 ? -1 : status;
        }
        usleep(5000);
    }
    fprintf(stderr, "server pid %d ignored SIGTERM for 10 s; killing it\n",
            (int)srv->pid);
    harness_kill(srv);
    return -1;
}

void
harness_kill(struct harness_server *srv)
{
    if (srv->pid <= 0) {
        return;
    }
    kill(srv->pid, SIGKILL);
    while (waitpid(srv->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    srv->pid = 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void
harness_destroy(struct harness_server **srvp)
{
    struct harness_server *srv = *srvp;

    if (srv == NULL) {
        return;
    }
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (servers[i] == srv) {
            servers[i] = NULL;
        }
    }
    if (srv->pid > 0) {
        harness_stop(srv);
    }
    nftw(srv->tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < srv->nargs; i++) {
        free(srv->args[i]);
    }
    free(srv);
    *srvp = NULL;
}

memcached_st *
harness_client(const struct harness_server *srv)
{
    memcached_st *memc = memcached_create(NULL);
    memcached_return_t rc;

    HARNESS_CHECK(memc != NULL);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 5000);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 10000);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, 10000000);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_SND_TIMEOUT, 10000000);
    if (srv->use_unix) {
        rc = memcached_server_add_unix_socket(memc, srv->sock_path);
    } else {
        rc = memcached_server_add(memc, "127.0.0.1", (in_port_t)srv->port);
    }
    HARNESS_CHECK_RC(memc, rc, MEMCACHED_SUCCESS);
    return memc;
}

int
harness_connect(const struct harness_server *srv)
{
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    int fd = try_connect(srv);

    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return fd;
}

int
harness_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

long
harness_rss_kb(pid_t pid)
{
    char path[64];
    char line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb;
}

ssize_t
harness_recv_until(int fd, char *out, size_t cap, const char *end)
{
    size_t have = 0;
    size_t elen = strlen(end);

    while (have + 1 < cap) {
        ssize_t n = recv(fd, out + have, cap - 1 - have, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        have += (size_t)n;
        out[have] = '\0';
        if (have >= elen && memcmp(out + have - elen, end, elen) == 0) {
            break;
        }
    }
    out[have] = '\0';
    return have > 0 ? (ssize_t)have : -1;
}
