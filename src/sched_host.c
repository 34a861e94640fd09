/*
 * sched_host: the RELAY host queues (docs/RELAY.md "One queue per
 * destination"). One queue per destination holds one entry per message
 * (all its recipients for that host: one transaction); the host's
 * up/delayed/probing state is hostq.c's, this file applies it: a
 * host-level failure delays the whole queue, which then probes with one
 * transaction; a message deferred on its own is delayed alone. Starts
 * relay transactions and settles their results; never talks SMTP.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sched_int.h"

/* The host queue of destination name, created on first use. */
struct sched_queue *
sched__host_get(struct sched *sc, const char *name)
{
	struct sched_queue *hq = sched__queue_find(&sc->hosts, name);

	if (hq != NULL)
		return hq;
	if ((hq = sched__queue_new(sc, MOD_RELAY, name, &sc->hosts)) == NULL)
		return NULL;
	hq->is_host = true;
	hq->hs = (struct hostq)HOSTQ_INIT;
	return hq;
}

/* Free a host queue nothing waits in, runs from, or delays any more. */
void
sched__host_maybe_free(struct sched *sc, struct sched_queue *hq)
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
void
sched__host_ready(struct sched *sc, struct sched_queue *hq)
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
	hq->delayed_until_ms = sched__now_ms(sc) + 1000 * d;
	if (sched__heap_push(sc, hq) < 0) {	/* no memory: probe at once */
		hq->state = Q_READY;
		hostq_probe(&hq->hs);
	}
	sched__arm_timer(sc);
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
		if (!sched__expired(sc, it->sm))
			continue;
		sched__expire_result(it, it->attempts, hq->last_error, &fin);
		sched__log_attempt(sc, it, hq->name, &fin, NULL,
			it->attempts);
		TAILQ_REMOVE(&mq->items, it, link);
		sched__item_final(sc, it, &fin, NULL);
		result_clear(&fin);
	}
	return TAILQ_EMPTY(&mq->items);
}

/* The host's delay ended: expire what is too old, then probe. */
void
sched__host_due(struct sched *sc, struct sched_queue *hq)
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
		sched__queue_free(sc, mq);
	}
	hq->refs--;
	if (!TAILQ_EMPTY(&hq->members))
		log_msg(sc->d.log, LOG_SMTP, LOG_LOWLEVEL, "queue-probe "
			"queue=%s module=RELAY failures=%u", hq->name,
			hq->hs.failures);
	sched__host_ready(sc, hq);
	sched__host_maybe_free(sc, hq);
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

		if (sched__settle(sc, it, &res[i], NULL) == RESULT_DEFERRED) {
			if (it->attempts > attempt)
				attempt = it->attempts;
			last = res[i].text;
			continue;
		}
		TAILQ_REMOVE(&q->items, it, link);
		sched__item_final(sc, it, &res[i], rc->slot);
	}
	if (ev == HOSTQ_EV_DELAY)
		host_delay(sc, hq, herr ? herr : last);
	else if (ev == HOSTQ_EV_RESUMED)
		host_resumed(sc, hq, failures);
	free(herr);
	hq->refs++;		/* freeing q must not free hq */
	if (TAILQ_EMPTY(&q->items)) {
		sched__queue_free(sc, q);
	} else {
		store_msg_drop_body(TAILQ_FIRST(&q->items)->sm->m);
		if (host == RELAY_HOST_DOWN)
			sched__make_ready(sc, q);	/* waits for the host */
		else
			sched__delay_queue(sc, q, attempt ? attempt : 1, last);
	}
	for (size_t i = 0; i < n; i++)
		result_clear(&res[i]);
	hq->refs--;
	sched__host_ready(sc, hq);
	sched__host_maybe_free(sc, hq);
	sched__slot_put(sc, MOD_RELAY, rc->slot);
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
		/* not in a loop */
		sched__delay_queue(sc, q, 1, "out of memory");
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
	rc->slot = sched__slot_take(sc, MOD_RELAY);
	if (sc->d.relay)
		r = relay_send(sc->d.relay, &rm, on_relay_done, rc);
	free(rr);
	if (r < 0) {
		struct result *res = calloc(n, sizeof(*res));

		if (res == NULL) {
			hostq_done(&q->host->hs, rc->round, HOSTQ_UNKNOWN);
			sched__slot_put(sc, MOD_RELAY, rc->slot);
			free(rc->items);
			free(rc);
			sched__delay_queue(sc, q, 1, "out of memory");
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
void
sched__start_host(struct sched *sc, struct sched_queue *hq)
{
	struct sched_queue *mq = TAILQ_FIRST(&hq->members);

	if (mq != NULL && hostq_may_start(&hq->hs, sc->cap[MOD_RELAY])) {
		TAILQ_REMOVE(&hq->members, mq, ready_link);
		mq->in_ready = false;
		hq->refs++;
		start_relay(sc, mq);
		hq->refs--;
	}
	sched__host_ready(sc, hq);
	sched__host_maybe_free(sc, hq);
}
