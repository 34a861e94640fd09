/*
 * hostq: the state of one destination host of a transfer module (today
 * the SMTP relay host; docs/RELAY.md "One queue per destination"), as
 * seed 002 describes host queues: a host-level failure delays the whole
 * queue, the intervals grow with consecutive failures and reset when the
 * host works again; when the delay ends one transaction probes the host,
 * and only when it reached the host do the others flow again at full
 * parallelism. Pure bookkeeping: no time, no I/O, no globals; the
 * scheduler keeps the delay's end and its timer.
 */
#ifndef MP_HOSTQ_H
#define MP_HOSTQ_H

#include <stdbool.h>
#include <stdint.h>

enum hostq_state {
	HOSTQ_UP,	/* transactions start up to the limit */
	HOSTQ_DELAYED,	/* none starts until the delay ends */
	HOSTQ_PROBING,	/* the delay ended: one transaction at a time */
};

/* What a finished transaction showed about the host. */
enum hostq_outcome {
	HOSTQ_UNKNOWN,	/* nothing: it never reached the host */
	HOSTQ_REACHED,	/* the host answered and took commands */
	HOSTQ_FAILED,	/* a host-level failure */
};

/* What the caller has to do after hostq_done. */
enum hostq_event {
	HOSTQ_EV_NONE,
	HOSTQ_EV_DELAY,		/* delay the queue: retry interval number
				   `failures` */
	HOSTQ_EV_RESUMED,	/* the host works again */
};

struct hostq {
	enum hostq_state state;
	unsigned failures;	/* consecutive host-level failures */
	uint64_t round;		/* grows with every delay */
	unsigned running;	/* transactions running, every round */
	unsigned running_round;	/* those started in this round */
};

#define HOSTQ_INIT { HOSTQ_UP, 0, 0, 0, 0 }

/* May one more transaction start, at most limit at once (>= 1)? */
bool hostq_may_start(const struct hostq *h, unsigned limit);
/* A transaction starts; returns its round, for hostq_done. */
uint64_t hostq_start(struct hostq *h);
/*
 * A transaction of round `round` finished with outcome o. Only a
 * transaction of the current round changes the state: a failure delays
 * the queue (HOSTQ_EV_DELAY, failures counted, a new round), a reached
 * host ends probing (HOSTQ_EV_RESUMED, failures reset). Transactions that
 * started before the last delay were already answered by it.
 */
enum hostq_event hostq_done(struct hostq *h, uint64_t round,
	enum hostq_outcome o);
/* The delay ended: probe the host with one transaction. */
void hostq_probe(struct hostq *h);
/* Short name of a state: "up", "delayed", "probing". */
const char *hostq_state_name(enum hostq_state s);

#endif
