/*
 * envelope: the queue file's envelope (docs/QUEUE.md). A queue file is the
 * envelope (text lines, none empty, LF-terminated), one empty line, then
 * the RFC 5322 message with LF line ends. The envelope is versioned and
 * strictly parsed: first line "mailpipe-queue 1", then one record a line
 * "key value", then "end". Unknown keys, duplicate single-valued keys,
 * CR/NUL/control bytes in values, a missing "end" or missing required keys
 * make the file corrupt. Each recipient line has its state byte at a known
 * offset so the store can overwrite it in place (P -> D or F) and fsync.
 * Pure: no I/O, no globals.
 */
#ifndef MP_ENVELOPE_H
#define MP_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define ENVELOPE_VERSION 1
#define ENVELOPE_UID_LEN 32	/* lower-case hex characters */
#define ENVELOPE_PAD_MIN 6	/* the shortest pad record: "pad -" LF */

enum rcpt_state {
	RCPT_PENDING = 'P',
	RCPT_DELIVERED = 'D',
	RCPT_FAILED = 'F',
};

enum rcpt_notify {		/* RFC 3461 NOTIFY; 0 = not given */
	NOTIFY_NEVER = 1,
	NOTIFY_SUCCESS = 2,
	NOTIFY_FAILURE = 4,
	NOTIFY_DELAY = 8,
};

struct env_rcpt {
	char *addr;		/* canonical address as received */
	char *orcpt;		/* DSN ORCPT "rfc822;..." (xtext), or NULL */
	unsigned notify;	/* NOTIFY_* bits */
	char state;		/* enum rcpt_state */
	size_t state_off;	/* file offset of the state byte */
};

struct envelope {
	char uid[ENVELOPE_UID_LEN + 1];	/* stable across renames/imports */
	char *tag;		/* submit tag: SMTP, PIPE, DSN, ... ([A-Z]+) */
	int64_t submitted;	/* unix time of submission */
	char *from;		/* return-path; "" = null return-path */
	int64_t user;		/* local submitting uid, -1 = none */
	char *client;		/* SMTP client address, or NULL */
	char *helo;		/* SMTP HELO/EHLO name, or NULL */
	bool trusted;		/* from a trusted source */
	char *ret;		/* DSN RET: "FULL", "HDRS" or NULL */
	char *envid;		/* DSN ENVID (xtext) or NULL */
	char *source;		/* e.g. "Submitted/x.sub 64769:1234" or NULL */
	char *report_for;	/* a delivery report: "UID R,R,..." the
				   original's uid and the recipients it
				   reports on (docs/QUEUE.md), or NULL */
	uint64_t size;		/* bytes of message after the empty line */
	struct env_rcpt *rcpt;
	size_t nrcpt;
	size_t header_len;	/* bytes up to and including the empty line */
};

/* Zero e (uid empty, user -1). */
void envelope_init(struct envelope *e);
/* Add a pending recipient (copies strings). */
int envelope_add_rcpt(struct envelope *e, const char *addr,
	const char *orcpt, unsigned notify);
/*
 * Append the envelope text (through "end\n" and the empty line) to out,
 * starting at file offset 0 == out->len on entry; sets header_len and
 * every rcpt state_off relative to the start of the envelope. Fails
 * (-EINVAL) on a value the parser would refuse (CR/LF/NUL/control bytes,
 * empty uid, empty recipient list, bad tag).
 */
int envelope_format(struct envelope *e, struct buf *out);
/*
 * As envelope_format, but the envelope is exactly total bytes (header_len
 * == total): an optional "pad ---" record before "end" fills the gap left
 * by a "size" shorter than the one reserved (streamed commits, QUEUE.md).
 * -ERANGE when total is shorter than the envelope or leaves a gap smaller
 * than ENVELOPE_PAD_MIN; out is then as it was.
 */
int envelope_format_padded(struct envelope *e, size_t total, struct buf *out);
/*
 * The bytes a queue file must leave for e's envelope when the message
 * size is not known yet: the envelope with the longest size (20 digits)
 * plus ENVELOPE_PAD_MIN, so envelope_format_padded fits it exactly for
 * every size. e's values must be final (-EINVAL as envelope_format).
 */
int envelope_reserve(struct envelope *e, size_t *out);
/*
 * Parse the envelope at the start of data. Returns 0 when complete (then
 * e->header_len says where the message starts), -EAGAIN when data ends
 * before the empty line that ends the envelope (read more and call
 * again), -EINVAL when the envelope is corrupt (*why constant text,
 * *line = 1-based line number). The parser checks nothing about the
 * message after the envelope. e need not be initialised (it must own
 * nothing): it is filled on success and left empty otherwise.
 */
int envelope_parse(const char *data, size_t len, struct envelope *e,
	const char **why, unsigned *line);
/* Free everything e owns and re-init it. */
void envelope_free(struct envelope *e);
/* Number of recipients still RCPT_PENDING. */
size_t envelope_pending(const struct envelope *e);
/* Parse "SUCCESS,FAILURE" / "NEVER" (RFC 3461) into bits; -EINVAL. */
int envelope_notify_parse(const char *s, unsigned *bits);
/* Fill uid with 32 random lower-case hex characters (getrandom). */
int envelope_new_uid(char uid[ENVELOPE_UID_LEN + 1]);

#endif
