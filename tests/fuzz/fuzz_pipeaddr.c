/*
 * libFuzzer target for pipeaddr.c. Mode 0: every parsed pipe command
 * formats to text that parses back to the same command. Mode 1: a template
 * expanded with arbitrary text keeps its tags, queue and word count, each
 * word is exactly its pieces joined with the text, unsafe text is refused,
 * and the result round-trips through pipe_cmd_format / pipe_cmd_parse.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "buf.h"
#include "pipeaddr.h"
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

/* Trap unless a and b are the same command. */
static void
cmd_eq(const struct pipe_cmd *a, const struct pipe_cmd *b)
{
	if (!same(a->queue, b->queue) || a->tags != b->tags ||
	    !same(a->app, b->app) || a->params.n != b->params.n)
		__builtin_trap();
	for (size_t i = 0; i < a->params.n; i++)
		if (strcmp(a->params.v[i], b->params.v[i]) != 0)
			__builtin_trap();
}

/* Trap unless c is well-formed and survives format -> parse. */
static void
check_cmd(const struct pipe_cmd *c)
{
	struct pipe_cmd d = PIPE_CMD_INIT;
	char *out = NULL, *again = NULL;
	int r;

	if (pipe_app_check(c->app, NULL) != 0)
		__builtin_trap();
	if (c->queue && !pipe_queue_name_ok(c->queue, strlen(c->queue)))
		__builtin_trap();
	for (size_t i = 0; i < c->params.n; i++)
		if (!*c->params.v[i] ||
		    text_str_has_ctl(c->params.v[i]))
			__builtin_trap();
	if ((r = pipe_cmd_format(c, &out)) == -ENOMEM)
		return;
	if (r != 0 || pipe_cmd_parse(out, strlen(out), &d, NULL) != 0)
		__builtin_trap();
	cmd_eq(c, &d);
	if (pipe_cmd_format(&d, &again) == 0 && strcmp(out, again) != 0)
		__builtin_trap();
	free(out);
	free(again);
	pipe_cmd_free(&d);
}

/* Trap unless word equals the pieces of w joined with text. */
static void
check_word(const struct pipe_tmpl_word *w, const char *text, const char *word)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < w->pieces.n; i++) {
		if (i > 0 && buf_puts(&b, text) < 0)
			goto out;
		if (buf_puts(&b, w->pieces.v[i]) < 0)
			goto out;
	}
	if (strcmp(b.data ? b.data : "", word) != 0)
		__builtin_trap();
out:
	buf_free(&b);
}

/* Template mode: "template\ntext". */
static void
check_tmpl(const char *s, size_t len)
{
	struct pipe_tmpl t = PIPE_TMPL_INIT;
	struct pipe_cmd c = PIPE_CMD_INIT;
	const char *nl = memchr(s, '\n', len), *why = NULL;
	size_t tl = nl ? (size_t)(nl - s) : len;
	char *text;
	bool unsafe;
	int r;

	if (pipe_tmpl_parse(s, tl, &t, &why) != 0)
		return;
	if (t.nwords == 0)
		__builtin_trap();
	text = nl ? strndup(nl + 1, len - tl - 1) : strdup("joe");
	if (text == NULL)
		goto out;
	unsafe = t.has_star && (text[0] == '-' ||
		text_str_has_ctl(text));
	r = pipe_tmpl_expand(&t, text, &c, &why);
	if (unsafe && r != -EPERM)
		__builtin_trap();
	if (r != 0) {
		if (why == NULL || c.app || c.queue || c.params.n)
			__builtin_trap();
		goto out;
	}
	if (c.tags != t.tags || !same(c.queue, t.queue) ||
	    c.params.n != t.nwords - 1)
		__builtin_trap();
	check_word(&t.words[0], text, c.app);
	for (size_t i = 1; i < t.nwords; i++)
		check_word(&t.words[i], text, c.params.v[i - 1]);
	check_cmd(&c);
out:
	free(text);
	pipe_cmd_free(&c);
	pipe_tmpl_free(&t);
}

/* One input: the first byte selects the mode. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pipe_cmd c = PIPE_CMD_INIT;
	const char *s = (const char *)data + 1, *why = NULL;
	int r;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		check_tmpl(s, size - 1);
		return 0;
	}
	r = pipe_cmd_parse(s, size - 1, &c, &why);
	if (r == 0)
		check_cmd(&c);
	else if (r != -ENOMEM && (r != -EINVAL || why == NULL || c.app))
		__builtin_trap();
	pipe_cmd_free(&c);
	return 0;
}
