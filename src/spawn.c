/*
 * spawn: the spawn helper's client on the server's loop (the helper
 * itself is spawn_helper.c; the messages between them spawn_proto.h).
 * Sends run, kill and release requests over the SOCK_SEQPACKET socket
 * (queued while it is full), turns the helper's replies into each job's
 * started and done callbacks, and reports every job exactly once, from
 * the loop: jobs the helper will never answer for (it died, was replaced
 * or stopped, a request too long, a cancel) end as SPAWN_FAILED from an
 * idle handle, never from inside the call that caused it.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "spawn_proto.h"

/* What each enum why says, in spawn_exit.why. */
static const char *const why_text[WHY_COUNT] = {
	[WHY_NONE] = "",
	[WHY_DIR_MISSING] = "application directory missing",
	[WHY_DIR_NOTDIR] = "application directory is not a directory",
	[WHY_DIR_ACCESS] = "application directory not accessible",
	[WHY_DIR_GROUP] = "application directory writable by group",
	[WHY_DIR_OTHERS] = "application directory writable by others",
	[WHY_DIR_OWNER] = "application directory owned by the program user",
	[WHY_BAD_NAME] = "invalid application name",
	[WHY_APP_MISSING] = "no such application",
	[WHY_APP_ACCESS] = "program not accessible",
	[WHY_APP_NOTREG] = "program is not a regular file",
	[WHY_APP_GROUP] = "program writable by group",
	[WHY_APP_OTHERS] = "program writable by others",
	[WHY_APP_OWNER] = "program owned by the program user",
	[WHY_TARGET_GROUP] = "directory of the symlinked program writable "
	    "by group",
	[WHY_TARGET_OTHERS] = "directory of the symlinked program writable "
	    "by others",
	[WHY_TARGET_OWNER] = "directory of the symlinked program owned by "
	    "the program user",
	[WHY_APP_NOEXEC] = "program is not executable",
	[WHY_TOO_LONG] = "arguments too long",
	[WHY_BAD_REQUEST] = "malformed spawn request",
	[WHY_NOT_PINNED] = "directory not allowed by the spawn helper",
	[WHY_EXEC] = "cannot execute program",
	[WHY_TEMP] = "cannot start program now",
	[WHY_HELPER_DIED] = "spawn helper died",
	[WHY_HELPER_STOPPED] = "spawn helper stopped",
	[WHY_CANCELLED] = "program did not start in time",
};

struct sjob {
	struct sjob *next, *prev;
	uint64_t id;
	spawn_cb cb;
	spawn_started_cb started;
	void *arg;
	struct msg_reply rep;		/* set when reported locally */
};

struct smsg {
	struct smsg *next;
	uint64_t run_job;		/* MSG_RUN: its job id, else 0 */
	char *data;
	size_t len;
	int fds[SPAWN_MAX_FDS];
	int nfds;
};

struct spawn_client {
	uv_loop_t *loop;
	uv_poll_t *poll;		/* on sock; a new one per helper */
	uv_idle_t idle;
	int sock;
	pid_t helper_pid;
	bool helper_reaped;
	struct logger *lg;
	uint64_t next_id;
	struct sjob *jobs;		/* sent or queued, awaiting a reply */
	struct sjob *local, *local_tail; /* to report from the idle handle */
	struct smsg *q, *q_tail;	/* messages waiting for UV_WRITABLE */
	unsigned active;
	int poll_events;
	int handles;			/* open libuv handles */
	bool dead, closing;
};

/* Log when a logger was given. */
static void
client_log(const struct spawn_client *c, enum log_level l, const char *fmt,
	...) __attribute__((format(printf, 3, 4)));

/* Log when a logger was given. */
static void
client_log(const struct spawn_client *c, enum log_level l, const char *fmt,
	...)
{
	va_list ap;

	if (c->lg == NULL)
		return;
	va_start(ap, fmt);
	log_vmsg(c->lg, LOG_PIPE, l, fmt, ap);
	va_end(ap);
}

/* Unlink j from the job list. */
static void
job_unlink(struct spawn_client *c, struct sjob *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		c->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->next = j->prev = NULL;
}

/* Find job id among the waiting ones. */
static struct sjob *
job_find(const struct spawn_client *c, uint64_t id)
{
	for (struct sjob *j = c->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

/* Call j's callback with the reply and free j. */
static void
job_report(struct spawn_client *c, struct sjob *j)
{
	struct spawn_exit ex = { .how = j->rep.how, .code = j->rep.code,
	    .err = j->rep.err, .pid = j->rep.pid, .why = NULL };
	struct buf why = BUF_INIT;
	int w = j->rep.why;

	if (ex.how == SPAWN_FAILED) {
		const char *t = w > WHY_NONE && w < WHY_COUNT ? why_text[w] :
		    "program could not be started";

		if (ex.err > 0 && (w == WHY_EXEC || w == WHY_TEMP ||
		    w == WHY_DIR_ACCESS || w == WHY_APP_ACCESS ||
		    w == WHY_APP_NOEXEC) && strerrordesc_np(ex.err) &&
		    buf_printf(&why, "%s: %s", t, strerrordesc_np(ex.err)) == 0)
			ex.why = why.data;
		else
			ex.why = t;
	}
	c->active--;
	j->cb(j->arg, &ex);
	buf_free(&why);
	free(j);
}

/* Report locally finished jobs (the idle handle's callback). */
static void on_idle(uv_idle_t *i);

/* Queue j to be reported from the idle handle (never synchronously). */
static void
job_local(struct spawn_client *c, struct sjob *j, int fail, int why, int err)
{
	j->rep = (struct msg_reply){ .type = REP_DONE, .how = SPAWN_FAILED,
	    .code = fail, .err = err, .why = why, .job = j->id };
	j->next = j->prev = NULL;
	if (c->local_tail)
		c->local_tail->next = j;
	else
		c->local = j;
	c->local_tail = j;
	if (!c->closing)
		uv_idle_start(&c->idle, on_idle);
}

/* Free queued messages and the descriptors duplicated for them. */
static void
queue_free(struct spawn_client *c)
{
	while (c->q) {
		struct smsg *m = c->q;

		c->q = m->next;
		for (int i = 0; i < m->nfds; i++)
			close(m->fds[i]);
		free(m->data);
		free(m);
	}
	c->q_tail = NULL;
}

/* Socket events (defined below). */
static void on_poll(uv_poll_t *p, int status, int events);

/* Poll for readable, plus writable while messages are queued. */
static void
poll_update(struct spawn_client *c)
{
	int ev = UV_READABLE | (c->q ? UV_WRITABLE : 0);

	if (c->dead || c->closing || ev == c->poll_events)
		return;
	if (uv_poll_start(c->poll, ev, on_poll) == 0)
		c->poll_events = ev;
}

/* The helper is gone: fail every waiting job (from the idle handle). */
static void
client_dead(struct spawn_client *c, int err)
{
	int st;

	if (c->dead)
		return;
	c->dead = true;
	client_log(c, LOG_FAILURES, "spawn helper %ld died (%s)",
	    (long)c->helper_pid, strerrordesc_np(err) ? strerrordesc_np(err) :
	    "?");
	uv_poll_stop(c->poll);
	c->poll_events = 0;
	queue_free(c);
	while (c->jobs) {
		struct sjob *j = c->jobs;

		job_unlink(c, j);
		job_local(c, j, SPAWN_FAIL_TEMP, WHY_HELPER_DIED, 0);
	}
	if (waitpid(c->helper_pid, &st, WNOHANG) == c->helper_pid)
		c->helper_reaped = true;
}

/* sendmsg one message with optional fds; 0 or -errno. */
static int
send_msg(int sock, const void *data, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(SPAWN_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)data, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

/* Send queued messages in order until the socket is full. */
static void
queue_flush(struct spawn_client *c)
{
	while (c->q && !c->dead) {
		struct smsg *m = c->q;
		int r = send_msg(c->sock, m->data, m->len, m->fds, m->nfds);
		struct sjob *j;

		if (r == -EAGAIN || r == -EWOULDBLOCK)
			break;
		c->q = m->next;
		if (c->q == NULL)
			c->q_tail = NULL;
		for (int i = 0; i < m->nfds; i++)
			close(m->fds[i]);
		if (r == -EMSGSIZE && m->run_job &&
		    (j = job_find(c, m->run_job)) != NULL) {
			job_unlink(c, j);
			job_local(c, j, SPAWN_FAIL_EXEC, WHY_TOO_LONG, E2BIG);
		} else if (r < 0) {
			client_dead(c, -r);
		}
		free(m->data);
		free(m);
	}
	poll_update(c);
}

/* Send now if nothing is queued, else queue (fds duplicated). */
static int
client_send(struct spawn_client *c, struct buf *msg, const int *fds, int nfds,
	uint64_t run_job)
{
	struct smsg *m;
	int r;

	if (c->q == NULL) {
		r = send_msg(c->sock, msg->data, msg->len, fds, nfds);
		if (r != -EAGAIN && r != -EWOULDBLOCK)
			return r;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -ENOMEM;
	for (int i = 0; i < nfds; i++) {
		if ((m->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0) {
			r = -errno;
			while (i-- > 0)
				close(m->fds[i]);
			free(m);
			return r;
		}
		m->nfds = i + 1;
	}
	m->len = msg->len;
	m->run_job = run_job;
	if ((r = buf_steal(msg, &m->data)) < 0) {
		for (int i = 0; i < m->nfds; i++)
			close(m->fds[i]);
		free(m);
		return r;
	}
	if (c->q_tail)
		c->q_tail->next = m;
	else
		c->q = m;
	c->q_tail = m;
	poll_update(c);
	return 0;
}

/* Read every reply from the helper and report the jobs. */
static void
client_read(struct spawn_client *c)
{
	while (!c->dead && !c->closing) {
		struct msg_reply rep;
		struct iovec iov = { &rep, sizeof(rep) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct sjob *j;
		ssize_t n;

		n = recvmsg(c->sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			client_dead(c, n < 0 ? errno : EPIPE);
			return;
		}
		if (n != (ssize_t)sizeof(rep) || (m.msg_flags & MSG_TRUNC) ||
		    (rep.type != REP_DONE && rep.type != REP_STARTED)) {
			client_log(c, LOG_PROBLEMS,
			    "spawn helper sent a malformed reply");
			continue;
		}
		if ((j = job_find(c, rep.job)) == NULL) {
			/* a cancelled job's late replies are expected */
			if (rep.job == 0 || rep.job > c->next_id)
				client_log(c, LOG_PROBLEMS,
				    "spawn helper reported unknown job %llu",
				    (unsigned long long)rep.job);
			continue;
		}
		if (rep.type == REP_STARTED) {
			if (j->started)
				j->started(j->arg, rep.pid);
			continue;
		}
		job_unlink(c, j);
		j->rep = rep;
		job_report(c, j);
	}
}

/* Socket events: replies, room to send, or the helper's end. */
static void
on_poll(uv_poll_t *p, int status, int events)
{
	struct spawn_client *c = p->data;

	if (status < 0) {
		client_dead(c, -status);
		return;
	}
	if (events & UV_READABLE)
		client_read(c);
	if ((events & UV_WRITABLE) && !c->dead && !c->closing)
		queue_flush(c);
}

/* Report jobs that ended without the helper (asynchronously). */
static void
on_idle(uv_idle_t *i)
{
	struct spawn_client *c = i->data;

	while (c->local && !c->closing) {
		struct sjob *j = c->local;

		c->local = j->next;
		if (c->local == NULL)
			c->local_tail = NULL;
		job_report(c, j);
	}
	if (c->local == NULL || c->closing)
		uv_idle_stop(i);
}

/* Free c once all its handles are closed. */
static void on_handle_closed(uv_handle_t *h);

/* A poll handle closed: free it, then count it as the others. */
static void
on_poll_closed(uv_handle_t *h)
{
	on_handle_closed(h);
	free(h);
}

/* Close the current poll handle and forget the socket under it. */
static void
poll_drop(struct spawn_client *c)
{
	if (c->poll) {
		uv_poll_stop(c->poll);
		uv_close((uv_handle_t *)c->poll, on_poll_closed);
		c->poll = NULL;
	}
	c->poll_events = 0;
}

/* Watch sock for readability with a new poll handle. */
static int
poll_attach(struct spawn_client *c, int sock)
{
	uv_poll_t *p = calloc(1, sizeof(*p));
	int r;

	if (p == NULL)
		return -ENOMEM;
	if ((r = uv_poll_init(c->loop, p, sock)) < 0) {
		free(p);
		return r;
	}
	p->data = c;
	c->handles++;
	c->poll = p;
	if ((r = uv_poll_start(p, UV_READABLE, on_poll)) < 0) {
		poll_drop(c);
		return r;
	}
	c->poll_events = UV_READABLE;
	return 0;
}

/* Wrap the server's end of the socket. */
int
spawn_client_open(uv_loop_t *loop, int sock, pid_t helper_pid,
	struct logger *lg, struct spawn_client **out)
{
	struct spawn_client *c = calloc(1, sizeof(*c));
	int r;

	if (c == NULL)
		return -ENOMEM;
	c->loop = loop;
	c->sock = sock;
	c->helper_pid = helper_pid;
	c->lg = lg;
	uv_idle_init(loop, &c->idle);
	c->idle.data = c;
	c->handles = 1;
	if ((r = poll_attach(c, sock)) < 0) {
		/* The caller keeps sock and the helper. */
		uv_close((uv_handle_t *)&c->idle, on_handle_closed);
		return r;
	}
	*out = c;
	return 0;
}

/* Switch to a new helper's socket. */
int
spawn_client_reconnect(struct spawn_client *c, int sock, pid_t helper_pid)
{
	int r;

	if (c->closing) {
		close(sock);
		return -ECANCELED;
	}
	if (!c->dead)
		client_dead(c, EPIPE);
	poll_drop(c);
	close(c->sock);
	c->sock = sock;
	c->helper_pid = helper_pid;
	c->helper_reaped = false;
	c->dead = false;
	if ((r = poll_attach(c, sock)) < 0) {
		c->dead = true;
		return r;
	}
	client_log(c, LOG_MAJOR, "spawn helper %ld ready", (long)helper_pid);
	return 0;
}

/* Append a NUL-terminated string to the request. */
static int
put_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s) + 1);
}

/* Ask the helper to start a program. */
int
spawn_run(struct spawn_client *c, const struct spawn_req *r, spawn_cb cb,
	void *arg, uint64_t *job)
{
	struct msg_hdr hdr = { .type = MSG_RUN };
	struct buf msg = BUF_INIT;
	struct sjob *j;
	int fds[SPAWN_MAX_FDS] = { r->fd_in, r->fd_out, r->fd_err }, e = 0;
	int nfds = 3;

	if (c->dead || c->closing)
		return -EPIPE;
	if (r->dir == NULL || r->name == NULL || r->cwd == NULL ||
	    r->argv == NULL || r->argv[0] == NULL || r->envp == NULL ||
	    r->fd_in < 0 || r->fd_out < 0 || r->fd_err < 0 || cb == NULL ||
	    (r->has_fd_3 && r->fd_3 < 0))
		return -EINVAL;
	if (r->fd_hold > 2) {
		hdr.flags |= RUN_HOLD;
		fds[nfds++] = r->fd_hold;
	}
	if (r->has_fd_3) {
		hdr.flags |= RUN_FD3;
		fds[nfds++] = r->fd_3;
	}
	while (r->argv[hdr.argc])
		hdr.argc++;
	while (r->envp[hdr.envc])
		hdr.envc++;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->id = hdr.job = ++c->next_id;
	j->cb = cb;
	j->started = r->started;
	j->arg = arg;
	e = buf_append(&msg, &hdr, sizeof(hdr));
	if (e == 0)
		e = put_str(&msg, r->dir);
	if (e == 0)
		e = put_str(&msg, r->name);
	if (e == 0)
		e = put_str(&msg, r->cwd);
	for (uint32_t i = 0; e == 0 && i < hdr.argc; i++)
		e = put_str(&msg, r->argv[i]);
	for (uint32_t i = 0; e == 0 && i < hdr.envc; i++)
		e = put_str(&msg, r->envp[i]);
	if (e < 0) {
		buf_free(&msg);
		free(j);
		return e;
	}
	c->active++;
	*job = j->id;
	if (msg.len > SPAWN_REQ_MAX) {
		job_local(c, j, SPAWN_FAIL_EXEC, WHY_TOO_LONG, E2BIG);
		buf_free(&msg);
		return 0;
	}
	e = client_send(c, &msg, fds, nfds, j->id);
	buf_free(&msg);
	if (e == -EMSGSIZE) {
		job_local(c, j, SPAWN_FAIL_EXEC, WHY_TOO_LONG, E2BIG);
		return 0;
	}
	if (e < 0) {
		c->active--;
		free(j);
		if (e != -ENOMEM && e != -EMFILE && e != -ENFILE) {
			client_dead(c, -e);
			return -EPIPE;
		}
		return e;
	}
	j->next = c->jobs;
	if (c->jobs)
		c->jobs->prev = j;
	c->jobs = j;
	return 0;
}

/* Send a job message (MSG_KILL, MSG_RELEASE) for a job still running. */
static int
job_msg(struct spawn_client *c, uint32_t type, uint64_t job)
{
	struct msg_hdr hdr = { .type = type, .job = job };
	struct buf msg = BUF_INIT;
	int e;

	if (c->dead || c->closing || job_find(c, job) == NULL)
		return 0;
	if ((e = buf_append(&msg, &hdr, sizeof(hdr))) == 0)
		e = client_send(c, &msg, NULL, 0, 0);
	buf_free(&msg);
	if (e < 0 && e != -ENOMEM) {
		client_dead(c, -e);
		return -EPIPE;
	}
	return e;
}

/* SIGKILL a job's whole process group. */
int
spawn_kill(struct spawn_client *c, uint64_t job)
{
	return job_msg(c, MSG_KILL, job);
}

/* Kill a job and report it now as not started (SPAWN_FAIL_TEMP). */
int
spawn_cancel(struct spawn_client *c, uint64_t job)
{
	struct sjob *j = job_find(c, job);
	int e;

	if (j == NULL)
		return 0;
	e = job_msg(c, MSG_KILL, job);
	if ((j = job_find(c, job)) != NULL) {
		job_unlink(c, j);
		job_local(c, j, SPAWN_FAIL_TEMP, WHY_CANCELLED, 0);
	}
	return e;
}

/* The server has written all of a job's stdin: drop the helper's copy. */
int
spawn_release(struct spawn_client *c, uint64_t job)
{
	return job_msg(c, MSG_RELEASE, job);
}

/* Jobs started and not yet reported. */
unsigned
spawn_active(const struct spawn_client *c)
{
	return c->active;
}

/* Free c once both handles are closed. */
static void
on_handle_closed(uv_handle_t *h)
{
	struct spawn_client *c = h->data;

	if (--c->handles == 0)
		free(c);
}

/* Stop the helper and free the client (after the handles close). */
void
spawn_client_close(struct spawn_client *c)
{
	int st;

	if (c == NULL || c->closing)
		return;
	c->closing = true;
	poll_drop(c);
	close(c->sock);
	c->sock = -1;
	queue_free(c);
	if (!c->helper_reaped && c->helper_pid > 0) {
		while (waitpid(c->helper_pid, &st, 0) < 0 && errno == EINTR)
			;
		c->helper_reaped = true;
	}
	/* Nothing will be reported by the helper any more. */
	while (c->jobs) {
		struct sjob *j = c->jobs;

		job_unlink(c, j);
		job_local(c, j, SPAWN_FAIL_TEMP, WHY_HELPER_STOPPED, 0);
	}
	while (c->local) {
		struct sjob *j = c->local;

		c->local = j->next;
		if (c->local == NULL)
			c->local_tail = NULL;
		job_report(c, j);
	}
	uv_idle_stop(&c->idle);
	uv_close((uv_handle_t *)&c->idle, on_handle_closed);
}
