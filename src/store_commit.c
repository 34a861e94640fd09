/*
 * store_commit: the commit path of a whole message (store_commit) and the
 * new-file steps it shares with streamed drafts (store_int.h): S0 -> S1
 * (ID.tmp, O_EXCL), S1 -> S2 (durable ID.msg: file fsync then rename and
 * group-committed directory fsync, or rename then one file fsync where
 * that commits the name), S1 -> S0 on failure. The caller's source file
 * (unlink_after) goes only once the queue file is durable; small bodies
 * stay in memory for first deliveries. Disk work on the pool only.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fdio.h"
#include "store_int.h"

/* A commit in flight. */
struct commit_job {
	struct store__wjob w;	/* first */
	char *data;		/* the message bytes (stolen) */
	size_t len;
	char *unlink_after;
};

/* S0 -> S1: create folder/ID.tmp (O_EXCL) with the queue's mode. */
int
store__tf_create(struct store *st, struct tmpfile *tf, const char *folder,
	const char *id)
{
	bool fixed;
	int r;

	if ((r = buf_printf(&tf->tmp, "%s.tmp", id)) < 0 ||
	    (r = buf_printf(&tf->msg, "%s.msg", id)) < 0 ||
	    (r = store__sdir_get(st, folder, true, &tf->d)) < 0)
		return r;
	/* S0 -> S1: ID.tmp exists, not yet a message */
	tf->fd = openat(tf->d->fd, tf->tmp.data, O_CREAT | O_EXCL | O_WRONLY |
		O_CLOEXEC, MODE_FILE);
	if (tf->fd < 0)
		return -errno;
	tf->have_tmp = true;
	return store__fix_mode(tf->fd, MODE_FILE, &fixed);
}

/* S1 -> S2: the written ID.tmp becomes a durable ID.msg; fd closed. */
int
store__tf_publish(struct store *st, struct tmpfile *tf)
{
	struct sdir *d = tf->d;
	int r;

	/*
	 * Strict order: the data is durable before the name points at it,
	 * and the directory fsync then commits the rename. Where the file's
	 * fsync commits its new name too (names_by_file), rename first and
	 * let that one flush commit both; a crash before it ends can leave an
	 * incomplete ID.msg, which recovery keeps in corrupt/ (QUEUE.md).
	 */
	if (!d->names_by_file && fsync(tf->fd) < 0)
		return -errno;
	if ((r = store__rename_noreplace(d->fd, tf->tmp.data, d->fd,
	    tf->msg.data)) < 0)
		return r;
	tf->have_tmp = false;
	tf->have_msg = true;
	/* S1 -> S2: committed by one of the two */
	if (d->names_by_file)
		r = fsync(tf->fd) == 0 ? 0 : -errno;
	else
		r = store__sdir_sync(st, d);
	if (r < 0)
		return r;
	r = close(tf->fd) == 0 ? 0 : -errno;
	tf->fd = -1;
	return r;
}

/* S1 -> S0 after a failure: remove whatever of the new file exists. */
void
store__tf_withdraw(struct store *st, struct tmpfile *tf, const char *folder,
	const char *id, struct notes *ns)
{
	if (tf->fd >= 0)
		close(tf->fd);
	tf->fd = -1;
	if (tf->have_tmp && unlinkat(tf->d->fd, tf->tmp.data, 0) < 0 &&
	    errno != ENOENT)
		store__notes_add(ns, LOG_FAILURES, "cannot remove "
			"Queue/%s%s%s: %s (removed at restart)", folder,
			folder[0] ? "/" : "", tf->tmp.data, strerror(errno));
	tf->have_tmp = false;
	if (tf->have_msg) {
		/* the sender hears "failed": the message must not stay */
		if (unlinkat(tf->d->fd, tf->msg.data, 0) < 0 ||
		    store__sdir_sync(st, tf->d) < 0)
			store__notes_add(ns, LOG_FAILURES, "id=%s: directory "
				"fsync failed and the file could not be "
				"withdrawn: it may be delivered after a "
				"restart", id);
	}
	tf->have_msg = false;
}

/* Free the names (the file is closed by publish or withdraw). */
void
store__tf_free(struct tmpfile *tf)
{
	buf_free(&tf->tmp);
	buf_free(&tf->msg);
}

/* Committed: only now may the source (e.g. the .sub) go. */
void
store__unlink_source(const char *path, const char *id, struct notes *ns)
{
	if (path && unlink(path) < 0)
		store__notes_add(ns, errno == ENOENT ? LOG_PROBLEMS :
			LOG_FAILURES,
			"id=%s queued, but cannot remove %s: %s (it may be "
			"submitted again)", id, path, strerror(errno));
}

/* Pool: S0 -> S1 (ID.tmp) -> S2 (ID.msg, directory fsynced). */
static void
commit_work(uv_work_t *req)
{
	struct commit_job *j = req->data;
	struct store *st = j->w.st;
	struct store_msg *m = j->w.m;
	struct tmpfile tf = TMPFILE_INIT;
	struct buf hdr = BUF_INIT;
	struct iovec iov[2];
	int r;

	m->env.size = j->len;
	if ((m->env.uid[0] == '\0' && (r = envelope_new_uid(m->env.uid)) < 0) ||
	    (r = envelope_format(&m->env, &hdr)) < 0)
		goto fail;
	m->msg_off = m->env.header_len;
	m->msg_len = m->env.size;
	m->pending = envelope_pending(&m->env);
	if ((r = store__tf_create(st, &tf, j->w.folder, m->id)) < 0)
		goto fail;
	iov[0].iov_base = hdr.data;
	iov[0].iov_len = hdr.len;
	iov[1].iov_base = j->data;
	iov[1].iov_len = j->len;
	if ((r = fdio_writev(tf.fd, iov, j->len ? 2 : 1)) < 0 ||
	    (r = store__tf_publish(st, &tf)) < 0)
		goto fail;
	store__unlink_source(j->unlink_after, m->id, &j->w.notes);
	j->w.err = 0;
	goto out;
fail:
	j->w.err = r;
	store__tf_withdraw(st, &tf, j->w.folder, m->id, &j->w.notes);
out:
	store__tf_free(&tf);
	buf_free(&hdr);
}

/*
 * Keep the committed message bytes (j->data, without the envelope) in
 * memory when small, so its first deliveries feed programs from memory
 * instead of reading the file back on the thread pool, where the read
 * would wait behind other commits' fsyncs.
 */
static void
keep_body(struct store *st, struct store_msg *m, struct commit_job *j)
{
	if (st->kept == NULL || j->data == NULL || j->len != m->msg_len ||
	    j->len > STORE_KEEP_MAX || st->kept->bytes + j->len >
	    STORE_KEEP_TOTAL)
		return;
	m->body = j->data;
	j->data = NULL;
	st->kept->bytes += j->len;
	st->kept->refs++;
	m->kept = st->kept;
}

/* Loop: a commit finished. */
static void
commit_after(uv_work_t *req, int status)
{
	struct commit_job *j = req->data;
	struct store *st = j->w.st;
	struct store_msg *m = j->w.m;
	int err = store__wjob_back(&j->w, status);

	if (err == 0) {
		st->live++;
		st->commits++;
		keep_body(st, m, j);
	} else {
		if (st->log)
			log_msg(st->log, LOG_QUEUE, LOG_FAILURES, "id=%s cannot "
				"be queued: %s", m->id, strerror(-err));
		store_msg_free(m);
		m = NULL;
	}
	free(j->data);
	free(j->unlink_after);
	store__wjob_end(&j->w, err, m);
}

/* Write a new queue file durably from env and message. */
int
store_commit(struct store *st, struct envelope *env, struct buf *message,
	const char *unlink_after, unsigned flags, store_commit_cb cb,
	void *arg)
{
	struct store__wjob *w;
	struct commit_job *j;
	struct store_msg *m;
	int r;

	if (st == NULL || env == NULL || message == NULL || cb == NULL)
		return -EINVAL;
	if ((r = store__commit_allowed(st, flags)) < 0 ||
	    (r = store__wjob_new(st, sizeof(*j), cb, arg, &w)) < 0)
		return r;
	j = (struct commit_job *)w;
	m = w->m;
	if (unlink_after && (j->unlink_after = strdup(unlink_after)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	/* take the envelope and the bytes; on failure below, give them back */
	m->env = *env;
	j->data = message->data;
	j->len = message->len;
	if ((r = store__wjob_queue(w, commit_work, commit_after)) < 0) {
		envelope_init(&m->env);
		goto fail;
	}
	envelope_init(env);
	*message = (struct buf)BUF_INIT;
	return 0;
fail:
	free(j->unlink_after);
	store__wjob_free(w);
	return r;
}
