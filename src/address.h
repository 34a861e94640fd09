/*
 * address: RFC 5321 mailbox addresses as the envelope holds them. Parses
 * "local@domain" where the local part is a dot-string or a quoted-string,
 * unquotes it, and formats it back canonically (quoting only when needed).
 * Refuses control characters (0x00-0x1f, 0x7f) anywhere, unbalanced
 * quoting, empty parts. Pure: no I/O, no globals.
 */
#ifndef MP_ADDRESS_H
#define MP_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

struct address {
	char *local;	/* unquoted local part (octets, no controls) */
	char *domain;	/* domain as written; NULL when unqualified */
};

#define ADDRESS_INIT { NULL, NULL }

enum address_flags {
	ADDRESS_ALLOW_UNQUALIFIED = 1,	/* "user" without @domain */
	ADDRESS_ALLOW_NULL = 2,		/* "" (the null return-path) */
};

/*
 * Parse len bytes of s (no angle brackets) into a. On -EINVAL *why is a
 * constant text. A domain may be a dot-atom or an address literal
 * "[192.0.2.1]" / "[IPv6:...]". Octets >= 0x80 are accepted (SMTPUTF8).
 * With ADDRESS_ALLOW_NULL an empty string yields local = "" and domain =
 * NULL.
 */
int address_parse(const char *s, size_t len, unsigned flags,
	struct address *a, const char **why);
/*
 * Canonical text: the local part as a dot-string when it is one, else as a
 * quoted-string (backslash before '"' and '\\'), then "@domain" if any.
 * The null address formats as "".
 */
int address_format(const struct address *a, char **out);
/* Format local@domain from parts (quoting the local part as needed). */
int address_join(const char *local, const char *domain, char **out);
/* Does the local part need quoting to be written in an address? */
bool address_local_needs_quotes(const char *local);
/* Release the parts. */
void address_free(struct address *a);
/* ASCII case-insensitive domain equality (NULL equals only NULL). */
bool address_domain_eq(const char *a, const char *b);
/* Lower-case ASCII letters of s in place. */
void address_lower(char *s);

#endif
