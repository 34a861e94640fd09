/* Unit tests for result.c: the result type, code maps and the exit-status
   table (SPEC "PIPE delivery", "Decisions / Failure class"). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"

/* A successful exit that read its input and wrote nothing. */
static struct run_outcome
exited(int code)
{
	struct run_outcome o = { .end = RUN_EXITED, .code = code,
	    .stdin_consumed = true, .time_limit_s = 600 };
	return o;
}

/* Run the table and compare every field. */
static void
check(const struct run_outcome *o, const struct code_map *map,
	enum result_kind kind, int reply, const char *status, const char *text)
{
	struct result r = RESULT_INIT;

	assert_int_equal(result_from_run(o, map, &r), 0);
	assert_string_equal(result_kind_name(r.kind), result_kind_name(kind));
	assert_int_equal(r.reply, reply);
	assert_string_equal(r.status, status);
	assert_non_null(r.text);
	assert_string_equal(r.text, text);
	for (const char *p = r.text; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	result_clear(&r);
}

/* result_set, result_format, result_move, result_clear, kind names. */
static void
test_result_basics(void **state)
{
	struct result a = RESULT_INIT, b = RESULT_INIT;
	char *s;

	(void)state;
	assert_int_equal(result_set(&a, RESULT_DEFERRED, 451, "4.3.0",
	    "line1\nline2\r\t%d\x7f", 7), 0);
	assert_string_equal(a.text, "line1 line2  7 ");
	assert_int_equal(result_format(&a, &s), 0);
	assert_string_equal(s, "451 4.3.0 line1 line2  7 ");
	free(s);
	/* Setting again replaces the text (no leak under ASan). */
	assert_int_equal(result_set(&a, RESULT_FAILED, 554, "5.3.0", "x"), 0);
	assert_int_equal(a.kind, RESULT_FAILED);
	assert_int_equal(result_set(&a, RESULT_FAILED, 554,
	    "5.3.0000000000", "too long status"), -EINVAL);
	assert_string_equal(a.text, "x");

	result_move(&b, &a);
	assert_null(a.text);
	assert_int_equal(a.reply, 0);
	assert_string_equal(b.text, "x");
	assert_int_equal(b.reply, 554);
	result_move(&b, &b);
	assert_string_equal(b.text, "x");

	/* Empty parts are left out of the rendering. */
	assert_int_equal(result_set(&b, RESULT_DELIVERED, 250, "", "%s", ""),
	    0);
	assert_int_equal(result_format(&b, &s), 0);
	assert_string_equal(s, "250");
	free(s);
	assert_int_equal(result_set(&b, RESULT_DELIVERED, 250, NULL, "ok"), 0);
	assert_int_equal(result_format(&b, &s), 0);
	assert_string_equal(s, "250 ok");
	free(s);
	result_clear(&b);
	assert_null(b.text);

	assert_string_equal(result_kind_name(RESULT_DELIVERED), "delivered");
	assert_string_equal(result_kind_name(RESULT_DEFERRED), "deferred");
	assert_string_equal(result_kind_name(RESULT_FAILED), "failed");
	assert_string_equal(result_kind_name((enum result_kind)42), "unknown");
}

/* Every exit status row: 0, the temporary ones, all others. */
static void
test_exit_table(void **state)
{
	char text[80];

	(void)state;
	for (int st = 0; st < 256; st++) {
		struct run_outcome o = exited(st);

		snprintf(text, sizeof(text),
		    "pipe transport gave exit status %d", st);
		if (st == 0)
			check(&o, NULL, RESULT_DELIVERED, 250, "2.0.0",
			    "delivered");
		else if (st == 71 || st == 74 || st == 75 || st == 79)
			check(&o, NULL, RESULT_DEFERRED, 451, "4.3.0", text);
		else
			check(&o, NULL, RESULT_FAILED, 554, "5.3.0", text);
		assert_int_equal(result_exit_is_temporary(st),
		    st == 71 || st == 74 || st == 75 || st == 79);
	}
}

/* stderr output, [STDERR] and unread stdin against each class. */
static void
test_stderr_stdin_rules(void **state)
{
	struct run_outcome o;
	const char *err = "  first line\n\tsecond\x01line\r\n\n";

	(void)state;
	/* Exit 0, stderr without [STDERR]: failed with the stderr text. */
	o = exited(0);
	o.err_text = err;
	o.err_len = strlen(err);
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
	    "first line second line");
	/* Whitespace only on stderr still fails; a generic text is used. */
	o.err_text = "\n \n";
	o.err_len = 3;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
	    "program wrote to its standard error");
	/* Bytes written but none kept (stderr-limit 0). */
	o.err_text = NULL;
	o.err_len = 10;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
	    "program wrote to its standard error");
	/* With [STDERR] exit 0 is delivered whatever stderr says. */
	o.err_text = err;
	o.err_len = strlen(err);
	o.stderr_tag = true;
	check(&o, NULL, RESULT_DELIVERED, 250, "2.0.0", "delivered");
	/* Exit 0 and unread stdin: failed, with or without [STDERR]. */
	o = exited(0);
	o.stdin_consumed = false;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	o.stderr_tag = true;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	o.err_text = err;
	o.err_len = strlen(err);
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	/* Both stderr (no tag) and unread stdin: the stderr text wins. */
	o.stderr_tag = false;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
	    "first line second line");

	/* Temporary statuses stay deferred in every combination. */
	for (int tag = 0; tag < 2; tag++)
		for (int consumed = 0; consumed < 2; consumed++)
			for (int wrote = 0; wrote < 2; wrote++) {
				o = exited(75);
				o.stderr_tag = tag;
				o.stdin_consumed = consumed;
				if (wrote) {
					o.err_text = err;
					o.err_len = strlen(err);
				}
				check(&o, NULL, RESULT_DEFERRED, 451, "4.3.0",
				    wrote ? "first line second line" :
				    consumed ?
				    "pipe transport gave exit status 75" :
				    "pipe transport gave exit status 75; "
				    "program did not read all of its input");
			}
	/* Permanent statuses stay failed in every combination. */
	for (int tag = 0; tag < 2; tag++)
		for (int consumed = 0; consumed < 2; consumed++)
			for (int wrote = 0; wrote < 2; wrote++) {
				o = exited(1);
				o.stderr_tag = tag;
				o.stdin_consumed = consumed;
				if (wrote) {
					o.err_text = err;
					o.err_len = strlen(err);
				}
				check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
				    wrote ? "first line second line" :
				    consumed ?
				    "pipe transport gave exit status 1" :
				    "pipe transport gave exit status 1; "
				    "program did not read all of its input");
			}
}

/* Long stderr text is cut on a character boundary; DEL is a space. */
static void
test_stderr_long(void **state)
{
	struct result r = RESULT_INIT;
	struct run_outcome o = exited(1);
	char *big = malloc(5001);
	size_t n;

	(void)state;
	assert_non_null(big);
	/* "é" (2 bytes) repeated: a cut in the middle would split one. */
	for (size_t i = 0; i < 5000; i += 2) {
		big[i] = (char)0xc3;
		big[i + 1] = (char)0xa9;
	}
	big[5000] = '\0';
	o.err_text = big;
	o.err_len = 5000;
	assert_int_equal(result_from_run(&o, NULL, &r), 0);
	n = strlen(r.text);
	assert_true(n <= 400 + 4);
	assert_string_equal(r.text + n - 3, "...");
	assert_int_equal((n - 3) % 2, 0);
	assert_int_equal((unsigned char)r.text[n - 5], 0xc3);
	result_clear(&r);

	o.err_text = "a\x7f" "b";
	o.err_len = 3;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0", "a b");
	free(big);
}

/* Signals, time limits and spawn failures. */
static void
test_other_ends(void **state)
{
	struct run_outcome o = { .end = RUN_SIGNALED, .code = SIGSEGV,
	    .stdin_consumed = true };
	char text[80];

	(void)state;
	snprintf(text, sizeof(text),
	    "pipe transport killed by signal %d (SIGSEGV)", SIGSEGV);
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0", text);
	o.code = SIGKILL;
	snprintf(text, sizeof(text),
	    "pipe transport killed by signal %d (SIGKILL)", SIGKILL);
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0", text);
	o.code = 200;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
	    "pipe transport killed by signal 200 (unknown signal)");

	o.end = RUN_TIMED_OUT;
	o.time_limit_s = 60;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0",
	    "pipe transport exceeded the time limit of 60s");
	o.sync = true;
	check(&o, NULL, RESULT_DEFERRED, 451, "4.4.2",
	    "pipe transport exceeded the time limit of 60s");

	o.end = RUN_SPAWN_FAILED;
	o.spawn_why = "why\nnot";
	o.code = SPAWN_FAIL_DISABLED;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0", "why not");
	o.code = SPAWN_FAIL_NOAPP;
	check(&o, NULL, RESULT_FAILED, 550, "5.1.1", "why not");
	o.code = SPAWN_FAIL_UNTRUSTED;
	check(&o, NULL, RESULT_DEFERRED, 451, "4.3.5", "why not");
	o.code = SPAWN_FAIL_EXEC;
	check(&o, NULL, RESULT_FAILED, 554, "5.3.0", "why not");
	o.code = SPAWN_FAIL_TEMP;
	check(&o, NULL, RESULT_DEFERRED, 451, "4.3.0", "why not");
	o.spawn_why = NULL;
	check(&o, NULL, RESULT_DEFERRED, 451, "4.3.0",
	    "program could not be started");

	o.end = (enum run_end)99;
	{
		struct result r = RESULT_INIT;

		assert_int_equal(result_from_run(&o, NULL, &r), -EINVAL);
		assert_null(r.text);
	}
}

/* Code maps win over the defaults; stderr/stdin rules still apply. */
static void
test_code_map(void **state)
{
	struct code_map m = CODE_MAP_INIT;
	const char *why = NULL;
	struct run_outcome o;

	(void)state;
	assert_int_equal(code_map_set(&m, 100, "550 command failed", &why), 0);
	assert_int_equal(code_map_set(&m, 111, "450 try again later", &why),
	    0);
	assert_int_equal(code_map_set(&m, 0, "250 2.6.0 queued by app", &why),
	    0);
	assert_int_equal(code_map_set(&m, 75, "550 5.7.1 go away", &why), 0);
	assert_int_equal(code_map_set(&m, 3, "250 ok", &why), 0);
	assert_int_equal(code_map_set(&m, 4, "451", &why), 0);
	assert_int_equal(code_map_set(&m, 5, "252 2.1.5", &why), 0);
	assert_int_equal(m.n, 7);
	/* Replacing an entry keeps the count. */
	assert_int_equal(code_map_set(&m, 100, "551 5.1.6 moved", &why), 0);
	assert_int_equal(m.n, 7);
	assert_int_equal(code_map_set(&m, 256, "550 x", &why), -EINVAL);
	assert_non_null(why);
	assert_int_equal(code_map_set(&m, -1, "550 x", &why), -EINVAL);
	assert_int_equal(code_map_set(&m, 7, "650 x", &why), -EINVAL);
	assert_int_equal(m.n, 7);
	assert_null(code_map_find(&m, 7));
	assert_null(code_map_find(NULL, 0));
	assert_int_equal(code_map_find(&m, 111)->reply, 450);

	o = exited(100);
	check(&o, &m, RESULT_FAILED, 551, "5.1.6", "moved");
	o = exited(111);
	check(&o, &m, RESULT_DEFERRED, 450, "4.0.0", "try again later");
	o = exited(0);
	check(&o, &m, RESULT_DELIVERED, 250, "2.6.0", "queued by app");
	/* A mapped temporary status follows its mapping. */
	o = exited(75);
	check(&o, &m, RESULT_FAILED, 550, "5.7.1", "go away");
	/* A mapped success for a non-zero status. */
	o = exited(3);
	check(&o, &m, RESULT_DELIVERED, 250, "2.0.0", "ok");
	o = exited(5);
	check(&o, &m, RESULT_DELIVERED, 252, "2.1.5", "delivered");
	/* Mapped without text: the default text. */
	o = exited(4);
	check(&o, &m, RESULT_DEFERRED, 451, "4.0.0",
	    "pipe transport gave exit status 4");
	/* Unmapped statuses keep the defaults. */
	o = exited(1);
	check(&o, &m, RESULT_FAILED, 554, "5.3.0",
	    "pipe transport gave exit status 1");
	o = exited(74);
	check(&o, &m, RESULT_DEFERRED, 451, "4.3.0",
	    "pipe transport gave exit status 74");

	/* A mapped 250 with stderr and no [STDERR] fails. */
	o = exited(0);
	o.err_text = "oops";
	o.err_len = 4;
	check(&o, &m, RESULT_FAILED, 554, "5.3.0", "oops");
	o.stderr_tag = true;
	check(&o, &m, RESULT_DELIVERED, 250, "2.6.0", "queued by app");
	/* A mapped 250 with unread stdin fails. */
	o = exited(3);
	o.stdin_consumed = false;
	check(&o, &m, RESULT_FAILED, 554, "5.3.0",
	    "program did not read all of its input");
	/* A mapped 4xx with stderr stays deferred: its own text wins,
	   without one the stderr text is used. */
	o = exited(111);
	o.err_text = "disk full";
	o.err_len = 9;
	check(&o, &m, RESULT_DEFERRED, 450, "4.0.0", "try again later");
	o = exited(4);
	o.err_text = "disk full";
	o.err_len = 9;
	check(&o, &m, RESULT_DEFERRED, 451, "4.0.0", "disk full");
	o.stdin_consumed = false;
	o.err_text = NULL;
	o.err_len = 0;
	check(&o, &m, RESULT_DEFERRED, 451, "4.0.0",
	    "pipe transport gave exit status 4; "
	    "program did not read all of its input");
	/* Mapped 5xx with unread stdin keeps its class and text. */
	o = exited(100);
	o.stdin_consumed = false;
	check(&o, &m, RESULT_FAILED, 551, "5.1.6", "moved");

	code_map_free(&m);
	assert_null(m.v);
	assert_int_equal(m.n, 0);
	code_map_free(&m);
}

/* Reply parsing: accepted forms and every error. */
static void
test_reply_parse(void **state)
{
	char st[RESULT_STATUS_MAX];
	char *text = NULL;
	const char *why = NULL;
	int reply = 0;
	static const char *const bad[] = {
		"", "55", "55x", "abc", "5500 x", "550x", "150 x", "350 x",
		"650 x", "050 x", "550 4.1.1 class differs",
		"450 5.0.0 class differs", "550 5..1 x", "550 5.1 x",
		"550 5.1.1000 x", "550 5.1000.1 x", "550 5.1.1x",
		"550 5.a.1 x", "550 text\nmore", "550 tab\there", "550 del\x7f",
		"550\t5.1.1 x", "\x01" "50 x", " 550 x",
	};

	(void)state;
	assert_int_equal(code_reply_parse("550 5.1.1 no such list", &reply, st,
	    &text, &why), 0);
	assert_int_equal(reply, 550);
	assert_string_equal(st, "5.1.1");
	assert_string_equal(text, "no such list");
	free(text);

	assert_int_equal(code_reply_parse("450 try again later", &reply, st,
	    &text, &why), 0);
	assert_int_equal(reply, 450);
	assert_string_equal(st, "4.0.0");
	assert_string_equal(text, "try again later");
	free(text);

	assert_int_equal(code_reply_parse("250", &reply, st, &text, &why), 0);
	assert_int_equal(reply, 250);
	assert_string_equal(st, "2.0.0");
	assert_null(text);

	assert_int_equal(code_reply_parse("250   2.999.999   spaced out  ",
	    &reply, st, &text, &why), 0);
	assert_string_equal(st, "2.999.999");
	assert_string_equal(text, "spaced out");
	free(text);

	assert_int_equal(code_reply_parse("554 5.3.0", &reply, st, &text,
	    &why), 0);
	assert_string_equal(st, "5.3.0");
	assert_null(text);

	/* A word that is not a status is text. */
	assert_int_equal(code_reply_parse("550 5 apples", &reply, st, &text,
	    &why), 0);
	assert_string_equal(st, "5.0.0");
	assert_string_equal(text, "5 apples");
	free(text);
	/* Non-ASCII (UTF-8) text is kept. */
	assert_int_equal(code_reply_parse("550 d\xc3\xa9j\xc3\xa0", &reply, st,
	    &text, &why), 0);
	assert_string_equal(text, "d\xc3\xa9j\xc3\xa0");
	free(text);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		text = NULL;
		reply = -1;
		assert_int_equal(code_reply_parse(bad[i], &reply, st, &text,
		    &why), -EINVAL);
		assert_non_null(why);
		assert_null(text);
		assert_int_equal(reply, -1);
	}
	why = NULL;
	assert_int_equal(code_reply_parse(NULL, &reply, st, &text, &why),
	    -EINVAL);
	assert_non_null(why);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_result_basics),
		cmocka_unit_test(test_exit_table),
		cmocka_unit_test(test_stderr_stdin_rules),
		cmocka_unit_test(test_stderr_long),
		cmocka_unit_test(test_other_ends),
		cmocka_unit_test(test_code_map),
		cmocka_unit_test(test_reply_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
