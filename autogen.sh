#!/bin/sh
# autogen.sh - generate ./configure from configure.ac and Makefile.am.
mkdir -p m4
exec autoreconf -fi
