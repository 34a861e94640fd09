/*
 * spawn: starts delivery programs. A helper process, forked from mailpiped
 * before the event loop starts any thread, owns every program: it runs as
 * the program user (privileges dropped once, for good) with umask 077, is
 * the child subreaper, and starts programs with a vfork-style clone
 * (CLONE_VM | CLONE_VFORK, a small child that execs at once): own session
 * and process group (setsid), default signal dispositions, empty signal
 * mask, only fds 0/1/2 open, the working directory asked for, the
 * environment given (never inherited). Before starting a program it checks
 * the application directory and the program (SPEC "Application directory
 * trust"). When a program's main process exits, the helper kills what is
 * left of its process group, then reaps it; orphans re-parented to the
 * helper are reaped too, so no zombie is left. If mailpiped goes away
 * (socket EOF), the helper kills every program's group and exits.
 *
 * The server side (spawn_client) talks to the helper over a SOCK_SEQPACKET
 * socket watched by the libuv loop: requests carry argv/env/cwd and the
 * child's three fds (SCM_RIGHTS); replies carry the pid and later the wait
 * status. All functions return 0 or -errno.
 */
#ifndef MP_SPAWN_H
#define MP_SPAWN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "log.h"
#include "result.h"

struct spawn_settings {
	bool drop;		/* switch to uid/gid (server started as root) */
	uid_t uid;		/* program user (checked in trust rules) */
	gid_t gid;		/* its primary group; groups = { gid } */
};

/*
 * Fork the helper. Call before the loop runs or any thread exists. On
 * success *sock is the server's end of the socket (CLOEXEC) and *pid the
 * helper's pid. The helper closes every other descriptor it inherited.
 */
int spawn_helper_start(const struct spawn_settings *s, int *sock, pid_t *pid);

struct spawn_client;

/* Wrap the server's end of the socket; lg may be NULL. */
int spawn_client_open(uv_loop_t *loop, int sock, pid_t helper_pid,
	struct logger *lg, struct spawn_client **out);

struct spawn_req {
	const char *dir;	/* application directory (trust-checked) */
	const char *name;	/* program file name inside dir */
	char *const *argv;	/* argv[0] is the program name */
	char *const *envp;	/* the complete environment */
	const char *cwd;	/* working directory of the program */
	int fd_in, fd_out, fd_err;	/* become 0, 1, 2; the caller keeps
					   its copies and may close them as
					   soon as spawn_run returns */
	int fd_hold;		/* the write end of the program's stdin pipe,
				   or <= 2 for none (a zero-initialised
				   request holds nothing): the helper
				   holds a copy until
				   spawn_release (or the program ends), so
				   the program never sees end-of-file on a
				   message the server did not finish, even
				   when the server dies mid-way */
};

enum spawn_how {
	SPAWN_EXITED,		/* code = exit status */
	SPAWN_SIGNALED,		/* code = signal number */
	SPAWN_FAILED,		/* code = enum run_spawn_fail, err = errno */
};

struct spawn_exit {
	enum spawn_how how;
	int code;
	int err;		/* errno behind SPAWN_FAILED */
	pid_t pid;		/* 0 when it never started */
	const char *why;	/* SPAWN_FAILED: constant explanation */
};

/* Called once per job, when the program has ended or failed to start. */
typedef void (*spawn_cb)(void *arg, const struct spawn_exit *ex);

/*
 * Ask the helper to start a program. The request is copied (fds are
 * duplicated) so the caller's strings and fds need not outlive the call.
 * *job identifies it for spawn_kill. cb always runs exactly once, from the
 * loop, never from inside spawn_run.
 */
int spawn_run(struct spawn_client *c, const struct spawn_req *r, spawn_cb cb,
	void *arg, uint64_t *job);
/* All of the job's stdin is written: the helper drops its fd_hold copy. */
int spawn_release(struct spawn_client *c, uint64_t job);
/* SIGKILL the job's whole process group (no-op if already gone). */
int spawn_kill(struct spawn_client *c, uint64_t job);
/* Jobs started and not yet reported. */
unsigned spawn_active(const struct spawn_client *c);
/*
 * Stop: close the socket (the helper kills what still runs and exits),
 * reap the helper, free c once libuv handles are closed.
 */
void spawn_client_close(struct spawn_client *c);

#endif
