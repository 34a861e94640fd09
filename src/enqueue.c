/*
 * enqueue: intake's door to the queue (see enqueue.h). Owns nothing after
 * a call returns: the envelope and message go to the store, the resulting
 * queue file to the scheduler; imported and recovered queue files reach
 * it here too (nothing else calls sched_add). Promises that a
 * submitter hears "accepted" only after the store made the file durable,
 * that a refused message (hop limit, queue limit, bad header) leaves
 * nothing behind, and that a header is parsed once on every way in.
 */
#include "enqueue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "msghdr.h"
#include "sched.h"

struct enq_job;
TAILQ_HEAD(enq_list, enq_job);

struct enqueue {
	char *hostname;
	unsigned hop_limit;
	struct store *store;
	struct sched *sched;
	struct logger *log;
	struct enq_list jobs;		/* commits in the order they were asked */
	enqueue_seen_cb rec_seen;	/* enqueue_recover's callbacks */
	store_scan_cb rec_done;
	void *rec_arg;
};

/* One enqueue waiting for the store. */
struct enq_job {
	TAILQ_ENTRY(enq_job) link;
	struct enqueue *eq;
	enqueue_cb cb;
	void *arg;
	bool done;
	bool dropped;		/* an aborted draft: nothing to release */
	int err;
	struct store_msg *m;
};

/* A streamed message on its way (enqueue_draft_*). */
struct enqueue_draft {
	struct enqueue *eq;
	struct store_draft *d;
	struct enq_job *j;
	bool queued;		/* j is in the release order */
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

/* Does Enqueue Asynchronously apply to this submitter (see enqueue.h)? */
bool
enqueue_async_applies(enum enqueue_async a, bool authenticated, bool client)
{
	switch (a) {
	case ASYNC_ANYBODY:
		return true;
	case ASYNC_AUTHENTICATED:
		return authenticated;
	case ASYNC_UNAUTHENTICATED:
		return !authenticated;
	case ASYNC_CLIENTS:
		return authenticated || client;
	case ASYNC_NONCLIENTS:
		return !authenticated && !client;
	case ASYNC_NOBODY:
		break;
	}
	return false;
}

/*
 * Hand a durable message to the scheduler; when it cannot take it, a log
 * line (in component c, ending in tail) and the message stays on disk for
 * the next start.
 */
static void
give(struct enqueue *eq, struct store_msg *m, enum log_comp c,
	const char *tail)
{
	int r;

	if ((r = sched_add(eq->sched, m)) < 0) {
		log_msg(eq->log, c, LOG_FAILURES,
			"id=%s cannot be scheduled: %s%s", m->id,
			strerror(-r), tail);
		store_msg_free(m);
	}
}

/* Tell the submitter and hand a durable message to the scheduler. */
static void
release(struct enq_job *j)
{
	struct enqueue *eq = j->eq;
	struct store_msg *m = j->m;
	char id[STORE_ID_LEN + 1] = "";

	if (j->dropped) {
		free(j);
		return;
	}
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
	if (j->err == 0)
		give(eq, m, LOG_ENQUEUER, " (delivered after a restart)");
	free(j);
}

/* Release every finished job at the head of the order. */
static void
release_ready(struct enqueue *eq)
{
	struct enq_job *j;

	while ((j = TAILQ_FIRST(&eq->jobs)) != NULL && j->done) {
		TAILQ_REMOVE(&eq->jobs, j, link);
		release(j);
	}
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

	j->done = true;
	j->err = err;
	j->m = m;
	release_ready(j->eq);
}

/* Parse the header and count its Received: fields (see enqueue.h). */
int
enqueue_judge(const struct enqueue *eq, const char *msg, size_t len,
	size_t *hops, const char **why)
{
	struct msghdr_block h = MSGHDR_INIT;
	int r;

	*hops = 0;
	if ((r = msghdr_parse(msg, len, &h, why)) == 0)
		*hops = msghdr_count(msg, &h, "Received");
	msghdr_free(&h);
	if (r == 0 && *hops > eq->hop_limit)
		r = -ELOOP;
	return r;
}

/*
 * What every way in checks before the store: uid and time filled, the
 * queue limit, then received + message (taken) in full, whose header is
 * parsed for the hop count (-EINVAL unparsable, -ELOOP over the limit)
 * unless the caller judged it already (enqueue_judged).
 */
static int
enq_check(struct enqueue *eq, struct envelope *env, struct buf *message,
	const char *received, bool judged, struct buf *full)
{
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
	/* exactly its size: a small message stays in memory as it is */
	if ((r = buf_reserve_exact(full, (received ? strlen(received) : 0) +
	    message->len)) < 0 ||
	    (received && (r = buf_puts(full, received)) < 0) ||
	    (r = buf_append(full, message->data ? message->data : "",
	    message->len)) < 0 || judged)
		goto out;
	r = enqueue_judge(eq, full->data, full->len, &hops, &why);
	if (r == -ELOOP)
		log_msg(eq->log, LOG_ENQUEUER, LOG_PROBLEMS,
			"message from <%s> refused: %zu Received: fields, hop "
			"limit %u", env->from, hops, eq->hop_limit);
	else if (r < 0)
		log_msg(eq->log, LOG_ENQUEUER, LOG_PROBLEMS,
			"message refused: %s", why);
out:
	buf_free(message);
	return r;
}

/* A job for the release order. */
static struct enq_job *
job_new(struct enqueue *eq, enqueue_cb cb, void *arg)
{
	struct enq_job *j = calloc(1, sizeof(*j));

	if (j != NULL) {
		j->eq = eq;
		j->cb = cb;
		j->arg = arg;
	}
	return j;
}

/* Check (unless judged), then hand the message to the store. */
static int
enq_message(struct enqueue *eq, struct envelope *env, struct buf *message,
	const char *received, bool judged, const char *unlink_after,
	enqueue_cb cb, void *arg)
{
	struct buf full = BUF_INIT;
	struct enq_job *j = NULL;
	int r;

	if ((r = enq_check(eq, env, message, received, judged, &full)) < 0)
		goto out;
	if ((j = job_new(eq, cb, arg)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	TAILQ_INSERT_TAIL(&eq->jobs, j, link);
	r = store_commit(eq->store, env, &full, unlink_after, 0, on_committed,
		j);
	if (r == 0)
		j = NULL;
	else
		TAILQ_REMOVE(&eq->jobs, j, link);
out:
	free(j);
	buf_free(&full);
	envelope_free(env);
	return r;
}

/* Count hops and hand the message to the store. */
int
enqueue_message(struct enqueue *eq, struct envelope *env,
	struct buf *message, const char *received, const char *unlink_after,
	enqueue_cb cb, void *arg)
{
	return enq_message(eq, env, message, received, false, unlink_after,
		cb, arg);
}

/* Hand a message enqueue_judge passed to the store (no second parse). */
int
enqueue_judged(struct enqueue *eq, struct envelope *env,
	struct buf *message, enqueue_cb cb, void *arg)
{
	return enq_message(eq, env, message, NULL, true, NULL, cb, arg);
}

/* Begin a streamed message: checks as enqueue_message, then a draft. */
int
enqueue_draft_open(struct enqueue *eq, struct envelope *env,
	struct buf *header, const char *received, bool ordered,
	struct enqueue_draft **out)
{
	struct buf full = BUF_INIT;
	struct enqueue_draft *ed = NULL;
	int r;

	if ((r = enq_check(eq, env, header, received, false, &full)) < 0)
		goto out;
	if ((ed = calloc(1, sizeof(*ed))) == NULL ||
	    (ed->j = job_new(eq, NULL, NULL)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	ed->eq = eq;
	if ((r = store_draft_open(eq->store, env, &full, 0, &ed->d)) < 0)
		goto out;
	if (ordered) {
		/* its place in the release order is taken now, with its ID */
		TAILQ_INSERT_TAIL(&eq->jobs, ed->j, link);
		ed->queued = true;
	}
	*out = ed;
	ed = NULL;
out:
	if (ed != NULL)
		free(ed->j);
	free(ed);
	buf_free(&full);
	envelope_free(env);
	return r;
}

/* The draft the body goes to. */
struct store_draft *
enqueue_draft_store(struct enqueue_draft *ed)
{
	return ed->d;
}

/* The body is written: commit, then release in order. */
int
enqueue_draft_commit(struct enqueue_draft *ed, const char *unlink_after,
	enqueue_cb cb, void *arg)
{
	struct enq_job *j = ed->j;
	int r;

	j->cb = cb;
	j->arg = arg;
	if (!ed->queued)
		TAILQ_INSERT_TAIL(&ed->eq->jobs, j, link);
	if ((r = store_draft_commit(ed->d, unlink_after, on_committed,
	    j)) < 0) {
		if (!ed->queued)
			TAILQ_REMOVE(&ed->eq->jobs, j, link);
		j->cb = NULL;
		return r;
	}
	free(ed);
	return 0;
}

/* Give up a streamed message: nothing is queued, nobody is told. */
void
enqueue_draft_abort(struct enqueue_draft *ed)
{
	struct enqueue *eq;

	if (ed == NULL)
		return;
	eq = ed->eq;
	store_draft_abort(ed->d);
	if (ed->queued) {
		/* its place in the order: later messages may go now */
		ed->j->done = true;
		ed->j->dropped = true;
		release_ready(eq);
	} else {
		free(ed->j);
	}
	free(ed);
}

/* A recovered message: let the caller look, then schedule it. */
static void
on_recovered(void *arg, struct store_msg *m)
{
	struct enqueue *eq = arg;

	if (eq->rec_seen)
		eq->rec_seen(eq->rec_arg, m);
	give(eq, m, LOG_QUEUE, "");
}

/* The recovery scan is over. */
static void
on_recovery_done(void *arg, int err, size_t found, size_t corrupt)
{
	struct enqueue *eq = arg;

	eq->rec_done(eq->rec_arg, err, found, corrupt);
}

/* Recover the queue and schedule what it holds (see enqueue.h). */
int
enqueue_recover(struct enqueue *eq, enqueue_seen_cb seen,
	store_scan_cb done, void *arg)
{
	eq->rec_seen = seen;
	eq->rec_done = done;
	eq->rec_arg = arg;
	return store_recover(eq->store, on_recovered, on_recovery_done, eq);
}

/*
 * An import finished: the message goes to the scheduler, then the
 * importer is told (as ForeignQueue did it: the scheduler has the message
 * before the importer starts the next one or reports that it is done).
 */
static void
on_imported(void *arg, int err, struct store_msg *m)
{
	struct enq_job *j = arg;
	char id[STORE_ID_LEN + 1] = "";

	if (err == 0) {
		memcpy(id, m->id, sizeof(id));
		give(j->eq, m, LOG_QUEUE, "");
	}
	j->cb(j->arg, err, err == 0 ? id : NULL);
	free(j);
}

/* Import a queue file written elsewhere (see enqueue.h). */
int
enqueue_import(struct enqueue *eq, const char *path, enqueue_cb cb,
	void *arg)
{
	struct enq_job *j;
	int r;

	if (store_full(eq->store))
		return -ENOSPC;
	if ((j = job_new(eq, cb, arg)) == NULL)
		return -ENOMEM;
	if ((r = store_import(eq->store, path, on_imported, j)) < 0)
		free(j);
	return r;
}
