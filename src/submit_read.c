/*
 * submit_read: reading one Submitted file on the thread pool
 * (submit_int.h): opened without following symlinks, checked to be a
 * regular file with one link and not already queued, judged complete or
 * not by subready's rules, then read whole when small or up to the end of
 * its header when large (never more than the header in memory), and
 * classified: whole, streamed, header still going on, too large, or
 * changed while read. Pool threads only; never changes the folder but to
 * remove a file already queued before a restart.
 */
#include "submit.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "msghdr.h"
#include "submit_int.h"
#include "subready.h"

/* Monotonic milliseconds (the clock of subready's looks). */
uint64_t
submit__mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wall-clock nanoseconds (the clock of ctime). */
static int64_t
real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* What fstat said, as subready compares it. */
static void
stat_sig(const struct stat *sb, struct subready_stat *out)
{
	out->dev = (uint64_t)sb->st_dev;
	out->ino = (uint64_t)sb->st_ino;
	out->size = (int64_t)sb->st_size;
	out->mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000LL +
		sb->st_mtim.tv_nsec;
	out->ctime_ns = (int64_t)sb->st_ctim.tv_sec * 1000000000LL +
		sb->st_ctim.tv_nsec;
}

/* Pool: is the open file still what it was when it was first read? */
bool
submit__unchanged(const struct sub_job *j)
{
	struct subready_stat now;
	struct stat sb;

	if (fstat(j->fd, &sb) < 0)
		return false;
	stat_sig(&sb, &now);
	return subready_same(&now, &j->st);
}

/*
 * Pool: after a read that ended at eof or at its limit, decide what the
 * job is: a whole small file (read completely and unchanged), a streamed
 * one (header end found: only the header stays in memory, the store
 * copies the body), one whose header goes on (more_header, read at its
 * turn), one with too large a header, or one that changed meanwhile.
 * last: the read went as far as a header may.
 */
static void
classify(struct sub_job *j, bool eof, bool last)
{
	size_t end;

	if (!(eof && j->data.len <= SUBMIT_WHOLE_MAX) &&
	    msghdr_header_end(j->data.data, j->data.len, false, &end) == 0) {
		j->streamed = true;
		j->body_off = end;
		j->data.len = end;	/* the body is read again by the copy */
		j->data.data[end] = '\0';
		return;
	}
	if (eof) {
		/* all of it is in memory: it must be what fstat said */
		if ((uint64_t)j->data.len != (uint64_t)j->st.size ||
		    !submit__unchanged(j))
			j->changed = true;
		return;
	}
	if (!last)
		j->more_header = true;
	else if ((uint64_t)j->st.size <= (uint64_t)j->data.len)
		j->changed = true;	/* it was shorter than that */
	else
		j->bad = "header larger than 1 MiB";
}

/*
 * Pool: the file owner's address, login@hostname (the submitting user of
 * SPEC "Submitted folder"), through getpwuid_r: NSS may block, and needs
 * no privilege. No entry, or a login that makes no address: owner_why;
 * a look-up that failed: owner_err (the file is then looked at again).
 */
static void
owner_address(struct sub_job *j)
{
	long max = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t size = max > 0 ? (size_t)max : 1024;
	struct passwd pw, *res = NULL;
	char *buf = NULL, *nb;
	int e;

	for (;;) {
		if ((nb = realloc(buf, size)) == NULL) {
			e = ENOMEM;
			break;
		}
		buf = nb;
		e = getpwuid_r(j->uid, &pw, buf, size, &res);
		if (e != ERANGE || size >= SUBMIT_PW_MAX)
			break;
		size *= 2;
	}
	if (e == 0 && res == NULL)
		j->owner_why = "has no passwd entry";
	else if (e != 0)
		j->owner_err = -e;
	else if ((e = address_join(pw.pw_name, j->sb->hostname,
	    &j->submitter)) == -ENOMEM)
		j->owner_err = e;
	else if (e < 0)
		j->owner_why = "has a login name that is not an address";
	free(buf);
}

/* Worker: open the .sub safely; read a small one, or the start of it. */
void
submit__work_read(uv_work_t *w)
{
	struct sub_job *j = w->data;
	struct submit *sb = j->sb;
	struct stat st;
	bool eof;
	int fd, r;

	fd = openat(sb->dirfd, j->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			j->vanished = true;
		else if (errno == ELOOP)
			j->bad = "is a symbolic link";
		else
			j->err = -errno;
		return;
	}
	j->fd = fd;
	if (fstat(fd, &st) < 0) {
		j->err = -errno;
		return;
	}
	j->uid = st.st_uid;
	j->dev = st.st_dev;
	j->ino = st.st_ino;
	stat_sig(&st, &j->st);
	if (!S_ISREG(st.st_mode)) {
		j->bad = "is not a regular file";
		return;
	}
	if (st.st_nlink != 1) {
		j->bad = "has more than one link";
		return;
	}
	if (submit__forgotten(sb, j->name, st.st_dev, st.st_ino)) {
		j->submit__forgotten = true;
		if (unlinkat(sb->dirfd, j->name, 0) < 0 && errno != ENOENT)
			j->err = -errno;
		return;
	}
	if (subready_judge(&j->view, &j->st, real_ns(), submit__mono_ms(),
	    &sb->rs, &j->wait_ms) == SUBREADY_WAIT) {
		j->waiting = true;
		return;
	}
	if ((uint64_t)st.st_size > SUBMIT_MAX_BYTES) {
		j->bad = "is larger than 1 GiB";
		return;
	}
	/*
	 * one read more than the limit tells a small file from a large one;
	 * only these reads move the offset (the store's copy uses pread), so
	 * it stays at j->data.len
	 */
	if ((r = buf_read_upto(&j->data, fd, SUBMIT_WHOLE_MAX + 1,
	    &eof)) < 0) {
		j->err = r;
		return;
	}
	classify(j, eof, false);
	if (j->bad == NULL && !j->changed)
		owner_address(j);
}

/* Worker: its turn came; read the rest of a long header. */
void
submit__work_header(uv_work_t *w)
{
	struct sub_job *j = w->data;
	bool eof;
	int r;

	/* a piece at a time: only as much as the header needs stays */
	while (j->more_header) {
		size_t upto = j->data.len + SUBMIT_WHOLE_MAX;

		j->more_header = false;
		if (upto > SUBMIT_HEADER_READ)
			upto = SUBMIT_HEADER_READ;
		if ((r = buf_read_upto(&j->data, j->fd, upto, &eof)) < 0) {
			j->err = r;
			return;
		}
		classify(j, eof, upto == SUBMIT_HEADER_READ);
	}
}
