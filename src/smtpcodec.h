/*
 * smtpcodec: the SMTP DATA stream (RFC 5321 sections 4.1.1.4, 4.5.2) in
 * both directions, as pure functions over a small state struct.
 *
 * The decoder takes the bytes a client sends after the 354, in chunks of
 * any size split anywhere (also inside CRLF "." CRLF), and appends the
 * message to a caller buffer: CRLF becomes LF, a leading '.' is dropped
 * (dot-stuffing undone), every other octet is kept. The data ends only at
 * CRLF "." CRLF (or "." CRLF as the first line); a bare CR or a bare LF
 * anywhere marks the message refused (SMTP smuggling defence, RFC 5321
 * section 2.3.8), so no other byte sequence ends it early. The output never
 * holds a CR. The result (output, size, flags, where the data ends) does
 * not depend on how the input was split.
 *
 * The encoder is the inverse for a message with LF line ends: LF becomes
 * CRLF (a CRLF stays CRLF), a line starting with '.' gets another '.'.
 *
 * Also xtext (RFC 3461 section 4), the encoding of the DSN parameters
 * ENVID and ORCPT: its syntax, its decoding and its encoding.
 *
 * No I/O, no globals, no allocation except growing the caller's buffer.
 */
#ifndef MP_SMTPCODEC_H
#define MP_SMTPCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Where the decoder stands ("BOL" = at the start of a line). */
enum smtpcodec_state {
	SMTPCODEC_BOL,		/* after CRLF, or at the start of the data */
	SMTPCODEC_DOT,		/* after a '.' at the start of a line */
	SMTPCODEC_DOTCR,	/* after "." CR at the start of a line */
	SMTPCODEC_MID,		/* inside a line */
	SMTPCODEC_CR,		/* after a CR inside a line */
};

/* The DATA decoder's state; the fields are read by the caller. */
struct smtpcodec_dec {
	uint64_t max;		/* most decoded octets accepted (max-size) */
	uint64_t size;		/* decoded octets so far (LF line ends),
				   counted on after a refusal */
	enum smtpcodec_state st;
	bool bare;		/* a bare CR or LF: the message is refused */
	bool too_big;		/* more than max octets (and no bare CR/LF
				   before the limit was passed) */
	bool done;		/* the end of the data was seen */
};

/* Start decoding one message of at most max octets. */
void smtpcodec_dec_init(struct smtpcodec_dec *d, uint64_t max);

/*
 * Decode up to n bytes at p. Sets *used to the bytes consumed: all n,
 * unless the end of the data is among them, in which case *used ends just
 * after it (d->done is set; what follows is the client's next command).
 * Decoded octets are appended to out while the message is still good (not
 * bare, not too big); once d->bare or d->too_big is set nothing more is
 * appended and the caller should drop what it kept. out may be NULL: the
 * data is then scanned and counted but not kept (after running out of
 * memory). The caller may drain out between calls. After d->done, calls
 * consume nothing. Returns 0, or -ENOMEM when out could not grow (nothing
 * consumed, state unchanged).
 */
int smtpcodec_decode(struct smtpcodec_dec *d, const char *p, size_t n,
	struct buf *out, size_t *used);

/* The DATA encoder's state. */
struct smtpcodec_enc {
	bool bol;		/* at the beginning of a line */
	bool cr;		/* the previous byte was CR */
};

#define SMTPCODEC_ENC_INIT { true, false }

/*
 * Encode n bytes at p into out, which has room for 2 * n bytes; returns
 * the bytes written. LF becomes CRLF unless a CR precedes it; a '.' that
 * starts a line is doubled.
 */
size_t smtpcodec_encode(struct smtpcodec_enc *e, const char *p, size_t n,
	char *out);

/*
 * What ends the encoded data: "\r\n.\r\n" when the message's last line had
 * no line end, else ".\r\n".
 */
const char *smtpcodec_encode_end(const struct smtpcodec_enc *e);

/*
 * Is s (n bytes) valid xtext (RFC 3461 section 4)? Every octet is "!"
 * to "~" but "+" and "=", or "+" and two upper-case hex digits. The empty
 * string is valid.
 */
bool smtpcodec_xtext_valid(const char *s, size_t n);

/*
 * Is the valid xtext s (n bytes) printable once decoded? RFC 3461 wants
 * ENVID and ORCPT to be printable US-ASCII before encoding; TAB is refused
 * too, so no decoded value ever holds a control character.
 */
bool smtpcodec_xtext_printable(const char *s, size_t n);

/*
 * Does s (n bytes) hold only the octets xtext is written with ("!" to
 * "~")? The escapes are not checked: this is what may go into a command
 * or a queue file as it is.
 */
bool smtpcodec_xtext_chars(const char *s, size_t n);

/*
 * Decode the valid xtext s (n bytes) into out, which has room for n
 * bytes; returns the bytes written (no NUL is added).
 */
size_t smtpcodec_xtext_decode(const char *s, size_t n, char *out);

/*
 * Append the xtext of n bytes at p to out ("+XX" for "+", "=" and every
 * octet outside "!" to "~"). Returns 0 or -ENOMEM.
 */
int smtpcodec_xtext_encode(const char *p, size_t n, struct buf *out);

#endif
