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
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "mountinfo.h"

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

/* A commit in flight. */
struct commit_job {
	uv_work_t req;
	struct store *st;
	struct store_msg *m;
	char *folder;		/* "" or "NN" */
	char *data;		/* the message bytes (stolen) */
	size_t len;
	char *unlink_after;
	store_commit_cb cb;
	void *arg;
	int err;
	struct notes notes;
};

/* A mark in flight. */
struct mark_job {
	uv_work_t req;
	struct store *st;
	struct store_msg *m;
	char *folder;
	const char *name;	/* file name, inside m->relpath */
	size_t off;		/* the state byte's offset */
	char state;
	bool remove;		/* no recipient left: unlink */
	bool removed;
	store_mark_cb cb;
	void *arg;
	int err;
	struct notes notes;
};

/* An import in flight. */
struct import_job {
	uv_work_t req;
	struct store *st;
	struct store_msg *m;
	char *folder;
	char *src;
	bool counted;		/* the file reached Queue/ */
	store_commit_cb cb;
	void *arg;
	int err;
	struct notes notes;
};

/* The recovery scan. */
struct recover_job {
	uv_work_t req;
	struct store *st;
	store_msg_cb found;
	store_scan_cb done;
	void *arg;
	struct store_msg **msgs;
	size_t nmsgs;
	size_t cap;
	size_t corrupt;
	uint64_t max_id;
	int err;
	struct notes notes;
};

/* Queue a log line for the loop thread; dropped only when out of memory. */
static __attribute__((format(printf, 3, 4))) void
notes_add(struct notes *ns, enum log_level l, const char *fmt, ...)
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
static void
notes_flush(struct store *st, struct notes *ns)
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
	envelope_free(&m->env);
	free(m);
}

/*
 * The count of message bytes kept in memory: shared by the store and
 * every message holding a body, freed with the last of them (a message
 * may outlive the store). Loop thread only.
 */
struct store_kept {
	size_t bytes;
	unsigned refs;
};

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
static struct store_msg *
msg_new(void)
{
	struct store_msg *m = calloc(1, sizeof(*m));

	if (m != NULL)
		envelope_init(&m->env);
	return m;
}

/* Fill m->relpath and m->path for ID.msg in folder ("" = Queue/). */
static int
msg_set_paths(const struct store *st, struct store_msg *m, const char *folder)
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
static void
close_keep(int fd)
{
	int e = errno;

	if (fd >= 0)
		close(fd);
	errno = e;
}

/* Parse a leading 16-digit ID from a file name; 0 when there is none. */
static uint64_t
name_id(const char *name, bool *exact_msg)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < STORE_ID_LEN; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	if (name[i] != '\0' && name[i] != '.')
		return 0;
	if (exact_msg)
		*exact_msg = strcmp(name + i, ".msg") == 0;
	return v;
}

/* Does name end in suffix? */
static bool
has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s && strcmp(name + n - s, suffix) == 0;
}

/* rename without ever replacing a file: -EEXIST if newname exists. */
static int
rename_noreplace(int olddir, const char *oldname, int newdir,
	const char *newname)
{
	struct stat sb;

	if (renameat2(olddir, oldname, newdir, newname, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* file system without RENAME_NOREPLACE: we are Queue/'s only writer */
	if (fstatat(newdir, newname, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	return renameat(olddir, oldname, newdir, newname) == 0 ? 0 : -errno;
}

/* Give an open file or folder the queue's mode (fixed: it had another). */
static int
fix_mode(int fd, mode_t mode, bool *fixed)
{
	struct stat sb;

	*fixed = false;
	if (fstat(fd, &sb) < 0)
		return -errno;
	if ((sb.st_mode & 07777) != mode) {
		if (fchmod(fd, mode) < 0)
			return -errno;
		*fixed = true;
	}
	return 0;
}

/* Run or join a directory fsync that starts after the caller's change. */
static int
sdir_sync(struct store *st, struct sdir *d)
{
	uint64_t target, gen;
	int r;

	uv_mutex_lock(&d->mu);
	/* a running fsync may have started before our change: wait for next */
	target = d->started + 1;
	while (d->completed < target) {
		if (d->running) {
			uv_cond_wait(&d->cv, &d->mu);
			continue;
		}
		/* leader: no fsync running, so run the one everybody waits on */
		d->running = true;
		gen = ++d->started;
		uv_mutex_unlock(&d->mu);
		r = fsync(d->fd) == 0 ? 0 : -errno;
		atomic_fetch_add(&st->dir_fsyncs, 1);
		uv_mutex_lock(&d->mu);
		d->running = false;
		d->completed = gen;
		if (r < 0) {
			d->failed = gen;
			d->fail_err = r;
		}
		uv_cond_broadcast(&d->cv);
	}
	/* conservative: any failed fsync since ours was due fails us too */
	r = d->failed >= target ? d->fail_err : 0;
	uv_mutex_unlock(&d->mu);
	return r;
}

/* Absolute path of folder name ("" = Queue/ itself). */
static int
sdir_path(const struct store *st, const char *name, struct buf *out)
{
	return name[0] ? buf_printf(out, "%s/%s", st->qpath, name) :
		buf_puts(out, st->qpath);
}

/* Open (and with create, make) the folder of d; d->mu is held. */
static int
sdir_open_locked(struct store *st, struct sdir *d, bool create)
{
	struct buf path = BUF_INIT;
	bool corrupt = strcmp(d->name, CORRUPT_DIR) == 0, made = false, fixed;
	struct sdir *root;
	struct stat sb;
	int r, fd;

	if ((r = sdir_path(st, d->name, &path)) < 0)
		return r;
	fd = open(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create && d->name[0]) {
		/* a new subfolder: made, owned, then its parent fsynced */
		if (mkdir(path.data, corrupt ? MODE_CORRUPT : MODE_DIR) < 0 &&
		    errno != EEXIST) {
			r = -errno;
			goto out;
		}
		made = true;
		fd = open(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (made) {
		if ((r = fix_mode(fd, corrupt ? MODE_CORRUPT : MODE_DIR,
		    &fixed)) < 0 || (r = fsync(fd) ? -errno : 0) < 0) {
			close(fd);
			goto out;
		}
	}
	d->fd = fd;
	d->names_by_file = st->names_by_file && fstat(fd, &sb) == 0 &&
		sb.st_dev == st->qdev;
	r = 0;
	if (made) {
		/* lock order is always child then root: no cycle */
		uv_mutex_lock(&st->dirs_mu);
		for (root = st->dirs; root && root->name[0]; root = root->next)
			;
		uv_mutex_unlock(&st->dirs_mu);
		if (root != NULL && root != d && root->fd >= 0)
			r = sdir_sync(st, root);
	}
out:
	buf_free(&path);
	return r;
}

/* The group-commit object of folder name, its directory open (or made). */
static int
sdir_get(struct store *st, const char *name, bool create, struct sdir **out)
{
	struct sdir *d;
	int r = 0;

	uv_mutex_lock(&st->dirs_mu);
	for (d = st->dirs; d != NULL; d = d->next)
		if (strcmp(d->name, name) == 0)
			break;
	if (d == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL ||
		    (d->name = strdup(name)) == NULL) {
			free(d);
			uv_mutex_unlock(&st->dirs_mu);
			return -ENOMEM;
		}
		d->fd = -1;
		if ((r = uv_mutex_init(&d->mu)) < 0) {
			free(d->name);
			free(d);
			uv_mutex_unlock(&st->dirs_mu);
			return r;
		}
		if ((r = uv_cond_init(&d->cv)) < 0) {
			uv_mutex_destroy(&d->mu);
			free(d->name);
			free(d);
			uv_mutex_unlock(&st->dirs_mu);
			return r;
		}
		d->next = st->dirs;
		st->dirs = d;
	}
	uv_mutex_unlock(&st->dirs_mu);
	uv_mutex_lock(&d->mu);
	if (d->fd < 0)
		r = sdir_open_locked(st, d, create);
	uv_mutex_unlock(&d->mu);
	if (r < 0)
		return r;
	*out = d;
	return 0;
}

/* Free every folder object. */
static void
sdirs_free(struct store *st)
{
	struct sdir *d, *next;

	for (d = st->dirs; d != NULL; d = next) {
		next = d->next;
		if (d->fd >= 0)
			close(d->fd);
		uv_cond_destroy(&d->cv);
		uv_mutex_destroy(&d->mu);
		free(d->name);
		free(d);
	}
	st->dirs = NULL;
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
	uint64_t v = name_id(id, NULL);
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
	if ((r = fix_mode(fd, mode, &fixed)) < 0) {
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
	if ((r = sdir_get(st, "", false, &d)) < 0 ||
	    (r = sdir_get(st, CORRUPT_DIR, false, &d)) < 0)
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
	sdirs_free(st);
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
static void
store_free(struct store *st)
{
	sdirs_free(st);
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
	store_free(st);
}

/* A work item reported: true when the store must be freed after its cb. */
static bool
work_done(struct store *st)
{
	st->busy--;
	return st->closing && st->busy == 0;
}

/* Write all iov bytes, looping on partial writes. */
static int
write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;	/* no progress: never spin */
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* A new queue file on its way: ID.tmp, then ID.msg (pool threads only). */
struct tmpfile {
	struct sdir *d;		/* its folder */
	int fd;			/* -1 until created */
	struct buf tmp, msg;	/* "ID.tmp", "ID.msg" */
	bool have_tmp, have_msg;
};

#define TMPFILE_INIT { NULL, -1, BUF_INIT, BUF_INIT, false, false }

/* S0 -> S1: create folder/ID.tmp (O_EXCL) with the queue's mode. */
static int
tf_create(struct store *st, struct tmpfile *tf, const char *folder,
	const char *id)
{
	bool fixed;
	int r;

	if ((r = buf_printf(&tf->tmp, "%s.tmp", id)) < 0 ||
	    (r = buf_printf(&tf->msg, "%s.msg", id)) < 0 ||
	    (r = sdir_get(st, folder, true, &tf->d)) < 0)
		return r;
	/* S0 -> S1: ID.tmp exists, not yet a message */
	tf->fd = openat(tf->d->fd, tf->tmp.data, O_CREAT | O_EXCL | O_WRONLY |
		O_CLOEXEC, MODE_FILE);
	if (tf->fd < 0)
		return -errno;
	tf->have_tmp = true;
	return fix_mode(tf->fd, MODE_FILE, &fixed);
}

/* S1 -> S2: the written ID.tmp becomes a durable ID.msg; fd closed. */
static int
tf_publish(struct store *st, struct tmpfile *tf)
{
	struct sdir *d = tf->d;
	int r;

	/*
	 * Strict order: the data is durable before the name points at it,
	 * and the directory fsync then commits the rename. Where the file's
	 * fsync commits its new name too (names_by_file), rename first and
	 * let that one flush commit both; a crash before it ends can leave an
	 * incomplete ID.msg, which recovery keeps in corrupt/ (QUEUE.md).
	 */
	if (!d->names_by_file && fsync(tf->fd) < 0)
		return -errno;
	if ((r = rename_noreplace(d->fd, tf->tmp.data, d->fd,
	    tf->msg.data)) < 0)
		return r;
	tf->have_tmp = false;
	tf->have_msg = true;
	/* S1 -> S2: committed by one of the two */
	if (d->names_by_file)
		r = fsync(tf->fd) == 0 ? 0 : -errno;
	else
		r = sdir_sync(st, d);
	if (r < 0)
		return r;
	r = close(tf->fd) == 0 ? 0 : -errno;
	tf->fd = -1;
	return r;
}

/* S1 -> S0 after a failure: remove whatever of the new file exists. */
static void
tf_withdraw(struct store *st, struct tmpfile *tf, const char *folder,
	const char *id, struct notes *ns)
{
	if (tf->fd >= 0)
		close(tf->fd);
	tf->fd = -1;
	if (tf->have_tmp && unlinkat(tf->d->fd, tf->tmp.data, 0) < 0 &&
	    errno != ENOENT)
		notes_add(ns, LOG_FAILURES, "cannot remove Queue/%s%s%s: %s "
			"(removed at restart)", folder, folder[0] ? "/" : "",
			tf->tmp.data, strerror(errno));
	tf->have_tmp = false;
	if (tf->have_msg) {
		/* the sender hears "failed": the message must not stay */
		if (unlinkat(tf->d->fd, tf->msg.data, 0) < 0 ||
		    sdir_sync(st, tf->d) < 0)
			notes_add(ns, LOG_FAILURES, "id=%s: directory fsync "
				"failed and the file could not be withdrawn: "
				"it may be delivered after a restart", id);
	}
	tf->have_msg = false;
}

/* Free the names (the file is closed by publish or withdraw). */
static void
tf_free(struct tmpfile *tf)
{
	buf_free(&tf->tmp);
	buf_free(&tf->msg);
}

/* Committed: only now may the source (e.g. the .sub) go. */
static void
unlink_source(const char *path, const char *id, struct notes *ns)
{
	if (path && unlink(path) < 0)
		notes_add(ns, errno == ENOENT ? LOG_PROBLEMS : LOG_FAILURES,
			"id=%s queued, but cannot remove %s: %s (it may be "
			"submitted again)", id, path, strerror(errno));
}

/* Pool: S0 -> S1 (ID.tmp) -> S2 (ID.msg, directory fsynced). */
static void
commit_work(uv_work_t *req)
{
	struct commit_job *j = req->data;
	struct store *st = j->st;
	struct store_msg *m = j->m;
	struct tmpfile tf = TMPFILE_INIT;
	struct buf hdr = BUF_INIT;
	struct iovec iov[2];
	int r;

	m->env.size = j->len;
	if ((m->env.uid[0] == '\0' && (r = envelope_new_uid(m->env.uid)) < 0) ||
	    (r = envelope_format(&m->env, &hdr)) < 0)
		goto fail;
	m->msg_off = m->env.header_len;
	m->msg_len = m->env.size;
	m->pending = envelope_pending(&m->env);
	if ((r = tf_create(st, &tf, j->folder, m->id)) < 0)
		goto fail;
	iov[0].iov_base = hdr.data;
	iov[0].iov_len = hdr.len;
	iov[1].iov_base = j->data;
	iov[1].iov_len = j->len;
	if ((r = write_all(tf.fd, iov, j->len ? 2 : 1)) < 0 ||
	    (r = tf_publish(st, &tf)) < 0)
		goto fail;
	unlink_source(j->unlink_after, m->id, &j->notes);
	j->err = 0;
	goto out;
fail:
	j->err = r;
	tf_withdraw(st, &tf, j->folder, m->id, &j->notes);
out:
	tf_free(&tf);
	buf_free(&hdr);
}

/*
 * Keep the committed message bytes (j->data, without the envelope) in
 * memory when small, so its first deliveries feed programs from memory
 * instead of reading the file back on the thread pool, where the read
 * would wait behind other commits' fsyncs.
 */
static void
keep_body(struct store *st, struct store_msg *m, struct commit_job *j)
{
	if (st->kept == NULL || j->data == NULL || j->len != m->msg_len ||
	    j->len > STORE_KEEP_MAX || st->kept->bytes + j->len >
	    STORE_KEEP_TOTAL)
		return;
	m->body = j->data;
	j->data = NULL;
	st->kept->bytes += j->len;
	st->kept->refs++;
	m->kept = st->kept;
}

/* Loop: a commit finished. */
static void
commit_after(uv_work_t *req, int status)
{
	struct commit_job *j = req->data;
	struct store *st = j->st;
	struct store_msg *m = j->m;
	int err = status < 0 ? status : j->err;
	bool last;

	notes_flush(st, &j->notes);
	st->inflight--;
	if (err == 0) {
		st->live++;
		st->commits++;
		keep_body(st, m, j);
	} else {
		if (st->log)
			log_msg(st->log, LOG_QUEUE, LOG_FAILURES, "id=%s cannot "
				"be queued: %s", m->id, strerror(-err));
		store_msg_free(m);
		m = NULL;
	}
	last = work_done(st);
	j->cb(j->arg, err, m);
	free(j->folder);
	free(j->data);
	free(j->unlink_after);
	free(j);
	if (last)
		store_free(st);
}

/* May a new message be written now (-EBUSY recovering, -ENOSPC full)? */
static int
commit_allowed(const struct store *st, unsigned flags)
{
	if (st->recovering || st->closing)
		return -EBUSY;
	if (!(flags & STORE_EXEMPT_LIMIT) && store_full(st))
		return -ENOSPC;
	return 0;
}

/* A new store_msg with a fresh ID, its folder ("" or "NN") and paths. */
static int
msg_place(struct store *st, struct store_msg **mp, char **folder)
{
	struct store_msg *m = msg_new();
	int r;

	*folder = NULL;
	if (m == NULL)
		return -ENOMEM;
	if ((r = id_next(st, m->id)) < 0 ||
	    (r = folder_name(st, m->id, folder)) < 0 ||
	    (r = msg_set_paths(st, m, *folder)) < 0) {
		store_msg_free(m);
		free(*folder);
		*folder = NULL;
		return r;
	}
	*mp = m;
	return 0;
}

/* Write a new queue file durably from env and message. */
int
store_commit(struct store *st, struct envelope *env, struct buf *message,
	const char *unlink_after, unsigned flags, store_commit_cb cb,
	void *arg)
{
	struct commit_job *j;
	struct store_msg *m;
	int r;

	if (st == NULL || env == NULL || message == NULL || cb == NULL)
		return -EINVAL;
	if ((r = commit_allowed(st, flags)) < 0)
		return r;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	if ((r = msg_place(st, &j->m, &j->folder)) < 0) {
		free(j);
		return r;
	}
	m = j->m;
	j->req.data = j;
	j->st = st;
	j->cb = cb;
	j->arg = arg;
	if (unlink_after && (j->unlink_after = strdup(unlink_after)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	/* take the envelope and the bytes; on failure below, give them back */
	m->env = *env;
	j->data = message->data;
	j->len = message->len;
	if ((r = uv_queue_work(st->loop, &j->req, commit_work,
	    commit_after)) < 0) {
		envelope_init(&m->env);
		goto fail;
	}
	envelope_init(env);
	*message = (struct buf)BUF_INIT;
	st->inflight++;
	st->busy++;
	return 0;
fail:
	store_msg_free(m);
	free(j->folder);
	free(j->unlink_after);
	free(j);
	return r;
}

/* ------------------------------------------------------------------ */
/* Streamed commits (store_draft_*).                                  */

#define DRAFT_SLICE (8 * 1024 * 1024)	/* copied per pool job, at most */

/* What a draft's current step is. */
enum draft_op { DOP_WRITE, DOP_COPY, DOP_COMMIT, DOP_ABORT };

/* A streamed queue file being written. */
struct store_draft {
	uv_work_t req;
	struct store *st;
	struct store_msg *m;	/* ID, paths, envelope (size set at commit) */
	char *folder;
	struct tmpfile tf;	/* ID.tmp once the first step made it */
	size_t room;		/* bytes reserved for the envelope */
	struct buf head;	/* first message bytes, written by step one */
	struct buf chunk;	/* the bytes of a write */
	uint64_t written;	/* message bytes in the file */
	int err;		/* a failed step: the commit fails with it */
	bool busy;		/* a step is queued or running */
	bool aborted;		/* store_draft_abort: no more callbacks */
	enum draft_op op;
	int step_err;		/* result of the current step */
	uint64_t step_n;	/* bytes a write step took */
	/* a copy: source, where it stands, and the CR held between chunks */
	int src;
	uint64_t src_off, src_max, copied;
	unsigned copy_flags;
	bool cr, copy_done;
	store_draft_cb cb;
	store_commit_cb commit_cb;
	void *arg;
	char *unlink_after;
	struct notes notes;
};

static void draft_after(uv_work_t *req, int status);

/* pwrite all n bytes at off (EINTR and partial writes handled). */
static int
pwrite_all(int fd, const char *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;	/* no progress: never spin */
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Append n message bytes after the reserved room; start their writeback. */
static int
draft_append(struct store_draft *d, const char *p, size_t n)
{
	uint64_t off = d->room + d->written;
	int r;

	if (n == 0)
		return 0;
	if ((r = pwrite_all(d->tf.fd, p, n, off)) < 0)
		return r;
	d->written += n;
	/* a head start for the commit's fsync; a hint, so errors are moot */
	(void)sync_file_range(d->tf.fd, (off64_t)off, (off64_t)n,
		SYNC_FILE_RANGE_WRITE);
	return 0;
}

/* Pool: ID.tmp exists (made by the first step) and the head is in it. */
static int
draft_ready(struct store_draft *d)
{
	int r;

	if (d->tf.fd < 0 && !d->tf.have_tmp &&
	    (r = tf_create(d->st, &d->tf, d->folder, d->m->id)) < 0)
		return r;
	if (d->tf.fd < 0)
		return -EBADF;
	if (d->head.len > 0) {
		if ((r = draft_append(d, d->head.data, d->head.len)) < 0)
			return r;
		buf_free(&d->head);
	}
	return 0;
}

/* Pool: copy up to one slice of the source, converting when asked. */
static int
draft_copy_slice(struct store_draft *d)
{
	char *in = malloc(STORE_COPY_CHUNK), *out = NULL;
	uint64_t sliced = 0;
	int r = 0;

	if (in == NULL || (d->copy_flags & STORE_COPY_CRLF &&
	    (out = malloc(STORE_COPY_CHUNK + 1)) == NULL)) {
		free(in);
		return -ENOMEM;
	}
	while (sliced < DRAFT_SLICE) {
		ssize_t n = pread(d->src, in, STORE_COPY_CHUNK,
			(off_t)(d->src_off + d->copied));
		size_t o;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0) {
			/* the end: a CR held back was a lone one */
			if (d->cr && (r = draft_append(d, "\r", 1)) == 0)
				d->cr = false;
			d->copy_done = r == 0;
			break;
		}
		if ((uint64_t)n > d->src_max - d->copied) {
			r = -EFBIG;
			break;
		}
		d->copied += (uint64_t)n;
		sliced += (uint64_t)n;
		if (out == NULL) {
			r = draft_append(d, in, (size_t)n);
		} else {
			o = mp_crlf_to_lf(in, (size_t)n, out, &d->cr);
			r = draft_append(d, out, o);
		}
		if (r < 0)
			break;
	}
	free(in);
	free(out);
	return r;
}

/* Pool: S1 -> S2 for a draft (envelope into its room, then durable). */
static int
draft_commit_work(struct store_draft *d)
{
	struct store_msg *m = d->m;
	struct buf env = BUF_INIT;
	int r;

	if ((r = d->err) < 0 || (r = draft_ready(d)) < 0)
		return r;
	m->env.size = d->written;
	if ((r = envelope_format_padded(&m->env, d->room, &env)) < 0)
		goto out;
	m->msg_off = m->env.header_len;
	m->msg_len = m->env.size;
	m->pending = envelope_pending(&m->env);
	if ((r = pwrite_all(d->tf.fd, env.data, env.len, 0)) < 0 ||
	    (r = tf_publish(d->st, &d->tf)) < 0)
		goto out;
	unlink_source(d->unlink_after, m->id, &d->notes);
out:
	buf_free(&env);
	return r;
}

/* Pool: the draft's current step. */
static void
draft_work(uv_work_t *req)
{
	struct store_draft *d = req->data;
	int r = 0;

	/* after a failure the ID.tmp is gone: nothing more is written */
	if ((d->op == DOP_WRITE || d->op == DOP_COPY) && d->err < 0) {
		buf_free(&d->chunk);
		d->step_err = d->err;
		return;
	}
	switch (d->op) {
	case DOP_WRITE:
		if ((r = draft_ready(d)) == 0)
			r = draft_append(d, d->chunk.data, d->chunk.len);
		buf_free(&d->chunk);
		break;
	case DOP_COPY:
		if ((r = draft_ready(d)) == 0)
			r = draft_copy_slice(d);
		break;
	case DOP_COMMIT:
		r = draft_commit_work(d);
		break;
	case DOP_ABORT:
		break;
	}
	if (r < 0 || d->op == DOP_ABORT)
		tf_withdraw(d->st, &d->tf, d->folder, d->m->id, &d->notes);
	d->step_err = r;
}

/* Queue the draft's next step (loop). */
static int
draft_queue(struct store_draft *d, enum draft_op op)
{
	int r;

	d->op = op;
	d->step_err = 0;
	if ((r = uv_queue_work(d->st->loop, &d->req, draft_work,
	    draft_after)) < 0)
		return r;
	d->busy = true;
	return 0;
}

/* Free a draft that is over; true when the store must go after it. */
static bool
draft_free(struct store_draft *d)
{
	struct store *st = d->st;

	notes_flush(st, &d->notes);
	st->inflight--;
	store_msg_free(d->m);
	tf_free(&d->tf);
	buf_free(&d->head);
	buf_free(&d->chunk);
	free(d->folder);
	free(d->unlink_after);
	free(d);
	return work_done(st);
}

/* Loop: S1 -> S0 when no step is in flight (else when it ends). */
static void
draft_give_up(struct store_draft *d)
{
	struct store *st = d->st;

	if (d->tf.fd < 0 && !d->tf.have_tmp) {
		/* nothing on disk yet */
		if (draft_free(d))
			store_free(st);
		return;
	}
	if (draft_queue(d, DOP_ABORT) == 0)
		return;
	/* no pool: the ID.tmp stays and goes at the next recovery */
	if (d->tf.fd >= 0)
		close(d->tf.fd);
	d->tf.fd = -1;
	if (draft_free(d))
		store_free(st);
}

/* Loop: a commit step ended. */
static void
draft_committed(struct store_draft *d, int err)
{
	struct store *st = d->st;
	store_commit_cb cb = d->commit_cb;
	void *arg = d->arg;
	struct store_msg *m = NULL;
	bool last;

	if (err == 0) {
		st->live++;
		st->commits++;
		m = d->m;
		d->m = NULL;
	} else if (st->log) {
		log_msg(st->log, LOG_QUEUE, LOG_FAILURES, "id=%s cannot be "
			"queued: %s", d->m->id, strerror(-err));
	}
	last = draft_free(d);
	cb(arg, err, m);
	if (last)
		store_free(st);
}

/* Loop: a draft's step ended. */
static void
draft_after(uv_work_t *req, int status)
{
	struct store_draft *d = req->data;
	struct store *st = d->st;
	int err = status < 0 ? status : d->step_err;
	bool last;

	d->busy = false;
	notes_flush(st, &d->notes);
	if (d->op == DOP_COMMIT) {
		draft_committed(d, err);
		return;
	}
	if (d->op == DOP_ABORT) {
		if ((last = draft_free(d)))
			store_free(st);
		return;
	}
	if (err < 0 && d->err == 0)
		d->err = err;
	if (d->aborted) {
		draft_give_up(d);
		return;
	}
	if (d->op == DOP_COPY && err == 0 && !d->copy_done) {
		/* the next slice goes behind whatever else the pool has */
		if ((err = draft_queue(d, DOP_COPY)) == 0)
			return;
		d->err = err;
	}
	d->cb(d->arg, err, d->op == DOP_COPY ? d->copied : d->step_n);
}

/* Begin a streamed message. */
int
store_draft_open(struct store *st, struct envelope *env, struct buf *head,
	unsigned flags, struct store_draft **out)
{
	struct store_draft *d;
	int r;

	if (st == NULL || env == NULL || out == NULL)
		return -EINVAL;
	if ((r = commit_allowed(st, flags)) < 0)
		return r;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -ENOMEM;
	if ((r = msg_place(st, &d->m, &d->folder)) < 0) {
		free(d);
		return r;
	}
	d->tf = (struct tmpfile)TMPFILE_INIT;
	d->req.data = d;
	d->st = st;
	d->src = -1;
	d->m->env = *env;
	if ((d->m->env.uid[0] == '\0' &&
	    (r = envelope_new_uid(d->m->env.uid)) < 0) ||
	    (r = envelope_reserve(&d->m->env, &d->room)) < 0) {
		envelope_init(&d->m->env);	/* env stays the caller's */
		store_msg_free(d->m);
		free(d->folder);
		free(d);
		return r;
	}
	envelope_init(env);
	if (head != NULL) {
		d->head = *head;
		*head = (struct buf)BUF_INIT;
	}
	st->inflight++;
	st->busy++;		/* the draft itself, until commit or abort */
	*out = d;
	return 0;
}

/* Append the bytes of b to the message. */
int
store_draft_write(struct store_draft *d, struct buf *b, store_draft_cb cb,
	void *arg)
{
	int r;

	if (d == NULL || b == NULL || cb == NULL || d->aborted)
		return -EINVAL;
	if (d->busy)
		return -EBUSY;
	d->chunk = *b;
	d->step_n = b->len;
	d->cb = cb;
	d->arg = arg;
	if ((r = draft_queue(d, DOP_WRITE)) < 0) {
		d->chunk = (struct buf)BUF_INIT;
		return r;
	}
	*b = (struct buf)BUF_INIT;
	return 0;
}

/* Append fd's bytes from off to its end. */
int
store_draft_copy(struct store_draft *d, int fd, uint64_t off, uint64_t max,
	unsigned flags, store_draft_cb cb, void *arg)
{
	if (d == NULL || fd < 0 || cb == NULL || d->aborted ||
	    (flags & ~(unsigned)STORE_COPY_CRLF) || off > (uint64_t)LLONG_MAX)
		return -EINVAL;
	if (d->busy)
		return -EBUSY;
	d->src = fd;
	d->src_off = off;
	d->src_max = max;
	d->copied = 0;
	d->copy_flags = flags;
	d->cr = false;
	d->copy_done = false;
	d->cb = cb;
	d->arg = arg;
	return draft_queue(d, DOP_COPY);
}

/* S1 -> S2: write the envelope, make the file durable. */
int
store_draft_commit(struct store_draft *d, const char *unlink_after,
	store_commit_cb cb, void *arg)
{
	int r;

	if (d == NULL || cb == NULL || d->aborted)
		return -EINVAL;
	if (d->busy)
		return -EBUSY;
	if (unlink_after && (d->unlink_after = strdup(unlink_after)) == NULL)
		return -ENOMEM;
	d->commit_cb = cb;
	d->arg = arg;
	if ((r = draft_queue(d, DOP_COMMIT)) < 0) {
		free(d->unlink_after);
		d->unlink_after = NULL;
	}
	return r;
}

/* S1 -> S0: give up the draft. */
void
store_draft_abort(struct store_draft *d)
{
	if (d == NULL || d->aborted)
		return;
	d->aborted = true;
	if (!d->busy)
		draft_give_up(d);
}

/* The draft's queue ID. */
const char *
store_draft_id(const struct store_draft *d)
{
	return d->m->id;
}

/* Message bytes written so far. */
uint64_t
store_draft_size(const struct store_draft *d)
{
	return d->written;
}

/* Overwrite the state byte at off, after checking it is one ("rcpt S"). */
static int
write_state(int dirfd, const char *name, size_t off, char state)
{
	char cur[6];
	ssize_t n;
	int fd, r = 0;

	if (off < 5 || off > (size_t)LLONG_MAX)
		return -EINVAL;
	fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = pread(fd, cur, sizeof(cur), (off_t)(off - 5));
	if (n < 0)
		r = -errno;
	else if ((size_t)n != sizeof(cur) || memcmp(cur, "rcpt ", 5) != 0 ||
	    (cur[5] != RCPT_PENDING && cur[5] != RCPT_DELIVERED &&
	    cur[5] != RCPT_FAILED))
		r = -EBADMSG;	/* never write where no state byte is */
	else if ((n = pwrite(fd, &state, 1, (off_t)off)) != 1)
		r = n < 0 ? -errno : -EIO;
	else if (fdatasync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* Pool: S2 -> S3 (one state byte) or S2/S3 -> S4 (unlink, dir fsync). */
static void
mark_work(uv_work_t *req)
{
	struct mark_job *j = req->data;
	struct store *st = j->st;
	struct sdir *d;
	int r;

	if ((r = sdir_get(st, j->folder, false, &d)) < 0)
		goto out;
	if (j->remove) {
		/* S3 -> S4: the unlink, committed by the directory fsync */
		if (unlinkat(d->fd, j->name, 0) < 0 && errno != ENOENT) {
			r = -errno;
			/* keep the result at least: the file goes at restart */
			if (write_state(d->fd, j->name, j->off, j->state) == 0) {
				notes_add(&j->notes, LOG_PROBLEMS, "id=%s "
					"finished but cannot be removed: %s "
					"(removed at restart)", j->m->id,
					strerror(-r));
				r = 0;
			}
			goto out;
		}
		j->removed = true;
		r = sdir_sync(st, d);
		goto out;
	}
	/* S2 -> S3: one recipient final, the byte made durable */
	r = write_state(d->fd, j->name, j->off, j->state);
	if (r == -ENOENT) {
		/* a later mark may have removed it: make that durable too */
		int s = sdir_sync(st, d);

		if (s < 0)
			r = s;
	}
out:
	j->err = r;
}

/* Loop: a mark finished. */
static void
mark_after(uv_work_t *req, int status)
{
	struct mark_job *j = req->data;
	struct store *st = j->st;
	int err = status < 0 ? status : j->err;
	bool removed = j->removed, last;

	notes_flush(st, &j->notes);
	if (j->removed && st->live > 0)
		st->live--;
	if (err == -ENOENT && j->m->pending == 0) {
		/* removed by the mark of the last recipient */
		err = 0;
		removed = true;
	}
	if (err < 0)
		removed = false;
	j->m->marks--;
	last = work_done(st);
	j->cb(j->arg, err, removed);
	free(j->folder);
	free(j);
	if (last)
		store_free(st);
}

/* Record recipient rcpt's final state. */
int
store_mark(struct store *st, struct store_msg *m, size_t rcpt,
	enum rcpt_state state, store_mark_cb cb, void *arg)
{
	struct mark_job *j;
	const char *rel, *slash;
	int r;

	if (st == NULL || m == NULL || cb == NULL || rcpt >= m->env.nrcpt ||
	    (state != RCPT_DELIVERED && state != RCPT_FAILED) ||
	    m->relpath == NULL || strncmp(m->relpath, "Queue/", 6) != 0)
		return -EINVAL;
	if (st->closing)
		return -EBUSY;
	if (m->env.rcpt[rcpt].state != RCPT_PENDING || m->pending == 0)
		return -EALREADY;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	rel = m->relpath + 6;
	slash = strrchr(rel, '/');
	j->folder = slash ? mp_strndup(rel, (size_t)(slash - rel)) :
		strdup("");
	if (j->folder == NULL) {
		free(j);
		return -ENOMEM;
	}
	j->req.data = j;
	j->st = st;
	j->m = m;
	j->name = slash ? slash + 1 : rel;
	j->off = m->env.rcpt[rcpt].state_off;
	j->state = (char)state;
	j->remove = m->pending == 1;
	j->cb = cb;
	j->arg = arg;
	if ((r = uv_queue_work(st->loop, &j->req, mark_work,
	    mark_after)) < 0) {
		free(j->folder);
		free(j);
		return r;
	}
	/* the caller sees the new state at once; the disk follows */
	m->env.rcpt[rcpt].state = (char)state;
	m->pending--;
	m->marks++;
	st->busy++;
	return 0;
}

/*
 * Read and check the envelope of the open file fd: 0, -EBADMSG (with
 * why and line, 0 when not tied to a line) or -errno.
 */
static int
load_envelope(int fd, struct envelope *e, const char **why, unsigned *line)
{
	struct buf b = BUF_INIT;
	struct stat sb;
	ssize_t n;
	int r;

	*why = NULL;
	*line = 0;
	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EINVAL;
	for (;;) {
		if ((r = buf_reserve(&b, READ_CHUNK)) < 0)
			break;
		n = pread(fd, b.data + b.len, READ_CHUNK, (off_t)b.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		b.len += (size_t)n;
		b.data[b.len] = '\0';
		envelope_free(e);
		r = envelope_parse(b.data, b.len, e, why, line);
		if (r == -EAGAIN && n == 0) {
			*why = "the file ends inside the envelope";
			*line = 0;
			r = -EBADMSG;
		} else if (r == -EINVAL) {
			if (*why == NULL)
				*why = "bad envelope";
			r = -EBADMSG;
		}
		if (r != -EAGAIN)
			break;
	}
	buf_free(&b);
	if (r == 0 && (e->size > (uint64_t)sb.st_size ||
	    (uint64_t)sb.st_size - e->size != e->header_len)) {
		*why = "the file size is not the envelope length plus size";
		*line = 0;
		r = -EBADMSG;
	}
	if (r < 0)
		envelope_free(e);
	return r;
}

/* Move dirfd/name into Queue/corrupt/ (S5), never over another file. */
static int
quarantine(struct store *st, int dirfd, const char *name, struct buf *dest)
{
	const char *base = strrchr(name, '/');
	struct sdir *c;
	int r;

	base = base ? base + 1 : name;
	if ((r = sdir_get(st, CORRUPT_DIR, true, &c)) < 0)
		return r;
	for (unsigned i = 0;; i++) {
		buf_reset(dest);
		if ((r = i ? buf_printf(dest, "%s.%u", base, i) :
		    buf_puts(dest, base)) < 0)
			return r;
		r = rename_noreplace(dirfd, name, c->fd, dest->data);
		if (r != -EEXIST || i == UINT_MAX)
			break;
	}
	if (r == 0)
		r = sdir_sync(st, c);
	return r;
}

/* Log (as a note) why a file is corrupt and where it went. */
static void
note_corrupt(struct notes *ns, const char *rel, const char *why,
	unsigned line, int moved, const struct buf *dest)
{
	struct buf where = BUF_INIT;

	if (line)
		buf_printf(&where, "line %u: ", line);
	if (moved == 0)
		notes_add(ns, LOG_FAILURES, "corrupt queue file %s (%s%s): "
			"moved to Queue/corrupt/%s", rel, where.data ?
			where.data : "", why, dest->data);
	else
		notes_add(ns, LOG_FAILURES, "corrupt queue file %s (%s%s): "
			"cannot move it to Queue/corrupt/: %s", rel, where.data ?
			where.data : "", why, strerror(-moved));
	buf_free(&where);
}

/* Add a found message to the scan result. */
static int
recover_push(struct recover_job *j, struct store_msg *m)
{
	if (j->nmsgs == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 64;
		struct store_msg **v = realloc(j->msgs, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		j->msgs = v;
		j->cap = cap;
	}
	j->msgs[j->nmsgs++] = m;
	return 0;
}

/* Recovery of one ID.msg in folder d; sets *changed when it unlinks. */
static void
recover_msg(struct recover_job *j, struct sdir *d, const char *rel,
	const char *name, bool *changed)
{
	struct store *st = j->st;
	struct store_msg *m = msg_new();
	struct buf dest = BUF_INIT;
	const char *why;
	unsigned line;
	bool fixed;
	int fd, r;

	if (m == NULL) {
		j->err = -ENOMEM;
		return;
	}
	fd = openat(d->fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
		O_NONBLOCK);
	if (fd < 0) {
		notes_add(&j->notes, LOG_FAILURES, "cannot open queue file %s:"
			" %s (left in place)", rel, strerror(errno));
		goto out;
	}
	r = load_envelope(fd, &m->env, &why, &line);
	if (r == -EBADMSG) {
		/* S2/S3 -> S5: corrupt, kept for the postmaster */
		close(fd);
		fd = -1;
		r = quarantine(st, d->fd, name, &dest);
		if (r == 0)
			*changed = true;
		note_corrupt(&j->notes, rel, why, line, r, &dest);
		j->corrupt++;
		goto out;
	}
	if (r < 0) {
		notes_add(&j->notes, LOG_FAILURES, "cannot read queue file %s:"
			" %s (left in place)", rel, strerror(-r));
		goto out;
	}
	m->pending = envelope_pending(&m->env);
	if (m->pending == 0) {
		/* S3 -> S4: every recipient final, the unlink was lost */
		if (unlinkat(d->fd, name, 0) == 0) {
			*changed = true;
			notes_add(&j->notes, LOG_LOWLEVEL, "removed %s: every "
				"recipient is final", rel);
		} else {
			notes_add(&j->notes, LOG_FAILURES, "cannot remove "
				"finished %s: %s", rel, strerror(errno));
		}
		goto out;
	}
	if ((r = fix_mode(fd, MODE_FILE, &fixed)) < 0)
		notes_add(&j->notes, LOG_FAILURES, "cannot set the mode of "
			"%s: %s", rel, strerror(-r));
	else if (fixed)
		notes_add(&j->notes, LOG_PROBLEMS, "%s had the wrong mode: "
			"fixed", rel);
	memcpy(m->id, name, STORE_ID_LEN);
	m->id[STORE_ID_LEN] = '\0';
	m->msg_off = m->env.header_len;
	m->msg_len = m->env.size;
	if ((r = msg_set_paths(st, m, d->name)) < 0 ||
	    (r = recover_push(j, m)) < 0) {
		j->err = r;
		goto out;
	}
	m = NULL;
out:
	if (fd >= 0)
		close(fd);
	buf_free(&dest);
	store_msg_free(m);
}

/* Names in the folder open at fd (read all first: we change the folder). */
static int
list_names(int fd, struct strv *out)
{
	DIR *dir;
	struct dirent *de;
	int dfd = dup(fd), r = 0;

	if (dfd < 0)
		return -errno;
	if ((dir = fdopendir(dfd)) == NULL) {
		r = -errno;
		close(dfd);
		return r;
	}
	rewinddir(dir);
	errno = 0;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if ((r = strv_push(out, de->d_name)) < 0)
			break;
		errno = 0;
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(dir);
	return r;
}

/* Note the highest ID among the names. */
static void
recover_ids(struct recover_job *j, const struct strv *names)
{
	for (size_t i = 0; i < names->n; i++) {
		uint64_t v = name_id(names->v[i], NULL);

		if (v > j->max_id)
			j->max_id = v;
	}
}

/* Scan one folder ("" = Queue/ itself) of the queue. */
static void
recover_folder(struct recover_job *j, const char *folder)
{
	struct store *st = j->st;
	struct strv names = STRV_INIT;
	struct buf rel = BUF_INIT;
	struct sdir *d;
	struct stat sb;
	bool changed = false, fixed, exact;
	int r;

	if ((r = sdir_get(st, folder, false, &d)) < 0 ||
	    (r = list_names(d->fd, &names)) < 0) {
		notes_add(&j->notes, LOG_FAILURES, "cannot read folder Queue/%s:"
			" %s", folder, strerror(-r));
		if (j->err == 0)
			j->err = r;
		goto out;
	}
	recover_ids(j, &names);
	if (folder[0]) {
		if ((r = fix_mode(d->fd, MODE_DIR, &fixed)) < 0)
			notes_add(&j->notes, LOG_FAILURES, "cannot set the mode "
				"of Queue/%s: %s", folder, strerror(-r));
		else if (fixed)
			notes_add(&j->notes, LOG_PROBLEMS, "folder Queue/%s had "
				"the wrong mode: fixed", folder);
	}
	for (size_t i = 0; i < names.n; i++) {
		const char *name = names.v[i];

		buf_reset(&rel);
		if ((r = buf_printf(&rel, "Queue/%s%s%s", folder,
		    folder[0] ? "/" : "", name)) < 0) {
			j->err = r;
			break;
		}
		if (fstatat(d->fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			notes_add(&j->notes, LOG_FAILURES, "cannot stat %s: %s",
				rel.data, strerror(errno));
			continue;
		}
		if (S_ISDIR(sb.st_mode)) {
			if (!folder[0] && strcmp(name, CORRUPT_DIR) == 0)
				continue;	/* scanned for IDs only */
			if (!folder[0])
				recover_folder(j, name);
			else
				notes_add(&j->notes, LOG_PROBLEMS, "folder %s is "
					"not part of the queue: left alone",
					rel.data);
			continue;
		}
		if (S_ISREG(sb.st_mode) && has_suffix(name, ".tmp")) {
			/* S1 -> S0: an interrupted commit, never announced */
			if (unlinkat(d->fd, name, 0) == 0) {
				changed = true;
				notes_add(&j->notes, LOG_PROBLEMS, "removed "
					"unfinished %s", rel.data);
			} else {
				notes_add(&j->notes, LOG_FAILURES, "cannot remove "
					"%s: %s", rel.data, strerror(errno));
			}
			continue;
		}
		if (S_ISREG(sb.st_mode) && name_id(name, &exact) != 0 && exact) {
			recover_msg(j, d, rel.data, name, &changed);
			continue;
		}
		notes_add(&j->notes, LOG_PROBLEMS, "%s is not a queue file: left "
			"alone", rel.data);
	}
	if (changed && (r = sdir_sync(st, d)) < 0)
		notes_add(&j->notes, LOG_FAILURES, "cannot fsync Queue/%s: %s",
			folder, strerror(-r));
out:
	strv_free(&names);
	buf_free(&rel);
}

/* Order of IDs (16 digits: text order is number order). */
static int
cmp_msg(const void *a, const void *b)
{
	const struct store_msg *x = *(struct store_msg *const *)a;
	const struct store_msg *y = *(struct store_msg *const *)b;

	return strcmp(x->id, y->id);
}

/* Pool: the whole recovery scan. */
static void
recover_work(uv_work_t *req)
{
	struct recover_job *j = req->data;
	struct store *st = j->st;
	struct strv names = STRV_INIT;
	struct sdir *c;
	bool fixed;
	int r;

	/* corrupt/ only contributes IDs (and its mode) */
	if ((r = sdir_get(st, CORRUPT_DIR, true, &c)) < 0 ||
	    (r = list_names(c->fd, &names)) < 0) {
		notes_add(&j->notes, LOG_FAILURES, "cannot read Queue/corrupt:"
			" %s", strerror(-r));
		j->err = r;
	} else {
		recover_ids(j, &names);
		if (fix_mode(c->fd, MODE_CORRUPT, &fixed) == 0 && fixed)
			notes_add(&j->notes, LOG_PROBLEMS, "folder "
				"Queue/corrupt had the wrong mode: fixed");
	}
	strv_free(&names);
	recover_folder(j, "");
	if (j->nmsgs > 1)
		qsort(j->msgs, j->nmsgs, sizeof(*j->msgs), cmp_msg);
}

/* Loop: hand the found messages over in ID order, then report. */
static void
recover_after(uv_work_t *req, int status)
{
	struct recover_job *j = req->data;
	struct store *st = j->st;
	int err = status < 0 ? status : j->err;
	bool last;

	notes_flush(st, &j->notes);
	st->recovering = false;
	if (j->max_id > st->last_id)
		st->last_id = j->max_id;
	st->live += j->nmsgs;
	if (st->log)
		log_msg(st->log, LOG_QUEUE, LOG_MAJOR, "recovery: %zu messages "
			"in the queue, %zu corrupt", j->nmsgs, j->corrupt);
	last = work_done(st);
	for (size_t i = 0; i < j->nmsgs; i++)
		j->found(j->arg, j->msgs[i]);
	j->done(j->arg, err, j->nmsgs, j->corrupt);
	free(j->msgs);
	free(j);
	if (last)
		store_free(st);
}

/* Start-up recovery of every queue folder. */
int
store_recover(struct store *st, store_msg_cb found, store_scan_cb done,
	void *arg)
{
	struct recover_job *j;
	int r;

	if (st == NULL || found == NULL || done == NULL)
		return -EINVAL;
	if (st->recovering || st->closing || st->busy > 0)
		return -EBUSY;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->req.data = j;
	j->st = st;
	j->found = found;
	j->done = done;
	j->arg = arg;
	if ((r = uv_queue_work(st->loop, &j->req, recover_work,
	    recover_after)) < 0) {
		free(j);
		return r;
	}
	st->recovering = true;
	st->busy++;
	return 0;
}

/* fsync the folder holding path. */
static int
fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, r = 0;

	dir = slash == NULL ? strdup(".") : slash == path ? strdup("/") :
		mp_strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		r = -errno;
	close_keep(fd);
	free(dir);
	return r;
}

/* Pool: ForeignQueue file -> S2/S3 under a fresh ID. */
static void
import_work(uv_work_t *req)
{
	struct import_job *j = req->data;
	struct store *st = j->st;
	struct store_msg *m = j->m;
	struct buf dest = BUF_INIT, name = BUF_INIT;
	struct sdir *d;
	const char *why;
	unsigned line;
	bool fixed;
	int fd, r;

	fd = open(j->src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = load_envelope(fd, &m->env, &why, &line);
	if (r == -EBADMSG) {
		int q = quarantine(st, AT_FDCWD, j->src, &dest);

		note_corrupt(&j->notes, j->src, why, line, q, &dest);
		if (q == 0 && (q = fsync_parent(j->src)) < 0)
			notes_add(&j->notes, LOG_FAILURES, "cannot fsync the "
				"folder of %s: %s", j->src, strerror(-q));
		goto out;
	}
	if (r < 0)
		goto out;
	m->pending = envelope_pending(&m->env);
	if (m->pending == 0) {
		/* nothing left to deliver: as at recovery, it goes */
		if (unlink(j->src) < 0 || (r = fsync_parent(j->src)) < 0) {
			r = r < 0 ? r : -errno;
			goto out;
		}
		notes_add(&j->notes, LOG_PROBLEMS, "%s: every recipient is "
			"final; removed", j->src);
		r = -EALREADY;
		goto out;
	}
	m->msg_off = m->env.header_len;
	m->msg_len = m->env.size;
	/* queue norms before the file enters the queue; then durable bytes */
	if ((r = fix_mode(fd, MODE_FILE, &fixed)) < 0)
		goto out;
	if (fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = buf_printf(&name, "%s.msg", m->id)) < 0 ||
	    (r = sdir_get(st, j->folder, true, &d)) < 0)
		goto out;
	/* S2: the rename moves the message in; EXDEV leaves it where it is */
	if ((r = rename_noreplace(AT_FDCWD, j->src, d->fd, name.data)) < 0)
		goto out;
	j->counted = true;
	if ((r = sdir_sync(st, d)) < 0) {
		notes_add(&j->notes, LOG_FAILURES, "id=%s imported from %s but "
			"the directory fsync failed: %s (delivered after a "
			"restart)", m->id, j->src, strerror(-r));
		goto out;
	}
	if ((r = fsync_parent(j->src)) < 0)
		notes_add(&j->notes, LOG_PROBLEMS, "id=%s imported, but cannot "
			"fsync the folder of %s: %s", m->id, j->src,
			strerror(-r));
	r = 0;
out:
	j->err = r;
	if (fd >= 0)
		close(fd);
	buf_free(&dest);
	buf_free(&name);
}

/* Loop: an import finished. */
static void
import_after(uv_work_t *req, int status)
{
	struct import_job *j = req->data;
	struct store *st = j->st;
	struct store_msg *m = j->m;
	int err = status < 0 ? status : j->err;
	bool last;

	notes_flush(st, &j->notes);
	st->inflight--;
	if (j->counted)
		st->live++;	/* in Queue/ even if not yet durable */
	if (err < 0) {
		store_msg_free(m);
		m = NULL;
	} else if (st->log) {
		log_msg(st->log, LOG_QUEUE, LOG_MAJOR, "id=%s imported from %s",
			m->id, j->src);
	}
	last = work_done(st);
	j->cb(j->arg, err, m);
	free(j->folder);
	free(j->src);
	free(j);
	if (last)
		store_free(st);
}

/* ForeignQueue import of the .msg at src_path. */
int
store_import(struct store *st, const char *src_path, store_commit_cb cb,
	void *arg)
{
	struct import_job *j;
	struct store_msg *m;
	int r;

	if (st == NULL || src_path == NULL || cb == NULL)
		return -EINVAL;
	if (st->recovering || st->closing)
		return -EBUSY;
	if (store_full(st))
		return -ENOSPC;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	if ((r = msg_place(st, &j->m, &j->folder)) < 0) {
		free(j);
		return r;
	}
	m = j->m;
	j->req.data = j;
	j->st = st;
	j->cb = cb;
	j->arg = arg;
	if ((j->src = strdup(src_path)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = uv_queue_work(st->loop, &j->req, import_work,
	    import_after)) < 0)
		goto fail;
	st->inflight++;
	st->busy++;
	return 0;
fail:
	store_msg_free(m);
	free(j->folder);
	free(j->src);
	free(j);
	return r;
}
