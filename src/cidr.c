/*
 * cidr: network lists for [smtp] trusted-networks. Owns parsing
 * "ADDRESS[/LEN]" (inet_pton; a bare address is a host network; host bits
 * are masked off) and matching a client's socket address against the list.
 * Promises that an IPv4 client matches IPv4 networks whether the socket
 * shows it as AF_INET or as IPv4-mapped IPv6. Never does I/O, never exits.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"
#include "text.h"

/* The IPv4-mapped IPv6 prefix ::ffff:0:0/96. */
static const uint8_t cidr_mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
};

/* Clear every bit of addr (len bytes) after the first prefix bits. */
static void
cidr_mask(uint8_t *addr, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++) {
		unsigned keep = prefix > 8 * i ? prefix - 8 * (unsigned)i : 0;

		if (keep < 8)
			addr[i] &= (uint8_t)(0xff00U >> keep);
	}
}

/* Do the first prefix bits of a and b agree? */
static bool
cidr_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	size_t whole = prefix / 8;
	unsigned rest = prefix % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[whole] ^ b[whole]) & (uint8_t)(0xff00U >> rest)) == 0;
}

/* Parse a prefix length of decimal digits, at most max. */
static int
cidr_prefix_parse(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (*s == '\0')
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * Parse one "ADDRESS[/LEN]" into n. An IPv6 network inside ::ffff:0:0/96
 * becomes the IPv4 network it stands for, since clients are matched as
 * IPv4 whenever they are IPv4-mapped.
 */
static int
cidr_parse_one(const char *s, struct cidr *n, const char **why)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	char *a;
	int ok;

	memset(n, 0, sizeof(*n));
	if ((a = text_strndup(s, alen)) == NULL)
		return -ENOMEM;
	n->family = memchr(s, ':', alen) ? AF_INET6 : AF_INET;
	ok = inet_pton(n->family, a, n->addr);
	free(a);
	if (ok != 1) {
		*why = "bad IP address in network";
		return -EINVAL;
	}
	n->prefix = n->family == AF_INET ? 32 : 128;
	if (slash && cidr_prefix_parse(slash + 1, n->prefix, &n->prefix) < 0) {
		*why = n->family == AF_INET ?
			"bad prefix length (0-32 after '/')" :
			"bad prefix length (0-128 after '/')";
		return -EINVAL;
	}
	if (n->family == AF_INET6 && n->prefix >= 96 &&
	    memcmp(n->addr, cidr_mapped, sizeof(cidr_mapped)) == 0) {
		memmove(n->addr, n->addr + 12, 4);
		memset(n->addr + 4, 0, 12);
		n->family = AF_INET;
		n->prefix -= 96;
	}
	cidr_mask(n->addr, sizeof(n->addr), n->prefix);
	return 0;
}

/* Parse every "ADDRESS[/LEN]" string of sv; -EINVAL with *why. */
int
cidr_list_parse(const struct strv *sv, struct cidr_list *out,
	const char **why)
{
	const char *dummy;
	struct cidr *v;
	int r;

	if (why == NULL)
		why = &dummy;
	out->v = NULL;
	out->n = 0;
	if (sv == NULL || sv->n == 0)
		return 0;
	if ((v = calloc(sv->n, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < sv->n; i++) {
		if ((r = cidr_parse_one(sv->v[i], &v[i], why)) < 0) {
			free(v);
			return r;
		}
	}
	out->v = v;
	out->n = sv->n;
	return 0;
}

/*
 * The address of sa as the family and bytes to match: an IPv4-mapped IPv6
 * address becomes AF_INET. -EAFNOSUPPORT for other families.
 */
static int
cidr_client(const struct sockaddr *sa, int *family, uint8_t addr[16])
{
	if (sa == NULL)
		return -EINVAL;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in in;

		memcpy(&in, sa, sizeof(in));
		memcpy(addr, &in.sin_addr, 4);
		*family = AF_INET;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 in6;

		memcpy(&in6, sa, sizeof(in6));
		memcpy(addr, &in6.sin6_addr, 16);
		*family = AF_INET6;
		if (memcmp(addr, cidr_mapped, sizeof(cidr_mapped)) == 0) {
			memmove(addr, addr + 12, 4);
			*family = AF_INET;
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

/* Does sa (AF_INET / AF_INET6) fall in one of the networks? */
bool
cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	uint8_t addr[16] = { 0 };
	int family;

	if (l == NULL || cidr_client(sa, &family, addr) < 0)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].family == family &&
		    cidr_prefix_eq(l->v[i].addr, addr, l->v[i].prefix))
			return true;
	return false;
}

/* The per-client key: IPv4 as ::ffff:a.b.c.d, IPv6 cut to its /64. */
int
cidr_client_key(const struct sockaddr *sa, uint8_t key[CIDR_KEY_LEN])
{
	uint8_t addr[16] = { 0 };
	int family, r;

	if ((r = cidr_client(sa, &family, addr)) < 0)
		return r;
	memset(key, 0, CIDR_KEY_LEN);
	if (family == AF_INET) {
		memcpy(key, cidr_mapped, sizeof(cidr_mapped));
		memcpy(key + 12, addr, 4);
	} else {
		memcpy(key, addr, 8);
	}
	return 0;
}

/* Release the list and leave it empty. */
void
cidr_list_free(struct cidr_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
