/*
 * dequeue_build: a report about some recipients of a queued message, as a
 * new queue message (docs/REPORTS.md "Each report exactly once"): its
 * envelope (tag DSN, null return-path, the one recipient it goes to,
 * report-for naming the original and its recipients) and the report
 * builder's input (report.h) from the original's envelope and journal.
 * Promises: pure (no I/O, no clock, no randomness: the caller gives the
 * time and the Message-ID); the report_in points into the original's
 * store_msg, the given message bytes and the struct itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dequeue.h"

/* "UID R,R,..." for the report-for record. */
static int
report_for(const struct store_msg *m, const struct dequeue_item *it,
	size_t n, struct buf *out)
{
	int r = buf_printf(out, "%s ", m->env.uid);

	for (size_t i = 0; r == 0 && i < n; i++)
		r = buf_printf(out, i ? ",%zu" : "%zu", it[i].rcpt);
	return r;
}

/* Check the items: in range, ascending, no recipient twice. */
static bool
items_ok(const struct store_msg *m, const struct dequeue_item *it, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (it[i].rcpt >= m->env.nrcpt ||
		    (i > 0 && it[i].rcpt <= it[i - 1].rcpt))
			return false;
	return n > 0;
}

/* Build the report's envelope and builder input; see dequeue.h. */
int
dequeue_report_prepare(const struct store_msg *m,
	const struct dequeue_item *it, size_t n,
	const struct dequeue_report_args *a, struct dequeue_report *out)
{
	struct buf rf = BUF_INIT;
	int r;

	memset(out, 0, sizeof(*out));
	envelope_init(&out->env);
	if (m == NULL || a == NULL || a->to == NULL || a->to[0] == '\0' ||
	    !items_ok(m, it, n) || m->env.uid[0] == '\0')
		return -EINVAL;
	if ((out->rcpt = calloc(n, sizeof(*out->rcpt))) == NULL)
		return -ENOMEM;
	out->nrcpt = n;
	for (size_t i = 0; i < n; i++) {
		const struct store_hist *h = m->hist ? &m->hist[it[i].rcpt] :
			NULL;
		int64_t until = it[i].action == REPORT_DELAYED ?
			m->env.submitted + (int64_t)a->max_lifetime_s : -1;

		if ((r = dequeue_rcpt_outcome(&m->env, it[i].rcpt, h,
		    it[i].action, until, &out->rcpt[i])) < 0)
			goto fail;
	}
	r = -ENOMEM;
	if ((out->env.tag = strdup("DSN")) == NULL ||
	    (out->env.from = strdup("")) == NULL)
		goto fail;
	out->env.submitted = a->now;
	out->env.trusted = true;
	if ((r = report_for(m, it, n, &rf)) < 0)
		goto fail;
	out->env.report_for = rf.data;	/* taken */
	rf = (struct buf)BUF_INIT;
	/* NEVER: a DSN-capable smarthost must not report on a report */
	if ((r = envelope_add_rcpt(&out->env, a->to, NULL, NOTIFY_NEVER)) < 0)
		goto fail;
	out->in = (struct report_in){
		.reporting_mta = a->hostname,
		.to = a->to,
		.envid = m->env.envid,
		.arrival = m->env.submitted,
		.now = a->now,
		.message_id = a->message_id,
		.rcpt = out->rcpt,
		.nrcpt = n,
		.ret = report_return_mode(a->config_return, m->env.ret),
		.return_size_limit = a->return_size_limit,
		.msg = a->msg,
		.msg_len = a->msg_len,
		.msg_total = m->msg_len,
	};
	return 0;
fail:
	buf_free(&rf);
	dequeue_report_free(out);
	return r;
}

/* Free what dequeue_report_prepare made. */
void
dequeue_report_free(struct dequeue_report *d)
{
	envelope_free(&d->env);
	free(d->rcpt);
	d->rcpt = NULL;
	d->nrcpt = 0;
}
