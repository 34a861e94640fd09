/*
 * store_dir: the queue's folders for the store (store_int.h): opening
 * (and making) Queue/ subfolders with the queue's mode, the group commit
 * of their directory fsyncs (one fsync shared by every change made before
 * it started), renames that never replace a file. Pool threads and
 * store_open; 0 or -errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

/* rename without ever replacing a file: -EEXIST if newname exists. */
int
store__rename_noreplace(int olddir, const char *oldname, int newdir,
	const char *newname)
{
	struct stat sb;

	if (renameat2(olddir, oldname, newdir, newname, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* file system without RENAME_NOREPLACE: we are Queue/'s only writer */
	if (fstatat(newdir, newname, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	return renameat(olddir, oldname, newdir, newname) == 0 ? 0 : -errno;
}

/* Give an open file or folder the queue's mode (fixed: it had another). */
int
store__fix_mode(int fd, mode_t mode, bool *fixed)
{
	struct stat sb;

	*fixed = false;
	if (fstat(fd, &sb) < 0)
		return -errno;
	if ((sb.st_mode & 07777) != mode) {
		if (fchmod(fd, mode) < 0)
			return -errno;
		*fixed = true;
	}
	return 0;
}

/* Run or join a directory fsync that starts after the caller's change. */
int
store__sdir_sync(struct store *st, struct sdir *d)
{
	uint64_t target, gen;
	int r;

	uv_mutex_lock(&d->mu);
	/* a running fsync may have started before our change: wait for next */
	target = d->started + 1;
	while (d->completed < target) {
		if (d->running) {
			uv_cond_wait(&d->cv, &d->mu);
			continue;
		}
		/* leader: no fsync running, so run the one everybody waits on */
		d->running = true;
		gen = ++d->started;
		uv_mutex_unlock(&d->mu);
		r = fsync(d->fd) == 0 ? 0 : -errno;
		atomic_fetch_add(&st->dir_fsyncs, 1);
		uv_mutex_lock(&d->mu);
		d->running = false;
		d->completed = gen;
		if (r < 0) {
			d->failed = gen;
			d->fail_err = r;
		}
		uv_cond_broadcast(&d->cv);
	}
	/* conservative: any failed fsync since ours was due fails us too */
	r = d->failed >= target ? d->fail_err : 0;
	uv_mutex_unlock(&d->mu);
	return r;
}

/* Absolute path of folder name ("" = Queue/ itself). */
static int
sdir_path(const struct store *st, const char *name, struct buf *out)
{
	return name[0] ? buf_printf(out, "%s/%s", st->qpath, name) :
		buf_puts(out, st->qpath);
}

/* Open (and with create, make) the folder of d; d->mu is held. */
static int
sdir_open_locked(struct store *st, struct sdir *d, bool create)
{
	struct buf path = BUF_INIT;
	bool corrupt = strcmp(d->name, CORRUPT_DIR) == 0, made = false, fixed;
	struct sdir *root;
	struct stat sb;
	int r, fd;

	if ((r = sdir_path(st, d->name, &path)) < 0)
		return r;
	fd = open(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create && d->name[0]) {
		/* a new subfolder: made, owned, then its parent fsynced */
		if (mkdir(path.data, corrupt ? MODE_CORRUPT : MODE_DIR) < 0 &&
		    errno != EEXIST) {
			r = -errno;
			goto out;
		}
		made = true;
		fd = open(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (made) {
		if ((r = store__fix_mode(fd, corrupt ? MODE_CORRUPT : MODE_DIR,
		    &fixed)) < 0 || (r = fsync(fd) ? -errno : 0) < 0) {
			close(fd);
			goto out;
		}
	}
	d->fd = fd;
	d->names_by_file = st->names_by_file && fstat(fd, &sb) == 0 &&
		sb.st_dev == st->qdev;
	r = 0;
	if (made) {
		/* lock order is always child then root: no cycle */
		uv_mutex_lock(&st->dirs_mu);
		for (root = st->dirs; root && root->name[0]; root = root->next)
			;
		uv_mutex_unlock(&st->dirs_mu);
		if (root != NULL && root != d && root->fd >= 0)
			r = store__sdir_sync(st, root);
	}
out:
	buf_free(&path);
	return r;
}

/* The group-commit object of folder name, its directory open (or made). */
int
store__sdir_get(struct store *st, const char *name, bool create,
	struct sdir **out)
{
	struct sdir *d;
	int r = 0;

	uv_mutex_lock(&st->dirs_mu);
	for (d = st->dirs; d != NULL; d = d->next)
		if (strcmp(d->name, name) == 0)
			break;
	if (d == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL ||
		    (d->name = strdup(name)) == NULL) {
			free(d);
			uv_mutex_unlock(&st->dirs_mu);
			return -ENOMEM;
		}
		d->fd = -1;
		if ((r = uv_mutex_init(&d->mu)) < 0) {
			free(d->name);
			free(d);
			uv_mutex_unlock(&st->dirs_mu);
			return r;
		}
		if ((r = uv_cond_init(&d->cv)) < 0) {
			uv_mutex_destroy(&d->mu);
			free(d->name);
			free(d);
			uv_mutex_unlock(&st->dirs_mu);
			return r;
		}
		d->next = st->dirs;
		st->dirs = d;
	}
	uv_mutex_unlock(&st->dirs_mu);
	uv_mutex_lock(&d->mu);
	if (d->fd < 0)
		r = sdir_open_locked(st, d, create);
	uv_mutex_unlock(&d->mu);
	if (r < 0)
		return r;
	*out = d;
	return 0;
}

/* Free every folder object. */
void
store__sdirs_free(struct store *st)
{
	struct sdir *d, *next;

	for (d = st->dirs; d != NULL; d = next) {
		next = d->next;
		if (d->fd >= 0)
			close(d->fd);
		uv_cond_destroy(&d->cv);
		uv_mutex_destroy(&d->mu);
		free(d->name);
		free(d);
	}
	st->dirs = NULL;
}
