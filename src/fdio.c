/*
 * fdio: write a whole buffer to a file descriptor and read at an offset
 * (see fdio.h), for the log, the store, local submission and msgsrc. Owns the partial-write, EINTR
 * and no-progress handling; owns no descriptor (callers open, sync and
 * close theirs).
 */
#include "fdio.h"

#include <errno.h>
#include <poll.h>
#include <sys/types.h>
#include <unistd.h>

/* Write all of data to fd (partial writes, EINTR). */
int
fdio_write_all(int fd, const char *data, size_t len)
{
	size_t off = 0, n;
	ssize_t w;

	while (off < len) {
		n = len - off > ((size_t)1 << 30) ? (size_t)1 << 30 : len - off;
		w = write(fd, data + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		off += (size_t)w;
	}
	return 0;
}

/* Write all iov bytes, looping on partial writes. */
int
fdio_writev(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int e = errno;

			if (e == EINTR)
				continue;
			if (e == EAGAIN && poll(&pfd, 1, 1000) > 0)
				continue;
			return -e;
		}
		if (w == 0 && iov->iov_len > 0)
			return -EIO;	/* no progress: never spin */
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* pwrite all n bytes at off (EINTR and partial writes handled). */
int
fdio_pwrite(int fd, const char *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;	/* no progress: never spin */
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* One pread at off, retried on EINTR. */
int
fdio_pread(int fd, char *p, size_t n, uint64_t off, size_t *got)
{
	ssize_t r;

	do
		r = pread(fd, p, n, (off_t)off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	*got = (size_t)r;
	return 0;
}
