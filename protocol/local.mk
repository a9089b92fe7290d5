# protocol/local.mk - build rules for protocol/ (included by the top Makefile.am).
# libprotocol.a is pure (no libevent, no storage); the server links it and
# adds CMD_SOURCES (the command executor) to the bitcached binary.

noinst_LIBRARIES += libprotocol.a
libprotocol_a_SOURCES = protocol/proto.h protocol/proto_parse.c \
	protocol/proto_format.c
libprotocol_a_CFLAGS = $(AM_CFLAGS)

PROTOCOL_LIBS = libprotocol.a
CMD_SOURCES = server/cmd.c server/cmd.h

# The executor as a library too, so tests can link it against a fake store.
noinst_LIBRARIES += libcmd.a
libcmd_a_SOURCES = $(CMD_SOURCES)
libcmd_a_CFLAGS = $(AM_CFLAGS)

# The golden transcript: memcached's recorded replies replayed through
# cmd.c over a fake in-memory store (regenerate with gen_golden.py).
check_PROGRAMS += tests/golden/test_golden
TESTS += tests/golden/test_golden
tests_golden_test_golden_SOURCES = tests/golden/test_golden.c \
	tests/golden/fake_cask.c
tests_golden_test_golden_LDADD = libcmd.a libprotocol.a
EXTRA_DIST += tests/golden/gen_golden.py tests/golden/README.md \
	tests/golden/cases
