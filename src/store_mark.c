/*
 * store_mark: a recipient's final state (S2 -> S3: one state byte
 * overwritten in place, checked first, fdatasynced) and the removal of a
 * finished file (S3 -> S4: unlink, group-committed directory fsync). The
 * in-memory state changes at once; the caller hears when it is durable.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_int.h"
#include "text.h"

/* A mark in flight. */
struct mark_job {
	uv_work_t req;
	struct store *st;
	struct store_msg *m;
	char *folder;
	const char *name;	/* file name, inside m->relpath */
	size_t off;		/* the state byte's offset */
	char state;
	bool remove;		/* no recipient left: unlink */
	bool removed;
	store_mark_cb cb;
	void *arg;
	int err;
	struct notes notes;
};

/* Overwrite the state byte at off, after checking it is one ("rcpt S"). */
static int
write_state(int dirfd, const char *name, size_t off, char state)
{
	char cur[6];
	ssize_t n;
	int fd, r = 0;

	if (off < 5 || off > (size_t)LLONG_MAX)
		return -EINVAL;
	fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = pread(fd, cur, sizeof(cur), (off_t)(off - 5));
	if (n < 0)
		r = -errno;
	else if ((size_t)n != sizeof(cur) || memcmp(cur, "rcpt ", 5) != 0 ||
	    (cur[5] != RCPT_PENDING && cur[5] != RCPT_DELIVERED &&
	    cur[5] != RCPT_FAILED))
		r = -EBADMSG;	/* never write where no state byte is */
	else if ((n = pwrite(fd, &state, 1, (off_t)off)) != 1)
		r = n < 0 ? -errno : -EIO;
	else if (fdatasync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* Pool: S2 -> S3 (one state byte) or S2/S3 -> S4 (unlink, dir fsync). */
static void
mark_work(uv_work_t *req)
{
	struct mark_job *j = req->data;
	struct store *st = j->st;
	struct sdir *d;
	int r;

	if ((r = store__sdir_get(st, j->folder, false, &d)) < 0)
		goto out;
	if (j->remove) {
		/* S3 -> S4: the unlink, committed by the directory fsync */
		if (unlinkat(d->fd, j->name, 0) < 0 && errno != ENOENT) {
			r = -errno;
			/* keep the result at least: the file goes at restart */
			if (write_state(d->fd, j->name, j->off, j->state) == 0) {
				store__notes_add(&j->notes, LOG_PROBLEMS,
					"id=%s finished but cannot be removed: "
					"%s (removed at restart)", j->m->id,
					strerror(-r));
				r = 0;
			}
			goto out;
		}
		j->removed = true;
		r = store__sdir_sync(st, d);
		goto out;
	}
	/* S2 -> S3: one recipient final, the byte made durable */
	r = write_state(d->fd, j->name, j->off, j->state);
	if (r == -ENOENT) {
		/* a later mark may have removed it: make that durable too */
		int s = store__sdir_sync(st, d);

		if (s < 0)
			r = s;
	}
out:
	j->err = r;
}

/* Loop: a mark finished. */
static void
mark_after(uv_work_t *req, int status)
{
	struct mark_job *j = req->data;
	struct store *st = j->st;
	int err = status < 0 ? status : j->err;
	bool removed = j->removed, last;

	store__notes_flush(st, &j->notes);
	if (j->removed && st->live > 0)
		st->live--;
	if (err == -ENOENT && j->m->pending == 0) {
		/* removed by the mark of the last recipient */
		err = 0;
		removed = true;
	}
	if (err < 0)
		removed = false;
	j->m->marks--;
	last = store__work_done(st);
	j->cb(j->arg, err, removed);
	free(j->folder);
	free(j);
	if (last)
		store__free(st);
}

/* Record recipient rcpt's final state. */
int
store_mark(struct store *st, struct store_msg *m, size_t rcpt,
	enum rcpt_state state, store_mark_cb cb, void *arg)
{
	struct mark_job *j;
	const char *rel, *slash;
	int r;

	if (st == NULL || m == NULL || cb == NULL || rcpt >= m->env.nrcpt ||
	    (state != RCPT_DELIVERED && state != RCPT_FAILED) ||
	    m->relpath == NULL || strncmp(m->relpath, "Queue/", 6) != 0)
		return -EINVAL;
	if (st->closing)
		return -EBUSY;
	if (m->env.rcpt[rcpt].state != RCPT_PENDING || m->pending == 0)
		return -EALREADY;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	rel = m->relpath + 6;
	slash = strrchr(rel, '/');
	j->folder = slash ? text_strndup(rel, (size_t)(slash - rel)) :
		strdup("");
	if (j->folder == NULL) {
		free(j);
		return -ENOMEM;
	}
	j->req.data = j;
	j->st = st;
	j->m = m;
	j->name = slash ? slash + 1 : rel;
	j->off = m->env.rcpt[rcpt].state_off;
	j->state = (char)state;
	j->remove = m->pending == 1;
	j->cb = cb;
	j->arg = arg;
	if ((r = uv_queue_work(st->loop, &j->req, mark_work,
	    mark_after)) < 0) {
		free(j->folder);
		free(j);
		return r;
	}
	/* the caller sees the new state at once; the disk follows */
	m->env.rcpt[rcpt].state = (char)state;
	m->pending--;
	m->marks++;
	st->busy++;
	return 0;
}
