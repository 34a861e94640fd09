/*
 * submit: the Submitted folder scanner (see submit.h). Owns BASE/Submitted
 * and the files in it until they are queued or renamed to .bad. Promises:
 * a file is read only through a descriptor opened without following
 * symlinks and checked to be a regular file with one link; its owner is
 * the submitting user; a file is taken only once it is complete by the
 * rules of subready.h, and one that changed while it was read is retried,
 * never renamed .bad; one that cannot be read (the daemon user may not) is
 * left in place, logged once, and taken once it can be read; NAME.sub
 * disappears only after its queue file is durable; memory per file is
 * bounded (a small file is read whole, a larger one keeps only its header
 * in memory and its body is copied by the store in chunks); reading runs
 * on the thread pool, never on the loop thread. Notifications (inotify)
 * are hints; the directory scan is the truth.
 *
 * This file: the folder (open, forget, scans, notifications, timers,
 * start and stop). Reading a file is in submit_read.c, what happens to
 * it once read in submit_job.c; shared structures in submit_int.h.
 */
#include "submit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "envelope.h"
#include "msghdr.h"
#include "strv.h"
#include "submit_int.h"
#include "subready.h"

/* Does name end in ext? */
static bool
ends_with(const char *name, const char *ext)
{
	size_t n = strlen(name), e = strlen(ext);

	return n > e && strcmp(name + n - e, ext) == 0;
}

/* Free what a submit owns besides its handles (which must be closed). */
static void
submit_release(struct submit *sb)
{
	struct forget *f;

	while ((f = sb->forget) != NULL) {
		sb->forget = f->next;
		free(f->name);
		free(f);
	}
	strv_free(&sb->pending);
	strv_free(&sb->inflight);
	subready_free(sb->ready);
	if (sb->ifd >= 0)
		close(sb->ifd);
	if (sb->dirfd >= 0)
		close(sb->dirfd);
	free(sb->dir);
	free(sb->hostname);
	free(sb->default_domain);
	free(sb);
}

/* Prepare BASE/Submitted with the right owner and mode. */
int
submit_open(uv_loop_t *loop, const struct submit_settings *s,
	struct enqueue *eq, struct store *st, struct logger *lg,
	struct submit **out)
{
	struct submit *sb = calloc(1, sizeof(*sb));
	struct buf p = BUF_INIT;
	struct stat stb;
	int r;

	if (sb == NULL)
		return -ENOMEM;
	sb->loop = loop;
	sb->s = *s;
	sb->eq = eq;
	sb->st = st;
	sb->log = lg;
	sb->dirfd = -1;
	sb->ifd = -1;
	sb->rs.settle_ms = s->scan_interval_s * 1000 < SUBMIT_SETTLE_MAX_MS ?
		s->scan_interval_s * 1000 : SUBMIT_SETTLE_MAX_MS;
	sb->rs.grace_ms = SUBMIT_GRACE_MS;
	sb->rs.max_names = SUBMIT_MAX_NAMES;
	if ((r = subready_new(&sb->rs, &sb->ready)) < 0)
		goto fail;
	if ((r = buf_printf(&p, "%s/Submitted", s->base_dir)) < 0 ||
	    (r = buf_steal(&p, &sb->dir)) < 0 ||
	    (sb->hostname = strdup(s->hostname)) == NULL ||
	    (sb->default_domain = strdup(s->default_domain)) == NULL) {
		r = r < 0 ? r : -ENOMEM;
		goto fail;
	}
	sb->s.hostname = sb->hostname;
	sb->s.default_domain = sb->default_domain;
	if (mkdir(sb->dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		log_msg(lg, LOG_SUBMIT, LOG_FAILURES, "cannot create %s: %s",
			sb->dir, strerror(errno));
		goto fail;
	}
	sb->dirfd = open(sb->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		O_CLOEXEC);
	if (sb->dirfd < 0 || fstat(sb->dirfd, &stb) < 0) {
		r = -errno;
		log_msg(lg, LOG_SUBMIT, LOG_FAILURES, "cannot open %s: %s",
			sb->dir, strerror(errno));
		goto fail;
	}
	if (s->set_owner) {
		gid_t g = s->submit_gid == (gid_t)-1 ? 0 : s->submit_gid;

		if ((stb.st_uid != 0 || stb.st_gid != g) &&
		    fchown(sb->dirfd, 0, g) < 0) {
			r = -errno;
			goto fail;
		}
		if ((stb.st_mode & 07777) != 01730) {
			if (fchmod(sb->dirfd, 01730) < 0) {
				r = -errno;
				goto fail;
			}
			log_msg(lg, LOG_SUBMIT, LOG_PROBLEMS,
				"%s set to mode 1730 (was %04o)", sb->dir,
				(unsigned)(stb.st_mode & 07777));
		}
		if (s->submit_gid == (gid_t)-1)
			log_msg(lg, LOG_SUBMIT, LOG_PROBLEMS,
				"group %s does not exist: only root can submit "
				"through %s", "mailpipe-submit", sb->dir);
	}
	uv_timer_init(loop, &sb->timer);
	uv_timer_init(loop, &sb->settle);
	sb->timer.data = sb->settle.data = sb->scan_req.data = sb;
	TAILQ_INIT(&sb->jobs);
	sb->open_handles = 2;
	*out = sb;
	return 0;
fail:
	submit_release(sb);
	return r;
}

/* Remember a .sub that is already queued. */
int
submit_forget(struct submit *sb, const char *name, dev_t dev, ino_t ino)
{
	struct forget *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->name = strdup(name)) == NULL) {
		free(f);
		return -ENOMEM;
	}
	f->dev = dev;
	f->ino = ino;
	f->next = sb->forget;
	sb->forget = f;
	return 0;
}

/* Is (name, dev, ino) a file that was queued already? */
bool
submit__forgotten(const struct submit *sb, const char *name, dev_t dev,
	ino_t ino)
{
	for (const struct forget *f = sb->forget; f; f = f->next)
		if (f->dev == dev && f->ino == ino &&
		    strcmp(f->name, name) == 0)
			return true;
	return false;
}

/* Call the stopped callback when idle. */
void
submit__check_stopped(struct submit *sb)
{
	submit_stopped_cb cb = sb->stopped_cb;

	if (!sb->stopping || sb->scanning || sb->inflight.n > 0 ||
	    sb->closing > 0 || cb == NULL)
		return;
	sb->stopped_cb = NULL;
	cb(sb->stopped_arg);
}

/* Start jobs for pending names while there is room. */
void
submit__pump(struct submit *sb)
{
	while (!sb->stopping && sb->inflight.n < SUBMIT_IN_FLIGHT &&
	    sb->next < sb->pending.n) {
		const char *name = sb->pending.v[sb->next];

		if (store_full(sb->st)) {
			if (!sb->full_logged)
				log_msg(sb->log, LOG_SUBMIT, LOG_PROBLEMS,
					"queue limit reached: %zu Submitted "
					"files wait", sb->pending.n - sb->next);
			sb->full_logged = true;
			strv_free(&sb->pending);
			sb->next = 0;
			break;
		}
		sb->full_logged = false;
		sb->next++;
		if (strv_find(&sb->inflight, name) >= 0)
			continue;
		if (submit__start_job(sb, name) < 0)
			break;
	}
	if (sb->next >= sb->pending.n && sb->pending.n > 0) {
		strv_free(&sb->pending);
		sb->next = 0;
	}
	if (sb->rescan && !sb->scanning && sb->pending.n == 0 &&
	    !sb->stopping)
		submit__start_scan(sb);
	submit__check_stopped(sb);
}

/* qsort comparison of two names. */
static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory listing arrived. */
static void
on_scandir(uv_fs_t *req)
{
	struct submit *sb = req->data;
	uv_dirent_t ent;
	struct strv names = STRV_INIT;
	bool ok = req->result >= 0;

	sb->scanning = false;
	if (!ok) {
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES, "cannot scan %s: %s",
			sb->dir, uv_strerror((int)req->result));
	} else {
		while (uv_fs_scandir_next(req, &ent) != UV_EOF)
			if (ends_with(ent.name, ".sub") &&
			    strv_push(&names, ent.name) < 0) {
				ok = false;
				break;
			}
	}
	uv_fs_req_cleanup(req);
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(*names.v), cmp_names);
	/* the listing is the truth: what it lacks is gone */
	if (ok)
		subready_prune(sb->ready, &names, sb->scan_mark);
	strv_free(&sb->pending);
	sb->pending = names;
	sb->next = 0;
	submit__pump(sb);
}

/* List the folder (on the thread pool). */
void
submit__start_scan(struct submit *sb)
{
	if (sb->stopping)
		return;
	if (sb->scanning || sb->pending.n > 0) {
		sb->rescan = true;
		return;
	}
	sb->rescan = false;
	sb->scanning = true;
	sb->scan_mark = subready_mark(sb->ready);
	if (uv_fs_scandir(sb->loop, &sb->scan_req, sb->dir, 0,
	    on_scandir) < 0)
		sb->scanning = false;
}

/* Stop listening to notifications (the scans go on). */
static void
watch_off(struct submit *sb)
{
	if (!sb->ev_on)
		return;
	sb->ev_on = false;
	uv_poll_stop(&sb->ipoll);
}

/* One notification: a hint about one name, or about the folder. */
static void
on_event(struct submit *sb, const struct inotify_event *ev)
{
	const char *name = ev->len ? ev->name : NULL;

	if (ev->mask & IN_Q_OVERFLOW) {
		/* hints were lost: only the settle rule is safe now */
		log_msg(sb->log, LOG_SUBMIT, LOG_PROBLEMS, "too many "
			"notifications for %s: some were lost", sb->dir);
		subready_lost(sb->ready);
		submit__start_scan(sb);
		return;
	}
	if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
		log_msg(sb->log, LOG_SUBMIT, LOG_PROBLEMS, "%s was removed or "
			"moved: no more notifications, scanning every %llus",
			sb->dir, (unsigned long long)sb->s.scan_interval_s);
		subready_lost(sb->ready);
		watch_off(sb);
		return;
	}
	if (name == NULL || (ev->mask & IN_ISDIR) || !ends_with(name, ".sub"))
		return;
	if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
		subready_hint(sb->ready, name, SUBREADY_GONE);
	} else if (ev->mask & IN_MOVED_TO) {
		subready_hint(sb->ready, name, SUBREADY_MOVED_IN);
		submit__start_scan(sb);
	} else if (ev->mask & IN_CLOSE_WRITE) {
		subready_hint(sb->ready, name, SUBREADY_CLOSED);
		submit__start_scan(sb);
	} else if (ev->mask & (IN_CREATE | IN_MODIFY)) {
		/* a writer has it open: nothing to scan for yet */
		subready_hint(sb->ready, name, SUBREADY_WRITTEN);
	}
}

/* The inotify descriptor is readable: every queued event, in order. */
static void
on_inotify(uv_poll_t *h, int status, int events)
{
	struct submit *sb = h->data;
	/* the kernel hands out whole events: this holds at least one */
	char b[SUBMIT_EVENTS]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)events;
	if (status < 0) {
		log_msg(sb->log, LOG_SUBMIT, LOG_PROBLEMS, "notifications for "
			"%s failed (%s): scanning every %llus", sb->dir,
			uv_strerror(status),
			(unsigned long long)sb->s.scan_interval_s);
		watch_off(sb);
		return;
	}
	while ((n = read(sb->ifd, b, sizeof(b))) > 0) {
		for (ssize_t off = 0; off < n;) {
			const struct inotify_event *ev =
				(const struct inotify_event *)(b + off);

			on_event(sb, ev);
			off += (ssize_t)(sizeof(*ev) + ev->len);
			if (!sb->ev_on)
				return;
		}
	}
}

/* Watch the folder: renames in, closes after writing, writes, removals. */
static int
watch_on(struct submit *sb)
{
	int r;

	sb->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (sb->ifd < 0)
		return -errno;
	if (inotify_add_watch(sb->ifd, sb->dir, IN_MOVED_TO | IN_CLOSE_WRITE |
	    IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM |
	    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK) < 0 ||
	    (errno = -uv_poll_init(sb->loop, &sb->ipoll, sb->ifd)) != 0) {
		r = -errno;
		close(sb->ifd);
		sb->ifd = -1;
		return r;
	}
	sb->ipoll.data = sb;
	sb->open_handles++;
	if ((r = uv_poll_start(&sb->ipoll, UV_READABLE, on_inotify)) < 0)
		return r;
	sb->ev_on = true;
	return 0;
}

/* The scan interval passed. */
static void
on_timer(uv_timer_t *t)
{
	submit__start_scan(t->data);
}

/* Begin watching and scanning. */
int
submit_start(struct submit *sb)
{
	uint64_t every = sb->s.scan_interval_s * 1000;
	int r;

	r = watch_on(sb);
	if (r < 0)
		log_msg(sb->log, LOG_SUBMIT, LOG_PROBLEMS,
			"no notifications for %s (%s): scanning every %llus",
			sb->dir, strerror(-r),
			(unsigned long long)sb->s.scan_interval_s);
	uv_timer_start(&sb->timer, on_timer, every, every);
	sb->started = true;
	submit__start_scan(sb);
	return 0;
}

/* Scan soon. */
void
submit_poke(struct submit *sb)
{
	if (sb->started)
		submit__start_scan(sb);
}

/* Stop picking up files. */
void
submit_stop(struct submit *sb, submit_stopped_cb cb, void *arg)
{
	sb->stopping = true;
	sb->stopped_cb = cb;
	sb->stopped_arg = arg;
	watch_off(sb);
	uv_timer_stop(&sb->timer);
	uv_timer_stop(&sb->settle);
	strv_free(&sb->pending);
	sb->next = 0;
	submit__check_stopped(sb);
}

/* Free once every handle is closed. */
static void
on_closed(uv_handle_t *h)
{
	struct submit *sb = h->data;

	if (--sb->open_handles > 0)
		return;
	submit_release(sb);
}

/* Close the handles; memory goes when they are closed. */
void
submit_close(struct submit *sb)
{
	if (sb == NULL)
		return;
	if (sb->ifd >= 0)
		uv_close((uv_handle_t *)&sb->ipoll, on_closed);
	uv_close((uv_handle_t *)&sb->timer, on_closed);
	uv_close((uv_handle_t *)&sb->settle, on_closed);
}
