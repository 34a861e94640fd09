/*
 * sched_int.h: what the pieces of the scheduler share (sched.c: the API,
 * the message table and the hand-over from the store; sched_run.c:
 * dispatch and processors; sched_retry.c: final states, the log line,
 * retry delays and their timer; sched_queue.c: named and numbered PIPE
 * queues; sched_host.c: RELAY host queues and transactions). Nothing
 * outside the scheduler includes it, except its unit test. Functions named
 * sched__* are the scheduler's own, not an interface.
 */
#ifndef MP_SCHED_INT_H
#define MP_SCHED_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "hostq.h"
#include "result.h"
#include "sched.h"

struct sched_msg;
struct sched_queue;

/* The delivery modules that have queues and processors. */
enum sched_module { MOD_PIPE, MOD_RELAY, MOD_N };

/* One pending recipient waiting in (or running from) a module queue. */
struct sched_item {
	TAILQ_ENTRY(sched_item) link;
	struct sched_msg *sm;
	size_t rcpt;
	struct route route;
	const struct transport *tr;	/* queue-mode transport, or NULL */
	char *orig;			/* ORIGINAL_RECIPIENT */
	char *delivery_id;		/* uid.N */
	unsigned attempts;
	bool expired;			/* failed by us: past max-lifetime */
	struct sched_queue *q;
};

TAILQ_HEAD(item_list, sched_item);

enum queue_state { Q_READY, Q_ACTIVE, Q_DELAYED };

/*
 * A module queue: named (queue[NAME]), one PIPE item's own numeric queue,
 * a RELAY host queue (one per destination: seed 002's host queue, delayed
 * as a whole when the host fails), or one message's entry in a host queue
 * (all its recipients for that host: one transaction, delayed on its own
 * when the relay defers the message or some of its recipients).
 */
struct sched_queue {
	char *name;
	bool named;
	enum sched_module mod;
	enum queue_state state;
	uint64_t delayed_until_ms;
	char *last_error;
	struct item_list items;
	TAILQ_ENTRY(sched_queue) ready_link;	/* sc->ready, or a host's
						   members */
	bool in_ready;
	size_t heap_idx;		/* position in the delay heap, or SIZE_MAX */
	LIST_ENTRY(sched_queue) named_link;	/* sc->named or sc->hosts */
	struct sched_queue *host;	/* a message entry: its host queue */

	/* A host queue (is_host): no items of its own. */
	bool is_host;
	struct hostq hs;
	TAILQ_HEAD(, sched_queue) members;	/* message entries, ready */
	unsigned refs;			/* message entries naming it */
};

TAILQ_HEAD(queue_list, sched_queue);
LIST_HEAD(named_list, sched_queue);

/* The scheduler's view of one queue file. */
struct sched_msg {
	struct store_msg *m;
	unsigned refs;			/* items alive + marks in flight */
	struct sched *sc;
};

struct sched {
	struct sched_settings set;
	uint64_t *retry;
	struct sched_deps d;
	struct router_ctx router;
	struct queue_list ready[MOD_N];	/* MOD_RELAY: host queues */
	struct named_list named;
	struct named_list hosts;	/* RELAY host queues, by destination */
	struct sched_queue **heap;	/* min-heap on delayed_until_ms */
	size_t nheap, capheap;
	uv_timer_t timer;
	uv_idle_t kick;			/* deferred dispatch, off the caller's stack */
	bool kick_on;
	unsigned running[MOD_N];	/* processors busy (until recorded) */
	unsigned cap[MOD_N];
	struct procslots *slots;	/* PIPE's cap, shared with sync runs */
	unsigned marks;
	size_t nmsgs;
	uint64_t next_qnum;
	bool stopping;
	bool closing;			/* in sched_close (it frees hosts) */
	sched_stopped_cb stopped_cb;
	void *stopped_arg;
	bool closed_timer, closed_kick;
};

/*
 * A processor held by a delivery until its results are on disk: one
 * reference for the run, one for each mark of a final state.
 */
struct slot {
	struct sched *sc;
	enum sched_module mod;
	unsigned refs;
};

/* State of a mark in flight. */
struct mark_ctx {
	struct sched_msg *sm;
	size_t rcpt;
	struct slot *slot;	/* the processor it holds, or NULL */
};

/* sched.c */
void sched__msg_unref(struct sched_msg *sm);
void sched__check_stopped(struct sched *sc);

/* sched_run.c */
struct slot *sched__slot_take(struct sched *sc, enum sched_module mod);
void sched__slot_put(struct sched *sc, enum sched_module mod,
	struct slot *sl);
void sched__on_slots_ready(void *arg);
void sched__on_timer(uv_timer_t *t);
void sched__kick(struct sched *sc);

/* sched_retry.c */
uint64_t sched__now_ms(struct sched *sc);
int sched__heap_push(struct sched *sc, struct sched_queue *q);
struct sched_queue *sched__heap_pop(struct sched *sc);
void sched__arm_timer(struct sched *sc);
void sched__log_attempt(struct sched *sc, const struct sched_item *it,
	const char *queue, const struct result *res,
	const struct pipe_info *info, unsigned attempt);
void sched__item_free(struct sched_item *it);
void sched__item_final(struct sched *sc, struct sched_item *it,
	const struct result *res, struct slot *slot);
bool sched__expired(struct sched *sc, const struct sched_msg *sm);
enum result_kind sched__settle(struct sched *sc, struct sched_item *it,
	struct result *res, const struct pipe_info *info);
void sched__delay_queue(struct sched *sc, struct sched_queue *q,
	unsigned attempt, const char *error);
void sched__delay_queue_ms(struct sched *sc, struct sched_queue *q,
	uint64_t ms, const char *error);
uint64_t sched__restored_wait(struct sched *sc, const struct sched_item *it);
void sched__expire_result(struct sched_item *it, unsigned attempts,
	const char *last, struct result *out);

/* sched_queue.c */
void sched__make_ready(struct sched *sc, struct sched_queue *q);
void sched__queue_free(struct sched *sc, struct sched_queue *q);
const char *sched__queue_label(const struct sched_queue *q);
struct sched_queue *sched__queue_new(struct sched *sc, enum sched_module mod,
	const char *name, struct named_list *in);
struct sched_queue *sched__queue_find(struct named_list *l,
	const char *name);
void sched__queue_settle(struct sched *sc, struct sched_queue *q);
void sched__queue_insert(struct sched_queue *q, struct sched_item *it);
int sched__queue_item(struct sched *sc, struct sched_item *it);

/* sched_host.c */
struct sched_queue *sched__host_get(struct sched *sc, const char *name);
void sched__host_maybe_free(struct sched *sc, struct sched_queue *hq);
void sched__host_ready(struct sched *sc, struct sched_queue *hq);
void sched__host_due(struct sched *sc, struct sched_queue *hq);
void sched__start_host(struct sched *sc, struct sched_queue *hq);

#endif
