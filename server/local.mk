# server/local.mk - build rules for server/ (included by the top Makefile.am).
