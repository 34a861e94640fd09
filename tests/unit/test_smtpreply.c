/*
 * Unit tests for smtpreply.c: reply lines and multi-line replies (codes,
 * continuation, one code per reply, the size bound), the RFC 3463 status
 * of a reply, the EHLO keywords, and the one-line renderings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smtpreply.h"

/* Feed every line of a reply given as NUL-separated strings; the result
   of the last call. */
static int
feed(struct smtpreply *rp, const char *const *lines, const char **why)
{
	int r = -1;

	for (size_t i = 0; lines[i]; i++) {
		r = smtpreply_line(rp, lines[i], strlen(lines[i]), why);
		if (r != SMTPREPLY_MORE)
			return r;
	}
	return r;
}

/* Lines end at LF; a CR before it is dropped, a lone CR is kept. */
static void
test_split(void **state)
{
	const char in[] = "250 a\r\n251 b\n252 c\rd\r\n25";
	size_t off = 0, len = 0, used = 0;

	assert_int_equal(smtpreply_split(in, sizeof(in) - 1, &len, &used), 1);
	assert_int_equal(len, 5);
	assert_int_equal(used, 7);
	off += used;
	assert_int_equal(smtpreply_split(in + off, sizeof(in) - 1 - off, &len,
	    &used), 1);
	assert_int_equal(len, 5);
	assert_int_equal(used, 6);
	off += used;
	assert_int_equal(smtpreply_split(in + off, sizeof(in) - 1 - off, &len,
	    &used), 1);
	assert_int_equal(len, 7);	/* "252 c\rd" */
	off += used;
	assert_int_equal(smtpreply_split(in + off, sizeof(in) - 1 - off, &len,
	    &used), 0);		/* "25": no LF yet */
	assert_int_equal(smtpreply_split(in, 0, &len, &used), 0);
}

/* A one-line reply; "NNN" alone is a whole reply too. */
static void
test_single_line(void **state)
{
	struct smtpreply rp = SMTPREPLY_INIT;
	const char *why = NULL;

	assert_int_equal(smtpreply_line(&rp, "250 2.0.0 ok", 12, &why),
	    SMTPREPLY_DONE);
	assert_int_equal(rp.code, 250);
	assert_int_equal(rp.lines.n, 1);
	assert_string_equal(rp.lines.v[0], "2.0.0 ok");
	smtpreply_free(&rp);
	assert_int_equal(rp.lines.n, 0);
	assert_int_equal(smtpreply_line(&rp, "354", 3, &why), SMTPREPLY_DONE);
	assert_int_equal(rp.code, 354);
	assert_string_equal(rp.lines.v[0], "");
	smtpreply_free(&rp);
	/* "NNN " with nothing after */
	assert_int_equal(smtpreply_line(&rp, "221 ", 4, &why),
	    SMTPREPLY_DONE);
	assert_string_equal(rp.lines.v[0], "");
	smtpreply_free(&rp);
}

/* Continuation lines gather until the line with a space. */
static void
test_multi_line(void **state)
{
	const char *const l[] = { "250-sink.test", "250-PIPELINING",
		"250 SIZE 100", NULL };
	struct smtpreply rp = SMTPREPLY_INIT;
	const char *why = NULL;

	assert_int_equal(smtpreply_line(&rp, l[0], strlen(l[0]), &why),
	    SMTPREPLY_MORE);
	assert_int_equal(smtpreply_line(&rp, l[1], strlen(l[1]), &why),
	    SMTPREPLY_MORE);
	assert_int_equal(smtpreply_line(&rp, l[2], strlen(l[2]), &why),
	    SMTPREPLY_DONE);
	assert_int_equal(rp.code, 250);
	assert_int_equal(rp.lines.n, 3);
	assert_string_equal(rp.lines.v[1], "PIPELINING");
	assert_string_equal(rp.lines.v[2], "SIZE 100");
	smtpreply_free(&rp);
}

/* Lines that are not SMTP replies are refused with a reason. */
static void
test_malformed(void **state)
{
	static const char *const bad[] = {
		"", "25", "2x0 ok", "650 six", "050 zero", "250:ok", "250\tok",
		"HTTP/1.1 400 Bad Request", "ok 250",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct smtpreply rp = SMTPREPLY_INIT;
		const char *why = NULL;

		assert_int_equal(smtpreply_line(&rp, bad[i], strlen(bad[i]),
		    &why), -EPROTO);
		assert_string_equal(why, "malformed reply line");
		smtpreply_free(&rp);
	}
}

/* Every line of a reply carries the same code (RFC 5321 4.2.1). */
static void
test_codes_differ(void **state)
{
	const char *const l[] = { "250-first", "251 second", NULL };
	struct smtpreply rp = SMTPREPLY_INIT;
	const char *why = NULL;

	assert_int_equal(feed(&rp, l, &why), -EPROTO);
	assert_string_equal(why, "the lines of a reply have different codes");
	smtpreply_free(&rp);
}

/* The reply bound counts every line: beyond it, an error, never a cut. */
static void
test_too_long(void **state)
{
	struct smtpreply rp = SMTPREPLY_INIT;
	size_t n = 64 * 1024;
	char *line = malloc(n);
	const char *why = NULL;
	int r = SMTPREPLY_MORE;
	size_t lines = 0;

	assert_non_null(line);
	memset(line, 'x', n);
	memcpy(line, "250-", 4);
	while (r == SMTPREPLY_MORE && lines < 100) {
		r = smtpreply_line(&rp, line, n, &why);
		lines++;
	}
	assert_int_equal(r, -EPROTO);
	assert_string_equal(why, "reply too long");
	/* 16 lines of 64 KiB + CRLF pass 1 MiB: the 16th is refused */
	assert_int_equal(lines, 16);
	assert_int_equal(rp.lines.n, 15);
	smtpreply_free(&rp);
	free(line);

	/* one line longer than the bound */
	n = SMTPREPLY_MAX + 1;
	line = malloc(n);
	assert_non_null(line);
	memset(line, 'y', n);
	memcpy(line, "250 ", 4);
	assert_int_equal(smtpreply_line(&rp, line, n, &why), -EPROTO);
	assert_int_equal(rp.lines.n, 0);
	smtpreply_free(&rp);
	free(line);
}

/* The status parser: C.S.D with 1-3 digits, then a space or the end. */
static void
test_status_parse(void **state)
{
	static const char *const good[][2] = {
		{ "5.1.1 no such user", "5.1.1" },
		{ "2.0.0", "2.0.0" },
		{ "4.999.999 x", "4.999.999" },
		{ "9.1.1 any class digit", "9.1.1" },
	};
	static const char *const bad[] = {
		"", "5", "5.", "5.1", "5.1.", "5.1.1x", "5.1234.1", "5.1.1234",
		"55.1.1", ".1.1", "5..1", "5.1..1", "x.1.1", "5.1.1\t",
		"5.a.1",
	};
	char st[RESULT_STATUS_MAX];
	size_t n;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(smtpreply_status_parse(good[i][0], st, &n), 0);
		assert_string_equal(st, good[i][1]);
		assert_int_equal(n, strlen(good[i][1]));
	}
	strcpy(st, "kept");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(smtpreply_status_parse(bad[i], st, &n),
		    -EINVAL);
	assert_int_equal(smtpreply_status_parse(NULL, st, &n), -EINVAL);
	assert_string_equal(st, "kept");
}

/* Parse one whole reply given as its lines. */
static void
reply_of(struct smtpreply *rp, const char *const *lines)
{
	const char *why = NULL;

	*rp = (struct smtpreply)SMTPREPLY_INIT;
	assert_int_equal(feed(rp, lines, &why), SMTPREPLY_DONE);
}

/* A reply's status: from its first line when of the right class. */
static void
test_reply_status(void **state)
{
	const char *const a[] = { "550-5.7.1 first", "550 5.7.1 second",
		NULL };
	const char *const b[] = { "451 try later", NULL };
	const char *const c[] = { "550 4.1.1 wrong class", NULL };
	const char *const d[] = { "250-first line", "250 2.1.0 later", NULL };
	const char *const e[] = { "421", NULL };
	struct smtpreply rp;
	char st[RESULT_STATUS_MAX];

	reply_of(&rp, a);
	smtpreply_status(&rp, st);
	assert_string_equal(st, "5.7.1");
	smtpreply_free(&rp);
	reply_of(&rp, b);
	smtpreply_status(&rp, st);
	assert_string_equal(st, "4.0.0");
	smtpreply_free(&rp);
	reply_of(&rp, c);
	smtpreply_status(&rp, st);
	assert_string_equal(st, "5.0.0");
	smtpreply_free(&rp);
	reply_of(&rp, d);
	smtpreply_status(&rp, st);
	assert_string_equal(st, "2.0.0");
	smtpreply_free(&rp);
	reply_of(&rp, e);
	smtpreply_status(&rp, st);
	assert_string_equal(st, "4.0.0");
	smtpreply_free(&rp);
}

/* The keywords of an EHLO reply. */
static void
test_ehlo(void **state)
{
	const char *const l[] = { "250-sink.test greets you",
		"250-pipelining", "250-SIZE 10240000", "250-8BITMIME",
		"250-DSN", "250-ENHANCEDSTATUSCODES", "250-SMTPUTF8",
		"250-STARTTLS", "250-AUTH PLAIN LOGIN", "250-X-UNKNOWN 1 2",
		"250 HELP", NULL };
	struct smtpreply rp;
	struct smtpreply_ehlo e;

	reply_of(&rp, l);
	smtpreply_ehlo(&rp, &e);
	assert_int_equal(e.ext, SMTPREPLY_EXT_PIPELINING | SMTPREPLY_EXT_SIZE |
	    SMTPREPLY_EXT_8BITMIME | SMTPREPLY_EXT_DSN |
	    SMTPREPLY_EXT_ENHANCED | SMTPREPLY_EXT_SMTPUTF8 |
	    SMTPREPLY_EXT_STARTTLS);
	assert_int_equal(e.size_max, 10240000);
	smtpreply_free(&rp);
}

/* The first line names the server; prefixes and look-alikes do not
   count; SIZE without a number or an absurd one means no limit. */
static void
test_ehlo_edges(void **state)
{
	const char *const a[] = { "250 PIPELINING", NULL };
	const char *const b[] = { "250-x", "250-PIPELININGX", "250-DS",
		"250-SIZE", "250 8BITMIMEX", NULL };
	const char *const c[] = { "250-x", "250 SIZE 99999999999999999999999",
		NULL };
	const char *const d[] = { "250-x", "250 size   42 extra", NULL };
	struct smtpreply rp;
	struct smtpreply_ehlo e;

	reply_of(&rp, a);
	smtpreply_ehlo(&rp, &e);
	assert_int_equal(e.ext, 0);
	smtpreply_free(&rp);
	reply_of(&rp, b);
	smtpreply_ehlo(&rp, &e);
	assert_int_equal(e.ext, SMTPREPLY_EXT_SIZE);
	assert_int_equal(e.size_max, 0);
	smtpreply_free(&rp);
	reply_of(&rp, c);
	smtpreply_ehlo(&rp, &e);
	assert_int_equal(e.ext, SMTPREPLY_EXT_SIZE);
	assert_int_equal(e.size_max, 0);
	smtpreply_free(&rp);
	reply_of(&rp, d);
	smtpreply_ehlo(&rp, &e);
	assert_int_equal(e.size_max, 42);
	smtpreply_free(&rp);
}

/* The renderings: the whole reply, and the words without code/status. */
static void
test_text_and_words(void **state)
{
	const char *const l[] = { "550-5.7.1 a", "550-", "550 5.7.1 b  c",
		NULL };
	struct smtpreply rp;
	struct buf t = BUF_INIT, w = BUF_INIT;

	reply_of(&rp, l);
	assert_int_equal(smtpreply_text(&rp, &t), 0);
	assert_string_equal(t.data, "550 5.7.1 a 5.7.1 b  c");
	assert_int_equal(smtpreply_words(&rp, "5.7.1", &w), 0);
	assert_string_equal(w.data, " a b  c");
	buf_reset(&w);
	/* a status that is not the result's stays in the text */
	assert_int_equal(smtpreply_words(&rp, "5.0.0", &w), 0);
	assert_string_equal(w.data, " 5.7.1 a 5.7.1 b  c");
	buf_free(&t);
	buf_free(&w);
	smtpreply_free(&rp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_single_line),
		cmocka_unit_test(test_multi_line),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_codes_differ),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_status_parse),
		cmocka_unit_test(test_reply_status),
		cmocka_unit_test(test_ehlo),
		cmocka_unit_test(test_ehlo_edges),
		cmocka_unit_test(test_text_and_words),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
