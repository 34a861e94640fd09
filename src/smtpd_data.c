/*
 * smtpd_data: an SMTP transaction and its DATA (see smtpd.h,
 * docs/SMTP.md "Large messages"). Owns the transaction's state, the
 * decoding of DATA (smtpcodec), the message held in memory or streamed
 * to an enqueue draft once it is too large to hold, the judgement at the
 * final "." (bare CR/LF, size, header, hops), the queued part and the
 * transaction's log line and reply. Promises: 250 only once the queue
 * file is durable (or the sync programs succeeded, smtpd_sync.c); a
 * refused, cut or dropped message leaves nothing queued. Part of smtpd
 * (smtpd_int.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enqueue.h"
#include "log.h"
#include "msghdr.h"
#include "smtpd_int.h"

/* Forget the transaction (sender, recipients, message). */
void
smtpd__txn_reset(struct session *s)
{
	for (size_t i = 0; i < s->nrcpt; i++) {
		free(s->rcpt[i].addr);
		free(s->rcpt[i].orcpt);
		free(s->rcpt[i].routed);
		free(s->rcpt[i].orig);
	}
	free(s->rcpt);
	s->rcpt = NULL;
	s->nrcpt = s->rcpt_cap = s->nsync = 0;
	free(s->from);
	free(s->ret);
	free(s->envid);
	s->from = s->ret = s->envid = NULL;
	s->has_mail = false;
	buf_free(&s->msg);
	buf_free(&s->full);
	smtpcodec_dec_init(&s->dec, s->sd->d.cfg->smtp.max_size);
	s->nomem = false;
	s->data_in = 0;
	if (s->ed != NULL)
		enqueue_draft_abort(s->ed);
	s->ed = NULL;
	s->ed_busy = s->stalled = s->streamed = false;
	s->stream_err = 0;
	for (size_t i = 0; i < s->nsr; i++)
		result_clear(&s->sr[i].res);
	free(s->sr);
	s->sr = NULL;
	s->nsr = 0;
	result_clear(&s->sync_res);
	s->qid[0] = '\0';
	s->sync_uid[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* Transactions */

/* Log the transaction and send its reply; then take the next commands. */
void __attribute__((format(printf, 4, 5)))
smtpd__txn_finish(struct session *s, int code, const char *status,
	const char *fmt, ...)
{
	struct smtpd *sd = s->sd;
	struct buf t = BUF_INIT, l = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&t, fmt, ap) < 0)
		s->failed = true;
	va_end(ap);
	buf_printf(&l, "session=%llu message", (unsigned long long)s->id);
	log_kv(&l, "client", s->ip);
	log_kvf(&l, "from", "<%s>", s->from ? s->from : "");
	log_kvf(&l, "rcpts", "%zu", s->nrcpt);
	log_kvf(&l, "sync", "%zu", s->nsync);
	log_kvf(&l, "size", "%llu", (unsigned long long)s->dec.size);
	log_kv(&l, "id", s->qid[0] ? s->qid : NULL);
	log_kvf(&l, "result", "%03d %s %s", code, status,
		t.data ? t.data : "");
	if (s->killed)
		buf_puts(&l, " (client gone: not told)");
	log_msg(sd->d.log, LOG_SMTPI, LOG_MAJOR, "%s", l.data ? l.data : "");
	buf_free(&l);
	s->waiting = false;
	smtpd__txn_reset(s);
	if (s->killed) {
		buf_free(&t);
		smtpd__session_maybe_free(s);
		return;
	}
	smtpd__reply(s, code, status, "%s", t.data ? t.data : "");
	buf_free(&t);
	s->ph = PH_CMD;
	smtpd__arm_idle(s);
	if (sd->stopping) {
		smtpd__reply(s, 421, "4.3.2", "%s service shutting down",
			smtpd__host(s));
		smtpd__session_end(s, "server shutting down");
	}
	smtpd__process(s);
}

/* Reply for an enqueue that failed (enqueue.h error codes). */
void
smtpd__enqueue_failed(struct session *s, int err)
{
	if (err == -ENOSPC)
		smtpd__txn_finish(s, 452, "4.3.1",
			"insufficient system storage: queue full");
	else if (err == -ELOOP)
		smtpd__txn_finish(s, 554, "5.4.6", "too many hops");
	else if (err == -EINVAL)
		smtpd__txn_finish(s, 554, "5.6.0",
			"message refused: bad header");
	else
		smtpd__txn_finish(s, 451, "4.3.0",
			"local error: cannot queue the "
			"message (%s)", strerror(-err));
}

/* The queued part is durable (or failed). */
static void
on_enqueued(void *arg, int err, const char *id)
{
	struct session *s = arg;

	s->waiting = false;
	if (err < 0) {
		smtpd__enqueue_failed(s, err);
		return;
	}
	snprintf(s->qid, sizeof(s->qid), "%s", id ? id : "");
	if (s->nsync == 0 || s->streamed) {
		s->messages++;
		s->junk = 0;
		smtpd__txn_finish(s, 250, "2.0.0", "ok: queued as %s", s->qid);
		return;
	}
	if (s->killed) {
		smtpd__txn_finish(s, 451, "4.3.0",
			"client gone: sync recipients "
			"not run (queued part is %s)", s->qid);
		return;
	}
	smtpd__sync_part(s);
}

/*
 * The transaction's envelope: the queued recipients, or with all the sync
 * ones too (a streamed message is delivered from the queue for all).
 */
static int
txn_envelope(const struct session *s, bool all, struct envelope *env)
{
	int r = 0;

	envelope_init(env);
	env->trusted = s->trusted;
	if ((env->tag = strdup("SMTP")) == NULL ||
	    (env->from = strdup(s->from ? s->from : "")) == NULL ||
	    (env->client = strdup(s->ip)) == NULL ||
	    (env->helo = strdup(s->helo ? s->helo : "")) == NULL ||
	    (s->ret && (env->ret = strdup(s->ret)) == NULL) ||
	    (s->envid && (env->envid = strdup(s->envid)) == NULL))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < s->nrcpt; i++)
		if (all || s->rcpt[i].sync == NULL)
			r = envelope_add_rcpt(env, s->rcpt[i].addr,
				s->rcpt[i].orcpt, s->rcpt[i].notify);
	if (r < 0)
		envelope_free(env);
	return r;
}

/* Queue the message for the recipients that are not sync. */
static void
enqueue_part(struct session *s)
{
	struct envelope env;
	struct buf m = BUF_INIT;
	int r;

	r = txn_envelope(s, false, &env);
	if (r == 0 && s->nsync > 0 &&
	    (r = buf_append(&m, s->full.data, s->full.len)) < 0)
		envelope_free(&env);
	if (r < 0) {
		buf_free(&m);
		smtpd__txn_finish(s, 452, "4.3.1",
			"insufficient system resources");
		return;
	}
	if (s->nsync == 0) {
		m = s->full;
		s->full = (struct buf)BUF_INIT;
	}
	s->waiting = true;
	s->ph = PH_WAIT;
	uv_timer_stop(&s->timer);
	r = enqueue_judged(s->sd->d.eq, &env, &m, on_enqueued, s);
	if (r < 0) {
		s->waiting = false;
		smtpd__enqueue_failed(s, r);
	}
}

/*
 * The Received: field:
 *   Received: from HELO ([IP])
 *           by HOSTNAME (mailpipe) with ESMTPS (TLSv1.3 CIPHER);
 *           DATE
 */
static int
received(struct session *s, struct buf *out)
{
	const char *proto = s->tls ? "ESMTPS" : s->esmtp ? "ESMTP" : "SMTP";
	int r;

	r = buf_printf(out, "Received: from %s ([%s%s])\n\tby %s (mailpipe) "
		"with %s", s->helo ? s->helo : "unknown", s->v6 ? "IPv6:" : "",
		s->ip, smtpd__host(s), proto);
	if (r == 0 && s->tls)
		r = buf_printf(out, " (%s %s)",
			tls_version(s->tls) ? tls_version(s->tls) : "TLS",
			tls_cipher(s->tls) ? tls_cipher(s->tls) : "");
	if (r == 0)
		r = buf_puts(out, ";\n\t");
	if (r == 0)
		r = msghdr_date((int64_t)time(NULL), out);
	if (r == 0)
		r = buf_putc(out, '\n');
	return r;
}

/*
 * Streaming (docs/SMTP.md "Large messages"): a message larger than
 * SMTPD_STREAM_AT (SMTPD_SYNC_HOLD with sync recipients) is not held:
 * once its header has ended it is opened as an enqueue draft, and the
 * decoded data goes to the store in writes of SMTPD_STREAM_CHUNK or more,
 * one at a time. While a write is in flight and SMTPD_STREAM_AT bytes wait,
 * the session stalls: no input is decoded, reads stop once the input
 * buffer is full, and the DATA clocks stop, so a slow disk is never
 * counted against the client. A refused or failed stream is dropped at
 * once (its ID.tmp removed); the data is read on to its end and answered.
 */

/* Give the stream up (err: its reply at the end; 0 when refused). */
static void
stream_drop(struct session *s, int err)
{
	if (s->ed != NULL)
		enqueue_draft_abort(s->ed);
	s->ed = NULL;
	s->ed_busy = false;
	buf_free(&s->msg);
	if (err < 0 && s->stream_err == 0)
		s->stream_err = err;
}

/* The most message held in memory: more is streamed. */
static size_t
stream_hold(const struct session *s)
{
	return s->nsync > 0 ? SMTPD_SYNC_HOLD : SMTPD_STREAM_AT;
}

/* The DATA clocks restart after a stall, shifted by its length. */
static void
stream_resume(struct session *s)
{
	uint64_t d = uv_now(s->sd->d.loop) - s->stall_at;

	s->stalled = false;
	s->data_start += d;
	s->data_deadline = smtpd__ms_after(s->data_deadline, d);
}

/* Open the draft once the header is complete (-EMSGSIZE: too large). */
static void
stream_open(struct session *s)
{
	struct envelope env;
	struct buf head = BUF_INIT, rcv = BUF_INIT;
	size_t end;
	int r;

	if (msghdr_header_end(s->msg.data, s->msg.len, false, &end) < 0) {
		if (s->msg.len >= SMTPD_HEADER_MAX)
			stream_drop(s, -EMSGSIZE);
		return;		/* the header goes on */
	}
	if ((r = buf_append(&head, s->msg.data, end)) < 0 ||
	    (r = received(s, &rcv)) < 0 ||
	    (r = txn_envelope(s, true, &env)) < 0) {
		buf_free(&head);
		buf_free(&rcv);
		stream_drop(s, r);
		return;
	}
	memmove(s->msg.data, s->msg.data + end, s->msg.len - end);
	s->msg.len -= end;
	s->msg.data[s->msg.len] = '\0';
	r = enqueue_draft_open(s->sd->d.eq, &env, &head, rcv.data, false,
		&s->ed);
	buf_free(&rcv);
	if (r < 0) {
		s->ed = NULL;
		stream_drop(s, r);
		return;
	}
	s->streamed = true;
	log_msg(s->sd->d.log, LOG_SMTPI, LOG_LOWLEVEL,
		"session=%llu client=%s message over %u bytes: streamed to "
		"queue file %s%s", (unsigned long long)s->id, s->ip,
		(unsigned)stream_hold(s),
		store_draft_id(enqueue_draft_store(s->ed)), s->nsync > 0 ?
		" (its sync recipients are delivered from the queue)" : "");
}

static void stream_pump(struct session *s);

/* A streamed write finished: write on, resume the input, or commit. */
static void
on_streamed(void *arg, int err, uint64_t n)
{
	struct session *s = arg;

	(void)n;
	s->ed_busy = false;
	if (err < 0)
		stream_drop(s, err);
	if (s->ph == PH_WAIT) {
		/* the data has ended: finish what is left */
		if (s->ed != NULL) {
			stream_pump(s);
			return;
		}
		s->waiting = false;
		smtpd__enqueue_failed(s, s->stream_err);
		return;
	}
	stream_pump(s);
	if (s->stalled) {
		stream_resume(s);
		smtpd__process(s);
	}
}

/* Write what waits (all of it once the data ended), then commit. */
static void
stream_pump(struct session *s)
{
	struct buf b;
	int r;

	if (s->ed == NULL || s->ed_busy)
		return;
	if (s->msg.len >= SMTPD_STREAM_CHUNK ||
	    (s->ph == PH_WAIT && s->msg.len > 0)) {
		b = s->msg;
		s->msg = (struct buf)BUF_INIT;
		r = store_draft_write(enqueue_draft_store(s->ed), &b,
			on_streamed, s);
		if (r == 0) {
			s->ed_busy = true;
			return;
		}
		buf_free(&b);
		stream_drop(s, r);
	} else if (s->ph == PH_WAIT) {
		r = enqueue_draft_commit(s->ed, NULL, on_enqueued, s);
		if (r == 0) {
			s->ed = NULL;
			return;
		}
		stream_drop(s, r);
	} else {
		return;
	}
	if (s->ph == PH_WAIT) {
		s->waiting = false;
		smtpd__enqueue_failed(s, s->stream_err);
	}
}

/* After decoding: stream once the message is too large to hold. */
static void
stream_check(struct session *s)
{
	if (s->ed == NULL && !s->dec.done && !s->nomem && s->stream_err == 0 &&
	    s->msg.len >= stream_hold(s))
		stream_open(s);
	stream_pump(s);
}

/* The end of a streamed message: its last bytes, then the commit. */
static void
stream_end(struct session *s)
{
	s->waiting = true;
	s->ph = PH_WAIT;
	uv_timer_stop(&s->timer);
	stream_pump(s);
}

/* The final "." arrived: judge the message, then queue and/or run it. */
static void
data_end(struct session *s)
{
	const char *why = NULL;
	size_t hops;
	int r;

	if (s->dec.bare) {
		log_msg(s->sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
			"session=%llu client=%s bare CR or LF in DATA (SMTP "
			"smuggling?): message refused",
			(unsigned long long)s->id, s->ip);
		smtpd__txn_finish(s, 554, "5.6.0",
			"message refused: bare CR or LF "
			"in the message data (RFC 5321 section 2.3.8)");
		return;
	}
	if (s->dec.too_big) {
		smtpd__txn_finish(s, 552, "5.3.4", "message size exceeds fixed "
			"maximum message size (%llu)", (unsigned long long)
			s->sd->d.cfg->smtp.max_size);
		return;
	}
	if (s->stream_err == -EMSGSIZE) {
		smtpd__txn_finish(s, 552, "5.3.4", "message header exceeds %u "
			"bytes", (unsigned)SMTPD_HEADER_MAX);
		return;
	}
	if (s->stream_err < 0) {
		smtpd__enqueue_failed(s, s->stream_err);
		return;
	}
	if (s->ed != NULL) {
		stream_end(s);
		return;
	}
	if (s->nomem || received(s, &s->full) < 0 ||
	    buf_append(&s->full, s->msg.data ? s->msg.data : "",
	    s->msg.len) < 0) {
		smtpd__txn_finish(s, 452, "4.3.1",
			"insufficient system resources");
		return;
	}
	buf_free(&s->msg);
	/* judged once here: enqueue_judged does not parse it again */
	r = enqueue_judge(s->sd->d.eq, s->full.data, s->full.len, &hops,
		&why);
	if (r == -EINVAL) {
		smtpd__txn_finish(s, 554, "5.6.0",
			"message refused: bad header "
			"(%s)", why ? why : "unparsable");
		return;
	}
	if (r == -ELOOP) {
		smtpd__txn_finish(s, 554, "5.4.6", "too many hops");
		return;
	}
	if (r < 0) {
		smtpd__txn_finish(s, 452, "4.3.1",
			"insufficient system resources");
		return;
	}
	if (s->nrcpt > s->nsync)
		enqueue_part(s);
	else
		smtpd__sync_part(s);
}

/*
 * Consume DATA bytes through the decoder (smtpcodec.h: dot-stuffing
 * undone, CRLF to LF, only CRLF "." CRLF ends the data, a bare CR or LF
 * refuses the message) into s->msg; at the end of the data judge the
 * message, else re-arm the DATA timer.
 */
void
smtpd__data_consume(struct session *s)
{
	const char *p = s->in.data + s->in_off;
	size_t n = s->in.len - s->in_off, used = 0;
	bool keep = !s->nomem && s->stream_err == 0;

	if (s->ed != NULL) {
		if (s->msg.len >= SMTPD_STREAM_AT) {
			/* a write is in flight and as much waits: stall */
			s->stalled = true;
			s->stall_at = uv_now(s->sd->d.loop);
			uv_timer_stop(&s->timer);
			return;
		}
		if (n > SMTPD_STREAM_AT - s->msg.len)
			n = SMTPD_STREAM_AT - s->msg.len;
	}
	if (smtpcodec_decode(&s->dec, p, n, keep ? &s->msg : NULL,
	    &used) < 0) {
		/* keep reading to the end, then answer 452 */
		s->nomem = true;
		stream_drop(s, 0);
		smtpcodec_decode(&s->dec, p, n, NULL, &used);
	}
	s->in_off += used;
	s->data_in += used;
	if (s->dec.bare || s->dec.too_big)
		stream_drop(s, 0);	/* refused: stop keeping it */
	else if (keep && !s->nomem)
		stream_check(s);
	if (s->dec.done)
		data_end(s);
	else
		smtpd__arm_data(s);
}
