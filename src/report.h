/*
 * report: the delivery report builder (RFC 3464 delivery status
 * notifications in an RFC 6522 multipart/report, RFC 3834
 * Auto-Submitted). A pure function from the envelope's DSN values, the
 * recipients' outcomes and the stored message's first bytes to the
 * report's bytes; docs/REPORTS.md "The report's format" says what each
 * part holds.
 */
#ifndef MP_REPORT_H
#define MP_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define REPORT_TEXT_CAP 2048	/* default cap on a quoted diagnostic */
#define REPORT_HEADER_MIN 4096	/* the returned header's cap is at least */

enum report_action {
	REPORT_FAILED, REPORT_DELAYED, REPORT_DELIVERED, REPORT_RELAYED,
};

enum report_diag {
	REPORT_DIAG_NONE, REPORT_DIAG_SMTP, REPORT_DIAG_PROGRAM,
	REPORT_DIAG_MTA,
};

struct report_rcpt {
	const char *orcpt;	/* DSN ORCPT as stored in the envelope
				   (xtext, "rfc822;a@b"), or NULL */
	const char *addr;	/* the recipient as received
				   (Final-Recipient: rfc822;addr) */
	enum report_action action;
	const char *status;	/* RFC 3463 "5.1.1"; NULL or bad: the
				   action's X.0.0 */
	enum report_diag diag_type;
	const char *diag;	/* SMTP: the reply "550 5.1.1 text";
				   PROGRAM: e.g. "exit 67 (EX_NOUSER): text";
				   MTA: our own text; NULL = none */
	const char *remote_mta;	/* relay host name, or NULL */
	int64_t last_attempt;	/* unix time, -1 = none */
	int64_t will_retry_until;	/* for REPORT_DELAYED, -1 = none */
};

enum report_return { REPORT_RETURN_HEADERS, REPORT_RETURN_FULL };

struct report_in {
	const char *reporting_mta;	/* [server] hostname */
	const char *to;		/* the report's recipient (the original
				   return-path; never empty) */
	const char *envid;	/* DSN ENVID as stored (xtext) or NULL */
	int64_t arrival;	/* the original's submit time */
	int64_t now;		/* Date: of the report */
	const char *message_id;	/* the report's Message-ID without <> */
	const struct report_rcpt *rcpt;
	size_t nrcpt;
	enum report_return ret;	/* after [reports] return and RET; only a
				   report with a failed recipient returns
				   the whole message */
	uint64_t return_size_limit;	/* above it only the header */
	const char *msg;	/* the stored message's first bytes (LF) */
	size_t msg_len;
	uint64_t msg_total;	/* its whole size (msg_len may be less) */
	size_t text_cap;	/* cap on each quoted diagnostic; 0 =
				   REPORT_TEXT_CAP */
};

/*
 * How many bytes of the stored message report_build needs for ret and
 * the limit: the whole message when it is returned, else the header's
 * cap (return_size_limit, at least REPORT_HEADER_MIN), never more than
 * msg_total.
 */
uint64_t report_read_limit(enum report_return ret,
	uint64_t return_size_limit, uint64_t msg_total);

/*
 * The return mode from [reports] return (enum reports_return in
 * config.h) and the envelope's DSN RET ("FULL", "HDRS" or NULL):
 * always-* decide alone, else RET wins, else headers / body.
 */
enum report_return report_return_mode(int config_return,
	const char *dsn_ret);

/*
 * Append the whole report message (header and body, LF line ends) to
 * out. 0, -ENOMEM, or -EINVAL with *why on a bad input (no recipient, a
 * missing or unusable host, return-path, Message-ID or address); out is
 * left as it was on failure.
 */
int report_build(const struct report_in *in, struct buf *out,
	const char **why);

#endif
