/*
 * spawn_trust: the helper's check of an application directory and
 * program (SPEC "Application directory trust"). Private to the spawn
 * helper (spawn_helper.c).
 */
#ifndef MP_SPAWN_TRUST_H
#define MP_SPAWN_TRUST_H

#include <sys/types.h>

#include "buf.h"

/*
 * SPEC "Application directory trust", checked as the program user uid:
 * returns 0 or the enum run_spawn_fail, with *why (enum why) and *err
 * set. path receives dir/name.
 */
int spawn_trust_check(uid_t uid, const char *dir, const char *name,
	struct buf *path, int *why, int *err);

#endif
