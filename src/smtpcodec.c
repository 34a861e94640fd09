/*
 * smtpcodec: the SMTP DATA stream (see smtpcodec.h). Owns the decoder that
 * turns what a client sends after the 354 into the message (dot-stuffing
 * undone, CRLF to LF, end of data, size, bare CR/LF refusal) and the
 * encoder the relay client uses for the way back. Promises that decoding
 * does not depend on where the input is split, that only CRLF "." CRLF
 * ends the data, and that decode(encode(m)) is m for a message m with LF
 * line ends. Scans with memchr and copies runs with memcpy (no per-byte
 * calls). Also owns xtext (RFC 3461): its syntax, decoding and encoding,
 * with decode(encode(s)) == s. Never does I/O, never keeps global state,
 * never exits.
 */
#include "smtpcodec.h"

#include <errno.h>
#include <string.h>

/* Start decoding one message of at most max octets. */
void
smtpcodec_dec_init(struct smtpcodec_dec *d, uint64_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max;
	d->st = SMTPCODEC_BOL;
}

/*
 * Count n decoded octets at p (and an LF after them when lf) and copy them
 * to *o while the message is good; o is NULL when nothing is kept.
 */
static inline void
dec_put(struct smtpcodec_dec *d, char **o, const char *p, size_t n, bool lf)
{
	d->size += n + (lf ? 1 : 0);
	if (d->bare || d->too_big)
		return;
	if (d->size > d->max) {
		d->too_big = true;
		return;
	}
	if (*o == NULL)
		return;
	memcpy(*o, p, n);
	*o += n;
	if (lf)
		*(*o)++ = '\n';
}

/* Decode up to n bytes at p into out (see smtpcodec.h). */
int
smtpcodec_decode(struct smtpcodec_dec *d, const char *p, size_t n,
	struct buf *out, size_t *used)
{
	const char *s = p, *end = p + n, *lf = NULL, *cr;
	char *o = NULL;
	bool crlf;

	*used = 0;
	if (d->done || n == 0)
		return 0;
	/* the output is never longer than the input */
	if (out != NULL && !d->bare && !d->too_big) {
		if (buf_reserve(out, n) < 0)
			return -ENOMEM;
		o = out->data + out->len;
	}
	while (s < end && !d->done) {
		switch (d->st) {
		case SMTPCODEC_MID:
			/* lf: the first LF at or after s, or end (none) */
			if (lf == NULL || lf < s) {
				lf = memchr(s, '\n', (size_t)(end - s));
				if (lf == NULL)
					lf = end;
			}
			cr = memchr(s, '\r', (size_t)(lf - s));
			if (cr == NULL) {
				dec_put(d, &o, s, (size_t)(lf - s), false);
				if (lf == end) {
					s = end;
					break;
				}
				d->bare = true;		/* a bare LF */
				d->size++;
				s = lf + 1;
				break;
			}
			crlf = lf != end && cr + 1 == lf;
			dec_put(d, &o, s, (size_t)(cr - s), crlf);
			if (crlf) {
				d->st = SMTPCODEC_BOL;
				s = lf + 1;
			} else if (cr + 1 == end) {
				d->st = SMTPCODEC_CR;	/* LF may come next */
				s = end;
			} else {
				d->bare = true;		/* a bare CR */
				s = cr + 1;
			}
			break;
		case SMTPCODEC_BOL:
			if (*s == '.') {
				d->st = SMTPCODEC_DOT;
				s++;
			} else {
				d->st = SMTPCODEC_MID;
			}
			break;
		case SMTPCODEC_DOT:
			if (*s == '\r') {
				d->st = SMTPCODEC_DOTCR;
				s++;
			} else {
				d->st = SMTPCODEC_MID;	/* drop the dot */
			}
			break;
		case SMTPCODEC_DOTCR:
			if (*s == '\n') {
				d->done = true;
				s++;
			} else {
				d->bare = true;		/* "." and a bare CR */
				d->st = SMTPCODEC_MID;
			}
			break;
		case SMTPCODEC_CR:
			if (*s == '\n') {
				dec_put(d, &o, s, 0, true);
				d->st = SMTPCODEC_BOL;
				s++;
			} else {
				d->bare = true;		/* a bare CR */
				d->st = SMTPCODEC_MID;
			}
			break;
		}
	}
	if (o != NULL) {
		out->len = (size_t)(o - out->data);
		out->data[out->len] = '\0';
	}
	*used = (size_t)(s - p);
	return 0;
}

/* Encode n bytes at p into out (room for 2 * n); returns bytes written. */
size_t
smtpcodec_encode(struct smtpcodec_enc *e, const char *p, size_t n,
	char *out)
{
	const char *s = p, *end = p + n, *lf;
	size_t o = 0, len;

	while (s < end) {
		if (e->bol && *s == '.')
			out[o++] = '.';
		lf = memchr(s, '\n', (size_t)(end - s));
		len = (size_t)((lf ? lf : end) - s);
		memcpy(out + o, s, len);
		o += len;
		if (lf == NULL) {
			e->bol = false;
			e->cr = s[len - 1] == '\r';
			break;
		}
		if (!(len > 0 ? s[len - 1] == '\r' : e->cr))
			out[o++] = '\r';
		out[o++] = '\n';
		e->bol = true;
		e->cr = false;
		s = lf + 1;
	}
	return o;
}

/* "\r\n.\r\n" after an unended last line, else ".\r\n". */
const char *
smtpcodec_encode_end(const struct smtpcodec_enc *e)
{
	return e->bol ? ".\r\n" : "\r\n.\r\n";
}

/* ------------------------------------------------------------------ */
/* xtext (RFC 3461 section 4).                                         */

/* Value of an upper-case hex digit, or -1. */
static int
xtext_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Is s (n bytes) valid xtext? */
bool
smtpcodec_xtext_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '+') {
			if (len - i < 3 ||
			    xtext_hex((unsigned char)s[i + 1]) < 0 ||
			    xtext_hex((unsigned char)s[i + 2]) < 0)
				return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return true;
}

/* Is the valid xtext s (n bytes) printable once decoded? */
bool
smtpcodec_xtext_printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			int v = xtext_hex((unsigned char)s[i + 1]) * 16 +
				xtext_hex((unsigned char)s[i + 2]);

			if (v < 0x20 || v > 0x7e)
				return false;
			i += 2;
		}
	}
	return true;
}

/* Only the octets xtext is written with? */
bool
smtpcodec_xtext_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Decode valid xtext into out (room for n); returns the bytes written. */
size_t
smtpcodec_xtext_decode(const char *x, size_t xlen, char *d)
{
	size_t n = 0;

	for (size_t i = 0; i < xlen; i++) {
		if (x[i] == '+') {
			d[n++] = (char)(xtext_hex((unsigned char)x[i + 1]) *
			    16 + xtext_hex((unsigned char)x[i + 2]));
			i += 2;
		} else {
			d[n++] = x[i];
		}
	}
	return n;
}

/* Append the xtext of n bytes at p to out. */
int
smtpcodec_xtext_encode(const char *p, size_t n, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i = 0;
	int r = 0;

	while (r == 0 && i < n) {
		size_t run = 0;
		unsigned char c;

		while (i + run < n && (c = (unsigned char)p[i + run]) >= 0x21 &&
		    c <= 0x7e && c != '+' && c != '=')
			run++;
		if (run > 0) {
			r = buf_append(out, p + i, run);
			i += run;
			continue;
		}
		c = (unsigned char)p[i++];
		r = buf_append(out, (const char[]){ '+', hex[c >> 4],
		    hex[c & 15] }, 3);
	}
	return r;
}
