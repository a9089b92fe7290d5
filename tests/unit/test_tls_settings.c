/* test_tls_settings.c - cmocka tests for server/tls_settings.c: memcached's
 * defaults, each ssl_* option and its bounds, with and without values (fed
 * as the -o parser feeds them, one key at a time), and the refusals. No
 * OpenSSL, no files.
 */
#include "server/tls_settings.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Apply "k=v,k2,..." one key at a time, as settings_ext.c does. */
static int
apply_list(struct tls_settings *t, const char *list)
{
    char *copy = strdup(list);
    char *save = NULL;
    int rc = 0;

    assert_non_null(copy);
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq != NULL) {
            *eq++ = '\0';
        }
        rc = tls_settings_apply(t, tok, eq);
    }
    free(copy);
    return rc;
}

static void
test_defaults(void **state)
{
    struct tls_settings t;

    (void)state;
    tls_settings_defaults(&t);
    assert_false(t.enabled);
    assert_int_equal(t.keyformat, 1);
    assert_int_equal(t.verify_mode, 0);
    assert_int_equal(t.min_version, 2);
    assert_int_equal(t.wbuf_size_kb, 16);
    assert_false(t.session_cache);
    assert_string_equal(tls_settings_version_name(t.min_version), "tlsv1.2");
    tls_settings_deinit(&t);
}

static void
test_list(void **state)
{
    struct tls_settings t;

    (void)state;
    tls_settings_defaults(&t);
    assert_int_equal(apply_list(&t, "ssl_chain_cert=/a/c.pem,"
                                    "ssl_key=/a/k.pem,"
                                    "ssl_ca_cert=/a/ca.pem,"
                                    "ssl_verify_mode=3,"
                                    "ssl_min_version=3,"
                                    "ssl_keyformat=DER,"
                                    "ssl_ciphers=HIGH:!aNULL,"
                                    "ssl_wbuf_size=8,"
                                    "ssl_session_cache,"
                                    "ssl_kernel_tls"),
                     0);
    assert_string_equal(t.chain_cert, "/a/c.pem");
    assert_string_equal(t.key, "/a/k.pem");
    assert_string_equal(t.ca_cert, "/a/ca.pem");
    assert_string_equal(t.ciphers, "HIGH:!aNULL");
    assert_int_equal(t.verify_mode, 3);
    assert_int_equal(t.min_version, 3);
    assert_int_equal(t.keyformat, 2);
    assert_int_equal(t.wbuf_size_kb, 8);
    assert_true(t.session_cache);
    assert_true(t.kernel_tls);
    assert_string_equal(tls_settings_version_name(t.min_version), "tlsv1.3");
    /* a later value replaces an earlier one */
    assert_int_equal(tls_settings_apply(&t, "ssl_key", "/b/k.pem"), 0);
    assert_string_equal(t.key, "/b/k.pem");
    assert_int_equal(tls_settings_apply(&t, "ssl_keyformat", "1"), 0);
    assert_int_equal(t.keyformat, 1);
    tls_settings_deinit(&t);
}

static void
test_refusals(void **state)
{
    static const char *const bad[] = {
            "ssl_verify_mode=4",    "ssl_verify_mode=-1",
            "ssl_verify_mode=x",    "ssl_min_version=4",
            "ssl_keyformat=ENGINE", "ssl_keyformat=3",
            "ssl_chain_cert",       "ssl_key=",
            "ssl_wbuf_size=0",      "no_such_option=1",
            "ssl_verify_mode",      "ssl_min_version=2x",
    };
    struct tls_settings t;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tls_settings_defaults(&t);
        assert_int_equal(apply_list(&t, bad[i]), -1);
        tls_settings_deinit(&t);
    }
    assert_true(tls_settings_is_option("ssl_ca_cert"));
    assert_false(tls_settings_is_option("ssl_"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_list),
            cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
