/*
 * smtpcmd: the SMTP command grammar (RFC 5321 verbs, RFC 1870/6152 SIZE and
 * BODY, RFC 3461 DSN parameters). Owns turning one command line into a
 * struct smtp_cmd or one exact error reply (code, status, constant text).
 * Promises that an accepted path went through address_parse and is the
 * canonical address_format text, that an rfc822 ORCPT decodes to a valid
 * mailbox, and that nothing accepted holds a control or 8-bit byte. Never
 * does I/O, never keeps state, never exits.
 */
#include "smtpcmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "envelope.h"
#include "smtpcodec.h"
#include "text.h"

/* RFC 3461: ENVID at most 100 characters, ORCPT's xtext at most 500. */
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500

/* Verbs by name; the order matches enum smtp_verb. */
static const char *const smtp_verb_names[] = {
	[SMTP_HELO] = "HELO", [SMTP_EHLO] = "EHLO", [SMTP_MAIL] = "MAIL",
	[SMTP_RCPT] = "RCPT", [SMTP_DATA] = "DATA", [SMTP_RSET] = "RSET",
	[SMTP_NOOP] = "NOOP", [SMTP_QUIT] = "QUIT", [SMTP_VRFY] = "VRFY",
	[SMTP_HELP] = "HELP", [SMTP_STARTTLS] = "STARTTLS",
	[SMTP_EXPN] = "EXPN", [SMTP_BDAT] = "BDAT", [SMTP_AUTH] = "AUTH",
};

#define SMTP_NVERBS (sizeof(smtp_verb_names) / sizeof(smtp_verb_names[0]))

/* The MAIL and RCPT parameters we know (bit numbers for duplicates). */
enum smtp_param {
	P_SIZE, P_BODY, P_RET, P_ENVID, P_NOTIFY, P_ORCPT,
};

static const struct {
	const char *name;
	enum smtp_param id;
	bool mail;		/* belongs to MAIL (else to RCPT) */
} smtp_params[] = {
	{ "SIZE", P_SIZE, true },
	{ "BODY", P_BODY, true },
	{ "RET", P_RET, true },
	{ "ENVID", P_ENVID, true },
	{ "NOTIFY", P_NOTIFY, false },
	{ "ORCPT", P_ORCPT, false },
};

/* Fill *e and return -EINVAL. */
static int
smtp_fail(struct smtp_err *e, int code, const char *status, const char *text)
{
	e->code = code;
	e->status = status;
	e->text = text;
	return -EINVAL;
}

/* Fill *e for a 501 5.5.4 syntax error and return -EINVAL. */
static int
smtp_syntax(struct smtp_err *e, const char *text)
{
	return smtp_fail(e, 501, "5.5.4", text);
}

/* Fill *e for a 553 5.1.3 bad address and return -EINVAL. */
static int
smtp_badaddr(struct smtp_err *e, const char *text)
{
	return smtp_fail(e, 553, "5.1.3", text);
}

/* ASCII upper-case of one byte (locale-independent). */
static unsigned char
smtp_upper(unsigned char c)
{
	return c >= 'a' && c <= 'z' ? (unsigned char)(c - 'a' + 'A') : c;
}

/* Do the n bytes at s equal the C string word, ignoring ASCII case? */
static bool
smtp_ci_eq(const char *s, size_t n, const char *word)
{
	if (strlen(word) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (smtp_upper((unsigned char)s[i]) !=
		    smtp_upper((unsigned char)word[i]))
			return false;
	return true;
}

/* Does s (n bytes) start with the C string word, ignoring ASCII case? */
static bool
smtp_ci_prefix(const char *s, size_t n, const char *word)
{
	size_t w = strlen(word);

	return n >= w && smtp_ci_eq(s, w, word);
}

/* Is c an ASCII letter or digit? */
static bool
smtp_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9');
}


/* Set *out to a malloc'ed copy of s[0..n). */
static int
smtp_dup(const char *s, size_t n, char **out)
{
	return (*out = text_strndup(s, n)) ? 0 : -ENOMEM;
}

/* HELO/EHLO: one word of printable ASCII (liberal: not checked as DNS). */
static int
smtp_helo(const char *arg, size_t n, struct smtp_cmd *c, struct smtp_err *e)
{
	if (n == 0)
		return smtp_syntax(e, "HELO/EHLO requires a domain name or "
			"address literal");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)arg[i];

		if (ch <= 0x20 || ch >= 0x7f)
			return smtp_syntax(e, "bad character in HELO/EHLO name");
	}
	return smtp_dup(arg, n, &c->arg);
}

/* Is s[0..n) a source-route domain (letters, digits, '-', '.')? */
static bool
smtp_route_domain(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!smtp_alnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '.')
			return false;
	return true;
}

/*
 * Length of the source route "@a,@b:" at the start of s (n bytes), which
 * is dropped (RFC 5321 section 4.1.2 and appendix C); 0 when there is none,
 * -EINVAL when it is malformed.
 */
static long
smtp_route_len(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || s[0] != '@')
		return 0;
	for (;;) {
		size_t start;

		if (i >= n || s[i] != '@')
			return -EINVAL;
		start = ++i;
		while (i < n && s[i] != ',' && s[i] != ':')
			i++;
		if (i >= n || !smtp_route_domain(s + start, i - start))
			return -EINVAL;
		if (s[i++] == ':')
			return (long)i;
	}
}

/* Parse the text between the angle brackets into the canonical path. */
static int
smtp_path(const char *s, size_t n, bool mail, char **out,
	struct smtp_err *e)
{
	struct address a = ADDRESS_INIT;
	const char *why = "bad address";
	long route;
	int r;

	if (n == 0) {
		if (!mail)
			return smtp_badaddr(e, "null recipient address");
		return smtp_dup("", 0, out);
	}
	if ((route = smtp_route_len(s, n)) < 0)
		return smtp_badaddr(e, "bad source route");
	s += route;
	n -= (size_t)route;
	if (n == 0)
		return smtp_badaddr(e, "source route without a mailbox");
	r = address_parse(s, n, mail ? 0 : ADDRESS_ALLOW_UNQUALIFIED, &a, &why);
	if (r == -EINVAL)
		return smtp_badaddr(e, why);
	if (r < 0)
		return r;
	if (a.domain == NULL) {
		/* RFC 5321 4.5.1: "Postmaster" without a domain, any case */
		if (smtp_ci_eq(a.local, strlen(a.local), "postmaster"))
			r = smtp_dup("postmaster", 10, out);
		else
			r = smtp_badaddr(e, "address must have a domain (only "
				"postmaster may omit it)");
	} else {
		r = address_format(&a, out);
	}
	address_free(&a);
	return r;
}

/* SIZE=digits (RFC 1870); overflow of 64 bits is a syntax error. */
static int
smtp_param_size(const char *v, size_t n, struct smtp_cmd *c,
	struct smtp_err *e)
{
	uint64_t size = 0;

	if (n == 0)
		return smtp_syntax(e, "bad SIZE value");
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)v[i] - '0';

		if (d > 9 || size > (UINT64_MAX - d) / 10)
			return smtp_syntax(e, "bad SIZE value");
		size = size * 10 + d;
	}
	c->has_size = true;
	c->size = size;
	return 0;
}

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461). */
static int
smtp_param_notify(const char *v, size_t n, struct smtp_cmd *c,
	struct smtp_err *e)
{
	static const struct {
		const char *word;
		unsigned bit;
	} words[] = {
		{ "SUCCESS", NOTIFY_SUCCESS },
		{ "FAILURE", NOTIFY_FAILURE },
		{ "DELAY", NOTIFY_DELAY },
	};
	unsigned bits = 0;
	size_t i = 0;

	if (smtp_ci_eq(v, n, "NEVER")) {
		c->notify = NOTIFY_NEVER;
		return 0;
	}
	for (;;) {
		const char *comma = memchr(v + i, ',', n - i);
		size_t end = comma ? (size_t)(comma - v) : n, k;

		for (k = 0; k < sizeof(words) / sizeof(words[0]); k++)
			if (smtp_ci_eq(v + i, end - i, words[k].word))
				break;
		if (k == sizeof(words) / sizeof(words[0]))
			return smtp_syntax(e, "bad NOTIFY value (NEVER, or "
				"SUCCESS,FAILURE,DELAY)");
		bits |= words[k].bit;
		if (comma == NULL)
			break;
		i = end + 1;
	}
	c->notify = bits;
	return 0;
}

/* Is s[0..n) an RFC 5322 atom (atext only, at least one)? */
static bool
smtp_atom(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!smtp_alnum(ch) && (ch == '\0' ||
		    strchr("!#$%&'*+-/=?^_`{|}~", ch) == NULL))
			return false;
	}
	return true;
}

/* The mailbox an rfc822 ORCPT names (see smtpcmd.h). */
int
smtp_orcpt_address(const char *orcpt, size_t len, char **out)
{
	const char *semi = memchr(orcpt, ';', len), *x, *why = NULL;
	struct address a = ADDRESS_INIT;
	size_t xlen, n = 0;
	char *d;
	int r;

	*out = NULL;
	if (semi == NULL)
		return -EINVAL;
	if (!smtp_ci_eq(orcpt, (size_t)(semi - orcpt), "rfc822"))
		return -ENOENT;
	x = semi + 1;
	xlen = len - (size_t)(x - orcpt);
	if (xlen == 0 || !smtpcodec_xtext_valid(x, xlen) ||
	    !smtpcodec_xtext_printable(x, xlen))
		return -EINVAL;
	if ((d = malloc(xlen + 1)) == NULL)
		return -ENOMEM;
	n = smtpcodec_xtext_decode(x, xlen, d);
	d[n] = '\0';
	r = address_parse(d, n, 0, &a, &why);
	address_free(&a);
	if (r < 0) {
		free(d);
		return r;
	}
	*out = d;
	return 0;
}

/*
 * ORIGINAL_RECIPIENT: an rfc822 ORCPT decoded when it names a valid
 * mailbox (smtp_orcpt_address), else the address as received: no ORCPT,
 * another addr-type, or one that is unusable (a queue file from elsewhere).
 */
int
smtp_original_recipient(const char *addr, const char *orcpt, char **out)
{
	int r = orcpt ? smtp_orcpt_address(orcpt, strlen(orcpt), out) :
		-ENOENT;

	if (r == 0 || r == -ENOMEM)
		return r;
	*out = strdup(addr);
	return *out ? 0 : -ENOMEM;
}

/*
 * ORCPT=addr-type;xtext with the xtext at most 500 characters; an rfc822
 * one must name a mailbox (smtp_orcpt_address), as it may reach a program.
 */
static int
smtp_param_orcpt(const char *v, size_t n, struct smtp_cmd *c,
	struct smtp_err *e)
{
	const char *semi = memchr(v, ';', n);
	const char *x;
	size_t tlen, xlen;
	char *addr = NULL;
	int r;

	if (semi == NULL)
		return smtp_syntax(e, "bad ORCPT value (addr-type;xtext)");
	tlen = (size_t)(semi - v);
	x = semi + 1;
	xlen = n - tlen - 1;
	if (!smtp_atom(v, tlen) || xlen == 0 || xlen > SMTP_ORCPT_MAX ||
	    !smtpcodec_xtext_valid(x, xlen) ||
	    !smtpcodec_xtext_printable(x, xlen))
		return smtp_syntax(e, "bad ORCPT value (addr-type;xtext)");
	r = smtp_orcpt_address(v, n, &addr);
	free(addr);
	if (r == -EINVAL)
		return smtp_syntax(e, "bad ORCPT address (rfc822;xtext must be "
			"a mailbox local@domain)");
	if (r < 0 && r != -ENOENT)
		return r;
	return smtp_dup(v, n, &c->orcpt);
}

/* Check and store one known parameter's value (v may be NULL: none). */
static int
smtp_param_value(enum smtp_param id, const char *v, size_t n,
	struct smtp_cmd *c, struct smtp_err *e)
{
	switch (id) {
	case P_SIZE:
		return smtp_param_size(v, v ? n : 0, c, e);
	case P_BODY:
		if (v && smtp_ci_eq(v, n, "7BIT"))
			c->body = SMTP_BODY_7BIT;
		else if (v && smtp_ci_eq(v, n, "8BITMIME"))
			c->body = SMTP_BODY_8BITMIME;
		else
			return smtp_syntax(e, "bad BODY value (7BIT or "
				"8BITMIME)");
		return 0;
	case P_RET:
		if (v && smtp_ci_eq(v, n, "FULL"))
			return smtp_dup("FULL", 4, &c->ret);
		if (v && smtp_ci_eq(v, n, "HDRS"))
			return smtp_dup("HDRS", 4, &c->ret);
		return smtp_syntax(e, "bad RET value (FULL or HDRS)");
	case P_ENVID:
		if (v == NULL || n == 0 || n > SMTP_ENVID_MAX ||
		    !smtpcodec_xtext_valid(v, n) ||
		    !smtpcodec_xtext_printable(v, n))
			return smtp_syntax(e, "bad ENVID value (xtext, at most "
				"100 characters)");
		return smtp_dup(v, n, &c->envid);
	case P_NOTIFY:
		if (v == NULL)
			return smtp_syntax(e, "bad NOTIFY value (NEVER, or "
				"SUCCESS,FAILURE,DELAY)");
		return smtp_param_notify(v, n, c, e);
	case P_ORCPT:
		if (v == NULL)
			return smtp_syntax(e, "bad ORCPT value (addr-type;xtext)");
		return smtp_param_orcpt(v, n, c, e);
	}
	return smtp_syntax(e, "syntax error in parameters");
}

/*
 * One "keyword[=value]" of MAIL (mail) or RCPT; *seen holds the bits of
 * the parameters given so far. RFC 5321 esmtp-keyword and esmtp-value.
 */
static int
smtp_param(const char *s, size_t n, bool mail, unsigned *seen,
	struct smtp_cmd *c, struct smtp_err *e)
{
	const char *eq = memchr(s, '=', n);
	size_t klen = eq ? (size_t)(eq - s) : n, vlen = 0, k;
	const char *v = NULL;

	if (klen == 0 || !smtp_alnum((unsigned char)s[0]))
		return smtp_syntax(e, "syntax error in parameters");
	for (size_t i = 1; i < klen; i++)
		if (!smtp_alnum((unsigned char)s[i]) && s[i] != '-')
			return smtp_syntax(e, "syntax error in parameters");
	if (eq) {
		v = eq + 1;
		vlen = n - klen - 1;
		if (vlen == 0)
			return smtp_syntax(e, "syntax error in parameters");
		for (size_t i = 0; i < vlen; i++) {
			unsigned char ch = (unsigned char)v[i];

			if (ch < 33 || ch > 126 || ch == '=')
				return smtp_syntax(e,
					"syntax error in parameters");
		}
	}
	for (k = 0; k < sizeof(smtp_params) / sizeof(smtp_params[0]); k++)
		if (smtp_ci_eq(s, klen, smtp_params[k].name))
			break;
	if (k == sizeof(smtp_params) / sizeof(smtp_params[0]))
		return smtp_fail(e, 555, "5.5.4", mail ?
			"unknown MAIL parameter" : "unknown RCPT parameter");
	if (smtp_params[k].mail != mail)
		return smtp_fail(e, 555, "5.5.4", mail ?
			"NOTIFY and ORCPT are RCPT parameters" :
			"SIZE, BODY, RET and ENVID are MAIL parameters");
	if (*seen & (1U << smtp_params[k].id))
		return smtp_syntax(e, "duplicate parameter");
	*seen |= 1U << smtp_params[k].id;
	return smtp_param_value(smtp_params[k].id, v, vlen, c, e);
}

/* The parameters after the path: words separated by one or more spaces. */
static int
smtp_params_parse(const char *s, size_t n, bool mail, struct smtp_cmd *c,
	struct smtp_err *e)
{
	unsigned seen = 0;
	size_t i = 0;
	int r;

	while (i < n) {
		size_t start;

		while (i < n && s[i] == ' ')
			i++;
		if (i == n)
			break;
		start = i;
		while (i < n && s[i] != ' ')
			i++;
		if ((r = smtp_param(s + start, i - start, mail, &seen, c, e)) < 0)
			return r;
	}
	return 0;
}

/*
 * Index of the '>' closing the path that starts with '<' at s[0], skipping
 * quoted strings (a quoted local part may hold '>'); -EINVAL when there is
 * none, -EBADMSG when a quoted string is still open at the end.
 */
static long
smtp_path_end(const char *s, size_t n)
{
	bool quoted = false;

	for (size_t i = 1; i < n; i++) {
		char ch = s[i];

		if (quoted) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				quoted = false;
		} else if (ch == '"') {
			quoted = true;
		} else if (ch == '>') {
			return (long)i;
		}
	}
	return quoted ? -EBADMSG : -EINVAL;
}

/* MAIL FROM:<path> [params] (mail) or RCPT TO:<path> [params]. */
static int
smtp_mail_rcpt(const char *arg, size_t n, bool mail, struct smtp_cmd *c,
	struct smtp_err *e)
{
	const char *kw = mail ? "FROM:" : "TO:";
	size_t klen = strlen(kw);
	long end;
	int r;

	if (!smtp_ci_prefix(arg, n, kw))
		return smtp_syntax(e, mail ? "syntax: MAIL FROM:<address>" :
			"syntax: RCPT TO:<address>");
	arg += klen;
	n -= klen;
	if (n > 0 && arg[0] == ' ')	/* "MAIL FROM: <a@b>" is common */
		arg++, n--;
	if (n == 0 || arg[0] != '<')
		return smtp_syntax(e, "the address must be in angle brackets");
	if ((end = smtp_path_end(arg, n)) == -EBADMSG)
		return smtp_badaddr(e, "unbalanced quotes");
	if (end < 0)
		return smtp_syntax(e, "the address must be in angle brackets");
	if ((r = smtp_path(arg + 1, (size_t)end - 1, mail, &c->path, e)) < 0)
		return r;
	arg += end + 1;
	n -= (size_t)end + 1;
	if (n > 0 && arg[0] != ' ')
		return smtp_syntax(e, "text after the address must be "
			"parameters after a space");
	return smtp_params_parse(arg, n, mail, c, e);
}

/* Look up the verb s[0..n); -1 when unknown. */
static int
smtp_verb_find(const char *s, size_t n)
{
	for (size_t i = 0; i < SMTP_NVERBS; i++)
		if (smtp_ci_eq(s, n, smtp_verb_names[i]))
			return (int)i;
	return -1;
}

/*
 * Parse one command line (see smtpcmd.h). c need not be initialised (it
 * must own nothing); it is filled on success and left empty on error. All
 * 8-bit bytes are refused, even inside a quoted local part: we do not offer
 * SMTPUTF8, so a client has no right to send them (RFC 6531 section 3.1).
 * On -ENOMEM *e reads "451 4.3.0" so the caller still has a reply.
 */
int
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *c,
	struct smtp_err *e)
{
	struct smtp_err dummy;
	const char *arg;
	size_t vlen = 0, alen;
	int verb, r;

	if (e == NULL)
		e = &dummy;
	*c = (struct smtp_cmd)SMTP_CMD_INIT;
	if (line == NULL)
		len = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if (ch == '\0' || ch == '\r' || ch == '\n' || ch >= 0x80)
			return smtp_fail(e, 500, "5.5.2", "command line holds "
				"NUL, CR, LF or 8-bit bytes");
	}
	while (len > 0 && line[len - 1] == ' ')
		len--;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	if ((verb = smtp_verb_find(line, vlen)) < 0)
		return smtp_fail(e, 500, "5.5.1", "unrecognized command");
	c->verb = (enum smtp_verb)verb;
	arg = line + vlen;
	alen = len - vlen;
	while (alen > 0 && arg[0] == ' ')
		arg++, alen--;

	switch (c->verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		r = smtp_helo(arg, alen, c, e);
		break;
	case SMTP_MAIL:
	case SMTP_RCPT:
		r = smtp_mail_rcpt(arg, alen, c->verb == SMTP_MAIL, c, e);
		break;
	case SMTP_DATA:
	case SMTP_RSET:
	case SMTP_QUIT:
	case SMTP_STARTTLS:
		r = alen ? smtp_syntax(e, "this command takes no argument") : 0;
		break;
	case SMTP_VRFY:
	case SMTP_HELP:
		if (alen == 0 && c->verb == SMTP_VRFY)
			r = smtp_syntax(e, "VRFY requires an argument");
		else if (text_has_ctl(arg, alen, false))
			r = smtp_syntax(e, "control character in argument");
		else
			r = alen ? smtp_dup(arg, alen, &c->arg) : 0;
		break;
	case SMTP_NOOP:		/* the argument is ignored (RFC 5321 4.1.1.9) */
	case SMTP_EXPN:		/* not offered: the listener answers 502 */
	case SMTP_BDAT:
	case SMTP_AUTH:
	default:
		r = 0;
		break;
	}
	if (r == -ENOMEM)
		smtp_fail(e, 451, "4.3.0", "out of memory");
	if (r < 0) {
		smtp_cmd_free(c);
		return r;
	}
	return 0;
}

/* Release everything c owns and re-initialise it. */
void
smtp_cmd_free(struct smtp_cmd *c)
{
	if (c == NULL)
		return;
	free(c->arg);
	free(c->path);
	free(c->ret);
	free(c->envid);
	free(c->orcpt);
	*c = (struct smtp_cmd)SMTP_CMD_INIT;
}

/* The verb's name in upper case, for logs ("?" for an unknown value). */
const char *
smtp_verb_name(enum smtp_verb v)
{
	if ((size_t)v >= SMTP_NVERBS || smtp_verb_names[v] == NULL)
		return "?";
	return smtp_verb_names[v];
}
