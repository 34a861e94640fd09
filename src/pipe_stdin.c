/*
 * pipe_stdin: the message into a program's stdin, from memory or streamed
 * from the queue file (at its offset, for its recorded length) on the
 * thread pool, one chunk in flight at a time; end-of-file once all was
 * written and the helper let go of its copy of the write end. A read or
 * write that fails aborts the job (deferred); a file shorter than recorded
 * is an error, never a short message.
 */
#include "pipe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

/* Largest single write of an in-memory message (uv_buf_t lengths are
   unsigned int). */
#define PIPE_MEM_CHUNK (1024 * 1024 * 1024)

/*
 * All of the message was written: EOF for the program, once the helper
 * also lets go of the copy of the write end it holds (spawn_release).
 */
static void
stdin_finish(struct pipe_job *j)
{
	j->in_done = true;
	pipe_job_close(j, (uv_handle_t *)&j->in, &j->in_open);
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
	pipe_job_maybe_free(j);
}

/* Close the queue file on the thread pool. */
void
pipe_file_close(struct pipe_job *j)
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
		pipe_file_close(j);
	}
	pipe_job_maybe_free(j);
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
		pipe_job_abort(j, "cannot write to the program", r);
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
		pipe_file_close(j);
	} else if (n < 0) {
		pipe_job_abort(j, "cannot read the message", (int)n);
		pipe_file_close(j);
	} else if (n == 0) {
		pipe_job_abort(j, "message file shorter than recorded", 0);
		pipe_file_close(j);
	} else {
		if (j->in_sent + (uint64_t)n == j->input_len)
			pipe_file_close(j);
		in_write(j, j->fbuf, (size_t)n);
	}
	pipe_job_maybe_free(j);
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
		pipe_job_abort(j, "cannot read the message", r);
		pipe_file_close(j);
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
		pipe_job_abort(j, "cannot open the message", (int)r);
	} else {
		j->ffd = (uv_file)r;
		if (j->exited || j->reported)
			pipe_file_close(j);
		else
			file_read_next(j);
	}
	pipe_job_maybe_free(j);
}

/* Start feeding stdin: nothing, memory, or the queue file. */
void
pipe_stdin_start(struct pipe_job *j, bool file_tag)
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
			pipe_job_abort(j, "cannot open the message", r);
			return;
		}
		j->fbusy = true;
		j->pending++;
	}
}

