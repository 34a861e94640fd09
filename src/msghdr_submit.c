/*
 * msghdr_submit: the Submitted-folder rules of msghdr (msghdr.h: SPEC
 * "Submitted folder"): recipients from Envelope-To: or To/Cc/Bcc minus
 * Envelope-Ignore:, the return-path (Return-Path:, From:, the submitter),
 * the removed fields, From:/Date:/Message-ID: added when missing, and
 * where a raw file's header ends. Promises that a rewritten message
 * differs from its input only by the fields it was told to drop or add.
 * Pure: no I/O (getrandom aside), no global state.
 */
#include "msghdr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "msghdr_int.h"
#include "random.h"
#include "strv.h"
#include "text.h"

#define MSGHDR_MID_RANDOM 8	/* random bytes in a generated Message-ID */

/* Fields the Submitted rules remove from the stored message. */
static const char *const msghdr_removed[] = {
	"Bcc", "Envelope-To", "Envelope-Ignore", "Return-Path",
};

/* Error texts for an unparsable address, one per field we read. */
static const struct {
	const char *name;
	const char *why;
} msghdr_field_why[] = {
	{ "To", "unparsable address in To:" },
	{ "Cc", "unparsable address in Cc:" },
	{ "Bcc", "unparsable address in Bcc:" },
	{ "Envelope-To", "unparsable address in Envelope-To:" },
	{ "Envelope-Ignore", "unparsable address in Envelope-Ignore:" },
	{ "Return-Path", "unparsable address in Return-Path:" },
	{ "From", "unparsable address in From:" },
};

/* An address with its comparison key and its place in the list. */
struct msghdr_key {
	char *key;
	size_t idx;
};

/*
 * Comparison key of a canonical address: the local part exactly (a pipe
 * address's local part is a command line), the domain (after the last
 * '@') in ASCII lower case.
 */
static char *
msghdr_addr_key(const char *addr)
{
	char *k = text_strdup(addr);
	char *at = k ? strrchr(k, '@') : NULL;

	if (at != NULL)
		address_lower(at);
	return k;
}

/* qsort order: by key, then by place in the list. */
static int
msghdr_key_cmp(const void *a, const void *b)
{
	const struct msghdr_key *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Free the first n keys and the array. */
static void
msghdr_keys_free(struct msghdr_key *k, size_t n)
{
	for (size_t i = 0; k != NULL && i < n; i++)
		free(k[i].key);
	free(k);
}

/* The keys of every address of sv, sorted (O(n log n), no hashing). */
static int
msghdr_keys(const struct strv *sv, struct msghdr_key **out)
{
	struct msghdr_key *k = calloc(sv->n ? sv->n : 1, sizeof(*k));

	if (k == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < sv->n; i++) {
		k[i].idx = i;
		if ((k[i].key = msghdr_addr_key(sv->v[i])) == NULL) {
			msghdr_keys_free(k, i);
			return -ENOMEM;
		}
	}
	qsort(k, sv->n, sizeof(*k), msghdr_key_cmp);
	*out = k;
	return 0;
}

/* Is key among the n sorted keys k? */
static bool
msghdr_keys_has(const struct msghdr_key *k, size_t n, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(k[mid].key, key);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/*
 * Append to out, in their order, the addresses of all that are not in
 * ign, each only the first time it appears (same key).
 */
static int
msghdr_filter(const struct strv *all, const struct strv *ign,
	struct strv *out)
{
	struct msghdr_key *ka = NULL, *ki = NULL;
	bool *keep = NULL;
	int r;

	if ((r = msghdr_keys(all, &ka)) < 0)
		return r;
	if ((r = msghdr_keys(ign, &ki)) < 0 ||
	    (keep = calloc(all->n ? all->n : 1, sizeof(*keep))) == NULL) {
		r = r < 0 ? r : -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < all->n; i++) {
		/* sorted by key then place: the first of a run came first */
		if (i > 0 && strcmp(ka[i].key, ka[i - 1].key) == 0)
			continue;
		if (!msghdr_keys_has(ki, ign->n, ka[i].key))
			keep[ka[i].idx] = true;
	}
	for (size_t i = 0; r == 0 && i < all->n; i++)
		if (keep[i])
			r = strv_push(out, all->v[i]);
out:
	msghdr_keys_free(ka, all->n);
	msghdr_keys_free(ki, ign->n);
	free(keep);
	return r;
}

/* The why text for an unparsable address in a field named like f. */
static const char *
msghdr_bad_addr_why(const char *msg, const struct msghdr_field *f)
{
	for (size_t i = 0; i < sizeof(msghdr_field_why) /
	    sizeof(msghdr_field_why[0]); i++)
		if (msghdr_is(msg, f, msghdr_field_why[i].name))
			return msghdr_field_why[i].why;
	return "unparsable address";
}

/* Append the addresses of field f to out; why names the field. */
static int
msghdr_field_addresses(const char *msg, const struct msghdr_field *f,
	const char *domain, struct strv *out, const char **why)
{
	const char *detail = NULL;
	char *value;
	int r;

	if ((r = msghdr_value(msg, f, &value)) < 0)
		return r;
	r = msghdr__addresses_q(value, domain, true, out, &detail);
	free(value);
	if (r == -EINVAL)
		*why = detail == msghdr__why_unqualified ? detail :
			msghdr_bad_addr_why(msg, f);
	return r;
}

/* Append addresses of every field named one of names (header order). */
static int
msghdr_collect(const char *msg, const struct msghdr_block *h,
	const char *const *names, size_t nnames, const char *domain,
	struct strv *out, const char **why)
{
	int r;

	for (size_t i = 0; i < h->n; i++) {
		for (size_t j = 0; j < nnames; j++) {
			if (!msghdr_is(msg, &h->v[i], names[j]))
				continue;
			r = msghdr_field_addresses(msg, &h->v[i], domain, out,
				why);
			if (r < 0)
				return r;
			break;
		}
	}
	return 0;
}

/*
 * The recipients: Envelope-To: if any, else To/Cc/Bcc minus
 * Envelope-Ignore:, de-duplicated in first-seen order.
 */
static int
msghdr_rcpts(const char *msg, const struct msghdr_block *h, const char *domain,
	struct strv *out, const char **why)
{
	static const char *const env_to[] = { "Envelope-To" };
	static const char *const to_cc_bcc[] = { "To", "Cc", "Bcc" };
	static const char *const ignore[] = { "Envelope-Ignore" };
	struct strv all = STRV_INIT, ign = STRV_INIT;
	int r;

	if (msghdr_count(msg, h, "Envelope-To") > 0) {
		r = msghdr_collect(msg, h, env_to, 1, domain, &all, why);
	} else {
		r = msghdr_collect(msg, h, to_cc_bcc, 3, domain, &all, why);
		if (r == 0)
			r = msghdr_collect(msg, h, ignore, 1, domain, &ign,
				why);
	}
	if (r == 0)
		r = msghdr_filter(&all, &ign, out);
	strv_free(&all);
	strv_free(&ign);
	if (r == 0 && out->n == 0) {
		*why = "no recipient";
		r = -EINVAL;
	}
	return r;
}

/* Is v (already unfolded) "<>" with optional white space inside/around? */
static bool
msghdr_is_null_path(const char *v)
{
	v += strspn(v, " \t");
	if (*v++ != '<')
		return false;
	v += strspn(v, " \t");
	if (*v++ != '>')
		return false;
	v += strspn(v, " \t\r");
	return *v == '\0';
}

/* The submitter, or -ESRCH when it is not known (see msghdr.h). */
static int
msghdr_submitter(const struct msghdr_submit_params *p, const char **why)
{
	if (p->submitter != NULL)
		return 0;
	*why = "no Return-Path: or From: and the submitting user is unknown";
	return -ESRCH;
}

/*
 * The return-path: first Return-Path:, else the first From: address,
 * else the submitter.
 */
static int
msghdr_return_path(const char *msg, const struct msghdr_block *h,
	const struct msghdr_submit_params *p, const char *domain, char **out,
	const char **why)
{
	struct strv addrs = STRV_INIT;
	long i = msghdr_find(msg, h, "Return-Path");
	bool from = i < 0;
	char *value;
	int r;

	if (from && (i = msghdr_find(msg, h, "From")) < 0) {
		if ((r = msghdr_submitter(p, why)) < 0)
			return r;
		*out = text_strdup(p->submitter);
		return *out ? 0 : -ENOMEM;
	}
	if (!from) {
		if ((r = msghdr_value(msg, &h->v[i], &value)) < 0)
			return r;
		if (msghdr_is_null_path(value)) {
			free(value);
			*out = text_strdup("");
			return *out ? 0 : -ENOMEM;
		}
		free(value);
	}
	r = msghdr_field_addresses(msg, &h->v[i], domain, &addrs, why);
	if (r == 0 && addrs.n == 0) {
		*why = from ? "no return-path (From: holds no address)" :
			"Return-Path: holds no address";
		r = -EINVAL;
	} else if (r == 0 && !from && addrs.n > 1) {
		*why = "Return-Path: holds more than one address";
		r = -EINVAL;
	}
	if (r == 0) {
		*out = addrs.v[0];
		addrs.v[0] = NULL;	/* now the caller's */
	}
	strv_free(&addrs);
	return r;
}

/* Copy data to out with every CR LF turned into LF (lone CRs stay). */
static int
msghdr_crlf_to_lf(const char *data, size_t len, struct buf *out)
{
	bool cr = false;
	int r;

	if ((r = buf_reserve(out, len + 1)) < 0)
		return r;
	out->len += text_crlf_to_lf(data, len, out->data + out->len, &cr);
	if (cr)
		out->data[out->len++] = '\r';
	out->data[out->len] = '\0';
	return 0;
}

/* Where the header of raw file bytes ends (see msghdr.h). */
int
msghdr_header_end(const char *raw, size_t len, bool at_eof, size_t *end)
{
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(raw + pos, '\n', len - pos);
		size_t n;

		if (nl == NULL)
			break;
		n = (size_t)(nl - (raw + pos));
		/* an empty line, once CR LF is LF: "\n" or "\r\n" */
		if (n == 0 || (n == 1 && raw[pos] == '\r')) {
			*end = pos + n + 1;
			return 0;
		}
		pos += n + 1;
	}
	if (!at_eof)
		return -EAGAIN;
	*end = len;		/* no empty line: all of it is header */
	return 0;
}

/* Bytes of the header of m, blank line included (or all of m). */
static size_t
msghdr_header_size(const char *m, size_t len)
{
	const char *e;

	if (len > 0 && m[0] == '\n')
		return 1;
	e = memmem(m, len, "\n\n", 2);
	return e ? (size_t)(e - m) + 2 : len;
}

/* Append "Message-ID: <ID.RANDOM@hostname>\n" to b. */
static int
msghdr_add_message_id(const struct msghdr_submit_params *p, struct buf *b)
{
	char rnd[2 * MSGHDR_MID_RANDOM + 1];
	int r;

	if ((r = random_hex(rnd, MSGHDR_MID_RANDOM)) < 0)
		return r;
	if ((r = buf_puts(b, "Message-ID: <")) < 0)
		return r;
	if (p->id != NULL && (r = buf_printf(b, "%s.", p->id)) < 0)
		return r;
	if ((r = buf_puts(b, rnd)) < 0)
		return r;
	return buf_printf(b, "@%s>\n", p->hostname);
}

/*
 * The stored message: every field but the removed ones, byte for byte,
 * then From: (from, when not NULL), Date: and Message-ID: when missing,
 * the empty line and the body.
 */
static int
msghdr_rewrite(const char *m, size_t len, const struct msghdr_block *h,
	const struct msghdr_submit_params *p, const char *from,
	struct buf *out)
{
	int r;

	for (size_t i = 0; i < h->n; i++) {
		bool drop = false;

		for (size_t j = 0; j < sizeof(msghdr_removed) /
		    sizeof(msghdr_removed[0]); j++)
			drop = drop ||
				msghdr_is(m, &h->v[i], msghdr_removed[j]);
		if (!drop && (r = buf_append(out, m + h->v[i].off,
		    h->v[i].len)) < 0)
			return r;
	}
	/* a header-only message may end without a line feed */
	if (out->len > 0 && out->data[out->len - 1] != '\n' &&
	    (r = buf_putc(out, '\n')) < 0)
		return r;
	if (from != NULL && (r = buf_printf(out, "From: %s\n", from)) < 0)
		return r;
	if (msghdr_find(m, h, "Date") < 0 &&
	    ((r = buf_puts(out, "Date: ")) < 0 ||
	     (r = msghdr_date(p->now, out)) < 0 ||
	     (r = buf_putc(out, '\n')) < 0))
		return r;
	if (msghdr_find(m, h, "Message-ID") < 0 &&
	    (r = msghdr_add_message_id(p, out)) < 0)
		return r;
	if ((r = buf_putc(out, '\n')) < 0)
		return r;
	return buf_append(out, m + h->body_off, len - h->body_off);
}

/* Apply the Submitted-folder rules (see msghdr.h). */
int
msghdr_submission(const char *data, size_t len,
	const struct msghdr_submit_params *p, struct msghdr_submission *out,
	const char **why)
{
	const char *domain = p->default_domain ? p->default_domain :
		p->hostname;
	struct buf m = BUF_INIT;
	struct msghdr_block h = MSGHDR_INIT;
	const char *from = NULL;
	int r;

	*out = (struct msghdr_submission)MSGHDR_SUBMISSION_INIT;
	if (p->hostname == NULL || *p->hostname == '\0') {
		*why = "no hostname for Message-ID";
		return -EINVAL;
	}
	if ((r = msghdr_crlf_to_lf(data, len, &m)) < 0) {
		*why = "out of memory";
		goto out;
	}
	if (msghdr_header_size(m.data ? m.data : "", m.len) >
	    MSGHDR_MAX_HEADER) {
		*why = "header larger than 1 MiB";
		r = -EINVAL;
		goto out;
	}
	if ((r = msghdr_parse(m.data ? m.data : "", m.len, &h, why)) < 0)
		goto out;
	if ((r = msghdr_rcpts(m.data, &h, domain, &out->rcpts, why)) < 0 ||
	    (r = msghdr_return_path(m.data, &h, p, domain, &out->return_path,
	    why)) < 0)
		goto out;
	/* no From: names the return-path, or the submitter for a null one */
	if (msghdr_find(m.data, &h, "From") < 0) {
		from = out->return_path;
		if (*from == '\0' && (r = msghdr_submitter(p, why)) < 0)
			goto out;
		if (*from == '\0')
			from = p->submitter;
	}
	if ((r = msghdr_rewrite(m.data, m.len, &h, p, from,
	    &out->message)) < 0) {
		*why = "cannot make the From:, Date: or Message-ID: field";
		goto out;
	}
out:
	if (r == -ENOMEM)
		*why = "out of memory";
	if (r < 0)
		msghdr_submission_free(out);
	msghdr_free(&h);
	buf_free(&m);
	return r;
}

/* Release what a submission result owns. */
void
msghdr_submission_free(struct msghdr_submission *s)
{
	strv_free(&s->rcpts);
	free(s->return_path);
	s->return_path = NULL;
	buf_free(&s->message);
}
