/*
 * msghdr: the RFC 5322 header block of a message held in memory with LF
 * line ends: splitting it into fields (with their folded continuation
 * lines), reading unfolded values, extracting address lists (GMime), and
 * rewriting the header by dropping and adding fields while every other
 * byte stays as it was. Also the Submitted-folder rules (SPEC "Submitted
 * folder") as one pure function. No I/O, no globals (GMime must have been
 * initialised with g_mime_init() by the program).
 */
#ifndef MP_MSGHDR_H
#define MP_MSGHDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "strv.h"

/* The largest header block (blank line included) msghdr_submission takes. */
#define MSGHDR_MAX_HEADER ((size_t)1024 * 1024)

struct msghdr_field {
	size_t off;		/* start of the field name in the message */
	size_t len;		/* bytes through the final LF of the field */
	size_t name_len;	/* bytes of the name (before ':') */
};

/* (Not "struct msghdr": that name belongs to <sys/socket.h>.) */
struct msghdr_block {
	struct msghdr_field *v;
	size_t n;
	size_t body_off;	/* offset of the body (after the empty line),
				   or len when the message has no body */
};

#define MSGHDR_INIT { NULL, 0, 0 }

/*
 * Split the header of msg (LF line ends; the caller converts CRLF first, a
 * CR left before an LF is kept as part of the line). Errors (-EINVAL,
 * *why constant): NUL byte in the header, a header line that is neither a
 * field ("name:" with printable name chars 33-126 except ':') nor a
 * continuation (starting with space/tab), a continuation before any field,
 * a header with no fields. A message with no empty line is all header.
 */
int msghdr_parse(const char *msg, size_t len, struct msghdr_block *h,
	const char **why);
void msghdr_free(struct msghdr_block *h);
/* Is field f named name (ASCII case-insensitive)? */
bool msghdr_is(const char *msg, const struct msghdr_field *f,
	const char *name);
/* Number of fields named name. */
size_t msghdr_count(const char *msg, const struct msghdr_block *h,
	const char *name);
/* Index of the first field named name, or -1. */
long msghdr_find(const char *msg, const struct msghdr_block *h,
	const char *name);
/* Unfolded value (CR/LF of folds removed, leading white space trimmed). */
int msghdr_value(const char *msg, const struct msghdr_field *f, char **out);
/*
 * Addresses (addr-spec text, groups flattened, display names dropped) of an
 * address-list header value, parsed with GMime. Unqualified addresses get
 * "@default_domain" when default_domain is not NULL. Each address is
 * checked with address_parse and stored canonical. -EINVAL when the list
 * holds something that is not an address; out is then as it was.
 */
int msghdr_addresses(const char *value, const char *default_domain,
	struct strv *out, const char **why);

/* Settings for the Submitted rules. */
struct msghdr_submit_params {
	const char *hostname;		/* for Message-ID */
	const char *default_domain;	/* qualifies unqualified addresses */
	const char *id;			/* queue ID, for Message-ID */
	int64_t now;			/* unix time, for Date */
	const char *submitter;		/* login@hostname, or NULL: unknown */
};

struct msghdr_submission {
	struct strv rcpts;	/* canonical, de-duplicated, in order */
	char *return_path;	/* canonical; "" = null return-path */
	struct buf message;	/* the message to store (LF line ends) */
};

#define MSGHDR_SUBMISSION_INIT { STRV_INIT, NULL, BUF_INIT }

/*
 * Apply the Submitted-folder rules to a .sub file's bytes (CRLF line ends
 * are converted to LF first): recipients from Envelope-To: fields if any,
 * else To/Cc/Bcc minus the Envelope-Ignore: addresses; return-path from
 * Return-Path: (removed) else the first From: address, else the
 * submitter; Bcc:, Envelope-To:, Envelope-Ignore: and Return-Path:
 * removed; From: (the return-path, or the submitter when it is null),
 * Date: and Message-ID: added when missing (at the end of the header).
 * -EINVAL with *why on: bad header, no recipient, a Return-Path: or From:
 * without an address, an unparsable address; -ESRCH (*why set) when the
 * submitter is needed and p->submitter is NULL. Addresses
 * compare exactly on the local part and ASCII case-insensitively on the
 * domain; unqualified ones take default_domain, else hostname. out is
 * overwritten, and left empty on error.
 */
int msghdr_submission(const char *data, size_t len,
	const struct msghdr_submit_params *p, struct msghdr_submission *out,
	const char **why);
void msghdr_submission_free(struct msghdr_submission *s);
/*
 * Where the header block of a .sub file's raw bytes ends: *end is the
 * offset just after its empty line ("\n" or "\r\n"), so that
 * msghdr_submission of raw[0..*end) followed by the rest with CR LF
 * converted to LF gives the same bytes as msghdr_submission of the whole
 * file. -EAGAIN when raw holds no empty line yet and more may follow;
 * with at_eof a file without one is all header (*end = len).
 */
int msghdr_header_end(const char *raw, size_t len, bool at_eof, size_t *end);
/* Append an RFC 5322 date for t (local time, C locale) to b. */
int msghdr_date(int64_t t, struct buf *b);

#endif
