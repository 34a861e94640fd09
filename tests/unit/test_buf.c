/*
 * Unit tests for buf.c: growable buffers never truncate, reads from a
 * descriptor stop at their limit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

/* Appends grow the buffer and keep it NUL-terminated. */
static void
test_buf_grows(void **state)
{
	struct buf b = BUF_INIT;
	char *s = NULL;

	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_putc(&b, (char)('a' + i % 26)), 0);
	assert_int_equal(b.len, 10000);
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(buf_printf(&b, "%s-%d", "x", 42), 0);
	assert_string_equal(b.data + 10000, "x-42");
	assert_int_equal(buf_steal(&b, &s), 0);
	assert_null(b.data);
	assert_int_equal(strlen(s), 10004);
	free(s);
}

/* A long printf is never cut. */
static void
test_buf_printf_long(void **state)
{
	struct buf b = BUF_INIT;
	char big[5000];

	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(buf_printf(&b, "<%s>", big), 0);
	assert_int_equal(b.len, sizeof(big) + 1);
	assert_int_equal(b.data[0], '<');
	assert_int_equal(b.data[b.len - 1], '>');
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_free(&b);
}

/* Stealing an empty buffer gives an empty string. */
static void
test_buf_steal_empty(void **state)
{
	struct buf b = BUF_INIT;
	char *s = NULL;

	assert_int_equal(buf_steal(&b, &s), 0);
	assert_string_equal(s, "");
	free(s);
}

/* Write text into a fresh pipe and close the write end; the read end. */
static int
pipe_with(const char *text)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
	close(p[1]);
	return p[0];
}

/* buf_read_fd: appends to the end of the fd, refuses more than max. */
static void
test_read_fd(void **state)
{
	struct buf b = BUF_INIT;
	int fd;

	(void)state;
	assert_int_equal(buf_puts(&b, "> "), 0);
	fd = pipe_with("hello\nworld\n");
	assert_int_equal(buf_read_fd(&b, fd, 14), 0);
	close(fd);
	assert_string_equal(b.data, "> hello\nworld\n");
	buf_reset(&b);
	fd = pipe_with("0123456789");
	assert_int_equal(buf_read_fd(&b, fd, 9), -EFBIG);
	close(fd);
	buf_reset(&b);
	fd = pipe_with("");
	assert_int_equal(buf_read_fd(&b, fd, 0), 0);
	close(fd);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_read_fd(&b, -1, 10), -EBADF);
	buf_free(&b);
}

/* buf_read_upto: never past upto, then on from where it stopped; eof. */
static void
test_read_upto(void **state)
{
	struct buf b = BUF_INIT;
	bool eof = true;
	int fd;

	(void)state;
	assert_int_equal(buf_puts(&b, "> "), 0);
	fd = pipe_with("hello\nworld\n");
	assert_int_equal(buf_read_upto(&b, fd, 7, &eof), 0);
	assert_false(eof);
	assert_int_equal(b.len, 7);
	assert_string_equal(b.data, "> hello");
	/* already there: nothing read */
	assert_int_equal(buf_read_upto(&b, fd, 5, &eof), 0);
	assert_false(eof);
	assert_int_equal(b.len, 7);
	assert_int_equal(buf_read_upto(&b, fd, 100, &eof), 0);
	assert_true(eof);
	assert_string_equal(b.data, "> hello\nworld\n");
	assert_int_equal(buf_read_upto(&b, fd, 100, &eof), 0);
	assert_true(eof);
	assert_int_equal(b.len, 14);
	close(fd);
	assert_int_equal(buf_read_upto(&b, -1, 100, &eof), -EBADF);
	buf_free(&b);
}

/* An exact reservation holds no slack; appends within it do not grow. */
static void
test_reserve_exact(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_reserve_exact(&b, 100), 0);
	assert_int_equal(b.cap, 101);
	assert_int_equal(buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(buf_reserve_exact(&b, 90), 0);
	assert_int_equal(b.cap, 101);		/* there was room */
	for (int i = 0; i < 9; i++)
		assert_int_equal(buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(b.cap, 101);
	assert_int_equal(b.len, 100);
	assert_int_equal(buf_reserve_exact(&b, 1), 0);
	assert_int_equal(b.cap, 102);
	assert_int_equal(buf_reserve_exact(&b, (size_t)-1), -ENOMEM);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_grows),
		cmocka_unit_test(test_buf_printf_long),
		cmocka_unit_test(test_buf_steal_empty),
		cmocka_unit_test(test_read_fd),
		cmocka_unit_test(test_read_upto),
		cmocka_unit_test(test_reserve_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
