/* http.c - placeholder until the http module lands. */
#include "core.h"

void http_open(lua_State *L) { (void)L; }
