# tests/local.mk - build rules for tests/ (included by the top Makefile.am).
# Integration tests start the built server ($BITCACHED) on a free port with a
# temp data dir; they skip (77) when it or a tool they drive is missing.
# `make check BITCACHED=/path/to/other/server` runs them against another
# binary that takes the same options.
AM_TESTS_ENVIRONMENT += test -z '$(BITCACHED)' || { BITCACHED='$(BITCACHED)'; export BITCACHED; };
# Whether this build reads through io_uring (--with-liburing): the tests
# expect the io_uring engine only then.
AM_TESTS_ENVIRONMENT += BITCACHED_LIBURING='$(have_liburing)'; export BITCACHED_LIBURING;

# The executor's unit tests (test_cmd and test_cmd_bin in protocol/,
# test_cmd_read below) share one fixture (tests/unit/cmd_fixture.h) over
# the fake in-memory store.
CMD_TEST_SOURCES = tests/unit/cmd_fixture.c tests/unit/cmd_fixture.h \
	tests/golden/fake_cask.c tests/golden/fake_cask.h storage/cask_defaults.c
CMD_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
CMD_TEST_LDADD = libcmd.a libprotocol.a $(CMOCKA_LIBS) $(PTHREAD_LIBS)

# The cold-read unit tests (test_cask_aio, test_cask_uring and
# test_cask_direct in storage/) share tests/unit/test_cask_reads.h.
EXTRA_DIST += tests/unit/test_cask_reads.h
# Unit tests that hook the cask_io seam or wait on commit tickets share
# tests/unit/test_cask_seam.h.
EXTRA_DIST += tests/unit/test_cask_seam.h

noinst_LIBRARIES += tests/integration/libharness.a
tests_integration_libharness_a_SOURCES = \
	tests/integration/harness.c tests/integration/harness.h
tests_integration_libharness_a_CFLAGS = $(AM_CFLAGS) $(LIBMEMCACHED_CFLAGS)

ITEST_LDADD = tests/integration/libharness.a $(LIBMEMCACHED_LIBS) $(PTHREAD_LIBS)
ITEST_CFLAGS = $(AM_CFLAGS) $(LIBMEMCACHED_CFLAGS)

check_PROGRAMS += tests/integration/test_commands
tests_integration_test_commands_SOURCES = tests/integration/test_commands.c
tests_integration_test_commands_CFLAGS = $(ITEST_CFLAGS)
tests_integration_test_commands_LDADD = $(ITEST_LDADD)
TESTS += tests/integration/test_commands

check_PROGRAMS += tests/integration/test_cas_race
tests_integration_test_cas_race_SOURCES = tests/integration/test_cas_race.c
tests_integration_test_cas_race_CFLAGS = $(ITEST_CFLAGS)
tests_integration_test_cas_race_LDADD = $(ITEST_LDADD)
TESTS += tests/integration/test_cas_race

check_PROGRAMS += tests/integration/test_persist
tests_integration_test_persist_SOURCES = tests/integration/test_persist.c
tests_integration_test_persist_CFLAGS = $(ITEST_CFLAGS)
tests_integration_test_persist_LDADD = $(ITEST_LDADD)
TESTS += tests/integration/test_persist

check_PROGRAMS += tests/integration/test_hostile
tests_integration_test_hostile_SOURCES = tests/integration/test_hostile.c
tests_integration_test_hostile_CFLAGS = $(ITEST_CFLAGS)
tests_integration_test_hostile_LDADD = $(ITEST_LDADD)
TESTS += tests/integration/test_hostile

check_PROGRAMS += tests/integration/test_hostile_load
tests_integration_test_hostile_load_SOURCES = \
	tests/integration/test_hostile_load.c
tests_integration_test_hostile_load_CFLAGS = $(ITEST_CFLAGS)
tests_integration_test_hostile_load_LDADD = $(ITEST_LDADD)
TESTS += tests/integration/test_hostile_load

check_PROGRAMS += tests/integration/test_pipeline
tests_integration_test_pipeline_SOURCES = tests/integration/test_pipeline.c
tests_integration_test_pipeline_CFLAGS = $(ITEST_CFLAGS)
tests_integration_test_pipeline_LDADD = $(ITEST_LDADD)
TESTS += tests/integration/test_pipeline

# Scale-out: three nodes behind libmemcached's ketama (README "Scaling out").
check_PROGRAMS += tests/integration/test_scaleout_ketama
tests_integration_test_scaleout_ketama_SOURCES = \
	tests/integration/test_scaleout_ketama.c
tests_integration_test_scaleout_ketama_CFLAGS = $(ITEST_CFLAGS)
tests_integration_test_scaleout_ketama_LDADD = $(ITEST_LDADD)
TESTS += tests/integration/test_scaleout_ketama
# and behind nutcracker (twemproxy) in a ketama pool; skips without it.
# test_scaleout_clients.py checks README's client settings (pylibmc,
# pymemcache) put keys where that ring (tests/integration/ketama.py) says.
dist_check_SCRIPTS += tests/integration/test_scaleout_nutcracker.py \
	tests/integration/test_scaleout_clients.py
EXTRA_DIST += tests/integration/ketama.py
TESTS += tests/integration/test_scaleout_nutcracker.py \
	tests/integration/test_scaleout_clients.py

# Other languages' client libraries (Ruby's Dalli, php-memcached in both
# protocols, php-memcache, spymemcached in both, python-binary-memcached,
# python-memcached, Cache::Memcached::Fast, Cache::Memcached, gomemcache)
# give the same outcomes here as against memcached. test_spy_ketama.py runs
# README's spymemcached ketama configuration against three servers.
dist_check_SCRIPTS += tests/clients/test_clients.py tests/clients/test_spy_ketama.py
EXTRA_DIST += tests/clients/dalli_ops.rb tests/clients/php_ops.php \
	tests/clients/SpyOps.java tests/clients/SpyKetama.java \
	tests/clients/bmemcached_ops.py tests/clients/python_memcached_ops.py \
	tests/clients/ops_lines.py tests/clients/pylibmc_ops.py \
	tests/clients/pymemcache_ops.py \
	tests/clients/perl_ops.pl tests/clients/gomemcache_ops.go \
	tests/clients/memjs_ops.js
TESTS += tests/clients/test_clients.py tests/clients/test_spy_ketama.py
# libmemcached's command-line tools (memccp, memccat, memcrm, memcflush,
# memcexist, memctouch, memcping, memcdump, memcstat, memcslap), text and
# --binary, give the same outcomes here as against memcached.
dist_check_SCRIPTS += tests/clients/test_memc_tools.py
TESTS += tests/clients/test_memc_tools.py

# test_bin_stat_groups.py: the binary protocol's stat items and slabs give
# memcached's names and per-class counts, as the text protocol's do, and a
# packet behind a walk of many keys is answered after it.
dist_check_SCRIPTS += tests/integration/test_bin_stat_groups.py
TESTS += tests/integration/test_bin_stat_groups.py

# test_stats_general.py: the figures `stats` shows for memcached's parts
# bitcached does not have, and `stats bitcached`.
dist_check_SCRIPTS += tests/integration/test_stats_general.py
TESTS += tests/integration/test_stats_general.py

# test_class_stats.py: the per-class counters of stats items and stats slabs
# (hits, sets, ... as memcached's; reclaimed, crawler and eviction counts),
# and a class whose items are gone still listed in stats slabs.
dist_check_SCRIPTS += tests/integration/test_class_stats.py
TESTS += tests/integration/test_class_stats.py

# test_watch_evict.py: `watch evictions` lines on a small -m server (issue 11).
dist_check_SCRIPTS += tests/integration/test_watch_evict.py
TESTS += tests/integration/test_watch_evict.py

# test_compare_fuzz.py: seeded random command streams (text and binary)
# against memcached, a fixed set of seeds; FUZZ_SEEDS/FUZZ_STEPS for more.
dist_check_SCRIPTS += tests/compare/test_compare_fuzz.py
TESTS += tests/compare/test_compare_fuzz.py

# test_compare_multiconn.py: seeded random steps over four connections
# (text and binary) on the same keys against memcached: half-sent blocks,
# quiet binary pipelines, values near -I; MC_SEEDS/MC_STEPS for more.
dist_check_SCRIPTS += tests/compare/test_compare_multiconn.py
TESTS += tests/compare/test_compare_multiconn.py

# test_hostile_partial.py: 300 clients stalled in the middle of 1 MB
# values; the memory they take must stay bounded as memcached's does
# (--input-budget).
dist_check_SCRIPTS += tests/integration/test_hostile_partial.py
TESTS += tests/integration/test_hostile_partial.py

# test_compare_bin_held_incr.py: a binary get and a decr of the same key
# in one write: memcached's decr then makes an unpadded item. Expected to
# fail until the server tells the store (see its header).
dist_check_SCRIPTS += tests/compare/test_compare_bin_held_incr.py
TESTS += tests/compare/test_compare_bin_held_incr.py
XFAIL_TESTS += tests/compare/test_compare_bin_held_incr.py

# test_compare_atime.py: mg h/l, me and metadump la= against memcached,
# with a 2 s pause (issue 11).
dist_check_SCRIPTS += tests/compare/test_compare_atime.py
TESTS += tests/compare/test_compare_atime.py

# test_compare_getpeek.py: pipelined get lines cut at every byte, long keys,
# junk and a binary request after a get, against memcached (the server
# peeks at the next get line to announce its key early).
dist_check_SCRIPTS += tests/compare/test_compare_getpeek.py
TESTS += tests/compare/test_compare_getpeek.py

# test_compare_counters.py: what stats counts (cmd_get, hits and misses,
# total_items, cmd_meta, ...) over text, meta and binary sequences, against
# memcached.
dist_check_SCRIPTS += tests/compare/test_compare_counters.py
TESTS += tests/compare/test_compare_counters.py

# test_compare_swallow.py: a too-large set or ms, or a binary packet refused
# with a body, is answered only once the whole block has been read and
# dropped, as memcached answers it (head sent, reply awaited, then the rest).
dist_check_SCRIPTS += tests/compare/test_compare_swallow.py
TESTS += tests/compare/test_compare_swallow.py

# test_compare_watch.py: the item_get and item_store lines `watch fetchers
# mutations` shows for text, meta and binary commands, against memcached.
dist_check_SCRIPTS += tests/compare/test_compare_watch.py
TESTS += tests/compare/test_compare_watch.py

# test_compare_multiget_cap.py: a get line of 1 MiB is answered as by
# memcached; a longer one, which memcached answers, gets "SERVER_ERROR out
# of memory reading request" and a close, whole or in pieces.
dist_check_SCRIPTS += tests/compare/test_compare_multiget_cap.py
TESTS += tests/compare/test_compare_multiget_cap.py

# test_compare_conn_limit.py: the clients -c lets in, the refusal, and
# curr_connections and rejected_connections at the limit, against memcached
# under four -c and -t.
dist_check_SCRIPTS += tests/compare/test_compare_conn_limit.py
TESTS += tests/compare/test_compare_conn_limit.py
# test_compare_conncount.py: curr_connections, total_connections,
# connection_structures and the `stats conns` lines (UDP handlers, idle
# client states) against memcached, with and without -U.
dist_check_SCRIPTS += tests/compare/test_compare_conncount.py
TESTS += tests/compare/test_compare_conncount.py

# test_memjs_sasl.py: memjs's SASL PLAIN against -S (skips without memjs,
# which is installed with npm, not from Debian; see its header).
dist_check_SCRIPTS += tests/integration/test_memjs_sasl.py
TESTS += tests/integration/test_memjs_sasl.py

# test_walk_cost.py: stats items/slabs, cachedump and metadump read no
# record of a key they do not list.
dist_check_SCRIPTS += tests/integration/test_walk_cost.py
TESTS += tests/integration/test_walk_cost.py

# test_admin_lost_state.py: admin stats/dump/check and the server on a
# store whose state file is missing, cut short or damaged in both slots.
dist_check_SCRIPTS += tests/integration/test_admin_lost_state.py
TESTS += tests/integration/test_admin_lost_state.py

dist_check_SCRIPTS += tests/integration/test_memccapable.sh tests/smoke/test_smoke.py \
	tests/compare/test_compare.py tests/integration/test_flags.py \
	tests/integration/test_dump.py tests/integration/test_mc_compat.py \
	tests/integration/test_issue_16.py
EXTRA_DIST += tests/integration/bcserver.py tests/compare/COVERAGE.md
TESTS += tests/integration/test_memccapable.sh tests/smoke/test_smoke.py \
	tests/compare/test_compare.py tests/integration/test_flags.py \
	tests/integration/test_dump.py tests/integration/test_mc_compat.py \
	tests/integration/test_issue_16.py

# Server benchmark (not part of make check): tests/bench/bench_server.sh.
noinst_PROGRAMS += tests/bench/bench_load
tests_bench_bench_load_SOURCES = tests/bench/bench_load.c
tests_bench_bench_load_CFLAGS = $(AM_CFLAGS) $(LIBMEMCACHED_CFLAGS)
tests_bench_bench_load_LDADD = $(LIBMEMCACHED_LIBS)
EXTRA_DIST += tests/bench/bench_server.sh tests/bench/bench_restart.sh tests/bench/bench_large.sh tests/bench/bench_lib.sh tests/bench/bench_dump.py \
	tests/bench/bench_evict.sh \
	tests/bench/bench_setcpu.sh \
	tests/bench/bench_scaleout.py

# Model-based crash and fault tests against the real binary (tests/crash/).
# The shim is an LD_PRELOAD object that kills or fails the server's file
# syscalls; it is built without the sanitizers, and the tests run without it
# (or skip) when $BITCACHED is a sanitizer build. CRASH_ITER=N runs them longer.
# test_crashshim.py checks the shim itself, so a broken one cannot make the
# other two pass by doing nothing.
check_PROGRAMS += tests/crash/crashshim.so
tests_crash_crashshim_so_SOURCES = tests/crash/crashshim.c
tests_crash_crashshim_so_CFLAGS = $(WARN_CFLAGS) $(PTHREAD_CFLAGS) -fPIC
tests_crash_crashshim_so_LDFLAGS = -shared
tests_crash_crashshim_so_LDADD = -ldl $(PTHREAD_LIBS)
EXTRA_DIST += tests/crash/crashmodel.py
dist_check_SCRIPTS += tests/crash/test_crashshim.py \
	tests/crash/test_crash_model.py tests/crash/test_fault_model.py
TESTS += tests/crash/test_crashshim.py \
	tests/crash/test_crash_model.py tests/crash/test_fault_model.py
# A failed segment sync recovered from without a restart (issue 8), and
# crash rounds (kills at the Nth syscall of the recovery) at a few kill
# points; SYNC_RECOVER_CRASH=1 runs them all, see the test's header.
dist_check_SCRIPTS += tests/crash/test_sync_recover.py
TESTS += tests/crash/test_sync_recover.py
# The same under --sync=always with the commit journal.
dist_check_SCRIPTS += tests/crash/test_sync_recover_always.py
TESTS += tests/crash/test_sync_recover_always.py
# Hostile runs through the parking of writes at roll-overs (64 KiB
# segments): eight pipelining clients (text with noreply, binary quiet
# sets, ms q, one that closes mid-batch), every reply checked, kill -9 and
# every key checked after the restart, in each sync mode.
dist_check_SCRIPTS += tests/crash/test_park_hostile.py
TESTS += tests/crash/test_park_hostile.py
# Roll-over under interval and never with every sync held: writes go on,
# a stop waits for the syncs and exits 0, a kill loses nothing; skips
# without the shim.
dist_check_SCRIPTS += tests/crash/test_roll_held_sync.py
TESTS += tests/crash/test_roll_held_sync.py
# A roll-over that would wait (the sync thread behind, a commit held)
# parks its own connection: -t 1, syncs held, a get on another
# connection is answered; replies in order once released; a kill -9
# while parked loses nothing acknowledged; skips without the shim.
dist_check_SCRIPTS += tests/crash/test_roll_park.py
TESTS += tests/crash/test_roll_park.py
# The same for gat/gats over several keys, mg with T or N, ma with T, and
# a write while someone watches: the roller's open held; skips without
# the shim.
dist_check_SCRIPTS += tests/crash/test_roll_park_touch.py
TESTS += tests/crash/test_roll_park_touch.py
dist_check_SCRIPTS += tests/crash/test_roll_offload.py
TESTS += tests/crash/test_roll_offload.py
# flush_all (text, binary, UDP) and a delayed flush coming due write the
# state file on the roller thread: its fdatasync held, -t 1, gets on
# another connection are answered, flush_all answers OK once released, a
# set parks behind a due flush; a kill -9 after each keeps the flush;
# skips without the shim.
dist_check_SCRIPTS += tests/crash/test_flush_park.py
TESTS += tests/crash/test_flush_park.py
# A stopped store's files damaged (a byte flipped in a closed segment, a
# hint, the state file, a manifest, a retired file) and compactions killed
# at each sync, rename, unlink and truncate (bitcached-admin compact, and
# the server's own at start-up), each judged key by key against the crash
# model; without the shim only the flips run.
dist_check_SCRIPTS += tests/crash/test_crash_stopped.py
TESTS += tests/crash/test_crash_stopped.py
# The writes the crash model does not send (incr, decr, append, prepend,
# add, replace, cas, ms modes, ma, md, binary SET/APPEND/INCREMENT/DELETE),
# each client's keys known exactly, killed and checked in every sync mode.
dist_check_SCRIPTS += tests/crash/test_crash_rmw.py
TESTS += tests/crash/test_crash_rmw.py

# --sync=always parks a connection instead of its worker (issue 8 item 2):
# a slow or failing fdatasync through the crash shim; skips without it.
dist_check_SCRIPTS += tests/integration/test_sync_always.py
TESTS += tests/integration/test_sync_always.py
# A wall clock stepped back stretches no wait (interval syncs, spaced
# commits): an LD_PRELOAD shim sets the server's wall clock an hour ahead
# of the kernel's; skips against a sanitizer build.
check_PROGRAMS += tests/integration/clockshim.so
tests_integration_clockshim_so_SOURCES = tests/integration/clockshim.c
tests_integration_clockshim_so_CFLAGS = $(WARN_CFLAGS) -fPIC
tests_integration_clockshim_so_LDFLAGS = -shared
tests_integration_clockshim_so_LDADD = -ldl
dist_check_SCRIPTS += tests/integration/test_clock_step.py
TESTS += tests/integration/test_clock_step.py
# ... and recovers from a failed journal commit (issue 8): test_sync_always's
# server helpers, a one-off fdatasync EIO through the crash shim.
dist_check_SCRIPTS += tests/integration/test_journal_recover.py
TESTS += tests/integration/test_journal_recover.py
# ... and loses no reply under load with slow and failing syncs: a worker is
# woken only by a commit that may release its replies (about 15 s).
dist_check_SCRIPTS += tests/integration/test_always_stress.py
TESTS += tests/integration/test_always_stress.py
# ... and holds a UDP write's reply for its commit, not its worker.
dist_check_SCRIPTS += tests/integration/test_udp_always.py
TESTS += tests/integration/test_udp_always.py

# Write batching per event-loop pass (issue 8, item 1): pipelined sets
# share writes, a failed batch write answers SERVER_ERROR and leaves
# nothing behind, set/delete order across connections (crash shim).
dist_check_SCRIPTS += tests/integration/test_batch.py
TESTS += tests/integration/test_batch.py
# test_close_pending.py: writes a client pipelined with noreply before it
# closed all run, also when its connection waited for a commit or a
# roll-over meanwhile, in every sync mode.
dist_check_SCRIPTS += tests/integration/test_close_pending.py
TESTS += tests/integration/test_close_pending.py
# ... and an answer that writes nothing (miss, NOT_STORED, EXISTS) never
# rests on another worker's staged record whose write then failed.
dist_check_SCRIPTS += tests/integration/test_batch_decide.py
TESTS += tests/integration/test_batch_decide.py
# ... and the append buffers it stages in count in -m (stats storage).
dist_check_SCRIPTS += tests/integration/test_batch_mem.py
TESTS += tests/integration/test_batch_mem.py
dist_check_SCRIPTS += tests/integration/test_write_map_stats.py
TESTS += tests/integration/test_write_map_stats.py
# Hot small gets from the value caches never answer an old value.
dist_check_SCRIPTS += tests/integration/test_value_cache.py
TESTS += tests/integration/test_value_cache.py

# --sync=always figures (not part of make check): tests/bench/bench_sync.sh
# with its load client, which speaks memcached text and Redis RESP.
noinst_PROGRAMS += tests/bench/bench_setload
tests_bench_bench_setload_SOURCES = tests/bench/bench_setload.c
EXTRA_DIST += tests/bench/bench_sync.sh

# The latency of small gets on the worker that rolls segments over (not
# part of make check): tests/bench/bench_rollget.py
EXTRA_DIST += tests/bench/bench_rollget.py

# Replication (issue 14): a primary and replicas on loopback.
dist_check_SCRIPTS += tests/integration/test_repl.py
TESTS += tests/integration/test_repl.py
dist_check_SCRIPTS += tests/integration/test_repl_cut.py
TESTS += tests/integration/test_repl_cut.py
dist_check_SCRIPTS += tests/integration/test_repl_state_lost.py
TESTS += tests/integration/test_repl_state_lost.py
# The same replica killed at start-up between the store's new state file
# and the replication file that forgets the primary.
dist_check_SCRIPTS += tests/integration/test_repl_state_lost_kill.py
TESTS += tests/integration/test_repl_state_lost_kill.py
dist_check_SCRIPTS += tests/integration/test_repl_newer.py
TESTS += tests/integration/test_repl_newer.py

# A start-up that fails at listen() (after the workers started) exits with
# 73, never by a signal (a port clash, a unix socket that cannot be made).
dist_check_SCRIPTS += tests/integration/test_start_fail.py
TESTS += tests/integration/test_start_fail.py
dist_check_SCRIPTS += tests/integration/test_signals.py
TESTS += tests/integration/test_signals.py

# Cold reads (issue 16): no read-around on value reads; values not in the
# page cache read on I/O threads while the worker serves others (the crash
# shim makes those reads slow; without it the latency check is skipped).
dist_check_SCRIPTS += tests/integration/test_read_around.py \
	tests/integration/test_cold_read.py
TESTS += tests/integration/test_read_around.py \
	tests/integration/test_cold_read.py

# Large gets' replies written from the connection's own hold (a reply line,
# a value from its segment's mapping, the bytes after it, in one writev):
# whole and in order to a client that reads slowly, and a client closing
# mid-reply (issue 16).
dist_check_SCRIPTS += tests/integration/test_direct_reply.py
TESTS += tests/integration/test_direct_reply.py
# Cold reads through each worker's io_uring: connections closed and a stop
# with reads in flight, and the fallback to the I/O threads where io_uring
# is refused (noring: io_uring_setup refused by a seccomp filter).
check_PROGRAMS += tests/integration/noring
tests_integration_noring_SOURCES = tests/integration/noring.c
tests_integration_noring_CFLAGS = $(WARN_CFLAGS)
dist_check_SCRIPTS += tests/integration/test_uring.py
TESTS += tests/integration/test_uring.py
# Cold gets over a memory cgroup smaller than the data: evicted records
# read with O_DIRECT, at most twice the record read from disk per get.
dist_check_SCRIPTS += tests/integration/test_direct_read.py
TESTS += tests/integration/test_direct_read.py
# The reads a parked request sends off, and get-and-touch, over the fake
# store with every value cold (cmd_read.c through cmd.c and cmd_bin.c).
check_PROGRAMS += tests/unit/test_cmd_read
TESTS += tests/unit/test_cmd_read
tests_unit_test_cmd_read_SOURCES = tests/unit/test_cmd_read.c \
	$(CMD_TEST_SOURCES)
tests_unit_test_cmd_read_CFLAGS = $(CMD_TEST_CFLAGS)
tests_unit_test_cmd_read_LDADD = $(CMD_TEST_LDADD)
# gat, gats, mg T, binary gat and UDP gets park on a cold read too, and
# pipelined cold gets overlap their reads (test_cold_park.py, same shim).
dist_check_SCRIPTS += tests/integration/test_cold_park.py
TESTS += tests/integration/test_cold_park.py
# A touch or an mg without v of a cold large value reads its record's
# header and key, not the value (/proc/PID/io read_bytes).
dist_check_SCRIPTS += tests/integration/test_touch_head.py
TESTS += tests/integration/test_touch_head.py
# Their figures (not part of make check; root, a memory cgroup, fio):
# tests/bench/bench_coldread.sh, with bench_setload -b and bench_load.
EXTRA_DIST += tests/bench/bench_coldread.sh
# Pipelined gets side by side with another build (CPU per get, warm; gets/s
# of a cold pass): tests/bench/bench_pipeline.sh with its client.
noinst_PROGRAMS += tests/bench/bench_pipeget
tests_bench_bench_pipeget_SOURCES = tests/bench/bench_pipeget.c
tests_bench_bench_pipeget_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
tests_bench_bench_pipeget_LDADD = $(PTHREAD_LIBS)
EXTRA_DIST += tests/bench/bench_pipeline.sh
