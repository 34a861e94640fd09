/*
 * msghdr: the RFC 5322 header block of an in-memory message with LF line
 * ends: fields and their folds, unfolded values, address lists (parsed by
 * GMime, checked by address.c), dates; the Submitted-folder rules are in
 * msghdr_submit.c (shared names in msghdr_int.h). Never does I/O, never
 * keeps global state, never initialises GMime (the program does), never
 * exits.
 */
#include "msghdr.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>

#include "address.h"
#include "msghdr_int.h"
#include "strv.h"
#include "text.h"

/* The one why-text that names no field: kept as is by the callers. */
const char msghdr__why_unqualified[] =
	"unqualified address and no default domain";

/* Is c a character allowed in a field name (RFC 5322 ftext)? */
static bool
msghdr_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/* Append field f to h, growing the array (cap is the caller's count). */
static int
msghdr_push(struct msghdr_block *h, size_t *cap, size_t off, size_t len,
	size_t name_len)
{
	if (h->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct msghdr_field *v;

		if (ncap > (size_t)-1 / sizeof(*v))
			return -ENOMEM;
		v = realloc(h->v, ncap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		h->v = v;
		*cap = ncap;
	}
	h->v[h->n].off = off;
	h->v[h->n].len = len;
	h->v[h->n].name_len = name_len;
	h->n++;
	return 0;
}

/* Split the header of msg into fields (see msghdr.h). */
int
msghdr_parse(const char *msg, size_t len, struct msghdr_block *h,
	const char **why)
{
	size_t pos = 0, cap = 0;
	int r;

	h->v = NULL;
	h->n = 0;
	h->body_off = len;
	while (pos < len) {
		const char *s = msg + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		size_t next = nl ? pos + n + 1 : len;
		size_t k = 0;

		if (memchr(s, '\0', n) != NULL) {
			*why = "NUL byte in the header";
			goto bad;
		}
		if (n == 0) {		/* the empty line: the body follows */
			h->body_off = next;
			break;
		}
		if (s[0] == ' ' || s[0] == '\t') {
			if (h->n == 0) {
				*why = "continuation line before the first "
					"header field";
				goto bad;
			}
			h->v[h->n - 1].len = next - h->v[h->n - 1].off;
			pos = next;
			continue;
		}
		while (k < n && msghdr_ftext((unsigned char)s[k]))
			k++;
		if (k == 0 || k == n || s[k] != ':') {
			*why = "malformed header line (not \"Name: value\")";
			goto bad;
		}
		if ((r = msghdr_push(h, &cap, pos, next - pos, k)) < 0) {
			msghdr_free(h);
			*why = "out of memory";
			return r;
		}
		pos = next;
	}
	if (h->n == 0) {
		*why = "no header fields";
		goto bad;
	}
	return 0;
bad:
	msghdr_free(h);
	return -EINVAL;
}

/* Release the field array. */
void
msghdr_free(struct msghdr_block *h)
{
	free(h->v);
	h->v = NULL;
	h->n = 0;
	h->body_off = 0;
}

/* Is field f named name (ASCII case-insensitive)? */
bool
msghdr_is(const char *msg, const struct msghdr_field *f, const char *name)
{
	return strlen(name) == f->name_len &&
		strncasecmp(msg + f->off, name, f->name_len) == 0;
}

/* Number of fields named name. */
size_t
msghdr_count(const char *msg, const struct msghdr_block *h, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < h->n; i++)
		if (msghdr_is(msg, &h->v[i], name))
			n++;
	return n;
}

/* Index of the first field named name, or -1. */
long
msghdr_find(const char *msg, const struct msghdr_block *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (msghdr_is(msg, &h->v[i], name))
			return (long)i;
	return -1;
}

/* Unfolded value of f: line breaks (LF, CR LF) removed, leading WSP cut. */
int
msghdr_value(const char *msg, const struct msghdr_field *f, char **out)
{
	const char *s = msg + f->off + f->name_len + 1;
	const char *end = msg + f->off + f->len;
	struct buf b = BUF_INIT;
	int r;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *stop = nl ? nl : end;

		if (nl != NULL && stop > s && stop[-1] == '\r')
			stop--;
		if ((r = buf_append(&b, s, (size_t)(stop - s))) < 0) {
			buf_free(&b);
			return r;
		}
		s = nl ? nl + 1 : end;
		/* a fold may start the value: cut its white space too */
		if (b.len == 0)
			while (s < end && (*s == ' ' || *s == '\t'))
				s++;
	}
	return buf_steal(&b, out);
}

/* Drop the strings of sv after the first n. */
static void
msghdr_strv_cut(struct strv *sv, size_t n)
{
	while (sv->n > n)
		free(sv->v[--sv->n]);
	if (sv->v != NULL)
		sv->v[sv->n] = NULL;
}

/* GMime parser warnings: any invalid address list makes the list bad. */
static void
msghdr_gmime_warning(gint64 offset, GMimeParserWarning code,
	const gchar *item, gpointer user_data)
{
	bool *bad = user_data;

	(void)offset;
	(void)item;
	if (code == GMIME_WARN_INVALID_ADDRESS_LIST)
		*bad = true;
}

/* Check, qualify and append one GMime addr-spec to out. */
static int
msghdr_add_addr(const char *spec, const char *default_domain,
	bool need_domain, struct strv *out, const char **why)
{
	struct address a = ADDRESS_INIT;
	char *s;
	int r;

	if (spec == NULL || *spec == '\0') {
		*why = "empty address";
		return -EINVAL;
	}
	r = address_parse(spec, strlen(spec), ADDRESS_ALLOW_UNQUALIFIED, &a,
		why);
	if (r < 0) {
		address_free(&a);
		return r;
	}
	if (a.domain == NULL && default_domain != NULL &&
	    (a.domain = text_strdup(default_domain)) == NULL) {
		address_free(&a);
		return -ENOMEM;
	}
	if (a.domain == NULL && need_domain) {
		address_free(&a);
		*why = msghdr__why_unqualified;
		return -EINVAL;
	}
	r = address_format(&a, &s);
	address_free(&a);
	if (r < 0)
		return r;
	return strv_push_take(out, s);
}

/* Append the mailboxes of list (groups flattened) to out. */
static int
msghdr_walk(InternetAddressList *list, const char *default_domain,
	bool need_domain, struct strv *out, const char **why)
{
	int n = internet_address_list_length(list);
	int r;

	for (int i = 0; i < n; i++) {
		InternetAddress *ia;

		ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			InternetAddressGroup *g = INTERNET_ADDRESS_GROUP(ia);

			r = msghdr_walk(internet_address_group_get_members(g),
				default_domain, need_domain, out, why);
		} else if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
			InternetAddressMailbox *mb;

			mb = INTERNET_ADDRESS_MAILBOX(ia);
			r = msghdr_add_addr(
				internet_address_mailbox_get_addr(mb),
				default_domain, need_domain, out, why);
		} else {
			*why = "unknown kind of address";
			r = -EINVAL;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* msghdr_addresses, optionally refusing what stays unqualified. */
int
msghdr__addresses_q(const char *value, const char *default_domain,
	bool need_domain, struct strv *out, const char **why)
{
	GMimeParserOptions *opts;
	InternetAddressList *list;
	size_t n0 = out->n;
	bool bad = false;
	int r;

	if (value[strspn(value, " \t\r\n")] == '\0')
		return 0;		/* an empty field lists nobody */
	opts = g_mime_parser_options_new();
	if (opts == NULL)
		return -ENOMEM;
	/*
	 * Loose mode: GMime 3.2's strict mode leaks memory on some malformed
	 * lists ("a@b>"). Loose mode only forgives stray angle brackets; every
	 * list it cannot read completely raises the warning that fails us.
	 */
	g_mime_parser_options_set_address_compliance_mode(opts,
		GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_allow_addresses_without_domain(opts, TRUE);
	g_mime_parser_options_set_warning_callback(opts, msghdr_gmime_warning,
		&bad);
	list = internet_address_list_parse(opts, value);
	g_mime_parser_options_free(opts);
	if (list == NULL || bad) {
		*why = "not an address list";
		r = -EINVAL;
	} else {
		r = msghdr_walk(list, default_domain, need_domain, out, why);
	}
	if (list != NULL)
		g_object_unref(list);
	if (r < 0)
		msghdr_strv_cut(out, n0);
	return r;
}

/* Canonical addresses of an address-list value (see msghdr.h). */
int
msghdr_addresses(const char *value, const char *default_domain,
	struct strv *out, const char **why)
{
	return msghdr__addresses_q(value, default_domain, false, out, why);
}

/* Append an RFC 5322 date-time for t in local time (C locale names). */
int
msghdr_date(int64_t t, struct buf *b)
{
	static const char days[7][4] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
	};
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	time_t tt = (time_t)t;
	struct tm tm;
	long off, aoff;

	if ((int64_t)tt != t || localtime_r(&tt, &tm) == NULL ||
	    tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11)
		return -EINVAL;
	off = tm.tm_gmtoff;
	aoff = off < 0 ? -off : off;
	return buf_printf(b, "%s, %d %s %04lld %02d:%02d:%02d %c%02ld%02ld",
		days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		(long long)tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		off < 0 ? '-' : '+', aoff / 3600, (aoff % 3600) / 60);
}
