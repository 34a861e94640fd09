/*
 * log: owns the record format ("TIME TAG level: text"), the level of each
 * component, and key=value quoting. Promises one write(2) per record, one
 * line per record (control characters and newlines are escaped), and that
 * errno is left as the caller had it. Never buffers, reorders, exits or
 * aborts; a record that cannot be built or written is dropped.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "text.h"

static const char *const comp_names[LOG_NCOMP] = {
	"SYSTEM", "PIPE", "ENQUEUER", "DEQUEUER", "SMTPI", "SMTP", "SUBMIT",
	"QUEUE",
};

static const char *const level_names[] = {
	"none", "failures", "major", "problems", "low-level", "all",
};

#define NLEVELS (sizeof(level_names) / sizeof(level_names[0]))

/* Every component at LOG_MAJOR, UTC timestamps, output to fd 2. */
void
log_init(struct logger *lg)
{
	lg->fd = 2;
	lg->utc = true;
	log_set_all(lg, LOG_MAJOR);
}

/* Set every component to level. */
void
log_set_all(struct logger *lg, enum log_level level)
{
	for (size_t i = 0; i < LOG_NCOMP; i++)
		lg->level[i] = level;
}

/* Level name (case-insensitive, "lowlevel" too) -> level. */
int
log_level_parse(const char *s, enum log_level *out)
{
	if (s == NULL)
		return -EINVAL;
	for (size_t i = 0; i < NLEVELS; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "lowlevel") == 0) {
		*out = LOG_LOWLEVEL;
		return 0;
	}
	return -EINVAL;
}

/* Tag (case-insensitive) -> component. */
int
log_comp_parse(const char *s, enum log_comp *out)
{
	if (s == NULL)
		return -EINVAL;
	for (size_t i = 0; i < LOG_NCOMP; i++) {
		if (strcasecmp(s, comp_names[i]) == 0) {
			*out = (enum log_comp)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* The tag of a component ("UNKNOWN" when out of range). */
const char *
log_comp_name(enum log_comp c)
{
	if ((unsigned)c >= LOG_NCOMP)
		return "UNKNOWN";
	return comp_names[c];
}

/* The name of a level ("unknown" when out of range). */
const char *
log_level_name(enum log_level l)
{
	if ((unsigned)l >= NLEVELS)
		return "unknown";
	return level_names[l];
}

/* True when component c is set to write records of level l. */
bool
log_enabled(const struct logger *lg, enum log_comp c, enum log_level l)
{
	if (lg == NULL || (unsigned)c >= LOG_NCOMP || l == LOG_NONE ||
	    (unsigned)l >= NLEVELS)
		return false;
	return l <= lg->level[c];
}

/* Format the current time into ts (bounded by the format, never cut). */
static void
log_stamp(bool utc, char *ts, size_t size)
{
	struct timespec now;
	struct tm tm;
	long ms;

	if (clock_gettime(CLOCK_REALTIME, &now) < 0) {
		now.tv_sec = 0;
		now.tv_nsec = 0;
	}
	ms = now.tv_nsec / 1000000;
	if (utc || localtime_r(&now.tv_sec, &tm) == NULL) {
		if (gmtime_r(&now.tv_sec, &tm) == NULL)
			memset(&tm, 0, sizeof(tm));
		snprintf(ts, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
			tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
		return;
	}
	/* Offsets are below a day; the clamp only bounds the format. */
	int off = (int)((tm.tm_gmtoff % 86400) / 60);
	char sign = off < 0 ? '-' : '+';

	if (off < 0)
		off = -off;
	snprintf(ts, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%c%02d:%02d",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec, ms, sign, off / 60, off % 60);
}

/* Append text with '\n' as "\\n" and other control bytes as \xHH. */
static int
log_escape(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, start = 0;
	int r;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[4];
		size_t elen;

		if (!text_is_ctl(ch))
			continue;
		if ((r = buf_append(b, s + start, i - start)) < 0)
			return r;
		if (ch == '\n') {
			esc[0] = '\\';
			esc[1] = 'n';
			elen = 2;
		} else {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[ch >> 4];
			esc[3] = hex[ch & 0xf];
			elen = 4;
		}
		if ((r = buf_append(b, esc, elen)) < 0)
			return r;
		start = i + 1;
	}
	return buf_append(b, s + start, n - start);
}

/* Write one record built from fmt; dropped only when memory runs out. */
void
log_vmsg(const struct logger *lg, enum log_comp c, enum log_level l,
	const char *fmt, va_list ap)
{
	struct buf text = BUF_INIT, line = BUF_INIT;
	char ts[128];
	int saved = errno;

	if (!log_enabled(lg, c, l))
		return;
	log_stamp(lg->utc, ts, sizeof(ts));
	if (buf_vprintf(&text, fmt, ap) == 0 &&
	    buf_printf(&line, "%s %s %s: ", ts, comp_names[c],
		level_names[l]) == 0 &&
	    log_escape(&line, text.data ? text.data : "", text.len) == 0 &&
	    buf_putc(&line, '\n') == 0) {
		struct iovec iov = { line.data, line.len };

		(void)fdio_writev(lg->fd, &iov, 1);
	} else {
		/* Out of memory: still say so, in one record, without
		   allocating. */
		static const char lost[] = ": record lost (out of memory)\n";
		struct iovec iov[6] = {
			{ ts, strlen(ts) }, { (char *)" ", 1 },
			{ (char *)comp_names[c], strlen(comp_names[c]) },
			{ (char *)" ", 1 },
			{ (char *)level_names[l], strlen(level_names[l]) },
			{ (char *)lost, sizeof(lost) - 1 },
		};

		(void)fdio_writev(lg->fd, iov, 6);
	}
	buf_free(&text);
	buf_free(&line);
	errno = saved;
}

/* printf-style front end of log_vmsg. */
void
log_msg(const struct logger *lg, enum log_comp c, enum log_level l,
	const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lg, c, l, fmt, ap);
	va_end(ap);
}

/* Can value be written without quotes? */
static bool
log_kv_bare(const char *v)
{
	if (*v == '\0')
		return false;
	for (; *v; v++) {
		unsigned char ch = (unsigned char)*v;

		if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ||
		    ch == '=')
			return false;
	}
	return true;
}

/* Append " key=value" with the quoting rules of log.h. */
int
log_kv(struct buf *b, const char *key, const char *value)
{
	static const char hex[] = "0123456789abcdef";
	int r;

	if ((r = buf_printf(b, " %s=", key)) < 0)
		return r;
	if (value == NULL)
		return buf_putc(b, '-');
	if (log_kv_bare(value))
		return buf_puts(b, value);
	if ((r = buf_putc(b, '"')) < 0)
		return r;
	for (const char *p = value; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		char esc[4] = { '\\', (char)ch, 0, 0 };
		size_t elen = 2;

		if (text_is_ctl(ch)) {
			esc[1] = 'x';
			esc[2] = hex[ch >> 4];
			esc[3] = hex[ch & 0xf];
			elen = 4;
		} else if (ch != '"' && ch != '\\') {
			esc[0] = (char)ch;
			elen = 1;
		}
		if ((r = buf_append(b, esc, elen)) < 0)
			return r;
	}
	return buf_putc(b, '"');
}

/* Append " key=value" with a printf-formatted value. */
int
log_kvf(struct buf *b, const char *key, const char *fmt, ...)
{
	struct buf v = BUF_INIT;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&v, fmt, ap);
	va_end(ap);
	if (r == 0)
		r = log_kv(b, key, v.data ? v.data : "");
	buf_free(&v);
	return r;
}
