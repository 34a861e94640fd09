/*
 * Unit tests for smtpcodec.c: the DATA decoder on tricky inputs fed at
 * every split point (also inside CRLF "." CRLF) and byte by byte, against
 * a byte-at-a-time reference model of the decoder smtpd had before the
 * module existed (so the smuggling defence is exactly the old one); the end
 * of the data, dot-unstuffing, bare CR/LF, max-size, the count-only mode
 * and draining the output between calls; the encoder against the old
 * relay encoder, and decode(encode(x)) == x; xtext: its syntax, its
 * character set, printable decoding, decoding and encoding.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtpcodec.h"

/* What one decoding run gave. */
struct outcome {
	struct buf out;		/* decoded octets (when still good) */
	uint64_t size;
	bool bare, too_big, done;
	size_t used;		/* input bytes consumed */
};

/* ------------------------------------------------------------------ */
/* The reference: smtpd's data_consume before smtpcodec, byte by byte. */

enum ref_state { R_BOL, R_DOT, R_DOTCR, R_MID, R_CR };

/* The old data_put: count, then keep unless refused or too big. */
static void
ref_put(struct outcome *o, uint64_t max, const char *p, size_t n)
{
	o->size += n;
	if (o->too_big || o->bare)
		return;
	if (o->size > max) {
		o->too_big = true;
		buf_free(&o->out);
		return;
	}
	assert_int_equal(buf_append(&o->out, p, n), 0);
}

/* The old state machine, one byte per step. */
static void
ref_decode(const char *p, size_t n, uint64_t max, struct outcome *o)
{
	enum ref_state st = R_BOL;
	size_t i = 0;

	memset(o, 0, sizeof(*o));
	while (i < n) {
		char c = p[i];

		switch (st) {
		case R_MID:
			if (c == '\r') {
				st = R_CR;
			} else if (c == '\n') {
				o->bare = true;
				buf_free(&o->out);
				ref_put(o, max, "\n", 1);
			} else {
				ref_put(o, max, &c, 1);
			}
			i++;
			break;
		case R_BOL:
			if (c == '.') {
				st = R_DOT;
				i++;
			} else {
				st = R_MID;
			}
			break;
		case R_DOT:
			if (c == '\r') {
				st = R_DOTCR;
				i++;
			} else {
				st = R_MID;
			}
			break;
		case R_DOTCR:
			if (c == '\n') {
				o->done = true;
				o->used = i + 1;
				return;
			}
			o->bare = true;
			buf_free(&o->out);
			st = R_MID;
			break;
		case R_CR:
			if (c == '\n') {
				ref_put(o, max, "\n", 1);
				st = R_BOL;
				i++;
			} else {
				o->bare = true;
				buf_free(&o->out);
				st = R_MID;
			}
			break;
		}
	}
	o->used = n;
}

/* ------------------------------------------------------------------ */
/* Running the decoder. */

/*
 * Decode n bytes at p cut at the nsplit offsets in split (ascending),
 * feeding each piece until it is consumed or the data ends; with drain,
 * the output buffer is emptied into the outcome after every call (as a
 * streaming caller would).
 */
static void
run(const char *p, size_t n, uint64_t max, const size_t *split,
	size_t nsplit, bool drain, struct outcome *o)
{
	struct smtpcodec_dec d;
	struct buf out = BUF_INIT;
	size_t start = 0;

	memset(o, 0, sizeof(*o));
	smtpcodec_dec_init(&d, max);
	for (size_t k = 0; k <= nsplit && !d.done; k++) {
		size_t stop = k < nsplit ? split[k] : n, used = 0;

		assert_true(stop >= start && stop <= n);
		assert_int_equal(smtpcodec_decode(&d, p + start, stop - start,
			&out, &used), 0);
		if (!d.done)
			assert_int_equal(used, stop - start);
		o->used += used;
		start = stop;
		if (drain && out.len > 0) {
			assert_int_equal(buf_append(&o->out, out.data,
				out.len), 0);
			buf_reset(&out);
		}
	}
	if (!drain && out.len > 0)
		assert_int_equal(buf_append(&o->out, out.data, out.len), 0);
	buf_free(&out);
	o->size = d.size;
	o->bare = d.bare;
	o->too_big = d.too_big;
	o->done = d.done;
	if (o->bare || o->too_big)
		buf_free(&o->out);	/* what smtpd does */
}

/* Do two outcomes agree (the output only counts for a good message)? */
static void
same(const struct outcome *a, const struct outcome *b, const char *what,
	const char *p, size_t n)
{
	bool good = !a->bare && !a->too_big;

	if (a->size != b->size || a->bare != b->bare ||
	    a->too_big != b->too_big || a->done != b->done ||
	    a->used != b->used || (good && (a->out.len != b->out.len ||
	    (a->out.len && memcmp(a->out.data, b->out.data,
	    a->out.len) != 0)))) {
		struct buf e = BUF_INIT;

		for (size_t i = 0; i < n; i++)
			buf_printf(&e, (unsigned char)p[i] < 0x20 ? "\\x%02x" :
				"%c", (unsigned char)p[i]);
		fail_msg("%s differs on \"%s\": size %llu/%llu bare %d/%d "
			"big %d/%d done %d/%d used %zu/%zu out %zu/%zu", what,
			e.data ? e.data : "", (unsigned long long)a->size,
			(unsigned long long)b->size, a->bare, b->bare,
			a->too_big, b->too_big, a->done, b->done, a->used,
			b->used, a->out.len, b->out.len);
	}
}

/* Free an outcome's output. */
static void
outcome_free(struct outcome *o)
{
	buf_free(&o->out);
}

/*
 * Check n bytes at p against the reference: in one piece, in two pieces
 * cut at every offset, in three pieces cut at every pair of offsets, and
 * byte by byte (with the output drained between calls).
 */
static void
check_all_splits(const char *p, size_t n, uint64_t max)
{
	struct outcome ref, got;
	size_t cut[2];

	ref_decode(p, n, max, &ref);
	run(p, n, max, NULL, 0, false, &got);
	same(&got, &ref, "one piece", p, n);
	outcome_free(&got);
	for (size_t i = 0; i <= n; i++) {
		cut[0] = i;
		run(p, n, max, cut, 1, false, &got);
		same(&got, &ref, "two pieces", p, n);
		outcome_free(&got);
		for (size_t j = i; j <= n && n <= 64; j++) {
			cut[1] = j;
			run(p, n, max, cut, 2, true, &got);
			same(&got, &ref, "three pieces", p, n);
			outcome_free(&got);
		}
	}
	{
		size_t *every = malloc((n + 1) * sizeof(*every));

		assert_non_null(every);
		for (size_t i = 0; i < n; i++)
			every[i] = i + 1;
		run(p, n, max, every, n, true, &got);
		same(&got, &ref, "byte by byte", p, n);
		outcome_free(&got);
		free(every);
	}
	outcome_free(&ref);
}

/* Decode the C string s in one piece (max 1 MiB). */
static void
dec(const char *s, struct outcome *o)
{
	run(s, strlen(s), 1 << 20, NULL, 0, false, o);
}

/* ------------------------------------------------------------------ */
/* Decoder tests */

/* The inputs the tests below and the SMTP smuggling tests use. */
static const char *const tricky[] = {
	".\r\n",
	"\r\n.\r\n",
	"a\r\n.\r\n",
	"a\r\n.\r\nMAIL FROM:<x@y>\r\n",
	"..\r\n.\r\n",
	"..a\r\n.a\r\n.\r\n",
	"a\r\n..\r\n...\r\n.\r\n",
	"a\n.\nb\r\n.\r\n",
	"a\r.\rb\r\n.\r\n",
	"a\n.\r\nb\r\n.\r\n",
	"a\r\n.\nb\r\n.\r\n",
	"a\r\n.\rb\r\n.\r\n",
	"a\r.\r\nb\r\n.\r\n",
	"a\nb\r\n.\r\n",
	"a\rb\r\n.\r\n",
	"\r\r\n.\r\n",
	"\n\r\n.\r\n",
	"a\r\r\n\r\n.\r\n",
	".\r\r\n.\r\n",
	".\n.\r\n",
	".x\r\n.\r\n",
	"a\r\n.\r",
	"a\r\n.",
	"a\r\n",
	"a\r",
	"",
	"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
	"\xff\x80\t\x01\r\n.\r\n",
	"line\r\n.line\r\n..line\r\n.\r\n",
};

/* Every tricky input at every split point gives the reference result. */
static void
test_tricky_splits(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
		size_t n = strlen(tricky[i]);

		check_all_splits(tricky[i], n, 1 << 20);
		check_all_splits(tricky[i], n, 3);	/* and too big */
		check_all_splits(tricky[i], n, 0);
	}
	/* a NUL is an ordinary octet */
	check_all_splits("a\0b\r\n.\r\n", 8, 1 << 20);
}

/*
 * Every string of up to 8 bytes over "a", ".", CR and LF, cut at every
 * offset, agrees with the reference (and max-size 2 for the limit).
 */
static void
test_exhaustive_small(void **state)
{
	static const char alpha[] = { 'a', '.', '\r', '\n' };
	char s[8];

	(void)state;
	for (size_t len = 0; len <= 8; len++) {
		size_t total = 1;

		for (size_t i = 0; i < len; i++)
			total *= 4;
		for (size_t v = 0; v < total; v++) {
			struct outcome ref, got;
			size_t x = v, cut;

			for (size_t i = 0; i < len; i++, x /= 4)
				s[i] = alpha[x % 4];
			for (uint64_t max = 2; max <= 1000; max += 998) {
				ref_decode(s, len, max, &ref);
				for (cut = 0; cut <= len; cut++) {
					run(s, len, max, &cut, 1, true, &got);
					same(&got, &ref, "split", s, len);
					outcome_free(&got);
				}
				outcome_free(&ref);
			}
		}
	}
}

/* The end of the data and what follows it. */
static void
test_end_of_data(void **state)
{
	struct outcome o;

	(void)state;
	dec(".\r\n", &o);		/* an empty message */
	assert_true(o.done);
	assert_int_equal(o.used, 3);
	assert_int_equal(o.out.len, 0);
	assert_int_equal(o.size, 0);
	outcome_free(&o);

	dec("Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n", &o);
	assert_true(o.done);
	assert_false(o.bare);
	assert_int_equal(o.used, strlen("Subject: x\r\n\r\nhi\r\n.\r\n"));
	assert_string_equal(o.out.data, "Subject: x\n\nhi\n");
	assert_int_equal(o.size, strlen("Subject: x\n\nhi\n"));
	outcome_free(&o);

	/* not yet: the data goes on */
	dec("a\r\n.\r", &o);
	assert_false(o.done);
	assert_int_equal(o.used, 5);
	outcome_free(&o);

	/* after the end, nothing more is consumed */
	{
		struct smtpcodec_dec d;
		struct buf out = BUF_INIT;
		size_t used = 99;

		smtpcodec_dec_init(&d, 100);
		assert_int_equal(smtpcodec_decode(&d, ".\r\nX", 4, &out,
			&used), 0);
		assert_int_equal(used, 3);
		assert_int_equal(smtpcodec_decode(&d, "X", 1, &out, &used), 0);
		assert_int_equal(used, 0);
		assert_int_equal(smtpcodec_decode(&d, "X", 0, &out, &used), 0);
		assert_int_equal(used, 0);
		buf_free(&out);
	}
}

/* Dot-stuffing is undone; a line of one '.' within the data is kept. */
static void
test_dot_unstuffing(void **state)
{
	struct outcome o;

	(void)state;
	dec("..\r\n...\r\n.x\r\na.b\r\n.\r\n", &o);
	assert_true(o.done);
	assert_false(o.bare);
	assert_string_equal(o.out.data, ".\n..\nx\na.b\n");
	outcome_free(&o);
}

/* Bare CR and LF anywhere refuse the message and never end it. */
static void
test_bare_cr_lf(void **state)
{
	static const char *const tricks[] = {
		"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r", "\r.\r\n",
		"a\nb\r\n", "a\rb\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
		struct buf b = BUF_INIT;
		struct outcome o;

		assert_int_equal(buf_printf(&b, "Subject: cover\r\n\r\ncover%s"
			"MAIL FROM:<e@x>\r\nRCPT TO:<v@y>\r\nDATA\r\n\r\n"
			"evil\r\n.\r\nNOOP\r\n", tricks[i]), 0);
		dec(b.data, &o);
		assert_true(o.bare);
		assert_true(o.done);
		/* the data ends only at the last CRLF "." CRLF */
		assert_int_equal(o.used, b.len - strlen("NOOP\r\n"));
		outcome_free(&o);
		check_all_splits(b.data, b.len, 1 << 20);
		buf_free(&b);
	}
}

/* max-size: exactly max is fine, one more is too big; bare wins. */
static void
test_max_size(void **state)
{
	struct outcome o;

	(void)state;
	run("abc\r\n.\r\n", 8, 4, NULL, 0, false, &o);	/* "abc\n" */
	assert_false(o.too_big);
	assert_string_equal(o.out.data, "abc\n");
	assert_int_equal(o.size, 4);
	outcome_free(&o);
	run("abcd\r\n.\r\n", 9, 4, NULL, 0, false, &o);
	assert_true(o.too_big);
	assert_true(o.done);
	assert_int_equal(o.size, 5);	/* counted to the end */
	outcome_free(&o);
	/* a bare LF before the limit: refused as bare, not too big */
	run("a\nbcdefgh\r\n.\r\n", 15, 4, NULL, 0, false, &o);
	assert_true(o.bare);
	assert_false(o.too_big);
	outcome_free(&o);
	/* too big first, then a bare LF: both */
	run("abcdefgh\nb\r\n.\r\n", 15, 4, NULL, 0, false, &o);
	assert_true(o.bare);
	assert_true(o.too_big);
	outcome_free(&o);
}

/* With out NULL the data is scanned and counted, nothing kept. */
static void
test_count_only(void **state)
{
	struct smtpcodec_dec d;
	size_t used = 0;

	(void)state;
	smtpcodec_dec_init(&d, 100);
	assert_int_equal(smtpcodec_decode(&d, "ab\r\n..c\r\n.\r\nX", 13,
		NULL, &used), 0);
	assert_true(d.done);
	assert_int_equal(used, 12);
	assert_int_equal(d.size, strlen("ab\n.c\n"));
}

/* Output drained between calls is the same message as kept whole. */
static void
test_drain(void **state)
{
	const char *m = "From: a@b\r\n\r\nline one\r\n..dot\r\nline three"
		"\r\n.\r\n";
	struct smtpcodec_dec d;
	struct buf out = BUF_INIT, all = BUF_INIT;
	size_t n = strlen(m), off = 0;

	(void)state;
	smtpcodec_dec_init(&d, 1000);
	while (off < n && !d.done) {
		size_t used = 0, k = n - off < 5 ? n - off : 5;

		assert_int_equal(smtpcodec_decode(&d, m + off, k, &out, &used),
			0);
		off += used;
		/* the output buffer never holds more than one piece */
		assert_true(out.len <= k);
		assert_int_equal(buf_append(&all, out.data ? out.data : "",
			out.len), 0);
		buf_reset(&out);
	}
	assert_true(d.done);
	assert_string_equal(all.data, "From: a@b\n\nline one\n.dot\n"
		"line three\n");
	buf_free(&out);
	buf_free(&all);
}

/* A long message in 64 KiB-like pieces of odd sizes. */
static void
test_long_message(void **state)
{
	struct buf m = BUF_INIT, want = BUF_INIT;
	size_t cuts[64], nc = 0;
	struct outcome o;

	(void)state;
	for (int i = 0; i < 5000; i++) {
		assert_int_equal(buf_printf(&m, "%sline %d of the body\r\n",
			i % 7 == 0 ? "." : "", i), 0);
		assert_int_equal(buf_printf(&want, "line %d of the body\n", i),
			0);
	}
	assert_int_equal(buf_puts(&m, ".\r\n"), 0);
	for (size_t c = 1; c < m.len && nc < 64; c += 1777 + nc * 13)
		cuts[nc++] = c;
	run(m.data, m.len, 1 << 30, cuts, nc, true, &o);
	assert_true(o.done);
	assert_false(o.bare);
	assert_int_equal(o.out.len, want.len);
	assert_memory_equal(o.out.data, want.data, want.len);
	outcome_free(&o);
	buf_free(&m);
	buf_free(&want);
}

/* ------------------------------------------------------------------ */
/* Encoder tests */

/* The old relay encoder, byte by byte. */
static size_t
ref_encode(bool *bol, bool *cr, const char *p, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (*bol && c == '.')
			out[o++] = '.';
		if (c == '\n') {
			if (!*cr)
				out[o++] = '\r';
			out[o++] = '\n';
			*bol = true;
		} else {
			out[o++] = c;
			*bol = false;
		}
		*cr = c == '\r';
	}
	return o;
}

/* Encode the n bytes at p cut at cut; the encoded bytes plus the end. */
static void
encode_split(const char *p, size_t n, size_t cut, struct buf *b)
{
	struct smtpcodec_enc e = SMTPCODEC_ENC_INIT;
	char *o = malloc(2 * n + 1);
	size_t k;

	assert_non_null(o);
	k = smtpcodec_encode(&e, p, cut, o);
	assert_int_equal(buf_append(b, o, k), 0);
	k = smtpcodec_encode(&e, p + cut, n - cut, o);
	assert_int_equal(buf_append(b, o, k), 0);
	assert_int_equal(buf_puts(b, smtpcodec_encode_end(&e)), 0);
	free(o);
}

/*
 * Every string of up to 8 bytes over "a", ".", CR and LF encodes as the
 * old encoder did, whatever the split; and without CR it decodes back.
 */
static void
test_encode(void **state)
{
	static const char alpha[] = { 'a', '.', '\r', '\n' };
	char s[8], ro[17];

	(void)state;
	for (size_t len = 0; len <= 8; len++) {
		size_t total = 1;

		for (size_t i = 0; i < len; i++)
			total *= 4;
		for (size_t v = 0; v < total; v++) {
			bool bol = true, cr = false, has_cr = false;
			struct buf want = BUF_INIT;
			size_t x = v, rn;

			for (size_t i = 0; i < len; i++, x /= 4) {
				s[i] = alpha[x % 4];
				has_cr |= s[i] == '\r';
			}
			rn = ref_encode(&bol, &cr, s, len, ro);
			assert_int_equal(buf_append(&want, ro, rn), 0);
			assert_int_equal(buf_puts(&want, bol ? ".\r\n" :
				"\r\n.\r\n"), 0);
			for (size_t cut = 0; cut <= len; cut++) {
				struct buf got = BUF_INIT;
				struct outcome o;

				encode_split(s, len, cut, &got);
				assert_int_equal(got.len, want.len);
				assert_memory_equal(got.data, want.data,
					want.len);
				if (!has_cr) {
					/* decode(encode(x)) == x */
					run(got.data, got.len, 1 << 20, NULL,
						0, false, &o);
					assert_true(o.done);
					assert_false(o.bare);
					assert_int_equal(o.used, got.len);
					assert_int_equal(o.out.len, len +
						(len && s[len - 1] != '\n'));
					assert_memory_equal(o.out.data ?
						o.out.data : "", s, len);
					outcome_free(&o);
				}
				buf_free(&got);
			}
			buf_free(&want);
		}
	}
}

/* A CRLF in the message stays CRLF; dots are doubled at line starts. */
static void
test_encode_examples(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	encode_split("a\r\nb\n.c\n..\n", 11, 4, &b);
	assert_string_equal(b.data, "a\r\nb\r\n..c\r\n...\r\n.\r\n");
	buf_reset(&b);
	encode_split("no end", 6, 0, &b);
	assert_string_equal(b.data, "no end\r\n.\r\n");
	buf_reset(&b);
	encode_split("", 0, 0, &b);
	assert_string_equal(b.data, ".\r\n");
	buf_free(&b);
}

/* RFC 3461 xtext syntax (moved from test_smtpcmd.c). */
static void
test_xtext_valid(void **state)
{
	static const char *const good[] = {
		"", "abc", "+2B", "a+20b", "!\"#$%&'()*,-./0123456789:;<>?@[\\]^_`{|}~",
		"+00", "+FF", "ABCxyz",
	};
	static const char *const wrong[] = {
		"a b", "+", "+2", "+2b", "+g0", "a=b", "+ab", "\x7f", "\x01",
		"a\tb", "\x80", "x+", "+0",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!smtpcodec_xtext_valid(good[i], strlen(good[i])))
			fail_msg("'%s' refused", good[i]);
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
		if (smtpcodec_xtext_valid(wrong[i], strlen(wrong[i])))
			fail_msg("'%s' accepted", wrong[i]);
	assert_true(smtpcodec_xtext_valid(NULL, 0));
	/* the length is honoured: "+2B" cut to "+2" is invalid */
	assert_false(smtpcodec_xtext_valid("+2B", 2));
	assert_true(smtpcodec_xtext_valid("ab\x01", 2));
	assert_false(smtpcodec_xtext_valid("a\0b", 3));
}

/* Only the octets xtext is written with; escapes are not checked. */
static void
test_xtext_chars(void **state)
{
	(void)state;
	assert_true(smtpcodec_xtext_chars("", 0));
	assert_true(smtpcodec_xtext_chars("a+b=c~!", 7));
	assert_true(smtpcodec_xtext_chars("+", 1));
	assert_false(smtpcodec_xtext_chars("a b", 3));
	assert_false(smtpcodec_xtext_chars("a\x7f", 2));
	assert_false(smtpcodec_xtext_chars("\x80", 1));
	assert_false(smtpcodec_xtext_chars("a\0b", 3));
	/* the length is honoured */
	assert_true(smtpcodec_xtext_chars("ab c", 2));
}

/* Decoded printable ASCII, TAB and other control characters refused. */
static void
test_xtext_printable(void **state)
{
	(void)state;
	assert_true(smtpcodec_xtext_printable("a+20b+7E", 8));
	assert_true(smtpcodec_xtext_printable("", 0));
	assert_false(smtpcodec_xtext_printable("+09", 3));
	assert_false(smtpcodec_xtext_printable("+0A", 3));
	assert_false(smtpcodec_xtext_printable("+1F", 3));
	assert_false(smtpcodec_xtext_printable("a+7F", 4));
	assert_false(smtpcodec_xtext_printable("+C3+A9", 6));
}

/* Decode into a NUL-terminated copy. */
static size_t
xtext_decode_str(const char *x, char *out)
{
	size_t n = smtpcodec_xtext_decode(x, strlen(x), out);

	out[n] = '\0';
	return n;
}

/* Decoding, and decode(encode(s)) == s for every byte value. */
static void
test_xtext_codec(void **state)
{
	struct buf b = BUF_INIT;
	char d[600], all[256];

	(void)state;
	assert_int_equal(xtext_decode_str("Joe+2BSmith@Old.Example", d), 21);
	assert_string_equal(d, "Joe+Smith@Old.Example");
	assert_int_equal(xtext_decode_str("+22a+20b+22@x", d), 7);
	assert_string_equal(d, "\"a b\"@x");
	assert_int_equal(xtext_decode_str("", d), 0);
	assert_int_equal(xtext_decode_str("+00", d), 1);
	assert_int_equal(d[0], '\0');

	assert_int_equal(smtpcodec_xtext_encode("a+b=c d", 7, &b), 0);
	assert_string_equal(b.data, "a+2Bb+3Dc+20d");
	buf_reset(&b);
	assert_int_equal(smtpcodec_xtext_encode("\t\x7f\x80\xff~!", 6, &b),
	    0);
	assert_string_equal(b.data, "+09+7F+80+FF~!");
	buf_reset(&b);
	assert_int_equal(smtpcodec_xtext_encode("", 0, &b), 0);
	assert_int_equal(b.len, 0);

	for (size_t i = 0; i < sizeof(all); i++)
		all[i] = (char)(255 - i);
	assert_int_equal(smtpcodec_xtext_encode(all, sizeof(all), &b), 0);
	assert_true(smtpcodec_xtext_valid(b.data, b.len));
	assert_true(smtpcodec_xtext_chars(b.data, b.len));
	assert_true(b.len < sizeof(d));
	assert_int_equal(smtpcodec_xtext_decode(b.data, b.len, d),
	    sizeof(all));
	assert_memory_equal(d, all, sizeof(all));
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tricky_splits),
		cmocka_unit_test(test_exhaustive_small),
		cmocka_unit_test(test_end_of_data),
		cmocka_unit_test(test_dot_unstuffing),
		cmocka_unit_test(test_bare_cr_lf),
		cmocka_unit_test(test_max_size),
		cmocka_unit_test(test_count_only),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_long_message),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_encode_examples),
		cmocka_unit_test(test_xtext_valid),
		cmocka_unit_test(test_xtext_chars),
		cmocka_unit_test(test_xtext_printable),
		cmocka_unit_test(test_xtext_codec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
