/*
 * config_int.h: what the pieces of the config parser share (config.c: the
 * API, defaults, loading, freeing; config_ini.c: the INI syntax and the
 * section and key tables; config_value.c: the syntax of values;
 * config_apply.c: each section's keys applied to the struct config).
 * Nothing outside them includes it. Functions named config__* are the
 * parser's own, not an interface.
 */
#ifndef MP_CONFIG_INT_H
#define MP_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "strv.h"

enum sect {
	S_SERVER, S_QUEUE, S_ROUTER, S_PIPE, S_SUBMITTED, S_FOREIGN, S_SMTP,
	S_REPORTS, S_MONITOR, S_LOG, S_TRANSPORT, NSECT
};

enum key_id {
	K_SERVER_HOSTNAME, K_SERVER_USER, K_SERVER_DAEMON_USER,
	K_QUEUE_FOLDERING, K_QUEUE_LIMIT, K_QUEUE_MAX_LIFETIME, K_QUEUE_RETRY,
	K_QUEUE_DIRECTORY_FSYNC,
	K_ROUTER_FILE, K_ROUTER_LOCAL_DOMAINS, K_ROUTER_HOP_LIMIT,
	K_PIPE_APP_DIR, K_PIPE_PROCESSORS, K_PIPE_TIME_LIMIT,
	K_PIPE_STDERR_LIMIT, K_PIPE_DIRECT, K_PIPE_PATH,
	K_SUBMITTED_SCAN, K_FOREIGN_SCAN,
	K_SMTP_LISTEN, K_SMTP_ASYNC, K_SMTP_MAX_SIZE, K_SMTP_MAX_RCPT,
	K_SMTP_MAX_CONN, K_SMTP_MAX_CONN_CLIENT, K_SMTP_IDLE,
	K_SMTP_DATA_TIMEOUT, K_SMTP_MIN_RATE, K_SMTP_MIN_RATE_GRACE,
	K_SMTP_MAX_ERRORS, K_SMTP_MAX_JUNK,
	K_SMTP_RELAY_CONN, K_SMTP_RELAY_TIMEOUT, K_SMTP_RELAY_IDLE,
	K_SMTP_TRUSTED, K_SMTP_RELAY, K_SMTP_TLS_CERT, K_SMTP_TLS_KEY,
	K_REPORTS_DELAY, K_REPORTS_RETURN, K_REPORTS_COPY, K_REPORTS_RECEIPTS,
	K_REPORTS_WARNING, K_REPORTS_SIZE_LIMIT,
	K_MONITOR_HTTP,
	K_LOG_LEVEL,
	K_LOG_COMP0,	/* one per enum log_comp, in that order */
	K_T_DOMAINS = K_LOG_COMP0 + LOG_NCOMP, K_T_COMMAND, K_T_MODE,
	K_T_TIME_LIMIT, K_T_OUTPUT, K_T_ERROR,
	NKEYS
};

/* The state of one config_parse call. */
struct pctx {
	struct config *c;
	const char *file;
	unsigned line;
	char **err;
	struct buf why;		/* reason a value was refused */
	int sect;		/* enum sect, or -1 before any section */
	size_t tidx;		/* current transport when sect is S_TRANSPORT */
	unsigned seen[NKEYS];	/* line where a key was set, 0 = not yet */
	unsigned code_seen[256];	/* same for code.N of the transport */
	int log_all;		/* [log] level, or -1 */
	bool hostname_set;
	bool local_domains_set;
};

/* How a quantity with a unit (a duration, a size) is parsed and named. */
struct quantity {
	const char *kind;	/* "duration", "size" */
	int (*parse)(const char *, uint64_t *);
	const char *limit;	/* the largest value, for the error */
	const char *examples;	/* for "is not a ..." */
	const char *unit;	/* after a number in errors: "s", " bytes" */
};

/* config_value.c */
extern const struct quantity config__q_duration, config__q_size;
bool config__is_ws(char ch);
bool config__ascii_eq(const char *a, const char *b);
int config__parse_u64(const char *s, uint64_t *out, const char **end);
bool config__domain_valid(const char *s);
bool config__name_valid(const char *s, size_t n);
char *config__lower_dup(const char *s);
int config__set_str(char **dst, const char *s);
int config__path_join(const char *base, const char *rel, char **out);
int config__why(struct pctx *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int config__split_list(struct pctx *p, const char *v, struct strv *out);
int config__get_quantity(struct pctx *p, const struct quantity *q,
	const char *v, uint64_t min, uint64_t max, uint64_t *out);
int config__get_duration(struct pctx *p, const char *v, uint64_t min,
	uint64_t *out);
int config__get_size(struct pctx *p, const char *v, uint64_t min,
	uint64_t *out);
int config__get_int(struct pctx *p, const char *v, uint64_t min,
	uint64_t max, uint64_t *out);
int config__get_word(struct pctx *p, const char *v,
	const char *const *words, int *out);
int config__get_level(struct pctx *p, const char *v, enum log_level *out);
int config__get_path(struct pctx *p, const char *v, char **out);
int config__get_domains(struct pctx *p, const char *v, struct strv *out);
int config__get_hostport(struct pctx *p, const char *v, bool need_port,
	char **out);
int config__get_cidr(struct pctx *p, const char *v, char **out);
int config__check_address(struct pctx *p, const char *v);
int config__check_user(struct pctx *p, const char *v, const char *other,
	const char *role);

/* config_apply.c */
int config__apply_transport(struct pctx *p, enum key_id k, const char *v);
int config__apply(struct pctx *p, enum key_id k, const char *v);

#endif
