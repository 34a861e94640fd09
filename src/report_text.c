/*
 * report_text: the report builder's text rules: one-line US-ASCII field
 * values (folded, 8-bit text as RFC 6533 \x{HHHH}), human-readable UTF-8
 * quotes (no control character but TAB and LF passes), dates and
 * quoted-printable through GMime. Promises that nothing it appends holds
 * NUL, CR or a control character other than TAB and LF, and that every
 * line it writes in a field fits in REPORT__LINE_MAX octets. Pure: no
 * I/O, no global state; needs no GMime initialisation.
 */
#include "report_int.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <string.h>

#include "text.h"

const char report__truncated[] = "[... truncated]";

static const char report_fffd[] = "\xef\xbf\xbd";	/* U+FFFD */

/* Where to cut s (n bytes) at cap: n, or a UTF-8 character start. */
static size_t
report_cut(const char *s, size_t n, size_t cap, bool *cut)
{
	size_t end = n;

	*cut = false;
	if (cap == 0 || n <= cap)
		return n;
	end = cap;
	while (end > 0 && ((unsigned char)s[end] & 0xc0) == 0x80)
		end--;
	*cut = true;
	return end;
}

/* The UTF-8 character at s (n bytes): its code point and length, or -1. */
static long
report_utf8(const char *s, size_t n, size_t *len)
{
	gunichar u = g_utf8_get_char_validated(s, (gssize)n);

	if (u == (gunichar)-1 || u == (gunichar)-2)
		return -1;
	*len = (size_t)g_utf8_skip[(unsigned char)*s];
	return (long)u;
}

/* See report_int.h. */
int
report__ascii(struct buf *out, const char *s, size_t n, size_t cap)
{
	bool cut, space = false, any = false;
	size_t end = report_cut(s, n, cap, &cut), i = 0, len;
	long u;
	int r = 0;

	while (i < end) {
		unsigned char c = (unsigned char)s[i];

		if (c == ' ' || text_is_ctl(c)) {
			space = true;
			i++;
			continue;
		}
		if (space && any && (r = buf_putc(out, ' ')) < 0)
			return r;
		space = false;
		any = true;
		if (c < 0x80) {
			r = buf_putc(out, (char)c);
			i++;
		} else if ((u = report_utf8(s + i, end - i, &len)) < 0) {
			r = buf_puts(out, "\\x{FFFD}");
			i++;
		} else {
			r = buf_printf(out, "\\x{%04lX}", (unsigned long)u);
			i += len;
		}
		if (r < 0)
			return r;
	}
	if (cut)
		r = buf_printf(out, "%s%s", any ? " " : "", report__truncated);
	return r;
}

/* See report_int.h. */
int
report__field(struct buf *out, const char *name, const char *v, size_t n)
{
	size_t col = strlen(name) + 2, i = 0;
	int r;

	if ((r = buf_printf(out, "%s: ", name)) < 0)
		return r;
	while (i < n) {
		size_t w = i, take;

		while (w < n && v[w] != ' ')
			w++;
		while (i < w) {	/* the word, broken where it is too long */
			if (col >= REPORT__LINE_MAX) {
				if ((r = buf_puts(out, "\n ")) < 0)
					return r;
				col = 1;
			}
			take = w - i;
			if (take > REPORT__LINE_MAX - col)
				take = REPORT__LINE_MAX - col;
			if ((r = buf_append(out, v + i, take)) < 0)
				return r;
			col += take;
			i += take;
		}
		if (i >= n)
			break;
		w = i + 1;	/* v[i] is a space: fold before it? */
		while (w < n && v[w] != ' ')
			w++;
		if (col + (w - i) > REPORT__FOLD) {
			if ((r = buf_putc(out, '\n')) < 0)
				return r;
			col = 0;
		}
		if ((r = buf_putc(out, ' ')) < 0)
			return r;
		col++;
		i++;
	}
	return buf_putc(out, '\n');
}

/* Append one character of human text, the indent first at a line start. */
static int
report_hput(struct buf *out, const char *p, size_t n, const char *indent,
	bool *bol)
{
	int r;

	if (*bol && (r = buf_puts(out, indent)) < 0)
		return r;
	*bol = false;
	return buf_append(out, p, n);
}

/* See report_int.h. */
int
report__human(struct buf *out, const char *s, size_t n, size_t cap,
	const char *indent)
{
	bool cut, bol = true;
	size_t end = report_cut(s, n, cap, &cut), i = 0, len;
	long u;
	int r = 0;

	while (!cut && end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r'
	    || s[end - 1] == ' ' || s[end - 1] == '\t'))
		end--;
	while (i < end) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' && i + 1 < end && s[i + 1] == '\n') {
			i++;
			continue;
		}
		if (c == '\n') {
			r = buf_putc(out, '\n');
			bol = true;
			i++;
		} else if (c == '\t' || (c < 0x80 && !text_is_ctl(c))) {
			r = report_hput(out, s + i, 1, indent, &bol);
			i++;
		} else if (c < 0x80
		    || (u = report_utf8(s + i, end - i, &len)) < 0) {
			r = report_hput(out, report_fffd, 3, indent, &bol);
			i++;
		} else if (u < 0xa0) {	/* a C1 control */
			r = report_hput(out, report_fffd, 3, indent, &bol);
			i += len;
		} else {
			r = report_hput(out, s + i, len, indent, &bol);
			i += len;
		}
		if (r < 0)
			return r;
	}
	if (cut) {
		if (!bol && (r = buf_putc(out, ' ')) < 0)
			return r;
		r = report_hput(out, report__truncated,
			strlen(report__truncated), indent, &bol);
		if (r < 0)
			return r;
	}
	return bol ? 0 : buf_putc(out, '\n');
}

/* See report_int.h. */
int
report__date(struct buf *out, int64_t t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	char *s;
	int r;

	if (!dt)
		return -EINVAL;
	s = g_mime_utils_header_format_date(dt);
	g_date_time_unref(dt);
	if (!s)
		return -ENOMEM;
	r = buf_puts(out, s);
	g_free(s);
	return r;
}

/* See report_int.h. */
int
report__qp(struct buf *out, const char *s, size_t n)
{
	GMimeEncoding enc;
	size_t max, w;
	int r;

	g_mime_encoding_init_encode(&enc,
		GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	max = g_mime_encoding_outlen(&enc, n) + 2;
	if ((r = buf_reserve(out, max)) < 0)
		return r;
	w = g_mime_encoding_flush(&enc, s, n, out->data + out->len);
	out->len += w;
	out->data[out->len] = '\0';
	if (out->len > 0 && out->data[out->len - 1] != '\n')
		return buf_puts(out, "=\n");
	return 0;
}
