/*
 * Unit tests for the Submitted scanner (submit.c, submit_read.c,
 * submit_job.c, with subready.c's rules) over a real store and enqueuer in
 * a folder under /tmp, on a real libuv loop with real notifications; the
 * scheduler is a fake that keeps what it is handed, in order. Covered: a
 * small .sub queued and removed (the queue file's content: Received: from
 * local user, Bcc removed, Date and Message-ID added), release order =
 * file order, .tmp files ignored until renamed in, a bad header renamed
 * .bad with its log line, a large file streamed (the queue file is the
 * file with CR LF -> LF under Received:), a file still being written left
 * until its writer closes it, an unreadable file left in place and logged
 * once, the queue limit leaving files for later, the submitting user as
 * return-path and From:, recipients routed at submission when Enqueue
 * Asynchronously does not apply. No sleeps: the loop
 * runs until a log line, a count or the stop callback (bounded in turns).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "enqueue.h"
#include "router.h"
#include "sched.h"
#include "store.h"
#include "submit.h"
#include "testutil.h"

#define HOST "mx.example"
#define LOOPS 1000000		/* loop turns a wait may take at most */
#define WAIT_MS 30000		/* and milliseconds */
#define NMAX 16
#define SMALL "From: joe@example.com\nTo: r@example.org\n" \
	"Bcc: hidden@example.org\nSubject: small\n\nhello\n"

/* The fake scheduler: the messages it was handed, in order. */
struct sched {
	struct store_msg *m[NMAX];
	int n;
};

/* Everything one test needs. */
struct fx {
	char base[64];
	uv_loop_t loop;
	struct logger lg;
	struct store *st;
	struct enqueue *eq;
	struct submit *sb;
	struct sched sc;
	int stopped;
};

/* The scheduler takes a durable message (the fake keeps it). */
int
sched_add(struct sched *sc, struct store_msg *m)
{
	assert_true(sc->n < NMAX);
	sc->m[sc->n++] = m;
	return 0;
}

/* BASE/rel in dst (PATH_MAX bytes). */
static void
path_of(const struct fx *fx, const char *rel, char *dst)
{
	tu_snprintf(dst, PATH_MAX, "%s/%s", fx->base, rel);
}

/* How many times the log holds text. */
static int
log_count(const struct fx *fx, const char *text)
{
	char p[PATH_MAX];
	char *all, *at;
	int n = 0;

	path_of(fx, "log", p);
	all = tu_slurp(p, NULL);
	for (at = all; (at = strstr(at, text)) != NULL; at += strlen(text))
		n++;
	free(all);
	return n;
}

/* Does the log hold text? */
static bool
logged(const struct fx *fx, const char *text)
{
	return log_count(fx, text) > 0;
}

/* A base folder with Submitted/, a loop, a logger to BASE/log. */
static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char p[PATH_MAX];

	assert_non_null(fx);
	snprintf(fx->base, sizeof(fx->base), "/tmp/mp-submit-XXXXXX");
	assert_non_null(mkdtemp(fx->base));
	path_of(fx, "log", p);
	log_init(&fx->lg);
	log_set_all(&fx->lg, LOG_ALL);
	fx->lg.fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(fx->lg.fd >= 0);
	path_of(fx, "Submitted", p);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	*state = fx;
	return 0;
}

/*
 * Open the store (queue limit), the enqueuer and the scanner with router
 * (NULL: no routing at submission) and enqueue-async a; start it.
 */
static void
start_routed(struct fx *fx, uint64_t limit, const struct router_ctx *router,
	enum enqueue_async a)
{
	struct store_settings ss = { .foldering = 0, .limit = limit };
	struct enqueue_settings es = { HOST, 30 };
	struct submit_settings s = {
		.base_dir = fx->base, .scan_interval_s = 1, .hostname = HOST,
		.default_domain = "example.com", .set_owner = false,
		.submit_gid = (gid_t)-1, .router = router,
		.enqueue_async = a,
	};

	assert_int_equal(store_open(&fx->loop, fx->base, &ss, &fx->lg,
		&fx->st), 0);
	assert_int_equal(enqueue_open(&es, fx->st, &fx->sc, &fx->lg,
		&fx->eq), 0);
	assert_int_equal(submit_open(&fx->loop, &s, fx->eq, fx->st, &fx->lg,
		&fx->sb), 0);
	assert_int_equal(submit_start(fx->sb), 0);
}

/* Open and start everything; every recipient queued. */
static void
start_all(struct fx *fx, uint64_t limit)
{
	start_routed(fx, limit, NULL, ASYNC_NOBODY);
}

/* submit_stop's callback. */
static void
on_stopped(void *arg)
{
	struct fx *fx = arg;

	fx->stopped++;
}

/* One more loop turn of a wait that began at start (bounded). */
static void
turn(struct fx *fx, int i, uint64_t start)
{
	assert_true(i < LOOPS);
	uv_update_time(&fx->loop);
	assert_true(uv_now(&fx->loop) - start < WAIT_MS);
	uv_run(&fx->loop, UV_RUN_ONCE);
}

/* Run the loop until *n is at least want. */
static void
run_until(struct fx *fx, const int *n, int want)
{
	uint64_t start = (uv_update_time(&fx->loop), uv_now(&fx->loop));

	for (int i = 0; *n < want; i++)
		turn(fx, i, start);
}

/* Run the loop until the log holds text at least want times. */
static void
run_until_logged(struct fx *fx, const char *text, int want)
{
	uint64_t start = (uv_update_time(&fx->loop), uv_now(&fx->loop));

	for (int i = 0; log_count(fx, text) < want; i++)
		turn(fx, i, start);
}

/* Does BASE/rel exist? */
static bool
there(const struct fx *fx, const char *rel)
{
	char p[PATH_MAX];

	path_of(fx, rel, p);
	return access(p, F_OK) == 0;
}

/* Run the loop until BASE/rel exists. */
static void
run_until_there(struct fx *fx, const char *rel)
{
	uint64_t start = (uv_update_time(&fx->loop), uv_now(&fx->loop));

	for (int i = 0; !there(fx, rel); i++)
		turn(fx, i, start);
}

/* A test timer fired. */
static void
on_test_timer(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

/* Run the loop for ms (scans, timers and notifications go on). */
static void
run_for(struct fx *fx, uint64_t ms)
{
	uv_timer_t t;
	int fired = 0;

	uv_timer_init(&fx->loop, &t);
	t.data = &fired;
	uv_timer_start(&t, on_test_timer, ms, 0);
	run_until(fx, &fired, 1);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&fx->loop, UV_RUN_NOWAIT);
}

/* Stop and close everything (the store idle); remove the folder. */
static int
teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->sb) {
		submit_stop(fx->sb, on_stopped, fx);
		run_until(fx, &fx->stopped, 1);
		submit_close(fx->sb);
		uv_run(&fx->loop, UV_RUN_DEFAULT);	/* its handles close */
	}
	if (fx->eq)
		enqueue_close(fx->eq);
	if (fx->st) {
		while (store_busy(fx->st) > 0)
			uv_run(&fx->loop, UV_RUN_ONCE);
		store_close(fx->st);
	}
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < fx->sc.n; i++)
		store_msg_free(fx->sc.m[i]);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	close(fx->lg.fd);
	tu_rmtree(fx->base);
	free(fx);
	return 0;
}

/* Write len bytes of text to BASE/rel with mode. */
static void
put(const struct fx *fx, const char *rel, const char *text, size_t len,
	mode_t mode)
{
	char p[PATH_MAX];
	int fd;

	path_of(fx, rel, p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Write text to Submitted/NAME.tmp and rename it to NAME.sub. */
static void
submit_text(const struct fx *fx, const char *name, const char *text,
	size_t len)
{
	char t[PATH_MAX], from[PATH_MAX], to[PATH_MAX];

	tu_snprintf(t, sizeof(t), "Submitted/%s.tmp", name);
	put(fx, t, text, len, 0600);
	path_of(fx, t, from);
	tu_snprintf(t, sizeof(t), "Submitted/%s.sub", name);
	path_of(fx, t, to);
	assert_int_equal(rename(from, to), 0);
}

/* The message bytes of the queue file of m, as stored on disk. */
static char *
stored(const struct store_msg *m, size_t *len)
{
	size_t n;
	char *all = tu_slurp(m->path, &n);
	char *out;

	assert_int_equal(n, m->msg_off + m->msg_len);
	assert_non_null(out = malloc(m->msg_len + 1));
	memcpy(out, all + m->msg_off, m->msg_len);
	out[m->msg_len] = '\0';
	free(all);
	*len = m->msg_len;
	return out;
}

/* The .sub name a queued message came from ("Submitted/NAME dev:ino"). */
static bool
came_from(const struct store_msg *m, const char *name)
{
	char want[PATH_MAX];

	tu_snprintf(want, sizeof(want), "Submitted/%s ", name);
	return m->env.source != NULL &&
		strncmp(m->env.source, want, strlen(want)) == 0;
}

/* The Received: field a local submission by this process gets on top. */
static void
received_top(char *dst, size_t n)
{
	tu_snprintf(dst, n, "Received: from local user %lu\n\tby %s "
		"(mailpipe);\n\t", (unsigned long)getuid(), HOST);
}

/* A small .sub: queued durably with the Submitted rules, then removed. */
static void
test_small(void **state)
{
	struct fx *fx = *state;
	struct store_msg *m;
	char top[256];
	char *msg;
	size_t len;

	start_all(fx, 100);
	submit_text(fx, "a", SMALL, strlen(SMALL));
	run_until_logged(fx, "Submitted/a.sub queued id=", 1);
	assert_int_equal(fx->sc.n, 1);
	m = fx->sc.m[0];
	assert_false(there(fx, "Submitted/a.sub"));
	assert_true(came_from(m, "a.sub"));
	assert_non_null(m->body);	/* committed whole from memory */
	assert_string_equal(m->env.from, "joe@example.com");
	assert_int_equal(m->env.user, (int64_t)getuid());
	assert_int_equal(m->env.nrcpt, 2);
	/* the queue file is in place (not a .tmp) and holds the message */
	assert_non_null(strstr(m->relpath, ".msg"));
	msg = stored(m, &len);
	received_top(top, sizeof(top));
	assert_memory_equal(msg, top, strlen(top));
	assert_non_null(strstr(msg, "\nTo: r@example.org\n"));
	assert_non_null(strstr(msg, "\nSubject: small\n"));
	assert_null(strstr(msg, "Bcc:"));
	assert_null(strstr(msg, "hidden@"));
	assert_non_null(strstr(msg, "\nDate: "));
	assert_non_null(strstr(msg, "\nMessage-ID: <"));
	assert_true(len > 7 && strcmp(msg + len - 7, "\nhello\n") == 0);
	free(msg);
	assert_int_equal(store_count(fx->st), 1);
	assert_true(logged(fx, "user=0") == (getuid() == 0));
}

/*
 * Neither Return-Path: nor From:: the return-path is the file owner's
 * login@hostname and a From: naming it is added, for a small file and
 * for a streamed one (only its header held).
 */
static void
test_submitter(void **state)
{
	static const char head[] = "To: r@example.org\nSubject: who\n\n";
	struct fx *fx = *state;
	struct passwd *pw = getpwuid(getuid());
	size_t big = 300 * 1024, len;
	char *large = malloc(big), *msg, want[256];

	assert_non_null(pw);
	assert_non_null(large);
	memset(large, 'x', big);
	memcpy(large, head, strlen(head));
	large[big - 1] = '\n';
	tu_snprintf(want, sizeof(want), "%s@%s", pw->pw_name, HOST);
	start_all(fx, 100);
	submit_text(fx, "a", head, strlen(head));
	submit_text(fx, "b", large, big);
	free(large);
	run_until(fx, &fx->sc.n, 2);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(fx->sc.m[i]->env.from, want);
		msg = stored(fx->sc.m[i], &len);
		assert_non_null(strstr(msg, "\nSubject: who\nFrom: "));
		assert_non_null(strstr(msg, want));
		free(msg);
	}
}

/*
 * Enqueue Asynchronously off for local submission: a recipient the queue
 * would fail is refused at submission (a log line, not queued); a file
 * left without recipient is renamed .bad. On: all of them are queued.
 */
static void
test_routed_at_submission(void **state)
{
	static const char mixed[] = "From: joe@example.com\n"
		"To: known@example.org, gone@example.org\n\nhi\n";
	static const char lone[] = "From: joe@example.com\n"
		"To: gone@example.org\n\nhi\n";
	static const char table_text[] = "<known> = null\n";
	struct fx *fx = *state;
	struct router_table t = ROUTER_TABLE_INIT;
	struct strv local = STRV_INIT;
	struct router_ctx rc = { 0 };
	char *err = NULL;

	assert_int_equal(router_table_parse(table_text, strlen(table_text),
		"router", &t, &err), 0);
	assert_int_equal(strv_push(&local, "example.org"), 0);
	rc.table = &t;
	rc.local_domains = &local;
	rc.default_domain = "example.org";
	start_routed(fx, 100, &rc, ASYNC_NONCLIENTS);
	submit_text(fx, "mixed", mixed, strlen(mixed));
	run_until_logged(fx, "Submitted/mixed.sub queued id=", 1);
	assert_int_equal(fx->sc.n, 1);
	assert_int_equal(fx->sc.m[0]->env.nrcpt, 1);
	assert_string_equal(fx->sc.m[0]->env.rcpt[0].addr,
		"known@example.org");
	assert_int_equal(log_count(fx, "Submitted/mixed.sub rcpt "
		"<gone@example.org> refused: 550 5.1.1 unknown user (not "
		"queued: enqueue-async does not apply to local "
		"submission)"), 1);
	submit_text(fx, "lone", lone, strlen(lone));
	run_until_logged(fx, "Submitted/lone.sub rejected: every recipient "
		"was refused (see the lines above); renaming it to .bad", 1);
	run_until_there(fx, "Submitted/lone.bad");
	assert_int_equal(fx->sc.n, 1);
	/* async (authenticated: local submission): everything is queued */
	submit_stop(fx->sb, on_stopped, fx);
	run_until(fx, &fx->stopped, 1);
	submit_close(fx->sb);
	fx->sb = NULL;
	fx->stopped = 0;	/* the teardown waits for the next stop */
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	enqueue_close(fx->eq);
	while (store_busy(fx->st) > 0)
		uv_run(&fx->loop, UV_RUN_ONCE);
	store_close(fx->st);
	start_routed(fx, 100, &rc, ASYNC_AUTHENTICATED);
	submit_text(fx, "again", mixed, strlen(mixed));
	run_until_logged(fx, "Submitted/again.sub queued id=", 1);
	assert_int_equal(fx->sc.n, 2);
	assert_int_equal(fx->sc.m[1]->env.nrcpt, 2);
	assert_int_equal(log_count(fx, "again.sub rcpt"), 0);
	router_table_free(&t);
	strv_free(&local);
}

/* Files found in one scan are released in name order, whatever size. */
static void
test_file_order(void **state)
{
	struct fx *fx = *state;
	static const char *names[] = { "a.sub", "b.sub", "c.sub", "d.sub",
		"e.sub", "f.sub" };
	const int n = (int)(sizeof(names) / sizeof(names[0]));
	size_t big = 300 * 1024;
	char *large = malloc(big);
	char rel[PATH_MAX];

	/* the first file is large (streamed, slower): it still goes first */
	assert_non_null(large);
	memset(large, 'x', big);
	memcpy(large, SMALL, strlen(SMALL) - 1);
	large[big - 1] = '\n';
	for (int i = 0; i < n; i++) {
		tu_snprintf(rel, sizeof(rel), "Submitted/%s", names[i]);
		if (i == 0)
			put(fx, rel, large, big, 0600);
		else
			put(fx, rel, SMALL, strlen(SMALL), 0600);
	}
	free(large);
	/* written before the start: taken together once they settled */
	start_all(fx, 100);
	run_until(fx, &fx->sc.n, n);
	for (int i = 0; i < n; i++) {
		assert_true(came_from(fx->sc.m[i], names[i]));
		if (i > 0)
			assert_true(strcmp(fx->sc.m[i - 1]->id,
				fx->sc.m[i]->id) < 0);
	}
}

/* A .tmp is left alone; once renamed to .sub it is queued. */
static void
test_tmp_ignored(void **state)
{
	struct fx *fx = *state;
	char from[PATH_MAX], to[PATH_MAX];

	start_all(fx, 100);
	put(fx, "Submitted/x.tmp", SMALL, strlen(SMALL), 0600);
	/* a later file: the scan that took it listed the .tmp too */
	submit_text(fx, "y", SMALL, strlen(SMALL));
	run_until_logged(fx, "Submitted/y.sub queued", 1);
	assert_int_equal(fx->sc.n, 1);
	assert_true(there(fx, "Submitted/x.tmp"));
	assert_false(logged(fx, "x.tmp"));
	path_of(fx, "Submitted/x.tmp", from);
	path_of(fx, "Submitted/x.sub", to);
	assert_int_equal(rename(from, to), 0);
	run_until_logged(fx, "Submitted/x.sub queued", 1);
	assert_int_equal(fx->sc.n, 2);
	assert_true(came_from(fx->sc.m[1], "x.sub"));
	assert_false(there(fx, "Submitted/x.sub"));
}

/* A bad header: renamed NAME.bad with a log line, nothing queued. */
static void
test_bad_header(void **state)
{
	struct fx *fx = *state;
	const char *bad = "this is not a header\n\nhello\n";

	start_all(fx, 100);
	submit_text(fx, "bad", bad, strlen(bad));
	run_until_logged(fx, "Submitted/bad.sub rejected: malformed header "
		"line (not \"Name: value\"); renaming it to .bad", 1);
	run_until_there(fx, "Submitted/bad.bad");
	assert_false(there(fx, "Submitted/bad.sub"));
	assert_int_equal(fx->sc.n, 0);
	assert_int_equal(store_count(fx->st), 0);
	assert_false(logged(fx, "cannot rename"));
}

/* A file over 64 KiB is streamed: the queue file is it, CR LF -> LF. */
static void
test_large_streamed(void **state)
{
	struct fx *fx = *state;
	const char *head = "From: joe@example.com\r\nTo: r@example.org\r\n"
		"Date: Mon, 7 Dec 2026 12:00:00 +0000\r\n"
		"Message-ID: <big@example.com>\r\nSubject: big\r\n\r\n";
	struct buf crlf = BUF_INIT, lf = BUF_INIT;
	char top[256];
	char *msg;
	size_t len;

	/* lines of varied length, CR LF ended, 200 KiB and more */
	assert_int_equal(buf_puts(&crlf, head), 0);
	for (unsigned i = 0; crlf.len < 200 * 1024; i++)
		assert_int_equal(buf_printf(&crlf, "line %u %.*s\r\n", i,
			(int)(i % 70), "abcdefghijklmnopqrstuvwxyz0123456789"
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"), 0);
	received_top(top, sizeof(top));
	for (size_t i = 0; i < crlf.len; i++)
		if (!(crlf.data[i] == '\r' && i + 1 < crlf.len &&
		    crlf.data[i + 1] == '\n'))
			assert_int_equal(buf_putc(&lf, crlf.data[i]), 0);
	start_all(fx, 100);
	submit_text(fx, "big", crlf.data, crlf.len);
	run_until_logged(fx, "Submitted/big.sub queued id=", 1);
	assert_int_equal(fx->sc.n, 1);
	assert_false(there(fx, "Submitted/big.sub"));
	/* a streamed commit never keeps the body in memory (store.h) */
	assert_null(fx->sc.m[0]->body);
	msg = stored(fx->sc.m[0], &len);
	/* Received: on top, its date line, then the file */
	assert_memory_equal(msg, top, strlen(top));
	{
		const char *rest = strchr(msg + strlen(top), '\n');

		assert_non_null(rest);
		rest++;
		assert_int_equal(len - (size_t)(rest - msg), lf.len);
		assert_memory_equal(rest, lf.data, lf.len);
	}
	free(msg);
	buf_free(&crlf);
	buf_free(&lf);
}

/* A file open for writing (no header end yet) waits for its close. */
static void
test_still_written(void **state)
{
	struct fx *fx = *state;
	const char *part1 = "From: joe@example.com\nTo: r@exa";
	const char *part2 = "mple.org\nSubject: slow\n";
	const char *part3 = "\nhello\n";
	const char *wait = "Submitted/w.sub is open for writing: waiting";
	char p[PATH_MAX];
	char *msg;
	size_t len;
	int fd, seen;

	start_all(fx, 100);
	path_of(fx, "Submitted/w.sub", p);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, part1, strlen(part1)), strlen(part1));
	run_until_logged(fx, wait, 1);
	/* it grows and its mode changes: still not taken, never .bad */
	seen = log_count(fx, wait);
	assert_int_equal(write(fd, part2, strlen(part2)), strlen(part2));
	assert_int_equal(fchmod(fd, 0640), 0);
	submit_poke(fx->sb);
	run_until_logged(fx, wait, seen + 1);
	/* open and quiet past the settle time (scans every second): the
	 * writer grace holds it; an absence, so a bounded time */
	run_for(fx, 2500);
	assert_true(log_count(fx, wait) > seen + 1);
	assert_int_equal(fx->sc.n, 0);
	assert_true(there(fx, "Submitted/w.sub"));
	assert_false(there(fx, "Submitted/w.bad"));
	assert_false(logged(fx, "rejected"));
	/* the writer is done: taken at once, whole */
	assert_int_equal(write(fd, part3, strlen(part3)), strlen(part3));
	assert_int_equal(close(fd), 0);
	run_until_logged(fx, "Submitted/w.sub queued id=", 1);
	assert_int_equal(fx->sc.n, 1);
	msg = stored(fx->sc.m[0], &len);
	assert_non_null(strstr(msg, "\nTo: r@example.org\nSubject: slow\n"));
	assert_true(len > 7 && strcmp(msg + len - 7, "\nhello\n") == 0);
	free(msg);
}

/* An unreadable .sub stays, is logged once, and is taken once readable. */
static void
test_unreadable(void **state)
{
	struct fx *fx = *state;
	const char *cannot = "cannot read Submitted/a.sub: Permission denied "
		"(left in place, taken once it can be read)";
	char p[PATH_MAX], from[PATH_MAX];

	start_all(fx, 100);
	put(fx, "Submitted/a.tmp", SMALL, strlen(SMALL), 0600);
	path_of(fx, "Submitted/a.tmp", p);
	assert_int_equal(chmod(p, 0000), 0);
	path_of(fx, "Submitted/a.sub", from);
	assert_int_equal(rename(p, from), 0);
	run_until_logged(fx, cannot, 1);
	/* two more files, each a scan that reads a.sub again first */
	submit_text(fx, "b", SMALL, strlen(SMALL));
	run_until_logged(fx, "Submitted/b.sub queued", 1);
	submit_text(fx, "c", SMALL, strlen(SMALL));
	run_until_logged(fx, "Submitted/c.sub queued", 1);
	assert_int_equal(log_count(fx, cannot), 1);
	assert_true(there(fx, "Submitted/a.sub"));
	assert_false(there(fx, "Submitted/a.bad"));
	assert_int_equal(fx->sc.n, 2);
	/* readable now: taken */
	assert_int_equal(chmod(from, 0600), 0);
	run_until_logged(fx, "Submitted/a.sub queued", 1);
	assert_false(there(fx, "Submitted/a.sub"));
	assert_int_equal(log_count(fx, cannot), 1);
}

/* Above the queue limit the files stay for later, logged once. */
static void
test_queue_limit(void **state)
{
	struct fx *fx = *state;
	int left;

	start_all(fx, 1);
	submit_text(fx, "a", SMALL, strlen(SMALL));
	run_until_logged(fx, "Submitted/a.sub queued", 1);
	submit_text(fx, "b", SMALL, strlen(SMALL));
	submit_text(fx, "c", SMALL, strlen(SMALL));
	run_until_logged(fx, "queue limit reached: ", 1);
	/* later scans (every second): the files still wait, the line is
	 * not repeated; what is looked for is an absence, so a bounded time */
	run_for(fx, 2500);
	assert_int_equal(store_busy(fx->st), 0);
	assert_int_equal(fx->sc.n, 1);
	assert_int_equal(store_count(fx->st), 1);
	left = (there(fx, "Submitted/b.sub") ? 1 : 0) +
		(there(fx, "Submitted/c.sub") ? 1 : 0);
	assert_int_equal(left, 2);
	assert_false(there(fx, "Submitted/b.bad"));
	assert_false(logged(fx, "not queued"));
	assert_int_equal(log_count(fx, "queue limit reached: "), 1);
}

/*
 * As root, give up reading what the mode forbids (CAP_DAC_OVERRIDE and
 * CAP_DAC_READ_SEARCH out of the effective set) before any thread starts,
 * so the pool's threads inherit it: test_unreadable then sees EACCES as
 * the daemon user does.
 */
static void
drop_dac(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (geteuid() != 0)
		return;
	if (syscall(SYS_capget, &h, d) != 0)
		return;
	d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) |
		(1u << CAP_DAC_READ_SEARCH));
	if (syscall(SYS_capset, &h, d) != 0)
		fprintf(stderr, "capset: %s\n", strerror(errno));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_order, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_tmp_ignored, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_large_streamed, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_still_written, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_queue_limit, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_submitter, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_routed_at_submission,
			setup, teardown),
	};

	drop_dac();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
