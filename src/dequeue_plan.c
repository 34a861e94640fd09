/*
 * dequeue_plan: the rules of who is owed which report (dequeue.h, and
 * docs/REPORTS.md "Who gets which report"), the report line of a
 * recipient's outcome, and the DEQUEUER log line. Promises: pure
 * functions of their arguments, no I/O, no globals; the rules live here
 * and nowhere else.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "address.h"
#include "dequeue.h"
#include "log.h"

/* Is addr the address cp (local part exact, domain in any case)? */
static bool
same_mailbox(const char *addr, const char *cp)
{
	const char *a = strrchr(addr, '@'), *c = strrchr(cp, '@');
	size_t al = a ? (size_t)(a - addr) : strlen(addr);
	size_t cl = c ? (size_t)(c - cp) : strlen(cp);

	if (al != cl || memcmp(addr, cp, al) != 0)
		return false;
	return address_domain_eq(a ? a + 1 : NULL, c ? c + 1 : NULL);
}

/* Does [reports] return-receipts grant e a success report? */
static bool
receipts_apply(enum return_receipts r, const struct envelope *e)
{
	switch (r) {
	case RECEIPTS_EVERYBODY:
		return true;
	case RECEIPTS_CLIENTS:
		return e->trusted || e->user >= 0;
	case RECEIPTS_AUTHENTICATED:
		return e->user >= 0;
	case RECEIPTS_NOBODY:
		break;
	}
	return false;
}

/* The report action of an event; -EINVAL for a bad one. */
static int
event_action(enum dequeue_event ev, enum report_action *out)
{
	switch (ev) {
	case DEQUEUE_EV_FAILED:
		*out = REPORT_FAILED;
		return 0;
	case DEQUEUE_EV_DELAYED:
		*out = REPORT_DELAYED;
		return 0;
	case DEQUEUE_EV_DELIVERED:
		*out = REPORT_DELIVERED;
		return 0;
	case DEQUEUE_EV_RELAYED:
	case DEQUEUE_EV_RELAYED_DSN:
		*out = REPORT_RELAYED;
		return 0;
	}
	return -EINVAL;
}

/* Which reports recipient rcpt is owed for ev (rules in dequeue.h). */
int
dequeue_owed(const struct envelope *e, size_t rcpt,
	enum dequeue_event ev, const struct dequeue_policy *p,
	unsigned *send, enum report_action *action)
{
	const char *cp = p->copy_failure_reports;
	bool copy = cp && *cp;
	unsigned n;
	int r;

	*send = 0;
	if (rcpt >= e->nrcpt)
		return -EINVAL;
	if ((r = event_action(ev, action)) < 0)
		return r;
	n = e->rcpt[rcpt].notify;
	if (e->tag && strcmp(e->tag, "DSN") == 0) {
		if (ev == DEQUEUE_EV_FAILED && copy &&
		    !same_mailbox(e->rcpt[rcpt].addr, cp))
			*send = DEQUEUE_TO_COPY;
		return 0;
	}
	if (n & NOTIFY_NEVER)
		return 0;
	if (e->from == NULL || *e->from == '\0') {
		if (ev == DEQUEUE_EV_FAILED && copy)
			*send = DEQUEUE_TO_COPY;
		return 0;
	}
	if (n == 0)
		n = NOTIFY_FAILURE | NOTIFY_DELAY;
	switch (ev) {
	case DEQUEUE_EV_FAILED:
		if (n & NOTIFY_FAILURE)
			*send = DEQUEUE_TO_SENDER |
			    (copy ? DEQUEUE_TO_COPY : 0);
		break;
	case DEQUEUE_EV_DELAYED:
		if (n & NOTIFY_DELAY)
			*send = DEQUEUE_TO_SENDER;
		break;
	case DEQUEUE_EV_DELIVERED:
	case DEQUEUE_EV_RELAYED:
		if ((n & NOTIFY_SUCCESS) && receipts_apply(p->receipts, e))
			*send = DEQUEUE_TO_SENDER;
		break;
	case DEQUEUE_EV_RELAYED_DSN:
		break;
	}
	return 0;
}

/* The Diagnostic-Code type of the source of a journal record. */
static enum report_diag
src_diag(enum journal_src s)
{
	switch (s) {
	case JOURNAL_RELAY:
		return REPORT_DIAG_SMTP;
	case JOURNAL_PIPE:
		return REPORT_DIAG_PROGRAM;
	case JOURNAL_ROUTER:
	case JOURNAL_MTA:
		break;
	}
	return REPORT_DIAG_MTA;
}

/* Fill out with recipient i's report line (see dequeue.h). */
int
dequeue_rcpt_outcome(const struct envelope *e, size_t i,
	const struct store_hist *h, enum report_action action,
	int64_t will_retry_until, struct report_rcpt *out)
{
	bool done = action == REPORT_DELIVERED || action == REPORT_RELAYED;

	if (i >= e->nrcpt || (!done && action != REPORT_FAILED &&
	    action != REPORT_DELAYED))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->orcpt = e->rcpt[i].orcpt;
	out->addr = e->rcpt[i].addr;
	out->action = action;
	out->diag_type = REPORT_DIAG_NONE;
	out->remote_mta = NULL;
	out->last_attempt = -1;
	out->will_retry_until = action == REPORT_DELAYED ?
	    will_retry_until : -1;
	if (done || h == NULL) {
		out->status = done ? "2.0.0" : NULL;
		return 0;
	}
	out->status = h->status[0] ? h->status : NULL;
	out->last_attempt = h->last;
	if (h->reason && *h->reason) {
		out->diag_type = src_diag(h->src);
		out->diag = h->reason;
	}
	return 0;
}

/* Append the DEQUEUER key=value line (see dequeue.h). */
int
dequeue_log_format(const char *id, const char *rcpt,
	const char *result, const char *reason, const char *report_id,
	struct buf *out)
{
	size_t start = out->len;
	int r;

	if ((r = log_kv(out, "id", id)) == 0 &&
	    (r = log_kv(out, "rcpt", rcpt)) == 0 &&
	    (r = log_kv(out, "result", result)) == 0 &&
	    (r = log_kv(out, "reason", reason)) == 0 && report_id)
		r = log_kv(out, "report", report_id);
	if (r < 0) {
		if (out->data) {
			out->len = start;
			out->data[start] = '\0';
		}
		return r;
	}
	if (start == 0) {	/* log_kv's leading space */
		memmove(out->data, out->data + 1, out->len);
		out->len--;
	}
	return 0;
}
