/*
 * random: random bytes and hex from getrandom(2) (see random.h), for
 * unique names. Owns no state; never falls back to a weaker source.
 */
#include "random.h"

#include <errno.h>
#include <sys/random.h>
#include <sys/types.h>

/* n random bytes; getrandom blocks only before the pool is seeded. */
int
random_bytes(void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom((char *)p + got, n - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	return 0;
}

/* 2 * n random hex digits. */
int
random_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[64];
	size_t done = 0;
	int r;

	while (done < n) {
		size_t k = n - done < sizeof(raw) ? n - done : sizeof(raw);

		if ((r = random_bytes(raw, k)) < 0)
			return r;
		for (size_t i = 0; i < k; i++) {
			out[2 * (done + i)] = hex[raw[i] >> 4];
			out[2 * (done + i) + 1] = hex[raw[i] & 0xf];
		}
		done += k;
	}
	out[2 * n] = '\0';
	return 0;
}
