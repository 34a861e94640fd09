/*
 * foreign: the ForeignQueue importer (see foreign.h). Owns nothing but its
 * timer and the list of files found by the last scan; every move into
 * Queue/ is made by enqueue_import (store_import, then the scheduler).
 * Promises: only .msg files are imported and only .tmp files deleted;
 * directory walking runs on the thread pool.
 */
#include "foreign.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "strv.h"

#define FOREIGN_IN_FLIGHT 4
#define FOREIGN_MAX_DEPTH 8

struct foreign {
	uv_loop_t *loop;
	char *dir;			/* BASE/ForeignQueue */
	uint64_t every_ms;
	struct enqueue *eq;
	struct logger *log;
	uv_timer_t timer;
	bool scanning, stopping, full_logged;
	struct strv todo;		/* absolute .msg paths to import */
	size_t next;
	unsigned inflight;
	size_t imported, corrupt;
	foreign_stopped_cb stopped_cb;
	void *stopped_arg;
};

/* A directory walk on the thread pool. */
struct walk {
	uv_work_t w;
	struct foreign *f;
	bool exists;
	struct strv msgs;
	size_t tmp_removed, others;
	int err;
};

static void pump(struct foreign *f);

/* Does name end in ext? */
static bool
ends_with(const char *name, const char *ext)
{
	size_t n = strlen(name), e = strlen(ext);

	return n > e && strcmp(name + n - e, ext) == 0;
}

/* Open the importer. */
int
foreign_open(uv_loop_t *loop, const char *base_dir, uint64_t scan_interval_s,
	struct enqueue *eq, struct logger *lg, struct foreign **out)
{
	struct foreign *f = calloc(1, sizeof(*f));
	struct buf p = BUF_INIT;

	if (f == NULL)
		return -ENOMEM;
	if (buf_printf(&p, "%s/ForeignQueue", base_dir) < 0 ||
	    buf_steal(&p, &f->dir) < 0) {
		buf_free(&p);
		free(f);
		return -ENOMEM;
	}
	f->loop = loop;
	f->every_ms = scan_interval_s * 1000;
	f->eq = eq;
	f->log = lg;
	uv_timer_init(loop, &f->timer);
	f->timer.data = f;
	*out = f;
	return 0;
}

/* Walk one directory level: collect .msg, delete .tmp, recurse. */
static void
walk_dir(struct walk *wk, const char *path, int depth)
{
	DIR *d = opendir(path);
	struct dirent *de;
	struct buf child = BUF_INIT;

	if (d == NULL) {
		if (depth == 0 && errno != ENOENT)
			wk->err = -errno;
		return;
	}
	if (depth == 0)
		wk->exists = true;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		buf_reset(&child);
		if (buf_printf(&child, "%s/%s", path, de->d_name) < 0)
			break;
		if (lstat(child.data, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth < FOREIGN_MAX_DEPTH)
				walk_dir(wk, child.data, depth + 1);
		} else if (!S_ISREG(st.st_mode)) {
			wk->others++;
		} else if (ends_with(de->d_name, ".msg")) {
			strv_push(&wk->msgs, child.data);
		} else if (ends_with(de->d_name, ".tmp")) {
			if (unlink(child.data) == 0)
				wk->tmp_removed++;
		} else {
			wk->others++;
		}
	}
	closedir(d);
	buf_free(&child);
}

/* Worker: walk ForeignQueue. */
static void
work_walk(uv_work_t *w)
{
	struct walk *wk = w->data;

	walk_dir(wk, wk->f->dir, 0);
}

/* qsort comparison of paths. */
static int
cmp_paths(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Call the stopped callback when idle. */
static void
check_stopped(struct foreign *f)
{
	foreign_stopped_cb cb = f->stopped_cb;

	if (!f->stopping || f->scanning || f->inflight > 0 || cb == NULL)
		return;
	f->stopped_cb = NULL;
	cb(f->stopped_arg);
}

/* Loop: the walk is over; import what it found. */
static void
after_walk(uv_work_t *w, int status)
{
	struct walk *wk = w->data;
	struct foreign *f = wk->f;

	f->scanning = false;
	if (wk->err < 0)
		log_msg(f->log, LOG_QUEUE, LOG_FAILURES, "cannot read %s: %s",
			f->dir, strerror(-wk->err));
	if (wk->tmp_removed)
		log_msg(f->log, LOG_QUEUE, LOG_MAJOR,
			"ForeignQueue: removed %zu .tmp files", wk->tmp_removed);
	if (wk->msgs.n > 1)
		qsort(wk->msgs.v, wk->msgs.n, sizeof(*wk->msgs.v), cmp_paths);
	strv_free(&f->todo);
	f->todo = wk->msgs;
	f->next = 0;
	if (wk->exists && f->todo.n > 0)
		log_msg(f->log, LOG_QUEUE, LOG_MAJOR,
			"ForeignQueue: importing %zu messages", f->todo.n);
	free(wk);
	pump(f);
}

/* One import finished (the scheduler has the message). */
static void
on_imported(void *arg, int err, const char *id)
{
	struct foreign *f = arg;

	f->inflight--;
	if (err == 0) {
		f->imported++;
		log_msg(f->log, LOG_QUEUE, LOG_MAJOR,
			"ForeignQueue: imported as id=%s", id);
	} else if (err == -EBADMSG) {
		f->corrupt++;
	} else if (err == -EALREADY) {
		log_msg(f->log, LOG_QUEUE, LOG_MAJOR, "ForeignQueue: a message "
			"whose recipients were all final was removed");
	} else {
		log_msg(f->log, LOG_QUEUE, LOG_FAILURES,
			"ForeignQueue: import failed: %s (left in place)%s",
			strerror(-err), err == -EPERM || err == -EACCES ?
			"; the folder and its files must belong to the daemon "
			"user (chown -R it, or restart: the root part gives "
			"them to it at start)" : "");
	}
	pump(f);
}

/* Start imports while there is room. */
static void
pump(struct foreign *f)
{
	int r;

	while (!f->stopping && f->inflight < FOREIGN_IN_FLIGHT &&
	    f->next < f->todo.n) {
		r = enqueue_import(f->eq, f->todo.v[f->next], on_imported, f);
		if (r == -ENOSPC) {
			if (!f->full_logged)
				log_msg(f->log, LOG_QUEUE, LOG_PROBLEMS,
					"queue limit reached: ForeignQueue "
					"import waits");
			f->full_logged = true;
			f->next = f->todo.n;
			break;
		}
		f->full_logged = false;
		f->next++;
		if (r == 0)
			f->inflight++;
	}
	if (f->inflight == 0 && f->next >= f->todo.n && f->todo.n > 0) {
		if (f->next == f->todo.n && !f->full_logged)
			log_msg(f->log, LOG_QUEUE, LOG_MAJOR,
				"ForeignQueue: done, %zu imported, %zu corrupt "
				"(moved to Queue/corrupt); the folder can be "
				"removed", f->imported, f->corrupt);
		strv_free(&f->todo);
		f->next = 0;
		f->imported = f->corrupt = 0;
	}
	check_stopped(f);
}

/* Start a walk unless one is running or imports are pending. */
static void
scan(struct foreign *f)
{
	struct walk *wk;

	if (f->scanning || f->stopping || f->todo.n > 0)
		return;
	if ((wk = calloc(1, sizeof(*wk))) == NULL)
		return;
	wk->f = f;
	wk->w.data = wk;
	f->scanning = true;
	if (uv_queue_work(f->loop, &wk->w, work_walk, after_walk) < 0) {
		f->scanning = false;
		free(wk);
	}
}

/* Timer tick. */
static void
on_timer(uv_timer_t *t)
{
	scan(t->data);
}

/* Scan now and every interval. */
int
foreign_start(struct foreign *f)
{
	uv_timer_start(&f->timer, on_timer, f->every_ms, f->every_ms);
	scan(f);
	return 0;
}

/* Stop importing. */
void
foreign_stop(struct foreign *f, foreign_stopped_cb cb, void *arg)
{
	f->stopping = true;
	f->stopped_cb = cb;
	f->stopped_arg = arg;
	uv_timer_stop(&f->timer);
	f->next = f->todo.n;
	check_stopped(f);
}

/* Free after the timer handle closed. */
static void
on_closed(uv_handle_t *h)
{
	struct foreign *f = h->data;

	strv_free(&f->todo);
	free(f->dir);
	free(f);
}

/* Close. */
void
foreign_close(struct foreign *f)
{
	if (f)
		uv_close((uv_handle_t *)&f->timer, on_closed);
}
