/* config.h - reads a bitcached configuration file (memcached.conf style: one
 * option per line, '#' comments) into an argv that getopt_long can parse, so
 * that a file and a command line go through the same option code.
 * Owns nothing after config_free(). Pure: no globals, no logging, no exit();
 * must not depend on settings.c or any other server module.
 *
 * Not to be confused with the build's autoconf header: files in server/
 * include that one as <config.h> (angle brackets), since a quoted "config.h"
 * finds this file first.
 */
#ifndef BITCACHED_SERVER_CONFIG_H
#define BITCACHED_SERVER_CONFIG_H

#include <stddef.h>

/* Read the configuration file at path.
 *
 * Each non-blank line (after removing a '#' comment and surrounding blanks)
 * holds one option: a flag starting with '-', optionally followed by blanks
 * and a value that runs to the end of the line ("-p 11211", "-vv",
 * "--sync=always", "--data-dir /var/lib/bitcached"). A short flag's value is
 * attached to it ("-p11211") and a long flag's joined with '=' ("--data-dir=
 * /var/lib/bitcached"), so getopt_long reads options with optional values
 * right too. A value may contain blanks but not '#'; quotes are not special.
 *
 * On success returns 0 and stores in *argv a malloc'd, NULL-terminated array
 * whose first element is "bitcached", and its length in *argc. The caller may
 * let getopt_long permute the array but must not replace its elements; it
 * releases it with config_free().
 * On failure returns an errno value (ENOENT for a missing file, EINVAL for a
 * malformed line, ENOMEM, or whatever fopen/getline reported), leaves *argc
 * and *argv untouched, and writes a one-line message naming the file (and
 * the line, for a bad line) into err[0..errlen). Does not block beyond the
 * file reads.
 */
int config_read(const char *path, int *argc, char ***argv, char *err,
                size_t errlen);

/* Free an array from config_read() and set *argv to NULL. NULL-safe. */
void config_free(char ***argv);

#endif /* BITCACHED_SERVER_CONFIG_H */
