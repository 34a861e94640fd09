/*
 * testutil: helpers shared by the unit tests that run real programs
 * (test_spawn, test_pipe_run, test_pipe_build). Each fails the running
 * cmocka test instead of returning an error.
 */
#ifndef MP_TESTUTIL_H
#define MP_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "pipeaddr.h"

/* snprintf that fails the test instead of truncating. */
void tu_snprintf(char *dst, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The number of descriptors this process has open. */
int tu_count_fds(void);

/* Where the test programs were built (PATH_MAX bytes at dst). */
void tu_programs_dir(char *dst);

/* Copy the file src to dst with mode, owned by uid:uid. */
void tu_copy_file(const char *src, const char *dst, mode_t mode, uid_t uid);

/* A command with tags, application and parameters (NULL-terminated). */
void tu_make_cmd(struct pipe_cmd *c, unsigned tags, const char *app, ...);

#endif
