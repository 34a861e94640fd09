/*
 * Unit tests for msghdr.c: header splitting (folds, malformed lines, no
 * body, empty body), unfolded values, GMime address lists, the Submitted
 * folder rules one by one (SPEC "Submitted folder"), and RFC 5322 dates.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msghdr.h"
#include "strv.h"
#include "text.h"

#define NOW 1795428300		/* Mon, 23 Nov 2026 10:05:00 UTC */
#define QID "1795428300000001"

static const struct msghdr_submit_params params = {
	.hostname = "mx.example",
	.default_domain = "example.com",
	.id = QID,
	.now = NOW,
};

/* Parse a NUL-terminated message that must be valid. */
static void
parse_ok(const char *m, struct msghdr_block *h)
{
	const char *why = NULL;

	if (msghdr_parse(m, strlen(m), h, &why) != 0)
		fail_msg("parse failed: %s", why);
}

/* Parse must fail with -EINVAL and a reason containing want. */
static void
parse_bad(const char *m, size_t len, const char *want)
{
	struct msghdr_block h = MSGHDR_INIT;
	const char *why = NULL;

	assert_int_equal(msghdr_parse(m, len, &h, &why), -EINVAL);
	assert_non_null(why);
	if (strstr(why, want) == NULL)
		fail_msg("why \"%s\" lacks \"%s\"", why, want);
	assert_null(h.v);
	assert_int_equal(h.n, 0);
}

/* Fields, folds, and where the body starts. */
static void
test_parse_fields_and_folds(void **state)
{
	static const char m[] =
		"From: a@b.example\n"
		"Subject: one\n"
		" two\n"
		"\tthree\n"
		"X-Empty:\n"
		"x-odd-NAME!#:v\n"
		"\n"
		"Body: not a field\n";
	struct msghdr_block h = MSGHDR_INIT;

	(void)state;
	parse_ok(m, &h);
	assert_int_equal(h.n, 4);
	assert_int_equal(h.v[0].off, 0);
	assert_int_equal(h.v[0].len, 18);
	assert_int_equal(h.v[0].name_len, 4);
	assert_int_equal(h.v[1].off, 18);
	assert_memory_equal(m + h.v[1].off, "Subject: one\n two\n\tthree\n",
		h.v[1].len);
	assert_int_equal(h.v[1].len, strlen("Subject: one\n two\n\tthree\n"));
	assert_int_equal(h.v[2].name_len, 7);
	assert_int_equal(h.v[3].name_len, 12);
	assert_int_equal(h.body_off, strlen(m) - strlen("Body: not a field\n"));
	assert_true(msghdr_is(m, &h.v[1], "SUBJECT"));
	assert_false(msghdr_is(m, &h.v[1], "Subj"));
	assert_false(msghdr_is(m, &h.v[1], "Subjects"));
	assert_int_equal(msghdr_count(m, &h, "subject"), 1);
	assert_int_equal(msghdr_count(m, &h, "Body"), 0);
	assert_int_equal(msghdr_find(m, &h, "x-empty"), 2);
	assert_int_equal(msghdr_find(m, &h, "To"), -1);
	msghdr_free(&h);
	assert_null(h.v);
}

/* No empty line: all header; last line with or without LF. */
static void
test_parse_no_body(void **state)
{
	struct msghdr_block h = MSGHDR_INIT;
	static const char a[] = "To: x@y\nSubject: s";
	static const char b[] = "To: x@y\nSubject: s\n";

	(void)state;
	parse_ok(a, &h);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.body_off, strlen(a));
	assert_int_equal(h.v[1].off + h.v[1].len, strlen(a));
	msghdr_free(&h);
	parse_ok(b, &h);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.body_off, strlen(b));
	msghdr_free(&h);
}

/* Empty body after the empty line; NUL and odd bytes in the body are fine. */
static void
test_parse_empty_body_and_body_bytes(void **state)
{
	struct msghdr_block h = MSGHDR_INIT;
	static const char m[] = "To: x@y\n\n";
	static const char nul[] = "To: x@y\n\nA\0B\n: not header\n";
	const char *why = NULL;

	(void)state;
	parse_ok(m, &h);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.body_off, strlen(m));
	msghdr_free(&h);
	assert_int_equal(msghdr_parse(nul, sizeof(nul) - 1, &h, &why), 0);
	assert_int_equal(h.body_off, 9);
	msghdr_free(&h);
}

/* A CR before LF is part of the line (the caller converts CRLF). */
static void
test_parse_cr_kept(void **state)
{
	struct msghdr_block h = MSGHDR_INIT;
	static const char m[] = "To: x@y\r\nSubject: a\r\n b\r\n\r\n";
	char *v = NULL;

	(void)state;
	/* "\r\n" alone is not an empty line: it is a malformed line */
	parse_bad(m, strlen(m), "malformed");
	parse_ok("To: x@y\r\nSubject: a\r\n b\r\n\nbody", &h);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.v[0].len, 9);
	assert_int_equal(msghdr_value("To: x@y\r\nSubject: a\r\n b\r\n\nbody",
		&h.v[1], &v), 0);
	assert_string_equal(v, "a b");
	free(v);
	msghdr_free(&h);
}

/* Every malformed header is refused with a reason. */
static void
test_parse_malformed(void **state)
{
	static const char nul[] = "To: x@y\nSub\0ject: s\n\nbody";

	(void)state;
	parse_bad("To x@y\n\n", 9, "malformed");
	parse_bad("To: x@y\nbad line\n\n", 19, "malformed");
	parse_bad("To : x@y\n\n", 10, "malformed");
	parse_bad(": x@y\n\n", 7, "malformed");
	parse_bad("To: x@y\nNoColon\n", 16, "malformed");
	parse_bad("To: x@y\nSubj\x7f: x\n", 17, "malformed");
	parse_bad("To: x@y\nSubj\xc3\xa9: x\n", 18, "malformed");
	parse_bad("From mbox line\nTo: x@y\n\n", 24, "malformed");
	parse_bad(" folded: x\nTo: x@y\n\n", 20, "continuation");
	parse_bad("\tTo: x@y\n", 9, "continuation");
	parse_bad("\nbody only\n", 11, "no header fields");
	parse_bad("", 0, "no header fields");
	parse_bad(nul, sizeof(nul) - 1, "NUL");
	parse_bad("To: x@y\x00\n", 9, "NUL");
}

/* Unfolded values: line breaks removed, leading white space cut. */
static void
test_value(void **state)
{
	static const char m[] =
		"Subject:    hello\n"
		"\t world  \n"
		"To:\n"
		"  a@b,\n"
		" c@d\n"
		"X-Empty:\n"
		"X-Tight:v\n"
		"Last: end";
	struct msghdr_block h = MSGHDR_INIT;
	char *v = NULL;

	(void)state;
	parse_ok(m, &h);
	assert_int_equal(h.n, 5);
	assert_int_equal(msghdr_value(m, &h.v[0], &v), 0);
	assert_string_equal(v, "hello\t world  ");
	free(v);
	assert_int_equal(msghdr_value(m, &h.v[1], &v), 0);
	assert_string_equal(v, "a@b, c@d");
	free(v);
	assert_int_equal(msghdr_value(m, &h.v[2], &v), 0);
	assert_string_equal(v, "");
	free(v);
	assert_int_equal(msghdr_value(m, &h.v[3], &v), 0);
	assert_string_equal(v, "v");
	free(v);
	assert_int_equal(msghdr_value(m, &h.v[4], &v), 0);
	assert_string_equal(v, "end");
	free(v);
	msghdr_free(&h);
}

/* Check that sv holds exactly the given strings (NULL-terminated list). */
static void
assert_strv(const struct strv *sv, ...)
{
	va_list ap;
	size_t i = 0;
	const char *s;

	va_start(ap, sv);
	while ((s = va_arg(ap, const char *)) != NULL) {
		if (i >= sv->n)
			fail_msg("missing \"%s\" at %zu", s, i);
		assert_string_equal(sv->v[i], s);
		i++;
	}
	va_end(ap);
	if (i != sv->n)
		fail_msg("%zu extra entries, first \"%s\"", sv->n - i, sv->v[i]);
}

/* Address lists: display names, groups, quoting, qualification. */
static void
test_addresses(void **state)
{
	struct strv sv = STRV_INIT;
	const char *why = NULL;

	(void)state;
	assert_int_equal(msghdr_addresses("Joe Smith <joe@x.example>, "
		"\"Doe, Jane\" <jane@y.example> (work), bob@z.example",
		NULL, &sv, &why), 0);
	assert_strv(&sv, "joe@x.example", "jane@y.example", "bob@z.example",
		NULL);
	strv_free(&sv);
	assert_int_equal(msghdr_addresses("Team: a@x.example, b@y.example;, "
		"undisclosed-recipients:;, c@z.example", NULL, &sv, &why), 0);
	assert_strv(&sv, "a@x.example", "b@y.example", "c@z.example", NULL);
	strv_free(&sv);
	assert_int_equal(msghdr_addresses("=?utf-8?q?J=C3=B6rg?= <j@x.example>",
		NULL, &sv, &why), 0);
	assert_strv(&sv, "j@x.example", NULL);
	strv_free(&sv);
	/* unqualified: qualified only with a default domain */
	assert_int_equal(msghdr_addresses("joe, ann@a.example", "d.example",
		&sv, &why), 0);
	assert_strv(&sv, "joe@d.example", "ann@a.example", NULL);
	strv_free(&sv);
	assert_int_equal(msghdr_addresses("joe", NULL, &sv, &why), 0);
	assert_strv(&sv, "joe", NULL);
	strv_free(&sv);
	/* canonical form: needless quotes go, needed ones stay */
	assert_int_equal(msghdr_addresses("\"joe\"@x.example, "
		"\"john doe\"@x.example", NULL, &sv, &why), 0);
	assert_strv(&sv, "joe@x.example", "\"john doe\"@x.example", NULL);
	strv_free(&sv);
	/* empty values list nobody */
	assert_int_equal(msghdr_addresses("", NULL, &sv, &why), 0);
	assert_int_equal(msghdr_addresses("  \t", NULL, &sv, &why), 0);
	assert_int_equal(msghdr_addresses("undisclosed-recipients:;", NULL,
		&sv, &why), 0);
	assert_int_equal(sv.n, 0);
	/* stray angle brackets are forgiven: no address is lost or invented */
	assert_int_equal(msghdr_addresses("Joe <joe@x.example, a@y.example>, "
		"<<b@z.example>>", NULL, &sv, &why), 0);
	assert_strv(&sv, "joe@x.example", "a@y.example", "b@z.example", NULL);
	strv_free(&sv);
}

/* Things that are not address lists fail and leave out as it was. */
static void
test_addresses_bad(void **state)
{
	static const char *const bad[] = {
		"John Smith",
		"a@b.example garbage",
		"joe@x.example; bob@y.example",
		"a@b@c.example",
		"<>",
		"a@b.example (unterminated",
		"\"unterminated@x.example",
		"a@[1.2",
		"<a@x.example> <b@x.example>",
		"a.@x.example",
		"a@x.example, b c",
		"a@-bad-.example",
		"@@@",
	};
	struct strv sv = STRV_INIT;

	(void)state;
	assert_int_equal(strv_push(&sv, "keep@k.example"), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;
		int r = msghdr_addresses(bad[i], "d.example", &sv, &why);

		if (r != -EINVAL)
			fail_msg("\"%s\" gave %d", bad[i], r);
		assert_non_null(why);
		assert_strv(&sv, "keep@k.example", NULL);
	}
	/* a bad address after good ones: the good ones are dropped too */
	{
		const char *why = NULL;

		assert_int_equal(msghdr_addresses("a@x.example, b@y.example, "
			"c d e", NULL, &sv, &why), -EINVAL);
		assert_strv(&sv, "keep@k.example", NULL);
	}
	strv_free(&sv);
}

/* Run the Submitted rules on text that must be accepted. */
static void
sub_ok(const char *text, const struct msghdr_submit_params *p,
	struct msghdr_submission *s)
{
	const char *why = NULL;
	int r;

	*s = (struct msghdr_submission)MSGHDR_SUBMISSION_INIT;
	r = msghdr_submission(text, strlen(text), p, s, &why);
	if (r != 0)
		fail_msg("submission refused (%d): %s", r, why);
	assert_non_null(s->message.data);
}

/* Received: fields in a stored message (what enqueue counts as hops). */
static size_t
received_in(const struct buf *m)
{
	struct msghdr_block h = MSGHDR_INIT;
	const char *why = NULL;
	size_t n;

	assert_int_equal(msghdr_parse(m->data, m->len, &h, &why), 0);
	n = msghdr_count(m->data, &h, "Received");
	msghdr_free(&h);
	return n;
}

/* Run the Submitted rules on len bytes that must be refused. */
static void
sub_bad(const char *text, size_t len, const char *want)
{
	struct msghdr_submission s = MSGHDR_SUBMISSION_INIT;
	const char *why = NULL;

	assert_int_equal(msghdr_submission(text, len, &params, &s, &why),
		-EINVAL);
	assert_non_null(why);
	if (strstr(why, want) == NULL)
		fail_msg("why \"%s\" lacks \"%s\"", why, want);
	assert_null(s.return_path);
	assert_int_equal(s.rcpts.n, 0);
	assert_null(s.message.data);
}

/* Envelope-To: wins over To/Cc/Bcc, which are then not even parsed. */
static void
test_sub_envelope_to_wins(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("From: f@f.example\n"
		"To: t@t.example, Not An Address\n"
		"Envelope-To: e1@e.example\n"
		"Cc: c@c.example\n"
		"Envelope-To: e2@e.example, e3@e.example\n"
		"Envelope-Ignore: e2@e.example\n"
		"Bcc: b@b.example\n"
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
		"Message-ID: <x@y>\n"
		"\n"
		"body\n", &params, &s);
	assert_strv(&s.rcpts, "e1@e.example", "e2@e.example", "e3@e.example",
		NULL);
	assert_string_equal(s.message.data,
		"From: f@f.example\n"
		"To: t@t.example, Not An Address\n"
		"Cc: c@c.example\n"
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
		"Message-ID: <x@y>\n"
		"\n"
		"body\n");
	msghdr_submission_free(&s);
	assert_null(s.message.data);
}

/* To, Cc and Bcc (every field, header order) minus Envelope-Ignore. */
static void
test_sub_to_cc_bcc_minus_ignore(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("Return-Path: <r@r.example>\n"
		"To: a@x.example, b@x.example\n"
		"Bcc: hidden@x.example\n"
		"Cc: c@x.example\n"
		"Envelope-Ignore: b@X.EXAMPLE\n"
		"To: d@x.example, C@x.example\n"
		"Envelope-Ignore: d@x.example,\n"
		"  a@x.example\n"
		"\n", &params, &s);
	/* domain compared case-insensitively, local part exactly */
	assert_strv(&s.rcpts, "hidden@x.example", "c@x.example",
		"C@x.example", NULL);
	assert_null(strstr(s.message.data, "Envelope-Ignore"));
	assert_null(strstr(s.message.data, "Bcc"));
	assert_null(strstr(s.message.data, "hidden"));
	assert_non_null(strstr(s.message.data, "To: a@x.example, b@x.example\n"
		"Cc: c@x.example\nTo: d@x.example, C@x.example\n"));
	msghdr_submission_free(&s);
}

/* Bcc: is removed (with its folds) and its addresses still get the mail. */
static void
test_sub_bcc_removed_still_rcpt(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("From: f@f.example\n"
		"bcc: secret@s.example,\n"
		"\tother@s.example\n"
		"Subject: hi\n"
		"Date: x\n"
		"Message-ID: <m@x>\n"
		"\n"
		"Bcc: in the body stays\n", &params, &s);
	assert_strv(&s.rcpts, "secret@s.example", "other@s.example", NULL);
	assert_string_equal(s.message.data,
		"From: f@f.example\n"
		"Subject: hi\n"
		"Date: x\n"
		"Message-ID: <m@x>\n"
		"\n"
		"Bcc: in the body stays\n");
	msghdr_submission_free(&s);
}

/* Return-Path: gives the return-path and is removed (every one of them). */
static void
test_sub_return_path(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("Return-Path: <bounce@r.example>\n"
		"From: From Person <from@f.example>\n"
		"To: t@t.example\n"
		"Return-Path: <second@r.example>\n"
		"Date: x\nMessage-ID: <m@x>\n\nb\n", &params, &s);
	assert_string_equal(s.return_path, "bounce@r.example");
	assert_null(strstr(s.message.data, "Return-Path"));
	assert_string_equal(s.message.data,
		"From: From Person <from@f.example>\n"
		"To: t@t.example\n"
		"Date: x\nMessage-ID: <m@x>\n\nb\n");
	msghdr_submission_free(&s);
	/* unqualified, folded, and with a bad From: that is not needed */
	sub_ok("From: not an address at all\n"
		"Return-Path:\n <bounce>\n"
		"To: t@t.example\n\n", &params, &s);
	assert_string_equal(s.return_path, "bounce@example.com");
	msghdr_submission_free(&s);
}

/* "<>" is the null return-path (empty string). */
static void
test_sub_null_return_path(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("Return-Path: <>\nFrom: f@f.example\nTo: t@t.example\n\n",
		&params, &s);
	assert_string_equal(s.return_path, "");
	msghdr_submission_free(&s);
	sub_ok("Return-Path:  < >  \nFrom: f@f.example\nTo: t@t.example\n\n",
		&params, &s);
	assert_string_equal(s.return_path, "");
	msghdr_submission_free(&s);
}

/* Refused with -ESRCH: the submitter is needed and not known. */
static void
sub_no_submitter(const char *text)
{
	struct msghdr_submission s = MSGHDR_SUBMISSION_INIT;
	const char *why = NULL;

	assert_int_equal(msghdr_submission(text, strlen(text), &params, &s,
		&why), -ESRCH);
	assert_non_null(why);
	assert_non_null(strstr(why, "submitting user is unknown"));
	assert_null(s.return_path);
	assert_int_equal(s.rcpts.n, 0);
	assert_null(s.message.data);
}

/*
 * No Return-Path: and no From: takes the submitter as return-path; a
 * message without From: gets one naming the return-path, or the
 * submitter when the return-path is null (SPEC "Submitted folder").
 */
static void
test_sub_submitter(void **state)
{
	/* whole results: the added From: after the file's own fields */
	static const struct {
		bool submitter;		/* q (joe@mx.example) or params */
		const char *in, *rp, *out;
	} t[] = {
		{ true, "To: t@t.example\nSubject: x\nDate: d\n"
		  "Message-ID: <m@x>\n\nbody\n", "joe@mx.example",
		  "To: t@t.example\nSubject: x\nDate: d\nMessage-ID: <m@x>\n"
		  "From: joe@mx.example\n\nbody\n" },
		/* Return-Path: without From:: the From: is the return-path */
		{ false, "Return-Path: <b@r.example>\nTo: t@t.example\n"
		  "Date: d\nMessage-ID: <m@x>\n\n", "b@r.example",
		  "To: t@t.example\nDate: d\nMessage-ID: <m@x>\n"
		  "From: b@r.example\n\n" },
		/* a null return-path: the From: names the submitter */
		{ true, "Return-Path: <>\nTo: t@t.example\nDate: d\n"
		  "Message-ID: <m@x>\n\n", "",
		  "To: t@t.example\nDate: d\nMessage-ID: <m@x>\n"
		  "From: joe@mx.example\n\n" },
	};
	struct msghdr_submit_params q = params;
	struct msghdr_submission s;

	(void)state;
	q.submitter = "joe@mx.example";
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		sub_ok(t[i].in, t[i].submitter ? &q : &params, &s);
		assert_string_equal(s.return_path, t[i].rp);
		assert_string_equal(s.message.data, t[i].out);
		msghdr_submission_free(&s);
	}
	/* the added From: comes before the added Date: and Message-ID: */
	sub_ok("To: t@t.example\n\nbody\n", &q, &s);
	assert_non_null(strstr(s.message.data,
		"To: t@t.example\nFrom: joe@mx.example\nDate: "));
	msghdr_submission_free(&s);
	/* unqualified: qualified as every other address */
	sub_ok("Return-Path: <bob>\nTo: t@t.example\n\n", &params, &s);
	assert_non_null(strstr(s.message.data, "\nFrom: bob@example.com\n"));
	msghdr_submission_free(&s);
	/* a From: is never added twice, nor the submitter used then */
	sub_ok("From: f@f.example\nTo: t@t.example\n\n", &q, &s);
	assert_string_equal(s.return_path, "f@f.example");
	assert_null(strstr(s.message.data, "joe@"));
	msghdr_submission_free(&s);
	sub_ok("from: f@f.example\nTo: t@t.example\n\n", &q, &s);
	assert_null(strstr(s.message.data, "joe@"));
	msghdr_submission_free(&s);
	/* a quoted login stays quoted, as the canonical form has it */
	q.submitter = "\"j d\"@mx.example";
	sub_ok("To: t@t.example\n\n", &q, &s);
	assert_string_equal(s.return_path, "\"j d\"@mx.example");
	assert_non_null(strstr(s.message.data, "\nFrom: \"j d\"@mx.example\n"));
	msghdr_submission_free(&s);
	/* the submitter is needed and unknown */
	sub_no_submitter("To: t@t.example\nSubject: x\n\n");
	sub_no_submitter("Return-Path: <>\nTo: t@t.example\n\n");
	/* not needed: Return-Path: and From:, or a From: alone */
	sub_ok("Return-Path: <>\nFrom: f@f.example\nTo: t@t.example\n\n",
		&params, &s);
	msghdr_submission_free(&s);
}

/* Without Return-Path: the first address of the first From: is used. */
static void
test_sub_from_fallback(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("From: \"Smith, Joe\" <joe@f.example>, ann@f.example\n"
		"From: later@f.example\n"
		"To: t@t.example\n\n", &params, &s);
	assert_string_equal(s.return_path, "joe@f.example");
	/* From: stays in the message */
	assert_non_null(strstr(s.message.data, "From: \"Smith, Joe\""));
	msghdr_submission_free(&s);
	sub_ok("From: Joe <joe>\nTo: t@t.example\n\n", &params, &s);
	assert_string_equal(s.return_path, "joe@example.com");
	msghdr_submission_free(&s);
}

/* Check the added Message-ID line at *p and move p past it. */
static void
assert_message_id(const char **p, const char *id, const char *host)
{
	const char *s = *p;
	size_t n;

	assert_memory_equal(s, "Message-ID: <", 13);
	s += 13;
	if (id != NULL) {
		assert_memory_equal(s, id, strlen(id));
		s += strlen(id);
		assert_int_equal(*s++, '.');
	}
	n = strspn(s, "0123456789abcdef");
	assert_int_equal(n, 16);
	s += n;
	assert_int_equal(*s++, '@');
	assert_memory_equal(s, host, strlen(host));
	s += strlen(host);
	assert_memory_equal(s, ">\n", 2);
	*p = s + 2;
}

/* Date: and Message-ID: are added at the end of the header when missing. */
static void
test_sub_date_mid_added(void **state)
{
	static const char head[] = "From: f@f.example\nTo: t@t.example\n";
	struct msghdr_submission s, s2;
	const char *p;

	(void)state;
	setenv("TZ", "UTC0", 1);
	tzset();
	sub_ok("From: f@f.example\nTo: t@t.example\n\nbody\n", &params, &s);
	p = s.message.data;
	assert_memory_equal(p, head, strlen(head));
	p += strlen(head);
	assert_memory_equal(p, "Date: Mon, 23 Nov 2026 10:05:00 +0000\n", 38);
	p += 38;
	assert_message_id(&p, QID, "mx.example");
	assert_string_equal(p, "\nbody\n");
	/* two submissions get different Message-IDs */
	sub_ok("From: f@f.example\nTo: t@t.example\n\nbody\n", &params, &s2);
	assert_string_not_equal(s.message.data, s2.message.data);
	msghdr_submission_free(&s);
	msghdr_submission_free(&s2);

	/* only the missing one is added; any case counts as present */
	sub_ok("DATE: whenever\nTo: t@t.example\nFrom: f@f.example\n\nb",
		&params, &s);
	p = s.message.data + strlen("DATE: whenever\nTo: t@t.example\n"
		"From: f@f.example\n");
	assert_null(strstr(s.message.data, "Date:"));
	assert_message_id(&p, QID, "mx.example");
	assert_string_equal(p, "\nb");
	msghdr_submission_free(&s);
	sub_ok("message-id: <a@b>\nTo: t@t.example\nFrom: f@f.example\n\nb",
		&params, &s);
	assert_string_equal(s.message.data,
		"message-id: <a@b>\nTo: t@t.example\nFrom: f@f.example\n"
		"Date: Mon, 23 Nov 2026 10:05:00 +0000\n\nb");
	msghdr_submission_free(&s);
	/* without a queue ID the Message-ID is RANDOM@hostname */
	{
		struct msghdr_submit_params q = params;

		q.id = NULL;
		sub_ok("Date: d\nTo: t@t.example\nFrom: f@f.example\n\n", &q,
			&s);
		p = s.message.data + strlen("Date: d\nTo: t@t.example\n"
			"From: f@f.example\n");
		assert_message_id(&p, NULL, "mx.example");
		assert_string_equal(p, "\n");
		msghdr_submission_free(&s);
	}
}

/* Every byte of the kept fields and of the body stays exactly as it was. */
static void
test_sub_byte_exact(void **state)
{
	static const char in[] =
		"Received: from a by b;\n\t Mon, 23 Nov 2026 10:00:00 +0000\n"
		"X-Weird:value-without-space   \n"
		"Subject: =?utf-8?q?caf=C3=A9?= and raw caf\xc3\xa9\n"
		"Bcc: b@b.example\n"
		"To:   \"Smith, J\" <j@t.example>  ,\n"
		"     k@t.example (comment)\n"
		"Envelope-Ignore: nobody@n.example\n"
		"From: f@f.example\n"
		"Date: Tue, 1 Jan 2030 00:00:00 -0500 (EST)\n"
		"Message-Id: <abc@def>\n"
		"X-Tab:\tvalue\twith\ttabs\n"
		"Received: second\n"
		"\n"
		"Body line 1\n"
		"\n"
		"To: not@a.header\n"
		"\x01\x02\x7f binary \r lone CR\n"
		"no final newline";
	static const char want[] =
		"Received: from a by b;\n\t Mon, 23 Nov 2026 10:00:00 +0000\n"
		"X-Weird:value-without-space   \n"
		"Subject: =?utf-8?q?caf=C3=A9?= and raw caf\xc3\xa9\n"
		"To:   \"Smith, J\" <j@t.example>  ,\n"
		"     k@t.example (comment)\n"
		"From: f@f.example\n"
		"Date: Tue, 1 Jan 2030 00:00:00 -0500 (EST)\n"
		"Message-Id: <abc@def>\n"
		"X-Tab:\tvalue\twith\ttabs\n"
		"Received: second\n"
		"\n"
		"Body line 1\n"
		"\n"
		"To: not@a.header\n"
		"\x01\x02\x7f binary \r lone CR\n"
		"no final newline";
	struct msghdr_submission s;

	(void)state;
	sub_ok(in, &params, &s);
	assert_int_equal(s.message.len, strlen(want));
	assert_string_equal(s.message.data, want);
	/* header order: the Bcc: field comes before To: */
	assert_strv(&s.rcpts, "b@b.example", "j@t.example", "k@t.example",
		NULL);
	assert_string_equal(s.return_path, "f@f.example");
	assert_int_equal(received_in(&s.message), 2);
	msghdr_submission_free(&s);
}

/* CRLF line ends become LF everywhere; a lone CR stays. */
static void
test_sub_crlf(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("From: f@f.example\r\n"
		"To: a@t.example,\r\n b@t.example\r\n"
		"Bcc: c@t.example\r\n"
		"Date: d\r\nMessage-ID: <m@x>\r\n"
		"\r\n"
		"line 1\r\nline\r2\r\n\r\n", &params, &s);
	assert_strv(&s.rcpts, "a@t.example", "b@t.example", "c@t.example",
		NULL);
	assert_string_equal(s.message.data,
		"From: f@f.example\n"
		"To: a@t.example,\n b@t.example\n"
		"Date: d\nMessage-ID: <m@x>\n"
		"\n"
		"line 1\nline\r2\n\n");
	msghdr_submission_free(&s);
}

/* A header-only file still becomes header + empty line. */
static void
test_sub_header_only(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("From: f@f.example\nDate: d\nMessage-ID: <m@x>\nTo: t@t.example",
		&params, &s);
	assert_string_equal(s.message.data,
		"From: f@f.example\nDate: d\nMessage-ID: <m@x>\n"
		"To: t@t.example\n\n");
	msghdr_submission_free(&s);
	sub_ok("From: f@f.example\nDate: d\nMessage-ID: <m@x>\n"
		"To: t@t.example\n", &params, &s);
	assert_string_equal(s.message.data,
		"From: f@f.example\nDate: d\nMessage-ID: <m@x>\n"
		"To: t@t.example\n\n");
	msghdr_submission_free(&s);
	/* the last line is a removed field without a line feed */
	sub_ok("From: f@f.example\nDate: d\nMessage-ID: <m@x>\n"
		"Bcc: t@t.example", &params, &s);
	assert_string_equal(s.message.data,
		"From: f@f.example\nDate: d\nMessage-ID: <m@x>\n\n");
	assert_strv(&s.rcpts, "t@t.example", NULL);
	msghdr_submission_free(&s);
}

/* Groups and display names in To:; unqualified addresses qualified. */
static void
test_sub_groups_names_unqualified(void **state)
{
	struct msghdr_submission s;
	struct msghdr_submit_params q = params;

	(void)state;
	sub_ok("From: f\n"
		"To: Friends: Ann <ann@a.example>, bob;, \"Carl C\" <carl>\n"
		"Cc: undisclosed-recipients:;\n\n", &params, &s);
	assert_strv(&s.rcpts, "ann@a.example", "bob@example.com",
		"carl@example.com", NULL);
	assert_string_equal(s.return_path, "f@example.com");
	msghdr_submission_free(&s);
	/* no default domain: the hostname qualifies */
	q.default_domain = NULL;
	sub_ok("From: f\nTo: bob\n\n", &q, &s);
	assert_strv(&s.rcpts, "bob@mx.example", NULL);
	assert_string_equal(s.return_path, "f@mx.example");
	msghdr_submission_free(&s);
}

/* Duplicates are removed, first-seen order kept. */
static void
test_sub_duplicates(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("From: f@f.example\n"
		"To: b@x.example, a@x.example, b@X.Example\n"
		"Cc: \"a\"@x.example, A@x.example\n"
		"Bcc: Someone <b@x.example>\n\n", &params, &s);
	assert_strv(&s.rcpts, "b@x.example", "a@x.example", "A@x.example",
		NULL);
	msghdr_submission_free(&s);
	sub_ok("From: f@f.example\nEnvelope-To: e@x.example, e@x.example\n"
		"Envelope-To: e@X.EXAMPLE\n\n", &params, &s);
	assert_strv(&s.rcpts, "e@x.example", NULL);
	msghdr_submission_free(&s);
}

/* Many recipients: duplicates and ignores still found, order kept. */
static void
test_sub_many_rcpts(void **state)
{
	struct msghdr_submission s;
	struct buf b = BUF_INIT;
	char want[64];

	(void)state;
	assert_int_equal(buf_puts(&b, "From: f@f.example\nTo: "), 0);
	for (int i = 0; i < 20000; i++)
		assert_int_equal(buf_printf(&b, "u%d@x.example,\n ", i), 0);
	for (int i = 19999; i >= 0; i--)
		assert_int_equal(buf_printf(&b, "u%d@X.EXAMPLE,\n ", i), 0);
	assert_int_equal(buf_puts(&b, "last@x.example\n"
		"Envelope-Ignore: u7@x.example, u19999@x.example\n\n"), 0);
	sub_ok(b.data, &params, &s);
	assert_int_equal(s.rcpts.n, 20000 - 2 + 1);
	assert_string_equal(s.rcpts.v[0], "u0@x.example");
	assert_string_equal(s.rcpts.v[7], "u8@x.example");
	snprintf(want, sizeof(want), "u%d@x.example", 19998);
	assert_string_equal(s.rcpts.v[19997], want);
	assert_string_equal(s.rcpts.v[19998], "last@x.example");
	msghdr_submission_free(&s);
	buf_free(&b);
}

/* Every Received: field stays in the stored message (the hop count). */
static void
test_sub_hops(void **state)
{
	struct msghdr_submission s;

	(void)state;
	sub_ok("Received: a\nreceived: b\nRECEIVED: c\nX-Received: no\n"
		"From: f@f.example\nTo: t@t.example\n\n", &params, &s);
	assert_int_equal(received_in(&s.message), 3);
	msghdr_submission_free(&s);
	sub_ok("From: f@f.example\nTo: t@t.example\n\n", &params, &s);
	assert_int_equal(received_in(&s.message), 0);
	msghdr_submission_free(&s);
}

/* Every refusal has a clear constant reason and leaves nothing behind. */
static void
test_sub_errors(void **state)
{
	static const char nul[] = "From: f@f.example\nTo: t@t\0.example\n\nb";
	static const char nul_body[] = "From: f@f.example\nTo: t@t.example\n\n"
		"b\0dy";
	struct msghdr_submission s = MSGHDR_SUBMISSION_INIT;
	const char *why = NULL;
	struct msghdr_submit_params q = params;
	struct buf big = BUF_INIT;

	(void)state;
#define BAD(text, want) sub_bad(text, strlen(text), want)
	BAD("From: f@f.example\nSubject: none\n\nbody", "no recipient");
	BAD("From: f@f.example\nTo:\nCc:  \n\nbody", "no recipient");
	BAD("From: f@f.example\nTo: undisclosed-recipients:;\n\n",
		"no recipient");
	BAD("From: f@f.example\nTo: a@x.example\n"
		"Envelope-Ignore: a@x.example\n\n", "no recipient");
	BAD("From: f@f.example\nEnvelope-To:\nTo: a@x.example\n\n",
		"no recipient");
	BAD("From: f@f.example\nTo: a@x.example\nbad header line\n\n",
		"malformed");
	BAD("\nTo: a@x.example\n", "no header fields");
	BAD("", "no header fields");
	BAD(" To: a@x.example\n\n", "continuation");
	sub_bad(nul, sizeof(nul) - 1, "NUL");
	BAD("From: f@f.example\nTo: Joe Smith\n\n", "To:");
	BAD("From: f@f.example\nCc: a@b@c.example\n\n", "Cc:");
	BAD("From: f@f.example\nBcc: x; y\n\n", "Bcc:");
	BAD("From: f@f.example\nEnvelope-To: (x\n\n", "Envelope-To:");
	BAD("From: f@f.example\nTo: a@x.example\nEnvelope-Ignore: a b c\n\n",
		"Envelope-Ignore:");
	BAD("Return-Path: <a b c>\nTo: t@t.example\n\n", "Return-Path:");
	BAD("Return-Path:\nTo: t@t.example\n\n", "Return-Path:");
	BAD("Return-Path: <a@x.example>, <b@x.example>\nTo: t@t.example\n\n",
		"more than one");
	BAD("From: Not An Address\nTo: t@t.example\n\n", "From:");
	BAD("From: undisclosed:;\nTo: t@t.example\n\n", "no return-path");
#undef BAD
	/* a NUL in the body is not the header's business */
	assert_int_equal(msghdr_submission(nul_body, sizeof(nul_body) - 1,
		&params, &s, &why), 0);
	assert_int_equal(s.message.data[s.message.len - 3], '\0');
	msghdr_submission_free(&s);
	/* a header over 1 MiB */
	assert_int_equal(buf_puts(&big, "From: f@f.example\nTo: t@t.example\n"),
		0);
	while (big.len <= MSGHDR_MAX_HEADER)
		assert_int_equal(buf_puts(&big, "X-Filler: "
			"0123456789012345678901234567890123456789\n"), 0);
	assert_int_equal(buf_puts(&big, "\nbody\n"), 0);
	sub_bad(big.data, big.len, "1 MiB");
	/* just under the limit is fine (the body does not count) */
	buf_reset(&big);
	assert_int_equal(buf_puts(&big, "From: f@f.example\nTo: t@t.example\n"
		"Date: d\nMessage-ID: <m@x>\n\n"), 0);
	while (big.len <= 2 * 1024 * 1024)
		assert_int_equal(buf_puts(&big, "body body body body\n"), 0);
	assert_int_equal(msghdr_submission(big.data, big.len, &params, &s,
		&why), 0);
	assert_int_equal(s.message.len, big.len);
	msghdr_submission_free(&s);
	buf_free(&big);
	/* no hostname for a needed Message-ID */
	q.hostname = NULL;
	assert_int_equal(msghdr_submission("To: t@t.example\nFrom: f@f.example"
		"\n\n", 35, &q, &s, &why), -EINVAL);
	assert_non_null(strstr(why, "hostname"));
}

/* The end of a raw header: LF or CR LF empty lines, more data, EOF. */
static void
test_header_end(void **state)
{
	static const struct {
		const char *raw;
		bool eof;
		int r;
		size_t end;
	} cases[] = {
		{ "A: b\n\nbody\n", false, 0, 6 },
		{ "A: b\r\n\r\nbody\r\n", false, 0, 8 },
		{ "A: b\n\r\nbody", false, 0, 7 },
		{ "A: b\r\n\nbody", false, 0, 7 },
		{ "\nbody", false, 0, 1 },
		{ "\r\nbody", false, 0, 2 },
		{ "A: b\r\r\nB: c\n\n", false, 0, 13 },	/* CR CR LF: a line */
		{ "A: b\n \n\n", false, 0, 8 },		/* a blank fold: a line */
		{ "A: b\n", false, -EAGAIN, 0 },
		{ "A: b\n\r", false, -EAGAIN, 0 },
		{ "A: b\n", true, 0, 5 },
		{ "A: b", true, 0, 4 },
		{ "", false, -EAGAIN, 0 },
		{ "", true, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t end = 99;
		int r = msghdr_header_end(cases[i].raw, strlen(cases[i].raw),
			cases[i].eof, &end);

		if (r != cases[i].r || (r == 0 && end != cases[i].end))
			fail_msg("case %zu: %d end %zu", i, r, end);
	}
}

/*
 * The streamed Submitted path: the rules applied to the header part and
 * the rest converted give the very bytes of the rules on the whole file.
 */
static void
test_header_end_split_equals_whole(void **state)
{
	static const char *const files[] = {
		"From: f@f.example\nTo: t@t.example\n\nbody\r\nline\n",
		"From: f@f.example\r\nTo: t@t.example\r\n\r\nbody\r\n\r\n.\r",
		"From: f@f.example\r\nTo: t@t.example\n\r\n\r\nx\ry\r\n",
		"From: f@f.example\nTo: t@t.example\nBcc: b@b.example\n\n\n",
		"From: f@f.example\nTo: t@t.example\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		const char *f = files[i];
		size_t len = strlen(f), end;
		struct msghdr_submission whole, part;
		struct buf got = BUF_INIT;
		char *body = malloc(len + 1);
		const char *why, *mg, *mw;
		bool cr = false;

		assert_int_equal(msghdr_header_end(f, len, true, &end), 0);
		assert_int_equal(msghdr_submission(f, len, &params, &whole,
			&why), 0);
		assert_int_equal(msghdr_submission(f, end, &params, &part,
			&why), 0);
		assert_int_equal(buf_append(&got, part.message.data,
			part.message.len), 0);
		assert_int_equal(buf_append(&got, body, text_crlf_to_lf(f + end,
			len - end, body, &cr)), 0);
		if (cr)
			assert_int_equal(buf_putc(&got, '\r'), 0);
		/* Message-IDs are random: compare around them */
		assert_int_equal(got.len, whole.message.len);
		mg = strstr(got.data, "\nMessage-ID");
		mw = strstr(whole.message.data, "\nMessage-ID");
		assert_non_null(mg);
		assert_non_null(mw);
		assert_memory_equal(got.data, whole.message.data,
			(size_t)(mg - got.data));
		assert_memory_equal(strchr(mg + 1, '\n'), strchr(mw + 1, '\n'),
			got.len - (size_t)(strchr(mg + 1, '\n') - got.data));
		assert_int_equal(part.rcpts.n, whole.rcpts.n);
		assert_string_equal(part.return_path, whole.return_path);
		msghdr_submission_free(&whole);
		msghdr_submission_free(&part);
		buf_free(&got);
		free(body);
	}
}

/* RFC 5322 dates in local time with C-locale names and the zone offset. */
static void
test_date(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	setenv("TZ", "UTC0", 1);
	tzset();
	assert_int_equal(msghdr_date(NOW, &b), 0);
	assert_string_equal(b.data, "Mon, 23 Nov 2026 10:05:00 +0000");
	buf_reset(&b);
	assert_int_equal(msghdr_date(1798949229, &b), 0);
	assert_string_equal(b.data, "Sun, 3 Jan 2027 04:07:09 +0000");
	buf_reset(&b);
	setenv("TZ", "IST-5:30", 1);
	tzset();
	assert_int_equal(msghdr_date(NOW, &b), 0);
	assert_string_equal(b.data, "Mon, 23 Nov 2026 15:35:00 +0530");
	buf_reset(&b);
	setenv("TZ", "XYZ3", 1);
	tzset();
	assert_int_equal(msghdr_date(NOW, &b), 0);
	assert_string_equal(b.data, "Mon, 23 Nov 2026 07:05:00 -0300");
	/* appends */
	assert_int_equal(msghdr_date(0, &b), 0);
	assert_string_equal(b.data, "Mon, 23 Nov 2026 07:05:00 -0300"
		"Wed, 31 Dec 1969 21:00:00 -0300");
	buf_free(&b);
	setenv("TZ", "UTC0", 1);
	tzset();
}

/* Run every test. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_fields_and_folds),
		cmocka_unit_test(test_parse_no_body),
		cmocka_unit_test(test_parse_empty_body_and_body_bytes),
		cmocka_unit_test(test_parse_cr_kept),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_value),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_addresses_bad),
		cmocka_unit_test(test_sub_envelope_to_wins),
		cmocka_unit_test(test_sub_to_cc_bcc_minus_ignore),
		cmocka_unit_test(test_sub_bcc_removed_still_rcpt),
		cmocka_unit_test(test_sub_return_path),
		cmocka_unit_test(test_sub_null_return_path),
		cmocka_unit_test(test_sub_submitter),
		cmocka_unit_test(test_sub_from_fallback),
		cmocka_unit_test(test_sub_date_mid_added),
		cmocka_unit_test(test_sub_byte_exact),
		cmocka_unit_test(test_sub_crlf),
		cmocka_unit_test(test_sub_header_only),
		cmocka_unit_test(test_sub_groups_names_unqualified),
		cmocka_unit_test(test_sub_duplicates),
		cmocka_unit_test(test_sub_many_rcpts),
		cmocka_unit_test(test_sub_hops),
		cmocka_unit_test(test_sub_errors),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_header_end),
		cmocka_unit_test(test_header_end_split_equals_whole),
	};
	int r;

	g_mime_init();
	r = cmocka_run_group_tests(tests, NULL, NULL);
	g_mime_shutdown();
	return r;
}
