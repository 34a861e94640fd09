/*
 * spawn_helper_int: what the two files of the spawn helper share
 * (spawn_helper.c its requests, jobs and life; spawn_proc.c the
 * attributes of its process and of each program's). Private to them.
 */
#ifndef MP_SPAWN_HELPER_INT_H
#define MP_SPAWN_HELPER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spawn.h"

/* The helper's end of the socket, after it closed everything else. */
#define SPAWN_SOCK_FD 3

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
	char *stack;			/* the clone child's (spawn_proc.c) */
};

/*
 * Everything the helper does once, before it accepts requests: its
 * descriptors, signals, privileges and the clone child's stack.
 */
int spawn_proc_setup(struct helper *h, const struct spawn_settings *s,
	int sock);
/*
 * Start the checked program in a clone child: 0 with *pid set, or an
 * errno with no child left.
 */
int spawn_proc_start(struct helper *h, const char *path, const char *cwd,
	const int *fds, int nfds, char **argv, char **envp, pid_t *pid);

#endif
