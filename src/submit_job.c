/*
 * submit_job: what happens to a Submitted file once read (submit_int.h):
 * jobs handed on in the order they were started (name order), checked by
 * msghdr_submission, queued through the enqueuer (whole, or the header
 * held and the body copied by the store from the file, at most
 * SUBMIT_STREAMS at once), renamed to .bad (only if unchanged since read),
 * or looked at again later. NAME.sub goes only once its queue file is
 * durable; one log line per outcome.
 */
#include "submit.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "msghdr.h"
#include "router.h"
#include "strv.h"
#include "submit_int.h"
#include "subready.h"

/* Hand read files on in file order (defined below). */
static void dispatch_ready(struct submit *sb);

/* The descriptor was closed on the pool: the job's memory goes. */
static void
on_fd_closed(uv_fs_t *req)
{
	struct sub_job *j = req->data;
	struct submit *sb = j->sb;

	uv_fs_req_cleanup(req);
	free(j);
	sb->closing--;
	submit__check_stopped(sb);
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
	free(j->submitter);
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
	submit__pump(sb);
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

	if (j->fd >= 0 && (!submit__unchanged(j) || fstatat(sb->dirfd,
	    j->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (uint64_t)st.st_dev != j->st.dev ||
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

	j->changed = !submit__unchanged(j);
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

/*
 * Would the queue fail this route at once (sched.c's final kinds)? Those
 * are what SMTP refuses at RCPT when Enqueue Asynchronously is off.
 */
static bool
route_fails(const struct route *rt)
{
	return rt->kind == ROUTE_ERROR || rt->kind == ROUTE_UNKNOWN ||
		rt->kind == ROUTE_NO_RELAY || rt->kind == ROUTE_REFUSED;
}

/*
 * Enqueue Asynchronously does not apply to local submission: route each
 * recipient now and drop (with a log line) those the queue would fail,
 * so that no report is owed for them; *left: how many remain.
 */
static int
route_now(struct sub_job *j, struct strv *rcpts, size_t *left)
{
	struct submit *sb = j->sb;
	struct router_ctx rc;
	size_t i, k = 0;
	int r = 0;

	*left = rcpts->n;
	if (sb->s.router == NULL ||
	    enqueue_async_applies(sb->s.enqueue_async, true, true))
		return 0;
	rc = *sb->s.router;
	rc.direct_pipe_allowed = sb->s.direct_pipe;
	for (i = 0; i < rcpts->n; i++) {
		struct route rt = ROUTE_INIT;

		if (r == 0 && (r = router_route(&rc, rcpts->v[i], &rt)) == 0 &&
		    route_fails(&rt)) {
			log_msg(sb->log, LOG_SUBMIT, LOG_PROBLEMS,
				"Submitted/%s rcpt <%s> refused: %d %s %s (not "
				"queued: enqueue-async does not apply to local "
				"submission)", j->name, rcpts->v[i], rt.reply,
				rt.status[0] ? rt.status : "5.0.0",
				rt.text ? rt.text : "recipient refused");
			free(rcpts->v[i]);
		} else {
			rcpts->v[k++] = rcpts->v[i];
		}
		route_free(&rt);
	}
	rcpts->n = k;
	if (rcpts->v != NULL)
		rcpts->v[k] = NULL;
	*left = k;
	return r;
}

/* Hand a parsed file to the enqueuer: whole, or its body streamed. */
static void
submit_parsed(struct sub_job *j, struct msghdr_submission *sub,
	const char *uid)
{
	struct submit *sb = j->sb;
	struct envelope env;
	struct buf rcv = BUF_INIT;
	size_t left;
	int r;

	if (route_now(j, &sub->rcpts, &left) < 0) {
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES,
			"Submitted/%s: out of memory (kept)", j->name);
		job_done(j);
		return;
	}
	if (left == 0) {
		reject_file(j, "every recipient was refused (see the lines "
			"above)");
		return;
	}
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

/*
 * The Submitted rules refused the file (r, why): .bad, except when only
 * the owner's look-up failed (the file waits for the next scan).
 */
static void
submission_refused(struct sub_job *j, int r, const char *why)
{
	struct submit *sb = j->sb;
	struct buf t = BUF_INIT;

	if (r == -ESRCH && j->owner_err < 0) {
		log_msg(sb->log, LOG_SUBMIT, LOG_FAILURES, "Submitted/%s: "
			"cannot look up its owner uid %lu: %s (kept, retried "
			"at the next scan)", j->name, (unsigned long)j->uid,
			strerror(-j->owner_err));
		job_done(j);
		return;
	}
	if (r == -ESRCH && buf_printf(&t, "its owner uid %lu %s",
	    (unsigned long)j->uid, j->owner_why ? j->owner_why :
	    "is unknown") == 0)
		(void)buf_steal(&t, &j->bad_text);
	buf_free(&t);
	reject_file(j, why ? why : "cannot be parsed");
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
	int r;

	if (status < 0 || j->vanished) {
		job_done(j);
		return;
	}
	if (j->submit__forgotten) {
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
		subready_saw(sb->ready, j->name, &j->st, submit__mono_ms());
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
	p.submitter = j->submitter;
	if ((r = msghdr_submission(j->data.data ? j->data.data : "",
	    j->data.len, &p, &sub, &why)) < 0) {
		msghdr_submission_free(&sub);
		submission_refused(j, r, why);
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
			if (uv_queue_work(sb->loop, &j->w, submit__work_header,
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
int
submit__start_job(struct submit *sb, const char *name)
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
	r = uv_queue_work(sb->loop, &j->w, submit__work_read, after_read);
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
	submit__start_scan(sb);
}

/* Look at the job's file again in ms (a scan then); the job ends. */
static void
retry_later(struct sub_job *j, uint64_t ms)
{
	struct submit *sb = j->sb;
	uint64_t due = submit__mono_ms() + ms;

	if (!sb->stopping && (sb->settle_due == 0 || due < sb->settle_due)) {
		sb->settle_due = due;
		uv_timer_start(&sb->settle, on_settle, ms, 0);
	}
	job_done(j);
}
