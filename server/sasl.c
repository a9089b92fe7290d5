/* sasl.c - SASL PLAIN against a memcached-style password file, and the
 * password-file reader that -Y shares (implements sasl.h). Owns nothing between
 * calls: the file is opened, scanned and closed on each check. */
#include "server/sasl.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Compare without an early exit, so timing does not reveal how much of a
 * password matched. */
static bool
same_bytes(const char *a, const char *b, size_t n)
{
    unsigned char d = 0;

    for (size_t i = 0; i < n; i++) {
        d |= (unsigned char)(a[i] ^ b[i]);
    }
    return d == 0;
}

/* The user's line in the file matches pass. colon_ends: the password ends
 * at a further ':' (MEMCACHED_SASL_PWDB); else it is the rest of the line
 * (memcached's -Y file). */
static bool
pwdb_check(const char *path, const char *user, size_t ulen, const char *pass,
           size_t plen, bool colon_ends)
{
    char line[SASL_ENTRY_MAX];
    bool ok = false;
    FILE *f;

    if (path == NULL || ulen == 0 || ulen + plen > SASL_ENTRY_MAX - 4) {
        return false;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strcspn(line, "\r\n");
        const char *pw;
        size_t pwlen;

        line[n] = '\0';
        if (n <= ulen || memcmp(line, user, ulen) != 0 || line[ulen] != ':') {
            continue;
        }
        pw = line + ulen + 1;
        pwlen = colon_ends ? strcspn(pw, ":") : strlen(pw);
        ok = pwlen == plen && same_bytes(pw, pass, plen);
        break;
    }
    fclose(f);
    return ok;
}

bool
sasl_pwdb_check(const char *path, const char *user, size_t ulen,
                const char *pass, size_t plen)
{
    return pwdb_check(path, user, ulen, pass, plen, true);
}

bool
sasl_authfile_check(const char *path, const char *user, size_t ulen,
                    const char *pass, size_t plen)
{
    return pwdb_check(path, user, ulen, pass, plen, false);
}

bool
sasl_plain_check(const char *path, const char *msg, size_t len)
{
    const char *authz = msg;
    const char *nul1, *nul2;
    const char *user, *pass;
    size_t zlen, ulen, plen;

    if (msg == NULL || len == 0) {
        return false;
    }
    nul1 = memchr(msg, '\0', len);
    if (nul1 == NULL) {
        return false;
    }
    zlen = (size_t)(nul1 - msg);
    user = nul1 + 1;
    nul2 = memchr(user, '\0', len - zlen - 1);
    if (nul2 == NULL) {
        return false;
    }
    ulen = (size_t)(nul2 - user);
    pass = nul2 + 1;
    plen = len - zlen - ulen - 2;
    if (memchr(pass, '\0', plen) != NULL || memchr(user, ':', ulen) != NULL) {
        return false;
    }
    if (zlen > 0 && (zlen != ulen || memcmp(authz, user, ulen) != 0)) {
        return false;
    }
    return sasl_pwdb_check(path, user, ulen, pass, plen);
}

bool
sasl_pwdb_readable(const char *path)
{
    return path != NULL && access(path, R_OK) == 0;
}
