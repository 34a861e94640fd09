/*
 * text: small helpers over C strings and byte ranges (see text.h): copies
 * that accept NULL, the one control-character rule, CR LF to LF. Pure;
 * owns nothing but the copies it returns.
 */
#include "text.h"

#include <stdlib.h>
#include <string.h>

/* strdup accepting NULL. */
char *
text_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Copy n bytes into a new string. */
char *
text_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Any control character (TAB too unless tab_ok) in s[0..n)? */
bool
text_has_ctl(const char *s, size_t n, bool tab_ok)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (text_is_ctl(c) && !(tab_ok && c == '\t'))
			return true;
	}
	return false;
}

/* Any control character in the string s (NULL holds none)? */
bool
text_str_has_ctl(const char *s)
{
	return s != NULL && text_has_ctl(s, strlen(s), false);
}

/* Copy in to out turning CR LF into LF, a CR carried between pieces. */
size_t
text_crlf_to_lf(const char *in, size_t n, char *out, bool *cr)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (*cr && c != '\n')
			out[o++] = '\r';	/* the held CR was a lone one */
		*cr = c == '\r';
		if (!*cr)
			out[o++] = c;
	}
	return o;
}
