/*
 * relay: the SMTP client for [smtp] relay-host (docs/RELAY.md). Owns the
 * sessions to the relay (resolve, connect, EHLO/HELO, STARTTLS through
 * tls.h), the FIFO of messages waiting for a session, the (pipelined)
 * transaction, and the CRLF, dot-stuffed stream of the message. Promises:
 * every relay_send is answered exactly once, from the loop, one result per
 * recipient; no file I/O on the loop thread; nothing is freed while libuv
 * holds it. Never blocks, never exits, never changes queue state.
 */
#include "relay.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <unistd.h>

#include "buf.h"
#include "envelope.h"
#include "smtpcodec.h"
#include "smtpreply.h"

/* Bytes of the message read (or taken from memory) and encoded at once. */
#define RELAY_CHUNK (64 * 1024)
/* Stop feeding the message while this much waits in the socket's queue. */
#define RELAY_WQ_HIGH (256 * 1024)
#define RELAY_TIMEOUT_DEFAULT_S 300
/* After a failed TLS handshake, STARTTLS is not tried for this long. */
#define RELAY_TLS_BACKOFF_MS (3600 * 1000)

/* What a reply answers. */
enum cmd {
	C_GREET, C_EHLO, C_HELO, C_STARTTLS, C_RSET_REUSE, C_MAIL, C_RCPT,
	C_DATA, C_DOT, C_DOT_IGNORE, C_RSET_END,
};

static const char *const cmd_names[] = {
	[C_GREET] = "the greeting", [C_EHLO] = "EHLO", [C_HELO] = "HELO",
	[C_STARTTLS] = "STARTTLS", [C_RSET_REUSE] = "RSET",
	[C_MAIL] = "MAIL FROM", [C_RCPT] = "RCPT TO", [C_DATA] = "DATA",
	[C_DOT] = "end of DATA", [C_DOT_IGNORE] = "end of DATA",
	[C_RSET_END] = "RSET",
};

enum sstate {
	SS_RESOLVE,	/* uv_getaddrinfo running */
	SS_CONNECT,	/* uv_tcp_connect running */
	SS_SETUP,	/* greeting, EHLO/HELO, STARTTLS */
	SS_REUSE,	/* RSET before a reused session's next message */
	SS_SCANWAIT,	/* ready, the message is still being scanned */
	SS_TXN,		/* MAIL/RCPT/DATA replies, final reply */
	SS_DATA,	/* streaming the message */
	SS_IDLE,	/* waiting for the next message (idle_s) */
	SS_QUIT,	/* QUIT sent, closing */
	SS_DEAD,	/* closed; freed when libuv lets go */
};

/* Where a message is. */
enum mwhere { M_NONE, M_QUEUE, M_DONE };

struct relay;
struct rsess;

/* One relay_send. */
struct rmsg {
	TAILQ_ENTRY(rmsg) link;
	enum mwhere where;
	struct relay *r;
	relay_done_cb cb;
	void *arg;
	char *from;
	struct relay_rcpt *rcpts;	/* owned copies */
	size_t nrcpt;
	char *ret, *envid;
	char *input_path, *input_mem;
	uint64_t input_off, input_len;
	struct result *res;
	bool *done;			/* res[i] is final */
	bool *accepted;			/* RCPT got 2xx in this transaction */
	bool utf8_from;			/* non-ASCII return-path */
	bool *utf8_rcpt;
	struct rsess *sess;		/* the session working on it */
	enum relay_host host;		/* what its sessions showed */
	bool reported;			/* callback ran */

	/* The scan (thread pool for files): 8-bit octets, size on the wire. */
	uv_work_t work;
	bool scan_pending;
	int scan_err;
	const char *scan_why;
	bool eightbit;
	uint64_t wire_size;
};

/* A TCP connection attempt (and then the connection). */
struct rconn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct rsess *s;
	bool creq_busy;		/* connect callback still to come */
	bool open;		/* uv_close not yet called */
	bool closed;		/* close callback ran */
};

/* A reply we wait for. */
struct pend {
	enum cmd cmd;
	size_t idx;		/* recipient for C_RCPT */
};

/* A write in flight. */
struct rwrite {
	uv_write_t req;		/* first: the request is the object */
	struct rsess *s;
	char *data;
	bool data_phase;
};

/* One connection to the relay. */
struct rsess {
	LIST_ENTRY(rsess) link;
	struct relay *r;
	uint64_t id;
	enum sstate st;
	bool live;		/* counts toward `connections` */
	int pending;		/* handles and requests libuv holds */
	uv_timer_t timer;
	bool timer_open;
	uv_getaddrinfo_t gai;
	bool gai_busy;
	struct addrinfo *ai, *ai_cur;
	char addr[64];		/* numeric address text (bounded by format) */
	struct rconn *conn;
	int last_err;
	struct tls_conn *tls;
	bool tls_on;
	struct buf in;		/* plaintext received, not yet parsed */
	bool in_reset;		/* STARTTLS threw the rest of `in` away */
	char *rbuf;
	struct smtpreply rp;
	struct pend *pend;
	size_t pcap, phead, ptail;
	unsigned ext;
	uint64_t size_max;	/* SIZE n; 0 = no limit given */
	bool esmtp;
	bool logged;		/* connection line written */
	unsigned txns;
	struct rmsg *cur;

	/* The transaction. */
	bool pipelined;
	bool mail_failed;
	size_t naccepted, next_rcpt;
	struct buf txn_reply;

	/* The message stream. */
	struct smtpcodec_enc enc;	/* LF -> CRLF, dot-stuffing */
	uint64_t data_off;
	uv_fs_t freq;
	uv_file fd;
	bool fs_busy;
	char *fbuf;
	uv_shutdown_t sreq;
};

struct relay {
	uv_loop_t *loop;
	struct relay_settings s;	/* strings point to the copies below */
	char *host_port, *helo, *host, *port;
	struct tls_ctx *tls;
	struct logger *lg;
	uv_timer_t kick;		/* callbacks, dispatch: from the loop */
	TAILQ_HEAD(, rmsg) queue;	/* waiting for a session (FIFO) */
	TAILQ_HEAD(, rmsg) done;	/* answered, callback to run */
	LIST_HEAD(, rsess) sessions;
	unsigned nlive;			/* sessions counting toward the bound */
	unsigned nsess;			/* session objects not yet freed */
	unsigned nmsg;			/* message objects not yet freed */
	unsigned active;		/* sent, callback not yet run */
	uint64_t next_sid;
	uint64_t tls_off_until;		/* uv_now() ms */
	bool closing, in_kick, kick_closed;
	relay_closed_cb ccb;
	void *carg;
};

/* ------------------------------------------------------------------ */
/* Small helpers.                                                      */

/* Log when a logger was given. */
static void rlog(const struct relay *r, enum log_level l, const char *fmt,
	...) __attribute__((format(printf, 3, 4)));

/* Log when a logger was given. */
static void
rlog(const struct relay *r, enum log_level l, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(r->lg, LOG_SMTP, l))
		return;
	va_start(ap, fmt);
	log_vmsg(r->lg, LOG_SMTP, l, fmt, ap);
	va_end(ap);
}

/* True when s holds a control character (CR, LF, ...). */
static bool
has_ctl(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
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

/* True for an xtext value that can go into a command (printable, no
   space). */
static bool
xtext_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* Fill a result; on allocation failure keep kind, code and status. */
static void
set_result(struct result *res, enum result_kind kind, int reply,
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
static enum result_kind
class_kind(int code)
{
	return code / 100 == 2 ? RESULT_DELIVERED : code / 100 == 4 ?
	    RESULT_DEFERRED : RESULT_FAILED;
}

/* Start the kick timer: reports and dispatch run from the loop. */
static void on_kick(uv_timer_t *t);

/* Make on_kick run soon. */
static void
kick(struct relay *r)
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
		kick(r);
}

/* Free the message once its callback ran and no scan holds it. */
static void
msg_maybe_free(struct rmsg *m)
{
	if (m->reported && !m->scan_pending && m->where == M_NONE)
		msg_free(m);
}

/* Queue the callback of a message (every result is final). */
static void
msg_report(struct rmsg *m)
{
	struct relay *r = m->r;

	if (m->where == M_QUEUE)
		TAILQ_REMOVE(&r->queue, m, link);
	if (m->where == M_DONE)
		return;
	m->sess = NULL;
	m->where = M_DONE;
	TAILQ_INSERT_TAIL(&r->done, m, link);
	kick(r);
}

/* Give every recipient without a final result this one. */
static void
msg_settle_rest(struct rmsg *m, enum result_kind kind, int reply,
	const char *status, const char *text)
{
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->done[i])
			continue;
		set_result(&m->res[i], kind, reply, status, text);
		m->done[i] = true;
	}
}

/* Any recipient still without a final result? */
static bool
msg_open(const struct rmsg *m)
{
	for (size_t i = 0; i < m->nrcpt; i++)
		if (!m->done[i])
			return true;
	return false;
}

/* Count 8-bit octets and line ends (for SIZE) of a piece of message. */
struct scan {
	bool eightbit;
	bool prev_cr;
	bool last_lf;
	uint64_t lf_added;	/* CRs the LF -> CRLF conversion adds */
};

/* Scan n bytes at p. */
static void
scan_bytes(struct scan *sc, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x80)
			sc->eightbit = true;
		if (c == '\n' && !sc->prev_cr)
			sc->lf_added++;
		sc->prev_cr = c == '\r';
	}
	if (n > 0)
		sc->last_lf = p[n - 1] == '\n';
}

/* The size on the wire (RFC 1870: CRLF line ends, no dot-stuffing). */
static uint64_t
scan_size(const struct scan *sc, uint64_t len)
{
	return len + sc->lf_added + (len > 0 && !sc->last_lf ? 2 : 0);
}

/* Thread pool: read the message once, without keeping it. */
static void
scan_work(uv_work_t *w)
{
	struct rmsg *m = w->data;
	struct scan sc = { 0 };
	uint64_t done = 0;
	char *b = malloc(RELAY_CHUNK);
	int fd;

	if (b == NULL) {
		m->scan_err = -ENOMEM;
		m->scan_why = "out of memory";
		return;
	}
	if ((fd = open(m->input_path, O_RDONLY | O_CLOEXEC)) < 0) {
		m->scan_err = -errno;
		m->scan_why = "cannot open the message";
		free(b);
		return;
	}
	while (done < m->input_len) {
		uint64_t left = m->input_len - done;
		ssize_t n = pread(fd, b, left < RELAY_CHUNK ? (size_t)left :
		    RELAY_CHUNK, (off_t)(m->input_off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			m->scan_err = -errno;
			m->scan_why = "cannot read the message";
			break;
		}
		if (n == 0) {
			m->scan_err = -EIO;
			m->scan_why = "message file shorter than recorded";
			break;
		}
		scan_bytes(&sc, b, (size_t)n);
		done += (uint64_t)n;
	}
	close(fd);
	free(b);
	m->eightbit = sc.eightbit;
	m->wire_size = scan_size(&sc, m->input_len);
}

/* Start a session's transaction (defined below). */
static void txn_start(struct rsess *s);

/* Loop: the scan finished. */
static void
after_scan(uv_work_t *w, int status)
{
	struct rmsg *m = w->data;
	struct buf t = BUF_INIT;

	m->scan_pending = false;
	if (status < 0 && m->scan_err == 0) {
		m->scan_err = status;
		m->scan_why = "cannot read the message";
	}
	if (m->scan_err < 0 && m->where == M_QUEUE) {
		buf_printf(&t, "%s: %s", m->scan_why,
		    uv_strerror(m->scan_err));
		msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.0",
		    t.data ? t.data : m->scan_why);
		buf_free(&t);
		msg_report(m);
	} else if (m->sess && m->sess->st == SS_SCANWAIT) {
		txn_start(m->sess);
	} else if (m->where == M_QUEUE) {
		kick(m->r);
	}
	msg_maybe_free(m);
}

/* ------------------------------------------------------------------ */
/* Sessions: teardown.                                                 */

/* Free the session once it is closed and libuv holds nothing of it. */
static void
sess_maybe_free(struct rsess *s)
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
	kick(r);
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
	sess_maybe_free(s);
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
	sess_maybe_free(s);
}

/* The queue file was closed. */
static void
on_file_closed(uv_fs_t *req)
{
	struct rsess *s = req->data;

	uv_fs_req_cleanup(req);
	free(req);
	s->pending--;
	sess_maybe_free(s);
}

/* Close the message file on the thread pool (never while a read runs). */
static void
file_close(struct rsess *s)
{
	uv_fs_t *req;

	if (s->fd < 0 || s->fs_busy)
		return;
	if ((req = malloc(sizeof(*req))) == NULL) {
		close(s->fd);	/* no memory: close(2) of a read-only file */
		s->fd = -1;
		return;
	}
	req->data = s;
	if (uv_fs_close(s->r->loop, req, s->fd, on_file_closed) < 0) {
		free(req);
		close(s->fd);
	} else {
		s->pending++;
	}
	s->fd = -1;
}

/* Close everything of the session; its message must have been handed on. */
static void
sess_close(struct rsess *s)
{
	struct relay *r = s->r;

	if (s->st == SS_DEAD)
		return;
	if (s->cur) {
		struct rmsg *m = s->cur;

		msg_settle_rest(m, RESULT_DEFERRED, 451, "4.4.2",
		    "relay session closed");
		s->cur = NULL;
		msg_report(m);
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
	file_close(s);
	if (s->tls) {
		tls_conn_free(s->tls);
		s->tls = NULL;
	}
	if (s->ai && !s->gai_busy) {
		uv_freeaddrinfo(s->ai);
		s->ai = s->ai_cur = NULL;
	}
	kick(r);
}

/* Hand the session's untried message to another session (below). */
static void sess_requeue(struct rsess *s, const char *why);

/* Give the message's open recipients one result, then close. */
static void sess_fail(struct rsess *s, int reply, const char *status,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));

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
static void
sess_fail(struct rsess *s, int reply, const char *status, const char *fmt,
	...)
{
	struct buf t = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	if (s->cur && (s->st == SS_REUSE || s->st == SS_SCANWAIT)) {
		sess_requeue(s, t.data ? t.data : "session failed");
		buf_free(&t);
		return;
	}
	rlog(s->r, LOG_PROBLEMS, "session=%llu dropped: %d %s %s",
	    (unsigned long long)s->id, reply, status,
	    t.data ? t.data : "(out of memory)");
	if (s->cur) {
		struct rmsg *m = s->cur;

		if (sess_setting_up(s) && !status_is_ours(status))
			m->host = RELAY_HOST_DOWN;
		msg_settle_rest(m, class_kind(reply), reply, status,
		    t.data ? t.data : "relay session failed");
		s->cur = NULL;
		msg_report(m);
	}
	buf_free(&t);
	sess_close(s);
}

/*
 * Close the session but give its message, which nothing was tried for
 * yet, to another session (front of the queue).
 */
static void
sess_requeue(struct rsess *s, const char *why)
{
	struct relay *r = s->r;
	struct rmsg *m = s->cur;

	rlog(r, LOG_PROBLEMS, "session=%llu dropped before its transaction "
	    "(%s); the message goes to another session",
	    (unsigned long long)s->id, why);
	if (m && !r->closing) {
		s->cur = NULL;
		m->sess = NULL;
		m->where = M_QUEUE;
		TAILQ_INSERT_HEAD(&r->queue, m, link);
	} else if (m) {
		msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.2",
		    "relay client shutting down");
		s->cur = NULL;
		msg_report(m);
	}
	sess_close(s);
}

/* ------------------------------------------------------------------ */
/* Sessions: output.                                                   */

/* Arm the timer: `timeout_s` without progress drops the session. */
static void on_timer(uv_timer_t *t);

/* (Re)start the step timer. */
static void
sess_arm(struct rsess *s, uint64_t secs)
{
	if (s->timer_open)
		uv_timer_start(&s->timer, on_timer, secs * 1000, 0);
}

/* Resume the message stream (defined below). */
static void data_pump(struct rsess *s);

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
			sess_close(s);
		else if (s->st == SS_REUSE)
			sess_requeue(s, uv_strerror(status));
		else
			sess_fail(s, 451, "4.4.2", "connection to relay %s "
			    "lost: %s", s->r->host_port, uv_strerror(status));
	} else if (s->st == SS_DATA && data_phase) {
		sess_arm(s, s->r->s.timeout_s);
		data_pump(s);
	}
	sess_maybe_free(s);
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
static int
sess_send_owned(struct rsess *s, char *data, size_t len, bool data_phase)
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
static int cmd_add(struct rsess *s, struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Add one command line to a batch, logging it. */
static int
cmd_add(struct rsess *s, struct buf *b, const char *fmt, ...)
{
	size_t start = b->len;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	if (r == 0)
		rlog(s->r, LOG_LOWLEVEL, "session=%llu > %s",
		    (unsigned long long)s->id, b->data + start);
	if (r == 0)
		r = buf_puts(b, "\r\n");
	return r;
}

/* Expect one more reply. */
static int
pend_push(struct rsess *s, enum cmd c, size_t idx)
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
static int
sess_send_batch(struct rsess *s, struct buf *b, int built)
{
	char *p;
	size_t n = b->len;
	int r = built;

	if (r < 0 || (r = buf_steal(b, &p)) < 0) {
		buf_free(b);
		sess_fail(s, 451, "4.3.0", "out of memory");
		return r;
	}
	if ((r = sess_send_owned(s, p, n, false)) < 0) {
		sess_fail(s, 451, "4.4.2", "cannot send to relay %s: %s",
		    s->r->host_port, uv_strerror(r));
		return r;
	}
	sess_arm(s, s->r->s.timeout_s);
	return 0;
}

/* Send one command expecting one reply. */
static void sess_cmd(struct rsess *s, enum cmd c, size_t idx,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Send one command expecting one reply. */
static void
sess_cmd(struct rsess *s, enum cmd c, size_t idx, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (r == 0)
		rlog(s->r, LOG_LOWLEVEL, "session=%llu > %s",
		    (unsigned long long)s->id, b.data);
	if (r == 0)
		r = buf_puts(&b, "\r\n");
	if (r == 0)
		r = pend_push(s, c, idx);
	sess_send_batch(s, &b, r);
}

/* QUIT (we do not wait for the 221, like Postfix), then close. */
static void
on_shutdown(uv_shutdown_t *req, int status)
{
	struct rsess *s = req->data;

	(void)status;
	s->pending--;
	sess_close(s);
	sess_maybe_free(s);
}

/* Leave the relay politely. */
static void
sess_quit(struct rsess *s)
{
	struct relay *r = s->r;
	struct buf b = BUF_INIT;
	char *p;
	size_t n;

	if (s->live) {
		s->live = false;
		r->nlive--;
		kick(r);
	}
	s->st = SS_QUIT;
	if (cmd_add(s, &b, "QUIT") < 0 || (n = b.len,
	    buf_steal(&b, &p)) < 0) {
		buf_free(&b);
		sess_close(s);
		return;
	}
	if (sess_send_owned(s, p, n, false) < 0) {
		sess_close(s);
		return;
	}
	s->sreq.data = s;
	if (uv_shutdown(&s->sreq, (uv_stream_t *)&s->conn->tcp,
	    on_shutdown) < 0) {
		sess_close(s);
		return;
	}
	s->pending++;
	sess_arm(s, r->s.timeout_s);
}

/* ------------------------------------------------------------------ */
/* The transaction.                                                    */

/* Where a reply's result goes. */
enum scope { TO_ONE, TO_REST, TO_ACCEPTED };

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
static void
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
/* The message stream: LF -> CRLF, dot-stuffing, final dot.             */

/* Encode and send one piece of the message. */
static int
data_chunk(struct rsess *s, const char *p, size_t n)
{
	char *out = malloc(2 * n + 1);
	size_t len;

	if (out == NULL)
		return -ENOMEM;
	len = smtpcodec_encode(&s->enc, p, n, out);
	s->data_off += n;
	return sess_send_owned(s, out, len, true);
}

/* The whole message was handed over: end it and wait for the reply. */
static void
data_finish(struct rsess *s)
{
	struct buf b = BUF_INIT;
	size_t n;
	char *p;
	int r;

	file_close(s);
	r = s->enc.bol ? 0 : buf_puts(&b, "\r\n");
	if (r == 0)
		r = buf_puts(&b, ".\r\n");
	if (r == 0)
		r = pend_push(s, C_DOT, 0);
	n = b.len;
	if (r == 0)
		r = buf_steal(&b, &p);
	if (r < 0) {
		buf_free(&b);
		sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	rlog(s->r, LOG_LOWLEVEL, "session=%llu > (message, %llu bytes) .",
	    (unsigned long long)s->id, (unsigned long long)s->data_off);
	s->st = SS_TXN;
	if ((r = sess_send_owned(s, p, n, false)) < 0) {
		sess_fail(s, 451, "4.4.2", "cannot send to relay %s: %s",
		    s->r->host_port, uv_strerror(r));
		return;
	}
	sess_arm(s, s->r->s.timeout_s);
}

/* A chunk of the queue file was read. */
static void
on_fs_read(uv_fs_t *req)
{
	struct rsess *s = req->data;
	ssize_t n = req->result;
	int r;

	uv_fs_req_cleanup(req);
	s->fs_busy = false;
	s->pending--;
	if (s->st != SS_DATA) {
		file_close(s);
	} else if (n < 0) {
		sess_fail(s, 451, "4.3.0", "cannot read the message: %s",
		    uv_strerror((int)n));
	} else if (n == 0) {
		sess_fail(s, 451, "4.3.0", "cannot read the message: "
		    "file shorter than recorded");
	} else if ((r = data_chunk(s, s->fbuf, (size_t)n)) < 0) {
		sess_fail(s, 451, "4.4.2", "cannot send to relay %s: %s",
		    s->r->host_port, uv_strerror(r));
	} else {
		data_pump(s);
	}
	sess_maybe_free(s);
}

/* Feed the message while the socket's queue is short. */
static void
data_pump(struct rsess *s)
{
	struct rmsg *m = s->cur;
	uv_stream_t *st = (uv_stream_t *)&s->conn->tcp;
	int r;

	while (s->st == SS_DATA && !s->fs_busy) {
		uint64_t left = m->input_len - s->data_off;
		size_t n = left < RELAY_CHUNK ? (size_t)left : RELAY_CHUNK;

		if (left == 0) {
			data_finish(s);
			return;
		}
		if (uv_stream_get_write_queue_size(st) >= RELAY_WQ_HIGH)
			return;
		if (m->input_path == NULL) {
			if ((r = data_chunk(s, m->input_mem + s->data_off,
			    n)) < 0) {
				sess_fail(s, 451, "4.4.2", "cannot send to "
				    "relay %s: %s", s->r->host_port,
				    uv_strerror(r));
				return;
			}
			continue;
		}
		uv_buf_t b = uv_buf_init(s->fbuf, (unsigned)n);

		s->freq.data = s;
		if ((r = uv_fs_read(s->r->loop, &s->freq, s->fd, &b, 1,
		    (int64_t)(m->input_off + s->data_off),
		    on_fs_read)) < 0) {
			sess_fail(s, 451, "4.3.0", "cannot read the message: "
			    "%s", uv_strerror(r));
			return;
		}
		s->fs_busy = true;
		s->pending++;
		return;
	}
}

/* The queue file was opened for the DATA phase. */
static void
on_fs_open(uv_fs_t *req)
{
	struct rsess *s = req->data;
	ssize_t r = req->result;

	uv_fs_req_cleanup(req);
	s->fs_busy = false;
	s->pending--;
	if (r >= 0)
		s->fd = (uv_file)r;
	if (s->st != SS_DATA)
		file_close(s);
	else if (r < 0)
		sess_fail(s, 451, "4.3.0", "cannot open the message: %s",
		    uv_strerror((int)r));
	else
		data_pump(s);
	sess_maybe_free(s);
}

/* 354: stream the message. */
static void
data_start(struct rsess *s)
{
	struct rmsg *m = s->cur;
	int r;

	s->st = SS_DATA;
	s->enc.bol = true;
	s->enc.cr = false;
	s->data_off = 0;
	sess_arm(s, s->r->s.timeout_s);
	if (m->input_path == NULL || m->input_len == 0) {
		data_pump(s);
		return;
	}
	if (s->fbuf == NULL && (s->fbuf = malloc(RELAY_CHUNK)) == NULL) {
		sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	s->freq.data = s;
	if ((r = uv_fs_open(s->r->loop, &s->freq, m->input_path,
	    O_RDONLY | O_CLOEXEC, 0, on_fs_open)) < 0) {
		sess_fail(s, 451, "4.3.0", "cannot open the message: %s",
		    uv_strerror(r));
		return;
	}
	s->fs_busy = true;
	s->pending++;
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
static bool
sess_tls_handshaking(const struct rsess *s)
{
	return s->tls_on && !tls_established(s->tls);
}

/* The handshake failed: no STARTTLS for a while, retry the message. */
static void
sess_tls_failed(struct rsess *s, const char *why)
{
	struct relay *r = s->r;

	rlog(r, LOG_PROBLEMS, "session=%llu TLS handshake with relay %s "
	    "failed: %s; no STARTTLS for %us", (unsigned long long)s->id,
	    r->host_port, why, RELAY_TLS_BACKOFF_MS / 1000);
	r->tls_off_until = uv_now(r->loop) + RELAY_TLS_BACKOFF_MS;
	sess_requeue(s, "TLS handshake failed");
}

/* Move received ciphertext through TLS into `in`; 0 or the failure. */
static int sess_tls_pump_in(struct rsess *s);

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
static void
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

/* One line of a reply (CRLF removed). */
static void
handle_line(struct rsess *s, const char *line, size_t len)
{
	struct smtpreply rp;
	const char *why = NULL;
	int r;

	rlog(s->r, LOG_LOWLEVEL, "session=%llu < %.*s",
	    (unsigned long long)s->id, (int)(len > 2000 ? 2000 : len), line);
	r = smtpreply_line(&s->rp, line, len, &why);
	if (r == -ENOMEM) {
		sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	if (r < 0) {
		sess_fail(s, 451, "4.5.0", "relay %s protocol error: %s",
		    s->r->host_port, why);
		return;
	}
	if (r == SMTPREPLY_MORE)
		return;
	rp = s->rp;
	s->rp = (struct smtpreply)SMTPREPLY_INIT;
	handle_reply(s, &rp);
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
		sess_fail(s, 451, "4.5.0", "relay %s protocol error: reply "
		    "line longer than %d bytes", s->r->host_port,
		    SMTPREPLY_MAX);
}

/* Move received ciphertext through TLS into `in`; 0 or the failure. */
static int
sess_tls_pump_in(struct rsess *s)
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
	if (sess_tls_handshaking(s))
		sess_tls_failed(s, r == -ECONNRESET ? "connection closed" :
		    why ? why : uv_strerror(r));
	else if (r == -ECONNRESET && (s->st == SS_IDLE || s->st == SS_QUIT))
		sess_close(s);
	else
		sess_fail(s, 451, "4.4.2", "TLS with relay %s failed: %s",
		    s->r->host_port, r == -ECONNRESET ? "closed by the relay" :
		    why ? why : uv_strerror(r));
	return r;
}

/* Hand out the session's read buffer. */
static void
on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
	struct rconn *c = h->data;

	(void)size;
	*b = uv_buf_init(c->s->rbuf, RELAY_CHUNK);
}

/* Bytes (or EOF) from the relay. */
static void
on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct rconn *c = st->data;
	struct rsess *s = c->s;
	int r;

	if (s->conn != c || s->st == SS_DEAD || n == 0)
		return;
	if (n < 0) {
		if (s->st == SS_IDLE || s->st == SS_QUIT)
			sess_close(s);
		else if (sess_tls_handshaking(s))
			sess_tls_failed(s, "connection closed during the "
			    "handshake");
		else if (s->st == SS_REUSE)
			sess_requeue(s, "connection closed");
		else
			sess_fail(s, 451, "4.4.2", "connection to relay %s "
			    "lost: %s", s->r->host_port, n == UV_EOF ?
			    "closed by the relay" : uv_strerror((int)n));
		return;
	}
	if (s->st != SS_IDLE)
		sess_arm(s, s->r->s.timeout_s);
	if (s->tls_on) {
		if ((r = tls_feed(s->tls, b->base, (size_t)n)) < 0) {
			sess_fail(s, 451, "4.3.0", "TLS: %s", strerror(-r));
			return;
		}
		if (sess_tls_pump_in(s) < 0)
			return;
	} else if (buf_append(&s->in, b->base, (size_t)n) < 0) {
		sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	sess_input(s);
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
	if ((e = uv_read_start((uv_stream_t *)&c->tcp, on_alloc,
	    on_read)) < 0) {
		sess_fail(s, 451, "4.4.1", "cannot read from relay %s: %s",
		    s->r->host_port, uv_strerror(e));
		return;
	}
	s->st = SS_SETUP;
	rlog(s->r, LOG_LOWLEVEL, "session=%llu connected to %s (%s)",
	    (unsigned long long)s->id, s->r->host_port, s->addr);
	if (pend_push(s, C_GREET, 0) < 0) {
		sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	sess_arm(s, s->r->s.timeout_s);
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
		sess_arm(s, r->s.timeout_s);
		return;
	}
	if (s->addr[0] && strcmp(s->addr, r->host) != 0)
		sess_fail(s, 451, "4.4.1", "cannot connect to relay %s (%s): "
		    "%s", r->host_port, s->addr, uv_strerror(s->last_err ?
		    s->last_err : UV_EADDRNOTAVAIL));
	else
		sess_fail(s, 451, "4.4.1", "cannot connect to relay %s: %s",
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
		sess_fail(s, 451, "4.4.3", "cannot resolve relay host %s: %s",
		    s->r->host, uv_strerror(status));
	} else {
		s->ai = s->ai_cur = res;
		connect_next(s);
	}
	sess_maybe_free(s);
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
		sess_fail(s, 451, "4.4.3", "cannot resolve relay host %s: "
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
		sess_quit(s);
		break;
	case SS_QUIT:
		sess_close(s);
		break;
	case SS_REUSE:
		sess_requeue(s, "no reply to RSET");
		break;
	case SS_DATA:
		sess_fail(s, 451, "4.4.2", "relay %s timed out: no progress "
		    "sending the message for %llus", r->host_port,
		    (unsigned long long)r->s.timeout_s);
		break;
	case SS_SETUP:
		if (sess_tls_handshaking(s)) {
			sess_tls_failed(s, "timed out");
			break;
		}
		/* FALLTHROUGH */
	case SS_TXN:
		sess_fail(s, 451, "4.4.2", "relay %s timed out waiting for "
		    "the reply to %s (%llus)", r->host_port,
		    s->phead < s->ptail ? cmd_names[s->pend[s->phead].cmd] :
		    "a command", (unsigned long long)r->s.timeout_s);
		break;
	case SS_SCANWAIT:
	case SS_DEAD:
		break;
	}
}

/* A new session for message m. */
static void
sess_new(struct relay *r, struct rmsg *m)
{
	struct rsess *s = calloc(1, sizeof(*s));
	struct addrinfo hints;
	int e;

	if (s == NULL || (s->rbuf = malloc(RELAY_CHUNK)) == NULL) {
		free(s);
		msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.0",
		    "out of memory");
		msg_report(m);
		return;
	}
	s->r = r;
	s->id = ++r->next_sid;
	s->fd = -1;
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
		sess_fail(s, 451, "4.4.3", "cannot resolve relay host %s: %s",
		    r->host, uv_strerror(e));
		return;
	}
	s->gai_busy = true;
	s->pending++;
	sess_arm(s, r->s.timeout_s);
}

/* Give an idle session the next message: RSET first. */
static void
sess_reuse(struct rsess *s, struct rmsg *m)
{
	s->cur = m;
	m->sess = s;
	s->st = SS_REUSE;
	sess_cmd(s, C_RSET_REUSE, 0, "RSET");
}

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
		if (!msg_open(m)) {
			msg_report(m);
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
			sess_reuse(idle, m);
		else
			sess_new(r, m);
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
			sess_quit(s);
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
		msg_maybe_free(m);
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
	*host = mp_strndup(h, (size_t)(hend - h));
	*port = mp_strdup(*rest ? rest + 1 : "25");
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
	    has_ctl(s->host_port) || has_ctl(s->helo))
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
	if (e == 0 && ((r->host_port = mp_strdup(s->host_port)) == NULL ||
	    (r->helo = mp_strdup(s->helo && s->helo[0] ? s->helo :
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
	if ((m->from = mp_strdup(mm->from ? mm->from : "")) == NULL)
		return -ENOMEM;
	if (mm->ret && (strcasecmp(mm->ret, "FULL") == 0 ||
	    strcasecmp(mm->ret, "HDRS") == 0) &&
	    (m->ret = mp_strdup(toupper((unsigned char)mm->ret[0]) == 'F' ?
	    "FULL" : "HDRS")) == NULL)
		return -ENOMEM;
	if (mm->envid && (m->envid = mp_strdup(mm->envid)) == NULL)
		return -ENOMEM;
	if (mm->input_path && (m->input_path =
	    mp_strdup(mm->input_path)) == NULL)
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
		if ((m->rcpts[i].addr = mp_strdup(rc->addr ? rc->addr :
		    "")) == NULL || (rc->orcpt && (m->rcpts[i].orcpt =
		    mp_strdup(rc->orcpt)) == NULL))
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
	if (has_ctl(m->from))
		msg_settle_rest(m, RESULT_FAILED, 553, "5.1.7",
		    "the return-path holds a control character");
	m->utf8_from = has_8bit(m->from);
	for (size_t i = 0; i < m->nrcpt; i++) {
		const char *a = m->rcpts[i].addr;

		m->utf8_rcpt[i] = has_8bit(a);
		if (!m->done[i] && (a[0] == '\0' || has_ctl(a))) {
			set_result(&m->res[i], RESULT_FAILED, 553, "5.1.3",
			    "the recipient address is empty or holds a "
			    "control character");
			m->done[i] = true;
		}
	}

	if (m->input_path && m->input_len > 0) {
		m->work.data = m;
		if ((e = uv_queue_work(r->loop, &m->work, scan_work,
		    after_scan)) < 0) {
			msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.0",
			    "cannot read the message: cannot start the scan");
		} else {
			m->scan_pending = true;
		}
	} else {
		struct scan sc = { 0 };

		scan_bytes(&sc, m->input_mem, (size_t)m->input_len);
		m->eightbit = sc.eightbit;
		m->wire_size = scan_size(&sc, m->input_len);
	}
	if (!msg_open(m))
		msg_report(m);
	kick(r);
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
		msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.2",
		    "relay client shutting down");
		msg_report(m);
	}
	LIST_FOREACH(s, &r->sessions, link)
		if (s->st == SS_IDLE)
			sess_quit(s);
	kick(r);
}
