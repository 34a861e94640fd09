/*
 * router: the routing table (SPEC "Routing") and the routing decision for
 * one address. The table is parsed from the seed's record syntax, one
 * record a line:   <pattern> = target      # comment
 * Patterns are in literal angle brackets and may hold one '*'. A pattern
 * without '@' matches that local part in every local domain. Targets:
 * an address (routed again), a pipe address "..."@pipe (a template: '*'
 * is replaced by the matched text, inside one argument), null, error
 * (optionally "error: text"). First match wins; matching is ASCII
 * case-insensitive, substitution keeps the original case.
 *
 * Text substituted for '*' that holds a control character or begins with
 * '-' makes the route ROUTE_REFUSED (a permanent failure with a clear
 * reason). Pure: no I/O, no globals.
 */
#ifndef MP_ROUTER_H
#define MP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "pipeaddr.h"
#include "strv.h"

enum router_target_kind {
	TARGET_ADDRESS,		/* rewrite to another address, route again */
	TARGET_PIPE,		/* "..."@pipe template */
	TARGET_NULL,		/* discard, report delivered */
	TARGET_ERROR,		/* reject with a report */
};

struct router_rule {
	unsigned line;		/* line in the router file */
	char *pattern;		/* as written, without brackets (for display) */
	char *pat_local;	/* local-part pattern */
	char *pat_domain;	/* domain pattern, NULL = every local domain */
	enum router_target_kind kind;
	char *target;		/* target text as written (for display) */
	char *addr_tmpl;	/* TARGET_ADDRESS: address text with '*' */
	struct pipe_tmpl pipe;	/* TARGET_PIPE */
	char *error_text;	/* TARGET_ERROR: custom text or NULL */
};

struct router_table {
	struct router_rule *v;
	size_t n;
};

#define ROUTER_TABLE_INIT { NULL, 0 }

/*
 * Parse router file text. -EINVAL with *err = "FILE:LINE: message"
 * (malloc'ed) on the first bad record: missing brackets, more than one
 * '*' in a pattern, bad target, bad pipe template, NUL byte.
 */
int router_table_parse(const char *text, size_t len, const char *filename,
	struct router_table *t, char **err);
void router_table_free(struct router_table *t);

/* What routing needs besides the table. */
struct router_ctx {
	const struct router_table *table;
	const struct strv *local_domains;	/* lower-cased */
	const struct strv *transport_domains;	/* lower-cased; may be NULL */
	const char *const *transport_names;	/* parallel to domains, or NULL */
	const char *default_domain;		/* for unqualified addresses */
	bool direct_pipe_allowed;	/* sender-written ...@pipe accepted */
	bool relay_configured;		/* non-local mail goes to the relay */
};

enum route_kind {
	ROUTE_PIPE,		/* deliver with the PIPE module: route.pipe */
	ROUTE_TRANSPORT,	/* a [transport NAME] domain: route.transport */
	ROUTE_RELAY,		/* non-local, to the SMTP relay */
	ROUTE_NULL,		/* discard; counts as delivered */
	ROUTE_ERROR,		/* router "error" record: fail */
	ROUTE_UNKNOWN,		/* local domain, no record: "unknown user" */
	ROUTE_NO_RELAY,		/* non-local and no relay configured: fail */
	ROUTE_REFUSED,		/* unsafe substitution, direct pipe not
				   allowed, routing loop, bad address: fail */
};

struct route {
	enum route_kind kind;
	char *address;		/* the routed address, canonical text */
	struct pipe_cmd pipe;	/* ROUTE_PIPE */
	char *transport;	/* ROUTE_TRANSPORT: transport name */
	int reply;		/* failing kinds: 550, 554, ... */
	char status[12];	/* failing kinds: "5.1.1", "5.7.1", ... */
	char *text;		/* failing kinds: human text */
	unsigned rule_line;	/* last router record used, 0 = none */
	unsigned hops;		/* address rewrites followed */
};

#define ROUTE_INIT \
	{ ROUTE_UNKNOWN, NULL, PIPE_CMD_INIT, NULL, 0, "", NULL, 0, 0 }

#define ROUTER_MAX_REWRITES 10

/*
 * Route one address (canonical text as in the envelope). Always fills r
 * (returns 0) unless memory runs out (-ENOMEM): failing decisions are
 * route kinds with reply/status/text set. Order: table records (first
 * match; address targets are routed again, at most ROUTER_MAX_REWRITES
 * times), then transport domains, then the "pipe" domain (direct pipe
 * address, when allowed), then local domains (ROUTE_UNKNOWN), then relay.
 */
int router_route(const struct router_ctx *ctx, const char *address,
	struct route *r);
void route_free(struct route *r);
/* "PIPE", "TRANSPORT", "RELAY", "NULL", "ERROR", ... */
const char *route_kind_name(enum route_kind k);

#endif
