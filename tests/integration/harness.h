/* harness.h - start and stop the real server binary for integration tests.
 * Owns: the server child process, its temp directory (data dir, unix socket)
 * and the listening port it was given. Depends only on libc and libmemcached;
 * never on the server's, protocol's or storage's code. */
#ifndef BITCACHED_TESTS_HARNESS_H
#define BITCACHED_TESTS_HARNESS_H

#include <libmemcached/memcached.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#define HARNESS_MAX_ARGS 32

/* One server under test. tmp_dir holds data/ (the --data-dir) and sock (the
 * unix socket, when use_unix is set). Everything belongs to the harness. */
struct harness_server {
    pid_t pid;    /* 0 when not running */
    int port;     /* TCP port, 0 when use_unix */
    int use_unix; /* listen on sock_path with -p 0 */
    char tmp_dir[96];
    char data_dir[128];
    char sock_path[108]; /* sun_path size */
    int nargs;
    char *args[HARNESS_MAX_ARGS]; /* extra args, owned copies */
};

/* Fail the test with a message naming the place. */
#define HARNESS_CHECK(cond)                                                    \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            harness_fail();                                                    \
        }                                                                      \
    } while (0)

#define HARNESS_CHECK_RC(memc, rc, want)                                       \
    do {                                                                       \
        memcached_return_t rc_ = (rc);                                         \
        if (rc_ != (want)) {                                                   \
            fprintf(stderr, "%s:%d: %s: got %s, want %s (%s)\n", __FILE__,     \
                    __LINE__, #rc, memcached_strerror((memc), rc_),            \
                    memcached_strerror((memc), (want)),                        \
                    memcached_last_error_message(memc));                       \
            harness_fail();                                                    \
        }                                                                      \
    } while (0)

/* Exit 77 (automake SKIP) unless $BITCACHED names an executable file. Also
 * ignores SIGPIPE and registers the clean-up of every started server. */
void harness_init(void);

/* Path of the binary under test (valid after harness_init). */
const char *harness_binary(void);

/* A TCP port that was free a moment ago on 127.0.0.1 (bind port 0, read it,
 * close). The caller must cope with losing a race for it. -1 on error. */
int harness_free_port(void);

/* Create a server description with a fresh temp dir; argv is NULL-terminated
 * extra arguments (copied). Does not start it. */
struct harness_server *harness_create(const char *const *argv, int use_unix);

/* Start the server and wait (up to timeout_ms) until it accepts connections.
 * Retries with a new port if the chosen one was taken meanwhile. 0 or -1. */
int harness_start(struct harness_server *srv, int timeout_ms);

/* SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit status as from
 * waitpid (or -1 when it had to be killed or was not running). */
int harness_stop(struct harness_server *srv);

/* SIGKILL and reap. */
void harness_kill(struct harness_server *srv);

/* Is the process still alive (not exited)? */
int harness_alive(struct harness_server *srv);

/* Stop if running, remove the temp dir, free, NULL the pointer. */
void harness_destroy(struct harness_server **srvp);

/* A libmemcached client for srv, ascii protocol, short timeouts. */
memcached_st *harness_client(const struct harness_server *srv);

/* A connected blocking raw socket to srv with a 5 s receive timeout, or -1. */
int harness_connect(const struct harness_server *srv);

/* Write all of buf to fd; 0 or -1. */
int harness_send_all(int fd, const void *buf, size_t len);

/* Read from fd until what was read ends with the string end, the peer
 * closes, or the receive timeout hits. Returns the bytes read (out is
 * NUL-terminated), or -1 when nothing could be read. */
ssize_t harness_recv_until(int fd, char *out, size_t cap, const char *end);

/* The resident set size of process pid in KiB (VmRSS), or -1. */
long harness_rss_kb(pid_t pid);

/* Kill every server still running, remove their temp dirs, exit(1). */
void harness_fail(void) __attribute__((noreturn));

#endif
