/*
 * Unit tests for dequeue_plan.c: who is owed which report, table-driven
 * over NOTIFY, event, sender, DSN tag, copy-failure-reports and the
 * return-receipts classes; a recipient's report line from each journal
 * source; the DEQUEUER log line with hostile values.
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

#define S DEQUEUE_TO_SENDER
#define C DEQUEUE_TO_COPY
#define F NOTIFY_FAILURE
#define D NOTIFY_DELAY
#define OK NOTIFY_SUCCESS
#define NV NOTIFY_NEVER
#define ALL (NOTIFY_FAILURE | NOTIFY_DELAY | NOTIFY_SUCCESS)
#define CP "postmaster@Example.ORG"

/* Message kinds of the table. */
enum kind { K_NORMAL, K_NULL, K_DSN };

struct row {
	enum kind kind;
	unsigned notify;
	enum dequeue_event ev;
	const char *copy;
	const char *rcpt;
	unsigned want;
};

/* One envelope of the given kind with one recipient. */
static void
make(struct envelope *e, enum kind k, const char *rcpt, unsigned notify)
{
	envelope_init(e);
	e->tag = strdup(k == K_DSN ? "DSN" : "SMTP");
	e->from = strdup(k == K_NORMAL ? "alice@example.com" : "");
	assert_non_null(e->tag);
	assert_non_null(e->from);
	assert_int_equal(envelope_add_rcpt(e, rcpt, NULL, notify), 0);
}

static const struct row rows[] = {
	/* a normal sender, NOTIFY not given = FAILURE,DELAY */
	{ K_NORMAL, 0, DEQUEUE_EV_FAILED, NULL, "bob@x.org", S },
	{ K_NORMAL, 0, DEQUEUE_EV_FAILED, CP, "bob@x.org", S | C },
	{ K_NORMAL, 0, DEQUEUE_EV_DELAYED, CP, "bob@x.org", S },
	{ K_NORMAL, 0, DEQUEUE_EV_DELIVERED, CP, "bob@x.org", 0 },
	{ K_NORMAL, 0, DEQUEUE_EV_RELAYED, NULL, "bob@x.org", 0 },
	{ K_NORMAL, 0, DEQUEUE_EV_RELAYED_DSN, NULL, "bob@x.org", 0 },
	/* NEVER: nothing, not even the copy */
	{ K_NORMAL, NV, DEQUEUE_EV_FAILED, CP, "bob@x.org", 0 },
	{ K_NORMAL, NV, DEQUEUE_EV_DELAYED, CP, "bob@x.org", 0 },
	{ K_NORMAL, NV, DEQUEUE_EV_DELIVERED, CP, "bob@x.org", 0 },
	{ K_NORMAL, NV, DEQUEUE_EV_RELAYED, CP, "bob@x.org", 0 },
	{ K_NULL, NV, DEQUEUE_EV_FAILED, CP, "bob@x.org", 0 },
	/* each bit alone */
	{ K_NORMAL, F, DEQUEUE_EV_FAILED, NULL, "bob@x.org", S },
	{ K_NORMAL, F, DEQUEUE_EV_FAILED, "", "bob@x.org", S },
	{ K_NORMAL, F, DEQUEUE_EV_DELAYED, NULL, "bob@x.org", 0 },
	{ K_NORMAL, F, DEQUEUE_EV_DELIVERED, NULL, "bob@x.org", 0 },
	{ K_NORMAL, F, DEQUEUE_EV_RELAYED, NULL, "bob@x.org", 0 },
	{ K_NORMAL, D, DEQUEUE_EV_FAILED, CP, "bob@x.org", 0 },
	{ K_NORMAL, D, DEQUEUE_EV_DELAYED, CP, "bob@x.org", S },
	{ K_NORMAL, D, DEQUEUE_EV_DELIVERED, NULL, "bob@x.org", 0 },
	{ K_NORMAL, OK, DEQUEUE_EV_FAILED, CP, "bob@x.org", 0 },
	{ K_NORMAL, OK, DEQUEUE_EV_DELAYED, NULL, "bob@x.org", 0 },
	{ K_NORMAL, OK, DEQUEUE_EV_DELIVERED, NULL, "bob@x.org", S },
	{ K_NORMAL, OK, DEQUEUE_EV_RELAYED, CP, "bob@x.org", S },
	{ K_NORMAL, OK, DEQUEUE_EV_RELAYED_DSN, NULL, "bob@x.org", 0 },
	/* all */
	{ K_NORMAL, ALL, DEQUEUE_EV_FAILED, CP, "bob@x.org", S | C },
	{ K_NORMAL, ALL, DEQUEUE_EV_DELAYED, CP, "bob@x.org", S },
	{ K_NORMAL, ALL, DEQUEUE_EV_DELIVERED, CP, "bob@x.org", S },
	{ K_NORMAL, ALL, DEQUEUE_EV_RELAYED, CP, "bob@x.org", S },
	{ K_NORMAL, ALL, DEQUEUE_EV_RELAYED_DSN, CP, "bob@x.org", 0 },
	/* null sender: only the postmaster's copy of a failure */
	{ K_NULL, 0, DEQUEUE_EV_FAILED, NULL, "bob@x.org", 0 },
	{ K_NULL, 0, DEQUEUE_EV_FAILED, CP, "bob@x.org", C },
	{ K_NULL, ALL, DEQUEUE_EV_FAILED, CP, "bob@x.org", C },
	{ K_NULL, ALL, DEQUEUE_EV_DELAYED, CP, "bob@x.org", 0 },
	{ K_NULL, ALL, DEQUEUE_EV_DELIVERED, CP, "bob@x.org", 0 },
	{ K_NULL, ALL, DEQUEUE_EV_RELAYED, CP, "bob@x.org", 0 },
	/* a report: its failure to the copy address, once */
	{ K_DSN, 0, DEQUEUE_EV_FAILED, NULL, "bob@x.org", 0 },
	{ K_DSN, 0, DEQUEUE_EV_FAILED, CP, "bob@x.org", C },
	{ K_DSN, NV, DEQUEUE_EV_FAILED, CP, "bob@x.org", C },
	{ K_DSN, ALL, DEQUEUE_EV_FAILED, "", "bob@x.org", 0 },
	{ K_DSN, ALL, DEQUEUE_EV_DELAYED, CP, "bob@x.org", 0 },
	{ K_DSN, ALL, DEQUEUE_EV_DELIVERED, CP, "bob@x.org", 0 },
	{ K_DSN, ALL, DEQUEUE_EV_RELAYED, CP, "bob@x.org", 0 },
	{ K_DSN, ALL, DEQUEUE_EV_RELAYED_DSN, CP, "bob@x.org", 0 },
	/* the copy's own failure: the domain in any case, the local part
	 * exactly */
	{ K_DSN, 0, DEQUEUE_EV_FAILED, CP, "postmaster@Example.ORG", 0 },
	{ K_DSN, 0, DEQUEUE_EV_FAILED, CP, "postmaster@example.org", 0 },
	{ K_DSN, 0, DEQUEUE_EV_FAILED, CP, "Postmaster@example.org", C },
	{ K_DSN, 0, DEQUEUE_EV_FAILED, CP, "postmaster@example.org.x", C },
	{ K_DSN, 0, DEQUEUE_EV_FAILED, CP, "postmaste@example.org", C },
	{ K_DSN, 0, DEQUEUE_EV_FAILED, "postmaster", "postmaster", 0 },
	/* the copy address as a normal message's recipient: as any */
	{ K_NORMAL, 0, DEQUEUE_EV_FAILED, CP, "postmaster@example.org",
	  S | C },
};

/* Every row of the table under return-receipts everybody. */
static void
test_owed_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];
		struct dequeue_policy p = { RECEIPTS_EVERYBODY, w->copy };
		struct envelope e;
		enum report_action act = REPORT_DELAYED;
		unsigned send = 99;

		make(&e, w->kind, w->rcpt, w->notify);
		assert_int_equal(dequeue_owed(&e, 0, w->ev, &p, &send, &act),
			0);
		if (send != w->want)
			fail_msg("row %zu: send %u, want %u", i, send, w->want);
		assert_int_equal(act, w->ev == DEQUEUE_EV_FAILED ?
			REPORT_FAILED : w->ev == DEQUEUE_EV_DELAYED ?
			REPORT_DELAYED : w->ev == DEQUEUE_EV_DELIVERED ?
			REPORT_DELIVERED : REPORT_RELAYED);
		envelope_free(&e);
	}
}

/* Each return-receipts class against trusted and a local user. */
static void
test_owed_receipts(void **state)
{
	static const struct {
		enum return_receipts r;
		bool trusted;
		int64_t user;
		bool want;
	} t[] = {
		{ RECEIPTS_EVERYBODY, false, -1, true },
		{ RECEIPTS_EVERYBODY, true, -1, true },
		{ RECEIPTS_EVERYBODY, false, 1000, true },
		{ RECEIPTS_CLIENTS, false, -1, false },
		{ RECEIPTS_CLIENTS, true, -1, true },
		{ RECEIPTS_CLIENTS, false, 1000, true },
		{ RECEIPTS_CLIENTS, false, 0, true },
		{ RECEIPTS_AUTHENTICATED, false, -1, false },
		{ RECEIPTS_AUTHENTICATED, true, -1, false },
		{ RECEIPTS_AUTHENTICATED, false, 1000, true },
		{ RECEIPTS_AUTHENTICATED, true, 0, true },
		{ RECEIPTS_NOBODY, false, -1, false },
		{ RECEIPTS_NOBODY, true, -1, false },
		{ RECEIPTS_NOBODY, true, 1000, false },
	};
	static const enum dequeue_event evs[] = {
		DEQUEUE_EV_DELIVERED, DEQUEUE_EV_RELAYED,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		for (size_t j = 0; j < 2; j++) {
			struct dequeue_policy p = { t[i].r, CP };
			struct envelope e;
			enum report_action act;
			unsigned send = 99;

			make(&e, K_NORMAL, "bob@x.org", OK | F);
			e.trusted = t[i].trusted;
			e.user = t[i].user;
			assert_int_equal(dequeue_owed(&e, 0, evs[j], &p,
				&send, &act), 0);
			if (send != (t[i].want ? (unsigned)S : 0u))
				fail_msg("receipts row %zu ev %zu: %u", i, j,
					send);
			/* failures do not depend on the class */
			assert_int_equal(dequeue_owed(&e, 0,
				DEQUEUE_EV_FAILED, &p, &send, &act), 0);
			assert_int_equal(send, S | C);
			envelope_free(&e);
		}
}

/* Out-of-range recipients and bad events are refused. */
static void
test_owed_einval(void **state)
{
	struct dequeue_policy p = { RECEIPTS_EVERYBODY, NULL };
	struct envelope e;
	enum report_action act;
	unsigned send = 99;

	(void)state;
	make(&e, K_NORMAL, "bob@x.org", 0);
	assert_int_equal(dequeue_owed(&e, 1, DEQUEUE_EV_FAILED, &p, &send,
		&act), -EINVAL);
	assert_int_equal(send, 0);
	assert_int_equal(dequeue_owed(&e, 0, (enum dequeue_event)42, &p,
		&send, &act), -EINVAL);
	envelope_free(&e);
}

/* A journal record with the given source. */
static void
hist(struct store_hist *h, enum journal_src src, const char *status,
	char *reason)
{
	memset(h, 0, sizeof(*h));
	h->attempts = 3;
	h->last = 1700000000;
	h->next = 1700000600;
	h->kind = JOURNAL_DEFERRED;
	h->src = src;
	h->reply = 451;
	strcpy(h->status, status);
	h->reason = reason;
}

/* Each journal source gives its Diagnostic-Code type. */
static void
test_outcome_sources(void **state)
{
	static const struct {
		enum journal_src src;
		enum report_diag want;
	} t[] = {
		{ JOURNAL_RELAY, REPORT_DIAG_SMTP },
		{ JOURNAL_PIPE, REPORT_DIAG_PROGRAM },
		{ JOURNAL_ROUTER, REPORT_DIAG_MTA },
		{ JOURNAL_MTA, REPORT_DIAG_MTA },
	};
	char reason[] = "relay said: 550 5.1.1 no such user";
	struct envelope e;
	struct store_hist h;
	struct report_rcpt o;

	(void)state;
	envelope_init(&e);
	assert_int_equal(envelope_add_rcpt(&e, "a@x.org", NULL, 0), 0);
	assert_int_equal(envelope_add_rcpt(&e, "b@x.org", "rfc822;B@x.org",
		0), 0);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		hist(&h, t[i].src, "5.1.1", reason);
		assert_int_equal(dequeue_rcpt_outcome(&e, 1, &h,
			REPORT_FAILED, 1700099999, &o), 0);
		assert_ptr_equal(o.addr, e.rcpt[1].addr);
		assert_ptr_equal(o.orcpt, e.rcpt[1].orcpt);
		assert_int_equal(o.action, REPORT_FAILED);
		assert_string_equal(o.status, "5.1.1");
		assert_int_equal(o.diag_type, t[i].want);
		assert_ptr_equal(o.diag, reason);
		assert_null(o.remote_mta);
		assert_int_equal(o.last_attempt, 1700000000);
		assert_int_equal(o.will_retry_until, -1);
	}
	/* delayed keeps will_retry_until */
	hist(&h, JOURNAL_PIPE, "4.3.0", reason);
	assert_int_equal(dequeue_rcpt_outcome(&e, 0, &h, REPORT_DELAYED,
		1700099999, &o), 0);
	assert_null(o.orcpt);
	assert_string_equal(o.status, "4.3.0");
	assert_int_equal(o.will_retry_until, 1700099999);
	/* no reason: no diagnostic */
	hist(&h, JOURNAL_RELAY, "4.4.1", NULL);
	assert_int_equal(dequeue_rcpt_outcome(&e, 0, &h, REPORT_DELAYED,
		-1, &o), 0);
	assert_int_equal(o.diag_type, REPORT_DIAG_NONE);
	assert_null(o.diag);
	/* no record: no status (the builder's X.0.0), no time */
	assert_int_equal(dequeue_rcpt_outcome(&e, 0, NULL, REPORT_FAILED,
		5, &o), 0);
	assert_null(o.status);
	assert_int_equal(o.last_attempt, -1);
	assert_int_equal(o.will_retry_until, -1);
	assert_int_equal(o.diag_type, REPORT_DIAG_NONE);
	/* delivered / relayed: 2.0.0, an earlier deferral is not quoted */
	assert_int_equal(dequeue_rcpt_outcome(&e, 0, NULL, REPORT_DELIVERED,
		5, &o), 0);
	assert_string_equal(o.status, "2.0.0");
	hist(&h, JOURNAL_RELAY, "4.4.1", reason);
	assert_int_equal(dequeue_rcpt_outcome(&e, 0, &h, REPORT_RELAYED,
		5, &o), 0);
	assert_string_equal(o.status, "2.0.0");
	assert_int_equal(o.action, REPORT_RELAYED);
	assert_int_equal(o.diag_type, REPORT_DIAG_NONE);
	assert_int_equal(o.will_retry_until, -1);
	/* refused */
	assert_int_equal(dequeue_rcpt_outcome(&e, 2, &h, REPORT_FAILED, 5,
		&o), -EINVAL);
	assert_int_equal(dequeue_rcpt_outcome(&e, 0, &h,
		(enum report_action)9, 5, &o), -EINVAL);
	envelope_free(&e);
}

/* The DEQUEUER line, plain and with hostile values. */
static void
test_log_format(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(dequeue_log_format("Q1", "bob@x.org", "failed",
		"550 5.1.1 no such user", NULL, &b), 0);
	assert_string_equal(b.data, "id=Q1 rcpt=bob@x.org result=failed "
		"reason=\"550 5.1.1 no such user\"");
	buf_reset(&b);
	assert_int_equal(dequeue_log_format("Q1", "\"a b\"@x.org",
		"report", "say \"hi\"\\\r\nid=evil x=y", "Q2", &b), 0);
	assert_string_equal(b.data, "id=Q1 rcpt=\"\\\"a b\\\"@x.org\" "
		"result=report reason=\"say \\\"hi\\\"\\\\\\x0d\\x0aid=evil "
		"x=y\" report=Q2");
	/* appended after text: with the separating space; NULL is "-" */
	buf_reset(&b);
	buf_puts(&b, "outcome");
	assert_int_equal(dequeue_log_format("Q1", "b@x", "delivered", NULL,
		"", &b), 0);
	assert_string_equal(b.data, "outcome id=Q1 rcpt=b@x "
		"result=delivered reason=- report=\"\"");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_owed_table),
		cmocka_unit_test(test_owed_receipts),
		cmocka_unit_test(test_owed_einval),
		cmocka_unit_test(test_outcome_sources),
		cmocka_unit_test(test_log_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
