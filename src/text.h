/*
 * text: helpers over C strings and byte ranges: NULL-accepting copies,
 * the control-character rule, CR LF to LF.
 */
#ifndef MP_TEXT_H
#define MP_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Copy the n bytes at in to out (room for n + 1 bytes) with every CR LF
 * turned into LF; lone CRs stay. A text may be converted piece by piece:
 * *cr (false at the start) carries a CR that ended the previous piece,
 * written out with the next piece unless that starts with LF; a CR left
 * at the very end is the caller's to write. Returns the bytes written.
 */
size_t text_crlf_to_lf(const char *in, size_t n, char *out, bool *cr);

/*
 * Control characters: 0x00-0x1f and 0x7f (TAB, CR and LF included); an
 * octet >= 0x80 is never one. The one rule behind every "is this text
 * free of control characters" check.
 */
static inline bool
text_is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}
/* Any control character in s[0..n)? With tab_ok, TAB does not count. */
bool text_has_ctl(const char *s, size_t n, bool tab_ok);
/* Any control character in the string s (NULL holds none)? */
bool text_str_has_ctl(const char *s);

/* strdup that returns NULL only on allocation failure and accepts NULL. */
char *text_strdup(const char *s);
/* Copy of n bytes at s, NUL-terminated. */
char *text_strndup(const char *s, size_t n);

#endif
