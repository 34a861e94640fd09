/*
 * relay_int: what the pieces of the relay client share (relay.c,
 * relay_connect.c, relay_io.c, relay_session.c, relay_txn.c,
 * relay_data.c): its
 * objects, their states, and the functions one piece calls in another.
 * Not for use outside relay*.c.
 *
 * The shared functions keep their short names in the code; the macros
 * below give them the module's internal prefix (relay__) for the linker,
 * so `nm -g` shows only relay names.
 */
#ifndef MP_RELAY_INT_H
#define MP_RELAY_INT_H

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "buf.h"
#include "envelope.h"
#include "log.h"
#include "msgsrc.h"
#include "relay.h"
#include "result.h"
#include "smtpcodec.h"
#include "smtpreply.h"
#include "tls.h"

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

/* What each command is called in results and log lines. */
extern const char *const relay__cmd_names[];

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
	struct msgsrc src;	/* the message: open, read, close */
	bool src_wait;		/* DATA waits for the last file's close */
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

/* Count 8-bit octets and line ends (for SIZE) of a message. */
struct scan {
	bool eightbit;
	bool prev_cr;
	bool last_lf;
	uint64_t lf_added;	/* CRs the LF -> CRLF conversion adds */
};

/* relay.c */
/* Log when a logger was given. */
void relay__rlog(const struct relay *r, enum log_level l, const char *fmt,
	...) __attribute__((format(printf, 3, 4)));
/* Fill a result; on allocation failure keep kind, code and status. */
void relay__set_result(struct result *res, enum result_kind kind, int reply,
	const char *status, const char *text);
/* The result kind of a reply code's class. */
enum result_kind relay__class_kind(int code);
/* Make on_kick run soon. */
void relay__kick(struct relay *r);
/* Free the message once its callback ran and no scan holds it. */
void relay__msg_maybe_free(struct rmsg *m);
/* Queue the callback of a message (every result is final). */
void relay__msg_report(struct rmsg *m);
/* Give every recipient without a final result this one. */
void relay__msg_settle_rest(struct rmsg *m, enum result_kind kind, int reply,
	const char *status, const char *text);
/* Any recipient still without a final result? */
bool relay__msg_open(const struct rmsg *m);

/* relay_data.c */
/*
 * Scan the message through msgsrc (blocking for a queue file: thread pool
 * only; buf holds RELAY_CHUNK bytes, unused in memory): sets eightbit,
 * wire_size and, when reading fails, scan_err and scan_why.
 */
void relay__scan_msg(struct rmsg *m, char *buf);
/* Thread pool: read the message once, without keeping it. */
void relay__scan_work(uv_work_t *w);
/* Loop: the scan finished. */
void relay__after_scan(uv_work_t *w, int status);
/* Close the message file on the thread pool (never while a read runs). */
void relay__file_close(struct rsess *s);
/* Feed the message while the socket's queue is short. */
void relay__data_pump(struct rsess *s);
/* 354: stream the message. */
void relay__data_start(struct rsess *s);
/* A new session: no message to read yet. */
void relay__data_init(struct rsess *s);

/* relay_connect.c */
/* Free the session once it is closed and libuv holds nothing of it. */
void relay__sess_maybe_free(struct rsess *s);
/* Close everything of the session; its message must have been handed on. */
void relay__sess_close(struct rsess *s);
/* Give the message's open recipients one result, then close. */
void relay__sess_fail(struct rsess *s, int reply, const char *status,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Close the session, giving its untried message to another session. */
void relay__sess_requeue(struct rsess *s, const char *why);
/* (Re)start the step timer. */
void relay__sess_arm(struct rsess *s, uint64_t secs);
/* A new session for message m. */
void relay__sess_new(struct relay *r, struct rmsg *m);

/* relay_io.c */
/* Send plaintext; takes data. */
int relay__sess_send_owned(struct rsess *s, char *data, size_t len,
	bool data_phase);
/* Add one command line to a batch, logging it. */
int relay__cmd_add(struct rsess *s, struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Expect one more reply. */
int relay__pend_push(struct rsess *s, enum cmd c, size_t idx);
/*
 * Send a batch of commands; built is 0, or the -errno that building the
 * batch met (then nothing is sent). Drops the session on any failure.
 */
int relay__sess_send_batch(struct rsess *s, struct buf *b, int built);
/* Send one command expecting one reply. */
void relay__sess_cmd(struct rsess *s, enum cmd c, size_t idx,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Leave the relay politely. */
void relay__sess_quit(struct rsess *s);
/* Move received ciphertext through TLS into `in`; 0 or the failure. */
int relay__sess_tls_pump_in(struct rsess *s);
/* Hand out the session's read buffer. */
void relay__on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b);
/* Bytes (or EOF) from the relay. */
void relay__on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* relay_txn.c */
/* Where a reply's result goes. */
enum scope { TO_ONE, TO_REST, TO_ACCEPTED };

/* Turn the relay's reply to c into results for the recipients scope
   names (idx for TO_ONE). */
void relay__apply_reply(struct rsess *s, const struct smtpreply *rp, enum cmd c,
	enum scope scope, size_t idx);
/* Log the transaction; hand the message back; idle or QUIT. */
void relay__txn_end(struct rsess *s);
/* Without PIPELINING: the next RCPT, then DATA or RSET. */
void relay__send_next_rcpt(struct rsess *s);
/* Checks that need no command; then MAIL (+ RCPTs + DATA pipelined). */
void relay__txn_start(struct rsess *s);

/* relay_session.c */
/* Was the TLS handshake going on (then the next session goes without)? */
bool relay__sess_tls_handshaking(const struct rsess *s);
/* The handshake failed: no STARTTLS for a while, retry the message. */
void relay__sess_tls_failed(struct rsess *s, const char *why);
/* A whole reply arrived for the oldest command we wait for. */
void relay__handle_reply(struct rsess *s, struct smtpreply *rp);
/* Give an idle session the next message: RSET first. */
void relay__sess_reuse(struct rsess *s, struct rmsg *m);

#endif
