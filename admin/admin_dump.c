/* admin_dump.c - `bitcached-admin dump` and `load`: stream the live items of
 * a data directory out as text or JSON lines, and read such a stream into a
 * directory (of any shard count). Both go through the store API (cask_open,
 * cask_walk, cask_get, cask_store), so dump sees what a server started on
 * the directory would serve. Dump opens the store only to look: nothing in
 * it changes (frames a commit journal holds that their segments lack are
 * reported, not replayed).
 *
 * Text format, after the line "bitcached-dump 1", one item per line:
 *   KEY FLAGS EXP CAS SIZE VALUE
 * KEY and VALUE are "t:" + the bytes when every byte is printable ASCII
 * (VALUE may hold spaces: it is the last field), else "b:" + base64. EXP is
 * the absolute expiry in unix seconds (0 never). --keys-only drops VALUE.
 * JSON format: one object per line with "key" (or "key_b64"), "flags",
 * "exp", "cas", "size" and "value" (or "value_b64"). load reads both; cas
 * numbers are handed out anew by the target, as a memcached set would. */
#include "admin/admin.h"

#include "storage/cask_walk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char b64c[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
put_b64(FILE *f, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        putc(b64c[(v >> 18) & 63], f);
        putc(b64c[(v >> 12) & 63], f);
        putc(i + 1 < n ? b64c[(v >> 6) & 63] : '=', f);
        putc(i + 2 < n ? b64c[v & 63] : '=', f);
    }
}

/* Decode base64 in s[0..n) into out (room for n/4*3). Returns the length
 * or -1 when s is not base64. */
static long
get_b64(const char *s, size_t n, char *out)
{
    long o = 0;
    if (n % 4 != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            const char *c = s[i + j] == '=' ? NULL : strchr(b64c, s[i + j]);
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                pad++;
            } else if (c == NULL || s[i + j] == '\0' || pad) {
                return -1;
            } else {
                v |= (uint32_t)(c - b64c) << (18 - 6 * j);
            }
        }
        out[o++] = (char)(v >> 16);
        if (pad < 2) {
            out[o++] = (char)(v >> 8);
        }
        if (pad < 1) {
            out[o++] = (char)v;
        }
    }
    return o;
}

static bool
printable(const char *p, size_t n, bool space_ok)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c > 0x7e || (c == ' ' && !space_ok)) {
            return false;
        }
    }
    return true;
}

static void
put_text_field(FILE *f, const char *p, size_t n, bool space_ok)
{
    if (printable(p, n, space_ok)) {
        fputs("t:", f);
        fwrite(p, 1, n, f);
    } else {
        fputs("b:", f);
        put_b64(f, (const unsigned char *)p, n);
    }
}

/* A JSON member "name":"text" or "name_b64":"base64". */
static void
put_json_field(FILE *f, const char *name, const char *p, size_t n)
{
    if (printable(p, n, true)) {
        fprintf(f, "\"%s\":\"", name);
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '"' || p[i] == '\\') {
                putc('\\', f);
            }
            putc(p[i], f);
        }
    } else {
        fprintf(f, "\"%s_b64\":\"", name);
        put_b64(f, (const unsigned char *)p, n);
    }
    putc('"', f);
}

/* ---- dump -------------------------------------------------------------- */

struct dkey {
    char key[CASK_KEY_MAX];
    size_t klen;
    struct cask_item it;
};

struct batch {
    const char *prefix;
    size_t plen;
    struct dkey *k;
    size_t n, cap;
    int err;
};

static void
collect(void *arg, const struct cask_walk_entry *e)
{
    struct batch *b = arg;
    if (e->klen < b->plen || memcmp(e->key, b->prefix, b->plen) != 0 ||
        b->err != 0) {
        return;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 512;
        struct dkey *k = realloc(b->k, cap * sizeof(*k));
        if (k == NULL) {
            b->err = ENOMEM;
            return;
        }
        b->k = k;
        b->cap = cap;
    }
    struct dkey *d = &b->k[b->n++];
    memcpy(d->key, e->key, e->klen);
    d->klen = e->klen;
    d->it.flags = e->flags;
    d->it.exp_abs_s = e->exp_abs_s;
    d->it.cas = e->cas;
    d->it.vlen = e->vlen;
}

static void
dump_one(FILE *f, bool json, const struct dkey *d, const char *val)
{
    if (json) {
        putc('{', f);
        put_json_field(f, "key", d->key, d->klen);
        fprintf(f,
                ",\"flags\":%" PRIu32 ",\"exp\":%" PRId64 ",\"cas\":%" PRIu64
                ",\"size\":%" PRIu32,
                d->it.flags, d->it.exp_abs_s, d->it.cas, d->it.vlen);
        if (val != NULL) {
            putc(',', f);
            put_json_field(f, "value", val, d->it.vlen);
        }
        fputs("}\n", f);
        return;
    }
    put_text_field(f, d->key, d->klen, false);
    fprintf(f, " %" PRIu32 " %" PRId64 " %" PRIu64 " %" PRIu32, d->it.flags,
            d->it.exp_abs_s, d->it.cas, d->it.vlen);
    if (val != NULL) {
        putc(' ', f);
        put_text_field(f, val, d->it.vlen, true);
    }
    putc('\n', f);
}

int
admin_dump(int argc, char **argv)
{
    const char *dir = NULL, *prefix = "";
    bool keys_only = false, json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) {
            prefix = argv[++i];
        } else if (strcmp(argv[i], "--keys-only") == 0) {
            keys_only = true;
        } else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "json") == 0) {
                json = true;
            } else if (strcmp(argv[i], "text") != 0) {
                admin_err("--format is text or json, not %s", argv[i]);
                return ADMIN_USAGE;
            }
        } else if (argv[i][0] != '-' && dir == NULL) {
            dir = argv[i];
        } else {
            admin_err("dump: unexpected argument %s", argv[i]);
            return ADMIN_USAGE;
        }
    }
    if (dir == NULL) {
        admin_err("usage: dump DIR [--prefix P] [--keys-only] "
                  "[--format text|json]");
        return ADMIN_USAGE;
    }
    struct cask *c;
    if (admin_open_look(dir, &c) != 0) {
        return ADMIN_FAIL;
    }
    struct cask_stats st;
    (void)cask_stats(c, -1, &st);
    struct admin_progress p;
    admin_progress_init(&p, "keys");
    struct batch b = {.prefix = prefix, .plen = strlen(prefix)};
    struct cask_walk_pos pos = {0};
    uint64_t seen = 0, dumped = 0;
    int rc = 0;
    if (!json) {
        puts("bitcached-dump 1");
    }
    bool more = true;
    while (more && rc == 0) {
        b.n = 0;
        more = cask_walk(c, &pos, 256, collect, &b);
        rc = b.err;
        for (size_t i = 0; rc == 0 && i < b.n; i++) {
            struct dkey *d = &b.k[i];
            char *val = NULL;
            if (!keys_only) {
                int g = cask_get(c, d->key, d->klen, &d->it, &val);
                if (g == CASK_ENOTFOUND) {
                    continue; /* expired since the walk saw it */
                }
                if (g != 0) {
                    admin_err("read %.*s: %s", (int)d->klen, d->key,
                              cask_strerror(g));
                    rc = g;
                    break;
                }
            }
            dump_one(stdout, json, d, keys_only ? NULL : val);
            free(val);
            dumped++;
        }
        seen += b.n;
        admin_progress(&p, seen, st.live_keys);
    }
    admin_progress_done(&p);
    free(b.k);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        admin_err("write: %s", strerror(errno));
        rc = rc ? rc : EIO;
    }
    admin_close(&c);
    if (rc != 0) {
        return ADMIN_FAIL;
    }
    if (!admin_quiet) {
        fprintf(stderr, "bitcached-admin: dumped %" PRIu64 " items\n", dumped);
    }
    return ADMIN_OK;
}

/* ---- load -------------------------------------------------------------- */

struct item {
    char key[CASK_KEY_MAX + 4];
    size_t klen;
    uint32_t flags;
    int64_t exp;
    uint64_t cas;
    uint64_t size;
    char *val; /* points into the line buffer or vbuf */
    long vlen;
};

/* Decode a "t:"/"b:" field s[0..n) into out (room for n). */
static long
text_field(const char *s, size_t n, char *out)
{
    if (n >= 2 && s[0] == 't' && s[1] == ':') {
        memcpy(out, s + 2, n - 2);
        return (long)(n - 2);
    }
    if (n >= 2 && s[0] == 'b' && s[1] == ':') {
        return get_b64(s + 2, n - 2, out);
    }
    return -1;
}

static int
parse_text(char *line, size_t len, struct item *it, char *vbuf)
{
    char *sp = memchr(line, ' ', len);
    char kb[2 * CASK_KEY_MAX];
    if (sp == NULL || (size_t)(sp - line) > sizeof(kb)) {
        return -1;
    }
    long kl = text_field(line, (size_t)(sp - line), kb);
    if (kl <= 0 || kl > (long)CASK_KEY_MAX) {
        return -1;
    }
    memcpy(it->key, kb, (size_t)kl);
    it->klen = (size_t)kl;
    int used = 0;
    if (sscanf(sp + 1, "%" SCNu32 " %" SCNd64 " %" SCNu64 " %" SCNu64 "%n",
               &it->flags, &it->exp, &it->cas, &it->size, &used) != 4) {
        return -1;
    }
    char *v = sp + 1 + used;
    if (*v != ' ') {
        return -1; /* a keys-only dump cannot be loaded */
    }
    v++;
    it->vlen = text_field(v, len - (size_t)(v - line), vbuf);
    it->val = vbuf;
    return it->vlen < 0 || (uint64_t)it->vlen != it->size ? -1 : 0;
}

/* The string value of member name in a flat JSON object we wrote: *out
 * points at it (escapes removed in place), *n its length. */
static bool
json_str(char *line, const char *name, char **out, size_t *n)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "\"%s\":\"", name);
    char *p = strstr(line, pat);
    if (p == NULL) {
        return false;
    }
    p += strlen(pat);
    char *w = p;
    for (char *r = p; *r != '"'; r++) {
        if (*r == '\0') {
            return false;
        }
        if (*r == '\\') {
            r++;
            if (*r == '\0') {
                return false;
            }
        }
        *w++ = *r;
    }
    *out = p;
    *n = (size_t)(w - p);
    return true;
}

static bool
json_num(const char *line, const char *name, int64_t *v)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    const char *p = strstr(line, pat);
    return p != NULL && sscanf(p + strlen(pat), "%" SCNd64, v) == 1;
}

static int
parse_json(char *line, struct item *it, char *vbuf)
{
    int64_t flags, exp, cas, size;
    if (!json_num(line, "flags", &flags) || !json_num(line, "exp", &exp) ||
        !json_num(line, "cas", &cas) || !json_num(line, "size", &size) ||
        flags < 0 || flags > UINT32_MAX || size < 0) {
        return -1;
    }
    it->flags = (uint32_t)flags;
    it->exp = exp;
    it->cas = (uint64_t)cas;
    it->size = (uint64_t)size;
    /* Values first: the key strings are searched in what precedes them. */
    char *s;
    size_t n;
    if (json_str(line, "value", &s, &n)) {
        memcpy(vbuf, s, n);
        it->vlen = (long)n;
    } else if (json_str(line, "value_b64", &s, &n)) {
        it->vlen = get_b64(s, n, vbuf);
    } else {
        return -1;
    }
    it->val = vbuf;
    char *vstart = s - 1;
    *vstart = '\0'; /* keys are before the value */
    long kl;
    if (json_str(line, "key", &s, &n)) {
        kl = (long)n;
        if (n <= CASK_KEY_MAX) {
            memcpy(it->key, s, n);
        }
    } else if (json_str(line, "key_b64", &s, &n) && n <= 2 * CASK_KEY_MAX) {
        kl = get_b64(s, n, it->key);
    } else {
        return -1;
    }
    if (kl <= 0 || kl > (long)CASK_KEY_MAX || it->vlen < 0 ||
        (uint64_t)it->vlen != it->size) {
        return -1;
    }
    it->klen = (size_t)kl;
    return 0;
}

int
admin_load(int argc, char **argv)
{
    const char *dir = NULL;
    unsigned shards = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--shards") == 0 && i + 1 < argc) {
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || v == 0 || v > 1000) {
                admin_err("--shards: a number from 1 to 1000, not %s", argv[i]);
                return ADMIN_USAGE;
            }
            shards = (unsigned)v;
        } else if (argv[i][0] != '-' && dir == NULL) {
            dir = argv[i];
        } else {
            admin_err("load: unexpected argument %s", argv[i]);
            return ADMIN_USAGE;
        }
    }
    if (dir == NULL) {
        admin_err("usage: load DIR [--shards N] < DUMP");
        return ADMIN_USAGE;
    }
    struct cask *c;
    if (admin_open(dir, shards, &c) != 0) {
        return ADMIN_FAIL;
    }
    char *line = NULL, *vbuf = NULL;
    size_t cap = 0, vcap = 0;
    ssize_t len;
    uint64_t lineno = 0, loaded = 0, expired = 0;
    int rc = ADMIN_OK;
    int64_t now = (int64_t)time(NULL);
    struct admin_progress p;
    admin_progress_init(&p, "keys");
    while ((len = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        if (line[len - 1] == '\n') {
            line[--len] = '\0';
        }
        if (lineno == 1 && strcmp(line, "bitcached-dump 1") == 0) {
            continue;
        }
        if (vcap < (size_t)len + 1) {
            free(vbuf);
            vcap = (size_t)len + 1;
            vbuf = malloc(vcap);
            if (vbuf == NULL) {
                admin_err("out of memory");
                rc = ADMIN_FAIL;
                break;
            }
        }
        struct item it;
        int bad = line[0] == '{' ? parse_json(line, &it, vbuf)
                                 : parse_text(line, (size_t)len, &it, vbuf);
        if (bad) {
            admin_err("stdin line %" PRIu64 ": not a dump line with a value",
                      lineno);
            rc = ADMIN_FAIL;
            break;
        }
        if (it.exp != 0 && it.exp <= now) {
            expired++;
            continue;
        }
        int s = cask_store(c, CASK_SET, it.key, it.klen, it.val,
                           (size_t)it.vlen, it.flags, it.exp, 0, NULL);
        if (s != 0) {
            admin_err("stdin line %" PRIu64 ": store: %s", lineno,
                      cask_strerror(s));
            rc = ADMIN_FAIL;
            break;
        }
        loaded++;
        admin_progress(&p, loaded, 0);
    }
    if (rc == ADMIN_OK && ferror(stdin)) {
        admin_err("read stdin: %s", strerror(errno));
        rc = ADMIN_FAIL;
    }
    admin_progress_done(&p);
    free(line);
    free(vbuf);
    int s = cask_sync(c);
    cask_close(&c);
    if (s != 0) {
        admin_err("sync %s: %s", dir, cask_strerror(s));
        rc = ADMIN_FAIL;
    }
    if (!admin_quiet) {
        fprintf(stderr,
                "bitcached-admin: loaded %" PRIu64 " items (%" PRIu64
                " already expired, skipped)\n",
                loaded, expired);
    }
    return rc;
}
