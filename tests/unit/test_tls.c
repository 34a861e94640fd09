/*
 * Unit tests for tls.c: a self-signed certificate made at test time, a
 * server and a client session joined by moving bytes between tls_take and
 * tls_feed, data both ways (small and 1 MiB), clean shutdown, garbage,
 * SNI, protocol versions (a plain OpenSSL client limited to TLS 1.2, 1.3,
 * or 1.0-1.1), and every context error (missing, unreadable, mismatched
 * files).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "buf.h"
#include "tls.h"

/* Files made once for the whole group. */
struct files {
	char dir[64];
	struct buf cert, key;		/* EC P-256, matching */
	struct buf rsa_cert, rsa_key;	/* RSA 2048, matching */
	struct buf other_key;		/* matches neither certificate */
	struct buf combined;		/* cert and key in one file */
	struct buf garbage;		/* not PEM at all */
	struct buf missing;		/* does not exist */
};

/* A connected pair and what each side has read. */
struct pair {
	struct tls_ctx *sctx, *cctx;
	struct tls_conn *sv, *cl;
	struct buf sv_in, cl_in;
	int sr, cr;			/* last tls_read results */
	const char *swhy, *cwhy;
};

/* A self-signed certificate for k, CN=localhost, valid for a day. */
static X509 *
make_cert(EVP_PKEY *k)
{
	X509 *x = X509_new();
	X509_NAME *n;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, k), 1);
	n = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
		(const unsigned char *)"localhost", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	return x;
}

/* Write PEM of x and/or k to path. */
static void
write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	if (x)
		assert_int_equal(PEM_write_X509(f, x), 1);
	if (k)
		assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0,
			NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

/* Set b to dir/name. */
static void
path(struct buf *b, const char *dir, const char *name)
{
	assert_int_equal(buf_printf(b, "%s/%s", dir, name), 0);
}

/* Make the temporary directory and every file. */
static int
group_setup(void **state)
{
	struct files *f = calloc(1, sizeof(*f));
	EVP_PKEY *ec, *rsa, *other;
	X509 *x, *rx;
	FILE *g;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_tls.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	rsa = EVP_RSA_gen(2048);
	assert_non_null(ec);
	assert_non_null(other);
	assert_non_null(rsa);
	x = make_cert(ec);
	rx = make_cert(rsa);
	path(&f->cert, f->dir, "cert.pem");
	path(&f->key, f->dir, "key.pem");
	path(&f->rsa_cert, f->dir, "rsa-cert.pem");
	path(&f->rsa_key, f->dir, "rsa-key.pem");
	path(&f->other_key, f->dir, "other-key.pem");
	path(&f->combined, f->dir, "combined.pem");
	path(&f->garbage, f->dir, "garbage.pem");
	path(&f->missing, f->dir, "missing.pem");
	write_pem(f->cert.data, x, NULL);
	write_pem(f->key.data, NULL, ec);
	write_pem(f->rsa_cert.data, rx, NULL);
	write_pem(f->rsa_key.data, NULL, rsa);
	write_pem(f->other_key.data, NULL, other);
	write_pem(f->combined.data, x, ec);
	g = fopen(f->garbage.data, "w");
	assert_non_null(g);
	fputs("this is not a certificate\n", g);
	assert_int_equal(fclose(g), 0);
	X509_free(x);
	X509_free(rx);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(other);
	*state = f;
	return 0;
}

/* Remove the files and the directory. */
static int
group_teardown(void **state)
{
	struct files *f = *state;
	struct buf *all[] = { &f->cert, &f->key, &f->rsa_cert, &f->rsa_key,
		&f->other_key, &f->combined, &f->garbage, &f->missing };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		unlink(all[i]->data);
		buf_free(all[i]);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Move ciphertext from one side to the other; returns the byte count. */
static size_t
move(struct tls_conn *from, struct tls_conn *to)
{
	struct buf t = BUF_INIT;
	size_t n;

	assert_int_equal(tls_take(from, &t), 0);
	n = t.len;
	if (n)
		assert_int_equal(tls_feed(to, t.data, t.len), 0);
	buf_free(&t);
	return n;
}

/* Shuttle bytes and read on both sides until nothing moves. */
static void
pump(struct pair *p)
{
	for (int round = 0; round < 10000; round++) {
		size_t moved = move(p->cl, p->sv) + move(p->sv, p->cl);

		p->sr = tls_read(p->sv, &p->sv_in, &p->swhy);
		p->cr = tls_read(p->cl, &p->cl_in, &p->cwhy);
		/* the queue is never left holding an error */
		assert_int_equal(ERR_peek_error(), 0);
		if (moved == 0)
			return;
	}
	fail_msg("pump did not settle");
}

/* Make contexts and sessions (server cert/key given) without pumping. */
static void
pair_new(struct pair *p, const char *cert, const char *key, const char *sni)
{
	char *err = NULL;

	memset(p, 0, sizeof(*p));
	if (tls_ctx_server(cert, key, &p->sctx, &err) != 0)
		fail_msg("server ctx: %s", err ? err : "-");
	assert_null(err);
	assert_int_equal(tls_ctx_client(&p->cctx, &err), 0);
	assert_null(err);
	assert_int_equal(tls_conn_new(p->sctx, true, NULL, &p->sv), 0);
	assert_int_equal(tls_conn_new(p->cctx, false, sni, &p->cl), 0);
}

/* A pair with the EC certificate, handshake done. */
static void
pair_up(struct pair *p, const struct files *f)
{
	pair_new(p, f->cert.data, f->key.data, NULL);
	pump(p);
	assert_int_equal(p->sr, 0);
	assert_int_equal(p->cr, 0);
	assert_true(tls_established(p->sv));
	assert_true(tls_established(p->cl));
}

/* Free everything of a pair. */
static void
pair_free(struct pair *p)
{
	tls_conn_free(p->sv);
	tls_conn_free(p->cl);
	tls_ctx_free(p->sctx);
	tls_ctx_free(p->cctx);
	buf_free(&p->sv_in);
	buf_free(&p->cl_in);
}

/* The handshake completes; version and cipher are reported after it. */
static void
test_handshake(void **state)
{
	const struct files *f = *state;
	struct pair p;

	pair_new(&p, f->cert.data, f->key.data, NULL);
	assert_false(tls_established(p.sv));
	assert_false(tls_established(p.cl));
	assert_string_equal(tls_version(p.sv), "none");
	assert_string_equal(tls_cipher(p.cl), "none");
	pump(&p);
	assert_int_equal(p.sr, 0);
	assert_int_equal(p.cr, 0);
	assert_true(tls_established(p.sv));
	assert_true(tls_established(p.cl));
	assert_true(strcmp(tls_version(p.sv), "TLSv1.3") == 0 ||
		strcmp(tls_version(p.sv), "TLSv1.2") == 0);
	assert_string_equal(tls_version(p.sv), tls_version(p.cl));
	assert_string_not_equal(tls_cipher(p.sv), "none");
	assert_string_equal(tls_cipher(p.sv), tls_cipher(p.cl));
	assert_int_equal(p.sv_in.len, 0);
	assert_int_equal(p.cl_in.len, 0);
	pair_free(&p);
}

/* An RSA certificate and a combined cert+key file work too. */
static void
test_other_certificates(void **state)
{
	const struct files *f = *state;
	struct pair p;

	pair_new(&p, f->rsa_cert.data, f->rsa_key.data, NULL);
	pump(&p);
	assert_true(tls_established(p.sv));
	assert_true(tls_established(p.cl));
	pair_free(&p);

	pair_new(&p, f->combined.data, f->combined.data, NULL);
	pump(&p);
	assert_true(tls_established(p.sv));
	assert_true(tls_established(p.cl));
	pair_free(&p);
}

/* Small data both ways; data written before the handshake is queued. */
static void
test_small_data(void **state)
{
	const struct files *f = *state;
	struct pair p;

	pair_new(&p, f->cert.data, f->key.data, NULL);
	assert_int_equal(tls_write(p.cl, "EHLO client.example\r\n", 21), 0);
	assert_int_equal(tls_write(p.cl, "", 0), 0);
	pump(&p);
	assert_true(tls_established(p.sv));
	assert_int_equal(p.sv_in.len, 21);
	assert_memory_equal(p.sv_in.data, "EHLO client.example\r\n", 21);
	assert_int_equal(tls_write(p.sv, "250 hello\r\n", 11), 0);
	assert_int_equal(tls_write(p.sv, "250 again\r\n", 11), 0);
	pump(&p);
	assert_int_equal(p.cl_in.len, 22);
	assert_memory_equal(p.cl_in.data, "250 hello\r\n250 again\r\n", 22);
	assert_int_equal(p.cl_in.data[p.cl_in.len], '\0');
	pair_free(&p);
}

/* Fill b with len bytes of a pattern that depends on seed. */
static void
pattern(struct buf *b, size_t len, unsigned seed)
{
	assert_int_equal(buf_reserve(b, len), 0);
	for (size_t i = 0; i < len; i++)
		b->data[i] = (char)((i * 2654435761u + seed) >> 13);
	b->len = len;
	b->data[len] = '\0';
}

/* 1 MiB each way at the same time arrives intact. */
static void
test_large_data(void **state)
{
	const struct files *f = *state;
	struct buf up = BUF_INIT, down = BUF_INIT;
	struct pair p;

	pattern(&up, 1024 * 1024, 7);
	pattern(&down, 1024 * 1024 + 3, 11);
	pair_up(&p, f);
	assert_int_equal(tls_write(p.cl, up.data, up.len), 0);
	assert_int_equal(tls_write(p.sv, down.data, down.len), 0);
	pump(&p);
	assert_int_equal(p.sr, 0);
	assert_int_equal(p.cr, 0);
	assert_int_equal(p.sv_in.len, up.len);
	assert_memory_equal(p.sv_in.data, up.data, up.len);
	assert_int_equal(p.cl_in.len, down.len);
	assert_memory_equal(p.cl_in.data, down.data, down.len);
	pair_free(&p);

	/* and 1 MiB queued before the handshake */
	pair_new(&p, f->cert.data, f->key.data, NULL);
	assert_int_equal(tls_write(p.cl, up.data, up.len), 0);
	pump(&p);
	assert_int_equal(p.sv_in.len, up.len);
	assert_memory_equal(p.sv_in.data, up.data, up.len);
	pair_free(&p);
	buf_free(&up);
	buf_free(&down);
}

/* Ciphertext fed one byte at a time still makes a session. */
static void
test_byte_by_byte(void **state)
{
	const struct files *f = *state;
	struct pair p;
	int rounds = 0;

	pair_new(&p, f->cert.data, f->key.data, NULL);
	assert_int_equal(tls_write(p.cl, "hello", 5), 0);
	while (!(tls_established(p.sv) && tls_established(p.cl) &&
	    p.sv_in.len == 5)) {
		struct tls_conn *ends[2][2] = { { p.cl, p.sv }, { p.sv, p.cl } };

		assert_true(++rounds < 100);
		for (int d = 0; d < 2; d++) {
			struct buf t = BUF_INIT;

			assert_int_equal(tls_take(ends[d][0], &t), 0);
			for (size_t i = 0; i < t.len; i++) {
				struct buf *in = d == 0 ? &p.sv_in : &p.cl_in;

				assert_int_equal(tls_feed(ends[d][1],
					t.data + i, 1), 0);
				assert_int_equal(tls_read(ends[d][1], in,
					NULL), 0);
			}
			buf_free(&t);
		}
	}
	assert_memory_equal(p.sv_in.data, "hello", 5);
	pair_free(&p);
}

/* A clean shutdown reads as -ECONNRESET on the other side, after data. */
static void
test_shutdown(void **state)
{
	const struct files *f = *state;
	struct buf more = BUF_INIT;
	const char *why = NULL;
	struct pair p;

	pair_up(&p, f);
	assert_int_equal(tls_write(p.cl, "QUIT\r\n", 6), 0);
	tls_shutdown(p.cl);
	assert_int_equal(tls_write(p.cl, "late", 4), -EPIPE);
	pump(&p);
	assert_int_equal(p.sr, -ECONNRESET);
	assert_non_null(p.swhy);
	assert_int_equal(p.sv_in.len, 6);
	assert_memory_equal(p.sv_in.data, "QUIT\r\n", 6);
	/* it stays closed */
	assert_int_equal(tls_read(p.sv, &more, &why), -ECONNRESET);
	assert_int_equal(more.len, 0);
	assert_int_equal(tls_write(p.sv, "x", 1), -ECONNRESET);
	/* the server answers with its own close_notify */
	assert_int_equal(p.cr, 0);
	tls_shutdown(p.sv);
	pump(&p);
	assert_int_equal(p.cr, -ECONNRESET);
	pair_free(&p);

	/* the other direction */
	pair_up(&p, f);
	assert_int_equal(tls_write(p.sv, "221 bye\r\n", 9), 0);
	tls_shutdown(p.sv);
	pump(&p);
	assert_int_equal(p.cr, -ECONNRESET);
	assert_int_equal(p.cl_in.len, 9);
	assert_memory_equal(p.cl_in.data, "221 bye\r\n", 9);
	pair_free(&p);
	buf_free(&more);
}

/* Shutting down before the handshake sends nothing and is harmless. */
static void
test_shutdown_early(void **state)
{
	const struct files *f = *state;
	struct buf t = BUF_INIT;
	struct pair p;

	pair_new(&p, f->cert.data, f->key.data, NULL);
	tls_shutdown(p.sv);
	assert_int_equal(tls_take(p.sv, &t), 0);
	assert_int_equal(t.len, 0);
	assert_int_equal(ERR_peek_error(), 0);
	pair_free(&p);
	buf_free(&t);
}

/* Plain text where a ClientHello belongs: -EPROTO with a reason. */
static void
test_garbage_handshake(void **state)
{
	static const char junk[] = "EHLO client.example\r\nMAIL FROM:<a@b>\r\n";
	const struct files *f = *state;
	struct buf out = BUF_INIT, t = BUF_INIT;
	const char *why = NULL;
	struct pair p;

	pair_new(&p, f->cert.data, f->key.data, NULL);
	assert_int_equal(tls_feed(p.sv, junk, sizeof(junk) - 1), 0);
	assert_int_equal(tls_read(p.sv, &out, &why), -EPROTO);
	assert_non_null(why);
	assert_true(strlen(why) > 0);
	assert_int_equal(ERR_peek_error(), 0);
	assert_int_equal(out.len, 0);
	/* the error sticks; writes fail too; taking output still works */
	why = NULL;
	assert_int_equal(tls_read(p.sv, &out, &why), -EPROTO);
	assert_non_null(why);
	assert_int_equal(tls_write(p.sv, "x", 1), -EPROTO);
	assert_int_equal(tls_take(p.sv, &t), 0);
	assert_false(tls_established(p.sv));

	/* the client rejects garbage from a "server" just the same */
	assert_int_equal(tls_feed(p.cl, junk, sizeof(junk) - 1), 0);
	why = NULL;
	assert_int_equal(tls_read(p.cl, &out, &why), -EPROTO);
	assert_non_null(why);
	assert_int_equal(ERR_peek_error(), 0);
	pair_free(&p);
	buf_free(&out);
	buf_free(&t);
}

/* A forged record after the handshake is -EPROTO; others are unharmed. */
static void
test_garbage_record(void **state)
{
	const struct files *f = *state;
	struct pair bad, good;
	unsigned char rec[5 + 64];

	pair_up(&bad, f);
	pair_up(&good, f);
	rec[0] = 0x17;		/* application data */
	rec[1] = 0x03;
	rec[2] = 0x03;
	rec[3] = 0;
	rec[4] = 64;
	for (size_t i = 5; i < sizeof(rec); i++)
		rec[i] = (unsigned char)(i * 37);
	assert_int_equal(tls_feed(bad.sv, rec, sizeof(rec)), 0);
	bad.swhy = NULL;
	assert_int_equal(tls_read(bad.sv, &bad.sv_in, &bad.swhy), -EPROTO);
	assert_non_null(bad.swhy);
	assert_int_equal(ERR_peek_error(), 0);
	assert_int_equal(bad.sv_in.len, 0);

	/* the other connection goes on as if nothing happened */
	assert_int_equal(tls_write(good.cl, "still fine", 10), 0);
	pump(&good);
	assert_int_equal(good.sr, 0);
	assert_int_equal(good.sv_in.len, 10);
	assert_memory_equal(good.sv_in.data, "still fine", 10);
	pair_free(&bad);
	pair_free(&good);
}

/* The SNI name is in the ClientHello; an IP literal is not sent. */
static void
test_sni(void **state)
{
	const struct files *f = *state;
	struct tls_ctx *cctx = NULL;
	struct tls_conn *c = NULL;
	struct buf hello = BUF_INIT;
	struct pair p;
	char *err = NULL;

	assert_int_equal(tls_ctx_client(&cctx, &err), 0);
	assert_int_equal(tls_conn_new(cctx, false, "mail.example.org", &c), 0);
	assert_int_equal(tls_take(c, &hello), 0);
	assert_true(hello.len > 0);
	assert_int_equal((unsigned char)hello.data[0], 0x16);	/* handshake */
	assert_non_null(memmem(hello.data, hello.len, "mail.example.org", 16));
	tls_conn_free(c);
	buf_reset(&hello);

	assert_int_equal(tls_conn_new(cctx, false, "192.0.2.1", &c), 0);
	assert_int_equal(tls_take(c, &hello), 0);
	assert_true(hello.len > 0);
	assert_null(memmem(hello.data, hello.len, "192.0.2.1", 9));
	tls_conn_free(c);
	tls_ctx_free(cctx);
	buf_free(&hello);

	/* and the handshake with SNI completes */
	pair_new(&p, f->cert.data, f->key.data, "localhost");
	pump(&p);
	assert_true(tls_established(p.cl));
	pair_free(&p);
}

/* A context freed while its sessions live does not break them. */
static void
test_ctx_freed_first(void **state)
{
	const struct files *f = *state;
	struct pair p;

	pair_new(&p, f->cert.data, f->key.data, NULL);
	tls_ctx_free(p.sctx);
	tls_ctx_free(p.cctx);
	p.sctx = p.cctx = NULL;
	assert_int_equal(tls_write(p.cl, "abc", 3), 0);
	pump(&p);
	assert_int_equal(p.sv_in.len, 3);
	pair_free(&p);
	tls_ctx_free(NULL);
	tls_conn_free(NULL);
}

/*
 * Our server against a plain OpenSSL client limited to [minv, maxv]:
 * returns the server's last tls_read result; *version gets its version.
 */
static int
raw_client(const struct files *f, int minv, int maxv, const char **version)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct tls_ctx *sctx = NULL;
	struct tls_conn *sv = NULL;
	struct buf in = BUF_INIT, t = BUF_INIT;
	const char *why = NULL;
	BIO *rb, *wb;
	SSL *cl;
	int r = 0;

	assert_non_null(cctx);
	/* let the client offer old protocols; the server must refuse them */
	SSL_CTX_set_security_level(cctx, 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(cctx, minv), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, maxv), 1);
	assert_non_null(cl = SSL_new(cctx));
	assert_non_null(rb = BIO_new(BIO_s_mem()));
	assert_non_null(wb = BIO_new(BIO_s_mem()));
	SSL_set_bio(cl, rb, wb);
	SSL_set_connect_state(cl);
	assert_int_equal(tls_ctx_server(f->cert.data, f->key.data, &sctx,
		NULL), 0);
	assert_int_equal(tls_conn_new(sctx, true, NULL, &sv), 0);
	for (int round = 0; round < 20 && r == 0; round++) {
		char chunk[4096];
		int n;

		(void)SSL_do_handshake(cl);
		while ((n = BIO_read(wb, chunk, sizeof(chunk))) > 0)
			assert_int_equal(tls_feed(sv, chunk, (size_t)n), 0);
		r = tls_read(sv, &in, &why);
		assert_int_equal(tls_take(sv, &t), 0);
		if (t.len)
			assert_int_equal(BIO_write(rb, t.data, (int)t.len),
				(int)t.len);
		buf_reset(&t);
		if (tls_established(sv) && SSL_is_init_finished(cl))
			break;
	}
	ERR_clear_error();
	*version = tls_established(sv) ? tls_version(sv) : "none";
	if (r < 0)
		assert_non_null(why);
	/* the static version text outlives the session */
	tls_conn_free(sv);
	tls_ctx_free(sctx);
	SSL_free(cl);
	SSL_CTX_free(cctx);
	buf_free(&in);
	buf_free(&t);
	return r;
}

/* TLS 1.2 clients are served; TLS 1.1 and 1.0 clients are refused. */
static void
test_protocol_versions(void **state)
{
	const struct files *f = *state;
	const char *v = NULL;

	assert_int_equal(raw_client(f, TLS1_2_VERSION, TLS1_2_VERSION, &v), 0);
	assert_string_equal(v, "TLSv1.2");
	assert_int_equal(raw_client(f, TLS1_3_VERSION, TLS1_3_VERSION, &v), 0);
	assert_string_equal(v, "TLSv1.3");
	assert_int_equal(raw_client(f, TLS1_VERSION, TLS1_1_VERSION, &v),
		-EPROTO);
	assert_string_equal(v, "none");
}

/* Server context errors: -EINVAL and a message naming the file. */
static void
check_ctx_error(const char *cert, const char *key, const char *name,
	const char *also)
{
	struct tls_ctx *ctx = (struct tls_ctx *)&ctx;
	char *err = NULL;

	assert_int_equal(tls_ctx_server(cert, key, &ctx, &err), -EINVAL);
	assert_null(ctx);
	assert_non_null(err);
	if (name && strstr(err, name) == NULL)
		fail_msg("'%s' does not name %s", err, name);
	if (also && strstr(err, also) == NULL)
		fail_msg("'%s' does not say '%s'", err, also);
	free(err);
	assert_int_equal(ERR_peek_error(), 0);
	/* err may be NULL */
	assert_int_equal(tls_ctx_server(cert, key, &ctx, NULL), -EINVAL);
	assert_null(ctx);
}

/* Missing, unreadable and mismatched files. */
static void
test_ctx_errors(void **state)
{
	const struct files *f = *state;

	check_ctx_error(f->missing.data, f->key.data, f->missing.data,
		"No such file");
	check_ctx_error(f->cert.data, f->missing.data, f->missing.data,
		"No such file");
	check_ctx_error(f->garbage.data, f->key.data, f->garbage.data, NULL);
	check_ctx_error(f->cert.data, f->garbage.data, f->garbage.data, NULL);
	check_ctx_error(f->key.data, f->key.data, f->key.data, NULL);
	check_ctx_error(f->cert.data, f->other_key.data, f->other_key.data,
		"mismatch");
	check_ctx_error(f->rsa_cert.data, f->key.data, f->key.data, NULL);
	check_ctx_error(NULL, f->key.data, NULL, "certificate");
	check_ctx_error(f->cert.data, NULL, NULL, "key");
	check_ctx_error("", "", NULL, NULL);
	check_ctx_error(f->dir, f->key.data, f->dir, NULL);
}

/* A session must match its context's side. */
static void
test_conn_errors(void **state)
{
	const struct files *f = *state;
	struct tls_conn *c = (struct tls_conn *)&c;
	struct pair p;

	pair_new(&p, f->cert.data, f->key.data, NULL);
	assert_int_equal(tls_conn_new(p.sctx, false, NULL, &c), -EINVAL);
	assert_null(c);
	c = (struct tls_conn *)&c;
	assert_int_equal(tls_conn_new(p.cctx, true, NULL, &c), -EINVAL);
	assert_null(c);
	c = (struct tls_conn *)&c;
	assert_int_equal(tls_conn_new(NULL, true, NULL, &c), -EINVAL);
	assert_null(c);
	pair_free(&p);
}

/* Run every test of this file. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_other_certificates),
		cmocka_unit_test(test_small_data),
		cmocka_unit_test(test_large_data),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_shutdown),
		cmocka_unit_test(test_shutdown_early),
		cmocka_unit_test(test_garbage_handshake),
		cmocka_unit_test(test_garbage_record),
		cmocka_unit_test(test_sni),
		cmocka_unit_test(test_ctx_freed_first),
		cmocka_unit_test(test_protocol_versions),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_conn_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
