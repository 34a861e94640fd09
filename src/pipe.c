/*
 * pipe: one PIPE delivery from request to struct result. Owns the argv and
 * environment of a program (pipe_build), its stdin/stdout/stderr pipes,
 * the stream of the message into stdin, the bounded stderr capture, the
 * output/error files and the time limit. Promises: every run is reported
 * exactly once, from the loop; no file I/O on the loop thread; nothing is
 * freed before libuv is done with it. Never changes queue state.
 */
#include "pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Bytes read from the queue file (and from a pipe) at a time. */
#define PIPE_CHUNK (64 * 1024)
/* How long to wait for stderr/stdout EOF after the program's exit, in case
   a process outside its group still holds them. */
#define PIPE_GRACE_MS 2000
/* Stop reading a stream while this much of it waits to be written to its
   output or error file. */
#define PIPE_SINK_HIGH (1024 * 1024)
/* Largest single write of an in-memory message (uv_buf_t lengths are
   unsigned int). */
#define PIPE_MEM_CHUNK (1024 * 1024 * 1024)

struct pipe_module {
	uv_loop_t *loop;
	struct spawn_client *sp;
	struct logger *lg;
	struct pipe_settings s;		/* strings below are owned copies */
	char *base_dir, *app_dir, *path_env;
	int devnull;
	unsigned active;		/* started, not yet reported */
	unsigned alive;			/* not yet freed */
	bool closing;
};

struct pipe_job;

/* Data waiting to be appended to a file. */
struct sink_chunk {
	struct sink_chunk *next;
	size_t len, off;
	char data[];
};

/* An output-file or error-file: open, appends, close, one at a time. */
struct sink {
	struct pipe_job *job;
	const char *path;
	uv_stream_t *src;		/* the stream feeding it */
	uv_fs_t req;
	uv_file fd;
	bool busy, failed, paused, closed;
	struct sink_chunk *head, *tail;
	size_t queued;
};

struct pipe_job {
	struct pipe_module *pm;
	pipe_done_cb cb;
	void *arg;

	/* The copied request. */
	struct pipe_argv av;
	char *input_path;
	char *input_mem;
	uint64_t input_off, input_len;
	struct code_map codes;
	bool sync, stderr_tag;
	uint64_t time_limit_s;
	char *output_file, *error_file;

	/* [FILE]: the queue file, and the private copy given as fd 3. */
	char *app;			/* application name (spawn request) */
	char *file_path;		/* absolute queue file, or NULL */
	int file_fd;			/* read-only copy, or -1 */
	int copy_err;
	uv_work_t copy_w;

	/* Handles and requests; pending counts those libuv still holds. */
	int pending;
	uv_timer_t timer;
	uv_pipe_t in, err, out;
	bool timer_open, in_open, err_open, out_open;
	int in_rfd;			/* our copy of stdin's read end */
	uv_write_t wreq;
	uv_fs_t freq;			/* queue file: open, read, close */
	uv_file ffd;
	bool fbusy;
	char *fbuf;
	char *rbuf;			/* stderr/stdout read buffer */
	struct sink osink, esink;
	bool has_osink, has_esink;

	/* Progress. */
	uint64_t job_id;
	uint64_t t_start;
	uint64_t in_sent;		/* bytes handed to uv_write */
	bool in_all_sent, in_done;
	bool exited, err_eof, out_eof, timed_out, reported;
	bool started;			/* the helper said the program runs */
	bool nostart;			/* it did not within the time limit */
	bool stdin_consumed;
	struct spawn_exit ex;
	char *ex_why;
	struct buf errkeep;
	uint64_t err_total;

	/* Set when the run failed before or around the program. */
	bool prefailed;
	int pre_fail;			/* enum run_spawn_fail */
	const char *pre_why;
	char *pre_why_owned;
	const char *abort_why;		/* server-side error: deferred */
	int abort_err;
};

/* Log when a logger was given. */
static void pm_log(const struct pipe_module *pm, enum log_level l,
	const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Log when a logger was given. */
static void
pm_log(const struct pipe_module *pm, enum log_level l, const char *fmt, ...)
{
	va_list ap;

	if (pm->lg == NULL)
		return;
	va_start(ap, fmt);
	log_vmsg(pm->lg, LOG_PIPE, l, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* pipe_build                                                          */

/* True when s holds a control character. */
static bool
unsafe(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Push "NAME=value" unless value is NULL. */
static int
push_env(struct strv *e, const char *name, const char *value)
{
	struct buf b = BUF_INIT;
	char *s;
	int r;

	if (value == NULL)
		return 0;
	if ((r = buf_printf(&b, "%s=%s", name, value)) < 0 ||
	    (r = buf_steal(&b, &s)) < 0) {
		buf_free(&b);
		return r;
	}
	return strv_push_take(e, s);
}

/* Every value that reaches the program, with its name for *why. */
static int
check_values(const struct pipe_request *req, const struct pipe_settings *s,
	const char **why)
{
	const struct pipe_cmd *c = req->cmd;
	const struct {
		const char *v;
		const char *why;
	} vals[] = {
		{ req->queue_file, "unsafe value in the queue file name" },
		{ req->sender, "unsafe value in the return-path" },
		{ req->recipient, "unsafe value in the recipient" },
		{ req->orig_recipient,
		  "unsafe value in the original recipient" },
		{ req->queue_id, "unsafe value in the queue id" },
		{ req->delivery_id, "unsafe value in the delivery id" },
		{ s->path_env, "unsafe value in the PATH setting" },
		{ s->base_dir, "unsafe value in the base directory" },
		{ s->app_dir, "unsafe value in the application directory" },
	};

	for (size_t i = 0; i < c->params.n; i++)
		if (unsafe(c->params.v[i])) {
			*why = "unsafe value in a parameter";
			return -EINVAL;
		}
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (unsafe(vals[i].v)) {
			*why = vals[i].why;
			return -EINVAL;
		}
	return 0;
}

/* Build the program invocation; see pipe.h. */
int
pipe_build(const struct pipe_request *req, const struct pipe_settings *s,
	struct pipe_argv *out, const char **why)
{
	const struct pipe_cmd *c = req->cmd;
	struct pipe_argv a = PIPE_ARGV_INIT;
	struct buf path = BUF_INIT;
	const char *rcpt;
	int r;

	if (s->app_dir == NULL || s->app_dir[0] == '\0') {
		*why = "PIPE module disabled (no application directory)";
		return -ENOENT;
	}
	if (c == NULL) {
		*why = "no pipe command";
		return -EINVAL;
	}
	if ((r = pipe_app_check(c->app, why)) < 0)
		return r;
	if ((r = check_values(req, s, why)) < 0)
		return r;
	if ((c->tags & PIPE_TAG_FILE) && (req->queue_file == NULL ||
	    req->queue_file[0] == '\0')) {
		*why = "[FILE] without a queue file";
		return -EINVAL;
	}
	if ((c->tags & PIPE_TAG_FILE) && (s->base_dir == NULL ||
	    s->base_dir[0] == '\0')) {
		*why = "[FILE] without a base directory";
		return -EINVAL;
	}
	*why = "out of memory";
	r = buf_printf(&path, "%s%s%s", s->app_dir,
	    s->app_dir[strlen(s->app_dir) - 1] == '/' ? "" : "/", c->app);
	if (r == 0)
		r = buf_steal(&path, &a.path);
	if (r == 0 && (a.cwd = mp_strdup(c->tags & PIPE_TAG_FILE ?
	    s->base_dir : s->app_dir)) == NULL)
		r = -ENOMEM;
	if (r == 0)
		r = strv_push(&a.argv, c->app);
	for (size_t i = 0; r == 0 && i < c->params.n; i++)
		r = strv_push(&a.argv, c->params.v[i]);
	if (r == 0 && (c->tags & PIPE_TAG_FILE) &&
	    (r = strv_push(&a.argv, "-f")) == 0)
		r = strv_push(&a.argv, PIPE_FILE_ARG);
	if (r == 0 && (c->tags & PIPE_TAG_RETPATH) &&
	    (r = strv_push(&a.argv, "-p")) == 0)
		r = strv_push(&a.argv, req->sender ? req->sender : "");
	rcpt = req->orig_recipient ? req->orig_recipient :
	    req->recipient ? req->recipient : "";
	if (r == 0 && (c->tags & PIPE_TAG_RCPT) &&
	    (r = strv_push(&a.argv, "-r")) == 0)
		r = strv_push(&a.argv, rcpt);
	if (r == 0)
		r = push_env(&a.envp, "PATH", s->path_env ? s->path_env :
		    PIPE_DEFAULT_PATH);
	if (r == 0)
		r = push_env(&a.envp, "SENDER", req->sender);
	if (r == 0)
		r = push_env(&a.envp, "RECIPIENT", req->recipient);
	if (r == 0)
		r = push_env(&a.envp, "ORIGINAL_RECIPIENT",
		    req->orig_recipient);
	if (r == 0)
		r = push_env(&a.envp, "QUEUE_ID", req->queue_id);
	if (r == 0)
		r = push_env(&a.envp, "DELIVERY_ID", req->delivery_id);
	buf_free(&path);
	if (r < 0) {
		pipe_argv_free(&a);
		return r;
	}
	*why = NULL;
	*out = a;
	return 0;
}

/* Free an invocation. */
void
pipe_argv_free(struct pipe_argv *a)
{
	free(a->path);
	free(a->cwd);
	strv_free(&a->argv);
	strv_free(&a->envp);
	a->path = a->cwd = NULL;
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
	pm->base_dir = mp_strdup(s->base_dir);
	pm->app_dir = mp_strdup(s->app_dir);
	pm->path_env = mp_strdup(s->path_env);
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
static void
job_maybe_free(struct pipe_job *j)
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
	job_maybe_free(j);
}

/* Close a handle of the job if it is open. */
static void
job_close(struct pipe_job *j, uv_handle_t *h, bool *open)
{
	if (!*open)
		return;
	*open = false;
	j->pending++;
	uv_close(h, on_closed);
}

/* ------------------------------------------------------------------ */
/* Sinks: output-file and error-file.                                   */

/* Start the sink's next file operation (defined below). */
static void sink_pump(struct sink *k);
/* Report the job if it is complete (defined below). */
static void job_check(struct pipe_job *j);

/* Resume a paused source once the queue drained (defined below). */
static void sink_resume(struct sink *k);

/* Give up on the file; what is queued is dropped. */
static void
sink_fail(struct sink *k, int err)
{
	if (!k->failed)
		pm_log(k->job->pm, LOG_PROBLEMS, "cannot write %s: %s",
		    k->path, uv_strerror(err));
	k->failed = true;
	while (k->head) {
		struct sink_chunk *c = k->head;

		k->head = c->next;
		free(c);
	}
	k->tail = NULL;
	k->queued = 0;
	sink_resume(k);
}

/* The file was opened. */
static void
on_sink_open(uv_fs_t *req)
{
	struct sink *k = req->data;
	struct pipe_job *j = k->job;

	k->busy = false;
	j->pending--;
	if (req->result < 0)
		sink_fail(k, (int)req->result);
	else
		k->fd = (uv_file)req->result;
	uv_fs_req_cleanup(req);
	sink_resume(k);
	sink_pump(k);
	job_check(j);
	job_maybe_free(j);
}

/* A write finished (possibly partly). */
static void
on_sink_write(uv_fs_t *req)
{
	struct sink *k = req->data;
	struct pipe_job *j = k->job;

	k->busy = false;
	j->pending--;
	if (req->result < 0) {
		sink_fail(k, (int)req->result);
	} else if (k->head) {
		struct sink_chunk *c = k->head;

		c->off += (size_t)req->result;
		k->queued -= (size_t)req->result;
		if (c->off >= c->len) {
			k->head = c->next;
			if (k->head == NULL)
				k->tail = NULL;
			free(c);
		}
	}
	uv_fs_req_cleanup(req);
	sink_resume(k);
	sink_pump(k);
	job_check(j);
	job_maybe_free(j);
}

/* The file was closed. */
static void
on_sink_close(uv_fs_t *req)
{
	struct sink *k = req->data;
	struct pipe_job *j = k->job;

	k->busy = false;
	j->pending--;
	uv_fs_req_cleanup(req);
	job_maybe_free(j);
}

/* Start the next operation: open, write the head chunk, or close. */
static void
sink_pump(struct sink *k)
{
	struct pipe_job *j = k->job;
	uv_loop_t *loop = j->pm->loop;
	int r;

	if (k->busy || k->closed)
		return;
	k->req.data = k;
	if (k->fd < 0 && !k->failed && !j->reported) {
		r = uv_fs_open(loop, &k->req, k->path, O_WRONLY | O_APPEND |
		    O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600, on_sink_open);
		if (r < 0) {
			sink_fail(k, r);
			return;
		}
	} else if (k->fd >= 0 && k->head) {
		uv_buf_t b = uv_buf_init(k->head->data + k->head->off,
		    (unsigned)(k->head->len - k->head->off));

		r = uv_fs_write(loop, &k->req, k->fd, &b, 1, -1, on_sink_write);
		if (r < 0) {
			sink_fail(k, r);
			sink_pump(k);
			return;
		}
	} else if (j->reported && k->fd >= 0) {
		k->closed = true;
		r = uv_fs_close(loop, &k->req, k->fd, on_sink_close);
		k->fd = -1;
		if (r < 0)
			return;
	} else {
		if (j->reported)
			k->closed = true;
		return;
	}
	k->busy = true;
	j->pending++;
}

/* All queued data is in the file (or the file was given up). */
static bool
sink_flushed(const struct sink *k)
{
	return k->failed || (k->fd >= 0 && k->head == NULL && !k->busy);
}

/* Queue n bytes for the file; pause the source if too much waits. */
static void
sink_push(struct sink *k, const char *p, size_t n)
{
	struct sink_chunk *c;

	if (k->failed || n == 0)
		return;
	if ((c = malloc(sizeof(*c) + n)) == NULL) {
		sink_fail(k, UV_ENOMEM);
		return;
	}
	memcpy(c->data, p, n);
	c->len = n;
	c->off = 0;
	c->next = NULL;
	if (k->tail)
		k->tail->next = c;
	else
		k->head = c;
	k->tail = c;
	k->queued += n;
	if (k->queued > PIPE_SINK_HIGH && !k->paused && k->src &&
	    uv_is_active((uv_handle_t *)k->src)) {
		uv_read_stop(k->src);
		k->paused = true;
	}
	sink_pump(k);
}

/* ------------------------------------------------------------------ */
/* Completion.                                                         */

/* Close the queue file on the thread pool. */
static void file_close(struct pipe_job *j);

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
	pm_log(pm, LOG_ALL, "program %s pid %ld ended: %s %d, %.3fs",
	    j->av.argv.v ? j->av.argv.v[0] : "-", (long)info.pid,
	    o.end == RUN_EXITED ? "exit" : o.end == RUN_SIGNALED ? "signal" :
	    o.end == RUN_TIMED_OUT ? "time limit" : "not started", o.code,
	    info.seconds);
	j->cb(j->arg, &res, &info);
	result_clear(&res);

	/* Tear down what is left. */
	uv_timer_stop(&j->timer);
	job_close(j, (uv_handle_t *)&j->timer, &j->timer_open);
	job_close(j, (uv_handle_t *)&j->in, &j->in_open);
	job_close(j, (uv_handle_t *)&j->err, &j->err_open);
	job_close(j, (uv_handle_t *)&j->out, &j->out_open);
	if (j->in_rfd >= 0) {
		close(j->in_rfd);
		j->in_rfd = -1;
	}
	if (j->has_osink)
		sink_pump(&j->osink);
	if (j->has_esink)
		sink_pump(&j->esink);
	if (!j->fbusy)
		file_close(j);
	job_maybe_free(j);
}

/* Report when the program ended and its streams are drained. */
static void
job_check(struct pipe_job *j)
{
	if (j->reported || !j->exited || !j->err_eof || !j->out_eof)
		return;
	if (j->has_osink && !sink_flushed(&j->osink))
		return;
	if (j->has_esink && !sink_flushed(&j->esink))
		return;
	job_report(j);
}

/* Data or EOF on stderr or stdout (defined below). */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
/* Read buffer for stderr or stdout (defined below). */
static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b);

/* Reading the source stream may go on once the queue drained. */
static void
sink_resume(struct sink *k)
{
	if (!k->paused || k->queued > PIPE_SINK_HIGH / 2)
		return;
	k->paused = false;
	if (k->src && !uv_is_closing((uv_handle_t *)k->src))
		uv_read_start(k->src, on_alloc, on_read);
}

/* The grace period after exit ran out: stop waiting for EOF. */
static void
on_grace(uv_timer_t *t)
{
	struct pipe_job *j = t->data;

	if (!j->err_eof || !j->out_eof)
		pm_log(j->pm, LOG_PROBLEMS, "program %s pid %ld: output still "
		    "open %ums after exit, closing it", j->av.argv.v[0],
		    (long)j->ex.pid, PIPE_GRACE_MS);
	job_close(j, (uv_handle_t *)&j->err, &j->err_open);
	job_close(j, (uv_handle_t *)&j->out, &j->out_open);
	j->err_eof = j->out_eof = true;
	if (j->has_osink)
		j->osink.src = NULL;
	if (j->has_esink)
		j->esink.src = NULL;
	job_check(j);
}

/* Failure to start before the helper was asked: report from the loop. */
static void
on_prefail(uv_timer_t *t)
{
	job_report(t->data);
}

/* The time limit ran out: kill the whole process group. */
static void
on_limit(uv_timer_t *t)
{
	struct pipe_job *j = t->data;

	pm_log(j->pm, LOG_PROBLEMS, "program %s exceeded the time limit of "
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
static void
on_nostart(uv_timer_t *t)
{
	struct pipe_job *j = t->data;

	pm_log(j->pm, LOG_PROBLEMS, "program %s did not start within %llus",
	    j->av.argv.v[0], (unsigned long long)j->time_limit_s);
	j->nostart = true;
	spawn_cancel(j->pm->sp, j->job_id);
}

/* The helper started the program: its time limit starts now. */
static void
on_started(void *arg, pid_t pid)
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
static void
job_abort(struct pipe_job *j, const char *why, int err)
{
	if (j->abort_why == NULL) {
		j->abort_why = why;
		j->abort_err = err;
		pm_log(j->pm, LOG_PROBLEMS, "program %s: %s%s%s",
		    j->av.argv.v[0], why, err ? ": " : "",
		    err ? uv_strerror(err) : "");
	}
	if (!j->exited)
		spawn_kill(j->pm->sp, j->job_id);
}

/* ------------------------------------------------------------------ */
/* stderr and stdout.                                                   */

/* Hand out the job's read buffer (one read at a time per loop). */
static void
on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
	struct pipe_job *j = h->data;

	(void)size;
	*b = uv_buf_init(j->rbuf, PIPE_CHUNK);
}

/* Data or EOF on stderr or stdout. */
static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
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
				job_abort(j, "out of memory", UV_ENOMEM);
			j->err_total += (uint64_t)n;
			if (j->has_esink)
				sink_push(&j->esink, b->base, (size_t)n);
		} else if (j->has_osink) {
			sink_push(&j->osink, b->base, (size_t)n);
		}
		return;
	}
	if (n == 0)
		return;
	/* EOF or error: the stream is done. */
	if (is_err) {
		job_close(j, (uv_handle_t *)&j->err, &j->err_open);
		j->err_eof = true;
		if (j->has_esink)
			j->esink.src = NULL;
	} else {
		job_close(j, (uv_handle_t *)&j->out, &j->out_open);
		j->out_eof = true;
		if (j->has_osink)
			j->osink.src = NULL;
	}
	job_check(j);
}

/* ------------------------------------------------------------------ */
/* stdin.                                                              */

/*
 * All of the message was written: EOF for the program, once the helper
 * also lets go of the copy of the write end it holds (spawn_release).
 */
static void
stdin_finish(struct pipe_job *j)
{
	j->in_done = true;
	job_close(j, (uv_handle_t *)&j->in, &j->in_open);
	spawn_release(j->pm->sp, j->job_id);
}

/* Read the next chunk of the queue file (defined below). */
static void file_read_next(struct pipe_job *j);
/* Write the next piece of an in-memory message (defined below). */
static void mem_write_next(struct pipe_job *j);

/* The queue file was closed (after the program ended). */
static void
on_file_closed(uv_fs_t *req)
{
	struct pipe_job *j = req->data;

	uv_fs_req_cleanup(req);
	j->fbusy = false;
	j->pending--;
	job_maybe_free(j);
}

/* Close the queue file on the thread pool. */
static void
file_close(struct pipe_job *j)
{
	if (j->ffd < 0)
		return;
	j->freq.data = j;
	if (uv_fs_close(j->pm->loop, &j->freq, j->ffd, on_file_closed) == 0) {
		j->fbusy = true;
		j->pending++;
	}
	j->ffd = -1;
}

/* A chunk of stdin was written (or cancelled at exit). */
static void
on_in_written(uv_write_t *w, int status)
{
	struct pipe_job *j = w->data;

	j->pending--;
	if (status == 0 && !j->exited && !j->reported) {
		if (j->in_sent == j->input_len)
			stdin_finish(j);
		else if (j->input_path)
			file_read_next(j);
		else
			mem_write_next(j);
	} else if (j->input_path && !j->fbusy) {
		file_close(j);
	}
	job_maybe_free(j);
}

/* Write n bytes at p to the program's stdin. */
static void
in_write(struct pipe_job *j, char *p, size_t n)
{
	uv_buf_t b = uv_buf_init(p, (unsigned)n);
	int r;

	j->in_sent += n;
	if (j->in_sent == j->input_len)
		j->in_all_sent = true;
	j->wreq.data = j;
	if ((r = uv_write(&j->wreq, (uv_stream_t *)&j->in, &b, 1,
	    on_in_written)) < 0) {
		j->in_all_sent = false;
		job_abort(j, "cannot write to the program", r);
		return;
	}
	j->pending++;
}

/* Write the next piece of an in-memory message. */
static void
mem_write_next(struct pipe_job *j)
{
	uint64_t left = j->input_len - j->in_sent;

	in_write(j, j->input_mem + j->in_sent, left < PIPE_MEM_CHUNK ?
	    (size_t)left : PIPE_MEM_CHUNK);
}

/* A chunk of the queue file was read. */
static void
on_file_read(uv_fs_t *req)
{
	struct pipe_job *j = req->data;
	ssize_t n = req->result;

	uv_fs_req_cleanup(req);
	j->fbusy = false;
	j->pending--;
	if (j->exited || j->reported) {
		file_close(j);
	} else if (n < 0) {
		job_abort(j, "cannot read the message", (int)n);
		file_close(j);
	} else if (n == 0) {
		job_abort(j, "message file shorter than recorded", 0);
		file_close(j);
	} else {
		if (j->in_sent + (uint64_t)n == j->input_len)
			file_close(j);
		in_write(j, j->fbuf, (size_t)n);
	}
	job_maybe_free(j);
}

/* Read the next chunk of the queue file. */
static void
file_read_next(struct pipe_job *j)
{
	uint64_t left = j->input_len - j->in_sent;
	uv_buf_t b = uv_buf_init(j->fbuf, (unsigned)(left < PIPE_CHUNK ?
	    left : PIPE_CHUNK));
	int r;

	j->freq.data = j;
	r = uv_fs_read(j->pm->loop, &j->freq, j->ffd, &b, 1,
	    (int64_t)(j->input_off + j->in_sent), on_file_read);
	if (r < 0) {
		job_abort(j, "cannot read the message", r);
		file_close(j);
		return;
	}
	j->fbusy = true;
	j->pending++;
}

/* The queue file was opened. */
static void
on_file_open(uv_fs_t *req)
{
	struct pipe_job *j = req->data;
	ssize_t r = req->result;

	uv_fs_req_cleanup(req);
	j->fbusy = false;
	j->pending--;
	if (r < 0) {
		job_abort(j, "cannot open the message", (int)r);
	} else {
		j->ffd = (uv_file)r;
		if (j->exited || j->reported)
			file_close(j);
		else
			file_read_next(j);
	}
	job_maybe_free(j);
}

/* Start feeding stdin: nothing, memory, or the queue file. */
static void
stdin_start(struct pipe_job *j, bool file_tag)
{
	int r;

	if (file_tag || j->input_len == 0) {
		j->in_all_sent = true;
		stdin_finish(j);
	} else if (j->input_path == NULL) {
		mem_write_next(j);
	} else {
		j->freq.data = j;
		r = uv_fs_open(j->pm->loop, &j->freq, j->input_path,
		    O_RDONLY | O_CLOEXEC, 0, on_file_open);
		if (r < 0) {
			job_abort(j, "cannot open the message", r);
			return;
		}
		j->fbusy = true;
		j->pending++;
	}
}

/* ------------------------------------------------------------------ */
/* The program's end.                                                  */

/* The helper reported the program's end (or failure to start). */
static void
on_exit_cb(void *arg, const struct spawn_exit *ex)
{
	struct pipe_job *j = arg;
	int avail = 0;

	j->exited = true;
	j->ex = *ex;
	j->ex.why = NULL;
	if (ex->why)
		j->ex_why = mp_strdup(ex->why);
	/* Did the program read all of its input? Everything must have been
	   handed to the pipe, and nothing may be left in it. */
	if (j->in_done || (j->in_all_sent && j->in_open &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&j->in) == 0))
		j->stdin_consumed = ioctl(j->in_rfd, FIONREAD, &avail) == 0 &&
		    avail == 0;
	else
		j->stdin_consumed = false;
	job_close(j, (uv_handle_t *)&j->in, &j->in_open);
	close(j->in_rfd);
	j->in_rfd = -1;
	uv_timer_stop(&j->timer);
	if (!j->err_eof || !j->out_eof)
		uv_timer_start(&j->timer, on_grace, PIPE_GRACE_MS, 0);
	job_check(j);
}

/* ------------------------------------------------------------------ */
/* pipe_run                                                            */

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
	uv_timer_start(&j->timer, on_prefail, 0, 0);
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

/* Set up a sink for path, fed by src. */
static void
sink_init(struct sink *k, struct pipe_job *j, const char *path,
	uv_stream_t *src)
{
	k->job = j;
	k->path = path;
	k->src = src;
	k->fd = -1;
	sink_pump(k);
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
	if (read && (r = uv_read_start((uv_stream_t *)p, on_alloc,
	    on_read)) < 0)
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
	    .fd_3 = j->file_fd, .started = on_started };
	r = spawn_run(pm->sp, &sr, on_exit_cb, j, &j->job_id);
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
	/* From here on the helper reports exactly once (on_exit_cb). The
	   time limit runs from the program's start (on_started); until
	   then the same span bounds the wait for it. */
	j->in_rfd = in[0];
	if (j->time_limit_s > 0)
		uv_timer_start(&j->timer, on_nostart, j->time_limit_s * 1000,
		    0);
	if ((r = pipe_wrap(j, &j->err, &j->err_open, err[0], true)) < 0) {
		j->err_eof = true;
		job_abort(j, "cannot read the program's stderr", r);
	}
	if (j->output_file == NULL)
		j->out_eof = true;
	else if ((r = pipe_wrap(j, &j->out, &j->out_open, out[0], true)) < 0) {
		j->out_eof = true;
		job_abort(j, "cannot read the program's stdout", r);
	}
	if (j->output_file && !j->out_eof) {
		j->has_osink = true;
		sink_init(&j->osink, j, j->output_file, (uv_stream_t *)&j->out);
	}
	if (j->error_file && !j->err_eof) {
		j->has_esink = true;
		sink_init(&j->esink, j, j->error_file, (uv_stream_t *)&j->err);
	}
	if ((r = pipe_wrap(j, &j->in, &j->in_open, in[1], false)) < 0)
		job_abort(j, "cannot write to the program", r);
	else
		stdin_start(j, j->file_path != NULL);
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
	job_maybe_free(j);
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
	j->ffd = -1;
	j->file_fd = -1;
	j->t_start = uv_hrtime();
	if ((r = job_copy(j, req)) < 0 || (r = uv_timer_init(pm->loop,
	    &j->timer)) < 0) {
		j->reported = true;
		pm->alive++;
		job_maybe_free(j);
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
