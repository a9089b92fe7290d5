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
