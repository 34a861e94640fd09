/*
 * localsub: what `sendmail` and `mail` share (localsub.h,
 * docs/LOCAL-SUBMISSION.md): base directory, stdin, the .sub text, the
 * durable write into BASE/Submitted/, the Queue/ listing (printed from
 * store_list). Promises: the setgid group is held only around that write;
 * no environment but MAILPIPE_BASE is used. Never exits, never needs the
 * server.
 */
#include "localsub.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "address.h"
#include "config.h"
#include "envelope.h"
#include "mp_build.h"
#include "msghdr.h"
#include "store.h"

/* Header lines are folded to stay within this many columns when possible. */
#define LOCALSUB_FOLD 78

/* Arguments checked before stdin is read (sendmail). */
struct localsub__prep {
	char *return_path;	/* canonical; "" = null */
	struct strv rcpts;	/* canonical argument recipients */
};

/* ---- errors ---------------------------------------------------------- */

/* Record an exit status and a one-line text; return r. */
int
localsub_fail(struct localsub_err *err, int ex, int r, const char *fmt, ...)
{
	va_list ap;

	err->ex = ex;
	buf_reset(&err->text);
	va_start(ap, fmt);
	if (buf_vprintf(&err->text, fmt, ap) < 0)
		buf_reset(&err->text);
	va_end(ap);
	return r < 0 ? r : -EINVAL;
}

/* The failure of an allocation or another unexpected system call. */
static int
localsub__oserr(struct localsub_err *err, int r, const char *what)
{
	return localsub_fail(err, EX_OSERR, r, "%s: %s", what, strerror(-r));
}

/* Print "PROG: text" on stderr and give the exit status. */
int
localsub_report(const struct localsub *ls, const struct localsub_err *err)
{
	fprintf(stderr, "%s: %s\n", ls->prog ? ls->prog : "mailpipe",
		err->text.data ? err->text.data : "unknown error");
	return err->ex ? err->ex : EX_SOFTWARE;
}

/* Free the text of err. */
void
localsub_err_free(struct localsub_err *err)
{
	buf_free(&err->text);
	err->ex = 0;
}

/* ---- privileges, base directory, identity ---------------------------- */

/* Take the setgid group back as the effective gid (Submitted write only). */
static int
localsub__gid_hold(const struct localsub *ls)
{
	if (ls->setgid && setresgid((gid_t)-1, ls->sgid, (gid_t)-1) < 0)
		return -errno;
	return 0;
}

/*
 * A pending file is mode 0404 with the submit group: the daemon user (in
 * "others", and owner of Submitted/) reads it; no other user can search
 * Submitted/ to reach it; the submit group, which can, has no right on it
 * (group bits win over others), so not even a process with the setgid
 * group reads another user's file; nobody but root changes it
 * (docs/LOCAL-SUBMISSION.md).
 */
static int
localsub__sub_mode(const struct localsub *ls, int fd)
{
	gid_t g = (gid_t)-1;

	if (ls->setgid) {
		g = ls->sgid;
	} else if (geteuid() == 0) {
		struct group *gr = getgrnam(MAILPIPE_SUBMIT_GROUP);

		if (gr)
			g = gr->gr_gid;
	}
	if (g != (gid_t)-1 && fchown(fd, (uid_t)-1, g) < 0)
		return -1;
	return fchmod(fd, 0404);
}

/* Give the setgid group up for good (real, effective and saved gid). */
static int
localsub__gid_drop(struct localsub *ls)
{
	gid_t r, e, s;

	if (!ls->setgid)
		return 0;
	if (setresgid(ls->rgid, ls->rgid, ls->rgid) < 0)
		return -errno;
	if (getresgid(&r, &e, &s) < 0)
		return -errno;
	if (r != ls->rgid || e != ls->rgid || s != ls->rgid)
		return -EPERM;
	ls->setgid = false;
	return 0;
}

/* Open /dev/null on any of fds 0-2 that is closed (none is reused). */
static int
localsub__std_fds(void)
{
	int fd;

	for (int i = 0; i < 3; i++) {
		if (fcntl(i, F_GETFD) >= 0 || errno != EBADF)
			continue;
		fd = open("/dev/null", O_RDWR);
		if (fd < 0)
			return -errno;
		if (fd != i)
			return -EBADF;
	}
	return 0;
}

/* Drop the setgid group, keep the base directory, clear the environment. */
int
localsub_init(struct localsub *ls, const char *prog, struct localsub_err *err)
{
	const char *env;
	char *base;
	gid_t egid;
	int r;

	memset(ls, 0, sizeof(*ls));
	ls->prog = prog;
	/* A closed stderr must not become the .sub file's descriptor. */
	if ((r = localsub__std_fds()) < 0)
		return localsub_fail(err, EX_OSERR, r,
			"cannot open /dev/null: %s", strerror(-r));
	ls->rgid = getgid();
	egid = getegid();
	ls->sgid = egid;
	if (egid != ls->rgid) {
		/* Keep the group only as the saved gid until the write. */
		if (setresgid(ls->rgid, ls->rgid, egid) < 0)
			return localsub_fail(err, EX_OSERR, -errno,
				"cannot drop group %u: %s", (unsigned)egid,
				strerror(errno));
		ls->setgid = true;
	}
	env = getenv("MAILPIPE_BASE");
	base = mp_strdup(env && *env ? env : MAILPIPE_DEFAULT_BASE);
	if (base == NULL)
		return localsub__oserr(err, -ENOMEM, "base directory");
	/* Nothing else from the environment is used, whoever runs us. */
	if (clearenv() != 0) {
		free(base);
		return localsub_fail(err, EX_OSERR, -ENOMEM,
			"cannot clear the environment");
	}
	umask(077);
	r = localsub_set_base(ls, base, err);
	free(base);
	if (r < 0)
		return r;
	g_mime_init();
	ls->gmime = true;
	return 0;
}

/* Set the base directory, made absolute against the working directory. */
int
localsub_set_base(struct localsub *ls, const char *dir,
	struct localsub_err *err)
{
	struct buf b = BUF_INIT;
	char *cwd = NULL;
	int r;

	if (*dir == '\0')
		return localsub_fail(err, EX_USAGE, -EINVAL,
			"empty base directory");
	if (dir[0] != '/') {
		cwd = get_current_dir_name();
		if (cwd == NULL)
			return localsub_fail(err, EX_OSERR, -errno,
				"cannot find the working directory: %s",
				strerror(errno));
	}
	r = cwd ? buf_printf(&b, "%s/%s", cwd, dir) : buf_puts(&b, dir);
	free(cwd);
	/* "/x/" and "/x" name the same place; keep messages tidy. */
	while (r == 0 && b.len > 1 && b.data[b.len - 1] == '/')
		b.data[--b.len] = '\0';
	if (r < 0) {
		buf_free(&b);
		return localsub__oserr(err, r, "base directory");
	}
	free(ls->base);
	ls->base = b.data;
	return 0;
}

/* The display name from a gecos field: first comma field, '&' = Login. */
static int
localsub__gecos(const char *gecos, const char *login, char **out)
{
	struct buf b = BUF_INIT;
	int r = 0;

	*out = NULL;
	if (gecos == NULL)
		return 0;
	for (const char *p = gecos; *p && *p != ',' && r == 0; p++) {
		if (*p == '&') {
			r = buf_putc(&b, login[0] >= 'a' && login[0] <= 'z' ?
				(char)(login[0] - 'a' + 'A') : login[0]);
			if (r == 0 && login[0])
				r = buf_puts(&b, login + 1);
		} else {
			r = buf_putc(&b, *p);
		}
	}
	if (r < 0) {
		buf_free(&b);
		return r;
	}
	/* An unusable name is left out rather than written raw. */
	if (b.len == 0 || address_has_ctl(b.data, b.len) ||
	    !g_utf8_validate(b.data, (gssize)b.len, NULL)) {
		buf_free(&b);
		return 0;
	}
	*out = b.data;
	return 0;
}

/*
 * From the config when it is readable, else uname's name for both: the
 * [server] hostname, and the domain the server gives unqualified addresses
 * (the first [router] local-domains entry, else the hostname).
 */
static int
localsub__hostname(const char *base, char **host, char **domain)
{
	struct utsname u;
	struct config c;
	char *cerr = NULL;
	int r;

	if (uname(&u) < 0)
		return -errno;
	memset(&c, 0, sizeof(c));
	r = config_load(&c, base, NULL, u.nodename, &cerr);
	if (r == 0 && c.server.hostname && *c.server.hostname) {
		*host = mp_strdup(c.server.hostname);
		*domain = mp_strdup(c.router.local_domains.n > 0 ?
			c.router.local_domains.v[0] : c.server.hostname);
	} else {
		*host = mp_strdup(u.nodename);
		*domain = mp_strdup(u.nodename);
	}
	free(cerr);
	config_free(&c);
	return *host && *domain ? 0 : -ENOMEM;
}

/* Who submits: passwd entry of the real uid and the host name. */
int
localsub_identity(struct localsub *ls, struct localsub_err *err)
{
	struct passwd *pw;
	uid_t uid = getuid();
	int r;

	if (ls->address)
		return 0;
	errno = 0;
	pw = getpwuid(uid);
	if (pw == NULL || pw->pw_name == NULL || pw->pw_name[0] == '\0')
		return localsub_fail(err, EX_NOUSER, errno ? -errno : -ENOENT,
			"no login name for user id %u", (unsigned)uid);
	if ((ls->login = mp_strdup(pw->pw_name)) == NULL ||
	    (r = localsub__gecos(pw->pw_gecos, pw->pw_name, &ls->fullname)) < 0)
		return localsub__oserr(err, -ENOMEM, "passwd entry");
	if ((r = localsub__hostname(ls->base, &ls->hostname, &ls->domain)) < 0)
		return localsub__oserr(err, r, "host name");
	r = address_join(ls->login, ls->hostname, &ls->address);
	if (r == -EINVAL)
		return localsub_fail(err, EX_NOUSER, r,
			"login name %s@%s is not a usable address",
			ls->login, ls->hostname);
	if (r < 0)
		return localsub__oserr(err, r, "address");
	return 0;
}

/* ---- input ----------------------------------------------------------- */

/* Is the line at p (n bytes, no LF) the lone "." that ends input? */
static bool
localsub__is_dot(const char *p, size_t n)
{
	return (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '\r');
}

/* Read fd to the end (or the lone "." line) into out. */
int
localsub_read(int fd, bool dot_ends, struct buf *out,
	struct localsub_err *err)
{
	size_t scan = out->len, chunk = 65536;
	ssize_t n;
	int r;

	for (;;) {
		if ((r = buf_reserve(out, chunk)) < 0)
			return localsub__oserr(err, r, "reading the message");
		n = read(fd, out->data + out->len, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return localsub_fail(err, EX_IOERR, -errno,
				"cannot read standard input: %s",
				strerror(errno));
		if (n == 0)
			break;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len > LOCALSUB_MAX_INPUT)
			return localsub_fail(err, EX_DATAERR, -EFBIG,
				"message larger than %zu bytes",
				LOCALSUB_MAX_INPUT);
		while (dot_ends) {
			char *nl = memchr(out->data + scan, '\n',
				out->len - scan);

			if (nl == NULL)
				break;
			if (localsub__is_dot(out->data + scan,
			    (size_t)(nl - out->data) - scan)) {
				out->len = scan;
				out->data[scan] = '\0';
				return 0;
			}
			scan = (size_t)(nl - out->data) + 1;
		}
	}
	if (dot_ends && localsub__is_dot(out->data + scan, out->len - scan))
		out->len = scan;
	out->data[out->len] = '\0';
	return 0;
}

/* CRLF -> LF in place; a final LF added to non-empty text. */
int
localsub_normalise(struct buf *b)
{
	size_t j = 0;
	int r;

	if ((r = buf_reserve(b, 1)) < 0)
		return r;
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\r' && i + 1 < b->len &&
		    b->data[i + 1] == '\n')
			continue;
		b->data[j++] = b->data[i];
	}
	b->len = j;
	b->data[j] = '\0';
	if (j > 0 && b->data[j - 1] != '\n')
		return buf_putc(b, '\n');
	return 0;
}

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
	for (const char *p = s; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
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

	if (address_has_ctl(arg, strlen(arg)))
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

/* The return-path of -f (brackets optional, "" / "<>" null) or ours. */
static int
localsub__return_path(const struct localsub *ls, const char *from,
	char **out, struct localsub_err *err)
{
	struct address a = ADDRESS_INIT;
	const char *why = NULL, *s = from;
	size_t n;
	int r;

	if (from == NULL) {
		*out = mp_strdup(ls->address);
		return *out ? 0 : localsub__oserr(err, -ENOMEM, "return-path");
	}
	n = strlen(s);
	if (address_has_ctl(s, n))
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
	if ((r = localsub__return_path(ls, o->from, &p->return_path, err)) < 0)
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
	if (r == 0 && !has_from)
		r = localsub__hdr_from(out, o->fullname ? o->fullname :
			ls->fullname, ls->address);
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

/* ---- the Submitted write --------------------------------------------- */

/* A fresh file name: time, pid and 64 random bits. */
static int
localsub__name(struct buf *b)
{
	uint64_t rnd;
	int r;

	if ((r = mp_random(&rnd, sizeof(rnd))) < 0)
		return r;
	return buf_printf(b, "%lld.%ld.%016" PRIx64, (long long)time(NULL),
		(long)getpid(), rnd);
}

/* Write all of data to fd (partial writes, EINTR). */
static int
localsub__write_all(int fd, const char *data, size_t len)
{
	size_t off = 0, n;
	ssize_t w;

	while (off < len) {
		n = len - off > ((size_t)1 << 30) ? (size_t)1 << 30 : len - off;
		w = write(fd, data + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		off += (size_t)w;
	}
	return 0;
}

/* The exit status for a failed open of Submitted/ or of the .tmp file. */
static int
localsub__open_ex(int e)
{
	return e == EACCES || e == EPERM ? EX_NOPERM : EX_CANTCREAT;
}

/*
 * Create, write, fsync, rename and make durable, with the group held.
 * Returns with the group still held; the caller drops it.
 */
static int
localsub__commit(struct localsub *ls, const char *dir, const char *name,
	const char *data, size_t len, struct localsub_err *err)
{
	struct buf tmp = BUF_INIT, sub = BUF_INIT;
	int dfd = -1, rfd = -1, fd = -1, r, e;
	bool renamed = false;

	if (buf_printf(&tmp, "%s.tmp", name) < 0 ||
	    buf_printf(&sub, "%s.sub", name) < 0) {
		r = localsub__oserr(err, -ENOMEM, "file name");
		goto out;
	}
	if ((r = localsub__gid_hold(ls)) < 0) {
		r = localsub__oserr(err, r, "cannot take the submit group");
		goto out;
	}
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		e = errno;
		if (e == ENOENT)
			r = localsub_fail(err, EX_UNAVAILABLE, -e,
				"mailpipe is not set up: %s missing", dir);
		else
			r = localsub_fail(err, localsub__open_ex(e), -e,
				"cannot open %s: %s", dir, strerror(e));
		goto out;
	}
	fd = openat(dfd, tmp.data, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW |
		O_CLOEXEC, 0400);
	if (fd < 0 || localsub__sub_mode(ls, fd) < 0) {
		e = errno;
		r = localsub_fail(err, localsub__open_ex(e), -e,
			"cannot create %s/%s: %s", dir, tmp.data, strerror(e));
		goto out;
	}
	if ((r = localsub__write_all(fd, data, len)) < 0 ||
	    (fsync(fd) < 0 && (r = -errno) < 0)) {
		r = localsub_fail(err, EX_IOERR, r, "cannot write %s/%s: %s",
			dir, tmp.data, strerror(-r));
		goto out;
	}
	if (renameat(dfd, tmp.data, dfd, sub.data) < 0) {
		e = errno;
		r = localsub_fail(err, EX_IOERR, -e,
			"cannot rename %s/%s to %s: %s", dir, tmp.data,
			sub.data, strerror(e));
		goto out;
	}
	renamed = true;
	/*
	 * Make the rename durable. A submitter in the group may not read a
	 * mode 1730 directory, so it cannot fsync it: syncfs() on the file
	 * then flushes the whole file system, the directory entry with it.
	 */
	rfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if ((rfd >= 0 && fsync(rfd) < 0) || (rfd < 0 && syncfs(fd) < 0)) {
		e = errno;
		r = localsub_fail(err, EX_IOERR, -e, "cannot sync %s: %s", dir,
			strerror(e));
		goto out;
	}
	r = 0;
out:
	if (r < 0 && fd >= 0)
		(void)unlinkat(dfd, renamed ? sub.data : tmp.data, 0);
	if (rfd >= 0)
		close(rfd);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	buf_free(&tmp);
	buf_free(&sub);
	return r;
}

/* Write data as BASE/Submitted/NAME.sub, durably. */
int
localsub_write(struct localsub *ls, const char *data, size_t len,
	char **path, struct localsub_err *err)
{
	struct buf dir = BUF_INIT, name = BUF_INIT;
	struct sigaction sa;
	sigset_t block;
	int r, r2;

	/* An interrupted write would leave a .tmp nobody removes. */
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, NULL);
	/* A file size limit makes write() fail instead of killing us. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGXFSZ, &sa, NULL);

	if (buf_printf(&dir, "%s/Submitted", ls->base) < 0)
		r = localsub__oserr(err, -ENOMEM, "file name");
	else if ((r = localsub__name(&name)) < 0)
		r = localsub__oserr(err, r, "random file name");
	else
		r = localsub__commit(ls, dir.data, name.data, data, len, err);
	r2 = localsub__gid_drop(ls);
	if (r == 0 && r2 < 0)
		r = localsub__oserr(err, r2, "cannot drop the submit group");
	if (r == 0 && path && (buf_printf(&dir, "/%s.sub", name.data) < 0 ||
	    buf_steal(&dir, path) < 0))
		r = localsub__oserr(err, -ENOMEM, "file name");
	buf_free(&dir);
	buf_free(&name);
	return r;
}

/* ---- sendmail -bp ---------------------------------------------------- */

/* A queue file store_list left out: say so on stderr (arg: prog). */
static void
localsub__queue_skipped(void *arg, const char *rel, const char *why,
	unsigned line)
{
	fprintf(stderr, "%s: %s: corrupt envelope (line %u: %s)\n",
		(const char *)arg, rel, line, why ? why : "unparsable");
}

/* Turn a store_list failure r at le into the exit status and text. */
static int
localsub__queue_fail(const struct localsub *ls, int r,
	const struct store_list_err *le, struct localsub_err *err)
{
	const char *rel = le->relpath ? le->relpath : "Queue";
	int e = -r;

	if (r == -ENOMEM || le->relpath == NULL)
		return localsub__oserr(err, r, "queue listing");
	switch (le->step) {
	case STORE_LIST_OPEN_DIR:
		if (e == ENOENT && strcmp(rel, "Queue") == 0)
			return localsub_fail(err, EX_UNAVAILABLE, r,
				"mailpipe is not set up: %s/Queue missing",
				ls->base);
		return localsub_fail(err, e == EACCES || e == EPERM ?
			EX_NOPERM : EX_OSERR, r, "cannot read %s/%s: %s",
			ls->base, rel, strerror(e));
	case STORE_LIST_READ_DIR:
		return localsub_fail(err, EX_IOERR, r, "cannot read %s/%s: %s",
			ls->base, rel, strerror(e));
	case STORE_LIST_READ_FILE:
	default:
		return localsub_fail(err, e == EACCES || e == EPERM ?
			EX_NOPERM : EX_IOERR, r, "cannot read %s: %s", rel,
			strerror(e));
	}
}

/* Print the list, Postfix mailq style. */
static int
localsub__queue_print(const struct store_listing *q, FILE *out)
{
	uint64_t total = 0;
	char when[64];
	struct tm tm;
	time_t t;

	if (q->n == 0) {
		fputs("Mail queue is empty\n", out);
		return 0;
	}
	fprintf(out, "%-16s %8s %-19s  %s\n", "-Queue ID-", "--Size--",
		"---Arrival Time----", "-Sender/Recipient-------");
	for (size_t i = 0; i < q->n; i++) {
		const struct store_entry *m = &q->v[i];
		const struct envelope *e = &m->env;

		t = (time_t)e->submitted;
		if (localtime_r(&t, &tm) == NULL ||
		    strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm) == 0)
			snprintf(when, sizeof(when), "%" PRId64, e->submitted);
		fprintf(out, "%-16s %8" PRIu64 " %-19s  %s\n", m->id, e->size,
			when, e->from && *e->from ? e->from : "<>");
		for (size_t j = 0; j < e->nrcpt; j++)
			if (e->rcpt[j].state == RCPT_PENDING)
				fprintf(out, "%48s%s\n", "", e->rcpt[j].addr);
		fputc('\n', out);
		total += e->size;
	}
	fprintf(out, "-- %" PRIu64 " Kbytes in %zu Request%s.\n",
		(total + 1023) / 1024, q->n, q->n == 1 ? "" : "s");
	return 0;
}

/* sendmail -bp: list the queue with store_list(). */
int
localsub_queue_list(struct localsub *ls, FILE *out, struct localsub_err *err)
{
	struct store_listing q = STORE_LISTING_INIT;
	struct store_list_err le = STORE_LIST_ERR_INIT;
	int r;

	/* Reading the queue needs nothing of the submit group. */
	if ((r = localsub__gid_drop(ls)) < 0)
		return localsub__oserr(err, r, "cannot drop the submit group");
	r = store_list(ls->base, localsub__queue_skipped, (void *)ls->prog, &q,
		&le);
	if (r < 0) {
		r = localsub__queue_fail(ls, r, &le, err);
	} else {
		localsub__queue_print(&q, out);
		if (fflush(out) != 0 || ferror(out))
			r = localsub_fail(err, EX_IOERR, -EIO,
				"cannot write the listing: %s", strerror(errno));
	}
	store_listing_free(&q);
	store_list_err_free(&le);
	return r;
}

/* ---- cleanup --------------------------------------------------------- */

/* Free sendmail's option vectors. */
void
localsub_sendmail_free(struct localsub_sendmail *o)
{
	strv_free(&o->rcpts);
}

/* Free mail's option vectors. */
void
localsub_mail_free(struct localsub_mail *o)
{
	strv_free(&o->to);
	strv_free(&o->cc);
	strv_free(&o->bcc);
}

/* Free ls. */
void
localsub_free(struct localsub *ls)
{
	free(ls->base);
	free(ls->hostname);
	free(ls->domain);
	free(ls->login);
	free(ls->fullname);
	free(ls->address);
	if (ls->gmime)
		g_mime_shutdown();
	memset(ls, 0, sizeof(*ls));
}
