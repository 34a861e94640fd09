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
on_file_closed(struct pipe_job *j)
{
	j->pending--;
	pipe_job_maybe_free(j);
}

/* Close the queue file on the thread pool. */
void
pipe_file_close(struct pipe_job *j)
{
	if (msgsrc_close(&j->src) == 1)
		j->pending++;
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
	} else if (j->input_path && !msgsrc_busy(&j->src)) {
		pipe_file_close(j);
	}
	pipe_job_maybe_free(j);
}

/* Write n bytes at p to the program's stdin. */
static void
in_write(struct pipe_job *j, const char *p, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
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
	size_t n;
	const char *p = msgsrc_mem_at(&j->src, j->in_sent, PIPE_MEM_CHUNK,
	    &n);

	in_write(j, p, n);
}

/* A chunk of the queue file was read. */
static void
on_file_read(struct pipe_job *j, ssize_t n)
{
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
	int r = msgsrc_read(&j->src, j->in_sent, j->fbuf, PIPE_CHUNK);

	if (r < 0) {
		pipe_job_abort(j, "cannot read the message", r);
		pipe_file_close(j);
		return;
	}
	j->pending++;
}

/* The queue file was opened. */
static void
on_file_open(struct pipe_job *j, ssize_t r)
{
	j->pending--;
	if (r < 0) {
		pipe_job_abort(j, "cannot open the message", (int)r);
	} else {
		if (j->exited || j->reported)
			pipe_file_close(j);
		else
			file_read_next(j);
	}
	pipe_job_maybe_free(j);
}

/* An operation on the queue file finished. */
static void
on_src(struct msgsrc *ms, enum msgsrc_op op, ssize_t r)
{
	struct pipe_job *j = ms->data;

	if (op == MSGSRC_OPEN)
		on_file_open(j, r);
	else if (op == MSGSRC_READ)
		on_file_read(j, r);
	else
		on_file_closed(j);
}

/* Describe the job's message, copied by job_copy, for reading. */
void
pipe_stdin_init(struct pipe_job *j)
{
	msgsrc_init(&j->src, j->pm->loop, j->input_path, j->input_mem,
	    j->input_off, j->input_len, on_src, j);
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
		r = msgsrc_open(&j->src);
		if (r < 0) {
			pipe_job_abort(j, "cannot open the message", r);
			return;
		}
		j->pending++;
	}
}

