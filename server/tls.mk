# server/tls.mk - TLS and text-protocol authentication (-Z, -o ssl_*, -Y):
# their sources in the server, and their tests (included by Makefile.am).

bitcached_SOURCES += server/tls.c server/tls.h
bitcached_CFLAGS += $(OPENSSL_CFLAGS)
bitcached_LDADD += $(OPENSSL_LIBS)

check_PROGRAMS += tests/unit/test_auth_text
TESTS += tests/unit/test_auth_text
tests_unit_test_auth_text_SOURCES = tests/unit/test_auth_text.c \
	server/auth_text.c server/auth_text.h server/sasl.c server/sasl.h
tests_unit_test_auth_text_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_auth_text_LDADD = $(CMOCKA_LIBS)

dist_check_SCRIPTS += tests/integration/test_auth_text.py \
	tests/integration/test_tls.py
TESTS += tests/integration/test_auth_text.py tests/integration/test_tls.py
# A parked TLS connection keeps its read event (epoll_ctl counted by
# strace; skips without it).
dist_check_SCRIPTS += tests/integration/test_tls_park.py
TESTS += tests/integration/test_tls_park.py
# So does a TLS connection waiting for a cold read (crash shim slows the
# reads where there is one).
dist_check_SCRIPTS += tests/integration/test_tls_cold.py
TESTS += tests/integration/test_tls_cold.py

# TLS throughput benchmark (not part of make check): tests/bench/bench_tls.sh.
noinst_PROGRAMS += tests/bench/bench_tls
tests_bench_bench_tls_SOURCES = tests/bench/bench_tls.c
tests_bench_bench_tls_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
tests_bench_bench_tls_LDADD = $(OPENSSL_LIBS) $(PTHREAD_LIBS)
EXTRA_DIST += tests/bench/bench_tls.sh

check_PROGRAMS += tests/unit/test_tls_settings
TESTS += tests/unit/test_tls_settings
tests_unit_test_tls_settings_SOURCES = tests/unit/test_tls_settings.c \
	server/tls_settings.c server/tls_settings.h
tests_unit_test_tls_settings_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_tls_settings_LDADD = $(CMOCKA_LIBS)
