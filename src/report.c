/*
 * report: the delivery report builder's API (report.h). Owns the
 * report's shape: the top header (From MAILER-DAEMON, Subject by the
 * worst action, Auto-Submitted: auto-replied, multipart/report), the
 * human-readable part, the message/delivery-status part (RFC 3464 field
 * order, Diagnostic-Code types smtp and X-mailpipe), the returned part
 * (report_msg.c) and a boundary found in none of the parts. Promises a
 * report that is valid 7bit or 8bit MIME, US-ASCII outside the human
 * part and the returned message, without NUL or CR, whatever the stored
 * message holds. Pure: no I/O but getrandom when the first boundary
 * clashes, no global state; needs no GMime initialisation.
 */
#include "report_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "random.h"
#include "smtpcodec.h"
#include "text.h"

#define REPORT_ID_MAX 250	/* longest host name or Message-ID taken */

static const char *const report_action_word[] = {
	[REPORT_FAILED] = "failed", [REPORT_DELAYED] = "delayed",
	[REPORT_DELIVERED] = "delivered", [REPORT_RELAYED] = "relayed",
};

/* The human part's words for each action. */
static const char *const report_action_text[] = {
	[REPORT_FAILED] = "delivery failed",
	[REPORT_DELAYED] = "delivery delayed",
	[REPORT_DELIVERED] = "delivered",
	[REPORT_RELAYED] = "relayed to a system that sends no reports",
};

/* See report.h. */
uint64_t
report_read_limit(enum report_return ret, uint64_t return_size_limit,
	uint64_t msg_total)
{
	uint64_t cap = report__header_cap(return_size_limit);

	if (ret == REPORT_RETURN_FULL && msg_total <= return_size_limit)
		return msg_total;
	return msg_total < cap ? msg_total : cap;
}

/* See report.h. */
enum report_return
report_return_mode(int config_return, const char *dsn_ret)
{
	switch (config_return) {
	case RETURN_ALWAYS_BODY:
		return REPORT_RETURN_FULL;
	case RETURN_ALWAYS_HEADERS:
		return REPORT_RETURN_HEADERS;
	case RETURN_HEADERS:
	case RETURN_BODY:
		if (dsn_ret && strcasecmp(dsn_ret, "FULL") == 0)
			return REPORT_RETURN_FULL;
		if (dsn_ret && strcasecmp(dsn_ret, "HDRS") == 0)
			return REPORT_RETURN_HEADERS;
		return config_return == RETURN_BODY ? REPORT_RETURN_FULL
			: REPORT_RETURN_HEADERS;
	default:
		return REPORT_RETURN_HEADERS;
	}
}

/* Is s a usable host name or Message-ID: printable ASCII, no <>, short? */
static bool
report_token_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > REPORT_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126
		    || s[i] == '<' || s[i] == '>')
			return false;
	return true;
}

/* Is s an address we can write: not empty, no control character? */
static bool
report_addr_ok(const char *s)
{
	return s && *s && strlen(s) < REPORT__LINE_MAX / 2
		&& !text_str_has_ctl(s);
}

/* Is s an RFC 3463 status "C.S.D" (class 2, 4 or 5)? */
static bool
report_status_ok(const char *s)
{
	size_t i = 1, d;

	if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	for (int part = 0; part < 2; part++) {
		i++;
		for (d = 0; s[i] >= '0' && s[i] <= '9'; i++)
			d++;
		if (d == 0 || d > 3 || s[i] != (part == 0 ? '.' : '\0'))
			return false;
	}
	return true;
}

/* The status written for r: its own, else its action's X.0.0. */
static const char *
report_status(const struct report_rcpt *r)
{
	if (report_status_ok(r->status))
		return r->status;
	return r->action == REPORT_FAILED ? "5.0.0"
		: r->action == REPORT_DELAYED ? "4.0.0" : "2.0.0";
}

/* Check in; the first problem in *why. */
static int
report_check(const struct report_in *in, const char **why)
{
	if (in->nrcpt == 0 || !in->rcpt)
		*why = "a report needs a recipient";
	else if (!report_token_ok(in->reporting_mta))
		*why = "no usable reporting host name";
	else if (!report_addr_ok(in->to))
		*why = "no usable report recipient (null return-path?)";
	else if (!report_token_ok(in->message_id))
		*why = "no usable Message-ID";
	else if (in->msg_len > 0 && !in->msg)
		*why = "message length without a message";
	else
		*why = NULL;
	for (size_t i = 0; !*why && i < in->nrcpt; i++)
		if (!report_addr_ok(in->rcpt[i].addr))
			*why = "a recipient without a usable address";
		else if ((unsigned)in->rcpt[i].action > REPORT_RELAYED)
			*why = "a recipient with an unknown action";
	return *why ? -EINVAL : 0;
}

/* The worst action of in's recipients: failed, delayed, else delivered. */
static enum report_action
report_worst(const struct report_in *in)
{
	enum report_action w = REPORT_DELIVERED;

	for (size_t i = 0; i < in->nrcpt; i++)
		if (in->rcpt[i].action == REPORT_FAILED)
			return REPORT_FAILED;
		else if (in->rcpt[i].action == REPORT_DELAYED)
			w = REPORT_DELAYED;
	return w;
}

/* Append "name: " and the text s (xtext decoded when valid) as a field. */
static int
report_text_field(struct buf *out, const char *name, const char *prefix,
	const char *s, size_t n, size_t cap, bool xtext)
{
	struct buf v = BUF_INIT;
	char *dec = NULL;
	int r;

	if (xtext && smtpcodec_xtext_valid(s, n)) {
		if (!(dec = malloc(n + 1)))
			return -ENOMEM;
		n = smtpcodec_xtext_decode(s, n, dec);
		s = dec;
	}
	if ((r = buf_puts(&v, prefix)) == 0
	    && (r = report__ascii(&v, s, n, cap)) == 0
	    && v.len > strlen(prefix))
		r = report__field(out, name, v.data, v.len);
	buf_free(&v);
	free(dec);
	return r;
}

/* Append a date field for t (nothing when t < 0). */
static int
report_date_field(struct buf *out, const char *name, int64_t t)
{
	struct buf v = BUF_INIT;
	int r;

	if (t < 0)
		return 0;
	if ((r = report__date(&v, t)) == 0)
		r = report__field(out, name, v.data, v.len);
	buf_free(&v);
	return r == -EINVAL ? 0 : r;
}

/* Append Original-Recipient from a stored ORCPT "type;xtext". */
static int
report_orcpt(struct buf *out, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';'), *a = orcpt;
	char type[32] = "rfc822";
	size_t tl = 0;

	if (semi) {
		for (const char *p = orcpt; p < semi && tl < sizeof(type) - 2;
		    p++)
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
			    || (*p >= '0' && *p <= '9') || *p == '-')
				type[tl++] = *p;
		type[tl ? tl : 6] = '\0';
		a = semi + 1;
	}
	while (*a == ' ')
		a++;
	if (!*a)
		return 0;
	strcat(type, ";");
	return report_text_field(out, "Original-Recipient", type, a,
		strlen(a), 0, true);
}

/* Append one recipient's block of the message/delivery-status part. */
static int
report_ds_rcpt(struct buf *ds, const struct report_rcpt *rc, size_t cap)
{
	const char *dtype = rc->diag_type == REPORT_DIAG_SMTP ? "smtp; "
		: "X-mailpipe; ";
	int r = buf_putc(ds, '\n');

	if (r == 0 && rc->orcpt && *rc->orcpt)
		r = report_orcpt(ds, rc->orcpt);
	if (r == 0)
		r = report_text_field(ds, "Final-Recipient", "rfc822;",
			rc->addr, strlen(rc->addr), 0, false);
	if (r == 0)
		r = buf_printf(ds, "Action: %s\nStatus: %s\n",
			report_action_word[rc->action], report_status(rc));
	if (r == 0 && rc->remote_mta && *rc->remote_mta)
		r = report_text_field(ds, "Remote-MTA", "dns; ",
			rc->remote_mta, strlen(rc->remote_mta), 0, false);
	if (r == 0 && rc->diag_type != REPORT_DIAG_NONE && rc->diag)
		r = report_text_field(ds, "Diagnostic-Code", dtype, rc->diag,
			strlen(rc->diag), cap, false);
	if (r == 0)
		r = report_date_field(ds, "Last-Attempt-Date",
			rc->last_attempt);
	if (r == 0 && rc->action == REPORT_DELAYED)
		r = report_date_field(ds, "Will-Retry-Until",
			rc->will_retry_until);
	return r;
}

/* The message/delivery-status part's content. */
static int
report_ds(const struct report_in *in, size_t cap, struct buf *ds)
{
	int r = buf_printf(ds, "Reporting-MTA: dns; %s\n", in->reporting_mta);

	if (r == 0 && in->envid && *in->envid)
		r = report_text_field(ds, "Original-Envelope-Id", "",
			in->envid, strlen(in->envid), 0, true);
	if (r == 0)
		r = report_date_field(ds, "Arrival-Date", in->arrival);
	for (size_t i = 0; r == 0 && i < in->nrcpt; i++)
		r = report_ds_rcpt(ds, &in->rcpt[i], cap);
	return r;
}

/* The human part's opening, by the worst action. */
static int
report_intro(struct buf *t, const struct report_in *in,
	enum report_action worst)
{
	int r = buf_printf(t, "This is the mail system at host %s.\n\n",
		in->reporting_mta);

	if (r < 0)
		return r;
	switch (worst) {
	case REPORT_FAILED:
		return buf_puts(t, "Your message could not be delivered to "
			"one or more of its recipients.\nThe reasons are "
			"below, and your message is attached.\n\nIf you "
			"need help, write to postmaster and include this "
			"report.\n\n");
	case REPORT_DELAYED:
		return buf_puts(t, "THIS IS A WARNING ONLY: you need not "
			"send your message again.\n\nYour message could "
			"not be delivered yet to the recipients below.\nThe "
			"mail system keeps trying until the time given "
			"for each.\n\n");
	default:
		return buf_puts(t, "Your message was delivered to the "
			"recipients below. A recipient relayed to a\nsystem "
			"that sends no reports may still see the message "
			"fail there.\n\n");
	}
}

/* Who said a recipient's diagnostic, as the human part words it. */
static int
report_who(struct buf *t, const struct report_rcpt *rc)
{
	switch (rc->diag_type) {
	case REPORT_DIAG_SMTP:
		if (!rc->remote_mta || !*rc->remote_mta)
			return buf_puts(t, "    The mail server replied:\n");
		if (buf_puts(t, "    The mail server ") < 0
		    || report__ascii(t, rc->remote_mta,
		    strlen(rc->remote_mta), REPORT_ID_MAX) < 0)
			return -ENOMEM;
		return buf_puts(t, " replied:\n");
	case REPORT_DIAG_PROGRAM:
		return buf_puts(t, "    The delivery program reported:\n");
	default:
		return buf_puts(t, "    The mail system says:\n");
	}
}

/* One recipient in the human part. */
static int
report_human_rcpt(struct buf *t, const struct report_rcpt *rc, size_t cap)
{
	struct buf d = BUF_INIT;
	int r = buf_putc(t, '<');

	if (r == 0)
		r = report__human(t, rc->addr, strlen(rc->addr), 0, "");
	if (r == 0 && t->len > 0 && t->data[t->len - 1] == '\n')
		t->data[--t->len] = '\0';
	if (r == 0)
		r = buf_printf(t, ">: %s, status %s\n",
			report_action_text[rc->action], report_status(rc));
	if (r == 0 && rc->diag_type != REPORT_DIAG_NONE && rc->diag
	    && *rc->diag && (r = report_who(t, rc)) == 0)
		r = report__human(t, rc->diag, strlen(rc->diag), cap,
			"    ");
	if (r == 0 && rc->action == REPORT_DELAYED
	    && rc->will_retry_until >= 0
	    && report__date(&d, rc->will_retry_until) == 0)
		r = buf_printf(t, "    Trying until %s.\n", d.data);
	if (r == 0)
		r = buf_putc(t, '\n');
	buf_free(&d);
	return r;
}

/* The human-readable part's text (UTF-8, LF lines). */
static int
report_human(const struct report_in *in, enum report_action worst,
	size_t cap, const struct report__ret *ret, struct buf *t)
{
	int r = report_intro(t, in, worst);

	for (size_t i = 0; r == 0 && i < in->nrcpt; i++)
		r = report_human_rcpt(t, &in->rcpt[i], cap);
	if (r == 0 && ret->too_big && worst == REPORT_FAILED)
		r = buf_printf(t, "Your message was larger than %llu bytes: "
			"only its header is attached.\n",
			(unsigned long long)in->return_size_limit);
	if (r == 0 && ret->hdr_cut)
		r = buf_puts(t, "The attached header was cut short at a "
			"line boundary.\n");
	return r;
}

/* Does any of the n parts hold the boundary b? */
static bool
report_clash(const struct buf *b, const struct buf *const *parts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (parts[i]->len >= b->len
		    && memmem(parts[i]->data, parts[i]->len, b->data, b->len))
			return true;
	return false;
}

/*
 * A boundary found in none of the parts: first one derived from the
 * Message-ID and time (reproducible), then random ones.
 */
static int
report_boundary(const struct report_in *in, const struct buf *const *parts,
	size_t n, struct buf *b)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	char hex[33];
	int r;

	for (const char *p = in->message_id; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ (uint64_t)in->now) * 1099511628211ULL;
	if ((r = buf_printf(b, "=_report_%016llx", (unsigned long long)h)))
		return r;
	while (report_clash(b, parts, n)) {
		if ((r = random_hex(hex, 16)) < 0)
			return r;
		buf_reset(b);
		if ((r = buf_printf(b, "=_report_%s", hex)) < 0)
			return r;
	}
	return 0;
}

/* Does t need quoted-printable: 8-bit, or a line over 998 octets? */
static bool
report_needs_qp(const struct buf *t)
{
	size_t col = 0;

	for (size_t i = 0; i < t->len; i++) {
		if ((unsigned char)t->data[i] >= 0x80)
			return true;
		col = t->data[i] == '\n' ? 0 : col + 1;
		if (col > REPORT__LINE_MAX)
			return true;
	}
	return false;
}

/* The top header and the three parts, around the boundary b. */
static int
report_put(struct buf *out, const struct report_in *in,
	enum report_action worst, const struct buf *b,
	const struct buf *human, bool qp, const struct buf *ds,
	const struct report__ret *ret)
{
	static const char *const subject[] = {
		[REPORT_FAILED] = "Undelivered Mail Returned to Sender",
		[REPORT_DELAYED] = "Delayed Mail (still being retried)",
		[REPORT_DELIVERED] = "Successful Mail Delivery Report",
	};
	const char *what = worst == REPORT_FAILED ? "Undelivered"
		: worst == REPORT_DELAYED ? "Delayed" : "Delivered";
	struct buf date = BUF_INIT;
	int r;

	if ((r = report__date(&date, in->now)) < 0)
		return r;
	r = buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\n"
		"To: %s\nSubject: %s\nDate: %s\nMessage-ID: <%s>\n",
		in->reporting_mta, in->to, subject[worst], date.data,
		in->message_id);
	buf_free(&date);
	if (r == 0 && ret->orig_mid)
		r = buf_printf(out, "In-Reply-To: %s\nReferences: %s\n",
			ret->orig_mid, ret->orig_mid);
	if (r == 0)
		r = buf_printf(out, "Auto-Submitted: auto-replied\n"
			"MIME-Version: 1.0\nContent-Type: multipart/report; "
			"report-type=delivery-status;\n\tboundary=\"%s\"\n"
			"Content-Transfer-Encoding: %s\n\n"
			"This is a MIME-encapsulated message.\n\n"
			"--%s\nContent-Description: Notification\n"
			"Content-Type: text/plain; charset=%s\n"
			"Content-Transfer-Encoding: %s\n\n",
			b->data, ret->eightbit ? "8bit" : "7bit", b->data,
			qp ? "utf-8" : "us-ascii",
			qp ? "quoted-printable" : "7bit");
	if (r == 0)
		r = buf_append(out, human->data, human->len);
	if (r == 0)
		r = buf_printf(out, "\n--%s\nContent-Description: Delivery "
			"report\nContent-Type: message/delivery-status\n\n",
			b->data);
	if (r == 0)
		r = buf_append(out, ds->data, ds->len);
	if (r == 0)
		r = buf_printf(out, "\n--%s\nContent-Description: %s Message%s"
			"\nContent-Type: %s\nContent-Transfer-Encoding: %s\n\n",
			b->data, what, ret->full ? "" : " Headers",
			ret->full ? "message/rfc822" : "text/rfc822-headers",
			ret->eightbit ? "8bit" : "7bit");
	if (r == 0)
		r = buf_append(out, ret->content.data, ret->content.len);
	if (r == 0)
		r = buf_printf(out, "\n--%s--\n", b->data);
	return r;
}

/* See report.h. */
int
report_build(const struct report_in *in, struct buf *out, const char **why)
{
	struct buf human = BUF_INIT, text = BUF_INIT, ds = BUF_INIT;
	struct buf b = BUF_INIT;
	struct report__ret ret;
	enum report_action worst;
	size_t cap = in->text_cap ? in->text_cap : REPORT_TEXT_CAP;
	size_t old = out->len;
	bool qp = false;
	int r;

	*why = NULL;
	if ((r = report_check(in, why)) < 0)
		return r;
	if (report__date(&b, in->now) < 0) {
		*why = "the report's date is out of range";
		buf_free(&b);
		return -EINVAL;
	}
	buf_reset(&b);
	worst = report_worst(in);
	r = report__returned(in, worst == REPORT_FAILED
		&& in->ret == REPORT_RETURN_FULL, &ret);
	if (r < 0)
		goto done_b;
	if ((r = report_human(in, worst, cap, &ret, &text)) == 0) {
		qp = report_needs_qp(&text);
		r = qp ? report__qp(&human, text.data, text.len)
			: buf_append(&human, text.data, text.len);
	}
	if (r == 0)
		r = report_ds(in, cap, &ds);
	if (r == 0) {
		const struct buf *const parts[] = { &human, &ds, &ret.content };

		r = report_boundary(in, parts, 3, &b);
	}
	if (r == 0)
		r = report_put(out, in, worst, &b, &human, qp, &ds, &ret);
	if (r < 0 && out->data) {
		out->len = old;
		out->data[old] = '\0';
	}
	buf_free(&human);
	buf_free(&text);
	buf_free(&ds);
	report__ret_free(&ret);
done_b:
	buf_free(&b);
	return r;
}
