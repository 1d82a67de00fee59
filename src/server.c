/* server.c - placeholder until the server module lands. */
#include "core.h"

void server_open(lua_State *L) { (void)L; }
