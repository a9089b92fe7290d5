/* cask_shard.c - one bitcask: the per-key operations, value reads, hints
 * for closed segments, open/close and stats. The log (appends, roll-over,
 * syncs) is cask_log.c, recovery cask_recover.c, compaction cask_compact.c;
 * this file calls down into them and into segments, records and keydir.
 *
 * Owns the shard's directory, segments, keydir and mutexes. Every operation
 * runs under the shard mutex, except the value read of a get: the segment
 * is pinned (readers) and read with the mutex released, so a cold or slow
 * read stalls only its own request. Under CASK_SYNC_ALWAYS a writer joins
 * a commit epoch after its append (cask_log_join) and, once it has released
 * the mutex, waits for the committer (cask_commit.c) to sync that epoch, or
 * hands the ticket to its caller (cask_defer).
 * Must not depend on anything above storage/.
 */
#include "storage/cask_shard.h"

#include "storage/cask_atime.h"
#include "storage/cask_commit.h"
#include "storage/cask_direct.h"
#include "storage/cask_evict.h"
#include "storage/cask_hint.h"
#include "storage/cask_io.h"
#include "storage/cask_log.h"
#include "storage/cask_manifest.h"
#include "storage/cask_record.h"
#include "storage/cask_resync.h"
#include "storage/cask_retire.h"
#include "storage/cask_segtab.h"
#include "storage/cask_split.h"
#include "storage/cask_verify.h"
#include "storage/cask_vmap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The operation starts over from its lookup (see CASK_LOG_RETRY; a get
 * whose candidate moved uses it too). Never leaves this file. */
#define RETRY CASK_LOG_RETRY
/* read_value_at: the record is sound but holds another key. */
#define KEY_OTHER (-2001)
/* A get whose staged record failed to be written looks again this many
 * times before it answers the error. */
#define SETTLE_TRIES 3u

/* The keydir's match function: the keydir keeps no keys, so whether e
 * (whose hash bits agree with the key's) is key's entry is told by the key
 * in its record. Called with mu held (e's record may sit in a compaction
 * output's buffer, which cask_seg_pread reads). A record that cannot be
 * read counts as a match: the caller's own read of the record then fails
 * and reports it, where a false "no" would let a second entry for one key
 * into the keydir. */
static bool
kd_match(void *arg, const struct cask_kd_entry *e, const void *key, size_t klen)
{
    struct cask_shard *sh = arg;
    char hb[CASK_REC_HDR + CASK_KEY_MAX];
    if (e->off == 0) {
        return false; /* inserted, its record not yet appended */
    }
    int rc = cask_seg_pread(sh->segs[e->seg], e->off, CASK_REC_HDR + klen, hb);
    if (rc != 0) {
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: read key in segment %08x at %" PRIu32 ": %s",
                  sh->idx, sh->segs[e->seg]->id, (uint32_t)e->off,
                  strerror(rc));
        return true;
    }
    return memcmp(hb + CASK_REC_HDR, key, klen) == 0;
}

/* ---- validity ---------------------------------------------------------- */

static int
entry_state(const struct cask_kd_entry *e, int64_t now, uint64_t flush_cas)
{
    if (cask_kd_cas(e) <= flush_cas) {
        return CASK_GONE_FLUSHED;
    }
    if (e->exp != 0 && (int64_t)e->exp <= now) {
        return CASK_GONE_EXPIRED;
    }
    return CASK_GONE_ABSENT; /* i.e. alive */
}

/* What one lookup learnt about the keys of candidate entries. A cas is
 * handed out once, to one key's record (copies and touches keep the cas of
 * the same key), so a cas seen to carry some key always carries it. */
#define KC_SEEN 4
struct kcheck {
    const void *key;
    unsigned nseen;
    struct {
        uint64_t cas;
        bool same;
    } seen[KC_SEEN];
    struct cask_kd_entry *want; /* first candidate not yet checked */
    bool mapped;                /* may read keys through the mapping */
};

static bool
kcheck_match(void *arg, const struct cask_kd_entry *e, const void *key,
             size_t klen)
{
    struct kcheck *kc = arg;
    (void)key;
    (void)klen;
    if (e->off == 0) {
        return false; /* inserted, its record not yet appended */
    }
    uint64_t cas = cask_kd_cas(e);
    for (unsigned i = 0; i < kc->nseen; i++) {
        if (kc->seen[i].cas == cas) {
            return kc->seen[i].same;
        }
    }
    if (kc->want == NULL) {
        kc->want = (struct cask_kd_entry *)e;
    }
    return false;
}

/* Check whether kc->want is key's entry, with mu released for the read
 * (segment pinned) unless the record is in an append buffer; a record
 * that cannot be read counts as key's (see kd_match). The key is copied
 * from the segment's mapping (cask_vmap.h) where there is one: an
 * overwrite checks the key of the record it replaces, and a pread per
 * write was a tenth of a write's CPU. Only for writers (kc->mapped): a
 * page not in the page cache blocks the copy as it would the pread, mu
 * released all the same, but reads have their own way with cold pages
 * (cask_io_nowait, the I/O threads) that goes through pread, and a page
 * mapped here stays mapped (posix_fadvise cannot drop it). The header is
 * copied too and must be the one the entry names (key length, cas); a
 * page that cannot be had, or other bytes, go the pread way, which says
 * what is wrong. */
static void
kcheck_read(struct cask_shard *sh, struct kcheck *kc, size_t klen)
{
    struct cask_kd_entry *e = kc->want;
    struct cask_segment *s = sh->segs[e->seg];
    uint32_t off = e->off;
    uint64_t cas = cask_kd_cas(e);
    char hb[CASK_REC_HDR + CASK_KEY_MAX];
    bool decoded = false; /* hb's header already checked (the mapping) */
    int rc;
    if (off + CASK_REC_HDR + klen > s->flushed) {
        rc = cask_seg_pread(s, off, CASK_REC_HDR + klen, hb);
    } else {
        const char *mapped = NULL;
        if (kc->mapped && !cask_io_reads_replaced() && !cask_io_nowait_on()) {
            cask_vmap_open(s, sh->store->opt.segment_size);
            mapped = cask_vmap_at(s, off, CASK_REC_HDR + klen);
        }
        s->readers++;
        pthread_mutex_unlock(&sh->mu);
        struct cask_rec r;
        if (mapped != NULL && cask_vmap_copy(hb, mapped, CASK_REC_HDR + klen) &&
            cask_rec_decode(hb, UINT32_MAX, &r) && r.klen == klen &&
            r.cas == cas) {
            rc = 0;
            decoded = true;
        } else {
            /* Not the header the entry names: the file was cut short
             * under the mapping (the rest of its last page reads as
             * zeros) or damaged; the pread says which. */
            rc = cask_seg_pread(s, off, CASK_REC_HDR + klen, hb);
        }
        pthread_mutex_lock(&sh->mu);
        if (--s->readers == 0 && s->retired) {
            cask_seg_close(&s);
        }
    }
    bool same = true;
    struct cask_rec hr;
    if (rc == 0 && !decoded &&
        (!cask_rec_decode(hb, UINT32_MAX, &hr) || hr.klen != klen)) {
        /* no record's header (zeros where a file was cut short and
         * grown again): unreadable, not another key's */
        rc = CASK_ECORRUPT;
    }
    if (rc != 0) {
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: read key at %" PRIu32 ": %s", sh->idx, off,
                  cask_strerror(rc));
    } else {
        same = memcmp(hb + CASK_REC_HDR, kc->key, klen) == 0;
    }
    kc->seen[kc->nseen].cas = cas;
    kc->seen[kc->nseen].same = same;
    kc->nseen++;
}

/* The keydir entry of key, or NULL. The keydir keeps no keys: candidates
 * are checked against the key in their records, read with mu released
 * (so this may release and retake mu; callers look up first thing), and
 * through the segment's mapping when mapped (a writer's lookup). */
static struct cask_kd_entry *
find_entry(struct cask_shard *sh, uint64_t h, const void *key, size_t klen,
           bool mapped)
{
    struct kcheck kc = {.key = key, .mapped = mapped};
    for (;;) {
        kc.want = NULL;
        struct cask_kd_entry *e =
                cask_kd_find_if(sh->kd, h, klen, kcheck_match, &kc);
        if (e != NULL || kc.want == NULL) {
            return e;
        }
        if (kc.nseen == KC_SEEN) {
            /* Many keys sharing these hash bits: check under mu. */
            return cask_kd_find(sh->kd, h, key, klen);
        }
        kcheck_read(sh, &kc, klen);
    }
}

/* The live entry for key, or NULL with *gone saying why. When raw is not
 * NULL it gets the keydir entry whether live or not (what a write must
 * overwrite), so a writer probes the keydir once, and its key checks read
 * through the mapping (find_entry). May release and retake mu. */
static struct cask_kd_entry *
lookup(struct cask_shard *sh, uint64_t h, const void *key, size_t klen,
       int *gone, struct cask_kd_entry **raw)
{
    struct cask *c = sh->store;
    struct cask_kd_entry *e = find_entry(sh, h, key, klen, raw != NULL);
    /* Always consult the flush point, even for a missing key: a delayed
     * flush that came due must become a threshold before this operation
     * takes a cas, or the item it writes would fall under it. */
    int64_t now = cask_now(c);
    uint64_t flush_cas = cask_flush_point(c, now);
    if (raw != NULL) {
        *raw = e;
    }
    *gone = CASK_GONE_ABSENT;
    if (e == NULL) {
        return NULL;
    }
    int st = entry_state(e, now, flush_cas);
    if (st != CASK_GONE_ABSENT) {
        *gone = st;
        return NULL;
    }
    return e;
}

static void
fill_item(struct cask_item *it, const struct cask_kd_entry *e, int64_t now)
{
    if (it == NULL) {
        return;
    }
    it->flags = e->flags;
    it->exp_abs_s = e->exp;
    it->cas = cask_kd_cas(e);
    it->vlen = e->vlen;
    it->fetched = e->fetched;
    it->atime_s = cask_at_time(e->at, now);
    it->gone = CASK_GONE_ABSENT;
    it->arith_made = CASK_ARITH_REWRITTEN;
    it->arith_exp_was_abs_s = 0;
}

/* A read of e at now (memcached's do_item_bump without its LRU): the first
 * since a write sets the fetched bit, later ones the access time. Each
 * field is written only when it changes, so hot keys' entries stay clean
 * in the cache. */
static void
bump(struct cask_kd_entry *e, int64_t now)
{
    if (!e->fetched) {
        e->fetched = 1;
        return;
    }
    uint16_t at = cask_at_stamp(now);
    if (e->at != at) {
        e->at = at;
    }
}

/* Values from this size on are read straight into the buffer handed out
 * (header and key into a stack buffer, one preadv): no copy of the value
 * inside the process; the checksum covers both parts. */
#define SPLIT_READ_MIN 4096u

/* A value read that failed with rc: logged unless EAGAIN (a try without
 * waiting, cask_io_nowait, that found the record not cached). Returns rc. */
static int
read_failed(struct cask_shard *sh, const struct cask_segment *s, uint32_t off,
            int rc)
{
    if (rc != EAGAIN) {
        cask_logf(sh->store, CASK_LOG_ERROR,
                  "shard %u: read segment %08x at %" PRIu32 ": %s", sh->idx,
                  s->id, off, strerror(rc));
    }
    return rc;
}

/* A record that fails its checks: logged. Returns CASK_ECORRUPT. */
static int
corrupt(struct cask_shard *sh, const struct cask_segment *s, uint32_t off)
{
    cask_logf(sh->store, CASK_LOG_ERROR,
              "shard %u: corrupt record in segment %08x at %" PRIu32, sh->idx,
              s->id, off);
    return CASK_ECORRUPT;
}

/* The header and key of key's record at off of s, checked against what the
 * keydir says (no checksum). Returns 0, KEY_OTHER, CASK_ECORRUPT or an
 * errno. */
static int
read_head(struct cask_shard *sh, struct cask_segment *s, uint32_t off,
          const void *key, size_t klen, uint32_t vlen, const char *head)
{
    struct cask_rec r;
    if (!cask_rec_decode(head, UINT32_MAX, &r) || r.type != CASK_REC_PUT ||
        r.klen != klen || r.vlen != vlen) {
        return corrupt(sh, s, off);
    }
    if (memcmp(head + CASK_REC_HDR, key, klen) != 0) {
        return KEY_OTHER;
    }
    return 0;
}

/* Check a record read in two parts: head (header and key) and its value
 * buf[0..vlen). The checksum first: a damaged record is corrupt, whatever
 * key its header names; then a sound record of a key sharing the hash
 * bits is KEY_OTHER. */
static int
check_split(struct cask_shard *sh, struct cask_segment *s, uint32_t off,
            const void *key, size_t klen, uint32_t vlen, const char *head,
            const char *buf)
{
    return cask_rec_verify2(head, CASK_REC_HDR + klen, buf, vlen)
                   ? read_head(sh, s, off, key, klen, vlen, head)
                   : corrupt(sh, s, off);
}

/* read_value_at for a large value. */
static int
read_large_value_at(struct cask_shard *sh, struct cask_segment *s, uint32_t off,
                    const void *key, size_t klen, uint32_t vlen, char **val)
{
    char head[CASK_REC_HDR + CASK_KEY_MAX];
    size_t hlen = CASK_REC_HDR + klen;
    if (hlen > sizeof(head)) {
        return CASK_EBADKEY; /* keys are checked long before this */
    }
    char *buf = malloc((size_t)vlen + 1);
    if (buf == NULL) {
        return ENOMEM;
    }
    int rc = cask_seg_pread2(s, off, head, hlen, buf, vlen);
    if (rc == 0) {
        rc = check_split(sh, s, off, key, klen, vlen, head, buf);
    } else {
        read_failed(sh, s, off, rc);
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[vlen] = '\0';
    *val = buf;
    return 0;
}

/* How a get reads a large value (cask_verify.h), decided under mu before
 * the read and settled under mu after it. */
struct vplan {
    bool on;        /* a large value, in a segment that can be stamped */
    bool trust;     /* its entry is verified: the hash may be skipped */
    uint64_t stamp; /* the segment's change time when decided */
    bool fast;      /* out: served without the hash */
    /* Set when the try's cachestat (worth_trying) just found the record's
     * pages so: read_trusted takes that instead of asking again. */
    bool probed;
    enum cask_verify_pages pages;
};

/* Under mu, before the value of e (in s) is read with mu released. */
static void
plan_read(struct cask_shard *sh, struct cask_segment *s,
          const struct cask_kd_entry *e, struct vplan *p)
{
    memset(p, 0, sizeof(*p));
    if (e->vlen < CASK_VERIFY_MIN || s->is_output || s->retired ||
        !cask_verify_available()) {
        return;
    }
    if (s->changed) {
        cask_verify_forget(sh, s);
    }
    if (!s->has_checked) {
        /* no marks yet, so no stamp kept: the read that may set the
         * first one needs the file's state from before it */
        s->ctime_ns = cask_verify_ctime(s->fd);
    }
    p->on = true;
    p->trust = e->checked && s->has_checked;
    p->stamp = s->ctime_ns;
    if (p->trust) {
        cask_vmap_open(s, sh->store->opt.segment_size);
    }
}

/* Under mu, after the read (rc its result), s still pinned: mark e (if it
 * still names the record at off with that cas) verified when the read
 * checked the record and the file did not change meanwhile; notice a
 * change by someone else. */
static void
settle_read(struct cask_shard *sh, struct cask_segment *s,
            struct cask_kd_entry *e, uint32_t off, uint64_t cas,
            const struct vplan *p, int rc)
{
    if (!p->on || p->fast || s->retired) {
        return;
    }
    uint64_t now = cask_verify_ctime(s->fd);
    if (s->has_checked && now != s->ctime_ns && !sh->rolling && !s->extending) {
        s->changed = true; /* our writes restamp it under mu */
    }
    if (s->changed) {
        cask_verify_forget(sh, s);
        return;
    }
    if (rc != 0 || now != p->stamp || e->seg != s->slot || e->off != off ||
        cask_kd_cas(e) != cas) {
        return;
    }
    e->checked = 1;
    if (!s->has_checked) {
        s->has_checked = true;
        s->ctime_ns = now;
    }
}

/* A record just written by us holds the bytes that were hashed: mark its
 * entry verified (mu held). */
static void
mark_written(struct cask_shard *sh, struct cask_kd_entry *e)
{
    struct cask_segment *s = sh->segs[e->seg];
    if (e->vlen < CASK_VERIFY_MIN || s->is_output || !cask_verify_available()) {
        return;
    }
    if (s->changed) {
        cask_verify_forget(sh, s);
    }
    if (!s->has_checked) {
        s->has_checked = true;
        s->ctime_ns = cask_verify_ctime(s->fd);
    }
    e->checked = 1;
}

/* The fast path of a verified large value (p->trust), mu released and s
 * pinned: when every page of the record is cached and the file still has
 * the stamp p took, read the header and key (from
 * the segment's mapping when it has one), and hand the value out as a
 * reference (ref not NULL: s stays pinned for it; ptr set when mapped) or
 * a copy, without the hash. Returns 0 with p->fast set, 1 when the checks
 * fail (read it the checked way), KEY_OTHER, CASK_ECORRUPT or an errno. */
static int
read_trusted(struct cask_shard *sh, struct cask_segment *s, uint32_t off,
             const void *key, size_t klen, uint32_t vlen, char **val,
             struct cask_vref *ref, struct vplan *p)
{
    char head[CASK_REC_HDR + CASK_KEY_MAX];
    size_t hlen = CASK_REC_HDR + klen;
    enum cask_verify_pages pages =
            p->probed ? p->pages : cask_verify_pages(s->fd, off, hlen + vlen);
    if (pages == CASK_VERIFY_OUT) {
        return 1;
    }
    /* On every get: a write by another process whose pages are clean
     * again (written back, or written around the page cache and read
     * back) shows only in the change time. */
    if (cask_verify_ctime(s->fd) != p->stamp) {
        return 1;
    }
    char *buf = NULL;
    int rc;
    const char *mapped = ref != NULL && !cask_io_reads_replaced()
                                 ? cask_vmap_at(s, off, hlen + vlen)
                                 : NULL;
    if (mapped != NULL) {
        /* cached a moment ago: no system call for the header; a page
         * that could not be had after all goes the checked way, whose
         * pread says what is wrong */
        if (!cask_vmap_copy(head, mapped, hlen)) {
            return 1;
        }
        rc = 0;
    } else if (ref != NULL) {
        rc = cask_seg_pread(s, off, hlen, head);
    } else {
        buf = malloc((size_t)vlen + 1);
        if (buf == NULL) {
            return ENOMEM;
        }
        rc = cask_seg_pread2(s, off, head, hlen, buf, vlen);
    }
    if (rc != 0) {
        free(buf);
        return read_failed(sh, s, off, rc);
    }
    rc = read_head(sh, s, off, key, klen, vlen, head);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    p->fast = true;
    atomic_fetch_add_explicit(&sh->unchecked_reads, 1, memory_order_relaxed);
    if (ref != NULL) {
        ref->fd = s->fd;
        ref->off = (uint64_t)off + hlen;
        ref->len = vlen;
        ref->ptr = mapped != NULL ? mapped + hlen : NULL;
        ref->sh = sh;
        ref->seg = s;
        atomic_fetch_add_explicit(&sh->value_refs, 1, memory_order_relaxed);
        return 0;
    }
    buf[vlen] = '\0';
    *val = buf;
    return 0;
}

/* The caller's buffer that this thread's small value reads go into
 * instead of a malloc'd one, set for one get only (cask_shard_scratch). */
static _Thread_local char *scratch_buf;
static _Thread_local size_t scratch_cap;

void
cask_shard_scratch(char *buf, size_t cap)
{
    scratch_buf = buf;
    scratch_cap = buf != NULL ? cap : 0;
}

/* Read and check the record of key at off of s (vlen value bytes) and hand
 * its value out in a malloc'd buffer with a NUL after it (the scratch
 * buffer instead when one is set and the record fits), or, with p and
 * ref not NULL, as a reference into the file (cask_vref; only a verified
 * value, see read_trusted). The record must be flushed (or mu held, for a
 * compaction output's buffered tail). A sound record of another key is
 * KEY_OTHER (the keydir keeps no keys: see first_candidate). */
static int
read_value_at(struct cask_shard *sh, struct cask_segment *s, uint32_t off,
              const void *key, size_t klen, uint32_t vlen, char **val,
              struct cask_vref *ref, struct vplan *p)
{
    if (p != NULL && p->trust) {
        int rc = read_trusted(sh, s, off, key, klen, vlen, val, ref, p);
        if (rc != 1) {
            return rc;
        }
    }
    if (vlen >= SPLIT_READ_MIN) {
        return read_large_value_at(sh, s, off, key, klen, vlen, val);
    }
    size_t len = cask_rec_len(klen, vlen);
    bool own = len + 1 > scratch_cap;
    char *buf = own ? malloc(len + 1) : scratch_buf;
    if (buf == NULL) {
        return ENOMEM;
    }
    int rc = cask_seg_pread(s, off, len, buf);
    if (rc == 0) {
        rc = cask_rec_verify(buf, len) /* as in read_large_value_at */
                     ? read_head(sh, s, off, key, klen, vlen, buf)
                     : corrupt(sh, s, off);
    } else {
        read_failed(sh, s, off, rc);
    }
    if (rc != 0) {
        if (own) {
            free(buf);
        }
        return rc;
    }
    memmove(buf, buf + CASK_REC_HDR + klen, vlen);
    buf[vlen] = '\0';
    *val = buf;
    return 0;
}

/* ---- the value cache (cask_vcache.h) ---------------------------------- */

/* A shard's value cache by default may take 1/VC_SHARE of the shard's
 * part of the memory budget, and VC_MAX at most (also without a budget). */
#define VC_SHARE 4u
#define VC_MAX   (4u * 1024 * 1024)

static size_t
vc_cap(const struct cask *c)
{
    if (c->opt.value_cache >= 0) {
        return (size_t)((uint64_t)c->opt.value_cache / c->nshards);
    }
    uint64_t cap = c->opt.mem_limit != 0
                           ? c->opt.mem_limit / c->nshards / VC_SHARE
                           : VC_MAX;
    return cap > VC_MAX ? VC_MAX : (size_t)cap;
}

/* Bring the store's vc_bytes up to date with this shard's cache (mu). */
static void
vc_account(struct cask_shard *sh)
{
    size_t now = cask_vcache_bytes(&sh->vc);
    if (now != sh->vc_counted) {
        /* modulo 2^64: a smaller cache subtracts */
        atomic_fetch_add(&sh->store->vc_bytes,
                         (uint64_t)now - (uint64_t)sh->vc_counted);
        sh->vc_counted = now;
    }
}

/* Whether the memory budget leaves more bytes (mu): the store's keydirs,
 * buffers and caches within mem_limit, and this shard's within its share
 * of it. */
static bool
vc_fits(const struct cask_shard *sh, size_t more)
{
    const struct cask *c = sh->store;
    if (c->opt.mem_limit == 0) {
        return true;
    }
    uint64_t used = atomic_load(&c->kd_bytes) + atomic_load(&c->buf_bytes) +
                    atomic_load(&c->vc_bytes);
    uint64_t held = cask_kd_bytes(sh->kd) + sh->buf_counted + sh->vc_counted;
    return used + more <= c->opt.mem_limit &&
           held + more <= c->opt.mem_limit / c->nshards;
}

/* The cache takes only memory the keys do not use (vc_fits), and gives it
 * back when they need it. */
void
cask_shard_vc_yield(struct cask_shard *sh, size_t cost)
{
    if (sh->vc_counted != 0 && !vc_fits(sh, cost)) {
        cask_vcache_deinit(&sh->vc);
        vc_account(sh);
    }
}

/* A get's value from the cache (mu held, the live entry found naming the
 * record at off of s with snap's cas): into the scratch buffer or a
 * malloc'd one, as read_value_at would hand it out. False: not cached
 * (or no memory), read it. Not while reads go through replaced
 * operations: tests see every read then. */
static bool
vc_serve(struct cask_shard *sh, uint64_t h, const struct cask_segment *s,
         uint32_t off, const struct cask_item *snap, const void *key,
         size_t klen, char **val)
{
    if (snap->vlen > CASK_VCACHE_VMAX || cask_io_reads_replaced()) {
        return false;
    }
    const char *v = cask_vcache_find(&sh->vc, h, s->id, off, snap->cas, key,
                                     klen, snap->vlen);
    if (v == NULL) {
        return false;
    }
    bool own = (size_t)snap->vlen + 1 > scratch_cap;
    char *buf = own ? malloc((size_t)snap->vlen + 1) : scratch_buf;
    if (buf == NULL) {
        return false;
    }
    memcpy(buf, v, snap->vlen);
    buf[snap->vlen] = '\0';
    *val = buf;
    return true;
}

/* A value just read and checked (read_value_at) for the record at off of
 * segment seg_id: keep it in the cache (mu held). */
static void
vc_keep(struct cask_shard *sh, uint64_t h, uint32_t seg_id, uint32_t off,
        const struct cask_item *snap, const void *key, size_t klen,
        const char *val)
{
    if (snap->vlen > CASK_VCACHE_VMAX || sh->vc.cap == 0 ||
        cask_io_reads_replaced()) {
        return;
    }
    size_t need = cask_vcache_need(&sh->vc, klen, snap->vlen);
    bool grow_ok = need == 0 || vc_fits(sh, need);
    if (cask_vcache_fill(&sh->vc, h, seg_id, off, snap->cas, key, klen, val,
                         snap->vlen, grow_ok)) {
        vc_account(sh);
    }
}

/* A record found by a careful lookup (its key checked) holds another key
 * when read again: it cannot have changed, so the disk did. */
static int
other_key(struct cask_shard *sh, uint32_t seg_id, uint32_t off)
{
    cask_logf(sh->store, CASK_LOG_ERROR,
              "shard %u: record in segment %08x at %" PRIu32
              " holds another key",
              sh->idx, seg_id, off);
    return CASK_ECORRUPT;
}

/* Read and check the value of e, the entry of key (mu held). */
static int
read_value(struct cask_shard *sh, const struct cask_kd_entry *e,
           const void *key, char **val)
{
    int rc = read_value_at(sh, sh->segs[e->seg], e->off, key, e->klen, e->vlen,
                           val, NULL, NULL);
    return rc == KEY_OTHER ? other_key(sh, sh->segs[e->seg]->id, e->off) : rc;
}

/* A value read for a read-modify-write operation (append, prepend, incr,
 * decr, gat) with the shard mutex released. */
struct readahead {
    bool have;
    uint64_t cas; /* the record it was read for: cas names a value */
    int rc;
    char *val;
};

/* The value of the live entry e (mu held) in *val (malloc'd, the caller's).
 * When ra does not already hold it, it is read with mu released (segment
 * pinned) into ra and RETRY returned: the operation starts over from its
 * lookup and finds it here, if the entry still has that cas. */
static int
value_for(struct cask_shard *sh, const struct cask_kd_entry *e, const void *key,
          struct readahead *ra, char **val)
{
    uint64_t cas = cask_kd_cas(e);
    if (ra->have && ra->cas == cas) {
        ra->have = false;
        if (ra->rc != 0) {
            return ra->rc;
        }
        *val = ra->val;
        ra->val = NULL;
        return 0;
    }
    struct cask_segment *s = sh->segs[e->seg];
    uint32_t off = e->off;
    if (off + cask_rec_len(e->klen, e->vlen) > s->flushed) {
        return read_value(sh, e, key,
                          val); /* in a compaction output's buffer */
    }
    size_t klen = e->klen;
    uint32_t vlen = e->vlen;
    free(ra->val);
    ra->val = NULL;
    s->readers++;
    pthread_mutex_unlock(&sh->mu);
    ra->rc = read_value_at(sh, s, off, key, klen, vlen, &ra->val, NULL, NULL);
    if (ra->rc == KEY_OTHER) {
        ra->rc = other_key(sh, s->id, off);
    }
    pthread_mutex_lock(&sh->mu);
    if (--s->readers == 0 && s->retired) {
        cask_seg_close(&s);
    }
    ra->have = true;
    ra->cas = cas;
    return RETRY;
}

/* Bring the store's keydir byte count up to date with this shard's keydir
 * (mu held; a keydir never gives memory back while open). */
static void
kd_account(struct cask_shard *sh)
{
    size_t now = cask_kd_bytes(sh->kd);
    if (now != sh->kd_counted) {
        atomic_fetch_add(&sh->store->kd_bytes, now - sh->kd_counted);
        sh->kd_counted = now;
    }
}

/* Write a put record for key and index it. old is the current entry for the
 * key (live or not) or NULL. On success *indexed (when not NULL) is the
 * entry that now points at the record. */
static int
put(struct cask_shard *sh, uint64_t h, struct cask_kd_entry *old,
    const void *key, size_t klen, uint64_t cas, uint32_t flags,
    int64_t exp_abs_s, const void *v1, size_t l1, const void *v2, size_t l2,
    struct cask_kd_entry **indexed)
{
    struct cask_rec r = {
            .seq = cas,
            .cas = cas,
            .exp_abs_s = exp_abs_s,
            .vlen = (uint32_t)(l1 + l2),
            .flags = flags,
            .klen = (uint8_t)klen,
            .type = CASK_REC_PUT,
    };
    uint16_t slot;
    uint32_t off;
    struct cask_kd_entry *e = old;

    /* Wait for an evictor that is behind a disk limit, then room (either
     * may release mu), so that no entry for a record not yet written is
     * ever visible to compaction or readers. */
    int rc = cask_evict_disk_admit(sh);
    if (rc != 0) {
        return RETRY;
    }
    rc = cask_log_make_room(sh, cask_rec_len(klen, l1 + l2), false);
    if (rc != 0) {
        return rc;
    }
    if (e == NULL) {
        /* A new key within the budget (checked against the sum of all
         * shards without their locks: concurrent inserts in other shards
         * can pass it by one growth step each). */
        if (sh->store->opt.mem_limit != 0) {
            /* also without a cost: the policy may start an eviction */
            rc = cask_evict_admit(sh, cask_kd_insert_cost(sh->kd, h, klen));
            if (rc != 0) {
                return rc == CASK_EVICT_RETRY ? RETRY : rc;
            }
        }
        /* Index first so an out-of-memory keydir writes nothing. */
        e = cask_kd_insert(sh->kd, h, key, klen);
        if (e == NULL) {
            return ENOMEM;
        }
        kd_account(sh);
    }
    rc = cask_log_append(sh, &r, key, v1, l1, v2, l2, &slot, &off);
    if (rc != 0) {
        if (old == NULL) {
            cask_kd_remove(sh->kd, h, e);
        }
        return rc;
    }
    cask_log_undo_note(sh, h, e->off != 0 ? e : NULL, off);
    cask_segtab_index_put(sh, e, &r, slot, off);
    mark_written(sh, e);
    if (indexed != NULL) {
        *indexed = e;
    }
    return 0;
}

/* ---- operations -------------------------------------------------------- */

/* lookup() for a reader: on a miss, *it (if not NULL) is cleared and says
 * why the key is gone. Shard mutex held. */
static struct cask_kd_entry *
lookup_read(struct cask_shard *sh, uint64_t h, const void *key, size_t klen,
            struct cask_item *it)
{
    int gone;
    struct cask_kd_entry *e = lookup(sh, h, key, klen, &gone, NULL);

    if (e == NULL && it != NULL) {
        memset(it, 0, sizeof(*it));
        it->gone = gone;
    }
    return e;
}

static bool
any_written(void *arg, const struct cask_kd_entry *e, const void *key,
            size_t klen)
{
    (void)arg;
    (void)key;
    (void)klen;
    return e->off != 0; /* inserted, its record not yet appended: skip */
}

/* A get reads the whole record anyway, and the record holds the key, so it
 * may take the first entry whose hash bits agree and let the value read
 * check the key, instead of reading the key first (find_entry). Says
 * FC_NONE when no entry shares the hash bits (a certain miss; *it says so),
 * FC_LIVE with *ep when the first one is live, FC_UNSURE otherwise: then
 * the careful lookup() decides. Shard mutex held. */
enum { FC_NONE, FC_LIVE, FC_UNSURE };

static int
first_candidate(struct cask_shard *sh, uint64_t h, size_t klen,
                struct cask_item *it, struct cask_kd_entry **ep)
{
    struct cask *c = sh->store;
    struct cask_kd_entry *e =
            cask_kd_find_if(sh->kd, h, klen, any_written, NULL);
    /* Always consult the flush point, as lookup() does. */
    int64_t now = cask_now(c);
    uint64_t flush_cas = cask_flush_point(c, now);
    if (e == NULL) {
        if (it != NULL) {
            memset(it, 0, sizeof(*it));
            it->gone = CASK_GONE_ABSENT;
        }
        return FC_NONE;
    }
    if (entry_state(e, now, flush_cas) != CASK_GONE_ABSENT) {
        return FC_UNSURE;
    }
    *ep = e;
    return FC_LIVE;
}

/* shard_get found the record of a split get (sp) and pinned its segment;
 * mu released. Hands the read to make out (cask_split.h). */
static int
split_out(struct cask_shard *sh, struct cask_segment *s,
          struct cask_kd_entry *e, uint32_t off, const struct cask_item *snap,
          const struct vplan *p, struct cask_split *sp)
{
    sp->it = *snap;
    sp->val = sp->head_only ? NULL : malloc((size_t)snap->vlen + 1);
    if (sp->val == NULL && !sp->head_only) {
        pthread_mutex_lock(&sh->mu);
        if (--s->readers == 0 && s->retired) {
            cask_seg_close(&s);
        }
        pthread_mutex_unlock(&sh->mu);
        return ENOMEM;
    }
    sp->fd = s->fd;
    sp->off = off;
    sp->hlen = CASK_REC_HDR + sp->klen;
    sp->vlen = sp->head_only ? 0 : snap->vlen;
    sp->sh = sh;
    sp->seg = s;
    sp->e = e;
    sp->rec_off = off;
    sp->plan_on = p->on;
    sp->plan_stamp = p->stamp;
    return CASK_SPLIT_READ;
}

/* This thread's recent tries without waiting: while more than one in 8
 * of a window missed the page cache, worth_trying asks cachestat first. */
#define NOWAIT_WINDOW 256u
static _Thread_local struct {
    unsigned tries, misses;
    bool check;
} nowait_recent;

/* Whether a get's try without waiting (cask_io_nowait) is worth making:
 * a RWF_NOWAIT read of pages not cached still starts their read-ahead on
 * the calling thread (page allocation, memory cgroup charge, the I/O
 * submitted), most of a cold read's CPU, and one device notification per
 * read. While this thread's tries often miss, and where cachestat (Linux
 * 6.5) says some page of the record is not cached, the try is skipped and
 * the read that follows (an io_uring batch, under one block plug, or an I/O
 * thread) starts it. While they rarely miss no cachestat is spent. The
 * probe also serves the ring's choice of a direct read (cask_direct.h).
 * A record whose pages are marked cold (read direct since a probe found
 * them evicted) is neither probed nor tried, nor counted as a try: the
 * tries left decide whether probes are worth their system call. */
enum try_verdict {
    TRY_READ, /* try it */
    TRY_SKIP, /* a probe says some page is not cached */
    TRY_COLD, /* its pages are marked cold */
};

static enum try_verdict
worth_trying(struct cask_segment *s, uint32_t off, size_t len, struct vplan *p)
{
    if (cask_direct_cold(s, off, len)) {
        return TRY_COLD;
    }
    if (!nowait_recent.check || !cask_verify_available()) {
        return TRY_READ;
    }
    enum cask_verify_pages pages = cask_direct_pages(s, off, len);
    if (p != NULL) {
        /* the same range read_trusted checks: one cachestat, not two */
        p->probed = true;
        p->pages = pages;
    }
    return pages != CASK_VERIFY_OUT ? TRY_READ : TRY_SKIP;
}

/* A try without waiting missed the page cache (or was skipped) or not. */
static void
nowait_note(bool missed)
{
    nowait_recent.tries++;
    nowait_recent.misses += missed;
    if (nowait_recent.tries == NOWAIT_WINDOW) {
        nowait_recent.check = nowait_recent.misses * 8 > NOWAIT_WINDOW;
        nowait_recent.tries = 0;
        nowait_recent.misses = 0;
    }
}

/* The header and key of key's record at off of s (vlen value bytes),
 * checked against the keydir (read_head): what a request that needs the
 * item but not its value reads (touch, mg without v), a page where the
 * whole record could be a megabyte. Only what the page cache holds when
 * nowait (else EAGAIN). mu held when the record is in a compaction
 * output's buffer, else released with s pinned. */
static int
read_head_at(struct cask_shard *sh, struct cask_segment *s, uint32_t off,
             const void *key, size_t klen, uint32_t vlen, bool nowait)
{
    char head[CASK_REC_HDR + CASK_KEY_MAX];
    size_t hlen = CASK_REC_HDR + klen;
    enum try_verdict tv = nowait ? worth_trying(s, off, hlen, NULL) : TRY_READ;
    if (tv != TRY_READ) {
        if (tv == TRY_SKIP) {
            nowait_note(true);
        }
        return EAGAIN;
    }
    cask_io_nowait(nowait);
    int rc = cask_seg_pread(s, off, hlen, head);
    cask_io_nowait(false);
    if (nowait) {
        nowait_note(rc == EAGAIN);
    }
    if (rc != 0) {
        return read_failed(sh, s, off, rc);
    }
    return read_head(sh, s, off, key, klen, vlen, head);
}

/* An answer that appends nothing (a miss, NOT_STORED, EXISTS, a value
 * refused) rests on the key's records, and some may still wait in the
 * append buffer, staged by this or another thread: they go to the kernel
 * first (cask_log_settle). When that write failed they are gone and the
 * keydir is back to what the disk has: RETRY, decide again. A write's
 * answer needs none of this: its own record follows them in the buffer,
 * or they are written before it, so it fails with them. tk: a modifying
 * operation's ticket (NULL for reads): under --sync=always its answer
 * also waits for the commit of the records it may rest on (cask_log_rely;
 * a read may return what is not durable yet, as memcached's do, but
 * NOT_STORED or NOT_FOUND after a write whose commit then fails would
 * state what never was). mu held. */
static int
answer(struct cask_shard *sh, uint64_t h, int rc, struct cask_ticket *tk)
{
    switch (rc) {
    case CASK_ENOTFOUND:
    case CASK_EEXISTS:
    case CASK_ENOTSTORED:
    case CASK_ENONNUMERIC:
        if (cask_log_settle(sh, h) == RETRY) {
            return RETRY;
        }
        if (tk != NULL) {
            cask_log_rely(sh, tk);
        }
        return rc;
    case CASK_ETOOBIG:
        return cask_log_settle(sh, h) == RETRY ? RETRY : rc;
    default:
        return rc;
    }
}

/* A modifying operation's status rc and ticket: its wait for the commit
 * (deferred or blocking), for a write or for an answer that rests on
 * records not committed yet (answer). */
static int
finish(struct cask_shard *sh, const struct cask_ticket *tk, int rc)
{
    if (rc != 0 && tk->epoch == 0) {
        return rc;
    }
    int frc = cask_commit_finish(sh->store, tk);
    return frc != 0 ? frc : rc;
}

/* A get. sp not NULL: a split get (cask_split.h) whose value read, when
 * one is needed, is handed out instead of made. head: read the record's
 * header and key only, to check that it is key's (val NULL, or a split
 * get with head_only; nothing in *val). */
static int
shard_get(struct cask_shard *sh, uint64_t h, const void *key, size_t klen,
          struct cask_item *it, char **val, struct cask_vref *ref, bool fetch,
          bool nowait, bool head, struct cask_split *sp)
{
    struct cask_item snap;
    /* no read to check the key with, or a split get's second try */
    bool careful = (val == NULL && !head) || (sp != NULL && sp->careful);
    unsigned settle_tries = 0;
    int rc;
    /* Before the mutex: the lines the lookup needs first load while it is
     * taken (its cache line often comes from another worker's core). */
    if (val != NULL && !head) {
        cask_shard_prefetch(sh, h); /* the value cache may answer */
    } else {
        cask_kd_prefetch(sh->kd, h);
    }
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        struct cask_kd_entry *e = NULL;
        if (!careful) {
            int fc = first_candidate(sh, h, klen, it, &e);
            if (fc == FC_NONE) {
                if (answer(sh, h, CASK_ENOTFOUND, NULL) == RETRY) {
                    continue;
                }
                pthread_mutex_unlock(&sh->mu);
                return CASK_ENOTFOUND;
            }
            careful = fc == FC_UNSURE;
        }
        if (careful) {
            e = lookup_read(sh, h, key, klen, it);
            if (e == NULL) {
                if (answer(sh, h, CASK_ENOTFOUND, NULL) == RETRY) {
                    continue;
                }
                pthread_mutex_unlock(&sh->mu);
                return CASK_ENOTFOUND;
            }
        }
        int64_t now = cask_now(sh->store);
        fill_item(&snap, e, now);
        if (fetch) {
            bump(e, now); /* a hit (a candidate of another key is rare) */
        }
        struct cask_segment *s = sh->segs[e->seg];
        uint32_t seg_id = s->id;
        uint32_t off = e->off;
        /* the record's end: past s->flushed it is still in a buffer */
        uint64_t end = off + cask_rec_len(klen, snap.vlen);
        rc = 0;
        if (s == sh->active && end > (uint64_t)s->flushed) {
            /* Staged by a write batch (cask_batch.c): served only once
             * the kernel has it, as its writer's reply is. A failed write
             * dropped it: what is left is what the disk has. */
            rc = cask_log_write_out(sh);
            if (rc != 0) {
                if (settle_tries++ < SETTLE_TRIES) {
                    continue;
                }
                break;
            }
        }
        if (head && sp == NULL) {
            bool buffered = end > (uint64_t)s->flushed;
            if (!buffered) {
                s->readers++;
                pthread_mutex_unlock(&sh->mu);
            }
            rc = read_head_at(sh, s, off, key, klen, snap.vlen,
                              nowait && !buffered);
            if (!buffered) {
                pthread_mutex_lock(&sh->mu);
                if (--s->readers == 0 && s->retired) {
                    cask_seg_close(&s);
                }
            }
        } else if (val != NULL && end > (uint64_t)s->flushed) {
            /* In a compaction output's buffer: copy it under the mutex. */
            rc = read_value_at(sh, s, off, key, klen, snap.vlen, val, NULL,
                               NULL);
        } else if (val != NULL && !head &&
                   vc_serve(sh, h, s, off, &snap, key, klen, val)) {
            rc = 0; /* a recent read's value, no read */
        } else if (val != NULL) {
            /* Written records never change, and a pinned segment is not
             * freed: read without holding up the shard's other requests. */
            struct vplan plan;
            if (head) {
                memset(&plan, 0, sizeof(plan)); /* no value: no checksum */
            } else {
                plan_read(sh, s, e, &plan);
            }
            s->readers++;
            pthread_mutex_unlock(&sh->mu);
            if (sp != NULL) {
                return split_out(sh, s, e, off, &snap, &plan, sp);
            }
            enum try_verdict tv =
                    nowait ? worth_trying(s, off, end - off, &plan) : TRY_READ;
            if (tv != TRY_READ) {
                rc = EAGAIN;
            } else {
                cask_io_nowait(nowait);
                rc = read_value_at(sh, s, off, key, klen, snap.vlen, val, ref,
                                   &plan);
                cask_io_nowait(false);
            }
            if (nowait && tv != TRY_COLD) {
                nowait_note(rc == EAGAIN);
            }
            if (rc == 0 && ref != NULL && ref->seg != NULL) {
                /* handed out: the pin goes with the reference */
                if (it != NULL) {
                    *it = snap;
                }
                return 0;
            }
            pthread_mutex_lock(&sh->mu);
            settle_read(sh, s, e, off, snap.cas, &plan, rc);
            if (rc == 0 && !head) {
                vc_keep(sh, h, seg_id, off, &snap, key, klen, *val);
            }
            if (--s->readers == 0 && s->retired) {
                cask_seg_close(&s);
            }
        }
        if (rc == KEY_OTHER && !careful) {
            careful = true; /* another key's record: look it up properly */
            continue;
        }
        if (rc == KEY_OTHER) {
            rc = other_key(sh, seg_id, off);
        }
        break;
    }
    pthread_mutex_unlock(&sh->mu);
    if ((rc == 0 || rc == EAGAIN) && it != NULL) {
        *it = snap; /* EAGAIN: what the item was before this try */
    }
    return rc;
}

void
cask_shard_prefetch(struct cask_shard *sh, uint64_t h)
{
    cask_kd_prefetch(sh->kd, h);
    cask_vcache_prefetch(&sh->vc, h);
}

int
cask_shard_get(struct cask_shard *sh, uint64_t h, const void *key, size_t klen,
               struct cask_item *it, char **val, bool fetch)
{
    return shard_get(sh, h, key, klen, it, val, NULL, fetch, false, false,
                     NULL);
}

int
cask_shard_get_nowait(struct cask_shard *sh, uint64_t h, const void *key,
                      size_t klen, struct cask_item *it, char **val, bool fetch)
{
    return shard_get(sh, h, key, klen, it, val, NULL, fetch, true, false, NULL);
}

int
cask_shard_get_ref(struct cask_shard *sh, uint64_t h, const void *key,
                   size_t klen, struct cask_item *it, char **val,
                   struct cask_vref *ref, bool fetch)
{
    return shard_get(sh, h, key, klen, it, val, ref, fetch, false, false, NULL);
}

int
cask_shard_get_nowait_ref(struct cask_shard *sh, uint64_t h, const void *key,
                          size_t klen, struct cask_item *it, char **val,
                          struct cask_vref *ref, bool fetch)
{
    return shard_get(sh, h, key, klen, it, val, ref, fetch, true, false, NULL);
}

int
cask_shard_head_nowait(struct cask_shard *sh, uint64_t h, const void *key,
                       size_t klen, struct cask_item *it, bool fetch)
{
    return shard_get(sh, h, key, klen, it, NULL, NULL, fetch, true, true, NULL);
}

int
cask_shard_get_begin(struct cask_shard *sh, uint64_t h, struct cask_split *sp,
                     char **val)
{
    sp->seg = NULL;
    sp->val = NULL;
    return shard_get(sh, h, sp->key, sp->klen, &sp->it, val, NULL, sp->fetch,
                     false, sp->head_only, sp);
}

int
cask_shard_get_end(struct cask_split *sp, int io_rc, char **val)
{
    struct cask_shard *sh = sp->sh;
    struct cask_segment *s = sp->seg;
    uint32_t off = sp->rec_off;
    uint32_t seg_id = s->id;
    int rc = io_rc;

    if (rc == 0 && sp->head_only) {
        rc = read_head(sh, s, off, sp->key, sp->klen, sp->it.vlen, sp->head);
    } else if (rc == 0) {
        rc = check_split(sh, s, off, sp->key, sp->klen, sp->vlen, sp->head,
                         sp->val);
    } else {
        read_failed(sh, s, off, rc);
    }
    struct vplan plan = {.on = sp->plan_on, .stamp = sp->plan_stamp};
    /* as a synchronous get does: the next get of a small value is served
     * without a read, whether this one went through the page cache or
     * around it (a direct read) */
    uint64_t h = rc == 0 && !sp->head_only && sp->vlen <= CASK_VCACHE_VMAX
                         ? cask_kd_hash(sp->key, sp->klen)
                         : 0;
    pthread_mutex_lock(&sh->mu);
    settle_read(sh, s, sp->e, off, sp->it.cas, &plan, rc);
    if (rc == 0 && !sp->head_only && sp->vlen <= CASK_VCACHE_VMAX) {
        vc_keep(sh, h, seg_id, off, &sp->it, sp->key, sp->klen, sp->val);
    }
    if (--s->readers == 0 && s->retired) {
        cask_seg_close(&s);
    }
    pthread_mutex_unlock(&sh->mu);
    sp->seg = NULL;
    if (rc == KEY_OTHER) {
        rc = sp->careful ? other_key(sh, seg_id, off) : CASK_SPLIT_AGAIN;
    }
    if (rc != 0) {
        free(sp->val);
        sp->val = NULL;
        return rc;
    }
    if (sp->head_only) {
        *val = NULL;
        return CASK_OK;
    }
    sp->val[sp->vlen] = '\0';
    *val = sp->val;
    sp->val = NULL;
    return CASK_OK;
}

void
cask_shard_vref_release(struct cask_vref *ref)
{
    struct cask_shard *sh = ref->sh;
    struct cask_segment *s = ref->seg;
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&sh->mu);
    if (--s->readers == 0 && s->retired) {
        cask_seg_close(&s);
    }
    pthread_mutex_unlock(&sh->mu);
    memset(ref, 0, sizeof(*ref));
    ref->fd = -1;
}

static bool
cas_is(void *arg, const struct cask_kd_entry *e, const void *key, size_t klen)
{
    (void)key;
    (void)klen;
    return e->off != 0 && cask_kd_cas(e) == *(const uint64_t *)arg;
}

/* The live entry of the item with cas (a cas is never reused, and the
 * caller read that item's record, whose key it checked: no key read
 * here). CASK_EEXISTS when no entry with these hash bits has it (the key
 * was replaced or deleted since), CASK_ENOTFOUND with it->gone when the
 * item expired or was flushed. Shard mutex held. */
static int
lookup_cas(struct cask_shard *sh, uint64_t h, size_t klen, uint64_t cas,
           struct cask_item *it, struct cask_kd_entry **ep)
{
    struct cask *c = sh->store;
    /* consult the flush point first, as lookup() does */
    int64_t now = cask_now(c);
    uint64_t flush_cas = cask_flush_point(c, now);
    struct cask_kd_entry *e = cask_kd_find_if(sh->kd, h, klen, cas_is, &cas);
    if (e == NULL) {
        return CASK_EEXISTS;
    }
    int st = entry_state(e, now, flush_cas);
    if (st != CASK_GONE_ABSENT) {
        if (it != NULL) {
            memset(it, 0, sizeof(*it));
            it->gone = st;
        }
        return CASK_ENOTFOUND;
    }
    *ep = e;
    return 0;
}

static int
touch_locked(struct cask_shard *sh, uint64_t h, const void *key, size_t klen,
             int64_t exp_abs_s, uint64_t cas_in, struct cask_item *it,
             char **val, bool fetch, struct readahead *ra,
             struct cask_ticket *tk)
{
    int rc;
    char *v = NULL;
    struct cask_kd_entry *e;
    if (cas_in != 0) {
        rc = lookup_cas(sh, h, klen, cas_in, it, &e);
        if (rc != 0) {
            goto out;
        }
    } else {
        e = lookup_read(sh, h, key, klen, it);
        if (e == NULL) {
            rc = CASK_ENOTFOUND;
            goto out;
        }
    }
    if (val != NULL) {
        rc = value_for(sh, e, key, ra, &v);
        if (rc != 0) {
            goto out;
        }
    }
    /* A touch record: key, the item's cas (memcached keeps it on touch),
     * the new expiry, and a fresh seq that orders it after the put and
     * any earlier touch. The value stays where it is. */
    uint64_t seq;
    rc = cask_cas_next(sh->store, &seq);
    if (rc != 0) {
        goto out;
    }
    struct cask_rec r = {
            .seq = seq,
            .cas = cask_kd_cas(e),
            .exp_abs_s = exp_abs_s,
            .klen = (uint8_t)klen,
            .type = CASK_REC_TOUCH,
    };
    uint16_t slot;
    uint32_t off;
    rc = cask_log_append(sh, &r, key, NULL, 0, NULL, 0, &slot, &off);
    if (rc != 0) {
        goto out;
    }
    cask_log_undo_note(sh, h, e, off);
    e->exp = cask_kd_exp32(exp_abs_s);
    if (e->exp != 0) {
        sh->crawl_exp = true;
    }
    int64_t now = cask_now(sh->store);
    fill_item(it, e, now); /* it->fetched: read before this touch */
    if (fetch) {
        bump(e, now);
    }
    cask_log_join(sh, tk);
    if (val != NULL) {
        *val = v;
        v = NULL;
    }
out:
    free(v);
    return answer(sh, h, rc, tk);
}

int
cask_shard_touch(struct cask_shard *sh, uint64_t h, const void *key,
                 size_t klen, int64_t exp_abs_s, uint64_t cas_in,
                 struct cask_item *it, char **val, bool fetch)
{
    int rc;
    struct readahead ra = {0};
    struct cask_ticket tk = {0};
    pthread_mutex_lock(&sh->mu);
    do {
        rc = touch_locked(sh, h, key, klen, exp_abs_s, cas_in, it, val, fetch,
                          &ra, &tk);
    } while (rc == RETRY);
    pthread_mutex_unlock(&sh->mu);
    free(ra.val);
    if (rc == 0) {
        rc = cask_commit_finish(sh->store, &tk);
        if (rc != 0 && val != NULL) {
            free(*val);
            *val = NULL;
        }
    } else {
        rc = finish(sh, &tk, rc);
    }
    return rc;
}

static int
store_locked(struct cask_shard *sh, uint64_t h, enum cask_store_mode mode,
             const void *key, size_t klen, const void *val, size_t vlen,
             uint32_t flags, int64_t exp_abs_s, uint64_t cas_in,
             uint64_t *cas_out, struct readahead *ra, struct cask_ticket *tk)
{
    struct cask *c = sh->store;
    int gone, rc;
    char *old = NULL;

    struct cask_kd_entry *raw;
    struct cask_kd_entry *e = lookup(sh, h, key, klen, &gone, &raw);
    if (cas_in != 0) {
        if (e == NULL) {
            rc = CASK_ENOTFOUND;
            goto out;
        }
        if (cask_kd_cas(e) != cas_in) {
            rc = CASK_EEXISTS;
            goto out;
        }
    }
    switch (mode) {
    case CASK_ADD:
        if (e != NULL) {
            rc = CASK_ENOTSTORED;
            goto out;
        }
        break;
    case CASK_REPLACE:
    case CASK_APPEND:
    case CASK_PREPEND:
        if (e == NULL) {
            rc = CASK_ENOTSTORED;
            goto out;
        }
        break;
    case CASK_SET:
        break;
    default:
        rc = CASK_EINVAL;
        goto out;
    }
    uint64_t cas;
    rc = cask_cas_next(c, &cas);
    if (rc != 0) {
        goto out;
    }
    if (mode == CASK_APPEND || mode == CASK_PREPEND) {
        if ((uint64_t)e->vlen + vlen > c->opt.value_max) {
            rc = CASK_ETOOBIG;
            goto out;
        }
        rc = value_for(sh, e, key, ra, &old);
        if (rc != 0) {
            goto out;
        }
        size_t ol = e->vlen;
        int64_t exp = e->exp;
        if (mode == CASK_APPEND) {
            rc = put(sh, h, raw, key, klen, cas, e->flags, exp, old, ol, val,
                     vlen, NULL);
        } else {
            rc = put(sh, h, raw, key, klen, cas, e->flags, exp, val, vlen, old,
                     ol, NULL);
        }
    } else {
        rc = put(sh, h, raw, key, klen, cas, flags, exp_abs_s, val, vlen, NULL,
                 0, NULL);
    }
    if (rc != 0) {
        goto out;
    }
    if (gone == CASK_GONE_EXPIRED || gone == CASK_GONE_FLUSHED) {
        /* memcached's: stored in an expired item's room, counted in the
         * class of the new item (only a set or add gets here: the others
         * need a live item) */
        sh->reclaimed++;
        cask_shard_cls(sh, klen, (uint32_t)vlen, flags)->reclaimed++;
    }
    cask_log_join(sh, tk);
    if (cas_out != NULL) {
        *cas_out = cas;
    }
out:
    free(old);
    return answer(sh, h, rc, tk);
}

int
cask_shard_store(struct cask_shard *sh, uint64_t h, enum cask_store_mode mode,
                 const void *key, size_t klen, const void *val, size_t vlen,
                 uint32_t flags, int64_t exp_abs_s, uint64_t cas_in,
                 uint64_t *cas_out)
{
    int rc;
    struct readahead ra = {0};
    struct cask_ticket tk = {0};
    pthread_mutex_lock(&sh->mu);
    do {
        rc = store_locked(sh, h, mode, key, klen, val, vlen, flags, exp_abs_s,
                          cas_in, cas_out, &ra, &tk);
    } while (rc == RETRY);
    pthread_mutex_unlock(&sh->mu);
    free(ra.val);
    return finish(sh, &tk, rc);
}

static int
delete_locked(struct cask_shard *sh, uint64_t h, const void *key, size_t klen,
              uint64_t cas_in, struct cask_item *it, struct cask_ticket *tk)
{
    int gone, rc;
    struct cask_kd_entry *e = lookup(sh, h, key, klen, &gone, NULL);
    if (e == NULL) {
        rc = CASK_ENOTFOUND;
        goto out;
    }
    if (cas_in != 0 && cask_kd_cas(e) != cas_in) {
        rc = CASK_EEXISTS;
        goto out;
    }
    uint64_t cas;
    rc = cask_cas_next(sh->store, &cas);
    if (rc != 0) {
        goto out;
    }
    struct cask_rec r = {
            .seq = cas,
            .cas = cas,
            .klen = (uint8_t)klen,
            .type = CASK_REC_TOMB,
    };
    uint16_t slot;
    uint32_t off;
    rc = cask_log_append(sh, &r, key, NULL, 0, NULL, 0, &slot, &off);
    if (rc != 0) {
        goto out;
    }
    cask_log_undo_note(sh, h, e, off);
    if (it != NULL) {
        fill_item(it, e, cask_now(sh->store));
    }
    sh->segs[e->seg]->live_bytes -= cask_segtab_entry_len(e);
    cask_kd_remove(sh->kd, h, e);
    cask_log_join(sh, tk);
out:
    return answer(sh, h, rc, tk);
}

int
cask_shard_forget(struct cask_shard *sh, uint64_t h, struct cask_kd_entry *e,
                  const char *key, bool tomb)
{
    if (tomb) {
        uint64_t seq;
        int rc = cask_cas_next(sh->store, &seq);
        if (rc != 0) {
            return rc;
        }
        struct cask_rec r = {
                .seq = seq,
                .cas = cask_kd_cas(e),
                .klen = (uint8_t)e->klen,
                .type = CASK_REC_TOMB,
        };
        uint16_t slot;
        uint32_t off;
        rc = cask_log_append(sh, &r, key, NULL, 0, NULL, 0, &slot, &off);
        if (rc != 0) {
            return rc == RETRY ? EAGAIN : rc;
        }
    }
    sh->segs[e->seg]->live_bytes -= cask_segtab_entry_len(e);
    cask_kd_remove(sh->kd, h, e);
    return 0;
}

int
cask_shard_delete(struct cask_shard *sh, uint64_t h, const void *key,
                  size_t klen, uint64_t cas_in, struct cask_item *it)
{
    int rc;
    struct cask_ticket tk = {0};
    pthread_mutex_lock(&sh->mu);
    do {
        rc = delete_locked(sh, h, key, klen, cas_in, it, &tk);
    } while (rc == RETRY);
    pthread_mutex_unlock(&sh->mu);
    return finish(sh, &tk, rc);
}

/* memcached's rule (strtoull, then a check on what follows): optional
 * leading white space, an optional sign, at least one digit, no overflow,
 * and then white space or the end of the value (a NUL ends it too);
 * whatever comes after that white space is ignored. A '-' is accepted only
 * when the negated result does not look negative as a signed number ("-0"
 * is 0). A number that looks negative as a signed one (2^63 and up) is
 * refused when a '-' follows anywhere before a NUL: memcached looks for a
 * sign with strchr over the whole value ("18446744073709551609 -5" is not
 * a number there; past the value it reads on into whatever memory follows
 * the item, which has no counterpart here). */
static bool
is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' ||
           ch == '\r';
}

static bool
parse_u64(const char *s, size_t n, uint64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;
    while (i < n && is_space(s[i])) {
        i++;
    }
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        neg = s[i] == '-';
        i++;
    }
    size_t start = i;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (i == start) {
        return false;
    }
    if (i < n && !is_space(s[i]) && s[i] != '\0') {
        return false;
    }
    if (neg) {
        v = (uint64_t)0 - v;
        if ((int64_t)v < 0) {
            return false;
        }
    }
    if ((int64_t)v < 0) {
        const char *nul = memchr(s, '\0', n);
        size_t len = nul != NULL ? (size_t)(nul - s) : n;

        if (memchr(s, '-', len) != NULL) {
            return false;
        }
    }
    *out = v;
    return true;
}

static int
arith_locked(struct cask_shard *sh, uint64_t h, const void *key, size_t klen,
             const struct cask_arith *a, uint64_t *value_out,
             struct cask_item *it, struct readahead *ra, struct cask_ticket *tk)
{
    struct cask *c = sh->store;
    int gone, rc;
    char *old = NULL;
    char num[24];
    uint64_t v;
    int made = CASK_ARITH_CREATED;
    int64_t exp_was = 0;

    struct cask_kd_entry *raw;
    struct cask_kd_entry *e = lookup(sh, h, key, klen, &gone, &raw);
    if (e == NULL) {
        if (!a->vivify || a->cas_in != 0) {
            rc = CASK_ENOTFOUND;
            goto out;
        }
        v = a->initial;
        int n = snprintf(num, sizeof(num), "%" PRIu64, v);
        uint64_t cas;
        rc = cask_cas_next(c, &cas);
        if (rc != 0) {
            goto out;
        }
        rc = put(sh, h, raw, key, klen, cas, 0, a->vivify_exp_abs_s, num,
                 (size_t)n, NULL, 0, &e);
        if (rc != 0) {
            goto out;
        }
        goto done;
    }
    /* memcached refuses an empty value before it compares the cas */
    if (e->vlen == 0) {
        rc = CASK_ENONNUMERIC;
        goto out;
    }
    if (a->cas_in != 0 && cask_kd_cas(e) != a->cas_in) {
        rc = CASK_EEXISTS;
        goto out;
    }
    rc = value_for(sh, e, key, ra, &old);
    if (rc != 0) {
        goto out;
    }
    uint64_t cur;
    if (!parse_u64(old, e->vlen, &cur)) {
        rc = CASK_ENONNUMERIC;
        goto out;
    }
    if (a->incr) {
        v = cur + a->delta; /* wraps at 2^64, as memcached */
    } else {
        v = a->delta > cur ? 0 : cur - a->delta;
    }
    int n = snprintf(num, sizeof(num), "%" PRIu64, v);
    size_t nlen = (size_t)n;
    char *pad = NULL;
    if (nlen < e->vlen) {
        pad = malloc(e->vlen);
        if (pad == NULL) {
            rc = ENOMEM;
            goto out;
        }
        memcpy(pad, num, nlen);
        memset(pad + nlen, ' ', e->vlen - nlen);
        nlen = e->vlen;
    }
    /* A number that fits is rewritten in place by memcached (do_add_delta):
     * the item keeps its fetched bit, and its access time becomes now. A
     * longer one is a new item, not fetched yet, as put leaves it. */
    bool in_place = nlen == e->vlen;
    bool was_fetched = e->fetched;
    exp_was = e->exp;
    made = in_place ? CASK_ARITH_REWRITTEN : CASK_ARITH_GREW;
    uint64_t cas;
    rc = cask_cas_next(c, &cas);
    if (rc != 0) {
        free(pad);
        goto out;
    }
    rc = put(sh, h, raw, key, klen, cas, e->flags,
             in_place && a->set_exp ? a->exp_abs_s : e->exp,
             pad != NULL ? pad : num, nlen, NULL, 0, &e);
    free(pad);
    if (rc != 0) {
        goto out;
    }
    if (in_place && was_fetched) {
        e->fetched = 1;
    }
done:
    fill_item(it, e, cask_now(c));
    if (it != NULL) {
        it->arith_made = made;
        it->arith_exp_was_abs_s = exp_was;
    }
    cask_log_join(sh, tk);
    if (value_out != NULL) {
        *value_out = v;
    }
out:
    free(old);
    return answer(sh, h, rc, tk);
}

int
cask_shard_arith(struct cask_shard *sh, uint64_t h, const void *key,
                 size_t klen, const struct cask_arith *a, uint64_t *value_out,
                 struct cask_item *it)
{
    int rc;
    struct readahead ra = {0};
    struct cask_ticket tk = {0};
    pthread_mutex_lock(&sh->mu);
    do {
        rc = arith_locked(sh, h, key, klen, a, value_out, it, &ra, &tk);
    } while (rc == RETRY);
    pthread_mutex_unlock(&sh->mu);
    free(ra.val);
    return finish(sh, &tk, rc);
}

int
cask_shard_open(struct cask_shard **out, struct cask *c, unsigned idx)
{
    struct cask_shard *sh = calloc(1, sizeof(*sh));
    int rc;
    if (sh == NULL) {
        return ENOMEM;
    }
    sh->store = c;
    sh->idx = idx;
    sh->next_id = 1;
    pthread_mutex_init(&sh->mu, NULL);
    pthread_mutex_init(&sh->maint_mu, NULL);
    pthread_cond_init(&sh->sync_cv, NULL);
    snprintf(sh->dir, sizeof(sh->dir), "%s/shard-%03u", c->dir, idx);
    if (!c->opt.inspect && mkdir(sh->dir, 0755) != 0 && errno != EEXIST) {
        rc = errno;
        cask_logf(c, CASK_LOG_ERROR, "mkdir %s: %s", sh->dir, strerror(rc));
        goto fail;
    }
    cask_vcache_init(&sh->vc, vc_cap(c));
    sh->kd = cask_kd_create_keyless(kd_match, sh);
    if (sh->kd == NULL) {
        rc = ENOMEM;
        goto fail;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = cask_shard_recover(sh);
    if (rc != 0) {
        goto fail;
    }
    kd_account(sh); /* recovery is not held to mem_limit: nothing is lost */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sh->recovery_s = (double)(t1.tv_sec - t0.tv_sec) +
                     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    *out = sh;
    return 0;
fail:
    cask_shard_close(&sh);
    return rc;
}

void
cask_shard_write_hints(struct cask_shard *sh)
{
    pthread_mutex_lock(&sh->maint_mu);
    for (uint32_t i = 0;; i++) {
        pthread_mutex_lock(&sh->mu);
        if (i >= sh->nslots) {
            pthread_mutex_unlock(&sh->mu);
            break;
        }
        struct cask_segment *s = sh->segs[i];
        /* A hint only for a segment synced since its roll-over: one
         * whose sync is pending or failed may lose records it lists. */
        bool need = s != NULL && s != sh->active && !s->is_output &&
                    !s->sync_pending && !s->hint_tried &&
                    s->hint_len != s->flushed;
        uint64_t stamp = 0;
        if (need) {
            s->hint_tried = true;
            /* Large values checked once per load skip their hash here too,
             * while a get would (cask_hint_write_fresh). */
            if (s->has_checked && !s->changed && !s->change_told &&
                !s->is_output) {
                stamp = s->ctime_ns;
            }
        }
        pthread_mutex_unlock(&sh->mu);
        /* Closed segments are immutable and only freed under maint_mu, so
         * the scan runs without the shard mutex. */
        if (need) {
            uint64_t cov, bytes;
            bool heads;
            int rc = cask_hint_write_fresh(sh->dir, s, CASK_REC_VMAX, stamp,
                                           &cov, &bytes, &heads);
            if (rc != 0) {
                cask_logf(sh->store, CASK_LOG_WARN,
                          "shard %u: write hint %08x: %s", sh->idx, s->id,
                          strerror(rc));
            } else {
                pthread_mutex_lock(&sh->mu);
                s->hint_len = cov;
                s->hint_bytes = bytes;
                pthread_mutex_unlock(&sh->mu);
            }
        }
    }
    /* Segments started since the manifest was last written (roll-overs)
     * are listed on disk here, off the write path. A failure is retried
     * only once the list changes again. */
    int mrc = cask_manifest_flush(sh->manifest);
    if (mrc != 0) {
        cask_logf(sh->store, CASK_LOG_WARN, "shard %u: write manifest: %s",
                  sh->idx, strerror(mrc));
    }
    pthread_mutex_unlock(&sh->maint_mu);
}

/* At close, with the background threads stopped: run the rewrite of
 * the segments queued for one (a cut found by the final sync or by the
 * close itself, cask_resync.c), which no maintenance pass will serve any
 * more. Without it a restart would read the cut segment as it is: the
 * keys whose newest record was cut off would show an older value, and
 * keys deleted there would be back. Returns 0, or an error when a
 * segment stays queued (logged with what its records past the cut were:
 * lost, and the keys they held may show older values after a restart;
 * for a failed sync, what that leaves at risk, which under the journal is
 * nothing acknowledged: the next start replays the journal into it). The
 * store's commit thread is stopped by now (c->commit NULL): the rewrite
 * takes what its pages lost from the journal, as the maintenance thread's
 * would. */
static int
close_rewrite(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    if (sh->nresync == 0 || sh->latched) {
        return 0;
    }
    int rc = cask_shard_resync(sh);
    for (size_t i = 0; i < sh->nresync; i++) {
        struct cask_segment *s = NULL;
        for (uint32_t j = 0; j < sh->nslots && s == NULL; j++) {
            if (sh->segs[j] != NULL && sh->segs[j]->id == sh->resync_ids[i]) {
                s = sh->segs[j];
            }
        }
        struct stat st;
        uint64_t now =
                s != NULL && fstat(s->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        const char *why = rc != 0 ? cask_strerror(rc) : "still queued";
        if (s == NULL || now < s->flushed) {
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: close: segment %08x could not be rewritten "
                      "(%s): the records written to it past byte %" PRIu64
                      " (up to %" PRIu64 ") are lost, and after a restart the "
                      "keys they held may show older values and keys they "
                      "deleted may be back",
                      sh->idx, sh->resync_ids[i], why, now,
                      s != NULL ? s->flushed : 0);
        } else if (c->journal != NULL) {
            /* Its fdatasync failed: what was acknowledged is in the
             * journal's generation, kept until a rewrite is done. */
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: close: segment %08x, whose fdatasync "
                      "failed, could not be rewritten (%s): the next start "
                      "replays the commit journal into it, which holds every "
                      "write acknowledged since its last good sync, so "
                      "nothing acknowledged is lost while the journal's "
                      "files are intact; writes answered with errors stay "
                      "undone",
                      sh->idx, sh->resync_ids[i], why);
        } else if (c->opt.sync == CASK_SYNC_ALWAYS) {
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: close: segment %08x, whose fdatasync "
                      "failed, could not be rewritten (%s): every write "
                      "acknowledged in it was synced before its reply, so "
                      "nothing acknowledged is lost; writes answered with "
                      "errors stay undone",
                      sh->idx, sh->resync_ids[i], why);
        } else {
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: close: segment %08x, whose fdatasync "
                      "failed, could not be rewritten (%s): the writes made "
                      "to it since its last good sync are in the kernel but "
                      "not known to be on disk: a power loss before the "
                      "next start rewrites it may lose them (their keys "
                      "then show older values, deleted keys may be back)",
                      sh->idx, sh->resync_ids[i], why);
        }
    }
    return sh->nresync > 0 ? (rc != 0 ? rc : EIO) : 0;
}

int
cask_shard_close(struct cask_shard **shp)
{
    struct cask_shard *sh = *shp;
    if (sh == NULL) {
        return 0;
    }
    struct cask *c = sh->store;
    int err = 0;
    /* Closed segments whose sync a roll-over left to the sync thread
     * first: a failure queues the rewrite below. */
    pthread_mutex_lock(&sh->mu);
    cask_log_sync_rolled(sh);
    pthread_mutex_unlock(&sh->mu);
    if (sh->active != NULL) {
        struct cask_segment *a = sh->active;
        int rc = cask_log_write_out(sh);
        if (rc == 0 && cask_seg_map_cut(a) && !sh->latched &&
            !cask_resync_queued(sh, a->id)) {
            /* Another process cut it under its mapping, inside the page
             * the last copies went to (no fault told us): queued for the
             * rewrite as the sync's check queues it. */
            sh->segments_cut++;
            a->damaged = true;
            cask_resync_add(sh, a->id);
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: close: segment %08x is shorter than the "
                      "store extended it to (cut short by another process "
                      "under its mapping): records copied past the cut are "
                      "lost; what still reads back is rewritten to a new "
                      "segment",
                      sh->idx, a->id);
        }
        if (rc == 0) {
            err = close_rewrite(sh);
            a = sh->active; /* a new one when the rewrite rolled it */
        }
        if (rc == 0 && a != NULL) {
            /* to its records' end before the sync and the hint (its
             * reserve kept: see recover()) */
            rc = cask_seg_cut_ahead(a, true);
        }
        if (a == NULL) {
            /* nothing left to close (a rewrite that could not roll) */
        } else if (rc == 0 && !sh->failed &&
                   (sh->seg_seq < sh->app_seq ||
                    c->opt.sync != CASK_SYNC_ALWAYS)) {
            rc = cask_io_fdatasync(a->fd);
            sh->syncs++;
        }
        if (rc != 0) {
            cask_logf(c, CASK_LOG_ERROR, "shard %u: close seg %08x: %s",
                      sh->idx, a != NULL ? a->id : 0, strerror(rc));
            if (err == 0) {
                err = rc;
            }
        }
        /* From here on the active segment takes no appends: give it a hint
         * too, so the next start reads no segment in full. */
        sh->active = NULL; /* keeps its reserve: see recover() */
        cask_log_buf_account(sh);
        if (rc == 0 && !sh->failed) {
            cask_shard_write_hints(sh);
        }
    }
    cask_manifest_close(&sh->manifest);
    for (uint32_t i = 0; i < sh->nslots; i++) {
        cask_seg_close(&sh->segs[i]);
    }
    free(sh->segs);
    free(sh->scratch);
    free(sh->staged);
    free(sh->resync_ids);
    free(sh->unsynced);
    free(sh->app_off);
    if (sh->kd != NULL) {
        atomic_fetch_sub(&sh->store->kd_bytes, sh->kd_counted);
    }
    cask_kd_destroy(&sh->kd);
    cask_vcache_deinit(&sh->vc);
    vc_account(sh);
    pthread_mutex_destroy(&sh->mu);
    pthread_mutex_destroy(&sh->maint_mu);
    pthread_cond_destroy(&sh->sync_cv);
    free(sh);
    *shp = NULL;
    return err;
}

void
cask_shard_stats(struct cask_shard *sh, struct cask_stats *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&sh->mu);
    st->live_keys = cask_kd_count(sh->kd);
    st->keydir_bytes = cask_kd_bytes(sh->kd);
    st->buffer_bytes = sh->buf_counted;
    for (uint32_t i = 0; i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s == NULL) {
            continue;
        }
        st->segments++;
        st->live_bytes += s->live_bytes;
        st->dead_bytes += s->size - CASK_SEG_HDR - s->live_bytes;
        st->disk_bytes += s->size + s->hint_bytes;
    }
    st->compactions = sh->compactions;
    st->bytes_reclaimed = sh->bytes_reclaimed;
    st->syncs = sh->syncs;
    st->synced_writes = sh->synced_writes;
    st->write_errors = sh->write_errors;
    st->batch_records = sh->batch_records;
    st->batch_writes = sh->batch_writes;
    st->rolls_handed = sh->rolls_handed;
    st->reserves_handed = sh->reserves_handed;
    st->mapped_writes = sh->mapped_writes;
    st->records_recovered = sh->records_recovered;
    st->bytes_truncated = sh->bytes_truncated;
    st->bytes_damaged = sh->bytes_damaged;
    st->segments_missing = sh->segments_missing;
    st->records_missing = sh->records_missing;
    st->quarantined = sh->quarantined;
    st->records_lost = sh->records_lost;
    st->sync_failures = sh->sync_failures;
    st->sync_recoveries = sh->sync_recoveries;
    st->segments_cut = sh->segments_cut;
    st->unchecked_reads =
            atomic_load_explicit(&sh->unchecked_reads, memory_order_relaxed);
    st->value_refs =
            atomic_load_explicit(&sh->value_refs, memory_order_relaxed);
    st->value_cache_bytes = sh->vc_counted;
    st->value_cache_hits = sh->vc.hits;
    st->value_cache_fills = sh->vc.fills;
    st->recovery_s = sh->recovery_s;
    st->failed = sh->failed || sh->held; /* held: until the journal
                                          * recovers (cask_lost.c) */
    st->writes_undone = sh->lost_undone;
    st->keydir_slots = cask_kd_slots(sh->kd);
    st->crawls = sh->crawls;
    st->crawl_checked = sh->crawl_checked;
    cask_evict_stats(sh, st);
    pthread_mutex_unlock(&sh->mu);
}

/* ---- replication: applying a primary's records (cask_stream.c) --------- */

static int
apply_locked(struct cask_shard *sh, uint64_t h, const struct cask_rec *r,
             const char *key, const char *val)
{
    int gone;
    struct cask_kd_entry *raw;
    uint16_t slot;
    uint32_t off;

    (void)lookup(sh, h, key, r->klen, &gone, &raw);
    /* Room first (it may release mu: then look up again). */
    int rc = cask_log_make_room(sh, cask_rec_len(r->klen, r->vlen),
                                r->type == CASK_REC_TOMB);
    if (rc != 0) {
        return rc;
    }
    if (r->type == CASK_REC_PUT) {
        /* The primary's keydir had room for it: mem_limit is not applied
         * to a replica's copy. */
        struct cask_kd_entry *e = raw;
        if (e == NULL) {
            e = cask_kd_insert(sh->kd, h, key, r->klen);
            if (e == NULL) {
                return ENOMEM;
            }
            kd_account(sh);
        }
        rc = cask_log_append(sh, r, key, val, r->vlen, NULL, 0, &slot, &off);
        if (rc != 0) {
            if (raw == NULL) {
                cask_kd_remove(sh->kd, h, e);
            }
            return rc;
        }
        cask_segtab_index_put(sh, e, r, slot, off);
    } else {
        rc = cask_log_append(sh, r, key, NULL, 0, NULL, 0, &slot, &off);
        if (rc != 0) {
            return rc;
        }
        if (raw != NULL && r->type == CASK_REC_TOMB) {
            sh->segs[raw->seg]->live_bytes -= cask_segtab_entry_len(raw);
            cask_kd_remove(sh->kd, h, raw);
        } else if (raw != NULL && cask_kd_cas(raw) == r->cas) {
            raw->exp = cask_kd_exp32(r->exp_abs_s);
            if (raw->exp != 0) {
                sh->crawl_exp = true;
            }
        }
    }
    /* No sync per record, whatever --sync says: nobody is acknowledged
     * here, and the replica saves a position only after syncing the store
     * (cask_sync), so after a crash it applies again what was lost. */
    return 0;
}

int
cask_shard_apply(struct cask_shard *sh, uint64_t h, const struct cask_rec *r,
                 const char *key, const char *val)
{
    int rc;
    /* Whatever cas this replica hands out once promoted must be above the
     * primary's. Raised before taking mu: it may write the state file. */
    rc = cask_cas_observe(sh->store, r->cas > r->seq ? r->cas : r->seq);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&sh->mu);
    do {
        rc = apply_locked(sh, h, r, key, val);
    } while (rc == RETRY);
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

int
cask_shard_wipe(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    uint32_t *ids = NULL;
    size_t n = 0;
    int rc = 0;

    struct cask_keydir *kd = cask_kd_create_keyless(kd_match, sh);
    if (kd == NULL) {
        return ENOMEM;
    }
    pthread_mutex_lock(&sh->maint_mu);
    pthread_mutex_lock(&sh->mu);
    while (sh->rolling) {
        pthread_cond_wait(&sh->sync_cv, &sh->mu);
    }
    ids = malloc((sh->nslots ? sh->nslots : 1) * sizeof(*ids));
    if (ids == NULL) {
        rc = ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < sh->nslots; i++) {
        if (sh->segs[i] != NULL) {
            ids[n++] = sh->segs[i]->id;
        }
    }
    /* As a compaction commits: the manifest stops listing the segments,
     * then once the retired list is durable every segment in it is gone
     * for good, even if the unlinks below are cut short. */
    rc = cask_manifest_replace(sh->manifest, ids, n, NULL, 0);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR, "shard %u: wipe: write manifest: %s",
                  sh->idx, strerror(rc));
        goto out;
    }
    int dir_rc;
    rc = cask_retire_write(sh->dir, ids, n, &dir_rc);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR, "shard %u: wipe: write retired: %s",
                  sh->idx, strerror(rc));
        (void)cask_manifest_note(sh->manifest, ids, n); /* still there */
        goto out;
    }
    if (dir_rc != 0) {
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: wipe: fsync %s after writing retired: %s; done, "
                  "but a power loss may bring the segments back",
                  sh->idx, sh->dir, strerror(dir_rc));
    }
    for (uint32_t i = 0; i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s == NULL) {
            continue;
        }
        sh->segs[i] = NULL;
        cask_hint_remove(sh->dir, s->id);
        (void)cask_io_unlink(s->path);
        s->retired = true;
        if (s->readers == 0) {
            cask_seg_close(&s);
        }
    }
    cask_log_forget_rolled(sh); /* retired above: nothing left to sync */
    sh->active = NULL;
    cask_log_buf_account(sh);
    __atomic_store_n(&sh->synced_seq, sh->app_seq, __ATOMIC_RELEASE);
    /* staged records went with their segment: the wipe follows them */
    __atomic_store_n(&sh->written_seq, sh->app_seq, __ATOMIC_RELEASE);
    cask_log_staged_forget(sh);
    /* swapped, not replaced: cask_shard_prefetch reads sh->kd without mu */
    cask_kd_swap(sh->kd, kd);
    atomic_fetch_sub(&c->kd_bytes, sh->kd_counted);
    sh->kd_counted = 0;
    kd_account(sh);
    cask_vcache_deinit(&sh->vc); /* its records are gone */
    vc_account(sh);
    sh->tail.nchain = 0; /* positions in the old log are gone */
    (void)cask_fsync_dir(sh->dir);
out:
    pthread_mutex_unlock(&sh->mu);
    pthread_mutex_unlock(&sh->maint_mu);
    cask_kd_destroy(&kd);
    free(ids);
    return rc;
}
