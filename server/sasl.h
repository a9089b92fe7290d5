/* sasl.h - SASL PLAIN authentication against a password file, for the
 * binary protocol's -S (memcached's MEMCACHED_SASL_PWDB format: one
 * "user:password" per line, anything after a further ':' ignored). No
 * libsasl2: PLAIN is the only mechanism offered. Knows nothing of
 * connections or the protocol beyond the PLAIN message. */
#ifndef BITCACHED_SASL_H
#define BITCACHED_SASL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest line read from the password file (memcached's limit). */
#define SASL_ENTRY_MAX 256u

/* Check a PLAIN message (authzid NUL authcid NUL password, RFC 4616)
 * against the password file at path. The file is read on every call, so
 * edits apply without a restart. An authzid, if given, must equal the
 * authcid. Blocks on the file read. Returns true if the user and password
 * match a line. */
bool sasl_plain_check(const char *path, const char *msg, size_t len);

/* Whether user/pass (not NUL-terminated) match a "user:password" line of
 * the file at path: the one reader for SASL PLAIN and the text protocol's
 * -Y. sasl_pwdb_check ends the password at a further ':', as
 * MEMCACHED_SASL_PWDB files do; sasl_authfile_check takes the rest of the
 * line, as memcached's -Y file does. Both block on the file read. */
bool sasl_pwdb_check(const char *path, const char *user, size_t ulen,
                     const char *pass, size_t plen);
bool sasl_authfile_check(const char *path, const char *user, size_t ulen,
                         const char *pass, size_t plen);

/* Whether path names a readable password file (checked at start-up). */
bool sasl_pwdb_readable(const char *path);

#endif
