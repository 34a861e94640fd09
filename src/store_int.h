/*
 * store_int.h: what the pieces of the store share (store.c, store_dir.c,
 * store_commit.c, store_draft.c, store_mark.c, store_recover.c,
 * store_import.c, store_list.c); nothing outside the store includes it.
 * Functions named store__* are the store's own, not an interface.
 */
#ifndef MP_STORE_INT_H
#define MP_STORE_INT_H

#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "buf.h"
#include "envelope.h"
#include "log.h"
#include "store.h"

#define READ_CHUNK (64 * 1024)	/* envelope read size at recovery/import */
#define ID_MAX 9999999999999999ULL	/* largest 16-digit ID */
#define MODE_DIR 0700
#define MODE_CORRUPT 0700
#define MODE_FILE 0600
#define CORRUPT_DIR "corrupt"

/* One directory of the queue and its group-commit state. */
struct sdir {
	struct sdir *next;	/* st->dirs list, under st->dirs_mu */
	char *name;		/* "" for Queue/ itself, else the subfolder */
	int fd;			/* O_DIRECTORY, -1 until opened; then fixed */
	uv_mutex_t mu;		/* guards fd opening and the fields below */
	uv_cond_t cv;		/* signalled when an fsync completes */
	uint64_t started;	/* generation of the last fsync started */
	uint64_t completed;	/* generation of the last fsync completed */
	uint64_t failed;	/* generation of the last fsync that failed */
	int fail_err;		/* its -errno */
	bool running;		/* an fsync is running now */
	bool names_by_file;	/* a new file's fsync commits its name here */
};

struct store {
	uv_loop_t *loop;
	struct logger *log;
	struct store_settings set;
	char *qpath;		/* absolute BASE/Queue */
	uint64_t last_id;	/* last ID allocated or seen (loop thread) */
	size_t live;		/* queue files known to exist */
	size_t inflight;	/* commits and imports not finished */
	unsigned busy;		/* works queued or running */
	bool recovering;
	bool closing;		/* store_close while busy: free at the end */
	struct store_kept *kept;	/* bytes of bodies kept in memory */
	uint64_t commits;	/* durable commits reported */
	atomic_uint_fast64_t dir_fsyncs;	/* directory fsyncs run */
	bool names_by_file;	/* Queue/'s file system commits a new file's
				   name with the file's fsync (ext4, xfs) */
	dev_t qdev;		/* Queue/'s device: subfolders must match */
	uv_mutex_t dirs_mu;
	struct sdir *dirs;
};

/* A log line made on a pool thread, written later on the loop. */
struct note {
	enum log_level level;
	char *text;
};

struct notes {
	struct note *v;
	size_t n;
	size_t cap;
};

/*
 * The count of message bytes kept in memory: shared by the store and
 * every message holding a body, freed with the last of them (a message
 * may outlive the store). Loop thread only.
 */
struct store_kept {
	size_t bytes;
	unsigned refs;
};

/* A new queue file on its way: ID.tmp, then ID.msg (pool threads only). */
struct tmpfile {
	struct sdir *d;		/* its folder */
	int fd;			/* -1 until created */
	struct buf tmp, msg;	/* "ID.tmp", "ID.msg" */
	bool have_tmp, have_msg;
};

#define TMPFILE_INIT { NULL, -1, BUF_INIT, BUF_INIT, false, false }

/* store.c */
/* Queue a log line for the loop thread; dropped only when out of memory. */
void store__notes_add(struct notes *ns, enum log_level l, const char *fmt,
	...) __attribute__((format(printf, 3, 4)));
/* Write the queued lines (on the loop thread) and forget them. */
void store__notes_flush(struct store *st, struct notes *ns);
/* A new, empty store_msg. */
struct store_msg *store__msg_new(void);
/* Fill m->relpath and m->path for ID.msg in folder ("" = Queue/). */
int store__msg_set_paths(const struct store *st, struct store_msg *m,
	const char *folder);
/* Close fd, keeping errno. */
void store__close_keep(int fd);
/* Does name end in suffix? */
bool store__has_suffix(const char *name, const char *suffix);
/* May a new message be written now (-EBUSY recovering, -ENOSPC full)? */
int store__commit_allowed(const struct store *st, unsigned flags);
/* A new store_msg with a fresh ID, its folder ("" or "NN") and paths. */
int store__msg_place(struct store *st, struct store_msg **mp, char **folder);
/* A work item reported: true when the store must be freed after its cb. */
bool store__work_done(struct store *st);
/* What a commit job and an import job share: the first member of each. */
struct store__wjob {
	uv_work_t req;
	struct store *st;
	struct store_msg *m;
	char *folder;		/* "" or "NN" */
	store_commit_cb cb;
	void *arg;
	int err;
	struct notes notes;
};
/*
 * A zeroed job of size bytes (a struct starting with a store__wjob) with
 * a fresh message placed; -ENOMEM or store__msg_place's error.
 */
int store__wjob_new(struct store *st, size_t size, store_commit_cb cb,
	void *arg, struct store__wjob **out);
/* Hand a job to the thread pool and count it in flight. */
int store__wjob_queue(struct store__wjob *w, uv_work_cb work,
	uv_after_work_cb after);
/* Free a job that never ran (its own fields freed by the caller). */
void store__wjob_free(struct store__wjob *w);
/* Loop: a write job is back; flush its notes, give its result. */
int store__wjob_back(struct store__wjob *w, int status);
/*
 * Loop: end a write job whose own fields are freed: free w, hand m (NULL
 * when err) to its cb, then free the store if it was waiting for the job.
 */
void store__wjob_end(struct store__wjob *w, int err, struct store_msg *m);
/* Free everything. */
void store__free(struct store *st);

/* store_dir.c */
/* rename without ever replacing a file: -EEXIST if newname exists. */
int store__rename_noreplace(int olddir, const char *oldname, int newdir,
	const char *newname);
/* Give an open file or folder the queue's mode (fixed: it had another). */
int store__fix_mode(int fd, mode_t mode, bool *fixed);
/* Run or join a directory fsync that starts after the caller's change. */
int store__sdir_sync(struct store *st, struct sdir *d);
/* The group-commit object of folder name, its directory open (or made). */
int store__sdir_get(struct store *st, const char *name, bool create,
	struct sdir **out);
/* Free every folder object. */
void store__sdirs_free(struct store *st);

/* store_commit.c */
/* S0 -> S1: create folder/ID.tmp (O_EXCL) with the queue's mode. */
int store__tf_create(struct store *st, struct tmpfile *tf, const char *folder,
	const char *id);
/* S1 -> S2: the written ID.tmp becomes a durable ID.msg; fd closed. */
int store__tf_publish(struct store *st, struct tmpfile *tf);
/* S1 -> S0 after a failure: remove whatever of the new file exists. */
void store__tf_withdraw(struct store *st, struct tmpfile *tf,
	const char *folder, const char *id, struct notes *ns);
/* Free the names (the file is closed by publish or withdraw). */
void store__tf_free(struct tmpfile *tf);
/* Committed: only now may the source (e.g. the .sub) go. */
void store__unlink_source(const char *path, const char *id,
	struct notes *ns);

/* store_recover.c */
/* Move dirfd/name into Queue/corrupt/ (S5), never over another file. */
int store__quarantine(struct store *st, int dirfd, const char *name,
	struct buf *dest);
/* Log (as a note) why a file is corrupt and where it went. */
void store__note_corrupt(struct notes *ns, const char *rel, const char *why,
	unsigned line, int moved, const struct buf *dest);

/* store_list.c */
/* Parse a leading 16-digit ID from a file name; 0 when there is none. */
uint64_t store__name_id(const char *name, bool *exact_msg);
/*
 * Read and check the envelope of the open file fd and the journal after
 * its message: 0, -EBADMSG (with why and line, 0 when not tied to a
 * line) or -errno. *hist (hist may be NULL) gets each recipient's last
 * attempt record or NULL when none; *jend the end of the journal's
 * complete records (0: none).
 */
int store__load_envelope(int fd, struct envelope *e, struct store_hist **hist,
	uint64_t *jend, const char **why, unsigned *line);
/*
 * Parse journal bytes p[0..n) into h (nrcpt entries: each recipient's last
 * record wins); as journal_parse.
 */
int store__hist_parse(const char *p, size_t n, size_t nrcpt,
	struct store_hist *h, size_t *used, const char **why, unsigned *line);
/* Free a history array of n recipients (NULL is fine). */
void store__hist_free(struct store_hist *h, size_t n);

#endif
