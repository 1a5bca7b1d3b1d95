/* Leveled logging to stderr, one line per call, safe from any thread. */
#ifndef BERTH_CORE_LOG_H
#define BERTH_CORE_LOG_H

enum berth_log_level { BERTH_LOG_DEBUG, BERTH_LOG_INFO, BERTH_LOG_WARN, BERTH_LOG_ERROR };

void berth_log_set_level(enum berth_log_level level);
int berth_log_enabled(enum berth_log_level level);
void berth_log(enum berth_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define berth_debug(...) berth_log(BERTH_LOG_DEBUG, __VA_ARGS__)
#define berth_info(...) berth_log(BERTH_LOG_INFO, __VA_ARGS__)
#define berth_warn(...) berth_log(BERTH_LOG_WARN, __VA_ARGS__)
#define berth_error(...) berth_log(BERTH_LOG_ERROR, __VA_ARGS__)

#endif
