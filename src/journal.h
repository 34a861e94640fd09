/*
 * journal: the records appended to a queue file after its message
 * (docs/QUEUE.md "Journal"): one text line per delivery attempt that did
 * not end in a delivery, so that a restart keeps each recipient's retry
 * schedule and a message keeps its history. Pure: formats and parses
 * bytes, no I/O.
 *
 *   attempt R T N KIND NEXT SRC REPLY STATUS REASON
 *
 * R recipient index, T unix time of the attempt, N its attempt number,
 * KIND `deferred` or `failed`, NEXT unix time of the next attempt (`-`
 * when none), SRC who answered (`pipe`, `relay`, `router`, `mta`), REPLY
 * a three-digit SMTP code, STATUS an RFC 3463 code, REASON the rest of
 * the line (printable, at most JOURNAL_REASON_MAX bytes, may be empty).
 *
 *   reported R T ACTION REPORT
 *
 * R recipient index, T unix time, ACTION the outcome the sender was told
 * of (`failed`, `delayed`, `delivered`, `relayed`), REPORT the queued
 * report's envelope uid, or `-` when no report is owed for it (NOTIFY,
 * a null return-path, a report's own failure dropped): once written, the
 * outcome is settled and never reported again, after any restart.
 */
#ifndef MP_JOURNAL_H
#define MP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define JOURNAL_REASON_MAX 1000	/* longer reasons are cut */
#define JOURNAL_STATUS_MAX 16	/* "5.1.1" and room */
#define JOURNAL_UID_LEN 32	/* an envelope uid: lower-case hex */

enum journal_kind { JOURNAL_DEFERRED, JOURNAL_FAILED };

/* Who gave the answer of an attempt (the report's Diagnostic-Code type). */
enum journal_src { JOURNAL_PIPE, JOURNAL_RELAY, JOURNAL_ROUTER, JOURNAL_MTA };

/* Which record a line is. */
enum journal_type { JOURNAL_ATTEMPT, JOURNAL_REPORTED };

/* What a `reported` record settles (bits of store_hist.reported). */
enum journal_action {
	JOURNAL_ACT_FAILED, JOURNAL_ACT_DELAYED, JOURNAL_ACT_DELIVERED,
	JOURNAL_ACT_RELAYED,
};

/*
 * One record. type JOURNAL_ATTEMPT (0) uses every field but action and
 * report; JOURNAL_REPORTED uses only rcpt, time, action and report.
 */
struct journal_attempt {
	enum journal_type type;
	size_t rcpt;
	int64_t time;
	unsigned attempt;
	enum journal_kind kind;
	int64_t next;		/* -1: none */
	enum journal_src src;
	int reply;		/* 200..599 */
	char status[JOURNAL_STATUS_MAX];
	const char *reason;	/* formatting: any text (cut, cleaned);
				   parsing: points into the parsed bytes,
				   reason_len bytes, not NUL-terminated */
	size_t reason_len;
	enum journal_action action;	/* reported: the outcome */
	char report[JOURNAL_UID_LEN + 1];	/* reported: the report's
						   uid, "" = none owed */
};

/*
 * Append a's record line (with its LF) to out. Control bytes in the
 * reason become spaces, a reason over JOURNAL_REASON_MAX is cut (at a
 * UTF-8 boundary). -EINVAL when a value could not be parsed back.
 */
int journal_format(const struct journal_attempt *a, struct buf *out);

/* Called for every record, in file order; a negative return stops. */
typedef int (*journal_cb)(void *arg, const struct journal_attempt *a);

/*
 * Parse the journal p[0..n) of a message with nrcpt recipients. Every
 * complete line must be a valid record (else -EBADMSG, why and the
 * 1-based line); a last line without its LF is a write cut short by a
 * crash: it is not a record, and *used (the bytes of complete records)
 * stops before it.
 */
int journal_parse(const char *p, size_t n, size_t nrcpt, journal_cb cb,
	void *arg, size_t *used, const char **why, unsigned *line);

/* The word of a kind / a source / an action ("deferred", "pipe", ...). */
const char *journal_kind_name(enum journal_kind k);
const char *journal_src_name(enum journal_src s);
const char *journal_action_name(enum journal_action a);

#endif
