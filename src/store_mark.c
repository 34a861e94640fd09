/*
 * store_mark: a recipient's final state (S2 -> S3: one state byte
 * overwritten in place, checked first, fdatasynced), the removal of a
 * finished file (S3 -> S4: unlink, group-committed directory fsync) and
 * the journal after the message (docs/QUEUE.md "Journal": attempt records
 * appended and fdatasynced, one append at a time per message, a record
 * cut short by a crash or a failed write cut off before the next). The
 * in-memory state changes at once; the caller hears when it is durable.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "store_int.h"
#include "text.h"

/* A mark or note in flight (or waiting for the message's last append). */
struct store_mark_job {
	uv_work_t req;
	struct store_mark_job *next;	/* m->apq list */
	struct buf rec;		/* journal record to append, or empty */
	uint64_t end;		/* where it goes: the journal's end */
	bool byte;		/* write the state byte */
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

/* Overwrite the state byte at off of fd, after checking it is one. */
static int
put_state(int fd, size_t off, char state)
{
	char cur[6];
	ssize_t n;

	if (off < 5 || off > (size_t)LLONG_MAX)
		return -EINVAL;
	n = pread(fd, cur, sizeof(cur), (off_t)(off - 5));
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(cur) || memcmp(cur, "rcpt ", 5) != 0 ||
	    (cur[5] != RCPT_PENDING && cur[5] != RCPT_DELIVERED &&
	    cur[5] != RCPT_FAILED))
		return -EBADMSG;	/* never write where no state byte is */
	if ((n = pwrite(fd, &state, 1, (off_t)off)) != 1)
		return n < 0 ? -errno : -EIO;
	return 0;
}

/*
 * Append rec at end (first cutting off whatever lies past end: a record
 * cut short by a crash); a failed write is cut off again.
 */
static int
put_record(int fd, const struct buf *rec, uint64_t end)
{
	struct stat sb;
	int r;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if ((uint64_t)sb.st_size < end)
		return -EBADMSG;	/* shorter than what we wrote */
	if ((uint64_t)sb.st_size > end && ftruncate(fd, (off_t)end) < 0)
		return -errno;
	if ((r = fdio_pwrite(fd, rec->data, rec->len, end)) < 0 &&
	    ftruncate(fd, (off_t)end) < 0)
		return -errno;
	return r;
}

/*
 * Append the record (if any), write the state byte (if byte) and
 * fdatasync, in one open of name.
 */
static int
write_state(int dirfd, const char *name, const struct store_mark_job *j)
{
	int fd, r = 0;

	fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (j->rec.len > 0)
		r = put_record(fd, &j->rec, j->end);
	if (r == 0 && j->byte)
		r = put_state(fd, j->off, j->state);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* Pool: S2 -> S3 (one state byte) or S2/S3 -> S4 (unlink, dir fsync). */
static void
mark_work(uv_work_t *req)
{
	struct store_mark_job *j = req->data;
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
			if (write_state(d->fd, j->name, j) == 0) {
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
	r = write_state(d->fd, j->name, j);
	if (r == -ENOENT) {
		/* a later mark may have removed it: make that durable too */
		int s = store__sdir_sync(st, d);

		if (s < 0)
			r = s;
	}
out:
	j->err = r;
}

static void mark_after(uv_work_t *req, int status);

/*
 * Does j run in the message's one-at-a-time order (it appends a record,
 * or removes the file that a waiting append would write)?
 */
static bool
job_serial(const struct store_mark_job *j)
{
	return j->rec.len > 0 || j->remove;
}

/* Loop: hand j to the pool (its record goes at the journal's end now). */
static int
job_start(struct store_mark_job *j)
{
	struct store_msg *m = j->m;
	int r;

	j->end = m->jend ? m->jend : m->msg_off + m->msg_len;
	if ((r = uv_queue_work(j->st->loop, &j->req, mark_work,
	    mark_after)) < 0)
		return r;
	if (job_serial(j))
		m->appending = true;
	return 0;
}

/* Loop: j's append is over: start the message's next waiting job. */
static void
job_next(struct store_msg *m)
{
	struct store_mark_job *n;

	m->appending = false;
	while ((n = m->apq_head) != NULL && !m->appending) {
		int r;

		if ((m->apq_head = n->next) == NULL)
			m->apq_tail = NULL;
		if ((r = job_start(n)) < 0) {
			/* cannot happen with a live loop; report, do not hang */
			n->err = r;
			mark_after(&n->req, r);
		}
	}
}

/* Free a job. */
static void
job_free(struct store_mark_job *j)
{
	buf_free(&j->rec);
	free(j->folder);
	free(j);
}

/* Loop: a mark finished. */
static void
mark_after(uv_work_t *req, int status)
{
	struct store_mark_job *j = req->data;
	struct store *st = j->st;
	struct store_msg *m = j->m;
	int err = status < 0 ? status : j->err;
	bool removed = j->removed, last, serial = job_serial(j);

	store__notes_flush(st, &j->notes);
	if (j->removed && st->live > 0)
		st->live--;
	if (err == -ENOENT && m->pending == 0) {
		/* removed by the mark of the last recipient */
		err = 0;
		removed = true;
	}
	if (err < 0)
		removed = false;
	if (err == 0 && j->rec.len > 0)
		m->jend = j->end + j->rec.len;
	m->marks--;
	last = store__work_done(st);
	if (serial)
		job_next(m);
	j->cb(j->arg, err, removed);
	job_free(j);
	if (last)
		store__free(st);
}

/* Keep a's record in m->hist (parsed back from rec: as on disk). */
static int
hist_note(struct store_msg *m, const struct buf *rec)
{
	const char *why;
	unsigned line;
	size_t used;

	if (m->hist == NULL &&
	    (m->hist = calloc(m->env.nrcpt, sizeof(*m->hist))) == NULL)
		return -ENOMEM;
	return store__hist_parse(rec->data, rec->len, m->env.nrcpt, m->hist,
		&used, &why, &line);
}

/*
 * A new job on m for recipient rcpt: the record of rec (may be NULL)
 * formatted, the folder and name found. Unless final_ok, rcpt must be
 * pending.
 */
static int
job_new(struct store *st, struct store_msg *m, size_t rcpt,
	const struct journal_attempt *rec, bool final_ok, store_mark_cb cb,
	void *arg, struct store_mark_job **out)
{
	struct store_mark_job *j;
	const char *rel, *slash;
	int r;

	if (st == NULL || m == NULL || cb == NULL || rcpt >= m->env.nrcpt ||
	    m->relpath == NULL || strncmp(m->relpath, "Queue/", 6) != 0 ||
	    (rec && rec->rcpt != rcpt))
		return -EINVAL;
	if (st->closing)
		return -EBUSY;
	if (!final_ok && (m->env.rcpt[rcpt].state != RCPT_PENDING ||
	    m->pending == 0))
		return -EALREADY;
	if (m->gone)
		return -ENOENT;	/* removed or being removed */
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	rel = m->relpath + 6;
	slash = strrchr(rel, '/');
	j->folder = slash ? text_strndup(rel, (size_t)(slash - rel)) :
		strdup("");
	if (j->folder == NULL || (rec && (r = journal_format(rec,
	    &j->rec)) < 0)) {
		r = j->folder == NULL ? -ENOMEM : r;
		job_free(j);
		return r;
	}
	j->req.data = j;
	j->st = st;
	j->m = m;
	j->name = slash ? slash + 1 : rel;
	j->off = m->env.rcpt[rcpt].state_off;
	j->cb = cb;
	j->arg = arg;
	*out = j;
	return 0;
}

/* Run j now, or after the message's append in flight. */
static int
job_submit(struct store_mark_job *j)
{
	struct store_msg *m = j->m;
	int r;

	if (job_serial(j) && m->appending) {
		if (m->apq_tail)
			m->apq_tail->next = j;
		else
			m->apq_head = j;
		m->apq_tail = j;
	} else if ((r = job_start(j)) < 0) {
		return r;
	}
	m->marks++;
	j->st->busy++;
	return 0;
}

/* Record recipient rcpt's final state. */
int
store_mark(struct store *st, struct store_msg *m, size_t rcpt,
	enum rcpt_state state, const struct journal_attempt *rec,
	store_mark_cb cb, void *arg)
{
	struct store_mark_job *j;
	bool last;
	int r;

	if (state != RCPT_DELIVERED && state != RCPT_FAILED)
		return -EINVAL;
	if (rec && rec->type != JOURNAL_ATTEMPT)
		return -EINVAL;
	last = m && m->pending == 1 && !m->keep;
	if ((r = job_new(st, m, rcpt, last ? NULL : rec, false, cb, arg,
	    &j)) < 0)
		return r;
	j->byte = true;
	j->state = (char)state;
	j->remove = last;
	if (last)
		m->gone = true;
	if (rec && !j->remove)
		(void)hist_note(m, &j->rec);	/* memory only; disk follows */
	if ((r = job_submit(j)) < 0) {
		job_free(j);
		return r;
	}
	/* the caller sees the new state at once; the disk follows */
	m->env.rcpt[rcpt].state = (char)state;
	m->pending--;
	return 0;
}

/* Append a deferral's or a `reported` record. */
int
store_note(struct store *st, struct store_msg *m,
	const struct journal_attempt *rec, store_mark_cb cb, void *arg)
{
	struct store_mark_job *j;
	int r;

	if (rec == NULL)
		return -EINVAL;
	/* a `reported` record follows a final state; a deferral may not */
	if ((r = job_new(st, m, rec->rcpt, rec, rec->type == JOURNAL_REPORTED,
	    cb, arg, &j)) < 0)
		return r;
	(void)hist_note(m, &j->rec);
	if ((r = job_submit(j)) < 0) {
		job_free(j);
		return r;
	}
	return 0;
}

/* Remove a kept file whose recipients are all final. */
int
store_remove(struct store *st, struct store_msg *m, store_mark_cb cb,
	void *arg)
{
	struct store_mark_job *j;
	int r;

	if (m == NULL || m->env.nrcpt == 0)
		return -EINVAL;
	if (m->pending != 0)
		return -EBUSY;
	if ((r = job_new(st, m, 0, NULL, true, cb, arg, &j)) < 0)
		return r;
	j->remove = true;	/* after the appends in flight (job_serial) */
	if ((r = job_submit(j)) < 0) {
		job_free(j);
		return r;
	}
	m->gone = true;
	return 0;
}
