/* test_kill9_always.c - crash test under CASK_SYNC_ALWAYS: a child process
 * writes from several threads and reports every acknowledged key through a
 * pipe; the parent SIGKILLs it mid-write, reopens the store, and checks that
 * every acknowledged write is there with its value. Repeated a few times on
 * the same directory so recovery also runs over torn tails. Then the same
 * under CASK_SYNC_INTERVAL: writes older than a few intervals must survive.
 */
#include "config.h"

#include "storage/cask.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { THREADS = 4, ROUNDS = 3, PER_ROUND_MS = 700 };

struct child {
    struct cask *c;
    int fd;
    int round;
    int id;
};

static void
mkval(char *v, size_t cap, int round, uint32_t key)
{
    snprintf(v, cap, "round %d key %u %*s", round, key, (int)(key % 200), "");
}

static void *
child_writer(void *arg)
{
    struct child *ch = arg;
    char k[32], v[256];
    for (uint32_t i = (uint32_t)ch->id;; i += THREADS) {
        snprintf(k, sizeof(k), "key%u", i);
        mkval(v, sizeof(v), ch->round, i);
        if (cask_store(ch->c, CASK_SET, k, strlen(k), v, strlen(v), 0, 0, 0,
                       NULL) != CASK_OK) {
            _exit(3);
        }
        if (write(ch->fd, &i, sizeof(i)) != (ssize_t)sizeof(i)) {
            _exit(4);
        }
    }
    return NULL;
}

static int
child_main(const char *dir, int fd, int round)
{
    struct cask_options o;
    struct cask *c = NULL;
    cask_options_init(&o);
    o.shards = 4;
    o.sync = CASK_SYNC_ALWAYS;
    o.segment_size = 256 * 1024; /* roll-overs happen under the kill too */
    if (cask_open(&c, dir, &o) != CASK_OK) {
        return 2;
    }
    pthread_t t[THREADS];
    struct child ch[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ch[i] = (struct child){.c = c, .fd = fd, .round = round, .id = i};
        pthread_create(&t[i], NULL, child_writer, &ch[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    return 0;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
rmrf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
}

/* INTERVAL child: write 5000 keys, report once, then idle until killed. */
static int
interval_child(const char *dir, int fd)
{
    struct cask_options o;
    struct cask *c = NULL;
    cask_options_init(&o);
    o.shards = 4;
    o.sync = CASK_SYNC_INTERVAL;
    o.sync_interval_ms = 50;
    if (cask_open(&c, dir, &o) != CASK_OK) {
        return 2;
    }
    char k[32], v[64];
    for (uint32_t i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "ikey%u", i);
        snprintf(v, sizeof(v), "ival%u", i);
        if (cask_store(c, CASK_SET, k, strlen(k), v, strlen(v), 0, 0, 0,
                       NULL) != CASK_OK) {
            return 3;
        }
    }
    uint32_t done = 5000;
    if (write(fd, &done, sizeof(done)) != (ssize_t)sizeof(done)) {
        return 4;
    }
    for (;;) {
        pause();
    }
}

static int
interval_round(const char *self, const char *dir)
{
    int p[2];
    if (pipe(p) != 0) {
        return 99;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        char fdbuf[16];
        snprintf(fdbuf, sizeof(fdbuf), "%d", p[1]);
        execl(self, self, "--interval-child", dir, fdbuf, (char *)NULL);
        _exit(98);
    }
    close(p[1]);
    uint32_t done = 0;
    if (read(p[0], &done, sizeof(done)) != (ssize_t)sizeof(done)) {
        fprintf(stderr, "interval child failed\n");
        return 1;
    }
    usleep(300 * 1000); /* six intervals */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(p[0]);
    struct cask_options o;
    struct cask *c = NULL;
    cask_options_init(&o);
    o.shards = 4;
    if (cask_open(&c, dir, &o) != CASK_OK) {
        return 1;
    }
    unsigned missing = 0;
    for (uint32_t i = 0; i < done; i++) {
        char k[32], want[64];
        snprintf(k, sizeof(k), "ikey%u", i);
        snprintf(want, sizeof(want), "ival%u", i);
        char *v = NULL;
        struct cask_item it;
        if (cask_get(c, k, strlen(k), &it, &v) != CASK_OK ||
            strcmp(v, want) != 0) {
            missing++;
        }
        free(v);
    }
    cask_close(&c);
    printf("interval: %u writes older than the interval, %u missing\n", done,
           missing);
    return missing ? 1 : 0;
}

int
main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0) {
        return child_main(argv[2], atoi(argv[3]), atoi(argv[4]));
    }
    if (argc == 4 && strcmp(argv[1], "--interval-child") == 0) {
        return interval_child(argv[2], atoi(argv[3]));
    }
    char tmpl[512];
    const char *base = getenv("TMPDIR");
    snprintf(tmpl, sizeof(tmpl), "%s/cask-crash-XXXXXX", base ? base : "/tmp");
    if (mkdtemp(tmpl) == NULL) {
        perror("mkdtemp");
        return 99;
    }
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/data", tmpl);
    int failures = 0;
    uint32_t max_key = 1 << 22;
    int32_t *acked = calloc(max_key, sizeof(int32_t)); /* round+1 or 0 */

    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        if (pipe(p) != 0) {
            perror("pipe");
            return 99;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            char fdbuf[16], rbuf[16];
            snprintf(fdbuf, sizeof(fdbuf), "%d", p[1]);
            snprintf(rbuf, sizeof(rbuf), "%d", round);
            execl(argv[0], argv[0], "--child", dir, fdbuf, rbuf, (char *)NULL);
            _exit(98);
        }
        close(p[1]);
        double t0 = now_s();
        unsigned n = 0;
        bool killed = false;
        for (;;) {
            /* The round's time runs from the first ack, so that a slow
             * start (a sanitizer build on a loaded machine, recovery of
             * the rounds before) still leaves writes to check; a child
             * that acks nothing in 20 s is killed and counted a failure. */
            double ran = now_s() - t0;
            if (!killed &&
                ((n > 0 && ran > PER_ROUND_MS / 1000.0) || ran > 20.0)) {
                kill(pid, SIGKILL);
                killed = true;
            }
            struct pollfd pf = {.fd = p[0], .events = POLLIN};
            if (poll(&pf, 1, 50) <= 0) {
                continue;
            }
            uint32_t key;
            ssize_t r = read(p[0], &key, sizeof(key));
            if (r == 0) {
                break; /* child gone and pipe drained */
            }
            if (r != (ssize_t)sizeof(key) || key >= max_key) {
                if (r < 0 && errno == EINTR) {
                    continue;
                }
                fprintf(stderr, "bad ack read\n");
                return 99;
            }
            acked[key] = round + 1;
            if (n++ == 0) {
                t0 = now_s();
            }
        }
        close(p[0]);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFSIGNALED(status)) {
            fprintf(stderr, "round %d: child exited early (%d)\n", round,
                    WEXITSTATUS(status));
            return 99;
        }
        /* reopen and check every acknowledged write */
        struct cask_options o;
        struct cask *c = NULL;
        cask_options_init(&o);
        o.shards = 4;
        o.sync = CASK_SYNC_ALWAYS;
        o.segment_size = 256 * 1024;
        int rc = cask_open(&c, dir, &o);
        if (rc != CASK_OK) {
            fprintf(stderr, "reopen: %s\n", cask_strerror(rc));
            return 1;
        }
        unsigned missing = 0;
        for (uint32_t k = 0; k < max_key; k++) {
            if (acked[k] == 0) {
                continue;
            }
            char key[32], want[256];
            snprintf(key, sizeof(key), "key%u", k);
            mkval(want, sizeof(want), acked[k] - 1, k);
            char *v = NULL;
            struct cask_item it;
            rc = cask_get(c, key, strlen(key), &it, &v);
            /* a later round may have overwritten it without the ack
             * arriving; that value is newer, also fine */
            if (rc != CASK_OK ||
                (strcmp(v, want) != 0 && strncmp(v, "round ", 6) != 0)) {
                missing++;
            } else {
                int vr = atoi(v + 6);
                if (vr < acked[k] - 1) {
                    missing++;
                }
            }
            free(v);
        }
        struct cask_stats st;
        cask_stats(c, -1, &st);
        cask_close(&c);
        printf("round %d: %u acknowledged writes, %u missing, %llu bytes "
               "truncated at recovery\n",
               round, n, missing, (unsigned long long)st.bytes_truncated);
        if (missing > 0 || n == 0) {
            failures++;
        }
    }
    free(acked);
    char idir[700];
    snprintf(idir, sizeof(idir), "%s/interval", tmpl);
    if (interval_round(argv[0], idir) != 0) {
        failures++;
    }
    rmrf(tmpl);
    return failures ? 1 : 0;
}
