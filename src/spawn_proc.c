/*
 * spawn_proc: the process attributes the spawn helper decides, for itself
 * and for every program. The helper's own: descriptors (only its socket,
 * as fd 3, and /dev/null as 0-2), default signal dispositions but the
 * terminal ones ignored, SIGCHLD through a signalfd, its own process
 * group, the child subreaper, and, when privileges are dropped, only
 * CAP_SETUID, CAP_SETGID and CAP_KILL with the program user's file system
 * ids and group. A program's: a vfork-style clone that takes its own
 * session, resets every signal, keeps only fds 0/1/2 (and 3), switches to
 * the program user for good with SIGKILL at the helper's death, changes
 * to the working directory asked for and execs with the environment
 * given, nothing inherited.
 */
#include "spawn_helper_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn_proto.h"

/* Stack of the clone child that execs a program (see spawn_proc_start). */
#define SPAWN_STACK (64 * 1024)

/* The signals the helper ignores; every other one is at its default. */
static const int helper_ignored[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM,
    SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2 };

/* What spawn_proc_start hands its child; err is the child's report. */
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
 * once in spawn_proc_setup. 0 with *pid set, or an errno with no child left.
 */
int
spawn_proc_start(struct helper *h, const char *path, const char *cwd,
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
int
spawn_proc_setup(struct helper *h, const struct spawn_settings *s, int sock)
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
