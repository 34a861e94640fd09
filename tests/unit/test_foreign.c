/*
 * Unit tests for foreign.c: the ForeignQueue importer over a real store
 * and enqueuer in a folder under /tmp, on a real libuv loop; the
 * scheduler is a fake that only counts what it gets. Covered: .msg files
 * in the folder and its subfolders imported (and nothing else), .tmp
 * files deleted, other files left, corrupt ones quarantined, the
 * summary log line, the queue limit holding imports back, a missing
 * folder, and the stop callback. No sleeps: the loop runs until the
 * importer's summary line or its stop callback (the scan interval is an
 * hour, so only the first scan runs).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enqueue.h"
#include "foreign.h"
#include "sched.h"
#include "store.h"
#include "testutil.h"

#define BODY "Subject: imported\n\nhello\n"
#define LOOPS 100000		/* loop turns a test may take at most */

/* The fake scheduler: counts and frees what it is handed. */
struct sched {
	size_t n;
};

/* Everything one test needs. */
struct fx {
	char base[64];
	uv_loop_t loop;
	struct logger lg;
	struct store *st;
	struct enqueue *eq;
	struct foreign *fo;
	struct sched sc;
	int stopped;
};

/* The scheduler takes a message (the fake counts it). */
int
sched_add(struct sched *sc, struct store_msg *m)
{
	sc->n++;
	store_msg_free(m);
	return 0;
}

/* BASE/rel in dst (PATH_MAX bytes). */
static void
path_of(const struct fx *fx, const char *rel, char *dst)
{
	tu_snprintf(dst, PATH_MAX, "%s/%s", fx->base, rel);
}

/* Does the log hold text? */
static bool
logged(const struct fx *fx, const char *text)
{
	char p[PATH_MAX];

	path_of(fx, "log", p);
	return tu_file_has(p, text);
}

/* Open the store (queue limit), the enqueuer and the importer. */
static void
open_all(struct fx *fx, uint64_t limit)
{
	struct store_settings ss = { .foldering = 0, .limit = limit };
	struct enqueue_settings es = { "mx.example", 30 };

	assert_int_equal(store_open(&fx->loop, fx->base, &ss, &fx->lg,
		&fx->st), 0);
	assert_int_equal(enqueue_open(&es, fx->st, &fx->sc, &fx->lg,
		&fx->eq), 0);
	assert_int_equal(foreign_open(&fx->loop, fx->base, 3600, fx->eq,
		&fx->lg, &fx->fo), 0);
}

/* A base folder, a loop, a logger to BASE/log. */
static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char log[PATH_MAX];

	assert_non_null(fx);
	snprintf(fx->base, sizeof(fx->base), "/tmp/mp-foreign-XXXXXX");
	assert_non_null(mkdtemp(fx->base));
	path_of(fx, "log", log);
	log_init(&fx->lg);
	log_set_all(&fx->lg, LOG_ALL);
	fx->lg.fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		0600);
	assert_true(fx->lg.fd >= 0);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	*state = fx;
	return 0;
}

/* foreign_stop's callback. */
static void
on_stopped(void *arg)
{
	struct fx *fx = arg;

	fx->stopped++;
}

/* Run the loop until *n is want (at most LOOPS turns). */
static void
run_until(struct fx *fx, const int *n, int want)
{
	for (int i = 0; *n < want; i++) {
		assert_true(i < LOOPS);
		uv_run(&fx->loop, UV_RUN_ONCE);
	}
}

/* Stop and close everything (the store idle); remove the folder. */
static int
teardown(void **state)
{
	struct fx *fx = *state;

	foreign_stop(fx->fo, on_stopped, fx);
	run_until(fx, &fx->stopped, 1);
	foreign_close(fx->fo);
	uv_run(&fx->loop, UV_RUN_DEFAULT);	/* its timer closes */
	enqueue_close(fx->eq);
	assert_int_equal(store_busy(fx->st), 0);
	store_close(fx->st);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	close(fx->lg.fd);
	tu_rmtree(fx->base);
	free(fx);
	return 0;
}

/* Write text to BASE/rel. */
static void
put(const struct fx *fx, const char *rel, const char *text, size_t len)
{
	char p[PATH_MAX];
	int fd;

	path_of(fx, rel, p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

/* A queue file (one pending recipient) at BASE/rel. */
static void
put_msg(const struct fx *fx, const char *rel)
{
	struct envelope e;
	struct buf b = BUF_INIT;

	envelope_init(&e);
	assert_non_null(e.tag = strdup("PIPE"));
	assert_non_null(e.from = strdup("joe@example.com"));
	assert_int_equal(envelope_add_rcpt(&e, "r@example.org", NULL, 0), 0);
	assert_int_equal(envelope_new_uid(e.uid), 0);
	e.submitted = 1763892300;
	e.size = strlen(BODY);
	assert_int_equal(envelope_format(&e, &b), 0);
	assert_int_equal(buf_puts(&b, BODY), 0);
	put(fx, rel, b.data, b.len);
	envelope_free(&e);
	buf_free(&b);
}

/* Does BASE/rel exist? */
static bool
there(const struct fx *fx, const char *rel)
{
	char p[PATH_MAX];

	path_of(fx, rel, p);
	return access(p, F_OK) == 0;
}

/* Run the loop until the log holds text (at most LOOPS turns). */
static void
run_until_logged(struct fx *fx, const char *text)
{
	for (int i = 0; !logged(fx, text); i++) {
		assert_true(i < LOOPS);
		uv_run(&fx->loop, UV_RUN_ONCE);
	}
}

/* Make BASE/ForeignQueue and BASE/ForeignQueue/sub. */
static void
make_folder(const struct fx *fx)
{
	char p[PATH_MAX];

	path_of(fx, "ForeignQueue", p);
	assert_int_equal(mkdir(p, 0700), 0);
	path_of(fx, "ForeignQueue/sub", p);
	assert_int_equal(mkdir(p, 0700), 0);
}

/* .msg files (subfolders too) imported, .tmp deleted, the rest left. */
static void
test_import(void **state)
{
	struct fx *fx = *state;

	make_folder(fx);
	put_msg(fx, "ForeignQueue/a.msg");
	put_msg(fx, "ForeignQueue/sub/b.msg");
	put(fx, "ForeignQueue/c.tmp", "partial", 7);
	put(fx, "ForeignQueue/notes.txt", "keep me", 7);
	put(fx, "ForeignQueue/bad.msg", "not a queue file\n", 17);
	open_all(fx, 100);
	assert_int_equal(foreign_start(fx->fo), 0);
	run_until_logged(fx, "ForeignQueue: done, 2 imported, 1 corrupt");
	assert_int_equal(fx->sc.n, 2);
	assert_int_equal(store_count(fx->st), 2);
	assert_true(logged(fx, "ForeignQueue: removed 1 .tmp files"));
	assert_true(logged(fx, "ForeignQueue: importing 3 messages"));
	assert_true(logged(fx, "ForeignQueue: imported as id="));
	assert_false(there(fx, "ForeignQueue/a.msg"));
	assert_false(there(fx, "ForeignQueue/sub/b.msg"));
	assert_false(there(fx, "ForeignQueue/c.tmp"));
	assert_false(there(fx, "ForeignQueue/bad.msg"));
	assert_true(there(fx, "Queue/corrupt/bad.msg"));
	assert_true(there(fx, "ForeignQueue/notes.txt"));
}

/* The queue limit: imports wait (one log line), the files stay. */
static void
test_queue_limit(void **state)
{
	struct fx *fx = *state;

	make_folder(fx);
	put_msg(fx, "ForeignQueue/a.msg");
	put_msg(fx, "ForeignQueue/b.msg");
	put_msg(fx, "ForeignQueue/c.msg");
	open_all(fx, 1);
	assert_int_equal(foreign_start(fx->fo), 0);
	run_until_logged(fx, "queue limit reached: ForeignQueue import "
		"waits");
	/* what was started goes on; nothing more starts */
	while (store_busy(fx->st) > 0)
		uv_run(&fx->loop, UV_RUN_ONCE);
	assert_int_equal(fx->sc.n, store_count(fx->st));
	assert_true(fx->sc.n >= 1 && fx->sc.n < 3);
	assert_int_equal((there(fx, "ForeignQueue/a.msg") ? 1 : 0) +
		(there(fx, "ForeignQueue/b.msg") ? 1 : 0) +
		(there(fx, "ForeignQueue/c.msg") ? 1 : 0), 3 - fx->sc.n);
	assert_false(logged(fx, "ForeignQueue: done"));
}

/* No ForeignQueue folder: nothing imported, nothing said. */
static void
test_no_folder(void **state)
{
	struct fx *fx = *state;

	open_all(fx, 100);
	assert_int_equal(foreign_start(fx->fo), 0);
	/* the walk is the only work: wait until the stop says it is over */
	foreign_stop(fx->fo, on_stopped, fx);
	run_until(fx, &fx->stopped, 1);
	fx->stopped = 0;
	assert_int_equal(fx->sc.n, 0);
	assert_false(logged(fx, "ForeignQueue"));
	assert_false(there(fx, "ForeignQueue"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_limit, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_no_folder, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
