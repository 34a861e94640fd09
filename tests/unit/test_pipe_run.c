/* Unit tests for pipe_run: real deliveries through a real spawn helper
   (dropping to nobody) on a real libuv loop. Needs root. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipe.h"
#include "strv.h"
#include "testutil.h"

#define NOBODY 65534

struct fix {
	char root[64];		/* base directory */
	char app[PATH_MAX];	/* trusted application directory */
	char bad[PATH_MAX];	/* group-writable application directory */
	char out[PATH_MAX];	/* 01777: programs write here */
	char qfile[PATH_MAX];	/* Queue/ABC.msg */
	char *msg;		/* the message inside the queue file */
	size_t msg_len, msg_off;
};

struct env {
	uv_loop_t loop;
	struct spawn_client *sp;
	struct pipe_module *pm;
	pid_t helper;
	int fds_before;
	struct fix *f;
};

struct done {
	int n;
	struct result res;
	struct pipe_info info;
};

/* Write a file with a mode (root-owned). */
static void
put_file(const char *dir, const char *name, const char *text, size_t len,
	mode_t mode)
{
	char p[PATH_MAX];
	int fd;

	tu_snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	assert_int_equal(chmod(p, mode), 0);
}

/* Write a shell script. */
static void
put_script(const char *dir, const char *name, const char *text)
{
	put_file(dir, name, text, strlen(text), 0755);
}

/* Copy a test program into dir. */
static void
copy_prog(const char *name, const char *dir)
{
	char progs[PATH_MAX], src[PATH_MAX + 64], dst[PATH_MAX];

	tu_programs_dir(progs);
	tu_snprintf(src, sizeof(src), "%s/%s", progs, name);
	tu_snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	tu_copy_file(src, dst, 0755, 0);
}

/* Make a directory with a mode. */
static void
make_dir(char *dst, const char *root, const char *name, mode_t mode)
{
	tu_snprintf(dst, PATH_MAX, "%s/%s", root, name);
	assert_int_equal(mkdir(dst, 0700), 0);
	assert_int_equal(chmod(dst, mode), 0);
}

/* Base directory, application directories, programs, a queue file. */
static int
group_setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	char q[PATH_MAX];
	const char *env = "Return-Path: <a@b>\nRecipient: c@d\n\n";
	char *file;

	assert_non_null(f);
	assert_int_equal(getuid(), 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	{
		uv_loop_t l;	/* libuv's process-wide fds, opened once */

		assert_int_equal(uv_loop_init(&l), 0);
		assert_int_equal(uv_loop_close(&l), 0);
	}
	strcpy(f->root, "/tmp/mp-pipe-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	assert_int_equal(chmod(f->root, 0755), 0);
	make_dir(f->app, f->root, "apps", 0755);
	make_dir(f->bad, f->root, "badapps", 0775);
	make_dir(f->out, f->root, "out", 01777);
	make_dir(q, f->root, "Queue", 0755);
	copy_prog("readall", f->app);
	copy_prog("fdcheck", f->app);
	copy_prog("readall", f->bad);
	put_script(f->app, "hang", "#!/bin/sh\nsleep 100 &\n"
	    "echo $$ $! > \"$1.tmp\"\nmv \"$1.tmp\" \"$1\"\nwait\n");
	put_script(f->app, "segv", "#!/bin/sh\ncat >/dev/null\n"
	    "kill -SEGV $$\n");
	/* Leaves a process in its own session holding stderr; exits once
	   that process has left the group. */
	put_script(f->app, "linger", "#!/bin/sh\ncat >/dev/null\n"
	    "setsid sh -c 'echo $$ > \"$1.tmp\"; mv \"$1.tmp\" \"$1\"; "
	    "exec sleep 2.4' sh \"$1\" &\n"
	    "while [ ! -e \"$1\" ]; do sleep 0.01; done\nexit 0\n");

	/* A queue file: envelope, empty line, a 200 KiB message. */
	f->msg_len = 200 * 1024 + 17;
	f->msg = malloc(f->msg_len);
	assert_non_null(f->msg);
	for (size_t i = 0; i < f->msg_len; i++)
		f->msg[i] = (char)('a' + i % 26);
	memcpy(f->msg, "Subject: test\n\n", 15);
	f->msg_off = strlen(env);
	file = malloc(f->msg_off + f->msg_len);
	assert_non_null(file);
	memcpy(file, env, f->msg_off);
	memcpy(file + f->msg_off, f->msg, f->msg_len);
	/* 0600 as in the server: the program user cannot open it */
	put_file(q, "ABC.msg", file, f->msg_off + f->msg_len, 0600);
	free(file);
	tu_snprintf(f->qfile, sizeof(f->qfile), "%s/Queue/ABC.msg", f->root);
	*state = f;
	return 0;
}

/* Remove the temporary tree. */
static int
group_teardown(void **state)
{
	struct fix *f = *state;
	char cmd[128];

	tu_snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	free(f->msg);
	free(f);
	return 0;
}

/* Loop, helper as nobody, spawn client, pipe module for app_dir. */
static void
env_start(struct env *e, struct fix *f, const char *app_dir)
{
	struct spawn_settings s = { .drop = true, .uid = NOBODY,
	    .gid = NOBODY };
	struct pipe_settings ps = { .base_dir = f->root, .app_dir = app_dir,
	    .time_limit_s = 60, .stderr_limit = 65536,
	    .path_env = "/usr/bin:/bin" };
	int sock;

	memset(e, 0, sizeof(*e));
	e->f = f;
	e->fds_before = tu_count_fds();
	assert_int_equal(uv_loop_init(&e->loop), 0);
	assert_int_equal(spawn_helper_start(&s, &sock, &e->helper), 0);
	assert_int_equal(spawn_client_open(&e->loop, sock, e->helper, NULL,
	    &e->sp), 0);
	assert_int_equal(pipe_module_open(&e->loop, e->sp, &ps, NULL, &e->pm),
	    0);
}

/* Close everything; no descriptor may be left open. */
static void
env_stop(struct env *e)
{
	assert_int_equal(pipe_active(e->pm), 0);
	pipe_module_close(e->pm);
	spawn_client_close(e->sp);
	assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	assert_int_equal(tu_count_fds(), e->fds_before);
}

/* Timer callback that only wakes the loop. */
static void
on_tick(uv_timer_t *t)
{
	(void)t;
}

typedef bool (*cond_fn)(void *arg);

/* Run the loop until cond holds or ms pass; returns cond. */
static bool
run_until(uv_loop_t *loop, cond_fn cond, void *arg, unsigned ms)
{
	uv_timer_t t;
	uint64_t deadline;
	bool ok;

	uv_update_time(loop);
	deadline = uv_now(loop) + ms;
	uv_timer_init(loop, &t);
	uv_timer_start(&t, on_tick, 10, 10);
	while (!(ok = cond(arg)) && uv_now(loop) < deadline)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return ok;
}

/* Condition: the delivery reported. */
static bool
is_done(void *arg)
{
	return ((struct done *)arg)->n > 0;
}

/* Condition: the process no longer exists (not even as a zombie). */
static bool
pid_gone(void *arg)
{
	return kill(*(pid_t *)arg, 0) < 0 && errno == ESRCH;
}

/* Condition: a file exists. */
static bool
file_exists(void *arg)
{
	return access(arg, F_OK) == 0;
}

/* Condition: the helper has no child left. */
static bool
helper_childless(void *arg)
{
	pid_t helper = *(pid_t *)arg;
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool none = true;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL && none) {
		char p[300], buf[512], *rp;
		FILE *f;
		long ppid;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		tu_snprintf(p, sizeof(p), "/proc/%s/stat", e->d_name);
		if ((f = fopen(p, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
		    sscanf(rp + 2, "%*c %ld", &ppid) == 1 && ppid == helper)
			none = false;
		fclose(f);
	}
	closedir(d);
	return none;
}

/* Record the delivery's result. */
static void
on_done(void *arg, struct result *res, const struct pipe_info *info)
{
	struct done *d = arg;

	result_move(&d->res, res);
	d->info = *info;
	d->n++;
}

/* A request delivering msg from memory. */
static struct pipe_request
mem_req(const struct pipe_cmd *c, const char *msg, size_t len)
{
	struct pipe_request r = {
		.cmd = c, .queue_file = "Queue/ABC.msg", .input_mem = msg,
		.input_len = len, .sender = "a@b", .recipient = "c@d",
		.orig_recipient = "C@D", .queue_id = "ABC",
		.delivery_id = "ABC.1",
	};
	return r;
}

/* Start a delivery; the callback never runs inside pipe_run. */
static void
start(struct env *e, const struct pipe_request *r, struct done *d)
{
	memset(d, 0, sizeof(*d));
	assert_int_equal(pipe_run(e->pm, r, on_done, d), 0);
	assert_int_equal(d->n, 0);
}

/* Run one delivery to its end. */
static void
deliver(struct env *e, const struct pipe_request *r, struct done *d)
{
	start(e, r, d);
	assert_true(run_until(&e->loop, is_done, d, 20000));
	assert_int_equal(d->n, 1);
}

/* Compare a result (text: exact, or prefix when it ends with '*'). */
static void
check(const struct done *d, enum result_kind kind, int reply,
	const char *status, const char *text)
{
	size_t n = strlen(text);

	if (d->res.kind != kind || d->res.reply != reply ||
	    strcmp(d->res.status, status) != 0 || d->res.text == NULL ||
	    (text[n - 1] == '*' ? strncmp(d->res.text, text, n - 1) :
	    strcmp(d->res.text, text)) != 0)
		fail_msg("got %s %d %s '%s', want %s %d %s '%s'",
		    result_kind_name(d->res.kind), d->res.reply,
		    d->res.status, d->res.text ? d->res.text : "(null)",
		    result_kind_name(kind), reply, status, text);
}

/* Run readall with the given parameters on msg; check the result. */
static void
readall_case(struct env *e, unsigned tags, const char *msg, size_t len,
	const char *const *params, enum result_kind kind, int reply,
	const char *status, const char *text)
{
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;

	tu_make_cmd(&c, tags, "readall", NULL);
	for (size_t i = 0; params[i]; i++)
		assert_int_equal(strv_push(&c.params, params[i]), 0);
	r = mem_req(&c, msg, len);
	deliver(e, &r, &d);
	check(&d, kind, reply, status, text);
	assert_true(d.info.pid > 0);
	result_clear(&d.res);
	pipe_cmd_free(&c);
}

/* Exit statuses, stderr with and without [STDERR], code maps. */
static void
test_exit_statuses(void **state)
{
	struct env e;
	const char *m = "Subject: x\n\nbody\n";
	size_t n = strlen(m);

	env_start(&e, *state, (*(struct fix **)state)->app);
	readall_case(&e, 0, m, n, (const char *[]){ NULL }, RESULT_DELIVERED,
	    250, "2.0.0", "delivered");
	readall_case(&e, 0, m, n, (const char *[]){ "-x", "75", NULL },
	    RESULT_DEFERRED, 451, "4.3.0",
	    "pipe transport gave exit status 75");
	readall_case(&e, 0, m, n, (const char *[]){ "-x", "1", NULL },
	    RESULT_FAILED, 554, "5.3.0", "pipe transport gave exit status 1");
	/* stderr without [STDERR] fails even with exit 0. */
	readall_case(&e, 0, m, n, (const char *[]){ "-e", "no such list",
	    NULL }, RESULT_FAILED, 554, "5.3.0", "no such list");
	/* ... but stays deferred with a temporary status. */
	readall_case(&e, 0, m, n, (const char *[]){ "-e", "disk full", "-x",
	    "75", NULL }, RESULT_DEFERRED, 451, "4.3.0", "disk full");
	/* With [STDERR] the exit status decides; its text is the report. */
	readall_case(&e, PIPE_TAG_STDERR, m, n, (const char *[]){ "-e",
	    "just chatting", NULL }, RESULT_DELIVERED, 250, "2.0.0",
	    "delivered");
	readall_case(&e, PIPE_TAG_STDERR, m, n, (const char *[]){ "-e",
	    "bad address", "-e", "second line", "-x", "1", NULL },
	    RESULT_FAILED, 554, "5.3.0", "bad address second line");
	/* Empty message. */
	readall_case(&e, 0, "", 0, (const char *[]){ NULL }, RESULT_DELIVERED,
	    250, "2.0.0", "delivered");
	env_stop(&e);
}

/* A transport code map decides the reply. */
static void
test_code_map(void **state)
{
	struct env e;
	struct code_map map = CODE_MAP_INIT;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;
	const char *why;

	env_start(&e, *state, (*(struct fix **)state)->app);
	assert_int_equal(code_map_set(&map, 100, "550 command failed", &why),
	    0);
	assert_int_equal(code_map_set(&map, 111, "450 try again later", &why),
	    0);
	tu_make_cmd(&c, 0, "readall", "-x", "100", NULL);
	r = mem_req(&c, "x\n", 2);
	r.codes = &map;
	start(&e, &r, &d);
	code_map_free(&map);	/* the request was copied */
	assert_true(run_until(&e.loop, is_done, &d, 20000));
	check(&d, RESULT_FAILED, 550, "5.0.0", "command failed");
	assert_int_equal(d.info.end, RUN_EXITED);
	assert_int_equal(d.info.code, 100);
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);
}

/* A program that does not read all of its input fails. */
static void
test_unread_stdin(void **state)
{
	struct env e;
	struct fix *f = *state;
	size_t big = 100 * 1024;

	env_start(&e, f, f->app);
	/* Exits without reading: a large and a 10-byte message. */
	readall_case(&e, 0, f->msg, big, (const char *[]){ "-n", "0", NULL },
	    RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	readall_case(&e, 0, "0123456789", 10, (const char *[]){ "-n", "0",
	    NULL }, RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	/* Reads a part only. */
	readall_case(&e, 0, "0123456789", 10, (const char *[]){ "-n", "9",
	    NULL }, RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	/* Temporary status: deferred all the same. */
	readall_case(&e, 0, "0123456789", 10, (const char *[]){ "-n", "0",
	    "-x", "75", NULL }, RESULT_DEFERRED, 451, "4.3.0",
	    "pipe transport gave exit status 75; program did not read all "
	    "of its input");
	/* Closes stdin early and keeps running for a while. */
	readall_case(&e, 0, "0123456789", 10, (const char *[]){ "-n", "2",
	    "-c", "-S", "0.2", NULL }, RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	readall_case(&e, 0, f->msg, big, (const char *[]){ "-n", "0", "-c",
	    "-S", "0.2", NULL }, RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	/* Reading everything, slowly, is fine. */
	readall_case(&e, 0, f->msg, big, (const char *[]){ "-s", "0.2",
	    NULL }, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	env_stop(&e);
}

/* File size, or -1. */
static long long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* stdout is discarded or appended to the output file; a stderr flood is
   bounded in memory and appended to the error file. */
static void
test_floods(void **state)
{
	struct env e;
	struct fix *f = *state;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;
	char outf[PATH_MAX], errf[PATH_MAX];

	tu_snprintf(outf, sizeof(outf), "%s/stdout.log", f->out);
	tu_snprintf(errf, sizeof(errf), "%s/stderr.log", f->out);
	env_start(&e, f, f->app);
	readall_case(&e, 0, "x\n", 2, (const char *[]){ "-O", "10000000",
	    NULL }, RESULT_DELIVERED, 250, "2.0.0", "delivered");

	tu_make_cmd(&c, PIPE_TAG_STDERR, "readall", "-O", "10000000", "-E",
	    "10000000", NULL);
	r = mem_req(&c, "x\n", 2);
	r.output_file = outf;
	r.error_file = errf;
	deliver(&e, &r, &d);
	check(&d, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	assert_int_equal(d.info.stderr_bytes, 10000000);
	assert_int_equal(file_size(outf), 10000000);
	assert_int_equal(file_size(errf), 10000000);
	assert_int_equal(file_size(errf) >= 0 ? 0 : 1, 0);
	{
		struct stat st;

		assert_int_equal(stat(outf, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	result_clear(&d.res);
	/* Appended, not replaced. */
	deliver(&e, &r, &d);
	assert_int_equal(file_size(outf), 20000000);
	assert_int_equal(file_size(errf), 20000000);
	result_clear(&d.res);
	pipe_cmd_free(&c);

	/* Without [STDERR]: failed, with a bounded one-line text. */
	tu_make_cmd(&c, 0, "readall", "-E", "10000000", NULL);
	r = mem_req(&c, "x\n", 2);
	deliver(&e, &r, &d);
	check(&d, RESULT_FAILED, 554, "5.3.0", "xxxxxxxx*");
	assert_true(strlen(d.res.text) < 512);
	assert_int_equal(d.info.stderr_bytes, 10000000);
	result_clear(&d.res);
	pipe_cmd_free(&c);

	/* An output file that cannot be opened does not fail delivery. */
	tu_make_cmd(&c, 0, "readall", "-O", "1000", NULL);
	r = mem_req(&c, "x\n", 2);
	r.output_file = "/nonexistent/dir/out.log";
	deliver(&e, &r, &d);
	check(&d, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);
}

/* Read "LEADER CHILD" pids written by the hang script. */
static void
read_pids(const char *path, pid_t *a, pid_t *b)
{
	FILE *f = fopen(path, "r");
	long x = 0, y = 0;

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld %ld", &x, &y), 2);
	fclose(f);
	*a = (pid_t)x;
	*b = (pid_t)y;
}

/* The time limit kills the whole group; queued: failed, sync: 451. */
static void
test_time_limit(void **state)
{
	struct env e;
	struct fix *f = *state;
	struct pipe_cmd c1, c2;
	struct pipe_request r1, r2;
	struct done d1, d2;
	char p1[PATH_MAX], p2[PATH_MAX];
	pid_t l1, k1, l2, k2;

	tu_snprintf(p1, sizeof(p1), "%s/limit1.pids", f->out);
	tu_snprintf(p2, sizeof(p2), "%s/limit2.pids", f->out);
	env_start(&e, f, f->app);
	tu_make_cmd(&c1, 0, "hang", p1, NULL);
	tu_make_cmd(&c2, 0, "hang", p2, NULL);
	r1 = mem_req(&c1, "", 0);
	r1.time_limit_s = 1;
	r2 = mem_req(&c2, "", 0);
	r2.time_limit_s = 1;
	r2.sync = true;
	start(&e, &r1, &d1);
	start(&e, &r2, &d2);
	assert_int_equal(pipe_active(e.pm), 2);
	assert_true(run_until(&e.loop, file_exists, p1, 10000));
	assert_true(run_until(&e.loop, file_exists, p2, 10000));
	read_pids(p1, &l1, &k1);
	read_pids(p2, &l2, &k2);
	assert_true(run_until(&e.loop, is_done, &d1, 10000));
	assert_true(run_until(&e.loop, is_done, &d2, 10000));
	check(&d1, RESULT_FAILED, 554, "5.3.0",
	    "pipe transport exceeded the time limit of 1s");
	check(&d2, RESULT_DEFERRED, 451, "4.4.2",
	    "pipe transport exceeded the time limit of 1s");
	assert_int_equal(d1.info.end, RUN_TIMED_OUT);
	assert_int_equal(d1.info.pid, l1);
	assert_true(d1.info.seconds >= 0.9 && d1.info.seconds < 5);
	/* Nothing of either group is left, not even a zombie. */
	assert_true(run_until(&e.loop, pid_gone, &k1, 5000));
	assert_true(run_until(&e.loop, pid_gone, &k2, 5000));
	assert_true(pid_gone(&l1) && pid_gone(&l2));
	assert_true(run_until(&e.loop, helper_childless, &e.helper, 5000));
	result_clear(&d1.res);
	result_clear(&d2.res);
	pipe_cmd_free(&c1);
	pipe_cmd_free(&c2);
	env_stop(&e);
}

/* Death by a signal fails. */
static void
test_signal(void **state)
{
	struct env e;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;
	char want[80];

	env_start(&e, *state, (*(struct fix **)state)->app);
	tu_make_cmd(&c, 0, "segv", NULL);
	r = mem_req(&c, "hello\n", 6);
	deliver(&e, &r, &d);
	tu_snprintf(want, sizeof(want),
	    "pipe transport killed by signal %d (SIGSEGV)", SIGSEGV);
	check(&d, RESULT_FAILED, 554, "5.3.0", want);
	assert_int_equal(d.info.end, RUN_SIGNALED);
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);
}

/* Read a whole file. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0;
	ssize_t k;

	assert_non_null(f);
	k = getdelim(&s, &n, '\0', f);
	assert_true(k >= 0);
	fclose(f);
	if (len)
		*len = (size_t)k;
	return s;
}

/* The program's world: env, umask, fds, ids, cwd, argv. */
static void
test_program_context(void **state)
{
	struct env e;
	struct fix *f = *state;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;
	char out[PATH_MAX], line[PATH_MAX + 16], *s;

	tu_snprintf(out, sizeof(out), "%s/context.txt", f->out);
	env_start(&e, f, f->app);
	tu_make_cmd(&c, PIPE_TAG_RETPATH | PIPE_TAG_RCPT, "fdcheck", out, NULL);
	r = mem_req(&c, "hello\n", 6);
	r.sender = "";
	deliver(&e, &r, &d);
	check(&d, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	s = slurp(out, NULL);
	assert_true(strncmp(s, "fd 0 pipe:[", 11) == 0);
	assert_non_null(strstr(s, "\nfd 1 /dev/null\nfd 2 pipe:["));
	assert_null(strstr(s, "\nfd 3 "));
	assert_non_null(strstr(s, "\nuid 65534 65534\ngid 65534 65534\n"
	    "groups 65534\numask 0077\n"));
	tu_snprintf(line, sizeof(line), "\ncwd %s\n", f->app);
	assert_non_null(strstr(s, line));
	assert_non_null(strstr(s, "\nbytes 6\n"));
	assert_non_null(strstr(s, "\nargv 0 fdcheck\n"));
	assert_non_null(strstr(s, "\nargv 2 -p\nargv 3 \nargv 4 -r\n"
	    "argv 5 C@D\nenv "));
	/* Exactly PATH and the five variables, in this order, nothing else. */
	assert_string_equal(strstr(s, "\nenv "), "\nenv PATH=/usr/bin:/bin\n"
	    "env SENDER=\nenv RECIPIENT=c@d\nenv ORIGINAL_RECIPIENT=C@D\n"
	    "env QUEUE_ID=ABC\nenv DELIVERY_ID=ABC.1\n");
	free(s);
	result_clear(&d.res);
	pipe_cmd_free(&c);

	/* [FILE]: cwd is the base directory, -f names fd 3, a private copy
	   of the queue file beside it with no name, stdin is empty. */
	tu_make_cmd(&c, PIPE_TAG_FILE, "fdcheck", out, NULL);
	r = mem_req(&c, "ignored\n", 8);
	deliver(&e, &r, &d);
	check(&d, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	s = slurp(out, NULL);
	tu_snprintf(line, sizeof(line), "\ncwd %s\n", f->root);
	assert_non_null(strstr(s, line));
	assert_non_null(strstr(s, "\nbytes 0\n"));
	assert_non_null(strstr(s, "\nargv 2 -f\nargv 3 /dev/fd/3\nenv "));
	tu_snprintf(line, sizeof(line), "\nfd 3 %s/Queue/#", f->root);
	assert_non_null(strstr(s, line));
	assert_non_null(strstr(s, " (deleted)\nuid "));
	free(s);
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);
}

/* Condition: never (run_until then just lets the loop run for a while). */
static bool
never(void *arg)
{
	(void)arg;
	return false;
}

/*
 * The time limit counts from the program's start, not from the request:
 * a helper that cannot start programs for a while (here: stopped) costs
 * no program its time, and one that does not start it within the limit
 * defers the delivery, never fails it.
 */
static void
test_limit_from_start(void **state)
{
	struct env e;
	struct fix *f = *state;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;

	put_script(f->app, "nap", "#!/bin/sh\ncat >/dev/null\nsleep 1.2\n");
	env_start(&e, f, f->app);
	tu_make_cmd(&c, 0, "nap", NULL);
	r = mem_req(&c, "x\n", 2);
	r.time_limit_s = 2;
	/* stopped for 1.2 s, then the program runs 1.2 s: 2.4 s > 2 s */
	assert_int_equal(kill(e.helper, SIGSTOP), 0);
	start(&e, &r, &d);
	assert_false(run_until(&e.loop, never, NULL, 1200));
	assert_int_equal(d.n, 0);
	assert_int_equal(kill(e.helper, SIGCONT), 0);
	assert_true(run_until(&e.loop, is_done, &d, 10000));
	check(&d, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	assert_true(d.info.seconds >= 1.1 && d.info.seconds < 2);
	result_clear(&d.res);
	/* stopped past the limit: deferred, and the program never runs */
	r.time_limit_s = 1;
	assert_int_equal(kill(e.helper, SIGSTOP), 0);
	start(&e, &r, &d);
	assert_true(run_until(&e.loop, is_done, &d, 10000));
	check(&d, RESULT_DEFERRED, 451, "4.3.0",
	    "program did not start within 1s (spawn helper busy or "
	    "stopped)");
	assert_int_equal(kill(e.helper, SIGCONT), 0);
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);
}

/* [FILE]: the program opens -f, reads its queue file whole, cannot
   change it; the queue file itself is untouched. */
static void
test_file_copy(void **state)
{
	struct env e;
	struct fix *f = *state;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;
	char out[PATH_MAX], *s, *q;
	size_t n, qn;

	tu_snprintf(out, sizeof(out), "%s/filecopy.txt", f->out);
	put_script(f->app, "filecopy", "#!/bin/sh\ncat \"$3\" > \"$1\"\n"
	    "if (echo x >> \"$3\") 2>/dev/null; then exit 1; fi\n"
	    "if (echo x >&3) 2>/dev/null; then exit 2; fi\nexit 0\n");
	env_start(&e, f, f->app);
	tu_make_cmd(&c, PIPE_TAG_FILE, "filecopy", out, NULL);
	r = mem_req(&c, "ignored\n", 8);
	deliver(&e, &r, &d);
	check(&d, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	s = slurp(out, &n);
	q = slurp(f->qfile, &qn);
	assert_int_equal(n, qn);
	assert_memory_equal(s, q, n);
	free(s);
	free(q);
	result_clear(&d.res);
	/* Without a queue file to copy the delivery is deferred. */
	r.queue_file = "Queue/missing.msg";
	deliver(&e, &r, &d);
	assert_int_equal(d.res.kind, RESULT_DEFERRED);
	assert_non_null(strstr(d.res.text,
	    "cannot copy the queue file for [FILE]"));
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);
}

/* The message streamed from the queue file, and its errors. */
static void
test_from_file(void **state)
{
	struct env e;
	struct fix *f = *state;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;
	char copy[PATH_MAX], *s;
	size_t n;

	tu_snprintf(copy, sizeof(copy), "%s/copy.msg", f->out);
	env_start(&e, f, f->app);
	tu_make_cmd(&c, 0, "readall", "-w", copy, NULL);
	r = mem_req(&c, NULL, 0);
	r.input_mem = NULL;
	r.input_path = f->qfile;
	r.input_off = f->msg_off;
	r.input_len = f->msg_len;
	deliver(&e, &r, &d);
	check(&d, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	assert_true(d.info.stdin_consumed);
	s = slurp(copy, &n);
	assert_int_equal(n, f->msg_len);
	assert_memory_equal(s, f->msg, n);
	free(s);
	result_clear(&d.res);

	/* The file is shorter than the recorded length. */
	r.input_len = f->msg_len + 10;
	deliver(&e, &r, &d);
	check(&d, RESULT_DEFERRED, 451, "4.3.0",
	    "message file shorter than recorded");
	result_clear(&d.res);

	/* The file is missing. */
	r.input_path = "/nonexistent/ABC.msg";
	r.input_len = 10;
	deliver(&e, &r, &d);
	check(&d, RESULT_DEFERRED, 451, "4.3.0",
	    "cannot open the message: no such file or directory");
	result_clear(&d.res);
	pipe_cmd_free(&c);

	/* A program that exits early while the file is streamed. */
	tu_make_cmd(&c, 0, "readall", "-n", "1000", NULL);
	r.input_path = f->qfile;
	r.input_len = f->msg_len;
	deliver(&e, &r, &d);
	check(&d, RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	assert_false(d.info.stdin_consumed);
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);
}

/* Failures to start: untrusted, missing, disabled, unsafe values. */
static void
test_start_failures(void **state)
{
	struct env e;
	struct fix *f = *state;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;

	env_start(&e, f, f->bad);
	tu_make_cmd(&c, 0, "readall", NULL);
	r = mem_req(&c, "x\n", 2);
	deliver(&e, &r, &d);
	check(&d, RESULT_DEFERRED, 451, "4.3.5",
	    "application directory writable by group");
	assert_int_equal(d.info.end, RUN_SPAWN_FAILED);
	assert_int_equal(d.info.code, SPAWN_FAIL_UNTRUSTED);
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);

	env_start(&e, f, f->app);
	tu_make_cmd(&c, 0, "nosuch", NULL);
	r = mem_req(&c, "x\n", 2);
	deliver(&e, &r, &d);
	check(&d, RESULT_FAILED, 550, "5.1.1", "no such application");
	result_clear(&d.res);
	pipe_cmd_free(&c);

	tu_make_cmd(&c, 0, "../apps/readall", NULL);
	r = mem_req(&c, "x\n", 2);
	deliver(&e, &r, &d);
	check(&d, RESULT_FAILED, 550, "5.1.1", "*");
	assert_int_equal(d.info.pid, 0);
	result_clear(&d.res);
	pipe_cmd_free(&c);

	tu_make_cmd(&c, 0, "readall", NULL);
	r = mem_req(&c, "x\n", 2);
	r.sender = "evil\r\nRCPT TO:<x>";
	deliver(&e, &r, &d);
	check(&d, RESULT_FAILED, 554, "5.3.0",
	    "unsafe value in the return-path");
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);

	/* No application directory: PIPE is disabled. */
	env_start(&e, f, "");
	tu_make_cmd(&c, 0, "readall", NULL);
	r = mem_req(&c, "x\n", 2);
	deliver(&e, &r, &d);
	check(&d, RESULT_FAILED, 554, "5.3.0", "PIPE module disabled*");
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);
}

/* Something outside the group keeps stderr open: the delivery completes
   after the grace period. */
static void
test_grace(void **state)
{
	struct env e;
	struct fix *f = *state;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d;

	char pidfile[PATH_MAX];

	tu_snprintf(pidfile, sizeof(pidfile), "%s/linger.pid", f->out);
	env_start(&e, f, f->app);
	tu_make_cmd(&c, 0, "linger", pidfile, NULL);
	r = mem_req(&c, "x\n", 2);
	deliver(&e, &r, &d);
	check(&d, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	if (!(d.info.seconds >= 1.9 && d.info.seconds < 2.4))
		fail_msg("took %.3fs", d.info.seconds);
	assert_true(run_until(&e.loop, helper_childless, &e.helper, 5000));
	result_clear(&d.res);
	pipe_cmd_free(&c);
	env_stop(&e);
}

/* Many deliveries at once all complete. */
static void
test_many(void **state)
{
	enum { N = 50 };
	struct env e;
	struct fix *f = *state;
	struct pipe_cmd c;
	struct pipe_request r;
	struct done d[N];

	env_start(&e, f, f->app);
	tu_make_cmd(&c, 0, "readall", NULL);
	r = mem_req(&c, f->msg, 4096);
	for (int i = 0; i < N; i++)
		start(&e, &r, &d[i]);
	assert_int_equal(pipe_active(e.pm), N);
	for (int i = 0; i < N; i++) {
		assert_true(run_until(&e.loop, is_done, &d[i], 30000));
		check(&d[i], RESULT_DELIVERED, 250, "2.0.0", "delivered");
		result_clear(&d[i].res);
	}
	pipe_cmd_free(&c);
	env_stop(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_statuses),
		cmocka_unit_test(test_code_map),
		cmocka_unit_test(test_unread_stdin),
		cmocka_unit_test(test_floods),
		cmocka_unit_test(test_time_limit),
		cmocka_unit_test(test_signal),
		cmocka_unit_test(test_program_context),
		cmocka_unit_test(test_from_file),
		cmocka_unit_test(test_file_copy),
		cmocka_unit_test(test_limit_from_start),
		cmocka_unit_test(test_start_failures),
		cmocka_unit_test(test_grace),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
