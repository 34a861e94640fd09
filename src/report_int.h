/*
 * report_int.h: what report.c, report_text.c and report_msg.c share.
 * Nothing outside report*.c includes it.
 */
#ifndef MP_REPORT_INT_H
#define MP_REPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "report.h"

#define REPORT__LINE_MAX 998	/* RFC 5322 line length, LF not counted */
#define REPORT__FOLD 78		/* folding width of the fields we write */

/* The mark after a text cut at its cap. */
extern const char report__truncated[];

/*
 * Append s (n bytes) as one line of US-ASCII field text: every run of
 * control characters and spaces becomes one space (none at the ends),
 * every UTF-8 character \x{HHHH} (RFC 6533's notation), every invalid
 * octet \x{FFFD}. With cap > 0, only the first cap bytes of s are taken
 * and a cut one ends in report__truncated.
 */
int report__ascii(struct buf *out, const char *s, size_t n, size_t cap);

/*
 * Append "name: value" and LF, value being field text from
 * report__ascii, folded before spaces at REPORT__FOLD columns and broken
 * by an inserted fold where a word would pass REPORT__LINE_MAX.
 */
int report__field(struct buf *out, const char *name, const char *value,
	size_t n);

/*
 * Append s (n bytes) as human-readable UTF-8 lines, each starting with
 * indent: CR LF is LF, every other control character but TAB and every
 * invalid UTF-8 sequence (and C1 control) is U+FFFD, trailing empty lines
 * go. cap > 0 takes only the first cap bytes (cut at a character start)
 * and marks the cut with report__truncated. Ends with LF.
 */
int report__human(struct buf *out, const char *s, size_t n, size_t cap,
	const char *indent);

/* Append t as an RFC 5322 date-time in UTC; -EINVAL when out of range. */
int report__date(struct buf *out, int64_t t);

/* Append s (n bytes) quoted-printable encoded (GMime's encoder). */
int report__qp(struct buf *out, const char *s, size_t n);

/* The returned part, made by report__returned. */
struct report__ret {
	struct buf content;	/* the part's content, ends with LF or empty */
	bool full;		/* message/rfc822 (else text/rfc822-headers) */
	bool eightbit;		/* an octet >= 0x80 in content */
	bool hdr_cut;		/* the header was cut at its cap */
	bool too_big;		/* the message was asked for, over the limit */
	char *orig_mid;		/* the original's Message-ID "<...>", or NULL */
};

/*
 * Make the returned part from in's message: the whole message when want
 * (and in->msg_total fits the limit and all of it is in msg), else its
 * header, repaired so it is valid 8bit MIME whatever the input (see
 * docs/REPORTS.md). 0 or -ENOMEM; report__ret_free releases r.
 */
int report__returned(const struct report_in *in, bool want,
	struct report__ret *r);
/* Release what report__returned made. */
void report__ret_free(struct report__ret *r);

/* The returned header's cap for a return-size-limit. */
uint64_t report__header_cap(uint64_t return_size_limit);

#endif
