/*
 * random: random bytes from getrandom(2).
 */
#ifndef MP_RANDOM_H
#define MP_RANDOM_H

#include <stddef.h>

/* Fill p with n random bytes from getrandom(2) (retries EINTR). */
int random_bytes(void *p, size_t n);
/* Write 2 * n random lower-case hex digits and a NUL to out. */
int random_hex(char *out, size_t n);

#endif
