/*
 * Unit tests for the SMTP listener (smtpd*.c) in-process: the real
 * listener on a loopback socket the test bound (port chosen by the
 * kernel), a client socket the test drives between turns of the same
 * loop, a real enqueuer and store under /tmp, and a fake scheduler that
 * keeps what it is handed. Covered: a message accepted ("250 ... queued
 * as ID" once durable, Received: on top, LF line ends, dot-stuffing
 * undone), the header judged once at the final "." with the replies of
 * a bad header and of too many hops (no enqueuer log line: the
 * enqueuer did not parse it again), PIPELINING order, a too long line.
 * No sleeps: the loop turns until the reply is complete, bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "enqueue.h"
#include "router.h"
#include "sched.h"
#include "smtpd.h"
#include "store.h"
#include "strv.h"
#include "testutil.h"

#define TURNS 2000		/* loop turns (of at most 10 ms idle) */
#define HOPS 2

/* The fake scheduler: keeps the messages it is handed. */
struct sched {
	struct store_msg *m[8];
	size_t n;
};

/* Everything one test needs. */
struct fx {
	char base[64];
	char *logpath;
	uv_loop_t loop;
	struct logger lg;
	struct config cfg;
	struct router_table rt;
	struct router_ctx rctx;
	struct store *st;
	struct enqueue *eq;
	struct smtpd *sd;
	struct sched sc;
	int client;
	struct buf got;		/* what the client read, not yet taken */
	int stopped;
};

/* The scheduler takes a message (the fake keeps it). */
int
sched_add(struct sched *sc, struct store_msg *m)
{
	assert_true(sc->n < 8);
	sc->m[sc->n++] = m;
	return 0;
}

/* A listening loopback socket on a free port; its port in *port. */
static int
listen_any(unsigned *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Turn the loop once, then wait up to 10 ms for the client's input. */
static void
turn(struct fx *fx)
{
	struct pollfd p = { .fd = fx->client, .events = POLLIN };

	uv_run(&fx->loop, UV_RUN_NOWAIT);
	poll(&p, 1, 10);
}

/* Read what the server sent so far. */
static void
take_input(struct fx *fx)
{
	char chunk[4096];
	ssize_t n;

	while ((n = recv(fx->client, chunk, sizeof(chunk), MSG_DONTWAIT)) > 0)
		assert_int_equal(buf_append(&fx->got, chunk, (size_t)n), 0);
}

/* Where the first complete reply in b ends (0: none yet). */
static size_t
reply_end(const struct buf *b)
{
	size_t at = 0;

	while (at < b->len) {
		const char *lf = memchr(b->data + at, '\n', b->len - at);
		size_t line = at;

		if (lf == NULL)
			return 0;
		at = (size_t)(lf - b->data) + 1;
		if (at - line >= 4 && b->data[line + 3] == ' ')
			return at;
	}
	return 0;
}

/* The next whole reply from the server (malloc'ed, CRLF kept). */
static char *
next_reply(struct fx *fx)
{
	size_t end;
	char *r;

	for (int i = 0; (end = reply_end(&fx->got)) == 0; i++) {
		assert_true(i < TURNS);
		turn(fx);
		take_input(fx);
	}
	assert_non_null(r = strndup(fx->got.data, end));
	memmove(fx->got.data, fx->got.data + end, fx->got.len - end);
	fx->got.len -= end;
	return r;
}

/* Send text; then the next reply must be want. */
static void
say(struct fx *fx, const char *text, const char *want)
{
	char *r;

	if (text)
		assert_int_equal(send(fx->client, text, strlen(text),
			MSG_NOSIGNAL), (ssize_t)strlen(text));
	r = next_reply(fx);
	assert_string_equal(r, want);
	free(r);
}

/* A store, an enqueuer, a router with <*@local.example> = null, smtpd. */
static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	static const char table[] = "<*@local.example> = null\n";
	struct store_settings ss = { .foldering = 0, .limit = 100 };
	struct enqueue_settings es = { "mx.example", HOPS };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct smtpd_deps d;
	char *err = NULL;
	unsigned port;
	int *fds;

	assert_non_null(fx);
	snprintf(fx->base, sizeof(fx->base), "/tmp/mp-smtpd-XXXXXX");
	assert_non_null(mkdtemp(fx->base));
	fx->logpath = tu_strdupf("%s/log", fx->base);
	log_init(&fx->lg);
	log_set_all(&fx->lg, LOG_ALL);
	fx->lg.fd = open(fx->logpath, O_WRONLY | O_CREAT | O_APPEND |
		O_CLOEXEC, 0600);
	assert_true(fx->lg.fd >= 0);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	assert_int_equal(config_defaults(&fx->cfg, fx->base, "mx.example"),
		0);
	fx->cfg.router.hop_limit = HOPS;
	strv_free(&fx->cfg.smtp.listen);	/* one address: the test's */
	assert_int_equal(strv_push(&fx->cfg.smtp.listen, "127.0.0.1:0"), 0);
	assert_int_equal(router_table_parse(table, sizeof(table) - 1,
		"router", &fx->rt, &err), 0);
	strv_free(&fx->cfg.router.local_domains);
	assert_int_equal(strv_push(&fx->cfg.router.local_domains,
		"local.example"), 0);
	fx->rctx.table = &fx->rt;
	fx->rctx.local_domains = &fx->cfg.router.local_domains;
	fx->rctx.default_domain = "local.example";
	assert_int_equal(store_open(&fx->loop, fx->base, &ss, &fx->lg,
		&fx->st), 0);
	assert_int_equal(enqueue_open(&es, fx->st, &fx->sc, &fx->lg,
		&fx->eq), 0);
	assert_non_null(fds = malloc(sizeof(*fds)));
	fds[0] = listen_any(&port);
	memset(&d, 0, sizeof(d));
	d.loop = &fx->loop;
	d.cfg = &fx->cfg;
	d.router = &fx->rctx;
	d.eq = fx->eq;
	d.store = fx->st;
	d.log = &fx->lg;
	d.listen_fds = fds;
	assert_int_equal(smtpd_open(&d, &fx->sd), 0);
	assert_int_equal(smtpd_start(fx->sd), 0);
	fx->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fx->client >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	assert_int_equal(connect(fx->client, (struct sockaddr *)&sa,
		sizeof(sa)), 0);
	say(fx, NULL, "220 mx.example ESMTP mailpipe\r\n");
	*state = fx;
	return 0;
}

/* smtpd_stop's callback. */
static void
on_stopped(void *arg)
{
	struct fx *fx = arg;

	fx->stopped++;
}

/* Stop the listener (after QUIT), close everything, remove the folder. */
static int
teardown(void **state)
{
	struct fx *fx = *state;

	close(fx->client);
	smtpd_stop(fx->sd, on_stopped, fx);
	for (int i = 0; fx->stopped == 0; i++) {
		assert_true(i < TURNS);
		uv_run(&fx->loop, UV_RUN_ONCE);
	}
	smtpd_close(fx->sd);
	while (store_busy(fx->st) > 0)
		uv_run(&fx->loop, UV_RUN_ONCE);
	enqueue_close(fx->eq);
	store_close(fx->st);
	for (size_t i = 0; i < fx->sc.n; i++)
		store_msg_free(fx->sc.m[i]);
	assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	router_table_free(&fx->rt);
	config_free(&fx->cfg);
	buf_free(&fx->got);
	close(fx->lg.fd);
	tu_rmtree(fx->base);
	free(fx->logpath);
	free(fx);
	return 0;
}

/* EHLO, MAIL, RCPT and DATA, each answered as it should be. */
static void
open_data(struct fx *fx)
{
	char want[256];

	tu_snprintf(want, sizeof(want), "250-mx.example\r\n250-SIZE %llu\r\n"
		"250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
		"250 DSN\r\n", (unsigned long long)fx->cfg.smtp.max_size);
	say(fx, "EHLO client.example\r\n", want);
	say(fx, "MAIL FROM:<joe@example.com>\r\n",
		"250 2.1.0 sender <joe@example.com> ok\r\n");
	say(fx, "RCPT TO:<a@local.example>\r\n",
		"250 2.1.5 recipient <a@local.example> ok\r\n");
	say(fx, "DATA\r\n", "354 end data with <CR><LF>.<CR><LF>\r\n");
}

/* 250 once durable: Received: on top, LF line ends, dots unstuffed. */
static void
test_accepted(void **state)
{
	struct fx *fx = *state;
	const char *want = "Subject: hi\n\n.leading dot\nbody\n";
	const char *rcv = "Received: from client.example ([127.0.0.1])\n"
		"\tby mx.example (mailpipe) with ESMTP;\n\t";
	struct store_msg *m;
	char *r;

	open_data(fx);
	assert_int_equal(send(fx->client, "Subject: hi\r\n\r\n..leading dot\r\n"
		"body\r\n.\r\n", 39, MSG_NOSIGNAL), 39);
	r = next_reply(fx);
	assert_true(strncmp(r, "250 2.0.0 ok: queued as ", 24) == 0);
	assert_int_equal(fx->sc.n, 1);		/* durable and released */
	m = fx->sc.m[0];
	assert_int_equal(strlen(r), 24 + STORE_ID_LEN + 2);
	assert_memory_equal(r + 24, m->id, STORE_ID_LEN);
	free(r);
	assert_non_null(m->body);
	assert_true(strncmp(m->body, rcv, strlen(rcv)) == 0);
	assert_true(m->msg_len > strlen(want));
	assert_memory_equal(m->body + m->msg_len - strlen(want), want,
		strlen(want));
	assert_string_equal(m->env.tag, "SMTP");
	assert_string_equal(m->env.from, "joe@example.com");
	assert_string_equal(m->env.client, "127.0.0.1");
	say(fx, "QUIT\r\n", "221 2.0.0 mx.example closing connection\r\n");
	assert_true(tu_file_has(fx->logpath, "result=\"250 2.0.0 ok: "
		"queued as "));
}

/* A bad header: 554 with the parser's reason; parsed only once. */
static void
test_bad_header(void **state)
{
	struct fx *fx = *state;

	open_data(fx);
	say(fx, "Subject: hi\r\nno colon\r\n\r\nbody\r\n.\r\n",
		"554 5.6.0 message refused: bad header (malformed header "
		"line (not \"Name: value\"))\r\n");
	assert_int_equal(fx->sc.n, 0);
	assert_int_equal(store_count(fx->st), 0);
	/* the enqueuer never parsed it: judged in the session alone */
	assert_false(tu_file_has(fx->logpath, "message refused: malformed"));
	/* the session goes on */
	say(fx, "NOOP\r\n", "250 2.0.0 ok\r\n");
}

/* More Received: fields than the hop limit (ours counts): 554 5.4.6. */
static void
test_hops(void **state)
{
	struct fx *fx = *state;
	char *r;

	open_data(fx);
	say(fx, "Received: one\r\nReceived: two\r\nSubject: x\r\n\r\n.\r\n",
		"554 5.4.6 too many hops\r\n");
	assert_int_equal(store_count(fx->st), 0);
	/* one field fewer is within the limit */
	say(fx, "MAIL FROM:<joe@example.com>\r\n",
		"250 2.1.0 sender <joe@example.com> ok\r\n");
	say(fx, "RCPT TO:<a@local.example>\r\n",
		"250 2.1.5 recipient <a@local.example> ok\r\n");
	say(fx, "DATA\r\n", "354 end data with <CR><LF>.<CR><LF>\r\n");
	assert_int_equal(send(fx->client, "Received: one\r\n\r\n.\r\n", 20,
		MSG_NOSIGNAL), 20);
	r = next_reply(fx);
	assert_true(strncmp(r, "250 2.0.0 ok: queued as ", 24) == 0);
	free(r);
	assert_false(tu_file_has(fx->logpath, "hop limit"));
}

/* PIPELINING: one write of every command, the replies in order. */
static void
test_pipelining(void **state)
{
	struct fx *fx = *state;
	const char *all = "HELO c.example\r\nMAIL FROM:<>\r\n"
		"RCPT TO:<b@local.example>\r\nRCPT TO:<joe@far.example>\r\n"
		"DATA\r\nSubject: p\r\n\r\nx\r\n.\r\nRSET\r\nQUIT\r\n";
	char *r;

	say(fx, all, "250 mx.example\r\n");
	say(fx, NULL, "250 2.1.0 sender <> ok\r\n");
	say(fx, NULL, "250 2.1.5 recipient <b@local.example> ok\r\n");
	say(fx, NULL, "550 5.7.1 <joe@far.example>: relaying denied\r\n");
	say(fx, NULL, "354 end data with <CR><LF>.<CR><LF>\r\n");
	r = next_reply(fx);
	assert_true(strncmp(r, "250 2.0.0 ok: queued as ", 24) == 0);
	free(r);
	say(fx, NULL, "250 2.0.0 ok\r\n");
	say(fx, NULL, "221 2.0.0 mx.example closing connection\r\n");
	assert_int_equal(fx->sc.n, 1);
	assert_int_equal(fx->sc.m[0]->env.nrcpt, 1);
}

/* A command line over 2048 octets: 500 5.5.2, the session goes on. */
static void
test_long_line(void **state)
{
	struct fx *fx = *state;
	char line[3000];

	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	assert_int_equal(send(fx->client, line, sizeof(line), MSG_NOSIGNAL),
		(ssize_t)sizeof(line));
	say(fx, NULL, "500 5.5.2 line too long (more than 2048 octets)\r\n");
	say(fx, "NOOP\r\n", "250 2.0.0 ok\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_accepted, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_hops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
