/*
 * libFuzzer target for the report builder: arbitrary bytes as the stored
 * message (and as a diagnostic), the other inputs chosen by the first
 * four bytes (actions, diagnostic types, RET, size limit, text cap, a
 * short read). Besides memory safety it checks the report's invariants:
 * built without error, no NUL or CR, no line over 998 octets, every top
 * header line a field or a fold, the boundary only as the three
 * delimiters and the closing one, no control character but TAB and LF
 * before the returned part, a US-ASCII delivery-status part, and GMime
 * parses it back as a multipart/report of three parts.
 */
#include <gmime/gmime.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

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

/* Trap unless every line of the top header is a field or a fold. */
static void
fz_check_header(const char *s, size_t hlen)
{
	size_t p = 0;

	while (p < hlen) {
		const char *lf = memchr(s + p, '\n', hlen - p);
		size_t e = lf ? (size_t)(lf - s) : hlen, i = p;

		if (s[p] != ' ' && s[p] != '\t') {
			while (i < e && s[i] > 32 && s[i] < 127 && s[i] != ':')
				i++;
			if (i == p || i == e || s[i] != ':')
				__builtin_trap();
		}
		p = e + 1;
	}
}

/* Trap unless GMime parses s as a multipart/report of three parts. */
static void
fz_check_gmime(const char *s, size_t n)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(s, n);
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
	GMimeObject *top = m ? g_mime_message_get_mime_part(m) : NULL;

	if (!top || !GMIME_IS_MULTIPART(top)
	    || !g_mime_content_type_is_type(g_mime_object_get_content_type(
	    top), "multipart", "report")
	    || g_mime_multipart_get_count(GMIME_MULTIPART(top)) != 3)
		__builtin_trap();
	g_object_unref(m);
	g_object_unref(p);
	g_object_unref(st);
}

/* Trap unless report s (n bytes) holds the invariants of the top. */
static void
fz_check(const char *s, size_t n)
{
	const char *bp = strstr(s, "boundary=\""), *q, *hend, *p, *ds, *ret;
	char delim[128];
	size_t bl, col = 0, count = 0;

	if (strlen(s) != n || n == 0 || s[n - 1] != '\n' || !bp
	    || !(hend = strstr(s, "\n\n")))
		__builtin_trap();
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r')
			__builtin_trap();
		col = s[i] == '\n' ? 0 : col + 1;
		if (col > 998)
			__builtin_trap();
	}
	fz_check_header(s, (size_t)(hend - s) + 1);
	bp += 10;
	if (!(q = strchr(bp, '"')) || (bl = (size_t)(q - bp)) == 0 || bl > 70)
		__builtin_trap();
	delim[0] = '\n';
	delim[1] = delim[2] = '-';
	memcpy(delim + 3, bp, bl);
	delim[bl + 3] = '\0';
	for (p = s; (p = strstr(p, delim)); p++)
		count++;
	/* three delimiters and the closing "\n--B--\n" at the very end */
	if (count != 4 || n < bl + 6
	    || memcmp(s + n - bl - 6, delim, bl + 3) != 0
	    || memcmp(s + n - 3, "--\n", 3) != 0)
		__builtin_trap();
	ds = strstr(s, "Content-Type: message/delivery-status\n");
	ret = ds ? strstr(ds, delim) : NULL;
	if (!ds || !ret)
		__builtin_trap();
	for (p = s; p < ret; p++) {
		unsigned char c = (unsigned char)*p;

		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			__builtin_trap();
		if (p >= ds && c >= 0x80)
			__builtin_trap();
	}
	fz_check_gmime(s, n);
}

/* See the top of the file. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t limits[4] = { 0, 10, 1000, 51200 };
	static const size_t caps[4] = { 0, 1, 40, 5000 };
	struct report_rcpt rc[3];
	struct report_in in;
	struct buf out = BUF_INIT;
	const char *why;
	char *diag;
	size_t dlen;

	if (size < 4)
		return 0;
	dlen = data[3] % 64 < size - 4 ? data[3] % 64 : size - 4;
	if (!(diag = malloc(dlen + 1)))
		return 0;
	memcpy(diag, data + 4, dlen);
	diag[dlen] = '\0';	/* the diagnostic: a C string, up to a NUL */
	for (int i = 0; i < 3; i++) {
		rc[i] = (struct report_rcpt){
			.orcpt = (data[0] >> i) & 1 ? diag : "rfc822;x+2By@ex",
			.addr = i == 2 ? "r\xc3\xa9@ex" : "rcpt@example.com",
			.action = (enum report_action)
				((data[1] >> (2 * i)) & 3),
			.status = i == 1 ? diag : "5.1.1",
			.diag_type = (enum report_diag)
				((data[2] >> (2 * i)) & 3),
			.diag = diag, .remote_mta = (data[0] & 8) ? diag : NULL,
			.last_attempt = (data[0] & 16) ? -1 : 1795428000,
			.will_retry_until = 1795500000,
		};
	}
	in = (struct report_in){
		.reporting_mta = "mx.example.com", .to = "sender@example.org",
		.envid = (data[0] & 32) ? diag : NULL, .arrival = 1795420000,
		.now = 1795428300, .message_id = "r.1@mx.example.com",
		.rcpt = rc, .nrcpt = 1 + (size_t)(data[2] >> 6) % 3,
		.ret = (data[0] & 64) ? REPORT_RETURN_FULL
			: REPORT_RETURN_HEADERS,
		.return_size_limit = limits[(data[1] >> 6) & 3],
		.msg = (const char *)data + 4 + dlen,
		.msg_len = size - 4 - dlen, .msg_total = size - 4 - dlen,
		.text_cap = caps[(data[3] >> 6) & 3],
	};
	if (data[0] & 128)	/* the caller read only part of it */
		in.msg_len = (size_t)report_read_limit(in.ret,
			in.return_size_limit, in.msg_total) / 2;
	if (report_build(&in, &out, &why) != 0)
		__builtin_trap();
	fz_check(out.data, out.len);
	buf_free(&out);
	free(diag);
	return 0;
}
