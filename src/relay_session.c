/*
 * relay_session: the relay session's state machine. Owns what each reply
 * means: the greeting, EHLO (HELO as a fallback) and its keywords,
 * STARTTLS (and its backoff after a failed handshake), RSET before a
 * reused session's next message, and the transaction: the checks that
 * need no command (8BITMIME, SIZE, SMTPUTF8), MAIL/RCPT/DATA (pipelined
 * when offered), the replies turned into per-recipient results, and the
 * transaction's log line. Promises: a 5xx before MAIL defers; every
 * recipient has a final result when the transaction ends. Part of relay
 * (relay_int.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "relay_int.h"

/* ------------------------------------------------------------------ */
/* Small helpers.                                                      */

/* What each command is called in results and log lines. */
const char *const cmd_names[] = {
	[C_GREET] = "the greeting", [C_EHLO] = "EHLO", [C_HELO] = "HELO",
	[C_STARTTLS] = "STARTTLS", [C_RSET_REUSE] = "RSET",
	[C_MAIL] = "MAIL FROM", [C_RCPT] = "RCPT TO", [C_DATA] = "DATA",
	[C_DOT] = "end of DATA", [C_DOT_IGNORE] = "end of DATA",
	[C_RSET_END] = "RSET",
};


/* True for an xtext value that can go into a command (printable, no
   space). */
static bool
xtext_ok(const char *s)
{
	return s && *s && smtpcodec_xtext_chars(s, strlen(s));
}

/* Where a reply's result goes. */
enum scope { TO_ONE, TO_REST, TO_ACCEPTED };

/* ------------------------------------------------------------------ */
/* The transaction.                                                    */

/*
 * Turn the relay's reply into results. Before MAIL (greeting, EHLO/HELO)
 * a refusal says nothing about the message: a 5xx there defers (451, the
 * status's class made 4), like Postfix's smtp_skip_5xx_greeting.
 */
static void
apply_reply(struct rsess *s, const struct smtpreply *rp, enum cmd c,
	enum scope scope, size_t idx)
{
	struct rmsg *m = s->cur;
	char st[RESULT_STATUS_MAX];
	struct buf rt = BUF_INIT, t = BUF_INIT;
	enum result_kind k = class_kind(rp->code);
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
	buf_printf(&t, " (in reply to %s)", cmd_names[c]);
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->done[i] || (scope == TO_ONE && i != idx) ||
		    (scope == TO_ACCEPTED && !m->accepted[i]))
			continue;
		set_result(&m->res[i], k, code, st,
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
	msg_settle_rest(s->cur, k, reply, status, text);
	buf_reset(&s->txn_reply);
	buf_printf(&s->txn_reply, "%d %s %s", reply, status, text);
}

/* Log the transaction; hand the message back; idle or QUIT. */
static void
txn_end(struct rsess *s)
{
	struct relay *r = s->r;
	struct rmsg *m = s->cur;
	size_t nd = 0, nt = 0, nf = 0;
	struct buf b = BUF_INIT;

	msg_settle_rest(m, RESULT_DEFERRED, 451, "4.5.0",
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
			rlog(r, LOG_MAJOR, "%s", b.data);
		buf_free(&b);
	}
	s->cur = NULL;
	msg_report(m);
	s->txns++;
	if (s->phead != s->ptail) {
		sess_close(s);
		return;
	}
	s->st = SS_IDLE;
	if (r->closing) {
		sess_quit(s);
		return;
	}
	/* idle_s 0: on_kick QUITs once nothing waits; timeout_s bounds it */
	sess_arm(s, r->s.idle_s ? r->s.idle_s : r->s.timeout_s);
	kick(r);
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
		r = cmd_add(s, b, "RCPT TO:<%s>%s", rc->addr,
		    p.data ? p.data : "");
	buf_free(&p);
	return r;
}

/* Without PIPELINING: the next RCPT, then DATA or RSET. */
static void
send_next_rcpt(struct rsess *s)
{
	struct rmsg *m = s->cur;
	struct buf b = BUF_INIT;
	int r;

	while (s->next_rcpt < m->nrcpt && m->done[s->next_rcpt])
		s->next_rcpt++;
	if (s->next_rcpt < m->nrcpt) {
		size_t i = s->next_rcpt++;

		if ((r = rcpt_add(s, &b, i)) == 0)
			r = pend_push(s, C_RCPT, i);
	} else if (s->naccepted > 0) {
		if ((r = cmd_add(s, &b, "DATA")) == 0)
			r = pend_push(s, C_DATA, 0);
	} else {
		if ((r = cmd_add(s, &b, "RSET")) == 0)
			r = pend_push(s, C_RSET_END, 0);
	}
	sess_send_batch(s, &b, r);
}

/* Checks that need no command; then MAIL (+ RCPTs + DATA pipelined). */
void
txn_start(struct rsess *s)
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
		txn_end(s);
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
				set_result(&m->res[i], RESULT_FAILED, 553,
				    "5.6.7", "non-ASCII address and the "
				    "relay does not offer SMTPUTF8");
				m->done[i] = true;
			}
	}
	if (!msg_open(m)) {
		txn_end(s);
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
		e = cmd_add(s, &b, "%s", t.data);
	if (e == 0)
		e = pend_push(s, C_MAIL, 0);
	for (size_t i = 0; e == 0 && s->pipelined && i < m->nrcpt; i++) {
		if (m->done[i])
			continue;
		if ((e = rcpt_add(s, &b, i)) == 0)
			e = pend_push(s, C_RCPT, i);
	}
	if (e == 0 && s->pipelined && (e = cmd_add(s, &b, "DATA")) == 0)
		e = pend_push(s, C_DATA, 0);
	buf_free(&t);
	sess_send_batch(s, &b, e);
}

/* ------------------------------------------------------------------ */
/* Replies.                                                            */

/* The connection line, once the session is set up. */
static void
sess_log_connected(struct rsess *s)
{
	struct relay *r = s->r;
	struct buf b = BUF_INIT, x = BUF_INIT;

	if (s->logged || !log_enabled(r->lg, LOG_SMTP, LOG_MAJOR))
		return;
	s->logged = true;
	if (s->ext & SMTPREPLY_EXT_PIPELINING)
		buf_puts(&x, "PIPELINING,");
	if (s->ext & SMTPREPLY_EXT_SIZE)
		buf_printf(&x, "SIZE=%llu,", (unsigned long long)s->size_max);
	if (s->ext & SMTPREPLY_EXT_8BITMIME)
		buf_puts(&x, "8BITMIME,");
	if (s->ext & SMTPREPLY_EXT_STARTTLS)
		buf_puts(&x, "STARTTLS,");
	if (s->ext & SMTPREPLY_EXT_DSN)
		buf_puts(&x, "DSN,");
	if (s->ext & SMTPREPLY_EXT_ENHANCED)
		buf_puts(&x, "ENHANCEDSTATUSCODES,");
	if (s->ext & SMTPREPLY_EXT_SMTPUTF8)
		buf_puts(&x, "SMTPUTF8,");
	if (x.len)
		x.data[--x.len] = '\0';
	buf_puts(&b, "connected");
	log_kvf(&b, "session", "%llu", (unsigned long long)s->id);
	log_kv(&b, "relay", r->host_port);
	log_kv(&b, "addr", s->addr);
	log_kv(&b, "esmtp", s->esmtp ? "yes" : "no");
	if (s->tls_on) {
		log_kv(&b, "tls", tls_version(s->tls));
		log_kv(&b, "cipher", tls_cipher(s->tls));
		log_kv(&b, "verified", "no");
	} else {
		log_kv(&b, "tls", "no");
	}
	log_kv(&b, "ext", x.len ? x.data : "none");
	if (b.data)
		rlog(r, LOG_MAJOR, "%s", b.data);
	buf_free(&b);
	buf_free(&x);
}

/* Greeting and EHLO/HELO done (with TLS when it was offered). */
static void
sess_ready(struct rsess *s)
{
	s->cur->host = RELAY_HOST_UP;
	sess_log_connected(s);
	txn_start(s);
}

/* Remember the EHLO keywords. */
static void
parse_ext(struct rsess *s, const struct smtpreply *rp)
{
	struct smtpreply_ehlo e;

	smtpreply_ehlo(rp, &e);
	s->ext = e.ext;
	s->size_max = e.size_max;
}

/* The session's name for us in EHLO/HELO. */
static void
send_ehlo(struct rsess *s, bool ehlo)
{
	sess_cmd(s, ehlo ? C_EHLO : C_HELO, 0, "%s %s", ehlo ? "EHLO" :
	    "HELO", s->r->helo);
}

/* Was the TLS handshake going on (then the next session goes without)? */
bool
sess_tls_handshaking(const struct rsess *s)
{
	return s->tls_on && !tls_established(s->tls);
}

/* The handshake failed: no STARTTLS for a while, retry the message. */
void
sess_tls_failed(struct rsess *s, const char *why)
{
	struct relay *r = s->r;

	rlog(r, LOG_PROBLEMS, "session=%llu TLS handshake with relay %s "
	    "failed: %s; no STARTTLS for %us", (unsigned long long)s->id,
	    r->host_port, why, RELAY_TLS_BACKOFF_MS / 1000);
	r->tls_off_until = uv_now(r->loop) + RELAY_TLS_BACKOFF_MS;
	sess_requeue(s, "TLS handshake failed");
}

/* 220 to STARTTLS: forget the plaintext, start TLS, EHLO again. */
static void
start_tls(struct rsess *s)
{
	struct relay *r = s->r;
	const char *sni = r->host;
	unsigned char a[16];
	int e;

	buf_reset(&s->in);
	s->in_reset = true;
	if (inet_pton(AF_INET, sni, a) == 1 || inet_pton(AF_INET6, sni,
	    a) == 1)
		sni = NULL;
	if ((e = tls_conn_new(r->tls, false, sni, &s->tls)) < 0) {
		s->tls = NULL;
		sess_tls_failed(s, strerror(-e));
		return;
	}
	s->tls_on = true;
	rlog(r, LOG_LOWLEVEL, "session=%llu starting TLS",
	    (unsigned long long)s->id);
	if (sess_tls_pump_in(s) < 0)
		return;
	send_ehlo(s, true);
}

/* A whole reply arrived for the oldest command we wait for. */
void
handle_reply(struct rsess *s, struct smtpreply *rp)
{
	struct relay *r = s->r;
	struct rmsg *m = s->cur;
	struct pend p;
	int cls = rp->code / 100;

	if (s->st == SS_IDLE || s->st == SS_QUIT) {
		rlog(r, LOG_LOWLEVEL, "session=%llu relay spoke while idle "
		    "(%d); closing", (unsigned long long)s->id, rp->code);
		sess_close(s);
		return;
	}
	if (s->phead == s->ptail || m == NULL) {
		struct buf t = BUF_INIT;

		smtpreply_text(rp, &t);
		sess_fail(s, 451, "4.5.0", "relay %s protocol error: "
		    "unexpected reply: %s", r->host_port,
		    t.data ? t.data : "");
		buf_free(&t);
		return;
	}
	p = s->pend[s->phead++];
	if (s->phead == s->ptail)
		s->phead = s->ptail = 0;
	if (rp->code == 421 && p.cmd == C_RSET_REUSE) {
		sess_requeue(s, "421 to RSET");
		return;
	}
	if (rp->code == 421 || (cls != 2 && cls != 3 && cls != 4 &&
	    cls != 5)) {
		if (rp->code == 421) {
			m->host = RELAY_HOST_DOWN;	/* at any point */
			apply_reply(s, rp, p.cmd, TO_REST, 0);
		} else {
			struct buf t = BUF_INIT;

			smtpreply_text(rp, &t);
			sess_fail(s, 451, "4.5.0", "relay %s protocol error: "
			    "reply %s to %s", r->host_port,
			    t.data ? t.data : "", cmd_names[p.cmd]);
			buf_free(&t);
			return;
		}
		s->cur = NULL;
		msg_report(m);
		sess_close(s);
		return;
	}
	switch (p.cmd) {
	case C_GREET:
		if (cls == 2) {
			send_ehlo(s, true);
			return;
		}
		break;
	case C_EHLO:
		if (cls == 2) {
			s->esmtp = true;
			parse_ext(s, rp);
			if ((s->ext & SMTPREPLY_EXT_STARTTLS) && r->tls &&
			    !s->tls_on && uv_now(r->loop) >= r->tls_off_until)
				sess_cmd(s, C_STARTTLS, 0, "STARTTLS");
			else
				sess_ready(s);
			return;
		}
		if (cls == 5) {
			send_ehlo(s, false);
			return;
		}
		break;
	case C_HELO:
		if (cls == 2) {
			s->esmtp = false;
			s->ext = 0;
			s->size_max = 0;
			sess_ready(s);
			return;
		}
		break;
	case C_STARTTLS:
		if (cls == 2) {
			start_tls(s);
		} else {
			rlog(r, LOG_PROBLEMS, "session=%llu relay %s refused "
			    "STARTTLS (%d); going on without TLS",
			    (unsigned long long)s->id, r->host_port,
			    rp->code);
			sess_ready(s);
		}
		return;
	case C_RSET_REUSE:
		if (cls == 2) {
			m->host = RELAY_HOST_UP;
			txn_start(s);
		}
		else
			sess_requeue(s, "RSET refused");
		return;
	case C_MAIL:
		if (cls == 2) {
			if (!s->pipelined)
				send_next_rcpt(s);
			return;
		}
		if (cls == 3)
			break;
		s->mail_failed = true;
		apply_reply(s, rp, C_MAIL, TO_REST, 0);
		if (!s->pipelined)
			txn_end(s);
		return;
	case C_RCPT:
		if (!s->mail_failed) {
			if (cls == 2) {
				m->accepted[p.idx] = true;
				s->naccepted++;
			} else if (cls == 3) {
				break;
			} else {
				apply_reply(s, rp, C_RCPT, TO_ONE, p.idx);
			}
		}
		if (!s->pipelined)
			send_next_rcpt(s);
		return;
	case C_DATA:
		if (cls == 3) {
			if (s->mail_failed || s->naccepted == 0)
				sess_cmd(s, C_DOT_IGNORE, 0, ".");
			else
				data_start(s);
			return;
		}
		if (s->mail_failed || s->naccepted == 0) {
			txn_end(s);
			return;
		}
		if (cls == 2)
			break;
		apply_reply(s, rp, C_DATA, TO_ACCEPTED, 0);
		txn_end(s);
		return;
	case C_DOT:
		if (cls == 3)
			break;
		apply_reply(s, rp, C_DOT, TO_ACCEPTED, 0);
		txn_end(s);
		return;
	case C_DOT_IGNORE:
	case C_RSET_END:
		txn_end(s);
		return;
	}
	/* A 4xx/5xx before the transaction, or a reply that makes no sense. */
	if ((cls == 4 || cls == 5) && (p.cmd == C_GREET || p.cmd == C_EHLO ||
	    p.cmd == C_HELO)) {
		m->host = RELAY_HOST_DOWN;
		apply_reply(s, rp, p.cmd, TO_REST, 0);
		s->cur = NULL;
		msg_report(m);
		sess_close(s);
		return;
	}

	struct buf t = BUF_INIT;

	smtpreply_text(rp, &t);
	sess_fail(s, 451, "4.5.0", "relay %s protocol error: reply %s to %s",
	    r->host_port, t.data ? t.data : "", cmd_names[p.cmd]);
	buf_free(&t);
}

/* ------------------------------------------------------------------ */
/* Reuse.                                                              */

/* Give an idle session the next message: RSET first. */
void
sess_reuse(struct rsess *s, struct rmsg *m)
{
	s->cur = m;
	m->sess = s;
	s->st = SS_REUSE;
	sess_cmd(s, C_RSET_REUSE, 0, "RSET");
}
