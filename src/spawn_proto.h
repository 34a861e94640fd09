/*
 * spawn_proto: the messages of the socket between the spawn helper
 * (spawn_helper.c) and its client on the server's loop (spawn.c). A
 * request is a struct msg_hdr and its strings, with the child's fds as
 * SCM_RIGHTS; every reply is one struct msg_reply. Private to the spawn
 * module: nothing else includes it.
 */
#ifndef MP_SPAWN_PROTO_H
#define MP_SPAWN_PROTO_H

#include <stdint.h>

/* Largest request (header, paths, argv, environment). */
#define SPAWN_REQ_MAX (256 * 1024)
/* Socket buffer asked for, so that a full-size request fits. */
#define SPAWN_SOCKBUF (SPAWN_REQ_MAX + 64 * 1024)

enum msg_type {
	MSG_RUN = 1,	/* client -> helper, with 3 fds (+ hold, + fd 3) */
	MSG_KILL,	/* client -> helper */
	MSG_RELEASE,	/* client -> helper: close the held fd of a job */
	REP_READY,	/* helper -> client, once, err = setup errno */
	REP_DONE,	/* helper -> client, once per job */
	REP_STARTED,	/* helper -> client: the job's program runs (pid) */
};

/* MSG_RUN flags: which optional fds follow in, out and err, in order. */
enum {
	RUN_HOLD = 1,	/* the stdin write end to hold */
	RUN_FD3 = 2,	/* the program's fd 3 */
};

/* Most fds one request carries. */
#define SPAWN_MAX_FDS 5

/* Request header; NUL-terminated dir, name, cwd, argv[], envp[] follow. */
struct msg_hdr {
	uint32_t type;
	uint32_t argc;
	uint32_t envc;
	uint32_t flags;	/* MSG_RUN: RUN_* */
	uint64_t job;
};

/* Every reply has this fixed size. */
struct msg_reply {
	uint32_t type;
	int32_t how;	/* enum spawn_how */
	int32_t code;
	int32_t err;
	int32_t why;	/* enum why */
	int32_t pid;
	uint64_t job;
};

/* Why a job failed; texts in spawn.c (the protocol carries the index). */
enum why {
	WHY_NONE = 0,
	WHY_DIR_MISSING,
	WHY_DIR_NOTDIR,
	WHY_DIR_ACCESS,
	WHY_DIR_GROUP,
	WHY_DIR_OTHERS,
	WHY_DIR_OWNER,
	WHY_BAD_NAME,
	WHY_APP_MISSING,
	WHY_APP_ACCESS,
	WHY_APP_NOTREG,
	WHY_APP_GROUP,
	WHY_APP_OTHERS,
	WHY_APP_OWNER,
	WHY_TARGET_GROUP,
	WHY_TARGET_OTHERS,
	WHY_TARGET_OWNER,
	WHY_APP_NOEXEC,
	WHY_TOO_LONG,
	WHY_BAD_REQUEST,
	WHY_NOT_PINNED,
	WHY_EXEC,
	WHY_TEMP,
	WHY_HELPER_DIED,
	WHY_HELPER_STOPPED,
	WHY_CANCELLED,
	WHY_COUNT
};

#endif
