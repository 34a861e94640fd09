/*
 * enqueue: intake's door to the queue (see enqueue.h). Owns nothing after
 * a call returns: the envelope and message go to the store, the resulting
 * queue file to the scheduler. Promises that a submitter hears "accepted"
 * only after the store made the file durable, and that a refused message
 * (hop limit, queue limit, bad header) leaves nothing behind.
 */
#include "enqueue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msghdr.h"

struct enqueue {
	char *hostname;
	unsigned hop_limit;
	struct store *store;
	struct sched *sched;
	struct logger *log;
};

/* One enqueue waiting for the store. */
struct enq_job {
	struct enqueue *eq;
	enqueue_cb cb;
	void *arg;
};

/* Open the enqueuer. */
int
enqueue_open(const struct enqueue_settings *s, struct store *st,
	struct sched *sc, struct logger *lg, struct enqueue **out)
{
	struct enqueue *eq = calloc(1, sizeof(*eq));

	if (eq == NULL || (eq->hostname = strdup(s->hostname)) == NULL) {
		free(eq);
		return -ENOMEM;
	}
	eq->hop_limit = s->hop_limit;
	eq->store = st;
	eq->sched = sc;
	eq->log = lg;
	*out = eq;
	return 0;
}

/* Free the enqueuer. */
void
enqueue_close(struct enqueue *eq)
{
	if (eq == NULL)
		return;
	free(eq->hostname);
	free(eq);
}

/* Build the Received: field of a local submission. */
int
enqueue_received_local(int64_t uid, const char *hostname, int64_t now,
	struct buf *out)
{
	int r;

	if ((r = buf_printf(out, "Received: from local user %lld\n\tby %s "
	    "(mailpipe);\n\t", (long long)uid, hostname)) < 0 ||
	    (r = msghdr_date(now, out)) < 0)
		return r;
	return buf_putc(out, '\n');
}

/* The store made the file durable (or failed): tell the submitter. */
static void
on_committed(void *arg, int err, struct store_msg *m)
{
	struct enq_job *j = arg;
	struct enqueue *eq = j->eq;
	char id[STORE_ID_LEN + 1] = "";
	int r;

	if (err == 0) {
		memcpy(id, m->id, sizeof(id));
		log_msg(eq->log, LOG_ENQUEUER, LOG_LOWLEVEL,
			"id=%s queued from=<%s> rcpts=%zu size=%llu tag=%s", id,
			m->env.from, m->env.nrcpt,
			(unsigned long long)m->msg_len, m->env.tag);
	} else {
		log_msg(eq->log, LOG_ENQUEUER, LOG_FAILURES,
			"cannot write a queue file: %s", strerror(-err));
	}
	if (j->cb)
		j->cb(j->arg, err, err == 0 ? id : NULL);
	if (err == 0 && (r = sched_add(eq->sched, m)) < 0) {
		log_msg(eq->log, LOG_ENQUEUER, LOG_FAILURES,
			"id=%s cannot be scheduled: %s (delivered after a "
			"restart)", id, strerror(-r));
		store_msg_free(m);
	}
	free(j);
}

/* Count hops and hand the message to the store. */
int
enqueue_message(struct enqueue *eq, struct envelope *env,
	struct buf *message, const char *received, const char *unlink_after,
	enqueue_cb cb, void *arg)
{
	struct buf full = BUF_INIT;
	struct msghdr_block h = MSGHDR_INIT;
	struct enq_job *j = NULL;
	const char *why;
	size_t hops;
	int r;

	if (env->submitted <= 0)
		env->submitted = (int64_t)time(NULL);
	if (env->uid[0] == '\0' && (r = envelope_new_uid(env->uid)) < 0)
		goto out;
	if (store_full(eq->store)) {
		r = -ENOSPC;
		goto out;
	}
	if ((received && (r = buf_puts(&full, received)) < 0) ||
	    (r = buf_append(&full, message->data ? message->data : "",
	    message->len)) < 0)
		goto out;
	if ((r = msghdr_parse(full.data, full.len, &h, &why)) < 0) {
		log_msg(eq->log, LOG_ENQUEUER, LOG_PROBLEMS,
			"message refused: %s", why);
		goto out;
	}
	hops = msghdr_count(full.data, &h, "Received");
	if (hops > eq->hop_limit) {
		log_msg(eq->log, LOG_ENQUEUER, LOG_PROBLEMS,
			"message from <%s> refused: %zu Received: fields, hop "
			"limit %u", env->from, hops, eq->hop_limit);
		r = -ELOOP;
		goto out;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	j->eq = eq;
	j->cb = cb;
	j->arg = arg;
	r = store_commit(eq->store, env, &full, unlink_after, 0, on_committed,
		j);
	if (r == 0)
		j = NULL;
out:
	free(j);
	msghdr_free(&h);
	buf_free(&full);
	buf_free(message);
	envelope_free(env);
	return r;
}
