/*
 * fdcheck: a delivery program for tests. It reads all of stdin (so the
 * delivery can succeed), then writes to the file named by argv[1] one fact
 * a line: "fd N TARGET" for every open descriptor, "uid R E", "gid R E",
 * "groups G...", "umask 0NNN", "cwd PATH", "pid/ppid/pgid/sid N",
 * "sigblk HEX", "sigign HEX", "bytes N", "argv I VALUE", "env NAME=VALUE".
 * Exits 0, or 74 when it cannot write the file, 64 without argv[1].
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* Copy the value of a "Name:" line of /proc/self/status to f. */
static void
status_line(FILE *f, const char *name, const char *key)
{
	FILE *s = fopen("/proc/self/status", "re");
	char line[512];
	size_t n = strlen(key);

	if (s == NULL)
		return;
	while (fgets(line, sizeof(line), s))
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			char *v = line + n + 1;

			v += strspn(v, " \t");
			fprintf(f, "%s %s", name, v);
			break;
		}
	fclose(s);
}

int
main(int argc, char **argv)
{
	char *fdlist = NULL;
	size_t fdlen = 0;
	FILE *fl = open_memstream(&fdlist, &fdlen);
	unsigned long long bytes = 0;
	char b[65536], cwd[PATH_MAX];
	gid_t groups[NGROUPS_MAX];
	int ngroups;
	mode_t um;
	DIR *d;
	FILE *f;
	ssize_t n;

	if (argc < 2 || fl == NULL)
		return 64;
	/* List descriptors before opening any file (memstreams use none). */
	if ((d = opendir("/proc/self/fd")) != NULL) {
		struct dirent *e;

		while ((e = readdir(d)) != NULL) {
			char target[PATH_MAX];
			ssize_t t;

			if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
				continue;
			t = readlinkat(dirfd(d), e->d_name, target,
			    sizeof(target) - 1);
			target[t < 0 ? 0 : t] = '\0';
			fprintf(fl, "fd %s %s\n", e->d_name, target);
		}
		closedir(d);
	}
	fclose(fl);
	while ((n = read(0, b, sizeof(b))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		bytes += (unsigned long long)n;
	}
	um = umask(0);
	umask(um);
	if ((f = fopen(argv[1], "we")) == NULL)
		return 74;
	fputs(fdlist, f);
	free(fdlist);
	fprintf(f, "uid %ld %ld\n", (long)getuid(), (long)geteuid());
	fprintf(f, "gid %ld %ld\n", (long)getgid(), (long)getegid());
	ngroups = getgroups(NGROUPS_MAX, groups);
	fputs("groups", f);
	for (int i = 0; i < ngroups; i++)
		fprintf(f, " %ld", (long)groups[i]);
	fputc('\n', f);
	fprintf(f, "umask %04o\n", (unsigned)um);
	fprintf(f, "cwd %s\n", getcwd(cwd, sizeof(cwd)) ? cwd : "?");
	fprintf(f, "pid %ld\nppid %ld\npgid %ld\nsid %ld\n", (long)getpid(),
	    (long)getppid(), (long)getpgid(0), (long)getsid(0));
	status_line(f, "sigblk", "SigBlk");
	status_line(f, "sigign", "SigIgn");
	fprintf(f, "bytes %llu\n", bytes);
	for (int i = 0; i < argc; i++)
		fprintf(f, "argv %d %s\n", i, argv[i]);
	for (char **e = environ; *e; e++)
		fprintf(f, "env %s\n", *e);
	return fclose(f) == 0 ? 0 : 74;
}
