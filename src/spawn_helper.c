/*
 * spawn_helper: the spawn helper process (spawn.h has the whole story).
 * Forked by the root master before any thread exists; keeps only
 * CAP_SETUID, CAP_SETGID and CAP_KILL and the program user's file system
 * ids when privileges are dropped. It trust-checks the application
 * directory and program as the program user (spawn_trust.c), refuses
 * directories other than the pinned ones, starts programs with a
 * vfork-style clone (own session, default signals, empty mask, fds 0/1/2
 * only, given cwd and environment, the program user's ids set in the
 * child just before exec, SIGKILL when the helper dies; spawn_proc.c sets
 * up its own process and theirs), holds a program's stdin write end until
 * released, kills a job's whole process group when its leader exits,
 * reaps everything and exits when its client goes away. Never runs a
 * shell, never lets a program inherit a descriptor, environment, signal
 * disposition or privilege, never trusts a request beyond its pinned
 * directories.
 */
#include "spawn_helper_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "spawn_proto.h"
#include "spawn_trust.h"

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
	err = spawn_proc_start(h, path.data, fixed[2], prog_fds, nprog, argv,
	    envp, &pid);
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

/* The helper's whole life. */
static void __attribute__((noreturn))
helper_main(const struct spawn_settings *s, int sock)
{
	struct helper h;
	struct msg_reply ready = { .type = REP_READY };
	int r;

	memset(&h, 0, sizeof(h));
	r = spawn_proc_setup(&h, s, sock);
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

