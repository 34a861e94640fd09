/* Unit tests for pipe_build: argv, environment, working directory and
   the refusals (SPEC "PIPE delivery", "Decisions"). Pure: nothing runs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe.h"
#include "strv.h"
#include "testutil.h"

static const struct pipe_settings settings = {
	.base_dir = "/var/lib/mailpipe",
	.app_dir = "/var/lib/mailpipe/apps",
	.time_limit_s = 600,
	.stderr_limit = 65536,
	.path_env = "/usr/bin:/bin",
};

/* A request with every value set. */
static struct pipe_request
make_req(const struct pipe_cmd *c)
{
	struct pipe_request r = {
		.cmd = c,
		.queue_file = "Queue/12/ABC.msg",
		.sender = "from@example.org",
		.recipient = "list@lists.example",
		.orig_recipient = "List@Lists.Example",
		.queue_id = "ABC",
		.delivery_id = "ABC.3",
	};
	return r;
}

/* Compare a string vector with a NULL-terminated list. */
static void
assert_strv(const struct strv *sv, const char *const *want)
{
	size_t n = 0;

	while (want[n])
		n++;
	if (sv->n != n) {
		for (size_t i = 0; i < sv->n; i++)
			print_message("  got[%zu] = '%s'\n", i, sv->v[i]);
		fail_msg("got %zu strings, want %zu", sv->n, n);
	}
	for (size_t i = 0; i < n; i++)
		assert_string_equal(sv->v[i], want[i]);
	assert_null(sv->v[n]);
}

static const char *const full_env[] = {
	"PATH=/usr/bin:/bin", "SENDER=from@example.org",
	"RECIPIENT=list@lists.example",
	"ORIGINAL_RECIPIENT=List@Lists.Example", "QUEUE_ID=ABC",
	"DELIVERY_ID=ABC.3", NULL,
};

/* No tags: parameters only, cwd is the application directory. */
static void
test_plain(void **state)
{
	struct pipe_cmd c;
	struct pipe_request r;
	struct pipe_argv a = PIPE_ARGV_INIT;
	const char *why = "x";

	(void)state;
	tu_make_cmd(&c, 0, "listmgr", "-u", "joe smith", "", NULL);
	r = make_req(&c);
	assert_int_equal(pipe_build(&r, &settings, &a, &why), 0);
	assert_null(why);
	assert_string_equal(a.path, "/var/lib/mailpipe/apps/listmgr");
	assert_string_equal(a.cwd, "/var/lib/mailpipe/apps");
	assert_strv(&a.argv, (const char *[]){ "listmgr", "-u", "joe smith",
	    "", NULL });
	assert_strv(&a.envp, full_env);
	pipe_argv_free(&a);
	pipe_argv_free(&a);
	pipe_cmd_free(&c);
}

/* Every combination of tags: -f, -p, -r in that order, [STDERR] adds
   nothing; [FILE] moves the working directory to the base directory. */
static void
test_tag_combinations(void **state)
{
	(void)state;
	for (unsigned tags = 0; tags < 16; tags++) {
		struct pipe_cmd c;
		struct pipe_request r;
		struct pipe_argv a = PIPE_ARGV_INIT;
		const char *want[12], *why;
		size_t n = 0;

		tu_make_cmd(&c, tags, "rec", "p1", NULL);
		r = make_req(&c);
		assert_int_equal(pipe_build(&r, &settings, &a, &why), 0);
		want[n++] = "rec";
		want[n++] = "p1";
		if (tags & PIPE_TAG_FILE) {
			want[n++] = "-f";
			want[n++] = "/dev/fd/3";
		}
		if (tags & PIPE_TAG_RETPATH) {
			want[n++] = "-p";
			want[n++] = "from@example.org";
		}
		if (tags & PIPE_TAG_RCPT) {
			want[n++] = "-r";
			want[n++] = "List@Lists.Example";
		}
		want[n] = NULL;
		assert_strv(&a.argv, want);
		assert_string_equal(a.cwd, tags & PIPE_TAG_FILE ?
		    "/var/lib/mailpipe" : "/var/lib/mailpipe/apps");
		assert_strv(&a.envp, full_env);
		pipe_argv_free(&a);
		pipe_cmd_free(&c);
	}
}

/* The null return-path and missing values. */
static void
test_null_and_missing(void **state)
{
	struct pipe_cmd c;
	struct pipe_request r;
	struct pipe_argv a = PIPE_ARGV_INIT;
	struct pipe_settings s = settings;
	const char *why;

	(void)state;
	tu_make_cmd(&c, PIPE_TAG_RETPATH | PIPE_TAG_RCPT, "rec", NULL);
	r = make_req(&c);
	r.sender = "";
	assert_int_equal(pipe_build(&r, &settings, &a, &why), 0);
	assert_strv(&a.argv, (const char *[]){ "rec", "-p", "", "-r",
	    "List@Lists.Example", NULL });
	assert_string_equal(a.envp.v[1], "SENDER=");
	pipe_argv_free(&a);

	/* NULL values: left out of the environment; -p gets "", -r falls
	   back to the routed recipient. */
	r.sender = NULL;
	r.orig_recipient = NULL;
	r.queue_id = NULL;
	r.delivery_id = NULL;
	s.path_env = NULL;
	s.app_dir = "/apps/";
	assert_int_equal(pipe_build(&r, &s, &a, &why), 0);
	assert_strv(&a.argv, (const char *[]){ "rec", "-p", "", "-r",
	    "list@lists.example", NULL });
	assert_strv(&a.envp, (const char *[]){ "PATH=" PIPE_DEFAULT_PATH,
	    "RECIPIENT=list@lists.example", NULL });
	assert_string_equal(a.path, "/apps/rec");
	assert_string_equal(a.cwd, "/apps/");
	pipe_argv_free(&a);

	/* Nothing at all for -r. */
	r.recipient = NULL;
	assert_int_equal(pipe_build(&r, &s, &a, &why), 0);
	assert_strv(&a.argv, (const char *[]){ "rec", "-p", "", "-r", "",
	    NULL });
	assert_strv(&a.envp, (const char *[]){ "PATH=" PIPE_DEFAULT_PATH,
	    NULL });
	pipe_argv_free(&a);
	pipe_cmd_free(&c);
}

/* A control character anywhere refuses the run. */
static void
test_control_chars(void **state)
{
	static const char *const bad[] = { "a\nb", "a\rb", "\x01", "x\x7f",
	    "tab\there", "\x1b[0m" };
	struct pipe_cmd c;
	struct pipe_request r;
	struct pipe_argv a = PIPE_ARGV_INIT;
	struct pipe_settings s;
	const char *why;

	(void)state;
	for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
		for (int field = 0; field < 10; field++) {
			tu_make_cmd(&c, PIPE_TAG_FILE, "rec", "ok", NULL);
			r = make_req(&c);
			s = settings;
			switch (field) {
			case 0: r.queue_file = bad[b]; break;
			case 1: r.sender = bad[b]; break;
			case 2: r.recipient = bad[b]; break;
			case 3: r.orig_recipient = bad[b]; break;
			case 4: r.queue_id = bad[b]; break;
			case 5: r.delivery_id = bad[b]; break;
			case 6: s.path_env = bad[b]; break;
			case 7: s.base_dir = bad[b]; break;
			case 8: s.app_dir = bad[b]; break;
			case 9:
				assert_int_equal(strv_push(&c.params, bad[b]),
				    0);
				break;
			}
			why = NULL;
			assert_int_equal(pipe_build(&r, &s, &a, &why), -EINVAL);
			assert_non_null(why);
			assert_non_null(strstr(why, "unsafe value in"));
			assert_null(a.path);
			assert_int_equal(a.argv.n, 0);
			pipe_cmd_free(&c);
		}
	}
	/* Non-ASCII bytes are not control characters. */
	tu_make_cmd(&c, 0, "rec", "d\xc3\xa9j\xc3\xa0", NULL);
	r = make_req(&c);
	assert_int_equal(pipe_build(&r, &settings, &a, &why), 0);
	assert_string_equal(a.argv.v[1], "d\xc3\xa9j\xc3\xa0");
	pipe_argv_free(&a);
	pipe_cmd_free(&c);
}

/* Disabled module, bad application names, [FILE] without a file. */
static void
test_refusals(void **state)
{
	static const char *const bad_apps[] = { "", ".hidden", "../x", "a/b",
	    "a\\b", "-x" };
	struct pipe_cmd c;
	struct pipe_request r;
	struct pipe_argv a = PIPE_ARGV_INIT;
	struct pipe_settings s = settings;
	const char *why;

	(void)state;
	tu_make_cmd(&c, 0, "rec", NULL);
	r = make_req(&c);
	s.app_dir = NULL;
	why = NULL;
	assert_int_equal(pipe_build(&r, &s, &a, &why), -ENOENT);
	assert_non_null(why);
	s.app_dir = "";
	assert_int_equal(pipe_build(&r, &s, &a, &why), -ENOENT);
	pipe_cmd_free(&c);

	for (size_t i = 0; i < sizeof(bad_apps) / sizeof(bad_apps[0]); i++) {
		tu_make_cmd(&c, 0, bad_apps[i], NULL);
		r = make_req(&c);
		why = NULL;
		assert_int_equal(pipe_build(&r, &settings, &a, &why), -EINVAL);
		assert_non_null(why);
		assert_null(a.path);
		pipe_cmd_free(&c);
	}

	tu_make_cmd(&c, PIPE_TAG_FILE, "rec", NULL);
	r = make_req(&c);
	r.queue_file = NULL;
	assert_int_equal(pipe_build(&r, &settings, &a, &why), -EINVAL);
	assert_string_equal(why, "[FILE] without a queue file");
	r.queue_file = "";
	assert_int_equal(pipe_build(&r, &settings, &a, &why), -EINVAL);
	r = make_req(&c);
	s = settings;
	s.base_dir = NULL;
	assert_int_equal(pipe_build(&r, &s, &a, &why), -EINVAL);
	assert_string_equal(why, "[FILE] without a base directory");
	/* Without [FILE], no queue file and no base directory are needed. */
	c.tags = 0;
	r.queue_file = NULL;
	assert_int_equal(pipe_build(&r, &s, &a, &why), 0);
	pipe_argv_free(&a);
	pipe_cmd_free(&c);

	r.cmd = NULL;
	assert_int_equal(pipe_build(&r, &settings, &a, &why), -EINVAL);
	assert_non_null(why);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_tag_combinations),
		cmocka_unit_test(test_null_and_missing),
		cmocka_unit_test(test_control_chars),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
