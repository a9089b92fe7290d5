/* cask_journal.c - the shared commit journal of CASK_SYNC_ALWAYS: two
 * preallocated files used in turn, the frame queue the log fills, the
 * committer's batch write and sync, generation switches, and the replay
 * that recovery runs first. Format and protocol in storage/JOURNAL.md.
 *
 * Owns struct cask_journal (hung on the store) and the files
 * DIR/journal.0 and DIR/journal.1. Knows segment paths and the retired
 * file, never a shard's structures: checkpoints are driven by the
 * committer through the log. All file I/O goes through cask_io.
 */
#include "storage/cask_journal.h"

#include "storage/cask_io.h"
#include "storage/cask_newer.h"
#include "storage/cask_retire.h"
#include "storage/cask_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define JOURNAL_VERSION 1u
#define FRAME_MAGIC     0x464a4342u /* "BCJF" read as a little-endian u32 */
#define HDR_USED        40u         /* header bytes covered by its checksum */
#define ZERO_CHUNK      (1024u * 1024)
#define MIN_SIZE        (2u * CASK_JOURNAL_HDR)

static const char journal_magic[8] = {'B', 'C', 'S', 'K', 'J', 'N', 'L', '\n'};

struct cask_journal {
    struct cask *c;
    pthread_mutex_t mu; /* covers the queue: q, qlen, qcap, qseq, qlost,
                         * qframes */
    char *q;
    size_t qlen, qcap;
    uint64_t *qseq;
    bool qlost; /* a frame could not be queued: checkpoint instead */
    uint64_t qframes;
    int fd[2];
    uint64_t size[2];
    unsigned cur; /* file holding generation gen (mu; fixed while a
                   * batch is in flight) */
    uint64_t gen;
    uint64_t off; /* mu: where the next batch goes in fd[cur] */
    _Atomic bool failed;
    uint64_t half_gen; /* mu: generation whose half mark was reported */
    _Atomic uint64_t syncs, frames, checkpoints;
};

static void
put32(char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void
put64(char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint32_t
get32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t
get64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void
journal_path(char *out, size_t cap, const char *dir, unsigned i,
             const char *suffix)
{
    snprintf(out, cap, "%s/journal.%u%s", dir, i, suffix);
}

/* Header: magic, u32 version, u32 shards, u64 generation, u64 file size,
 * u64 XXH3 of the 32 bytes before it. */
static void
encode_header(char *h, unsigned nshards, uint64_t gen, uint64_t size)
{
    memset(h, 0, CASK_JOURNAL_HDR);
    memcpy(h, journal_magic, 8);
    put32(h + 8, JOURNAL_VERSION);
    put32(h + 12, nshards);
    put64(h + 16, gen);
    put64(h + 24, size);
    put64(h + 32, XXH3_64bits(h, 32));
}

/* The generation of a valid header for this store, else 0. */
static uint64_t
header_gen(const char *h, unsigned nshards)
{
    if (memcmp(h, journal_magic, 8) != 0 ||
        get64(h + 32) != XXH3_64bits(h, 32) ||
        get32(h + 8) != JOURNAL_VERSION || get32(h + 12) != nshards) {
        return 0;
    }
    return get64(h + 16);
}

/* The version of a whole header (magic, checksum) of a newer format than
 * this build's, else 0. Every later version keeps the magic, the version
 * at 8 and the checksum of bytes 0..32 at 32 (JOURNAL.md). */
static uint32_t
header_newer(const char *h)
{
    uint32_t v = get32(h + 8);
    return memcmp(h, journal_magic, 8) == 0 && v > JOURNAL_VERSION &&
                           get64(h + 32) == XXH3_64bits(h, 32)
                   ? v
                   : 0;
}

/* Frame: u64 XXH3 of bytes 8 .. end, u32 magic, u32 record length, u64
 * generation, u32 shard, u32 segment id, u32 offset, u32 reserved; then
 * the record. */
static void
seal_frame(char *f, uint64_t gen)
{
    put64(f + 16, gen);
    uint32_t len = get32(f + 12);
    put64(f, XXH3_64bits(f + 8, CASK_JOURNAL_FRAME_HDR - 8 + len));
}

/* ---- replay ---------------------------------------------------------- */

/* Segments the replay writes to, by shard and id: fd -1 = not present. */
struct seg_fd {
    unsigned shard;
    uint32_t id;
    int fd;
    char path[CASK_PATH_MAX];
};

struct replay {
    struct cask *c;
    bool dry; /* cask_journal_pending: read only, write nothing */
    struct seg_fd *segs;
    size_t nsegs, cap;
    uint32_t **retired; /* per shard: ids the retired file lists */
    size_t *nretired;
};

static void
load_retired(struct replay *rp, unsigned shard, const char *sdir)
{
    char path[CASK_PATH_MAX + sizeof(CASK_RETIRE_NAME) + 1];
    snprintf(path, sizeof(path), "%s/%s", sdir, CASK_RETIRE_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && st.st_size >= 16 && st.st_size < (1 << 24) &&
        (buf = malloc((size_t)st.st_size)) != NULL &&
        cask_io_pread_all(fd, buf, (size_t)st.st_size, 0) == 0 &&
        cask_retire_valid(buf, (size_t)st.st_size)) {
        uint32_t n = get32(buf + 12);
        rp->retired[shard] = malloc((n ? n : 1) * sizeof(uint32_t));
        if (rp->retired[shard] != NULL) {
            for (uint32_t i = 0; i < n; i++) {
                rp->retired[shard][i] = get32(buf + 16 + 4 * (size_t)i);
            }
            rp->nretired[shard] = n;
        }
    }
    free(buf);
    close(fd);
}

static bool
is_retired(const struct replay *rp, unsigned shard, uint32_t id)
{
    for (size_t i = 0; i < rp->nretired[shard]; i++) {
        if (rp->retired[shard][i] == id) {
            return true;
        }
    }
    return false;
}

/* The open segment for (shard, id), opened on first use; NULL on ENOMEM.
 * Its fd is -1 when the segment is gone or retired. */
static struct seg_fd *
seg_lookup(struct replay *rp, unsigned shard, uint32_t id)
{
    for (size_t i = rp->nsegs; i-- > 0;) {
        if (rp->segs[i].shard == shard && rp->segs[i].id == id) {
            return &rp->segs[i];
        }
    }
    if (rp->nsegs == rp->cap) {
        size_t cap = rp->cap ? rp->cap * 2 : 16;
        struct seg_fd *n = realloc(rp->segs, cap * sizeof(*n));
        if (n == NULL) {
            return NULL;
        }
        rp->segs = n;
        rp->cap = cap;
    }
    struct seg_fd *s = &rp->segs[rp->nsegs++];
    char sdir[CASK_PATH_MAX];
    snprintf(sdir, sizeof(sdir), "%s/shard-%03u", rp->c->dir, shard);
    if (rp->retired[shard] == NULL && rp->nretired[shard] == 0) {
        load_retired(rp, shard, sdir);
    }
    s->shard = shard;
    s->id = id;
    cask_seg_path(s->path, sizeof(s->path), sdir, id, "seg");
    /* Never O_CREAT: a segment that is not there was retired (segment
     * creation is durable before any record goes into it). */
    s->fd = is_retired(rp, shard, id)
                    ? -1
                    : open(s->path, (rp->dry ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    return s;
}

/* Make segment bytes [off, off+len) equal rec. 0 or an errno. */
static int
replay_frame(struct replay *rp, struct seg_fd *s, uint64_t off, const char *rec,
             size_t len, bool *wrote)
{
    struct stat st;
    *wrote = false;
    if (fstat(s->fd, &st) != 0) {
        return errno;
    }
    if ((uint64_t)st.st_size >= off + len) {
        char *cur = malloc(len);
        if (cur == NULL) {
            return ENOMEM;
        }
        int rc = cask_io_pread_all(s->fd, cur, len, (off_t)off);
        bool same = rc == 0 && memcmp(cur, rec, len) == 0;
        free(cur);
        if (rc != 0) {
            return rc;
        }
        if (same) {
            return 0;
        }
    } else if ((uint64_t)st.st_size < off && !rp->dry) {
        cask_logf(rp->c, CASK_LOG_WARN,
                  "journal replay: %s ends at %" PRIu64
                  " before a journaled record at %" PRIu64,
                  s->path, (uint64_t)st.st_size, off);
    }
    if (rp->dry) {
        *wrote = true; /* would be written */
        return 0;
    }
    int rc = cask_io_pwrite_all(s->fd, rec, len, (off_t)off);
    *wrote = rc == 0;
    return rc;
}

/* Read file i's header: its generation (0 = none valid) and size. */
static uint64_t
read_header(struct cask *c, int fd, uint64_t *size)
{
    char h[HDR_USED];
    struct stat st;
    *size = 0;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)MIN_SIZE ||
        cask_io_pread_all(fd, h, sizeof(h), 0) != 0) {
        return 0;
    }
    *size = (uint64_t)st.st_size;
    return header_gen(h, c->nshards);
}

/* cask_journal_replay, or with dry its count of what it would write. */
static int
replay(struct cask *c, struct cask_journal_replay_stats *st, bool dry)
{
    struct cask_journal_replay_stats local;
    struct replay rp = {.c = c, .dry = dry};
    char path[CASK_PATH_MAX];
    int fds[2] = {-1, -1};
    uint64_t gens[2] = {0, 0}, sizes[2] = {0, 0};
    char *buf = NULL;
    int rc = 0;

    if (st == NULL) {
        st = &local;
    }
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < 2; i++) {
        journal_path(path, sizeof(path), c->dir, i, "");
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0) {
            continue;
        }
        char h[HDR_USED];
        uint32_t v;
        if (cask_io_pread_all(fds[i], h, sizeof(h), 0) == 0 &&
            (v = header_newer(h)) != 0) {
            /* Its frames may follow rules this build does not know:
             * neither replayed nor removed, nor written over. */
            cask_logf(c, CASK_LOG_ERROR,
                      "%s was written by a newer bitcached (journal format "
                      "%u; this build reads up to %u): this build does not "
                      "open the store, and leaves the file as it is",
                      path, v, JOURNAL_VERSION);
            rc = CASK_ENEWER;
            goto out;
        }
        gens[i] = read_header(c, fds[i], &sizes[i]);
    }
    unsigned k = gens[1] > gens[0] ? 1 : 0;
    if (gens[k] == 0) {
        goto out; /* no journal, or no generation ever started */
    }
    st->generation = gens[k];
    rp.retired = calloc(c->nshards, sizeof(*rp.retired));
    rp.nretired = calloc(c->nshards, sizeof(*rp.nretired));
    buf = malloc(sizes[k]);
    if (buf == NULL || rp.retired == NULL || rp.nretired == NULL) {
        rc = ENOMEM;
        goto out;
    }
    rc = cask_io_pread_all(fds[k], buf, sizes[k], 0);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR, "journal replay: read journal.%u: %s", k,
                  strerror(rc));
        goto out;
    }
    uint64_t pos = CASK_JOURNAL_HDR;
    while (pos + CASK_JOURNAL_FRAME_HDR <= sizes[k]) {
        const char *f = buf + pos;
        uint32_t len = get32(f + 12);
        if (get32(f + 8) != FRAME_MAGIC || len == 0 ||
            len > sizes[k] - pos - CASK_JOURNAL_FRAME_HDR ||
            get64(f + 16) != gens[k] || get32(f + 24) >= c->nshards ||
            get64(f) != XXH3_64bits(f + 8, CASK_JOURNAL_FRAME_HDR - 8 + len)) {
            break; /* the end of the generation, or a torn batch */
        }
        st->frames++;
        struct seg_fd *s = seg_lookup(&rp, get32(f + 24), get32(f + 28));
        if (s == NULL) {
            rc = ENOMEM;
            goto out;
        }
        if (s->fd < 0) {
            st->frames_missing++;
        } else {
            bool wrote;
            rc = replay_frame(&rp, s, get32(f + 32), f + CASK_JOURNAL_FRAME_HDR,
                              len, &wrote);
            if (rc != 0) {
                cask_logf(c, CASK_LOG_ERROR, "journal replay: %s: %s", s->path,
                          strerror(rc));
                goto out;
            }
            if (wrote) {
                st->frames_written++;
                st->bytes_written += len;
            }
        }
        pos += CASK_JOURNAL_FRAME_HDR + len;
    }
    /* Every segment a frame named, rewritten or not: after a process
     * crash its bytes may be in the page cache only, and the next
     * generation no longer covers them. */
    for (size_t i = 0; i < rp.nsegs && !dry; i++) {
        if (rp.segs[i].fd >= 0) {
            rc = cask_io_fdatasync(rp.segs[i].fd);
            if (rc != 0) {
                cask_logf(c, CASK_LOG_ERROR, "journal replay: fdatasync %s: %s",
                          rp.segs[i].path, strerror(rc));
                goto out;
            }
        }
    }
    if (!dry && (st->frames_written > 0 || st->frames_missing > 0)) {
        cask_logf(c, CASK_LOG_WARN,
                  "journal replay (generation %" PRIu64 "): %" PRIu64
                  " frames, %" PRIu64 " restored into segments (%" PRIu64
                  " bytes), %" PRIu64 " for segments no longer present",
                  st->generation, st->frames, st->frames_written,
                  st->bytes_written, st->frames_missing);
    }
out:
    for (size_t i = 0; i < rp.nsegs; i++) {
        if (rp.segs[i].fd >= 0) {
            close(rp.segs[i].fd);
        }
    }
    free(rp.segs);
    if (rp.retired != NULL) {
        for (unsigned i = 0; i < c->nshards; i++) {
            free(rp.retired[i]);
        }
    }
    free(rp.retired);
    free(rp.nretired);
    free(buf);
    for (unsigned i = 0; i < 2; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    return rc;
}

int
cask_journal_replay(struct cask *c, struct cask_journal_replay_stats *st)
{
    return replay(c, st, false);
}

int
cask_journal_pending(struct cask *c, struct cask_journal_replay_stats *st)
{
    return replay(c, st, true);
}

uint64_t
cask_journal_disk_bytes(const char *dir, uint64_t size)
{
    char path[CASK_PATH_MAX];
    uint64_t n = 0;
    if (size == 0) {
        size = CASK_JOURNAL_DEFAULT_SIZE;
    }
    if (size < MIN_SIZE) {
        size = MIN_SIZE;
    }
    for (unsigned i = 0; i < 2; i++) {
        struct stat st;
        journal_path(path, sizeof(path), dir, i, "");
        /* As cask_journal_open: a file too short to use is made anew. */
        n += stat(path, &st) == 0 && (uint64_t)st.st_size >= MIN_SIZE
                     ? (uint64_t)st.st_size
                     : size;
    }
    return n;
}

int
cask_journal_remove(struct cask *c)
{
    char path[CASK_PATH_MAX];
    bool removed = false;
    for (unsigned i = 0; i < 2; i++) {
        journal_path(path, sizeof(path), c->dir, i, "");
        int rc = cask_io_unlink(path);
        if (rc == 0) {
            removed = true;
        } else if (rc != ENOENT) {
            return rc;
        }
    }
    return removed ? cask_fsync_dir(c->dir) : 0;
}

/* ---- open, queue, commit ---------------------------------------------- */

/* Create journal file i of size bytes, all zeros (written, so that the
 * blocks are allocated and initialised: a later write and fdatasync then
 * changes no metadata), by temp + fdatasync + rename + fsync dir. */
static int
create_file(struct cask *c, unsigned i, uint64_t size)
{
    char tmp[CASK_PATH_MAX], path[CASK_PATH_MAX];
    journal_path(tmp, sizeof(tmp), c->dir, i, ".tmp");
    journal_path(path, sizeof(path), c->dir, i, "");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return errno;
    }
    char *zero = calloc(1, ZERO_CHUNK);
    int rc = zero == NULL ? ENOMEM : 0;
    for (uint64_t at = 0; rc == 0 && at < size; at += ZERO_CHUNK) {
        size_t n = size - at < ZERO_CHUNK ? (size_t)(size - at) : ZERO_CHUNK;
        rc = cask_io_pwrite_all(fd, zero, n, (off_t)at);
    }
    free(zero);
    if (rc == 0) {
        rc = cask_io_fdatasync(fd);
    }
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = errno;
    }
    if (rc == 0) {
        rc = cask_fsync_dir(c->dir);
    }
    if (rc != 0) {
        (void)unlink(tmp);
    }
    return rc;
}

/* Start generation gen in file i: header written and synced. */
static int
start_generation(struct cask_journal *j, unsigned i, uint64_t gen)
{
    char h[CASK_JOURNAL_HDR];
    encode_header(h, j->c->nshards, gen, j->size[i]);
    int rc = cask_io_pwrite_all(j->fd[i], h, sizeof(h), 0);
    if (rc == 0) {
        rc = cask_io_fdatasync(j->fd[i]);
    }
    if (rc != 0) {
        cask_logf(j->c, CASK_LOG_ERROR,
                  "journal: start generation %" PRIu64 " in journal.%u: %s",
                  gen, i, strerror(rc));
        return rc;
    }
    j->cur = i;
    j->gen = gen;
    j->off = CASK_JOURNAL_HDR;
    return 0;
}

void
cask_journal_close(struct cask_journal **jp)
{
    struct cask_journal *j = *jp;
    if (j == NULL) {
        return;
    }
    for (unsigned i = 0; i < 2; i++) {
        if (j->fd[i] >= 0) {
            close(j->fd[i]);
        }
    }
    pthread_mutex_destroy(&j->mu);
    free(j->q);
    free(j->qseq);
    free(j);
    *jp = NULL;
}

int
cask_journal_open(struct cask *c, uint64_t size, struct cask_journal **out)
{
    int rc;
    uint64_t gens[2];
    char tmp[CASK_PATH_MAX];

    *out = NULL;
    if (size == 0) {
        size = CASK_JOURNAL_DEFAULT_SIZE;
    }
    if (size < MIN_SIZE) {
        size = MIN_SIZE;
    }
    struct cask_journal *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return ENOMEM;
    }
    j->c = c;
    j->fd[0] = j->fd[1] = -1;
    pthread_mutex_init(&j->mu, NULL);
    j->qseq = calloc(c->nshards, sizeof(*j->qseq));
    if (j->qseq == NULL) {
        rc = ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < 2; i++) {
        journal_path(tmp, sizeof(tmp), c->dir, i, ".tmp");
        (void)unlink(tmp); /* a creation cut short */
        journal_path(tmp, sizeof(tmp), c->dir, i, "");
        j->fd[i] = open(tmp, O_RDWR | O_CLOEXEC);
        gens[i] = 0;
        if (j->fd[i] >= 0) {
            gens[i] = read_header(c, j->fd[i], &j->size[i]);
        }
        if (j->fd[i] < 0 || j->size[i] < MIN_SIZE) {
            if (j->fd[i] >= 0) {
                close(j->fd[i]);
            }
            rc = create_file(c, i, size);
            if (rc == 0) {
                j->fd[i] = open(tmp, O_RDWR | O_CLOEXEC);
                rc = j->fd[i] < 0 ? errno : 0;
            }
            if (rc != 0) {
                cask_logf(c, CASK_LOG_ERROR, "journal: create %s: %s", tmp,
                          strerror(rc));
                goto fail;
            }
            j->size[i] = size;
            gens[i] = 0;
        }
    }
    /* The new generation goes into the file not holding the newest one:
     * until its header is durable, the newest stays replayable. */
    unsigned k = gens[1] > gens[0] ? 1 : 0;
    uint64_t gen = gens[k] + 1;
    rc = start_generation(j, gens[k] == 0 ? 0 : k ^ 1, gen);
    if (rc != 0) {
        goto fail;
    }
    *out = j;
    return 0;
fail:
    cask_journal_close(&j);
    return rc;
}

void
cask_journal_add(struct cask_journal *j, unsigned shard, uint32_t seg_id,
                 uint32_t off, const void *rec, size_t len, uint64_t seq)
{
    size_t need = CASK_JOURNAL_FRAME_HDR + len;
    pthread_mutex_lock(&j->mu);
    if (j->qlen + need > j->qcap) {
        size_t cap = j->qcap ? j->qcap : 64 * 1024;
        while (cap < j->qlen + need) {
            cap *= 2;
        }
        char *n = realloc(j->q, cap);
        if (n == NULL) {
            j->qlost = true; /* the next pass checkpoints: covered there */
            goto out;
        }
        j->q = n;
        j->qcap = cap;
    }
    char *f = j->q + j->qlen;
    put32(f + 8, FRAME_MAGIC);
    put32(f + 12, (uint32_t)len);
    put32(f + 24, shard);
    put32(f + 28, seg_id);
    put32(f + 32, off);
    put32(f + 36, 0);
    memcpy(f + CASK_JOURNAL_FRAME_HDR, rec, len);
    j->qlen += need;
    j->qframes++;
out:
    if (seq > j->qseq[shard]) {
        j->qseq[shard] = seq;
    }
    pthread_mutex_unlock(&j->mu);
}

/* Where the current file's reserve starts (j->mu held): its last
 * quarter, which batches take only while a checkpoint cannot run
 * (cask_journal_place). */
static uint64_t
reserve_start(const struct cask_journal *j)
{
    uint64_t room = j->size[j->cur] - CASK_JOURNAL_HDR;
    return CASK_JOURNAL_HDR + room - room / 4;
}

/* Give b its place in the current file when it fits below limit: 0,
 * EIO after a failure, CASK_JOURNAL_FULL. With j->mu held. */
static int
place_locked(struct cask_journal *j, struct cask_journal_batch *b,
             uint64_t limit)
{
    if (atomic_load(&j->failed)) {
        return EIO;
    }
    if (b->lost || j->off + b->len > limit) {
        return CASK_JOURNAL_FULL;
    }
    b->off = j->off;
    j->off += b->len;
    return 0;
}

int
cask_journal_take(struct cask_journal *j, struct cask_journal_batch *b,
                  uint64_t *seqs)
{
    pthread_mutex_lock(&j->mu);
    char *q = j->q;
    size_t qcap = j->qcap;
    j->q = b->buf;
    j->qcap = b->cap;
    b->buf = q;
    b->cap = qcap;
    b->len = j->qlen;
    j->qlen = 0;
    b->lost = j->qlost;
    j->qlost = false;
    b->frames = j->qframes;
    j->qframes = 0;
    for (unsigned i = 0; i < j->c->nshards; i++) {
        seqs[i] = j->qseq[i];
        j->qseq[i] = 0;
    }
    int rc = place_locked(j, b, reserve_start(j));
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int
cask_journal_place(struct cask_journal *j, struct cask_journal_batch *b)
{
    pthread_mutex_lock(&j->mu);
    int rc = place_locked(j, b, j->size[j->cur]);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void
cask_journal_fail(struct cask_journal *j)
{
    atomic_store(&j->failed, true);
}

int
cask_journal_write(struct cask_journal *j, struct cask_journal_batch *b)
{
    if (b->len == 0) {
        return 0;
    }
    /* cur and gen change only in a switch, with no batch in flight. */
    for (size_t at = 0; at < b->len;) {
        char *f = b->buf + at;
        seal_frame(f, j->gen);
        at += CASK_JOURNAL_FRAME_HDR + get32(f + 12);
    }
    int rc = cask_io_pwrite_all(j->fd[j->cur], b->buf, b->len, (off_t)b->off);
    const char *what = "write";
    if (rc == 0) {
        what = "fdatasync";
        rc = cask_io_fdatasync(j->fd[j->cur]);
    }
    if (rc != 0) {
        /* Never retried: after a failed fdatasync the kernel may have
         * dropped the pages it could not write. */
        atomic_store(&j->failed, true);
        cask_logf(j->c, CASK_LOG_ERROR, "journal: %s journal.%u: %s", what,
                  j->cur, strerror(rc));
        return rc;
    }
    atomic_fetch_add(&j->syncs, 1);
    atomic_fetch_add(&j->frames, b->frames);
    b->len = 0;
    return 0;
}

int
cask_journal_switch(struct cask_journal *j)
{
    if (atomic_load(&j->failed)) {
        return EIO;
    }
    pthread_mutex_lock(&j->mu);
    int rc = start_generation(j, j->cur ^ 1, j->gen + 1);
    if (rc != 0) {
        atomic_store(&j->failed, true);
    } else {
        atomic_fetch_add(&j->checkpoints, 1);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int
cask_journal_restore(struct cask_journal *j, unsigned shard, uint32_t seg_id,
                     int fd, uint64_t *restored)
{
    *restored = 0;
    pthread_mutex_lock(&j->mu);
    unsigned cur = j->cur;
    uint64_t gen = j->gen, end = j->off;
    pthread_mutex_unlock(&j->mu);
    if (end <= CASK_JOURNAL_HDR) {
        return 0;
    }
    size_t n = (size_t)(end - CASK_JOURNAL_HDR);
    char *buf = malloc(n);
    char *cur_rec = NULL;
    size_t cur_cap = 0;
    if (buf == NULL) {
        return ENOMEM;
    }
    int rc = cask_io_pread_all(j->fd[cur], buf, n, CASK_JOURNAL_HDR);
    for (size_t pos = 0; rc == 0 && pos + CASK_JOURNAL_FRAME_HDR <= n;) {
        const char *f = buf + pos;
        uint32_t len = get32(f + 12);
        if (get32(f + 8) != FRAME_MAGIC || len == 0 ||
            len > n - pos - CASK_JOURNAL_FRAME_HDR || get64(f + 16) != gen ||
            get64(f) != XXH3_64bits(f + 8, CASK_JOURNAL_FRAME_HDR - 8 + len)) {
            break; /* the end of what is written */
        }
        pos += CASK_JOURNAL_FRAME_HDR + len;
        if (get32(f + 24) != shard || get32(f + 28) != seg_id) {
            continue;
        }
        if (len > cur_cap) {
            char *p = realloc(cur_rec, len);
            if (p == NULL) {
                rc = ENOMEM;
                break;
            }
            cur_rec = p;
            cur_cap = len;
        }
        const char *rec = f + CASK_JOURNAL_FRAME_HDR;
        off_t off = (off_t)get32(f + 32);
        int r = cask_io_pread_all(fd, cur_rec, len, off);
        if (r != 0 || memcmp(cur_rec, rec, len) != 0) {
            rc = cask_io_pwrite_all(fd, rec, len, off);
            if (rc == 0) {
                (*restored)++;
            }
        }
    }
    free(cur_rec);
    free(buf);
    return rc;
}

bool
cask_journal_failed(struct cask_journal *j)
{
    return atomic_load(&j->failed);
}

int
cask_journal_resume(struct cask_journal *j)
{
    pthread_mutex_lock(&j->mu);
    j->qlen = 0;
    j->qframes = 0;
    j->qlost = false;
    memset(j->qseq, 0, j->c->nshards * sizeof(*j->qseq));
    /* The header goes to the file not holding the current generation,
     * rewritten whole: a failed attempt left nothing to rely on there. */
    int rc = start_generation(j, j->cur ^ 1, j->gen + 1);
    if (rc == 0) {
        atomic_store(&j->failed, false);
        atomic_fetch_add(&j->checkpoints, 1);
    } else {
        atomic_store(&j->failed, true);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

bool
cask_journal_half(struct cask_journal *j)
{
    pthread_mutex_lock(&j->mu);
    bool half = j->off - CASK_JOURNAL_HDR >
                        (j->size[j->cur] - CASK_JOURNAL_HDR) / 2 &&
                j->half_gen != j->gen;
    if (half) {
        j->half_gen = j->gen;
    }
    pthread_mutex_unlock(&j->mu);
    return half;
}

void
cask_journal_batch_free(struct cask_journal_batch *b)
{
    free(b->buf);
    memset(b, 0, sizeof(*b));
}

void
cask_journal_counts(struct cask_journal *j, uint64_t *syncs, uint64_t *frames,
                    uint64_t *checkpoints)
{
    *syncs = j ? atomic_load(&j->syncs) : 0;
    *frames = j ? atomic_load(&j->frames) : 0;
    *checkpoints = j ? atomic_load(&j->checkpoints) : 0;
}
