/* test_proto_parse.c - cmocka tests for protocol/proto_parse.c and
 * proto_format.c: every command and error path, each request fed whole, one
 * byte at a time and pipelined, and format-then-parse round trips. Links
 * libprotocol.a only.
 */
#include "protocol/proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ITEM_MAX 1024u

struct ok_case {
    const char *in;
    enum proto_cmd cmd;
    const char *key;
};

/* Valid requests: each must parse to cmd with key (NULL: no key). */
static const struct ok_case OK_CASES[] = {
        {"get a\r\n", PROTO_CMD_GET, "a"},
        {"get a b c\r\n", PROTO_CMD_GET, "a"},
        {"gets  a \r\n", PROTO_CMD_GETS, "a"},
        {"  get a\n", PROTO_CMD_GET, "a"},
        {"gat 10 a b\r\n", PROTO_CMD_GAT, "a"},
        {"gats -1 a\r\n", PROTO_CMD_GATS, "a"},
        {"gat 10\r\n", PROTO_CMD_GAT, NULL},
        {"set k 1 2 3\r\nabc\r\n", PROTO_CMD_SET, "k"},
        {"set k 1 2 3 noreply\r\nabc\r\n", PROTO_CMD_SET, "k"},
        {"set k 1 2 0\r\n\r\n", PROTO_CMD_SET, "k"},
        {"add k 0 0 1\r\nx\r\n", PROTO_CMD_ADD, "k"},
        {"replace k 0 0 1\r\nx\r\n", PROTO_CMD_REPLACE, "k"},
        {"append k 0 0 1\r\nx\r\n", PROTO_CMD_APPEND, "k"},
        {"prepend k 0 0 1\r\nx\r\n", PROTO_CMD_PREPEND, "k"},
        {"cas k 0 0 1 77\r\nx\r\n", PROTO_CMD_CAS, "k"},
        {"cas k 0 0 1 77 noreply\r\nx\r\n", PROTO_CMD_CAS, "k"},
        {"delete k\r\n", PROTO_CMD_DELETE, "k"},
        {"delete k 0\r\n", PROTO_CMD_DELETE, "k"},
        {"delete k noreply\r\n", PROTO_CMD_DELETE, "k"},
        {"delete k 0 noreply\r\n", PROTO_CMD_DELETE, "k"},
        {"incr k 5\r\n", PROTO_CMD_INCR, "k"},
        {"decr k 5 noreply\r\n", PROTO_CMD_DECR, "k"},
        {"touch k 10\r\n", PROTO_CMD_TOUCH, "k"},
        {"flush_all\r\n", PROTO_CMD_FLUSH_ALL, NULL},
        {"flush_all 10\r\n", PROTO_CMD_FLUSH_ALL, NULL},
        {"flush_all noreply\r\n", PROTO_CMD_FLUSH_ALL, NULL},
        {"stats\r\n", PROTO_CMD_STATS, NULL},
        {"stats settings\r\n", PROTO_CMD_STATS, NULL},
        {"version\r\n", PROTO_CMD_VERSION, NULL},
        {"verbosity 1\r\n", PROTO_CMD_VERBOSITY, NULL},
        {"quit\r\n", PROTO_CMD_QUIT, NULL},
        {"shutdown\r\n", PROTO_CMD_SHUTDOWN, NULL},
        {"shutdown graceful\r\n", PROTO_CMD_SHUTDOWN, NULL},
        {"lru_crawler metadump all\r\n", PROTO_CMD_ADMIN, "lru_crawler"},
        {"watch fetchers mutations\r\n", PROTO_CMD_ADMIN, "watch"},
        {"cache_memlimit 100\r\n", PROTO_CMD_ADMIN, "cache_memlimit"},
        {"lru mode flat\r\n", PROTO_CMD_ADMIN, "lru"},
        {"slabs automove 1\r\n", PROTO_CMD_ADMIN, "slabs"},
        {"mg k v f t c s k Oabc q\r\n", PROTO_CMD_MG, "k"},
        {"mg k\r\n", PROTO_CMD_MG, "k"},
        {"ms k 2 T10 F3 MA c\r\nhi\r\n", PROTO_CMD_MS, "k"},
        {"md k q C5\r\n", PROTO_CMD_MD, "k"},
        {"ma k N0 J5 D3 MD v\r\n", PROTO_CMD_MA, "k"},
        {"mn\r\n", PROTO_CMD_MN, NULL},
        {"me k\r\n", PROTO_CMD_ME, "k"},
        {"mg a2V5 b k v\r\n", PROTO_CMD_MG, "key"},
};

struct err_case {
    const char *in;
    const char *err;  /* NULL: PROTO_CLOSE */
    size_t used;      /* 0: the whole input, 1: the first line */
    unsigned swallow; /* data bytes left to drop */
};

static const char K251[] =
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";

#define E_ERROR   "ERROR\r\n"
#define E_FORMAT  "CLIENT_ERROR bad command line format\r\n"
#define E_EXPTIME "CLIENT_ERROR invalid exptime argument\r\n"

static const struct err_case ERR_CASES[] = {
        {"foo\r\n", E_ERROR, 0, 0},
        {"\r\n", E_ERROR, 0, 0},
        {"x\r\n", E_ERROR, 0, 0},
        {"GET a\r\n", E_ERROR, 0, 0},
        {"get\r\n", E_ERROR, 0, 0},
        {"gat\r\n", E_ERROR, 0, 0},
        {"gat x a\r\n", E_EXPTIME, 0, 0},
        {"set a 0 0\r\n", E_ERROR, 0, 0},
        {"set a 0 0 1 2 3\r\n", E_ERROR, 0, 0},
        {"set a x 0 1\r\nx\r\n", E_FORMAT, 1, 0},
        {"set a -1 0 1\r\nx\r\n", E_FORMAT, 1, 0},
        {"set a 0 x 1\r\nx\r\n", E_FORMAT, 1, 0},
        {"set a 0 0 -1\r\nx\r\n", E_FORMAT, 1, 0},
        {"set a 0 0 2147483647\r\n", E_FORMAT, 0, 0},
        {"cas a 0 0 1\r\nx\r\n", E_ERROR, 1, 0},
        {"cas a 0 0 1 x\r\nx\r\n", E_FORMAT, 1, 0},
        {"set a 0 0 1\r\nxyz\r\n", "CLIENT_ERROR bad data chunk\r\n", 16, 0},
        {"set a 0 0 2000\r\n", "SERVER_ERROR object too large for cache\r\n", 0,
         2002},
        {"ms a 2000\r\n", "SERVER_ERROR object too large for cache\r\n", 0,
         2002},
        {"delete a 1\r\n",
         "CLIENT_ERROR bad command line format.  Usage: "
         "delete <key> [noreply]\r\n",
         0, 0},
        {"delete a b c d\r\n", E_ERROR, 0, 0},
        {"incr a x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n", 0,
         0},
        {"incr a -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n", 0,
         0},
        {"incr a 18446744073709551616\r\n",
         "CLIENT_ERROR invalid numeric delta argument\r\n", 0, 0},
        {"incr a\r\n", E_ERROR, 0, 0},
        {"touch a x\r\n", E_EXPTIME, 0, 0},
        {"touch a\r\n", E_ERROR, 0, 0},
        {"flush_all x\r\n", E_EXPTIME, 0, 0},
        {"flush_all 1 2 3\r\n", E_ERROR, 0, 0},
        {"verbosity\r\n", E_ERROR, 0, 0},
        {"verbosity x\r\n", E_FORMAT, 0, 0},
        {"mx\r\n", E_ERROR, 0, 0},
        {"mg\r\n", E_ERROR, 0, 0},
        {"me\r\n", E_FORMAT, 0, 0},
        {"mg a x\r\n", "CLIENT_ERROR invalid flag\r\n", 0, 0},
        {"mg a v v\r\n", "CLIENT_ERROR duplicate flag\r\n", 0, 0},
        {"mg a T\r\n", "CLIENT_ERROR bad token in command line format\r\n", 0,
         0},
        {"md a x\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n", 0, 0},
        {"ma a D\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n", 0, 0},
        {"ma a MX\r\n", "CLIENT_ERROR invalid mode for ma M token\r\n", 0, 0},
        {"ms a 1 MX\r\n", "CLIENT_ERROR invalid mode for ms M token\r\n", 0, 3},
        {"ms a 1 x\r\n", "CLIENT_ERROR invalid flag\r\n", 0, 3},
        {"ms a\r\n", E_FORMAT, 0, 0},
        {"ms a x\r\n", E_FORMAT, 0, 0},
        {"md a O123456789012345678901234567890123\r\n",
         "CLIENT_ERROR opaque token too long\r\n", 0, 0},
        {"mg a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n",
         "CLIENT_ERROR options flags are too long\r\n", 0, 0},
        {"mg a! b\r\n", "CLIENT_ERROR error decoding key\r\n", 0, 0},
        /* meta error precedence, as memcached 1.6.18 orders it */
        {"mg a T b\r\n", "CLIENT_ERROR error decoding key\r\n", 0, 0},
        {"mg a b T\r\n", "CLIENT_ERROR bad token in command line format\r\n", 0,
         0},
        {"mg k v v x\r\n", "CLIENT_ERROR duplicate flag\r\n", 0, 0},
        {"mg k x v v\r\n", "CLIENT_ERROR invalid flag\r\n", 0, 0},
        {"mg k Tx x\r\n", "CLIENT_ERROR invalid flag\r\n", 0, 0},
        {"md k! b\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n", 0, 0},
        {"ms a 1 F\r\n", E_FORMAT, 0, 3},
        {"ms a 1 F T\r\n", "CLIENT_ERROR bad token in command line format\r\n",
         0, 3},
        {"ms a 1 O123456789012345678901234567890123 MX\r\n",
         "CLIENT_ERROR invalid mode for ms M token\r\n", 0, 3},
        {"GET / HTTP/1.1\r\n", NULL, 0, 0},
};

static size_t
want_used(const struct err_case *c)
{
    if (c->used == 1) {
        return (size_t)(strchr(c->in, '\n') - c->in) + 1;
    }
    return c->used ? c->used : strlen(c->in);
}

/* Parse the whole of s; return the status. */
static enum proto_status
parse_str(struct proto_parser *p, struct proto_req *req, const char *s,
          size_t n, size_t *used)
{
    return proto_parse(p, req, s, n, used);
}

static void
check_ok(const struct ok_case *c, const struct proto_req *req)
{
    assert_int_equal(req->cmd, c->cmd);
    if (c->key != NULL) {
        assert_int_equal(req->klen, strlen(c->key));
        assert_memory_equal(req->key, c->key, req->klen);
    }
}

static void
test_ok_whole(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(OK_CASES) / sizeof(OK_CASES[0]); i++) {
        struct proto_parser p;
        struct proto_req req;
        size_t used = 0;
        size_t n = strlen(OK_CASES[i].in);

        proto_parser_init(&p, ITEM_MAX);
        assert_int_equal(parse_str(&p, &req, OK_CASES[i].in, n, &used),
                         PROTO_OK);
        assert_int_equal(used, n);
        check_ok(&OK_CASES[i], &req);
    }
}

/* Every prefix of a request is NEED_MORE and consumes nothing. */
static void
test_ok_bytewise(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(OK_CASES) / sizeof(OK_CASES[0]); i++) {
        struct proto_parser p;
        struct proto_req req;
        size_t n = strlen(OK_CASES[i].in);
        size_t k;
        size_t used = 0;
        char *copy;

        proto_parser_init(&p, ITEM_MAX);
        for (k = 0; k < n; k++) {
            /* a heap copy of exactly k bytes: ASan catches overreads */
            copy = malloc(k + 1);
            assert_non_null(copy);
            memcpy(copy, OK_CASES[i].in, k);
            assert_int_equal(proto_parse(&p, &req, copy, k, &used),
                             PROTO_NEED_MORE);
            assert_int_equal(used, 0);
            free(copy);
        }
        copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, OK_CASES[i].in, n);
        assert_int_equal(proto_parse(&p, &req, copy, n, &used), PROTO_OK);
        assert_int_equal(used, n);
        check_ok(&OK_CASES[i], &req);
        free(copy);
    }
}

/* All requests back to back in one buffer come out one at a time. */
static void
test_ok_pipelined(void **state)
{
    char buf[8192];
    size_t len = 0;
    size_t off = 0;
    size_t i;
    struct proto_parser p;

    (void)state;
    for (i = 0; i < sizeof(OK_CASES) / sizeof(OK_CASES[0]); i++) {
        size_t n = strlen(OK_CASES[i].in);

        memcpy(buf + len, OK_CASES[i].in, n);
        len += n;
    }
    proto_parser_init(&p, ITEM_MAX);
    for (i = 0; i < sizeof(OK_CASES) / sizeof(OK_CASES[0]); i++) {
        struct proto_req req;
        size_t used = 0;

        assert_int_equal(proto_parse(&p, &req, buf + off, len - off, &used),
                         PROTO_OK);
        assert_int_equal(used, strlen(OK_CASES[i].in));
        check_ok(&OK_CASES[i], &req);
        off += used;
    }
    assert_int_equal(off, len);
}

static void
drain_swallow(struct proto_parser *p, unsigned expect)
{
    char junk[100];
    unsigned total = 0;

    memset(junk, 'z', sizeof(junk));
    while (p->swallow > 0) {
        struct proto_req req;
        size_t used = 0;

        assert_int_equal(proto_parse(p, &req, junk, sizeof(junk), &used),
                         PROTO_SWALLOW);
        assert_true(used > 0);
        total += (unsigned)used;
    }
    assert_int_equal(total, expect);
}

static void
test_errors(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ERR_CASES) / sizeof(ERR_CASES[0]); i++) {
        const struct err_case *c = &ERR_CASES[i];
        struct proto_parser p;
        struct proto_req req;
        size_t used = 0;
        size_t n = strlen(c->in);
        enum proto_status st;

        proto_parser_init(&p, ITEM_MAX);
        st = proto_parse(&p, &req, c->in, n, &used);
        if (c->err == NULL) {
            assert_int_equal(st, PROTO_CLOSE);
            continue;
        }
        if (st != PROTO_ERROR) {
            fail_msg("case %zu (%s): status %d", i, c->in, (int)st);
        }
        assert_string_equal(req.err, c->err);
        assert_int_equal(used, want_used(c));
        drain_swallow(&p, c->swallow);
    }
}

/* Errors fed byte by byte give the same line and the same consumption. */
static void
test_errors_bytewise(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ERR_CASES) / sizeof(ERR_CASES[0]); i++) {
        const struct err_case *c = &ERR_CASES[i];
        struct proto_parser p;
        struct proto_req req;
        size_t n = strlen(c->in);
        size_t k;
        size_t used = 0;
        enum proto_status st = PROTO_NEED_MORE;

        if (c->err == NULL) {
            continue;
        }
        proto_parser_init(&p, ITEM_MAX);
        for (k = 1; k <= n; k++) {
            st = proto_parse(&p, &req, c->in, k, &used);
            if (st != PROTO_NEED_MORE) {
                break;
            }
        }
        assert_int_equal(st, PROTO_ERROR);
        assert_string_equal(req.err, c->err);
        assert_int_equal(used, want_used(c));
    }
}

static void
test_fields(void **state)
{
    struct proto_parser p;
    struct proto_req req;
    size_t used;
    static const char set[] =
            "set k 4294967297 4294967301 3 noreply\r\nabc\r\n";
    static const char cas[] = "cas k 5 -1 1 18446744073709551615\r\nx\r\n";
    static const char ms[] = "ms k 2 T10 F3 Oab\r\nhi\r\n";
    const char *key;
    size_t klen;
    size_t pos = 0;

    (void)state;
    proto_parser_init(&p, ITEM_MAX);
    assert_int_equal(proto_parse(&p, &req, set, sizeof(set) - 1, &used),
                     PROTO_OK);
    assert_int_equal(req.flags, 1);   /* low 32 bits, like memcached */
    assert_int_equal(req.exptime, 5); /* 32-bit truncation */
    assert_int_equal(req.nbytes, 3);
    assert_true(req.noreply);
    assert_memory_equal(req.data, "abc", 3);
    assert_ptr_equal(req.data, set + sizeof(set) - 6); /* no copy */

    assert_int_equal(proto_parse(&p, &req, cas, sizeof(cas) - 1, &used),
                     PROTO_OK);
    assert_int_equal(req.cas, UINT64_MAX);
    assert_int_equal(req.exptime, -1);
    assert_false(req.noreply);

    assert_int_equal(proto_parse(&p, &req, ms, sizeof(ms) - 1, &used),
                     PROTO_OK);
    assert_int_equal(req.nmflags, 3);
    assert_int_equal(req.mflags[0].flag, 'T');
    assert_int_equal(req.mflags[2].flag, 'O');
    assert_int_equal(req.mflags[2].len, 2);
    assert_memory_equal(req.mflags[2].tok, "ab", 2);
    assert_non_null(proto_mflag_find(&req, 'F'));
    assert_null(proto_mflag_find(&req, 'q'));

    assert_int_equal(proto_parse(&p, &req, "get a bb  ccc\r\n", 15, &used),
                     PROTO_OK);
    assert_true(proto_key_next(&req, &pos, &key, &klen));
    assert_int_equal(klen, 1);
    assert_true(proto_key_next(&req, &pos, &key, &klen));
    assert_int_equal(klen, 2);
    assert_true(proto_key_next(&req, &pos, &key, &klen));
    assert_int_equal(klen, 3);
    assert_memory_equal(key, "ccc", 3);
    assert_false(proto_key_next(&req, &pos, &key, &klen));

    assert_int_equal(
            proto_parse(&p, &req, "flush_all -5 noreply\r\n", 22, &used),
            PROTO_OK);
    assert_true(req.has_delay);
    assert_int_equal(req.delay, -5);
    assert_true(req.noreply);
}

static void
test_key_limits(void **state)
{
    struct proto_parser p;
    struct proto_req req;
    char line[600];
    size_t used;
    int n;

    (void)state;
    proto_parser_init(&p, ITEM_MAX);
    n = snprintf(line, sizeof(line), "get a %.250s\r\n", K251);
    assert_int_equal(proto_parse(&p, &req, line, (size_t)n, &used), PROTO_OK);
    assert_false(req.keys_cut);
    /* bget is memcached's old name for get */
    n = snprintf(line, sizeof(line), "bget a b\r\n");
    assert_int_equal(proto_parse(&p, &req, line, (size_t)n, &used), PROTO_OK);
    assert_int_equal(req.cmd, PROTO_CMD_GET);
    assert_int_equal(req.keys_len, 3);
    /* mg and ma with a long opaque are the executor's to refuse */
    n = snprintf(line, sizeof(line), "ma a T1 O%s q\r\n", K251 + 219);
    assert_int_equal(proto_parse(&p, &req, line, (size_t)n, &used), PROTO_OK);
    assert_int_equal(proto_mflag_opaque_long(&req), 1);
    n = snprintf(line, sizeof(line), "mg a O%s\r\n", K251 + 220);
    assert_int_equal(proto_parse(&p, &req, line, (size_t)n, &used), PROTO_OK);
    assert_int_equal(proto_mflag_opaque_long(&req), -1);
    /* a later key too long: the keys before it, cut there (memcached
     * looks them up before it meets the long one) */
    n = snprintf(line, sizeof(line), "gat 5 a bc %s d\r\n", K251);
    assert_int_equal(proto_parse(&p, &req, line, (size_t)n, &used), PROTO_OK);
    assert_true(req.keys_cut);
    assert_int_equal(req.cmd, PROTO_CMD_GAT);
    assert_int_equal(req.keys_len, 4);
    assert_memory_equal(req.keys, "a bc", 4);
    n = snprintf(line, sizeof(line), "get %s a\r\n", K251);
    assert_int_equal(proto_parse(&p, &req, line, (size_t)n, &used),
                     PROTO_ERROR);
    assert_string_equal(req.err, E_FORMAT);
    n = snprintf(line, sizeof(line), "set %s 0 0 1\r\nx\r\n", K251);
    assert_int_equal(proto_parse(&p, &req, line, (size_t)n, &used),
                     PROTO_ERROR);
    assert_string_equal(req.err, E_FORMAT);
    /* the data block is not swallowed: memcached reads it as a command */
    assert_int_equal(used, (size_t)n - 3);
    n = snprintf(line, sizeof(line), "delete %s\r\n", K251);
    assert_int_equal(proto_parse(&p, &req, line, (size_t)n, &used),
                     PROTO_ERROR);
    n = snprintf(line, sizeof(line), "mg %s v\r\n", K251);
    assert_int_equal(proto_parse(&p, &req, line, (size_t)n, &used),
                     PROTO_ERROR);
}

static void
test_long_lines(void **state)
{
    struct proto_parser p;
    struct proto_req req;
    size_t used;
    size_t n = PROTO_MULTIGET_MAX + 10;
    char *buf = malloc(n);

    (void)state;
    assert_non_null(buf);
    proto_parser_init(&p, ITEM_MAX);
    /* a non-get line past 2048 bytes without '\n': hang up */
    memset(buf, 'x', n);
    memcpy(buf, "set ", 4);
    assert_int_equal(proto_parse(&p, &req, buf, PROTO_LINE_MAX, &used),
                     PROTO_NEED_MORE);
    assert_int_equal(proto_parse(&p, &req, buf, PROTO_LINE_MAX + 1, &used),
                     PROTO_CLOSE);
    assert_null(req.err);
    /* a get line may grow, up to the cap; past it the client is told why
     * it is closed, in memcached's words for a request it cannot hold */
    memcpy(buf, "get ", 4);
    assert_int_equal(proto_parse(&p, &req, buf, 100000, &used),
                     PROTO_NEED_MORE);
    assert_int_equal(proto_parse(&p, &req, buf, PROTO_MULTIGET_MAX, &used),
                     PROTO_NEED_MORE);
    assert_int_equal(proto_parse(&p, &req, buf, PROTO_MULTIGET_MAX + 1, &used),
                     PROTO_CLOSE);
    assert_non_null(req.err);
    assert_string_equal(req.err,
                        "SERVER_ERROR out of memory reading request\r\n");
    memcpy(buf, "  gets ", 7);
    assert_int_equal(proto_parse(&p, &req, buf, n, &used), PROTO_CLOSE);
    assert_string_equal(req.err,
                        "SERVER_ERROR out of memory reading request\r\n");
    /* the same when the whole line is there at once */
    buf[PROTO_MULTIGET_MAX + 1] = '\n';
    assert_int_equal(proto_parse(&p, &req, buf, n, &used), PROTO_CLOSE);
    assert_string_equal(req.err,
                        "SERVER_ERROR out of memory reading request\r\n");
    /* a line of PROTO_MULTIGET_MAX bytes with its "\r\n" is parsed (its
     * one key is too long) */
    memcpy(buf + PROTO_MULTIGET_MAX - 2, "\r\n", 2);
    assert_int_equal(proto_parse(&p, &req, buf, n, &used), PROTO_ERROR);
    assert_int_equal(used, PROTO_MULTIGET_MAX);
    /* a long multiget with a newline is fine */
    {
        size_t i;
        size_t len = 0;
        unsigned keys = 0;
        size_t pos = 0;
        const char *k;
        size_t kl;

        memcpy(buf, "get", 3);
        len = 3;
        for (i = 0; i < 10000; i++) {
            len += (size_t)sprintf(buf + len, " key%zu", i);
        }
        memcpy(buf + len, "\r\n", 2);
        len += 2;
        assert_int_equal(proto_parse(&p, &req, buf, len, &used), PROTO_OK);
        while (proto_key_next(&req, &pos, &k, &kl)) {
            keys++;
        }
        assert_int_equal(keys, 10000);
    }
    free(buf);
}

/* A too-large set: error at once, then the data block is dropped as it
 * arrives, and parsing resumes after it. */
static void
test_swallow_split(void **state)
{
    struct proto_parser p;
    struct proto_req req;
    size_t used;
    char data[3000];
    size_t off = 0;
    static const char line[] = "set big 0 0 2000\r\n";

    (void)state;
    proto_parser_init(&p, ITEM_MAX);
    assert_int_equal(proto_parse(&p, &req, line, sizeof(line) - 1, &used),
                     PROTO_ERROR);
    assert_true(req.unlink);
    assert_int_equal(req.klen, 3);
    memset(data, 'x', 2000);
    memcpy(data + 2000, "\r\nget a\r\n", 9);
    while (off < 2002) {
        size_t chunk = 2009 - off < 300 ? 2009 - off : 300;

        assert_int_equal(proto_parse(&p, &req, data + off, chunk, &used),
                         PROTO_SWALLOW);
        off += used;
    }
    assert_int_equal(off, 2002);
    assert_int_equal(proto_parse(&p, &req, data + off, 7, &used), PROTO_OK);
    assert_int_equal(req.cmd, PROTO_CMD_GET);
    /* add does not unlink */
    assert_int_equal(proto_parse(&p, &req, "add big 0 0 2000\r\n", 18, &used),
                     PROTO_ERROR);
    assert_false(req.unlink);
}

static void
test_wanted(void **state)
{
    struct proto_parser p;
    struct proto_req req;
    size_t used;
    static const char s[] = "set k 0 0 100\r\n";

    (void)state;
    proto_parser_init(&p, ITEM_MAX);
    assert_int_equal(proto_parse(&p, &req, s, sizeof(s) - 1, &used),
                     PROTO_NEED_MORE);
    assert_int_equal(p.wanted, sizeof(s) - 1 + 102);
}

static void
test_b64(void **state)
{
    char out[64];
    char enc[64];
    int n;

    (void)state;
    n = proto_b64_decode("a2V5", 4, out, sizeof(out));
    assert_int_equal(n, 3);
    assert_memory_equal(out, "key", 3);
    assert_int_equal(proto_b64_decode("bWtleQ==", 8, out, sizeof(out)), 4);
    assert_int_equal(proto_b64_decode("bWtleQ", 6, out, sizeof(out)), -1);
    /* as memcached: the first block with padding ends the key, bytes
     * outside the alphabet are skipped, three '=' fail */
    assert_int_equal(proto_b64_decode("bW=leQ==", 8, out, sizeof(out)), 2);
    n = proto_b64_decode("a2_V5", 5, out, sizeof(out));
    assert_int_equal(n, 3);
    assert_memory_equal(out, "key", 3);
    assert_int_equal(proto_b64_decode("a===", 4, out, sizeof(out)), -1);
    assert_int_equal(proto_b64_decode("_-.!", 4, out, sizeof(out)), -1);
    assert_int_equal(proto_b64_decode("a2V5", 4, out, 2), -1);
    n = proto_b64_encode("mkey", 4, enc, sizeof(enc));
    assert_int_equal(n, 8);
    assert_memory_equal(enc, "bWtleQ==", 8);
    assert_int_equal(proto_b64_encode("mkey", 4, enc, 7), -1);
}

static void
test_format(void **state)
{
    char buf[64];
    struct proto_out o;

    (void)state;
    proto_out_init(&o, buf, sizeof(buf));
    proto_fmt_value(&o, "k", 1, 4294967295u, 10, false, 0);
    assert_false(o.overflow);
    assert_memory_equal(buf, "VALUE k 4294967295 10\r\n", o.len);
    proto_out_init(&o, buf, sizeof(buf));
    proto_fmt_value(&o, "k", 1, 0, 0, true, UINT64_MAX);
    assert_memory_equal(buf, "VALUE k 0 0 18446744073709551615\r\n", o.len);
    proto_out_init(&o, buf, sizeof(buf));
    proto_out_i64(&o, INT64_MIN);
    assert_memory_equal(buf, "-9223372036854775808", o.len);
    proto_out_init(&o, buf, 4);
    proto_out_str(&o, "overflowing");
    assert_true(o.overflow);
    assert_int_equal(o.len, 4);
}

/* Parse, format the request back, parse again: same request. */
static void
test_round_trip(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(OK_CASES) / sizeof(OK_CASES[0]); i++) {
        struct proto_parser p;
        struct proto_req a;
        struct proto_req b;
        char out[1024];
        size_t used;
        size_t n;
        unsigned k;

        proto_parser_init(&p, ITEM_MAX);
        assert_int_equal(proto_parse(&p, &a, OK_CASES[i].in,
                                     strlen(OK_CASES[i].in), &used),
                         PROTO_OK);
        n = proto_format_req(out, sizeof(out), &a);
        assert_true(n > 0);
        assert_int_equal(proto_parse(&p, &b, out, n, &used), PROTO_OK);
        assert_int_equal(used, n);
        assert_int_equal(a.cmd, b.cmd);
        assert_int_equal(a.klen, b.klen);
        if (a.klen > 0) {
            assert_memory_equal(a.key, b.key, a.klen);
        }
        assert_int_equal(a.keys_len > 0, b.keys_len > 0);
        assert_int_equal(a.flags, b.flags);
        assert_int_equal(a.exptime, b.exptime);
        assert_int_equal(a.nbytes, b.nbytes);
        if (a.nbytes > 0) {
            assert_memory_equal(a.data, b.data, a.nbytes);
        }
        assert_int_equal(a.cas, b.cas);
        assert_int_equal(a.delta, b.delta);
        assert_int_equal(a.has_delay, b.has_delay);
        assert_int_equal(a.delay, b.delay);
        assert_int_equal(a.level, b.level);
        assert_int_equal(a.noreply, b.noreply);
        assert_int_equal(a.args_len, b.args_len);
        assert_int_equal(a.nmflags, b.nmflags);
        for (k = 0; k < a.nmflags; k++) {
            assert_int_equal(a.mflags[k].flag, b.mflags[k].flag);
            assert_int_equal(a.mflags[k].len, b.mflags[k].len);
            assert_memory_equal(a.mflags[k].tok, b.mflags[k].tok,
                                a.mflags[k].len);
        }
    }
}

/* Hostile bytes: NULs, lone CRs, control characters, binary junk. */
static void
test_hostile(void **state)
{
    static const char *const in[] = {
            "\0\0\0\n",
            "\r\r\r\n",
            "get \0\n",
            "set \0 0 0 0\r\n\r\n",
            "mg \xff\xfe b\r\n",
            "ms k 0\r\n\r\n",
            "\n",
            "g\n",
            "mg k O\r\n",
            "ma k N-5 J1\r\n",
            "mg k T-1 v\r\n",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        struct proto_parser p;
        struct proto_req req;
        size_t used = 0;
        size_t n = strlen(in[i]);
        enum proto_status st;

        if (n == 0) {
            n = 4;
        }
        proto_parser_init(&p, ITEM_MAX);
        st = proto_parse(&p, &req, in[i], n, &used);
        assert_true(st == PROTO_OK || st == PROTO_ERROR || st == PROTO_CLOSE ||
                    st == PROTO_NEED_MORE);
        assert_true(used <= n);
        if (st == PROTO_OK || st == PROTO_ERROR) {
            assert_true(used > 0);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ok_whole),
            cmocka_unit_test(test_ok_bytewise),
            cmocka_unit_test(test_ok_pipelined),
            cmocka_unit_test(test_errors),
            cmocka_unit_test(test_errors_bytewise),
            cmocka_unit_test(test_fields),
            cmocka_unit_test(test_key_limits),
            cmocka_unit_test(test_long_lines),
            cmocka_unit_test(test_swallow_split),
            cmocka_unit_test(test_wanted),
            cmocka_unit_test(test_b64),
            cmocka_unit_test(test_format),
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_hostile),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
