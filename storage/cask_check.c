/* cask_check.c - offline, read-only verification of a data directory (see
 * cask_check.h). Records and hints are read through cask_segment, cask_record
 * and cask_hint; the segment struct is filled here from a read-only fd
 * instead of cask_seg_open, which repairs what it finds. Only the small
 * headers whose checks are private to their writers (state slots, segment
 * header, retired file) are checked here against storage/FORMAT.md.
 * Owns nothing between calls; depends on the storage files named above.
 */
#include "storage/cask_check.h"

#include "storage/cask_hint.h"
#include "storage/cask_internal.h"
#include "storage/cask_journal.h"
#include "storage/cask_manifest.h"
#include "storage/cask_record.h"
#include "storage/cask_retire.h"
#include "storage/cask_segment.h"
#include "storage/cask_state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <xxhash.h>

struct check {
    const struct cask_check_hooks *h;
    struct cask_check_report *rep;
    int64_t now;
    uint64_t done, total; /* segment bytes, for progress */
};

static void
note(struct check *ck, bool damage, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (damage) {
        ck->rep->problems++;
    }
    if (ck->h != NULL && ck->h->note != NULL) {
        ck->h->note(ck->h->arg, damage, msg);
    }
}

/* ---- keys: newest record per key, for the live figures ----------------- */

struct kent {
    uint64_t hash; /* 0 = empty slot */
    uint64_t cas, seq;
    uint64_t touch_seq, touch_cas;
    int64_t exp, touch_exp;
    uint32_t len; /* record bytes */
    uint8_t type;
    uint8_t klen;
    char *key;
};

struct ktab {
    struct kent *e;
    size_t cap, n;
};

static void
ktab_free(struct ktab *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        free(t->e[i].key);
    }
    free(t->e);
    memset(t, 0, sizeof(*t));
}

static struct kent *
ktab_slot(struct kent *e, size_t cap, uint64_t hash, const char *key,
          uint8_t klen)
{
    size_t i = (size_t)hash & (cap - 1);
    while (e[i].hash != 0 && !(e[i].hash == hash && e[i].klen == klen &&
                               memcmp(e[i].key, key, klen) == 0)) {
        i = (i + 1) & (cap - 1);
    }
    return &e[i];
}

static int
ktab_grow(struct ktab *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    struct kent *e = calloc(cap, sizeof(*e));
    if (e == NULL) {
        return ENOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->e[i].hash != 0) {
            *ktab_slot(e, cap, t->e[i].hash, t->e[i].key, t->e[i].klen) =
                    t->e[i];
        }
    }
    free(t->e);
    t->e = e;
    t->cap = cap;
    return 0;
}

/* Keep, per key, the put or tombstone with the highest (cas, seq) and the
 * touch with the highest seq (FORMAT.md, Recovery). */
static int
ktab_add(struct ktab *t, const struct cask_rec *r, const char *key)
{
    if ((t->n + 1) * 4 > t->cap * 3) {
        int rc = ktab_grow(t);
        if (rc != 0) {
            return rc;
        }
    }
    uint64_t hash = XXH3_64bits(key, r->klen) | 1;
    struct kent *e = ktab_slot(t->e, t->cap, hash, key, r->klen);
    if (e->hash == 0) {
        e->key = malloc(r->klen);
        if (e->key == NULL) {
            return ENOMEM;
        }
        memcpy(e->key, key, r->klen);
        e->hash = hash;
        e->klen = r->klen;
        t->n++;
    }
    if (r->type == CASK_REC_TOUCH) {
        if (r->seq > e->touch_seq) {
            e->touch_seq = r->seq;
            e->touch_cas = r->cas;
            e->touch_exp = r->exp_abs_s;
        }
    } else if (e->type == 0 || r->cas > e->cas ||
               (r->cas == e->cas && r->seq > e->seq)) {
        e->type = r->type;
        e->cas = r->cas;
        e->seq = r->seq;
        e->exp = r->exp_abs_s;
        e->len = (uint32_t)cask_rec_len(r->klen, r->vlen);
    }
    return 0;
}

static void
ktab_count(const struct ktab *t, uint64_t flush_cas, int64_t now,
           struct cask_check_counts *c)
{
    for (size_t i = 0; i < t->cap; i++) {
        const struct kent *e = &t->e[i];
        if (e->hash == 0 || e->type != CASK_REC_PUT || e->cas <= flush_cas) {
            continue;
        }
        int64_t exp = e->exp;
        if (e->touch_cas == e->cas && e->touch_seq > e->seq) {
            exp = e->touch_exp;
        }
        if (exp != 0 && exp <= now) {
            continue;
        }
        c->keys++;
        c->live_bytes += e->len;
    }
}

/* ---- state and retired ------------------------------------------------- */

/* Put dir's state file into path: DIR/state, or DIR/meta when only that
 * exists (a store of an older version, renamed when the server opens it). */
static void
state_path(const char *dir, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, CASK_STATE_NAME);
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        char old[CASK_PATH_MAX];
        snprintf(old, sizeof(old), "%s/%s", dir, CASK_STATE_OLD_NAME);
        if (access(old, F_OK) == 0) {
            snprintf(path, cap, "%s", old);
        }
    }
}

static int
check_state(struct check *ck, const char *dir)
{
    char path[CASK_PATH_MAX];
    struct cask_check_report *rep = ck->rep;
    state_path(dir, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            return errno;
        }
        note(ck, true,
             "state: missing (the flush point is lost: the server starts "
             "with every item on disk counted as flushed)");
        return 0;
    }
    rep->state_present = true;
    char *buf = calloc(1, 2 * CASK_STATE_SLOT + 1);
    if (buf == NULL) {
        close(fd);
        return ENOMEM;
    }
    ssize_t len = pread(fd, buf, 2 * CASK_STATE_SLOT, 0);
    int rc = len < 0 ? errno : 0;
    close(fd);
    unsigned slots = len > (ssize_t)CASK_STATE_SLOT ? 2 : 1;
    for (unsigned i = 0; rc == 0 && i < slots; i++) {
        char slot[CASK_STATE_SLOT + 1];
        struct cask_state st;
        uint64_t gen;
        memcpy(slot, buf + i * CASK_STATE_SLOT, CASK_STATE_SLOT);
        slot[CASK_STATE_SLOT] = '\0';
        int prc = cask_state_parse(slot, &st, &gen);
        if (prc == CASK_ENEWER) {
            rep->newer_files++;
            note(ck, true,
                 "state: slot %u was written by a newer bitcached (state "
                 "format %u; this build reads up to %d): the server refuses "
                 "to open the store, nothing is repaired",
                 i, cask_state_newer(slot), CASK_STATE_VERSION);
        } else if (prc != 0) {
            rep->state_bad_slots++;
            note(ck, true, "state: slot %u is damaged", i);
        } else if (!rep->state_ok || gen > rep->state_generation) {
            rep->state_ok = true;
            rep->state_generation = gen;
            rep->shards = st.shards;
            rep->flush_cas = st.flush_cas;
        }
    }
    free(buf);
    if (rc == 0 && !rep->state_ok && rep->newer_files == 0) {
        note(ck, true,
             "state: no valid slot (the flush point is lost: the server "
             "starts with every item on disk counted as flushed)");
    }
    return rc;
}

/* Read-only counterpart of cask_retire_apply: verify the file and count
 * listed segments still present. */
static int
check_retired(struct check *ck, const char *sdir, const char *name)
{
    char path[CASK_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", sdir, CASK_RETIRE_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : errno;
    }
    struct stat st;
    char *buf = NULL;
    int rc = fstat(fd, &st) != 0 ? errno : 0;
    if (rc == 0 && st.st_size >= 24 && st.st_size <= (1 << 26)) {
        buf = malloc((size_t)st.st_size);
        if (buf == NULL) {
            rc = ENOMEM;
        } else if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
            rc = errno ? errno : EIO;
        }
    }
    close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    size_t len = (size_t)st.st_size;
    uint32_t n = buf ? cask_get32(buf + 12) : 0;
    uint32_t newer = buf == NULL || !cask_retire_valid(buf, len)
                             ? cask_retire_newer(sdir)
                             : 0;
    if (newer != 0) {
        ck->rep->newer_files++;
        note(ck, true,
             "%s/retired: written by a newer bitcached (format %u; this "
             "build reads up to %u): the server refuses to open the store, "
             "nothing is repaired",
             name, newer, CASK_RETIRE_VERSION);
        free(buf);
        return 0;
    }
    if (buf == NULL || !cask_retire_valid(buf, len)) {
        ck->rep->retired_bad++;
        note(ck, true,
             "%s/retired: damaged (ignored at open; deleted keys may return "
             "if its compaction was cut short)",
             name);
        free(buf);
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        char seg[CASK_PATH_MAX + 16];
        cask_seg_path(seg, sizeof(seg), sdir, cask_get32(buf + 16 + 4 * i),
                      "seg");
        if (access(seg, F_OK) == 0) {
            ck->rep->retired_pending++;
            note(ck, false,
                 "%s/%08x.seg: retired by a compaction cut short; removed at "
                 "the next open",
                 name, cask_get32(buf + 16 + 4 * i));
        }
    }
    free(buf);
    return 0;
}

/* Read-only counterpart of recovery's manifest check: verify the file, and
 * report each listed segment that is not there, not retired (retired file)
 * and not in the quarantine: lost, as the server will log at open. */
static int
check_manifest(struct check *ck, const char *dir, const char *sdir,
               const char *name, unsigned shard)
{
    uint32_t *ids = NULL, *ret = NULL;
    size_t n = 0, nret = 0;
    uint32_t next_id;
    int rc = cask_manifest_load(sdir, &ids, &n, &next_id);
    if (rc == ENOENT) {
        return 0; /* an older store: created at the next open */
    }
    if (rc == CASK_ENEWER) {
        ck->rep->newer_files++;
        note(ck, true,
             "%s/manifest: written by a newer bitcached (format %u; this "
             "build reads up to %u): the server refuses to open the store, "
             "nothing is repaired",
             name, cask_manifest_newer(sdir), CASK_MANIFEST_VERSION);
        return 0;
    }
    if (rc == EINVAL) {
        ck->rep->manifest_bad++;
        note(ck, true,
             "%s/manifest: damaged (ignored and rewritten at open; a lost "
             "segment without its hint cannot be detected)",
             name);
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    (void)cask_retire_ids(sdir, &ret, &nret);
    for (size_t i = 0; i < n; i++) {
        char p[CASK_PATH_MAX + 64];
        bool retired = false;
        for (size_t j = 0; j < nret && !retired; j++) {
            retired = ret[j] == ids[i];
        }
        cask_seg_path(p, sizeof(p), sdir, ids[i], "seg");
        if (retired || access(p, F_OK) == 0) {
            continue;
        }
        cask_seg_path(p, sizeof(p), sdir, ids[i], "hint");
        if (access(p, F_OK) == 0) {
            continue; /* reported by check_orphan_hints */
        }
        snprintf(p, sizeof(p), "%s/quarantine/shard-%03u/%08x.seg", dir, shard,
                 ids[i]);
        if (access(p, F_OK) == 0) {
            continue;
        }
        ck->rep->segments_missing++;
        note(ck, true,
             "%s/%08x.seg: missing (listed in the manifest): the keys it "
             "held are lost or older, keys it deleted may be back",
             name, ids[i]);
    }
    free(ids);
    free(ret);
    return 0;
}

/* ---- segments ---------------------------------------------------------- */

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Segment ids in sdir, sorted. */
static int
list_segments(const char *sdir, uint32_t **ids, size_t *n)
{
    DIR *d = opendir(sdir);
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    if (d == NULL) {
        return errno;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned id;
        char tail[8];
        if (strlen(de->d_name) != 12 ||
            sscanf(de->d_name, "%8x.%3s", &id, tail) != 2 ||
            strcmp(tail, "seg") != 0) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *p = realloc(*ids, cap * sizeof(**ids));
            if (p == NULL) {
                closedir(d);
                return ENOMEM;
            }
            *ids = p;
        }
        (*ids)[(*n)++] = id;
    }
    closedir(d);
    qsort(*ids, *n, sizeof(**ids), cmp_u32);
    return 0;
}

struct hint_cmp {
    struct cask_segment *s;
    struct cask_seg_reader rd;
    uint64_t bad_off; /* first entry that disagrees, UINT64_MAX none */
    int err;
};

static void
hint_entry(void *arg, const struct cask_rec *h, const char *key, uint64_t off)
{
    struct hint_cmp *hc = arg;
    struct cask_rec r;
    size_t len;
    const char *rec;
    if (hc->bad_off != UINT64_MAX || hc->err != 0) {
        return;
    }
    int rc = cask_seg_read_record(hc->s, &hc->rd, off, CASK_REC_VMAX, &r, &len,
                                  &rec);
    if (rc > 0) {
        hc->err = rc;
        return;
    }
    if (rc != 0 || r.type != h->type || r.seq != h->seq || r.cas != h->cas ||
        r.exp_abs_s != h->exp_abs_s || r.vlen != h->vlen ||
        r.flags != h->flags || r.klen != h->klen ||
        memcmp(rec + CASK_REC_HDR, key, r.klen) != 0) {
        hc->bad_off = off;
    }
}

int
cask_check_hint(const char *sdir, struct cask_segment *s, uint64_t *bad_off)
{
    struct hint_cmp hc = {.s = s, .bad_off = UINT64_MAX};
    uint64_t covered = 0;
    int rc = cask_hint_load(sdir, s, CASK_REC_VMAX, hint_entry, &hc, &covered,
                            NULL);
    cask_seg_reader_deinit(&hc.rd);
    *bad_off = hc.bad_off;
    if (hc.err != 0) {
        return hc.err;
    }
    if (rc == 0 && hc.bad_off != UINT64_MAX) {
        return CASK_CHECK_HINT_DIFFERS;
    }
    return rc;
}

static int
check_hint(struct check *ck, const char *sdir, const char *name,
           struct cask_segment *s, struct cask_check_counts *c)
{
    uint64_t bad_off;
    int rc = cask_check_hint(sdir, s, &bad_off);
    if (rc == ENOENT) {
        c->hints_missing++;
        return 0;
    }
    if (rc == 0) {
        c->hints_ok++;
        return 0;
    }
    if (rc == CASK_ENEWER) {
        ck->rep->newer_files++;
        note(ck, true,
             "%s/%08x.hint: written by a newer bitcached (hint format %u; "
             "this build reads up to %u): the server refuses to open the "
             "store, nothing is repaired",
             name, s->id, cask_hint_newer(sdir, s->id), CASK_HINT_VERSION);
        return 0;
    }
    if (rc != EINVAL && rc != CASK_CHECK_HINT_DIFFERS) {
        return rc;
    }
    c->hints_bad++;
    if (rc == EINVAL) {
        note(ck, true, "%s/%08x.hint: damaged or does not fit its segment",
             name, s->id);
    } else {
        note(ck, true,
             "%s/%08x.hint: disagrees with the segment at offset %" PRIu64,
             name, s->id, bad_off);
    }
    return 0;
}

static bool
has_id(const uint32_t *ids, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

/* Hints left without their segment (ids[0..n) are the segments there):
 * the server takes each for the trace of a lost segment, logs what it
 * listed and removes it at open; one of a newer format version makes it
 * refuse the store instead. */
static int
check_orphan_hints(struct check *ck, const char *sdir, const char *name,
                   const uint32_t *ids, size_t n)
{
    DIR *d = opendir(sdir);
    if (d == NULL) {
        return errno == ENOENT ? 0 : errno;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned id;
        char ext[8];
        if (strlen(de->d_name) != 13 ||
            sscanf(de->d_name, "%8x.%4s", &id, ext) != 2 ||
            strcmp(ext, "hint") != 0 || has_id(ids, n, id)) {
            continue;
        }
        uint32_t v = cask_hint_newer(sdir, id);
        if (v != 0) {
            ck->rep->newer_files++;
            note(ck, true,
                 "%s/%08x.hint: written by a newer bitcached (hint format "
                 "%u; this build reads up to %u): the server refuses to "
                 "open the store, nothing is repaired",
                 name, id, v, CASK_HINT_VERSION);
            continue;
        }
        ck->rep->segments_missing++;
        note(ck, true,
             "%s/%08x.seg: missing (only its hint is left): the keys it "
             "held are lost or older, keys it deleted may be back; the "
             "server logs what the hint lists and removes it",
             name, id);
    }
    closedir(d);
    return 0;
}

static void
progress(struct check *ck, uint64_t add)
{
    ck->done += add;
    if (ck->h != NULL && ck->h->progress != NULL) {
        ck->h->progress(ck->h->arg, ck->done, ck->total);
    }
}

static int
check_segment(struct check *ck, const char *sdir, const char *name, uint32_t id,
              struct ktab *kt, struct cask_check_counts *c)
{
    struct cask_segment *s = calloc(1, sizeof(*s));
    struct cask_seg_reader rd = {0};
    struct stat st;
    int rc = 0;
    if (s == NULL) {
        return ENOMEM;
    }
    s->id = id;
    cask_seg_path(s->path, sizeof(s->path), sdir, id, "seg");
    s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) != 0) {
        rc = errno;
        goto out;
    }
    s->size = s->flushed = (uint64_t)st.st_size;
    c->segments++;
    c->segment_bytes += s->size;
    if (s->size < CASK_SEG_HDR) {
        c->torn_bytes += s->size;
        note(ck, true, "%s/%08x.seg: %" PRIu64 " bytes, header torn", name, id,
             s->size);
        goto out;
    }
    char h[CASK_SEG_HDR];
    rc = cask_seg_pread(s, 0, sizeof(h), h);
    if (rc != 0) {
        goto out;
    }
    uint32_t newer = cask_seg_header_newer(h, id);
    if (newer != 0) {
        /* Its records may follow rules this build does not know. */
        ck->rep->newer_files++;
        note(ck, true,
             "%s/%08x.seg: written by a newer bitcached (segment format %u; "
             "this build reads up to %u): not checked",
             name, id, newer, CASK_SEG_VERSION);
        goto out;
    }
    if (!cask_seg_header_ok(h, id)) {
        c->bad_headers++;
        note(ck, true, "%s/%08x.seg: damaged header", name, id);
    }
    uint64_t off = CASK_SEG_HDR, last = 0;
    while (off < s->size) {
        struct cask_rec r;
        size_t len;
        const char *rec;
        rc = off + CASK_REC_HDR <= s->size
                     ? cask_seg_read_record(s, &rd, off, CASK_REC_VMAX, &r,
                                            &len, &rec)
                     : CASK_SEG_EINVALID;
        if (rc == 0) {
            c->records++;
            c->puts += r.type == CASK_REC_PUT;
            c->tombstones += r.type == CASK_REC_TOMB;
            c->touches += r.type == CASK_REC_TOUCH;
            c->record_bytes += len;
            rc = ktab_add(kt, &r, rec + CASK_REC_HDR);
            if (rc != 0) {
                goto out;
            }
            off += len;
        } else if (rc == CASK_SEG_EINVALID) {
            int err;
            bool zero;
            rc = cask_seg_zero_tail(s, off, &zero);
            if (rc != 0) {
                goto out;
            }
            if (zero) {
                /* the active segment's extension ahead of its appends
                 * (a running server, or one that stopped without cutting
                 * it; the next start cuts it): no damage */
                note(ck, false,
                     "%s/%08x.seg: %" PRIu64 " zero bytes past the last "
                     "record at offset %" PRIu64 " (extended ahead of appends)",
                     name, id, s->size - off, off);
                off = s->size;
                continue;
            }
            uint64_t next = cask_seg_resync(s, off, CASK_REC_VMAX, &err);
            rc = err;
            if (rc != 0) {
                goto out;
            }
            if (next >= s->size) {
                c->torn_bytes += s->size - off;
                note(ck, true,
                     "%s/%08x.seg: torn tail of %" PRIu64
                     " bytes at offset %" PRIu64,
                     name, id, s->size - off, off);
                off = s->size;
            } else {
                c->damaged_bytes += next - off;
                note(ck, true,
                     "%s/%08x.seg: %" PRIu64 " damaged bytes at offset %" PRIu64
                     " (valid records follow at %" PRIu64 ")",
                     name, id, next - off, off, next);
                off = next;
            }
        } else {
            goto out;
        }
        if (off - last >= (4u << 20)) {
            progress(ck, off - last);
            last = off;
        }
    }
    progress(ck, s->size - last);
    rc = check_hint(ck, sdir, name, s, c);
out:
    if (rc > 0) {
        note(ck, true, "%s: %s", s->path, strerror(rc));
    }
    cask_seg_reader_deinit(&rd);
    cask_seg_close(&s);
    return rc;
}

static void
add_counts(struct cask_check_counts *t, const struct cask_check_counts *c)
{
    t->segments += c->segments;
    t->segment_bytes += c->segment_bytes;
    t->records += c->records;
    t->record_bytes += c->record_bytes;
    t->puts += c->puts;
    t->tombstones += c->tombstones;
    t->touches += c->touches;
    t->keys += c->keys;
    t->live_bytes += c->live_bytes;
    t->dead_bytes += c->dead_bytes;
    t->hints_ok += c->hints_ok;
    t->hints_missing += c->hints_missing;
    t->hints_bad += c->hints_bad;
    t->torn_bytes += c->torn_bytes;
    t->damaged_bytes += c->damaged_bytes;
    t->bad_headers += c->bad_headers;
}

/* Total size of the segment files under dir, for progress. */
static uint64_t
total_bytes(const char *dir, unsigned shards)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < shards; i++) {
        char sdir[CASK_PATH_MAX], path[CASK_PATH_MAX + 16];
        uint32_t *ids;
        size_t n;
        snprintf(sdir, sizeof(sdir), "%s/shard-%03u", dir, i);
        if (list_segments(sdir, &ids, &n) != 0) {
            continue;
        }
        for (size_t j = 0; j < n; j++) {
            struct stat st;
            cask_seg_path(path, sizeof(path), sdir, ids[j], "seg");
            if (stat(path, &st) == 0) {
                sum += (uint64_t)st.st_size;
            }
        }
        free(ids);
    }
    return sum;
}

/* A store that crashed under --sync=always may have acknowledged records
 * in its commit journal that its segments lack (after a power loss): the
 * next open replays them. Checking the segments alone would then report
 * keys lost or deleted keys back, so say so, as damage (not repaired here:
 * the check writes nothing). */
/* The journal's own log lines, kept for check_journal to report. */
static void
journal_log(void *arg, enum cask_log_level level, const char *msg)
{
    if (level <= CASK_LOG_WARN) {
        snprintf(arg, 1024, "%s", msg);
    }
}

static int
check_journal(struct check *ck, const char *dir)
{
    struct cask jc;
    struct cask_journal_replay_stats js;
    char said[1024] = "";
    memset(&jc, 0, sizeof(jc));
    jc.dir = (char *)dir;
    jc.nshards = ck->rep->shards;
    jc.opt.log = journal_log;
    jc.opt.log_arg = said;
    int rc = cask_journal_pending(&jc, &js);
    if (rc == CASK_ENEWER) {
        ck->rep->newer_files++;
        note(ck, true, "journal: %s; nothing is repaired", said);
        return 0;
    }
    if (rc != 0) {
        if (said[0] != '\0') {
            note(ck, false, "journal: %s", said);
        }
        return rc;
    }
    if (js.frames_written > 0) {
        ck->rep->journal_pending = js.frames_written;
        note(ck, true,
             "journal: %" PRIu64 " records (%" PRIu64 " bytes) of generation "
             "%" PRIu64 " are in the commit journal but not in their "
             "segments (a crash under --sync=always); the figures below "
             "leave them out. `bitcached-admin repair` or a server start "
             "replays them",
             js.frames_written, js.bytes_written, js.generation);
    }
    return 0;
}

int
cask_check(const char *dir, int64_t now_s, const struct cask_check_hooks *h,
           struct cask_check_report *rep)
{
    struct check ck = {.h = h, .rep = rep, .now = now_s};
    memset(rep, 0, sizeof(*rep));
    int rc = check_state(&ck, dir);
    if (rc != 0) {
        return rc;
    }
    unsigned found = cask_count_shard_dirs(dir);
    if (!rep->state_ok) {
        rep->shards = found;
    } else if (found != rep->shards) {
        note(&ck, true, "state says %u shards, %u shard directories found",
             rep->shards, found);
    }
    rc = check_journal(&ck, dir);
    if (rc != 0) {
        return rc;
    }
    ck.total = total_bytes(dir, rep->shards);
    for (unsigned i = 0; i < rep->shards; i++) {
        char sdir[CASK_PATH_MAX], name[24];
        struct cask_check_counts c = {0};
        struct ktab kt = {0};
        uint32_t *ids = NULL;
        size_t n = 0;
        snprintf(name, sizeof(name), "shard-%03u", i);
        snprintf(sdir, sizeof(sdir), "%s/%s", dir, name);
        rc = check_retired(&ck, sdir, name);
        if (rc == 0) {
            rc = check_manifest(&ck, dir, sdir, name, i);
        }
        if (rc == 0) {
            rc = list_segments(sdir, &ids, &n);
            if (rc == ENOENT) {
                note(&ck, true, "%s: missing", name);
                rc = 0;
            } else if (rc == 0) {
                rc = check_orphan_hints(&ck, sdir, name, ids, n);
            }
        }
        for (size_t j = 0; rc == 0 && j < n; j++) {
            rc = check_segment(&ck, sdir, name, ids[j], &kt, &c);
        }
        free(ids);
        if (rc == 0) {
            ktab_count(&kt, rep->flush_cas, now_s, &c);
            c.dead_bytes = c.record_bytes - c.live_bytes;
        }
        ktab_free(&kt);
        if (rc != 0) {
            return rc;
        }
        if (h != NULL && h->shard != NULL) {
            h->shard(h->arg, i, &c);
        }
        add_counts(&rep->total, &c);
    }
    return 0;
}

int
cask_check_shards(const char *dir, unsigned *shards)
{
    struct cask_check_report rep;
    struct check ck = {.rep = &rep};
    char path[CASK_PATH_MAX];
    memset(&rep, 0, sizeof(rep));
    state_path(dir, path, sizeof(path));
    if (access(path, F_OK) != 0) {
        /* the count a server would open it with */
        int rc = errno;
        *shards = cask_count_shard_dirs(dir);
        return rc;
    }
    int rc = check_state(&ck, dir);
    if (rc == 0 && rep.newer_files > 0) {
        rc = CASK_ENEWER;
    } else if (rc == 0 && !rep.state_ok) {
        rc = EINVAL;
    }
    *shards = rc == EINVAL ? cask_count_shard_dirs(dir) : rep.shards;
    return rc;
}

/* ---- the LOCK ---------------------------------------------------------- */

pid_t
cask_check_lock_holder(const char *dir)
{
    char path[CASK_PATH_MAX], line[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    if (stat(path, &st) != 0) {
        return 0;
    }
    FILE *f = fopen("/proc/locks", "re");
    if (f == NULL) {
        return 0;
    }
    pid_t pid = 0;
    while (pid == 0 && fgets(line, sizeof(line), f) != NULL) {
        /* "1: FLOCK  ADVISORY  WRITE 1234 08:01:56789 0 EOF"; blocked
         * waiters are listed as "1: -> FLOCK ..." and are skipped. */
        char kind[16], mode[16], rw[16];
        int p;
        unsigned maj, min;
        unsigned long ino;
        if (sscanf(line, "%*d: %15s %15s %15s %d %x:%x:%lu", kind, mode, rw, &p,
                   &maj, &min, &ino) == 7 &&
            ino == (unsigned long)st.st_ino && maj == major(st.st_dev) &&
            min == minor(st.st_dev) && p > 0) {
            pid = (pid_t)p;
        }
    }
    fclose(f);
    return pid;
}

int
cask_check_lock(const char *dir, int *fd, pid_t *holder)
{
    char path[CASK_PATH_MAX];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    *holder = 0;
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        return errno == ENOENT ? 0 : errno;
    }
    if (flock(*fd, LOCK_SH | LOCK_NB) != 0) {
        int rc = errno;
        close(*fd);
        *fd = -1;
        if (rc == EWOULDBLOCK) {
            *holder = cask_check_lock_holder(dir);
        }
        return rc;
    }
    return 0;
}
