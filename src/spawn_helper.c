/*
 * spawn_helper: the spawn helper process (spawn.h has the whole story).
 * Forked by the root master before any thread exists; keeps only
 * CAP_SETUID, CAP_SETGID and CAP_KILL and the program user's file system
 * ids when privileges are dropped. It trust-checks the application
 * directory and program as the program user (spawn_trust.c), refuses
 * directories other than the pinned ones, starts programs with a
 * vfork-style clone (own session, default signals, empty mask, fds 0/1/2
 * only, given cwd and environment, the program user's ids set in the
 * child just before exec, SIGKILL when the helper dies), holds a
 * program's stdin write end until released, kills a job's whole process
 * group when its leader exits, reaps everything and exits when its client
 * goes away. Never runs a shell, never lets a program inherit a
 * descriptor, environment, signal disposition or privilege, never trusts
 * a request beyond its pinned directories.
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
#include "spawn_proto.h"
#include "spawn_trust.h"

/* The helper's end of the socket, after it closed everything else. */
#define SPAWN_SOCK_FD 3
/* Stack of the clone child that execs a program (see helper_spawn). */
#define SPAWN_STACK (64 * 1024)

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
	if ((fail = spawn_trust_check(h->s.uid, fixed[0], fixed[1], &path,
	    &why, &err)) != 0) {
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
