/* test_cmd.c - cmocka tests for server/cmd.c driven with an in-memory sink
 * over the fake store (tests/golden/fake_cask.c): exptime conversion,
 * counters, stats/verbosity/version/shutdown/quit, store error mapping,
 * value hand-over, noreply, and the meta win/stale state of cmd_meta.c
 * (also hit from several threads). No sockets, no disk.
 */
#include "server/cmd.h"

#include "server/cmd_meta.h"
#include "storage/cask.h"
#include "tests/golden/fake_cask.h"
#include "tests/unit/cmd_fixture.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NOW_S    CMD_FIXTURE_NOW_S
#define ITEM_MAX CMD_FIXTURE_ITEM_MAX

struct fixture {
    struct cmd_fixture fx;
    char stats_args[64];
    unsigned verbosity;
};

static void
stats_fn(void *arg, const char *args, size_t len, const struct cmd_sink *out)
{
    struct fixture *f = arg;

    snprintf(f->stats_args, sizeof(f->stats_args), "%.*s", (int)len, args);
    out->bytes(out->arg, "STAT x 1\r\nEND\r\n", 15);
}

static void
verbosity_fn(void *arg, unsigned level)
{
    ((struct fixture *)arg)->verbosity = level;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    cmd_fixture_init(&f->fx);
    /* a test that failed half way may have left the store blocking */
    fake_cask_block_writes = 0;
    fake_cask_block_skip = 0;
    f->fx.env.stats = stats_fn;
    f->fx.env.stats_arg = f;
    f->fx.env.verbosity = verbosity_fn;
    f->fx.env.verbosity_arg = f;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    cmd_fixture_deinit(&f->fx);
    free(f);
    return 0;
}

/* Run every request in s; return the last status. Output in f->fx.out. */
static enum cmd_status
run(struct fixture *f, const char *s)
{
    size_t len = strlen(s);
    size_t off = 0;
    enum cmd_status st = CMD_NEED_MORE;

    f->fx.n = 0;
    while (off < len || cmd_busy(&f->fx.cc)) {
        size_t used = 0;
        bool busy = cmd_busy(&f->fx.cc);

        st = cmd_execute(&f->fx.cc, s + off, len - off, &used);
        if (st != CMD_DONE) {
            break;
        }
        if (busy) {
            assert_int_equal(used, 0); /* a dump writes a batch per call */
            continue;
        }
        assert_true(used > 0);
        off += used;
    }
    f->fx.out[f->fx.n < sizeof(f->fx.out) ? f->fx.n : sizeof(f->fx.out) - 1] =
            '\0';
    return st;
}

static void
expect(struct fixture *f, const char *req, const char *rsp)
{
    run(f, req);
    assert_string_equal(f->fx.out, rsp);
}

static void
test_basic(void **state)
{
    struct fixture *f = *state;

    expect(f, "set a 5 0 3\r\nabc\r\n", "STORED\r\n");
    expect(f, "get a b\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n");
    expect(f, "gets a\r\n", "VALUE a 5 3 1\r\nabc\r\nEND\r\n");
    expect(f, "add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    expect(f, "append a 0 0 1\r\nd\r\n", "STORED\r\n");
    expect(f, "cas a 0 0 1 99\r\nx\r\n", "EXISTS\r\n");
    expect(f, "cas a 0 0 1 2\r\nx\r\n", "STORED\r\n");
    expect(f, "cas a 0 0 1 0\r\nx\r\n", "EXISTS\r\n");
    expect(f, "cas zz 0 0 1 0\r\nx\r\n", "NOT_FOUND\r\n");
    expect(f, "delete a\r\n", "DELETED\r\n");
    expect(f, "delete a\r\n", "NOT_FOUND\r\n");
    expect(f, "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 20\r\nget n\r\n",
           "STORED\r\n15\r\n0\r\nVALUE n 0 2\r\n0 \r\nEND\r\n");
    expect(f, "incr zz 1\r\n", "NOT_FOUND\r\n");
    expect(f, "set s 0 0 1\r\nx\r\nincr s 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement "
           "non-numeric value\r\n");
    expect(f, "touch n 10\r\ntouch zz 10\r\n", "TOUCHED\r\nNOT_FOUND\r\n");
    expect(f, "mn\r\n", "MN\r\n");
}

static void
test_noreply(void **state)
{
    struct fixture *f = *state;

    expect(f,
           "set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\nx\r\n"
           "incr a 1 noreply\r\ndelete a noreply\r\ndelete a noreply\r\n"
           "touch a 1 noreply\r\nflush_all noreply\r\n"
           "verbosity 2 noreply\r\nincr a x noreply\r\n",
           "");
    assert_int_equal(f->verbosity, 2);
}

static void
test_exptime(void **state)
{
    struct fixture *f = *state;
    char req[128];

    expect(f, "set a 0 100 1\r\nx\r\nmg a t\r\n", "STORED\r\nHD t100\r\n");
    expect(f, "set a 0 2592000 1\r\nx\r\nmg a t\r\n",
           "STORED\r\nHD t2592000\r\n");
    /* above 30 days: absolute, here long past */
    expect(f, "set a 0 2592001 1\r\nx\r\nmg a t\r\n", "STORED\r\nEN\r\n");
    snprintf(req, sizeof(req), "set a 0 %d 1\r\nx\r\nmg a t\r\n", NOW_S + 500);
    expect(f, req, "STORED\r\nHD t500\r\n");
    snprintf(req, sizeof(req), "set a 0 %d 1\r\nx\r\nget a\r\n", NOW_S);
    expect(f, req, "STORED\r\nEND\r\n");
    expect(f, "set a 0 -1 1\r\nx\r\nget a\r\n", "STORED\r\nEND\r\n");
    expect(f, "set a 0 0 1\r\nx\r\nmg a t\r\n", "STORED\r\nHD t-1\r\n");
    /* touch and gat move the expiry */
    expect(f, "touch a 50\r\nmg a t\r\n", "TOUCHED\r\nHD t50\r\n");
    expect(f, "gat 70 a\r\nmg a t\r\n",
           "VALUE a 0 1\r\nx\r\nEND\r\nHD t70\r\n");
    f->fx.now += 71;
    expect(f, "get a\r\n", "END\r\n");
    /* the 2592001, NOW, -1 and touched items: all read as expired */
    assert_int_equal(f->fx.ctr.get_expired, 4);
}

static void
test_counters(void **state)
{
    struct fixture *f = *state;

    run(f, "set a 0 0 1\r\nx\r\nget a b\r\ngets a\r\ndelete b\r\n"
           "set n 0 0 1\r\n1\r\nincr n 1\r\ndecr n 1\r\nincr zz 1\r\n"
           "decr zz 1\r\ntouch a 0\r\ntouch zz 0\r\ncas a 0 0 1 999\r\nx\r\n"
           "cas zz 0 0 1 5\r\nx\r\nmg a v\r\nmn\r\nme a\r\nflush_all\r\n"
           "get a\r\n");
    assert_int_equal(f->fx.ctr.cmd_get, 5);
    assert_int_equal(f->fx.ctr.get_hits, 3);
    assert_int_equal(f->fx.ctr.get_misses, 2);
    assert_int_equal(f->fx.ctr.get_flushed, 1);
    assert_int_equal(f->fx.ctr.cmd_set, 4);
    assert_int_equal(f->fx.ctr.total_items, 2);
    assert_int_equal(f->fx.ctr.delete_misses, 1);
    assert_int_equal(f->fx.ctr.incr_hits, 1);
    assert_int_equal(f->fx.ctr.decr_hits, 1);
    assert_int_equal(f->fx.ctr.incr_misses, 1);
    assert_int_equal(f->fx.ctr.decr_misses, 1);
    assert_int_equal(f->fx.ctr.cmd_touch, 2);
    assert_int_equal(f->fx.ctr.touch_hits, 1);
    assert_int_equal(f->fx.ctr.touch_misses, 1);
    assert_int_equal(f->fx.ctr.cas_badval, 1);
    assert_int_equal(f->fx.ctr.cas_misses, 1);
    assert_int_equal(f->fx.ctr.cmd_flush, 1);
    /* memcached 1.6.18 counts only me in cmd_meta */
    assert_int_equal(f->fx.ctr.meta_cmds, 1);
}

/* memcached 1.6.18: an item mg N or ma N makes is a store (total_items)
 * and, for mg, a hit, not a miss; for ma, not an incr hit either. Its me
 * prints its clock minus the expiry. */
static void
test_created_counters(void **state)
{
    struct fixture *f = *state;

    run(f, "mg v1 N30 v\r\nmg v2 N30 T30\r\nma m1 N0 J5\r\nma m1 N0\r\n"
           "ma m2\r\n");
    assert_int_equal(f->fx.ctr.total_items, 3);
    assert_int_equal(f->fx.ctr.get_hits, 1);
    assert_int_equal(f->fx.ctr.get_misses, 0);
    assert_int_equal(f->fx.ctr.touch_hits, 1);
    assert_int_equal(f->fx.ctr.touch_misses, 0);
    assert_int_equal(f->fx.ctr.incr_hits, 1);
    assert_int_equal(f->fx.ctr.incr_misses, 1);
    assert_int_equal(f->fx.ctr.meta_cmds, 0);
    expect(f, "ms e 1 T100\r\n1\r\nme e\r\n",
           "HD\r\nME e exp=-100 la=0 cas=5 fetch=no cls=0 size=61\r\n");
    assert_int_equal(f->fx.ctr.meta_cmds, 1);
}

/* memcached 1.6.18: gat, gats and mg with T count as touches only, not as
 * gets (issue 11); but an mg with T that misses is a get miss (its T never
 * applied), as Debian's memcached 1.6.18 counts it. */
static void
test_touch_counters(void **state)
{
    struct fixture *f = *state;

    run(f, "set a 0 0 1\r\nx\r\ngat 100 a zz\r\ngats 100 a\r\n"
           "mg a v T30\r\nmg zz T30\r\nmg a v\r\n");
    assert_int_equal(f->fx.ctr.cmd_get, 2);
    assert_int_equal(f->fx.ctr.get_hits, 1);
    assert_int_equal(f->fx.ctr.get_misses, 1);
    assert_int_equal(f->fx.ctr.cmd_touch, 4);
    assert_int_equal(f->fx.ctr.touch_hits, 3);
    assert_int_equal(f->fx.ctr.touch_misses, 1);
}

static void
test_admin(void **state)
{
    struct fixture *f = *state;

    expect(f, "version\r\n", "VERSION 9.9.9\r\n");
    expect(f, "stats settings\r\n", "STAT x 1\r\nEND\r\n");
    assert_string_equal(f->stats_args, "settings");
    expect(f, "stats\r\n", "STAT x 1\r\nEND\r\n");
    assert_string_equal(f->stats_args, "");
    expect(f, "verbosity 3\r\n", "OK\r\n");
    assert_int_equal(f->verbosity, 3);
    expect(f, "shutdown\r\n", "ERROR: shutdown not enabled\r\n");
    assert_int_equal(run(f, "quit\r\nget a\r\n"), CMD_CLOSE);
    assert_int_equal(f->fx.n, 0);
    f->fx.env.enable_shutdown = true;
    assert_int_equal(run(f, "shutdown\r\n"), CMD_SHUTDOWN);
    assert_int_equal(run(f, "GET / HTTP/1.1\r\n"), CMD_CLOSE);
}

/* lru_crawler metadump, stats cachedump and stats items over the fake
 * store, in memcached's formats (issue 11). */
static void
test_dumps(void **state)
{
    struct fixture *f = *state;
    char want[256];

    f->fx.env.class_size[1] = 96;
    f->fx.env.class_size[2] = 120;
    f->fx.env.nclasses = 2;
    run(f, "set k1 5 0 3\r\nabc\r\nset k:2 0 100 1\r\nx\r\n"
           "set k3 0 0 40\r\n0123456789012345678901234567890123456789\r\n");
    run(f, "lru_crawler metadump all\r\n");
    snprintf(want, sizeof(want),
             "key=k1 exp=-1 la=%lld cas=1 fetch=no cls=1 size=68\n",
             (long long)f->fx.now);
    assert_non_null(strstr(f->fx.out, want));
    snprintf(want, sizeof(want),
             "key=k%%3A2 exp=%lld la=%lld cas=2 fetch=no cls=1 size=63\n",
             (long long)f->fx.now + 100, (long long)f->fx.now);
    assert_non_null(strstr(f->fx.out, want));
    assert_non_null(strstr(f->fx.out, "key=k3 exp=-1"));
    assert_non_null(strstr(f->fx.out, "cls=2 size=101\n"));
    assert_int_equal(f->fx.n, strlen(f->fx.out));
    assert_string_equal(f->fx.out + f->fx.n - 5, "END\r\n");
    run(f, "lru_crawler metadump 2\r\n");
    snprintf(want, sizeof(want),
             "key=k3 exp=-1 la=%lld cas=3 fetch=no cls=2 size=101\nEND\r\n",
             (long long)f->fx.now);
    assert_string_equal(f->fx.out, want);
    expect(f, "lru_crawler metadump 64\r\n", "BADCLASS invalid class id\r\n");
    expect(f, "stats cachedump 2 0\r\n", "ITEM k3 [40 b; 0 s]\r\nEND\r\n");
    run(f, "stats cachedump 1 1\r\n");
    assert_true(strncmp(f->fx.out, "ITEM k", 6) == 0);
    assert_non_null(strstr(f->fx.out, "]\r\nEND\r\n"));
    assert_null(strstr(f->fx.out + 6, "ITEM"));
    run(f, "stats items\r\n");
    assert_non_null(strstr(f->fx.out, "STAT items:1:number 2\r\n"));
    assert_non_null(strstr(f->fx.out, "STAT items:2:number 1\r\n"));
    run(f, "stats slabs\r\n");
    assert_non_null(strstr(f->fx.out, "STAT 2:chunk_size 120\r\n"));
    assert_non_null(strstr(f->fx.out, "STAT active_slabs 2\r\n"));
    /* a request after a dump runs once the dump is written */
    strcat(want, "MN\r\n");
    expect(f, "lru_crawler metadump 2\r\nmn\r\n", want);
    f->fx.env.dump_disabled = true;
    expect(f, "lru_crawler metadump all\r\nstats cachedump 1 0\r\n",
           "ERROR metadump not allowed\r\n"
           "CLIENT_ERROR stats cachedump not allowed\r\n");
    f->fx.env.dump_disabled = false;
    run(f, "flush_all\r\n");
    expect(f, "lru_crawler metadump all\r\n", "END\r\n");
    expect(f, "lru_crawler crawl all\r\nlru mode flat\r\nslabs automove 3\r\n",
           "OK\r\nOK\r\nERROR\r\n");
    f->fx.env.enable_shutdown = true;
    expect(f, "shutdown now\r\n", "CLIENT_ERROR invalid shutdown mode\r\n");
    assert_int_equal(run(f, "shutdown graceful\r\n"), CMD_SHUTDOWN);
}

/* Meta differences fixed for issue 11, as memcached 1.6.18 answers. */
static void
test_meta_issue11(void **state)
{
    struct fixture *f = *state;
    char big[ITEM_MAX + 200];

    expect(f, "ms a 2 Ms\r\nhi\r\nms a 2 Ma\r\nhi\r\nma a Mi\r\n",
           "CLIENT_ERROR invalid mode for ms M token\r\n"
           "CLIENT_ERROR invalid mode for ms M token\r\n"
           "CLIENT_ERROR invalid mode for ma M token\r\n");
    expect(f, "ma n N0 C5 J13 v\r\nma n N0 C5\r\n", "VA 2\r\n13\r\nEX\r\n");
    expect(f, "ms a 2\r\nhi\r\n", "HD\r\n");
    snprintf(big, sizeof(big), "ms a %u T0\r\n", ITEM_MAX + 1);
    memset(big + strlen(big), 'z', ITEM_MAX + 1);
    memcpy(big + strlen("ms a 4097 T0\r\n") + ITEM_MAX + 1, "\r\n", 3);
    expect(f, big, "SERVER_ERROR object too large for cache\r\n");
    expect(f, "mg a v\r\n", "EN\r\n");
}

/* A write the store says would wait for a roll-over (CASK_EBLOCKED, the
 * connection parks its writes): CMD_PARK with nothing consumed, written
 * or counted; the same bytes then run as if it had not happened. */
static void
parks_once(struct fixture *f, const char *req, const char *rsp)
{
    struct cmd_counters before = f->fx.ctr;
    size_t used = 99;

    f->fx.n = 0;
    fake_cask_block_writes = 1;
    assert_int_equal(cmd_execute(&f->fx.cc, req, strlen(req), &used), CMD_PARK);
    assert_int_equal(used, 0);
    assert_true(f->fx.cc.write_parked);
    assert_int_equal(f->fx.n, 0);
    assert_memory_equal(&before, &f->fx.ctr, sizeof(before));
    assert_int_equal(fake_cask_block_writes, 0);
    expect(f, req, rsp);
    assert_false(f->fx.cc.write_parked);
}

static void
test_write_parks(void **state)
{
    struct fixture *f = *state;

    f->fx.cc.park_writes = true;
    parks_once(f, "set a 0 0 1\r\nx\r\n", "STORED\r\n");
    assert_int_equal(f->fx.ctr.cmd_set, 1);
    parks_once(f, "set q 0 0 1 noreply\r\ny\r\n", "");
    parks_once(f, "append a 0 0 1\r\ny\r\n", "STORED\r\n");
    parks_once(f, "cas a 0 0 1 99\r\nz\r\n", "EXISTS\r\n");
    assert_int_equal(f->fx.ctr.cas_badval, 1);
    parks_once(f, "set n 0 0 1\r\n5\r\n", "STORED\r\n");
    parks_once(f, "incr n 2\r\n", "7\r\n");
    parks_once(f, "decr n 1 noreply\r\n", "");
    parks_once(f, "delete q\r\n", "DELETED\r\n");
    parks_once(f, "ms m 2 T0\r\nhi\r\n", "HD\r\n");
    assert_int_equal(f->fx.ctr.cmd_set, 6); /* each store counted once */
    parks_once(f, "ma n D3 v\r\n", "VA 1\r\n9\r\n");
    parks_once(f, "md m q\r\n", "");
    parks_once(f, "touch a 100\r\n", "TOUCHED\r\n");
    assert_int_equal(f->fx.ctr.cmd_touch, 1);
    expect(f, "get a n m q\r\n",
           "VALUE a 0 2\r\nxy\r\nVALUE n 0 1\r\n9\r\nEND\r\n");
    assert_int_equal(f->fx.ctr.meta_cmds, 0); /* memcached counts me only */
    assert_int_equal(f->fx.ctr.delete_hits, 2);
    /* a connection that does not park its writes never sees it */
    f->fx.cc.park_writes = false;
    fake_cask_block_writes = 1;
    expect(f, "set b 0 0 1\r\nx\r\n", "STORED\r\n");
    assert_int_equal(fake_cask_block_writes, 1);
    fake_cask_block_writes = 0;
}

/* A request that reads and touches (mg T, mg N, gat, gats) parks at the
 * write that would wait, with nothing of that key touched, made, counted
 * or answered; run again, it answers as if it had not parked. A multi-key
 * gat parks at the key whose touch would wait: the keys before it are
 * answered and counted once, and the request goes on from that key. */
static void
test_touch_reads_park(void **state)
{
    struct fixture *f = *state;
    struct cmd_counters before;
    size_t used = 99;
    const char *gat = "gat 100 a b c\r\n";

    f->fx.cc.park_writes = true;
    expect(f, "set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\nset c 0 0 1\r\nz\r\n",
           "STORED\r\nSTORED\r\nSTORED\r\n");
    /* mg T: its touch is the write */
    parks_once(f, "mg a T30 t v\r\n", "VA 1 t30\r\nx\r\n");
    assert_int_equal(f->fx.ctr.cmd_touch, 1);
    assert_int_equal(f->fx.ctr.touch_hits, 1);
    /* mg N on a miss: the item it would make */
    parks_once(f, "mg n N30 s t v\r\n", "VA 0 s0 t30 W\r\n\r\n");
    assert_int_equal(f->fx.ctr.total_items, 4);
    assert_int_equal(f->fx.ctr.cmd_get, 1);
    assert_int_equal(f->fx.ctr.get_misses, 0);
    /* mg T N on a miss: the touch finds nothing, then the add parks */
    before = f->fx.ctr;
    f->fx.n = 0;
    fake_cask_block_skip = 1;
    fake_cask_block_writes = 1;
    assert_int_equal(cmd_execute(&f->fx.cc, "mg m T40 N30 t\r\n", 17, &used),
                     CMD_PARK);
    assert_int_equal(used, 0);
    assert_int_equal(f->fx.n, 0);
    assert_memory_equal(&before, &f->fx.ctr, sizeof(before));
    expect(f, "mg m T40 N30 t\r\n", "HD t30 W\r\n");
    assert_int_equal(f->fx.ctr.cmd_touch, 2);
    /* gat over three keys: a is touched and answered, b parks */
    before = f->fx.ctr;
    f->fx.n = 0;
    fake_cask_block_skip = 1;
    fake_cask_block_writes = 1;
    assert_int_equal(cmd_execute(&f->fx.cc, gat, strlen(gat), &used), CMD_PARK);
    assert_int_equal(used, 0);
    assert_true(f->fx.cc.write_parked);
    f->fx.out[f->fx.n] = '\0';
    assert_string_equal(f->fx.out, "VALUE a 0 1\r\nx\r\n");
    assert_int_equal(f->fx.ctr.cmd_touch, before.cmd_touch + 1);
    assert_int_equal(f->fx.ctr.touch_hits, before.touch_hits + 1);
    /* run again: from b on, a neither answered nor counted again */
    expect(f, gat, "VALUE b 0 1\r\ny\r\nVALUE c 0 1\r\nz\r\nEND\r\n");
    assert_int_equal(f->fx.ctr.cmd_touch, before.cmd_touch + 3);
    assert_int_equal(f->fx.ctr.touch_hits, before.touch_hits + 3);
    /* gats parked at its first key; a miss after it still counted once */
    parks_once(f, "gats 100 c nope\r\n", "VALUE c 0 1 3\r\nz\r\nEND\r\n");
    assert_int_equal(f->fx.ctr.touch_misses, before.touch_misses + 1);
    assert_int_equal(fake_cask_block_skip, 0);
    /* an overlong opaque: memcached still applies T and N before it */
    parks_once(f, "mg a T70 O0123456789012345678901234567890123456789\r\n",
               "CLIENT_ERROR opaque token too long\r\n");
    parks_once(f, "mg o N80 O0123456789012345678901234567890123456789\r\n",
               "CLIENT_ERROR opaque token too long\r\n");
    expect(f, "mg a t\r\nmg o t s\r\n", "HD t70\r\nHD t80 s0\r\n");
}

/* ma with T changes the number and the TTL in one write, so a ma parks
 * whole or runs whole: nothing is left to wait after the change. */
static void
test_ma_touch_one_write(void **state)
{
    struct fixture *f = *state;
    unsigned w0;

    f->fx.cc.park_writes = true;
    expect(f, "set n 0 0 2\r\n10\r\n", "STORED\r\n");
    w0 = fake_cask_writes;
    parks_once(f, "ma n T100 t v\r\n", "VA 2 t100\r\n11\r\n");
    assert_int_equal(fake_cask_writes - w0, 2); /* the parked try, the run */
    expect(f, "mg n t v\r\n", "VA 2 t100\r\n11\r\n");
    /* a t before T shows the TTL from before; N on an item found is not
     * applied */
    w0 = fake_cask_writes;
    expect(f, "ma n t T50 N9\r\n", "HD t100\r\n");
    assert_int_equal(fake_cask_writes - w0, 1);
    expect(f, "mg n t\r\n", "HD t50\r\n");
    /* a longer number loses T, as in memcached (shown all the same) */
    expect(f, "set g 0 0 1\r\n9\r\nma g T70 t\r\nmg g t\r\n",
           "STORED\r\nHD t70\r\nHD t-1\r\n");
    /* made by N: the last of N and T */
    w0 = fake_cask_writes;
    expect(f, "ma m N30 T40 J5 t v\r\nmg m t\r\n",
           "VA 1 t40\r\n5\r\nHD t40\r\n");
    assert_int_equal(fake_cask_writes - w0, 1);
}

/* Watch lines of a watched server (cmd_env.watch) logged by requests. */
struct watched {
    unsigned n;
    char line[8][32]; /* type, status and key of each */
};

static void
watch_fn(void *arg, const struct cmd_watch_ev *ev)
{
    struct watched *w = arg;

    if (w->n < 8) {
        snprintf(w->line[w->n], sizeof(w->line[0]), "%s %u %.*s",
                 ev->type == CMD_WATCH_GET ? "get" : "store", ev->status,
                 (int)ev->klen, ev->key);
    }
    w->n++;
}

/* A write parks while someone watches too, and its watch lines (the
 * lookup memcached makes before a store, the store) are logged once, when
 * it runs. */
static void
test_watched_write_parks(void **state)
{
    struct fixture *f = *state;
    struct watched w = {0};
    atomic_uint watchers = 1;

    f->fx.env.watch = watch_fn;
    f->fx.env.watch_arg = &w;
    f->fx.env.watchers = &watchers;
    f->fx.cc.park_writes = true;
    parks_once(f, "set a 0 0 1\r\nx\r\n", "STORED\r\n");
    assert_int_equal(w.n, 2);
    assert_string_equal(w.line[0], "get 0 a");
    assert_string_equal(w.line[1], "store 1 a");
    parks_once(f, "ms a 2\r\nhi\r\n", "HD\r\n");
    assert_int_equal(w.n, 4);
    assert_string_equal(w.line[2], "get 1 a");
    assert_string_equal(w.line[3], "store 1 a");
    parks_once(f, "mg n N0 s\r\n", "HD s0 W\r\n");
    assert_int_equal(w.n, 5);
    assert_string_equal(w.line[4], "get 0 n");
    parks_once(f, "gat 0 a\r\n", "VALUE a 0 2\r\nhi\r\nEND\r\n");
    assert_int_equal(w.n, 6);
    assert_string_equal(w.line[5], "get 1 a");
    f->fx.env.watch = NULL;
    f->fx.env.watchers = NULL;
}

static void
test_store_errors(void **state)
{
    struct fixture *f = *state;

    expect(f, "set a 0 0 1\r\nx\r\n", "STORED\r\n");
    expect(f, "set b 0 0 1\r\ny\r\n", "STORED\r\n");
    /* a damaged record is a miss; the other keys and END still come */
    fake_cask_fail_rc = CASK_ECORRUPT;
    expect(f, "get a b\r\n", "VALUE b 0 1\r\ny\r\nEND\r\n");
    assert_int_equal(f->fx.ctr.get_corrupt, 1);
    assert_int_equal(f->fx.ctr.get_misses, 1);
    /* a read error is not a miss: the client must not take it for one */
    fake_cask_fail_rc = 5; /* EIO */
    run(f, "get b a\r\n");
    assert_true(strncmp(f->fx.out, "SERVER_ERROR ", 13) == 0);
    assert_int_equal(f->fx.ctr.get_corrupt, 1);
    fake_cask_fail_rc = CASK_ECORRUPT;
    run(f, "mg a v\r\n");
    assert_true(strncmp(f->fx.out, "SERVER_ERROR ", 13) == 0);
    fake_cask_fail_rc = CASK_ETOOBIG;
    /* memcached: an append past the item limit is not stored */
    expect(f, "append a 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    fake_cask_fail_rc = CASK_EFAILED;
    run(f, "set a 0 0 1\r\nx\r\n");
    assert_true(strncmp(f->fx.out, "SERVER_ERROR ", 13) == 0);
    fake_cask_fail_rc = 5; /* EIO */
    run(f, "delete a\r\n");
    assert_true(strncmp(f->fx.out, "SERVER_ERROR ", 13) == 0);
    fake_cask_fail_rc = CASK_EFAILED;
    run(f, "incr a 1\r\n");
    assert_true(strncmp(f->fx.out, "SERVER_ERROR ", 13) == 0);
    fake_cask_fail_rc = CASK_EFAILED;
    run(f, "flush_all\r\n");
    assert_true(strncmp(f->fx.out, "SERVER_ERROR ", 13) == 0);
    /* a write a failed commit undid while the store goes on: memcached's
     * words for a store or an incr it could not make; read-only only
     * when the shard is latched */
    fake_cask_fail_rc = CASK_EUNDONE;
    expect(f, "set a 0 0 1\r\nx\r\n",
           "SERVER_ERROR out of memory storing object\r\n");
    fake_cask_fail_rc = CASK_EUNDONE;
    expect(f, "ms a 1\r\nx\r\n",
           "SERVER_ERROR out of memory storing object\r\n");
    fake_cask_fail_rc = CASK_EUNDONE;
    expect(f, "incr a 1\r\n", "SERVER_ERROR out of memory\r\n");
    fake_cask_fail_rc = CASK_EFAILED;
    expect(f, "set a 0 0 1\r\nx\r\n",
           "SERVER_ERROR shard failed after an I/O error (read-only)\r\n");
    /* every line ends in CRLF */
    assert_memory_equal(f->fx.out + f->fx.n - 2, "\r\n", 2);
}

static bool
full_always(void *arg)
{
    (*(unsigned *)arg)++;
    return true;
}

/* A throttled multi-get answers one key per call and picks up where it
 * stopped; the caller feeds the same line again. */
static void
test_multiget_pause(void **state)
{
    struct fixture *f = *state;
    static const char line[] = "gat 100 a nope b a\r\n";
    unsigned asked = 0;
    size_t used = 1;

    expect(f, "set a 0 0 1\r\nx\r\n", "STORED\r\n");
    expect(f, "set b 0 0 1\r\ny\r\n", "STORED\r\n");
    cmd_conn_set_throttle(&f->fx.cc, full_always, &asked);
    f->fx.n = 0;
    assert_int_equal(cmd_execute(&f->fx.cc, line, strlen(line), &used),
                     CMD_PAUSE);
    assert_int_equal(used, 0);
    assert_int_equal(cmd_execute(&f->fx.cc, line, strlen(line), &used),
                     CMD_PAUSE);
    assert_int_equal(cmd_execute(&f->fx.cc, line, strlen(line), &used),
                     CMD_PAUSE);
    assert_int_equal(cmd_execute(&f->fx.cc, line, strlen(line), &used),
                     CMD_DONE);
    assert_int_equal(used, strlen(line));
    f->fx.out[f->fx.n] = '\0';
    assert_string_equal(f->fx.out, "VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\n"
                                   "VALUE a 0 1\r\nx\r\nEND\r\n");
    assert_int_equal(asked, 3);
    /* each key looked up and touched once, not once per call; memcached
     * 1.6.18 counts gat keys as touches only */
    assert_int_equal(f->fx.ctr.cmd_get, 0);
    assert_int_equal(f->fx.ctr.cmd_touch, 4);
    assert_int_equal(f->fx.ctr.touch_hits, 3);
    assert_int_equal(f->fx.ctr.touch_misses, 1);
    /* a single-key get never pauses */
    asked = 0;
    expect(f, "get b\r\n", "VALUE b 0 1\r\ny\r\nEND\r\n");
    assert_int_equal(asked, 0);
}

static void
test_too_large(void **state)
{
    struct fixture *f = *state;
    size_t n = ITEM_MAX + 100;
    char *req = malloc(n + 64);
    int h;

    assert_non_null(req);
    expect(f, "set big 0 0 1\r\nx\r\n", "STORED\r\n");
    h = snprintf(req, 64, "set big 0 0 %zu\r\n", n);
    memset(req + h, 'x', n);
    memcpy(req + h + n, "\r\nget big\r\n", 12);
    expect(f, req, "SERVER_ERROR object too large for cache\r\nEND\r\n");
    assert_int_equal(f->fx.ctr.store_too_large, 1);
    free(req);
}

/* Big values reach the sink as the store's own buffer, small ones inline. */
static void
test_value_handover(void **state)
{
    struct fixture *f = *state;
    char req[4000];
    int h = snprintf(req, sizeof(req), "set v 0 0 3000\r\n");

    memset(req + h, 'v', 3000);
    memcpy(req + h + 3000, "\r\n", 3);
    expect(f, req, "STORED\r\n");
    f->fx.values = 0;
    run(f, "get v\r\n");
    assert_int_equal(f->fx.values, 1);
    assert_int_equal(f->fx.n, strlen("VALUE v 0 3000\r\n") + 3000 + 2 + 5);
    f->fx.values = 0;
    run(f, "set s 0 0 2\r\nhi\r\nget s\r\n");
    assert_int_equal(f->fx.values, 0);
}

static void
test_incremental(void **state)
{
    struct fixture *f = *state;
    static const char req[] = "set k 0 0 10\r\n0123456789\r\n";
    size_t used = 99;

    f->fx.n = 0;
    assert_int_equal(cmd_execute(&f->fx.cc, req, 14, &used), CMD_NEED_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(cmd_bytes_wanted(&f->fx.cc), sizeof(req) - 1);
    assert_int_equal(cmd_execute(&f->fx.cc, req, sizeof(req) - 1, &used),
                     CMD_DONE);
    assert_int_equal(used, sizeof(req) - 1);
    assert_int_equal(f->fx.n, 8);
    assert_int_equal(cmd_execute(&f->fx.cc, req, 0, &used), CMD_NEED_MORE);
}

static void
test_meta(void **state)
{
    struct fixture *f = *state;

    expect(f, "ms k 2 F7 T0 c\r\nhi\r\n", "HD c1\r\n");
    expect(f, "mg k v f s k Oxy\r\n", "VA 2 f7 s2 kk Oxy\r\nhi\r\n");
    expect(f, "mg zz v q\r\nmg zz k\r\n", "EN kzz\r\n");
    expect(f, "ms k 1 MA q\r\n!\r\nmg k v\r\n", "VA 3\r\nhi!\r\n");
    expect(f, "ms k 1 ME\r\nx\r\n", "NS\r\n");
    expect(f, "ms k 1 C999\r\nx\r\n", "EX\r\n");
    expect(f, "md k C999\r\nmd k q\r\nmd k\r\n", "EX\r\nNF\r\n");
    expect(f, "ma c N0 J10 v\r\nma c D5 MD v\r\nma c q\r\nma c v t\r\n",
           "VA 2\r\n10\r\nVA 1\r\n5\r\nVA 1 t-1\r\n7\r\n");
    expect(f, "ms a2V5 2 b k\r\nhi\r\nget key\r\nme key\r\n",
           "HD ka2V5 b\r\nVALUE key 0 2\r\nhi\r\nEND\r\n"
           "ME key exp=-1 la=0 cas=7 fetch=yes cls=0 size=64\r\n");
}

/* Meta corners settled against memcached 1.6.18. */
static void
test_meta_corners(void **state)
{
    struct fixture *f = *state;

    /* md I keeps the item (add fails, get sees it) with a new cas */
    expect(f, "set a 0 0 1\r\nx\r\nmd a I\r\nadd a 0 0 1\r\ny\r\nget a\r\n",
           "STORED\r\nHD\r\nNOT_STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
    expect(f, "gets a\r\n", "VALUE a 0 1 2\r\nx\r\nEND\r\n");
    /* C0 never matches on ms/md, means "no compare" on ma */
    expect(f, "ms a 1 C0\r\ny\r\nmd a C0\r\nms zz 1 C0\r\ny\r\n",
           "EX\r\nEX\r\nNF\r\n");
    expect(f, "set n 0 0 1\r\n1\r\nma n C0 v\r\n", "STORED\r\nVA 1\r\n2\r\n");
    /* ma q: silent on an existing item, answers when it created one */
    expect(f, "ma n q\r\nma m q N0 J7\r\nmg m v\r\n", "HD\r\nVA 1\r\n7\r\n");
    /* ma applies T where it stands */
    expect(f, "ma n t T30\r\nma n T60 t\r\n", "HD t-1\r\nHD t60\r\n");
    /* mg N creates the item and says this client won */
    expect(f, "mg v N30 v t\r\nmg v v\r\n", "VA 0 t30 W\r\n\r\nVA 0 Z\r\n\r\n");
    /* ms c returns c0 on failure; b follows the returned key */
    expect(f, "ms zz 1 c MR\r\ny\r\nmg bWs= b k O1\r\n",
           "NS c0\r\nEN kbWs= b O1\r\n");
}

/* W once, then Z; R against the TTL left; md I and ms I make X; stores,
 * deletes and a longer incr clear the state, touch and in-place incr keep
 * it. Settled against memcached 1.6.18. */
static void
test_meta_state(void **state)
{
    struct fixture *f = *state;

    expect(f, "mg a N30 v\r\nmg a\r\nmg a N30 k q\r\n",
           "VA 0 W\r\n\r\nHD Z\r\nHD ka Z\r\n");
    /* a T after N sets the TTL the item keeps */
    expect(f, "mg b N30 T60 t\r\nmg b t\r\n", "HD t60 W\r\nHD t60 Z\r\n");
    expect(f, "set a 0 100 1\r\nx\r\nmg a v\r\nmg a R50\r\n",
           "STORED\r\nVA 1\r\nx\r\nHD\r\n");
    f->fx.now += 60;
    expect(f, "mg a R50 t\r\nmg a R50\r\nmg a T500 R50\r\n",
           "HD t40 W\r\nHD Z\r\nHD Z\r\n");
    /* md I: stale, token cleared; touch keeps the state */
    expect(f, "md a I\r\ntouch a 100\r\nmg a\r\nmg a\r\ngat 9 a\r\nmg a\r\n",
           "HD\r\nTOUCHED\r\nHD X W\r\nHD Z X\r\n"
           "VALUE a 0 1\r\nx\r\nEND\r\nHD Z X\r\n");
    /* ms I over an older cas: stored, old TTL, stale, token kept */
    expect(f, "ms a 1 I C1 T5\r\ny\r\nmg a v t\r\n",
           "HD\r\nVA 1 t9 Z X\r\ny\r\n");
    /* ... but not for append, and not without C */
    expect(f, "ms a 1 MA I C1\r\nz\r\nms a 1 I\r\nz\r\nmg a\r\n",
           "EX\r\nHD\r\nHD\r\n");
    /* delete, set and md clear it */
    expect(f, "md a I\r\ndelete a\r\nmg a N5\r\nmg a\r\n",
           "HD\r\nDELETED\r\nHD W\r\nHD Z\r\n");
    expect(f, "set a 0 0 2\r\n10\r\nmg a\r\nmd a I\r\nmd a\r\nmg a N5\r\n",
           "STORED\r\nHD\r\nHD\r\nHD\r\nHD W\r\n");
    /* incr in place keeps the state, a longer number drops it */
    expect(f,
           "set c 0 0 2\r\n10\r\nmd c I\r\nincr c 1\r\nmg c\r\n"
           "ma c MD D5\r\nmg c v\r\nincr c 100\r\nmg c\r\n",
           "STORED\r\nHD\r\n11\r\nHD X W\r\nHD\r\nVA 2 Z X\r\n"
           "6 \r\n106\r\nHD\r\n");
    /* mg q still answers a hit, with its flags */
    expect(f, "set d 0 0 1\r\nx\r\nmd d I\r\nmg d q v\r\nmg d q k\r\n",
           "STORED\r\nHD\r\nVA 1 X W\r\nx\r\nHD kd Z X\r\n");
}

/* The state is trusted only while the item keeps the cas recorded with it:
 * a store through a path that does not clear it leaves no wrong Z. */
static void
test_meta_cas_checked(void **state)
{
    struct fixture *f = *state;
    struct cmd_meta *m = f->fx.env.meta;
    uint64_t cas = 0;

    expect(f, "mg a N30\r\n", "HD W\r\n");
    assert_int_equal(
            cask_store(f->fx.store, CASK_SET, "a", 1, "v", 1, 0, 0, 0, &cas),
            CASK_OK);
    expect(f, "mg a\r\n", "HD\r\n");
    /* the stale entry was dropped on sight */
    assert_int_equal(cmd_meta_count(m), 0);

    cmd_meta_put(m, "k", 1, 7, CMD_META_STALE);
    assert_int_equal(cmd_meta_bits(m, "k", 1, 7), CMD_META_STALE);
    assert_int_equal(cmd_meta_fetch(m, "k", 1, 7, false),
                     CMD_META_X | CMD_META_W);
    assert_int_equal(cmd_meta_bits(m, "k", 1, 7),
                     CMD_META_STALE | CMD_META_TOKEN);
    assert_int_equal(cmd_meta_fetch(m, "k", 1, 7, true),
                     CMD_META_Z | CMD_META_X);
    /* forget keeps an entry for the cas it is told to keep */
    cmd_meta_forget(m, "k", 1, 7);
    assert_true(cmd_meta_has(m, "k", 1));
    cmd_meta_forget(m, "k", 1, 8);
    assert_false(cmd_meta_has(m, "k", 1));
    cmd_meta_put(m, "k", 1, 9, CMD_META_TOKEN);
    cmd_meta_put(m, "k", 1, 9, 0);
    assert_int_equal(cmd_meta_count(m), 0);
    /* without a table: W for a win, nothing else */
    assert_int_equal(cmd_meta_fetch(NULL, "k", 1, 1, true), CMD_META_W);
    assert_int_equal(cmd_meta_fetch(NULL, "k", 1, 1, false), 0);
    cmd_meta_put(NULL, "k", 1, 1, CMD_META_STALE);
    assert_int_equal(cmd_meta_bits(NULL, "k", 1, 1), 0);
}

/* The table never grows past its cap; the oldest entries go first. */
static void
test_meta_cap(void **state)
{
    struct cmd_meta *m = NULL;
    char key[32];
    unsigned i;

    (void)state;
    assert_int_equal(cmd_meta_create(&m, 256), 0);
    for (i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "key%u", i);

        assert_int_equal(cmd_meta_fetch(m, key, (size_t)n, i + 1, true),
                         CMD_META_W);
        assert_true(cmd_meta_count(m) <= 256);
    }
    assert_true(cmd_meta_count(m) > 128);
    /* the newest key is still known, the first one was evicted */
    assert_int_equal(cmd_meta_fetch(m, "key19999", 8, 20000, true), CMD_META_Z);
    assert_int_equal(cmd_meta_fetch(m, "key0", 4, 1, true), CMD_META_W);
    cmd_meta_destroy(&m);
    assert_null(m);
}

#define RACE_THREADS 4
#define RACE_KEYS    200

struct race {
    struct cmd_meta *m;
    unsigned wins;
};

static void *
race_worker(void *arg)
{
    struct race *r = arg;
    char key[16];
    unsigned round;
    unsigned k;

    for (round = 0; round < 5; round++) {
        for (k = 0; k < RACE_KEYS; k++) {
            int n = snprintf(key, sizeof(key), "r%u", k);

            if (cmd_meta_fetch(r->m, key, (size_t)n, 1, true) & CMD_META_W) {
                r->wins++;
            }
        }
    }
    return NULL;
}

/* Several threads race for the same tokens: each key wins exactly once. */
static void
test_meta_threads(void **state)
{
    struct race r[RACE_THREADS];
    pthread_t t[RACE_THREADS];
    struct cmd_meta *m = NULL;
    unsigned total = 0;
    unsigned i;

    (void)state;
    assert_int_equal(cmd_meta_create(&m, 4096), 0);
    for (i = 0; i < RACE_THREADS; i++) {
        r[i].m = m;
        r[i].wins = 0;
        assert_int_equal(pthread_create(&t[i], NULL, race_worker, &r[i]), 0);
    }
    for (i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        total += r[i].wins;
    }
    assert_int_equal(total, RACE_KEYS);
    assert_int_equal(cmd_meta_count(m), RACE_KEYS);
    cmd_meta_destroy(&m);
}

/* expect() of in and out, during which the store was told of n coming
 * gets (cask_prefetch), the last of key last. */
static void
expect_prefetch(struct fixture *f, const char *in, const char *out, int n,
                const char *last)
{
    fake_cask_prefetches = 0;
    expect(f, in, out);
    assert_int_equal(fake_cask_prefetches, n);
    assert_string_equal(fake_cask_prefetched, last);
}

/* A get announces the key it serves next to the store (cask_prefetch):
 * the next key of a multi-get, and the first key of the next request when
 * that is a whole get or gets line already in the buffer; nothing else,
 * and the replies are the same. */
static void
test_prefetch_next(void **state)
{
    struct fixture *f = *state;

    expect(f, "set a 0 0 1\r\nA\r\nset bb 0 0 1\r\nB\r\n",
           "STORED\r\nSTORED\r\n");
    expect_prefetch(f, "get a\r\nget bb\r\n",
                    "VALUE a 0 1\r\nA\r\nEND\r\nVALUE bb 0 1\r\nB\r\nEND\r\n",
                    1, "bb");
    expect_prefetch(f, "get a bb zz\r\n",
                    "VALUE a 0 1\r\nA\r\nVALUE bb 0 1\r\nB\r\nEND\r\n", 2,
                    "zz");
    expect_prefetch(f, "get a\r\ngets   bb\r\n",
                    "VALUE a 0 1\r\nA\r\nEND\r\nVALUE bb 0 1 2\r\nB\r\nEND\r\n",
                    1, "bb");
    /* not after a set, not before one, not a key not ended yet, not one
     * longer than a key can be */
    fake_cask_prefetches = 0;
    expect(f, "set c 0 0 1\r\nC\r\nget c\r\nset d 0 0 1\r\nD\r\n",
           "STORED\r\nVALUE c 0 1\r\nC\r\nEND\r\nSTORED\r\n");
    assert_int_equal(fake_cask_prefetches, 0);
    size_t used = 0;
    f->fx.n = 0;
    assert_int_equal(cmd_execute(&f->fx.cc, "get a\r\nget bb", 13, &used),
                     CMD_DONE);
    assert_int_equal(used, 7);
    assert_int_equal(fake_cask_prefetches, 0);
    char line[600];
    memcpy(line, "get a\r\nget ", 11);
    memset(line + 11, 'k', PROTO_KEY_MAX + 1);
    memcpy(line + 11 + PROTO_KEY_MAX + 1, "\r\n", 3);
    f->fx.n = 0;
    used = 0;
    assert_int_equal(
            cmd_execute(&f->fx.cc, line, 11 + PROTO_KEY_MAX + 4, &used),
            CMD_DONE);
    assert_int_equal(used, 7);
    assert_int_equal(fake_cask_prefetches, 0);
    /* the longest key there can be is announced */
    memset(line + 11, 'k', PROTO_KEY_MAX);
    memcpy(line + 11 + PROTO_KEY_MAX, "\r\n", 2);
    f->fx.n = 0;
    used = 0;
    assert_int_equal(
            cmd_execute(&f->fx.cc, line, 11 + PROTO_KEY_MAX + 2, &used),
            CMD_DONE);
    assert_int_equal(fake_cask_prefetches, 1);
    assert_int_equal(strlen(fake_cask_prefetched), PROTO_KEY_MAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
            cmocka_unit_test_setup_teardown(test_prefetch_next, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_noreply, setup, teardown),
            cmocka_unit_test_setup_teardown(test_exptime, setup, teardown),
            cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
            cmocka_unit_test_setup_teardown(test_created_counters, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_admin, setup, teardown),
            cmocka_unit_test_setup_teardown(test_dumps, setup, teardown),
            cmocka_unit_test_setup_teardown(test_meta_issue11, setup, teardown),
            cmocka_unit_test_setup_teardown(test_store_errors, setup, teardown),
            cmocka_unit_test_setup_teardown(test_write_parks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_touch_reads_park, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_watched_write_parks, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_ma_touch_one_write, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_multiget_pause, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
            cmocka_unit_test_setup_teardown(test_value_handover, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_incremental, setup, teardown),
            cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
            cmocka_unit_test_setup_teardown(test_touch_counters, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_meta_corners, setup, teardown),
            cmocka_unit_test_setup_teardown(test_meta_state, setup, teardown),
            cmocka_unit_test_setup_teardown(test_meta_cas_checked, setup,
                                            teardown),
            cmocka_unit_test(test_meta_cap),
            cmocka_unit_test(test_meta_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
