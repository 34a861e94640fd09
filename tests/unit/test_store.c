/*
 * Unit tests for store.c on a real libuv loop and real folders under
 * /tmp: commit and read back, unlink_after only after success, queue limit,
 * foldering, marks, recovery (stray .tmp, every kind of corrupt file,
 * finished files, ID order, IDs above every one seen), import, and the
 * group commit of directory fsyncs, and streamed commits (drafts: written
 * piece by piece or copied from a file, the envelope padded into the room
 * kept for it, aborts and failures leaving nothing), and store_list (the
 * listing for readers outside the daemon). No sleeps: the loop
 * runs until the callbacks fired.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "mountinfo.h"
#include "store.h"
#include "text.h"

#define POOL_THREADS 16
#define BODY "Subject: test\n\nhello\n"

/* Everything one test needs: a base folder, a loop, a logger, a store. */
struct fx {
	char *base;
	char *logpath;
	uv_loop_t loop;
	struct logger lg;
	struct store *st;
};

/* What a commit/import callback saw. */
struct rec {
	int calls;
	int err;
	struct store_msg *m;
};

/* What a mark callback saw. */
struct mrec {
	int calls;
	int err;
	bool removed;
};

/* What a recovery saw. */
struct scan {
	struct store_msg *m[16];
	bool drop;		/* free found messages instead of keeping them */
	size_t nfound;
	int done;
	int err;
	size_t found;
	size_t corrupt;
};

/* malloc'ed printf. */
static __attribute__((format(printf, 1, 2))) char *
fmt(const char *f, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	char *s = NULL;

	va_start(ap, f);
	assert_int_equal(buf_vprintf(&b, f, ap), 0);
	va_end(ap);
	assert_int_equal(buf_steal(&b, &s), 0);
	return s;
}

/* Remove one path of a tree (nftw callback). */
static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

/* Make the fixture's folders, loop and logger (no store yet). */
static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char tmpl[] = "/tmp/mp-store-XXXXXX";
	int fd;

	assert_non_null(fx);
	assert_non_null(mkdtemp(tmpl));
	fx->base = strdup(tmpl);
	fx->logpath = fmt("%s/log", fx->base);
	fd = open(fx->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	log_init(&fx->lg);
	log_set_all(&fx->lg, LOG_ALL);
	fx->lg.fd = fd;
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	*state = fx;
	return 0;
}

/* Close the store (it must be idle) and the loop; remove the folder. */
static int
teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->st) {
		assert_int_equal(store_busy(fx->st), 0);
		store_close(fx->st);
	}
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	close(fx->lg.fd);
	nftw(fx->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx->base);
	free(fx->logpath);
	free(fx);
	return 0;
}

/* Open the store with these settings. */
static void
open_store(struct fx *fx, int foldering, uint64_t limit)
{
	struct store_settings s = { .foldering = foldering, .limit = limit };

	assert_int_equal(store_open(&fx->loop, fx->base, &s, &fx->lg,
		&fx->st), 0);
}

/* An envelope with n pending recipients (uid left empty). */
static void
make_env(struct envelope *e, size_t n, const char *source)
{
	envelope_init(e);
	e->tag = strdup("SMTP");
	e->submitted = 1763892300;
	e->from = strdup("joe@example.com");
	e->trusted = true;
	if (source)
		e->source = strdup(source);
	for (size_t i = 0; i < n; i++) {
		char *a = fmt("r%zu@example.org", i);

		assert_int_equal(envelope_add_rcpt(e, a, NULL, 0), 0);
		free(a);
	}
}

/* Commit callback: record. */
static void
on_commit(void *arg, int err, struct store_msg *m)
{
	struct rec *r = arg;

	r->calls++;
	r->err = err;
	r->m = m;
}

/* Mark callback: record. */
static void
on_mark(void *arg, int err, bool removed)
{
	struct mrec *r = arg;

	r->calls++;
	r->err = err;
	r->removed = removed;
}

/* Recovery found(): keep the message. */
static void
on_found(void *arg, struct store_msg *m)
{
	struct scan *s = arg;

	if (s->nfound > 0 && s->drop)
		assert_true(strcmp(s->m[0]->id, m->id) < 0);
	if (s->drop && s->nfound > 0) {
		/* keep the latest one only, to check the order */
		store_msg_free(s->m[0]);
		s->m[0] = m;
		s->nfound++;
		return;
	}
	assert_true(s->nfound < 16);
	s->m[s->nfound++] = m;
}

/* Recovery done(): record. */
static void
on_scanned(void *arg, int err, size_t found, size_t corrupt)
{
	struct scan *s = arg;

	s->done++;
	s->err = err;
	s->found = found;
	s->corrupt = corrupt;
}

/* Run the loop until *n reaches want. */
static void
run_until(struct fx *fx, const int *n, int want)
{
	while (*n < want)
		assert_true(uv_run(&fx->loop, UV_RUN_ONCE) >= 0 || *n >= want);
}

/* Commit env + body; wait for the callback; return it. */
static void
commit_wait(struct fx *fx, struct envelope *env, const char *body,
	const char *unlink_after, unsigned flags, struct rec *r)
{
	struct buf msg = BUF_INIT;

	assert_int_equal(buf_puts(&msg, body), 0);
	memset(r, 0, sizeof(*r));
	assert_int_equal(store_commit(fx->st, env, &msg, unlink_after, flags,
		on_commit, r), 0);
	assert_int_equal(r->calls, 0);	/* never inside store_commit */
	run_until(fx, &r->calls, 1);
	buf_free(&msg);
}

/* The whole file at path (NUL-terminated); its length in *len. */
static char *
slurp(const char *path, size_t *len)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *s;

	assert_true(fd >= 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		assert_int_equal(buf_append(&b, chunk, (size_t)n), 0);
	assert_true(n == 0);
	close(fd);
	assert_int_equal(buf_putc(&b, '\0'), 0);
	*len = b.len - 1;
	assert_int_equal(buf_steal(&b, &s), 0);
	return s;
}

/* Write len bytes to path (no fsync: test set-up only). */
static void
spit(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Does path exist? */
static bool
exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

/* Entries of a folder whose name ends in suffix ("" = every entry). */
static size_t
count_suffix(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0, sl = strlen(suffix);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.' && (l == 1 || (l == 2 &&
		    de->d_name[1] == '.')))
			continue;
		if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* A queue file's text: envelope (uid set) + body, as envelope_format. */
static char *
queue_text(const char *uid, size_t nrcpt, const char *states,
	const char *source, const char *body, size_t *len)
{
	struct envelope e;
	struct buf b = BUF_INIT;
	char *s;

	make_env(&e, nrcpt, source);
	memcpy(e.uid, uid, ENVELOPE_UID_LEN + 1);
	e.size = strlen(body);
	for (size_t i = 0; states && states[i]; i++)
		e.rcpt[i].state = states[i];
	assert_int_equal(envelope_format(&e, &b), 0);
	assert_int_equal(buf_puts(&b, body), 0);
	*len = b.len;
	assert_int_equal(buf_steal(&b, &s), 0);
	envelope_free(&e);
	return s;
}

/* Does the log file hold text? */
static bool
log_has(struct fx *fx, const char *text)
{
	size_t len;
	char *s = slurp(fx->logpath, &len);
	bool yes = strstr(s, text) != NULL;

	free(s);
	return yes;
}

/* Commit, then read the file back: envelope + message, 0600, no .tmp. */
static void
test_commit_readback(void **state)
{
	struct fx *fx = *state;
	struct envelope env, p;
	struct buf expect = BUF_INIT;
	struct rec r;
	struct stat sb;
	char *qdir, *data, *abs;
	size_t len;
	uint64_t id, now = (uint64_t)time(NULL) * 1000000u;

	open_store(fx, 0, 100);
	make_env(&env, 2, "Submitted/x.sub 64769:1234");
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_int_equal(env.nrcpt, 0);		/* moved into the store_msg */
	assert_int_equal(r.err, 0);
	assert_non_null(r.m);
	assert_int_equal(strlen(r.m->id), STORE_ID_LEN);
	id = strtoull(r.m->id, NULL, 10);
	assert_true(id >= now);
	abs = fmt("%s/Queue/%s.msg", fx->base, r.m->id);
	assert_string_equal(r.m->path, abs);
	free(abs);
	abs = fmt("Queue/%s.msg", r.m->id);
	assert_string_equal(r.m->relpath, abs);
	free(abs);
	assert_int_equal(strlen(r.m->env.uid), ENVELOPE_UID_LEN);
	assert_int_equal(r.m->pending, 2);
	assert_int_equal(r.m->marks, 0);
	assert_int_equal(r.m->msg_len, strlen(BODY));
	assert_int_equal(r.m->msg_off, r.m->env.header_len);
	/* the file is exactly the envelope followed by the message */
	assert_int_equal(envelope_format(&r.m->env, &expect), 0);
	assert_int_equal(buf_puts(&expect, BODY), 0);
	data = slurp(r.m->path, &len);
	assert_int_equal(len, expect.len);
	assert_memory_equal(data, expect.data, len);
	assert_memory_equal(data + r.m->msg_off, BODY, strlen(BODY));
	for (size_t i = 0; i < r.m->env.nrcpt; i++)
		assert_int_equal(data[r.m->env.rcpt[i].state_off], 'P');
	/* the source survives for the server's duplicate check */
	assert_int_equal(envelope_parse(data, len, &p, NULL, NULL), 0);
	assert_string_equal(p.source, "Submitted/x.sub 64769:1234");
	envelope_free(&p);
	assert_int_equal(stat(r.m->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	qdir = fmt("%s/Queue", fx->base);
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	assert_int_equal(count_suffix(qdir, ".msg"), 1);
	assert_int_equal(stat(qdir, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	free(qdir);
	qdir = fmt("%s/Queue/corrupt", fx->base);
	assert_int_equal(stat(qdir, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	free(qdir);
	assert_int_equal(store_count(fx->st), 1);
	free(data);
	buf_free(&expect);
	store_msg_free(r.m);
}

/* A pool work that holds its thread until the semaphore is posted. */
static void
block_work(uv_work_t *req)
{
	uv_sem_wait(req->data);
}

/* Count finished blockers. */
static void
block_after(uv_work_t *req, int status)
{
	int *n = req->loop->data;

	(void)status;
	(*n)++;
}

/* store_commit only queues: the file appears after the pool ran it. */
static void
test_commit_is_queued(void **state)
{
	struct fx *fx = *state;
	uv_work_t blockers[POOL_THREADS];
	uv_sem_t sem;
	struct envelope env;
	struct buf msg = BUF_INIT;
	struct rec r = { 0 };
	char *qdir = fmt("%s/Queue", fx->base);
	int unblocked = 0;

	open_store(fx, 0, 100);
	/* every pool thread busy: the commit cannot start yet */
	assert_int_equal(uv_sem_init(&sem, 0), 0);
	fx->loop.data = &unblocked;
	for (int i = 0; i < POOL_THREADS; i++) {
		blockers[i].data = &sem;
		assert_int_equal(uv_queue_work(&fx->loop, &blockers[i],
			block_work, block_after), 0);
	}
	make_env(&env, 1, NULL);
	assert_int_equal(buf_puts(&msg, BODY), 0);
	assert_int_equal(store_commit(fx->st, &env, &msg, NULL, 0, on_commit,
		&r), 0);
	assert_int_equal(store_busy(fx->st), 1);
	assert_int_equal(store_count(fx->st), 1);	/* in flight counts */
	assert_int_equal(count_suffix(qdir, ".msg"), 0);
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	assert_int_equal(r.calls, 0);
	for (int i = 0; i < POOL_THREADS; i++)
		uv_sem_post(&sem);
	run_until(fx, &r.calls, 1);
	run_until(fx, &unblocked, POOL_THREADS);
	assert_int_equal(r.err, 0);
	assert_true(exists(r.m->path));
	assert_int_equal(count_suffix(qdir, ".msg"), 1);
	assert_int_equal(store_busy(fx->st), 0);
	uv_sem_destroy(&sem);
	store_msg_free(r.m);
	free(qdir);
}

/* unlink_after goes only after success, never when the commit failed. */
static void
test_unlink_after(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct rec r;
	struct rlimit old, lim;
	char *sub = fmt("%s/x.sub", fx->base);
	char *qdir = fmt("%s/Queue", fx->base);
	char *big;

	open_store(fx, 0, 100);
	/* failure 1: an envelope the formatter refuses (no recipient) */
	spit(sub, "x", 1);
	make_env(&env, 0, NULL);
	commit_wait(fx, &env, BODY, sub, 0, &r);
	assert_int_equal(r.err, -EINVAL);
	assert_null(r.m);
	assert_true(exists(sub));
	assert_int_equal(count_suffix(qdir, ".msg"), 0);
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	assert_int_equal(store_count(fx->st), 0);
	/* failure 2: the write itself fails after ID.tmp was created */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	big = calloc(1, 65536);
	memset(big, 'x', 65535);
	memcpy(big, "Subject: big\n\n", 14);
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, big, sub, 0, &r);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(r.err, -EFBIG);
	assert_null(r.m);
	assert_true(exists(sub));
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	assert_int_equal(count_suffix(qdir, ".msg"), 0);
	assert_int_equal(store_count(fx->st), 0);
	/* success: the .sub goes, after the file is there */
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, sub, 0, &r);
	assert_int_equal(r.err, 0);
	assert_false(exists(sub));
	assert_true(exists(r.m->path));
	store_msg_free(r.m);
	free(big);
	free(sub);
	free(qdir);
}

/* The queue limit refuses at once with -ENOSPC; reports are exempt. */
static void
test_limit(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct buf msg = BUF_INIT;
	struct rec r[3];
	char *qdir = fmt("%s/Queue", fx->base);

	memset(r, 0, sizeof(r));
	open_store(fx, 0, 2);
	for (int i = 0; i < 2; i++) {
		make_env(&env, 1, NULL);
		assert_int_equal(buf_puts(&msg, BODY), 0);
		assert_int_equal(store_commit(fx->st, &env, &msg, NULL, 0,
			on_commit, &r[i]), 0);
	}
	/* commits in flight count against the limit */
	assert_true(store_full(fx->st));
	make_env(&env, 1, NULL);
	assert_int_equal(buf_puts(&msg, BODY), 0);
	assert_int_equal(store_commit(fx->st, &env, &msg, NULL, 0, on_commit,
		&r[2]), -ENOSPC);
	/* refused: the caller still owns env and message */
	assert_int_equal(env.nrcpt, 1);
	assert_int_equal(msg.len, strlen(BODY));
	assert_int_equal(store_commit(fx->st, &env, &msg, NULL,
		STORE_EXEMPT_LIMIT, on_commit, &r[2]), 0);
	run_until(fx, &r[0].calls, 1);
	run_until(fx, &r[1].calls, 1);
	run_until(fx, &r[2].calls, 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].err, 0);
		store_msg_free(r[i].m);
	}
	assert_int_equal(store_count(fx->st), 3);
	assert_int_equal(count_suffix(qdir, ".msg"), 3);
	assert_true(store_full(fx->st));
	buf_free(&msg);
	free(qdir);
}

#define UID "6f1c0d9be3a14c2e8d7f5a9b0c1d2e3f"

/* Run a recovery to its end. */
static void
recover_wait(struct fx *fx, struct scan *sc)
{
	assert_int_equal(store_recover(fx->st, on_found, on_scanned, sc), 0);
	assert_int_equal(store_busy(fx->st), 1);
	run_until(fx, &sc->done, 1);
	assert_int_equal(sc->done, 1);
	assert_int_equal(store_busy(fx->st), 0);
}

/* Commit one message under a foldering; check its folder. */
static void
check_folder(struct fx *fx, int foldering, int modulo)
{
	struct scan sc = { .drop = true };
	struct envelope env;
	struct rec r;
	struct stat sb;
	char *want, *folder;
	uint64_t id;

	if (fx->st) {
		store_close(fx->st);
		fx->st = NULL;
	}
	open_store(fx, foldering, 100000);
	/* as the server does: recovery first, so IDs never repeat */
	recover_wait(fx, &sc);
	if (sc.nfound)
		store_msg_free(sc.m[0]);
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_int_equal(r.err, 0);
	id = strtoull(r.m->id, NULL, 10);
	if (modulo == 0)
		want = fmt("Queue/%s.msg", r.m->id);
	else
		want = fmt("Queue/%02d/%s.msg", (int)(id % (uint64_t)modulo),
			r.m->id);
	assert_string_equal(r.m->relpath, want);
	assert_true(exists(r.m->path));
	assert_int_equal(store_folder_for(fx->st, r.m->id, &folder), 0);
	assert_memory_equal(folder, want, strlen(folder));
	assert_int_equal(want[strlen(folder)], '/');
	if (modulo) {
		char *dir = fmt("%s/%s", fx->base, folder);

		assert_int_equal(stat(dir, &sb), 0);
		assert_true(S_ISDIR(sb.st_mode));
		assert_int_equal(sb.st_mode & 07777, 0700);
		free(dir);
	}
	free(folder);
	free(want);
	store_msg_free(r.m);
}

/* Foldering 0, 10 and 100. */
static void
test_foldering(void **state)
{
	struct fx *fx = *state;
	char *f;

	check_folder(fx, 0, 0);
	check_folder(fx, 10, 10);
	check_folder(fx, 100, 100);
	/* the ID decides the folder: NN = ID mod 10 / mod 100 */
	assert_int_equal(store_folder_for(fx->st, "1763892300000042", &f), 0);
	assert_string_equal(f, "Queue/42");
	free(f);
	check_folder(fx, 10, 10);
	assert_int_equal(store_folder_for(fx->st, "1763892300000042", &f), 0);
	assert_string_equal(f, "Queue/02");
	free(f);
	assert_int_equal(store_folder_for(fx->st, "12", &f), -EINVAL);
}

/* auto: Queue/ while the count is at most 5000, NN folders above. */
static void
test_foldering_auto(void **state)
{
	struct fx *fx = *state;
	struct scan sc = { .drop = true };
	struct envelope env;
	struct rec a, b;
	char *f, *want, *qdir = fmt("%s/Queue", fx->base);
	size_t len;
	char *text = queue_text(UID, 1, NULL, NULL, BODY, &len);
	uint64_t id;

	/* exactly the threshold of live files, loaded by recovery */
	assert_int_equal(mkdir(qdir, 0750), 0);
	for (uint64_t i = 0; i < STORE_AUTO_THRESHOLD; i++) {
		char *p = fmt("%s/%016" PRIu64 ".msg", qdir,
			1000000000000000u + i);

		spit(p, text, len);
		free(p);
	}
	open_store(fx, FOLDERING_AUTO, 100000);
	recover_wait(fx, &sc);
	assert_int_equal(sc.err, 0);
	assert_int_equal(sc.found, STORE_AUTO_THRESHOLD);
	assert_int_equal(sc.nfound, STORE_AUTO_THRESHOLD);
	assert_string_equal(sc.m[0]->id, "1000000000004999");	/* the last */
	store_msg_free(sc.m[0]);
	assert_int_equal(store_count(fx->st), STORE_AUTO_THRESHOLD);
	assert_int_equal(store_folder_for(fx->st, "1763892300000042", &f), 0);
	assert_string_equal(f, "Queue");
	free(f);
	/* at 5000 the next file still goes to Queue/ ... */
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &a);
	assert_int_equal(a.err, 0);
	want = fmt("Queue/%s.msg", a.m->id);
	assert_string_equal(a.m->relpath, want);
	free(want);
	/* ... and at 5001 into Queue/NN/ */
	assert_int_equal(store_count(fx->st), STORE_AUTO_THRESHOLD + 1);
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &b);
	assert_int_equal(b.err, 0);
	id = strtoull(b.m->id, NULL, 10);
	want = fmt("Queue/%02d/%s.msg", (int)(id % 100), b.m->id);
	assert_string_equal(b.m->relpath, want);
	assert_true(exists(b.m->path));
	free(want);
	assert_int_equal(store_folder_for(fx->st, "1763892300000042", &f), 0);
	assert_string_equal(f, "Queue/42");
	free(f);
	store_msg_free(a.m);
	store_msg_free(b.m);
	free(text);
	free(qdir);
}

/* A non-final mark rewrites one byte; the final one removes the file. */
static void
test_mark(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct rec r;
	struct mrec m0 = { 0 }, m1 = { 0 }, mc[3];
	struct store_msg *m;
	char *before, *after, *path;
	size_t blen, alen;

	open_store(fx, 10, 100);
	make_env(&env, 2, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_int_equal(r.err, 0);
	m = r.m;
	before = slurp(m->path, &blen);
	assert_int_equal(store_mark(fx->st, m, 0, RCPT_DELIVERED, NULL, on_mark,
		&m0), 0);
	/* the in-memory state changes at once; the disk follows */
	assert_int_equal(m->env.rcpt[0].state, RCPT_DELIVERED);
	assert_int_equal(m->pending, 1);
	assert_int_equal(m->marks, 1);
	assert_int_equal(m0.calls, 0);
	assert_int_equal(store_mark(fx->st, m, 0, RCPT_FAILED, NULL, on_mark, &m1),
		-EALREADY);
	assert_int_equal(store_mark(fx->st, m, 2, RCPT_FAILED, NULL, on_mark, &m1),
		-EINVAL);
	assert_int_equal(store_mark(fx->st, m, 1, RCPT_PENDING, NULL, on_mark, &m1),
		-EINVAL);
	run_until(fx, &m0.calls, 1);
	assert_int_equal(m0.err, 0);
	assert_false(m0.removed);
	assert_int_equal(m->marks, 0);
	after = slurp(m->path, &alen);
	assert_int_equal(alen, blen);
	assert_int_equal(after[m->env.rcpt[0].state_off], 'D');
	assert_int_equal(after[m->env.rcpt[1].state_off], 'P');
	/* that byte and nothing else changed */
	before[m->env.rcpt[0].state_off] = 'D';
	assert_memory_equal(before, after, blen);
	assert_int_equal(store_count(fx->st), 1);
	/* the last recipient: the file goes */
	assert_int_equal(store_mark(fx->st, m, 1, RCPT_FAILED, NULL, on_mark, &m1),
		0);
	run_until(fx, &m1.calls, 1);
	assert_int_equal(m1.err, 0);
	assert_true(m1.removed);
	assert_false(exists(m->path));
	assert_int_equal(store_count(fx->st), 0);
	store_msg_free(m);
	free(before);
	free(after);
	/* three marks in flight at once on one file */
	make_env(&env, 3, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_int_equal(r.err, 0);
	m = r.m;
	path = strdup(m->path);
	memset(mc, 0, sizeof(mc));
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(store_mark(fx->st, m, i, RCPT_DELIVERED, NULL,
			on_mark, &mc[i]), 0);
	assert_int_equal(m->marks, 3);
	assert_int_equal(m->pending, 0);
	for (size_t i = 0; i < 3; i++)
		run_until(fx, &mc[i].calls, 1);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(mc[i].err, 0);
	assert_true(mc[2].removed);
	assert_int_equal(m->marks, 0);
	assert_false(exists(path));
	assert_int_equal(store_count(fx->st), 0);
	store_msg_free(m);
	free(path);
}

/* A journal record for recipient rcpt. */
static struct journal_attempt
jrec(size_t rcpt, unsigned n, enum journal_kind k, int64_t next,
	const char *status, const char *reason)
{
	struct journal_attempt a = { .rcpt = rcpt, .time = 1765000000,
		.attempt = n, .kind = k, .next = next, .src = JOURNAL_PIPE,
		.reply = k == JOURNAL_DEFERRED ? 451 : 550, .reason = reason };

	snprintf(a.status, sizeof(a.status), "%s", status);
	return a;
}

/*
 * Write text[0..len) + tail over m's file (text is freed), forget m,
 * reopen the store and recover into sc: a crash's aftermath.
 */
static void
append_and_recover(struct fx *fx, struct store_msg *m, char *text,
	size_t len, const char *tail, struct scan *sc)
{
	char *bad = fmt("%.*s%s", (int)len, text, tail);

	spit(m->path, bad, strlen(bad));
	free(bad);
	free(text);
	store_msg_free(m);
	store_close(fx->st);
	fx->st = NULL;
	open_store(fx, 0, 100);
	recover_wait(fx, sc);
}

/*
 * The journal: notes and failure records are appended after the message
 * in submission order (one append at a time per message), show in
 * m->hist at once, survive a recovery, a record cut short by a crash is
 * cut off before the next append, and a malformed complete record makes
 * the file corrupt.
 */
static void
test_journal(void **state)
{
	static const char want[] =
	    "attempt 0 1765000000 1 deferred 1765000060 pipe 451 4.3.0 busy\n"
	    "attempt 0 1765000000 2 deferred 1765000300 pipe 451 4.3.0 "
	    "still busy\n"
	    "attempt 1 1765000000 1 failed - pipe 550 5.1.1 no such user\n";
	struct fx *fx = *state;
	struct envelope env;
	struct rec r;
	struct mrec k[4];
	struct journal_attempt a;
	struct scan sc = { .nfound = 0 };
	struct store_msg *m;
	char *text, *path;
	size_t len, end;

	memset(k, 0, sizeof(k));
	open_store(fx, 0, 100);
	make_env(&env, 3, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_int_equal(r.err, 0);
	m = r.m;
	end = m->msg_off + m->msg_len;
	a = jrec(0, 1, JOURNAL_DEFERRED, 1765000060, "4.3.0", "busy");
	assert_int_equal(store_note(fx->st, m, &a, on_mark, &k[0]), 0);
	a = jrec(0, 2, JOURNAL_DEFERRED, 1765000300, "4.3.0", "still busy");
	assert_int_equal(store_note(fx->st, m, &a, on_mark, &k[1]), 0);
	a = jrec(1, 1, JOURNAL_FAILED, -1, "5.1.1", "no such user");
	assert_int_equal(store_mark(fx->st, m, 1, RCPT_FAILED, &a, on_mark,
	    &k[2]), 0);
	/* memory first */
	assert_non_null(m->hist);
	assert_int_equal(m->hist[0].attempts, 2);
	assert_int_equal(m->hist[0].next, 1765000300);
	assert_string_equal(m->hist[1].reason, "no such user");
	run_until(fx, &k[2].calls, 1);
	run_until(fx, &k[1].calls, 1);
	assert_int_equal(k[0].err | k[1].err | k[2].err, 0);
	text = slurp(m->path, &len);
	assert_int_equal(len, end + strlen(want));
	assert_memory_equal(text + end, want, strlen(want));
	assert_int_equal(text[m->env.rcpt[1].state_off], 'F');
	free(text);
	/* a crash in the middle of an append leaves a cut-short line */
	path = strdup(m->path);
	text = slurp(path, &len);
	append_and_recover(fx, m, text, len, "attempt 2 17650", &sc);
	assert_int_equal(sc.found, 1);
	m = sc.m[0];
	assert_int_equal(m->jend, end + strlen(want));
	assert_int_equal(m->hist[0].attempts, 2);
	assert_int_equal(m->hist[0].next, 1765000300);
	assert_int_equal(m->hist[0].kind, JOURNAL_DEFERRED);
	assert_string_equal(m->hist[0].reason, "still busy");
	assert_int_equal(m->hist[1].kind, JOURNAL_FAILED);
	assert_string_equal(m->hist[1].status, "5.1.1");
	assert_int_equal(m->hist[2].attempts, 0);	/* nothing recorded */
	assert_int_equal(m->env.rcpt[1].state, RCPT_FAILED);
	/* the next append cuts the torn record off first */
	a = jrec(2, 1, JOURNAL_DEFERRED, 1765000060, "4.4.1", "no answer");
	assert_int_equal(store_note(fx->st, m, &a, on_mark, &k[3]), 0);
	run_until(fx, &k[3].calls, 1);
	assert_int_equal(k[3].err, 0);
	text = slurp(path, &len);
	assert_int_equal(len, m->jend);
	assert_string_equal(text + end + strlen(want), "attempt 2 1765000000 "
	    "1 deferred 1765000060 pipe 451 4.4.1 no answer\n");
	/* a complete line that is no record: corrupt at the next recovery */
	memset(&sc, 0, sizeof(sc));
	append_and_recover(fx, m, text, len,
	    "attempt 9 1 1 deferred - pipe 451 4.0.0 x\n", &sc);
	assert_int_equal(sc.found, 0);
	assert_int_equal(sc.corrupt, 1);
	assert_true(log_has(fx, "bad journal record after the message"));
	free(path);
}

/* Write a queue file in Queue/[folder/] for recovery. */
static char *
place(struct fx *fx, const char *folder, const char *name, const char *data,
	size_t len)
{
	char *dir = fmt("%s/Queue%s%s", fx->base, folder ? "/" : "",
		folder ? folder : "");
	char *p = fmt("%s/%s", dir, name);

	mkdir(dir, 0750);
	spit(p, data, len);
	free(dir);
	return p;
}

/* Recovery: .tmp removed, corrupt moved, finished removed, ID order. */
static void
test_recover(void **state)
{
	struct fx *fx = *state;
	struct scan sc = { 0 };
	struct envelope env;
	struct rec r;
	struct mrec mr = { 0 };
	size_t la, lb, lc, ld, lx, len;
	char *ta = queue_text(UID, 2, NULL, "Submitted/a.sub 64769:99", BODY,
		&la);
	char *tb = queue_text(UID, 2, "DP", NULL, BODY, &lb);
	char *tc = queue_text(UID, 1, NULL, NULL, BODY, &lc);
	char *td = queue_text(UID, 2, "DF", NULL, BODY, &ld);
	char *tx = queue_text(UID, 1, NULL, NULL, BODY, &lx);
	char *pa, *pb, *pc, *p, *s, *cdir;
	char *q = fmt("%s/Queue", fx->base);

	assert_int_equal(mkdir(q, 0750), 0);
	pa = place(fx, NULL, "1700000000000003.msg", ta, la);
	pb = place(fx, "05", "1700000000000001.msg", tb, lb);
	pc = place(fx, "42", "1700000000000002.msg", tc, lc);
	free(place(fx, NULL, "1700000000000010.tmp", tc, lc - 3));
	free(place(fx, "05", "1700000000000011.tmp", tc, lc));
	free(place(fx, NULL, "1700000000000020.msg", td, ld));
	/* corrupt: bad version, truncated body, missing end */
	memcpy(tx, "mailpipe-queue 2", 16);
	free(place(fx, NULL, "1700000000000030.msg", tx, lx));
	memcpy(tx, "mailpipe-queue 1", 16);
	free(place(fx, "05", "1700000000000031.msg", tx, lx - 3));
	s = strstr(tx, "end\n\n");
	assert_non_null(s);
	memmove(s, s + 4, strlen(s + 4) + 1);
	free(place(fx, NULL, "1700000000000032.msg", tx, lx - 4));
	/* what a crash during a one-flush commit can leave (QUEUE.md) */
	free(place(fx, NULL, "1700000000000033.msg", "", 0));
	free(place(fx, NULL, "README", "hello\n", 6));
	/* corrupt/ already holds a higher ID and one of the names */
	free(place(fx, "corrupt", "8999999999999999.msg", "old\n", 4));
	free(place(fx, "corrupt", "1700000000000030.msg", "old\n", 4));

	open_store(fx, 0, 100);
	recover_wait(fx, &sc);
	assert_int_equal(sc.err, 0);
	assert_int_equal(sc.found, 3);
	assert_int_equal(sc.corrupt, 4);
	assert_int_equal(sc.nfound, 3);
	/* ID order, whatever folder */
	assert_string_equal(sc.m[0]->id, "1700000000000001");
	assert_string_equal(sc.m[1]->id, "1700000000000002");
	assert_string_equal(sc.m[2]->id, "1700000000000003");
	assert_string_equal(sc.m[0]->relpath, "Queue/05/1700000000000001.msg");
	assert_string_equal(sc.m[1]->relpath, "Queue/42/1700000000000002.msg");
	assert_string_equal(sc.m[2]->relpath, "Queue/1700000000000003.msg");
	assert_string_equal(sc.m[0]->path, pb);
	assert_int_equal(sc.m[0]->pending, 1);
	assert_int_equal(sc.m[1]->pending, 1);
	assert_int_equal(sc.m[2]->pending, 2);
	assert_int_equal(sc.m[2]->msg_len, strlen(BODY));
	assert_int_equal(sc.m[2]->msg_off, la - strlen(BODY));
	assert_string_equal(sc.m[2]->env.source, "Submitted/a.sub 64769:99");
	assert_int_equal(store_count(fx->st), 3);
	/* live files untouched */
	s = slurp(pa, &len);
	assert_int_equal(len, la);
	assert_memory_equal(s, ta, la);
	free(s);
	s = slurp(pc, &len);
	assert_int_equal(len, lc);
	free(s);
	/* stray .tmp and finished file gone; README left alone */
	assert_int_equal(count_suffix(q, ".tmp"), 0);
	p = fmt("%s/05", q);
	assert_int_equal(count_suffix(p, ".tmp"), 0);
	assert_int_equal(count_suffix(p, ".msg"), 1);
	free(p);
	p = fmt("%s/1700000000000020.msg", q);
	assert_false(exists(p));
	free(p);
	p = fmt("%s/README", q);
	assert_true(exists(p));
	free(p);
	assert_int_equal(count_suffix(q, ".msg"), 1);
	/* corrupt files moved, a taken name gets a suffix, old ones kept */
	cdir = fmt("%s/corrupt", q);
	assert_int_equal(count_suffix(cdir, ""), 6);
	p = fmt("%s/1700000000000030.msg", cdir);
	s = slurp(p, &len);
	assert_string_equal(s, "old\n");
	free(s);
	free(p);
	p = fmt("%s/1700000000000030.msg.1", cdir);
	s = slurp(p, &len);
	assert_memory_equal(s, "mailpipe-queue 2", 16);
	free(s);
	free(p);
	p = fmt("%s/1700000000000031.msg", cdir);
	assert_true(exists(p));
	free(p);
	p = fmt("%s/1700000000000032.msg", cdir);
	assert_true(exists(p));
	free(p);
	assert_true(log_has(fx, "corrupt queue file Queue/1700000000000030.msg"));
	assert_true(log_has(fx, "corrupt queue file Queue/05/1700000000000031"
		".msg (the file is shorter than the envelope length plus size)"));
	assert_true(log_has(fx, "corrupt queue file Queue/1700000000000032.msg"
		" (line "));
	assert_true(log_has(fx, "corrupt queue file Queue/1700000000000033.msg"
		" (the file ends inside the envelope)"));
	assert_true(log_has(fx, "Queue/README is not a queue file"));
	/* new IDs above every ID seen, corrupt/ included */
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_int_equal(r.err, 0);
	assert_true(strcmp(r.m->id, "8999999999999999") > 0);
	store_msg_free(r.m);
	/* recovered offsets are good for marks */
	assert_int_equal(store_mark(fx->st, sc.m[0], 1, RCPT_DELIVERED, NULL, on_mark,
		&mr), 0);
	run_until(fx, &mr.calls, 1);
	assert_int_equal(mr.err, 0);
	assert_true(mr.removed);
	assert_false(exists(pb));
	assert_int_equal(store_count(fx->st), 3);
	for (size_t i = 0; i < sc.nfound; i++)
		store_msg_free(sc.m[i]);
	free(ta);
	free(tb);
	free(tc);
	free(td);
	free(tx);
	free(pa);
	free(pb);
	free(pc);
	free(cdir);
	free(q);
}

/* Recovery of a second scan of the same store is refused. */
static void
test_recover_busy(void **state)
{
	struct fx *fx = *state;
	struct scan sc = { 0 };
	struct envelope env;
	struct buf msg = BUF_INIT;
	struct rec r = { 0 };

	open_store(fx, 0, 100);
	assert_int_equal(store_recover(fx->st, on_found, on_scanned, &sc), 0);
	/* no commit while the scan runs */
	make_env(&env, 1, NULL);
	assert_int_equal(buf_puts(&msg, BODY), 0);
	assert_int_equal(store_commit(fx->st, &env, &msg, NULL, 0, on_commit,
		&r), -EBUSY);
	assert_int_equal(store_recover(fx->st, on_found, on_scanned, &sc),
		-EBUSY);
	run_until(fx, &sc.done, 1);
	assert_int_equal(sc.found, 0);
	assert_int_equal(sc.err, 0);
	envelope_free(&env);
	buf_free(&msg);
}

/* Import callback helper: import src and wait. */
static void
import_wait(struct fx *fx, const char *src, struct rec *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(store_import(fx->st, src, on_commit, r), 0);
	assert_int_equal(r->calls, 0);
	run_until(fx, &r->calls, 1);
}

/* ForeignQueue import: fresh ID, uid kept; corrupt ones quarantined. */
static void
test_import(void **state)
{
	struct fx *fx = *state;
	struct rec r;
	struct stat sb;
	size_t len, glen;
	char *fq = fmt("%s/ForeignQueue", fx->base);
	char *src = fmt("%s/x.msg", fq), *bad = fmt("%s/bad.msg", fq);
	char *done = fmt("%s/done.msg", fq);
	char *text = queue_text(UID, 2, "DP", NULL, BODY, &len);
	char *got, *want, *p;
	uint64_t id;

	assert_int_equal(mkdir(fq, 0755), 0);
	open_store(fx, 100, 2);
	spit(src, text, len);
	assert_int_equal(chmod(src, 0666), 0);
	import_wait(fx, src, &r);
	assert_int_equal(r.err, 0);
	assert_non_null(r.m);
	id = strtoull(r.m->id, NULL, 10);
	assert_true(id >= (uint64_t)time(NULL) * 1000000u - 1000000u);
	want = fmt("Queue/%02d/%s.msg", (int)(id % 100), r.m->id);
	assert_string_equal(r.m->relpath, want);
	free(want);
	assert_string_equal(r.m->env.uid, UID);
	assert_int_equal(r.m->pending, 1);
	assert_int_equal(r.m->env.rcpt[0].state, RCPT_DELIVERED);
	assert_false(exists(src));
	got = slurp(r.m->path, &glen);
	assert_int_equal(glen, len);
	assert_memory_equal(got, text, len);
	free(got);
	assert_int_equal(stat(r.m->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(store_count(fx->st), 1);
	store_msg_free(r.m);
	/* corrupt: quarantined, -EBADMSG */
	memcpy(text, "mailpipe-queue 7", 16);
	spit(bad, text, len);
	import_wait(fx, bad, &r);
	assert_int_equal(r.err, -EBADMSG);
	assert_null(r.m);
	assert_false(exists(bad));
	p = fmt("%s/Queue/corrupt/bad.msg", fx->base);
	assert_true(exists(p));
	free(p);
	assert_int_equal(store_count(fx->st), 1);
	assert_true(log_has(fx, "bad.msg (line 1: "));
	free(text);
	/* a forged report-for (it could settle another message's report) */
	text = queue_text(UID, 2, "DP", NULL, BODY, &len);
	p = strstr(text, "\nsize ");
	assert_non_null(p);
	want = fmt("%.*s\nreport-for " UID " 0%s", (int)(p - text), text, p);
	spit(bad, want, strlen(want));
	free(want);
	import_wait(fx, bad, &r);
	assert_int_equal(r.err, -EBADMSG);
	assert_null(r.m);
	assert_false(exists(bad));
	assert_true(log_has(fx, "report-for in a foreign file"));
	assert_int_equal(store_count(fx->st), 1);
	free(text);
	/* nothing left to deliver: removed, -EALREADY */
	text = queue_text(UID, 2, "DF", NULL, BODY, &len);
	spit(done, text, len);
	import_wait(fx, done, &r);
	assert_int_equal(r.err, -EALREADY);
	assert_false(exists(done));
	assert_int_equal(store_count(fx->st), 1);
	free(text);
	/* another file system: -EXDEV, the file stays */
	text = queue_text(UID, 1, NULL, NULL, BODY, &len);
	if (stat("/dev/shm", &sb) == 0) {
		struct stat qb;
		char *x = fmt("/dev/shm/mp-store-%ld.msg", (long)getpid());

		assert_int_equal(stat(fx->base, &qb), 0);
		if (qb.st_dev != sb.st_dev) {
			spit(x, text, len);
			import_wait(fx, x, &r);
			assert_int_equal(r.err, -EXDEV);
			assert_null(r.m);
			assert_true(exists(x));
			unlink(x);
		}
		free(x);
	}
	assert_int_equal(store_count(fx->st), 1);
	/* the queue limit holds imports too; the file stays */
	spit(src, text, len);
	import_wait(fx, src, &r);
	assert_int_equal(r.err, 0);
	store_msg_free(r.m);
	assert_true(store_full(fx->st));
	spit(src, text, len);
	assert_int_equal(store_import(fx->st, src, on_commit, &r), -ENOSPC);
	assert_true(exists(src));
	free(text);
	free(fq);
	free(src);
	free(bad);
	free(done);
}

/* Many commits at once share directory fsyncs; so do final unlinks. */
static void
test_group_commit(void **state)
{
	struct fx *fx = *state;
	enum { N = 64 };
	struct rec r[N];
	struct mrec mr[N];
	struct envelope env;
	struct buf msg = BUF_INIT;
	uint64_t commits, fsyncs, fsyncs2;
	char *q = fmt("%s/Queue", fx->base);
	struct store_settings always = { .foldering = 0, .limit = 1000,
		.dir_fsync_always = true };

	memset(r, 0, sizeof(r));
	memset(mr, 0, sizeof(mr));
	/* directory fsyncs on every file system (see test_commit_flushes) */
	assert_int_equal(store_open(&fx->loop, fx->base, &always, &fx->lg,
		&fx->st), 0);
	for (int i = 0; i < N; i++) {
		make_env(&env, 1, NULL);
		assert_int_equal(buf_puts(&msg, BODY), 0);
		assert_int_equal(store_commit(fx->st, &env, &msg, NULL, 0,
			on_commit, &r[i]), 0);
	}
	assert_int_equal(store_count(fx->st), N);
	for (int i = 0; i < N; i++)
		run_until(fx, &r[i].calls, 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(r[i].err, 0);
	assert_int_equal(count_suffix(q, ".msg"), N);
	store_stats(fx->st, &commits, &fsyncs);
	print_message("%d concurrent commits: %" PRIu64 " directory fsyncs\n",
		N, fsyncs);
	assert_int_equal(commits, N);
	assert_true(fsyncs >= 1);
	assert_true(fsyncs < N);
	for (int i = 0; i < N; i++)
		assert_int_equal(store_mark(fx->st, r[i].m, 0, RCPT_DELIVERED, NULL,
			on_mark, &mr[i]), 0);
	for (int i = 0; i < N; i++)
		run_until(fx, &mr[i].calls, 1);
	for (int i = 0; i < N; i++) {
		assert_int_equal(mr[i].err, 0);
		assert_true(mr[i].removed);
		store_msg_free(r[i].m);
	}
	assert_int_equal(count_suffix(q, ".msg"), 0);
	assert_int_equal(store_count(fx->st), 0);
	store_stats(fx->st, NULL, &fsyncs2);
	print_message("%d concurrent final marks: %" PRIu64 " directory "
		"fsyncs\n", N, fsyncs2 - fsyncs);
	assert_true(fsyncs2 - fsyncs >= 1);
	assert_true(fsyncs2 - fsyncs < N);
	buf_free(&msg);
	free(q);
}

/*
 * One flush per commit where the file system commits a new file's name
 * with its fsync (ext4, XFS): commits run no directory fsync at all. With
 * directory-fsync = always, or on another file system, each sequential
 * commit runs its own.
 */
static void
test_commit_flushes(void **state)
{
	struct fx *fx = *state;
	enum { N = 8 };
	struct store_settings set = { .foldering = 0, .limit = 100 };
	struct envelope env;
	struct rec r;
	uint64_t commits, before, after;
	char *type = NULL;
	bool by_file;
	struct stat sb;

	assert_int_equal(stat(fx->base, &sb), 0);
	assert_int_equal(mountinfo_dev_fstype(sb.st_dev, &type), 0);
	by_file = strcmp(type, "ext4") == 0 || strcmp(type, "xfs") == 0;
	print_message("base on %s\n", type);
	for (int always = 0; always < 2; always++) {
		struct scan sc = { .drop = true };

		set.dir_fsync_always = always;
		assert_int_equal(store_open(&fx->loop, fx->base, &set, &fx->lg,
			&fx->st), 0);
		recover_wait(fx, &sc);	/* IDs above the first round's */
		if (sc.nfound)
			store_msg_free(sc.m[0]);
		store_stats(fx->st, NULL, &before);
		for (int i = 0; i < N; i++) {
			make_env(&env, 1, NULL);
			commit_wait(fx, &env, BODY, NULL, 0, &r);
			assert_int_equal(r.err, 0);
			assert_true(exists(r.m->path));
			store_msg_free(r.m);
		}
		store_stats(fx->st, &commits, &after);
		assert_int_equal(commits, N);
		assert_int_equal(after - before, by_file && !always ? 0 : N);
		store_close(fx->st);
		fx->st = NULL;
	}
	assert_true(log_has(fx, by_file ? "one flush per commit" :
		"file fsync, then directory fsync"));
	assert_true(log_has(fx, "([queue] directory-fsync = always)"));
	free(type);
}

/* Only the owner (the daemon user) reads the queue: folders 0700, files
   0600; recovery repairs other modes. */
static void
test_modes(void **state)
{
	struct fx *fx = *state;
	struct store_settings s = { .foldering = 10, .limit = 100 };
	struct scan sc = { 0 };
	struct envelope env;
	struct rec r;
	struct stat sb;
	char *p, *path;

	assert_int_equal(store_open(&fx->loop, fx->base, &s, &fx->lg,
		&fx->st), 0);
	p = fmt("%s/Queue", fx->base);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	free(p);
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(stat(r.m->path, &sb), 0);
	assert_int_equal(sb.st_uid, geteuid());
	assert_int_equal(sb.st_mode & 07777, 0600);
	p = fmt("%s/%.*s", fx->base, (int)(strrchr(r.m->relpath, '/') -
		r.m->relpath), r.m->relpath);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	/* break both; a restart repairs them */
	assert_int_equal(chmod(p, 0755), 0);
	assert_int_equal(chmod(r.m->path, 0644), 0);
	path = strdup(r.m->path);
	store_msg_free(r.m);
	store_close(fx->st);
	assert_int_equal(store_open(&fx->loop, fx->base, &s, &fx->lg,
		&fx->st), 0);
	recover_wait(fx, &sc);
	assert_int_equal(sc.found, 1);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	assert_true(log_has(fx, "had the wrong mode: fixed"));
	store_msg_free(sc.m[0]);
	free(path);
	free(p);
}

/* store_close while work is in flight frees the store after the last cb. */
static void
test_close_deferred(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct buf msg = BUF_INIT;
	struct rec r = { 0 };

	open_store(fx, 0, 100);
	make_env(&env, 1, NULL);
	assert_int_equal(buf_puts(&msg, BODY), 0);
	assert_int_equal(store_commit(fx->st, &env, &msg, NULL, 0, on_commit,
		&r), 0);
	store_close(fx->st);
	fx->st = NULL;
	run_until(fx, &r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_true(exists(r.m->path));
	store_msg_free(r.m);
}


/* Small fresh messages keep their bytes in memory; big ones do not; the
   copy can be dropped and may outlive the store. */
static void
test_body_kept(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct rec small, big;
	char *large = malloc(STORE_KEEP_MAX + 2);

	assert_non_null(large);
	memset(large, 'b', STORE_KEEP_MAX + 1);
	large[STORE_KEEP_MAX + 1] = '\0';
	open_store(fx, 0, 100);
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &small);
	assert_int_equal(small.err, 0);
	assert_non_null(small.m->body);
	assert_memory_equal(small.m->body, BODY, strlen(BODY));
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, large, NULL, 0, &big);
	assert_int_equal(big.err, 0);
	assert_null(big.m->body);	/* over STORE_KEEP_MAX: read the file */
	store_msg_drop_body(small.m);
	assert_null(small.m->body);
	store_msg_drop_body(small.m);	/* twice is harmless */
	store_msg_free(big.m);
	/* a message holding a body may be freed after the store */
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &big);
	assert_non_null(big.m->body);
	store_close(fx->st);
	fx->st = NULL;
	store_msg_free(big.m);
	store_msg_free(small.m);
	free(large);
}

/* Kept bodies stop at STORE_KEEP_TOTAL bytes in all; a dropped one makes
   room again. */
static void
test_body_kept_total(void **state)
{
	struct fx *fx = *state;
	size_t n = STORE_KEEP_TOTAL / STORE_KEEP_MAX;
	struct store_msg **m = calloc(n + 1, sizeof(*m));
	char *full = malloc(STORE_KEEP_MAX + 1);
	struct envelope env;
	struct rec r;

	assert_non_null(m);
	assert_non_null(full);
	memset(full, 'k', STORE_KEEP_MAX);
	full[STORE_KEEP_MAX] = '\0';
	open_store(fx, 0, n + 10);
	for (size_t i = 0; i <= n; i++) {
		make_env(&env, 1, NULL);
		commit_wait(fx, &env, full, NULL, 0, &r);
		assert_int_equal(r.err, 0);
		m[i] = r.m;
		if (i < n)
			assert_non_null(m[i]->body);
		else
			assert_null(m[i]->body);	/* over the total */
	}
	store_msg_drop_body(m[0]);
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_non_null(r.m->body);		/* room again */
	store_msg_free(r.m);
	for (size_t i = 0; i <= n; i++)
		store_msg_free(m[i]);
	free(m);
	free(full);
}

/* What a draft step's callback saw. */
struct drec {
	int calls;
	int err;
	uint64_t n;
};

/* Draft step callback: record. */
static void
on_draft(void *arg, int err, uint64_t n)
{
	struct drec *r = arg;

	r->calls++;
	r->err = err;
	r->n = n;
}

/* Append text to a draft and wait. */
static void
draft_write_wait(struct fx *fx, struct store_draft *d, const char *text,
	struct drec *r)
{
	struct buf b = BUF_INIT;

	assert_int_equal(buf_puts(&b, text), 0);
	memset(r, 0, sizeof(*r));
	assert_int_equal(store_draft_write(d, &b, on_draft, r), 0);
	assert_null(b.data);		/* taken */
	assert_int_equal(r->calls, 0);
	run_until(fx, &r->calls, 1);
}

/* Commit a draft and wait. */
static void
draft_commit_wait(struct fx *fx, struct store_draft *d, const char *unlink,
	struct rec *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(store_draft_commit(d, unlink, on_commit, r), 0);
	assert_int_equal(r->calls, 0);
	run_until(fx, &r->calls, 1);
}

/* A committed draft: the envelope fills its room, offsets are right. */
static void
check_streamed(const struct store_msg *m, const char *body, size_t len)
{
	struct envelope p;
	size_t flen, room;
	char *data = slurp(m->path, &flen);
	struct envelope copy = m->env;

	assert_int_equal(m->msg_len, len);
	assert_int_equal(flen, m->msg_off + len);
	assert_memory_equal(data + m->msg_off, body, len);
	assert_int_equal(envelope_parse(data, flen, &p, NULL, NULL), 0);
	assert_int_equal(p.header_len, m->msg_off);
	assert_true(p.size == len);
	assert_int_equal(p.nrcpt, m->env.nrcpt);
	for (size_t i = 0; i < p.nrcpt; i++) {
		assert_int_equal(p.rcpt[i].state_off, m->env.rcpt[i].state_off);
		assert_int_equal(data[p.rcpt[i].state_off], 'P');
	}
	/* the room is the one envelope_reserve asks for: always padded */
	assert_int_equal(envelope_reserve(&copy, &room), 0);
	assert_int_equal(room, m->msg_off);
	assert_non_null(strstr(data, "\npad -"));
	assert_null(m->body);		/* never kept in memory */
	envelope_free(&p);
	free(data);
}

/* Head + writes + commit: one durable file, the source removed after. */
static void
test_draft_write_commit(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct buf head = BUF_INIT;
	struct store_draft *d;
	struct drec w;
	struct rec r;
	struct scan sc = { 0 };
	char *qdir = fmt("%s/Queue", fx->base);
	char *sub = fmt("%s/x.sub", fx->base);
	char *id;

	open_store(fx, 0, 100);
	spit(sub, "x", 1);
	make_env(&env, 2, "Submitted/x.sub 1:2");
	assert_int_equal(buf_puts(&head, "Subject: streamed\n\n"), 0);
	assert_int_equal(store_draft_open(fx->st, &env, &head, 0, &d), 0);
	assert_int_equal(env.nrcpt, 0);		/* taken */
	assert_null(head.data);
	assert_int_equal(strlen(store_draft_id(d)), STORE_ID_LEN);
	assert_int_equal(store_count(fx->st), 1);
	assert_int_equal(store_busy(fx->st), 1);
	/* nothing on disk before the first step */
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	draft_write_wait(fx, d, "line one\n", &w);
	assert_int_equal(w.err, 0);
	assert_int_equal(w.n, 9);
	/* S1: only ID.tmp, the head and the piece written */
	assert_int_equal(count_suffix(qdir, ".tmp"), 1);
	assert_int_equal(count_suffix(qdir, ".msg"), 0);
	assert_int_equal(store_draft_size(d), 19 + 9);
	draft_write_wait(fx, d, "line two\n", &w);
	assert_int_equal(w.err, 0);
	id = strdup(store_draft_id(d));
	draft_commit_wait(fx, d, sub, &r);
	assert_int_equal(r.err, 0);
	assert_non_null(r.m);
	assert_string_equal(r.m->id, id);
	assert_int_equal(r.m->pending, 2);
	check_streamed(r.m, "Subject: streamed\n\nline one\nline two\n", 37);
	assert_false(exists(sub));
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	assert_int_equal(count_suffix(qdir, ".msg"), 1);
	assert_int_equal(store_count(fx->st), 1);
	assert_int_equal(store_busy(fx->st), 0);
	store_msg_free(r.m);
	/* a restart reads the padded envelope like any other */
	store_close(fx->st);
	open_store(fx, 0, 100);
	assert_int_equal(store_recover(fx->st, on_found, on_scanned, &sc), 0);
	run_until(fx, &sc.done, 1);
	assert_int_equal(sc.nfound, 1);
	assert_int_equal(sc.corrupt, 0);
	assert_string_equal(sc.m[0]->id, id);
	check_streamed(sc.m[0], "Subject: streamed\n\nline one\nline two\n",
		37);
	store_msg_free(sc.m[0]);
	free(id);
	free(qdir);
	free(sub);
}

/* An empty draft commits a message of 0 bytes; one step at a time. */
static void
test_draft_empty_and_busy(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct store_draft *d;
	struct buf b = BUF_INIT;
	struct drec w = { 0 };
	struct rec r;

	open_store(fx, 0, 100);
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &d), 0);
	assert_int_equal(buf_puts(&b, "x\n"), 0);
	assert_int_equal(store_draft_write(d, &b, on_draft, &w), 0);
	assert_int_equal(buf_puts(&b, "y\n"), 0);
	assert_int_equal(store_draft_write(d, &b, on_draft, &w), -EBUSY);
	assert_int_equal(store_draft_commit(d, NULL, on_commit, &r), -EBUSY);
	assert_non_null(b.data);	/* refused: still the caller's */
	run_until(fx, &w.calls, 1);
	buf_free(&b);
	store_draft_abort(d);
	while (store_busy(fx->st) > 0)
		assert_true(uv_run(&fx->loop, UV_RUN_ONCE) >= 0);
	assert_int_equal(w.calls, 1);
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &d), 0);
	draft_commit_wait(fx, d, NULL, &r);
	assert_int_equal(r.err, 0);
	check_streamed(r.m, "", 0);
	store_msg_free(r.m);
}

/* Make a file of n bytes at path from a repeated pattern. */
static void
spit_pattern(const char *path, const char *pat, size_t n)
{
	size_t pl = strlen(pat);
	char *b = malloc(n + 1);

	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = pat[i % pl];
	spit(path, b, n);
	free(b);
}

/* Copy a file in chunks, CR LF converted across chunk and slice edges. */
static void
test_draft_copy(void **state)
{
	struct fx *fx = *state;
	/* 7 bytes: CR LF pairs fall on every chunk boundary sooner or later */
	static const char pat[] = "ab\r\ncd\r";
	size_t n = 20 * 1024 * 1024 + 3, skip = 5, len, want_len = 0;
	struct envelope env;
	struct store_draft *d;
	struct drec c = { 0 };
	struct rec r;
	char *src = fmt("%s/big.sub", fx->base), *want, *data;
	bool cr = false;
	int fd;

	open_store(fx, 0, 100);
	spit_pattern(src, pat, n);
	data = slurp(src, &len);
	want = malloc(len + 1);
	want_len = text_crlf_to_lf(data + skip, len - skip, want, &cr);
	if (cr)
		want[want_len++] = '\r';
	free(data);
	fd = open(src, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &d), 0);
	assert_int_equal(store_draft_copy(d, fd, skip, UINT64_MAX,
		STORE_COPY_CRLF, on_draft, &c), 0);
	assert_int_equal(store_draft_copy(d, fd, 0, 1, 0, on_draft, &c),
		-EBUSY);
	run_until(fx, &c.calls, 1);
	assert_int_equal(c.err, 0);
	assert_int_equal(c.n, n - skip);	/* bytes read from the source */
	assert_int_equal(store_draft_size(d), want_len);
	/* then more bytes after the copy, verbatim this time */
	c.calls = 0;
	assert_int_equal(store_draft_copy(d, fd, n - 4, UINT64_MAX, 0,
		on_draft, &c), 0);
	run_until(fx, &c.calls, 1);
	assert_int_equal(c.err, 0);
	assert_int_equal(c.n, 4);
	want = realloc(want, want_len + 4);
	for (size_t i = 0; i < 4; i++)
		want[want_len + i] = pat[(n - 4 + i) % 7];
	want_len += 4;
	draft_commit_wait(fx, d, NULL, &r);
	assert_int_equal(r.err, 0);
	check_streamed(r.m, want, want_len);
	store_msg_free(r.m);
	close(fd);
	free(want);
	free(src);
}

/* A source larger than max fails the copy, then the commit; no file. */
static void
test_draft_copy_too_big(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct store_draft *d;
	struct drec c = { 0 };
	struct rec r;
	char *src = fmt("%s/big.sub", fx->base);
	char *qdir = fmt("%s/Queue", fx->base);
	int fd;

	open_store(fx, 0, 100);
	spit_pattern(src, "0123456789\n", 300000);
	fd = open(src, O_RDONLY | O_CLOEXEC);
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &d), 0);
	assert_int_equal(store_draft_copy(d, fd, 0, 200000, 0, on_draft, &c),
		0);
	run_until(fx, &c.calls, 1);
	assert_int_equal(c.err, -EFBIG);
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);	/* withdrawn */
	/* a write after the failure does nothing and reports it again */
	draft_write_wait(fx, d, "more\n", &c);
	assert_int_equal(c.err, -EFBIG);
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	draft_commit_wait(fx, d, src, &r);
	assert_int_equal(r.err, -EFBIG);
	assert_null(r.m);
	assert_true(exists(src));		/* the source stays */
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	assert_int_equal(count_suffix(qdir, ".msg"), 0);
	assert_int_equal(store_count(fx->st), 0);
	assert_int_equal(store_busy(fx->st), 0);
	close(fd);
	free(src);
	free(qdir);
}

/* Abort, idle or with a step in flight: no callback, nothing left. */
static void
test_draft_abort(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct store_draft *d;
	struct buf b = BUF_INIT;
	struct drec w = { 0 };
	char *qdir = fmt("%s/Queue", fx->base);

	open_store(fx, 0, 100);
	/* never written: nothing on disk, freed at once */
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &d), 0);
	store_draft_abort(d);
	assert_int_equal(store_count(fx->st), 0);
	assert_int_equal(store_busy(fx->st), 0);
	/* written, idle */
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &d), 0);
	draft_write_wait(fx, d, "x\n", &w);
	assert_int_equal(count_suffix(qdir, ".tmp"), 1);
	store_draft_abort(d);
	while (store_busy(fx->st) > 0)
		assert_true(uv_run(&fx->loop, UV_RUN_ONCE) >= 0);
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	/* a write in flight: its callback never runs */
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &d), 0);
	memset(&w, 0, sizeof(w));
	assert_int_equal(buf_puts(&b, "y\n"), 0);
	assert_int_equal(store_draft_write(d, &b, on_draft, &w), 0);
	store_draft_abort(d);
	while (store_busy(fx->st) > 0)
		assert_true(uv_run(&fx->loop, UV_RUN_ONCE) >= 0);
	assert_int_equal(w.calls, 0);
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	assert_int_equal(count_suffix(qdir, ".msg"), 0);
	assert_int_equal(store_count(fx->st), 0);
	free(qdir);
}

/*
 * What a crash leaves: during a draft only ID.tmp exists, which recovery
 * removes; a file renamed before its envelope reached the disk (one flush
 * per commit) has a hole where the envelope goes and is kept as corrupt.
 */
static void
test_draft_crash_leftovers(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct store_draft *d;
	struct drec w;
	struct scan sc = { 0 };
	struct store *other;
	struct store_settings s = { .foldering = 0, .limit = 100 };
	char *qdir = fmt("%s/Queue", fx->base), *tmp, *msg, *data, *cdir;
	size_t len;

	open_store(fx, 0, 100);
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &d), 0);
	draft_write_wait(fx, d, "Subject: half\n\nhalf a mess", &w);
	tmp = fmt("%s/%s.tmp", qdir, store_draft_id(d));
	msg = fmt("%s/1700000000000001.msg", qdir);
	data = slurp(tmp, &len);
	/* the room is a hole (zeros): never a valid envelope */
	assert_int_equal(data[0], '\0');
	spit(msg, data, len);
	free(data);
	/* a restart (another store on the same folder) */
	assert_int_equal(store_open(&fx->loop, fx->base, &s, &fx->lg, &other),
		0);
	assert_int_equal(store_recover(other, on_found, on_scanned, &sc), 0);
	run_until(fx, &sc.done, 1);
	assert_int_equal(sc.nfound, 0);
	assert_int_equal(sc.corrupt, 1);
	assert_false(exists(tmp));
	assert_false(exists(msg));
	cdir = fmt("%s/corrupt", qdir);
	assert_int_equal(count_suffix(cdir, ".msg"), 1);
	assert_true(log_has(fx, "removed unfinished Queue/"));
	store_close(other);
	/* the writer itself then fails or gives up cleanly */
	store_draft_abort(d);
	while (store_busy(fx->st) > 0)
		assert_true(uv_run(&fx->loop, UV_RUN_ONCE) >= 0);
	assert_int_equal(count_suffix(qdir, ".tmp"), 0);
	free(cdir);
	free(tmp);
	free(msg);
	free(qdir);
}

/* Drafts count against the limit from their open. */
static void
test_draft_limit(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	struct store_draft *d, *e;

	open_store(fx, 0, 1);
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &d), 0);
	make_env(&env, 1, NULL);
	assert_int_equal(store_draft_open(fx->st, &env, NULL, 0, &e),
		-ENOSPC);
	assert_int_equal(env.nrcpt, 1);		/* refused: still ours */
	assert_int_equal(store_draft_open(fx->st, &env, NULL,
		STORE_EXEMPT_LIMIT, &e), 0);
	assert_int_equal(store_count(fx->st), 2);
	store_draft_abort(d);
	store_draft_abort(e);
	assert_int_equal(store_count(fx->st), 0);
	assert_int_equal(store_busy(fx->st), 0);
}

/* What store_list reported as left out. */
struct skips {
	int n;
	char *rel[4];
	unsigned line[4];
};

/* store_list skip callback: record. */
static void
on_skip(void *arg, const char *rel, const char *why, unsigned line)
{
	struct skips *k = arg;

	assert_non_null(why);
	assert_true(k->n < 4);
	k->rel[k->n] = strdup(rel);
	k->line[k->n++] = line;
}

/*
 * store_list: every live ID.msg in every folder but corrupt/, in ID order,
 * with its envelope and recipient states; corrupt files reported and left
 * where they are, other names ignored, nothing on disk changed.
 */
static void
test_list(void **state)
{
	struct fx *fx = *state;
	struct store_listing l = STORE_LISTING_INIT;
	struct store_list_err le = STORE_LIST_ERR_INIT;
	struct skips k = { 0 };
	struct envelope env;
	struct rec r1, r2;
	struct mrec mr = { 0 };
	size_t lt, lx;
	char *tb = queue_text(UID, 2, "FP", NULL, BODY, &lt);
	char *tx = queue_text(UID, 1, NULL, NULL, BODY, &lx);
	char *bad;

	/* no queue yet */
	assert_int_equal(store_list(fx->base, on_skip, &k, &l, &le), -ENOENT);
	assert_int_equal(le.step, STORE_LIST_OPEN_DIR);
	assert_string_equal(le.relpath, "Queue");
	assert_int_equal(l.n, 0);
	store_list_err_free(&le);
	assert_null(le.relpath);

	/* two commits in folders, one recipient final */
	open_store(fx, 10, 100);
	make_env(&env, 1, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r1);
	assert_int_equal(r1.err, 0);
	make_env(&env, 2, NULL);
	commit_wait(fx, &env, "x", NULL, 0, &r2);
	assert_int_equal(r2.err, 0);
	assert_int_equal(store_mark(fx->st, r2.m, 0, RCPT_DELIVERED, NULL, on_mark,
		&mr), 0);
	run_until(fx, &mr.calls, 1);
	assert_int_equal(mr.err, 0);
	/* written by hand in Queue/ itself, the lowest ID */
	free(place(fx, NULL, "1700000000000001.msg", tb, lt));
	/* not listed: corrupt/, .tmp, other names, a nested folder */
	free(place(fx, "corrupt", "1700000000000002.msg", tb, lt));
	free(place(fx, NULL, "1700000000000003.tmp", tb, lt));
	free(place(fx, NULL, "notes.msg", tb, lt));
	free(place(fx, "07", "README", "hi\n", 3));
	free(place(fx, "07/deeper", "1700000000000004.msg", tb, lt));
	/* corrupt: reported, listed no further, left in place */
	memcpy(tx, "mailpipe-queue 2", 16);
	bad = place(fx, "03", "1700000000000005.msg", tx, lx);
	memcpy(tx, "mailpipe-queue 1", 16);
	free(place(fx, NULL, "1700000000000006.msg", tx, lx - 1));

	assert_int_equal(store_list(fx->base, on_skip, &k, &l, &le), 0);
	assert_null(le.relpath);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].id, "1700000000000001");
	assert_string_equal(l.v[0].relpath, "Queue/1700000000000001.msg");
	assert_string_equal(l.v[0].env.uid, UID);
	assert_int_equal(l.v[0].env.nrcpt, 2);
	assert_int_equal(l.v[0].env.rcpt[0].state, RCPT_FAILED);
	assert_int_equal(l.v[0].env.rcpt[1].state, RCPT_PENDING);
	assert_string_equal(l.v[1].id, r1.m->id);
	assert_string_equal(l.v[1].relpath, r1.m->relpath);
	assert_string_equal(l.v[1].env.uid, r1.m->env.uid);
	assert_string_equal(l.v[1].env.from, "joe@example.com");
	assert_int_equal(l.v[1].env.submitted, 1763892300);
	assert_int_equal(l.v[1].env.size, strlen(BODY));
	assert_int_equal(l.v[1].env.nrcpt, 1);
	assert_int_equal(l.v[1].env.rcpt[0].state, RCPT_PENDING);
	assert_string_equal(l.v[2].id, r2.m->id);
	assert_string_equal(l.v[2].relpath, r2.m->relpath);
	assert_int_equal(l.v[2].env.size, 1);
	assert_int_equal(l.v[2].env.nrcpt, 2);
	assert_int_equal(l.v[2].env.rcpt[0].state, RCPT_DELIVERED);
	assert_string_equal(l.v[2].env.rcpt[1].addr, "r1@example.org");
	assert_int_equal(l.v[2].env.rcpt[1].state, RCPT_PENDING);
	/* the two corrupt files, in directory order */
	assert_int_equal(k.n, 2);
	for (int i = 0; i < k.n; i++) {
		if (strcmp(k.rel[i], "Queue/03/1700000000000005.msg") == 0)
			assert_int_equal(k.line[i], 1);
		else
			assert_string_equal(k.rel[i],
				"Queue/1700000000000006.msg");
		free(k.rel[i]);
	}
	assert_true(exists(bad));
	assert_int_equal(count_suffix(fx->base, ""), 2);	/* log, Queue */
	store_listing_free(&l);
	assert_int_equal(l.n, 0);
	assert_null(l.v);
	store_msg_free(r1.m);
	store_msg_free(r2.m);
	free(bad);
	free(tb);
	free(tx);
}

/* A `reported` record settling recipient rcpt's outcome. */
static struct journal_attempt
jreported(size_t rcpt, enum journal_action act, const char *uid)
{
	struct journal_attempt a = { .type = JOURNAL_REPORTED, .rcpt = rcpt,
		.time = 1765000100, .action = act };

	snprintf(a.report, sizeof(a.report), "%s", uid);
	return a;
}

/*
 * A kept file (m->keep: reports owed) stays after its last mark with
 * every state byte written, takes `reported` records for its final
 * recipients (in m->hist at once and on disk), and goes only by
 * store_remove, which refuses while a recipient is pending; nothing is
 * accepted after the removal.
 */
static void
test_keep_remove(void **state)
{
	static const char uid[] = "0123456789abcdef0123456789abcdef";
	struct fx *fx = *state;
	struct envelope env;
	struct rec r;
	struct mrec k[5];
	struct journal_attempt a;
	struct store_msg *m;
	char *text, *path;
	size_t len, end;

	memset(k, 0, sizeof(k));
	open_store(fx, 0, 100);
	make_env(&env, 2, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_int_equal(r.err, 0);
	m = r.m;
	m->keep = true;
	end = m->msg_off + m->msg_len;
	path = strdup(m->path);
	assert_int_equal(store_remove(fx->st, m, on_mark, &k[0]), -EBUSY);
	a = jrec(0, 1, JOURNAL_FAILED, -1, "5.1.1", "no such user");
	assert_int_equal(store_mark(fx->st, m, 0, RCPT_FAILED, &a, on_mark,
	    &k[0]), 0);
	/* a delay warning settles a recipient still pending */
	a = jreported(1, JOURNAL_ACT_DELAYED, uid);
	assert_int_equal(store_note(fx->st, m, &a, on_mark, &k[2]), 0);
	assert_int_equal(m->hist[1].reported, 1u << JOURNAL_ACT_DELAYED);
	assert_int_equal(store_mark(fx->st, m, 1, RCPT_DELIVERED, NULL,
	    on_mark, &k[1]), 0);
	run_until(fx, &k[1].calls, 1);
	run_until(fx, &k[0].calls, 1);
	run_until(fx, &k[2].calls, 1);
	assert_int_equal(k[0].err | k[1].err | k[2].err, 0);
	k[2].calls = 0;
	assert_false(k[1].removed);
	assert_true(exists(path));
	text = slurp(path, &len);
	assert_int_equal(text[m->env.rcpt[0].state_off], 'F');
	assert_int_equal(text[m->env.rcpt[1].state_off], 'D');
	free(text);
	/* the outcomes settled: records appended, memory first */
	a = jreported(0, JOURNAL_ACT_FAILED, uid);
	assert_int_equal(store_note(fx->st, m, &a, on_mark, &k[2]), 0);
	assert_int_equal(m->hist[0].reported, 1u << JOURNAL_ACT_FAILED);
	assert_string_equal(m->hist[0].reason, "no such user");
	a = jreported(1, JOURNAL_ACT_DELIVERED, "");
	assert_int_equal(store_note(fx->st, m, &a, on_mark, &k[3]), 0);
	assert_int_equal(m->hist[1].reported, 1u << JOURNAL_ACT_DELAYED |
	    1u << JOURNAL_ACT_DELIVERED);
	assert_int_equal(m->hist[1].attempts, 0);
	run_until(fx, &k[3].calls, 1);
	text = slurp(path, &len);
	assert_string_equal(text + end,
	    "attempt 0 1765000000 1 failed - pipe 550 5.1.1 no such user\n"
	    "reported 1 1765000100 delayed 0123456789abcdef0123456789abcdef\n"
	    "reported 0 1765000100 failed 0123456789abcdef0123456789abcdef\n"
	    "reported 1 1765000100 delivered -\n");
	free(text);
	assert_int_equal(store_remove(fx->st, m, on_mark, &k[4]), 0);
	assert_int_equal(store_remove(fx->st, m, on_mark, &k[4]), -ENOENT);
	a = jreported(0, JOURNAL_ACT_FAILED, uid);
	assert_int_equal(store_note(fx->st, m, &a, on_mark, &k[0]), -ENOENT);
	run_until(fx, &k[4].calls, 1);
	assert_int_equal(k[2].calls + k[3].calls, 2);
	assert_int_equal(k[2].err | k[3].err | k[4].err, 0);
	assert_true(k[4].removed);
	assert_false(exists(path));
	assert_int_equal(store_count(fx->st), 0);
	store_msg_free(m);
	free(path);
}

/* owes_report for the tests: a failed recipient not yet reported. */
static bool
owes_failed(const struct store_msg *m, const void *arg)
{
	(void)arg;
	for (size_t i = 0; i < m->env.nrcpt; i++)
		if (m->env.rcpt[i].state == RCPT_FAILED && (m->hist == NULL ||
		    !(m->hist[i].reported & 1u << JOURNAL_ACT_FAILED)))
			return true;
	return false;
}

/*
 * A crash after a kept file's last mark: recovery hands the file over
 * (pending 0, kept) while owes_report says a report is owed, and
 * removes it once the outcome is settled by its `reported` record.
 */
static void
test_recover_owed(void **state)
{
	struct store_settings set = { .limit = 100,
		.owes_report = owes_failed };
	struct fx *fx = *state;
	struct envelope env;
	struct rec r;
	struct mrec k[3];
	struct journal_attempt a;
	struct scan sc = { .nfound = 0 };
	struct store_msg *m;
	char *path;

	memset(k, 0, sizeof(k));
	assert_int_equal(store_open(&fx->loop, fx->base, &set, &fx->lg,
	    &fx->st), 0);
	make_env(&env, 2, NULL);
	commit_wait(fx, &env, BODY, NULL, 0, &r);
	assert_int_equal(r.err, 0);
	m = r.m;
	m->keep = true;
	path = strdup(m->path);
	a = jrec(0, 1, JOURNAL_FAILED, -1, "5.1.1", "no such user");
	assert_int_equal(store_mark(fx->st, m, 0, RCPT_FAILED, &a, on_mark,
	    &k[0]), 0);
	assert_int_equal(store_mark(fx->st, m, 1, RCPT_DELIVERED, NULL,
	    on_mark, &k[1]), 0);
	run_until(fx, &k[0].calls, 1);
	run_until(fx, &k[1].calls, 1);
	store_msg_free(m);
	/* the crash: the report was never queued */
	store_close(fx->st);
	assert_int_equal(store_open(&fx->loop, fx->base, &set, &fx->lg,
	    &fx->st), 0);
	recover_wait(fx, &sc);
	assert_int_equal(sc.found, 1);
	m = sc.m[0];
	assert_int_equal(m->pending, 0);
	assert_true(m->keep);
	assert_string_equal(m->hist[0].reason, "no such user");
	assert_true(exists(path));
	/* settled: the next recovery removes the file */
	a = (struct journal_attempt){ .type = JOURNAL_REPORTED, .rcpt = 0,
		.time = 1765000100, .action = JOURNAL_ACT_FAILED };
	assert_int_equal(store_note(fx->st, m, &a, on_mark, &k[2]), 0);
	run_until(fx, &k[2].calls, 1);
	assert_int_equal(k[2].err, 0);
	store_msg_free(m);
	store_close(fx->st);
	assert_int_equal(store_open(&fx->loop, fx->base, &set, &fx->lg,
	    &fx->st), 0);
	memset(&sc, 0, sizeof(sc));
	recover_wait(fx, &sc);
	assert_int_equal(sc.found, 0);
	assert_false(exists(path));
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_body_kept, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_body_kept_total, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_commit_readback, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_commit_is_queued, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_unlink_after, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foldering, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_foldering_auto, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_owed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_busy, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_commit_flushes, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_modes, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_close_deferred, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_draft_write_commit, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_draft_empty_and_busy,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_draft_copy, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_draft_copy_too_big, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_draft_abort, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_draft_crash_leftovers,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_draft_limit, setup,
			teardown),
	};

	/* more pool threads than the default 4, before the pool starts */
	setenv("UV_THREADPOOL_SIZE", "16", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
