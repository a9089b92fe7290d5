# storage/local.mk - build rules for storage/ (included by the top Makefile.am).
# libstorage.a is the engine; link it with $(STORAGE_LIBS).

noinst_LIBRARIES += libstorage.a
libstorage_a_SOURCES = \
	storage/cask.h \
	storage/cask.c \
	storage/cask_defaults.c \
	storage/cask_internal.h \
	storage/cask_shard.h \
	storage/cask_shard.c \
	storage/cask_log.c \
	storage/cask_batch.h \
	storage/cask_batch.c \
	storage/cask_ctx.c \
	storage/cask_segtab.c \
	storage/cask_commit.h \
	storage/cask_commit.c \
	storage/cask_journal.h \
	storage/cask_journal.c \
	storage/cask_lost.h \
	storage/cask_lost.c \
	storage/cask_recover.c \
	storage/cask_compact.c \
	storage/cask_resync.h \
	storage/cask_resync.c \
	storage/cask_evict.h \
	storage/cask_evict.c \
	storage/cask_evnote.h \
	storage/cask_evnote.c \
	storage/cask_crawl.h \
	storage/cask_crawl.c \
	storage/cask_record.h \
	storage/cask_record.c \
	storage/cask_segment.h \
	storage/cask_segment.c \
	storage/cask_spread.h \
	storage/cask_spread.c \
	storage/cask_atime.h \
	storage/cask_verify.h \
	storage/cask_verify.c \
	storage/cask_vmap.h \
	storage/cask_vmap.c \
	storage/cask_vcache.h \
	storage/cask_vcache.c \
	storage/cask_keydir.h \
	storage/cask_keydir.c \
	storage/cask_walk.h \
	storage/cask_walk.c \
	storage/cask_stream.h \
	storage/cask_stream.c \
	storage/cask_hint.h \
	storage/cask_hint.c \
	storage/cask_hintscan.h \
	storage/cask_hintscan.c \
	storage/cask_vwrite.h \
	storage/cask_vwrite.c \
	storage/cask_state.h \
	storage/cask_state.c \
	storage/cask_retire.h \
	storage/cask_retire.c \
	storage/cask_newer.h \
	storage/cask_newer.c \
	storage/cask_manifest.h \
	storage/cask_manifest.c \
	storage/cask_io.h \
	storage/cask_io.c \
	storage/cask_split.h \
	storage/cask_direct.h \
	storage/cask_direct.c \
	storage/cask_uring.h \
	storage/cask_uring.c \
	storage/cask_check.h \
	storage/cask_check.c \
	storage/cask_repair.h \
	storage/cask_repair.c
libstorage_a_CFLAGS = $(AM_CFLAGS) $(XXHASH_CFLAGS) $(LIBURING_CFLAGS)

STORAGE_LIBS = libstorage.a $(XXHASH_LIBS) $(LIBURING_LIBS) $(PTHREAD_LIBS)
EXTRA_DIST += storage/FORMAT.md storage/REPLICATION.md storage/LAYOUT.md

# Unit tests: cmocka, linked against libstorage only.
STORAGE_TESTS = \
	tests/unit/test_cask_record \
	tests/unit/test_cask_keydir \
	tests/unit/test_cask_ops \
	tests/unit/test_cask_atime \
	tests/unit/test_cask_walk \
	tests/unit/test_cask_hint_estimate \
	tests/unit/test_cask_crawl \
	tests/unit/test_cask_evnote \
	tests/unit/test_cask_recovery \
	tests/unit/test_cask_recover \
	tests/unit/test_cask_newer \
	tests/unit/test_cask_manifest \
	tests/unit/test_cask_large \
	tests/unit/test_cask_vmap \
	tests/unit/test_cask_vcache \
	tests/unit/test_cask_hintscan \
	tests/unit/test_cask_vwrite \
	tests/unit/test_cask_keycheck \
	tests/unit/test_cask_compact \
	tests/unit/test_cask_io \
	tests/unit/test_cask_resync \
	tests/unit/test_cask_resync_journal \
	tests/unit/test_cask_lost \
	tests/unit/test_cask_roll \
	tests/unit/test_cask_recover_cut \
	tests/unit/test_cask_replace \
	tests/unit/test_cask_rely \
	tests/unit/test_cask_mapwrite \
	tests/unit/test_cask_state_sync \
	tests/unit/test_cask_model \
	tests/unit/test_cask_trust \
	tests/unit/test_cask_commit \
	tests/unit/test_cask_journal \
	tests/unit/test_cask_stream
check_PROGRAMS += $(STORAGE_TESTS)
TESTS += $(STORAGE_TESTS)
EXTRA_DIST += tests/unit/test_cask_util.h
STORAGE_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
STORAGE_TEST_LDADD = $(STORAGE_LIBS) $(CMOCKA_LIBS)

tests_unit_test_cask_record_SOURCES = tests/unit/test_cask_record.c
tests_unit_test_cask_record_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_record_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_ops_SOURCES = tests/unit/test_cask_ops.c
tests_unit_test_cask_ops_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_ops_LDADD = $(STORAGE_TEST_LDADD)
tests_unit_test_cask_atime_SOURCES = tests/unit/test_cask_atime.c
tests_unit_test_cask_atime_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_atime_LDADD = $(STORAGE_TEST_LDADD)
tests_unit_test_cask_walk_SOURCES = tests/unit/test_cask_walk.c
tests_unit_test_cask_walk_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_walk_LDADD = $(STORAGE_TEST_LDADD)
tests_unit_test_cask_hint_estimate_SOURCES = tests/unit/test_cask_hint_estimate.c
tests_unit_test_cask_hint_estimate_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_hint_estimate_LDADD = $(STORAGE_TEST_LDADD)
tests_unit_test_cask_crawl_SOURCES = tests/unit/test_cask_crawl.c
tests_unit_test_cask_crawl_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_crawl_LDADD = $(STORAGE_TEST_LDADD)
tests_unit_test_cask_evnote_SOURCES = tests/unit/test_cask_evnote.c
tests_unit_test_cask_evnote_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_evnote_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_keydir_SOURCES = tests/unit/test_cask_keydir.c
tests_unit_test_cask_keydir_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_keydir_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_recovery_SOURCES = tests/unit/test_cask_recovery.c
tests_unit_test_cask_recovery_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_recovery_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_recover_SOURCES = tests/unit/test_cask_recover.c
tests_unit_test_cask_recover_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_recover_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_newer_SOURCES = tests/unit/test_cask_newer.c
tests_unit_test_cask_newer_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_newer_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_manifest_SOURCES = tests/unit/test_cask_manifest.c
tests_unit_test_cask_manifest_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_manifest_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_large_SOURCES = tests/unit/test_cask_large.c
tests_unit_test_cask_large_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_large_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_vmap_SOURCES = tests/unit/test_cask_vmap.c
tests_unit_test_cask_vmap_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_vmap_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_vcache_SOURCES = tests/unit/test_cask_vcache.c
tests_unit_test_cask_vcache_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_vcache_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_hintscan_SOURCES = tests/unit/test_cask_hintscan.c
tests_unit_test_cask_hintscan_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_hintscan_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_vwrite_SOURCES = tests/unit/test_cask_vwrite.c
tests_unit_test_cask_vwrite_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_vwrite_LDADD = $(STORAGE_TEST_LDADD)
tests_unit_test_cask_keycheck_SOURCES = tests/unit/test_cask_keycheck.c
tests_unit_test_cask_keycheck_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_keycheck_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_compact_SOURCES = tests/unit/test_cask_compact.c
tests_unit_test_cask_compact_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_compact_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_io_SOURCES = tests/unit/test_cask_io.c
tests_unit_test_cask_io_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_io_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_resync_SOURCES = tests/unit/test_cask_resync.c
tests_unit_test_cask_resync_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_resync_LDADD = $(STORAGE_TEST_LDADD)
tests_unit_test_cask_mapwrite_SOURCES = tests/unit/test_cask_mapwrite.c
tests_unit_test_cask_mapwrite_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_mapwrite_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_resync_journal_SOURCES = tests/unit/test_cask_resync_journal.c
tests_unit_test_cask_resync_journal_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_resync_journal_LDADD = $(STORAGE_TEST_LDADD)

# test_cask_roll and test_cask_lost share the power-loss model.
POWERLOSS_SOURCES = tests/unit/powerloss.c tests/unit/powerloss.h
tests_unit_test_cask_roll_SOURCES = tests/unit/test_cask_roll.c $(POWERLOSS_SOURCES)
tests_unit_test_cask_roll_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_roll_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_lost_SOURCES = tests/unit/test_cask_lost.c $(POWERLOSS_SOURCES)
tests_unit_test_cask_lost_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_lost_LDADD = $(STORAGE_TEST_LDADD)
tests_unit_test_cask_recover_cut_SOURCES = tests/unit/test_cask_recover_cut.c
tests_unit_test_cask_recover_cut_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_recover_cut_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_replace_SOURCES = tests/unit/test_cask_replace.c
tests_unit_test_cask_replace_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_replace_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_rely_SOURCES = tests/unit/test_cask_rely.c
tests_unit_test_cask_rely_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_rely_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_state_sync_SOURCES = tests/unit/test_cask_state_sync.c
tests_unit_test_cask_state_sync_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_state_sync_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_model_SOURCES = tests/unit/test_cask_model.c
tests_unit_test_cask_model_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_model_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_trust_SOURCES = tests/unit/test_cask_trust.c
tests_unit_test_cask_trust_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_trust_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_commit_SOURCES = tests/unit/test_cask_commit.c
tests_unit_test_cask_commit_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_commit_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_journal_SOURCES = tests/unit/test_cask_journal.c
tests_unit_test_cask_journal_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_journal_LDADD = $(STORAGE_TEST_LDADD)

tests_unit_test_cask_stream_SOURCES = tests/unit/test_cask_stream.c
tests_unit_test_cask_stream_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_stream_LDADD = $(STORAGE_TEST_LDADD)

# Crash test: SIGKILL a writer under sync=always, every ack must survive.
check_PROGRAMS += tests/crash/test_kill9_always
TESTS += tests/crash/test_kill9_always
tests_crash_test_kill9_always_SOURCES = tests/crash/test_kill9_always.c
tests_crash_test_kill9_always_LDADD = $(STORAGE_LIBS)

# Storage figures (not in make check): tests/bench/bench_storage [--keys N] [--dir D]
noinst_PROGRAMS += tests/bench/bench_storage
tests_bench_bench_storage_SOURCES = tests/bench/bench_storage.c
tests_bench_bench_storage_LDADD = $(STORAGE_LIBS)
# Keydir alone: bytes per key, ns per insert and lookup (not in make check).
noinst_PROGRAMS += tests/bench/bench_keydir
tests_bench_bench_keydir_SOURCES = tests/bench/bench_keydir.c
tests_bench_bench_keydir_LDADD = $(STORAGE_LIBS)

# -m with -M against the built server: new keys refused past the budget.
dist_check_SCRIPTS += tests/integration/test_memory_limit.py
TESTS += tests/integration/test_memory_limit.py

# -m without -M: eviction keeps the budget (issue 9).
dist_check_SCRIPTS += tests/integration/test_evict.py
TESTS += tests/integration/test_evict.py

# The crawler: flushed and expired keys reclaimed unread, never back.
dist_check_SCRIPTS += tests/integration/test_crawl.py
TESTS += tests/integration/test_crawl.py

# --disk-limit, and a full file system (a tmpfs, when run as root).
dist_check_SCRIPTS += tests/integration/test_disk_limit.py
TESTS += tests/integration/test_disk_limit.py
# ... with --sync=always, whose journal files count against the limit.
dist_check_SCRIPTS += tests/integration/test_disk_limit_always.py
TESTS += tests/integration/test_disk_limit_always.py

# Value reads off the caller's thread (issue 16): the I/O thread pool.
libstorage_a_SOURCES += storage/cask_aio.h storage/cask_aio.c
check_PROGRAMS += tests/unit/test_cask_aio
TESTS += tests/unit/test_cask_aio
tests_unit_test_cask_aio_SOURCES = tests/unit/test_cask_aio.c
tests_unit_test_cask_aio_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_aio_LDADD = $(STORAGE_TEST_LDADD)
check_PROGRAMS += tests/unit/test_cask_uring
TESTS += tests/unit/test_cask_uring
tests_unit_test_cask_uring_SOURCES = tests/unit/test_cask_uring.c
tests_unit_test_cask_uring_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_uring_LDADD = $(STORAGE_TEST_LDADD)

# Ring reads bypassing the page cache (O_DIRECT): values, a flipped byte,
# a refusal, tmpfs, and none for records never evicted.
check_PROGRAMS += tests/unit/test_cask_direct
TESTS += tests/unit/test_cask_direct
tests_unit_test_cask_direct_SOURCES = tests/unit/test_cask_direct.c
tests_unit_test_cask_direct_CFLAGS = $(STORAGE_TEST_CFLAGS)
tests_unit_test_cask_direct_LDADD = $(STORAGE_TEST_LDADD)
