/*
 * Unit tests for hostq.c, the delay state machine of a destination host
 * queue: the parallel limit, one delay per failed round, probing with one
 * transaction, resuming and resetting the failure count, and what late
 * answers of earlier rounds may (not) change.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hostq.h"

/* Up: transactions start up to the limit. */
static void
test_up_limit(void **state)
{
	struct hostq h = HOSTQ_INIT;

	assert_true(hostq_may_start(&h, 2));
	hostq_start(&h);
	assert_true(hostq_may_start(&h, 2));
	hostq_start(&h);
	assert_false(hostq_may_start(&h, 2));
	assert_int_equal(hostq_done(&h, 0, HOSTQ_REACHED), HOSTQ_EV_NONE);
	assert_true(hostq_may_start(&h, 2));
	assert_int_equal(h.state, HOSTQ_UP);
	assert_int_equal(h.failures, 0);
}

/*
 * A failure delays the queue once: the other transactions of that round
 * fail too but change nothing; nothing starts until the delay ends.
 */
static void
test_failure_delays_once(void **state)
{
	struct hostq h = HOSTQ_INIT;
	uint64_t a = hostq_start(&h), b = hostq_start(&h);

	assert_int_equal(hostq_done(&h, a, HOSTQ_FAILED), HOSTQ_EV_DELAY);
	assert_int_equal(h.state, HOSTQ_DELAYED);
	assert_int_equal(h.failures, 1);
	assert_false(hostq_may_start(&h, 2));
	assert_int_equal(hostq_done(&h, b, HOSTQ_FAILED), HOSTQ_EV_NONE);
	assert_int_equal(h.failures, 1);
	assert_int_equal(h.running, 0);
	assert_false(hostq_may_start(&h, 2));
	assert_string_equal(hostq_state_name(h.state), "delayed");
}

/*
 * When the delay ends one transaction probes; a failed probe delays again
 * with one more failure (a longer interval); a probe that reaches the
 * host resumes the queue at full parallelism and resets the count.
 */
static void
test_probe(void **state)
{
	struct hostq h = HOSTQ_INIT;
	uint64_t t = hostq_start(&h);

	hostq_done(&h, t, HOSTQ_FAILED);
	hostq_probe(&h);
	assert_int_equal(h.state, HOSTQ_PROBING);
	assert_true(hostq_may_start(&h, 4));
	t = hostq_start(&h);
	assert_false(hostq_may_start(&h, 4));	/* one probe at a time */
	assert_int_equal(hostq_done(&h, t, HOSTQ_FAILED), HOSTQ_EV_DELAY);
	assert_int_equal(h.failures, 2);
	hostq_probe(&h);
	t = hostq_start(&h);
	assert_int_equal(hostq_done(&h, t, HOSTQ_FAILED), HOSTQ_EV_DELAY);
	assert_int_equal(h.failures, 3);
	hostq_probe(&h);
	t = hostq_start(&h);
	assert_int_equal(hostq_done(&h, t, HOSTQ_REACHED), HOSTQ_EV_RESUMED);
	assert_int_equal(h.state, HOSTQ_UP);
	assert_int_equal(h.failures, 0);
	for (int i = 0; i < 4; i++) {
		assert_true(hostq_may_start(&h, 4));
		hostq_start(&h);
	}
	assert_false(hostq_may_start(&h, 4));
	/* the next failure starts the schedule from its first interval */
	assert_int_equal(hostq_done(&h, h.round, HOSTQ_FAILED),
	    HOSTQ_EV_DELAY);
	assert_int_equal(h.failures, 1);
}

/* A probe that never reached the host lets the next message probe. */
static void
test_probe_unknown(void **state)
{
	struct hostq h = HOSTQ_INIT;
	uint64_t t = hostq_start(&h);

	hostq_done(&h, t, HOSTQ_FAILED);
	hostq_probe(&h);
	t = hostq_start(&h);
	assert_false(hostq_may_start(&h, 2));
	assert_int_equal(hostq_done(&h, t, HOSTQ_UNKNOWN), HOSTQ_EV_NONE);
	assert_int_equal(h.state, HOSTQ_PROBING);
	assert_true(hostq_may_start(&h, 2));
	assert_int_equal(h.failures, 1);
}

/*
 * A transaction that started before the delay and ends during the probe
 * decides nothing: its success does not resume, its failure does not
 * count; it does not take the probe's place either.
 */
static void
test_old_round(void **state)
{
	struct hostq h = HOSTQ_INIT;
	uint64_t old1 = hostq_start(&h), old2 = hostq_start(&h);
	uint64_t old3 = hostq_start(&h), t;

	assert_int_equal(hostq_done(&h, old1, HOSTQ_FAILED), HOSTQ_EV_DELAY);
	hostq_probe(&h);
	assert_true(hostq_may_start(&h, 4));	/* old ones run, not counted */
	t = hostq_start(&h);
	assert_int_equal(hostq_done(&h, old2, HOSTQ_REACHED), HOSTQ_EV_NONE);
	assert_int_equal(h.state, HOSTQ_PROBING);
	assert_int_equal(hostq_done(&h, old3, HOSTQ_FAILED), HOSTQ_EV_NONE);
	assert_int_equal(h.failures, 1);
	assert_false(hostq_may_start(&h, 4));	/* the probe still runs */
	assert_int_equal(hostq_done(&h, t, HOSTQ_REACHED), HOSTQ_EV_RESUMED);
	assert_int_equal(h.running, 0);
}

/* With the limit reached by old transactions, no probe starts. */
static void
test_probe_respects_limit(void **state)
{
	struct hostq h = HOSTQ_INIT;
	uint64_t a = hostq_start(&h);

	hostq_start(&h);
	hostq_done(&h, a, HOSTQ_FAILED);
	hostq_probe(&h);
	assert_false(hostq_may_start(&h, 1));	/* one old one still runs */
	assert_true(hostq_may_start(&h, 2));
}

/* Probing a queue that is not delayed changes nothing. */
static void
test_probe_when_up(void **state)
{
	struct hostq h = HOSTQ_INIT;

	hostq_probe(&h);
	assert_int_equal(h.state, HOSTQ_UP);
	assert_string_equal(hostq_state_name(h.state), "up");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_up_limit),
		cmocka_unit_test(test_failure_delays_once),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_probe_unknown),
		cmocka_unit_test(test_old_round),
		cmocka_unit_test(test_probe_respects_limit),
		cmocka_unit_test(test_probe_when_up),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
