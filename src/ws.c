/* ws.c - placeholder until the ws module lands. */
#include "core.h"

void ws_open(lua_State *L) { (void)L; }
