/*
 * Unit tests for enqueue.c on a real store in a folder under /tmp and a
 * real libuv loop; the scheduler is a fake (sched_add below) that records
 * what it was handed, in order. Covered: the plain and draft paths (hop
 * limit, queue full, header refused, nothing left behind), Received:
 * prepended, uid and time filled, the release order with ordered and
 * unordered drafts and aborts, enqueue_judge / enqueue_judged (the header
 * parsed once), imports and recovery through the enqueuer, the Enqueue
 * Asynchronously classes. No sleeps: the loop runs until the callbacks
 * fired or the store is idle.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "enqueue.h"
#include "sched.h"
#include "store.h"
#include "testutil.h"

#define HOPS 3			/* the hop limit of every test */
#define RCV "Received: from a ([192.0.2.1])\n\tby mx.example (mailpipe) " \
	"with ESMTP;\n\tMon, 7 Dec 2026 12:00:00 +0000\n"
#define BODY "Subject: test\n\nhello\n"
#define NMAX 16

/* The fake scheduler: the messages enqueue handed over, in order. */
struct sched {
	struct store_msg *m[NMAX];
	size_t n;
	int fail;		/* sched_add returns this when set */
	int *seq;		/* the fixture's event counter */
	int at[NMAX];		/* its value when each message came */
};

/* Everything one test needs. */
struct fx {
	char *base;
	char *logpath;
	uv_loop_t loop;
	struct logger lg;
	struct store *st;
	struct enqueue *eq;
	struct sched sc;
	int seq;		/* events so far (callbacks, sched_add) */
};

/* What an enqueue callback saw. */
struct rec {
	struct fx *fx;
	int calls;
	int err;
	int at;			/* fx->seq when it was called */
	char id[STORE_ID_LEN + 1];
};

/* The scheduler takes a durable message (the fake records it). */
int
sched_add(struct sched *sc, struct store_msg *m)
{
	if (sc->fail)
		return sc->fail;
	assert_true(sc->n < NMAX);
	sc->at[sc->n] = (*sc->seq)++;
	sc->m[sc->n++] = m;
	return 0;
}

/* Open the store (queue limit) and the enqueuer over the fake scheduler. */
static void
open_all(struct fx *fx, uint64_t limit)
{
	struct store_settings ss = { .foldering = 0, .limit = limit };
	struct enqueue_settings es = { "mx.example", HOPS };

	assert_int_equal(store_open(&fx->loop, fx->base, &ss, &fx->lg,
		&fx->st), 0);
	assert_int_equal(enqueue_open(&es, fx->st, &fx->sc, &fx->lg,
		&fx->eq), 0);
}

/* Close the enqueuer and the store (which must be idle). */
static void
close_all(struct fx *fx)
{
	enqueue_close(fx->eq);
	fx->eq = NULL;
	if (fx->st) {
		assert_int_equal(store_busy(fx->st), 0);
		store_close(fx->st);
	}
	fx->st = NULL;
	for (size_t i = 0; i < fx->sc.n; i++)
		store_msg_free(fx->sc.m[i]);
	fx->sc.n = 0;
}

/* A base folder, a loop, a logger, a store with room for 100. */
static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char tmpl[] = "/tmp/mp-enqueue-XXXXXX";
	int fd;

	assert_non_null(fx);
	assert_non_null(mkdtemp(tmpl));
	fx->base = strdup(tmpl);
	fx->logpath = tu_strdupf("%s/log", fx->base);
	fd = open(fx->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	log_init(&fx->lg);
	log_set_all(&fx->lg, LOG_ALL);
	fx->lg.fd = fd;
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	fx->sc.seq = &fx->seq;
	open_all(fx, 100);
	*state = fx;
	return 0;
}

/* Close everything; remove the folder. */
static int
teardown(void **state)
{
	struct fx *fx = *state;

	close_all(fx);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	close(fx->lg.fd);
	tu_rmtree(fx->base);
	free(fx->base);
	free(fx->logpath);
	free(fx);
	return 0;
}

/* An envelope with one recipient (uid and time left for enqueue). */
static void
make_env(struct envelope *e)
{
	envelope_init(e);
	assert_non_null(e->tag = strdup("SMTP"));
	assert_non_null(e->from = strdup("joe@example.com"));
	assert_int_equal(envelope_add_rcpt(e, "r@example.org", NULL, 0), 0);
}

/* A buffer holding text. */
static struct buf
text_buf(const char *text)
{
	struct buf b = BUF_INIT;

	assert_int_equal(buf_puts(&b, text), 0);
	return b;
}

/* enqueue_cb: record. */
static void
on_done(void *arg, int err, const char *id)
{
	struct rec *r = arg;

	r->calls++;
	r->err = err;
	r->at = r->fx->seq++;
	snprintf(r->id, sizeof(r->id), "%s", id ? id : "");
}

/* A fresh record. */
static void
rec_init(struct rec *r, struct fx *fx)
{
	memset(r, 0, sizeof(*r));
	r->fx = fx;
}

/* Run the loop until *n reaches want. */
static void
run_until(struct fx *fx, const int *n, int want)
{
	while (*n < want)
		assert_true(uv_run(&fx->loop, UV_RUN_ONCE) >= 0 || *n >= want);
}

/* Run the loop until at most busy disk operations are left. */
static void
run_idle(struct fx *fx, unsigned busy)
{
	while (store_busy(fx->st) > busy)
		uv_run(&fx->loop, UV_RUN_ONCE);
}

/* Files in Queue/ whose name ends in suffix. */
static size_t
queue_files(struct fx *fx, const char *suffix)
{
	char *q = tu_strdupf("%s/Queue", fx->base);
	DIR *d = opendir(q);
	struct dirent *de;
	size_t n = 0, sl = strlen(suffix);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > sl && strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	free(q);
	return n;
}

/* Bytes in the log so far. */
static off_t
log_size(struct fx *fx)
{
	struct stat sb;

	assert_int_equal(stat(fx->logpath, &sb), 0);
	return sb.st_size;
}

/* n Received: fields followed by BODY. */
static char *
with_hops(unsigned n)
{
	struct buf b = BUF_INIT;
	char *s;

	for (unsigned i = 0; i < n; i++)
		assert_int_equal(buf_printf(&b, "Received: hop %u\n", i), 0);
	assert_int_equal(buf_puts(&b, BODY), 0);
	assert_int_equal(buf_steal(&b, &s), 0);
	return s;
}

/* Queue text with received on top; wait; return the callback's record. */
static void
queue_wait(struct fx *fx, const char *text, const char *received,
	struct rec *r)
{
	struct envelope env;
	struct buf m = text_buf(text);

	make_env(&env);
	rec_init(r, fx);
	assert_int_equal(enqueue_message(fx->eq, &env, &m, received, NULL,
		on_done, r), 0);
	assert_int_equal(r->calls, 0);	/* never inside the call */
	run_until(fx, &r->calls, 1);
	buf_free(&m);
}

/* A draft opened with header (text, taken) and received. */
static int
draft_open(struct fx *fx, const char *header, const char *received,
	bool ordered, struct enqueue_draft **ed)
{
	struct envelope env;
	struct buf h = text_buf(header);
	int r;

	make_env(&env);
	r = enqueue_draft_open(fx->eq, &env, &h, received, ordered, ed);
	buf_free(&h);
	return r;
}

/* store_draft_cb: count a finished write. */
static void
on_wrote(void *arg, int err, uint64_t n)
{
	int *calls = arg;

	(void)n;
	assert_int_equal(err, 0);
	(*calls)++;
}

/* Write a body line to the draft, then commit it (r: its record). */
static void
draft_finish(struct fx *fx, struct enqueue_draft *ed, struct rec *r)
{
	struct buf b = text_buf("hello\n");
	int wrote = 0;

	assert_int_equal(store_draft_write(enqueue_draft_store(ed), &b,
		on_wrote, &wrote), 0);
	run_until(fx, &wrote, 1);
	buf_free(&b);
	rec_init(r, fx);
	assert_int_equal(enqueue_draft_commit(ed, NULL, on_done, r), 0);
}

/* A plain message: Received: on top, uid and time filled, scheduled. */
static void
test_plain(void **state)
{
	struct fx *fx = *state;
	struct store_msg *m;
	struct rec r;
	char *file;
	const char *want = RCV BODY;
	time_t now = time(NULL);

	queue_wait(fx, BODY, RCV, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(strlen(r.id), STORE_ID_LEN);
	/* told first, then the scheduler had it */
	assert_int_equal(fx->sc.n, 1);
	assert_true(r.at < fx->sc.at[0]);
	m = fx->sc.m[0];
	assert_string_equal(m->id, r.id);
	assert_int_equal(m->msg_len, strlen(want));
	assert_non_null(m->body);
	assert_memory_equal(m->body, want, strlen(want));
	assert_int_equal(strlen(m->env.uid), ENVELOPE_UID_LEN);
	assert_true(m->env.submitted >= now && m->env.submitted <= now + 5);
	file = tu_slurp(m->path, NULL);
	assert_int_equal(strcmp(file + m->msg_off, want), 0);
	free(file);
	assert_true(tu_file_has(fx->logpath, "queued from=<joe@example.com> rcpts=1"));
	/* without a Received: field the message is queued as it is */
	queue_wait(fx, BODY, NULL, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(fx->sc.n, 2);
	assert_int_equal(fx->sc.m[1]->msg_len, strlen(BODY));
	assert_true(strcmp(fx->sc.m[0]->id, fx->sc.m[1]->id) < 0);
}

/* The hop limit counts every Received:, the one put on top too. */
static void
test_hop_limit(void **state)
{
	struct fx *fx = *state;
	struct enqueue_draft *ed = NULL;
	struct envelope env;
	struct buf m;
	struct rec r;
	char *at = with_hops(HOPS - 1), *over = with_hops(HOPS);

	/* HOPS fields with the one on top: accepted */
	queue_wait(fx, at, RCV, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(fx->sc.n, 1);
	/* one more: refused at once, nothing written, nobody told */
	make_env(&env);
	m = text_buf(over);
	rec_init(&r, fx);
	assert_int_equal(enqueue_message(fx->eq, &env, &m, RCV, NULL,
		on_done, &r), -ELOOP);
	assert_null(m.data);		/* taken */
	run_idle(fx, 0);
	assert_int_equal(r.calls, 0);
	assert_int_equal(queue_files(fx, ".msg"), 1);
	assert_int_equal(queue_files(fx, ".tmp"), 0);
	assert_true(tu_file_has(fx->logpath,
	    "message from <joe@example.com> refused: 4 "
	    "Received: fields, hop limit 3"));
	/* without the field on top the same message is within the limit */
	queue_wait(fx, over, NULL, &r);
	assert_int_equal(r.err, 0);
	/* the draft path counts the same, in the header alone */
	assert_int_equal(draft_open(fx, over, RCV, false, &ed), -ELOOP);
	assert_int_equal(draft_open(fx, over, RCV, true, &ed), -ELOOP);
	run_idle(fx, 0);
	assert_int_equal(queue_files(fx, ".msg"), 2);
	assert_int_equal(queue_files(fx, ".tmp"), 0);
	assert_int_equal(fx->sc.n, 2);
	free(at);
	free(over);
}

/* An unparsable header: -EINVAL on both paths, with a log line. */
static void
test_bad_header(void **state)
{
	struct fx *fx = *state;
	struct enqueue_draft *ed = NULL;
	struct envelope env;
	struct buf m = text_buf("not a header line\n\nbody\n");
	struct rec r;

	make_env(&env);
	rec_init(&r, fx);
	assert_int_equal(enqueue_message(fx->eq, &env, &m, NULL, NULL,
		on_done, &r), -EINVAL);
	assert_true(tu_file_has(fx->logpath,
	    "message refused: malformed header line"));
	assert_int_equal(draft_open(fx, "Subject: x\n\x01" "bad\n\n", NULL,
		false, &ed), -EINVAL);
	run_idle(fx, 0);
	assert_int_equal(r.calls, 0);
	assert_int_equal(queue_files(fx, ".msg"), 0);
	assert_int_equal(queue_files(fx, ".tmp"), 0);
	assert_int_equal(fx->sc.n, 0);
}

/* The queue limit: -ENOSPC on every way in, nothing written. */
static void
test_queue_full(void **state)
{
	struct fx *fx = *state;
	struct enqueue_draft *ed = NULL;
	struct envelope env;
	struct buf m;
	struct rec r;
	char *src = tu_strdupf("%s/elsewhere.msg", fx->base);

	close_all(fx);
	open_all(fx, 1);
	queue_wait(fx, BODY, RCV, &r);
	assert_int_equal(r.err, 0);
	make_env(&env);
	m = text_buf(BODY);
	assert_int_equal(enqueue_message(fx->eq, &env, &m, RCV, NULL,
		on_done, &r), -ENOSPC);
	make_env(&env);
	m = text_buf(BODY);
	assert_int_equal(enqueue_judged(fx->eq, &env, &m, on_done, &r),
		-ENOSPC);
	assert_int_equal(draft_open(fx, BODY, RCV, true, &ed), -ENOSPC);
	assert_int_equal(enqueue_import(fx->eq, src, on_done, &r), -ENOSPC);
	run_idle(fx, 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(queue_files(fx, ".msg"), 1);
	assert_int_equal(queue_files(fx, ".tmp"), 0);
	assert_int_equal(fx->sc.n, 1);
	free(src);
}

/* enqueue_judge: hops counted, errors without a log line. */
static void
test_judge(void **state)
{
	struct fx *fx = *state;
	const char *why = NULL;
	off_t before = log_size(fx);
	char *at = with_hops(HOPS), *over = with_hops(HOPS + 1);
	const char *bad = "Subject: x\nno colon here\n\n";
	size_t hops = 99;

	assert_int_equal(enqueue_judge(fx->eq, at, strlen(at), &hops, &why),
		0);
	assert_int_equal(hops, HOPS);
	assert_int_equal(enqueue_judge(fx->eq, BODY, strlen(BODY), &hops,
		&why), 0);
	assert_int_equal(hops, 0);
	assert_int_equal(enqueue_judge(fx->eq, over, strlen(over), &hops,
		&why), -ELOOP);
	assert_int_equal(hops, HOPS + 1);
	assert_int_equal(enqueue_judge(fx->eq, bad, strlen(bad), &hops,
		&why), -EINVAL);
	assert_non_null(why);
	assert_string_equal(why, "malformed header line (not \"Name: "
		"value\")");
	assert_int_equal(log_size(fx), before);
	free(at);
	free(over);
}

/* enqueue_judged queues without parsing the header again. */
static void
test_judged(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	const char *text = "not a header: it was judged\n\nbody\n";
	struct buf m = text_buf(RCV BODY);
	struct rec r;

	make_env(&env);
	rec_init(&r, fx);
	assert_int_equal(enqueue_judged(fx->eq, &env, &m, on_done, &r), 0);
	run_until(fx, &r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(fx->sc.n, 1);
	assert_int_equal(fx->sc.m[0]->msg_len, strlen(RCV BODY));
	/* what enqueue_message refuses passes: it is not parsed twice */
	make_env(&env);
	m = text_buf(text);
	assert_int_equal(enqueue_message(fx->eq, &env, &m, NULL, NULL,
		on_done, &r), -EINVAL);
	make_env(&env);
	m = text_buf(text);
	rec_init(&r, fx);
	assert_int_equal(enqueue_judged(fx->eq, &env, &m, on_done, &r), 0);
	run_until(fx, &r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(fx->sc.n, 2);
}

/*
 * An ordered draft takes its place at the open: a message queued after it
 * is durable first but waits; both are released in ID order at the
 * draft's commit, each told before the scheduler has it.
 */
static void
test_release_ordered(void **state)
{
	struct fx *fx = *state;
	struct enqueue_draft *ed = NULL;
	struct envelope env;
	struct buf m = text_buf(BODY);
	struct rec a, b;

	assert_int_equal(draft_open(fx, "Subject: big\n\n", RCV, true, &ed),
		0);
	make_env(&env);
	rec_init(&b, fx);
	assert_int_equal(enqueue_message(fx->eq, &env, &m, RCV, NULL,
		on_done, &b), 0);
	run_idle(fx, 1);		/* b durable; the draft still open */
	assert_int_equal(queue_files(fx, ".msg"), 1);
	assert_int_equal(b.calls, 0);
	assert_int_equal(fx->sc.n, 0);
	draft_finish(fx, ed, &a);
	run_until(fx, &b.calls, 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.err, 0);
	assert_int_equal(b.err, 0);
	assert_true(strcmp(a.id, b.id) < 0);
	assert_int_equal(fx->sc.n, 2);
	assert_string_equal(fx->sc.m[0]->id, a.id);
	assert_string_equal(fx->sc.m[1]->id, b.id);
	assert_true(a.at < fx->sc.at[0] && fx->sc.at[0] < b.at &&
		b.at < fx->sc.at[1]);
	/* the draft's file: Received: on top, header, then the body */
	assert_int_equal(fx->sc.m[0]->msg_len,
		strlen(RCV "Subject: big\n\nhello\n"));
	buf_free(&m);
}

/*
 * An unordered draft (SMTP) takes its place at the commit: a message
 * queued after its open is released without waiting for it.
 */
static void
test_release_unordered(void **state)
{
	struct fx *fx = *state;
	struct enqueue_draft *ed = NULL;
	struct rec a, b;

	assert_int_equal(draft_open(fx, "Subject: big\n\n", RCV, false,
		&ed), 0);
	queue_wait(fx, BODY, RCV, &b);
	assert_int_equal(b.err, 0);
	assert_int_equal(fx->sc.n, 1);
	draft_finish(fx, ed, &a);
	run_until(fx, &a.calls, 1);
	assert_int_equal(a.err, 0);
	assert_true(strcmp(a.id, b.id) < 0);	/* older, released later */
	assert_int_equal(fx->sc.n, 2);
	assert_string_equal(fx->sc.m[0]->id, b.id);
	assert_string_equal(fx->sc.m[1]->id, a.id);
}

/* An aborted ordered draft lets the messages behind it go; no file. */
static void
test_release_abort(void **state)
{
	struct fx *fx = *state;
	struct enqueue_draft *ed = NULL, *ed2 = NULL;
	struct envelope env;
	struct buf m = text_buf(BODY);
	struct rec b;

	assert_int_equal(draft_open(fx, "Subject: big\n\n", RCV, true, &ed),
		0);
	assert_int_equal(draft_open(fx, "Subject: big\n\n", RCV, false,
		&ed2), 0);
	make_env(&env);
	rec_init(&b, fx);
	assert_int_equal(enqueue_message(fx->eq, &env, &m, RCV, NULL,
		on_done, &b), 0);
	run_idle(fx, 2);
	assert_int_equal(b.calls, 0);
	enqueue_draft_abort(ed2);	/* unordered: nothing waits for it */
	assert_int_equal(b.calls, 0);
	enqueue_draft_abort(ed);
	assert_int_equal(b.calls, 1);	/* b was durable: released now */
	assert_int_equal(b.err, 0);
	run_idle(fx, 0);
	assert_int_equal(fx->sc.n, 1);
	assert_string_equal(fx->sc.m[0]->id, b.id);
	assert_int_equal(queue_files(fx, ".msg"), 1);
	assert_int_equal(queue_files(fx, ".tmp"), 0);
	buf_free(&m);
}

/* A message the scheduler cannot take: a log line, the file stays. */
static void
test_sched_fails(void **state)
{
	struct fx *fx = *state;
	struct rec r;

	fx->sc.fail = -ENOMEM;
	queue_wait(fx, BODY, RCV, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(fx->sc.n, 0);
	assert_true(tu_file_has(fx->logpath,
	    "cannot be scheduled: Cannot allocate memory "
	    "(delivered after a restart)"));
	assert_int_equal(queue_files(fx, ".msg"), 1);
}

/* A queue file written elsewhere (the ForeignQueue format). */
static char *
foreign_file(struct fx *fx, const char *name)
{
	struct envelope e;
	struct buf b = BUF_INIT;
	char *dir = tu_strdupf("%s/ForeignQueue", fx->base), *path;

	mkdir(dir, 0755);
	make_env(&e);
	assert_int_equal(envelope_new_uid(e.uid), 0);
	e.submitted = 1763892300;
	e.size = strlen(BODY);
	assert_int_equal(envelope_format(&e, &b), 0);
	assert_int_equal(buf_puts(&b, BODY), 0);
	path = tu_strdupf("%s/%s", dir, name);
	{
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			0600);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
		close(fd);
	}
	envelope_free(&e);
	buf_free(&b);
	free(dir);
	return path;
}

/* Imports: moved under a fresh ID, scheduled, then the importer told. */
static void
test_import(void **state)
{
	struct fx *fx = *state;
	char *src = foreign_file(fx, "x.msg"), *bad = foreign_file(fx,
		"bad.msg");
	struct rec r;
	int fd;

	rec_init(&r, fx);
	assert_int_equal(enqueue_import(fx->eq, src, on_done, &r), 0);
	assert_int_equal(r.calls, 0);
	run_until(fx, &r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(strlen(r.id), STORE_ID_LEN);
	assert_int_equal(fx->sc.n, 1);
	assert_string_equal(fx->sc.m[0]->id, r.id);
	assert_true(fx->sc.at[0] < r.at);
	assert_int_equal(access(src, F_OK), -1);
	/* a corrupt one: the store's error, nothing scheduled */
	fd = open(bad, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "junk\n", 5), 5);
	close(fd);
	rec_init(&r, fx);
	assert_int_equal(enqueue_import(fx->eq, bad, on_done, &r), 0);
	run_until(fx, &r.calls, 1);
	assert_int_equal(r.err, -EBADMSG);
	assert_string_equal(r.id, "");
	assert_int_equal(fx->sc.n, 1);
	free(src);
	free(bad);
}

/* What a recovery saw. */
struct seen {
	struct fx *fx;
	char id[NMAX][STORE_ID_LEN + 1];
	size_t sched_n[NMAX];	/* messages scheduled when it was seen */
	size_t n;
	int done, err;
	size_t found, corrupt;
};

/* enqueue_seen_cb: record. */
static void
on_seen(void *arg, const struct store_msg *m)
{
	struct seen *s = arg;

	assert_true(s->n < NMAX);
	s->sched_n[s->n] = s->fx->sc.n;
	memcpy(s->id[s->n++], m->id, STORE_ID_LEN + 1);
}

/* store_scan_cb: record. */
static void
on_recovered(void *arg, int err, size_t found, size_t corrupt)
{
	struct seen *s = arg;

	s->done++;
	s->err = err;
	s->found = found;
	s->corrupt = corrupt;
}

/* Recovery: each message seen, then scheduled, in ID order. */
static void
test_recover(void **state)
{
	struct fx *fx = *state;
	struct seen s;
	struct rec r1, r2;

	queue_wait(fx, BODY, RCV, &r1);
	queue_wait(fx, BODY, RCV, &r2);
	assert_true(strcmp(r1.id, r2.id) < 0);
	close_all(fx);
	open_all(fx, 100);
	memset(&s, 0, sizeof(s));
	s.fx = fx;
	assert_int_equal(enqueue_recover(fx->eq, on_seen, on_recovered, &s),
		0);
	run_until(fx, &s.done, 1);
	assert_int_equal(s.err, 0);
	assert_int_equal(s.found, 2);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.id[0], r1.id);
	assert_string_equal(s.id[1], r2.id);
	assert_int_equal(s.sched_n[0], 0);
	assert_int_equal(s.sched_n[1], 1);
	assert_int_equal(fx->sc.n, 2);
	assert_string_equal(fx->sc.m[0]->id, r1.id);
	assert_string_equal(fx->sc.m[1]->id, r2.id);
	/* seen may be NULL */
	close_all(fx);
	open_all(fx, 100);
	memset(&s, 0, sizeof(s));
	assert_int_equal(enqueue_recover(fx->eq, NULL, on_recovered, &s), 0);
	run_until(fx, &s.done, 1);
	assert_int_equal(fx->sc.n, 2);
}

/*
 * The six Enqueue Asynchronously classes against the three kinds of
 * submitter: local submission (authenticated), an SMTP client in
 * trusted-networks, an SMTP client outside it.
 */
static void
test_async_classes(void **state)
{
	static const struct {
		enum enqueue_async a;
		bool local, client, other;
	} t[] = {
		{ ASYNC_ANYBODY, true, true, true },
		{ ASYNC_NOBODY, false, false, false },
		{ ASYNC_AUTHENTICATED, true, false, false },
		{ ASYNC_UNAUTHENTICATED, false, true, true },
		{ ASYNC_CLIENTS, true, true, false },
		{ ASYNC_NONCLIENTS, false, false, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(enqueue_async_applies(t[i].a, true, false),
			t[i].local);
		/* local submission is counted as a client as well */
		assert_int_equal(enqueue_async_applies(t[i].a, true, true),
			t[i].local);
		assert_int_equal(enqueue_async_applies(t[i].a, false, true),
			t[i].client);
		assert_int_equal(enqueue_async_applies(t[i].a, false, false),
			t[i].other);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hop_limit, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_queue_full, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_judge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_judged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_ordered, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_release_unordered, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_release_abort, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_sched_fails, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
		cmocka_unit_test(test_async_classes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
