/* TTL expiry of cached content (proxy/scheduler.h). */
#include "proxy/scheduler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/map.h"
#include "core/util.h"
#include "storage/storage.h"

#define SAVE_EVERY_MS 5000 /* Distribution's indexSaveFrequency */
#define TICK_MS 1000
#define STATE_MAX (256u << 20)

struct entry {
	char *key; /* "<name>@<digest>", owned by the map */
	int64_t expiry_ms;
	int type;
};

struct berth_scheduler {
	struct berth_storage_driver *driver;
	berth_expire_cb on_expire;
	void *payload;
	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t cond;
	struct berth_map entries;
	struct berth_map expired; /* entries expired here since the state was last written: not
				   * taken back from the stored state (struct entry, type unused) */
	int dirty;
	int stopping;
	pthread_t thread;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int berth_scheduler_parse_time(int64_t *ms_out, const char *s)
{
	struct tm tm = { 0 };
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
		return BERTH_EINVALID;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	const char *p = s + n;
	int64_t frac_ms = 0;
	if (*p == '.') {
		int64_t scale = 100;
		for (p++; *p >= '0' && *p <= '9'; p++) {
			frac_ms += (*p - '0') * scale;
			scale /= 10;
		}
	}
	int64_t offset_s = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm, k = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &k) != 2 || k != 5)
			return BERTH_EINVALID;
		offset_s = (hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return BERTH_EINVALID;
	}
	if (*p)
		return BERTH_EINVALID;
	time_t t = timegm(&tm);
	*ms_out = ((int64_t)t - offset_s) * 1000 + frac_ms;
	return 0;
}

void berth_scheduler_format_time(char *out, size_t cap, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char frac[8] = "";
	gmtime_r(&t, &tm);
	if (ms % 1000) { /* Go's RFC3339Nano: trailing zeros of the fraction dropped */
		int f = (int)(ms % 1000), digits = 3;
		for (; f % 10 == 0; f /= 10)
			digits--;
		snprintf(frac, sizeof(frac), ".%0*d", digits, f);
	}
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static void put_entry(struct berth_scheduler *s, const char *key, int64_t expiry_ms, int type)
{
	struct entry *e = berth_map_add(&s->entries, key, NULL);
	e->expiry_ms = expiry_ms;
	e->type = type;
	s->dirty = 1;
}

/* One entry of a stored state: 0, or BERTH_EINVALID for one without a valid ExpiryData. */
static int stored_entry(const char *key, json_t *v, int64_t *expiry, int *type)
{
	json_t *t = json_object_get(v, "EntryType");
	const char *when = json_string_value(json_object_get(v, "ExpiryData"));
	if (!when || berth_scheduler_parse_time(expiry, when) < 0 || !strchr(key, '@'))
		return BERTH_EINVALID;
	*type = json_is_integer(t) ? (int)json_integer_value(t) : 0;
	return 0;
}

/* The stored state: 0 and the document (an empty one when there is no file yet); BERTH_EINVALID
 * when it does not parse, or a storage error, with its reason (berth_err_set). */
static int load_state(struct berth_scheduler *s, json_t **out)
{
	char *data = NULL;
	size_t len = 0;
	int rc = berth_storage_get_content(&data, &len, s->driver, BERTH_SCHEDULER_STATE_PATH, STATE_MAX);
	if (rc == BERTH_ENOTFOUND) {
		*out = json_object();
		return 0;
	}
	if (rc < 0)
		return berth_err_set(rc, "cannot read %s: %s", BERTH_SCHEDULER_STATE_PATH, berth_err_reason(rc));
	json_error_t jerr;
	json_t *doc = json_loadb(data, len, 0, &jerr);
	free(data);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return berth_err_set(BERTH_EINVALID, "%s does not parse: %s", BERTH_SCHEDULER_STATE_PATH,
				     doc ? "not an object" : jerr.text);
	}
	*out = doc;
	return 0;
}

static int read_state(struct berth_scheduler *s)
{
	json_t *doc = NULL;
	int rc = load_state(s, &doc);
	if (rc < 0)
		return rc;
	const char *key;
	json_t *v;
	json_object_foreach(doc, key, v) {
		int64_t expiry;
		int type;
		if (stored_entry(key, v, &expiry, &type) < 0) {
			berth_warn("%s: entry '%s' skipped: no valid ExpiryData", BERTH_SCHEDULER_STATE_PATH, key);
			continue;
		}
		put_entry(s, key, expiry, type);
	}
	json_decref(doc);
	s->dirty = 0;
	return 0;
}

/*
 * Takes in the stored state, which other instances on the same storage write too (several
 * berths behind one load balancer): entries not known here are adopted (this instance then
 * expires them too: removing twice is harmless, and an instance gone leaves none behind), a
 * later expiry of a known one is taken (renewed elsewhere), entries expired here stay out.
 * 1 when the stored state differs from the merged one (it must be written). Lock held.
 */
static int merge_state(struct berth_scheduler *s, json_t *doc)
{
	const char *key;
	json_t *v;
	size_t same = 0;
	int differs = 0;
	json_object_foreach(doc, key, v) {
		int64_t expiry;
		int type;
		if (stored_entry(key, v, &expiry, &type) < 0) {
			differs = 1;
			continue;
		}
		struct entry *e = berth_map_find(&s->entries, key);
		if (!e) {
			struct entry *gone = berth_map_find(&s->expired, key);
			if (gone && gone->expiry_ms >= expiry) {
				differs = 1;
				continue;
			}
			e = berth_map_add(&s->entries, key, NULL);
			e->expiry_ms = expiry;
			e->type = type;
		} else if (expiry > e->expiry_ms) {
			e->expiry_ms = expiry;
		}
		if (e->expiry_ms == expiry)
			same++;
		else
			differs = 1;
	}
	return differs || same != s->entries.n;
}

/* The state as JSON; called with the lock held. */
static char *render_state(struct berth_scheduler *s, size_t *len)
{
	json_t *doc = json_object();
	struct entry *e;
	for (size_t i = 0; (e = berth_map_next(&s->entries, &i));) {
		char when[48];
		berth_scheduler_format_time(when, sizeof(when), e->expiry_ms);
		json_object_set_new(doc, e->key, json_pack("{s:s, s:s, s:i}", "Key", e->key, "ExpiryData", when,
							   "EntryType", e->type));
	}
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(doc);
	*len = strlen(text);
	return text;
}

/* Merges the stored state in (merge_state) and writes the result if it differs from it or
 * changed here. Called without the lock. */
static void save(struct berth_scheduler *s)
{
	json_t *stored = NULL;
	int rc = load_state(s, &stored);
	if (rc < 0 && rc != BERTH_EINVALID) /* unreadable now: written as known here, merged next time */
		berth_warn("%s", berth_err_reason(rc));
	pthread_mutex_lock(&s->lock);
	if (rc == BERTH_EINVALID || (stored && merge_state(s, stored)))
		s->dirty = 1;
	json_decref(stored);
	if (!s->dirty) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	size_t len;
	char *text = render_state(s, &len);
	s->dirty = 0;
	pthread_mutex_unlock(&s->lock);
	rc = berth_storage_put_content(s->driver, BERTH_SCHEDULER_STATE_PATH, text, len);
	free(text);
	if (rc == 0) {
		pthread_mutex_lock(&s->lock);
		berth_map_release(&s->expired); /* out of the stored state now */
		pthread_mutex_unlock(&s->lock);
	} else {
		berth_error("cannot write %s: %s", BERTH_SCHEDULER_STATE_PATH, berth_err_reason(rc));
		pthread_mutex_lock(&s->lock);
		s->dirty = 1; /* tried again at the next save */
		pthread_mutex_unlock(&s->lock);
	}
}

struct due {
	char *key;
	int type;
};

/* Takes the entries due now out of the map and expires them. */
static void expire_due(struct berth_scheduler *s)
{
	struct due *due = NULL;
	size_t n = 0, cap = 0;
	int64_t now = now_ms();
	pthread_mutex_lock(&s->lock);
	struct entry *e;
	for (size_t i = 0; (e = berth_map_next(&s->entries, &i));) {
		if (e->expiry_ms > now)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			due = berth_realloc(due, cap * sizeof(*due));
		}
		due[n].key = berth_strdup(e->key);
		due[n++].type = e->type;
	}
	for (size_t i = 0; i < n; i++) {
		struct entry *gone = berth_map_add(&s->expired, due[i].key, NULL);
		gone->expiry_ms = ((struct entry *)berth_map_find(&s->entries, due[i].key))->expiry_ms;
		berth_map_remove(&s->entries, due[i].key);
	}
	if (n)
		s->dirty = 1;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		char *at = strrchr(due[i].key, '@');
		*at = '\0';
		int rc = s->on_expire((enum berth_sched_type)due[i].type, due[i].key, at + 1, s->payload);
		if (rc < 0 && rc != BERTH_ENOTFOUND)
			berth_error("cannot expire %s@%s: %s", due[i].key, at + 1, berth_err_reason(rc));
		else
			berth_info("expired cached %s %s@%s", due[i].type == BERTH_SCHED_MANIFEST ? "manifest" : "blob",
				   due[i].key, at + 1);
		free(due[i].key);
	}
	free(due);
}

static void *run(void *arg)
{
	struct berth_scheduler *s = arg;
	int64_t last_save = now_ms();
	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += TICK_MS / 1000;
		pthread_cond_timedwait(&s->cond, &s->lock, &until);
		if (s->stopping)
			break;
		pthread_mutex_unlock(&s->lock);
		expire_due(s);
		if (now_ms() - last_save >= SAVE_EVERY_MS) {
			save(s);
			last_save = now_ms();
		}
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int berth_scheduler_start(struct berth_scheduler **out, struct berth_storage_driver *driver,
			  berth_expire_cb on_expire, void *payload)
{
	struct berth_scheduler *s = berth_calloc(1, sizeof(*s));
	s->driver = driver;
	s->on_expire = on_expire;
	s->payload = payload;
	s->entries = (struct berth_map)BERTH_MAP_INIT(sizeof(struct entry), 0);
	s->expired = (struct berth_map)BERTH_MAP_INIT(sizeof(struct entry), 0);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	int rc = read_state(s);
	if (rc == 0 && pthread_create(&s->thread, NULL, run, s) != 0)
		rc = berth_err_set(BERTH_ERROR, "cannot start the expiry thread");
	if (rc < 0) {
		berth_map_release(&s->entries);
		berth_map_release(&s->expired);
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return rc;
	}
	pthread_setname_np(s->thread, "proxy-ttl");
	berth_info("cached content expiry: %zu entries from %s", s->entries.n, BERTH_SCHEDULER_STATE_PATH);
	*out = s;
	return 0;
}

void berth_scheduler_add(struct berth_scheduler *s, enum berth_sched_type type, const char *name,
			 const char *digest, int64_t ttl_ms)
{
	char *key = berth_asprintf("%s@%s", name, digest);
	pthread_mutex_lock(&s->lock);
	put_entry(s, key, now_ms() + ttl_ms, (int)type);
	pthread_mutex_unlock(&s->lock);
	free(key);
}

size_t berth_scheduler_count(struct berth_scheduler *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->entries.n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void berth_scheduler_stop(struct berth_scheduler *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	save(s);
	berth_map_release(&s->entries);
	berth_map_release(&s->expired);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
