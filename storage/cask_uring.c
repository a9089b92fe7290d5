/* cask_uring.c - value reads through one event loop thread's io_uring
 * (cask_uring.h). A read costs its share of one io_uring_submit per loop
 * pass and of one eventfd wake-up, where the I/O pool costs a futex wake,
 * two thread switches and an event_active per read.
 *
 * Owns the ring, its eventfd and a fixed set of read slots (one per read
 * in flight, at most CASK_URING_DEPTH, so the completion queue cannot
 * overflow), each with an aligned buffer for direct reads registered with
 * the ring where it can be; requests beyond them wait in a FIFO for a
 * slot. The lookup
 * and the record's checks are the shard's (cask_split.h); each completion
 * passes the seam (cask_io_ring_done) so fault tests can fail or slow it.
 * Depends on the store through cask.h and cask_split.h only.
 */
#include <config.h>

#include "storage/cask_uring.h"

#include "storage/cask_direct.h"
#include "storage/cask_io.h"
#include "storage/cask_split.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_LIBURING

#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/uio.h>

#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8) /* liburing before 2.2 */
#endif

/* A slot keeps an aligned buffer this large for its direct reads (a
 * 4 KB value's record and the alignment around it); larger ones are
 * freed after their read. */
#define DBUF_KEEP (16u * 1024)

/* Registered (fixed) buffers: a slot's kept buffer is registered with
 * the ring the first time the slot reads direct, at the slot's index in
 * a sparse table made at create (liburing 2.2, Linux 5.19), and its
 * direct reads are then IORING_OP_READ_FIXED: the kernel pinned its
 * pages once rather than pinning and unpinning them around every read.
 * Where the table cannot be had (an older kernel or liburing, the locked
 * memory limit) reads are made as before. */
#ifdef IORING_RSRC_REGISTER_SPARSE
#define HAVE_FIXED_BUFS 1
#endif

/* A read slot: one request's split get while its read is in flight. */
struct rop {
    struct cask_split sp;
    struct iovec iov[2];
    size_t got; /* bytes of the record read so far */
    struct cask_aio_req *r;
    struct rop *next; /* free list */
    /* a read bypassing the page cache (cask_direct.h) into dbuf: the
     * kept buffer, or a larger one freed after the read */
    bool direct;
    struct cask_direct d;
    char *dbuf;
    char *kbuf;  /* DBUF_KEEP bytes, CASK_DIRECT_ALIGN-aligned, or NULL */
    bool kfixed; /* kbuf is registered (at this slot's index) */
};

struct cask_uring {
    struct io_uring ring;
    struct cask *store;
    int efd;
    struct rop ops[CASK_URING_DEPTH];
    struct rop *free;
    /* requests waiting for a slot, and requests answered without a read
     * (handed back at the next flush or reap, never from submit) */
    struct cask_aio_req *wait_head, *wait_tail;
    struct cask_aio_req *ready_head, *ready_tail;
    unsigned unsubmitted; /* SQEs made since the last io_uring_submit */
    unsigned busy;        /* slots in use */
    bool fixed;           /* a sparse table for the slots' kept buffers */
    bool edge;            /* the eventfd is watched edge-triggered */
    unsigned nfixed;      /* slots whose kept buffer is registered */
    atomic_uint_fast64_t inflight;
    atomic_uint_fast64_t done;
};

static void
push(struct cask_aio_req **head, struct cask_aio_req **tail,
     struct cask_aio_req *r)
{
    r->next = NULL;
    if (*tail != NULL) {
        (*tail)->next = r;
    } else {
        *head = r;
    }
    *tail = r;
}

static struct cask_aio_req *
pop(struct cask_aio_req **head, struct cask_aio_req **tail)
{
    struct cask_aio_req *r = *head;
    if (r != NULL) {
        *head = r->next;
        if (*head == NULL) {
            *tail = NULL;
        }
        r->next = NULL;
    }
    return r;
}

/* The request of op is answered: free the slot, queue the request for
 * its done call. */
static void
answer(struct cask_uring *u, struct rop *op, int rc, char *val)
{
    struct cask_aio_req *r = op->r;
    r->rc = rc;
    r->it = op->sp.it;
    r->val = val;
    op->r = NULL;
    op->next = u->free;
    u->free = op;
    u->busy--;
    push(&u->ready_head, &u->ready_tail, r);
}

static void finish(struct cask_uring *u, struct rop *op, int io_rc);

/* An SQE, submitting what is queued when the submission queue is full. */
static struct io_uring_sqe *
get_sqe(struct cask_uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL && io_uring_submit(&u->ring) >= 0) {
        u->unsubmitted = 0;
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

/* Register op's kept buffer at its slot's index, once; a refusal (the
 * locked memory limit: ENOMEM) ends the registrations of this ring. */
static void
fix_buf(struct cask_uring *u, struct rop *op)
{
#ifdef HAVE_FIXED_BUFS
    if (!u->fixed || op->kfixed) {
        return;
    }
    struct iovec iov = {.iov_base = op->kbuf, .iov_len = DBUF_KEEP};
    if (io_uring_register_buffers_update_tag(&u->ring, (unsigned)(op - u->ops),
                                             &iov, NULL, 1) == 1) {
        op->kfixed = true;
        u->nfixed++;
    } else {
        u->fixed = false;
    }
#else
    (void)u;
    (void)op;
#endif
}

/* An aligned buffer for op's direct read in op->dbuf; false when memory
 * is short (the read goes through the page cache then). */
static bool
direct_buf(struct cask_uring *u, struct rop *op)
{
    void *p;
    if (op->d.len > DBUF_KEEP) {
        if (posix_memalign(&p, CASK_DIRECT_ALIGN, op->d.len) != 0) {
            return false;
        }
        op->dbuf = p;
        return true;
    }
    if (op->kbuf == NULL) {
        if (posix_memalign(&p, CASK_DIRECT_ALIGN, DBUF_KEEP) != 0) {
            return false;
        }
        op->kbuf = p;
    }
    fix_buf(u, op);
    op->dbuf = op->kbuf;
    return true;
}

/* op's direct read is over: a larger buffer than the kept one is freed. */
static void
direct_buf_done(struct rop *op)
{
    if (op->dbuf != op->kbuf) {
        free(op->dbuf);
    }
    op->dbuf = NULL;
}

/* Queue the read of what op's record still lacks (all of it at first; the
 * rest after a short read), or its direct read. */
static void
queue_read(struct cask_uring *u, struct rop *op)
{
    struct cask_split *sp = &op->sp;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (sqe == NULL) {
        if (op->direct) {
            direct_buf_done(op);
        }
        op->direct = false;
        /* The kernel takes no more submissions (short of memory): read
         * here, waiting, rather than fail the get. */
        int io_rc = cask_io_pread2_all(sp->fd, sp->head, sp->hlen, sp->val,
                                       sp->vlen, (off_t)sp->off);
        finish(u, op, io_rc);
        return;
    }
    if (op->direct) {
        if (op->dbuf == op->kbuf && op->kfixed) {
            io_uring_prep_read_fixed(sqe, op->d.fd, op->dbuf,
                                     (unsigned)op->d.len, op->d.off,
                                     (int)(op - u->ops));
        } else {
            io_uring_prep_read(sqe, op->d.fd, op->dbuf, (unsigned)op->d.len,
                               op->d.off);
        }
        io_uring_sqe_set_data(sqe, op);
        u->unsubmitted++;
        return;
    }
    unsigned n = 0;
    if (op->got < sp->hlen) {
        op->iov[n].iov_base = sp->head + op->got;
        op->iov[n++].iov_len = sp->hlen - op->got;
        if (sp->vlen > 0) {
            op->iov[n].iov_base = sp->val;
            op->iov[n++].iov_len = sp->vlen;
        }
    } else {
        size_t vgot = op->got - sp->hlen;
        op->iov[n].iov_base = sp->val + vgot;
        op->iov[n++].iov_len = sp->vlen - vgot;
    }
    io_uring_prep_readv(sqe, sp->fd, op->iov, n, sp->off + op->got);
    io_uring_sqe_set_data(sqe, op);
    u->unsubmitted++;
}

/* Look op's key up: a read to queue, or the answer at once. */
static void
begin(struct cask_uring *u, struct rop *op)
{
    char *val = NULL;
    int rc = cask_get_begin(u->store, &op->sp, &val);
    if (rc != CASK_SPLIT_READ) {
        answer(u, op, rc, val);
        return;
    }
    op->got = 0;
    op->direct = cask_direct_plan(&op->sp, &op->d) && direct_buf(u, op);
    queue_read(u, op);
}

static void
start(struct cask_uring *u, struct cask_aio_req *r)
{
    struct rop *op = u->free;
    u->free = op->next;
    u->busy++;
    op->r = r;
    memset(&op->sp, 0, offsetof(struct cask_split, head));
    op->sp.key = r->key;
    op->sp.klen = r->klen;
    op->sp.fetch = r->fetch;
    op->sp.head_only = r->head;
    op->sp.careful = false;
    begin(u, op);
}

/* Give free slots to waiting requests. */
static void
pump(struct cask_uring *u)
{
    while (u->free != NULL && u->wait_head != NULL) {
        start(u, pop(&u->wait_head, &u->wait_tail));
    }
}

/* Call the done functions of the answered requests; they may submit
 * more (answered ones come back round in this loop). */
static void
hand_back(struct cask_uring *u)
{
    for (;;) {
        pump(u);
        struct cask_aio_req *r = pop(&u->ready_head, &u->ready_tail);
        if (r == NULL) {
            return;
        }
        atomic_fetch_sub(&u->inflight, 1);
        atomic_fetch_add(&u->done, 1);
        r->done(r, r->arg);
    }
}

/* op's record is read (io_rc 0) or its read failed: check it and answer,
 * or look the key up again when the record held another key. */
static void
finish(struct cask_uring *u, struct rop *op, int io_rc)
{
    char *val = NULL;
    int rc = cask_get_end(&op->sp, io_rc, &val);
    if (rc == CASK_SPLIT_AGAIN) {
        op->sp.careful = true; /* another key's record: look it up properly */
        begin(u, op);
        return;
    }
    answer(u, op, rc, val);
}

/* op's direct read completed with res: the record's bytes taken from it,
 * or read through the page cache where the direct read fell short or the
 * file system refused it. */
static void
complete_direct(struct cask_uring *u, struct rop *op, int res)
{
    ssize_t got = cask_io_ring_done(op->d.fd, op->d.len, (off_t)op->d.off, res);
    int rc = got < 0 ? (int)-got : 0;

    bool again = false; /* read it through the page cache */

    op->direct = false;
    if (rc == EINVAL) {
        cask_direct_refused(&op->sp);
        again = true;
    } else if (rc == 0 &&
               cask_direct_take(&op->sp, &op->d, op->dbuf, (size_t)got) != 0) {
        again = true; /* the file ended first: let a plain read tell */
    }
    direct_buf_done(op);
    if (again) {
        queue_read(u, op);
        return;
    }
    finish(u, op, rc);
}

/* A read of op completed with res. */
static void
complete(struct cask_uring *u, struct rop *op, int res)
{
    struct cask_split *sp = &op->sp;
    if (op->direct) {
        complete_direct(u, op, res);
        return;
    }
    size_t want = sp->hlen + sp->vlen - op->got;
    ssize_t got =
            cask_io_ring_done(sp->fd, want, (off_t)(sp->off + op->got), res);
    if (got > 0 && (size_t)got < want) {
        op->got += (size_t)got; /* short: read the rest */
        queue_read(u, op);
        return;
    }
    finish(u, op, got < 0 ? (int)-got : got == 0 ? EIO : 0);
}

int
cask_uring_create(struct cask_uring **out, struct cask *c)
{
    int rc = cask_io_ring_setup();
    if (rc != 0) {
        return rc;
    }
    struct cask_uring *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return ENOMEM;
    }
    u->store = c;
    u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->efd < 0) {
        rc = errno;
        free(u);
        return rc;
    }
    /* Completions are not worth an interrupt of the owner thread while
     * it runs (an IPI, a VM exit on a guest): they run at its next system
     * call, and one sleeping in its event loop is woken (Linux 5.19;
     * older kernels say EINVAL). A/B at load 11-17 on 2 CPUs: 28.7 ->
     * 27.6 us of server CPU per cold get. */
    rc = -io_uring_queue_init(CASK_URING_DEPTH, &u->ring,
                              IORING_SETUP_COOP_TASKRUN);
    if (rc == EINVAL) {
        rc = -io_uring_queue_init(CASK_URING_DEPTH, &u->ring, 0);
    }
    if (rc != 0) {
        close(u->efd);
        free(u);
        return rc;
    }
    rc = -io_uring_register_eventfd(&u->ring, u->efd);
    if (rc != 0) {
        io_uring_queue_exit(&u->ring);
        close(u->efd);
        free(u);
        return rc;
    }
#ifdef HAVE_FIXED_BUFS
    u->fixed =
            io_uring_register_buffers_sparse(&u->ring, CASK_URING_DEPTH) == 0;
#endif
    for (unsigned i = CASK_URING_DEPTH; i-- > 0;) {
        u->ops[i].next = u->free;
        u->free = &u->ops[i];
    }
    *out = u;
    return 0;
}

int
cask_uring_fd(const struct cask_uring *u)
{
    return u->efd;
}

void
cask_uring_set_edge(struct cask_uring *u, bool on)
{
    u->edge = on;
}

void
cask_uring_submit(struct cask_uring *u, struct cask_aio_req *r)
{
    atomic_fetch_add(&u->inflight, 1);
    r->val = NULL;
    if (u->free == NULL || u->wait_head != NULL) {
        push(&u->wait_head, &u->wait_tail, r);
        return;
    }
    start(u, r);
}

void
cask_uring_flush(struct cask_uring *u)
{
    hand_back(u);
    if (u->unsubmitted > 0) {
        int n = io_uring_submit(&u->ring);
        if (n >= 0) {
            u->unsubmitted = 0;
        }
        /* else (EAGAIN, EBUSY: the kernel short of memory) the SQEs stay
         * queued and go with the next flush */
    }
}

void
cask_uring_reap(struct cask_uring *u)
{
    uint64_t ticks;
    struct io_uring_cqe *cqes[32];

    if (!u->edge && read(u->efd, &ticks, sizeof(ticks)) < 0) {
        /* EAGAIN: nothing signalled since the last reap */
    }
    for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, 32);
        if (n == 0) {
            break;
        }
        /* Copied out first: the done calls below may submit and reap
         * nothing, but a short read requeues on the same slot. */
        struct rop *ops[32];
        int res[32];
        for (unsigned i = 0; i < n; i++) {
            ops[i] = io_uring_cqe_get_data(cqes[i]);
            res[i] = cqes[i]->res;
        }
        io_uring_cq_advance(&u->ring, n);
        for (unsigned i = 0; i < n; i++) {
            complete(u, ops[i], res[i]);
        }
    }
    hand_back(u);
}

void
cask_uring_poke(struct cask_uring *u)
{
    (void)io_uring_enter(u->ring.ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL);
    cask_uring_reap(u);
}

bool
cask_uring_pending(const struct cask_uring *u)
{
    return u->unsubmitted > 0 || u->ready_head != NULL ||
           (u->wait_head != NULL && u->free != NULL);
}

void
cask_uring_stats(struct cask_uring *u, uint64_t *inflight, uint64_t *done)
{
    *inflight = atomic_load(&u->inflight);
    *done = atomic_load(&u->done);
}

int
cask_uring_fixed_bufs(const struct cask_uring *u)
{
    return u->fixed ? (int)u->nfixed : -1;
}

void
cask_uring_destroy(struct cask_uring **up)
{
    struct cask_uring *u = *up;

    if (u == NULL) {
        return;
    }
    for (;;) {
        cask_uring_flush(u);
        if (u->busy == 0 && u->wait_head == NULL && u->ready_head == NULL) {
            break;
        }
        if (u->busy > 0) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&u->ring, &cqe);
            if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
                break; /* cannot happen with reads in flight */
            }
        }
        cask_uring_reap(u);
    }
    io_uring_queue_exit(&u->ring);
    close(u->efd);
    for (unsigned i = 0; i < CASK_URING_DEPTH; i++) {
        free(u->ops[i].kbuf); /* unregistered by the ring's exit */
    }
    free(u);
    *up = NULL;
}

#else /* !HAVE_LIBURING */

struct cask_uring {
    int unused;
};

int
cask_uring_create(struct cask_uring **out, struct cask *c)
{
    (void)out;
    (void)c;
    int rc = cask_io_ring_setup();
    return rc != 0 ? rc : ENOSYS;
}

int
cask_uring_fd(const struct cask_uring *u)
{
    (void)u;
    return -1;
}

void
cask_uring_set_edge(struct cask_uring *u, bool on)
{
    (void)u;
    (void)on;
}

void
cask_uring_submit(struct cask_uring *u, struct cask_aio_req *r)
{
    (void)u;
    (void)r;
    abort(); /* no ring is ever created */
}

void
cask_uring_flush(struct cask_uring *u)
{
    (void)u;
}

void
cask_uring_reap(struct cask_uring *u)
{
    (void)u;
}

void
cask_uring_poke(struct cask_uring *u)
{
    (void)u;
}

bool
cask_uring_pending(const struct cask_uring *u)
{
    (void)u;
    return false;
}

void
cask_uring_stats(struct cask_uring *u, uint64_t *inflight, uint64_t *done)
{
    (void)u;
    *inflight = 0;
    *done = 0;
}

int
cask_uring_fixed_bufs(const struct cask_uring *u)
{
    (void)u;
    return -1;
}

void
cask_uring_destroy(struct cask_uring **u)
{
    *u = NULL;
}

#endif
