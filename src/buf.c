/*
 * buf: growable byte buffers used by every module (string vectors are
 * strv.c's, the text helpers text.c's, random bytes random.c's).
 * Owns only the memory it is given; promises that a failed call leaves the
 * object as it was and returns -ENOMEM, never aborts, never truncates.
 */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Grow b so that len + extra + 1 bytes fit: doubling, or to just that. */
static int
buf_grow(struct buf *b, size_t extra, bool exact)
{
	size_t need, cap;
	char *p;

	if (extra > (size_t)-1 - b->len - 1)
		return -ENOMEM;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = exact ? need : b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > (size_t)-1 / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

/* Grow b so that len + extra + 1 bytes fit. */
int
buf_reserve(struct buf *b, size_t extra)
{
	return buf_grow(b, extra, false);
}

/* Make room for exactly extra more bytes. */
int
buf_reserve_exact(struct buf *b, size_t extra)
{
	return buf_grow(b, extra, true);
}

/* Append n bytes at p. */
int
buf_append(struct buf *b, const void *p, size_t n)
{
	int r = buf_reserve(b, n);

	if (r < 0)
		return r;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* Append a C string. */
int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

/* Append one byte. */
int
buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

/* Append vprintf output, growing as needed. */
int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, r;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	if ((r = buf_reserve(b, (size_t)n)) < 0)
		return r;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

/* Append printf output. */
int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

/* Empty the buffer but keep its memory. */
void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Give the data away; the buffer is empty afterwards. */
int
buf_steal(struct buf *b, char **out)
{
	int r;

	if (b->data == NULL && (r = buf_reserve(b, 0)) < 0)
		return r;
	b->data[b->len] = '\0';
	*out = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return 0;
}

/* Free the memory. */
void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Append fd's bytes until b holds upto bytes or fd is at its end. */
int
buf_read_upto(struct buf *b, int fd, size_t upto, bool *eof)
{
	ssize_t n;
	int r;

	*eof = false;
	while (b->len < upto) {
		size_t want = upto - b->len;

		if ((r = buf_reserve(b, want)) < 0)
			return r;
		n = read(fd, b->data + b->len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			*eof = true;
			break;
		}
		b->len += (size_t)n;
		b->data[b->len] = '\0';
	}
	return 0;
}

/* Append the rest of fd, refusing more than max bytes in all. */
int
buf_read_fd(struct buf *b, int fd, size_t max)
{
	enum { CHUNK = 64 * 1024 };
	bool eof = false;
	size_t had;
	int r;

	while (!eof) {
		had = b->len;
		if ((r = buf_read_upto(b, fd, b->len + CHUNK, &eof)) < 0)
			return r;
		if (b->len > had && b->len > max)
			return -EFBIG;
	}
	return 0;
}
