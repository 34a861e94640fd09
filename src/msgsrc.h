/*
 * msgsrc: reading one stored message, for the modules that hand it on
 * (pipe writes it to a program's stdin, relay sends it in DATA). A
 * message lives either in a queue file, len bytes from offset off, or in
 * memory. A file message is opened, read in chunks into the caller's
 * buffer and closed on the libuv thread pool, one operation at a time,
 * each completion reported through the callback; a memory message is
 * read in place. msgsrc_each reads a whole file message at once, for a
 * caller already on the thread pool. A file shorter than recorded is
 * reported as such, never taken for a short message. All functions
 * return 0 or -errno (libuv's error codes are -errno on Linux).
 */
#ifndef MP_MSGSRC_H
#define MP_MSGSRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The file operation a callback reports. */
enum msgsrc_op {
	MSGSRC_OPEN,		/* r: 0, or -errno */
	MSGSRC_READ,		/* r: bytes read (> 0), 0 when the file
				   ends before the message, or -errno */
	MSGSRC_CLOSE,		/* r: 0, or -errno (the fd is gone anyway) */
};

struct msgsrc;

/*
 * An operation started by msgsrc_open, msgsrc_read or msgsrc_close
 * finished (from the loop). The callback may free the struct msgsrc:
 * msgsrc does not touch it after the call.
 */
typedef void (*msgsrc_cb)(struct msgsrc *ms, enum msgsrc_op op, ssize_t r);

struct msgsrc {
	void *data;		/* the caller's, for the callback */
	/* Private. */
	uv_loop_t *loop;
	const char *path;	/* the queue file, or NULL: in memory */
	const char *mem;
	uint64_t off, len;
	msgsrc_cb cb;
	enum msgsrc_op op;	/* the one running, when busy */
	bool busy;
	uv_file fd;		/* -1 when not open */
	uv_fs_t req;
};

/*
 * Describe a message: the queue file path (len bytes from off), or, with
 * path NULL, the len bytes at mem. path and mem are borrowed: they must
 * outlive ms. Opens nothing. To reuse ms for another message, its file
 * must be closed and no operation running (msgsrc_close, then wait for
 * MSGSRC_CLOSE). loop and cb may be NULL for msgsrc_each alone.
 */
void msgsrc_init(struct msgsrc *ms, uv_loop_t *loop, const char *path,
	const char *mem, uint64_t off, uint64_t len, msgsrc_cb cb,
	void *data);
/* True when the message is in a file (to open, read and close). */
bool msgsrc_is_file(const struct msgsrc *ms);
/* True while an open, read or close runs. */
bool msgsrc_busy(const struct msgsrc *ms);
/* Start opening the file (read-only): 0, then MSGSRC_OPEN; or -errno. */
int msgsrc_open(struct msgsrc *ms);
/*
 * Start reading the bytes of the message from pos on, at most max of
 * them, into buf (which must stay valid until the callback): 0, then
 * MSGSRC_READ; or -errno (-EINVAL when nothing is left, the file is not
 * open or an operation runs).
 */
int msgsrc_read(struct msgsrc *ms, uint64_t pos, char *buf, size_t max);
/*
 * Close the file if it is open: 1 when a close was started (then
 * MSGSRC_CLOSE), 0 when nothing was left to wait for, -EBUSY while an
 * operation runs.
 */
int msgsrc_close(struct msgsrc *ms);
/* A message in memory: its bytes from pos on, at most max; *n of them. */
const char *msgsrc_mem_at(const struct msgsrc *ms, uint64_t pos,
	size_t max, size_t *n);

/* Called by msgsrc_each for each chunk; a negative return stops it. */
typedef int (*msgsrc_chunk_fn)(void *arg, const char *p, size_t n);

/*
 * Blocking (thread pool only): read the whole message, in chunks of at
 * most size bytes through buf (a memory message in one piece, buf
 * unused), calling fn for each. 0, or -errno with *why set to a constant
 * text ("cannot open the message", "cannot read the message", "message
 * file shorter than recorded" with -EIO) or fn's error with *why NULL.
 */
int msgsrc_each(const struct msgsrc *ms, char *buf, size_t size,
	msgsrc_chunk_fn fn, void *arg, const char **why);

#endif
