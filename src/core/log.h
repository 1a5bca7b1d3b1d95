/*
 * Leveled logging to stderr, one line per call, safe from any thread.
 * Two formats, as Distribution's log.formatter: text (key=value) and json (one object a line).
 * Configured once at start-up (berth_log_setup) before threads start.
 */
#ifndef BERTH_CORE_LOG_H
#define BERTH_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

enum berth_log_level { BERTH_LOG_DEBUG, BERTH_LOG_INFO, BERTH_LOG_WARN, BERTH_LOG_ERROR };
enum berth_log_style { BERTH_LOG_TEXT, BERTH_LOG_JSON };

/* Static fields added to every line (log.fields). Strings are copied. */
void berth_log_setup(enum berth_log_level level, enum berth_log_style style,
		     const char *const *field_keys, const char *const *field_values, size_t n_fields);
void berth_log_set_level(enum berth_log_level level);
int berth_log_enabled(enum berth_log_level level);
void berth_log(enum berth_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One access-log line. Strings may be NULL. */
struct berth_access_entry {
	const char *request_id;
	const char *method;
	const char *uri;
	unsigned status;
	uint64_t bytes_in;
	uint64_t bytes_out;
	double duration_ms;
	const char *remote;
	const char *user_agent;
	const char *user;
};
void berth_log_access(const struct berth_access_entry *e);

#define berth_debug(...) berth_log(BERTH_LOG_DEBUG, __VA_ARGS__)
#define berth_info(...) berth_log(BERTH_LOG_INFO, __VA_ARGS__)
#define berth_warn(...) berth_log(BERTH_LOG_WARN, __VA_ARGS__)
#define berth_error(...) berth_log(BERTH_LOG_ERROR, __VA_ARGS__)

#endif
