/* cask_recover.c - recovery of one shard at open: finish a committed
 * compaction (the retired file), list the segments (a hint left without its
 * segment is logged with what was lost and counted), size the keydir once
 * for what the hints list, load each one's hint
 * and scan the rest, rebuild the keydir with tombstones and touch records
 * applied, resynchronise over damage, truncate only a torn tail, move a
 * segment with damage inside to the quarantine once what it holds that
 * still counts is copied out, and pick the segment that takes appends.
 * Store-wide orchestration (shards in parallel) is in cask.c.
 *
 * Runs before the shard is shared with any other thread, so it takes no
 * lock. Must not depend on anything above storage/.
 */
#include "storage/cask_shard.h"

#include "storage/cask_hint.h"
#include "storage/cask_io.h"
#include "storage/cask_log.h"
#include "storage/cask_manifest.h"
#include "storage/cask_newer.h"
#include "storage/cask_record.h"
#include "storage/cask_resync.h"
#include "storage/cask_retire.h"
#include "storage/cask_segtab.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opened only to look (cask_options.inspect): recovery runs in memory
 * and leaves every file as it is. */
static bool
looking(const struct cask_shard *sh)
{
    return sh->store->opt.inspect;
}

/* Records in flight between reading and applying: enough to hide a cache
 * miss on the keydir's table behind the decoding of the ones after it. */
#define RECOVER_PIPE 8

struct recov {
    struct cask_shard *sh;
    struct cask_segment *seg;
    struct cask_keydir *tombs;   /* newest tombstone per deleted key; the
                                  * entry's off/vlen hold its seq */
    struct cask_keydir *touches; /* newest touch record per key: cas, seq
                                  * (in off/vlen) and exp */
    uint64_t flush_cas;
    int err;
    /* Records read but not yet applied (recover_rec): their keydir slots
     * are being prefetched. Applied in order, and all of them before the
     * next segment is read. */
    struct pending {
        struct cask_rec r;
        uint64_t off, h;
        char key[CASK_KEY_MAX];
    } pend[RECOVER_PIPE];
    unsigned head, npend;
};

static uint64_t
entry_seq(struct cask_shard *sh, const struct cask_kd_entry *e)
{
    char hb[CASK_REC_HDR];
    if (cask_seg_pread(sh->segs[e->seg], e->off, sizeof(hb), hb) != 0) {
        return 0;
    }
    return cask_get64(hb + 8);
}

/* Is record (cas, seq) newer than what e indexes? Ties on cas are touches
 * (or copies left by an interrupted compaction): seq decides. */
static bool
newer_than(struct cask_shard *sh, uint64_t cas, uint64_t seq,
           const struct cask_kd_entry *e)
{
    uint64_t ec = cask_kd_cas(e);
    if (cas != ec) {
        return cas > ec;
    }
    return seq > entry_seq(sh, e);
}

/* Is record (cas, seq) no newer than the tombstone t? */
static bool
tomb_covers(const struct cask_kd_entry *t, uint64_t cas, uint64_t seq)
{
    uint64_t tcas = cask_kd_cas(t);
    uint64_t tseq = (uint64_t)t->vlen << 32 | t->off;
    return cas < tcas || (cas == tcas && seq <= tseq);
}

static void
apply_rec(struct recov *rv, const struct cask_rec *r, const char *key,
          uint64_t off, uint64_t h)
{
    struct cask_shard *sh = rv->sh;
    struct cask_segment *seg = rv->seg;

    sh->records_recovered++;
    if (r->cas < seg->min_cas) {
        seg->min_cas = r->cas;
    }
    if (r->cas > seg->max_cas) {
        seg->max_cas = r->cas;
    }
    if (r->cas > sh->max_cas) {
        sh->max_cas = r->cas;
    }
    if (r->seq > sh->max_cas) {
        sh->max_cas = r->seq;
    }
    if (r->cas <= rv->flush_cas) {
        return; /* flushed, and so is every older record of the key */
    }
    if (r->type == CASK_REC_TOUCH) {
        /* Applied once every segment is read (touch_apply): the put it
         * belongs to may come later, from a higher-id compaction output. */
        struct cask_kd_entry *u = cask_kd_find(rv->touches, h, key, r->klen);
        if (u == NULL) {
            u = cask_kd_insert(rv->touches, h, key, r->klen);
            if (u == NULL) {
                rv->err = ENOMEM;
                return;
            }
        } else if (tomb_covers(u, r->cas, r->seq)) {
            return; /* a newer touch is already known */
        }
        cask_kd_set_cas(u, r->cas);
        u->off = (uint32_t)r->seq;
        u->vlen = (uint32_t)(r->seq >> 32);
        u->exp = cask_kd_exp32(r->exp_abs_s);
        return;
    }
    struct cask_kd_entry *e = cask_kd_find(sh->kd, h, key, r->klen);
    struct cask_kd_entry *t = cask_kd_find(rv->tombs, h, key, r->klen);
    if (r->type == CASK_REC_TOMB) {
        if (e != NULL) {
            if (!newer_than(sh, r->cas, r->seq, e)) {
                return;
            }
            sh->segs[e->seg]->live_bytes -= cask_segtab_entry_len(e);
            cask_kd_remove(sh->kd, h, e);
        }
        if (t == NULL) {
            t = cask_kd_insert(rv->tombs, h, key, r->klen);
            if (t == NULL) {
                rv->err = ENOMEM;
                return;
            }
        } else if (tomb_covers(t, r->cas, r->seq)) {
            return;
        }
        cask_kd_set_cas(t, r->cas);
        t->off = (uint32_t)r->seq;
        t->vlen = (uint32_t)(r->seq >> 32);
        return;
    }
    if (t != NULL && tomb_covers(t, r->cas, r->seq)) {
        return; /* deleted after this was written */
    }
    if (e == NULL) {
        e = cask_kd_insert(sh->kd, h, key, r->klen);
        if (e == NULL) {
            rv->err = ENOMEM;
            return;
        }
    } else if (!newer_than(sh, r->cas, r->seq, e)) {
        return;
    }
    cask_segtab_index_put(sh, e, r, seg->slot, (uint32_t)off);
}

/* Apply the oldest record in flight. */
static void
apply_oldest(struct recov *rv)
{
    struct pending *p = &rv->pend[rv->head];
    apply_rec(rv, &p->r, p->key, p->off, p->h);
    rv->head = (rv->head + 1) % RECOVER_PIPE;
    rv->npend--;
}

/* The scan and hint callback: queue the record and prefetch its keydir
 * slot; apply the oldest once the queue is full. The prefetch pays for
 * itself many times over: without it a restart of 5M keys took 1.39
 * s of CPU instead of 0.83 warm, 1.71 instead of 0.91 cold (the misses
 * move to the lookups that apply the records). */
static void
recover_rec(void *arg, const struct cask_rec *r, const char *key, uint64_t off)
{
    struct recov *rv = arg;
    if (rv->npend == RECOVER_PIPE) {
        apply_oldest(rv);
    }
    struct pending *p = &rv->pend[(rv->head + rv->npend) % RECOVER_PIPE];
    p->r = *r;
    p->off = off;
    memcpy(p->key, key, r->klen);
    p->h = cask_kd_hash(key, r->klen);
    cask_kd_prefetch(rv->sh->kd, p->h);
    rv->npend++;
}

/* Apply every record in flight (before rv->seg changes). */
static void
recover_drain(struct recov *rv)
{
    while (rv->npend > 0) {
        apply_oldest(rv);
    }
}

/* A touch record sets the expiry of the put with its cas, unless that put
 * was rewritten later (a compaction copy re-stamped with the expiry in
 * effect and a fresh seq). */
static void
touch_apply(void *arg, struct cask_kd_entry *u)
{
    struct recov *rv = arg;
    struct cask_shard *sh = rv->sh;
    uint64_t h = cask_kd_hash(u->key, u->klen);
    struct cask_kd_entry *e = cask_kd_find(sh->kd, h, u->key, u->klen);
    uint64_t useq = (uint64_t)u->vlen << 32 | u->off;
    if (e != NULL && cask_kd_cas(e) == cask_kd_cas(u) &&
        useq > entry_seq(sh, e)) {
        e->exp = u->exp;
    }
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Under the data directory: damaged segments moved aside, in one folder
 * per shard (the same place bitcached-admin repair uses). */
#define CASK_QUARANTINE_DIR "quarantine"

/* DIR/quarantine/shard-NNN (created) and a name in it for segment id that
 * is not taken yet: NNNNNNNN.seg, else NNNNNNNN.seg.1, ... */
static int
quarantine_path(struct cask_shard *sh, uint32_t id, char *qdir, size_t dcap,
                char *qpath, size_t pcap)
{
    struct stat st;
    snprintf(qdir, dcap, "%s/%s", sh->store->dir, CASK_QUARANTINE_DIR);
    if (mkdir(qdir, 0755) != 0 && errno != EEXIST) {
        return errno;
    }
    snprintf(qdir, dcap, "%s/%s/shard-%03u", sh->store->dir,
             CASK_QUARANTINE_DIR, sh->idx);
    if (mkdir(qdir, 0755) != 0 && errno != EEXIST) {
        return errno;
    }
    for (unsigned i = 0; i < 1000; i++) {
        if (i == 0) {
            snprintf(qpath, pcap, "%s/%08x.seg", qdir, id);
        } else {
            snprintf(qpath, pcap, "%s/%08x.seg.%u", qdir, id, i);
        }
        if (stat(qpath, &st) != 0 && errno == ENOENT) {
            return 0;
        }
    }
    return EEXIST;
}

/* A file of the shard written by a newer format version (cask_newer.h):
 * the store is not opened, and the file is left as it is. */
static int
refuse_newer(struct cask_shard *sh, const char *file, uint32_t version,
             uint32_t known)
{
    cask_logf(sh->store, CASK_LOG_ERROR,
              "shard %u: %s was written by a newer bitcached (format "
              "version %u; this build reads up to %u); not opening the "
              "store, the file is left as it is",
              sh->idx, file, version, known);
    return CASK_ENEWER;
}

struct hint_cost {
    uint64_t records, puts, tombs;
};

static void
count_rec(void *arg, const struct cask_rec *r, const char *key, uint64_t off)
{
    struct hint_cost *hc = arg;
    (void)key;
    (void)off;
    hc->records++;
    hc->puts += r->type == CASK_REC_PUT;
    hc->tombs += r->type == CASK_REC_TOMB;
}

/* A hint whose segment is gone: the segment was lost (compaction removes
 * a hint before its segment, and a new segment removes a stale hint of its
 * id first). Say what it cost, from what the hint lists, and count it. */
static void
missing_segment(struct cask_shard *sh, uint32_t id)
{
    struct cask_segment fake = {.id = id, .flushed = UINT64_MAX};
    struct hint_cost hc = {0};
    uint64_t cov = 0;
    sh->segments_missing++;
    if (cask_hint_load(sh->dir, &fake, CASK_REC_VMAX, count_rec, &hc, &cov,
                       NULL) != 0) {
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: segment %08x is missing and its hint is "
                  "unreadable: what it held is lost%s",
                  sh->idx, id, looking(sh) ? "" : "; hint removed");
        return;
    }
    sh->records_missing += hc.records;
    cask_logf(sh->store, CASK_LOG_ERROR,
              "shard %u: segment %08x is missing (only its hint is left): "
              "%" PRIu64 " records in %" PRIu64 " bytes lost (%" PRIu64
              " puts, %" PRIu64 " tombstones): keys they held may be gone "
              "or show older values%s",
              sh->idx, id, hc.records, cov - CASK_SEG_HDR, hc.puts, hc.tombs,
              looking(sh) ? "" : "; hint removed");
}

static bool
in_ids(const uint32_t *ids, size_t n, uint32_t id)
{
    return n > 0 && bsearch(&id, ids, n, sizeof(uint32_t), cmp_u32) != NULL;
}

/* recover_cut's hint callback: records that lie within the file are
 * recovered as usual; past its end (end), a tombstone or touch record
 * needs none of its bytes (its hint entry says all it did), and a put
 * that is gone becomes a tombstone of its own cas and seq: its key misses
 * unless a newer record of it is found, and no older put comes back. */
struct cut_load {
    struct recov *rv;
    uint64_t end;
    uint64_t puts, others; /* records past the end */
};

static void
cut_rec(void *arg, const struct cask_rec *r, const char *key, uint64_t off)
{
    struct cut_load *cl = arg;
    if (off + cask_rec_len(r->klen, r->vlen) <= cl->end) {
        recover_rec(cl->rv, r, key, off);
        return;
    }
    struct cask_rec t = *r;
    if (r->type == CASK_REC_PUT) {
        t.type = CASK_REC_TOMB;
        t.vlen = 0;
        cl->puts++;
    } else {
        cl->others++;
    }
    recover_rec(cl->rv, &t, key, off);
}

/* Segment s is shorter than its hint says it was (its hint does not fit
 * it: cask_hint_load said EINVAL). Not a torn tail, which no hint covers
 * (a segment gets one only once it is closed and synced): something cut
 * the file while the store was stopped. The hint still describes the
 * records cut off, and without them a key whose newest record was there
 * would show an older value, and a key deleted there would be back. When
 * the hint is sound and covers more than the file: load it (cut_rec), so
 * that the keydir says what the store said before the cut, less the
 * values lost, and queue s for the rewrite that a cut found while running
 * gets (cask_resync.c): it copies what reads back and writes tombstones
 * and touch records where other segments would otherwise bring an older
 * value back at a later start. Returns 0 (loaded, logged, queued), EINVAL
 * (not that case: the caller scans), or what the load returned. Not when
 * looking: the rewrite writes. */
static int
recover_cut(struct cask_shard *sh, struct cask_segment *s, struct recov *rv,
            uint64_t *cov)
{
    struct cask_segment whole = {.id = s->id, .flushed = UINT64_MAX};
    struct hint_cost hc = {0};
    uint64_t want = 0;
    if (looking(sh) ||
        cask_hint_load(sh->dir, &whole, CASK_REC_VMAX, count_rec, &hc, &want,
                       NULL) != 0 ||
        want <= s->flushed) {
        return EINVAL;
    }
    uint64_t had = s->flushed;
    struct cut_load cl = {.rv = rv, .end = had};
    /* As long as the hint says it was: what lies past the end of the file
     * is lost (the rewrite counts it, and reads nothing there). */
    s->flushed = s->size = want;
    int rc = cask_hint_load(sh->dir, s, CASK_REC_VMAX, cut_rec, &cl, cov,
                            &s->hint_bytes);
    if (rc != 0) {
        s->flushed = s->size = had;
        return rc;
    }
    s->damaged = true; /* compaction leaves it to the rewrite */
    cask_resync_add(sh, s->id);
    sh->segments_cut++;
    cask_logf(sh->store, CASK_LOG_ERROR,
              "shard %u: segment %08x is %" PRIu64 " bytes long, shorter "
              "than its hint says it was (%" PRIu64
              "): cut while the store was stopped. %" PRIu64
              " puts past the cut are lost: their keys miss unless written "
              "again later (never an older value); %" PRIu64
              " tombstones and touch records there still count, as its "
              "hint gives them; what still reads back is rewritten to a "
              "new segment",
              sh->idx, s->id, had, want, cl.puts, cl.others);
    return 0;
}

/* Append id to the growing array *a of *n (capacity *cap). */
static int
push_id(uint32_t **a, size_t *n, size_t *cap, uint32_t id)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        uint32_t *na = realloc(*a, nc * sizeof(uint32_t));
        if (na == NULL) {
            return ENOMEM;
        }
        *a = na;
        *cap = nc;
    }
    (*a)[(*n)++] = id;
    return 0;
}

/* Segment ids in the shard directory, sorted; stale temp files removed.
 * The ids of hints found without their segment (logged, counted and
 * removed here) go to *orph (malloc'd) and *norph. */
static int
list_segments(struct cask_shard *sh, uint32_t **ids, size_t *n, uint32_t **orph,
              size_t *norph, const uint32_t *skip, size_t nskip)
{
    DIR *d = opendir(sh->dir);
    size_t cap = 0, ocap = 0;
    *ids = NULL;
    *n = 0;
    *orph = NULL;
    *norph = 0;
    if (d == NULL) {
        /* looking: a shard no server ever opened (not made here) */
        return looking(sh) && errno == ENOENT ? 0 : errno;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned id;
        char ext[16];
        size_t nl = strlen(de->d_name);
        if (nl > 4 && strcmp(de->d_name + nl - 4, ".tmp") == 0) {
            /* A hint or state temp file left by a crash. */
            if (!looking(sh)) {
                unlinkat(dirfd(d), de->d_name, 0);
            }
            continue;
        }
        if (sscanf(de->d_name, "%8x.%15s", &id, ext) != 2 ||
            strcmp(ext, "seg") != 0 || nl != 12) {
            continue;
        }
        if (in_ids(skip, nskip, id)) {
            continue; /* looking: retired, as if its removal was done */
        }
        if (push_id(ids, n, &cap, id) != 0) {
            closedir(d);
            return ENOMEM;
        }
    }
    if (*n > 1) {
        qsort(*ids, *n, sizeof(uint32_t), cmp_u32);
    }
    /* A hint whose segment is gone would wrongly describe a later segment
     * that gets the same id: remove it. */
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        unsigned id;
        char ext[16];
        if (sscanf(de->d_name, "%8x.%15s", &id, ext) != 2 ||
            strcmp(ext, "hint") != 0 || strlen(de->d_name) != 13) {
            continue;
        }
        uint32_t key = id;
        if (in_ids(skip, nskip, id)) {
            continue;
        }
        if (*n == 0 ||
            bsearch(&key, *ids, *n, sizeof(uint32_t), cmp_u32) == NULL) {
            uint32_t v = cask_hint_newer(sh->dir, id);
            if (v != 0) {
                char file[32];
                snprintf(file, sizeof(file), "hint %08x", id);
                closedir(d);
                return refuse_newer(sh, file, v, CASK_HINT_VERSION);
            }
            missing_segment(sh, id);
            if (!looking(sh)) {
                unlinkat(dirfd(d), de->d_name, 0);
            }
            if (push_id(orph, norph, &ocap, id) != 0) {
                closedir(d);
                return ENOMEM;
            }
        }
    }
    closedir(d);
    return 0;
}

/* Was segment id moved to the quarantine (by a recovery cut short before
 * it rewrote the manifest, or by bitcached-admin repair)? */
static bool
quarantined_away(struct cask_shard *sh, uint32_t id)
{
    char p[CASK_PATH_MAX + 64];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s/shard-%03u/%08x.seg", sh->store->dir,
             CASK_QUARANTINE_DIR, sh->idx, id);
    return stat(p, &st) == 0;
}

/* The manifest of the shard against the segments found (ids[0..n), both
 * sorted): a listed id that is not there, was not retired by the last
 * compaction, nor moved to the quarantine, and whose hint did not already
 * report it (orph), is a segment lost without a trace. Without its hint
 * what it held is unknown, tombstones included: say what that can mean. */
static int
check_manifest(struct cask_shard *sh, const uint32_t *ids, size_t n,
               uint32_t *orph, size_t norph)
{
    struct cask *c = sh->store;
    uint32_t *listed = NULL, *retired = NULL;
    size_t nlisted = 0, nretired = 0;
    uint32_t next_id = 0;
    int rc = cask_manifest_load(sh->dir, &listed, &nlisted, &next_id);
    if (rc == CASK_ENEWER) {
        return refuse_newer(sh, "the segment manifest",
                            cask_manifest_newer(sh->dir),
                            CASK_MANIFEST_VERSION);
    }
    if (rc == ENOENT) {
        if (n > 0) { /* with no segment either, a new shard: nothing to say */
            cask_logf(c, CASK_LOG_INFO,
                      "shard %u: no segment manifest yet (a store of an "
                      "older version): created from the %zu segments present",
                      sh->idx, n);
        }
        return 0;
    }
    if (rc == EINVAL) {
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: the segment manifest is damaged and ignored: "
                  "a missing segment without a hint cannot be detected at "
                  "this start; rewritten from the %zu segments present",
                  sh->idx, n);
        return 0;
    }
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR, "shard %u: read segment manifest: %s",
                  sh->idx, strerror(rc));
        return rc;
    }
    if (next_id > sh->next_id) {
        sh->next_id = next_id; /* an id is never handed out twice */
    }
    /* The last compaction's inputs may still be listed if it was cut short
     * between its manifest and retired writes by another writer's list. */
    if (cask_retire_ids(sh->dir, &retired, &nretired) == 0 && nretired > 1) {
        qsort(retired, nretired, sizeof(uint32_t), cmp_u32);
    }
    if (norph > 1) {
        qsort(orph, norph, sizeof(uint32_t), cmp_u32);
    }
    for (size_t i = 0; i < nlisted; i++) {
        uint32_t id = listed[i];
        if (in_ids(ids, n, id) || in_ids(retired, nretired, id) ||
            in_ids(orph, norph, id) || quarantined_away(sh, id)) {
            continue;
        }
        sh->segments_missing++;
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: segment %08x is missing, and no hint of it is "
                  "left: the keys it held are gone or show older values, "
                  "and keys it had deleted may have come back",
                  sh->idx, id);
    }
    free(listed);
    free(retired);
    return 0;
}

/* Once recovery is done: the manifest in memory (the segments now in
 * service, the active one included). Written now only when the file is
 * absent or damaged or lists a segment that is no longer there (reported,
 * retired or quarantined: not to be reported again); segments merely added
 * since (the new active one, outputs of a compaction cut short) are
 * written by the next roll-over, compaction or close, which keeps a file
 * replacement per shard off the restart time. A failed write does not fail
 * the open (a full disk must not): it is retried at those points. */
static int
start_manifest(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    uint32_t *now = NULL, *on_disk = NULL;
    size_t n = 0, nd = 0;
    uint32_t nd_next = 0;
    now = malloc((sh->nslots ? sh->nslots : 1) * sizeof(uint32_t));
    if (now == NULL) {
        return ENOMEM;
    }
    for (uint32_t i = 0; i < sh->nslots; i++) {
        if (sh->segs[i] != NULL) {
            now[n++] = sh->segs[i]->id;
        }
    }
    if (n > 1) {
        qsort(now, n, sizeof(uint32_t), cmp_u32);
    }
    int lrc = cask_manifest_load(sh->dir, &on_disk, &nd, &nd_next);
    bool subset = lrc == 0;
    for (size_t i = 0; i < nd && subset; i++) {
        subset = in_ids(now, n, on_disk[i]);
    }
    bool same = subset && nd == n && nd_next == sh->next_id;
    free(on_disk);
    int wrc = 0;
    int rc = cask_manifest_open(&sh->manifest, sh->dir, now, n, sh->next_id,
                                !subset, !same, &wrc);
    free(now);
    if (wrc != 0) {
        cask_logf(c, CASK_LOG_WARN,
                  "shard %u: write segment manifest: %s; written again at "
                  "the next roll-over or compaction",
                  sh->idx, strerror(wrc));
    }
    return rc;
}

/* Looking: the segment ends at len in memory; the file keeps its bytes. */
static int
look_cut(struct cask_segment *s, uint64_t len)
{
    s->size = s->flushed = len;
    return 0;
}

/* Scan segment s from cov. Invalid data followed by a valid record is
 * skipped (the scan resynchronises on that record; the bytes are logged
 * and counted); invalid data up to the end is a torn tail and truncated
 * (nothing valid follows it). A read error is returned: it says nothing
 * about the data, so nothing is cut. */
static int
recover_scan(struct cask_shard *sh, struct cask_segment *s, uint64_t cov,
             struct recov *rv, bool newest)
{
    struct cask *c = sh->store;
    uint64_t pos = cov;
    int err;

    for (;;) {
        uint64_t end =
                cask_seg_scan(s, pos, CASK_REC_VMAX, recover_rec, rv, &err);
        bool zero = false;
        if (err == 0 && end < s->flushed) {
            err = cask_seg_zero_tail(s, end, &zero);
        }
        if (err == 0 && zero) {
            /* The active segment's file is extended ahead of its records
             * (written through a mapping) and cut back when it closes: a
             * stop without that leaves zeros past the last record, which
             * are no damage. Cut them; the newest segment keeps its disk
             * reserve, as it would have without the extension. An older
             * segment has them only after a crash inside its roll-over
             * (or zeroed blocks): said louder. */
            cask_logf(c, newest ? CASK_LOG_INFO : CASK_LOG_WARN,
                      "shard %u: segment %08x: %" PRIu64
                      " zero bytes past its last record (extended ahead "
                      "of its appends) cut",
                      sh->idx, s->id, s->flushed - end);
            err = looking(sh) ? look_cut(s, end)
                              : cask_seg_cut_tail(s, end, newest);
            if (err != 0) {
                cask_logf(c, CASK_LOG_ERROR, "shard %u: truncate %08x: %s",
                          sh->idx, s->id, strerror(err));
            }
            return err;
        }
        if (err == 0 && end < s->flushed) {
            uint64_t next = cask_seg_resync(s, end, CASK_REC_VMAX, &err);
            if (err == 0 && next < s->flushed) {
                cask_logf(c, CASK_LOG_WARN,
                          "shard %u: segment %08x: %" PRIu64
                          " damaged bytes at offset %" PRIu64
                          " skipped; the records after them are kept",
                          sh->idx, s->id, next - end, end);
                sh->bytes_damaged += next - end;
                pos = next;
                continue;
            }
            if (err == 0) {
                uint64_t lost = s->flushed - end;
                /* Only the newest segment is appended to: an older one
                 * ending in a partial record either lost a power race
                 * with the sync that follows its roll-over (interval and
                 * never sync a closed segment in the background: only
                 * writes of the last interval are concerned), or was cut
                 * by something else after it was synced and closed, and
                 * what followed the cut is lost with no hint to say what
                 * it was. */
                cask_logf(c, newest ? CASK_LOG_WARN : CASK_LOG_ERROR,
                          "shard %u: segment %08x: torn or corrupt tail, "
                          "%s %" PRIu64 " bytes at offset %" PRIu64 "%s",
                          sh->idx, s->id,
                          looking(sh) ? "ignoring" : "truncated", lost, end,
                          newest ? ""
                                 : "; it is not the newest segment: a "
                                   "power loss came before its sync after "
                                   "a roll-over (--sync=interval or never: "
                                   "writes of the last interval), or it "
                                   "was cut short after it was closed; "
                                   "records past the cut are lost, keys "
                                   "whose newest records they were may "
                                   "show older values and keys they "
                                   "deleted may be back");
                sh->bytes_truncated += lost;
                err = looking(sh) ? look_cut(s, end)
                                  : cask_seg_truncate(s, end);
                if (err != 0) {
                    cask_logf(c, CASK_LOG_ERROR, "shard %u: truncate %08x: %s",
                              sh->idx, s->id, strerror(err));
                }
                return err;
            }
        }
        if (err != 0) {
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: read segment %08x at %" PRIu64
                      ": %s; refusing to open rather than cut the data",
                      sh->idx, s->id, end, strerror(err));
        }
        return err;
    }
}

/* Copy what recovery kept of the damaged closed segment s (the puts the
 * keydir points at, every tombstone and touch record: order does not
 * matter, (cas, seq) decides) into a new segment, sync it, then move s to
 * quarantine/ with its damage, for inspection. A crash in between leaves
 * both: duplicates resolve by (cas, seq) and the next start does it again.
 * Any failure leaves s where it is (nothing lost, logged). Returns 0 or an
 * errno that must fail the open (a read error). */
static int
quarantine(struct cask_shard *sh, struct cask_segment *s)
{
    struct cask *c = sh->store;
    struct cask_segment *out = NULL;
    struct cask_seg_reader rd = {0};
    uint64_t copied = 0, places = 0, bad = 0;
    char qdir[CASK_PATH_MAX + 32], qpath[CASK_PATH_MAX + 64];
    int rc = cask_segtab_new_segment(sh, 0, false, &out);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: no new segment to rescue damaged segment %08x "
                  "into (%s); it stays in place",
                  sh->idx, s->id, strerror(rc));
        return 0;
    }
    for (uint64_t off = CASK_SEG_HDR; off < s->flushed;) {
        struct cask_rec r;
        size_t len;
        const char *rec;
        rc = cask_seg_read_record(s, &rd, off, CASK_REC_VMAX, &r, &len, &rec);
        if (rc == CASK_SEG_EINVALID) {
            uint64_t next = cask_seg_resync(s, off, CASK_REC_VMAX, &rc);
            if (rc != 0) {
                goto out;
            }
            places++;
            bad += next - off;
            off = next;
            continue;
        }
        if (rc != 0) {
            goto out;
        }
        struct cask_kd_entry *e = NULL;
        if (r.type == CASK_REC_PUT) {
            const char *key = rec + CASK_REC_HDR;
            e = cask_kd_find(sh->kd, cask_kd_hash(key, r.klen), key, r.klen);
            if (e == NULL || e->seg != s->slot || e->off != off) {
                off += len;
                continue; /* superseded, deleted or flushed */
            }
        }
        uint64_t at = out->size;
        rc = cask_seg_write_direct(out, rec, len);
        if (rc != 0) {
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: write segment %08x: %s; damaged segment "
                      "%08x stays in place",
                      sh->idx, out->id, strerror(rc), s->id);
            rc = 0;
            goto out;
        }
        if (r.cas < out->min_cas) {
            out->min_cas = r.cas;
        }
        if (r.cas > out->max_cas) {
            out->max_cas = r.cas;
        }
        if (e != NULL) {
            e->seg = out->slot;
            e->off = (uint32_t)at;
            s->live_bytes -= len;
            out->live_bytes += len;
        }
        copied++;
        off += len;
    }
    if (s->live_bytes != 0) {
        /* An entry points at a record of s that no longer reads back (a
         * hint described it): keep s rather than lose track of that. */
        cask_logf(c, CASK_LOG_WARN,
                  "shard %u: damaged segment %08x still holds indexed "
                  "records; it stays in place",
                  sh->idx, s->id);
        goto out;
    }
    rc = cask_io_fdatasync(out->fd);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: sync segment %08x: %s; damaged segment %08x "
                  "stays in place",
                  sh->idx, out->id, strerror(rc), s->id);
        rc = 0;
        goto out;
    }
    int qrc = quarantine_path(sh, s->id, qdir, sizeof(qdir), qpath,
                              sizeof(qpath));
    if (qrc == 0 && rename(s->path, qpath) != 0) {
        qrc = errno;
    }
    if (qrc != 0) {
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: move damaged segment %08x to %s: %s; it stays "
                  "in place",
                  sh->idx, s->id, qdir, strerror(qrc));
        goto out;
    }
    cask_hint_remove(sh->dir, s->id);
    (void)cask_fsync_dir(qdir);
    (void)cask_fsync_dir(sh->dir);
    sh->quarantined++;
    sh->records_lost += places;
    cask_logf(c, CASK_LOG_ERROR,
              "shard %u: segment %08x had %" PRIu64 " damaged bytes in %" PRIu64
              " places (at least %" PRIu64 " records lost); its %" PRIu64
              " valid records still needed were copied to segment %08x and "
              "it was moved to %s",
              sh->idx, s->id, bad, places, places, copied, out->id, qpath);
    sh->segs[s->slot] = NULL;
    cask_seg_close(&s);
out:
    cask_seg_reader_deinit(&rd);
    return rc;
}

/* Looking: the ids the retired file lists (a compaction committed, its
 * inputs not all removed yet), sorted, and their highest in *max. 0, or
 * as cask_retire_apply fails. */
static int
look_retired(struct cask_shard *sh, uint32_t **ids, size_t *n, uint32_t *max)
{
    int rc = cask_retire_ids(sh->dir, ids, n);
    if (rc != 0) {
        *ids = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1) {
        qsort(*ids, *n, sizeof(uint32_t), cmp_u32);
    }
    *max = *n > 0 ? (*ids)[*n - 1] : 0;
    return 0;
}

int
cask_shard_recover(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    uint32_t *ids = NULL;
    size_t n = 0;
    struct recov rv = {.sh = sh, .flush_cas = atomic_load(&c->flush_cas)};
    struct cask_segment **damaged = NULL; /* closed, with damage inside */
    size_t ndamaged = 0;
    uint32_t retired_max = 0;
    unsigned removed = 0;
    uint32_t *retired = NULL; /* looking: ids the retired file lists */
    size_t nretired = 0;
    /* Finish a committed compaction before reading anything (looking:
     * leave its segments out, as if they were removed). */
    int rc = looking(sh) ? look_retired(sh, &retired, &nretired, &retired_max)
                         : cask_retire_apply(sh->dir, &retired_max, &removed);
    if (rc == CASK_ENEWER) {
        return refuse_newer(sh, "the retired-segments file",
                            cask_retire_newer(sh->dir), CASK_RETIRE_VERSION);
    }
    if (rc == EINVAL) {
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: the retired-segments file is damaged and "
                  "ignored; if a compaction was cut short, keys it had "
                  "deleted may be back",
                  sh->idx);
    } else if (rc != 0 && rc != ENOENT) {
        cask_logf(c, CASK_LOG_ERROR, "shard %u: retired-segments file: %s",
                  sh->idx, strerror(rc));
        return rc;
    } else if (removed > 0) {
        cask_logf(c, CASK_LOG_INFO,
                  "shard %u: removed %u segments of a committed compaction "
                  "cut short",
                  sh->idx, removed);
    }
    if (retired_max >= sh->next_id) {
        sh->next_id = retired_max + 1; /* never reuse a listed id */
    }
    uint32_t *orph = NULL;
    size_t norph = 0;
    rc = list_segments(sh, &ids, &n, &orph, &norph, retired, nretired);
    if (rc == 0) {
        rc = check_manifest(sh, ids, n, orph, norph);
    }
    free(orph);
    free(retired);
    if (rc != 0) {
        free(ids);
        return rc;
    }
    rv.tombs = cask_kd_create();
    rv.touches = cask_kd_create();
    damaged = calloc(n ? n : 1, sizeof(*damaged));
    if (rv.tombs == NULL || rv.touches == NULL || damaged == NULL) {
        free(damaged);
        cask_kd_destroy(&rv.tombs);
        cask_kd_destroy(&rv.touches);
        free(ids);
        return ENOMEM;
    }
    /* The index sized once for what the hints list, rather than grown
     * step by step as keys arrive (each step a rehash of a table); fewer
     * rehashes while any more arrive (the index is settled at the end;
     * the two scratch tables are dropped). */
    uint64_t est = cask_hint_estimate(sh->dir, ids, n);
    if (est > 0 && est <= SIZE_MAX) {
        (void)cask_kd_reserve(sh->kd, (size_t)est);
    }
    cask_kd_bulk(sh->kd, true);
    cask_kd_bulk(rv.tombs, true);
    cask_kd_bulk(rv.touches, true);
    for (size_t i = 0; i < n; i++) {
        struct cask_segment *s = NULL;
        uint64_t dropped = 0, cov = 0;
        bool bad_header;
        rc = looking(sh) ? cask_seg_open_look(&s, sh->dir, ids[i], &dropped,
                                              &bad_header)
                         : cask_seg_open(&s, sh->dir, ids[i], &dropped,
                                         &bad_header);
        if (rc == CASK_SEG_ENEWER) {
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: segment %08x was written by a newer "
                      "bitcached (this build reads segment formats up to "
                      "%u); not opening the store, the segment is left "
                      "as it is",
                      sh->idx, ids[i], CASK_SEG_VERSION);
            goto out;
        }
        if (rc != 0) {
            cask_logf(c, CASK_LOG_ERROR, "shard %u: open segment %08x: %s",
                      sh->idx, ids[i], strerror(rc));
            goto out;
        }
        if (dropped > 0) {
            cask_logf(c, CASK_LOG_WARN,
                      "shard %u: segment %08x had a torn header; dropped "
                      "%" PRIu64 " bytes",
                      sh->idx, s->id, dropped);
            sh->bytes_truncated += dropped;
        }
        if (bad_header) {
            cask_logf(c, CASK_LOG_WARN,
                      "shard %u: segment %08x had a damaged header; "
                      "rewritten, records checked one by one",
                      sh->idx, s->id);
        }
        rc = cask_segtab_add(sh, s);
        if (rc != 0) {
            cask_seg_close(&s);
            goto out;
        }
        rv.seg = s;
        rc = cask_hint_load(sh->dir, s, CASK_REC_VMAX, recover_rec, &rv, &cov,
                            &s->hint_bytes);
        if (rc == EINVAL) {
            rc = recover_cut(sh, s, &rv, &cov);
            rc = rc == 0 ? 0 : EINVAL; /* else: as a hint that does not fit */
        }
        recover_drain(&rv);
        if (rc == CASK_ENEWER) {
            char file[32];
            snprintf(file, sizeof(file), "hint %08x", s->id);
            rc = refuse_newer(sh, file, cask_hint_newer(sh->dir, s->id),
                              CASK_HINT_VERSION);
            goto out;
        }
        if (rc == 0) {
            s->hint_len = cov;
        } else {
            if (rc == EINVAL) {
                cask_logf(c, CASK_LOG_WARN,
                          "shard %u: hint of segment %08x unusable; "
                          "scanning the segment",
                          sh->idx, s->id);
                if (!looking(sh)) {
                    cask_hint_remove(sh->dir, s->id);
                }
            } else if (rc != ENOENT) {
                /* not damage: the hint is kept for the next start */
                cask_logf(c, CASK_LOG_WARN,
                          "shard %u: hint of segment %08x could not be "
                          "read (%s); scanning the segment",
                          sh->idx, s->id, cask_strerror(rc));
            }
            cov = CASK_SEG_HDR;
        }
        uint64_t before = sh->bytes_damaged;
        rc = recover_scan(sh, s, cov, &rv, i + 1 == n);
        recover_drain(&rv);
        if (rc != 0) {
            goto out;
        }
        if (sh->bytes_damaged > before) {
            damaged[ndamaged++] = s;
        }
        if (rv.err != 0) {
            rc = rv.err;
            goto out;
        }
        if (s->id >= sh->next_id) {
            sh->next_id = s->id + 1;
        }
    }
    cask_kd_foreach(rv.touches, touch_apply, &rv);
    if (looking(sh)) {
        /* Damaged segments are read where they are; nothing takes
         * appends, and the manifest stays as it is. */
        goto out;
    }
    for (size_t i = 0; i < ndamaged; i++) {
        rc = quarantine(sh, damaged[i]);
        if (rc != 0) {
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: read segment %08x: %s; refusing to open "
                      "rather than cut the data",
                      sh->idx, damaged[i]->id, strerror(rc));
            goto out;
        }
    }
    struct cask_segment *last = NULL;
    for (uint32_t i = 0; i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s != NULL && (last == NULL || s->id > last->id)) {
            last = s;
        }
    }
    /* Keep appending to the newest segment only when recovery scanned all
     * of it (it had no hint: the store stopped without closing). After a
     * clean close its hint was trusted unverified, and appending would
     * later force a rescan that a damaged record could cut short. */
    if (last != NULL && last->flushed < c->opt.segment_size &&
        (last->hint_len == 0 || last->flushed == CASK_SEG_HDR)) {
        rc = cask_seg_make_active(last, 0);
        if (rc != 0) {
            goto out;
        }
        cask_hint_remove(sh->dir, last->id);
        last->hint_len = 0;
        last->hint_bytes = 0;
        sh->active = last;
    } else {
        rc = cask_segtab_new_segment(sh, 0, false, &sh->active);
        if (rc == 0 && last != NULL) {
            /* The newest segment kept its reserve through the restart in
             * case the disk was full; it was not. */
            cask_log_release_reserve(last);
        }
        if (rc == ENOSPC || rc == EDQUOT) {
            /* A full disk must not keep the store from starting: serve
             * reads; sets fail until space returns. Deletes go to the
             * newest segment, into the reserve it kept. */
            cask_logf(c, CASK_LOG_WARN,
                      "shard %u: no space for a new segment (%s); sets "
                      "fail until space returns, deletes use the reserve",
                      sh->idx, strerror(rc));
            sh->active = NULL;
            rc = 0;
            /* The segment with the most space reserved past its end (the
             * active one before the restart, usually) takes appends. */
            struct cask_segment *best = NULL;
            for (uint32_t i = 0; i < sh->nslots; i++) {
                struct cask_segment *s = sh->segs[i];
                if (s != NULL && s->prealloc_end > s->size &&
                    (best == NULL || s->prealloc_end - s->size >
                                             best->prealloc_end - best->size)) {
                    best = s;
                }
            }
            if (best == NULL) {
                best = last;
            }
            if (best != NULL && cask_seg_make_active(best, 0) == 0) {
                cask_hint_remove(sh->dir, best->id);
                best->hint_len = 0;
                best->hint_bytes = 0;
                sh->active = best;
            }
        }
    }
    if (rc == 0) {
        /* A segment that takes no appends but has blocks reserved past
         * its end (more than its last block) lost a crash race with the
         * sync thread, which gives a rolled-over segment's reserve back
         * only after its sync: give it back now. */
        for (uint32_t i = 0; i < sh->nslots; i++) {
            struct cask_segment *s = sh->segs[i];
            if (s != NULL && s != sh->active &&
                s->prealloc_end > (s->size + 4095) / 4096 * 4096) {
                cask_log_release_reserve(s);
            }
        }
        if (sh->active != NULL) {
            /* so that the first write after a start finds it made */
            cask_log_reserve_fresh(c, sh->active);
        }
        rc = start_manifest(sh);
    }
out:
    cask_kd_bulk(sh->kd, false);
    cask_kd_destroy(&rv.tombs);
    cask_kd_destroy(&rv.touches);
    free(damaged);
    free(ids);
    return rc;
}
