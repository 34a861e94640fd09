/*
 * localsub_compose: the message sendmail and mail submit (localsub.h,
 * docs/LOCAL-SUBMISSION.md): their arguments checked before stdin is read
 * (recipients, -f, -F, -s), the header split from the body, the fields
 * that choose the envelope (Return-Path:, Envelope-To:) and From:, To:,
 * Cc:, Subject: written and folded, smuggled envelope fields dropped; then
 * the runs that read stdin, build and hand the text to localsub_write.
 * Pure apart from GMime and those runs; never exits.
 */
#include "localsub.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "address.h"
#include "buf.h"
#include "localsub_int.h"
#include "msghdr.h"
#include "strv.h"
#include "text.h"

/* Header lines are folded to stay within this many columns when possible. */
#define LOCALSUB_FOLD 78

/* Arguments checked before stdin is read (sendmail). */
struct localsub__prep {
	char *return_path;	/* canonical; "" = null */
	char *from;		/* an added From:'s address (see below) */
	struct strv rcpts;	/* canonical argument recipients */
};

/*
 * Where the header of d (from start) ends: *hdr_end is the end of the last
 * header line, *body_off the start of the body (after the empty line, or
 * at the first line that is neither a field nor a continuation). NUL bytes
 * in the lines examined: EX_DATAERR.
 */
static int
localsub__split(const char *d, size_t len, size_t start, size_t *hdr_end,
	size_t *body_off, struct localsub_err *err)
{
	size_t p = start, e, n;
	bool any = false;
	const char *nl;

	while (p < len) {
		nl = memchr(d + p, '\n', len - p);
		e = nl ? (size_t)(nl - d) : len;
		if (memchr(d + p, '\0', e - p))
			return localsub_fail(err, EX_DATAERR, -EINVAL,
				"NUL byte in the message header");
		if (e == p) {
			*hdr_end = p;
			*body_off = p + 1;
			return 0;
		}
		if (d[p] == ' ' || d[p] == '\t') {
			if (!any)
				break;
		} else {
			for (n = 0; p + n < e && d[p + n] > 32 &&
			    d[p + n] < 127 && d[p + n] != ':'; n++)
				;
			if (n == 0 || p + n >= e || d[p + n] != ':')
				break;
			any = true;
		}
		p = nl ? e + 1 : len;
	}
	*hdr_end = p;
	*body_off = p;
	return 0;
}

/* ---- header text ----------------------------------------------------- */

/* Append "Name: a, b, c" folded after commas, one LF at the end. */
static int
localsub__hdr_list(struct buf *b, const char *name, const struct strv *v)
{
	size_t col = strlen(name) + 1, n;
	int r = buf_printf(b, "%s:", name);

	for (size_t i = 0; i < v->n && r == 0; i++) {
		n = strlen(v->v[i]);
		if (i > 0 && (r = buf_putc(b, ',')) == 0)
			col++;
		if (r == 0 && i > 0 && col + 1 + n > LOCALSUB_FOLD) {
			r = buf_puts(b, "\n ");
			col = 1;
		} else if (r == 0) {
			r = buf_putc(b, ' ');
			col++;
		}
		if (r == 0)
			r = buf_puts(b, v->v[i]);
		col += n;
	}
	return r ? r : buf_putc(b, '\n');
}

/* Append "Name: text" for an unstructured value, folded at white space. */
static int
localsub__hdr_text(struct buf *b, const char *name, const char *v)
{
	size_t col = strlen(name) + 2, i = 0, j, n = strlen(v);
	bool content = false;
	int r = buf_printf(b, "%s: ", name);

	while (r == 0 && i < n) {
		for (j = i + 1; j < n && v[j] != ' ' && v[j] != '\t'; j++)
			;
		if ((v[i] == ' ' || v[i] == '\t') && content &&
		    col + (j - i) > LOCALSUB_FOLD) {
			r = buf_putc(b, '\n');
			col = 0;
		}
		if (r == 0)
			r = buf_append(b, v + i, j - i);
		col += j - i;
		content = true;
		i = j;
	}
	return r ? r : buf_putc(b, '\n');
}

/* Append "From: Name <addr>" (name RFC 2047-encoded as needed) or addr. */
static int
localsub__hdr_from(struct buf *b, const char *name, const char *addr)
{
	InternetAddress *ia;
	char *s;
	int r;

	if (name == NULL || *name == '\0')
		return buf_printf(b, "From: %s\n", addr);
	ia = internet_address_mailbox_new(name, addr);
	if (ia == NULL)
		return -ENOMEM;
	s = internet_address_to_string(ia, NULL, TRUE);
	g_object_unref(ia);
	if (s == NULL)
		return -ENOMEM;
	r = buf_printf(b, "From: %s\n", s);
	g_free(s);
	return r;
}

/* Is text usable in a header: valid UTF-8, no control characters but TAB? */
static bool
localsub__text_ok(const char *s)
{
	if (text_has_ctl(s, strlen(s), true))
		return false;
	return g_utf8_validate(s, -1, NULL);
}

/* Does the text hold bytes >= 0x80? */
static bool
localsub__has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* ---- addresses ------------------------------------------------------- */

/*
 * Addresses of one recipient argument (an address, "Name <addr>" or a
 * comma-separated list) appended to out without duplicates; unqualified
 * ones get @domain when domain is not NULL. Refused (EX_USAGE): control
 * characters, a leading '-', no address at all, something unparsable.
 */
static int
localsub__rcpt_arg(const char *arg, const char *domain, struct strv *out,
	struct localsub_err *err)
{
	struct strv tmp = STRV_INIT;
	const char *why = NULL;
	int r;

	if (text_str_has_ctl(arg))
		return localsub_fail(err, EX_USAGE, -EINVAL,
			"a recipient argument holds a control character");
	if (arg[0] == '-')
		return localsub_fail(err, EX_USAGE, -EINVAL,
			"recipient %s starts with '-'", arg);
	r = msghdr_addresses(arg, domain, &tmp, &why);
	if (r == 0 && tmp.n == 0)
		r = localsub_fail(err, EX_USAGE, -EINVAL,
			"no address in recipient argument \"%s\"", arg);
	else if (r == -EINVAL)
		r = localsub_fail(err, EX_USAGE, r,
			"bad recipient address \"%s\": %s", arg,
			why ? why : "unparsable");
	else if (r < 0)
		r = localsub__oserr(err, r, "recipient");
	for (size_t i = 0; r == 0 && i < tmp.n; i++) {
		if (tmp.v[i][0] == '-')
			r = localsub_fail(err, EX_USAGE, -EINVAL,
				"recipient %s starts with '-'", tmp.v[i]);
		else if (strv_find(out, tmp.v[i]) < 0 &&
		    (r = strv_push(out, tmp.v[i])) < 0)
			r = localsub__oserr(err, r, "recipient");
	}
	strv_free(&tmp);
	return r;
}

/* Every argument of args through localsub__rcpt_arg. */
static int
localsub__rcpt_args(const struct strv *args, const char *domain,
	struct strv *out, struct localsub_err *err)
{
	int r;

	for (size_t i = 0; i < args->n; i++)
		if ((r = localsub__rcpt_arg(args->v[i], domain, out, err)) < 0)
			return r;
	return 0;
}

/* Addresses of the To/Cc/Bcc fields of the message (-t), deduplicated. */
static int
localsub__rcpt_header(const char *msg, const struct msghdr_block *h,
	struct strv *out, struct localsub_err *err)
{
	const char *const names[] = { "To", "Cc", "Bcc" };
	struct strv tmp = STRV_INIT;
	const char *why = NULL;
	char *value = NULL;
	int r = 0;

	for (size_t i = 0; i < h->n && r == 0; i++) {
		size_t k;

		for (k = 0; k < 3 && !msghdr_is(msg, &h->v[i], names[k]); k++)
			;
		if (k == 3)
			continue;
		if ((r = msghdr_value(msg, &h->v[i], &value)) < 0)
			return localsub__oserr(err, r, "header");
		r = msghdr_addresses(value, NULL, &tmp, &why);
		free(value);
		value = NULL;
		if (r == -EINVAL)
			r = localsub_fail(err, EX_DATAERR, r,
				"bad address in the %s: field: %s", names[k],
				why ? why : "unparsable");
		else if (r < 0)
			r = localsub__oserr(err, r, "header");
		for (size_t j = 0; r == 0 && j < tmp.n; j++)
			if (strv_find(out, tmp.v[j]) < 0 &&
			    (r = strv_push(out, tmp.v[j])) < 0)
				r = localsub__oserr(err, r, "recipient");
		strv_free(&tmp);
	}
	return r;
}

/*
 * The return-path of -f (brackets optional, "" / "<>" null) or ours, and
 * the address of a From: added to a message without one: the return-path
 * (qualified as the server would), or ours when it is null (SPEC
 * "Submitted folder", Postfix cleanup's rule).
 */
static int
localsub__return_path(const struct localsub *ls, const char *from,
	char **out, char **from_addr, struct localsub_err *err)
{
	struct address a = ADDRESS_INIT;
	const char *why = NULL, *s = from;
	size_t n;
	int r;

	if (from == NULL) {
		*out = text_strdup(ls->address);
		*from_addr = text_strdup(ls->address);
		return *out && *from_addr ? 0 :
			localsub__oserr(err, -ENOMEM, "return-path");
	}
	n = strlen(s);
	if (text_has_ctl(s, n, false))
		return localsub_fail(err, EX_USAGE, -EINVAL,
			"the -f address holds a control character");
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	if (n > 0 && s[0] == '-')
		return localsub_fail(err, EX_USAGE, -EINVAL,
			"the -f address %s starts with '-'", from);
	r = address_parse(s, n, ADDRESS_ALLOW_UNQUALIFIED | ADDRESS_ALLOW_NULL,
		&a, &why);
	if (r == -EINVAL)
		return localsub_fail(err, EX_USAGE, r, "bad -f address %s: %s",
			from, why ? why : "unparsable");
	if (r < 0)
		return localsub__oserr(err, r, "return-path");
	r = address_format(&a, out);
	if (r == 0 && **out == '\0')
		r = (*from_addr = text_strdup(ls->address)) ? 0 : -ENOMEM;
	else if (r == 0)
		r = address_join(a.local, a.domain ? a.domain : ls->domain,
			from_addr);
	address_free(&a);
	return r < 0 ? localsub__oserr(err, r, "return-path") : 0;
}

/* ---- sendmail -------------------------------------------------------- */

/* Free what a preparation holds. */
static void
localsub__prep_free(struct localsub__prep *p)
{
	free(p->return_path);
	p->return_path = NULL;
	free(p->from);
	p->from = NULL;
	strv_free(&p->rcpts);
}

/* Check sendmail's arguments (before stdin is read). */
static int
localsub__sendmail_prep(const struct localsub *ls,
	const struct localsub_sendmail *o, struct localsub__prep *p,
	struct localsub_err *err)
{
	int r;

	memset(p, 0, sizeof(*p));
	if (o->fullname && !localsub__text_ok(o->fullname))
		return localsub_fail(err, EX_USAGE, -EINVAL,
			"the -F name must be UTF-8 text without control characters");
	if ((r = localsub__return_path(ls, o->from, &p->return_path, &p->from,
	    err)) < 0)
		return r;
	if ((r = localsub__rcpt_args(&o->rcpts, NULL, &p->rcpts, err)) < 0)
		return r;
	if (!o->rcpts_from_header && p->rcpts.n == 0)
		return localsub_fail(err, EX_USAGE, -EINVAL, "no recipients");
	return 0;
}

/* Build the .sub text once the arguments are checked. */
static int
localsub__sendmail_compose(const struct localsub *ls,
	const struct localsub_sendmail *o, struct localsub__prep *p,
	const char *in, size_t len, struct buf *out, struct localsub_err *err)
{
	struct msghdr_block h = MSGHDR_INIT;
	struct strv env = STRV_INIT;
	const char *why = NULL, *hdr = in;
	size_t start = 0, hdr_end = 0, body_off = 0;
	bool has_from = false;
	int r;

	/* An mbox "From " separator line is not part of the message. */
	if (len >= 5 && memcmp(in, "From ", 5) == 0) {
		const char *nl = memchr(in, '\n', len);

		start = nl ? (size_t)(nl - in) + 1 : len;
	}
	if ((r = localsub__split(in, len, start, &hdr_end, &body_off, err)) < 0)
		return r;
	hdr = in + start;
	if (hdr_end > start) {
		r = msghdr_parse(hdr, hdr_end - start, &h, &why);
		if (r == -EINVAL)
			r = localsub_fail(err, EX_DATAERR, r,
				"bad message header: %s",
				why ? why : "unparsable");
		else if (r < 0)
			r = localsub__oserr(err, r, "header");
		if (r < 0)
			goto out;
		has_from = msghdr_find(hdr, &h, "From") >= 0;
	}
	if (o->rcpts_from_header) {
		r = localsub__rcpt_header(hdr, &h, &env, err);
		if (r == 0 && env.n == 0 && p->rcpts.n == 0)
			r = localsub_fail(err, EX_USAGE, -EINVAL,
				"no recipients: no To:, Cc: or Bcc: address "
				"in the message and none given");
		/* -t alone: the server reads To/Cc/Bcc itself. */
		if (r == 0 && p->rcpts.n == 0)
			strv_free(&env);
	}
	for (size_t i = 0; r == 0 && i < p->rcpts.n; i++)
		if (strv_find(&env, p->rcpts.v[i]) < 0 &&
		    (r = strv_push(&env, p->rcpts.v[i])) < 0)
			r = localsub__oserr(err, r, "recipient");
	if (r < 0)
		goto out;

	r = buf_printf(out, "Return-Path: <%s>\n", p->return_path);
	if (r == 0 && env.n > 0)
		r = localsub__hdr_list(out, "Envelope-To", &env);
	/* -F names any From: we add, the gecos name only our own address */
	if (r == 0 && !has_from)
		r = localsub__hdr_from(out, o->fullname ? o->fullname :
			strcmp(p->from, ls->address) == 0 ? ls->fullname : NULL,
			p->from);
	for (size_t i = 0; r == 0 && i < h.n; i++) {
		const struct msghdr_field *f = &h.v[i];

		/* Nothing in the input may choose the envelope. */
		if (msghdr_is(hdr, f, "Return-Path") ||
		    msghdr_is(hdr, f, "Envelope-To") ||
		    msghdr_is(hdr, f, "Envelope-Ignore"))
			continue;
		r = buf_append(out, hdr + f->off, f->len);
	}
	if (r == 0)
		r = buf_putc(out, '\n');
	if (r == 0)
		r = buf_append(out, in + body_off, len - body_off);
	if (r == 0 && out->len > 0 && out->data[out->len - 1] != '\n')
		r = buf_putc(out, '\n');
	if (r < 0)
		r = localsub__oserr(err, r, "message");
out:
	strv_free(&env);
	msghdr_free(&h);
	return r;
}

/* Build sendmail's .sub text from normalised input. */
int
localsub_sendmail_build(const struct localsub *ls,
	const struct localsub_sendmail *o, const char *in, size_t len,
	struct buf *out, struct localsub_err *err)
{
	struct localsub__prep p;
	int r;

	r = localsub__sendmail_prep(ls, o, &p, err);
	if (r == 0)
		r = localsub__sendmail_compose(ls, o, &p, in, len, out, err);
	localsub__prep_free(&p);
	return r;
}

/* sendmail: check the arguments, read stdin, build, write. */
int
localsub_sendmail(struct localsub *ls, const struct localsub_sendmail *o,
	int in_fd, struct localsub_err *err)
{
	struct localsub__prep p;
	struct buf in = BUF_INIT, out = BUF_INIT;
	char *path = NULL;
	int r;

	if ((r = localsub_identity(ls, err)) < 0)
		return r;
	r = localsub__sendmail_prep(ls, o, &p, err);
	if (r == 0)
		r = localsub_read(in_fd, !o->ignore_dots, &in, err);
	if (r == 0 && (r = localsub_normalise(&in)) < 0)
		r = localsub__oserr(err, r, "message");
	if (r == 0)
		r = localsub__sendmail_compose(ls, o, &p, in.data, in.len,
			&out, err);
	buf_free(&in);
	localsub__prep_free(&p);
	if (r == 0)
		r = localsub_write(ls, out.data, out.len, &path, err);
	if (r == 0 && o->verbose)
		fprintf(stderr, "%s: submitted as %s\n", ls->prog, path);
	free(path);
	buf_free(&out);
	return r;
}

/* ---- mail ------------------------------------------------------------ */

/* Check mail's arguments: recipients for the envelope and for the header. */
static int
localsub__mail_prep(const struct localsub *ls, const struct localsub_mail *o,
	struct strv *env, struct strv *to, struct strv *cc,
	struct localsub_err *err)
{
	int r;

	if (o->subject && !localsub__text_ok(o->subject))
		return localsub_fail(err, EX_USAGE, -EINVAL,
			"the subject must be UTF-8 text without control characters");
	/* The envelope keeps addresses as typed: the server qualifies them. */
	if ((r = localsub__rcpt_args(&o->to, NULL, env, err)) < 0 ||
	    (r = localsub__rcpt_args(&o->cc, NULL, env, err)) < 0 ||
	    (r = localsub__rcpt_args(&o->bcc, NULL, env, err)) < 0)
		return r;
	if (env->n == 0)
		return localsub_fail(err, EX_USAGE, -EINVAL, "no recipients");
	/* Header fields need a domain (RFC 5322): the one the server uses. */
	if ((r = localsub__rcpt_args(&o->to, ls->domain, to, err)) < 0 ||
	    (r = localsub__rcpt_args(&o->cc, ls->domain, cc, err)) < 0)
		return r;
	return 0;
}

/* Build the whole message: our header fields, then the body. */
static int
localsub__mail_compose(const struct localsub *ls, const struct localsub_mail *o,
	const struct strv *env, const struct strv *to, const struct strv *cc,
	const char *body, size_t len, struct buf *out)
{
	char *subject;
	int r;

	r = buf_printf(out, "Return-Path: <%s>\n", ls->address);
	if (r == 0)
		r = localsub__hdr_list(out, "Envelope-To", env);
	if (r == 0)
		r = localsub__hdr_from(out, ls->fullname, ls->address);
	if (r == 0 && to->n > 0)
		r = localsub__hdr_list(out, "To", to);
	if (r == 0 && cc->n > 0)
		r = localsub__hdr_list(out, "Cc", cc);
	if (r == 0 && o->subject) {
		subject = g_mime_utils_header_encode_text(NULL, o->subject,
			"utf-8");
		if (subject == NULL)
			return -ENOMEM;
		r = localsub__hdr_text(out, "Subject", subject);
		g_free(subject);
	}
	if (r == 0 && localsub__has_8bit(body, len)) {
		bool utf8 = g_utf8_validate_len(body, len, NULL);

		r = buf_printf(out, "MIME-Version: 1.0\n"
			"Content-Type: text/plain; charset=%s\n"
			"Content-Transfer-Encoding: 8bit\n",
			utf8 ? "utf-8" : "unknown-8bit");
	}
	if (r == 0)
		r = buf_putc(out, '\n');
	if (r == 0)
		r = buf_append(out, body, len);
	if (r == 0 && len > 0 && body[len - 1] != '\n')
		r = buf_putc(out, '\n');
	return r;
}

/* Build mail's .sub text from a normalised body. */
int
localsub_mail_build(const struct localsub *ls, const struct localsub_mail *o,
	const char *body, size_t len, struct buf *out, struct localsub_err *err)
{
	struct strv env = STRV_INIT, to = STRV_INIT, cc = STRV_INIT;
	int r;

	r = localsub__mail_prep(ls, o, &env, &to, &cc, err);
	if (r == 0 && (r = localsub__mail_compose(ls, o, &env, &to, &cc, body,
	    len, out)) < 0)
		r = localsub__oserr(err, r, "message");
	strv_free(&env);
	strv_free(&to);
	strv_free(&cc);
	return r;
}

/* mail: check the arguments, read the body, build, write. */
int
localsub_mail(struct localsub *ls, const struct localsub_mail *o, int in_fd,
	struct localsub_err *err)
{
	struct strv env = STRV_INIT, to = STRV_INIT, cc = STRV_INIT;
	struct buf in = BUF_INIT, out = BUF_INIT;
	int r;

	if ((r = localsub_identity(ls, err)) < 0)
		return r;
	r = localsub__mail_prep(ls, o, &env, &to, &cc, err);
	/* At a terminal a lone "." ends the body, as legacy mail does. */
	if (r == 0)
		r = localsub_read(in_fd, isatty(in_fd) == 1, &in, err);
	if (r == 0 && (r = localsub_normalise(&in)) < 0)
		r = localsub__oserr(err, r, "message");
	if (r == 0 && (r = localsub__mail_compose(ls, o, &env, &to, &cc,
	    in.data, in.len, &out)) < 0)
		r = localsub__oserr(err, r, "message");
	buf_free(&in);
	strv_free(&env);
	strv_free(&to);
	strv_free(&cc);
	if (r == 0)
		r = localsub_write(ls, out.data, out.len, NULL, err);
	buf_free(&out);
	return r;
}
