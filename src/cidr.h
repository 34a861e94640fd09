/*
 * cidr: lists of networks ("192.0.2.0/24, 2001:db8::/32", as config.c
 * stores them) and membership of a socket address, for [smtp]
 * trusted-networks, and the per-client key for
 * max-connections-per-client. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
 * match IPv4 networks. Pure: no I/O, no globals.
 */
#ifndef MP_CIDR_H
#define MP_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "strv.h"

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

struct cidr_list {
	struct cidr *v;
	size_t n;
};

#define CIDR_LIST_INIT { NULL, 0 }

/* Parse every "ADDRESS[/LEN]" string of sv; -EINVAL with *why. */
int cidr_list_parse(const struct strv *sv, struct cidr_list *out,
	const char **why);
/* Does sa (AF_INET / AF_INET6) fall in one of the networks? */
bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);
void cidr_list_free(struct cidr_list *l);

/* Bytes of a per-client key. */
#define CIDR_KEY_LEN 16

/*
 * The key that groups one client's connections (max-connections-per-
 * client): an IPv4 address (also when IPv4-mapped) as ::ffff:a.b.c.d, an
 * IPv6 address cut to its /64 (the smallest prefix a site is given, RFC
 * 6177; one host can pick any address in it). -EAFNOSUPPORT for other
 * families, -EINVAL for NULL.
 */
int cidr_client_key(const struct sockaddr *sa, uint8_t key[CIDR_KEY_LEN]);

#endif
