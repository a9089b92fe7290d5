/* cask_repair.c - offline repair of a data directory (see cask_repair.h).
 * Reads segments through cask_segment and cask_record, verifies hints with
 * cask_check_hint and rebuilds them with cask_hint_write, and repairs a
 * damaged segment header through cask_seg_open (which rewrites it). Nothing
 * is unlinked: bytes taken out of a segment are copied to the quarantine
 * first, and whole files are moved there by rename.
 */
#include "storage/cask_repair.h"

#include "storage/cask_check.h"
#include "storage/cask_hint.h"
#include "storage/cask_internal.h"
#include "storage/cask_io.h"
#include "storage/cask_journal.h"
#include "storage/cask_manifest.h"
#include "storage/cask_newer.h"
#include "storage/cask_record.h"
#include "storage/cask_retire.h"
#include "storage/cask_segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct repair {
    const char *dir;
    cask_repair_note_fn fn;
    void *arg;
    struct cask_repair_report *rep;
};

static void
say(struct repair *r, bool done, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (done) {
        r->rep->actions++;
    }
    if (r->fn != NULL) {
        r->fn(r->arg, done, msg);
    }
}

/* DIR/quarantine/shard-NNN, created when missing. */
static int
quarantine_dir(struct repair *r, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/quarantine", r->dir);
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        return errno;
    }
    snprintf(out, cap, "%s/quarantine/%s", r->dir, name);
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        return errno;
    }
    return 0;
}

/* Copy [off, off+len) of fd into a new file at path, synced. */
static int
save_bytes(int fd, uint64_t off, uint64_t len, const char *path)
{
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        return errno;
    }
    char *buf = malloc(1u << 20);
    int rc = buf == NULL ? ENOMEM : 0;
    uint64_t done = 0;
    while (rc == 0 && done < len) {
        size_t n = len - done > (1u << 20) ? (1u << 20) : (size_t)(len - done);
        rc = cask_io_pread_all(fd, buf, n, (off_t)(off + done));
        if (rc == 0) {
            rc = cask_io_pwrite_all(out, buf, n, (off_t)done);
        }
        done += n;
    }
    free(buf);
    if (rc == 0) {
        rc = cask_io_fdatasync(out);
    }
    close(out);
    if (rc != 0) {
        unlink(path);
    }
    return rc;
}

/* A path in the quarantine that does not exist yet: base, base.1, ... */
static void
fresh_path(char *out, size_t cap, const char *qdir, const char *base)
{
    snprintf(out, cap, "%s/%s", qdir, base);
    for (unsigned i = 1; access(out, F_OK) == 0; i++) {
        snprintf(out, cap, "%s/%s.%u", qdir, base, i);
    }
}

/* Move sdir/file to the quarantine (rename, then sync both directories). */
static int
quarantine_file(struct repair *r, const char *sdir, const char *name,
                const char *file)
{
    char qdir[CASK_PATH_MAX], from[CASK_PATH_MAX + 32], to[CASK_PATH_MAX + 64];
    int rc = quarantine_dir(r, name, qdir, sizeof(qdir));
    if (rc != 0) {
        return rc;
    }
    snprintf(from, sizeof(from), "%s/%s", sdir, file);
    fresh_path(to, sizeof(to), qdir, file);
    if (rename(from, to) != 0) {
        return errno == ENOENT ? 0 : errno;
    }
    rc = cask_fsync_dir(qdir);
    return rc != 0 ? rc : cask_fsync_dir(sdir);
}

/* A valid stretch of a segment. */
struct span {
    uint64_t off, len;
};

/* Scan s: the valid spans (merged), *tail the offset where a torn tail
 * starts (s->size when none), *damaged the bytes skipped inside. Returns 0
 * or the errno of a failed read. */
static int
scan(struct cask_segment *s, struct span **spans, size_t *n, uint64_t *tail,
     uint64_t *damaged)
{
    struct cask_seg_reader rd = {0};
    size_t cap = 0;
    uint64_t off = CASK_SEG_HDR;
    int rc = 0;
    *spans = NULL;
    *n = 0;
    *tail = s->size;
    *damaged = 0;
    while (off < s->size) {
        struct cask_rec rec;
        size_t len;
        const char *p;
        rc = off + CASK_REC_HDR <= s->size
                     ? cask_seg_read_record(s, &rd, off, CASK_REC_VMAX, &rec,
                                            &len, &p)
                     : CASK_SEG_EINVALID;
        if (rc == 0) {
            if (*n > 0 && (*spans)[*n - 1].off + (*spans)[*n - 1].len == off) {
                (*spans)[*n - 1].len += len;
            } else {
                if (*n == cap) {
                    cap = cap ? cap * 2 : 8;
                    struct span *sp = realloc(*spans, cap * sizeof(*sp));
                    if (sp == NULL) {
                        rc = ENOMEM;
                        break;
                    }
                    *spans = sp;
                }
                (*spans)[(*n)++] = (struct span){off, len};
            }
            off += len;
            continue;
        }
        if (rc != CASK_SEG_EINVALID) {
            break;
        }
        bool zero;
        rc = cask_seg_zero_tail(s, off, &zero);
        if (rc != 0 || zero) {
            /* zeros to the end: the extension ahead of the appends of a
             * segment that was being written (FORMAT.md), no damage; the
             * next start cuts it */
            break;
        }
        int err;
        uint64_t next = cask_seg_resync(s, off, CASK_REC_VMAX, &err);
        if (err != 0) {
            rc = err;
            break;
        }
        if (next >= s->size) {
            *tail = off;
            break;
        }
        *damaged += next - off;
        off = next;
    }
    cask_seg_reader_deinit(&rd);
    return rc;
}

/* Rewrite segment id with only its valid spans: tmp, fdatasync, rename,
 * fsync dir. The original was saved to the quarantine by the caller. */
static int
rewrite(struct cask_segment *s, const char *sdir, const struct span *spans,
        size_t n)
{
    char tmp[CASK_PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.repair", s->path);
    uint64_t total = CASK_SEG_HDR;
    for (size_t i = 0; i < n; i++) {
        total += spans[i].len;
    }
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        return errno;
    }
    char *buf = malloc(1u << 20);
    int rc = buf == NULL ? ENOMEM : 0;
    uint64_t at = 0;
    /* The header, then each span, copied in pieces of at most 1 MiB. */
    struct span hdr = {0, CASK_SEG_HDR};
    for (size_t i = 0; rc == 0 && i <= n; i++) {
        const struct span *sp = i == 0 ? &hdr : &spans[i - 1];
        for (uint64_t d = 0; rc == 0 && d < sp->len;) {
            size_t k = sp->len - d > (1u << 20) ? (1u << 20)
                                                : (size_t)(sp->len - d);
            rc = cask_seg_pread(s, sp->off + d, k, buf);
            if (rc == 0) {
                rc = cask_io_pwrite_all(out, buf, k, (off_t)at);
            }
            d += k;
            at += k;
        }
    }
    free(buf);
    if (rc == 0) {
        rc = cask_io_fdatasync(out);
    }
    close(out);
    if (rc == 0 && rename(tmp, s->path) != 0) {
        rc = errno;
    }
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return cask_fsync_dir(sdir);
}

/* Repair one segment; *gone when it was moved to the quarantine. */
static int
repair_segment(struct repair *r, const char *sdir, const char *name,
               uint32_t id, bool newest)
{
    char path[CASK_PATH_MAX], qdir[CASK_PATH_MAX], q[CASK_PATH_MAX + 64];
    char file[32], h[CASK_SEG_HDR];
    struct stat st;
    int rc;

    cask_seg_path(path, sizeof(path), sdir, id, "seg");
    snprintf(file, sizeof(file), "%08x.seg", id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = errno;
        if (fd >= 0) {
            close(fd);
        }
        return rc;
    }
    bool short_file = st.st_size < (off_t)CASK_SEG_HDR;
    rc = short_file ? 0 : cask_io_pread_all(fd, h, sizeof(h), 0);
    if (rc == 0 && !short_file && cask_seg_header_newer(h, id) != 0) {
        /* Not damage: a newer build's segment, left as it is, and the
         * repair stops there. */
        say(r, false,
            "%s/%s: written by a newer bitcached (segment format %u; this "
            "build reads up to %u): not repaired, nothing changed",
            name, file, cask_seg_header_newer(h, id), CASK_SEG_VERSION);
        close(fd);
        return CASK_SEG_ENEWER;
    }
    if (rc == 0 && (short_file || !cask_seg_header_ok(h, id))) {
        /* cask_seg_open rewrites the header (or resets a file too short
         * for one): keep the original first. */
        rc = quarantine_dir(r, name, qdir, sizeof(qdir));
        if (rc == 0) {
            fresh_path(q, sizeof(q), qdir, file);
            rc = save_bytes(fd, 0, (uint64_t)st.st_size, q);
        }
        if (rc == 0) {
            r->rep->headers_rewritten++;
            say(r, true,
                "%s/%s: damaged header rewritten (original saved as %s)", name,
                file, q);
        }
    }
    close(fd);
    if (rc != 0) {
        return rc;
    }
    struct cask_segment *s = NULL;
    uint64_t dropped;
    bool bad_header;
    rc = cask_seg_open(&s, sdir, id, &dropped, &bad_header);
    struct span *spans = NULL;
    size_t n = 0;
    uint64_t tail = 0, damaged = 0;
    if (rc == 0) {
        rc = scan(s, &spans, &n, &tail, &damaged);
    }
    if (rc != 0 && rc != ENOMEM) {
        /* Unreadable: move it and its hint away whole. */
        int err = rc;
        cask_seg_close(&s);
        free(spans);
        rc = quarantine_file(r, sdir, name, file);
        if (rc == 0) {
            snprintf(file, sizeof(file), "%08x.hint", id);
            rc = quarantine_file(r, sdir, name, file);
        }
        if (rc == 0) {
            r->rep->segments_quarantined++;
            say(r, true, "%s/%08x.seg: unreadable (%s), moved to quarantine",
                name, id, strerror(err));
        }
        return rc;
    }
    bool changed = false;
    if (rc == 0 && damaged > 0) {
        rc = quarantine_dir(r, name, qdir, sizeof(qdir));
        if (rc == 0) {
            fresh_path(q, sizeof(q), qdir, file);
            rc = save_bytes(s->fd, 0, s->size, q);
        }
        if (rc == 0) {
            rc = rewrite(s, sdir, spans, n);
        }
        if (rc == 0) {
            r->rep->segments_rewritten++;
            r->rep->bytes_removed += damaged + (s->size - tail);
            say(r, true,
                "%s/%s: %" PRIu64 " damaged bytes%s removed, valid records "
                "kept (original saved as %s)",
                name, file, damaged, tail < s->size ? " and a torn tail" : "",
                q);
            changed = true;
        }
    } else if (rc == 0 && tail < s->size) {
        rc = quarantine_dir(r, name, qdir, sizeof(qdir));
        if (rc == 0) {
            char base[64];
            snprintf(base, sizeof(base), "%s.tail-at-%" PRIu64, file, tail);
            fresh_path(q, sizeof(q), qdir, base);
            rc = save_bytes(s->fd, tail, s->size - tail, q);
        }
        uint64_t torn = s->size - tail;
        if (rc == 0) {
            rc = cask_seg_truncate(s, tail);
        }
        if (rc == 0) {
            rc = cask_io_fdatasync(s->fd);
        }
        if (rc == 0) {
            r->rep->tails_truncated++;
            r->rep->bytes_truncated += torn;
            say(r, true,
                "%s/%s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
                " truncated (saved as %s)",
                name, file, torn, tail, q);
            changed = true;
        }
    }
    free(spans);
    cask_seg_close(&s);
    if (rc != 0) {
        return rc;
    }
    /* Hints: rebuilt when damaged, wrong or stale, or missing on a closed
     * segment (the newest one takes appends again and needs none). */
    rc = cask_seg_open(&s, sdir, id, &dropped, &bad_header);
    if (rc != 0) {
        return rc;
    }
    uint64_t bad_off;
    int hs = changed ? EINVAL : cask_check_hint(sdir, s, &bad_off);
    if (hs == EINVAL || hs == CASK_CHECK_HINT_DIFFERS ||
        (hs == ENOENT && !newest)) {
        uint64_t covered, bytes;
        cask_hint_remove(sdir, id);
        rc = cask_hint_write(sdir, s, CASK_REC_VMAX, &covered, &bytes);
        if (rc == 0) {
            r->rep->hints_rebuilt++;
            say(r, true, "%s/%08x.hint: %s, rebuilt (%" PRIu64 " bytes)", name,
                id,
                hs == ENOENT ? "missing"
                : changed    ? "segment repaired"
                             : "damaged",
                bytes);
        }
    } else if (hs != 0 && hs != ENOENT) {
        rc = hs;
    }
    cask_seg_close(&s);
    return rc;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int
repair_shard(struct repair *r, const char *sdir, const char *name)
{
    /* A damaged retired file is ignored by the server: move it out of the
     * way (kept, so its ids stay readable). */
    char path[CASK_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", sdir, CASK_RETIRE_NAME);
    if (access(path, F_OK) == 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        bool ok = false;
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size >= 24 &&
            st.st_size <= (1 << 26)) {
            char *b = malloc((size_t)st.st_size);
            if (b != NULL &&
                cask_io_pread_all(fd, b, (size_t)st.st_size, 0) == 0) {
                ok = cask_retire_valid(b, (size_t)st.st_size);
            }
            free(b);
        }
        if (fd >= 0) {
            close(fd);
        }
        if (!ok) {
            int rc = quarantine_file(r, sdir, name, CASK_RETIRE_NAME);
            if (rc != 0) {
                return rc;
            }
            r->rep->retired_quarantined++;
            say(r, true,
                "%s/retired: damaged, moved to quarantine (the server "
                "ignores it too)",
                name);
        }
    }
    DIR *d = opendir(sdir);
    if (d == NULL) {
        return errno;
    }
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        unsigned id;
        char ext[8];
        if (strlen(de->d_name) != 12 ||
            sscanf(de->d_name, "%8x.%3s", &id, ext) != 2 ||
            strcmp(ext, "seg") != 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *p = realloc(ids, cap * sizeof(*p));
            if (p == NULL) {
                rc = ENOMEM;
                break;
            }
            ids = p;
        }
        ids[n++] = id;
    }
    closedir(d);
    if (rc == 0) {
        qsort(ids, n, sizeof(*ids), cmp_u32);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = repair_segment(r, sdir, name, ids[i], i + 1 == n);
    }
    free(ids);
    return rc;
}

/* The journal's own log lines: errors are reported as problems left
 * alone; its summary is the action repair_journal reports. */
static void
journal_log(void *arg, enum cask_log_level level, const char *msg)
{
    if (level == CASK_LOG_ERROR) {
        say(arg, false, "%s", msg);
    }
}

/* Before anything else, as a server's open does: replay what the commit
 * journal of a crash under --sync=always holds into the segments (synced),
 * then remove the journal, so that a later replay cannot write over
 * segments this repair changes (the server creates new files). */
static int
repair_journal(struct repair *r, unsigned shards)
{
    struct cask jc;
    struct cask_journal_replay_stats js;
    memset(&jc, 0, sizeof(jc));
    jc.dir = (char *)r->dir;
    jc.nshards = shards;
    jc.opt.log = journal_log;
    jc.opt.log_arg = r;
    int rc = cask_journal_replay(&jc, &js);
    if (rc != 0) {
        say(r, false, "journal: replay failed: %s", strerror(rc));
        return rc;
    }
    if (js.frames_written > 0) {
        r->rep->journal_replayed = js.frames_written;
        say(r, true,
            "journal: %" PRIu64 " records (%" PRIu64 " bytes) replayed into "
            "their segments",
            js.frames_written, js.bytes_written);
    }
    rc = cask_journal_remove(&jc);
    if (rc != 0) {
        say(r, false, "journal: remove: %s", strerror(rc));
    }
    return rc;
}

/* Report a file of a newer format version found by find_newer. */
static void
newer(struct repair *r, unsigned *found, const char *file, uint32_t version,
      uint32_t known)
{
    (*found)++;
    say(r, false,
        "%s: written by a newer bitcached (format %u; this build reads up "
        "to %u): not repaired, nothing changed",
        file, version, known);
}

/* The files of shard directory sdir of a newer format version: the
 * retired file, the manifest, every hint and segment header. */
static int
find_newer_shard(struct repair *r, const char *sdir, const char *name,
                 unsigned *found)
{
    char file[24 + 256]; /* shard name, '/', a directory entry's name */
    uint32_t v;
    if ((v = cask_retire_newer(sdir)) != 0) {
        snprintf(file, sizeof(file), "%s/%s", name, CASK_RETIRE_NAME);
        newer(r, found, file, v, CASK_RETIRE_VERSION);
    }
    if ((v = cask_manifest_newer(sdir)) != 0) {
        snprintf(file, sizeof(file), "%s/%s", name, CASK_MANIFEST_NAME);
        newer(r, found, file, v, CASK_MANIFEST_VERSION);
    }
    DIR *d = opendir(sdir);
    if (d == NULL) {
        return errno == ENOENT ? 0 : errno;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        unsigned id;
        char ext[8];
        size_t nl = strlen(de->d_name);
        if ((nl != 12 && nl != 13) ||
            sscanf(de->d_name, "%8x.%4s", &id, ext) != 2) {
            continue;
        }
        snprintf(file, sizeof(file), "%s/%s", name, de->d_name);
        if (strcmp(ext, "hint") == 0 && nl == 13) {
            if ((v = cask_hint_newer(sdir, id)) != 0) {
                newer(r, found, file, v, CASK_HINT_VERSION);
            }
        } else if (strcmp(ext, "seg") == 0 && nl == 12) {
            char path[CASK_PATH_MAX], h[CASK_SEG_HDR];
            cask_seg_path(path, sizeof(path), sdir, id, "seg");
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                rc = errno;
                break;
            }
            struct stat st;
            if (fstat(fd, &st) == 0 && st.st_size >= (off_t)CASK_SEG_HDR &&
                cask_io_pread_all(fd, h, sizeof(h), 0) == 0 &&
                (v = cask_seg_header_newer(h, id)) != 0) {
                newer(r, found, file, v, CASK_SEG_VERSION);
            }
            close(fd);
        }
    }
    closedir(d);
    return rc;
}

/* Before anything is changed: every file of a newer format version (not
 * damage: the store is not this build's to repair). *found counts them,
 * each reported. Returns 0 or an errno. */
static int
find_newer(struct repair *r, unsigned shards, unsigned *found)
{
    struct cask jc;
    struct cask_journal_replay_stats js;
    memset(&jc, 0, sizeof(jc));
    jc.dir = (char *)r->dir;
    jc.nshards = shards;
    jc.opt.log = journal_log; /* its refusal says which file and version */
    jc.opt.log_arg = r;
    *found = 0;
    if (cask_journal_pending(&jc, &js) == CASK_ENEWER) {
        (*found)++;
    }
    for (unsigned i = 0; i < shards; i++) {
        char sdir[CASK_PATH_MAX], name[24];
        snprintf(name, sizeof(name), "shard-%03u", i);
        snprintf(sdir, sizeof(sdir), "%s/%s", r->dir, name);
        int rc = find_newer_shard(r, sdir, name, found);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int
cask_repair(const char *dir, cask_repair_note_fn note, void *arg,
            struct cask_repair_report *rep)
{
    struct repair r = {.dir = dir, .fn = note, .arg = arg, .rep = rep};
    unsigned shards, nnewer = 0;
    memset(rep, 0, sizeof(*rep));
    int rc = cask_check_shards(dir, &shards);
    if (rc == CASK_ENEWER) {
        nnewer++;
        say(&r, false,
            "state: written by a newer bitcached (a newer state format): "
            "not repaired, nothing changed");
    } else if (rc != 0) {
        say(&r, false,
            "state: %s; not repaired (the shard count is taken from the "
            "shard directories)",
            rc == ENOENT ? "missing" : "no valid slot");
    }
    if (rc != 0) {
        shards = 0;
        for (;; shards++) {
            char sdir[CASK_PATH_MAX];
            struct stat st;
            snprintf(sdir, sizeof(sdir), "%s/shard-%03u", dir, shards);
            if (stat(sdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
                break;
            }
        }
    }
    unsigned more = 0;
    rc = find_newer(&r, shards, &more);
    if (rc != 0) {
        say(&r, false, "looking for files of a newer format: %s", strerror(rc));
        return rc;
    }
    if (nnewer + more > 0) {
        /* A newer build's store: nothing of it is this build's to
         * change, not even the files it does read. */
        say(&r, false,
            "%u files of a newer format version: the directory is left "
            "as it is (repair it with the bitcached that wrote it)",
            nnewer + more);
        return CASK_ENEWER;
    }
    rc = repair_journal(&r, shards);
    if (rc != 0) {
        return rc;
    }
    for (unsigned i = 0; i < shards; i++) {
        char sdir[CASK_PATH_MAX], name[24];
        snprintf(name, sizeof(name), "shard-%03u", i);
        snprintf(sdir, sizeof(sdir), "%s/%s", dir, name);
        if (access(sdir, F_OK) != 0) {
            say(&r, false, "%s: missing", name);
            continue;
        }
        rc = repair_shard(&r, sdir, name);
        if (rc != 0) {
            say(&r, false, "%s: stopped: %s", name, strerror(rc));
            return rc;
        }
    }
    return 0;
}
