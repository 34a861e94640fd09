/*
 * mountinfo: owns reading /proc/self/mountinfo and finding the file system
 * type of a device in it. Each line is "ID PARENT MAJOR:MINOR ROOT POINT
 * OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS" (proc(5)); only the
 * third field and the one after the lone "-" are read. Promises: a line
 * that does not have that shape (or a type that is not printable ASCII)
 * is skipped, never guessed at; nothing is read past len. Never exits;
 * returns 0 or -errno.
 */
#include "mountinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "buf.h"

#define MOUNTINFO_PATH "/proc/self/mountinfo"
#define MOUNTINFO_MAX (16 * 1024 * 1024)	/* refuse a bigger file */

/* The next space-separated field of [*p, end): its start and length. */
static bool
next_field(const char **p, const char *end, const char **f, size_t *flen)
{
	const char *s = *p;

	while (s < end && *s == ' ')
		s++;
	if (s == end)
		return false;
	*f = s;
	while (s < end && *s != ' ')
		s++;
	*flen = (size_t)(s - *f);
	*p = s;
	return true;
}

/* Parse a decimal unsigned of exactly len bytes; false when not one. */
static bool
parse_uint(const char *s, size_t len, unsigned *out)
{
	unsigned long v = 0;

	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 0xffffffffUL)
		return false;
	*out = (unsigned)v;
	return true;
}

/* Does the line [s, end) name device major:minor? Then its type field. */
static bool
line_match(const char *s, const char *end, unsigned major, unsigned minor,
	const char **type, size_t *tlen)
{
	const char *f, *colon;
	size_t flen;
	unsigned maj, min;

	/* ID, PARENT, then MAJOR:MINOR */
	if (!next_field(&s, end, &f, &flen) || !next_field(&s, end, &f, &flen)
	    || !next_field(&s, end, &f, &flen))
		return false;
	if ((colon = memchr(f, ':', flen)) == NULL ||
	    !parse_uint(f, (size_t)(colon - f), &maj) ||
	    !parse_uint(colon + 1, flen - (size_t)(colon - f) - 1, &min) ||
	    maj != major || min != minor)
		return false;
	/* ROOT, POINT, OPTIONS, optional fields up to the lone "-" */
	for (unsigned i = 0;; i++) {
		if (!next_field(&s, end, &f, &flen))
			return false;
		if (i >= 3 && flen == 1 && f[0] == '-')
			break;
	}
	if (!next_field(&s, end, type, tlen))
		return false;
	/* a type is a plain name: printable ASCII, nothing else */
	for (size_t i = 0; i < *tlen; i++)
		if ((*type)[i] < 0x21 || (*type)[i] > 0x7e)
			return false;
	return true;
}

/* File system type of device major:minor in the mountinfo text. */
int
mountinfo_fstype(const char *text, size_t len, unsigned major,
	unsigned minor, char **type)
{
	const char *p = text, *end = text + len, *eol, *t;
	size_t tlen;

	*type = NULL;
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		if (line_match(p, eol, major, minor, &t, &tlen)) {
			if ((*type = strndup(t, tlen)) == NULL)
				return -ENOMEM;
			return 0;
		}
		p = eol + 1;
	}
	return -ENOENT;
}

/* File system type of the mount on device dev (a stat's st_dev). */
int
mountinfo_dev_fstype(dev_t dev, char **type)
{
	struct buf b = BUF_INIT;
	int mfd, r;

	*type = NULL;
	if ((mfd = open(MOUNTINFO_PATH, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	r = buf_read_fd(&b, mfd, MOUNTINFO_MAX);
	close(mfd);
	if (r == 0)
		r = mountinfo_fstype(b.data, b.len, major(dev), minor(dev),
			type);
	buf_free(&b);
	return r;
}
