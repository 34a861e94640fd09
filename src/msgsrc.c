/*
 * msgsrc: one stored message read in chunks, from a queue file at an
 * offset (libuv file operations, on the thread pool, one at a time) or in
 * place from memory. Owns the file descriptor from a successful open to
 * its close; never reads past the recorded length, never blocks the loop
 * (msgsrc_each is for the thread pool), never touches a struct msgsrc
 * after calling its callback.
 */
#include "msgsrc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "fdio.h"

/* Describe the message; see msgsrc.h. */
void
msgsrc_init(struct msgsrc *ms, uv_loop_t *loop, const char *path,
	const char *mem, uint64_t off, uint64_t len, msgsrc_cb cb, void *data)
{
	ms->data = data;
	ms->loop = loop;
	ms->path = path;
	ms->mem = mem;
	ms->off = off;
	ms->len = len;
	ms->cb = cb;
	ms->op = MSGSRC_OPEN;
	ms->busy = false;
	ms->fd = -1;
}

/* True when the message is in a file. */
bool
msgsrc_is_file(const struct msgsrc *ms)
{
	return ms->path != NULL;
}

/* True while a file operation runs. */
bool
msgsrc_busy(const struct msgsrc *ms)
{
	return ms->busy;
}

/* A file operation finished: note it, then tell the caller. */
static void
on_fs(uv_fs_t *req)
{
	struct msgsrc *ms = req->data;
	ssize_t r = req->result;
	enum msgsrc_op op = ms->op;

	uv_fs_req_cleanup(req);
	ms->busy = false;
	if (op == MSGSRC_OPEN && r >= 0) {
		ms->fd = (uv_file)r;
		r = 0;
	}
	ms->cb(ms, op, r);
}

/* Start opening the file. */
int
msgsrc_open(struct msgsrc *ms)
{
	int r;

	if (ms->path == NULL || ms->busy || ms->fd >= 0)
		return -EINVAL;
	ms->req.data = ms;
	if ((r = uv_fs_open(ms->loop, &ms->req, ms->path,
	    O_RDONLY | O_CLOEXEC, 0, on_fs)) < 0)
		return r;
	ms->op = MSGSRC_OPEN;
	ms->busy = true;
	return 0;
}

/* Start reading the next chunk from pos on. */
int
msgsrc_read(struct msgsrc *ms, uint64_t pos, char *buf, size_t max)
{
	uint64_t left = pos < ms->len ? ms->len - pos : 0;
	size_t n = left < max ? (size_t)left : max;
	uv_buf_t b;
	int r;

	if (n > UINT_MAX)
		n = UINT_MAX;
	if (n == 0 || ms->fd < 0 || ms->busy)
		return -EINVAL;
	b = uv_buf_init(buf, (unsigned)n);
	ms->req.data = ms;
	if ((r = uv_fs_read(ms->loop, &ms->req, ms->fd, &b, 1,
	    (int64_t)(ms->off + pos), on_fs)) < 0)
		return r;
	ms->op = MSGSRC_READ;
	ms->busy = true;
	return 0;
}

/* Close the file if it is open. */
int
msgsrc_close(struct msgsrc *ms)
{
	uv_file fd = ms->fd;

	if (fd < 0)
		return 0;
	if (ms->busy)
		return -EBUSY;
	ms->fd = -1;
	ms->req.data = ms;
	if (uv_fs_close(ms->loop, &ms->req, fd, on_fs) < 0) {
		close(fd);	/* a read-only file: close(2) cannot block */
		return 0;
	}
	ms->op = MSGSRC_CLOSE;
	ms->busy = true;
	return 1;
}

/* The bytes of an in-memory message from pos on, at most max. */
const char *
msgsrc_mem_at(const struct msgsrc *ms, uint64_t pos, size_t max, size_t *n)
{
	uint64_t left = pos < ms->len ? ms->len - pos : 0;

	*n = left < max ? (size_t)left : max;
	return ms->mem ? ms->mem + (pos < ms->len ? pos : ms->len) : NULL;
}

/* Read the whole message, blocking, chunk by chunk. */
int
msgsrc_each(const struct msgsrc *ms, char *buf, size_t size,
	msgsrc_chunk_fn fn, void *arg, const char **why)
{
	uint64_t done = 0;
	int fd, r = 0;

	*why = NULL;
	if (ms->path == NULL)
		return ms->len > 0 && (r = fn(arg, ms->mem,
		    (size_t)ms->len)) < 0 ? r : 0;
	if ((fd = open(ms->path, O_RDONLY | O_CLOEXEC)) < 0) {
		*why = "cannot open the message";
		return -errno;
	}
	while (done < ms->len) {
		uint64_t left = ms->len - done;
		size_t n;

		if ((r = fdio_pread(fd, buf, left < size ? (size_t)left : size,
		    ms->off + done, &n)) < 0) {
			*why = "cannot read the message";
			break;
		}
		if (n == 0) {
			r = -EIO;
			*why = "message file shorter than recorded";
			break;
		}
		if ((r = fn(arg, buf, n)) < 0)
			break;
		r = 0;
		done += (uint64_t)n;
	}
	close(fd);
	return r;
}
