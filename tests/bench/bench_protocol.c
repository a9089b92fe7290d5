/* bench_protocol.c - parser throughput: parse_mb_per_s over a pipelined
 * stream of mixed get/set requests (100-byte values), and parse_ns_per_get
 * for one "get <key>\r\n". Not part of make check; links libprotocol.a only.
 */
#include "protocol/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(void)
{
    size_t cap = 4u * 1024 * 1024;
    char *buf = malloc(cap + 512);
    char value[101];
    size_t len = 0;
    unsigned nreq = 0;
    struct proto_parser p;
    struct proto_req req;
    double t0;
    double t1;
    unsigned rounds = 0;
    unsigned long long bytes = 0;
    unsigned long long sink = 0;
    static const char get1[] = "get user:0000123456\r\n";
    unsigned long i;
    unsigned long n_get = 5000000;

    if (buf == NULL) {
        return 1;
    }
    memset(value, 'v', 100);
    value[100] = '\0';
    while (len < cap) {
        if (nreq % 2 == 0) {
            len += (size_t)sprintf(
                    buf + len, "set user:%010u 0 0 100\r\n%s\r\n", nreq, value);
        } else {
            len += (size_t)sprintf(buf + len, "get user:%010u\r\n", nreq);
        }
        nreq++;
    }
    proto_parser_init(&p, 1024 * 1024);
    t0 = now_s();
    do {
        size_t off = 0;

        while (off < len) {
            size_t used = 0;

            if (proto_parse(&p, &req, buf + off, len - off, &used) !=
                PROTO_OK) {
                fprintf(stderr, "unexpected status at %zu\n", off);
                return 1;
            }
            sink += req.klen;
            off += used;
        }
        bytes += len;
        rounds++;
        t1 = now_s();
    } while (t1 - t0 < 1.0);
    printf("parse_mb_per_s %.0f\n", (double)bytes / (t1 - t0) / 1e6);

    t0 = now_s();
    for (i = 0; i < n_get; i++) {
        size_t used = 0;

        (void)proto_parse(&p, &req, get1, sizeof(get1) - 1, &used);
        sink += used;
    }
    t1 = now_s();
    printf("parse_ns_per_get %.1f\n", (t1 - t0) * 1e9 / (double)n_get);
    fprintf(stderr, "(%u rounds of %u requests; checksum %llu)\n", rounds, nreq,
            sink);
    free(buf);
    return 0;
}
