/*
 * Unit tests for buf.c: growable buffers never truncate, string vectors
 * stay NULL-terminated, random hex is well-formed.
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
#include "random.h"
#include "strv.h"
#include "text.h"

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

/* Vectors push, find and stay NULL-terminated. */
static void
test_strv(void **state)
{
	struct strv a = STRV_INIT, c = STRV_INIT;

	assert_int_equal(strv_push(&a, "one"), 0);
	assert_int_equal(strv_pushn(&a, "twoXX", 3), 0);
	assert_int_equal(strv_push_take(&a, mp_strdup("three")), 0);
	assert_int_equal(a.n, 3);
	assert_null(a.v[3]);
	assert_string_equal(a.v[1], "two");
	assert_int_equal(strv_find(&a, "three"), 2);
	assert_int_equal(strv_find(&a, "four"), -1);
	assert_int_equal(strv_extend(&c, &a), 0);
	assert_int_equal(c.n, 3);
	assert_ptr_not_equal(c.v[0], a.v[0]);
	strv_free(&a);
	strv_free(&c);
	assert_null(a.v);
	assert_int_equal(strv_push_take(&a, NULL), -ENOMEM);
}

/* Random hex: right length, hex digits only, different every time. */
static void
test_random_hex(void **state)
{
	char a[201], b[201];

	assert_int_equal(mp_random_hex(a, 100), 0);
	assert_int_equal(mp_random_hex(b, 100), 0);
	assert_int_equal(strlen(a), 200);
	assert_int_equal(strspn(a, "0123456789abcdef"), 200);
	assert_string_not_equal(a, b);
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

/* CR LF becomes LF, lone CRs stay, also when a CR ends a piece. */
static void
test_crlf_to_lf(void **state)
{
	static const char text[] = "a\r\nb\rc\r\r\nd\r\n\r\n\re\r";
	static const char want[] = "a\nb\rc\r\nd\n\n\re";
	char out[sizeof(text) + 1];
	bool cr = false;
	size_t n;

	(void)state;
	n = mp_crlf_to_lf(text, sizeof(text) - 1, out, &cr);
	assert_true(cr);		/* the last CR is held */
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(out, want, n);
	/* every split into two pieces gives the same bytes */
	for (size_t cut = 0; cut < sizeof(text); cut++) {
		size_t o;

		cr = false;
		o = mp_crlf_to_lf(text, cut, out, &cr);
		o += mp_crlf_to_lf(text + cut, sizeof(text) - 1 - cut, out + o,
			&cr);
		assert_int_equal(o, sizeof(want) - 1);
		assert_memory_equal(out, want, o);
		assert_true(cr);
	}
	cr = false;
	assert_int_equal(mp_crlf_to_lf("", 0, out, &cr), 0);
	assert_false(cr);
	/* a held CR followed by a piece that is not LF comes out first */
	cr = true;
	assert_int_equal(mp_crlf_to_lf("x", 1, out, &cr), 2);
	assert_memory_equal(out, "\rx", 2);
}

/* Control characters: 0x00-0x1f and 0x7f; TAB only when not allowed. */
static void
test_has_ctl(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 256; c++)
		assert_int_equal(mp_is_ctl((unsigned char)c),
		    c < 0x20 || c == 0x7f);
	assert_false(mp_has_ctl("", 0, false));
	assert_false(mp_has_ctl("a b~\xc3\xa9\x80\xff", 8, false));
	assert_true(mp_has_ctl("a\tb", 3, false));
	assert_false(mp_has_ctl("a\tb", 3, true));
	assert_true(mp_has_ctl("a\t\rb", 4, true));
	assert_true(mp_has_ctl("\x7f", 1, true));
	assert_true(mp_has_ctl("a\0b", 3, false));	/* NUL counts */
	assert_false(mp_has_ctl("a\nb", 1, false));	/* only n bytes */
	assert_false(mp_str_has_ctl(NULL));
	assert_false(mp_str_has_ctl(""));
	assert_false(mp_str_has_ctl("x@example.org \xc3\xa9"));
	assert_true(mp_str_has_ctl("a\r\nRCPT TO:<x>"));
	assert_true(mp_str_has_ctl("\t"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_grows),
		cmocka_unit_test(test_buf_printf_long),
		cmocka_unit_test(test_buf_steal_empty),
		cmocka_unit_test(test_strv),
		cmocka_unit_test(test_random_hex),
		cmocka_unit_test(test_read_fd),
		cmocka_unit_test(test_read_upto),
		cmocka_unit_test(test_crlf_to_lf),
		cmocka_unit_test(test_has_ctl),
		cmocka_unit_test(test_reserve_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
