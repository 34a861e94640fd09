/*
 * config_ini: the INI syntax of mailpipe.conf (docs/DESIGN.md
 * "Configuration file parser"): lines, [section] and [transport NAME]
 * headers, key = value with optional double quotes, # comments; the
 * table of sections and keys, duplicate and unknown keys, and the checks
 * that need the whole file. Every error is "FILE:LINE: message"; a value
 * is handed to config_apply.c exactly as written (never truncated).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "strv.h"
#include "text.h"

static const char *const sect_names[NSECT] = {
	"server", "queue", "router", "pipe", "submitted", "foreign-queue",
	"smtp", "reports", "monitor", "log", "transport",
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
	[K_REPORTS_SIZE_LIMIT] = { S_REPORTS, "return-size-limit" },
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

	if (!config__name_valid(name, n))
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
	if ((t->name = text_strndup(name, n)) == NULL)
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
		if (!config__is_ws(*q))
			return perr_at(p, p->line, "text after the section "
				"header");
	}
	b = s + 1;
	e = close;
	while (b < e && config__is_ws(*b))
		b++;
	while (e > b && config__is_ws(e[-1]))
		e--;
	if (b == e)
		return perr_at(p, p->line, "empty section name");
	for (arg = b; arg < e && !config__is_ws(*arg); arg++)
		;
	ae = arg;
	while (arg < e && config__is_ws(*arg))
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
		for (i++; i < n && config__is_ws(v[i]); i++)
			;
		if (i < n && v[i] != '#')
			return perr_at(p, p->line, "text after the closing "
				"quote");
		return buf_append(val, "", 0);
	}
	/* Unquoted: a '#' after white space starts a comment. */
	for (i = 0; i < n; i++)
		if (v[i] == '#' && config__is_ws(i > 0 ? v[i - 1] : v[-1]))
			break;
	while (i > 0 && config__is_ws(v[i - 1]))
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
	    config__parse_u64(key, &n, NULL) < 0 || n > 255)
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
			config__apply_transport(p, (enum key_id)k, val) :
			config__apply(p, (enum key_id)k, val);
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

	while (ke > s && config__is_ws(ke[-1]))
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
	while (v < end && config__is_ws(*v))
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
		if (text_is_ctl(ch) && ch != '\t')
			return perr_at(p, p->line, "control character 0x%02x "
				"in the line", ch);
	}
	while (n > 0 && config__is_ws(*s)) {
		s++;
		n--;
	}
	while (n > 0 && config__is_ws(s[n - 1]))
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
		char *d = config__lower_dup(c->server.hostname);

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
