/*
 * log: records with a tag per component and a level per component, written
 * one line per record with a single write(2) to a file descriptor (stderr
 * by default). Key=value helpers quote values so a line can be split
 * reliably: control characters are escaped, never written raw. The logger
 * lives in the server context (no global state); tools use their own.
 */
#ifndef MP_LOG_H
#define MP_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "buf.h"

enum log_comp {
	LOG_SYSTEM = 0,	/* SYSTEM: start, stop, config */
	LOG_PIPE,	/* PIPE: PIPE module and its deliveries */
	LOG_ENQUEUER,	/* ENQUEUER: routing at enqueue, hop limit */
	LOG_DEQUEUER,	/* DEQUEUER: final states, removal, reports */
	LOG_SMTPI,	/* SMTPI: SMTP listener */
	LOG_SMTP,	/* SMTP: relay client */
	LOG_SUBMIT,	/* SUBMIT: Submitted folder */
	LOG_QUEUE,	/* QUEUE: queue store, recovery, ForeignQueue */
	LOG_NCOMP
};

enum log_level {
	LOG_NONE = 0,
	LOG_FAILURES,	/* failures: file system and fatal errors */
	LOG_MAJOR,	/* major: message transfer records */
	LOG_PROBLEMS,	/* problems: non-fatal errors */
	LOG_LOWLEVEL,	/* low-level: protocol-level details */
	LOG_ALL,	/* all: everything */
};

struct logger {
	int fd;				/* where lines go; 2 by default */
	enum log_level level[LOG_NCOMP];
	bool utc;			/* timestamps in UTC (default true) */
};

/* Every component at LOG_MAJOR, output to fd 2. */
void log_init(struct logger *lg);
/* Set every component to level. */
void log_set_all(struct logger *lg, enum log_level level);
/* "none" .. "all" (also "low-level"/"lowlevel") -> level; -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
/* "PIPE", "SUBMIT", ... (case-insensitive) -> component; -EINVAL. */
int log_comp_parse(const char *s, enum log_comp *out);
/* The tag text of a component. */
const char *log_comp_name(enum log_comp c);
/* The name of a level. */
const char *log_level_name(enum log_level l);
/* Would a record at this level be written? */
bool log_enabled(const struct logger *lg, enum log_comp c, enum log_level l);
/*
 * Write one record: "2026-11-23T10:05:00.123Z TAG level: text\n".
 * Embedded newlines and control characters in text are escaped.
 */
void log_msg(const struct logger *lg, enum log_comp c, enum log_level l,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void log_vmsg(const struct logger *lg, enum log_comp c, enum log_level l,
	const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/*
 * Append " key=value" to b. The value is written bare when it holds only
 * printable non-space characters other than '"' and '\\' and '='; otherwise
 * it is written in double quotes with '"' and '\\' backslash-escaped and
 * control bytes as \xHH. A NULL value is written as "-".
 */
int log_kv(struct buf *b, const char *key, const char *value);
/* Same with a printf-formatted value. */
int log_kvf(struct buf *b, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
