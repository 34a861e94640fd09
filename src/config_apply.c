/*
 * config_apply: one key = value of each section applied to the struct
 * config, a function per section, with the words each enumerated key
 * takes. Checks through config_value.c; a refused value leaves the
 * config as it was and gives the reason through config__why.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "strv.h"
#include "text.h"

static const char *const async_words[] = {
	[ASYNC_ANYBODY] = "anybody", [ASYNC_NOBODY] = "nobody",
	[ASYNC_AUTHENTICATED] = "authenticated",
	[ASYNC_UNAUTHENTICATED] = "unauthenticated",
	[ASYNC_CLIENTS] = "clients", [ASYNC_NONCLIENTS] = "non-clients", NULL,
};

static const char *const return_words[] = {
	[RETURN_HEADERS] = "headers", [RETURN_BODY] = "body",
	[RETURN_ALWAYS_HEADERS] = "always-headers",
	[RETURN_ALWAYS_BODY] = "always-body", NULL,
};

static const char *const receipts_words[] = {
	[RECEIPTS_EVERYBODY] = "everybody", [RECEIPTS_CLIENTS] = "clients",
	[RECEIPTS_AUTHENTICATED] = "authenticated",
	[RECEIPTS_NOBODY] = "nobody", NULL,
};

static const char *const direct_words[] = {
	[DIRECT_LOCAL] = "local", [DIRECT_NONE] = "none", NULL,
};

static const char *const mode_words[] = {
	[TRANSPORT_QUEUE] = "queue", [TRANSPORT_SYNC] = "sync", NULL,
};

/* [queue] retry: comma-separated durations, each > 0, at least one. */
static int
set_retry(struct pctx *p, const char *v)
{
	struct strv items = STRV_INIT;
	uint64_t *arr = NULL;
	int r;

	if ((r = config__split_list(p, v, &items)) < 0)
		goto out;
	if (items.n == 0) {
		r = config__why(p, "at least one retry interval is needed");
		goto out;
	}
	if ((arr = calloc(items.n, sizeof(*arr))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < items.n; i++)
		if ((r = config__get_duration(p, items.v[i], 1, &arr[i])) < 0)
			goto out;
	free(p->c->queue.retry_s);
	p->c->queue.retry_s = arr;
	p->c->queue.nretry = items.n;
	arr = NULL;
out:
	free(arr);
	strv_free(&items);
	return r;
}

/*
 * [smtp] listen (host:port, each once; empty = no listener) or
 * trusted-networks (CIDR networks; may be empty): the list replaces *dst.
 */
static int
set_addr_list(struct pctx *p, const char *v, bool listen, struct strv *dst)
{
	struct strv items = STRV_INIT, res = STRV_INIT;
	int r;

	if ((r = config__split_list(p, v, &items)) < 0)
		goto out;
	for (size_t i = 0; i < items.n; i++) {
		char *s;

		r = listen ? config__get_hostport(p, items.v[i], true, &s) :
			config__get_cidr(p, items.v[i], &s);
		if (r < 0)
			goto out;
		if (listen && strv_find(&res, s) >= 0) {
			r = config__why(p, "'%s' is listed twice", s);
			free(s);
			goto out;
		}
		if ((r = strv_push_take(&res, s)) < 0)
			goto out;
	}
	strv_free(dst);
	*dst = res;
	res = (struct strv)STRV_INIT;
out:
	strv_free(&items);
	strv_free(&res);
	return r;
}

/* A host:port value where empty means NULL (off). */
static int
set_hostport_opt(struct pctx *p, const char *v, bool need_port, char **dst)
{
	char *hp = NULL;
	int r;

	if (*v && (r = config__get_hostport(p, v, need_port, &hp)) < 0)
		return r;
	free(*dst);
	*dst = hp;
	return 0;
}

/* Transport domains: none may belong to another transport. */
static int
set_transport_domains(struct pctx *p, struct config_transport *t,
	const char *v)
{
	struct strv d = STRV_INIT;
	int r;

	if ((r = config__get_domains(p, v, &d)) < 0)
		goto out;
	if (d.n == 0) {
		r = config__why(p, "at least one domain is needed");
		goto out;
	}
	for (size_t i = 0; i < d.n; i++) {
		const struct config_transport *o =
			config_transport_for_domain(p->c, d.v[i]);

		if (o && o != t) {
			r = config__why(p, "domain '%s' already belongs to "
				"[transport %s]", d.v[i], o->name);
			goto out;
		}
	}
	strv_free(&t->domains);
	t->domains = d;
	d = (struct strv)STRV_INIT;
out:
	strv_free(&d);
	return r;
}

/* Apply one key of a transport section. */
int
config__apply_transport(struct pctx *p, enum key_id k, const char *v)
{
	struct config_transport *t = &p->c->transports[p->tidx];
	int r, w;

	switch (k) {
	case K_T_DOMAINS:
		return set_transport_domains(p, t, v);
	case K_T_COMMAND:
		if (*v == '\0')
			return config__why(p, "the command must not be empty");
		if (text_str_has_ctl(v))
			return config__why(p,
				"the command holds a control character");
		t->command_line = p->line;
		return config__set_str(&t->command, v);
	case K_T_MODE:
		if ((r = config__get_word(p, v, mode_words, &w)) < 0)
			return r;
		t->mode = (enum transport_mode)w;
		return 0;
	case K_T_TIME_LIMIT:
		return config__get_duration(p, v, 0, &t->time_limit_s);
	case K_T_OUTPUT:
		return config__get_path(p, v, &t->output_file);
	case K_T_ERROR:
		return config__get_path(p, v, &t->error_file);
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* [server]: host name and the two users. */
static int
apply_server(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;
	int r;

	switch (k) {
	case K_SERVER_HOSTNAME:
		if (!config__domain_valid(v))
			return config__why(p, "'%s' is not a host name", v);
		p->hostname_set = true;
		return config__set_str(&c->server.hostname, v);
	case K_SERVER_USER:
		if ((r = config__check_user(p, v, c->server.daemon_user,
		    "programs")) < 0)
			return r;
		return config__set_str(&c->server.user, v);
	case K_SERVER_DAEMON_USER:
		if ((r = config__check_user(p, v, c->server.user,
		    "the server")) < 0)
			return r;
		return config__set_str(&c->server.daemon_user, v);
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* [queue]: foldering, limit, lifetime, retries, directory fsync. */
static int
apply_queue(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;

	switch (k) {
	case K_QUEUE_FOLDERING:
		if (config__ascii_eq(v, "auto"))
			c->queue.foldering = FOLDERING_AUTO;
		else if (strcmp(v, "0") == 0 || strcmp(v, "10") == 0 ||
			 strcmp(v, "100") == 0)
			c->queue.foldering = atoi(v);
		else
			return config__why(p,
				"'%s' is not one of: 0, 10, 100, auto", v);
		return 0;
	case K_QUEUE_LIMIT:
		return config__get_int(p, v, 1, UINT64_MAX, &c->queue.limit);
	case K_QUEUE_MAX_LIFETIME:
		return config__get_duration(p, v, 1, &c->queue.max_lifetime_s);
	case K_QUEUE_RETRY:
		return set_retry(p, v);
	case K_QUEUE_DIRECTORY_FSYNC:
		if (config__ascii_eq(v, "auto") ||
		    config__ascii_eq(v, "always")) {
			c->queue.dir_fsync_always =
				config__ascii_eq(v, "always");
			return 0;
		}
		return config__why(p, "'%s' is not one of: auto, always", v);
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* [router]: the router file, local domains, hop limit. */
static int
apply_router(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;
	uint64_t n;
	int r;

	switch (k) {
	case K_ROUTER_FILE:
		if (*v == '\0')
			return config__why(p,
				"the router file must not be empty");
		return config__get_path(p, v, &c->router.file);
	case K_ROUTER_LOCAL_DOMAINS:
		p->local_domains_set = true;
		return config__get_domains(p, v, &c->router.local_domains);
	case K_ROUTER_HOP_LIMIT:
		if ((r = config__get_int(p, v, 1, 1000000, &n)) == 0)
			c->router.hop_limit = (unsigned)n;
		return r;
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* [pipe]: the PIPE module's programs. */
static int
apply_pipe(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;
	uint64_t n;
	int r, w;

	switch (k) {
	case K_PIPE_APP_DIR:
		if ((r = config__get_path(p, v, &c->pipe.app_dir)) == 0 &&
		    c->pipe.app_dir == NULL)
			r = config__set_str(&c->pipe.app_dir, "");
		return r;
	case K_PIPE_PROCESSORS:
		if ((r = config__get_int(p, v, 1, 1000, &n)) == 0)
			c->pipe.processors = (unsigned)n;
		return r;
	case K_PIPE_TIME_LIMIT:
		return config__get_duration(p, v, 1, &c->pipe.time_limit_s);
	case K_PIPE_STDERR_LIMIT:
		return config__get_size(p, v, 0, &c->pipe.stderr_limit);
	case K_PIPE_DIRECT:
		if ((r = config__get_word(p, v, direct_words, &w)) == 0)
			c->pipe.direct = (enum direct_policy)w;
		return r;
	case K_PIPE_PATH:
		if (*v == '\0')
			return config__why(p, "PATH must not be empty");
		if (text_str_has_ctl(v))
			return config__why(p, "PATH holds a control character");
		return config__set_str(&c->pipe.path_env, v);
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* [submitted] and [foreign-queue]: their scan intervals. */
static int
apply_scan(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;

	switch (k) {
	case K_SUBMITTED_SCAN:
		return config__get_duration(p, v, 1,
			&c->submitted.scan_interval_s);
	case K_FOREIGN_SCAN:
		return config__get_duration(p, v, 1,
			&c->foreign.scan_interval_s);
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* [smtp]: the listener and the relay client. */
static int
apply_smtp(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;
	uint64_t n;
	int r, w;

	switch (k) {
	case K_SMTP_LISTEN:
		return set_addr_list(p, v, true, &c->smtp.listen);
	case K_SMTP_ASYNC:
		if ((r = config__get_word(p, v, async_words, &w)) == 0)
			c->smtp.enqueue_async = (enum enqueue_async)w;
		return r;
	case K_SMTP_MAX_SIZE:
		return config__get_size(p, v, 1, &c->smtp.max_size);
	case K_SMTP_MAX_RCPT:
		if ((r = config__get_int(p, v, 1, 1000000, &n)) == 0)
			c->smtp.max_recipients = (unsigned)n;
		return r;
	case K_SMTP_MAX_CONN:
		if ((r = config__get_int(p, v, 1, 100000, &n)) == 0)
			c->smtp.max_connections = (unsigned)n;
		return r;
	case K_SMTP_MAX_CONN_CLIENT:
		if ((r = config__get_int(p, v, 0, 100000, &n)) == 0)
			c->smtp.max_connections_per_client = (unsigned)n;
		return r;
	case K_SMTP_IDLE:
		return config__get_duration(p, v, 1, &c->smtp.idle_timeout_s);
	case K_SMTP_DATA_TIMEOUT:
		return config__get_duration(p, v, 1, &c->smtp.data_timeout_s);
	case K_SMTP_MIN_RATE:
		return config__get_quantity(p, &config__q_size, v, 0,
			1024 * 1024 * 1024, &c->smtp.min_data_rate);
	case K_SMTP_MIN_RATE_GRACE:
		return config__get_duration(p, v, 1,
			&c->smtp.min_data_rate_grace_s);
	case K_SMTP_MAX_ERRORS:
		if ((r = config__get_int(p, v, 1, 1000, &n)) == 0)
			c->smtp.max_errors = (unsigned)n;
		return r;
	case K_SMTP_MAX_JUNK:
		if ((r = config__get_int(p, v, 1, 100000, &n)) == 0)
			c->smtp.max_junk_commands = (unsigned)n;
		return r;
	case K_SMTP_RELAY_CONN:
		if ((r = config__get_int(p, v, 1, 100, &n)) == 0)
			c->smtp.relay_connections = (unsigned)n;
		return r;
	case K_SMTP_RELAY_TIMEOUT:
		return config__get_duration(p, v, 1, &c->smtp.relay_timeout_s);
	case K_SMTP_RELAY_IDLE:
		return config__get_quantity(p, &config__q_duration, v, 0, 3600,
			&c->smtp.relay_idle_timeout_s);
	case K_SMTP_TRUSTED:
		return set_addr_list(p, v, false,
			&c->smtp.trusted_networks);
	case K_SMTP_RELAY:
		return set_hostport_opt(p, v, false, &c->smtp.relay_host);
	case K_SMTP_TLS_CERT:
		return config__get_path(p, v, &c->smtp.tls_cert);
	case K_SMTP_TLS_KEY:
		return config__get_path(p, v, &c->smtp.tls_key);
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* [reports]: delivery reports. */
static int
apply_reports(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;
	int r, w;

	switch (k) {
	case K_REPORTS_DELAY:
		return config__get_duration(p, v, 0,
			&c->reports.reporting_delay_s);
	case K_REPORTS_RETURN:
		if ((r = config__get_word(p, v, return_words, &w)) == 0)
			c->reports.ret = (enum reports_return)w;
		return r;
	case K_REPORTS_COPY:
		if (*v && (r = config__check_address(p, v)) < 0)
			return r;
		return config__set_str(&c->reports.copy_failure_reports,
			*v ? v : NULL);
	case K_REPORTS_RECEIPTS:
		if ((r = config__get_word(p, v, receipts_words, &w)) == 0)
			c->reports.return_receipts = (enum return_receipts)w;
		return r;
	case K_REPORTS_WARNING:
		return config__get_duration(p, v, 0,
			&c->reports.delay_warning_s);
	case K_REPORTS_SIZE_LIMIT:
		return config__get_size(p, v, 0,
			&c->reports.return_size_limit);
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* [monitor]: the web monitor. */
static int
apply_monitor(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;

	switch (k) {
	case K_MONITOR_HTTP:
		return set_hostport_opt(p, v, true, &c->monitor.http_listen);
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* [log]: levels, all at once or per component. */
static int
apply_log(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;
	int r;

	if (k >= K_LOG_COMP0 && k < K_LOG_COMP0 + LOG_NCOMP)
		return config__get_level(p, v, &c->log.level[k - K_LOG_COMP0]);
	switch (k) {
	case K_LOG_LEVEL: {
		enum log_level l;

		if ((r = config__get_level(p, v, &l)) == 0)
			p->log_all = (int)l;
		return r;
	}
	default:
		return config__why(p, "internal error: key %d", (int)k);
	}
}

/* The key appliers of the fixed sections, by section. */
static int (*const appliers[S_TRANSPORT])(struct pctx *, enum key_id,
	const char *) = {
	[S_SERVER] = apply_server, [S_QUEUE] = apply_queue,
	[S_ROUTER] = apply_router, [S_PIPE] = apply_pipe,
	[S_SUBMITTED] = apply_scan, [S_FOREIGN] = apply_scan,
	[S_SMTP] = apply_smtp, [S_REPORTS] = apply_reports,
	[S_MONITOR] = apply_monitor, [S_LOG] = apply_log,
};

/* Apply one key = value of a fixed section to the config. */
int
config__apply(struct pctx *p, enum key_id k, const char *v)
{
	if (p->sect < 0 || p->sect >= S_TRANSPORT)
		return config__why(p, "internal error: key %d", (int)k);
	return appliers[p->sect](p, k, v);
}

