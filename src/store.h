/*
 * store: the Queue/ directory, the only code that creates, changes, renames
 * or removes queue files (docs/QUEUE.md). A new message is written to
 * Queue/[NN/]ID.tmp (O_EXCL), fsynced, renamed to ID.msg, and the directory
 * fsynced before the caller hears of it (on ext4 and XFS: renamed, then the
 * file fsynced, which commits the name with it: one flush, QUEUE.md); a
 * recipient's final state is one byte overwritten in place and fdatasynced;
 * a finished file is unlinked and its directory fsynced. Directory fsyncs
 * are shared by every change made before they start (group commit). All
 * blocking disk work runs on the libuv thread pool; the loop thread only
 * books and calls back. Corrupt files are moved to Queue/corrupt/, never
 * deleted. Never exits; returns 0 or -errno.
 */
#ifndef MP_STORE_H
#define MP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "buf.h"
#include "envelope.h"
#include "journal.h"
#include "log.h"

#define STORE_ID_LEN 16		/* decimal digits: unix seconds * 1e6 + n */
#define STORE_AUTO_THRESHOLD 5000	/* "auto" folders above this count */
#define STORE_KEEP_MAX (64 * 1024)	/* keep fresh messages this small */
#define STORE_KEEP_TOTAL (8 * 1024 * 1024)	/* ... up to this in all */
#define STORE_COPY_CHUNK (128 * 1024)	/* a draft copy's read size */

struct store_msg;

struct store_settings {
	int foldering;		/* 0, 10, 100 or FOLDERING_AUTO */
	uint64_t limit;		/* queue limit in messages */
	bool dir_fsync_always;	/* [queue] directory-fsync = always: never
				   rely on a file's fsync for its new name */
	/*
	 * Recovery, for a file whose recipients are all final: does it
	 * still owe a report (a final outcome without its `reported`
	 * record that must be reported)? Then it is kept (m->keep) and
	 * handed over like a live one. Runs on a pool thread: must be
	 * pure. NULL: never (every such file is removed).
	 */
	bool (*owes_report)(const struct store_msg *m, const void *arg);
	const void *owes_arg;
};

/*
 * A recipient's last recorded attempt (from the journal after the message,
 * docs/QUEUE.md "Journal"): what a restart needs to keep its schedule and
 * what a report quotes.
 */
struct store_hist {
	unsigned attempts;	/* the last record's attempt number */
	int64_t last;		/* its time */
	int64_t next;		/* its next attempt time, -1: none */
	enum journal_kind kind;
	enum journal_src src;
	int reply;
	char status[JOURNAL_STATUS_MAX];
	char *reason;		/* malloc'ed */
	unsigned reported;	/* bits 1 << JOURNAL_ACT_*: outcomes already
				   settled by a `reported` record */
};

struct store_mark_job;

/* One queue file as the server knows it. */
struct store_msg {
	char id[STORE_ID_LEN + 1];
	char *relpath;		/* "Queue/ID.msg" or "Queue/NN/ID.msg" */
	char *path;		/* absolute path */
	struct envelope env;	/* parsed envelope, state offsets valid */
	uint64_t msg_off;	/* offset of the message (env.header_len) */
	uint64_t msg_len;	/* message bytes (env.size) */
	size_t pending;		/* recipients still pending */
	unsigned marks;		/* store_mark calls in flight */
	void *owner;		/* free for the scheduler */
	char *body;		/* after a commit: the message bytes (msg_len)
				   kept in memory, so first deliveries need
				   not read the file back; NULL otherwise */
	struct store_kept *kept;	/* count of kept bytes, shared with the
					   store (may outlive it) */
	struct store_hist *hist;	/* env.nrcpt entries, or NULL while no
					   attempt is recorded */
	uint64_t jend;		/* end of the journal's complete records
				   (0: no journal, the file ends with the
				   message) */
	bool keep;		/* set by the owner while reports are owed:
				   the last mark leaves the file (state
				   byte and record written like any other);
				   store_remove takes it away */
	bool gone;		/* its removal is under way or done: no
				   more marks, notes or removals */
	/* journal appends run one at a time per message, in this order */
	struct store_mark_job *apq_head, *apq_tail;
	bool appending;
};

struct store;

/*
 * Open BASE/Queue (created 0700 if missing; its folders 0700, its files
 * 0600: only the daemon user, who owns them, reads the queue). s is
 * copied.
 */
int store_open(uv_loop_t *loop, const char *base_dir,
	const struct store_settings *s, struct logger *lg, struct store **out);

/* Called for each message found by store_recover / store_import. */
typedef void (*store_msg_cb)(void *arg, struct store_msg *m);
/* Called when a recovery or import scan is over. */
typedef void (*store_scan_cb)(void *arg, int err, size_t found,
	size_t corrupt);

/*
 * Start-up recovery: remove every stray ID.tmp, load every ID.msg in Queue/
 * and every subfolder (whatever foldering says now), move corrupt ones to
 * Queue/corrupt/ with a log line, remove files whose recipients are all
 * final (unless settings' owes_report keeps one: then found with
 * pending 0 and keep set). found() gets each live message in ID order (arrival order); the
 * receiver owns it (store_msg_free). New IDs are allocated above every ID
 * seen. Must finish before store_commit is used.
 */
int store_recover(struct store *st, store_msg_cb found, store_scan_cb done,
	void *arg);

enum store_commit_flags {
	STORE_EXEMPT_LIMIT = 1,	/* delivery reports: not held by the limit */
};

/* Result of a commit: m is the caller's (store_msg_free), NULL on error. */
typedef void (*store_commit_cb)(void *arg, int err, struct store_msg *m);

/*
 * Write a new queue file durably from env (moved into the store_msg; its
 * uid is generated when empty) and message (the bytes are stolen from the
 * buffer). If unlink_after is not NULL, that file (absolute path, e.g. the
 * .sub) is unlinked only after the queue file is durable. -ENOSPC when the
 * queue limit is reached (unless STORE_EXEMPT_LIMIT). cb runs from the
 * loop, never inside store_commit.
 */
int store_commit(struct store *st, struct envelope *env, struct buf *message,
	const char *unlink_after, unsigned flags, store_commit_cb cb,
	void *arg);

/*
 * Streamed commits (docs/QUEUE.md "Streamed commits"): a message too large
 * to hold in memory is written piece by piece into Queue/[NN/]ID.tmp after
 * room reserved for its envelope (envelope_reserve); the commit writes the
 * envelope with the final size into that room (a "pad" record fills the
 * rest), then makes the file durable exactly as store_commit does. Until
 * the commit the draft is in S1: a crash leaves only an ID.tmp, removed at
 * recovery. One step (write, copy, commit) runs at a time (-EBUSY
 * otherwise); every step runs on the thread pool, cb from the loop.
 */
struct store_draft;

/* A write or copy finished: err 0 or -errno; n bytes were consumed. */
typedef void (*store_draft_cb)(void *arg, int err, uint64_t n);

enum store_copy_flags {
	STORE_COPY_CRLF = 1,	/* turn every CR LF into LF */
};

/*
 * Begin a streamed message. env is taken (size is set at the commit, uid
 * made when empty; its other values are final now); head (may be NULL) is
 * taken and becomes the first message bytes. The ID is allocated now and
 * the draft counts in store_count() (-ENOSPC when the queue is full unless
 * STORE_EXEMPT_LIMIT) and in store_busy() until it is committed or
 * aborted. No disk work yet: the first step creates ID.tmp.
 */
int store_draft_open(struct store *st, struct envelope *env,
	struct buf *head, unsigned flags, struct store_draft **out);
/* Append the bytes of b (taken) to the message. */
int store_draft_write(struct store_draft *d, struct buf *b,
	store_draft_cb cb, void *arg);
/*
 * Append fd's bytes from offset off to its end, read and written in
 * chunks of STORE_COPY_CHUNK (never more in memory), with STORE_COPY_CRLF
 * converted. More than max bytes read fails with -EFBIG. fd stays the
 * caller's and must stay open until cb, which gets the bytes read from fd.
 */
int store_draft_copy(struct store_draft *d, int fd, uint64_t off,
	uint64_t max, unsigned flags, store_draft_cb cb, void *arg);
/*
 * S1 -> S2: write the envelope and make the file durable; then unlink
 * unlink_after (as store_commit). A failed write or copy before fails the
 * commit with its error. d is freed; cb gets the store_msg (never with a
 * body kept in memory) or NULL with the error (the ID.tmp removed).
 */
int store_draft_commit(struct store_draft *d, const char *unlink_after,
	store_commit_cb cb, void *arg);
/*
 * S1 -> S0: give up; the ID.tmp is removed on the pool and d freed. No
 * callback of d runs after this, even for a step still in flight.
 */
void store_draft_abort(struct store_draft *d);
/* The draft's queue ID. */
const char *store_draft_id(const struct store_draft *d);
/* Message bytes written so far (head included once written). */
uint64_t store_draft_size(const struct store_draft *d);

/* Result of a mark: removed says the file is gone (no recipient left). */
typedef void (*store_mark_cb)(void *arg, int err, bool removed);

/*
 * Record recipient rcpt's final state (RCPT_DELIVERED or RCPT_FAILED):
 * the in-memory state and m->pending change now; on disk the state byte is
 * overwritten and fdatasynced, or, when no recipient is left pending, the
 * file is unlinked and its directory fsynced instead. rec (may be NULL:
 * a delivery) is the attempt's journal record, appended before the byte is
 * written, in the same fdatasync (the file's last mark appends nothing:
 * the file goes). m must stay alive until cb (the store keeps it pinned
 * through m->marks).
 */
int store_mark(struct store *st, struct store_msg *m, size_t rcpt,
	enum rcpt_state state, const struct journal_attempt *rec,
	store_mark_cb cb, void *arg);
/*
 * Remove m's file (unlink, directory fsync) once every recipient is final
 * (-EBUSY otherwise): for a file kept by m->keep, when every report it
 * owes is itself queued and settled by a `reported` record. Runs after
 * the message's appends in flight; cb's removed says it is gone.
 */
int store_remove(struct store *st, struct store_msg *m, store_mark_cb cb,
	void *arg);

/*
 * Append the journal record of an attempt that left its recipient pending
 * (a deferral), or a `reported` record (JOURNAL_REPORTED: an outcome
 * the sender was told of, or that owes no report), and fdatasync it;
 * m->hist shows it at once. cb's removed is always false.
 */
int store_note(struct store *st, struct store_msg *m,
	const struct journal_attempt *rec, store_mark_cb cb, void *arg);

/*
 * ForeignQueue import: give the .msg at src_path a fresh ID, check its
 * envelope, move it into Queue/ (rename; same file system), fix owner and
 * mode, fsync both directories. A corrupt file goes to Queue/corrupt/.
 * cb gets the new store_msg, or NULL with err (-EBADMSG corrupt).
 */
int store_import(struct store *st, const char *src_path, store_commit_cb cb,
	void *arg);

/* Messages in the queue (live files plus commits in flight). */
size_t store_count(const struct store *st);
/* store_count() >= limit. */
bool store_full(const struct store *st);
/* Relative folder ("Queue" or "Queue/NN") for an ID under the settings. */
int store_folder_for(const struct store *st, const char *id, char **out);
/* Disk operations queued or running. */
unsigned store_busy(const struct store *st);
/* Counters for tests and metrics: durable commits, directory fsyncs run. */
void store_stats(const struct store *st, uint64_t *commits,
	uint64_t *dir_fsyncs);
void store_msg_free(struct store_msg *m);
/* Forget m->body (the file stays the truth). */
void store_msg_drop_body(struct store_msg *m);
/* Free st; only when store_busy() == 0. */
void store_close(struct store *st);

/*
 * Listing the queue for readers outside the daemon (sendmail -bp; later
 * the control socket and the monitor): store_list() reads Queue/ and its
 * subfolders (not corrupt/) directly, without a struct store and without
 * changing anything, through the same envelope loader as recovery. It
 * blocks on the disk: call it from a program's main() or a pool thread.
 */

/* One message in Queue/. */
struct store_entry {
	char id[STORE_ID_LEN + 1];
	char *relpath;		/* "Queue/ID.msg" or "Queue/NN/ID.msg" */
	struct envelope env;	/* checked envelope: from, submitted, size,
				   every recipient with its state */
};

/* The messages found, in ID order (arrival order). */
struct store_listing {
	struct store_entry *v;
	size_t n;
};

#define STORE_LISTING_INIT { NULL, 0 }

/* What store_list was doing when it failed. */
enum store_list_step {
	STORE_LIST_OPEN_DIR,	/* opening a folder ("Queue" or "Queue/NN") */
	STORE_LIST_READ_DIR,	/* reading a folder's names */
	STORE_LIST_READ_FILE,	/* opening or reading a queue file */
};

/* Where store_list failed: relpath is malloc'ed ("Queue", "Queue/NN/..."). */
struct store_list_err {
	enum store_list_step step;
	char *relpath;
};

#define STORE_LIST_ERR_INIT { STORE_LIST_OPEN_DIR, NULL }

/* A file left out of the listing: its envelope is corrupt (why, line). */
typedef void (*store_list_skip_cb)(void *arg, const char *relpath,
	const char *why, unsigned line);

/*
 * List BASE/Queue into out (empty on entry). Only ID.msg files count (as
 * at recovery); files and subfolders that vanish while listed are
 * skipped, and so are corrupt files, each reported to skipped (may be
 * NULL). -errno on failure, with err (may be NULL) saying where; -ENOENT
 * at STORE_LIST_OPEN_DIR "Queue" when the queue does not exist. out is
 * the caller's either way (store_listing_free).
 */
int store_list(const char *base_dir, store_list_skip_cb skipped, void *arg,
	struct store_listing *out, struct store_list_err *err);
/* Release what a listing holds. */
void store_listing_free(struct store_listing *l);
/* Release what err holds. */
void store_list_err_free(struct store_list_err *err);

#endif
