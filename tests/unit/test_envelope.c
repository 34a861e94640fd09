/*
 * Unit tests for envelope.c: format/parse round trips, state byte offsets,
 * every corruption rule of docs/QUEUE.md, -EAGAIN on every truncation of
 * a valid envelope, NOTIFY parsing and uid generation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

#define UID "6f1c0d9be3a14c2e8d7f5a9b0c1d2e3f"

/* A valid envelope with every optional key, as envelope_format writes it. */
static const char full_text[] =
	"mailpipe-queue 1\n"
	"uid " UID "\n"
	"tag SMTP\n"
	"submitted 1763892300\n"
	"from <joe@example.com>\n"
	"user 1000\n"
	"client 192.0.2.1\n"
	"helo mail.example.net\n"
	"trusted no\n"
	"ret HDRS\n"
	"envid QQ314159+2B\n"
	"source Submitted/x.sub 64769:1234\n"
	"size 4096\n"
	"rcpt P 0 - <list@lists.example>\n"
	"rcpt D 6 rfc822;bob@example.com <bob@example.com>\n"
	"rcpt F 1 - <\"a b\"@example.org>\n"
	"end\n"
	"\n";

/* Fill e with every field set (the same values as full_text). */
static void
fill_full(struct envelope *e)
{
	envelope_init(e);
	memcpy(e->uid, UID, sizeof(UID));
	e->tag = strdup("SMTP");
	e->submitted = 1763892300;
	e->from = strdup("joe@example.com");
	e->user = 1000;
	e->client = strdup("192.0.2.1");
	e->helo = strdup("mail.example.net");
	e->trusted = false;
	e->ret = strdup("HDRS");
	e->envid = strdup("QQ314159+2B");
	e->source = strdup("Submitted/x.sub 64769:1234");
	e->size = 4096;
	assert_int_equal(envelope_add_rcpt(e, "list@lists.example", NULL, 0), 0);
	assert_int_equal(envelope_add_rcpt(e, "bob@example.com",
		"rfc822;bob@example.com", NOTIFY_SUCCESS | NOTIFY_FAILURE), 0);
	assert_int_equal(envelope_add_rcpt(e, "\"a b\"@example.org", NULL,
		NOTIFY_NEVER), 0);
	e->rcpt[1].state = RCPT_DELIVERED;
	e->rcpt[2].state = RCPT_FAILED;
}

/* Fill e with only the required fields. */
static void
fill_min(struct envelope *e)
{
	envelope_init(e);
	memcpy(e->uid, UID, sizeof(UID));
	e->tag = strdup("PIPE");
	e->submitted = 0;
	e->from = strdup("");
	e->trusted = true;
	e->size = 0;
	assert_int_equal(envelope_add_rcpt(e, "a@b.example", NULL, 0), 0);
}

/* NULL-safe string equality for assertions. */
static void
assert_str_eq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Every field of a and b is equal. */
static void
assert_env_equal(const struct envelope *a, const struct envelope *b)
{
	assert_string_equal(a->uid, b->uid);
	assert_str_eq_null(a->tag, b->tag);
	assert_true(a->submitted == b->submitted);
	assert_str_eq_null(a->from, b->from);
	assert_true(a->user == b->user);
	assert_str_eq_null(a->client, b->client);
	assert_str_eq_null(a->helo, b->helo);
	assert_int_equal(a->trusted, b->trusted);
	assert_str_eq_null(a->ret, b->ret);
	assert_str_eq_null(a->envid, b->envid);
	assert_str_eq_null(a->source, b->source);
	assert_str_eq_null(a->report_for, b->report_for);
	assert_true(a->size == b->size);
	assert_int_equal(a->nrcpt, b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++) {
		assert_string_equal(a->rcpt[i].addr, b->rcpt[i].addr);
		assert_str_eq_null(a->rcpt[i].orcpt, b->rcpt[i].orcpt);
		assert_int_equal(a->rcpt[i].notify, b->rcpt[i].notify);
		assert_int_equal(a->rcpt[i].state, b->rcpt[i].state);
	}
}

/* Parse text that must be valid; returns the envelope in e. */
static void
parse_ok(const char *text, size_t len, struct envelope *e)
{
	const char *why = NULL;
	unsigned line = 0;
	int r = envelope_parse(text, len, e, &why, &line);

	if (r != 0)
		fail_msg("parse failed (%d) line %u: %s", r, line,
			why ? why : "-");
}

/* format writes exactly the documented text, in the fixed order. */
static void
test_format_exact(void **state)
{
	struct envelope e;
	struct buf b = BUF_INIT;

	(void)state;
	fill_full(&e);
	assert_int_equal(envelope_format(&e, &b), 0);
	assert_string_equal(b.data, full_text);
	assert_int_equal(b.len, sizeof(full_text) - 1);
	assert_int_equal(e.header_len, b.len);
	envelope_free(&e);
	buf_free(&b);
}

/* Round trip with every optional key; state_off points at the state. */
static void
test_roundtrip_full(void **state)
{
	struct envelope e, p;
	struct buf b = BUF_INIT;

	(void)state;
	fill_full(&e);
	assert_int_equal(envelope_format(&e, &b), 0);
	/* the message follows the envelope */
	assert_int_equal(buf_puts(&b, "Subject: x\n\nbody\n"), 0);
	parse_ok(b.data, b.len, &p);
	assert_env_equal(&e, &p);
	assert_int_equal(p.header_len, e.header_len);
	assert_memory_equal(b.data + p.header_len, "Subject: x\n", 11);
	for (size_t i = 0; i < p.nrcpt; i++) {
		assert_int_equal(p.rcpt[i].state_off, e.rcpt[i].state_off);
		assert_int_equal(b.data[p.rcpt[i].state_off], p.rcpt[i].state);
		assert_memory_equal(b.data + p.rcpt[i].state_off - 5, "rcpt ", 5);
	}
	assert_int_equal(envelope_pending(&p), 1);
	envelope_free(&e);
	envelope_free(&p);
	buf_free(&b);
}

/* Round trip with only the required keys: optional ones stay unset. */
static void
test_roundtrip_min(void **state)
{
	struct envelope e, p;
	struct buf b = BUF_INIT;

	(void)state;
	fill_min(&e);
	assert_int_equal(envelope_format(&e, &b), 0);
	assert_non_null(strstr(b.data, "\nfrom <>\n"));
	assert_null(strstr(b.data, "user"));
	assert_null(strstr(b.data, "ret "));
	parse_ok(b.data, b.len, &p);
	assert_env_equal(&e, &p);
	assert_true(p.user == -1);
	assert_null(p.client);
	assert_string_equal(p.from, "");
	assert_true(p.trusted);
	envelope_free(&e);
	envelope_free(&p);
	buf_free(&b);
}

/*
 * A report's report-for record ("UID R,R,..."): written after source,
 * parsed back; a malformed value is corrupt on parse and refused on
 * format.
 */
static void
test_report_for(void **state)
{
	static const char *const bad[] = {
		"", UID, UID " ", UID " 1,", UID " ,1", UID " 1,,2",
		UID " 01", UID " 1 2", UID "  1", UID " -1", UID " 1234567890",
		"6F1C0D9BE3A14C2E8D7F5A9B0C1D2E3F 1", "6f1c 1",
	};
	struct envelope e, p;
	struct buf b = BUF_INIT;

	(void)state;
	fill_min(&e);
	e.report_for = strdup(UID " 0,2,10");
	e.source = strdup("x");
	assert_int_equal(envelope_format(&e, &b), 0);
	assert_non_null(strstr(b.data,
	    "\nsource x\nreport-for " UID " 0,2,10\nsize 0\n"));
	parse_ok(b.data, b.len, &p);
	assert_env_equal(&e, &p);
	envelope_free(&p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf t = BUF_INIT;
		const char *at = strstr(b.data, "report-for ");
		const char *eol = strchr(at, '\n');
		const char *why = NULL;
		unsigned line = 0;

		assert_int_equal(buf_printf(&t, "%.*sreport-for %s%s",
		    (int)(at - b.data), b.data, bad[i], eol), 0);
		if (envelope_parse(t.data, t.len, &p, &why, &line) != -EINVAL)
			fail_msg("case %zu (%s) parsed", i, bad[i]);
		assert_string_equal(why,
		    "report-for is not a uid and recipient indices");
		free(e.report_for);	/* and format refuses it */
		e.report_for = strdup(bad[i]);
		buf_reset(&t);
		if (envelope_format(&e, &t) != -EINVAL)
			fail_msg("case %zu (%s) formatted", i, bad[i]);
		buf_free(&t);
	}
	envelope_free(&e);
	buf_free(&b);
}

/* Offsets are relative to out->len on entry; rewriting a state works. */
static void
test_format_offsets_relative(void **state)
{
	struct envelope e, p;
	struct buf b = BUF_INIT;
	size_t start;

	(void)state;
	fill_full(&e);
	assert_int_equal(buf_puts(&b, "PREFIX"), 0);
	start = b.len;
	assert_int_equal(envelope_format(&e, &b), 0);
	assert_int_equal(e.header_len, sizeof(full_text) - 1);
	for (size_t i = 0; i < e.nrcpt; i++)
		assert_int_equal(b.data[start + e.rcpt[i].state_off],
			e.rcpt[i].state);
	/* the store's in-place update: P -> D */
	b.data[start + e.rcpt[0].state_off] = RCPT_DELIVERED;
	parse_ok(b.data + start, b.len - start, &p);
	assert_int_equal(p.rcpt[0].state, RCPT_DELIVERED);
	assert_int_equal(envelope_pending(&p), 0);
	envelope_free(&e);
	envelope_free(&p);
	buf_free(&b);
}

/* The example of docs/QUEUE.md parses; records may come in any order. */
static void
test_parse_doc_example_and_order(void **state)
{
	static const char doc[] =
		"mailpipe-queue 1\n"
		"uid 6f1c0d9be3a14c2e8d7f5a9b0c1d2e3f\n"
		"tag PIPE\n"
		"submitted 1763892300\n"
		"from <joe@example.com>\n"
		"user 1000\n"
		"trusted yes\n"
		"size 4096\n"
		"rcpt P 0 - <list@lists.example>\n"
		"rcpt D 6 rfc822;bob@example.com <bob@example.com>\n"
		"end\n"
		"\n"
		"Received: from local user 1000\n";
	static const char shuffled[] =
		"mailpipe-queue 1\n"
		"rcpt P 0 - <a@b.example>\n"
		"size 1\n"
		"trusted no\n"
		"from <>\n"
		"submitted 0\n"
		"tag DSN\n"
		"uid 00000000000000000000000000000000\n"
		"end\n"
		"\n";
	struct envelope e;

	(void)state;
	parse_ok(doc, sizeof(doc) - 1, &e);
	assert_string_equal(e.tag, "PIPE");
	assert_true(e.user == 1000);
	assert_int_equal(e.nrcpt, 2);
	assert_string_equal(e.rcpt[1].orcpt, "rfc822;bob@example.com");
	assert_int_equal(e.rcpt[1].notify, NOTIFY_SUCCESS | NOTIFY_FAILURE);
	assert_null(e.rcpt[0].orcpt);
	assert_int_equal(doc[e.rcpt[1].state_off], 'D');
	assert_memory_equal(doc + e.header_len, "Received:", 9);
	envelope_free(&e);

	parse_ok(shuffled, sizeof(shuffled) - 1, &e);
	assert_string_equal(e.tag, "DSN");
	assert_int_equal(e.rcpt[0].state_off, 17 + 5);
	assert_int_equal(e.header_len, sizeof(shuffled) - 1);
	envelope_free(&e);
}

/* Numbers at the limits of their types. */
static void
test_parse_number_limits(void **state)
{
	static const char text[] =
		"mailpipe-queue 1\nuid " UID "\ntag A\n"
		"submitted 9223372036854775807\nfrom <>\n"
		"user 0\ntrusted no\nsize 18446744073709551615\n"
		"rcpt P 14 - <a@b>\nend\n\n";
	struct envelope e;

	(void)state;
	parse_ok(text, sizeof(text) - 1, &e);
	assert_true(e.submitted == INT64_MAX);
	assert_true(e.size == UINT64_MAX);
	assert_true(e.user == 0);
	assert_int_equal(e.rcpt[0].notify,
		NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY);
	envelope_free(&e);
}

/* One corruption case: find in full_text, replace, expect -EINVAL. */
struct corrupt_case {
	const char *find;	/* text of full_text to replace */
	const char *repl;
	unsigned line;		/* expected line (0 = do not check) */
};

static const struct corrupt_case corrupt_cases[] = {
	/* version line */
	{ "mailpipe-queue 1\n", "mailpipe-queue 2\n", 1 },
	{ "mailpipe-queue 1\n", "mailpipe-queue 1 \n", 1 },
	{ "mailpipe-queue 1\n", "MAILPIPE-QUEUE 1\n", 1 },
	{ "mailpipe-queue 1\nuid " UID "\n", "uid " UID "\nmailpipe-queue 1\n",
	  1 },
	{ "mailpipe-queue 1\n", "\nmailpipe-queue 1\n", 1 },
	/* unknown, duplicate, missing keys */
	{ "tag SMTP\n", "tag SMTP\ncolour blue\n", 4 },
	{ "tag SMTP\n", "tag SMTP\nTAG SMTP\n", 4 },
	{ "tag SMTP\n", "tag SMTP\ntag SMTP\n", 4 },
	{ "size 4096\n", "size 4096\nuid " UID "\n", 14 },
	{ "size 4096\n", "size 4096\nfrom <a@b>\n", 14 },
	{ "user 1000\n", "user 1000\nuser 1000\n", 7 },
	{ "ret HDRS\n", "ret HDRS\nret HDRS\n", 11 },
	{ "uid " UID "\n", "", 16 },
	{ "tag SMTP\n", "", 16 },
	{ "submitted 1763892300\n", "", 16 },
	{ "from <joe@example.com>\n", "", 16 },
	{ "trusted no\n", "", 16 },
	{ "size 4096\n", "", 16 },
	{ "rcpt P 0 - <list@lists.example>\n"
	  "rcpt D 6 rfc822;bob@example.com <bob@example.com>\n"
	  "rcpt F 1 - <\"a b\"@example.org>\n", "", 14 },
	/* key/value layout */
	{ "tag SMTP\n", "tag\n", 3 },
	{ "tag SMTP\n", "tag \n", 3 },
	{ "tag SMTP\n", "tag  SMTP\n", 3 },
	{ "end\n", "end now\n", 17 },
	{ "end\n", " end\n", 17 },
	/* control bytes and CR */
	{ "helo mail.example.net\n", "helo mail.example.net\r\n", 8 },
	{ "helo mail.example.net\n", "helo mail\texample.net\n", 8 },
	{ "helo mail.example.net\n", "helo mail\x7f" "example.net\n", 8 },
	{ "helo mail.example.net\n", "helo mail\x01.net\n", 8 },
	{ "source Submitted/x.sub", "source Sub\x1bmitted/x.sub", 12 },
	{ "client 192.0.2.1\n", "client 192.0.2.1\r\n", 7 },
	{ "end\n", "end\r\n", 17 },
	/* numbers */
	{ "submitted 1763892300", "submitted -1763892300", 4 },
	{ "submitted 1763892300", "submitted +1763892300", 4 },
	{ "submitted 1763892300", "submitted 01763892300", 4 },
	{ "submitted 1763892300", "submitted 9223372036854775808", 4 },
	{ "submitted 1763892300", "submitted 17x", 4 },
	{ "user 1000", "user -1", 6 },
	{ "user 1000", "user 0x10", 6 },
	{ "size 4096", "size 18446744073709551616", 13 },
	{ "size 4096", "size 4096 ", 13 },
	{ "size 4096", "size  4096", 13 },
	/* uid */
	{ UID, "6F1C0D9BE3A14C2E8D7F5A9B0C1D2E3F", 2 },
	{ UID, "6f1c0d9be3a14c2e8d7f5a9b0c1d2e3", 2 },
	{ UID, "6f1c0d9be3a14c2e8d7f5a9b0c1d2e3f0", 2 },
	{ UID, "6f1c0d9be3a14c2e8d7f5a9b0c1d2e3g", 2 },
	/* tag */
	{ "tag SMTP", "tag smtp", 3 },
	{ "tag SMTP", "tag SMTP1", 3 },
	{ "tag SMTP", "tag ABCDEFGHIJKLMNOPQ", 3 },
	{ "tag SMTP", "tag S-MTP", 3 },
	/* trusted, ret, envid */
	{ "trusted no", "trusted No", 9 },
	{ "trusted no", "trusted 0", 9 },
	{ "trusted no", "trusted yess", 9 },
	{ "ret HDRS", "ret hdrs", 10 },
	{ "ret HDRS", "ret BODY", 10 },
	{ "envid QQ314159+2B", "envid QQ 314159", 11 },
	{ "envid QQ314159+2B", "envid QQ\xc3\xa9", 11 },
	{ "client 192.0.2.1", "client ", 7 },
	/* from */
	{ "from <joe@example.com>", "from joe@example.com", 5 },
	{ "from <joe@example.com>", "from <joe@example.com", 5 },
	{ "from <joe@example.com>", "from joe@example.com>", 5 },
	{ "from <joe@example.com>", "from <joe>", 5 },
	{ "from <joe@example.com>", "from <joe@>", 5 },
	{ "from <joe@example.com>", "from <a b@example.com>", 5 },
	{ "from <joe@example.com>", "from <>x", 5 },
	{ "from <joe@example.com>", "from < >", 5 },
	/* rcpt */
	{ "rcpt P 0 - <list", "rcpt X 0 - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt p 0 - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt PP 0 - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt  P 0 - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt P 16 - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt P 3 - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt P 9 - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt P -1 - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt P 00 - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt P  - <list", 14 },
	{ "rcpt P 0 - <list", "rcpt P 0 <list", 14 },
	{ "rcpt P 0 - <list", "rcpt P 0  <list", 14 },
	{ "rcpt P 0 - <list", "rcpt P 0 r\xc3\xa9 <list", 14 },
	{ "rcpt P 0 - <list@lists.example>", "rcpt P 0 - <>", 14 },
	{ "rcpt P 0 - <list@lists.example>", "rcpt P 0 - list@lists.example",
	  14 },
	{ "rcpt P 0 - <list@lists.example>", "rcpt P 0 - <list>", 14 },
	{ "rcpt P 0 - <list@lists.example>", "rcpt P 0 -", 14 },
	{ "rcpt P 0 - <list@lists.example>", "rcpt P 0", 14 },
	{ "rcpt P 0 - <list@lists.example>", "rcpt P", 14 },
	{ "rcpt P 0 - <list@lists.example>", "rcpt", 14 },
	{ "rcpt P 0 - <list@lists.example>", "rcpt P 0 - <list@lists.example> ",
	  14 },
	/* the end and the empty line */
	{ "end\n\n", "end\nx\n\n", 18 },
	{ "end\n\n", "end\nend\n\n", 18 },
	{ "end\n\n", "\n", 17 },
	{ "size 4096\n", "size 4096\n\n", 14 },
	{ "end\n\n", "ends\n\n", 17 },
	/* pad: a run of '-', at most once */
	{ "end\n", "pad\nend\n", 17 },
	{ "end\n", "pad \nend\n", 17 },
	{ "end\n", "pad -x-\nend\n", 17 },
	{ "end\n", "pad - -\nend\n", 17 },
	{ "end\n", "pad ---\npad -\nend\n", 18 },
	{ "end\n", "pad ---\r\nend\n", 17 },
	{ "end\n", "PAD ---\nend\n", 17 },
};

/* Build full_text with one replacement applied. */
static char *
corrupt_text(const struct corrupt_case *c, size_t *len)
{
	const char *at = strstr(full_text, c->find);
	size_t pre, fl = strlen(c->find), rl = strlen(c->repl);
	char *t;

	assert_non_null(at);
	pre = (size_t)(at - full_text);
	*len = sizeof(full_text) - 1 - fl + rl;
	t = malloc(*len + 1);
	assert_non_null(t);
	memcpy(t, full_text, pre);
	memcpy(t + pre, c->repl, rl);
	memcpy(t + pre + rl, at + fl, sizeof(full_text) - pre - fl);
	return t;
}

/* Every corruption rule gives -EINVAL, a reason and the right line. */
static void
test_parse_corrupt(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]);
	    i++) {
		const struct corrupt_case *c = &corrupt_cases[i];
		struct envelope e;
		const char *why = NULL;
		unsigned line = 0;
		size_t len;
		char *t = corrupt_text(c, &len);
		int r = envelope_parse(t, len, &e, &why, &line);

		if (r != -EINVAL)
			fail_msg("case %zu (%s -> %s): got %d", i, c->find,
				c->repl, r);
		assert_non_null(why);
		if (c->line != 0 && line != c->line)
			fail_msg("case %zu (%s -> %s): line %u, want %u (%s)",
				i, c->find, c->repl, line, c->line, why);
		/* e is left empty */
		assert_null(e.tag);
		assert_int_equal(e.nrcpt, 0);
		/* adding data after a corrupt envelope changes nothing */
		r = envelope_parse(t, len, &e, NULL, NULL);
		assert_int_equal(r, -EINVAL);
		free(t);
	}
}

/* A NUL byte inside a value is corrupt, not the end of the text. */
static void
test_parse_nul(void **state)
{
	char t[sizeof(full_text)];
	struct envelope e;
	const char *why = NULL;
	unsigned line = 0;
	char *p;

	(void)state;
	memcpy(t, full_text, sizeof(full_text));
	p = strstr(t, "mail.example.net");
	p[4] = '\0';
	assert_int_equal(envelope_parse(t, sizeof(full_text) - 1, &e, &why,
		&line), -EINVAL);
	assert_int_equal(line, 8);
	/* NUL in a key */
	memcpy(t, full_text, sizeof(full_text));
	strstr(t, "tag SMTP")[1] = '\0';
	assert_int_equal(envelope_parse(t, sizeof(full_text) - 1, &e, &why,
		&line), -EINVAL);
	assert_int_equal(line, 3);
}

/* Every proper prefix of a valid envelope is -EAGAIN, never -EINVAL. */
static void
test_parse_truncated(void **state)
{
	struct envelope e;
	struct buf b = BUF_INIT;

	(void)state;
	fill_full(&e);
	assert_int_equal(envelope_format(&e, &b), 0);
	envelope_free(&e);
	for (size_t n = 0; n < b.len; n++) {
		/* copy so ASan sees reads past the prefix */
		char *t = malloc(n ? n : 1);
		int r;

		assert_non_null(t);
		memcpy(t, b.data, n);
		r = envelope_parse(t, n, &e, NULL, NULL);
		if (r != -EAGAIN)
			fail_msg("prefix %zu gives %d", n, r);
		assert_null(e.tag);
		free(t);
	}
	parse_ok(b.data, b.len, &e);
	envelope_free(&e);
	/* also with the minimal envelope and the empty data pointer */
	assert_int_equal(envelope_parse(NULL, 0, &e, NULL, NULL), -EAGAIN);
	buf_reset(&b);
	fill_min(&e);
	assert_int_equal(envelope_format(&e, &b), 0);
	envelope_free(&e);
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(envelope_parse(b.data, n, &e, NULL, NULL),
			-EAGAIN);
	buf_free(&b);
}

/* A prefix that is already wrong is -EINVAL before its line ends. */
static void
test_parse_bad_prefix_early(void **state)
{
	static const char *const bad[] = {
		"x",
		"mailpipe-queue 2",
		"mailpipe-queue 1\nuid 6F",
		"mailpipe-queue 1\nuid " UID "0",
		"mailpipe-queue 1\nbogus",
		"mailpipe-queue 1\nuid " UID "\nuid",
		"mailpipe-queue 1\ntag abc",
		"mailpipe-queue 1\nsubmitted -",
		"mailpipe-queue 1\nsubmitted 01",
		"mailpipe-queue 1\nsize 99999999999999999999",
		"mailpipe-queue 1\ntrusted ye5",
		"mailpipe-queue 1\nret FULX",
		"mailpipe-queue 1\nfrom joe",
		"mailpipe-queue 1\nhelo a\r",
		"mailpipe-queue 1\nrcpt X",
		"mailpipe-queue 1\nrcpt P1",
		"mailpipe-queue 1\nrcpt P 16",
		"mailpipe-queue 1\nrcpt P 3 ",
		"mailpipe-queue 1\nrcpt P 0 a b",
		"mailpipe-queue 1\nrcpt P 0 - a",
		"mailpipe-queue 1\nend",
		"mailpipe-queue 1\nend ",
		"mailpipe-queue 1\n\n",
		"mailpipe-queue 1\npad -+",
		"mailpipe-queue 1\npad --\npad",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct envelope e;
		const char *why = NULL;
		int r = envelope_parse(bad[i], strlen(bad[i]), &e, &why, NULL);

		if (r != -EINVAL)
			fail_msg("\"%s\" gives %d", bad[i], r);
		assert_non_null(why);
	}
}

/* The data ends right after "end\n": more is needed; junk after: bad. */
static void
test_parse_after_end(void **state)
{
	struct envelope e;
	size_t n = sizeof(full_text) - 2;	/* through "end\n" */
	char *t = strdup(full_text);

	(void)state;
	assert_int_equal(envelope_parse(full_text, n, &e, NULL, NULL),
		-EAGAIN);
	t[n] = 'S';
	assert_int_equal(envelope_parse(t, n + 1, &e, NULL, NULL), -EINVAL);
	free(t);
}

/* A pad record anywhere before "end" is accepted and changes nothing. */
static void
test_parse_pad_anywhere(void **state)
{
	static const char *const after[] = {
		"mailpipe-queue 1\n", "size 4096\n",
		"rcpt P 0 - <list@lists.example>\n",
		"rcpt F 1 - <\"a b\"@example.org>\n",
	};
	struct envelope want, e;

	(void)state;
	fill_full(&want);
	for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		struct buf b = BUF_INIT;
		const char *at = strstr(full_text, after[i]) + strlen(after[i]);

		assert_int_equal(buf_append(&b, full_text,
			(size_t)(at - full_text)), 0);
		assert_int_equal(buf_puts(&b, "pad ------\n"), 0);
		assert_int_equal(buf_puts(&b, at), 0);
		parse_ok(b.data, b.len, &e);
		assert_env_equal(&want, &e);
		assert_int_equal(e.header_len, b.len);
		envelope_free(&e);
		for (size_t n = 0; n < b.len; n++)
			assert_int_equal(envelope_parse(b.data, n, &e, NULL,
				NULL), -EAGAIN);
		buf_free(&b);
	}
	envelope_free(&want);
}

/*
 * The reserved room fits the padded envelope exactly for every size from
 * 0 to 2^64-1, and the result parses back with that size.
 */
static void
test_format_padded(void **state)
{
	static const uint64_t sizes[] = {
		0, 9, 10, 4096, 999999999, 1000000000000ULL,
		9999999999999999999ULL, UINT64_MAX,
	};
	struct envelope e, p;
	size_t room;

	(void)state;
	fill_full(&e);
	assert_int_equal(envelope_reserve(&e, &room), 0);
	/* the unpadded envelope with 20 digits, plus the shortest pad */
	assert_int_equal(room, sizeof(full_text) - 1 - 4 + 20 +
		ENVELOPE_PAD_MIN);
	assert_true(e.size == 4096);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct buf b = BUF_INIT;

		assert_int_equal(buf_puts(&b, "x"), 0);	/* offsets relative */
		e.size = sizes[i];
		assert_int_equal(envelope_format_padded(&e, room, &b), 0);
		assert_int_equal(b.len, room + 1);
		assert_int_equal(e.header_len, room);
		assert_non_null(strstr(b.data, "\npad -"));
		assert_non_null(strstr(b.data, "-\nend\n\n"));
		parse_ok(b.data + 1, b.len - 1, &p);
		assert_true(p.size == sizes[i]);
		assert_int_equal(p.header_len, room);
		for (size_t k = 0; k < p.nrcpt; k++) {
			assert_int_equal(p.rcpt[k].state_off,
				e.rcpt[k].state_off);
			assert_int_equal(b.data[1 + p.rcpt[k].state_off],
				p.rcpt[k].state);
		}
		envelope_free(&p);
		buf_free(&b);
	}
	envelope_free(&e);
}

/* Exact fit needs no pad; a gap of 1-5 bytes or too little room fails. */
static void
test_format_padded_limits(void **state)
{
	struct envelope e;
	struct buf b = BUF_INIT;
	size_t len;

	(void)state;
	fill_full(&e);
	assert_int_equal(envelope_format(&e, &b), 0);
	len = b.len;
	buf_reset(&b);
	assert_int_equal(envelope_format_padded(&e, len, &b), 0);
	assert_string_equal(b.data, full_text);
	for (size_t gap = 1; gap < ENVELOPE_PAD_MIN; gap++) {
		buf_reset(&b);
		assert_int_equal(buf_puts(&b, "keep"), 0);
		assert_int_equal(envelope_format_padded(&e, len + gap, &b),
			-ERANGE);
		assert_string_equal(b.data, "keep");
	}
	buf_reset(&b);
	assert_int_equal(envelope_format_padded(&e, len - 1, &b), -ERANGE);
	assert_int_equal(b.len, 0);
	buf_reset(&b);
	assert_int_equal(envelope_format_padded(&e, len + ENVELOPE_PAD_MIN,
		&b), 0);
	assert_non_null(strstr(b.data, "\npad -\nend\n\n"));
	/* a value the parser would refuse: refused, as by envelope_format */
	free(e.tag);
	e.tag = strdup("bad tag");
	assert_int_equal(envelope_reserve(&e, &len), -EINVAL);
	envelope_free(&e);
	buf_free(&b);
}

/* format refuses every value the parser would refuse, leaving out alone. */
static void
test_format_refuses(void **state)
{
	(void)state;
	for (int c = 0; c < 31; c++) {
		struct envelope e;
		struct buf b = BUF_INIT;

		fill_full(&e);
		switch (c) {
		case 0: e.uid[0] = '\0'; break;
		case 1: e.uid[3] = 'G'; break;
		case 2: free(e.tag); e.tag = NULL; break;
		case 3: free(e.tag); e.tag = strdup("Smtp"); break;
		case 4: e.submitted = -1; break;
		case 5: e.user = -2; break;
		case 6: free(e.from); e.from = NULL; break;
		case 7: free(e.from); e.from = strdup("joe"); break;
		case 8: free(e.from); e.from = strdup("a\r@b"); break;
		case 9: free(e.helo); e.helo = strdup("a\nb"); break;
		case 10: free(e.helo); e.helo = strdup(""); break;
		case 11: free(e.client); e.client = strdup("a\rb"); break;
		case 12: free(e.source); e.source = strdup("x\001"); break;
		case 13: free(e.ret); e.ret = strdup("BODY"); break;
		case 14: free(e.envid); e.envid = strdup("a b"); break;
		case 15: free(e.envid); e.envid = strdup(""); break;
		case 16: e.rcpt[0].state = 'X'; break;
		case 17: e.rcpt[0].notify = NOTIFY_NEVER | NOTIFY_DELAY; break;
		case 18: e.rcpt[0].notify = 16; break;
		case 19: free(e.rcpt[0].addr); e.rcpt[0].addr = strdup(""); break;
		case 20: free(e.rcpt[0].addr); e.rcpt[0].addr = strdup("x"); break;
		case 21: e.rcpt[0].orcpt = strdup("-"); break;
		case 22: e.rcpt[0].orcpt = strdup("rfc822;a b"); break;
		case 23: e.rcpt[0].orcpt = strdup(""); break;
		case 24:
			for (size_t i = 0; i < e.nrcpt; i++) {
				free(e.rcpt[i].addr);
				free(e.rcpt[i].orcpt);
			}
			e.nrcpt = 0;
			break;
		case 25: free(e.rcpt[1].addr); e.rcpt[1].addr = NULL; break;
		case 26: free(e.tag); e.tag = strdup(""); break;
		case 27: free(e.tag); e.tag = strdup("ABCDEFGHIJKLMNOPQ"); break;
		case 28: free(e.source); e.source = strdup("a\x7f"); break;
		case 29: free(e.rcpt[2].addr); e.rcpt[2].addr = strdup("a\n@b"); break;
		case 30: free(e.ret); e.ret = strdup("full"); break;
		}
		assert_int_equal(buf_puts(&b, "keep"), 0);
		if (envelope_format(&e, &b) != -EINVAL)
			fail_msg("case %d was accepted", c);
		assert_int_equal(b.len, 4);
		assert_string_equal(b.data, "keep");
		envelope_free(&e);
		buf_free(&b);
	}
}

/* add_rcpt copies, starts pending, refuses NULL; free re-inits. */
static void
test_add_rcpt_and_free(void **state)
{
	struct envelope e;
	char addr[] = "x@y";

	(void)state;
	envelope_init(&e);
	assert_true(e.user == -1);
	assert_string_equal(e.uid, "");
	assert_int_equal(envelope_add_rcpt(&e, NULL, NULL, 0), -EINVAL);
	assert_int_equal(envelope_add_rcpt(&e, addr, "rfc822;x@y", 4), 0);
	addr[0] = 'z';
	assert_string_equal(e.rcpt[0].addr, "x@y");
	assert_int_equal(e.rcpt[0].state, RCPT_PENDING);
	assert_int_equal(envelope_pending(&e), 1);
	envelope_free(&e);
	assert_int_equal(e.nrcpt, 0);
	assert_null(e.rcpt);
	assert_true(e.user == -1);
}

/* NOTIFY keyword lists (RFC 3461). */
static void
test_notify_parse(void **state)
{
	unsigned bits = 99;

	(void)state;
	assert_int_equal(envelope_notify_parse("NEVER", &bits), 0);
	assert_int_equal(bits, NOTIFY_NEVER);
	assert_int_equal(envelope_notify_parse("SUCCESS,FAILURE", &bits), 0);
	assert_int_equal(bits, NOTIFY_SUCCESS | NOTIFY_FAILURE);
	assert_int_equal(envelope_notify_parse("delay,Success,FAILURE", &bits),
		0);
	assert_int_equal(bits, NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY);
	assert_int_equal(envelope_notify_parse("never", &bits), 0);
	assert_int_equal(bits, NOTIFY_NEVER);
	assert_int_equal(envelope_notify_parse("DELAY,DELAY", &bits), 0);
	assert_int_equal(bits, NOTIFY_DELAY);
	bits = 99;
	assert_int_equal(envelope_notify_parse("NEVER,SUCCESS", &bits),
		-EINVAL);
	assert_int_equal(envelope_notify_parse("FAILURE,NEVER", &bits),
		-EINVAL);
	assert_int_equal(envelope_notify_parse("", &bits), -EINVAL);
	assert_int_equal(envelope_notify_parse(NULL, &bits), -EINVAL);
	assert_int_equal(envelope_notify_parse("SUCCESS,", &bits), -EINVAL);
	assert_int_equal(envelope_notify_parse(",SUCCESS", &bits), -EINVAL);
	assert_int_equal(envelope_notify_parse("SUCCESS FAILURE", &bits),
		-EINVAL);
	assert_int_equal(envelope_notify_parse("SUCCES", &bits), -EINVAL);
	assert_int_equal(envelope_notify_parse("SUCCESSX", &bits), -EINVAL);
	assert_int_equal(bits, 99);
}

/* New uids are 32 lower-case hex digits, different, and parse. */
static void
test_new_uid(void **state)
{
	char a[ENVELOPE_UID_LEN + 1], b[ENVELOPE_UID_LEN + 1];
	struct envelope e, p;
	struct buf out = BUF_INIT;

	(void)state;
	memset(a, 'x', sizeof(a));
	assert_int_equal(envelope_new_uid(a), 0);
	assert_int_equal(envelope_new_uid(b), 0);
	assert_int_equal(strlen(a), ENVELOPE_UID_LEN);
	assert_int_equal(strspn(a, "0123456789abcdef"), ENVELOPE_UID_LEN);
	assert_string_not_equal(a, b);
	fill_min(&e);
	memcpy(e.uid, a, sizeof(a));
	assert_int_equal(envelope_format(&e, &out), 0);
	parse_ok(out.data, out.len, &p);
	assert_string_equal(p.uid, a);
	envelope_free(&e);
	envelope_free(&p);
	buf_free(&out);
}

/* Run every test. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_exact),
		cmocka_unit_test(test_roundtrip_full),
		cmocka_unit_test(test_roundtrip_min),
		cmocka_unit_test(test_report_for),
		cmocka_unit_test(test_format_offsets_relative),
		cmocka_unit_test(test_parse_doc_example_and_order),
		cmocka_unit_test(test_parse_number_limits),
		cmocka_unit_test(test_parse_corrupt),
		cmocka_unit_test(test_parse_nul),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_bad_prefix_early),
		cmocka_unit_test(test_parse_after_end),
		cmocka_unit_test(test_format_refuses),
		cmocka_unit_test(test_parse_pad_anywhere),
		cmocka_unit_test(test_format_padded),
		cmocka_unit_test(test_format_padded_limits),
		cmocka_unit_test(test_add_rcpt_and_free),
		cmocka_unit_test(test_notify_parse),
		cmocka_unit_test(test_new_uid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
