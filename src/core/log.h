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
/* log.reportcaller: lines logged through the macros below also name their source file, line
 * and function ("file" and "func", as Distribution's logrus does). Set before threads start. */
void berth_log_set_report_caller(int on);
/* berth_log with the caller's place (the macros pass it). */
void berth_log_at(enum berth_log_level level, const char *file, int line, const char *func, const char *fmt,
		  ...) __attribute__((format(printf, 5, 6)));

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

#define berth_debug(...) berth_log_at(BERTH_LOG_DEBUG, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define berth_info(...) berth_log_at(BERTH_LOG_INFO, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define berth_warn(...) berth_log_at(BERTH_LOG_WARN, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define berth_error(...) berth_log_at(BERTH_LOG_ERROR, __FILE__, __LINE__, __func__, __VA_ARGS__)

#endif
