/*
 * libFuzzer target for envelope_parse. Besides memory safety it checks:
 * a parsed envelope formats again and parses back to equal fields; state
 * offsets point at state bytes; a prefix of a good or incomplete envelope
 * is -EAGAIN, and a corrupt prefix stays corrupt with more data; the
 * padded form of a streamed commit fills its reserved room exactly and
 * parses back to the same fields.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Trap unless both strings are NULL or equal. */
static void
fz_same(const char *a, const char *b)
{
	if ((a == NULL) != (b == NULL))
		__builtin_trap();
	if (a != NULL && strcmp(a, b) != 0)
		__builtin_trap();
}

/* Trap unless a and b hold the same fields. */
static void
fz_equal(const struct envelope *a, const struct envelope *b)
{
	if (strcmp(a->uid, b->uid) != 0 || a->submitted != b->submitted ||
	    a->user != b->user || a->trusted != b->trusted ||
	    a->size != b->size || a->nrcpt != b->nrcpt)
		__builtin_trap();
	fz_same(a->tag, b->tag);
	fz_same(a->from, b->from);
	fz_same(a->client, b->client);
	fz_same(a->helo, b->helo);
	fz_same(a->ret, b->ret);
	fz_same(a->envid, b->envid);
	fz_same(a->source, b->source);
	for (size_t i = 0; i < a->nrcpt; i++) {
		fz_same(a->rcpt[i].addr, b->rcpt[i].addr);
		fz_same(a->rcpt[i].orcpt, b->rcpt[i].orcpt);
		if (a->rcpt[i].notify != b->rcpt[i].notify ||
		    a->rcpt[i].state != b->rcpt[i].state)
			__builtin_trap();
	}
}

/* Trap unless every state offset of e points at its state byte in d. */
static void
fz_offsets(const struct envelope *e, const char *d, size_t len)
{
	if (e->header_len == 0 || e->header_len > len ||
	    d[e->header_len - 1] != '\n')
		__builtin_trap();
	for (size_t i = 0; i < e->nrcpt; i++)
		if (e->rcpt[i].state_off >= e->header_len ||
		    d[e->rcpt[i].state_off] != e->rcpt[i].state)
			__builtin_trap();
}

/* Trap unless e padded into its reserved room parses back equal. */
static void
fz_padded(struct envelope *e)
{
	struct envelope again;
	struct buf b = BUF_INIT;
	size_t room;

	if (envelope_reserve(e, &room) != 0 ||
	    envelope_format_padded(e, room, &b) != 0 || b.len != room ||
	    e->header_len != room ||
	    envelope_parse(b.data, b.len, &again, NULL, NULL) != 0)
		__builtin_trap();
	fz_equal(e, &again);
	fz_offsets(&again, b.data, b.len);
	envelope_free(&again);
	buf_free(&b);
}

/* Parse a heap copy of the first n bytes (so ASan sees overreads). */
static int
fz_parse_prefix(const uint8_t *data, size_t n)
{
	struct envelope e;
	char *copy = malloc(n ? n : 1);
	int r;

	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, data, n);
	r = envelope_parse(copy, n, &e, NULL, NULL);
	if (r == 0)
		envelope_free(&e);
	free(copy);
	return r;
}

/* Fuzz entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope e, again;
	struct buf b = BUF_INIT;
	const char *why = NULL;
	unsigned line = 0;
	size_t cut;
	int r;

	r = envelope_parse((const char *)data, size, &e, &why, &line);
	cut = size ? (size_t)data[0] * size / 256 : 0;
	if (r == -EINVAL) {
		if (why == NULL || line == 0)
			__builtin_trap();
		return 0;
	}
	if (r == -EAGAIN) {
		/* every prefix of an incomplete envelope is incomplete */
		if (fz_parse_prefix(data, cut) != -EAGAIN)
			__builtin_trap();
		return 0;
	}
	if (r != 0)
		__builtin_trap();
	fz_offsets(&e, (const char *)data, size);
	if (fz_parse_prefix(data, e.header_len - 1) != -EAGAIN ||
	    fz_parse_prefix(data, cut % e.header_len) != -EAGAIN)
		__builtin_trap();
	/* round trip: what was parsed must format and parse back equal */
	if (envelope_format(&e, &b) != 0)
		__builtin_trap();
	if (e.header_len != b.len)
		__builtin_trap();
	if (envelope_parse(b.data, b.len, &again, NULL, NULL) != 0)
		__builtin_trap();
	fz_equal(&e, &again);
	fz_offsets(&again, b.data, b.len);
	if (again.header_len != b.len)
		__builtin_trap();
	envelope_free(&again);
	fz_padded(&e);
	envelope_free(&e);
	buf_free(&b);
	return 0;
}
