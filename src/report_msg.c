/*
 * report_msg: the returned part of a report, from whatever bytes the
 * stored message holds. Owns the header's end (the empty line, or the
 * first line that cannot be a header field), the header's cap (cut at a
 * line boundary) and the repairs that keep any input valid 8bit MIME:
 * NUL and CR become "?", a line longer than 998 octets is broken by an
 * inserted LF SPACE (a fold in the header), a missing last LF and a
 * missing empty line after the header are added. Also finds the
 * original's Message-ID for In-Reply-To. Pure: no I/O, no global state.
 */
#include "report_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text.h"

#define REPORT_MID_MAX 250	/* longest Message-ID taken for In-Reply-To */

/* See report_int.h. */
uint64_t
report__header_cap(uint64_t return_size_limit)
{
	return return_size_limit > REPORT_HEADER_MIN ? return_size_limit
		: REPORT_HEADER_MIN;
}

/* Is the line s (n bytes, no LF) the first line of a header field? */
static bool
report_field_line(const char *s, size_t n)
{
	size_t i = 0;

	for (; i < n && s[i] != ':'; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126)
			return false;
	return i > 0 && i < n;
}

/*
 * The header of m (len bytes; complete: the whole message): it ends
 * before *hend, the body starts at *bstart. A header longer than cap, or
 * one that may go on past len, is cut at a line boundary (*cut).
 */
static void
report_scan_header(const char *m, size_t len, bool complete, uint64_t cap,
	size_t *hend, size_t *bstart, bool *cut)
{
	size_t p = 0;

	*cut = false;
	while (p < len) {
		const char *lf = memchr(m + p, '\n', len - p);
		size_t e = lf ? (size_t)(lf - m) : len;
		size_t next = lf ? e + 1 : len;

		if (e == p) {	/* the empty line */
			*hend = p;
			*bstart = next;
			return;
		}
		if ((!lf && !complete) || next > cap) {
			*cut = true;
			break;
		}
		if (!report_field_line(m + p, e - p)
		    && !(p > 0 && (m[p] == ' ' || m[p] == '\t')))
			break;	/* the body starts without an empty line */
		p = next;
	}
	if (p == len && !complete)
		*cut = true;
	*hend = p;
	*bstart = p;
}

/*
 * Append s (n bytes) repaired (see the top of the file), ending with LF
 * unless empty; *eightbit set when an octet >= 0x80 is in it.
 */
static int
report_put_repaired(struct buf *out, const char *s, size_t n,
	bool *eightbit)
{
	size_t col = 0, extra = 2 * (n / (REPORT__LINE_MAX - 1) + 1);
	char *d;
	int r;

	if ((r = buf_reserve(out, n + extra)) < 0)
		return r;
	d = out->data + out->len;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n') {
			*d++ = '\n';
			col = 0;
			continue;
		}
		if (col == REPORT__LINE_MAX) {
			*d++ = '\n';
			*d++ = ' ';
			col = 1;
		}
		if (c == '\0' || c == '\r')
			c = '?';
		else if (c >= 0x80)
			*eightbit = true;
		*d++ = (char)c;
		col++;
	}
	if (col > 0)
		*d++ = '\n';
	out->len = (size_t)(d - out->data);
	out->data[out->len] = '\0';
	return 0;
}

/* The first Message-ID field's "<id>" in the header m[0..hend), or NULL. */
static char *
report_orig_mid(const char *m, size_t hend)
{
	size_t p = 0, q, s;

	while (p < hend) {
		const char *lf = memchr(m + p, '\n', hend - p);
		size_t e = lf ? (size_t)(lf - m) : hend;

		if (e - p >= 11 && strncasecmp(m + p, "Message-ID:", 11) == 0)
			break;
		p = e + 1;
	}
	if (p >= hend)
		return NULL;
	for (q = p + 11; q < hend && (m[q] == ' ' || m[q] == '\t'
	    || (m[q] == '\n' && q + 1 < hend
	    && (m[q + 1] == ' ' || m[q + 1] == '\t'))); q++)
		;
	if (q >= hend || m[q] != '<')
		return NULL;
	for (s = q + 1; s < hend && m[s] != '>'; s++)
		if ((unsigned char)m[s] < 33 || (unsigned char)m[s] > 126
		    || m[s] == '<' || s - q > REPORT_MID_MAX)
			return NULL;
	if (s >= hend || s == q + 1)
		return NULL;
	return text_strndup(m + q, s - q + 1);
}

/* See report_int.h. */
int
report__returned(const struct report_in *in, bool want,
	struct report__ret *r)
{
	const char *m = in->msg ? in->msg : "";
	size_t len = in->msg ? in->msg_len : 0, hend, bstart;
	uint64_t cap;
	bool complete;
	int e;

	memset(r, 0, sizeof(*r));
	if (len > in->msg_total)
		len = (size_t)in->msg_total;
	complete = len == in->msg_total;
	r->full = want && complete && in->msg_total <= in->return_size_limit;
	r->too_big = want && in->msg_total > in->return_size_limit;
	cap = r->full ? UINT64_MAX
		: report__header_cap(in->return_size_limit);
	report_scan_header(m, len, complete, cap, &hend, &bstart,
		&r->hdr_cut);
	if ((e = report_put_repaired(&r->content, m, hend, &r->eightbit)) < 0)
		goto fail;
	if (r->full && ((e = buf_putc(&r->content, '\n')) < 0
	    || (e = report_put_repaired(&r->content, m + bstart, len - bstart,
	    &r->eightbit)) < 0))
		goto fail;
	errno = 0;
	if (hend > 0 && !(r->orig_mid = report_orig_mid(m, hend))
	    && errno == ENOMEM) {
		e = -ENOMEM;
		goto fail;
	}
	if (!r->content.data && (e = buf_puts(&r->content, "")) < 0)
		goto fail;
	return 0;
fail:
	report__ret_free(r);
	return e;
}

/* See report_int.h. */
void
report__ret_free(struct report__ret *r)
{
	buf_free(&r->content);
	free(r->orig_mid);
	r->orig_mid = NULL;
}
