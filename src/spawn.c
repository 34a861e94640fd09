/*
 * spawn: the spawn helper process and its client on the server's loop.
 * The helper owns every delivery program: it trust-checks the application
 * directory and program as the program user, starts them with a
 * vfork-style clone (own session, default signals, empty mask, fds 0/1/2
 * only, given cwd and environment, the program user's ids set in the
 * child just before exec), kills a job's whole process group when its
 * leader exits, reaps everything and exits when its client goes away.
 * Never runs a shell, never lets a program inherit a descriptor,
 * environment, signal disposition or privilege, never trusts a request
 * beyond its pinned directories.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"

/* The helper's end of the socket, after it closed everything else. */
#define SPAWN_SOCK_FD 3
/* Largest request (header, paths, argv, environment). */
#define SPAWN_REQ_MAX (256 * 1024)
/* Socket buffer asked for, so that a full-size request fits. */
#define SPAWN_SOCKBUF (SPAWN_REQ_MAX + 64 * 1024)
/* Stack of the clone child that execs a program (see helper_spawn). */
#define SPAWN_STACK (64 * 1024)

enum msg_type {
	MSG_RUN = 1,	/* client -> helper, with 3 fds (+ hold, + fd 3) */
	MSG_KILL,	/* client -> helper */
	MSG_RELEASE,	/* client -> helper: close the held fd of a job */
	REP_READY,	/* helper -> client, once, err = setup errno */
	REP_DONE,	/* helper -> client, once per job */
	REP_STARTED,	/* helper -> client: the job's program runs (pid) */
};

/* MSG_RUN flags: which optional fds follow in, out and err, in order. */
enum {
	RUN_HOLD = 1,	/* the stdin write end to hold */
	RUN_FD3 = 2,	/* the program's fd 3 */
};

/* Most fds one request carries. */
#define SPAWN_MAX_FDS 5

/* Request header; NUL-terminated dir, name, cwd, argv[], envp[] follow. */
struct msg_hdr {
	uint32_t type;
	uint32_t argc;
	uint32_t envc;
	uint32_t flags;	/* MSG_RUN: RUN_* */
	uint64_t job;
};

/* Every reply has this fixed size. */
struct msg_reply {
	uint32_t type;
	int32_t how;	/* enum spawn_how */
	int32_t code;
	int32_t err;
	int32_t why;	/* enum why */
	int32_t pid;
	uint64_t job;
};

/* Why a job failed; texts below (the protocol carries the index). */
enum why {
	WHY_NONE = 0,
	WHY_DIR_MISSING,
	WHY_DIR_NOTDIR,
	WHY_DIR_ACCESS,
	WHY_DIR_GROUP,
	WHY_DIR_OTHERS,
	WHY_DIR_OWNER,
	WHY_BAD_NAME,
	WHY_APP_MISSING,
	WHY_APP_ACCESS,
	WHY_APP_NOTREG,
	WHY_APP_GROUP,
	WHY_APP_OTHERS,
	WHY_APP_OWNER,
	WHY_TARGET_GROUP,
	WHY_TARGET_OTHERS,
	WHY_TARGET_OWNER,
	WHY_APP_NOEXEC,
	WHY_TOO_LONG,
	WHY_BAD_REQUEST,
	WHY_NOT_PINNED,
	WHY_EXEC,
	WHY_TEMP,
	WHY_HELPER_DIED,
	WHY_HELPER_STOPPED,
	WHY_CANCELLED,
	WHY_COUNT
};

static const char *const why_text[WHY_COUNT] = {
	[WHY_NONE] = "",
	[WHY_DIR_MISSING] = "application directory missing",
	[WHY_DIR_NOTDIR] = "application directory is not a directory",
	[WHY_DIR_ACCESS] = "application directory not accessible",
	[WHY_DIR_GROUP] = "application directory writable by group",
	[WHY_DIR_OTHERS] = "application directory writable by others",
	[WHY_DIR_OWNER] = "application directory owned by the program user",
	[WHY_BAD_NAME] = "invalid application name",
	[WHY_APP_MISSING] = "no such application",
	[WHY_APP_ACCESS] = "program not accessible",
	[WHY_APP_NOTREG] = "program is not a regular file",
	[WHY_APP_GROUP] = "program writable by group",
	[WHY_APP_OTHERS] = "program writable by others",
	[WHY_APP_OWNER] = "program owned by the program user",
	[WHY_TARGET_GROUP] = "directory of the symlinked program writable "
	    "by group",
	[WHY_TARGET_OTHERS] = "directory of the symlinked program writable "
	    "by others",
	[WHY_TARGET_OWNER] = "directory of the symlinked program owned by "
	    "the program user",
	[WHY_APP_NOEXEC] = "program is not executable",
	[WHY_TOO_LONG] = "arguments too long",
	[WHY_BAD_REQUEST] = "malformed spawn request",
	[WHY_NOT_PINNED] = "directory not allowed by the spawn helper",
	[WHY_EXEC] = "cannot execute program",
	[WHY_TEMP] = "cannot start program now",
	[WHY_HELPER_DIED] = "spawn helper died",
	[WHY_HELPER_STOPPED] = "spawn helper stopped",
	[WHY_CANCELLED] = "program did not start in time",
};

/* ------------------------------------------------------------------ */
/* The helper process.                                                  */

struct helper_job {
	uint64_t id;
	pid_t pid;
	int hold;		/* stdin write end held until released, or -1 */
};

struct helper {
	int sock;
	int sfd;			/* signalfd for SIGCHLD */
	struct spawn_settings s;
	struct helper_job *jobs;
	size_t njobs, cap;
	char *rbuf;			/* SPAWN_REQ_MAX bytes */
	char *stack;			/* SPAWN_STACK bytes, for helper_spawn */
};

/* The signals the helper ignores; every other one is at its default. */
static const int helper_ignored[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM,
    SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2 };

/* Send one reply; errors show up as EOF on the next receive. */
static void
helper_send(struct helper *h, uint32_t type, uint64_t job, int how, int code,
	int err, int why, pid_t pid)
{
	struct msg_reply rep = { .type = type, .how = how, .code = code,
	    .err = err, .why = why, .pid = pid, .job = job };

	while (send(h->sock, &rep, sizeof(rep), MSG_NOSIGNAL) < 0 &&
	    errno == EINTR)
		;
}

/* Reply that a job ended (or failed). */
static void
helper_reply(struct helper *h, uint64_t job, int how, int code, int err,
	int why, pid_t pid)
{
	helper_send(h, REP_DONE, job, how, code, err, why, pid);
}

/* Reply that a job failed to start. */
static void
helper_fail(struct helper *h, uint64_t job, int fail, int why, int err)
{
	helper_reply(h, job, SPAWN_FAILED, fail, err, why, 0);
}

/* Which write rule st breaks: 0 none, 1 group, 2 others, 3 owner. */
static int
writable_by(const struct stat *st, uid_t uid)
{
	if (st->st_mode & S_IWGRP)
		return 1;
	if (st->st_mode & S_IWOTH)
		return 2;
	/* The owner can always make it writable (chmod): a directory or
	   program owned by the program user is as good as writable by it.
	   This holds when privileges are not dropped too (uid is then the
	   server's own user, so the applications must belong to another). */
	if (st->st_uid == uid)
		return 3;
	return 0;
}

/* Check that a symlinked program's real directory is trusted too. */
static int
trust_target_dir(const struct helper *h, const char *path, int *why,
	int *err)
{
	struct stat st;
	char *real = realpath(path, NULL), *slash;
	int w;

	if (real == NULL) {
		*err = errno;
		*why = WHY_APP_ACCESS;
		return errno == ENOMEM ? SPAWN_FAIL_TEMP : SPAWN_FAIL_EXEC;
	}
	slash = strrchr(real, '/');
	if (slash == real)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(real, &st) < 0) {
		*err = errno;
		free(real);
		*why = WHY_APP_ACCESS;
		return SPAWN_FAIL_EXEC;
	}
	free(real);
	if ((w = writable_by(&st, h->s.uid)) != 0) {
		*why = WHY_TARGET_GROUP + w - 1;
		return SPAWN_FAIL_UNTRUSTED;
	}
	return 0;
}

/*
 * SPEC "Application directory trust", checked as the program user:
 * returns 0 or the enum run_spawn_fail, with *why and *err set. path
 * receives dir/name.
 */
static int
trust_check(const struct helper *h, const char *dir, const char *name,
	struct buf *path, int *why, int *err)
{
	struct stat st, lst;
	int w;

	*err = 0;
	if (stat(dir, &st) < 0) {
		*err = errno;
		if (errno == ENOENT || errno == ENOTDIR) {
			*why = WHY_DIR_MISSING;
			return SPAWN_FAIL_DISABLED;
		}
		*why = WHY_DIR_ACCESS;
		return SPAWN_FAIL_EXEC;
	}
	if (!S_ISDIR(st.st_mode)) {
		*why = WHY_DIR_NOTDIR;
		return SPAWN_FAIL_DISABLED;
	}
	if ((w = writable_by(&st, h->s.uid)) != 0) {
		*why = WHY_DIR_GROUP + w - 1;
		return SPAWN_FAIL_UNTRUSTED;
	}
	if (name[0] == '\0' || name[0] == '.' || name[0] == '-' ||
	    strchr(name, '/') ||
	    strchr(name, '\\')) {
		*why = WHY_BAD_NAME;
		return SPAWN_FAIL_NOAPP;
	}
	buf_reset(path);
	if (buf_printf(path, "%s%s%s", dir,
	    dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", name) < 0) {
		*err = ENOMEM;
		*why = WHY_TEMP;
		return SPAWN_FAIL_TEMP;
	}
	if (stat(path->data, &st) < 0) {
		*err = errno;
		if (errno == ENOENT || errno == ENOTDIR) {
			*why = WHY_APP_MISSING;
			return SPAWN_FAIL_NOAPP;
		}
		*why = WHY_APP_ACCESS;
		return SPAWN_FAIL_EXEC;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = WHY_APP_NOTREG;
		return SPAWN_FAIL_EXEC;
	}
	if ((w = writable_by(&st, h->s.uid)) != 0) {
		*why = WHY_APP_GROUP + w - 1;
		return SPAWN_FAIL_UNTRUSTED;
	}
	if (lstat(path->data, &lst) == 0 && S_ISLNK(lst.st_mode) &&
	    (w = trust_target_dir(h, path->data, why, err)) != 0)
		return w;
	if (faccessat(AT_FDCWD, path->data, X_OK, AT_EACCESS) < 0) {
		*err = errno;
		*why = WHY_APP_NOEXEC;
		return SPAWN_FAIL_EXEC;
	}
	return 0;
}

/* Index of the job whose leader is pid, or -1. */
static long
helper_find_pid(const struct helper *h, pid_t pid)
{
	for (size_t i = 0; i < h->njobs; i++)
		if (h->jobs[i].pid == pid)
			return (long)i;
	return -1;
}

/* Index of job id, or -1. */
static long
helper_find_job(const struct helper *h, uint64_t id)
{
	for (size_t i = 0; i < h->njobs; i++)
		if (h->jobs[i].id == id)
			return (long)i;
	return -1;
}

/* What helper_spawn hands its child; err is the child's report. */
struct spawn_child {
	const struct spawn_settings *s;
	const char *path, *cwd;
	const int *fds;		/* become 0, 1, 2 and, if nfds is 4, 3 */
	int nfds;
	char **argv, **envp;
	int err;		/* set by the child when it cannot exec */
};

/*
 * In the child: become the program user for good (raw system calls: they
 * change this task only, which is all the clone child is), and die with
 * the helper. The parent-death signal is set after the switch, which
 * would clear it.
 */
static int
spawn_child_drop(const struct spawn_settings *s)
{
	gid_t g = s->gid;

	if (syscall(SYS_setgroups, 1, &g) < 0 ||
	    syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0 ||
	    syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0)
		return -1;
	return prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
}

/*
 * The clone child, on the helper's memory and its own small stack, with
 * every signal blocked: make the process a program's and exec it. Only
 * async-signal-safe calls; on failure leaves errno in a->err and returns
 * 127, which clone turns into the child's exit like _exit(127) (a noreturn
 * call would make ASan warn about a stack it does not know).
 */
static int
spawn_child_exec(void *arg)
{
	struct spawn_child *a = arg;
	struct sigaction sa;
	sigset_t none;
	int fd[4];

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(helper_ignored) /
	    sizeof(helper_ignored[0]); i++)
		if (sigaction(helper_ignored[i], &sa, NULL) < 0)
			goto fail;
	if (setsid() < 0)
		goto fail;
	/* Move a source that another dup2 would overwrite out of the way. */
	for (int i = 0; i < a->nfds; i++) {
		fd[i] = a->fds[i];
		if (fd[i] < a->nfds && fd[i] != i &&
		    (fd[i] = fcntl(fd[i], F_DUPFD_CLOEXEC, a->nfds)) < 0)
			goto fail;
	}
	for (int i = 0; i < a->nfds; i++) {
		if (fd[i] == i) {
			if (fcntl(i, F_SETFD, 0) < 0)
				goto fail;
		} else if (dup2(fd[i], i) < 0)
			goto fail;
	}
	if (a->s->drop && spawn_child_drop(a->s) < 0)
		goto fail;
	if (chdir(a->cwd) < 0 || close_range((unsigned)a->nfds, ~0U, 0) < 0)
		goto fail;
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		goto fail;
	execve(a->path, a->argv, a->envp);
fail:
	a->err = errno ? errno : EINVAL;
	return 127;
}

/*
 * Start the checked program: a clone sharing our memory that suspends us
 * until it has exec'd or failed (CLONE_VM | CLONE_VFORK), on a stack made
 * once in helper_setup. 0 with *pid set, or an errno with no child left.
 */
static int
helper_spawn(struct helper *h, const char *path, const char *cwd,
	const int *fds, int nfds, char **argv, char **envp, pid_t *pid)
{
	struct spawn_child a = { .s = &h->s, .path = path, .cwd = cwd,
	    .fds = fds, .nfds = nfds, .argv = argv, .envp = envp, .err = 0 };
	sigset_t all, old;
	pid_t p;
	int err;

	/* No signal may be handled in the child before it resets them. */
	sigfillset(&all);
	if (sigprocmask(SIG_SETMASK, &all, &old) < 0)
		return errno;
	p = clone(spawn_child_exec, h->stack + SPAWN_STACK,
	    CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	err = p < 0 ? errno : 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (p < 0)
		return err;
	if (a.err != 0) {
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
		return a.err;
	}
	*pid = p;
	return 0;
}

/* Split the strings of a request; false when malformed. */
static bool
helper_parse(const char *p, const char *end, const struct msg_hdr *hdr,
	const char **fixed, char **argv, char **envp)
{
	size_t total = 3 + (size_t)hdr->argc + hdr->envc;

	for (size_t i = 0; i < total; i++) {
		const char *z = memchr(p, '\0', (size_t)(end - p));

		if (z == NULL)
			return false;
		if (i < 3)
			fixed[i] = p;
		else if (i < 3 + hdr->argc)
			argv[i - 3] = (char *)p;
		else
			envp[i - 3 - hdr->argc] = (char *)p;
		p = z + 1;
	}
	argv[hdr->argc] = NULL;
	envp[hdr->envc] = NULL;
	return p == end;
}

/*
 * Keep a copy of a program's stdin write end. While the helper holds it,
 * the program cannot see end-of-file on a message the server has not
 * finished writing, even if the server dies: the helper then kills the
 * program's group first.
 */
static int
dup_hold(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, SPAWN_SOCK_FD + 1);
}

/* Close a job's held stdin write end. */
static void
job_release(struct helper_job *j)
{
	if (j->hold >= 0) {
		close(j->hold);
		j->hold = -1;
	}
}

/* With pinned directories: is dir the app dir and cwd one we allow? */
static bool
helper_pinned(const struct helper *h, const char *dir, const char *cwd)
{
	if (h->s.app_dir == NULL)
		return true;
	return strcmp(dir, h->s.app_dir) == 0 &&
	    (strcmp(cwd, h->s.app_dir) == 0 ||
	    (h->s.base_dir && strcmp(cwd, h->s.base_dir) == 0));
}

/* Handle one MSG_RUN: check, start, remember the job. */
static void
helper_run(struct helper *h, const struct msg_hdr *hdr, size_t len,
	int flags, const int *fds, int nfds)
{
	const char *fixed[3];
	char **argv = NULL, **envp = NULL;
	struct buf path = BUF_INIT;
	int fail, why, err = 0, prog_fds[4];
	int want = 3 + !!(hdr->flags & RUN_HOLD) + !!(hdr->flags & RUN_FD3);
	int nprog = 3, hold = -1;
	pid_t pid = -1;

	if (flags & MSG_TRUNC) {
		helper_fail(h, hdr->job, SPAWN_FAIL_EXEC, WHY_TOO_LONG, E2BIG);
		return;
	}
	if ((flags & MSG_CTRUNC) || nfds != want ||
	    (hdr->flags & ~(uint32_t)(RUN_HOLD | RUN_FD3)) ||
	    hdr->argc < 1 ||
	    hdr->argc > len || hdr->envc > len) {
		helper_fail(h, hdr->job, SPAWN_FAIL_EXEC, WHY_BAD_REQUEST, 0);
		return;
	}
	memcpy(prog_fds, fds, 3 * sizeof(int));
	if (hdr->flags & RUN_HOLD)
		hold = fds[3];
	if (hdr->flags & RUN_FD3)
		prog_fds[nprog++] = fds[want - 1];
	argv = calloc((size_t)hdr->argc + 1, sizeof(*argv));
	envp = calloc((size_t)hdr->envc + 1, sizeof(*envp));
	if (argv == NULL || envp == NULL) {
		helper_fail(h, hdr->job, SPAWN_FAIL_TEMP, WHY_TEMP, ENOMEM);
		goto out;
	}
	if (!helper_parse(h->rbuf + sizeof(*hdr), h->rbuf + len, hdr, fixed,
	    argv, envp)) {
		helper_fail(h, hdr->job, SPAWN_FAIL_EXEC, WHY_BAD_REQUEST, 0);
		goto out;
	}
	if (!helper_pinned(h, fixed[0], fixed[2])) {
		helper_fail(h, hdr->job, SPAWN_FAIL_EXEC, WHY_NOT_PINNED, 0);
		goto out;
	}
	if ((fail = trust_check(h, fixed[0], fixed[1], &path, &why,
	    &err)) != 0) {
		helper_fail(h, hdr->job, fail, why, err);
		goto out;
	}
	if (h->njobs == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		struct helper_job *v = realloc(h->jobs, cap * sizeof(*v));

		if (v == NULL) {
			helper_fail(h, hdr->job, SPAWN_FAIL_TEMP, WHY_TEMP,
			    ENOMEM);
			goto out;
		}
		h->jobs = v;
		h->cap = cap;
	}
	err = helper_spawn(h, path.data, fixed[2], prog_fds, nprog, argv, envp,
	    &pid);
	if (err == EAGAIN || err == ENOMEM || err == EMFILE || err == ENFILE) {
		helper_fail(h, hdr->job, SPAWN_FAIL_TEMP, WHY_TEMP, err);
	} else if (err != 0) {
		helper_fail(h, hdr->job, SPAWN_FAIL_EXEC, WHY_EXEC, err);
	} else {
		h->jobs[h->njobs++] = (struct helper_job){ hdr->job, pid,
		    hold >= 0 ? dup_hold(hold) : -1 };
		helper_send(h, REP_STARTED, hdr->job, 0, 0, 0, WHY_NONE, pid);
	}
out:
	free(argv);
	free(envp);
	buf_free(&path);
}

/* Read and handle every pending request; -EPIPE once the server left. */
static int
helper_requests(struct helper *h)
{
	union {
		char buf[CMSG_SPACE(SPAWN_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;

	for (;;) {
		struct iovec iov = { h->rbuf, SPAWN_REQ_MAX };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
		    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		struct msg_hdr hdr;
		int fds[SPAWN_MAX_FDS], nfds = 0;
		ssize_t n;
		long i;

		n = recvmsg(h->sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -EPIPE;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c;
		    c = CMSG_NXTHDR(&m, c)) {
			size_t k;

			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t j = 0; j < k; j++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + j * sizeof(int),
				    sizeof(int));
				if (nfds < SPAWN_MAX_FDS)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
		if ((size_t)n >= sizeof(hdr)) {
			memcpy(&hdr, h->rbuf, sizeof(hdr));
			if (hdr.type == MSG_RUN)
				helper_run(h, &hdr, (size_t)n, m.msg_flags,
				    fds, nfds);
			else if (hdr.type == MSG_KILL &&
			    (i = helper_find_job(h, hdr.job)) >= 0)
				kill(-h->jobs[i].pid, SIGKILL);
			else if (hdr.type == MSG_RELEASE &&
			    (i = helper_find_job(h, hdr.job)) >= 0)
				job_release(&h->jobs[i]);
		}
		for (int j = 0; j < nfds; j++)
			close(fds[j]);
	}
}

/*
 * Reap every child that exited. A job's leader is first waited for with
 * WNOWAIT: while it is a zombie its process group id cannot be reused, so
 * the group is killed then, and only then the leader is reaped. Other
 * children (orphans re-parented to us, the subreaper) are just reaped.
 */
static void
helper_reap(struct helper *h)
{
	for (;;) {
		siginfo_t si;
		int st;
		long i;

		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (si.si_pid == 0)
			return;
		i = helper_find_pid(h, si.si_pid);
		if (i >= 0)
			kill(-si.si_pid, SIGKILL);
		while (waitpid(si.si_pid, &st, 0) < 0 && errno == EINTR)
			;
		if (i < 0)
			continue;
		job_release(&h->jobs[i]);
		if (WIFSIGNALED(st))
			helper_reply(h, h->jobs[i].id, SPAWN_SIGNALED,
			    WTERMSIG(st), 0, WHY_NONE, si.si_pid);
		else
			helper_reply(h, h->jobs[i].id, SPAWN_EXITED,
			    WEXITSTATUS(st), 0, WHY_NONE, si.si_pid);
		h->jobs[i] = h->jobs[--h->njobs];
	}
}

/*
 * The server is gone: kill every job's group, reap the leaders, then reap
 * what dies within a second (the killed groups' members re-parented to
 * us), so that no zombie is handed to an init that might not reap; exit.
 */
static void __attribute__((noreturn))
helper_shutdown(struct helper *h)
{
	struct signalfd_siginfo ssi;
	struct pollfd p = { h->sfd, POLLIN, 0 };
	int st, rounds = 0;

	/* kill before letting go of stdin: no program sees a cut message */
	for (size_t i = 0; i < h->njobs; i++)
		kill(-h->jobs[i].pid, SIGKILL);
	for (size_t i = 0; i < h->njobs; i++) {
		while (waitpid(h->jobs[i].pid, &st, 0) < 0 && errno == EINTR)
			;
		job_release(&h->jobs[i]);
	}
	for (;;) {
		pid_t r;

		while ((r = waitpid(-1, &st, WNOHANG)) > 0)
			;
		if (r < 0 && errno == ECHILD)
			break;
		if (++rounds > 20 || h->sfd < 0)
			break;
		if (poll(&p, 1, 50) > 0)
			while (read(h->sfd, &ssi, sizeof(ssi)) > 0)
				;
	}
	_exit(0);
}

/* Give up the server's descriptors: sock becomes fd 3, 0-2 /dev/null. */
static int
helper_fds(int sock)
{
	int fd, nul;

	if (sock != SPAWN_SOCK_FD) {
		if (dup3(sock, SPAWN_SOCK_FD, O_CLOEXEC) < 0)
			return -errno;
	}
	if (close_range(SPAWN_SOCK_FD + 1, ~0U, 0) < 0)
		return -errno;
	if ((nul = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		return -errno;
	for (fd = 0; fd < 3; fd++)
		if (nul != fd && dup2(nul, fd) < 0)
			return -errno;
	if (nul > 2)
		close(nul);
	return 0;
}

/* Default dispositions, terminal signals ignored, SIGCHLD via signalfd. */
static int
helper_signals(struct helper *h)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	for (size_t i = 0; i < sizeof(helper_ignored) /
	    sizeof(helper_ignored[0]); i++)
		sigaction(helper_ignored[i], &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_SETMASK, &set, NULL) < 0)
		return -errno;
	h->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return h->sfd < 0 ? -errno : 0;
}

/* The capabilities the helper keeps: switch ids in children, kill them. */
#define HELPER_CAPS ((1u << CAP_SETUID) | (1u << CAP_SETGID) | \
	(1u << CAP_KILL))

/*
 * Keep root, but only for what starting programs needs: every capability
 * but HELPER_CAPS leaves the bounding, permitted and effective sets, and
 * file access is checked with the program user's ids and group (fsuid,
 * fsgid, groups = { gid }), so the trust checks and every path the helper
 * opens are judged as the program user would be.
 */
static int
helper_privs(const struct spawn_settings *s)
{
	struct __user_cap_header_struct hdr = {
	    .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	gid_t g = s->gid;

	if (setgroups(1, &g) < 0)
		return -errno;
	setfsgid(s->gid);
	setfsuid(s->uid);
	if ((uid_t)setfsuid((uid_t)-1) != s->uid ||
	    (gid_t)setfsgid((gid_t)-1) != s->gid)
		return -EPERM;
	for (int cap = 0; cap < 64; cap++) {
		if (cap < 32 && (HELPER_CAPS & (1u << cap)))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		return -errno;
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = HELPER_CAPS;
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return 0;
}

/*
 * Map the clone child's stack, with a guard page below it. Never unmapped:
 * the helper only ever leaves by _exit.
 */
static int
helper_stack(struct helper *h)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t guard = pg > 0 ? (size_t)pg : 4096;
	char *p;

	p = mmap(NULL, guard + SPAWN_STACK, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (mprotect(p, guard, PROT_NONE) < 0)
		return -errno;
	h->stack = p + guard;
	return 0;
}

/* Everything the helper does once, before it accepts requests. */
static int
helper_setup(struct helper *h, const struct spawn_settings *s, int sock)
{
	int r;

	h->s = *s;
	h->sock = sock;
	h->sfd = -1;
	if ((r = helper_fds(sock)) < 0)
		return r;
	h->sock = SPAWN_SOCK_FD;
	if ((r = helper_signals(h)) < 0)
		return r;
	if (chdir("/") < 0)
		return -errno;
	/* Leave the server's process group: terminal signals are its own. */
	setpgid(0, 0);
	prctl(PR_SET_NAME, "mailpipe-spawn", 0, 0, 0);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return -errno;
	if (s->drop && (r = helper_privs(s)) < 0)
		return r;
	umask(077);
	if ((h->rbuf = malloc(SPAWN_REQ_MAX)) == NULL)
		return -ENOMEM;
	return helper_stack(h);
}

/* The helper's whole life. */
static void __attribute__((noreturn))
helper_main(const struct spawn_settings *s, int sock)
{
	struct helper h;
	struct msg_reply ready = { .type = REP_READY };
	int r;

	memset(&h, 0, sizeof(h));
	r = helper_setup(&h, s, sock);
	ready.err = -r;
	while (send(h.sock, &ready, sizeof(ready), MSG_NOSIGNAL) < 0 &&
	    errno == EINTR)
		;
	if (r < 0)
		_exit(1);
	for (;;) {
		struct pollfd p[2] = { { h.sock, POLLIN, 0 },
		    { h.sfd, POLLIN, 0 } };
		struct signalfd_siginfo ssi;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			helper_shutdown(&h);
		}
		if (p[1].revents) {
			while (read(h.sfd, &ssi, sizeof(ssi)) > 0)
				;
			helper_reap(&h);
		}
		if (p[0].revents && helper_requests(&h) < 0)
			helper_shutdown(&h);
	}
}

/* Fork the helper and wait until it is ready (or failed to set up). */
int
spawn_helper_start(const struct spawn_settings *s, int *sock, pid_t *pid)
{
	struct msg_reply ready;
	int sv[2], size = SPAWN_SOCKBUF, st;
	ssize_t n;
	pid_t p;

	if (s->drop && s->uid == 0)
		return -EPERM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	}
	p = fork();
	if (p < 0) {
		n = -errno;
		close(sv[0]);
		close(sv[1]);
		return (int)n;
	}
	if (p == 0) {
		close(sv[0]);
		helper_main(s, sv[1]);
	}
	close(sv[1]);
	do
		n = recv(sv[0], &ready, sizeof(ready), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(ready) || ready.type != REP_READY ||
	    ready.err != 0) {
		bool told = n == (ssize_t)sizeof(ready) &&
		    ready.type == REP_READY && ready.err > 0;
		int e = told ? ready.err : EIO;

		close(sv[0]);
		while (waitpid(p, &st, 0) < 0 && errno == EINTR)
			;
		return -e;
	}
	*sock = sv[0];
	*pid = p;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The client, on the server's loop.                                    */

struct sjob {
	struct sjob *next, *prev;
	uint64_t id;
	spawn_cb cb;
	spawn_started_cb started;
	void *arg;
	struct msg_reply rep;		/* set when reported locally */
};

struct smsg {
	struct smsg *next;
	uint64_t run_job;		/* MSG_RUN: its job id, else 0 */
	char *data;
	size_t len;
	int fds[SPAWN_MAX_FDS];
	int nfds;
};

struct spawn_client {
	uv_loop_t *loop;
	uv_poll_t *poll;		/* on sock; a new one per helper */
	uv_idle_t idle;
	int sock;
	pid_t helper_pid;
	bool helper_reaped;
	struct logger *lg;
	uint64_t next_id;
	struct sjob *jobs;		/* sent or queued, awaiting a reply */
	struct sjob *local, *local_tail; /* to report from the idle handle */
	struct smsg *q, *q_tail;	/* messages waiting for UV_WRITABLE */
	unsigned active;
	int poll_events;
	int handles;			/* open libuv handles */
	bool dead, closing;
};

/* Log when a logger was given. */
static void
client_log(const struct spawn_client *c, enum log_level l, const char *fmt,
	...) __attribute__((format(printf, 3, 4)));

/* Log when a logger was given. */
static void
client_log(const struct spawn_client *c, enum log_level l, const char *fmt,
	...)
{
	va_list ap;

	if (c->lg == NULL)
		return;
	va_start(ap, fmt);
	log_vmsg(c->lg, LOG_PIPE, l, fmt, ap);
	va_end(ap);
}

/* Unlink j from the job list. */
static void
job_unlink(struct spawn_client *c, struct sjob *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		c->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->next = j->prev = NULL;
}

/* Find job id among the waiting ones. */
static struct sjob *
job_find(const struct spawn_client *c, uint64_t id)
{
	for (struct sjob *j = c->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

/* Call j's callback with the reply and free j. */
static void
job_report(struct spawn_client *c, struct sjob *j)
{
	struct spawn_exit ex = { .how = j->rep.how, .code = j->rep.code,
	    .err = j->rep.err, .pid = j->rep.pid, .why = NULL };
	struct buf why = BUF_INIT;
	int w = j->rep.why;

	if (ex.how == SPAWN_FAILED) {
		const char *t = w > WHY_NONE && w < WHY_COUNT ? why_text[w] :
		    "program could not be started";

		if (ex.err > 0 && (w == WHY_EXEC || w == WHY_TEMP ||
		    w == WHY_DIR_ACCESS || w == WHY_APP_ACCESS ||
		    w == WHY_APP_NOEXEC) && strerrordesc_np(ex.err) &&
		    buf_printf(&why, "%s: %s", t, strerrordesc_np(ex.err)) == 0)
			ex.why = why.data;
		else
			ex.why = t;
	}
	c->active--;
	j->cb(j->arg, &ex);
	buf_free(&why);
	free(j);
}

/* Report locally finished jobs (the idle handle's callback). */
static void on_idle(uv_idle_t *i);

/* Queue j to be reported from the idle handle (never synchronously). */
static void
job_local(struct spawn_client *c, struct sjob *j, int fail, int why, int err)
{
	j->rep = (struct msg_reply){ .type = REP_DONE, .how = SPAWN_FAILED,
	    .code = fail, .err = err, .why = why, .job = j->id };
	j->next = j->prev = NULL;
	if (c->local_tail)
		c->local_tail->next = j;
	else
		c->local = j;
	c->local_tail = j;
	if (!c->closing)
		uv_idle_start(&c->idle, on_idle);
}

/* Free queued messages and the descriptors duplicated for them. */
static void
queue_free(struct spawn_client *c)
{
	while (c->q) {
		struct smsg *m = c->q;

		c->q = m->next;
		for (int i = 0; i < m->nfds; i++)
			close(m->fds[i]);
		free(m->data);
		free(m);
	}
	c->q_tail = NULL;
}

/* Socket events (defined below). */
static void on_poll(uv_poll_t *p, int status, int events);

/* Poll for readable, plus writable while messages are queued. */
static void
poll_update(struct spawn_client *c)
{
	int ev = UV_READABLE | (c->q ? UV_WRITABLE : 0);

	if (c->dead || c->closing || ev == c->poll_events)
		return;
	if (uv_poll_start(c->poll, ev, on_poll) == 0)
		c->poll_events = ev;
}

/* The helper is gone: fail every waiting job (from the idle handle). */
static void
client_dead(struct spawn_client *c, int err)
{
	int st;

	if (c->dead)
		return;
	c->dead = true;
	client_log(c, LOG_FAILURES, "spawn helper %ld died (%s)",
	    (long)c->helper_pid, strerrordesc_np(err) ? strerrordesc_np(err) :
	    "?");
	uv_poll_stop(c->poll);
	c->poll_events = 0;
	queue_free(c);
	while (c->jobs) {
		struct sjob *j = c->jobs;

		job_unlink(c, j);
		job_local(c, j, SPAWN_FAIL_TEMP, WHY_HELPER_DIED, 0);
	}
	if (waitpid(c->helper_pid, &st, WNOHANG) == c->helper_pid)
		c->helper_reaped = true;
}

/* sendmsg one message with optional fds; 0 or -errno. */
static int
send_msg(int sock, const void *data, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(SPAWN_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)data, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

/* Send queued messages in order until the socket is full. */
static void
queue_flush(struct spawn_client *c)
{
	while (c->q && !c->dead) {
		struct smsg *m = c->q;
		int r = send_msg(c->sock, m->data, m->len, m->fds, m->nfds);
		struct sjob *j;

		if (r == -EAGAIN || r == -EWOULDBLOCK)
			break;
		c->q = m->next;
		if (c->q == NULL)
			c->q_tail = NULL;
		for (int i = 0; i < m->nfds; i++)
			close(m->fds[i]);
		if (r == -EMSGSIZE && m->run_job &&
		    (j = job_find(c, m->run_job)) != NULL) {
			job_unlink(c, j);
			job_local(c, j, SPAWN_FAIL_EXEC, WHY_TOO_LONG, E2BIG);
		} else if (r < 0) {
			client_dead(c, -r);
		}
		free(m->data);
		free(m);
	}
	poll_update(c);
}

/* Send now if nothing is queued, else queue (fds duplicated). */
static int
client_send(struct spawn_client *c, struct buf *msg, const int *fds, int nfds,
	uint64_t run_job)
{
	struct smsg *m;
	int r;

	if (c->q == NULL) {
		r = send_msg(c->sock, msg->data, msg->len, fds, nfds);
		if (r != -EAGAIN && r != -EWOULDBLOCK)
			return r;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -ENOMEM;
	for (int i = 0; i < nfds; i++) {
		if ((m->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0) {
			r = -errno;
			while (i-- > 0)
				close(m->fds[i]);
			free(m);
			return r;
		}
		m->nfds = i + 1;
	}
	m->len = msg->len;
	m->run_job = run_job;
	if ((r = buf_steal(msg, &m->data)) < 0) {
		for (int i = 0; i < m->nfds; i++)
			close(m->fds[i]);
		free(m);
		return r;
	}
	if (c->q_tail)
		c->q_tail->next = m;
	else
		c->q = m;
	c->q_tail = m;
	poll_update(c);
	return 0;
}

/* Read every reply from the helper and report the jobs. */
static void
client_read(struct spawn_client *c)
{
	while (!c->dead && !c->closing) {
		struct msg_reply rep;
		struct iovec iov = { &rep, sizeof(rep) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct sjob *j;
		ssize_t n;

		n = recvmsg(c->sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			client_dead(c, n < 0 ? errno : EPIPE);
			return;
		}
		if (n != (ssize_t)sizeof(rep) || (m.msg_flags & MSG_TRUNC) ||
		    (rep.type != REP_DONE && rep.type != REP_STARTED)) {
			client_log(c, LOG_PROBLEMS,
			    "spawn helper sent a malformed reply");
			continue;
		}
		if ((j = job_find(c, rep.job)) == NULL) {
			/* a cancelled job's late replies are expected */
			if (rep.job == 0 || rep.job > c->next_id)
				client_log(c, LOG_PROBLEMS,
				    "spawn helper reported unknown job %llu",
				    (unsigned long long)rep.job);
			continue;
		}
		if (rep.type == REP_STARTED) {
			if (j->started)
				j->started(j->arg, rep.pid);
			continue;
		}
		job_unlink(c, j);
		j->rep = rep;
		job_report(c, j);
	}
}

/* Socket events: replies, room to send, or the helper's end. */
static void
on_poll(uv_poll_t *p, int status, int events)
{
	struct spawn_client *c = p->data;

	if (status < 0) {
		client_dead(c, -status);
		return;
	}
	if (events & UV_READABLE)
		client_read(c);
	if ((events & UV_WRITABLE) && !c->dead && !c->closing)
		queue_flush(c);
}

/* Report jobs that ended without the helper (asynchronously). */
static void
on_idle(uv_idle_t *i)
{
	struct spawn_client *c = i->data;

	while (c->local && !c->closing) {
		struct sjob *j = c->local;

		c->local = j->next;
		if (c->local == NULL)
			c->local_tail = NULL;
		job_report(c, j);
	}
	if (c->local == NULL || c->closing)
		uv_idle_stop(i);
}

/* Free c once all its handles are closed. */
static void on_handle_closed(uv_handle_t *h);

/* A poll handle closed: free it, then count it as the others. */
static void
on_poll_closed(uv_handle_t *h)
{
	on_handle_closed(h);
	free(h);
}

/* Close the current poll handle and forget the socket under it. */
static void
poll_drop(struct spawn_client *c)
{
	if (c->poll) {
		uv_poll_stop(c->poll);
		uv_close((uv_handle_t *)c->poll, on_poll_closed);
		c->poll = NULL;
	}
	c->poll_events = 0;
}

/* Watch sock for readability with a new poll handle. */
static int
poll_attach(struct spawn_client *c, int sock)
{
	uv_poll_t *p = calloc(1, sizeof(*p));
	int r;

	if (p == NULL)
		return -ENOMEM;
	if ((r = uv_poll_init(c->loop, p, sock)) < 0) {
		free(p);
		return r;
	}
	p->data = c;
	c->handles++;
	c->poll = p;
	if ((r = uv_poll_start(p, UV_READABLE, on_poll)) < 0) {
		poll_drop(c);
		return r;
	}
	c->poll_events = UV_READABLE;
	return 0;
}

/* Wrap the server's end of the socket. */
int
spawn_client_open(uv_loop_t *loop, int sock, pid_t helper_pid,
	struct logger *lg, struct spawn_client **out)
{
	struct spawn_client *c = calloc(1, sizeof(*c));
	int r;

	if (c == NULL)
		return -ENOMEM;
	c->loop = loop;
	c->sock = sock;
	c->helper_pid = helper_pid;
	c->lg = lg;
	uv_idle_init(loop, &c->idle);
	c->idle.data = c;
	c->handles = 1;
	if ((r = poll_attach(c, sock)) < 0) {
		/* The caller keeps sock and the helper. */
		uv_close((uv_handle_t *)&c->idle, on_handle_closed);
		return r;
	}
	*out = c;
	return 0;
}

/* Switch to a new helper's socket. */
int
spawn_client_reconnect(struct spawn_client *c, int sock, pid_t helper_pid)
{
	int r;

	if (c->closing) {
		close(sock);
		return -ECANCELED;
	}
	if (!c->dead)
		client_dead(c, EPIPE);
	poll_drop(c);
	close(c->sock);
	c->sock = sock;
	c->helper_pid = helper_pid;
	c->helper_reaped = false;
	c->dead = false;
	if ((r = poll_attach(c, sock)) < 0) {
		c->dead = true;
		return r;
	}
	client_log(c, LOG_MAJOR, "spawn helper %ld ready", (long)helper_pid);
	return 0;
}

/* Append a NUL-terminated string to the request. */
static int
put_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s) + 1);
}

/* Ask the helper to start a program. */
int
spawn_run(struct spawn_client *c, const struct spawn_req *r, spawn_cb cb,
	void *arg, uint64_t *job)
{
	struct msg_hdr hdr = { .type = MSG_RUN };
	struct buf msg = BUF_INIT;
	struct sjob *j;
	int fds[SPAWN_MAX_FDS] = { r->fd_in, r->fd_out, r->fd_err }, e = 0;
	int nfds = 3;

	if (c->dead || c->closing)
		return -EPIPE;
	if (r->dir == NULL || r->name == NULL || r->cwd == NULL ||
	    r->argv == NULL || r->argv[0] == NULL || r->envp == NULL ||
	    r->fd_in < 0 || r->fd_out < 0 || r->fd_err < 0 || cb == NULL ||
	    (r->has_fd_3 && r->fd_3 < 0))
		return -EINVAL;
	if (r->fd_hold > 2) {
		hdr.flags |= RUN_HOLD;
		fds[nfds++] = r->fd_hold;
	}
	if (r->has_fd_3) {
		hdr.flags |= RUN_FD3;
		fds[nfds++] = r->fd_3;
	}
	while (r->argv[hdr.argc])
		hdr.argc++;
	while (r->envp[hdr.envc])
		hdr.envc++;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->id = hdr.job = ++c->next_id;
	j->cb = cb;
	j->started = r->started;
	j->arg = arg;
	e = buf_append(&msg, &hdr, sizeof(hdr));
	if (e == 0)
		e = put_str(&msg, r->dir);
	if (e == 0)
		e = put_str(&msg, r->name);
	if (e == 0)
		e = put_str(&msg, r->cwd);
	for (uint32_t i = 0; e == 0 && i < hdr.argc; i++)
		e = put_str(&msg, r->argv[i]);
	for (uint32_t i = 0; e == 0 && i < hdr.envc; i++)
		e = put_str(&msg, r->envp[i]);
	if (e < 0) {
		buf_free(&msg);
		free(j);
		return e;
	}
	c->active++;
	*job = j->id;
	if (msg.len > SPAWN_REQ_MAX) {
		job_local(c, j, SPAWN_FAIL_EXEC, WHY_TOO_LONG, E2BIG);
		buf_free(&msg);
		return 0;
	}
	e = client_send(c, &msg, fds, nfds, j->id);
	buf_free(&msg);
	if (e == -EMSGSIZE) {
		job_local(c, j, SPAWN_FAIL_EXEC, WHY_TOO_LONG, E2BIG);
		return 0;
	}
	if (e < 0) {
		c->active--;
		free(j);
		if (e != -ENOMEM && e != -EMFILE && e != -ENFILE) {
			client_dead(c, -e);
			return -EPIPE;
		}
		return e;
	}
	j->next = c->jobs;
	if (c->jobs)
		c->jobs->prev = j;
	c->jobs = j;
	return 0;
}

/* Send a job message (MSG_KILL, MSG_RELEASE) for a job still running. */
static int
job_msg(struct spawn_client *c, uint32_t type, uint64_t job)
{
	struct msg_hdr hdr = { .type = type, .job = job };
	struct buf msg = BUF_INIT;
	int e;

	if (c->dead || c->closing || job_find(c, job) == NULL)
		return 0;
	if ((e = buf_append(&msg, &hdr, sizeof(hdr))) == 0)
		e = client_send(c, &msg, NULL, 0, 0);
	buf_free(&msg);
	if (e < 0 && e != -ENOMEM) {
		client_dead(c, -e);
		return -EPIPE;
	}
	return e;
}

/* SIGKILL a job's whole process group. */
int
spawn_kill(struct spawn_client *c, uint64_t job)
{
	return job_msg(c, MSG_KILL, job);
}

/* Kill a job and report it now as not started (SPAWN_FAIL_TEMP). */
int
spawn_cancel(struct spawn_client *c, uint64_t job)
{
	struct sjob *j = job_find(c, job);
	int e;

	if (j == NULL)
		return 0;
	e = job_msg(c, MSG_KILL, job);
	if ((j = job_find(c, job)) != NULL) {
		job_unlink(c, j);
		job_local(c, j, SPAWN_FAIL_TEMP, WHY_CANCELLED, 0);
	}
	return e;
}

/* The server has written all of a job's stdin: drop the helper's copy. */
int
spawn_release(struct spawn_client *c, uint64_t job)
{
	return job_msg(c, MSG_RELEASE, job);
}

/* Jobs started and not yet reported. */
unsigned
spawn_active(const struct spawn_client *c)
{
	return c->active;
}

/* Free c once both handles are closed. */
static void
on_handle_closed(uv_handle_t *h)
{
	struct spawn_client *c = h->data;

	if (--c->handles == 0)
		free(c);
}

/* Stop the helper and free the client (after the handles close). */
void
spawn_client_close(struct spawn_client *c)
{
	int st;

	if (c == NULL || c->closing)
		return;
	c->closing = true;
	poll_drop(c);
	close(c->sock);
	c->sock = -1;
	queue_free(c);
	if (!c->helper_reaped && c->helper_pid > 0) {
		while (waitpid(c->helper_pid, &st, 0) < 0 && errno == EINTR)
			;
		c->helper_reaped = true;
	}
	/* Nothing will be reported by the helper any more. */
	while (c->jobs) {
		struct sjob *j = c->jobs;

		job_unlink(c, j);
		job_local(c, j, SPAWN_FAIL_TEMP, WHY_HELPER_STOPPED, 0);
	}
	while (c->local) {
		struct sjob *j = c->local;

		c->local = j->next;
		if (c->local == NULL)
			c->local_tail = NULL;
		job_report(c, j);
	}
	uv_idle_stop(&c->idle);
	uv_close((uv_handle_t *)&c->idle, on_handle_closed);
}
