/*
 * limits: the machine's raw limits for the pipe-throughput benchmark, so
 * mailpipe can be reported as a ratio of them from the same run.
 *   limits spawn PROGRAM N SIZE THREADS   posix_spawn + write SIZE bytes
 *                                         to stdin + wait, N times
 *   limits commit DIR N SIZE THREADS      create + write + fsync + rename
 *                                         + fsync(dir), N files
 *   limits both PROGRAM DIR N SIZE THREADS   one of each per message
 * THREADS workers share the N operations. Prints "OPS/s".
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct job {
	const char *program;
	const char *dir;
	long n;
	size_t size;
	char *data;
	atomic_long next;
	int do_spawn, do_commit;
};

/* Spawn the program, feed it size bytes, wait for it. */
static int
spawn_once(struct job *j)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = { (char *)j->program, NULL };
	int p[2], st;
	pid_t pid;
	size_t off = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], 0);
	if (posix_spawn(&pid, j->program, &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	while (off < j->size) {
		ssize_t w = write(p[1], j->data + off, j->size - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		off += (size_t)w;
	}
	close(p[1]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}

/* Durably create one file: write, fsync, rename, fsync the directory. */
static int
commit_once(struct job *j, long i)
{
	char tmp[4096], msg[4096];
	int fd, dfd;

	snprintf(tmp, sizeof(tmp), "%s/%ld.tmp", j->dir, i);
	snprintf(msg, sizeof(msg), "%s/%ld.msg", j->dir, i);
	fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (write(fd, j->data, j->size) != (ssize_t)j->size || fsync(fd) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	if (rename(tmp, msg) < 0)
		return -1;
	dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	fsync(dfd);
	close(dfd);
	return 0;
}

/* Worker: take operations until none are left. */
static void *
worker(void *arg)
{
	struct job *j = arg;
	long i;

	while ((i = atomic_fetch_add(&j->next, 1)) < j->n) {
		if (j->do_commit && commit_once(j, i) < 0) {
			perror("commit");
			exit(1);
		}
		if (j->do_spawn && spawn_once(j) < 0) {
			perror("spawn");
			exit(1);
		}
	}
	return NULL;
}

/* Parse arguments, run, print operations per second. */
int
main(int argc, char **argv)
{
	struct job j;
	struct timespec a, b;
	pthread_t *t;
	int threads, k = 2;
	double secs;

	memset(&j, 0, sizeof(j));
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		goto usage;
	if (strcmp(argv[1], "spawn") == 0 && argc == 6) {
		j.program = argv[k++];
		j.do_spawn = 1;
	} else if (strcmp(argv[1], "commit") == 0 && argc == 6) {
		j.dir = argv[k++];
		j.do_commit = 1;
	} else if (strcmp(argv[1], "both") == 0 && argc == 7) {
		j.program = argv[k++];
		j.dir = argv[k++];
		j.do_spawn = j.do_commit = 1;
	} else {
		goto usage;
	}
	j.n = atol(argv[k++]);
	j.size = (size_t)atol(argv[k++]);
	threads = atoi(argv[k]);
	if (j.n <= 0 || threads <= 0)
		goto usage;
	j.data = malloc(j.size);
	memset(j.data, 'x', j.size);
	t = calloc((size_t)threads, sizeof(*t));
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, &j);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("%.1f\n", (double)j.n / secs);
	free(t);
	free(j.data);
	return 0;
usage:
	fprintf(stderr, "usage: limits spawn PROGRAM N SIZE THREADS\n"
		"       limits commit DIR N SIZE THREADS\n"
		"       limits both PROGRAM DIR N SIZE THREADS\n");
	return 64;
}
