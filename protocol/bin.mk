# protocol/bin.mk - build rules for memcached's binary protocol, SASL and
# UDP (included by the top Makefile.am after server/local.mk): the pure
# parser joins libprotocol.a, the executor and its helpers join the command
# sources, and their tests.

libprotocol_a_SOURCES += protocol/proto_bin.c protocol/proto_bin.h
CMD_SOURCES += server/cmd_bin.c server/cmd_bin.h server/sasl.c server/sasl.h \
	server/auth_text.c server/auth_text.h
bitcached_SOURCES += server/udp.c server/udp.h

# Parser unit tests link the pure library only.
check_PROGRAMS += tests/unit/test_proto_bin
TESTS += tests/unit/test_proto_bin
tests_unit_test_proto_bin_SOURCES = tests/unit/test_proto_bin.c
tests_unit_test_proto_bin_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_proto_bin_LDADD = libprotocol.a $(CMOCKA_LIBS)

# The binary executor over the fake in-memory store.
check_PROGRAMS += tests/unit/test_cmd_bin
TESTS += tests/unit/test_cmd_bin
tests_unit_test_cmd_bin_SOURCES = tests/unit/test_cmd_bin.c \
	$(CMD_TEST_SOURCES)
tests_unit_test_cmd_bin_CFLAGS = $(CMD_TEST_CFLAGS)
tests_unit_test_cmd_bin_LDADD = $(CMD_TEST_LDADD)

# Against the built server: raw packets compared with memcached, pylibmc
# in binary mode, -B and -S (SASL refused and accepted), UDP.
dist_check_SCRIPTS += tests/compare/test_compare_bin.py \
	tests/integration/test_pylibmc_bin.py tests/integration/test_bin_modes.py \
	tests/integration/test_udp.py
TESTS += tests/compare/test_compare_bin.py tests/integration/test_pylibmc_bin.py \
	tests/integration/test_bin_modes.py tests/integration/test_udp.py

# libFuzzer target for the binary parser and executor (beside fuzz_proto),
# over the fake store; seeds in tests/fuzz/corpus_bin.
if ENABLE_FUZZ
# fuzz_proto compiles CMD_SOURCES itself, cmd_bin.c included
tests_fuzz_fuzz_proto_SOURCES += protocol/proto_bin.c protocol/proto_bin.h
noinst_PROGRAMS += tests/fuzz/fuzz_bin
tests_fuzz_fuzz_bin_SOURCES = tests/fuzz/fuzz_bin.c \
	tests/fuzz/fuzz_exec.c tests/fuzz/fuzz_exec.h \
	protocol/proto_parse.c protocol/proto_format.c protocol/proto.h \
	protocol/proto_budget.c protocol/proto_budget.h \
	protocol/proto_bin.c protocol/proto_bin.h \
	$(CMD_SOURCES) tests/golden/fake_cask.c storage/cask_defaults.c \
	tests/golden/fake_cask.h
tests_fuzz_fuzz_bin_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_bin_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer,address,undefined
endif
EXTRA_DIST += tests/fuzz/fuzz_bin.c tests/fuzz/corpus_bin

