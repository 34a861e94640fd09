/*
 * buf: growable byte buffers and string vectors used by every module.
 * Owns only the memory it is given; promises that a failed call leaves the
 * object as it was and returns -ENOMEM, never aborts, never truncates.
 */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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

/* Append s without copying it; s is freed if the vector cannot grow. */
int
strv_push_take(struct strv *sv, char *s)
{
	char **v;
	size_t cap;

	if (s == NULL)
		return -ENOMEM;
	if (sv->n + 2 > sv->cap) {
		cap = sv->cap ? sv->cap * 2 : 8;
		v = realloc(sv->v, cap * sizeof(*v));
		if (v == NULL) {
			free(s);
			return -ENOMEM;
		}
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
	return 0;
}

/* Append a copy of s. */
int
strv_push(struct strv *sv, const char *s)
{
	return strv_push_take(sv, mp_strdup(s));
}

/* Append a copy of n bytes. */
int
strv_pushn(struct strv *sv, const char *s, size_t n)
{
	return strv_push_take(sv, mp_strndup(s, n));
}

/* Append copies of all of src. */
int
strv_extend(struct strv *sv, const struct strv *src)
{
	int r;

	for (size_t i = 0; i < src->n; i++)
		if ((r = strv_push(sv, src->v[i])) < 0)
			return r;
	return 0;
}

/* Find s; -1 when absent. */
long
strv_find(const struct strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return (long)i;
	return -1;
}

/* Free all strings. */
void
strv_free(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

/* strdup accepting NULL. */
char *
mp_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Copy n bytes into a new string. */
char *
mp_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Any control character (TAB too unless tab_ok) in s[0..n)? */
bool
mp_has_ctl(const char *s, size_t n, bool tab_ok)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (mp_is_ctl(c) && !(tab_ok && c == '\t'))
			return true;
	}
	return false;
}

/* Any control character in the string s (NULL holds none)? */
bool
mp_str_has_ctl(const char *s)
{
	return s != NULL && mp_has_ctl(s, strlen(s), false);
}

/* Copy in to out turning CR LF into LF, a CR carried between pieces. */
size_t
mp_crlf_to_lf(const char *in, size_t n, char *out, bool *cr)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (*cr && c != '\n')
			out[o++] = '\r';	/* the held CR was a lone one */
		*cr = c == '\r';
		if (!*cr)
			out[o++] = c;
	}
	return o;
}

/* n random bytes; getrandom blocks only before the pool is seeded. */
int
mp_random(void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom((char *)p + got, n - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	return 0;
}

/* 2 * n random hex digits. */
int
mp_random_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[64];
	size_t done = 0;
	int r;

	while (done < n) {
		size_t k = n - done < sizeof(raw) ? n - done : sizeof(raw);

		if ((r = mp_random(raw, k)) < 0)
			return r;
		for (size_t i = 0; i < k; i++) {
			out[2 * (done + i)] = hex[raw[i] >> 4];
			out[2 * (done + i) + 1] = hex[raw[i] & 0xf];
		}
		done += k;
	}
	out[2 * n] = '\0';
	return 0;
}
