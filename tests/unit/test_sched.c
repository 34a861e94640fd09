/*
 * Unit tests for the scheduler's pure helpers: the retry schedule (also
 * as a host queue uses it: by consecutive host failures) and the
 * ORIGINAL_RECIPIENT value taken from a DSN ORCPT. (The queues themselves
 * are exercised end to end by tests/integration/test_pipe.py and, for
 * relay host queues, test_relay.py; their state machine by test_hostq.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>

#include "hostq.h"
#include "sched.h"

/* The n-th retry uses the n-th interval; the last one repeats. */
static void
test_retry_schedule(void **state)
{
	const uint64_t r[] = { 300, 900, 1800 };

	assert_int_equal(sched_retry_delay(r, 3, 1), 300);
	assert_int_equal(sched_retry_delay(r, 3, 2), 900);
	assert_int_equal(sched_retry_delay(r, 3, 3), 1800);
	assert_int_equal(sched_retry_delay(r, 3, 4), 1800);
	assert_int_equal(sched_retry_delay(r, 3, 1000), 1800);
	assert_int_equal(sched_retry_delay(r, 3, 0), 300);
	assert_int_equal(sched_retry_delay(r, 1, 7), 300);
}

/*
 * A host queue's delay grows with its consecutive failed rounds and
 * starts again from the first interval once a probe reached the host.
 */
static void
test_host_delay_grows_and_resets(void **state)
{
	const uint64_t r[] = { 300, 900, 1800, 3600 };
	const uint64_t want[] = { 300, 900, 1800, 3600, 3600 };
	struct hostq h = HOSTQ_INIT;
	uint64_t t;

	for (size_t i = 0; i < 5; i++) {
		t = hostq_start(&h);
		assert_int_equal(hostq_done(&h, t, HOSTQ_FAILED),
		    HOSTQ_EV_DELAY);
		assert_int_equal(sched_retry_delay(r, 4, h.failures), want[i]);
		hostq_probe(&h);
	}
	t = hostq_start(&h);
	assert_int_equal(hostq_done(&h, t, HOSTQ_REACHED), HOSTQ_EV_RESUMED);
	t = hostq_start(&h);
	assert_int_equal(hostq_done(&h, t, HOSTQ_FAILED), HOSTQ_EV_DELAY);
	assert_int_equal(sched_retry_delay(r, 4, h.failures), 300);
}

/* Without ORCPT the address as received is the original recipient. */
static void
test_orig_without_orcpt(void **state)
{
	char *o = NULL;

	assert_int_equal(sched_original_recipient("a@b.example", NULL, &o), 0);
	assert_string_equal(o, "a@b.example");
	free(o);
}

/* An rfc822 ORCPT is xtext-decoded. */
static void
test_orig_from_orcpt(void **state)
{
	char *o = NULL;

	assert_int_equal(sched_original_recipient("list@x.example",
		"rfc822;Joe+2BSmith@old.example", &o), 0);
	assert_string_equal(o, "Joe+Smith@old.example");
	free(o);
	assert_int_equal(sched_original_recipient("a@x.example",
		"RFC822;a+3Db@y.example", &o), 0);
	assert_string_equal(o, "a=b@y.example");
	free(o);
}

/* Other address types and unusable values fall back to the address. */
static void
test_orig_fallbacks(void **state)
{
	char *o = NULL;

	assert_int_equal(sched_original_recipient("a@x.example",
		"utf-8;a@y.example", &o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
	/* a decoded control character never becomes the value */
	assert_int_equal(sched_original_recipient("a@x.example",
		"rfc822;a+0Ab@y.example", &o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
	assert_int_equal(sched_original_recipient("a@x.example", "rfc822;",
		&o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
	/* decoded, but not a mailbox: never given to a program */
	assert_int_equal(sched_original_recipient("a@x.example",
		"rfc822;joe+20-f", &o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
	assert_int_equal(sched_original_recipient("a@x.example",
		"rfc822;joe", &o), 0);
	assert_string_equal(o, "a@x.example");
	free(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_schedule),
		cmocka_unit_test(test_host_delay_grows_and_resets),
		cmocka_unit_test(test_orig_without_orcpt),
		cmocka_unit_test(test_orig_from_orcpt),
		cmocka_unit_test(test_orig_fallbacks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
