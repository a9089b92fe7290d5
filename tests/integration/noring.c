/* noring.c - run a command with io_uring refused, as a seccomp filter
 * refuses it (a systemd unit whose SystemCallFilter= leaves out @aio, a
 * container runtime's profile): io_uring_setup fails with the errno given.
 * For tests of the server's fallback to its I/O threads.
 *
 *   noring EPERM|ENOSYS COMMAND [ARG...]
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
    if (argc < 3 ||
        (strcmp(argv[1], "EPERM") != 0 && strcmp(argv[1], "ENOSYS") != 0)) {
        fprintf(stderr, "usage: noring EPERM|ENOSYS COMMAND [ARG...]\n");
        return 64;
    }
#ifndef __NR_io_uring_setup
    fprintf(stderr, "noring: no io_uring_setup on this system\n");
    return 77;
#else
    unsigned err = strcmp(argv[1], "EPERM") == 0 ? EPERM : ENOSYS;
    /* The syscall number alone: the filter is inherited by a test's
     * server of this same architecture. */
    struct sock_filter code[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                     offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K,
                     SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
            .len = (unsigned short)(sizeof(code) / sizeof(code[0])),
            .filter = code,
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("noring: seccomp");
        return 77;
    }
    execvp(argv[2], argv + 2);
    perror("noring: exec");
    return 127;
#endif
}
