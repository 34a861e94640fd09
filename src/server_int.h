/*
 * server_int: what the two halves of the server context share (server.c:
 * the start-up as root and the check; server_daemon.c: the daemon's loop,
 * modules, signals and drain): the context itself and the functions one
 * calls in the other, named server__NAME. Not for use outside
 * server*.c.
 */
#ifndef MP_SERVER_INT_H
#define MP_SERVER_INT_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "cidr.h"
#include "config.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "tls.h"
#include "transport.h"


struct server {
	const struct server_opts *opts;
	char *base;
	char *config;			/* --config made absolute, or NULL: the
					   daemon re-reads it on SIGHUP from
					   wherever its working directory is */
	char *hostname;
	struct config cfg;
	struct router_table router;
	struct transport_table transports;
	struct cidr_list trusted;
	struct tls_ctx *tls_server, *tls_client;
	struct router_ctx rctx;
	struct logger log;
	uv_loop_t loop;
	int pidfd;
	char *pidpath;
	uid_t prog_uid;
	gid_t prog_gid;
	uid_t daemon_uid;		/* the daemon's user (root: the setting) */
	gid_t daemon_gid;
	bool root;
	pid_t master_pid;
	int *listen_fds;		/* bound by the root part */
	int spawn_sock;
	pid_t spawn_pid;
	int ctl;			/* the daemon's end of the master link */
	uv_poll_t ctl_poll;
	bool ctl_polling;
	struct spawn_client *spawn;
	struct store *store;
	struct pipe_module *pipe;
	struct sched *sched;
	struct enqueue *enq;
	struct submit *submit;
	struct foreign *foreign;
	struct smtpd *smtpd;
	struct relay *relay;
	uv_signal_t sig_term, sig_int, sig_hup;
	bool stopping;
	bool reloading;			/* a SIGHUP reload is on the pool */
	unsigned stop_waits;
	uv_idle_t closer;
	int exit_code;
};

/* server.c: print a start-up error to stderr. */
void server__say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* server_daemon.c: the daemon's start in the master's fork (master.h). */
int server__daemon_main(void *arg, int ctl, int sock, pid_t helper);

#endif
