# storage/local.mk - build rules for storage/ (included by the top Makefile.am).
