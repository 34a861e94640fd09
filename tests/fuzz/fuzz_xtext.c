/*
 * libFuzzer target for xtext (RFC 3461) in smtpcodec.c. For any input:
 * its encoding is valid xtext written only with xtext's octets, and
 * decodes back to the input. When the input is itself valid xtext: it
 * holds only xtext's octets, decodes to at most as many octets, a decoded
 * value judged printable holds no control character or 8-bit octet, and
 * the decoding encodes to valid xtext that decodes to it again.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtpcodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encode p (n bytes), check the encoding, decode it back to p. */
static void
round_trip(const char *p, size_t n)
{
	struct buf b = BUF_INIT;
	char *d;

	if (smtpcodec_xtext_encode(p, n, &b) < 0) {
		buf_free(&b);
		return;
	}
	if (!smtpcodec_xtext_valid(b.data, b.len) ||
	    !smtpcodec_xtext_chars(b.data, b.len) || b.len < n ||
	    b.len > 3 * n)
		abort();
	if ((d = malloc(b.len + 1)) == NULL) {
		buf_free(&b);
		return;
	}
	if (smtpcodec_xtext_decode(b.data, b.len, d) != n ||
	    (n > 0 && memcmp(d, p, n) != 0))
		abort();
	free(d);
	buf_free(&b);
}

/* Check one input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char *d;
	size_t n;

	round_trip(s, size);
	if (!smtpcodec_xtext_valid(s, size))
		return 0;
	if (!smtpcodec_xtext_chars(s, size))
		abort();
	if ((d = malloc(size + 1)) == NULL)
		return 0;
	n = smtpcodec_xtext_decode(s, size, d);
	if (n > size)
		abort();
	if (smtpcodec_xtext_printable(s, size))
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)d[i] < 0x20 ||
			    (unsigned char)d[i] > 0x7e)
				abort();
	round_trip(d, n);
	free(d);
	return 0;
}
