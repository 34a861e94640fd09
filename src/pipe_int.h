/*
 * pipe_int: what the files of the pipe module share (pipe.c the module,
 * a job's life and its end; pipe_run.c starting a job; pipe_stdin.c
 * feeding the message; pipe_sink.c the output and error files). Private:
 * only those files include it.
 */
#ifndef MP_PIPE_INT_H
#define MP_PIPE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "msgsrc.h"
#include "pipe.h"

/* Bytes read from the queue file (and from a pipe) at a time. */
#define PIPE_CHUNK (64 * 1024)

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
	struct msgsrc src;		/* the message: open, read, close */
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
void pipe_log(const struct pipe_module *pm, enum log_level l,
	const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* pipe.c: a job's life. */
/* Free the job once nothing refers to it. */
void pipe_job_maybe_free(struct pipe_job *j);
/* Close a handle of the job if it is open. */
void pipe_job_close(struct pipe_job *j, uv_handle_t *h, bool *open);
/* Report when the program ended and its streams are drained. */
void pipe_job_check(struct pipe_job *j);
/* Something failed on our side: kill the program, defer the delivery. */
void pipe_job_abort(struct pipe_job *j, const char *why, int err);
/* Read buffer for stderr or stdout. */
void pipe_on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b);
/* Data or EOF on stderr or stdout. */
void pipe_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
/* Failure to start before the helper was asked: report from the loop. */
void pipe_on_prefail(uv_timer_t *t);
/* The program has not started within the time limit. */
void pipe_on_nostart(uv_timer_t *t);
/* The helper started the program: its time limit starts now. */
void pipe_on_started(void *arg, pid_t pid);
/* The helper reported the program's end (or failure to start). */
void pipe_on_exit(void *arg, const struct spawn_exit *ex);

/* pipe_sink.c: output-file and error-file. */
/* Set up a sink for path, fed by src. */
void pipe_sink_init(struct sink *k, struct pipe_job *j, const char *path,
	uv_stream_t *src);
/* Start the sink's next file operation. */
void pipe_sink_pump(struct sink *k);
/* Queue n bytes at p for the file; pauses the source when too much waits. */
void pipe_sink_push(struct sink *k, const char *p, size_t n);
/* Everything queued was written and the file closed (or given up). */
bool pipe_sink_flushed(const struct sink *k);

/* pipe_stdin.c: the message into the program's stdin. */
/* Describe the job's message (j->input_*) for reading: after job_copy. */
void pipe_stdin_init(struct pipe_job *j);
/* Start feeding stdin: nothing, memory, or the queue file. */
void pipe_stdin_start(struct pipe_job *j, bool file_tag);
/* Close the queue file on the thread pool. */
void pipe_file_close(struct pipe_job *j);

#endif
