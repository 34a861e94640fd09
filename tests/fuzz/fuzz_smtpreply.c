/*
 * libFuzzer target for smtpreply.c, the parsers of what a relay sends.
 * The first byte picks a mode, the rest is the input:
 *   0 (and anything not below): a byte stream from the server, split
 *     into lines by smtpreply_split as the relay client does, fed line by
 *     line; every complete reply is rendered, its status and its EHLO
 *     keywords taken;
 *   1: EHLO keywords: each input line becomes a "250-" line of one reply;
 *   2: the RFC 3463 status parser on the input as one string.
 * Checked: a reply never holds more than SMTPREPLY_MAX bytes; a status is
 * well formed and of the reply's class; an error leaves a reason; nothing
 * leaks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpreply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Check what can be said about a status text. */
static void
check_status(const char *st, size_t n)
{
	char again[RESULT_STATUS_MAX];
	size_t m;

	if (n != strlen(st) || n < 5 || n > 9 ||
	    smtpreply_status_parse(st, again, &m) != 0 || m != n ||
	    strcmp(again, st) != 0)
		abort();
}

/* Everything the relay client does with a complete reply. */
static void
use_reply(const struct smtpreply *rp)
{
	char st[RESULT_STATUS_MAX];
	struct smtpreply_ehlo e;
	struct buf t = BUF_INIT, w = BUF_INIT;

	if (rp->code < 100 || rp->code > 599 || rp->lines.n == 0 ||
	    rp->bytes > SMTPREPLY_MAX)
		abort();
	smtpreply_status(rp, st);
	check_status(st, strlen(st));
	if (st[0] != '0' + rp->code / 100)
		abort();
	smtpreply_ehlo(rp, &e);
	if ((e.ext & ~0x7fu) != 0 ||
	    (e.size_max != 0 && !(e.ext & SMTPREPLY_EXT_SIZE)))
		abort();
	if (smtpreply_text(rp, &t) == 0 && (t.len < 3 ||
	    t.data[0] != '0' + rp->code / 100))
		abort();
	(void)smtpreply_words(rp, st, &w);
	buf_free(&t);
	buf_free(&w);
}

/* Mode 0: a server's byte stream. */
static void
fuzz_stream(const char *p, size_t n)
{
	struct smtpreply rp = SMTPREPLY_INIT;
	size_t off = 0;

	while (off < n) {
		const char *l = p + off;
		const char *why = NULL;
		size_t len, used;
		int r;

		if (!smtpreply_split(l, n - off, &len, &used))
			break;
		if (used > n - off || len >= used || len + 2 < used)
			abort();
		off += used;
		r = smtpreply_line(&rp, l, len, &why);
		if (r < 0) {
			if (why == NULL)
				abort();
			smtpreply_free(&rp);
			rp = (struct smtpreply)SMTPREPLY_INIT;
			continue;
		}
		if (r == SMTPREPLY_DONE) {
			use_reply(&rp);
			smtpreply_free(&rp);
		}
	}
	smtpreply_free(&rp);
}

/* Mode 1: the lines of the input as the keywords of one EHLO reply. */
static void
fuzz_ehlo(const char *p, size_t n)
{
	struct smtpreply rp = SMTPREPLY_INIT;
	struct buf line = BUF_INIT;
	const char *why = NULL;
	size_t off = 0;

	if (smtpreply_line(&rp, "250-fuzz.test", 13, &why) != SMTPREPLY_MORE)
		abort();
	while (off <= n) {
		const char *l = p + off;
		const char *nl = memchr(l, '\n', n - off);
		size_t len = nl ? (size_t)(nl - l) : n - off;
		int r;

		buf_reset(&line);
		if (buf_printf(&line, "250%c", nl ? '-' : ' ') < 0 ||
		    buf_append(&line, l, len) < 0)
			break;
		r = smtpreply_line(&rp, line.data, line.len, &why);
		if (r < 0)
			break;
		if (r == SMTPREPLY_DONE) {
			use_reply(&rp);
			break;
		}
		off += len + 1;
	}
	buf_free(&line);
	smtpreply_free(&rp);
}

/* Mode 2: the status parser. */
static void
fuzz_status(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	char st[RESULT_STATUS_MAX];
	size_t len;

	if (s == NULL)
		return;
	memcpy(s, p, n);
	s[n] = '\0';
	if (smtpreply_status_parse(s, st, &len) == 0) {
		check_status(st, len);
		if (memcmp(st, s, len) != 0 || (s[len] != ' ' &&
		    s[len] != '\0'))
			abort();
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;

	if (size == 0)
		return 0;
	switch (data[0]) {
	case 1:
		fuzz_ehlo(p, size - 1);
		break;
	case 2:
		fuzz_status(p, size - 1);
		break;
	default:
		fuzz_stream(p, size - 1);
		break;
	}
	return 0;
}
