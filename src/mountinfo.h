/*
 * mountinfo: which file system holds a directory, from the kernel's
 * /proc/self/mountinfo (proc(5)), so the store can tell whether a new
 * file's fsync also makes its name durable (docs/QUEUE.md "One flush per
 * commit"). The parser is pure; mountinfo_dev_fstype does the reading.
 */
#ifndef MP_MOUNTINFO_H
#define MP_MOUNTINFO_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The file system type of the mount whose device is major:minor in the
 * mountinfo text (len bytes, need not end in NUL). 0 with *type (malloc'd),
 * -ENOENT when no line names that device, -ENOMEM. Malformed lines are
 * skipped.
 */
int mountinfo_fstype(const char *text, size_t len, unsigned major,
	unsigned minor, char **type);

/*
 * The file system type of the mount on device dev (a stat's st_dev), read
 * from /proc/self/mountinfo; 0 or -errno (-ENOENT: no such mount).
 */
int mountinfo_dev_fstype(dev_t dev, char **type);

#endif
