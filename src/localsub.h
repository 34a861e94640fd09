/*
 * localsub: local submission, what the `sendmail` and `mail` programs share.
 * They work without the server: the message is composed in memory, then
 * written as BASE/Submitted/NAME.tmp, fsynced, renamed to NAME.sub and the
 * rename made durable; the server's Submitted scanner does the rest (SPEC
 * "Submitted folder"). The header fields written into the .sub make the
 * server use exactly the envelope the command line asked for:
 * `Return-Path:` always, `Envelope-To:` whenever the recipients are not
 * simply the message's To/Cc/Bcc. Smuggled Return-Path:, Envelope-To: and
 * Envelope-Ignore: fields are always removed from the input.
 *
 * Privileges (SPEC Decisions "Local submitters who are not root"): the
 * programs may be installed setgid `mailpipe-submit`. localsub_init()
 * must be the first call of main(): it drops that group to the saved gid,
 * takes MAILPIPE_BASE and clears the whole environment. The group is held
 * again only while the .sub file is created, written, synced and renamed,
 * and dropped for good afterwards.
 *
 * Every function returns 0 or -errno; on failure *err says which sysexits
 * code the program exits with and gives one line of text. Nothing here
 * calls exit().
 */
#ifndef MP_LOCALSUB_H
#define MP_LOCALSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "buf.h"
#include "strv.h"

/* Largest input accepted on stdin (EX_DATAERR above it). */
#define LOCALSUB_MAX_INPUT ((size_t)1 << 30)

/* Why a call failed: the exit status and one line for stderr. */
struct localsub_err {
	int ex;			/* sysexits.h code; 0 while nothing failed */
	struct buf text;	/* one line, no program name, no newline */
};

#define LOCALSUB_ERR_INIT { 0, BUF_INIT }

/* One run of sendmail or mail. */
struct localsub {
	const char *prog;	/* "sendmail", "mail": prefix of messages */
	bool setgid;		/* started with egid != rgid */
	bool gmime;		/* g_mime_init() was called */
	gid_t rgid;		/* real gid */
	gid_t sgid;		/* the setgid group, kept as saved gid */
	char *base;		/* base directory, absolute */
	char *hostname;		/* [server] hostname, else the system's */
	char *domain;		/* what the server qualifies addresses with:
				   first [router] local-domains entry, else
				   hostname (system's name without config) */
	char *login;		/* passwd name of the real uid */
	char *fullname;		/* gecos name, or NULL */
	char *address;		/* login@hostname, canonical */
};

/* sendmail's delivery options, as parsed from the command line. */
struct localsub_sendmail {
	bool rcpts_from_header;	/* -t */
	bool ignore_dots;	/* -i, -oi: a lone "." does not end input */
	bool verbose;		/* -v: say which .sub was written */
	const char *from;	/* -f / -r: return-path ("" or "<>" = null) */
	const char *fullname;	/* -F: name for an added From: */
	struct strv rcpts;	/* recipient arguments, as given */
};

/* mail's options, as parsed from the command line. */
struct localsub_mail {
	const char *subject;	/* -s, or NULL */
	struct strv to;		/* recipient arguments (each may be a list) */
	struct strv cc;		/* -c values (each may be a list) */
	struct strv bcc;	/* -b values (each may be a list) */
};

/*
 * First call of main(). Opens /dev/null on closed fds 0-2, drops a setgid
 * group to the saved gid (setresgid), takes the base directory from
 * MAILPIPE_BASE (else MAILPIPE_DEFAULT_BASE) before clearing the whole
 * environment, sets umask 077 and initialises GMime. prog must outlive ls.
 */
int localsub_init(struct localsub *ls, const char *prog,
	struct localsub_err *err);
/* Use dir as the base directory (`--base DIR`; same trust as the variable). */
int localsub_set_base(struct localsub *ls, const char *dir,
	struct localsub_err *err);
/*
 * Look up who is submitting: passwd entry of the real uid (EX_NOUSER when
 * there is none) and the host name ([server] hostname read with
 * config_load() when BASE/mailpipe.conf is readable, else the system's
 * name, silently) and default domain. Called by the run functions;
 * idempotent.
 */
int localsub_identity(struct localsub *ls, struct localsub_err *err);

/*
 * Read all of fd into out (CRLF not yet converted). With dot_ends, a line
 * holding only "." (or ".\r") ends the input there and is dropped; the rest
 * of fd is left unread. More than LOCALSUB_MAX_INPUT bytes: EX_DATAERR.
 */
int localsub_read(int fd, bool dot_ends, struct buf *out,
	struct localsub_err *err);
/* Convert CRLF to LF in place and make non-empty text end with LF. */
int localsub_normalise(struct buf *b);

/*
 * Build the .sub text for sendmail from the normalised input in/len (pure
 * apart from GMime): drop Return-Path:, Envelope-To:, Envelope-Ignore:;
 * prepend Return-Path:, Envelope-To: (unless -t without arguments) and a
 * From: when the message has none. Input that does not start with a header
 * field is all body. A leading mbox "From " line is dropped.
 */
int localsub_sendmail_build(const struct localsub *ls,
	const struct localsub_sendmail *o, const char *in, size_t len,
	struct buf *out, struct localsub_err *err);
/* Build the .sub text for mail from the normalised body (pure, GMime). */
int localsub_mail_build(const struct localsub *ls,
	const struct localsub_mail *o, const char *body, size_t len,
	struct buf *out, struct localsub_err *err);

/*
 * Write data as BASE/Submitted/NAME.sub: NAME.tmp created O_EXCL 0600,
 * written, fsynced, renamed, then the directory fsynced (or, when it
 * cannot be opened for reading, the file system synced with syncfs()).
 * The setgid group is held only during this and dropped for good at the
 * end, success or not. On failure the .tmp (or the .sub, when the failure
 * came after the rename) is removed. *path (optional) gets the .sub path.
 * Termination signals stay blocked afterwards: the caller exits next.
 */
int localsub_write(struct localsub *ls, const char *data, size_t len,
	char **path, struct localsub_err *err);

/* sendmail: read stdin, build, write. */
int localsub_sendmail(struct localsub *ls, const struct localsub_sendmail *o,
	int in_fd, struct localsub_err *err);
/* mail: read the body from stdin (a lone "." ends it on a terminal), build,
   write. */
int localsub_mail(struct localsub *ls, const struct localsub_mail *o,
	int in_fd, struct localsub_err *err);

/*
 * sendmail -bp / mailq: list BASE/Queue/ and its subfolders (not corrupt/)
 * with store_list(), one block per message (ID, size, submit time,
 * return-path, pending recipients), Postfix mailq style; "Mail queue is
 * empty" when there is none. EX_NOPERM when Queue/ is not readable.
 */
int localsub_queue_list(struct localsub *ls, FILE *out,
	struct localsub_err *err);

/* Set *err and return r (a negative errno). */
int localsub_fail(struct localsub_err *err, int ex, int r, const char *fmt,
	...) __attribute__((format(printf, 4, 5)));
/*
 * The option getopt just refused, for a usage line: "-x" written into
 * opt[3], or the whole argument when it was a long option.
 */
const char *localsub_bad_option(char opt[3], char **argv);
/* Print "PROG: text" on stderr; returns err->ex (EX_SOFTWARE if unset). */
int localsub_report(const struct localsub *ls, const struct localsub_err *err);
/* Release what err holds. */
void localsub_err_free(struct localsub_err *err);
/* Release the option vectors. */
void localsub_sendmail_free(struct localsub_sendmail *o);
void localsub_mail_free(struct localsub_mail *o);
/* Release what ls holds (and shut GMime down). */
void localsub_free(struct localsub *ls);

#endif
