/* main.c - the ari-lua host: a Lua 5.4 state with ari.core built in.
 *
 * It only sets up paths and hands argv to the Lua module ari.cli, which
 * parses options, runs the script as a coroutine and drives the loop.
 * Where the ari Lua modules come from, before the usual package.path:
 *   - the installed host (build/bin/ari-lua, what `make install` and
 *     LuaRocks install): the share/lua/5.4 beside its bin directory (the
 *     tree it was installed into, whatever DESTDIR or --tree), then
 *     ARI_LUADIR; never Lua files that happen to lie beside the binary;
 *   - the source tree's host (./ari-lua, built with ARI_SOURCE_TREE=1):
 *     ./lua beside the binary first, so the working tree's files win.
 */
#include "core.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ARI_LUADIR
#define ARI_LUADIR "/usr/local/share/lua/5.4"
#endif
#ifndef ARI_SOURCE_TREE
#define ARI_SOURCE_TREE 0
#endif

static void main_set_paths(lua_State *L) {
  char exe[4096];
  size_t len = sizeof exe;
  luaL_Buffer b;
  lua_getglobal(L, "package");
  luaL_buffinit(L, &b);
  if (uv_exepath(exe, &len) == 0) {
    char *slash = strrchr(exe, '/');
    if (slash != NULL) {
      *slash = '\0';
#if ARI_SOURCE_TREE
      luaL_addstring(&b, exe);
      luaL_addstring(&b, "/lua/?.lua;");
      luaL_addstring(&b, exe);
      luaL_addstring(&b, "/lua/?/init.lua;");
#endif
      luaL_addstring(&b, exe);
      luaL_addstring(&b, "/../share/lua/5.4/?.lua;");
      luaL_addstring(&b, exe);
      luaL_addstring(&b, "/../share/lua/5.4/?/init.lua;");
    }
  }
  luaL_addstring(&b, ARI_LUADIR "/?.lua;" ARI_LUADIR "/?/init.lua;");
  lua_getfield(L, -2, "path");
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

static int main_protected(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int i;
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_ari_core);
  lua_setfield(L, -2, "ari.core");
  lua_pop(L, 1);
  main_set_paths(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "ari.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc, 0);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_call(L, 1, 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  int rc;
  if (L == NULL) {
    fprintf(stderr, "ari-lua: cannot create Lua state\n");
    return 1;
  }
  lua_pushcfunction(L, main_protected);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    fprintf(stderr, "ari-lua: %s\n", lua_tostring(L, -1));
    rc = 1;
  } else {
    rc = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  }
  lua_close(L);
  return rc;
}
