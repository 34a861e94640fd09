/*
 * Unit tests for strv.c: string vectors stay NULL-terminated and own
 * their strings.
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

#include "strv.h"
#include "text.h"

/* Vectors push, find and stay NULL-terminated. */
static void
test_strv(void **state)
{
	struct strv a = STRV_INIT, c = STRV_INIT;

	assert_int_equal(strv_push(&a, "one"), 0);
	assert_int_equal(strv_pushn(&a, "twoXX", 3), 0);
	assert_int_equal(strv_push_take(&a, text_strdup("three")), 0);
	assert_int_equal(a.n, 3);
	assert_null(a.v[3]);
	assert_string_equal(a.v[1], "two");
	assert_int_equal(strv_find(&a, "three"), 2);
	assert_int_equal(strv_find(&a, "four"), -1);
	assert_int_equal(strv_extend(&c, &a), 0);
	assert_int_equal(c.n, 3);
	assert_ptr_not_equal(c.v[0], a.v[0]);
	strv_free(&a);
	strv_free(&c);
	assert_null(a.v);
	assert_int_equal(strv_push_take(&a, NULL), -ENOMEM);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
