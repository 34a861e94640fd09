/*
 * Unit tests for pipeaddr.c: the PIPE address grammar (tags, queue[NAME],
 * escapes, application rules), templates and their safe expansion, and the
 * format/parse round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeaddr.h"
#include "strv.h"

/* Parse s; returns the result code. */
static int
cparse(const char *s, struct pipe_cmd *c, const char **why)
{
	return pipe_cmd_parse(s, strlen(s), c, why);
}

/* Parse a template s; returns the result code. */
static int
tparse(const char *s, struct pipe_tmpl *t, const char **why)
{
	return pipe_tmpl_parse(s, strlen(s), t, why);
}

/* c has exactly the n parameters in want (NULL-terminated). */
static void
assert_params(const struct pipe_cmd *c, const char *const *want)
{
	size_t n = 0;

	while (want[n])
		n++;
	assert_int_equal(c->params.n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(c->params.v[i], want[i]);
	if (c->params.v)
		assert_null(c->params.v[n]);
}

/* a and b are the same command. */
static void
assert_cmd_eq(const struct pipe_cmd *a, const struct pipe_cmd *b)
{
	if (a->queue == NULL)
		assert_null(b->queue);
	else
		assert_string_equal(a->queue, b->queue);
	assert_int_equal(a->tags, b->tags);
	assert_string_equal(a->app, b->app);
	assert_int_equal(a->params.n, b->params.n);
	for (size_t i = 0; i < a->params.n; i++)
		assert_string_equal(a->params.v[i], b->params.v[i]);
}

/* format(c) parses back to c; returns the formatted text (caller frees). */
static char *
round_trip(const struct pipe_cmd *c)
{
	struct pipe_cmd d = PIPE_CMD_INIT;
	const char *why = NULL;
	char *out = NULL;

	assert_int_equal(pipe_cmd_format(c, &out), 0);
	if (cparse(out, &d, &why) != 0)
		fail_msg("'%s' does not parse back: %s", out, why);
	assert_cmd_eq(c, &d);
	pipe_cmd_free(&d);
	return out;
}

/* s parses to queue/tags/app/params and survives the round trip. */
static void
check_cmd(const char *s, const char *queue, unsigned tags, const char *app,
	const char *const *params)
{
	struct pipe_cmd c = PIPE_CMD_INIT;
	const char *why = NULL;

	if (cparse(s, &c, &why) != 0)
		fail_msg("'%s' refused: %s", s, why);
	if (queue)
		assert_string_equal(c.queue, queue);
	else
		assert_null(c.queue);
	assert_int_equal(c.tags, tags);
	assert_string_equal(c.app, app);
	assert_params(&c, params);
	free(round_trip(&c));
	pipe_cmd_free(&c);
	assert_null(c.app);
}

/* s is refused with -EINVAL and why_expected. */
static void
check_bad(const char *s, size_t len, const char *why_expected)
{
	struct pipe_cmd c = PIPE_CMD_INIT;
	struct pipe_tmpl t = PIPE_TMPL_INIT;
	const char *why = NULL;

	if (pipe_cmd_parse(s, len, &c, &why) != -EINVAL)
		fail_msg("'%s' accepted", s);
	assert_string_equal(why, why_expected);
	assert_null(c.app);
	assert_null(c.queue);
	/* a template refuses it the same way */
	why = NULL;
	assert_int_equal(pipe_tmpl_parse(s, len, &t, &why), -EINVAL);
	assert_string_equal(why, why_expected);
	assert_int_equal(t.nwords, 0);
}

#define P(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

/* The seed's plain example and white space handling. */
static void
test_plain(void **state)
{
	(void)state;
	check_cmd("execjoe -l store", NULL, 0, "execjoe", P("-l", "store"));
	check_cmd("app", NULL, 0, "app", NONE);
	check_cmd("  app \t a\t\tb  ", NULL, 0, "app", P("a", "b"));
	check_cmd("procin -mark", NULL, 0, "procin", P("-mark"));
	check_cmd("app\xc3\xa9 \xff", NULL, 0, "app\xc3\xa9", P("\xff"));
}

/* Tags in any order, with or without a space after them. */
static void
test_tags(void **state)
{
	unsigned all = PIPE_TAG_FILE | PIPE_TAG_RETPATH | PIPE_TAG_RCPT |
		PIPE_TAG_STDERR;

	(void)state;
	check_cmd("[FILE] app", NULL, PIPE_TAG_FILE, "app", NONE);
	check_cmd("[RCPT]app x", NULL, PIPE_TAG_RCPT, "app", P("x"));
	check_cmd("[FILE] [RCPT] app", NULL, PIPE_TAG_FILE | PIPE_TAG_RCPT,
		"app", NONE);
	check_cmd("[FILE][RCPT]app", NULL, PIPE_TAG_FILE | PIPE_TAG_RCPT,
		"app", NONE);
	check_cmd("[STDERR] [RETPATH]\t[RCPT][FILE]   app -x", NULL, all, "app",
		P("-x"));
	check_cmd("[RETPATH] [RCPT] rec *", NULL,
		PIPE_TAG_RETPATH | PIPE_TAG_RCPT, "rec", P("*"));
	check_cmd("[STDERR]app", NULL, PIPE_TAG_STDERR, "app", NONE);
}

/* queue[NAME] anywhere before the application, at most once. */
static void
test_queue(void **state)
{
	char name64[65], s[128];

	(void)state;
	check_cmd("queue[PROC1] procin -mark", "PROC1", 0, "procin",
		P("-mark"));
	check_cmd("queue[ARCH] appendfile /var/archive", "ARCH", 0,
		"appendfile", P("/var/archive"));
	check_cmd("[FILE] queue[q_1-x] app", "q_1-x", PIPE_TAG_FILE, "app",
		NONE);
	check_cmd("queue[Q][FILE]app", "Q", PIPE_TAG_FILE, "app", NONE);
	check_cmd("[FILE]queue[Q] [RCPT] app", "Q",
		PIPE_TAG_FILE | PIPE_TAG_RCPT, "app", NONE);
	memset(name64, 'a', 64);
	name64[64] = '\0';
	snprintf(s, sizeof(s), "queue[%s] app", name64);
	check_cmd(s, name64, 0, "app", NONE);
	snprintf(s, sizeof(s), "queue[%sb] app", name64);
	check_bad(s, strlen(s), "bad queue name (1-64 of A-Z a-z 0-9 _ -)");
	check_bad("queue[] app", 11, "bad queue name (1-64 of A-Z a-z 0-9 _ -)");
	check_bad("queue[a.b] app", 14,
		"bad queue name (1-64 of A-Z a-z 0-9 _ -)");
	check_bad("queue[a b] app", 14,
		"bad queue name (1-64 of A-Z a-z 0-9 _ -)");
	check_bad("queue[x app", 11, "unterminated queue[NAME]");
	check_bad("queue[A] queue[B] app", 21, "duplicate queue[NAME]");
	check_bad("queue[A] app queue[B]x", 8, "no application name");
	assert_true(pipe_queue_name_ok("aZ09_-", 6));
	assert_true(pipe_queue_name_ok(name64, 64));
	assert_false(pipe_queue_name_ok(name64, 65));
	assert_false(pipe_queue_name_ok("", 0));
	assert_false(pipe_queue_name_ok(NULL, 3));
	assert_false(pipe_queue_name_ok("a/b", 3));
	assert_false(pipe_queue_name_ok("\xc3\xa9", 2));
}

/* Bad tags and other grammar errors. */
static void
test_errors(void **state)
{
	(void)state;
	check_bad("[file] app", 10, "unknown tag");
	check_bad("[FOO] app", 9, "unknown tag");
	check_bad("[] app", 6, "unknown tag");
	check_bad("[ FILE] app", 11, "unknown tag");
	check_bad("[FILE app", 9, "unterminated tag");
	check_bad("[FILE] [FILE] app", 17, "duplicate tag");
	check_bad("[RCPT][FILE][RCPT]app", 21, "duplicate tag");
	check_bad("", 0, "empty pipe address");
	check_bad("   ", 3, "no application name");
	check_bad("[FILE]", 6, "no application name");
	check_bad("queue[Q] [FILE] ", 16, "no application name");
	check_bad("app x\\", 6, "trailing backslash");
	check_bad("app\\", 4, "trailing backslash");
	check_bad("app x\ny", 7, "control character in pipe address");
	check_bad("app\\\x01", 5, "control character in pipe address");
	check_bad("app\0x", 5, "control character in pipe address");
	check_bad("app \x7f", 5, "control character in pipe address");
}

/* After the application everything is a parameter. */
static void
test_params_after_app(void **state)
{
	(void)state;
	check_cmd("app [FILE] queue[x] [nope", NULL, 0, "app",
		P("[FILE]", "queue[x]", "[nope"));
	check_cmd("[RCPT] app [RCPT]", NULL, PIPE_TAG_RCPT, "app", P("[RCPT]"));
	check_cmd("app[FILE] x", NULL, 0, "app[FILE]", P("x"));
	check_cmd("app ;rm -rf / $(id) `id`", NULL, 0, "app",
		P(";rm", "-rf", "/", "$(id)", "`id`"));
}

/* Backslash escapes: "\x" is a literal x. */
static void
test_escapes(void **state)
{
	(void)state;
	check_cmd("app a\\ b", NULL, 0, "app", P("a b"));
	check_bad("app a\\\tb", 7, "control character in pipe address");
	check_cmd("app \\\\", NULL, 0, "app", P("\\"));
	check_cmd("app \\*", NULL, 0, "app", P("*"));
	check_cmd("app \\\"x\\\"", NULL, 0, "app", P("\"x\""));
	check_cmd("app \\q", NULL, 0, "app", P("q"));
	check_cmd("\\[FILE] x", NULL, 0, "[FILE]", P("x"));
	check_cmd("[FILE] \\[RCPT]", NULL, PIPE_TAG_FILE, "[RCPT]", NONE);
	check_cmd("\\queue[x] y", NULL, 0, "queue[x]", P("y"));
	check_cmd("my\\ app", NULL, 0, "my app", NONE);
	check_cmd("app \"a b\"", NULL, 0, "app", P("\"a", "b\""));
}

/* Application name rules, on the decoded name. */
static void
test_app_rules(void **state)
{
	const char *why = NULL;

	(void)state;
	check_bad("a/b", 3, "application name holds '/'");
	check_bad("a\\/b", 4, "application name holds '/'");
	check_bad("../x", 4, "application name begins with '.'");
	check_bad(".x", 2, "application name begins with '.'");
	check_bad("\\.x", 3, "application name begins with '.'");
	check_bad("a\\\\b", 4, "application name holds '\\'");
	check_bad("-x", 2, "application name begins with '-'");
	check_bad("\\-x y", 5, "application name begins with '-'");
	check_bad("[FILE] -x", 9, "application name begins with '-'");
	check_cmd("x-.y", NULL, 0, "x-.y", NONE);

	assert_int_equal(pipe_app_check("app", &why), 0);
	assert_int_equal(pipe_app_check("", &why), -EINVAL);
	assert_string_equal(why, "empty application name");
	assert_int_equal(pipe_app_check(NULL, &why), -EINVAL);
	assert_string_equal(why, "empty application name");
	assert_int_equal(pipe_app_check("a\tb", &why), -EINVAL);
	assert_string_equal(why, "control character in application name");
	assert_int_equal(pipe_app_check("a\\b", NULL), -EINVAL);
}

/* Template parsing: pieces around '*', literal "\*", queue refusals. */
static void
test_tmpl_parse(void **state)
{
	struct pipe_tmpl t = PIPE_TMPL_INIT;
	const char *why = NULL;

	(void)state;
	assert_int_equal(tparse("queue[Q] [FILE] exec* -u * pre*post \\*",
		&t, &why), 0);
	assert_string_equal(t.queue, "Q");
	assert_int_equal(t.tags, PIPE_TAG_FILE);
	assert_true(t.has_star);
	assert_int_equal(t.nwords, 5);
	assert_int_equal(t.words[0].pieces.n, 2);
	assert_string_equal(t.words[0].pieces.v[0], "exec");
	assert_string_equal(t.words[0].pieces.v[1], "");
	assert_int_equal(t.words[1].pieces.n, 1);
	assert_string_equal(t.words[1].pieces.v[0], "-u");
	assert_int_equal(t.words[2].pieces.n, 2);
	assert_string_equal(t.words[3].pieces.v[0], "pre");
	assert_string_equal(t.words[3].pieces.v[1], "post");
	assert_int_equal(t.words[4].pieces.n, 1);
	assert_string_equal(t.words[4].pieces.v[0], "*");
	pipe_tmpl_free(&t);
	assert_int_equal(t.nwords, 0);
	assert_null(t.words);

	assert_int_equal(tparse("app \\*", &t, &why), 0);
	assert_false(t.has_star);
	pipe_tmpl_free(&t);

	assert_int_equal(tparse("queue[*] app", &t, &why), -EINVAL);
	assert_string_equal(why, "'*' in a queue name");
	assert_int_equal(tparse("queue[a*b] app", &t, &why), -EINVAL);
	assert_string_equal(why, "'*' in a queue name");
	assert_int_equal(tparse("./*", &t, &why), -EINVAL);
	assert_string_equal(why, "application name begins with '.'");
	assert_int_equal(tparse("-*", &t, &why), -EINVAL);
	assert_string_equal(why, "application name begins with '-'");
	assert_int_equal(tparse("*/x", &t, &why), -EINVAL);
	assert_string_equal(why, "application name holds '/'");
	assert_int_equal(tparse("a*\\\\", &t, &why), -EINVAL);
	assert_string_equal(why, "application name holds '\\'");
	assert_int_equal(tparse("[*] app", &t, &why), -EINVAL);
	assert_string_equal(why, "unknown tag");
	assert_int_equal(t.nwords, 0);
	/* a '*' in a plain pipe address is just a character */
	check_cmd("exec* *", NULL, 0, "exec*", P("*"));
}

/* Expand template s with text; the result must round-trip. */
static void
check_expand(const char *s, const char *text, const char *app,
	const char *const *params)
{
	struct pipe_tmpl t = PIPE_TMPL_INIT;
	struct pipe_cmd c = PIPE_CMD_INIT;
	const char *why = NULL;

	assert_int_equal(tparse(s, &t, &why), 0);
	if (pipe_tmpl_expand(&t, text, &c, &why) != 0)
		fail_msg("'%s' with '%s' refused: %s", s, text, why);
	assert_string_equal(c.app, app);
	assert_params(&c, params);
	assert_int_equal(c.tags, t.tags);
	if (t.queue)
		assert_string_equal(c.queue, t.queue);
	else
		assert_null(c.queue);
	assert_int_equal(c.params.n, t.nwords - 1);
	free(round_trip(&c));
	pipe_cmd_free(&c);
	pipe_tmpl_free(&t);
}

/* Expansion with text refused: returns why. */
static const char *
expand_bad(const char *s, const char *text, int code)
{
	struct pipe_tmpl t = PIPE_TMPL_INIT;
	struct pipe_cmd c = PIPE_CMD_INIT;
	const char *why = NULL;

	assert_int_equal(tparse(s, &t, &why), 0);
	assert_int_equal(pipe_tmpl_expand(&t, text, &c, &why), code);
	assert_null(c.app);
	assert_null(c.queue);
	assert_int_equal(c.params.n, 0);
	pipe_tmpl_free(&t);
	return why;
}

/* The seed's router examples and verbatim insertion of the text. */
static void
test_expand(void **state)
{
	(void)state;
	check_expand("exec*", "joe", "execjoe", NONE);
	check_expand("execall -u *", "joe", "execall", P("-u", "joe"));
	check_expand("execall -u *", "joe smith", "execall",
		P("-u", "joe smith"));
	check_expand("[RCPT] app pre*post *:*", "X", "app",
		P("preXpost", "X:X"));
	check_expand("queue[Q] app *", "a b\\ c", "app", P("a b\\ c"));
	check_expand("app *", "[FILE]", "app", P("[FILE]"));
	check_expand("app *", "queue[x]", "app", P("queue[x]"));
	check_expand("*", "queue[x]", "queue[x]", NONE);
	check_expand("* y", "[FILE]", "[FILE]", P("y"));
	check_expand("app *", ";rm -rf /", "app", P(";rm -rf /"));
	check_expand("app *", "$(id)", "app", P("$(id)"));
	check_expand("app *", "`id`", "app", P("`id`"));
	check_expand("app *", "a\\ b\\", "app", P("a\\ b\\"));
	check_expand("app *", "*", "app", P("*"));
	check_expand("app *", "\"q\"", "app", P("\"q\""));
	check_expand("app x*", "", "app", P("x"));
	/* text is ignored when the template has no '*' */
	check_expand("app \\*", "-rf", "app", P("*"));
	check_expand("app", "\n", "app", NONE);
}

/* Refused substitutions. */
static void
test_expand_refused(void **state)
{
	(void)state;
	assert_string_equal(expand_bad("app *", "-rf", -EPERM),
		"text substituted for '*' begins with '-'");
	assert_string_equal(expand_bad("app x*", "-rf", -EPERM),
		"text substituted for '*' begins with '-'");
	assert_string_equal(expand_bad("app *", "a\nb", -EPERM),
		"text substituted for '*' holds a control character");
	assert_string_equal(expand_bad("app *", "\x7f", -EPERM),
		"text substituted for '*' holds a control character");
	assert_string_equal(expand_bad("exec*", "../x", -EINVAL),
		"application name holds '/'");
	assert_string_equal(expand_bad("exec*", "a\\b", -EINVAL),
		"application name holds '\\'");
	assert_string_equal(expand_bad("*", ".hidden", -EINVAL),
		"application name begins with '.'");
	assert_string_equal(expand_bad("*", "", -EINVAL),
		"empty application name");
	assert_string_equal(expand_bad("app *", "", -EINVAL),
		"substitution leaves an empty parameter");
}

/* An empty template cannot be expanded. */
static void
test_expand_empty(void **state)
{
	struct pipe_tmpl t = PIPE_TMPL_INIT;
	struct pipe_cmd c = PIPE_CMD_INIT;
	const char *why = NULL;

	(void)state;
	assert_int_equal(pipe_tmpl_expand(&t, "x", &c, &why), -EINVAL);
	assert_string_equal(why, "empty template");
	assert_null(c.app);
}

/* The canonical text and escapes of pipe_cmd_format. */
static void
test_format(void **state)
{
	struct pipe_cmd c = PIPE_CMD_INIT;
	char *out;

	(void)state;
	c.queue = strdup("Q");
	c.tags = PIPE_TAG_RCPT | PIPE_TAG_FILE | PIPE_TAG_STDERR |
		PIPE_TAG_RETPATH;
	c.app = strdup("my app");
	assert_int_equal(strv_push(&c.params, "[x"), 0);
	assert_int_equal(strv_push(&c.params, "*"), 0);
	assert_int_equal(strv_push(&c.params, "\"\\"), 0);
	assert_int_equal(strv_push(&c.params, "a b]"), 0);
	assert_int_equal(strv_push(&c.params, "queue[x]"), 0);
	out = round_trip(&c);
	assert_string_equal(out, "queue[Q] [FILE] [RETPATH] [RCPT] [STDERR] "
		"my\\ app \\[x \\* \\\"\\\\ a\\ b] queue[x]");
	free(out);
	free(c.app);
	c.app = strdup("queue[x]");
	free(c.queue);
	c.queue = NULL;
	c.tags = 0;
	strv_free(&c.params);
	out = round_trip(&c);
	assert_string_equal(out, "\\queue[x]");
	free(out);
	free(c.app);
	c.app = strdup("[FILE]");
	out = round_trip(&c);
	assert_string_equal(out, "\\[FILE]");
	free(out);
	pipe_cmd_free(&c);
}

/* pipe_cmd_format refuses commands no parse could give. */
static void
test_format_refused(void **state)
{
	struct pipe_cmd c = PIPE_CMD_INIT;
	char *out = (char *)"sentinel";

	(void)state;
	assert_int_equal(pipe_cmd_format(&c, &out), -EINVAL);
	assert_null(out);
	c.app = strdup("/bin/sh");
	assert_int_equal(pipe_cmd_format(&c, &out), -EINVAL);
	free(c.app);
	c.app = strdup("app");
	c.tags = 16;
	assert_int_equal(pipe_cmd_format(&c, &out), -EINVAL);
	c.tags = 0;
	c.queue = strdup("a b");
	assert_int_equal(pipe_cmd_format(&c, &out), -EINVAL);
	free(c.queue);
	c.queue = NULL;
	assert_int_equal(strv_push(&c.params, ""), 0);
	assert_int_equal(pipe_cmd_format(&c, &out), -EINVAL);
	strv_free(&c.params);
	assert_int_equal(strv_push(&c.params, "a\nb"), 0);
	assert_int_equal(pipe_cmd_format(&c, &out), -EINVAL);
	assert_null(out);
	pipe_cmd_free(&c);
}

/* Round trips over a table of tricky parsed commands. */
static void
test_round_trip_table(void **state)
{
	static const char *const inputs[] = {
		"a", "\\[a", "\\queue[x]", "queue[q] \\queue[x] y",
		"[FILE] a \\ ", "a \\\\\\\\ \\*\\*", "a b\\ c",
		"a [b] [FILE] queue[z]", "\xff\\\xfe", "q\\ueue[x]",
		"queue[Q]queue", "queuex[x]",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct pipe_cmd c = PIPE_CMD_INIT;
		const char *why = NULL;

		if (cparse(inputs[i], &c, &why) != 0)
			fail_msg("'%s': %s", inputs[i], why);
		free(round_trip(&c));
		pipe_cmd_free(&c);
	}
}

/* Run every test of this file. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_params_after_app),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_app_rules),
		cmocka_unit_test(test_tmpl_parse),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_expand_refused),
		cmocka_unit_test(test_expand_empty),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_refused),
		cmocka_unit_test(test_round_trip_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
