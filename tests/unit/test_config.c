/* test_config.c - unit tests for server/config.c: the configuration file
 * format, its error messages, and that getopt_long reads the result the way
 * it reads a command line. Links only server/config.c.
 */
#include <config.h>

#include "server/config.h"

#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Write text (len bytes) to a new temp file; returns its malloc'd path. */
static char *
write_conf(const char *text, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    char *path;
    int fd;

    if (tmp == NULL || *tmp == '\0') {
        tmp = "/tmp";
    }
    assert_true(asprintf(&path, "%s/test_config.XXXXXX", tmp) > 0);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

/* Read text as a config file; returns config_read's result. */
static int
read_text(const char *text, int *argc, char ***argv, char *err, size_t errlen)
{
    char *path = write_conf(text, strlen(text));
    int rc = config_read(path, argc, argv, err, errlen);

    unlink(path);
    free(path);
    return rc;
}

static void
assert_argv(int argc, char **argv, const char *const *want)
{
    int n = 0;

    while (want[n] != NULL) {
        n++;
    }
    assert_int_equal(argc, n);
    for (int i = 0; i < n; i++) {
        assert_string_equal(argv[i], want[i]);
    }
    assert_null(argv[argc]);
}

static void
test_memcached_conf_style(void **state)
{
    const char *text = "# bitcached.conf\n"
                       "\n"
                       "# port\n"
                       "-p 11211\n"
                       "   -l 127.0.0.1,::1   # two addresses\n"
                       "-vv\n"
                       "\t-c\t2048\t\n"
                       "--sync=always\n"
                       "--data-dir /var/lib/bitcached\n"
                       "-m 64\r\n"
                       "     \n"
                       "#-d\n"
                       "-I 2m";
    const char *const want[] = {"bitcached",
                                "-p11211",
                                "-l127.0.0.1,::1",
                                "-vv",
                                "-c2048",
                                "--sync=always",
                                "--data-dir=/var/lib/bitcached",
                                "-m64",
                                "-I2m",
                                NULL};
    char err[256] = "";
    char **argv = NULL;
    int argc = 0;

    (void)state;
    assert_int_equal(read_text(text, &argc, &argv, err, sizeof(err)), 0);
    assert_argv(argc, argv, want);
    config_free(&argv);
    assert_null(argv);
}

/* Debian's /etc/memcached.conf as shipped: "-d", a bare "logfile" line
 * (read by Debian's start script) and memcached's flags. */
static void
test_debian_memcached_conf(void **state)
{
    const char *text = "# memcached default config file\n"
                       "-d\n"
                       "logfile /var/log/memcached.log\n"
                       "-m 64\n"
                       "-p 11211\n"
                       "-u memcache\n"
                       "-l 127.0.0.1\n"
                       "-P /var/run/memcached/memcached.pid\n";
    const char *const want[] = {"bitcached",
                                "-d",
                                "--log-file=/var/log/memcached.log",
                                "-m64",
                                "-p11211",
                                "-umemcache",
                                "-l127.0.0.1",
                                "-P/var/run/memcached/memcached.pid",
                                NULL};
    char err[256] = "";
    char **argv = NULL;
    int argc = 0;

    (void)state;
    assert_int_equal(read_text(text, &argc, &argv, err, sizeof(err)), 0);
    assert_argv(argc, argv, want);
    config_free(&argv);
}

static void
test_empty_file(void **state)
{
    const char *const want[] = {"bitcached", NULL};
    char **argv = NULL;
    int argc = 0;

    (void)state;
    assert_int_equal(read_text("", &argc, &argv, NULL, 0), 0);
    assert_argv(argc, argv, want);
    config_free(&argv);
    assert_int_equal(
            read_text("# only\n\n  # comments\n", &argc, &argv, NULL, 0), 0);
    assert_argv(argc, argv, want);
    config_free(&argv);
}

static void
test_value_with_blanks(void **state)
{
    const char *const want[] = {"bitcached", "--data-dir=/srv/my cache",
                                "--data-dir=/srv/other  dir", "-s/run/a b",
                                NULL};
    char **argv = NULL;
    int argc = 0;

    (void)state;
    assert_int_equal(read_text("--data-dir=/srv/my cache\n"
                               "--data-dir   /srv/other  dir  \n"
                               "-s /run/a b\n",
                               &argc, &argv, NULL, 0),
                     0);
    assert_argv(argc, argv, want);
    config_free(&argv);
}

static void
test_missing_file(void **state)
{
    char err[256] = "";
    char **argv = NULL;
    int argc = -1;

    (void)state;
    assert_int_equal(config_read("/nonexistent/bitcached.conf", &argc, &argv,
                                 err, sizeof(err)),
                     ENOENT);
    assert_non_null(strstr(err, "/nonexistent/bitcached.conf"));
    assert_null(argv);
    assert_int_equal(argc, -1);
}

static void
test_directory(void **state)
{
    char err[256] = "";
    char **argv = NULL;
    int argc = 0;

    (void)state;
    assert_int_equal(config_read("/", &argc, &argv, err, sizeof(err)), EISDIR);
    assert_non_null(strstr(err, "config file /"));
    assert_null(argv);
}

/* Each bad line is rejected with EINVAL and a message naming file and line. */
static void
test_bad_lines(void **state)
{
    static const char *const bad[] = {
            "port 11211\n",
            "-\n",
            "- p\n",
            "--\n",
            "--config=/etc/x\n",
            "--config /etc/x\n",
            "--conf=/etc/x\n",
            "11211\n",
            "logfile\n",
            "logfiles /x\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        char err[256] = "";
        char **argv = NULL;
        int argc = -1;

        snprintf(text, sizeof(text), "# ok\n-p 1\n%s-v\n", bad[i]);
        assert_int_equal(read_text(text, &argc, &argv, err, sizeof(err)),
                         EINVAL);
        assert_non_null(strstr(err, "line 3"));
        assert_non_null(strstr(err, "test_config."));
        assert_null(argv);
        assert_int_equal(argc, -1);
    }
}

/* "--conn-limit" and "--compact-ratio" share a prefix with --config but are
 * other options: they must pass. */
static void
test_config_lookalikes(void **state)
{
    const char *const want[] = {"bitcached", "--conn-limit=10",
                                "--compact-ratio=0.4", NULL};
    char **argv = NULL;
    int argc = 0;

    (void)state;
    assert_int_equal(read_text("--conn-limit 10\n--compact-ratio 0.4\n", &argc,
                               &argv, NULL, 0),
                     0);
    assert_argv(argc, argv, want);
    config_free(&argv);
}

static void
test_nul_byte(void **state)
{
    static const char text[] = "-p 1\n-v\0x\n";
    char *path = write_conf(text, sizeof(text) - 1);
    char err[256] = "";
    char **argv = NULL;
    int argc = 0;

    (void)state;
    assert_int_equal(config_read(path, &argc, &argv, err, sizeof(err)), EINVAL);
    assert_non_null(strstr(err, "line 2"));
    assert_null(argv);
    unlink(path);
    free(path);
}

static void
test_long_line_and_small_err(void **state)
{
    size_t vlen = 100000;
    char *text = malloc(vlen + 32);
    char err[16];
    char **argv = NULL;
    int argc = 0;

    (void)state;
    assert_non_null(text);
    strcpy(text, "--data-dir ");
    memset(text + strlen(text), 'd', vlen);
    text[11 + vlen] = '\0';
    assert_int_equal(read_text(text, &argc, &argv, err, sizeof(err)), 0);
    assert_int_equal(argc, 2);
    assert_int_equal(strlen(argv[1]), strlen("--data-dir=") + vlen);
    config_free(&argv);

    /* A too-small err buffer truncates, never overflows. */
    assert_int_equal(read_text("x\n", &argc, &argv, err, sizeof(err)), EINVAL);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    free(text);
}

/* What settings.c will do: getopt_long over the array, with required and
 * optional arguments, and a permuting parse. */
static void
test_getopt_reads_it(void **state)
{
    static const struct option longopts[] = {
            {"port", required_argument, NULL, 'p'},
            {"verbose", optional_argument, NULL, 'v'},
            {"data-dir", required_argument, NULL, 'D'},
            {"sync", required_argument, NULL, 'S'},
            {NULL, 0, NULL, 0},
    };
    const char *port = NULL, *dir = NULL, *sync = NULL;
    int verbose = 0, bad = 0;
    char **argv = NULL;
    int argc = 0;
    int c;

    (void)state;
    assert_int_equal(read_text("--port 4242\n-vv\n--data-dir /x/y z\n"
                               "--sync always\n-v\n",
                               &argc, &argv, NULL, 0),
                     0);
    optind = 0; /* full reinitialisation (glibc) */
    while ((c = getopt_long(argc, argv, "p:vD:S:", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            port = optarg;
            break;
        case 'v':
            verbose++;
            break;
        case 'D':
            dir = optarg;
            break;
        case 'S':
            sync = optarg;
            break;
        default:
            bad++;
            break;
        }
    }
    assert_int_equal(bad, 0);
    assert_int_equal(optind, argc);
    assert_string_equal(port, "4242");
    assert_string_equal(dir, "/x/y z");
    assert_string_equal(sync, "always");
    assert_int_equal(verbose, 3);
    config_free(&argv);
}

/* The configuration file we install parses, and its active lines are only
 * ones that suit the service: no -d, -P or -u (systemd keeps the process in
 * the foreground, tracks its PID and picks its user), and no --data-dir
 * (the unit passes its StateDirectory). */
static void
test_shipped_conf(void **state)
{
    const char *top = getenv("top_srcdir");
    char *path;
    char err[256] = "";
    char **argv = NULL;
    int argc = 0;

    (void)state;
    if (top == NULL) {
        skip();
    }
    assert_true(asprintf(&path, "%s/systemd/bitcached.conf", top) > 0);
    assert_int_equal(config_read(path, &argc, &argv, err, sizeof(err)), 0);
    assert_true(argc > 1);
    for (int i = 1; i < argc; i++) {
        assert_false(strncmp(argv[i], "-d", 2) == 0);
        assert_false(strncmp(argv[i], "-P", 2) == 0);
        assert_false(strncmp(argv[i], "-u", 2) == 0);
        assert_false(strncmp(argv[i], "--daemon", 8) == 0);
        assert_false(strncmp(argv[i], "--pidfile", 9) == 0);
        assert_false(strncmp(argv[i], "--user", 6) == 0);
        assert_false(strncmp(argv[i], "--data-dir", 10) == 0);
    }
    config_free(&argv);
    free(path);
}

static void
test_free_null(void **state)
{
    char **argv = NULL;

    (void)state;
    config_free(NULL);
    config_free(&argv);
    assert_null(argv);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_memcached_conf_style),
            cmocka_unit_test(test_debian_memcached_conf),
            cmocka_unit_test(test_empty_file),
            cmocka_unit_test(test_value_with_blanks),
            cmocka_unit_test(test_missing_file),
            cmocka_unit_test(test_directory),
            cmocka_unit_test(test_bad_lines),
            cmocka_unit_test(test_config_lookalikes),
            cmocka_unit_test(test_nul_byte),
            cmocka_unit_test(test_long_line_and_small_err),
            cmocka_unit_test(test_getopt_reads_it),
            cmocka_unit_test(test_shipped_conf),
            cmocka_unit_test(test_free_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
