/*
 * testutil: helpers shared by the unit tests that run real programs. They
 * own nothing between calls; each checks its own work with cmocka's
 * asserts, so a failure stops the test that called it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strv.h"
#include "testutil.h"

/* snprintf that fails the test instead of truncating. */
void
tu_snprintf(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(dst, n, fmt, ap);
	va_end(ap);
	assert_true(k >= 0 && (size_t)k < n);
}

/* Count this process's open descriptors (not the listing's own). */
int
tu_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

/* Where the test programs were built: $MAILPIPE_BUILD or next to us. */
void
tu_programs_dir(char *dst)
{
	const char *b = getenv("MAILPIPE_BUILD");
	char exe[PATH_MAX];
	ssize_t n;

	if (b) {
		tu_snprintf(dst, PATH_MAX, "%s/tests/programs", b);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	tu_snprintf(dst, PATH_MAX, "%s/../programs", exe);
}

/* Copy src to dst with mode, owned by uid:uid. */
void
tu_copy_file(const char *src, const char *dst, mode_t mode, uid_t uid)
{
	char b[65536];
	int in, out;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(out >= 0);
	while ((n = read(in, b, sizeof(b))) > 0)
		assert_int_equal(write(out, b, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	assert_int_equal(close(out), 0);
	assert_int_equal(chmod(dst, mode), 0);
	assert_int_equal(chown(dst, uid, uid), 0);
}

/* A command: tags, application, parameters (NULL-terminated). */
void
tu_make_cmd(struct pipe_cmd *c, unsigned tags, const char *app, ...)
{
	va_list ap;
	const char *p;

	memset(c, 0, sizeof(*c));
	c->tags = tags;
	c->app = strdup(app);
	assert_non_null(c->app);
	va_start(ap, app);
	while ((p = va_arg(ap, const char *)) != NULL)
		assert_int_equal(strv_push(&c->params, p), 0);
	va_end(ap);
}

/* malloc'ed printf. */
char *
tu_strdupf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int k;

	va_start(ap, fmt);
	k = vasprintf(&s, fmt, ap);
	va_end(ap);
	assert_true(k >= 0);
	return s;
}

/* Read the whole file at path. */
char *
tu_slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0, cap = 4096;
	char *s = malloc(cap);
	ssize_t k;

	assert_true(fd >= 0);
	assert_non_null(s);
	while ((k = read(fd, s + n, cap - n - 1)) > 0) {
		n += (size_t)k;
		if (n + 1 == cap)
			assert_non_null(s = realloc(s, cap *= 2));
	}
	assert_true(k == 0);
	close(fd);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}

/* Does the file hold text? */
bool
tu_file_has(const char *path, const char *text)
{
	char *s = tu_slurp(path, NULL);
	bool yes = strstr(s, text) != NULL;

	free(s);
	return yes;
}

/* Remove one path of a tree (nftw callback). */
static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

/* Remove dir and what it holds (depth first, no symlink followed). */
void
tu_rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
