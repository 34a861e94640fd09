/*
 * enqueue: the one way into the queue for every intake (Submitted folder,
 * ForeignQueue imports go through store_import, SMTP later). It prepends
 * the Received: field, counts hops against the hop limit, honours the queue
 * limit, and asks the store to make the message durable; only when the
 * file is durable is the submitter told it was accepted and the scheduler
 * given the message. Never delivers anything itself.
 */
#ifndef MP_ENQUEUE_H
#define MP_ENQUEUE_H

#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "log.h"
#include "sched.h"
#include "store.h"

struct enqueue;

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
 * The Received: field of a local submission:
 *   Received: from local user UID
 *           by HOSTNAME (mailpipe);
 *           DATE
 */
int enqueue_received_local(int64_t uid, const char *hostname, int64_t now,
	struct buf *out);

#endif
