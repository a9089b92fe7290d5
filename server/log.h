/* log.h - the server's logging: leveled lines to stderr. Level comes from -v;
 * `verbosity N` changes it at run time. Safe from any thread. */
#ifndef BITCACHED_LOG_H
#define BITCACHED_LOG_H

enum log_level {
    LOG_ERR = 0,   /* always shown */
    LOG_WARN = 0,  /* always shown too: an operator must see these */
    LOG_INFO = 1,  /* -v */
    LOG_DEBUG = 2, /* -vv: per connection and per command */
    LOG_TRACE = 3, /* -vvv */
};

void log_set_level(int level);
int log_get_level(void);

/* True when a message at `level` would be printed; lets hot paths skip
 * formatting. */
int log_enabled(int level);

void log_msg(int level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#endif
