/*
 * smtpd_int: what the pieces of the ESMTP listener share (smtpd.c,
 * smtpd_io.c, smtpd_cmd.c, smtpd_data.c, smtpd_sync.c): the limits, the
 * listener, session and transaction objects, and the functions one piece
 * calls in another. Not for use outside smtpd*.c.
 * The shared functions are named smtpd__NAME where they are defined and
 * called, so `nm -g` shows only smtpd names.
 */
#ifndef MP_SMTPD_INT_H
#define MP_SMTPD_INT_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "buf.h"
#include "cidr.h"
#include "envelope.h"
#include "result.h"
#include "smtpcodec.h"
#include "smtpd.h"
#include "store.h"
#include "tls.h"
#include "transport.h"


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
	bool processing;		/* inside smtpd__process() */
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

/* smtpd_io.c: output, session life and timers, input */

/* Queue a one-line reply (text cleaned, at most SMTPD_TEXT_MAX). */
void smtpd__reply(struct session *s, int code, const char *status,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Queue one line of a multi-line reply (more: not the last one). */
void smtpd__reply_more(struct session *s, int code, bool more, const char *fmt,
	...) __attribute__((format(printf, 4, 5)));
/* Send the queued replies (through TLS when it is on). */
void smtpd__flush(struct session *s);
/* Loop time t (ms) plus sec seconds, saturating. */
uint64_t smtpd__ms_after(uint64_t t, uint64_t sec);
/* Arm the command timer (idle-timeout for the next complete line). */
void smtpd__arm_idle(struct session *s);
/* Arm the DATA timer (silence, DATA deadline, min-data-rate). */
void smtpd__arm_data(struct session *s);
/* Our name, for greetings and Received:. */
const char *smtpd__host(const struct session *s);
/* Free the session once its handles are closed and nothing is pending. */
void smtpd__session_maybe_free(struct session *s);
/* Close the connection now (nothing more is sent). */
void smtpd__session_kill(struct session *s, const char *why);
/* End the session gracefully (replies out, shut, close at EOF). */
void smtpd__session_end(struct session *s, const char *why);
/* Read while there is room and a reason to; stop otherwise. */
void smtpd__update_reading(struct session *s);
/* Drop the consumed part of the input buffer. */
void smtpd__compact(struct session *s);

/* smtpd_data.c: the transaction and DATA */

/* Forget the transaction (sender, recipients, message). */
void smtpd__txn_reset(struct session *s);
/* Log the transaction and send its reply; then take the next commands. */
void smtpd__txn_finish(struct session *s, int code, const char *status,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Reply for an enqueue that failed (enqueue.h error codes). */
void smtpd__enqueue_failed(struct session *s, int err);
/* Consume DATA bytes; at the end of the data judge the message. */
void smtpd__data_consume(struct session *s);

/* smtpd_sync.c: sync transport runs */

/* Run the sync transports' programs on the message (Received: on top). */
void smtpd__sync_part(struct session *s);

/* smtpd_cmd.c: commands */

/* Handle everything complete in the input, then send the replies. */
void smtpd__process(struct session *s);

/* smtpd.c: listeners and connections */

/* Nothing left open after smtpd_stop: tell the caller. */
void smtpd__maybe_stopped(struct smtpd *sd);

#endif
