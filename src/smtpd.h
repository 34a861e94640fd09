/*
 * smtpd: the ESMTP listener (SPEC "SMTP", issue "SMTP in and out"). Every
 * [smtp] listen address gets a libuv TCP listener; every connection is a
 * session state machine on the loop (no thread or process per
 * connection). It offers SIZE, PIPELINING, 8BITMIME,
 * ENHANCEDSTATUSCODES (on every reply), DSN and STARTTLS (when a
 * certificate is configured); refuses bare CR/LF in DATA (one DATA is at
 * most one message), relaying for untrusted clients, sender-written
 * ...@pipe recipients, STARTTLS inside a transaction and rfc822 ORCPTs
 * that are not mailboxes, and enforces the size, recipient, line, command
 * time, DATA time and rate, connection, per-client connection and
 * bad-command limits. A message is answered 250 only once
 * its queue file is durable (or, for sync transports, once the programs
 * succeeded). One connection's misbehaviour never affects another.
 */
#ifndef MP_SMTPD_H
#define MP_SMTPD_H

#include <uv.h>

#include "cidr.h"
#include "config.h"
#include "enqueue.h"
#include "log.h"
#include "pipe.h"
#include "router.h"
#include "store.h"
#include "strv.h"
#include "tls.h"
#include "transport.h"

struct smtpd;

/* Everything the listener uses and does not own. */
struct smtpd_deps {
	uv_loop_t *loop;
	const struct config *cfg;		/* [smtp], hostname, limits */
	const struct router_ctx *router;	/* current (updated on SIGHUP) */
	const struct transport_table *transports;
	const struct cidr_list *trusted;	/* [smtp] trusted-networks */
	struct enqueue *eq;
	struct store *store;			/* store_full for 452 4.3.1 */
	struct pipe_module *pipe;		/* sync transports */
	struct procslots *slots;		/* their processors */
	struct tls_ctx *tls;			/* NULL = no STARTTLS */
	struct logger *log;
	int *listen_fds;	/* from smtpd_bind, one per [smtp] listen
				   address, taken (malloc'ed array); NULL:
				   smtpd_open binds them itself */
};

/*
 * Bind and listen on every listen address (IPv4 "a.b.c.d:port", IPv6
 * "[::1]:port"): done by the root part, so that the daemon needs no
 * privilege for port 25. *fds is a malloc'ed array of lv->n sockets.
 * -errno (logged with the address) when one cannot be bound.
 */
int smtpd_bind(const struct strv *lv, struct logger *lg, int **fds);
/* Wrap the bound sockets (d->listen_fds, or binds them now). */
int smtpd_open(const struct smtpd_deps *d, struct smtpd **out);
/* Start accepting connections (after queue recovery). */
int smtpd_start(struct smtpd *sd);
/* Called once every session has ended after smtpd_stop. */
typedef void (*smtpd_stopped_cb)(void *arg);
/*
 * Stop: close the listeners; idle sessions get "421 4.3.2 shutting down";
 * a session in the middle of DATA or waiting for a commit or a sync
 * program finishes that transaction first, then gets the 421.
 */
void smtpd_stop(struct smtpd *sd, smtpd_stopped_cb cb, void *arg);
/* Free; only after the stopped callback. */
void smtpd_close(struct smtpd *sd);
/* Sessions open now. */
unsigned smtpd_sessions(const struct smtpd *sd);

#endif
