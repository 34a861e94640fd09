/*
 * pipe: one PIPE delivery from request to struct result. The module and a
 * job's life here: its teardown, the bounded stderr capture, the time
 * limit, the program's end and the one report; the argv and environment
 * are pipe_build.c's, the start pipe_run.c's, stdin pipe_stdin.c's, the
 * output/error files pipe_sink.c's (pipe_int.h is what they share).
 * Promises: every run is reported exactly once, from the loop; no file I/O
 * on the loop thread; nothing is freed before libuv is done with it. Never
 * changes queue state.
 */
#include "pipe_int.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* How long to wait for stderr/stdout EOF after the program's exit, in case
   a process outside its group still holds them. */
#define PIPE_GRACE_MS 2000

/* Log when a logger was given. */
void
pipe_log(const struct pipe_module *pm, enum log_level l, const char *fmt, ...)
{
	va_list ap;

	if (pm->lg == NULL)
		return;
	va_start(ap, fmt);
	log_vmsg(pm->lg, LOG_PIPE, l, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The module.                                                         */

/* Open the module: copy the settings, open /dev/null once. */
int
pipe_module_open(uv_loop_t *loop, struct spawn_client *sp,
	const struct pipe_settings *s, struct logger *lg,
	struct pipe_module **out)
{
	struct pipe_module *pm = calloc(1, sizeof(*pm));

	if (pm == NULL)
		return -ENOMEM;
	pm->loop = loop;
	pm->sp = sp;
	pm->lg = lg;
	pm->s = *s;
	pm->base_dir = text_strdup(s->base_dir);
	pm->app_dir = text_strdup(s->app_dir);
	pm->path_env = text_strdup(s->path_env);
	pm->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if ((s->base_dir && !pm->base_dir) || (s->app_dir && !pm->app_dir) ||
	    (s->path_env && !pm->path_env) || pm->devnull < 0) {
		int e = pm->devnull < 0 ? -errno : -ENOMEM;

		pm->closing = true;
		pipe_module_close(pm);
		return e;
	}
	pm->s.base_dir = pm->base_dir;
	pm->s.app_dir = pm->app_dir;
	pm->s.path_env = pm->path_env;
	*out = pm;
	return 0;
}

/* Free the module itself. */
static void
pm_free(struct pipe_module *pm)
{
	if (pm->devnull >= 0)
		close(pm->devnull);
	free(pm->base_dir);
	free(pm->app_dir);
	free(pm->path_env);
	free(pm);
}

/* Deliveries started and not yet reported. */
unsigned
pipe_active(const struct pipe_module *pm)
{
	return pm->active;
}

/* Close the module; freed now, or when its last job is freed. */
void
pipe_module_close(struct pipe_module *pm)
{
	if (pm == NULL)
		return;
	pm->closing = true;
	if (pm->alive == 0)
		pm_free(pm);
}

/* ------------------------------------------------------------------ */
/* One job: teardown.                                                   */

/* Free the job once nothing refers to it. */
void
pipe_job_maybe_free(struct pipe_job *j)
{
	struct pipe_module *pm = j->pm;

	if (!j->reported || j->pending > 0)
		return;
	pipe_argv_free(&j->av);
	free(j->app);
	free(j->file_path);
	if (j->file_fd >= 0)
		close(j->file_fd);
	free(j->input_path);
	free(j->input_mem);
	code_map_free(&j->codes);
	free(j->output_file);
	free(j->error_file);
	free(j->fbuf);
	free(j->rbuf);
	free(j->ex_why);
	free(j->pre_why_owned);
	buf_free(&j->errkeep);
	free(j);
	if (--pm->alive == 0 && pm->closing)
		pm_free(pm);
}

/* A handle of the job was closed. */
static void
on_closed(uv_handle_t *h)
{
	struct pipe_job *j = h->data;

	j->pending--;
	pipe_job_maybe_free(j);
}

/* Close a handle of the job if it is open. */
void
pipe_job_close(struct pipe_job *j, uv_handle_t *h, bool *open)
{
	if (!*open)
		return;
	*open = false;
	j->pending++;
	uv_close(h, on_closed);
}

/* ------------------------------------------------------------------ */
/* Completion.                                                         */

/* Turn what happened into a result and report it (once). */
static void
job_report(struct pipe_job *j)
{
	struct pipe_module *pm = j->pm;
	struct result res = RESULT_INIT;
	struct pipe_info info = { 0 };
	struct run_outcome o = { .stdin_consumed = j->stdin_consumed,
	    .stderr_tag = j->stderr_tag, .sync = j->sync,
	    .time_limit_s = (unsigned)j->time_limit_s };
	int r;

	j->reported = true;
	pm->active--;
	if (j->prefailed) {
		o.end = RUN_SPAWN_FAILED;
		o.code = j->pre_fail;
		o.spawn_why = j->pre_why;
	} else if (j->ex.how == SPAWN_FAILED) {
		o.end = RUN_SPAWN_FAILED;
		o.code = j->ex.code;
		o.spawn_why = j->ex_why;
	} else if (j->ex.how == SPAWN_SIGNALED) {
		o.end = j->timed_out && j->ex.code == SIGKILL ? RUN_TIMED_OUT :
		    RUN_SIGNALED;
		o.code = j->ex.code;
	} else {
		o.end = RUN_EXITED;
		o.code = j->ex.code;
	}
	for (size_t i = 0; i < j->errkeep.len; i++)
		if (j->errkeep.data[i] == '\0')
			j->errkeep.data[i] = ' ';
	o.err_text = j->errkeep.data;
	o.err_len = (size_t)j->err_total;

	if (j->abort_why && !j->prefailed)
		r = result_set(&res, RESULT_DEFERRED, 451, "4.3.0", "%s%s%s",
		    j->abort_why, j->abort_err ? ": " : "",
		    j->abort_err ? uv_strerror(j->abort_err) : "");
	else if (j->nostart)
		r = result_set(&res, RESULT_DEFERRED, 451, "4.3.0",
		    "program did not start within %llus (spawn helper busy "
		    "or stopped)", (unsigned long long)j->time_limit_s);
	else
		r = result_from_run(&o, j->codes.n ? &j->codes : NULL, &res);
	if (r < 0) {
		/* Out of memory for the text: still a (deferred) result. */
		result_clear(&res);
		res.kind = RESULT_DEFERRED;
		res.reply = 451;
		memcpy(res.status, "4.3.0", 6);
	}
	info.pid = j->ex.pid;
	info.end = o.end;
	info.code = o.code;
	info.seconds = (double)(uv_hrtime() - j->t_start) / 1e9;
	info.stderr_bytes = j->err_total;
	info.stdin_consumed = j->stdin_consumed;
	pipe_log(pm, LOG_ALL, "program %s pid %ld ended: %s %d, %.3fs",
	    j->av.argv.v ? j->av.argv.v[0] : "-", (long)info.pid,
	    o.end == RUN_EXITED ? "exit" : o.end == RUN_SIGNALED ? "signal" :
	    o.end == RUN_TIMED_OUT ? "time limit" : "not started", o.code,
	    info.seconds);
	j->cb(j->arg, &res, &info);
	result_clear(&res);

	/* Tear down what is left. */
	uv_timer_stop(&j->timer);
	pipe_job_close(j, (uv_handle_t *)&j->timer, &j->timer_open);
	pipe_job_close(j, (uv_handle_t *)&j->in, &j->in_open);
	pipe_job_close(j, (uv_handle_t *)&j->err, &j->err_open);
	pipe_job_close(j, (uv_handle_t *)&j->out, &j->out_open);
	if (j->in_rfd >= 0) {
		close(j->in_rfd);
		j->in_rfd = -1;
	}
	if (j->has_osink)
		pipe_sink_pump(&j->osink);
	if (j->has_esink)
		pipe_sink_pump(&j->esink);
	if (!msgsrc_busy(&j->src))
		pipe_file_close(j);
	pipe_job_maybe_free(j);
}

/* Report when the program ended and its streams are drained. */
void
pipe_job_check(struct pipe_job *j)
{
	if (j->reported || !j->exited || !j->err_eof || !j->out_eof)
		return;
	if (j->has_osink && !pipe_sink_flushed(&j->osink))
		return;
	if (j->has_esink && !pipe_sink_flushed(&j->esink))
		return;
	job_report(j);
}

/* Data or EOF on stderr or stdout (defined below). */
/* The grace period after exit ran out: stop waiting for EOF. */
static void
on_grace(uv_timer_t *t)
{
	struct pipe_job *j = t->data;

	if (!j->err_eof || !j->out_eof)
		pipe_log(j->pm, LOG_PROBLEMS, "program %s pid %ld: output "
		    "still open %ums after exit, closing it", j->av.argv.v[0],
		    (long)j->ex.pid, PIPE_GRACE_MS);
	pipe_job_close(j, (uv_handle_t *)&j->err, &j->err_open);
	pipe_job_close(j, (uv_handle_t *)&j->out, &j->out_open);
	j->err_eof = j->out_eof = true;
	if (j->has_osink)
		j->osink.src = NULL;
	if (j->has_esink)
		j->esink.src = NULL;
	pipe_job_check(j);
}

/* Failure to start before the helper was asked: report from the loop. */
void
pipe_on_prefail(uv_timer_t *t)
{
	job_report(t->data);
}

/* The time limit ran out: kill the whole process group. */
static void
on_limit(uv_timer_t *t)
{
	struct pipe_job *j = t->data;

	pipe_log(j->pm, LOG_PROBLEMS, "program %s exceeded the time limit of "
	    "%llus, killing it", j->av.argv.v[0],
	    (unsigned long long)j->time_limit_s);
	j->timed_out = true;
	spawn_kill(j->pm->sp, j->job_id);
}

/*
 * The program has not started within the time limit (the helper is busy,
 * stopped or gone): withdraw the request. The delivery is deferred, never
 * failed, even if the program starts meanwhile and is killed.
 */
void
pipe_on_nostart(uv_timer_t *t)
{
	struct pipe_job *j = t->data;

	pipe_log(j->pm, LOG_PROBLEMS, "program %s did not start within %llus",
	    j->av.argv.v[0], (unsigned long long)j->time_limit_s);
	j->nostart = true;
	spawn_cancel(j->pm->sp, j->job_id);
}

/* The helper started the program: its time limit starts now. */
void
pipe_on_started(void *arg, pid_t pid)
{
	struct pipe_job *j = arg;

	(void)pid;
	if (j->exited)
		return;
	j->started = true;
	j->t_start = uv_hrtime();
	uv_timer_stop(&j->timer);
	if (j->time_limit_s > 0)
		uv_timer_start(&j->timer, on_limit, j->time_limit_s * 1000, 0);
}

/* Something failed on our side: kill the program, defer the delivery. */
void
pipe_job_abort(struct pipe_job *j, const char *why, int err)
{
	if (j->abort_why == NULL) {
		j->abort_why = why;
		j->abort_err = err;
		pipe_log(j->pm, LOG_PROBLEMS, "program %s: %s%s%s",
		    j->av.argv.v[0], why, err ? ": " : "",
		    err ? uv_strerror(err) : "");
	}
	if (!j->exited)
		spawn_kill(j->pm->sp, j->job_id);
}

/* ------------------------------------------------------------------ */
/* stderr and stdout.                                                   */

/* Hand out the job's read buffer (one read at a time per loop). */
void
pipe_on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
	struct pipe_job *j = h->data;

	(void)size;
	*b = uv_buf_init(j->rbuf, PIPE_CHUNK);
}

/* Data or EOF on stderr or stdout. */
void
pipe_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct pipe_job *j = s->data;
	bool is_err = s == (uv_stream_t *)&j->err;

	if (n > 0) {
		if (is_err) {
			uint64_t lim = j->pm->s.stderr_limit;
			size_t keep = 0;

			if (j->errkeep.len < lim)
				keep = lim - j->errkeep.len < (uint64_t)n ?
				    (size_t)(lim - j->errkeep.len) : (size_t)n;
			if (keep && buf_append(&j->errkeep, b->base, keep) < 0)
				pipe_job_abort(j, "out of memory", UV_ENOMEM);
			j->err_total += (uint64_t)n;
			if (j->has_esink)
				pipe_sink_push(&j->esink, b->base, (size_t)n);
		} else if (j->has_osink) {
			pipe_sink_push(&j->osink, b->base, (size_t)n);
		}
		return;
	}
	if (n == 0)
		return;
	/* EOF or error: the stream is done. */
	if (is_err) {
		pipe_job_close(j, (uv_handle_t *)&j->err, &j->err_open);
		j->err_eof = true;
		if (j->has_esink)
			j->esink.src = NULL;
	} else {
		pipe_job_close(j, (uv_handle_t *)&j->out, &j->out_open);
		j->out_eof = true;
		if (j->has_osink)
			j->osink.src = NULL;
	}
	pipe_job_check(j);
}

/* ------------------------------------------------------------------ */
/* The program's end.                                                  */

/* The helper reported the program's end (or failure to start). */
void
pipe_on_exit(void *arg, const struct spawn_exit *ex)
{
	struct pipe_job *j = arg;
	int avail = 0;

	j->exited = true;
	j->ex = *ex;
	j->ex.why = NULL;
	if (ex->why)
		j->ex_why = text_strdup(ex->why);
	/* Did the program read all of its input? Everything must have been
	   handed to the pipe, and nothing may be left in it. */
	if (j->in_done || (j->in_all_sent && j->in_open &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&j->in) == 0))
		j->stdin_consumed = ioctl(j->in_rfd, FIONREAD, &avail) == 0 &&
		    avail == 0;
	else
		j->stdin_consumed = false;
	pipe_job_close(j, (uv_handle_t *)&j->in, &j->in_open);
	close(j->in_rfd);
	j->in_rfd = -1;
	uv_timer_stop(&j->timer);
	if (!j->err_eof || !j->out_eof)
		uv_timer_start(&j->timer, on_grace, PIPE_GRACE_MS, 0);
	pipe_job_check(j);
}

