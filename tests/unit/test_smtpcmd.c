/*
 * Unit tests for smtpcmd.c: every verb, every MAIL/RCPT parameter, every
 * error reply with its exact code and status, tolerated spacing, source
 * routes, quoting, control and 8-bit bytes, postmaster, and xtext.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "envelope.h"
#include "smtpcmd.h"

/* Parse the C string s; fail the test unless it is accepted. */
static void
ok(const char *s, struct smtp_cmd *c)
{
	struct smtp_err e = { 0, NULL, NULL };
	int r = smtp_cmd_parse(s, strlen(s), c, &e);

	if (r != 0)
		fail_msg("'%s' refused (%d): %d %s %s", s, r, e.code,
			e.status ? e.status : "-", e.text ? e.text : "-");
}

/* len bytes at s are refused with code/status (and text, unless NULL). */
static void
bad_n(const char *s, size_t len, int code, const char *status,
	const char *text)
{
	struct smtp_cmd c = SMTP_CMD_INIT;
	struct smtp_err e = { 0, NULL, NULL };
	int r = smtp_cmd_parse(s, len, &c, &e);

	if (r != -EINVAL)
		fail_msg("'%.*s' gave %d, not -EINVAL", (int)len, s, r);
	if (e.code != code || strcmp(e.status, status) != 0)
		fail_msg("'%.*s': got %d %s (%s), want %d %s", (int)len, s,
			e.code, e.status, e.text, code, status);
	assert_non_null(e.text);
	assert_true(strlen(e.text) > 0);
	if (text != NULL)
		assert_string_equal(e.text, text);
	/* nothing is left allocated in c on failure */
	assert_null(c.arg);
	assert_null(c.path);
	assert_null(c.ret);
	assert_null(c.envid);
	assert_null(c.orcpt);
}

/* The C string s is refused with code/status (and text, unless NULL). */
static void
bad(const char *s, int code, const char *status, const char *text)
{
	bad_n(s, strlen(s), code, status, text);
}

/* s is accepted as MAIL (mail) or RCPT with the given canonical path. */
static void
path_is(const char *s, const char *path)
{
	struct smtp_cmd c = SMTP_CMD_INIT;

	ok(s, &c);
	assert_true(c.verb == SMTP_MAIL || c.verb == SMTP_RCPT);
	assert_non_null(c.path);
	assert_string_equal(c.path, path);
	smtp_cmd_free(&c);
}

/* Every verb is recognised, in any case, and named for logs. */
static void
test_verbs(void **state)
{
	static const struct {
		const char *line;
		enum smtp_verb verb;
	} t[] = {
		{ "HELO x", SMTP_HELO }, { "EHLO x", SMTP_EHLO },
		{ "MAIL FROM:<a@b>", SMTP_MAIL }, { "RCPT TO:<a@b>", SMTP_RCPT },
		{ "DATA", SMTP_DATA }, { "RSET", SMTP_RSET },
		{ "NOOP", SMTP_NOOP }, { "QUIT", SMTP_QUIT },
		{ "VRFY joe", SMTP_VRFY }, { "HELP", SMTP_HELP },
		{ "STARTTLS", SMTP_STARTTLS }, { "EXPN list", SMTP_EXPN },
		{ "BDAT 100 LAST", SMTP_BDAT }, { "AUTH PLAIN", SMTP_AUTH },
		{ "helo x", SMTP_HELO }, { "eHlO x", SMTP_EHLO },
		{ "mail from:<a@b>", SMTP_MAIL }, { "Rcpt To:<a@b>", SMTP_RCPT },
		{ "data", SMTP_DATA }, { "rset", SMTP_RSET },
		{ "noop", SMTP_NOOP }, { "quit", SMTP_QUIT },
		{ "vrfy joe", SMTP_VRFY }, { "help", SMTP_HELP },
		{ "StartTLS", SMTP_STARTTLS }, { "expn", SMTP_EXPN },
		{ "bdat", SMTP_BDAT }, { "auth", SMTP_AUTH },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct smtp_cmd c = SMTP_CMD_INIT;

		ok(t[i].line, &c);
		assert_int_equal(c.verb, t[i].verb);
		smtp_cmd_free(&c);
	}
	assert_string_equal(smtp_verb_name(SMTP_HELO), "HELO");
	assert_string_equal(smtp_verb_name(SMTP_EHLO), "EHLO");
	assert_string_equal(smtp_verb_name(SMTP_MAIL), "MAIL");
	assert_string_equal(smtp_verb_name(SMTP_RCPT), "RCPT");
	assert_string_equal(smtp_verb_name(SMTP_DATA), "DATA");
	assert_string_equal(smtp_verb_name(SMTP_RSET), "RSET");
	assert_string_equal(smtp_verb_name(SMTP_NOOP), "NOOP");
	assert_string_equal(smtp_verb_name(SMTP_QUIT), "QUIT");
	assert_string_equal(smtp_verb_name(SMTP_VRFY), "VRFY");
	assert_string_equal(smtp_verb_name(SMTP_HELP), "HELP");
	assert_string_equal(smtp_verb_name(SMTP_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_verb_name(SMTP_EXPN), "EXPN");
	assert_string_equal(smtp_verb_name(SMTP_BDAT), "BDAT");
	assert_string_equal(smtp_verb_name(SMTP_AUTH), "AUTH");
	assert_string_equal(smtp_verb_name((enum smtp_verb)99), "?");
}

/* Unknown verbs, empty lines and verbs glued to their argument: 500 5.5.1. */
static void
test_unknown_verb(void **state)
{
	(void)state;
	bad("", 500, "5.5.1", "unrecognized command");
	bad("   ", 500, "5.5.1", "unrecognized command");
	bad("HELLO x", 500, "5.5.1", "unrecognized command");
	bad("MAILFROM:<a@b>", 500, "5.5.1", NULL);
	bad("MAIL\tFROM:<a@b>", 500, "5.5.1", NULL);
	bad(" MAIL FROM:<a@b>", 500, "5.5.1", NULL);
	bad("DAT", 500, "5.5.1", NULL);
	bad("DATAX", 500, "5.5.1", NULL);
	bad("GET / HTTP/1.0", 500, "5.5.1", NULL);
	bad("\x01NOOP", 500, "5.5.1", NULL);
	bad_n(NULL, 0, 500, "5.5.1", NULL);
}

/* NUL, CR, LF and 8-bit bytes anywhere: 500 5.5.2. */
static void
test_bad_bytes(void **state)
{
	(void)state;
	bad_n("NOOP\0x", 6, 500, "5.5.2",
		"command line holds NUL, CR, LF or 8-bit bytes");
	bad_n("\0", 1, 500, "5.5.2", NULL);
	bad("NOOP\r", 500, "5.5.2", NULL);
	bad("NOOP\n", 500, "5.5.2", NULL);
	bad("DATA\r\nQUIT", 500, "5.5.2", NULL);
	bad("NOOP \x80", 500, "5.5.2", NULL);
	bad("HELO h\xc3\xa9", 500, "5.5.2", NULL);
	bad("MAIL FROM:<j\xc3\xb6rg@example.org>", 500, "5.5.2", NULL);
	/* 8-bit is refused even inside a quoted local part (no SMTPUTF8) */
	bad("RCPT TO:<\"j\xc3\xb6rg\"@example.org>", 500, "5.5.2", NULL);
	bad("RCPT TO:<a@\xff>", 500, "5.5.2", NULL);
	/* a NUL inside a quoted-pair is still a NUL in the line */
	bad_n("RCPT TO:<\"a\\\0\"@b>", 17, 500, "5.5.2", NULL);
	bad_n("MAIL FROM:<a@b> SIZE=1\0", 23, 500, "5.5.2", NULL);
}

/* HELO/EHLO: a name is required; liberal about its shape. */
static void
test_helo(void **state)
{
	static const char *const good[] = {
		"mail.example.org", "[192.0.2.1]", "[IPv6:2001:db8::1]",
		"localhost", "my_host", "x", "MAIL.EXAMPLE.ORG.",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct smtp_cmd c = SMTP_CMD_INIT;
		struct buf b = BUF_INIT;

		assert_int_equal(buf_printf(&b, "EHLO %s", good[i]), 0);
		ok(b.data, &c);
		assert_int_equal(c.verb, SMTP_EHLO);
		assert_string_equal(c.arg, good[i]);
		assert_null(c.path);
		smtp_cmd_free(&c);
		buf_reset(&b);
		assert_int_equal(buf_printf(&b, "helo   %s   ", good[i]), 0);
		ok(b.data, &c);
		assert_int_equal(c.verb, SMTP_HELO);
		assert_string_equal(c.arg, good[i]);
		smtp_cmd_free(&c);
		buf_free(&b);
	}
	bad("HELO", 501, "5.5.4",
		"HELO/EHLO requires a domain name or address literal");
	bad("EHLO ", 501, "5.5.4", NULL);
	bad("EHLO     ", 501, "5.5.4", NULL);
	bad("EHLO a b", 501, "5.5.4", "bad character in HELO/EHLO name");
	bad("EHLO a\tb", 501, "5.5.4", "bad character in HELO/EHLO name");
	bad("EHLO a\x01", 501, "5.5.4", NULL);
	bad("EHLO \x7f", 501, "5.5.4", NULL);
	bad("HELO \x1b[31mred", 501, "5.5.4", NULL);
}

/* Verbs without arguments refuse one; trailing spaces are fine. */
static void
test_no_arg_verbs(void **state)
{
	static const char *const verbs[] = { "DATA", "RSET", "QUIT",
		"STARTTLS" };

	(void)state;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		struct smtp_cmd c = SMTP_CMD_INIT;
		struct buf b = BUF_INIT;

		assert_int_equal(buf_printf(&b, "%s   ", verbs[i]), 0);
		ok(b.data, &c);
		assert_null(c.arg);
		assert_null(c.path);
		smtp_cmd_free(&c);
		buf_reset(&b);
		assert_int_equal(buf_printf(&b, "%s x", verbs[i]), 0);
		bad(b.data, 501, "5.5.4", "this command takes no argument");
		buf_free(&b);
	}
}

/* NOOP ignores its argument; VRFY needs one; HELP may have one. */
static void
test_noop_vrfy_help(void **state)
{
	struct smtp_cmd c = SMTP_CMD_INIT;

	(void)state;
	ok("NOOP anything at all\t\x01", &c);
	assert_int_equal(c.verb, SMTP_NOOP);
	assert_null(c.arg);
	smtp_cmd_free(&c);

	ok("VRFY  joe smith  ", &c);
	assert_int_equal(c.verb, SMTP_VRFY);
	assert_string_equal(c.arg, "joe smith");
	smtp_cmd_free(&c);
	ok("VRFY <joe@example.org>", &c);
	assert_string_equal(c.arg, "<joe@example.org>");
	smtp_cmd_free(&c);
	bad("VRFY", 501, "5.5.4", "VRFY requires an argument");
	bad("VRFY   ", 501, "5.5.4", "VRFY requires an argument");
	bad("VRFY a\tb", 501, "5.5.4", "control character in argument");
	bad("VRFY a\x7f", 501, "5.5.4", "control character in argument");

	ok("HELP", &c);
	assert_int_equal(c.verb, SMTP_HELP);
	assert_null(c.arg);
	smtp_cmd_free(&c);
	ok("HELP MAIL", &c);
	assert_string_equal(c.arg, "MAIL");
	smtp_cmd_free(&c);
	bad("HELP \x01", 501, "5.5.4", "control character in argument");

	/* not offered: recognised, arguments ignored (the listener says 502) */
	ok("AUTH PLAIN AGpvZQBzZWNyZXQ=", &c);
	assert_int_equal(c.verb, SMTP_AUTH);
	assert_null(c.arg);
	smtp_cmd_free(&c);
	ok("BDAT 1000 LAST", &c);
	assert_int_equal(c.verb, SMTP_BDAT);
	assert_null(c.arg);
	smtp_cmd_free(&c);
}

/* MAIL: paths, null path, tolerated spacing. */
static void
test_mail_paths(void **state)
{
	struct smtp_cmd c = SMTP_CMD_INIT;

	(void)state;
	ok("MAIL FROM:<joe@example.org>", &c);
	assert_int_equal(c.verb, SMTP_MAIL);
	assert_string_equal(c.path, "joe@example.org");
	assert_null(c.arg);
	assert_false(c.has_size);
	assert_int_equal(c.body, SMTP_BODY_NONE);
	assert_null(c.ret);
	assert_null(c.envid);
	assert_int_equal(c.notify, 0);
	assert_null(c.orcpt);
	smtp_cmd_free(&c);

	path_is("MAIL FROM:<>", "");
	path_is("mail from:<>", "");
	path_is("MAIL FROM: <>", "");
	path_is("MAIL FROM: <joe@example.org>", "joe@example.org");
	path_is("MAIL    FROM:<joe@example.org>   ", "joe@example.org");
	path_is("MAIL FROM:<Joe.Smith@Example.ORG>", "Joe.Smith@Example.ORG");
	path_is("MAIL FROM:<joe@[192.0.2.1]>", "joe@[192.0.2.1]");
	path_is("MAIL FROM:<joe@[IPv6:2001:db8::1]>", "joe@[IPv6:2001:db8::1]");

	bad("MAIL", 501, "5.5.4", "syntax: MAIL FROM:<address>");
	bad("MAIL FROM", 501, "5.5.4", "syntax: MAIL FROM:<address>");
	bad("MAIL TO:<a@b>", 501, "5.5.4", "syntax: MAIL FROM:<address>");
	bad("MAIL FROM :<a@b>", 501, "5.5.4", NULL);
	bad("MAIL FROM:", 501, "5.5.4", "the address must be in angle brackets");
	bad("MAIL FROM:a@b", 501, "5.5.4",
		"the address must be in angle brackets");
	bad("MAIL FROM:  <a@b>", 501, "5.5.4",
		"the address must be in angle brackets");
	bad("MAIL FROM:<a@b", 501, "5.5.4",
		"the address must be in angle brackets");
	bad("MAIL FROM:<a@b>x", 501, "5.5.4",
		"text after the address must be parameters after a space");
	bad("MAIL FROM:<a@b>>", 501, "5.5.4", NULL);
	/* MAIL needs a domain: no postmaster exception here */
	bad("MAIL FROM:<joe>", 553, "5.1.3", NULL);
	bad("MAIL FROM:<postmaster>", 553, "5.1.3", NULL);
}

/* RCPT: paths, postmaster, null path refused. */
static void
test_rcpt_paths(void **state)
{
	(void)state;
	path_is("RCPT TO:<joe@example.org>", "joe@example.org");
	path_is("rcpt to: <joe@example.org>", "joe@example.org");
	path_is("RCPT  TO:<joe@example.org>  ", "joe@example.org");
	path_is("RCPT TO:<postmaster>", "postmaster");
	path_is("RCPT TO:<Postmaster>", "postmaster");
	path_is("RCPT TO:<POSTMASTER>", "postmaster");
	path_is("RCPT TO:<\"PostMaster\">", "postmaster");
	path_is("RCPT TO:<Postmaster@Example.ORG>", "Postmaster@Example.ORG");

	bad("RCPT TO:<>", 553, "5.1.3", "null recipient address");
	bad("RCPT TO:<joe>", 553, "5.1.3",
		"address must have a domain (only postmaster may omit it)");
	bad("RCPT TO:<postmasters>", 553, "5.1.3", NULL);
	bad("RCPT", 501, "5.5.4", "syntax: RCPT TO:<address>");
	bad("RCPT FROM:<a@b>", 501, "5.5.4", "syntax: RCPT TO:<address>");
	bad("RCPT TO:a@b", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b", 501, "5.5.4", NULL);
}

/* Source routes are dropped; broken ones refused. */
static void
test_source_routes(void **state)
{
	(void)state;
	path_is("MAIL FROM:<@relay.example:joe@example.org>", "joe@example.org");
	path_is("RCPT TO:<@a.example,@b.example:joe@example.org>",
		"joe@example.org");
	path_is("RCPT TO:<@a,@b,@c:\"joe smith\"@x>", "\"joe smith\"@x");
	path_is("RCPT TO:<@a:postmaster>", "postmaster");
	bad("RCPT TO:<@a:>", 553, "5.1.3", "source route without a mailbox");
	bad("MAIL FROM:<@a:>", 553, "5.1.3", NULL);
	bad("RCPT TO:<@a>", 553, "5.1.3", "bad source route");
	bad("RCPT TO:<@:joe@x>", 553, "5.1.3", "bad source route");
	bad("RCPT TO:<@a,b:joe@x>", 553, "5.1.3", "bad source route");
	bad("RCPT TO:<@a,:joe@x>", 553, "5.1.3", "bad source route");
	bad("RCPT TO:<@a b:joe@x>", 553, "5.1.3", "bad source route");
	bad("RCPT TO:<@[192.0.2.1]:joe@x>", 553, "5.1.3", "bad source route");
}

/* Quoted local parts: spaces, '>' and escapes; canonical output. */
static void
test_quoted(void **state)
{
	(void)state;
	path_is("RCPT TO:<\"joe smith\"@example.org>",
		"\"joe smith\"@example.org");
	path_is("RCPT TO:<\"joe\"@example.org>", "joe@example.org");
	path_is("RCPT TO:<\"a>b\"@example.org>", "\"a>b\"@example.org");
	path_is("RCPT TO:<\"a\\\"b\"@x>", "\"a\\\"b\"@x");
	path_is("RCPT TO:<\"a\\\\\"@x>", "\"a\\\\\"@x");
	path_is("RCPT TO:<\"\\q\"@x>", "q@x");
	path_is("RCPT TO:<\"[FILE] app -x\"@pipe> NOTIFY=NEVER",
		"\"[FILE] app -x\"@pipe");
	path_is("MAIL FROM:<\"a b\"@x> SIZE=10", "\"a b\"@x");

	bad("RCPT TO:<\"joe@example.org>", 553, "5.1.3", "unbalanced quotes");
	bad("RCPT TO:<\"joe\\\"@example.org>", 553, "5.1.3",
		"unbalanced quotes");
	bad("RCPT TO:<\"a\\", 553, "5.1.3", "unbalanced quotes");
	bad("RCPT TO:<a\"b\"@x>", 553, "5.1.3", NULL);
	bad("RCPT TO:<\"a\"b@x>", 553, "5.1.3", NULL);
}

/* Control characters in a path, raw or quoted: 553 5.1.3. */
static void
test_path_controls(void **state)
{
	(void)state;
	bad("RCPT TO:<jo\x01@x>", 553, "5.1.3", "control character in address");
	bad("RCPT TO:<\"jo\x01\"@x>", 553, "5.1.3", NULL);
	bad("RCPT TO:<\"a\\\x01\"@x>", 553, "5.1.3", NULL);
	bad("RCPT TO:<\"a\\\tb\"@x>", 553, "5.1.3", NULL);
	bad("RCPT TO:<\"a\tb\"@x>", 553, "5.1.3", NULL);
	bad("MAIL FROM:<a@x\x7f>", 553, "5.1.3", NULL);
	bad("MAIL FROM:<a@b\x1b>", 553, "5.1.3", NULL);
	bad("RCPT TO:<postmaster\x01>", 553, "5.1.3", NULL);
}

/* Addresses address_parse refuses: 553 5.1.3 with its reason. */
static void
test_bad_addresses(void **state)
{
	(void)state;
	bad("RCPT TO:<@>", 553, "5.1.3", NULL);
	bad("RCPT TO:<a@>", 553, "5.1.3", "empty domain");
	bad("RCPT TO:<@x>", 553, "5.1.3", NULL);
	bad("RCPT TO:<a..b@x>", 553, "5.1.3", "bad local part");
	bad("RCPT TO:<.a@x>", 553, "5.1.3", NULL);
	bad("RCPT TO:<a@-x>", 553, "5.1.3", NULL);
	bad("RCPT TO:<a@x..y>", 553, "5.1.3", NULL);
	bad("RCPT TO:<a b@x>", 553, "5.1.3", NULL);
	bad("RCPT TO:<a@[300.1.1.1]>", 553, "5.1.3", NULL);
	bad("RCPT TO:<\"\"@x>", 553, "5.1.3", "empty local part");
	bad("MAIL FROM:<a@b@c>", 553, "5.1.3", NULL);
	bad("MAIL FROM:<<a@b>>", 553, "5.1.3", NULL);
}

/* SIZE: digits only, no overflow. */
static void
test_param_size(void **state)
{
	struct smtp_cmd c = SMTP_CMD_INIT;

	(void)state;
	ok("MAIL FROM:<a@b> SIZE=12345", &c);
	assert_true(c.has_size);
	assert_int_equal(c.size, 12345);
	smtp_cmd_free(&c);
	assert_false(c.has_size);
	ok("MAIL FROM:<> size=0", &c);
	assert_true(c.has_size);
	assert_int_equal(c.size, 0);
	smtp_cmd_free(&c);
	ok("MAIL FROM:<a@b> SIZE=18446744073709551615", &c);
	assert_true(c.size == UINT64_MAX);
	smtp_cmd_free(&c);
	ok("MAIL FROM:<a@b> SIZE=000000000000000000000000042", &c);
	assert_int_equal(c.size, 42);
	smtp_cmd_free(&c);

	bad("MAIL FROM:<a@b> SIZE=18446744073709551616", 501, "5.5.4",
		"bad SIZE value");
	bad("MAIL FROM:<a@b> SIZE=99999999999999999999999", 501, "5.5.4",
		"bad SIZE value");
	bad("MAIL FROM:<a@b> SIZE=", 501, "5.5.4",
		"syntax error in parameters");
	bad("MAIL FROM:<a@b> SIZE", 501, "5.5.4", "bad SIZE value");
	bad("MAIL FROM:<a@b> SIZE=-1", 501, "5.5.4", "bad SIZE value");
	bad("MAIL FROM:<a@b> SIZE=+1", 501, "5.5.4", "bad SIZE value");
	bad("MAIL FROM:<a@b> SIZE=1k", 501, "5.5.4", "bad SIZE value");
	bad("MAIL FROM:<a@b> SIZE=0x10", 501, "5.5.4", "bad SIZE value");
	bad("MAIL FROM:<a@b> SIZE=1 SIZE=1", 501, "5.5.4",
		"duplicate parameter");
	bad("MAIL FROM:<a@b> SIZE=1 size=2", 501, "5.5.4",
		"duplicate parameter");
}

/* BODY=7BIT / 8BITMIME, any case. */
static void
test_param_body(void **state)
{
	struct smtp_cmd c = SMTP_CMD_INIT;

	(void)state;
	ok("MAIL FROM:<a@b> BODY=7BIT", &c);
	assert_int_equal(c.body, SMTP_BODY_7BIT);
	smtp_cmd_free(&c);
	ok("MAIL FROM:<a@b> body=8bitmime", &c);
	assert_int_equal(c.body, SMTP_BODY_8BITMIME);
	smtp_cmd_free(&c);
	assert_int_equal(c.body, SMTP_BODY_NONE);
	bad("MAIL FROM:<a@b> BODY=BINARYMIME", 501, "5.5.4",
		"bad BODY value (7BIT or 8BITMIME)");
	bad("MAIL FROM:<a@b> BODY=8BIT", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> BODY", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> BODY=7BIT BODY=8BITMIME", 501, "5.5.4",
		"duplicate parameter");
}

/* RET=FULL / HDRS, upper-cased. */
static void
test_param_ret(void **state)
{
	struct smtp_cmd c = SMTP_CMD_INIT;

	(void)state;
	ok("MAIL FROM:<a@b> RET=FULL", &c);
	assert_string_equal(c.ret, "FULL");
	smtp_cmd_free(&c);
	ok("MAIL FROM:<a@b> ret=hdrs", &c);
	assert_string_equal(c.ret, "HDRS");
	smtp_cmd_free(&c);
	assert_null(c.ret);
	bad("MAIL FROM:<a@b> RET=HEADERS", 501, "5.5.4",
		"bad RET value (FULL or HDRS)");
	bad("MAIL FROM:<a@b> RET", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> RET=FULL RET=HDRS", 501, "5.5.4",
		"duplicate parameter");
}

/* ENVID: xtext of at most 100 characters, printable once decoded. */
static void
test_param_envid(void **state)
{
	struct smtp_cmd c = SMTP_CMD_INIT;
	struct buf b = BUF_INIT;

	(void)state;
	ok("MAIL FROM:<a@b> ENVID=QQ314159+2B2", &c);
	assert_string_equal(c.envid, "QQ314159+2B2");
	smtp_cmd_free(&c);
	ok("MAIL FROM:<a@b> envid=a+20b", &c);
	assert_string_equal(c.envid, "a+20b");
	smtp_cmd_free(&c);

	/* exactly 100 characters is fine, 101 is not */
	assert_int_equal(buf_puts(&b, "MAIL FROM:<a@b> ENVID="), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf_putc(&b, 'x'), 0);
	ok(b.data, &c);
	assert_int_equal(strlen(c.envid), 100);
	smtp_cmd_free(&c);
	assert_int_equal(buf_putc(&b, 'x'), 0);
	bad(b.data, 501, "5.5.4", "bad ENVID value (xtext, at most 100 "
		"characters)");
	buf_free(&b);

	bad("MAIL FROM:<a@b> ENVID=a+2", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=a+2b", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=a+", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=a+GG", 501, "5.5.4", NULL);
	/* decoded control characters (CR, LF, TAB, NUL, DEL) and 8-bit */
	bad("MAIL FROM:<a@b> ENVID=a+0D+0Ab", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=a+09", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=+00", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=+7F", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=+C3", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=a ENVID=b", 501, "5.5.4",
		"duplicate parameter");
	/* '=' inside a value is not an esmtp-value */
	bad("MAIL FROM:<a@b> ENVID=a=b", 501, "5.5.4",
		"syntax error in parameters");
}

/* NOTIFY: NEVER alone, or a list of SUCCESS, FAILURE, DELAY. */
static void
test_param_notify(void **state)
{
	static const struct {
		const char *v;
		unsigned bits;
	} good[] = {
		{ "NEVER", NOTIFY_NEVER },
		{ "never", NOTIFY_NEVER },
		{ "SUCCESS", NOTIFY_SUCCESS },
		{ "FAILURE", NOTIFY_FAILURE },
		{ "DELAY", NOTIFY_DELAY },
		{ "SUCCESS,FAILURE", NOTIFY_SUCCESS | NOTIFY_FAILURE },
		{ "failure,Delay", NOTIFY_FAILURE | NOTIFY_DELAY },
		{ "DELAY,FAILURE,SUCCESS",
		  NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY },
		{ "SUCCESS,SUCCESS", NOTIFY_SUCCESS },
	};
	static const char *const wrong[] = {
		"NEVER,SUCCESS", "SUCCESS,NEVER", "NEVER,NEVER", "ALWAYS",
		"SUCCESS,", ",SUCCESS", "SUCCESS,,FAILURE", "SUCCES",
		"SUCCESS;FAILURE",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct smtp_cmd c = SMTP_CMD_INIT;
		struct buf b = BUF_INIT;

		assert_int_equal(buf_printf(&b, "RCPT TO:<a@b> NOTIFY=%s",
			good[i].v), 0);
		ok(b.data, &c);
		assert_int_equal(c.notify, good[i].bits);
		smtp_cmd_free(&c);
		assert_int_equal(c.notify, 0);
		buf_free(&b);
	}
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		struct buf b = BUF_INIT;

		assert_int_equal(buf_printf(&b, "RCPT TO:<a@b> NOTIFY=%s",
			wrong[i]), 0);
		bad(b.data, 501, "5.5.4",
			"bad NOTIFY value (NEVER, or SUCCESS,FAILURE,DELAY)");
		buf_free(&b);
	}
	bad("RCPT TO:<a@b> NOTIFY", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", 501, "5.5.4",
		"duplicate parameter");
}

/* ORCPT: addr-type;xtext with an atom and at most 500 characters. */
static void
test_param_orcpt(void **state)
{
	static const char *const not_mailbox[] = {
		"rfc822;joe", "rfc822;joe@", "rfc822;@x.example",
		"rfc822;+22joe@x.example", "rfc822;joe+20smith@x.example",
		"rfc822;+3Cjoe@x.example+3E", "rfc822;a..b@x.example",
		"rfc822;a@x..example", "Rfc822;a@x.example+20-f",
		"rfc822;a@b@c",
	};
	struct smtp_cmd c = SMTP_CMD_INIT;
	struct buf b = BUF_INIT;

	(void)state;
	ok("RCPT TO:<a@b> ORCPT=rfc822;joe+2Bx@example.org", &c);
	assert_string_equal(c.orcpt, "rfc822;joe+2Bx@example.org");
	smtp_cmd_free(&c);
	ok("RCPT TO:<a@b> orcpt=RFC822;a@b NOTIFY=SUCCESS,FAILURE", &c);
	assert_string_equal(c.orcpt, "RFC822;a@b");
	assert_int_equal(c.notify, NOTIFY_SUCCESS | NOTIFY_FAILURE);
	smtp_cmd_free(&c);
	ok("RCPT TO:<a@b> ORCPT=x-local;+22joe+20smith+22@b", &c);
	assert_string_equal(c.orcpt, "x-local;+22joe+20smith+22@b");
	smtp_cmd_free(&c);

	/* 500 characters of xtext are fine, 501 are not */
	assert_int_equal(buf_puts(&b, "RCPT TO:<a@b> ORCPT=rfc822;"), 0);
	for (int i = 0; i < 498; i++)
		assert_int_equal(buf_putc(&b, 'x'), 0);
	assert_int_equal(buf_puts(&b, "@b"), 0);
	ok(b.data, &c);
	assert_int_equal(strlen(c.orcpt), 7 + 500);
	smtp_cmd_free(&c);
	assert_int_equal(buf_putc(&b, 'x'), 0);
	bad(b.data, 501, "5.5.4", "bad ORCPT value (addr-type;xtext)");
	buf_free(&b);

	bad("RCPT TO:<a@b> ORCPT=a@b", 501, "5.5.4",
		"bad ORCPT value (addr-type;xtext)");
	bad("RCPT TO:<a@b> ORCPT=;a@b", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ORCPT=rfc822;", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ORCPT=rfc(822);a@b", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ORCPT=rfc.822;a@b", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ORCPT=rfc822;a+2", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ORCPT=rfc822;a+2f@b", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ORCPT=rfc822;a+0A@b", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ORCPT=rfc822;a+0D+0AX-Evil:+20y@b", 501, "5.5.4",
		NULL);
	bad("RCPT TO:<a@b> ORCPT", 501, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ORCPT=rfc822;a@b ORCPT=rfc822;c@d", 501, "5.5.4",
		"duplicate parameter");

	/* an rfc822 ORCPT must name a mailbox once decoded */
	for (size_t i = 0; i < sizeof(not_mailbox) / sizeof(*not_mailbox);
	    i++) {
		buf_reset(&b);
		assert_int_equal(buf_printf(&b, "RCPT TO:<a@b> ORCPT=%s",
			not_mailbox[i]), 0);
		bad(b.data, 501, "5.5.4", "bad ORCPT address (rfc822;xtext "
			"must be a mailbox local@domain)");
	}
	buf_free(&b);
	/* quoted local parts and address literals are mailboxes */
	ok("RCPT TO:<a@b> ORCPT=rfc822;+22joe+5C+22q+22@[192.0.2.1]", &c);
	smtp_cmd_free(&c);
	ok("RCPT TO:<a@b> ORCPT=rfc822;+22joe+20smith+22@x.example", &c);
	smtp_cmd_free(&c);
	/* other addr-types are not addresses: only their xtext is checked */
	ok("RCPT TO:<a@b> ORCPT=x400;c+3Dus+3Ba+3D+3Bp+3Dexample", &c);
	assert_string_equal(c.orcpt, "x400;c+3Dus+3Ba+3D+3Bp+3Dexample");
	smtp_cmd_free(&c);
	ok("RCPT TO:<a@b> ORCPT=utf-8;joe", &c);
	smtp_cmd_free(&c);
}

/* smtp_orcpt_address: the decoded mailbox, or why there is none. */
static void
test_orcpt_address(void **state)
{
	char *o = (char *)"x";

	(void)state;
	assert_int_equal(smtp_orcpt_address("rfc822;Joe+2BSmith@Old.Example",
		30, &o), 0);
	assert_string_equal(o, "Joe+Smith@Old.Example");	/* as written */
	free(o);
	assert_int_equal(smtp_orcpt_address("RFC822;+22a+20b+22@x", 20, &o),
		0);
	assert_string_equal(o, "\"a b\"@x");
	free(o);
	/* only len bytes count */
	assert_int_equal(smtp_orcpt_address("rfc822;a@bXYZ", 10, &o), 0);
	assert_string_equal(o, "a@b");
	free(o);
	assert_int_equal(smtp_orcpt_address("x400;a@b", 8, &o), -ENOENT);
	assert_null(o);
	assert_int_equal(smtp_orcpt_address("utf-8;a@b", 9, &o), -ENOENT);
	assert_int_equal(smtp_orcpt_address("rfc822a@b", 9, &o), -EINVAL);
	assert_int_equal(smtp_orcpt_address("rfc822;", 7, &o), -EINVAL);
	assert_int_equal(smtp_orcpt_address("rfc822;a", 8, &o), -EINVAL);
	assert_int_equal(smtp_orcpt_address("rfc822;a+0A@b", 13, &o),
		-EINVAL);
	assert_int_equal(smtp_orcpt_address("rfc822;a+00@b", 13, &o),
		-EINVAL);
	assert_int_equal(smtp_orcpt_address("rfc822;a+C3+A9@b", 16, &o),
		-EINVAL);			/* 8-bit: that is utf-8; */
	assert_int_equal(smtp_orcpt_address("rfc822;a+2f@b", 13, &o),
		-EINVAL);			/* lower-case hex */
	assert_int_equal(smtp_orcpt_address("rfc822;a b@c", 12, &o),
		-EINVAL);			/* not xtext */
	assert_null(o);
}

/* Without ORCPT the address as received is the original recipient. */
static void
test_orig_without_orcpt(void **state)
{
	char *o = NULL;

	assert_int_equal(smtp_original_recipient("a@b.example", NULL, &o), 0);
	assert_string_equal(o, "a@b.example");
	free(o);
}

/* An rfc822 ORCPT is xtext-decoded. */
static void
test_orig_from_orcpt(void **state)
{
	char *o = NULL;

	assert_int_equal(smtp_original_recipient("list@x.example",
		"rfc822;Joe+2BSmith@old.example", &o), 0);
	assert_string_equal(o, "Joe+Smith@old.example");
	free(o);
	assert_int_equal(smtp_original_recipient("a@x.example",
		"RFC822;a+3Db@y.example", &o), 0);
	assert_string_equal(o, "a=b@y.example");
	free(o);
}

/* Other address types and unusable values fall back to the address. */
static void
test_orig_fallbacks(void **state)
{
	char *o = NULL;

	assert_int_equal(smtp_original_recipient("a@x.example",
		"utf-8;a@y.example", &o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
	/* a decoded control character never becomes the value */
	assert_int_equal(smtp_original_recipient("a@x.example",
		"rfc822;a+0Ab@y.example", &o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
	assert_int_equal(smtp_original_recipient("a@x.example", "rfc822;",
		&o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
	/* decoded, but not a mailbox: never given to a program */
	assert_int_equal(smtp_original_recipient("a@x.example",
		"rfc822;joe+20-f", &o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
	assert_int_equal(smtp_original_recipient("a@x.example",
		"rfc822;joe", &o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
}

/* Unknown parameters and the other command's parameters: 555 5.5.4. */
static void
test_param_unknown(void **state)
{
	(void)state;
	bad("MAIL FROM:<a@b> SMTPUTF8", 555, "5.5.4", "unknown MAIL parameter");
	bad("MAIL FROM:<a@b> AUTH=<>", 555, "5.5.4", "unknown MAIL parameter");
	bad("MAIL FROM:<a@b> X-FOO=1", 555, "5.5.4", "unknown MAIL parameter");
	bad("MAIL FROM:<a@b> SIZEX=1", 555, "5.5.4", NULL);
	bad("RCPT TO:<a@b> SMTPUTF8", 555, "5.5.4", "unknown RCPT parameter");
	bad("RCPT TO:<a@b> FOO", 555, "5.5.4", "unknown RCPT parameter");
	bad("MAIL FROM:<a@b> NOTIFY=NEVER", 555, "5.5.4",
		"NOTIFY and ORCPT are RCPT parameters");
	bad("MAIL FROM:<a@b> ORCPT=rfc822;a@b", 555, "5.5.4", NULL);
	bad("RCPT TO:<a@b> SIZE=1", 555, "5.5.4",
		"SIZE, BODY, RET and ENVID are MAIL parameters");
	bad("RCPT TO:<a@b> BODY=7BIT", 555, "5.5.4", NULL);
	bad("RCPT TO:<a@b> RET=FULL", 555, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ENVID=x", 555, "5.5.4", NULL);
}

/* Keyword and value syntax errors: 501 5.5.4. */
static void
test_param_syntax(void **state)
{
	(void)state;
	bad("MAIL FROM:<a@b> =1", 501, "5.5.4", "syntax error in parameters");
	bad("MAIL FROM:<a@b> -SIZE=1", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> SI_ZE=1", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> SIZE=1\t", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> SIZE==1", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=a\x01", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b> ENVID=a\x7f", 501, "5.5.4", NULL);
	bad("MAIL FROM:<a@b>\tSIZE=1", 501, "5.5.4", NULL);
}

/* Every MAIL parameter together, spaces tolerated between them. */
static void
test_all_params(void **state)
{
	struct smtp_cmd c = SMTP_CMD_INIT;

	(void)state;
	ok("MAIL FROM:<\"joe smith\"@example.org>  SIZE=100   BODY=8BITMIME "
		"RET=HDRS ENVID=abc   ", &c);
	assert_int_equal(c.verb, SMTP_MAIL);
	assert_string_equal(c.path, "\"joe smith\"@example.org");
	assert_true(c.has_size);
	assert_int_equal(c.size, 100);
	assert_int_equal(c.body, SMTP_BODY_8BITMIME);
	assert_string_equal(c.ret, "HDRS");
	assert_string_equal(c.envid, "abc");
	smtp_cmd_free(&c);
	assert_null(c.path);
	assert_null(c.ret);
	assert_null(c.envid);

	ok("RCPT TO: <joe@example.org> NOTIFY=DELAY  ORCPT=rfc822;joe@x", &c);
	assert_int_equal(c.verb, SMTP_RCPT);
	assert_string_equal(c.path, "joe@example.org");
	assert_int_equal(c.notify, NOTIFY_DELAY);
	assert_string_equal(c.orcpt, "rfc822;joe@x");
	smtp_cmd_free(&c);
	assert_null(c.orcpt);

	/* errors later on the line still free what was stored before */
	bad("MAIL FROM:<a@b> RET=FULL ENVID=x FOO", 555, "5.5.4", NULL);
	bad("RCPT TO:<a@b> ORCPT=rfc822;a NOTIFY=BAD", 501, "5.5.4", NULL);
	/* smtp_cmd_free twice and on NULL is harmless */
	smtp_cmd_free(&c);
	smtp_cmd_free(NULL);
}

/* A parse overwrites a struct that owns nothing, without reading it. */
static void
test_uninitialised(void **state)
{
	struct smtp_cmd c;

	(void)state;
	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(smtp_cmd_parse("QUIT", 4, &c, NULL), 0);
	assert_int_equal(c.verb, SMTP_QUIT);
	assert_null(c.arg);
	assert_null(c.path);
	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(smtp_cmd_parse("FOO", 3, &c, NULL), -EINVAL);
	assert_null(c.path);
	/* len is honoured: the rest of the buffer is not read */
	assert_int_equal(smtp_cmd_parse("DATA garbage", 4, &c, NULL), 0);
	assert_int_equal(c.verb, SMTP_DATA);
}

/* Run every test of this file. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verbs),
		cmocka_unit_test(test_unknown_verb),
		cmocka_unit_test(test_bad_bytes),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_no_arg_verbs),
		cmocka_unit_test(test_noop_vrfy_help),
		cmocka_unit_test(test_mail_paths),
		cmocka_unit_test(test_rcpt_paths),
		cmocka_unit_test(test_source_routes),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_path_controls),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_param_size),
		cmocka_unit_test(test_param_body),
		cmocka_unit_test(test_param_ret),
		cmocka_unit_test(test_param_envid),
		cmocka_unit_test(test_param_notify),
		cmocka_unit_test(test_param_orcpt),
		cmocka_unit_test(test_orcpt_address),
		cmocka_unit_test(test_orig_without_orcpt),
		cmocka_unit_test(test_orig_from_orcpt),
		cmocka_unit_test(test_orig_fallbacks),
		cmocka_unit_test(test_param_unknown),
		cmocka_unit_test(test_param_syntax),
		cmocka_unit_test(test_all_params),
		cmocka_unit_test(test_uninitialised),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
