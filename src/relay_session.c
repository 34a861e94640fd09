/*
 * relay_session: the relay session's state machine. Owns what each reply
 * means for the command it answers: the greeting, EHLO (HELO as a
 * fallback) and its keywords, STARTTLS (and its backoff after a failed
 * handshake), RSET before a reused session's next message, and the
 * replies of the transaction (relay_txn.c sends its commands and makes
 * the results); a 421 or a reply that makes no sense ends the session.
 * Also the connection line. Promises: one reply per command waited for,
 * in order; nothing the relay sends out of turn is taken as an answer.
 * Part of relay (relay_int.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "relay_int.h"

/* ------------------------------------------------------------------ */
/* Command names.                                                      */

/* What each command is called in results and log lines. */
const char *const relay__cmd_names[] = {
	[C_GREET] = "the greeting", [C_EHLO] = "EHLO", [C_HELO] = "HELO",
	[C_STARTTLS] = "STARTTLS", [C_RSET_REUSE] = "RSET",
	[C_MAIL] = "MAIL FROM", [C_RCPT] = "RCPT TO", [C_DATA] = "DATA",
	[C_DOT] = "end of DATA", [C_DOT_IGNORE] = "end of DATA",
	[C_RSET_END] = "RSET",
};

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
		relay__rlog(r, LOG_MAJOR, "%s", b.data);
	buf_free(&b);
	buf_free(&x);
}

/* Greeting and EHLO/HELO done (with TLS when it was offered). */
static void
sess_ready(struct rsess *s)
{
	s->cur->host = RELAY_HOST_UP;
	sess_log_connected(s);
	relay__txn_start(s);
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
	relay__sess_cmd(s, ehlo ? C_EHLO : C_HELO, 0, "%s %s", ehlo ? "EHLO" :
	    "HELO", s->r->helo);
}

/* Was the TLS handshake going on (then the next session goes without)? */
bool
relay__sess_tls_handshaking(const struct rsess *s)
{
	return s->tls_on && !tls_established(s->tls);
}

/* The handshake failed: no STARTTLS for a while, retry the message. */
void
relay__sess_tls_failed(struct rsess *s, const char *why)
{
	struct relay *r = s->r;

	relay__rlog(r, LOG_PROBLEMS, "session=%llu TLS handshake with relay %s "
	    "failed: %s; no STARTTLS for %us", (unsigned long long)s->id,
	    r->host_port, why, RELAY_TLS_BACKOFF_MS / 1000);
	r->tls_off_until = uv_now(r->loop) + RELAY_TLS_BACKOFF_MS;
	relay__sess_requeue(s, "TLS handshake failed");
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
		relay__sess_tls_failed(s, strerror(-e));
		return;
	}
	s->tls_on = true;
	relay__rlog(r, LOG_LOWLEVEL, "session=%llu starting TLS",
	    (unsigned long long)s->id);
	if (relay__sess_tls_pump_in(s) < 0)
		return;
	send_ehlo(s, true);
}

/* A whole reply arrived for the oldest command we wait for. */
void
relay__handle_reply(struct rsess *s, struct smtpreply *rp)
{
	struct relay *r = s->r;
	struct rmsg *m = s->cur;
	struct pend p;
	int cls = rp->code / 100;

	if (s->st == SS_IDLE || s->st == SS_QUIT) {
		relay__rlog(r, LOG_LOWLEVEL, "session=%llu relay spoke while idle "
		    "(%d); closing", (unsigned long long)s->id, rp->code);
		relay__sess_close(s);
		return;
	}
	if (s->phead == s->ptail || m == NULL) {
		struct buf t = BUF_INIT;

		smtpreply_text(rp, &t);
		relay__sess_fail(s, 451, "4.5.0", "relay %s protocol error: "
		    "unexpected reply: %s", r->host_port,
		    t.data ? t.data : "");
		buf_free(&t);
		return;
	}
	p = s->pend[s->phead++];
	if (s->phead == s->ptail)
		s->phead = s->ptail = 0;
	if (rp->code == 421 && p.cmd == C_RSET_REUSE) {
		relay__sess_requeue(s, "421 to RSET");
		return;
	}
	if (rp->code == 421 || (cls != 2 && cls != 3 && cls != 4 &&
	    cls != 5)) {
		if (rp->code == 421) {
			m->host = RELAY_HOST_DOWN;	/* at any point */
			relay__apply_reply(s, rp, p.cmd, TO_REST, 0);
		} else {
			struct buf t = BUF_INIT;

			smtpreply_text(rp, &t);
			relay__sess_fail(s, 451, "4.5.0", "relay %s protocol error: "
			    "reply %s to %s", r->host_port,
			    t.data ? t.data : "", relay__cmd_names[p.cmd]);
			buf_free(&t);
			return;
		}
		s->cur = NULL;
		relay__msg_report(m);
		relay__sess_close(s);
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
				relay__sess_cmd(s, C_STARTTLS, 0, "STARTTLS");
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
			relay__rlog(r, LOG_PROBLEMS, "session=%llu relay %s refused "
			    "STARTTLS (%d); going on without TLS",
			    (unsigned long long)s->id, r->host_port,
			    rp->code);
			sess_ready(s);
		}
		return;
	case C_RSET_REUSE:
		if (cls == 2) {
			m->host = RELAY_HOST_UP;
			relay__txn_start(s);
		}
		else
			relay__sess_requeue(s, "RSET refused");
		return;
	case C_MAIL:
		if (cls == 2) {
			if (!s->pipelined)
				relay__send_next_rcpt(s);
			return;
		}
		if (cls == 3)
			break;
		s->mail_failed = true;
		relay__apply_reply(s, rp, C_MAIL, TO_REST, 0);
		if (!s->pipelined)
			relay__txn_end(s);
		return;
	case C_RCPT:
		if (!s->mail_failed) {
			if (cls == 2) {
				m->accepted[p.idx] = true;
				s->naccepted++;
			} else if (cls == 3) {
				break;
			} else {
				relay__apply_reply(s, rp, C_RCPT, TO_ONE, p.idx);
			}
		}
		if (!s->pipelined)
			relay__send_next_rcpt(s);
		return;
	case C_DATA:
		if (cls == 3) {
			if (s->mail_failed || s->naccepted == 0)
				relay__sess_cmd(s, C_DOT_IGNORE, 0, ".");
			else
				relay__data_start(s);
			return;
		}
		if (s->mail_failed || s->naccepted == 0) {
			relay__txn_end(s);
			return;
		}
		if (cls == 2)
			break;
		relay__apply_reply(s, rp, C_DATA, TO_ACCEPTED, 0);
		relay__txn_end(s);
		return;
	case C_DOT:
		if (cls == 3)
			break;
		relay__apply_reply(s, rp, C_DOT, TO_ACCEPTED, 0);
		relay__txn_end(s);
		return;
	case C_DOT_IGNORE:
	case C_RSET_END:
		relay__txn_end(s);
		return;
	}
	/* A 4xx/5xx before the transaction, or a reply that makes no sense. */
	if ((cls == 4 || cls == 5) && (p.cmd == C_GREET || p.cmd == C_EHLO ||
	    p.cmd == C_HELO)) {
		m->host = RELAY_HOST_DOWN;
		relay__apply_reply(s, rp, p.cmd, TO_REST, 0);
		s->cur = NULL;
		relay__msg_report(m);
		relay__sess_close(s);
		return;
	}

	struct buf t = BUF_INIT;

	smtpreply_text(rp, &t);
	relay__sess_fail(s, 451, "4.5.0", "relay %s protocol error: reply %s to %s",
	    r->host_port, t.data ? t.data : "", relay__cmd_names[p.cmd]);
	buf_free(&t);
}

/* ------------------------------------------------------------------ */
/* Reuse.                                                              */

/* Give an idle session the next message: RSET first. */
void
relay__sess_reuse(struct rsess *s, struct rmsg *m)
{
	s->cur = m;
	m->sess = s;
	s->st = SS_REUSE;
	relay__sess_cmd(s, C_RSET_REUSE, 0, "RSET");
}
