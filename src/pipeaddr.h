/*
 * pipeaddr: the PIPE address grammar (SPEC "PIPE delivery"). The input is a
 * local part after RFC 5321 unquoting:
 *     [queue[NAME]] [TAG]... application [parameter]...
 * tags [FILE] [RETPATH] [RCPT] [STDERR] in any order, with or without a
 * space after them; words split at unescaped white space (space, tab);
 * "\x" stands for x. Tags and queue[NAME] only come before the application
 * name; after it everything is a parameter.
 *
 * Templates are the same grammar as written by the postmaster in a router
 * record or transport command, where an unescaped '*' marks where matched
 * text goes. Expanding a template puts the text inside the one word where
 * the '*' stood, verbatim: it can never add a word, a tag or a queue
 * prefix. Pure: no I/O, no globals.
 */
#ifndef MP_PIPEADDR_H
#define MP_PIPEADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "strv.h"

enum pipe_tag {
	PIPE_TAG_FILE = 1,
	PIPE_TAG_RETPATH = 2,
	PIPE_TAG_RCPT = 4,
	PIPE_TAG_STDERR = 8,
};

#define PIPE_QUEUE_NAME_MAX 64

struct pipe_cmd {
	char *queue;		/* queue[NAME] or NULL (own numeric queue) */
	unsigned tags;		/* PIPE_TAG_* */
	char *app;		/* application name, checked by pipe_app_check */
	struct strv params;	/* parameters, one per argument */
};

#define PIPE_CMD_INIT { NULL, 0, NULL, STRV_INIT }

/* One word of a template: pieces joined by the matched text. */
struct pipe_tmpl_word {
	struct strv pieces;	/* n pieces = n - 1 placeholders; n >= 1 */
};

struct pipe_tmpl {
	char *queue;			/* literal; '*' refused in a queue name */
	unsigned tags;
	struct pipe_tmpl_word *words;	/* words[0] is the application */
	size_t nwords;
	bool has_star;			/* any placeholder at all */
};

#define PIPE_TMPL_INIT { NULL, 0, NULL, 0, false }

/*
 * Parse a pipe local part (already RFC 5321-unquoted) into c. Errors
 * (-EINVAL, *why constant): empty, no application, bad or duplicate
 * queue[NAME] (NAME: 1-64 of [A-Za-z0-9_-]), duplicate tag, unknown
 * [TAG], trailing backslash, control character, application name that
 * pipe_app_check refuses.
 */
int pipe_cmd_parse(const char *s, size_t len, struct pipe_cmd *c,
	const char **why);
/* Parse a template (unescaped '*' = placeholder). Same errors. */
int pipe_tmpl_parse(const char *s, size_t len, struct pipe_tmpl *t,
	const char **why);
/*
 * Expand t with text. text must not hold a control character and must not
 * begin with '-' (-EPERM, *why set); the resulting application name must
 * pass pipe_app_check (-EINVAL). text is ignored when t has no '*'.
 */
int pipe_tmpl_expand(const struct pipe_tmpl *t, const char *text,
	struct pipe_cmd *c, const char **why);
/*
 * Canonical local-part text for c (before RFC 5321 quoting): "queue[NAME]",
 * then tags, then words with white space, '\\', '"', '*' and a leading
 * '[' (and the 'q' of an application word beginning "queue[")
 * backslash-escaped, so that pipe_cmd_parse gives back c. -EINVAL when c
 * could not have come from pipe_cmd_parse / pipe_tmpl_expand.
 */
int pipe_cmd_format(const struct pipe_cmd *c, char **out);
/*
 * Application name rules: non-empty, no '/' or '\\', not starting with
 * '.' or '-', no control characters. 0 or -EINVAL with *why.
 */
int pipe_app_check(const char *app, const char **why);
/* Queue name rule: 1-64 of [A-Za-z0-9_-]. */
bool pipe_queue_name_ok(const char *name, size_t len);
void pipe_cmd_free(struct pipe_cmd *c);
void pipe_tmpl_free(struct pipe_tmpl *t);

#endif
