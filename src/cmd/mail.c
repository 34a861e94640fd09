/*
 * mail: the drop-in legacy mail command for sending
 * (`mail [-s subject] [-c cc] [-b bcc] rcpt...`, body on stdin; see
 * docs/LOCAL-SUBMISSION.md). Owns only its command line; localsub.c builds
 * the message and writes it into BASE/Submitted/. Promises sysexits.h exit
 * codes and one "mail: ..." line on every failure; never reads mailboxes.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "localsub.h"
#include "strv.h"

/* Print the usage line and give EX_USAGE. */
static int
usage(const char *why, const char *what)
{
	fprintf(stderr, "mail: %s%s\n"
		"usage: mail [-s subject] [-c cc-addr] [-b bcc-addr] [--] "
		"rcpt ...\n", why, what);
	return EX_USAGE;
}

/* Parse the command line and send. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "base", required_argument, NULL, 1 },
		{ NULL, 0, NULL, 0 },
	};
	struct localsub ls;
	struct localsub_err err = LOCALSUB_ERR_INIT;
	struct localsub_mail o;
	char opt[3];
	int c, r = 0, ex = EX_OK;

	memset(&o, 0, sizeof(o));
	if (localsub_init(&ls, "mail", &err) < 0) {
		ex = localsub_report(&ls, &err);
		goto out;
	}
	opterr = 0;
	while (ex == EX_OK && r == 0 &&
	    (c = getopt_long(argc, argv, ":s:c:b:", longopts, NULL)) != -1) {
		switch (c) {
		case 1:
			if (localsub_set_base(&ls, optarg, &err) < 0)
				ex = localsub_report(&ls, &err);
			break;
		case 's':
			o.subject = optarg;
			break;
		case 'c':
			r = strv_push(&o.cc, optarg);
			break;
		case 'b':
			r = strv_push(&o.bcc, optarg);
			break;
		default:	/* ':' or '?' */
			ex = usage(c == ':' ? "missing argument for option " :
				"unknown option ", localsub_bad_option(opt, argv));
			break;
		}
	}
	for (; ex == EX_OK && r == 0 && optind < argc; optind++)
		r = strv_push(&o.to, argv[optind]);
	if (r < 0) {
		localsub_fail(&err, EX_OSERR, r, "out of memory");
		ex = localsub_report(&ls, &err);
	}
	if (ex != EX_OK)
		goto out;
	if (localsub_mail(&ls, &o, STDIN_FILENO, &err) < 0)
		ex = localsub_report(&ls, &err);
out:
	localsub_mail_free(&o);
	localsub_err_free(&err);
	localsub_free(&ls);
	return ex;
}
