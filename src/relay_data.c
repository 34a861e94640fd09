/*
 * relay_data: the relay's message bytes. Owns the scan of a message
 * (8-bit octets, its size on the wire; on the thread pool for a queue
 * file) and the DATA stream: the stored message (the queue file at an
 * offset, or memory), read through msgsrc in chunks, encoded through
 * smtpcodec (LF -> CRLF, dot-stuffing), and the final dot. Promises: file
 * reads and closes run on the thread pool; at most one read in flight and
 * none while the socket's write queue is long; a session's msgsrc is
 * described anew only once the last message's file is closed. Part of
 * relay (relay_int.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "buf.h"
#include "relay_int.h"

/* ------------------------------------------------------------------ */
/* The scan: 8-bit octets and the size on the wire.                    */

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

/* Scan one chunk (msgsrc_each's callback). */
static int
scan_chunk(void *arg, const char *p, size_t n)
{
	scan_bytes(arg, p, n);
	return 0;
}

/* Scan the message: 8-bit octets, size on the wire, scan_err/why. */
void
relay__scan_msg(struct rmsg *m, char *buf)
{
	struct msgsrc ms;
	struct scan sc = { 0 };
	const char *why;
	int r;

	/* An empty message is not opened. */
	msgsrc_init(&ms, NULL, m->input_len > 0 ? m->input_path : NULL,
	    m->input_mem, m->input_off, m->input_len, NULL, NULL);
	if ((r = msgsrc_each(&ms, buf, RELAY_CHUNK, scan_chunk, &sc,
	    &why)) < 0) {
		m->scan_err = r;
		m->scan_why = why;
	}
	m->eightbit = sc.eightbit;
	m->wire_size = scan_size(&sc, m->input_len);
}

/* Thread pool: read the message once, without keeping it. */
void
relay__scan_work(uv_work_t *w)
{
	struct rmsg *m = w->data;
	char *b = malloc(RELAY_CHUNK);

	if (b == NULL) {
		m->scan_err = -ENOMEM;
		m->scan_why = "out of memory";
		return;
	}
	relay__scan_msg(m, b);
	free(b);
}

/* Loop: the scan finished. */
void
relay__after_scan(uv_work_t *w, int status)
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
		relay__msg_settle_rest(m, RESULT_DEFERRED, 451, "4.3.0",
		    t.data ? t.data : m->scan_why);
		buf_free(&t);
		relay__msg_report(m);
	} else if (m->sess && m->sess->st == SS_SCANWAIT) {
		relay__txn_start(m->sess);
	} else if (m->where == M_QUEUE) {
		relay__kick(m->r);
	}
	relay__msg_maybe_free(m);
}

/* ------------------------------------------------------------------ */
/* The message stream: LF -> CRLF, dot-stuffing, final dot.            */

/* Describe the next message, open its file or stream it (below). */
static void data_begin(struct rsess *s);

/* The queue file was closed: a DATA waiting for it may begin. */
static void
on_file_closed(struct rsess *s)
{
	s->pending--;
	if (s->src_wait && s->st == SS_DATA) {
		s->src_wait = false;
		data_begin(s);
	}
	relay__sess_maybe_free(s);
}

/* Close the message file on the thread pool (never while a read runs). */
void
relay__file_close(struct rsess *s)
{
	if (msgsrc_close(&s->src) == 1)
		s->pending++;
}


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
	return relay__sess_send_owned(s, out, len, true);
}

/* The whole message was handed over: end it and wait for the reply. */
static void
data_finish(struct rsess *s)
{
	struct buf b = BUF_INIT;
	size_t n;
	char *p;
	int r;

	relay__file_close(s);
	r = buf_puts(&b, smtpcodec_encode_end(&s->enc));
	if (r == 0)
		r = relay__pend_push(s, C_DOT, 0);
	n = b.len;
	if (r == 0)
		r = buf_steal(&b, &p);
	if (r < 0) {
		buf_free(&b);
		relay__sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	relay__rlog(s->r, LOG_LOWLEVEL, "session=%llu > (message, %llu bytes) .",
	    (unsigned long long)s->id, (unsigned long long)s->data_off);
	s->st = SS_TXN;
	if ((r = relay__sess_send_owned(s, p, n, false)) < 0) {
		relay__sess_fail(s, 451, "4.4.2", "cannot send to relay %s: %s",
		    s->r->host_port, uv_strerror(r));
		return;
	}
	relay__sess_arm(s, s->r->s.timeout_s);
}

/* A chunk of the queue file was read. */
static void
on_fs_read(struct rsess *s, ssize_t n)
{
	int r;

	s->pending--;
	if (s->st != SS_DATA) {
		relay__file_close(s);
	} else if (n < 0) {
		relay__sess_fail(s, 451, "4.3.0", "cannot read the message: %s",
		    uv_strerror((int)n));
	} else if (n == 0) {
		relay__sess_fail(s, 451, "4.3.0", "cannot read the message: "
		    "file shorter than recorded");
	} else if ((r = data_chunk(s, s->fbuf, (size_t)n)) < 0) {
		relay__sess_fail(s, 451, "4.4.2", "cannot send to relay %s: %s",
		    s->r->host_port, uv_strerror(r));
	} else {
		relay__data_pump(s);
	}
	relay__sess_maybe_free(s);
}

/* Feed the message while the socket's queue is short. */
void
relay__data_pump(struct rsess *s)
{
	struct rmsg *m = s->cur;
	uv_stream_t *st = (uv_stream_t *)&s->conn->tcp;
	int r;

	while (s->st == SS_DATA && !msgsrc_busy(&s->src)) {
		uint64_t left = m->input_len - s->data_off;
		size_t n;

		if (left == 0) {
			data_finish(s);
			return;
		}
		if (uv_stream_get_write_queue_size(st) >= RELAY_WQ_HIGH)
			return;
		if (!msgsrc_is_file(&s->src)) {
			const char *p = msgsrc_mem_at(&s->src, s->data_off,
			    RELAY_CHUNK, &n);

			if ((r = data_chunk(s, p, n)) < 0) {
				relay__sess_fail(s, 451, "4.4.2", "cannot send to "
				    "relay %s: %s", s->r->host_port,
				    uv_strerror(r));
				return;
			}
			continue;
		}
		if ((r = msgsrc_read(&s->src, s->data_off, s->fbuf,
		    RELAY_CHUNK)) < 0) {
			relay__sess_fail(s, 451, "4.3.0", "cannot read the message: "
			    "%s", uv_strerror(r));
			return;
		}
		s->pending++;
		return;
	}
}

/* The queue file was opened for the DATA phase. */
static void
on_fs_open(struct rsess *s, ssize_t r)
{
	s->pending--;
	if (s->st != SS_DATA)
		relay__file_close(s);
	else if (r < 0)
		relay__sess_fail(s, 451, "4.3.0", "cannot open the message: %s",
		    uv_strerror((int)r));
	else
		relay__data_pump(s);
	relay__sess_maybe_free(s);
}

/* An operation on the queue file finished. */
static void
on_src(struct msgsrc *ms, enum msgsrc_op op, ssize_t r)
{
	struct rsess *s = ms->data;

	if (op == MSGSRC_OPEN)
		on_fs_open(s, r);
	else if (op == MSGSRC_READ)
		on_fs_read(s, r);
	else
		on_file_closed(s);
}

/* A new session reads no message yet. */
void
relay__data_init(struct rsess *s)
{
	msgsrc_init(&s->src, s->r->loop, NULL, NULL, 0, 0, on_src, s);
}

/* Describe the current message, then open its file or stream it. */
static void
data_begin(struct rsess *s)
{
	struct rmsg *m = s->cur;
	int r;

	msgsrc_init(&s->src, s->r->loop, m->input_path, m->input_mem,
	    m->input_off, m->input_len, on_src, s);
	if (m->input_path == NULL || m->input_len == 0) {
		relay__data_pump(s);
		return;
	}
	if (s->fbuf == NULL && (s->fbuf = malloc(RELAY_CHUNK)) == NULL) {
		relay__sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	if ((r = msgsrc_open(&s->src)) < 0) {
		relay__sess_fail(s, 451, "4.3.0", "cannot open the message: %s",
		    uv_strerror(r));
		return;
	}
	s->pending++;
}

/* 354: stream the message. */
void
relay__data_start(struct rsess *s)
{
	s->st = SS_DATA;
	s->enc = (struct smtpcodec_enc)SMTPCODEC_ENC_INIT;
	s->data_off = 0;
	relay__sess_arm(s, s->r->s.timeout_s);
	/* The last message's file may still be closing (msgsrc.h). */
	if (msgsrc_busy(&s->src)) {
		s->src_wait = true;
		return;
	}
	data_begin(s);
}
