/*
 * The web interface (ui.enabled), served under /ui/: a page shell and its script and style,
 * built into the binary (ui/assets.h), plus berth-specific JSON endpoints the page needs
 * beside the registry API it calls with the user's own credentials:
 *   GET /ui/api/info                 {"delete_enabled":bool,"readonly":bool}; needs a login
 *   GET /ui/api/pushed?repo=N&tag=T  {"pushed":"RFC 3339"}: when the tag was last pushed;
 *                                    needs pull on N
 *   GET /ui/api/token?scope=S        a bearer token, with token auth (ui/token.h)
 * Every other path below /ui/ is a page of the interface and gets the shell, so every page
 * has a URL to share (/ui/repo/NAME). The shell and its files are public: they hold no data.
 */
#ifndef BERTH_UI_UI_H
#define BERTH_UI_UI_H

#include "api/api.h"

/*
 * The web interface's handler, beside the API's (main.c gives it to the API with ui.enabled,
 * struct berth_api.extra): it claims "/ui" and "/ui/..." below http.prefix. Blocks on storage for /ui/api/pushed (one stat);
 * /ui/api/token is answered later, from another thread's work (ui/token.h).
 */
extern const struct berth_api_extra berth_ui_handler;

#endif
