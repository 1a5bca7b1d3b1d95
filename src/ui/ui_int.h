/* Internals shared by the web interface's files. */
#ifndef BERTH_UI_INT_H
#define BERTH_UI_INT_H

#include <jansson.h>

#include "http/request.h"

/* Answers 200 with doc as JSON (not cached; the interface's security headers). Takes doc. */
void berth_ui__send_json(struct berth_request *req, json_t *doc);

#endif
