/*
 * msghdr_int.h: what the pieces of msghdr share (msghdr.c,
 * msghdr_submit.c); nothing else includes it.
 */
#ifndef MP_MSGHDR_INT_H
#define MP_MSGHDR_INT_H

#include <stdbool.h>

#include "strv.h"

/* The why-text of an unqualified address without a default domain. */
extern const char msghdr__why_unqualified[];
/* msghdr_addresses, refusing what stays unqualified when need_domain. */
int msghdr__addresses_q(const char *value, const char *default_domain,
	bool need_domain, struct strv *out, const char **why);

#endif
