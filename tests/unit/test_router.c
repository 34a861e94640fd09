/*
 * Unit tests for router.c: the router file syntax and its errors, pattern
 * matching, every target kind, the decision order and every failure reply,
 * and the substitution safety rules (text from a sender never becomes a
 * tag, a queue, an option or a second argument).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "router.h"
#include "strv.h"

static const char table_text[] =
	"# mailpipe router table\n"					/* 1 */
	"\n"								/* 2 */
	"<*@somedomain> = exec*@pipe\n"					/* 3 */
	"<*@lists.example> = \"execall\\ -u\\ *\"@pipe   # list manager\n"	/* 4 */
	"<incoming> = \"queue[PROC1] procin -mark\"@pipe\n"		/* 5 */
	"<control>  = \"queue[PROC1] procin1 -control\"@pipe\r\n"	/* 6 */
	"  # indented comment\n"					/* 7 */
	"<first@order.example> = null\n"				/* 8 */
	"<first@order.example> = error\n"				/* 9 */
	"<*@order.example> = error: no such list # why\n"		/* 10 */
	"<a@chain.example> = b@chain.example\n"				/* 11 */
	"<b@chain.example> = c@far.example\n"				/* 12 */
	"<loop1@chain.example> = loop2@chain.example\n"			/* 13 */
	"<loop2@chain.example> = loop1@chain.example\n"			/* 14 */
	"<*@old.example> = *@new.example\n"				/* 15 */
	"<*@new.example> = \"deliver *\"@pipe\n"			/* 16 */
	"<*@t.example> = \"* -x\"@pipe\n"				/* 17 */
	"<listmgr*@x.example> = listmgr\\ -u\\ *@pipe\n"		/* 18 */
	"<info@*.example> = \"[RCPT] info *\"@pipe\n"			/* 19 */
	"<fwd@*.dyn.example> = x@*\n"					/* 20 */
	"<*@w.example> = joe@*.net\n"					/* 21 */
	"<*@n.example> = null\n"					/* 22 */
	"<\"joe smith\"@q.example> = \"app #1 \\\\# x\"@pipe\n"		/* 23 */
	"<postmaster> = root\n"						/* 24 */
	"<root@local2.example> = error:\n"				/* 25 */
	"<*@s.example> = \"[FILE] [STDERR] rec \\\\\\ a\\\\* *\"@PIPE\n"	/* 26 */
	"<joe*@star.example> = null\n"					/* 27 */
	"<u@tr.example> = v@sync.example\n"				/* 28 */
	"<*@grow.example> = **@grow.example\n";				/* 29 */

struct fixture {
	struct router_table table;
	struct strv local;
	struct strv tdomains;
	const char *tnames[2];
	struct router_ctx ctx;
};

/* Parse the table and set up a context with two local domains. */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *err = NULL;

	if (f == NULL)
		return -1;
	if (router_table_parse(table_text, strlen(table_text), "router",
	    &f->table, &err) != 0) {
		print_error("table: %s\n", err ? err : "?");
		free(err);
		free(f);
		return -1;
	}
	strv_push(&f->local, "local1.example");
	strv_push(&f->local, "local2.example");
	strv_push(&f->tdomains, "sync.example");
	f->tnames[0] = "synctr";
	f->tnames[1] = NULL;
	f->ctx.table = &f->table;
	f->ctx.local_domains = &f->local;
	f->ctx.transport_domains = &f->tdomains;
	f->ctx.transport_names = f->tnames;
	f->ctx.default_domain = "local1.example";
	f->ctx.direct_pipe_allowed = false;
	f->ctx.relay_configured = true;
	*state = f;
	return 0;
}

/* Free the fixture. */
static int
teardown(void **state)
{
	struct fixture *f = *state;

	router_table_free(&f->table);
	strv_free(&f->local);
	strv_free(&f->tdomains);
	free(f);
	return 0;
}

/* Route address with f's context; asserts success and the kind. */
static void
route(struct fixture *f, const char *address, enum route_kind kind,
	struct route *r)
{
	assert_int_equal(router_route(&f->ctx, address, r), 0);
	if (r->kind != kind)
		fail_msg("%s: %s (%s), wanted %s", address,
			route_kind_name(r->kind), r->text ? r->text : "",
			route_kind_name(kind));
}

/* r is a failure with reply, status and text. */
static void
assert_failure(const struct route *r, int reply, const char *status,
	const char *text)
{
	assert_int_equal(r->reply, reply);
	assert_string_equal(r->status, status);
	assert_non_null(r->text);
	assert_string_equal(r->text, text);
}

/* r->pipe has app and exactly the params (NULL-terminated). */
static void
assert_pipe(const struct route *r, const char *app, const char *const *params)
{
	struct address a = ADDRESS_INIT;
	struct pipe_cmd c = PIPE_CMD_INIT;
	size_t n = 0;

	assert_int_equal(r->kind, ROUTE_PIPE);
	assert_string_equal(r->pipe.app, app);
	while (params[n])
		n++;
	assert_int_equal(r->pipe.params.n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(r->pipe.params.v[i], params[i]);
	/* r->address is the canonical pipe address of the same command */
	assert_int_equal(address_parse(r->address, strlen(r->address), 0, &a,
		NULL), 0);
	assert_string_equal(a.domain, "pipe");
	assert_int_equal(pipe_cmd_parse(a.local, strlen(a.local), &c, NULL), 0);
	assert_string_equal(c.app, r->pipe.app);
	assert_int_equal(c.tags, r->pipe.tags);
	assert_int_equal(c.params.n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(c.params.v[i], params[i]);
	if (r->pipe.queue)
		assert_string_equal(c.queue, r->pipe.queue);
	else
		assert_null(c.queue);
	pipe_cmd_free(&c);
	address_free(&a);
}

#define P(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

/* Seed: <*@somedomain> = exec*@pipe gives the application execjoe. */
static void
test_seed_exec(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "joe@somedomain", ROUTE_PIPE, &r);
	assert_pipe(&r, "execjoe", NONE);
	assert_string_equal(r.address, "execjoe@pipe");
	assert_int_equal(r.pipe.tags, 0);
	assert_null(r.pipe.queue);
	assert_int_equal(r.rule_line, 3);
	assert_int_equal(r.hops, 0);
	route_free(&r);
	assert_null(r.address);
	/* matching ignores case; substitution keeps it */
	route(f, "JoE@SomeDomain", ROUTE_PIPE, &r);
	assert_pipe(&r, "execJoE", NONE);
	route_free(&r);
}

/* Seed: "execall\ -u\ *"@pipe gives execall -u joe. */
static void
test_seed_execall(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "joe@lists.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "execall", P("-u", "joe"));
	assert_string_equal(r.address, "\"execall -u joe\"@pipe");
	assert_int_equal(r.rule_line, 4);
	route_free(&r);
	/* the unquoted-target form is the same template */
	route(f, "listmgrfoo@x.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "listmgr", P("-u", "foo"));
	assert_int_equal(r.rule_line, 18);
	route_free(&r);
}

/* Seed: <incoming> matches incoming in every local domain only. */
static void
test_seed_queue(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "incoming@local1.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "procin", P("-mark"));
	assert_string_equal(r.pipe.queue, "PROC1");
	assert_string_equal(r.address, "\"queue[PROC1] procin -mark\"@pipe");
	assert_int_equal(r.rule_line, 5);
	route_free(&r);
	route(f, "Incoming@LOCAL2.example", ROUTE_PIPE, &r);
	assert_string_equal(r.pipe.queue, "PROC1");
	route_free(&r);
	/* unqualified: the default domain is local */
	route(f, "incoming", ROUTE_PIPE, &r);
	assert_string_equal(r.pipe.app, "procin");
	route_free(&r);
	/* a CRLF line */
	route(f, "control@local1.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "procin1", P("-control"));
	assert_string_equal(r.pipe.queue, "PROC1");
	assert_int_equal(r.rule_line, 6);
	route_free(&r);
	/* not in another domain */
	route(f, "incoming@other.example", ROUTE_RELAY, &r);
	assert_int_equal(r.rule_line, 0);
	assert_string_equal(r.address, "incoming@other.example");
	route_free(&r);
}

/* First match wins; later records for the same address are not used. */
static void
test_first_match(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "first@order.example", ROUTE_NULL, &r);
	assert_int_equal(r.rule_line, 8);
	assert_string_equal(r.address, "first@order.example");
	route_free(&r);
	route(f, "second@order.example", ROUTE_ERROR, &r);
	assert_failure(&r, 550, "5.1.1", "no such list");
	assert_int_equal(r.rule_line, 10);
	route_free(&r);
}

/* null and error targets. */
static void
test_null_error(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "anything@n.example", ROUTE_NULL, &r);
	assert_int_equal(r.rule_line, 22);
	assert_null(r.text);
	route_free(&r);
	/* text not used by the target is not checked */
	route(f, "-x@n.example", ROUTE_NULL, &r);
	route_free(&r);
	/* "error:" with no text uses the default */
	route(f, "root@local2.example", ROUTE_ERROR, &r);
	assert_failure(&r, 550, "5.1.1", "address rejected");
	route_free(&r);
}

/* Quoted spaces in the sender's local part stay in one argument. */
static void
test_quoted_spaces(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "\"joe smith\"@lists.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "execall", P("-u", "joe smith"));
	route_free(&r);
	route(f, "\"joe smith -rf\"@somedomain", ROUTE_PIPE, &r);
	assert_pipe(&r, "execjoe smith -rf", NONE);
	route_free(&r);
	route(f, "\"a\\\\ b\\\"c\"@lists.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "execall", P("-u", "a\\ b\"c"));
	route_free(&r);
	route(f, "\"a*b\"@lists.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "execall", P("-u", "a*b"));
	route_free(&r);
}

/* Text beginning with '-' is refused with a clear reason. */
static void
test_leading_dash(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "-rf@lists.example", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.1.3",
		"text substituted for '*' begins with '-'");
	assert_int_equal(r.rule_line, 4);
	route_free(&r);
	route(f, "\"-u joe\"@somedomain", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.1.3",
		"text substituted for '*' begins with '-'");
	route_free(&r);
	/* also for address targets */
	route(f, "-joe@old.example", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.1.3",
		"text substituted for '*' begins with '-'");
	assert_int_equal(r.hops, 0);
	route_free(&r);
	/* text from the domain */
	route(f, "info@-x.example", ROUTE_REFUSED, &r);
	assert_failure(&r, 553, "5.1.3",
		"bad address: domain label begins with '-'");
	route_free(&r);
}

/* Control characters never get through. */
static void
test_controls(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "\"joe\\\nx\"@lists.example", ROUTE_REFUSED, &r);
	assert_failure(&r, 553, "5.1.3",
		"bad address: control character in address");
	route_free(&r);
	route(f, "jo\te@somedomain", ROUTE_REFUSED, &r);
	assert_int_equal(r.reply, 553);
	route_free(&r);
	route(f, "joe@somedomain\r", ROUTE_REFUSED, &r);
	assert_int_equal(r.reply, 553);
	route_free(&r);
}

/* Text that looks like a tag, queue, shell or option stays one literal. */
static void
test_injection(void **state)
{
	static const char *const evil[] = {
		"[FILE]", "queue[x]", ";rm -rf /", "$(id)", "`id`",
		"[RCPT] app", "queue[x] [FILE] y", "a\\", "*", "a;b|c&d>e<f",
	};
	struct fixture *f = *state;
	struct route r;

	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		char *addr = NULL;

		assert_int_equal(address_join(evil[i], "lists.example", &addr),
			0);
		route(f, addr, ROUTE_PIPE, &r);
		assert_pipe(&r, "execall", P("-u", evil[i]));
		assert_int_equal(r.pipe.tags, 0);
		assert_null(r.pipe.queue);
		route_free(&r);
		free(addr);
		/* as the application word: the whole text is the name */
		assert_int_equal(address_join(evil[i], "t.example", &addr), 0);
		assert_int_equal(router_route(&f->ctx, addr, &r), 0);
		if (strchr(evil[i], '/') || strchr(evil[i], '\\')) {
			assert_int_equal(r.kind, ROUTE_REFUSED);
			assert_int_equal(r.reply, 550);
		} else {
			assert_pipe(&r, evil[i], P("-x"));
			assert_int_equal(r.pipe.tags, 0);
			assert_null(r.pipe.queue);
		}
		route_free(&r);
		free(addr);
	}
	/* a backquote is atext: no quoting needed */
	route(f, "`id`@lists.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "execall", P("-u", "`id`"));
	route_free(&r);
}

/* The expanded application name must pass the application rules. */
static void
test_bad_app_after_expansion(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "\"../x\"@somedomain", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.1.3",
		"bad pipe address: application name holds '/'");
	route_free(&r);
	route(f, "\".hidden\"@t.example", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.1.3",
		"bad pipe address: application name begins with '.'");
	route_free(&r);
}

/* Address targets are routed again; the chain is counted. */
static void
test_rewrite_chain(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "a@chain.example", ROUTE_RELAY, &r);
	assert_int_equal(r.hops, 2);
	assert_int_equal(r.rule_line, 12);
	assert_string_equal(r.address, "c@far.example");
	route_free(&r);
	route(f, "\"joe smith\"@old.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "deliver", P("joe smith"));
	assert_int_equal(r.hops, 1);
	assert_int_equal(r.rule_line, 16);
	route_free(&r);
	/* unqualified target gets the default domain, then a local rule */
	route(f, "postmaster@local2.example", ROUTE_UNKNOWN, &r);
	assert_string_equal(r.address, "root@local1.example");
	assert_int_equal(r.hops, 1);
	assert_int_equal(r.rule_line, 24);
	route_free(&r);
	/* a rewrite into a transport domain */
	route(f, "u@tr.example", ROUTE_TRANSPORT, &r);
	assert_string_equal(r.transport, "synctr");
	assert_string_equal(r.address, "v@sync.example");
	route_free(&r);
}

/* A loop stops after ROUTER_MAX_REWRITES rewrites. */
static void
test_loop(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "loop1@chain.example", ROUTE_REFUSED, &r);
	assert_failure(&r, 554, "5.4.6", "routing loop");
	assert_int_equal(r.hops, ROUTER_MAX_REWRITES);
	assert_int_equal(r.rule_line, 13);
	assert_string_equal(r.address, "loop1@chain.example");
	route_free(&r);
}

/* Rewrites that give a bad address or reach the pipe domain fail. */
static void
test_bad_rewrite(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "\"a..b\"@w.example", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.1.3",
		"rewritten address is not valid: empty label in domain");
	route_free(&r);
	route(f, "a.b@w.example", ROUTE_RELAY, &r);
	assert_string_equal(r.address, "joe@a.b.net");
	route_free(&r);
	/* an address that doubles on every rewrite stops at the length cap */
	route(f, "ab@grow.example", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.1.3", "rewritten address is too long");
	assert_int_equal(r.hops, 8);
	assert_int_equal(r.rule_line, 29);
	route_free(&r);
	f->ctx.direct_pipe_allowed = true;
	route(f, "fwd@pipe.dyn.example", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.7.1",
		"a rewritten address may not reach the pipe domain");
	route_free(&r);
	f->ctx.direct_pipe_allowed = false;
}

/* A '*' in the domain pattern; '*' matches at least one character. */
static void
test_domain_star(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "info@sales.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "info", P("sales"));
	assert_int_equal(r.pipe.tags, PIPE_TAG_RCPT);
	route_free(&r);
	route(f, "joex@star.example", ROUTE_NULL, &r);
	route_free(&r);
	route(f, "joe@star.example", ROUTE_RELAY, &r);
	route_free(&r);
}

/* Quoted patterns, '#' inside targets, escapes in pipe targets. */
static void
test_quoting_levels(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "\"Joe Smith\"@q.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "app", P("#1", "#", "x"));
	route_free(&r);
	route(f, "z@s.example", ROUTE_PIPE, &r);
	assert_pipe(&r, "rec", P(" a*", "z"));
	assert_int_equal(r.pipe.tags, PIPE_TAG_FILE | PIPE_TAG_STDERR);
	route_free(&r);
}

/* Transport domains come before the pipe and local domains. */
static void
test_transport(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "anyone@Sync.Example", ROUTE_TRANSPORT, &r);
	assert_string_equal(r.transport, "synctr");
	assert_null(r.text);
	route_free(&r);
	f->ctx.transport_names = NULL;
	route(f, "anyone@sync.example", ROUTE_TRANSPORT, &r);
	assert_null(r.transport);
	route_free(&r);
	f->ctx.transport_names = f->tnames;
	f->ctx.transport_domains = NULL;
	route(f, "anyone@sync.example", ROUTE_RELAY, &r);
	route_free(&r);
	f->ctx.transport_domains = &f->tdomains;
}

/* Direct pipe addresses: only when allowed, and parsed strictly. */
static void
test_direct_pipe(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "\"[FILE] app x\"@pipe", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.7.1",
		"direct pipe addresses are not accepted from this source");
	route_free(&r);
	f->ctx.direct_pipe_allowed = true;
	route(f, "\"[FILE] app x\\\\ y\"@PIPE", ROUTE_PIPE, &r);
	assert_pipe(&r, "app", P("x y"));
	assert_int_equal(r.pipe.tags, PIPE_TAG_FILE);
	assert_string_equal(r.address, "\"[FILE] app x\\\\ y\"@pipe");
	assert_int_equal(r.rule_line, 0);
	route_free(&r);
	route(f, "\"[BAD] app\"@pipe", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.1.3", "bad pipe address: unknown tag");
	route_free(&r);
	route(f, "-x@pipe", ROUTE_REFUSED, &r);
	assert_failure(&r, 550, "5.1.3",
		"bad pipe address: application name begins with '-'");
	route_free(&r);
	f->ctx.direct_pipe_allowed = false;
}

/* Local domains without a record: unknown user; others: relay or not. */
static void
test_unknown_relay(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "nobody@local1.example", ROUTE_UNKNOWN, &r);
	assert_failure(&r, 550, "5.1.1", "unknown user");
	route_free(&r);
	route(f, "nobody@elsewhere.example", ROUTE_RELAY, &r);
	assert_int_equal(r.reply, 0);
	assert_null(r.text);
	route_free(&r);
	f->ctx.relay_configured = false;
	route(f, "nobody@elsewhere.example", ROUTE_NO_RELAY, &r);
	assert_failure(&r, 554, "5.4.4", "no relay host for non-local domain");
	route_free(&r);
	f->ctx.relay_configured = true;
}

/* Addresses that do not parse, and unqualified ones without a default. */
static void
test_bad_address(void **state)
{
	struct fixture *f = *state;
	struct route r;

	route(f, "joe@", ROUTE_REFUSED, &r);
	assert_failure(&r, 553, "5.1.3", "bad address: empty domain");
	assert_string_equal(r.address, "joe@");
	route_free(&r);
	route(f, "", ROUTE_REFUSED, &r);
	assert_failure(&r, 553, "5.1.3", "bad address: empty address");
	route_free(&r);
	f->ctx.default_domain = NULL;
	route(f, "incoming", ROUTE_REFUSED, &r);
	assert_failure(&r, 553, "5.1.3", "bad address: no domain");
	route_free(&r);
	f->ctx.default_domain = "local1.example";
}

/* An empty or missing table routes by domain alone. */
static void
test_no_table(void **state)
{
	struct fixture *f = *state;
	struct router_table empty = ROUTER_TABLE_INIT;
	struct route r;

	f->ctx.table = NULL;
	route(f, "joe@somedomain", ROUTE_RELAY, &r);
	route_free(&r);
	f->ctx.table = &empty;
	route(f, "incoming@local1.example", ROUTE_UNKNOWN, &r);
	route_free(&r);
	f->ctx.table = &f->table;
}

/* The parsed table keeps what the postmaster wrote. */
static void
test_table_contents(void **state)
{
	struct fixture *f = *state;
	const struct router_rule *u = f->table.v;

	(void)state;
	assert_int_equal(f->table.n, 26);
	assert_int_equal(u[0].line, 3);
	assert_string_equal(u[0].pattern, "*@somedomain");
	assert_string_equal(u[0].pat_local, "*");
	assert_string_equal(u[0].pat_domain, "somedomain");
	assert_int_equal(u[0].kind, TARGET_PIPE);
	assert_string_equal(u[0].target, "exec*@pipe");
	assert_true(u[0].pipe.has_star);
	assert_string_equal(u[1].target, "\"execall\\ -u\\ *\"@pipe");
	assert_int_equal(u[1].pipe.nwords, 3);
	assert_null(u[2].pat_domain);
	assert_string_equal(u[2].pat_local, "incoming");
	assert_int_equal(u[4].kind, TARGET_NULL);
	assert_int_equal(u[5].kind, TARGET_ERROR);
	assert_null(u[5].error_text);
	assert_string_equal(u[6].error_text, "no such list");
	assert_int_equal(u[7].kind, TARGET_ADDRESS);
	assert_string_equal(u[7].addr_tmpl, "b@chain.example");
	assert_string_equal(u[11].addr_tmpl, "*@new.example");
	assert_string_equal(u[19].pat_local, "joe smith");
	assert_string_equal(u[20].addr_tmpl, "root");
	assert_int_equal(u[22].kind, TARGET_PIPE);
}

/* table text must fail with exactly "router:LINE: message". */
static void
check_table_error(const char *text, size_t len, const char *filename,
	const char *want)
{
	struct router_table t = ROUTER_TABLE_INIT;
	char *err = NULL;

	if (router_table_parse(text, len, filename, &t, &err) != -EINVAL)
		fail_msg("accepted: %s", text);
	assert_non_null(err);
	assert_string_equal(err, want);
	assert_null(t.v);
	assert_int_equal(t.n, 0);
	free(err);
}

#define TERR(text, want) \
	check_table_error(text, sizeof(text) - 1, "r", want)

/* Every parse error names the file and line. */
static void
test_table_errors(void **state)
{
	(void)state;
	TERR("joe = x@y", "r:1: a record begins with '<'");
	TERR("# c\n\n<joe = x", "r:3: missing '>' after the pattern");
	TERR("<\"a>b@x> = null", "r:1: missing '>' after the pattern");
	TERR("<> = null", "r:1: empty pattern");
	TERR("<*@*> = null", "r:1: more than one '*' in the pattern");
	TERR("<a**> = null", "r:1: more than one '*' in the pattern");
	TERR("<joe> x@y", "r:1: expected '=' after the pattern");
	TERR("<joe>", "r:1: expected '=' after the pattern");
	TERR("<joe> = ", "r:1: missing target");
	TERR("<joe> = # comment", "r:1: missing target");
	TERR("<a\"b\"@x> = null", "r:1: bad pattern: misplaced quote");
	TERR("<@x> = null", "r:1: bad pattern: empty local part");
	TERR("<a@> = null", "r:1: bad pattern: empty domain");
	TERR("<a b@x> = null",
		"r:1: bad pattern: white space in an address (write \"\\ \")");
	TERR("<joe> = *@x",
		"r:1: bad target address: the target uses '*' but the "
		"pattern has none");
	TERR("<joe> = \"app *\"@pipe",
		"r:1: bad pipe target: the target uses '*' but the "
		"pattern has none");
	TERR("<*> = \"[BAD] app\"@pipe", "r:1: bad pipe target: unknown tag");
	TERR("<*> = \"queue[*] app\"@pipe",
		"r:1: bad pipe target: '*' in a queue name");
	TERR("<*> = \"../x\"@pipe",
		"r:1: bad pipe target: application name begins with '.'");
	TERR("<*> = \"a\\\\\"@pipe",
		"r:1: bad pipe target: trailing backslash");
	TERR("<*> = \"app\"x@pipe",
		"r:1: bad target: text after the quoted local part");
	TERR("<*> = \"app@pipe", "r:1: bad target: unbalanced quotes");
	TERR("<*> = joe@-x", "r:1: bad target address: domain label "
		"begins with '-'");
	TERR("<*> = joe@x..y", "r:1: bad target address: empty label in "
		"domain");
	TERR("<*> = joe smith@x",
		"r:1: bad target: white space in an address (write \"\\ \")");
	TERR("<*> = a\\", "r:1: bad target: trailing backslash");
	TERR("<*> = a@b c", "r:1: bad target: bad character in domain");
	TERR("<*> = a@*..x", "r:1: bad target address: empty label in "
		"domain");
	TERR("<*> = a@[*]", "r:1: bad target address: bad IPv4 address "
		"literal");
	TERR("<*> = a@", "r:1: bad target: empty domain");
	TERR("<a> = null\n<b> = null\x01", "r:2: control character");
	TERR("<a> = null\n<b>\r = null", "r:2: control character");
	TERR("<a> = null\n\n<b> = nu\0ll", "r:3: NUL byte");
	check_table_error("<x>", 3, NULL,
		"router:1: expected '=' after the pattern");
}

/* Syntax that is accepted: comments, CRLF, no spaces, keywords. */
static void
test_table_syntax(void **state)
{
	static const char text[] =
		"<a>=null\r\n"
		"\t<b@x> \t=\t error:  custom  text  # comment\r\n"
		"<c> = NULL\n"
		"<d> = Error\n"
		"<e> = a#b@x\n"
		"<f> = \"x # y\"@z # real comment\n"
		"<g> = \"null\"\n"
		"<h> = error@x\n"
		"<i> = a\\ b@x\n"
		"# last line without newline";
	struct router_table t = ROUTER_TABLE_INIT;
	char *err = NULL;

	(void)state;
	assert_int_equal(router_table_parse(text, sizeof(text) - 1, "r", &t,
		&err), 0);
	assert_null(err);
	assert_int_equal(t.n, 9);
	assert_int_equal(t.v[0].kind, TARGET_NULL);
	assert_int_equal(t.v[1].kind, TARGET_ERROR);
	assert_string_equal(t.v[1].error_text, "custom  text");
	assert_string_equal(t.v[1].pattern, "b@x");
	assert_int_equal(t.v[1].line, 2);
	assert_int_equal(t.v[2].kind, TARGET_NULL);
	assert_int_equal(t.v[3].kind, TARGET_ERROR);
	assert_int_equal(t.v[4].kind, TARGET_ADDRESS);
	assert_string_equal(t.v[4].addr_tmpl, "a#b@x");
	assert_string_equal(t.v[5].target, "\"x # y\"@z");
	assert_string_equal(t.v[5].addr_tmpl, "\"x # y\"@z");
	assert_int_equal(t.v[6].kind, TARGET_ADDRESS);
	assert_string_equal(t.v[6].addr_tmpl, "null");
	assert_int_equal(t.v[7].kind, TARGET_ADDRESS);
	assert_string_equal(t.v[8].addr_tmpl, "\"a b\"@x");
	router_table_free(&t);
	assert_null(t.v);
	assert_int_equal(router_table_parse("", 0, "r", &t, &err), 0);
	assert_int_equal(t.n, 0);
	router_table_free(&t);
}

/* Every route kind has a name. */
static void
test_kind_names(void **state)
{
	(void)state;
	assert_string_equal(route_kind_name(ROUTE_PIPE), "PIPE");
	assert_string_equal(route_kind_name(ROUTE_TRANSPORT), "TRANSPORT");
	assert_string_equal(route_kind_name(ROUTE_RELAY), "RELAY");
	assert_string_equal(route_kind_name(ROUTE_NULL), "NULL");
	assert_string_equal(route_kind_name(ROUTE_ERROR), "ERROR");
	assert_string_equal(route_kind_name(ROUTE_UNKNOWN), "UNKNOWN");
	assert_string_equal(route_kind_name(ROUTE_NO_RELAY), "NO_RELAY");
	assert_string_equal(route_kind_name(ROUTE_REFUSED), "REFUSED");
	assert_string_equal(route_kind_name((enum route_kind)99), "?");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* Run every test of this file. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_seed_exec),
		T(test_seed_execall),
		T(test_seed_queue),
		T(test_first_match),
		T(test_null_error),
		T(test_quoted_spaces),
		T(test_leading_dash),
		T(test_controls),
		T(test_injection),
		T(test_bad_app_after_expansion),
		T(test_rewrite_chain),
		T(test_loop),
		T(test_bad_rewrite),
		T(test_domain_star),
		T(test_quoting_levels),
		T(test_transport),
		T(test_direct_pipe),
		T(test_unknown_relay),
		T(test_bad_address),
		T(test_no_table),
		T(test_table_contents),
		cmocka_unit_test(test_table_errors),
		cmocka_unit_test(test_table_syntax),
		cmocka_unit_test(test_kind_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
