/*
 * pipe_run: starting one delivery. Copies the request, builds the argv
 * (pipe_build), makes a [FILE] program's private read-only copy of its
 * queue file on the thread pool, creates the stdin/stderr/stdout pipes and
 * hands the program to the spawn helper; a failure before the helper was
 * asked is reported from the loop, never from inside pipe_run.
 */
#include "pipe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Deep copy of a code map. */
static int
codes_copy(struct code_map *dst, const struct code_map *src)
{
	if (src == NULL || src->n == 0)
		return 0;
	if ((dst->v = calloc(src->n, sizeof(*dst->v))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		dst->v[i] = src->v[i];
		dst->v[i].text = NULL;
		dst->n = i + 1;
		if (src->v[i].text &&
		    (dst->v[i].text = strdup(src->v[i].text)) == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* Copy what the run needs of req into j. */
static int
job_copy(struct pipe_job *j, const struct pipe_request *req)
{
	j->input_off = req->input_off;
	j->input_len = req->input_len;
	j->sync = req->sync;
	j->stderr_tag = req->cmd && (req->cmd->tags & PIPE_TAG_STDERR);
	j->time_limit_s = req->time_limit_s ? req->time_limit_s :
	    j->pm->s.time_limit_s;
	if ((req->input_path && !(j->input_path =
	    strdup(req->input_path))) ||
	    (req->output_file && !(j->output_file =
	    strdup(req->output_file))) ||
	    (req->error_file && !(j->error_file = strdup(req->error_file))))
		return -ENOMEM;
	if (req->input_path == NULL && req->input_len > 0) {
		if (req->input_mem == NULL)
			return -EINVAL;
		if ((j->input_mem = malloc((size_t)req->input_len)) == NULL)
			return -ENOMEM;
		memcpy(j->input_mem, req->input_mem, (size_t)req->input_len);
	}
	if (req->input_path && (j->fbuf = malloc(PIPE_CHUNK)) == NULL)
		return -ENOMEM;
	pipe_stdin_init(j);
	if ((j->rbuf = malloc(PIPE_CHUNK)) == NULL)
		return -ENOMEM;
	return codes_copy(&j->codes, req->codes);
}

/* Report a failure to start from the loop (never synchronously). */
static void
job_prefail(struct pipe_job *j, int fail, const char *why)
{
	j->prefailed = true;
	j->pre_fail = fail;
	j->pre_why = why;
	uv_timer_start(&j->timer, pipe_on_prefail, 0, 0);
}

/* Report a temporary failure with an errno text. */
static void
job_prefail_err(struct pipe_job *j, const char *what, int err)
{
	struct buf b = BUF_INIT;

	if (buf_printf(&b, "%s: %s", what, uv_strerror(err)) == 0 &&
	    buf_steal(&b, &j->pre_why_owned) == 0)
		job_prefail(j, SPAWN_FAIL_TEMP, j->pre_why_owned);
	else
		job_prefail(j, SPAWN_FAIL_TEMP, what);
	buf_free(&b);
}

/* Wrap fd in one of the job's pipe handles and start reading. */
static int
pipe_wrap(struct pipe_job *j, uv_pipe_t *p, bool *open, int fd, bool read)
{
	int r;

	if ((r = uv_pipe_init(j->pm->loop, p, 0)) < 0) {
		close(fd);
		return r;
	}
	p->data = j;
	*open = true;
	if ((r = uv_pipe_open(p, fd)) < 0) {
		close(fd);
		return r;
	}
	if (read && (r = uv_read_start((uv_stream_t *)p, pipe_on_alloc,
	    pipe_on_read)) < 0)
		return r;
	return 0;
}

/* Hand the program to the helper, with pipes for stdin/stderr/stdout. */
static void
job_spawn(struct pipe_job *j)
{
	struct pipe_module *pm = j->pm;
	struct spawn_req sr;
	int in[2] = { -1, -1 }, err[2] = { -1, -1 }, out[2] = { -1, -1 };
	int r;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    (j->output_file && pipe2(out, O_CLOEXEC) < 0)) {
		r = -errno;
		for (int i = 0; i < 2; i++) {
			if (in[i] >= 0)
				close(in[i]);
			if (err[i] >= 0)
				close(err[i]);
		}
		job_prefail_err(j, "cannot create pipes", r);
		return;
	}
	sr = (struct spawn_req){ .dir = pm->s.app_dir, .name = j->app,
	    .argv = j->av.argv.v, .envp = j->av.envp.v, .cwd = j->av.cwd,
	    .fd_in = in[0], .fd_out = j->output_file ? out[1] : pm->devnull,
	    .fd_err = err[1], .fd_hold = in[1], .has_fd_3 = j->file_fd >= 0,
	    .fd_3 = j->file_fd, .started = pipe_on_started };
	r = spawn_run(pm->sp, &sr, pipe_on_exit, j, &j->job_id);
	close(err[1]);
	if (out[1] >= 0)
		close(out[1]);
	if (j->file_fd >= 0) {
		close(j->file_fd);
		j->file_fd = -1;
	}
	if (r < 0) {
		close(in[0]);
		close(in[1]);
		close(err[0]);
		if (out[0] >= 0)
			close(out[0]);
		job_prefail_err(j, "cannot start program", r);
		return;
	}
	/* From here on the helper reports exactly once (pipe_on_exit). The
	   time limit runs from the program's start (pipe_on_started); until
	   then the same span bounds the wait for it. */
	j->in_rfd = in[0];
	if (j->time_limit_s > 0)
		uv_timer_start(&j->timer, pipe_on_nostart,
		    j->time_limit_s * 1000, 0);
	if ((r = pipe_wrap(j, &j->err, &j->err_open, err[0], true)) < 0) {
		j->err_eof = true;
		pipe_job_abort(j, "cannot read the program's stderr", r);
	}
	if (j->output_file == NULL)
		j->out_eof = true;
	else if ((r = pipe_wrap(j, &j->out, &j->out_open, out[0], true)) < 0) {
		j->out_eof = true;
		pipe_job_abort(j, "cannot read the program's stdout", r);
	}
	if (j->output_file && !j->out_eof) {
		j->has_osink = true;
		pipe_sink_init(&j->osink, j, j->output_file,
		    (uv_stream_t *)&j->out);
	}
	if (j->error_file && !j->err_eof) {
		j->has_esink = true;
		pipe_sink_init(&j->esink, j, j->error_file,
		    (uv_stream_t *)&j->err);
	}
	if ((r = pipe_wrap(j, &j->in, &j->in_open, in[1], false)) < 0)
		pipe_job_abort(j, "cannot write to the program", r);
	else
		pipe_stdin_start(j, j->file_path != NULL);
}

/*
 * Worker: the [FILE] program's private copy of its queue file, an unnamed
 * file (O_TMPFILE) beside it, mode 0444, handed over read-only: the
 * program can open /dev/fd/3 and read it, cannot change it, and no other
 * program can reach it by any name (docs/SECURITY.md).
 */
static void
copy_work(uv_work_t *w)
{
	struct pipe_job *j = w->data;
	char *dir = strdup(j->file_path), *slash, self[64];
	int src = -1, rw = -1, ro = -1, e = 0;
	struct stat st;
	off_t left;

	if (dir == NULL) {
		j->copy_err = -ENOMEM;
		return;
	}
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if ((src = open(j->file_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 ||
	    fstat(src, &st) < 0 ||
	    (rw = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0444)) < 0) {
		e = -errno;
		goto out;
	}
	for (left = st.st_size; left > 0 && e == 0; ) {
		ssize_t n = copy_file_range(src, NULL, rw, NULL, (size_t)left,
		    0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			e = n < 0 ? -errno : -EIO;
		else
			left -= n;
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", rw);
	if (e == 0 && (fchmod(rw, 0444) < 0 ||
	    (ro = open(self, O_RDONLY | O_CLOEXEC)) < 0))
		e = -errno;
out:
	if (src >= 0)
		close(src);
	if (rw >= 0)
		close(rw);
	free(dir);
	j->copy_err = e;
	j->file_fd = e == 0 ? ro : -1;
	if (e < 0 && ro >= 0)
		close(ro);
}

/* Loop: the [FILE] copy is made (or not): start the program. */
static void
copy_after(uv_work_t *w, int status)
{
	struct pipe_job *j = w->data;

	j->pending--;
	if (status < 0 || j->copy_err < 0)
		job_prefail_err(j, "cannot copy the queue file for [FILE]",
		    status < 0 ? status : j->copy_err);
	else
		job_spawn(j);
	pipe_job_maybe_free(j);
}

/* Start one delivery; see pipe.h. */
int
pipe_run(struct pipe_module *pm, const struct pipe_request *req,
	pipe_done_cb cb, void *arg)
{
	struct pipe_job *j = calloc(1, sizeof(*j));
	struct buf path = BUF_INIT;
	const char *why = NULL;
	int r;

	if (j == NULL)
		return -ENOMEM;
	j->pm = pm;
	j->cb = cb;
	j->arg = arg;
	j->in_rfd = -1;
	j->file_fd = -1;
	j->t_start = uv_hrtime();
	if ((r = job_copy(j, req)) < 0 || (r = uv_timer_init(pm->loop,
	    &j->timer)) < 0) {
		j->reported = true;
		pm->alive++;
		pipe_job_maybe_free(j);
		return r;
	}
	j->timer.data = j;
	j->timer_open = true;
	pm->alive++;
	pm->active++;

	r = pipe_build(req, &pm->s, &j->av, &why);
	if (r == -ENOENT) {
		job_prefail(j, SPAWN_FAIL_DISABLED, why);
		return 0;
	}
	if (r == -EINVAL) {
		/* A refused application name reads like a missing one. */
		const char *w2;
		bool bad_app = req->cmd &&
		    pipe_app_check(req->cmd->app, &w2) < 0;

		job_prefail(j, bad_app ? SPAWN_FAIL_NOAPP : SPAWN_FAIL_EXEC,
		    why);
		return 0;
	}
	if (r < 0) {
		job_prefail(j, SPAWN_FAIL_TEMP, "out of memory");
		return 0;
	}
	if ((j->app = strdup(req->cmd->app)) == NULL) {
		job_prefail(j, SPAWN_FAIL_TEMP, "out of memory");
		return 0;
	}
	if (!(req->cmd->tags & PIPE_TAG_FILE)) {
		job_spawn(j);
		return 0;
	}
	/* [FILE]: make the program's copy on the pool first. */
	if ((r = buf_printf(&path, "%s/%s", pm->s.base_dir,
	    req->queue_file)) < 0 || (r = buf_steal(&path, &j->file_path)) < 0) {
		buf_free(&path);
		job_prefail(j, SPAWN_FAIL_TEMP, "out of memory");
		return 0;
	}
	j->copy_w.data = j;
	if ((r = uv_queue_work(pm->loop, &j->copy_w, copy_work,
	    copy_after)) < 0) {
		job_prefail_err(j, "cannot copy the queue file for [FILE]", r);
		return 0;
	}
	j->pending++;
	return 0;
}
