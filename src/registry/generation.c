/*
 * Generations kept in the store itself: an object whose bytes are a fresh random token each
 * time it is bumped, so that every process on the store (berth instances on one filesystem or
 * bucket) tells with one stat whether anything bumped it since it last looked. The objects live
 * under BERTH_STATE_ROOT, outside Distribution's repositories/ and blobs/ trees, which are the
 * only ones Distribution (catalog, gc, upload purging) and berth fsck walk.
 */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

/* The token an object holds, read into g (absent: g->present = 0). */
static int read_token(struct berth_generation *g, struct berth_storage_driver *d, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = berth_storage_get_content(&buf, &len, d, path, sizeof(g->token) - 1);
	if (rc == BERTH_ENOTFOUND) {
		g->present = 0;
		g->token[0] = '\0';
		return 0;
	}
	if (rc == BERTH_ETOOLARGE)
		len = 0; /* not ours; bumping it makes it ours again */
	else if (rc < 0)
		return rc;
	g->present = 1;
	memcpy(g->token, buf ? buf : "", len);
	g->token[len] = '\0';
	free(buf);
	return 0;
}

int berth_generation_read(struct berth_generation *out, struct berth_storage_driver *d, const char *path)
{
	/* The token first: an absent object needs nothing more (S3 answers a stat of a missing
	 * key with a HEAD and a LIST). A bump between the two reads leaves a new version with an
	 * old token: the snapshot read after both is then newer than it says, never older. */
	int rc = read_token(out, d, path);
	out->version = 0;
	if (rc < 0 || !out->present)
		return rc;
	struct berth_stat st;
	rc = berth_storage_stat(&st, d, path);
	if (rc == 0)
		out->version = st.version;
	return rc == BERTH_ENOTFOUND ? 0 : rc;
}

int berth_generation_unchanged(struct berth_generation *g, struct berth_storage_driver *d,
			       const char *path)
{
	struct berth_generation now;
	if (!g->present) /* one read of a missing object (a stat of one costs two S3 requests) */
		return read_token(&now, d, path) == 0 && !now.present;
	struct berth_stat st;
	int rc = berth_storage_stat(&st, d, path);
	if (rc < 0)
		return 0;
	if (st.version != 0 && st.version == g->version)
		return 1;
	/* No version (a filesystem within a second of a change), or a new one: the token says.
	 * Tokens are never reused, so an equal one means no bump since g was read. */
	if (read_token(&now, d, path) < 0 || !now.present || strcmp(now.token, g->token) != 0)
		return 0;
	g->version = st.version;
	return 1;
}

int berth_generation_equal(const struct berth_generation *a, const struct berth_generation *b)
{
	return a->present == b->present && strcmp(a->token, b->token) == 0;
}

int berth_generation_write(struct berth_generation *out, struct berth_storage_driver *d, const char *path)
{
	struct berth_generation g = { .present = 1 };
	berth_uuid4(g.token);
	int rc = berth_storage_put_content(d, path, g.token, strlen(g.token));
	if (rc == 0 && out)
		*out = g;
	return rc;
}

void berth_generation_bump(struct berth_storage_driver *d, const char *path)
{
	int rc = berth_generation_write(NULL, d, path);
	if (rc < 0) /* the others see the change at their next look at the directories (2 s) */
		berth_warn("storage: could not bump the generation %s: %s", path, berth_strerror(rc));
}
