/*
 * sched_run: the scheduler's dispatch and its processors. Starts
 * deliveries while processors are free (PIPE runs also take one of the
 * processors shared with sync runs, procslots.h), runs a PIPE or
 * queue-mode transport item and hands its result on; a processor stays
 * taken until every final state of its delivery is on disk. Dispatch runs
 * from the loop (an idle handle, the retry timer), never on a caller's
 * stack.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

/* Take a processor of module mod (one reference, for the run). */
struct slot *
sched__slot_take(struct sched *sc, enum sched_module mod)
{
	struct slot *sl = calloc(1, sizeof(*sl));

	sc->running[mod]++;
	if (sl == NULL)
		return NULL;	/* counted anyway; slot_put(NULL) frees it */
	sl->sc = sc;
	sl->mod = mod;
	sl->refs = 1;
	return sl;
}

/* Drop a reference; the processor is free with the last one. */
void
sched__slot_put(struct sched *sc, enum sched_module mod, struct slot *sl)
{
	if (sl != NULL && --sl->refs > 0)
		return;
	free(sl);
	sc->running[mod]--;
	if (mod == MOD_PIPE)
		procslots_put(sc->slots);	/* maybe to a sync run */
	sched__kick(sc);
	sched__check_stopped(sc);
}

/* The context of a PIPE run: its item and the processor it holds. */
struct pipe_run_ctx {
	struct sched_item *it;
	struct slot *slot;
};

/* A PIPE (or queue-mode transport) delivery finished. */
static void
on_pipe_done(void *arg, struct result *res, const struct pipe_info *info)
{
	struct pipe_run_ctx *pc = arg;
	struct sched_item *it = pc->it;
	struct slot *slot = pc->slot;
	struct sched *sc = it->sm->sc;
	struct sched_queue *q = it->q;

	free(pc);
	if (sched__settle(sc, it, res, info) == RESULT_DEFERRED) {
		store_msg_drop_body(it->sm->m);	/* retries read the file */
		sched__delay_queue(sc, q, it->attempts, res->text);
	} else {
		free(q->last_error);
		q->last_error = res->kind == RESULT_DELIVERED ? NULL :
			(res->text ? strdup(res->text) : NULL);
		TAILQ_REMOVE(&q->items, it, link);
		sched__item_final(sc, it, res, slot);
		sched__queue_settle(sc, q);
	}
	result_clear(res);
	sched__slot_put(sc, MOD_PIPE, slot);	/* the run's reference */
}

/* Start the first item of a PIPE queue. */
static void
start_pipe(struct sched *sc, struct sched_queue *q)
{
	struct sched_item *it = TAILQ_FIRST(&q->items);
	struct store_msg *m = it->sm->m;
	struct pipe_run_ctx *pc = calloc(1, sizeof(*pc));
	struct pipe_request req;
	struct result res = RESULT_INIT;
	int r;

	memset(&req, 0, sizeof(req));
	req.cmd = &it->route.pipe;
	if (it->tr)
		transport_request(it->tr, false, &req);
	req.queue_file = m->relpath;
	req.input_len = m->msg_len;
	if (m->body) {
		req.input_mem = m->body;	/* fresh: still in memory */
	} else {
		req.input_path = m->path;
		req.input_off = m->msg_off;
	}
	req.sender = m->env.from;
	req.recipient = it->route.address;
	req.orig_recipient = it->orig;
	req.queue_id = m->id;
	req.delivery_id = it->delivery_id;
	if (pc == NULL) {		/* try again later, not in a loop */
		procslots_put(sc->slots);	/* dispatch's take */
		sched__delay_queue(sc, q, 1, "out of memory");
		return;
	}
	q->state = Q_ACTIVE;
	pc->it = it;
	pc->slot = sched__slot_take(sc, MOD_PIPE);
	r = pipe_run(sc->d.pipe, &req, on_pipe_done, pc);
	if (r < 0) {
		result_set(&res, RESULT_DEFERRED, 451, "4.3.0",
			"cannot start delivery: %s", strerror(-r));
		on_pipe_done(pc, &res, NULL);
	}
}

/* Start deliveries while processors are free, module by module. */
static void
dispatch(struct sched *sc)
{
	struct sched_queue *q;

	for (int mod = 0; mod < MOD_N; mod++)
		while (!sc->stopping && sc->running[mod] < sc->cap[mod] &&
		    (q = TAILQ_FIRST(&sc->ready[mod])) != NULL) {
			/*
			 * A program also needs one of the processors shared
			 * with sync runs; a refusal is remembered and
			 * on_slots_ready kicks us when one is ours.
			 */
			if (mod == MOD_PIPE && !TAILQ_EMPTY(&q->items) &&
			    !procslots_take(sc->slots))
				break;
			TAILQ_REMOVE(&sc->ready[mod], q, ready_link);
			q->in_ready = false;
			if (mod == MOD_RELAY)
				sched__start_host(sc, q);
			else if (!TAILQ_EMPTY(&q->items))
				start_pipe(sc, q);
		}
	if (sc->stopping || TAILQ_EMPTY(&sc->ready[MOD_PIPE]))
		procslots_idle(sc->slots);	/* our turn to sync runs */
	sched__check_stopped(sc);
}

/* procslots: a shared processor is free for the queue. */
void
sched__on_slots_ready(void *arg)
{
	sched__kick(arg);
}

/* Timer: move due queues back to the ready list. */
void
sched__on_timer(uv_timer_t *t)
{
	struct sched *sc = t->data;
	uint64_t now = sched__now_ms(sc);

	while (sc->nheap > 0 && sc->heap[0]->delayed_until_ms <= now) {
		struct sched_queue *q = sched__heap_pop(sc);

		if (q->is_host)
			sched__host_due(sc, q);
		else
			sched__make_ready(sc, q);
	}
	if (sc->nheap > 0)
		uv_timer_start(&sc->timer, sched__on_timer,
			sc->heap[0]->delayed_until_ms - now, 0);
	dispatch(sc);
}

/* Idle callback: dispatch outside of the caller's stack, then stop. */
static void
on_kick(uv_idle_t *h)
{
	struct sched *sc = h->data;

	uv_idle_stop(h);
	sc->kick_on = false;
	dispatch(sc);
}

/* Ask for a dispatch on the next loop iteration. */
void
sched__kick(struct sched *sc)
{
	if (!sc->kick_on && !sc->stopping) {
		sc->kick_on = true;
		uv_idle_start(&sc->kick, on_kick);
	}
}
