/*
 * buf: a growable byte buffer and a NULL-terminated string vector.
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

struct strv {
	char **v;	/* v[n] == NULL whenever v != NULL */
	size_t n;
	size_t cap;
};

#define STRV_INIT { NULL, 0, 0 }

/* Append a copy of s. */
int strv_push(struct strv *sv, const char *s);
/* Append a copy of the n bytes at s (NUL added). */
int strv_pushn(struct strv *sv, const char *s, size_t n);
/* Append s itself; on failure s is freed. */
int strv_push_take(struct strv *sv, char *s);
/* Append a copy of every string of src. */
int strv_extend(struct strv *sv, const struct strv *src);
/* Index of the first string equal to s, or -1. */
long strv_find(const struct strv *sv, const char *s);
/* Free the strings and the array. */
void strv_free(struct strv *sv);

/* Fill p with n random bytes from getrandom(2) (retries EINTR). */
int mp_random(void *p, size_t n);
/* Write 2 * n random lower-case hex digits and a NUL to out. */
int mp_random_hex(char *out, size_t n);

/*
 * Copy the n bytes at in to out (room for n + 1 bytes) with every CR LF
 * turned into LF; lone CRs stay. A text may be converted piece by piece:
 * *cr (false at the start) carries a CR that ended the previous piece,
 * written out with the next piece unless that starts with LF; a CR left
 * at the very end is the caller's to write. Returns the bytes written.
 */
size_t mp_crlf_to_lf(const char *in, size_t n, char *out, bool *cr);

/*
 * Control characters: 0x00-0x1f and 0x7f (TAB, CR and LF included); an
 * octet >= 0x80 is never one. The one rule behind every "is this text
 * free of control characters" check.
 */
static inline bool
mp_is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}
/* Any control character in s[0..n)? With tab_ok, TAB does not count. */
bool mp_has_ctl(const char *s, size_t n, bool tab_ok);
/* Any control character in the string s (NULL holds none)? */
bool mp_str_has_ctl(const char *s);

/* strdup that returns NULL only on allocation failure and accepts NULL. */
char *mp_strdup(const char *s);
/* Copy of n bytes at s, NUL-terminated. */
char *mp_strndup(const char *s, size_t n);

#endif
