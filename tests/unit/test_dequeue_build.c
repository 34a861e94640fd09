/*
 * Unit tests for dequeue_build.c: a report about some recipients of a
 * queued message gets a valid DSN envelope (null return-path, one
 * recipient with NOTIFY=NEVER, report-for naming the original and the
 * recipients) and a builder input from the original's envelope and
 * journal that report_build turns into a report; bad items are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dequeue.h"

#define UID "6f1c0d9be3a14c2e8d7f5a9b0c1d2e3f"

static const char msg[] =
	"From: joe@example.com\nTo: r0@example.org\nSubject: hi\n"
	"Message-ID: <orig@example.com>\n\nbody\n";

/* An original with three recipients; 0 failed with a program's record. */
static void
make_msg(struct store_msg *m, struct store_hist *h)
{
	memset(m, 0, sizeof(*m));
	envelope_init(&m->env);
	memcpy(m->env.uid, UID, sizeof(UID));
	m->env.tag = strdup("SMTP");
	m->env.from = strdup("joe@example.com");
	m->env.submitted = 1765000000;
	m->env.ret = strdup("HDRS");
	m->env.envid = strdup("QQ314159");
	for (int i = 0; i < 3; i++) {
		char a[32];

		snprintf(a, sizeof(a), "r%d@example.org", i);
		assert_int_equal(envelope_add_rcpt(&m->env, a,
		    i == 0 ? "rfc822;first@example.org" : NULL, 0), 0);
	}
	m->env.rcpt[0].state = RCPT_FAILED;
	m->msg_len = sizeof(msg) - 1;
	memset(h, 0, 3 * sizeof(*h));
	h[0] = (struct store_hist){ .attempts = 2, .last = 1765000100,
		.next = -1, .kind = JOURNAL_FAILED, .src = JOURNAL_PIPE,
		.reply = 554, .status = "5.3.0",
		.reason = (char *)"exit 1: mailbox full" };
	h[2] = (struct store_hist){ .attempts = 1, .last = 1765000050,
		.next = 1765000350, .kind = JOURNAL_DEFERRED,
		.src = JOURNAL_RELAY, .reply = 451, .status = "4.4.1",
		.reason = (char *)"no answer" };
	m->hist = h;
}

/* The arguments every case uses. */
static struct dequeue_report_args
args(void)
{
	return (struct dequeue_report_args){ .to = "joe@example.com",
		.hostname = "mx.example.com", .message_id = "r1@mx.example.com",
		.now = 1765000200, .config_return = RETURN_BODY,
		.return_size_limit = 50000, .max_lifetime_s = 432000,
		.msg = msg, .msg_len = sizeof(msg) - 1 };
}

/* A failure and a delay in one report: envelope, input, the report. */
static void
test_prepare(void **state)
{
	struct store_msg m;
	struct store_hist h[3];
	struct dequeue_item it[] = { { 0, REPORT_FAILED },
		{ 2, REPORT_DELAYED } };
	struct dequeue_report_args a = args();
	struct dequeue_report d;
	struct buf b = BUF_INIT;
	const char *why = NULL;

	(void)state;
	make_msg(&m, h);
	assert_int_equal(dequeue_report_prepare(&m, it, 2, &a, &d), 0);
	assert_string_equal(d.env.tag, "DSN");
	assert_string_equal(d.env.from, "");
	assert_string_equal(d.env.uid, "");
	assert_true(d.env.trusted);
	assert_int_equal(d.env.submitted, 1765000200);
	assert_string_equal(d.env.report_for, UID " 0,2");
	assert_int_equal(d.env.nrcpt, 1);
	assert_string_equal(d.env.rcpt[0].addr, "joe@example.com");
	assert_int_equal(d.env.rcpt[0].notify, NOTIFY_NEVER);
	/* the input: from the original's envelope and journal */
	assert_string_equal(d.in.to, "joe@example.com");
	assert_string_equal(d.in.envid, "QQ314159");
	assert_int_equal(d.in.arrival, 1765000000);
	assert_int_equal(d.in.ret, REPORT_RETURN_HEADERS);	/* RET=HDRS */
	assert_int_equal(d.in.nrcpt, 2);
	assert_string_equal(d.in.rcpt[0].orcpt, "rfc822;first@example.org");
	assert_string_equal(d.in.rcpt[0].diag, "exit 1: mailbox full");
	assert_int_equal(d.in.rcpt[0].diag_type, REPORT_DIAG_PROGRAM);
	assert_int_equal(d.in.rcpt[0].last_attempt, 1765000100);
	assert_string_equal(d.in.rcpt[1].addr, "r2@example.org");
	assert_int_equal(d.in.rcpt[1].will_retry_until, 1765432000);
	assert_int_equal(d.in.msg_total, sizeof(msg) - 1);
	/* the envelope is one the queue takes */
	memcpy(d.env.uid, UID, sizeof(UID));
	d.env.size = 1;
	assert_int_equal(envelope_format(&d.env, &b), 0);
	assert_non_null(strstr(b.data, "\nreport-for " UID " 0,2\n"));
	buf_reset(&b);
	/* and report_build makes the report of it */
	assert_int_equal(report_build(&d.in, &b, &why), 0);
	assert_non_null(strstr(b.data, "Final-Recipient: rfc822;r0@example.org"));
	assert_non_null(strstr(b.data, "Action: delayed"));
	assert_non_null(strstr(b.data, "Original-Envelope-Id: QQ314159"));
	assert_non_null(strstr(b.data, "text/rfc822-headers"));
	buf_free(&b);
	dequeue_report_free(&d);
	m.hist = NULL;
	envelope_free(&m.env);
}

/* Items out of range, out of order, twice, none; no address; no uid. */
static void
test_refused(void **state)
{
	struct store_msg m;
	struct store_hist h[3];
	struct dequeue_item far[] = { { 3, REPORT_FAILED } };
	struct dequeue_item down[] = { { 2, REPORT_FAILED },
		{ 0, REPORT_FAILED } };
	struct dequeue_item twice[] = { { 1, REPORT_FAILED },
		{ 1, REPORT_FAILED } };
	struct dequeue_item one[] = { { 0, REPORT_FAILED } };
	struct dequeue_report_args a = args();
	struct dequeue_report d;

	(void)state;
	make_msg(&m, h);
	assert_int_equal(dequeue_report_prepare(&m, far, 1, &a, &d), -EINVAL);
	assert_int_equal(dequeue_report_prepare(&m, down, 2, &a, &d),
	    -EINVAL);
	assert_int_equal(dequeue_report_prepare(&m, twice, 2, &a, &d),
	    -EINVAL);
	assert_int_equal(dequeue_report_prepare(&m, one, 0, &a, &d), -EINVAL);
	a.to = "";
	assert_int_equal(dequeue_report_prepare(&m, one, 1, &a, &d), -EINVAL);
	a = args();
	m.env.uid[0] = '\0';
	assert_int_equal(dequeue_report_prepare(&m, one, 1, &a, &d), -EINVAL);
	assert_null(d.rcpt);
	assert_null(d.env.tag);
	m.hist = NULL;
	envelope_free(&m.env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prepare),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
