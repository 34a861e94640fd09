/*
 * master: the root part of mailpiped after start-up (docs/SECURITY.md). It
 * runs no event loop and reads no input but signals and its children's
 * wait statuses. It starts the spawn helper and the daemon (a fork that
 * switches to the daemon user and runs the server), and then only
 * supervises them:
 *  - a spawn helper that dies or is stopped is killed and replaced at
 *    once, and the daemon is handed the new helper's socket over the
 *    master link (the daemon defers the deliveries that were running);
 *  - a daemon killed by a signal is started again (with a new helper),
 *    at most MASTER_DAEMON_RESTARTS times a minute;
 *  - SIGTERM and SIGINT are passed on to the daemon as SIGTERM, SIGHUP as
 *    SIGHUP; when the daemon exits, the master waits for the helpers to
 *    go and returns the daemon's exit status.
 * The master link is one-way: the master sends, never reads what the
 * daemon sends.
 */
#ifndef MP_MASTER_H
#define MP_MASTER_H

#include <sys/types.h>

#include "log.h"
#include "spawn.h"

#define MASTER_DAEMON_RESTARTS 3

/*
 * The daemon's life, in the forked child: ctl is its end of the master
 * link, sock and helper the spawn helper's socket and pid. Returns the
 * exit status.
 */
typedef int (*master_daemon_fn)(void *arg, int ctl, int sock, pid_t helper);

struct master_settings {
	const struct spawn_settings *spawn;	/* for every helper */
	struct logger *log;
	master_daemon_fn daemon;
	void *arg;
};

/*
 * Start the helper and the daemon and supervise them until the daemon
 * has exited; returns its exit status (EX_SOFTWARE when it died of a
 * signal and could not be restarted). Call from a process without
 * threads.
 */
int master_run(const struct master_settings *ms);

/*
 * Daemon side of the master link: receive a new helper's socket. 0 with
 * *sock and *helper set, -EAGAIN when nothing is there, -EPIPE when the
 * master is gone, -EBADMSG for anything malformed (ignored).
 */
int master_link_recv(int ctl, int *sock, pid_t *helper);

#endif
