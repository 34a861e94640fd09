/*
 * localsub_int.h: what the pieces of localsub share (localsub.c,
 * localsub_compose.c, localsub_write.c, localsub_queue.c); nothing else
 * includes it.
 */
#ifndef MP_LOCALSUB_INT_H
#define MP_LOCALSUB_INT_H

#include "localsub.h"

/* The failure of an allocation or another unexpected system call. */
int localsub__oserr(struct localsub_err *err, int r, const char *what);
/* Take the setgid group back as the effective gid (Submitted write only). */
int localsub__gid_hold(const struct localsub *ls);
/* Give the setgid group up for good (real, effective and saved gid). */
int localsub__gid_drop(struct localsub *ls);

#endif
