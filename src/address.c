/*
 * address: RFC 5321 mailbox syntax. Owns parsing "local@domain" (dot-string
 * or quoted-string local part, dot-atom or address-literal domain, SMTPUTF8
 * octets) and the canonical text form. Promises that every parsed address
 * formats to text that parses back to the same value, and that no control
 * character (0x00-0x1f, 0x7f) is ever accepted. Never does I/O, never keeps
 * global state, never exits.
 */
#include "address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "text.h"

/* Is c an ASCII letter or digit? (locale-independent) */
static bool
addr_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9');
}

/* Is c atext (RFC 5322), counting octets >= 0x80 as atext (SMTPUTF8)? */
static bool
addr_atext(unsigned char c)
{
	if (c >= 0x80 || addr_alnum(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Is s[0..len) a dot-string: atext atoms joined by single dots? */
static bool
addr_dot_string(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (!addr_atext(c)) {
			return false;
		}
	}
	return true;
}

/* Lower-case ASCII letters of s in place. */
void
address_lower(char *s)
{
	for (; s != NULL && *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* ASCII lower-case of one byte. */
static unsigned char
addr_tolower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive comparison of n bytes. */
static bool
addr_ci_eqn(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (addr_tolower((unsigned char)a[i]) !=
		    addr_tolower((unsigned char)b[i]))
			return false;
	return true;
}

/* ASCII case-insensitive domain equality (NULL equals only NULL). */
bool
address_domain_eq(const char *a, const char *b)
{
	size_t la, lb;

	if (a == NULL || b == NULL)
		return a == b;
	la = strlen(a);
	lb = strlen(b);
	return la == lb && addr_ci_eqn(a, b, la);
}

/* Validate an address literal "[IPv4]" or "[IPv6:...]" of len bytes. */
static int
addr_literal_check(const char *d, size_t len, const char **why)
{
	unsigned char bin[sizeof(struct in6_addr)];
	const char *in = d + 1;
	size_t n = len - 2;
	int af = AF_INET, ok;
	char *copy;

	if (len < 3 || d[len - 1] != ']') {
		*why = "bad address literal";
		return -EINVAL;
	}
	if (n >= 5 && addr_ci_eqn(in, "IPv6:", 5)) {
		af = AF_INET6;
		in += 5;
		n -= 5;
	}
	if ((copy = text_strndup(in, n)) == NULL)
		return -ENOMEM;
	ok = inet_pton(af, copy, bin);
	free(copy);
	if (ok != 1) {
		*why = af == AF_INET6 ? "bad IPv6 address literal" :
			"bad IPv4 address literal";
		return -EINVAL;
	}
	return 0;
}

/* Validate a domain: dot-atom of LDH (or UTF-8) labels, or a literal. */
static int
addr_domain_check(const char *d, size_t len, const char **why)
{
	size_t label = 0;

	if (len == 0) {
		*why = "empty domain";
		return -EINVAL;
	}
	if (d[0] == '[')
		return addr_literal_check(d, len, why);
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)d[i] : '.';

		if (c == '.') {
			if (label == 0) {
				*why = "empty label in domain";
				return -EINVAL;
			}
			if (d[i - 1] == '-') {
				*why = "domain label ends with '-'";
				return -EINVAL;
			}
			label = 0;
			continue;
		}
		if (c == '-' && label == 0) {
			*why = "domain label begins with '-'";
			return -EINVAL;
		}
		if (!addr_alnum(c) && c != '-' && c < 0x80) {
			*why = "bad character in domain";
			return -EINVAL;
		}
		label++;
	}
	return 0;
}

/*
 * Unquote the quoted-string starting at s[0] == '"' into out; *end is the
 * index just after the closing quote.
 */
static int
addr_unquote(const char *s, size_t len, struct buf *out, size_t *end,
	const char **why)
{
	size_t i = 1;
	int r;

	while (i < len) {
		char c = s[i];

		if (c == '"') {
			*end = i + 1;
			return buf_reserve(out, 0);
		}
		if (c == '\\') {
			if (i + 1 >= len)
				break;
			c = s[++i];
		}
		if ((r = buf_putc(out, c)) < 0)
			return r;
		i++;
	}
	*why = "unbalanced quotes";
	return -EINVAL;
}

/* Parse len bytes of s into a (see address.h). */
int
address_parse(const char *s, size_t len, unsigned flags,
	struct address *a, const char **why)
{
	struct buf local = BUF_INIT;
	const char *dom = NULL, *at;
	const char *dummy;
	size_t dlen = 0, end;
	int r;

	if (why == NULL)
		why = &dummy;
	a->local = a->domain = NULL;
	if (len == 0) {
		if (!(flags & ADDRESS_ALLOW_NULL)) {
			*why = "empty address";
			return -EINVAL;
		}
		return (a->local = text_strdup("")) ? 0 : -ENOMEM;
	}
	if (text_has_ctl(s, len, false)) {
		*why = "control character in address";
		return -EINVAL;
	}
	if (s[0] == '"') {
		if ((r = addr_unquote(s, len, &local, &end, why)) < 0)
			goto fail;
		if (end < len) {
			if (s[end] != '@') {
				*why = "text after the quoted local part";
				r = -EINVAL;
				goto fail;
			}
			dom = s + end + 1;
			dlen = len - end - 1;
		}
	} else {
		at = memrchr(s, '@', len);
		end = at ? (size_t)(at - s) : len;
		if (end > 0 && !addr_dot_string(s, end)) {
			*why = memchr(s, '"', end) ? "misplaced quote in local part" :
				"bad local part";
			r = -EINVAL;
			goto fail;
		}
		if ((r = buf_append(&local, s, end)) < 0)
			goto fail;
		if (at) {
			dom = at + 1;
			dlen = len - end - 1;
		}
	}
	if (local.len == 0) {
		*why = "empty local part";
		r = -EINVAL;
		goto fail;
	}
	if (dom == NULL && !(flags & ADDRESS_ALLOW_UNQUALIFIED)) {
		*why = "missing '@'";
		r = -EINVAL;
		goto fail;
	}
	if (dom && (r = addr_domain_check(dom, dlen, why)) < 0)
		goto fail;
	if (dom && (a->domain = text_strndup(dom, dlen)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = buf_steal(&local, &a->local)) < 0)
		goto fail;
	return 0;
fail:
	buf_free(&local);
	address_free(a);
	return r;
}

/* Does the local part need quoting to be written in an address? */
bool
address_local_needs_quotes(const char *local)
{
	return local == NULL || !addr_dot_string(local, strlen(local));
}

/* Format local@domain from parts (quoting the local part as needed). */
int
address_join(const char *local, const char *domain, char **out)
{
	struct buf b = BUF_INIT;
	int r = 0;

	*out = NULL;
	if (local == NULL)
		return -EINVAL;
	if (*local == '\0' && domain == NULL)
		return (*out = text_strdup("")) ? 0 : -ENOMEM;
	if (*local == '\0' || text_str_has_ctl(local) || text_str_has_ctl(domain))
		return -EINVAL;
	if (address_local_needs_quotes(local)) {
		r = buf_putc(&b, '"');
		for (const char *p = local; r == 0 && *p; p++) {
			if (*p == '"' || *p == '\\')
				r = buf_putc(&b, '\\');
			if (r == 0)
				r = buf_putc(&b, *p);
		}
		if (r == 0)
			r = buf_putc(&b, '"');
	} else {
		r = buf_puts(&b, local);
	}
	if (r == 0 && domain)
		r = buf_printf(&b, "@%s", domain);
	if (r == 0)
		r = buf_steal(&b, out);
	buf_free(&b);
	return r;
}

/* Canonical text of a (see address.h). */
int
address_format(const struct address *a, char **out)
{
	return address_join(a->local, a->domain, out);
}

/* Release the parts. */
void
address_free(struct address *a)
{
	free(a->local);
	free(a->domain);
	a->local = a->domain = NULL;
}
