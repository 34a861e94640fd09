/*
 * server: the one server context of mailpiped. It loads and checks the
 * configuration and router, prepares the base directory, locks the pid
 * file, starts the spawn helper before any thread exists, opens every
 * module on one libuv loop, recovers the queue, starts intake, and on
 * SIGTERM/SIGINT drains (no new deliveries, running ones finish, their
 * states reach the disk) and returns 0. SIGHUP re-reads the config and
 * router file: the router table, local domains and log levels change at
 * once; other settings apply at the next start.
 */
#ifndef MP_SERVER_H
#define MP_SERVER_H

#include <stdbool.h>

struct server_opts {
	const char *base_dir;	/* --base, required */
	const char *config;	/* --config, or NULL for BASE/mailpipe.conf */
	const char *log_level;	/* --log-level, or NULL */
	bool check_config;	/* --check-config: validate and exit */
};

/* Run the server (or the check); returns a sysexits exit code. */
int server_main(const struct server_opts *o);

#endif
