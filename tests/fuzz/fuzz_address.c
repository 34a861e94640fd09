/*
 * libFuzzer target for address.c: anything address_parse accepts has no
 * control character, formats canonically, and parses back to the same
 * value (format(parse(x)) round trip); refusals always carry a reason.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two possibly-NULL strings are equal. */
static int
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* One input: the first byte selects the flags, the rest is the address. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct address a = ADDRESS_INIT, b = ADDRESS_INIT;
	const char *why = NULL;
	char *out = NULL, *joined = NULL;
	unsigned flags;
	int r;

	if (size < 1)
		return 0;
	flags = data[0] & (ADDRESS_ALLOW_UNQUALIFIED | ADDRESS_ALLOW_NULL);
	r = address_parse((const char *)data + 1, size - 1, flags, &a, &why);
	if (r == -ENOMEM)
		return 0;
	if (r != 0) {
		if (r != -EINVAL || why == NULL || a.local || a.domain)
			__builtin_trap();
		return 0;
	}
	if (text_str_has_ctl(a.local) ||
	    (a.domain && text_str_has_ctl(a.domain)))
		__builtin_trap();
	if (address_format(&a, &out) != 0)
		__builtin_trap();
	if (address_parse(out, strlen(out), flags, &b, &why) != 0)
		__builtin_trap();
	if (!same(a.local, b.local) || !same(a.domain, b.domain))
		__builtin_trap();
	if (address_join(a.local, a.domain, &joined) != 0 ||
	    strcmp(joined, out) != 0)
		__builtin_trap();
	if (*a.local && (out[0] == '"') != address_local_needs_quotes(a.local))
		__builtin_trap();
	free(out);
	free(joined);
	address_free(&a);
	address_free(&b);
	return 0;
}
