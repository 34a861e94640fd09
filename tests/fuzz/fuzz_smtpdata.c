/*
 * libFuzzer target for the SMTP DATA decoder (smtpcodec.c). The input is
 * what a client sends after the 354. It is decoded in one piece, in pieces
 * of pseudo-random sizes derived from the input itself (the output drained
 * between calls, as a streaming caller does), and counted without output;
 * all three must agree on the size, the flags, where the data ends and
 * (for a good message) the octets. Then: a good message's output holds no
 * CR and is as long as its size; a message not refused as bare had no
 * bare CR or LF in the consumed input; the data ends only after CRLF "."
 * CRLF (or "." CRLF at the start). Last, the input without its CRs is
 * encoded (in pieces) and decoded back to itself.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtpcodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one decoding run gave. */
struct run {
	struct buf out;
	struct smtpcodec_dec d;
	size_t used;
};

/* The next pseudo-random number of the xorshift state *x. */
static uint64_t
next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* A seed from the input (FNV-1a), never 0. */
static uint64_t
seed_of(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h ? h : 1;
}

/* A piece size: mostly tiny (splits inside CRLF "." CRLF), some large. */
static size_t
piece(uint64_t *x, size_t left)
{
	uint64_t r = next(x);
	size_t k = (r & 3) == 0 ? (size_t)(r >> 8) % 4096 + 1 :
		(size_t)(r >> 8) % 6 + 1;

	return k < left ? k : left;
}

/*
 * Decode n bytes at p in pieces (one piece when x is NULL), into out
 * unless count_only; false when the decoder ran out of memory.
 */
static bool
decode(const char *p, size_t n, uint64_t max, uint64_t *x, bool count_only,
	struct run *r)
{
	struct buf part = BUF_INIT;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	smtpcodec_dec_init(&r->d, max);
	do {
		size_t k = x ? piece(x, n - off) : n - off, used = 0;

		if (smtpcodec_decode(&r->d, p + off, k, count_only ? NULL :
		    &part, &used) < 0) {
			buf_free(&part);
			buf_free(&r->out);
			return false;
		}
		if (!r->d.done && used != k)
			__builtin_trap();
		off += used;
		if (part.len > 0 && buf_append(&r->out, part.data,
		    part.len) < 0) {
			buf_free(&part);
			buf_free(&r->out);
			return false;
		}
		buf_reset(&part);
	} while (off < n && !r->d.done);
	buf_free(&part);
	r->used = off;
	return true;
}

/* Trap unless two runs agree (octets only for a good message). */
static void
agree(const struct run *a, const struct run *b, bool octets)
{
	if (a->d.size != b->d.size || a->d.bare != b->d.bare ||
	    a->d.too_big != b->d.too_big || a->d.done != b->d.done ||
	    a->used != b->used)
		__builtin_trap();
	if (octets && !a->d.bare && !a->d.too_big &&
	    (a->out.len != b->out.len || (a->out.len &&
	    memcmp(a->out.data, b->out.data, a->out.len) != 0)))
		__builtin_trap();
}

/* The invariants of one run over the consumed input p[0..r->used). */
static void
check(const char *p, const struct run *r)
{
	size_t n = r->used;

	if (!r->d.bare && !r->d.too_big) {
		if (r->out.len != r->d.size ||
		    (r->out.len && memchr(r->out.data, '\r', r->out.len)))
			__builtin_trap();
	}
	if (!r->d.bare) {
		for (size_t i = 0; i < n; i++) {
			if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
				__builtin_trap();	/* a bare LF passed */
			if (p[i] == '\r' && i + 1 < n && p[i + 1] != '\n')
				__builtin_trap();	/* a bare CR passed */
		}
	}
	if (r->d.done && !(n == 3 && memcmp(p, ".\r\n", 3) == 0) &&
	    !(n >= 5 && memcmp(p + n - 5, "\r\n.\r\n", 5) == 0))
		__builtin_trap();
}

/* Encode m (no CR) in pieces, decode it: m comes back (LF-ended). */
static void
round_trip(const char *m, size_t n, uint64_t *x)
{
	struct smtpcodec_enc e = SMTPCODEC_ENC_INIT;
	struct buf w = BUF_INIT;
	char *o = malloc(2 * n + 1);
	size_t off = 0;
	struct run r;

	if (o == NULL)
		return;
	while (off < n) {
		size_t k = piece(x, n - off);

		if (buf_append(&w, o, smtpcodec_encode(&e, m + off, k, o)) < 0)
			goto out;
		off += k;
	}
	if (buf_puts(&w, smtpcodec_encode_end(&e)) < 0)
		goto out;
	if (!decode(w.data, w.len, UINT64_MAX, x, false, &r))
		goto out;
	if (!r.d.done || r.d.bare || r.used != w.len ||
	    r.out.len != n + (n > 0 && m[n - 1] != '\n') ||
	    (n && memcmp(r.out.data, m, n) != 0))
		__builtin_trap();
	buf_free(&r.out);
out:
	buf_free(&w);
	free(o);
}

/* One input: the bytes after the 354. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	uint64_t seed = seed_of(data, size), x = seed;
	uint64_t maxes[2] = { UINT64_MAX, seed % 64 };
	struct run one, cut, cnt;
	char *nocr;
	size_t k = 0;

	for (int i = 0; i < 2; i++) {
		if (!decode(p, size, maxes[i], NULL, false, &one))
			return 0;
		if (!decode(p, size, maxes[i], &x, false, &cut)) {
			buf_free(&one.out);
			return 0;
		}
		if (!decode(p, size, maxes[i], &x, true, &cnt)) {
			buf_free(&one.out);
			buf_free(&cut.out);
			return 0;
		}
		agree(&one, &cut, true);
		agree(&one, &cnt, false);
		if (cnt.out.len != 0)
			__builtin_trap();
		check(p, &one);
		buf_free(&one.out);
		buf_free(&cut.out);
	}
	if ((nocr = malloc(size + 1)) == NULL)
		return 0;
	for (size_t i = 0; i < size; i++)
		if (p[i] != '\r')
			nocr[k++] = p[i];
	round_trip(nocr, k, &x);
	free(nocr);
	return 0;
}
