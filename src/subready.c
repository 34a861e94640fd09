/*
 * subready: per-name readiness of Submitted files (see subready.h). Owns a
 * table of names, sorted for binary search and bounded by max_names: past
 * it new names are simply not tracked and are judged by the settle rule
 * alone, which is always safe, only slower. Promises that a name hinted
 * after a listing started is never pruned by that listing. No I/O, no
 * clock reads, no globals.
 */
#include "subready.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"

/* One tracked name. */
struct sr_entry {
	char *name;
	struct subready_view v;
	uint64_t seq;		/* the hint counter at its last hint */
	int err;		/* the last failed look's error, 0 = none */
};

struct subready {
	struct subready_settings s;
	struct sr_entry *v;	/* sorted by name */
	size_t n, cap;
	uint64_t seq;		/* counts hints */
};

/* Do two looks at a file agree on everything a change alters? */
bool
subready_same(const struct subready_stat *a, const struct subready_stat *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
		a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* The verdict for a file just looked at (see subready.h). */
enum subready_verdict
subready_judge(const struct subready_view *v, const struct subready_stat *st,
	int64_t now_ns, uint64_t now_ms, const struct subready_settings *s,
	uint64_t *wait_ms)
{
	uint64_t limit, left = UINT64_MAX;

	if (v->state == SUBREADY_DONE)
		return SUBREADY_TAKE;
	limit = v->state == SUBREADY_WRITING ? s->grace_ms : s->settle_ms;
	/* the inode's own change time (the kernel sets it, not the user) */
	if (now_ns >= st->ctime_ns) {
		uint64_t age = (uint64_t)(now_ns - st->ctime_ns) / 1000000u;

		if (age >= limit)
			return SUBREADY_TAKE;
		left = limit - age;
	}
	/* or two looks that far apart: also when the clocks disagree */
	if (v->seen && subready_same(&v->st, st)) {
		uint64_t el = now_ms >= v->seen_ms ? now_ms - v->seen_ms : 0;

		if (el >= limit)
			return SUBREADY_TAKE;
		if (limit - el < left)
			left = limit - el;
	} else if (limit < left) {
		left = limit;
	}
	if (wait_ms != NULL)
		*wait_ms = left;
	return SUBREADY_WAIT;
}

/* A new, empty table. */
int
subready_new(const struct subready_settings *s, struct subready **out)
{
	struct subready *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -ENOMEM;
	r->s = *s;
	*out = r;
	return 0;
}

/* Free the table. */
void
subready_free(struct subready *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].name);
	free(r->v);
	free(r);
}

/* Index of name, or where it would go (*found says which). */
static size_t
sr_find(const struct subready *r, const char *name, bool *found)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->v[mid].name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* The entry of name, made when absent; NULL when full or out of memory. */
static struct sr_entry *
sr_get(struct subready *r, const char *name)
{
	bool found;
	size_t i = sr_find(r, name, &found);
	struct sr_entry e = { 0 };

	if (found)
		return &r->v[i];
	if (r->n >= r->s.max_names)
		return NULL;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct sr_entry *v = realloc(r->v, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		r->v = v;
		r->cap = cap;
	}
	if ((e.name = strdup(name)) == NULL)
		return NULL;
	memmove(&r->v[i + 1], &r->v[i], (r->n - i) * sizeof(*r->v));
	r->v[i] = e;
	r->n++;
	return &r->v[i];
}

/* Remove entry i. */
static void
sr_drop(struct subready *r, size_t i)
{
	free(r->v[i].name);
	memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof(*r->v));
	r->n--;
}

/* Note a notification for name. */
void
subready_hint(struct subready *r, const char *name, enum subready_hint h)
{
	struct sr_entry *e;
	bool found;
	size_t i;

	r->seq++;
	if (h == SUBREADY_GONE) {
		i = sr_find(r, name, &found);
		if (found)
			sr_drop(r, i);
		return;
	}
	if ((e = sr_get(r, name)) == NULL)
		return;		/* untracked: the settle rule still holds */
	e->seq = r->seq;
	e->v.state = h == SUBREADY_WRITTEN ? SUBREADY_WRITING : SUBREADY_DONE;
}

/* Every hint was lost: only what looks saw is still true. */
void
subready_lost(struct subready *r)
{
	r->seq++;
	for (size_t i = 0; i < r->n; i++) {
		r->v[i].v.state = SUBREADY_UNKNOWN;
		r->v[i].seq = r->seq;	/* a listing running now may miss it */
	}
}

/* What is known of name. */
void
subready_view(const struct subready *r, const char *name,
	struct subready_view *out)
{
	bool found;
	size_t i = sr_find(r, name, &found);

	if (found)
		*out = r->v[i].v;
	else
		memset(out, 0, sizeof(*out));
}

/* A look waited: keep what it saw, and since when, unless unchanged. */
void
subready_saw(struct subready *r, const char *name,
	const struct subready_stat *st, uint64_t now_ms)
{
	struct sr_entry *e = sr_get(r, name);

	if (e == NULL)
		return;
	e->err = 0;		/* it could be read */
	if (e->v.seen && subready_same(&e->v.st, st))
		return;
	e->v.seen = true;
	e->v.st = *st;
	e->v.seen_ms = now_ms;
}

/* A look failed with err: is that news? */
bool
subready_failed(struct subready *r, const char *name, int err)
{
	struct sr_entry *e = sr_get(r, name);

	if (e == NULL)
		return true;	/* untracked: better twice than never */
	if (e->err == err)
		return false;
	e->err = err;
	return true;
}

/* Forget name. */
void
subready_forget(struct subready *r, const char *name)
{
	bool found;
	size_t i = sr_find(r, name, &found);

	if (found)
		sr_drop(r, i);
}

/* The mark a listing starts at. */
uint64_t
subready_mark(const struct subready *r)
{
	return r->seq;
}

/* Forget names a listing did not find, unless hinted since it began. */
void
subready_prune(struct subready *r, const struct strv *names, uint64_t mark)
{
	size_t i = 0, k = 0;

	/* both sorted: one merge walk */
	while (i < r->n) {
		int c = 1;

		while (k < names->n && (c = strcmp(names->v[k],
		    r->v[i].name)) < 0)
			k++;
		if (k < names->n && c == 0) {
			i++;
			continue;
		}
		if (r->v[i].seq > mark) {
			i++;
			continue;
		}
		sr_drop(r, i);
	}
}

/* Names tracked. */
size_t
subready_count(const struct subready *r)
{
	return r->n;
}
