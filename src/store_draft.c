/*
 * store_draft: streamed commits (store.h store_draft_*, docs/QUEUE.md
 * "Streamed commits"): a message written piece by piece, or copied from
 * a file in chunks of STORE_COPY_CHUNK, into Queue/[NN/]ID.tmp after the
 * room kept for its envelope; the commit writes the envelope (padded)
 * into that room and makes the file durable as store_commit does. One
 * step at a time, each on the pool; no callback after an abort.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdio.h"
#include "store_int.h"
#include "text.h"

#define DRAFT_SLICE (8 * 1024 * 1024)	/* copied per pool job, at most */

/* What a draft's current step is. */
enum draft_op { DOP_WRITE, DOP_COPY, DOP_COMMIT, DOP_ABORT };

/* A streamed queue file being written. */
struct store_draft {
	uv_work_t req;
	struct store *st;
	struct store_msg *m;	/* ID, paths, envelope (size set at commit) */
	char *folder;
	struct tmpfile tf;	/* ID.tmp once the first step made it */
	size_t room;		/* bytes reserved for the envelope */
	struct buf head;	/* first message bytes, written by step one */
	struct buf chunk;	/* the bytes of a write */
	uint64_t written;	/* message bytes in the file */
	int err;		/* a failed step: the commit fails with it */
	bool busy;		/* a step is queued or running */
	bool aborted;		/* store_draft_abort: no more callbacks */
	enum draft_op op;
	int step_err;		/* result of the current step */
	uint64_t step_n;	/* bytes a write step took */
	/* a copy: source, where it stands, and the CR held between chunks */
	int src;
	uint64_t src_off, src_max, copied;
	unsigned copy_flags;
	bool cr, copy_done;
	store_draft_cb cb;
	store_commit_cb commit_cb;
	void *arg;
	char *unlink_after;
	struct notes notes;
};

static void draft_after(uv_work_t *req, int status);

/* Append n message bytes after the reserved room; start their writeback. */
static int
draft_append(struct store_draft *d, const char *p, size_t n)
{
	uint64_t off = d->room + d->written;
	int r;

	if (n == 0)
		return 0;
	if ((r = fdio_pwrite(d->tf.fd, p, n, off)) < 0)
		return r;
	d->written += n;
	/* a head start for the commit's fsync; a hint, so errors are moot */
	(void)sync_file_range(d->tf.fd, (off64_t)off, (off64_t)n,
		SYNC_FILE_RANGE_WRITE);
	return 0;
}

/* Pool: ID.tmp exists (made by the first step) and the head is in it. */
static int
draft_ready(struct store_draft *d)
{
	int r;

	if (d->tf.fd < 0 && !d->tf.have_tmp &&
	    (r = store__tf_create(d->st, &d->tf, d->folder, d->m->id)) < 0)
		return r;
	if (d->tf.fd < 0)
		return -EBADF;
	if (d->head.len > 0) {
		if ((r = draft_append(d, d->head.data, d->head.len)) < 0)
			return r;
		buf_free(&d->head);
	}
	return 0;
}

/* Pool: copy up to one slice of the source, converting when asked. */
static int
draft_copy_slice(struct store_draft *d)
{
	char *in = malloc(STORE_COPY_CHUNK), *out = NULL;
	uint64_t sliced = 0;
	int r = 0;

	if (in == NULL || (d->copy_flags & STORE_COPY_CRLF &&
	    (out = malloc(STORE_COPY_CHUNK + 1)) == NULL)) {
		free(in);
		return -ENOMEM;
	}
	while (sliced < DRAFT_SLICE) {
		size_t n, o;

		if ((r = fdio_pread(d->src, in, STORE_COPY_CHUNK,
		    d->src_off + d->copied, &n)) < 0)
			break;
		if (n == 0) {
			/* the end: a CR held back was a lone one */
			if (d->cr && (r = draft_append(d, "\r", 1)) == 0)
				d->cr = false;
			d->copy_done = r == 0;
			break;
		}
		if ((uint64_t)n > d->src_max - d->copied) {
			r = -EFBIG;
			break;
		}
		d->copied += (uint64_t)n;
		sliced += (uint64_t)n;
		if (out == NULL) {
			r = draft_append(d, in, n);
		} else {
			o = text_crlf_to_lf(in, n, out, &d->cr);
			r = draft_append(d, out, o);
		}
		if (r < 0)
			break;
	}
	free(in);
	free(out);
	return r;
}

/* Pool: S1 -> S2 for a draft (envelope into its room, then durable). */
static int
draft_commit_work(struct store_draft *d)
{
	struct store_msg *m = d->m;
	struct buf env = BUF_INIT;
	int r;

	if ((r = d->err) < 0 || (r = draft_ready(d)) < 0)
		return r;
	m->env.size = d->written;
	if ((r = envelope_format_padded(&m->env, d->room, &env)) < 0)
		goto out;
	m->msg_off = m->env.header_len;
	m->msg_len = m->env.size;
	m->pending = envelope_pending(&m->env);
	if ((r = fdio_pwrite(d->tf.fd, env.data, env.len, 0)) < 0 ||
	    (r = store__tf_publish(d->st, &d->tf)) < 0)
		goto out;
	store__unlink_source(d->unlink_after, m->id, &d->notes);
out:
	buf_free(&env);
	return r;
}

/* Pool: the draft's current step. */
static void
draft_work(uv_work_t *req)
{
	struct store_draft *d = req->data;
	int r = 0;

	/* after a failure the ID.tmp is gone: nothing more is written */
	if ((d->op == DOP_WRITE || d->op == DOP_COPY) && d->err < 0) {
		buf_free(&d->chunk);
		d->step_err = d->err;
		return;
	}
	switch (d->op) {
	case DOP_WRITE:
		if ((r = draft_ready(d)) == 0)
			r = draft_append(d, d->chunk.data, d->chunk.len);
		buf_free(&d->chunk);
		break;
	case DOP_COPY:
		if ((r = draft_ready(d)) == 0)
			r = draft_copy_slice(d);
		break;
	case DOP_COMMIT:
		r = draft_commit_work(d);
		break;
	case DOP_ABORT:
		break;
	}
	if (r < 0 || d->op == DOP_ABORT)
		store__tf_withdraw(d->st, &d->tf, d->folder, d->m->id,
			&d->notes);
	d->step_err = r;
}

/* Queue the draft's next step (loop). */
static int
draft_queue(struct store_draft *d, enum draft_op op)
{
	int r;

	d->op = op;
	d->step_err = 0;
	if ((r = uv_queue_work(d->st->loop, &d->req, draft_work,
	    draft_after)) < 0)
		return r;
	d->busy = true;
	return 0;
}

/* Free a draft that is over; true when the store must go after it. */
static bool
draft_free(struct store_draft *d)
{
	struct store *st = d->st;

	store__notes_flush(st, &d->notes);
	st->inflight--;
	store_msg_free(d->m);
	store__tf_free(&d->tf);
	buf_free(&d->head);
	buf_free(&d->chunk);
	free(d->folder);
	free(d->unlink_after);
	free(d);
	return store__work_done(st);
}

/* Loop: S1 -> S0 when no step is in flight (else when it ends). */
static void
draft_give_up(struct store_draft *d)
{
	struct store *st = d->st;

	if (d->tf.fd < 0 && !d->tf.have_tmp) {
		/* nothing on disk yet */
		if (draft_free(d))
			store__free(st);
		return;
	}
	if (draft_queue(d, DOP_ABORT) == 0)
		return;
	/* no pool: the ID.tmp stays and goes at the next recovery */
	if (d->tf.fd >= 0)
		close(d->tf.fd);
	d->tf.fd = -1;
	if (draft_free(d))
		store__free(st);
}

/* Loop: a commit step ended. */
static void
draft_committed(struct store_draft *d, int err)
{
	struct store *st = d->st;
	store_commit_cb cb = d->commit_cb;
	void *arg = d->arg;
	struct store_msg *m = NULL;
	bool last;

	if (err == 0) {
		st->live++;
		st->commits++;
		m = d->m;
		d->m = NULL;
	} else if (st->log) {
		log_msg(st->log, LOG_QUEUE, LOG_FAILURES, "id=%s cannot be "
			"queued: %s", d->m->id, strerror(-err));
	}
	last = draft_free(d);
	cb(arg, err, m);
	if (last)
		store__free(st);
}

/* Loop: a draft's step ended. */
static void
draft_after(uv_work_t *req, int status)
{
	struct store_draft *d = req->data;
	struct store *st = d->st;
	int err = status < 0 ? status : d->step_err;
	bool last;

	d->busy = false;
	store__notes_flush(st, &d->notes);
	if (d->op == DOP_COMMIT) {
		draft_committed(d, err);
		return;
	}
	if (d->op == DOP_ABORT) {
		if ((last = draft_free(d)))
			store__free(st);
		return;
	}
	if (err < 0 && d->err == 0)
		d->err = err;
	if (d->aborted) {
		draft_give_up(d);
		return;
	}
	if (d->op == DOP_COPY && err == 0 && !d->copy_done) {
		/* the next slice goes behind whatever else the pool has */
		if ((err = draft_queue(d, DOP_COPY)) == 0)
			return;
		d->err = err;
	}
	d->cb(d->arg, err, d->op == DOP_COPY ? d->copied : d->step_n);
}

/* Begin a streamed message. */
int
store_draft_open(struct store *st, struct envelope *env, struct buf *head,
	unsigned flags, struct store_draft **out)
{
	struct store_draft *d;
	int r;

	if (st == NULL || env == NULL || out == NULL)
		return -EINVAL;
	if ((r = store__commit_allowed(st, flags)) < 0)
		return r;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -ENOMEM;
	if ((r = store__msg_place(st, &d->m, &d->folder)) < 0) {
		free(d);
		return r;
	}
	d->tf = (struct tmpfile)TMPFILE_INIT;
	d->req.data = d;
	d->st = st;
	d->src = -1;
	d->m->env = *env;
	if ((d->m->env.uid[0] == '\0' &&
	    (r = envelope_new_uid(d->m->env.uid)) < 0) ||
	    (r = envelope_reserve(&d->m->env, &d->room)) < 0) {
		envelope_init(&d->m->env);	/* env stays the caller's */
		store_msg_free(d->m);
		free(d->folder);
		free(d);
		return r;
	}
	envelope_init(env);
	if (head != NULL) {
		d->head = *head;
		*head = (struct buf)BUF_INIT;
	}
	st->inflight++;
	st->busy++;		/* the draft itself, until commit or abort */
	*out = d;
	return 0;
}

/* Append the bytes of b to the message. */
int
store_draft_write(struct store_draft *d, struct buf *b, store_draft_cb cb,
	void *arg)
{
	int r;

	if (d == NULL || b == NULL || cb == NULL || d->aborted)
		return -EINVAL;
	if (d->busy)
		return -EBUSY;
	d->chunk = *b;
	d->step_n = b->len;
	d->cb = cb;
	d->arg = arg;
	if ((r = draft_queue(d, DOP_WRITE)) < 0) {
		d->chunk = (struct buf)BUF_INIT;
		return r;
	}
	*b = (struct buf)BUF_INIT;
	return 0;
}

/* Append fd's bytes from off to its end. */
int
store_draft_copy(struct store_draft *d, int fd, uint64_t off, uint64_t max,
	unsigned flags, store_draft_cb cb, void *arg)
{
	if (d == NULL || fd < 0 || cb == NULL || d->aborted ||
	    (flags & ~(unsigned)STORE_COPY_CRLF) || off > (uint64_t)LLONG_MAX)
		return -EINVAL;
	if (d->busy)
		return -EBUSY;
	d->src = fd;
	d->src_off = off;
	d->src_max = max;
	d->copied = 0;
	d->copy_flags = flags;
	d->cr = false;
	d->copy_done = false;
	d->cb = cb;
	d->arg = arg;
	return draft_queue(d, DOP_COPY);
}

/* S1 -> S2: write the envelope, make the file durable. */
int
store_draft_commit(struct store_draft *d, const char *unlink_after,
	store_commit_cb cb, void *arg)
{
	int r;

	if (d == NULL || cb == NULL || d->aborted)
		return -EINVAL;
	if (d->busy)
		return -EBUSY;
	if (unlink_after && (d->unlink_after = strdup(unlink_after)) == NULL)
		return -ENOMEM;
	d->commit_cb = cb;
	d->arg = arg;
	if ((r = draft_queue(d, DOP_COMMIT)) < 0) {
		free(d->unlink_after);
		d->unlink_after = NULL;
	}
	return r;
}

/* S1 -> S0: give up the draft. */
void
store_draft_abort(struct store_draft *d)
{
	if (d == NULL || d->aborted)
		return;
	d->aborted = true;
	if (!d->busy)
		draft_give_up(d);
}

/* The draft's queue ID. */
const char *
store_draft_id(const struct store_draft *d)
{
	return d->m->id;
}

/* Message bytes written so far. */
uint64_t
store_draft_size(const struct store_draft *d)
{
	return d->written;
}
