/*
 * localsub_write: the Submitted writer (localsub_write, SPEC "Submitted
 * folder"): BASE/Submitted/NAME.tmp created O_EXCL 0600 under a fresh
 * random name, written, fsynced, renamed to NAME.sub and the rename made
 * durable. Promises: the setgid group is held only around this and dropped
 * for good at the end; a failed write leaves no file behind.
 */
#include "localsub.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "localsub_int.h"
#include "mp_build.h"
#include "random.h"

/*
 * A pending file is mode 0404 with the submit group: the daemon user (in
 * "others", and owner of Submitted/) reads it; no other user can search
 * Submitted/ to reach it; the submit group, which can, has no right on it
 * (group bits win over others), so not even a process with the setgid
 * group reads another user's file; nobody but root changes it
 * (docs/LOCAL-SUBMISSION.md).
 */
static int
localsub__sub_mode(const struct localsub *ls, int fd)
{
	gid_t g = (gid_t)-1;

	if (ls->setgid) {
		g = ls->sgid;
	} else if (geteuid() == 0) {
		struct group *gr = getgrnam(MAILPIPE_SUBMIT_GROUP);

		if (gr)
			g = gr->gr_gid;
	}
	if (g != (gid_t)-1 && fchown(fd, (uid_t)-1, g) < 0)
		return -1;
	return fchmod(fd, 0404);
}

/* ---- the Submitted write --------------------------------------------- */

/* A fresh file name: time, pid and 64 random bits. */
static int
localsub__name(struct buf *b)
{
	uint64_t rnd;
	int r;

	if ((r = random_bytes(&rnd, sizeof(rnd))) < 0)
		return r;
	return buf_printf(b, "%lld.%ld.%016" PRIx64, (long long)time(NULL),
		(long)getpid(), rnd);
}

/* The exit status for a failed open of Submitted/ or of the .tmp file. */
static int
localsub__open_ex(int e)
{
	return e == EACCES || e == EPERM ? EX_NOPERM : EX_CANTCREAT;
}

/*
 * Create, write, fsync, rename and make durable, with the group held.
 * Returns with the group still held; the caller drops it.
 */
static int
localsub__commit(struct localsub *ls, const char *dir, const char *name,
	const char *data, size_t len, struct localsub_err *err)
{
	struct buf tmp = BUF_INIT, sub = BUF_INIT;
	int dfd = -1, rfd = -1, fd = -1, r, e;
	bool renamed = false;

	if (buf_printf(&tmp, "%s.tmp", name) < 0 ||
	    buf_printf(&sub, "%s.sub", name) < 0) {
		r = localsub__oserr(err, -ENOMEM, "file name");
		goto out;
	}
	if ((r = localsub__gid_hold(ls)) < 0) {
		r = localsub__oserr(err, r, "cannot take the submit group");
		goto out;
	}
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		e = errno;
		if (e == ENOENT)
			r = localsub_fail(err, EX_UNAVAILABLE, -e,
				"mailpipe is not set up: %s missing", dir);
		else
			r = localsub_fail(err, localsub__open_ex(e), -e,
				"cannot open %s: %s", dir, strerror(e));
		goto out;
	}
	fd = openat(dfd, tmp.data, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW |
		O_CLOEXEC, 0400);
	if (fd < 0 || localsub__sub_mode(ls, fd) < 0) {
		e = errno;
		r = localsub_fail(err, localsub__open_ex(e), -e,
			"cannot create %s/%s: %s", dir, tmp.data, strerror(e));
		goto out;
	}
	if ((r = fdio_write_all(fd, data, len)) < 0 ||
	    (fsync(fd) < 0 && (r = -errno) < 0)) {
		r = localsub_fail(err, EX_IOERR, r, "cannot write %s/%s: %s",
			dir, tmp.data, strerror(-r));
		goto out;
	}
	if (renameat(dfd, tmp.data, dfd, sub.data) < 0) {
		e = errno;
		r = localsub_fail(err, EX_IOERR, -e,
			"cannot rename %s/%s to %s: %s", dir, tmp.data,
			sub.data, strerror(e));
		goto out;
	}
	renamed = true;
	/*
	 * Make the rename durable. A submitter in the group may not read a
	 * mode 1730 directory, so it cannot fsync it: syncfs() on the file
	 * then flushes the whole file system, the directory entry with it.
	 */
	rfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if ((rfd >= 0 && fsync(rfd) < 0) || (rfd < 0 && syncfs(fd) < 0)) {
		e = errno;
		r = localsub_fail(err, EX_IOERR, -e, "cannot sync %s: %s", dir,
			strerror(e));
		goto out;
	}
	r = 0;
out:
	if (r < 0 && fd >= 0)
		(void)unlinkat(dfd, renamed ? sub.data : tmp.data, 0);
	if (rfd >= 0)
		close(rfd);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	buf_free(&tmp);
	buf_free(&sub);
	return r;
}

/* Write data as BASE/Submitted/NAME.sub, durably. */
int
localsub_write(struct localsub *ls, const char *data, size_t len,
	char **path, struct localsub_err *err)
{
	struct buf dir = BUF_INIT, name = BUF_INIT;
	struct sigaction sa;
	sigset_t block;
	int r, r2;

	/* An interrupted write would leave a .tmp nobody removes. */
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, NULL);
	/* A file size limit makes write() fail instead of killing us. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGXFSZ, &sa, NULL);

	if (buf_printf(&dir, "%s/Submitted", ls->base) < 0)
		r = localsub__oserr(err, -ENOMEM, "file name");
	else if ((r = localsub__name(&name)) < 0)
		r = localsub__oserr(err, r, "random file name");
	else
		r = localsub__commit(ls, dir.data, name.data, data, len, err);
	r2 = localsub__gid_drop(ls);
	if (r == 0 && r2 < 0)
		r = localsub__oserr(err, r2, "cannot drop the submit group");
	if (r == 0 && path && (buf_printf(&dir, "/%s.sub", name.data) < 0 ||
	    buf_steal(&dir, path) < 0))
		r = localsub__oserr(err, -ENOMEM, "file name");
	buf_free(&dir);
	buf_free(&name);
	return r;
}
