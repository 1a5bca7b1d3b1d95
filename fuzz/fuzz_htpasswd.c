/*
 * The htpasswd file parser and the Basic check (src/auth/htpasswd.c, auth.c). The input is the
 * whole htpasswd file, handed over as a file (a memfd, /proc/self/fd/N, as fuzz_config.c does),
 * loaded by the real loader: berth_htpasswd_open, and berth_auth_new with auth.htpasswd.
 *
 * bcrypt is slow by design, so each input runs at most three verifications, and only against
 * hashes of cost 5 or less (make-seeds.py's hashes are cost 4 and 5, password "fuzz"; a mutated
 * cost of 31 would take minutes).
 *
 * Properties: no crash or leak; the number of users equals a model of the format (lines split on
 * '\n', blank and '#' lines skipped, "user:hash" with a 60-character $2a$/$2b$/$2y$ hash, the last
 * entry of a user wins); a user whose hash is a known one is accepted with its password (and the
 * user name is reported), then answered from the cache; a wrong password and an unknown user are
 * refused; refusals carry the Basic challenge; a Bearer or malformed header is refused.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/auth_int.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "fuzz_common.h"

#define PASSWORD "fuzz"
#define MAX_COST 5

/* The seeds' hashes of PASSWORD (make-seeds.py HTPASSWD_HASHES). */
static const char *const known[] = {
	"$2y$04$CoZg6HJXBZ33eWEPjpOZQ.K5VQtqbJFPLgRFZ6xPXBX8teRZ8pPfu",
	"$2y$04$lYlOuwT5wlzoLEbmZRzU8.NZl2u.9iadGXvLt2mAhgEHGx5xxL/0G",
	"$2y$05$gOLjz0M326lNg/jma70gfulbBEYx67U4Pdhx1pp5n7zlufYumgRBu",
	"$2a$04$CoZg6HJXBZ33eWEPjpOZQ.K5VQtqbJFPLgRFZ6xPXBX8teRZ8pPfu",
	"$2b$04$lYlOuwT5wlzoLEbmZRzU8.NZl2u.9iadGXvLt2mAhgEHGx5xxL/0G",
};

static int fd = -1;
static char path[64];
static struct berth_config cfg; /* large: not on the stack */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	berth_log_setup(BERTH_LOG_ERROR, BERTH_LOG_TEXT, NULL, NULL, 0);
	fd = memfd_create("htpasswd", 0);
	if (fd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cfg.auth.kind = BERTH_AUTH_HTPASSWD;
	snprintf(cfg.auth.realm, sizeof(cfg.auth.realm), "fuzz \"realm\"");
	snprintf(cfg.auth.path, sizeof(cfg.auth.path), "%s", path);
	return 0;
}

/* ---- the model ---- */

struct entry {
	const char *name, *hash;
};

static char *trim(char *s)
{
	while (*s && strchr(" \t\r\v\f", *s))
		s++;
	size_t n = strlen(s);
	while (n && strchr(" \t\r\v\f", s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int bcrypt_syntax(const char *h)
{
	if (strlen(h) != 60 || strncmp(h, "$2", 2) || !strchr("aby", h[2]) || !h[2] || h[3] != '$' ||
	    h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$')
		return 0;
	for (const char *p = h + 7; *p; p++) {
		if (!strchr("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", *p))
			return 0;
	}
	return 1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* The users of text (modified in place), sorted by name, the last entry of a name kept. */
static size_t model(char *text, struct entry **out)
{
	size_t n = 0, cap = 16;
	struct entry *e = malloc(cap * sizeof(*e));
	if (!e)
		abort();
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *t = trim(line);
		char *colon = strchr(t, ':');
		if (*t == '#' || !colon || colon == t)
			continue;
		*colon = '\0';
		char *hash = trim(colon + 1);
		if (!bcrypt_syntax(hash))
			continue;
		size_t i;
		for (i = 0; i < n && strcmp(e[i].name, t); i++)
			;
		if (i == n) {
			if (n == cap && !(e = realloc(e, (cap *= 2) * sizeof(*e))))
				abort();
			n++;
		}
		e[i].name = t;
		e[i].hash = hash;
	}
	qsort(e, n, sizeof(*e), by_name);
	*out = e;
	return n;
}

static int cost(const char *hash)
{
	return (hash[4] - '0') * 10 + (hash[5] - '0');
}

static int is_known(const char *hash)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (!strcmp(hash, known[i]))
			return 1;
	}
	return 0;
}

/* ---- checks ---- */

static char *basic(const char *user, const char *password)
{
	char plain[512];
	int n = snprintf(plain, sizeof(plain), "%s:%s", user, password);
	char *b64 = berth_b64_encode(BERTH_B64_STD, (unsigned char *)plain, (size_t)n);
	char *h = malloc(strlen(b64) + 7);
	if (!h)
		abort();
	sprintf(h, "Basic %s", b64);
	free(b64);
	return h;
}

static int authorize(struct berth_auth *a, const char *header, char *user)
{
	char challenge[512];
	memset(challenge, 'x', sizeof(challenge));
	int rc = berth_auth_authorize(a, header, NULL, 0, challenge, sizeof(challenge), user, 256);
	FUZZ_CHECK(rc == 0 || rc == BERTH_EUNAUTHORIZED, "rc %d", rc);
	if (rc == 0)
		FUZZ_CHECK(challenge[0] == '\0', "challenge on success");
	else
		FUZZ_CHECK(!strcmp(challenge, "Basic realm=\"fuzz \\\"realm\\\"\""), "challenge %s", challenge);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char user[256];
	struct berth_htpasswd *h = NULL;
	struct berth_auth *a = NULL;

	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	char *text = fuzz_cstr(data, size);
	struct entry *users;
	size_t n = model(text, &users);

	FUZZ_CHECK(berth_htpasswd_open(&h, path) == 0 && h, "open: %s", berth_err_message(BERTH_ERROR));
	FUZZ_CHECK(berth_htpasswd_count(h) == n, "%zu users, the model has %zu", berth_htpasswd_count(h), n);
	FUZZ_CHECK(berth_auth_new(&a, &cfg) == 0 && a, "auth: %s", berth_err_message(BERTH_ERROR));

	/* A user with a known hash: accepted, then from the cache; refused with a wrong password. */
	const struct entry *k = NULL;
	for (size_t i = 0; !k && i < n; i++) {
		if (is_known(users[i].hash) && strlen(users[i].name) < 200)
			k = &users[i];
	}
	if (k) {
		uint64_t hits = berth_htpasswd_cache_hits(h);
		FUZZ_CHECK(berth_htpasswd_check(h, k->name, PASSWORD) == 0, "user \"%s\" refused", k->name);
		FUZZ_CHECK(berth_htpasswd_check(h, k->name, PASSWORD) == 0, "user \"%s\" refused twice", k->name);
		FUZZ_CHECK(berth_htpasswd_cache_hits(h) == hits + 1, "second check not from the cache");
		char *hdr = basic(k->name, PASSWORD "-wrong");
		FUZZ_CHECK(authorize(a, hdr, user) == BERTH_EUNAUTHORIZED && !user[0], "wrong password accepted");
		free(hdr);
	}
	/* An unknown user costs one bcrypt against the first user's hash: only when it is cheap. */
	if (n == 0 || cost(users[0].hash) <= MAX_COST) {
		int taken = 0;
		for (size_t i = 0; i < n; i++)
			taken |= !strcmp(users[i].name, "nobody");
		if (!taken)
			FUZZ_CHECK(berth_htpasswd_check(h, "nobody", PASSWORD) == BERTH_EUNAUTHORIZED,
				   "unknown user accepted");
	}
	/* Headers that never reach bcrypt. */
	static const char *const refused[] = { NULL, "", "Bearer abc.def.ghi", "Basic", "Basic !!!!",
					       "Basic OnBhc3M=", "Basic dXNlcg==", "Basic dXNlcjpwYXNz=" };
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		FUZZ_CHECK(authorize(a, refused[i], user) == BERTH_EUNAUTHORIZED, "header %zu accepted", i);

	berth_auth_free(a);
	berth_htpasswd_close(h);
	free(users);
	free(text);
	return 0;
}
