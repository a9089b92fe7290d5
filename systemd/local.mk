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

# --- The service unit ---
# Generated at make time (not by configure) so that `make bindir=...` and
# `make install prefix=...` get the paths they install to. With the default
# prefix the unit runs /usr/local/bin/bitcached with /usr/local/etc's config;
# packagers configure --prefix=/usr --sysconfdir=/etc.
BITCACHED_UNIT = systemd/bitcached.service
EXTRA_DIST += systemd/bitcached.service.in systemd/bitcached.conf
CLEANFILES += $(BITCACHED_UNIT)

$(BITCACHED_UNIT): $(srcdir)/systemd/bitcached.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	sed -e 's|@bindir[@]|$(bindir)|g' \
	    -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    $(srcdir)/systemd/bitcached.service.in > $@.tmp && \
	mv $@.tmp $@

all-local: $(BITCACHED_UNIT)

if HAVE_SYSTEMDUNITDIR
systemdsystemunit_DATA = $(BITCACHED_UNIT)
endif

# --- The configuration file ---
# Installed only if none is there yet, so that reinstalling keeps the
# administrator's edits; uninstalled only if still identical to ours.
install-data-local: install-bitcached-conf
uninstall-local: uninstall-bitcached-conf

install-bitcached-conf:
	$(MKDIR_P) '$(DESTDIR)$(sysconfdir)'
	@if test -f '$(DESTDIR)$(sysconfdir)/bitcached.conf'; then \
	    echo "keeping existing $(DESTDIR)$(sysconfdir)/bitcached.conf"; \
	else \
	    echo " $(INSTALL_DATA) bitcached.conf '$(DESTDIR)$(sysconfdir)'"; \
	    $(INSTALL_DATA) $(srcdir)/systemd/bitcached.conf \
	        '$(DESTDIR)$(sysconfdir)/bitcached.conf'; \
	fi

uninstall-bitcached-conf:
	@if cmp -s $(srcdir)/systemd/bitcached.conf \
	        '$(DESTDIR)$(sysconfdir)/bitcached.conf'; then \
	    echo " rm -f '$(DESTDIR)$(sysconfdir)/bitcached.conf'"; \
	    rm -f '$(DESTDIR)$(sysconfdir)/bitcached.conf'; \
	elif test -f '$(DESTDIR)$(sysconfdir)/bitcached.conf'; then \
	    echo "keeping modified $(DESTDIR)$(sysconfdir)/bitcached.conf"; \
	fi

.PHONY: install-bitcached-conf uninstall-bitcached-conf

# --- The man page ---
dist_man1_MANS = server/bitcached.1

# --- Tests of the unit, the config file and readiness ---
SYSTEMD_TESTS = \
	tests/systemd/verify.sh \
	tests/systemd/security.sh \
	tests/systemd/readiness.py \
	tests/systemd/recovery_gate.py \
	tests/systemd/config_equiv.py
dist_check_SCRIPTS += $(SYSTEMD_TESTS)
TESTS += $(SYSTEMD_TESTS)
EXTRA_DIST += tests/systemd/lib.py
