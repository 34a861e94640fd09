/* Unit tests for spawn.c: real programs through a real helper on a real
   libuv loop. Needs root (the helper drops to nobody). */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"
#include "testutil.h"

#define NOBODY 65534
#define DAEMON_UID 1

struct fix {
	char root[64];		/* everything lives below */
	char app[PATH_MAX];	/* trusted application directory */
	char out[PATH_MAX];	/* 01777: programs write here */
	char other[PATH_MAX];	/* trusted dir holding symlink targets */
	char wdir[PATH_MAX];	/* 0777 dir holding a symlink target */
	char dgrp[PATH_MAX], doth[PATH_MAX], dnob[PATH_MAX];
	char ddaemon[PATH_MAX];	/* owned by daemon, for a no-drop helper */
	char programs[PATH_MAX];	/* build dir of readall/fdcheck */
};

struct env {
	uv_loop_t loop;
	struct spawn_client *c;
	pid_t helper;
	int fds_before;
	struct fix *f;
};

struct got {
	int done;
	struct spawn_exit ex;
	char why[256];
};

/* Write a file with mode and owner. */
static void
put_file(const char *dir, const char *name, const char *text, mode_t mode,
	uid_t uid)
{
	char p[PATH_MAX];
	FILE *f;

	tu_snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(p, mode), 0);
	assert_int_equal(chown(p, uid, uid == 0 ? 0 : uid), 0);
}

/* Copy a binary into dir with mode 0755, owned by uid. */
static void
copy_prog(const char *src, const char *dir, const char *name, uid_t uid)
{
	char p[PATH_MAX];

	tu_snprintf(p, sizeof(p), "%s/%s", dir, name);
	tu_copy_file(src, p, 0755, uid);
}

/* Make a directory with mode and owner. */
static void
make_dir(char *dst, const char *root, const char *name, mode_t mode,
	uid_t uid)
{
	tu_snprintf(dst, PATH_MAX, "%s/%s", root, name);
	assert_int_equal(mkdir(dst, 0700), 0);
	assert_int_equal(chmod(dst, mode), 0);
	assert_int_equal(chown(dst, uid, uid), 0);
}

static const char script_exit3[] = "#!/bin/sh\nexit 3\n";

/* Create the directories and programs every test uses. */
static int
group_setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	char src[PATH_MAX + 16];

	assert_non_null(f);
	assert_int_equal(getuid(), 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	{
		/* libuv opens its process-wide descriptors once, on the
		   first loop: do that before counting descriptors. */
		uv_loop_t l;

		assert_int_equal(uv_loop_init(&l), 0);
		assert_int_equal(uv_loop_close(&l), 0);
	}
	strcpy(f->root, "/tmp/mp-spawn-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	assert_int_equal(chmod(f->root, 0755), 0);
	tu_programs_dir(f->programs);
	make_dir(f->app, f->root, "app", 0755, 0);
	make_dir(f->out, f->root, "out", 01777, 0);
	make_dir(f->other, f->root, "other", 0755, 0);
	make_dir(f->wdir, f->root, "wdir", 0777, 0);
	make_dir(f->dgrp, f->root, "dgrp", 0775, 0);
	make_dir(f->doth, f->root, "doth", 0757, 0);
	make_dir(f->dnob, f->root, "dnob", 0755, NOBODY);
	make_dir(f->ddaemon, f->root, "ddaemon", 0755, DAEMON_UID);

	tu_snprintf(src, sizeof(src), "%s/readall", f->programs);
	copy_prog(src, f->app, "readall", 0);
	tu_snprintf(src, sizeof(src), "%s/fdcheck", f->programs);
	copy_prog(src, f->app, "fdcheck", 0);
	copy_prog(src, f->ddaemon, "fdcheck", DAEMON_UID);
	put_file(f->app, "exit3", script_exit3, 0755, 0);
	put_file(f->app, "segv", "#!/bin/sh\nkill -SEGV $$\n", 0755, 0);
	put_file(f->app, "bg", "#!/bin/sh\nsleep 100 &\n"
	    "echo $! > \"$1.tmp\"\nmv \"$1.tmp\" \"$1\"\nexit 0\n", 0755, 0);
	put_file(f->app, "hang", "#!/bin/sh\nsleep 100 &\n"
	    "echo $$ $! > \"$1.tmp\"\nmv \"$1.tmp\" \"$1\"\nwait\n", 0755, 0);
	put_file(f->app, "escape", "#!/bin/sh\nsetsid sleep 0.3 &\nexit 0\n",
	    0755, 0);
	put_file(f->app, "badinterp", "#!/nonexistent/interpreter\n", 0755,
	    0);
	put_file(f->app, "garbage", "\x01\x02\x03garbage", 0755, 0);
	put_file(f->app, "noexec", script_exit3, 0644, 0);
	put_file(f->app, "grpw", script_exit3, 0775, 0);
	put_file(f->app, "othw", script_exit3, 0757, 0);
	put_file(f->app, "nobodys", script_exit3, 0755, NOBODY);
	make_dir(src, f->app, "subdir", 0755, 0);
	put_file(f->other, "target", script_exit3, 0755, 0);
	put_file(f->wdir, "target", script_exit3, 0755, 0);
	tu_snprintf(src, sizeof(src), "%s/target", f->other);
	{
		char l[PATH_MAX + 16];

		tu_snprintf(l, sizeof(l), "%s/link_ok", f->app);
		assert_int_equal(symlink(src, l), 0);
		tu_snprintf(l, sizeof(l), "%s/link_bad", f->app);
		assert_int_equal(symlink("othw", l), 0);
		tu_snprintf(src, sizeof(src), "%s/target", f->wdir);
		tu_snprintf(l, sizeof(l), "%s/link_wdir", f->app);
		assert_int_equal(symlink(src, l), 0);
		tu_snprintf(l, sizeof(l), "%s/link_dangling", f->app);
		assert_int_equal(symlink("/nonexistent/x", l), 0);
	}
	put_file(f->dgrp, "exit3", script_exit3, 0755, 0);
	put_file(f->doth, "exit3", script_exit3, 0755, 0);
	put_file(f->dnob, "exit3", script_exit3, 0755, 0);
	put_file(f->root, "afile", "", 0644, 0);
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
	free(f);
	return 0;
}

/* Start a loop, a helper with settings s and a client. */
static void
env_start_with(struct env *e, struct fix *f, const struct spawn_settings *s)
{
	int sock;

	memset(e, 0, sizeof(*e));
	e->f = f;
	e->fds_before = tu_count_fds();
	assert_int_equal(uv_loop_init(&e->loop), 0);
	assert_int_equal(spawn_helper_start(s, &sock, &e->helper), 0);
	assert_int_equal(spawn_client_open(&e->loop, sock, e->helper, NULL,
	    &e->c), 0);
}

/* Start a loop, a helper (dropping to nobody or not) and a client. */
static void
env_start(struct env *e, struct fix *f, bool drop)
{
	struct spawn_settings s = { .drop = drop, .uid = drop ? NOBODY : 0,
	    .gid = drop ? NOBODY : 0 };

	env_start_with(e, f, &s);
}

/* Close everything and check that no descriptor leaked. */
static void
env_stop(struct env *e)
{
	if (e->c)
		spawn_client_close(e->c);
	assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	assert_int_equal(tu_count_fds(), e->fds_before);
}

/* Record a job's end. */
static void
on_done(void *arg, const struct spawn_exit *ex)
{
	struct got *g = arg;

	g->ex = *ex;
	tu_snprintf(g->why, sizeof(g->why), "%s", ex->why ? ex->why : "");
	g->ex.why = NULL;
	g->done++;
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

/* Condition: the job reported. */
static bool
is_done(void *arg)
{
	return ((struct got *)arg)->done > 0;
}

struct many {
	struct got *g;
	int n;
};

/* Condition: every job of the array reported. */
static bool
all_done(void *arg)
{
	struct many *m = arg;

	for (int i = 0; i < m->n; i++)
		if (m->g[i].done == 0)
			return false;
	return true;
}

/* Condition: a file exists. */
static bool
file_exists(void *arg)
{
	return access(arg, F_OK) == 0;
}

/* Condition: the process no longer exists (not even as a zombie). */
static bool
pid_gone(void *arg)
{
	return kill(*(pid_t *)arg, 0) < 0 && errno == ESRCH;
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

/* Start name from dir with stdin /dev/null, stdout/stderr to /dev/null. */
static void
start(struct env *e, const char *dir, const char *name, char *const *argv,
	struct got *g, uint64_t *job)
{
	static char *const envp[] = { "PATH=/usr/bin:/bin", NULL };
	char *const def_argv[] = { (char *)name, NULL };
	struct spawn_req r = { .dir = dir, .name = name,
	    .argv = argv ? argv : def_argv, .envp = envp, .cwd = "/" };
	uint64_t j;
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

	assert_true(nul >= 0);
	r.fd_in = r.fd_out = r.fd_err = nul;
	memset(g, 0, sizeof(*g));
	assert_int_equal(spawn_run(e->c, &r, on_done, g, job ? job : &j), 0);
	close(nul);
	assert_int_equal(g->done, 0);	/* never from inside spawn_run */
}

/* Run a program to its end; returns the report. */
static void
run_one(struct env *e, const char *dir, const char *name, char *const *argv,
	struct got *g)
{
	start(e, dir, name, argv, g, NULL);
	assert_true(run_until(&e->loop, is_done, g, 10000));
	assert_int_equal(g->done, 1);
}

/* Exit statuses and signals are reported as such. */
static void
test_exit_and_signal(void **state)
{
	struct env e;
	struct got g;

	env_start(&e, *state, true);
	run_one(&e, e.f->app, "exit3", NULL, &g);
	assert_int_equal(g.ex.how, SPAWN_EXITED);
	assert_int_equal(g.ex.code, 3);
	assert_true(g.ex.pid > 0);
	assert_null(g.ex.why);

	run_one(&e, e.f->app, "segv", NULL, &g);
	assert_int_equal(g.ex.how, SPAWN_SIGNALED);
	assert_int_equal(g.ex.code, SIGSEGV);

	run_one(&e, e.f->app, "readall", (char *[]){ "readall", "-x", "75",
	    NULL }, &g);
	assert_int_equal(g.ex.how, SPAWN_EXITED);
	assert_int_equal(g.ex.code, 75);
	assert_int_equal(spawn_active(e.c), 0);
	env_stop(&e);
}

/* Read fdcheck's report into a string. */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0;
	ssize_t k;

	assert_non_null(f);
	k = getdelim(&s, &n, '\0', f);
	assert_true(k > 0);
	fclose(f);
	return s;
}

/* What a program gets: fds, ids, umask, cwd, session, signals, env. */
static void
test_program_context(void **state)
{
	struct env e;
	struct got g;
	struct fix *f = *state;
	char out[PATH_MAX + 16], *s;
	char *const envp[] = { "PATH=/usr/bin:/bin", "SENDER=a@b",
	    "RECIPIENT=c@d", NULL };
	char *argv[] = { "fdcheck", out, "x y", "", NULL };
	struct spawn_req r = { .dir = f->app, .name = "fdcheck", .argv = argv,
	    .envp = envp, .cwd = f->out };
	int in[2], nul, fl;
	uint64_t job;
	char line[128];

	tu_snprintf(out, sizeof(out), "%s/fdcheck.1", f->out);
	env_start(&e, f, true);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
	/* A descriptor without CLOEXEC in the server must not leak either. */
	fl = open("/dev/null", O_RDONLY);
	r.fd_in = in[0];
	r.fd_out = r.fd_err = nul;
	memset(&g, 0, sizeof(g));
	assert_int_equal(spawn_run(e.c, &r, on_done, &g, &job), 0);
	close(in[0]);
	close(nul);
	assert_int_equal(write(in[1], "hello", 5), 5);
	close(in[1]);
	assert_true(run_until(&e.loop, is_done, &g, 10000));
	close(fl);
	assert_int_equal(g.ex.how, SPAWN_EXITED);
	assert_int_equal(g.ex.code, 0);
	s = slurp(out);
	assert_non_null(strstr(s, "\nuid 65534 65534\ngid 65534 65534\n"
	    "groups 65534\numask 0077\n"));
	tu_snprintf(line, sizeof(line), "\ncwd %s\n", f->out);
	assert_non_null(strstr(s, line));
	tu_snprintf(line, sizeof(line), "\npid %ld\n", (long)g.ex.pid);
	assert_non_null(strstr(s, line));
	tu_snprintf(line, sizeof(line), "\npgid %ld\nsid %ld\n", (long)g.ex.pid,
	    (long)g.ex.pid);
	assert_non_null(strstr(s, line));
	tu_snprintf(line, sizeof(line), "\nppid %ld\n", (long)e.helper);
	assert_non_null(strstr(s, line));
	/* Nothing blocked, nothing ignored: the signals the helper ignores
	   (test_helper_state) are back at their default in the program. */
	assert_non_null(strstr(s, "\nsigblk 0000000000000000\n"));
	assert_non_null(strstr(s, "\nsigign 0000000000000000\n"));
	assert_non_null(strstr(s, "\nbytes 5\n"));
	assert_non_null(strstr(s, "\nargv 0 fdcheck\n"));
	assert_non_null(strstr(s, "\nargv 2 x y\nargv 3 \nenv "));
	/* Exactly fds 0, 1, 2 and exactly the environment given. */
	assert_true(strncmp(s, "fd 0 pipe:[", 11) == 0);
	assert_non_null(strstr(s, "\nfd 1 /dev/null\nfd 2 /dev/null\nuid "));
	assert_null(strstr(s, "\nfd 3"));
	assert_non_null(strstr(s, "\nenv PATH=/usr/bin:/bin\n"
	    "env SENDER=a@b\nenv RECIPIENT=c@d\n"));
	/* ... and nothing after it. */
	assert_string_equal(strstr(s, "env RECIPIENT=c@d\n"),
	    "env RECIPIENT=c@d\n");
	free(s);
	env_stop(&e);
}

/* The signals the helper ignores (src/spawn.c helper_ignored). */
static const int helper_ignores[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM,
    SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2 };

/* The helper itself: only its socket and signalfd, as nobody; it ignores
   exactly helper_ignores. */
static void
test_helper_state(void **state)
{
	struct env e;
	char p[64], t[256], buf[4096];
	FILE *f;
	int n = 0;
	DIR *d;
	struct dirent *de;
	bool uid_ok = false, gid_ok = false, ign_ok = false, cap_ok = false;
	bool bnd_ok = false, groups_ok = false;
	unsigned long long ign = 0;

	for (size_t i = 0; i < sizeof(helper_ignores) /
	    sizeof(helper_ignores[0]); i++)
		ign |= 1ULL << (helper_ignores[i] - 1);
	env_start(&e, *state, true);
	tu_snprintf(p, sizeof(p), "/proc/%ld/fd", (long)e.helper);
	d = opendir(p);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char l[300];
		ssize_t k;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		tu_snprintf(l, sizeof(l), "%s/%s", p, de->d_name);
		k = readlink(l, t, sizeof(t) - 1);
		assert_true(k > 0);
		t[k] = '\0';
		if (fd <= 2)
			assert_string_equal(t, "/dev/null");
		else if (fd == 3)
			assert_true(strncmp(t, "socket:", 7) == 0);
		else if (fd == 4)
			assert_string_equal(t, "anon_inode:[signalfd]");
		else
			fail_msg("helper has fd %d -> %s", fd, t);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 5);
	tu_snprintf(p, sizeof(p), "/proc/%ld/status", (long)e.helper);
	f = fopen(p, "r");
	assert_non_null(f);
	while (fgets(buf, sizeof(buf), f)) {
		/* root, judging files as the program user (fsuid, fsgid,
		   groups), with only CAP_KILL, CAP_SETGID and CAP_SETUID:
		   no program can signal or trace it */
		if (strcmp(buf, "Uid:\t0\t0\t0\t65534\n") == 0)
			uid_ok = true;
		if (strcmp(buf, "Gid:\t0\t0\t0\t65534\n") == 0)
			gid_ok = true;
		if (strcmp(buf, "Groups:\t65534 \n") == 0)
			groups_ok = true;
		if (strcmp(buf, "CapEff:\t00000000000000e0\n") == 0)
			cap_ok = true;
		if (strcmp(buf, "CapBnd:\t00000000000000e0\n") == 0)
			bnd_ok = true;
		/* It ignores the terminal signals, so that test_program_context
		   shows they are reset for programs. */
		if (strncmp(buf, "SigIgn:\t", 8) == 0 &&
		    strtoull(buf + 8, NULL, 16) == ign)
			ign_ok = true;
	}
	fclose(f);
	assert_true(uid_ok);
	assert_true(gid_ok);
	assert_true(groups_ok);
	assert_true(cap_ok);
	assert_true(bnd_ok);
	assert_true(ign_ok);
	/* Not in the server's process group. */
	assert_int_equal(getpgid(e.helper), e.helper);
	env_stop(&e);
}

/* Without a privilege drop programs run as the server's user; the rule
   "owned by the program user" then refuses root-owned programs. */
static void
test_no_drop(void **state)
{
	struct env e;
	struct got g;
	struct fix *f = *state;
	char out[PATH_MAX + 16], *s;

	tu_snprintf(out, sizeof(out), "%s/fdcheck.nodrop", f->out);
	env_start(&e, f, false);
	run_one(&e, f->ddaemon, "fdcheck", (char *[]){ "fdcheck", out, NULL },
	    &g);
	assert_int_equal(g.ex.how, SPAWN_EXITED);
	assert_int_equal(g.ex.code, 0);
	s = slurp(out);
	assert_non_null(strstr(s, "\nuid 0 0\n"));
	assert_non_null(strstr(s, "\numask 0077\n"));
	free(s);
	run_one(&e, f->app, "exit3", NULL, &g);
	assert_int_equal(g.ex.how, SPAWN_FAILED);
	assert_int_equal(g.ex.code, SPAWN_FAIL_UNTRUSTED);
	assert_string_equal(g.why,
	    "application directory owned by the program user");
	env_stop(&e);

	{
		struct spawn_settings bad = { .drop = true, .uid = 0,
		    .gid = 0 };
		int sock;
		pid_t pid;

		assert_int_equal(spawn_helper_start(&bad, &sock, &pid), -EPERM);
	}
}

struct trust_case {
	int dir;		/* index into the fixture's directories */
	const char *name;
	enum spawn_how how;
	int code;
	const char *why;
};

/* Every trust rule and start failure. */
static void
test_trust(void **state)
{
	struct fix *f = *state;
	char missing[PATH_MAX + 16], afile[PATH_MAX + 16];
	const char *dirs[] = { f->app, f->dgrp, f->doth, f->dnob, missing,
	    afile };
	static const struct trust_case cases[] = {
		{ 0, "exit3", SPAWN_EXITED, 3, "" },
		{ 0, "link_ok", SPAWN_EXITED, 3, "" },
		{ 1, "exit3", SPAWN_FAILED, SPAWN_FAIL_UNTRUSTED,
		  "application directory writable by group" },
		{ 2, "exit3", SPAWN_FAILED, SPAWN_FAIL_UNTRUSTED,
		  "application directory writable by others" },
		{ 3, "exit3", SPAWN_FAILED, SPAWN_FAIL_UNTRUSTED,
		  "application directory owned by the program user" },
		{ 4, "exit3", SPAWN_FAILED, SPAWN_FAIL_DISABLED,
		  "application directory missing" },
		{ 5, "exit3", SPAWN_FAILED, SPAWN_FAIL_DISABLED,
		  "application directory is not a directory" },
		{ 0, "grpw", SPAWN_FAILED, SPAWN_FAIL_UNTRUSTED,
		  "program writable by group" },
		{ 0, "othw", SPAWN_FAILED, SPAWN_FAIL_UNTRUSTED,
		  "program writable by others" },
		{ 0, "nobodys", SPAWN_FAILED, SPAWN_FAIL_UNTRUSTED,
		  "program owned by the program user" },
		{ 0, "link_bad", SPAWN_FAILED, SPAWN_FAIL_UNTRUSTED,
		  "program writable by others" },
		{ 0, "link_wdir", SPAWN_FAILED, SPAWN_FAIL_UNTRUSTED,
		  "directory of the symlinked program writable by group" },
		{ 0, "link_dangling", SPAWN_FAILED, SPAWN_FAIL_NOAPP,
		  "no such application" },
		{ 0, "nosuch", SPAWN_FAILED, SPAWN_FAIL_NOAPP,
		  "no such application" },
		{ 0, ".hidden", SPAWN_FAILED, SPAWN_FAIL_NOAPP,
		  "invalid application name" },
		{ 0, "../app/exit3", SPAWN_FAILED, SPAWN_FAIL_NOAPP,
		  "invalid application name" },
		{ 0, "subdir", SPAWN_FAILED, SPAWN_FAIL_EXEC,
		  "program is not a regular file" },
		{ 0, "noexec", SPAWN_FAILED, SPAWN_FAIL_EXEC,
		  "program is not executable: Permission denied" },
		{ 0, "badinterp", SPAWN_FAILED, SPAWN_FAIL_EXEC,
		  "cannot execute program: No such file or directory" },
		{ 0, "garbage", SPAWN_FAILED, SPAWN_FAIL_EXEC,
		  "cannot execute program: Exec format error" },
	};
	struct env e;
	struct got g;

	tu_snprintf(missing, sizeof(missing), "%s/missing", f->root);
	tu_snprintf(afile, sizeof(afile), "%s/afile", f->root);
	env_start(&e, f, true);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct trust_case *c = &cases[i];

		run_one(&e, dirs[c->dir], c->name, NULL, &g);
		if (g.ex.how != c->how || g.ex.code != c->code ||
		    strcmp(g.why, c->why) != 0)
			fail_msg("%s/%s: how %d code %d why '%s'",
			    dirs[c->dir], c->name, g.ex.how, g.ex.code, g.why);
		if (c->how == SPAWN_FAILED)
			assert_int_equal(g.ex.pid, 0);
	}
	env_stop(&e);
}

/* A working directory that does not exist: the start fails. */
static void
test_bad_cwd(void **state)
{
	static char *const envp[] = { NULL };
	char *const argv[] = { "exit3", NULL };
	struct fix *f = *state;
	struct spawn_req r = { .dir = f->app, .name = "exit3", .argv = argv,
	    .envp = envp, .cwd = "/nonexistent/dir" };
	struct env e;
	struct got g = { 0 };
	uint64_t job;
	int nul;

	env_start(&e, f, true);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	r.fd_in = r.fd_out = r.fd_err = nul;
	assert_int_equal(spawn_run(e.c, &r, on_done, &g, &job), 0);
	close(nul);
	assert_true(run_until(&e.loop, is_done, &g, 10000));
	assert_int_equal(g.ex.how, SPAWN_FAILED);
	assert_int_equal(g.ex.code, SPAWN_FAIL_EXEC);
	assert_int_equal(g.ex.err, ENOENT);
	assert_string_equal(g.why,
	    "cannot execute program: No such file or directory");
	/* Bad arguments are refused at once, without a callback. */
	r.argv = (char *[]){ NULL };
	assert_int_equal(spawn_run(e.c, &r, on_done, &g, &job), -EINVAL);
	r.argv = argv;
	r.fd_in = -1;
	assert_int_equal(spawn_run(e.c, &r, on_done, &g, &job), -EINVAL);
	assert_int_equal(g.done, 1);
	env_stop(&e);
}

/* Read "LEADER CHILD" pids written by the hang/bg scripts. */
static void
read_pids(const char *path, pid_t *a, pid_t *b)
{
	FILE *f = fopen(path, "r");
	long x = 0, y = 0;

	assert_non_null(f);
	assert_true(fscanf(f, "%ld %ld", &x, &y) >= 1);
	fclose(f);
	*a = (pid_t)x;
	*b = (pid_t)y;
}

/* spawn_kill kills the whole group, grandchild included; nothing is
   left, not even a zombie. */
static void
test_kill_group(void **state)
{
	struct fix *f = *state;
	char pidfile[PATH_MAX + 16];
	struct env e;
	struct got g;
	uint64_t job;
	pid_t leader, child;

	tu_snprintf(pidfile, sizeof(pidfile), "%s/hang.pids", f->out);
	env_start(&e, f, true);
	start(&e, f->app, "hang", (char *[]){ "hang", pidfile, NULL }, &g,
	    &job);
	assert_int_equal(spawn_active(e.c), 1);
	assert_true(run_until(&e.loop, file_exists, pidfile, 10000));
	read_pids(pidfile, &leader, &child);
	assert_true(child > 0);
	assert_int_equal(kill(child, 0), 0);
	assert_int_equal(spawn_kill(e.c, job), 0);
	assert_true(run_until(&e.loop, is_done, &g, 10000));
	assert_int_equal(g.ex.how, SPAWN_SIGNALED);
	assert_int_equal(g.ex.code, SIGKILL);
	assert_int_equal(g.ex.pid, leader);
	assert_true(run_until(&e.loop, pid_gone, &child, 5000));
	assert_true(pid_gone(&leader));
	assert_true(run_until(&e.loop, helper_childless, &e.helper, 5000));
	/* Killing a finished job (or an unknown one) is a no-op. */
	assert_int_equal(spawn_kill(e.c, job), 0);
	assert_int_equal(spawn_kill(e.c, 123456), 0);
	env_stop(&e);
}

/* When the leader exits, what it left in its group is killed; an
   escaped (setsid) orphan is reaped by the helper (subreaper). */
static void
test_leftovers(void **state)
{
	struct fix *f = *state;
	char pidfile[PATH_MAX + 16];
	struct env e;
	struct got g;
	pid_t child, unused;

	tu_snprintf(pidfile, sizeof(pidfile), "%s/bg.pids", f->out);
	env_start(&e, f, true);
	run_one(&e, f->app, "bg", (char *[]){ "bg", pidfile, NULL }, &g);
	assert_int_equal(g.ex.how, SPAWN_EXITED);
	assert_int_equal(g.ex.code, 0);
	read_pids(pidfile, &child, &unused);
	assert_true(run_until(&e.loop, pid_gone, &child, 5000));

	run_one(&e, f->app, "escape", NULL, &g);
	assert_int_equal(g.ex.how, SPAWN_EXITED);
	assert_int_equal(g.ex.code, 0);
	assert_true(run_until(&e.loop, helper_childless, &e.helper, 5000));
	env_stop(&e);
}

/* Many programs at once, and requests too big to send at once
   (queued until the socket is writable), all complete. */
static void
test_many(void **state)
{
	enum { N = 50, BIG = 40 };
	struct got g[N + BIG];
	struct env e;
	struct fix *f = *state;
	struct many all = { g, N + BIG };
	char *big = malloc(100 * 1024);
	char *envp[] = { "PATH=/usr/bin:/bin", big, NULL };
	char *const argv[] = { "readall", "-x", "7", NULL };
	struct spawn_req r = { .dir = f->app, .name = "readall",
	    .argv = argv, .envp = envp, .cwd = "/" };
	int nul;
	uint64_t job;

	assert_non_null(big);
	memcpy(big, "BIG=", 4);
	memset(big + 4, 'b', 100 * 1024 - 5);
	big[100 * 1024 - 1] = '\0';
	env_start(&e, f, true);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	r.fd_in = r.fd_out = r.fd_err = nul;
	for (int i = 0; i < N + BIG; i++) {
		envp[1] = i < N ? NULL : big;
		memset(&g[i], 0, sizeof(g[i]));
		assert_int_equal(spawn_run(e.c, &r, on_done, &g[i], &job), 0);
	}
	close(nul);
	assert_int_equal(spawn_active(e.c), N + BIG);
	assert_true(run_until(&e.loop, all_done, &all, 30000));
	for (int i = 0; i < N + BIG; i++) {
		assert_int_equal(g[i].done, 1);
		if (g[i].ex.how != SPAWN_EXITED)
			fail_msg("job %d: %s", i, g[i].why);
		assert_int_equal(g[i].ex.code, 7);
	}
	assert_int_equal(spawn_active(e.c), 0);
	free(big);
	env_stop(&e);
}

/* Requests over the size limit fail (asynchronously) with EXEC. */
static void
test_too_long(void **state)
{
	struct env e;
	struct got g;
	size_t n = 300 * 1024;
	char *arg = malloc(n + 1);

	assert_non_null(arg);
	memset(arg, 'a', n);
	arg[n] = '\0';
	env_start(&e, *state, true);
	start(&e, e.f->app, "readall", (char *[]){ "readall", arg, NULL }, &g,
	    NULL);
	assert_int_equal(spawn_active(e.c), 1);
	assert_true(run_until(&e.loop, is_done, &g, 5000));
	assert_int_equal(g.ex.how, SPAWN_FAILED);
	assert_int_equal(g.ex.code, SPAWN_FAIL_EXEC);
	assert_string_equal(g.why, "arguments too long");
	assert_int_equal(spawn_active(e.c), 0);
	free(arg);
	env_stop(&e);
}

/* The wire format, mirrored from spawn.c, to reach the helper's own
   checks of requests the client never sends. */
struct raw_hdr {
	uint32_t type, argc, envc, pad;
	uint64_t job;
};

struct raw_reply {
	uint32_t type;
	int32_t how, code, err, why, pid;
	uint64_t job;
};

/* Truncated, fd-less and malformed requests are answered with errors. */
static void
test_helper_protocol(void **state)
{
	struct spawn_settings s = { .drop = true, .uid = NOBODY,
	    .gid = NOBODY };
	struct raw_hdr h = { .type = 1, .argc = 1, .envc = 0, .job = 77 };
	struct raw_reply rep;
	size_t n = 300 * 1024;
	char *msg = calloc(1, n);
	int sock, st;
	pid_t pid;

	(void)state;
	assert_non_null(msg);
	assert_int_equal(spawn_helper_start(&s, &sock, &pid), 0);
	/* Too big: the helper sees MSG_TRUNC. */
	memcpy(msg, &h, sizeof(h));
	assert_int_equal(send(sock, msg, n, 0), (ssize_t)n);
	assert_int_equal(recv(sock, &rep, sizeof(rep), 0), sizeof(rep));
	assert_int_equal(rep.job, 77);
	assert_int_equal(rep.how, SPAWN_FAILED);
	assert_int_equal(rep.code, SPAWN_FAIL_EXEC);
	assert_int_equal(rep.err, E2BIG);
	/* No descriptors attached. */
	h.job = 78;
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), "d\0n\0c\0a\0", 8);
	assert_int_equal(send(sock, msg, sizeof(h) + 8, 0),
	    (ssize_t)(sizeof(h) + 8));
	assert_int_equal(recv(sock, &rep, sizeof(rep), 0), sizeof(rep));
	assert_int_equal(rep.job, 78);
	assert_int_equal(rep.code, SPAWN_FAIL_EXEC);
	/* A kill for an unknown job and a short message: no reply; the
	   helper then exits on EOF. */
	h.type = 2;
	assert_int_equal(send(sock, &h, sizeof(h), 0), sizeof(h));
	assert_int_equal(send(sock, "x", 1, 0), 1);
	close(sock);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	free(msg);
}

/* Unterminated strings and wrong counts are malformed. */
static void
test_helper_malformed(void **state)
{
	struct spawn_settings s = { .drop = true, .uid = NOBODY,
	    .gid = NOBODY };
	struct raw_hdr h = { .type = 1, .argc = 1, .envc = 0, .job = 5 };
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	static const char *const bodies[] = { "d\0n\0c\0a\0extra", "d\0n\0c",
	    "d\0n\0c\0" };
	static const size_t lens[] = { 13, 5, 6 };
	struct raw_reply rep;
	int sock, st, nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	int fds[3] = { nul, nul, nul };
	pid_t pid;

	(void)state;
	assert_int_equal(spawn_helper_start(&s, &sock, &pid), 0);
	for (size_t i = 0; i < 3; i++) {
		char msg[64];
		struct iovec iov = { msg, sizeof(h) + lens[i] };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
		    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

		h.job = 5 + i;
		memcpy(msg, &h, sizeof(h));
		memcpy(msg + sizeof(h), bodies[i], lens[i]);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		assert_true(sendmsg(sock, &m, 0) > 0);
		assert_int_equal(recv(sock, &rep, sizeof(rep), 0), sizeof(rep));
		assert_int_equal(rep.job, 5 + i);
		assert_int_equal(rep.how, SPAWN_FAILED);
		assert_int_equal(rep.code, SPAWN_FAIL_EXEC);
	}
	close(nul);
	close(sock);
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

struct reaped {
	pid_t pid;
	int status;
};

/* Condition: pid (an orphan that comes to us) ended and was reaped. */
static bool
reap(void *arg)
{
	struct reaped *r = arg;

	/* ECHILD until the dying helper has handed it over */
	return waitpid(r->pid, &r->status, WNOHANG) == r->pid;
}

/* The helper dies: running jobs fail with TEMP, later runs with EPIPE. */
static void
test_helper_dies(void **state)
{
	struct fix *f = *state;
	char pidfile[PATH_MAX + 16];
	struct env e;
	struct got g, g2;
	pid_t leader, child;
	uint64_t job;
	struct reaped rp;
	int st;

	tu_snprintf(pidfile, sizeof(pidfile), "%s/dies.pids", f->out);
	env_start(&e, f, true);
	start(&e, f->app, "hang", (char *[]){ "hang", pidfile, NULL }, &g,
	    NULL);
	assert_true(run_until(&e.loop, file_exists, pidfile, 10000));
	read_pids(pidfile, &leader, &child);
	assert_int_equal(kill(e.helper, SIGKILL), 0);
	assert_true(run_until(&e.loop, is_done, &g, 10000));
	assert_int_equal(g.ex.how, SPAWN_FAILED);
	assert_int_equal(g.ex.code, SPAWN_FAIL_TEMP);
	assert_string_equal(g.why, "spawn helper died");
	/* The program dies with its helper (parent-death signal): no
	   program outlives the helper that holds its stdin. It came to us
	   (the test is a subreaper). */
	rp.pid = leader;
	assert_true(run_until(&e.loop, reap, &rp, 10000));
	assert_true(WIFSIGNALED(rp.status));
	assert_int_equal(WTERMSIG(rp.status), SIGKILL);
	{
		static char *const envp[] = { NULL };
		char *const argv[] = { "exit3", NULL };
		struct spawn_req r = { .dir = f->app, .name = "exit3",
		    .argv = argv, .envp = envp, .cwd = "/", .fd_in = 0,
		    .fd_out = 1, .fd_err = 2 };

		memset(&g2, 0, sizeof(g2));
		assert_int_equal(spawn_run(e.c, &r, on_done, &g2, &job),
		    -EPIPE);
		assert_int_equal(spawn_kill(e.c, job), 0);
	}
	/* The program's own child came to us too: clean up. */
	kill(-leader, SIGKILL);
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	/* A new helper: the client carries on with it. */
	{
		struct spawn_settings s = { .drop = true, .uid = NOBODY,
		    .gid = NOBODY };
		pid_t old = e.helper;
		int sock;

		while (waitpid(old, &st, 0) < 0 && errno == EINTR)
			;
		assert_int_equal(spawn_helper_start(&s, &sock, &e.helper), 0);
		assert_int_equal(spawn_client_reconnect(e.c, sock, e.helper),
		    0);
		run_one(&e, f->app, "exit3", NULL, &g);
		assert_int_equal(g.ex.how, SPAWN_EXITED);
		assert_int_equal(g.ex.code, 3);
	}
	env_stop(&e);
	assert_int_equal(g2.done, 0);
}

struct started {
	struct got *g;		/* done not yet reported when started */
	pid_t pid;
	int calls;
};

/* Record that the program started. */
static void
on_started(void *arg, pid_t pid)
{
	struct started *st = arg;

	st->calls++;
	st->pid = pid;
	assert_int_equal(st->g->done, 0);
}

/* Record a job's end (the started test's argument). */
static void
on_done_started(void *arg, const struct spawn_exit *ex)
{
	on_done(((struct started *)arg)->g, ex);
}

/* The helper says when a program started (its pid), before its end. */
static void
test_started(void **state)
{
	static char *const envp[] = { NULL };
	char *const argv[] = { "exit3", NULL };
	struct fix *f = *state;
	struct spawn_req r = { .dir = f->app, .name = "exit3", .argv = argv,
	    .envp = envp, .cwd = "/", .started = on_started };
	struct env e;
	struct got g;
	struct started st = { &g, 0, 0 };
	uint64_t job;
	int nul;

	env_start(&e, f, true);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	memset(&g, 0, sizeof(g));
	r.fd_in = r.fd_out = r.fd_err = nul;
	assert_int_equal(spawn_run(e.c, &r, on_done_started, &st, &job), 0);
	close(nul);
	assert_true(run_until(&e.loop, is_done, &g, 10000));
	assert_int_equal(st.calls, 1);
	assert_int_equal(st.pid, g.ex.pid);
	assert_int_equal(g.ex.how, SPAWN_EXITED);
	/* A program that never starts is never reported as started. */
	r.name = "missing";
	memset(&g, 0, sizeof(g));
	st.calls = 0;
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	r.fd_in = r.fd_out = r.fd_err = nul;
	assert_int_equal(spawn_run(e.c, &r, on_done_started, &st, &job), 0);
	close(nul);
	assert_true(run_until(&e.loop, is_done, &g, 10000));
	assert_int_equal(g.ex.how, SPAWN_FAILED);
	assert_int_equal(st.calls, 0);
	env_stop(&e);
}

/* With pinned directories the helper runs nothing else, nowhere else. */
static void
test_pinned(void **state)
{
	struct fix *f = *state;
	struct spawn_settings s = { .drop = true, .uid = NOBODY,
	    .gid = NOBODY, .app_dir = f->app, .base_dir = f->out };
	static char *const envp[] = { NULL };
	char out[PATH_MAX + 16], *txt, line[PATH_MAX + 16];
	char *argv[] = { "fdcheck", out, NULL };
	struct {
		const char *dir, *cwd;
		bool ok;
	} cases[] = {
		{ f->app, f->app, true },
		{ f->app, f->out, true },
		{ f->app, "/", false },
		{ f->other, f->app, false },
		{ f->dgrp, f->out, false },
	};
	struct env e;
	struct got g;

	tu_snprintf(out, sizeof(out), "%s/pinned", f->out);
	env_start_with(&e, f, &s);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct spawn_req r = { .dir = cases[i].dir, .name = "fdcheck",
		    .argv = argv, .envp = envp, .cwd = cases[i].cwd };
		uint64_t job;
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

		unlink(out);
		memset(&g, 0, sizeof(g));
		r.fd_in = r.fd_out = r.fd_err = nul;
		assert_int_equal(spawn_run(e.c, &r, on_done, &g, &job), 0);
		close(nul);
		assert_true(run_until(&e.loop, is_done, &g, 10000));
		if (cases[i].ok) {
			assert_int_equal(g.ex.how, SPAWN_EXITED);
			assert_int_equal(g.ex.code, 0);
			txt = slurp(out);
			tu_snprintf(line, sizeof(line), "\ncwd %s\n",
			    cases[i].cwd);
			assert_non_null(strstr(txt, line));
			free(txt);
		} else {
			assert_int_equal(g.ex.how, SPAWN_FAILED);
			assert_int_equal(g.ex.code, SPAWN_FAIL_EXEC);
			assert_string_equal(g.why,
			    "directory not allowed by the spawn helper");
			assert_int_equal(access(out, F_OK), -1);
		}
	}
	env_stop(&e);
}

/* A request may give the program an fd 3 (a [FILE] copy), and only it. */
static void
test_fd3(void **state)
{
	struct fix *f = *state;
	static char *const envp[] = { NULL };
	char out[PATH_MAX + 16], file[PATH_MAX + 16], line[PATH_MAX + 32];
	char *argv[] = { "fdcheck", out, NULL }, *txt;
	struct spawn_req r = { .dir = f->app, .name = "fdcheck",
	    .argv = argv, .envp = envp, .cwd = "/", .has_fd_3 = true };
	struct env e;
	struct got g;
	uint64_t job;
	int nul;

	tu_snprintf(out, sizeof(out), "%s/fd3", f->out);
	tu_snprintf(file, sizeof(file), "%s/fd3.data", f->out);
	put_file(f->out, "fd3.data", "data\n", 0644, 0);
	env_start(&e, f, true);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	r.fd_in = r.fd_out = r.fd_err = nul;
	/* the low fd numbers must not get in each other's way */
	r.fd_3 = open(file, O_RDONLY | O_CLOEXEC);
	assert_true(r.fd_3 > 2);
	memset(&g, 0, sizeof(g));
	assert_int_equal(spawn_run(e.c, &r, on_done, &g, &job), 0);
	close(r.fd_3);
	close(nul);
	assert_true(run_until(&e.loop, is_done, &g, 10000));
	assert_int_equal(g.ex.how, SPAWN_EXITED);
	assert_int_equal(g.ex.code, 0);
	txt = slurp(out);
	tu_snprintf(line, sizeof(line), "\nfd 3 %s\nuid ", file);
	assert_non_null(strstr(txt, line));
	assert_null(strstr(txt, "\nfd 4"));
	free(txt);
	r.fd_3 = -1;
	assert_int_equal(spawn_run(e.c, &r, on_done, &g, &job), -EINVAL);
	env_stop(&e);
}

/* Closing the client with a job running reports it and kills it. */
static void
test_close_running(void **state)
{
	struct fix *f = *state;
	char pidfile[PATH_MAX + 16];
	struct env e;
	struct got g;
	pid_t leader, child;

	tu_snprintf(pidfile, sizeof(pidfile), "%s/close.pids", f->out);
	env_start(&e, f, true);
	start(&e, f->app, "hang", (char *[]){ "hang", pidfile, NULL }, &g,
	    NULL);
	assert_true(run_until(&e.loop, file_exists, pidfile, 10000));
	read_pids(pidfile, &leader, &child);
	spawn_client_close(e.c);
	e.c = NULL;
	assert_int_equal(g.done, 1);
	assert_int_equal(g.ex.how, SPAWN_FAILED);
	assert_int_equal(g.ex.code, SPAWN_FAIL_TEMP);
	assert_string_equal(g.why, "spawn helper stopped");
	/* The helper reaped the group before it exited. */
	assert_true(pid_gone(&leader));
	assert_true(pid_gone(&child));
	env_stop(&e);
}


/* Does process pid have a descriptor open on the pipe with inode ino? */
static bool
holds_pipe(pid_t pid, ino_t ino)
{
	char dir[64], link[PATH_MAX], want[64], got[PATH_MAX];
	struct dirent *d;
	bool found = false;
	DIR *dp;

	tu_snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	tu_snprintf(want, sizeof(want), "pipe:[%lu]", (unsigned long)ino);
	if ((dp = opendir(dir)) == NULL)
		return false;
	while (!found && (d = readdir(dp)) != NULL) {
		ssize_t n;

		if (d->d_name[0] == '.')
			continue;
		tu_snprintf(link, sizeof(link), "%s/%s", dir, d->d_name);
		n = readlink(link, got, sizeof(got) - 1);
		if (n > 0) {
			got[n] = '\0';
			found = strcmp(got, want) == 0;
		}
	}
	closedir(dp);
	return found;
}

/* Start readall OPT OUT with stdin from a pipe whose write end the
   helper holds; the caller's copy of the write end is closed at once.
   (-w copies stdin to OUT as it reads; -o appends a record at EOF.) */
static uint64_t
start_held(struct env *e, const char *opt, const char *out, struct got *g,
	ino_t *ino)
{
	char *const envp[] = { "PATH=/usr/bin:/bin", NULL };
	char *argv[] = { "readall", (char *)opt, (char *)out, NULL };
	struct spawn_req r = { .dir = e->f->app, .name = "readall",
	    .argv = argv, .envp = envp, .cwd = "/" };
	struct stat st;
	uint64_t job;
	int in[2], nul;

	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(fstat(in[1], &st), 0);
	*ino = st.st_ino;
	nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
	r.fd_in = in[0];
	r.fd_out = r.fd_err = nul;
	r.fd_hold = in[1];
	memset(g, 0, sizeof(*g));
	assert_int_equal(spawn_run(e->c, &r, on_done, g, &job), 0);
	close(in[0]);
	close(nul);
	assert_int_equal(write(in[1], "abc", 3), 3);
	close(in[1]);
	return job;
}

/* Condition: the helper holds the pipe. */
static bool
helper_holds(void *arg)
{
	struct { pid_t pid; ino_t ino; } *h = arg;

	return holds_pipe(h->pid, h->ino);
}

/*
 * The helper holds a copy of the stdin write end: the program sees end of
 * file only after spawn_release, and when the server goes away first it
 * is killed without ever seeing end of file on a cut message.
 */
static void
test_hold_stdin(void **state)
{
	struct fix *f = *state;
	char out1[PATH_MAX + 16], out2[PATH_MAX + 16];
	struct { pid_t pid; ino_t ino; } h;
	struct env e;
	struct got g1, g2;
	uint64_t job;
	char *s;

	tu_snprintf(out1, sizeof(out1), "%s/held.1", f->out);
	tu_snprintf(out2, sizeof(out2), "%s/held.2", f->out);
	env_start(&e, f, true);
	h.pid = e.helper;

	/* Released: the program reads everything and ends normally. */
	job = start_held(&e, "-w", out1, &g1, &h.ino);
	assert_true(run_until(&e.loop, helper_holds, &h, 10000));
	assert_int_equal(g1.done, 0);
	assert_int_equal(spawn_release(e.c, job), 0);
	assert_true(run_until(&e.loop, is_done, &g1, 10000));
	assert_int_equal(g1.ex.how, SPAWN_EXITED);
	assert_int_equal(g1.ex.code, 0);
	assert_false(holds_pipe(e.helper, h.ino));
	s = slurp(out1);
	assert_string_equal(s, "abc");
	free(s);

	/* Not released, and the server goes away: killed, never saw EOF. */
	start_held(&e, "-o", out2, &g2, &h.ino);
	assert_true(run_until(&e.loop, helper_holds, &h, 10000));
	spawn_client_close(e.c);
	e.c = NULL;
	assert_int_equal(g2.done, 1);
	assert_int_equal(g2.ex.how, SPAWN_FAILED);
	assert_int_equal(access(out2, F_OK), -1);
	env_stop(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_and_signal),
		cmocka_unit_test(test_program_context),
		cmocka_unit_test(test_helper_state),
		cmocka_unit_test(test_no_drop),
		cmocka_unit_test(test_trust),
		cmocka_unit_test(test_bad_cwd),
		cmocka_unit_test(test_kill_group),
		cmocka_unit_test(test_leftovers),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_helper_protocol),
		cmocka_unit_test(test_helper_malformed),
		cmocka_unit_test(test_helper_dies),
		cmocka_unit_test(test_close_running),
		cmocka_unit_test(test_hold_stdin),
		cmocka_unit_test(test_started),
		cmocka_unit_test(test_pinned),
		cmocka_unit_test(test_fd3),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
