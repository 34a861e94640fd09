/*
 * submit: the Submitted folder scanner (see submit.h). Owns BASE/Submitted
 * and the files in it until they are queued or renamed to .bad. Promises:
 * a file is read only through a descriptor opened without following
 * symlinks and checked to be a regular file with one link; its owner is
 * the submitting user; NAME.sub disappears only after its queue file is
 * durable; reading runs on the thread pool, never on the loop thread.
 */
#include "submit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "envelope.h"
#include "msghdr.h"

#define SUBMIT_IN_FLIGHT 16
#define SUBMIT_MAX_BYTES ((size_t)1 << 30)

struct sub_job;
TAILQ_HEAD(job_list, sub_job);

/* A .sub that was queued before a crash and must not be queued again. */
struct forget {
	struct forget *next;
	char *name;
	dev_t dev;
	ino_t ino;
};

struct submit {
	uv_loop_t *loop;
	struct submit_settings s;
	char *hostname, *default_domain;
	char *dir;			/* BASE/Submitted */
	int dirfd;
	struct enqueue *eq;
	struct store *st;
	struct logger *log;
	uv_fs_event_t ev;
	uv_timer_t timer;
	uv_fs_t scan_req;
	bool scanning, rescan, started, stopping, ev_on;
	struct strv pending;		/* names from the last scan, sorted */
	size_t next;
	struct strv inflight;
	struct job_list jobs;		/* in flight, in the order started */
	struct forget *forget;
	bool full_logged;
	submit_stopped_cb stopped_cb;
	void *stopped_arg;
	unsigned open_handles;
};

/* One .sub on its way into the queue. */
struct sub_job {
	TAILQ_ENTRY(sub_job) link;
	bool read_done;		/* the worker has finished */
	bool dispatched;	/* handed on (enqueue, .bad, or dropped) */
	int status;		/* uv work status */
	uv_work_t w;
	uv_fs_t req;
	struct submit *sb;
	char *name;
	char *path;
	struct buf data;
	uid_t uid;
	dev_t dev;
	ino_t ino;
	int err;		/* read error (-errno) */
	const char *bad;	/* reason to rename to .bad */
	char *bad_text;		/* owned detail for the log */
	bool vanished, forgotten;
};

static void pump(struct submit *sb);
static void start_scan(struct submit *sb);

/* Does name end in ext? */
static bool
ends_with(const char *name, const char *ext)
{
	size_t n = strlen(name), e = strlen(ext);

	return n > e && strcmp(name + n - e, ext) == 0;
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
	uv_fs_event_init(loop, &sb->ev);
	uv_timer_init(loop, &sb->timer);
	sb->ev.data = sb->timer.data = sb->scan_req.data = sb;
	TAILQ_INIT(&sb->jobs);
	sb->open_handles = 2;
	*out = sb;
	return 0;
fail:
	if (sb->dirfd >= 0)
		close(sb->dirfd);
	free(sb->dir);
	free(sb->hostname);
	free(sb->default_domain);
	free(sb);
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
static bool
forgotten(const struct submit *sb, const char *name, dev_t dev, ino_t ino)
{
	for (const struct forget *f = sb->forget; f; f = f->next)
		if (f->dev == dev && f->ino == ino &&
		    strcmp(f->name, name) == 0)
			return true;
	return false;
}

/* Worker: open the .sub safely and read it. */
static void
work_read(uv_work_t *w)
{
	struct sub_job *j = w->data;
	struct submit *sb = j->sb;
	struct stat st;
	char chunk[65536];
	ssize_t n;
	int fd;

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
	if (fstat(fd, &st) < 0) {
		j->err = -errno;
		goto out;
	}
	j->uid = st.st_uid;
	j->dev = st.st_dev;
	j->ino = st.st_ino;
	if (!S_ISREG(st.st_mode)) {
		j->bad = "is not a regular file";
		goto out;
	}
	if (st.st_nlink != 1) {
		j->bad = "has more than one link";
		goto out;
	}
	if (forgotten(sb, j->name, st.st_dev, st.st_ino)) {
		j->forgotten = true;
		if (unlinkat(sb->dirfd, j->name, 0) < 0 && errno != ENOENT)
			j->err = -errno;
		goto out;
	}
	if ((size_t)st.st_size > SUBMIT_MAX_BYTES) {
		j->bad = "is larger than 1 GiB";
		goto out;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			j->err = -errno;
			goto out;
		}
		if (j->data.len + (size_t)n > SUBMIT_MAX_BYTES) {
			j->bad = "is larger than 1 GiB";
			goto out;
		}
		if (buf_append(&j->data, chunk, (size_t)n) < 0) {
			j->err = -ENOMEM;
			goto out;
		}
	}
out:
	close(fd);
}

/* Free a finished job and let the next one run. */
static void
job_done(struct sub_job *j)
{
	struct submit *sb = j->sb;
	long i = strv_find(&sb->inflight, j->name);

	TAILQ_REMOVE(&sb->jobs, j, link);
	if (i >= 0) {
		free(sb->inflight.v[i]);
		sb->inflight.v[i] = sb->inflight.v[--sb->inflight.n];
		sb->inflight.v[sb->inflight.n] = NULL;
	}
	buf_free(&j->data);
	free(j->bad_text);
	free(j->name);
	free(j->path);
	free(j);
	pump(sb);
}

/* The rename to .bad finished. */
static void
on_bad_renamed(uv_fs_t *req)
{
	struct sub_job *j = req->data;

	if (req->result < 0)
		log_msg(j->sb->log, LOG_SUBMIT, LOG_FAILURES,
			"cannot rename %s to .bad: %s", j->name,
			uv_strerror((int)req->result));
	uv_fs_req_cleanup(req);
	job_done(j);
}

/* Log why a file cannot be submitted and rename it to NAME.bad. */
static void
reject_file(struct sub_job *j, const char *why)
{
	struct submit *sb = j->sb;
	struct buf to = BUF_INIT;
	size_t n = strlen(j->path);

	log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
		"Submitted/%s rejected: %s%s%s; renaming it to .bad", j->name,
		why, j->bad_text ? ": " : "", j->bad_text ? j->bad_text : "");
	if (buf_append(&to, j->path, n - 4) < 0 || buf_puts(&to, ".bad") < 0 ||
	    uv_fs_rename(sb->loop, &j->req, j->path, to.data,
	    on_bad_renamed) < 0) {
		buf_free(&to);
		job_done(j);
		return;
	}
	buf_free(&to);
}

/* The enqueuer made the message durable (or did not). */
static void
on_enqueued(void *arg, int err, const char *id)
{
	struct sub_job *j = arg;
	struct submit *sb = j->sb;

	if (err == 0)
		log_msg(sb->log, LOG_SUBMIT, LOG_MAJOR,
			"Submitted/%s queued id=%s user=%lu", j->name, id,
			(unsigned long)j->uid);
	else
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
			"Submitted/%s not queued: %s (kept, retried at the "
			"next scan)", j->name, strerror(-err));
	job_done(j);
}

/* Build the envelope from the parsed file and enqueue it. */
static void
submit_parsed(struct sub_job *j, struct msghdr_submission *sub,
	const char *uid)
{
	struct submit *sb = j->sb;
	struct envelope env;
	struct buf rcv = BUF_INIT, src = BUF_INIT;
	int64_t now = (int64_t)time(NULL);
	int r = 0;

	envelope_init(&env);
	memcpy(env.uid, uid, sizeof(env.uid));
	env.submitted = now;
	env.user = (int64_t)j->uid;
	env.trusted = true;
	if ((env.tag = strdup("PIPE")) == NULL ||
	    (env.from = strdup(sub->return_path)) == NULL ||
	    buf_printf(&src, "Submitted/%s %llu:%llu", j->name,
	    (unsigned long long)j->dev, (unsigned long long)j->ino) < 0 ||
	    buf_steal(&src, &env.source) < 0 ||
	    enqueue_received_local(env.user, sb->hostname, now, &rcv) < 0)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < sub->rcpts.n; i++)
		r = envelope_add_rcpt(&env, sub->rcpts.v[i], NULL, 0);
	if (r < 0) {
		envelope_free(&env);
		buf_free(&rcv);
		buf_free(&src);
		buf_free(&sub->message);
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
			"Submitted/%s: out of memory (kept)", j->name);
		job_done(j);
		return;
	}
	r = enqueue_message(sb->eq, &env, &sub->message, rcv.data, j->path,
		on_enqueued, j);
	buf_free(&rcv);
	buf_free(&src);
	if (r == 0)
		return;
	if (r == -ELOOP) {
		reject_file(j, "too many hops (Received: fields above the hop "
			"limit)");
	} else if (r == -EINVAL) {
		reject_file(j, "unparsable header");
	} else if (r == -ENOSPC) {
		if (!sb->full_logged)
			log_msg(sb->log, LOG_SUBMIT, LOG_PROBLEMS,
				"queue limit reached: Submitted files wait");
		sb->full_logged = true;
		job_done(j);
	} else {
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
			"Submitted/%s not queued: %s (kept)", j->name,
			strerror(-r));
		job_done(j);
	}
}

/* Check a file that was read and pass it on. */
static void
dispatch_job(struct sub_job *j, int status)
{
	struct submit *sb = j->sb;
	struct msghdr_submission sub = MSGHDR_SUBMISSION_INIT;
	struct msghdr_submit_params p;
	char uid[ENVELOPE_UID_LEN + 1];
	const char *why = NULL;

	if (status < 0 || j->vanished) {
		job_done(j);
		return;
	}
	if (j->forgotten) {
		log_msg(sb->log, LOG_SUBMIT, LOG_PROBLEMS,
			"Submitted/%s was already queued before a restart; "
			"removed%s%s", j->name, j->err ? ": " : "",
			j->err ? strerror(-j->err) : "");
		job_done(j);
		return;
	}
	if (j->err < 0) {
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
			"cannot read Submitted/%s: %s (kept)", j->name,
			strerror(-j->err));
		job_done(j);
		return;
	}
	if (j->bad) {
		reject_file(j, j->bad);
		return;
	}
	if (envelope_new_uid(uid) < 0) {
		job_done(j);
		return;
	}
	p.hostname = sb->hostname;
	p.default_domain = sb->default_domain;
	p.id = uid;
	p.now = (int64_t)time(NULL);
	if (msghdr_submission(j->data.data ? j->data.data : "", j->data.len,
	    &p, &sub, &why) < 0) {
		msghdr_submission_free(&sub);
		reject_file(j, why ? why : "cannot be parsed");
		return;
	}
	buf_free(&j->data);
	submit_parsed(j, &sub, uid);
	msghdr_submission_free(&sub);
}

/*
 * Loop: a file was read. Files are read in parallel but handed on in the
 * order they were started (name order), so queue IDs, and with them the
 * order of a named queue, follow the order of the files.
 */
static void
after_read(uv_work_t *w, int status)
{
	struct sub_job *j = w->data, *next;
	struct submit *sb = j->sb;

	j->read_done = true;
	j->status = status;
	for (j = TAILQ_FIRST(&sb->jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, link);
		if (!j->read_done)
			break;
		if (j->dispatched)
			continue;
		j->dispatched = true;
		dispatch_job(j, j->status);
	}
}

/* Start reading one file. */
static int
start_job(struct submit *sb, const char *name)
{
	struct sub_job *j = calloc(1, sizeof(*j));
	struct buf p = BUF_INIT;
	int r;

	if (j == NULL)
		return -ENOMEM;
	j->sb = sb;
	j->w.data = j->req.data = j;
	if ((j->name = strdup(name)) == NULL ||
	    (r = buf_printf(&p, "%s/%s", sb->dir, name)) < 0 ||
	    (r = buf_steal(&p, &j->path)) < 0 ||
	    (r = strv_push(&sb->inflight, name)) < 0) {
		buf_free(&p);
		free(j->name);
		free(j->path);
		free(j);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&sb->jobs, j, link);
	r = uv_queue_work(sb->loop, &j->w, work_read, after_read);
	if (r < 0) {
		job_done(j);
		return r;
	}
	return 0;
}

/* Call the stopped callback when idle. */
static void
check_stopped(struct submit *sb)
{
	submit_stopped_cb cb = sb->stopped_cb;

	if (!sb->stopping || sb->scanning || sb->inflight.n > 0 || cb == NULL)
		return;
	sb->stopped_cb = NULL;
	cb(sb->stopped_arg);
}

/* Start jobs for pending names while there is room. */
static void
pump(struct submit *sb)
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
		if (start_job(sb, name) < 0)
			break;
	}
	if (sb->next >= sb->pending.n && sb->pending.n > 0) {
		strv_free(&sb->pending);
		sb->next = 0;
	}
	if (sb->rescan && !sb->scanning && sb->pending.n == 0 &&
	    !sb->stopping)
		start_scan(sb);
	check_stopped(sb);
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

	sb->scanning = false;
	if (req->result < 0) {
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES, "cannot scan %s: %s",
			sb->dir, uv_strerror((int)req->result));
	} else {
		while (uv_fs_scandir_next(req, &ent) != UV_EOF)
			if (ends_with(ent.name, ".sub") &&
			    strv_push(&names, ent.name) < 0)
				break;
	}
	uv_fs_req_cleanup(req);
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(*names.v), cmp_names);
	strv_free(&sb->pending);
	sb->pending = names;
	sb->next = 0;
	pump(sb);
}

/* List the folder (on the thread pool). */
static void
start_scan(struct submit *sb)
{
	if (sb->stopping)
		return;
	if (sb->scanning || sb->pending.n > 0) {
		sb->rescan = true;
		return;
	}
	sb->rescan = false;
	sb->scanning = true;
	if (uv_fs_scandir(sb->loop, &sb->scan_req, sb->dir, 0,
	    on_scandir) < 0)
		sb->scanning = false;
}

/* A file-system notification: only a hint to scan sooner. */
static void
on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct submit *sb = h->data;

	if (filename == NULL || ends_with(filename, ".sub"))
		start_scan(sb);
}

/* The scan interval passed. */
static void
on_timer(uv_timer_t *t)
{
	start_scan(t->data);
}

/* Begin watching and scanning. */
int
submit_start(struct submit *sb)
{
	uint64_t every = sb->s.scan_interval_s * 1000;
	int r;

	r = uv_fs_event_start(&sb->ev, on_fs_event, sb->dir, 0);
	if (r < 0)
		log_msg(sb->log, LOG_SUBMIT, LOG_PROBLEMS,
			"no notifications for %s (%s): scanning every %llus",
			sb->dir, uv_strerror(r),
			(unsigned long long)sb->s.scan_interval_s);
	sb->ev_on = r == 0;
	uv_timer_start(&sb->timer, on_timer, every, every);
	sb->started = true;
	start_scan(sb);
	return 0;
}

/* Scan soon. */
void
submit_poke(struct submit *sb)
{
	if (sb->started)
		start_scan(sb);
}

/* Stop picking up files. */
void
submit_stop(struct submit *sb, submit_stopped_cb cb, void *arg)
{
	sb->stopping = true;
	sb->stopped_cb = cb;
	sb->stopped_arg = arg;
	if (sb->ev_on)
		uv_fs_event_stop(&sb->ev);
	uv_timer_stop(&sb->timer);
	strv_free(&sb->pending);
	sb->next = 0;
	check_stopped(sb);
}

/* Free once both handles are closed. */
static void
on_closed(uv_handle_t *h)
{
	struct submit *sb = h->data;
	struct forget *f;

	if (--sb->open_handles > 0)
		return;
	while ((f = sb->forget) != NULL) {
		sb->forget = f->next;
		free(f->name);
		free(f);
	}
	strv_free(&sb->pending);
	strv_free(&sb->inflight);
	if (sb->dirfd >= 0)
		close(sb->dirfd);
	free(sb->dir);
	free(sb->hostname);
	free(sb->default_domain);
	free(sb);
}

/* Close the handles; memory goes when they are closed. */
void
submit_close(struct submit *sb)
{
	if (sb == NULL)
		return;
	uv_close((uv_handle_t *)&sb->ev, on_closed);
	uv_close((uv_handle_t *)&sb->timer, on_closed);
}
