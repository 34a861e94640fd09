/*
 * localsub: what `sendmail` and `mail` share (localsub.h,
 * docs/LOCAL-SUBMISSION.md): base directory, stdin, the .sub text, the
 * durable write into BASE/Submitted/, the Queue/ listing (printed from
 * store_list). Promises: the setgid group is held only around that write;
 * no environment but MAILPIPE_BASE is used. Never exits, never needs the
 * server.
 *
 * This file: errors, privileges, the base directory, who submits, reading
 * stdin. The rest (shared internals in localsub_int.h):
 * localsub_compose.c (arguments and the .sub text, the sendmail and mail
 * runs), localsub_write.c (the Submitted writer), localsub_queue.c (-bp).
 */
#include "localsub.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sysexits.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "address.h"
#include "buf.h"
#include "config.h"
#include "localsub_int.h"
#include "mp_build.h"
#include "strv.h"
#include "text.h"

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
int
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
int
localsub__gid_hold(const struct localsub *ls)
{
	if (ls->setgid && setresgid((gid_t)-1, ls->sgid, (gid_t)-1) < 0)
		return -errno;
	return 0;
}

/* Give the setgid group up for good (real, effective and saved gid). */
int
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
	base = text_strdup(env && *env ? env : MAILPIPE_DEFAULT_BASE);
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
	if (b.len == 0 || text_has_ctl(b.data, b.len, false) ||
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
		*host = text_strdup(c.server.hostname);
		*domain = text_strdup(c.router.local_domains.n > 0 ?
			c.router.local_domains.v[0] : c.server.hostname);
	} else {
		*host = text_strdup(u.nodename);
		*domain = text_strdup(u.nodename);
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
	if ((ls->login = text_strdup(pw->pw_name)) == NULL ||
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

/* The option getopt refused; see localsub.h. */
const char *
localsub_bad_option(char opt[3], char **argv)
{
	opt[0] = '-';
	opt[1] = (char)optopt;
	opt[2] = '\0';
	return optopt > 0x20 && optopt < 0x7f ? opt : argv[optind - 1];
}
