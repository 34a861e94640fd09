/*
 * config: owns the INI syntax of mailpipe.conf, the built-in defaults and
 * the syntax of every value (durations, sizes, enums, lists, addresses).
 * Promises that every rejected file gets -EINVAL and one malloc'ed
 * "FILE:LINE: message", and that a struct config is always safe to free.
 * Never touches the system beyond reading the one file (no user or host
 * look-ups), never truncates a line or a value, never exits.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Largest duration accepted: 36500 days (fits an unsigned int too). */
#define DURATION_MAX (36500ULL * 86400ULL)
/* Largest configuration file read. */
#define CONFIG_FILE_MAX (1024 * 1024)

enum sect {
	S_SERVER, S_QUEUE, S_ROUTER, S_PIPE, S_SUBMITTED, S_FOREIGN, S_SMTP,
	S_REPORTS, S_MONITOR, S_LOG, S_TRANSPORT, NSECT
};

static const char *const sect_names[NSECT] = {
	"server", "queue", "router", "pipe", "submitted", "foreign-queue",
	"smtp", "reports", "monitor", "log", "transport",
};

enum key_id {
	K_SERVER_HOSTNAME, K_SERVER_USER, K_SERVER_DAEMON_USER,
	K_QUEUE_FOLDERING, K_QUEUE_LIMIT, K_QUEUE_MAX_LIFETIME, K_QUEUE_RETRY,
	K_QUEUE_DIRECTORY_FSYNC,
	K_ROUTER_FILE, K_ROUTER_LOCAL_DOMAINS, K_ROUTER_HOP_LIMIT,
	K_PIPE_APP_DIR, K_PIPE_PROCESSORS, K_PIPE_TIME_LIMIT,
	K_PIPE_STDERR_LIMIT, K_PIPE_DIRECT, K_PIPE_PATH,
	K_SUBMITTED_SCAN, K_FOREIGN_SCAN,
	K_SMTP_LISTEN, K_SMTP_ASYNC, K_SMTP_MAX_SIZE, K_SMTP_MAX_RCPT,
	K_SMTP_MAX_CONN, K_SMTP_MAX_CONN_CLIENT, K_SMTP_IDLE,
	K_SMTP_DATA_TIMEOUT, K_SMTP_MIN_RATE, K_SMTP_MIN_RATE_GRACE,
	K_SMTP_MAX_ERRORS, K_SMTP_MAX_JUNK,
	K_SMTP_RELAY_CONN, K_SMTP_RELAY_TIMEOUT, K_SMTP_RELAY_IDLE,
	K_SMTP_TRUSTED, K_SMTP_RELAY, K_SMTP_TLS_CERT, K_SMTP_TLS_KEY,
	K_REPORTS_DELAY, K_REPORTS_RETURN, K_REPORTS_COPY, K_REPORTS_RECEIPTS,
	K_REPORTS_WARNING,
	K_MONITOR_HTTP,
	K_LOG_LEVEL,
	K_LOG_COMP0,	/* one per enum log_comp, in that order */
	K_T_DOMAINS = K_LOG_COMP0 + LOG_NCOMP, K_T_COMMAND, K_T_MODE,
	K_T_TIME_LIMIT, K_T_OUTPUT, K_T_ERROR,
	NKEYS
};

static const struct {
	enum sect sect;
	const char *name;
} key_defs[NKEYS] = {
	[K_SERVER_HOSTNAME] = { S_SERVER, "hostname" },
	[K_SERVER_USER] = { S_SERVER, "user" },
	[K_SERVER_DAEMON_USER] = { S_SERVER, "daemon-user" },
	[K_QUEUE_FOLDERING] = { S_QUEUE, "foldering" },
	[K_QUEUE_LIMIT] = { S_QUEUE, "limit" },
	[K_QUEUE_MAX_LIFETIME] = { S_QUEUE, "max-lifetime" },
	[K_QUEUE_RETRY] = { S_QUEUE, "retry" },
	[K_QUEUE_DIRECTORY_FSYNC] = { S_QUEUE, "directory-fsync" },
	[K_ROUTER_FILE] = { S_ROUTER, "file" },
	[K_ROUTER_LOCAL_DOMAINS] = { S_ROUTER, "local-domains" },
	[K_ROUTER_HOP_LIMIT] = { S_ROUTER, "hop-limit" },
	[K_PIPE_APP_DIR] = { S_PIPE, "app-dir" },
	[K_PIPE_PROCESSORS] = { S_PIPE, "processors" },
	[K_PIPE_TIME_LIMIT] = { S_PIPE, "time-limit" },
	[K_PIPE_STDERR_LIMIT] = { S_PIPE, "stderr-limit" },
	[K_PIPE_DIRECT] = { S_PIPE, "direct" },
	[K_PIPE_PATH] = { S_PIPE, "path" },
	[K_SUBMITTED_SCAN] = { S_SUBMITTED, "scan-interval" },
	[K_FOREIGN_SCAN] = { S_FOREIGN, "scan-interval" },
	[K_SMTP_LISTEN] = { S_SMTP, "listen" },
	[K_SMTP_ASYNC] = { S_SMTP, "enqueue-async" },
	[K_SMTP_MAX_SIZE] = { S_SMTP, "max-size" },
	[K_SMTP_MAX_RCPT] = { S_SMTP, "max-recipients" },
	[K_SMTP_MAX_CONN] = { S_SMTP, "max-connections" },
	[K_SMTP_MAX_CONN_CLIENT] = { S_SMTP, "max-connections-per-client" },
	[K_SMTP_IDLE] = { S_SMTP, "idle-timeout" },
	[K_SMTP_DATA_TIMEOUT] = { S_SMTP, "data-timeout" },
	[K_SMTP_MIN_RATE] = { S_SMTP, "min-data-rate" },
	[K_SMTP_MIN_RATE_GRACE] = { S_SMTP, "min-data-rate-grace" },
	[K_SMTP_MAX_ERRORS] = { S_SMTP, "max-errors" },
	[K_SMTP_MAX_JUNK] = { S_SMTP, "max-junk-commands" },
	[K_SMTP_RELAY_CONN] = { S_SMTP, "relay-connections" },
	[K_SMTP_RELAY_TIMEOUT] = { S_SMTP, "relay-timeout" },
	[K_SMTP_RELAY_IDLE] = { S_SMTP, "relay-idle-timeout" },
	[K_SMTP_TRUSTED] = { S_SMTP, "trusted-networks" },
	[K_SMTP_RELAY] = { S_SMTP, "relay-host" },
	[K_SMTP_TLS_CERT] = { S_SMTP, "tls-cert" },
	[K_SMTP_TLS_KEY] = { S_SMTP, "tls-key" },
	[K_REPORTS_DELAY] = { S_REPORTS, "reporting-delay" },
	[K_REPORTS_RETURN] = { S_REPORTS, "return" },
	[K_REPORTS_COPY] = { S_REPORTS, "copy-failure-reports" },
	[K_REPORTS_RECEIPTS] = { S_REPORTS, "return-receipts" },
	[K_REPORTS_WARNING] = { S_REPORTS, "delay-warning" },
	[K_MONITOR_HTTP] = { S_MONITOR, "http-listen" },
	[K_LOG_LEVEL] = { S_LOG, "level" },
	[K_LOG_COMP0 + LOG_SYSTEM] = { S_LOG, "system" },
	[K_LOG_COMP0 + LOG_PIPE] = { S_LOG, "pipe" },
	[K_LOG_COMP0 + LOG_ENQUEUER] = { S_LOG, "enqueuer" },
	[K_LOG_COMP0 + LOG_DEQUEUER] = { S_LOG, "dequeuer" },
	[K_LOG_COMP0 + LOG_SMTPI] = { S_LOG, "smtpi" },
	[K_LOG_COMP0 + LOG_SMTP] = { S_LOG, "smtp" },
	[K_LOG_COMP0 + LOG_SUBMIT] = { S_LOG, "submit" },
	[K_LOG_COMP0 + LOG_QUEUE] = { S_LOG, "queue" },
	[K_T_DOMAINS] = { S_TRANSPORT, "domains" },
	[K_T_COMMAND] = { S_TRANSPORT, "command" },
	[K_T_MODE] = { S_TRANSPORT, "mode" },
	[K_T_TIME_LIMIT] = { S_TRANSPORT, "time-limit" },
	[K_T_OUTPUT] = { S_TRANSPORT, "output-file" },
	[K_T_ERROR] = { S_TRANSPORT, "error-file" },
};

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

static const uint64_t default_retry[] = { 300, 900, 1800, 3600, 7200, 14400 };

/* The state of one config_parse call. */
struct pctx {
	struct config *c;
	const char *file;
	unsigned line;
	char **err;
	struct buf why;		/* reason a value was refused */
	int sect;		/* enum sect, or -1 before any section */
	size_t tidx;		/* current transport when sect is S_TRANSPORT */
	unsigned seen[NKEYS];	/* line where a key was set, 0 = not yet */
	unsigned code_seen[256];	/* same for code.N of the transport */
	int log_all;		/* [log] level, or -1 */
	bool hostname_set;
	bool local_domains_set;
};

/* Is ch a space or a tab? */
static bool
is_ws(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* ASCII lower-case of ch. */
static char
lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* ASCII case-insensitive string equality. */
static bool
ascii_eq(const char *a, const char *b)
{
	while (*a && lower(*a) == lower(*b)) {
		a++;
		b++;
	}
	return lower(*a) == lower(*b);
}

/* Index of v in the NULL-terminated words (case-insensitive), or -1. */
static int
word_index(const char *v, const char *const *words)
{
	for (int i = 0; words[i]; i++)
		if (ascii_eq(v, words[i]))
			return i;
	return -1;
}

/* Strict unsigned decimal: digits only, at least one, no overflow. */
static int
parse_u64(const char *s, uint64_t *out, const char **end)
{
	uint64_t n = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (UINT64_MAX - d) / 10)
			return -ERANGE;
		n = n * 10 + d;
	}
	*out = n;
	if (end)
		*end = p;
	else if (*p)
		return -EINVAL;
	return 0;
}

/* A unit letter and what it multiplies by. */
struct unit {
	char letter;		/* lower case; upper case is accepted too */
	uint64_t mul;
};

static const struct unit duration_units[] = {
	{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 0, 0 },
};

static const struct unit size_units[] = {
	{ 'k', 1024 }, { 'm', 1024 * 1024 }, { 'g', 1024 * 1024 * 1024 },
	{ 0, 0 },
};

/* A number with an optional unit letter from units, at most max. */
static int
parse_scaled(const char *s, const struct unit *units, uint64_t max,
	uint64_t *out)
{
	uint64_t n, mul = 1;
	const char *end;
	int r;

	if (s == NULL)
		return -EINVAL;
	if ((r = parse_u64(s, &n, &end)) < 0)
		return r;
	if (*end != '\0') {
		const struct unit *u = units;

		while (u->letter && u->letter != (*end | 0x20))
			u++;
		if (u->letter == 0 || end[1] != '\0')
			return -EINVAL;
		mul = u->mul;
	}
	if (n > max / mul)
		return -ERANGE;
	*out = n * mul;
	return 0;
}

/* "30s", "10m", "2h", "3d", bare number = seconds. */
int
config_parse_duration(const char *s, uint64_t *secs)
{
	return parse_scaled(s, duration_units, DURATION_MAX, secs);
}

/* "64k", "10m", "1g", bare number = bytes (k = 1024). */
int
config_parse_size(const char *s, uint64_t *bytes)
{
	return parse_scaled(s, size_units, UINT64_MAX, bytes);
}

/* Is s a domain name: dot-separated labels of letters, digits, '-'? */
static bool
domain_valid(const char *s)
{
	size_t total = strlen(s), label = 0;

	if (total == 0 || total > 253)
		return false;
	for (const char *p = s; ; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || label > 63 || p[-1] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || (*p == '-' && label > 0)))
			return false;
		label++;
	}
}

/* Is s 1-64 characters of [A-Za-z0-9_-] (a transport name)? */
static bool
name_valid(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* Does s hold a control character? */
static bool
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Lower-cased copy of s, or NULL. */
static char *
lower_dup(const char *s)
{
	char *d = mp_strdup(s);

	for (char *p = d; p && *p; p++)
		*p = lower(*p);
	return d;
}

/* Replace *dst by a copy of s (NULL allowed). */
static int
set_str(char **dst, const char *s)
{
	char *d = NULL;

	if (s && (d = strdup(s)) == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

/* base/rel, or rel itself when absolute; into *out. */
static int
path_join(const char *base, const char *rel, char **out)
{
	struct buf b = BUF_INIT;
	int r;

	if (rel[0] == '/' || base == NULL || base[0] == '\0')
		r = buf_puts(&b, rel);
	else
		r = buf_printf(&b, "%s%s%s", base,
			base[strlen(base) - 1] == '/' ? "" : "/", rel);
	if (r == 0)
		r = buf_steal(&b, out);
	buf_free(&b);
	return r;
}

/* Set the reason of a refused value; returns -EINVAL (or -ENOMEM). */
static int __attribute__((format(printf, 2, 3)))
why(struct pctx *p, const char *fmt, ...)
{
	va_list ap;
	int r;

	buf_reset(&p->why);
	va_start(ap, fmt);
	r = buf_vprintf(&p->why, fmt, ap);
	va_end(ap);
	return r < 0 ? r : -EINVAL;
}

/* Report "FILE:LINE: message" through *err; returns -EINVAL. */
static int __attribute__((format(printf, 3, 4)))
perr_at(struct pctx *p, unsigned line, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int r;

	r = buf_printf(&b, "%s:%u: ", p->file, line);
	if (r == 0) {
		va_start(ap, fmt);
		r = buf_vprintf(&b, fmt, ap);
		va_end(ap);
	}
	free(*p->err);
	*p->err = NULL;
	if (r == 0)
		r = buf_steal(&b, p->err);
	buf_free(&b);
	return r < 0 ? r : -EINVAL;
}

/* Split a comma-separated list into trimmed items; empty text = none. */
static int
split_list(struct pctx *p, const char *v, struct strv *out)
{
	const char *s = v;
	int r;

	while (is_ws(*s))
		s++;
	if (*s == '\0')
		return 0;
	for (;;) {
		const char *comma = strchr(s, ',');
		const char *e = comma ? comma : s + strlen(s);
		const char *b = s;

		while (b < e && is_ws(*b))
			b++;
		while (e > b && is_ws(e[-1]))
			e--;
		if (e == b)
			return why(p, "empty item in the list");
		if ((r = strv_pushn(out, b, (size_t)(e - b))) < 0)
			return r;
		if (comma == NULL)
			return 0;
		s = comma + 1;
	}
}

/* How a quantity with a unit (a duration, a size) is parsed and named. */
struct quantity {
	const char *kind;	/* "duration", "size" */
	int (*parse)(const char *, uint64_t *);
	const char *limit;	/* the largest value, for the error */
	const char *examples;	/* for "is not a ..." */
	const char *unit;	/* after a number in errors: "s", " bytes" */
};

static const struct quantity q_duration = {
	"duration", config_parse_duration, " (at most 36500d)",
	"30s, 10m, 2h, 3d; a bare number is seconds", "s"
};

static const struct quantity q_size = {
	"size", config_parse_size, "",
	"64k, 10m, 1g; a bare number is bytes", " bytes"
};

/* A quantity from min to max (in its unit), with errors naming it. */
static int
get_quantity(struct pctx *p, const struct quantity *q, const char *v,
	uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t n;
	int r = q->parse(v, &n);

	if (r == -ERANGE)
		return why(p, "%s '%s' is too large%s", q->kind, v, q->limit);
	if (r < 0)
		return why(p, "'%s' is not a %s (examples: %s)", v, q->kind,
			q->examples);
	if (n < min)
		return why(p, "%s '%s' is below the minimum of %llu%s",
			q->kind, v, (unsigned long long)min, q->unit);
	if (n > max)
		return why(p, "%s '%s' is above the maximum of %llu%s",
			q->kind, v, (unsigned long long)max, q->unit);
	*out = n;
	return 0;
}

/* A duration value, refusing values below min. */
static int
get_duration(struct pctx *p, const char *v, uint64_t min, uint64_t *out)
{
	return get_quantity(p, &q_duration, v, min, UINT64_MAX, out);
}

/* A size value, refusing values below min. */
static int
get_size(struct pctx *p, const char *v, uint64_t min, uint64_t *out)
{
	return get_quantity(p, &q_size, v, min, UINT64_MAX, out);
}

/* An integer value in min..max. */
static int
get_int(struct pctx *p, const char *v, uint64_t min, uint64_t max,
	uint64_t *out)
{
	uint64_t n;

	if (parse_u64(v, &n, NULL) < 0 || n < min || n > max)
		return why(p, "'%s' is not a whole number from %llu to %llu", v,
			(unsigned long long)min, (unsigned long long)max);
	*out = n;
	return 0;
}

/* One of the words (case-insensitive). */
static int
get_word(struct pctx *p, const char *v, const char *const *words, int *out)
{
	struct buf list = BUF_INIT;
	int i = word_index(v, words), r;

	if (i >= 0) {
		*out = i;
		return 0;
	}
	for (int k = 0; words[k]; k++)
		if ((r = buf_printf(&list, "%s%s", k ? ", " : "",
			words[k])) < 0) {
			buf_free(&list);
			return r;
		}
	r = why(p, "'%s' is not one of: %s", v, list.data);
	buf_free(&list);
	return r;
}

/* A log level name. */
static int
get_level(struct pctx *p, const char *v, enum log_level *out)
{
	if (log_level_parse(v, out) < 0)
		return why(p, "'%s' is not a log level (none, failures, major, "
			"problems, low-level, all)", v);
	return 0;
}

/* A path, resolved against the base directory; empty -> *out = NULL. */
static int
get_path(struct pctx *p, const char *v, char **out)
{
	char *s = NULL;
	int r;

	if (has_control(v))
		return why(p, "path holds a control character");
	if (*v && (r = path_join(p->c->base_dir, v, &s)) < 0)
		return r;
	free(*out);
	*out = s;
	return 0;
}

/* A list of domain names, lower-cased, duplicates dropped. */
static int
get_domains(struct pctx *p, const char *v, struct strv *out)
{
	struct strv items = STRV_INIT, res = STRV_INIT;
	int r;

	if ((r = split_list(p, v, &items)) < 0)
		goto out;
	for (size_t i = 0; i < items.n; i++) {
		char *d;

		if (!domain_valid(items.v[i])) {
			r = why(p, "'%s' is not a domain name", items.v[i]);
			goto out;
		}
		if ((d = lower_dup(items.v[i])) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		if (strcmp(d, "pipe") == 0) {
			free(d);
			r = why(p, "the domain 'pipe' is reserved for pipe "
				"addresses");
			goto out;
		}
		if (strv_find(&res, d) >= 0)
			free(d);
		else if ((r = strv_push_take(&res, d)) < 0)
			goto out;
	}
	strv_free(out);
	*out = res;
	res = (struct strv)STRV_INIT;
out:
	strv_free(&items);
	strv_free(&res);
	return r;
}

/* "host:port" (need_port) or "host[:port]" (port 25) -> normalized. */
static int
get_hostport(struct pctx *p, const char *v, bool need_port, char **out)
{
	const char *host = v, *hend, *rest;
	uint64_t port = 25;
	char *h = NULL;
	int r = 0;
	unsigned char addr[16];

	if (*v == '[') {
		host = v + 1;
		if ((hend = strchr(host, ']')) == NULL)
			return why(p, "'%s': missing ']'", v);
		rest = hend + 1;
	} else {
		const char *colon = strchr(v, ':');

		if (colon && strchr(colon + 1, ':'))
			return why(p, "'%s': write an IPv6 address in "
				"brackets, as [ADDRESS]:PORT", v);
		hend = colon ? colon : v + strlen(v);
		rest = hend;
	}
	if (hend == host)
		return why(p, "'%s': missing host", v);
	if ((h = mp_strndup(host, (size_t)(hend - host))) == NULL)
		return -ENOMEM;
	if (*v == '[') {
		if (inet_pton(AF_INET6, h, addr) != 1)
			r = why(p, "'%s': bad IPv6 address", v);
	} else if (strspn(h, "0123456789.") == strlen(h)) {
		if (inet_pton(AF_INET, h, addr) != 1)
			r = why(p, "'%s': bad IPv4 address", v);
	} else if (!domain_valid(h)) {
		r = why(p, "'%s': bad host name", v);
	}
	free(h);
	if (r < 0)
		return r;
	if (*rest == '\0') {
		if (need_port)
			return why(p, "'%s': missing ':PORT'", v);
	} else if (*rest != ':' || parse_u64(rest + 1, &port, NULL) < 0 ||
		   port < 1 || port > 65535) {
		return why(p, "'%s': bad port (1-65535 after ':')", v);
	}
	struct buf b = BUF_INIT;

	r = buf_printf(&b, "%.*s:%u", (int)(rest - v), v, (unsigned)port);
	if (r == 0)
		r = buf_steal(&b, out);
	buf_free(&b);
	return r;
}

/* A CIDR network "ADDR/LEN" or a bare address -> "ADDR/LEN" normalized. */
static int
get_cidr(struct pctx *p, const char *v, char **out)
{
	const char *slash = strchr(v, '/');
	size_t alen = slash ? (size_t)(slash - v) : strlen(v);
	unsigned char addr[16];
	char text[INET6_ADDRSTRLEN];
	uint64_t len;
	char *a;
	int af, r;

	if ((a = mp_strndup(v, alen)) == NULL)
		return -ENOMEM;
	af = strchr(a, ':') ? AF_INET6 : AF_INET;
	r = inet_pton(af, a, addr);
	free(a);
	if (r != 1)
		return why(p, "'%s': bad IP address", v);
	if (slash == NULL)
		len = af == AF_INET ? 32 : 128;
	else if (parse_u64(slash + 1, &len, NULL) < 0 ||
		 len > (af == AF_INET ? 32U : 128U))
		return why(p, "'%s': bad prefix length (0-%d after '/')", v,
			af == AF_INET ? 32 : 128);
	if (inet_ntop(af, addr, text, sizeof(text)) == NULL)
		return -errno;

	struct buf b = BUF_INIT;

	r = buf_printf(&b, "%s/%u", text, (unsigned)len);
	if (r == 0)
		r = buf_steal(&b, out);
	buf_free(&b);
	return r;
}

/* A mail address "local@domain" with a dot-atom local part. */
static int
check_address(struct pctx *p, const char *v)
{
	static const char atext[] = "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~";
	const char *at = strrchr(v, '@');
	size_t n = at ? (size_t)(at - v) : 0;

	if (at == NULL || n == 0 || n > 64 || v[0] == '.' || at[-1] == '.')
		return why(p, "'%s' is not a mail address (local@domain)", v);
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '.' ? v[i + 1] == '.' : strchr(atext, v[i]) == NULL)
			return why(p, "'%s' is not a mail address "
				"(local@domain)", v);
	}
	if (!domain_valid(at + 1))
		return why(p, "'%s': bad domain", v);
	return 0;
}

/*
 * [server] user and daemon-user: a user name or uid, never root, never the
 * other one (other: the other key's value; role: what runs as v).
 */
static int
check_user(struct pctx *p, const char *v, const char *other,
	const char *role)
{
	uint64_t uid;

	if (*v == '\0')
		return why(p, "empty user name");
	if (strcmp(v, "root") == 0 || (parse_u64(v, &uid, NULL) == 0 &&
	    uid == 0))
		return why(p, "%s must not run as root", role);
	if (other && strcmp(v, other) == 0)
		return why(p, "'%s' is already the %s: [server] user (programs) "
		    "and daemon-user (the server) must differ", v,
		    strcmp(role, "programs") == 0 ? "daemon-user" : "user");
	if (v[0] == '-' || strspn(v, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(v))
		return why(p, "'%s' is not a user name", v);
	return 0;
}

/* [queue] retry: comma-separated durations, each > 0, at least one. */
static int
set_retry(struct pctx *p, const char *v)
{
	struct strv items = STRV_INIT;
	uint64_t *arr = NULL;
	int r;

	if ((r = split_list(p, v, &items)) < 0)
		goto out;
	if (items.n == 0) {
		r = why(p, "at least one retry interval is needed");
		goto out;
	}
	if ((arr = calloc(items.n, sizeof(*arr))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < items.n; i++)
		if ((r = get_duration(p, items.v[i], 1, &arr[i])) < 0)
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

/* [smtp] listen: list of host:port, empty = no listener. */
static int
set_listen(struct pctx *p, const char *v)
{
	struct strv items = STRV_INIT, res = STRV_INIT;
	int r;

	if ((r = split_list(p, v, &items)) < 0)
		goto out;
	for (size_t i = 0; i < items.n; i++) {
		char *hp;

		if ((r = get_hostport(p, items.v[i], true, &hp)) < 0)
			goto out;
		if (strv_find(&res, hp) >= 0) {
			r = why(p, "'%s' is listed twice", hp);
			free(hp);
			goto out;
		}
		if ((r = strv_push_take(&res, hp)) < 0)
			goto out;
	}
	strv_free(&p->c->smtp.listen);
	p->c->smtp.listen = res;
	res = (struct strv)STRV_INIT;
out:
	strv_free(&items);
	strv_free(&res);
	return r;
}

/* [smtp] trusted-networks: list of CIDR networks (may be empty). */
static int
set_trusted(struct pctx *p, const char *v)
{
	struct strv items = STRV_INIT, res = STRV_INIT;
	int r;

	if ((r = split_list(p, v, &items)) < 0)
		goto out;
	for (size_t i = 0; i < items.n; i++) {
		char *net;

		if ((r = get_cidr(p, items.v[i], &net)) < 0)
			goto out;
		if ((r = strv_push_take(&res, net)) < 0)
			goto out;
	}
	strv_free(&p->c->smtp.trusted_networks);
	p->c->smtp.trusted_networks = res;
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

	if (*v && (r = get_hostport(p, v, need_port, &hp)) < 0)
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

	if ((r = get_domains(p, v, &d)) < 0)
		goto out;
	if (d.n == 0) {
		r = why(p, "at least one domain is needed");
		goto out;
	}
	for (size_t i = 0; i < d.n; i++) {
		const struct config_transport *o =
			config_transport_for_domain(p->c, d.v[i]);

		if (o && o != t) {
			r = why(p, "domain '%s' already belongs to "
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
static int
apply_transport(struct pctx *p, enum key_id k, const char *v)
{
	struct config_transport *t = &p->c->transports[p->tidx];
	int r, w;

	switch (k) {
	case K_T_DOMAINS:
		return set_transport_domains(p, t, v);
	case K_T_COMMAND:
		if (*v == '\0')
			return why(p, "the command must not be empty");
		if (has_control(v))
			return why(p, "the command holds a control character");
		t->command_line = p->line;
		return set_str(&t->command, v);
	case K_T_MODE:
		if ((r = get_word(p, v, mode_words, &w)) < 0)
			return r;
		t->mode = (enum transport_mode)w;
		return 0;
	case K_T_TIME_LIMIT:
		return get_duration(p, v, 0, &t->time_limit_s);
	case K_T_OUTPUT:
		return get_path(p, v, &t->output_file);
	case K_T_ERROR:
		return get_path(p, v, &t->error_file);
	default:
		return why(p, "internal error: key %d", (int)k);
	}
}

/* Apply one key = value of a fixed section to the config. */
static int
apply(struct pctx *p, enum key_id k, const char *v)
{
	struct config *c = p->c;
	uint64_t n;
	int r, w;

	if (k >= K_LOG_COMP0 && k < K_LOG_COMP0 + LOG_NCOMP)
		return get_level(p, v, &c->log.level[k - K_LOG_COMP0]);
	switch (k) {
	case K_SERVER_HOSTNAME:
		if (!domain_valid(v))
			return why(p, "'%s' is not a host name", v);
		p->hostname_set = true;
		return set_str(&c->server.hostname, v);
	case K_SERVER_USER:
		if ((r = check_user(p, v, c->server.daemon_user,
		    "programs")) < 0)
			return r;
		return set_str(&c->server.user, v);
	case K_SERVER_DAEMON_USER:
		if ((r = check_user(p, v, c->server.user, "the server")) < 0)
			return r;
		return set_str(&c->server.daemon_user, v);
	case K_QUEUE_FOLDERING:
		if (ascii_eq(v, "auto"))
			c->queue.foldering = FOLDERING_AUTO;
		else if (strcmp(v, "0") == 0 || strcmp(v, "10") == 0 ||
			 strcmp(v, "100") == 0)
			c->queue.foldering = atoi(v);
		else
			return why(p, "'%s' is not one of: 0, 10, 100, auto", v);
		return 0;
	case K_QUEUE_LIMIT:
		return get_int(p, v, 1, UINT64_MAX, &c->queue.limit);
	case K_QUEUE_MAX_LIFETIME:
		return get_duration(p, v, 1, &c->queue.max_lifetime_s);
	case K_QUEUE_RETRY:
		return set_retry(p, v);
	case K_QUEUE_DIRECTORY_FSYNC:
		if (ascii_eq(v, "auto") || ascii_eq(v, "always")) {
			c->queue.dir_fsync_always = ascii_eq(v, "always");
			return 0;
		}
		return why(p, "'%s' is not one of: auto, always", v);
	case K_ROUTER_FILE:
		if (*v == '\0')
			return why(p, "the router file must not be empty");
		return get_path(p, v, &c->router.file);
	case K_ROUTER_LOCAL_DOMAINS:
		p->local_domains_set = true;
		return get_domains(p, v, &c->router.local_domains);
	case K_ROUTER_HOP_LIMIT:
		if ((r = get_int(p, v, 1, 1000000, &n)) == 0)
			c->router.hop_limit = (unsigned)n;
		return r;
	case K_PIPE_APP_DIR:
		if ((r = get_path(p, v, &c->pipe.app_dir)) == 0 &&
		    c->pipe.app_dir == NULL)
			r = set_str(&c->pipe.app_dir, "");
		return r;
	case K_PIPE_PROCESSORS:
		if ((r = get_int(p, v, 1, 1000, &n)) == 0)
			c->pipe.processors = (unsigned)n;
		return r;
	case K_PIPE_TIME_LIMIT:
		return get_duration(p, v, 1, &c->pipe.time_limit_s);
	case K_PIPE_STDERR_LIMIT:
		return get_size(p, v, 0, &c->pipe.stderr_limit);
	case K_PIPE_DIRECT:
		if ((r = get_word(p, v, direct_words, &w)) == 0)
			c->pipe.direct = (enum direct_policy)w;
		return r;
	case K_PIPE_PATH:
		if (*v == '\0')
			return why(p, "PATH must not be empty");
		if (has_control(v))
			return why(p, "PATH holds a control character");
		return set_str(&c->pipe.path_env, v);
	case K_SUBMITTED_SCAN:
		return get_duration(p, v, 1, &c->submitted.scan_interval_s);
	case K_FOREIGN_SCAN:
		return get_duration(p, v, 1, &c->foreign.scan_interval_s);
	case K_SMTP_LISTEN:
		return set_listen(p, v);
	case K_SMTP_ASYNC:
		if ((r = get_word(p, v, async_words, &w)) == 0)
			c->smtp.enqueue_async = (enum enqueue_async)w;
		return r;
	case K_SMTP_MAX_SIZE:
		return get_size(p, v, 1, &c->smtp.max_size);
	case K_SMTP_MAX_RCPT:
		if ((r = get_int(p, v, 1, 1000000, &n)) == 0)
			c->smtp.max_recipients = (unsigned)n;
		return r;
	case K_SMTP_MAX_CONN:
		if ((r = get_int(p, v, 1, 100000, &n)) == 0)
			c->smtp.max_connections = (unsigned)n;
		return r;
	case K_SMTP_MAX_CONN_CLIENT:
		if ((r = get_int(p, v, 0, 100000, &n)) == 0)
			c->smtp.max_connections_per_client = (unsigned)n;
		return r;
	case K_SMTP_IDLE:
		return get_duration(p, v, 1, &c->smtp.idle_timeout_s);
	case K_SMTP_DATA_TIMEOUT:
		return get_duration(p, v, 1, &c->smtp.data_timeout_s);
	case K_SMTP_MIN_RATE:
		return get_quantity(p, &q_size, v, 0, 1024 * 1024 * 1024,
			&c->smtp.min_data_rate);
	case K_SMTP_MIN_RATE_GRACE:
		return get_duration(p, v, 1, &c->smtp.min_data_rate_grace_s);
	case K_SMTP_MAX_ERRORS:
		if ((r = get_int(p, v, 1, 1000, &n)) == 0)
			c->smtp.max_errors = (unsigned)n;
		return r;
	case K_SMTP_MAX_JUNK:
		if ((r = get_int(p, v, 1, 100000, &n)) == 0)
			c->smtp.max_junk_commands = (unsigned)n;
		return r;
	case K_SMTP_RELAY_CONN:
		if ((r = get_int(p, v, 1, 100, &n)) == 0)
			c->smtp.relay_connections = (unsigned)n;
		return r;
	case K_SMTP_RELAY_TIMEOUT:
		return get_duration(p, v, 1, &c->smtp.relay_timeout_s);
	case K_SMTP_RELAY_IDLE:
		return get_quantity(p, &q_duration, v, 0, 3600,
			&c->smtp.relay_idle_timeout_s);
	case K_SMTP_TRUSTED:
		return set_trusted(p, v);
	case K_SMTP_RELAY:
		return set_hostport_opt(p, v, false, &c->smtp.relay_host);
	case K_SMTP_TLS_CERT:
		return get_path(p, v, &c->smtp.tls_cert);
	case K_SMTP_TLS_KEY:
		return get_path(p, v, &c->smtp.tls_key);
	case K_REPORTS_DELAY:
		return get_duration(p, v, 0, &c->reports.reporting_delay_s);
	case K_REPORTS_RETURN:
		if ((r = get_word(p, v, return_words, &w)) == 0)
			c->reports.ret = (enum report_return)w;
		return r;
	case K_REPORTS_COPY:
		if (*v && (r = check_address(p, v)) < 0)
			return r;
		return set_str(&c->reports.copy_failure_reports,
			*v ? v : NULL);
	case K_REPORTS_RECEIPTS:
		if ((r = get_word(p, v, receipts_words, &w)) == 0)
			c->reports.return_receipts = (enum return_receipts)w;
		return r;
	case K_REPORTS_WARNING:
		return get_duration(p, v, 0, &c->reports.delay_warning_s);
	case K_MONITOR_HTTP:
		return set_hostport_opt(p, v, true, &c->monitor.http_listen);
	case K_LOG_LEVEL: {
		enum log_level l;

		if ((r = get_level(p, v, &l)) == 0)
			p->log_all = (int)l;
		return r;
	}
	default:
		return why(p, "internal error: key %d", (int)k);
	}
}

/* The section name for messages: "pipe" or "transport NAME". */
static const char *
sect_label(const struct pctx *p, struct buf *b)
{
	buf_reset(b);
	if (p->sect == S_TRANSPORT &&
	    buf_printf(b, "transport %s",
		p->c->transports[p->tidx].name) == 0)
		return b->data;
	return sect_names[p->sect];
}

/* Check the transport section that just ended: command and domains. */
static int
transport_finish(struct pctx *p)
{
	const struct config_transport *t;

	if (p->sect != S_TRANSPORT)
		return 0;
	t = &p->c->transports[p->tidx];
	if (t->command == NULL)
		return perr_at(p, t->line, "[transport %s] has no command",
			t->name);
	if (t->domains.n == 0)
		return perr_at(p, t->line, "[transport %s] has no domains",
			t->name);
	return 0;
}

/* Start a new [transport NAME] section. */
static int
transport_start(struct pctx *p, const char *name, size_t n)
{
	struct config *c = p->c;
	struct config_transport *v, *t;

	if (!name_valid(name, n))
		return perr_at(p, p->line, "bad transport name '%.*s' (1-64 "
			"letters, digits, '_' or '-')", (int)n, name);
	for (size_t i = 0; i < c->ntransports; i++)
		if (strlen(c->transports[i].name) == n &&
		    memcmp(c->transports[i].name, name, n) == 0)
			return perr_at(p, p->line, "duplicate section "
				"[transport %.*s] (first on line %u)", (int)n,
				name, c->transports[i].line);
	v = realloc(c->transports, (c->ntransports + 1) * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	c->transports = v;
	t = &v[c->ntransports];
	memset(t, 0, sizeof(*t));
	t->codes = (struct code_map)CODE_MAP_INIT;
	t->mode = TRANSPORT_QUEUE;
	t->line = p->line;
	if ((t->name = mp_strndup(name, n)) == NULL)
		return -ENOMEM;
	p->tidx = c->ntransports++;
	p->sect = S_TRANSPORT;
	for (int k = K_T_DOMAINS; k < NKEYS; k++)
		p->seen[k] = 0;
	memset(p->code_seen, 0, sizeof(p->code_seen));
	return 0;
}

/* A section header line "[name]" or "[transport NAME]" (trimmed). */
static int
parse_section(struct pctx *p, const char *s, size_t n)
{
	const char *close = memchr(s, ']', n), *b, *e, *arg, *ae;
	int r;

	if (close == NULL)
		return perr_at(p, p->line, "malformed section header "
			"(missing ']')");
	for (const char *q = close + 1; q < s + n; q++) {
		if (*q == '#')
			break;
		if (!is_ws(*q))
			return perr_at(p, p->line, "text after the section "
				"header");
	}
	b = s + 1;
	e = close;
	while (b < e && is_ws(*b))
		b++;
	while (e > b && is_ws(e[-1]))
		e--;
	if (b == e)
		return perr_at(p, p->line, "empty section name");
	for (arg = b; arg < e && !is_ws(*arg); arg++)
		;
	ae = arg;
	while (arg < e && is_ws(*arg))
		arg++;
	if ((r = transport_finish(p)) < 0)
		return r;
	if ((size_t)(ae - b) == strlen("transport") &&
	    memcmp(b, "transport", (size_t)(ae - b)) == 0) {
		if (arg == e)
			return perr_at(p, p->line, "[transport] needs a name: "
				"[transport NAME]");
		return transport_start(p, arg, (size_t)(e - arg));
	}
	for (int i = 0; i < S_TRANSPORT; i++) {
		if (strlen(sect_names[i]) != (size_t)(ae - b) ||
		    memcmp(sect_names[i], b, (size_t)(ae - b)) != 0)
			continue;
		if (arg != e)
			return perr_at(p, p->line, "section [%s] takes no "
				"name", sect_names[i]);
		p->sect = i;
		return 0;
	}
	return perr_at(p, p->line, "unknown section [%.*s]", (int)(e - b), b);
}

/* Decode the value text v (n bytes, left-trimmed) into val. */
static int
parse_value(struct pctx *p, const char *v, size_t n, struct buf *val)
{
	size_t i;
	int r;

	if (n > 0 && v[0] == '"') {
		for (i = 1; i < n && v[i] != '"'; i++) {
			char ch = v[i];

			if (ch == '\\') {
				if (i + 1 >= n)
					return perr_at(p, p->line, "unterminated "
						"quoted value");
				ch = v[++i];
				if (ch != '"' && ch != '\\')
					return perr_at(p, p->line, "unknown "
						"escape '\\%c' in a quoted "
						"value (only \\\" and \\\\)",
						ch);
			}
			if ((r = buf_putc(val, ch)) < 0)
				return r;
		}
		if (i >= n)
			return perr_at(p, p->line, "unterminated quoted value");
		for (i++; i < n && is_ws(v[i]); i++)
			;
		if (i < n && v[i] != '#')
			return perr_at(p, p->line, "text after the closing "
				"quote");
		return buf_append(val, "", 0);
	}
	/* Unquoted: a '#' after white space starts a comment. */
	for (i = 0; i < n; i++)
		if (v[i] == '#' && is_ws(i > 0 ? v[i - 1] : v[-1]))
			break;
	while (i > 0 && is_ws(v[i - 1]))
		i--;
	if ((r = buf_append(val, v, i)) < 0)
		return r;
	return buf_append(val, "", 0);
}

/* Parse "code.N" into N (0..255, no leading zeros); -1 if not such a key. */
static int
code_key(const char *key)
{
	uint64_t n;

	if (strncmp(key, "code.", 5) != 0)
		return -1;
	key += 5;
	if ((key[0] == '0' && key[1] != '\0') ||
	    parse_u64(key, &n, NULL) < 0 || n > 255)
		return -2;
	return (int)n;
}

/* Which key of the current section is this: 0 with *k or *code set. */
static int
lookup_key(struct pctx *p, const char *key, const char *label, int *k,
	int *code)
{
	unsigned first;

	*k = *code = -1;
	if (p->sect == S_TRANSPORT && (*code = code_key(key)) != -1) {
		if (*code < 0)
			return perr_at(p, p->line, "bad key '%s' in [%s]: N in "
				"code.N is an exit status 0-255", key, label);
		first = p->code_seen[*code];
	} else {
		for (*k = 0; *k < NKEYS; (*k)++)
			if ((int)key_defs[*k].sect == p->sect &&
			    strcmp(key_defs[*k].name, key) == 0)
				break;
		if (*k == NKEYS)
			return perr_at(p, p->line, "unknown key '%s' in [%s]",
				key, label);
		first = p->seen[*k];
	}
	if (first)
		return perr_at(p, p->line, "duplicate key '%s' in [%s] (first "
			"on line %u)", key, label, first);
	return 0;
}

/* Apply the decoded value of code.N or of key k; errors name the key. */
static int
apply_key(struct pctx *p, const char *key, const char *label, int k,
	int code, const char *val)
{
	const char *rwhy = NULL;
	int r;

	if (code >= 0) {
		r = code_map_set(&p->c->transports[p->tidx].codes, code, val,
			&rwhy);
		if (r == 0)
			p->code_seen[code] = p->line;
	} else {
		r = p->sect == S_TRANSPORT ?
			apply_transport(p, (enum key_id)k, val) :
			apply(p, (enum key_id)k, val);
		rwhy = p->why.data;
		if (r == 0)
			p->seen[k] = p->line;
	}
	if (r == -EINVAL)
		r = perr_at(p, p->line, "bad value for '%s' in [%s]: %s", key,
			label, rwhy ? rwhy : "invalid");
	return r;
}

/* A key = value line (trimmed, eq points at the '='). */
static int
parse_keyval(struct pctx *p, const char *s, size_t n, const char *eq)
{
	struct buf key = BUF_INIT, val = BUF_INIT, lab = BUF_INIT;
	const char *ke = eq, *v = eq + 1, *end = s + n;
	const char *label;
	int r, k, code;

	while (ke > s && is_ws(ke[-1]))
		ke--;
	if (ke == s)
		return perr_at(p, p->line, "malformed line (no key before '=')");
	for (const char *q = s; q < ke; q++) {
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		      (*q >= '0' && *q <= '9') || *q == '-' || *q == '_' ||
		      *q == '.'))
			return perr_at(p, p->line, "malformed line (a key is "
				"made of letters, digits, '-', '_', '.')");
	}
	if ((r = buf_append(&key, s, (size_t)(ke - s))) < 0)
		goto out;
	if (p->sect < 0) {
		r = perr_at(p, p->line, "key '%s' before any section",
			key.data);
		goto out;
	}
	label = sect_label(p, &lab);
	if ((r = lookup_key(p, key.data, label, &k, &code)) < 0)
		goto out;
	while (v < end && is_ws(*v))
		v++;
	if ((r = parse_value(p, v, (size_t)(end - v), &val)) < 0)
		goto out;
	r = apply_key(p, key.data, label, k, code, val.data);
out:
	buf_free(&key);
	buf_free(&val);
	buf_free(&lab);
	return r;
}

/* One line without its line end. */
static int
parse_line(struct pctx *p, const char *s, size_t n)
{
	const char *eq;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == 0)
			return perr_at(p, p->line, "NUL byte in the line");
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return perr_at(p, p->line, "control character 0x%02x "
				"in the line", ch);
	}
	while (n > 0 && is_ws(*s)) {
		s++;
		n--;
	}
	while (n > 0 && is_ws(s[n - 1]))
		n--;
	if (n == 0 || s[0] == '#')
		return 0;
	if (s[0] == '[')
		return parse_section(p, s, n);
	if ((eq = memchr(s, '=', n)) == NULL)
		return perr_at(p, p->line, "malformed line (expected [section], "
			"key = value, or # comment)");
	return parse_keyval(p, s, n, eq);
}

/* Checks and settings that need the whole file. */
static int
parse_finish(struct pctx *p)
{
	struct config *c = p->c;
	int r;

	if ((r = transport_finish(p)) < 0)
		return r;
	for (int i = 0; i < LOG_NCOMP; i++)
		if (p->log_all >= 0 && !p->seen[K_LOG_COMP0 + i])
			c->log.level[i] = (enum log_level)p->log_all;
	if (p->hostname_set && !p->local_domains_set) {
		char *d = lower_dup(c->server.hostname);

		if (d == NULL)
			return -ENOMEM;
		strv_free(&c->router.local_domains);
		if ((r = strv_push_take(&c->router.local_domains, d)) < 0)
			return r;
	}
	if ((c->smtp.tls_cert == NULL) != (c->smtp.tls_key == NULL)) {
		bool cert = c->smtp.tls_cert != NULL;
		unsigned line = p->seen[cert ? K_SMTP_TLS_CERT : K_SMTP_TLS_KEY];

		return perr_at(p, line ? line : p->line, "[smtp] %s is set but "
			"%s is not", cert ? "tls-cert" : "tls-key",
			cert ? "tls-key" : "tls-cert");
	}
	return 0;
}

/* Apply INI text on top of c; errors name FILE:LINE. */
int
config_parse(struct config *c, const char *text, size_t len,
	const char *filename, char **err)
{
	struct pctx p;
	size_t pos = 0;
	int r = 0;

	memset(&p, 0, sizeof(p));
	p.c = c;
	p.file = filename ? filename : "(config)";
	p.err = err;
	p.sect = -1;
	p.log_all = -1;
	*err = NULL;
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;

		pos += n + (nl ? 1 : 0);
		p.line++;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		if ((r = parse_line(&p, s, n)) < 0)
			goto out;
	}
	r = parse_finish(&p);
out:
	buf_free(&p.why);
	return r;
}

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
	for (int i = 0; i < LOG_NCOMP; i++)
		c->log.level[i] = LOG_MAJOR;

	if ((c->base_dir = strdup(base_dir)) == NULL ||
	    (c->server.hostname = strdup(hostname)) == NULL ||
	    (c->server.user = strdup("mailpipe")) == NULL ||
	    (c->server.daemon_user = strdup("mailpiped")) == NULL ||
	    (c->queue.retry_s = malloc(sizeof(default_retry))) == NULL ||
	    path_join(base_dir, "router", &c->router.file) < 0 ||
	    path_join(base_dir, "apps", &c->pipe.app_dir) < 0 ||
	    (c->pipe.path_env = strdup("/usr/local/bin:/usr/bin:/bin")) ==
		NULL ||
	    (c->monitor.http_listen = strdup("127.0.0.1:8025")) == NULL ||
	    strv_push(&c->smtp.listen, "127.0.0.1:25") < 0)
		goto fail;
	memcpy(c->queue.retry_s, default_retry, sizeof(default_retry));
	for (size_t i = 0; i < 2; i++)
		if (strv_push(&c->smtp.trusted_networks, trusted[i]) < 0)
			goto fail;
	if ((d = lower_dup(hostname)) == NULL ||
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
		path_join(base_dir, "mailpipe.conf", &file);
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
			if (ascii_eq(c->transports[i].domains.v[j], domain))
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
		if (ascii_eq(c->router.local_domains.v[i], domain))
			return true;
	return config_transport_for_domain(c, domain) != NULL;
}
