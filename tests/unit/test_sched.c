/*
 * Unit tests for the scheduler: its pure helpers (the retry schedule, also
 * as a host queue uses it: by consecutive host failures; the
 * ORIGINAL_RECIPIENT value taken from a DSN ORCPT), and scheduling itself
 * with fake delivery modules and a fake clock: the processor cap,
 * named-queue order, retry timing, lifetime expiry, host-queue delays and
 * probes. (End to end: tests/integration/test_pipe.py, test_queue.py and,
 * for relay host queues, test_relay.py; the host state machine alone:
 * test_hostq.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "hostq.h"
#include "pipe.h"
#include "relay.h"
#include "sched.h"
#include "sched_int.h"
#include "store.h"
#include "strv.h"
#include "transport.h"

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

/* ------------------------------------------------------------------ */
/*
 * Scheduling itself. The scheduler runs on a real loop with the real
 * router, procslots, hostq, log and result modules; the modules it hands
 * work to are fakes defined below (the link seam: this test does not link
 * store.c, pipe.c or relay.c), which record each request and let the test
 * finish it when it chooses, as the real ones do later from the loop.
 * Time: sched_settings.clock_ms is the test's clock, and the test fires
 * the retry timer itself (sched__on_timer, sched_int.h) after moving the
 * clock, so a 300-second retry is checked to the millisecond at once.
 */

#define MAXRUNS 64

/* A pipe_run or relay_send the test has not finished yet (or has). */
struct fake_run {
	char id[STORE_ID_LEN + 1];	/* queue ID of the message */
	char *queue;			/* queue[NAME], or NULL */
	char *delivery_id;
	size_t nrcpt;			/* relay: its recipients */
	pipe_done_cb pcb;
	relay_done_cb rcb;
	void *arg;
	bool done;
};

/* A store_mark waiting for the test to say it is on disk. */
struct fake_mark {
	char id[STORE_ID_LEN + 1];
	size_t rcpt;
	enum rcpt_state state;
	bool has_rec;			/* a journal record came with it */
	struct journal_attempt rec;	/* its fields (reason not kept) */
	store_mark_cb cb;
	void *arg;
	bool done;
};

/* Everything one scheduling test uses. */
struct fx {
	uv_loop_t loop;
	struct logger log;
	struct router_table table;
	struct strv local;
	struct sched *sc;
	uint64_t now_ms;		/* the scheduler's clock */
	struct fake_run runs[MAXRUNS];
	size_t nruns;
	struct fake_mark marks[MAXRUNS];
	size_t nmarks;
	struct journal_attempt notes[MAXRUNS];	/* store_note records */
	size_t nnotes;
	size_t freed;			/* messages the scheduler released */
	bool stopped;
};

/*
 * A message handed to the scheduler, with the fixture its fake store
 * belongs to (store_msg_free has no other context).
 */
struct fx_msg {
	struct store_msg m;
	struct fx *f;
};

/* The test's clock. */
static uint64_t
fake_clock(void *arg)
{
	return ((struct fx *)arg)->now_ms;
}

/* Fake PIPE module: remember the request; the test finishes it. */
int
pipe_run(struct pipe_module *pm, const struct pipe_request *req,
	pipe_done_cb cb, void *arg)
{
	struct fx *f = (struct fx *)pm;	/* deps.pipe is the fixture */
	struct fake_run *r;

	assert_true(f->nruns < MAXRUNS);
	r = &f->runs[f->nruns++];
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", req->queue_id);
	r->queue = req->cmd->queue ? strdup(req->cmd->queue) : NULL;
	r->delivery_id = strdup(req->delivery_id);
	r->pcb = cb;
	r->arg = arg;
	return 0;
}

/* Fake relay client: remember the transaction; the test finishes it. */
int
relay_send(struct relay *rl, const struct relay_msg *m, relay_done_cb cb,
	void *arg)
{
	struct fx *f = (struct fx *)rl;	/* deps.relay is the fixture */
	struct fake_run *r;

	assert_true(f->nruns < MAXRUNS);
	r = &f->runs[f->nruns++];
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", m->input_path ?
		strrchr(m->input_path, '/') + 1 : "?");
	r->id[STORE_ID_LEN] = '\0';
	r->nrcpt = m->nrcpt;
	r->rcb = cb;
	r->arg = arg;
	return 0;
}

/* Fake relay destination. */
const char *
relay_destination(const struct relay *rl)
{
	(void)rl;
	return "relay.example:25";
}

/* No transports in these tests. */
const struct transport *
transport_find(const struct transport_table *t, const char *name)
{
	(void)t;
	(void)name;
	return NULL;
}

/* No transports in these tests. */
void
transport_request(const struct transport *tr, bool sync,
	struct pipe_request *req)
{
	(void)tr;
	(void)sync;
	(void)req;
}

/* Fake store: remember the mark; the test says when it is on disk. */
int
store_mark(struct store *st, struct store_msg *m, size_t rcpt,
	enum rcpt_state state, const struct journal_attempt *rec,
	store_mark_cb cb, void *arg)
{
	struct fx *f = (struct fx *)st;	/* deps.store is the fixture */
	struct fake_mark *k;

	assert_true(f->nmarks < MAXRUNS);
	k = &f->marks[f->nmarks++];
	memset(k, 0, sizeof(*k));
	snprintf(k->id, sizeof(k->id), "%s", m->id);
	k->rcpt = rcpt;
	k->state = state;
	if ((k->has_rec = rec != NULL)) {
		k->rec = *rec;
		k->rec.reason = NULL;
	}
	k->cb = cb;
	k->arg = arg;
	return 0;
}

/* Fake store: keep a deferral's record; it is on disk at once. */
int
store_note(struct store *st, struct store_msg *m,
	const struct journal_attempt *rec, store_mark_cb cb, void *arg)
{
	struct fx *f = (struct fx *)st;

	(void)m;
	assert_true(f->nnotes < MAXRUNS);
	f->notes[f->nnotes] = *rec;
	f->notes[f->nnotes++].reason = NULL;
	cb(arg, 0, false);
	return 0;
}

/* Fake store: free a message built by add_msg. */
void
store_msg_free(struct store_msg *m)
{
	struct fx_msg *xm = (struct fx_msg *)m;	/* m is its first member */

	for (size_t i = 0; m->hist && i < m->env.nrcpt; i++)
		free(m->hist[i].reason);
	free(m->hist);
	envelope_free(&m->env);
	free(m->relpath);
	free(m->path);
	xm->f->freed++;
	free(xm);
}

/* Fake store: nothing is kept in memory here. */
void
store_msg_drop_body(struct store_msg *m)
{
	(void)m;
}

/* Run the loop until nothing is left to do now (bounded). */
static void
pump(struct fx *f)
{
	for (int i = 0; i < 100; i++)
		if (uv_run(&f->loop, UV_RUN_NOWAIT) == 0)
			break;
}

/* The scheduler's stopped callback. */
static void
on_stopped(void *arg)
{
	((struct fx *)arg)->stopped = true;
}

/*
 * Open a scheduler with `procs` processors, `relays` relay transactions,
 * retry intervals r[0..nr) and a lifetime of `life` seconds.
 */
static void
fx_open(struct fx *f, unsigned procs, unsigned relays, const uint64_t *r,
	size_t nr, uint64_t life)
{
	struct sched_settings s;
	struct sched_deps d;
	struct router_ctx rc;

	memset(f, 0, sizeof(*f));
	f->now_ms = 1000000;
	assert_int_equal(uv_loop_init(&f->loop), 0);
	log_init(&f->log);
	log_set_all(&f->log, LOG_NONE);
	assert_int_equal(strv_push(&f->local, "here.example"), 0);
	memset(&rc, 0, sizeof(rc));
	rc.table = &f->table;
	rc.local_domains = &f->local;
	rc.default_domain = "here.example";
	rc.relay_configured = true;
	memset(&s, 0, sizeof(s));
	s.processors = procs;
	s.relay_processors = relays;
	s.retry_s = r;
	s.nretry = nr;
	s.max_lifetime_s = life;
	s.direct = DIRECT_LOCAL;
	s.clock_ms = fake_clock;
	s.clock_arg = f;
	memset(&d, 0, sizeof(d));
	d.loop = &f->loop;
	d.store = (struct store *)f;
	d.pipe = (struct pipe_module *)f;
	d.relay = (struct relay *)f;
	d.log = &f->log;
	d.router = &rc;
	assert_int_equal(sched_open(&s, &d, &f->sc), 0);
}

/* Stop and close the scheduler and the loop; every message was freed. */
static void
fx_close(struct fx *f, size_t added)
{
	sched_stop(f->sc, on_stopped, f);
	pump(f);
	assert_true(f->stopped);
	sched_close(f->sc);
	pump(f);
	assert_int_equal(f->freed, added);
	for (size_t i = 0; i < f->nruns; i++) {
		free(f->runs[i].queue);
		free(f->runs[i].delivery_id);
	}
	strv_free(&f->local);
	assert_int_equal(uv_loop_close(&f->loop), 0);
}

/*
 * A message with queue ID id (16 digits), submitted `age` seconds ago,
 * for the recipients rcpts[0..n), as the store would hand it over.
 */
static struct store_msg *
new_msg(struct fx *f, const char *id, int64_t age, const char *const *rcpts,
	size_t n)
{
	struct fx_msg *xm = calloc(1, sizeof(*xm));
	struct store_msg *m = &xm->m;
	char path[64];

	assert_non_null(xm);
	xm->f = f;
	envelope_init(&m->env);
	snprintf(m->id, sizeof(m->id), "%s", id);
	snprintf(m->env.uid, sizeof(m->env.uid), "u%s", id);
	m->env.tag = strdup("PIPE");
	m->env.from = strdup("sender@here.example");
	m->env.submitted = (int64_t)time(NULL) - age;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(envelope_add_rcpt(&m->env, rcpts[i], NULL, 0),
			0);
	snprintf(path, sizeof(path), "/nowhere/Queue/%s.msg", id);
	m->path = strdup(path);
	m->relpath = strdup(path + strlen("/nowhere/"));
	m->msg_len = 10;
	m->pending = n;
	return m;
}

/* Hand the scheduler a new_msg(). */
static void
add_msg(struct fx *f, const char *id, int64_t age, const char *const *rcpts,
	size_t n)
{
	assert_int_equal(sched_add(f->sc, new_msg(f, id, age, rcpts, n)), 0);
}

/* Hand over a message with one recipient. */
static void
add_one(struct fx *f, const char *id, const char *rcpt)
{
	add_msg(f, id, 0, &rcpt, 1);
}

/* Finish PIPE run i with a result of kind k; then let the loop run. */
static void
finish_run(struct fx *f, size_t i, enum result_kind k)
{
	struct result res = RESULT_INIT;
	struct pipe_info info;

	assert_true(i < f->nruns);
	assert_false(f->runs[i].done);
	memset(&info, 0, sizeof(info));
	info.pid = 4242;
	info.end = RUN_EXITED;
	info.code = k == RESULT_DELIVERED ? 0 : k == RESULT_DEFERRED ? 75 : 67;
	result_set(&res, k, k == RESULT_DELIVERED ? 250 : k ==
		RESULT_DEFERRED ? 451 : 550, k == RESULT_DELIVERED ? "2.0.0" :
		k == RESULT_DEFERRED ? "4.3.0" : "5.1.1", "fake %s",
		result_kind_name(k));
	f->runs[i].done = true;
	f->runs[i].pcb(f->runs[i].arg, &res, &info);
	pump(f);
}

/* Finish relay transaction i: every recipient gets kind k. */
static void
finish_relay(struct fx *f, size_t i, enum result_kind k, enum relay_host h)
{
	struct result res[8];
	size_t n = f->runs[i].nrcpt;

	assert_true(i < f->nruns && n <= 8);
	assert_false(f->runs[i].done);
	for (size_t j = 0; j < n; j++) {
		res[j] = (struct result)RESULT_INIT;
		result_set(&res[j], k, k == RESULT_DELIVERED ? 250 : 421,
			k == RESULT_DELIVERED ? "2.0.0" : "4.4.2", "fake");
	}
	f->runs[i].done = true;
	f->runs[i].rcb(f->runs[i].arg, res, n, h);
	pump(f);
}

/* The store says every mark so far is on disk. */
static void
finish_marks(struct fx *f)
{
	for (size_t i = 0; i < f->nmarks; i++) {
		struct fake_mark *k = &f->marks[i];

		if (k->done)
			continue;
		k->done = true;
		k->cb(k->arg, 0, false);
	}
	pump(f);
}

/* Move the clock to t and fire the retry timer as the loop would. */
static void
clock_to(struct fx *f, uint64_t t)
{
	struct sched *sc = f->sc;

	f->now_ms = t;
	uv_timer_stop(&sc->timer);	/* a one-shot timer that fired */
	sched__on_timer(&sc->timer);
	pump(f);
}

/* Runs started and not finished. */
static size_t
running_runs(const struct fx *f)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nruns; i++)
		n += !f->runs[i].done;
	return n;
}

/*
 * At most `processors` programs at once, and a delivery keeps its
 * processor until its final state is on disk: only then does the next
 * one start.
 */
static void
test_processor_cap(void **state)
{
	static const uint64_t r[] = { 60 };
	struct fx f;
	char id[32], rcpt[64];

	(void)state;
	fx_open(&f, 2, 1, r, 1, 86400);
	for (int i = 1; i <= 5; i++) {
		snprintf(id, sizeof(id), "%016d", i);
		snprintf(rcpt, sizeof(rcpt), "\"app %d\"@pipe", i);
		add_one(&f, id, rcpt);
	}
	pump(&f);
	assert_int_equal(f.nruns, 2);
	assert_int_equal(sched_running(f.sc), 2);
	finish_run(&f, 0, RESULT_DELIVERED);
	/* done, but not recorded: the processor is still taken */
	assert_int_equal(f.nmarks, 1);
	assert_int_equal(f.marks[0].state, RCPT_DELIVERED);
	assert_int_equal(f.nruns, 2);
	assert_int_equal(sched_running(f.sc), 2);
	finish_marks(&f);
	assert_int_equal(f.nruns, 3);
	assert_int_equal(running_runs(&f), 2);
	for (size_t i = 1; i < 5; i++) {
		finish_run(&f, i, RESULT_DELIVERED);
		finish_marks(&f);
		assert_true(running_runs(&f) <= 2);
	}
	assert_int_equal(f.nruns, 5);
	assert_int_equal(sched_running(f.sc), 0);
	assert_int_equal(sched_messages(f.sc), 0);
	fx_close(&f, 5);
}

/*
 * A named queue delivers one item at a time in queue-ID order, even when
 * messages arrive out of order, and never passes its running head;
 * another named queue runs beside it.
 */
static void
test_named_queue_order(void **state)
{
	static const uint64_t r[] = { 60 };
	static const char *const want[] = {
		"0000000000000001", "0000000000000002", "0000000000000003",
		"0000000000000004",
	};
	struct fx f;
	size_t run = 0;

	(void)state;
	fx_open(&f, 10, 1, r, 1, 86400);
	add_one(&f, "0000000000000003", "\"queue[A] app x\"@pipe");
	add_one(&f, "0000000000000001", "\"queue[A] app x\"@pipe");
	add_one(&f, "0000000000000009", "\"queue[B] app y\"@pipe");
	pump(&f);
	/* one run per named queue; A starts with its lowest ID */
	assert_int_equal(f.nruns, 2);
	assert_string_equal(f.runs[0].queue, "A");
	assert_string_equal(f.runs[0].id, want[0]);
	assert_string_equal(f.runs[1].queue, "B");
	/* a late commit with a lower ID waits behind the running head only */
	add_one(&f, "0000000000000002", "\"queue[A] app x\"@pipe");
	add_one(&f, "0000000000000004", "\"queue[A] app x\"@pipe");
	pump(&f);
	assert_int_equal(f.nruns, 2);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(f.runs[run].id, want[i]);
		assert_string_equal(f.runs[run].queue, "A");
		assert_int_equal(running_runs(&f), 2);	/* A's head, B */
		finish_run(&f, run, RESULT_DELIVERED);
		finish_marks(&f);
		run = f.nruns - 1;
	}
	assert_int_equal(f.nruns, 5);
	assert_int_equal(running_runs(&f), 1);
	assert_false(f.runs[1].done);
	finish_run(&f, 1, RESULT_DELIVERED);
	finish_marks(&f);
	assert_int_equal(sched_messages(f.sc), 0);
	fx_close(&f, 5);
}

/*
 * A deferral delays its named queue as a whole by the retry schedule
 * (the n-th interval after the n-th attempt, the last one repeating),
 * to the millisecond of the scheduler's clock; the item keeps its
 * delivery ID, and a message behind it waits until it is done.
 */
static void
test_retry_timing(void **state)
{
	static const uint64_t r[] = { 60, 300 };
	static const uint64_t gaps[] = { 60, 300, 300 };
	struct fx f;
	uint64_t t;

	(void)state;
	fx_open(&f, 10, 1, r, 2, 86400);
	add_one(&f, "0000000000000001", "\"queue[A] app x\"@pipe");
	add_one(&f, "0000000000000002", "\"queue[A] app x\"@pipe");
	pump(&f);
	assert_int_equal(f.nruns, 1);
	for (size_t i = 0; i < 3; i++) {
		int64_t wall = (int64_t)time(NULL);

		t = f.now_ms;
		finish_run(&f, f.nruns - 1, RESULT_DEFERRED);
		assert_int_equal(f.nmarks, 0);	/* a deferral is not final */
		/* ... but its attempt and next time are in the journal */
		assert_int_equal(f.nnotes, i + 1);
		assert_int_equal(f.notes[i].attempt, i + 1);
		assert_int_equal(f.notes[i].kind, JOURNAL_DEFERRED);
		assert_true(f.notes[i].next >= wall + (int64_t)gaps[i] &&
		    f.notes[i].next <= (int64_t)time(NULL) + (int64_t)gaps[i]);
		assert_int_equal(sched_running(f.sc), 0);
		assert_true(uv_is_active((uv_handle_t *)&f.sc->timer));
		clock_to(&f, t + 1000 * gaps[i] - 1);
		assert_int_equal(f.nruns, i + 1);
		clock_to(&f, t + 1000 * gaps[i]);
		assert_int_equal(f.nruns, i + 2);
		assert_string_equal(f.runs[i + 1].id, "0000000000000001");
		assert_string_equal(f.runs[i + 1].delivery_id,
			f.runs[0].delivery_id);
	}
	/*
	 * Delivered: the next item is ready, and starts once a processor is
	 * free, here the one released when the final state is on disk.
	 */
	finish_run(&f, f.nruns - 1, RESULT_DELIVERED);
	assert_int_equal(f.nruns, 4);
	assert_int_equal(f.nmarks, 1);
	finish_marks(&f);
	assert_int_equal(f.nruns, 5);
	assert_string_equal(f.runs[4].id, "0000000000000002");
	assert_false(uv_is_active((uv_handle_t *)&f.sc->timer));
	finish_run(&f, 4, RESULT_DELIVERED);
	finish_marks(&f);
	fx_close(&f, 2);
}

/*
 * Hand over a recovered message whose one recipient's journal says
 * `attempts` attempts so far and a next attempt `in` seconds from now.
 */
static void
add_recovered(struct fx *f, const char *id, const char *rcpt,
	unsigned attempts, int64_t in)
{
	struct store_msg *m = new_msg(f, id, 0, &rcpt, 1);

	m->hist = calloc(1, sizeof(*m->hist));
	assert_non_null(m->hist);
	m->hist[0].attempts = attempts;
	m->hist[0].next = (int64_t)time(NULL) + in;
	m->hist[0].reason = strdup("fake deferred");
	assert_int_equal(sched_add(f->sc, m), 0);
}

/*
 * After a restart a recipient waits for the next attempt time its
 * journal recorded (not earlier), its queue shows the recorded error,
 * and its attempt count goes on (the next deferral uses the next
 * interval); one already due runs at once; a time absurdly far ahead (a
 * clock set back) waits no longer than the longest interval.
 */
static void
test_restored_schedule(void **state)
{
	static const uint64_t r[] = { 60, 300, 900 };
	struct fx f;
	uint64_t t0;

	(void)state;
	fx_open(&f, 10, 1, r, 3, 86400);
	t0 = f.now_ms;
	add_recovered(&f, "0000000000000001", "\"queue[A] app x\"@pipe", 2,
		120);
	add_recovered(&f, "0000000000000002", "\"app due\"@pipe", 1, -5);
	add_recovered(&f, "0000000000000003", "\"app far\"@pipe", 1,
		10 * 86400);
	pump(&f);
	assert_int_equal(f.nruns, 1);	/* only the one already due */
	assert_string_equal(f.runs[0].id, "0000000000000002");
	/* the recorded wait, within the second time(NULL) may have moved */
	clock_to(&f, t0 + 1000 * 118);
	assert_int_equal(f.nruns, 1);
	clock_to(&f, t0 + 1000 * 121);
	assert_int_equal(f.nruns, 2);
	assert_string_equal(f.runs[1].id, "0000000000000001");
	finish_run(&f, 1, RESULT_DEFERRED);
	assert_int_equal(f.nnotes, 1);
	assert_int_equal(f.notes[0].attempt, 3);	/* 2 before the restart */
	/* the far one: capped at the longest interval (900 s) */
	clock_to(&f, t0 + 1000 * 899);
	assert_int_equal(f.nruns, 2);
	clock_to(&f, t0 + 1000 * 901);
	assert_int_equal(f.nruns, 3);
	assert_string_equal(f.runs[2].id, "0000000000000003");
	finish_run(&f, 0, RESULT_DELIVERED);
	finish_run(&f, 2, RESULT_DELIVERED);
	finish_marks(&f);
	clock_to(&f, t0 + 1000 * (121 + 900));
	assert_int_equal(f.nruns, 4);
	finish_run(&f, 3, RESULT_DELIVERED);
	finish_marks(&f);
	fx_close(&f, 3);
}

/*
 * A deferral after the message's lifetime fails the recipient at once
 * (no delay); a permanent failure is final too, and neither holds up the
 * other items.
 */
static void
test_lifetime_expiry(void **state)
{
	static const uint64_t r[] = { 60 };
	static const char *const rc[] = { "\"app a\"@pipe", "\"app b\"@pipe" };
	struct fx f;

	(void)state;
	fx_open(&f, 10, 1, r, 1, 3600);
	add_msg(&f, "0000000000000001", 7200, rc, 2);
	pump(&f);
	assert_int_equal(f.nruns, 2);
	finish_run(&f, 0, RESULT_DEFERRED);
	assert_int_equal(f.nmarks, 1);
	assert_int_equal(f.marks[0].state, RCPT_FAILED);
	/* RFC 3463 4.4.7, answered by us, recorded with the failure */
	assert_true(f.marks[0].has_rec);
	assert_string_equal(f.marks[0].rec.status, "4.4.7");
	assert_int_equal(f.marks[0].rec.src, JOURNAL_MTA);
	assert_int_equal(f.marks[0].rec.kind, JOURNAL_FAILED);
	assert_int_equal(f.nnotes, 0);	/* no retry time for a failure */
	assert_false(uv_is_active((uv_handle_t *)&f.sc->timer));
	finish_run(&f, 1, RESULT_FAILED);
	assert_int_equal(f.nmarks, 2);
	assert_int_equal(f.marks[1].state, RCPT_FAILED);
	assert_string_equal(f.marks[1].rec.status, "5.1.1");
	assert_int_equal(f.marks[1].rec.src, JOURNAL_PIPE);
	assert_int_equal(f.marks[1].rec.reply, 550);
	finish_marks(&f);
	assert_int_equal(sched_messages(f.sc), 0);
	fx_close(&f, 1);
}

/*
 * The recipients of one message for the relay form one transaction; a
 * host-level failure delays the whole host queue by the retry schedule
 * of its consecutive failures; when the delay ends a single transaction
 * probes the host, and only after it reached the host do the others run,
 * at `relay_processors` at once.
 */
static void
test_host_queue_delay_and_probe(void **state)
{
	static const uint64_t r[] = { 30, 90 };
	static const char *const rc[] = { "a@far.example", "b@far.example" };
	struct fx f;
	uint64_t t;

	(void)state;
	fx_open(&f, 10, 2, r, 2, 86400);
	add_msg(&f, "0000000000000001", 0, rc, 2);
	add_one(&f, "0000000000000002", "c@far.example");
	add_one(&f, "0000000000000003", "d@far.example");
	pump(&f);
	assert_int_equal(f.nruns, 2);		/* relay_processors */
	assert_int_equal(f.runs[0].nrcpt, 2);	/* one transaction */
	t = f.now_ms;
	finish_relay(&f, 0, RESULT_DEFERRED, RELAY_HOST_DOWN);
	finish_relay(&f, 1, RESULT_DEFERRED, RELAY_HOST_DOWN);
	assert_int_equal(f.nruns, 2);		/* the host is delayed */
	clock_to(&f, t + 30 * 1000 - 1);
	assert_int_equal(f.nruns, 2);
	clock_to(&f, t + 30 * 1000);
	assert_int_equal(f.nruns, 3);		/* one probe */
	assert_int_equal(running_runs(&f), 1);
	/* the probe fails: the second interval */
	t = f.now_ms;
	finish_relay(&f, 2, RESULT_DEFERRED, RELAY_HOST_DOWN);
	clock_to(&f, t + 90 * 1000 - 1);
	assert_int_equal(f.nruns, 3);
	clock_to(&f, t + 90 * 1000);
	assert_int_equal(f.nruns, 4);
	assert_int_equal(running_runs(&f), 1);
	/* it reaches the host: the rest flows, two at a time */
	finish_relay(&f, 3, RESULT_DELIVERED, RELAY_HOST_UP);
	finish_marks(&f);
	assert_int_equal(running_runs(&f), 2);
	while (running_runs(&f) > 0) {
		for (size_t i = 0; i < f.nruns; i++)
			if (!f.runs[i].done) {
				finish_relay(&f, i, RESULT_DELIVERED,
					RELAY_HOST_UP);
				break;
			}
		finish_marks(&f);
	}
	assert_int_equal(f.nmarks, 4);
	for (size_t i = 0; i < f.nmarks; i++)
		assert_int_equal(f.marks[i].state, RCPT_DELIVERED);
	assert_int_equal(sched_messages(f.sc), 0);
	fx_close(&f, 3);
}

/* The whole log written to f so far. */
static char *
log_text(FILE *f)
{
	struct buf b = BUF_INIT;
	char *out = NULL;

	fflush(f);
	assert_int_equal(lseek(fileno(f), 0, SEEK_SET), 0);
	assert_true(buf_read_fd(&b, fileno(f), 1 << 20) >= 0);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_int_equal(buf_steal(&b, &out), 0);
	return out;
}

/*
 * An attempt is logged under its module's component: PIPE deliveries
 * under PIPE, relay ones under SMTP, outcomes of routing alone (an
 * unknown user) under ENQUEUER.
 */
static void
test_log_component(void **state)
{
	static const uint64_t r[] = { 60 };
	struct fx f;
	FILE *tf = tmpfile();
	char *text;

	(void)state;
	assert_non_null(tf);
	fx_open(&f, 10, 1, r, 1, 86400);
	f.log.fd = fileno(tf);
	log_set_all(&f.log, LOG_MAJOR);
	add_one(&f, "0000000000000001", "\"app 1\"@pipe");
	add_one(&f, "0000000000000002", "x@far.example");
	add_one(&f, "0000000000000003", "nobody@here.example");
	pump(&f);
	assert_int_equal(f.nruns, 2);
	for (size_t i = 0; i < 2; i++)
		if (f.runs[i].pcb)
			finish_run(&f, i, RESULT_DELIVERED);
		else
			finish_relay(&f, i, RESULT_DELIVERED, RELAY_HOST_UP);
	finish_marks(&f);
	text = log_text(tf);
	assert_non_null(strstr(text, " PIPE major: delivery "
		"id=0000000000000001 "));
	assert_non_null(strstr(text, " SMTP major: delivery "
		"id=0000000000000002 "));
	assert_non_null(strstr(text, " ENQUEUER failures: delivery "
		"id=0000000000000003 "));
	assert_null(strstr(text, " PIPE major: delivery "
		"id=0000000000000002 "));
	free(text);
	fx_close(&f, 3);
	fclose(tf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_schedule),
		cmocka_unit_test(test_host_delay_grows_and_resets),
		cmocka_unit_test(test_processor_cap),
		cmocka_unit_test(test_named_queue_order),
		cmocka_unit_test(test_retry_timing),
		cmocka_unit_test(test_restored_schedule),
		cmocka_unit_test(test_lifetime_expiry),
		cmocka_unit_test(test_host_queue_delay_and_probe),
		cmocka_unit_test(test_log_component),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
