/*
 * spawn: starts delivery programs. A helper process, forked by the root
 * master before any thread exists, owns every program. When privileges are
 * dropped it stays root (docs/SECURITY.md) with only CAP_SETUID,
 * CAP_SETGID and CAP_KILL, and file system ids of the program user (so
 * every trust check is made as that user); each program's child switches
 * to the program user for good just before exec, so no process a program
 * can signal or trace belongs to the server. It is the child subreaper,
 * and starts programs with a vfork-style clone (CLONE_VM | CLONE_VFORK, a
 * small child that execs at once): own session and process group
 * (setsid), default signal dispositions, empty signal mask, only fds
 * 0/1/2 open (and 3 when asked for), umask 077, the working directory
 * asked for, the environment given (never inherited), SIGKILL when the
 * helper dies. Before starting a program it checks the application
 * directory and the program (SPEC "Application directory trust"); with
 * app_dir set it refuses any other directory, and any working directory
 * but app_dir and base_dir. When a program's main process exits, the
 * helper kills what is left of its process group, then reaps it; orphans
 * re-parented to the helper are reaped too, so no zombie is left. If its
 * client goes away (socket EOF), the helper kills every program's group
 * and exits.
 *
 * The server side (spawn_client) talks to the helper over a SOCK_SEQPACKET
 * socket watched by the libuv loop: requests carry argv/env/cwd and the
 * child's fds (SCM_RIGHTS); replies say when the program started (its pid)
 * and later its wait status. A client can be handed the socket of a new
 * helper after the old one died (spawn_client_reconnect). All functions
 * return 0 or -errno.
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
	bool drop;		/* programs run as uid/gid (helper is root) */
	uid_t uid;		/* program user (checked in trust rules) */
	gid_t gid;		/* its primary group; groups = { gid } */
	const char *app_dir;	/* NULL, or the only directory a request
				   may name (the server pins [pipe] app-dir) */
	const char *base_dir;	/* with app_dir: the other working
				   directory a request may ask for */
};

/*
 * Fork the helper. Call before the loop runs or any thread exists. On
 * success *sock is the server's end of the socket (CLOEXEC) and *pid the
 * helper's pid. The helper closes every other descriptor it inherited.
 * s and its strings are copied by the fork.
 */
int spawn_helper_start(const struct spawn_settings *s, int *sock, pid_t *pid);

struct spawn_client;

/* Wrap the server's end of the socket; lg may be NULL. */
int spawn_client_open(uv_loop_t *loop, int sock, pid_t helper_pid,
	struct logger *lg, struct spawn_client **out);
/*
 * Use a new helper's socket from now on (the master restarted it): every
 * job still waiting on the old helper ends as SPAWN_FAILED with
 * SPAWN_FAIL_TEMP ("spawn helper died"), never as a program failure.
 * sock is taken, even on error.
 */
int spawn_client_reconnect(struct spawn_client *c, int sock,
	pid_t helper_pid);
/* Called when the helper says the program has started (from the loop). */
typedef void (*spawn_started_cb)(void *arg, pid_t pid);

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
	bool has_fd_3;		/* the program gets an fd 3: */
	int fd_3;		/* this one (e.g. its [FILE] copy) */
	spawn_started_cb started;	/* NULL, or called once when the
					   program has started, before cb */
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
/*
 * Give up on a job whose program has not started (or did not report):
 * ask the helper to kill it, and report it at once, from the loop, as
 * SPAWN_FAILED with SPAWN_FAIL_TEMP; what the helper says of it later is
 * ignored.
 */
int spawn_cancel(struct spawn_client *c, uint64_t job);
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
