/*
 * relay_io: the bytes on a relay session's connection. Owns writes
 * (plaintext or through TLS), command batches and the queue of replies
 * they wait for, QUIT, reading, TLS input and splitting replies into
 * lines for relay_session.c. Promises: every write owns its bytes until
 * libuv is done with them; a reply line longer than SMTPREPLY_MAX fails
 * the session. Part of relay (relay_int.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "relay_int.h"

/* ------------------------------------------------------------------ */
/* Sessions: output.                                                   */

/* A write finished. */
static void
on_write(uv_write_t *req, int status)
{
	struct rwrite *w = (struct rwrite *)req;
	struct rsess *s = w->s;
	bool data_phase = w->data_phase;

	free(w->data);
	free(w);
	s->pending--;
	if (s->st != SS_DEAD && status < 0) {
		if (s->st == SS_QUIT || s->st == SS_IDLE)
			relay__sess_close(s);
		else if (s->st == SS_REUSE)
			relay__sess_requeue(s, uv_strerror(status));
		else
			relay__sess_fail(s, 451, "4.4.2", "connection to relay %s "
			    "lost: %s", s->r->host_port, uv_strerror(status));
	} else if (s->st == SS_DATA && data_phase) {
		relay__sess_arm(s, s->r->s.timeout_s);
		relay__data_pump(s);
	}
	relay__sess_maybe_free(s);
}

/* Put len bytes at data on the socket; takes data. */
static int
sess_write_raw(struct rsess *s, char *data, size_t len, bool data_phase)
{
	struct rwrite *w;
	uv_buf_t b;
	int r;

	if (s->conn == NULL || !s->conn->open) {
		free(data);
		return UV_ENOTCONN;
	}
	if ((w = malloc(sizeof(*w))) == NULL) {
		free(data);
		return UV_ENOMEM;
	}
	w->s = s;
	w->data = data;
	w->data_phase = data_phase;
	b = uv_buf_init(data, (unsigned)len);
	if ((r = uv_write(&w->req, (uv_stream_t *)&s->conn->tcp, &b, 1,
	    on_write)) < 0) {
		free(data);
		free(w);
		return r;
	}
	s->pending++;
	return 0;
}

/* Send the ciphertext TLS has for the peer. */
static int
sess_tls_flush(struct rsess *s, bool data_phase)
{
	struct buf out = BUF_INIT;
	char *p;
	size_t n;
	int r;

	if ((r = tls_take(s->tls, &out)) < 0) {
		buf_free(&out);
		return r;
	}
	if (out.len == 0) {
		buf_free(&out);
		return 0;
	}
	n = out.len;
	if ((r = buf_steal(&out, &p)) < 0) {
		buf_free(&out);
		return r;
	}
	return sess_write_raw(s, p, n, data_phase);
}

/* Send plaintext; takes data. */
int
relay__sess_send_owned(struct rsess *s, char *data, size_t len, bool data_phase)
{
	int r;

	if (!s->tls_on)
		return sess_write_raw(s, data, len, data_phase);
	r = tls_write(s->tls, data, len);
	free(data);
	if (r < 0)
		return r;
	return sess_tls_flush(s, data_phase);
}

/* Add one command line to a batch, logging it. */
int
relay__cmd_add(struct rsess *s, struct buf *b, const char *fmt, ...)
{
	size_t start = b->len;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	if (r == 0)
		relay__rlog(s->r, LOG_LOWLEVEL, "session=%llu > %s",
		    (unsigned long long)s->id, b->data + start);
	if (r == 0)
		r = buf_puts(b, "\r\n");
	return r;
}

/* Expect one more reply. */
int
relay__pend_push(struct rsess *s, enum cmd c, size_t idx)
{
	if (s->ptail == s->pcap) {
		size_t ncap;
		struct pend *p;

		if (s->phead > 0) {
			memmove(s->pend, s->pend + s->phead,
			    (s->ptail - s->phead) * sizeof(*s->pend));
			s->ptail -= s->phead;
			s->phead = 0;
		}
		if (s->ptail == s->pcap) {
			ncap = s->pcap ? s->pcap * 2 : 8;
			if ((p = realloc(s->pend, ncap * sizeof(*p))) == NULL)
				return -ENOMEM;
			s->pend = p;
			s->pcap = ncap;
		}
	}
	s->pend[s->ptail].cmd = c;
	s->pend[s->ptail].idx = idx;
	s->ptail++;
	return 0;
}

/*
 * Send a batch of commands; built is 0, or the -errno that building the
 * batch met (then nothing is sent). Drops the session on any failure.
 */
int
relay__sess_send_batch(struct rsess *s, struct buf *b, int built)
{
	char *p;
	size_t n = b->len;
	int r = built;

	if (r < 0 || (r = buf_steal(b, &p)) < 0) {
		buf_free(b);
		relay__sess_fail(s, 451, "4.3.0", "out of memory");
		return r;
	}
	if ((r = relay__sess_send_owned(s, p, n, false)) < 0) {
		relay__sess_fail(s, 451, "4.4.2", "cannot send to relay %s: %s",
		    s->r->host_port, uv_strerror(r));
		return r;
	}
	relay__sess_arm(s, s->r->s.timeout_s);
	return 0;
}

/* Send one command expecting one reply. */
void
relay__sess_cmd(struct rsess *s, enum cmd c, size_t idx, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (r == 0)
		relay__rlog(s->r, LOG_LOWLEVEL, "session=%llu > %s",
		    (unsigned long long)s->id, b.data);
	if (r == 0)
		r = buf_puts(&b, "\r\n");
	if (r == 0)
		r = relay__pend_push(s, c, idx);
	relay__sess_send_batch(s, &b, r);
}

/* QUIT (we do not wait for the 221, like Postfix), then close. */
static void
on_shutdown(uv_shutdown_t *req, int status)
{
	struct rsess *s = req->data;

	(void)status;
	s->pending--;
	relay__sess_close(s);
	relay__sess_maybe_free(s);
}

/* Leave the relay politely. */
void
relay__sess_quit(struct rsess *s)
{
	struct relay *r = s->r;
	struct buf b = BUF_INIT;
	char *p;
	size_t n;

	if (s->live) {
		s->live = false;
		r->nlive--;
		relay__kick(r);
	}
	s->st = SS_QUIT;
	if (relay__cmd_add(s, &b, "QUIT") < 0 || (n = b.len,
	    buf_steal(&b, &p)) < 0) {
		buf_free(&b);
		relay__sess_close(s);
		return;
	}
	if (relay__sess_send_owned(s, p, n, false) < 0) {
		relay__sess_close(s);
		return;
	}
	s->sreq.data = s;
	if (uv_shutdown(&s->sreq, (uv_stream_t *)&s->conn->tcp,
	    on_shutdown) < 0) {
		relay__sess_close(s);
		return;
	}
	s->pending++;
	relay__sess_arm(s, r->s.timeout_s);
}

/* ------------------------------------------------------------------ */
/* Sessions: input.                                                    */

/* One line of a reply (CRLF removed). */
static void
handle_line(struct rsess *s, const char *line, size_t len)
{
	struct smtpreply rp;
	const char *why = NULL;
	int r;

	relay__rlog(s->r, LOG_LOWLEVEL, "session=%llu < %.*s",
	    (unsigned long long)s->id, (int)(len > 2000 ? 2000 : len), line);
	r = smtpreply_line(&s->rp, line, len, &why);
	if (r == -ENOMEM) {
		relay__sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	if (r < 0) {
		relay__sess_fail(s, 451, "4.5.0", "relay %s protocol error: %s",
		    s->r->host_port, why);
		return;
	}
	if (r == SMTPREPLY_MORE)
		return;
	rp = s->rp;
	s->rp = (struct smtpreply)SMTPREPLY_INIT;
	relay__handle_reply(s, &rp);
	smtpreply_free(&rp);
}

/* Parse every complete line in `in`. */
static void
sess_input(struct rsess *s)
{
	size_t off = 0;

	while (s->st != SS_DEAD && off < s->in.len) {
		char *l = s->in.data + off;
		size_t len, used;

		if (!smtpreply_split(l, s->in.len - off, &len, &used))
			break;
		off += used;
		s->in_reset = false;
		handle_line(s, l, len);
		if (s->in_reset) {
			s->in_reset = false;
			return;		/* STARTTLS emptied `in` */
		}
	}
	if (s->st == SS_DEAD)
		return;
	if (off > 0) {
		memmove(s->in.data, s->in.data + off, s->in.len - off);
		s->in.len -= off;
		s->in.data[s->in.len] = '\0';
	}
	if (s->in.len > SMTPREPLY_MAX)
		relay__sess_fail(s, 451, "4.5.0", "relay %s protocol error: reply "
		    "line longer than %d bytes", s->r->host_port,
		    SMTPREPLY_MAX);
}

/* Move received ciphertext through TLS into `in`; 0 or the failure. */
int
relay__sess_tls_pump_in(struct rsess *s)
{
	const char *why = NULL;
	int r;

	for (;;) {
		size_t before = s->in.len;

		if ((r = tls_read(s->tls, &s->in, &why)) < 0)
			break;
		if (s->in.len == before)
			break;
	}
	if (r == 0)
		r = sess_tls_flush(s, false);
	if (r == 0)
		return 0;
	if (relay__sess_tls_handshaking(s))
		relay__sess_tls_failed(s, r == -ECONNRESET ? "connection closed" :
		    why ? why : uv_strerror(r));
	else if (r == -ECONNRESET && (s->st == SS_IDLE || s->st == SS_QUIT))
		relay__sess_close(s);
	else
		relay__sess_fail(s, 451, "4.4.2", "TLS with relay %s failed: %s",
		    s->r->host_port, r == -ECONNRESET ? "closed by the relay" :
		    why ? why : uv_strerror(r));
	return r;
}

/* Hand out the session's read buffer. */
void
relay__on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
	struct rconn *c = h->data;

	(void)size;
	*b = uv_buf_init(c->s->rbuf, RELAY_CHUNK);
}

/* Bytes (or EOF) from the relay. */
void
relay__on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct rconn *c = st->data;
	struct rsess *s = c->s;
	int r;

	if (s->conn != c || s->st == SS_DEAD || n == 0)
		return;
	if (n < 0) {
		if (s->st == SS_IDLE || s->st == SS_QUIT)
			relay__sess_close(s);
		else if (relay__sess_tls_handshaking(s))
			relay__sess_tls_failed(s, "connection closed during the "
			    "handshake");
		else if (s->st == SS_REUSE)
			relay__sess_requeue(s, "connection closed");
		else
			relay__sess_fail(s, 451, "4.4.2", "connection to relay %s "
			    "lost: %s", s->r->host_port, n == UV_EOF ?
			    "closed by the relay" : uv_strerror((int)n));
		return;
	}
	if (s->st != SS_IDLE)
		relay__sess_arm(s, s->r->s.timeout_s);
	if (s->tls_on) {
		if ((r = tls_feed(s->tls, b->base, (size_t)n)) < 0) {
			relay__sess_fail(s, 451, "4.3.0", "TLS: %s", strerror(-r));
			return;
		}
		if (relay__sess_tls_pump_in(s) < 0)
			return;
	} else if (buf_append(&s->in, b->base, (size_t)n) < 0) {
		relay__sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	sess_input(s);
}
