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
#include "subready.h"

#define SUBMIT_IN_FLIGHT 16
#define SUBMIT_MAX_BYTES ((uint64_t)1 << 30)
#define SUBMIT_WHOLE_MAX (64 * 1024)	/* read whole up to this size */
#define SUBMIT_HEADER_READ (2 * MSGHDR_MAX_HEADER)	/* CR LF: twice */
#define SUBMIT_STREAMS 4		/* bodies copied at once, at most */
#define SUBMIT_SETTLE_MAX_MS 2000	/* settle time: scan interval, <= */
#define SUBMIT_GRACE_MS (10 * 60 * 1000)	/* a writer's file, quiet */
#define SUBMIT_RETRY_MS 1000		/* a file that changed: look again */
#define SUBMIT_MAX_NAMES 4096		/* names with hints kept, at most */
#define SUBMIT_EVENTS 4096		/* inotify read size */

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
	int ifd;			/* inotify, -1 without notifications */
	uv_poll_t ipoll;
	uv_timer_t timer;		/* the scan interval */
	uv_timer_t settle;		/* a waiting file may be ready */
	uint64_t settle_due;		/* its monotonic ms, 0 = not armed */
	struct subready_settings rs;
	struct subready *ready;		/* hints and looks per name */
	uint64_t scan_mark;		/* subready mark of the running scan */
	uv_fs_t scan_req;
	bool scanning, rescan, started, stopping, ev_on;
	bool dispatching, redispatch;
	struct strv pending;		/* names from the last scan, sorted */
	size_t next;
	struct strv inflight;
	struct job_list jobs;		/* in flight, in the order started */
	unsigned streams;		/* bodies being copied */
	unsigned closing;		/* descriptors closing on the pool */
	struct forget *forget;
	bool full_logged;
	submit_stopped_cb stopped_cb;
	void *stopped_arg;
	unsigned open_handles;
};

/* Where a job stands. */
enum job_state {
	JS_READING,	/* work_read on the pool */
	JS_READ,	/* read; waits for its turn (file order) */
	JS_HEADER,	/* its turn: the rest of a long header being read */
	JS_DISPATCHED,	/* handed on (enqueue, .bad, or dropped) */
};

/* One .sub on its way into the queue. */
struct sub_job {
	TAILQ_ENTRY(sub_job) link;
	enum job_state state;
	int status;		/* uv work status */
	uv_work_t w;
	uv_fs_t req;
	struct submit *sb;
	char *name;
	char *path;
	int fd;			/* the open .sub, -1 when none */
	struct buf data;	/* all of a small file, else its header part */
	struct subready_view view;	/* what was known when it started */
	struct subready_stat st;	/* what fstat said */
	uint64_t wait_ms;	/* not ready yet: look again after this */
	size_t body_off;	/* streamed: where the body starts */
	struct enqueue_draft *ed;	/* streamed: the message in writing */
	uid_t uid;
	dev_t dev;
	ino_t ino;
	int err;		/* read error (-errno) */
	const char *bad;	/* reason to rename to .bad */
	char *bad_text;		/* owned detail for the log */
	bool vanished, forgotten;
	bool waiting;		/* not complete yet by subready's rules */
	bool changed;		/* changed while read: retry later */
	bool more_header;	/* the header goes on past the first read */
	bool streamed;		/* too large to hold: the body is copied */
	bool stream_counted;	/* counted in sb->streams */
};

static void pump(struct submit *sb);
static void start_scan(struct submit *sb);
static void dispatch_ready(struct submit *sb);

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
	subready_free(sb->ready);
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

/* Monotonic milliseconds (the clock of subready's looks). */
static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wall-clock nanoseconds (the clock of ctime). */
static int64_t
real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* What fstat said, as subready compares it. */
static void
stat_sig(const struct stat *sb, struct subready_stat *out)
{
	out->dev = (uint64_t)sb->st_dev;
	out->ino = (uint64_t)sb->st_ino;
	out->size = (int64_t)sb->st_size;
	out->mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000LL +
		sb->st_mtim.tv_nsec;
	out->ctime_ns = (int64_t)sb->st_ctim.tv_sec * 1000000000LL +
		sb->st_ctim.tv_nsec;
}

/* Pool: is the open file still what it was when it was first read? */
static bool
unchanged(const struct sub_job *j)
{
	struct subready_stat now;
	struct stat sb;

	if (fstat(j->fd, &sb) < 0)
		return false;
	stat_sig(&sb, &now);
	return subready_same(&now, &j->st);
}

/*
 * Pool: after a read that ended at eof or at its limit, decide what the
 * job is: a whole small file (read completely and unchanged), a streamed
 * one (header end found: only the header stays in memory, the store
 * copies the body), one whose header goes on (more_header, read at its
 * turn), one with too large a header, or one that changed meanwhile.
 * last: the read went as far as a header may.
 */
static void
classify(struct sub_job *j, bool eof, bool last)
{
	size_t end;

	if (!(eof && j->data.len <= SUBMIT_WHOLE_MAX) &&
	    msghdr_header_end(j->data.data, j->data.len, false, &end) == 0) {
		j->streamed = true;
		j->body_off = end;
		j->data.len = end;	/* the body is read again by the copy */
		j->data.data[end] = '\0';
		return;
	}
	if (eof) {
		/* all of it is in memory: it must be what fstat said */
		if ((uint64_t)j->data.len != (uint64_t)j->st.size ||
		    !unchanged(j))
			j->changed = true;
		return;
	}
	if (!last)
		j->more_header = true;
	else if ((uint64_t)j->st.size <= (uint64_t)j->data.len)
		j->changed = true;	/* it was shorter than that */
	else
		j->bad = "header larger than 1 MiB";
}

/* Worker: open the .sub safely; read a small one, or the start of it. */
static void
work_read(uv_work_t *w)
{
	struct sub_job *j = w->data;
	struct submit *sb = j->sb;
	struct stat st;
	bool eof;
	int fd, r;

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
	j->fd = fd;
	if (fstat(fd, &st) < 0) {
		j->err = -errno;
		return;
	}
	j->uid = st.st_uid;
	j->dev = st.st_dev;
	j->ino = st.st_ino;
	stat_sig(&st, &j->st);
	if (!S_ISREG(st.st_mode)) {
		j->bad = "is not a regular file";
		return;
	}
	if (st.st_nlink != 1) {
		j->bad = "has more than one link";
		return;
	}
	if (forgotten(sb, j->name, st.st_dev, st.st_ino)) {
		j->forgotten = true;
		if (unlinkat(sb->dirfd, j->name, 0) < 0 && errno != ENOENT)
			j->err = -errno;
		return;
	}
	if (subready_judge(&j->view, &j->st, real_ns(), mono_ms(), &sb->rs,
	    &j->wait_ms) == SUBREADY_WAIT) {
		j->waiting = true;
		return;
	}
	if ((uint64_t)st.st_size > SUBMIT_MAX_BYTES) {
		j->bad = "is larger than 1 GiB";
		return;
	}
	/*
	 * one read more than the limit tells a small file from a large one;
	 * only these reads move the offset (the store's copy uses pread), so
	 * it stays at j->data.len
	 */
	if ((r = buf_read_upto(&j->data, fd, SUBMIT_WHOLE_MAX + 1,
	    &eof)) < 0) {
		j->err = r;
		return;
	}
	classify(j, eof, false);
}

/* Worker: its turn came; read the rest of a long header. */
static void
work_header(uv_work_t *w)
{
	struct sub_job *j = w->data;
	bool eof;
	int r;

	/* a piece at a time: only as much as the header needs stays */
	while (j->more_header) {
		size_t upto = j->data.len + SUBMIT_WHOLE_MAX;

		j->more_header = false;
		if (upto > SUBMIT_HEADER_READ)
			upto = SUBMIT_HEADER_READ;
		if ((r = buf_read_upto(&j->data, j->fd, upto, &eof)) < 0) {
			j->err = r;
			return;
		}
		classify(j, eof, upto == SUBMIT_HEADER_READ);
	}
}

/* Call the stopped callback when idle (defined below). */
static void check_stopped(struct submit *sb);

/* The descriptor was closed on the pool: the job's memory goes. */
static void
on_fd_closed(uv_fs_t *req)
{
	struct sub_job *j = req->data;
	struct submit *sb = j->sb;

	uv_fs_req_cleanup(req);
	free(j);
	sb->closing--;
	check_stopped(sb);
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
	if (j->stream_counted)
		sb->streams--;
	buf_free(&j->data);
	free(j->bad_text);
	free(j->name);
	free(j->path);
	/*
	 * The .sub may be unlinked by now and this its last reference:
	 * closing it frees the file's blocks, disk work for the pool.
	 */
	if (j->fd >= 0 && uv_fs_close(sb->loop, &j->req, j->fd,
	    on_fd_closed) == 0) {
		sb->closing++;
	} else {
		if (j->fd >= 0)
			close(j->fd);
		free(j);
	}
	pump(sb);
	dispatch_ready(sb);
}

/* The file changed (or is not complete): look at it again later. */
static void
retry_later(struct sub_job *j, uint64_t ms);

/* Worker: rename to .bad, unless the file changed since it was read. */
static void
work_reject(uv_work_t *w)
{
	struct sub_job *j = w->data;
	struct submit *sb = j->sb;
	struct buf to = BUF_INIT;
	struct stat st;
	size_t n = strlen(j->name);

	if (j->fd >= 0 && (!unchanged(j) || fstatat(sb->dirfd, j->name, &st,
	    AT_SYMLINK_NOFOLLOW) < 0 || (uint64_t)st.st_dev != j->st.dev ||
	    (uint64_t)st.st_ino != j->st.ino)) {
		j->changed = true;
		return;
	}
	if (buf_append(&to, j->name, n - 4) < 0 || buf_puts(&to, ".bad") < 0)
		j->err = -ENOMEM;
	else if (renameat(sb->dirfd, j->name, sb->dirfd, to.data) < 0)
		j->err = -errno;
	buf_free(&to);
}

/* The rename to .bad finished (or was called off). */
static void
after_reject(uv_work_t *w, int status)
{
	struct sub_job *j = w->data;
	struct submit *sb = j->sb;

	if (j->changed) {
		log_msg(sb->log, LOG_SUBMIT, LOG_LOWLEVEL, "Submitted/%s "
			"changed after it was read: not renamed, read again "
			"later", j->name);
		retry_later(j, SUBMIT_RETRY_MS);
		return;
	}
	if (status < 0 || j->err < 0)
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
			"cannot rename %s to .bad: %s", j->name,
			strerror(status < 0 ? -status : -j->err));
	else
		subready_forget(sb->ready, j->name);
	job_done(j);
}

/* Log why a file cannot be submitted and rename it to NAME.bad. */
static void
reject_file(struct sub_job *j, const char *why)
{
	struct submit *sb = j->sb;

	log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
		"Submitted/%s rejected: %s%s%s; renaming it to .bad", j->name,
		why, j->bad_text ? ": " : "", j->bad_text ? j->bad_text : "");
	j->err = 0;
	if (uv_queue_work(sb->loop, &j->w, work_reject, after_reject) < 0)
		job_done(j);
}

/* The enqueuer made the message durable (or did not). */
static void
on_enqueued(void *arg, int err, const char *id)
{
	struct sub_job *j = arg;
	struct submit *sb = j->sb;

	if (err == 0) {
		log_msg(sb->log, LOG_SUBMIT, LOG_MAJOR,
			"Submitted/%s queued id=%s user=%lu", j->name, id,
			(unsigned long)j->uid);
		subready_forget(sb->ready, j->name);
	} else {
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
			"Submitted/%s not queued: %s (kept, retried at the "
			"next scan)", j->name, strerror(-err));
	}
	job_done(j);
}

/* The envelope and Received: field of a parsed file. */
static int
build_env(struct sub_job *j, const struct msghdr_submission *sub,
	const char *uid, struct envelope *env, struct buf *rcv)
{
	struct submit *sb = j->sb;
	struct buf src = BUF_INIT;
	int64_t now = (int64_t)time(NULL);
	int r = 0;

	envelope_init(env);
	memcpy(env->uid, uid, sizeof(env->uid));
	env->submitted = now;
	env->user = (int64_t)j->uid;
	env->trusted = true;
	if ((env->tag = strdup("PIPE")) == NULL ||
	    (env->from = strdup(sub->return_path)) == NULL ||
	    buf_printf(&src, "Submitted/%s %llu:%llu", j->name,
	    (unsigned long long)j->dev, (unsigned long long)j->ino) < 0 ||
	    buf_steal(&src, &env->source) < 0 ||
	    enqueue_received_local(env->user, sb->hostname, now, rcv) < 0)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < sub->rcpts.n; i++)
		r = envelope_add_rcpt(env, sub->rcpts.v[i], NULL, 0);
	buf_free(&src);
	if (r < 0) {
		envelope_free(env);
		buf_free(rcv);
	}
	return r;
}

/* The enqueuer refused the message at once (nothing was written). */
static void
enqueue_refused(struct sub_job *j, int r)
{
	struct submit *sb = j->sb;

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

/* The streamed file changed while its body was copied: read it again. */
static void
copy_changed(struct sub_job *j)
{
	enqueue_draft_abort(j->ed);
	log_msg(j->sb->log, LOG_SUBMIT, LOG_LOWLEVEL, "Submitted/%s changed "
		"while it was copied: read again later", j->name);
	retry_later(j, SUBMIT_RETRY_MS);
}

/* The streamed message cannot be queued now (err): the file stays. */
static void
copy_failed(struct sub_job *j, int err)
{
	enqueue_draft_abort(j->ed);
	log_msg(j->sb->log, LOG_SUBMIT, LOG_FAILURES, "Submitted/%s not "
		"queued: %s (kept, retried at the next scan)", j->name,
		strerror(-err));
	job_done(j);
}

/* Worker: after the copy, is the file still what it was when opened? */
static void
work_recheck(uv_work_t *w)
{
	struct sub_job *j = w->data;

	j->changed = !unchanged(j);
}

/* Loop: the copy is checked: commit it, or read the file again later. */
static void
after_recheck(uv_work_t *w, int status)
{
	struct sub_job *j = w->data;
	int r;

	if (status < 0)
		copy_failed(j, status);
	else if (j->changed)
		copy_changed(j);	/* e.g. rewritten in place, same size */
	else if ((r = enqueue_draft_commit(j->ed, j->path, on_enqueued,
	    j)) < 0)
		copy_failed(j, r);
}

/* A streamed body was copied (or not): check it, or retry later. */
static void
on_copied(void *arg, int err, uint64_t n)
{
	struct sub_job *j = arg;
	int r;

	/* every byte from the body to the end, and no more than fstat said */
	if ((err == 0 && n != (uint64_t)j->st.size - j->body_off) ||
	    err == -EFBIG) {
		copy_changed(j);
		return;
	}
	if (err < 0) {
		copy_failed(j, err);
		return;
	}
	if ((r = uv_queue_work(j->sb->loop, &j->w, work_recheck,
	    after_recheck)) < 0)
		copy_failed(j, r);
}

/* Hand a parsed file to the enqueuer: whole, or its body streamed. */
static void
submit_parsed(struct sub_job *j, struct msghdr_submission *sub,
	const char *uid)
{
	struct submit *sb = j->sb;
	struct envelope env;
	struct buf rcv = BUF_INIT;
	int r;

	if (build_env(j, sub, uid, &env, &rcv) < 0) {
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
			"Submitted/%s: out of memory (kept)", j->name);
		job_done(j);
		return;
	}
	if (!j->streamed) {
		r = enqueue_message(sb->eq, &env, &sub->message, rcv.data,
			j->path, on_enqueued, j);
		buf_free(&rcv);
		if (r < 0)
			enqueue_refused(j, r);
		return;
	}
	/* the header is the head of the file; the body follows from disk */
	r = enqueue_draft_open(sb->eq, &env, &sub->message, rcv.data, true,
		&j->ed);
	buf_free(&rcv);
	if (r < 0) {
		enqueue_refused(j, r);
		return;
	}
	if ((r = store_draft_copy(enqueue_draft_store(j->ed), j->fd,
	    j->body_off, SUBMIT_MAX_BYTES - j->body_off, STORE_COPY_CRLF,
	    on_copied, j)) < 0)
		copy_failed(j, r);
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
		/*
		 * Left in place and looked at again at every scan (taken once
		 * it can be read: a file the daemon user may not read waits
		 * for its mode to be fixed), but logged once per file.
		 */
		if (subready_failed(sb->ready, j->name, j->err))
			log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
				"cannot read Submitted/%s: %s (left in place, "
				"taken once it can be read)", j->name,
				strerror(-j->err));
		job_done(j);
		return;
	}
	if (j->bad) {
		reject_file(j, j->bad);
		return;
	}
	if (j->waiting) {
		log_msg(sb->log, LOG_SUBMIT, LOG_LOWLEVEL, "Submitted/%s %s: "
			"waiting", j->name, j->view.state == SUBREADY_WRITING ?
			"is open for writing" : "changed recently");
		subready_saw(sb->ready, j->name, &j->st, mono_ms());
		retry_later(j, j->wait_ms);
		return;
	}
	if (j->changed) {
		log_msg(sb->log, LOG_SUBMIT, LOG_LOWLEVEL, "Submitted/%s "
			"changed while it was read: read again later",
			j->name);
		retry_later(j, SUBMIT_RETRY_MS);
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

/* Loop: a file, or the rest of its long header, was read. */
static void after_read(uv_work_t *w, int status);

/*
 * Hand read files on in the order they were started (name order), so
 * queue IDs, and with them the order of a named queue, follow the order
 * of the files. At most one long header is read at a time (its turn is
 * the head of the order), and at most SUBMIT_STREAMS bodies are copied
 * at once, so memory stays bounded whatever the files hold.
 */
static void
dispatch_ready(struct submit *sb)
{
	struct sub_job *j;

	if (sb->dispatching) {
		sb->redispatch = true;
		return;
	}
	sb->dispatching = true;
	do {
		sb->redispatch = false;
		TAILQ_FOREACH(j, &sb->jobs, link)
			if (j->state != JS_DISPATCHED)
				break;
		if (j == NULL || j->state != JS_READ)
			break;
		if (j->status == 0 && j->more_header) {
			j->state = JS_HEADER;
			if (uv_queue_work(sb->loop, &j->w, work_header,
			    after_read) < 0) {
				j->more_header = false;
				j->err = -ENOMEM;
				j->state = JS_READ;
				sb->redispatch = true;
			}
			continue;
		}
		if (j->status == 0 && j->streamed && !j->bad && !j->waiting &&
		    !j->changed && j->err == 0) {
			if (sb->streams >= SUBMIT_STREAMS)
				break;	/* its turn comes when one ends */
			sb->streams++;
			j->stream_counted = true;
		}
		j->state = JS_DISPATCHED;
		sb->redispatch = true;
		dispatch_job(j, j->status);
	} while (sb->redispatch);
	sb->dispatching = false;
}

/* Loop: a file, or the rest of its long header, was read. */
static void
after_read(uv_work_t *w, int status)
{
	struct sub_job *j = w->data;

	j->status = status;
	j->state = JS_READ;
	dispatch_ready(j->sb);
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
	j->fd = -1;
	j->w.data = j->req.data = j;
	subready_view(sb->ready, name, &j->view);
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
	j->state = JS_READING;
	TAILQ_INSERT_TAIL(&sb->jobs, j, link);
	r = uv_queue_work(sb->loop, &j->w, work_read, after_read);
	if (r < 0) {
		j->state = JS_DISPATCHED;
		job_done(j);
		return r;
	}
	return 0;
}

/* The settle timer fired: a waiting file may be ready now. */
static void
on_settle(uv_timer_t *t)
{
	struct submit *sb = t->data;

	sb->settle_due = 0;
	start_scan(sb);
}

/* Look at the job's file again in ms (a scan then); the job ends. */
static void
retry_later(struct sub_job *j, uint64_t ms)
{
	struct submit *sb = j->sb;
	uint64_t due = mono_ms() + ms;

	if (!sb->stopping && (sb->settle_due == 0 || due < sb->settle_due)) {
		sb->settle_due = due;
		uv_timer_start(&sb->settle, on_settle, ms, 0);
	}
	job_done(j);
}

/* Call the stopped callback when idle. */
static void
check_stopped(struct submit *sb)
{
	submit_stopped_cb cb = sb->stopped_cb;

	if (!sb->stopping || sb->scanning || sb->inflight.n > 0 ||
	    sb->closing > 0 || cb == NULL)
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
		start_scan(sb);
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
		start_scan(sb);
	} else if (ev->mask & IN_CLOSE_WRITE) {
		subready_hint(sb->ready, name, SUBREADY_CLOSED);
		start_scan(sb);
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
	start_scan(t->data);
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
	watch_off(sb);
	uv_timer_stop(&sb->timer);
	uv_timer_stop(&sb->settle);
	strv_free(&sb->pending);
	sb->next = 0;
	check_stopped(sb);
}

/* Free once every handle is closed. */
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
