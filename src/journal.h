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
 */
#ifndef MP_JOURNAL_H
#define MP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define JOURNAL_REASON_MAX 1000	/* longer reasons are cut */
#define JOURNAL_STATUS_MAX 16	/* "5.1.1" and room */

enum journal_kind { JOURNAL_DEFERRED, JOURNAL_FAILED };

/* Who gave the answer of an attempt (the report's Diagnostic-Code type). */
enum journal_src { JOURNAL_PIPE, JOURNAL_RELAY, JOURNAL_ROUTER, JOURNAL_MTA };

/* One attempt record. */
struct journal_attempt {
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

/* The word of a kind / a source ("deferred", "pipe", ...). */
const char *journal_kind_name(enum journal_kind k);
const char *journal_src_name(enum journal_src s);

#endif
