/*
 * journal: queue-file attempt records (see journal.h). Owns their syntax
 * only: the store appends and reads them, the scheduler fills them. The
 * parser is strict like the envelope's (a complete line that is not a
 * valid record is corrupt) except for a last line cut short by a crash,
 * which was never acknowledged and is not a record.
 */
#include "journal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "text.h"

static const char *const kind_names[] = { "deferred", "failed" };
static const char *const src_names[] = { "pipe", "relay", "router", "mta" };
static const char *const action_names[] = { "failed", "delayed",
	"delivered", "relayed" };

/* The word of a kind. */
const char *
journal_kind_name(enum journal_kind k)
{
	return (unsigned)k < 2 ? kind_names[k] : "?";
}

/* The word of a source. */
const char *
journal_src_name(enum journal_src s)
{
	return (unsigned)s < 4 ? src_names[s] : "?";
}

/* The word of an action. */
const char *
journal_action_name(enum journal_action a)
{
	return (unsigned)a < 4 ? action_names[a] : "?";
}

/* Is p[0..n) an envelope uid (JOURNAL_UID_LEN lower-case hex digits)? */
static bool
uid_ok(const char *p, size_t n)
{
	if (n != JOURNAL_UID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* Is s an RFC 3463 status "C.S.D" (class 2, 4 or 5, 1-3 digits each)? */
static bool
status_ok(const char *s, size_t n)
{
	size_t i = 0, part, digits;

	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    n >= JOURNAL_STATUS_MAX)
		return false;
	for (part = 0; part < 3; part++) {
		for (digits = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
		if (digits == 0 || digits > 3 || (part == 0 && digits != 1))
			return false;
		if (part < 2 && (i >= n || s[i++] != '.'))
			return false;
	}
	return i == n;
}

/* Append a `reported` record. */
static int
format_reported(const struct journal_attempt *a, struct buf *out)
{
	size_t un = strlen(a->report);

	if ((unsigned)a->action > JOURNAL_ACT_RELAYED || a->time < 0 ||
	    (un != 0 && !uid_ok(a->report, un)))
		return -EINVAL;
	return buf_printf(out, "reported %zu %" PRId64 " %s %s\n", a->rcpt,
		a->time, action_names[a->action], un ? a->report : "-");
}

/* Append an `attempt` record. */
static int
format_attempt(const struct journal_attempt *a, struct buf *out)
{
	const char *rs = a->reason ? a->reason : "";
	size_t rn = strlen(rs);
	int r;

	if (a->type != JOURNAL_ATTEMPT || (unsigned)a->kind > JOURNAL_FAILED ||
	    (unsigned)a->src > JOURNAL_MTA || a->time < 0 || a->attempt == 0 ||
	    a->reply < 200 || a->reply > 599 ||
	    !status_ok(a->status, strlen(a->status)))
		return -EINVAL;
	if (rn > JOURNAL_REASON_MAX) {
		rn = JOURNAL_REASON_MAX;
		while (rn > 0 && ((unsigned char)rs[rn] & 0xc0) == 0x80)
			rn--;	/* do not cut a UTF-8 sequence */
	}
	r = buf_printf(out, "attempt %zu %" PRId64 " %u %s ", a->rcpt,
		a->time, a->attempt, kind_names[a->kind]);
	if (r == 0)
		r = a->next >= 0 ? buf_printf(out, "%" PRId64, a->next) :
			buf_puts(out, "-");
	if (r == 0)
		r = buf_printf(out, " %s %d %s ", src_names[a->src], a->reply,
			a->status);
	for (size_t i = 0; r == 0 && i < rn; i++)
		r = buf_putc(out, text_is_ctl((unsigned char)rs[i]) ? ' ' :
			rs[i]);
	if (r == 0)
		r = buf_putc(out, '\n');
	return r;
}

/* Append a's record. */
int
journal_format(const struct journal_attempt *a, struct buf *out)
{
	size_t start = out->len;
	int r = a->type == JOURNAL_REPORTED ? format_reported(a, out) :
		format_attempt(a, out);

	if (r < 0 && out->data) {
		out->len = start;	/* nothing half-written stays */
		out->data[start] = '\0';
	}
	return r;
}

/* The next space-ended word of line [*i, n): its start and length. */
static bool
word(const char *p, size_t n, size_t *i, const char **w, size_t *wn)
{
	size_t s = *i;

	while (*i < n && p[*i] != ' ')
		(*i)++;
	if (*i == s || *i >= n)
		return false;	/* empty, or no space after it */
	*w = p + s;
	*wn = *i - s;
	(*i)++;
	return true;
}

/* A plain decimal (no sign, no leading zero) that fits max. */
static bool
number(const char *w, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || (n > 1 && w[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (w[i] < '0' || w[i] > '9' ||
		    v > (max - (uint64_t)(w[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(w[i] - '0');
	}
	*out = v;
	return true;
}

/* Index of the word w in names (n of them), or -1. */
static int
lookup(const char *const *names, int n, const char *w, size_t wn)
{
	for (int i = 0; i < n; i++)
		if (strlen(names[i]) == wn && memcmp(names[i], w, wn) == 0)
			return i;
	return -1;
}

/* The rest of a `reported` line, from its ACTION word at p[*i]. */
static int
parse_reported(const char *p, size_t n, size_t i, struct journal_attempt *a,
	const char **why)
{
	const char *w;
	size_t wn;
	int k;

	a->type = JOURNAL_REPORTED;
	*why = "bad reported action";
	if (!word(p, n, &i, &w, &wn) || (k = lookup(action_names, 4, w,
	    wn)) < 0)
		return -EBADMSG;
	a->action = (enum journal_action)k;
	*why = "bad report uid";	/* the last word: no space after it */
	w = p + i;
	wn = n - i;
	if (wn == 1 && w[0] == '-')
		a->report[0] = '\0';
	else if (uid_ok(w, wn)) {
		memcpy(a->report, w, wn);	/* wn == JOURNAL_UID_LEN */
		a->report[wn] = '\0';
	} else {
		return -EBADMSG;
	}
	*why = NULL;
	return 0;
}

/* Parse one record line p[0..n) (without its LF). */
static int
parse_line(const char *p, size_t n, size_t nrcpt, struct journal_attempt *a,
	const char **why)
{
	const char *w;
	size_t i = 0, wn;
	uint64_t v;
	bool reported;
	int k;

	memset(a, 0, sizeof(*a));
	*why = "not an attempt record";
	if (!word(p, n, &i, &w, &wn))
		return -EBADMSG;
	reported = wn == 8 && memcmp(w, "reported", 8) == 0;
	if (!reported && (wn != 7 || memcmp(w, "attempt", 7)))
		return -EBADMSG;
	*why = "bad recipient index";
	if (!word(p, n, &i, &w, &wn) || !number(w, wn, SIZE_MAX, &v) ||
	    v >= nrcpt)
		return -EBADMSG;
	a->rcpt = (size_t)v;
	*why = "bad attempt time";
	if (!word(p, n, &i, &w, &wn) || !number(w, wn, INT64_MAX, &v))
		return -EBADMSG;
	a->time = (int64_t)v;
	if (reported)
		return parse_reported(p, n, i, a, why);
	*why = "bad attempt number";
	if (!word(p, n, &i, &w, &wn) || !number(w, wn, UINT32_MAX, &v) ||
	    v == 0)
		return -EBADMSG;
	a->attempt = (unsigned)v;
	*why = "bad attempt kind";
	if (!word(p, n, &i, &w, &wn) || (k = lookup(kind_names, 2, w,
	    wn)) < 0)
		return -EBADMSG;
	a->kind = (enum journal_kind)k;
	*why = "bad next attempt time";
	if (!word(p, n, &i, &w, &wn))
		return -EBADMSG;
	if (wn == 1 && w[0] == '-')
		a->next = -1;
	else if (number(w, wn, INT64_MAX, &v))
		a->next = (int64_t)v;
	else
		return -EBADMSG;
	*why = "bad answer source";
	if (!word(p, n, &i, &w, &wn) || (k = lookup(src_names, 4, w,
	    wn)) < 0)
		return -EBADMSG;
	a->src = (enum journal_src)k;
	*why = "bad reply code";
	if (!word(p, n, &i, &w, &wn) || wn != 3 ||
	    !number(w, wn, 599, &v) || v < 200)
		return -EBADMSG;
	a->reply = (int)v;
	*why = "bad status code";
	if (!word(p, n, &i, &w, &wn) || !status_ok(w, wn))
		return -EBADMSG;
	memcpy(a->status, w, wn);
	a->status[wn] = '\0';
	*why = "bad reason";
	if (n - i > JOURNAL_REASON_MAX || text_has_ctl(p + i, n - i, false))
		return -EBADMSG;
	a->reason = p + i;
	a->reason_len = n - i;
	*why = NULL;
	return 0;
}

/* Parse a journal; see journal.h. */
int
journal_parse(const char *p, size_t n, size_t nrcpt, journal_cb cb,
	void *arg, size_t *used, const char **why, unsigned *line)
{
	struct journal_attempt a;
	size_t off = 0;
	int r;

	*used = 0;
	*why = NULL;
	*line = 0;
	while (off < n) {
		const char *lf = memchr(p + off, '\n', n - off);

		if (lf == NULL)
			break;	/* cut short by a crash: not a record */
		(*line)++;
		if ((r = parse_line(p + off, (size_t)(lf - p - off), nrcpt, &a,
		    why)) < 0)
			return r;
		if (cb && (r = cb(arg, &a)) < 0)
			return r;
		off = (size_t)(lf - p) + 1;
		*used = off;
	}
	*line = 0;
	return 0;
}
