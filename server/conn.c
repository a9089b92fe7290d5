/* conn.c - the connection state machine: read -> parse/execute (cmd.c) ->
 * queue replies -> write. Owns the connection's socket, read buffer, output
 * evbuffer (with the reply held before it, struct direct) and events; runs
 * only on the owning worker's thread.
 *
 * Backpressure: once the queued output passes OUT_HIGH the connection stops
 * executing requests and stops reading; it resumes when the client has read
 * the queue down to OUT_LOW. A multi-get asks between keys (out_full) and
 * pauses mid-reply the same way, so a connection holds at most OUT_HIGH plus
 * one value whatever the request. The queues of all connections together
 * are held to the output budget (outbudget.c): over it, connections with
 * more than OUT_LOW queued are throttled as if over OUT_HIGH, and the
 * worker closes its largest queue. A client that reads nothing of what is
 * queued for --write-timeout (or --idle-timeout, if shorter) is closed.
 *
 * Fairness: at most -R requests of one connection run per turn; then it
 * yields (conn_yields) and continues after the worker's other ready
 * connections, on a zero timer so that the loop polls sockets in between.
 *
 * Read buffers grow for large requests and shrink back to RBUF_INITIAL once
 * they hold little, unless the connection keeps sending large requests
 * (keep_rbuf: up to RBUF_KEPT_MAX of such buffers per worker); freed memory
 * is handed back to the OS by the worker's trim timer (worker.c).
 *
 * --sync=always: replies are written into a staging buffer first. A
 * request whose write awaits its commit (the store's committer syncs it:
 * cask_defer) leaves its reply there, and so does everything after it;
 * the connection is parked (it runs no request it reads from now on,
 * though requests already read still run, so pipelined writes share a
 * commit; what it reads waits in the buffer, and only past PARK_READ_MAX
 * does it stop reading, so parking costs no epoll_ctl)
 * and the worker serves its other connections. The store's commit hook
 * wakes the worker (conn_commit_done), which moves the replies of the
 * writes now durable to the output queue in order, or answers a failed
 * commit's writes with their error instead, and unparks the connection
 * once nothing waits.
 *
 * Roll-over (every sync mode): a write whose roll-over would wait (the
 * store returns CASK_EBLOCKED; cmd.h park_writes) joins the worker's
 * blocked list, its request not consumed: the connection runs nothing
 * more, reads ahead as when parked, and the request runs again when the
 * store's unblock or commit hook wakes the worker (conn_unblock_all).
 *
 * Write batching (every sync mode): a write's record is staged in its
 * shard's buffer (cask_ticket.batch) and its reply held in the staging
 * buffer like a reply waiting for a commit; the connection joins the
 * worker's held list. Once the worker's loop has run every ready
 * connection (conn_pass_end), the worker writes the staged records of all
 * of them, one write per shard, and releases the replies (or the error of
 * a failed write instead). No byte of a write's reply reaches the socket
 * before the kernel has its record.
 *
 * TLS (-Z): the socket is read and written through tls.c instead of
 * read(2) and evbuffer_write; all of the above is the same. Bytes OpenSSL
 * has decrypted but not handed over announce themselves by no socket event,
 * so the read event is made active by hand while any wait (tls_more). With
 * -Y, text requests go to auth_text.c until the connection authenticates.
 */
#include "server/conn.h"

#include "protocol/proto_bin.h"
#include "server/auth_text.h"
#include "server/cmd.h"
#include "server/cmd_bin.h"
#include "server/conn_table.h"
#include "server/log.h"
#include "server/outbudget.h"
#include "server/readq.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/watch.h"
#include "server/worker.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RBUF_INITIAL     (16u * 1024)
#define RBUF_KEEP_MAX    (64u * 1024) /* larger buffers shrink when idle */
#define OUT_HIGH         (256u * 1024)
#define OUT_LOW          (64u * 1024)
#define OUT_CAP_MIN      (64u * 1024 * 1024)
#define RBUF_LIMIT_SLACK (64u * 1024)
/* A buffer grown for large requests (up to RBUF_BUSY_MAX) stays grown while
 * its connection keeps sending them: shrinking it after each one and growing
 * it again for the next cost a realloc each way and a second read per
 * request. It shrinks after RBUF_COOL_PASSES passes without one, or at once
 * when its worker already keeps RBUF_KEPT_MAX of such buffers. */
#define RBUF_BUSY_MAX    (256u * 1024)
#define RBUF_COOL_PASSES 64
#define RBUF_KEPT_MAX    (4u * 1024 * 1024)
#define READS_PER_EVENT  4 /* fairness between connections of a worker */
/* Reply bytes one connection may write in one turn: a multi-get to a client
 * that reads fast (or a kernel buffer with room) yields between keys after
 * this much, as a connection does after -R requests. */
#define TURN_BYTES     (512u * 1024)
#define BUDGET_SCAN_MS 10 /* at most one worst-offender walk this often */
/* Writes of one connection that may wait for their commit at once; past
 * that it runs no more requests until a commit frees some. */
#define PEND_MAX 1024
/* What a parked connection reads ahead (not run) before it stops reading:
 * its read event stays registered while parked, so that parking and
 * unparking cost no epoll_ctl unless a client sends this much. */
#define PARK_READ_MAX (64u * 1024)

/* A request whose write waits for its commit. Its reply is the len bytes
 * of stage that follow the pre bytes of replies before it. */
struct pend {
    struct cask_ticket t;
    /* The commit epoch whose end may release it; 0: not known yet (a
     * staged write before its batch write) or at all (then any commit
     * wakes the worker). */
    uint64_t need;
    struct cmd_req_tag tag;
    size_t pre;
    size_t len;
};

/* A reply held out of the output evbuffer while that is empty: its bytes
 * up to a value sent from its segment's mapping, that value, and the
 * bytes after it, written with one writev (write_some). Through the
 * evbuffer the same reply takes three chains and a holder for the value's
 * pin, four mallocs and four frees. It is the front of what is queued:
 * bytes queued once out holds any go to out, after it, and before the
 * next write what is held moves to out's front (direct_spill), so that
 * one write still takes it all. Sized for a reply line with the longest
 * key and a cas, and the bytes that end a reply. */
#define DIRECT_HEAD 384
#define DIRECT_TAIL 64
struct direct {
    size_t head_len;
    size_t tail_len;
    size_t sent;          /* bytes of head, value and tail written */
    struct cask_vref ref; /* the value; seg NULL: none (yet) */
    char head[DIRECT_HEAD];
    char tail[DIRECT_TAIL];
};

struct conn {
    int fd;
    struct worker *w;
    struct event *rev;
    struct event *wev;
    struct event *resume_ev; /* zero timer: the next turn after a yield */
    char *rbuf;
    size_t rsize;        /* allocated */
    size_t rstart;       /* first unconsumed byte */
    size_t rend;         /* end of data read */
    size_t rkept;        /* rsize counted in the worker's rbuf_kept, or 0 */
    bool rbig;           /* held more than RBUF_KEEP_MAX since the last pass */
    unsigned char rcool; /* passes since the last one that held that much */
    struct evbuffer *out;
    size_t out_cap;
    size_t out_counted;  /* bytes of out reported to the output budget */
    size_t rheld;        /* rend - rstart as last reported to the worker */
    size_t turn_written; /* bytes written since this turn began */
    struct cmd_conn cc;
    struct cmd_bin bin;    /* binary protocol state */
    struct auth_text auth; /* -Y: text requests wait for authentication */
    struct tls_conn *tls;  /* NULL: plain socket */
    bool tls_read_blocked; /* the handshake waits for the socket to take
                            * bytes: on_write reads again */
    /* AUTO until the first byte decides */
    enum settings_proto protocol;
    bool reading;             /* rev is added */
    bool writing;             /* wev is added (with the stall timeout) */
    bool paused;              /* stopped reading for backpressure */
    bool yielded;             /* resume_ev is pending */
    bool broken;              /* a write failed: close at the next chance */
    bool closing;             /* close once out is written */
    struct conn_info *info;   /* what stats conns shows */
    struct watch_sink *watch; /* set once the client sent `watch` */
    bool is_unix;
    bool after_ref; /* the last reply chain is a value's file segment */
    /* Bytes of values queued in out as references to their segment (no
     * heap of ours), since out was last empty: what draining them frees
     * is not worth a malloc_trim (flush_out). */
    size_t out_refs;
    bool direct_on; /* replies may be held in d (plain socket, no stage) */
    struct direct d;
    struct evbuffer *front;     /* empty between uses: see direct_spill */
    unsigned char close_reason; /* enum watch_conn_ev, for connevents */
    TAILQ_ENTRY(conn) link;
    /* Replies not yet released to out (under --sync=always all of them;
     * otherwise those from the first write waiting for the batch write
     * on), the writes they wait for (pend[phead..pend_n)), and the
     * stage bytes up to the end of the last waiting reply. */
    struct evbuffer *stage;
    struct pend *pend;
    size_t phead, pend_n, pend_cap;
    size_t stage_mark;
    const struct cask_ticket *cur_tk; /* of the request running, or NULL */
    bool parked;    /* on the worker's parked list: runs no new request */
    bool park_full; /* parked, or waiting for a value read, with
                     * PARK_READ_MAX unprocessed bytes read: stopped
                     * reading until unparked or resumed */
    TAILQ_ENTRY(conn) park_link;
    bool held; /* on the worker's held list: replies wait for the pass's
                * batch write (conn_pass_end) */
    TAILQ_ENTRY(conn) held_link;
    bool always; /* --sync=always: every reply goes through stage */
    /* A get waits for a value read (cmd_read.h): no request runs until
     * conn_read_resume; the read event stays registered (what arrives is
     * read ahead as when parked, through OpenSSL with TLS), so a cold get
     * costs no epoll_ctl. */
    bool read_wait;
    /* A write would wait for a roll-over (the store returned
     * CASK_EBLOCKED: cmd.h park_writes): on the worker's blocked list, it
     * runs no request (that one included) until conn_unblock_all runs it
     * again; replies before it go out, those after it wait with it. The
     * read event stays, as for read_wait. */
    bool write_wait;
    TAILQ_ENTRY(conn) block_link;
    /* The client closed its end while the connection waited (parked, or
     * for a roll-over or a value read) with requests read and not run:
     * they still run, as memcached runs what it read before it sees the
     * end, and the connection closes once none is left. No more reads. */
    bool peer_eof;
};

/* Waiting for a value read or for a roll-over: runs no request. */
static bool
waiting(const struct conn *c)
{
    return c->read_wait || c->write_wait;
}

static void conn_close(struct conn *c);
static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_resume(evutil_socket_t fd, short what, void *arg);
static int process(struct conn *c);

/* Does the ticket wait for anything (a commit or a batch write)? */
static bool
ticket_waits(const struct cask_ticket *t)
{
    return t->epoch != 0 || t->wseq != 0;
}

/* Where replies go as they are made: the staging buffer under
 * --sync=always and while a reply waits (or the running request's write
 * does), else the output queue. */
static struct evbuffer *
sink_buf(const struct conn *c)
{
    if (c->stage == NULL) {
        return c->out;
    }
    if (c->always || c->pend_n > c->phead ||
        (c->cur_tk != NULL && ticket_waits(c->cur_tk))) {
        return c->stage;
    }
    return c->out;
}

/* Bytes of the reply held in c->d not yet written. */
static size_t
direct_len(const struct conn *c)
{
    const struct direct *d = &c->d;
    size_t vlen = d->ref.seg != NULL ? d->ref.len : 0;

    return d->head_len + vlen + d->tail_len - d->sent;
}

/* Empty c->d, unpinning its value. */
static void
direct_reset(struct conn *c)
{
    struct direct *d = &c->d;

    if (d->ref.seg != NULL) {
        cask_vref_release(&d->ref);
    }
    d->head_len = 0;
    d->tail_len = 0;
    d->sent = 0;
}

/* May bytes bound for out be held in c->d now? Only while out and the
 * staging buffer are empty (what d holds goes first), and never once
 * another thread may append to out (watch). */
static bool
direct_usable(const struct conn *c)
{
    return c->direct_on && c->watch == NULL && sink_buf(c) == c->out &&
           evbuffer_get_length(c->out) == 0 &&
           (c->stage == NULL || evbuffer_get_length(c->stage) == 0);
}

/* Hold n bytes in c->d: before its value while it has none, else after
 * it. False when they do not fit (the caller queues them in out). */
static bool
direct_add(struct conn *c, const void *p, size_t n)
{
    struct direct *d = &c->d;

    if (!direct_usable(c)) {
        return false;
    }
    if (d->ref.seg == NULL && n <= sizeof(d->head) - d->head_len) {
        memcpy(d->head + d->head_len, p, n);
        d->head_len += n;
        return true;
    }
    if (d->ref.seg != NULL && n <= sizeof(d->tail) - d->tail_len) {
        memcpy(d->tail + d->tail_len, p, n);
        d->tail_len += n;
        return true;
    }
    return false;
}

/* Hold a mapped value in c->d after the bytes held there (*ref is taken
 * and cleared). False when d already holds one. */
static bool
direct_ref(struct conn *c, struct cask_vref *ref)
{
    struct direct *d = &c->d;

    if (!direct_usable(c) || d->ref.seg != NULL || ref->ptr == NULL) {
        return false;
    }
    d->ref = *ref;
    memset(ref, 0, sizeof(*ref));
    ref->fd = -1;
    return true;
}

/* One writev of what c->d holds. Returns the bytes written (d emptied
 * once all are), or -1 with errno set. */
static ssize_t
direct_write(struct conn *c)
{
    struct direct *d = &c->d;
    struct iovec iov[3];
    int cnt = 0;
    size_t skip = d->sent;
    size_t vlen = d->ref.seg != NULL ? d->ref.len : 0;
    const char *part[3] = {d->head, d->ref.ptr, d->tail};
    size_t plen[3] = {d->head_len, vlen, d->tail_len};

    for (int i = 0; i < 3; i++) {
        if (skip >= plen[i]) {
            skip -= plen[i];
            continue;
        }
        iov[cnt].iov_base = (void *)(part[i] + skip);
        iov[cnt].iov_len = plen[i] - skip;
        skip = 0;
        cnt++;
    }
    ssize_t n;
    do {
        n = writev(c->fd, iov, cnt);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        d->sent += (size_t)n;
        if (direct_len(c) == 0) {
            direct_reset(c);
        }
    }
    return n;
}

/* Append bytes to the replies. After a value sent from its file
 * (sink_value_ref) the first bytes get a chain of their own, sized for
 * them: evbuffer_add would size it after the file segment's chain, whose
 * length counts the value's offset in its file (megabytes a reply), or
 * after the mapped value's chain (its length: 64 KiB for an END). */
static void
out_add(struct conn *c, const void *p, size_t n)
{
    if (direct_add(c, p, n)) {
        return;
    }
    if (c->after_ref && n > 0 && sink_buf(c) == c->out) {
        struct evbuffer_iovec v;

        if (evbuffer_reserve_space(c->out, n < 1024 ? 1024 : n, &v, 1) == 1 &&
            v.iov_len >= n) {
            memcpy(v.iov_base, p, n);
            v.iov_len = n;
            if (evbuffer_commit_space(c->out, &v, 1) == 0) {
                c->after_ref = false;
                return;
            }
        }
    }
    evbuffer_add(sink_buf(c), p, n);
}

static void
sink_bytes(void *arg, const void *p, size_t n)
{
    out_add(arg, p, n);
}

static void
free_value(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

static void
sink_value(void *arg, char *buf, size_t n)
{
    struct conn *c = arg;

    /* Small values are cheaper to copy than to track as references. */
    if (n <= 512) {
        out_add(c, buf, n);
        free(buf);
        return;
    }
    if (evbuffer_add_reference(sink_buf(c), buf, n, free_value, NULL) != 0) {
        free(buf);
        return;
    }
    c->after_ref = false; /* the next bytes follow a chain of the size */
}

/* A value sent from its segment file (sendfile: no copy in this process):
 * libevent holds the file segment until the bytes are written or the
 * output is freed, and the store's pin goes with it. Only on connections
 * whose output goes straight to the socket (plain TCP or unix, no staging):
 * see conn_new. */
static void
value_ref_done(struct evbuffer_file_segment const *seg, int flags, void *arg)
{
    struct cask_vref *h = arg;

    (void)seg;
    (void)flags;
    cask_vref_release(h);
    free(h);
}

static void
value_map_done(const void *data, size_t len, void *arg)
{
    struct cask_vref *h = arg;

    (void)data;
    (void)len;
    cask_vref_release(h);
    free(h);
}

static void
sink_value_ref(void *arg, struct cask_vref *ref)
{
    struct conn *c = arg;
    struct cask_vref *h = NULL;
    struct evbuffer_file_segment *seg = NULL;

    if (sink_buf(c) != c->out) {
        /* Held behind a write's reply: a staging buffer moves bytes, so
         * copy the value instead of sending it from its file. */
        size_t len = ref->len;
        char *buf = malloc(len > 0 ? len : 1);
        ssize_t n = -1;

        if (buf != NULL) {
            n = pread(ref->fd, buf, len, (off_t)ref->off);
        }
        cask_vref_release(ref);
        memset(ref, 0, sizeof(*ref));
        if (n < 0 || (size_t)n != len) {
            /* the reply is cut short: close rather than send it wrong */
            free(buf);
            c->broken = true;
            return;
        }
        sink_value(c, buf, len);
        return;
    }
    if (direct_ref(c, ref)) {
        return; /* written with the bytes held before and after it */
    }
    h = malloc(sizeof(*h));
    if (h != NULL && ref->ptr != NULL) {
        /* Mapped: a chain like any other, so the reply line, the value
         * and what follows leave in one writev (the kernel copies from
         * the page cache; a file segment chain would take a write of its
         * own). Nothing here reads the bytes (cask_vref). Measured
         * against sendfile for every value from 16 KiB (bench_large.sh,
         * 64 KiB over loopback, Linux 6.18): the copy costs less than
         * splicing 16 page references and the third write, 31-33 us of
         * CPU per op against 36-38, and 46-48 with TCP_CORK around the
         * writes to keep the packets together. */
        *h = *ref;
        memset(ref, 0, sizeof(*ref));
        ref->fd = -1;
        if (evbuffer_add_reference(c->out, h->ptr, h->len, value_map_done, h) !=
            0) {
            value_map_done(NULL, 0, h);
            c->broken = true;
            return;
        }
        c->after_ref = true; /* see out_add */
        c->out_refs += h->len;
        return;
    }
    if (h != NULL) {
        *h = *ref;
        seg = evbuffer_file_segment_new(
                ref->fd, (ev_off_t)ref->off, (ev_off_t)ref->len,
                EVBUF_FS_DISABLE_MMAP | EVBUF_FS_DISABLE_LOCKING);
    }
    if (seg == NULL) {
        /* the reply is cut short: close rather than send it wrong */
        free(h);
        cask_vref_release(ref);
        c->broken = true;
        return;
    }
    evbuffer_file_segment_add_cleanup_cb(seg, value_ref_done, h);
    if (evbuffer_add_file_segment(c->out, seg, 0, (ev_off_t)h->len) != 0) {
        c->broken = true;
    }
    c->after_ref = true; /* see out_add */
    c->out_refs += h->len;
    evbuffer_file_segment_free(seg); /* the buffer's chain holds it now */
    memset(ref, 0, sizeof(*ref));
}

/* Move what c->d holds unwritten to the front of out, where bytes were
 * queued after it (a value copied, or more than d takes), so that all of
 * it leaves in one write as before. False when memory ran out (then the
 * replies cannot be completed in order). */
static bool
direct_spill(struct conn *c)
{
    struct direct *d = &c->d;
    size_t skip = d->sent;
    size_t vlen = d->ref.seg != NULL ? d->ref.len : 0;
    bool ok;

    if (c->front == NULL) {
        c->front = evbuffer_new();
    }
    ok = c->front != NULL;
    if (ok && skip < d->head_len) {
        ok = evbuffer_add(c->front, d->head + skip, d->head_len - skip) == 0;
    }
    skip = skip > d->head_len ? skip - d->head_len : 0;
    if (ok && skip < vlen) {
        struct cask_vref *h = malloc(sizeof(*h));
        ok = h != NULL;
        if (ok) {
            *h = d->ref; /* the pin goes with the chain */
            memset(&d->ref, 0, sizeof(d->ref));
            if (evbuffer_add_reference(c->front, h->ptr + skip, h->len - skip,
                                       value_map_done, h) != 0) {
                value_map_done(NULL, 0, h);
                ok = false;
            } else {
                c->out_refs += h->len - skip;
            }
        }
    }
    skip = skip > vlen ? skip - vlen : 0;
    if (ok && skip < d->tail_len) {
        ok = evbuffer_add(c->front, d->tail + skip, d->tail_len - skip) == 0;
    }
    if (ok) {
        ok = evbuffer_prepend_buffer(c->out, c->front) == 0;
    }
    if (c->front != NULL) {
        /* after a failure: unpins a value moved there */
        evbuffer_drain(c->front, evbuffer_get_length(c->front));
    }
    direct_reset(c);
    return ok;
}

/* Write what the socket takes now. Returns the bytes written; on a write
 * error marks the connection broken (the caller closes it). */
static size_t
write_some(struct conn *c)
{
    size_t total = 0;

    if (direct_len(c) > 0 && evbuffer_get_length(c->out) > 0 &&
        !direct_spill(c)) {
        c->broken = true;
    }
    while (!c->broken && c->tls == NULL && direct_len(c) > 0) {
        /* the front of the queue: out waits until it is all written */
        ssize_t n = direct_write(c);
        if (n > 0) {
            c->w->bytes_written += (uint64_t)n;
            c->turn_written += (size_t)n;
            total += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return total;
        }
        /* EFAULT: the value's file was cut short under its mapping; the
         * reply cannot be completed */
        c->broken = true;
    }
    while (!c->broken && evbuffer_get_length(c->out) > 0) {
        errno = 0;
        int n = c->tls != NULL ? tls_conn_write(c->tls, c->out)
                               : evbuffer_write(c->out, c->fd);
        if (n > 0) {
            c->w->bytes_written += (uint64_t)n;
            c->turn_written += (size_t)n;
            total += (size_t)n;
            continue;
        }
        /* libevent answers a sendfile that would block (a value sent from
         * its file) with 0 and errno EAGAIN; 0 otherwise is a file that
         * ended early, and the reply cannot be completed */
        if (n <= 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0 && errno == EINTR) {
            continue;
        }
        c->broken = true;
    }
    return total;
}

/* Replies queued for the socket (c->d and out). */
static size_t
out_queued(const struct conn *c)
{
    return evbuffer_get_length(c->out) + direct_len(c);
}

/* Replies queued and staged. */
static size_t
out_len(const struct conn *c)
{
    size_t len = evbuffer_get_length(c->out) + direct_len(c);

    return c->stage != NULL ? len + evbuffer_get_length(c->stage) : len;
}

/* Should the connection stop producing replies? Over OUT_HIGH, or over
 * OUT_LOW while all connections together are over the output budget. */
static bool
over_high(const struct conn *c)
{
    size_t len = out_len(c);

    return c->broken || len >= OUT_HIGH || (len > OUT_LOW && outbudget_over());
}

/* Has this connection had its share of the worker for this turn? */
static bool
turn_over(const struct conn *c)
{
    return c->turn_written >= TURN_BYTES;
}

/* cmd.c asks between the keys of a multi-get: write first, so that a client
 * that reads keeps its reply flowing, then pause if still over (or yield,
 * when the turn's share is used up: see process). */
static bool
out_full(void *arg)
{
    struct conn *c = arg;

    if (turn_over(c)) {
        return true;
    }
    if (!over_high(c)) {
        return false;
    }
    if (c->stage != NULL && c->pend_n == 0 &&
        (c->cur_tk == NULL || !ticket_waits(c->cur_tk))) {
        /* nothing waits, this request (a gat) has not written yet */
        evbuffer_add_buffer(c->out, c->stage);
    }
    write_some(c);
    return over_high(c) || turn_over(c);
}

/* Continue on a zero timer: after the worker's other ready connections,
 * and after the loop has polled the sockets again. */
static void
next_turn(struct conn *c)
{
    static const struct timeval now = {0, 0};

    c->yielded = true;
    evtimer_add(c->resume_ev, &now);
}

/* Give the worker's other connections a turn. */
static void
yield(struct conn *c)
{
    c->w->conn_yields++;
    next_turn(c);
}

/* Seconds without write progress after which the connection is closed: the
 * write timeout, or the idle timeout when shorter (a connection paused for
 * backpressure does not read, so the read event cannot time it out). */
static unsigned
stall_timeout_s(const struct conn *c)
{
    const struct settings *s = c->w->srv->settings;
    unsigned t = s->write_timeout_s;

    if (s->idle_timeout_s != 0 && (t == 0 || s->idle_timeout_s < t)) {
        t = s->idle_timeout_s;
    }
    return t;
}

/* Tell the worker's read-buffer totals about a change of size or fill. */
static void
rbuf_account(struct conn *c, size_t old_size)
{
    size_t held = c->rend - c->rstart;

    c->w->rbuf_bytes += c->rsize - old_size;
    c->w->rbuf_held += held - c->rheld;
    c->rheld = held;
}

/* Report the output queue's size to the budget. */
static void
out_account(struct conn *c)
{
    size_t len = out_len(c);

    if (len != c->out_counted) {
        /* a shared cache line: touched only when the size changed */
        outbudget_add((int64_t)len - (int64_t)c->out_counted);
        c->out_counted = len;
    }
}

static void
set_reading(struct conn *c, bool on)
{
    if ((c->parked || waiting(c)) && c->park_full) {
        on = false; /* unpark or conn_read_resume turns it back on */
    }
    if (c->peer_eof) {
        on = false; /* nothing more will come */
    }
    if (on == c->reading) {
        return;
    }
    if (on) {
        const struct settings *s = c->w->srv->settings;
        struct timeval tv = {.tv_sec = (time_t)s->idle_timeout_s};
        event_add(c->rev, s->idle_timeout_s ? &tv : NULL);
    } else {
        event_del(c->rev);
    }
    c->reading = on;
}

void
conn_new(struct worker *w, int fd, bool is_unix, bool tls)
{
    struct server *srv = w->srv;
    struct conn *c = calloc(1, sizeof(*c));
    struct cmd_sink sink;

    if (c == NULL) {
        goto fail;
    }
    c->fd = fd;
    c->w = w;
    c->rsize = RBUF_INITIAL;
    c->rbuf = malloc(c->rsize);
    c->out = evbuffer_new();
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    c->resume_ev = evtimer_new(w->base, on_resume, c);
    c->always = srv->settings->sync == CASK_SYNC_ALWAYS;
    c->stage = evbuffer_new();
    if (c->stage == NULL) {
        goto fail;
    }
    if (c->rbuf == NULL || c->out == NULL || c->rev == NULL || c->wev == NULL ||
        c->resume_ev == NULL) {
        goto fail;
    }
    if (tls && (c->tls = tls_conn_create(fd)) == NULL) {
        goto fail;
    }
    c->out_cap = OUT_CAP_MIN;
    if (c->out_cap < 4ull * srv->settings->item_size_max) {
        c->out_cap = 4ull * srv->settings->item_size_max;
    }
    if (!is_unix) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    sink.bytes = sink_bytes;
    sink.value = sink_value;
    sink.arg = c;
    sink.value_ref = NULL;
    if (c->tls == NULL && !c->always &&
        evbuffer_set_flags(c->out, EVBUFFER_FLAG_DRAINS_TO_FD) == 0) {
        /* replies go to the socket as they are: large values may be sent
         * from the store's files (TLS must encrypt them, and a staging
         * buffer moves bytes between buffers: sink_value_ref copies a
         * value held behind a write's reply) */
        sink.value_ref = sink_value_ref;
        c->direct_on = true;
    }
    cmd_conn_init(&c->cc, &srv->env, &w->ctr, &sink);
    cmd_conn_set_throttle(&c->cc, out_full, c);
    /* a write that would wait for a roll-over parks here (block) */
    c->cc.park_writes = srv->store != NULL;
    if (w->read_submit != NULL) {
        c->cc.rd.submit = w->read_submit;
        c->cc.rd.submit_arg = w->read_arg;
        c->cc.rd.owner = c;
    }
    cmd_bin_init(&c->bin, &c->cc, srv->sasl_pwdb);
    auth_text_init(&c->auth, srv->settings->auth_file);
    c->protocol = srv->settings->protocol;
    c->info = conn_table_add(fd, 0, is_unix);
    c->cc.fd = fd;
    c->is_unix = is_unix;
    watch_conn(fd, is_unix, WATCH_CONN_NEW);
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->rbuf_count++;
    rbuf_account(c, 0);
    set_reading(c, true);
    log_msg(LOG_DEBUG, "<%d new %s client connection", fd,
            is_unix ? "unix" : (tls ? "tls" : "tcp"));
    return;

fail:
    w->malloc_fails++;
    log_msg(LOG_WARN, "out of memory for a new connection; closing it");
    if (c != NULL) {
        if (c->rev) {
            event_free(c->rev);
        }
        if (c->wev) {
            event_free(c->wev);
        }
        if (c->resume_ev) {
            event_free(c->resume_ev);
        }
        if (c->out) {
            evbuffer_free(c->out);
        }
        if (c->stage) {
            evbuffer_free(c->stage);
        }
        free(c->rbuf);
        free(c);
    }
    close(fd);
    atomic_fetch_sub(&srv->curr_conns, 1);
}

static void
unpark(struct conn *c)
{
    if (c->parked) {
        TAILQ_REMOVE(&c->w->parked, c, park_link);
        atomic_fetch_sub(&c->w->nparked, 1);
        c->parked = false;
        c->park_full = false;
    }
}

/* A write of c would wait for a roll-over: join the worker's blocked
 * list. Publishes the wait, then looks whether the store ended it
 * meanwhile (cask_blocked_gen): then the worker runs it again itself. */
static void
block(struct conn *c)
{
    struct worker *w = c->w;

    c->write_wait = true;
    TAILQ_INSERT_TAIL(&w->blocked, c, block_link);
    worker_block_one(w);
}

static void
unblock(struct conn *c)
{
    if (c->write_wait) {
        TAILQ_REMOVE(&c->w->blocked, c, block_link);
        atomic_fetch_sub(&c->w->nblocked, 1);
        c->write_wait = false;
        if (!c->parked && !c->read_wait) {
            c->park_full = false;
        }
    }
}

static void
conn_close(struct conn *c)
{
    struct worker *w = c->w;

    log_msg(LOG_DEBUG, "<%d connection closed", c->fd);
    watch_remove(&c->watch); /* first: other threads write into c->out */
    if (c->cc.quit) {
        c->close_reason = WATCH_CLOSE_NORMAL;
    } else if (w->stopping) {
        c->close_reason = WATCH_CLOSE_SHUTDOWN;
    }
    watch_conn(c->fd, c->is_unix, (enum watch_conn_ev)c->close_reason);
    TAILQ_REMOVE(&w->conns, c, link);
    unpark(c);  /* replies still waiting for a commit are never sent */
    unblock(c); /* nor is a write that waited for a roll-over made */
    if (c->held) {
        TAILQ_REMOVE(&w->held, c, held_link);
        c->held = false;
    }
    conn_table_remove(&c->info);
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->resume_ev);
    cmd_conn_deinit(&c->cc);
    cmd_bin_deinit(&c->bin);
    outbudget_add(-(int64_t)c->out_counted);
    w->trim_credit += out_len(c) + c->rsize;
    direct_reset(c);
    if (c->front != NULL) {
        evbuffer_free(c->front);
    }
    evbuffer_free(c->out);
    if (c->stage != NULL) {
        evbuffer_free(c->stage);
    }
    free(c->pend);
    w->rbuf_count--;
    w->rbuf_kept -= c->rkept;
    w->rbuf_bytes -= c->rsize;
    w->rbuf_held -= c->rheld;
    free(c->rbuf);
    tls_conn_destroy(&c->tls);
    close(c->fd);
    atomic_fetch_sub(&w->srv->curr_conns, 1);
    free(c);
    if (w->stopping && TAILQ_EMPTY(&w->conns)) {
        event_base_loopbreak(w->base);
    }
}

/* Is the rest of a refused data block or body still to be dropped? */
static bool
swallowing(const struct conn *c)
{
    if (c->protocol == SETTINGS_PROTO_BINARY) {
        return cmd_bin_swallowing(&c->bin);
    }
    return c->protocol == SETTINGS_PROTO_ASCII && cmd_swallowing(&c->cc);
}

/* Write what is queued, keep the write event (and its stall timeout) armed
 * while anything is left, and report the queue to the output budget.
 * While a refused data block is being dropped, the replies wait for its
 * last byte, as memcached's do (a client that sends the body only once it
 * has the answer sees the same order); only while they are few (OUT_LOW),
 * so that a full queue is never held against a client that waits for it.
 * Returns -1 if the connection was closed. */
static int
flush_out(struct conn *c)
{
    if (swallowing(c) && !c->closing && !c->broken &&
        out_queued(c) <= OUT_LOW) {
        if (c->writing) {
            event_del(c->wev); /* armed, it would fire at once, again */
            c->writing = false;
        }
        return 0;
    }
    size_t before = evbuffer_get_length(c->out);
    size_t wrote = write_some(c);
    size_t heap = before > c->out_refs ? before - c->out_refs : 0;

    if (heap > OUT_LOW) {
        /* draining a large queue frees memory worth trimming; values sent
         * from their segment's mapping or file free none of ours */
        c->w->trim_credit += wrote < heap ? wrote : heap;
    }
    if (evbuffer_get_length(c->out) == 0) {
        c->out_refs = 0;
    }
    out_account(c);
    if (c->broken) {
        conn_close(c);
        return -1;
    }
    if (out_queued(c) > 0) {
        /* Re-arm only on progress, so that the timeout counts from the
         * last byte the client took. */
        if (!c->writing || wrote > 0) {
            unsigned t = stall_timeout_s(c);
            struct timeval tv = {.tv_sec = (time_t)t};
            event_add(c->wev, t ? &tv : NULL);
            c->writing = true;
        }
        return 0;
    }
    if (c->writing) {
        event_del(c->wev);
        c->writing = false;
    }
    if (c->closing && c->pend_n == c->phead) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Resize the read buffer (its data already starts at rbuf). */
static int
rbuf_resize(struct conn *c, size_t nsize)
{
    size_t old = c->rsize;
    char *nb = realloc(c->rbuf, nsize);

    if (nb == NULL) {
        c->w->rbuf_oom++;
        return -1;
    }
    c->rbuf = nb;
    c->rsize = nsize;
    rbuf_account(c, old);
    return 0;
}

/* What the request at the start of the read buffer needs, or 0. */
static size_t
bytes_wanted(const struct conn *c)
{
    if (c->protocol == SETTINGS_PROTO_BINARY) {
        return cmd_bin_wanted(&c->bin);
    }
    if (auth_text_pending(&c->auth)) {
        return auth_text_wanted(c->rbuf + c->rstart, c->rend - c->rstart);
    }
    return cmd_bytes_wanted(&c->cc);
}

/* Should the grown read buffer stay as it is (big: this pass held a large
 * request)? Counts it in the worker's kept bytes when it does. */
static bool
keep_rbuf(struct conn *c, bool big)
{
    struct worker *w = c->w;

    if (big) {
        c->rcool = 0;
    } else if (c->rcool < RBUF_COOL_PASSES) {
        c->rcool++;
    }
    if (c->rkept == c->rsize && c->rcool < RBUF_COOL_PASSES) {
        return true;
    }
    w->rbuf_kept -= c->rkept;
    c->rkept = 0;
    if (c->rsize > RBUF_BUSY_MAX || c->rcool >= RBUF_COOL_PASSES ||
        w->rbuf_kept + c->rsize > RBUF_KEPT_MAX) {
        return false;
    }
    c->rkept = c->rsize;
    w->rbuf_kept += c->rsize;
    return true;
}

/* After a large request: give the memory back once little is held, unless
 * the connection keeps sending large ones (keep_rbuf). */
static void
shrink_rbuf(struct conn *c)
{
    size_t have = c->rend - c->rstart;
    bool big = c->rbig;

    c->rbig = false;
    if (c->rsize <= RBUF_KEEP_MAX || have > RBUF_INITIAL / 2 ||
        bytes_wanted(c) > RBUF_INITIAL / 2 || keep_rbuf(c, big)) {
        return;
    }
    memmove(c->rbuf, c->rbuf + c->rstart, have);
    c->rstart = 0;
    c->rend = have;
    c->w->trim_credit += c->rsize - RBUF_INITIAL;
    rbuf_resize(c, RBUF_INITIAL); /* on failure the old buffer stays */
}

/* Over the output budget: close w's largest queue, if it is large enough to
 * matter. The walk over the worker's connections is done at most every
 * BUDGET_SCAN_MS, so that a budget that stays exceeded does not cost every
 * request a walk. Returns true if it closed c (which may be NULL). */
static bool
close_worst(struct worker *w, const struct conn *c)
{
    struct conn *it, *worst = NULL;
    size_t worst_len = OUT_LOW;
    struct timeval tv;
    uint64_t now_ms;

    event_base_gettimeofday_cached(w->base, &tv);
    now_ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    if (now_ms - w->budget_scan_ms < BUDGET_SCAN_MS) {
        return false;
    }
    w->budget_scan_ms = now_ms;
    TAILQ_FOREACH(it, &w->conns, link) {
        size_t len = evbuffer_get_length(it->out);
        if (len > worst_len) {
            worst = it;
            worst_len = len;
        }
    }
    if (worst == NULL) {
        return false;
    }
    if (outbudget_note_close()) {
        log_msg(LOG_WARN,
                "replies queued on all connections passed the output "
                "budget (%llu bytes); closing the largest queues, "
                "first <%d with %zu bytes",
                (unsigned long long)outbudget_limit(), worst->fd, worst_len);
    }
    conn_close(worst);
    return worst == c;
}

void
conn_budget_tick(struct worker *w)
{
    if (outbudget_over()) {
        close_worst(w, NULL);
    }
}

/* Make room to read at least `want` more bytes (or grow toward a request of
 * `total` bytes). Returns -1 when no memory. */
static int
make_room(struct conn *c, size_t total)
{
    size_t have = c->rend - c->rstart;
    size_t need = total > have + 1 ? total : have + RBUF_INITIAL;

    if (c->rstart > 0 && (c->rsize - c->rend < RBUF_INITIAL / 4 ||
                          need > c->rsize - c->rstart)) {
        memmove(c->rbuf, c->rbuf + c->rstart, have);
        c->rend = have;
        c->rstart = 0;
    }
    if (need > c->rsize) {
        size_t nsize = c->rsize;
        while (nsize < need) {
            nsize *= 2;
        }
        if (rbuf_resize(c, nsize) < 0) {
            return -1;
        }
    }
    return 0;
}

/* -vv: the first line of what a request consumed, as memcached logs it,
 * shortened and with unprintable bytes shown as '.'. */
static void
log_request(int fd, const char *p, size_t n)
{
    char line[96];
    size_t i;

    for (i = 0; i < n && i < sizeof(line) - 1; i++) {
        if (p[i] == '\r' || p[i] == '\n') {
            break;
        }
        line[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '.';
    }
    line[i] = '\0';
    log_msg(LOG_DEBUG, "<%d %s", fd, line);
}

/* `watch` accepted: from now on other workers append log lines to c->out
 * (so it takes a lock) and wake c->wev; input is read and dropped. */
static void
start_watch(struct conn *c)
{
    const struct settings *s = c->w->srv->settings;

    if (evbuffer_enable_locking(c->out, NULL) == 0) {
        c->watch = watch_add(c->out, c->wev, c->cc.watch_mask,
                             s->mc.watcher_logbuf_size);
    }
    if (c->watch == NULL) {
        log_msg(LOG_WARN, "<%d cannot add a watcher; closing", c->fd);
        c->closing = true;
        set_reading(c, false);
        return;
    }
    c->rstart = c->rend = 0;
    conn_table_set(c->info, CONN_ST_WATCH, 0);
}

/* ---- --sync=always: replies held for their commit ---------------------- */

/* conn_commit_done walks the parked list: process() must not close other
 * connections meanwhile (close_worst; the budget tick does it instead). */
static _Thread_local bool releasing;

static void
late_bytes(void *arg, const void *p, size_t n)
{
    evbuffer_add(arg, p, n);
}

/* Move the replies of every waiting write whose commit is done to out, in
 * order (a failed commit's writes answer their error instead), and with
 * them the replies between. Once nothing waits, the rest of stage too. */
static void
release(struct conn *c)
{
    struct cask *store = c->w->srv->store;
    size_t run = 0; /* stage bytes of done, successful replies not moved */

    while (c->phead < c->pend_n) {
        struct pend *p = &c->pend[c->phead];
        int rc;

        if (!cask_ticket_done(store, &p->t, &rc)) {
            break;
        }
        if (rc == CASK_OK) {
            /* Moved together with the run of replies around it: at a pass
             * end usually all of them, in one evbuffer call. */
            run += p->pre + p->len;
        } else {
            struct cmd_sink sink = {.bytes = late_bytes, .arg = c->out};

            evbuffer_remove_buffer(c->stage, c->out, run + p->pre);
            run = 0;
            evbuffer_drain(c->stage, p->len);
            cmd_late_error(&p->tag, rc, &sink);
        }
        c->stage_mark -= p->pre + p->len;
        c->phead++;
    }
    if (c->phead == c->pend_n) {
        c->phead = c->pend_n = 0;
        c->stage_mark = 0;
        evbuffer_add_buffer(c->out, c->stage);
    } else if (run > 0) {
        evbuffer_remove_buffer(c->stage, c->out, run);
    }
}

/* After a request ran with its sync waits deferred into t: its reply is
 * the stage bytes from s0 on. Returns -1 when out of memory. */
static int
staged(struct conn *c, const struct cask_ticket *t, size_t s0)
{
    size_t now = evbuffer_get_length(c->stage);

    if (!ticket_waits(t)) {
        if (c->pend_n == 0) {
            evbuffer_add_buffer(c->out, c->stage); /* nothing to wait for */
        }
        return 0;
    }
    if (c->pend_n == c->pend_cap) {
        if (c->phead > 0) {
            memmove(c->pend, c->pend + c->phead,
                    (c->pend_n - c->phead) * sizeof(*c->pend));
            c->pend_n -= c->phead;
            c->phead = 0;
        } else {
            size_t ncap = c->pend_cap ? 2 * c->pend_cap : 8;
            struct pend *np = realloc(c->pend, ncap * sizeof(*np));
            if (np == NULL) {
                return -1;
            }
            c->pend = np;
            c->pend_cap = ncap;
        }
    }
    c->pend[c->pend_n++] = (struct pend){.t = *t,
                                         .need = t->wseq != 0 ? 0 : t->epoch,
                                         .tag = c->cc.tag,
                                         .pre = s0 - c->stage_mark,
                                         .len = now - s0};
    c->stage_mark = now;
    return 0;
}

/* Writes wait: stop reading until they are committed. Checks once more
 * after joining the parked list, so that a commit that finished before
 * the worker could be told is not missed. */
static void
park(struct conn *c)
{
    if (c->pend_n == 0 || !c->always) {
        return; /* a batch write is done before the loop polls again */
    }
    if (!c->parked) {
        c->parked = true;
        /* It keeps its read event (read_parked): no epoll_ctl per
         * commit, TLS or not. */
        TAILQ_INSERT_TAIL(&c->w->parked, c, park_link);
        atomic_fetch_add(&c->w->nparked, 1);
    }
    /* A staged write's need is known after the batch write, which
     * publishes it (conn_pass_end); nothing commits it before. */
    if (c->pend[c->phead].need != 0) {
        worker_commit_wait(c->w, c->pend[c->phead].need);
    }
    release(c);
    if (c->pend_n == 0) {
        unpark(c);
        if (!c->paused && !c->closing && !c->w->stopping) {
            set_reading(c, true);
            if (!c->yielded && c->rstart < c->rend) {
                next_turn(c); /* process stopped at PEND_MAX */
            }
        }
    }
}

/* Execute the complete requests in the read buffer, as long as output
 * backpressure allows and at most -R of them before yielding. Returns -1 if
 * the connection was closed. */
static int
process(struct conn *c)
{
    unsigned turn = c->w->srv->settings->reqs_per_event;
    unsigned served = 0;
    bool starved = false; /* stopped for want of input */

    c->turn_written = 0;
    if (c->watch != NULL) {
        /* a watcher only receives log lines; what it sends is dropped */
        c->rstart = c->rend = 0;
        return flush_out(c);
    }
    if (c->rstart < c->rend) {
        conn_table_set(c->info, CONN_ST_PARSE_CMD, (int64_t)time(NULL));
    }
    /* A dump in progress (cmd_busy) runs a batch per call, input or not. */
    while (!c->closing && !waiting(c) &&
           (c->rstart < c->rend || cmd_busy(&c->cc))) {
        size_t used = 0;
        enum cmd_status st;

        if (over_high(c)) {
            c->paused = true;
            set_reading(c, false);
            break;
        }
        if (served >= turn || turn_over(c)) {
            yield(c);
            break;
        }
        if (c->pend_n - c->phead >= PEND_MAX) {
            break; /* conn_commit_done goes on */
        }
        if (c->protocol == SETTINGS_PROTO_AUTO) {
            /* memcached: a connection speaks binary if its first byte is
             * the request magic, text otherwise, for good */
            c->protocol = (unsigned char)c->rbuf[c->rstart] == PROTO_BIN_REQ
                                  ? SETTINGS_PROTO_BINARY
                                  : SETTINGS_PROTO_ASCII;
        }
        struct cask_ticket tk = {0};
        size_t s0 = 0;
        if (c->stage != NULL) {
            s0 = evbuffer_get_length(c->stage);
            /* Not with --min-replicas-ack: a write waits for its replicas
             * inside the store call, so its record must be written by
             * then. UDP requests never batch (udp.c). */
            tk.batch = c->w->srv->settings->min_replicas_ack == 0;
            cask_defer(&tk);
            c->cur_tk = &tk;
        }
        if (c->protocol == SETTINGS_PROTO_BINARY) {
            st = cmd_bin_execute(&c->cc, &c->bin, c->rbuf + c->rstart,
                                 c->rend - c->rstart, &used);
        } else if (auth_text_pending(&c->auth)) {
            st = auth_text_execute(&c->auth, &c->cc, c->rbuf + c->rstart,
                                   c->rend - c->rstart, &used);
        } else {
            st = cmd_execute(&c->cc, c->rbuf + c->rstart, c->rend - c->rstart,
                             &used);
        }
        if (c->stage != NULL) {
            cask_defer(NULL);
            c->cur_tk = NULL;
            if (staged(c, &tk, s0) < 0) {
                log_msg(LOG_WARN, "<%d no memory to hold a reply; closing",
                        c->fd);
                conn_close(c);
                return -1;
            }
        }
        if (st == CMD_PARK && c->cc.write_parked) {
            /* A write would wait for a roll-over: it runs again when the
             * store says (conn_unblock_all); the replies before it go out
             * meanwhile. */
            block(c);
            break;
        }
        if (st == CMD_PARK) {
            /* A get waits for its value; the replies before it go out
             * meanwhile. conn_read_resume goes on. The read event stays
             * (on_read reads ahead, through OpenSSL too): no epoll_ctl. */
            c->read_wait = true;
            break;
        }
        if (st == CMD_PAUSE) {
            /* A multi-get stopped between keys: on_write resumes it when
             * the queue is over its cap, resume_ev when only the turn is
             * over. */
            if (over_high(c)) {
                c->paused = true;
                set_reading(c, false);
            } else {
                yield(c);
            }
            break;
        }
        if (st != CMD_NEED_MORE) {
            /* A request that is still incomplete consumes nothing. */
            if (used > 0 && c->protocol == SETTINGS_PROTO_ASCII &&
                log_enabled(LOG_DEBUG)) {
                log_request(c->fd, c->rbuf + c->rstart, used);
            }
            c->rstart += used;
        }
        if (out_len(c) > c->out_cap) {
            log_msg(LOG_INFO, "<%d output queue above %zu bytes; closing",
                    c->fd, c->out_cap);
            conn_close(c);
            return -1;
        }
        if (st == CMD_DONE) {
            served++;
            continue;
        }
        if (st == CMD_NEED_MORE) {
            size_t want = bytes_wanted(c);
            size_t limit = (size_t)c->w->srv->settings->item_size_max +
                           CMD_LINE_MAX + RBUF_LIMIT_SLACK;
            if (want > limit || c->rend - c->rstart > limit) {
                /* The parser bounds requests; this is a last line of
                 * defence against a buffer that would only grow. */
                log_msg(LOG_INFO, "<%d request above %zu bytes; closing", c->fd,
                        limit);
                conn_close(c);
                return -1;
            }
            if (want > c->rsize - c->rstart || c->rend == c->rsize) {
                if (make_room(c, want) < 0) {
                    log_msg(LOG_WARN,
                            "<%d no memory for a %zu byte request;"
                            " closing",
                            c->fd, want);
                    conn_close(c);
                    return -1;
                }
            }
            starved = true;
            break;
        }
        if (st == CMD_WATCH) {
            start_watch(c);
            break;
        }
        if (st == CMD_SHUTDOWN) {
            server_request_stop(c->w->srv);
        }
        c->closing = true;
        set_reading(c, false);
    }
    if (c->rstart == c->rend) {
        c->rstart = c->rend = 0;
        starved = starved || !cmd_busy(&c->cc);
    }
    if (c->peer_eof && starved && !c->closing && !waiting(c) && !c->paused &&
        !c->yielded) {
        /* the client is gone and what it sent has run: its replies go
         * out (those held for a commit once it is done), then it closes */
        c->closing = true;
    }
    conn_table_set(c->info,
                   c->paused                      ? CONN_ST_MWRITE
                   : c->watch || cmd_busy(&c->cc) ? CONN_ST_WATCH
                   : cmd_swallowing(&c->cc)       ? CONN_ST_SWALLOW
                   : cmd_bytes_wanted(&c->cc) > 0 ? CONN_ST_NREAD
                                                  : CONN_ST_READ,
                   0);
    if (!c->closing) {
        shrink_rbuf(c);
    }
    rbuf_account(c, c->rsize);
    park(c);
    if (c->pend_n > c->phead && !c->held && cask_batch_pending() > 0) {
        /* its replies may wait for this pass's batch write */
        c->held = true;
        TAILQ_INSERT_TAIL(&c->w->held, c, held_link);
    }
    if (flush_out(c) < 0) {
        return -1;
    }
    if (c->paused && !c->yielded && out_queued(c) <= OUT_LOW) {
        /* The client read it all at once: no write event will come to
         * resume, so take another turn after the others. */
        c->paused = false;
        set_reading(c, true);
        next_turn(c);
    }
    if (outbudget_over() && !releasing && close_worst(c->w, c)) {
        return -1;
    }
    return 0;
}

/* Bytes OpenSSL has decrypted and not handed over yet. */
static bool
tls_more(const struct conn *c)
{
    return c->tls != NULL && c->reading && !c->yielded &&
           tls_conn_pending(c->tls);
}

/* read(2) on the socket, or through TLS. A TLS handshake that must write
 * before it can read on arms the write event (on_write reads again). */
static ssize_t
conn_read(struct conn *c, char *buf, size_t room)
{
    bool want_write = false;
    ssize_t n;

    if (c->tls == NULL) {
        return read(c->fd, buf, room);
    }
    n = tls_conn_read(c->tls, buf, room, &want_write);
    if (n < 0 && want_write && !c->tls_read_blocked) {
        c->tls_read_blocked = true;
        if (!c->writing) {
            event_add(c->wev, NULL);
        }
    }
    return n;
}

/* Parked (its writes wait for a commit) or waiting for a value read: read
 * what the client sends into the buffer without running it, up to
 * PARK_READ_MAX unprocessed bytes; only then stop reading. Returns -1 if
 * the connection was closed. */
static int
read_parked(struct conn *c)
{
    for (;;) {
        size_t held = c->rend - c->rstart;
        if (held >= PARK_READ_MAX) {
            c->park_full = true;
            set_reading(c, false);
            return 0;
        }
        if (c->rsize - c->rend < 1024 && make_room(c, 0) < 0) {
            conn_close(c);
            return -1;
        }
        size_t room = c->rsize - c->rend;
        if (room > PARK_READ_MAX - held) {
            room = PARK_READ_MAX - held;
        }
        ssize_t n = conn_read(c, c->rbuf + c->rend, room);
        if (n == 0) {
            /* What it sent before still runs (process closes it then);
             * with nothing left to run it closes once its replies are
             * out (those held for a commit, once it is done). */
            c->close_reason = WATCH_CLOSE_NORMAL;
            c->peer_eof = true;
            set_reading(c, false);
            if (!waiting(c) && c->rstart == c->rend && !cmd_busy(&c->cc)) {
                c->closing = true;
                return flush_out(c) < 0 ? -1 : 0;
            }
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            log_msg(LOG_DEBUG, "<%d read: %s", c->fd, strerror(errno));
            conn_close(c);
            return -1;
        }
        c->rend += (size_t)n;
        c->w->bytes_read += (uint64_t)n;
        if ((size_t)n < room && !tls_more(c)) {
            /* TLS: decrypted bytes left inside OpenSSL announce
             * themselves by no event, so those are taken too (or, past
             * PARK_READ_MAX, when the connection is unparked: its
             * requests then run, and on_resume looks at tls_more) */
            return 0;
        }
    }
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if ((what & EV_TIMEOUT) && (c->parked || waiting(c))) {
        return; /* waiting for its commit or its value is not idling */
    }
    if (what & EV_TIMEOUT) {
        log_msg(LOG_INFO, "<%d idle for %u s; closing", (int)fd,
                c->w->srv->settings->idle_timeout_s);
        c->w->idle_kicks++;
        c->close_reason = WATCH_CLOSE_IDLE;
        conn_close(c);
        return;
    }
    if ((c->parked || waiting(c)) && !c->yielded && !c->paused) {
        (void)read_parked(c);
        return;
    }
    if (c->yielded || c->paused || c->parked || waiting(c)) {
        /* Buffered requests come first; reading more now would only grow
         * the buffer. resume_ev, on_write or conn_commit_done carries on. */
        return;
    }
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n;
        size_t room;

        if (c->rsize - c->rend < 1024) {
            if (make_room(c, 0) < 0) {
                conn_close(c);
                return;
            }
        }
        room = c->rsize - c->rend;
        n = conn_read(c, c->rbuf + c->rend, room);
        if (n == 0) {
            c->close_reason = WATCH_CLOSE_NORMAL; /* the client closed */
            conn_close(c);
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            log_msg(LOG_DEBUG, "<%d read: %s", (int)fd, strerror(errno));
            conn_close(c);
            return;
        }
        c->rend += (size_t)n;
        c->w->bytes_read += (uint64_t)n;
        if (c->rend - c->rstart > RBUF_KEEP_MAX) {
            c->rbig = true; /* see keep_rbuf */
        }
        if (process(c) < 0) {
            return;
        }
        if (!c->reading || c->yielded || waiting(c)) {
            return;
        }
        if ((size_t)n < room && !tls_more(c)) {
            return;
        }
    }
    if (tls_more(c)) {
        /* decrypted bytes wait inside OpenSSL: no socket event will come */
        event_active(c->rev, EV_READ, 0);
    }
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (what & EV_TIMEOUT) {
        log_msg(LOG_INFO,
                "<%d read none of its %zu queued reply bytes for "
                "%u s; closing",
                (int)fd, out_queued(c), stall_timeout_s(c));
        c->w->write_timeouts++;
        conn_close(c);
        return;
    }
    if (c->tls_read_blocked) {
        c->tls_read_blocked = false;
        if (!c->writing) {
            event_del(c->wev);
        }
        on_read(fd, EV_READ, c); /* may close c */
        return;
    }
    if (flush_out(c) < 0) {
        return;
    }
    if (c->paused && !over_high(c) && out_queued(c) <= OUT_LOW) {
        c->paused = false;
        if (!c->closing && !c->w->stopping) {
            set_reading(c, true);
            if (process(c) == 0 && tls_more(c)) {
                event_active(c->rev, EV_READ, 0);
            }
        }
    }
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    c->yielded = false;
    if (c->paused || c->closing || c->w->stopping) {
        return;
    }
    if (process(c) == 0 && tls_more(c)) {
        event_active(c->rev, EV_READ, 0);
    }
}

/* With c still parked after its turn in the release walk: fold the
 * epoch its first waiting reply needs into *need and count it in *n. */
static void
fold_need(const struct conn *c, uint64_t *need, unsigned *n)
{
    (*n)++;
    if (c->phead < c->pend_n) {
        /* 0: a write staged in this pass, on the held list:
         * conn_pass_end publishes its need before the loop polls. */
        uint64_t e = c->pend[c->phead].need;
        if (e != 0 && e < *need) {
            *need = e;
        }
    }
}

uint64_t
conn_commit_done(struct worker *w, unsigned *n)
{
    struct conn *c, *next;
    uint64_t need = UINT64_MAX;

    *n = 0;
    /* process and flush_out may free c (and only c): walk with a saved
     * next. Each connection still parked is folded into need after its
     * last turn: where it stayed, or where process parked it again when
     * the walk ends there (else it is at the tail, and its turn comes
     * again). */
    releasing = true;
    for (c = TAILQ_FIRST(&w->parked); c != NULL; c = next) {
        next = TAILQ_NEXT(c, park_link);
        release(c);
        if (c->pend_n != 0) {
            if (flush_out(c) < 0) {
                continue;
            }
            if (c->pend_n - c->phead < PEND_MAX && !c->yielded && !c->paused &&
                c->rstart < c->rend) {
                next_turn(c); /* it stopped at PEND_MAX */
            }
            fold_need(c, &need, n);
            continue;
        }
        unpark(c);
        if (c->closing || w->stopping) {
            flush_out(c);
            continue;
        }
        if (c->paused && !over_high(c) && out_queued(c) <= OUT_LOW) {
            c->paused = false; /* as on_write would */
        }
        if (!c->paused) {
            set_reading(c, true);
        }
        if (c->yielded || c->paused) {
            flush_out(c); /* resume_ev or on_write runs the rest */
            continue;
        }
        if (process(c) != 0) {
            continue;
        }
        if (tls_more(c)) {
            event_active(c->rev, EV_READ, 0);
        }
        if (c->parked && next == NULL) {
            fold_need(c, &need, n);
        }
    }
    releasing = false;
    return need;
}

void
conn_pass_end(struct worker *w)
{
    struct conn *c;

    if (cask_batch_pending() == 0) {
        return;
    }
    /* A failed write answers its requests through their tickets. */
    (void)cask_batch_flush();
    /* The staged writes' commit is now known: wait for it before their
     * tickets are checked below. Unknown: any commit wakes the worker. */
    uint64_t e = cask_batch_epoch();
    TAILQ_FOREACH(c, &w->held, held_link) {
        for (size_t i = c->phead; i < c->pend_n; i++) {
            struct pend *p = &c->pend[i];
            if (p->need == 0) {
                p->need = e == 0 ? 1 : e > p->t.epoch ? e : p->t.epoch;
            }
        }
        if (c->parked && c->phead < c->pend_n) {
            worker_commit_wait(w, c->pend[c->phead].need);
        }
    }
    releasing = true;
    while ((c = TAILQ_FIRST(&w->held)) != NULL) {
        TAILQ_REMOVE(&w->held, c, held_link);
        c->held = false;
        release(c);
        if (c->parked && c->pend_n == 0) {
            /* its commit came before its write: go on as after a commit */
            unpark(c);
            if (c->paused && !over_high(c) && out_queued(c) <= OUT_LOW) {
                c->paused = false;
            }
            if (!c->paused && !c->closing && !w->stopping) {
                set_reading(c, true);
            }
        }
        if (flush_out(c) < 0 || c->parked) {
            continue;
        }
        if (c->paused && !over_high(c) && out_queued(c) <= OUT_LOW) {
            /* a multi-get paused behind held replies, and the socket
             * took them all: no write event will resume it */
            c->paused = false;
            if (!c->closing && !w->stopping) {
                set_reading(c, true);
            }
        }
        if (!c->yielded && !c->paused && !c->closing && !waiting(c) &&
            !w->stopping && (c->rstart < c->rend || cmd_busy(&c->cc))) {
            next_turn(c); /* it stopped at PEND_MAX or a pause, or was
                           * parked */
        }
    }
    releasing = false;
}

/* A connection that waited (for a roll-over, or a value read) goes on:
 * read again and run its buffered requests, unless it is closing (its
 * replies go out) or paused or yielded (resume_ev or on_write runs the
 * rest). */
static void
run_again(struct conn *c)
{
    if (c->closing || c->w->stopping) {
        (void)flush_out(c);
        return;
    }
    if (!c->paused) {
        set_reading(c, true);
    }
    if (c->yielded || c->paused) {
        return;
    }
    if (process(c) == 0 && tls_more(c)) {
        event_active(c->rev, EV_READ, 0);
    }
}

void
conn_unblock_all(struct worker *w)
{
    struct conn_block_list again;
    struct conn *c;

    /* Those blocked again go back on w->blocked, not on this walk's list;
     * process() must not close others meanwhile (close_worst), as in
     * conn_commit_done. */
    TAILQ_INIT(&again);
    TAILQ_CONCAT(&again, &w->blocked, block_link);
    releasing = true;
    while ((c = TAILQ_FIRST(&again)) != NULL) {
        TAILQ_REMOVE(&again, c, block_link);
        TAILQ_INSERT_TAIL(&w->blocked, c, block_link); /* for unblock */
        unblock(c);
        run_again(c);
    }
    releasing = false;
}

void
conn_read_resume(void *owner)
{
    struct conn *c = owner;

    c->read_wait = false;
    if (!c->parked && !c->write_wait) {
        c->park_full = false;
    }
    run_again(c);
}

void
conn_drain_all(struct worker *w)
{
    struct conn *c, *next;

    /* flush_out may free c: walk with a saved next. */
    for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        set_reading(c, false);
        c->closing = true;
        flush_out(c);
    }
}

void
conn_close_all(struct worker *w)
{
    while (!TAILQ_EMPTY(&w->conns)) {
        conn_close(TAILQ_FIRST(&w->conns));
    }
}
