/*
 * smtpd: the ESMTP listener (see smtpd.h, docs/SMTP.md). Owns the listening
 * sockets and every session (buffers, transaction, TLS state, timer).
 * Promises replies in command order, 250 after DATA only once the queue file
 * is durable or the sync programs succeeded, and bounded sessions. Never
 * touches the disk itself (enqueue_message does), never exits.
 */
#include "smtpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "msghdr.h"
#include "sched.h"
#include "smtpcmd.h"
#include "smtpcodec.h"

#define SMTPD_LINE_MAX 2048		/* a command line, CRLF included */
#define SMTPD_READ_CHUNK 65536		/* bytes asked for at each read */
#define SMTPD_IN_MAX (256 * 1024)	/* unprocessed input before reads stop */
#define SMTPD_OUT_MAX (256 * 1024)	/* unsent output before commands wait */
#define SMTPD_LINGER_MS 5000		/* how long a closing session may take */
#define SMTPD_TEXT_MAX 400		/* reply text octets (RFC 5321 4.5.3.1.5) */
#define SMTPD_BACKLOG 128
#define SMTPD_STREAM_AT (256 * 1024)	/* DATA held before it streams */
#define SMTPD_STREAM_CHUNK (128 * 1024)	/* least bytes per streamed write */
#define SMTPD_SYNC_HOLD (1024 * 1024)	/* held for sync programs, at most */
#define SMTPD_HEADER_MAX (1024 * 1024)	/* a streamed message's header */

/* Where a session stands. */
enum phase {
	PH_CMD,		/* reading commands */
	PH_DATA,	/* reading message data */
	PH_WAIT,	/* waiting for a commit or the sync programs */
	PH_CLOSING,	/* last replies going out; input is discarded */
};

/* One accepted recipient of the transaction. */
struct txn_rcpt {
	char *addr;			/* canonical, as received (qualified) */
	char *orcpt;			/* DSN ORCPT or NULL */
	unsigned notify;		/* NOTIFY_* bits */
	const struct transport *sync;	/* sync transport, NULL = queued */
	char *routed;			/* sync: the routed address */
	char *orig;			/* sync: ORIGINAL_RECIPIENT */
};

struct session;
TAILQ_HEAD(sess_list, session);

/* One listening socket. */
struct listener {
	uv_tcp_t h;
	struct smtpd *sd;
	bool open;			/* handle initialised and not closed */
};

struct smtpd {
	struct smtpd_deps d;
	struct listener *ls;
	size_t nls;
	unsigned handles;		/* listener and reject handles open */
	struct sess_list sessions;
	unsigned nsessions;
	uint64_t next_id;
	bool started, stopping, stop_called;
	smtpd_stopped_cb stopped_cb;
	void *stopped_arg;
};

/* A connection refused because of max-connections. */
struct reject {
	uv_tcp_t h;
	struct smtpd *sd;
};

/* One uv_write in flight (owns its bytes). */
struct wreq {
	uv_write_t req;
	struct session *s;
	char *data;
};

struct session {
	TAILQ_ENTRY(session) link;
	struct smtpd *sd;
	uint64_t id;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shreq;
	unsigned handles;		/* tcp, timer not yet closed */
	bool killed;			/* handles closing */
	bool shut;			/* uv_shutdown asked */
	bool processing;		/* inside process() */
	bool paused;			/* output backlog: commands wait */
	bool reading;
	bool eof;			/* the client closed its side */
	bool failed;			/* out of memory: end the session */
	char ip[INET6_ADDRSTRLEN];
	bool v6;
	uint8_t ckey[CIDR_KEY_LEN];	/* max-connections-per-client key */
	bool keyed;			/* ckey is set (the address is known) */
	bool refused;			/* over max-connections-per-client */
	bool trusted;			/* in [smtp] trusted-networks */
	bool async;			/* Enqueue Asynchronously applies */
	enum phase ph;
	const char *why_closed;
	/* input */
	struct buf in;			/* plaintext; consumed up to in_off */
	size_t in_off;
	bool discarding;		/* skipping a too long command line */
	bool line_seen;			/* a command line was taken */
	char *rbuf;			/* ciphertext / discarded input */
	/* output */
	struct buf out;
	unsigned writes;
	/* TLS */
	struct tls_conn *tls;
	/* HELO and transaction */
	char *helo;
	bool esmtp;
	unsigned errors;
	unsigned junk;			/* NOOP/RSET/VRFY/HELP since the
					   last message accepted */
	unsigned messages;
	bool has_mail;
	char *from;
	char *ret, *envid;
	struct txn_rcpt *rcpt;
	size_t nrcpt, rcpt_cap, nsync;
	/* DATA */
	struct smtpcodec_dec dec;	/* size, bare CR/LF, too big, end */
	struct buf msg;
	bool nomem;
	uint64_t data_start;		/* loop time (ms) of the 354 */
	uint64_t data_deadline;		/* data_start + data-timeout */
	uint64_t rate_deadline;		/* when the average falls below
					   min-data-rate (if set) */
	uint64_t data_in;		/* DATA bytes read (on the wire) */
	/* a message too large to hold streams to its queue file */
	struct enqueue_draft *ed;	/* the queue file in writing */
	bool ed_busy;			/* a write of msg is in flight */
	bool stalled;			/* the store is behind: input waits */
	bool streamed;			/* queued for every recipient */
	uint64_t stall_at;		/* loop time (ms) the stall began */
	int stream_err;			/* why the stream was dropped */
	/* the async step after DATA */
	bool waiting;			/* enqueue or sync run outstanding */
	bool sync_running;		/* transport_sync_run not yet answered */
	bool in_call;			/* inside transport_sync_run */
	struct buf full;		/* Received: + message, for sync runs */
	struct transport_sync_rcpt *sr;
	size_t nsr;
	struct result sync_res;
	char qid[STORE_ID_LEN + 1];
	char sync_uid[ENVELOPE_UID_LEN + 1];
};

static void process(struct session *s);
static void session_end(struct session *s, const char *why);
static void session_kill(struct session *s, const char *why);
static void update_reading(struct session *s);
static void on_timer(uv_timer_t *t);
static void maybe_stopped(struct smtpd *sd);

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
static void __attribute__((format(printf, 4, 5)))
reply(struct session *s, int code, const char *status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_va(s, code, false, status, fmt, ap);
	va_end(ap);
}

/* Queue one line of a multi-line reply (more: not the last one). */
static void __attribute__((format(printf, 4, 5)))
reply_more(struct session *s, int code, bool more, const char *fmt, ...)
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
		session_kill(s, "write failed (client gone)");
		return;
	}
	if (s->ph == PH_CLOSING) {
		if (s->writes == 0 && !s->shut)
			session_end(s, NULL);
		return;
	}
	if (s->paused && s->tcp.write_queue_size < SMTPD_OUT_MAX / 2) {
		s->paused = false;
		process(s);
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
			session_kill(s, "write failed (client gone)");
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
		session_kill(s, "out of memory");
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
		session_kill(s, "write failed (client gone)");
		return;
	}
	s->writes++;
}

/* Send the queued replies (through TLS when it is on). */
static void
flush(struct session *s)
{
	struct buf c = BUF_INIT;

	if (s->killed)
		return;
	if (s->tls == NULL) {
		write_buf(s, &s->out);
		return;
	}
	if (s->out.len > 0 && tls_write(s->tls, s->out.data, s->out.len) < 0) {
		session_kill(s, "TLS write failed");
		return;
	}
	buf_reset(&s->out);
	if (tls_take(s->tls, &c) < 0) {
		buf_free(&c);
		session_kill(s, "TLS failed");
		return;
	}
	write_buf(s, &c);
	buf_free(&c);
}

/* ------------------------------------------------------------------ */
/* Session life */

/* Loop time t (ms) plus sec seconds, saturating (durations are unbounded). */
static uint64_t
ms_after(uint64_t t, uint64_t sec)
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
static void
arm_idle(struct session *s)
{
	arm(s, ms_after(0, s->sd->d.cfg->smtp.idle_timeout_s));
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
static void
arm_data(struct session *s)
{
	const struct config *cfg = s->sd->d.cfg;
	uint64_t now = uv_now(s->sd->d.loop), due;

	due = ms_after(now, cfg->smtp.idle_timeout_s);
	if (s->data_deadline < due)
		due = s->data_deadline;
	if (cfg->smtp.min_data_rate > 0) {
		s->rate_deadline = rate_due(s->data_start, s->data_in,
			cfg->smtp.min_data_rate,
			ms_after(0, cfg->smtp.min_data_rate_grace_s));
		if (s->rate_deadline < due)
			due = s->rate_deadline;
	}
	arm(s, due > now ? due - now : 0);
}


/* Our name, for greetings and Received:. */
static const char *
host(const struct session *s)
{
	return s->sd->d.cfg->server.hostname;
}

/* Forget the transaction (sender, recipients, message). */
static void
txn_reset(struct session *s)
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

/* Free the session once its handles are closed and nothing is pending. */
static void
session_maybe_free(struct session *s)
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
	txn_reset(s);
	buf_free(&s->in);
	buf_free(&s->out);
	if (s->tls)
		tls_conn_free(s->tls);
	free(s->rbuf);
	free(s->helo);
	free(s);
	maybe_stopped(sd);
}

/* A session handle closed. */
static void
on_session_closed(uv_handle_t *h)
{
	struct session *s = h->data;

	s->handles--;
	session_maybe_free(s);
}

/* Close the connection now (nothing more is sent). */
static void
session_kill(struct session *s, const char *why)
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
		txn_reset(s);
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
		session_kill(s, NULL);
}

/*
 * End the session gracefully: the replies queued so far go out, then the
 * write side is shut, and the connection is closed at the client's EOF or
 * after the linger time. Input that still arrives is read and discarded,
 * so the close is not a reset that could destroy the last reply.
 */
static void
session_end(struct session *s, const char *why)
{
	if (s->killed)
		return;
	if (s->ph != PH_CLOSING) {
		s->ph = PH_CLOSING;
		s->why_closed = why;
		s->in_off = s->in.len;
		flush(s);
		if (!s->killed && s->tls && tls_established(s->tls)) {
			tls_shutdown(s->tls);	/* after the last reply */
			flush(s);
		}
		if (s->killed)
			return;
		arm(s, SMTPD_LINGER_MS);
		update_reading(s);
	}
	if (s->writes > 0 || s->shut || s->killed)
		return;
	s->shut = true;
	s->shreq.data = s;
	if (uv_shutdown(&s->shreq, (uv_stream_t *)&s->tcp, on_shutdown) < 0)
		session_kill(s, NULL);
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
	txn_reset(s);
	reply(s, 421, "4.4.2", "%s %s, closing connection", host(s), text);
	session_end(s, why);
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
		session_kill(s, NULL);
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
	txn_reset(s);
	if (partial_line(s)) {
		reply(s, 421, "4.4.2", "%s command timeout, closing "
			"connection", host(s));
		session_end(s, "command timeout (line incomplete)");
		return;
	}
	reply(s, 421, "4.4.2", "%s idle timeout, closing connection",
		host(s));
	session_end(s, "idle timeout");
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
	update_reading(s);
	if (s->ph == PH_CLOSING) {
		if (s->shut)
			session_kill(s, NULL);
		return;
	}
	if (s->ph == PH_DATA) {
		session_kill(s, "client closed the connection during DATA");
		return;
	}
	process(s);
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
		session_kill(s, n == UV_ENOBUFS ? "out of memory" :
			"connection error");
		return;
	}
	if (s->ph == PH_CLOSING)
		return;
	if (s->tls == NULL) {
		s->in.len += (size_t)n;
		s->in.data[s->in.len] = '\0';
		process(s);
		return;
	}
	if (tls_feed(s->tls, b->base, (size_t)n) < 0) {
		session_kill(s, "out of memory");
		return;
	}
	r = tls_read(s->tls, &s->in, &why);
	if (r == -ECONNRESET) {
		flush(s);
		got_eof(s);
		return;
	}
	if (r < 0) {
		log_msg(s->sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
			"session=%llu client=%s TLS error: %s",
			(unsigned long long)s->id, s->ip,
			why ? why : strerror(-r));
		flush(s);
		session_kill(s, "TLS error");
		return;
	}
	process(s);
}

/* Read while there is room and a reason to; stop otherwise. */
static void
update_reading(struct session *s)
{
	bool want = !s->killed && !s->eof && (s->ph == PH_CLOSING ||
		s->in.len - s->in_off < SMTPD_IN_MAX);

	if (want && !s->reading) {
		if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc,
		    on_read) < 0) {
			session_kill(s, "cannot read");
			return;
		}
		s->reading = true;
	} else if (!want && s->reading) {
		uv_read_stop((uv_stream_t *)&s->tcp);
		s->reading = false;
	}
}

/* Drop the consumed part of the input buffer. */
static void
compact(struct session *s)
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

/* ------------------------------------------------------------------ */
/* Transactions */

/* Log the transaction and send its reply; then take the next commands. */
static void __attribute__((format(printf, 4, 5)))
txn_finish(struct session *s, int code, const char *status,
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
	txn_reset(s);
	if (s->killed) {
		buf_free(&t);
		session_maybe_free(s);
		return;
	}
	reply(s, code, status, "%s", t.data ? t.data : "");
	buf_free(&t);
	s->ph = PH_CMD;
	arm_idle(s);
	if (sd->stopping) {
		reply(s, 421, "4.3.2", "%s service shutting down", host(s));
		session_end(s, "server shutting down");
	}
	process(s);
}

/* Reply for an enqueue that failed (enqueue.h error codes). */
static void
enqueue_failed(struct session *s, int err)
{
	if (err == -ENOSPC)
		txn_finish(s, 452, "4.3.1",
			"insufficient system storage: queue full");
	else if (err == -ELOOP)
		txn_finish(s, 554, "5.4.6", "too many hops");
	else if (err == -EINVAL)
		txn_finish(s, 554, "5.6.0", "message refused: bad header");
	else
		txn_finish(s, 451, "4.3.0", "local error: cannot queue the "
			"message (%s)", strerror(-err));
}

/* Write one delivery line per sync recipient (same keys as sched.c). */
static void
log_sync(struct session *s, const struct transport_sync_rcpt *r, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < s->nrcpt && k < n; i++) {
		const struct transport_sync_rcpt *x = &r[k];
		enum log_level lvl;
		struct buf b = BUF_INIT;
		char *reason = NULL;

		if (s->rcpt[i].sync == NULL)
			continue;
		k++;
		lvl = x->res.kind == RESULT_DELIVERED ? LOG_MAJOR :
			LOG_FAILURES;
		if (!log_enabled(s->sd->d.log, LOG_PIPE, lvl))
			continue;
		if (result_format(&x->res, &reason) < 0)
			reason = NULL;
		buf_puts(&b, "delivery");
		log_kv(&b, "id", s->sync_uid);
		log_kv(&b, "rcpt", s->rcpt[i].addr);
		log_kv(&b, "module", "TRANSPORT");
		log_kv(&b, "transport", x->tr->conf->name);
		log_kv(&b, "mode", "sync");
		log_kv(&b, "result", result_kind_name(x->res.kind));
		log_kv(&b, "reason", reason ? reason : x->res.text);
		if (x->recipient && strcmp(x->recipient, s->rcpt[i].addr) != 0)
			log_kv(&b, "routed", x->recipient);
		log_kvf(&b, "session", "%llu", (unsigned long long)s->id);
		if (x->slot_wait_s >= 0.001)	/* for a processor */
			log_kvf(&b, "wait", "%.3f", x->slot_wait_s);
		if (x->info.pid > 0) {
			log_kvf(&b, "pid", "%ld", (long)x->info.pid);
			if (x->info.end == RUN_EXITED)
				log_kvf(&b, "exit", "%d", x->info.code);
			else if (x->info.end == RUN_SIGNALED)
				log_kvf(&b, "signal", "%d", x->info.code);
			else if (x->info.end == RUN_TIMED_OUT)
				log_kv(&b, "timeout", "yes");
			log_kvf(&b, "time", "%.3f", x->info.seconds);
		}
		if (b.data)
			log_msg(s->sd->d.log, LOG_PIPE, lvl, "%s", b.data);
		buf_free(&b);
		free(reason);
	}
}

/* The sync programs have answered: their reply is the DATA reply. */
static void
sync_finish(struct session *s)
{
	const struct result *res = &s->sync_res;
	const char *text = res->text ? res->text : "";
	char status[RESULT_STATUS_MAX];
	int code = res->reply;

	switch (res->kind) {
	case RESULT_DELIVERED:
		code = 250;
		break;
	case RESULT_DEFERRED:
		if (code < 400 || code > 499)
			code = 451;
		break;
	case RESULT_FAILED:
		if (code < 500 || code > 599)
			code = 554;
		break;
	}
	if (res->status[0] == (char)('0' + code / 100))
		snprintf(status, sizeof(status), "%s", res->status);
	else
		snprintf(status, sizeof(status), "%c.0.0",
			(char)('0' + code / 100));
	if (code == 250) {
		s->messages++;
		s->junk = 0;
		if (s->qid[0])
			txn_finish(s, 250, status, "%s; queued as %s", text,
				s->qid);
		else
			txn_finish(s, 250, status, "%s", text);
		return;
	}
	txn_finish(s, code, status, "%s", text);
}

/* transport_sync_run's answer (maybe from inside the call). */
static void
on_sync_done(void *arg, struct transport_sync_rcpt *r, size_t n,
	const struct result *reply_res)
{
	struct session *s = arg;
	const struct result *use = reply_res;

	log_sync(s, r, n);
	if (result_set(&s->sync_res, use->kind, use->reply, use->status, "%s",
	    use->text ? use->text : "") < 0)
		result_set(&s->sync_res, RESULT_DEFERRED, 451, "4.3.0",
			"out of memory");
	s->sync_running = false;
	if (!s->in_call)
		sync_finish(s);
}

/* Run the sync transports' programs on the message (Received: on top). */
static void
sync_part(struct session *s)
{
	size_t k = 0;
	int r;

	if ((s->sr = calloc(s->nsync, sizeof(*s->sr))) == NULL) {
		txn_finish(s, 452, "4.3.1", "insufficient system resources");
		return;
	}
	s->nsr = s->nsync;
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (s->rcpt[i].sync == NULL)
			continue;
		s->sr[k].tr = s->rcpt[i].sync;
		s->sr[k].recipient = s->rcpt[i].routed;
		s->sr[k].orig_recipient = s->rcpt[i].orig;
		s->sr[k].res = (struct result)RESULT_INIT;
		k++;
	}
	if ((r = envelope_new_uid(s->sync_uid)) < 0) {
		txn_finish(s, 451, "4.3.0", "local error: %s", strerror(-r));
		return;
	}
	s->waiting = true;
	s->sync_running = true;
	s->ph = PH_WAIT;
	uv_timer_stop(&s->timer);
	s->in_call = true;
	r = transport_sync_run(s->sd->d.pipe, s->sd->d.slots,
		s->full.data ? s->full.data : "", s->full.len, s->from,
		s->sync_uid, s->sr, s->nsr, on_sync_done, s);
	s->in_call = false;
	if (r < 0 && s->sync_running) {
		s->sync_running = false;
		txn_finish(s, 451, "4.3.0", "cannot run the transport "
			"programs: %s", strerror(-r));
		return;
	}
	if (!s->sync_running)
		sync_finish(s);
}

/* The queued part is durable (or failed). */
static void
on_enqueued(void *arg, int err, const char *id)
{
	struct session *s = arg;

	s->waiting = false;
	if (err < 0) {
		enqueue_failed(s, err);
		return;
	}
	snprintf(s->qid, sizeof(s->qid), "%s", id ? id : "");
	if (s->nsync == 0 || s->streamed) {
		s->messages++;
		s->junk = 0;
		txn_finish(s, 250, "2.0.0", "ok: queued as %s", s->qid);
		return;
	}
	if (s->killed) {
		txn_finish(s, 451, "4.3.0", "client gone: sync recipients "
			"not run (queued part is %s)", s->qid);
		return;
	}
	sync_part(s);
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
		txn_finish(s, 452, "4.3.1", "insufficient system resources");
		return;
	}
	if (s->nsync == 0) {
		m = s->full;
		s->full = (struct buf)BUF_INIT;
	}
	s->waiting = true;
	s->ph = PH_WAIT;
	uv_timer_stop(&s->timer);
	r = enqueue_message(s->sd->d.eq, &env, &m, NULL, NULL, on_enqueued, s);
	if (r < 0) {
		s->waiting = false;
		enqueue_failed(s, r);
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
		s->ip, host(s), proto);
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

/* The DATA clocks restart after a stall, shifted by its length. */
static void
stream_resume(struct session *s)
{
	uint64_t d = uv_now(s->sd->d.loop) - s->stall_at;

	s->stalled = false;
	s->data_start += d;
	s->data_deadline = ms_after(s->data_deadline, d);
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
		(unsigned)(s->nsync > 0 ? SMTPD_SYNC_HOLD : SMTPD_STREAM_AT),
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
		enqueue_failed(s, s->stream_err);
		return;
	}
	stream_pump(s);
	if (s->stalled) {
		stream_resume(s);
		process(s);
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
		enqueue_failed(s, s->stream_err);
	}
}

/* After decoding: stream once the message is too large to hold. */
static void
stream_check(struct session *s)
{
	size_t hold = s->nsync > 0 ? SMTPD_SYNC_HOLD : SMTPD_STREAM_AT;

	if (s->ed == NULL && !s->dec.done && !s->nomem && s->stream_err == 0 &&
	    s->msg.len >= hold)
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
	struct msghdr_block h = MSGHDR_INIT;
	const char *why = NULL;
	size_t hops;
	int r;

	if (s->dec.bare) {
		log_msg(s->sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
			"session=%llu client=%s bare CR or LF in DATA (SMTP "
			"smuggling?): message refused",
			(unsigned long long)s->id, s->ip);
		txn_finish(s, 554, "5.6.0", "message refused: bare CR or LF "
			"in the message data (RFC 5321 section 2.3.8)");
		return;
	}
	if (s->dec.too_big) {
		txn_finish(s, 552, "5.3.4", "message size exceeds fixed "
			"maximum message size (%llu)", (unsigned long long)
			s->sd->d.cfg->smtp.max_size);
		return;
	}
	if (s->stream_err == -EMSGSIZE) {
		txn_finish(s, 552, "5.3.4", "message header exceeds %u "
			"bytes", (unsigned)SMTPD_HEADER_MAX);
		return;
	}
	if (s->stream_err < 0) {
		enqueue_failed(s, s->stream_err);
		return;
	}
	if (s->ed != NULL) {
		stream_end(s);
		return;
	}
	if (s->nomem || received(s, &s->full) < 0 ||
	    buf_append(&s->full, s->msg.data ? s->msg.data : "",
	    s->msg.len) < 0) {
		txn_finish(s, 452, "4.3.1", "insufficient system resources");
		return;
	}
	buf_free(&s->msg);
	r = msghdr_parse(s->full.data, s->full.len, &h, &why);
	if (r == -EINVAL) {
		txn_finish(s, 554, "5.6.0", "message refused: bad header "
			"(%s)", why ? why : "unparsable");
		return;
	}
	if (r < 0) {
		txn_finish(s, 452, "4.3.1", "insufficient system resources");
		return;
	}
	hops = msghdr_count(s->full.data, &h, "Received");
	msghdr_free(&h);
	if (hops > s->sd->d.cfg->router.hop_limit) {
		txn_finish(s, 554, "5.4.6", "too many hops");
		return;
	}
	if (s->nrcpt > s->nsync)
		enqueue_part(s);
	else
		sync_part(s);
}

/*
 * Consume DATA bytes through the decoder (smtpcodec.h: dot-stuffing
 * undone, CRLF to LF, only CRLF "." CRLF ends the data, a bare CR or LF
 * refuses the message) into s->msg; at the end of the data judge the
 * message, else re-arm the DATA timer.
 */
static void
data_consume(struct session *s)
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
		arm_data(s);
}

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
	reply(s, code, status, "%s", t.data ? t.data : "");
	log_msg(s->sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
		"session=%llu client=%s bad command: %03d %s %s",
		(unsigned long long)s->id, s->ip, code, status,
		t.data ? t.data : "");
	buf_free(&t);
	if (++s->errors > s->sd->d.cfg->smtp.max_errors) {
		reply(s, 421, "4.7.0", "%s too many errors, closing connection",
			host(s));
		session_end(s, "too many errors");
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
	reply(s, 421, "4.7.0", "%s too many junk commands, closing connection",
		host(s));
	session_end(s, "too many junk commands");
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
	txn_reset(s);
	free(s->helo);
	s->helo = c->arg;
	c->arg = NULL;
	s->esmtp = c->verb == SMTP_EHLO;
	if (!s->esmtp) {
		reply_more(s, 250, false, "%s", host(s));
		return;
	}
	reply_more(s, 250, true, "%s", host(s));
	reply_more(s, 250, true, "SIZE %llu",
		(unsigned long long)cfg->smtp.max_size);
	reply_more(s, 250, true, "PIPELINING");
	reply_more(s, 250, true, "8BITMIME");
	reply_more(s, 250, true, "ENHANCEDSTATUSCODES");
	reply_more(s, 250, starttls, "DSN");
	if (starttls)
		reply_more(s, 250, false, "STARTTLS");
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
		reply(s, 552, "5.3.4", "message size exceeds fixed maximum "
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
	reply(s, 250, "2.1.0", "sender <%s> ok", s->from);
}

/* Is the client one that Enqueue Asynchronously applies to? */
static bool
async_applies(const struct config *cfg, bool trusted)
{
	switch (cfg->smtp.enqueue_async) {
	case ASYNC_ANYBODY:
	case ASYNC_UNAUTHENTICATED:	/* no SMTP AUTH: every client */
		return true;
	case ASYNC_CLIENTS:
		return trusted;
	case ASYNC_NONCLIENTS:
		return !trusted;
	case ASYNC_NOBODY:
	case ASYNC_AUTHENTICATED:	/* local submission only */
		break;
	}
	return false;
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
	if (buf_printf(&b, "%s@%s", path, dom ? dom : host(s)) == 0)
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
	r = sched_original_recipient(addr, x->orcpt, &x->orig);
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
		reply(s, 452, "4.5.3", "too many recipients");
		return;
	}
	if ((addr = qualify(s, c->path ? c->path : "")) == NULL) {
		s->failed = true;
		return;
	}
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (strcmp(s->rcpt[i].addr, addr) == 0) {
			reply(s, 250, "2.1.5", "recipient <%s> ok (duplicate)",
				addr);
			free(addr);
			return;
		}
	}
	rc = *d->router;
	rc.direct_pipe_allowed = false;
	if (router_route(&rc, addr, &rt) < 0) {
		reply(s, 451, "4.3.0", "local error: out of memory");
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
		reply(s, code, status, "<%s>: %s", addr, text);
		free(addr);
		route_free(&rt);
		return;
	}
	if (add_rcpt(s, addr, c, tr, &rt) < 0)
		s->failed = true;
	else
		reply(s, 250, "2.1.5", "recipient <%s> ok",
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
		reply(s, 554, "5.5.1", "no valid recipients");
		return;
	}
	reply(s, 354, NULL, "end data with <CR><LF>.<CR><LF>");
	s->ph = PH_DATA;
	smtpcodec_dec_init(&s->dec, s->sd->d.cfg->smtp.max_size);
	s->nomem = false;
	s->data_in = 0;
	s->data_start = uv_now(s->sd->d.loop);
	s->data_deadline = ms_after(s->data_start,
		s->sd->d.cfg->smtp.data_timeout_s);
	arm_data(s);
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
		reply(s, 454, "4.7.0", "TLS not available due to temporary "
			"reason");
		return;
	}
	reply(s, 220, "2.0.0", "ready to start TLS");
	flush(s);
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
	txn_reset(s);
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
		reply(s, 451, "4.3.0", "local error: %s", strerror(-r));
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
		txn_reset(s);
		reply(s, 250, "2.0.0", "ok");
		break;
	case SMTP_NOOP:
		reply(s, 250, "2.0.0", "ok");
		break;
	case SMTP_QUIT:
		reply(s, 221, "2.0.0", "%s closing connection", host(s));
		session_end(s, "quit");
		break;
	case SMTP_VRFY:
		reply(s, 252, "2.5.2", "cannot VRFY user, but will accept "
			"message and attempt delivery");
		break;
	case SMTP_HELP:
		reply(s, 214, "2.0.0", "commands: HELO EHLO MAIL RCPT DATA "
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
static void
process(struct session *s)
{
	if (s->processing || s->killed)
		return;
	s->processing = true;
	while (!s->killed && !s->failed && !s->waiting && !s->paused &&
	    !s->stalled && s->ph != PH_CLOSING && s->ph != PH_WAIT &&
	    s->in_off < s->in.len) {
		if (s->ph == PH_DATA) {
			data_consume(s);
			continue;
		}
		if (!next_line(s))
			break;
		if (s->out.len > SMTPD_OUT_MAX / 4)
			flush(s);
		if (!s->killed && s->tcp.write_queue_size > SMTPD_OUT_MAX)
			s->paused = true;
	}
	if (s->line_seen) {
		/* a command was taken: the next one has idle-timeout */
		s->line_seen = false;
		if (!s->killed && s->ph == PH_CMD)
			arm_idle(s);
	}
	compact(s);
	if (s->failed && !s->killed)
		session_kill(s, "out of memory");
	flush(s);
	if (!s->killed && s->eof && s->ph == PH_CMD && !s->paused)
		session_end(s, "client closed the connection");
	if (!s->killed)
		update_reading(s);
	s->processing = false;
}

/* ------------------------------------------------------------------ */
/* Listeners and connections */

/* Nothing left open after smtpd_stop: tell the caller. */
static void
maybe_stopped(struct smtpd *sd)
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
	maybe_stopped(sd);
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
		session_kill(s, "accept failed");
		return;
	}
	peer_address(s);
	if (client_over_limit(sd, s, &open)) {
		s->refused = true;
		log_msg(sd->d.log, LOG_SMTPI, LOG_PROBLEMS,
			"connection refused: client=%s has %u sessions open "
			"(max-connections-per-client)", s->ip, open);
		reply(s, 421, "4.7.0", "%s too many connections from your "
			"address, try again later", host(s));
		flush(s);
		session_kill(s, "too many connections from this client");
		return;
	}
	s->async = async_applies(sd->d.cfg, s->trusted);
	uv_tcp_nodelay(&s->tcp, 1);
	log_msg(sd->d.log, LOG_SMTPI, LOG_MAJOR,
		"session=%llu client=%s connected (trusted=%s, sessions=%u)",
		(unsigned long long)s->id, s->ip, s->trusted ? "yes" : "no",
		sd->nsessions);
	reply(s, 220, NULL, "%s ESMTP mailpipe", host(s));
	arm_idle(s);
	process(s);
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
		h = mp_strndup(text + 1, (size_t)(rb - text - 1));
		colon = rb + 1;
	} else {
		if ((colon = strrchr(text, ':')) == NULL)
			return -EINVAL;
		h = mp_strndup(text, (size_t)(colon - text));
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
	maybe_stopped(sd);
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
		reply(s, 421, "4.3.2", "%s service shutting down", host(s));
		session_end(s, "server shutting down");
	}
	maybe_stopped(sd);
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
