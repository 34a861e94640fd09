/*
 * Unit tests for procslots.c on a real libuv loop: the cap holds for the
 * queue and sync runs together, sync runs are granted in FIFO order and
 * never from inside a call, freed slots alternate between a waiting sync
 * run and the queue (a sync run first), the queue giving up its turn lets
 * sync runs in, and a wait ends without a slot at its bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "procslots.h"

/* What the callbacks saw. */
struct seen {
	struct procslots *ps;
	bool in_call;		/* set around procslots calls */
	int order[16];		/* sync waiters told, by id; granted > 0 */
	int n;
	int ready;		/* queue ready callbacks */
	uint64_t told_ms[16];
};

/* A sync waiter's argument. */
struct who {
	struct seen *seen;
	int id;
};

/* Sync wait callback: record who and whether granted. */
static void
on_wait(void *arg, bool granted)
{
	struct who *w = arg;
	struct seen *s = w->seen;

	assert_false(s->in_call);
	assert_true(procslots_used(s->ps) <= procslots_cap(s->ps));
	s->told_ms[s->n] = uv_now(uv_default_loop());
	s->order[s->n++] = granted ? w->id : -w->id;
}

/* Queue ready callback. */
static void
on_ready(void *arg)
{
	struct seen *s = arg;

	s->ready++;
}

/* Run the loop until nothing is pending (bounded). */
static void
spin(void)
{
	for (int i = 0; i < 100; i++)
		uv_run(uv_default_loop(), UV_RUN_NOWAIT);
}

/* Open a count of cap slots with the queue callback set. */
static struct procslots *
open_slots(struct seen *s, unsigned cap)
{
	struct procslots *ps;

	memset(s, 0, sizeof(*s));
	assert_int_equal(procslots_open(uv_default_loop(), cap, &ps), 0);
	procslots_set_queue(ps, on_ready, s);
	s->ps = ps;
	return ps;
}

/* Close and let the handles close. */
static void
close_slots(struct procslots *ps)
{
	procslots_close(ps);
	spin();
}

/* Start a sync wait outside any callback. */
static void
wait_for(struct seen *s, struct who *w, int id, uint64_t timeout_ms)
{
	w->seen = s;
	w->id = id;
	s->in_call = true;
	assert_int_equal(procslots_wait(s->ps, timeout_ms, on_wait, w), 0);
	s->in_call = false;
}

/* The cap holds across both users; a free slot is granted later, not in. */
static void
test_cap_and_later(void **state)
{
	struct seen s;
	struct procslots *ps = open_slots(&s, 2);
	struct who w[3];

	wait_for(&s, &w[0], 1, 0);		/* free: granted, told later */
	assert_int_equal(s.n, 0);
	assert_int_equal(procslots_used(ps), 1);
	spin();
	assert_int_equal(s.n, 1);
	assert_int_equal(s.order[0], 1);
	assert_true(procslots_take(ps));	/* the queue: the second */
	assert_false(procslots_take(ps));	/* none left */
	wait_for(&s, &w[1], 2, 0);
	wait_for(&s, &w[2], 3, 0);
	spin();
	assert_int_equal(s.n, 1);
	assert_int_equal(procslots_used(ps), 2);
	assert_int_equal(procslots_waiting(ps), 2);
	/* the queue gives up: freed slots go to 2 then 3, in order */
	procslots_idle(ps);
	procslots_put(ps);
	procslots_put(ps);
	spin();
	assert_int_equal(s.n, 3);
	assert_int_equal(s.order[1], 2);
	assert_int_equal(s.order[2], 3);
	assert_int_equal(procslots_used(ps), 2);
	assert_int_equal(procslots_waiting(ps), 0);
	procslots_put(ps);
	procslots_put(ps);
	assert_int_equal(procslots_used(ps), 0);
	close_slots(ps);
}

/* Both want slots: they alternate, a sync run first; nobody starves. */
static void
test_alternate(void **state)
{
	struct seen s;
	struct procslots *ps = open_slots(&s, 1);
	struct who w[3];
	int ready;

	assert_true(procslots_take(ps));
	for (int i = 0; i < 3; i++)
		wait_for(&s, &w[i], i + 1, 0);
	assert_false(procslots_take(ps));	/* the queue wants one too */
	procslots_put(ps);			/* -> sync 1 */
	spin();
	assert_int_equal(s.n, 1);
	assert_int_equal(s.order[0], 1);
	ready = s.ready;
	procslots_put(ps);			/* -> the queue's turn */
	assert_int_equal(s.ready, ready + 1);
	spin();
	assert_int_equal(s.n, 1);		/* sync 2 still waits */
	assert_true(procslots_take(ps));
	assert_false(procslots_take(ps));	/* still wants more */
	procslots_put(ps);			/* -> sync 2 */
	spin();
	assert_int_equal(s.n, 2);
	assert_int_equal(s.order[1], 2);
	ready = s.ready;
	procslots_put(ps);			/* -> the queue again */
	assert_int_equal(s.ready, ready + 1);
	/* the queue has its turn but nothing to start: sync 3 gets it */
	procslots_idle(ps);
	spin();
	assert_int_equal(s.n, 3);
	assert_int_equal(s.order[2], 3);
	/* with no sync run waiting the queue takes every free slot */
	procslots_put(ps);
	assert_true(procslots_take(ps));
	procslots_put(ps);
	close_slots(ps);
}

/* A wait past its bound ends without a slot; the others keep their place. */
static void
test_bound(void **state)
{
	struct seen s;
	struct procslots *ps = open_slots(&s, 1);
	struct who w[3];
	uint64_t t0;

	assert_true(procslots_take(ps));
	uv_update_time(uv_default_loop());
	t0 = uv_now(uv_default_loop());
	wait_for(&s, &w[0], 1, 0);		/* no bound */
	wait_for(&s, &w[1], 2, 300);
	wait_for(&s, &w[2], 3, 50);
	procslots_idle(ps);
	for (int i = 0; i < 200 && s.n < 2; i++)
		uv_run(uv_default_loop(), UV_RUN_ONCE);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.order[0], -3);	/* the shorter bound first */
	assert_int_equal(s.order[1], -2);
	assert_true(s.told_ms[0] - t0 >= 50);
	assert_true(s.told_ms[1] - t0 >= 300);
	assert_int_equal(procslots_waiting(ps), 1);
	assert_int_equal(procslots_used(ps), 1);
	procslots_put(ps);			/* -> 1, which had no bound */
	spin();
	assert_int_equal(s.n, 3);
	assert_int_equal(s.order[2], 1);
	procslots_put(ps);
	close_slots(ps);
}

/* Close drops pending waits without calling them. */
static void
test_close_drops(void **state)
{
	struct seen s;
	struct procslots *ps = open_slots(&s, 1);
	struct who w[2];

	wait_for(&s, &w[0], 1, 0);	/* granted, not yet told */
	wait_for(&s, &w[1], 2, 1000);	/* waiting */
	close_slots(ps);
	assert_int_equal(s.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap_and_later),
		cmocka_unit_test(test_alternate),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_close_drops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
