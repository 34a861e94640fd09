/*
 * smtpreply: SMTP reply parsing for the client side (see smtpreply.h).
 * Owns the reply line grammar, the multi-line reply rules, the RFC 3463
 * status syntax (result.c's code maps use the same parser) and the EHLO
 * keyword table. Promises: any bytes are either parsed or refused with a
 * constant reason; a reply never exceeds SMTPREPLY_MAX; nothing is cut.
 * Never does I/O, never keeps state between calls.
 */
#include "smtpreply.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "strv.h"

/* Free the lines and reset. */
void
smtpreply_free(struct smtpreply *rp)
{
	strv_free(&rp->lines);
	rp->code = 0;
	rp->bytes = 0;
}

/* Is c an ASCII digit? */
static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The next line of a byte stream; see smtpreply.h. */
int
smtpreply_split(const char *p, size_t n, size_t *len, size_t *used)
{
	const char *nl = memchr(p, '\n', n);
	size_t l;

	if (nl == NULL)
		return 0;
	l = (size_t)(nl - p);
	*used = l + 1;
	if (l > 0 && p[l - 1] == '\r')
		l--;
	*len = l;
	return 1;
}

/* Add one reply line; see smtpreply.h. */
int
smtpreply_line(struct smtpreply *rp, const char *line, size_t len,
	const char **why)
{
	char sep;
	int code;

	if (len < 3 || line[0] < '1' || line[0] > '5' || !is_digit(line[1]) ||
	    !is_digit(line[2])) {
		*why = "malformed reply line";
		return -EPROTO;
	}
	sep = len > 3 ? line[3] : ' ';
	if (sep != ' ' && sep != '-') {
		*why = "malformed reply line";
		return -EPROTO;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (rp->lines.n == 0)
		rp->code = code;
	else if (code != rp->code) {
		*why = "the lines of a reply have different codes";
		return -EPROTO;
	}
	if (len > SMTPREPLY_MAX || rp->bytes + len + 2 > SMTPREPLY_MAX) {
		*why = "reply too long";
		return -EPROTO;
	}
	rp->bytes += len + 2;
	if (strv_pushn(&rp->lines, len > 4 ? line + 4 : "",
	    len > 4 ? len - 4 : 0) < 0) {
		*why = "out of memory";
		return -ENOMEM;
	}
	return sep == '-' ? SMTPREPLY_MORE : SMTPREPLY_DONE;
}

/* Skip 1-3 digits at *p; false when there are none or more than 3. */
static bool
skip_digits(const char **p)
{
	int n = 0;

	while (n < 3 && is_digit(**p)) {
		(*p)++;
		n++;
	}
	return n > 0 && !is_digit(**p);
}

/* Parse "C.S.D" at the start of s; see smtpreply.h. */
int
smtpreply_status_parse(const char *s, char st[RESULT_STATUS_MAX],
	size_t *len)
{
	const char *p = s;
	size_t n;

	if (s == NULL || !is_digit(p[0]) || p[1] != '.')
		return -EINVAL;
	p += 2;
	if (!skip_digits(&p) || *p != '.')
		return -EINVAL;
	p++;
	if (!skip_digits(&p) || (*p != '\0' && *p != ' '))
		return -EINVAL;
	n = (size_t)(p - s);
	if (n >= RESULT_STATUS_MAX)
		return -EINVAL;	/* cannot happen: 1 + 1 + 3 + 1 + 3 */
	memcpy(st, s, n);
	st[n] = '\0';
	*len = n;
	return 0;
}

/* The status of a reply, else its class default. */
void
smtpreply_status(const struct smtpreply *rp, char st[RESULT_STATUS_MAX])
{
	const char *p = rp->lines.n ? rp->lines.v[0] : "";
	char cls = (char)('0' + rp->code / 100 % 10);
	char got[RESULT_STATUS_MAX];
	size_t n;

	if (smtpreply_status_parse(p, got, &n) == 0 && got[0] == cls) {
		memcpy(st, got, n + 1);
		return;
	}
	st[0] = cls;
	memcpy(st + 1, ".0.0", 5);
}

/* The value of "SIZE n": n, or 0 for none, a bad or an absurd number. */
static uint64_t
ehlo_size(const char *p)
{
	uint64_t v = 0;

	while (*p == ' ')
		p++;
	for (; is_digit(*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return 0;	/* absurd: no limit */
		v = v * 10 + (uint64_t)(*p - '0');
	}
	return v;
}

/* The EHLO keywords we know, with their bits. */
static const struct {
	const char *kw;
	unsigned bit;
} ehlo_keywords[] = {
	{ "PIPELINING", SMTPREPLY_EXT_PIPELINING },
	{ "SIZE", SMTPREPLY_EXT_SIZE },
	{ "8BITMIME", SMTPREPLY_EXT_8BITMIME },
	{ "STARTTLS", SMTPREPLY_EXT_STARTTLS },
	{ "DSN", SMTPREPLY_EXT_DSN },
	{ "ENHANCEDSTATUSCODES", SMTPREPLY_EXT_ENHANCED },
	{ "SMTPUTF8", SMTPREPLY_EXT_SMTPUTF8 },
};

/* The keywords of an EHLO reply; see smtpreply.h. */
void
smtpreply_ehlo(const struct smtpreply *rp, struct smtpreply_ehlo *out)
{
	out->ext = 0;
	out->size_max = 0;
	for (size_t i = 1; i < rp->lines.n; i++) {
		const char *l = rp->lines.v[i];
		size_t kw = strcspn(l, " ");

		for (size_t k = 0; k < sizeof(ehlo_keywords) /
		    sizeof(ehlo_keywords[0]); k++) {
			if (strlen(ehlo_keywords[k].kw) != kw ||
			    strncasecmp(l, ehlo_keywords[k].kw, kw) != 0)
				continue;
			out->ext |= ehlo_keywords[k].bit;
			if (ehlo_keywords[k].bit == SMTPREPLY_EXT_SIZE)
				out->size_max = ehlo_size(l + kw);
			break;
		}
	}
}

/* "NNN text text ..." */
int
smtpreply_text(const struct smtpreply *rp, struct buf *out)
{
	int r = buf_printf(out, "%03d", rp->code);

	for (size_t i = 0; r == 0 && i < rp->lines.n; i++)
		if (rp->lines.v[i][0])
			r = buf_printf(out, " %s", rp->lines.v[i]);
	return r;
}

/* The words of the lines, a leading status equal to st left out. */
int
smtpreply_words(const struct smtpreply *rp, const char *st, struct buf *out)
{
	size_t sl = strlen(st);
	int r = 0;

	for (size_t i = 0; r == 0 && i < rp->lines.n; i++) {
		const char *l = rp->lines.v[i];

		if (strncmp(l, st, sl) == 0 && (l[sl] == ' ' || l[sl] == '\0'))
			l += sl;
		while (*l == ' ')
			l++;
		if (*l)
			r = buf_printf(out, " %s", l);
	}
	return r;
}
