/*
 * pipe: the PIPE delivery module. For one recipient it builds the argv and
 * environment from a parsed pipe command (SPEC "PIPE delivery", order of
 * -f / -p / -r), starts the program through spawn, writes the message to
 * its stdin (streamed from the queue file on the thread pool, or from
 * memory), requires that all of stdin was read, discards stdout (or
 * appends it to a transport's output file), keeps the first stderr-limit
 * bytes of stderr, enforces the time limit on the whole process group from
 * the moment the program started (a program that never starts is
 * deferred, never failed), gives a [FILE] program a private read-only
 * copy of its queue file as fd 3, and
 * turns the outcome into a struct result with result_from_run. It never
 * touches the queue state: the caller records the result.
 */
#ifndef MP_PIPE_H
#define MP_PIPE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"
#include "pipeaddr.h"
#include "result.h"
#include "spawn.h"
#include "strv.h"

#define PIPE_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
/* What [FILE] puts after -f: the program's private copy of its queue
   file, open read-only as its fd 3 (docs/SECURITY.md). */
#define PIPE_FILE_ARG "/dev/fd/3"

struct pipe_settings {
	const char *base_dir;	/* absolute; cwd of [FILE] programs */
	const char *app_dir;	/* absolute; NULL or "" = PIPE disabled */
	uint64_t time_limit_s;	/* default time limit */
	uint64_t stderr_limit;	/* stderr bytes kept */
	const char *path_env;	/* PATH given to programs */
};

struct pipe_request {
	const struct pipe_cmd *cmd;
	const char *queue_file;	/* "Queue/[NN/]ID.msg" relative to base: what
				   a [FILE] program gets a copy of (fd 3);
				   NULL when there is no queue file */
	const char *input_path;	/* absolute file to read the message from,
				   or NULL to use input_mem */
	uint64_t input_off;	/* where the message starts in input_path */
	uint64_t input_len;	/* message bytes */
	const char *input_mem;	/* message bytes when input_path is NULL */
	const char *sender;	/* return-path; "" = null (-p gets "") */
	const char *recipient;	/* routed address (RECIPIENT) */
	const char *orig_recipient;	/* as received or ORCPT (-r, ORIGINAL_
					   RECIPIENT) */
	const char *queue_id;	/* QUEUE_ID */
	const char *delivery_id;	/* DELIVERY_ID */
	const struct code_map *codes;	/* transport code map or NULL */
	uint64_t time_limit_s;	/* 0 = settings */
	bool sync;		/* sync transport: time limit -> 451 4.4.2 */
	const char *output_file;	/* append stdout here; NULL = discard */
	const char *error_file;		/* append stderr here too; NULL = no */
};

/* What was run, for the delivery log line. */
struct pipe_info {
	pid_t pid;
	enum run_end end;
	int code;
	double seconds;
	uint64_t stderr_bytes;
	bool stdin_consumed;
};

/* The exact program invocation (also used by `mailpipe route`). */
struct pipe_argv {
	char *path;		/* app_dir/app */
	char *cwd;		/* base dir with [FILE], else app dir */
	struct strv argv;	/* argv[0] = application name */
	struct strv envp;	/* "NAME=value" */
};

#define PIPE_ARGV_INIT { NULL, NULL, STRV_INIT, STRV_INIT }

/*
 * Build the invocation for req. Pure. Parameters in command order, then
 * [FILE] "-f" PIPE_FILE_ARG, [RETPATH] "-p" sender, [RCPT] "-r"
 * orig_recipient. Environment: PATH, SENDER, RECIPIENT,
 * ORIGINAL_RECIPIENT, QUEUE_ID, DELIVERY_ID (a NULL value is left out).
 * -EINVAL (*why set) when a value holds a control character, when
 * [FILE] is asked without a queue file, or the app name is refused;
 * -ENOENT when the PIPE module is disabled (no app dir).
 */
int pipe_build(const struct pipe_request *req, const struct pipe_settings *s,
	struct pipe_argv *out, const char **why);
void pipe_argv_free(struct pipe_argv *a);

struct pipe_module;

/* Called once per pipe_run, from the loop. res is the callee's to move. */
typedef void (*pipe_done_cb)(void *arg, struct result *res,
	const struct pipe_info *info);

/* s is copied. */
int pipe_module_open(uv_loop_t *loop, struct spawn_client *sp,
	const struct pipe_settings *s, struct logger *lg,
	struct pipe_module **out);
/*
 * Run one delivery. Everything in req is copied. cb runs exactly once,
 * from the loop, never from inside pipe_run (a request that cannot even
 * be built is reported through cb with the matching result).
 */
int pipe_run(struct pipe_module *pm, const struct pipe_request *req,
	pipe_done_cb cb, void *arg);
/* Deliveries started and not yet reported. */
unsigned pipe_active(const struct pipe_module *pm);
/* Free pm; only when pipe_active() == 0. */
void pipe_module_close(struct pipe_module *pm);

#endif
