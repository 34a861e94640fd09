/*
 * router: the router table (SPEC "Routing") and the routing decision for one
 * address. Owns the record syntax "<pattern> = target", pattern matching
 * and '*' substitution, and the decision order table -> transport -> pipe ->
 * local -> relay. Promises that text taken from an address never chooses a
 * command, a tag, a queue or an extra argument, and that every decision is a
 * route kind with a reply. Never does I/O, keeps no global state, never exits.
 */
#include "router.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "buf.h"
#include "strv.h"
#include "text.h"

/*
 * Longest address a rewrite may produce (RFC 5321 allows a 256-octet path;
 * this is generous and keeps a record with several '*' that rewrites into
 * itself from growing the address exponentially).
 */
#define RT_REWRITE_MAX 1024

/* Why texts for refused substitutions (same words as pipeaddr.c). */
#define WHY_DASH "text substituted for '*' begins with '-'"
#define WHY_CTL "text substituted for '*' holds a control character"

/* Is c white space inside a record line? */
static bool
rt_space(char c)
{
	return c == ' ' || c == '\t';
}

/* ASCII lower-case of one byte. */
static unsigned char
rt_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive equality of n bytes. */
static bool
rt_ci_eqn(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (rt_lower((unsigned char)a[i]) != rt_lower((unsigned char)b[i]))
			return false;
	return true;
}

/* Is s[0..len) equal to the keyword kw, ignoring ASCII case? */
static bool
rt_is_kw(const char *s, size_t len, const char *kw)
{
	return strlen(kw) == len && rt_ci_eqn(s, kw, len);
}

/*
 * Split address-like text written by the postmaster (a pattern or a target)
 * at its last '@' outside quotes. A quoted local part is RFC 5321-unquoted;
 * in an unquoted one "\x" stands for x. *domain is NULL without '@'.
 */
static int
rt_split(const char *s, size_t len, char **local, char **domain,
	const char **why)
{
	struct buf b = BUF_INIT;
	size_t i = 0, at = len;
	int r = 0;

	*local = *domain = NULL;
	if (len > 0 && s[0] == '"') {
		for (i = 1; r == 0 && i < len && s[i] != '"'; i++) {
			if (s[i] == '\\' && ++i >= len)
				break;
			r = buf_putc(&b, s[i]);
		}
		if (r == 0 && i >= len) {
			*why = "unbalanced quotes";
			r = -EINVAL;
		}
		i++;
		if (r == 0 && i < len && s[i] != '@') {
			*why = "text after the quoted local part";
			r = -EINVAL;
		}
		at = i < len ? i : len;
	} else {
		for (i = 0; i < len; i++) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '@')
				at = i;
		}
		for (i = 0; r == 0 && i < at; i++) {
			if (s[i] == '"') {
				*why = "misplaced quote";
				r = -EINVAL;
			} else if (rt_space(s[i])) {
				*why = "white space in an address (write \"\\ \")";
				r = -EINVAL;
			} else if (s[i] == '\\' && i + 1 >= at) {
				*why = "trailing backslash";
				r = -EINVAL;
			} else {
				r = buf_putc(&b, s[i] == '\\' ? s[++i] : s[i]);
			}
		}
	}
	if (r == 0 && b.len == 0) {
		*why = "empty local part";
		r = -EINVAL;
	}
	for (i = at + 1; r == 0 && i < len; i++) {
		if (rt_space(s[i]) || s[i] == '"' || s[i] == '\\') {
			*why = "bad character in domain";
			r = -EINVAL;
		}
	}
	if (r == 0 && at < len && at + 1 == len) {
		*why = "empty domain";
		r = -EINVAL;
	}
	if (r == 0 && at < len &&
	    (*domain = text_strndup(s + at + 1, len - at - 1)) == NULL)
		r = -ENOMEM;
	if (r == 0)
		r = buf_steal(&b, local);
	buf_free(&b);
	if (r < 0) {
		free(*domain);
		*domain = NULL;
	}
	return r;
}

/* Replace every '*' of tmpl (may be NULL) with text; -E2BIG past max. */
static int
rt_subst(const char *tmpl, const char *text, size_t max, char **out)
{
	struct buf b = BUF_INIT;
	size_t tl = strlen(text), n = 0;
	int r = 0;

	*out = NULL;
	if (tmpl == NULL)
		return 0;
	for (const char *p = tmpl; *p; p++) {
		if (n > max)
			return -E2BIG;
		n += *p == '*' ? tl : 1;
	}
	if (n > max)
		return -E2BIG;
	for (const char *p = tmpl; r == 0 && *p; p++)
		r = *p == '*' ? buf_puts(&b, text) : buf_putc(&b, *p);
	if (r == 0)
		r = buf_steal(&b, out);
	buf_free(&b);
	return r;
}

/* Count the '*' of s (NULL counts none). */
static size_t
rt_stars(const char *s)
{
	size_t n = 0;

	for (; s && *s; s++)
		n += *s == '*';
	return n;
}

/* Set *err to "FILE:LINE: message" and return -EINVAL (or -ENOMEM). */
static int __attribute__((format(printf, 4, 5)))
rt_err(char **err, const char *filename, unsigned line, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int r;

	r = buf_printf(&b, "%s:%u: ", filename ? filename : "router", line);
	if (r == 0) {
		va_start(ap, fmt);
		r = buf_vprintf(&b, fmt, ap);
		va_end(ap);
	}
	if (r == 0 && err)
		r = buf_steal(&b, err);
	buf_free(&b);
	return r < 0 ? r : -EINVAL;
}

/* Free one rule. */
static void
rt_rule_free(struct router_rule *u)
{
	free(u->pattern);
	free(u->pat_local);
	free(u->pat_domain);
	free(u->target);
	free(u->addr_tmpl);
	free(u->error_text);
	pipe_tmpl_free(&u->pipe);
}

/* Release the table. */
void
router_table_free(struct router_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		rt_rule_free(&t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

/*
 * Find the end of the pattern: the first '>' outside quotes and not
 * escaped. Returns its index or len.
 */
static size_t
rt_pattern_end(const char *s, size_t len)
{
	bool quoted = false;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
		else if (s[i] == '>' && !quoted)
			return i;
	}
	return len;
}

/*
 * Length of the target at s: up to a '#' outside quotes that follows
 * unescaped white space, without trailing unescaped white space.
 */
static size_t
rt_target_len(const char *s, size_t len)
{
	bool quoted = false, prev_space = false;
	size_t end = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '#' && !quoted && prev_space)
			break;
		prev_space = false;
		if (s[i] == '\\') {
			i++;
			end = i < len ? i + 1 : len;
			continue;
		}
		if (s[i] == '"')
			quoted = !quoted;
		if (rt_space(s[i]))
			prev_space = true;
		else
			end = i + 1;
	}
	return end;
}

/*
 * Parse the target text of u (kind and template), given whether the pattern
 * has a '*'. On -EINVAL *what names the kind of target and *why the fault.
 */
static int
rt_parse_target(struct router_rule *u, const char *s, size_t len,
	bool pat_star, const char **what, const char **why)
{
	char *local = NULL, *domain = NULL, *lx = NULL, *dx = NULL, *joined;
	struct address a;
	int r;

	if (rt_is_kw(s, len, "null")) {
		u->kind = TARGET_NULL;
		return 0;
	}
	if (rt_is_kw(s, len, "error") ||
	    (len >= 6 && rt_ci_eqn(s, "error:", 6))) {
		u->kind = TARGET_ERROR;
		s += 5;
		len -= 5;
		if (len > 0) {
			s++;
			len--;
		}
		while (len > 0 && rt_space(*s)) {
			s++;
			len--;
		}
		if (len > 0 && (u->error_text = text_strndup(s, len)) == NULL)
			return -ENOMEM;
		return 0;
	}
	*what = "bad target";
	if ((r = rt_split(s, len, &local, &domain, why)) < 0)
		return r;
	if (domain && address_domain_eq(domain, "pipe")) {
		u->kind = TARGET_PIPE;
		*what = "bad pipe target";
		r = pipe_tmpl_parse(local, strlen(local), &u->pipe, why);
		if (r == 0 && u->pipe.has_star && !pat_star) {
			*why = "the target uses '*' but the pattern has none";
			r = -EINVAL;
		}
		goto out;
	}
	u->kind = TARGET_ADDRESS;
	*what = "bad target address";
	if ((rt_stars(local) || rt_stars(domain)) && !pat_star) {
		*why = "the target uses '*' but the pattern has none";
		r = -EINVAL;
		goto out;
	}
	/* The target must be an address once '*' is replaced by sample text. */
	if ((r = rt_subst(local, "x", (size_t)-1, &lx)) < 0 ||
	    (r = rt_subst(domain, "x", (size_t)-1, &dx)) < 0)
		goto out;
	r = address_join(lx, dx, &joined);
	if (r == -EINVAL)
		*why = "control character";
	if (r == 0) {
		r = address_parse(joined, strlen(joined),
			ADDRESS_ALLOW_UNQUALIFIED, &a, why);
		free(joined);
		address_free(&a);
	}
	if (r == 0)
		r = address_join(local, domain, &u->addr_tmpl);
out:
	free(local);
	free(domain);
	free(lx);
	free(dx);
	return r;
}

/* Parse one non-comment record line into u; *why on -EINVAL. */
static int
rt_parse_record(struct router_rule *u, const char *s, size_t len,
	const char **why, const char **why_detail)
{
	size_t gt, tlen;
	const char *p;
	int r;

	if (s[0] != '<') {
		*why = "a record begins with '<'";
		return -EINVAL;
	}
	gt = rt_pattern_end(s + 1, len - 1) + 1;
	if (gt >= len) {
		*why = "missing '>' after the pattern";
		return -EINVAL;
	}
	if ((u->pattern = text_strndup(s + 1, gt - 1)) == NULL)
		return -ENOMEM;
	if (gt == 1) {
		*why = "empty pattern";
		return -EINVAL;
	}
	r = rt_split(s + 1, gt - 1, &u->pat_local, &u->pat_domain, why_detail);
	if (r == -EINVAL)
		*why = "bad pattern";
	if (r < 0)
		return r;
	if (rt_stars(u->pat_local) + rt_stars(u->pat_domain) > 1) {
		*why = "more than one '*' in the pattern";
		return -EINVAL;
	}
	p = s + gt + 1;
	while (p < s + len && rt_space(*p))
		p++;
	if (p >= s + len || *p != '=') {
		*why = "expected '=' after the pattern";
		return -EINVAL;
	}
	p++;
	tlen = rt_target_len(p, (size_t)(s + len - p));
	while (tlen > 0 && rt_space(*p)) {
		p++;
		tlen--;
	}
	if (tlen == 0) {
		*why = "missing target";
		return -EINVAL;
	}
	if ((u->target = text_strndup(p, tlen)) == NULL)
		return -ENOMEM;
	return rt_parse_target(u, p, tlen,
		rt_stars(u->pat_local) + rt_stars(u->pat_domain) > 0,
		why, why_detail);
}

/* Parse router file text (see router.h). */
int
router_table_parse(const char *text, size_t len, const char *filename,
	struct router_table *t, char **err)
{
	const char *line = text, *end = text + len, *nl;
	struct router_rule *v;
	unsigned lineno = 0;
	int r = 0;

	t->v = NULL;
	t->n = 0;
	if (err)
		*err = NULL;
	while (r == 0 && line < end) {
		const char *why = NULL, *detail = NULL;
		struct router_rule u = { 0 };
		size_t n;

		lineno++;
		nl = memchr(line, '\n', (size_t)(end - line));
		n = (size_t)((nl ? nl : end) - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (memchr(line, '\0', n)) {
			r = rt_err(err, filename, lineno, "NUL byte");
			break;
		}
		if (text_has_ctl(line, n, true))
			why = "control character";
		while (!why && n > 0 && rt_space(*line)) {
			line++;
			n--;
		}
		if (why) {
			r = rt_err(err, filename, lineno, "%s", why);
		} else if (n > 0 && *line != '#') {
			u.line = lineno;
			u.pipe = (struct pipe_tmpl)PIPE_TMPL_INIT;
			r = rt_parse_record(&u, line, n, &why, &detail);
			if (r == 0) {
				v = realloc(t->v, (t->n + 1) * sizeof(*v));
				if (v == NULL) {
					r = -ENOMEM;
				} else {
					t->v = v;
					t->v[t->n++] = u;
				}
			} else if (r == -EINVAL && detail) {
				r = rt_err(err, filename, lineno, "%s: %s",
					why, detail);
			} else if (r == -EINVAL) {
				r = rt_err(err, filename, lineno, "%s", why);
			}
			if (r < 0)
				rt_rule_free(&u);
		}
		line = nl ? nl + 1 : end;
	}
	if (r < 0)
		router_table_free(t);
	return r;
}

/*
 * Match s against pattern pat (at most one '*', matching one or more
 * characters), ASCII case-insensitively. When the star matched, *text
 * and *tlen give the matched part of s.
 */
static bool
rt_match(const char *pat, const char *s, const char **text, size_t *tlen)
{
	const char *star = strchr(pat, '*');
	size_t pl = strlen(pat), sl = strlen(s), pre, suf;

	if (star == NULL)
		return pl == sl && rt_ci_eqn(pat, s, sl);
	pre = (size_t)(star - pat);
	suf = pl - pre - 1;
	if (sl < pre + suf + 1 || !rt_ci_eqn(pat, s, pre) ||
	    !rt_ci_eqn(star + 1, s + sl - suf, suf))
		return false;
	*text = s + pre;
	*tlen = sl - pre - suf;
	return true;
}

/* Is domain one of the (lower-cased) domains of sv? Returns index or -1. */
static long
rt_domain_index(const struct strv *sv, const char *domain)
{
	for (size_t i = 0; sv && i < sv->n; i++)
		if (address_domain_eq(sv->v[i], domain))
			return (long)i;
	return -1;
}

/* First rule matching local@domain; *text is the '*' text (copy) or NULL. */
static int
rt_find(const struct router_ctx *ctx, const struct address *a,
	const struct router_rule **rule, char **text)
{
	const struct router_table *t = ctx->table;
	bool local_domain = rt_domain_index(ctx->local_domains, a->domain) >= 0;

	*rule = NULL;
	*text = NULL;
	for (size_t i = 0; t && i < t->n; i++) {
		const struct router_rule *u = &t->v[i];
		const char *m = NULL;
		size_t ml = 0;

		if (u->pat_domain == NULL && !local_domain)
			continue;
		if (!rt_match(u->pat_local, a->local, &m, &ml))
			continue;
		if (u->pat_domain && !rt_match(u->pat_domain, a->domain, &m, &ml))
			continue;
		*rule = u;
		if (m && (*text = text_strndup(m, ml)) == NULL)
			return -ENOMEM;
		return 0;
	}
	return 0;
}

/* Make r a failing decision of kind k with reply, status and text. */
static int __attribute__((format(printf, 5, 6)))
rt_fail(struct route *r, enum route_kind k, int reply, const char *status,
	const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int e;

	r->kind = k;
	r->reply = reply;
	snprintf(r->status, sizeof(r->status), "%s", status);
	va_start(ap, fmt);
	e = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(r->text);
	r->text = NULL;
	if (e == 0)
		e = buf_steal(&b, &r->text);
	buf_free(&b);
	return e;
}

/* Check text taken from an address before it replaces '*'. */
static int
rt_text_check(const char *text, const char **why)
{
	if (text_str_has_ctl(text)) {
		*why = WHY_CTL;
		return -EPERM;
	}
	if (text[0] == '-') {
		*why = WHY_DASH;
		return -EPERM;
	}
	return 0;
}

/* Replace r->address with the canonical text of local@domain. */
static int
rt_set_address(struct route *r, const char *local, const char *domain)
{
	char *s;
	int e = address_join(local, domain, &s);

	if (e < 0)
		return e;
	free(r->address);
	r->address = s;
	return 0;
}

/* Fill r as ROUTE_PIPE for cmd (moved in), with its canonical address. */
static int
rt_pipe(struct route *r, struct pipe_cmd *cmd)
{
	char *fmt;
	int e;

	r->kind = ROUTE_PIPE;
	r->pipe = *cmd;
	*cmd = (struct pipe_cmd)PIPE_CMD_INIT;
	if ((e = pipe_cmd_format(&r->pipe, &fmt)) == -EINVAL)
		return rt_fail(r, ROUTE_REFUSED, 550, "5.1.3",
			"bad pipe address");
	if (e < 0)
		return e;
	e = rt_set_address(r, fmt, "pipe");
	free(fmt);
	return e;
}

/* Apply an address rule: *a becomes the rewritten address. */
static int
rt_rewrite(struct route *r, const struct router_ctx *ctx,
	const struct router_rule *u, const char *text, struct address *a,
	bool *done)
{
	char *local = NULL, *domain = NULL, *lx = NULL, *dx = NULL, *joined;
	const char *why = NULL;
	struct address n = ADDRESS_INIT;
	int e;

	*done = true;
	if (r->hops >= ROUTER_MAX_REWRITES)
		return rt_fail(r, ROUTE_REFUSED, 554, "5.4.6", "routing loop");
	if ((e = rt_split(u->addr_tmpl, strlen(u->addr_tmpl), &local,
	    &domain, &why)) == -EINVAL)
		return rt_fail(r, ROUTE_REFUSED, 554, "5.3.0",
			"bad router target: %s", why);
	if (e < 0)
		return e;
	if (rt_stars(local) + rt_stars(domain) == 0)
		text = NULL;
	if (text && rt_text_check(text, &why) < 0) {
		e = rt_fail(r, ROUTE_REFUSED, 550, "5.1.3", "%s", why);
		goto out;
	}
	if ((e = rt_subst(local, text ? text : "", RT_REWRITE_MAX, &lx)) < 0 ||
	    (e = rt_subst(domain, text ? text : "", RT_REWRITE_MAX, &dx)) < 0) {
		if (e == -E2BIG)
			e = rt_fail(r, ROUTE_REFUSED, 550, "5.1.3",
				"rewritten address is too long");
		goto out;
	}
	if (dx == NULL && ctx->default_domain &&
	    (dx = text_strdup(ctx->default_domain)) == NULL) {
		e = -ENOMEM;
		goto out;
	}
	e = address_join(lx, dx, &joined);
	if (e == 0 && strlen(joined) > RT_REWRITE_MAX) {
		free(joined);
		e = rt_fail(r, ROUTE_REFUSED, 550, "5.1.3",
			"rewritten address is too long");
		goto out;
	}
	if (e == 0) {
		e = address_parse(joined, strlen(joined), 0, &n, &why);
		free(joined);
	} else if (e == -EINVAL) {
		why = "control character";
	}
	if (e == -EINVAL) {
		e = rt_fail(r, ROUTE_REFUSED, 550, "5.1.3",
			"rewritten address is not valid: %s", why);
		goto out;
	}
	if (e < 0)
		goto out;
	address_free(a);
	*a = n;
	r->hops++;
	*done = false;
out:
	free(local);
	free(domain);
	free(lx);
	free(dx);
	return e;
}

/* Apply rule u (matched with text) to a; *done when r is decided. */
static int
rt_apply(struct route *r, const struct router_ctx *ctx,
	const struct router_rule *u, const char *text, struct address *a,
	bool *done)
{
	struct pipe_cmd cmd;
	const char *why = NULL;
	int e;

	*done = true;
	r->rule_line = u->line;
	switch (u->kind) {
	case TARGET_NULL:
		r->kind = ROUTE_NULL;
		return 0;
	case TARGET_ERROR:
		return rt_fail(r, ROUTE_ERROR, 550, "5.1.1", "%s",
			u->error_text ? u->error_text : "address rejected");
	case TARGET_PIPE:
		e = pipe_tmpl_expand(&u->pipe, text, &cmd, &why);
		if (e == -EPERM)
			return rt_fail(r, ROUTE_REFUSED, 550, "5.1.3", "%s",
				why);
		if (e == -EINVAL)
			return rt_fail(r, ROUTE_REFUSED, 550, "5.1.3",
				"bad pipe address: %s", why);
		if (e < 0)
			return e;
		e = rt_pipe(r, &cmd);
		return e;
	case TARGET_ADDRESS:
		return rt_rewrite(r, ctx, u, text, a, done);
	}
	return -EINVAL;
}

/* Steps 2-5 for a, which no rule matched. */
static int
rt_default(struct route *r, const struct router_ctx *ctx,
	const struct address *a)
{
	struct pipe_cmd cmd;
	const char *why = NULL;
	long i;
	int e;

	if ((i = rt_domain_index(ctx->transport_domains, a->domain)) >= 0) {
		r->kind = ROUTE_TRANSPORT;
		if (ctx->transport_names && ctx->transport_names[i] &&
		    (r->transport = text_strdup(ctx->transport_names[i])) == NULL)
			return -ENOMEM;
		return 0;
	}
	if (address_domain_eq(a->domain, "pipe")) {
		if (r->hops > 0)
			return rt_fail(r, ROUTE_REFUSED, 550, "5.7.1",
				"a rewritten address may not reach the pipe "
				"domain");
		if (!ctx->direct_pipe_allowed)
			return rt_fail(r, ROUTE_REFUSED, 550, "5.7.1",
				"direct pipe addresses are not accepted from "
				"this source");
		e = pipe_cmd_parse(a->local, strlen(a->local), &cmd, &why);
		if (e == -EINVAL)
			return rt_fail(r, ROUTE_REFUSED, 550, "5.1.3",
				"bad pipe address: %s", why);
		if (e < 0)
			return e;
		return rt_pipe(r, &cmd);
	}
	if (rt_domain_index(ctx->local_domains, a->domain) >= 0)
		return rt_fail(r, ROUTE_UNKNOWN, 550, "5.1.1", "unknown user");
	if (ctx->relay_configured) {
		r->kind = ROUTE_RELAY;
		return 0;
	}
	return rt_fail(r, ROUTE_NO_RELAY, 554, "5.4.4",
		"no relay host for non-local domain");
}

/* Route one address (see router.h). */
int
router_route(const struct router_ctx *ctx, const char *address,
	struct route *r)
{
	struct address a = ADDRESS_INIT;
	const struct router_rule *u;
	const char *why = NULL;
	char *text = NULL;
	bool done = false;
	int e;

	*r = (struct route)ROUTE_INIT;
	if ((r->address = text_strdup(address ? address : "")) == NULL)
		return -ENOMEM;
	e = address_parse(r->address, strlen(r->address),
		ADDRESS_ALLOW_UNQUALIFIED, &a, &why);
	if (e == -EINVAL) {
		e = rt_fail(r, ROUTE_REFUSED, 553, "5.1.3", "bad address: %s",
			why);
		goto out;
	}
	if (e < 0)
		goto out;
	if (a.domain == NULL) {
		if (ctx->default_domain == NULL || *ctx->default_domain == '\0') {
			e = rt_fail(r, ROUTE_REFUSED, 553, "5.1.3",
				"bad address: no domain");
			goto out;
		}
		if ((a.domain = text_strdup(ctx->default_domain)) == NULL) {
			e = -ENOMEM;
			goto out;
		}
	}
	while (!done) {
		if ((e = rt_set_address(r, a.local, a.domain)) < 0)
			goto out;
		free(text);
		if ((e = rt_find(ctx, &a, &u, &text)) < 0)
			goto out;
		if (u == NULL)
			break;
		if ((e = rt_apply(r, ctx, u, text, &a, &done)) < 0)
			goto out;
	}
	if (!done)
		e = rt_default(r, ctx, &a);
out:
	free(text);
	address_free(&a);
	if (e < 0)
		route_free(r);
	return e;
}

/* Release a route's strings and command. */
void
route_free(struct route *r)
{
	free(r->address);
	free(r->transport);
	free(r->text);
	pipe_cmd_free(&r->pipe);
	*r = (struct route)ROUTE_INIT;
}

/* Name of a route kind for logs and `mailpipe route`. */
const char *
route_kind_name(enum route_kind k)
{
	switch (k) {
	case ROUTE_PIPE:
		return "PIPE";
	case ROUTE_TRANSPORT:
		return "TRANSPORT";
	case ROUTE_RELAY:
		return "RELAY";
	case ROUTE_NULL:
		return "NULL";
	case ROUTE_ERROR:
		return "ERROR";
	case ROUTE_UNKNOWN:
		return "UNKNOWN";
	case ROUTE_NO_RELAY:
		return "NO_RELAY";
	case ROUTE_REFUSED:
		return "REFUSED";
	}
	return "?";
}
