/*
 * testutil: helpers shared by the unit tests that run real programs
 * (test_spawn, test_pipe_run, test_pipe_build) or use real folders
 * (test_enqueue, test_foreign). Each fails the running cmocka test
 * instead of returning an error.
 */
#ifndef MP_TESTUTIL_H
#define MP_TESTUTIL_H

#include <stdbool.h>
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

/* malloc'ed printf (never NULL). */
char *tu_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The whole file at path, NUL-terminated (malloc'ed); *len if not NULL. */
char *tu_slurp(const char *path, size_t *len);

/* Does the file at path hold text? */
bool tu_file_has(const char *path, const char *text);

/* Remove the folder dir and everything below it. */
void tu_rmtree(const char *dir);

#endif
