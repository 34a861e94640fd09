/*
 * Unit tests for address.c: RFC 5321 mailbox parsing, refusal of every bad
 * form with a reason, canonical formatting and the parse/format round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "text.h"

/* Parse s (C string) with flags; returns the result code. */
static int
parse(const char *s, unsigned flags, struct address *a, const char **why)
{
	return address_parse(s, strlen(s), flags, a, why);
}

/* s parses to local/domain and formats back to canonical. */
static void
check_ok(const char *s, unsigned flags, const char *local,
	const char *domain, const char *canonical)
{
	struct address a = ADDRESS_INIT, b = ADDRESS_INIT;
	const char *why = NULL;
	char *out = NULL;

	if (parse(s, flags, &a, &why) != 0)
		fail_msg("'%s' refused: %s", s, why);
	assert_string_equal(a.local, local);
	if (domain == NULL)
		assert_null(a.domain);
	else
		assert_string_equal(a.domain, domain);
	assert_int_equal(address_format(&a, &out), 0);
	assert_string_equal(out, canonical);
	/* round trip: parse(format(a)) == a */
	assert_int_equal(parse(out, flags, &b, &why), 0);
	assert_string_equal(b.local, a.local);
	if (domain == NULL)
		assert_null(b.domain);
	else
		assert_string_equal(b.domain, a.domain);
	free(out);
	address_free(&a);
	address_free(&b);
	assert_null(a.local);
}

/* s is refused with -EINVAL and the reason why_expected. */
static void
check_bad(const char *s, size_t len, unsigned flags, const char *why_expected)
{
	struct address a = ADDRESS_INIT;
	const char *why = NULL;

	if (address_parse(s, len, flags, &a, &why) != -EINVAL)
		fail_msg("'%s' accepted", s);
	assert_non_null(why);
	assert_string_equal(why, why_expected);
	assert_null(a.local);
	assert_null(a.domain);
}

/* Ordinary dot-strings and domains. */
static void
test_valid_plain(void **state)
{
	(void)state;
	check_ok("joe@example.org", 0, "joe", "example.org", "joe@example.org");
	check_ok("Joe.Smith@Example.ORG", 0, "Joe.Smith", "Example.ORG",
		"Joe.Smith@Example.ORG");
	check_ok("a!#$%&'*+-/=?^_`{|}~z@x", 0, "a!#$%&'*+-/=?^_`{|}~z", "x",
		"a!#$%&'*+-/=?^_`{|}~z@x");
	check_ok("x@a-b.c-d.e", 0, "x", "a-b.c-d.e", "x@a-b.c-d.e");
	check_ok("-joe@x", 0, "-joe", "x", "-joe@x");
	check_ok("1@2", 0, "1", "2", "1@2");
}

/* Quoted local parts unquote; format quotes only when needed. */
static void
test_valid_quoted(void **state)
{
	(void)state;
	check_ok("\"joe smith\"@lists.example", 0, "joe smith",
		"lists.example", "\"joe smith\"@lists.example");
	check_ok("\"joe\"@x", 0, "joe", "x", "joe@x");
	check_ok("\"a\\\"b\"@x", 0, "a\"b", "x", "\"a\\\"b\"@x");
	check_ok("\"a\\\\b\"@x", 0, "a\\b", "x", "\"a\\\\b\"@x");
	check_ok("\"\\q\"@x", 0, "q", "x", "q@x");
	check_ok("\"a@b\"@x", 0, "a@b", "x", "\"a@b\"@x");
	check_ok("\".joe\"@x", 0, ".joe", "x", "\".joe\"@x");
	check_ok("\"a..b\"@x", 0, "a..b", "x", "\"a..b\"@x");
	check_ok("\"[FILE] app -x\"@pipe", 0, "[FILE] app -x", "pipe",
		"\"[FILE] app -x\"@pipe");
	check_bad("\"a b\"@\"c\"@x", 11, 0, "bad character in domain");
}

/* The split is at the last '@' outside quotes. */
static void
test_last_at(void **state)
{
	struct address a = ADDRESS_INIT;

	(void)state;
	check_bad("a@b@c", 5, 0, "bad local part");
	assert_int_equal(parse("\"a@b\"@c", 0, &a, NULL), 0);
	assert_string_equal(a.local, "a@b");
	assert_string_equal(a.domain, "c");
	address_free(&a);
}

/* SMTPUTF8 octets in local part and domain. */
static void
test_utf8(void **state)
{
	(void)state;
	check_ok("j\xc3\xb6rg@b\xc3\xbc" "cher.example", 0, "j\xc3\xb6rg",
		"b\xc3\xbc" "cher.example", "j\xc3\xb6rg@b\xc3\xbc" "cher.example");
	check_ok("\"j\xc3\xb6 rg\"@x", 0, "j\xc3\xb6 rg", "x",
		"\"j\xc3\xb6 rg\"@x");
}

/* Address literals, checked with inet_pton. */
static void
test_literals(void **state)
{
	(void)state;
	check_ok("a@[192.0.2.1]", 0, "a", "[192.0.2.1]", "a@[192.0.2.1]");
	check_ok("a@[IPv6:2001:db8::1]", 0, "a", "[IPv6:2001:db8::1]",
		"a@[IPv6:2001:db8::1]");
	check_ok("a@[ipv6:::1]", 0, "a", "[ipv6:::1]", "a@[ipv6:::1]");
	check_bad("a@[192.0.2.256]", 15, 0, "bad IPv4 address literal");
	check_bad("a@[192.0.2]", 11, 0, "bad IPv4 address literal");
	check_bad("a@[2001:db8::1]", 15, 0, "bad IPv4 address literal");
	check_bad("a@[IPv6:1.2.3.4]", 16, 0, "bad IPv6 address literal");
	check_bad("a@[IPv6:zz::1]", 14, 0, "bad IPv6 address literal");
	check_bad("a@[1.2.3.4", 10, 0, "bad address literal");
	check_bad("a@[]", 4, 0, "bad address literal");
	check_bad("a@[", 3, 0, "bad address literal");
	check_bad("a@[1.2.3.4]x", 12, 0, "bad address literal");
}

/* Bad local parts. */
static void
test_bad_local(void **state)
{
	(void)state;
	check_bad("@x", 2, 0, "empty local part");
	check_bad("\"\"@x", 4, 0, "empty local part");
	check_bad(".joe@x", 6, 0, "bad local part");
	check_bad("joe.@x", 6, 0, "bad local part");
	check_bad("jo..e@x", 7, 0, "bad local part");
	check_bad("jo e@x", 6, 0, "bad local part");
	check_bad("jo(e)@x", 7, 0, "bad local part");
	check_bad("a\\b@x", 5, 0, "bad local part");
	check_bad("jo\"e\"@x", 7, 0, "misplaced quote in local part");
	check_bad("\"joe@x", 6, 0, "unbalanced quotes");
	check_bad("\"joe\\\"@x", 8, 0, "unbalanced quotes");
	check_bad("\"joe\\", 5, 0, "unbalanced quotes");
	check_bad("\"joe\"x@y", 8, 0, "text after the quoted local part");
	check_bad("\"joe\" @y", 8, 0, "text after the quoted local part");
}

/* Bad domains. */
static void
test_bad_domain(void **state)
{
	(void)state;
	check_bad("joe", 3, 0, "missing '@'");
	check_bad("\"joe\"", 5, 0, "missing '@'");
	check_bad("joe@", 4, 0, "empty domain");
	check_bad("joe@.x", 6, 0, "empty label in domain");
	check_bad("joe@x.", 6, 0, "empty label in domain");
	check_bad("joe@x..y", 8, 0, "empty label in domain");
	check_bad("joe@-x.y", 8, 0, "domain label begins with '-'");
	check_bad("joe@x.-y", 8, 0, "domain label begins with '-'");
	check_bad("joe@x-.y", 8, 0, "domain label ends with '-'");
	check_bad("joe@x-", 6, 0, "domain label ends with '-'");
	check_bad("joe@x_y", 7, 0, "bad character in domain");
	check_bad("joe@x y", 7, 0, "bad character in domain");
	check_bad("joe@x>", 6, 0, "bad character in domain");
	check_bad("joe@\"x\"", 7, 0, "bad character in domain");
}

/* Control characters anywhere, including quoted-pairs and NUL. */
static void
test_controls(void **state)
{
	(void)state;
	check_bad("jo\x01" "e@x", 6, 0, "control character in address");
	check_bad("\"jo\x7f\"@x", 8, 0, "control character in address");
	check_bad("\"jo\\\n\"@x", 9, 0, "control character in address");
	check_bad("\"jo\\\t\"@x", 9, 0, "control character in address");
	check_bad("joe@x\r", 6, 0, "control character in address");
	check_bad("joe@x\0y", 7, 0, "control character in address");
	check_bad("joe@x\n", 6, ADDRESS_ALLOW_UNQUALIFIED,
		"control character in address");
	assert_true(text_has_ctl("a\tb", 3, false));
	assert_true(text_has_ctl("\x7f", 1, false));
	assert_false(text_has_ctl("a b\xc3\xa9~", 6, false));
	assert_false(text_has_ctl("a\nb", 1, false));
}

/* The null address and unqualified addresses need their flags. */
static void
test_flags(void **state)
{
	struct address a = ADDRESS_INIT;
	char *out = NULL;

	(void)state;
	check_bad("", 0, 0, "empty address");
	check_bad("", 0, ADDRESS_ALLOW_UNQUALIFIED, "empty address");
	assert_int_equal(address_parse("", 0, ADDRESS_ALLOW_NULL, &a, NULL), 0);
	assert_string_equal(a.local, "");
	assert_null(a.domain);
	assert_int_equal(address_format(&a, &out), 0);
	assert_string_equal(out, "");
	free(out);
	address_free(&a);
	check_ok("joe", ADDRESS_ALLOW_UNQUALIFIED, "joe", NULL, "joe");
	check_ok("\"joe smith\"", ADDRESS_ALLOW_UNQUALIFIED, "joe smith", NULL,
		"\"joe smith\"");
	check_ok("joe@x", ADDRESS_ALLOW_UNQUALIFIED | ADDRESS_ALLOW_NULL, "joe",
		"x", "joe@x");
	check_bad("@", 1, ADDRESS_ALLOW_UNQUALIFIED, "empty local part");
	/* only the first len bytes count */
	assert_int_equal(address_parse("joe@x.org garbage", 9, 0, &a, NULL), 0);
	assert_string_equal(a.domain, "x.org");
	address_free(&a);
}

/* address_join and address_local_needs_quotes. */
static void
test_join(void **state)
{
	char *out = NULL;

	(void)state;
	assert_int_equal(address_join("joe", "x", &out), 0);
	assert_string_equal(out, "joe@x");
	free(out);
	assert_int_equal(address_join("list -u joe", "pipe", &out), 0);
	assert_string_equal(out, "\"list -u joe\"@pipe");
	free(out);
	assert_int_equal(address_join("a\\ b\"", "pipe", &out), 0);
	assert_string_equal(out, "\"a\\\\ b\\\"\"@pipe");
	free(out);
	assert_int_equal(address_join("joe", NULL, &out), 0);
	assert_string_equal(out, "joe");
	free(out);
	assert_int_equal(address_join("", NULL, &out), 0);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(address_join("", "x", &out), -EINVAL);
	assert_null(out);
	assert_int_equal(address_join(NULL, "x", &out), -EINVAL);
	assert_int_equal(address_join("a\nb", "x", &out), -EINVAL);
	assert_int_equal(address_join("ab", "x\r", &out), -EINVAL);
	assert_null(out);

	assert_false(address_local_needs_quotes("joe.smith"));
	assert_false(address_local_needs_quotes("exec*"));
	assert_true(address_local_needs_quotes("joe smith"));
	assert_true(address_local_needs_quotes(""));
	assert_true(address_local_needs_quotes(".x"));
	assert_true(address_local_needs_quotes("x."));
	assert_true(address_local_needs_quotes("a..b"));
	assert_true(address_local_needs_quotes("a@b"));
	assert_true(address_local_needs_quotes("a\\b"));
	assert_true(address_local_needs_quotes("[FILE]"));
	assert_true(address_local_needs_quotes(NULL));
}

/* Domain comparison and lower-casing are ASCII only. */
static void
test_domain_helpers(void **state)
{
	char s[] = "ExAmPle.ORG\xc3\x89";

	(void)state;
	assert_true(address_domain_eq("Example.ORG", "example.org"));
	assert_false(address_domain_eq("example.org", "example.or"));
	assert_false(address_domain_eq("example.org", NULL));
	assert_true(address_domain_eq(NULL, NULL));
	assert_false(address_domain_eq("\xc3\x89", "\xc3\xa9"));
	address_lower(s);
	assert_string_equal(s, "example.org\xc3\x89");
	address_lower(NULL);
}

/* Many valid/invalid inputs survive parse -> format -> parse. */
static void
test_round_trip_table(void **state)
{
	static const char *const inputs[] = {
		"a@b", "\"a b\"@c", "\"a\\\\\\\"b\"@c", "\"\\\\\"@c",
		"\"a.\"@c", "\"#!\"@c", "\"~\"@c", "\" \"@c", "\"a\\ b\"@c",
		"x@[IPv6:::ffff:1.2.3.4]", "\"\xff\"@\xff", "\"a;rm -rf /\"@x",
		"\"$(id)\"@x", "\"`id`\"@x",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct address a = ADDRESS_INIT, b = ADDRESS_INIT;
		char *out = NULL;

		assert_int_equal(parse(inputs[i], 0, &a, NULL), 0);
		assert_int_equal(address_format(&a, &out), 0);
		assert_int_equal(parse(out, 0, &b, NULL), 0);
		assert_string_equal(a.local, b.local);
		assert_string_equal(a.domain, b.domain);
		free(out);
		address_free(&a);
		address_free(&b);
	}
}

/* Run every test of this file. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_plain),
		cmocka_unit_test(test_valid_quoted),
		cmocka_unit_test(test_last_at),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_bad_local),
		cmocka_unit_test(test_bad_domain),
		cmocka_unit_test(test_controls),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_join),
		cmocka_unit_test(test_domain_helpers),
		cmocka_unit_test(test_round_trip_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
