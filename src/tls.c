/*
 * tls: TLS sessions over memory BIOs (OpenSSL 3) for the SMTP listener's
 * STARTTLS and the relay client. Owns the SSL_CTX and SSL objects and the
 * plaintext written before the handshake ends. Promises TLS 1.2 or newer,
 * no renegotiation, and that no OpenSSL error is ever left on the thread's
 * error queue to be blamed on another connection. Never touches a socket,
 * never blocks, never exits; the client side verifies no certificate.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "text.h"

/* Plaintext read from SSL_read and written to SSL_write per call. */
#define TLS_CHUNK 16384
#define TLS_WRITE_MAX (1024 * 1024)

struct tls_ctx {
	SSL_CTX *ssl;
	bool server;
};

struct tls_conn {
	SSL *ssl;
	BIO *in;		/* ciphertext from the peer (we write) */
	BIO *out;		/* ciphertext to the peer (we read) */
	struct buf pending;	/* plaintext not yet given to SSL_write */
	size_t pending_off;	/* bytes of pending already written */
	const char *why;	/* the fatal error, once there was one */
	int err;		/* 0, or -EPROTO / -ECONNRESET for good */
};

/* OpenSSL's static text for one error code (system errors by errno). */
static const char *
tls_err_text(unsigned long code)
{
	if (ERR_SYSTEM_ERROR(code))
		return strerrordesc_np((int)ERR_GET_REASON(code));
	return ERR_reason_error_string(code);
}

/*
 * The reason of the oldest error on the queue that has one (the root
 * cause), or fallback; the queue is cleared. The texts are static.
 */
static const char *
tls_reason(const char *fallback)
{
	const char *r = NULL;
	unsigned long code;

	while (r == NULL && (code = ERR_get_error()) != 0)
		r = tls_err_text(code);
	ERR_clear_error();
	return r ? r : fallback;
}

/*
 * Set *err to "WHAT FILE[ HOW]: REASON (DETAIL)" (malloc'ed) from the
 * oldest error on the queue with a reason; clear the queue; -EINVAL.
 */
static int
tls_file_error(char **err, const char *what, const char *file,
	const char *how)
{
	const char *reason = NULL, *data = NULL;
	struct buf b = BUF_INIT;
	unsigned long code;
	int flags = 0, r;

	while (reason == NULL &&
	    (code = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		reason = tls_err_text(code);
		if (ERR_SYSTEM_ERROR(code) || !(flags & ERR_TXT_STRING))
			data = NULL;
	}
	r = buf_printf(&b, "%s %s%s: %s", what, file, how,
		reason ? reason : "unknown error");
	if (r == 0 && data && *data)
		r = buf_printf(&b, " (%s)", data);
	ERR_clear_error();
	if (err != NULL) {
		*err = NULL;
		if (r == 0)
			buf_steal(&b, err);
	}
	buf_free(&b);
	return -EINVAL;
}

/* Set *err to a copy of msg (may stay NULL when memory is short). */
static int
tls_msg(char **err, const char *msg, int r)
{
	if (err != NULL)
		*err = text_strdup(msg);
	return r;
}

/* Common SSL_CTX settings: TLS 1.2+, no renegotiation, moving buffers. */
static int
tls_ctx_setup(SSL_CTX *ssl)
{
	if (SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION) != 1)
		return -EINVAL;
	SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION |
		SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
		SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

/* Load cert chain and key (PEM); -EINVAL with *err (malloc'ed) on error. */
int
tls_ctx_server(const char *cert_file, const char *key_file,
	struct tls_ctx **out, char **err)
{
	struct tls_ctx *ctx;
	int r;

	*out = NULL;
	if (err != NULL)
		*err = NULL;
	if (cert_file == NULL || key_file == NULL || !*cert_file || !*key_file)
		return tls_msg(err, "TLS needs both a certificate file and a "
			"key file", -EINVAL);
	ERR_clear_error();
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return tls_msg(err, "out of memory", -ENOMEM);
	ctx->server = true;
	if ((ctx->ssl = SSL_CTX_new(TLS_server_method())) == NULL) {
		free(ctx);
		ERR_clear_error();
		return tls_msg(err, "cannot create a TLS context", -ENOMEM);
	}
	if (tls_ctx_setup(ctx->ssl) < 0) {
		r = tls_file_error(err, "TLS setup for certificate", cert_file,
			"");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx->ssl, cert_file) != 1) {
		r = tls_file_error(err, "TLS certificate file", cert_file, "");
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx->ssl, key_file,
	    SSL_FILETYPE_PEM) != 1) {
		r = tls_file_error(err, "TLS key file", key_file, "");
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx->ssl) != 1) {
		r = tls_file_error(err, "TLS key file", key_file,
			" does not match the certificate");
		goto fail;
	}
	*out = ctx;
	return 0;
fail:
	tls_ctx_free(ctx);
	return r;
}

/* A client context (TLS 1.2+, no certificate verification). */
int
tls_ctx_client(struct tls_ctx **out, char **err)
{
	struct tls_ctx *ctx;

	*out = NULL;
	if (err != NULL)
		*err = NULL;
	ERR_clear_error();
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return tls_msg(err, "out of memory", -ENOMEM);
	if ((ctx->ssl = SSL_CTX_new(TLS_client_method())) == NULL) {
		free(ctx);
		ERR_clear_error();
		return tls_msg(err, "cannot create a TLS context", -ENOMEM);
	}
	if (tls_ctx_setup(ctx->ssl) < 0) {
		tls_ctx_free(ctx);
		return tls_msg(err, tls_reason("cannot set up TLS"), -EINVAL);
	}
	/* opportunistic STARTTLS: encryption without authentication */
	SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_NONE, NULL);
	*out = ctx;
	return 0;
}

/* Free a context (sessions made from it hold their own reference). */
void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl);
	free(ctx);
	ERR_clear_error();
}

/* Is s an IP address (which SNI must not carry, RFC 6066 section 3)? */
static bool
tls_is_ip(const char *s)
{
	struct in6_addr a;

	return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

/*
 * A new session; sni (client only) may be NULL. A client session writes
 * its ClientHello at once, so tls_take has it before anything is read.
 */
int
tls_conn_new(struct tls_ctx *ctx, bool server, const char *sni,
	struct tls_conn **out)
{
	struct tls_conn *c;

	*out = NULL;
	if (ctx == NULL || ctx->server != server)
		return -EINVAL;
	ERR_clear_error();
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->ssl = SSL_new(ctx->ssl);
	c->in = BIO_new(BIO_s_mem());
	c->out = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || c->in == NULL || c->out == NULL) {
		BIO_free(c->in);
		BIO_free(c->out);
		SSL_free(c->ssl);
		free(c);
		ERR_clear_error();
		return -ENOMEM;
	}
	/* an empty memory BIO means "try again", not end of file */
	BIO_set_mem_eof_return(c->in, -1);
	BIO_set_mem_eof_return(c->out, -1);
	SSL_set_bio(c->ssl, c->in, c->out);	/* c->ssl owns both now */
	if (server) {
		SSL_set_accept_state(c->ssl);
	} else {
		SSL_set_connect_state(c->ssl);
		if (sni && *sni && !tls_is_ip(sni) &&
		    SSL_set_tlsext_host_name(c->ssl, sni) != 1) {
			tls_conn_free(c);
			ERR_clear_error();
			return -EINVAL;
		}
		(void)SSL_do_handshake(c->ssl);	/* WANT_READ after the hello */
		ERR_clear_error();
	}
	*out = c;
	return 0;
}

/* Free a session (nothing is sent: call tls_shutdown and tls_take first). */
void
tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);	/* frees both BIOs */
	buf_free(&c->pending);
	free(c);
	ERR_clear_error();
}

/* Ciphertext received from the peer. */
int
tls_feed(struct tls_conn *c, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;
		int w = BIO_write(c->in, p, n);

		if (w <= 0) {
			ERR_clear_error();
			return -ENOMEM;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Turn the SSL_get_error of a failed call (ret) into 0 (wait for more
 * input), -ECONNRESET (close_notify) or -EPROTO (fatal; remembered with its
 * reason). The error queue is empty afterwards.
 */
static int
tls_check(struct tls_conn *c, int ret)
{
	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		c->err = -ECONNRESET;
		c->why = "TLS connection closed by the peer";
		return c->err;
	case SSL_ERROR_SYSCALL:
		c->why = tls_reason("TLS connection ended unexpectedly");
		c->err = -EPROTO;
		return c->err;
	default:
		c->why = tls_reason("TLS protocol error");
		c->err = -EPROTO;
		return c->err;
	}
}

/* Hand queued plaintext to SSL_write (only once the handshake is done). */
static int
tls_flush(struct tls_conn *c)
{
	while (c->pending_off < c->pending.len) {
		size_t left = c->pending.len - c->pending_off;
		int n = left > TLS_WRITE_MAX ? TLS_WRITE_MAX : (int)left;
		int w;

		ERR_clear_error();
		w = SSL_write(c->ssl, c->pending.data + c->pending_off, n);
		if (w <= 0)
			return tls_check(c, w);
		c->pending_off += (size_t)w;
	}
	buf_reset(&c->pending);
	c->pending_off = 0;
	return 0;
}

/* Drive the handshake and decrypt available plaintext into out. */
int
tls_read(struct tls_conn *c, struct buf *out, const char **why)
{
	const char *dummy;
	int r, n;

	if (why == NULL)
		why = &dummy;
	*why = NULL;
	if (c->err) {
		*why = c->why;
		return c->err;
	}
	if (!SSL_is_init_finished(c->ssl)) {
		ERR_clear_error();
		r = SSL_do_handshake(c->ssl);
		if (r != 1) {
			if ((r = tls_check(c, r)) < 0)
				*why = c->why;
			return r;
		}
	}
	if ((r = tls_flush(c)) < 0) {
		*why = c->why;
		return r;
	}
	for (;;) {
		if ((r = buf_reserve(out, TLS_CHUNK)) < 0)
			return r;
		out->data[out->len] = '\0';
		ERR_clear_error();
		n = SSL_read(c->ssl, out->data + out->len, TLS_CHUNK);
		if (n <= 0)
			break;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
	}
	if ((r = tls_check(c, n)) < 0) {
		*why = c->why;
		return r;
	}
	/* SSL_read may have finished a post-handshake exchange: try again */
	if ((r = tls_flush(c)) < 0)
		*why = c->why;
	return r;
}

/* Plaintext to send (queued inside until the handshake is done). */
int
tls_write(struct tls_conn *c, const void *data, size_t len)
{
	int r;

	if (c->err)
		return c->err;
	if (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN)
		return -EPIPE;
	if ((r = buf_append(&c->pending, data, len)) < 0)
		return r;
	if (!SSL_is_init_finished(c->ssl))
		return 0;
	return tls_flush(c);
}

/* Move ciphertext that must be sent to the peer into out. */
int
tls_take(struct tls_conn *c, struct buf *out)
{
	size_t avail;
	int r, n;

	while ((avail = BIO_ctrl_pending(c->out)) > 0) {
		if (avail > INT_MAX)
			avail = INT_MAX;
		if ((r = buf_reserve(out, avail)) < 0)
			return r;
		n = BIO_read(c->out, out->data + out->len, (int)avail);
		if (n <= 0)
			break;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
	}
	ERR_clear_error();
	return 0;
}

/*
 * Start a clean shutdown (close_notify goes out through tls_take): queued
 * plaintext first; also answers the peer's close_notify. Nothing is sent
 * after a protocol error or before the handshake is done.
 */
void
tls_shutdown(struct tls_conn *c)
{
	if (c->err != -EPROTO && SSL_is_init_finished(c->ssl)) {
		if (c->err == 0)
			(void)tls_flush(c);
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
	}
	ERR_clear_error();
}

/* Handshake finished? */
bool
tls_established(const struct tls_conn *c)
{
	return SSL_is_init_finished(c->ssl) == 1;
}

/* "TLSv1.3" etc. once established, else "none". */
const char *
tls_version(const struct tls_conn *c)
{
	return tls_established(c) ? SSL_get_version(c->ssl) : "none";
}

/* The cipher's name once established, else "none". */
const char *
tls_cipher(const struct tls_conn *c)
{
	const char *name = NULL;

	if (tls_established(c))
		name = SSL_get_cipher_name(c->ssl);
	return name ? name : "none";
}
