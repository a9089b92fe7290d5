/* auth_text.c - memcached's -Y gate for text connections (implements
 * auth_text.h). Owns only the per-connection flag; reads the password file
 * through sasl.c on each attempt, so edits apply without a restart.
 *
 * Follows memcached 1.6: a line that does not start with "set" and carry
 * at least five tokens with a numeric length is answered "CLIENT_ERROR
 * unauthenticated" (quit included); a `set` waits for its data block, whose
 * first two space-separated tokens are the user and the password; noreply
 * is ignored, as memcached ignores it here.
 */
#include "server/auth_text.h"

#include "server/sasl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_TOKENS_MAX 8

static const char unauth[] = "CLIENT_ERROR unauthenticated\r\n";
static const char bad_term[] = "CLIENT_ERROR bad command line termination\r\n";
static const char bad_format[] =
        "CLIENT_ERROR bad authentication token format\r\n";
static const char failure[] = "CLIENT_ERROR authentication failure\r\n";
static const char stored[] = "STORED\r\n";

struct token {
    const char *p;
    size_t n;
};

void
auth_text_init(struct auth_text *a, const char *file)
{
    a->file = file;
    a->authenticated = file == NULL;
}

/* Split p[0..n) at spaces (runs of them count as one). Returns the number
 * of tokens stored, at most max. */
static size_t
tokenize(const char *p, size_t n, struct token *tok, size_t max)
{
    size_t nt = 0, i = 0;

    while (i < n && nt < max) {
        size_t start;
        while (i < n && p[i] == ' ') {
            i++;
        }
        if (i == n) {
            break;
        }
        start = i;
        while (i < n && p[i] != ' ') {
            i++;
        }
        tok[nt].p = p + start;
        tok[nt].n = i - start;
        nt++;
    }
    return nt;
}

/* A decimal uint32 token, as memcached's safe_strtoul reads it. */
static bool
token_u32(const struct token *t, uint32_t *out)
{
    char tmp[16];
    char *end;
    unsigned long long v;

    if (t->n == 0 || t->n >= sizeof(tmp) || t->p[0] == '-') {
        return false;
    }
    memcpy(tmp, t->p, t->n);
    tmp[t->n] = '\0';
    errno = 0;
    v = strtoull(tmp, &end, 10);
    if (errno != 0 || *end != '\0' || v > UINT32_MAX) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* Parse the first line of buf. Returns false if there is no complete line
 * yet; otherwise *line_len is its length with the newline, and *data_len
 * the size of an authentication `set`'s block, or SIZE_MAX if the line is
 * not one. */
static bool
parse_line(const char *buf, size_t len, size_t *line_len, size_t *data_len)
{
    const char *nl = memchr(buf, '\n', len);
    struct token tok[AUTH_TOKENS_MAX];
    size_t n, nt;
    uint32_t size;

    if (nl == NULL) {
        return false;
    }
    *line_len = (size_t)(nl - buf) + 1;
    n = (size_t)(nl - buf);
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    nt = tokenize(buf, n, tok, AUTH_TOKENS_MAX);
    /* memcached compares the first three bytes of the line only */
    if (nt < 5 || n < 3 || memcmp(buf, "set", 3) != 0 ||
        !token_u32(&tok[4], &size)) {
        *data_len = SIZE_MAX;
    } else {
        *data_len = size;
    }
    return true;
}

size_t
auth_text_wanted(const char *buf, size_t len)
{
    size_t line_len, data_len;

    if (!parse_line(buf, len, &line_len, &data_len) || data_len == SIZE_MAX) {
        return 0;
    }
    return line_len + data_len + 2;
}

static void
reply(struct cmd_conn *cc, const char *s, size_t n)
{
    cc->out.bytes(cc->out.arg, s, n);
}

enum cmd_status
auth_text_execute(struct auth_text *a, struct cmd_conn *cc, const char *buf,
                  size_t len, size_t *used)
{
    size_t line_len, data_len;
    const char *data;
    struct token tok[2];

    *used = 0;
    if (!parse_line(buf, len, &line_len, &data_len)) {
        return len > AUTH_TEXT_LINE_MAX ? CMD_CLOSE : CMD_NEED_MORE;
    }
    if (data_len == SIZE_MAX) {
        *used = line_len;
        reply(cc, unauth, sizeof(unauth) - 1);
        return CMD_DONE;
    }
    if (len - line_len < data_len + 2) {
        return CMD_NEED_MORE;
    }
    *used = line_len + data_len + 2;
    data = buf + line_len;
    if (data[data_len] != '\r' || data[data_len + 1] != '\n') {
        reply(cc, bad_term, sizeof(bad_term) - 1);
        return CMD_DONE;
    }
    if (tokenize(data, data_len, tok, 2) < 2) {
        reply(cc, bad_format, sizeof(bad_format) - 1);
        return CMD_DONE;
    }
    cc->ctr->auth_cmds++;
    if (memchr(tok[0].p, ':', tok[0].n) == NULL &&
        sasl_authfile_check(a->file, tok[0].p, tok[0].n, tok[1].p, tok[1].n)) {
        a->authenticated = true;
        reply(cc, stored, sizeof(stored) - 1);
        return CMD_DONE;
    }
    cc->ctr->auth_errors++;
    reply(cc, failure, sizeof(failure) - 1);
    return CMD_DONE;
}
