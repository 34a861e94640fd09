/*
 * store: owns Queue/ and every create, rename, state write and unlink in it
 * (docs/QUEUE.md "States and transitions"). Promises: a caller hears of a
 * new, changed or removed queue file only once the change is durable (file
 * fsync before rename, directory fsync after, shared by group commit; or,
 * where the file system commits a new file's name with the file's own
 * fsync, rename then file fsync: one flush); a
 * file is never overwritten, and a corrupt one is moved to Queue/corrupt/,
 * never deleted. Disk work runs on the libuv thread pool, never on the loop
 * thread (store_open's start-up mkdirs excepted). Never exits; 0 or -errno.
 *
 * This file: open and close, IDs and the folder of an ID, counts, the
 * log lines made on pool threads, store_msg. The rest, by job (shared
 * internals in store_int.h): store_dir.c (folders, group commit),
 * store_commit.c (store_commit and the new-file steps), store_draft.c
 * (streamed commits), store_mark.c (final states, removal),
 * store_recover.c (start-up scan, corrupt files), store_import.c
 * (ForeignQueue), store_list.c (queue file names, the envelope loader,
 * store_list).
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "mountinfo.h"
#include "store_int.h"

/* Queue a log line for the loop thread; dropped only when out of memory. */
void
store__notes_add(struct notes *ns, enum log_level l, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int r;

	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 8;
		struct note *v = realloc(ns->v, cap * sizeof(*v));

		if (v == NULL)
			return;
		ns->v = v;
		ns->cap = cap;
	}
	va_start(ap, fmt);
	r = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (r < 0 || buf_steal(&b, &ns->v[ns->n].text) < 0) {
		buf_free(&b);
		return;
	}
	ns->v[ns->n++].level = l;
}

/* Write the queued lines (on the loop thread) and forget them. */
void
store__notes_flush(struct store *st, struct notes *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		if (st->log)
			log_msg(st->log, LOG_QUEUE, ns->v[i].level, "%s",
				ns->v[i].text);
		free(ns->v[i].text);
	}
	free(ns->v);
	ns->v = NULL;
	ns->n = ns->cap = 0;
}

/* Free a store_msg and everything it owns. */
void
store_msg_free(struct store_msg *m)
{
	if (m == NULL)
		return;
	store_msg_drop_body(m);
	free(m->relpath);
	free(m->path);
	store__hist_free(m->hist, m->env.nrcpt);
	envelope_free(&m->env);
	free(m);
}

/* Drop one reference to the kept-bytes count. */
static void
kept_unref(struct store_kept *k)
{
	if (k != NULL && --k->refs == 0)
		free(k);
}

/* Forget the in-memory copy of the message. */
void
store_msg_drop_body(struct store_msg *m)
{
	if (m->body == NULL)
		return;
	free(m->body);
	m->body = NULL;
	m->kept->bytes -= m->msg_len;
	kept_unref(m->kept);
	m->kept = NULL;
}

/* A new, empty store_msg. */
struct store_msg *
store__msg_new(void)
{
	struct store_msg *m = calloc(1, sizeof(*m));

	if (m != NULL)
		envelope_init(&m->env);
	return m;
}

/* Fill m->relpath and m->path for ID.msg in folder ("" = Queue/). */
int
store__msg_set_paths(const struct store *st, struct store_msg *m,
	const char *folder)
{
	struct buf rel = BUF_INIT, abs = BUF_INIT;
	int r;

	if ((r = buf_printf(&rel, "Queue/%s%s%s.msg", folder,
	    folder[0] ? "/" : "", m->id)) < 0 ||
	    (r = buf_printf(&abs, "%s/%s%s%s.msg", st->qpath, folder,
	    folder[0] ? "/" : "", m->id)) < 0 ||
	    (r = buf_steal(&rel, &m->relpath)) < 0 ||
	    (r = buf_steal(&abs, &m->path)) < 0) {
		buf_free(&rel);
		buf_free(&abs);
		return r;
	}
	return 0;
}

/* Close fd, keeping errno. */
void
store__close_keep(int fd)
{
	int e = errno;

	if (fd >= 0)
		close(fd);
	errno = e;
}

/* Does name end in suffix? */
bool
store__has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s && strcmp(name + n - s, suffix) == 0;
}

/* Folder of id under the settings: -1 = Queue/ itself, else NN. */
static int
folder_num(const struct store *st, uint64_t id)
{
	int f = st->set.foldering;

	if (f == FOLDERING_AUTO)
		f = store_count(st) <= STORE_AUTO_THRESHOLD ? 0 : 100;
	if (f == 10 || f == 100)
		return (int)(id % (uint64_t)f);
	return -1;
}

/* Folder name for an ID string ("" or "NN"), malloc'ed. */
static int
folder_name(const struct store *st, const char *id, char **out)
{
	struct buf b = BUF_INIT;
	uint64_t v = store__name_id(id, NULL);
	int n, r;

	if (v == 0 || strlen(id) != STORE_ID_LEN)
		return -EINVAL;
	n = folder_num(st, v);
	if ((r = n < 0 ? buf_puts(&b, "") : buf_printf(&b, "%02d", n)) < 0 ||
	    (r = buf_steal(&b, out)) < 0) {
		buf_free(&b);
		return r;
	}
	return 0;
}

/* Relative folder ("Queue" or "Queue/NN") for an ID under the settings. */
int
store_folder_for(const struct store *st, const char *id, char **out)
{
	struct buf b = BUF_INIT;
	char *f;
	int r;

	if ((r = folder_name(st, id, &f)) < 0)
		return r;
	r = buf_printf(&b, "Queue%s%s", f[0] ? "/" : "", f);
	free(f);
	if (r < 0 || (r = buf_steal(&b, out)) < 0) {
		buf_free(&b);
		return r;
	}
	return 0;
}

/* Allocate the next ID (loop thread): max(last + 1, now * 1e6). */
static int
id_next(struct store *st, char id[STORE_ID_LEN + 1])
{
	struct timespec ts;
	uint64_t base = 0, v;

	if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && ts.tv_sec > 0)
		base = (uint64_t)ts.tv_sec * 1000000u;
	v = st->last_id + 1 > base ? st->last_id + 1 : base;
	if (v > ID_MAX)
		return -EOVERFLOW;
	st->last_id = v;
	if (snprintf(id, STORE_ID_LEN + 1, "%016" PRIu64, v) != STORE_ID_LEN)
		return -EOVERFLOW;
	return 0;
}

/* Make or check BASE/Queue or Queue/corrupt (rel) at open; its fd. */
static int
open_folder(struct store *st, int parent, const char *name, const char *rel,
	mode_t mode, int *out)
{
	bool made = false, fixed = false;
	int fd, r;

	if (mkdirat(parent, name, mode) == 0)
		made = true;
	else if (errno != EEXIST)
		return -errno;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
		O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if ((r = store__fix_mode(fd, mode, &fixed)) < 0) {
		close(fd);
		return r;
	}
	if (fixed && !made && st->log)
		log_msg(st->log, LOG_QUEUE, LOG_PROBLEMS, "folder %s had the "
			"wrong mode: fixed", rel);
	if (made && (fsync(fd) < 0 || fsync(parent) < 0)) {
		r = -errno;
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

/*
 * Does Queue/'s file system commit a new file's name with the file's own
 * fsync? ext4 does (with a journal the fsync commits the transaction that
 * holds the rename; without one it syncs a new file's parent directory)
 * and so does XFS (the fsync forces the log past the rename). Anything
 * else, or anything unknown, keeps the directory fsync.
 */
static void
names_probe(struct store *st, int qfd)
{
	static const char *const known[] = { "ext4", "xfs" };
	struct stat sb;
	char *type = NULL;
	int r;

	if (fstat(qfd, &sb) < 0)
		r = -errno;
	else
		r = mountinfo_dev_fstype(sb.st_dev, &type);
	for (size_t i = 0; r == 0 && i < sizeof(known) / sizeof(*known); i++)
		if (strcmp(type, known[i]) == 0) {
			st->names_by_file = true;
			st->qdev = sb.st_dev;
		}
	if (st->log && type)
		log_msg(st->log, LOG_QUEUE, LOG_MAJOR, "Queue is on %s: %s",
			type, st->names_by_file ? "one flush per commit (the "
			"file's fsync commits its name)" : "file fsync, then "
			"directory fsync");
	else if (st->log)
		log_msg(st->log, LOG_QUEUE, LOG_MAJOR, "Queue: file system "
			"unknown (%s): file fsync, then directory fsync",
			strerror(-r));
	free(type);
}

/* Open BASE/Queue, creating it and Queue/corrupt as needed. */
int
store_open(uv_loop_t *loop, const char *base_dir,
	const struct store_settings *s, struct logger *lg, struct store **out)
{
	struct store *st;
	struct buf path = BUF_INIT;
	struct sdir *d;
	char *cwd = NULL;
	int bfd = -1, qfd = -1, cfd = -1, r;

	if (loop == NULL || base_dir == NULL || s == NULL || out == NULL ||
	    (s->foldering != 0 && s->foldering != 10 && s->foldering != 100 &&
	    s->foldering != FOLDERING_AUTO))
		return -EINVAL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -ENOMEM;
	st->loop = loop;
	st->log = lg;
	st->set = *s;
	/* no count: bodies are simply not kept (keep_body checks) */
	if ((st->kept = calloc(1, sizeof(*st->kept))) != NULL)
		st->kept->refs = 1;
	atomic_init(&st->dir_fsyncs, 0);
	if ((r = uv_mutex_init(&st->dirs_mu)) < 0) {
		kept_unref(st->kept);
		free(st);
		return r;
	}
	if (base_dir[0] != '/' && (cwd = getcwd(NULL, 0)) == NULL) {
		r = -errno;
		goto fail;
	}
	if ((r = buf_printf(&path, "%s%s%s/Queue", cwd ? cwd : "",
	    cwd ? "/" : "", base_dir)) < 0 ||
	    (r = buf_steal(&path, &st->qpath)) < 0)
		goto fail;
	/* start-up only: the loop serves nothing yet */
	if ((bfd = open(base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = open_folder(st, bfd, "Queue", "Queue", MODE_DIR, &qfd)) < 0 ||
	    (r = open_folder(st, qfd, CORRUPT_DIR, "Queue/" CORRUPT_DIR,
	    MODE_CORRUPT, &cfd)) < 0)
		goto fail;
	close(cfd);
	cfd = -1;
	if (!s->dir_fsync_always)
		names_probe(st, qfd);
	else if (st->log)
		log_msg(st->log, LOG_QUEUE, LOG_MAJOR, "Queue: file fsync, then "
			"directory fsync ([queue] directory-fsync = always)");
	if ((r = store__sdir_get(st, "", false, &d)) < 0 ||
	    (r = store__sdir_get(st, CORRUPT_DIR, false, &d)) < 0)
		goto fail;
	close(qfd);
	close(bfd);
	free(cwd);
	*out = st;
	return 0;
fail:
	if (cfd >= 0)
		close(cfd);
	if (qfd >= 0)
		close(qfd);
	if (bfd >= 0)
		close(bfd);
	free(cwd);
	buf_free(&path);
	store__sdirs_free(st);
	uv_mutex_destroy(&st->dirs_mu);
	kept_unref(st->kept);
	free(st->qpath);
	free(st);
	return r;
}

/* Messages in the queue: live files plus commits and imports in flight. */
size_t
store_count(const struct store *st)
{
	return st->live + st->inflight;
}

/* Is the queue limit reached? */
bool
store_full(const struct store *st)
{
	return (uint64_t)store_count(st) >= st->set.limit;
}

/* Disk operations queued or running. */
unsigned
store_busy(const struct store *st)
{
	return st->busy;
}

/* Counters for tests and metrics. */
void
store_stats(const struct store *st, uint64_t *commits, uint64_t *dir_fsyncs)
{
	if (commits)
		*commits = st->commits;
	if (dir_fsyncs)
		*dir_fsyncs = atomic_load(&((struct store *)st)->dir_fsyncs);
}

/* Free everything. */
void
store__free(struct store *st)
{
	store__sdirs_free(st);
	uv_mutex_destroy(&st->dirs_mu);
	kept_unref(st->kept);
	free(st->qpath);
	free(st);
}

/* Free st now, or when the last disk operation has reported. */
void
store_close(struct store *st)
{
	if (st == NULL || st->closing)
		return;
	if (st->busy > 0) {
		st->closing = true;
		return;
	}
	store__free(st);
}

/* A work item reported: true when the store must be freed after its cb. */
bool
store__work_done(struct store *st)
{
	st->busy--;
	return st->closing && st->busy == 0;
}

/* A new write job; see store_int.h. */
int
store__wjob_new(struct store *st, size_t size, store_commit_cb cb,
	void *arg, struct store__wjob **out)
{
	struct store__wjob *w = calloc(1, size);
	int r;

	if (w == NULL)
		return -ENOMEM;
	if ((r = store__msg_place(st, &w->m, &w->folder)) < 0) {
		free(w);
		return r;
	}
	w->req.data = w;
	w->st = st;
	w->cb = cb;
	w->arg = arg;
	*out = w;
	return 0;
}

/* Queue a write job on the pool. */
int
store__wjob_queue(struct store__wjob *w, uv_work_cb work,
	uv_after_work_cb after)
{
	int r;

	if ((r = uv_queue_work(w->st->loop, &w->req, work, after)) < 0)
		return r;
	w->st->inflight++;
	w->st->busy++;
	return 0;
}

/* Free a job that never ran. */
void
store__wjob_free(struct store__wjob *w)
{
	store_msg_free(w->m);
	free(w->folder);
	free(w);
}

/* A write job is back; see store_int.h. */
int
store__wjob_back(struct store__wjob *w, int status)
{
	store__notes_flush(w->st, &w->notes);
	w->st->inflight--;
	return status < 0 ? status : w->err;
}

/* End a write job; see store_int.h. */
void
store__wjob_end(struct store__wjob *w, int err, struct store_msg *m)
{
	struct store *st = w->st;
	store_commit_cb cb = w->cb;
	void *arg = w->arg;
	bool last;

	free(w->folder);
	free(w);
	last = store__work_done(st);
	cb(arg, err, m);
	if (last)
		store__free(st);
}

/* May a new message be written now (-EBUSY recovering, -ENOSPC full)? */
int
store__commit_allowed(const struct store *st, unsigned flags)
{
	if (st->recovering || st->closing)
		return -EBUSY;
	if (!(flags & STORE_EXEMPT_LIMIT) && store_full(st))
		return -ENOSPC;
	return 0;
}

/* A new store_msg with a fresh ID, its folder ("" or "NN") and paths. */
int
store__msg_place(struct store *st, struct store_msg **mp, char **folder)
{
	struct store_msg *m = store__msg_new();
	int r;

	*folder = NULL;
	if (m == NULL)
		return -ENOMEM;
	if ((r = id_next(st, m->id)) < 0 ||
	    (r = folder_name(st, m->id, folder)) < 0 ||
	    (r = store__msg_set_paths(st, m, *folder)) < 0) {
		store_msg_free(m);
		free(*folder);
		*folder = NULL;
		return r;
	}
	*mp = m;
	return 0;
}
