/* proto_bin.h - memcached's binary protocol: an incremental request parser
 * and the response header formatter.
 *
 * Pure: no sockets, threads, storage calls, allocation or global state.
 * Requests point into the caller's buffer. The parser applies memcached's
 * framing and validation rules (which packet is a protocol error, which
 * gets an error status and which closes the connection); what a request
 * does is left to the caller. Must not depend on server/ or storage/, nor
 * on the text parser (proto.h).
 */
#ifndef BITCACHED_PROTO_BIN_H
#define BITCACHED_PROTO_BIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/proto_budget.h"

#define PROTO_BIN_REQ     0x80u /* request magic: first byte of a packet */
#define PROTO_BIN_RES     0x81u /* response magic */
#define PROTO_BIN_HDR_LEN 24u
#define PROTO_BIN_KEY_MAX 250u
/* Longest SASL mechanism name memcached accepts. */
#define PROTO_BIN_MECH_MAX 32u

/* Opcodes memcached 1.6 serves (quiet variants map to their base). */
enum proto_bin_op {
    PROTO_BIN_GET = 0x00,
    PROTO_BIN_SET = 0x01,
    PROTO_BIN_ADD = 0x02,
    PROTO_BIN_REPLACE = 0x03,
    PROTO_BIN_DELETE = 0x04,
    PROTO_BIN_INCREMENT = 0x05,
    PROTO_BIN_DECREMENT = 0x06,
    PROTO_BIN_QUIT = 0x07,
    PROTO_BIN_FLUSH = 0x08,
    PROTO_BIN_GETQ = 0x09,
    PROTO_BIN_NOOP = 0x0a,
    PROTO_BIN_VERSION = 0x0b,
    PROTO_BIN_GETK = 0x0c,
    PROTO_BIN_GETKQ = 0x0d,
    PROTO_BIN_APPEND = 0x0e,
    PROTO_BIN_PREPEND = 0x0f,
    PROTO_BIN_STAT = 0x10,
    PROTO_BIN_SETQ = 0x11,
    PROTO_BIN_ADDQ = 0x12,
    PROTO_BIN_REPLACEQ = 0x13,
    PROTO_BIN_DELETEQ = 0x14,
    PROTO_BIN_INCREMENTQ = 0x15,
    PROTO_BIN_DECREMENTQ = 0x16,
    PROTO_BIN_QUITQ = 0x17,
    PROTO_BIN_FLUSHQ = 0x18,
    PROTO_BIN_APPENDQ = 0x19,
    PROTO_BIN_PREPENDQ = 0x1a,
    PROTO_BIN_VERBOSITY = 0x1b, /* defined, but memcached 1.6 answers
                                 * "Unknown command" */
    PROTO_BIN_TOUCH = 0x1c,
    PROTO_BIN_GAT = 0x1d,
    PROTO_BIN_GATQ = 0x1e,
    PROTO_BIN_SASL_LIST_MECHS = 0x20,
    PROTO_BIN_SASL_AUTH = 0x21,
    PROTO_BIN_SASL_STEP = 0x22,
    PROTO_BIN_GATK = 0x23,
    PROTO_BIN_GATKQ = 0x24,
};

/* Response status codes. */
enum proto_bin_status {
    PROTO_BIN_SUCCESS = 0x00,
    PROTO_BIN_KEY_ENOENT = 0x01,
    PROTO_BIN_KEY_EEXISTS = 0x02,
    PROTO_BIN_E2BIG = 0x03,
    PROTO_BIN_EINVAL = 0x04,
    PROTO_BIN_NOT_STORED = 0x05,
    PROTO_BIN_DELTA_BADVAL = 0x06,
    PROTO_BIN_AUTH_ERROR = 0x20,
    PROTO_BIN_AUTH_CONTINUE = 0x21,
    PROTO_BIN_UNKNOWN_COMMAND = 0x81,
    PROTO_BIN_ENOMEM = 0x82,
    PROTO_BIN_EINTERNAL = 0x84,
};

enum proto_bin_result {
    PROTO_BIN_OK = 0,    /* *req holds one request; *used bytes consumed */
    PROTO_BIN_NEED_MORE, /* no complete request yet; nothing consumed */
    PROTO_BIN_ERROR,     /* answer req->status (with its text, see
                          * proto_bin_errstr); *used consumed. Bytes that
                          * follow may be swallowed (parser state) */
    PROTO_BIN_SWALLOW,   /* *used bytes of a rejected body dropped */
    PROTO_BIN_CLOSE,     /* answer req->status unless it is SUCCESS, then
                          * close the connection */
};

struct proto_bin_req {
    uint8_t opcode;   /* as sent: responses echo it */
    uint8_t cmd;      /* opcode with a quiet variant mapped to its base */
    bool quiet;       /* a quiet variant: no reply on success (or miss) */
    uint8_t extlen;   /* as sent */
    uint8_t datatype; /* as sent */
    uint16_t vbucket; /* as sent */
    uint32_t bodylen; /* as sent */
    uint32_t opaque;  /* as sent (network order kept: echoed as is) */
    uint64_t cas;     /* request cas, host order */
    const char *key;  /* into the caller's buffer */
    size_t klen;
    const char *val; /* value of storage and SASL commands */
    size_t vlen;
    /* Extras, host order, set by the commands that carry them. */
    uint32_t flags;   /* set/add/replace */
    uint32_t exptime; /* set/add/replace, touch/gat, flush; incr/decr */
    bool has_exptime; /* flush: the 4-byte extras were given */
    uint64_t delta;   /* incr/decr */
    uint64_t initial; /* incr/decr */
    /* PROTO_BIN_ERROR/PROTO_BIN_CLOSE */
    uint16_t status;
    bool unlink; /* too-large set: memcached drops the old value */
};

/* Per-connection parser state; embedded in the connection. The caller may
 * change sasl and auth_needed between calls. */
struct proto_bin_parser {
    uint32_t item_max; /* largest value accepted */
    bool sasl;         /* SASL enabled (else its opcodes are unknown) */
    bool auth_needed;  /* SASL enabled and not authenticated yet */
    uint64_t swallow;  /* bytes of a rejected body still to drop */
    size_t wanted;     /* bytes the pending packet needs, 0 = unknown */
    /* Values still arriving are taken from budget (NULL: none), held bytes
     * of it for the pending packet (protocol/proto_budget.h). */
    struct proto_budget *budget;
    uint64_t held;
};

void proto_bin_parser_init(struct proto_bin_parser *p, uint32_t item_max);

/* Give back what the parser holds of its budget (the connection goes). */
void proto_bin_parser_release(struct proto_bin_parser *p);

/* Parse at most one packet from buf[0..len). Never reads outside it and
 * never allocates. *used is the number of bytes consumed (0 on
 * PROTO_BIN_NEED_MORE). Pointers in *req stay valid as long as buf does. */
enum proto_bin_result proto_bin_parse(struct proto_bin_parser *p,
                                      struct proto_bin_req *req,
                                      const char *buf, size_t len,
                                      size_t *used);

/* memcached's text for an error status ("Not found", "Too large.", ...);
 * "" for SUCCESS and AUTH_CONTINUE. */
const char *proto_bin_errstr(uint16_t status);

/* Write a 24-byte response header into out. opaque is copied as given. */
void proto_bin_fmt_hdr(unsigned char out[PROTO_BIN_HDR_LEN], uint8_t opcode,
                       uint16_t status, uint8_t extlen, uint16_t klen,
                       uint32_t bodylen, uint32_t opaque, uint64_t cas);

/* Write a request packet (for tests and tools): header, extras, key, value;
 * opaque is copied as given, like the parser keeps it. Returns the length, or 0
 * if it does not fit in cap. */
size_t proto_bin_fmt_req(char *out, size_t cap, uint8_t opcode, const void *ext,
                         uint8_t extlen, const void *key, uint16_t klen,
                         const void *val, uint32_t vlen, uint32_t opaque,
                         uint64_t cas);

/* Big-endian helpers. */
uint16_t proto_bin_get16(const void *p);
uint32_t proto_bin_get32(const void *p);
uint64_t proto_bin_get64(const void *p);
void proto_bin_put16(void *p, uint16_t v);
void proto_bin_put32(void *p, uint32_t v);
void proto_bin_put64(void *p, uint64_t v);

#endif
