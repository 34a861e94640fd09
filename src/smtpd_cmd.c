/*
 * smtpd_cmd: SMTP commands (see smtpd.h, docs/SMTP.md). Owns taking
 * command lines from the input (line length limit, PIPELINING order),
 * each command's checks and reply (HELO/EHLO, MAIL, RCPT with its
 * routing decision, DATA, STARTTLS, ...), the bad-command and
 * junk-command limits, and the loop that handles what is complete in the
 * input. Promises: replies in command order; a RCPT is accepted only
 * once routed. Part of smtpd (smtpd_int.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "smtpcmd.h"
#include "smtpd_int.h"

/* ------------------------------------------------------------------ */
/* Commands */

/* A reply to a bad command: counted; past max-errors the session ends. */
static void __attribute__((format(printf, 4, 5)))
bad(struct session *s, int code, const char *status, const char *fmt, ...)
{
	struct buf t = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&t, fmt, ap) < 0)
		s->failed = true;
	va_end(ap);
	smtpd__reply(s, code, status, "%s", t.data ? t.data : "");
	log_msg(s->sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
		"session=%llu client=%s bad command: %03d %s %s",
		(unsigned long long)s->id, s->ip, code, status,
		t.data ? t.data : "");
	buf_free(&t);
	if (++s->errors > s->sd->d.cfg->smtp.max_errors) {
		smtpd__reply(s, 421, "4.7.0",
			"%s too many errors, closing connection",
			smtpd__host(s));
		smtpd__session_end(s, "too many errors");
	}
}

/*
 * NOOP, RSET, VRFY, HELP: counted until a message is accepted; past
 * max-junk-commands the command is answered 421 and the session ends.
 */
static bool
junk(struct session *s)
{
	if (++s->junk <= s->sd->d.cfg->smtp.max_junk_commands)
		return false;
	smtpd__reply(s, 421, "4.7.0",
		"%s too many junk commands, closing connection",
		smtpd__host(s));
	smtpd__session_end(s, "too many junk commands");
	return true;
}

/* Is s printable ASCII (space allowed), and not empty? */
static bool
printable(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* HELO / EHLO: a new session state; EHLO lists the extensions. */
static void
cmd_helo(struct session *s, struct smtp_cmd *c)
{
	const struct config *cfg = s->sd->d.cfg;
	bool starttls = s->sd->d.tls != NULL && s->tls == NULL;

	if (!printable(c->arg)) {
		bad(s, 501, "5.5.4", "bad %s argument",
			smtp_verb_name(c->verb));
		return;
	}
	smtpd__txn_reset(s);
	free(s->helo);
	s->helo = c->arg;
	c->arg = NULL;
	s->esmtp = c->verb == SMTP_EHLO;
	if (!s->esmtp) {
		smtpd__reply_more(s, 250, false, "%s", smtpd__host(s));
		return;
	}
	smtpd__reply_more(s, 250, true, "%s", smtpd__host(s));
	smtpd__reply_more(s, 250, true, "SIZE %llu",
		(unsigned long long)cfg->smtp.max_size);
	smtpd__reply_more(s, 250, true, "PIPELINING");
	smtpd__reply_more(s, 250, true, "8BITMIME");
	smtpd__reply_more(s, 250, true, "ENHANCEDSTATUSCODES");
	smtpd__reply_more(s, 250, starttls, "DSN");
	if (starttls)
		smtpd__reply_more(s, 250, false, "STARTTLS");
}

/* MAIL FROM: starts a transaction. */
static void
cmd_mail(struct session *s, struct smtp_cmd *c)
{
	const struct config *cfg = s->sd->d.cfg;

	if (s->helo == NULL) {
		bad(s, 503, "5.5.1", "send HELO or EHLO first");
		return;
	}
	if (s->has_mail) {
		bad(s, 503, "5.5.1", "nested MAIL command");
		return;
	}
	if (c->has_size && c->size > cfg->smtp.max_size) {
		smtpd__reply(s, 552, "5.3.4",
			"message size exceeds fixed maximum "
			"message size (%llu)",
			(unsigned long long)cfg->smtp.max_size);
		return;
	}
	s->from = c->path ? c->path : strdup("");
	c->path = NULL;
	s->ret = c->ret;
	c->ret = NULL;
	s->envid = c->envid;
	c->envid = NULL;
	if (s->from == NULL) {
		s->failed = true;
		return;
	}
	s->has_mail = true;
	smtpd__reply(s, 250, "2.1.0", "sender <%s> ok", s->from);
}

/* The recipient, qualified (an unqualified RCPT TO:<postmaster>). */
static char *
qualify(const struct session *s, const char *path)
{
	const char *dom = s->sd->d.router->default_domain;
	struct buf b = BUF_INIT;
	char *out = NULL;

	if (strchr(path, '@'))
		return strdup(path);
	if (buf_printf(&b, "%s@%s", path, dom ? dom : smtpd__host(s)) == 0)
		buf_steal(&b, &out);
	buf_free(&b);
	return out;
}

/* Add an accepted recipient (strings moved in). */
static int
add_rcpt(struct session *s, char *addr, struct smtp_cmd *c,
	const struct transport *tr, const struct route *rt)
{
	struct txn_rcpt *x;
	int r;

	if (s->nrcpt == s->rcpt_cap) {
		size_t cap = s->rcpt_cap ? s->rcpt_cap * 2 : 8;
		struct txn_rcpt *v = realloc(s->rcpt, cap * sizeof(*v));

		if (v == NULL) {
			free(addr);
			return -ENOMEM;
		}
		s->rcpt = v;
		s->rcpt_cap = cap;
	}
	x = &s->rcpt[s->nrcpt];
	memset(x, 0, sizeof(*x));
	x->addr = addr;
	x->orcpt = c->orcpt;
	c->orcpt = NULL;
	x->notify = c->notify;
	x->sync = tr;
	s->nrcpt++;
	if (tr == NULL)
		return 0;
	s->nsync++;
	if ((x->routed = strdup(rt->address ? rt->address : addr)) == NULL)
		return -ENOMEM;
	r = smtp_original_recipient(addr, x->orcpt, &x->orig);
	return r;
}

/* RCPT TO: route the address now; refuse what must be refused. */
static void
cmd_rcpt(struct session *s, struct smtp_cmd *c)
{
	const struct smtpd_deps *d = &s->sd->d;
	struct router_ctx rc;
	struct route rt = ROUTE_INIT;
	const struct transport *tr = NULL;
	int code = 0;
	const char *status = NULL, *text = NULL;
	char *addr;

	if (!s->has_mail) {
		bad(s, 503, "5.5.1", "need MAIL before RCPT");
		return;
	}
	if (s->nrcpt >= d->cfg->smtp.max_recipients) {
		smtpd__reply(s, 452, "4.5.3", "too many recipients");
		return;
	}
	if ((addr = qualify(s, c->path ? c->path : "")) == NULL) {
		s->failed = true;
		return;
	}
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (strcmp(s->rcpt[i].addr, addr) == 0) {
			smtpd__reply(s, 250, "2.1.5",
				"recipient <%s> ok (duplicate)",
				addr);
			free(addr);
			return;
		}
	}
	rc = *d->router;
	rc.direct_pipe_allowed = false;
	if (router_route(&rc, addr, &rt) < 0) {
		smtpd__reply(s, 451, "4.3.0", "local error: out of memory");
		free(addr);
		route_free(&rt);
		return;
	}
	switch (rt.kind) {
	case ROUTE_REFUSED:
		if (!s->async || strcmp(rt.status, "5.7.1") == 0)
			code = rt.reply;
		break;
	case ROUTE_RELAY:
	case ROUTE_NO_RELAY:
		if (rt.rule_line == 0 && !s->trusted) {
			code = 550;
			status = "5.7.1";
			text = "relaying denied";
		} else if (rt.kind == ROUTE_NO_RELAY && !s->async) {
			code = rt.reply;
		}
		break;
	case ROUTE_ERROR:
	case ROUTE_UNKNOWN:
		if (!s->async)
			code = rt.reply;
		break;
	case ROUTE_TRANSPORT:
		tr = d->transports ? transport_find(d->transports,
			rt.transport) : NULL;
		if (tr == NULL) {
			code = 451;
			status = "4.3.5";
			text = "transport is not configured";
		} else if (tr->conf->mode != TRANSPORT_SYNC) {
			tr = NULL;
		}
		break;
	case ROUTE_PIPE:
	case ROUTE_NULL:
		break;
	}
	if (code == 0 && tr == NULL && store_full(d->store)) {
		code = 452;
		status = "4.3.1";
		text = "insufficient system storage: queue full";
	}
	if (code != 0) {
		if (status == NULL) {
			status = rt.status[0] ? rt.status : "5.0.0";
			text = rt.text ? rt.text : "recipient refused";
		}
		log_msg(d->log, LOG_SMTPI, LOG_PROBLEMS,
			"session=%llu client=%s rcpt <%s> refused: %d %s %s",
			(unsigned long long)s->id, s->ip, addr, code, status,
			text);
		smtpd__reply(s, code, status, "<%s>: %s", addr, text);
		free(addr);
		route_free(&rt);
		return;
	}
	if (add_rcpt(s, addr, c, tr, &rt) < 0)
		s->failed = true;
	else
		smtpd__reply(s, 250, "2.1.5", "recipient <%s> ok",
			s->rcpt[s->nrcpt - 1].addr);
	route_free(&rt);
}

/* DATA: 354 and read the message. */
static void
cmd_data(struct session *s)
{
	if (!s->has_mail) {
		bad(s, 503, "5.5.1", "need MAIL before DATA");
		return;
	}
	if (s->nrcpt == 0) {
		smtpd__reply(s, 554, "5.5.1", "no valid recipients");
		return;
	}
	smtpd__reply(s, 354, NULL, "end data with <CR><LF>.<CR><LF>");
	s->ph = PH_DATA;
	smtpcodec_dec_init(&s->dec, s->sd->d.cfg->smtp.max_size);
	s->nomem = false;
	s->data_in = 0;
	s->data_start = uv_now(s->sd->d.loop);
	s->data_deadline = smtpd__ms_after(s->data_start,
		s->sd->d.cfg->smtp.data_timeout_s);
	smtpd__arm_data(s);
}

/* STARTTLS: 220, drop what was sent after it, and start over in TLS. */
static void
cmd_starttls(struct session *s)
{
	struct tls_conn *conn = NULL;

	if (s->sd->d.tls == NULL) {
		bad(s, 502, "5.5.1", "command not implemented");
		return;
	}
	if (s->tls) {
		bad(s, 503, "5.5.1", "TLS already active");
		return;
	}
	if (s->helo == NULL) {
		bad(s, 503, "5.5.1", "send EHLO first");
		return;
	}
	if (s->has_mail) {
		/* RFC 3207: STARTTLS starts over; not inside a transaction */
		bad(s, 503, "5.5.1", "STARTTLS inside a mail transaction; "
			"send RSET first");
		return;
	}
	if (tls_conn_new(s->sd->d.tls, true, NULL, &conn) < 0) {
		smtpd__reply(s, 454, "4.7.0",
			"TLS not available due to temporary "
			"reason");
		return;
	}
	smtpd__reply(s, 220, "2.0.0", "ready to start TLS");
	smtpd__flush(s);
	if (s->killed) {
		tls_conn_free(conn);
		return;
	}
	if (s->in.len > s->in_off)
		log_msg(s->sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
			"session=%llu client=%s %zu bytes sent after STARTTLS "
			"discarded (CVE-2011-0411)", (unsigned long long)s->id,
			s->ip, s->in.len - s->in_off);
	s->in_off = s->in.len;
	s->tls = conn;
	smtpd__txn_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
}

/* Handle one command line (len bytes, no line end). */
static void
command(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd c = SMTP_CMD_INIT;
	struct smtp_err e = { 500, "5.5.1", "syntax error" };
	int r = smtp_cmd_parse(line, len, &c, &e);

	if (r == -EINVAL) {
		bad(s, e.code, e.status, "%s", e.text);
		return;
	}
	if (r < 0) {
		smtpd__reply(s, 451, "4.3.0", "local error: %s", strerror(-r));
		return;
	}
	log_msg(s->sd->d.log, LOG_SMTPI, LOG_ALL, "session=%llu command %s",
		(unsigned long long)s->id, smtp_verb_name(c.verb));
	if ((c.verb == SMTP_NOOP || c.verb == SMTP_RSET ||
	    c.verb == SMTP_VRFY || c.verb == SMTP_HELP) && junk(s)) {
		smtp_cmd_free(&c);
		return;
	}
	switch (c.verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		cmd_helo(s, &c);
		break;
	case SMTP_MAIL:
		cmd_mail(s, &c);
		break;
	case SMTP_RCPT:
		cmd_rcpt(s, &c);
		break;
	case SMTP_DATA:
		cmd_data(s);
		break;
	case SMTP_RSET:
		smtpd__txn_reset(s);
		smtpd__reply(s, 250, "2.0.0", "ok");
		break;
	case SMTP_NOOP:
		smtpd__reply(s, 250, "2.0.0", "ok");
		break;
	case SMTP_QUIT:
		smtpd__reply(s, 221, "2.0.0", "%s closing connection",
			smtpd__host(s));
		smtpd__session_end(s, "quit");
		break;
	case SMTP_VRFY:
		smtpd__reply(s, 252, "2.5.2",
			"cannot VRFY user, but will accept "
			"message and attempt delivery");
		break;
	case SMTP_HELP:
		smtpd__reply(s, 214, "2.0.0",
			"commands: HELO EHLO MAIL RCPT DATA "
			"RSET NOOP QUIT VRFY HELP%s; see RFC 5321",
			s->sd->d.tls ? " STARTTLS" : "");
		break;
	case SMTP_STARTTLS:
		cmd_starttls(s);
		break;
	case SMTP_EXPN:
	case SMTP_BDAT:
	case SMTP_AUTH:
		bad(s, 502, "5.5.1", "command not implemented");
		break;
	}
	smtp_cmd_free(&c);
}

/* Take one command line from the input; false when none is complete. */
static bool
next_line(struct session *s)
{
	char *p = s->in.data + s->in_off, *lf;
	size_t avail = s->in.len - s->in_off, len;

	lf = memchr(p, '\n', avail);
	if (lf == NULL) {
		if (avail >= SMTPD_LINE_MAX) {
			s->discarding = true;
			s->in_off = s->in.len;
		}
		return false;
	}
	len = (size_t)(lf - p);
	s->in_off += len + 1;
	s->line_seen = true;
	if (s->discarding || len + 1 > SMTPD_LINE_MAX) {
		s->discarding = false;
		bad(s, 500, "5.5.2", "line too long (more than %d octets)",
			SMTPD_LINE_MAX);
		return true;
	}
	if (len > 0 && p[len - 1] == '\r')
		len--;
	command(s, p, len);
	return true;
}

/*
 * Handle everything complete in the input, in order, queueing the
 * replies (PIPELINING); stop when a step must wait (commit, sync
 * programs, output backlog); then send the replies.
 */
void
smtpd__process(struct session *s)
{
	if (s->processing || s->killed)
		return;
	s->processing = true;
	while (!s->killed && !s->failed && !s->waiting && !s->paused &&
	    !s->stalled && s->ph != PH_CLOSING && s->ph != PH_WAIT &&
	    s->in_off < s->in.len) {
		if (s->ph == PH_DATA) {
			smtpd__data_consume(s);
			continue;
		}
		if (!next_line(s))
			break;
		if (s->out.len > SMTPD_OUT_MAX / 4)
			smtpd__flush(s);
		if (!s->killed && s->tcp.write_queue_size > SMTPD_OUT_MAX)
			s->paused = true;
	}
	if (s->line_seen) {
		/* a command was taken: the next one has idle-timeout */
		s->line_seen = false;
		if (!s->killed && s->ph == PH_CMD)
			smtpd__arm_idle(s);
	}
	smtpd__compact(s);
	if (s->failed && !s->killed)
		smtpd__session_kill(s, "out of memory");
	smtpd__flush(s);
	if (!s->killed && s->eof && s->ph == PH_CMD && !s->paused)
		smtpd__session_end(s, "client closed the connection");
	if (!s->killed)
		smtpd__update_reading(s);
	s->processing = false;
}
