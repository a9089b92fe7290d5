/* cmd_read.c - a get's value read on the connection's thread when the page
 * cache holds it, else on an I/O thread with the request parked (see
 * cmd_read.h). Owns the reads of a connection's current request; knows
 * nothing of libevent or sockets.
 */
#include "server/cmd_read.h"

#include "server/cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct cmd_read_ent {
    struct cask_aio_req req;  /* first: cmd_read_complete casts back */
    struct cmd_reader *owner; /* NULL: orphaned, freed when done */
    size_t at; /* the request it is for: its offset from the current one's
                * start in the connection's input (0: the current one) */
    bool done;
    bool tried;         /* the worker tried first (not a read ahead): */
    uint64_t tried_cas; /* the item its try found, and */
    bool fetched_was;   /* that item's fetched bit before the try set it */
};

/* Small values read on this thread land here instead of in a malloc'd
 * buffer (cask_get_buf): a get's value is copied into its reply before
 * the next one is read. Room for the largest key and a value a little
 * above CMD_READ_BORROW_MAX with its record header. */
#define SCRATCH_CAP 1024
static _Thread_local char scratch[SCRATCH_CAP];

bool
cmd_read_borrowed(const char *val)
{
    return val == scratch;
}

void
cmd_read_free(char *val)
{
    if (val != scratch) {
        free(val);
    }
}

/* cask_get_buf into this thread's scratch buffer; a value above
 * CMD_READ_BORROW_MAX that fit there anyway is copied out (the sinks take
 * those as buffers of their own). */
static int
get_small(struct cask *store, const char *key, size_t klen,
          struct cask_item *it, char **val, struct cask_vref *ref, bool fetch,
          bool nowait)
{
    int rc = cask_get_buf(store, key, klen, it, val, ref, fetch, nowait,
                          scratch, sizeof(scratch));
    if (rc == CASK_OK && *val == scratch && it->vlen > CMD_READ_BORROW_MAX) {
        char *own = malloc((size_t)it->vlen + 1);
        if (own == NULL) {
            *val = NULL;
            return ENOMEM;
        }
        memcpy(own, scratch, (size_t)it->vlen + 1);
        *val = own;
    }
    return rc;
}

static void
ent_free(struct cmd_read_ent *e)
{
    if (e != NULL) {
        free(e->req.val);
        free(e);
    }
}

static int
find(const struct cmd_reader *rd, size_t at, const char *key, size_t klen)
{
    for (unsigned i = 0; i < rd->n; i++) {
        const struct cask_aio_req *r = &rd->ents[i]->req;
        if (rd->ents[i]->at == at && r->klen == klen &&
            memcmp(r->key, key, klen) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void
forget(struct cmd_reader *rd, unsigned i)
{
    rd->ents[i] = rd->ents[--rd->n];
    rd->ents[rd->n] = NULL;
}

/* Drop entry i (its request is over): a finished read is freed, one
 * still running is orphaned and freed when it comes back. */
static void
drop(struct cmd_reader *rd, unsigned i)
{
    struct cmd_read_ent *e = rd->ents[i];

    if (e->done) {
        ent_free(e);
    } else {
        e->owner = NULL; /* its I/O thread still writes it */
    }
    forget(rd, i);
}

/* The request waits for a key and every slot is taken: give it the slot of
 * the read for the latest request after it (read ahead, to be read again
 * when the look ahead comes by once more), rather than read on the
 * thread. */
static void
make_room(struct cmd_reader *rd)
{
    unsigned last = 0;

    if (rd->n < CMD_READ_SLOTS) {
        return;
    }
    for (unsigned i = 1; i < rd->n; i++) {
        if (rd->ents[i]->at > rd->ents[last]->at) {
            last = i;
        }
    }
    if (rd->ents[last]->at == 0) {
        return; /* all the current request's */
    }
    if (rd->ahead_end > rd->ents[last]->at) {
        rd->ahead_end = rd->ents[last]->at;
    }
    drop(rd, last);
}

/* Start reading key off the thread for the request at offset at. NULL
 * when there is no room (the caller reads it here instead). This is the
 * one place a read is dispatched. */
static struct cmd_read_ent *
submit(struct cmd_reader *rd, size_t at, const char *key, size_t klen,
       bool fetch, bool head, const struct cask_item *tried)
{
    if (rd->n == CMD_READ_SLOTS || klen > CASK_KEY_MAX) {
        return NULL;
    }
    struct cmd_read_ent *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    memcpy(e->req.key, key, klen);
    e->req.klen = klen;
    e->req.fetch = fetch;
    e->req.head = head;
    e->owner = rd;
    e->at = at;
    if (tried != NULL) {
        e->tried = true;
        e->tried_cas = tried->cas;
        e->fetched_was = tried->fetched;
    }
    rd->ents[rd->n++] = e;
    rd->submit(rd->submit_arg, &e->req);
    return e;
}

/* The result of the read rd->ents[i] for the current request: the request
 * waits on it (CMD_READ_PARK) while it runs; once done, its rc, item and
 * value (handed over), and the entry is dropped. as_get: the item's
 * fetched bit is the one from before this request's own try set it. */
static int
take(struct cmd_reader *rd, int i, struct cask_item *it, char **val,
     bool as_get)
{
    struct cmd_read_ent *e = rd->ents[i];
    if (!e->done) {
        rd->waiting = e;
        return CMD_READ_PARK;
    }
    int rc = e->req.rc;
    *it = e->req.it;
    if (as_get && e->tried && rc == CASK_OK && it->cas == e->tried_cas) {
        it->fetched = e->fetched_was; /* "read before this request" */
    }
    *val = e->req.val;
    e->req.val = NULL;
    forget(rd, (unsigned)i);
    ent_free(e);
    return rc;
}

int
cmd_read_get(struct cmd_conn *cc, const char *key, size_t klen,
             struct cask_item *it, char **val, bool fetch)
{
    return cmd_read_get_ref(cc, key, klen, it, val, NULL, fetch);
}

/* Sends the current request's read of key to the pool and parks the
 * connection on it: CMD_READ_PARK, or EAGAIN when the reader has no room
 * (the caller then reads on this thread). */
static int
park_on_read(struct cmd_reader *rd, const char *key, size_t klen, bool fetch,
             bool head, const struct cask_item *tried)
{
    make_room(rd);
    struct cmd_read_ent *e = submit(rd, 0, key, klen, fetch, head, tried);
    if (e == NULL) {
        return EAGAIN;
    }
    rd->waiting = e;
    rd->parked++;
    return CMD_READ_PARK;
}

int
cmd_read_get_ref(struct cmd_conn *cc, const char *key, size_t klen,
                 struct cask_item *it, char **val, struct cask_vref *ref,
                 bool fetch)
{
    struct cmd_reader *rd = &cc->rd;
    struct cask *store = cc->env->store;

    if (rd->submit == NULL) {
        return get_small(store, key, klen, it, val, ref, fetch, false);
    }
    int i = find(rd, 0, key, klen);
    if (i >= 0) {
        /* read for this very request: its result is the answer */
        return take(rd, i, it, val, true);
    }
    int rc = get_small(store, key, klen, it, val, ref, fetch, true);
    if (rc != EAGAIN) {
        return rc;
    }
    rc = park_on_read(rd, key, klen, fetch, false, it);
    if (rc == EAGAIN) {
        return cask_get_fetch(store, key, klen, it, val, fetch);
    }
    return rc;
}

/* The item of key for the current request, from its record's header and
 * key only (cask_head_nowait): a finished read, or a try on this thread.
 * Returns what cask_head_nowait returns (EAGAIN: no room in the reader),
 * or CMD_READ_PARK once the read is sent off (or is still running).
 * fetch: counts as a read, the fetched bit reported as before this
 * request's own try set it. */
static int
head_read(struct cmd_conn *cc, const char *key, size_t klen,
          struct cask_item *it, bool fetch)
{
    struct cmd_reader *rd = &cc->rd;
    int i = find(rd, 0, key, klen);

    if (i >= 0) {
        char *v = NULL; /* none from a head read; a value read ahead */
        int rc = take(rd, i, it, &v, fetch);
        cmd_read_free(v);
        return rc;
    }
    int rc = cask_head_nowait(cc->env->store, key, klen, it, fetch);
    if (rc != EAGAIN) {
        return rc;
    }
    return park_on_read(rd, key, klen, fetch, true, fetch ? it : NULL);
}

int
cmd_read_head(struct cmd_conn *cc, const char *key, size_t klen,
              struct cask_item *it, bool fetch)
{
    int rc = CASK_OK;

    if (cc->rd.submit != NULL) {
        rc = head_read(cc, key, klen, it, fetch);
    }
    if (cc->rd.submit == NULL || rc == EAGAIN) {
        rc = cask_get_fetch(cc->env->store, key, klen, it, NULL, fetch);
    }
    return rc;
}

/* The value of key read for the current request without counting it as a
 * read (val NULL: the item only, from its record's header and key): a
 * finished read of the pool, or a try on this thread. Returns what
 * cask_get_nowait_ref returns (a small value maybe borrowed, as
 * cmd_read_get's; EAGAIN also when there is no room in the reader), or
 * CMD_READ_PARK once it is sent to the pool (or is still there). */
static int
touch_read(struct cmd_conn *cc, const char *key, size_t klen,
           struct cask_item *it, char **val)
{
    struct cmd_reader *rd = &cc->rd;

    if (val == NULL) {
        return head_read(cc, key, klen, it, false);
    }
    int i = find(rd, 0, key, klen);
    if (i >= 0) {
        return take(rd, i, it, val, false);
    }
    int rc = get_small(cc->env->store, key, klen, it, val, NULL, false, true);
    if (rc != EAGAIN) {
        return rc;
    }
    return park_on_read(rd, key, klen, false, false, NULL);
}

int
cmd_read_touch(struct cmd_conn *cc, const char *key, size_t klen,
               int64_t exp_abs_s, struct cask_item *it, char **val, bool fetch)
{
    struct cmd_reader *rd = &cc->rd;
    struct cask *store = cc->env->store;
    bool want = val != NULL;

    if (rd->submit == NULL) {
        return cask_touch_fetch(store, key, klen, exp_abs_s, it, val, fetch);
    }
    for (;;) {
        struct cask_item got;
        char *v = NULL;

        memset(&got, 0, sizeof(got));
        int rc = touch_read(cc, key, klen, &got, want ? &v : NULL);
        if (rc == CMD_READ_PARK) {
            return rc;
        }
        if (rc == EAGAIN) {
            break; /* no room in the reader: read and touch here */
        }
        if (rc != CASK_OK) {
            cmd_read_free(v);
            if (!want && rc != CASK_ENOTFOUND) {
                break; /* a touch alone never needed the value */
            }
            /* a miss, a damaged record or an error: a touch reading the
             * value would have written nothing either */
            *it = got;
            return rc;
        }
        /* The value is that of the item with got.cas: touch that item
         * only, so that the touch and the value belong together. */
        rc = cask_touch_cas(store, key, klen, exp_abs_s, got.cas, it, NULL,
                            fetch);
        if (rc == CASK_OK && want) {
            *val = v;
            return rc;
        }
        cmd_read_free(v);
        if (rc != CASK_EEXISTS) {
            return rc; /* done, deleted meanwhile (a miss), or an error */
        }
        /* replaced between the read and the touch: read the new item */
        if (++rd->retries > CMD_READ_RETRIES) {
            break;
        }
    }
    return cask_touch_fetch(store, key, klen, exp_abs_s, it, val, fetch);
}

void
cmd_read_ahead(struct cmd_conn *cc, const char *key, size_t klen, bool fetch)
{
    cmd_read_ahead_at(cc, 0, key, klen, fetch);
}

/* Starts the read (or the header read) of key for the request at buf
 * offset at unless one is under way: false when there is no room. */
static bool
ahead_at(struct cmd_conn *cc, size_t at, const char *key, size_t klen,
         bool fetch, bool head)
{
    struct cmd_reader *rd = &cc->rd;

    if (rd->submit == NULL || rd->n == CMD_READ_SLOTS) {
        return false;
    }
    if (find(rd, at, key, klen) < 0) {
        (void)submit(rd, at, key, klen, fetch, head, NULL);
    }
    return true;
}

bool
cmd_read_ahead_at(struct cmd_conn *cc, size_t at, const char *key, size_t klen,
                  bool fetch)
{
    return ahead_at(cc, at, key, klen, fetch, false);
}

bool
cmd_read_ahead_head_at(struct cmd_conn *cc, size_t at, const char *key,
                       size_t klen, bool fetch)
{
    return ahead_at(cc, at, key, klen, fetch, true);
}

void
cmd_read_reset(struct cmd_reader *rd)
{
    while (rd->n > 0) {
        drop(rd, rd->n - 1);
    }
    rd->waiting = NULL;
    rd->retries = 0;
    rd->ahead_end = 0;
}

void
cmd_read_consumed(struct cmd_reader *rd, size_t used)
{
    for (unsigned i = rd->n; i-- > 0;) {
        struct cmd_read_ent *e = rd->ents[i];
        if (e->at < used) {
            drop(rd, i);
        } else {
            e->at -= used;
        }
    }
    rd->waiting = NULL;
    rd->retries = 0;
    rd->ahead_end = rd->ahead_end > used ? rd->ahead_end - used : 0;
}

bool
cmd_read_waiting(const struct cmd_reader *rd)
{
    return rd->waiting != NULL;
}

void *
cmd_read_complete(struct cask_aio_req *r)
{
    struct cmd_read_ent *e = (struct cmd_read_ent *)r;
    struct cmd_reader *rd = e->owner;

    e->done = true;
    if (rd == NULL) {
        ent_free(e);
        return NULL;
    }
    if (rd->waiting != e) {
        return NULL;
    }
    rd->waiting = NULL;
    if (rd->resume != NULL) {
        rd->resume(rd->owner); /* a reader that resumes itself (UDP) */
        return NULL;
    }
    return rd->owner;
}
