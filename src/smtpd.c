/*
 * smtpd: the ESMTP listener (see smtpd.h, docs/SMTP.md). Owns the listening
 * sockets and every session (buffers, transaction, TLS state, timer).
 * Promises replies in command order, 250 after DATA only once the queue file
 * is durable or the sync programs succeeded, and bounded sessions. Never
 * touches the disk itself (the enqueuer does), never exits.
 *
 * This file: the listeners, accepting connections (max-connections,
 * max-connections-per-client), start and stop. The sessions are in
 * smtpd_io.c (bytes, timers), smtpd_cmd.c (commands), smtpd_data.c (the
 * transaction and DATA) and smtpd_sync.c (sync transports); smtpd_int.h
 * holds what they share.
 */
#include "smtpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "enqueue.h"
#include "log.h"
#include "smtpd_int.h"
#include "strv.h"
#include "text.h"

/* ------------------------------------------------------------------ */
/* Listeners and connections */

/* Nothing left open after smtpd_stop: tell the caller. */
void
smtpd__maybe_stopped(struct smtpd *sd)
{
	if (!sd->stopping || sd->stop_called || sd->handles > 0 ||
	    sd->nsessions > 0)
		return;
	sd->stop_called = true;
	if (sd->stopped_cb)
		sd->stopped_cb(sd->stopped_arg);
}

/* A refused connection's handle closed. */
static void
on_reject_closed(uv_handle_t *h)
{
	struct reject *rj = h->data;
	struct smtpd *sd = rj->sd;

	free(rj);
	sd->handles--;
	smtpd__maybe_stopped(sd);
}

/* Over max-connections: 421 and close at once. */
static void
reject_conn(struct smtpd *sd, uv_stream_t *server)
{
	struct reject *rj = calloc(1, sizeof(*rj));
	struct buf t = BUF_INIT;
	uv_buf_t b;

	if (rj == NULL) {
		log_msg(sd->d.log, LOG_SMTPI, LOG_FAILURES,
			"out of memory: cannot accept a connection");
		return;
	}
	rj->sd = sd;
	uv_tcp_init(sd->d.loop, &rj->h);
	rj->h.data = rj;
	sd->handles++;
	if (uv_accept(server, (uv_stream_t *)&rj->h) == 0 &&
	    buf_printf(&t, "421 4.7.0 %s too many connections, try again "
	    "later\r\n", sd->d.cfg->server.hostname) == 0) {
		b = uv_buf_init(t.data, (unsigned)t.len);
		uv_try_write((uv_stream_t *)&rj->h, &b, 1);
		log_msg(sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
			"connection refused: %u sessions open "
			"(max-connections)", sd->nsessions);
	}
	buf_free(&t);
	uv_close((uv_handle_t *)&rj->h, on_reject_closed);
}

/*
 * Has the client of s (not trusted) max-connections-per-client sessions
 * open already? Sessions are few (max-connections): a scan is enough.
 */
static bool
client_over_limit(const struct smtpd *sd, const struct session *s,
	unsigned *open)
{
	unsigned limit = sd->d.cfg->smtp.max_connections_per_client;
	const struct session *o;

	*open = 0;
	if (limit == 0 || s->trusted || !s->keyed)
		return false;
	TAILQ_FOREACH(o, &sd->sessions, link)
		if (o != s && o->keyed && !o->refused &&
		    memcmp(o->ckey, s->ckey, sizeof(s->ckey)) == 0)
			(*open)++;
	return *open >= limit;
}

/* Fill the session's client address fields from the socket. */
static void
peer_address(struct session *s)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	const struct sockaddr *sa = (const struct sockaddr *)&ss;

	snprintf(s->ip, sizeof(s->ip), "unknown");
	memset(&ss, 0, sizeof(ss));
	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			s->ip, sizeof(s->ip));
	} else if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a =
			&((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			inet_ntop(AF_INET, &a->s6_addr[12], s->ip,
				sizeof(s->ip));
		} else {
			inet_ntop(AF_INET6, a, s->ip, sizeof(s->ip));
			s->v6 = true;
		}
	}
	s->trusted = s->sd->d.trusted && cidr_list_match(s->sd->d.trusted,
		sa);
	s->keyed = cidr_client_key(sa, s->ckey) == 0;
}

/*
 * A new connection: a session, or a 421 over max-connections or (once the
 * client's address is known) max-connections-per-client.
 */
static void
on_connection(uv_stream_t *server, int status)
{
	struct listener *l = server->data;
	struct smtpd *sd = l->sd;
	struct session *s;
	unsigned open;

	if (status < 0) {
		log_msg(sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
			"accept failed: %s", uv_strerror(status));
		return;
	}
	if (sd->nsessions >= sd->d.cfg->smtp.max_connections ||
	    (s = calloc(1, sizeof(*s))) == NULL) {
		reject_conn(sd, server);
		return;
	}
	s->sd = sd;
	s->id = sd->next_id++;
	uv_tcp_init(sd->d.loop, &s->tcp);
	uv_timer_init(sd->d.loop, &s->timer);
	s->tcp.data = s->timer.data = s;
	s->handles = 2;
	TAILQ_INSERT_TAIL(&sd->sessions, s, link);
	sd->nsessions++;
	if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0) {
		smtpd__session_kill(s, "accept failed");
		return;
	}
	peer_address(s);
	if (client_over_limit(sd, s, &open)) {
		s->refused = true;
		log_msg(sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
			"connection refused: client=%s has %u sessions open "
			"(max-connections-per-client)", s->ip, open);
		smtpd__reply(s, 421, "4.7.0",
			"%s too many connections from your "
			"address, try again later", smtpd__host(s));
		smtpd__flush(s);
		smtpd__session_kill(s, "too many connections from this client");
		return;
	}
	/* no SMTP AUTH: every SMTP client is unauthenticated */
	s->async = enqueue_async_applies(sd->d.cfg->smtp.enqueue_async, false,
		s->trusted);
	uv_tcp_nodelay(&s->tcp, 1);
	log_msg(sd->d.log, LOG_SMTPI, LOG_MAJOR,
		"session=%llu client=%s connected (trusted=%s, sessions=%u)",
		(unsigned long long)s->id, s->ip, s->trusted ? "yes" : "no",
		sd->nsessions);
	smtpd__reply(s, 220, NULL, "%s ESMTP mailpipe", smtpd__host(s));
	smtpd__arm_idle(s);
	smtpd__process(s);
}

/* Parse "a.b.c.d:port" or "[v6]:port" into ss. */
static int
parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char *h = NULL, *end = NULL;
	const char *colon;
	unsigned long port;
	int r = -EINVAL;

	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') {
		const char *rb = strchr(text, ']');

		if (rb == NULL || rb[1] != ':')
			return -EINVAL;
		h = text_strndup(text + 1, (size_t)(rb - text - 1));
		colon = rb + 1;
	} else {
		if ((colon = strrchr(text, ':')) == NULL)
			return -EINVAL;
		h = text_strndup(text, (size_t)(colon - text));
	}
	if (h == NULL)
		return -ENOMEM;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno ||
	    port == 0 || port > 65535) {
		free(h);
		return -EINVAL;
	}
	if (text[0] == '[') {
		if (uv_ip6_addr(h, (int)port, (struct sockaddr_in6 *)ss) == 0) {
			*len = sizeof(struct sockaddr_in6);
			r = 0;
		}
	} else if (uv_ip4_addr(h, (int)port, (struct sockaddr_in *)ss) == 0) {
		struct in_addr probe;

		if (inet_pton(AF_INET, h, &probe) == 1) {
			*len = sizeof(struct sockaddr_in);
			r = 0;
		}
	}
	free(h);
	return r;
}

/* Bind and listen on one address (the socket is ours until uv_tcp_open). */
static int
bind_one(const char *text, int *fdp)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int fd, one = 1, r;

	if ((r = parse_listen(text, &ss, &len)) < 0)
		return r;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, SMTPD_BACKLOG) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*fdp = fd;
	return 0;
}

/* A listener's handle closed. */
static void
on_listener_closed(uv_handle_t *h)
{
	struct listener *l = h->data;
	struct smtpd *sd = l->sd;

	sd->handles--;
	smtpd__maybe_stopped(sd);
}

/* Bind every listen address (see smtpd.h). */
int
smtpd_bind(const struct strv *lv, struct logger *lg, int **out)
{
	int *fds, r = 0;

	*out = NULL;
	if ((fds = calloc(lv->n ? lv->n : 1, sizeof(*fds))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < lv->n; i++)
		fds[i] = -1;
	for (size_t i = 0; i < lv->n && r == 0; i++) {
		if ((r = bind_one(lv->v[i], &fds[i])) < 0)
			log_msg(lg, LOG_SMTPI, LOG_FAILURES,
				"cannot listen on %s: %s", lv->v[i],
				r == -EINVAL ? "not an IPv4 address or a "
				"bracketed IPv6 address with a port" :
				strerror(-r));
	}
	if (r < 0) {
		for (size_t i = 0; i < lv->n; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		free(fds);
		return r;
	}
	*out = fds;
	return 0;
}

/* Take the bound sockets (or bind them now) and wrap them. */
int
smtpd_open(const struct smtpd_deps *d, struct smtpd **out)
{
	const struct strv *lv = &d->cfg->smtp.listen;
	struct smtpd *sd;
	int *fds = d->listen_fds, r = 0;

	*out = NULL;
	if (fds == NULL && (r = smtpd_bind(lv, d->log, &fds)) < 0)
		return r;
	if ((sd = calloc(1, sizeof(*sd))) == NULL ||
	    (lv->n > 0 && (sd->ls = calloc(lv->n, sizeof(*sd->ls))) == NULL)) {
		for (size_t i = 0; i < lv->n; i++)
			close(fds[i]);
		free(fds);
		free(sd);
		return -ENOMEM;
	}
	sd->d = *d;
	sd->d.listen_fds = NULL;
	sd->next_id = 1;
	TAILQ_INIT(&sd->sessions);
	for (size_t i = 0; i < lv->n; i++) {
		struct listener *l = &sd->ls[i];
		int e;

		uv_tcp_init(d->loop, &l->h);
		l->h.data = l;
		l->sd = sd;
		l->open = true;
		sd->handles++;
		sd->nls++;
		if ((e = uv_tcp_open(&l->h, fds[i])) < 0) {
			close(fds[i]);
			log_msg(d->log, LOG_SMTPI, LOG_FAILURES,
				"cannot listen on %s: %s", lv->v[i],
				uv_strerror(e));
			if (r == 0)
				r = e;
		}
	}
	free(fds);
	if (r < 0) {
		/* the handles exist: close them; sd goes with the last one */
		smtpd_stop(sd, NULL, NULL);
		return r;
	}
	*out = sd;
	return 0;
}

/* Start accepting connections. */
int
smtpd_start(struct smtpd *sd)
{
	const struct strv *lv = &sd->d.cfg->smtp.listen;
	int r;

	if (sd->started || sd->stopping)
		return sd->started ? 0 : -ECANCELED;
	for (size_t i = 0; i < sd->nls; i++) {
		if ((r = uv_listen((uv_stream_t *)&sd->ls[i].h, SMTPD_BACKLOG,
		    on_connection)) < 0) {
			log_msg(sd->d.log, LOG_SMTPI, LOG_FAILURES,
				"cannot listen on %s: %s", lv->v[i],
				uv_strerror(r));
			return r;
		}
		log_msg(sd->d.log, LOG_SMTPI, LOG_MAJOR, "listening on %s",
			lv->v[i]);
	}
	sd->started = true;
	return 0;
}

/* Stop listening; idle sessions get 421, busy ones finish first. */
void
smtpd_stop(struct smtpd *sd, smtpd_stopped_cb cb, void *arg)
{
	struct session *s;

	if (sd == NULL) {
		if (cb)
			cb(arg);
		return;
	}
	sd->stopping = true;
	sd->stopped_cb = cb;
	sd->stopped_arg = arg;
	for (size_t i = 0; i < sd->nls; i++) {
		if (sd->ls[i].open) {
			sd->ls[i].open = false;
			uv_close((uv_handle_t *)&sd->ls[i].h,
				on_listener_closed);
		}
	}
	TAILQ_FOREACH(s, &sd->sessions, link) {
		if (s->killed || s->ph != PH_CMD)
			continue;
		smtpd__reply(s, 421, "4.3.2", "%s service shutting down",
			smtpd__host(s));
		smtpd__session_end(s, "server shutting down");
	}
	smtpd__maybe_stopped(sd);
}

/* Free the listener; only after the stopped callback. */
void
smtpd_close(struct smtpd *sd)
{
	if (sd == NULL)
		return;
	free(sd->ls);
	free(sd);
}

/* Sessions open now. */
unsigned
smtpd_sessions(const struct smtpd *sd)
{
	return sd ? sd->nsessions : 0;
}
