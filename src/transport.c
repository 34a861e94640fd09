/*
 * transport: the [transport NAME] table and sync runs (see transport.h).
 * Owns the parsed commands and the flat domain list the router uses; the
 * rest of each transport stays in the config. Promises that a transport's
 * program is chosen by the postmaster alone (no '*', no path; in sync mode
 * no [FILE] and no queue[NAME]), that a sync program runs only while it
 * holds one of the processors it shares with the queue (procslots), and
 * that a sync run answers once, with one reply for the whole transaction.
 */
#include "transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strv.h"

/* Why a parsed command cannot be a sync transport's, or NULL. */
const char *
transport_sync_refusal(const struct pipe_cmd *cmd)
{
	if (cmd->tags & PIPE_TAG_FILE)
		return "[FILE] needs a queue file: not in mode = sync";
	if (cmd->queue)
		return "queue[NAME] orders queued deliveries: not in "
			"mode = sync";
	return NULL;
}

/* Build the table from the config. */
int
transport_table_build(const struct config *c, struct transport_table *t,
	char **err)
{
	struct buf msg = BUF_INIT;
	const char *file = c->file ? c->file : "config";
	int r = 0;

	*t = (struct transport_table)TRANSPORT_TABLE_INIT;
	*err = NULL;
	if (c->ntransports == 0)
		return 0;
	if ((t->v = calloc(c->ntransports, sizeof(*t->v))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < c->ntransports && r == 0; i++) {
		const struct config_transport *ct = &c->transports[i];
		struct transport *tr = &t->v[t->n];
		const char *why = NULL, *cmd = ct->command ? ct->command : "";

		tr->conf = ct;
		tr->cmd = (struct pipe_cmd)PIPE_CMD_INIT;
		if (strchr(cmd, '*')) {
			why = "'*' has no meaning in a transport command";
		} else if (pipe_cmd_parse(cmd, strlen(cmd), &tr->cmd, &why) <
		    0) {
			if (strchr(cmd, '/'))
				why = "a transport names a program in [pipe] "
					"app-dir, not a path";
		} else if (ct->mode == TRANSPORT_SYNC) {
			why = transport_sync_refusal(&tr->cmd);
		}
		if (why) {
			pipe_cmd_free(&tr->cmd);
			buf_printf(&msg, "%s:%u: [transport %s] command: %s",
				file, ct->command_line ? ct->command_line :
				ct->line, ct->name, why);
			r = -EINVAL;
			break;
		}
		tr->time_limit_s = ct->time_limit_s ? ct->time_limit_s :
			ct->mode == TRANSPORT_SYNC ? TRANSPORT_SYNC_TIME_LIMIT :
			c->pipe.time_limit_s;
		t->n++;
		for (size_t d = 0; d < ct->domains.n && r == 0; d++)
			r = strv_push(&t->domains, ct->domains.v[d]);
	}
	if (r == 0 && t->domains.n > 0) {
		t->names = calloc(t->domains.n, sizeof(*t->names));
		if (t->names == NULL)
			r = -ENOMEM;
		for (size_t i = 0, k = 0; r == 0 && i < t->n; i++)
			for (size_t d = 0; d < t->v[i].conf->domains.n; d++)
				t->names[k++] = t->v[i].conf->name;
	}
	if (r < 0) {
		transport_table_free(t);
		if (msg.data)
			buf_steal(&msg, err);
	}
	buf_free(&msg);
	return r;
}

/* Free the table. */
void
transport_table_free(struct transport_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		pipe_cmd_free(&t->v[i].cmd);
	free(t->v);
	free(t->names);
	strv_free(&t->domains);
	*t = (struct transport_table)TRANSPORT_TABLE_INIT;
}

/* The transport called name. */
const struct transport *
transport_find(const struct transport_table *t, const char *name)
{
	for (size_t i = 0; name && i < t->n; i++)
		if (strcmp(t->v[i].conf->name, name) == 0)
			return &t->v[i];
	return NULL;
}

/* Transport-specific fields of a pipe request. */
void
transport_request(const struct transport *tr, bool sync,
	struct pipe_request *req)
{
	req->cmd = &tr->cmd;
	req->codes = tr->conf->codes.n ? &tr->conf->codes : NULL;
	req->time_limit_s = sync && !tr->conf->time_limit_s ?
		TRANSPORT_SYNC_TIME_LIMIT : tr->time_limit_s;
	req->sync = sync;
	req->output_file = tr->conf->output_file;
	req->error_file = tr->conf->error_file;
}

/* One reply for a transaction's sync results. */
int
transport_sync_reply(const struct transport_sync_rcpt *r, size_t n,
	struct result *out)
{
	const struct result *worst = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct result *x = &r[i].res;

		if (x->kind == RESULT_FAILED) {
			worst = x;
			break;
		}
		if (x->kind == RESULT_DEFERRED && worst == NULL)
			worst = x;
	}
	if (worst == NULL && n == 1)	/* its own (maybe mapped) reply */
		worst = &r[0].res;
	if (worst == NULL)
		return result_set(out, RESULT_DELIVERED, 250, "2.0.0",
			"delivered to %zu programs", n);
	return result_set(out, worst->kind, worst->reply, worst->status, "%s",
		worst->text ? worst->text : "");
}

/* A sync run in progress. */
struct sync_run {
	struct transport_sync_rcpt *r;
	size_t n, left;
	transport_sync_cb cb;
	void *arg;
	struct sync_one *one;
	struct pipe_module *pm;
	struct procslots *slots;
	const char *message, *sender, *uid;
	size_t len;
};

/* One recipient's place in a run (the slot and pipe callbacks' argument). */
struct sync_one {
	struct sync_run *run;
	size_t i;
	struct timespec asked;		/* when it began to wait for a slot */
};

/* One recipient's result is in; the last one answers. */
static void
one_done(struct sync_one *one, struct result *res,
	const struct pipe_info *info)
{
	struct sync_run *run = one->run;
	struct transport_sync_rcpt *rc = &run->r[one->i];
	struct result reply = RESULT_INIT;

	result_move(&rc->res, res);
	if (info)
		rc->info = *info;
	if (--run->left > 0)
		return;
	if (transport_sync_reply(run->r, run->n, &reply) < 0)
		result_set(&reply, RESULT_DEFERRED, 451, "4.3.0",
			"out of memory");
	run->cb(run->arg, run->r, run->n, &reply);
	result_clear(&reply);
	free(run->one);
	free(run);
}

/* One program of a sync run ended: its slot is free again. */
static void
on_program_done(void *arg, struct result *res, const struct pipe_info *info)
{
	struct sync_one *one = arg;

	procslots_put(one->run->slots);
	one_done(one, res, info);
}

/* Seconds from a to now (CLOCK_MONOTONIC). */
static double
seconds_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) +
		(double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/*
 * A recipient's wait for a processor ended: start its program (its time
 * limit starts with it), or answer 451 4.3.2 when none came in time.
 */
static void
on_slot(void *arg, bool granted)
{
	struct sync_one *one = arg;
	struct sync_run *run = one->run;
	struct transport_sync_rcpt *rc = &run->r[one->i];
	struct result res = RESULT_INIT;
	struct pipe_request req;
	struct buf did = BUF_INIT;
	int e;

	rc->slot_wait_s = seconds_since(&one->asked);
	memset(&req, 0, sizeof(req));
	transport_request(rc->tr, true, &req);
	if (!granted) {
		result_set(&res, RESULT_DEFERRED, 451, "4.3.2",
			"all %u processors busy for %llus, try again later",
			procslots_cap(run->slots),
			(unsigned long long)req.time_limit_s);
		one_done(one, &res, NULL);
		result_clear(&res);
		return;
	}
	req.input_mem = run->message;
	req.input_len = run->len;
	req.sender = run->sender;
	req.recipient = rc->recipient;
	req.orig_recipient = rc->orig_recipient;
	req.queue_id = run->uid;
	if ((e = buf_printf(&did, "%s.%zu", run->uid, one->i)) == 0) {
		req.delivery_id = did.data;
		e = pipe_run(run->pm, &req, on_program_done, one);
	}
	buf_free(&did);
	if (e < 0) {
		/* pipe_run does not call back on an error: do it */
		procslots_put(run->slots);
		result_set(&res, RESULT_DEFERRED, 451, "4.3.0",
			"cannot start the transport program: %s",
			strerror(-e));
		one_done(one, &res, NULL);
		result_clear(&res);
	}
}

/* Run every sync recipient's program, each when it has a processor. */
int
transport_sync_run(struct pipe_module *pm, struct procslots *slots,
	const char *message, size_t len, const char *sender, const char *uid,
	struct transport_sync_rcpt *r, size_t n, transport_sync_cb cb,
	void *arg)
{
	struct sync_run *run;
	struct sync_one *one;
	struct pipe_request req;
	int e;

	if (n == 0 || cb == NULL || slots == NULL)
		return -EINVAL;
	if ((run = malloc(sizeof(*run))) == NULL ||
	    (one = calloc(n, sizeof(*one))) == NULL) {
		free(run);
		return -ENOMEM;
	}
	*run = (struct sync_run){ .r = r, .n = n, .left = n, .cb = cb,
	    .arg = arg, .one = one, .pm = pm, .slots = slots,
	    .message = message, .sender = sender, .uid = uid, .len = len };
	for (size_t i = 0; i < n; i++) {
		r[i].res = (struct result)RESULT_INIT;
		r[i].slot_wait_s = 0;
		run->one[i].run = run;
		run->one[i].i = i;
		clock_gettime(CLOCK_MONOTONIC, &run->one[i].asked);
	}
	/* every wait is set up before any can end (they end from the loop) */
	for (size_t i = 0; i < n; i++) {
		memset(&req, 0, sizeof(req));
		transport_request(r[i].tr, true, &req);
		e = procslots_wait(slots, req.time_limit_s * 1000, on_slot,
			&run->one[i]);
		if (e < 0) {
			struct result res = RESULT_INIT;

			result_set(&res, RESULT_DEFERRED, 451, "4.3.0",
				"cannot wait for a processor: %s",
				strerror(-e));
			one_done(&run->one[i], &res, NULL);
			result_clear(&res);
		}
	}
	return 0;
}
