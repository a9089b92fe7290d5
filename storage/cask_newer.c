/* cask_newer.c - recognise a file of a newer format version (see
 * cask_newer.h). Depends on cask_io only.
 */
#include "storage/cask_newer.h"

#include "storage/cask_io.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

uint32_t
cask_newer_tail_sum(const char *b, size_t len, const char magic[8],
                    uint32_t known)
{
    uint32_t v;
    uint64_t sum;
    if (len < 12 + 8 || memcmp(b, magic, 8) != 0) {
        return 0;
    }
    memcpy(&v, b + 8, 4); /* little-endian, as every format here */
    memcpy(&sum, b + len - 8, 8);
    if (v <= known || sum != XXH3_64bits(b, len - 8)) {
        return 0;
    }
    return v;
}

int
cask_newer_path(const char *path, const char magic[8], uint32_t known,
                uint32_t *version)
{
    struct stat st;
    *version = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    int rc = 0;
    char *b = NULL;
    if (fstat(fd, &st) != 0) {
        rc = errno;
    } else if ((uint64_t)st.st_size > CASK_NEWER_READ_MAX) {
        rc = EFBIG;
    } else if (st.st_size >= 12 + 8) {
        b = malloc((size_t)st.st_size);
        rc = b == NULL ? ENOMEM
                       : cask_io_pread_all(fd, b, (size_t)st.st_size, 0);
        if (rc == 0) {
            *version = cask_newer_tail_sum(b, (size_t)st.st_size, magic, known);
        }
    }
    free(b);
    close(fd);
    return rc;
}
