/*
 * strv: NULL-terminated vectors of malloc'ed strings (see strv.h). Owns
 * the strings it holds; promises that a failed call leaves the vector as
 * it was and returns -ENOMEM, never aborts.
 */
#include "strv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* Append s without copying it; s is freed if the vector cannot grow. */
int
strv_push_take(struct strv *sv, char *s)
{
	char **v;
	size_t cap;

	if (s == NULL)
		return -ENOMEM;
	if (sv->n + 2 > sv->cap) {
		cap = sv->cap ? sv->cap * 2 : 8;
		v = realloc(sv->v, cap * sizeof(*v));
		if (v == NULL) {
			free(s);
			return -ENOMEM;
		}
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
	return 0;
}

/* Append a copy of s. */
int
strv_push(struct strv *sv, const char *s)
{
	return strv_push_take(sv, text_strdup(s));
}

/* Append a copy of n bytes. */
int
strv_pushn(struct strv *sv, const char *s, size_t n)
{
	return strv_push_take(sv, text_strndup(s, n));
}

/* Append copies of all of src. */
int
strv_extend(struct strv *sv, const struct strv *src)
{
	int r;

	for (size_t i = 0; i < src->n; i++)
		if ((r = strv_push(sv, src->v[i])) < 0)
			return r;
	return 0;
}

/* Find s; -1 when absent. */
long
strv_find(const struct strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return (long)i;
	return -1;
}

/* Free all strings. */
void
strv_free(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}
