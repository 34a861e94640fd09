/*
 * procslots: the shared count of running programs (see procslots.h).
 * Owns the count, the FIFO of waiting sync runs, a timer for their bounds
 * and an idle handle that tells them their outcome off the caller's stack.
 * Promises: never more than cap slots held; sync runs granted in arrival
 * order; under contention freed slots alternate between a waiting sync
 * run and the queue, a sync run first; a wait never outlives its bound.
 */
#include "procslots.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/queue.h>

/* One waiting (or granted, not yet told) sync run. */
struct waiter {
	TAILQ_ENTRY(waiter) link;	/* fifo, then done */
	TAILQ_ENTRY(waiter) dlink;	/* deadlines (while waiting) */
	uint64_t deadline_ms;		/* UINT64_MAX: no bound */
	procslots_wait_cb cb;
	void *arg;
	bool granted;
};

TAILQ_HEAD(waiter_list, waiter);

/* Who gets the next slot when a sync run and the queue both want one. */
enum turn { TURN_SYNC, TURN_QUEUE };

struct procslots {
	uv_loop_t *loop;
	unsigned cap, used;
	struct waiter_list fifo;	/* waiting, in arrival order */
	struct waiter_list deadlines;	/* waiting, by deadline (bounded) */
	struct waiter_list done;	/* to be told, in order */
	size_t nwaiting;
	bool queue_wants;		/* the queue was refused a slot */
	enum turn turn;
	procslots_ready_cb ready_cb;
	void *ready_arg;
	uv_timer_t timer;
	uv_idle_t tell;
	bool tell_on;
	int closing;			/* handles still to close */
};

static void on_timer(uv_timer_t *t);
static void on_tell(uv_idle_t *h);

/* Start telling done waiters on the next loop iteration. */
static void
tell_later(struct procslots *ps)
{
	if (!ps->tell_on) {
		ps->tell_on = true;
		uv_idle_start(&ps->tell, on_tell);
	}
}

/* Remove w from the waiting lists and queue it to be told. */
static void
finish(struct procslots *ps, struct waiter *w, bool granted)
{
	TAILQ_REMOVE(&ps->fifo, w, link);
	if (w->deadline_ms != UINT64_MAX)
		TAILQ_REMOVE(&ps->deadlines, w, dlink);
	ps->nwaiting--;
	w->granted = granted;
	TAILQ_INSERT_TAIL(&ps->done, w, link);
	tell_later(ps);
}

/* Arm the timer for the earliest bound, or stop it. */
static void
arm(struct procslots *ps)
{
	struct waiter *w = TAILQ_FIRST(&ps->deadlines);
	uint64_t now = uv_now(ps->loop);

	if (w == NULL) {
		uv_timer_stop(&ps->timer);
		return;
	}
	uv_timer_start(&ps->timer, on_timer,
		w->deadline_ms > now ? w->deadline_ms - now : 0, 0);
}

/*
 * Hand free slots to waiting sync runs, unless the queue has its turn;
 * then tell the queue when a slot is free for it.
 */
static void
grant(struct procslots *ps)
{
	struct waiter *w;
	bool any = false;

	while (ps->used < ps->cap && (w = TAILQ_FIRST(&ps->fifo)) != NULL &&
	    !(ps->queue_wants && ps->turn == TURN_QUEUE)) {
		ps->used++;
		if (ps->queue_wants)
			ps->turn = TURN_QUEUE;
		finish(ps, w, true);
		any = true;
	}
	if (any)
		arm(ps);
	if (ps->used < ps->cap && ps->queue_wants && ps->ready_cb)
		ps->ready_cb(ps->ready_arg);
}

/* Idle: tell every done waiter its outcome, in order. */
static void
on_tell(uv_idle_t *h)
{
	struct procslots *ps = h->data;
	struct waiter *w;

	uv_idle_stop(h);
	ps->tell_on = false;
	/* a callback may wait again or put a slot: take one at a time */
	while ((w = TAILQ_FIRST(&ps->done)) != NULL) {
		TAILQ_REMOVE(&ps->done, w, link);
		w->cb(w->arg, w->granted);
		free(w);
	}
}

/* Timer: the waits past their bound end without a slot. */
static void
on_timer(uv_timer_t *t)
{
	struct procslots *ps = t->data;
	uint64_t now = uv_now(ps->loop);
	struct waiter *w;

	while ((w = TAILQ_FIRST(&ps->deadlines)) != NULL &&
	    w->deadline_ms <= now)
		finish(ps, w, false);
	arm(ps);
}

/* Open the count. */
int
procslots_open(uv_loop_t *loop, unsigned cap, struct procslots **out)
{
	struct procslots *ps = calloc(1, sizeof(*ps));

	if (ps == NULL)
		return -ENOMEM;
	ps->loop = loop;
	ps->cap = cap ? cap : 1;
	TAILQ_INIT(&ps->fifo);
	TAILQ_INIT(&ps->deadlines);
	TAILQ_INIT(&ps->done);
	ps->turn = TURN_SYNC;
	uv_timer_init(loop, &ps->timer);
	ps->timer.data = ps;
	uv_idle_init(loop, &ps->tell);
	ps->tell.data = ps;
	*out = ps;
	return 0;
}

/* Set the queue's ready callback. */
void
procslots_set_queue(struct procslots *ps, procslots_ready_cb cb, void *arg)
{
	ps->ready_cb = cb;
	ps->ready_arg = arg;
}

/* The queue takes a slot if one is free for it. */
bool
procslots_take(struct procslots *ps)
{
	bool sync_waits = !TAILQ_EMPTY(&ps->fifo);

	if (ps->used >= ps->cap || (sync_waits && ps->turn != TURN_QUEUE)) {
		ps->queue_wants = true;
		return false;
	}
	ps->used++;
	ps->queue_wants = false;
	if (sync_waits)
		ps->turn = TURN_SYNC;
	return true;
}

/* The queue wants no slot now. */
void
procslots_idle(struct procslots *ps)
{
	ps->queue_wants = false;
	grant(ps);
}

/* A sync run waits for a slot. */
int
procslots_wait(struct procslots *ps, uint64_t timeout_ms,
	procslots_wait_cb cb, void *arg)
{
	struct waiter *w = calloc(1, sizeof(*w)), *at;

	if (w == NULL)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	w->deadline_ms = timeout_ms ? uv_now(ps->loop) + timeout_ms :
		UINT64_MAX;
	TAILQ_INSERT_TAIL(&ps->fifo, w, link);
	ps->nwaiting++;
	if (w->deadline_ms != UINT64_MAX) {
		/* bounds are mostly equal: walk back from the latest */
		at = TAILQ_LAST(&ps->deadlines, waiter_list);
		while (at != NULL && at->deadline_ms > w->deadline_ms)
			at = TAILQ_PREV(at, waiter_list, dlink);
		if (at == NULL)
			TAILQ_INSERT_HEAD(&ps->deadlines, w, dlink);
		else
			TAILQ_INSERT_AFTER(&ps->deadlines, at, w, dlink);
	}
	grant(ps);
	if (!w->granted && TAILQ_FIRST(&ps->deadlines) == w)
		arm(ps);
	return 0;
}

/* Give back a slot. */
void
procslots_put(struct procslots *ps)
{
	if (ps->used > 0)
		ps->used--;
	grant(ps);
}

/* Slots held. */
unsigned
procslots_used(const struct procslots *ps)
{
	return ps->used;
}

/* Slots in all. */
unsigned
procslots_cap(const struct procslots *ps)
{
	return ps->cap;
}

/* Sync runs waiting. */
size_t
procslots_waiting(const struct procslots *ps)
{
	return ps->nwaiting;
}

/* Free once both handles are closed. */
static void
on_closed(uv_handle_t *h)
{
	struct procslots *ps = h->data;

	if (--ps->closing == 0)
		free(ps);
}

/* Drop every wait and close. */
void
procslots_close(struct procslots *ps)
{
	struct waiter *w;

	while ((w = TAILQ_FIRST(&ps->fifo)) != NULL) {
		TAILQ_REMOVE(&ps->fifo, w, link);
		free(w);
	}
	while ((w = TAILQ_FIRST(&ps->done)) != NULL) {
		TAILQ_REMOVE(&ps->done, w, link);
		free(w);
	}
	TAILQ_INIT(&ps->deadlines);
	ps->closing = 2;
	uv_close((uv_handle_t *)&ps->timer, on_closed);
	uv_close((uv_handle_t *)&ps->tell, on_closed);
}
