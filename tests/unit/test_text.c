/*
 * Unit tests for text.c: the one control-character rule and CR LF to LF
 * conversion across any split.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* CR LF becomes LF, lone CRs stay, also when a CR ends a piece. */
static void
test_crlf_to_lf(void **state)
{
	static const char text[] = "a\r\nb\rc\r\r\nd\r\n\r\n\re\r";
	static const char want[] = "a\nb\rc\r\nd\n\n\re";
	char out[sizeof(text) + 1];
	bool cr = false;
	size_t n;

	(void)state;
	n = text_crlf_to_lf(text, sizeof(text) - 1, out, &cr);
	assert_true(cr);		/* the last CR is held */
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(out, want, n);
	/* every split into two pieces gives the same bytes */
	for (size_t cut = 0; cut < sizeof(text); cut++) {
		size_t o;

		cr = false;
		o = text_crlf_to_lf(text, cut, out, &cr);
		o += text_crlf_to_lf(text + cut, sizeof(text) - 1 - cut, out + o,
			&cr);
		assert_int_equal(o, sizeof(want) - 1);
		assert_memory_equal(out, want, o);
		assert_true(cr);
	}
	cr = false;
	assert_int_equal(text_crlf_to_lf("", 0, out, &cr), 0);
	assert_false(cr);
	/* a held CR followed by a piece that is not LF comes out first */
	cr = true;
	assert_int_equal(text_crlf_to_lf("x", 1, out, &cr), 2);
	assert_memory_equal(out, "\rx", 2);
}

/* Control characters: 0x00-0x1f and 0x7f; TAB only when not allowed. */
static void
test_has_ctl(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 256; c++)
		assert_int_equal(text_is_ctl((unsigned char)c),
		    c < 0x20 || c == 0x7f);
	assert_false(text_has_ctl("", 0, false));
	assert_false(text_has_ctl("a b~\xc3\xa9\x80\xff", 8, false));
	assert_true(text_has_ctl("a\tb", 3, false));
	assert_false(text_has_ctl("a\tb", 3, true));
	assert_true(text_has_ctl("a\t\rb", 4, true));
	assert_true(text_has_ctl("\x7f", 1, true));
	assert_true(text_has_ctl("a\0b", 3, false));	/* NUL counts */
	assert_false(text_has_ctl("a\nb", 1, false));	/* only n bytes */
	assert_false(text_str_has_ctl(NULL));
	assert_false(text_str_has_ctl(""));
	assert_false(text_str_has_ctl("x@example.org \xc3\xa9"));
	assert_true(text_str_has_ctl("a\r\nRCPT TO:<x>"));
	assert_true(text_str_has_ctl("\t"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crlf_to_lf),
		cmocka_unit_test(test_has_ctl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
