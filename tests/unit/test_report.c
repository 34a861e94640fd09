/*
 * Unit tests for report.c (with report_text.c and report_msg.c): the
 * return-mode truth table, read limits, the delivery-status part field
 * by field for each action and diagnostic type, the returned part by
 * RET and size cap, the text cap, control and 8-bit bytes, the boundary,
 * hostile stored messages and bad inputs. Every report is parsed back
 * with GMime. With "--samples DIR" it writes sample reports for
 * tests/integration/test_report_format.py (Python's email package).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <gmime/gmime.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "report.h"

#define NOW 1795428300		/* Mon, 23 Nov 2026 10:05:00 UTC */
#define ARRIVAL (NOW - 3600)

static const char msg1[] =
	"Return-Path: <alice@example.org>\n"
	"Message-ID: <orig.1@example.org>\n"
	"From: Alice <alice@example.org>\n"
	"To: bob@example.com\n"
	"Subject: hello\n"
	"\n"
	"Hello Bob.\n";

static const struct report_rcpt rc_smtp = {
	.orcpt = "rfc822;Bob+2B1@example.com", .addr = "bob@example.com",
	.action = REPORT_FAILED, .status = "5.1.1",
	.diag_type = REPORT_DIAG_SMTP,
	.diag = "550 5.1.1 <bob@example.com>: no such user",
	.remote_mta = "relay.example.net", .last_attempt = NOW - 60,
	.will_retry_until = -1,
};

/* A report_in for msg1 and the recipients given. */
static struct report_in
mkin(const struct report_rcpt *rc, size_t n)
{
	struct report_in in = {
		.reporting_mta = "mx.example.com", .to = "alice@example.org",
		.envid = "QQ+2Bid", .arrival = ARRIVAL, .now = NOW,
		.message_id = "1795428300.r1@mx.example.com",
		.rcpt = rc, .nrcpt = n, .ret = REPORT_RETURN_FULL,
		.return_size_limit = 50 * 1024, .msg = msg1,
		.msg_len = sizeof(msg1) - 1, .msg_total = sizeof(msg1) - 1,
	};
	return in;
}

/* Build in's report into b (a C string), asserting success. */
static void
build(const struct report_in *in, struct buf *b)
{
	const char *why = "unset";

	buf_reset(b);
	assert_int_equal(report_build(in, b, &why), 0);
	assert_null(why);
	assert_non_null(b->data);
	assert_int_equal(strlen(b->data), b->len);	/* no NUL inside */
}

/* The boundary of report s (malloc'ed). */
static char *
boundary(const char *s)
{
	const char *p = strstr(s, "boundary=\"");
	const char *q;

	assert_non_null(p);
	p += 10;
	q = strchr(p, '"');
	assert_non_null(q);
	return strndup(p, (size_t)(q - p));
}

/* Part i (1-3) of report s, its header and content (malloc'ed). */
static char *
part(const char *s, int i, char **hdr)
{
	char *b = boundary(s), *delim, *res;
	const char *p = s, *e, *body;

	assert_int_equal(asprintf(&delim, "\n--%s", b), (int)strlen(b) + 3);
	for (int k = 0; k < i; k++) {
		p = strstr(p, delim);
		assert_non_null(p);
		p += strlen(delim);
	}
	assert_true(*p == '\n');
	p++;
	e = strstr(p, delim);
	assert_non_null(e);
	body = strstr(p, "\n\n");
	assert_true(body && body < e + 1);
	if (hdr)
		*hdr = strndup(p, (size_t)(body + 1 - p));
	body += 2;
	res = body >= e ? strdup("") : strndup(body, (size_t)(e - body));
	free(delim);
	free(b);
	return res;
}

/* The quoted-printable text s decoded (malloc'ed, NUL-terminated). */
static char *
unqp(const char *s)
{
	GMimeEncoding enc;
	size_t n = strlen(s), w;
	char *out = malloc(n + 1);

	assert_non_null(out);
	g_mime_encoding_init_decode(&enc,
		GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	w = g_mime_encoding_flush(&enc, s, n, out);
	out[w] = '\0';
	return out;
}

/* Parse s back with GMime: a multipart/report of three parts, types. */
static void
gmime_check(const struct buf *b, const char *third)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(b->data, b->len);
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
	GMimeObject *top;
	GMimeContentType *ct;
	static const char *types[3] = { "text/plain",
		"message/delivery-status", NULL };

	assert_non_null(m);
	top = g_mime_message_get_mime_part(m);
	assert_true(GMIME_IS_MULTIPART(top));
	ct = g_mime_object_get_content_type(top);
	assert_true(g_mime_content_type_is_type(ct, "multipart", "report"));
	assert_string_equal(g_mime_content_type_get_parameter(ct,
		"report-type"), "delivery-status");
	assert_int_equal(g_mime_multipart_get_count(GMIME_MULTIPART(top)), 3);
	types[2] = third;
	for (int i = 0; i < 3; i++) {
		GMimeObject *o = g_mime_multipart_get_part(GMIME_MULTIPART(top),
			i);
		char *t = g_mime_content_type_get_mime_type(
			g_mime_object_get_content_type(o));

		assert_string_equal(t, types[i]);
		g_free(t);
	}
	g_object_unref(m);
	g_object_unref(p);
	g_object_unref(st);
}

/* Report-wide invariants: no NUL/CR/raw control, lines <= 998. */
static void
invariants(const struct buf *b)
{
	size_t col = 0;

	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];

		assert_true(c != 0 && c != '\r');
		assert_true(c >= 0x20 || c == '\n' || c == '\t');
		col = c == '\n' ? 0 : col + 1;
		assert_true(col <= 998);
	}
	assert_true(b->len > 0 && b->data[b->len - 1] == '\n');
}

/* [reports] return and DSN RET: the whole truth table. */
static void
test_return_mode(void **state)
{
	static const struct {
		int conf;
		const char *ret;
		enum report_return want;
	} t[] = {
		{ RETURN_HEADERS, NULL, REPORT_RETURN_HEADERS },
		{ RETURN_HEADERS, "FULL", REPORT_RETURN_FULL },
		{ RETURN_HEADERS, "HDRS", REPORT_RETURN_HEADERS },
		{ RETURN_BODY, NULL, REPORT_RETURN_FULL },
		{ RETURN_BODY, "FULL", REPORT_RETURN_FULL },
		{ RETURN_BODY, "hdrs", REPORT_RETURN_HEADERS },
		{ RETURN_BODY, "junk", REPORT_RETURN_FULL },
		{ RETURN_ALWAYS_HEADERS, NULL, REPORT_RETURN_HEADERS },
		{ RETURN_ALWAYS_HEADERS, "FULL", REPORT_RETURN_HEADERS },
		{ RETURN_ALWAYS_HEADERS, "HDRS", REPORT_RETURN_HEADERS },
		{ RETURN_ALWAYS_BODY, NULL, REPORT_RETURN_FULL },
		{ RETURN_ALWAYS_BODY, "FULL", REPORT_RETURN_FULL },
		{ RETURN_ALWAYS_BODY, "HDRS", REPORT_RETURN_FULL },
		{ 99, "FULL", REPORT_RETURN_HEADERS },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(report_return_mode(t[i].conf, t[i].ret),
			t[i].want);
}

/* How much of the stored message a report reads. */
static void
test_read_limit(void **state)
{
	(void)state;
	assert_int_equal(report_read_limit(REPORT_RETURN_FULL, 51200, 1000),
		1000);
	assert_int_equal(report_read_limit(REPORT_RETURN_FULL, 51200, 51200),
		51200);
	/* over the limit: the header's cap */
	assert_int_equal(report_read_limit(REPORT_RETURN_FULL, 51200,
		1000000), 51200);
	assert_int_equal(report_read_limit(REPORT_RETURN_HEADERS, 51200,
		1000000), 51200);
	assert_int_equal(report_read_limit(REPORT_RETURN_HEADERS, 51200,
		300), 300);
	/* a tiny limit still leaves REPORT_HEADER_MIN for the header */
	assert_int_equal(report_read_limit(REPORT_RETURN_FULL, 0, 1000000),
		REPORT_HEADER_MIN);
	assert_int_equal(report_read_limit(REPORT_RETURN_FULL, 0, 0), 0);
}

/* A failed SMTP recipient: the whole report, field by field. */
static void
test_failed_smtp(void **state)
{
	struct report_in in = mkin(&rc_smtp, 1);
	struct buf b = BUF_INIT;
	char *ds, *h, *b1, *text, *ret;
	static const char top[] = "From: Mail Delivery System "
		"<MAILER-DAEMON@mx.example.com>\nTo: alice@example.org\n"
		"Subject: Undelivered Mail Returned to Sender\n"
		"Date: Mon, 23 Nov 2026 10:05:00 +0000\n"
		"Message-ID: <1795428300.r1@mx.example.com>\n"
		"In-Reply-To: <orig.1@example.org>\n"
		"References: <orig.1@example.org>\n"
		"Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
		"Content-Type: multipart/report; report-type=delivery-status;"
		"\n";

	(void)state;
	build(&in, &b);
	invariants(&b);
	b1 = boundary(b.data);
	assert_non_null(strstr(b.data, "\n\tboundary=\""));
	assert_true(strncmp(b.data, top, strlen(top)) == 0);
	assert_non_null(strstr(b.data, "\nContent-Transfer-Encoding: 7bit\n"
		"\nThis is a MIME-encapsulated message.\n"));
	ds = part(b.data, 2, &h);
	assert_string_equal(h, "Content-Description: Delivery report\n"
		"Content-Type: message/delivery-status\n");
	assert_string_equal(ds, "Reporting-MTA: dns; mx.example.com\n"
		"Original-Envelope-Id: QQ+id\n"
		"Arrival-Date: Mon, 23 Nov 2026 09:05:00 +0000\n"
		"\n"
		"Original-Recipient: rfc822;Bob+1@example.com\n"
		"Final-Recipient: rfc822;bob@example.com\n"
		"Action: failed\n"
		"Status: 5.1.1\n"
		"Remote-MTA: dns; relay.example.net\n"
		"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: no such "
		"user\n"
		"Last-Attempt-Date: Mon, 23 Nov 2026 10:04:00 +0000\n");
	free(h);
	text = part(b.data, 1, &h);
	assert_string_equal(h, "Content-Description: Notification\n"
		"Content-Type: text/plain; charset=us-ascii\n"
		"Content-Transfer-Encoding: 7bit\n");
	assert_non_null(strstr(text, "This is the mail system at host "
		"mx.example.com.\n"));
	assert_non_null(strstr(text, "<bob@example.com>: delivery failed, "
		"status 5.1.1\n    The mail server relay.example.net replied:"
		"\n    550 5.1.1 <bob@example.com>: no such user\n"));
	free(h);
	ret = part(b.data, 3, &h);
	assert_string_equal(h, "Content-Description: Undelivered Message\n"
		"Content-Type: message/rfc822\n"
		"Content-Transfer-Encoding: 7bit\n");
	assert_string_equal(ret, msg1);	/* returned byte for byte */
	assert_non_null(strstr(b.data, msg1));
	free(h);
	assert_int_equal(asprintf(&h, "\n\n--%s--\n", b1) > 0, 1);
	assert_string_equal(b.data + b.len - strlen(h), h);
	free(h);
	gmime_check(&b, "message/rfc822");
	free(ret);
	free(text);
	free(ds);
	free(b1);
	buf_free(&b);
}

/* Delayed, delivered, relayed; program and MTA diagnostics; mixed. */
static void
test_actions(void **state)
{
	struct report_rcpt rc[3] = {
		{ .addr = "p@example.com", .action = REPORT_DELAYED,
		  .status = "4.3.0", .diag_type = REPORT_DIAG_PROGRAM,
		  .diag = "exit 75 (EX_TEMPFAIL): disk full\n",
		  .last_attempt = NOW - 10, .will_retry_until = NOW + 86400 },
		{ .addr = "q@example.com", .action = REPORT_DELIVERED,
		  .status = "2.0.0", .last_attempt = NOW - 5,
		  .will_retry_until = NOW + 5 },
		{ .addr = "r@example.com", .action = REPORT_RELAYED,
		  .status = NULL, .diag_type = REPORT_DIAG_MTA,
		  .diag = "relayed to a host without DSN",
		  .last_attempt = -1, .will_retry_until = -1 },
	};
	struct report_in in = mkin(rc, 3);
	struct buf b = BUF_INIT;
	char *ds, *ret, *h;
	static const char last[] = "\n\nFinal-Recipient: "
		"rfc822;r@example.com\nAction: relayed\nStatus: 2.0.0\n"
		"Diagnostic-Code: X-mailpipe; relayed to a host without DSN\n";

	(void)state;
	build(&in, &b);
	invariants(&b);
	assert_non_null(strstr(b.data, "\nSubject: Delayed Mail (still being "
		"retried)\n"));
	ds = part(b.data, 2, NULL);
	assert_non_null(strstr(ds, "\n\nFinal-Recipient: rfc822;p@example.com"
		"\nAction: delayed\nStatus: 4.3.0\n"
		"Diagnostic-Code: X-mailpipe; exit 75 (EX_TEMPFAIL): disk "
		"full\n"
		"Last-Attempt-Date: Mon, 23 Nov 2026 10:04:50 +0000\n"
		"Will-Retry-Until: Tue, 24 Nov 2026 10:05:00 +0000\n\n"));
	/* Will-Retry-Until only for delayed; no Original-Recipient */
	assert_non_null(strstr(ds, "\n\nFinal-Recipient: rfc822;q@example.com"
		"\nAction: delivered\nStatus: 2.0.0\n"
		"Last-Attempt-Date: Mon, 23 Nov 2026 10:04:55 +0000\n\n"));
	assert_true(strlen(ds) > strlen(last));
	assert_string_equal(ds + strlen(ds) - strlen(last), last);
	assert_null(strstr(ds, "Original-Recipient"));
	/* no failure: only the header comes back, whatever ret says */
	ret = part(b.data, 3, &h);
	assert_string_equal(h, "Content-Description: Delayed Message "
		"Headers\nContent-Type: text/rfc822-headers\n"
		"Content-Transfer-Encoding: 7bit\n");
	assert_null(strstr(ret, "Hello Bob"));
	assert_non_null(strstr(ret, "Subject: hello\n"));
	gmime_check(&b, "text/rfc822-headers");
	free(ds);
	free(ret);
	free(h);

	rc[0].action = REPORT_DELIVERED;
	build(&in, &b);
	assert_non_null(strstr(b.data, "\nSubject: Successful Mail Delivery "
		"Report\n"));
	ds = part(b.data, 2, NULL);
	assert_null(strstr(ds, "Will-Retry-Until"));
	free(ds);
	rc[2].action = REPORT_FAILED;
	build(&in, &b);
	assert_non_null(strstr(b.data, "\nSubject: Undelivered Mail Returned "
		"to Sender\n"));
	gmime_check(&b, "message/rfc822");
	/* a bad status falls back to the action's X.0.0 */
	rc[2].status = "5.1";
	build(&in, &b);
	ds = part(b.data, 2, NULL);
	assert_non_null(strstr(ds, "Action: failed\nStatus: 5.0.0\n"));
	free(ds);
	buf_free(&b);
}

/* RET and the size cap choose message/rfc822 or text/rfc822-headers. */
static void
test_returned(void **state)
{
	struct report_in in = mkin(&rc_smtp, 1);
	struct buf b = BUF_INIT;
	char *ret, *text, *want;

	(void)state;
	in.ret = REPORT_RETURN_HEADERS;
	build(&in, &b);
	ret = part(b.data, 3, NULL);
	assert_string_equal(ret, "Return-Path: <alice@example.org>\n"
		"Message-ID: <orig.1@example.org>\n"
		"From: Alice <alice@example.org>\nTo: bob@example.com\n"
		"Subject: hello\n");
	gmime_check(&b, "text/rfc822-headers");
	free(ret);
	/* full, exactly at the limit: returned */
	in.ret = REPORT_RETURN_FULL;
	in.return_size_limit = in.msg_total;
	build(&in, &b);
	gmime_check(&b, "message/rfc822");
	/* one byte over: the header only, and the text says why */
	in.return_size_limit = in.msg_total - 1;
	build(&in, &b);
	gmime_check(&b, "text/rfc822-headers");
	text = part(b.data, 1, NULL);
	assert_int_equal(asprintf(&want, "larger than %zu bytes: only its "
		"header is attached.\n", sizeof(msg1) - 2) > 0, 1);
	assert_non_null(strstr(text, want));
	free(want);
	free(text);
	/* the caller read only part of it: the header only */
	in.return_size_limit = 51200;
	in.msg_len = 40;
	build(&in, &b);
	gmime_check(&b, "text/rfc822-headers");
	ret = part(b.data, 3, NULL);
	assert_string_equal(ret, "Return-Path: <alice@example.org>\n");
	free(ret);
	text = part(b.data, 1, NULL);
	assert_non_null(strstr(text, "The attached header was cut short "));
	free(text);
	buf_free(&b);
}

/* A huge header is cut at a line boundary at the header cap. */
static void
test_header_cap(void **state)
{
	struct report_rcpt rc = rc_smtp;
	struct report_in in = mkin(&rc, 1);
	struct buf m = BUF_INIT, b = BUF_INIT;
	char *ret;

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_printf(&m, "X-Filler-%04d: %s\n", i,
			"0123456789012345678901234567890123456789"), 0);
	assert_int_equal(buf_puts(&m, "\nbody\n"), 0);
	in.msg = m.data;
	in.msg_len = in.msg_total = m.len;
	in.return_size_limit = 5000;
	in.ret = REPORT_RETURN_FULL;
	build(&in, &b);
	invariants(&b);
	ret = part(b.data, 3, NULL);
	assert_true(strlen(ret) <= 5000 && strlen(ret) > 5000 - 57);
	assert_int_equal(strlen(ret) % 56, 0);	/* whole lines only */
	assert_null(strstr(ret, "body"));
	gmime_check(&b, "text/rfc822-headers");
	free(ret);
	buf_free(&b);
	buf_free(&m);
}

/* The diagnostic is capped in both parts; controls never pass raw. */
static void
test_text_cap_and_controls(void **state)
{
	struct report_rcpt rc = rc_smtp;
	struct report_in in = mkin(&rc, 1);
	struct buf b = BUF_INIT, d = BUF_INIT;
	char *text, *ds, *p;

	(void)state;
	rc.diag_type = REPORT_DIAG_PROGRAM;
	assert_int_equal(buf_puts(&d, "exit 67 (EX_NOUSER): a\x01\x1b[31mb\r\n"
		"caf\xc3\xa9 \xff\x7f\tz\xc2\x85\n"), 0);
	for (int i = 0; i < 500; i++)
		assert_int_equal(buf_puts(&d, "0123456789"), 0);
	rc.diag = d.data;
	in.text_cap = 100;
	build(&in, &b);
	invariants(&b);
	text = part(b.data, 1, &p);
	/* 8-bit: quoted-printable, UTF-8 */
	assert_non_null(strstr(p, "charset=utf-8\n"
		"Content-Transfer-Encoding: quoted-printable\n"));
	free(p);
	assert_non_null(strstr(text, "    exit 67 (EX_NOUSER): a=EF=BF=BD"
		"=EF=BF=BD[31mb\n    caf=C3=A9 =EF=BF=BD=EF=BF=BD\t"
		"z=EF=BF=BD\n"));
	p = unqp(text);
	free(text);
	text = p;
	assert_non_null(strstr(text, "    exit 67 (EX_NOUSER): a\xef\xbf\xbd"
		"\xef\xbf\xbd[31mb\n"));
	assert_non_null(strstr(text, "\n    0123456789012345678901234567890"
		"1234567890123456789012345 [... truncated]\n"));
	assert_null(strstr(text, "0123456789012345678901234567890123456789"
		"01234567890123456"));	/* 57 digits: past the cap */
	ds = part(b.data, 2, NULL);
	/* controls are spaces, 8-bit is \x{...}, folded before a space */
	assert_non_null(strstr(ds, "\nDiagnostic-Code: X-mailpipe; exit 67 "
		"(EX_NOUSER): a [31mb caf\\x{00E9} \\x{FFFD}\n z\\x{0085} "
		"0123456789012345678901234567890123456789012345678901234"
		"5 [...\n"
		" truncated]\nLast-Attempt-Date: "));
	free(ds);
	free(text);
	/* default cap: 2 KiB */
	in.text_cap = 0;
	build(&in, &b);
	invariants(&b);
	text = part(b.data, 1, NULL);
	assert_non_null(strstr(text, "[... truncated]"));
	assert_true(strlen(text) > 2048 && strlen(text) < 4096);
	free(text);
	buf_free(&d);
	buf_free(&b);
}

/* A stored message holding the boundary gets another one. */
static void
test_boundary(void **state)
{
	struct report_rcpt rc = rc_smtp;
	struct report_in in = mkin(&rc, 1);
	struct buf b = BUF_INIT, m = BUF_INIT;
	char *b1, *b2, *delim;

	(void)state;
	build(&in, &b);
	b1 = boundary(b.data);
	assert_int_equal(strncmp(b1, "=_report_", 9), 0);
	build(&in, &b);	/* reproducible */
	b2 = boundary(b.data);
	assert_string_equal(b1, b2);
	free(b2);
	assert_int_equal(buf_printf(&m, "Subject: x\n\n--%s\n--%s--\n", b1,
		b1), 0);
	in.msg = m.data;
	in.msg_len = in.msg_total = m.len;
	build(&in, &b);
	b2 = boundary(b.data);
	assert_string_not_equal(b1, b2);
	assert_int_equal(asprintf(&delim, "--%s", b2), (int)strlen(b2) + 2);
	/* the boundary occurs only as our delimiters: 3 + the closing one */
	{
		int n = 0;

		for (const char *p = b.data; (p = strstr(p, delim)); p++)
			n++;
		assert_int_equal(n, 4);
	}
	gmime_check(&b, "message/rfc822");
	/* the diagnostic holding it is caught too */
	rc.diag = b1;
	in.msg = msg1;
	in.msg_len = in.msg_total = sizeof(msg1) - 1;
	build(&in, &b);
	free(b2);
	b2 = boundary(b.data);
	assert_string_not_equal(b1, b2);
	free(delim);
	free(b1);
	free(b2);
	buf_free(&m);
	buf_free(&b);
}

/* Hostile stored messages still give a valid report. */
static void
test_hostile_message(void **state)
{
	struct report_in in = mkin(&rc_smtp, 1);
	struct buf b = BUF_INIT, m = BUF_INIT;
	char *ret, *h;

	(void)state;
	/* NUL, CR, 8-bit, a 3000-octet line, no separator, no last LF */
	assert_int_equal(buf_append(&m, "Subject: a\0b\rc\xe9\n", 16), 0);
	assert_int_equal(buf_puts(&m, "X-Long: "), 0);
	for (int i = 0; i < 300; i++)
		assert_int_equal(buf_puts(&m, "0123456789"), 0);
	assert_int_equal(buf_puts(&m, "\nnot a header line\nbody \xff"), 0);
	in.msg = m.data;
	in.msg_len = in.msg_total = m.len;
	build(&in, &b);
	invariants(&b);
	assert_non_null(strstr(b.data, "\nContent-Transfer-Encoding: 8bit\n"
		"\nThis is a MIME"));
	ret = part(b.data, 3, &h);
	assert_non_null(strstr(h, "Content-Transfer-Encoding: 8bit\n"));
	assert_int_equal(strncmp(ret, "Subject: a?b?c\xe9\nX-Long: 0123", 27),
		0);
	/* the long line is folded, the body starts after an empty line */
	assert_non_null(strstr(ret, "\n 7890123456789"));
	assert_non_null(strstr(ret, "789\n\nnot a header line\nbody \xff\n"));
	assert_null(strstr(b.data, "In-Reply-To"));
	gmime_check(&b, "message/rfc822");
	free(ret);
	free(h);
	/* nothing stored at all, and a body only */
	in.msg = NULL;
	in.msg_len = in.msg_total = 0;
	build(&in, &b);
	invariants(&b);
	gmime_check(&b, "message/rfc822");
	in.msg = "\n\nbody only\n";
	in.msg_len = in.msg_total = 12;
	in.ret = REPORT_RETURN_HEADERS;
	build(&in, &b);
	invariants(&b);
	ret = part(b.data, 3, NULL);
	assert_string_equal(ret, "");
	gmime_check(&b, "text/rfc822-headers");
	free(ret);
	buf_free(&m);
	buf_free(&b);
}

/* 8-bit addresses and values in the delivery-status part stay ASCII. */
static void
test_ascii_ds(void **state)
{
	struct report_rcpt rc = rc_smtp;
	struct report_in in = mkin(&rc, 1);
	struct buf b = BUF_INIT, d = BUF_INIT;
	char *ds;

	(void)state;
	rc.addr = "j\xc3\xb6rg@example.com";
	rc.orcpt = "utf-8;j+C3+B6rg@example.com";
	rc.remote_mta = "relay example";
	for (int i = 0; i < 200; i++)
		assert_int_equal(buf_puts(&d, "word "), 0);
	for (int i = 0; i < 300; i++)
		assert_int_equal(buf_puts(&d, "longword!!"), 0);
	rc.diag = d.data;
	in.text_cap = 10000;
	in.envid = "bad xtext+";
	build(&in, &b);
	invariants(&b);
	ds = part(b.data, 2, NULL);
	for (const char *p = ds; *p; p++)
		assert_true((unsigned char)*p < 0x80);
	assert_non_null(strstr(ds, "Original-Envelope-Id: bad xtext+\n"));
	assert_non_null(strstr(ds, "Original-Recipient: utf-8;"
		"j\\x{00F6}rg@example.com\n"));
	assert_non_null(strstr(ds, "Final-Recipient: rfc822;"
		"j\\x{00F6}rg@example.com\n"));
	assert_non_null(strstr(ds, "Remote-MTA: dns; relay example\n"));
	/* folded: every line at most 78 but the unbreakable word's */
	assert_non_null(strstr(ds, "\n word word"));
	gmime_check(&b, "message/rfc822");
	free(ds);
	buf_free(&d);
	buf_free(&b);
}

/* Bad inputs: -EINVAL with a reason, out untouched. */
static void
test_bad_input(void **state)
{
	struct report_rcpt rc = rc_smtp;
	struct report_in in;
	struct buf b = BUF_INIT;
	const char *why;

	(void)state;
	assert_int_equal(buf_puts(&b, "keep"), 0);
	in = mkin(&rc, 0);
	assert_int_equal(report_build(&in, &b, &why), -EINVAL);
	assert_string_equal(why, "a report needs a recipient");
	in = mkin(&rc, 1);
	in.to = "";
	assert_int_equal(report_build(&in, &b, &why), -EINVAL);
	assert_non_null(strstr(why, "null return-path"));
	in.to = "a\n@b";
	assert_int_equal(report_build(&in, &b, &why), -EINVAL);
	in = mkin(&rc, 1);
	in.reporting_mta = "mx example";
	assert_int_equal(report_build(&in, &b, &why), -EINVAL);
	in = mkin(&rc, 1);
	in.message_id = "a>b";
	assert_int_equal(report_build(&in, &b, &why), -EINVAL);
	in = mkin(&rc, 1);
	rc.addr = NULL;
	assert_int_equal(report_build(&in, &b, &why), -EINVAL);
	rc = rc_smtp;
	rc.action = (enum report_action)7;
	assert_int_equal(report_build(&in, &b, &why), -EINVAL);
	rc = rc_smtp;
	in.now = INT64_MAX;
	assert_int_equal(report_build(&in, &b, &why), -EINVAL);
	assert_string_equal(b.data, "keep");
	/* a report is appended to what out holds */
	in.now = NOW;
	assert_int_equal(report_build(&in, &b, &why), 0);
	assert_int_equal(strncmp(b.data, "keepFrom: ", 10), 0);
	buf_free(&b);
}

/* Write the sample reports of test_report_format.py into dir. */
static int
samples(const char *dir)
{
	struct report_rcpt mixed[3] = { rc_smtp, rc_smtp, rc_smtp };
	struct report_rcpt delayed = rc_smtp;
	struct report_rcpt bin = rc_smtp;
	struct buf b = BUF_INIT, big = BUF_INIT;
	struct {
		const char *name;
		struct report_in in;
	} s[6];
	const char *why;
	int n = 0;

	mixed[1].action = REPORT_DELIVERED;
	mixed[1].orcpt = NULL;
	mixed[1].addr = "carol@example.com";
	mixed[1].status = "2.0.0";
	mixed[1].diag_type = REPORT_DIAG_NONE;
	mixed[1].remote_mta = NULL;
	mixed[2].action = REPORT_RELAYED;
	mixed[2].orcpt = NULL;
	mixed[2].addr = "dave@example.com";
	mixed[2].status = "2.0.0";
	mixed[2].diag_type = REPORT_DIAG_MTA;
	mixed[2].diag = "relayed to a host without DSN";
	delayed.action = REPORT_DELAYED;
	delayed.status = "4.4.1";
	delayed.will_retry_until = NOW + 4 * 86400;
	bin.diag_type = REPORT_DIAG_PROGRAM;
	bin.diag = "exit 67 (EX_NOUSER): caf\xc3\xa9\x01\x1b[0m";
	bin.remote_mta = NULL;
	for (int i = 0; i < 2000; i++)
		buf_printf(&big, "X-H%d: v\n", i);
	buf_append(&big, "\nbody \0 \xff\r\n", 11);
	s[n].name = "failed-full";
	s[n++].in = mkin(&rc_smtp, 1);
	s[n].name = "failed-headers";
	s[n].in = mkin(&rc_smtp, 1);
	s[n++].in.ret = REPORT_RETURN_HEADERS;
	s[n].name = "failed-over-limit";
	s[n].in = mkin(&rc_smtp, 1);
	s[n++].in.return_size_limit = 10;
	s[n].name = "mixed";
	s[n++].in = mkin(mixed, 3);
	s[n].name = "delayed";
	s[n++].in = mkin(&delayed, 1);
	s[n].name = "hostile";
	s[n].in = mkin(&bin, 1);
	s[n].in.envid = NULL;
	s[n].in.msg = big.data;
	s[n].in.msg_len = s[n].in.msg_total = big.len;
	s[n++].in.return_size_limit = 100000;
	for (int i = 0; i < n; i++) {
		char *path;
		FILE *f;

		buf_reset(&b);
		if (report_build(&s[i].in, &b, &why) < 0
		    || asprintf(&path, "%s/%s.eml", dir, s[i].name) < 0)
			return 1;
		if (!(f = fopen(path, "w")) || fwrite(b.data, 1, b.len, f)
		    != b.len || fclose(f) != 0)
			return 1;
		free(path);
	}
	buf_free(&b);
	buf_free(&big);
	return 0;
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_return_mode),
		cmocka_unit_test(test_read_limit),
		cmocka_unit_test(test_failed_smtp),
		cmocka_unit_test(test_actions),
		cmocka_unit_test(test_returned),
		cmocka_unit_test(test_header_cap),
		cmocka_unit_test(test_text_cap_and_controls),
		cmocka_unit_test(test_boundary),
		cmocka_unit_test(test_hostile_message),
		cmocka_unit_test(test_ascii_ds),
		cmocka_unit_test(test_bad_input),
	};
	int r;

	if (argc == 3 && strcmp(argv[1], "--samples") == 0)
		return samples(argv[2]);
	g_mime_init();
	r = cmocka_run_group_tests(tests, NULL, NULL);
	g_mime_shutdown();
	return r;
}
