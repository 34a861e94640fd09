/*
 * relay: the SMTP client that hands non-local mail (and, later, delivery
 * reports) to [smtp] relay-host. It keeps up to `connections` sessions to
 * the relay, reused for several messages (RSET between them), and speaks
 * EHLO (HELO as a fallback), PIPELINING, STARTTLS when offered
 * (opportunistic, unverified), SIZE, 8BITMIME and DSN when offered. A
 * message with 8-bit octets is refused (554 5.6.3) when the relay does not
 * offer 8BITMIME: no downgrade. Results are per recipient: 2xx delivered,
 * 4xx deferred, 5xx failed; a connection or protocol failure defers every
 * recipient not yet answered, and each answer says whether the relay host
 * itself failed. Runs on the libuv loop; never blocks.
 */
#ifndef MP_RELAY_H
#define MP_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"
#include "result.h"
#include "tls.h"

struct relay;

struct relay_settings {
	const char *host_port;	/* "host:port" ([IPv6]:port allowed) */
	const char *helo;	/* our name in EHLO */
	unsigned connections;	/* most sessions at once, >= 1 */
	uint64_t timeout_s;	/* each read/write/connect */
	uint64_t idle_s;	/* keep an idle session this long; 0 = QUIT
				   as soon as no message waits for it */
};

/* tls may be NULL (never STARTTLS). s is copied. */
int relay_open(uv_loop_t *loop, const struct relay_settings *s,
	struct tls_ctx *tls, struct logger *lg, struct relay **out);

struct relay_rcpt {
	const char *addr;	/* envelope address */
	unsigned notify;	/* NOTIFY_* bits, 0 = none */
	const char *orcpt;	/* "rfc822;xtext" or NULL */
};

struct relay_msg {
	const char *from;		/* "" = null return-path */
	const struct relay_rcpt *rcpts;
	size_t nrcpt;
	const char *ret;		/* DSN RET or NULL */
	const char *envid;		/* DSN ENVID or NULL */
	const char *input_path;		/* queue file, or NULL for input_mem */
	uint64_t input_off, input_len;	/* the message inside it */
	const char *input_mem;		/* the message (LF line ends) */
};

/*
 * What a message's transaction showed about the relay host itself
 * (docs/RELAY.md "Host-level failures"): the scheduler delays the whole
 * relay queue on RELAY_HOST_DOWN, and ends a probe on RELAY_HOST_UP.
 */
enum relay_host {
	RELAY_HOST_UNKNOWN = 0,	/* no session reached the relay for it */
	RELAY_HOST_UP,		/* the relay greeted, took EHLO/HELO (or a
				   reused session's RSET) */
	RELAY_HOST_DOWN,	/* a host-level failure: every open recipient
				   is deferred with the host's error */
};

/*
 * Results: res[i] for rcpts[i]; res is the callee's (result_clear); host
 * says what the attempt showed about the relay host.
 */
typedef void (*relay_done_cb)(void *arg, struct result *res, size_t n,
	enum relay_host host);

/*
 * Send one message in one transaction (everything in m is copied). cb
 * runs exactly once, from the loop, never inside relay_send. Messages
 * beyond `connections` wait for a free session.
 */
int relay_send(struct relay *r, const struct relay_msg *m, relay_done_cb cb,
	void *arg);
/* The destination: [smtp] relay-host as configured ("host:port"). */
const char *relay_destination(const struct relay *r);
/* Transactions queued or running. */
unsigned relay_active(const struct relay *r);
/* Called when every session is closed after relay_close. */
typedef void (*relay_closed_cb)(void *arg);
/* QUIT idle sessions, fail queued messages as deferred, free when closed. */
void relay_close(struct relay *r, relay_closed_cb cb, void *arg);

#endif
