/*
 * Unit tests for log.c: record format (timestamp masked), level names and
 * parsing, filtering per component, escaping of control characters, one
 * complete line per record even when it is larger than a pipe, and the
 * key=value quoting rules.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* A logger writing to a fresh memfd. */
static void
mem_logger(struct logger *lg)
{
	log_init(lg);
	lg->fd = memfd_create("log", MFD_CLOEXEC);
	assert_true(lg->fd >= 0);
}

/* Everything written to the memfd so far (caller frees). */
static char *
mem_read(int fd)
{
	off_t end = lseek(fd, 0, SEEK_END);
	char *s;

	assert_true(end >= 0);
	s = malloc((size_t)end + 1);
	assert_non_null(s);
	assert_int_equal(pread(fd, s, (size_t)end, 0), end);
	s[end] = '\0';
	return s;
}

/* Is s a "YYYY-MM-DDTHH:MM:SS.mmmZ" UTC stamp (24 characters)? */
static bool
is_utc_stamp(const char *s)
{
	const char *pat = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (size_t i = 0; pat[i]; i++) {
		if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
			return false;
	}
	return true;
}

/* log_init: fd 2, UTC, every component at major. */
static void
test_init(void **state)
{
	struct logger lg;

	memset(&lg, 0x55, sizeof(lg));
	log_init(&lg);
	assert_int_equal(lg.fd, 2);
	assert_true(lg.utc);
	for (int i = 0; i < LOG_NCOMP; i++)
		assert_int_equal(lg.level[i], LOG_MAJOR);
	log_set_all(&lg, LOG_ALL);
	for (int i = 0; i < LOG_NCOMP; i++)
		assert_int_equal(lg.level[i], LOG_ALL);
}

/* Level names parse case-insensitively, "lowlevel" too; junk is refused. */
static void
test_level_parse(void **state)
{
	static const char *names[] = { "none", "failures", "major",
		"problems", "low-level", "all" };
	enum log_level l = LOG_NONE;

	for (int i = 0; i < 6; i++) {
		assert_int_equal(log_level_parse(names[i], &l), 0);
		assert_int_equal(l, i);
		assert_string_equal(log_level_name((enum log_level)i), names[i]);
	}
	assert_int_equal(log_level_parse("LOW-LEVEL", &l), 0);
	assert_int_equal(l, LOG_LOWLEVEL);
	l = LOG_NONE;
	assert_int_equal(log_level_parse("lowlevel", &l), 0);
	assert_int_equal(l, LOG_LOWLEVEL);
	assert_int_equal(log_level_parse("Major", &l), 0);
	assert_int_equal(l, LOG_MAJOR);
	l = LOG_ALL;
	assert_int_equal(log_level_parse("", &l), -EINVAL);
	assert_int_equal(log_level_parse("alll", &l), -EINVAL);
	assert_int_equal(log_level_parse("low level", &l), -EINVAL);
	assert_int_equal(log_level_parse("3", &l), -EINVAL);
	assert_int_equal(log_level_parse(NULL, &l), -EINVAL);
	assert_int_equal(l, LOG_ALL);
	assert_string_equal(log_level_name((enum log_level)99), "unknown");
}

/* Tags parse case-insensitively and name their component. */
static void
test_comp_parse(void **state)
{
	static const char *tags[] = { "SYSTEM", "PIPE", "ENQUEUER",
		"DEQUEUER", "SMTPI", "SMTP", "SUBMIT", "QUEUE" };
	enum log_comp c = LOG_SYSTEM;

	for (int i = 0; i < LOG_NCOMP; i++) {
		assert_int_equal(log_comp_parse(tags[i], &c), 0);
		assert_int_equal(c, i);
		assert_string_equal(log_comp_name((enum log_comp)i), tags[i]);
	}
	assert_int_equal(log_comp_parse("smtpi", &c), 0);
	assert_int_equal(c, LOG_SMTPI);
	assert_int_equal(log_comp_parse("Submit", &c), 0);
	assert_int_equal(c, LOG_SUBMIT);
	assert_int_equal(log_comp_parse("SMTPX", &c), -EINVAL);
	assert_int_equal(log_comp_parse("", &c), -EINVAL);
	assert_int_equal(log_comp_parse(NULL, &c), -EINVAL);
	assert_int_equal(c, LOG_SUBMIT);
	assert_string_equal(log_comp_name(LOG_NCOMP), "UNKNOWN");
}

/* log_enabled compares against the component's own level. */
static void
test_enabled(void **state)
{
	struct logger lg;

	log_init(&lg);
	lg.level[LOG_PIPE] = LOG_PROBLEMS;
	lg.level[LOG_SMTP] = LOG_NONE;
	assert_true(log_enabled(&lg, LOG_PIPE, LOG_FAILURES));
	assert_true(log_enabled(&lg, LOG_PIPE, LOG_PROBLEMS));
	assert_false(log_enabled(&lg, LOG_PIPE, LOG_LOWLEVEL));
	assert_true(log_enabled(&lg, LOG_QUEUE, LOG_MAJOR));
	assert_false(log_enabled(&lg, LOG_QUEUE, LOG_PROBLEMS));
	assert_false(log_enabled(&lg, LOG_SMTP, LOG_FAILURES));
	/* A record "at level none" is never written. */
	lg.level[LOG_QUEUE] = LOG_ALL;
	assert_false(log_enabled(&lg, LOG_QUEUE, LOG_NONE));
	assert_true(log_enabled(&lg, LOG_QUEUE, LOG_ALL));
	assert_false(log_enabled(&lg, LOG_NCOMP, LOG_FAILURES));
	assert_false(log_enabled(NULL, LOG_QUEUE, LOG_FAILURES));
}

/* One record: stamp, tag, level name, text, newline. */
static void
test_msg_format(void **state)
{
	struct logger lg;
	struct timespec ts;
	time_t before, after;
	struct tm tm;
	char *out;

	/* log.c's clock: time() reads a coarser one that can lag a tick */
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	before = ts.tv_sec;
	mem_logger(&lg);
	log_msg(&lg, LOG_PIPE, LOG_MAJOR, "delivered %s to %d", "x", 3);
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	after = ts.tv_sec;
	out = mem_read(lg.fd);
	assert_int_equal(strlen(out), 24 + strlen(" PIPE major: delivered x to 3\n"));
	assert_true(is_utc_stamp(out));
	assert_string_equal(out + 24, " PIPE major: delivered x to 3\n");
	/* The stamp is now, in UTC. */
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(out, "%Y-%m-%dT%H:%M:%S", &tm));
	time_t t = timegm(&tm);
	assert_true(t >= before && t <= after);
	free(out);
	close(lg.fd);
}

/* Each level and component writes its own names. */
static void
test_msg_names(void **state)
{
	struct logger lg;
	char *out;

	mem_logger(&lg);
	log_set_all(&lg, LOG_ALL);
	log_msg(&lg, LOG_SYSTEM, LOG_FAILURES, "a");
	log_msg(&lg, LOG_ENQUEUER, LOG_PROBLEMS, "b");
	log_msg(&lg, LOG_DEQUEUER, LOG_LOWLEVEL, "c");
	log_msg(&lg, LOG_SMTPI, LOG_ALL, "d");
	log_msg(&lg, LOG_QUEUE, LOG_MAJOR, "%s", "");
	out = mem_read(lg.fd);
	const char *want[] = { " SYSTEM failures: a\n",
		" ENQUEUER problems: b\n", " DEQUEUER low-level: c\n",
		" SMTPI all: d\n", " QUEUE major: \n" };
	const char *p = out;
	for (int i = 0; i < 5; i++) {
		const char *nl = strchr(p, '\n');

		assert_non_null(nl);
		assert_true(is_utc_stamp(p));
		assert_memory_equal(p + 24, want[i], strlen(want[i]));
		assert_ptr_equal(p + 24 + strlen(want[i]) - 1, nl);
		p = nl + 1;
	}
	assert_string_equal(p, "");
	free(out);
	close(lg.fd);
}

/* Records above the component's level are not written at all. */
static void
test_msg_filtered(void **state)
{
	struct logger lg;
	char *out;

	mem_logger(&lg);
	lg.level[LOG_SUBMIT] = LOG_FAILURES;
	lg.level[LOG_SMTP] = LOG_NONE;
	log_msg(&lg, LOG_SUBMIT, LOG_MAJOR, "hidden");
	log_msg(&lg, LOG_SMTP, LOG_FAILURES, "hidden");
	log_msg(&lg, LOG_PIPE, LOG_LOWLEVEL, "hidden");
	log_msg(&lg, LOG_SUBMIT, LOG_NONE, "hidden");
	out = mem_read(lg.fd);
	assert_string_equal(out, "");
	free(out);
	log_msg(&lg, LOG_SUBMIT, LOG_FAILURES, "shown");
	out = mem_read(lg.fd);
	assert_string_equal(out + 24, " SUBMIT failures: shown\n");
	free(out);
	close(lg.fd);
}

/* Newlines and control bytes in the text never split the record. */
static void
test_msg_escapes(void **state)
{
	struct logger lg;
	char *out;

	mem_logger(&lg);
	log_msg(&lg, LOG_SMTPI, LOG_MAJOR, "a\nb\r\tc%cd\x7f" "e\\f \xc3\xa9",
		1);
	out = mem_read(lg.fd);
	assert_string_equal(out + 24,
		" SMTPI major: a\\nb\\x0d\\x09c\\x01d\\x7fe\\f \xc3\xa9\n");
	assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1);
	free(out);
	close(lg.fd);
}

/* errno is the caller's after logging, even when the write fails. */
static void
test_msg_keeps_errno(void **state)
{
	struct logger lg;

	log_init(&lg);
	lg.fd = -1;
	errno = ENOSPC;
	log_msg(&lg, LOG_SYSTEM, LOG_FAILURES, "to nowhere");
	assert_int_equal(errno, ENOSPC);
}

/* Local time stamps carry the offset instead of Z. */
static void
test_msg_localtime(void **state)
{
	struct logger lg;
	char *out, *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;

	setenv("TZ", "XXX-2", 1);
	tzset();
	mem_logger(&lg);
	lg.utc = false;
	log_msg(&lg, LOG_SYSTEM, LOG_MAJOR, "local");
	out = mem_read(lg.fd);
	assert_memory_equal(out + 23, "+02:00 SYSTEM major: local\n", 27);
	assert_int_equal(out[4], '-');
	assert_int_equal(out[10], 'T');
	free(out);
	close(lg.fd);
	if (old) {
		setenv("TZ", old, 1);
		free(old);
	} else {
		unsetenv("TZ");
	}
	tzset();
}

struct reader {
	int fd;
	struct buf got;
};

/* Thread: read fd to EOF, slowly at first so the writer sees a full pipe. */
static void *
reader_main(void *arg)
{
	struct reader *rd = arg;
	char tmp[4096];
	ssize_t n;

	usleep(100000);
	while ((n = read(rd->fd, tmp, sizeof(tmp))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (buf_append(&rd->got, tmp, (size_t)n) < 0)
			break;
	}
	return NULL;
}

/* A record larger than the pipe arrives whole (partial writes retried). */
static void
test_msg_large_pipe(void **state)
{
	struct logger lg;
	struct reader rd = { -1, BUF_INIT };
	pthread_t th;
	int fds[2];
	size_t big = 300000;
	char *text = malloc(big + 1);

	assert_non_null(text);
	memset(text, 'x', big);
	text[big] = '\0';
	assert_int_equal(pipe(fds), 0);
	rd.fd = fds[0];
	assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
	log_init(&lg);
	lg.fd = fds[1];
	log_msg(&lg, LOG_QUEUE, LOG_MAJOR, "%s", text);
	log_msg(&lg, LOG_QUEUE, LOG_MAJOR, "after");
	close(fds[1]);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(fds[0]);
	assert_int_equal(rd.got.len, 24 + 14 + big + 1 + 24 + 20);
	assert_true(is_utc_stamp(rd.got.data));
	assert_memory_equal(rd.got.data + 24, " QUEUE major: ", 14);
	assert_memory_equal(rd.got.data + 38, text, big);
	assert_int_equal(rd.got.data[38 + big], '\n');
	assert_string_equal(rd.got.data + 38 + big + 1 + 24,
		" QUEUE major: after\n");
	buf_free(&rd.got);
	free(text);
}

/* Bare values: printable, no space, quote, backslash or equals sign. */
static void
test_kv_bare(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(log_kv(&b, "id", "0A1B-2c"), 0);
	assert_int_equal(log_kv(&b, "rcpt", "joe@example.com"), 0);
	assert_int_equal(log_kv(&b, "path", "/a/b:c;d,e<f>"), 0);
	assert_string_equal(b.data,
		" id=0A1B-2c rcpt=joe@example.com path=/a/b:c;d,e<f>");
	buf_free(&b);
}

/* Quoted values: spaces, quotes, backslashes, equals, controls, empty. */
static void
test_kv_quoted(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(log_kv(&b, "a", "two words"), 0);
	assert_string_equal(b.data, " a=\"two words\"");
	buf_reset(&b);
	assert_int_equal(log_kv(&b, "a", "say \"hi\""), 0);
	assert_string_equal(b.data, " a=\"say \\\"hi\\\"\"");
	buf_reset(&b);
	assert_int_equal(log_kv(&b, "a", "c:\\dir"), 0);
	assert_string_equal(b.data, " a=\"c:\\\\dir\"");
	buf_reset(&b);
	assert_int_equal(log_kv(&b, "a", "k=v"), 0);
	assert_string_equal(b.data, " a=\"k=v\"");
	buf_reset(&b);
	assert_int_equal(log_kv(&b, "a", "l1\nl2\r\t\x1f\x7f"), 0);
	assert_string_equal(b.data, " a=\"l1\\x0al2\\x0d\\x09\\x1f\\x7f\"");
	buf_reset(&b);
	assert_int_equal(log_kv(&b, "a", ""), 0);
	assert_string_equal(b.data, " a=\"\"");
	buf_reset(&b);
	assert_int_equal(log_kv(&b, "a", NULL), 0);
	assert_string_equal(b.data, " a=-");
	buf_reset(&b);
	assert_int_equal(log_kv(&b, "a", "caf\xc3\xa9"), 0);
	assert_string_equal(b.data, " a=\"caf\xc3\xa9\"");
	buf_reset(&b);
	assert_int_equal(log_kv(&b, "reason", "554 5.3.0 pipe transport gave "
		"exit status 1"), 0);
	assert_string_equal(b.data, " reason=\"554 5.3.0 pipe transport gave "
		"exit status 1\"");
	buf_free(&b);
}

/* log_kvf formats first, then quotes by the same rules. */
static void
test_kvf(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(buf_puts(&b, "delivery"), 0);
	assert_int_equal(log_kvf(&b, "attempt", "%u", 3u), 0);
	assert_int_equal(log_kvf(&b, "time", "%.3f", 1.5), 0);
	assert_int_equal(log_kvf(&b, "msg", "%s %s", "a", "b"), 0);
	assert_int_equal(log_kvf(&b, "e", "%s", ""), 0);
	assert_string_equal(b.data,
		"delivery attempt=3 time=1.500 msg=\"a b\" e=\"\"");
	buf_free(&b);
}

/* A kv line passed through log_msg stays one line. */
static void
test_kv_in_record(void **state)
{
	struct logger lg;
	struct buf b = BUF_INIT;
	char *out;

	mem_logger(&lg);
	assert_int_equal(buf_puts(&b, "delivery"), 0);
	assert_int_equal(log_kv(&b, "rcpt", "a\nb"), 0);
	log_msg(&lg, LOG_DEQUEUER, LOG_MAJOR, "%s", b.data);
	out = mem_read(lg.fd);
	assert_string_equal(out + 24,
		" DEQUEUER major: delivery rcpt=\"a\\x0ab\"\n");
	free(out);
	buf_free(&b);
	close(lg.fd);
}

/* Run the log tests. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_comp_parse),
		cmocka_unit_test(test_enabled),
		cmocka_unit_test(test_msg_format),
		cmocka_unit_test(test_msg_names),
		cmocka_unit_test(test_msg_filtered),
		cmocka_unit_test(test_msg_escapes),
		cmocka_unit_test(test_msg_keeps_errno),
		cmocka_unit_test(test_msg_localtime),
		cmocka_unit_test(test_msg_large_pipe),
		cmocka_unit_test(test_kv_bare),
		cmocka_unit_test(test_kv_quoted),
		cmocka_unit_test(test_kvf),
		cmocka_unit_test(test_kv_in_record),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
