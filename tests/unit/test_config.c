/*
 * Unit tests for config.c: every default, every key, every error kind with
 * its exact FILE:LINE message, the INI syntax (quotes, comments, CRLF,
 * long lines, NUL bytes), durations and sizes at their edges, [log] level
 * against per-component keys, transports with their code.N map, and
 * config_load with default, explicit, missing and oversized files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "strv.h"

#define HOST "Mail.Example.COM"

/* Defaults for base /base, then text parsed as "t.conf". */
static int
parse(struct config *c, const char *text, char **err)
{
	assert_int_equal(config_defaults(c, "/base", HOST), 0);
	return config_parse(c, text, strlen(text), "t.conf", err);
}

/* Parse text that must be accepted. */
static void
parse_ok(struct config *c, const char *text)
{
	char *err = NULL;
	int r = parse(c, text, &err);

	if (r != 0)
		fail_msg("unexpected error %d: %s", r, err ? err : "(none)");
	assert_null(err);
}

/* Parse n bytes of text that must fail with exactly msg. */
static void
expect_errn(const char *text, size_t n, const char *msg)
{
	struct config c;
	char *err = NULL;

	assert_int_equal(config_defaults(&c, "/base", HOST), 0);
	assert_int_equal(config_parse(&c, text, n, "t.conf", &err), -EINVAL);
	assert_non_null(err);
	if (strcmp(err, msg) != 0)
		fail_msg("got '%s', want '%s'", err, msg);
	free(err);
	config_free(&c);
}

/* Parse text that must fail with exactly msg. */
static void
expect_err(const char *text, const char *msg)
{
	expect_errn(text, strlen(text), msg);
}

/* Assert that sv holds exactly the n strings given. */
static void
assert_strv(const struct strv *sv, size_t n, ...)
{
	va_list ap;

	assert_int_equal(sv->n, n);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(sv->v[i], va_arg(ap, const char *));
	va_end(ap);
	assert_null(sv->v ? sv->v[n] : NULL);
}

/* Every key has its documented default. */
static void
test_defaults(void **state)
{
	struct config c;
	static const uint64_t retry[] = { 300, 900, 1800, 3600, 7200, 14400 };

	assert_int_equal(config_defaults(&c, "/base", HOST), 0);
	assert_string_equal(c.base_dir, "/base");
	assert_null(c.file);
	assert_string_equal(c.server.hostname, HOST);
	assert_string_equal(c.server.user, "mailpipe");
	assert_int_equal(c.queue.foldering, FOLDERING_AUTO);
	assert_false(c.queue.dir_fsync_always);
	assert_int_equal(c.queue.limit, 100000);
	assert_int_equal(c.queue.max_lifetime_s, 5 * 86400);
	assert_int_equal(c.queue.nretry, 6);
	assert_memory_equal(c.queue.retry_s, retry, sizeof(retry));
	assert_string_equal(c.router.file, "/base/router");
	assert_strv(&c.router.local_domains, 1, "mail.example.com");
	assert_int_equal(c.router.hop_limit, 30);
	assert_string_equal(c.pipe.app_dir, "/base/apps");
	assert_int_equal(c.pipe.processors, 10);
	assert_int_equal(c.pipe.time_limit_s, 600);
	assert_int_equal(c.pipe.stderr_limit, 65536);
	assert_int_equal(c.pipe.direct, DIRECT_LOCAL);
	assert_string_equal(c.pipe.path_env, "/usr/local/bin:/usr/bin:/bin");
	assert_null(c.transports);
	assert_int_equal(c.ntransports, 0);
	assert_int_equal(c.submitted.scan_interval_s, 10);
	assert_int_equal(c.foreign.scan_interval_s, 180);
	assert_strv(&c.smtp.listen, 1, "127.0.0.1:25");
	assert_int_equal(c.smtp.enqueue_async, ASYNC_NOBODY);
	assert_int_equal(c.smtp.max_size, 50 * 1024 * 1024);
	assert_int_equal(c.smtp.max_recipients, 1000);
	assert_strv(&c.smtp.trusted_networks, 2, "127.0.0.0/8", "::1/128");
	assert_null(c.smtp.relay_host);
	assert_null(c.smtp.tls_cert);
	assert_null(c.smtp.tls_key);
	assert_int_equal(c.reports.reporting_delay_s, 0);
	assert_int_equal(c.reports.ret, RETURN_BODY);
	assert_null(c.reports.copy_failure_reports);
	assert_int_equal(c.reports.return_receipts, RECEIPTS_EVERYBODY);
	assert_int_equal(c.reports.delay_warning_s, 4 * 3600);
	assert_int_equal(c.reports.return_size_limit, 50 * 1024);
	assert_string_equal(c.monitor.http_listen, "127.0.0.1:8025");
	for (int i = 0; i < LOG_NCOMP; i++)
		assert_int_equal(c.log.level[i], LOG_MAJOR);
	assert_true(config_is_local_domain(&c, "MAIL.example.com"));
	assert_false(config_is_local_domain(&c, "example.com"));
	config_free(&c);
	/* config_free leaves a zeroed struct: a second call is harmless. */
	assert_null(c.base_dir);
	config_free(&c);
}

/* No hostname given: "localhost"; a base with a slash gets no double one. */
static void
test_defaults_edge(void **state)
{
	struct config c;

	assert_int_equal(config_defaults(&c, "/srv/mp/", NULL), 0);
	assert_string_equal(c.server.hostname, "localhost");
	assert_strv(&c.router.local_domains, 1, "localhost");
	assert_string_equal(c.router.file, "/srv/mp/router");
	assert_string_equal(c.pipe.app_dir, "/srv/mp/apps");
	config_free(&c);
	assert_int_equal(config_defaults(&c, NULL, HOST), -EINVAL);
	config_free(&c);
}

/* An empty file, comments and blank lines change nothing. */
static void
test_empty_and_comments(void **state)
{
	struct config c;

	parse_ok(&c, "");
	assert_int_equal(c.pipe.processors, 10);
	config_free(&c);
	parse_ok(&c, "# only a comment\n\n   \t\n  # indented comment\n[pipe]\n"
		"# processors = 3\n");
	assert_int_equal(c.pipe.processors, 10);
	config_free(&c);
}

/* [server] keys; the hostname also becomes the default local domain. */
static void
test_server(void **state)
{
	struct config c;

	parse_ok(&c, "[server]\nhostname = MX1.Example.org\nuser = mp-run\n");
	assert_string_equal(c.server.hostname, "MX1.Example.org");
	assert_string_equal(c.server.user, "mp-run");
	assert_strv(&c.router.local_domains, 1, "mx1.example.org");
	config_free(&c);
	/* An explicit local-domains wins, whatever the order. */
	parse_ok(&c, "[router]\nlocal-domains = a.example\n[server]\n"
		"hostname = mx.example\n");
	assert_strv(&c.router.local_domains, 1, "a.example");
	config_free(&c);
	parse_ok(&c, "[server]\nuser = 1001\n");
	assert_string_equal(c.server.user, "1001");
	config_free(&c);
	expect_err("[server]\nuser = root\n", "t.conf:2: bad value for 'user' "
		"in [server]: programs must not run as root");
	expect_err("[server]\nuser = 0\n", "t.conf:2: bad value for 'user' in "
		"[server]: programs must not run as root");
	expect_err("[server]\nuser = 000\n", "t.conf:2: bad value for 'user' "
		"in [server]: programs must not run as root");
	expect_err("[server]\nuser =\n", "t.conf:2: bad value for 'user' in "
		"[server]: empty user name");
	expect_err("[server]\nuser = a b\n", "t.conf:2: bad value for 'user' "
		"in [server]: 'a b' is not a user name");
	expect_err("[server]\nuser = -x\n", "t.conf:2: bad value for 'user' in "
		"[server]: '-x' is not a user name");
	/* the daemon user: never root, never the programs' user */
	parse_ok(&c, "[server]\ndaemon-user = mp-daemon\nuser = nobody\n");
	assert_string_equal(c.server.daemon_user, "mp-daemon");
	config_free(&c);
	parse_ok(&c, "");
	assert_string_equal(c.server.daemon_user, "mailpiped");
	config_free(&c);
	expect_err("[server]\ndaemon-user = root\n", "t.conf:2: bad value for "
		"'daemon-user' in [server]: the server must not run as root");
	expect_err("[server]\ndaemon-user = 0\n", "t.conf:2: bad value for "
		"'daemon-user' in [server]: the server must not run as root");
	expect_err("[server]\nuser = nobody\ndaemon-user = nobody\n",
		"t.conf:3: bad value for 'daemon-user' in [server]: 'nobody' is "
		"already the user: [server] user (programs) and daemon-user (the "
		"server) must differ");
	expect_err("[server]\ndaemon-user = x1\nuser = x1\n", "t.conf:3: bad "
		"value for 'user' in [server]: 'x1' is already the daemon-user: "
		"[server] user (programs) and daemon-user (the server) must "
		"differ");
	/* the defaults differ too: user = mailpiped meets the default */
	expect_err("[server]\nuser = mailpiped\n", "t.conf:2: bad value for "
		"'user' in [server]: 'mailpiped' is already the daemon-user: "
		"[server] user (programs) and daemon-user (the server) must "
		"differ");
	expect_err("[server]\nhostname = bad_host\n", "t.conf:2: bad value for "
		"'hostname' in [server]: 'bad_host' is not a host name");
	expect_err("[server]\nhostname =\n", "t.conf:2: bad value for "
		"'hostname' in [server]: '' is not a host name");
}

/* [queue] keys and their refusals. */
static void
test_queue(void **state)
{
	struct config c;
	static const char *fold[] = { "0", "10", "100", "auto", "AUTO" };
	static const int want[] = { 0, 10, 100, FOLDERING_AUTO, FOLDERING_AUTO };
	char text[64];

	for (int i = 0; i < 5; i++) {
		snprintf(text, sizeof(text), "[queue]\nfoldering = %s\n", fold[i]);
		parse_ok(&c, text);
		assert_int_equal(c.queue.foldering, want[i]);
		config_free(&c);
	}
	parse_ok(&c, "[queue]\nlimit = 1\nmax-lifetime = 2d\n"
		"retry = 1m,2m , 1h\t,3\n");
	assert_int_equal(c.queue.limit, 1);
	assert_int_equal(c.queue.max_lifetime_s, 172800);
	assert_int_equal(c.queue.nretry, 4);
	assert_int_equal(c.queue.retry_s[0], 60);
	assert_int_equal(c.queue.retry_s[1], 120);
	assert_int_equal(c.queue.retry_s[2], 3600);
	assert_int_equal(c.queue.retry_s[3], 3);
	config_free(&c);
	parse_ok(&c, "[queue]\nretry = 10s\n");
	assert_int_equal(c.queue.nretry, 1);
	assert_int_equal(c.queue.retry_s[0], 10);
	config_free(&c);
	parse_ok(&c, "[queue]\ndirectory-fsync = always\n");
	assert_true(c.queue.dir_fsync_always);
	config_free(&c);
	parse_ok(&c, "[queue]\ndirectory-fsync = Auto\n");
	assert_false(c.queue.dir_fsync_always);
	config_free(&c);
	expect_err("[queue]\n\ndirectory-fsync = yes\n", "t.conf:3: bad value "
		"for 'directory-fsync' in [queue]: 'yes' is not one of: auto, "
		"always");
	expect_err("[queue]\nfoldering = 5\n", "t.conf:2: bad value for "
		"'foldering' in [queue]: '5' is not one of: 0, 10, 100, auto");
	expect_err("[queue]\nlimit = 0\n", "t.conf:2: bad value for 'limit' "
		"in [queue]: '0' is not a whole number from 1 to "
		"18446744073709551615");
	expect_err("[queue]\nlimit = -5\n", "t.conf:2: bad value for 'limit' "
		"in [queue]: '-5' is not a whole number from 1 to "
		"18446744073709551615");
	expect_err("[queue]\nmax-lifetime = 0\n", "t.conf:2: bad value for "
		"'max-lifetime' in [queue]: duration '0' is below the minimum "
		"of 1s");
	expect_err("[queue]\nretry =\n", "t.conf:2: bad value for 'retry' in "
		"[queue]: at least one retry interval is needed");
	expect_err("[queue]\nretry = 5m,,1h\n", "t.conf:2: bad value for "
		"'retry' in [queue]: empty item in the list");
	expect_err("[queue]\nretry = 5m, 0s\n", "t.conf:2: bad value for "
		"'retry' in [queue]: duration '0s' is below the minimum of 1s");
	expect_err("[queue]\nretry = 5m, soon\n", "t.conf:2: bad value for "
		"'retry' in [queue]: 'soon' is not a duration (examples: 30s, "
		"10m, 2h, 3d; a bare number is seconds)");
}

/* [router] keys: paths, domain lists, hop limit. */
static void
test_router(void **state)
{
	struct config c;

	parse_ok(&c, "[router]\nfile = etc/router.tab\n"
		"local-domains = Example.COM, b.example ,example.com\n"
		"hop-limit = 5\n");
	assert_string_equal(c.router.file, "/base/etc/router.tab");
	assert_strv(&c.router.local_domains, 2, "example.com", "b.example");
	assert_int_equal(c.router.hop_limit, 5);
	assert_true(config_is_local_domain(&c, "EXAMPLE.com"));
	assert_false(config_is_local_domain(&c, HOST));
	config_free(&c);
	parse_ok(&c, "[router]\nfile = /etc/mailpipe/router\nlocal-domains =\n");
	assert_string_equal(c.router.file, "/etc/mailpipe/router");
	assert_int_equal(c.router.local_domains.n, 0);
	assert_false(config_is_local_domain(&c, "mail.example.com"));
	config_free(&c);
	expect_err("[router]\nfile =\n", "t.conf:2: bad value for 'file' in "
		"[router]: the router file must not be empty");
	expect_err("[router]\nlocal-domains = a.example, -b.example\n",
		"t.conf:2: bad value for 'local-domains' in [router]: "
		"'-b.example' is not a domain name");
	expect_err("[router]\nlocal-domains = a..example\n", "t.conf:2: bad "
		"value for 'local-domains' in [router]: 'a..example' is not a "
		"domain name");
	expect_err("[router]\nlocal-domains = a.example.\n", "t.conf:2: bad "
		"value for 'local-domains' in [router]: 'a.example.' is not a "
		"domain name");
	expect_err("[router]\nlocal-domains = PIPE\n", "t.conf:2: bad value for "
		"'local-domains' in [router]: the domain 'pipe' is reserved for "
		"pipe addresses");
	expect_err("[router]\nhop-limit = 0\n", "t.conf:2: bad value for "
		"'hop-limit' in [router]: '0' is not a whole number from 1 to "
		"1000000");
}

/* [pipe] keys, including the empty app-dir that turns PIPE off. */
static void
test_pipe(void **state)
{
	struct config c;

	parse_ok(&c, "[pipe]\napp-dir = programs\nprocessors = 1000\n"
		"time-limit = 1s\nstderr-limit = 1m\ndirect = none\n"
		"path = /opt/bin:/bin\n");
	assert_string_equal(c.pipe.app_dir, "/base/programs");
	assert_int_equal(c.pipe.processors, 1000);
	assert_int_equal(c.pipe.time_limit_s, 1);
	assert_int_equal(c.pipe.stderr_limit, 1048576);
	assert_int_equal(c.pipe.direct, DIRECT_NONE);
	assert_string_equal(c.pipe.path_env, "/opt/bin:/bin");
	config_free(&c);
	parse_ok(&c, "[pipe]\napp-dir =\ndirect = Local\nstderr-limit = 0\n");
	assert_string_equal(c.pipe.app_dir, "");
	assert_int_equal(c.pipe.direct, DIRECT_LOCAL);
	assert_int_equal(c.pipe.stderr_limit, 0);
	config_free(&c);
	parse_ok(&c, "[pipe]\napp-dir = \"\"\n");
	assert_string_equal(c.pipe.app_dir, "");
	config_free(&c);
	parse_ok(&c, "[pipe]\napp-dir = /usr/lib/mailpipe/apps\n");
	assert_string_equal(c.pipe.app_dir, "/usr/lib/mailpipe/apps");
	config_free(&c);
	expect_err("[pipe]\nprocessors = 0\n", "t.conf:2: bad value for "
		"'processors' in [pipe]: '0' is not a whole number from 1 to "
		"1000");
	expect_err("[pipe]\nprocessors = 1001\n", "t.conf:2: bad value for "
		"'processors' in [pipe]: '1001' is not a whole number from 1 to "
		"1000");
	expect_err("[pipe]\nprocessors = 10x\n", "t.conf:2: bad value for "
		"'processors' in [pipe]: '10x' is not a whole number from 1 to "
		"1000");
	expect_err("[pipe]\ntime-limit = 0s\n", "t.conf:2: bad value for "
		"'time-limit' in [pipe]: duration '0s' is below the minimum of "
		"1s");
	expect_err("[pipe]\nstderr-limit = 64q\n", "t.conf:2: bad value for "
		"'stderr-limit' in [pipe]: '64q' is not a size (examples: 64k, "
		"10m, 1g; a bare number is bytes)");
	expect_err("[pipe]\ndirect = all\n", "t.conf:2: bad value for 'direct' "
		"in [pipe]: 'all' is not one of: local, none");
	expect_err("[pipe]\npath =\n", "t.conf:2: bad value for 'path' in "
		"[pipe]: PATH must not be empty");
}

/* [submitted] and [foreign-queue] scan intervals. */
static void
test_scanners(void **state)
{
	struct config c;

	parse_ok(&c, "[submitted]\nscan-interval = 1\n[foreign-queue]\n"
		"scan-interval = 1h\n");
	assert_int_equal(c.submitted.scan_interval_s, 1);
	assert_int_equal(c.foreign.scan_interval_s, 3600);
	config_free(&c);
	expect_err("[submitted]\nscan-interval = 0\n", "t.conf:2: bad value for "
		"'scan-interval' in [submitted]: duration '0' is below the "
		"minimum of 1s");
	expect_err("[foreign-queue]\nscan-interval = 0m\n", "t.conf:2: bad "
		"value for 'scan-interval' in [foreign-queue]: duration '0m' is "
		"below the minimum of 1s");
}

/* [smtp] keys. */
static void
test_smtp(void **state)
{
	struct config c;
	static const char *async[] = { "anybody", "nobody", "authenticated",
		"unauthenticated", "clients", "non-clients" };
	char text[80];

	parse_ok(&c, "[smtp]\nlisten = 0.0.0.0:25, [::1]:2525 , mx.example:587\n"
		"max-size = 10m\nmax-recipients = 1\n"
		"trusted-networks = 10.0.0.0/8, 192.0.2.1, 2001:DB8::/32, ::1,"
		" 0.0.0.0/0\n"
		"relay-host = smart.example\ntls-cert = tls/cert.pem\n"
		"tls-key = /etc/ssl/key.pem\n");
	assert_strv(&c.smtp.listen, 3, "0.0.0.0:25", "[::1]:2525",
		"mx.example:587");
	assert_int_equal(c.smtp.max_size, 10485760);
	assert_int_equal(c.smtp.max_recipients, 1);
	assert_strv(&c.smtp.trusted_networks, 5, "10.0.0.0/8", "192.0.2.1/32",
		"2001:db8::/32", "::1/128", "0.0.0.0/0");
	assert_string_equal(c.smtp.relay_host, "smart.example:25");
	assert_string_equal(c.smtp.tls_cert, "/base/tls/cert.pem");
	assert_string_equal(c.smtp.tls_key, "/etc/ssl/key.pem");
	config_free(&c);
	for (int i = 0; i < 6; i++) {
		snprintf(text, sizeof(text), "[smtp]\nenqueue-async = %s\n",
			async[i]);
		parse_ok(&c, text);
		assert_int_equal(c.smtp.enqueue_async, i);
		config_free(&c);
	}
	parse_ok(&c, "[smtp]\nlisten =\ntrusted-networks =\nrelay-host = "
		"[2001:db8::1]:587\n");
	assert_int_equal(c.smtp.listen.n, 0);
	assert_int_equal(c.smtp.trusted_networks.n, 0);
	assert_string_equal(c.smtp.relay_host, "[2001:db8::1]:587");
	config_free(&c);
	parse_ok(&c, "[smtp]\nrelay-host = 192.0.2.7:2525\n");
	assert_string_equal(c.smtp.relay_host, "192.0.2.7:2525");
	config_free(&c);
	parse_ok(&c, "[smtp]\nrelay-host =\n");
	assert_null(c.smtp.relay_host);
	config_free(&c);

	expect_err("[smtp]\nlisten = 127.0.0.1\n", "t.conf:2: bad value for "
		"'listen' in [smtp]: '127.0.0.1': missing ':PORT'");
	expect_err("[smtp]\nlisten = ::1:25\n", "t.conf:2: bad value for "
		"'listen' in [smtp]: '::1:25': write an IPv6 address in "
		"brackets, as [ADDRESS]:PORT");
	expect_err("[smtp]\nlisten = 1.2.3:25\n", "t.conf:2: bad value for "
		"'listen' in [smtp]: '1.2.3:25': bad IPv4 address");
	expect_err("[smtp]\nlisten = [::g]:25\n", "t.conf:2: bad value for "
		"'listen' in [smtp]: '[::g]:25': bad IPv6 address");
	expect_err("[smtp]\nlisten = [::1:25\n", "t.conf:2: bad value for "
		"'listen' in [smtp]: '[::1:25': missing ']'");
	expect_err("[smtp]\nlisten = bad_host:25\n", "t.conf:2: bad value for "
		"'listen' in [smtp]: 'bad_host:25': bad host name");
	expect_err("[smtp]\nlisten = :25\n", "t.conf:2: bad value for "
		"'listen' in [smtp]: ':25': missing host");
	expect_err("[smtp]\nlisten = 127.0.0.1:0\n", "t.conf:2: bad value for "
		"'listen' in [smtp]: '127.0.0.1:0': bad port (1-65535 after "
		"':')");
	expect_err("[smtp]\nlisten = 127.0.0.1:65536\n", "t.conf:2: bad value "
		"for 'listen' in [smtp]: '127.0.0.1:65536': bad port (1-65535 "
		"after ':')");
	expect_err("[smtp]\nlisten = [::1]x\n", "t.conf:2: bad value for "
		"'listen' in [smtp]: '[::1]x': bad port (1-65535 after ':')");
	expect_err("[smtp]\nlisten = a.example:25, a.example:25\n", "t.conf:2: "
		"bad value for 'listen' in [smtp]: 'a.example:25' is listed "
		"twice");
	expect_err("[smtp]\nenqueue-async = some\n", "t.conf:2: bad value for "
		"'enqueue-async' in [smtp]: 'some' is not one of: anybody, "
		"nobody, authenticated, unauthenticated, clients, non-clients");
	expect_err("[smtp]\nmax-size = 0\n", "t.conf:2: bad value for "
		"'max-size' in [smtp]: size '0' is below the minimum of 1 bytes");
	expect_err("[smtp]\nmax-recipients = 0\n", "t.conf:2: bad value for "
		"'max-recipients' in [smtp]: '0' is not a whole number from 1 "
		"to 1000000");
	expect_err("[smtp]\ntrusted-networks = 10.0.0.0/33\n", "t.conf:2: bad "
		"value for 'trusted-networks' in [smtp]: '10.0.0.0/33': bad "
		"prefix length (0-32 after '/')");
	expect_err("[smtp]\ntrusted-networks = ::/129\n", "t.conf:2: bad value "
		"for 'trusted-networks' in [smtp]: '::/129': bad prefix length "
		"(0-128 after '/')");
	expect_err("[smtp]\ntrusted-networks = 10.0.0.0/\n", "t.conf:2: bad "
		"value for 'trusted-networks' in [smtp]: '10.0.0.0/': bad "
		"prefix length (0-32 after '/')");
	expect_err("[smtp]\ntrusted-networks = 10.0.0/8\n", "t.conf:2: bad "
		"value for 'trusted-networks' in [smtp]: '10.0.0/8': bad IP "
		"address");
	expect_err("[smtp]\ntrusted-networks = localhost\n", "t.conf:2: bad "
		"value for 'trusted-networks' in [smtp]: 'localhost': bad IP "
		"address");
	expect_err("[smtp]\nrelay-host = smart.example:x\n", "t.conf:2: bad "
		"value for 'relay-host' in [smtp]: 'smart.example:x': bad port "
		"(1-65535 after ':')");
	expect_err("[smtp]\ntls-cert = c.pem\n", "t.conf:2: [smtp] tls-cert is "
		"set but tls-key is not");
	expect_err("[smtp]\nlisten = a:1\n\ntls-key = k.pem\n", "t.conf:4: "
		"[smtp] tls-key is set but tls-cert is not");
}

/* [reports] keys. */
static void
test_reports(void **state)
{
	struct config c;
	static const char *ret[] = { "headers", "body", "always-headers",
		"always-body" };
	static const char *rr[] = { "everybody", "clients", "authenticated",
		"nobody" };
	char text[80];

	parse_ok(&c, "[reports]\nreporting-delay = 15m\n"
		"copy-failure-reports = postmaster+bounces@Example.COM\n"
		"delay-warning = 0\n");
	assert_int_equal(c.reports.reporting_delay_s, 900);
	assert_string_equal(c.reports.copy_failure_reports,
		"postmaster+bounces@Example.COM");
	assert_int_equal(c.reports.delay_warning_s, 0);
	config_free(&c);
	for (int i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "[reports]\nreturn = %s\n"
			"return-receipts = %s\n", ret[i], rr[i]);
		parse_ok(&c, text);
		assert_int_equal(c.reports.ret, i);
		assert_int_equal(c.reports.return_receipts, i);
		config_free(&c);
	}
	parse_ok(&c, "[reports]\ncopy-failure-reports =\n");
	assert_null(c.reports.copy_failure_reports);
	config_free(&c);
	expect_err("[reports]\nreturn = all\n", "t.conf:2: bad value for "
		"'return' in [reports]: 'all' is not one of: headers, body, "
		"always-headers, always-body");
	expect_err("[reports]\nreturn-receipts = some\n", "t.conf:2: bad value "
		"for 'return-receipts' in [reports]: 'some' is not one of: "
		"everybody, clients, authenticated, nobody");
	expect_err("[reports]\ncopy-failure-reports = postmaster\n", "t.conf:2: "
		"bad value for 'copy-failure-reports' in [reports]: 'postmaster' "
		"is not a mail address (local@domain)");
	expect_err("[reports]\ncopy-failure-reports = a..b@x.example\n",
		"t.conf:2: bad value for 'copy-failure-reports' in [reports]: "
		"'a..b@x.example' is not a mail address (local@domain)");
	expect_err("[reports]\ncopy-failure-reports = a b@x.example\n",
		"t.conf:2: bad value for 'copy-failure-reports' in [reports]: "
		"'a b@x.example' is not a mail address (local@domain)");
	expect_err("[reports]\ncopy-failure-reports = pm@x_y\n", "t.conf:2: bad "
		"value for 'copy-failure-reports' in [reports]: 'pm@x_y': bad "
		"domain");
	expect_err("[reports]\nreporting-delay = -1s\n", "t.conf:2: bad value "
		"for 'reporting-delay' in [reports]: '-1s' is not a duration "
		"(examples: 30s, 10m, 2h, 3d; a bare number is seconds)");
	parse_ok(&c, "[reports]\nreturn-size-limit = 10m\n");
	assert_int_equal(c.reports.return_size_limit, 10 * 1024 * 1024);
	config_free(&c);
	parse_ok(&c, "[reports]\nreturn-size-limit = 0\n");
	assert_int_equal(c.reports.return_size_limit, 0);
	config_free(&c);
	expect_err("[reports]\nreturn-size-limit = big\n", "t.conf:2: bad "
		"value for 'return-size-limit' in [reports]: 'big' is not a "
		"size (examples: 64k, 10m, 1g; a bare number is bytes)");
}

/* [monitor] http-listen, including off. */
static void
test_monitor(void **state)
{
	struct config c;

	parse_ok(&c, "[monitor]\nhttp-listen = [::]:8080\n");
	assert_string_equal(c.monitor.http_listen, "[::]:8080");
	config_free(&c);
	parse_ok(&c, "[monitor]\nhttp-listen =\n");
	assert_null(c.monitor.http_listen);
	config_free(&c);
	expect_err("[monitor]\nhttp-listen = localhost\n", "t.conf:2: bad value "
		"for 'http-listen' in [monitor]: 'localhost': missing ':PORT'");
}

/* [log]: per-component keys win over level, in either order. */
static void
test_log_levels(void **state)
{
	struct config c;

	parse_ok(&c, "[log]\nlevel = problems\n");
	for (int i = 0; i < LOG_NCOMP; i++)
		assert_int_equal(c.log.level[i], LOG_PROBLEMS);
	config_free(&c);
	parse_ok(&c, "[log]\npipe = all\nlevel = failures\nsmtpi = LowLevel\n");
	assert_int_equal(c.log.level[LOG_PIPE], LOG_ALL);
	assert_int_equal(c.log.level[LOG_SMTPI], LOG_LOWLEVEL);
	assert_int_equal(c.log.level[LOG_QUEUE], LOG_FAILURES);
	assert_int_equal(c.log.level[LOG_SYSTEM], LOG_FAILURES);
	config_free(&c);
	parse_ok(&c, "[log]\nsystem = none\nenqueuer = low-level\n"
		"dequeuer = problems\nsmtp = all\nsubmit = failures\n"
		"queue = major\n");
	assert_int_equal(c.log.level[LOG_SYSTEM], LOG_NONE);
	assert_int_equal(c.log.level[LOG_PIPE], LOG_MAJOR);
	assert_int_equal(c.log.level[LOG_ENQUEUER], LOG_LOWLEVEL);
	assert_int_equal(c.log.level[LOG_DEQUEUER], LOG_PROBLEMS);
	assert_int_equal(c.log.level[LOG_SMTP], LOG_ALL);
	assert_int_equal(c.log.level[LOG_SUBMIT], LOG_FAILURES);
	assert_int_equal(c.log.level[LOG_QUEUE], LOG_MAJOR);
	config_free(&c);
	expect_err("[log]\nlevel = loud\n", "t.conf:2: bad value for 'level' in "
		"[log]: 'loud' is not a log level (none, failures, major, "
		"problems, low-level, all)");
	expect_err("[log]\nPIPE = all\n", "t.conf:2: unknown key 'PIPE' in "
		"[log]");
}

/* A full transport section. */
static void
test_transport(void **state)
{
	struct config c;
	const struct config_transport *t;

	parse_ok(&c, "[transport lists]\ndomains = Lists.Example, l2.example\n"
		"command = [RCPT] listmgr -u *\nmode = sync\ntime-limit = 30s\n"
		"output-file = log/lists.out\nerror-file = /var/log/l.err\n"
		"[transport t2]\ndomains = t2.example\ncommand = \"rec\"\n");
	assert_int_equal(c.ntransports, 2);
	t = &c.transports[0];
	assert_string_equal(t->name, "lists");
	assert_int_equal(t->line, 1);
	assert_strv(&t->domains, 2, "lists.example", "l2.example");
	assert_string_equal(t->command, "[RCPT] listmgr -u *");
	assert_int_equal(t->command_line, 3);	/* where its errors point */
	assert_int_equal(t->mode, TRANSPORT_SYNC);
	assert_int_equal(t->time_limit_s, 30);
	assert_string_equal(t->output_file, "/base/log/lists.out");
	assert_string_equal(t->error_file, "/var/log/l.err");
	assert_int_equal(t->codes.n, 0);
	t = &c.transports[1];
	assert_string_equal(t->name, "t2");
	assert_int_equal(t->line, 8);
	assert_string_equal(t->command, "rec");
	assert_int_equal(t->command_line, 10);
	assert_int_equal(t->mode, TRANSPORT_QUEUE);
	assert_int_equal(t->time_limit_s, 0);
	assert_null(t->output_file);
	assert_null(t->error_file);
	assert_ptr_equal(config_transport_for_domain(&c, "LISTS.example"),
		&c.transports[0]);
	assert_ptr_equal(config_transport_for_domain(&c, "t2.example"),
		&c.transports[1]);
	assert_null(config_transport_for_domain(&c, "t3.example"));
	assert_null(config_transport_for_domain(&c, NULL));
	/* Transport domains are local domains too. */
	assert_true(config_is_local_domain(&c, "L2.EXAMPLE"));
	assert_true(config_is_local_domain(&c, "mail.example.com"));
	assert_false(config_is_local_domain(&c, "t3.example"));
	config_free(&c);
	parse_ok(&c, "[transport a]\ndomains = a.example\ncommand = x\n"
		"mode = QUEUE\ntime-limit = 0\noutput-file =\n[pipe]\n");
	assert_int_equal(c.transports[0].mode, TRANSPORT_QUEUE);
	assert_null(c.transports[0].output_file);
	config_free(&c);
}

/* Transport errors: names, missing keys, duplicates. */
static void
test_transport_errors(void **state)
{
	expect_err("[transport]\n", "t.conf:1: [transport] needs a name: "
		"[transport NAME]");
	expect_err("[transport a.b]\n", "t.conf:1: bad transport name 'a.b' "
		"(1-64 letters, digits, '_' or '-')");
	expect_err("[transport "
		"a123456789b123456789c123456789d123456789e123456789f123456789"
		"g1234]\n", "t.conf:1: bad transport name '"
		"a123456789b123456789c123456789d123456789e123456789f123456789"
		"g1234' (1-64 letters, digits, '_' or '-')");
	expect_err("[transport a]\ndomains = a.example\n\n[pipe]\n",
		"t.conf:1: [transport a] has no command");
	expect_err("# c\n[transport a]\ncommand = x\n", "t.conf:2: [transport a] "
		"has no domains");
	expect_err("[transport a]\ndomains =\n", "t.conf:2: bad value for "
		"'domains' in [transport a]: at least one domain is needed");
	expect_err("[transport a]\ncommand =\n", "t.conf:2: bad value for "
		"'command' in [transport a]: the command must not be empty");
	expect_err("[transport a]\ncommand = \"\"\n", "t.conf:2: bad value for "
		"'command' in [transport a]: the command must not be empty");
	expect_err("[transport a]\ndomains = a.example\ncommand = x\n"
		"[transport a]\n", "t.conf:4: duplicate section [transport a] "
		"(first on line 1)");
	expect_err("[transport a]\ndomains = a.example, b.example\ncommand = x\n"
		"[transport b]\ndomains = c.example, B.Example\n", "t.conf:5: bad "
		"value for 'domains' in [transport b]: domain 'b.example' already "
		"belongs to [transport a]");
	expect_err("[transport a]\nmode = async\n", "t.conf:2: bad value for "
		"'mode' in [transport a]: 'async' is not one of: queue, sync");
	expect_err("[transport a]\ntime-limit = 1y\n", "t.conf:2: bad value for "
		"'time-limit' in [transport a]: '1y' is not a duration "
		"(examples: 30s, 10m, 2h, 3d; a bare number is seconds)");
	expect_err("[transport a]\ndomains = pipe\n", "t.conf:2: bad value for "
		"'domains' in [transport a]: the domain 'pipe' is reserved for "
		"pipe addresses");
	expect_err("[transport a]\ncommand = x\ncommand = y\n", "t.conf:3: "
		"duplicate key 'command' in [transport a] (first on line 2)");
	expect_err("[transport a]\nfoo = y\n", "t.conf:2: unknown key 'foo' in "
		"[transport a]");
	/* Transport names are case-sensitive: these are two transports. */
	struct config c;

	parse_ok(&c, "[transport A]\ndomains = a.example\ncommand = x\n"
		"[transport a]\ndomains = b.example\ncommand = y\n");
	assert_int_equal(c.ntransports, 2);
	config_free(&c);
}

/* code.N = "reply" builds the transport's map. */
static void
test_transport_codes(void **state)
{
	struct config c;
	const struct code_map_entry *e;

	parse_ok(&c, "[transport a]\ndomains = a.example\ncommand = x\n"
		"code.100 = \"550 command failed; see #ops\"\n"
		"code.111 = 450 try again later\ncode.0 = \"250 2.0.0 ok\"\n"
		"code.255 = 554 5.3.0 broken\n");
	assert_int_equal(c.transports[0].codes.n, 4);
	e = code_map_find(&c.transports[0].codes, 100);
	assert_non_null(e);
	assert_int_equal(e->reply, 550);
	assert_string_equal(e->status, "5.0.0");
	assert_string_equal(e->text, "command failed; see #ops");
	e = code_map_find(&c.transports[0].codes, 111);
	assert_non_null(e);
	assert_int_equal(e->reply, 450);
	assert_string_equal(e->text, "try again later");
	e = code_map_find(&c.transports[0].codes, 0);
	assert_non_null(e);
	assert_int_equal(e->reply, 250);
	assert_string_equal(e->status, "2.0.0");
	e = code_map_find(&c.transports[0].codes, 255);
	assert_non_null(e);
	assert_string_equal(e->status, "5.3.0");
	assert_null(code_map_find(&c.transports[0].codes, 1));
	config_free(&c);
	expect_err("[transport a]\ncode.256 = \"550 x\"\n", "t.conf:2: bad key "
		"'code.256' in [transport a]: N in code.N is an exit status "
		"0-255");
	expect_err("[transport a]\ncode.01 = \"550 x\"\n", "t.conf:2: bad key "
		"'code.01' in [transport a]: N in code.N is an exit status "
		"0-255");
	expect_err("[transport a]\ncode. = \"550 x\"\n", "t.conf:2: bad key "
		"'code.' in [transport a]: N in code.N is an exit status 0-255");
	expect_err("[transport a]\ncode.1 = \"550 x\"\n\ncode.1 = \"551 y\"\n",
		"t.conf:4: duplicate key 'code.1' in [transport a] (first on "
		"line 2)");
	expect_err("[transport a]\ncode.1 = hello\n", "t.conf:2: bad value for "
		"'code.1' in [transport a]: reply must begin with a 3-digit "
		"code");
	expect_err("[pipe]\ncode.1 = \"550 x\"\n", "t.conf:2: unknown key "
		"'code.1' in [pipe]");
}

/* Sections: unknown, names where none belong, malformed headers. */
static void
test_section_errors(void **state)
{
	struct config c;

	expect_err("[pipe]\nprocessors = 2\n\n[piep]\n", "t.conf:4: unknown "
		"section [piep]");
	expect_err("[Pipe]\n", "t.conf:1: unknown section [Pipe]");
	expect_err("[pipe extra]\n", "t.conf:1: section [pipe] takes no name");
	expect_err("[]\n", "t.conf:1: empty section name");
	expect_err("[ \t]\n", "t.conf:1: empty section name");
	expect_err("[pipe\n", "t.conf:1: malformed section header (missing "
		"']')");
	expect_err("[pipe] x\n", "t.conf:1: text after the section header");
	parse_ok(&c, "  [ pipe ]  # the pipe module\nprocessors=3\n"
		"[transport\tx ]#c\ndomains=x.example\ncommand=y\n");
	assert_int_equal(c.pipe.processors, 3);
	assert_string_equal(c.transports[0].name, "x");
	config_free(&c);
}

/* Keys: unknown, duplicate, before any section, malformed lines. */
static void
test_key_errors(void **state)
{
	struct config c;

	expect_err("[queue]\nlimit = 5\n[pipe]\n#\n\n\nprocesors = 4\n",
		"t.conf:7: unknown key 'procesors' in [pipe]");
	expect_err("[pipe]\nprocessors = 2\nprocessors = 3\n", "t.conf:3: "
		"duplicate key 'processors' in [pipe] (first on line 2)");
	expect_err("[pipe]\nprocessors = 2\n[queue]\n[pipe]\nprocessors = 3\n",
		"t.conf:5: duplicate key 'processors' in [pipe] (first on line "
		"2)");
	expect_err("processors = 2\n[pipe]\n", "t.conf:1: key 'processors' "
		"before any section");
	expect_err("[pipe]\nprocessors\n", "t.conf:2: malformed line (expected "
		"[section], key = value, or # comment)");
	expect_err("[pipe]\n= 3\n", "t.conf:2: malformed line (no key before "
		"'=')");
	expect_err("[pipe]\nmy key = 3\n", "t.conf:2: malformed line (a key is "
		"made of letters, digits, '-', '_', '.')");
	expect_err("[pipe]\n; comment\n", "t.conf:2: malformed line (expected "
		"[section], key = value, or # comment)");
	expect_err("[pipe]\nProcessors = 3\n", "t.conf:2: unknown key "
		"'Processors' in [pipe]");
	/* The key is judged before its value. */
	expect_err("[pipe]\nprocesors = \"x\n", "t.conf:2: unknown key "
		"'procesors' in [pipe]");
	expect_err("[pipe]\npath = /a\npath = \"x\n", "t.conf:3: duplicate "
		"key 'path' in [pipe] (first on line 2)");
	/* Same key name in two sections is fine. */
	parse_ok(&c, "[submitted]\nscan-interval = 5\n[foreign-queue]\n"
		"scan-interval = 6\n");
	assert_int_equal(c.submitted.scan_interval_s, 5);
	assert_int_equal(c.foreign.scan_interval_s, 6);
	config_free(&c);
}

/* Quoted values: escapes, '#' and ';' kept, errors. */
static void
test_quoting(void **state)
{
	struct config c;

	parse_ok(&c, "[transport a]\ndomains = a.example\n"
		"command = \"say \\\"hi\\\" \\\\ # ; x\"   # comment\n"
		"output-file = \"out file#1\"#c\n");
	assert_string_equal(c.transports[0].command,
		"say \"hi\" \\ # ; x");
	assert_string_equal(c.transports[0].output_file, "/base/out file#1");
	config_free(&c);
	parse_ok(&c, "[pipe]\npath = \"  /bin  \"\n");
	assert_string_equal(c.pipe.path_env, "  /bin  ");
	config_free(&c);
	expect_err("[pipe]\npath = \"/bin\n", "t.conf:2: unterminated quoted "
		"value");
	expect_err("[pipe]\npath = \"/bin\\\"\n", "t.conf:2: unterminated "
		"quoted value");
	expect_err("[pipe]\npath = \"/bin\\\n", "t.conf:2: unterminated quoted "
		"value");
	expect_err("[pipe]\npath = \"/b\\in\"\n", "t.conf:2: unknown escape "
		"'\\i' in a quoted value (only \\\" and \\\\)");
	expect_err("[pipe]\npath = \"/bin\" x\n", "t.conf:2: text after the "
		"closing quote");
}

/* Unquoted values: trailing comments need white space before '#'. */
static void
test_unquoted(void **state)
{
	struct config c;

	parse_ok(&c, "[transport a]\ndomains = a.example # the list\n"
		"command = prog a#b ; c \"d\"\t# comment\n"
		"output-file =#x\n");
	assert_strv(&c.transports[0].domains, 1, "a.example");
	assert_string_equal(c.transports[0].command, "prog a#b ; c \"d\"");
	assert_string_equal(c.transports[0].output_file, "/base/#x");
	config_free(&c);
	parse_ok(&c, "[pipe]\napp-dir = # nothing\n");
	assert_string_equal(c.pipe.app_dir, "");
	config_free(&c);
	parse_ok(&c, "[pipe]\npath=/a=b\n");
	assert_string_equal(c.pipe.path_env, "/a=b");
	config_free(&c);
}

/* CRLF line ends, a missing last newline and a UTF-8 BOM are accepted. */
static void
test_line_ends(void **state)
{
	struct config c;

	parse_ok(&c, "\xef\xbb\xbf[pipe]\r\nprocessors = 7\r\n\r\n"
		"path = \"/x\"\r\n[queue]\r\nlimit = 9");
	assert_int_equal(c.pipe.processors, 7);
	assert_string_equal(c.pipe.path_env, "/x");
	assert_int_equal(c.queue.limit, 9);
	config_free(&c);
	expect_err("[pipe]\r\nprocessors = 7\r\r\n", "t.conf:2: control "
		"character 0x0d in the line");
	expect_err("[pipe]\npath = /a\x01/b\n", "t.conf:2: control character "
		"0x01 in the line");
	expect_err("[pipe]\npath = \"/a\x7f\"\n", "t.conf:2: control character "
		"0x7f in the line");
}

/* A NUL byte anywhere is an error on its line. */
static void
test_nul(void **state)
{
	static const char text[] = "[pipe]\n# x\nprocessors = 1\0\n";
	static const char text2[] = "[pipe]\n# comment \0 here\n";

	expect_errn(text, sizeof(text) - 1, "t.conf:3: NUL byte in the line");
	expect_errn(text2, sizeof(text2) - 1, "t.conf:2: NUL byte in the line");
}

/* Lines of any length: a 10 KB value is kept whole. */
static void
test_long_line(void **state)
{
	struct config c;
	struct buf text = BUF_INIT;
	char *val = malloc(10241);

	assert_non_null(val);
	for (size_t i = 0; i < 10240; i++)
		val[i] = (char)('a' + i % 26);
	val[10240] = '\0';
	assert_int_equal(buf_printf(&text, "[transport big]\n"
		"domains = big.example\ncommand = %s\n"
		"output-file = \"%s\"\n", val, val), 0);
	parse_ok(&c, text.data);
	assert_string_equal(c.transports[0].command, val);
	assert_int_equal(strlen(c.transports[0].output_file), 6 + 10240);
	assert_string_equal(c.transports[0].output_file + 6, val);
	config_free(&c);
	/* And an error after a long line still counts lines right. */
	buf_reset(&text);
	assert_int_equal(buf_printf(&text, "[pipe]\npath = %s\nbogus = 1\n",
		val), 0);
	expect_err(text.data, "t.conf:3: unknown key 'bogus' in [pipe]");
	buf_free(&text);
	free(val);
}

/* Durations: units, bare seconds, edges, junk. */
static void
test_durations(void **state)
{
	uint64_t s = 7;

	assert_int_equal(config_parse_duration("0", &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(config_parse_duration("45", &s), 0);
	assert_int_equal(s, 45);
	assert_int_equal(config_parse_duration("30s", &s), 0);
	assert_int_equal(s, 30);
	assert_int_equal(config_parse_duration("10m", &s), 0);
	assert_int_equal(s, 600);
	assert_int_equal(config_parse_duration("2h", &s), 0);
	assert_int_equal(s, 7200);
	assert_int_equal(config_parse_duration("3d", &s), 0);
	assert_int_equal(s, 259200);
	assert_int_equal(config_parse_duration("3D", &s), 0);
	assert_int_equal(s, 259200);
	assert_int_equal(config_parse_duration("007m", &s), 0);
	assert_int_equal(s, 420);
	assert_int_equal(config_parse_duration("36500d", &s), 0);
	assert_int_equal(s, 36500ULL * 86400);
	s = 7;
	assert_int_equal(config_parse_duration("36501d", &s), -ERANGE);
	assert_int_equal(config_parse_duration("3153600001", &s), -ERANGE);
	assert_int_equal(config_parse_duration("99999999999999999999", &s),
		-ERANGE);
	assert_int_equal(config_parse_duration("18446744073709551615d", &s),
		-ERANGE);
	assert_int_equal(config_parse_duration("-1", &s), -EINVAL);
	assert_int_equal(config_parse_duration("+1", &s), -EINVAL);
	assert_int_equal(config_parse_duration("", &s), -EINVAL);
	assert_int_equal(config_parse_duration("s", &s), -EINVAL);
	assert_int_equal(config_parse_duration("1x", &s), -EINVAL);
	assert_int_equal(config_parse_duration("1ss", &s), -EINVAL);
	assert_int_equal(config_parse_duration("1 s", &s), -EINVAL);
	assert_int_equal(config_parse_duration(" 1s", &s), -EINVAL);
	assert_int_equal(config_parse_duration("1.5h", &s), -EINVAL);
	assert_int_equal(config_parse_duration("1h30m", &s), -EINVAL);
	assert_int_equal(config_parse_duration(NULL, &s), -EINVAL);
	assert_int_equal(s, 7);
	expect_err("[pipe]\ntime-limit = 36501d\n", "t.conf:2: bad value for "
		"'time-limit' in [pipe]: duration '36501d' is too large (at most "
		"36500d)");
	expect_err("[pipe]\ntime-limit =\n", "t.conf:2: bad value for "
		"'time-limit' in [pipe]: '' is not a duration (examples: 30s, "
		"10m, 2h, 3d; a bare number is seconds)");
}

/* Sizes: powers of 1024, bare bytes, overflow, junk. */
static void
test_sizes(void **state)
{
	uint64_t b = 7;

	assert_int_equal(config_parse_size("0", &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(config_parse_size("512", &b), 0);
	assert_int_equal(b, 512);
	assert_int_equal(config_parse_size("64k", &b), 0);
	assert_int_equal(b, 65536);
	assert_int_equal(config_parse_size("64K", &b), 0);
	assert_int_equal(b, 65536);
	assert_int_equal(config_parse_size("10m", &b), 0);
	assert_int_equal(b, 10485760);
	assert_int_equal(config_parse_size("1g", &b), 0);
	assert_int_equal(b, 1073741824);
	assert_int_equal(config_parse_size("18446744073709551615", &b), 0);
	assert_true(b == UINT64_MAX);
	assert_int_equal(config_parse_size("17179869183g", &b), 0);
	assert_true(b == 17179869183ULL << 30);
	b = 7;
	assert_int_equal(config_parse_size("18446744073709551616", &b), -ERANGE);
	assert_int_equal(config_parse_size("17179869184g", &b), -ERANGE);
	assert_int_equal(config_parse_size("-1k", &b), -EINVAL);
	assert_int_equal(config_parse_size("", &b), -EINVAL);
	assert_int_equal(config_parse_size("k", &b), -EINVAL);
	assert_int_equal(config_parse_size("1kb", &b), -EINVAL);
	assert_int_equal(config_parse_size("1t", &b), -EINVAL);
	assert_int_equal(config_parse_size("1 k", &b), -EINVAL);
	assert_int_equal(config_parse_size(NULL, &b), -EINVAL);
	assert_int_equal(b, 7);
	expect_err("[smtp]\nmax-size = 17179869184g\n", "t.conf:2: bad value "
		"for 'max-size' in [smtp]: size '17179869184g' is too large");
}

/* Applying a second text on top keeps earlier settings. */
static void
test_parse_on_top(void **state)
{
	struct config c;
	char *err = NULL;
	const char *more = "[queue]\nlimit = 3\n";

	parse_ok(&c, "[pipe]\nprocessors = 4\n");
	assert_int_equal(config_parse(&c, more, strlen(more), NULL, &err), 0);
	assert_null(err);
	assert_int_equal(c.pipe.processors, 4);
	assert_int_equal(c.queue.limit, 3);
	more = "[queue]\nlimit = x\n";
	assert_int_equal(config_parse(&c, more, strlen(more), NULL, &err),
		-EINVAL);
	assert_string_equal(err, "(config):2: bad value for 'limit' in [queue]: "
		"'x' is not a whole number from 1 to 18446744073709551615");
	free(err);
	config_free(&c);
}

/* Write text into dir/name. */
static void
write_file(const char *dir, const char *name, const char *text, size_t n)
{
	struct buf p = BUF_INIT;
	int fd;

	assert_int_equal(buf_printf(&p, "%s/%s", dir, name), 0);
	fd = open(p.data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	buf_free(&p);
}

/* config_load: default file absent or present, explicit paths, errors. */
static void
test_load(void **state)
{
	char dir[] = "/tmp/test_config.XXXXXX";
	struct config c;
	struct buf p = BUF_INIT, want = BUF_INIT;
	char *err = NULL;

	assert_non_null(mkdtemp(dir));
	/* Missing default file: all defaults, no error. */
	assert_int_equal(config_load(&c, dir, NULL, "h.example", &err), 0);
	assert_null(err);
	assert_null(c.file);
	assert_string_equal(c.server.hostname, "h.example");
	assert_int_equal(c.pipe.processors, 10);
	config_free(&c);
	/* Present default file. */
	write_file(dir, "mailpipe.conf", "[pipe]\nprocessors = 3\n", 22);
	assert_int_equal(config_load(&c, dir, NULL, "h.example", &err), 0);
	assert_int_equal(buf_printf(&p, "%s/mailpipe.conf", dir), 0);
	assert_string_equal(c.file, p.data);
	assert_int_equal(c.pipe.processors, 3);
	assert_int_equal(buf_printf(&want, "%s/router", dir), 0);
	assert_string_equal(c.router.file, want.data);
	config_free(&c);
	/* An error in it names the file and line, and c is released. */
	write_file(dir, "mailpipe.conf", "[pipe]\n\nprocesors = 3\n", 23);
	assert_int_equal(config_load(&c, dir, NULL, "h.example", &err), -EINVAL);
	buf_reset(&want);
	assert_int_equal(buf_printf(&want, "%s:3: unknown key 'procesors' in "
		"[pipe]", p.data), 0);
	assert_string_equal(err, want.data);
	assert_null(c.base_dir);
	free(err);
	config_free(&c);
	/* Explicit path that exists. */
	write_file(dir, "other.conf", "[queue]\nlimit = 12\n", 19);
	buf_reset(&p);
	assert_int_equal(buf_printf(&p, "%s/other.conf", dir), 0);
	assert_int_equal(config_load(&c, dir, p.data, NULL, &err), 0);
	assert_string_equal(c.file, p.data);
	assert_int_equal(c.queue.limit, 12);
	config_free(&c);
	/* Explicit path that does not exist. */
	buf_reset(&p);
	assert_int_equal(buf_printf(&p, "%s/missing.conf", dir), 0);
	assert_int_equal(config_load(&c, dir, p.data, NULL, &err), -ENOENT);
	buf_reset(&want);
	assert_int_equal(buf_printf(&want, "%s: No such file or directory",
		p.data), 0);
	assert_string_equal(err, want.data);
	free(err);
	config_free(&c);
	/* A directory. */
	assert_int_equal(config_load(&c, dir, dir, NULL, &err), -EISDIR);
	buf_reset(&want);
	assert_int_equal(buf_printf(&want, "%s: Is a directory", dir), 0);
	assert_string_equal(err, want.data);
	free(err);
	config_free(&c);
	/* Over 1 MiB: refused; exactly 1 MiB of comments: fine. */
	size_t big = 1024 * 1024;
	char *text = malloc(big + 1);
	assert_non_null(text);
	memset(text, '#', big + 1);
	text[big - 1] = '\n';
	write_file(dir, "big.conf", text, big);
	buf_reset(&p);
	assert_int_equal(buf_printf(&p, "%s/big.conf", dir), 0);
	assert_int_equal(config_load(&c, dir, p.data, NULL, &err), 0);
	config_free(&c);
	write_file(dir, "big.conf", text, big + 1);
	assert_int_equal(config_load(&c, dir, p.data, NULL, &err), -EFBIG);
	buf_reset(&want);
	assert_int_equal(buf_printf(&want, "%s: file is larger than 1 MiB",
		p.data), 0);
	assert_string_equal(err, want.data);
	free(err);
	config_free(&c);
	free(text);

	unlink(p.data);
	buf_reset(&p);
	assert_int_equal(buf_printf(&p, "%s/other.conf", dir), 0);
	unlink(p.data);
	buf_reset(&p);
	assert_int_equal(buf_printf(&p, "%s/mailpipe.conf", dir), 0);
	unlink(p.data);
	assert_int_equal(rmdir(dir), 0);
	buf_free(&p);
	buf_free(&want);
}

/* A whole realistic file parses, with every section at once. */
static void
test_full_file(void **state)
{
	struct config c;

	parse_ok(&c,
		"# mailpipe.conf\n"
		"[server]\nhostname = mx.example.org\nuser = mailpipe\n\n"
		"[queue]\nfoldering = 10\nlimit = 5000\nmax-lifetime = 3d\n"
		"retry = 1m, 5m\n\n"
		"[router]\nfile = router\nlocal-domains = example.org\n"
		"hop-limit = 40\n\n"
		"[pipe]\napp-dir = apps\nprocessors = 4\ntime-limit = 5m\n"
		"stderr-limit = 16k\ndirect = local\n"
		"path = /usr/bin:/bin\n\n"
		"[transport lists]\ndomains = lists.example.org\n"
		"command = [RCPT] listmgr -u *\ncode.100 = \"550 no list\"\n\n"
		"[submitted]\nscan-interval = 10s\n\n"
		"[foreign-queue]\nscan-interval = 3m\n\n"
		"[smtp]\nlisten = 127.0.0.1:25, [::1]:25\n"
		"enqueue-async = clients\nmax-size = 20m\n"
		"max-recipients = 100\ntrusted-networks = 127.0.0.0/8\n"
		"relay-host = smarthost.example.org:587\n\n"
		"[reports]\nreporting-delay = 1m\nreturn = headers\n"
		"copy-failure-reports = postmaster@example.org\n"
		"return-receipts = clients\ndelay-warning = 2h\n\n"
		"[monitor]\nhttp-listen = 127.0.0.1:8080\n\n"
		"[log]\nlevel = major\npipe = all\n");
	assert_int_equal(c.queue.foldering, 10);
	assert_int_equal(c.router.hop_limit, 40);
	assert_string_equal(c.pipe.app_dir, "/base/apps");
	assert_int_equal(c.ntransports, 1);
	assert_int_equal(c.transports[0].codes.n, 1);
	assert_int_equal(c.smtp.enqueue_async, ASYNC_CLIENTS);
	assert_string_equal(c.smtp.relay_host, "smarthost.example.org:587");
	assert_int_equal(c.reports.ret, RETURN_HEADERS);
	assert_int_equal(c.log.level[LOG_PIPE], LOG_ALL);
	assert_int_equal(c.log.level[LOG_SMTP], LOG_MAJOR);
	assert_true(config_is_local_domain(&c, "lists.example.org"));
	assert_true(config_is_local_domain(&c, "example.org"));
	assert_false(config_is_local_domain(&c, "mx.example.org"));
	config_free(&c);
}

/* Run the config tests. */

/* The [smtp] limits of the listener and the relay client. */
static void
test_smtp_limits(void **state)
{
	struct config c;

	parse_ok(&c, "[server]\n");
	assert_int_equal(c.smtp.max_connections, 100);
	assert_int_equal(c.smtp.idle_timeout_s, 300);
	assert_int_equal(c.smtp.max_errors, 10);
	assert_int_equal(c.smtp.max_junk_commands, 100);
	assert_int_equal(c.smtp.relay_connections, 2);
	assert_int_equal(c.smtp.relay_timeout_s, 300);
	assert_int_equal(c.smtp.relay_idle_timeout_s, 5);
	config_free(&c);
	parse_ok(&c, "[smtp]\nmax-connections = 3\nidle-timeout = 2s\n"
		"max-errors = 1\nrelay-connections = 5\nrelay-timeout = 1m\n"
		"max-junk-commands = 7\nrelay-idle-timeout = 30s\n");
	assert_int_equal(c.smtp.max_connections, 3);
	assert_int_equal(c.smtp.idle_timeout_s, 2);
	assert_int_equal(c.smtp.max_errors, 1);
	assert_int_equal(c.smtp.max_junk_commands, 7);
	assert_int_equal(c.smtp.relay_connections, 5);
	assert_int_equal(c.smtp.relay_timeout_s, 60);
	assert_int_equal(c.smtp.relay_idle_timeout_s, 30);
	config_free(&c);
	/* the edges: 0s (QUIT after each batch) and 1h; 1 and 100000 */
	parse_ok(&c, "[smtp]\nrelay-idle-timeout = 0s\n"
		"max-junk-commands = 1\n");
	assert_int_equal(c.smtp.relay_idle_timeout_s, 0);
	assert_int_equal(c.smtp.max_junk_commands, 1);
	config_free(&c);
	parse_ok(&c, "[smtp]\nrelay-idle-timeout = 1h\n"
		"max-junk-commands = 100000\n");
	assert_int_equal(c.smtp.relay_idle_timeout_s, 3600);
	assert_int_equal(c.smtp.max_junk_commands, 100000);
	config_free(&c);
	expect_err("[smtp]\nrelay-idle-timeout = 61m\n", "t.conf:2: bad value "
		"for 'relay-idle-timeout' in [smtp]: duration '61m' is above "
		"the maximum of 3600s");
	expect_err("[smtp]\nrelay-idle-timeout = soon\n", "t.conf:2: bad "
		"value for 'relay-idle-timeout' in [smtp]: 'soon' is not a "
		"duration (examples: 30s, 10m, 2h, 3d; a bare number is "
		"seconds)");
	expect_err("[smtp]\nmax-junk-commands = 0\n", "t.conf:2: bad value "
		"for 'max-junk-commands' in [smtp]: '0' is not a whole number "
		"from 1 to 100000");
	expect_err("[smtp]\nmax-junk-commands = 100001\n", "t.conf:2: bad "
		"value for 'max-junk-commands' in [smtp]: '100001' is not a "
		"whole number from 1 to 100000");
	expect_err("[smtp]\nmax-connections = 0\n", "t.conf:2: bad value for "
		"'max-connections' in [smtp]: '0' is not a whole number from 1 "
		"to 100000");
	expect_err("[smtp]\nidle-timeout = 0s\n", "t.conf:2: bad value for "
		"'idle-timeout' in [smtp]: duration '0s' is below the minimum "
		"of 1s");
}

/* The client limits: DATA deadline, minimum rate, per-client sessions. */
static void
test_smtp_client_limits(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "[server]\n");
	assert_int_equal(c.smtp.data_timeout_s, 600);
	assert_int_equal(c.smtp.min_data_rate, 1024);
	assert_int_equal(c.smtp.min_data_rate_grace_s, 30);
	assert_int_equal(c.smtp.max_connections_per_client, 20);
	config_free(&c);
	parse_ok(&c, "[smtp]\ndata-timeout = 2s\nmin-data-rate = 10k\n"
		"min-data-rate-grace = 1m\nmax-connections-per-client = 3\n");
	assert_int_equal(c.smtp.data_timeout_s, 2);
	assert_int_equal(c.smtp.min_data_rate, 10240);
	assert_int_equal(c.smtp.min_data_rate_grace_s, 60);
	assert_int_equal(c.smtp.max_connections_per_client, 3);
	config_free(&c);
	/* 0 turns the rate check and the per-client limit off */
	parse_ok(&c, "[smtp]\nmin-data-rate = 0\n"
		"max-connections-per-client = 0\n");
	assert_int_equal(c.smtp.min_data_rate, 0);
	assert_int_equal(c.smtp.max_connections_per_client, 0);
	config_free(&c);
	/* the edges */
	parse_ok(&c, "[smtp]\nmin-data-rate = 1g\ndata-timeout = 36500d\n"
		"max-connections-per-client = 100000\n"
		"min-data-rate-grace = 1s\n");
	assert_int_equal(c.smtp.min_data_rate, 1073741824);
	assert_int_equal(c.smtp.data_timeout_s, 36500ULL * 86400);
	assert_int_equal(c.smtp.max_connections_per_client, 100000);
	assert_int_equal(c.smtp.min_data_rate_grace_s, 1);
	config_free(&c);
	expect_err("[smtp]\ndata-timeout = 0s\n", "t.conf:2: bad value for "
		"'data-timeout' in [smtp]: duration '0s' is below the minimum "
		"of 1s");
	expect_err("[smtp]\nmin-data-rate = 1025m\n", "t.conf:2: bad value "
		"for 'min-data-rate' in [smtp]: size '1025m' is above the "
		"maximum of 1073741824 bytes");
	expect_err("[smtp]\nmin-data-rate = fast\n", "t.conf:2: bad value "
		"for 'min-data-rate' in [smtp]: 'fast' is not a size "
		"(examples: 64k, 10m, 1g; a bare number is bytes)");
	expect_err("[smtp]\nmin-data-rate-grace = 0\n", "t.conf:2: bad "
		"value for 'min-data-rate-grace' in [smtp]: duration '0' is "
		"below the minimum of 1s");
	expect_err("[smtp]\nmax-connections-per-client = 100001\n",
		"t.conf:2: bad value for 'max-connections-per-client' in "
		"[smtp]: '100001' is not a whole number from 0 to 100000");
	expect_err("[smtp]\nmax-connections-per-client = -1\n",
		"t.conf:2: bad value for 'max-connections-per-client' in "
		"[smtp]: '-1' is not a whole number from 0 to 100000");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_limits),
		cmocka_unit_test(test_smtp_client_limits),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_defaults_edge),
		cmocka_unit_test(test_empty_and_comments),
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_router),
		cmocka_unit_test(test_pipe),
		cmocka_unit_test(test_scanners),
		cmocka_unit_test(test_smtp),
		cmocka_unit_test(test_reports),
		cmocka_unit_test(test_monitor),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_transport),
		cmocka_unit_test(test_transport_errors),
		cmocka_unit_test(test_transport_codes),
		cmocka_unit_test(test_section_errors),
		cmocka_unit_test(test_key_errors),
		cmocka_unit_test(test_quoting),
		cmocka_unit_test(test_unquoted),
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_parse_on_top),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_full_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
