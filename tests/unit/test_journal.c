/*
 * Unit tests for journal.c: records format canonically and parse back,
 * a line cut short by a crash is not a record, anything else malformed is
 * corrupt with its line number, reasons are cleaned and cut.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "journal.h"

struct seen {
	struct journal_attempt v[8];
	char reason[8][JOURNAL_REASON_MAX + 1];
	size_t n;
};

/* Collect parsed records (reasons copied). */
static int
collect(void *arg, const struct journal_attempt *a)
{
	struct seen *s = arg;

	if (s->n == 8)
		return -E2BIG;
	s->v[s->n] = *a;
	if (a->reason_len)	/* a `reported` record has none */
		memcpy(s->reason[s->n], a->reason, a->reason_len);
	s->reason[s->n][a->reason_len] = '\0';
	s->n++;
	return 0;
}

/* A deferral and a failure format as documented and parse back. */
static void
test_round_trip(void **state)
{
	struct journal_attempt d = { .rcpt = 1, .time = 1765000000,
		.attempt = 2, .kind = JOURNAL_DEFERRED, .next = 1765000900,
		.src = JOURNAL_PIPE, .reply = 451, .status = "4.3.0",
		.reason = "exit 75 (EX_TEMPFAIL): busy" };
	struct journal_attempt f = { .rcpt = 0, .time = 1765000001,
		.attempt = 1, .kind = JOURNAL_FAILED, .next = -1,
		.src = JOURNAL_RELAY, .reply = 550, .status = "5.1.1",
		.reason = "" };
	struct buf b = BUF_INIT;
	struct seen s = { .n = 0 };
	const char *why;
	unsigned line;
	size_t used;

	(void)state;
	assert_int_equal(journal_format(&d, &b), 0);
	assert_int_equal(journal_format(&f, &b), 0);
	assert_string_equal(b.data,
	    "attempt 1 1765000000 2 deferred 1765000900 pipe 451 4.3.0 "
	    "exit 75 (EX_TEMPFAIL): busy\n"
	    "attempt 0 1765000001 1 failed - relay 550 5.1.1 \n");
	assert_int_equal(journal_parse(b.data, b.len, 2, collect, &s, &used,
	    &why, &line), 0);
	assert_int_equal(used, b.len);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.v[0].rcpt, 1);
	assert_int_equal(s.v[0].attempt, 2);
	assert_int_equal(s.v[0].next, 1765000900);
	assert_int_equal(s.v[0].src, JOURNAL_PIPE);
	assert_string_equal(s.v[0].status, "4.3.0");
	assert_string_equal(s.reason[0], "exit 75 (EX_TEMPFAIL): busy");
	assert_int_equal(s.v[1].kind, JOURNAL_FAILED);
	assert_int_equal(s.v[1].next, -1);
	assert_int_equal(s.v[1].reply, 550);
	assert_string_equal(s.reason[1], "");
	buf_free(&b);
}

/* A last line without LF is not a record; complete ones before it are. */
static void
test_torn_tail(void **state)
{
	static const char j[] =
	    "attempt 0 5 1 deferred 10 mta 451 4.4.7 x\nattempt 0 6 2 def";
	struct seen s = { .n = 0 };
	const char *why;
	unsigned line;
	size_t used;

	(void)state;
	assert_int_equal(journal_parse(j, sizeof(j) - 1, 1, collect, &s,
	    &used, &why, &line), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(used, strchr(j, '\n') - j + 1);
	assert_int_equal(journal_parse("", 0, 1, NULL, NULL, &used, &why,
	    &line), 0);
	assert_int_equal(used, 0);
}

/* Every malformed complete line is corrupt, with its line number. */
static void
test_corrupt(void **state)
{
	static const char *const bad[] = {
		"attempts 0 5 1 deferred 10 mta 451 4.4.7 x\n",
		"attempt 2 5 1 deferred 10 mta 451 4.4.7 x\n",	/* rcpt */
		"attempt 0 05 1 deferred 10 mta 451 4.4.7 x\n",
		"attempt 0 5 0 deferred 10 mta 451 4.4.7 x\n",
		"attempt 0 5 1 delayed 10 mta 451 4.4.7 x\n",
		"attempt 0 5 1 deferred +10 mta 451 4.4.7 x\n",
		"attempt 0 5 1 deferred 10 smtp 451 4.4.7 x\n",
		"attempt 0 5 1 deferred 10 mta 45 4.4.7 x\n",
		"attempt 0 5 1 deferred 10 mta 651 4.4.7 x\n",
		"attempt 0 5 1 deferred 10 mta 451 4.4 x\n",
		"attempt 0 5 1 deferred 10 mta 451 3.4.7 x\n",
		"attempt 0 5 1 deferred 10 mta 451 4.4.7\n",	/* no space */
		"attempt 0 5 1 deferred 10 mta 451 4.4.7 a\rb\n",
		"attempt 0 5 1 deferred 10 mta 451 4.4.7 a\tb\n",
		"attempt  0 5 1 deferred 10 mta 451 4.4.7 x\n",
		"\n",
		"reported 0 5 bounced -\n",
		"reported 2 5 failed -\n",	/* rcpt */
		"reported 0 5 failed\n",
		"reported 0 5 failed -- \n",
		"reported 0 5 failed 0123456789abcdef0123456789ABCDEF\n",
		"reported 0 5 failed 0123456789abcdef0123456789abcde\n",
		"reported 0 5 failed 0123456789abcdef0123456789abcdef \n",
	};
	const char *why;
	unsigned line;
	size_t used;
	struct buf b = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&b);
		assert_int_equal(buf_puts(&b,
		    "attempt 0 5 1 deferred 10 mta 451 4.4.7 ok\n"), 0);
		assert_int_equal(buf_puts(&b, bad[i]), 0);
		assert_int_equal(journal_parse(b.data, b.len, 2, NULL, NULL,
		    &used, &why, &line), -EBADMSG);
		assert_non_null(why);
		assert_int_equal(line, 2);
	}
	buf_free(&b);
}

/*
 * A `reported` record formats as documented, parses back with its
 * action and uid (or none), and sits among attempt records.
 */
static void
test_reported(void **state)
{
	struct journal_attempt a = { .type = JOURNAL_REPORTED, .rcpt = 1,
		.time = 1765000002, .action = JOURNAL_ACT_FAILED,
		.report = "0123456789abcdef0123456789abcdef" };
	struct journal_attempt n = { .type = JOURNAL_REPORTED, .rcpt = 0,
		.time = 7, .action = JOURNAL_ACT_RELAYED };
	struct journal_attempt bad = a;
	struct buf b = BUF_INIT;
	struct seen s = { .n = 0 };
	const char *why;
	unsigned line;
	size_t used;

	(void)state;
	assert_int_equal(buf_puts(&b,
	    "attempt 1 5 1 failed - pipe 554 5.3.0 exit 1\n"), 0);
	assert_int_equal(journal_format(&a, &b), 0);
	assert_int_equal(journal_format(&n, &b), 0);
	assert_string_equal(b.data,
	    "attempt 1 5 1 failed - pipe 554 5.3.0 exit 1\n"
	    "reported 1 1765000002 failed 0123456789abcdef0123456789abcdef\n"
	    "reported 0 7 relayed -\n");
	assert_int_equal(journal_parse(b.data, b.len, 2, collect, &s, &used,
	    &why, &line), 0);
	assert_int_equal(used, b.len);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.v[0].type, JOURNAL_ATTEMPT);
	assert_int_equal(s.v[1].type, JOURNAL_REPORTED);
	assert_int_equal(s.v[1].rcpt, 1);
	assert_int_equal(s.v[1].time, 1765000002);
	assert_int_equal(s.v[1].action, JOURNAL_ACT_FAILED);
	assert_string_equal(s.v[1].report, a.report);
	assert_int_equal(s.v[2].action, JOURNAL_ACT_RELAYED);
	assert_string_equal(s.v[2].report, "");
	assert_string_equal(journal_action_name(JOURNAL_ACT_DELAYED),
	    "delayed");
	/* a uid that would not parse back is refused, nothing written */
	buf_reset(&b);
	memcpy(bad.report, "0123456789ABCDEF", 17);
	assert_int_equal(journal_format(&bad, &b), -EINVAL);
	bad = a;
	bad.action = (enum journal_action)9;
	assert_int_equal(journal_format(&bad, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

/* Control bytes become spaces; long reasons are cut at a UTF-8 boundary. */
static void
test_reason_cleaned(void **state)
{
	char lng[JOURNAL_REASON_MAX + 8];
	struct journal_attempt a = { .rcpt = 0, .time = 1, .attempt = 1,
		.kind = JOURNAL_FAILED, .next = -1, .src = JOURNAL_PIPE,
		.reply = 554, .status = "5.3.0", .reason = "a\tb\rc\x7f" };
	struct seen s = { .n = 0 };
	struct buf b = BUF_INIT;
	const char *why;
	unsigned line;
	size_t used;

	(void)state;
	assert_int_equal(journal_format(&a, &b), 0);
	assert_string_equal(strstr(b.data, "5.3.0 "), "5.3.0 a b c \n");
	/* 999 ASCII bytes then a two-byte character: cut before it */
	memset(lng, 'x', JOURNAL_REASON_MAX - 1);
	memcpy(lng + JOURNAL_REASON_MAX - 1, "\xc3\xa9yz", 5);
	a.reason = lng;
	buf_reset(&b);
	assert_int_equal(journal_format(&a, &b), 0);
	assert_int_equal(journal_parse(b.data, b.len, 1, collect, &s, &used,
	    &why, &line), 0);
	assert_int_equal(s.v[0].reason_len, JOURNAL_REASON_MAX - 1);
	/* values that could not be parsed back are refused */
	a.reason = "x";
	a.reply = 199;
	assert_int_equal(journal_format(&a, &b), -EINVAL);
	a.reply = 554;
	memcpy(a.status, "5.3", 4);
	assert_int_equal(journal_format(&a, &b), -EINVAL);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_reason_cleaned),
		cmocka_unit_test(test_reported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
