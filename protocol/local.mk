# protocol/local.mk - build rules for protocol/ (included by the top Makefile.am).
# libprotocol.a is pure (no libevent, no storage); the server links it and
# adds CMD_SOURCES (the command executor) to the bitcached binary.

noinst_LIBRARIES += libprotocol.a
libprotocol_a_SOURCES = protocol/proto.h protocol/proto_parse.c \
	protocol/proto_budget.c protocol/proto_budget.h \
	protocol/proto_format.c
libprotocol_a_CFLAGS = $(AM_CFLAGS)

PROTOCOL_LIBS = libprotocol.a
CMD_SOURCES = server/cmd.c server/cmd.h server/cmd_meta.c server/cmd_meta.h \
	server/cmd_admin.c server/cmd_admin.h server/cmd_late.c \
	server/cmd_read.c server/cmd_read.h \
	server/prefix_stats.c server/prefix_stats.h

# The executor as a library too, so tests can link it against a fake store.
noinst_LIBRARIES += libcmd.a
libcmd_a_SOURCES = $(CMD_SOURCES)
libcmd_a_CFLAGS = $(AM_CFLAGS)

# The golden transcript: memcached's recorded replies replayed through
# cmd.c over a fake in-memory store (regenerate with gen_golden.py).
check_PROGRAMS += tests/golden/test_golden
TESTS += tests/golden/test_golden
tests_golden_test_golden_SOURCES = tests/golden/test_golden.c tests/golden/fake_cask.h \
	tests/golden/fake_cask.c storage/cask_defaults.c
tests_golden_test_golden_LDADD = libcmd.a libprotocol.a $(PTHREAD_LIBS)
EXTRA_DIST += tests/golden/gen_golden.py tests/golden/README.md \
	tests/golden/cases

# Parser unit tests link the pure library only.
check_PROGRAMS += tests/unit/test_proto_parse
TESTS += tests/unit/test_proto_parse
tests_unit_test_proto_parse_SOURCES = tests/unit/test_proto_parse.c
tests_unit_test_proto_parse_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_proto_parse_LDADD = libprotocol.a $(CMOCKA_LIBS)

# cmd.c over the fake in-memory store.
check_PROGRAMS += tests/unit/test_cmd
TESTS += tests/unit/test_cmd
tests_unit_test_cmd_SOURCES = tests/unit/test_cmd.c $(CMD_TEST_SOURCES)
tests_unit_test_cmd_CFLAGS = $(CMD_TEST_CFLAGS)
tests_unit_test_cmd_LDADD = $(CMD_TEST_LDADD)

# libFuzzer target: parser and executor compiled with coverage
# instrumentation (FUZZ_CFLAGS), over the fake store.
if ENABLE_FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz_proto
tests_fuzz_fuzz_proto_SOURCES = tests/fuzz/fuzz_proto.c \
	tests/fuzz/fuzz_exec.c tests/fuzz/fuzz_exec.h \
	protocol/proto_parse.c protocol/proto_format.c protocol/proto.h \
	protocol/proto_budget.c protocol/proto_budget.h \
	$(CMD_SOURCES) tests/golden/fake_cask.c storage/cask_defaults.c \
	tests/golden/fake_cask.h
tests_fuzz_fuzz_proto_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_proto_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer,address,undefined
endif
EXTRA_DIST += tests/fuzz/fuzz_proto.c tests/fuzz/corpus protocol/PROTOCOL.md

# Parser benchmark: built with the tree, run by hand (not in make check).
noinst_PROGRAMS += tests/bench/bench_protocol
tests_bench_bench_protocol_SOURCES = tests/bench/bench_protocol.c
tests_bench_bench_protocol_LDADD = libprotocol.a

# Hostile input (HTTP lines, huge keys, NUL bytes, garbage) on its own.
check_PROGRAMS += tests/unit/test_proto_hostile
TESTS += tests/unit/test_proto_hostile
tests_unit_test_proto_hostile_SOURCES = tests/unit/test_proto_hostile.c
tests_unit_test_proto_hostile_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_proto_hostile_LDADD = libprotocol.a $(CMOCKA_LIBS)
