/* cask_spread.c - where the file system puts the shard directories.
 *
 * Each shard's maintenance creates and deletes files all the time (a
 * segment per roll-over, hint, manifest and retired files replaced through
 * a temp file and a rename, compaction outputs). ext4 puts a new
 * subdirectory in its parent's block group, and a new file in its
 * directory's, so all the shards of a data directory share one group; and
 * ext4 without a journal skips every inode of the group deleted in the
 * last dirty_expire interval (30 s) when it allocates one, each skip a
 * buffer lookup, so one file creation costs as many lookups as the files
 * of every shard deleted in that time: under a set-only load most of the
 * maintenance thread's CPU, and about 4 % of the server's per set. The
 * "top of directory hierarchy" attribute (FS_TOPDIR_FL) makes ext4's
 * allocator spread the subdirectories of the directory that has it over
 * the groups, as for top-level directories, so that each shard's churn
 * stays in a group of its own.
 *
 * Owns nothing; no locks. Depends on no other storage/ file. Only the
 * attribute ioctls: the data is untouched.
 */
#include "storage/cask_spread.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

bool
cask_spread_dirs(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        return false;
    }
    /* The ioctls take an int, whatever their declared argument says. */
    int flags = 0;
    bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    if (ok && !(flags & FS_TOPDIR_FL)) {
        flags |= FS_TOPDIR_FL;
        ok = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    }
    close(fd);
    return ok;
}
