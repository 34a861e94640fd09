/*
 * envelope: the queue file's envelope (docs/QUEUE.md "File format"),
 * formatted in a fixed order and parsed strictly, with each recipient's
 * state byte offset. Promises: what envelope_format writes envelope_parse
 * reads back unchanged; a truncated valid envelope is -EAGAIN, never
 * -EINVAL. Never does I/O (getrandom aside), keeps no state, never exits.
 */
#include "envelope.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "address.h"
#include "random.h"
#include "smtpcodec.h"
#include "text.h"

#define ENV_MAGIC "mailpipe-queue 1"
#define ENV_MAGIC_PREFIX "mailpipe-queue "
#define ENV_TAG_MAX 16
#define ENV_NOTIFY_MAX 15
#define ENV_RCPT_STATE_COL 5	/* "rcpt " then the state byte */

/* The record keys, in the order envelope_format writes them. */
enum env_key {
	K_UID, K_TAG, K_SUBMITTED, K_FROM, K_USER, K_CLIENT, K_HELO,
	K_TRUSTED, K_RET, K_ENVID, K_SOURCE, K_REPORT_FOR, K_SIZE, K_RCPT,
	K_PAD, K_END,
	K_COUNT
};

/* What the parser knows about each key. */
static const struct {
	const char *name;
	const char *missing;	/* why-text when required and absent */
} env_keys[K_COUNT] = {
	[K_UID] = { "uid", "missing required key \"uid\"" },
	[K_TAG] = { "tag", "missing required key \"tag\"" },
	[K_SUBMITTED] = { "submitted", "missing required key \"submitted\"" },
	[K_FROM] = { "from", "missing required key \"from\"" },
	[K_USER] = { "user", NULL },
	[K_CLIENT] = { "client", NULL },
	[K_HELO] = { "helo", NULL },
	[K_TRUSTED] = { "trusted", "missing required key \"trusted\"" },
	[K_RET] = { "ret", NULL },
	[K_ENVID] = { "envid", NULL },
	[K_SOURCE] = { "source", NULL },
	[K_REPORT_FOR] = { "report-for", NULL },
	[K_SIZE] = { "size", "missing required key \"size\"" },
	[K_RCPT] = { "rcpt", "no \"rcpt\" record" },
	[K_PAD] = { "pad", NULL },
	[K_END] = { "end", NULL },
};

/* Parser state for one envelope_parse call. */
struct env_parse {
	struct envelope *e;
	bool seen[K_COUNT];
	const char *why;
};

/* Is s[0..n) a prefix of word (partial) or equal to it (complete)? */
static bool
env_word_ok(const char *s, size_t n, const char *word, bool partial)
{
	size_t wl = strlen(word);

	if (n > wl || memcmp(s, word, n) != 0)
		return false;
	return partial || n == wl;
}

/*
 * Decimal number: digits only, no sign, no leading zero, at most max.
 * With partial, any valid prefix (even empty) passes and *out is unset.
 */
static bool
env_number_ok(const char *s, size_t n, uint64_t max, bool partial,
	uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return partial;
	if (n > 1 && s[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (out != NULL)
		*out = v;
	return true;
}

/* 32 lower-case hex digits (a prefix of them when partial). */
static bool
env_uid_ok(const char *s, size_t n, bool partial)
{
	if (n > ENVELOPE_UID_LEN || (!partial && n != ENVELOPE_UID_LEN))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* 1-16 upper-case ASCII letters. */
static bool
env_tag_ok(const char *s, size_t n, bool partial)
{
	if (n > ENV_TAG_MAX || (!partial && n == 0))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 'A' || s[i] > 'Z')
			return false;
	return true;
}

/* Printable ASCII without space (ORCPT, ENVID xtext), non-empty. */
static bool
env_xtext_ok(const char *s, size_t n, bool partial)
{
	if (!partial && n == 0)
		return false;
	return smtpcodec_xtext_chars(s, n);
}

/*
 * "UID R,R,..." (report-for): an envelope uid, one space, recipient
 * indices in plain decimal (at most 9 digits) joined by commas; any
 * prefix of that when partial.
 */
static bool
env_report_for_ok(const char *s, size_t n, bool partial)
{
	size_t i, digits = 0;

	if (n <= ENVELOPE_UID_LEN)
		return partial && env_uid_ok(s, n, true);
	if (!env_uid_ok(s, ENVELOPE_UID_LEN, false) ||
	    s[ENVELOPE_UID_LEN] != ' ')
		return false;
	for (i = ENVELOPE_UID_LEN + 1; i < n; i++) {
		if (s[i] == ',' && digits > 0) {
			digits = 0;
		} else if (s[i] >= '0' && s[i] <= '9' && digits < 9 &&
		    !(digits == 1 && s[i - 1] == '0')) {
			digits++;
		} else {
			return false;
		}
	}
	return partial || digits > 0;
}

/* Free text (client, helo, source): non-empty, no control bytes. */
static bool
env_text_ok(const char *s, size_t n, bool partial)
{
	return (partial || n > 0) && !text_has_ctl(s, n, false);
}

/* Padding: one or more '-' (any prefix of that when partial). */
static bool
env_pad_ok(const char *s, size_t n, bool partial)
{
	if (!partial && n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] != '-')
			return false;
	return true;
}

/* NOTIFY bits: 0..15, NEVER (1) only alone. */
static bool
env_notify_ok(unsigned bits)
{
	return bits <= ENV_NOTIFY_MAX &&
		(!(bits & NOTIFY_NEVER) || bits == NOTIFY_NEVER);
}

/* Is the address text (no brackets) acceptable? Null only if allow_null. */
static bool
env_addr_text_ok(const char *s, size_t n, bool allow_null)
{
	struct address a = ADDRESS_INIT;
	const char *why = NULL;
	int r;

	if (n == 0)
		return allow_null;
	r = address_parse(s, n, 0, &a, &why);
	address_free(&a);
	return r == 0;
}

/*
 * "<ADDR>" (a prefix of one when partial: only the '<' and the absence of
 * control bytes can be judged before the line is complete).
 */
static bool
env_bracket_ok(const char *s, size_t n, bool allow_null, bool partial)
{
	if (text_has_ctl(s, n, false))
		return false;
	if (partial)
		return n == 0 || s[0] == '<';
	if (n < 2 || s[0] != '<' || s[n - 1] != '>')
		return false;
	return env_addr_text_ok(s + 1, n - 2, allow_null);
}

/* Copy n bytes into *dst (which must be NULL). */
static int
env_set(char **dst, const char *s, size_t n)
{
	*dst = text_strndup(s, n);
	return *dst ? 0 : -ENOMEM;
}

/* Append one recipient to e without copying: takes addr and orcpt. */
static int
env_push_rcpt(struct envelope *e, char *addr, char *orcpt, unsigned notify,
	char state, size_t state_off)
{
	struct env_rcpt *v;

	if (e->nrcpt >= (size_t)-1 / sizeof(*v) - 1)
		return -ENOMEM;
	v = realloc(e->rcpt, (e->nrcpt + 1) * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	e->rcpt = v;
	v[e->nrcpt].addr = addr;
	v[e->nrcpt].orcpt = orcpt;
	v[e->nrcpt].notify = notify;
	v[e->nrcpt].state = state;
	v[e->nrcpt].state_off = state_off;
	e->nrcpt++;
	return 0;
}

/*
 * Check (and with store, record) the value of a "rcpt" line:
 * "S N ORCPT <ADDR>". off is the file offset of the line. Partial: the
 * value is the start of a line that has not ended yet.
 */
static int
env_rcpt_value(struct env_parse *p, const char *v, size_t n, size_t off,
	bool partial)
{
	const char *sp, *orcpt;
	size_t i, orcpt_len;
	uint64_t notify = 0;
	char *addr_copy = NULL, *orcpt_copy = NULL;
	int r;

	p->why = "malformed \"rcpt\" record";
	if (n == 0)
		return partial ? 0 : -EINVAL;
	if (v[0] != RCPT_PENDING && v[0] != RCPT_DELIVERED &&
	    v[0] != RCPT_FAILED) {
		p->why = "recipient state is not P, D or F";
		return -EINVAL;
	}
	if (n == 1)
		return partial ? 0 : -EINVAL;
	if (v[1] != ' ')
		return -EINVAL;
	/* NOTIFY bits */
	sp = memchr(v + 2, ' ', n - 2);
	i = sp ? (size_t)(sp - v) : n;
	if (!env_number_ok(v + 2, i - 2, ENV_NOTIFY_MAX, partial && !sp,
	    &notify)) {
		p->why = "bad NOTIFY bits in \"rcpt\" record";
		return -EINVAL;
	}
	if (sp == NULL)
		return partial ? 0 : -EINVAL;
	if (!env_notify_ok((unsigned)notify)) {
		p->why = "NOTIFY NEVER combined with other bits";
		return -EINVAL;
	}
	/* ORCPT */
	orcpt = v + i + 1;
	sp = memchr(orcpt, ' ', n - i - 1);
	orcpt_len = sp ? (size_t)(sp - orcpt) : n - i - 1;
	if (!env_xtext_ok(orcpt, orcpt_len, partial && !sp)) {
		p->why = "bad ORCPT in \"rcpt\" record";
		return -EINVAL;
	}
	if (sp == NULL)
		return partial ? 0 : -EINVAL;
	/* <ADDR>: the rest of the line, which may hold spaces */
	i = (size_t)(sp + 1 - v);
	if (!env_bracket_ok(v + i, n - i, false, partial)) {
		p->why = "bad recipient address (not <local@domain>)";
		return -EINVAL;
	}
	if (partial)
		return 0;
	if ((r = env_set(&addr_copy, v + i + 1, n - i - 2)) < 0)
		return r;
	if (!(orcpt_len == 1 && orcpt[0] == '-') &&
	    (r = env_set(&orcpt_copy, orcpt, orcpt_len)) < 0) {
		free(addr_copy);
		return r;
	}
	r = env_push_rcpt(p->e, addr_copy, orcpt_copy, (unsigned)notify, v[0],
		off + ENV_RCPT_STATE_COL);
	if (r < 0) {
		free(addr_copy);
		free(orcpt_copy);
	}
	return r;
}

/* Check (and unless partial, store) the value of single-valued key k. */
static int
env_single_value(struct env_parse *p, enum env_key k, const char *v,
	size_t n, bool partial)
{
	struct envelope *e = p->e;
	uint64_t u = 0;
	bool ok = false;
	char **dst = NULL;

	switch (k) {
	case K_UID:
		p->why = "uid is not 32 lower-case hex digits";
		if (!(ok = env_uid_ok(v, n, partial)) || partial)
			break;
		memcpy(e->uid, v, n);
		e->uid[n] = '\0';
		return 0;
	case K_TAG:
		p->why = "tag is not 1-16 upper-case letters";
		ok = env_tag_ok(v, n, partial);
		dst = &e->tag;
		break;
	case K_SUBMITTED:
	case K_USER:
		p->why = k == K_USER ? "bad number in \"user\"" :
			"bad number in \"submitted\"";
		if (!(ok = env_number_ok(v, n, INT64_MAX, partial, &u)) ||
		    partial)
			break;
		if (k == K_USER)
			e->user = (int64_t)u;
		else
			e->submitted = (int64_t)u;
		return 0;
	case K_SIZE:
		p->why = "bad number in \"size\"";
		if (!(ok = env_number_ok(v, n, UINT64_MAX, partial, &u)) ||
		    partial)
			break;
		e->size = u;
		return 0;
	case K_FROM:
		p->why = "bad return-path (not <> or <local@domain>)";
		if (!(ok = env_bracket_ok(v, n, true, partial)) || partial)
			break;
		return env_set(&e->from, v + 1, n - 2);
	case K_CLIENT:
	case K_HELO:
	case K_SOURCE:
		p->why = "empty value or control character in a value";
		ok = env_text_ok(v, n, partial);
		dst = k == K_CLIENT ? &e->client :
			k == K_HELO ? &e->helo : &e->source;
		break;
	case K_TRUSTED:
		p->why = "trusted is not yes or no";
		if (!(ok = env_word_ok(v, n, "yes", partial) ||
		    env_word_ok(v, n, "no", partial)) || partial)
			break;
		e->trusted = n == 3;
		return 0;
	case K_RET:
		p->why = "ret is not FULL or HDRS";
		ok = env_word_ok(v, n, "FULL", partial) ||
			env_word_ok(v, n, "HDRS", partial);
		dst = &e->ret;
		break;
	case K_ENVID:
		p->why = "envid is not printable ASCII without spaces";
		ok = env_xtext_ok(v, n, partial);
		dst = &e->envid;
		break;
	case K_REPORT_FOR:
		p->why = "report-for is not a uid and recipient indices";
		ok = env_report_for_ok(v, n, partial);
		dst = &e->report_for;
		break;
	case K_PAD:
		p->why = "pad is not a run of '-'";
		ok = env_pad_ok(v, n, partial);
		break;
	default:
		p->why = "unknown key";
		return -EINVAL;
	}
	if (!ok)
		return -EINVAL;
	if (partial || dst == NULL)
		return 0;
	return env_set(dst, v, n);
}

/* Are all required records present? Sets p->why when not. */
static bool
env_complete(struct env_parse *p)
{
	for (int k = 0; k < K_COUNT; k++) {
		if (env_keys[k].missing != NULL && !p->seen[k]) {
			p->why = env_keys[k].missing;
			return false;
		}
	}
	return true;
}

/*
 * Check one record line s[0..n) at file offset off (partial: the data
 * ended inside it). Returns 1 when the line was "end", 0 for another
 * good record (or a good prefix), or -errno.
 */
static int
env_record(struct env_parse *p, const char *s, size_t n, size_t off,
	bool partial)
{
	const char *sp = memchr(s, ' ', n);
	size_t klen = sp ? (size_t)(sp - s) : n;
	int k, r;

	if (text_has_ctl(s, n, false)) {
		p->why = "control character (CR, NUL, ...) in the envelope";
		return -EINVAL;
	}
	if (n == 0 && !partial) {
		p->why = "empty line before \"end\"";
		return -EINVAL;
	}
	if (sp == NULL && partial) {
		/* A key still being read: it must begin a key still allowed. */
		for (k = 0; k < K_COUNT; k++) {
			if (strncmp(env_keys[k].name, s, klen) != 0 ||
			    strlen(env_keys[k].name) < klen)
				continue;
			if (k == K_END && klen == 3 && !env_complete(p))
				return -EINVAL;
			if (k == K_RCPT || k == K_END || !p->seen[k])
				return 0;
		}
		p->why = "unknown or repeated key";
		return -EINVAL;
	}
	for (k = 0; k < K_COUNT; k++)
		if (strlen(env_keys[k].name) == klen &&
		    memcmp(env_keys[k].name, s, klen) == 0)
			break;
	if (k == K_COUNT) {
		p->why = "unknown key";
		return -EINVAL;
	}
	if (k == K_END) {
		if (sp != NULL) {
			p->why = "\"end\" takes no value";
			return -EINVAL;
		}
		return env_complete(p) ? 1 : -EINVAL;
	}
	if (sp == NULL) {
		p->why = "record without a value";
		return -EINVAL;
	}
	if (p->seen[k] && k != K_RCPT) {
		p->why = "repeated key";
		return -EINVAL;
	}
	if (k == K_RCPT)
		r = env_rcpt_value(p, sp + 1, n - klen - 1, off, partial);
	else
		r = env_single_value(p, (enum env_key)k, sp + 1, n - klen - 1,
			partial);
	if (r == 0 && !partial)
		p->seen[k] = true;
	return r;
}

/* Zero e (uid empty, user -1). */
void
envelope_init(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
	e->user = -1;
}

/* Free everything e owns and re-init it. */
void
envelope_free(struct envelope *e)
{
	for (size_t i = 0; i < e->nrcpt; i++) {
		free(e->rcpt[i].addr);
		free(e->rcpt[i].orcpt);
	}
	free(e->rcpt);
	free(e->tag);
	free(e->from);
	free(e->client);
	free(e->helo);
	free(e->ret);
	free(e->envid);
	free(e->report_for);
	free(e->source);
	envelope_init(e);
}

/* Add a pending recipient (copies strings). */
int
envelope_add_rcpt(struct envelope *e, const char *addr, const char *orcpt,
	unsigned notify)
{
	char *a, *o = NULL;
	int r;

	if (addr == NULL)
		return -EINVAL;
	if ((a = text_strdup(addr)) == NULL)
		return -ENOMEM;
	if (orcpt != NULL && (o = text_strdup(orcpt)) == NULL) {
		free(a);
		return -ENOMEM;
	}
	if ((r = env_push_rcpt(e, a, o, notify, RCPT_PENDING, 0)) < 0) {
		free(a);
		free(o);
	}
	return r;
}

/* Number of recipients still pending. */
size_t
envelope_pending(const struct envelope *e)
{
	size_t n = 0;

	for (size_t i = 0; i < e->nrcpt; i++)
		if (e->rcpt[i].state == RCPT_PENDING)
			n++;
	return n;
}

/* Optional free text: NULL, or what env_text_ok accepts. */
static bool
env_opt_text_ok(const char *s)
{
	return s == NULL || env_text_ok(s, strlen(s), false);
}

/* Would the parser accept every value of e? */
static bool
env_format_ok(const struct envelope *e)
{
	if (!env_uid_ok(e->uid, strnlen(e->uid, sizeof(e->uid)), false) ||
	    e->tag == NULL || !env_tag_ok(e->tag, strlen(e->tag), false) ||
	    e->submitted < 0 || e->user < -1 || e->from == NULL ||
	    text_str_has_ctl(e->from) ||
	    !env_addr_text_ok(e->from, strlen(e->from), true) ||
	    !env_opt_text_ok(e->client) || !env_opt_text_ok(e->helo) ||
	    !env_opt_text_ok(e->source) ||
	    (e->ret != NULL && strcmp(e->ret, "FULL") != 0 &&
	     strcmp(e->ret, "HDRS") != 0) ||
	    (e->envid != NULL &&
	     !env_xtext_ok(e->envid, strlen(e->envid), false)) ||
	    (e->report_for != NULL &&
	     !env_report_for_ok(e->report_for, strlen(e->report_for),
	     false)) ||
	    e->nrcpt == 0)
		return false;
	for (size_t i = 0; i < e->nrcpt; i++) {
		const struct env_rcpt *rc = &e->rcpt[i];

		if (rc->addr == NULL || rc->addr[0] == '\0' ||
		    text_str_has_ctl(rc->addr) ||
		    !env_addr_text_ok(rc->addr, strlen(rc->addr), false) ||
		    !env_notify_ok(rc->notify) ||
		    (rc->state != RCPT_PENDING && rc->state != RCPT_DELIVERED &&
		     rc->state != RCPT_FAILED))
			return false;
		if (rc->orcpt != NULL &&
		    (!env_xtext_ok(rc->orcpt, strlen(rc->orcpt), false) ||
		     strcmp(rc->orcpt, "-") == 0))
			return false;
	}
	return true;
}

/* Append "key value\n" when value is not NULL. */
static int
env_put(struct buf *b, const char *key, const char *value)
{
	if (value == NULL)
		return 0;
	return buf_printf(b, "%s %s\n", key, value);
}

/* Write every record of e (already checked) after start; pad '-'s. */
static int
env_write(struct envelope *e, struct buf *out, size_t start, size_t pad)
{
	int r;

	if ((r = buf_printf(out, "%s\nuid %s\n", ENV_MAGIC, e->uid)) < 0 ||
	    (r = env_put(out, "tag", e->tag)) < 0 ||
	    (r = buf_printf(out, "submitted %lld\nfrom <%s>\n",
	    (long long)e->submitted, e->from)) < 0 ||
	    (e->user >= 0 &&
	     (r = buf_printf(out, "user %lld\n", (long long)e->user)) < 0) ||
	    (r = env_put(out, "client", e->client)) < 0 ||
	    (r = env_put(out, "helo", e->helo)) < 0 ||
	    (r = env_put(out, "trusted", e->trusted ? "yes" : "no")) < 0 ||
	    (r = env_put(out, "ret", e->ret)) < 0 ||
	    (r = env_put(out, "envid", e->envid)) < 0 ||
	    (r = env_put(out, "source", e->source)) < 0 ||
	    (r = env_put(out, "report-for", e->report_for)) < 0 ||
	    (r = buf_printf(out, "size %llu\n",
	    (unsigned long long)e->size)) < 0)
		return r;
	for (size_t i = 0; i < e->nrcpt; i++) {
		struct env_rcpt *rc = &e->rcpt[i];
		size_t line = out->len - start;

		r = buf_printf(out, "rcpt %c %u %s <%s>\n", rc->state,
			rc->notify, rc->orcpt ? rc->orcpt : "-", rc->addr);
		if (r < 0)
			return r;
		rc->state_off = line + ENV_RCPT_STATE_COL;
	}
	if (pad > 0) {
		if ((r = buf_reserve(out, pad + 5)) < 0)
			return r;
		memcpy(out->data + out->len, "pad ", 4);
		memset(out->data + out->len + 4, '-', pad);
		out->len += pad + 4;
		out->data[out->len++] = '\n';
		out->data[out->len] = '\0';
	}
	if ((r = buf_puts(out, "end\n\n")) < 0)
		return r;
	e->header_len = out->len - start;
	return 0;
}

/* Forget what was appended to out after start. */
static void
env_cut(struct buf *out, size_t start)
{
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
}

/* Append the envelope text to out; offsets relative to out->len on entry. */
int
envelope_format(struct envelope *e, struct buf *out)
{
	size_t start = out->len;
	int r;

	if (!env_format_ok(e))
		return -EINVAL;
	if ((r = env_write(e, out, start, 0)) < 0)
		env_cut(out, start);
	return r;
}

/* The envelope of exactly total bytes, a pad record filling the gap. */
int
envelope_format_padded(struct envelope *e, size_t total, struct buf *out)
{
	size_t start = out->len, len;
	int r;

	if ((r = envelope_format(e, out)) < 0)
		return r;
	len = e->header_len;
	if (len == total)
		return 0;
	env_cut(out, start);
	if (total < len + ENVELOPE_PAD_MIN) {
		e->header_len = 0;
		return -ERANGE;
	}
	/* "pad " + dashes + LF fills the gap exactly */
	if ((r = env_write(e, out, start, total - len - 5)) < 0)
		env_cut(out, start);
	return r;
}

/* Room a streamed file leaves for e's envelope, whatever its size. */
int
envelope_reserve(struct envelope *e, size_t *out)
{
	struct buf b = BUF_INIT;
	uint64_t size = e->size;
	int r;

	e->size = UINT64_MAX;	/* the longest "size" record */
	r = envelope_format(e, &b);
	e->size = size;
	if (r == 0)
		*out = e->header_len + ENVELOPE_PAD_MIN;
	e->header_len = 0;
	buf_free(&b);
	return r;
}

/* Check the first line (or the start of it when partial). */
static int
env_version_line(struct env_parse *p, const char *s, size_t n, bool partial)
{
	size_t pl = strlen(ENV_MAGIC_PREFIX);

	if (env_word_ok(s, n, ENV_MAGIC, partial))
		return 0;
	if (n > pl && memcmp(s, ENV_MAGIC_PREFIX, pl) == 0)
		p->why = "unsupported queue file version";
	else
		p->why = "first line is not \"" ENV_MAGIC "\"";
	return -EINVAL;
}

/* Parse the envelope at the start of data (see envelope.h). */
int
envelope_parse(const char *data, size_t len, struct envelope *e,
	const char **why, unsigned *line)
{
	struct env_parse p = { .e = e, .why = NULL };
	size_t pos = 0;
	unsigned ln = 0;
	bool ended = false;
	int r = 0;

	envelope_init(e);
	if (len == 0)
		return -EAGAIN;
	while (r == 0) {
		const char *s = data + pos;
		const char *nl = pos < len ? memchr(s, '\n', len - pos) : NULL;
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		bool partial = nl == NULL;

		ln++;
		if (ended) {
			/* the line after "end" must be the empty line */
			if (pos == len) {
				r = -EAGAIN;
			} else if (s[0] != '\n') {
				p.why = "\"end\" is not followed by the "
					"empty line";
				r = -EINVAL;
			} else {
				e->header_len = pos + 1;
				return 0;
			}
			break;
		}
		if (ln == 1)
			r = env_version_line(&p, s, n, partial);
		else
			r = env_record(&p, s, n, pos, partial);
		if (r == 1) {
			ended = true;
			r = 0;
		}
		if (r == 0 && partial)
			r = -EAGAIN;
		pos += n + 1;
	}
	if (r == -EINVAL) {
		if (why != NULL)
			*why = p.why;
		if (line != NULL)
			*line = ln;
	} else if (r == -ENOMEM && why != NULL) {
		*why = "out of memory";
	}
	envelope_free(e);
	return r;
}

/* Parse an RFC 3461 NOTIFY value into NOTIFY_* bits. */
int
envelope_notify_parse(const char *s, unsigned *bits)
{
	static const struct {
		const char *word;
		unsigned bit;
	} words[] = {
		{ "NEVER", NOTIFY_NEVER },
		{ "SUCCESS", NOTIFY_SUCCESS },
		{ "FAILURE", NOTIFY_FAILURE },
		{ "DELAY", NOTIFY_DELAY },
	};
	unsigned v = 0;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	for (;;) {
		size_t n = strcspn(s, ",");
		size_t i;

		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i].word) == n &&
			    strncasecmp(words[i].word, s, n) == 0)
				break;
		if (i == sizeof(words) / sizeof(words[0]))
			return -EINVAL;
		v |= words[i].bit;
		if (s[n] == '\0')
			break;
		s += n + 1;
	}
	if ((v & NOTIFY_NEVER) && v != NOTIFY_NEVER)
		return -EINVAL;
	*bits = v;
	return 0;
}

/* Fill uid with 32 random lower-case hex characters. */
int
envelope_new_uid(char uid[ENVELOPE_UID_LEN + 1])
{
	return random_hex(uid, ENVELOPE_UID_LEN / 2);
}
