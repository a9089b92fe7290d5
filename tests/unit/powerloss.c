/* powerloss.c - the kept file images and the power-loss copy of a data
 * directory shared by the storage unit tests (see powerloss.h).
 */
#include "tests/unit/powerloss.h"

#include "storage/cask_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define IMAGES_MAX 512
static struct image {
    ino_t ino;
    char *data;
    size_t len;
} images[IMAGES_MAX];
static int nimages;
static pthread_mutex_t images_mu = PTHREAD_MUTEX_INITIALIZER;

void
powerloss_reset(void)
{
    pthread_mutex_lock(&images_mu);
    for (int i = 0; i < nimages; i++) {
        free(images[i].data);
    }
    nimages = 0;
    pthread_mutex_unlock(&images_mu);
}

void
powerloss_take(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        return;
    }
    /* Through a descriptor of its own: fd may be open for writing only. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int rfd = open(path, O_RDONLY);
    assert_true(rfd >= 0);
    char *data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    ssize_t got = cask_io_default()->pread(rfd, data, (size_t)st.st_size, 0);
    close(rfd);
    assert_int_equal(got, st.st_size);
    pthread_mutex_lock(&images_mu);
    int i = 0;
    while (i < nimages && images[i].ino != st.st_ino) {
        i++;
    }
    assert_true(i < IMAGES_MAX);
    if (i == nimages) {
        nimages++;
    } else {
        free(images[i].data);
    }
    images[i] = (struct image){st.st_ino, data, (size_t)st.st_size};
    pthread_mutex_unlock(&images_mu);
}

void
powerloss_copy(const char *from, const char *to, bool may_vanish)
{
    assert_int_equal(mkdir(to, 0755), 0);
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char a[4200], b[4200];
        struct stat st;
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
        if (lstat(a, &st) != 0) {
            assert_true(may_vanish);
            assert_int_equal(errno, ENOENT); /* renamed or removed since */
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            powerloss_copy(a, b, may_vanish);
            continue;
        }
        int out = open(b, O_WRONLY | O_CREAT | O_EXCL, 0644);
        assert_true(out >= 0);
        pthread_mutex_lock(&images_mu);
        for (int i = 0; i < nimages; i++) {
            if (images[i].ino == st.st_ino) {
                assert_int_equal(write(out, images[i].data, images[i].len),
                                 (ssize_t)images[i].len);
            }
        }
        pthread_mutex_unlock(&images_mu);
        close(out);
    }
    closedir(d);
}
