# admin/local.mk - bitcached-admin, the offline tool for a data directory
# (included by the top Makefile.am). Links the storage library only.
bin_PROGRAMS += bitcached-admin
bitcached_admin_SOURCES = \
	admin/admin.h admin/admin.c \
	admin/admin_check.c \
	admin/admin_dump.c \
	admin/admin_compact.c \
	admin/admin_repair.c
bitcached_admin_CFLAGS = $(AM_CFLAGS)
bitcached_admin_LDADD = $(STORAGE_LIBS)
dist_man1_MANS += admin/bitcached-admin.1

dist_check_SCRIPTS += tests/integration/test_admin.py
TESTS += tests/integration/test_admin.py
# ... on a directory a crash under --sync=always left (the commit journal).
dist_check_SCRIPTS += tests/integration/test_admin_journal.py
TESTS += tests/integration/test_admin_journal.py
EXTRA_DIST += tests/bench/bench_admin.sh
# ... and stats, check and dump leave the directory as it was.
dist_check_SCRIPTS += tests/integration/test_admin_look.py
TESTS += tests/integration/test_admin_look.py
