/*
 * libFuzzer target for smtpcmd.c: any bytes parse or are refused with a
 * complete reply; a refusal leaves nothing allocated; an accepted MAIL or
 * RCPT path holds no control or 8-bit byte and comes back unchanged when
 * written again as "MAIL FROM:<path>" (or "RCPT TO:<path>" for the
 * unqualified postmaster); accepted xtext values are valid xtext; an
 * accepted rfc822 ORCPT decodes to a mailbox without control bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "smtpcmd.h"
#include "smtpcodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Is any byte of s a control or 8-bit byte? */
static int
has_bad_byte(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f)
			return 1;
	}
	return 0;
}

/* Re-parse "<prefix><path>" and trap unless the same path comes back. */
static void
round_trip(const char *prefix, const char *path)
{
	struct smtp_cmd c = SMTP_CMD_INIT;
	struct smtp_err e = { 0, NULL, NULL };
	struct buf b = BUF_INIT;
	int r;

	if (buf_printf(&b, "%s%s>", prefix, path) < 0) {
		buf_free(&b);
		return;
	}
	r = smtp_cmd_parse(b.data, b.len, &c, &e);
	if (r == -ENOMEM) {
		buf_free(&b);
		return;
	}
	if (r != 0 || c.path == NULL || strcmp(c.path, path) != 0)
		__builtin_trap();
	smtp_cmd_free(&c);
	buf_free(&b);
}

/* One input: the whole of it is one command line. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_cmd c = SMTP_CMD_INIT;
	struct smtp_err e = { 0, NULL, NULL };
	int r;

	r = smtp_cmd_parse((const char *)data, size, &c, &e);
	if (r == -ENOMEM)
		return 0;
	if (r != 0) {
		if (r != -EINVAL || e.status == NULL || e.text == NULL ||
		    e.code < 500 || e.code > 555 || c.arg || c.path || c.ret ||
		    c.envid || c.orcpt)
			__builtin_trap();
		return 0;
	}
	if (c.arg && has_bad_byte(c.arg) && c.verb != SMTP_HELO &&
	    c.verb != SMTP_EHLO)
		__builtin_trap();
	if ((c.verb == SMTP_HELO || c.verb == SMTP_EHLO) &&
	    (c.arg == NULL || *c.arg == '\0' || strchr(c.arg, ' ') ||
	     has_bad_byte(c.arg)))
		__builtin_trap();
	if (c.envid && (!smtpcodec_xtext_valid(c.envid, strlen(c.envid)) ||
	    strlen(c.envid) > 100))
		__builtin_trap();
	if (c.orcpt && strchr(c.orcpt, ';') == NULL)
		__builtin_trap();
	if (c.orcpt) {
		/* an accepted rfc822 ORCPT names a printable mailbox */
		char *a = NULL;
		int o = smtp_orcpt_address(c.orcpt, strlen(c.orcpt), &a);

		if (o == -ENOMEM) {
			smtp_cmd_free(&c);
			return 0;
		}
		if (strncasecmp(c.orcpt, "rfc822;", 7) == 0 ?
		    (o != 0 || a == NULL || has_bad_byte(a) ||
		     strchr(a, '@') == NULL) : o != -ENOENT)
			__builtin_trap();
		free(a);
	}
	if (c.verb == SMTP_MAIL || c.verb == SMTP_RCPT) {
		if (c.path == NULL || has_bad_byte(c.path))
			__builtin_trap();
		if (c.verb == SMTP_RCPT && *c.path == '\0')
			__builtin_trap();
		if (strcmp(c.path, "postmaster") == 0)
			round_trip("RCPT TO:<", c.path);
		else
			round_trip("MAIL FROM:<", c.path);
		round_trip(c.verb == SMTP_MAIL ? "MAIL FROM:<" : "RCPT TO:<",
			c.path);
	} else if (c.path != NULL) {
		__builtin_trap();
	}
	smtp_cmd_free(&c);
	return 0;
}
