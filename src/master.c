/*
 * master: the root supervisor (see master.h). One poll on a signalfd; the
 * only state is the pids of the daemon and the current helper, the
 * daemon's end of the master link, and restart counts. Never parses
 * anything a child sends; never exits but by returning from master_run.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

/* What the master link carries: a new helper (its socket attached). */
struct link_msg {
	uint32_t type;
	int32_t pid;
};

#define LINK_HELPER 1

/* Helper restarts within HELPER_WINDOW_S before the master slows down. */
#define HELPER_BURST 5
#define HELPER_WINDOW_S 10
/* How long the master waits for helpers to go once the daemon is gone. */
#define MASTER_DRAIN_MS 10000

struct master {
	const struct master_settings *ms;
	int sfd;			/* signalfd */
	sigset_t old;			/* the mask before master_run */
	pid_t daemon, helper;
	int ctl;			/* our end of the link, or -1 */
	bool stopping, daemon_done;
	int code;			/* the daemon's exit status */
	time_t helper_times[HELPER_BURST];	/* last restarts */
	unsigned helper_n;
	time_t daemon_times[MASTER_DAEMON_RESTARTS];
	unsigned daemon_n;
	bool helper_due;		/* a helper restart is waiting */
};

/* Monotonic seconds. */
static time_t
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Record a restart in a ring of n times; false when n fell in window s. */
static bool
restart_ok(time_t *times, unsigned n, unsigned *count, time_t window)
{
	time_t t = now_s();
	bool ok = *count < n || t - times[*count % n] >= window;

	if (ok)
		times[(*count)++ % n] = t;
	return ok;
}

/* Send the daemon a helper's socket; the master keeps no copy. */
static void
link_send(struct master *m, int sock, pid_t pid)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct link_msg lm = { LINK_HELPER, (int32_t)pid };
	struct iovec iov = { &lm, sizeof(lm) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm;

	memset(&ctl, 0, sizeof(ctl));
	cm = CMSG_FIRSTHDR(&h);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &sock, sizeof(int));
	while (sendmsg(m->ctl, &h, MSG_NOSIGNAL) < 0) {
		if (errno == EINTR)
			continue;
		log_msg(m->ms->log, LOG_SYSTEM, LOG_FAILURES, "cannot hand the "
		    "new spawn helper to the daemon: %s", strerror(errno));
		break;
	}
	close(sock);
}

/* Start a helper; *sock is the daemon's end. */
static int
helper_start(struct master *m, int *sock)
{
	int r = spawn_helper_start(m->ms->spawn, sock, &m->helper);

	if (r < 0) {
		m->helper = 0;
		log_msg(m->ms->log, LOG_SYSTEM, LOG_FAILURES,
		    "cannot start the spawn helper: %s", strerror(-r));
	}
	return r;
}

/* Replace a dead helper now, or later if it keeps dying. */
static void
helper_restart(struct master *m)
{
	int sock;

	m->helper_due = false;
	if (m->stopping || m->daemon == 0)
		return;
	if (!restart_ok(m->helper_times, HELPER_BURST, &m->helper_n,
	    HELPER_WINDOW_S)) {
		m->helper_due = true;	/* poll wakes us in a second */
		return;
	}
	if (helper_start(m, &sock) < 0) {
		m->helper_due = true;
		return;
	}
	log_msg(m->ms->log, LOG_SYSTEM, LOG_MAJOR, "spawn helper %ld started",
	    (long)m->helper);
	link_send(m, sock, m->helper);
}

/* The daemon's child side of the fork: clean signals, then run it. */
static void __attribute__((noreturn))
daemon_child(struct master *m, int ctl, int sock, pid_t helper)
{
	struct sigaction sa;

	close(m->sfd);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && sig != SIGPIPE)
			sigaction(sig, &sa, NULL);
	sigprocmask(SIG_SETMASK, &m->old, NULL);
	_exit(m->ms->daemon(m->ms->arg, ctl, sock, helper));
}

/* Start a helper and a daemon with a new link. */
static int
daemon_start(struct master *m)
{
	int sv[2], sock;
	pid_t p;

	if (m->ctl >= 0)
		close(m->ctl);
	m->ctl = -1;
	if (helper_start(m, &sock) < 0)
		return -EAGAIN;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		close(sock);
		return -errno;
	}
	if ((p = fork()) < 0) {
		int e = -errno;

		close(sv[0]);
		close(sv[1]);
		close(sock);
		return e;
	}
	if (p == 0) {
		close(sv[0]);
		daemon_child(m, sv[1], sock, m->helper);
	}
	close(sv[1]);
	close(sock);
	m->ctl = sv[0];
	m->daemon = p;
	return 0;
}

/* A child changed state: the daemon, the current helper or an old one. */
static void
on_child(struct master *m, const siginfo_t *si)
{
	pid_t pid = si->si_pid;
	bool dead = si->si_code == CLD_EXITED || si->si_code == CLD_KILLED ||
	    si->si_code == CLD_DUMPED;

	if (pid == m->helper && si->si_code == CLD_STOPPED) {
		log_msg(m->ms->log, LOG_SYSTEM, LOG_FAILURES, "spawn helper %ld "
		    "was stopped (signal %d): killing and replacing it",
		    (long)pid, si->si_status);
		kill(pid, SIGKILL);
		return;
	}
	if (!dead)
		return;
	if (pid == m->helper) {
		m->helper = 0;
		if (m->daemon == 0 || m->stopping)
			return;
		log_msg(m->ms->log, LOG_SYSTEM, LOG_FAILURES, "spawn helper %ld "
		    "%s %d: replacing it", (long)pid, si->si_code == CLD_EXITED ?
		    "exited with status" : "was killed by signal",
		    si->si_status);
		helper_restart(m);
		return;
	}
	if (pid != m->daemon)
		return;		/* an old helper going */
	m->daemon = 0;
	if (si->si_code == CLD_EXITED) {
		m->code = si->si_status;
		m->daemon_done = true;
		return;
	}
	log_msg(m->ms->log, LOG_SYSTEM, LOG_FAILURES, "daemon %ld was killed "
	    "by signal %d", (long)pid, si->si_status);
	m->code = EX_SOFTWARE;
	if (m->stopping || !restart_ok(m->daemon_times,
	    MASTER_DAEMON_RESTARTS, &m->daemon_n, 60)) {
		m->daemon_done = true;
		return;
	}
	/* the old helper goes when it sees the old daemon's end of its
	   socket close; a new pair starts now */
	m->helper = 0;
	if (daemon_start(m) < 0)
		m->daemon_done = true;
	else
		log_msg(m->ms->log, LOG_SYSTEM, LOG_MAJOR, "daemon restarted "
		    "(pid %ld)", (long)m->daemon);
}

/* Reap every child that changed state. */
static void
reap(struct master *m)
{
	for (;;) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WNOHANG) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (si.si_pid == 0)
			return;
		on_child(m, &si);
	}
}

/* A signal for the master. */
static void
on_signal(struct master *m, int sig)
{
	if (sig == SIGCHLD) {
		reap(m);
	} else if (sig == SIGHUP) {
		if (m->daemon)
			kill(m->daemon, SIGHUP);
	} else if (m->daemon) {
		m->stopping = true;
		kill(m->daemon, SIGTERM);
	}
}

/* The daemon is gone: let the helpers go (they see EOF), then return. */
static void
drain(struct master *m)
{
	struct timespec t0, t;
	siginfo_t si;

	if (m->ctl >= 0)
		close(m->ctl);
	m->ctl = -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { m->sfd, POLLIN, 0 };
		struct signalfd_siginfo ssi;
		long ms;

		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0 &&
		    errno == ECHILD)
			return;
		if (si.si_pid != 0) {
			if (si.si_pid == m->helper)
				m->helper = 0;
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000 +
		    (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= MASTER_DRAIN_MS) {
			/* a helper that does not go */
			log_msg(m->ms->log, LOG_SYSTEM, LOG_FAILURES, "spawn "
			    "helper still running after %ds: killing it",
			    MASTER_DRAIN_MS / 1000);
			if (m->helper && kill(m->helper, SIGKILL) == 0)
				while (waitpid(m->helper, NULL, 0) < 0 &&
				    errno == EINTR)
					;
			return;
		}
		if (poll(&p, 1, (int)(MASTER_DRAIN_MS - ms)) > 0)
			while (read(m->sfd, &ssi, sizeof(ssi)) > 0)
				;
	}
}

/* Supervise until the daemon has exited. */
int
master_run(const struct master_settings *ms)
{
	struct master m;
	sigset_t set;

	memset(&m, 0, sizeof(m));
	m.ms = ms;
	m.ctl = -1;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, &m.old) < 0 ||
	    (m.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_msg(ms->log, LOG_SYSTEM, LOG_FAILURES, "cannot watch "
		    "signals: %s", strerror(errno));
		return EX_OSERR;
	}
	if (daemon_start(&m) < 0) {
		close(m.sfd);
		sigprocmask(SIG_SETMASK, &m.old, NULL);
		return EX_OSERR;
	}
	while (!m.daemon_done) {
		struct pollfd p = { m.sfd, POLLIN, 0 };
		struct signalfd_siginfo ssi;

		if (poll(&p, 1, m.helper_due ? 1000 : -1) < 0 &&
		    errno != EINTR)
			break;
		while (read(m.sfd, &ssi, sizeof(ssi)) == sizeof(ssi))
			on_signal(&m, (int)ssi.ssi_signo);
		/* a signal may have been merged into one already read */
		reap(&m);
		if (m.helper_due)
			helper_restart(&m);
	}
	drain(&m);
	close(m.sfd);
	sigprocmask(SIG_SETMASK, &m.old, NULL);
	return m.code;
}

/* Receive a new helper's socket from the master. */
int
master_link_recv(int ctl, int *sock, pid_t *helper)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct link_msg lm;
	struct iovec iov = { &lm, sizeof(lm) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf) };
	struct cmsghdr *cm;
	int fd = -1;
	ssize_t n;

	do
		n = recvmsg(ctl, &h, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN :
		    -EPIPE;
	if (n == 0)
		return -EPIPE;
	cm = CMSG_FIRSTHDR(&h);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	if (n != (ssize_t)sizeof(lm) || lm.type != LINK_HELPER || fd < 0 ||
	    (h.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (fd >= 0)
			close(fd);
		return -EBADMSG;
	}
	*sock = fd;
	*helper = (pid_t)lm.pid;
	return 0;
}
