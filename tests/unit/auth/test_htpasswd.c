/*
 * htpasswd auth: base64, Basic header parsing, the bcrypt-only htpasswd file (fixture made with
 * Apache's htpasswd), reloading on change, the verification cache, the file Distribution
 * provisions when it is missing, and berth_auth_authorize with its Basic challenge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <crypt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/auth_int.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/berth-auth-test-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void fixture_path(char *out, size_t n, const char *name)
{
	/* __FILE__ is absolute under CMake: <src>/tests/unit/auth/test_htpasswd.c */
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", __FILE__);
	*strrchr(dir, '/') = '\0';
	int w = snprintf(out, n, "%s/../../fixtures/auth/%s", dir, name);
	assert_true(w > 0 && (size_t)w < n);
}

static const char *tmp_path(const char *name)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

/* Writes text to path through a temp file and rename (a new inode, as editors do). */
static void write_replace(const char *path, const char *text)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/* Rewrites path in place (same inode), as Apache's htpasswd does. */
static void write_in_place(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* A bcrypt hash at the cheapest cost, for speed. prefix is "$2a$", "$2b$" or "$2y$". */
static char *bcrypt(const char *prefix, const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	assert_non_null(cd);
	assert_non_null(crypt_gensalt_rn(prefix, 4, NULL, 0, salt, sizeof(salt)));
	const char *h = crypt_r(password, salt, cd);
	assert_non_null(h);
	assert_int_equal(strncmp(h, prefix, 4), 0);
	char *out = strdup(h);
	free(cd);
	return out;
}

/* ---- base64 ---- */

static void decodes(enum berth_b64 v, const char *in, const char *want, size_t want_len)
{
	unsigned char *out = NULL;
	size_t len = 0;
	assert_int_equal(berth_b64_decode(v, in, strlen(in), &out, &len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(out, want, want_len);
	free(out);
}

static void refuses(enum berth_b64 v, const char *in)
{
	unsigned char *out = NULL;
	size_t len = 0;
	assert_int_equal(berth_b64_decode(v, in, strlen(in), &out, &len), BERTH_EINVALID);
	assert_null(out);
}

static void test_b64(void **state)
{
	(void)state;
	/* RFC 4648 section 10 vectors. */
	static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *std[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	static const char *url[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		char *e = berth_b64_encode(BERTH_B64_STD, (const unsigned char *)plain[i], strlen(plain[i]));
		assert_string_equal(e, std[i]);
		free(e);
		e = berth_b64_encode(BERTH_B64_URL, (const unsigned char *)plain[i], strlen(plain[i]));
		assert_string_equal(e, url[i]);
		free(e);
		decodes(BERTH_B64_STD, std[i], plain[i], strlen(plain[i]));
		decodes(BERTH_B64_URL, url[i], plain[i], strlen(plain[i]));
		decodes(BERTH_B64_URL, std[i], plain[i], strlen(plain[i])); /* JOSE tolerates padding */
	}
	/* The two alphabets' last characters. */
	decodes(BERTH_B64_STD, "+/8=", "\xfb\xff", 2);
	decodes(BERTH_B64_URL, "-_8", "\xfb\xff", 2);
	refuses(BERTH_B64_STD, "-_8=");
	refuses(BERTH_B64_URL, "+/8");
	refuses(BERTH_B64_STD, "Zg");       /* standard base64 needs its padding */
	refuses(BERTH_B64_STD, "Zm9v!A==");  /* not in the alphabet */
	refuses(BERTH_B64_STD, "Zg==Zg=="); /* padding in the middle */
	refuses(BERTH_B64_URL, "Zm9vY");    /* one leftover character holds no byte */
	refuses(BERTH_B64_URL, "Zg=");      /* padded, but not to a whole quad */
	refuses(BERTH_B64_URL, "Z===");
	refuses(BERTH_B64_STD, "Zm9v Yg==");
}

/* ---- Basic header ---- */

static void basic_ok(const char *header, const char *user, const char *password)
{
	char *u = NULL, *p = NULL;
	assert_int_equal(berth_basic_parse(header, &u, &p), 0);
	assert_string_equal(u, user);
	assert_string_equal(p, password);
	berth_secret_free(u);
	berth_secret_free(p);
}

static void basic_bad(const char *header)
{
	char *u = NULL, *p = NULL;
	assert_int_equal(berth_basic_parse(header, &u, &p), BERTH_EINVALID);
	assert_null(u);
	assert_null(p);
}

static void test_basic_parse(void **state)
{
	(void)state;
	basic_ok("Basic YWxpY2U6c2VjcmV0", "alice", "secret");   /* alice:secret */
	basic_ok("basic YWxpY2U6c2VjcmV0", "alice", "secret");   /* scheme is case-insensitive */
	basic_ok("BASIC YWxpY2U6c2VjcmV0", "alice", "secret");
	basic_ok("Basic YTpiOmM=", "a", "b:c");                   /* a:b:c, split at the first ':' */
	basic_ok("Basic YWxpY2U6", "alice", "");                  /* alice: (empty password) */
	basic_bad("Bearer YWxpY2U6c2VjcmV0");
	basic_bad("Basic");
	basic_bad("Basic ");                                     /* decodes to nothing: no ':' */
	basic_bad("BasicYWxpY2U6c2VjcmV0");
	basic_bad("Basic !!!!");                                 /* bad base64 */
	basic_bad("Basic YWxpY2U6c2VjcmV0=");                    /* bad padding */
	basic_bad("Basic YWxpY2U=");                             /* alice: no colon */
	basic_bad("Basic OnNlY3JldA==");                         /* :secret: empty user */
	basic_bad("Basic YWxpY2U6c2UAY3JldA==");                 /* alice:se\0cret: NUL inside */
}

/* ---- the file ---- */

static struct berth_htpasswd *open_ok(const char *path)
{
	struct berth_htpasswd *h = NULL;
	assert_int_equal(berth_htpasswd_open(&h, path), 0);
	assert_non_null(h);
	return h;
}

static void test_fixture(void **state)
{
	char path[1024];
	(void)state;
	fixture_path(path, sizeof(path), "htpasswd");
	struct berth_htpasswd *h = open_ok(path);
	/* alice and erin are bcrypt; bob (MD5), carol (SHA1), dave (plain) and the line without a
	 * colon are ignored; comments and blank lines skipped. */
	assert_int_equal(berth_htpasswd_count(h), 2);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pw"), 0);
	assert_int_equal(berth_htpasswd_check(h, "erin", "erin-pw"), 0); /* CRLF line end */
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pW"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "alice", ""), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pw "), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "erin", "alice-pw"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "bob", "bob-pw"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "carol", "carol-pw"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "dave", "dave-pw"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "mallory", "alice-pw"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "", "alice-pw"), BERTH_EUNAUTHORIZED);
	berth_htpasswd_close(h);
}

static void test_bcrypt_variants_and_duplicates(void **state)
{
	(void)state;
	char *a = bcrypt("$2a$", "pa"), *b = bcrypt("$2b$", "pb"), *y = bcrypt("$2y$", "py");
	char *old = bcrypt("$2y$", "old"), *new = bcrypt("$2y$", "new");
	char text[1024];
	snprintf(text, sizeof(text),
		 "ua:%s\n  ub:%s  \nuy:%s\ndup:%s\n#dup:%s\ndup:%s\nshort:$2y$04$tooshort\nsha512:$6$salt$abc\n",
		 a, b, y, old, y, new);
	write_replace(tmp_path("htpasswd"), text);
	struct berth_htpasswd *h = open_ok(tmp_path("htpasswd"));
	assert_int_equal(berth_htpasswd_count(h), 4);
	assert_int_equal(berth_htpasswd_check(h, "ua", "pa"), 0);
	assert_int_equal(berth_htpasswd_check(h, "ub", "pb"), 0); /* surrounding blanks trimmed */
	assert_int_equal(berth_htpasswd_check(h, "uy", "py"), 0);
	/* A user listed twice: the last line wins. */
	assert_int_equal(berth_htpasswd_check(h, "dup", "new"), 0);
	assert_int_equal(berth_htpasswd_check(h, "dup", "old"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "short", ""), BERTH_EUNAUTHORIZED);
	berth_htpasswd_close(h);
	free(a), free(b), free(y), free(old), free(new);
}

static void test_reload_on_change(void **state)
{
	(void)state;
	char *ha = bcrypt("$2y$", "alice-pw"), *hb = bcrypt("$2y$", "bob-pw"), *ha2 = bcrypt("$2y$", "alice-new");
	char text[512];
	const char *path = tmp_path("htpasswd");

	snprintf(text, sizeof(text), "alice:%s\n", ha);
	write_replace(path, text);
	struct berth_htpasswd *h = open_ok(path);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pw"), 0);
	assert_int_equal(berth_htpasswd_check(h, "bob", "bob-pw"), BERTH_EUNAUTHORIZED);

	/* A new user, file replaced by rename: picked up at the next look. */
	snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", ha, hb);
	write_replace(path, text);
	berth_htpasswd_recheck(h);
	assert_int_equal(berth_htpasswd_check(h, "bob", "bob-pw"), 0);
	assert_int_equal(berth_htpasswd_count(h), 2);

	/* alice's password changed in place: the cached old one no longer works. */
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pw"), 0);
	snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", ha2, hb);
	write_in_place(path, text);
	berth_htpasswd_recheck(h);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pw"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-new"), 0);

	/* The file vanishes: nobody gets in; it comes back: it works again. */
	assert_int_equal(unlink(path), 0);
	berth_htpasswd_recheck(h);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-new"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_count(h), 0);
	write_replace(path, text);
	berth_htpasswd_recheck(h);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-new"), 0);

	/* Unreadable (a directory in its place): nobody gets in either. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	berth_htpasswd_recheck(h);
	assert_int_equal(berth_htpasswd_check(h, "bob", "bob-pw"), BERTH_EUNAUTHORIZED);
	assert_int_equal(rmdir(path), 0);

	berth_htpasswd_close(h);
	free(ha), free(hb), free(ha2);
}

/* The cache holds 256 credentials: one more evicts the oldest, the rest stay. */
static void test_cache_bounded(void **state)
{
	(void)state;
	enum { USERS = 257 };
	char *hash = bcrypt("$2y$", "pw"); /* one hash for all: cost 4, fast */
	size_t cap = USERS * 80;
	char *text = malloc(cap), name[16];
	assert_non_null(text);
	size_t len = 0;
	for (int i = 0; i < USERS; i++)
		len += (size_t)snprintf(text + len, cap - len, "user%d:%s\n", i, hash);
	const char *path = tmp_path("htpasswd");
	write_replace(path, text);
	struct berth_htpasswd *h = open_ok(path);

	for (int i = 0; i < USERS; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		assert_int_equal(berth_htpasswd_check(h, name, "pw"), 0);
	}
	uint64_t hits = berth_htpasswd_cache_hits(h);
	for (int i = USERS - 1; i >= 1; i--) {
		snprintf(name, sizeof(name), "user%d", i);
		assert_int_equal(berth_htpasswd_check(h, name, "pw"), 0);
	}
	assert_int_equal(berth_htpasswd_cache_hits(h), hits + USERS - 1);
	/* user0 expired first, so it was the one evicted. */
	assert_int_equal(berth_htpasswd_check(h, "user0", "pw"), 0);
	assert_int_equal(berth_htpasswd_cache_hits(h), hits + USERS - 1);
	berth_htpasswd_close(h);
	free(text);
	free(hash);
}

static void test_cache(void **state)
{
	(void)state;
	char *ha = bcrypt("$2y$", "alice-pw");
	char text[256];
	const char *path = tmp_path("htpasswd");
	snprintf(text, sizeof(text), "alice:%s\n", ha);
	write_replace(path, text);
	struct berth_htpasswd *h = open_ok(path);

	uint64_t hits = berth_htpasswd_cache_hits(h);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pw"), 0);
	assert_int_equal(berth_htpasswd_cache_hits(h), hits);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pw"), 0);
	assert_int_equal(berth_htpasswd_cache_hits(h), hits + 1);
	/* Failures are never cached, and a cached success matches only the same password. */
	assert_int_equal(berth_htpasswd_check(h, "alice", "nope"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "alice", "nope"), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_check(h, "alicealice-pw", ""), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_htpasswd_cache_hits(h), hits + 1);

	/* A reload empties the cache: the next check runs bcrypt again. */
	write_replace(path, text);
	berth_htpasswd_recheck(h);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pw"), 0);
	assert_int_equal(berth_htpasswd_cache_hits(h), hits + 1);
	assert_int_equal(berth_htpasswd_check(h, "alice", "alice-pw"), 0);
	assert_int_equal(berth_htpasswd_cache_hits(h), hits + 2);
	berth_htpasswd_close(h);
	free(ha);
}

struct worker {
	struct berth_htpasswd *h;
	int failures;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 200; i++) {
		if (i % 50 == 0)
			berth_htpasswd_recheck(w->h);
		if (berth_htpasswd_check(w->h, "alice", "alice-pw") != 0)
			w->failures++;
		if (berth_htpasswd_check(w->h, "alice", "wrong") == 0)
			w->failures++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	char *ha = bcrypt("$2y$", "alice-pw");
	char text[256];
	const char *path = tmp_path("htpasswd");
	snprintf(text, sizeof(text), "alice:%s\n", ha);
	write_replace(path, text);
	struct berth_htpasswd *h = open_ok(path);
	pthread_t t[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ h, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	}
	/* Meanwhile the file is rewritten with the same content (a reload each time). */
	for (int i = 0; i < 5; i++)
		write_replace(path, text);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	berth_htpasswd_close(h);
	free(ha);
}

/* Opens path with stderr (the log) captured into out. */
static struct berth_htpasswd *open_capturing_log(const char *path, char *out, size_t cap)
{
	char logpath[600];
	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	fflush(stderr);
	int saved = dup(2);
	FILE *f = fopen(logpath, "w+");
	assert_non_null(f);
	dup2(fileno(f), 2);
	berth_log_set_level(BERTH_LOG_WARN);
	struct berth_htpasswd *h = open_ok(path);
	berth_log_set_level(BERTH_LOG_ERROR);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
	return h;
}

static void test_creates_missing_file(void **state)
{
	(void)state;
	const char *path = tmp_path("deep/er/htpasswd");
	char log[4096], password[64];
	struct berth_htpasswd *h = open_capturing_log(path, log, sizeof(log));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	FILE *f = fopen(path, "r");
	char line[256] = "";
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	assert_int_equal(strncmp(line, "docker:$2y$10$", 14), 0);
	assert_int_equal(strlen(line), strlen("docker:") + 60 + 1);
	assert_int_equal(berth_htpasswd_count(h), 1);
	assert_int_equal(berth_htpasswd_check(h, "docker", ""), BERTH_EUNAUTHORIZED);
	/* The random password is in the log (as Distribution logs it), and it works. */
	const char *p = strstr(log, "password \\\"");
	assert_non_null(p);
	assert_int_equal(sscanf(p + strlen("password \\\""), "%63[A-Za-z0-9_-]", password), 1);
	assert_int_equal(strlen(password), 43);
	assert_int_equal(berth_htpasswd_check(h, "docker", password), 0);
	berth_htpasswd_close(h);
}

/* ---- berth_auth with htpasswd ---- */

static struct berth_auth *auth_new(const char *realm, const char *path)
{
	struct berth_config cfg;
	struct berth_auth *a = NULL;
	berth_config_defaults(&cfg);
	cfg.auth.kind = BERTH_AUTH_HTPASSWD;
	snprintf(cfg.auth.realm, sizeof(cfg.auth.realm), "%s", realm);
	snprintf(cfg.auth.path, sizeof(cfg.auth.path), "%s", path);
	assert_int_equal(berth_auth_new(&a, &cfg), 0);
	assert_non_null(a);
	return a;
}

static void test_authorize_basic(void **state)
{
	(void)state;
	char *ha = bcrypt("$2y$", "secret");
	char text[256], challenge[1024], user[128];
	const char *path = tmp_path("htpasswd");
	snprintf(text, sizeof(text), "alice:%s\n", ha);
	write_replace(path, text);
	struct berth_auth *a = auth_new("basic-realm", path);
	struct berth_access pull = { "repository", "foo", "pull" };

	assert_int_equal(berth_auth_authorize(a, NULL, NULL, 0, challenge, sizeof(challenge), user, sizeof(user)),
			 BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, "Basic realm=\"basic-realm\"");
	assert_string_equal(user, "");
	/* alice:secret */
	assert_int_equal(berth_auth_authorize(a, "Basic YWxpY2U6c2VjcmV0", &pull, 1, challenge, sizeof(challenge),
					      user, sizeof(user)), 0);
	assert_string_equal(user, "alice");
	/* alice:secreT */
	assert_int_equal(berth_auth_authorize(a, "Basic YWxpY2U6c2VjcmVU", &pull, 1, challenge, sizeof(challenge),
					      user, sizeof(user)), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, "Basic realm=\"basic-realm\"");
	assert_string_equal(user, "");
	assert_int_equal(berth_auth_authorize(a, "Bearer abc", &pull, 1, challenge, sizeof(challenge), user,
					      sizeof(user)), BERTH_EUNAUTHORIZED);
	assert_int_equal(berth_auth_authorize(a, "Basic !!", &pull, 1, challenge, sizeof(challenge), user,
					      sizeof(user)), BERTH_EUNAUTHORIZED);
	/* A huge header is refused without being decoded. */
	size_t big = BERTH_AUTH_HEADER_MAX + 100;
	char *huge = malloc(big + 1);
	memcpy(huge, "Basic ", 6);
	memset(huge + 6, 'A', big - 6);
	huge[big] = '\0';
	assert_int_equal(berth_auth_authorize(a, huge, &pull, 1, challenge, sizeof(challenge), user, sizeof(user)),
			 BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, "Basic realm=\"basic-realm\"");
	free(huge);
	berth_auth_free(a);

	/* Quotes in the realm are escaped. */
	a = auth_new("my \"quoted\" realm", path);
	assert_int_equal(berth_auth_authorize(a, NULL, NULL, 0, challenge, sizeof(challenge), NULL, 0),
			 BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, "Basic realm=\"my \\\"quoted\\\" realm\"");
	berth_auth_free(a);
	free(ha);
}

static void test_config_errors(void **state)
{
	(void)state;
	struct berth_config cfg;
	struct berth_auth *a = (struct berth_auth *)&cfg;

	berth_config_defaults(&cfg);
	assert_int_equal(berth_auth_new(&a, &cfg), 0); /* no auth section */
	assert_null(a);

	cfg.auth.kind = BERTH_AUTH_HTPASSWD;
	snprintf(cfg.auth.realm, sizeof(cfg.auth.realm), "r");
	assert_int_equal(berth_auth_new(&a, &cfg), -1);
	assert_null(a);
	assert_string_equal(berth_err_message(BERTH_ERROR), "auth.htpasswd.path must be set");

	cfg.auth.realm[0] = '\0';
	snprintf(cfg.auth.path, sizeof(cfg.auth.path), "%s", tmp_path("x"));
	assert_int_equal(berth_auth_new(&a, &cfg), -1);
	assert_string_equal(berth_err_message(BERTH_ERROR), "auth.htpasswd.realm must be set");
}

int main(void)
{
	/* Warnings about the ignored lines of the fixture are expected: keep the output to errors. */
	berth_log_setup(BERTH_LOG_ERROR, BERTH_LOG_TEXT, NULL, NULL, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_basic_parse),
		cmocka_unit_test(test_fixture),
		cmocka_unit_test_setup_teardown(test_bcrypt_variants_and_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_on_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_creates_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_authorize_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
