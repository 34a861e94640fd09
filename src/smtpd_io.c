/*
 * smtpd_io: the bytes of an SMTP session (see smtpd.h, docs/SMTP.md).
 * Owns replies (cleaned, at most SMTPD_TEXT_MAX octets of text), writes
 * (plaintext or through TLS, a backlog that pauses commands), reads and
 * the input buffer (TLS input, stops when SMTPD_IN_MAX waits), the
 * session's timer (command, DATA, rate and linger limits) and the end of
 * a session (graceful or at once). Promises: every write owns its bytes
 * until libuv is done with them; a closing session reads and discards
 * what still arrives. Part of smtpd (smtpd_int.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "smtpd_int.h"

static void on_timer(uv_timer_t *t);

/* ------------------------------------------------------------------ */
/* Output */

/* Append text to b with control and 8-bit octets made '?', at most max. */
static int
put_clean(struct buf *b, const char *t, size_t max)
{
	size_t n = strlen(t);
	int r = 0;

	if (n > max)
		n = max;
	for (size_t i = 0; i < n && r == 0; i++) {
		unsigned char c = (unsigned char)t[i];

		r = buf_putc(b, c < 0x20 || c >= 0x7f ? '?' : (char)c);
	}
	if (r == 0 && strlen(t) > max)
		r = buf_puts(b, "...");
	return r;
}

/* Queue one reply line "CODE[-| ][STATUS ]TEXT" (text is cleaned). */
static void __attribute__((format(printf, 5, 0)))
reply_va(struct session *s, int code, bool more, const char *status,
	const char *fmt, va_list ap)
{
	struct buf t = BUF_INIT;
	int r;

	if (s->killed)
		return;
	r = buf_vprintf(&t, fmt, ap);
	if (r == 0)
		r = buf_printf(&s->out, "%03d%c", code, more ? '-' : ' ');
	if (r == 0 && status && status[0])
		r = buf_printf(&s->out, "%s ", status);
	if (r == 0)
		r = put_clean(&s->out, t.data ? t.data : "", SMTPD_TEXT_MAX);
	if (r == 0)
		r = buf_puts(&s->out, "\r\n");
	if (r < 0)
		s->failed = true;
	buf_free(&t);
}

/* Queue a one-line reply. */
void __attribute__((format(printf, 4, 5)))
smtpd__reply(struct session *s, int code, const char *status, const char *fmt,
	...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_va(s, code, false, status, fmt, ap);
	va_end(ap);
}

/* Queue one line of a multi-line reply (more: not the last one). */
void __attribute__((format(printf, 4, 5)))
smtpd__reply_more(struct session *s, int code, bool more, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_va(s, code, more, NULL, fmt, ap);
	va_end(ap);
}

/* A write finished: free it; go on once the backlog has drained. */
static void
on_write(uv_write_t *req, int status)
{
	struct wreq *w = req->data;
	struct session *s = w->s;

	free(w->data);
	free(w);
	s->writes--;
	if (s->killed)
		return;
	if (status < 0) {
		smtpd__session_kill(s, "write failed (client gone)");
		return;
	}
	if (s->ph == PH_CLOSING) {
		if (s->writes == 0 && !s->shut)
			smtpd__session_end(s, NULL);
		return;
	}
	if (s->paused && s->tcp.write_queue_size < SMTPD_OUT_MAX / 2) {
		s->paused = false;
		smtpd__process(s);
	}
}

/*
 * Put the bytes of b on the socket: straight away when nothing is queued
 * and the socket takes them all (b is then emptied, its memory kept), else
 * the rest through uv_write, which steals b's memory.
 */
static void
write_buf(struct session *s, struct buf *b)
{
	struct wreq *w;
	uv_buf_t ub;
	size_t done = 0;
	int r;

	if (b->len == 0)
		return;
	if (s->writes == 0) {
		ub = uv_buf_init(b->data, (unsigned)b->len);
		r = uv_try_write((uv_stream_t *)&s->tcp, &ub, 1);
		if (r < 0 && r != UV_EAGAIN) {
			buf_reset(b);
			smtpd__session_kill(s, "write failed (client gone)");
			return;
		}
		if (r > 0)
			done = (size_t)r;
		if (done == b->len) {
			buf_reset(b);
			return;
		}
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		buf_free(b);
		smtpd__session_kill(s, "out of memory");
		return;
	}
	ub = uv_buf_init(b->data + done, (unsigned)(b->len - done));
	w->s = s;
	w->req.data = w;
	w->data = b->data;
	*b = (struct buf)BUF_INIT;
	if ((r = uv_write(&w->req, (uv_stream_t *)&s->tcp, &ub, 1,
	    on_write)) < 0) {
		free(w->data);
		free(w);
		smtpd__session_kill(s, "write failed (client gone)");
		return;
	}
	s->writes++;
}

/* Send the queued replies (through TLS when it is on). */
void
smtpd__flush(struct session *s)
{
	struct buf c = BUF_INIT;

	if (s->killed)
		return;
	if (s->tls == NULL) {
		write_buf(s, &s->out);
		return;
	}
	if (s->out.len > 0 && tls_write(s->tls, s->out.data, s->out.len) < 0) {
		smtpd__session_kill(s, "TLS write failed");
		return;
	}
	buf_reset(&s->out);
	if (tls_take(s->tls, &c) < 0) {
		buf_free(&c);
		smtpd__session_kill(s, "TLS failed");
		return;
	}
	write_buf(s, &c);
	buf_free(&c);
}

/* ------------------------------------------------------------------ */
/* Session life */

/* Loop time t (ms) plus sec seconds, saturating (durations are unbounded). */
uint64_t
smtpd__ms_after(uint64_t t, uint64_t sec)
{
	if (sec > (UINT64_MAX - t) / 1000)
		return UINT64_MAX;
	return t + sec * 1000;
}

/* Arm the timer for ms milliseconds. */
static void
arm(struct session *s, uint64_t ms)
{
	if (!s->killed)
		uv_timer_start(&s->timer, on_timer, ms, 0);
}

/*
 * Arm the command timer from the configured idle timeout: the next
 * complete command line must arrive within it (reads that bring only part
 * of a line do not restart it).
 */
void
smtpd__arm_idle(struct session *s)
{
	arm(s, smtpd__ms_after(0, s->sd->d.cfg->smtp.idle_timeout_s));
}

/*
 * The first loop time (ms) at which bytes read since start average less
 * than rate bytes a second, but not before start + grace_ms (saturating).
 */
static uint64_t
rate_due(uint64_t start, uint64_t bytes, uint64_t rate, uint64_t grace_ms)
{
	uint64_t q = bytes / rate, ms;

	if (q > (UINT64_MAX - 2000) / 1000)
		return UINT64_MAX;
	ms = q * 1000 + (bytes % rate) * 1000 / rate + 1;
	if (ms < grace_ms)
		ms = grace_ms;
	return ms > UINT64_MAX - start ? UINT64_MAX : start + ms;
}

/*
 * Arm the DATA timer for the first of: idle-timeout from now (silence),
 * the DATA deadline, and the moment the average rate since the 354 would
 * fall below min-data-rate (after its grace period).
 */
void
smtpd__arm_data(struct session *s)
{
	const struct config *cfg = s->sd->d.cfg;
	uint64_t now = uv_now(s->sd->d.loop), due;

	due = smtpd__ms_after(now, cfg->smtp.idle_timeout_s);
	if (s->data_deadline < due)
		due = s->data_deadline;
	if (cfg->smtp.min_data_rate > 0) {
		s->rate_deadline = rate_due(s->data_start, s->data_in,
			cfg->smtp.min_data_rate,
			smtpd__ms_after(0, cfg->smtp.min_data_rate_grace_s));
		if (s->rate_deadline < due)
			due = s->rate_deadline;
	}
	arm(s, due > now ? due - now : 0);
}


/* Our name, for greetings and Received:. */
const char *
smtpd__host(const struct session *s)
{
	return s->sd->d.cfg->server.hostname;
}

/* Free the session once its handles are closed and nothing is pending. */
void
smtpd__session_maybe_free(struct session *s)
{
	struct smtpd *sd = s->sd;

	if (s->handles > 0 || s->waiting)
		return;
	if (!s->refused)	/* a refused one has its "refused" line */
		log_msg(sd->d.log, LOG_SMTPI, LOG_MAJOR,
			"session=%llu client=%s closed: %s; messages=%u "
			"errors=%u", (unsigned long long)s->id, s->ip,
			s->why_closed ? s->why_closed : "connection closed",
			s->messages, s->errors);
	TAILQ_REMOVE(&sd->sessions, s, link);
	sd->nsessions--;
	smtpd__txn_reset(s);
	buf_free(&s->in);
	buf_free(&s->out);
	if (s->tls)
		tls_conn_free(s->tls);
	free(s->rbuf);
	free(s->helo);
	free(s);
	smtpd__maybe_stopped(sd);
}

/* A session handle closed. */
static void
on_session_closed(uv_handle_t *h)
{
	struct session *s = h->data;

	s->handles--;
	smtpd__session_maybe_free(s);
}

/* Close the connection now (nothing more is sent). */
void
smtpd__session_kill(struct session *s, const char *why)
{
	if (s->killed)
		return;
	s->killed = true;
	if (s->why_closed == NULL)
		s->why_closed = why;
	if (s->ph == PH_DATA)
		log_msg(s->sd->d.log, LOG_SMTPI, LOG_MAJOR,
			"session=%llu client=%s connection lost during DATA "
			"after %llu bytes: message discarded, nothing queued",
			(unsigned long long)s->id, s->ip,
			(unsigned long long)s->dec.size);
	if (!s->waiting)
		smtpd__txn_reset(s);
	s->reading = false;
	uv_read_stop((uv_stream_t *)&s->tcp);
	uv_timer_stop(&s->timer);
	uv_close((uv_handle_t *)&s->tcp, on_session_closed);
	uv_close((uv_handle_t *)&s->timer, on_session_closed);
}

/* The write side is shut: close at the client's EOF (or the linger). */
static void
on_shutdown(uv_shutdown_t *req, int status)
{
	struct session *s = req->data;

	if (s->killed)
		return;
	if (status < 0 || s->eof)
		smtpd__session_kill(s, NULL);
}

/*
 * End the session gracefully: the replies queued so far go out, then the
 * write side is shut, and the connection is closed at the client's EOF or
 * after the linger time. Input that still arrives is read and discarded,
 * so the close is not a reset that could destroy the last reply.
 */
void
smtpd__session_end(struct session *s, const char *why)
{
	if (s->killed)
		return;
	if (s->ph != PH_CLOSING) {
		s->ph = PH_CLOSING;
		s->why_closed = why;
		s->in_off = s->in.len;
		smtpd__flush(s);
		if (!s->killed && s->tls && tls_established(s->tls)) {
			tls_shutdown(s->tls);	/* after the last reply */
			smtpd__flush(s);
		}
		if (s->killed)
			return;
		arm(s, SMTPD_LINGER_MS);
		smtpd__update_reading(s);
	}
	if (s->writes > 0 || s->shut || s->killed)
		return;
	s->shut = true;
	s->shreq.data = s;
	if (uv_shutdown(&s->shreq, (uv_stream_t *)&s->tcp, on_shutdown) < 0)
		smtpd__session_kill(s, NULL);
}

/* Is part of a command line (or a too long one) waiting for its end? */
static bool
partial_line(const struct session *s)
{
	return s->discarding || (s->in.len > s->in_off &&
		memchr(s->in.data + s->in_off, '\n', s->in.len - s->in_off) ==
		NULL);
}

/* A DATA limit broke: log it, 421 4.4.2, close; nothing was queued. */
static void
data_cut(struct session *s, const char *what, const char *text,
	const char *why)
{
	uint64_t ms = uv_now(s->sd->d.loop) - s->data_start;

	log_msg(s->sd->d.log, LOG_SMTPI, LOG_MAJOR,
		"session=%llu client=%s %s during DATA after %llu bytes in "
		"%llu.%03llus: message discarded, nothing queued",
		(unsigned long long)s->id, s->ip, what,
		(unsigned long long)s->data_in, (unsigned long long)ms / 1000,
		(unsigned long long)ms % 1000);
	smtpd__txn_reset(s);
	smtpd__reply(s, 421, "4.4.2", "%s %s, closing connection",
		smtpd__host(s), text);
	smtpd__session_end(s, why);
}

/*
 * The session timer: the end of a closing session's linger time; in DATA
 * the silence limit, the DATA deadline or the rate check; otherwise no
 * complete command line for idle-timeout.
 */
static void
on_timer(uv_timer_t *t)
{
	struct session *s = t->data;
	const struct config *cfg = s->sd->d.cfg;
	uint64_t now;

	if (s->killed)
		return;
	if (s->ph == PH_CLOSING) {
		smtpd__session_kill(s, NULL);
		return;
	}
	if (s->ph == PH_WAIT || s->stalled)
		return;
	if (s->ph == PH_DATA) {
		now = uv_now(s->sd->d.loop);
		if (now >= s->data_deadline)
			data_cut(s, "data-timeout exceeded",
				"DATA time limit exceeded", "DATA time limit");
		else if (cfg->smtp.min_data_rate > 0 &&
		    now >= s->rate_deadline)
			data_cut(s, "rate below min-data-rate", "DATA too slow",
				"DATA too slow");
		else
			data_cut(s, "idle timeout", "idle timeout",
				"idle timeout");
		return;
	}
	smtpd__txn_reset(s);
	if (partial_line(s)) {
		smtpd__reply(s, 421, "4.4.2", "%s command timeout, closing "
			"connection", smtpd__host(s));
		smtpd__session_end(s, "command timeout (line incomplete)");
		return;
	}
	smtpd__reply(s, 421, "4.4.2", "%s idle timeout, closing connection",
		smtpd__host(s));
	smtpd__session_end(s, "idle timeout");
}

/* ------------------------------------------------------------------ */
/* Input */

/* Give libuv room: the plaintext buffer, or a scratch buffer. */
static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct session *s = h->data;

	(void)hint;
	if (s->tls || s->ph == PH_CLOSING) {
		if (s->rbuf == NULL && (s->rbuf = malloc(SMTPD_READ_CHUNK)) ==
		    NULL) {
			*b = uv_buf_init(NULL, 0);
			return;
		}
		*b = uv_buf_init(s->rbuf, SMTPD_READ_CHUNK);
		return;
	}
	if (buf_reserve(&s->in, SMTPD_READ_CHUNK) < 0) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	*b = uv_buf_init(s->in.data + s->in.len, SMTPD_READ_CHUNK);
}

/* The client closed its side (or TLS said close_notify). */
static void
got_eof(struct session *s)
{
	s->eof = true;
	smtpd__update_reading(s);
	if (s->ph == PH_CLOSING) {
		if (s->shut)
			smtpd__session_kill(s, NULL);
		return;
	}
	if (s->ph == PH_DATA) {
		smtpd__session_kill(s,
			"client closed the connection during DATA");
		return;
	}
	smtpd__process(s);
}

/* Bytes from the client. */
static void
on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct session *s = st->data;
	const char *why = NULL;
	int r;

	if (s->killed || n == 0)
		return;
	if (n == UV_EOF) {
		got_eof(s);
		return;
	}
	if (n < 0) {
		log_msg(s->sd->d.log, LOG_SMTPI, LOG_LOWLEVEL,
			"session=%llu client=%s read error: %s",
			(unsigned long long)s->id, s->ip, uv_strerror((int)n));
		smtpd__session_kill(s, n == UV_ENOBUFS ? "out of memory" :
			"connection error");
		return;
	}
	if (s->ph == PH_CLOSING)
		return;
	if (s->tls == NULL) {
		s->in.len += (size_t)n;
		s->in.data[s->in.len] = '\0';
		smtpd__process(s);
		return;
	}
	if (tls_feed(s->tls, b->base, (size_t)n) < 0) {
		smtpd__session_kill(s, "out of memory");
		return;
	}
	r = tls_read(s->tls, &s->in, &why);
	if (r == -ECONNRESET) {
		smtpd__flush(s);
		got_eof(s);
		return;
	}
	if (r < 0) {
		log_msg(s->sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
			"session=%llu client=%s TLS error: %s",
			(unsigned long long)s->id, s->ip,
			why ? why : strerror(-r));
		smtpd__flush(s);
		smtpd__session_kill(s, "TLS error");
		return;
	}
	smtpd__process(s);
}

/* Read while there is room and a reason to; stop otherwise. */
void
smtpd__update_reading(struct session *s)
{
	bool want = !s->killed && !s->eof && (s->ph == PH_CLOSING ||
		s->in.len - s->in_off < SMTPD_IN_MAX);

	if (want && !s->reading) {
		if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc,
		    on_read) < 0) {
			smtpd__session_kill(s, "cannot read");
			return;
		}
		s->reading = true;
	} else if (!want && s->reading) {
		uv_read_stop((uv_stream_t *)&s->tcp);
		s->reading = false;
	}
}

/* Drop the consumed part of the input buffer. */
void
smtpd__compact(struct session *s)
{
	if (s->in_off == 0)
		return;
	if (s->in_off >= s->in.len) {
		/* a drained buffer that grew while commands waited goes */
		if (s->in.cap > 2 * SMTPD_READ_CHUNK)
			buf_free(&s->in);
		else
			buf_reset(&s->in);
	} else {
		memmove(s->in.data, s->in.data + s->in_off,
			s->in.len - s->in_off);
		s->in.len -= s->in_off;
		s->in.data[s->in.len] = '\0';
	}
	s->in_off = 0;
}
