/*
 * Unit tests for the relay client (src/relay.c) on a real libuv loop
 * against tests/integration/smtpsink.py, started as a subprocess per test
 * with a script of replies. Each test checks the per-recipient results and
 * what the sink recorded (envelope, options, bytes, connections, TLS), and
 * ends by closing the relay and asserting that the loop closed.
 * RELAY_TEST_LOG=all shows the protocol on stderr.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "buf.h"
#include "envelope.h"
#include "relay.h"
#include "tls.h"

extern char **environ;

/* ------------------------------------------------------------------ */
/* The sink subprocess.                                                */

struct sink {
	pid_t pid;
	char dir[32];
	int port;
	char *host_port;
	json_t *rec;
};

/* Path of smtpsink.py. */
static char *
sink_script(void)
{
	const char *src = getenv("MAILPIPE_SOURCE");
	struct buf b = BUF_INIT;
	char *s = NULL;

	buf_printf(&b, "%s/tests/integration/smtpsink.py", src ? src : ".");
	buf_steal(&b, &s);
	buf_free(&b);
	return s;
}

/* Read a whole file (NUL-terminated); NULL when missing. */
static char *
slurp(const char *path, size_t *len)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	char *s = NULL;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		assert_int_equal(buf_append(&b, chunk, (size_t)n), 0);
	close(fd);
	if (len)
		*len = b.len;
	if (buf_puts(&b, "") == 0)
		buf_steal(&b, &s);
	buf_free(&b);
	return s;
}

/* Start the sink with a JSON script and extra options (NULL-ended). */
static void
sink_start(struct sink *k, const char *script, ...)
{
	const char *argv[24];
	size_t n = 0;
	char *py = sink_script();
	struct buf port = BUF_INIT;
	va_list ap;
	const char *a;

	memset(k, 0, sizeof(*k));
	strcpy(k->dir, "/tmp/relaytest-XXXXXX");
	assert_non_null(mkdtemp(k->dir));
	argv[n++] = "/usr/bin/python3";
	argv[n++] = py;
	argv[n++] = "--dir";
	argv[n++] = k->dir;
	argv[n++] = "--script";
	argv[n++] = script ? script : "{}";
	va_start(ap, script);
	while ((a = va_arg(ap, const char *)) != NULL && n < 22)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	assert_int_equal(posix_spawn(&k->pid, argv[0], NULL, NULL,
		(char *const *)argv, environ), 0);
	free(py);
	buf_printf(&port, "%s/port", k->dir);
	for (int i = 0; i < 1500; i++) {
		char *s = slurp(port.data, NULL);

		if (s) {
			k->port = atoi(s);
			free(s);
			break;
		}
		usleep(10000);
	}
	buf_free(&port);
	assert_true(k->port > 0);
	assert_int_equal(asprintf(&k->host_port, "127.0.0.1:%d", k->port) > 0,
		1);
}

/* Remove one file of the sink's directory. */
static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

/* Stop the sink and load what it recorded. */
static void
sink_stop(struct sink *k)
{
	struct buf path = BUF_INIT;
	json_error_t err;
	int st;

	usleep(100000);		/* let the sink read what is on its way */
	kill(k->pid, SIGTERM);
	assert_int_equal(waitpid(k->pid, &st, 0), k->pid);
	buf_printf(&path, "%s/record.json", k->dir);
	k->rec = json_load_file(path.data, 0, &err);
	buf_free(&path);
	assert_non_null(k->rec);
}

/* Free the record and the directory. */
static void
sink_free(struct sink *k)
{
	json_decref(k->rec);
	free(k->host_port);
	nftw(k->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Connections that sent a command. */
static size_t
sink_conns(const struct sink *k)
{
	return json_array_size(json_object_get(k->rec, "connections"));
}

/* Transactions that got their message. */
static size_t
sink_txns(const struct sink *k)
{
	return json_array_size(json_object_get(k->rec, "transactions"));
}

/* Transaction i (0-based). */
static json_t *
sink_txn(const struct sink *k, size_t i)
{
	json_t *t = json_array_get(json_object_get(k->rec, "transactions"), i);

	assert_non_null(t);
	return t;
}

/* String member of an object. */
static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Does a string array hold s? */
static bool
jarr_has(json_t *arr, const char *s)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (strcmp(json_string_value(json_array_get(arr, i)), s) == 0)
			return true;
	return false;
}

/* Does any command of any connection start with prefix? */
static bool
sink_saw_cmd(const struct sink *k, const char *prefix)
{
	json_t *cs = json_object_get(k->rec, "connections");

	for (size_t i = 0; i < json_array_size(cs); i++) {
		json_t *cmds = json_object_get(json_array_get(cs, i),
			"commands");

		for (size_t j = 0; j < json_array_size(cmds); j++)
			if (strncmp(json_string_value(json_array_get(cmds, j)),
			    prefix, strlen(prefix)) == 0)
				return true;
	}
	return false;
}

/* The bytes the sink received in transaction i. */
static char *
sink_data(const struct sink *k, size_t i, size_t *len)
{
	struct buf p = BUF_INIT;
	char *s;

	buf_printf(&p, "%s/%s", k->dir, jstr(sink_txn(k, i), "data_file"));
	s = slurp(p.data, len);
	buf_free(&p);
	assert_non_null(s);
	return s;
}

/* Has connection i (0-based) sent QUIT and been closed? The sink
   rewrites record.json after every change, so this looks at it live. */
static bool
sink_quit_seen(const struct sink *k, size_t i)
{
	struct buf path = BUF_INIT;
	json_error_t err;
	json_t *rec, *c;
	bool quit = false;

	buf_printf(&path, "%s/record.json", k->dir);
	rec = json_load_file(path.data, 0, &err);
	buf_free(&path);
	if (rec == NULL)
		return false;
	c = json_array_get(json_object_get(rec, "connections"), i);
	if (c && json_is_false(json_object_get(c, "open")))
		quit = jarr_has(json_object_get(c, "commands"), "QUIT");
	json_decref(rec);
	return quit;
}

/* ------------------------------------------------------------------ */
/* The loop and the relay.                                             */

#define MAXR 8

struct tmsg {
	bool done;
	int calls;
	size_t n;
	struct result res[MAXR];
	enum relay_host host;
};

struct t {
	uv_loop_t loop;
	uv_timer_t tick;
	struct logger lg;
	struct relay *r;
	struct tls_ctx *tls;
	bool closed;
};

/* Keep the loop turning so run_until can look at the clock. */
static void
on_tick(uv_timer_t *h)
{
	(void)h;
}

/* Set up a loop, a logger and a relay to host_port (idle_s given). */
static void
t_open_idle(struct t *t, const char *host_port, unsigned connections,
	uint64_t timeout_s, bool with_tls, uint64_t idle_s)
{
	struct relay_settings s = { .host_port = host_port,
		.helo = "client.test", .connections = connections,
		.timeout_s = timeout_s, .idle_s = idle_s };
	const char *lv = getenv("RELAY_TEST_LOG");
	enum log_level l = LOG_NONE;
	char *err = NULL;

	memset(t, 0, sizeof(*t));
	assert_int_equal(uv_loop_init(&t->loop), 0);
	assert_int_equal(uv_timer_init(&t->loop, &t->tick), 0);
	uv_timer_start(&t->tick, on_tick, 10, 10);
	log_init(&t->lg);
	if (lv)
		log_level_parse(lv, &l);
	log_set_all(&t->lg, l);
	if (with_tls) {
		assert_int_equal(tls_ctx_client(&t->tls, &err), 0);
		free(err);
	}
	assert_int_equal(relay_open(&t->loop, &s, t->tls, &t->lg, &t->r), 0);
}

/* Set up a loop, a logger and a relay to host_port (idle_s = 2). */
static void
t_open(struct t *t, const char *host_port, unsigned connections,
	uint64_t timeout_s, bool with_tls)
{
	t_open_idle(t, host_port, connections, timeout_s, with_tls, 2);
}

/* The relay's callback: keep the results. */
static void
on_done(void *arg, struct result *res, size_t n, enum relay_host host)
{
	struct tmsg *m = arg;

	m->calls++;
	m->done = true;
	m->n = n;
	m->host = host;
	for (size_t i = 0; i < n && i < MAXR; i++)
		result_move(&m->res[i], &res[i]);
}

/* Send a message held in memory to the recipients (NULL-ended). */
static void
send_mem(struct t *t, struct tmsg *m, const char *from, const char *body,
	...)
{
	struct relay_rcpt rc[MAXR];
	struct relay_msg msg = { .from = from, .rcpts = rc,
		.input_mem = body, .input_len = strlen(body) };
	const char *a;
	va_list ap;

	memset(rc, 0, sizeof(rc));
	va_start(ap, body);
	while ((a = va_arg(ap, const char *)) != NULL && msg.nrcpt < MAXR)
		rc[msg.nrcpt++].addr = a;
	va_end(ap);
	assert_int_equal(relay_send(t->r, &msg, on_done, m), 0);
	assert_false(m->done);	/* never inside relay_send */
}

/* Run the loop until every message in ms[0..n) is answered. */
static void
run_done(struct t *t, struct tmsg *ms, size_t n, unsigned secs)
{
	uint64_t end = uv_hrtime() + (uint64_t)secs * 1000000000u;

	for (;;) {
		bool all = true;

		for (size_t i = 0; i < n; i++)
			all = all && ms[i].done;
		if (all)
			return;
		if (uv_hrtime() > end)
			fail_msg("relay did not answer within %us", secs);
		uv_run(&t->loop, UV_RUN_ONCE);
	}
}

/* Run the loop until the sink saw connection i QUIT and close; seconds. */
static double
run_until_quit(struct t *t, const struct sink *k, size_t i, unsigned secs)
{
	uint64_t start = uv_hrtime();
	uint64_t end = start + (uint64_t)secs * 1000000000u;

	while (!sink_quit_seen(k, i)) {
		if (uv_hrtime() > end)
			fail_msg("connection %zu did not QUIT within %us", i,
				secs);
		uv_run(&t->loop, UV_RUN_ONCE);
	}
	return (double)(uv_hrtime() - start) / 1e9;
}

/* The relay is gone. */
static void
on_closed(void *arg)
{
	((struct t *)arg)->closed = true;
}

/* The relay is gone (a flag). */
static void
on_flag(void *arg)
{
	*(bool *)arg = true;
}

/* Close the relay, the loop, and check that nothing was left open. */
static void
t_close(struct t *t)
{
	uint64_t end = uv_hrtime() + 20000000000u;

	relay_close(t->r, on_closed, t);
	while (!t->closed) {
		if (uv_hrtime() > end)
			fail_msg("relay_close did not finish");
		uv_run(&t->loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)&t->tick, NULL);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&t->loop), 0);
	tls_ctx_free(t->tls);
}

/* Free the results of a message. */
static void
tmsg_free(struct tmsg *m)
{
	for (size_t i = 0; i < MAXR; i++)
		result_clear(&m->res[i]);
}

/* Assert one result. */
static void
check_res(const struct result *r, enum result_kind k, int reply,
	const char *status, const char *text_part)
{
	if (r->kind != k || r->reply != reply ||
	    strcmp(r->status, status) != 0 ||
	    (text_part && (r->text == NULL || !strstr(r->text, text_part))))
		fail_msg("got %s %d %s \"%s\"; want %s %d %s \"%s\"",
			result_kind_name(r->kind), r->reply, r->status,
			r->text ? r->text : "", result_kind_name(k), reply,
			status, text_part ? text_part : "");
}

/* Assert a result as the delivery log's reason= shows it. */
static void
check_reason(const struct result *r, const char *want)
{
	char *got = NULL;

	assert_int_equal(result_format(r, &got), 0);
	assert_string_equal(got, want);
	free(got);
}

/* A free TCP port with nothing listening. */
static int
dead_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

#define MSG "From: a@src.example\nTo: b@dst.example\nSubject: t\n\nhello\n"
#define MSG_CRLF "From: a@src.example\r\nTo: b@dst.example\r\n" \
	"Subject: t\r\n\r\nhello\r\n"

/* ------------------------------------------------------------------ */
/* Tests.                                                              */

/* Two recipients accepted: delivered, envelope and CRLF body at the sink. */
static void
test_delivered(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };
	size_t len;
	char *d, sz[32];
	json_t *x;

	(void)state;
	sink_start(&k, NULL, NULL);
	t_open(&t, k.host_port, 2, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example",
		"c@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	assert_int_equal(m.calls, 1);
	assert_int_equal(m.n, 2);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0",
		"relay said: ok (in reply to end of DATA)");
	check_res(&m.res[1], RESULT_DELIVERED, 250, "2.0.0", NULL);
	assert_int_equal(m.host, RELAY_HOST_UP);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_txns(&k), 1);
	x = sink_txn(&k, 0);
	assert_string_equal(jstr(x, "mail_from"), "a@src.example");
	assert_int_equal(json_array_size(json_object_get(x, "rcpts")), 2);
	assert_string_equal(jstr(json_array_get(json_object_get(x, "rcpts"), 1),
		"addr"), "c@dst.example");
	/* SIZE counts CRLF line ends; no BODY= for a 7-bit message */
	snprintf(sz, sizeof(sz), "SIZE=%zu", strlen(MSG_CRLF));
	assert_true(jarr_has(json_object_get(x, "mail_options"), sz));
	assert_int_equal(json_array_size(json_object_get(x, "mail_options")),
		1);
	d = sink_data(&k, 0, &len);
	assert_int_equal(len, strlen(MSG_CRLF));
	assert_memory_equal(d, MSG_CRLF, len);
	free(d);
	/* the session QUIT at relay_close */
	assert_true(sink_saw_cmd(&k, "QUIT"));
	assert_true(sink_saw_cmd(&k, "EHLO client.test"));
	tmsg_free(&m);
	sink_free(&k);
}

/* RCPT replies decide each recipient; the relay's text is kept. */
static void
test_rcpt_replies(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	sink_start(&k, "{\"rcpt:bad@dst.example\": \"550 5.1.1 no such user\","
		"\"rcpt:later@dst.example\": \"451 4.3.0 try later\","
		"\"rcpt:plain@dst.example\": \"450 mailbox busy\"}", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "bad@dst.example",
		"good@dst.example", "later@dst.example", "plain@dst.example",
		NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_FAILED, 550, "5.1.1",
		"relay said: no such user (in reply to RCPT TO)");
	check_res(&m.res[1], RESULT_DELIVERED, 250, "2.0.0", NULL);
	check_res(&m.res[2], RESULT_DEFERRED, 451, "4.3.0", "try later");
	/* no enhanced status in the reply: the class default */
	check_res(&m.res[3], RESULT_DEFERRED, 450, "4.0.0",
		"relay said: mailbox busy (in reply to RCPT TO)");
	/* replies to RCPT are the recipients' own: the host is up */
	assert_int_equal(m.host, RELAY_HOST_UP);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_txns(&k), 1);
	tmsg_free(&m);
	sink_free(&k);
}

/* No recipient accepted: no DATA, the transaction is reset. */
static void
test_no_rcpt_accepted(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	sink_start(&k, "{\"rcpt\": \"550 5.1.1 nobody here\"}",
		"--no-pipelining", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "x@dst.example",
		"y@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_FAILED, 550, "5.1.1", "nobody here");
	check_res(&m.res[1], RESULT_FAILED, 550, "5.1.1", "nobody here");
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_txns(&k), 0);
	assert_false(sink_saw_cmd(&k, "DATA"));
	assert_true(sink_saw_cmd(&k, "RSET"));
	tmsg_free(&m);
	sink_free(&k);
}

/* DATA refused (4xx) and the final reply (5xx / 4xx) for the accepted. */
static void
test_data_replies(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[3] = { { 0 } };

	(void)state;
	sink_start(&k, "{\"data\": [\"451 4.3.0 no data now\"],"
		"\"message\": [\"554 5.6.0 content rejected\","
		"\"452 4.3.1 disk full\"],"
		"\"rcpt:bad@dst.example\": \"550 5.1.1 no\"}", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m[0], "a@src.example", MSG, "b@dst.example",
		"bad@dst.example", NULL);
	send_mem(&t, &m[1], "a@src.example", MSG, "b@dst.example",
		"bad@dst.example", NULL);
	send_mem(&t, &m[2], "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, m, 3, 20);
	check_res(&m[0].res[0], RESULT_DEFERRED, 451, "4.3.0",
		"relay said: no data now (in reply to DATA)");
	check_res(&m[0].res[1], RESULT_FAILED, 550, "5.1.1", NULL);
	check_res(&m[1].res[0], RESULT_FAILED, 554, "5.6.0",
		"(in reply to end of DATA)");
	check_res(&m[1].res[1], RESULT_FAILED, 550, "5.1.1", NULL);
	check_res(&m[2].res[0], RESULT_DEFERRED, 452, "4.3.1", "disk full");
	/* DATA and end-of-data refusals are per message */
	for (int i = 0; i < 3; i++)
		assert_int_equal(m[i].host, RELAY_HOST_UP);
	t_close(&t);
	sink_stop(&k);
	/* one connection for the three messages */
	assert_int_equal(sink_conns(&k), 1);
	for (int i = 0; i < 3; i++)
		tmsg_free(&m[i]);
	sink_free(&k);
}

/* MAIL refused: every recipient gets that reply; the session goes on. */
static void
test_mail_refused(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[2] = { { 0 } };

	(void)state;
	sink_start(&k, "{\"mail:bad@src.example\": \"553 5.7.1 sender "
		"refused\"}", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m[0], "bad@src.example", MSG, "b@dst.example",
		"c@dst.example", NULL);
	send_mem(&t, &m[1], "good@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, m, 2, 20);
	check_res(&m[0].res[0], RESULT_FAILED, 553, "5.7.1",
		"sender refused (in reply to MAIL FROM)");
	check_res(&m[0].res[1], RESULT_FAILED, 553, "5.7.1", NULL);
	check_res(&m[1].res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_conns(&k), 1);
	assert_int_equal(sink_txns(&k), 1);
	for (int i = 0; i < 2; i++)
		tmsg_free(&m[i]);
	sink_free(&k);
}

/* Nothing listens: every recipient deferred 4.4.1. */
static void
test_connection_refused(void **state)
{
	struct t t;
	struct tmsg m = { 0 };
	char *hp;

	(void)state;
	assert_true(asprintf(&hp, "127.0.0.1:%d", dead_port()) > 0);
	t_open(&t, hp, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example",
		"c@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DEFERRED, 451, "4.4.1",
		"cannot connect to relay");
	check_res(&m.res[1], RESULT_DEFERRED, 451, "4.4.1",
		"connection refused");
	assert_int_equal(m.host, RELAY_HOST_DOWN);
	assert_int_equal(relay_active(t.r), 0);
	t_close(&t);
	tmsg_free(&m);
	free(hp);
}

/* An unresolvable host: deferred 4.4.3. */
static void
test_dns_failure(void **state)
{
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	t_open(&t, "relay.nonexistent.invalid:25", 1, 3, false);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DEFERRED, 451, "4.4.3",
		"relay host relay.nonexistent.invalid");
	assert_int_equal(m.host, RELAY_HOST_DOWN);
	t_close(&t);
	tmsg_free(&m);
}

/* No reply to MAIL (and no greeting at all): deferred 4.4.2. */
static void
test_timeout(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[2] = { { 0 } };

	(void)state;
	sink_start(&k, "{\"greeting\": [null, \"hang\"], \"mail\": "
		"[\"hang\"]}", NULL);
	t_open(&t, k.host_port, 1, 1, false);
	send_mem(&t, &m[0], "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, m, 1, 20);
	check_res(&m[0].res[0], RESULT_DEFERRED, 451, "4.4.2",
		"timed out waiting for the reply to MAIL FROM");
	/* inside a transaction a timeout is the message's trouble */
	assert_int_equal(m[0].host, RELAY_HOST_UP);
	/* the session was dropped: the next message opens a new one */
	send_mem(&t, &m[1], "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m[1], 1, 20);
	check_res(&m[1].res[0], RESULT_DEFERRED, 451, "4.4.2",
		"timed out waiting for the reply to the greeting");
	assert_int_equal(m[1].host, RELAY_HOST_DOWN);
	t_close(&t);
	sink_stop(&k);
	for (int i = 0; i < 2; i++)
		tmsg_free(&m[i]);
	sink_free(&k);
}

/* With and without PIPELINING: same results, batching only with it. */
static void
pipelining_case(bool on)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };
	json_t *x;

	sink_start(&k, "{\"rcpt:bad@dst.example\": \"550 5.1.1 no\"}",
		on ? NULL : "--no-pipelining", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example",
		"bad@dst.example", "c@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	check_res(&m.res[1], RESULT_FAILED, 550, "5.1.1", NULL);
	check_res(&m.res[2], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	x = sink_txn(&k, 0);
	assert_int_equal(json_is_true(json_object_get(x, "pipelined")), on);
	tmsg_free(&m);
	sink_free(&k);
}

/* PIPELINING offered: MAIL, RCPTs and DATA go in one write. */
static void
test_pipelining_on(void **state)
{
	(void)state;
	pipelining_case(true);
}

/* PIPELINING not offered: one command at a time. */
static void
test_pipelining_off(void **state)
{
	(void)state;
	pipelining_case(false);
}

/* STARTTLS offered and a TLS context given: used, EHLO again. */
static void
test_starttls(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[2] = { { 0 } };
	size_t len;
	char *d;

	(void)state;
	sink_start(&k, NULL, "--tls", "starttls", NULL);
	t_open(&t, k.host_port, 1, 10, true);
	send_mem(&t, &m[0], "a@src.example", MSG, "b@dst.example", NULL);
	send_mem(&t, &m[1], "a@src.example", MSG, "c@dst.example", NULL);
	run_done(&t, m, 2, 20);
	check_res(&m[0].res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	check_res(&m[1].res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_conns(&k), 1);
	assert_int_equal(sink_txns(&k), 2);
	assert_true(json_is_true(json_object_get(sink_txn(&k, 0), "tls")));
	assert_true(json_is_true(json_object_get(sink_txn(&k, 1), "tls")));
	assert_true(sink_saw_cmd(&k, "STARTTLS"));
	d = sink_data(&k, 1, &len);
	assert_int_equal(len, strlen(MSG_CRLF));
	assert_memory_equal(d, MSG_CRLF, len);
	free(d);
	for (int i = 0; i < 2; i++)
		tmsg_free(&m[i]);
	sink_free(&k);
}

/* STARTTLS offered, no TLS context: plaintext. */
static void
test_starttls_without_ctx(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	sink_start(&k, NULL, "--tls", "starttls", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_false(sink_saw_cmd(&k, "STARTTLS"));
	assert_false(json_is_true(json_object_get(sink_txn(&k, 0), "tls")));
	tmsg_free(&m);
	sink_free(&k);
}

/* The handshake fails: the message goes out on a new plaintext session. */
static void
test_starttls_broken(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	sink_start(&k, NULL, "--tls", "broken", NULL);
	t_open(&t, k.host_port, 1, 10, true);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_conns(&k), 2);
	assert_int_equal(sink_txns(&k), 1);
	assert_false(json_is_true(json_object_get(sink_txn(&k, 0), "tls")));
	tmsg_free(&m);
	sink_free(&k);
}

/* The relay's SIZE is smaller than the message: 552 5.3.4, no MAIL. */
static void
test_size_too_big(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };
	char want[80];

	(void)state;
	sink_start(&k, NULL, "--size", "40", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example",
		"c@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	snprintf(want, sizeof(want), "message size %zu exceeds the relay's "
		"limit of 40 bytes", strlen(MSG_CRLF));
	check_res(&m.res[0], RESULT_FAILED, 552, "5.3.4", want);
	check_res(&m.res[1], RESULT_FAILED, 552, "5.3.4", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_false(sink_saw_cmd(&k, "MAIL"));
	tmsg_free(&m);
	sink_free(&k);
}

/* 8-bit data: refused without 8BITMIME, BODY=8BITMIME with it. */
static void
test_8bit(void **state)
{
	static const char body[] = "Subject: caf\xc3\xa9\n\ncaf\xc3\xa9\n";
	static const char want[] = "Subject: caf\xc3\xa9\r\n\r\n"
		"caf\xc3\xa9\r\n";
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };
	size_t len;
	char *d;

	(void)state;
	sink_start(&k, NULL, "--no-8bitmime", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", body, "b@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_FAILED, 554, "5.6.3",
		"conversion required and prohibited");
	t_close(&t);
	sink_stop(&k);
	assert_false(sink_saw_cmd(&k, "MAIL"));
	tmsg_free(&m);
	sink_free(&k);

	memset(&m, 0, sizeof(m));
	sink_start(&k, NULL, NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", body, "b@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_true(jarr_has(json_object_get(sink_txn(&k, 0), "mail_options"),
		"BODY=8BITMIME"));
	d = sink_data(&k, 0, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(d, want, len);
	free(d);
	tmsg_free(&m);
	sink_free(&k);
}

/* Lines starting with '.' are stuffed; LF becomes CRLF; a last line
   without a newline is ended. */
static void
test_dot_stuffing(void **state)
{
	static const char body[] = "Subject: dots\n\n.\n..x\n.y\nmid.dle\n"
		"\n.\nCR\r\nlast";
	static const char want[] = "Subject: dots\r\n\r\n.\r\n..x\r\n.y\r\n"
		"mid.dle\r\n\r\n.\r\nCR\r\nlast\r\n";
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };
	size_t len;
	char *d;

	(void)state;
	sink_start(&k, NULL, NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", body, "b@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	d = sink_data(&k, 0, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(d, want, len);
	free(d);
	tmsg_free(&m);
	sink_free(&k);
}

/* A big message streamed from a queue file (after its envelope), with
   dots and long lines, through the thread pool in chunks. */
static void
test_file_stream(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };
	struct buf file = BUF_INIT, want = BUF_INIT;
	struct relay_rcpt rc = { .addr = "b@dst.example" };
	struct relay_msg msg = { .from = "a@src.example", .rcpts = &rc,
		.nrcpt = 1 };
	char path[] = "/tmp/relaytest-msg-XXXXXX";
	size_t len, off;
	char *d;
	int fd;

	(void)state;
	buf_puts(&file, "mailpipe-queue 1\nuid x\nend\n\n");
	off = file.len;
	buf_puts(&file, "Subject: big\n\n");
	buf_puts(&want, "Subject: big\r\n\r\n");
	for (int i = 0; i < 20000; i++) {
		buf_printf(&file, "%sline %d %s\n", i % 7 == 0 ? "." : "", i,
			i % 1000 == 0 ? "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" : "");
		buf_printf(&want, "%sline %d %s\r\n", i % 7 == 0 ? ".." : "",
			i, i % 1000 == 0 ? "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" : "");
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, file.data, file.len), (ssize_t)file.len);
	close(fd);
	msg.input_path = path;
	msg.input_off = off;
	msg.input_len = file.len - off;

	sink_start(&k, NULL, NULL);
	t_open(&t, k.host_port, 1, 10, false);
	assert_int_equal(relay_send(t.r, &msg, on_done, &m), 0);
	run_done(&t, &m, 1, 30);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	d = sink_data(&k, 0, &len);
	/* the sink un-stuffs: each ".." line arrives as "." */
	{
		struct buf un = BUF_INIT;
		const char *p = want.data;

		while (*p) {
			const char *nl = strchr(p, '\n');

			if (p[0] == '.')
				p++;
			buf_append(&un, p, (size_t)(nl - p + 1));
			p = nl + 1;
		}
		assert_int_equal(len, un.len);
		assert_memory_equal(d, un.data, len);
		buf_free(&un);
	}
	free(d);
	unlink(path);
	buf_free(&file);
	buf_free(&want);
	tmsg_free(&m);
	sink_free(&k);
}

/* A queue file that cannot be read: deferred without a connection. */
static void
test_file_missing(void **state)
{
	struct t t;
	struct tmsg m = { 0 };
	struct relay_rcpt rc = { .addr = "b@dst.example" };
	struct relay_msg msg = { .from = "a@src.example", .rcpts = &rc,
		.nrcpt = 1, .input_path = "/nonexistent/q.msg",
		.input_len = 10 };

	(void)state;
	t_open(&t, "127.0.0.1:1", 1, 10, false);
	assert_int_equal(relay_send(t.r, &msg, on_done, &m), 0);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DEFERRED, 451, "4.3.0",
		"cannot open the message");
	/* the message was never read: no connection was made */
	assert_int_equal(m.host, RELAY_HOST_UNKNOWN);
	t_close(&t);
	tmsg_free(&m);
}

/* Several messages in a row use one connection (RSET between). */
static void
test_reuse(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[4] = { { 0 } };

	(void)state;
	sink_start(&k, NULL, NULL);
	t_open(&t, k.host_port, 1, 10, false);
	/* one after the other: each finds the idle session */
	for (int i = 0; i < 4; i++) {
		send_mem(&t, &m[i], "a@src.example", MSG, "b@dst.example",
			NULL);
		run_done(&t, &m[i], 1, 20);
		check_res(&m[i].res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	}
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_conns(&k), 1);
	assert_int_equal(sink_txns(&k), 4);
	assert_true(sink_saw_cmd(&k, "RSET"));
	for (int i = 0; i < 4; i++)
		tmsg_free(&m[i]);
	sink_free(&k);
}

/* At most `connections` sessions; the rest wait and reuse them. */
static void
test_connections_bound(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[7] = { { 0 } };

	(void)state;
	sink_start(&k, NULL, NULL);
	t_open(&t, k.host_port, 2, 10, false);
	for (int i = 0; i < 7; i++)
		send_mem(&t, &m[i], "a@src.example", MSG, "b@dst.example",
			NULL);
	assert_int_equal(relay_active(t.r), 7);
	run_done(&t, m, 7, 30);
	for (int i = 0; i < 7; i++)
		check_res(&m[i].res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	assert_int_equal(relay_active(t.r), 0);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_txns(&k), 7);
	assert_int_equal(sink_conns(&k), 2);
	assert_true(json_integer_value(json_object_get(k.rec,
		"max_open")) <= 2);
	for (int i = 0; i < 7; i++)
		tmsg_free(&m[i]);
	sink_free(&k);
}

/* The idle session is closed after idle_s; the next message reconnects. */
static void
test_idle_close(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[2] = { { 0 } };
	uint64_t end;

	(void)state;
	sink_start(&k, NULL, NULL);
	t_open(&t, k.host_port, 1, 10, false);	/* idle_s = 2 */
	send_mem(&t, &m[0], "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m[0], 1, 20);
	end = uv_hrtime() + 3500000000u;
	while (uv_hrtime() < end)
		uv_run(&t.loop, UV_RUN_ONCE);
	send_mem(&t, &m[1], "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m[1], 1, 20);
	check_res(&m[1].res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	assert_int_equal(m[1].host, RELAY_HOST_UP);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_conns(&k), 2);
	for (int i = 0; i < 2; i++)
		tmsg_free(&m[i]);
	sink_free(&k);
}

/* idle_s 1: after the last message the session QUITs after about 1s. */
static void
test_idle_timeout(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };
	double waited;

	(void)state;
	sink_start(&k, NULL, NULL);
	t_open_idle(&t, k.host_port, 1, 10, false, 1);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	waited = run_until_quit(&t, &k, 0, 10);
	if (waited < 0.7 || waited > 3.0)
		fail_msg("QUIT after %.2fs, want about 1s", waited);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_conns(&k), 1);
	assert_int_equal(sink_txns(&k), 1);
	tmsg_free(&m);
	sink_free(&k);
}

/* Idle 0 after three messages on one connection: QUIT at once; clean up. */
static void
quit_at_once(struct t *t, struct sink *k, struct tmsg m[3])
{
	double waited = run_until_quit(t, k, 0, 10);

	if (waited > 1.0)	/* the default idle time was 5s */
		fail_msg("QUIT after %.2fs, want at once", waited);
	t_close(t);
	sink_stop(k);
	assert_int_equal(sink_conns(k), 1);
	assert_int_equal(sink_txns(k), 3);
	for (int i = 0; i < 3; i++)
		tmsg_free(&m[i]);
	sink_free(k);
}

/* idle_s 0: messages waiting share the connection, then it QUITs at once. */
static void
test_idle_zero_batch(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[3] = { { 0 } };

	(void)state;
	sink_start(&k, NULL, NULL);
	t_open_idle(&t, k.host_port, 1, 10, false, 0);
	for (int i = 0; i < 3; i++)
		send_mem(&t, &m[i], "a@src.example", MSG, "b@dst.example",
			NULL);
	run_done(&t, m, 3, 20);
	quit_at_once(&t, &k, m);
}

/* A sender that sends its next message from the previous one's callback. */
struct chain {
	struct t *t;
	struct tmsg m[3];
	size_t sent, answered;
};

/* The chain's callback (defined below). */
static void chain_done(void *arg, struct result *res, size_t n,
	enum relay_host host);

/* Send the next message of the chain. */
static void
chain_send(struct chain *c)
{
	struct relay_rcpt rc = { .addr = "b@dst.example" };
	struct relay_msg msg = { .from = "a@src.example", .rcpts = &rc,
		.nrcpt = 1, .input_mem = MSG, .input_len = strlen(MSG) };

	c->sent++;
	assert_int_equal(relay_send(c->t->r, &msg, chain_done, c), 0);
}

/* A chain message is answered: send the next one from here. */
static void
chain_done(void *arg, struct result *res, size_t n, enum relay_host host)
{
	struct chain *c = arg;

	on_done(&c->m[c->answered++], res, n, host);
	if (c->sent < 3)
		chain_send(c);
}

/* idle_s 0: a message sent from the callback of the previous one still
   finds the session (one connection for the chain); then QUIT at once. */
static void
test_idle_zero_chain(void **state)
{
	struct sink k;
	struct t t;
	struct chain c;

	(void)state;
	memset(&c, 0, sizeof(c));
	sink_start(&k, NULL, NULL);
	t_open_idle(&t, k.host_port, 1, 10, false, 0);
	c.t = &t;
	chain_send(&c);
	run_done(&t, c.m, 3, 20);
	assert_int_equal(c.sent, 3);
	for (int i = 0; i < 3; i++)
		check_res(&c.m[i].res[0], RESULT_DELIVERED, 250, "2.0.0",
			NULL);
	quit_at_once(&t, &k, c.m);
}

/* The relay's code and status are the result's; the text does not repeat
   them (reason="550 5.1.1 relay said: no such user ..."). */
static void
test_reason_once(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	sink_start(&k, "{\"rcpt:bad@dst.example\": \"550 5.1.1 no such "
		"user\", \"rcpt:plain@dst.example\": \"450 mailbox busy\","
		"\"rcpt:multi@dst.example\": \"550-5.7.1 first line\\n"
		"550 5.7.1 second line\","
		"\"message\": \"250 2.0.0 queued as 4711\"}", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "bad@dst.example",
		"plain@dst.example", "multi@dst.example", "good@dst.example",
		NULL);
	run_done(&t, &m, 1, 20);
	check_reason(&m.res[0],
		"550 5.1.1 relay said: no such user (in reply to RCPT TO)");
	/* no enhanced status from the relay: the class default */
	check_reason(&m.res[1],
		"450 4.0.0 relay said: mailbox busy (in reply to RCPT TO)");
	check_reason(&m.res[2], "550 5.7.1 relay said: first line second "
		"line (in reply to RCPT TO)");
	check_reason(&m.res[3], "250 2.0.0 relay said: queued as 4711 (in "
		"reply to end of DATA)");
	t_close(&t);
	sink_stop(&k);
	tmsg_free(&m);
	sink_free(&k);
}

/* The relay closed the idle session (421): the next message still goes
   out, on a new connection, and is not deferred. */
static void
test_reuse_dead_session(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[2] = { { 0 } };

	(void)state;
	sink_start(&k, "{\"rset\": [\"close\"]}", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m[0], "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m[0], 1, 20);
	send_mem(&t, &m[1], "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m[1], 1, 20);
	check_res(&m[1].res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_conns(&k), 2);
	assert_int_equal(sink_txns(&k), 2);
	for (int i = 0; i < 2; i++)
		tmsg_free(&m[i]);
	sink_free(&k);
}

/* 421 in the middle: every open recipient deferred, session dropped. */
static void
test_421(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	sink_start(&k, "{\"rcpt:c@dst.example\": \"421 4.3.2 going down\"}",
		"--no-pipelining", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example",
		"c@dst.example", "d@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	for (int i = 0; i < 3; i++)
		check_res(&m.res[i], RESULT_DEFERRED, 421, "4.3.2",
			"going down");
	assert_int_equal(m.host, RELAY_HOST_DOWN);	/* 421 at any point */
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_txns(&k), 0);
	tmsg_free(&m);
	sink_free(&k);
}

/* A reply whose lines carry different codes is a protocol error; before
   the session is ready that is the host's failure. */
static void
test_inconsistent_codes(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	sink_start(&k, "{\"ehlo\": \"250-sink.test\\n251 PIPELINING\"}",
		NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DEFERRED, 451, "4.5.0",
		"protocol error: the lines of a reply have different codes");
	assert_int_equal(m.host, RELAY_HOST_DOWN);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_txns(&k), 0);
	tmsg_free(&m);
	sink_free(&k);
}

/* EHLO refused: HELO, no extensions (no SIZE=, no DSN parameters). */
static void
test_helo_fallback(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };
	struct relay_rcpt rc = { .addr = "b@dst.example",
		.notify = NOTIFY_FAILURE, .orcpt = "rfc822;b@dst.example" };
	struct relay_msg msg = { .from = "a@src.example", .rcpts = &rc,
		.nrcpt = 1, .ret = "HDRS", .envid = "ID1", .input_mem = MSG,
		.input_len = strlen(MSG) };

	(void)state;
	sink_start(&k, "{\"ehlo\": \"502 5.5.2 what?\"}", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	assert_int_equal(relay_send(t.r, &msg, on_done, &m), 0);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_true(sink_saw_cmd(&k, "HELO client.test"));
	assert_true(sink_saw_cmd(&k, "MAIL FROM:<a@src.example>"));
	assert_int_equal(json_array_size(json_object_get(sink_txn(&k, 0),
		"mail_options")), 0);
	tmsg_free(&m);
	sink_free(&k);
}

/* Refusals before MAIL defer (the relay's text kept); the session is
   dropped. */
static void
test_greeting_refused(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m[2] = { { 0 } };

	(void)state;
	sink_start(&k, "{\"greeting\": [\"554 5.3.2 no service for you\"],"
		"\"ehlo\": [\"550 5.7.1 go away\"],"
		"\"helo\": [\"550 5.7.1 still no\"]}", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m[0], "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m[0], 1, 20);
	check_res(&m[0].res[0], RESULT_DEFERRED, 451, "4.3.2",
		"relay said: 554 5.3.2 no service for you (in reply to the "
		"greeting)");
	/* the result's code is ours: the relay's is kept in the text */
	check_reason(&m[0].res[0], "451 4.3.2 relay said: 554 5.3.2 no "
		"service for you (in reply to the greeting)");
	send_mem(&t, &m[1], "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m[1], 1, 20);
	check_res(&m[1].res[0], RESULT_DEFERRED, 451, "4.7.1",
		"relay said: 550 5.7.1 still no (in reply to HELO)");
	assert_int_equal(m[0].host, RELAY_HOST_DOWN);
	assert_int_equal(m[1].host, RELAY_HOST_DOWN);
	t_close(&t);
	sink_stop(&k);
	assert_true(sink_saw_cmd(&k, "HELO client.test"));
	assert_int_equal(sink_txns(&k), 0);
	for (int i = 0; i < 2; i++)
		tmsg_free(&m[i]);
	sink_free(&k);
}

/* STARTTLS refused (454): the session goes on in plaintext. */
static void
test_starttls_refused(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	sink_start(&k, "{\"starttls\": \"454 4.7.0 TLS not available\"}",
		"--tls", "starttls", NULL);
	t_open(&t, k.host_port, 1, 10, true);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(sink_conns(&k), 1);
	assert_true(sink_saw_cmd(&k, "STARTTLS"));
	assert_false(json_is_true(json_object_get(sink_txn(&k, 0), "tls")));
	tmsg_free(&m);
	sink_free(&k);
}

/* DSN offered: RET, ENVID, NOTIFY, ORCPT go along; not offered: not. */
static void
test_dsn(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };
	struct relay_rcpt rc[2] = {
		{ .addr = "b@dst.example", .notify = NOTIFY_SUCCESS |
		  NOTIFY_FAILURE, .orcpt = "rfc822;B+2Bx@old.example" },
		{ .addr = "c@dst.example", .notify = NOTIFY_NEVER },
	};
	struct relay_msg msg = { .from = "", .rcpts = rc, .nrcpt = 2,
		.ret = "hdrs", .envid = "QQ123", .input_mem = MSG,
		.input_len = strlen(MSG) };
	json_t *x, *r0, *r1;

	(void)state;
	for (int dsn = 1; dsn >= 0; dsn--) {
		memset(&m, 0, sizeof(m));
		sink_start(&k, NULL, dsn ? NULL : "--no-dsn", NULL);
		t_open(&t, k.host_port, 1, 10, false);
		assert_int_equal(relay_send(t.r, &msg, on_done, &m), 0);
		run_done(&t, &m, 1, 20);
		check_res(&m.res[0], RESULT_DELIVERED, 250, "2.0.0", NULL);
		check_res(&m.res[1], RESULT_DELIVERED, 250, "2.0.0", NULL);
		t_close(&t);
		sink_stop(&k);
		x = sink_txn(&k, 0);
		r0 = json_object_get(json_array_get(json_object_get(x, "rcpts"),
			0), "options");
		r1 = json_object_get(json_array_get(json_object_get(x, "rcpts"),
			1), "options");
		assert_string_equal(jstr(x, "mail_from"), "");
		assert_int_equal(jarr_has(json_object_get(x, "mail_options"),
			"RET=HDRS"), dsn);
		assert_int_equal(jarr_has(json_object_get(x, "mail_options"),
			"ENVID=QQ123"), dsn);
		assert_int_equal(jarr_has(r0, "NOTIFY=SUCCESS,FAILURE"), dsn);
		assert_int_equal(jarr_has(r0, "ORCPT=rfc822;B+2Bx@old.example"),
			dsn);
		assert_int_equal(jarr_has(r1, "NOTIFY=NEVER"), dsn);
		tmsg_free(&m);
		sink_free(&k);
	}
}

/* relay_close defers what waits; every callback runs once. */
static void
test_close_defers_queued(void **state)
{
	struct t t;
	struct tmsg m[3] = { { 0 } };
	struct relay_rcpt rc = { .addr = "b@dst.example" };
	struct relay_msg msg = { .from = "a@src.example", .rcpts = &rc,
		.nrcpt = 1 };
	uint64_t end;

	(void)state;
	t_open(&t, "127.0.0.1:1", 1, 10, false);
	for (int i = 0; i < 3; i++)
		send_mem(&t, &m[i], "a@src.example", MSG, "b@dst.example",
			NULL);
	relay_close(t.r, on_closed, &t);
	assert_int_equal(relay_send(t.r, &msg, on_done, &m[0]), -ESHUTDOWN);
	end = uv_hrtime() + 20000000000u;
	while (!t.closed && uv_hrtime() < end)
		uv_run(&t.loop, UV_RUN_ONCE);
	assert_true(t.closed);
	for (int i = 0; i < 3; i++)
		assert_int_equal(m[i].calls, 1);
	/* none had a session yet: all deferred, none tried */
	for (int i = 0; i < 3; i++)
		check_res(&m[i].res[0], RESULT_DEFERRED, 451, "4.3.2",
			"relay client shutting down");
	for (int i = 0; i < 3; i++)
		assert_int_equal(m[i].host, RELAY_HOST_UNKNOWN);
	uv_close((uv_handle_t *)&t.tick, NULL);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&t.loop), 0);
	for (int i = 0; i < 3; i++)
		tmsg_free(&m[i]);
}

/* Multi-line replies are joined; unsafe values fail before any command. */
static void
test_multiline_and_unsafe(void **state)
{
	struct sink k;
	struct t t;
	struct tmsg m = { 0 };

	(void)state;
	sink_start(&k, "{\"rcpt:b@dst.example\": \"550-5.7.1 first line\\n"
		"550 5.7.1 second line\"}", NULL);
	t_open(&t, k.host_port, 1, 10, false);
	send_mem(&t, &m, "a@src.example", MSG, "b@dst.example",
		"bad\r\nRSET@dst.example", "c@dst.example", NULL);
	run_done(&t, &m, 1, 20);
	check_res(&m.res[0], RESULT_FAILED, 550, "5.7.1",
		"relay said: first line second line (in reply to RCPT TO)");
	check_res(&m.res[1], RESULT_FAILED, 553, "5.1.3", "control");
	check_res(&m.res[2], RESULT_DELIVERED, 250, "2.0.0", NULL);
	t_close(&t);
	sink_stop(&k);
	assert_int_equal(json_array_size(json_object_get(sink_txn(&k, 0),
		"rcpts")), 2);
	tmsg_free(&m);
	sink_free(&k);
}

/* Bad arguments. */
static void
test_bad_args(void **state)
{
	struct relay_settings s = { .host_port = "host:x" };
	struct relay *r = NULL;
	uv_loop_t loop;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(relay_open(&loop, &s, NULL, NULL, &r), -EINVAL);
	s.host_port = "";
	assert_int_equal(relay_open(&loop, &s, NULL, NULL, &r), -EINVAL);
	s.host_port = "a:b:c";
	assert_int_equal(relay_open(&loop, &s, NULL, NULL, &r), -EINVAL);
	s.host_port = "[::1]:2525";
	assert_int_equal(relay_open(&loop, &s, NULL, NULL, &r), 0);
	{
		struct relay_msg msg = { .from = "a@b", .nrcpt = 0 };
		bool closed = false;

		assert_int_equal(relay_send(r, &msg, on_done, NULL), -EINVAL);
		relay_close(r, on_flag, &closed);
		uv_run(&loop, UV_RUN_DEFAULT);
		assert_true(closed);
	}
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Every test, in one process (each starts its own sink). */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_delivered),
		cmocka_unit_test(test_rcpt_replies),
		cmocka_unit_test(test_no_rcpt_accepted),
		cmocka_unit_test(test_data_replies),
		cmocka_unit_test(test_mail_refused),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_dns_failure),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_pipelining_on),
		cmocka_unit_test(test_pipelining_off),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_starttls_without_ctx),
		cmocka_unit_test(test_starttls_broken),
		cmocka_unit_test(test_size_too_big),
		cmocka_unit_test(test_8bit),
		cmocka_unit_test(test_dot_stuffing),
		cmocka_unit_test(test_file_stream),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_connections_bound),
		cmocka_unit_test(test_idle_close),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_idle_zero_batch),
		cmocka_unit_test(test_idle_zero_chain),
		cmocka_unit_test(test_reason_once),
		cmocka_unit_test(test_reuse_dead_session),
		cmocka_unit_test(test_421),
		cmocka_unit_test(test_inconsistent_codes),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_greeting_refused),
		cmocka_unit_test(test_starttls_refused),
		cmocka_unit_test(test_dsn),
		cmocka_unit_test(test_close_defers_queued),
		cmocka_unit_test(test_multiline_and_unsafe),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
