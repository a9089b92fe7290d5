# systemd/local.mk - build rules for systemd/ (included by the top Makefile.am):
# the configuration-file reader and sd_notify wrappers the server links, their
# unit tests, and (below) the service unit, config file, man page and their
# tests.

# Sources the server binary links (the server's own rules add them to it,
# and $(LIBSYSTEMD_LIBS) to its LDADD).
CONFIG_SOURCES = server/config.c server/config.h
NOTIFY_SOURCES = server/notify.c server/notify.h

check_PROGRAMS += tests/unit/test_config tests/unit/test_notify
TESTS += tests/unit/test_config tests/unit/test_notify

tests_unit_test_config_SOURCES = tests/unit/test_config.c $(CONFIG_SOURCES)
tests_unit_test_config_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_config_LDADD = $(CMOCKA_LIBS)

tests_unit_test_notify_SOURCES = tests/unit/test_notify.c $(NOTIFY_SOURCES)
tests_unit_test_notify_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) \
	$(LIBSYSTEMD_CFLAGS)
tests_unit_test_notify_LDADD = $(CMOCKA_LIBS) $(LIBSYSTEMD_LIBS)
