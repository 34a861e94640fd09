/*
 * config: the server settings. A pure INI parser (no inih: see
 * docs/DESIGN.md) applies `[section]` / `key = value` / `#` comment text
 * onto a struct config that starts from built-in defaults, so the server
 * runs with no file at all. Every error names file:line. Values are
 * checked here (durations, sizes, enums, lists); resolving names against
 * the system (user accounts, host names) is the caller's business.
 */
#ifndef MP_CONFIG_H
#define MP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "result.h"
#include "strv.h"

#define FOLDERING_AUTO (-1)

enum direct_policy { DIRECT_LOCAL, DIRECT_NONE };

enum enqueue_async {
	ASYNC_ANYBODY, ASYNC_NOBODY, ASYNC_AUTHENTICATED,
	ASYNC_UNAUTHENTICATED, ASYNC_CLIENTS, ASYNC_NONCLIENTS,
};

enum reports_return {
	RETURN_HEADERS, RETURN_BODY, RETURN_ALWAYS_HEADERS, RETURN_ALWAYS_BODY,
};

enum return_receipts {
	RECEIPTS_EVERYBODY, RECEIPTS_CLIENTS, RECEIPTS_AUTHENTICATED,
	RECEIPTS_NOBODY,
};

enum transport_mode { TRANSPORT_QUEUE, TRANSPORT_SYNC };

struct config_transport {
	char *name;			/* from [transport NAME] */
	unsigned line;			/* line of its section header */
	struct strv domains;		/* lower-cased */
	char *command;			/* pipe-address grammar; NULL = unset */
	unsigned command_line;		/* line of the command key */
	enum transport_mode mode;	/* default queue */
	uint64_t time_limit_s;		/* 0 = default (60 sync, else pipe) */
	char *output_file;		/* NULL = discard */
	char *error_file;		/* NULL = discard */
	struct code_map codes;		/* code.N = "reply" */
};

struct config {
	char *base_dir;			/* absolute */
	char *file;			/* file that was read, or NULL */

	struct {
		char *hostname;		/* default: the system's name */
		char *user;		/* default "mailpipe" */
		char *daemon_user;	/* default "mailpiped" */
	} server;

	struct {
		int foldering;		/* 0, 10, 100 or FOLDERING_AUTO */
		uint64_t limit;		/* messages; default 100000 */
		uint64_t max_lifetime_s;	/* default 5d */
		uint64_t *retry_s;	/* default 5m,15m,30m,1h,2h,4h */
		size_t nretry;		/* >= 1 */
		bool dir_fsync_always;	/* directory-fsync: auto (false) */
	} queue;

	struct {
		char *file;		/* default BASE/router */
		struct strv local_domains;	/* lower-cased; default hostname */
		unsigned hop_limit;	/* default 30 */
	} router;

	struct {
		char *app_dir;		/* default BASE/apps; "" = PIPE off */
		unsigned processors;	/* default 10, >= 1 */
		uint64_t time_limit_s;	/* default 10m */
		uint64_t stderr_limit;	/* bytes kept; default 64k */
		enum direct_policy direct;	/* default local */
		char *path_env;		/* [pipe] path: PATH for programs;
					   default /usr/local/bin:/usr/bin:/bin */
	} pipe;

	struct config_transport *transports;
	size_t ntransports;

	struct {
		uint64_t scan_interval_s;	/* default 10s */
	} submitted;

	struct {
		uint64_t scan_interval_s;	/* default 3m */
	} foreign;

	struct {
		struct strv listen;	/* "127.0.0.1:25"; empty = off */
		enum enqueue_async enqueue_async;	/* default nobody */
		uint64_t max_size;	/* default 50m */
		unsigned max_recipients;	/* default 1000 */
		unsigned max_connections;	/* concurrent sessions; 100 */
		unsigned max_connections_per_client;	/* concurrent sessions
						   of one client (IPv4 address,
						   IPv6 /64) outside
						   trusted-networks; 20;
						   0 = no limit */
		uint64_t idle_timeout_s;	/* per command line; silence in
						   DATA; 5m */
		uint64_t data_timeout_s;	/* 354 to the final "."; 10m */
		uint64_t min_data_rate;		/* DATA bytes/s averaged since
						   the 354; 1k; 0 = off */
		uint64_t min_data_rate_grace_s;	/* before min_data_rate
						   applies; 30s */
		unsigned max_errors;	/* bad commands before 421; 10 */
		unsigned max_junk_commands;	/* NOOP/RSET/VRFY/HELP
						   between messages; 100 */
		unsigned relay_connections;	/* to the relay host; 2 */
		uint64_t relay_timeout_s;	/* relay client I/O; 5m */
		uint64_t relay_idle_timeout_s;	/* idle relay session;
						   5s; 0 = QUIT at once */
		struct strv trusted_networks;	/* CIDR text */
		char *relay_host;	/* NULL = none */
		char *tls_cert;
		char *tls_key;
	} smtp;

	struct {
		uint64_t reporting_delay_s;	/* default 0 */
		enum reports_return ret;	/* default body */
		char *copy_failure_reports;	/* NULL = none */
		enum return_receipts return_receipts;	/* default everybody */
		uint64_t delay_warning_s;	/* default 4h */
		uint64_t return_size_limit;	/* bytes; above it only the
						   header is returned; 50k */
	} reports;

	struct {
		char *http_listen;	/* default 127.0.0.1:8025; NULL = off */
	} monitor;

	struct {
		/* [log] level = LEVEL sets all; [log] pipe = LEVEL (and
		   system, enqueuer, dequeuer, smtpi, smtp, submit, queue)
		   set one component. Default major. */
		enum log_level level[LOG_NCOMP];
	} log;
};

/*
 * Fill c with the built-in defaults for base directory base_dir (made
 * absolute by the caller). hostname is the system's name (the caller asks
 * the system; tests pass a fixed one).
 */
int config_defaults(struct config *c, const char *base_dir,
	const char *hostname);

/*
 * Apply the INI text (len bytes, need not be NUL-terminated) on top of c.
 * Errors: -EINVAL with *err = "FILE:LINE: message" (malloc'ed). Unknown
 * sections and keys, duplicate keys in one section, bad values, lines that
 * are neither a section, a key, a comment nor blank, NUL bytes: all errors.
 * Values may be double-quoted ("..."; \" and \\ escapes); a quoted value
 * keeps '#' and ';'. Unquoted values end at end of line (a '#' after
 * whitespace starts a comment). Relative paths are resolved against the
 * base directory.
 */
int config_parse(struct config *c, const char *text, size_t len,
	const char *filename, char **err);

/*
 * Defaults + file. path NULL means BASE/mailpipe.conf, which may be
 * missing (then all defaults); an explicit path must exist.
 */
int config_load(struct config *c, const char *base_dir, const char *path,
	const char *hostname, char **err);

/* Release everything c owns. */
void config_free(struct config *c);

/* "30s", "10m", "2h", "3d", bare number = seconds. */
int config_parse_duration(const char *s, uint64_t *secs);
/* "64k", "10m", "1g", bare number = bytes (k = 1024). */
int config_parse_size(const char *s, uint64_t *bytes);
/* Transport whose domains hold domain (case-insensitive), or NULL. */
const struct config_transport *config_transport_for_domain(
	const struct config *c, const char *domain);
/* Is domain one of the local domains (transport domains count too)? */
bool config_is_local_domain(const struct config *c, const char *domain);

#endif
