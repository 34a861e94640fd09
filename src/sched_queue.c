/*
 * sched_queue: the PIPE module queues. A named queue (queue[NAME]) lives
 * as long as the scheduler and keeps its items in queue-ID order (arrival
 * order), never passing a head that runs or is delayed; any other item
 * gets its own numbered queue, freed with its last item. Owns the ready
 * lists' order; never starts a delivery.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

/*
 * Put q at the end of its module's ready list; a message entry of a host
 * queue goes to the end of its host's members instead.
 */
void
sched__make_ready(struct sched *sc, struct sched_queue *q)
{
	q->state = Q_READY;
	if (q->in_ready || TAILQ_EMPTY(&q->items))
		return;
	q->in_ready = true;
	if (q->host) {
		TAILQ_INSERT_TAIL(&q->host->members, q, ready_link);
		sched__host_ready(sc, q->host);
	} else {
		TAILQ_INSERT_TAIL(&sc->ready[q->mod], q, ready_link);
	}
}

/* Free a queue that has no items and is not referenced. */
void
sched__queue_free(struct sched *sc, struct sched_queue *q)
{
	struct sched_queue *hq = q->host;

	if (q->named)
		LIST_REMOVE(q, named_link);
	free(q->name);
	free(q->last_error);
	free(q);
	if (hq) {
		hq->refs--;
		sched__host_maybe_free(sc, hq);
	}
}

/* The name a queue's attempts are logged under (a host's for its
   messages). */
const char *
sched__queue_label(const struct sched_queue *q)
{
	return q->host ? q->host->name : q->name;
}

/*
 * New empty queue of module mod: called name and put in list `in` (the
 * named PIPE queues or the host queues), or numbered when name is NULL.
 */
struct sched_queue *
sched__queue_new(struct sched *sc, enum sched_module mod, const char *name,
	struct named_list *in)
{
	struct sched_queue *q = calloc(1, sizeof(*q));
	char num[32];

	if (q == NULL)
		return NULL;
	if (name == NULL) {
		snprintf(num, sizeof(num), "%s%llu",
			mod == MOD_RELAY ? "relay-" : "",
			(unsigned long long)++sc->next_qnum);
		name = num;
	}
	q->name = strdup(name);
	if (q->name == NULL) {
		free(q);
		return NULL;
	}
	q->named = in == &sc->named;
	q->mod = mod;
	q->state = Q_READY;
	q->heap_idx = SIZE_MAX;
	TAILQ_INIT(&q->items);
	TAILQ_INIT(&q->members);
	if (in)
		LIST_INSERT_HEAD(in, q, named_link);
	return q;
}

/* The queue called name in list l, or NULL. */
struct sched_queue *
sched__queue_find(struct named_list *l, const char *name)
{
	struct sched_queue *q;

	LIST_FOREACH(q, l, named_link)
		if (strcmp(q->name, name) == 0)
			return q;
	return NULL;
}

/* The named PIPE queue NAME, created on first use. */
static struct sched_queue *
queue_named(struct sched *sc, const char *name)
{
	struct sched_queue *q = sched__queue_find(&sc->named, name);

	return q ? q : sched__queue_new(sc, MOD_PIPE, name, &sc->named);
}

/* q lost an item: free it when empty and transient, else ready it. */
void
sched__queue_settle(struct sched *sc, struct sched_queue *q)
{
	if (!TAILQ_EMPTY(&q->items)) {
		sched__make_ready(sc, q);
		return;
	}
	q->state = Q_READY;
	if (!q->named)
		sched__queue_free(sc, q);
}

/* Insert it into q in queue-ID order (never before a busy head). */
void
sched__queue_insert(struct sched_queue *q, struct sched_item *it)
{
	struct sched_item *at = TAILQ_LAST(&q->items, item_list);

	it->q = q;
	/*
	 * Arrival order is queue-ID order: commits may finish out of order,
	 * so walk back from the tail; never pass a head that is running or
	 * delayed.
	 */
	while (at != NULL && strcmp(at->sm->m->id, it->sm->m->id) > 0 &&
	    !(at == TAILQ_FIRST(&q->items) && q->state != Q_READY))
		at = TAILQ_PREV(at, item_list, link);
	if (at == NULL)
		TAILQ_INSERT_HEAD(&q->items, it, link);
	else
		TAILQ_INSERT_AFTER(&q->items, at, it, link);
}

/* Queue a routed PIPE or transport item into its module queue. */
int
sched__queue_item(struct sched *sc, struct sched_item *it)
{
	const char *name = it->tr ? it->tr->cmd.queue : it->route.pipe.queue;
	struct sched_queue *q = name ? queue_named(sc, name) :
		sched__queue_new(sc, MOD_PIPE, NULL, NULL);
	uint64_t wait;

	if (q == NULL)
		return -ENOMEM;
	sched__queue_insert(q, it);
	if (q->state != Q_READY)
		return 0;
	/* a recovered head waits for its recorded retry time */
	if (TAILQ_FIRST(&q->items) == it &&
	    (wait = sched__restored_wait(sc, it)) > 0)
		sched__delay_queue_ms(sc, q, wait,
			it->sm->m->hist[it->rcpt].reason);
	else
		sched__make_ready(sc, q);
	return 0;
}
