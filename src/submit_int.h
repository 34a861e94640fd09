/*
 * submit_int.h: what the pieces of the Submitted scanner share (submit.c,
 * submit_read.c, submit_job.c): the scanner and job structures and the
 * functions named submit__*; nothing else includes it.
 */
#ifndef MP_SUBMIT_INT_H
#define MP_SUBMIT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <uv.h>

#include "buf.h"
#include "msghdr.h"
#include "strv.h"
#include "submit.h"
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
#define SUBMIT_PW_MAX (1 << 20)		/* getpwuid_r buffer, at most */

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
	JS_READING,	/* submit__work_read on the pool */
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
	char *submitter;	/* the owner's login@hostname, or NULL */
	const char *owner_why;	/* why there is none ("no passwd entry") */
	int owner_err;		/* the owner's look-up failed (-errno) */
	const char *bad;	/* reason to rename to .bad */
	char *bad_text;		/* owned detail for the log */
	bool vanished, submit__forgotten;
	bool waiting;		/* not complete yet by subready's rules */
	bool changed;		/* changed while read: retry later */
	bool more_header;	/* the header goes on past the first read */
	bool streamed;		/* too large to hold: the body is copied */
	bool stream_counted;	/* counted in sb->streams */
};

/* submit.c */
/* Is (name, dev, ino) a file that was queued already? */
bool submit__forgotten(const struct submit *sb, const char *name, dev_t dev,
	ino_t ino);
/* Start jobs for pending names while there is room. */
void submit__pump(struct submit *sb);
/* List the folder (on the thread pool). */
void submit__start_scan(struct submit *sb);
/* Call the stopped callback when idle. */
void submit__check_stopped(struct submit *sb);

/* submit_read.c */
/* Monotonic milliseconds (the clock of subready's looks). */
uint64_t submit__mono_ms(void);
/* Pool: is the open file still what it was when it was first read? */
bool submit__unchanged(const struct sub_job *j);
/* Worker: open the .sub safely; read a small one, or the start of it. */
void submit__work_read(uv_work_t *w);
/* Worker: its turn came; read the rest of a long header. */
void submit__work_header(uv_work_t *w);

/* submit_job.c */
/* Start reading one file. */
int submit__start_job(struct submit *sb, const char *name);

#endif
