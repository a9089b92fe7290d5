# server/local.mk - the bitcached binary (included by the top Makefile.am).
# cmd.c comes from protocol/local.mk (CMD_SOURCES), config.c and notify.c
# from systemd/local.mk (CONFIG_SOURCES, NOTIFY_SOURCES).
bin_PROGRAMS += bitcached
bitcached_SOURCES = \
	server/main.c server/server.h \
	server/settings.c server/settings.h \
	server/settings_ext.c server/settings_ext.h \
	server/tls_settings.c server/tls_settings.h \
	server/listen.c server/listen.h \
	server/portfile.c server/portfile.h \
	server/worker.c server/worker.h \
	server/readq.c server/readq.h \
	server/readring.c server/readring.h \
	server/conn.c server/conn.h \
	server/outbudget.c server/outbudget.h \
	server/fdlimit.c server/fdlimit.h \
	server/conn_table.c server/conn_table.h \
	server/watch.c server/watch.h \
	server/stats.c server/stats.h \
	server/repl.c server/repl.h server/repl_int.h \
	server/repl_primary.c server/repl_replica.c \
	server/repl_wire.c server/repl_wire.h \
	server/log.c server/log.h \
	$(CMD_SOURCES) $(CONFIG_SOURCES) $(NOTIFY_SOURCES)
bitcached_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(LIBSYSTEMD_CFLAGS) \
	$(XXHASH_CFLAGS)
bitcached_LDADD = $(PROTOCOL_LIBS) $(STORAGE_LIBS) $(LIBEVENT_LIBS) \
	$(LIBSYSTEMD_LIBS) $(PTHREAD_LIBS)

# A read buffer grown for large requests stays grown while they keep coming,
# within a bound per worker (conn.c keep_rbuf; issue 16).
dist_check_SCRIPTS += tests/integration/test_rbuf_keep.py
TESTS += tests/integration/test_rbuf_keep.py

# Values announced and still arriving share one budget (--input-budget):
# past it a value is refused as memcached refuses one it has no memory for.
dist_check_SCRIPTS += tests/integration/test_input_budget.py
TESTS += tests/integration/test_input_budget.py

# A get-and-touch whose value the disk cannot read answers SERVER_ERROR and
# keeps the connection, whatever the value's size (cmd_read_touch).
dist_check_SCRIPTS += tests/integration/test_touch_read_error.py
TESTS += tests/integration/test_touch_read_error.py
