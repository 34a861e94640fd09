/*
 * relay_data: the relay's message bytes. Owns the scan of a message
 * (8-bit octets, its size on the wire; on the thread pool for a queue
 * file) and the DATA stream: reading the stored message (the queue file
 * at an offset, or memory) in chunks, encoding it through smtpcodec
 * (LF -> CRLF, dot-stuffing) and the final dot. The reader duplicates
 * pipe.c's stdin feeder (issue 12 point 3 merges them). Promises: file
 * reads and closes run on the thread pool; at most one read in flight and
 * none while the socket's write queue is long. Part of relay
 * (relay_int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "buf.h"
#include "relay_int.h"

/* ------------------------------------------------------------------ */
/* The scan: 8-bit octets and the size on the wire.                    */

/* Scan n bytes at p. */
void
relay__scan_bytes(struct scan *sc, const char *p, size_t n)
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
uint64_t
relay__scan_size(const struct scan *sc, uint64_t len)
{
	return len + sc->lf_added + (len > 0 && !sc->last_lf ? 2 : 0);
}

/* Thread pool: read the message once, without keeping it. */
void
relay__scan_work(uv_work_t *w)
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
		relay__scan_bytes(&sc, b, (size_t)n);
		done += (uint64_t)n;
	}
	close(fd);
	free(b);
	m->eightbit = sc.eightbit;
	m->wire_size = relay__scan_size(&sc, m->input_len);
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

/* The queue file was closed. */
static void
on_file_closed(uv_fs_t *req)
{
	struct rsess *s = req->data;

	uv_fs_req_cleanup(req);
	free(req);
	s->pending--;
	relay__sess_maybe_free(s);
}

/* Close the message file on the thread pool (never while a read runs). */
void
relay__file_close(struct rsess *s)
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
on_fs_read(uv_fs_t *req)
{
	struct rsess *s = req->data;
	ssize_t n = req->result;
	int r;

	uv_fs_req_cleanup(req);
	s->fs_busy = false;
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
				relay__sess_fail(s, 451, "4.4.2", "cannot send to "
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
			relay__sess_fail(s, 451, "4.3.0", "cannot read the message: "
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
		relay__file_close(s);
	else if (r < 0)
		relay__sess_fail(s, 451, "4.3.0", "cannot open the message: %s",
		    uv_strerror((int)r));
	else
		relay__data_pump(s);
	relay__sess_maybe_free(s);
}

/* 354: stream the message. */
void
relay__data_start(struct rsess *s)
{
	struct rmsg *m = s->cur;
	int r;

	s->st = SS_DATA;
	s->enc = (struct smtpcodec_enc)SMTPCODEC_ENC_INIT;
	s->data_off = 0;
	relay__sess_arm(s, s->r->s.timeout_s);
	if (m->input_path == NULL || m->input_len == 0) {
		relay__data_pump(s);
		return;
	}
	if (s->fbuf == NULL && (s->fbuf = malloc(RELAY_CHUNK)) == NULL) {
		relay__sess_fail(s, 451, "4.3.0", "out of memory");
		return;
	}
	s->freq.data = s;
	if ((r = uv_fs_open(s->r->loop, &s->freq, m->input_path,
	    O_RDONLY | O_CLOEXEC, 0, on_fs_open)) < 0) {
		relay__sess_fail(s, 451, "4.3.0", "cannot open the message: %s",
		    uv_strerror(r));
		return;
	}
	s->fs_busy = true;
	s->pending++;
}
