/* cask_manifest.c - the per-shard segment manifest (see cask_manifest.h).
 *
 * Layout: magic "BCSKMAN\n", u32 version (1), u32 count, u32 next_id, u32
 * reserved (0), count u32 segment ids in increasing order, u64 XXH3-64 of
 * every byte before it. Owns that file and the in-memory list; depends on
 * cask_segment (paths, file replacement), cask_record and cask_io only.
 */
#include "storage/cask_manifest.h"

#include "storage/cask_io.h"
#include "storage/cask_newer.h"
#include "storage/cask_record.h"
#include "storage/cask_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MANIFEST_VERSION CASK_MANIFEST_VERSION
#define MANIFEST_HDR     24u
#define MANIFEST_MAX     65536u /* ids in one file (a shard has fewer slots) */

static const char manifest_magic[8] = {'B', 'C', 'S', 'K', 'M', 'A', 'N', '\n'};

struct cask_manifest {
    /* write_mu serializes the file's replacements, each of a copy of the
     * list taken while it is held, so the file only moves forward;
     * list_mu covers the list and is never held across I/O (a roll-over
     * notes its segment with the shard's mu held). Order: write_mu, then
     * list_mu. */
    pthread_mutex_t write_mu;
    pthread_mutex_t list_mu;
    char dir[CASK_PATH_MAX];
    uint32_t *ids; /* sorted, no duplicates */
    size_t n, cap;
    uint32_t next_id;
    uint64_t gen;         /* bumped by every change of the list */
    uint64_t written_gen; /* the generation the file holds */
    uint64_t failed_gen;  /* a generation whose write failed: a flush does
                           * not retry it until the list changes again */
};

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

bool
cask_manifest_valid(const char *b, size_t len)
{
    if (len < MANIFEST_HDR + 8 || len > MANIFEST_HDR + 4 * MANIFEST_MAX + 8 ||
        (len - MANIFEST_HDR - 8) % 4 != 0) {
        return false;
    }
    if (memcmp(b, manifest_magic, 8) != 0 ||
        cask_get32(b + 8) != MANIFEST_VERSION ||
        cask_get32(b + 12) != (len - MANIFEST_HDR - 8) / 4 ||
        cask_get64(b + len - 8) != XXH3_64bits(b, len - 8)) {
        return false;
    }
    /* Increasing ids, all below next_id. */
    uint32_t next = cask_get32(b + 16);
    size_t n = (len - MANIFEST_HDR - 8) / 4;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = cask_get32(b + MANIFEST_HDR + 4 * i);
        if (id >= next ||
            (i > 0 && id <= cask_get32(b + MANIFEST_HDR + 4 * (i - 1)))) {
            return false;
        }
    }
    return true;
}

int
cask_manifest_load(const char *dir, uint32_t **ids, size_t *n,
                   uint32_t *next_id)
{
    char *b;
    size_t len;
    *ids = NULL;
    *n = 0;
    *next_id = 0;
    int rc =
            cask_read_small_file(dir, CASK_MANIFEST_NAME, MANIFEST_HDR + 8,
                                 MANIFEST_HDR + 4 * MANIFEST_MAX + 8, &b, &len);
    if (rc == 0 && !cask_manifest_valid(b, len)) {
        rc = EINVAL;
    } else if (rc == 0) {
        rc = cask_ids_decode(b + MANIFEST_HDR, (len - MANIFEST_HDR - 8) / 4,
                             ids, n);
        *next_id = rc == 0 ? cask_get32(b + 16) : 0;
    }
    free(b);
    if (rc == EINVAL && cask_manifest_newer(dir) != 0) {
        rc = CASK_ENEWER; /* not damage: left as it is */
    }
    return rc;
}

uint32_t
cask_manifest_newer(const char *dir)
{
    char path[CASK_PATH_MAX + 16];
    uint32_t v;
    snprintf(path, sizeof(path), "%s/%s", dir, CASK_MANIFEST_NAME);
    return cask_newer_path(path, manifest_magic, MANIFEST_VERSION, &v) == 0 ? v
                                                                            : 0;
}

int
cask_manifest_write(const char *dir, const uint32_t *ids, size_t n,
                    uint32_t next_id)
{
    char path[CASK_PATH_MAX + 16], tmp[CASK_PATH_MAX + 24];
    if (n > MANIFEST_MAX) {
        return EINVAL;
    }
    size_t len = MANIFEST_HDR + 4 * n + 8;
    char *b = malloc(len);
    uint32_t *sorted = malloc(n ? n * sizeof(*sorted) : 1);
    if (b == NULL || sorted == NULL) {
        free(b);
        free(sorted);
        return ENOMEM;
    }
    if (n > 0) {
        memcpy(sorted, ids, n * sizeof(*sorted));
    }
    qsort(sorted, n, sizeof(*sorted), cmp_u32);
    memcpy(b, manifest_magic, 8);
    cask_put32(b + 8, MANIFEST_VERSION);
    cask_put32(b + 12, (uint32_t)n);
    cask_put32(b + 16, next_id);
    cask_put32(b + 20, 0);
    for (size_t i = 0; i < n; i++) {
        cask_put32(b + MANIFEST_HDR + 4 * i, sorted[i]);
    }
    cask_put64(b + len - 8, XXH3_64bits(b, len - 8));
    free(sorted);
    snprintf(path, sizeof(path), "%s/%s", dir, CASK_MANIFEST_NAME);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    /* temp, fdatasync, rename; no directory sync of its own: an older
     * manifest is always safe (it lists no segment that a later retired
     * file does not excuse), and the retired file written next at a
     * commit syncs the directory, this rename with it. */
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = errno;
    } else {
        rc = cask_io_pwrite_all(fd, b, len, 0);
        if (rc == 0) {
            rc = cask_io_fdatasync(fd);
        }
        close(fd);
        if (rc == 0 && rename(tmp, path) != 0) {
            rc = errno;
        }
        if (rc != 0) {
            unlink(tmp);
        }
    }
    free(b);
    return rc;
}

/* ---- the in-memory list: helpers with list_mu held ---- */

static bool
has(const struct cask_manifest *m, uint32_t id)
{
    return m->n > 0 &&
           bsearch(&id, m->ids, m->n, sizeof(uint32_t), cmp_u32) != NULL;
}

static int
insert(struct cask_manifest *m, uint32_t id)
{
    if (id >= m->next_id) {
        m->next_id = id + 1;
        m->gen++;
    }
    if (has(m, id)) {
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        uint32_t *ni = realloc(m->ids, cap * sizeof(uint32_t));
        if (ni == NULL) {
            return ENOMEM;
        }
        m->ids = ni;
        m->cap = cap;
    }
    size_t i = m->n;
    while (i > 0 && m->ids[i - 1] > id) {
        m->ids[i] = m->ids[i - 1];
        i--;
    }
    m->ids[i] = id;
    m->n++;
    m->gen++;
    return 0;
}

static void
erase(struct cask_manifest *m, uint32_t id)
{
    uint32_t *p =
            m->n > 0 ? bsearch(&id, m->ids, m->n, sizeof(uint32_t), cmp_u32)
                     : NULL;
    if (p != NULL) {
        size_t i = (size_t)(p - m->ids);
        memmove(p, p + 1, (m->n - i - 1) * sizeof(uint32_t));
        m->n--;
        m->gen++;
    }
}

static bool
in(const uint32_t *a, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] == id) {
            return true;
        }
    }
    return false;
}

/* With write_mu held: write the list without gone[0..ngone) (when the list
 * owes a write or something is to go); on success drop gone from the list.
 * Returns 0 or the write's errno (the list is then unchanged). */
static int
persist(struct cask_manifest *m, const uint32_t *gone, size_t ngone)
{
    pthread_mutex_lock(&m->list_mu);
    if (ngone == 0 && (m->written_gen == m->gen || m->failed_gen == m->gen)) {
        pthread_mutex_unlock(&m->list_mu);
        return 0;
    }
    uint32_t *copy = malloc((m->n ? m->n : 1) * sizeof(uint32_t));
    if (copy == NULL) {
        pthread_mutex_unlock(&m->list_mu);
        return ENOMEM;
    }
    size_t nc = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (!in(gone, ngone, m->ids[i])) {
            copy[nc++] = m->ids[i];
        }
    }
    uint32_t next_id = m->next_id;
    uint64_t gen = m->gen;
    pthread_mutex_unlock(&m->list_mu);
    int rc = cask_manifest_write(m->dir, copy, nc, next_id);
    free(copy);
    if (rc != 0) {
        pthread_mutex_lock(&m->list_mu);
        m->failed_gen = gen;
        pthread_mutex_unlock(&m->list_mu);
        return rc;
    }
    pthread_mutex_lock(&m->list_mu);
    bool current = m->gen == gen; /* nothing noted meanwhile */
    for (size_t i = 0; i < ngone; i++) {
        erase(m, gone[i]);
    }
    if (current) {
        m->written_gen = m->gen;
    }
    pthread_mutex_unlock(&m->list_mu);
    return 0;
}

int
cask_manifest_open(struct cask_manifest **out, const char *dir,
                   const uint32_t *ids, size_t n, uint32_t next_id, bool write,
                   bool owed, int *write_rc)
{
    struct cask_manifest *m = calloc(1, sizeof(*m));
    *write_rc = 0;
    if (m == NULL) {
        return ENOMEM;
    }
    pthread_mutex_init(&m->write_mu, NULL);
    pthread_mutex_init(&m->list_mu, NULL);
    snprintf(m->dir, sizeof(m->dir), "%s", dir);
    m->next_id = next_id;
    m->failed_gen = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (insert(m, ids[i]) != 0) {
            m->written_gen = m->gen;
            *out = m;
            cask_manifest_close(out);
            return ENOMEM;
        }
    }
    m->written_gen = write || owed ? m->gen - 1 : m->gen;
    if (write) {
        pthread_mutex_lock(&m->write_mu);
        *write_rc = persist(m, NULL, 0);
        pthread_mutex_unlock(&m->write_mu);
    }
    *out = m;
    return 0;
}

void
cask_manifest_close(struct cask_manifest **mp)
{
    struct cask_manifest *m = *mp;
    if (m == NULL) {
        return;
    }
    (void)cask_manifest_flush(m);
    pthread_mutex_destroy(&m->write_mu);
    pthread_mutex_destroy(&m->list_mu);
    free(m->ids);
    free(m);
    *mp = NULL;
}

int
cask_manifest_flush(struct cask_manifest *m)
{
    if (m == NULL) {
        return 0; /* the shard is still being recovered */
    }
    pthread_mutex_lock(&m->write_mu);
    int rc = persist(m, NULL, 0);
    pthread_mutex_unlock(&m->write_mu);
    return rc;
}

int
cask_manifest_note(struct cask_manifest *m, const uint32_t *ids, size_t n)
{
    if (m == NULL) {
        return 0; /* the shard is still being recovered */
    }
    int rc = 0;
    pthread_mutex_lock(&m->list_mu);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = insert(m, ids[i]);
    }
    pthread_mutex_unlock(&m->list_mu);
    return rc;
}

int
cask_manifest_replace(struct cask_manifest *m, const uint32_t *gone,
                      size_t ngone, const uint32_t *added, size_t nadded)
{
    if (m == NULL) {
        return 0; /* the shard is still being recovered */
    }
    pthread_mutex_lock(&m->write_mu);
    int rc = cask_manifest_note(m, added, nadded);
    if (rc == 0) {
        /* The gone ids leave the list only once the file is without
         * them, so a failed commit keeps listing its inputs. */
        rc = persist(m, gone, ngone);
    }
    pthread_mutex_unlock(&m->write_mu);
    return rc;
}
