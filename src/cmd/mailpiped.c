/*
 * mailpiped: the mailpipe server. Parses the command line and hands over
 * to server_main (src/server.c); nothing else lives here.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "mp_build.h"
#include "server.h"

/* Print the usage line. */
static void
usage(FILE *f)
{
	fputs("usage: mailpiped --base DIR [--config FILE] [--log-level LEVEL] "
		"[--check-config]\n", f);
}

/* Parse options and run the server. */
int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "base", required_argument, NULL, 'b' },
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct server_opts o = { NULL, NULL, NULL, false };
	int c;

	while ((c = getopt_long(argc, argv, "b:c:l:khV", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			o.base_dir = optarg;
			break;
		case 'c':
			o.config = optarg;
			break;
		case 'l':
			o.log_level = optarg;
			break;
		case 'k':
			o.check_config = true;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		case 'V':
			printf("mailpiped %s\n", MAILPIPE_VERSION);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mailpiped: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	if (o.base_dir == NULL)
		o.base_dir = getenv("MAILPIPE_BASE") ? getenv("MAILPIPE_BASE") :
			MAILPIPE_DEFAULT_BASE;
	return server_main(&o);
}
