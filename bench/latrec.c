/*
 * latrec: the delivery program of bench/smtp-throughput's latency phase,
 * the same binary for mailpipe and for Postfix's pipe(8).
 *
 *   latrec FILE [IGNORED...]
 *
 * Reads all of stdin (the message), takes CLOCK_MONOTONIC once the last
 * byte is in, and appends one line "TOKEN SECONDS.NANOSECONDS" to FILE with
 * a single write(2) (O_APPEND, so concurrent runs never interleave). TOKEN
 * is the value of the message's first "X-Bench-Token:" header field, or "-"
 * when there is none. Extra arguments are ignored. Exits 0, or 74
 * (EX_IOERR) when stdin or FILE cannot be read or written, 64 (EX_USAGE)
 * without FILE. Nothing is written to stdout or stderr on success.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Find the token in the header block of msg (len bytes) into tok. */
static void
find_token(const char *msg, size_t len, char *tok, size_t toksz)
{
	static const char name[] = "X-Bench-Token:";
	size_t i = 0, n = sizeof(name) - 1;

	snprintf(tok, toksz, "-");
	while (i < len) {
		const char *eol = memchr(msg + i, '\n', len - i);
		size_t l = eol ? (size_t)(eol - (msg + i)) : len - i;

		if (l == 0 || (l == 1 && msg[i] == '\r'))
			return;		/* end of the header */
		if (l > n && strncasecmp(msg + i, name, n) == 0) {
			size_t a = i + n, b = i + l, k = 0;

			while (a < b && (msg[a] == ' ' || msg[a] == '\t'))
				a++;
			while (b > a && (msg[b - 1] == '\r' ||
				msg[b - 1] == ' ' || msg[b - 1] == '\t'))
				b--;
			while (a < b && k + 1 < toksz) {
				char c = msg[a++];

				tok[k++] = (c > ' ' && c < 127) ? c : '_';
			}
			tok[k] = '\0';
			if (k == 0)
				snprintf(tok, toksz, "-");
			return;
		}
		i += l + 1;
	}
}

int
main(int argc, char **argv)
{
	char *msg = NULL, tok[128], line[192];
	size_t len = 0, cap = 0;
	struct timespec ts;
	ssize_t r;
	int fd, n;

	if (argc < 2)
		return 64;
	for (;;) {
		if (cap - len < 65536) {
			char *p = realloc(msg, cap + 65536);

			if (!p)
				return 74;
			msg = p;
			cap += 65536;
		}
		r = read(0, msg + len, cap - len);
		if (r < 0)
			return 74;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	find_token(msg, len, tok, sizeof(tok));
	n = snprintf(line, sizeof(line), "%s %lld.%09ld\n", tok,
		(long long)ts.tv_sec, ts.tv_nsec);
	fd = open(argv[1], O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		return 74;
	close(fd);
	free(msg);
	return 0;
}
