/*
 * The web interface's files (src/ui/assets/), built into the binary by src/ui/embed.cmake.
 */
#ifndef BERTH_UI_ASSETS_H
#define BERTH_UI_ASSETS_H

#include <stddef.h>

struct berth_ui_asset {
	const char *name;          /* file name, "app.js" */
	const char *type;          /* Content-Type */
	const unsigned char *data; /* len bytes, then a NUL (so text can be used as a string) */
	size_t len;
	const char *etag;          /* quoted strong validator: part of the file's SHA-256 */
};

extern const struct berth_ui_asset berth_ui_assets[];
extern const size_t berth_ui_n_assets;

#endif
