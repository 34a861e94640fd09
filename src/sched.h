/*
 * sched: the module queues. Every pending recipient of every queue file is
 * routed once when its message enters the scheduler and becomes an item in
 * a module queue: PIPE addresses (and queue-mode transports) with
 * queue[NAME] share queue NAME (one delivery at a time, arrival order),
 * every other one gets its own numeric queue; the recipients of one message
 * that go to the SMTP relay form one entry (one transaction) in the RELAY
 * host queue of their destination. At most `processors` programs and
 * `relay_processors` relay transactions run at once. A deferred item
 * delays its queue (a named queue as a whole, so order holds; a relay
 * message its own entry) by the retry schedule until the message's
 * maximum lifetime, then fails; a host-level relay failure delays the
 * whole host queue, which then probes with one transaction
 * (docs/RELAY.md "One queue per destination"). Outcomes that
 * need no program (null, error, unknown user, refused) are final at once.
 * Every final state is recorded through the store before the message is
 * forgotten, and every attempt logs one key=value line.
 */
#ifndef MP_SCHED_H
#define MP_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "pipe.h"
#include "procslots.h"
#include "router.h"
#include "relay.h"
#include "store.h"
#include "transport.h"

struct sched;

struct sched_settings {
	unsigned processors;		/* programs at once, sync runs too */
	unsigned relay_processors;	/* relay transactions at once */
	const uint64_t *retry_s;	/* retry intervals (copied) */
	size_t nretry;
	uint64_t max_lifetime_s;
	enum direct_policy direct;	/* who may write ...@pipe */
	/*
	 * The clock of retry delays, in milliseconds; NULL: the loop's
	 * (uv_now). A unit test gives its own and fires the retry timer
	 * itself (tests/unit/test_sched.c).
	 */
	uint64_t (*clock_ms)(void *arg);
	void *clock_arg;
};

/* Everything the scheduler uses and does not own. */
struct sched_deps {
	uv_loop_t *loop;
	struct store *store;
	struct pipe_module *pipe;
	struct relay *relay;		/* NULL: no relay host */
	const struct transport_table *transports;
	struct logger *log;
	const struct router_ctx *router;	/* direct_pipe_allowed is set
						   per message by sched */
};

/* s and the retry list are copied; deps must outlive the scheduler. */
int sched_open(const struct sched_settings *s, const struct sched_deps *d,
	struct sched **out);
/*
 * Take over m (from store_commit, store_recover or store_import): route its
 * pending recipients and queue them. The scheduler frees m when it is done.
 */
int sched_add(struct sched *sc, struct store_msg *m);
/* Replace the router context (SIGHUP); applies to messages added later. */
void sched_set_router(struct sched *sc, const struct router_ctx *router);

/* Called once the scheduler is idle after sched_stop. */
typedef void (*sched_stopped_cb)(void *arg);
/*
 * Stop dispatching; let running deliveries finish and their states reach
 * the disk; then call cb. Items not started stay in their queue files.
 */
void sched_stop(struct sched *sc, sched_stopped_cb cb, void *arg);
/* Messages known to the scheduler. */
size_t sched_messages(const struct sched *sc);
/* Deliveries running now. */
unsigned sched_running(const struct sched *sc);
/*
 * The scheduler's processors ([pipe] processors), which sync transport
 * runs share with it (procslots.h); valid until sched_close.
 */
struct procslots *sched_slots(struct sched *sc);
/* Free everything; only after the stopped callback. */
void sched_close(struct sched *sc);

/* Pure helpers (unit-tested). */

/* Retry interval after the n-th failed attempt (n >= 1). */
uint64_t sched_retry_delay(const uint64_t *retry_s, size_t nretry,
	unsigned attempt);

#endif
