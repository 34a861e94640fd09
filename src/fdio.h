/*
 * fdio: whole writes to and interrupted-safe reads from a file
 * descriptor. Every write function loops over partial writes and EINTR,
 * returns 0 once every byte is written, -errno on failure and -EIO when
 * the kernel makes no progress (never spins).
 */
#ifndef MP_FDIO_H
#define MP_FDIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Write all of data[0..len) to fd (in pieces of at most 1 GiB). */
int fdio_write_all(int fd, const char *data, size_t len);
/*
 * Write all n iov bytes to fd with as few writev calls as the kernel
 * allows; iov is consumed (its entries are advanced). EAGAIN (a
 * non-blocking fd, e.g. a shared stderr) waits up to a second for POLLOUT
 * and tries again.
 */
int fdio_writev(int fd, struct iovec *iov, int n);
/* pwrite all n bytes of p at off. */
int fdio_pwrite(int fd, const char *p, size_t n, uint64_t off);

/*
 * One pread of up to n bytes at off, retried on EINTR: 0 with *got the
 * bytes read (0 at end of file), or -errno.
 */
int fdio_pread(int fd, char *p, size_t n, uint64_t off, size_t *got);

#endif
