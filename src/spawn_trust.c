/*
 * spawn_trust: the trust rules of the spawn helper. Judges an application
 * directory, a program inside it and, for a symlinked program, the
 * directory it really lives in, with the caller's file system ids (the
 * helper's are the program user's): none may be writable by group or
 * others or owned by the program user; the name must be a plain file
 * name, the program a regular, executable file. Pure checks: opens,
 * changes and runs nothing.
 */
#include "spawn_trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "result.h"
#include "spawn_proto.h"

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
trust_target_dir(uid_t uid, const char *path, int *why, int *err)
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
	if ((w = writable_by(&st, uid)) != 0) {
		*why = WHY_TARGET_GROUP + w - 1;
		return SPAWN_FAIL_UNTRUSTED;
	}
	return 0;
}

/* Check dir and dir/name as the program user (see spawn_trust.h). */
int
spawn_trust_check(uid_t uid, const char *dir, const char *name,
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
	if ((w = writable_by(&st, uid)) != 0) {
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
	if ((w = writable_by(&st, uid)) != 0) {
		*why = WHY_APP_GROUP + w - 1;
		return SPAWN_FAIL_UNTRUSTED;
	}
	if (lstat(path->data, &lst) == 0 && S_ISLNK(lst.st_mode) &&
	    (w = trust_target_dir(uid, path->data, why, err)) != 0)
		return w;
	if (faccessat(AT_FDCWD, path->data, X_OK, AT_EACCESS) < 0) {
		*err = errno;
		*why = WHY_APP_NOEXEC;
		return SPAWN_FAIL_EXEC;
	}
	return 0;
}
