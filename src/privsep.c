/*
 * privsep: ownership and modes of the daemon's directories, prepared by
 * the root part, and the daemon's one-way switch to its user. Walks a
 * tree only with openat(O_NOFOLLOW) and fchownat(AT_SYMLINK_NOFOLLOW), so
 * a symbolic link planted in the tree never leads root elsewhere, and
 * leaves alone files with more than one link (they could be another
 * file's name). Never exits; returns 0 or -errno.
 */
#include "privsep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "strv.h"

/* Deepest folder below a prepared directory that is walked. */
#define PRIVSEP_DEPTH 4

/* Add a formatted note; out of memory only loses the note. */
static void __attribute__((format(printf, 2, 3)))
note(struct strv *notes, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&b, fmt, ap) == 0)
		(void)strv_push(notes, b.data);
	va_end(ap);
	buf_free(&b);
}

/* Give every entry of the open directory dfd (path rel) to uid:gid. */
static int
own_tree(int dfd, const char *rel, uid_t uid, gid_t gid, int depth,
	struct strv *notes)
{
	int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0), r = 0;
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		struct stat st;
		int sub;

		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
			note(notes, "%s/%s has %lu links: left to uid %lu", rel,
			    n, (unsigned long)st.st_nlink,
			    (unsigned long)st.st_uid);
			continue;
		}
		if ((st.st_uid != uid || st.st_gid != gid) &&
		    fchownat(dfd, n, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 &&
		    r == 0)
			r = -errno;
		if (!S_ISDIR(st.st_mode))
			continue;
		if (depth >= PRIVSEP_DEPTH) {
			note(notes, "%s/%s: too deep, not walked", rel, n);
			continue;
		}
		sub = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (sub >= 0) {
			struct buf p = BUF_INIT;
			int e = buf_printf(&p, "%s/%s", rel, n);

			if (e == 0)
				e = own_tree(sub, p.data, uid, gid, depth + 1,
				    notes);
			if (e < 0 && r == 0)
				r = e;
			buf_free(&p);
			close(sub);
		}
	}
	closedir(d);
	return r;
}

/* Make or fix one directory of the base directory. */
int
privsep_prepare(int basefd, const struct privsep_dir *d, struct strv *notes)
{
	struct stat st;
	int fd, r = 0;
	bool made = false;

	if (d->create && mkdirat(basefd, d->name, d->mode & 0777) == 0)
		made = true;
	else if (d->create && errno != EEXIST)
		return -errno;
	fd = openat(basefd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT && !d->create ? 0 : -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (st.st_uid != d->uid || st.st_gid != d->gid) {
		if (fchown(fd, d->uid, d->gid) < 0) {
			r = -errno;
			goto out;
		}
		if (d->tree && !made && st.st_uid != d->uid) {
			note(notes, "%s belonged to uid %lu: given with what it "
			    "holds to uid %lu", d->name,
			    (unsigned long)st.st_uid, (unsigned long)d->uid);
			r = own_tree(fd, d->name, d->uid, d->gid, 1, notes);
		}
	}
	if ((st.st_mode & 07777) != d->mode && fchmod(fd, d->mode) < 0 &&
	    r == 0)
		r = -errno;
out:
	close(fd);
	return r;
}

/* Is any capability left (effective, permitted or inheritable)? */
static bool
has_caps(void)
{
	struct __user_cap_header_struct hdr = {
	    .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data) < 0)
		return true;
	for (int i = 0; i < 2; i++)
		if (data[i].effective || data[i].permitted ||
		    data[i].inheritable)
			return true;
	return false;	/* ambient capabilities need permitted ones */
}

/* Switch to the daemon user for good. */
int
privsep_drop(uid_t uid, gid_t gid, pid_t expect_parent)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (uid == 0)
		return -EPERM;
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		return -errno;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != uid || eu != uid || su != uid || rg != gid || eg != gid ||
	    sg != gid || getgroups(0, NULL) != 0)
		return -EPERM;
	if (setuid(0) == 0 || seteuid(0) == 0 || has_caps())
		return -EPERM;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return -errno;
	/* the parent may have died before the death signal was set */
	if (getppid() != expect_parent)
		return -ESRCH;
	return 0;
}
