/*
 * store_recover: the start-up scan (store_recover, docs/QUEUE.md
 * "Recovery"): stray ID.tmp removed (S1 -> S0), finished files removed
 * (S3 -> S4), corrupt files moved to Queue/corrupt/ (S5, never deleted,
 * never over another file) with a log line, modes fixed, live messages
 * handed over in ID order, new IDs allocated above every ID seen. All on
 * one pool job; the log lines are written on the loop.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"
#include "strv.h"

/* The recovery scan. */
struct recover_job {
	uv_work_t req;
	struct store *st;
	store_msg_cb found;
	store_scan_cb done;
	void *arg;
	struct store_msg **msgs;
	size_t nmsgs;
	size_t cap;
	size_t corrupt;
	uint64_t max_id;
	int err;
	struct notes notes;
};

/* Move dirfd/name into Queue/corrupt/ (S5), never over another file. */
int
store__quarantine(struct store *st, int dirfd, const char *name,
	struct buf *dest)
{
	const char *base = strrchr(name, '/');
	struct sdir *c;
	int r;

	base = base ? base + 1 : name;
	if ((r = store__sdir_get(st, CORRUPT_DIR, true, &c)) < 0)
		return r;
	for (unsigned i = 0;; i++) {
		buf_reset(dest);
		if ((r = i ? buf_printf(dest, "%s.%u", base, i) :
		    buf_puts(dest, base)) < 0)
			return r;
		r = store__rename_noreplace(dirfd, name, c->fd, dest->data);
		if (r != -EEXIST || i == UINT_MAX)
			break;
	}
	if (r == 0)
		r = store__sdir_sync(st, c);
	return r;
}

/* Log (as a note) why a file is corrupt and where it went. */
void
store__note_corrupt(struct notes *ns, const char *rel, const char *why,
	unsigned line, int moved, const struct buf *dest)
{
	struct buf where = BUF_INIT;

	if (line)
		buf_printf(&where, "line %u: ", line);
	if (moved == 0)
		store__notes_add(ns, LOG_FAILURES, "corrupt queue file %s "
			"(%s%s): moved to Queue/corrupt/%s", rel, where.data ?
			where.data : "", why, dest->data);
	else
		store__notes_add(ns, LOG_FAILURES, "corrupt queue file %s "
			"(%s%s): cannot move it to Queue/corrupt/: %s", rel,
			where.data ? where.data : "", why, strerror(-moved));
	buf_free(&where);
}

/* Add a found message to the scan result. */
static int
recover_push(struct recover_job *j, struct store_msg *m)
{
	if (j->nmsgs == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 64;
		struct store_msg **v = realloc(j->msgs, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		j->msgs = v;
		j->cap = cap;
	}
	j->msgs[j->nmsgs++] = m;
	return 0;
}

/* Recovery of one ID.msg in folder d; sets *changed when it unlinks. */
static void
recover_msg(struct recover_job *j, struct sdir *d, const char *rel,
	const char *name, bool *changed)
{
	struct store *st = j->st;
	struct store_msg *m = store__msg_new();
	struct buf dest = BUF_INIT;
	const char *why;
	unsigned line;
	bool fixed;
	int fd, r;

	if (m == NULL) {
		j->err = -ENOMEM;
		return;
	}
	fd = openat(d->fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
		O_NONBLOCK);
	if (fd < 0) {
		store__notes_add(&j->notes, LOG_FAILURES, "cannot open queue "
			"file %s: %s (left in place)", rel, strerror(errno));
		goto out;
	}
	r = store__load_envelope(fd, &m->env, &m->hist, &m->jend, &why,
	    &line);
	if (r == -EBADMSG) {
		/* S2/S3 -> S5: corrupt, kept for the postmaster */
		close(fd);
		fd = -1;
		r = store__quarantine(st, d->fd, name, &dest);
		if (r == 0)
			*changed = true;
		store__note_corrupt(&j->notes, rel, why, line, r, &dest);
		j->corrupt++;
		goto out;
	}
	if (r < 0) {
		store__notes_add(&j->notes, LOG_FAILURES, "cannot read queue "
			"file %s: %s (left in place)", rel, strerror(-r));
		goto out;
	}
	m->pending = envelope_pending(&m->env);
	if (m->pending == 0 && st->set.owes_report &&
	    st->set.owes_report(m, st->set.owes_arg)) {
		/* every recipient final, a report still owed: kept */
		m->keep = true;
	} else if (m->pending == 0) {
		/* S3 -> S4: every recipient final, the unlink was lost */
		if (unlinkat(d->fd, name, 0) == 0) {
			*changed = true;
			store__notes_add(&j->notes, LOG_LOWLEVEL, "removed %s: "
				"every recipient is final", rel);
		} else {
			store__notes_add(&j->notes, LOG_FAILURES, "cannot "
				"remove finished %s: %s", rel, strerror(errno));
		}
		goto out;
	}
	if ((r = store__fix_mode(fd, MODE_FILE, &fixed)) < 0)
		store__notes_add(&j->notes, LOG_FAILURES, "cannot set the "
			"mode of %s: %s", rel, strerror(-r));
	else if (fixed)
		store__notes_add(&j->notes, LOG_PROBLEMS, "%s had the wrong "
			"mode: fixed", rel);
	memcpy(m->id, name, STORE_ID_LEN);
	m->id[STORE_ID_LEN] = '\0';
	m->msg_off = m->env.header_len;
	m->msg_len = m->env.size;
	if ((r = store__msg_set_paths(st, m, d->name)) < 0 ||
	    (r = recover_push(j, m)) < 0) {
		j->err = r;
		goto out;
	}
	m = NULL;
out:
	if (fd >= 0)
		close(fd);
	buf_free(&dest);
	store_msg_free(m);
}

/* Names in the folder open at fd (read all first: we change the folder). */
static int
list_names(int fd, struct strv *out)
{
	DIR *dir;
	struct dirent *de;
	int dfd = dup(fd), r = 0;

	if (dfd < 0)
		return -errno;
	if ((dir = fdopendir(dfd)) == NULL) {
		r = -errno;
		close(dfd);
		return r;
	}
	rewinddir(dir);
	errno = 0;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if ((r = strv_push(out, de->d_name)) < 0)
			break;
		errno = 0;
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(dir);
	return r;
}

/* Note the highest ID among the names. */
static void
recover_ids(struct recover_job *j, const struct strv *names)
{
	for (size_t i = 0; i < names->n; i++) {
		uint64_t v = store__name_id(names->v[i], NULL);

		if (v > j->max_id)
			j->max_id = v;
	}
}

/* Scan one folder ("" = Queue/ itself) of the queue. */
static void
recover_folder(struct recover_job *j, const char *folder)
{
	struct store *st = j->st;
	struct strv names = STRV_INIT;
	struct buf rel = BUF_INIT;
	struct sdir *d;
	struct stat sb;
	bool changed = false, fixed, exact;
	int r;

	if ((r = store__sdir_get(st, folder, false, &d)) < 0 ||
	    (r = list_names(d->fd, &names)) < 0) {
		store__notes_add(&j->notes, LOG_FAILURES, "cannot read "
			"folder Queue/%s: %s", folder, strerror(-r));
		if (j->err == 0)
			j->err = r;
		goto out;
	}
	recover_ids(j, &names);
	if (folder[0]) {
		if ((r = store__fix_mode(d->fd, MODE_DIR, &fixed)) < 0)
			store__notes_add(&j->notes, LOG_FAILURES, "cannot set "
				"the mode of Queue/%s: %s", folder,
				strerror(-r));
		else if (fixed)
			store__notes_add(&j->notes, LOG_PROBLEMS, "folder "
				"Queue/%s had the wrong mode: fixed", folder);
	}
	for (size_t i = 0; i < names.n; i++) {
		const char *name = names.v[i];

		buf_reset(&rel);
		if ((r = buf_printf(&rel, "Queue/%s%s%s", folder,
		    folder[0] ? "/" : "", name)) < 0) {
			j->err = r;
			break;
		}
		if (fstatat(d->fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			store__notes_add(&j->notes, LOG_FAILURES, "cannot stat "
				"%s: %s", rel.data, strerror(errno));
			continue;
		}
		if (S_ISDIR(sb.st_mode)) {
			if (!folder[0] && strcmp(name, CORRUPT_DIR) == 0)
				continue;	/* scanned for IDs only */
			if (!folder[0])
				recover_folder(j, name);
			else
				store__notes_add(&j->notes, LOG_PROBLEMS,
					"folder %s is not part of the queue: "
					"left alone", rel.data);
			continue;
		}
		if (S_ISREG(sb.st_mode) && store__has_suffix(name, ".tmp")) {
			/* S1 -> S0: an interrupted commit, never announced */
			if (unlinkat(d->fd, name, 0) == 0) {
				changed = true;
				store__notes_add(&j->notes, LOG_PROBLEMS,
					"removed unfinished %s", rel.data);
			} else {
				store__notes_add(&j->notes, LOG_FAILURES,
					"cannot remove %s: %s", rel.data,
					strerror(errno));
			}
			continue;
		}
		if (S_ISREG(sb.st_mode) && store__name_id(name, &exact) != 0 &&
		    exact) {
			recover_msg(j, d, rel.data, name, &changed);
			continue;
		}
		store__notes_add(&j->notes, LOG_PROBLEMS, "%s is not a queue "
			"file: left alone", rel.data);
	}
	if (changed && (r = store__sdir_sync(st, d)) < 0)
		store__notes_add(&j->notes, LOG_FAILURES, "cannot fsync "
			"Queue/%s: %s", folder, strerror(-r));
out:
	strv_free(&names);
	buf_free(&rel);
}

/* Order of IDs (16 digits: text order is number order). */
static int
cmp_msg(const void *a, const void *b)
{
	const struct store_msg *x = *(struct store_msg *const *)a;
	const struct store_msg *y = *(struct store_msg *const *)b;

	return strcmp(x->id, y->id);
}

/* Pool: the whole recovery scan. */
static void
recover_work(uv_work_t *req)
{
	struct recover_job *j = req->data;
	struct store *st = j->st;
	struct strv names = STRV_INIT;
	struct sdir *c;
	bool fixed;
	int r;

	/* corrupt/ only contributes IDs (and its mode) */
	if ((r = store__sdir_get(st, CORRUPT_DIR, true, &c)) < 0 ||
	    (r = list_names(c->fd, &names)) < 0) {
		store__notes_add(&j->notes, LOG_FAILURES, "cannot read "
			"Queue/corrupt: %s", strerror(-r));
		j->err = r;
	} else {
		recover_ids(j, &names);
		if (store__fix_mode(c->fd, MODE_CORRUPT, &fixed) == 0 && fixed)
			store__notes_add(&j->notes, LOG_PROBLEMS, "folder "
				"Queue/corrupt had the wrong mode: fixed");
	}
	strv_free(&names);
	recover_folder(j, "");
	if (j->nmsgs > 1)
		qsort(j->msgs, j->nmsgs, sizeof(*j->msgs), cmp_msg);
}

/* Loop: hand the found messages over in ID order, then report. */
static void
recover_after(uv_work_t *req, int status)
{
	struct recover_job *j = req->data;
	struct store *st = j->st;
	int err = status < 0 ? status : j->err;
	bool last;

	store__notes_flush(st, &j->notes);
	st->recovering = false;
	if (j->max_id > st->last_id)
		st->last_id = j->max_id;
	st->live += j->nmsgs;
	if (st->log)
		log_msg(st->log, LOG_QUEUE, LOG_MAJOR, "recovery: %zu messages "
			"in the queue, %zu corrupt", j->nmsgs, j->corrupt);
	last = store__work_done(st);
	for (size_t i = 0; i < j->nmsgs; i++)
		j->found(j->arg, j->msgs[i]);
	j->done(j->arg, err, j->nmsgs, j->corrupt);
	free(j->msgs);
	free(j);
	if (last)
		store__free(st);
}

/* Start-up recovery of every queue folder. */
int
store_recover(struct store *st, store_msg_cb found, store_scan_cb done,
	void *arg)
{
	struct recover_job *j;
	int r;

	if (st == NULL || found == NULL || done == NULL)
		return -EINVAL;
	if (st->recovering || st->closing || st->busy > 0)
		return -EBUSY;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->req.data = j;
	j->st = st;
	j->found = found;
	j->done = done;
	j->arg = arg;
	if ((r = uv_queue_work(st->loop, &j->req, recover_work,
	    recover_after)) < 0) {
		free(j);
		return r;
	}
	st->recovering = true;
	st->busy++;
	return 0;
}
