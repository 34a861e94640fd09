/*
 * result: the delivery result type and the one exit-status table that turns
 * what a program did into delivered / deferred / failed (SPEC "PIPE
 * delivery", "Decisions / Failure class"), plus transport code maps.
 * Promises: a result text is one line without control characters; the
 * table lives here and nowhere else. Never does I/O, never keeps state.
 */
#include "result.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "buf.h"
#include "smtpreply.h"
#include "text.h"

/* stderr text used for a report is cut (at a character boundary) here, so
   that "NNN X.Y.Z text" stays within an SMTP reply line (RFC 5321: 512). */
#define RESULT_ERR_TEXT_MAX 400

/* Replace every control character of s with a space. */
static void
ctl_to_space(char *s)
{
	for (; *s; s++)
		if (text_is_ctl((unsigned char)*s))
			*s = ' ';
}

/* Copy status into dst; -EINVAL when it does not fit. */
static int
status_copy(char dst[RESULT_STATUS_MAX], const char *status)
{
	size_t n = status ? strlen(status) : 0;

	if (n >= RESULT_STATUS_MAX)
		return -EINVAL;
	memcpy(dst, status ? status : "", n);
	dst[n] = '\0';
	return 0;
}

/* Fill r with a formatted text; control characters become spaces. */
int
result_set(struct result *r, enum result_kind kind, int reply,
	const char *status, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	char st[RESULT_STATUS_MAX];
	char *text;
	va_list ap;
	int e;

	if ((e = status_copy(st, status)) < 0)
		return e;
	va_start(ap, fmt);
	e = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (e < 0 || (e = buf_steal(&b, &text)) < 0) {
		buf_free(&b);
		return e;
	}
	ctl_to_space(text);
	free(r->text);
	r->kind = kind;
	r->reply = reply;
	memcpy(r->status, st, sizeof(st));
	r->text = text;
	return 0;
}

/* Move src into dst, leaving src empty. */
void
result_move(struct result *dst, struct result *src)
{
	struct result empty = RESULT_INIT;

	if (dst == src)
		return;
	result_clear(dst);
	*dst = *src;
	*src = empty;
}

/* Free the text and reset. */
void
result_clear(struct result *r)
{
	struct result empty = RESULT_INIT;

	free(r->text);
	*r = empty;
}

/* Name of a result kind. */
const char *
result_kind_name(enum result_kind k)
{
	switch (k) {
	case RESULT_DELIVERED:
		return "delivered";
	case RESULT_DEFERRED:
		return "deferred";
	case RESULT_FAILED:
		return "failed";
	}
	return "unknown";
}

/* "250 2.0.0 text" (parts that are empty are left out). */
int
result_format(const struct result *r, char **out)
{
	struct buf b = BUF_INIT;
	int e;

	e = buf_printf(&b, "%03d", r->reply);
	if (e == 0 && r->status[0])
		e = buf_printf(&b, " %s", r->status);
	if (e == 0 && r->text && r->text[0])
		e = buf_printf(&b, " %s", r->text);
	if (e == 0)
		e = buf_steal(&b, out);
	if (e < 0)
		buf_free(&b);
	else
		ctl_to_space(*out);
	return e;
}

/* Parse "NNN [X.Y.Z] [text]"; the enhanced class must match NNN. */
int
code_reply_parse(const char *s, int *reply, char status[RESULT_STATUS_MAX],
	char **text, const char **why)
{
	const char *p = s, *end;
	size_t stlen;
	int code;

	*text = NULL;
	if (s == NULL || !(p[0] >= '0' && p[0] <= '9') ||
	    !(p[1] >= '0' && p[1] <= '9') || !(p[2] >= '0' && p[2] <= '9')) {
		*why = "reply must begin with a 3-digit code";
		return -EINVAL;
	}
	if (p[3] != '\0' && p[3] != ' ') {
		*why = "reply code must be followed by a space";
		return -EINVAL;
	}
	if (p[0] != '2' && p[0] != '4' && p[0] != '5') {
		*why = "reply code must be 2xx, 4xx or 5xx";
		return -EINVAL;
	}
	code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	for (const char *q = s; *q; q++)
		if (text_is_ctl((unsigned char)*q)) {
			*why = "reply holds a control character";
			return -EINVAL;
		}
	p += 3;
	while (*p == ' ')
		p++;
	status[0] = '\0';
	/* A word that starts with "D." is meant as an enhanced status. */
	if (p[0] >= '0' && p[0] <= '9' && p[1] == '.') {
		if (p[0] != s[0]) {
			*why = "enhanced status class differs from the "
			    "reply code";
			return -EINVAL;
		}
		if (smtpreply_status_parse(p, status, &stlen) < 0) {
			*why = "malformed enhanced status code";
			return -EINVAL;
		}
		p += stlen;
		while (*p == ' ')
			p++;
	} else {
		snprintf(status, RESULT_STATUS_MAX, "%c.0.0", s[0]);
	}
	end = p + strlen(p);
	while (end > p && end[-1] == ' ')
		end--;
	if (end > p && (*text = text_strndup(p, (size_t)(end - p))) == NULL) {
		*why = "out of memory";
		return -ENOMEM;
	}
	*reply = code;
	return 0;
}

/* Add or replace the entry for exit_status. */
int
code_map_set(struct code_map *m, int exit_status, const char *reply,
	const char **why)
{
	struct code_map_entry e, *v;
	int r;

	if (exit_status < 0 || exit_status > 255) {
		*why = "exit status must be 0..255";
		return -EINVAL;
	}
	if ((r = code_reply_parse(reply, &e.reply, e.status, &e.text, why)) < 0)
		return r;
	e.exit_status = exit_status;
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].exit_status == exit_status) {
			free(m->v[i].text);
			m->v[i] = e;
			return 0;
		}
	v = realloc(m->v, (m->n + 1) * sizeof(*v));
	if (v == NULL) {
		free(e.text);
		*why = "out of memory";
		return -ENOMEM;
	}
	m->v = v;
	m->v[m->n++] = e;
	return 0;
}

/* The entry for exit_status, or NULL. */
const struct code_map_entry *
code_map_find(const struct code_map *m, int exit_status)
{
	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].exit_status == exit_status)
			return &m->v[i];
	return NULL;
}

/* Free every entry. */
void
code_map_free(struct code_map *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].text);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

/* 79: EX_DB in PMDF's list, not in sysexits.h. */
#define RESULT_EX_DB 79

/* EX_OSERR, EX_IOERR, EX_TEMPFAIL (71, 74, 75) and 79 (EX_DB). */
bool
result_exit_is_temporary(int exit_status)
{
	return exit_status == EX_OSERR || exit_status == EX_IOERR ||
	    exit_status == EX_TEMPFAIL || exit_status == RESULT_EX_DB;
}

/*
 * The stderr text as one line: control characters are spaces, runs of
 * white space one space, trimmed, cut at RESULT_ERR_TEXT_MAX bytes on a
 * UTF-8 character boundary. Empty when nothing printable was written.
 */
static int
err_line(const char *s, struct buf *out)
{
	bool space = false;
	int r;

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (text_is_ctl(c) || c == ' ') {
			space = out->len > 0;
			continue;
		}
		if (out->len + (space ? 1 : 0) >= RESULT_ERR_TEXT_MAX &&
		    (c & 0xc0) != 0x80) {
			if ((r = buf_puts(out, "...")) < 0)
				return r;
			break;
		}
		if (space && (r = buf_putc(out, ' ')) < 0)
			return r;
		space = false;
		if ((r = buf_putc(out, (char)c)) < 0)
			return r;
	}
	return buf_reserve(out, 0);
}

/* "SIGSEGV" style name of a signal. */
static const char *
sig_name(int sig, struct buf *tmp)
{
	const char *abbrev = sigabbrev_np(sig);

	buf_reset(tmp);
	if (abbrev == NULL || buf_printf(tmp, "SIG%s", abbrev) < 0)
		return "unknown signal";
	return tmp->data;
}

/* The result of a program that could not be started. */
static int
spawn_failed_result(const struct run_outcome *o, struct result *out)
{
	const char *why = o->spawn_why && o->spawn_why[0] ? o->spawn_why :
	    "program could not be started";

	switch (o->code) {
	case SPAWN_FAIL_DISABLED:
		return result_set(out, RESULT_FAILED, 554, "5.3.0", "%s", why);
	case SPAWN_FAIL_NOAPP:
		return result_set(out, RESULT_FAILED, 550, "5.1.1", "%s", why);
	case SPAWN_FAIL_UNTRUSTED:
		return result_set(out, RESULT_DEFERRED, 451, "4.3.5", "%s",
		    why);
	case SPAWN_FAIL_TEMP:
		return result_set(out, RESULT_DEFERRED, 451, "4.3.0", "%s",
		    why);
	case SPAWN_FAIL_EXEC:
	default:
		return result_set(out, RESULT_FAILED, 554, "5.3.0", "%s", why);
	}
}

/* The kind of result a reply code gives. */
static enum result_kind
reply_kind(int reply)
{
	if (reply >= 200 && reply < 300)
		return RESULT_DELIVERED;
	if (reply >= 400 && reply < 500)
		return RESULT_DEFERRED;
	return RESULT_FAILED;
}

/* The result of a program that exited with status o->code. */
static int
exited_result(const struct run_outcome *o, const struct code_map *map,
	struct result *out)
{
	const struct code_map_entry *e = code_map_find(map, o->code);
	struct buf err = BUF_INIT;
	bool stderr_written = o->err_len > 0;
	bool has_err_text;
	enum result_kind kind;
	const char *status;
	int r, reply;

	if ((r = err_line(o->err_text, &err)) < 0)
		goto done;
	has_err_text = err.len > 0;
	if (e)
		kind = reply_kind(e->reply);
	else if (o->code == 0)
		kind = RESULT_DELIVERED;
	else if (result_exit_is_temporary(o->code))
		kind = RESULT_DEFERRED;
	else
		kind = RESULT_FAILED;

	if (kind == RESULT_DELIVERED) {
		/* A success the stderr or stdin rule turns into a failure. */
		if (stderr_written && !o->stderr_tag)
			r = result_set(out, RESULT_FAILED, 554, "5.3.0", "%s",
			    has_err_text ? err.data :
			    "program wrote to its standard error");
		else if (!o->stdin_consumed)
			r = result_set(out, RESULT_FAILED, 554, "5.3.0",
			    "program did not read all of its input");
		else if (e)
			r = result_set(out, kind, e->reply, e->status, "%s",
			    e->text ? e->text : "delivered");
		else
			r = result_set(out, kind, 250, "2.0.0", "delivered");
		goto done;
	}

	/* Deferred or failed: the class stays, the text explains: the
	   mapped text, else the stderr text, else the default one. */
	if (e) {
		reply = e->reply;
		status = e->status;
	} else {
		reply = kind == RESULT_DEFERRED ? 451 : 554;
		status = kind == RESULT_DEFERRED ? "4.3.0" : "5.3.0";
	}
	if (e && e->text)
		r = result_set(out, kind, reply, status, "%s", e->text);
	else if (has_err_text)
		r = result_set(out, kind, reply, status, "%s", err.data);
	else
		r = result_set(out, kind, reply, status,
		    "pipe transport gave exit status %d%s", o->code,
		    o->stdin_consumed ? "" :
		    "; program did not read all of its input");
done:
	buf_free(&err);
	return r;
}

/* The one exit-status table; see result.h. */
int
result_from_run(const struct run_outcome *o, const struct code_map *map,
	struct result *out)
{
	struct buf tmp = BUF_INIT;
	int r;

	switch (o->end) {
	case RUN_EXITED:
		return exited_result(o, map, out);
	case RUN_SIGNALED:
		r = result_set(out, RESULT_FAILED, 554, "5.3.0",
		    "pipe transport killed by signal %d (%s)", o->code,
		    sig_name(o->code, &tmp));
		buf_free(&tmp);
		return r;
	case RUN_TIMED_OUT:
		if (o->sync)
			return result_set(out, RESULT_DEFERRED, 451, "4.4.2",
			    "pipe transport exceeded the time limit of %us",
			    o->time_limit_s);
		return result_set(out, RESULT_FAILED, 554, "5.3.0",
		    "pipe transport exceeded the time limit of %us",
		    o->time_limit_s);
	case RUN_SPAWN_FAILED:
		return spawn_failed_result(o, out);
	}
	return -EINVAL;
}
