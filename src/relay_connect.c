/*
 * relay_connect: a relay session's life. Owns resolving the relay host,
 * connecting to its addresses in turn, the step timer (timeout_s without
 * progress, idle_s), a session's failure (one result for its message's
 * open recipients, or the message handed to another session) and its
 * teardown. Promises: a session is freed only when libuv holds nothing
 * of it; a failure before the session is ready is the host's unless it is
 * our own. Part of relay (relay_int.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "relay_int.h"

/* ------------------------------------------------------------------ */
/* Sessions: teardown.                                                 */

/* Free the session once it is closed and libuv holds nothing of it. */
void
relay__sess_maybe_free(struct rsess *s)
{
	struct relay *r = s->r;

	if (s->st != SS_DEAD || s->pending > 0)
		return;
	LIST_REMOVE(s, link);
	smtpreply_free(&s->rp);
	buf_free(&s->in);
	buf_free(&s->txn_reply);
	free(s->pend);
	free(s->rbuf);
	free(s->fbuf);
	free(s);
	r->nsess--;
	relay__kick(r);
}

/* Free an attempt once both of its callbacks ran. */
static void
conn_maybe_free(struct rconn *c)
{
	struct rsess *s = c->s;

	if (c->open || !c->closed || c->creq_busy)
		return;
	free(c);
	s->pending--;
	relay__sess_maybe_free(s);
}

/* The TCP handle was closed. */
static void
on_conn_closed(uv_handle_t *h)
{
	struct rconn *c = h->data;

	c->closed = true;
	conn_maybe_free(c);
}

/* Close an attempt's handle. */
static void
conn_close(struct rconn *c)
{
	if (!c->open)
		return;
	c->open = false;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* The timer was closed. */
static void
on_timer_closed(uv_handle_t *h)
{
	struct rsess *s = h->data;

	s->pending--;
	relay__sess_maybe_free(s);
}

/* Close everything of the session; its message must have been handed on. */
void
relay__sess_close(struct rsess *s)
{
	struct relay *r = s->r;

	if (s->st == SS_DEAD)
		return;
	if (s->cur) {
		struct rmsg *m = s->cur;

		relay__msg_settle_rest(m, RESULT_DEFERRED, 451, "4.4.2",
		    "relay session closed");
		s->cur = NULL;
		relay__msg_report(m);
	}
	if (s->live) {
		s->live = false;
		r->nlive--;
	}
	s->st = SS_DEAD;
	if (s->timer_open) {
		s->timer_open = false;
		uv_close((uv_handle_t *)&s->timer, on_timer_closed);
	}
	if (s->gai_busy)
		uv_cancel((uv_req_t *)&s->gai);
	if (s->conn) {
		conn_close(s->conn);
		s->conn = NULL;
	}
	relay__file_close(s);
	if (s->tls) {
		tls_conn_free(s->tls);
		s->tls = NULL;
	}
	if (s->ai && !s->gai_busy) {
		uv_freeaddrinfo(s->ai);
		s->ai = s->ai_cur = NULL;
	}
	relay__kick(r);
}

/* Is the session still on its way to the relay's first MAIL? */
static bool
sess_setting_up(const struct rsess *s)
{
	return s->st == SS_RESOLVE || s->st == SS_CONNECT ||
	    s->st == SS_SETUP;
}

/* A 4.3.x failure is our own (memory, the message file), not the host's. */
static bool
status_is_ours(const char *status)
{
	return strncmp(status, "4.3.", 4) == 0;
}

/*
 * Give the message's open recipients one result, then close. A failure
 * before the session is ready (resolve, connect, greeting, EHLO/HELO,
 * TLS after the handshake) is the host's, unless it is one of our own.
 */
void
relay__sess_fail(struct rsess *s, int reply, const char *status,
	const char *fmt, ...)
{
	struct buf t = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	if (s->cur && (s->st == SS_REUSE || s->st == SS_SCANWAIT)) {
		relay__sess_requeue(s, t.data ? t.data : "session failed");
		buf_free(&t);
		return;
	}
	relay__rlog(s->r, LOG_PROBLEMS, "session=%llu dropped: %d %s %s",
	    (unsigned long long)s->id, reply, status,
	    t.data ? t.data : "(out of memory)");
	if (s->cur) {
		struct rmsg *m = s->cur;

		if (sess_setting_up(s) && !status_is_ours(status))
			m->host = RELAY_HOST_DOWN;
		relay__msg_settle_rest(m, relay__class_kind(reply), reply, status,
		    t.data ? t.data : "relay session failed");
		s->cur = NULL;
		relay__msg_report(m);
	}
	buf_free(&t);
	relay__sess_close(s);
}

/*
 * Close the session but give its message, which nothing was tried for
 * yet, to another session (front of the queue).
 */
void
relay__sess_requeue(struct rsess *s, const char *why)
{
	struct relay *r = s->r;
	struct rmsg *m = s->cur;

	relay__rlog(r, LOG_PROBLEMS, "session=%llu dropped before its transaction "
	    "(%s); the message goes to another session",
	    (unsigned long long)s->id, why);
	if (m && !r->closing) {
		s->cur = NULL;
		m->sess = NULL;
		m->where = M_QUEUE;
		TAILQ_INSERT_HEAD(&r->queue, m, link);
	} else if (m) {
		relay__msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.2",
		    "relay client shutting down");
		s->cur = NULL;
		relay__msg_report(m);
	}
	relay__sess_close(s);
}

/* ------------------------------------------------------------------ */
/* Sessions: the step timer.                                           */

/* Arm the timer: `timeout_s` without progress drops the session. */
static void on_timer(uv_timer_t *t);

/* (Re)start the step timer. */
void
relay__sess_arm(struct rsess *s, uint64_t secs)
{
	if (s->timer_open)
		uv_timer_start(&s->timer, on_timer, secs * 1000, 0);
}

/* ------------------------------------------------------------------ */
/* Resolve and connect.                                                */

/* Try the next address of the relay host (defined below). */
static void connect_next(struct rsess *s);

/* The TCP connection was made (or not). */
static void
on_connect(uv_connect_t *req, int status)
{
	struct rconn *c = req->data;
	struct rsess *s = c->s;
	int e;

	c->creq_busy = false;
	if (s->conn != c || s->st != SS_CONNECT) {
		conn_maybe_free(c);
		return;
	}
	if (status < 0) {
		s->last_err = status;
		s->conn = NULL;
		conn_close(c);
		connect_next(s);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if ((e = uv_read_start((uv_stream_t *)&c->tcp, relay__on_alloc,
	    relay__on_read)) < 0) {
		relay__sess_fail(s, 451, "4.4.1", "cannot read from relay %s: %s",
		    s->r->host_port, uv_strerror(e));
		return;
	}
	s->st = SS_SETUP;
	relay__rlog(s->r, LOG_LOWLEVEL, "session=%llu connected to %s (%s)",
	    (unsigned long long)s->id, s->r->host_port, s->addr);
	if (relay__pend_push(s, C_GREET, 0) < 0) {
		relay__sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	relay__sess_arm(s, s->r->s.timeout_s);
}

/* Try the next address of the relay host. */
static void
connect_next(struct rsess *s)
{
	struct relay *r = s->r;
	struct rconn *c;
	int e;

	while (s->ai_cur) {
		struct addrinfo *a = s->ai_cur;

		s->ai_cur = a->ai_next;
		if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
			continue;
		if (uv_ip_name(a->ai_addr, s->addr, sizeof(s->addr)) < 0)
			snprintf(s->addr, sizeof(s->addr), "?");
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			s->last_err = UV_ENOMEM;
			break;
		}
		if ((e = uv_tcp_init(r->loop, &c->tcp)) < 0) {
			free(c);
			s->last_err = e;
			continue;
		}
		c->tcp.data = c;
		c->creq.data = c;
		c->s = s;
		c->open = true;
		s->pending++;
		if ((e = uv_tcp_connect(&c->creq, &c->tcp, a->ai_addr,
		    on_connect)) < 0) {
			s->last_err = e;
			conn_close(c);
			continue;
		}
		c->creq_busy = true;
		s->conn = c;
		s->st = SS_CONNECT;
		relay__sess_arm(s, r->s.timeout_s);
		return;
	}
	if (s->addr[0] && strcmp(s->addr, r->host) != 0)
		relay__sess_fail(s, 451, "4.4.1", "cannot connect to relay %s (%s): "
		    "%s", r->host_port, s->addr, uv_strerror(s->last_err ?
		    s->last_err : UV_EADDRNOTAVAIL));
	else
		relay__sess_fail(s, 451, "4.4.1", "cannot connect to relay %s: %s",
		    r->host_port, uv_strerror(s->last_err ? s->last_err :
		    UV_EADDRNOTAVAIL));
}

/* The relay host was resolved (or not). */
static void
on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct rsess *s = req->data;

	s->gai_busy = false;
	s->pending--;
	if (s->st == SS_DEAD) {
		if (res)
			uv_freeaddrinfo(res);
	} else if (status < 0) {
		if (res)
			uv_freeaddrinfo(res);
		relay__sess_fail(s, 451, "4.4.3", "cannot resolve relay host %s: %s",
		    s->r->host, uv_strerror(status));
	} else {
		s->ai = s->ai_cur = res;
		connect_next(s);
	}
	relay__sess_maybe_free(s);
}

/* No progress for too long (or the idle time is over). */
static void
on_timer(uv_timer_t *t)
{
	struct rsess *s = t->data;
	struct relay *r = s->r;
	struct rconn *c;

	switch (s->st) {
	case SS_RESOLVE:
		relay__sess_fail(s, 451, "4.4.3", "cannot resolve relay host %s: "
		    "timed out after %llus", r->host,
		    (unsigned long long)r->s.timeout_s);
		break;
	case SS_CONNECT:
		c = s->conn;
		s->conn = NULL;
		s->last_err = UV_ETIMEDOUT;
		if (c)
			conn_close(c);
		connect_next(s);
		break;
	case SS_IDLE:
		relay__sess_quit(s);
		break;
	case SS_QUIT:
		relay__sess_close(s);
		break;
	case SS_REUSE:
		relay__sess_requeue(s, "no reply to RSET");
		break;
	case SS_DATA:
		relay__sess_fail(s, 451, "4.4.2", "relay %s timed out: no progress "
		    "sending the message for %llus", r->host_port,
		    (unsigned long long)r->s.timeout_s);
		break;
	case SS_SETUP:
		if (relay__sess_tls_handshaking(s)) {
			relay__sess_tls_failed(s, "timed out");
			break;
		}
		/* FALLTHROUGH */
	case SS_TXN:
		relay__sess_fail(s, 451, "4.4.2", "relay %s timed out waiting for "
		    "the reply to %s (%llus)", r->host_port,
		    s->phead < s->ptail ? relay__cmd_names[s->pend[s->phead].cmd] :
		    "a command", (unsigned long long)r->s.timeout_s);
		break;
	case SS_SCANWAIT:
	case SS_DEAD:
		break;
	}
}

/* A new session for message m. */
void
relay__sess_new(struct relay *r, struct rmsg *m)
{
	struct rsess *s = calloc(1, sizeof(*s));
	struct addrinfo hints;
	int e;

	if (s == NULL || (s->rbuf = malloc(RELAY_CHUNK)) == NULL) {
		free(s);
		relay__msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.0",
		    "out of memory");
		relay__msg_report(m);
		return;
	}
	s->r = r;
	s->id = ++r->next_sid;
	relay__data_init(s);
	LIST_INSERT_HEAD(&r->sessions, s, link);
	r->nsess++;
	s->live = true;
	r->nlive++;
	s->cur = m;
	m->sess = s;
	uv_timer_init(r->loop, &s->timer);
	s->timer.data = s;
	s->timer_open = true;
	s->pending++;
	s->st = SS_RESOLVE;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	s->gai.data = s;
	if ((e = uv_getaddrinfo(r->loop, &s->gai, on_gai, r->host, r->port,
	    &hints)) < 0) {
		relay__sess_fail(s, 451, "4.4.3", "cannot resolve relay host %s: %s",
		    r->host, uv_strerror(e));
		return;
	}
	s->gai_busy = true;
	s->pending++;
	relay__sess_arm(s, r->s.timeout_s);
}
