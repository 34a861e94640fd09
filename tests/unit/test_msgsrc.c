/*
 * Unit tests for msgsrc.c: a message read from a queue file at an offset
 * in chunks (exactly its bytes, never past its length), a file shorter
 * than recorded, a file that cannot be opened, close before and after
 * open, operations refused while one runs, a memory message read in
 * place, and the blocking whole-message reader.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "msgsrc.h"
#include "testutil.h"

/* A queue file's shape: an envelope before the message, a tail after. */
#define HEAD "envelope line\n"
#define BODY "Subject: t\n\nline one\nline two\n"
#define TAIL "trailer"

/* What the callbacks saw. */
struct seen {
	struct buf got;
	int opens, reads, closes;
	ssize_t last;		/* the last result */
	char chunk[7];		/* small, to force several reads */
	uint64_t pos;
	bool eof_short;		/* a read returned 0 */
	bool failed;		/* an open or read failed */
};

/* Write HEAD BODY TAIL (or only HEAD and part of BODY) to a temp file. */
static void
make_file(char *path, size_t n, bool cut)
{
	int fd;
	const char *all = HEAD BODY TAIL;
	size_t len = cut ? strlen(HEAD) + 5 : strlen(all);

	tu_snprintf(path, n, "/tmp/test_msgsrc.XXXXXX");
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, all, len), (ssize_t)len);
	close(fd);
}

/* Read on until the message is done, then close. */
static void
on_src(struct msgsrc *ms, enum msgsrc_op op, ssize_t r)
{
	struct seen *sn = ms->data;

	sn->last = r;
	if (op == MSGSRC_CLOSE) {
		sn->closes++;
		return;
	}
	if (op == MSGSRC_OPEN)
		sn->opens++;
	else
		sn->reads++;
	if (r < 0)
		sn->failed = true;
	if (op == MSGSRC_READ && r == 0)
		sn->eof_short = true;
	if (op == MSGSRC_READ && r > 0) {
		assert_true((size_t)r <= sizeof(sn->chunk));
		assert_int_equal(buf_append(&sn->got, sn->chunk, (size_t)r), 0);
		sn->pos += (uint64_t)r;
	}
	/* Nothing else may start while the callback's operation ran. */
	assert_false(msgsrc_busy(ms));
	if (r > 0 || (op == MSGSRC_OPEN && r == 0)) {
		if (sn->pos < strlen(BODY)) {
			assert_int_equal(msgsrc_read(ms, sn->pos, sn->chunk,
			    sizeof(sn->chunk)), 0);
			assert_true(msgsrc_busy(ms));
			assert_int_equal(msgsrc_close(ms), -EBUSY);
			assert_int_equal(msgsrc_read(ms, sn->pos, sn->chunk,
			    sizeof(sn->chunk)), -EINVAL);
			return;
		}
		/* All of it read: nothing is left to read. */
		assert_int_equal(msgsrc_read(ms, sn->pos, sn->chunk,
		    sizeof(sn->chunk)), -EINVAL);
	}
	assert_true(msgsrc_close(ms) >= 0);
}

/* Open path, read its message to the end (or failure), close; run all. */
static void
read_all(const char *path, uint64_t len, struct seen *sn)
{
	uv_loop_t loop;
	struct msgsrc ms;

	assert_int_equal(uv_loop_init(&loop), 0);
	msgsrc_init(&ms, &loop, path, NULL, strlen(HEAD), len, on_src, sn);
	assert_true(msgsrc_is_file(&ms));
	assert_int_equal(msgsrc_open(&ms), 0);
	assert_int_equal(msgsrc_open(&ms), -EINVAL);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_false(msgsrc_busy(&ms));
	assert_int_equal(msgsrc_close(&ms), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* The message's bytes exactly, in chunks, none of HEAD or TAIL. */
static void
test_file_at_offset(void **state)
{
	char path[64];
	struct seen sn = { .got = BUF_INIT };
	int fds = tu_count_fds();

	(void)state;
	make_file(path, sizeof(path), false);
	read_all(path, strlen(BODY), &sn);
	assert_int_equal(sn.opens, 1);
	assert_int_equal(sn.closes, 1);
	assert_false(sn.failed);
	assert_false(sn.eof_short);
	assert_int_equal(sn.got.len, strlen(BODY));
	assert_memory_equal(sn.got.data, BODY, strlen(BODY));
	assert_int_equal(sn.reads, (strlen(BODY) + sizeof(sn.chunk) - 1) /
	    sizeof(sn.chunk));
	assert_int_equal(tu_count_fds(), fds);
	buf_free(&sn.got);
	unlink(path);
}

/* A file cut short: a read returns 0 (not a shorter message). */
static void
test_file_shorter(void **state)
{
	char path[64];
	struct seen sn = { .got = BUF_INIT };
	int fds = tu_count_fds();

	(void)state;
	make_file(path, sizeof(path), true);
	read_all(path, strlen(BODY), &sn);
	assert_true(sn.eof_short);
	assert_int_equal(sn.got.len, 5);
	assert_memory_equal(sn.got.data, BODY, 5);
	assert_int_equal(sn.closes, 1);
	assert_int_equal(tu_count_fds(), fds);
	buf_free(&sn.got);
	unlink(path);
}

/* A missing file: the open fails with -ENOENT, nothing to close. */
static void
test_file_missing(void **state)
{
	struct seen sn = { .got = BUF_INIT };

	(void)state;
	read_all("/nonexistent/msgsrc-test", strlen(BODY), &sn);
	assert_int_equal(sn.opens, 1);
	assert_true(sn.failed);
	assert_int_equal(sn.last, -ENOENT);
	assert_int_equal(sn.reads, 0);
	assert_int_equal(sn.closes, 0);
}

/* Nothing can be read before the open; close then has nothing to do. */
static void
test_not_open(void **state)
{
	uv_loop_t loop;
	struct msgsrc ms;
	char b[8];

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	msgsrc_init(&ms, &loop, "/nonexistent", NULL, 0, 10, on_src, NULL);
	assert_int_equal(msgsrc_read(&ms, 0, b, sizeof(b)), -EINVAL);
	assert_int_equal(msgsrc_close(&ms), 0);
	assert_false(msgsrc_busy(&ms));
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* A memory message: read in place, bounded by max and by its length. */
static void
test_memory(void **state)
{
	static const char msg[] = "0123456789";
	struct msgsrc ms;
	const char *p;
	size_t n;

	(void)state;
	msgsrc_init(&ms, NULL, NULL, msg, 0, 10, on_src, NULL);
	assert_false(msgsrc_is_file(&ms));
	assert_int_equal(msgsrc_open(&ms), -EINVAL);
	p = msgsrc_mem_at(&ms, 0, 4, &n);
	assert_ptr_equal(p, msg);
	assert_int_equal(n, 4);
	p = msgsrc_mem_at(&ms, 8, 4, &n);
	assert_ptr_equal(p, msg + 8);
	assert_int_equal(n, 2);
	p = msgsrc_mem_at(&ms, 10, 4, &n);
	assert_int_equal(n, 0);
	p = msgsrc_mem_at(&ms, 12, 4, &n);
	assert_ptr_equal(p, msg + 10);
	assert_int_equal(n, 0);
}

/* msgsrc_each's chunk callback: collect, or fail at a given count. */
struct each {
	struct buf got;
	int calls, fail_at;
};

/* Collect one chunk. */
static int
each_chunk(void *arg, const char *p, size_t n)
{
	struct each *e = arg;

	if (++e->calls == e->fail_at)
		return -ECANCELED;
	return buf_append(&e->got, p, n);
}

/* The blocking reader: the same bytes, the same errors, texts given. */
static void
test_each(void **state)
{
	char path[64], b[7];
	struct msgsrc ms;
	struct each e = { .got = BUF_INIT };
	const char *why = "x";
	int fds = tu_count_fds();

	(void)state;
	make_file(path, sizeof(path), false);
	msgsrc_init(&ms, NULL, path, NULL, strlen(HEAD), strlen(BODY), NULL,
	    NULL);
	assert_int_equal(msgsrc_each(&ms, b, sizeof(b), each_chunk, &e, &why),
	    0);
	assert_null(why);
	assert_int_equal(e.got.len, strlen(BODY));
	assert_memory_equal(e.got.data, BODY, strlen(BODY));
	assert_int_equal(e.calls, (strlen(BODY) + sizeof(b) - 1) / sizeof(b));

	/* The chunk callback stops it with its own error. */
	buf_reset(&e.got);
	e.calls = 0;
	e.fail_at = 2;
	assert_int_equal(msgsrc_each(&ms, b, sizeof(b), each_chunk, &e, &why),
	    -ECANCELED);
	assert_null(why);
	unlink(path);

	/* Cut short. */
	make_file(path, sizeof(path), true);
	msgsrc_init(&ms, NULL, path, NULL, strlen(HEAD), strlen(BODY), NULL,
	    NULL);
	e.fail_at = 0;
	assert_int_equal(msgsrc_each(&ms, b, sizeof(b), each_chunk, &e, &why),
	    -EIO);
	assert_string_equal(why, "message file shorter than recorded");
	unlink(path);

	/* Missing. */
	assert_int_equal(msgsrc_each(&ms, b, sizeof(b), each_chunk, &e, &why),
	    -ENOENT);
	assert_string_equal(why, "cannot open the message");

	/* Memory: one piece. */
	buf_reset(&e.got);
	e.calls = 0;
	msgsrc_init(&ms, NULL, NULL, BODY, 0, strlen(BODY), NULL, NULL);
	assert_int_equal(msgsrc_each(&ms, b, sizeof(b), each_chunk, &e, &why),
	    0);
	assert_int_equal(e.calls, 1);
	assert_memory_equal(e.got.data, BODY, strlen(BODY));
	assert_int_equal(tu_count_fds(), fds);
	buf_free(&e.got);
}

/* libuv makes its process-wide descriptors at the first loop: before
   any test counts descriptors. */
static int
warm_up(void **state)
{
	uv_loop_t loop;

	(void)state;
	if (uv_loop_init(&loop) < 0)
		return -1;
	return uv_loop_close(&loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_at_offset),
		cmocka_unit_test(test_file_shorter),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_not_open),
		cmocka_unit_test(test_memory),
		cmocka_unit_test(test_each),
	};

	return cmocka_run_group_tests(tests, warm_up, NULL);
}
