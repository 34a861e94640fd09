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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
