/*
 * readall: a small delivery program for tests and the benchmark. It reads
 * its stdin and then does what its options say, in this order:
 *   -s SEC     sleep SEC seconds (fractions allowed) before reading
 *   -n N       read at most N bytes of stdin (default: everything)
 *   -c         close stdin after reading
 *   -w FILE    write the bytes read to FILE (created/truncated)
 *   -S SEC     sleep SEC seconds after reading
 *   -O N       write N bytes to stdout      -E N  write N bytes to stderr
 *   -e TEXT    write TEXT and a newline to stderr (repeatable)
 *   -o FILE    append one JSON line: pid, uid, gid, bytes read, FNV-1a hash
 *              of them, argv, the whole environment (one write, O_APPEND)
 *   -k SIG     kill itself with signal SIG
 *   -x N       exit with status N (default 0)
 * Unknown options and I/O errors exit 64 (EX_USAGE) / 74 (EX_IOERR). The
 * arguments the server appends (-f FILE, -p ADDR, -r ADDR) are accepted
 * and only recorded.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Sleep for a number of seconds given as text. */
static void
nap(const char *s)
{
	double d = strtod(s, NULL);
	struct timespec ts = { (time_t)d, (long)((d - (time_t)d) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Write all of p to fd; exit 74 on error. */
static void
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			exit(74);
		p += w;
		n -= (size_t)w;
	}
}

/* Write n bytes of filler to fd. */
static void
write_filler(int fd, unsigned long long n)
{
	char b[65536];

	memset(b, 'x', sizeof(b));
	while (n > 0) {
		size_t k = n < sizeof(b) ? (size_t)n : sizeof(b);

		write_all(fd, b, k);
		n -= k;
	}
}

/* Write s as a JSON string. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* Append the JSON record to path with a single write. */
static void
record(const char *path, int argc, char **argv, unsigned long long bytes,
	uint64_t hash)
{
	char *line = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&line, &len);
	int fd;

	if (f == NULL)
		exit(74);
	fprintf(f, "{\"pid\":%ld,\"uid\":%ld,\"gid\":%ld,\"bytes\":%llu,"
	    "\"fnv1a\":\"%016llx\",\"argv\":[", (long)getpid(),
	    (long)getuid(), (long)getgid(), bytes, (unsigned long long)hash);
	for (int i = 0; i < argc; i++) {
		if (i)
			fputc(',', f);
		json_str(f, argv[i]);
	}
	fputs("],\"env\":{", f);
	for (char **e = environ; *e; e++) {
		char *eq = strchr(*e, '=');

		if (eq == NULL)
			continue;
		if (e != environ)
			fputc(',', f);
		*eq = '\0';
		json_str(f, *e);
		*eq = '=';
		fputc(':', f);
		json_str(f, eq + 1);
	}
	fputs("}}\n", f);
	if (fclose(f) != 0)
		exit(74);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		exit(74);
	write_all(fd, line, len);
	close(fd);
	free(line);
}

int
main(int argc, char **argv)
{
	const char *pre = NULL, *post = NULL, *out = NULL, *copy = NULL;
	const char **etext = calloc((size_t)argc + 1, sizeof(*etext));
	int netext = 0;
	unsigned long long max = ~0ULL, nout = 0, nerr = 0, total = 0;
	uint64_t hash = 0xcbf29ce484222325ULL;
	int status = 0, sig = 0, close_in = 0, cfd = -1, opt;
	char b[65536];

	while ((opt = getopt(argc, argv, "s:n:cw:S:O:E:e:o:k:x:f:p:r:")) !=
	    -1) {
		switch (opt) {
		case 's': pre = optarg; break;
		case 'n': max = strtoull(optarg, NULL, 10); break;
		case 'c': close_in = 1; break;
		case 'w': copy = optarg; break;
		case 'S': post = optarg; break;
		case 'O': nout = strtoull(optarg, NULL, 10); break;
		case 'E': nerr = strtoull(optarg, NULL, 10); break;
		case 'e': etext[netext++] = optarg; break;
		case 'o': out = optarg; break;
		case 'k': sig = atoi(optarg); break;
		case 'x': status = atoi(optarg); break;
		case 'f': case 'p': case 'r': break;
		default: return 64;
		}
	}
	if (etext == NULL)
		return 71;
	if (pre)
		nap(pre);
	if (copy && (cfd = open(copy, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600)) < 0)
		return 74;
	while (total < max) {
		size_t want = max - total < sizeof(b) ? (size_t)(max - total) :
		    sizeof(b);
		ssize_t n = read(0, b, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 74;
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			hash ^= (unsigned char)b[i];
			hash *= 0x100000001b3ULL;
		}
		if (cfd >= 0)
			write_all(cfd, b, (size_t)n);
		total += (unsigned long long)n;
	}
	if (cfd >= 0)
		close(cfd);
	if (close_in)
		close(0);
	if (post)
		nap(post);
	write_filler(1, nout);
	write_filler(2, nerr);
	for (int i = 0; i < netext; i++) {
		write_all(2, etext[i], strlen(etext[i]));
		write_all(2, "\n", 1);
	}
	if (out)
		record(out, argc, argv, total, hash);
	free(etext);
	if (sig) {
		signal(sig, SIG_DFL);
		kill(getpid(), sig);
	}
	return status;
}
