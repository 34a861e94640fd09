/*
 * smtpreply: the parsers for what an SMTP server sends its client (the
 * relay client, docs/RELAY.md): reply lines gathered into one reply
 * (RFC 5321 4.2: "NNN-" continuation lines, one code for every line, a
 * bound on the reply's size), the RFC 3463 enhanced status code at the
 * start of a reply text, and the EHLO keywords the relay client uses.
 * Also the one-line renderings of a reply that results and logs use.
 * Pure: bytes in, structures out; no I/O, no globals.
 */
#ifndef MP_SMTPREPLY_H
#define MP_SMTPREPLY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "result.h"
#include "strv.h"

/*
 * Longest reply (all its lines, CRLFs counted) and longest unfinished line
 * accepted: beyond it the reply is a protocol error, never cut. RFC 5321's
 * 512 octets per line are not enforced: real servers send longer texts.
 */
#define SMTPREPLY_MAX (1024 * 1024)

/* The EHLO keywords the relay client knows (others are ignored). */
enum {
	SMTPREPLY_EXT_PIPELINING = 1 << 0,	/* RFC 2920 */
	SMTPREPLY_EXT_SIZE = 1 << 1,		/* RFC 1870 */
	SMTPREPLY_EXT_8BITMIME = 1 << 2,	/* RFC 6152 */
	SMTPREPLY_EXT_STARTTLS = 1 << 3,	/* RFC 3207 */
	SMTPREPLY_EXT_DSN = 1 << 4,		/* RFC 3461 */
	SMTPREPLY_EXT_ENHANCED = 1 << 5,	/* RFC 2034 */
	SMTPREPLY_EXT_SMTPUTF8 = 1 << 6,	/* RFC 6531 */
};

/* A reply being gathered, then complete. */
struct smtpreply {
	int code;		/* of the first line, 100..599 */
	struct strv lines;	/* each line's text after "NNN-" / "NNN " */
	size_t bytes;		/* counted toward SMTPREPLY_MAX */
};

#define SMTPREPLY_INIT { 0, STRV_INIT, 0 }

/* smtpreply_line: the line was a continuation; more lines follow. */
#define SMTPREPLY_MORE 0
/* smtpreply_line: the line was the last one; the reply is complete. */
#define SMTPREPLY_DONE 1

/*
 * The next line in the n bytes at p: 1 with its length in *len (without
 * the LF and a CR before it) and the bytes it takes (LF included) in
 * *used; 0 when no LF has come yet.
 */
int smtpreply_split(const char *p, size_t n, size_t *len, size_t *used);

/*
 * Add one line (len bytes, CRLF removed; any byte) to rp. A line is three
 * digits (the first 1-5) then "-" (more lines follow), " " or nothing
 * (the last line), then text. Returns SMTPREPLY_MORE or SMTPREPLY_DONE;
 * -EPROTO with *why (a constant) for a malformed line, a code that is not
 * the first line's, or a reply beyond SMTPREPLY_MAX; -ENOMEM. After an
 * error rp must only be freed.
 */
int smtpreply_line(struct smtpreply *rp, const char *line, size_t len,
	const char **why);
/* Free the lines and reset rp to SMTPREPLY_INIT. */
void smtpreply_free(struct smtpreply *rp);

/*
 * Parse an RFC 3463 status "C.S.D" (C one digit, S and D 1-3 digits) at
 * the start of s, followed by a space or the end of s. Returns 0 with the
 * status copied to st and its length in *len, or -EINVAL (st unchanged).
 * The class digit is not judged here: callers compare it with their code.
 */
int smtpreply_status_parse(const char *s, char st[RESULT_STATUS_MAX],
	size_t *len);
/*
 * The status of a reply: the one its first line starts with when its
 * class is the reply code's first digit, else the class default
 * ("4.0.0" for a 451).
 */
void smtpreply_status(const struct smtpreply *rp, char st[RESULT_STATUS_MAX]);

/* What an EHLO reply offers. */
struct smtpreply_ehlo {
	unsigned ext;		/* SMTPREPLY_EXT_* bits */
	uint64_t size_max;	/* SIZE n; 0 = no limit given (or absurd) */
};

/*
 * The keywords of an EHLO reply (every line but the first, which names
 * the server), case-insensitive; a keyword's parameters follow a space.
 * Unknown keywords are ignored.
 */
void smtpreply_ehlo(const struct smtpreply *rp, struct smtpreply_ehlo *out);

/* Append "NNN text text ..." (the lines joined with spaces) to out. */
int smtpreply_text(const struct smtpreply *rp, struct buf *out);
/*
 * Append " word ..." for each line: the text without the code, and
 * without a leading status equal to st (a result that carries the code
 * and st then names them once).
 */
int smtpreply_words(const struct smtpreply *rp, const char *st,
	struct buf *out);

#endif
