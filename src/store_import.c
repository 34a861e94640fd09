/*
 * store_import: a ForeignQueue file moved into Queue/ under a fresh ID
 * (rename, same file system): envelope checked, owner and mode fixed,
 * data fsynced before the rename, both directories fsynced after; a
 * corrupt file goes to Queue/corrupt/, a finished one is removed.
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

/* An import in flight. */
struct import_job {
	struct store__wjob w;	/* first */
	char *src;
	bool counted;		/* the file reached Queue/ */
};

/* fsync the folder holding path. */
static int
fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, r = 0;

	dir = slash == NULL ? strdup(".") : slash == path ? strdup("/") :
		text_strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		r = -errno;
	store__close_keep(fd);
	free(dir);
	return r;
}

/* Pool: ForeignQueue file -> S2/S3 under a fresh ID. */
static void
import_work(uv_work_t *req)
{
	struct import_job *j = req->data;
	struct store *st = j->w.st;
	struct store_msg *m = j->w.m;
	struct buf dest = BUF_INIT, name = BUF_INIT;
	struct sdir *d;
	const char *why;
	unsigned line;
	bool fixed;
	int fd, r;

	fd = open(j->src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = store__load_envelope(fd, &m->env, &m->hist, &m->jend, &why,
	    &line);
	if (r == 0 && m->env.report_for != NULL) {
		/* only the daemon's own reports may say whom they settle */
		r = -EBADMSG;
		why = "report-for in a foreign file";
		line = 0;
	}
	if (r == -EBADMSG) {
		int q = store__quarantine(st, AT_FDCWD, j->src, &dest);

		store__note_corrupt(&j->w.notes, j->src, why, line, q, &dest);
		if (q == 0 && (q = fsync_parent(j->src)) < 0)
			store__notes_add(&j->w.notes, LOG_FAILURES, "cannot "
				"fsync the folder of %s: %s", j->src,
				strerror(-q));
		goto out;
	}
	if (r < 0)
		goto out;
	m->pending = envelope_pending(&m->env);
	if (m->pending == 0) {
		/* nothing left to deliver: as at recovery, it goes */
		if (unlink(j->src) < 0 || (r = fsync_parent(j->src)) < 0) {
			r = r < 0 ? r : -errno;
			goto out;
		}
		store__notes_add(&j->w.notes, LOG_PROBLEMS, "%s: every "
			"recipient is final; removed", j->src);
		r = -EALREADY;
		goto out;
	}
	m->msg_off = m->env.header_len;
	m->msg_len = m->env.size;
	/* queue norms before the file enters the queue; then durable bytes */
	if ((r = store__fix_mode(fd, MODE_FILE, &fixed)) < 0)
		goto out;
	if (fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = buf_printf(&name, "%s.msg", m->id)) < 0 ||
	    (r = store__sdir_get(st, j->w.folder, true, &d)) < 0)
		goto out;
	/* S2: the rename moves the message in; EXDEV leaves it where it is */
	if ((r = store__rename_noreplace(AT_FDCWD, j->src, d->fd,
	    name.data)) < 0)
		goto out;
	j->counted = true;
	if ((r = store__sdir_sync(st, d)) < 0) {
		store__notes_add(&j->w.notes, LOG_FAILURES, "id=%s imported "
			"from %s but the directory fsync failed: %s "
			"(delivered after a restart)", m->id, j->src,
			strerror(-r));
		goto out;
	}
	if ((r = fsync_parent(j->src)) < 0)
		store__notes_add(&j->w.notes, LOG_PROBLEMS, "id=%s imported, "
			"but cannot fsync the folder of %s: %s", m->id, j->src,
			strerror(-r));
	r = 0;
out:
	j->w.err = r;
	if (fd >= 0)
		close(fd);
	buf_free(&dest);
	buf_free(&name);
}

/* Loop: an import finished. */
static void
import_after(uv_work_t *req, int status)
{
	struct import_job *j = req->data;
	struct store *st = j->w.st;
	struct store_msg *m = j->w.m;
	int err = store__wjob_back(&j->w, status);

	if (j->counted)
		st->live++;	/* in Queue/ even if not yet durable */
	if (err < 0) {
		store_msg_free(m);
		m = NULL;
	} else if (st->log) {
		log_msg(st->log, LOG_QUEUE, LOG_MAJOR, "id=%s imported from %s",
			m->id, j->src);
	}
	free(j->src);
	store__wjob_end(&j->w, err, m);
}

/* ForeignQueue import of the .msg at src_path. */
int
store_import(struct store *st, const char *src_path, store_commit_cb cb,
	void *arg)
{
	struct store__wjob *w;
	struct import_job *j;
	int r;

	if (st == NULL || src_path == NULL || cb == NULL)
		return -EINVAL;
	if ((r = store__commit_allowed(st, 0)) < 0 ||
	    (r = store__wjob_new(st, sizeof(*j), cb, arg, &w)) < 0)
		return r;
	j = (struct import_job *)w;
	if ((j->src = strdup(src_path)) == NULL ||
	    (r = store__wjob_queue(w, import_work, import_after)) < 0) {
		r = j->src == NULL ? -ENOMEM : r;
		free(j->src);
		store__wjob_free(w);
		return r;
	}
	return 0;
}
