/*
 * localsub_queue: sendmail -bp / mailq (localsub_queue_list): the queue as
 * store_list() reads it, printed Postfix mailq style, with the submit
 * group dropped for good first. Knows nothing of the queue's layout.
 */
#include "localsub.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "localsub_int.h"
#include "store.h"

/* ---- sendmail -bp ---------------------------------------------------- */

/* A queue file store_list left out: say so on stderr (arg: prog). */
static void
localsub__queue_skipped(void *arg, const char *rel, const char *why,
	unsigned line)
{
	fprintf(stderr, "%s: %s: corrupt envelope (line %u: %s)\n",
		(const char *)arg, rel, line, why ? why : "unparsable");
}

/* Turn a store_list failure r at le into the exit status and text. */
static int
localsub__queue_fail(const struct localsub *ls, int r,
	const struct store_list_err *le, struct localsub_err *err)
{
	const char *rel = le->relpath ? le->relpath : "Queue";
	int e = -r;

	if (r == -ENOMEM || le->relpath == NULL)
		return localsub__oserr(err, r, "queue listing");
	switch (le->step) {
	case STORE_LIST_OPEN_DIR:
		if (e == ENOENT && strcmp(rel, "Queue") == 0)
			return localsub_fail(err, EX_UNAVAILABLE, r,
				"mailpipe is not set up: %s/Queue missing",
				ls->base);
		return localsub_fail(err, e == EACCES || e == EPERM ?
			EX_NOPERM : EX_OSERR, r, "cannot read %s/%s: %s",
			ls->base, rel, strerror(e));
	case STORE_LIST_READ_DIR:
		return localsub_fail(err, EX_IOERR, r, "cannot read %s/%s: %s",
			ls->base, rel, strerror(e));
	case STORE_LIST_READ_FILE:
	default:
		return localsub_fail(err, e == EACCES || e == EPERM ?
			EX_NOPERM : EX_IOERR, r, "cannot read %s: %s", rel,
			strerror(e));
	}
}

/* Print the list, Postfix mailq style. */
static int
localsub__queue_print(const struct store_listing *q, FILE *out)
{
	uint64_t total = 0;
	char when[64];
	struct tm tm;
	time_t t;

	if (q->n == 0) {
		fputs("Mail queue is empty\n", out);
		return 0;
	}
	fprintf(out, "%-16s %8s %-19s  %s\n", "-Queue ID-", "--Size--",
		"---Arrival Time----", "-Sender/Recipient-------");
	for (size_t i = 0; i < q->n; i++) {
		const struct store_entry *m = &q->v[i];
		const struct envelope *e = &m->env;

		t = (time_t)e->submitted;
		if (localtime_r(&t, &tm) == NULL ||
		    strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm) == 0)
			snprintf(when, sizeof(when), "%" PRId64, e->submitted);
		fprintf(out, "%-16s %8" PRIu64 " %-19s  %s\n", m->id, e->size,
			when, e->from && *e->from ? e->from : "<>");
		for (size_t j = 0; j < e->nrcpt; j++)
			if (e->rcpt[j].state == RCPT_PENDING)
				fprintf(out, "%48s%s\n", "", e->rcpt[j].addr);
		fputc('\n', out);
		total += e->size;
	}
	fprintf(out, "-- %" PRIu64 " Kbytes in %zu Request%s.\n",
		(total + 1023) / 1024, q->n, q->n == 1 ? "" : "s");
	return 0;
}

/* sendmail -bp: list the queue with store_list(). */
int
localsub_queue_list(struct localsub *ls, FILE *out, struct localsub_err *err)
{
	struct store_listing q = STORE_LISTING_INIT;
	struct store_list_err le = STORE_LIST_ERR_INIT;
	int r;

	/* Reading the queue needs nothing of the submit group. */
	if ((r = localsub__gid_drop(ls)) < 0)
		return localsub__oserr(err, r, "cannot drop the submit group");
	r = store_list(ls->base, localsub__queue_skipped, (void *)ls->prog, &q,
		&le);
	if (r < 0) {
		r = localsub__queue_fail(ls, r, &le, err);
	} else {
		localsub__queue_print(&q, out);
		if (fflush(out) != 0 || ferror(out))
			r = localsub_fail(err, EX_IOERR, -EIO,
				"cannot write the listing: %s", strerror(errno));
	}
	store_listing_free(&q);
	store_list_err_free(&le);
	return r;
}
