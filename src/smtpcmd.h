/*
 * smtpcmd: the SMTP command grammar (RFC 5321, with the parameters of
 * SIZE / 8BITMIME (RFC 1870, 6152) and DSN (RFC 3461)). One command line
 * (without its CRLF) in, one structure or one exact SMTP error reply out.
 * Paths must be in angle brackets (one space after the colon is
 * tolerated); a source route is dropped; addresses go through
 * address_parse, so control characters and unbalanced quoting are refused.
 * Pure: no I/O, no globals.
 */
#ifndef MP_SMTPCMD_H
#define MP_SMTPCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_verb {
	SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_RSET,
	SMTP_NOOP, SMTP_QUIT, SMTP_VRFY, SMTP_HELP, SMTP_STARTTLS,
	SMTP_EXPN, SMTP_BDAT, SMTP_AUTH,	/* known, not offered: 502 */
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

struct smtp_cmd {
	enum smtp_verb verb;
	char *arg;		/* HELO/EHLO name, VRFY/HELP text, or NULL */
	char *path;		/* MAIL/RCPT: canonical address (address_format);
				   "" for MAIL FROM:<> */
	/* MAIL parameters */
	bool has_size;
	uint64_t size;		/* SIZE= */
	enum smtp_body body;	/* BODY= */
	char *ret;		/* RET=: "FULL" / "HDRS" (upper-cased) or NULL */
	char *envid;		/* ENVID= (xtext, checked) or NULL */
	/* RCPT parameters */
	unsigned notify;	/* NOTIFY= as envelope.h NOTIFY_* bits, 0 = not
				   given */
	char *orcpt;		/* ORCPT= "addr-type;xtext" (checked) or NULL */
};

#define SMTP_CMD_INIT { SMTP_NOOP, NULL, NULL, false, 0, SMTP_BODY_NONE, \
	NULL, NULL, 0, NULL }

/* An error reply: code, RFC 3463 status and text (constants). */
struct smtp_err {
	int code;		/* 500, 501, 502, 553, 555 */
	const char *status;	/* "5.5.1", "5.5.4", "5.1.3", ... */
	const char *text;	/* "unrecognized command", ... */
};

/*
 * Parse one command line (len bytes, no CRLF; may hold any byte). The
 * verb is case-insensitive. On error returns -EINVAL and fills *e:
 *   500 5.5.1 unknown verb; 500 5.5.2 line holds NUL/CR/LF/8-bit bytes
 *   501 5.5.4 syntax error in arguments (HELO without a name, DATA with an
 *     argument, missing "FROM:"/"TO:", missing brackets, bad parameter
 *     value, duplicate parameter, an rfc822 ORCPT that is not a mailbox);
 *   553 5.1.3 the path is not a valid address (also: control characters,
 *     unbalanced quotes, RCPT TO:<>);
 *   555 5.5.4 unknown MAIL/RCPT parameter.
 * An unqualified RCPT TO:<postmaster> is accepted (RFC 5321 4.5.1) and
 * returned as "postmaster"; other unqualified paths are 553.
 */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *c,
	struct smtp_err *e);
void smtp_cmd_free(struct smtp_cmd *c);
/*
 * The mailbox an ORCPT value ("addr-type;xtext", len bytes) names, for a
 * program's ORIGINAL_RECIPIENT and -r: with addr-type rfc822 (any case)
 * the xtext decoded, which must be printable ASCII and a valid mailbox
 * with a domain (address_parse); *out is that decoded text as written
 * (malloc'ed), not re-quoted. -ENOENT: another addr-type (kept for DSN,
 * never used as an address); -EINVAL: not valid xtext, or not a mailbox;
 * -ENOMEM.
 */
int smtp_orcpt_address(const char *orcpt, size_t len, char **out);
/*
 * ORIGINAL_RECIPIENT for a recipient: the ORCPT value when given as
 * "rfc822;xtext" and, decoded, a valid mailbox (smtp_orcpt_address), else
 * the address as received.
 */
int smtp_original_recipient(const char *addr, const char *orcpt,
	char **out);
/* The verb's name in upper case, for logs. */
const char *smtp_verb_name(enum smtp_verb v);

#endif
