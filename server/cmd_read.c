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
    bool done;
    bool tried;         /* the worker tried first (not a read ahead): */
    uint64_t tried_cas; /* the item its try found, and */
    bool fetched_was;   /* that item's fetched bit before the try set it */
};

static void
ent_free(struct cmd_read_ent *e)
{
    if (e != NULL) {
        free(e->req.val);
        free(e);
    }
}

static int
find(const struct cmd_reader *rd, const char *key, size_t klen)
{
    for (unsigned i = 0; i < rd->n; i++) {
        const struct cask_aio_req *r = &rd->ents[i]->req;
        if (r->klen == klen && memcmp(r->key, key, klen) == 0) {
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

/* Start reading key off the thread. NULL when there is no room (the
 * caller reads it here instead). */
static struct cmd_read_ent *
submit(struct cmd_reader *rd, const char *key, size_t klen, bool fetch,
       const struct cask_item *tried)
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
    e->owner = rd;
    if (tried != NULL) {
        e->tried = true;
        e->tried_cas = tried->cas;
        e->fetched_was = tried->fetched;
    }
    rd->ents[rd->n++] = e;
    rd->submit(rd->submit_arg, &e->req);
    return e;
}

int
cmd_read_get(struct cmd_conn *cc, const char *key, size_t klen,
             struct cask_item *it, char **val, bool fetch)
{
    return cmd_read_get_ref(cc, key, klen, it, val, NULL, fetch);
}

int
cmd_read_get_ref(struct cmd_conn *cc, const char *key, size_t klen,
                 struct cask_item *it, char **val, struct cask_vref *ref,
                 bool fetch)
{
    struct cmd_reader *rd = &cc->rd;
    struct cask *store = cc->env->store;

    if (rd->submit == NULL) {
        return cask_get_ref(store, key, klen, it, val, ref, fetch);
    }
    int i = find(rd, key, klen);
    if (i >= 0) {
        struct cmd_read_ent *e = rd->ents[i];
        if (!e->done) {
            rd->waiting = e;
            return CMD_READ_PARK;
        }
        /* read for this very request: its result is the answer */
        int rc = e->req.rc;
        *it = e->req.it;
        if (e->tried && rc == CASK_OK && it->cas == e->tried_cas) {
            it->fetched = e->fetched_was; /* "read before this request" */
        }
        *val = e->req.val;
        e->req.val = NULL;
        forget(rd, (unsigned)i);
        ent_free(e);
        return rc;
    }
    int rc = cask_get_nowait_ref(store, key, klen, it, val, ref, fetch);
    if (rc != EAGAIN) {
        return rc;
    }
    struct cmd_read_ent *e = submit(rd, key, klen, fetch, it);
    if (e == NULL) {
        return cask_get_fetch(store, key, klen, it, val, fetch);
    }
    rd->waiting = e;
    rd->parked++;
    return CMD_READ_PARK;
}

void
cmd_read_ahead(struct cmd_conn *cc, const char *key, size_t klen, bool fetch)
{
    struct cmd_reader *rd = &cc->rd;

    if (rd->submit != NULL && find(rd, key, klen) < 0) {
        (void)submit(rd, key, klen, fetch, NULL);
    }
}

void
cmd_read_reset(struct cmd_reader *rd)
{
    for (unsigned i = 0; i < rd->n; i++) {
        struct cmd_read_ent *e = rd->ents[i];
        if (e->done) {
            ent_free(e);
        } else {
            e->owner = NULL; /* its I/O thread still writes it */
        }
        rd->ents[i] = NULL;
    }
    rd->n = 0;
    rd->waiting = NULL;
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
    return rd->owner;
}
