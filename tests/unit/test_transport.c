/*
 * Unit tests for transport.c: the table built from the config (commands
 * parsed, paths and '*' refused, time limits resolved, the router's flat
 * domain list) and the one SMTP reply for several sync results.
 * (Sync runs with real programs: tests/integration/test_transport.py.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"

/* A config from INI text (defaults for base /b, host h.example). */
static void
load(struct config *c, const char *text)
{
	char *err = NULL;

	assert_int_equal(config_defaults(c, "/b", "h.example"), 0);
	assert_int_equal(config_parse(c, text, strlen(text), "t.conf", &err),
		0);
	free(err);
}

/* Commands are parsed; domains and names line up; limits resolved. */
static void
test_table(void **state)
{
	struct config c;
	struct transport_table t;
	const struct transport *tr;
	char *err = NULL;

	load(&c, "[pipe]\ntime-limit = 2m\n"
		"[transport tickets]\ndomains = tickets.example, t2.example\n"
		"command = [RCPT] ticketd -q\nmode = sync\n"
		"code.100 = \"550 5.1.1 no such queue\"\n"
		"[transport archive]\ndomains = arch.example\n"
		"command = queue[ARCH] archiver\n");
	assert_int_equal(transport_table_build(&c, &t, &err), 0);
	assert_null(err);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.domains.n, 3);
	assert_string_equal(t.domains.v[2], "arch.example");
	assert_string_equal(t.names[0], "tickets");
	assert_string_equal(t.names[1], "tickets");
	assert_string_equal(t.names[2], "archive");
	tr = transport_find(&t, "tickets");
	assert_non_null(tr);
	assert_string_equal(tr->cmd.app, "ticketd");
	assert_int_equal(tr->cmd.tags, PIPE_TAG_RCPT);
	assert_string_equal(tr->cmd.params.v[0], "-q");
	assert_int_equal(tr->time_limit_s, TRANSPORT_SYNC_TIME_LIMIT);
	tr = transport_find(&t, "archive");
	assert_string_equal(tr->cmd.queue, "ARCH");
	assert_int_equal(tr->time_limit_s, 120);	/* [pipe] time-limit */
	assert_null(transport_find(&t, "nope"));
	transport_table_free(&t);
	config_free(&c);
}

/* The request carries the transport's settings; sync uses 60 s. */
static void
test_request(void **state)
{
	struct config c;
	struct transport_table t;
	struct pipe_request req;
	char *err = NULL;

	load(&c, "[transport x]\ndomains = x.example\ncommand = prog\n"
		"output-file = /var/log/x.out\ncode.3 = \"250 fine\"\n");
	assert_int_equal(transport_table_build(&c, &t, &err), 0);
	memset(&req, 0, sizeof(req));
	transport_request(&t.v[0], false, &req);
	assert_ptr_equal(req.cmd, &t.v[0].cmd);
	assert_non_null(req.codes);
	assert_int_equal(req.codes->n, 1);
	assert_false(req.sync);
	assert_int_equal(req.time_limit_s, c.pipe.time_limit_s);
	assert_string_equal(req.output_file, "/var/log/x.out");
	assert_null(req.error_file);
	transport_request(&t.v[0], true, &req);
	assert_true(req.sync);
	assert_int_equal(req.time_limit_s, TRANSPORT_SYNC_TIME_LIMIT);
	transport_table_free(&t);
	config_free(&c);
}

/* Bad commands name the file and line of their command key. */
static void
test_bad_commands(void **state)
{
	static const char *bad[] = {
		"[transport a]\ndomains = a.example\ncommand = /usr/bin/cat\n",
		"[transport a]\ndomains = a.example\ncommand = prog *\n",
		"[transport a]\ndomains = a.example\ncommand = [NOPE] prog\n",
		"[transport a]\ndomains = a.example\ncommand = ../prog\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct config c;
		struct transport_table t;
		char *err = NULL;

		load(&c, bad[i]);
		assert_int_equal(transport_table_build(&c, &t, &err), -EINVAL);
		assert_non_null(err);
		assert_non_null(strstr(err, ":3: [transport a] command"));
		assert_int_equal(t.n, 0);
		free(err);
		config_free(&c);
	}
}

/*
 * mode = sync refuses [FILE] (no queue file) and queue[NAME] (no queue),
 * at the command's line, whichever of command and mode comes first; the
 * same commands are fine in queue mode.
 */
static void
test_sync_refusals(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "[transport a]\ndomains = a.example\nmode = sync\n"
		  "command = [FILE] prog\n", ":4: [transport a] command: "
		  "[FILE] needs a queue file: not in mode = sync" },
		{ "[transport a]\ndomains = a.example\n"
		  "command = [RCPT] [FILE] prog -x\nmode = sync\n",
		  ":3: [transport a] command: [FILE] needs a queue file" },
		{ "[transport a]\ndomains = a.example\nmode = sync\n"
		  "command = queue[T] prog\n", ":4: [transport a] "
		  "command: queue[NAME] orders queued deliveries: not in "
		  "mode = sync" },
		{ "[transport ok]\ndomains = ok.example\ncommand = prog\n"
		  "mode = sync\n\n[transport b]\ndomains = b.example\n"
		  "command = queue[T] [FILE] prog\nmode = SYNC\n",
		  ":8: [transport b] command: [FILE]" },
	};
	struct pipe_cmd cmd = PIPE_CMD_INIT;
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct config c;
		struct transport_table t;
		char *err = NULL;

		load(&c, bad[i].text);
		assert_int_equal(transport_table_build(&c, &t, &err), -EINVAL);
		assert_non_null(err);
		assert_non_null(strstr(err, bad[i].why));
		assert_int_equal(t.n, 0);
		assert_null(t.v);
		free(err);
		/* the same command in queue mode is a transport */
		for (size_t k = 0; k < c.ntransports; k++)
			c.transports[k].mode = TRANSPORT_QUEUE;
		assert_int_equal(transport_table_build(&c, &t, &err), 0);
		assert_null(err);
		assert_int_equal(t.n, c.ntransports);
		transport_table_free(&t);
		config_free(&c);
	}
	/* the pure check itself */
	assert_int_equal(pipe_cmd_parse("[RCPT] [RETPATH] prog -a", 24, &cmd,
		&why), 0);
	assert_null(transport_sync_refusal(&cmd));
	pipe_cmd_free(&cmd);
}

/* Fill one sync result. */
static void
res(struct transport_sync_rcpt *r, enum result_kind k, int reply,
	const char *status, const char *text)
{
	r->res = (struct result)RESULT_INIT;
	assert_int_equal(result_set(&r->res, k, reply, status, "%s", text), 0);
}

/* All delivered -> 250; a failure beats a deferral; first of each kind. */
static void
test_sync_reply(void **state)
{
	struct transport_sync_rcpt r[3];
	struct result out = RESULT_INIT;

	memset(r, 0, sizeof(r));
	res(&r[0], RESULT_DELIVERED, 250, "2.0.0", "filed as #42");
	/* one program: its own (maybe code.N-mapped) reply */
	assert_int_equal(transport_sync_reply(r, 1, &out), 0);
	assert_int_equal(out.reply, 250);
	assert_string_equal(out.text, "filed as #42");
	result_clear(&out);
	res(&r[1], RESULT_DELIVERED, 250, "2.0.0", "ok");
	assert_int_equal(transport_sync_reply(r, 2, &out), 0);
	assert_int_equal(out.kind, RESULT_DELIVERED);
	assert_int_equal(out.reply, 250);
	assert_string_equal(out.text, "delivered to 2 programs");
	result_clear(&out);

	res(&r[2], RESULT_DEFERRED, 451, "4.3.0", "busy");
	assert_int_equal(transport_sync_reply(r, 3, &out), 0);
	assert_int_equal(out.reply, 451);
	assert_string_equal(out.text, "busy");
	result_clear(&out);

	result_clear(&r[0].res);
	res(&r[0], RESULT_FAILED, 550, "5.1.1", "no such queue");
	assert_int_equal(transport_sync_reply(r, 3, &out), 0);
	assert_int_equal(out.kind, RESULT_FAILED);
	assert_int_equal(out.reply, 550);
	assert_string_equal(out.status, "5.1.1");
	result_clear(&out);
	for (int i = 0; i < 3; i++)
		result_clear(&r[i].res);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_bad_commands),
		cmocka_unit_test(test_sync_refusals),
		cmocka_unit_test(test_sync_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
