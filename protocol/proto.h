/* proto.h - memcached text protocol: an incremental request parser and the
 * formatting of response lines.
 *
 * Pure: no sockets, threads, storage calls or global state, and no
 * allocation. Requests point into the caller's buffer (keys, data blocks);
 * only a base64-decoded meta key is copied, into the request itself.
 * Must not depend on server/ or storage/.
 */
#ifndef BITCACHED_PROTO_H
#define BITCACHED_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/proto_budget.h"

#define PROTO_KEY_MAX 250u
/* A line without '\n' longer than this is a protocol violation unless it is
 * a get/gets (memcached's 2048-byte rule); the connection is closed. */
#define PROTO_LINE_MAX 2048u
/* Multi-key get lines may be longer, up to this cap (about 4000 keys of 250
 * bytes, 100000 of 9); a longer one is answered "SERVER_ERROR out of
 * memory reading request" and closes the connection. memcached has no cap
 * (it answers a 5.5 MB line of 700000 keys). */
#define PROTO_MULTIGET_MAX (1024u * 1024)
/* Meta flags accepted on one line (memcached's token limit). */
#define PROTO_META_FLAGS_MAX 24u
/* Longest opaque (O) token memcached accepts. */
#define PROTO_OPAQUE_MAX 32u

enum proto_cmd {
    PROTO_CMD_NONE = 0,
    PROTO_CMD_GET,
    PROTO_CMD_GETS,
    PROTO_CMD_GAT,
    PROTO_CMD_GATS,
    PROTO_CMD_SET,
    PROTO_CMD_ADD,
    PROTO_CMD_REPLACE,
    PROTO_CMD_APPEND,
    PROTO_CMD_PREPEND,
    PROTO_CMD_CAS,
    PROTO_CMD_DELETE,
    PROTO_CMD_INCR,
    PROTO_CMD_DECR,
    PROTO_CMD_TOUCH,
    PROTO_CMD_FLUSH_ALL,
    PROTO_CMD_STATS,
    PROTO_CMD_VERSION,
    PROTO_CMD_VERBOSITY,
    PROTO_CMD_QUIT,
    PROTO_CMD_SHUTDOWN,
    PROTO_CMD_MG,
    PROTO_CMD_MS,
    PROTO_CMD_MD,
    PROTO_CMD_MA,
    PROTO_CMD_MN,
    PROTO_CMD_ME,
    /* memcached's admin commands (lru_crawler, lru, slabs, cache_memlimit,
     * watch): key/klen is the command word, args/args_len the rest of the
     * line (may be empty); the server decides what they mean. */
    PROTO_CMD_ADMIN,
};

enum proto_status {
    PROTO_OK = 0,    /* *req holds one request; *used bytes consumed */
    PROTO_NEED_MORE, /* no complete request yet; nothing consumed */
    PROTO_ERROR,     /* send req->err; *used bytes consumed. req->cmd and
                      * req->key may be set (see req->unlink) */
    PROTO_SWALLOW,   /* *used bytes of a rejected data block dropped;
                      * nothing to send */
    PROTO_CLOSE,     /* framing lost: send req->err if not NULL, then close */
};

/* One meta flag as given: its letter and the token after it (may be empty). */
struct proto_mflag {
    char flag;
    uint8_t len;     /* token length (a token is at most 255 bytes) */
    const char *tok; /* into the caller's buffer */
};

struct proto_req {
    enum proto_cmd cmd;
    /* The key (first key of a get). For meta commands with the b flag, the
     * decoded key, stored in keybuf; raw_key is always the key as sent. */
    const char *key;
    size_t klen;
    const char *raw_key;
    size_t raw_klen;
    /* get/gets/gat/gats: every key token, space separated and already
     * validated; walk them with proto_key_next(). */
    const char *keys;
    size_t keys_len;
    /* get-like: a key after these was too long. Look them up (gat: touch
     * them) as usual, then answer "CLIENT_ERROR bad command line format"
     * instead of their values, as memcached does. */
    bool keys_cut;
    uint32_t flags;
    int64_t exptime;  /* as sent; cmd.c converts it */
    uint32_t nbytes;  /* data block length (without CRLF) */
    const char *data; /* nbytes bytes into the caller's buffer */
    uint64_t cas;     /* cas command's unique */
    uint64_t delta;   /* incr/decr */
    int64_t delay;    /* flush_all; has_delay says if given */
    bool has_delay;
    unsigned level; /* verbosity */
    bool noreply;
    const char *args; /* stats, shutdown, admin: text after the command */
    size_t args_len;
    const char *err; /* PROTO_ERROR/PROTO_CLOSE: whole line with CRLF */
    bool unlink;     /* too-large set: memcached drops the old key */
    bool nomem;      /* data block refused for the budget: out of memory */
    bool bad_chunk;  /* data block not ended by CRLF: memcached had made
                      * the item, so counts the set (key, nbytes, flags) */
    /* meta commands */
    bool key_b64;
    unsigned nmflags;
    struct proto_mflag mflags[PROTO_META_FLAGS_MAX];
    char keybuf[PROTO_KEY_MAX + 1];
};

/* Per-connection parser state; embedded in the connection, init'ed once. */
struct proto_parser {
    uint32_t item_max; /* largest data block accepted */
    uint64_t swallow;  /* bytes of a rejected data block still to drop */
    size_t wanted;     /* bytes the pending request needs, 0 = unknown */
    /* Data blocks still arriving are taken from budget (NULL: none), held
     * bytes of it for the pending request (proto_budget.h). */
    struct proto_budget *budget;
    uint64_t held;
};

void proto_parser_init(struct proto_parser *p, uint32_t item_max);

/* Give back what the parser holds of its budget (the connection goes). */
void proto_parser_release(struct proto_parser *p);

/* Parse at most one request from buf[0..len). Never reads outside it and
 * never allocates. *used is the number of bytes consumed (0 on
 * PROTO_NEED_MORE). Pointers in *req stay valid as long as buf does. */
enum proto_status proto_parse(struct proto_parser *p, struct proto_req *req,
                              const char *buf, size_t len, size_t *used);

/* Next key of a get line: *pos starts at 0. Returns false when none left. */
bool proto_key_next(const struct proto_req *req, size_t *pos, const char **key,
                    size_t *klen);

/* Numbers as memcached reads them (strtoull/strtol, then its check of what
 * follows): leading white space and a sign allowed, then digits, then the
 * end, white space or a NUL. proto_strtou64 refuses a '-' number whose
 * value wraps (so "-0" is 0 but "-1" fails); both fail on overflow. */
bool proto_strtou64(const char *p, size_t n, uint64_t *out);
bool proto_strtoi64(const char *p, size_t n, int64_t *out);

/* The index of req's O flag when its token (with the O) passes
 * PROTO_OPAQUE_MAX, else -1. The parser refuses such a request
 * ("CLIENT_ERROR opaque token too long") except an mg or ma: memcached
 * refuses those as it writes the reply, after their work, so the executor
 * does too. */
int proto_mflag_opaque_long(const struct proto_req *req);

/* Meta flag lookup: the first flag f of req, or NULL. */
const struct proto_mflag *proto_mflag_find(const struct proto_req *req, char f);

/* Decode standard base64 src[0..n) into dst (cap bytes). Returns the decoded
 * length, or -1 on bad input or overflow. */
int proto_b64_decode(const char *src, size_t n, char *dst, size_t cap);
/* Encode src[0..n) into dst (cap bytes). Returns the length or -1. */
int proto_b64_encode(const void *src, size_t n, char *dst, size_t cap);

/* Response building: a bounded line buffer. On overflow the buffer keeps
 * what fits and `overflow` is set; callers check it once at the end. */
struct proto_out {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
};

void proto_out_init(struct proto_out *o, char *buf, size_t cap);
void proto_out_mem(struct proto_out *o, const void *p, size_t n);
void proto_out_str(struct proto_out *o, const char *s);
void proto_out_u64(struct proto_out *o, uint64_t v);
void proto_out_i64(struct proto_out *o, int64_t v);

/* "VALUE <key> <flags> <bytes>[ <cas>]\r\n" */
void proto_fmt_value(struct proto_out *o, const char *key, size_t klen,
                     uint32_t flags, uint32_t vlen, bool with_cas,
                     uint64_t cas);

/* memcached's uriencode, as metadump and watch print keys: every byte but
 * [A-Za-z0-9._~-] as %XX. out must hold 3 * klen + 1 bytes; it is NUL
 * terminated. Returns the length. */
size_t proto_uriencode(const char *key, size_t klen, char *out);

/* Write a request back as text (for round-trip tests). Returns the length,
 * or 0 if it does not fit. Data blocks are included. */
size_t proto_format_req(char *out, size_t cap, const struct proto_req *req);

#endif
