/*
 * relay: the SMTP client for [smtp] relay-host (docs/RELAY.md). This file
 * owns the interface (relay.h), the message objects, the FIFO of messages
 * waiting for a session and the dispatch to sessions; the sessions live in
 * relay_connect.c (resolve, connect, timer, teardown), relay_io.c (the
 * bytes on the connection), relay_session.c (EHLO/HELO, STARTTLS, the
 * transaction) and relay_data.c (the message: its scan and its DATA
 * stream). Promises: every relay_send is answered exactly once, from the
 * loop, one result per recipient; no file I/O on the loop thread; nothing
 * is freed while libuv holds it. Never blocks, never exits, never changes
 * queue state.
 */
#include "relay.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay_int.h"
#include "text.h"

/* ------------------------------------------------------------------ */
/* Small helpers.                                                      */

/* Log when a logger was given. */
void
relay__rlog(const struct relay *r, enum log_level l, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(r->lg, LOG_SMTP, l))
		return;
	va_start(ap, fmt);
	log_vmsg(r->lg, LOG_SMTP, l, fmt, ap);
	va_end(ap);
}

/* True when s holds an octet >= 0x80. */
static bool
has_8bit(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Fill a result; on allocation failure keep kind, code and status. */
void
relay__set_result(struct result *res, enum result_kind kind, int reply,
	const char *status, const char *text)
{
	if (result_set(res, kind, reply, status, "%s", text) == 0)
		return;
	free(res->text);
	res->text = NULL;
	res->kind = kind;
	res->reply = reply;
	snprintf(res->status, sizeof(res->status), "%s", status);
}

/* The result kind of a reply code's class. */
enum result_kind
relay__class_kind(int code)
{
	return code / 100 == 2 ? RESULT_DELIVERED : code / 100 == 4 ?
	    RESULT_DEFERRED : RESULT_FAILED;
}

/* Start the kick timer: reports and dispatch run from the loop. */
static void on_kick(uv_timer_t *t);

/* Make on_kick run soon. */
void
relay__kick(struct relay *r)
{
	if (!r->kick_closed)
		uv_timer_start(&r->kick, on_kick, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Messages.                                                           */

/* Free a message. */
static void
msg_free(struct rmsg *m)
{
	struct relay *r = m->r;

	for (size_t i = 0; i < m->nrcpt; i++) {
		free((char *)m->rcpts[i].addr);
		free((char *)m->rcpts[i].orcpt);
		result_clear(&m->res[i]);
	}
	free(m->rcpts);
	free(m->res);
	free(m->done);
	free(m->accepted);
	free(m->utf8_rcpt);
	free(m->from);
	free(m->ret);
	free(m->envid);
	free(m->input_path);
	free(m->input_mem);
	free(m);
	r->nmsg--;
	if (r->closing)
		relay__kick(r);
}

/* Free the message once its callback ran and no scan holds it. */
void
relay__msg_maybe_free(struct rmsg *m)
{
	if (m->reported && !m->scan_pending && m->where == M_NONE)
		msg_free(m);
}

/* Queue the callback of a message (every result is final). */
void
relay__msg_report(struct rmsg *m)
{
	struct relay *r = m->r;

	if (m->where == M_QUEUE)
		TAILQ_REMOVE(&r->queue, m, link);
	if (m->where == M_DONE)
		return;
	m->sess = NULL;
	m->where = M_DONE;
	TAILQ_INSERT_TAIL(&r->done, m, link);
	relay__kick(r);
}

/* Give every recipient without a final result this one. */
void
relay__msg_settle_rest(struct rmsg *m, enum result_kind kind, int reply,
	const char *status, const char *text)
{
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->done[i])
			continue;
		relay__set_result(&m->res[i], kind, reply, status, text);
		m->done[i] = true;
	}
}

/* Any recipient still without a final result? */
bool
relay__msg_open(const struct rmsg *m)
{
	for (size_t i = 0; i < m->nrcpt; i++)
		if (!m->done[i])
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Dispatch: the FIFO to the sessions.                                 */

/*
 * Hand waiting messages to idle sessions, or open new ones, in FIFO order;
 * a message still being scanned lets those behind it pass (its scan's end
 * kicks again), so an unreadable file never opens a connection.
 */
static void
dispatch(struct relay *r)
{
	struct rmsg *m, *next;

	for (m = TAILQ_FIRST(&r->queue); !r->closing && m; m = next) {
		struct rsess *s, *idle = NULL;

		next = TAILQ_NEXT(m, link);
		if (m->scan_pending)
			continue;
		if (!relay__msg_open(m)) {
			relay__msg_report(m);
			continue;
		}
		LIST_FOREACH(s, &r->sessions, link)
			if (s->st == SS_IDLE) {
				idle = s;
				break;
			}
		if (idle == NULL && r->nlive >= r->s.connections)
			break;
		TAILQ_REMOVE(&r->queue, m, link);
		m->where = M_NONE;
		if (idle)
			relay__sess_reuse(idle, m);
		else
			relay__sess_new(r, m);
	}
}

/* The kick timer was closed: the relay is gone. */
static void
on_kick_closed(uv_handle_t *h)
{
	struct relay *r = h->data;
	relay_closed_cb cb = r->ccb;
	void *arg = r->carg;

	free(r->host_port);
	free(r->helo);
	free(r->host);
	free(r->port);
	free(r);
	if (cb)
		cb(arg);
}

/* After relay_close: free when nothing is left. */
static void
close_check(struct relay *r)
{
	if (!r->closing || r->in_kick || r->kick_closed || r->nsess > 0 ||
	    r->nmsg > 0 || !TAILQ_EMPTY(&r->done))
		return;
	r->kick_closed = true;
	uv_timer_stop(&r->kick);
	uv_close((uv_handle_t *)&r->kick, on_kick_closed);
}

/*
 * idle_s 0, after dispatch: QUIT the idle sessions when no message waits
 * (one still being scanned keeps them: its scan's end kicks again).
 */
static void
idle_quit(struct relay *r)
{
	struct rsess *s, *next;

	if (r->s.idle_s > 0 || r->closing || !TAILQ_EMPTY(&r->queue))
		return;
	for (s = LIST_FIRST(&r->sessions); s; s = next) {
		next = LIST_NEXT(s, link);
		if (s->st == SS_IDLE)
			relay__sess_quit(s);
	}
}

/* Run the callbacks of answered messages, then dispatch. */
static void
on_kick(uv_timer_t *t)
{
	struct relay *r = t->data;
	struct rmsg *m;

	r->in_kick = true;
	while ((m = TAILQ_FIRST(&r->done)) != NULL) {
		TAILQ_REMOVE(&r->done, m, link);
		m->where = M_NONE;
		m->reported = true;
		r->active--;
		m->cb(m->arg, m->res, m->nrcpt, m->host);
		relay__msg_maybe_free(m);
	}
	dispatch(r);
	idle_quit(r);
	r->in_kick = false;
	close_check(r);
}

/* ------------------------------------------------------------------ */
/* The interface.                                                      */

/* Split "host:port" / "[v6]:port" / "host" (port 25). */
static int
split_host_port(const char *hp, char **host, char **port)
{
	const char *h = hp, *hend, *rest;

	if (hp[0] == '[') {
		h = hp + 1;
		if ((hend = strchr(h, ']')) == NULL)
			return -EINVAL;
		rest = hend + 1;
	} else {
		const char *colon = strchr(hp, ':');

		if (colon && strchr(colon + 1, ':'))
			return -EINVAL;
		hend = colon ? colon : hp + strlen(hp);
		rest = hend;
	}
	if (hend == h || (*rest && (*rest != ':' || rest[1] == '\0' ||
	    strspn(rest + 1, "0123456789") != strlen(rest + 1))))
		return -EINVAL;
	*host = text_strndup(h, (size_t)(hend - h));
	*port = text_strdup(*rest ? rest + 1 : "25");
	return *host && *port ? 0 : -ENOMEM;
}

/* Open the relay client; see relay.h. */
int
relay_open(uv_loop_t *loop, const struct relay_settings *s,
	struct tls_ctx *tls, struct logger *lg, struct relay **out)
{
	struct relay *r;
	int e;

	*out = NULL;
	if (s == NULL || s->host_port == NULL || s->host_port[0] == '\0' ||
	    text_str_has_ctl(s->host_port) || text_str_has_ctl(s->helo))
		return -EINVAL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -ENOMEM;
	r->loop = loop;
	r->s = *s;
	r->tls = tls;
	r->lg = lg;
	TAILQ_INIT(&r->queue);
	TAILQ_INIT(&r->done);
	LIST_INIT(&r->sessions);
	e = split_host_port(s->host_port, &r->host, &r->port);
	if (e == 0 && ((r->host_port = text_strdup(s->host_port)) == NULL ||
	    (r->helo = text_strdup(s->helo && s->helo[0] ? s->helo :
	    "localhost")) == NULL))
		e = -ENOMEM;
	if (e == 0)
		e = uv_timer_init(loop, &r->kick);
	if (e < 0) {
		free(r->host);
		free(r->port);
		free(r->host_port);
		free(r->helo);
		free(r);
		return e;
	}
	r->kick.data = r;
	r->s.host_port = r->host_port;
	r->s.helo = r->helo;
	if (r->s.connections == 0)
		r->s.connections = 1;
	if (r->s.timeout_s == 0)
		r->s.timeout_s = RELAY_TIMEOUT_DEFAULT_S;
	if (r->s.timeout_s > UINT32_MAX)
		r->s.timeout_s = UINT32_MAX;
	if (r->s.idle_s > UINT32_MAX)
		r->s.idle_s = UINT32_MAX;
	*out = r;
	return 0;
}

/* Copy what relay_send was given; -ENOMEM leaves nothing behind. */
static int
msg_copy(struct rmsg *m, const struct relay_msg *mm)
{
	size_t n = mm->nrcpt;

	if ((m->rcpts = calloc(n, sizeof(*m->rcpts))) == NULL ||
	    (m->res = calloc(n, sizeof(*m->res))) == NULL ||
	    (m->done = calloc(n, sizeof(bool))) == NULL ||
	    (m->accepted = calloc(n, sizeof(bool))) == NULL ||
	    (m->utf8_rcpt = calloc(n, sizeof(bool))) == NULL)
		return -ENOMEM;
	m->nrcpt = n;
	if ((m->from = text_strdup(mm->from ? mm->from : "")) == NULL)
		return -ENOMEM;
	if (mm->ret && (strcasecmp(mm->ret, "FULL") == 0 ||
	    strcasecmp(mm->ret, "HDRS") == 0) &&
	    (m->ret = text_strdup(toupper((unsigned char)mm->ret[0]) == 'F' ?
	    "FULL" : "HDRS")) == NULL)
		return -ENOMEM;
	if (mm->envid && (m->envid = text_strdup(mm->envid)) == NULL)
		return -ENOMEM;
	if (mm->input_path && (m->input_path =
	    text_strdup(mm->input_path)) == NULL)
		return -ENOMEM;
	m->input_off = mm->input_off;
	m->input_len = mm->input_len;
	if (mm->input_path == NULL && mm->input_len > 0) {
		if ((m->input_mem = malloc((size_t)mm->input_len)) == NULL)
			return -ENOMEM;
		memcpy(m->input_mem, mm->input_mem, (size_t)mm->input_len);
	}
	for (size_t i = 0; i < n; i++) {
		const struct relay_rcpt *rc = &mm->rcpts[i];

		m->rcpts[i].notify = rc->notify;
		if ((m->rcpts[i].addr = text_strdup(rc->addr ? rc->addr :
		    "")) == NULL || (rc->orcpt && (m->rcpts[i].orcpt =
		    text_strdup(rc->orcpt)) == NULL))
			return -ENOMEM;
	}
	return 0;
}

/* Queue one message; see relay.h. */
int
relay_send(struct relay *r, const struct relay_msg *mm, relay_done_cb cb,
	void *arg)
{
	struct rmsg *m;
	int e;

	if (r->closing)
		return -ESHUTDOWN;
	if (mm == NULL || cb == NULL || mm->rcpts == NULL || mm->nrcpt == 0 ||
	    (mm->input_path == NULL && mm->input_len > 0 &&
	    mm->input_mem == NULL))
		return -EINVAL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -ENOMEM;
	m->r = r;
	m->cb = cb;
	m->arg = arg;
	r->nmsg++;
	if ((e = msg_copy(m, mm)) < 0) {
		if (m->res == NULL || m->rcpts == NULL || m->done == NULL ||
		    m->accepted == NULL || m->utf8_rcpt == NULL)
			m->nrcpt = 0;
		m->reported = true;
		msg_free(m);
		return e;
	}
	m->where = M_QUEUE;
	TAILQ_INSERT_TAIL(&r->queue, m, link);
	r->active++;

	/* Values that cannot go into a command fail at once. */
	if (text_str_has_ctl(m->from))
		relay__msg_settle_rest(m, RESULT_FAILED, 553, "5.1.7",
		    "the return-path holds a control character");
	m->utf8_from = has_8bit(m->from);
	for (size_t i = 0; i < m->nrcpt; i++) {
		const char *a = m->rcpts[i].addr;

		m->utf8_rcpt[i] = has_8bit(a);
		if (!m->done[i] && (a[0] == '\0' || text_str_has_ctl(a))) {
			relay__set_result(&m->res[i], RESULT_FAILED, 553, "5.1.3",
			    "the recipient address is empty or holds a "
			    "control character");
			m->done[i] = true;
		}
	}

	if (m->input_path && m->input_len > 0) {
		m->work.data = m;
		if ((e = uv_queue_work(r->loop, &m->work, relay__scan_work,
		    relay__after_scan)) < 0) {
			relay__msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.0",
			    "cannot read the message: cannot start the scan");
		} else {
			m->scan_pending = true;
		}
	} else {
		relay__scan_msg(m, NULL);	/* memory: nothing blocks */
	}
	if (!relay__msg_open(m))
		relay__msg_report(m);
	relay__kick(r);
	return 0;
}

/* The relay host as configured. */
const char *
relay_destination(const struct relay *r)
{
	return r->host_port;
}

/* Messages queued or in a transaction. */
unsigned
relay_active(const struct relay *r)
{
	return r ? r->active : 0;
}

/* Defer what waits, QUIT idle sessions, free when all is closed. */
void
relay_close(struct relay *r, relay_closed_cb cb, void *arg)
{
	struct rmsg *m;
	struct rsess *s;

	if (r == NULL) {
		if (cb)
			cb(arg);
		return;
	}
	if (r->closing)
		return;
	r->closing = true;
	r->ccb = cb;
	r->carg = arg;
	while ((m = TAILQ_FIRST(&r->queue)) != NULL) {
		relay__msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.2",
		    "relay client shutting down");
		relay__msg_report(m);
	}
	LIST_FOREACH(s, &r->sessions, link)
		if (s->st == SS_IDLE)
			relay__sess_quit(s);
	relay__kick(r);
}
