/*
 * pipe_sink: a job's output-file and error-file. Appends what the
 * program's stdout or stderr gives to its file on the thread pool, one
 * operation at a time (open, writes, close), and pauses reading the
 * stream while too much waits. A file that fails is given up (logged, what
 * is queued dropped); the delivery goes on.
 */
#include "pipe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

/* Stop reading a stream while this much of it waits to be written to its
   output or error file. */
#define PIPE_SINK_HIGH (1024 * 1024)

/* Resume a paused source once the queue drained (defined below). */
static void sink_resume(struct sink *k);

/* Give up on the file; what is queued is dropped. */
static void
sink_fail(struct sink *k, int err)
{
	if (!k->failed)
		pipe_log(k->job->pm, LOG_PROBLEMS, "cannot write %s: %s",
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

/* After an open or a write: go on with the sink and its job. */
static void
sink_done(struct sink *k, uv_fs_t *req)
{
	struct pipe_job *j = k->job;

	uv_fs_req_cleanup(req);
	sink_resume(k);
	pipe_sink_pump(k);
	pipe_job_check(j);
	pipe_job_maybe_free(j);
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
	sink_done(k, req);
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
	sink_done(k, req);
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
	pipe_job_maybe_free(j);
}

/* Start the next operation: open, write the head chunk, or close. */
void
pipe_sink_pump(struct sink *k)
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
			pipe_sink_pump(k);
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
bool
pipe_sink_flushed(const struct sink *k)
{
	return k->failed || (k->fd >= 0 && k->head == NULL && !k->busy);
}

/* Queue n bytes for the file; pause the source if too much waits. */
void
pipe_sink_push(struct sink *k, const char *p, size_t n)
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
	pipe_sink_pump(k);
}

/* Reading the source stream may go on once the queue drained. */
static void
sink_resume(struct sink *k)
{
	if (!k->paused || k->queued > PIPE_SINK_HIGH / 2)
		return;
	k->paused = false;
	if (k->src && !uv_is_closing((uv_handle_t *)k->src))
		uv_read_start(k->src, pipe_on_alloc, pipe_on_read);
}

/* Set up a sink for path, fed by src. */
void
pipe_sink_init(struct sink *k, struct pipe_job *j, const char *path,
	uv_stream_t *src)
{
	k->job = j;
	k->path = path;
	k->src = src;
	k->fd = -1;
	pipe_sink_pump(k);
}

