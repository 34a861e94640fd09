/*
 * tls: TLS for libuv streams, with OpenSSL 3 over memory BIOs. The caller
 * moves bytes: ciphertext read from the socket goes in with tls_feed,
 * plaintext comes out of tls_read; plaintext to send goes in with
 * tls_write, ciphertext to put on the socket comes out of tls_take.
 * A server context is made from [smtp] tls-cert / tls-key; a client
 * context (relay client) verifies nothing by default (opportunistic
 * STARTTLS, as most MTAs do) and says so in its log. Never blocks.
 */
#ifndef MP_TLS_H
#define MP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

struct tls_ctx;
struct tls_conn;

/* Load cert chain and key (PEM); -EINVAL with *err (malloc'ed) on error. */
int tls_ctx_server(const char *cert_file, const char *key_file,
	struct tls_ctx **out, char **err);
/* A client context (TLS 1.2+, no certificate verification). */
int tls_ctx_client(struct tls_ctx **out, char **err);
void tls_ctx_free(struct tls_ctx *ctx);

/* A new session; sni (client only) may be NULL. */
int tls_conn_new(struct tls_ctx *ctx, bool server, const char *sni,
	struct tls_conn **out);
void tls_conn_free(struct tls_conn *c);

/* Ciphertext received from the peer. */
int tls_feed(struct tls_conn *c, const void *data, size_t len);
/*
 * Drive the handshake and decrypt: appends available plaintext to out.
 * Returns 0 (maybe nothing yet), -ECONNRESET on a clean close_notify,
 * -EPROTO on a TLS error (*why set, constant or from OpenSSL's queue,
 * valid until the next call).
 */
int tls_read(struct tls_conn *c, struct buf *out, const char **why);
/* Plaintext to send (queued inside until the handshake is done). */
int tls_write(struct tls_conn *c, const void *data, size_t len);
/* Move ciphertext that must be sent to the peer into out. */
int tls_take(struct tls_conn *c, struct buf *out);
/* Start a clean shutdown (close_notify goes out through tls_take). */
void tls_shutdown(struct tls_conn *c);
/* Handshake finished? */
bool tls_established(const struct tls_conn *c);
/* "TLSv1.3", cipher name (after the handshake), for Received: and logs. */
const char *tls_version(const struct tls_conn *c);
const char *tls_cipher(const struct tls_conn *c);

#endif
