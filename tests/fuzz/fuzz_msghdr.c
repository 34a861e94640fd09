/*
 * libFuzzer target for msghdr: header splitting, unfolded values, GMime
 * address lists and the Submitted rules. Besides memory safety it checks
 * that fields tile the header, that an accepted submission yields a valid
 * message (header + empty line) without the removed fields, with Date: and
 * Message-ID:, valid qualified recipients, and the body untouched; and
 * that the rules on the header part (msghdr_header_end) plus the rest with
 * CR LF converted agree with the rules on the whole file (streamed .sub).
 */
#include <errno.h>
#include <gmime/gmime.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "msghdr.h"
#include "strv.h"
#include "text.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* GMime is initialised once, as the program does. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_mime_init();
	return 0;
}

/* Trap unless the fields of h tile msg from 0 up to the body. */
static void
fz_check_fields(const char *msg, size_t len, const struct msghdr_block *h)
{
	size_t pos = 0;

	if (h->n == 0 || h->body_off > len)
		__builtin_trap();
	for (size_t i = 0; i < h->n; i++) {
		const struct msghdr_field *f = &h->v[i];

		if (f->off != pos || f->len <= f->name_len ||
		    f->off + f->len > len || msg[f->off + f->name_len] != ':')
			__builtin_trap();
		pos += f->len;
	}
	if (pos != len && (pos + 1 != h->body_off || msg[pos] != '\n'))
		__builtin_trap();
}

/* Trap unless s is a valid qualified address (as the envelope needs). */
static void
fz_check_addr(const char *s, bool allow_null)
{
	struct address a = ADDRESS_INIT;
	const char *why;

	if (address_parse(s, strlen(s), allow_null ? ADDRESS_ALLOW_NULL : 0,
	    &a, &why) != 0)
		__builtin_trap();
	address_free(&a);
}

/* Trap unless an accepted submission has the promised shape. */
static void
fz_check_submission(const struct msghdr_submission *s)
{
	static const char *const gone[] = {
		"Bcc", "Envelope-To", "Envelope-Ignore", "Return-Path",
	};
	struct msghdr_block h = MSGHDR_INIT;
	const char *m = s->message.data, *why;

	if (s->rcpts.n == 0 || s->return_path == NULL || m == NULL)
		__builtin_trap();
	for (size_t i = 0; i < s->rcpts.n; i++) {
		fz_check_addr(s->rcpts.v[i], false);
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->rcpts.v[i], s->rcpts.v[j]) == 0)
				__builtin_trap();
	}
	if (*s->return_path != '\0')
		fz_check_addr(s->return_path, false);
	if (msghdr_parse(m, s->message.len, &h, &why) != 0)
		__builtin_trap();
	fz_check_fields(m, s->message.len, &h);
	/* there is an empty line after the header */
	if (h.v[h.n - 1].off + h.v[h.n - 1].len >= s->message.len)
		__builtin_trap();
	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
		if (msghdr_find(m, &h, gone[i]) >= 0)
			__builtin_trap();
	if (msghdr_find(m, &h, "Date") < 0 ||
	    msghdr_find(m, &h, "Message-ID") < 0 ||
	    msghdr_find(m, &h, "From") < 0)
		__builtin_trap();
	msghdr_free(&h);
}

/* Trap unless the streamed split agrees with the whole file's result. */
static void
fz_check_split(const char *msg, size_t size,
	const struct msghdr_submit_params *p, const struct msghdr_submission *w,
	int wr)
{
	struct msghdr_submission s = MSGHDR_SUBMISSION_INIT;
	const char *why;
	size_t end, rest;
	char *body;
	bool cr = false;
	int r;

	if (msghdr_header_end(msg, size, true, &end) != 0 || end > size ||
	    (end < size && msg[end - 1] != '\n'))
		__builtin_trap();
	if (msghdr_header_end(msg, size, false, &end) == -EAGAIN)
		return;		/* all header: the whole path is taken */
	r = msghdr_submission(msg, end, p, &s, &why);
	if (r != wr)
		__builtin_trap();
	if (r == 0) {
		if ((body = malloc(size - end + 1)) == NULL)
			__builtin_trap();
		rest = text_crlf_to_lf(msg + end, size - end, body, &cr) + cr;
		if (s.message.len + rest != w->message.len ||
		    s.rcpts.n != w->rcpts.n ||
		    strcmp(s.return_path, w->return_path) != 0 ||
		    memcmp(w->message.data + s.message.len, body,
		    rest - cr) != 0)
			__builtin_trap();
		free(body);
	}
	msghdr_submission_free(&s);
}

/* Fuzz entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* every other input without a submitter: -ESRCH is an answer too */
	const struct msghdr_submit_params p = {
		.hostname = "mx.example",
		.default_domain = "example.com",
		.id = "1795428300000001",
		.now = 1795428300,
		.submitter = (size & 1) ? "\"j d\"@mx.example" : NULL,
	};
	struct msghdr_submission s = MSGHDR_SUBMISSION_INIT;
	struct msghdr_block h = MSGHDR_INIT;
	const char *msg = (const char *)data;
	const char *why = NULL;
	int r;

	if (msghdr_parse(msg, size, &h, &why) == 0) {
		fz_check_fields(msg, size, &h);
		for (size_t i = 0; i < h.n && i < 16; i++) {
			struct strv sv = STRV_INIT;
			char *v = NULL;

			if (msghdr_value(msg, &h.v[i], &v) != 0)
				__builtin_trap();
			if (strlen(v) > h.v[i].len || memchr(v, '\n', strlen(v)))
				__builtin_trap();
			r = msghdr_addresses(v, (i & 1) ? "d.example" : NULL,
				&sv, &why);
			if (r != 0 && (r != -EINVAL || sv.n != 0))
				__builtin_trap();
			strv_free(&sv);
			free(v);
		}
		msghdr_free(&h);
	} else if (why == NULL) {
		__builtin_trap();
	}
	r = msghdr_submission(msg, size, &p, &s, &why);
	if (r == 0)
		fz_check_submission(&s);
	else if ((r != -EINVAL && (r != -ESRCH || p.submitter != NULL)) ||
	    why == NULL || s.message.data != NULL)
		__builtin_trap();
	fz_check_split(msg, size, &p, &s, r);
	msghdr_submission_free(&s);
	return 0;
}
