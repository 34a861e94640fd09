/*
 * sched_retry: what happens to a delivery's result. Records final states
 * through the store (store_mark), writes the one log line per attempt,
 * turns a deferral past the message's lifetime into a failure, and
 * delays a queue by the retry schedule: the delay heap and the one timer
 * on the loop clock. Never changes a queue file itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "sched_int.h"

/* Milliseconds on the scheduler's clock (the loop's unless replaced). */
uint64_t
sched__now_ms(struct sched *sc)
{
	if (sc->set.clock_ms)
		return sc->set.clock_ms(sc->set.clock_arg);
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
int
sched__heap_push(struct sched *sc, struct sched_queue *q)
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
struct sched_queue *
sched__heap_pop(struct sched *sc)
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
void
sched__arm_timer(struct sched *sc)
{
	uint64_t now = sched__now_ms(sc), due;

	if (sc->nheap == 0 || sc->stopping) {
		uv_timer_stop(&sc->timer);
		return;
	}
	due = sc->heap[0]->delayed_until_ms;
	uv_timer_start(&sc->timer, sched__on_timer, due > now ? due - now : 0,
		0);
}

/*
 * A mark or note of sm is over: a stop may have been waiting for it. When
 * the message goes with it, sched__msg_unref does that check (and the
 * stop's callback may free sc); otherwise it is done here.
 */
static void
mark_done(struct sched *sc, struct sched_msg *sm)
{
	bool last = sm->refs == 1;

	sc->marks--;
	sched__msg_unref(sm);
	if (!last)
		sched__check_stopped(sc);
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
		sched__slot_put(sc, mc->slot->mod, mc->slot);
	free(mc);
	mark_done(sc, sm);
}

/*
 * Record a final state through the store. A delivery keeps its processor
 * (slot, one reference per mark) until its state is on disk, so at any
 * moment at most `processors` deliveries are done but not yet recorded:
 * those are the only ones a crash can make run again.
 */
static void
mark_final(struct sched *sc, struct sched_msg *sm, size_t rcpt,
	enum rcpt_state st, const struct journal_attempt *rec,
	struct slot *slot)
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
	r = store_mark(sc->d.store, sm->m, rcpt, st, rec, on_marked, mc);
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

/* The module name an item's attempts are logged under. */
static const char *
item_module(const struct sched_item *it)
{
	return it->tr ? "TRANSPORT" : route_kind_name(it->route.kind);
}

/*
 * The log component of an item's attempts, by its route: programs (PIPE,
 * transports) under pipe, the relay under smtp, the rest under enqueuer.
 */
static enum log_comp
item_comp(const struct sched_item *it)
{
	if (it->tr)
		return LOG_PIPE;
	switch (it->route.kind) {
	case ROUTE_PIPE:
	case ROUTE_TRANSPORT:
		return LOG_PIPE;
	case ROUTE_RELAY:
		return LOG_SMTP;
	default:
		return LOG_ENQUEUER;
	}
}

/* Write the one log line of an attempt of item it (queue: its label). */
void
sched__log_attempt(struct sched *sc, const struct sched_item *it,
	const char *queue, const struct result *res,
	const struct pipe_info *info, unsigned attempt)
{
	struct buf b = BUF_INIT;
	char *reason = NULL;
	const struct sched_msg *sm = it->sm;
	size_t rcpt = it->rcpt;
	const char *routed = it->route.address;
	enum log_comp comp = item_comp(it);
	enum log_level lvl = res->kind == RESULT_DELIVERED ? LOG_MAJOR :
		LOG_FAILURES;

	if (!log_enabled(sc->d.log, comp, lvl))
		return;
	if (result_format(res, &reason) < 0)
		reason = NULL;
	buf_puts(&b, "delivery");
	log_kv(&b, "id", sm->m->id);
	log_kv(&b, "rcpt", sm->m->env.rcpt[rcpt].addr);
	log_kv(&b, "module", item_module(it));
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

/* Free an item (not its message reference). */
void
sched__item_free(struct sched_item *it)
{
	route_free(&it->route);
	free(it->orig);
	free(it->delivery_id);
	free(it);
}

/* Who answered an item's attempt, for its journal record. */
static enum journal_src
item_src(const struct sched_item *it)
{
	if (it->expired)
		return JOURNAL_MTA;
	switch (item_comp(it)) {
	case LOG_PIPE:
		return JOURNAL_PIPE;
	case LOG_SMTP:
		return JOURNAL_RELAY;
	default:
		return JOURNAL_ROUTER;
	}
}

/*
 * The journal record of an attempt of it that ended in res (deferred or
 * failed); next: the next attempt's unix time or -1.
 */
static void
item_record(const struct sched_item *it, const struct result *res,
	int64_t next, struct journal_attempt *a)
{
	bool def = res->kind == RESULT_DEFERRED;

	memset(a, 0, sizeof(*a));
	a->rcpt = it->rcpt;
	a->time = (int64_t)time(NULL);
	a->attempt = it->attempts ? it->attempts : 1;
	a->kind = def ? JOURNAL_DEFERRED : JOURNAL_FAILED;
	a->next = next;
	a->src = item_src(it);
	a->reply = res->reply >= 200 && res->reply <= 599 ? res->reply :
		def ? 451 : 554;
	if (strlen(res->status) >= 5 && strlen(res->status) <
	    sizeof(a->status) && (res->status[0] == '4' ||
	    res->status[0] == '5'))
		memcpy(a->status, res->status, strlen(res->status) + 1);
	else
		memcpy(a->status, def ? "4.0.0" : "5.0.0", 6);
	a->reason = res->text;
}

/* A journal note reached the disk (or failed to). */
static void
on_noted(void *arg, int err, bool removed)
{
	struct mark_ctx *mc = arg;
	struct sched_msg *sm = mc->sm;
	struct sched *sc = sm->sc;

	(void)removed;
	if (err < 0 && err != -ENOENT)
		log_msg(sc->d.log, LOG_QUEUE, LOG_FAILURES,
			"cannot record the retry time of %s recipient %zu: %s "
			"(it is retried at once after a restart)", sm->m->id,
			mc->rcpt, strerror(-err));
	free(mc);
	mark_done(sc, sm);
}

/*
 * Record a deferral in the queue file's journal: the attempt number and
 * the next attempt time survive a restart.
 */
static void
note_deferral(struct sched *sc, struct sched_item *it,
	const struct result *res)
{
	struct sched_msg *sm = it->sm;
	struct journal_attempt a;
	struct mark_ctx *mc = calloc(1, sizeof(*mc));
	int r;

	if (mc == NULL)
		return;	/* only the schedule of a restart is lost */
	item_record(it, res, (int64_t)time(NULL) + (int64_t)sched_retry_delay(
		sc->retry, sc->set.nretry, it->attempts), &a);
	mc->sm = sm;
	mc->rcpt = it->rcpt;
	sm->refs++;
	sc->marks++;
	if ((r = store_note(sc->d.store, sm->m, &a, on_noted, mc)) < 0) {
		free(mc);
		sc->marks--;
		sm->refs--;
		if (r != -EALREADY)
			log_msg(sc->d.log, LOG_QUEUE, LOG_FAILURES,
				"cannot record the retry time of %s recipient "
				"%zu: %s", sm->m->id, it->rcpt, strerror(-r));
	}
}

/* The final outcome of an item: record, release. */
void
sched__item_final(struct sched *sc, struct sched_item *it,
	const struct result *res, struct slot *slot)
{
	struct sched_msg *sm = it->sm;
	struct journal_attempt a;
	bool failed = res->kind != RESULT_DELIVERED;

	if (failed)
		item_record(it, res, -1, &a);
	mark_final(sc, sm, it->rcpt, failed ? RCPT_FAILED : RCPT_DELIVERED,
		failed ? &a : NULL, slot);
	sched__item_free(it);
	sched__msg_unref(sm);
}

/* Is the message past its maximum lifetime? */
bool
sched__expired(struct sched *sc, const struct sched_msg *sm)
{
	uint64_t wall = (uint64_t)time(NULL);

	return sm->m->env.submitted >= 0 &&
		wall >= (uint64_t)sm->m->env.submitted &&
		wall - (uint64_t)sm->m->env.submitted >= sc->set.max_lifetime_s;
}

/* The failure of an item past max-lifetime (RFC 3463 4.4.7). */
void
sched__expire_result(struct sched_item *it, unsigned attempts,
	const char *last, struct result *out)
{
	it->expired = true;
	result_set(out, RESULT_FAILED, 554, "4.4.7",
		"delivery time expired after %u attempts; last error: %s",
		attempts, last ? last : "");
}

/*
 * Log an attempt's result and settle the item's fate: a deferral past the
 * message's lifetime becomes a failure; a deferral that stays one is
 * recorded in the queue file's journal. Returns the final kind.
 */
enum result_kind
sched__settle(struct sched *sc, struct sched_item *it, struct result *res,
	const struct pipe_info *info)
{
	struct result fin = RESULT_INIT;
	unsigned attempt = ++it->attempts;

	sched__log_attempt(sc, it, sched__queue_label(it->q), res, info,
		attempt);
	if (res->kind == RESULT_DEFERRED && sched__expired(sc, it->sm)) {
		sched__expire_result(it, attempt, res->text, &fin);
		sched__log_attempt(sc, it, sched__queue_label(it->q), &fin,
			NULL, attempt);
		result_move(res, &fin);
	} else if (res->kind == RESULT_DEFERRED) {
		note_deferral(sc, it, res);
	}
	return res->kind;
}

/* Delay q for ms milliseconds (with its last error). */
void
sched__delay_queue_ms(struct sched *sc, struct sched_queue *q, uint64_t ms,
	const char *error)
{
	free(q->last_error);
	q->last_error = error ? strdup(error) : NULL;
	q->state = Q_DELAYED;
	q->delayed_until_ms = sched__now_ms(sc) + ms;
	if (sched__heap_push(sc, q) < 0)
		sched__make_ready(sc, q);	/* no memory: retry at once */
	sched__arm_timer(sc);
}

/* Delay q by the retry schedule after attempt n (with its last error). */
void
sched__delay_queue(struct sched *sc, struct sched_queue *q, unsigned attempt,
	const char *error)
{
	sched__delay_queue_ms(sc, q, 1000 * sched_retry_delay(sc->retry,
		sc->set.nretry, attempt), error);
}

/*
 * How long a recovered item still waits: until the next attempt time its
 * journal recorded, never longer than the longest retry interval (a
 * clock set back must not hold mail for ever); 0 when due or unrecorded.
 */
uint64_t
sched__restored_wait(struct sched *sc, const struct sched_item *it)
{
	const struct store_msg *m = it->sm->m;
	const struct store_hist *h = m->hist ? &m->hist[it->rcpt] : NULL;
	int64_t now = (int64_t)time(NULL);
	uint64_t wait, cap = 0;

	if (h == NULL || h->attempts == 0 || h->next <= now)
		return 0;
	for (size_t i = 0; i < sc->set.nretry; i++)
		if (sc->retry[i] > cap)
			cap = sc->retry[i];
	wait = (uint64_t)(h->next - now);
	return 1000 * (wait < cap || cap == 0 ? wait : cap);
}
