/*
 * result: the one delivery result type that every delivery module hands to
 * the scheduler (delivered / deferred / failed, an SMTP reply code, an
 * RFC 3463 status and a human text), and the one table that turns what a
 * program did (exit status, signal, time limit, stderr output, unread
 * stdin) into such a result. Pure code: no I/O, no globals.
 */
#ifndef MP_RESULT_H
#define MP_RESULT_H

#include <stdbool.h>
#include <stddef.h>

enum result_kind {
	RESULT_DELIVERED = 0,
	RESULT_DEFERRED,
	RESULT_FAILED,
};

/* An RFC 3463 status is at most "5.999.999" plus NUL. */
#define RESULT_STATUS_MAX 12

struct result {
	enum result_kind kind;
	int reply;				/* 250, 451, 554, ... */
	char status[RESULT_STATUS_MAX];		/* "2.0.0", "4.3.0", "5.3.0" */
	char *text;				/* malloc'ed, one line, no CR/LF/NUL */
};

#define RESULT_INIT { RESULT_DELIVERED, 0, "", NULL }

/* Fill r; text is formatted, control characters become spaces. */
int result_set(struct result *r, enum result_kind kind, int reply,
	const char *status, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Move src into dst (dst is cleared first); src is left empty. */
void result_move(struct result *dst, struct result *src);
/* Free the text and reset to RESULT_INIT. */
void result_clear(struct result *r);
/* "delivered", "deferred", "failed". */
const char *result_kind_name(enum result_kind k);
/* "250 2.0.0 text" style one-line rendering into a new string. */
int result_format(const struct result *r, char **out);

/*
 * A transport's `code.N = "reply"` map (Momentum rule). A reply is
 * "NNN [X.Y.Z] text": 2xx delivered, 4xx deferred, 5xx failed. When the
 * reply carries no enhanced status, the class default (2.0.0 / 4.0.0 /
 * 5.0.0) is used.
 */
struct code_map_entry {
	int exit_status;	/* 0..255 */
	int reply;		/* 200..599 */
	char status[RESULT_STATUS_MAX];
	char *text;
};

struct code_map {
	struct code_map_entry *v;
	size_t n;
};

#define CODE_MAP_INIT { NULL, 0 }

/* Parse "550 5.1.1 no such list" into its parts; -EINVAL with *why set. */
int code_reply_parse(const char *s, int *reply, char status[RESULT_STATUS_MAX],
	char **text, const char **why);
/* Add or replace the entry for exit_status, parsing reply text. */
int code_map_set(struct code_map *m, int exit_status, const char *reply,
	const char **why);
/* Entry for an exit status, or NULL. */
const struct code_map_entry *code_map_find(const struct code_map *m,
	int exit_status);
/* Free the map. */
void code_map_free(struct code_map *m);

/* How the program run ended. */
enum run_end {
	RUN_EXITED,		/* normal exit; code = exit status */
	RUN_SIGNALED,		/* killed by a signal; code = signal number */
	RUN_TIMED_OUT,		/* killed by us at the time limit */
	RUN_SPAWN_FAILED,	/* never ran; code = enum run_spawn_fail */
};

/* Why a program could not be started (RUN_SPAWN_FAILED). */
enum run_spawn_fail {
	SPAWN_FAIL_DISABLED = 1,	/* empty/missing application directory:
					   failed, 554 5.3.0 */
	SPAWN_FAIL_NOAPP,	/* no such application: failed, 550 5.1.1 */
	SPAWN_FAIL_UNTRUSTED,	/* program or directory writable by group,
				   others or the program user: deferred,
				   451 4.3.5 (a local configuration error) */
	SPAWN_FAIL_EXEC,	/* not executable, bad interpreter, unsafe
				   value: failed, 554 5.3.0 */
	SPAWN_FAIL_TEMP,	/* out of processes, memory, descriptors:
				   deferred, 451 4.3.0 */
};

/* Everything the table needs to know about one program run. */
struct run_outcome {
	enum run_end end;
	int code;
	bool stdin_consumed;	/* the program read all of its stdin */
	const char *err_text;	/* stderr text kept (may be NULL) */
	size_t err_len;		/* bytes of stderr written (kept or not) */
	bool stderr_tag;	/* the [STDERR] tag was given */
	bool sync;		/* sync transport: time limit -> 451 4.4.2 */
	unsigned time_limit_s;	/* for the message text */
	const char *spawn_why;	/* text when end == RUN_SPAWN_FAILED */
};

/*
 * The one exit-status table (SPEC "PIPE delivery", "Decisions / Failure
 * class"): 0 delivered; 71, 74, 75, 79 deferred ("451 4.3.0 pipe transport
 * gave exit status N"); any other status or signal failed ("554 5.3.0 ...");
 * a mapped status uses its code.N reply; stderr output without [STDERR]
 * or unread stdin fail the delivery unless the status is one of the
 * temporary ones; the time limit fails a queued delivery and answers
 * 451 4.4.2 in sync mode. map may be NULL.
 */
int result_from_run(const struct run_outcome *o, const struct code_map *map,
	struct result *out);

/* True for the sysexits statuses that mean "try again later". */
bool result_exit_is_temporary(int exit_status);

#endif
