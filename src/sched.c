/*
 * sched: module queues, processors, delays and retries (see sched.h).
 * Owns the in-memory queues and the items in them; the queue files belong
 * to the store and are changed only through store_mark. Promises: one
 * delivery at a time per named queue, in arrival order; never more than
 * `processors` programs; no relay transaction for a host queue that is
 * delayed, one while it probes; one log line per attempt; a recipient's
 * final state is on disk before its message is released. Never blocks
 * the loop. This file: the API, the message table (a message is freed
 * with its last item and mark) and the hand-over from the store (routing
 * each pending recipient into its queue); the rest is in sched_run.c,
 * sched_retry.c, sched_queue.c and sched_host.c (sched_int.h).
 */
#include "sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "envelope.h"
#include "sched_int.h"
#include "smtpcmd.h"

/* Drop one reference to sm; free it with its store_msg at zero. */
void
sched__msg_unref(struct sched_msg *sm)
{
	struct sched *sc = sm->sc;

	if (--sm->refs > 0)
		return;
	store_msg_free(sm->m);
	free(sm);
	sc->nmsgs--;
	sched__check_stopped(sc);
}

/* An outcome decided by routing alone. */
static void
route_outcome(const struct route *rt, struct result *res)
{
	if (rt->kind == ROUTE_NULL)
		result_set(res, RESULT_DELIVERED, 250, "2.0.0",
			"discarded (routed to null)");
	else
		result_set(res, RESULT_FAILED, rt->reply ? rt->reply : 550,
			rt->status[0] ? rt->status : "5.1.1", "%s",
			rt->text ? rt->text : "undeliverable");
}

/* A message's new entry in the host queue of destination dest. */
static int
relay_entry(struct sched *sc, const char *dest, struct sched_queue **out)
{
	struct sched_queue *hq = sched__host_get(sc, dest), *q;

	if (hq == NULL)
		return -ENOMEM;
	if ((q = sched__queue_new(sc, MOD_RELAY, NULL, NULL)) == NULL) {
		sched__host_maybe_free(sc, hq);
		return -ENOMEM;
	}
	q->host = hq;
	hq->refs++;
	*out = q;
	return 0;
}

/*
 * A message's new relay entry is ready, or delayed while its recipients'
 * recorded retry time (the latest of them) is still ahead.
 */
static void
relay_ready(struct sched *sc, struct sched_queue *q)
{
	const struct sched_item *it;
	uint64_t wait = 0, w;

	TAILQ_FOREACH(it, &q->items, link)
		if ((w = sched__restored_wait(sc, it)) > wait)
			wait = w;
	if (wait == 0) {
		sched__make_ready(sc, q);
		return;
	}
	it = TAILQ_FIRST(&q->items);
	sched__delay_queue_ms(sc, q, wait, it->sm->m->hist[it->rcpt].reason);
}

/*
 * Route one pending recipient: queue it (PIPE, transport), add it to the
 * message's entry in its relay host queue (*relay, created on first use),
 * or finish it.
 */
static int
add_rcpt(struct sched *sc, struct sched_msg *sm, size_t i,
	struct sched_queue **relay)
{
	struct store_msg *m = sm->m;
	struct env_rcpt *rc = &m->env.rcpt[i];
	struct sched_item *it = calloc(1, sizeof(*it));
	struct router_ctx ctx = sc->router;
	struct result res = RESULT_INIT;
	struct buf did = BUF_INIT;
	int r;

	if (it == NULL)
		return -ENOMEM;
	it->sm = sm;
	it->rcpt = i;
	it->route = (struct route)ROUTE_INIT;
	/* a recovered message goes on with its recorded retry schedule */
	it->attempts = m->hist ? m->hist[i].attempts : 0;
	ctx.direct_pipe_allowed = sc->set.direct == DIRECT_LOCAL &&
		m->env.tag && strcmp(m->env.tag, "PIPE") == 0;
	if ((r = router_route(&ctx, rc->addr, &it->route)) < 0 ||
	    (r = smtp_original_recipient(rc->addr, rc->orcpt, &it->orig)) < 0 ||
	    (r = buf_printf(&did, "%s.%zu", m->env.uid, i)) < 0 ||
	    (r = buf_steal(&did, &it->delivery_id)) < 0) {
		buf_free(&did);
		sched__item_free(it);
		return r;
	}
	sm->refs++;
	if (it->route.kind == ROUTE_TRANSPORT && sc->d.transports)
		it->tr = transport_find(sc->d.transports, it->route.transport);
	if (it->route.kind == ROUTE_PIPE || it->tr)
		return sched__queue_item(sc, it);
	if (it->route.kind == ROUTE_RELAY && sc->d.relay) {
		if (*relay == NULL && (r = relay_entry(sc,
		    relay_destination(sc->d.relay), relay)) < 0) {
			sm->refs--;
			sched__item_free(it);
			return r;
		}
		sched__queue_insert(*relay, it);
		return 0;
	}
	/* everything else is final now */
	if (it->route.kind == ROUTE_TRANSPORT || it->route.kind == ROUTE_RELAY)
		result_set(&res, RESULT_FAILED, 554, "5.3.3",
			"%s delivery is not configured",
			route_kind_name(it->route.kind));
	else
		route_outcome(&it->route, &res);
	it->q = NULL;
	sched__log_attempt(sc, it, NULL, &res, NULL, 1);
	sched__item_final(sc, it, &res, NULL);
	result_clear(&res);
	return 0;
}

/* Take over a queue file and queue its pending recipients. */
int
sched_add(struct sched *sc, struct store_msg *m)
{
	struct sched_msg *sm = calloc(1, sizeof(*sm));
	struct sched_queue *relay = NULL;
	int r = 0;

	if (sm == NULL)
		return -ENOMEM;
	sm->m = m;
	sm->sc = sc;
	sm->refs = 1;		/* held while the recipients are added */
	m->owner = sm;
	sc->nmsgs++;
	for (size_t i = 0; i < m->env.nrcpt && r == 0; i++)
		if (m->env.rcpt[i].state == RCPT_PENDING)
			r = add_rcpt(sc, sm, i, &relay);
	if (relay)
		relay_ready(sc, relay);
	if (r < 0)
		log_msg(sc->d.log, LOG_ENQUEUER, LOG_FAILURES,
			"id=%s cannot queue every recipient: %s (the rest waits "
			"for a restart)", m->id, strerror(-r));
	sched__msg_unref(sm);
	sched__kick(sc);
	return 0;
}

/* Use another router context from now on. */
void
sched_set_router(struct sched *sc, const struct router_ctx *router)
{
	sc->router = *router;
}

/* Open the scheduler. */
int
sched_open(const struct sched_settings *s, const struct sched_deps *d,
	struct sched **out)
{
	struct sched *sc = calloc(1, sizeof(*sc));

	if (sc == NULL)
		return -ENOMEM;
	sc->set = *s;
	sc->cap[MOD_PIPE] = s->processors ? s->processors : 1;
	sc->cap[MOD_RELAY] = s->relay_processors ? s->relay_processors : 1;
	sc->retry = calloc(s->nretry ? s->nretry : 1, sizeof(*sc->retry));
	if (sc->retry == NULL) {
		free(sc);
		return -ENOMEM;
	}
	if (s->nretry)
		memcpy(sc->retry, s->retry_s, s->nretry * sizeof(*sc->retry));
	sc->set.retry_s = sc->retry;
	if (procslots_open(d->loop, s->processors, &sc->slots) < 0) {
		free(sc->retry);
		free(sc);
		return -ENOMEM;
	}
	sc->d = *d;
	sc->router = *d->router;
	for (int mod = 0; mod < MOD_N; mod++)
		TAILQ_INIT(&sc->ready[mod]);
	LIST_INIT(&sc->named);
	LIST_INIT(&sc->hosts);
	uv_timer_init(d->loop, &sc->timer);
	sc->timer.data = sc;
	uv_idle_init(d->loop, &sc->kick);
	sc->kick.data = sc;
	procslots_set_queue(sc->slots, sched__on_slots_ready, sc);
	*out = sc;
	return 0;
}

/* Call the stopped callback once nothing runs and nothing is being marked. */
void
sched__check_stopped(struct sched *sc)
{
	sched_stopped_cb cb;

	if (!sc->stopping || sched_running(sc) > 0 || sc->marks > 0 ||
	    sc->stopped_cb == NULL)
		return;
	cb = sc->stopped_cb;
	sc->stopped_cb = NULL;
	cb(sc->stopped_arg);
}

/* Stop dispatching and report when idle. */
void
sched_stop(struct sched *sc, sched_stopped_cb cb, void *arg)
{
	sc->stopping = true;
	sc->stopped_cb = cb;
	sc->stopped_arg = arg;
	uv_timer_stop(&sc->timer);
	uv_idle_stop(&sc->kick);
	sc->kick_on = false;
	procslots_idle(sc->slots);	/* our turn goes to sync runs */
	sched__check_stopped(sc);
}

/* Messages known. */
size_t
sched_messages(const struct sched *sc)
{
	return sc->nmsgs;
}

/* The processors shared with sync runs. */
struct procslots *
sched_slots(struct sched *sc)
{
	return sc->slots;
}

/* Deliveries running (or recording their results), all modules. */
unsigned
sched_running(const struct sched *sc)
{
	unsigned n = 0;

	for (int mod = 0; mod < MOD_N; mod++)
		n += sc->running[mod];
	return n;
}

/* Free a queue's remaining items (at close). */
static void
drain_queue(struct sched_queue *q)
{
	struct sched_item *it;

	while ((it = TAILQ_FIRST(&q->items)) != NULL) {
		struct sched_msg *sm = it->sm;

		TAILQ_REMOVE(&q->items, it, link);
		sched__item_free(it);
		sched__msg_unref(sm);
	}
}

/* Handle-close callback: free the scheduler after both handles closed. */
static void
on_handle_closed(uv_handle_t *h)
{
	struct sched *sc = h->data;

	if (h == (uv_handle_t *)&sc->timer)
		sc->closed_timer = true;
	else
		sc->closed_kick = true;
	if (sc->closed_timer && sc->closed_kick) {
		free(sc->heap);
		free(sc->retry);
		free(sc);
	}
}

/* Release every queue and item; the queue files stay as they are. */
void
sched_close(struct sched *sc)
{
	struct sched_queue *q, *mq;

	sc->stopping = true;
	sc->closing = true;
	sc->stopped_cb = NULL;
	/*
	 * Transient queues are reachable from the ready lists, the heap or
	 * their host queue; host queues from sc->hosts (nothing runs now).
	 */
	for (int mod = 0; mod < MOD_N; mod++)
		while ((q = TAILQ_FIRST(&sc->ready[mod])) != NULL) {
			TAILQ_REMOVE(&sc->ready[mod], q, ready_link);
			q->in_ready = false;
			if (!q->named && !q->is_host) {
				drain_queue(q);
				sched__queue_free(sc, q);
			}
		}
	while ((q = sched__heap_pop(sc)) != NULL)
		if (!q->named && !q->is_host) {
			drain_queue(q);
			sched__queue_free(sc, q);
		}
	while ((q = LIST_FIRST(&sc->hosts)) != NULL) {
		while ((mq = TAILQ_FIRST(&q->members)) != NULL) {
			TAILQ_REMOVE(&q->members, mq, ready_link);
			drain_queue(mq);
			sched__queue_free(sc, mq);
		}
		LIST_REMOVE(q, named_link);
		free(q->name);
		free(q->last_error);
		free(q);
	}
	while ((q = LIST_FIRST(&sc->named)) != NULL) {
		drain_queue(q);
		sched__queue_free(sc, q);
	}
	procslots_close(sc->slots);	/* smtpd has stopped before us */
	uv_close((uv_handle_t *)&sc->timer, on_handle_closed);
	uv_close((uv_handle_t *)&sc->kick, on_handle_closed);
}
