/*
 * config_value: the syntax of configuration values: words, numbers,
 * durations and sizes with units, host names, paths, lists, host:port,
 * CIDR networks, addresses and user names. Pure: each check either stores
 * the converted value or gives the reason through config__why (-EINVAL);
 * no look-up of users or hosts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "strv.h"
#include "text.h"

/* Largest duration accepted: 36500 days (fits an unsigned int too). */
#define DURATION_MAX (36500ULL * 86400ULL)

/* Is ch a space or a tab? */
bool
config__is_ws(char ch)
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
bool
config__ascii_eq(const char *a, const char *b)
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
		if (config__ascii_eq(v, words[i]))
			return i;
	return -1;
}

/* Strict unsigned decimal: digits only, at least one, no overflow. */
int
config__parse_u64(const char *s, uint64_t *out, const char **end)
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
	if ((r = config__parse_u64(s, &n, &end)) < 0)
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
bool
config__domain_valid(const char *s)
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
bool
config__name_valid(const char *s, size_t n)
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

/* Lower-cased copy of s, or NULL. */
char *
config__lower_dup(const char *s)
{
	char *d = text_strdup(s);

	for (char *p = d; p && *p; p++)
		*p = lower(*p);
	return d;
}

/* Replace *dst by a copy of s (NULL allowed). */
int
config__set_str(char **dst, const char *s)
{
	char *d = NULL;

	if (s && (d = strdup(s)) == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

/* base/rel, or rel itself when absolute; into *out. */
int
config__path_join(const char *base, const char *rel, char **out)
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
int __attribute__((format(printf, 2, 3)))
config__why(struct pctx *p, const char *fmt, ...)
{
	va_list ap;
	int r;

	buf_reset(&p->why);
	va_start(ap, fmt);
	r = buf_vprintf(&p->why, fmt, ap);
	va_end(ap);
	return r < 0 ? r : -EINVAL;
}

/* Split a comma-separated list into trimmed items; empty text = none. */
int
config__split_list(struct pctx *p, const char *v, struct strv *out)
{
	const char *s = v;
	int r;

	while (config__is_ws(*s))
		s++;
	if (*s == '\0')
		return 0;
	for (;;) {
		const char *comma = strchr(s, ',');
		const char *e = comma ? comma : s + strlen(s);
		const char *b = s;

		while (b < e && config__is_ws(*b))
			b++;
		while (e > b && config__is_ws(e[-1]))
			e--;
		if (e == b)
			return config__why(p, "empty item in the list");
		if ((r = strv_pushn(out, b, (size_t)(e - b))) < 0)
			return r;
		if (comma == NULL)
			return 0;
		s = comma + 1;
	}
}

const struct quantity config__q_duration = {
	"duration", config_parse_duration, " (at most 36500d)",
	"30s, 10m, 2h, 3d; a bare number is seconds", "s"
};

const struct quantity config__q_size = {
	"size", config_parse_size, "",
	"64k, 10m, 1g; a bare number is bytes", " bytes"
};

/* A quantity from min to max (in its unit), with errors naming it. */
int
config__get_quantity(struct pctx *p, const struct quantity *q, const char *v,
	uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t n;
	int r = q->parse(v, &n);

	if (r == -ERANGE)
		return config__why(p, "%s '%s' is too large%s", q->kind, v,
			q->limit);
	if (r < 0)
		return config__why(p, "'%s' is not a %s (examples: %s)", v,
			q->kind, q->examples);
	if (n < min)
		return config__why(p, "%s '%s' is below the minimum of %llu%s",
			q->kind, v, (unsigned long long)min, q->unit);
	if (n > max)
		return config__why(p, "%s '%s' is above the maximum of %llu%s",
			q->kind, v, (unsigned long long)max, q->unit);
	*out = n;
	return 0;
}

/* A duration value, refusing values below min. */
int
config__get_duration(struct pctx *p, const char *v, uint64_t min, uint64_t *out)
{
	return config__get_quantity(p, &config__q_duration, v, min,
		UINT64_MAX, out);
}

/* A size value, refusing values below min. */
int
config__get_size(struct pctx *p, const char *v, uint64_t min, uint64_t *out)
{
	return config__get_quantity(p, &config__q_size, v, min, UINT64_MAX,
		out);
}

/* An integer value in min..max. */
int
config__get_int(struct pctx *p, const char *v, uint64_t min, uint64_t max,
	uint64_t *out)
{
	uint64_t n;

	if (config__parse_u64(v, &n, NULL) < 0 || n < min || n > max)
		return config__why(p,
			"'%s' is not a whole number from %llu to %llu", v,
			(unsigned long long)min, (unsigned long long)max);
	*out = n;
	return 0;
}

/* One of the words (case-insensitive). */
int
config__get_word(struct pctx *p, const char *v, const char *const *words,
	int *out)
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
	r = config__why(p, "'%s' is not one of: %s", v, list.data);
	buf_free(&list);
	return r;
}

/* A log level name. */
int
config__get_level(struct pctx *p, const char *v, enum log_level *out)
{
	if (log_level_parse(v, out) < 0)
		return config__why(p, "'%s' is not a log level (none, "
			"failures, major, problems, low-level, all)", v);
	return 0;
}

/* A path, resolved against the base directory; empty -> *out = NULL. */
int
config__get_path(struct pctx *p, const char *v, char **out)
{
	char *s = NULL;
	int r;

	if (text_str_has_ctl(v))
		return config__why(p, "path holds a control character");
	if (*v && (r = config__path_join(p->c->base_dir, v, &s)) < 0)
		return r;
	free(*out);
	*out = s;
	return 0;
}

/* A list of domain names, lower-cased, duplicates dropped. */
int
config__get_domains(struct pctx *p, const char *v, struct strv *out)
{
	struct strv items = STRV_INIT, res = STRV_INIT;
	int r;

	if ((r = config__split_list(p, v, &items)) < 0)
		goto out;
	for (size_t i = 0; i < items.n; i++) {
		char *d;

		if (!config__domain_valid(items.v[i])) {
			r = config__why(p, "'%s' is not a domain name",
				items.v[i]);
			goto out;
		}
		if ((d = config__lower_dup(items.v[i])) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		if (strcmp(d, "pipe") == 0) {
			free(d);
			r = config__why(p, "the domain 'pipe' is reserved for "
				"pipe addresses");
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
int
config__get_hostport(struct pctx *p, const char *v, bool need_port, char **out)
{
	const char *host = v, *hend, *rest;
	uint64_t port = 25;
	char *h = NULL;
	int r = 0;
	unsigned char addr[16];

	if (*v == '[') {
		host = v + 1;
		if ((hend = strchr(host, ']')) == NULL)
			return config__why(p, "'%s': missing ']'", v);
		rest = hend + 1;
	} else {
		const char *colon = strchr(v, ':');

		if (colon && strchr(colon + 1, ':'))
			return config__why(p, "'%s': write an IPv6 address in "
				"brackets, as [ADDRESS]:PORT", v);
		hend = colon ? colon : v + strlen(v);
		rest = hend;
	}
	if (hend == host)
		return config__why(p, "'%s': missing host", v);
	if ((h = text_strndup(host, (size_t)(hend - host))) == NULL)
		return -ENOMEM;
	if (*v == '[') {
		if (inet_pton(AF_INET6, h, addr) != 1)
			r = config__why(p, "'%s': bad IPv6 address", v);
	} else if (strspn(h, "0123456789.") == strlen(h)) {
		if (inet_pton(AF_INET, h, addr) != 1)
			r = config__why(p, "'%s': bad IPv4 address", v);
	} else if (!config__domain_valid(h)) {
		r = config__why(p, "'%s': bad host name", v);
	}
	free(h);
	if (r < 0)
		return r;
	if (*rest == '\0') {
		if (need_port)
			return config__why(p, "'%s': missing ':PORT'", v);
	} else if (*rest != ':' ||
		   config__parse_u64(rest + 1, &port, NULL) < 0 ||
		   port < 1 || port > 65535) {
		return config__why(p, "'%s': bad port (1-65535 after ':')", v);
	}
	struct buf b = BUF_INIT;

	r = buf_printf(&b, "%.*s:%u", (int)(rest - v), v, (unsigned)port);
	if (r == 0)
		r = buf_steal(&b, out);
	buf_free(&b);
	return r;
}

/* A CIDR network "ADDR/LEN" or a bare address -> "ADDR/LEN" normalized. */
int
config__get_cidr(struct pctx *p, const char *v, char **out)
{
	const char *slash = strchr(v, '/');
	size_t alen = slash ? (size_t)(slash - v) : strlen(v);
	unsigned char addr[16];
	char text[INET6_ADDRSTRLEN];
	uint64_t len;
	char *a;
	int af, r;

	if ((a = text_strndup(v, alen)) == NULL)
		return -ENOMEM;
	af = strchr(a, ':') ? AF_INET6 : AF_INET;
	r = inet_pton(af, a, addr);
	free(a);
	if (r != 1)
		return config__why(p, "'%s': bad IP address", v);
	if (slash == NULL)
		len = af == AF_INET ? 32 : 128;
	else if (config__parse_u64(slash + 1, &len, NULL) < 0 ||
		 len > (af == AF_INET ? 32U : 128U))
		return config__why(p, "'%s': bad prefix length (0-%d after "
			"'/')", v, af == AF_INET ? 32 : 128);
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
int
config__check_address(struct pctx *p, const char *v)
{
	static const char atext[] = "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~";
	const char *at = strrchr(v, '@');
	size_t n = at ? (size_t)(at - v) : 0;

	if (at == NULL || n == 0 || n > 64 || v[0] == '.' || at[-1] == '.')
		return config__why(p,
			"'%s' is not a mail address (local@domain)", v);
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '.' ? v[i + 1] == '.' : strchr(atext, v[i]) == NULL)
			return config__why(p, "'%s' is not a mail address "
				"(local@domain)", v);
	}
	if (!config__domain_valid(at + 1))
		return config__why(p, "'%s': bad domain", v);
	return 0;
}

/*
 * [server] user and daemon-user: a user name or uid, never root, never the
 * other one (other: the other key's value; role: what runs as v).
 */
int
config__check_user(struct pctx *p, const char *v, const char *other,
	const char *role)
{
	uint64_t uid;

	if (*v == '\0')
		return config__why(p, "empty user name");
	if (strcmp(v, "root") == 0 || (config__parse_u64(v, &uid, NULL) == 0 &&
	    uid == 0))
		return config__why(p, "%s must not run as root", role);
	if (other && strcmp(v, other) == 0)
		return config__why(p, "'%s' is already the %s: [server] user "
		    "(programs) and daemon-user (the server) must differ", v,
		    strcmp(role, "programs") == 0 ? "daemon-user" : "user");
	if (v[0] == '-' || strspn(v, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(v))
		return config__why(p, "'%s' is not a user name", v);
	return 0;
}
