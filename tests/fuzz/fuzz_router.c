/*
 * libFuzzer target for router.c. Input: a flags byte, an address line, then
 * router file text. Table errors must name file:line; routing must always
 * decide (failures carry a 5xx reply); a pipe route must be a valid command
 * whose canonical address parses back to it, keeping its template's tags,
 * queue and word count; a direct pipe route only when it is allowed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "router.h"
#include "strv.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two possibly-NULL strings are equal. */
static int
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Trap unless r is a well-formed pipe route. */
static void
check_pipe(const struct route *r, const struct router_table *t, bool direct)
{
	struct address a = ADDRESS_INIT;
	struct pipe_cmd c = PIPE_CMD_INIT;
	const struct router_rule *u = NULL;

	if (pipe_app_check(r->pipe.app, NULL) != 0)
		__builtin_trap();
	for (size_t i = 0; i < r->pipe.params.n; i++)
		if (text_str_has_ctl(r->pipe.params.v[i]))
			__builtin_trap();
	if (address_parse(r->address, strlen(r->address), 0, &a, NULL) != 0 ||
	    strcmp(a.domain, "pipe") != 0 ||
	    pipe_cmd_parse(a.local, strlen(a.local), &c, NULL) != 0)
		__builtin_trap();
	if (!same(c.app, r->pipe.app) || !same(c.queue, r->pipe.queue) ||
	    c.tags != r->pipe.tags || c.params.n != r->pipe.params.n)
		__builtin_trap();
	for (size_t i = 0; i < c.params.n; i++)
		if (strcmp(c.params.v[i], r->pipe.params.v[i]) != 0)
			__builtin_trap();
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].line == r->rule_line)
			u = &t->v[i];
	if (r->rule_line == 0) {
		if (!direct)
			__builtin_trap();
	} else {
		if (u == NULL || u->kind != TARGET_PIPE)
			__builtin_trap();
		if (r->pipe.tags != u->pipe.tags ||
		    !same(r->pipe.queue, u->pipe.queue) ||
		    r->pipe.params.n + 1 != u->pipe.nwords)
			__builtin_trap();
	}
	pipe_cmd_free(&c);
	address_free(&a);
}

/* One input: flags byte, address line, router table text. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct router_table t = ROUTER_TABLE_INIT;
	struct strv local = STRV_INIT, tdom = STRV_INIT;
	const char *tnames[] = { "tr", NULL };
	struct router_ctx ctx = { 0 };
	struct route r;
	const char *s, *nl;
	char *addr = NULL, *err = NULL;
	size_t len;
	int e;

	if (size < 1)
		return 0;
	s = (const char *)data + 1;
	len = size - 1;
	nl = memchr(s, '\n', len);
	if (nl == NULL)
		return 0;
	if ((addr = strndup(s, (size_t)(nl - s))) == NULL)
		return 0;
	e = router_table_parse(nl + 1, len - (size_t)(nl - s) - 1, "fz", &t,
		&err);
	if (e == -EINVAL && (err == NULL || strncmp(err, "fz:", 3) != 0))
		__builtin_trap();
	if (e != 0 && (t.v != NULL || t.n != 0))
		__builtin_trap();
	for (size_t i = 0; i < t.n; i++) {
		const char *p = t.v[i].pat_local, *d = t.v[i].pat_domain;
		size_t stars = 0;

		for (; *p; p++)
			stars += *p == '*';
		for (; d && *d; d++)
			stars += *d == '*';
		if (stars > 1 || t.v[i].line == 0)
			__builtin_trap();
	}
	if (strv_push(&local, "local.example") < 0 ||
	    strv_push(&local, "a") < 0 || strv_push(&tdom, "t.example") < 0)
		goto out;
	ctx.table = &t;
	ctx.local_domains = &local;
	ctx.transport_domains = &tdom;
	ctx.transport_names = tnames;
	ctx.default_domain = (data[0] & 4) ? NULL : "local.example";
	ctx.direct_pipe_allowed = data[0] & 1;
	ctx.relay_configured = data[0] & 2;
	if (router_route(&ctx, addr, &r) != 0)
		goto out;
	if (r.address == NULL || r.hops > ROUTER_MAX_REWRITES)
		__builtin_trap();
	switch (r.kind) {
	case ROUTE_PIPE:
		check_pipe(&r, &t, ctx.direct_pipe_allowed);
		break;
	case ROUTE_TRANSPORT:
		if (!same(r.transport, "tr"))
			__builtin_trap();
		break;
	case ROUTE_RELAY:
		if (!ctx.relay_configured)
			__builtin_trap();
		break;
	case ROUTE_NULL:
		break;
	case ROUTE_ERROR:
	case ROUTE_UNKNOWN:
	case ROUTE_NO_RELAY:
	case ROUTE_REFUSED:
		if (r.reply < 500 || r.reply > 599 || r.status[0] != '5' ||
		    r.text == NULL)
			__builtin_trap();
		break;
	default:
		__builtin_trap();
	}
	route_free(&r);
out:
	free(addr);
	free(err);
	router_table_free(&t);
	strv_free(&local);
	strv_free(&tdom);
	return 0;
}
