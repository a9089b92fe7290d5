#!/usr/bin/env python3
# test_compare.py - differential test: Debian's memcached ($MEMCACHED) and the
# server under test ($BITCACHED) get the same raw byte sequences; their replies
# must be byte-identical once cas values, stats bodies and version strings are
# masked. Each case runs on a fresh connection with its own keys, so both
# servers start each case equal. Python 3 stdlib and tests/integration/bcserver.py.
import os
import re
import socket
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

SENTINEL = b"mn\r\n"
SENTINEL_REPLY = b"MN\r\n"
LONGKEY = b"x" * 251
MAXKEY = b"y" * 250


class Raw(bytes):
    """A step after which the server may still be waiting for input (inside a
    data block, a swallow, a partial line): read until quiet, no sentinel."""


class Trickle(bytes):
    """A step sent one byte per send(), to exercise incremental parsing."""


# Each case: (name, [step, ...]). A step is bytes; "{k}" and "{k2}" become the
# case's own keys, "{cas}" the cas value of the last "VALUE" line this server
# sent on this connection, "{c}" the last meta "c" value.
CASES = [
    # --- storage commands ---
    ("set get", [b"set {k} 5 0 3\r\nabc\r\n", b"get {k}\r\n"]),
    ("set empty value", [b"set {k} 0 0 0\r\n\r\n", b"get {k}\r\n"]),
    ("set binary value", [b"set {k} 1 0 4\r\n\x00\r\n\xff\r\n", b"get {k}\r\n"]),
    ("set max flags", [b"set {k} 4294967295 0 1\r\na\r\n", b"get {k}\r\n"]),
    ("set flags overflow", [b"set {k} 4294967296 0 1\r\na\r\n", b"get {k}\r\n"]),
    ("set negative flags", [b"set {k} -1 0 1\r\na\r\n", b"get {k}\r\n"]),
    ("set overwrite", [b"set {k} 0 0 1\r\na\r\n", b"set {k} 2 0 2\r\nbb\r\n", b"get {k}\r\n"]),
    ("set noreply", [b"set {k} 0 0 1 noreply\r\na\r\n", b"get {k}\r\n"]),
    ("add", [b"add {k} 0 0 1\r\na\r\n", b"add {k} 0 0 1\r\nb\r\n", b"get {k}\r\n"]),
    ("add noreply", [b"add {k} 0 0 1 noreply\r\na\r\nadd {k} 0 0 1 noreply\r\nb\r\nget {k}\r\n"]),
    ("replace", [b"replace {k} 0 0 1\r\na\r\n", b"set {k} 0 0 1\r\na\r\n",
                 b"replace {k} 3 0 1\r\nb\r\n", b"get {k}\r\n"]),
    ("append prepend", [b"append {k} 0 0 1\r\na\r\n", b"prepend {k} 0 0 1\r\na\r\n",
                        b"set {k} 7 0 1\r\nm\r\n", b"append {k} 9 0 2\r\n>>\r\n",
                        b"prepend {k} 9 0 2\r\n<<\r\n", b"get {k}\r\n"]),
    ("append noreply", [b"set {k} 0 0 1\r\nm\r\nappend {k} 0 0 1 noreply\r\nz\r\nget {k}\r\n"]),
    ("set bad data chunk", [Raw(b"set {k} 0 0 3\r\nabcde\r\n"), b"get {k}\r\n"]),
    ("set short data chunk", [Raw(b"set {k} 0 0 3\r\nab\r\n"), Raw(b"\r\n"), b"get {k}\r\n"]),
    ("set missing exptime", [b"set {k} 0 1\r\n", b"get {k}\r\n"]),
    ("set bad length", [b"set {k} 0 0 abc\r\n", b"get {k}\r\n"]),
    ("set negative length", [b"set {k} 0 0 -1\r\n", b"get {k}\r\n"]),
    ("set bad flags", [b"set {k} x 0 1\r\n", b"get {k}\r\n"]),
    ("set bad exptime", [b"set {k} 0 x 1\r\n", b"get {k}\r\n"]),
    ("set too many tokens", [b"set {k} 0 0 1 noreply extra\r\n", b"get {k}\r\n"]),
    ("set too large", [Raw(b"set {k} 0 0 2000000\r\n" + b"z" * 2000000 + b"\r\n"), b"get {k}\r\n"]),
    ("set negative exptime", [b"set {k} 0 -1 1\r\na\r\n", b"get {k}\r\n"]),
    ("key too long", [b"set " + LONGKEY + b" 0 0 1\r\na\r\n", b"get " + LONGKEY + b"\r\n"]),
    ("key max length", [b"set " + MAXKEY + b" 0 0 1\r\na\r\n", b"get " + MAXKEY + b"\r\n",
                        b"delete " + MAXKEY + b"\r\n"]),
    ("key with control char", [b"get a\x01b\r\n"]),
    # --- cas ---
    ("gets cas", [b"set {k} 3 0 2\r\nhi\r\n", b"gets {k}\r\n", b"cas {k} 0 0 2 {cas}\r\nho\r\n",
                  b"cas {k} 0 0 2 {cas}\r\nhu\r\n", b"get {k}\r\n"]),
    ("cas missing", [b"cas {k} 0 0 1 12345\r\na\r\n"]),
    ("cas wrong", [b"set {k} 0 0 1\r\na\r\n", b"gets {k}\r\n", b"cas {k} 0 0 1 999999999\r\nb\r\n",
                   b"get {k}\r\n"]),
    ("cas noreply", [b"set {k} 0 0 1\r\na\r\n", b"gets {k}\r\n",
                     b"cas {k} 0 0 1 {cas} noreply\r\nb\r\nget {k}\r\n"]),
    ("cas bad value", [b"cas {k} 0 0 1 abc\r\n", b"get {k}\r\n"]),
    ("cas missing token", [b"cas {k} 0 0 1\r\n", b"get {k}\r\n"]),
    # --- retrieval ---
    ("get missing", [b"get {k}\r\n"]),
    ("get multi", [b"set {k} 0 0 1\r\n1\r\nset {k2} 0 0 1\r\n2\r\n", b"get {k} nokey {k2} {k}\r\n"]),
    ("gets multi", [b"set {k} 0 0 1\r\n1\r\n", b"gets {k} {k2}\r\n"]),
    ("get no key", [b"get\r\n"]),
    ("get extra spaces", [b"set {k} 0 0 1\r\n1\r\n", b"get   {k}   \r\n"]),
    ("get long key list", [b"get " + b" ".join(b"{k}%d" % i for i in range(100)) + b"\r\n"]),
    ("gat", [b"set {k} 1 0 1\r\na\r\n", b"gat 100 {k} {k2}\r\n", b"gats 100 {k}\r\n"]),
    ("gat bad exptime", [b"gat abc {k}\r\n"]),
    ("gat missing key", [b"gat 100\r\n"]),
    ("touch", [b"touch {k} 10\r\n", b"set {k} 0 0 1\r\na\r\n", b"touch {k} 10\r\n",
               b"touch {k} 10 noreply\r\n", b"get {k}\r\n"]),
    ("touch bad", [b"touch {k}\r\n", b"touch {k} abc\r\n"]),
    ("touch expire", [b"set {k} 0 0 1\r\na\r\n", b"touch {k} -1\r\n", b"get {k}\r\n"]),
    # --- delete ---
    ("delete", [b"delete {k}\r\n", b"set {k} 0 0 1\r\na\r\n", b"delete {k}\r\n", b"get {k}\r\n"]),
    ("delete noreply", [b"set {k} 0 0 1\r\na\r\ndelete {k} noreply\r\nget {k}\r\n"]),
    ("delete with time 0", [b"set {k} 0 0 1\r\na\r\n", b"delete {k} 0\r\n"]),
    ("delete with time", [b"set {k} 0 0 1\r\na\r\n", b"delete {k} 10\r\n", b"get {k}\r\n"]),
    ("delete no key", [b"delete\r\n"]),
    # --- incr/decr ---
    ("incr", [b"incr {k} 1\r\n", b"set {k} 0 0 1\r\n5\r\n", b"incr {k} 10\r\n", b"get {k}\r\n"]),
    ("decr floor", [b"set {k} 0 0 2\r\n10\r\n", b"decr {k} 3\r\n", b"decr {k} 100\r\n"]),
    ("incr wrap", [b"set {k} 0 0 20\r\n18446744073709551615\r\n", b"incr {k} 1\r\n", b"get {k}\r\n"]),
    ("incr non numeric", [b"set {k} 0 0 3\r\nabc\r\n", b"incr {k} 1\r\n", b"decr {k} 1\r\n"]),
    ("incr bad delta", [b"set {k} 0 0 1\r\n1\r\n", b"incr {k} abc\r\n", b"incr {k} -1\r\n",
                        b"incr {k} 18446744073709551616\r\n"]),
    ("incr noreply", [b"set {k} 0 0 1\r\n1\r\nincr {k} 5 noreply\r\ndecr {k} 2 noreply\r\nget {k}\r\n"]),
    ("incr keeps flags", [b"set {k} 77 0 1\r\n9\r\n", b"incr {k} 1\r\n", b"gets {k}\r\n"]),
    ("incr missing arg", [b"incr {k}\r\n"]),
    ("incr leading spaces value", [b"set {k} 0 0 3\r\n 12\r\n", b"incr {k} 1\r\n"]),
    ("incr too long number", [b"set {k} 0 0 21\r\n123456789012345678901\r\n", b"incr {k} 1\r\n"]),
    # --- flush_all, version, verbosity, misc ---
    ("flush_all", [b"set {k} 0 0 1\r\na\r\n", b"flush_all\r\n", b"get {k}\r\n",
                   b"set {k} 0 0 1\r\nb\r\n", b"get {k}\r\n"]),
    ("flush_all noreply", [b"set {k} 0 0 1\r\na\r\nflush_all noreply\r\nget {k}\r\n"]),
    ("flush_all delay", [b"set {k} 0 0 1\r\na\r\n", b"flush_all 100\r\n", b"get {k}\r\n",
                         b"flush_all 0\r\n", b"get {k}\r\n"]),
    ("flush_all bad", [b"flush_all abc\r\n", b"flush_all 1 2 3\r\n"]),
    ("version", [b"version\r\n"]),
    ("verbosity", [b"verbosity 1\r\n", b"verbosity 0 noreply\r\n", b"verbosity\r\n"]),
    ("stats", [b"stats\r\n"]),
    ("stats settings", [b"stats settings\r\n"]),
    ("stats unknown", [b"stats nonsense\r\n"]),
    ("shutdown disabled", [b"shutdown\r\n"]),
    ("unknown command", [b"frobnicate\r\n", b"\r\n", b"  \r\n", b"GET {k}\r\n"]),
    ("bare newline endings", [b"set {k} 0 0 1\na\r\nget {k}\ndelete {k}\n"]),
    ("quit", [b"quit\r\n"]),
    ("quit pipelined", [b"set {k} 0 0 1\r\na\r\nget {k}\r\nquit\r\nget {k}\r\n"]),
    ("pipelined mixed", [b"set {k} 0 0 1\r\na\r\nget {k}\r\nappend {k} 0 0 1\r\nb\r\n"
                         b"incr {k} 1\r\nget {k} {k2}\r\ndelete {k}\r\nget {k}\r\n"]),
    ("pipelined many sets", [b"".join(b"set {k}%d 0 0 100\r\n" % i + b"s" * 100 + b"\r\n"
                                      for i in range(300)) + b"get {k}299\r\n"]),
    ("pipelined many gets", [b"set {k} 0 0 3\r\nabc\r\n" + b"get {k}\r\n" * 200]),
    ("line too long", [Raw(b"get " + b"a" * 5000)]),
    ("long line of keys", [b"get " + b" ".join([b"{k}"] * 300) + b"\r\n"]),
    ("binary junk", [Raw(b"\x80\x01\x00\x03\x00\x00\x00\x00\x00\x00\x00\x03abc")]),
    ("nul in command", [b"get a\x00b\r\n"]),
    ("http request", [Raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")]),
    ("http post", [Raw(b"POST /x HTTP/1.0\r\n\r\n")]),
    # --- meta commands ---
    ("mn", [Raw(b"mn\r\n")]),
    ("ms mg", [b"ms {k} 2\r\nhi\r\n", b"mg {k} v\r\n", b"mg {k} v f s k\r\n", b"mg {k}\r\n"]),
    ("mg miss", [b"mg {k} v\r\n", b"mg {k} v q\r\n", b"mg {k} k O123\r\n"]),
    ("mg opaque", [b"ms {k} 1 T0 F5\r\na\r\n", b"mg {k} O99 v f t\r\n"]),
    ("ms flags", [b"ms {k} 1 F7 I\r\nx\r\n", b"ms {k} 1 q\r\ny\r\n", b"mg {k} v f\r\n"]),
    ("ms modes", [b"ms {k} 1 ME\r\na\r\n", b"ms {k} 1 ME\r\nb\r\n", b"ms {k} 1 MA\r\nc\r\n",
                  b"ms {k} 1 MP\r\nd\r\n", b"ms {k} 1 MR\r\ne\r\n", b"ms {k2} 1 MR\r\ne\r\n",
                  b"mg {k} v\r\n"]),
    ("ms cas", [b"ms {k} 1 c\r\na\r\n", b"mg {k} c v\r\n", b"ms {k} 1 C{c}\r\nb\r\n",
                b"ms {k} 1 C1\r\nc\r\n", b"mg {k} v\r\n"]),
    ("ms bad", [b"ms {k}\r\n", b"ms {k} abc\r\n", Raw(b"ms {k} 2\r\nabcd\r\n")]),
    ("ms invalid mode", [b"ms {k} 1 MZ\r\na\r\n"]),
    ("md", [b"md {k}\r\n", b"ms {k} 1\r\na\r\n", b"md {k}\r\n", b"md {k} q\r\n", b"mg {k} v\r\n"]),
    ("md opaque", [b"md {k} O5 k\r\n"]),
    ("ma", [b"ma {k}\r\n", b"ms {k} 1\r\n5\r\n", b"ma {k}\r\n", b"ma {k} v\r\n",
            b"ma {k} MD D2 v\r\n", b"ma {k} D100 MD v\r\n"]),
    ("ma autoviv", [b"ma {k} N0 J13 v\r\n", b"ma {k} v\r\n"]),
    ("ma non numeric", [b"ms {k} 1\r\nx\r\n", b"ma {k}\r\n"]),
    # h: hit before (the fetched bit): a get of the value, a meta get, a
    # touch count as reads; u leaves the bit as it was; a new value clears it
    ("mg h", [b"set {k} 0 0 1\r\na\r\n", b"mg {k} h\r\n", b"mg {k} h\r\n",
              b"set {k} 0 0 1\r\nb\r\n", b"mg {k} h u\r\n", b"mg {k} h u\r\n",
              b"get {k}\r\n", b"mg {k} h v\r\n", b"set {k} 0 0 1\r\nc\r\n",
              b"touch {k} 100\r\n", b"mg {k} h\r\n", b"ms {k} 1\r\nd\r\n",
              b"mg {k} h T30\r\n", b"mg {k} h\r\n"]),
    # with T and u a meta get is no read either; gat is one
    ("mg T u", [b"set {k} 0 0 1\r\na\r\n", b"mg {k} T30 u h\r\n", b"mg {k} h u\r\n",
                b"mg {k} T30 h v u\r\n", b"mg {k} h u\r\n", b"mg {k} T30 h\r\n",
                b"mg {k} h u\r\n", b"set {k2} 0 0 1\r\nb\r\n", b"gat 0 {k2}\r\n",
                b"mg {k2} h u\r\n"]),
    ("mg base64 key", [b"ms {k} 1\r\nz\r\n", b"mg e2t9 b v k\r\n"]),
    ("meta quiet pipeline", [b"ms {k} 1 q\r\na\r\nmg {k} v q\r\nmg {k2} v q\r\nmd {k2} q\r\n"]),
    ("meta too long key", [b"mg " + LONGKEY + b" v\r\n"]),
    ("meta no key", [b"mg\r\n", b"md\r\n", b"ma\r\n"]),
    ("meta bad flag", [b"mg {k} !\r\n"]),
    ("me", [b"me {k}\r\n"]),
    ("me slab class and size", [b"set {k} 5 0 100\r\n" + b"v" * 100 + b"\r\n", b"me {k}\r\n",
                                b"set {k} 0 0 5000\r\n" + b"w" * 5000 + b"\r\n", b"me {k}\r\n",
                                b"get {k}\r\n", b"me {k}\r\n"]),
    # --- exptime rules, byte-at-a-time input, more odd corners ---
    ("exptime 30 days relative", [b"set {k} 0 2592000 1\r\na\r\n", b"get {k}\r\n"]),
    ("exptime absolute past", [b"set {k} 0 2592001 1\r\na\r\n", b"get {k}\r\n"]),
    ("exptime absolute future", [b"set {k} 0 2000000000 1\r\na\r\n", b"get {k}\r\n"]),
    ("trickle set get", [Trickle(b"set {k} 3 0 5\r\nhello\r\n"), Trickle(b"get {k} {k2}\r\n"),
                         Trickle(b"gets {k}\r\n")]),
    ("trickle meta", [Trickle(b"ms {k} 2 T0 F4\r\nhi\r\n"), Trickle(b"mg {k} v f k O7\r\n")]),
    ("trickle noreply pipeline", [Trickle(b"set {k} 0 0 1 noreply\r\na\r\nappend {k} 0 0 1 noreply\r\n"
                                          b"b\r\nget {k}\r\n")]),
    ("decr missing", [b"decr {k} 1\r\n"]),
    ("touch noreply missing", [b"touch {k} 10 noreply\r\n", b"get {k}\r\n"]),
    ("gets no key", [b"gets\r\n"]),
    ("flush_all negative", [b"flush_all -1\r\n"]),
    ("noreply misspelt", [b"set {k} 0 0 1 norepl\r\na\r\n", b"get {k}\r\n"]),
    ("tab separated", [b"set\t{k} 0 0 1\r\na\r\n", b"get {k}\r\n"]),
    ("stats reset", [b"stats reset\r\n"]),
    ("delete extra tokens", [b"set {k} 0 0 1\r\na\r\n", b"delete {k} noreply extra\r\n",
                             b"delete {k} 0 noreply\r\n", b"get {k}\r\n"]),
    ("max key in multi get", [b"set " + MAXKEY + b" 0 0 1\r\nm\r\n",
                              b"get {k} " + MAXKEY + b" {k2}\r\n", b"delete " + MAXKEY + b"\r\n"]),
    ("too long key in multi get", [b"get {k} " + LONGKEY + b"\r\n"]),
    ("meta max key", [b"ms " + MAXKEY + b" 1\r\nm\r\n", b"mg " + MAXKEY + b" v\r\n",
                      b"md " + MAXKEY + b"\r\n"]),
    ("mg vivify", [b"mg {k} N30 v c\r\n", b"mg {k} v\r\n"]),
    ("ms base64 key", [b"ms Zm9vYmFy 1 b\r\nx\r\n", b"mg Zm9vYmFy b v k\r\n", b"md Zm9vYmFy b\r\n"]),
    ("ms invalid flag", [b"ms {k} 1 !\r\na\r\n", b"mg {k} v\r\n"]),
    ("incr max value", [b"set {k} 0 0 20\r\n18446744073709551614\r\n", b"incr {k} 1\r\n",
                        b"incr {k} 1\r\n", b"decr {k} 18446744073709551615\r\n"]),
    ("big flags in cas", [b"set {k} 4294967295 0 1\r\na\r\n", b"gets {k}\r\n",
                          b"cas {k} 123 0 1 {cas}\r\nb\r\n", b"get {k}\r\n"]),
    ("value with crlf inside", [b"set {k} 0 0 6\r\na\r\nb\r\n\r\n", b"get {k}\r\n"]),
    # --- admin commands (issue 11) ---
    ("lru mode", [b"lru mode flat\r\n", b"lru mode segmented\r\n", b"lru mode foo\r\n",
                  b"lru\r\n"]),
    ("slabs automove", [b"slabs automove 1\r\n", b"slabs automove 5\r\n",
                        b"slabs automove\r\n"]),
    ("cache_memlimit", [b"cache_memlimit 64\r\n", b"cache_memlimit 0\r\n",
                        b"cache_memlimit\r\n", b"cache_memlimit x\r\n"]),
    ("lru_crawler subcommands", [b"lru_crawler\r\n", b"lru_crawler foo\r\n",
                                 b"lru_crawler sleep 100\r\n",
                                 b"lru_crawler sleep 2000000\r\n",
                                 b"lru_crawler tocrawl 10\r\n", b"lru_crawler tocrawl x\r\n",
                                 b"lru_crawler crawl 99\r\n", b"lru_crawler mgdump all\r\n",
                                 b"lru_crawler enable\r\n"]),
    # memcached's metadump refuses to follow, in the same read, requests
    # whose replies it has not written out (a get's END and mn write them)
    ("metadump after pipelined requests",
     [b"mg {k} v\r\nlru_crawler metadump 99\r\n",
      b"set {k} 0 0 1 noreply\r\nx\r\nlru_crawler metadump 99\r\n",
      b"version\r\nlru_crawler metadump all\r\n",
      b"md {k} q\r\nlru_crawler metadump hash\r\n"]),
    # Raw: memcached writes out its replies at mn, so a reply can arrive
    # ending in MN before the dump's answer, which the sentinel (mn) would
    # take for the end of the step.
    ("metadump after get or mn",
     [Raw(b"get {k}\r\nlru_crawler metadump 99\r\n"),
      Raw(b"mn\r\nlru_crawler metadump 99\r\n"),
      Raw(b"mg {k} v\r\nmn\r\nlru_crawler metadump 99\r\n"),
      Raw(b"mg {k} v\r\nget {k}\r\nlru_crawler metadump 99\r\n")]),
    ("metadump bad arguments", [b"lru_crawler metadump 99\r\n", b"lru_crawler metadump x\r\n",
                                b"lru_crawler metadump\r\n", b"lru_crawler metadump a b\r\n"]),
    ("stats cachedump errors", [b"stats cachedump\r\n", b"stats cachedump 1\r\n",
                                b"stats cachedump 99 0\r\n", b"stats cachedump x y\r\n"]),
    ("stats cachedump empty class", [b"stats cachedump 42 0\r\n"]),
    ("stats extstore", [b"stats extstore\r\n"]),
    ("shutdown modes disabled", [b"shutdown graceful\r\n", b"shutdown foo\r\n"]),
    ("ms too large drops the old value", [b"ms {k} 2\r\nhi\r\n",
                                          b"ms {k} 2000000 T0\r\n" + b"z" * 2000000 + b"\r\n",
                                          b"mg {k} v\r\n"]),
    ("ma N with C on a missing key", [b"ma {k} N0 C5 J13 v\r\n", b"ma {k2} N0 C5 J13\r\n",
                                      b"mg {k2} v\r\n", b"ma {k2} N0 C5\r\n"]),
    ("ms modes are upper case", [b"ms {k} 2 Ms\r\nhi\r\n", b"ms {k} 2 MS\r\nhi\r\n",
                                 b"ms {k} 2 Ma\r\nhi\r\n", b"ms {k} 2 MA\r\nhi\r\n",
                                 b"ms {k} 2 Mp\r\nhi\r\n", b"ms {k} 2 Mr\r\nhi\r\n",
                                 b"ms {k} 2 Me\r\nhi\r\n", b"mg {k} v\r\n"]),
    ("ma modes are upper case", [b"set {k} 0 0 1\r\n5\r\n", b"ma {k} Mi\r\n", b"ma {k} Md\r\n",
                                 b"ma {k} MI v\r\n", b"ma {k} MD v\r\n", b"ma {k} M- v\r\n"]),
    ("append past the item limit", [b"set {k} 0 0 1048000\r\n" + b"b" * 1048000 + b"\r\n",
                                    b"append {k} 0 0 1000\r\n" + b"c" * 1000 + b"\r\n",
                                    b"prepend {k} 0 0 1000\r\n" + b"c" * 1000 + b"\r\n",
                                    b"ms {k} 1000 MA\r\n" + b"c" * 1000 + b"\r\n",
                                    b"mg {k} s\r\n"]),
    ("slabs automove arguments", [b"slabs automove invalid\r\n", b"slabs automove 3\r\n",
                                  b"slabs automove ratio\r\n", b"slabs automove ratio abc\r\n",
                                  b"slabs automove ratio 0.5\r\n", b"slabs automove 1 noreply\r\n",
                                  b"slabs automove x noreply\r\n", b"slabs automove 0\r\n",
                                  b"slabs automove -1\r\n", b"slabs\r\n", b"slabs foo\r\n"]),
    ("slabs reassign arguments", [b"slabs reassign 1 1\r\n", b"slabs reassign a 1\r\n",
                                  b"slabs reassign 1 x\r\n", b"slabs reassign 1 99\r\n",
                                  b"slabs reassign 1 2\r\n", b"slabs reassign 1\r\n",
                                  b"slabs reassign 1 2 3\r\n"]),
    ("stats detail", [b"stats detail on\r\n", b"set {k}:1 0 0 1\r\na\r\n",
                      b"get {k}:1 {k}:2 {k2}:1 nodelim\r\n", b"delete {k2}:1\r\n",
                      b"set p1:x 0 0 1\r\na\r\n", b"add p2:x 0 0 1\r\na\r\n",
                      b"set p3:x 0 0 1\r\n1\r\n", b"set longer-prefix:x 0 0 1\r\na\r\n",
                      b"append q:1 0 0 1\r\na\r\n", b"gat 10 p1:x\r\n", b"touch p2:x 10\r\n",
                      b"incr p3:x 1\r\n", b"mg p1:x v\r\n", b"ms p4:x 1\r\na\r\n",
                      b"gets p1:x :x\r\n", b"stats detail dump\r\n",
                      b"stats detail off\r\n", b"get p1:x\r\n", b"stats detail dump\r\n",
                      b"stats detail foo\r\n", b"stats detail\r\n", b"stats reset\r\n",
                      b"stats detail dump\r\n"]),
    # found by test_compare_fuzz.py
    ("mg N with a past TTL", [b"mg {k} N-1 v c\r\n", b"mg {k} v\r\n", b"mg {k2} N-1\r\n",
                              b"mg {k2} N-1 s v l\r\n"]),
    ("meta 20 tokens are too many", [b"mg {k} " + b"v " * 17 + b"v\r\n",
                                     b"mg {k} " + b"v " * 16 + b"v\r\n",
                                     b"ms {k} 2 " + b"v " * 16 + b"v\r\nhi\r\n",
                                     b"md {k} " + b"q " * 17 + b"q\r\n",
                                     b"ma {k} " + b"v " * 17 + b"v\r\n",
                                     b"ms {k} abc " + b"v " * 16 + b"v\r\n"]),
    ("a NUL ends the command line", [b"set {k}\x00 0 0 1\r\na\r\n", b"get {k}\r\n",
                                     b"set {k} 0 0 1\x00junk\r\nb\r\n", b"get {k}\x00 x\r\n",
                                     b"delete {k}\x00 5\r\n", b"\x00\r\n", b"mg {k} v\x00 q\r\n"]),
    ("mg N-1 then T keeps the item", [b"mg {k} N-1 v T100000 c\r\n", b"gets {k}\r\n",
                                      b"cas {k} 0 0 1 {cas}\r\nx\r\n", b"get {k}\r\n"]),
    # (no t flag: the TTL an N-1 item reports wraps around each server's
    # own uptime, which differs by a second across a second boundary)
    ("ma N-1 then T keeps the item", [b"ma {k} N-1 T100000 v\r\n", b"gets {k}\r\n",
                                      b"ma {k2} N-1 v\r\n", b"get {k2}\r\n"]),
    ("meta flags of other commands", [b"mg {k} C5 F3 J1 D1 I P L Mx\r\n",
                                      b"ms {k} 1 J1 D1 P L l h t v f s\r\na\r\n",
                                      b"md {k} v f J1 D1 M F1 N5 R3 l h t\r\n",
                                      b"ma {k} F1 I P L l h s f u\r\n", b"mg {k} v\r\n"]),
    ("meta flag token errors", [b"mg {k} MEE\r\n", b"ms {k} 1 M\r\na\r\n", b"ma {k} MII\r\n",
                                b"mg {k} Jx\r\n", b"mg {k} Dx\r\n", b"mg {k} Fx\r\n",
                                b"ms {k} 1 Fx\r\na\r\n", b"ma {k} Fx\r\n", b"mg {k} \x7f\r\n",
                                b"mg {k} \xc3\r\n", b"md {k} \xc3\r\n", b"mg {k} T1 Fx Tx\r\n"]),
    ("meta opaque of 32 bytes with its O", [b"mg {k} O" + b"o" * 31 + b"\r\n",
                                            b"mg {k} O" + b"o" * 32 + b"\r\n",
                                            b"ms {k} 1 O" + b"o" * 32 + b"\r\na\r\n",
                                            b"md {k} q O" + b"o" * 32 + b"\r\n"]),
    ("base64 key decoded as memcached", [b"ms a2V5 1 b\r\nz\r\n", b"mg a2_V5 b v\r\n",
                                         b"mg a2V5!! b v\r\n", b"md {k} b\r\n",
                                         b"mg a=== b v\r\n", b"mg a2V5 b v\r\n", b"md a2V5 b\r\n"]),
    # k returns such a key encoded again from its bytes: a2_V5 as a2V5
    ("base64 key returned by k encoded again",
     [b"ms a2_V5 1 b k O1\r\n5\r\n", b"mg a2_V5 b k v\r\n", b"mg a2_V5 b k s q\r\n",
      b"ma a2_V5 b k v\r\n", b"md a2_V5 b k q\r\n", b"md a2_V5 b k\r\n",
      b"mg a2_V5 b k O2\r\n", b"ma Z_m9v b k N0 J1\r\n", b"md Z_m9v b k\r\n"]),
    ("delete long key noreply", [b"delete " + LONGKEY + b" noreply\r\n",
                                 b"delete " + LONGKEY + b" 0 noreply\r\n",
                                 b"delete " + LONGKEY + b" 5\r\n", b"delete " + LONGKEY + b"\r\n"]),
    # memcached rewrites a number that fits in place: the fetched bit stays
    # (and l restarts); a longer number is a new item, not fetched yet
    ("incr decr ma keep the fetched bit when the number fits",
     [b"set {k} 0 0 2\r\n10\r\n", b"mg {k} h\r\n", b"decr {k} 1\r\n", b"mg {k} h l\r\n",
      b"incr {k} 1\r\n", b"mg {k} h l\r\n", b"ma {k} MD\r\n", b"mg {k} h l\r\n",
      b"ma {k} D1000\r\n", b"mg {k} h l\r\n", b"mg {k} h\r\n", b"incr {k} 99999\r\n",
      b"mg {k} h\r\n", b"set {k2} 0 0 2\r\n10\r\n", b"decr {k2} 1\r\n", b"mg {k2} h\r\n"]),
    # memcached's ma checks in this order: missing (NF, or N creates),
    # an empty value (non-numeric), the C compare (EX), then the number
    ("ma check order", [b"mg {k} N30\r\n", b"ma {k} C987654321012\r\n",
                        b"ma {k} C987654321012 q N0\r\n", b"set {k} 0 0 0\r\n\r\n",
                        b"ma {k} C987654321012 v\r\n", b"set {k} 0 0 1\r\nx\r\n",
                        b"ma {k} C987654321012 q\r\n", b"ma {k} q\r\n", b"ma {k} N0 q\r\n",
                        b"ma {k2} C987654321012 q O1 k\r\n", b"ma {k2} q\r\n",
                        b"ma {k2} N0 C987654321012 q O1 k\r\n",
                        b"ma {k2} N0 C987654321012 q O1 k\r\n", b"ma {k2} C0 q\r\n",
                        b"mg {k2} v\r\n"]),
    # memcached looks each key up (gat: touches it) before it meets a key
    # that is too long; then it drops their replies and says only the error
    ("too long key in a gat list", [b"set {k} 0 0 1\r\na\r\n", b"set {k2} 0 0 1\r\nb\r\n",
                                    b"gat 100 {k} " + LONGKEY + b" {k2}\r\n",
                                    b"mg {k} t h\r\n", b"mg {k2} t h\r\n",
                                    b"gets {k2} {k2} " + LONGKEY + b"\r\n", b"mg {k2} h\r\n",
                                    b"gats 300 {k2} nokey " + LONGKEY + b" {k}\r\n",
                                    b"mg {k} t\r\n", b"mg {k2} t\r\n"]),
    # memcached's mg and ma refuse a long opaque only as they write the
    # reply: the work is done, with the T and N before the O
    ("mg and ma do their work before a long opaque", [
        b"set {k} 0 0 1\r\n5\r\n", b"ma {k} D3 T100 O" + b"o" * 32 + b" T200\r\n",
        b"mg {k} v t h\r\n", b"ma {k} O" + b"o" * 32 + b" q\r\n", b"mg {k} v t\r\n",
        b"mg {k} T300 O" + b"o" * 32 + b"\r\n", b"mg {k} t\r\n",
        b"mg {k} O" + b"o" * 32 + b" T400\r\n", b"mg {k} t\r\n",
        b"set {k} 0 0 1\r\n5\r\n", b"ma {k} T100\r\n", b"mg {k} h\r\n",
        b"set {k} 0 0 1\r\n5\r\n", b"mg {k} v O" + b"o" * 32 + b"\r\n", b"mg {k} h\r\n",
        b"mg {k2} N30 O" + b"o" * 32 + b"\r\n", b"mg {k2} s t v\r\n", b"md {k2}\r\n",
        b"mg {k2} N30 T50 O" + b"o" * 32 + b" q\r\n", b"mg {k2} s t\r\n", b"md {k2}\r\n",
        b"ma {k2} O" + b"o" * 32 + b"\r\n", b"mg {k2} O" + b"o" * 32 + b" q\r\n",
        b"ma {k2} N0 J7 O" + b"o" * 32 + b"\r\n", b"mg {k2} v t\r\n",
        b"ma {k2} C987654321012 O" + b"o" * 32 + b"\r\n",
        b"set {k2} 0 0 1\r\nx\r\n", b"ma {k2} O" + b"o" * 32 + b"\r\n"]),
    # found by test_compare_fuzz.py (text seed 55, -C): memcached makes
    # ma's item without a TTL and applies N and T as it writes the flags,
    # so those after an overlong O never apply
    ("ma N after a long opaque", [b"ma {k} O" + b"o" * 33 + b" T0 q N-1\r\n", b"gets {k}\r\n",
                                  b"ma {k2} T100 O" + b"o" * 33 + b" N-1\r\n", b"mg {k2} v\r\n",
                                  b"md {k}\r\n", b"ma {k} N-1 O" + b"o" * 33 + b"\r\n",
                                  b"mg {k} v\r\n"]),
    # stats reads its group from the first word and ignores later ones
    ("stats extra words", [b"stats settings x\r\n", b"stats items x\r\n", b"stats slabs x y\r\n",
                           b"stats reset x\r\n", b"stats detail on off\r\n",
                           b"stats  detail  off\r\n", b"stats detailx on\r\n",
                           b"stats detail dump x\r\n", b"stats sizes_disable\r\n",
                           b"stats sizes x\r\n", b"stats extstore x\r\n",
                           b"stats cachedump 42 0 x\r\n", b"stats foo bar\r\n"]),
    ("cache_memlimit noreply and limits", [b"cache_memlimit 1 noreply\r\n",
                                           b"cache_memlimit x noreply\r\n",
                                           b"cache_memlimit 1000000001\r\n",
                                           b"cache_memlimit 99999999999999999\r\n",
                                           b"cache_memlimit -0\r\n", b"cache_memlimit -1\r\n",
                                           b"cache_memlimit 4294967360\r\n",
                                           b"cache_memlimit 1 2 3\r\n",
                                           b"cache_memlimit 64 noreply\r\n"]),
    ("lru tune and temp_ttl", [b"lru tune 10 10 0.1 2\r\n", b"lru tune 50 50 0.1 2\r\n",
                               b"lru tune 10 10 0 2\r\n", b"lru tune x 1 1 1\r\n",
                               b"lru tune 1 1 1\r\n", b"lru tune 4294967295 2 1 1\r\n",
                               b"lru temp_ttl 10\r\n", b"lru temp_ttl -1\r\n",
                               b"lru temp_ttl x\r\n", b"lru temp_ttl\r\n",
                               b"lru mode flat noreply\r\n", b"lru mode flat x\r\n",
                               b"lru mode x noreply\r\n", b"lru noreply\r\n",
                               b"lru tune 50 50 1 1 noreply\r\n", b"lru foo\r\n"]),
    ("admin numbers as memcached's strtoul", [b"lru_crawler tocrawl -0\r\n",
                                              b"lru_crawler sleep 4294967297\r\n",
                                              b"lru_crawler sleep -1\r\n",
                                              b"slabs automove 4294967297\r\n",
                                              b"slabs reassign 4294967297 2\r\n",
                                              b"slabs automove 0\r\n"]),
    ("bget", [b"set {k} 3 0 1\r\na\r\n", b"bget {k} {k2}\r\n", b"bget\r\n"]),
    # found by test_compare_fuzz.py seeds 2020 and 2093: an item mg N makes
    # is read by that mg (fetched), unless u
    ("mg N marks the item it made fetched unless u",
     [b"mg {k} N2592000 t v u\r\n", b"mg {k} f h\r\n", b"mg {k2} T-1 q h N0\r\n",
      b"mg {k2} h s t v\r\n", b"md {k}\r\n", b"mg {k} N0\r\n", b"mg {k} h\r\n",
      b"md {k}\r\n", b"mg {k} N0 v h\r\n", b"mg {k} h\r\n"]),
    # me decodes its key when the next token is exactly "b", refuses one
    # that does not decode with the command line error, and shows the key
    # encoded again
    ("me with a base64 key", [b"ms YQ== 1 b\r\nz\r\n", b"me YQ== b\r\n", b"me YQ b\r\n",
                              b"me a b\r\n", b"me Y_Q== b\r\n", b"me YQ== b x\r\n",
                              b"me YQ== bb\r\n", b"me YQ== x b\r\n", b"me a=== b\r\n",
                              b"me abc b\r\n", b"md YQ== b\r\n", b"me YQ== b\r\n"]),
    # (the last step: the connection then only streams log lines)
    ("watch", [b"watch foo\r\n", b"watch fetchers bogus\r\n", Raw(b"watch fetchers\r\n")]),
    ("gat and gats counted as touches", [b"set {k} 0 0 1\r\nx\r\n", b"gat 100 {k} {k2}\r\n",
                                         b"gats 100 {k}\r\n"]),
    # found by test_compare_fuzz.py (bin seed 22655, -C): for a number of
    # 2^63 and up memcached looks for a '-' over the whole value, up to a
    # NUL (a value without either: it reads on past the item, not compared)
    ("incr of 2^63 and up with a '-' after it",
     [b"set {k} 0 0 23\r\n18446744073709551609 -5\r\n", b"incr {k} 1\r\n",
      b"decr {k} 1\r\n", b"ma {k} v\r\n", b"get {k}\r\n",
      b"set {k} 0 0 22\r\n9223372036854775808\t-x\r\n", b"incr {k} 1\r\n",
      b"set {k} 0 0 24\r\n18446744073709551609 \x00-5\r\n", b"incr {k} 1\r\n",
      b"get {k}\r\n", b"set {k} 0 0 6\r\n100 -5\r\n", b"incr {k} 1\r\n",
      b"get {k}\r\n", b"set {k} 0 0 1\r\n0\r\n", b"append {k} 0 0 20\r\n18446744073709551614\r\n",
      b"incr {k} 5\r\n", b"append {k} 0 0 2\r\n-5\r\n", b"incr {k} 1\r\n", b"get {k}\r\n"]),
    # found by test_compare_multiconn.py (seed 2139): a number longer than
    # the value it replaces goes into a new item with the old TTL, and
    # memcached sets ma's T on the old item, so T is lost
    ("ma T lost when the number grows",
     [b"ma {k} N100000\r\n", b"ma {k} D18446744073709551615 T-1\r\n", b"mg {k} v\r\n",
      b"ma {k2} N100000\r\n", b"ma {k2} D5 T-1 q\r\n", b"mg {k2} v\r\n",
      b"set {k} 0 0 1\r\n9\r\n", b"ma {k} T-1 v\r\n", b"mg {k} v\r\n",
      b"ma {k} T-1\r\n", b"mg {k} v\r\n"]),
    # found by test_compare_fuzz.py (text seed 22049, -C): md I keeps the
    # item's fetched bit (memcached marks the item stale in place)
    ("md I keeps the fetched bit", [b"set {k} 0 0 1\r\nx\r\n", b"get {k}\r\n",
                                    b"md {k} I\r\n", b"mg {k} h\r\n", b"md {k} I T30\r\n",
                                    b"mg {k} h t\r\n", b"set {k2} 0 0 1\r\ny\r\n",
                                    b"md {k2} I q\r\n", b"mg {k2} h\r\n",
                                    b"mg {k2} h v\r\n"]),
]

# Cases run against both servers started with -C (no cas): memcached's
# items then all have cas 0, which meta C compares with (found by
# test_compare_fuzz.py with FUZZ_ARGS=-C).
CASES_NO_CAS = [
    # (the first case on a fresh server: its first item's own cas is 1)
    ("ma C under -C", [b"set {k} 0 0 1\r\n1\r\n", b"ma {k} C1 v\r\n", b"ma {k} C2 v\r\n",
                       b"ma {k} C0 v\r\n", b"ma {k} C5 v\r\n",
                       b"ma {k} c v\r\n", b"ma {k} C18446744073709551615 v\r\n",
                       b"set {k} 0 0 0\r\n\r\n", b"ma {k} C5 v\r\n", b"ma {k} C0 v\r\n",
                       b"ma {k2} C5 N0 J3 v\r\n", b"ma {k2} C5 N0 J3 v\r\n",
                       b"ma {k2} C0 N0 J3 v\r\n"]),
    ("md C under -C", [b"set {k} 0 0 1\r\na\r\n", b"md {k} C0\r\n", b"set {k} 0 0 1\r\na\r\n",
                       b"md {k} C5\r\n", b"md {k} C0 I\r\n", b"mg {k} v c\r\n",
                       b"md {k} C7 I\r\n", b"md {k} C7 q\r\n", b"md {k} C0 q\r\n",
                       b"md {k} C0\r\n", b"md {k} C5\r\n"]),
    ("ms and cas under -C", [b"set {k} 0 0 1\r\na\r\n", b"ms {k} 1 C0\r\nb\r\n",
                             b"ms {k} 1 C5\r\nc\r\n", b"mg {k} v c\r\n",
                             b"cas {k} 0 0 1 0\r\nd\r\n", b"gets {k}\r\n"]),
    # found by test_compare_fuzz.py (text seed 22004, -C): memcached's
    # append and prepend compare C with the new item's own cas, which -C
    # leaves 0, so they store whatever C says
    ("ms MA and MP ignore C under -C", [b"set {k} 0 0 1\r\na\r\n", b"ms {k} 1 MA C5\r\nb\r\n",
                                        b"ms {k} 1 MP C987654321012\r\nc\r\n",
                                        b"ms {k} 1 MA C0\r\nd\r\n",
                                        b"ms {k} 1 MA C1 q\r\ne\r\n", b"mg {k} v c\r\n",
                                        b"ms {k2} 1 MA C5\r\nf\r\n", b"mg {k2} v\r\n",
                                        b"ms {k} 1 MS C1\r\ng\r\n",
                                        b"ms {k} 1 MR C2\r\nh\r\n", b"mg {k} v\r\n"]),
]

# Cases run against both servers started without memcached's LRU
# maintainer (-o no_modern turns it off too): lru mode and temp_ttl are
# refused (found by test_compare_fuzz.py with FUZZ_ARGS="-o no_modern").
CASES_NO_MAINTAINER = [
    ("lru without the maintainer", [b"lru mode flat\r\n", b"lru mode segmented\r\n",
                                    b"lru temp_ttl 10\r\n", b"lru temp_ttl -1\r\n",
                                    b"lru tune 10 10 0.1 2\r\n", b"lru mode x\r\n",
                                    b"lru temp_ttl x\r\n", b"lru mode flat noreply\r\n"]),
]

VALUE_RE = re.compile(rb"^(VALUE \S+ \d+ \d+) (\d+)\r$", re.M)
C_TOKEN_RE = re.compile(rb" c(\d+)")
STATS_RE = re.compile(rb"(STAT [^\r\n]*\r\n)+")


def mask(data):
    data = VALUE_RE.sub(rb"\1 <cas>\r", data)
    lines = data.split(b"\r\n")
    for i, line in enumerate(lines):
        if line[:3] in (b"VA ", b"HD ", b"EN ", b"NF ", b"NS ", b"EX "):
            lines[i] = C_TOKEN_RE.sub(b" c<cas>", line)
    data = b"\r\n".join(lines)
    data = STATS_RE.sub(b"STAT <masked>\r\n", data)
    data = re.sub(rb"^VERSION [^\r\n]*", b"VERSION <masked>", data, flags=re.M)
    data = re.sub(rb"^ME (\S+) [^\r\n]*", rb"ME \1 <masked>", data, flags=re.M)
    return data


def substitute(step, keys, state):
    out = bytes(step).replace(b"{k}", keys[0]).replace(b"{k2}", keys[1])
    out = out.replace(b"{cas}", state.get("cas", b"0")).replace(b"{c}", state.get("c", b"0"))
    return out


def learn(reply, state):
    m = None
    for m in VALUE_RE.finditer(reply):
        pass
    if m is not None:
        state["cas"] = m.group(2)
    for line in reply.split(b"\r\n"):
        if line[:2] in (b"VA", b"HD"):
            c = C_TOKEN_RE.search(line)
            if c:
                state["c"] = c.group(1)


def run_case(srv, idx, steps):
    keys = (b"cmp%03d_a" % idx, b"cmp%03d_b" % idx)
    state = {}
    replies = []
    sock = srv.connect(timeout=2.0)
    closed = False
    for step in steps:
        if closed:
            replies.append((b"", "closed"))
            continue
        data = substitute(step, keys, state)
        try:
            if isinstance(step, Trickle):
                for i in range(len(data)):
                    sock.sendall(data[i:i + 1])
            else:
                sock.sendall(data)
            if isinstance(step, Raw):
                reply, closed = bcserver.recv_until(sock, (), quiet=0.3)
            else:
                sock.sendall(SENTINEL)
                sock.settimeout(2.0)
                reply, closed = bcserver.recv_until(sock, (SENTINEL_REPLY,))
                if reply.endswith(SENTINEL_REPLY):
                    reply = reply[:-len(SENTINEL_REPLY)]
                elif not closed:
                    reply += b"<timeout>"
        except (BrokenPipeError, ConnectionResetError):
            reply, closed = b"", True
        learn(reply, state)
        replies.append((mask(reply), "closed" if closed else "open"))
    sock.close()
    return replies


def excerpt(reply, other):
    """Short replies whole; long ones around the first byte that differs."""
    data, state = reply
    if len(data) <= 300:
        return reply
    at = next((i for i, (a, b) in enumerate(zip(data, other[0])) if a != b),
              min(len(data), len(other[0])))
    start = max(0, at - 60)
    return ("%d bytes, first difference at byte %d: ...%r..." % (len(data), at, data[start:at + 60]),
            state)


def joined(replies):
    return (b"".join(r for r, _ in replies), replies[-1][1] if replies else "open")


def settings_names(srv, group=b"settings"):
    """The field names of `stats settings` (or another group), in order."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"stats " + group + b"\r\n" if group else b"stats\r\n")
    data = b""
    while not data.endswith(b"END\r\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return [line.split(b" ")[1] for line in data.split(b"\r\n") if line.startswith(b"STAT ")]


def compare_settings(ref, sut):
    """memcached's `stats settings` fields come first and in its order
    (tools read them by position too); ours follow. The extstore block
    (ext_*, slab_automove_freeratio) is left out: there is no extstore."""
    want = [n for n in settings_names(ref)
            if not n.startswith(b"ext_") and n != b"slab_automove_freeratio"]
    got = settings_names(sut)
    if got[:len(want)] != want:
        for i, (w, g) in enumerate(zip(want, got)):
            if w != g:
                print("FAIL stats settings field %d: memcached %r, bitcached %r" % (i, w, g))
                break
        else:
            print("FAIL stats settings: bitcached has fewer fields")
        return 1
    return 0


# The options under which memcached shows or hides parts of `stats`.
STATS_OPTIONS = [
    [],
    ["-o", "no_lru_crawler,no_lru_maintainer"],
    ["-o", "no_modern"],
    ["-o", "no_maxconns_fast,idle_timeout=5"],
    ["-o", "no_slab_reassign"],
]


def compare_stats(mc, bc):
    """`stats` lists memcached's fields, exactly, in its order, under each
    set of options (memcached's own t/stats.t counts them)."""
    fails = 0
    for opts in STATS_OPTIONS:
        ref = bcserver.Server(mc, kind="memcached", args=["-U", "0"] + opts)
        sut = bcserver.Server(bc, args=opts)
        try:
            ref.start()
            sut.start()
            want = settings_names(ref, b"")
            got = settings_names(sut, b"")
        finally:
            ref.close()
            sut.close()
        if want != got:
            fails += 1
            extra = [n for n in got if n not in want]
            missing = [n for n in want if n not in got]
            print("FAIL stats fields with %r: missing %r, extra %r, order %s"
                  % (opts, missing, extra,
                     "same" if [n for n in got if n in want] ==
                     [n for n in want if n in got] else "differs"))
    return fails


def compare_group_names(mc, bc):
    """`stats items`, `stats slabs` and `stats conns` list memcached's names
    in its order, on fresh servers holding the same items (the per-class
    counters' values are compared in tests/integration/test_class_stats.py);
    conns' names are compared without their descriptor numbers."""
    ref = bcserver.Server(mc, kind="memcached", args=["-U", "0"])
    sut = bcserver.Server(bc)
    fails = 0
    try:
        ref.start()
        sut.start()
        for srv in (ref, sut):
            s = srv.connect(timeout=5)
            s.sendall(b"set a 0 0 5\r\nhello\r\nset b 0 100000 3000\r\n" + b"x" * 3000 +
                      b"\r\nget a b\r\n")
            bcserver.recv_until(s, (b"END\r\n",))
            s.close()
        for group in (b"items", b"slabs", b"conns"):
            want = settings_names(ref, group)
            got = settings_names(sut, group)
            if group == b"conns":
                want = sorted(set(re.sub(rb"^\d+:", b"N:", n) for n in want))
                got = sorted(set(re.sub(rb"^\d+:", b"N:", n) for n in got))
            if want != got:
                fails += 1
                print("FAIL stats %s names: missing %r, extra %r" % (
                    group.decode(), [n for n in want if n not in got],
                    [n for n in got if n not in want]))
    finally:
        ref.close()
        sut.close()
    return fails


LRU_SETTINGS = (b"lru_segmented", b"hot_lru_pct", b"warm_lru_pct", b"hot_max_factor",
                b"warm_max_factor", b"temp_lru", b"temporary_ttl")


def compare_lru_settings(mc, bc):
    """lru mode, temp_ttl and tune change what stats settings shows, as in
    memcached (values compared, after each command)."""
    ref = bcserver.Server(mc, kind="memcached", args=["-U", "0"])
    sut = bcserver.Server(bc)
    fails = 0
    cmds = [b"lru mode flat", b"lru temp_ttl 5", b"lru tune 10 15 0.1 2.5",
            b"lru temp_ttl -1", b"lru mode segmented", b"lru tune 50 50 1 1",
            b"lru temp_ttl x", b"lru temp_ttl 0"]

    def values(srv):
        s = srv.connect(timeout=5)
        s.sendall(b"stats settings\r\n")
        data, _ = bcserver.recv_until(s, (b"END\r\n",))
        s.close()
        return [line for line in data.split(b"\r\n")
                if line.split(b" ")[1:2] and line.split(b" ")[1] in LRU_SETTINGS]
    try:
        ref.start()
        sut.start()
        for cmd in cmds:
            for srv in (ref, sut):
                s = srv.connect(timeout=5)
                s.sendall(cmd + b"\r\n")
                bcserver.recv_until(s, (b"\r\n",))
                s.close()
            want, got = values(ref), values(sut)
            if want != got:
                fails += 1
                print("FAIL stats settings after %r:\n  memcached: %r\n  bitcached: %r"
                      % (cmd, want, got))
                break
    finally:
        ref.close()
        sut.close()
    return fails


def main():
    bc = bcserver.binary()
    mc = bcserver.memcached_binary()
    only = os.environ.get("COMPARE_ONLY")
    fails = run_cases(mc, bc, CASES, [], only)
    fails += run_cases(mc, bc, CASES_NO_CAS, ["-C"], only)
    fails += run_cases(mc, bc, CASES_NO_MAINTAINER, ["-o", "no_lru_maintainer"], only)
    fails += run_cases(mc, bc, CASES_NO_MAINTAINER, ["-o", "no_modern"], only)
    if not only:
        fails += compare_stats(mc, bc)
        fails += compare_group_names(mc, bc)
        fails += compare_lru_settings(mc, bc)
    print("compare: %d cases, %d failures"
          % (len(CASES) + len(CASES_NO_CAS) + 2 * len(CASES_NO_MAINTAINER), fails))
    return 1 if fails else 0


def run_cases(mc, bc, cases, args, only):
    ref = bcserver.Server(mc, kind="memcached", args=["-U", "0"] + args)
    sut = bcserver.Server(bc, args=args)
    fails = 0
    try:
        ref.start()
        sut.start()
        for idx, (name, steps) in enumerate(cases):
            if only and only not in name:
                continue
            want = run_case(ref, idx, steps)
            got = run_case(sut, idx, steps)
            if os.environ.get("COMPARE_VERBOSE"):
                print("case %r: %r" % (name, want))
            # A reply that comes late after a Raw step shows up with the next
            # step, so the whole case is compared; the steps show where.
            if joined(want) != joined(got):
                fails += 1
                for n, (w, g) in enumerate(zip(want, got)):
                    if w != g:
                        shown = steps[n] if len(steps[n]) < 200 else steps[n][:200] + b"..."
                        print("FAIL case %r step %d %r:\n  memcached: %r\n  bitcached: %r"
                              % (name, n, shown, excerpt(w, g), excerpt(g, w)))
                        break
            if not sut.alive():
                print("FAIL case %r: server under test died" % name)
                fails += 1
                break
        if not only and not args:
            fails += compare_settings(ref, sut)
    finally:
        ref.close()
        sut.close()
    return fails


if __name__ == "__main__":
    sys.exit(main())
