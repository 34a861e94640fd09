/*
 * hostq: the delay state machine of one destination host queue (see
 * hostq.h). Owns the host's state, its count of consecutive failures and
 * its rounds. Promises: while delayed nothing may start; while probing at
 * most one transaction of the round runs; one failure delays a round
 * once, however many transactions of it fail. Never does I/O, never
 * reads a clock.
 */
#include "hostq.h"

#include <limits.h>

/* May one more transaction start? */
bool
hostq_may_start(const struct hostq *h, unsigned limit)
{
	switch (h->state) {
	case HOSTQ_DELAYED:
		return false;
	case HOSTQ_PROBING:
		return h->running_round == 0 && h->running < limit;
	case HOSTQ_UP:
		break;
	}
	return h->running < limit;
}

/* Count a transaction that starts now. */
uint64_t
hostq_start(struct hostq *h)
{
	h->running++;
	h->running_round++;
	return h->round;
}

/* A transaction finished: see hostq.h. */
enum hostq_event
hostq_done(struct hostq *h, uint64_t round, enum hostq_outcome o)
{
	if (h->running > 0)
		h->running--;
	if (round != h->round)
		return HOSTQ_EV_NONE;	/* the last delay answered it */
	if (h->running_round > 0)
		h->running_round--;
	if (o == HOSTQ_FAILED) {
		if (h->failures < UINT_MAX)
			h->failures++;
		h->round++;
		h->running_round = 0;
		h->state = HOSTQ_DELAYED;
		return HOSTQ_EV_DELAY;
	}
	if (o == HOSTQ_REACHED && h->state == HOSTQ_PROBING) {
		h->failures = 0;
		h->state = HOSTQ_UP;
		return HOSTQ_EV_RESUMED;
	}
	return HOSTQ_EV_NONE;
}

/* The delay is over: one transaction may probe the host. */
void
hostq_probe(struct hostq *h)
{
	if (h->state == HOSTQ_DELAYED)
		h->state = HOSTQ_PROBING;
}

/* Name of a state. */
const char *
hostq_state_name(enum hostq_state s)
{
	switch (s) {
	case HOSTQ_UP:
		return "up";
	case HOSTQ_DELAYED:
		return "delayed";
	case HOSTQ_PROBING:
		return "probing";
	}
	return "?";
}
