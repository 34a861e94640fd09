/*
 * smtpd_sync: the sync transport runs of an SMTP transaction (see
 * smtpd.h, docs/SMTP.md). Owns running the programs of the sync
 * recipients on the held message (transport_sync_run), their delivery
 * log lines (the keys of sched.c's) and turning their one result into
 * the DATA reply. Part of smtpd (smtpd_int.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "smtpd_int.h"

/* Write one delivery line per sync recipient (same keys as sched.c). */
static void
log_sync(struct session *s, const struct transport_sync_rcpt *r, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < s->nrcpt && k < n; i++) {
		const struct transport_sync_rcpt *x = &r[k];
		enum log_level lvl;
		struct buf b = BUF_INIT;
		char *reason = NULL;

		if (s->rcpt[i].sync == NULL)
			continue;
		k++;
		lvl = x->res.kind == RESULT_DELIVERED ? LOG_MAJOR :
			LOG_FAILURES;
		if (!log_enabled(s->sd->d.log, LOG_PIPE, lvl))
			continue;
		if (result_format(&x->res, &reason) < 0)
			reason = NULL;
		buf_puts(&b, "delivery");
		log_kv(&b, "id", s->sync_uid);
		log_kv(&b, "rcpt", s->rcpt[i].addr);
		log_kv(&b, "module", "TRANSPORT");
		log_kv(&b, "transport", x->tr->conf->name);
		log_kv(&b, "mode", "sync");
		log_kv(&b, "result", result_kind_name(x->res.kind));
		log_kv(&b, "reason", reason ? reason : x->res.text);
		if (x->recipient && strcmp(x->recipient, s->rcpt[i].addr) != 0)
			log_kv(&b, "routed", x->recipient);
		log_kvf(&b, "session", "%llu", (unsigned long long)s->id);
		if (x->slot_wait_s >= 0.001)	/* for a processor */
			log_kvf(&b, "wait", "%.3f", x->slot_wait_s);
		if (x->info.pid > 0) {
			log_kvf(&b, "pid", "%ld", (long)x->info.pid);
			if (x->info.end == RUN_EXITED)
				log_kvf(&b, "exit", "%d", x->info.code);
			else if (x->info.end == RUN_SIGNALED)
				log_kvf(&b, "signal", "%d", x->info.code);
			else if (x->info.end == RUN_TIMED_OUT)
				log_kv(&b, "timeout", "yes");
			log_kvf(&b, "time", "%.3f", x->info.seconds);
		}
		if (b.data)
			log_msg(s->sd->d.log, LOG_PIPE, lvl, "%s", b.data);
		buf_free(&b);
		free(reason);
	}
}

/* The sync programs have answered: their reply is the DATA reply. */
static void
sync_finish(struct session *s)
{
	const struct result *res = &s->sync_res;
	const char *text = res->text ? res->text : "";
	char status[RESULT_STATUS_MAX];
	int code = res->reply;

	switch (res->kind) {
	case RESULT_DELIVERED:
		code = 250;
		break;
	case RESULT_DEFERRED:
		if (code < 400 || code > 499)
			code = 451;
		break;
	case RESULT_FAILED:
		if (code < 500 || code > 599)
			code = 554;
		break;
	}
	if (res->status[0] == (char)('0' + code / 100))
		snprintf(status, sizeof(status), "%s", res->status);
	else
		snprintf(status, sizeof(status), "%c.0.0",
			(char)('0' + code / 100));
	if (code == 250) {
		s->messages++;
		s->junk = 0;
		if (s->qid[0])
			smtpd__txn_finish(s, 250, status, "%s; queued as %s",
				text,
				s->qid);
		else
			smtpd__txn_finish(s, 250, status, "%s", text);
		return;
	}
	smtpd__txn_finish(s, code, status, "%s", text);
}

/* transport_sync_run's answer (maybe from inside the call). */
static void
on_sync_done(void *arg, struct transport_sync_rcpt *r, size_t n,
	const struct result *reply_res)
{
	struct session *s = arg;
	const struct result *use = reply_res;

	log_sync(s, r, n);
	if (result_set(&s->sync_res, use->kind, use->reply, use->status, "%s",
	    use->text ? use->text : "") < 0)
		result_set(&s->sync_res, RESULT_DEFERRED, 451, "4.3.0",
			"out of memory");
	s->sync_running = false;
	if (!s->in_call)
		sync_finish(s);
}

/* Run the sync transports' programs on the message (Received: on top). */
void
smtpd__sync_part(struct session *s)
{
	size_t k = 0;
	int r;

	if ((s->sr = calloc(s->nsync, sizeof(*s->sr))) == NULL) {
		smtpd__txn_finish(s, 452, "4.3.1",
			"insufficient system resources");
		return;
	}
	s->nsr = s->nsync;
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (s->rcpt[i].sync == NULL)
			continue;
		s->sr[k].tr = s->rcpt[i].sync;
		s->sr[k].recipient = s->rcpt[i].routed;
		s->sr[k].orig_recipient = s->rcpt[i].orig;
		s->sr[k].res = (struct result)RESULT_INIT;
		k++;
	}
	if ((r = envelope_new_uid(s->sync_uid)) < 0) {
		smtpd__txn_finish(s, 451, "4.3.0", "local error: %s",
			strerror(-r));
		return;
	}
	s->waiting = true;
	s->sync_running = true;
	s->ph = PH_WAIT;
	uv_timer_stop(&s->timer);
	s->in_call = true;
	r = transport_sync_run(s->sd->d.pipe, s->sd->d.slots,
		s->full.data ? s->full.data : "", s->full.len, s->from,
		s->sync_uid, s->sr, s->nsr, on_sync_done, s);
	s->in_call = false;
	if (r < 0 && s->sync_running) {
		s->sync_running = false;
		smtpd__txn_finish(s, 451, "4.3.0", "cannot run the transport "
			"programs: %s", strerror(-r));
		return;
	}
	if (!s->sync_running)
		sync_finish(s);
}
