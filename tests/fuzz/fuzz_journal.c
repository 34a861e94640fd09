/*
 * libFuzzer target for the queue-file journal parser (journal.c). For any
 * input: the parser never reads past it, *used ends at a line end, and
 * every record it accepts formats back to exactly the bytes it came from
 * (the format is canonical), so a journal the store appends to is always
 * read back as written.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct walk {
	const char *p;
	size_t off;
};

/* Re-format a parsed record and compare it with its line. */
static int
check(void *arg, const struct journal_attempt *a)
{
	struct walk *w = arg;
	struct journal_attempt c = *a;
	struct buf b = BUF_INIT;
	char *reason = malloc(a->reason_len + 1);

	if (reason == NULL)
		return -1;
	if (a->reason_len)	/* a `reported` record has no reason */
		memcpy(reason, a->reason, a->reason_len);
	reason[a->reason_len] = '\0';
	c.reason = reason;
	if (journal_format(&c, &b) < 0 ||
	    memcmp(b.data, w->p + w->off, b.len) != 0)
		abort();
	w->off += b.len;
	buf_free(&b);
	free(reason);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct walk w = { (const char *)data, 0 };
	const char *why;
	unsigned line;
	size_t used;
	int r;

	r = journal_parse((const char *)data, size, 4, check, &w, &used, &why,
		&line);
	if (used > size || (used > 0 && data[used - 1] != '\n'))
		abort();
	if (r == 0 && (w.off != used || memchr(data + used, '\n',
	    size - used) != NULL))
		abort();
	if (r < 0 && (why == NULL || line == 0))
		abort();
	return 0;
}
