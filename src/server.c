/*
 * server: the one server context (see server.h). Owns the configuration,
 * the logger, the start-up as root (users, base layout, listening
 * sockets, pid file) and then, in the daemon, the loop and every module,
 * and the order in which they start and stop. Promises: nothing that
 * reads network or file input runs before the daemon has switched to its
 * user; the spawn helper and the daemon are forked before any thread
 * exists; intake starts only after the queue has been recovered; a
 * SIGTERM drain stops intake first, then lets running deliveries finish
 * and their states reach the disk, and only then returns 0.
 *
 * This file: the start-up as root (configuration, users, base layout,
 * pid file, listening sockets) and --check-config; the daemon's half is
 * server_daemon.c, the context they share server_int.h.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cidr.h"
#include "config.h"
#include "log.h"
#include "master.h"
#include "mp_build.h"
#include "privsep.h"
#include "routeinfo.h"
#include "router.h"
#include "server_int.h"
#include "smtpd.h"
#include "spawn.h"
#include "strv.h"
#include "tls.h"
#include "transport.h"

/* Print a start-up error to stderr. */
void
server__say(const char *fmt, ...)
{
	va_list ap;

	fputs("mailpiped: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Absolute, normalised form of dir (which must exist). */
static int
absolute_dir(const char *dir, char **out)
{
	char *p = realpath(dir, NULL);

	if (p == NULL)
		return -errno;
	*out = p;
	return 0;
}

/* Look up [server] KEY = name: uid and primary group, never root. */
static int
lookup_user(const struct server *s, const char *key, const char *name,
	const char *role, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		server__say("%s: [server] %s '%s' does not exist%s",
			s->cfg.file ? s->cfg.file : "built-in configuration",
			key, name, strcmp(key, "daemon-user") == 0 ?
			" (scripts/install-deps creates mailpiped)" : "");
		return -ENOENT;
	}
	if (pw->pw_uid == 0) {
		server__say("[server] %s '%s' is root: %s never run as root",
			key, name, role);
		return -EPERM;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

/*
 * Who programs and the daemon run as: the configured users when root
 * (two different uids), else ourselves for both.
 */
static int
resolve_user(struct server *s)
{
	int r;

	s->root = geteuid() == 0;
	if (!s->root) {
		s->prog_uid = s->daemon_uid = getuid();
		s->prog_gid = s->daemon_gid = getgid();
		return 0;
	}
	if ((r = lookup_user(s, "user", s->cfg.server.user, "programs",
	    &s->prog_uid, &s->prog_gid)) < 0 ||
	    (r = lookup_user(s, "daemon-user", s->cfg.server.daemon_user,
	    "the server's parts that read input", &s->daemon_uid,
	    &s->daemon_gid)) < 0)
		return r;
	if (s->prog_uid == s->daemon_uid) {
		server__say("[server] user '%s' and daemon-user '%s' are the "
			"same uid %lu: programs must not be able to reach the "
			"server",
			s->cfg.server.user, s->cfg.server.daemon_user,
			(unsigned long)s->prog_uid);
		return -EINVAL;
	}
	return 0;
}

/* Load the config and the router file into s. */
static int
load_config(struct server *s)
{
	char *err = NULL;
	int r;

	const char *why = NULL;

	r = routeinfo_load(s->base, s->config, s->hostname, &s->cfg,
		&s->router, &s->transports, &err);
	if (r < 0) {
		server__say("%s", err ? err : strerror(-r));
		free(err);
		return r;
	}
	if ((r = cidr_list_parse(&s->cfg.smtp.trusted_networks, &s->trusted,
	    &why)) < 0) {
		server__say("[smtp] trusted-networks: %s",
			why ? why : strerror(-r));
		return r;
	}
	if (s->cfg.smtp.tls_cert && (r = tls_ctx_server(s->cfg.smtp.tls_cert,
	    s->cfg.smtp.tls_key, &s->tls_server, &err)) < 0) {
		server__say("[smtp] tls-cert/tls-key: %s",
			err ? err : strerror(-r));
		free(err);
		return r;
	}
	return 0;
}

/* --check-config: syntax was checked by loading; now the rest. */
static int
check_config(struct server *s)
{
	struct strv warn = STRV_INIT;

	routeinfo_check(&s->cfg, s->prog_uid, &warn);
	for (size_t i = 0; i < warn.n; i++)
		fprintf(stderr, "mailpiped: warning: %s\n", warn.v[i]);
	printf("configuration OK: %s, router %s (%zu records)\n",
		s->cfg.file ? s->cfg.file : "built-in defaults",
		s->cfg.router.file, s->router.n);
	strv_free(&warn);
	return EX_OK;
}

/* Lock and write BASE/mailpiped.pid; one server per base directory. */
static int
lock_pidfile(struct server *s)
{
	struct buf p = BUF_INIT, txt = BUF_INIT;
	int r;

	if ((r = buf_printf(&p, "%s/mailpiped.pid", s->base)) < 0 ||
	    (r = buf_steal(&p, &s->pidpath)) < 0)
		return r;
	s->pidfd = open(s->pidpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		0644);
	if (s->pidfd < 0) {
		server__say("cannot open %s: %s", s->pidpath, strerror(errno));
		return -errno;
	}
	if (flock(s->pidfd, LOCK_EX | LOCK_NB) < 0) {
		server__say("another mailpiped runs on %s (%s is locked)",
			s->base, s->pidpath);
		return -EBUSY;
	}
	buf_printf(&txt, "%ld\n", (long)getpid());
	if (ftruncate(s->pidfd, 0) < 0 ||
	    pwrite(s->pidfd, txt.data, txt.len, 0) != (ssize_t)txt.len) {
		r = -errno;
		buf_free(&txt);
		server__say("cannot write %s: %s", s->pidpath, strerror(-r));
		return r;
	}
	buf_free(&txt);
	return 0;
}


/*
 * As root: give the daemon user its directories (Queue/ 0700, Submitted/
 * 1730 with the submit group, ForeignQueue/ when there is one), the
 * earlier layout's files with them. Not root: the modules make them.
 */
static int
prepare_layout(struct server *s)
{
	struct group *gr = getgrnam(MAILPIPE_SUBMIT_GROUP);
	const struct privsep_dir dirs[] = {
		{ "Queue", true, 0700, s->daemon_uid, s->daemon_gid, true },
		{ "Submitted", true, 01730, s->daemon_uid,
		  gr ? gr->gr_gid : s->daemon_gid, false },
		{ "ForeignQueue", false, 0700, s->daemon_uid, s->daemon_gid,
		  true },
	};
	struct strv notes = STRV_INIT;
	int bfd, r = 0;

	if (!s->root)
		return 0;
	if (gr == NULL)
		log_msg(&s->log, LOG_SUBMIT, LOG_PROBLEMS, "group %s does not "
			"exist: only root can submit through %s/Submitted",
			MAILPIPE_SUBMIT_GROUP, s->base);
	if ((bfd = open(s->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		server__say("cannot open %s: %s", s->base, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && r == 0; i++)
		if ((r = privsep_prepare(bfd, &dirs[i], &notes)) < 0)
			server__say("cannot prepare %s/%s for the daemon "
				"user: %s", s->base, dirs[i].name,
				strerror(-r));
	for (size_t i = 0; i < notes.n; i++)
		log_msg(&s->log, LOG_QUEUE, LOG_PROBLEMS, "%s", notes.v[i]);
	strv_free(&notes);
	close(bfd);
	return r;
}

/* Run the server: the root part's start, then the master until drained. */
static int
run(struct server *s)
{
	struct spawn_settings ss;
	struct master_settings ms;
	int code;

	umask(027);
	signal(SIGPIPE, SIG_IGN);
	if (s->opts->log_level == NULL)
		memcpy(s->log.level, s->cfg.log.level, sizeof(s->log.level));
	if (lock_pidfile(s) < 0)
		return EX_TEMPFAIL;
	if (prepare_layout(s) < 0)
		return EX_CANTCREAT;
	if (s->cfg.smtp.listen.n > 0 &&
	    smtpd_bind(&s->cfg.smtp.listen, &s->log, &s->listen_fds) < 0) {
		log_msg(&s->log, LOG_SYSTEM, LOG_FAILURES, "cannot start: "
			"cannot listen for SMTP");
		return EX_OSERR;
	}
	memset(&ss, 0, sizeof(ss));
	ss.drop = s->root;
	ss.uid = s->prog_uid;
	ss.gid = s->prog_gid;
	ss.app_dir = s->cfg.pipe.app_dir;
	ss.base_dir = s->base;
	memset(&ms, 0, sizeof(ms));
	ms.spawn = &ss;
	ms.log = &s->log;
	ms.daemon = server__daemon_main;
	ms.arg = s;
	s->master_pid = getpid();
	code = master_run(&ms);
	unlink(s->pidpath);
	return code;
}

/* Entry point of mailpiped. */
int
server_main(const struct server_opts *o)
{
	struct server s;
	enum log_level lvl;
	int code;

	memset(&s, 0, sizeof(s));
	s.opts = o;
	s.pidfd = -1;
	s.spawn_sock = -1;
	s.ctl = -1;
	log_init(&s.log);
	if (o->log_level) {
		if (log_level_parse(o->log_level, &lvl) < 0) {
			server__say("unknown log level '%s' (none, "
				"failures, major, problems, low-level, all)",
				o->log_level);
			return EX_USAGE;
		}
		log_set_all(&s.log, lvl);
	}
	if (!o->check_config && mkdir(o->base_dir, 0755) == 0)
		chmod(o->base_dir, 0755);
	if (absolute_dir(o->base_dir, &s.base) < 0) {
		server__say("base directory %s: %s", o->base_dir,
			strerror(errno));
		return o->check_config ? EX_CONFIG : EX_CANTCREAT;
	}
	if (o->config && (s.config = realpath(o->config, NULL)) == NULL &&
	    (s.config = strdup(o->config)) == NULL) {
		free(s.base);
		return EX_OSERR;
	}
	if (routeinfo_hostname(&s.hostname) < 0) {
		free(s.config);
		free(s.base);
		return EX_OSERR;
	}
	if (load_config(&s) < 0 || resolve_user(&s) < 0)
		code = EX_CONFIG;
	else if (o->check_config)
		code = check_config(&s);
	else
		code = run(&s);
	transport_table_free(&s.transports);
	cidr_list_free(&s.trusted);
	tls_ctx_free(s.tls_server);
	tls_ctx_free(s.tls_client);
	config_free(&s.cfg);
	router_table_free(&s.router);
	if (s.pidfd >= 0)
		close(s.pidfd);
	free(s.pidpath);
	free(s.hostname);
	free(s.config);
	free(s.base);
	free(s.listen_fds);
	return code;
}
