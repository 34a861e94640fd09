/*
 * buf: a growable byte buffer (string vectors: strv.h; text helpers:
 * text.h).
 * The buffer's data is always NUL-terminated once anything was added, so
 * it can be used as a C string when it holds text. Every function that can
 * allocate returns 0 or -ENOMEM and leaves the buffer valid on failure.
 * Nothing here truncates: text grows the buffer or the call fails.
 */
#ifndef MP_BUF_H
#define MP_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;	/* NULL until the first append; then NUL-terminated */
	size_t len;	/* bytes used, not counting the terminating NUL */
	size_t cap;	/* bytes allocated */
};

#define BUF_INIT { NULL, 0, 0 }

/* Make room for extra more bytes (plus the NUL). */
int buf_reserve(struct buf *b, size_t extra);
/*
 * Make room for exactly extra more bytes (plus the NUL), without the
 * doubling of buf_reserve: for a buffer whose final size is known, so it
 * holds no slack (e.g. a message kept in memory after its commit).
 */
int buf_reserve_exact(struct buf *b, size_t extra);
/* Append n bytes. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Append a C string. */
int buf_puts(struct buf *b, const char *s);
/* Append one byte. */
int buf_putc(struct buf *b, char c);
/* Append printf-formatted text. */
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append vprintf-formatted text. */
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Forget the contents, keep the allocation. */
void buf_reset(struct buf *b);
/* Hand the data (NUL-terminated, never NULL on success) to the caller. */
int buf_steal(struct buf *b, char **out);
/* Release the allocation. */
void buf_free(struct buf *b);
/*
 * Append everything fd has up to its end; -EFBIG once the buffer would
 * hold more than max bytes, or -errno of read (EINTR is retried).
 */
int buf_read_fd(struct buf *b, int fd, size_t max);
/*
 * Append fd's bytes (read(2) from its current offset) until b->len reaches
 * upto or fd is at its end (*eof true); never reads past upto, so a file
 * can be taken a piece at a time. 0 or -errno of read (EINTR is retried).
 */
int buf_read_upto(struct buf *b, int fd, size_t upto, bool *eof);

#endif
