/*
 * sched: module queues, processors, delays and retries (see sched.h).
 * Owns the in-memory queues and the items in them; the queue files belong
 * to the store and are changed only through store_mark. Promises: one
 * delivery at a time per named queue, in arrival order; never more than
 * `processors` programs; no relay transaction for a host queue that is
 * delayed, one while it probes; one log line per attempt; a recipient's
 * final state is on disk before its message is released. Never blocks
 * the loop.
 */
#include "sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "buf.h"
#include "envelope.h"
#include "hostq.h"
#include "result.h"
#include "smtpcmd.h"

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

static void dispatch(struct sched *sc);
static void host_ready(struct sched *sc, struct sched_queue *hq);
static void host_maybe_free(struct sched *sc, struct sched_queue *hq);
static void on_timer(uv_timer_t *t);
static void kick(struct sched *sc);
static void check_stopped(struct sched *sc);

/* Milliseconds on the loop clock. */
static uint64_t
now_ms(struct sched *sc)
{
	return uv_now(sc->d.loop);
}

/* Retry interval after attempt n (the last interval repeats). */
uint64_t
sched_retry_delay(const uint64_t *retry_s, size_t nretry, unsigned attempt)
{
	size_t i;

	if (nretry == 0)
		return 300;
	i = attempt == 0 ? 0 : attempt - 1;
	if (i >= nretry)
		i = nretry - 1;
	return retry_s[i];
}

/*
 * ORIGINAL_RECIPIENT: an rfc822 ORCPT decoded when it names a valid
 * mailbox (smtp_orcpt_address), else the address as received: no ORCPT,
 * another addr-type, or one that is unusable (a queue file from elsewhere).
 */
int
sched_original_recipient(const char *addr, const char *orcpt, char **out)
{
	int r = orcpt ? smtp_orcpt_address(orcpt, strlen(orcpt), out) :
		-ENOENT;

	if (r == 0 || r == -ENOMEM)
		return r;
	*out = strdup(addr);
	return *out ? 0 : -ENOMEM;
}

/* Swap two heap slots and fix their indexes. */
static void
heap_swap(struct sched *sc, size_t a, size_t b)
{
	struct sched_queue *t = sc->heap[a];

	sc->heap[a] = sc->heap[b];
	sc->heap[b] = t;
	sc->heap[a]->heap_idx = a;
	sc->heap[b]->heap_idx = b;
}

/* Restore heap order upwards from i. */
static void
heap_up(struct sched *sc, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (sc->heap[p]->delayed_until_ms <= sc->heap[i]->delayed_until_ms)
			break;
		heap_swap(sc, p, i);
		i = p;
	}
}

/* Restore heap order downwards from i. */
static void
heap_down(struct sched *sc, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < sc->nheap && sc->heap[l]->delayed_until_ms <
		    sc->heap[m]->delayed_until_ms)
			m = l;
		if (r < sc->nheap && sc->heap[r]->delayed_until_ms <
		    sc->heap[m]->delayed_until_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(sc, i, m);
		i = m;
	}
}

/* Insert q into the delay heap. */
static int
heap_push(struct sched *sc, struct sched_queue *q)
{
	if (sc->nheap == sc->capheap) {
		size_t cap = sc->capheap ? sc->capheap * 2 : 64;
		struct sched_queue **h = realloc(sc->heap, cap * sizeof(*h));

		if (h == NULL)
			return -ENOMEM;
		sc->heap = h;
		sc->capheap = cap;
	}
	sc->heap[sc->nheap] = q;
	q->heap_idx = sc->nheap++;
	heap_up(sc, q->heap_idx);
	return 0;
}

/* Remove the earliest queue from the heap. */
static struct sched_queue *
heap_pop(struct sched *sc)
{
	struct sched_queue *q;

	if (sc->nheap == 0)
		return NULL;
	q = sc->heap[0];
	heap_swap(sc, 0, --sc->nheap);
	heap_down(sc, 0);
	q->heap_idx = SIZE_MAX;
	return q;
}

/* Arm the timer for the earliest delayed queue. */
static void
arm_timer(struct sched *sc)
{
	uint64_t now = now_ms(sc), due;

	if (sc->nheap == 0 || sc->stopping) {
		uv_timer_stop(&sc->timer);
		return;
	}
	due = sc->heap[0]->delayed_until_ms;
	uv_timer_start(&sc->timer, on_timer, due > now ? due - now : 0, 0);
}

/*
 * Put q at the end of its module's ready list; a message entry of a host
 * queue goes to the end of its host's members instead.
 */
static void
make_ready(struct sched *sc, struct sched_queue *q)
{
	q->state = Q_READY;
	if (q->in_ready || TAILQ_EMPTY(&q->items))
		return;
	q->in_ready = true;
	if (q->host) {
		TAILQ_INSERT_TAIL(&q->host->members, q, ready_link);
		host_ready(sc, q->host);
	} else {
		TAILQ_INSERT_TAIL(&sc->ready[q->mod], q, ready_link);
	}
}

/* Free a queue that has no items and is not referenced. */
static void
queue_free(struct sched *sc, struct sched_queue *q)
{
	struct sched_queue *hq = q->host;

	if (q->named)
		LIST_REMOVE(q, named_link);
	free(q->name);
	free(q->last_error);
	free(q);
	if (hq) {
		hq->refs--;
		host_maybe_free(sc, hq);
	}
}

/* The name a queue's attempts are logged under (a host's for its
   messages). */
static const char *
queue_label(const struct sched_queue *q)
{
	return q->host ? q->host->name : q->name;
}

/*
 * New empty queue of module mod: called name and put in list `in` (the
 * named PIPE queues or the host queues), or numbered when name is NULL.
 */
static struct sched_queue *
queue_new(struct sched *sc, enum sched_module mod, const char *name,
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
static struct sched_queue *
queue_find(struct named_list *l, const char *name)
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
	struct sched_queue *q = queue_find(&sc->named, name);

	return q ? q : queue_new(sc, MOD_PIPE, name, &sc->named);
}

/* Drop one reference to sm; free it with its store_msg at zero. */
static void
msg_unref(struct sched_msg *sm)
{
	struct sched *sc = sm->sc;

	if (--sm->refs > 0)
		return;
	store_msg_free(sm->m);
	free(sm);
	sc->nmsgs--;
	check_stopped(sc);
}

/* Take a processor of module mod (one reference, for the run). */
static struct slot *
slot_take(struct sched *sc, enum sched_module mod)
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
static void
slot_put(struct sched *sc, enum sched_module mod, struct slot *sl)
{
	if (sl != NULL && --sl->refs > 0)
		return;
	free(sl);
	sc->running[mod]--;
	if (mod == MOD_PIPE)
		procslots_put(sc->slots);	/* maybe to a sync run */
	kick(sc);
	check_stopped(sc);
}

/* The mark of one recipient reached the disk (or failed to). */
static void
on_marked(void *arg, int err, bool removed)
{
	struct mark_ctx *mc = arg;
	struct sched_msg *sm = mc->sm;
	struct sched *sc = sm->sc;

	if (err < 0)
		log_msg(sc->d.log, LOG_QUEUE, LOG_FAILURES,
			"cannot record the state of %s recipient %zu: %s "
			"(it will be retried after a restart)",
			sm->m->id, mc->rcpt, strerror(-err));
	else if (removed)
		log_msg(sc->d.log, LOG_DEQUEUER, LOG_LOWLEVEL,
			"id=%s removed: every recipient is final", sm->m->id);
	if (mc->slot)
		slot_put(sc, mc->slot->mod, mc->slot);
	free(mc);
	sc->marks--;
	msg_unref(sm);
}

/*
 * Record a final state through the store. A delivery keeps its processor
 * (slot, one reference per mark) until its state is on disk, so at any
 * moment at most `processors` deliveries are done but not yet recorded:
 * those are the only ones a crash can make run again.
 */
static void
mark_final(struct sched *sc, struct sched_msg *sm, size_t rcpt,
	enum rcpt_state st, struct slot *slot)
{
	struct mark_ctx *mc = calloc(1, sizeof(*mc));
	int r;

	if (mc == NULL) {
		log_msg(sc->d.log, LOG_QUEUE, LOG_FAILURES,
			"out of memory recording %s recipient %zu", sm->m->id,
			rcpt);
		return;
	}
	mc->sm = sm;
	mc->rcpt = rcpt;
	mc->slot = slot;
	if (slot)
		slot->refs++;
	sm->refs++;
	sc->marks++;
	r = store_mark(sc->d.store, sm->m, rcpt, st, on_marked, mc);
	if (r < 0) {
		log_msg(sc->d.log, LOG_QUEUE, LOG_FAILURES,
			"cannot record the state of %s recipient %zu: %s",
			sm->m->id, rcpt, strerror(-r));
		if (slot)
			slot->refs--;
		free(mc);
		sc->marks--;
		sm->refs--;
	}
}

/* Write the one log line of a delivery attempt. */
static void
log_attempt(struct sched *sc, struct sched_msg *sm, size_t rcpt,
	const char *module, const char *queue, const struct result *res,
	const struct pipe_info *info, unsigned attempt, const char *routed)
{
	struct buf b = BUF_INIT;
	char *reason = NULL;
	enum log_comp comp = strcmp(module, "PIPE") == 0 ||
		strcmp(module, "TRANSPORT") == 0 ? LOG_PIPE :
		strcmp(module, "RELAY") == 0 ? LOG_SMTP : LOG_ENQUEUER;
	enum log_level lvl = res->kind == RESULT_DELIVERED ? LOG_MAJOR :
		LOG_FAILURES;

	if (!log_enabled(sc->d.log, comp, lvl))
		return;
	if (result_format(res, &reason) < 0)
		reason = NULL;
	buf_puts(&b, "delivery");
	log_kv(&b, "id", sm->m->id);
	log_kv(&b, "rcpt", sm->m->env.rcpt[rcpt].addr);
	log_kv(&b, "module", module);
	if (queue)
		log_kv(&b, "queue", queue);
	log_kv(&b, "result", result_kind_name(res->kind));
	log_kv(&b, "reason", reason ? reason : res->text);
	if (routed && strcmp(routed, sm->m->env.rcpt[rcpt].addr) != 0)
		log_kv(&b, "routed", routed);
	log_kvf(&b, "attempt", "%u", attempt);
	if (info) {
		log_kvf(&b, "pid", "%ld", (long)info->pid);
		if (info->end == RUN_EXITED)
			log_kvf(&b, "exit", "%d", info->code);
		else if (info->end == RUN_SIGNALED)
			log_kvf(&b, "signal", "%d", info->code);
		else if (info->end == RUN_TIMED_OUT)
			log_kv(&b, "timeout", "yes");
		log_kvf(&b, "time", "%.3f", info->seconds);
	}
	if (b.data)
		log_msg(sc->d.log, comp, lvl, "%s", b.data);
	buf_free(&b);
	free(reason);
}

/* The module name an item's attempts are logged under. */
static const char *
item_module(const struct sched_item *it)
{
	return it->tr ? "TRANSPORT" : route_kind_name(it->route.kind);
}

/* Free an item (not its message reference). */
static void
item_free(struct sched_item *it)
{
	route_free(&it->route);
	free(it->orig);
	free(it->delivery_id);
	free(it);
}

/* The final outcome of an item: record, release. */
static void
item_final(struct sched *sc, struct sched_item *it, const struct result *res,
	struct slot *slot)
{
	struct sched_msg *sm = it->sm;

	mark_final(sc, sm, it->rcpt, res->kind == RESULT_DELIVERED ?
		RCPT_DELIVERED : RCPT_FAILED, slot);
	item_free(it);
	msg_unref(sm);
}

/* Is the message past its maximum lifetime? */
static bool
expired(struct sched *sc, const struct sched_msg *sm)
{
	uint64_t wall = (uint64_t)time(NULL);

	return sm->m->env.submitted >= 0 &&
		wall >= (uint64_t)sm->m->env.submitted &&
		wall - (uint64_t)sm->m->env.submitted >= sc->set.max_lifetime_s;
}

/*
 * Log an attempt's result and settle the item's fate: a deferral past the
 * message's lifetime becomes a failure. Returns the final kind.
 */
static enum result_kind
settle(struct sched *sc, struct sched_item *it, struct result *res,
	const struct pipe_info *info)
{
	struct result fin = RESULT_INIT;
	unsigned attempt = ++it->attempts;

	log_attempt(sc, it->sm, it->rcpt, item_module(it), queue_label(it->q),
		res, info, attempt, it->route.address);
	if (res->kind == RESULT_DEFERRED && expired(sc, it->sm)) {
		result_set(&fin, RESULT_FAILED, 554, "5.4.7",
			"delivery time expired after %u attempts; last error: %s",
			attempt, res->text ? res->text : "");
		log_attempt(sc, it->sm, it->rcpt, item_module(it),
			queue_label(it->q), &fin, NULL, attempt,
			it->route.address);
		result_move(res, &fin);
	}
	return res->kind;
}

/* Delay q by the retry schedule after attempt n (with its last error). */
static void
delay_queue(struct sched *sc, struct sched_queue *q, unsigned attempt,
	const char *error)
{
	free(q->last_error);
	q->last_error = error ? strdup(error) : NULL;
	q->state = Q_DELAYED;
	q->delayed_until_ms = now_ms(sc) + 1000 * sched_retry_delay(sc->retry,
		sc->set.nretry, attempt);
	if (heap_push(sc, q) < 0)
		make_ready(sc, q);	/* no memory: retry at once */
	arm_timer(sc);
}

/* q lost an item: free it when empty and transient, else ready it. */
static void
queue_settle(struct sched *sc, struct sched_queue *q)
{
	if (!TAILQ_EMPTY(&q->items)) {
		make_ready(sc, q);
		return;
	}
	q->state = Q_READY;
	if (!q->named)
		queue_free(sc, q);
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
	if (settle(sc, it, res, info) == RESULT_DEFERRED) {
		store_msg_drop_body(it->sm->m);	/* retries read the file */
		delay_queue(sc, q, it->attempts, res->text);
	} else {
		free(q->last_error);
		q->last_error = res->kind == RESULT_DELIVERED ? NULL :
			(res->text ? strdup(res->text) : NULL);
		TAILQ_REMOVE(&q->items, it, link);
		item_final(sc, it, res, slot);
		queue_settle(sc, q);
	}
	result_clear(res);
	slot_put(sc, MOD_PIPE, slot);	/* the run's reference */
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
		delay_queue(sc, q, 1, "out of memory");
		return;
	}
	q->state = Q_ACTIVE;
	pc->it = it;
	pc->slot = slot_take(sc, MOD_PIPE);
	r = pipe_run(sc->d.pipe, &req, on_pipe_done, pc);
	if (r < 0) {
		result_set(&res, RESULT_DEFERRED, 451, "4.3.0",
			"cannot start delivery: %s", strerror(-r));
		on_pipe_done(pc, &res, NULL);
	}
}

/* ------------------------------------------------------------------ */
/* RELAY host queues (docs/RELAY.md "One queue per destination").      */

/* The host queue of destination name, created on first use. */
static struct sched_queue *
host_get(struct sched *sc, const char *name)
{
	struct sched_queue *hq = queue_find(&sc->hosts, name);

	if (hq != NULL)
		return hq;
	if ((hq = queue_new(sc, MOD_RELAY, name, &sc->hosts)) == NULL)
		return NULL;
	hq->is_host = true;
	hq->hs = (struct hostq)HOSTQ_INIT;
	return hq;
}

/* Free a host queue nothing waits in, runs from, or delays any more. */
static void
host_maybe_free(struct sched *sc, struct sched_queue *hq)
{
	if (sc->closing || hq->refs > 0 || hq->hs.running > 0 ||
	    hq->heap_idx != SIZE_MAX || hq->in_ready)
		return;
	LIST_REMOVE(hq, named_link);
	free(hq->name);
	free(hq->last_error);
	free(hq);
}

/* Put hq on the relay ready list when a message of it may start. */
static void
host_ready(struct sched *sc, struct sched_queue *hq)
{
	if (hq->in_ready || TAILQ_EMPTY(&hq->members) ||
	    !hostq_may_start(&hq->hs, sc->cap[MOD_RELAY]))
		return;
	TAILQ_INSERT_TAIL(&sc->ready[MOD_RELAY], hq, ready_link);
	hq->in_ready = true;
}

/* Start a log line about host queue hq: "EVENT queue=H module=RELAY". */
static void
host_log_start(struct buf *b, const char *event,
	const struct sched_queue *hq)
{
	buf_puts(b, event);
	log_kv(b, "queue", hq->name);
	log_kv(b, "module", "RELAY");
}

/*
 * The host failed: delay the whole queue by the retry interval of its
 * consecutive failures; its messages wait without attempts.
 */
static void
host_delay(struct sched *sc, struct sched_queue *hq, const char *reason)
{
	uint64_t d = sched_retry_delay(sc->retry, sc->set.nretry,
		hq->hs.failures);
	struct buf b = BUF_INIT;

	free(hq->last_error);
	hq->last_error = reason ? strdup(reason) : NULL;
	if (hq->in_ready) {
		TAILQ_REMOVE(&sc->ready[MOD_RELAY], hq, ready_link);
		hq->in_ready = false;
	}
	hq->state = Q_DELAYED;
	hq->delayed_until_ms = now_ms(sc) + 1000 * d;
	if (heap_push(sc, hq) < 0) {	/* no memory: probe at once */
		hq->state = Q_READY;
		hostq_probe(&hq->hs);
	}
	arm_timer(sc);
	if (!log_enabled(sc->d.log, LOG_SMTP, LOG_FAILURES))
		return;
	host_log_start(&b, "queue-delayed", hq);
	log_kvf(&b, "failures", "%u", hq->hs.failures);
	log_kvf(&b, "retry", "%llus", (unsigned long long)d);
	log_kvf(&b, "messages", "%u", hq->refs);
	log_kv(&b, "reason", reason ? reason : "");
	if (b.data)
		log_msg(sc->d.log, LOG_SMTP, LOG_FAILURES, "%s", b.data);
	buf_free(&b);
}

/* A probe reached the host: the queue flows again at full parallelism. */
static void
host_resumed(struct sched *sc, struct sched_queue *hq, unsigned failures)
{
	struct buf b = BUF_INIT;

	free(hq->last_error);
	hq->last_error = NULL;
	if (!log_enabled(sc->d.log, LOG_SMTP, LOG_MAJOR))
		return;
	host_log_start(&b, "queue-resumed", hq);
	log_kvf(&b, "failures", "%u", failures);
	log_kvf(&b, "messages", "%u", hq->refs);
	if (b.data)
		log_msg(sc->d.log, LOG_SMTP, LOG_MAJOR, "%s", b.data);
	buf_free(&b);
}

/*
 * Fail the recipients of mq whose message is past its lifetime, without
 * an attempt (the host's delay kept them waiting); true when mq is empty.
 */
static bool
host_expire(struct sched *sc, struct sched_queue *hq, struct sched_queue *mq)
{
	struct sched_item *it, *next;

	for (it = TAILQ_FIRST(&mq->items); it; it = next) {
		struct result fin = RESULT_INIT;

		next = TAILQ_NEXT(it, link);
		if (!expired(sc, it->sm))
			continue;
		result_set(&fin, RESULT_FAILED, 554, "5.4.7",
			"delivery time expired after %u attempts; last error: "
			"%s", it->attempts,
			hq->last_error ? hq->last_error : "");
		log_attempt(sc, it->sm, it->rcpt, item_module(it), hq->name,
			&fin, NULL, it->attempts, it->route.address);
		TAILQ_REMOVE(&mq->items, it, link);
		item_final(sc, it, &fin, NULL);
		result_clear(&fin);
	}
	return TAILQ_EMPTY(&mq->items);
}

/* The host's delay ended: expire what is too old, then probe. */
static void
host_due(struct sched *sc, struct sched_queue *hq)
{
	struct sched_queue *mq, *next;

	hq->state = Q_READY;
	hostq_probe(&hq->hs);
	hq->refs++;		/* freeing the last entry must not free hq */
	for (mq = TAILQ_FIRST(&hq->members); mq; mq = next) {
		next = TAILQ_NEXT(mq, ready_link);
		if (!host_expire(sc, hq, mq))
			continue;
		TAILQ_REMOVE(&hq->members, mq, ready_link);
		mq->in_ready = false;
		queue_free(sc, mq);
	}
	hq->refs--;
	if (!TAILQ_EMPTY(&hq->members))
		log_msg(sc->d.log, LOG_SMTP, LOG_LOWLEVEL, "queue-probe "
			"queue=%s module=RELAY failures=%u", hq->name,
			hq->hs.failures);
	host_ready(sc, hq);
	host_maybe_free(sc, hq);
}

/* The context of a relay transaction. */
struct relay_ctx {
	struct sched *sc;
	struct sched_queue *q;		/* the message's entry */
	struct slot *slot;
	struct sched_item **items;	/* in rcpt order of the request */
	size_t n;
	uint64_t round;			/* its host queue's, at start */
};

/* The relay's word on the host, for the host queue. */
static enum hostq_outcome
host_outcome(enum relay_host h)
{
	return h == RELAY_HOST_DOWN ? HOSTQ_FAILED : h == RELAY_HOST_UP ?
		HOSTQ_REACHED : HOSTQ_UNKNOWN;
}

/*
 * The relay answered for every recipient of a transaction. After a
 * host-level failure the message's deferred recipients wait in the host
 * queue (no delay of their own); otherwise they delay the message alone.
 */
static void
on_relay_done(void *arg, struct result *res, size_t n, enum relay_host host)
{
	struct relay_ctx *rc = arg;
	struct sched_queue *q = rc->q, *hq = q->host;
	struct sched *sc = rc->sc;
	unsigned attempt = 0, failures = hq->hs.failures;
	const char *last = NULL;
	char *herr = NULL;
	enum hostq_event ev;

	ev = hostq_done(&hq->hs, rc->round, host_outcome(host));
	for (size_t i = 0; ev == HOSTQ_EV_DELAY && !herr && i < n; i++)
		if (res[i].kind == RESULT_DEFERRED &&
		    result_format(&res[i], &herr) < 0)
			herr = NULL;
	for (size_t i = 0; i < rc->n && i < n; i++) {
		struct sched_item *it = rc->items[i];

		if (settle(sc, it, &res[i], NULL) == RESULT_DEFERRED) {
			if (it->attempts > attempt)
				attempt = it->attempts;
			last = res[i].text;
			continue;
		}
		TAILQ_REMOVE(&q->items, it, link);
		item_final(sc, it, &res[i], rc->slot);
	}
	if (ev == HOSTQ_EV_DELAY)
		host_delay(sc, hq, herr ? herr : last);
	else if (ev == HOSTQ_EV_RESUMED)
		host_resumed(sc, hq, failures);
	free(herr);
	hq->refs++;		/* freeing q must not free hq */
	if (TAILQ_EMPTY(&q->items)) {
		queue_free(sc, q);
	} else {
		store_msg_drop_body(TAILQ_FIRST(&q->items)->sm->m);
		if (host == RELAY_HOST_DOWN)
			make_ready(sc, q);	/* waits for the host */
		else
			delay_queue(sc, q, attempt ? attempt : 1, last);
	}
	for (size_t i = 0; i < n; i++)
		result_clear(&res[i]);
	hq->refs--;
	host_ready(sc, hq);
	host_maybe_free(sc, hq);
	slot_put(sc, MOD_RELAY, rc->slot);
	free(rc->items);
	free(rc);
}

/* Start a message's relay transaction with all its waiting recipients. */
static void
start_relay(struct sched *sc, struct sched_queue *q)
{
	struct relay_ctx *rc = calloc(1, sizeof(*rc));
	struct relay_rcpt *rr = NULL;
	struct relay_msg rm;
	struct sched_item *it;
	struct store_msg *m = TAILQ_FIRST(&q->items)->sm->m;
	size_t n = 0;
	int r = -ENOMEM;

	TAILQ_FOREACH(it, &q->items, link)
		n++;
	if (rc == NULL || (rc->items = calloc(n, sizeof(*rc->items))) ==
	    NULL || (rr = calloc(n, sizeof(*rr))) == NULL) {
		if (rc)
			free(rc->items);
		free(rc);
		free(rr);
		delay_queue(sc, q, 1, "out of memory");	/* not in a loop */
		return;
	}
	rc->sc = sc;
	rc->q = q;
	rc->n = n;
	n = 0;
	TAILQ_FOREACH(it, &q->items, link) {
		const struct env_rcpt *er = &m->env.rcpt[it->rcpt];

		rc->items[n] = it;
		rr[n].addr = it->route.address;
		rr[n].notify = er->notify;
		rr[n].orcpt = er->orcpt;
		n++;
	}
	memset(&rm, 0, sizeof(rm));
	rm.from = m->env.from;
	rm.rcpts = rr;
	rm.nrcpt = n;
	rm.ret = m->env.ret;
	rm.envid = m->env.envid;
	rm.input_len = m->msg_len;
	if (m->body) {
		rm.input_mem = m->body;
	} else {
		rm.input_path = m->path;
		rm.input_off = m->msg_off;
	}
	q->state = Q_ACTIVE;
	rc->round = hostq_start(&q->host->hs);
	rc->slot = slot_take(sc, MOD_RELAY);
	if (sc->d.relay)
		r = relay_send(sc->d.relay, &rm, on_relay_done, rc);
	free(rr);
	if (r < 0) {
		struct result *res = calloc(n, sizeof(*res));

		if (res == NULL) {
			hostq_done(&q->host->hs, rc->round, HOSTQ_UNKNOWN);
			slot_put(sc, MOD_RELAY, rc->slot);
			free(rc->items);
			free(rc);
			delay_queue(sc, q, 1, "out of memory");
			return;
		}
		for (size_t i = 0; i < n; i++)
			result_set(&res[i], RESULT_DEFERRED, 451, "4.4.0",
				"cannot start the relay transaction: %s",
				strerror(-r));
		on_relay_done(rc, res, n, RELAY_HOST_UNKNOWN);
		free(res);
	}
}

/*
 * Start the next message of host queue hq (it was first on the relay
 * ready list); then put hq at the end of that list if it may start more,
 * so that hosts take turns.
 */
static void
start_host(struct sched *sc, struct sched_queue *hq)
{
	struct sched_queue *mq = TAILQ_FIRST(&hq->members);

	if (mq != NULL && hostq_may_start(&hq->hs, sc->cap[MOD_RELAY])) {
		TAILQ_REMOVE(&hq->members, mq, ready_link);
		mq->in_ready = false;
		hq->refs++;
		start_relay(sc, mq);
		hq->refs--;
	}
	host_ready(sc, hq);
	host_maybe_free(sc, hq);
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
				start_host(sc, q);
			else if (!TAILQ_EMPTY(&q->items))
				start_pipe(sc, q);
		}
	if (sc->stopping || TAILQ_EMPTY(&sc->ready[MOD_PIPE]))
		procslots_idle(sc->slots);	/* our turn to sync runs */
	check_stopped(sc);
}

/* procslots: a shared processor is free for the queue. */
static void
on_slots_ready(void *arg)
{
	kick(arg);
}

/* Timer: move due queues back to the ready list. */
static void
on_timer(uv_timer_t *t)
{
	struct sched *sc = t->data;
	uint64_t now = now_ms(sc);

	while (sc->nheap > 0 && sc->heap[0]->delayed_until_ms <= now) {
		struct sched_queue *q = heap_pop(sc);

		if (q->is_host)
			host_due(sc, q);
		else
			make_ready(sc, q);
	}
	if (sc->nheap > 0)
		uv_timer_start(&sc->timer, on_timer,
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
static void
kick(struct sched *sc)
{
	if (!sc->kick_on && !sc->stopping) {
		sc->kick_on = true;
		uv_idle_start(&sc->kick, on_kick);
	}
}

/* Insert it into q in queue-ID order (never before a busy head). */
static void
queue_insert(struct sched_queue *q, struct sched_item *it)
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
static int
queue_item(struct sched *sc, struct sched_item *it)
{
	const char *name = it->tr ? it->tr->cmd.queue : it->route.pipe.queue;
	struct sched_queue *q = name ? queue_named(sc, name) :
		queue_new(sc, MOD_PIPE, NULL, NULL);

	if (q == NULL)
		return -ENOMEM;
	queue_insert(q, it);
	if (q->state == Q_READY)
		make_ready(sc, q);
	return 0;
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
	struct sched_queue *hq = host_get(sc, dest), *q;

	if (hq == NULL)
		return -ENOMEM;
	if ((q = queue_new(sc, MOD_RELAY, NULL, NULL)) == NULL) {
		host_maybe_free(sc, hq);
		return -ENOMEM;
	}
	q->host = hq;
	hq->refs++;
	*out = q;
	return 0;
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
	ctx.direct_pipe_allowed = sc->set.direct == DIRECT_LOCAL &&
		m->env.tag && strcmp(m->env.tag, "PIPE") == 0;
	if ((r = router_route(&ctx, rc->addr, &it->route)) < 0 ||
	    (r = sched_original_recipient(rc->addr, rc->orcpt, &it->orig)) < 0 ||
	    (r = buf_printf(&did, "%s.%zu", m->env.uid, i)) < 0 ||
	    (r = buf_steal(&did, &it->delivery_id)) < 0) {
		buf_free(&did);
		item_free(it);
		return r;
	}
	sm->refs++;
	if (it->route.kind == ROUTE_TRANSPORT && sc->d.transports)
		it->tr = transport_find(sc->d.transports, it->route.transport);
	if (it->route.kind == ROUTE_PIPE || it->tr)
		return queue_item(sc, it);
	if (it->route.kind == ROUTE_RELAY && sc->d.relay) {
		if (*relay == NULL && (r = relay_entry(sc,
		    relay_destination(sc->d.relay), relay)) < 0) {
			sm->refs--;
			item_free(it);
			return r;
		}
		queue_insert(*relay, it);
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
	log_attempt(sc, sm, i, item_module(it), NULL, &res, NULL, 1,
		it->route.address);
	item_final(sc, it, &res, NULL);
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
		make_ready(sc, relay);
	if (r < 0)
		log_msg(sc->d.log, LOG_ENQUEUER, LOG_FAILURES,
			"id=%s cannot queue every recipient: %s (the rest waits "
			"for a restart)", m->id, strerror(-r));
	msg_unref(sm);
	kick(sc);
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
	procslots_set_queue(sc->slots, on_slots_ready, sc);
	*out = sc;
	return 0;
}

/* Call the stopped callback once nothing runs and nothing is being marked. */
static void
check_stopped(struct sched *sc)
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
	check_stopped(sc);
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
		item_free(it);
		msg_unref(sm);
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
				queue_free(sc, q);
			}
		}
	while ((q = heap_pop(sc)) != NULL)
		if (!q->named && !q->is_host) {
			drain_queue(q);
			queue_free(sc, q);
		}
	while ((q = LIST_FIRST(&sc->hosts)) != NULL) {
		while ((mq = TAILQ_FIRST(&q->members)) != NULL) {
			TAILQ_REMOVE(&q->members, mq, ready_link);
			drain_queue(mq);
			queue_free(sc, mq);
		}
		LIST_REMOVE(q, named_link);
		free(q->name);
		free(q->last_error);
		free(q);
	}
	while ((q = LIST_FIRST(&sc->named)) != NULL) {
		drain_queue(q);
		queue_free(sc, q);
	}
	procslots_close(sc->slots);	/* smtpd has stopped before us */
	uv_close((uv_handle_t *)&sc->timer, on_handle_closed);
	uv_close((uv_handle_t *)&sc->kick, on_handle_closed);
}
