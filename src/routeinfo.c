/*
 * routeinfo: loading and checking the whole configuration, and the route
 * dry run (see routeinfo.h). Owns no state between calls. Promises that
 * the explanation printed is computed by the same code the server uses
 * (router_route, pipe_build), so what it shows is what would run.
 */
#include "routeinfo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeaddr.h"
#include "strv.h"

#define ROUTER_FILE_MAX ((size_t)16 << 20)

/* The system's host name. */
int
routeinfo_hostname(char **out)
{
	char name[256];

	if (gethostname(name, sizeof(name)) < 0)
		return -errno;
	name[sizeof(name) - 1] = '\0';
	*out = strdup(name[0] ? name : "localhost");
	return *out ? 0 : -ENOMEM;
}

/* Read a whole file (missing -> -ENOENT). */
static int
read_file(const char *path, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = buf_read_fd(out, fd, ROUTER_FILE_MAX);
	close(fd);
	return r;
}

/* Load config and router file. */
int
routeinfo_load(const char *base_dir, const char *config_path,
	const char *hostname, struct config *c, struct router_table *t,
	struct transport_table *tt, char **err)
{
	struct buf text = BUF_INIT, msg = BUF_INIT;
	int r;

	*err = NULL;
	if ((r = config_load(c, base_dir, config_path, hostname, err)) < 0)
		return r;
	if (tt && (r = transport_table_build(c, tt, err)) < 0)
		return r;
	r = read_file(c->router.file, &text);
	if (r == -ENOENT) {
		buf_free(&text);
		return 0;		/* missing router file = empty table */
	}
	if (r < 0) {
		buf_printf(&msg, "%s: %s", c->router.file, strerror(-r));
		buf_steal(&msg, err);
		buf_free(&text);
		return r == -EFBIG ? -EINVAL : r;
	}
	r = router_table_parse(text.data ? text.data : "", text.len,
		c->router.file, t, err);
	buf_free(&text);
	return r;
}

/* Router context over c, t and tt. */
void
routeinfo_ctx(const struct config *c, const struct router_table *t,
	const struct transport_table *tt, struct router_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->table = t;
	ctx->local_domains = &c->router.local_domains;
	ctx->default_domain = c->router.local_domains.n > 0 ?
		c->router.local_domains.v[0] : c->server.hostname;
	ctx->direct_pipe_allowed = false;
	if (tt && tt->domains.n > 0) {
		ctx->transport_domains = &tt->domains;
		ctx->transport_names = tt->names;
	}
	ctx->relay_configured = c->smtp.relay_host != NULL;
}

/* Append a formatted message to a string vector. */
static void
note(struct strv *sv, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (buf_vprintf(&b, fmt, ap) == 0 && buf_steal(&b, &s) == 0)
		strv_push_take(sv, s);
	va_end(ap);
	buf_free(&b);
}

/* Who can write st: a short text, or NULL when nobody but its owner root. */
static const char *
writable_by(const struct stat *st, uid_t prog_uid)
{
	if (st->st_mode & S_IWOTH)
		return "others";
	if (st->st_mode & S_IWGRP)
		return "its group";
	if (st->st_uid == prog_uid)
		return "the program user (its owner)";
	return NULL;
}

/* Warn about an application directory or program that will be refused. */
static void
check_apps(const struct config *c, uid_t prog_uid, struct strv *warn)
{
	const char *dir = c->pipe.app_dir, *who;
	struct buf p = BUF_INIT;
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (dir == NULL || dir[0] == '\0') {
		note(warn, "[pipe] app-dir is empty: PIPE delivery is off, "
			"every pipe address is rejected");
		return;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		note(warn, "[pipe] app-dir %s is missing: every pipe address "
			"is rejected", dir);
		return;
	}
	if ((who = writable_by(&st, prog_uid)) != NULL)
		note(warn, "[pipe] app-dir %s is writable by %s: its programs "
			"are refused", dir, who);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		buf_reset(&p);
		if (buf_printf(&p, "%s/%s", dir, de->d_name) < 0 ||
		    stat(p.data, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if ((who = writable_by(&st, prog_uid)) != NULL)
			note(warn, "program %s is writable by %s: it is "
				"refused", p.data, who);
		else if ((st.st_mode & 0111) == 0)
			note(warn, "program %s is not executable", p.data);
	}
	closedir(d);
	buf_free(&p);
}

/* Warnings beyond syntax (errors are found when loading). */
void
routeinfo_check(const struct config *c, uid_t prog_uid, struct strv *warn)
{
	check_apps(c, prog_uid, warn);
}

/* Route one address and build the invocation for pipe routes. */
int
routeinfo_explain(const struct config *c, const struct router_table *t,
	const struct transport_table *tt, const char *address, bool local,
	const char *sender, struct routeinfo *ri)
{
	const struct transport *tr = NULL;
	struct router_ctx ctx;
	struct pipe_settings ps;
	struct pipe_request req;
	int r;

	routeinfo_ctx(c, t, tt, &ctx);
	ctx.direct_pipe_allowed = local && c->pipe.direct == DIRECT_LOCAL;
	if ((r = router_route(&ctx, address, &ri->route)) < 0)
		return r;
	if (ri->route.kind == ROUTE_TRANSPORT && tt)
		tr = ri->transport = transport_find(tt, ri->route.transport);
	if (ri->route.kind != ROUTE_PIPE && tr == NULL)
		return 0;
	memset(&ps, 0, sizeof(ps));
	ps.base_dir = c->base_dir;
	ps.app_dir = c->pipe.app_dir;
	ps.time_limit_s = c->pipe.time_limit_s;
	ps.stderr_limit = c->pipe.stderr_limit;
	ps.path_env = c->pipe.path_env;
	memset(&req, 0, sizeof(req));
	req.cmd = &ri->route.pipe;
	if (tr)
		transport_request(tr, tr->conf->mode == TRANSPORT_SYNC, &req);
	req.queue_file = "Queue/ID.msg";
	req.sender = sender ? sender : "RETURN-PATH";
	req.recipient = ri->route.address;
	req.orig_recipient = address;
	req.queue_id = "ID";
	req.delivery_id = "UID.N";
	r = pipe_build(&req, &ps, &ri->argv, &ri->argv_why);
	if (r == 0)
		ri->has_argv = true;
	else if (r == -ENOMEM)
		return r;
	else if (ri->argv_why == NULL)
		ri->argv_why = r == -ENOENT ? "PIPE delivery is off (no "
			"application directory)" : "cannot be run";
	return 0;
}

/* The module that handles a route kind. */
static const char *
module_of(enum route_kind k)
{
	switch (k) {
	case ROUTE_PIPE:
	case ROUTE_TRANSPORT:
	case ROUTE_RELAY:
	case ROUTE_NULL:
		return route_kind_name(k);
	default:
		return "none";
	}
}

/* Length of the name part of "NAME=value". */
static size_t
env_name_len(const char *kv)
{
	const char *eq = strchr(kv, '=');

	return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Print as JSON. */
static int
print_json(const struct routeinfo *ri, const char *address, FILE *out)
{
	const struct route *rt = &ri->route;
	json_t *o = json_object(), *a, *e;
	int r = 0;

	if (o == NULL)
		return -ENOMEM;
	json_object_set_new(o, "address", json_string(address));
	json_object_set_new(o, "route", json_string(route_kind_name(rt->kind)));
	json_object_set_new(o, "module", json_string(module_of(rt->kind)));
	if (rt->address)
		json_object_set_new(o, "target", json_string(rt->address));
	if (rt->rule_line)
		json_object_set_new(o, "rule_line",
			json_integer(rt->rule_line));
	if (ri->transport) {
		json_object_set_new(o, "transport",
			json_string(ri->transport->conf->name));
		json_object_set_new(o, "transport_mode", json_string(
			ri->transport->conf->mode == TRANSPORT_SYNC ? "sync" :
			"queue"));
	}
	if (rt->kind == ROUTE_PIPE || ri->transport) {
		const char *qn = ri->transport ? ri->transport->cmd.queue :
			rt->pipe.queue;

		json_object_set_new(o, "queue", qn ? json_string(qn) :
			json_null());
	}
	if (rt->text) {
		char reply[64];

		snprintf(reply, sizeof(reply), "%d %s", rt->reply, rt->status);
		json_object_set_new(o, "reply", json_string(reply));
		json_object_set_new(o, "text", json_string(rt->text));
	}
	if (ri->has_argv) {
		json_object_set_new(o, "program", json_string(ri->argv.path));
		json_object_set_new(o, "cwd", json_string(ri->argv.cwd));
		a = json_array();
		for (size_t i = 0; i < ri->argv.argv.n; i++)
			json_array_append_new(a, json_string(ri->argv.argv.v[i]));
		json_object_set_new(o, "argv", a);
		e = json_array();
		for (size_t i = 0; i < ri->argv.envp.n; i++)
			json_array_append_new(e, json_stringn(
				ri->argv.envp.v[i],
				env_name_len(ri->argv.envp.v[i])));
		json_object_set_new(o, "env", e);
	} else if (ri->argv_why) {
		json_object_set_new(o, "error", json_string(ri->argv_why));
	}
	if (json_dumpf(o, out, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
		r = -EIO;
	fputc('\n', out);
	json_decref(o);
	return r;
}

/* Print the explanation. */
int
routeinfo_print(const struct routeinfo *ri, const char *address, bool json,
	FILE *out)
{
	const struct route *rt = &ri->route;

	if (json)
		return print_json(ri, address, out);
	fprintf(out, "address: %s\n", address);
	fprintf(out, "route: %s\n", route_kind_name(rt->kind));
	if (rt->address)
		fprintf(out, "target: %s\n", rt->address);
	fprintf(out, "module: %s\n", module_of(rt->kind));
	if (ri->transport)
		fprintf(out, "transport: %s (%s mode)\n",
			ri->transport->conf->name,
			ri->transport->conf->mode == TRANSPORT_SYNC ? "sync" :
			"queue");
	if (rt->kind == ROUTE_PIPE || ri->transport) {
		const char *qn = ri->transport ? ri->transport->cmd.queue :
			rt->pipe.queue;

		fprintf(out, "queue: %s\n", qn ? qn : "(its own)");
	}
	if (rt->rule_line)
		fprintf(out, "rule: line %u\n", rt->rule_line);
	if (rt->text)
		fprintf(out, "result: %d %s %s\n", rt->reply, rt->status,
			rt->text);
	if (ri->has_argv) {
		fprintf(out, "program: %s\n", ri->argv.path);
		fprintf(out, "cwd: %s\n", ri->argv.cwd);
		for (size_t i = 0; i < ri->argv.argv.n; i++)
			fprintf(out, "argv[%zu]: %s\n", i, ri->argv.argv.v[i]);
		for (size_t i = 0; i < ri->argv.envp.n; i++)
			fprintf(out, "env: %.*s\n",
				(int)env_name_len(ri->argv.envp.v[i]),
				ri->argv.envp.v[i]);
	} else if (ri->argv_why) {
		fprintf(out, "error: %s\n", ri->argv_why);
	}
	return ferror(out) ? -EIO : 0;
}

/* Free an explanation. */
void
routeinfo_free(struct routeinfo *ri)
{
	route_free(&ri->route);
	pipe_argv_free(&ri->argv);
	ri->has_argv = false;
}
