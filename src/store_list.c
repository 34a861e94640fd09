/*
 * store_list: reading queue files without changing them: which names are
 * queue files (a 16-digit ID), the envelope loader every reader of Queue/
 * uses (recovery, import, the listing), which checks the envelope and the
 * file size against it, and store_list(), the listing of Queue/ for
 * readers outside the daemon (sendmail -bp), so that no other module
 * knows the queue's layout. Changes nothing on disk; blocks on it (main()
 * or a pool thread). Needs nothing of the rest of the store, so the
 * setgid sendmail links only this piece of it.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "store_int.h"
#include "text.h"

/* Parse a leading 16-digit ID from a file name; 0 when there is none. */
uint64_t
store__name_id(const char *name, bool *exact_msg)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < STORE_ID_LEN; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	if (name[i] != '\0' && name[i] != '.')
		return 0;
	if (exact_msg)
		*exact_msg = strcmp(name + i, ".msg") == 0;
	return v;
}

/* Keep the latest record of each recipient (journal_parse callback). */
static int
hist_take(void *arg, const struct journal_attempt *a)
{
	struct store_hist *h = (struct store_hist *)arg + a->rcpt;
	char *reason;

	if (a->type == JOURNAL_REPORTED) {
		h->reported |= 1u << a->action;	/* the attempt stays */
		return 0;
	}
	if ((reason = text_strndup(a->reason, a->reason_len)) == NULL)
		return -ENOMEM;
	free(h->reason);
	h->reason = reason;
	h->attempts = a->attempt;
	h->last = a->time;
	h->next = a->next;
	h->kind = a->kind;
	h->src = a->src;
	h->reply = a->reply;
	memcpy(h->status, a->status, sizeof(h->status));
	return 0;
}

/* Parse journal bytes into h (nrcpt entries); see store_int.h. */
int
store__hist_parse(const char *p, size_t n, size_t nrcpt, struct store_hist *h,
	size_t *used, const char **why, unsigned *line)
{
	return journal_parse(p, n, nrcpt, hist_take, h, used, why, line);
}

/* Free a history array of n recipients. */
void
store__hist_free(struct store_hist *h, size_t n)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(h[i].reason);
	free(h);
}

/*
 * Read and check the journal after the message: bytes [from, size) of
 * fd. *hist (when hist is not NULL) gets each recipient's last record, or
 * NULL when there is none; *jend the end of the complete records.
 */
static int
load_journal(int fd, const struct envelope *e, uint64_t from, uint64_t size,
	struct store_hist **hist, uint64_t *jend, const char **why,
	unsigned *line)
{
	struct buf b = BUF_INIT;
	struct store_hist *h = NULL;
	size_t used, got;
	int r = 0;

	*jend = 0;
	if (size - from > SIZE_MAX / 2)
		return -EFBIG;
	if ((r = buf_reserve_exact(&b, (size_t)(size - from))) < 0)
		return r;
	while (b.len < size - from) {
		if ((r = fdio_pread(fd, b.data + b.len, (size_t)(size - from) -
		    b.len, from + b.len, &got)) < 0)
			goto out;
		if (got == 0)
			break;	/* shrank while we read: take what is there */
		b.len += got;
	}
	if (hist && (h = calloc(e->nrcpt, sizeof(*h))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = journal_parse(b.data, b.len, e->nrcpt, h ? hist_take : NULL, h,
		&used, why, line);
	if (r == -EBADMSG)
		*why = "bad journal record after the message";
	if (r < 0)
		goto out;
	*jend = used ? from + used : 0;
	if (hist) {
		*hist = used ? h : NULL;
		h = used ? NULL : h;
	}
out:
	store__hist_free(h, e->nrcpt);
	buf_free(&b);
	return r;
}

/*
 * Read and check the envelope of the open file fd and the journal after
 * its message: 0, -EBADMSG (with why and line, 0 when not tied to a
 * line) or -errno. hist and jend: see load_journal (hist may be NULL).
 */
int
store__load_envelope(int fd, struct envelope *e, struct store_hist **hist,
	uint64_t *jend, const char **why, unsigned *line)
{
	struct buf b = BUF_INIT;
	struct stat sb;
	ssize_t n;
	int r;

	*why = NULL;
	*line = 0;
	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EINVAL;
	for (;;) {
		if ((r = buf_reserve(&b, READ_CHUNK)) < 0)
			break;
		n = pread(fd, b.data + b.len, READ_CHUNK, (off_t)b.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		b.len += (size_t)n;
		b.data[b.len] = '\0';
		envelope_free(e);
		r = envelope_parse(b.data, b.len, e, why, line);
		if (r == -EAGAIN && n == 0) {
			*why = "the file ends inside the envelope";
			*line = 0;
			r = -EBADMSG;
		} else if (r == -EINVAL) {
			if (*why == NULL)
				*why = "bad envelope";
			r = -EBADMSG;
		}
		if (r != -EAGAIN)
			break;
	}
	buf_free(&b);
	if (r == 0 && (e->size > (uint64_t)sb.st_size ||
	    (uint64_t)sb.st_size - e->size < e->header_len)) {
		*why = "the file is shorter than the envelope length plus size";
		*line = 0;
		r = -EBADMSG;
	}
	if (hist)
		*hist = NULL;
	*jend = 0;
	if (r == 0 && (uint64_t)sb.st_size > e->header_len + e->size)
		r = load_journal(fd, e, e->header_len + e->size,
			(uint64_t)sb.st_size, hist, jend, why, line);
	if (r < 0)
		envelope_free(e);
	return r;
}



/* One store_list run. */
struct list_scan {
	const char *qpath;	/* BASE/Queue */
	store_list_skip_cb skipped;
	void *arg;
	struct store_listing *out;
	struct store_list_err *err;
};

/* Record where the listing failed (rel: relative path); return r. */
static int
list_fail(struct list_scan *s, enum store_list_step step, const char *rel,
	int r)
{
	if (s->err != NULL) {
		free(s->err->relpath);
		s->err->step = step;
		s->err->relpath = strdup(rel);
	}
	return r;
}

/* Room for one more entry in the listing. */
static int
list_grow(struct store_listing *l, size_t *cap)
{
	struct store_entry *v;
	size_t n;

	if (l->n < *cap)
		return 0;
	n = *cap ? *cap * 2 : 16;
	if ((v = realloc(l->v, n * sizeof(*v))) == NULL)
		return -ENOMEM;
	l->v = v;
	*cap = n;
	return 0;
}

/* Add folder/NAME.msg (rel: its relative path); vanished files skipped. */
static int
list_file(struct list_scan *s, size_t *cap, int dfd, const char *rel,
	const char *name)
{
	struct store_entry *ent;
	const char *why;
	unsigned line;
	struct stat sb;
	uint64_t jend;
	int fd, r;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && (errno == ENOENT || errno == ELOOP))
		return 0;
	if (fd < 0)
		return list_fail(s, STORE_LIST_READ_FILE, rel, -errno);
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return 0;
	}
	if ((r = list_grow(s->out, cap)) < 0) {
		close(fd);
		return r;
	}
	ent = &s->out->v[s->out->n];
	memset(ent, 0, sizeof(*ent));
	envelope_init(&ent->env);
	r = store__load_envelope(fd, &ent->env, NULL, &jend, &why, &line);
	close(fd);
	if (r == -EBADMSG) {
		/* The server moves it to corrupt/; list the rest. */
		if (s->skipped != NULL)
			s->skipped(s->arg, rel, why, line);
		return 0;
	}
	if (r < 0)
		return list_fail(s, STORE_LIST_READ_FILE, rel, r);
	memcpy(ent->id, name, STORE_ID_LEN);
	ent->id[STORE_ID_LEN] = '\0';
	if ((ent->relpath = strdup(rel)) == NULL) {
		envelope_free(&ent->env);
		return -ENOMEM;
	}
	s->out->n++;
	return 0;
}

/* Scan one folder of Queue/ (sub "" is Queue/ itself); recurse once. */
static int
list_dir(struct list_scan *s, size_t *cap, int parent, const char *sub)
{
	struct buf rel = BUF_INIT, file = BUF_INIT;
	struct dirent *de;
	struct stat st;
	bool exact;
	DIR *d;
	int fd, r = 0;

	if ((r = buf_printf(&rel, "Queue%s%s", *sub ? "/" : "", sub)) < 0)
		return r;
	fd = *sub ? openat(parent, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		O_CLOEXEC) : open(s->qpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && *sub && (errno == ENOENT || errno == ENOTDIR ||
	    errno == ELOOP))
		goto out;
	if (fd < 0) {
		r = list_fail(s, STORE_LIST_OPEN_DIR, rel.data, -errno);
		goto out;
	}
	if ((d = fdopendir(fd)) == NULL) {
		r = list_fail(s, STORE_LIST_OPEN_DIR, rel.data, -errno);
		close(fd);
		goto out;
	}
	while (r == 0) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno)
				r = list_fail(s, STORE_LIST_READ_DIR, rel.data,
					-errno);
			break;
		}
		if (de->d_name[0] == '.')
			continue;
		if (de->d_type == DT_UNKNOWN) {
			if (fstatat(fd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			de->d_type = S_ISDIR(st.st_mode) ? DT_DIR :
				S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
		}
		if (de->d_type == DT_REG &&
		    store__name_id(de->d_name, &exact) != 0 && exact) {
			buf_reset(&file);
			if ((r = buf_printf(&file, "%s/%s", rel.data,
			    de->d_name)) == 0)
				r = list_file(s, cap, fd, file.data,
					de->d_name);
		} else if (de->d_type == DT_DIR && *sub == '\0' &&
		    strcmp(de->d_name, CORRUPT_DIR) != 0) {
			r = list_dir(s, cap, fd, de->d_name);
		}
	}
	closedir(d);
out:
	buf_free(&rel);
	buf_free(&file);
	return r;
}

/* qsort order: queue IDs, which sort in arrival order. */
static int
list_cmp(const void *a, const void *b)
{
	const struct store_entry *x = a, *y = b;

	return strcmp(x->id, y->id);
}

/* List BASE/Queue and its subfolders. */
int
store_list(const char *base_dir, store_list_skip_cb skipped, void *arg,
	struct store_listing *out, struct store_list_err *err)
{
	struct buf qpath = BUF_INIT;
	struct list_scan s = { NULL, skipped, arg, out, err };
	size_t cap;
	int r;

	if (base_dir == NULL || out == NULL)
		return -EINVAL;
	cap = out->n;
	if ((r = buf_printf(&qpath, "%s/Queue", base_dir)) < 0)
		return r;
	s.qpath = qpath.data;
	r = list_dir(&s, &cap, -1, "");
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), list_cmp);
	buf_free(&qpath);
	return r;
}

/* Free a listing. */
void
store_listing_free(struct store_listing *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].relpath);
		envelope_free(&l->v[i].env);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Free what a store_list error holds. */
void
store_list_err_free(struct store_list_err *err)
{
	free(err->relpath);
	err->relpath = NULL;
}
