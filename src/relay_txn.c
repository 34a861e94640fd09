/*
 * relay_txn: one transaction on a relay session. Owns the checks that
 * need no command (8BITMIME, SIZE, SMTPUTF8), the MAIL FROM and RCPT TO
 * lines with their parameters (SIZE, BODY, SMTPUTF8, DSN), pipelined
 * when offered or one by one, the replies turned into per-recipient
 * results, and the transaction's log line. Promises: a 5xx before MAIL
 * defers; every recipient has a final result when the transaction ends;
 * a DSN value goes into a command only when written with xtext's
 * octets. Part of relay (relay_int.h).
 */
#include <errno.h>
#include <string.h>

#include "buf.h"
#include "relay_int.h"

/* True for an xtext value that can go into a command (printable, no
   space). */
static bool
xtext_ok(const char *s)
{
	return s && *s && smtpcodec_xtext_chars(s, strlen(s));
}

/* ------------------------------------------------------------------ */
/* The transaction.                                                    */

/*
 * Turn the relay's reply into results. Before MAIL (greeting, EHLO/HELO)
 * a refusal says nothing about the message: a 5xx there defers (451, the
 * status's class made 4), like Postfix's smtp_skip_5xx_greeting.
 */
void
relay__apply_reply(struct rsess *s, const struct smtpreply *rp, enum cmd c,
	enum scope scope, size_t idx)
{
	struct rmsg *m = s->cur;
	char st[RESULT_STATUS_MAX];
	struct buf rt = BUF_INIT, t = BUF_INIT;
	enum result_kind k = relay__class_kind(rp->code);
	int code = rp->code;
	bool own = true;	/* the result carries the relay's code and
				   status: the text need not repeat them */

	smtpreply_status(rp, st);
	if (k == RESULT_FAILED && (c == C_GREET || c == C_EHLO ||
	    c == C_HELO || c == C_STARTTLS)) {
		k = RESULT_DEFERRED;
		code = 451;
		st[0] = '4';
		own = false;
	}
	smtpreply_text(rp, &rt);
	buf_puts(&t, "relay said:");
	if (own)
		smtpreply_words(rp, st, &t);
	else
		buf_printf(&t, " %s", rt.data ? rt.data : "");
	buf_printf(&t, " (in reply to %s)", relay__cmd_names[c]);
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->done[i] || (scope == TO_ONE && i != idx) ||
		    (scope == TO_ACCEPTED && !m->accepted[i]))
			continue;
		relay__set_result(&m->res[i], k, code, st,
		    t.data ? t.data : "relay said something");
		m->done[i] = true;
	}
	if (scope != TO_ONE) {
		buf_reset(&s->txn_reply);
		buf_puts(&s->txn_reply, rt.data ? rt.data : "");
	}
	buf_free(&rt);
	buf_free(&t);
}

/* Give every open recipient a local result for the whole message. */
static void
txn_settle_all(struct rsess *s, enum result_kind k, int reply,
	const char *status, const char *text)
{
	relay__msg_settle_rest(s->cur, k, reply, status, text);
	buf_reset(&s->txn_reply);
	buf_printf(&s->txn_reply, "%d %s %s", reply, status, text);
}

/* Log the transaction; hand the message back; idle or QUIT. */
void
relay__txn_end(struct rsess *s)
{
	struct relay *r = s->r;
	struct rmsg *m = s->cur;
	size_t nd = 0, nt = 0, nf = 0;
	struct buf b = BUF_INIT;

	relay__msg_settle_rest(m, RESULT_DEFERRED, 451, "4.5.0",
	    "relay gave no final answer");
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->res[i].kind == RESULT_DELIVERED)
			nd++;
		else if (m->res[i].kind == RESULT_DEFERRED)
			nt++;
		else
			nf++;
	}
	if (log_enabled(r->lg, LOG_SMTP, LOG_MAJOR)) {
		buf_puts(&b, "transaction");
		log_kvf(&b, "session", "%llu", (unsigned long long)s->id);
		log_kvf(&b, "from", "<%s>", m->from);
		log_kvf(&b, "rcpts", "%zu", m->nrcpt);
		log_kvf(&b, "accepted", "%zu", s->naccepted);
		log_kvf(&b, "delivered", "%zu", nd);
		log_kvf(&b, "deferred", "%zu", nt);
		log_kvf(&b, "failed", "%zu", nf);
		log_kvf(&b, "size", "%llu",
		    (unsigned long long)m->wire_size);
		log_kv(&b, "reply", s->txn_reply.len ? s->txn_reply.data :
		    "no recipient accepted");
		if (b.data)
			relay__rlog(r, LOG_MAJOR, "%s", b.data);
		buf_free(&b);
	}
	s->cur = NULL;
	relay__msg_report(m);
	s->txns++;
	if (s->phead != s->ptail) {
		relay__sess_close(s);
		return;
	}
	s->st = SS_IDLE;
	if (r->closing) {
		relay__sess_quit(s);
		return;
	}
	/* idle_s 0: on_kick QUITs once nothing waits; timeout_s bounds it */
	relay__sess_arm(s, r->s.idle_s ? r->s.idle_s : r->s.timeout_s);
	relay__kick(r);
}

/* RCPT TO line for recipient i. */
static int
rcpt_add(struct rsess *s, struct buf *b, size_t i)
{
	const struct relay_rcpt *rc = &s->cur->rcpts[i];
	struct buf p = BUF_INIT;
	unsigned n = rc->notify;
	int r = 0;

	if ((s->ext & SMTPREPLY_EXT_DSN) && n) {
		if (n & NOTIFY_NEVER) {
			r = buf_puts(&p, " NOTIFY=NEVER");
		} else {
			const char *sep = " NOTIFY=";

			if (n & NOTIFY_SUCCESS) {
				r = buf_printf(&p, "%sSUCCESS", sep);
				sep = ",";
			}
			if (r == 0 && (n & NOTIFY_FAILURE)) {
				r = buf_printf(&p, "%sFAILURE", sep);
				sep = ",";
			}
			if (r == 0 && (n & NOTIFY_DELAY))
				r = buf_printf(&p, "%sDELAY", sep);
		}
	}
	if (r == 0 && (s->ext & SMTPREPLY_EXT_DSN) && xtext_ok(rc->orcpt))
		r = buf_printf(&p, " ORCPT=%s", rc->orcpt);
	if (r == 0)
		r = relay__cmd_add(s, b, "RCPT TO:<%s>%s", rc->addr,
		    p.data ? p.data : "");
	buf_free(&p);
	return r;
}

/* Without PIPELINING: the next RCPT, then DATA or RSET. */
void
relay__send_next_rcpt(struct rsess *s)
{
	struct rmsg *m = s->cur;
	struct buf b = BUF_INIT;
	int r;

	while (s->next_rcpt < m->nrcpt && m->done[s->next_rcpt])
		s->next_rcpt++;
	if (s->next_rcpt < m->nrcpt) {
		size_t i = s->next_rcpt++;

		if ((r = rcpt_add(s, &b, i)) == 0)
			r = relay__pend_push(s, C_RCPT, i);
	} else if (s->naccepted > 0) {
		if ((r = relay__cmd_add(s, &b, "DATA")) == 0)
			r = relay__pend_push(s, C_DATA, 0);
	} else {
		if ((r = relay__cmd_add(s, &b, "RSET")) == 0)
			r = relay__pend_push(s, C_RSET_END, 0);
	}
	relay__sess_send_batch(s, &b, r);
}

/* Checks that need no command; then MAIL (+ RCPTs + DATA pipelined). */
void
relay__txn_start(struct rsess *s)
{
	struct rmsg *m = s->cur;
	struct buf b = BUF_INIT, t = BUF_INIT;
	int e = 0;

	s->st = SS_TXN;
	s->naccepted = 0;
	s->next_rcpt = 0;
	s->mail_failed = false;
	s->pipelined = (s->ext & SMTPREPLY_EXT_PIPELINING) != 0;
	buf_reset(&s->txn_reply);
	for (size_t i = 0; i < m->nrcpt; i++)
		m->accepted[i] = false;
	if (m->scan_pending) {
		s->st = SS_SCANWAIT;
		uv_timer_stop(&s->timer);
		return;
	}
	if (m->scan_err < 0) {
		buf_printf(&t, "%s: %s", m->scan_why,
		    uv_strerror(m->scan_err));
		txn_settle_all(s, RESULT_DEFERRED, 451, "4.3.0",
		    t.data ? t.data : m->scan_why);
		buf_free(&t);
		relay__txn_end(s);
		return;
	}
	if (m->eightbit && !(s->ext & SMTPREPLY_EXT_8BITMIME)) {
		txn_settle_all(s, RESULT_FAILED, 554, "5.6.3",
		    "conversion required and prohibited: the message holds "
		    "8-bit data and the relay does not offer 8BITMIME");
	} else if ((s->ext & SMTPREPLY_EXT_SIZE) && s->size_max > 0 &&
	    m->wire_size > s->size_max) {
		buf_printf(&t, "message size %llu exceeds the relay's limit "
		    "of %llu bytes", (unsigned long long)m->wire_size,
		    (unsigned long long)s->size_max);
		txn_settle_all(s, RESULT_FAILED, 552, "5.3.4",
		    t.data ? t.data : "message too big for the relay");
		buf_free(&t);
	} else if (m->utf8_from && !(s->ext & SMTPREPLY_EXT_SMTPUTF8)) {
		txn_settle_all(s, RESULT_FAILED, 550, "5.6.7",
		    "non-ASCII return-path and the relay does not offer "
		    "SMTPUTF8");
	} else if (!(s->ext & SMTPREPLY_EXT_SMTPUTF8)) {
		for (size_t i = 0; i < m->nrcpt; i++)
			if (!m->done[i] && m->utf8_rcpt[i]) {
				relay__set_result(&m->res[i], RESULT_FAILED, 553,
				    "5.6.7", "non-ASCII address and the "
				    "relay does not offer SMTPUTF8");
				m->done[i] = true;
			}
	}
	if (!relay__msg_open(m)) {
		relay__txn_end(s);
		return;
	}

	bool utf8 = m->utf8_from;

	for (size_t i = 0; i < m->nrcpt; i++)
		utf8 = utf8 || (!m->done[i] && m->utf8_rcpt[i]);
	e = buf_printf(&t, "MAIL FROM:<%s>", m->from);
	if (e == 0 && (s->ext & SMTPREPLY_EXT_SIZE))
		e = buf_printf(&t, " SIZE=%llu",
		    (unsigned long long)m->wire_size);
	if (e == 0 && m->eightbit && (s->ext & SMTPREPLY_EXT_8BITMIME))
		e = buf_puts(&t, " BODY=8BITMIME");
	if (e == 0 && utf8 && (s->ext & SMTPREPLY_EXT_SMTPUTF8))
		e = buf_puts(&t, " SMTPUTF8");
	if (e == 0 && (s->ext & SMTPREPLY_EXT_DSN) && m->ret)
		e = buf_printf(&t, " RET=%s", m->ret);
	if (e == 0 && (s->ext & SMTPREPLY_EXT_DSN) && xtext_ok(m->envid))
		e = buf_printf(&t, " ENVID=%s", m->envid);
	if (e == 0)
		e = relay__cmd_add(s, &b, "%s", t.data);
	if (e == 0)
		e = relay__pend_push(s, C_MAIL, 0);
	for (size_t i = 0; e == 0 && s->pipelined && i < m->nrcpt; i++) {
		if (m->done[i])
			continue;
		if ((e = rcpt_add(s, &b, i)) == 0)
			e = relay__pend_push(s, C_RCPT, i);
	}
	if (e == 0 && s->pipelined && (e = relay__cmd_add(s, &b, "DATA")) == 0)
		e = relay__pend_push(s, C_DATA, 0);
	buf_free(&t);
	relay__sess_send_batch(s, &b, e);
}
