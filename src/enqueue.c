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
#include <sys/queue.h>
#include <time.h>

#include "msghdr.h"

struct enq_job;
TAILQ_HEAD(enq_list, enq_job);

struct enqueue {
	char *hostname;
	unsigned hop_limit;
	struct store *store;
	struct sched *sched;
	struct logger *log;
	struct enq_list jobs;		/* commits in the order they were asked */
};

/* One enqueue waiting for the store. */
struct enq_job {
	TAILQ_ENTRY(enq_job) link;
	struct enqueue *eq;
	enqueue_cb cb;
	void *arg;
	bool done;
	int err;
	struct store_msg *m;
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
	TAILQ_INIT(&eq->jobs);
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

/* Tell the submitter and hand a durable message to the scheduler. */
static void
release(struct enq_job *j)
{
	struct enqueue *eq = j->eq;
	struct store_msg *m = j->m;
	char id[STORE_ID_LEN + 1] = "";
	int r;

	if (j->err == 0) {
		memcpy(id, m->id, sizeof(id));
		log_msg(eq->log, LOG_ENQUEUER, LOG_LOWLEVEL,
			"id=%s queued from=<%s> rcpts=%zu size=%llu tag=%s", id,
			m->env.from, m->env.nrcpt,
			(unsigned long long)m->msg_len, m->env.tag);
	} else {
		log_msg(eq->log, LOG_ENQUEUER, LOG_FAILURES,
			"cannot write a queue file: %s", strerror(-j->err));
	}
	if (j->cb)
		j->cb(j->arg, j->err, j->err == 0 ? id : NULL);
	if (j->err == 0 && (r = sched_add(eq->sched, m)) < 0) {
		log_msg(eq->log, LOG_ENQUEUER, LOG_FAILURES,
			"id=%s cannot be scheduled: %s (delivered after a "
			"restart)", id, strerror(-r));
		store_msg_free(m);
	}
	free(j);
}

/*
 * The store made a file durable (or failed). Commits finish in any order;
 * they are released in the order they were asked for, which is queue-ID
 * order, so the scheduler sees messages in arrival order.
 */
static void
on_committed(void *arg, int err, struct store_msg *m)
{
	struct enq_job *j = arg;
	struct enqueue *eq = j->eq;

	j->done = true;
	j->err = err;
	j->m = m;
	while ((j = TAILQ_FIRST(&eq->jobs)) != NULL && j->done) {
		TAILQ_REMOVE(&eq->jobs, j, link);
		release(j);
	}
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
	TAILQ_INSERT_TAIL(&eq->jobs, j, link);
	r = store_commit(eq->store, env, &full, unlink_after, 0, on_committed,
		j);
	if (r == 0)
		j = NULL;
	else
		TAILQ_REMOVE(&eq->jobs, j, link);
out:
	free(j);
	msghdr_free(&h);
	buf_free(&full);
	buf_free(message);
	envelope_free(env);
	return r;
}
