/* test_golden.c - replays the golden transcripts in tests/golden/cases/
 * (requests sent to Debian's memcached and its exact replies, recorded by
 * gen_golden.py) through the parser, cmd.c and the formatter over the fake
 * in-memory store, and requires the same reply bytes. Each case is fed whole
 * and again in small chunks, as reads would split it. Cas values and
 * remaining TTLs are masked on both sides (the fake clock stands still).
 * Depends on cmd.h and the fake store only; no sockets.
 */
#include "server/cmd.h"

#include "server/cmd_meta.h"
#include "storage/cask.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_MAX 65536u /* gen_golden.py starts memcached with -I this */
#define NOW_S    1700000000

struct buf {
    char *p;
    size_t n;
    size_t cap;
};

static void
buf_add(struct buf *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap < b->n + n) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        if (b->p == NULL) {
            abort();
        }
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void
sink_bytes(void *arg, const void *p, size_t n)
{
    buf_add(arg, p, n);
}

static void
sink_value(void *arg, char *v, size_t n)
{
    buf_add(arg, v, n);
    free(v);
}

static int64_t
fake_clock(void *arg)
{
    (void)arg;
    return NOW_S;
}

static int
read_file(const char *path, struct buf *b)
{
    FILE *f = fopen(path, "rb");
    char tmp[65536];
    size_t n;

    if (f == NULL) {
        return -1;
    }
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        buf_add(b, tmp, n);
    }
    fclose(f);
    return 0;
}

/* Mask what differs between runs: cas numbers (VALUE lines of gets/gats,
 * meta c flags), remaining TTLs (meta t flags) and ME lines. */
static void
mask(const struct buf *in, struct buf *out)
{
    size_t i = 0;

    out->n = 0;
    while (i < in->n) {
        const char *l = in->p + i;
        const char *nl = memchr(l, '\n', in->n - i);
        size_t n = nl ? (size_t)(nl - l) + 1 : in->n - i;
        bool meta =
                n >= 2 && (memcmp(l, "VA", 2) == 0 || memcmp(l, "HD", 2) == 0 ||
                           memcmp(l, "EN", 2) == 0 || memcmp(l, "NF", 2) == 0 ||
                           memcmp(l, "NS", 2) == 0 || memcmp(l, "EX", 2) == 0);
        unsigned spaces = 0;
        size_t j;

        if (n >= 3 && memcmp(l, "ME ", 3) == 0) {
            buf_add(out, "ME #\r\n", 6);
            i += n;
            continue;
        }
        for (j = 0; j < n; j++) {
            char c = l[j];

            if (c == ' ') {
                spaces++;
            }
            /* "VALUE k f n CAS": the fifth field */
            if (spaces == 4 && c == ' ' && n > 6 &&
                memcmp(l, "VALUE ", 6) == 0) {
                buf_add(out, " #\r\n", 4);
                break;
            }
            if (meta && c == ' ' && j + 2 < n &&
                (l[j + 1] == 'c' || l[j + 1] == 't') && l[j + 2] >= '0' &&
                l[j + 2] <= '9') {
                buf_add(out, l + j, 2);
                buf_add(out, "#", 1);
                j += 2;
                while (j + 1 < n && l[j + 1] >= '0' && l[j + 1] <= '9') {
                    j++;
                }
                continue;
            }
            buf_add(out, &c, 1);
        }
        i += n;
    }
}

/* Run req through a fresh connection and store; chunk 0 = all at once. */
static void
run(const struct buf *req, size_t chunk, struct buf *out)
{
    struct cask_options o;
    struct cask *store = NULL;
    struct cmd_counters ctr;
    struct cmd_env env;
    struct cmd_sink sink = {0};
    struct cmd_conn cc;
    size_t off = 0;
    size_t avail = chunk ? chunk : req->n;

    cask_options_init(&o);
    o.value_max = ITEM_MAX;
    o.clock = fake_clock;
    if (cask_open(&store, "unused", &o) != CASK_OK) {
        abort();
    }
    memset(&ctr, 0, sizeof(ctr));
    memset(&env, 0, sizeof(env));
    env.store = store;
    env.item_max = ITEM_MAX;
    env.version = "1.6.18";
    env.clock = fake_clock;
    if (cmd_meta_create(&env.meta, 64) != 0) {
        abort();
    }
    sink.bytes = sink_bytes;
    sink.value = sink_value;
    sink.arg = out;
    out->n = 0;
    cmd_conn_init(&cc, &env, &ctr, &sink);
    for (;;) {
        size_t used = 0;
        enum cmd_status st;

        if (avail > req->n) {
            avail = req->n;
        }
        st = cmd_execute(&cc, req->p + off, avail - off, &used);
        if (st == CMD_CLOSE || st == CMD_SHUTDOWN) {
            break;
        }
        if (st == CMD_NEED_MORE) {
            if (avail == req->n) {
                break;
            }
            avail += chunk ? chunk : req->n;
            continue;
        }
        if (used == 0) {
            fprintf(stderr, "CMD_DONE consumed nothing\n");
            abort();
        }
        off += used;
        if (avail < off) {
            avail = off;
        }
    }
    cmd_conn_deinit(&cc);
    cask_close(&store);
    cmd_meta_destroy(&env.meta);
}

static void
show_diff(const struct buf *want, const struct buf *got)
{
    size_t i = 0;
    size_t line_start = 0;

    while (i < want->n && i < got->n && want->p[i] == got->p[i]) {
        if (want->p[i] == '\n') {
            line_start = i + 1;
        }
        i++;
    }
    fprintf(stderr,
            "  first difference at byte %zu\n  want: %.*s\n"
            "  got:  %.*s\n",
            i, (int)(want->n - line_start > 200 ? 200 : want->n - line_start),
            want->p + line_start,
            (int)(got->n - line_start > 200 ? 200 : got->n - line_start),
            got->p + line_start);
}

int
main(void)
{
    const char *top = getenv("top_srcdir");
    char dir[4096];
    DIR *d;
    struct dirent *e;
    unsigned cases = 0;
    unsigned failed = 0;
    static const size_t chunks[] = {0, 1, 7, 1000};

    snprintf(dir, sizeof(dir), "%s/tests/golden/cases", top ? top : ".");
    d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "no golden cases in %s\n", dir);
        return 99;
    }
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char path[4400];
        struct buf req = {0};
        struct buf rsp = {0};
        struct buf got = {0};
        struct buf mw = {0};
        struct buf mg = {0};
        unsigned k;

        if (n < 5 || strcmp(e->d_name + n - 4, ".req") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (read_file(path, &req) != 0) {
            return 99;
        }
        memcpy(path + strlen(path) - 4, ".rsp", 4);
        if (read_file(path, &rsp) != 0) {
            return 99;
        }
        mask(&rsp, &mw);
        for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
            /* a non-get line over 2048 bytes is only accepted when it
             * arrives whole, as with memcached's read buffer */
            if (chunks[k] != 0 && strcmp(e->d_name, "long_line.req") == 0) {
                continue;
            }
            cases++;
            run(&req, chunks[k], &got);
            mask(&got, &mg);
            if (mg.n != mw.n || (mw.n > 0 && memcmp(mg.p, mw.p, mw.n) != 0)) {
                const char *dump = getenv("GOLDEN_DUMP");

                if (dump != NULL && chunks[k] == 0) {
                    char dp[4400];
                    FILE *f;

                    snprintf(dp, sizeof(dp), "%s/%s", dump, e->d_name);
                    f = fopen(dp, "wb");
                    if (f != NULL) {
                        fwrite(got.p, 1, got.n, f);
                        fclose(f);
                    }
                }
                failed++;
                fprintf(stderr, "FAIL %s (chunk %zu)\n", e->d_name, chunks[k]);
                show_diff(&mw, &mg);
            }
        }
        free(req.p);
        free(rsp.p);
        free(got.p);
        free(mw.p);
        free(mg.p);
    }
    closedir(d);
    printf("%u golden runs, %u failed\n", cases, failed);
    return failed == 0 && cases > 0 ? 0 : 1;
}
