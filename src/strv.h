/*
 * strv: a NULL-terminated vector of malloc'ed strings. Every function
 * that can allocate returns 0 or -ENOMEM and leaves the vector valid.
 */
#ifndef MP_STRV_H
#define MP_STRV_H

#include <stddef.h>

struct strv {
	char **v;	/* v[n] == NULL whenever v != NULL */
	size_t n;
	size_t cap;
};

#define STRV_INIT { NULL, 0, 0 }

/* Append a copy of s. */
int strv_push(struct strv *sv, const char *s);
/* Append a copy of the n bytes at s (NUL added). */
int strv_pushn(struct strv *sv, const char *s, size_t n);
/* Append s itself; on failure s is freed. */
int strv_push_take(struct strv *sv, char *s);
/* Append a copy of every string of src. */
int strv_extend(struct strv *sv, const struct strv *src);
/* Index of the first string equal to s, or -1. */
long strv_find(const struct strv *sv, const char *s);
/* Free the strings and the array. */
void strv_free(struct strv *sv);

#endif
