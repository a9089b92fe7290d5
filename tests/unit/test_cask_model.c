/* test_cask_model.c - model test: random operations applied both to the
 * store and to a plain in-memory table, compared after every batch and after
 * every reopen (with and without hints, with compactions in between).
 */
#include "config.h"

#include "storage/cask.h"

#include "tests/unit/test_cask_util.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { NKEYS = 48, VMAX = 300, NOPS = 12000 };

struct mitem {
    bool present;
    char val[VMAX + 32];
    size_t vlen;
    uint32_t flags;
    int64_t exp;
    uint64_t cas;
};

static struct mitem model[NKEYS];
static int64_t pending_flush;
static int op_no; /* for failure messages */

static bool
alive(const struct mitem *m)
{
    return m->present && !(m->exp != 0 && m->exp <= tc_now);
}

static void
model_tick(void)
{
    if (pending_flush != 0 && tc_now >= pending_flush) {
        for (int i = 0; i < NKEYS; i++) {
            model[i].present = false;
        }
        pending_flush = 0;
    }
}

static void
key_of(char *k, int i)
{
    snprintf(k, 32, "model-key-%d", i);
}

/* memcached's incr/decr number rule, written independently of the store */
static bool
parse_num(const char *s, size_t n, uint64_t *out)
{
    char buf[VMAX + 32];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno == ERANGE || end == buf) {
        return false;
    }
    if (!(*end == '\0' || *end == ' ' || *end == '\t' || *end == '\n' ||
          *end == '\v' || *end == '\f' || *end == '\r')) {
        return false;
    }
    if ((long long)v < 0 && memchr(buf, '-', (size_t)(end - buf)) != NULL) {
        return false;
    }
    *out = v;
    return true;
}

static void
compare_all(struct cask *c)
{
    model_tick();
    for (int i = 0; i < NKEYS; i++) {
        char k[32];
        key_of(k, i);
        struct cask_item it;
        char *v = NULL;
        int rc = cask_get(c, k, strlen(k), &it, &v);
        if (!alive(&model[i])) {
            if (rc != CASK_ENOTFOUND) {
                fail_msg("op %d key %d: expected absent, got rc %d", op_no, i,
                         rc);
            }
            continue;
        }
        if (rc != CASK_OK) {
            fail_msg("op %d key %d: expected present, got rc %d (exp %lld now "
                     "%lld)",
                     op_no, i, rc, (long long)model[i].exp, (long long)tc_now);
        }
        assert_int_equal(it.vlen, model[i].vlen);
        assert_memory_equal(v, model[i].val, it.vlen);
        assert_int_equal(it.flags, model[i].flags);
        assert_int_equal(it.exp_abs_s, model[i].exp);
        assert_int_equal(it.cas, model[i].cas);
        free(v);
    }
}

static void
random_value(unsigned *seed, char *v, size_t *n)
{
    unsigned kind = rand_r(seed) % 4;
    if (kind == 0) {
        *n = (size_t)snprintf(v, 32, "%u", rand_r(seed) % 1000);
        return;
    }
    *n = rand_r(seed) % (kind == 3 ? VMAX / 2 : 40);
    for (size_t j = 0; j < *n; j++) {
        v[j] = (char)rand_r(seed);
    }
}

static void
one_op(struct cask *c, unsigned *seed)
{
    int i = (int)(rand_r(seed) % NKEYS);
    char k[32], v[VMAX + 32];
    size_t vlen;
    key_of(k, i);
    size_t klen = strlen(k);
    struct mitem *m = &model[i];
    unsigned op = rand_r(seed) % 100;
    model_tick();
    bool live = alive(m);
    int rc;
    uint64_t cas = 0;
    int64_t exp = rand_r(seed) % 4 == 0 ? tc_now + 1 + rand_r(seed) % 20 : 0;
    uint32_t flags = rand_r(seed) % 3;

    if (op < 30) {
        enum cask_store_mode mode = (enum cask_store_mode)(rand_r(seed) % 5);
        random_value(seed, v, &vlen);
        uint64_t cas_in = 0;
        if (rand_r(seed) % 5 == 0) {
            cas_in = rand_r(seed) % 2 ? m->cas : m->cas + 1;
            if (cas_in == 0) {
                cas_in = 1;
            }
        }
        rc = cask_store(c, mode, k, klen, v, vlen, flags, exp, cas_in, &cas);
        int want = CASK_OK;
        if (cas_in != 0 && !live) {
            want = CASK_ENOTFOUND;
        } else if (cas_in != 0 && cas_in != m->cas) {
            want = CASK_EEXISTS;
        } else if (mode == CASK_ADD && live) {
            want = CASK_ENOTSTORED;
        } else if (mode != CASK_SET && mode != CASK_ADD && !live) {
            want = CASK_ENOTSTORED;
        } else if ((mode == CASK_APPEND || mode == CASK_PREPEND) &&
                   m->vlen + vlen > VMAX) {
            want = CASK_ETOOBIG;
        }
        assert_int_equal(rc, want);
        if (rc != CASK_OK) {
            return;
        }
        if (mode == CASK_APPEND) {
            memcpy(m->val + m->vlen, v, vlen);
            m->vlen += vlen;
        } else if (mode == CASK_PREPEND) {
            memmove(m->val + vlen, m->val, m->vlen);
            memcpy(m->val, v, vlen);
            m->vlen += vlen;
        } else {
            memcpy(m->val, v, vlen);
            m->vlen = vlen;
            m->flags = flags;
            m->exp = exp;
        }
        m->present = true;
        m->cas = cas;
    } else if (op < 45) {
        rc = cask_delete(c, k, klen, 0);
        assert_int_equal(rc, live ? CASK_OK : CASK_ENOTFOUND);
        m->present = false;
    } else if (op < 60) {
        struct cask_arith a = {.incr = rand_r(seed) % 2,
                               .delta = rand_r(seed) % 50};
        uint64_t nv;
        struct cask_item it;
        rc = cask_arith(c, k, klen, &a, &nv, &it);
        uint64_t cur;
        if (!live) {
            assert_int_equal(rc, CASK_ENOTFOUND);
            return;
        }
        if (!parse_num(m->val, m->vlen, &cur)) {
            assert_int_equal(rc, CASK_ENONNUMERIC);
            return;
        }
        assert_int_equal(rc, CASK_OK);
        uint64_t want =
                a.incr ? cur + a.delta : (a.delta > cur ? 0 : cur - a.delta);
        assert_int_equal(nv, want);
        char num[32];
        size_t n = (size_t)snprintf(num, sizeof(num), "%" PRIu64, want);
        if (n < m->vlen) {
            memset(num + n, ' ', m->vlen - n);
            n = m->vlen;
        }
        memcpy(m->val, num, n);
        m->vlen = n;
        m->cas = it.cas;
    } else if (op < 70) {
        rc = cask_touch(c, k, klen, exp, NULL, NULL);
        assert_int_equal(rc, live ? CASK_OK : CASK_ENOTFOUND);
        if (live) {
            m->exp = exp;
        }
    } else if (op < 72) {
        if (rand_r(seed) % 2) {
            assert_int_equal(cask_flush(c, tc_now), CASK_OK);
            for (int j = 0; j < NKEYS; j++) {
                model[j].present = false;
            }
            pending_flush = 0;
        } else {
            pending_flush = tc_now + 1 + rand_r(seed) % 10;
            assert_int_equal(cask_flush(c, pending_flush), CASK_OK);
        }
    } else if (op < 80) {
        tc_now += rand_r(seed) % 4;
    } else {
        struct cask_item it;
        rc = cask_get(c, k, klen, &it, NULL);
        assert_int_equal(rc, live ? CASK_OK : CASK_ENOTFOUND);
    }
}

static void
test_model(void **state)
{
    char *dir = *state;
    struct cask_options o;
    struct cask *c = NULL;
    unsigned seed = 12345;
    uint64_t compactions = 0;
    if (getenv("CASK_MODEL_SEED") != NULL) {
        seed = (unsigned)strtoul(getenv("CASK_MODEL_SEED"), NULL, 10);
    }
    tc_now = 1700000000;
    tc_options(&o);
    o.value_max = VMAX;
    o.segment_size = 8192;
    assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
    for (int n = 1; n <= NOPS; n++) {
        op_no = n;
        one_op(c, &seed);
        if (n % 100 == 0) {
            compare_all(c);
        }
        if (n % 250 == 0) {
            /* a forced compaction on the background thread, racing the
             * operations that follow */
            assert_int_equal(cask_compact(c, (n / 250) % 4, false), CASK_OK);
        }
        if (n % 1000 == 0) {
            int what = (n / 1000) % 4;
            if (what == 1) {
                assert_int_equal(cask_compact(c, -1, true), CASK_OK);
            }
            struct cask_stats st;
            assert_int_equal(cask_stats(c, -1, &st), CASK_OK);
            compactions += st.compactions;
            cask_close(&c);
            if (what == 2) {
                /* drop every hint: recovery must scan */
                for (unsigned s = 0; s < o.shards; s++) {
                    for (unsigned id = 1; id < 2000; id++) {
                        char p[1024];
                        snprintf(p, sizeof(p), "%s/shard-%03u/%08x.hint", dir,
                                 s, id);
                        unlink(p);
                    }
                }
            }
            assert_int_equal(cask_open(&c, dir, &o), CASK_OK);
            compare_all(c);
        }
    }
    print_message("model: %d ops, %llu compactions\n", NOPS,
                  (unsigned long long)compactions);
    assert_true(compactions > 0);
    cask_close(&c);
}

static int
setup(void **state)
{
    *state = tc_mkdtemp();
    return *state != NULL ? 0 : -1;
}

/* Runs after a failure too, so no data directory is left behind. */
static int
teardown(void **state)
{
    tc_rmrf(*state);
    free(*state);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_model, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
