/*
 * Unit tests for subready.c: hints make a file ready at once or make it
 * wait for its close; the settle rule by ctime age and by two looks; the
 * writer grace; clocks that disagree; lost hints; pruning after a
 * listing, never of a name hinted meanwhile; the bound on names; failed
 * looks reported once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"
#include "subready.h"

#define SEC_NS 1000000000LL
#define T0_NS (1800000000LL * SEC_NS)	/* wall clock "now" */
#define M0 5000000ULL			/* monotonic "now", ms */

static const struct subready_settings set = {
	.settle_ms = 10000, .grace_ms = 600000, .max_names = 4,
};

/* A stat result changed at ctime (wall-clock ns). */
static struct subready_stat
stat_at(int64_t ctime_ns, int64_t size)
{
	struct subready_stat st = {
		.dev = 1, .ino = 42, .size = size,
		.mtime_ns = ctime_ns, .ctime_ns = ctime_ns,
	};

	return st;
}

/* Judge name in r now. */
static enum subready_verdict
judge(const struct subready *r, const char *name,
	const struct subready_stat *st, int64_t now_ns, uint64_t now_ms,
	uint64_t *wait)
{
	struct subready_view v;

	subready_view(r, name, &v);
	return subready_judge(&v, st, now_ns, now_ms, &set, wait);
}

/* Renamed in or closed: taken at once, even when just changed. */
static void
test_hints_ready_at_once(void **state)
{
	struct subready *r;
	struct subready_stat fresh = stat_at(T0_NS, 10);

	(void)state;
	assert_int_equal(subready_new(&set, &r), 0);
	subready_hint(r, "a.sub", SUBREADY_MOVED_IN);
	subready_hint(r, "b.sub", SUBREADY_WRITTEN);
	subready_hint(r, "b.sub", SUBREADY_CLOSED);
	assert_int_equal(judge(r, "a.sub", &fresh, T0_NS, M0, NULL),
		SUBREADY_TAKE);
	assert_int_equal(judge(r, "b.sub", &fresh, T0_NS, M0, NULL),
		SUBREADY_TAKE);
	/* a writer opening it again: it waits again */
	subready_hint(r, "b.sub", SUBREADY_WRITTEN);
	assert_int_equal(judge(r, "b.sub", &fresh, T0_NS, M0, NULL),
		SUBREADY_WAIT);
	subready_free(r);
}

/* Unknown files: ctime older than the settle time, else wait the rest. */
static void
test_settle_by_ctime(void **state)
{
	struct subready *r;
	struct subready_stat st = stat_at(T0_NS - 3 * SEC_NS, 10);
	uint64_t wait = 0;

	(void)state;
	assert_int_equal(subready_new(&set, &r), 0);
	assert_int_equal(judge(r, "x.sub", &st, T0_NS, M0, &wait),
		SUBREADY_WAIT);
	assert_int_equal(wait, 7000);
	assert_int_equal(judge(r, "x.sub", &st, T0_NS + 7 * SEC_NS, M0 + 7000,
		NULL), SUBREADY_TAKE);
	/* a user can set mtime, not ctime: only ctime counts */
	st.mtime_ns = T0_NS - 3600 * SEC_NS;
	assert_int_equal(judge(r, "x.sub", &st, T0_NS, M0, NULL),
		SUBREADY_WAIT);
	subready_free(r);
}

/* Seen being written: the grace, not the settle time, unless it closes. */
static void
test_writer_grace(void **state)
{
	struct subready *r;
	struct subready_stat st = stat_at(T0_NS - 60 * SEC_NS, 10);
	uint64_t wait = 0;

	(void)state;
	assert_int_equal(subready_new(&set, &r), 0);
	subready_hint(r, "w.sub", SUBREADY_WRITTEN);
	assert_int_equal(judge(r, "w.sub", &st, T0_NS, M0, &wait),
		SUBREADY_WAIT);
	assert_int_equal(wait, 540000);
	assert_int_equal(judge(r, "w.sub", &st, T0_NS + 540 * SEC_NS,
		M0 + 540000, NULL), SUBREADY_TAKE);
	subready_hint(r, "w.sub", SUBREADY_CLOSED);
	assert_int_equal(judge(r, "w.sub", &st, T0_NS, M0, NULL),
		SUBREADY_TAKE);
	subready_free(r);
}

/* A ctime in the future (clock stepped back): two looks decide. */
static void
test_two_looks(void **state)
{
	struct subready *r;
	struct subready_stat st = stat_at(T0_NS + 3600 * SEC_NS, 10);
	struct subready_stat grown = st;
	uint64_t wait = 0;

	(void)state;
	assert_int_equal(subready_new(&set, &r), 0);
	assert_int_equal(judge(r, "c.sub", &st, T0_NS, M0, &wait),
		SUBREADY_WAIT);
	assert_int_equal(wait, 10000);
	subready_saw(r, "c.sub", &st, M0);
	assert_int_equal(judge(r, "c.sub", &st, T0_NS, M0 + 4000, &wait),
		SUBREADY_WAIT);
	assert_int_equal(wait, 6000);
	/* a second look with the same file keeps the first time */
	subready_saw(r, "c.sub", &st, M0 + 4000);
	assert_int_equal(judge(r, "c.sub", &st, T0_NS, M0 + 10000, NULL),
		SUBREADY_TAKE);
	/* any change starts the count again */
	grown.size++;
	assert_int_equal(judge(r, "c.sub", &grown, T0_NS, M0 + 10000, &wait),
		SUBREADY_WAIT);
	assert_int_equal(wait, 10000);
	subready_saw(r, "c.sub", &grown, M0 + 10000);
	assert_int_equal(judge(r, "c.sub", &grown, T0_NS, M0 + 19999, NULL),
		SUBREADY_WAIT);
	assert_int_equal(judge(r, "c.sub", &grown, T0_NS, M0 + 20000, NULL),
		SUBREADY_TAKE);
	subready_free(r);
}

/* Lost hints: no file is taken on a hint it may not have had. */
static void
test_lost_hints(void **state)
{
	struct subready *r;
	struct subready_stat fresh = stat_at(T0_NS, 10);

	(void)state;
	assert_int_equal(subready_new(&set, &r), 0);
	subready_hint(r, "a.sub", SUBREADY_CLOSED);
	subready_hint(r, "b.sub", SUBREADY_WRITTEN);
	subready_lost(r);
	assert_int_equal(judge(r, "a.sub", &fresh, T0_NS, M0, NULL),
		SUBREADY_WAIT);
	assert_int_equal(judge(r, "b.sub", &fresh, T0_NS + 10 * SEC_NS,
		M0, NULL), SUBREADY_TAKE);	/* settle, not the grace */
	subready_free(r);
}

/* A listing forgets absent names, but not those hinted since it began. */
static void
test_prune(void **state)
{
	struct subready *r;
	struct strv names = STRV_INIT;
	struct subready_view v;
	struct subready_stat st = stat_at(T0_NS, 1);
	uint64_t mark;

	(void)state;
	assert_int_equal(subready_new(&set, &r), 0);
	subready_hint(r, "b.sub", SUBREADY_WRITTEN);
	subready_hint(r, "d.sub", SUBREADY_CLOSED);
	subready_saw(r, "a.sub", &st, M0);
	mark = subready_mark(r);
	subready_hint(r, "c.sub", SUBREADY_WRITTEN);	/* during the listing */
	assert_int_equal(strv_push(&names, "a.sub"), 0);
	assert_int_equal(strv_push(&names, "aa.sub"), 0);
	assert_int_equal(strv_push(&names, "d.sub"), 0);
	subready_prune(r, &names, mark);
	assert_int_equal(subready_count(r), 3);
	subready_view(r, "b.sub", &v);
	assert_int_equal(v.state, SUBREADY_UNKNOWN);	/* pruned */
	assert_false(v.seen);
	subready_view(r, "c.sub", &v);
	assert_int_equal(v.state, SUBREADY_WRITING);
	subready_view(r, "a.sub", &v);
	assert_true(v.seen);
	subready_view(r, "d.sub", &v);
	assert_int_equal(v.state, SUBREADY_DONE);
	/* gone and forget */
	subready_hint(r, "d.sub", SUBREADY_GONE);
	subready_forget(r, "a.sub");
	subready_forget(r, "nothing.sub");
	assert_int_equal(subready_count(r), 1);
	strv_free(&names);
	/* an empty listing before any later hint forgets everything */
	subready_prune(r, &names, subready_mark(r));
	assert_int_equal(subready_count(r), 0);
	subready_free(r);
}

/* A failed look is news once per name and error; a good look, a forget
   or a prune make the next failure news again. */
static void
test_failed_once(void **state)
{
	struct subready *r;
	struct strv names = STRV_INIT;
	struct subready_stat st = stat_at(T0_NS, 1);
	char name[16];

	(void)state;
	assert_int_equal(subready_new(&set, &r), 0);
	assert_true(subready_failed(r, "a.sub", -13));
	assert_false(subready_failed(r, "a.sub", -13));	/* next scan */
	assert_false(subready_failed(r, "a.sub", -13));
	assert_true(subready_failed(r, "b.sub", -13));	/* another file */
	assert_true(subready_failed(r, "a.sub", -5));	/* another error */
	assert_false(subready_failed(r, "a.sub", -5));
	subready_saw(r, "a.sub", &st, M0);		/* it could be read */
	assert_true(subready_failed(r, "a.sub", -5));
	subready_forget(r, "a.sub");
	assert_true(subready_failed(r, "a.sub", -5));
	assert_int_equal(strv_push(&names, "b.sub"), 0);
	subready_prune(r, &names, subready_mark(r));	/* a.sub is gone */
	assert_false(subready_failed(r, "b.sub", -13));
	assert_true(subready_failed(r, "a.sub", -5));
	/* no room: always news (logged twice rather than never) */
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "%d.sub", i);
		subready_hint(r, name, SUBREADY_MOVED_IN);
	}
	assert_true(subready_failed(r, "z.sub", -13));
	assert_true(subready_failed(r, "z.sub", -13));
	strv_free(&names);
	subready_free(r);
}

/* At most max_names are tracked; the others fall back to settling. */
static void
test_bounded(void **state)
{
	struct subready *r;
	struct subready_stat fresh = stat_at(T0_NS, 10);
	char name[16];

	(void)state;
	assert_int_equal(subready_new(&set, &r), 0);
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "%d.sub", 9 - i);
		subready_hint(r, name, SUBREADY_MOVED_IN);
	}
	assert_int_equal(subready_count(r), 4);
	/* the first four are known, in order; 5.sub is not */
	assert_int_equal(judge(r, "6.sub", &fresh, T0_NS, M0, NULL),
		SUBREADY_TAKE);
	assert_int_equal(judge(r, "5.sub", &fresh, T0_NS, M0, NULL),
		SUBREADY_WAIT);
	assert_int_equal(judge(r, "5.sub", &fresh, T0_NS + 10 * SEC_NS, M0,
		NULL), SUBREADY_TAKE);
	subready_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hints_ready_at_once),
		cmocka_unit_test(test_settle_by_ctime),
		cmocka_unit_test(test_writer_grace),
		cmocka_unit_test(test_two_looks),
		cmocka_unit_test(test_lost_hints),
		cmocka_unit_test(test_prune),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_failed_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
