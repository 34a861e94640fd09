/*
 * pipe_build: the argv and environment of one PIPE program (SPEC "PIPE
 * delivery", order of -f / -p / -r), from a parsed pipe command and the
 * module's settings. Pure: checks the values it is given (no control
 * characters, a valid application name) and builds strings; starts,
 * opens and logs nothing.
 */
#include "pipe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "strv.h"
#include "text.h"

/* Push "NAME=value" unless value is NULL. */
static int
push_env(struct strv *e, const char *name, const char *value)
{
	struct buf b = BUF_INIT;
	char *s;
	int r;

	if (value == NULL)
		return 0;
	if ((r = buf_printf(&b, "%s=%s", name, value)) < 0 ||
	    (r = buf_steal(&b, &s)) < 0) {
		buf_free(&b);
		return r;
	}
	return strv_push_take(e, s);
}

/* Every value that reaches the program, with its name for *why. */
static int
check_values(const struct pipe_request *req, const struct pipe_settings *s,
	const char **why)
{
	const struct pipe_cmd *c = req->cmd;
	const struct {
		const char *v;
		const char *why;
	} vals[] = {
		{ req->queue_file, "unsafe value in the queue file name" },
		{ req->sender, "unsafe value in the return-path" },
		{ req->recipient, "unsafe value in the recipient" },
		{ req->orig_recipient,
		  "unsafe value in the original recipient" },
		{ req->queue_id, "unsafe value in the queue id" },
		{ req->delivery_id, "unsafe value in the delivery id" },
		{ s->path_env, "unsafe value in the PATH setting" },
		{ s->base_dir, "unsafe value in the base directory" },
		{ s->app_dir, "unsafe value in the application directory" },
	};

	for (size_t i = 0; i < c->params.n; i++)
		if (text_str_has_ctl(c->params.v[i])) {
			*why = "unsafe value in a parameter";
			return -EINVAL;
		}
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (text_str_has_ctl(vals[i].v)) {
			*why = vals[i].why;
			return -EINVAL;
		}
	return 0;
}

/* Build the program invocation; see pipe.h. */
int
pipe_build(const struct pipe_request *req, const struct pipe_settings *s,
	struct pipe_argv *out, const char **why)
{
	const struct pipe_cmd *c = req->cmd;
	struct pipe_argv a = PIPE_ARGV_INIT;
	struct buf path = BUF_INIT;
	const char *rcpt;
	int r;

	if (s->app_dir == NULL || s->app_dir[0] == '\0') {
		*why = "PIPE module disabled (no application directory)";
		return -ENOENT;
	}
	if (c == NULL) {
		*why = "no pipe command";
		return -EINVAL;
	}
	if ((r = pipe_app_check(c->app, why)) < 0)
		return r;
	if ((r = check_values(req, s, why)) < 0)
		return r;
	if ((c->tags & PIPE_TAG_FILE) && (req->queue_file == NULL ||
	    req->queue_file[0] == '\0')) {
		*why = "[FILE] without a queue file";
		return -EINVAL;
	}
	if ((c->tags & PIPE_TAG_FILE) && (s->base_dir == NULL ||
	    s->base_dir[0] == '\0')) {
		*why = "[FILE] without a base directory";
		return -EINVAL;
	}
	*why = "out of memory";
	r = buf_printf(&path, "%s%s%s", s->app_dir,
	    s->app_dir[strlen(s->app_dir) - 1] == '/' ? "" : "/", c->app);
	if (r == 0)
		r = buf_steal(&path, &a.path);
	if (r == 0 && (a.cwd = text_strdup(c->tags & PIPE_TAG_FILE ?
	    s->base_dir : s->app_dir)) == NULL)
		r = -ENOMEM;
	if (r == 0)
		r = strv_push(&a.argv, c->app);
	for (size_t i = 0; r == 0 && i < c->params.n; i++)
		r = strv_push(&a.argv, c->params.v[i]);
	if (r == 0 && (c->tags & PIPE_TAG_FILE) &&
	    (r = strv_push(&a.argv, "-f")) == 0)
		r = strv_push(&a.argv, PIPE_FILE_ARG);
	if (r == 0 && (c->tags & PIPE_TAG_RETPATH) &&
	    (r = strv_push(&a.argv, "-p")) == 0)
		r = strv_push(&a.argv, req->sender ? req->sender : "");
	rcpt = req->orig_recipient ? req->orig_recipient :
	    req->recipient ? req->recipient : "";
	if (r == 0 && (c->tags & PIPE_TAG_RCPT) &&
	    (r = strv_push(&a.argv, "-r")) == 0)
		r = strv_push(&a.argv, rcpt);
	if (r == 0)
		r = push_env(&a.envp, "PATH", s->path_env ? s->path_env :
		    PIPE_DEFAULT_PATH);
	if (r == 0)
		r = push_env(&a.envp, "SENDER", req->sender);
	if (r == 0)
		r = push_env(&a.envp, "RECIPIENT", req->recipient);
	if (r == 0)
		r = push_env(&a.envp, "ORIGINAL_RECIPIENT",
		    req->orig_recipient);
	if (r == 0)
		r = push_env(&a.envp, "QUEUE_ID", req->queue_id);
	if (r == 0)
		r = push_env(&a.envp, "DELIVERY_ID", req->delivery_id);
	buf_free(&path);
	if (r < 0) {
		pipe_argv_free(&a);
		return r;
	}
	*why = NULL;
	*out = a;
	return 0;
}

/* Free an invocation. */
void
pipe_argv_free(struct pipe_argv *a)
{
	free(a->path);
	free(a->cwd);
	strv_free(&a->argv);
	strv_free(&a->envp);
	a->path = a->cwd = NULL;
}

