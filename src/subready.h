/*
 * subready: when a file in Submitted/ is complete enough to be taken
 * (docs/LOCAL-SUBMISSION.md "When the server takes a file"). A file is
 * taken at once when it was renamed into the folder or closed after
 * writing (file-system notifications, which are only hints), and
 * otherwise when it has not changed for the settle time: its ctime is that
 * old, or two looks that far apart saw the same device, inode, size, mtime
 * and ctime. A file a writer was seen opening or writing waits for its
 * close, or for the longer writer grace without any change. It also
 * remembers which files could not be read, so each is logged once. Pure
 * bookkeeping: no I/O, no clock reads (callers pass the time), loop
 * thread only; subready_judge is a pure function the pool may call.
 */
#ifndef MP_SUBREADY_H
#define MP_SUBREADY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strv.h"

/* A notification about one name. */
enum subready_hint {
	SUBREADY_WRITTEN,	/* created or written: a writer has it open */
	SUBREADY_CLOSED,	/* closed after writing */
	SUBREADY_MOVED_IN,	/* renamed into the folder */
	SUBREADY_GONE,		/* removed or renamed away */
};

/* What notifications said of a name. */
enum subready_state {
	SUBREADY_UNKNOWN,	/* nothing (or the hints were lost) */
	SUBREADY_WRITING,	/* written, not closed since */
	SUBREADY_DONE,		/* closed after writing, or renamed in */
};

/* What fstat said of a file: the values any change alters. */
struct subready_stat {
	uint64_t dev, ino;
	int64_t size;
	int64_t mtime_ns, ctime_ns;
};

/* The state of one name, as a job takes it along to the pool. */
struct subready_view {
	enum subready_state state;
	bool seen;		/* an earlier look saw st ... */
	struct subready_stat st;
	uint64_t seen_ms;	/* ... first at this monotonic time */
};

struct subready_settings {
	uint64_t settle_ms;	/* no change this long: taken */
	uint64_t grace_ms;	/* the same for a file seen being written */
	size_t max_names;	/* names tracked at most (then: unknown) */
};

/* Do two looks at a file agree on everything a change alters? */
bool subready_same(const struct subready_stat *a,
	const struct subready_stat *b);

enum subready_verdict {
	SUBREADY_TAKE,
	SUBREADY_WAIT,
};

/*
 * The verdict for a regular file just fstat'ed (st) at wall-clock time
 * now_ns (CLOCK_REALTIME, the clock of ctime) and monotonic now_ms, given
 * what v says. On SUBREADY_WAIT, *wait_ms (when not NULL) is how long
 * until the file could be taken if nothing changes (0: only a hint will
 * do, never for a settle or grace wait).
 */
enum subready_verdict subready_judge(const struct subready_view *v,
	const struct subready_stat *st, int64_t now_ns, uint64_t now_ms,
	const struct subready_settings *s, uint64_t *wait_ms);

struct subready;

int subready_new(const struct subready_settings *s, struct subready **out);
void subready_free(struct subready *r);
/* Note a notification for name. */
void subready_hint(struct subready *r, const char *name,
	enum subready_hint h);
/* Every hint was lost (the notification queue overflowed). */
void subready_lost(struct subready *r);
/* What is known of name (all zero when nothing). */
void subready_view(const struct subready *r, const char *name,
	struct subready_view *out);
/* A look at name waited: remember what it saw (kept if unchanged). */
void subready_saw(struct subready *r, const char *name,
	const struct subready_stat *st, uint64_t now_ms);
/*
 * A look at name failed with err (-errno; -EACCES: the server may not read
 * the file): true when that is news, i.e. the first failure of name or
 * another error than the last one, so that the caller logs it once per
 * file and not at every scan. Remembered until the name is forgotten (or
 * pruned) or a look succeeds (subready_saw). A name the table has no room
 * for is always news.
 */
bool subready_failed(struct subready *r, const char *name, int err);
/* name was taken, rejected or is gone: forget it. */
void subready_forget(struct subready *r, const char *name);
/* A directory listing starts: the mark to give subready_prune. */
uint64_t subready_mark(const struct subready *r);
/*
 * A listing that started at mark found names (sorted, strcmp order):
 * forget every other name, unless a hint about it came after mark.
 */
void subready_prune(struct subready *r, const struct strv *names,
	uint64_t mark);
/* Names tracked. */
size_t subready_count(const struct subready *r);

#endif
