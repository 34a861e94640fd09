/*
 * mailpipe: the admin command. Parses the command line and calls the
 * modules; `route ADDRESS` works from the config and router files alone
 * (no server needed) and prints the routing decision and the exact program
 * invocation.
 */
#include <getopt.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "mp_build.h"
#include "routeinfo.h"

/* Print the usage text. */
static void
usage(FILE *f)
{
	fputs("usage: mailpipe [--base DIR] [--config FILE] [--json] COMMAND\n"
		"commands:\n"
		"  route [--sender ADDR] [--smtp] [--] ADDRESS\n"
		"      how ADDRESS is routed and, for pipe targets, the exact\n"
		"      program, argv and environment names (no server needed);\n"
		"      --smtp shows it as mail received over SMTP\n"
		"exit status: 0 deliverable, 67 the route fails, 64 usage,\n"
		"78 configuration error\n", f);
}

/* Is a route kind a failure? */
static bool
route_fails(enum route_kind k)
{
	return k == ROUTE_ERROR || k == ROUTE_UNKNOWN || k == ROUTE_NO_RELAY ||
		k == ROUTE_REFUSED;
}

/* mailpipe route ADDRESS. */
static int
cmd_route(const char *base, const char *config, bool json, int argc,
	char **argv)
{
	static const struct option opts[] = {
		{ "sender", required_argument, NULL, 's' },
		{ "smtp", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cfg;
	struct router_table t = ROUTER_TABLE_INIT;
	struct transport_table tt = TRANSPORT_TABLE_INIT;
	struct routeinfo ri = ROUTEINFO_INIT;
	const char *sender = NULL;
	char *host = NULL, *err = NULL, *abase = NULL;
	bool local = true;
	int c, r, code;

	optind = 0;	/* glibc: 0 re-initialises (permute again) */
	while ((c = getopt_long(argc, argv, "s:nj", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sender = optarg;
			break;
		case 'n':
			local = false;
			break;
		case 'j':
			json = true;
			break;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs("mailpipe: route needs exactly one ADDRESS\n", stderr);
		return EX_USAGE;
	}
	memset(&cfg, 0, sizeof(cfg));
	if (routeinfo_hostname(&host) < 0)
		return EX_OSERR;
	/* the server works from the absolute base: show the same paths */
	if ((abase = realpath(base, NULL)) != NULL)
		base = abase;
	r = routeinfo_load(base, config, host, &cfg, &t, &tt, &err);
	if (r < 0) {
		fprintf(stderr, "mailpipe: %s\n", err ? err : strerror(-r));
		code = EX_CONFIG;
	} else if (routeinfo_explain(&cfg, &t, &tt, argv[optind], local,
	    sender, &ri) < 0) {
		fputs("mailpipe: out of memory\n", stderr);
		code = EX_OSERR;
	} else {
		routeinfo_print(&ri, argv[optind], json, stdout);
		code = route_fails(ri.route.kind) ||
			((ri.route.kind == ROUTE_PIPE || ri.transport) &&
			!ri.has_argv) ?
			EX_NOUSER : EX_OK;
	}
	routeinfo_free(&ri);
	router_table_free(&t);
	transport_table_free(&tt);
	config_free(&cfg);
	free(err);
	free(host);
	free(abase);
	return code;
}

/* Parse global options and dispatch the command. */
int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "base", required_argument, NULL, 'b' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *base = getenv("MAILPIPE_BASE"), *config = NULL;
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "+b:c:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			base = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		case 'V':
			printf("mailpipe %s\n", MAILPIPE_VERSION);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (base == NULL || base[0] == '\0')
		base = MAILPIPE_DEFAULT_BASE;
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	g_mime_init();
	if (strcmp(argv[optind], "route") == 0)
		return cmd_route(base, config, json, argc - optind,
			argv + optind);
	if (strcmp(argv[optind], "status") == 0 ||
	    strcmp(argv[optind], "queue") == 0 ||
	    strcmp(argv[optind], "message") == 0 ||
	    strcmp(argv[optind], "release") == 0 ||
	    strcmp(argv[optind], "reject") == 0) {
		fprintf(stderr, "mailpipe: '%s' needs the control socket, which "
			"this version does not have yet; use `sendmail -bp` to "
			"list the queue\n", argv[optind]);
		return EX_UNAVAILABLE;
	}
	fprintf(stderr, "mailpipe: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return EX_USAGE;
}
