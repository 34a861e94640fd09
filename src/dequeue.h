/*
 * dequeue: the dequeuer's decisions (docs/REPORTS.md "Who gets which
 * report"). dequeue_plan.c holds the pure part: who is owed which report
 * for a recipient's outcome, the report line of a recipient's outcome,
 * and the DEQUEUER log line. No I/O, no globals.
 *
 * Rules of dequeue_owed, first match wins:
 * - A report (a message with tag "DSN", sent from ""): a FAILED
 *   recipient of it gets a failure report to copy-failure-reports only
 *   (TO_COPY), when that is set and the failed recipient is not the
 *   copy-failure-reports address itself (local part compared exactly,
 *   domain case-insensitively). Every other event of a report: nothing.
 *   The chain stops at two reports: no loop is possible.
 * - NOTIFY=NEVER: nothing at all, not even the copy.
 * - A null return-path (not a report): FAILED goes TO_COPY when
 *   copy-failure-reports is set (the postmaster hears of it, as
 *   Postfix's 2bounce notice), else nothing; other events: nothing.
 * - NOTIFY not given (0) means FAILURE,DELAY (RFC 3461 section 4.1).
 *   FAILED: FAILURE set -> TO_SENDER, plus TO_COPY when set.
 *   DELAYED: DELAY set -> TO_SENDER (the caller makes it once per
 *   recipient, after [reports] delay-warning).
 *   DELIVERED / RELAYED: SUCCESS set and [reports] return-receipts
 *   applies to the message -> TO_SENDER.
 *   RELAYED_DSN: nothing (the DSN-capable smarthost reports from now).
 * - return-receipts: everybody; clients = a trusted source or a local
 *   submission; authenticated = a local submission (the SPEC decision,
 *   as enqueue-async); nobody.
 */
#ifndef MP_DEQUEUE_H
#define MP_DEQUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "report.h"
#include "store.h"

enum dequeue_event {
	DEQUEUE_EV_FAILED,	/* the recipient became final failed */
	DEQUEUE_EV_DELAYED,	/* still deferred, past delay-warning */
	DEQUEUE_EV_DELIVERED,	/* a program / local delivery took it */
	DEQUEUE_EV_RELAYED,	/* the smarthost took it, no DSN there */
	DEQUEUE_EV_RELAYED_DSN,	/* the smarthost took it and DSN, with
				   our NOTIFY/ORCPT passed on */
};

enum dequeue_send {		/* bits */
	DEQUEUE_TO_SENDER = 1,	/* a report to the return-path */
	DEQUEUE_TO_COPY = 2,	/* to [reports] copy-failure-reports */
};

struct dequeue_policy {
	enum return_receipts receipts;	/* config.h */
	const char *copy_failure_reports;	/* NULL/"" = none */
};

/*
 * Which reports recipient rcpt of e is owed for event ev under p (the
 * rules above): *send gets DEQUEUE_TO_* bits (0 = no report), *action
 * the report's action for that recipient. 0, or -EINVAL for rcpt out of
 * range or a bad event.
 */
int dequeue_owed(const struct envelope *e, size_t rcpt,
	enum dequeue_event ev, const struct dequeue_policy *p,
	unsigned *send, enum report_action *action);

/*
 * Fill out (pointers into e and h only, nothing allocated) with the
 * report line of recipient i of e: orcpt and addr from the envelope;
 * for failed / delayed, status, reason and time from h, its last
 * journal record (NULL: none), the Diagnostic-Code type from h->src
 * (relay: smtp, pipe: program, router / mta: ours); delivered / relayed
 * say 2.0.0 and no diagnostic (a record there is an earlier deferral).
 * remote_mta is NULL (the store does not keep it); will_retry_until is
 * kept for delayed only. 0 or -EINVAL (i out of range).
 */
int dequeue_rcpt_outcome(const struct envelope *e, size_t i,
	const struct store_hist *h, enum report_action action,
	int64_t will_retry_until, struct report_rcpt *out);

/* One recipient a report is about, and what it says of it. */
struct dequeue_item {
	size_t rcpt;			/* index in the original */
	enum report_action action;
};

/* What a report needs besides the original. */
struct dequeue_report_args {
	const char *to;			/* the report's recipient (the
					   return-path or the copy address) */
	const char *hostname;		/* [server] hostname */
	const char *message_id;		/* the report's, without <> */
	int64_t now;
	int config_return;		/* [reports] return */
	uint64_t return_size_limit;	/* [reports] return-size-limit */
	uint64_t max_lifetime_s;	/* for Will-Retry-Until */
	const char *msg;		/* the original's first bytes (at
					   least report_read_limit of them) */
	size_t msg_len;
};

/* A report ready to build (report_build(&in, ...)) and commit (env). */
struct dequeue_report {
	struct envelope env;		/* tag DSN, from "", the one
					   recipient (NOTIFY=NEVER),
					   report-for "UID R,R,..." */
	struct report_rcpt *rcpt;	/* nrcpt lines, into the original */
	size_t nrcpt;
	struct report_in in;		/* points into the original, args
					   and rcpt */
};

/*
 * Prepare the report about items it[0..n) (ascending recipient indices,
 * each once) of m. The envelope's uid is left empty (the commit makes
 * one). 0, -EINVAL (bad items, no recipient to send to, an original
 * without uid) or -ENOMEM; out is empty on error.
 */
int dequeue_report_prepare(const struct store_msg *m,
	const struct dequeue_item *it, size_t n,
	const struct dequeue_report_args *a, struct dequeue_report *out);
/* Free a prepared report (env, lines). */
void dequeue_report_free(struct dequeue_report *d);

/*
 * Append "id=ID rcpt=ADDR result=RESULT reason=REASON" and, when
 * report_id is not NULL, " report=RID" to out, each value quoted by
 * log_kv (log.h); a leading space only when out was not empty. 0 or
 * -ENOMEM (out is then as it was).
 */
int dequeue_log_format(const char *id, const char *rcpt,
	const char *result, const char *reason, const char *report_id,
	struct buf *out);

#endif
