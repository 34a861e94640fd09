/*
 * pipeaddr: the PIPE address grammar and router/transport templates. Owns
 * the split of a pipe local part into queue[NAME], tags, application and
 * parameters, and the canonical text that parses back to the same command.
 * Promises that text substituted for a template's '*' stays inside the one
 * word where the '*' stood and can never add a word, a tag or a queue
 * prefix. Never runs anything, never does I/O, keeps no global state.
 */
#include "pipeaddr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "strv.h"
#include "text.h"

/* Why texts shared with the router (SPEC "Routing"). */
#define WHY_DASH "text substituted for '*' begins with '-'"
#define WHY_CTL "text substituted for '*' holds a control character"

static const struct {
	const char *name;
	unsigned bit;
} pa_tags[] = {
	{ "FILE", PIPE_TAG_FILE },
	{ "RETPATH", PIPE_TAG_RETPATH },
	{ "RCPT", PIPE_TAG_RCPT },
	{ "STDERR", PIPE_TAG_STDERR },
};

#define PA_NTAGS (sizeof(pa_tags) / sizeof(pa_tags[0]))
#define PA_ALL_TAGS (PIPE_TAG_FILE | PIPE_TAG_RETPATH | PIPE_TAG_RCPT | \
	PIPE_TAG_STDERR)

/* Is c a word separator (unescaped space or tab)? */
static bool
pa_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Application name rules (see pipeaddr.h); also refuses a leading '-'. */
int
pipe_app_check(const char *app, const char **why)
{
	const char *dummy;

	if (why == NULL)
		why = &dummy;
	if (app == NULL || *app == '\0') {
		*why = "empty application name";
		return -EINVAL;
	}
	if (app[0] == '.') {
		*why = "application name begins with '.'";
		return -EINVAL;
	}
	if (app[0] == '-') {
		*why = "application name begins with '-'";
		return -EINVAL;
	}
	if (strchr(app, '/')) {
		*why = "application name holds '/'";
		return -EINVAL;
	}
	if (strchr(app, '\\')) {
		*why = "application name holds '\\'";
		return -EINVAL;
	}
	if (text_str_has_ctl(app)) {
		*why = "control character in application name";
		return -EINVAL;
	}
	return 0;
}

/* Queue name rule: 1-64 of [A-Za-z0-9_-]. */
bool
pipe_queue_name_ok(const char *name, size_t len)
{
	if (name == NULL || len == 0 || len > PIPE_QUEUE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Release a command. */
void
pipe_cmd_free(struct pipe_cmd *c)
{
	free(c->queue);
	free(c->app);
	strv_free(&c->params);
	c->queue = c->app = NULL;
	c->tags = 0;
}

/* Release a template. */
void
pipe_tmpl_free(struct pipe_tmpl *t)
{
	for (size_t i = 0; i < t->nwords; i++)
		strv_free(&t->words[i].pieces);
	free(t->words);
	free(t->queue);
	t->words = NULL;
	t->queue = NULL;
	t->nwords = 0;
	t->tags = 0;
	t->has_star = false;
}

/* Push the bytes of b (possibly none) as one new string of sv. */
static int
pa_push_buf(struct strv *sv, const struct buf *b)
{
	return strv_pushn(sv, b->len ? b->data : "", b->len);
}

/* Add one word (its pieces moved in) to t. */
static int
pa_add_word(struct pipe_tmpl *t, struct strv *pieces)
{
	struct pipe_tmpl_word *w;

	w = realloc(t->words, (t->nwords + 1) * sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	t->words = w;
	w[t->nwords].pieces = *pieces;
	t->nwords++;
	*pieces = (struct strv)STRV_INIT;
	return 0;
}

/*
 * Read one word starting at s[*pos] (not white space) into pieces: "\x"
 * is a literal x (but an escaped tab is refused: a word never holds a
 * control character); with tmpl an unescaped '*' ends a piece.
 */
static int
pa_read_word(const char *s, size_t len, size_t *pos, bool tmpl,
	struct strv *pieces, bool *star, const char **why)
{
	struct buf cur = BUF_INIT;
	size_t i = *pos;
	int r = 0;

	while (r == 0 && i < len && !pa_space(s[i])) {
		if (s[i] == '\\') {
			if (i + 1 >= len) {
				*why = "trailing backslash";
				r = -EINVAL;
				break;
			}
			if (s[i + 1] == '\t') {
				*why = "control character in pipe address";
				r = -EINVAL;
				break;
			}
			r = buf_putc(&cur, s[i + 1]);
			i += 2;
		} else if (tmpl && s[i] == '*') {
			*star = true;
			r = pa_push_buf(pieces, &cur);
			buf_reset(&cur);
			i++;
		} else {
			r = buf_putc(&cur, s[i]);
			i++;
		}
	}
	if (r == 0)
		r = pa_push_buf(pieces, &cur);
	buf_free(&cur);
	*pos = i;
	return r;
}

/* Parse "[TAG]" at s[*pos] == '['. */
static int
pa_read_tag(const char *s, size_t len, size_t *pos, unsigned *tags,
	const char **why)
{
	const char *close = memchr(s + *pos, ']', len - *pos);
	const char *name = s + *pos + 1;
	size_t n;

	if (close == NULL) {
		*why = "unterminated tag";
		return -EINVAL;
	}
	n = (size_t)(close - name);
	for (size_t k = 0; k < PA_NTAGS; k++) {
		if (strlen(pa_tags[k].name) != n ||
		    memcmp(pa_tags[k].name, name, n) != 0)
			continue;
		if (*tags & pa_tags[k].bit) {
			*why = "duplicate tag";
			return -EINVAL;
		}
		*tags |= pa_tags[k].bit;
		*pos = (size_t)(close - s) + 1;
		return 0;
	}
	*why = "unknown tag";
	return -EINVAL;
}

/* Parse "queue[NAME]" at s[*pos]. */
static int
pa_read_queue(const char *s, size_t len, size_t *pos, bool tmpl,
	char **queue, const char **why)
{
	const char *name = s + *pos + 6;
	const char *close = memchr(name, ']', len - *pos - 6);
	size_t n;

	if (close == NULL) {
		*why = "unterminated queue[NAME]";
		return -EINVAL;
	}
	n = (size_t)(close - name);
	if (tmpl && memchr(name, '*', n)) {
		*why = "'*' in a queue name";
		return -EINVAL;
	}
	if (!pipe_queue_name_ok(name, n)) {
		*why = "bad queue name (1-64 of A-Z a-z 0-9 _ -)";
		return -EINVAL;
	}
	if (*queue != NULL) {
		*why = "duplicate queue[NAME]";
		return -EINVAL;
	}
	if ((*queue = text_strndup(name, n)) == NULL)
		return -ENOMEM;
	*pos = (size_t)(close - s) + 1;
	return 0;
}

/* Check a template's application word, whose pieces surround '*'s. */
static int
pa_app_tmpl_check(const struct strv *pieces, const char **why)
{
	const char *first = pieces->v[0];

	if (pieces->n == 1)
		return pipe_app_check(first, why);
	if (first[0] == '.' || first[0] == '-')
		return pipe_app_check(first, why);
	for (size_t i = 0; i < pieces->n; i++) {
		if (strchr(pieces->v[i], '/')) {
			*why = "application name holds '/'";
			return -EINVAL;
		}
		if (strchr(pieces->v[i], '\\')) {
			*why = "application name holds '\\'";
			return -EINVAL;
		}
	}
	return 0;
}

/* The one parser behind pipe_cmd_parse and pipe_tmpl_parse. */
static int
pa_parse(const char *s, size_t len, bool tmpl, struct pipe_tmpl *t,
	const char **why)
{
	struct strv pieces = STRV_INIT;
	size_t pos = 0;
	int r = 0;

	*t = (struct pipe_tmpl)PIPE_TMPL_INIT;
	if (text_has_ctl(s, len, true)) {
		*why = "control character in pipe address";
		return -EINVAL;
	}
	while (r == 0) {
		while (pos < len && pa_space(s[pos]))
			pos++;
		if (pos >= len)
			break;
		if (t->nwords == 0 && s[pos] == '[') {
			r = pa_read_tag(s, len, &pos, &t->tags, why);
			continue;
		}
		if (t->nwords == 0 && len - pos >= 6 &&
		    memcmp(s + pos, "queue[", 6) == 0) {
			r = pa_read_queue(s, len, &pos, tmpl, &t->queue, why);
			continue;
		}
		r = pa_read_word(s, len, &pos, tmpl, &pieces, &t->has_star,
			why);
		if (r == 0 && t->nwords == 0)
			r = pa_app_tmpl_check(&pieces, why);
		if (r == 0)
			r = pa_add_word(t, &pieces);
		strv_free(&pieces);
	}
	if (r == 0 && t->nwords == 0) {
		*why = len == 0 ? "empty pipe address" : "no application name";
		r = -EINVAL;
	}
	if (r < 0)
		pipe_tmpl_free(t);
	return r;
}

/* Move the single-piece words of t into the command c. */
static int
pa_tmpl_to_cmd(struct pipe_tmpl *t, struct pipe_cmd *c)
{
	int r;

	c->queue = t->queue;
	t->queue = NULL;
	c->tags = t->tags;
	c->app = t->words[0].pieces.v[0];
	t->words[0].pieces.v[0] = NULL;
	t->words[0].pieces.n = 0;
	for (size_t i = 1; i < t->nwords; i++) {
		r = strv_push_take(&c->params, t->words[i].pieces.v[0]);
		t->words[i].pieces.v[0] = NULL;
		t->words[i].pieces.n = 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* Parse a pipe local part (already RFC 5321-unquoted) into c. */
int
pipe_cmd_parse(const char *s, size_t len, struct pipe_cmd *c,
	const char **why)
{
	struct pipe_tmpl t;
	const char *dummy;
	int r;

	if (why == NULL)
		why = &dummy;
	*c = (struct pipe_cmd)PIPE_CMD_INIT;
	if ((r = pa_parse(s, len, false, &t, why)) < 0)
		return r;
	r = pa_tmpl_to_cmd(&t, c);
	pipe_tmpl_free(&t);
	if (r < 0)
		pipe_cmd_free(c);
	return r;
}

/* Parse a template (unescaped '*' = placeholder). */
int
pipe_tmpl_parse(const char *s, size_t len, struct pipe_tmpl *t,
	const char **why)
{
	const char *dummy;

	return pa_parse(s, len, true, t, why ? why : &dummy);
}

/* Join the pieces of w with text into a new string. */
static int
pa_join(const struct pipe_tmpl_word *w, const char *text, char **out)
{
	struct buf b = BUF_INIT;
	int r = 0;

	for (size_t i = 0; r == 0 && i < w->pieces.n; i++) {
		if (i > 0)
			r = buf_puts(&b, text);
		if (r == 0)
			r = buf_puts(&b, w->pieces.v[i]);
	}
	if (r == 0)
		r = buf_steal(&b, out);
	buf_free(&b);
	return r;
}

/* Expand t with text into c (see pipeaddr.h). */
int
pipe_tmpl_expand(const struct pipe_tmpl *t, const char *text,
	struct pipe_cmd *c, const char **why)
{
	const char *dummy;
	char *word;
	int r = 0;

	if (why == NULL)
		why = &dummy;
	*c = (struct pipe_cmd)PIPE_CMD_INIT;
	if (t->nwords == 0 || t->words[0].pieces.n == 0) {
		*why = "empty template";
		return -EINVAL;
	}
	if (!t->has_star || text == NULL)
		text = "";
	if (text_str_has_ctl(text)) {
		*why = WHY_CTL;
		return -EPERM;
	}
	if (text[0] == '-') {
		*why = WHY_DASH;
		return -EPERM;
	}
	c->tags = t->tags;
	if (t->queue && (c->queue = text_strdup(t->queue)) == NULL)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < t->nwords; i++) {
		if ((r = pa_join(&t->words[i], text, &word)) < 0)
			break;
		if (i == 0) {
			c->app = word;
			r = pipe_app_check(word, why);
		} else if (*word == '\0') {
			free(word);
			*why = "substitution leaves an empty parameter";
			r = -EINVAL;
		} else {
			r = strv_push_take(&c->params, word);
		}
	}
	if (r < 0)
		pipe_cmd_free(c);
	return r;
}

/* Append word to b with the grammar's escapes; app also guards "queue[". */
static int
pa_put_word(struct buf *b, const char *word, bool app)
{
	int r = 0;

	for (const char *p = word; r == 0 && *p; p++) {
		bool esc = strchr(" \t\\\"*", *p) != NULL;

		if (p == word && (*p == '[' ||
		    (app && strncmp(p, "queue[", 6) == 0)))
			esc = true;
		if (esc)
			r = buf_putc(b, '\\');
		if (r == 0)
			r = buf_putc(b, *p);
	}
	return r;
}

/* Canonical local-part text for c (see pipeaddr.h). */
int
pipe_cmd_format(const struct pipe_cmd *c, char **out)
{
	struct buf b = BUF_INIT;
	int r = 0;

	*out = NULL;
	if (pipe_app_check(c->app, NULL) < 0 || (c->tags & ~PA_ALL_TAGS) ||
	    (c->queue && !pipe_queue_name_ok(c->queue, strlen(c->queue))))
		return -EINVAL;
	for (size_t i = 0; i < c->params.n; i++)
		if (c->params.v[i][0] == '\0' || text_str_has_ctl(c->params.v[i]))
			return -EINVAL;
	if (c->queue)
		r = buf_printf(&b, "queue[%s] ", c->queue);
	for (size_t k = 0; r == 0 && k < PA_NTAGS; k++)
		if (c->tags & pa_tags[k].bit)
			r = buf_printf(&b, "[%s] ", pa_tags[k].name);
	if (r == 0)
		r = pa_put_word(&b, c->app, true);
	for (size_t i = 0; r == 0 && i < c->params.n; i++) {
		r = buf_putc(&b, ' ');
		if (r == 0)
			r = pa_put_word(&b, c->params.v[i], false);
	}
	if (r == 0)
		r = buf_steal(&b, out);
	buf_free(&b);
	return r;
}
