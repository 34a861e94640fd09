/*
 * procslots: the one count of running programs ([pipe] processors, SPEC
 * "Processors: at most that many programs run at once"), shared by the
 * scheduler (queued deliveries; it opens the count, see sched_slots) and
 * sync transport runs (SMTP DATA), so that queued plus sync programs never
 * exceed it.
 *
 * Two kinds of user:
 * - the queue (one, the scheduler) asks with procslots_take whenever it
 *   could start a delivery; a refusal is remembered and its ready callback
 *   runs when a slot is there for it. It says procslots_idle when it has
 *   nothing left to start.
 * - sync runs wait in a FIFO (procslots_wait), each for at most its own
 *   bound; the callback says whether a slot was granted.
 * When both want slots, freed slots alternate between the two, a sync run
 * first: neither starves the other, and an SMTP client waiting in real
 * time gets at least every other slot however long the queue is.
 * Callbacks of sync waits always run later from the loop, never inside a
 * procslots call.
 */
#ifndef MP_PROCSLOTS_H
#define MP_PROCSLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct procslots;

/*
 * The queue may take a slot now (call procslots_take). It may run inside
 * procslots_put, procslots_idle and procslots_wait: it should only arrange
 * for the take to happen later (the scheduler kicks its dispatch).
 */
typedef void (*procslots_ready_cb)(void *arg);
/* A sync wait ended: granted (hold a slot; procslots_put it) or timed out. */
typedef void (*procslots_wait_cb)(void *arg, bool granted);

/* cap >= 1 slots (0 is taken as 1). */
int procslots_open(uv_loop_t *loop, unsigned cap, struct procslots **out);
/* The queue's ready callback (NULL: none). */
void procslots_set_queue(struct procslots *ps, procslots_ready_cb cb,
	void *arg);
/*
 * The queue takes a slot: true, or false when none is free for it now (all
 * busy, or a waiting sync run has its turn); then the ready callback runs
 * once one is.
 */
bool procslots_take(struct procslots *ps);
/* The queue has nothing to start: its turn goes to the sync runs. */
void procslots_idle(struct procslots *ps);
/*
 * A sync run waits for a slot, at most timeout_ms (0: no bound), in FIFO
 * order. cb runs exactly once, later, from the loop.
 */
int procslots_wait(struct procslots *ps, uint64_t timeout_ms,
	procslots_wait_cb cb, void *arg);
/* Give back a slot (taken or granted). */
void procslots_put(struct procslots *ps);
/* Slots held now (taken, granted, or granted and not yet told). */
unsigned procslots_used(const struct procslots *ps);
unsigned procslots_cap(const struct procslots *ps);
/* Sync runs waiting now. */
size_t procslots_waiting(const struct procslots *ps);
/*
 * Free ps (after its handles closed) once every user has stopped: sync
 * waits still pending are dropped without their callback.
 */
void procslots_close(struct procslots *ps);

#endif
