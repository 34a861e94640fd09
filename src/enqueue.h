/*
 * enqueue: the one way into the queue for every intake (Submitted folder,
 * SMTP, ForeignQueue imports) and for the queue recovered at start. It
 * prepends the Received: field, counts hops against the hop limit, honours
 * the queue limit, and asks the store to make the message durable; only
 * when the file is durable is the submitter told it was accepted and the
 * scheduler given the message. Never delivers anything itself.
 */
#ifndef MP_ENQUEUE_H
#define MP_ENQUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "log.h"
#include "store.h"

struct enqueue;
struct sched;		/* sched.h: the enqueuer hands it what is durable */

struct enqueue_settings {
	const char *hostname;	/* for Received: (copied) */
	unsigned hop_limit;	/* more Received: fields than this: refused */
};

int enqueue_open(const struct enqueue_settings *s, struct store *st,
	struct sched *sc, struct logger *lg, struct enqueue **out);
void enqueue_close(struct enqueue *eq);

/* Called once the message is durable (err 0, id set) or refused. */
typedef void (*enqueue_cb)(void *arg, int err, const char *id);

/*
 * Queue a message. env holds the return-path, the recipients, the tag and
 * the optional user/client/source keys; uid and submitted are filled when
 * empty. received is the complete Received: field (folded, ending in LF)
 * to put on top, or NULL. message (LF line ends) is taken. unlink_after
 * is removed once the queue file is durable (e.g. the .sub), or NULL.
 * Errors, with nothing written: -ELOOP hop limit exceeded ("554 5.4.6 too
 * many hops"), -ENOSPC queue limit, -EINVAL unparsable header. Other
 * errors come through cb. env is consumed in every case.
 */
int enqueue_message(struct enqueue *eq, struct envelope *env,
	struct buf *message, const char *received, const char *unlink_after,
	enqueue_cb cb, void *arg);

/*
 * The header checks enqueue_message makes, for a caller that must answer
 * before it queues (SMTP: its reply, and sync recipients that are never
 * queued): parse the header of msg (len bytes, LF line ends, the
 * Received: field on top) and count its Received: fields into *hops.
 * -EINVAL unparsable (*why constant), -ELOOP more than the hop limit,
 * -ENOMEM. No log line.
 */
int enqueue_judge(const struct enqueue *eq, const char *msg, size_t len,
	size_t *hops, const char **why);
/*
 * enqueue_message for a message enqueue_judge passed (Received: already
 * on top, no unlink_after): the same errors but the header's, which is
 * not parsed again.
 */
int enqueue_judged(struct enqueue *eq, struct envelope *env,
	struct buf *message, enqueue_cb cb, void *arg);

/*
 * Streamed messages, too large to hold in memory (docs/QUEUE.md
 * "Streamed commits"). header holds only the message's header block
 * through its empty line (LF line ends) and is taken; the checks and
 * errors are enqueue_message's (the hop count needs only the header), and
 * on any error env and header are consumed and nothing is written. The
 * body is then appended with store_draft_write / store_draft_copy on
 * enqueue_draft_store(), and enqueue_draft_commit makes it durable and
 * tells cb. With ordered, the message takes its place in the release
 * order (queue-ID order) at the open: the Submitted folder keeps file
 * order so. Without it, the place is taken at the commit: SMTP sessions
 * have no order among them, and a slow one must not hold back the others'
 * replies.
 */
struct enqueue_draft;

int enqueue_draft_open(struct enqueue *eq, struct envelope *env,
	struct buf *header, const char *received, bool ordered,
	struct enqueue_draft **out);
/* The store draft the body goes to (owned by ed). */
struct store_draft *enqueue_draft_store(struct enqueue_draft *ed);
/*
 * Commit as store_draft_commit (unlink_after, then cb as enqueue_message's
 * callback). On success ed is freed; on an error (-EBUSY: a step is still
 * in flight) ed stays the caller's and nothing changed.
 */
int enqueue_draft_commit(struct enqueue_draft *ed, const char *unlink_after,
	enqueue_cb cb, void *arg);
/* Give up: the draft is aborted, nobody is told, ed is freed. */
void enqueue_draft_abort(struct enqueue_draft *ed);

/*
 * Start-up recovery (store_recover): every live queue file goes to the
 * scheduler in ID order; seen (may be NULL) looks at each one just before
 * (e.g. the .sub it came from), done is told when the scan is over, both
 * with arg. A message the scheduler cannot take gets a log line and waits
 * on disk for the next start.
 */
typedef void (*enqueue_seen_cb)(void *arg, const struct store_msg *m);
int enqueue_recover(struct enqueue *eq, enqueue_seen_cb seen,
	store_scan_cb done, void *arg);

/*
 * Import a queue file written elsewhere (a ForeignQueue .msg, moved by
 * store_import under a fresh ID) and give it to the scheduler; then cb
 * gets err 0 and the ID, or the store's error (-EBADMSG corrupt, moved to
 * Queue/corrupt; -EALREADY every recipient was final, removed). No hop or
 * header check: the file is a queue file already. -ENOSPC at once, with
 * nothing done, when the queue limit is reached.
 */
int enqueue_import(struct enqueue *eq, const char *path, enqueue_cb cb,
	void *arg);

/*
 * The Received: field of a local submission:
 *   Received: from local user UID
 *           by HOSTNAME (mailpipe);
 *           DATE
 */
int enqueue_received_local(int64_t uid, const char *hostname, int64_t now,
	struct buf *out);

/*
 * Does Enqueue Asynchronously (setting a) apply to a submitter? When it
 * does, recipients that fail routing are accepted and fail in the queue
 * (a delivery report tells the sender); when it does not, they are
 * refused at once (the SMTP reply at RCPT; for local submission a SUBMIT
 * log line, docs/LOCAL-SUBMISSION.md). authenticated: local submission
 * (SPEC decision: no SMTP AUTH yet); client: an SMTP client in
 * trusted-networks. As in the seed, `clients` takes authenticated
 * sources too, and `non-clients` is neither.
 */
bool enqueue_async_applies(enum enqueue_async a, bool authenticated,
	bool client);

#endif
