/*
 * store_list: reading queue files without changing them: the envelope
 * loader every reader of Queue/ uses (recovery, import), which checks the
 * envelope and the file size against it.
 */

#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

/*
 * Read and check the envelope of the open file fd: 0, -EBADMSG (with
 * why and line, 0 when not tied to a line) or -errno.
 */
int
store__load_envelope(int fd, struct envelope *e, const char **why,
	unsigned *line)
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
	    (uint64_t)sb.st_size - e->size != e->header_len)) {
		*why = "the file size is not the envelope length plus size";
		*line = 0;
		r = -EBADMSG;
	}
	if (r < 0)
		envelope_free(e);
	return r;
}


