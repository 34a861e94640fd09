/*
 * routeinfo: the configuration as a whole, for the server and the admin
 * command: load the config file and the router file together, build the
 * router context, check what --check-config checks beyond syntax
 * (application directory trust, transport commands), and explain how one
 * address is routed with the exact program invocation (mailpipe route).
 * Reads files; never delivers, never needs the server.
 */
#ifndef MP_ROUTEINFO_H
#define MP_ROUTEINFO_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "pipe.h"
#include "router.h"
#include "strv.h"
#include "transport.h"

/* The system's host name (gethostname), malloc'ed. */
int routeinfo_hostname(char **out);
/*
 * Load config (BASE/mailpipe.conf or config_path), the router file it
 * names (missing = empty table) and the transport table (tt may be NULL
 * when not wanted). -EINVAL with *err "FILE:LINE: ...".
 */
int routeinfo_load(const char *base_dir, const char *config_path,
	const char *hostname, struct config *c, struct router_table *t,
	struct transport_table *tt, char **err);
/*
 * Router context from c, t and tt (pointers into them; tt may be NULL):
 * transport domains route to their transports, non-local mail to the
 * relay when [smtp] relay-host is set.
 */
void routeinfo_ctx(const struct config *c, const struct router_table *t,
	const struct transport_table *tt, struct router_ctx *ctx);
/*
 * Warnings beyond syntax (errors are found by routeinfo_load): the
 * application directory and its programs writable by group, others or the
 * program user (prog_uid). Messages are appended to warn.
 */
void routeinfo_check(const struct config *c, uid_t prog_uid,
	struct strv *warn);

struct routeinfo {
	struct route route;
	const struct transport *transport;	/* ROUTE_TRANSPORT */
	bool has_argv;
	struct pipe_argv argv;
	const char *argv_why;	/* why no argv could be built */
};

#define ROUTEINFO_INIT { ROUTE_INIT, NULL, false, PIPE_ARGV_INIT, NULL }

/*
 * Route address as mail from a local submitter (local = true) or from the
 * network; sender (NULL = a placeholder) fills -p and SENDER.
 */
int routeinfo_explain(const struct config *c, const struct router_table *t,
	const struct transport_table *tt, const char *address, bool local,
	const char *sender, struct routeinfo *ri);
/* Print one "key: value" a line, or a JSON object when json. */
int routeinfo_print(const struct routeinfo *ri, const char *address,
	bool json, FILE *out);
void routeinfo_free(struct routeinfo *ri);

#endif
