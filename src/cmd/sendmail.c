/*
 * sendmail: the drop-in legacy sendmail command (docs/LOCAL-SUBMISSION.md).
 * Owns only its command line: options are parsed here and everything else
 * is done by localsub.c, which writes the message into BASE/Submitted/.
 * Promises sysexits.h exit codes and one "sendmail: ..." line on every
 * failure; never talks to the server. Also answers as mailq and newaliases.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "localsub.h"
#include "strv.h"

enum sendmail_mode { MODE_DELIVER, MODE_LIST, MODE_NOOP };

/* Print the usage line and give EX_USAGE. */
static int
usage(const char *why, const char *what)
{
	fprintf(stderr, "sendmail: %s%s\n"
		"usage: sendmail [-t] [-i] [-f addr] [-F name] [-bm|-bp|-bi] "
		"[-o opt] [-v] [--] [rcpt ...]\n", why, what);
	return EX_USAGE;
}

/* The program name without its directory. */
static const char *
base_name(const char *argv0)
{
	const char *s = argv0 ? strrchr(argv0, '/') : NULL;

	return s ? s + 1 : argv0 ? argv0 : "sendmail";
}

/* Parse the command line and run the mode it asks for. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "base", required_argument, NULL, 1 },
		{ NULL, 0, NULL, 0 },
	};
	struct localsub ls;
	struct localsub_err err = LOCALSUB_ERR_INIT;
	struct localsub_sendmail o;
	enum sendmail_mode mode = MODE_DELIVER;
	char opt[3];
	int c, r, ex = EX_OK;

	memset(&o, 0, sizeof(o));
	if (localsub_init(&ls, "sendmail", &err) < 0) {
		ex = localsub_report(&ls, &err);
		goto out;
	}
	if (strcmp(base_name(argv[0]), "mailq") == 0)
		mode = MODE_LIST;
	else if (strcmp(base_name(argv[0]), "newaliases") == 0)
		mode = MODE_NOOP;

	opterr = 0;
	while (ex == EX_OK && (c = getopt_long(argc, argv,
	    ":tif:r:F:b:o:O:vB:N:R:V:L:X:h:e:mnUG", longopts, NULL)) != -1) {
		switch (c) {
		case 1:
			if (localsub_set_base(&ls, optarg, &err) < 0)
				ex = localsub_report(&ls, &err);
			break;
		case 't':
			o.rcpts_from_header = true;
			break;
		case 'i':
			o.ignore_dots = true;
			break;
		case 'f':
		case 'r':	/* old synonym of -f */
			o.from = optarg;
			break;
		case 'F':
			o.fullname = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "m") == 0)
				mode = MODE_DELIVER;
			else if (strcmp(optarg, "p") == 0)
				mode = MODE_LIST;
			else if (strcmp(optarg, "i") == 0)
				mode = MODE_NOOP;
			else
				ex = usage("unsupported mode -b", optarg);
			break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				o.ignore_dots = true;
			break;	/* -oem, -odb, -odi, ...: accepted, ignored */
		case 'v':
			o.verbose = true;
			break;
		case 'O': case 'B': case 'N': case 'R': case 'V': case 'L':
		case 'X': case 'h': case 'e': case 'm': case 'n': case 'U':
		case 'G':
			break;	/* accepted for compatibility, ignored */
		default:	/* ':' or '?' */
			ex = usage(c == ':' ? "missing argument for option " :
				"unknown option ", localsub_bad_option(opt, argv));
			break;
		}
	}
	if (ex != EX_OK)
		goto out;
	for (; optind < argc; optind++) {
		if (strv_push(&o.rcpts, argv[optind]) < 0) {
			localsub_fail(&err, EX_OSERR, -1, "out of memory");
			ex = localsub_report(&ls, &err);
			goto out;
		}
	}

	switch (mode) {
	case MODE_NOOP:
		break;	/* newaliases: mailpipe has no alias database */
	case MODE_LIST:
		r = localsub_queue_list(&ls, stdout, &err);
		if (r < 0)
			ex = localsub_report(&ls, &err);
		break;
	case MODE_DELIVER:
		r = localsub_sendmail(&ls, &o, STDIN_FILENO, &err);
		if (r < 0)
			ex = localsub_report(&ls, &err);
		break;
	}
out:
	localsub_sendmail_free(&o);
	localsub_err_free(&err);
	localsub_free(&ls);
	return ex;
}
