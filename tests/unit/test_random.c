/*
 * Unit tests for random.c: random hex is well-formed and differs.
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

#include "random.h"

/* Random hex: right length, hex digits only, different every time. */
static void
test_random_hex(void **state)
{
	char a[201], b[201];

	assert_int_equal(random_hex(a, 100), 0);
	assert_int_equal(random_hex(b, 100), 0);
	assert_int_equal(strlen(a), 200);
	assert_int_equal(strspn(a, "0123456789abcdef"), 200);
	assert_string_not_equal(a, b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
