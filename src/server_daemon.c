/*
 * server_daemon: the daemon half of the server context (see server.h,
 * docs/SECURITY.md). Owns the daemon's start in the master's fork (its
 * own process group, the switch to the daemon user), the loop, opening
 * every module in order, queue recovery before intake, the master link,
 * SIGHUP reloads (on the thread pool) and the SIGTERM drain: intake
 * first, then the scheduler, the relay client, the store's last disk
 * work, and only then the modules' handles. Part of server
 * (server_int.h).
 */
#include <errno.h>
#include <gmime/gmime.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "enqueue.h"
#include "foreign.h"
#include "log.h"
#include "master.h"
#include "mp_build.h"
#include "pipe.h"
#include "privsep.h"
#include "relay.h"
#include "routeinfo.h"
#include "router.h"
#include "sched.h"
#include "server_int.h"
#include "smtpd.h"
#include "spawn.h"
#include "store.h"
#include "strv.h"
#include "submit.h"
#include "tls.h"

/* Everything has stopped: close the modules' handles. */
static void
close_all(struct server *s)
{
	uv_signal_stop(&s->sig_term);
	uv_signal_stop(&s->sig_int);
	uv_signal_stop(&s->sig_hup);
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	uv_close((uv_handle_t *)&s->sig_hup, NULL);
	if (s->ctl_polling) {
		uv_poll_stop(&s->ctl_poll);
		uv_close((uv_handle_t *)&s->ctl_poll, NULL);
		s->ctl_polling = false;
	}
	if (s->submit)
		submit_close(s->submit);
	if (s->foreign)
		foreign_close(s->foreign);
	if (s->smtpd)
		smtpd_close(s->smtpd);
	if (s->sched)
		sched_close(s->sched);
	if (s->pipe)
		pipe_module_close(s->pipe);
	if (s->spawn)
		spawn_client_close(s->spawn);
	s->submit = NULL;
	s->foreign = NULL;
	s->smtpd = NULL;
	s->sched = NULL;
	s->pipe = NULL;
	s->spawn = NULL;
}

/* Wait (on the loop) until the store has no disk work left, then close. */
static void
on_closer(uv_idle_t *h)
{
	struct server *s = h->data;

	if (s->store && store_busy(s->store) > 0)
		return;
	uv_idle_stop(h);
	uv_close((uv_handle_t *)h, NULL);
	close_all(s);
	log_msg(&s->log, LOG_SYSTEM, LOG_MAJOR, "stopped");
}

/* The relay client has closed its sessions: wait for the store. */
static void
on_relay_closed(void *arg)
{
	struct server *s = arg;

	s->relay = NULL;
	uv_idle_init(&s->loop, &s->closer);
	s->closer.data = s;
	uv_idle_start(&s->closer, on_closer);
}

/* The scheduler is idle: close the relay client, then the rest. */
static void
on_part_stopped(void *arg)
{
	struct server *s = arg;

	if (--s->stop_waits > 0)
		return;
	if (s->relay)
		relay_close(s->relay, on_relay_closed, s);
	else
		on_relay_closed(s);
}

/* Intake has stopped: now let the scheduler drain. */
static void
on_intake_stopped(void *arg)
{
	struct server *s = arg;

	if (--s->stop_waits > 0)
		return;
	s->stop_waits = 1;
	log_msg(&s->log, LOG_SYSTEM, LOG_MAJOR,
		"intake stopped; waiting for %u running deliveries",
		sched_running(s->sched));
	sched_stop(s->sched, on_part_stopped, s);
}

/* SIGTERM / SIGINT: drain and stop. */
static void
on_stop_signal(uv_signal_t *h, int signum)
{
	struct server *s = h->data;

	if (s->stopping) {
		log_msg(&s->log, LOG_SYSTEM, LOG_MAJOR,
			"already stopping; %u deliveries still running",
			s->sched ? sched_running(s->sched) : 0);
		return;
	}
	s->stopping = true;
	log_msg(&s->log, LOG_SYSTEM, LOG_MAJOR, "signal %d: stopping", signum);
	s->stop_waits = s->smtpd ? 3 : 2;
	submit_stop(s->submit, on_intake_stopped, s);
	foreign_stop(s->foreign, on_intake_stopped, s);
	if (s->smtpd)
		smtpd_stop(s->smtpd, on_intake_stopped, s);
}

/* A configuration reload running on the thread pool. */
struct reload {
	uv_work_t w;
	struct server *s;
	struct config cfg;
	struct router_table router;
	char *err;
	int r;
};

/* Worker: read and parse the config and router files (disk work). */
static void
reload_work(uv_work_t *w)
{
	struct reload *rl = w->data;

	rl->r = routeinfo_load(rl->s->base, rl->s->config,
		rl->s->hostname, &rl->cfg, &rl->router, NULL, &rl->err);
}

/* Loop: apply the router table, local domains and log levels. */
static void
reload_after(uv_work_t *w, int status)
{
	struct reload *rl = w->data;
	struct server *s = rl->s;

	int e = status < 0 ? status : rl->r;

	s->reloading = false;
	if (e < 0) {
		log_msg(&s->log, LOG_SYSTEM, LOG_FAILURES,
			"SIGHUP: configuration not reloaded: %s",
			rl->err ? rl->err : strerror(-e));
	} else if (!s->stopping) {
		router_table_free(&s->router);
		s->router = rl->router;
		rl->router = (struct router_table)ROUTER_TABLE_INIT;
		strv_free(&s->cfg.router.local_domains);
		s->cfg.router.local_domains = rl->cfg.router.local_domains;
		rl->cfg.router.local_domains = (struct strv)STRV_INIT;
		if (s->opts->log_level == NULL)
			memcpy(s->log.level, rl->cfg.log.level,
				sizeof(s->log.level));
		routeinfo_ctx(&s->cfg, &s->router, &s->transports, &s->rctx);
		sched_set_router(s->sched, &s->rctx);
		log_msg(&s->log, LOG_SYSTEM, LOG_MAJOR,
			"SIGHUP: router (%zu records), local domains and log "
			"levels reloaded; other settings apply at the next "
			"start", s->router.n);
	}
	free(rl->err);
	config_free(&rl->cfg);
	router_table_free(&rl->router);
	free(rl);
}

/* SIGHUP: re-read config and router off the loop thread, then apply. */
static void
on_hup(uv_signal_t *h, int signum)
{
	struct server *s = h->data;
	struct reload *rl;

	if (s->reloading || s->stopping)
		return;
	if ((rl = calloc(1, sizeof(*rl))) == NULL)
		return;
	rl->s = s;
	rl->w.data = rl;
	if (uv_queue_work(&s->loop, &rl->w, reload_work, reload_after) < 0) {
		free(rl);
		return;
	}
	s->reloading = true;
}

/* A recovered message (scheduled next): remember where it came from. */
static void
on_recovered(void *arg, const struct store_msg *m)
{
	struct server *s = arg;
	const char *src = m->env.source;
	unsigned long long dev, ino;
	char name[PATH_MAX];

	if (src && sscanf(src, "Submitted/%4095s %llu:%llu", name, &dev,
	    &ino) == 3)
		submit_forget(s->submit, name, (dev_t)dev, (ino_t)ino);
}

/* Recovery is over: start intake. */
static void
on_recovery_done(void *arg, int err, size_t found, size_t corrupt)
{
	struct server *s = arg;

	if (err < 0)
		log_msg(&s->log, LOG_QUEUE, LOG_FAILURES,
			"queue recovery incomplete: %s", strerror(-err));
	log_msg(&s->log, LOG_QUEUE, LOG_MAJOR,
		"recovered %zu messages (%zu corrupt moved to Queue/corrupt)",
		found, corrupt);
	if (s->stopping)
		return;
	foreign_start(s->foreign);
	submit_start(s->submit);
	if (s->smtpd && smtpd_start(s->smtpd) < 0)
		log_msg(&s->log, LOG_SMTPI, LOG_FAILURES,
			"cannot accept SMTP connections");
	log_msg(&s->log, LOG_SYSTEM, LOG_MAJOR,
		"ready: base %s, %zu router records, PIPE %s, user %lu",
		s->base, s->router.n,
		s->cfg.pipe.app_dir && s->cfg.pipe.app_dir[0] ?
		s->cfg.pipe.app_dir : "off", (unsigned long)s->prog_uid);
}

/* The relay client, when [smtp] relay-host is set. */
static int
open_relay(struct server *s)
{
	struct relay_settings rs;
	char *err = NULL;
	int r;

	if (s->cfg.smtp.relay_host == NULL)
		return 0;
	if (tls_ctx_client(&s->tls_client, &err) < 0) {
		log_msg(&s->log, LOG_SMTP, LOG_PROBLEMS,
			"no STARTTLS towards the relay: %s", err ? err : "?");
		free(err);
		s->tls_client = NULL;
	}
	memset(&rs, 0, sizeof(rs));
	rs.host_port = s->cfg.smtp.relay_host;
	rs.helo = s->cfg.server.hostname;
	rs.connections = s->cfg.smtp.relay_connections;
	rs.timeout_s = s->cfg.smtp.relay_timeout_s;
	rs.idle_s = s->cfg.smtp.relay_idle_timeout_s;
	if ((r = relay_open(&s->loop, &rs, s->tls_client, &s->log,
	    &s->relay)) < 0)
		log_msg(&s->log, LOG_SMTP, LOG_FAILURES,
			"cannot start the relay client for %s: %s",
			s->cfg.smtp.relay_host, strerror(-r));
	return r;
}

/* The SMTP listener, when [smtp] listen has addresses (binds now). */
static int
open_smtpd(struct server *s)
{
	struct smtpd_deps d;

	if (s->cfg.smtp.listen.n == 0)
		return 0;
	memset(&d, 0, sizeof(d));
	d.loop = &s->loop;
	d.cfg = &s->cfg;
	d.router = &s->rctx;
	d.transports = &s->transports;
	d.trusted = &s->trusted;
	d.eq = s->enq;
	d.store = s->store;
	d.pipe = s->pipe;
	d.slots = sched_slots(s->sched);
	d.tls = s->tls_server;
	d.log = &s->log;
	d.listen_fds = s->listen_fds;
	s->listen_fds = NULL;		/* taken by smtpd_open */
	return smtpd_open(&d, &s->smtpd);
}

/* Open every module on the loop. */
static int
open_modules(struct server *s)
{
	struct store_settings sts;
	struct pipe_settings ps;
	struct sched_settings scs;
	struct sched_deps deps;
	struct enqueue_settings es;
	struct submit_settings sbs;
	struct group *gr;
	int r;

	if ((r = spawn_client_open(&s->loop, s->spawn_sock, s->spawn_pid,
	    &s->log, &s->spawn)) < 0)
		return r;
	memset(&sts, 0, sizeof(sts));
	sts.foldering = s->cfg.queue.foldering;
	sts.dir_fsync_always = s->cfg.queue.dir_fsync_always;
	sts.limit = s->cfg.queue.limit;
	if ((r = store_open(&s->loop, s->base, &sts, &s->log, &s->store)) < 0)
		return r;
	memset(&ps, 0, sizeof(ps));
	ps.base_dir = s->base;
	ps.app_dir = s->cfg.pipe.app_dir;
	ps.time_limit_s = s->cfg.pipe.time_limit_s;
	ps.stderr_limit = s->cfg.pipe.stderr_limit;
	ps.path_env = s->cfg.pipe.path_env;
	if ((r = pipe_module_open(&s->loop, s->spawn, &ps, &s->log,
	    &s->pipe)) < 0)
		return r;
	routeinfo_ctx(&s->cfg, &s->router, &s->transports, &s->rctx);
	if ((r = open_relay(s)) < 0)
		return r;
	memset(&scs, 0, sizeof(scs));
	scs.processors = s->cfg.pipe.processors;
	scs.relay_processors = s->cfg.smtp.relay_connections;
	scs.retry_s = s->cfg.queue.retry_s;
	scs.nretry = s->cfg.queue.nretry;
	scs.max_lifetime_s = s->cfg.queue.max_lifetime_s;
	scs.direct = s->cfg.pipe.direct;
	deps.loop = &s->loop;
	deps.store = s->store;
	deps.pipe = s->pipe;
	deps.relay = s->relay;
	deps.transports = &s->transports;
	deps.log = &s->log;
	deps.router = &s->rctx;
	if ((r = sched_open(&scs, &deps, &s->sched)) < 0)
		return r;
	es.hostname = s->cfg.server.hostname;
	es.hop_limit = s->cfg.router.hop_limit;
	if ((r = enqueue_open(&es, s->store, s->sched, &s->log, &s->enq)) < 0)
		return r;
	memset(&sbs, 0, sizeof(sbs));
	sbs.base_dir = s->base;
	sbs.scan_interval_s = s->cfg.submitted.scan_interval_s;
	sbs.hostname = s->cfg.server.hostname;
	sbs.default_domain = s->rctx.default_domain;
	sbs.set_owner = false;		/* the root part did it */
	gr = getgrnam(MAILPIPE_SUBMIT_GROUP);
	sbs.submit_gid = gr ? gr->gr_gid : (gid_t)-1;
	sbs.router = &s->rctx;
	sbs.enqueue_async = s->cfg.smtp.enqueue_async;
	sbs.direct_pipe = s->cfg.pipe.direct == DIRECT_LOCAL;
	if ((r = submit_open(&s->loop, &sbs, s->enq, s->store, &s->log,
	    &s->submit)) < 0)
		return r;
	if ((r = foreign_open(&s->loop, s->base,
	    s->cfg.foreign.scan_interval_s, s->enq, &s->log,
	    &s->foreign)) < 0)
		return r;
	return open_smtpd(s);
}

/* Install the signal watchers. */
static void
watch_signals(struct server *s)
{
	uv_signal_init(&s->loop, &s->sig_term);
	uv_signal_init(&s->loop, &s->sig_int);
	uv_signal_init(&s->loop, &s->sig_hup);
	s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
	uv_signal_start(&s->sig_term, on_stop_signal, SIGTERM);
	uv_signal_start(&s->sig_int, on_stop_signal, SIGINT);
	uv_signal_start(&s->sig_hup, on_hup, SIGHUP);
}

/* The master sent a new spawn helper's socket (it replaced a dead one). */
static void
on_ctl(uv_poll_t *p, int status, int events)
{
	struct server *s = p->data;
	pid_t pid;
	int sock, r;

	while ((r = master_link_recv(s->ctl, &sock, &pid)) != -EAGAIN) {
		if (r == -EBADMSG)
			continue;
		if (r < 0) {
			/* the master is gone; its death signal follows */
			uv_poll_stop(p);
			return;
		}
		if (s->spawn && spawn_client_reconnect(s->spawn, sock,
		    pid) < 0)
			log_msg(&s->log, LOG_SYSTEM, LOG_FAILURES,
				"cannot use the new spawn helper %ld",
				(long)pid);
	}
}

/* Watch the master link (not when the helper was started in-process). */
static int
watch_ctl(struct server *s)
{
	int r;

	if (s->ctl < 0)
		return 0;
	if ((r = uv_poll_init(&s->loop, &s->ctl_poll, s->ctl)) < 0)
		return r;
	s->ctl_poll.data = s;
	s->ctl_polling = true;
	return uv_poll_start(&s->ctl_poll, UV_READABLE, on_ctl);
}

/* The daemon after its switch: the loop, every module, until drained. */
static int
daemon_run(struct server *s)
{
	int r;

	setenv("UV_THREADPOOL_SIZE", "16", 0);
	g_mime_init();
	if ((r = uv_loop_init(&s->loop)) < 0) {
		server__say("cannot start the event loop: %s", uv_strerror(r));
		return EX_OSERR;
	}
	watch_signals(s);
	if ((r = watch_ctl(s)) < 0 || (r = open_modules(s)) < 0) {
		log_msg(&s->log, LOG_SYSTEM, LOG_FAILURES, "cannot start: %s",
			strerror(-r));
		return EX_OSERR;
	}
	log_msg(&s->log, LOG_SYSTEM, LOG_MAJOR,
		"mailpiped %s starting on %s (pid %ld, daemon uid %lu, "
		"master %ld)", MAILPIPE_VERSION, s->base, (long)getpid(),
		(unsigned long)geteuid(), (long)s->master_pid);
	if ((r = enqueue_recover(s->enq, on_recovered, on_recovery_done,
	    s)) < 0) {
		log_msg(&s->log, LOG_SYSTEM, LOG_FAILURES,
			"cannot recover the queue: %s", strerror(-r));
		return EX_OSERR;
	}
	uv_run(&s->loop, UV_RUN_DEFAULT);
	/* every handle was closed by the drain (close_all) */
	enqueue_close(s->enq);
	if (s->store)
		store_close(s->store);
	uv_loop_close(&s->loop);
	return EX_OK;
}

/*
 * The daemon's start in the master's fork: leave the master's process
 * group (terminal signals go to the master, which passes them on), become
 * the daemon user for good, then run.
 */
int
server__daemon_main(void *arg, int ctl, int sock, pid_t helper)
{
	struct server *s = arg;
	int r;

	s->ctl = ctl;
	s->spawn_sock = sock;
	s->spawn_pid = helper;
	if (s->pidfd >= 0)
		close(s->pidfd);
	s->pidfd = -1;
	setpgid(0, 0);
	if (s->root && (r = privsep_drop(s->daemon_uid, s->daemon_gid,
	    s->master_pid)) < 0) {
		server__say("cannot become the daemon user %lu: %s",
			(unsigned long)s->daemon_uid, strerror(-r));
		return EX_OSERR;
	}
	if (!s->root)
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	umask(077);
	return daemon_run(s);
}
