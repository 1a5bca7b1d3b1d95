#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum berth_log_level min_level = BERTH_LOG_INFO;

void berth_log_set_level(enum berth_log_level level)
{
	min_level = level;
}

int berth_log_enabled(enum berth_log_level level)
{
	return level >= min_level;
}

void berth_log(enum berth_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	char line[2048];
	char when[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "time=%s.%03ldZ level=%s msg=\"", when, ts.tv_nsec / 1000000,
		     names[level]);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 3;
	line[n++] = '"';
	line[n++] = '\n';
	/* One fwrite per line keeps lines whole when threads log at once. */
	fwrite(line, 1, (size_t)n, stderr);
}
