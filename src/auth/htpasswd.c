/*
 * The htpasswd file of Distribution's htpasswd auth: "user:hash" lines, bcrypt hashes only
 * ($2y$, $2a$, $2b$), verified with libcrypt's crypt_r. Lines with other hash kinds are
 * ignored with a warning, as are lines without a ':'; blank lines and lines starting with '#'
 * are skipped. A user listed twice keeps the last entry (as Distribution's map does).
 *
 * Changes are picked up without a restart: at most once a second a request stats the file and,
 * when its inode, size or modification time moved, reads it again. A file that vanishes or
 * can no longer be read leaves no users at all (every request is refused with 401) until it is
 * back: access can only be removed by a failure, never widened. Each such change is logged once.
 *
 * bcrypt costs tens of milliseconds by design, and a client sends the same credentials with
 * every request of a push, so successful verifications are remembered for a minute in a small
 * cache keyed by HMAC-SHA-256(random process key, user NUL password): the cache holds nothing
 * that would help recover a password. Any reload of the file empties it.
 */
#include "auth/auth_int.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/map.h"
#include "core/util.h"
#include "core/vec.h"

#define CHECK_INTERVAL_NS 1000000000ull
#define FILE_MAX (16u << 20)
#define BCRYPT_LEN 60
#define CACHE_SLOTS 256
#define CACHE_TTL_NS (60ull * 1000000000ull)
/* Distribution provisions a missing file with this user and a random password. */
#define DEFAULT_USER "docker"
#define DEFAULT_COST 10

struct user {
	char *name;
	char *hash;
	size_t line; /* orders duplicates: the last one wins */
};

/* A credential verified lately: HMAC-SHA-256 of user and password, until when it holds. */
struct cache_ent {
	unsigned char key[32];
	uint64_t expires_ns;
};

enum file_state { FILE_UNKNOWN, FILE_LOADED, FILE_MISSING, FILE_UNREADABLE };

struct berth_htpasswd {
	char *path;
	pthread_mutex_t lock; /* guards everything below */
	struct user *users;   /* sorted by name */
	size_t n_users;
	uint64_t generation; /* bumped at every reload (which empties the cache) */
	uint64_t checked_ns; /* when the file was last stat'ed; 0 = look now */
	enum file_state state;
	struct stat loaded;  /* identity of the file the users came from (FILE_LOADED) */
	unsigned char cache_key[32];
	struct berth_map cache; /* struct cache_ent, at most CACHE_SLOTS */
	uint64_t hits;
};

/* ---- parsing ---- */

/* bcrypt's modular crypt format: $2a$ / $2b$ / $2y$, two cost digits, '$', 53 base64 chars. */
static int is_bcrypt(const char *h)
{
	static const char alphabet[] = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	if (strlen(h) != BCRYPT_LEN || h[0] != '$' || h[1] != '2')
		return 0;
	if ((h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$')
		return 0;
	if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$')
		return 0;
	return strspn(h + 7, alphabet) == BCRYPT_LEN - 7;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\v' || *s == '\f')
		s++;
	size_t n = strlen(s);
	while (n > 0 && strchr(" \t\r\v\f", s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int by_name_then_line(const void *a, const void *b)
{
	const struct user *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

static void free_users(struct user *users, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(users[i].name);
		free(users[i].hash);
	}
	free(users);
}

/* Sorts by name and keeps the last entry of each name. */
static size_t sort_unique(struct user *users, size_t n)
{
	size_t out = 0;
	qsort(users, n, sizeof(*users), by_name_then_line);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(users[i].name, users[i + 1].name) == 0) {
			free(users[i].name);
			free(users[i].hash);
			continue;
		}
		users[out++] = users[i];
	}
	return out;
}

/* Parses text (NUL-terminated, modified in place) into a sorted user table. */
static void parse(const char *path, char *text, struct user **out, size_t *n_out)
{
	struct user *users = NULL;
	size_t n = 0, cap = 0, line = 0;
	for (char *p = text, *next; p; p = next) {
		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		line++;
		char *t = trim(p);
		if (*t == '\0' || *t == '#')
			continue;
		char *colon = strchr(t, ':');
		if (!colon || colon == t) {
			berth_warn("htpasswd %s: line %zu is not \"user:hash\", ignored", path, line);
			continue;
		}
		*colon = '\0';
		char *hash = trim(colon + 1);
		if (!is_bcrypt(hash)) {
			berth_warn("htpasswd %s: line %zu: user \"%s\" has no bcrypt hash "
				   "(only $2y$, $2a$ and $2b$ are supported), ignored", path, line, t);
			continue;
		}
		BERTH_VEC_GROW(users, n + 1, cap);
		users[n].name = berth_strdup(t);
		users[n].hash = berth_strdup(hash);
		users[n].line = line;
		n++;
	}
	*n_out = n ? sort_unique(users, n) : 0;
	*out = users;
}

/* ---- loading and change detection ---- */

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* A failure whose reason is the operating system's, set as the thread's (core/err.h):
 * BERTH_ENOTFOUND for a missing file, BERTH_EEXISTS for one that is there, BERTH_ERROR
 * otherwise. */
static int os_failure(int os_errno)
{
	int code = os_errno == ENOENT ? BERTH_ENOTFOUND : os_errno == EEXIST ? BERTH_EEXISTS : BERTH_ERROR;
	return berth_err_set_os(code, os_errno);
}

/* Reads the whole file into a NUL-terminated heap buffer; st receives its identity.
 * 0, or os_failure's code. */
static int read_file(char **text, struct stat *st, const char *path)
{
	int err = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return os_failure(errno);
	/* fstat before reading: a write that lands after it changes the identity, so the next
	 * check reads the file again even if this read caught it half-written. */
	if (fstat(fd, st) < 0)
		err = errno;
	else if (S_ISDIR(st->st_mode))
		err = EISDIR;
	else if (!S_ISREG(st->st_mode))
		err = EINVAL;
	else if (st->st_size > FILE_MAX)
		err = EFBIG;
	if (err)
		goto out_close;
	size_t cap = (size_t)st->st_size + 1, len = 0;
	char *buf = berth_malloc(cap + 1);
	/* Up to one byte more than fstat said: a file that grew meanwhile is cut short, and the
	 * next check sees its new size. */
	while (len < cap) {
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno;
			free(buf);
			goto out_close;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	*text = buf;
out_close:
	close(fd);
	return err ? os_failure(err) : 0;
}

static void clear_cache(struct berth_htpasswd *h)
{
	if (h->cache.slots)
		OPENSSL_cleanse(h->cache.slots, h->cache.cap * h->cache.entry_size);
	berth_map_release(&h->cache);
}

static void replace_users(struct berth_htpasswd *h, struct user *users, size_t n)
{
	free_users(h->users, h->n_users);
	h->users = users;
	h->n_users = n;
	h->generation++;
	clear_cache(h);
}

/* The file is gone or unreadable: no users until it is back. */
static void set_unavailable(struct berth_htpasswd *h, enum file_state state, int err)
{
	if (h->state != state && err == EISDIR)
		/* Debian's /etc/docker/registry/config.yml names its directory: Distribution
		 * then answers every request 400 and says why only per request. */
		berth_error("htpasswd %s is a directory, not a file: refusing every request until "
			    "auth.htpasswd.path names a file (berth creates it, with one user, when "
			    "it is missing)", h->path);
	else if (h->state != state)
		berth_error("htpasswd %s %s (%s): refusing every request until it can be read", h->path,
			    state == FILE_MISSING ? "is missing" : "cannot be read", strerror(err));
	replace_users(h, NULL, 0);
	h->state = state;
}

static void reload(struct berth_htpasswd *h)
{
	char *text = NULL;
	struct stat st;
	int rc = read_file(&text, &st, h->path);
	if (rc < 0) {
		const struct berth_failure *f = berth_err_last();
		int os_errno = f ? f->os_errno : 0;
		berth_err_clear();
		set_unavailable(h, rc == BERTH_ENOTFOUND ? FILE_MISSING : FILE_UNREADABLE, os_errno);
		return;
	}
	struct user *users;
	size_t n;
	parse(h->path, text, &users, &n);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	replace_users(h, users, n);
	if (h->state == FILE_LOADED)
		berth_info("htpasswd %s changed: %zu users", h->path, n);
	else
		berth_info("htpasswd %s: %zu users", h->path, n);
	h->state = FILE_LOADED;
	h->loaded = st;
}

/* Called with the lock held: looks at the file if a second has passed since the last look. */
static void refresh(struct berth_htpasswd *h)
{
	uint64_t now = berth_now_ns();
	struct stat st;
	if (h->checked_ns && now - h->checked_ns < CHECK_INTERVAL_NS)
		return;
	h->checked_ns = now ? now : 1;
	if (stat(h->path, &st) < 0) {
		set_unavailable(h, errno == ENOENT ? FILE_MISSING : FILE_UNREADABLE, errno);
		return;
	}
	if (h->state == FILE_LOADED && same_file(&h->loaded, &st))
		return;
	reload(h);
}

/* ---- creating a missing file, as Distribution does ---- */

static int make_parents(const char *path)
{
	char *dir = berth_strdup(path);
	int rc = 0;
	for (char *p = dir + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			rc = BERTH_ERROR;
		*p = '/';
		if (rc)
			break;
	}
	free(dir);
	return rc;
}

/* Creates path (mode 0600; it must not exist yet) holding text. 0, or os_failure's code
 * (BERTH_EEXISTS: someone made it first). */
static int write_new_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return os_failure(errno);
	size_t len = strlen(text);
	int err = write(fd, text, len) == (ssize_t)len ? 0 : errno ? errno : EIO;
	if (close(fd) < 0 && !err)
		err = errno;
	if (err)
		unlink(path);
	return err ? os_failure(err) : 0;
}

/* A bcrypt hash of password at DEFAULT_COST into out. */
static int bcrypt_hash(const char *password, char *out, size_t cap)
{
	unsigned char rbytes[16];
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	int rc = BERTH_ERROR;
	if (RAND_bytes(rbytes, sizeof(rbytes)) != 1 ||
	    !crypt_gensalt_rn("$2y$", DEFAULT_COST, (const char *)rbytes, sizeof(rbytes), salt, sizeof(salt)))
		return BERTH_ERROR;
	struct crypt_data *cd = berth_calloc(1, sizeof(*cd));
	const char *hash = crypt_r(password, salt, cd);
	if (hash && is_bcrypt(hash) && strlen(hash) < cap) {
		memcpy(out, hash, strlen(hash) + 1);
		rc = 0;
	}
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return rc;
}

static int create_default(const char *path)
{
	unsigned char secret[32];
	char hash[BCRYPT_LEN + 1];
	int rc = BERTH_ERROR;
	if (RAND_bytes(secret, sizeof(secret)) != 1) {
		berth_err_set(BERTH_ERROR, "auth.htpasswd: no randomness to create %s", path);
		return BERTH_ERROR;
	}
	char *password = berth_b64_encode(BERTH_B64_URL, secret, sizeof(secret));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (bcrypt_hash(password, hash, sizeof(hash)) < 0) {
		berth_err_set(BERTH_ERROR, "auth.htpasswd: cannot hash a password for %s", path);
		goto out_password;
	}
	if (make_parents(path) < 0) {
		berth_err_set(BERTH_ERROR, "auth.htpasswd: cannot create the directory of %s: %s", path, strerror(errno));
		goto out_password;
	}
	char *line = berth_asprintf("%s:%s\n", DEFAULT_USER, hash);
	int wrc = write_new_file(path, line);
	free(line);
	if (wrc == BERTH_EEXISTS) {
		berth_err_clear();
	} else if (wrc < 0) {
		berth_err_set(BERTH_ERROR, "auth.htpasswd: cannot create %s: %s", path, berth_err_reason(wrc));
		goto out_password;
	}
	/* BERTH_EEXISTS: someone else made it meanwhile, and theirs is used. Otherwise this is the
	 * one place a secret is logged: there is no other way to hand it over (Distribution does
	 * the same). */
	if (wrc == 0)
		berth_warn("htpasswd %s is missing: created it with user \"%s\", password \"%s\"", path,
			   DEFAULT_USER, password);
	rc = 0;
out_password:
	berth_secret_free(password);
	return rc;
}

/* ---- the public face ---- */

int berth_htpasswd_open(struct berth_htpasswd **out, const char *path)
{
	*out = NULL;
	if (!path || !*path) {
		berth_err_set(BERTH_ERROR, "auth.htpasswd.path must be set");
		return BERTH_ERROR;
	}
	if (access(path, F_OK) < 0) {
		if (errno != ENOENT) {
			berth_err_set(BERTH_ERROR, "auth.htpasswd: %s: %s", path, strerror(errno));
			return BERTH_ERROR;
		}
		if (create_default(path) < 0)
			return BERTH_ERROR;
	}
	struct berth_htpasswd *h = berth_calloc(1, sizeof(*h));
	h->path = berth_strdup(path);
	h->cache = (struct berth_map)BERTH_MAP_INIT(sizeof(struct cache_ent), 32);
	pthread_mutex_init(&h->lock, NULL);
	if (RAND_bytes(h->cache_key, sizeof(h->cache_key)) != 1) {
		berth_err_set(BERTH_ERROR, "auth.htpasswd: no randomness for the credential cache");
		berth_htpasswd_close(h);
		return BERTH_ERROR;
	}
	pthread_mutex_lock(&h->lock);
	refresh(h);
	pthread_mutex_unlock(&h->lock);
	*out = h;
	return 0;
}

void berth_htpasswd_close(struct berth_htpasswd *h)
{
	if (!h)
		return;
	free_users(h->users, h->n_users);
	clear_cache(h);
	OPENSSL_cleanse(h->cache_key, sizeof(h->cache_key));
	pthread_mutex_destroy(&h->lock);
	free(h->path);
	free(h);
}

static const struct user *find_user(const struct berth_htpasswd *h, const char *name)
{
	size_t lo = 0, hi = h->n_users;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, h->users[mid].name);
		if (c == 0)
			return &h->users[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void cache_key(const struct berth_htpasswd *h, const char *user, const char *password,
		      unsigned char out[32])
{
	size_t ulen = strlen(user), plen = strlen(password);
	unsigned char *msg = berth_malloc(ulen + 1 + plen);
	unsigned int outlen = 32;
	memcpy(msg, user, ulen + 1); /* with its NUL: "ab"+"c" and "a"+"bc" differ */
	memcpy(msg + ulen + 1, password, plen);
	HMAC(EVP_sha256(), h->cache_key, sizeof(h->cache_key), msg, ulen + 1 + plen, out, &outlen);
	OPENSSL_cleanse(msg, ulen + 1 + plen);
	free(msg);
}

/* With the lock held: 1 if these credentials were verified recently under this file. */
static int cache_hit(struct berth_htpasswd *h, const unsigned char key[32], uint64_t now)
{
	const struct cache_ent *e = berth_map_find(&h->cache, key);
	return e && e->expires_ns > now;
}

/* With the lock held and the cache full: drops an expired entry, or the one expiring first. */
static void cache_evict(struct berth_htpasswd *h, uint64_t now)
{
	const struct cache_ent *e, *victim = NULL;
	for (size_t i = 0; (e = berth_map_next(&h->cache, &i));) {
		if (!victim || e->expires_ns < victim->expires_ns)
			victim = e;
		if (victim->expires_ns <= now)
			break;
	}
	unsigned char key[32];
	memcpy(key, victim->key, sizeof(key));
	berth_map_remove(&h->cache, key);
}

/* With the lock held: remembers a success for CACHE_TTL_NS. */
static void cache_put(struct berth_htpasswd *h, const unsigned char key[32], uint64_t now)
{
	if (h->cache.n >= CACHE_SLOTS && !berth_map_find(&h->cache, key))
		cache_evict(h, now);
	struct cache_ent *e = berth_map_add(&h->cache, key, NULL);
	e->expires_ns = now + CACHE_TTL_NS;
}

static int bcrypt_matches(const char *password, const char *hash)
{
	struct crypt_data *cd = berth_calloc(1, sizeof(*cd));
	const char *out = crypt_r(password, hash, cd);
	int ok = out && strlen(out) == strlen(hash) && CRYPTO_memcmp(out, hash, strlen(hash)) == 0;
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return ok;
}

int berth_htpasswd_check(struct berth_htpasswd *h, const char *user, const char *password)
{
	unsigned char key[32];
	char hash[BCRYPT_LEN + 1] = "";
	int known = 0;
	cache_key(h, user, password, key);

	pthread_mutex_lock(&h->lock);
	refresh(h);
	uint64_t now = berth_now_ns();
	uint64_t generation = h->generation;
	if (cache_hit(h, key, now)) {
		h->hits++;
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	const struct user *u = find_user(h, user);
	/* An unknown user still costs one bcrypt (against another user's hash), so response times
	 * don't tell which user names exist. */
	if (u || h->n_users > 0) {
		snprintf(hash, sizeof(hash), "%s", u ? u->hash : h->users[0].hash);
		known = u != NULL;
	}
	pthread_mutex_unlock(&h->lock);

	/* bcrypt runs unlocked: it is slow, and requests must not queue behind each other. */
	int ok = hash[0] && bcrypt_matches(password, hash) && known;
	if (ok) {
		pthread_mutex_lock(&h->lock);
		if (h->generation == generation)
			cache_put(h, key, berth_now_ns());
		pthread_mutex_unlock(&h->lock);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return ok ? 0 : BERTH_EUNAUTHORIZED;
}

size_t berth_htpasswd_count(struct berth_htpasswd *h)
{
	pthread_mutex_lock(&h->lock);
	refresh(h);
	size_t n = h->n_users;
	pthread_mutex_unlock(&h->lock);
	return n;
}

void berth_htpasswd_recheck(struct berth_htpasswd *h)
{
	pthread_mutex_lock(&h->lock);
	h->checked_ns = 0;
	pthread_mutex_unlock(&h->lock);
}

uint64_t berth_htpasswd_cache_hits(struct berth_htpasswd *h)
{
	pthread_mutex_lock(&h->lock);
	uint64_t n = h->hits;
	pthread_mutex_unlock(&h->lock);
	return n;
}

/* ---- HTTP Basic ---- */

void berth_secret_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

int berth_basic_parse(const char *header, char **user, char **password)
{
	unsigned char *raw;
	size_t len;
	*user = *password = NULL;
	if (strncasecmp(header, "Basic ", 6) != 0)
		return BERTH_EINVALID;
	const char *b64 = header + 6;
	if (berth_b64_decode(BERTH_B64_STD, b64, strlen(b64), &raw, &len) < 0)
		return BERTH_EINVALID;
	const unsigned char *colon = memchr(raw, ':', len);
	int rc = BERTH_EINVALID;
	/* A NUL would cut the password short for crypt(): "secret\0junk" must not pass as "secret". */
	if (colon && colon != raw && !memchr(raw, '\0', len)) {
		*user = berth_strndup((const char *)raw, (size_t)(colon - raw));
		*password = berth_strndup((const char *)colon + 1, len - (size_t)(colon - raw) - 1);
		rc = 0;
	}
	OPENSSL_cleanse(raw, len);
	free(raw);
	return rc;
}
