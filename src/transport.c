/*
 * transport: the [transport NAME] table and sync runs (see transport.h).
 * Owns the parsed commands and the flat domain list the router uses; the
 * rest of each transport stays in the config. Promises that a transport's
 * program is chosen by the postmaster alone (no '*', no path) and that a
 * sync run answers once, with one reply for the whole transaction.
 */
#include "transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
};

/* One recipient's place in a run (the pipe callback's argument). */
struct sync_one {
	struct sync_run *run;
	size_t i;
};

/* One program of a sync run ended; the last one answers. */
static void
on_sync_done(void *arg, struct result *res, const struct pipe_info *info)
{
	struct sync_one *one = arg;
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

/* Run every sync recipient's program on the message at once. */
int
transport_sync_run(struct pipe_module *pm, const char *message, size_t len,
	const char *sender, const char *uid, struct transport_sync_rcpt *r,
	size_t n, transport_sync_cb cb, void *arg)
{
	struct sync_run *run;
	struct buf did = BUF_INIT;
	int e = 0;

	if (n == 0 || cb == NULL)
		return -EINVAL;
	if ((run = calloc(1, sizeof(*run))) == NULL ||
	    (run->one = calloc(n, sizeof(*run->one))) == NULL) {
		free(run);
		return -ENOMEM;
	}
	run->r = r;
	run->n = n;
	run->left = n;
	run->cb = cb;
	run->arg = arg;
	for (size_t i = 0; i < n; i++) {
		struct pipe_request req;

		memset(&req, 0, sizeof(req));
		r[i].res = (struct result)RESULT_INIT;
		run->one[i].run = run;
		run->one[i].i = i;
		transport_request(r[i].tr, true, &req);
		req.input_mem = message;
		req.input_len = len;
		req.sender = sender;
		req.recipient = r[i].recipient;
		req.orig_recipient = r[i].orig_recipient;
		req.queue_id = uid;
		buf_reset(&did);
		if ((e = buf_printf(&did, "%s.%zu", uid, i)) == 0) {
			req.delivery_id = did.data;
			e = pipe_run(pm, &req, on_sync_done, &run->one[i]);
		}
		if (e < 0) {
			/* pipe_run does not call back on an error: do it */
			struct result res = RESULT_INIT;

			result_set(&res, RESULT_DEFERRED, 451, "4.3.0",
				"cannot start the transport program: %s",
				strerror(-e));
			on_sync_done(&run->one[i], &res, NULL);
			result_clear(&res);
		}
	}
	buf_free(&did);
	return 0;
}
