/*
 * cidr: lists of networks ("192.0.2.0/24, 2001:db8::/32", as config.c
 * stores them) and membership of a socket address, for [smtp]
 * trusted-networks. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match
 * IPv4 networks. Pure: no I/O, no globals.
 */
#ifndef MP_CIDR_H
#define MP_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"

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

#endif
