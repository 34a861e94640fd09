/*
 * privsep: what the root part of mailpiped prepares before it starts the
 * daemon, and the daemon's switch to its own user (docs/SECURITY.md). The
 * root part gives BASE/Queue (0700), BASE/Submitted (1730, group
 * mailpipe-submit) and BASE/ForeignQueue to the daemon user; the daemon
 * then runs as that user with no supplementary group, no capability, no
 * way to gain one (no_new_privs), and dies with the root part. Never
 * follows a symbolic link while changing owners, never changes a file
 * with more than one link. Functions return 0 or -errno.
 */
#ifndef MP_PRIVSEP_H
#define MP_PRIVSEP_H

#include <stdbool.h>
#include <sys/types.h>

#include "strv.h"

/* How a directory of the base directory is prepared. */
struct privsep_dir {
	const char *name;	/* "Queue", "Submitted", ... */
	bool create;		/* make it when missing */
	mode_t mode;		/* its mode */
	uid_t uid;		/* its owner */
	gid_t gid;		/* and group */
	bool tree;		/* when its owner was another user, give
				   everything below it to uid too (the
				   queue of an earlier layout) */
};

/*
 * Make or fix BASE/d->name (basefd is BASE, opened O_DIRECTORY). A
 * missing directory that is not to be created is not an error. Lines
 * worth logging (what was changed, what was skipped) are added to notes.
 */
int privsep_prepare(int basefd, const struct privsep_dir *d,
	struct strv *notes);

/*
 * Become uid:gid for good, from root: no supplementary groups, real,
 * effective and saved ids changed, every capability gone (checked),
 * no_new_privs set, SIGKILL when the parent (the root part) dies.
 * expect_parent is the parent's pid: if it has already died, -ESRCH.
 */
int privsep_drop(uid_t uid, gid_t gid, pid_t expect_parent);

#endif
