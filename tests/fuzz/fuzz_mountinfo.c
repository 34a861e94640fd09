/*
 * libFuzzer target for mountinfo.c: the first four bytes choose the
 * device (two bytes major, two minor), the rest is mountinfo text. The
 * parser must not read past the text, and a type it returns must be a
 * non-empty run of the text with no space and no line end in it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned maj, min;
	char *text, *type = NULL;
	size_t len;
	int r;

	if (size < 4)
		return 0;
	maj = (unsigned)data[0] << 8 | data[1];
	min = (unsigned)data[2] << 8 | data[3];
	len = size - 4;
	/* an exact-size copy, so ASan sees any read past the end */
	if ((text = malloc(len ? len : 1)) == NULL)
		return 0;
	memcpy(text, data + 4, len);
	r = mountinfo_fstype(text, len, maj, min, &type);
	if (r == 0) {
		size_t tlen = strlen(type);

		if (tlen == 0 || strpbrk(type, " \n") != NULL ||
		    memmem(text, len, type, tlen) == NULL)
			abort();
		free(type);
	} else if (r != -ENOENT && r != -ENOMEM) {
		abort();
	} else if (type != NULL) {
		abort();
	}
	free(text);
	return 0;
}
