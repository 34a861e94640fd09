/*
 * config: owns the INI syntax of mailpipe.conf, the built-in defaults and
 * the syntax of every value (durations, sizes, enums, lists, addresses).
 * Promises that every rejected file gets -EINVAL and one malloc'ed
 * "FILE:LINE: message", and that a struct config is always safe to free.
 * Never touches the system beyond reading the one file (no user or host
 * look-ups), never truncates a line or a value, never exits. This file:
 * the defaults, loading the file, freeing, the domain look-ups; the
 * syntax is in config_ini.c, the values in config_value.c and
 * config_apply.c (config_int.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"
#include "strv.h"

/* Largest configuration file read. */
#define CONFIG_FILE_MAX (1024 * 1024)

static const uint64_t default_retry[] = { 300, 900, 1800, 3600, 7200, 14400 };

/* Fill c with the built-in defaults. */
int
config_defaults(struct config *c, const char *base_dir, const char *hostname)
{
	static const char *const trusted[] = { "127.0.0.0/8", "::1/128" };
	char *d;
	int r = -ENOMEM;

	memset(c, 0, sizeof(*c));
	if (base_dir == NULL)
		return -EINVAL;
	if (hostname == NULL || hostname[0] == '\0')
		hostname = "localhost";
	c->queue.foldering = FOLDERING_AUTO;
	c->queue.limit = 100000;
	c->queue.max_lifetime_s = 5 * 86400;
	c->queue.nretry = sizeof(default_retry) / sizeof(default_retry[0]);
	c->router.hop_limit = 30;
	c->pipe.processors = 10;
	c->pipe.time_limit_s = 600;
	c->pipe.stderr_limit = 64 * 1024;
	c->pipe.direct = DIRECT_LOCAL;
	c->submitted.scan_interval_s = 10;
	c->foreign.scan_interval_s = 180;
	c->smtp.enqueue_async = ASYNC_NOBODY;
	c->smtp.max_size = 50 * 1024 * 1024;
	c->smtp.max_recipients = 1000;
	c->smtp.max_connections = 100;
	c->smtp.max_connections_per_client = 20;
	c->smtp.idle_timeout_s = 300;
	c->smtp.data_timeout_s = 600;
	c->smtp.min_data_rate = 1024;
	c->smtp.min_data_rate_grace_s = 30;
	c->smtp.max_errors = 10;
	c->smtp.max_junk_commands = 100;
	c->smtp.relay_connections = 2;
	c->smtp.relay_timeout_s = 300;
	c->smtp.relay_idle_timeout_s = 5;
	c->reports.reporting_delay_s = 0;
	c->reports.ret = RETURN_BODY;
	c->reports.return_receipts = RECEIPTS_EVERYBODY;
	c->reports.delay_warning_s = 4 * 3600;
	c->reports.return_size_limit = 50 * 1024;
	for (int i = 0; i < LOG_NCOMP; i++)
		c->log.level[i] = LOG_MAJOR;

	if ((c->base_dir = strdup(base_dir)) == NULL ||
	    (c->server.hostname = strdup(hostname)) == NULL ||
	    (c->server.user = strdup("mailpipe")) == NULL ||
	    (c->server.daemon_user = strdup("mailpiped")) == NULL ||
	    (c->queue.retry_s = malloc(sizeof(default_retry))) == NULL ||
	    config__path_join(base_dir, "router", &c->router.file) < 0 ||
	    config__path_join(base_dir, "apps", &c->pipe.app_dir) < 0 ||
	    (c->pipe.path_env = strdup("/usr/local/bin:/usr/bin:/bin")) ==
		NULL ||
	    (c->monitor.http_listen = strdup("127.0.0.1:8025")) == NULL ||
	    strv_push(&c->smtp.listen, "127.0.0.1:25") < 0)
		goto fail;
	memcpy(c->queue.retry_s, default_retry, sizeof(default_retry));
	for (size_t i = 0; i < 2; i++)
		if (strv_push(&c->smtp.trusted_networks, trusted[i]) < 0)
			goto fail;
	if ((d = config__lower_dup(hostname)) == NULL ||
	    strv_push_take(&c->router.local_domains, d) < 0)
		goto fail;
	return 0;
fail:
	config_free(c);
	return r;
}

/* Read the whole file (at most CONFIG_FILE_MAX bytes) into b. */
static int
read_file(const char *path, struct buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), r;

	if (fd < 0)
		return -errno;
	r = buf_read_fd(b, fd, CONFIG_FILE_MAX);
	close(fd);
	return r;
}

/* Defaults, then the file (path NULL: BASE/mailpipe.conf, may be absent). */
int
config_load(struct config *c, const char *base_dir, const char *path,
	const char *hostname, char **err)
{
	struct buf text = BUF_INIT, msg = BUF_INIT;
	char *file = NULL;
	int r;

	*err = NULL;
	if ((r = config_defaults(c, base_dir, hostname)) < 0)
		return r;
	if (path)
		file = strdup(path);
	else
		config__path_join(base_dir, "mailpipe.conf", &file);
	if (file == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = read_file(file, &text);
	if (r == -ENOENT && path == NULL) {
		r = 0;
		goto out;
	}
	if (r == -EFBIG) {
		if (buf_printf(&msg, "%s: file is larger than 1 MiB", file) == 0)
			buf_steal(&msg, err);
		goto out;
	}
	if (r < 0) {
		const char *e = strerrordesc_np(-r);

		if (buf_printf(&msg, "%s: %s", file, e ? e : "cannot read") ==
		    0)
			buf_steal(&msg, err);
		goto out;
	}
	r = config_parse(c, text.data ? text.data : "", text.len, file, err);
	if (r == 0) {
		c->file = file;
		file = NULL;
	}
out:
	if (r < 0)
		config_free(c);
	free(file);
	buf_free(&text);
	buf_free(&msg);
	return r;
}

/* Free one transport's contents. */
static void
transport_free(struct config_transport *t)
{
	free(t->name);
	strv_free(&t->domains);
	free(t->command);
	free(t->output_file);
	free(t->error_file);
	code_map_free(&t->codes);
}

/* Release everything c owns; c is left zeroed. */
void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->base_dir);
	free(c->file);
	free(c->server.hostname);
	free(c->server.user);
	free(c->server.daemon_user);
	free(c->queue.retry_s);
	free(c->router.file);
	strv_free(&c->router.local_domains);
	free(c->pipe.app_dir);
	free(c->pipe.path_env);
	for (size_t i = 0; i < c->ntransports; i++)
		transport_free(&c->transports[i]);
	free(c->transports);
	strv_free(&c->smtp.listen);
	strv_free(&c->smtp.trusted_networks);
	free(c->smtp.relay_host);
	free(c->smtp.tls_cert);
	free(c->smtp.tls_key);
	free(c->reports.copy_failure_reports);
	free(c->monitor.http_listen);
	memset(c, 0, sizeof(*c));
}

/* Transport whose domains hold domain (ASCII case-insensitive), or NULL. */
const struct config_transport *
config_transport_for_domain(const struct config *c, const char *domain)
{
	if (c == NULL || domain == NULL)
		return NULL;
	for (size_t i = 0; i < c->ntransports; i++)
		for (size_t j = 0; j < c->transports[i].domains.n; j++)
			if (config__ascii_eq(c->transports[i].domains.v[j],
			    domain))
				return &c->transports[i];
	return NULL;
}

/* Is domain a local domain or a transport domain? */
bool
config_is_local_domain(const struct config *c, const char *domain)
{
	if (c == NULL || domain == NULL)
		return false;
	for (size_t i = 0; i < c->router.local_domains.n; i++)
		if (config__ascii_eq(c->router.local_domains.v[i], domain))
			return true;
	return config_transport_for_domain(c, domain) != NULL;
}
